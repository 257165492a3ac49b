//! The two seams a filesystem implements: [`FileSystem`] and [`Vnode`].

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;

use crate::Errno;
use crate::mmap::{MapKind, SharedMap};
use crate::types::{FileType, Stat, StatFs, TimeChange};

/// A shared reference to a vnode.
pub type VnodeRef = Arc<dyn Vnode>;

/// A mountable filesystem.
pub trait FileSystem: Send + Sync {
    /// Short name (`"ramfs"`, `"devfs"`), as `/proc/mounts` would show it.
    fn name(&self) -> &'static str;
    /// The root directory.
    fn root(&self) -> VnodeRef;
    /// What `statfs` reports; filesystems that cannot say refuse with `ENOSYS`, as Linux
    /// does for those without a `statfs` operation.
    fn statfs(&self) -> Result<StatFs, Errno> {
        Err(Errno::ENOSYS)
    }
}

/// What [`Vnode::create`] makes.
#[derive(Debug, Clone, Copy)]
pub enum NewNode<'a> {
    /// An empty regular file.
    File,
    /// An empty directory.
    Directory,
    /// A symbolic link to the given target.
    Symlink(&'a [u8]),
}

/// One directory entry, as [`Vnode::read_dir`] hands it out.
#[derive(Debug, Clone, Copy)]
pub struct DirEntry<'a> {
    /// The name.
    pub name: &'a [u8],
    /// Its inode number.
    pub ino: u64,
    /// Its type.
    pub file_type: FileType,
    /// The position that resumes the listing just after this entry.
    pub next: u64,
}

/// A file, directory, link or device of a mounted filesystem.
///
/// Every method has a default that gives Linux's error for a node of the wrong kind, so a
/// filesystem implements only what its nodes do. The VFS does the path walking, the checks
/// that do not depend on the filesystem (name lengths, `.` and `..`, mount points) and the
/// open-file state (offsets, flags); a vnode does what touches its own data.
///
/// Directory positions below 2 belong to the VFS (`.` and `..`); a filesystem's
/// [`Vnode::read_dir`] positions start at 2 and must stay valid across insertions and
/// removals, so a listing resumed at any position loses and repeats no entry that was
/// present throughout.
pub trait Vnode: Send + Sync + Any {
    /// Status of the node.
    fn stat(&self) -> Stat;
    /// Type of the node (cheaper than [`Vnode::stat`]).
    fn file_type(&self) -> FileType;
    /// This node as [`Any`], so a filesystem recognises its own nodes (rename, link).
    fn as_any(&self) -> &dyn Any;

