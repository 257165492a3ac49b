//! Linux's constants and records: open flags, file modes, `struct stat`, `statx`, dirents.

use crate::Errno;

/// Open for reading only.
pub const O_RDONLY: u32 = 0;
/// Open for writing only.
pub const O_WRONLY: u32 = 0o1;
/// Open for reading and writing.
pub const O_RDWR: u32 = 0o2;
/// Mask of the access mode.
pub const O_ACCMODE: u32 = 0o3;
/// Create the file if it does not exist.
pub const O_CREAT: u32 = 0o100;
/// With `O_CREAT`: fail with `EEXIST` if the name exists.
pub const O_EXCL: u32 = 0o200;
/// Do not make a terminal the controlling terminal (accepted, no effect).
pub const O_NOCTTY: u32 = 0o400;
/// Truncate a regular file to length 0.
pub const O_TRUNC: u32 = 0o1000;
/// Every write appends.
pub const O_APPEND: u32 = 0o2000;
/// Never block: `EAGAIN` instead.
pub const O_NONBLOCK: u32 = 0o4000;
/// Synchronised data writes (accepted; memory is always in sync).
pub const O_DSYNC: u32 = 0o10000;
/// Signal-driven I/O (accepted, no effect).
pub const O_ASYNC: u32 = 0o20000;
/// Fail with `ENOTDIR` unless the path names a directory.
#[cfg(not(target_arch = "aarch64"))]
pub const O_DIRECTORY: u32 = 0o200000;
/// Fail with `ENOTDIR` unless the path names a directory.
#[cfg(target_arch = "aarch64")]
pub const O_DIRECTORY: u32 = 0o40000;
/// Fail with `ELOOP` if the last component is a symbolic link.
#[cfg(not(target_arch = "aarch64"))]
pub const O_NOFOLLOW: u32 = 0o400000;
/// Fail with `ELOOP` if the last component is a symbolic link.
#[cfg(target_arch = "aarch64")]
pub const O_NOFOLLOW: u32 = 0o100000;
/// Direct I/O (accepted, no effect).
#[cfg(not(target_arch = "aarch64"))]
pub const O_DIRECT: u32 = 0o40000;
/// Direct I/O (accepted, no effect).
#[cfg(target_arch = "aarch64")]
pub const O_DIRECT: u32 = 0o200000;
/// Large file offsets: implied on 64-bit Linux, reported by `F_GETFL`.
#[cfg(not(target_arch = "aarch64"))]
pub const O_LARGEFILE: u32 = 0o100000;
/// Large file offsets: implied on 64-bit Linux, reported by `F_GETFL`.
#[cfg(target_arch = "aarch64")]
pub const O_LARGEFILE: u32 = 0o400000;
/// Do not update the access time (accepted, no effect).
pub const O_NOATIME: u32 = 0o1000000;
/// Close the descriptor on `execve`.
pub const O_CLOEXEC: u32 = 0o2000000;
/// Synchronised writes (accepted).
pub const O_SYNC: u32 = 0o4010000;
/// A path-only descriptor (not supported: `EINVAL`).
pub const O_PATH: u32 = 0o10000000;
/// An unnamed temporary file (not supported: `EOPNOTSUPP`).
pub const O_TMPFILE: u32 = 0o20000000;

/// The flags `F_SETFL` may change (Linux's `SETFL_MASK` less `O_DIRECT`'s checks).
pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | O_NDELAY | O_ASYNC | O_DIRECT | O_NOATIME;
/// Old name of `O_NONBLOCK`.
pub const O_NDELAY: u32 = O_NONBLOCK;

/// `*at` calls: the path is relative to the working directory.
pub const AT_FDCWD: i32 = -100;
/// `*at` calls: do not follow a final symbolic link.
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
/// `unlinkat`: remove a directory.
pub const AT_REMOVEDIR: u32 = 0x200;
/// `linkat`: follow a final symbolic link.
pub const AT_SYMLINK_FOLLOW: u32 = 0x400;
/// `faccessat`: check with the effective ids.
pub const AT_EACCESS: u32 = 0x200;
/// `fstatat`/`statx`: an empty path means `dirfd` itself.
pub const AT_EMPTY_PATH: u32 = 0x1000;
/// `statx`: do not trigger an automount (accepted).
pub const AT_NO_AUTOMOUNT: u32 = 0x800;
/// `statx` sync-type bits (accepted).
pub const AT_STATX_SYNC_TYPE: u32 = 0x6000;
/// `renameat2`: fail if the new name exists.
pub const RENAME_NOREPLACE: u32 = 1;

