//! devfs: `/dev/null`, `/dev/zero`, `/dev/random`, `/dev/urandom`, `/dev/console` and
//! the `/dev/shm` directory.
//!
//! A fixed directory of character devices with Linux's device numbers and modes, and one
//! empty directory, `shm`, for a filesystem to be mounted on: the image's VFS mounts a
//! ramfs there ([`crate::global::vfs`]), the tmpfs a Linux system has at `/dev/shm`, where
//! musl's `shm_open` and `sem_open` create their objects.
//! `/dev/random` and `/dev/urandom` read from `uk-random`'s image-wide generator (as in
//! Linux 5.6 and later they differ only before the first seed, which this generator never
//! serves). `/dev/console` writes to the sink the image sets with [`set_console`] and
//! behaves as a terminal for `ioctl` (`TCGETS`, `TCSETS*`, `TIOCGWINSZ`, `TIOCSWINSZ`); it
//! has no input: a non-blocking read fails with `EAGAIN` as on Linux, and a blocking read
//! returns end of file (0) where Linux would wait forever for a key nobody can press.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;

use spin::{Mutex, Once};

use crate::Errno;
use crate::ramfs::anonymous_dev;
use crate::types::{FileType, S_IFCHR, S_IFDIR, Stat, StatFs, TMPFS_MAGIC, makedev};
use crate::vnode::{DirEntry, FileSystem, Vnode, VnodeRef};

/// `ioctl`: read the terminal attributes (`struct termios`, 36 bytes).
pub const TCGETS: u32 = 0x5401;
/// `ioctl`: set the terminal attributes now.
pub const TCSETS: u32 = 0x5402;
/// `ioctl`: set the terminal attributes after output drains.
pub const TCSETSW: u32 = 0x5403;
/// `ioctl`: set the terminal attributes after output drains, dropping input.
pub const TCSETSF: u32 = 0x5404;
/// `ioctl`: read the window size (`struct winsize`, 8 bytes).
pub const TIOCGWINSZ: u32 = 0x5413;
/// `ioctl`: set the window size.
pub const TIOCSWINSZ: u32 = 0x5414;
/// Size of the kernel's `struct termios`.
pub const TERMIOS_SIZE: usize = 36;
/// Size of `struct winsize`.
pub const WINSIZE_SIZE: usize = 8;

static CONSOLE: Once<&'static dyn uk_hal::Console> = Once::new();

/// Sets where `/dev/console` writes go (the board console); first call wins. Before it,
/// writes are accepted and dropped.
pub fn set_console(console: &'static dyn uk_hal::Console) {
    CONSOLE.call_once(|| console);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Zero,
    Random,
    Urandom,
    Console,
}

const DEVICES: [(&[u8], Kind, u32, u32, u32); 5] = [
    (b"console", Kind::Console, 5, 1, 0o600),
    (b"null", Kind::Null, 1, 3, 0o666),
    (b"random", Kind::Random, 1, 8, 0o666),
    (b"urandom", Kind::Urandom, 1, 9, 0o666),
    (b"zero", Kind::Zero, 1, 5, 0o666),
];

/// The device filesystem (mount it at `/dev`).
pub struct DevFs {
    root: Arc<DevDir>,
}

struct DevDir {
    dev: u64,
    ino: u64,
    nodes: Vec<Arc<Device>>,
    /// `shm`, an empty directory (the root only).
    shm: Option<Arc<DevDir>>,
}

/// The name of devfs's one subdirectory.
const SHM: &[u8] = b"shm";

struct Device {
    kind: Kind,
    name: &'static [u8],
    ino: u64,
    dev: u64,
    rdev: u64,
    perm: u32,
    tty: Mutex<([u8; TERMIOS_SIZE], [u8; WINSIZE_SIZE])>,
}

