//! CPIO `newc` archives (the initrd format): a bounds-checked parser and the unpacker.
//!
//! A `newc` entry is a 110-byte ASCII header (`070701`, or `070702` with a checksum, then
//! thirteen 8-digit hex fields), the NUL-terminated name padded to 4 bytes, and the data
//! padded to 4 bytes. The archive ends with the entry `TRAILER!!!`. Every length is checked
//! against what is left of the input; any violation is an [`Error`] with its offset, never
//! a panic.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::types::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::{Errno, O_CREAT, O_EXCL, O_WRONLY, Vfs};

const HEADER: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

/// Why an archive is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ends inside a header, name or data.
    Truncated,
    /// The magic is not `070701` or `070702`.
    BadMagic,
    /// A header field is not 8 hex digits.
    BadNumber,
    /// The name is empty, lacks its NUL, or holds a NUL.
    BadName,
    /// The archive ends without `TRAILER!!!`.
    NoTrailer,
}

/// A malformed archive: what and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Offset of the entry at fault.
    pub offset: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Truncated => "truncated",
            ErrorKind::BadMagic => "bad magic",
            ErrorKind::BadNumber => "bad header field",
            ErrorKind::BadName => "bad name",
            ErrorKind::NoTrailer => "no trailer",
        };
        write!(f, "{what} at offset {}", self.offset)
    }
}

impl core::error::Error for Error {}

/// One archive member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Inode number in the archive (hard links share it).
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time (seconds).
    pub mtime: u32,
    /// Device of the original file (major, minor).
    pub dev: (u32, u32),
    /// Device number of a device file (major, minor).
    pub rdev: (u32, u32),
    /// The path, without its NUL.
    pub name: &'a [u8],
    /// The content (a symbolic link's target).
    pub data: &'a [u8],
}

/// Iterates over the members of an archive, ending at the trailer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    offset: usize,
    done: bool,
}

/// Reads `archive`.
pub fn read(archive: &[u8]) -> Reader<'_> {
    Reader {
        input: archive,
        offset: 0,
        done: false,
    }
}

