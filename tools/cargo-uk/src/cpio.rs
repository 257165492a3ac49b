//! A CPIO "newc" (SVR4, no CRC) archive writer: a directory given as `initrd` is packed into
//! one and handed to QEMU with `-initrd`.
//!
//! Each entry is a 110-byte ASCII header (magic `070701` and thirteen 8-digit hexadecimal
//! fields), the NUL-terminated path name padded to 4 bytes, then the data padded to 4 bytes;
//! the archive ends with the entry `TRAILER!!!`. Paths are relative to the packed directory
//! (`etc/hosts`, no leading `./`), directories come before their contents, entries are in
//! name order (the archive is the same for the same tree), and regular files, directories
//! and symbolic links are packed with their permission bits; owners are 0 and times are 0
//! so that the image does not depend on who built it or when.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Entry kinds (the `S_IFMT` bits of `mode`).
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// One archive member before it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive (`/`-separated, relative).
    pub name: String,
    /// File type and permission bits.
    pub mode: u32,
    /// File contents, or the target of a symbolic link.
    pub data: Vec<u8>,
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// Appends one newc member (header, name, data) to `out`.
pub fn write_entry(out: &mut Vec<u8>, ino: u32, entry: &Entry) -> io::Result<()> {
    let too_big = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
    let size = u32::try_from(entry.data.len())
        .map_err(|_| too_big(format!("{} is larger than 4 GiB", entry.name)))?;
    let namesize =
        u32::try_from(entry.name.len() + 1).map_err(|_| too_big("name too long".to_owned()))?;
    let nlink = if entry.mode & S_IFDIR == S_IFDIR {
        2
    } else {
        1
    };
    let fields = [
        ino, entry.mode, 0, // uid
        0, // gid
        nlink, 0, // mtime
        size, 0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        namesize, 0, // check
    ];
    write!(out, "070701")?;
    for f in fields {
        write!(out, "{f:08X}")?;
    }
    out.extend_from_slice(entry.name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(&entry.data);
    pad4(out);
    Ok(())
}

/// Writes `entries` and the trailer as one archive.
pub fn archive(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = u32::try_from(i + 1).unwrap_or(u32::MAX);
        write_entry(&mut out, ino, e)?;
    }
    write_entry(
        &mut out,
        0,
        &Entry {
            name: "TRAILER!!!".to_owned(),
            mode: 0,
            data: Vec::new(),
        },
    )?;
    Ok(out)
}

/// Collects the entries of the tree under `dir`, directories before their contents, in
/// name order. Anything other than files, directories and symbolic links (sockets, FIFOs,
/// devices) is refused.
pub fn collect(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    walk(dir, Path::new(""), &mut entries)?;
    Ok(entries)
}

fn walk(root: &Path, rel: &Path, entries: &mut Vec<Entry>) -> io::Result<()> {
    let mut children: Vec<PathBuf> = std::fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| rel.join(e.file_name())))
        .collect::<io::Result<_>>()?;
    children.sort();
    for child in children {
        let full = root.join(&child);
        let meta = std::fs::symlink_metadata(&full)?;
        let name = child
            .to_str()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not UTF-8", full.display()),
                )
            })?
            .replace(std::path::MAIN_SEPARATOR, "/");
        let perm = permissions(&meta);
        let ft = meta.file_type();
        if ft.is_dir() {
            entries.push(Entry {
                name,
                mode: S_IFDIR | perm,
                data: Vec::new(),
            });
            walk(root, &child, entries)?;
        } else if ft.is_file() {
            entries.push(Entry {
                name,
                mode: S_IFREG | perm,
                data: std::fs::read(&full)?,
            });
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&full)?;
            entries.push(Entry {
                name,
                mode: S_IFLNK | 0o777,
                data: target.to_string_lossy().into_owned().into_bytes(),
            });
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a file, directory or symbolic link",
                    full.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// Packs the directory `dir` into a newc archive.
pub fn pack_dir(dir: &Path) -> io::Result<Vec<u8>> {
    archive(&collect(dir)?)
}

/// A parsed archive member (for tests and for checking what was packed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Path inside the archive.
    pub name: String,
    /// Type and permission bits.
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
}