impl DevFs {
    /// A devfs holding the five devices and the empty `shm` directory.
    pub fn new() -> Arc<Self> {
        let dev = anonymous_dev();
        let nodes = DEVICES
            .iter()
            .enumerate()
            .map(|(i, &(name, kind, major, minor, perm))| {
                Arc::new(Device {
                    kind,
                    name,
                    ino: i as u64 + 2,
                    dev,
                    rdev: makedev(major, minor),
                    perm,
                    tty: Mutex::new((default_termios(), default_winsize())),
                })
            })
            .collect();
        let shm = Arc::new(DevDir {
            dev,
            ino: DEVICES.len() as u64 + 2,
            nodes: Vec::new(),
            shm: None,
        });
        Arc::new(DevFs {
            root: Arc::new(DevDir {
                dev,
                ino: 1,
                nodes,
                shm: Some(shm),
            }),
        })
    }
}

impl FileSystem for DevFs {
    fn name(&self) -> &'static str {
        "devfs"
    }
    fn root(&self) -> VnodeRef {
        self.root.clone()
    }
    fn statfs(&self) -> Result<StatFs, Errno> {
        Ok(StatFs::in_memory(TMPFS_MAGIC))
    }
}

/// A cooked terminal at 38400 baud, as Linux's `tty_std_termios` (`c_cc` as in
/// `INIT_C_CC`).
fn default_termios() -> [u8; TERMIOS_SIZE] {
    let mut t = [0u8; TERMIOS_SIZE];
    let iflag: u32 = 0o2400; // ICRNL | IXON
    let oflag: u32 = 0o5; // OPOST | ONLCR
    let cflag: u32 = 0o277; // B38400 | CS8 | CREAD | HUPCL
    let lflag: u32 = 0o105073; // ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN
    t[0..4].copy_from_slice(&iflag.to_ne_bytes());
    t[4..8].copy_from_slice(&oflag.to_ne_bytes());
    t[8..12].copy_from_slice(&cflag.to_ne_bytes());
    t[12..16].copy_from_slice(&lflag.to_ne_bytes());
    let cc: [u8; 17] = [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0];
    t[17..34].copy_from_slice(&cc);
    t
}

fn default_winsize() -> [u8; WINSIZE_SIZE] {
    let mut w = [0u8; WINSIZE_SIZE];
    w[0..2].copy_from_slice(&24u16.to_ne_bytes());
    w[2..4].copy_from_slice(&80u16.to_ne_bytes());
    w
}

impl DevDir {
    /// Name, inode number and type of each entry: the devices, then `shm`.
    fn entries(&self) -> impl Iterator<Item = (&'static [u8], u64, FileType)> + '_ {
        self.nodes
            .iter()
            .map(|n| (n.name, n.ino, FileType::CharDevice))
            .chain(self.shm.iter().map(|d| (SHM, d.ino, FileType::Directory)))
    }
}

impl Vnode for DevDir {
    fn stat(&self) -> Stat {
        Stat {
            dev: self.dev,
            ino: self.ino,
            mode: S_IFDIR | if self.shm.is_some() { 0o755 } else { 0o1777 },
            nlink: 2 + u32::from(self.shm.is_some()),
            size: (self.entries().count() as u64 + 2) * 20,
            blksize: 4096,
            ..Stat::default()
        }
    }
    fn file_type(&self) -> FileType {
        FileType::Directory
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> Result<VnodeRef, Errno> {
        if name.len() > crate::types::NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if name == SHM
            && let Some(shm) = &self.shm
        {
            return Ok(shm.clone());
        }
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.clone() as VnodeRef)
            .ok_or(Errno::ENOENT)
    }
    fn create(
        &self,
        name: &[u8],
        _kind: crate::vnode::NewNode<'_>,
        _mode: u32,
    ) -> Result<VnodeRef, Errno> {
        match self.lookup(name) {
            Ok(_) => Err(Errno::EEXIST),
            Err(_) => Err(Errno::EPERM),
        }
    }
    fn link(&self, _name: &[u8], _target: &VnodeRef) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        self.lookup(name).map(|_| ()).and(Err(Errno::EPERM))
    }
    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        let node = self.lookup(name)?;
        Err(if node.file_type() == FileType::Directory {
            Errno::EPERM
        } else {
            Errno::ENOTDIR
        })
    }
    fn rename(&self, old: &[u8], _nd: &VnodeRef, _new: &[u8], _flags: u32) -> Result<(), Errno> {
        self.lookup(old).map(|_| ()).and(Err(Errno::EPERM))
    }
    fn read_dir(&self, pos: u64, sink: &mut dyn FnMut(DirEntry<'_>) -> bool) -> Result<(), Errno> {
        for (i, (name, ino, file_type)) in
            self.entries().enumerate().skip((pos.max(2) - 2) as usize)
        {
            let e = DirEntry {
                name,
                ino,
                file_type,
                next: i as u64 + 3,
            };
            if !sink(e) {
                break;
            }
        }
        Ok(())
    }
    fn is_empty_dir(&self) -> bool {
        self.entries().next().is_none()
    }
}