/// The flags `fchownat` accepts.
pub const FCHOWNAT_FLAGS: u32 = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH;

/// `flock`: a shared lock (any number of open files may hold one).
pub const LOCK_SH: u32 = 1;
/// `flock`: an exclusive lock (no other open file holds any lock on the file).
pub const LOCK_EX: u32 = 2;
/// `flock`: or-ed into `LOCK_SH` or `LOCK_EX`, fail with `EWOULDBLOCK` instead of waiting.
pub const LOCK_NB: u32 = 4;
/// `flock`: release the lock.
pub const LOCK_UN: u32 = 8;
/// `flock`: the old "mandatory" requests, which Linux ignores (success, nothing changes).
pub const LOCK_MAND: u32 = 32;

/// `fallocate` mode: allocate without changing the size.
pub const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
/// `fallocate` mode: make a hole (with `FALLOC_FL_KEEP_SIZE` only).
pub const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
/// `fallocate` mode: remove a range, moving what follows down.
pub const FALLOC_FL_COLLAPSE_RANGE: u32 = 0x08;
/// `fallocate` mode: zero a range.
pub const FALLOC_FL_ZERO_RANGE: u32 = 0x10;
/// `fallocate` mode: insert a hole, moving what follows up.
pub const FALLOC_FL_INSERT_RANGE: u32 = 0x20;
/// `fallocate` mode: unshare shared blocks.
pub const FALLOC_FL_UNSHARE_RANGE: u32 = 0x40;
/// `fallocate` mode: write zeroes to the medium (Linux 6.17).
pub const FALLOC_FL_WRITE_ZEROES: u32 = 0x80;

/// `posix_fadvise`: no advice.
pub const POSIX_FADV_NORMAL: u32 = 0;
/// `posix_fadvise`: random access expected.
pub const POSIX_FADV_RANDOM: u32 = 1;
/// `posix_fadvise`: sequential access expected.
pub const POSIX_FADV_SEQUENTIAL: u32 = 2;
/// `posix_fadvise`: the range will be needed soon.
pub const POSIX_FADV_WILLNEED: u32 = 3;
/// `posix_fadvise`: the range will not be needed soon.
pub const POSIX_FADV_DONTNEED: u32 = 4;
/// `posix_fadvise`: the range will be accessed once.
pub const POSIX_FADV_NOREUSE: u32 = 5;

/// Most bytes one call moves (Linux's `MAX_RW_COUNT`: `INT_MAX` rounded down to a page);
/// `sendfile` and `copy_file_range` stop there.
pub const MAX_RW_COUNT: usize = 0x7fff_f000;

/// `access`: the file exists.
pub const F_OK: u32 = 0;
/// `access`: execute/search permission.
pub const X_OK: u32 = 1;
/// `access`: write permission.
pub const W_OK: u32 = 2;
/// `access`: read permission.
pub const R_OK: u32 = 4;

/// Mask of the file-type bits of a mode.
pub const S_IFMT: u32 = 0o170000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Block device.
pub const S_IFBLK: u32 = 0o60000;
/// Directory.
pub const S_IFDIR: u32 = 0o40000;
/// Character device.
pub const S_IFCHR: u32 = 0o20000;
/// FIFO (pipe).
pub const S_IFIFO: u32 = 0o10000;
/// Set-user-ID bit.
pub const S_ISUID: u32 = 0o4000;
/// Set-group-ID bit (on a directory: what is made in it takes its group, directories
/// inherit the bit).
pub const S_ISGID: u32 = 0o2000;
/// Sticky bit (on a directory: only owners may remove or rename its entries).
pub const S_ISVTX: u32 = 0o1000;

