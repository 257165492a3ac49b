//! A string in a fixed-size buffer, for what the board must keep before any allocator exists
//! (the command line, the machine description).

use core::fmt;

/// UTF-8 text stored inline in `N` bytes. Writes past the capacity are cut at a character
/// boundary and remembered ([`FixedStr::truncated`]), never a failure.
#[derive(Clone)]
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> FixedStr<N> {
    /// An empty string.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in (see `push_str`), so this cannot fail; the
        // fallback keeps the function panic-free anyway.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Whether some text did not fit.
    pub const fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends as much of `text` as fits, cut at a character boundary.
    pub fn push_str(&mut self, text: &str) {
        let room = N - self.len;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        if take < text.len() {
            self.truncated = true;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FixedStr<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn keeps_what_fits() {
        let mut s = FixedStr::<16>::new();
        let word = "ok";
        write!(s, "EL{} {word}", 2).unwrap();
        assert_eq!(s.as_str(), "EL2 ok");
        assert!(!s.truncated());
    }

    #[test]
    fn cuts_at_a_character_boundary() {
        let mut s = FixedStr::<5>::new();
        s.push_str("abcdé"); // 'é' is two bytes: only "abcd" fits
        assert_eq!(s.as_str(), "abcd");
        assert!(s.truncated());
        s.push_str("z");
        assert_eq!(s.as_str(), "abcdz");
    }
}
