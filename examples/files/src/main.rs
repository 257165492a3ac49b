//! Files on uk-rs: the image's initrd (a newc CPIO archive given with QEMU `-initrd`) is
//! unpacked into the root ramfs; `main` lists the tree with `getdents64`, `lstat` and
//! `readlink` through the syscall table, and reads a file through a symbolic link with
//! `openat`/`read`, printing through `write(1, ...)` on `/dev/console`.
//!
//! ```text
//! cargo uk run -p files                       # x86-pc (cargo-uk packs rootfs/ as -initrd)
//! cargo uk run -p files --board qemu-virt     # aarch64
//! ```
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use uk_syscall::{Errno, Sysno, dispatch};
use uk_vfs::global::InitrdStatus;
use uk_vfs::{AT_FDCWD, O_DIRECTORY, O_RDONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Stat};

uk_app::main!(main);

/// A raw syscall through the table, folded into a `Result`.
fn sys(n: Sysno, args: [usize; 6]) -> Result<usize, Errno> {
    uk_syscall::errno(dispatch(n as usize, &args))
}

fn say(line: &str) {
    let line = format!("files: {line}\n");
    let _ = sys(
        Sysno::write,
        [1, line.as_ptr() as usize, line.len(), 0, 0, 0],
    );
}

fn c_path(path: &str) -> Vec<u8> {
    let mut v = Vec::from(path.as_bytes());
    v.push(0);
    v
}

fn lstat(path: &str) -> Result<Stat, Errno> {
    // The typed API for the record (the syscall fills the same fields into a C struct).
    uk_vfs::global::vfs().lstat(path)
}

#[derive(Default)]
struct Counts {
    files: usize,
    dirs: usize,
    links: usize,
}

fn names(dir: &str) -> Result<Vec<String>, Errno> {
    let p = c_path(dir);
    let fd = sys(
        Sysno::openat,
        [
            AT_FDCWD as usize,
            p.as_ptr() as usize,
            (O_RDONLY | O_DIRECTORY) as usize,
            0,
            0,
            0,
        ],
    )?;
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = sys(
            Sysno::getdents64,
            [fd, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )?;
        if n == 0 {
            break;
        }
        for d in uk_vfs::dirents(&buf[..n]) {
            if d.name != b"." && d.name != b".." {
                out.push(String::from_utf8_lossy(d.name).into_owned());
            }
        }
    }
    sys(Sysno::close, [fd, 0, 0, 0, 0, 0])?;
    out.sort();
    Ok(out)
}

fn walk(dir: &str, counts: &mut Counts) -> Result<(), Errno> {
    for name in names(dir)? {
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        if path == "/dev" {
            continue;
        }
        let st = lstat(&path)?;
        match st.mode & S_IFMT {
            S_IFDIR => {
                say(&format!("d {path}"));
                counts.dirs += 1;
                walk(&path, counts)?;
            }
            S_IFREG => {
                say(&format!("f {path} {}", st.size));
                counts.files += 1;
            }
            S_IFLNK => {
                let p = c_path(&path);
                let mut target = [0u8; 256];
                let n = sys(
                    Sysno::readlinkat,
                    [
                        AT_FDCWD as usize,
                        p.as_ptr() as usize,
                        target.as_mut_ptr() as usize,
                        256,
                        0,
                        0,
                    ],
                )?;
                say(&format!(
                    "l {path} -> {}",
                    String::from_utf8_lossy(&target[..n])
                ));
                counts.links += 1;
            }
            _ => say(&format!("? {path}")),
        }
    }
    Ok(())
}

fn main(_args: &uk_app::Args) -> Result<(), Errno> {
    let platform = uk_app::platform();
    uk_vfs::set_console(platform);
    match uk_vfs::global::init(platform.initrd()) {
        InitrdStatus::Unpacked(n) => say(&format!("initrd unpacked: {n} entries")),
        InitrdStatus::None => say("no initrd (boot with -initrd)"),
        InitrdStatus::Malformed(e) => say(&format!("initrd malformed: {e}")),
    }
    let mut counts = Counts::default();
    walk("/", &mut counts)?;
    let p = c_path("/srv/motd");
    let fd = sys(
        Sysno::openat,
        [
            AT_FDCWD as usize,
            p.as_ptr() as usize,
            O_RDONLY as usize,
            0,
            0,
            0,
        ],
    )?;
    let mut buf = [0u8; 128];
    let n = sys(
        Sysno::read,
        [fd, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
    )?;
    sys(Sysno::close, [fd, 0, 0, 0, 0, 0])?;
    let text = String::from_utf8_lossy(&buf[..n]);
    say(&format!("/srv/motd says: {}", text.trim_end()));
    say(&format!(
        "{} files, {} directories, {} link",
        counts.files, counts.dirs, counts.links
    ));
    Ok(())
}