fn hex(field: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in field {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

fn pad4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

impl<'a> Reader<'a> {
    fn entry(&mut self) -> Result<Option<Entry<'a>>, Error> {
        let at = self.offset;
        let err = |kind| Error { kind, offset: at };
        let rest = self.input.get(at..).ok_or(err(ErrorKind::Truncated))?;
        if rest.is_empty() {
            return Err(err(ErrorKind::NoTrailer));
        }
        let header = rest.get(..HEADER).ok_or(err(ErrorKind::Truncated))?;
        if &header[..6] != b"070701" && &header[..6] != b"070702" {
            return Err(err(ErrorKind::BadMagic));
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            *v = hex(&header[6 + 8 * i..14 + 8 * i]).ok_or(err(ErrorKind::BadNumber))?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            size,
            dmaj,
            dmin,
            rmaj,
            rmin,
            namesize,
            _,
        ] = f;
        let namesize = namesize as usize;
        if namesize == 0 {
            return Err(err(ErrorKind::BadName));
        }
        let name_end = HEADER
            .checked_add(namesize)
            .ok_or(err(ErrorKind::Truncated))?;
        let name = rest
            .get(HEADER..name_end)
            .ok_or(err(ErrorKind::Truncated))?;
        let (nul, name) = name.split_last().ok_or(err(ErrorKind::BadName))?;
        if *nul != 0 || name.contains(&0) {
            return Err(err(ErrorKind::BadName));
        }
        let data_start = pad4(name_end).ok_or(err(ErrorKind::Truncated))?;
        let data_end = data_start
            .checked_add(size as usize)
            .ok_or(err(ErrorKind::Truncated))?;
        let data = rest
            .get(data_start..data_end)
            .ok_or(err(ErrorKind::Truncated))?;
        if name == TRAILER {
            self.done = true;
            return Ok(None);
        }
        let next = pad4(data_end).ok_or(err(ErrorKind::Truncated))?;
        // The padding after the last member may be cut off at the end of the input.
        self.offset = at.saturating_add(next).min(self.input.len());
        Ok(Some(Entry {
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            dev: (dmaj, dmin),
            rdev: (rmaj, rmin),
            name,
            data,
        }))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Checks the whole archive; returns its members.
pub fn parse(archive: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    read(archive).collect()
}

/// Unpacks `archive` under `/` of `vfs`: directories, regular files (hard links kept),
/// symbolic links; other types are skipped with a warning. The whole archive is checked
/// before anything is written, so a malformed one changes nothing. Members that cannot be
/// created (a file below a non-directory, say) are logged and skipped, as Linux does.
/// Returns the number of members created.
pub fn unpack(vfs: &Vfs, archive: &[u8]) -> Result<usize, Error> {
    let entries = parse(archive)?;
    let mut links: BTreeMap<(u32, u32, u32), Vec<u8>> = BTreeMap::new();
    let mut created = 0;
    for e in entries {
        let mut path = Vec::with_capacity(e.name.len() + 1);
        path.push(b'/');
        let trimmed = e.name.strip_prefix(b"./").unwrap_or(e.name);
        path.extend_from_slice(trimmed.strip_prefix(b"/").unwrap_or(trimmed));
        if path == b"/" || path == b"/." {
            continue;
        }
        let parent_end = path.iter().rposition(|&c| c == b'/').unwrap_or(0);
        if parent_end > 0 {
            let _ = vfs.mkdir_all(&path[..parent_end]);
        }
        let perm = e.mode & 0o7777;
        let result = match e.mode & S_IFMT {
            S_IFDIR => match vfs.mkdir(&path, perm) {
                Err(Errno::EEXIST) => Ok(()),
                r => r,
            },
            S_IFREG => unpack_file(vfs, &e, &path, perm, &mut links),
            S_IFLNK => vfs.symlink(e.data, &path),
            _ => {
                log::warn!(
                    "initrd: {}: file type {:o} not supported, skipped",
                    core::str::from_utf8(&path).unwrap_or("?"),
                    e.mode & S_IFMT
                );
                continue;
            }
        };
        match result {
            Ok(()) => created += 1,
            Err(errno) => log::warn!(
                "initrd: {}: {errno:?}, skipped",
                core::str::from_utf8(&path).unwrap_or("?")
            ),
        }
    }
    Ok(created)
}

fn unpack_file(
    vfs: &Vfs,
    e: &Entry<'_>,
    path: &[u8],
    perm: u32,
    links: &mut BTreeMap<(u32, u32, u32), Vec<u8>>,
) -> Result<(), Errno> {
    let key = (e.ino, e.dev.0, e.dev.1);
    if e.nlink > 1 {
        if let Some(first) = links.get(&key) {
            vfs.link(first.as_slice(), path)?;
            if !e.data.is_empty() {
                vfs.write_file(path, e.data, perm)?;
            }
            return Ok(());
        }
        links.insert(key, path.to_vec());
    }
    let fd = vfs.open(path, O_WRONLY | O_CREAT | O_EXCL, perm)?;
    let _ = vfs.close(fd);
    vfs.write_file(path, e.data, perm)
}

/// Builds a `newc` archive (for tests and tools): `(path, mode, data)` per member, then
/// the trailer.
pub fn build(members: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |ino: usize, name: &[u8], mode: u32, data: &[u8]| {
        let fields = [
            ino as u32,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            for shift in (0..8).rev() {
                let d = (f >> (shift * 4)) & 0xf;
                out.push(b"0123456789abcdef"[d as usize]);
            }
        }
        out.extend_from_slice(name);
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (i, (name, mode, data)) in members.iter().enumerate() {
        put(i + 1, name, *mode, data);
    }
    put(0, TRAILER, 0, &[]);
    out
}