/// Reads a newc archive back, up to its trailer.
pub fn read(archive: &[u8]) -> Result<Vec<Member>, String> {
    let mut members = Vec::new();
    let mut pos = 0usize;
    let field = |at: usize, i: usize| -> Result<u32, String> {
        let start = at + 6 + i * 8;
        let text = archive
            .get(start..start + 8)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or("truncated header")?;
        u32::from_str_radix(text, 16).map_err(|_| format!("bad header field {text:?}"))
    };
    loop {
        if archive.get(pos..pos + 6) != Some(b"070701") {
            return Err(format!("no newc magic at offset {pos}"));
        }
        let mode = field(pos, 1)?;
        let size = field(pos, 6)? as usize;
        let namesize = field(pos, 11)? as usize;
        let name_start = pos + 110;
        let name = archive
            .get(name_start..name_start + namesize.saturating_sub(1))
            .ok_or("truncated name")?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| "name not UTF-8")?;
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data = archive
            .get(data_start..data_start + size)
            .ok_or("truncated data")?;
        pos = (data_start + size).next_multiple_of(4);
        if name == "TRAILER!!!" {
            return Ok(members);
        }
        members.push(Member {
            name,
            mode,
            data: data.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_newc() {
        let mut out = Vec::new();
        let e = Entry {
            name: "a".into(),
            mode: S_IFREG | 0o644,
            data: b"hello".to_vec(),
        };
        write_entry(&mut out, 1, &e).unwrap();
        // 110-byte header, "a\0" padded to 112, 5 data bytes padded to 120.
        assert_eq!(out.len(), 120);
        let header = std::str::from_utf8(&out[..110]).unwrap();
        assert_eq!(
            header,
            "070701\
             00000001\
             000081A4\
             00000000\
             00000000\
             00000001\
             00000000\
             00000005\
             00000000\
             00000000\
             00000000\
             00000000\
             00000002\
             00000000"
        );
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..117], b"hello");
        assert_eq!(&out[117..], &[0, 0, 0]);
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let a = archive(&[]).unwrap();
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        assert_eq!(read(&a).unwrap(), []);
    }

    #[test]
    fn directory_round_trip() {
        let dir = std::env::temp_dir().join(format!("cargo-uk-cpio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/empty")).unwrap();
        std::fs::write(dir.join("hello.txt"), "hello, initrd\n").unwrap();
        std::fs::write(dir.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(dir.join("etc/three"), "abc").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("etc/hosts", dir.join("link")).unwrap();
        let bytes = pack_dir(&dir).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let members = read(&bytes).unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let mut expected = vec!["etc", "etc/empty", "etc/hosts", "etc/three", "hello.txt"];
        if cfg!(unix) {
            expected.push("link");
        }
        assert_eq!(names, expected);
        let find = |n: &str| members.iter().find(|m| m.name == n).unwrap();
        assert_eq!(find("etc").mode & 0o170_000, S_IFDIR);
        assert_eq!(find("hello.txt").data, b"hello, initrd\n");
        assert_eq!(find("hello.txt").mode & 0o170_000, S_IFREG);
        assert_eq!(find("etc/three").data, b"abc");
        if cfg!(unix) {
            assert_eq!(find("link").mode & 0o170_000, S_IFLNK);
            assert_eq!(find("link").data, b"etc/hosts");
        }
        // The same tree gives the same archive.
        assert_eq!(pack_dir(&dir).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(pack_dir(&dir).is_err());
    }

    #[test]
    fn gnu_cpio_reads_our_archives() {
        // Checked against GNU cpio where it is installed.
        let Ok(mut child) = std::process::Command::new("cpio")
            .arg("-it")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            return;
        };
        let entries = [
            Entry {
                name: "dir".into(),
                mode: S_IFDIR | 0o755,
                data: Vec::new(),
            },
            Entry {
                name: "dir/file".into(),
                mode: S_IFREG | 0o644,
                data: b"some bytes".to_vec(),
            },
        ];
        let bytes = archive(&entries).unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "dir\ndir/file\n");
    }

    #[test]
    fn reader_rejects_garbage() {
        assert!(read(b"").is_err());
        assert!(read(b"070702").is_err());
        let mut a = archive(&[Entry {
            name: "x".into(),
            mode: S_IFREG,
            data: vec![1; 10],
        }])
        .unwrap();
        a.truncate(115);
        assert!(read(&a).is_err());
    }
}