/// `lseek`: from the start.
pub const SEEK_SET: u32 = 0;
/// `lseek`: from the current offset.
pub const SEEK_CUR: u32 = 1;
/// `lseek`: from the end.
pub const SEEK_END: u32 = 2;
/// `lseek`: the next data at or after the offset.
pub const SEEK_DATA: u32 = 3;
/// `lseek`: the next hole at or after the offset.
pub const SEEK_HOLE: u32 = 4;

/// `fcntl`: duplicate to the lowest free fd at or above `arg`.
pub const F_DUPFD: u32 = 0;
/// `fcntl`: read the descriptor flags (`FD_CLOEXEC`).
pub const F_GETFD: u32 = 1;
/// `fcntl`: set the descriptor flags.
pub const F_SETFD: u32 = 2;
/// `fcntl`: read the file status flags.
pub const F_GETFL: u32 = 3;
/// `fcntl`: set the file status flags.
pub const F_SETFL: u32 = 4;
/// `fcntl`: as `F_DUPFD`, with close-on-exec set.
pub const F_DUPFD_CLOEXEC: u32 = 1030;
/// `fcntl`: add seals (the argument) to a file that takes them (a memfd).
pub const F_ADD_SEALS: u32 = 1033;
/// `fcntl`: the file's seals.
pub const F_GET_SEALS: u32 = 1034;
/// Seal: no seal may be added any more.
pub const F_SEAL_SEAL: u32 = 1;
/// Seal: the file may not shrink.
pub const F_SEAL_SHRINK: u32 = 2;
/// Seal: the file may not grow.
pub const F_SEAL_GROW: u32 = 4;
/// Seal: the contents may not change (no `write`, no shared writable mapping).
pub const F_SEAL_WRITE: u32 = 8;
/// Seal: as `F_SEAL_WRITE`, except for shared writable mappings made before it.
pub const F_SEAL_FUTURE_WRITE: u32 = 16;
/// Seal: the execute permission bits may not change.
pub const F_SEAL_EXEC: u32 = 32;
/// Every seal Linux knows.
pub const F_ALL_SEALS: u32 =
    F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;
/// `memfd_create`: close the descriptor on `execve`.
pub const MFD_CLOEXEC: u32 = 1;
/// `memfd_create`: the file takes seals (else it starts sealed with `F_SEAL_SEAL`).
pub const MFD_ALLOW_SEALING: u32 = 2;
/// `memfd_create`: huge pages (not offered: `EINVAL`).
pub const MFD_HUGETLB: u32 = 4;
/// `memfd_create`: not executable, and sealed so (`F_SEAL_EXEC`); implies sealing.
pub const MFD_NOEXEC_SEAL: u32 = 8;
/// `memfd_create`: executable (the default).
pub const MFD_EXEC: u32 = 0x10;
/// Longest `memfd_create` name, its NUL left out (Linux's `NAME_MAX` less `"memfd:"`).
pub const MFD_NAME_MAX: usize = 249;
/// Descriptor flag: close on `execve`.
pub const FD_CLOEXEC: u32 = 1;

/// Longest path, including its terminating NUL.
pub const PATH_MAX: usize = 4096;
/// Longest file name.
pub const NAME_MAX: usize = 255;
/// Symbolic links followed in one lookup before `ELOOP` (Linux's `MAXSYMLINKS`).
pub const MAXSYMLINKS: u32 = 40;
/// Writes of at most this many bytes to a pipe are atomic.
pub const PIPE_BUF: usize = 4096;
/// Capacity of a pipe in bytes (Linux's default: 16 pages).
pub const PIPE_CAPACITY: usize = 65536;
/// Default size of the fd table (Linux's default `RLIMIT_NOFILE` soft limit).
pub const DEFAULT_MAX_FDS: usize = 1024;
/// Hard ceiling of the fd table (Linux's `fs.nr_open` default).
pub const NR_OPEN: usize = 1024 * 1024;

/// `d_type`: unknown.
pub const DT_UNKNOWN: u8 = 0;
/// `d_type`: FIFO.
pub const DT_FIFO: u8 = 1;
/// `d_type`: character device.
pub const DT_CHR: u8 = 2;
/// `d_type`: directory.
pub const DT_DIR: u8 = 4;
/// `d_type`: regular file.
pub const DT_REG: u8 = 8;
/// `d_type`: symbolic link.
pub const DT_LNK: u8 = 10;