    /// The child named `name` (a directory; never `.` or `..`).
    fn lookup(&self, _name: &[u8]) -> Result<VnodeRef, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// The parent directory within this filesystem, `None` at its root (or once removed).
    fn parent(&self) -> Option<VnodeRef> {
        None
    }
    /// A directory's name in its parent (for `getcwd`); `None` at the root or once removed.
    fn dir_name(&self) -> Option<Vec<u8>> {
        None
    }
    /// Creates `name` in this directory; `EEXIST` if it exists.
    fn create(&self, _name: &[u8], _kind: NewNode<'_>, _mode: u32) -> Result<VnodeRef, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Adds the hard link `name` to `target` in this directory.
    fn link(&self, _name: &[u8], _target: &VnodeRef) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Removes the non-directory `name` (`EISDIR` for a directory).
    fn unlink(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Removes the empty directory `name` (`ENOTDIR`, `ENOTEMPTY`).
    fn rmdir(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Moves `old` of this directory to `new` in `new_dir` with rename(2)'s rules; the VFS
    /// has checked that `new_dir` is on the same mount and that a directory is not moved
    /// into itself.
    fn rename(
        &self,
        _old: &[u8],
        _new_dir: &VnodeRef,
        _new: &[u8],
        _flags: u32,
    ) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Lists entries from position `pos` (≥ 2), calling `sink` until it returns `false`.
    fn read_dir(
        &self,
        _pos: u64,
        _sink: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Whether a directory has no entries.
    fn is_empty_dir(&self) -> bool {
        false
    }
    /// A symbolic link's target.
    fn readlink(&self) -> Result<Arc<[u8]>, Errno> {
        Err(Errno::EINVAL)
    }
    /// Reads at `offset`; `nonblock` asks for `EAGAIN` instead of waiting.
    fn read_at(&self, _offset: u64, _buf: &mut [u8], _nonblock: bool) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// Writes at `offset`.
    fn write_at(&self, _offset: u64, _buf: &[u8], _nonblock: bool) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// Appends at the current end in one step; returns the bytes written and the new end.
    fn append(&self, buf: &[u8], nonblock: bool) -> Result<(usize, u64), Errno> {
        let end = self.stat().size;
        let n = self.write_at(end, buf, nonblock)?;
        Ok((n, end + n as u64))
    }
    /// Sets the size of a regular file.
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
    /// `SEEK_DATA` (`hole == false`) or `SEEK_HOLE` from `offset` (below the size): the
    /// next offset in data or in a hole. The default has no holes.
    fn seek_data(&self, offset: u64, hole: bool) -> Result<u64, Errno> {
        Ok(if hole { self.stat().size } else { offset })
    }
    /// Whether offsets mean anything (regular files, directories); a device that returns
    /// `false` ignores offsets and `lseek` reports 0.
    fn seekable(&self) -> bool {
        true
    }
    /// Writes what the node holds back to its storage (`fsync`/`fdatasync`). Nodes whose
    /// data lives only in memory have nothing to do; a filesystem backed by a server or a
    /// device sends its data there.
    fn sync(&self) -> Result<(), Errno> {
        Ok(())
    }
    /// A device's ioctl: `arg` is the caller's argument buffer, sized for `request`.
    fn ioctl(&self, _request: u32, _arg: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::ENOTTY)
    }
    /// Changes the permission bits.
    fn set_mode(&self, _mode: u32) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    /// Changes the access and modification times (`utimensat`); the change time becomes
    /// the current time. Never called with both changes [`TimeChange::Omit`]. Nodes that
    /// keep no times refuse with `EPERM`.
    fn set_times(&self, _atime: TimeChange, _mtime: TimeChange) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    /// Changes the owner and group (`chown` family); `None` leaves that id alone (the
    /// caller's `-1`). The caller is root, so any ids are allowed. As Linux's `chown`, also
    /// when both are `None`: the change time becomes the current time, and a non-directory
    /// loses its set-user-ID bit, and its set-group-ID bit if group-execute is set. A
    /// filesystem whose server applies chown's rules itself (9P) just forwards the ids.
    /// Nodes that cannot store owners refuse with `EPERM`, as Linux does for them.
    fn set_owner(&self, _uid: Option<u32>, _gid: Option<u32>) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    /// `fallocate` on a regular file for `[offset, offset + len)` (the VFS has checked the
    /// range and that the file is regular): grows the file to at least `offset + len`
    /// bytes, never shrinking it, unless `keep_size` (`FALLOC_FL_KEEP_SIZE`). The new bytes
    /// read as zeros. The default reserves nothing and grows the file with
    /// [`Vnode::stat`] and [`Vnode::truncate`], which a concurrent writer extending the
    /// file could race; a filesystem that can grow in one step overrides it (ramfs does).
    fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> Result<(), Errno> {
        let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
        if keep_size || self.stat().size >= end {
            return Ok(());
        }
        self.truncate(end)
    }
    /// How `mmap` maps the node ([`crate::mmap`]): by default a regular file is
    /// [`MapKind::File`] (private mappings copy it through [`Vnode::read_at`]) and anything
    /// else [`MapKind::Unmappable`] (`ENODEV`).
    fn map_kind(&self) -> MapKind {
        if self.file_type() == FileType::Regular {
            MapKind::File
        } else {
            MapKind::Unmappable
        }
    }
    /// A shared mapping of the file's pages `[first, first + pages)` (pages of 4096
    /// bytes; they may lie past the end of file): page-aligned contiguous memory that the
    /// node's own reads and writes use from now on, kept valid while the [`SharedMap`]
    /// lives. The default refuses with `ENODEV` (a filesystem whose data is elsewhere, a
    /// 9P server say, cannot keep such memory coherent); ramfs implements it.
    fn map_shared(&self, _first: u64, _pages: usize) -> Result<SharedMap, Errno> {
        Err(Errno::ENODEV)
    }

    /// The file's seals (`F_GET_SEALS`: `F_SEAL_*` bits). The default: a file that
    /// takes no seals, `EINVAL`.
    fn seals(&self) -> Result<u32, Errno> {
        Err(Errno::EINVAL)
    }

    /// Adds `seals` (`F_ADD_SEALS`; the caller checked they are known `F_SEAL_*` bits).
    /// The default: a file that takes no seals, `EINVAL`. A file that does returns `EPERM`
    /// once it holds `F_SEAL_SEAL` and `EBUSY` for `F_SEAL_WRITE` while it is mapped
    /// shared, and then changes nothing.
    fn add_seals(&self, _seals: u32) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
}

/// Whether two vnode references name the same node.
#[inline]
pub fn same(a: &VnodeRef, b: &VnodeRef) -> bool {
    core::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}
