//! The PVH boot information (`struct hvm_start_info`, Xen's `arch-x86/hvm/start_info.h`):
//! pure parsers over the raw bytes the loader left in guest memory.
//!
//! Layout (all little-endian, physical addresses):
//!
//! | offset | field              | since   |
//! |-------:|--------------------|---------|
//! | 0      | `magic` (u32) = [`START_INFO_MAGIC`] | 0 |
//! | 4      | `version` (u32)    | 0       |
//! | 8      | `flags` (u32)      | 0       |
//! | 12     | `nr_modules` (u32) | 0       |
//! | 16     | `modlist_paddr`    | 0       |
//! | 24     | `cmdline_paddr`    | 0       |
//! | 32     | `rsdp_paddr`       | 0       |
//! | 40     | `memmap_paddr`     | 1       |
//! | 48     | `memmap_entries` (u32) | 1   |
//!
//! A memory map entry is `{ addr: u64, size: u64, type: u32, reserved: u32 }` (24 bytes), a
//! module entry `{ paddr: u64, size: u64, cmdline_paddr: u64, reserved: u64 }` (32 bytes).

use crate::memmap::{Range, RawEntry};

/// `hvm_start_info.magic`: "xEn3" with the top bit of the second byte set.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Bytes of a version-0 start info.
pub const START_INFO_V0_SIZE: usize = 48;
/// Bytes of a version-1 start info (with the memory map fields).
pub const START_INFO_V1_SIZE: usize = 56;
/// Bytes of one memory map entry.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Bytes of one module list entry.
pub const MODULE_ENTRY_SIZE: usize = 32;

/// The fields of `hvm_start_info` the board uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StartInfo {
    /// Structure version (1 has the memory map).
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of boot modules (`-initrd`).
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, 0 if none.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, 0 if none.
    pub rsdp_paddr: u64,
    /// Physical address of the memory map (version >= 1).
    pub memmap_paddr: u64,
    /// Entries in the memory map (version >= 1).
    pub memmap_entries: u32,
}

/// Why the boot information cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// `ebx` did not point at a start info (the image was not booted through PVH).
    BadMagic(u32),
    /// Fewer bytes than the structure needs.
    TooShort,
    /// Version 0, or an empty memory map: there is no way to know the RAM.
    NoMemoryMap,
}

impl BootInfoError {
    /// One-line description for the console.
    pub fn message(&self) -> &'static str {
        match self {
            BootInfoError::BadMagic(_) => {
                "no PVH start info at ebx (magic 0x336ec578 missing): boot with qemu -kernel; \
                 QEMU's pvh.bin also overwrites it with a command line over 4 KiB"
            }
            BootInfoError::TooShort => "PVH start info truncated",
            BootInfoError::NoMemoryMap => {
                "PVH start info has no memory map (version 0 or zero entries)"
            }
        }
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

/// Parses a start info from its first [`START_INFO_V1_SIZE`] bytes (a version-0 structure
/// needs only [`START_INFO_V0_SIZE`]). Requires a memory map.
pub fn parse_start_info(bytes: &[u8]) -> Result<StartInfo, BootInfoError> {
    if bytes.len() < 4 {
        return Err(BootInfoError::TooShort);
    }
    let magic = u32_at(bytes, 0);
    if magic != START_INFO_MAGIC {
        return Err(BootInfoError::BadMagic(magic));
    }
    if bytes.len() < START_INFO_V0_SIZE {
        return Err(BootInfoError::TooShort);
    }
    let mut info = StartInfo {
        version: u32_at(bytes, 4),
        flags: u32_at(bytes, 8),
        nr_modules: u32_at(bytes, 12),
        modlist_paddr: u64_at(bytes, 16),
        cmdline_paddr: u64_at(bytes, 24),
        rsdp_paddr: u64_at(bytes, 32),
        memmap_paddr: 0,
        memmap_entries: 0,
    };
    if info.version >= 1 {
        if bytes.len() < START_INFO_V1_SIZE {
            return Err(BootInfoError::TooShort);
        }
        info.memmap_paddr = u64_at(bytes, 40);
        info.memmap_entries = u32_at(bytes, 48);
    }
    if info.memmap_entries == 0 || info.memmap_paddr == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(info)
}

/// Parses one memory map entry.
pub fn parse_memmap_entry(bytes: &[u8; MEMMAP_ENTRY_SIZE]) -> RawEntry {
    RawEntry {
        addr: u64_at(bytes, 0),
        size: u64_at(bytes, 8),
        kind: u32_at(bytes, 16),
    }
}

/// Parses one module list entry into the physical range the module occupies.
pub fn parse_module(bytes: &[u8; MODULE_ENTRY_SIZE]) -> Range {
    let start = u64_at(bytes, 0);
    Range::new(start, start.saturating_add(u64_at(bytes, 8)))
}

/// `bytes` as a `&str` if they are all ASCII, without running the UTF-8 decoder (whose code
/// is a few dozen basic blocks, each a translation under TCG; see the crate docs).
pub fn ascii_str(bytes: &[u8]) -> Option<&str> {
    // A plain loop, not `<[u8]>::is_ascii` (word-at-a-time, many more blocks).
    if bytes.iter().all(|&b| b < 0x80) {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { core::str::from_utf8_unchecked(bytes) })
    } else {
        None
    }
}

