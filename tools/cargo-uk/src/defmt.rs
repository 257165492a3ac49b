//! Decoding defmt frames in a guest's console output.
//!
//! An image built with uk-rt's `defmt` feature logs with defmt: each log call becomes a
//! binary frame (the interned string's index, the timestamp and the arguments, rzcobs
//! encoded, ended by a `0x00` byte) on the same serial line as its plain text (`println!`,
//! the boot firmware). uk-rt starts every frame with the byte `0xFF`, which never occurs in
//! UTF-8 text, so the console splits cleanly: text passes through as it is, and a frame
//! (from `0xFF` to `0x00`) is decoded with the image's own table of interned strings
//! (its `.defmt` section, read by `defmt-decoder`) into one line such as
//! `0.001234 INFO Hello from defmt on x86-pc`.
//!
//! A frame that does not decode (a damaged line) is shown as `<defmt: malformed frame>`;
//! the decoder then carries on with the next one.

use std::path::Path;

use defmt_decoder::Table;

/// The byte uk-rt writes before every defmt frame.
pub const FRAME_START: u8 = 0xFF;

/// Splits console output into text and defmt frames, and decodes the frames.
pub struct ConsoleDecoder {
    table: Table,
    frame: Vec<u8>,
    in_frame: bool,
    colored: bool,
}

impl ConsoleDecoder {
    /// A decoder for the image `elf` (`None` when the image has no defmt table). `colored`
    /// colours the log levels.
    pub fn new(elf: &[u8], colored: bool) -> Result<Option<ConsoleDecoder>, String> {
        let table = Table::parse(elf).map_err(|e| {
            format!(
                "cannot read the defmt table: {e} (a stripped image has none: keep its symbols \
                 with `strip = \"debuginfo\"` in its release profile)"
            )
        })?;
        Ok(table.map(|table| ConsoleDecoder {
            table,
            frame: Vec::new(),
            in_frame: false,
            colored,
        }))
    }

    /// A decoder for the image at `path`, when it has a defmt table.
    pub fn for_image(path: &Path, colored: bool) -> Result<Option<ConsoleDecoder>, String> {
        let elf =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ConsoleDecoder::new(&elf, colored)
    }

    /// Feeds bytes from the console; returns what to show: the text as it came, and a line
    /// for each frame completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.in_frame {
                if b == 0 && self.frame.is_empty() {
                    // The separator the encoder writes before its first frame: the frame
                    // itself follows.
                } else if b == 0 {
                    self.in_frame = false;
                    let line = self.decode_frame();
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    self.frame.clear();
                } else {
                    self.frame.push(b);
                }
            } else if b == FRAME_START {
                self.in_frame = true;
            } else {
                out.push(b);
            }
        }
        out
    }

    fn decode_frame(&self) -> String {
        let mut stream = self.table.new_stream_decoder();
        stream.received(&self.frame);
        stream.received(&[0]);
        match stream.decode() {
            Ok(frame) => frame.display(self.colored).to_string(),
            Err(_) => "<defmt: malformed frame>".to_owned(),
        }
    }

    /// Turns the decoder into a stdout filter for [`crate::process::run_filtered`].
    pub fn into_filter(mut self) -> crate::process::Filter {
        Box::new(move |bytes| self.feed(bytes))
    }
}

/// Decodes a whole captured console output (for `cargo uk test` and `cargo uk logs`).
pub fn decode_all(image: &Path, output: &[u8]) -> Vec<u8> {
    match ConsoleDecoder::for_image(image, false) {
        Ok(Some(mut d)) => d.feed(output),
        _ => output.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_defmt_has_no_decoder() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        assert!(ConsoleDecoder::for_image(&exe, false).unwrap().is_none());
        assert_eq!(
            decode_all(&exe, b"as it is\xff\x01\x00"),
            b"as it is\xff\x01\x00"
        );
        assert!(ConsoleDecoder::new(b"not elf", false).is_err());
    }
}