/// The kind of a file, from the type bits of its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// FIFO.
    Fifo,
}

impl FileType {
    /// The `S_IF*` bits of this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => S_IFREG,
            FileType::Directory => S_IFDIR,
            FileType::Symlink => S_IFLNK,
            FileType::CharDevice => S_IFCHR,
            FileType::Fifo => S_IFIFO,
        }
    }

    /// The `DT_*` value of this type.
    pub const fn dirent_type(self) -> u8 {
        match self {
            FileType::Regular => DT_REG,
            FileType::Directory => DT_DIR,
            FileType::Symlink => DT_LNK,
            FileType::CharDevice => DT_CHR,
            FileType::Fifo => DT_FIFO,
        }
    }
}

/// A point in time (seconds and nanoseconds since the epoch of the VFS clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timespec {
    /// Whole seconds.
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

/// `utimensat`'s `tv_nsec` that means "the current time".
pub const UTIME_NOW: i64 = (1 << 30) - 1;
/// `utimensat`'s `tv_nsec` that means "leave this time unchanged".
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// The flags `utimensat` accepts.
pub const UTIMENSAT_FLAGS: u32 = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH;

/// What `utimensat` does to one of a file's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeChange {
    /// Leave it unchanged (`UTIME_OMIT`).
    Omit,
    /// Set it to the current time (`UTIME_NOW`, or a `NULL` times array).
    Now,
    /// Set it to this time.
    Set(Timespec),
}

impl TimeChange {
    /// Decodes a C `struct timespec` as `utimensat` reads it: `UTIME_NOW`, `UTIME_OMIT`, or
    /// a time whose nanoseconds are in `0..1_000_000_000` (anything else is `EINVAL`).
    pub fn from_timespec(sec: i64, nsec: i64) -> Result<TimeChange, Errno> {
        match nsec {
            UTIME_NOW => Ok(TimeChange::Now),
            UTIME_OMIT => Ok(TimeChange::Omit),
            0..1_000_000_000 => Ok(TimeChange::Set(Timespec {
                sec,
                nsec: nsec as u32,
            })),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The new value of a time that is now `current`, with `now` the current time.
    pub fn apply(self, current: Timespec, now: Timespec) -> Timespec {
        match self {
            TimeChange::Omit => current,
            TimeChange::Now => now,
            TimeChange::Set(t) => t,
        }
    }
}

/// Makes a Linux device number from a major and a minor number.
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (major as u64, minor as u64);
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// The major number of a Linux device number.
pub const fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

/// The minor number of a Linux device number.
pub const fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// What `stat` reports about a file, independent of the architecture's record layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Device of the filesystem holding the file.
    pub dev: u64,
    /// Inode number, unique within `dev`.
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Number of hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number, for a device file.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O size.
    pub blksize: u32,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last modification of the data.
    pub mtime: Timespec,
    /// Last change of the inode.
    pub ctime: Timespec,
    /// Creation.
    pub btime: Timespec,
}

impl Stat {
    /// The file's type, from its mode.
    pub fn file_type(&self) -> Option<FileType> {
        Some(match self.mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            S_IFCHR => FileType::CharDevice,
            S_IFIFO => FileType::Fifo,
            _ => return None,
        })
    }

    /// Size of this architecture's `struct stat`.
    #[cfg(not(target_arch = "aarch64"))]
    pub const RAW_SIZE: usize = 144;
    /// Size of this architecture's `struct stat`.
    #[cfg(target_arch = "aarch64")]
    pub const RAW_SIZE: usize = 128;

    /// This architecture's `struct stat` (x86_64 layout), in native byte order.
    #[cfg(not(target_arch = "aarch64"))]
    pub fn to_raw(&self) -> [u8; Self::RAW_SIZE] {
        let mut out = [0u8; Self::RAW_SIZE];
        let mut w = Writer(&mut out, 0);
        w.u64(self.dev);
        w.u64(self.ino);
        w.u64(self.nlink as u64);
        w.u32(self.mode);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u32(0);
        w.u64(self.rdev);
        w.u64(self.size);
        w.u64(self.blksize as u64);
        w.u64(self.blocks);
        for t in [self.atime, self.mtime, self.ctime] {
            w.u64(t.sec as u64);
            w.u64(t.nsec as u64);
        }
        out
    }

