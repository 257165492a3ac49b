//! getrandom(2) semantics: flags, error numbers, the handler.

use core::fmt;

use crate::pool::{Error, Pool, Wait};
use crate::source::RandomSource;

/// Do not wait for seeding: fail with `EAGAIN` instead (Linux `GRND_NONBLOCK`).
pub const GRND_NONBLOCK: u32 = 0x0001;
/// Historically the blocking pool; since Linux 5.6 the same generator as without the flag,
/// and so here (Linux `GRND_RANDOM`).
pub const GRND_RANDOM: u32 = 0x0002;
/// Never fail for lack of seeding (Linux `GRND_INSECURE`); not with [`GRND_RANDOM`].
pub const GRND_INSECURE: u32 = 0x0004;

/// Every flag this implementation knows.
const KNOWN: u32 = GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE;

/// The largest count one call writes, as Linux (`INT_MAX`); the return value says how much
/// was written.
pub const MAX_COUNT: usize = i32::MAX as usize;

/// A Linux error number.
///
/// A small local type until `uk-syscall` provides the shared `Errno` (the numbers are the
/// same on x86_64 and aarch64); it converts by [`Errno::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    /// I/O error: every random source failed.
    pub const EIO: Errno = Errno(5);
    /// Try again: not seeded yet and the caller asked not to wait.
    pub const EAGAIN: Errno = Errno(11);
    /// Invalid argument: unknown flags, or `GRND_INSECURE` with `GRND_RANDOM`.
    pub const EINVAL: Errno = Errno(22);

    /// The positive error number (`errno` value).
    pub const fn code(self) -> i32 {
        self.0
    }

    /// The symbolic name.
    pub const fn name(self) -> &'static str {
        match self.0 {
            5 => "EIO",
            11 => "EAGAIN",
            22 => "EINVAL",
            _ => "E?",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl From<Error> for Errno {
    fn from(e: Error) -> Self {
        match e {
            Error::WouldBlock => Errno::EAGAIN,
            Error::NoSource | Error::Source(_) => Errno::EIO,
        }
    }
}

/// Checks getrandom flags and says whether the call may wait for seeding.
///
/// Unknown bits and `GRND_INSECURE | GRND_RANDOM` are `EINVAL`, as in Linux.
/// `GRND_INSECURE` never waits *and* never fails for lack of seeding in Linux, where an
/// unseeded generator still has output; this generator has no output before its first seed
/// (it never runs on a fixed seed), so `GRND_INSECURE` seeds first like a waiting call.
pub fn check_flags(flags: u32) -> Result<Wait, Errno> {
    if flags & !KNOWN != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & (GRND_INSECURE | GRND_RANDOM) == GRND_INSECURE | GRND_RANDOM {
        return Err(Errno::EINVAL);
    }
    if flags & GRND_NONBLOCK != 0 && flags & GRND_INSECURE == 0 {
        Ok(Wait::No)
    } else {
        Ok(Wait::Yes)
    }
}

impl<H: RandomSource> Pool<H> {
    /// getrandom(2) on this pool: fills `buf` (up to [`MAX_COUNT`] bytes) and returns the
    /// number of bytes written.
    ///
    /// Errors: `EINVAL` for bad flags (checked first, even for an empty buffer), `EAGAIN`
    /// with `GRND_NONBLOCK` while unseeded and only jitter could seed, `EIO` when no source
    /// works. On error nothing was written.
    pub fn getrandom(&self, buf: &mut [u8], flags: u32) -> Result<usize, Errno> {
        let wait = check_flags(flags)?;
        let count = buf.len().min(MAX_COUNT);
        self.fill(&mut buf[..count], wait)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::boxed::Box;

    use uk_hal::Clock;

    use super::*;
    use crate::drbg::ReseedPolicy;
    use crate::source::SourceKind;
    use crate::source::tests::Fake;
    use crate::source::tests::HostClock;

    fn host_clock() -> &'static dyn Clock {
        Box::leak(Box::new(HostClock(std::time::Instant::now())))
    }

    #[test]
    fn flags_are_checked_like_linux() {
        assert_eq!(check_flags(0), Ok(Wait::Yes));
        assert_eq!(check_flags(GRND_RANDOM), Ok(Wait::Yes));
        assert_eq!(check_flags(GRND_NONBLOCK), Ok(Wait::No));
        assert_eq!(check_flags(GRND_NONBLOCK | GRND_RANDOM), Ok(Wait::No));
        assert_eq!(check_flags(GRND_INSECURE), Ok(Wait::Yes));
        assert_eq!(check_flags(GRND_INSECURE | GRND_NONBLOCK), Ok(Wait::Yes));
        assert_eq!(check_flags(GRND_INSECURE | GRND_RANDOM), Err(Errno::EINVAL));
        assert_eq!(check_flags(8), Err(Errno::EINVAL));
        assert_eq!(check_flags(GRND_NONBLOCK | 0x100), Err(Errno::EINVAL));
        assert_eq!(check_flags(u32::MAX), Err(Errno::EINVAL));
    }

    #[test]
    fn returns_the_count_and_rejects_bad_flags_before_touching_anything() {
        let pool = Pool::with_source(Some(Fake::failing(0, 0)), ReseedPolicy::DEFAULT);
        let mut buf = [0u8; 40];
        assert_eq!(pool.getrandom(&mut buf, 8), Err(Errno::EINVAL));
        assert_eq!(buf, [0; 40]);
        assert_eq!(pool.status().seeded_by, None, "bad flags do not seed");
        assert_eq!(pool.getrandom(&mut [], 0), Ok(0));
        assert_eq!(pool.getrandom(&mut buf, GRND_NONBLOCK), Ok(40));
        assert_ne!(buf, [0; 40]);
        let first = buf;
        assert_eq!(pool.getrandom(&mut buf[..17], GRND_RANDOM), Ok(17));
        assert_ne!(buf[..17], first[..17]);
        assert_eq!(
            buf[17..],
            first[17..],
            "only the count asked for is written"
        );
        assert_eq!(pool.getrandom(&mut buf, GRND_INSECURE), Ok(40));
        assert_eq!(
            pool.status().seeded_by,
            Some(SourceKind::Other("fake")),
            "seeded from the hardware source"
        );
    }

    #[test]
    fn nonblock_without_hardware_is_eagain_until_seeded() {
        let pool: Pool<Fake> = Pool::with_source(None, ReseedPolicy::DEFAULT);
        let mut buf = [0u8; 16];
        // No clock yet: a waiting call has no source at all.
        assert_eq!(pool.getrandom(&mut buf, 0), Err(Errno::EIO));
        assert_eq!(pool.getrandom(&mut buf, GRND_NONBLOCK), Err(Errno::EAGAIN));
        pool.set_clock(host_clock());
        assert_eq!(pool.getrandom(&mut buf, GRND_NONBLOCK), Err(Errno::EAGAIN));
        assert_eq!(buf, [0; 16]);
        // A waiting call seeds from jitter; afterwards GRND_NONBLOCK succeeds.
        assert_eq!(pool.getrandom(&mut buf, 0), Ok(16));
        assert_eq!(pool.status().seeded_by, Some(SourceKind::Jitter));
        assert_eq!(pool.getrandom(&mut buf, GRND_NONBLOCK), Ok(16));
    }

    #[test]
    fn insecure_seeds_instead_of_failing() {
        let pool: Pool<Fake> = Pool::with_source(None, ReseedPolicy::DEFAULT);
        pool.set_clock(host_clock());
        let mut buf = [0u8; 16];
        assert_eq!(
            pool.getrandom(&mut buf, GRND_INSECURE | GRND_NONBLOCK),
            Ok(16)
        );
        assert_ne!(buf, [0; 16]);
    }

    #[test]
    fn errno_names_and_codes() {
        assert_eq!(Errno::EINVAL.code(), 22);
        assert_eq!(std::format!("{}", Errno::EAGAIN), "EAGAIN (11)");
        assert_eq!(Errno::from(Error::NoSource), Errno::EIO);
    }
}