impl Vnode for Device {
    fn stat(&self) -> Stat {
        Stat {
            dev: self.dev,
            ino: self.ino,
            mode: S_IFCHR | self.perm,
            nlink: 1,
            rdev: self.rdev,
            blksize: 4096,
            ..Stat::default()
        }
    }
    fn file_type(&self) -> FileType {
        FileType::CharDevice
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn seekable(&self) -> bool {
        false
    }
    /// `/dev/zero` maps as anonymous memory (Linux's `mmap_zero`); the other devices have
    /// no `mmap` (`ENODEV`).
    fn map_kind(&self) -> crate::mmap::MapKind {
        if self.kind == Kind::Zero {
            crate::mmap::MapKind::Zero
        } else {
            crate::mmap::MapKind::Unmappable
        }
    }
    fn read_at(&self, _offset: u64, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        match self.kind {
            Kind::Null => Ok(0),
            Kind::Zero => {
                buf.fill(0);
                Ok(buf.len())
            }
            Kind::Random | Kind::Urandom => {
                uk_random::fill_bytes(buf).map_err(|_| Errno::EIO)?;
                Ok(buf.len())
            }
            Kind::Console if buf.is_empty() => Ok(0),
            Kind::Console if nonblock => Err(Errno::EAGAIN),
            Kind::Console => Ok(0),
        }
    }
    fn write_at(&self, _offset: u64, buf: &[u8], _nonblock: bool) -> Result<usize, Errno> {
        if self.kind == Kind::Console {
            if let Some(console) = CONSOLE.get() {
                // The terminal's ONLCR: "\n" goes out as "\r\n".
                for (i, line) in buf.split(|&c| c == b'\n').enumerate() {
                    if i > 0 {
                        console.write_bytes(b"\r\n");
                    }
                    console.write_bytes(line);
                }
            }
        }
        Ok(buf.len())
    }
    fn append(&self, buf: &[u8], nonblock: bool) -> Result<(usize, u64), Errno> {
        Ok((self.write_at(0, buf, nonblock)?, 0))
    }
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Ok(())
    }
    fn ioctl(&self, request: u32, arg: &mut [u8]) -> Result<usize, Errno> {
        if self.kind != Kind::Console {
            return Err(Errno::ENOTTY);
        }
        let mut tty = self.tty.lock();
        match request {
            TCGETS => arg.copy_from_slice(&tty.0),
            TCSETS | TCSETSW | TCSETSF => tty.0.copy_from_slice(arg),
            TIOCGWINSZ => arg.copy_from_slice(&tty.1),
            TIOCSWINSZ => tty.1.copy_from_slice(arg),
            _ => return Err(Errno::ENOTTY),
        }
        Ok(0)
    }
}

/// The argument size of a console `ioctl` request and whether the kernel writes it (`true`)
/// or reads it (`false`); `None` for a request without a buffer.
pub fn ioctl_arg(request: u32) -> Option<(usize, bool)> {
    match request {
        TCGETS => Some((TERMIOS_SIZE, true)),
        TCSETS | TCSETSW | TCSETSF => Some((TERMIOS_SIZE, false)),
        TIOCGWINSZ => Some((WINSIZE_SIZE, true)),
        TIOCSWINSZ => Some((WINSIZE_SIZE, false)),
        _ => None,
    }
}