    /// This architecture's `struct stat` (asm-generic layout), in native byte order.
    #[cfg(target_arch = "aarch64")]
    pub fn to_raw(&self) -> [u8; Self::RAW_SIZE] {
        let mut out = [0u8; Self::RAW_SIZE];
        let mut w = Writer(&mut out, 0);
        w.u64(self.dev);
        w.u64(self.ino);
        w.u32(self.mode);
        w.u32(self.nlink);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u64(self.rdev);
        w.u64(0);
        w.u64(self.size);
        w.u32(self.blksize);
        w.u32(0);
        w.u64(self.blocks);
        for t in [self.atime, self.mtime, self.ctime] {
            w.u64(t.sec as u64);
            w.u64(t.nsec as u64);
        }
        out
    }

    /// Size of `struct statx`.
    pub const STATX_SIZE: usize = 256;

    /// `struct statx` with every basic field (`STATX_BASIC_STATS | STATX_BTIME`) filled.
    pub fn to_statx(&self) -> [u8; Self::STATX_SIZE] {
        let mut out = [0u8; Self::STATX_SIZE];
        let mut w = Writer(&mut out, 0);
        w.u32(STATX_BASIC_STATS | STATX_BTIME);
        w.u32(self.blksize);
        w.u64(0); // attributes
        w.u32(self.nlink);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u16(self.mode as u16);
        w.u16(0);
        w.u64(self.ino);
        w.u64(self.size);
        w.u64(self.blocks);
        w.u64(0); // attributes_mask
        for t in [self.atime, self.btime, self.ctime, self.mtime] {
            w.u64(t.sec as u64);
            w.u32(t.nsec);
            w.u32(0);
        }
        w.u32(major(self.rdev));
        w.u32(minor(self.rdev));
        w.u32(major(self.dev));
        w.u32(minor(self.dev));
        out
    }
}

/// `statx` mask: the fields of `stat`.
pub const STATX_BASIC_STATS: u32 = 0x7ff;
/// `statx` mask: the creation time.
pub const STATX_BTIME: u32 = 0x800;

/// `statfs` type of Linux's ramfs (what [`crate::RamFs`] reports).
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;
/// `statfs` type of Linux's tmpfs and devtmpfs (what [`crate::DevFs`] reports).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `statfs` type of the pipe filesystem (what `fstatfs` on a pipe reports).
pub const PIPEFS_MAGIC: u64 = 0x5049_5045;
/// `statfs` type of the anonymous-inode filesystem (what `fstatfs` on an eventfd or an
/// epoll set reports).
pub const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;
/// `statfs` flag: the `f_flags` field is valid (Linux always sets it).
pub const ST_VALID: u64 = 0x0020;

/// What `statfs` reports about a filesystem (Linux's `struct statfs`). Sizes are in units
/// of `frsize`; a filesystem without a size (ramfs) reports zero blocks and inodes, as
/// Linux's ramfs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFs {
    /// The filesystem's type, a magic number (`RAMFS_MAGIC`, ...).
    pub fs_type: u64,
    /// Preferred I/O block size.
    pub bsize: u64,
    /// Size in `frsize` units.
    pub blocks: u64,
    /// Free units.
    pub bfree: u64,
    /// Free units an unprivileged user may use.
    pub bavail: u64,
    /// Inodes in total.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Filesystem id.
    pub fsid: [u32; 2],
    /// Longest file name.
    pub namelen: u64,
    /// Fragment size: the unit of `blocks`, `bfree` and `bavail`.
    pub frsize: u64,
    /// Mount flags (`ST_VALID` and the `ST_*` bits).
    pub flags: u64,
}

impl StatFs {
    /// Size of `struct statfs` on x86_64 and aarch64 (the same layout on both).
    pub const RAW_SIZE: usize = 120;