/// `from_utf8` with an ASCII fast path: command lines are ASCII, and the fast path is a
/// short loop (under TCG every new basic block on the boot path costs a translation).
fn check_utf8(bytes: &[u8]) -> Result<(), core::str::Utf8Error> {
    match ascii_str(bytes) {
        Some(_) => Ok(()),
        None => core::str::from_utf8(bytes).map(|_| ()),
    }
}

/// Outcome of [`copy_cmdline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdlineCopy {
    /// Bytes copied; `dst[..len]` is valid UTF-8.
    pub len: usize,
    /// The line did not fit and was cut (at a character boundary).
    pub truncated: bool,
    /// Bytes that were not UTF-8 ended the copy early.
    pub invalid_utf8: bool,
}

/// Copies the NUL-terminated command line at the start of `src` (or all of `src` when it
/// has no NUL) into `dst`, keeping the longest prefix that is valid UTF-8 and fits.
pub fn copy_cmdline(src: &[u8], dst: &mut [u8]) -> CmdlineCopy {
    let line = src
        .iter()
        .position(|&b| b == 0)
        .map_or(src, |nul| &src[..nul]);
    let fits = line.len().min(dst.len());
    let (valid, invalid_utf8) = match check_utf8(&line[..fits]) {
        Ok(_) => (fits, false),
        // An error at the very end of a cut line is a character split by the cut.
        Err(e) => (
            e.valid_up_to(),
            e.error_len().is_some() || fits == line.len(),
        ),
    };
    dst[..valid].copy_from_slice(&line[..valid]);
    CmdlineCopy {
        len: valid,
        truncated: line.len() > dst.len(),
        invalid_utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_info(version: u32, memmap: u64, entries: u32) -> [u8; START_INFO_V1_SIZE] {
        let mut bytes = [0u8; START_INFO_V1_SIZE];
        bytes[0..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        bytes[12..16].copy_from_slice(&1u32.to_le_bytes());
        bytes[16..24].copy_from_slice(&0x7000u64.to_le_bytes());
        bytes[24..32].copy_from_slice(&0x2_0000u64.to_le_bytes());
        bytes[32..40].copy_from_slice(&0xf_5a40u64.to_le_bytes());
        bytes[40..48].copy_from_slice(&memmap.to_le_bytes());
        bytes[48..52].copy_from_slice(&entries.to_le_bytes());
        bytes
    }

    #[test]
    fn parses_version_1() {
        let info = parse_start_info(&start_info(1, 0x6000, 3)).unwrap();
        assert_eq!(
            info,
            StartInfo {
                version: 1,
                flags: 0,
                nr_modules: 1,
                modlist_paddr: 0x7000,
                cmdline_paddr: 0x2_0000,
                rsdp_paddr: 0xf_5a40,
                memmap_paddr: 0x6000,
                memmap_entries: 3,
            }
        );
    }

    #[test]
    fn rejects_wrong_magic_old_version_and_short_input() {
        let mut bytes = start_info(1, 0x6000, 3);
        bytes[0] ^= 1;
        assert_eq!(
            parse_start_info(&bytes),
            Err(BootInfoError::BadMagic(START_INFO_MAGIC ^ 1))
        );
        // Version 0 has no memory map, even if the bytes after it look like one.
        assert_eq!(
            parse_start_info(&start_info(0, 0x6000, 3)),
            Err(BootInfoError::NoMemoryMap)
        );
        assert_eq!(
            parse_start_info(&start_info(1, 0x6000, 0)),
            Err(BootInfoError::NoMemoryMap)
        );
        assert_eq!(
            parse_start_info(&start_info(1, 0x6000, 3)[..50]),
            Err(BootInfoError::TooShort)
        );
        assert_eq!(parse_start_info(&[]), Err(BootInfoError::TooShort));
        assert!(BootInfoError::BadMagic(0).message().contains("PVH"));
    }

    #[test]
    fn parses_memmap_and_module_entries() {
        let mut entry = [0u8; MEMMAP_ENTRY_SIZE];
        entry[0..8].copy_from_slice(&0x10_0000u64.to_le_bytes());
        entry[8..16].copy_from_slice(&0x3f0_0000u64.to_le_bytes());
        entry[16..20].copy_from_slice(&1u32.to_le_bytes());
        entry[20..24].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        assert_eq!(
            parse_memmap_entry(&entry),
            RawEntry {
                addr: 0x10_0000,
                size: 0x3f0_0000,
                kind: 1
            }
        );

        let mut module = [0u8; MODULE_ENTRY_SIZE];
        module[0..8].copy_from_slice(&0x300_0000u64.to_le_bytes());
        module[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
        assert_eq!(parse_module(&module), Range::new(0x300_0000, 0x300_1234));
        module[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_module(&module).end, u64::MAX);
    }

    #[test]
    fn copies_the_command_line_up_to_nul() {
        let mut dst = [0xffu8; 16];
        let copy = copy_cmdline(b"loglevel=debug -- a\0garbage", &mut dst);
        assert_eq!(
            copy,
            CmdlineCopy {
                len: 16,
                truncated: true,
                invalid_utf8: false
            }
        );
        let mut dst = [0u8; 64];
        let copy = copy_cmdline(b"a \"b c\"\0garbage", &mut dst);
        assert_eq!(&dst[..copy.len], b"a \"b c\"");
        assert!(!copy.truncated && !copy.invalid_utf8);
        assert_eq!(copy_cmdline(b"\0", &mut dst).len, 0);
        assert_eq!(copy_cmdline(b"", &mut dst).len, 0);
        // No NUL at all: the whole source.
        assert_eq!(copy_cmdline(b"abc", &mut dst).len, 3);
    }

    #[test]
    fn keeps_only_valid_utf8() {
        let mut dst = [0u8; 64];
        let copy = copy_cmdline(b"ok \xff bad\0", &mut dst);
        assert_eq!(
            copy,
            CmdlineCopy {
                len: 3,
                truncated: false,
                invalid_utf8: true
            }
        );
        // A multi-byte character cut by the buffer end is dropped whole, and is not "invalid".
        let mut small = [0u8; 4];
        let copy = copy_cmdline("abcé\0".as_bytes(), &mut small);
        assert_eq!(
            copy,
            CmdlineCopy {
                len: 3,
                truncated: true,
                invalid_utf8: false
            }
        );
        assert_eq!(&small[..3], b"abc");
        // A line that ends in the middle of a character is invalid.
        let copy = copy_cmdline(b"ab\xc3\0", &mut dst);
        assert_eq!(
            copy,
            CmdlineCopy {
                len: 2,
                truncated: false,
                invalid_utf8: true
            }
        );
    }

    #[test]
    fn ascii_fast_path() {
        assert_eq!(ascii_str(b"abc -- d"), Some("abc -- d"));
        assert_eq!(ascii_str(b""), Some(""));
        assert_eq!(ascii_str("\u{e9}".as_bytes()), None);
        assert_eq!(ascii_str(b"\x7f\x80"), None);
    }
}