    /// A filesystem kept in memory without a size: `fs_type`, 4 KiB blocks, `NAME_MAX`.
    pub const fn in_memory(fs_type: u64) -> StatFs {
        StatFs {
            fs_type,
            bsize: 4096,
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files: 0,
            ffree: 0,
            fsid: [0; 2],
            namelen: NAME_MAX as u64,
            frsize: 4096,
            flags: ST_VALID,
        }
    }

    /// The `struct statfs` bytes, in native byte order (the four spare words zero).
    pub fn to_raw(&self) -> [u8; Self::RAW_SIZE] {
        let mut out = [0u8; Self::RAW_SIZE];
        let mut w = Writer(&mut out, 0);
        for v in [
            self.fs_type,
            self.bsize,
            self.blocks,
            self.bfree,
            self.bavail,
            self.files,
            self.ffree,
        ] {
            w.u64(v);
        }
        w.u32(self.fsid[0]);
        w.u32(self.fsid[1]);
        for v in [self.namelen, self.frsize, self.flags] {
            w.u64(v);
        }
        out
    }
}

struct Writer<'a>(&'a mut [u8], usize);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.0[self.1..self.1 + bytes.len()].copy_from_slice(bytes);
        self.1 += bytes.len();
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_ne_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_ne_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_ne_bytes());
    }
}

/// Size of a `linux_dirent64` record holding a name of `name_len` bytes: the 19-byte
/// header, the name, its NUL, rounded up to 8.
pub const fn dirent_reclen(name_len: usize) -> usize {
    (19 + name_len + 1 + 7) & !7
}

/// Encodes one `linux_dirent64` record into `out` (exactly [`dirent_reclen`] bytes).
pub fn encode_dirent(out: &mut [u8], ino: u64, next: u64, dtype: u8, name: &[u8]) {
    let reclen = dirent_reclen(name.len());
    out[..8].copy_from_slice(&ino.to_ne_bytes());
    out[8..16].copy_from_slice(&next.to_ne_bytes());
    out[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
    out[18] = dtype;
    out[19..19 + name.len()].copy_from_slice(name);
    out[19 + name.len()..reclen].fill(0);
}

/// One `linux_dirent64` record read back from a `getdents64` buffer ([`dirents`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// `d_ino`.
    pub ino: u64,
    /// `d_off`: the position that resumes the listing after this record.
    pub off: u64,
    /// `d_type` (`DT_*`).
    pub dtype: u8,
    /// `d_name`, without its NUL padding.
    pub name: &'a [u8],
}

/// The records of a buffer `getdents64` filled (pass exactly the bytes it reported), in
/// order, for callers of the syscall or of [`crate::Vfs::getdents64`]. A record that does
/// not fit in the buffer, or whose `d_reclen` is too short for its header, ends the
/// iteration: bad input never panics.
///
/// ```
/// use uk_vfs::{O_DIRECTORY, O_RDONLY, RamFs, Vfs, dirents};
///
/// let vfs = Vfs::new(RamFs::new());
/// vfs.mkdir("/d", 0o755).unwrap();
/// vfs.write_file("/d/file", b"x", 0o644).unwrap();
/// let fd = vfs.open("/d", O_RDONLY | O_DIRECTORY, 0).unwrap();
/// let mut buf = [0u8; 256];
/// let n = vfs.getdents64(fd, &mut buf).unwrap();
/// let names: Vec<&[u8]> = dirents(&buf[..n]).map(|d| d.name).collect();
/// assert_eq!(names, [&b"."[..], b"..", b"file"]);
/// ```
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = Dirent<'_>> {
    let mut rest = buf;
    core::iter::from_fn(move || {
        let header = rest.get(..19)?;
        let word = |at: usize| u64::from_ne_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let reclen = usize::from(u16::from_ne_bytes([header[16], header[17]]));
        let record = rest.get(19..reclen)?;
        let len = record.iter().position(|&c| c == 0).unwrap_or(record.len());
        let dirent = Dirent {
            ino: word(0),
            off: word(8),
            dtype: header[18],
            name: &record[..len],
        };
        rest = &rest[reclen..];
        Some(dirent)
    })
}
