//! The [`Vfs`]: mounts, path lookup and the file operations of one process.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::{Mutex, RwLock};

use crate::Errno;
use crate::file::{Fd, FdTable, Object, OpenFile, Origin};
use crate::pipe;
use crate::record_lock;
use crate::transfer::each_buffer;
use crate::types::*;
use crate::vnode::{FileSystem, NewNode, VnodeRef, same};
use crate::wait::restarting;

/// A directory's position once a listing has reached its end (Linux's `DIR_OFFSET_EOD`,
/// `S32_MAX`): entries created later are not listed until the caller seeks back.
pub const DIR_END: u64 = i32::MAX as u64;

struct Mount {
    point: VnodeRef,
    root: VnodeRef,
    fs: Arc<dyn FileSystem>,
}

/// The locked descriptor table; on release it refreshes the lock-free "maybe full" hint.
struct TableGuard<'a> {
    table: spin::MutexGuard<'a, FdTable>,
    full: &'a core::sync::atomic::AtomicBool,
}

impl core::ops::Deref for TableGuard<'_> {
    type Target = FdTable;
    fn deref(&self) -> &FdTable {
        &self.table
    }
}

impl core::ops::DerefMut for TableGuard<'_> {
    fn deref_mut(&mut self) -> &mut FdTable {
        &mut self.table
    }
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        self.full.store(self.table.maybe_full(), Ordering::Relaxed);
    }
}

/// The last component of a path, as a parent walk leaves it.
#[derive(Debug, Clone, Copy)]
enum Last<'a> {
    Name(&'a [u8]),
    Dot,
    DotDot,
    Root,
}

/// A walk's result: the directory holding the last component, the component, and whether
/// the path ended in `/`.
struct Parent<'a> {
    dir: VnodeRef,
    last: Last<'a>,
    slash: bool,
}

/// One process's view of the filesystems: the mount table, the root, the working
/// directory, the umask and the descriptor table.
///
/// Paths are bytes (`&str` and `&[u8]` both work). Every method returns Linux's result
/// and `errno`; the syscall handlers in [`crate::syscalls`] are thin adapters over these.
pub struct Vfs {
    root: VnodeRef,
    mounts: RwLock<Vec<Mount>>,
    /// Mounts besides the root: path walks skip the mount table while it is 0.
    extra_mounts: core::sync::atomic::AtomicUsize,
    cwd: Mutex<VnodeRef>,
    umask: AtomicU32,
    fds: Mutex<FdTable>,
    /// `fds.maybe_full()`, readable without the lock; refreshed after every change.
    fds_full: core::sync::atomic::AtomicBool,
    /// Where the table's limit comes from when the process layer owns `RLIMIT_NOFILE`.
    limit_source: spin::Once<fn() -> usize>,
    /// This table's identity as the owner of POSIX record locks (unique, never reused).
    id: u64,
    /// Where the caller's process id comes from (record locks report it).
    pid_source: spin::Once<fn() -> i32>,
}

/// Hands out [`Vfs`] identities.
static NEXT_VFS_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl Drop for Vfs {
    fn drop(&mut self) {
        // The process's POSIX record locks go with its descriptor table.
        record_lock::release(None, record_lock::Owner::Process(self.id));
    }
}

impl Vfs {
    /// A VFS whose root is the root of `fs`; working directory `/`, umask `022`, no open
    /// descriptors, a limit of 1024 descriptors.
    pub fn new(fs: Arc<dyn FileSystem>) -> Self {
        let root = fs.root();
        Vfs {
            root: root.clone(),
            mounts: RwLock::new(alloc::vec![Mount {
                point: root.clone(),
                root: root.clone(),
                fs,
            }]),
            extra_mounts: core::sync::atomic::AtomicUsize::new(0),
            cwd: Mutex::new(root),
            umask: AtomicU32::new(0o022),
            fds: Mutex::new(FdTable::new()),
            fds_full: core::sync::atomic::AtomicBool::new(false),
            limit_source: spin::Once::new(),
            id: NEXT_VFS_ID.fetch_add(1, Ordering::Relaxed),
            pid_source: spin::Once::new(),
        }
    }

    /// Takes the process id that record locks report (`F_GETLK`'s `l_pid`) from `source`
    /// from now on (first call wins): the process layer's `getpid`. Without one, locks
    /// report process 1.
    pub fn set_pid_source(&self, source: fn() -> i32) {
        self.pid_source.call_once(|| source);
    }

    /// The caller's process id, as [`Vfs::set_pid_source`] says.
    pub(crate) fn pid(&self) -> i32 {
        self.pid_source.get().map_or(1, |source| source())
    }

    /// This table's identity as a POSIX record lock owner.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Mounts `fs` on the directory `path` (`EBUSY` if something is mounted there).
    pub fn mount(&self, path: impl AsRef<[u8]>, fs: Arc<dyn FileSystem>) -> Result<(), Errno> {
        let point = self.resolve(AT_FDCWD, path.as_ref(), true)?;
        if point.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let mut mounts = self.mounts.write();
        if mounts
            .iter()
            .any(|m| same(&m.root, &point) || same(&m.point, &point))
        {
            return Err(Errno::EBUSY);
        }
        let root = fs.root();
        mounts.push(Mount { point, root, fs });
        self.extra_mounts.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Names of the mounted filesystems, in mount order.
    pub fn mounted(&self) -> Vec<&'static str> {
        self.mounts.read().iter().map(|m| m.fs.name()).collect()
    }

    /// The mount table as `/proc/mounts` lists it: each mount's absolute path and its
    /// filesystem's name, in mount order (a mount whose point was removed is left out).
    pub fn mount_table(&self) -> Vec<(Vec<u8>, &'static str)> {
        let mounts: Vec<(VnodeRef, &'static str)> = self
            .mounts
            .read()
            .iter()
            .map(|m| (m.point.clone(), m.fs.name()))
            .collect();
        mounts
            .into_iter()
            .filter_map(|(point, name)| Some((self.dir_path(point).ok()?, name)))
            .collect()
    }

    /// The open descriptors, lowest first (what `/proc/<pid>/fd` lists).
    pub fn fd_numbers(&self) -> Vec<Fd> {
        self.table().numbers().collect()
    }

    /// What `/proc/<pid>/fd/N` says descriptor `fd` is open on, as Linux names it: the
    /// absolute path of a file or directory opened by a path (a file's path is the one it
    /// was opened by, under the name its directory now gives it; ` (deleted)` once no
    /// directory does), `pipe:[INODE]`, `anon_inode:[eventfd]`, `anon_inode:[eventpoll]`,
    /// `anon_inode:[timerfd]`, `anon_inode:[signalfd]`, `anon_inode:[pidfd]`, or
    /// `/memfd:NAME (deleted)`.
    ///
    /// # Errors
    ///
    /// `EBADF` if `fd` is not open.
    pub fn fd_path(&self, fd: Fd) -> Result<Vec<u8>, Errno> {
        let f = self.file(fd)?;
        Ok(match &f.object {
            Object::Pipe(p) => alloc::format!("pipe:[{}]", p.stat().ino).into_bytes(),
            Object::EventFd(_) => b"anon_inode:[eventfd]".to_vec(),
            Object::Epoll(_) => b"anon_inode:[eventpoll]".to_vec(),
            Object::TimerFd(_) => b"anon_inode:[timerfd]".to_vec(),
            Object::SignalFd(_) => b"anon_inode:[signalfd]".to_vec(),
            Object::PidFd(_) => b"anon_inode:[pidfd]".to_vec(),
            Object::Node(node) => match &f.origin {
                Some(Origin::Label(label)) => label.to_vec(),
                _ if node.file_type() == FileType::Directory => {
                    self.dir_path(node.clone()).unwrap_or_else(|_| {
                        let mut p = node.dir_name().unwrap_or_default();
                        p.extend_from_slice(b" (deleted)");
                        p
                    })
                }
                Some(Origin::Entry(dir, name)) => self.entry_path(dir, name, node),
                None => b"(unreachable)".to_vec(),
            },
        })
    }

    /// The node `fd` is open on and where it was found (a procfs descriptor link leads
    /// there); `None` for pipes, eventfds, epoll sets and descriptors not open.
    pub(crate) fn fd_target(&self, fd: Fd) -> Option<(VnodeRef, Option<Origin>)> {
        let f = self.file(fd).ok()?;
        let node = f.object.node()?.clone();
        Some((node, f.origin.clone()))
    }

    /// The path of `node`, found as `name` in `dir`: under the name `dir` holds it by now
    /// (a rename within the directory is followed), or the old one with ` (deleted)`.
    fn entry_path(&self, dir: &VnodeRef, name: &[u8], node: &VnodeRef) -> Vec<u8> {
        let mut path = self.dir_path(dir.clone()).unwrap_or_default();
        if path != b"/" {
            path.push(b'/');
        }
        // Nodes a filesystem makes anew on each lookup (procfs) are the same file when
        // their device and inode numbers are.
        let st = node.stat();
        let is_node = |n: VnodeRef| {
            same(&n, node) || {
                let other = n.stat();
                other.dev == st.dev && other.ino == st.ino
            }
        };
        if dir.lookup(name).is_ok_and(is_node) {
            path.extend_from_slice(name);
            return path;
        }
        // Names with the node's inode number, checked after the listing (a filesystem may
        // hold its directory's lock while it lists).
        let mut candidates: Vec<Vec<u8>> = Vec::new();
        let _ = dir.read_dir(2, &mut |e| {
            if e.ino == st.ino {
                candidates.push(e.name.to_vec());
            }
            true
        });
        let now = candidates
            .into_iter()
            .find(|n| dir.lookup(n).is_ok_and(is_node));
        match now {
            Some(n) => path.extend_from_slice(&n),
            None => {
                path.extend_from_slice(name);
                path.extend_from_slice(b" (deleted)");
            }
        }
        path
    }

    // ----- descriptor table ------------------------------------------------------------

    /// Sets the size of the descriptor table (`RLIMIT_NOFILE`): new descriptors must be
    /// below `max`; descriptors already above it stay open. `EPERM` above `NR_OPEN`.
    pub fn set_max_fds(&self, max: usize) -> Result<(), Errno> {
        if max > NR_OPEN {
            return Err(Errno::EPERM);
        }
        self.table().set_max(max);
        Ok(())
    }

    /// Takes the size of the descriptor table from `source` from now on (first call wins),
    /// read again before every allocation of a descriptor: the process layer's
    /// `RLIMIT_NOFILE` soft limit (`uk_posix_process::nofile_limit`), which may change at any
    /// time. Values above `NR_OPEN` are clamped.
    pub fn set_max_fds_source(&self, source: fn() -> usize) {
        self.limit_source.call_once(|| source);
    }

    /// The size of the descriptor table.
    pub fn max_fds(&self) -> usize {
        self.table().max()
    }

    /// Number of open descriptors.
    pub fn open_fds(&self) -> usize {
        self.table().open_count()
    }

    /// Checks that `fd` is open for reading (`write == false`) or writing: `EBADF`
    /// otherwise. The syscall layer checks this before touching caller buffers, as Linux
    /// does.
    pub fn check_rw(&self, fd: Fd, write: bool) -> Result<(), Errno> {
        let f = self.file(fd)?;
        let ok = if write { f.writable() } else { f.readable() };
        if ok { Ok(()) } else { Err(Errno::EBADF) }
    }

    fn table(&self) -> TableGuard<'_> {
        let mut table = self.fds.lock();
        if let Some(source) = self.limit_source.get() {
            table.set_max(source().min(NR_OPEN));
        }
        TableGuard {
            table,
            full: &self.fds_full,
        }
    }

    pub(crate) fn file(&self, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
        self.table().get(fd).cloned()
    }

    /// Every open file description of the table, collected so the table lock is not held
    /// while they are used.
    pub(crate) fn open_files(&self) -> Vec<Arc<OpenFile>> {
        self.table().files().cloned().collect()
    }

    /// `EBADF` unless `fd` is open.
    pub(crate) fn check_fd(&self, fd: Fd) -> Result<(), Errno> {
        self.file(fd).map(|_| ())
    }

    /// Closes `fd`.
    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let old = self.table().take(i);
        match old {
            Some(file) => {
                self.release_posix_locks(&file);
                drop(file);
                Ok(())
            }
            None => Err(Errno::EBADF),
        }
    }

    /// Puts `file` on the lowest free descriptor.
    pub(crate) fn alloc_fd(&self, file: Arc<OpenFile>, cloexec: bool) -> Result<Fd, Errno> {
        self.table().alloc(0, file, cloexec)
    }

    /// Opens an anonymous object (epoll set, eventfd, timerfd, signalfd, pidfd) for reading
    /// and writing on the lowest free descriptor. Of `flags` (checked by the caller), the
    /// `O_NONBLOCK` bit becomes the file's status and `O_CLOEXEC` its close-on-exec: every
    /// `*_NONBLOCK` and `*_CLOEXEC` flag of those calls has these values, as on Linux.
    pub(crate) fn open_anonymous(&self, object: Object, flags: u32) -> Result<Fd, Errno> {
        let file = OpenFile::new(object, O_RDWR | (flags & O_NONBLOCK));
        self.alloc_fd(file, flags & O_CLOEXEC != 0)
    }

    /// Duplicates `fd` to the lowest free descriptor.
    pub fn dup(&self, fd: Fd) -> Result<Fd, Errno> {
        let mut t = self.table();
        let f = t.get(fd)?.clone();
        t.alloc(0, f, false)
    }

    /// Duplicates `old` onto `new`, closing what `new` was; `new` if `old == new`.
    pub fn dup2(&self, old: Fd, new: Fd) -> Result<Fd, Errno> {
        if old == new {
            return self.file(old).map(|_| new);
        }
        self.dup3(old, new, 0)
    }

    /// As [`Vfs::dup2`], with `flags` `0` or `O_CLOEXEC`; `EINVAL` if `old == new`.
    pub fn dup3(&self, old: Fd, new: Fd, flags: u32) -> Result<Fd, Errno> {
        if flags & !O_CLOEXEC != 0 || old == new {
            return Err(Errno::EINVAL);
        }
        let mut t = self.table();
        let f = t.get(old)?.clone();
        let slot = usize::try_from(new).map_err(|_| Errno::EBADF)?;
        if slot >= t.max() {
            return Err(Errno::EBADF);
        }
        let replaced = t.replace(slot, f, flags & O_CLOEXEC != 0);
        drop(t);
        if let Some(file) = &replaced {
            self.release_posix_locks(file);
        }
        drop(replaced);
        Ok(new)
    }

    /// `fcntl` with an integer argument: `F_DUPFD`, `F_DUPFD_CLOEXEC`, `F_GETFD`,
    /// `F_SETFD`, `F_GETFL`, `F_SETFL`, and a memfd's seals (`F_GET_SEALS`, `F_ADD_SEALS`:
    /// see [`crate::memfd`]; `EINVAL` for a file that takes none, `EPERM` to add seals
    /// through a descriptor not open for writing or to a file sealed with
    /// `F_SEAL_SEAL`); `EINVAL` for any other command.
    pub fn fcntl(&self, fd: Fd, cmd: u32, arg: usize) -> Result<usize, Errno> {
        let mut t = self.table();
        let f = t.get(fd)?.clone();
        match cmd {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                let min = arg as i32;
                if min < 0 || min as usize >= t.max() {
                    return Err(Errno::EINVAL);
                }
                t.alloc(min as usize, f, cmd == F_DUPFD_CLOEXEC)
                    .map(|fd| fd as usize)
            }
            F_GETFD => Ok(usize::from(t.cloexec(fd)?)),
            F_SETFD => t.set_cloexec(fd, arg & FD_CLOEXEC as usize != 0).map(|_| 0),
            F_GETFL => Ok(f.flags() as usize),
            F_SETFL => {
                let arg = arg as u32;
                let old = f.flags();
                f.flags
                    .store((old & !SETFL_MASK) | (arg & SETFL_MASK), Ordering::Relaxed);
                Ok(0)
            }
            F_GET_SEALS | F_ADD_SEALS => {
                drop(t);
                let node = f.object.node().ok_or(Errno::EINVAL)?;
                let seals = node.seals()?;
                if cmd == F_GET_SEALS {
                    return Ok(seals as usize);
                }
                // Linux's order: a file that takes no seals, then the access mode, then
                // unknown seals.
                if !f.writable() {
                    return Err(Errno::EPERM);
                }
                if arg & !(F_ALL_SEALS as usize) != 0 {
                    return Err(Errno::EINVAL);
                }
                node.add_seals(arg as u32).map(|()| 0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    // ----- path lookup -----------------------------------------------------------------

    fn is_mount_root(&self, node: &VnodeRef) -> bool {
        if self.extra_mounts.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.mounts
            .read()
            .iter()
            .skip(1)
            .any(|m| same(&m.root, node))
    }

    fn cross_mounts(&self, node: VnodeRef) -> VnodeRef {
        if self.extra_mounts.load(Ordering::Acquire) == 0 {
            return node;
        }
        let mounts = self.mounts.read();
        if mounts.len() == 1 {
            return node;
        }
        let mut node = node;
        'again: loop {
            for m in mounts.iter().skip(1) {
                if same(&m.point, &node) {
                    node = m.root.clone();
                    continue 'again;
                }
            }
            return node;
        }
    }

    fn parent_of(&self, dir: &VnodeRef) -> Result<VnodeRef, Errno> {
        let mut dir = dir.clone();
        loop {
            if same(&dir, &self.root) {
                return Ok(dir);
            }
            let point = self
                .mounts
                .read()
                .iter()
                .skip(1)
                .rev()
                .find(|m| same(&m.root, &dir))
                .map(|m| m.point.clone());
            match point {
                Some(p) => dir = p,
                None => {
                    return match dir.parent() {
                        Some(p) => Ok(self.cross_mounts(p)),
                        None => Err(Errno::ENOENT),
                    };
                }
            }
        }
    }

    fn lookup_child(&self, dir: &VnodeRef, name: &[u8]) -> Result<VnodeRef, Errno> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let node = dir.lookup(name)?;
        if self.extra_mounts.load(Ordering::Relaxed) != 0 && node.file_type() == FileType::Directory
        {
            Ok(self.cross_mounts(node))
        } else {
            Ok(node)
        }
    }

    /// Follows the symbolic link `link` found in `dir`. A procfs descriptor link
    /// (`/proc/<pid>/fd/N`) is a "magic" link, as on Linux: it leads to the open file's
    /// node itself (so an unlinked file still opens), not to the path its text names.
    /// `found` (when asked for) receives where the final node was found.
    fn follow(
        &self,
        dir: &VnodeRef,
        link: &VnodeRef,
        links: &mut u32,
        found: Option<&mut Option<Origin>>,
    ) -> Result<VnodeRef, Errno> {
        *links += 1;
        if *links > MAXSYMLINKS {
            return Err(Errno::ELOOP);
        }
        if let Some(fd_link) = link.as_any().downcast_ref::<crate::procfs::Node>()
            && let Some((node, origin)) = fd_link.fd_target()
        {
            if let Some(found) = found {
                *found = origin;
            }
            return Ok(node);
        }
        let target = link.readlink()?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.resolve_from(dir.clone(), &target, true, links, found)
    }

    fn walk_parent<'p>(
        &self,
        start: VnodeRef,
        path: &'p [u8],
        links: &mut u32,
    ) -> Result<Parent<'p>, Errno> {
        let mut cur = if path.first() == Some(&b'/') {
            self.root.clone()
        } else {
            start
        };
        let slash = path.ends_with(b"/");
        let mut comps = path
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .peekable();
        let mut last = Last::Root;
        while let Some(c) = comps.next() {
            if comps.peek().is_none() {
                last = match c {
                    b"." => Last::Dot,
                    b".." => Last::DotDot,
                    name => Last::Name(name),
                };
                break;
            }
            cur = match c {
                b"." => cur,
                b".." => self.parent_of(&cur)?,
                name => {
                    let mut n = self.lookup_child(&cur, name)?;
                    if n.file_type() == FileType::Symlink {
                        n = self.follow(&cur, &n, links, None)?;
                    }
                    if n.file_type() != FileType::Directory {
                        return Err(Errno::ENOTDIR);
                    }
                    n
                }
            };
        }
        Ok(Parent {
            dir: cur,
            last,
            slash,
        })
    }

    /// Resolves `path` from `start`; `found`, when given, receives where a non-directory
    /// result was found (its directory and name), for the paths procfs shows.
    fn resolve_from(
        &self,
        start: VnodeRef,
        path: &[u8],
        follow: bool,
        links: &mut u32,
        mut found: Option<&mut Option<Origin>>,
    ) -> Result<VnodeRef, Errno> {
        let p = self.walk_parent(start, path, links)?;
        let node = match p.last {
            Last::Root | Last::Dot => p.dir,
            Last::DotDot => self.parent_of(&p.dir)?,
            Last::Name(name) => {
                let mut node = self.lookup_child(&p.dir, name)?;
                if node.file_type() == FileType::Symlink && (follow || p.slash) {
                    node = self.follow(&p.dir, &node, links, found.as_deref_mut())?;
                } else if let Some(found) = found
                    && node.file_type() != FileType::Directory
                {
                    *found = Some(Origin::Entry(p.dir.clone(), name.into()));
                }
                node
            }
        };
        if p.slash && node.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(node)
    }

    fn check_path(path: &[u8]) -> Result<(), Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(())
    }

    fn start(&self, dirfd: Fd, path: &[u8]) -> Result<VnodeRef, Errno> {
        if path.first() == Some(&b'/') {
            return Ok(self.root.clone());
        }
        if dirfd == AT_FDCWD {
            return Ok(self.cwd.lock().clone());
        }
        let f = self.file(dirfd)?;
        match &f.object {
            Object::Node(n) if n.file_type() == FileType::Directory => Ok(n.clone()),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn resolve(&self, dirfd: Fd, path: &[u8], follow: bool) -> Result<VnodeRef, Errno> {
        Self::check_path(path)?;
        let start = self.start(dirfd, path)?;
        self.resolve_from(start, path, follow, &mut 0, None)
    }

    fn parent_at<'p>(&self, dirfd: Fd, path: &'p [u8]) -> Result<Parent<'p>, Errno> {
        Self::check_path(path)?;
        let start = self.start(dirfd, path)?;
        self.walk_parent(start, path, &mut 0)
    }

    // ----- open --------------------------------------------------------------------------

    /// Opens `path` relative to the working directory; see [`Vfs::openat`].
    pub fn open(&self, path: impl AsRef<[u8]>, flags: u32, mode: u32) -> Result<Fd, Errno> {
        self.openat(AT_FDCWD, path, flags, mode)
    }

    /// Opens `path` relative to `dirfd` with open(2)'s flags; returns the lowest free
    /// descriptor. `mode` (less the umask) is used when `O_CREAT` creates the file.
    pub fn openat(
        &self,
        dirfd: Fd,
        path: impl AsRef<[u8]>,
        flags: u32,
        mode: u32,
    ) -> Result<Fd, Errno> {
        let path = path.as_ref();
        if flags & O_TMPFILE == O_TMPFILE {
            return Err(Errno::EOPNOTSUPP);
        }
        if flags & O_DIRECTORY != 0 && flags & O_CREAT != 0 {
            return Err(Errno::EINVAL);
        }
        // EMFILE comes first, as in Linux (and O_CREAT must not create then). The hint
        // avoids taking the table lock twice when there is room.
        if self.fds_full.load(Ordering::Relaxed) || self.limit_source.get().is_some() {
            self.table().lowest_free(0)?;
        }
        let mut origin = None;
        let (node, created) = if flags & O_CREAT != 0 {
            let p = self.parent_at(dirfd, path)?;
            self.open_create(p, flags, mode, &mut 0, &mut origin)?
        } else {
            Self::check_path(path)?;
            let start = self.start(dirfd, path)?;
            let follow = flags & O_NOFOLLOW == 0;
            let node = self.resolve_from(start, path, follow, &mut 0, Some(&mut origin))?;
            if node.file_type() == FileType::Symlink {
                return Err(Errno::ELOOP);
            }
            (node, false)
        };
        let kind = node.file_type();
        if flags & O_DIRECTORY != 0 && kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let acc = flags & O_ACCMODE;
        if kind == FileType::Directory && (acc != O_RDONLY || flags & O_TRUNC != 0) {
            return Err(Errno::EISDIR);
        }
        if flags & O_TRUNC != 0 && kind == FileType::Regular && !created {
            node.truncate(0)?;
        }
        let keep = flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
        let file = OpenFile::with_origin(Object::Node(node), keep | O_LARGEFILE, origin);
        self.table().alloc(0, file, flags & O_CLOEXEC != 0)
    }

    fn open_create(
        &self,
        p: Parent<'_>,
        flags: u32,
        mode: u32,
        links: &mut u32,
        origin: &mut Option<Origin>,
    ) -> Result<(VnodeRef, bool), Errno> {
        let name = match p.last {
            Last::Name(name) => name,
            _ if flags & O_EXCL != 0 => return Err(Errno::EEXIST),
            _ => return Err(Errno::EISDIR),
        };
        if p.slash {
            return Err(Errno::EISDIR);
        }
        match self.lookup_child(&p.dir, name) {
            Ok(node) => {
                if flags & O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                if node.file_type() == FileType::Symlink {
                    if flags & O_NOFOLLOW != 0 {
                        return Err(Errno::ELOOP);
                    }
                    *links += 1;
                    if *links > MAXSYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    // A procfs descriptor link leads to the open file itself (see
                    // `follow`), which exists: nothing is created.
                    if let Some(fd_link) = node.as_any().downcast_ref::<crate::procfs::Node>()
                        && let Some((target, found)) = fd_link.fd_target()
                    {
                        if target.file_type() == FileType::Directory {
                            return Err(Errno::EISDIR);
                        }
                        *origin = found;
                        return Ok((target, false));
                    }
                    let target = node.readlink()?;
                    if target.is_empty() {
                        return Err(Errno::ENOENT);
                    }
                    let q = self.walk_parent(p.dir.clone(), &target, links)?;
                    return self.open_create(q, flags, mode, links, origin);
                }
                if node.file_type() == FileType::Directory {
                    return Err(Errno::EISDIR);
                }
                *origin = Some(Origin::Entry(p.dir.clone(), name.into()));
                Ok((node, false))
            }
            Err(Errno::ENOENT) => {
                let perm = mode & 0o7777 & !self.umask.load(Ordering::Relaxed);
                let node = p.dir.create(name, NewNode::File, perm)?;
                *origin = Some(Origin::Entry(p.dir.clone(), name.into()));
                Ok((node, true))
            }
            Err(e) => Err(e),
        }
    }

    // ----- data --------------------------------------------------------------------------

    /// `poll` without waiting: sets each entry's `revents` from its file's state now and
    /// returns how many entries have any. A negative `fd` is skipped (`revents` 0); one
    /// that is not open gets `POLLNVAL`. Pipes report their buffer and ends
    /// ([`crate::pipe::PipeEnd::poll_events`]); every other file is always ready
    /// ([`crate::poll::ALWAYS_READY`]). `POLLERR`, `POLLHUP` and `POLLNVAL` are reported
    /// whether asked for or not.
    pub fn poll(&self, fds: &mut [crate::PollFd]) -> usize {
        use crate::poll::{ALWAYS_READY, POLLERR, POLLHUP, POLLNVAL};
        let mut ready = 0;
        for entry in fds.iter_mut() {
            let events = if entry.fd < 0 {
                0
            } else {
                match self.file(entry.fd) {
                    Err(_) => POLLNVAL,
                    Ok(f) => {
                        let state = match &f.object {
                            Object::Epoll(ep) => ep.poll_events(),
                            Object::Node(_) => ALWAYS_READY,
                            other => other.own_readiness().map_or(0, |(events, _)| events),
                        };
                        state & (entry.events as u16 | POLLERR | POLLHUP)
                    }
                }
            };
            entry.revents = events as i16;
            ready += usize::from(events != 0);
        }
        ready
    }

    /// Reads from `fd` at its offset.
    ///
    /// A read that waits (a pipe, an eventfd) and is interrupted by a handler installed
    /// with `SA_RESTART` is made again from the lookup of `fd` (see [`crate::wait`]).
    pub fn read(&self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        restarting(|| self.read_once(fd, buf, false))
    }

    /// One attempt of [`Vfs::read`]; `dont_wait` reads as if `O_NONBLOCK` were set.
    pub(crate) fn read_once(
        &self,
        fd: Fd,
        buf: &mut [u8],
        dont_wait: bool,
    ) -> Result<usize, Errno> {
        let f = self.file(fd)?;
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        let nonblock = f.nonblock() || dont_wait;
        match &f.object {
            Object::Pipe(p) => p.read(buf, nonblock),
            Object::EventFd(e) => e.read(buf, nonblock),
            Object::TimerFd(t) => t.read(buf, nonblock),
            Object::SignalFd(s) => s.read(buf, nonblock),
            Object::PidFd(_) => Err(Errno::EINVAL),
            Object::Epoll(_) => Err(Errno::EINVAL),
            Object::Node(n) => {
                if n.file_type() == FileType::Directory {
                    return Err(Errno::EISDIR);
                }
                if !n.seekable() {
                    return n.read_at(0, buf, nonblock);
                }
                let mut pos = f.pos.lock();
                let got = n.read_at(*pos, buf, nonblock)?;
                *pos += got as u64;
                Ok(got)
            }
        }
    }

    /// Writes to `fd` at its offset (at the end with `O_APPEND`); restarted as
    /// [`Vfs::read`] is.
    pub fn write(&self, fd: Fd, buf: &[u8]) -> Result<usize, Errno> {
        restarting(|| self.write_once(fd, buf))
    }

    /// One attempt of [`Vfs::write`].
    pub(crate) fn write_once(&self, fd: Fd, buf: &[u8]) -> Result<usize, Errno> {
        let f = self.file(fd)?;
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        match &f.object {
            Object::Pipe(p) => p.write(buf, f.nonblock()),
            Object::EventFd(e) => e.write(buf, f.nonblock()),
            // Linux's timerfd has no write operation.
            Object::Epoll(_) | Object::TimerFd(_) | Object::SignalFd(_) | Object::PidFd(_) => {
                Err(Errno::EINVAL)
            }
            Object::Node(n) => {
                if !n.seekable() {
                    return n.write_at(0, buf, f.nonblock());
                }
                let mut pos = f.pos.lock();
                if f.flags() & O_APPEND != 0 {
                    let (put, end) = n.append(buf, f.nonblock())?;
                    *pos = end;
                    return Ok(put);
                }
                let put = n.write_at(*pos, buf, f.nonblock())?;
                *pos += put as u64;
                Ok(put)
            }
        }
    }

    fn positional(&self, fd: Fd, offset: i64) -> Result<(Arc<OpenFile>, VnodeRef), Errno> {
        let f = self.file(fd)?;
        let node = match &f.object {
            Object::Node(n) => n.clone(),
            _ => return Err(Errno::ESPIPE),
        };
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        Ok((f, node))
    }

    /// Reads at `offset` without moving the file offset.
    pub fn pread(&self, fd: Fd, buf: &mut [u8], offset: i64) -> Result<usize, Errno> {
        let (f, n) = self.positional(fd, offset)?;
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        if n.file_type() == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        n.read_at(offset as u64, buf, f.nonblock())
    }

    /// Writes at `offset` without moving the file offset (at the end with `O_APPEND`, as
    /// Linux does).
    pub fn pwrite(&self, fd: Fd, buf: &[u8], offset: i64) -> Result<usize, Errno> {
        let (f, n) = self.positional(fd, offset)?;
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        if f.flags() & O_APPEND != 0 {
            return n.append(buf, f.nonblock()).map(|(put, _)| put);
        }
        n.write_at(offset as u64, buf, f.nonblock())
    }

    /// Reads into several buffers in order (readv), as one read: it waits only while
    /// nothing has been read, so a pipe holding fewer bytes than the buffers' total gives
    /// what it holds (the buffers after the first are filled without waiting). Restarted
    /// as [`Vfs::read`] is.
    pub fn readv(&self, fd: Fd, bufs: &mut [&mut [u8]]) -> Result<usize, Errno> {
        restarting(|| {
            let total = each_buffer(bufs.len(), |i, done| match &mut *bufs[i] {
                [] => Ok((0, 0)),
                b => Ok((self.read_once(fd, b, done > 0)?, b.len())),
            })?;
            if total == 0 {
                // Still report EBADF/EISDIR for an empty vector, as Linux does.
                self.read_once(fd, &mut [], false)?;
            }
            Ok(total)
        })
    }

    /// Writes several buffers in order (writev). Into a pipe, buffers of at most
    /// `PIPE_BUF` bytes in all go in as one write, in one piece, as Linux's `writev` does;
    /// restarted as [`Vfs::read`] is.
    pub fn writev(&self, fd: Fd, bufs: &[&[u8]]) -> Result<usize, Errno> {
        restarting(|| {
            let total = bufs.iter().map(|b| b.len()).fold(0, usize::saturating_add);
            if self.writes_in_one_piece(fd, total)? {
                return self.write_once(fd, &bufs.concat());
            }
            let total = each_buffer(bufs.len(), |i, _| match bufs[i] {
                [] => Ok((0, 0)),
                b => Ok((self.write_once(fd, b)?, b.len())),
            })?;
            if total == 0 {
                self.write_once(fd, &[])?;
            }
            Ok(total)
        })
    }

    /// Whether a vectored write of `total` bytes to `fd` must go in as one write: into a
    /// pipe, up to `PIPE_BUF` bytes (`EBADF` when `fd` is not open).
    pub(crate) fn writes_in_one_piece(&self, fd: Fd, total: usize) -> Result<bool, Errno> {
        let pipe = matches!(self.file(fd)?.object, Object::Pipe(_));
        Ok(pipe && (1..=PIPE_BUF).contains(&total))
    }

    /// Moves the offset of `fd`; returns the new offset.
    pub fn lseek(&self, fd: Fd, offset: i64, whence: u32) -> Result<u64, Errno> {
        let f = self.file(fd)?;
        if whence > SEEK_HOLE && !matches!(f.object, Object::Pipe(_)) {
            return Err(Errno::EINVAL);
        }
        let n = match &f.object {
            Object::Pipe(_) => return Err(Errno::ESPIPE),
            Object::Node(n) => n,
            // Linux's anonymous-inode files seek with `noop_llseek`: the position stays 0.
            _ => return Ok(0),
        };
        if !n.seekable() {
            return Ok(0);
        }
        let dir = n.file_type() == FileType::Directory;
        let mut pos = f.pos.lock();
        let size = n.stat().size as i64;
        let new = match whence {
            SEEK_SET => Some(offset),
            SEEK_CUR => (*pos as i64).checked_add(offset),
            _ if dir => return Err(Errno::EINVAL),
            SEEK_END => size.checked_add(offset),
            _ => {
                if offset < 0 || offset >= size {
                    return Err(Errno::ENXIO);
                }
                Some(n.seek_data(offset as u64, whence == SEEK_HOLE)? as i64)
            }
        };
        match new {
            Some(v) if v >= 0 => {
                *pos = v as u64;
                Ok(v as u64)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Sets the size of the regular file `path`.
    pub fn truncate(&self, path: impl AsRef<[u8]>, len: i64) -> Result<(), Errno> {
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let node = self.resolve(AT_FDCWD, path.as_ref(), true)?;
        match node.file_type() {
            FileType::Directory => Err(Errno::EISDIR),
            FileType::Regular => node.truncate(len as u64),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Sets the size of the regular file open for writing on `fd`.
    pub fn ftruncate(&self, fd: Fd, len: i64) -> Result<(), Errno> {
        let f = self.file(fd)?;
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        match &f.object {
            Object::Node(n) if n.file_type() == FileType::Regular && f.writable() => {
                n.truncate(len as u64)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Flushes `fd` (memory is always in sync: checks the descriptor only).
    pub fn fsync(&self, fd: Fd) -> Result<(), Errno> {
        let f = self.file(fd)?;
        match &f.object {
            Object::Node(n) if matches!(n.file_type(), FileType::Regular | FileType::Directory) => {
                n.sync()
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `sync()`: asks every regular file and directory open in this VFS to write back what
    /// it holds ([`Vnode::sync`](crate::Vnode::sync), as `fsync` does); errors are ignored,
    /// as `sync` never fails. ramfs keeps everything in memory, so there it does nothing; a
    /// 9P file open for writing sends `Tfsync`. Files written and closed earlier are not
    /// reached (9P writes have gone to the server by then).
    pub fn sync(&self) {
        for f in self.open_files() {
            if let Object::Node(n) = &f.object {
                if matches!(n.file_type(), FileType::Regular | FileType::Directory) {
                    let _ = n.sync();
                }
            }
        }
    }

    /// `syncfs(fd)`: as [`Vfs::sync`], for the open files on the filesystem (the device
    /// number) of the file open as `fd`; returns the first error. Nothing to do for a pipe
    /// or in memory.
    pub fn syncfs(&self, fd: Fd) -> Result<(), Errno> {
        let dev = match &self.file(fd)?.object {
            Object::Node(n) => n.stat().dev,
            _ => return Ok(()),
        };
        let mut result = Ok(());
        for f in self.open_files() {
            if let Object::Node(n) = &f.object {
                if matches!(n.file_type(), FileType::Regular | FileType::Directory)
                    && n.stat().dev == dev
                {
                    let r = n.sync();
                    if result.is_ok() {
                        result = r;
                    }
                }
            }
        }
        result
    }

    /// A device `ioctl`; `arg` is the argument buffer (sized for the request).
    pub fn ioctl(&self, fd: Fd, request: u32, arg: &mut [u8]) -> Result<usize, Errno> {
        let f = self.file(fd)?;
        match &f.object {
            Object::Node(n) => n.ioctl(request, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    // ----- pipes -------------------------------------------------------------------------

    /// Makes a pipe; returns `[read end, write end]`. `flags`: `O_CLOEXEC`, `O_NONBLOCK`
    /// (and `O_DIRECT`, accepted).
    pub fn pipe2(&self, flags: u32) -> Result<[Fd; 2], Errno> {
        if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut t = self.table();
        let r = t.lowest_free(0)?;
        let w = t.lowest_free(r + 1)?;
        let (re, we) = pipe::pipe();
        let status = flags & O_NONBLOCK;
        let cloexec = flags & O_CLOEXEC != 0;
        t.install_at(
            r,
            OpenFile::new(Object::Pipe(re), O_RDONLY | status),
            cloexec,
        );
        t.install_at(
            w,
            OpenFile::new(Object::Pipe(we), O_WRONLY | status),
            cloexec,
        );
        Ok([r as Fd, w as Fd])
    }

    // ----- status ------------------------------------------------------------------------

    /// `stat`: follows a final symbolic link.
    pub fn stat(&self, path: impl AsRef<[u8]>) -> Result<Stat, Errno> {
        self.resolve(AT_FDCWD, path.as_ref(), true)
            .map(|n| n.stat())
    }

    /// `lstat`: a final symbolic link is reported itself.
    pub fn lstat(&self, path: impl AsRef<[u8]>) -> Result<Stat, Errno> {
        self.resolve(AT_FDCWD, path.as_ref(), false)
            .map(|n| n.stat())
    }

    /// `fstat`.
    pub fn fstat(&self, fd: Fd) -> Result<Stat, Errno> {
        let f = self.file(fd)?;
        Ok(match &f.object {
            Object::Node(n) => n.stat(),
            other => other.special_stat().unwrap_or_default(),
        })
    }

    /// `fstatat`/`newfstatat`/`statx` lookup: flags `AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`,
    /// `AT_NO_AUTOMOUNT` and the `statx` sync bits.
    pub fn fstatat(&self, dirfd: Fd, path: impl AsRef<[u8]>, flags: u32) -> Result<Stat, Errno> {
        let path = path.as_ref();
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)
            != 0
        {
            return Err(Errno::EINVAL);
        }
        if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
            if dirfd == AT_FDCWD {
                return Ok(self.cwd.lock().stat());
            }
            return self.fstat(dirfd);
        }
        self.resolve(dirfd, path, flags & AT_SYMLINK_NOFOLLOW == 0)
            .map(|n| n.stat())
    }

    /// `access`: checks as root does (read and write always; execute needs an `x` bit on a
    /// non-directory).
    pub fn access(&self, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        self.faccessat(AT_FDCWD, path, mode, 0)
    }

    /// `faccessat2`: flags `AT_EACCESS`, `AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`.
    pub fn faccessat(
        &self,
        dirfd: Fd,
        path: impl AsRef<[u8]>,
        mode: u32,
        flags: u32,
    ) -> Result<(), Errno> {
        if mode & !(R_OK | W_OK | X_OK) != 0
            || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0
        {
            return Err(Errno::EINVAL);
        }
        let st = self.fstatat(dirfd, path, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))?;
        if mode & X_OK != 0 && st.mode & S_IFMT != S_IFDIR && st.mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    // ----- directories -------------------------------------------------------------------

    /// Fills `buf` with `linux_dirent64` records from the directory `fd`'s position;
    /// returns the bytes used, 0 at the end. `EINVAL` if the next record does not fit.
    ///
    /// Once a listing has run into the end, the position is [`DIR_END`] and later calls
    /// return 0 until the caller seeks back, also when entries were added meanwhile (Linux
    /// tmpfs since 6.14 does the same, so a reader never chases entries created behind it).
    pub fn getdents64(&self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        let f = self.file(fd)?;
        let dir = match &f.object {
            Object::Node(n) if n.file_type() == FileType::Directory => n.clone(),
            _ => return Err(Errno::ENOTDIR),
        };
        // A removed directory lists nothing, not even `.` (ENOENT).
        dir.read_dir(u64::MAX, &mut |_| false)?;
        let mut pos = f.pos.lock();
        let mut used = 0usize;
        let mut full = false;
        let mut put = |used: &mut usize, pos: &mut u64, e: crate::vnode::DirEntry<'_>| -> bool {
            let len = dirent_reclen(e.name.len());
            if *used + len > buf.len() {
                full = true;
                return false;
            }
            encode_dirent(
                &mut buf[*used..*used + len],
                e.ino,
                e.next,
                e.file_type.dirent_type(),
                e.name,
            );
            *used += len;
            *pos = e.next;
            true
        };
        let mut p = *pos;
        if p >= DIR_END {
            return Ok(0);
        }
        if p == 0 {
            let e = crate::vnode::DirEntry {
                name: b".",
                ino: dir.stat().ino,
                file_type: FileType::Directory,
                next: 1,
            };
            if !put(&mut used, &mut p, e) {
                return Err(Errno::EINVAL);
            }
        }
        if p == 1 {
            let parent = self.parent_of(&dir).unwrap_or_else(|_| dir.clone());
            let e = crate::vnode::DirEntry {
                name: b"..",
                ino: parent.stat().ino,
                file_type: FileType::Directory,
                next: 2,
            };
            if !put(&mut used, &mut p, e) {
                *pos = p;
                return if used == 0 {
                    Err(Errno::EINVAL)
                } else {
                    Ok(used)
                };
            }
        }
        let start = p;
        dir.read_dir(start, &mut |e| put(&mut used, &mut p, e))?;
        if used == 0 && full {
            *pos = p;
            return Err(Errno::EINVAL);
        }
        // Every remaining entry fitted: the listing reached the end of the directory.
        *pos = if full { p } else { DIR_END };
        Ok(used)
    }

    /// `mkdir` relative to the working directory.
    pub fn mkdir(&self, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        self.mkdirat(AT_FDCWD, path, mode)
    }

    /// `mkdirat`.
    pub fn mkdirat(&self, dirfd: Fd, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        let p = self.parent_at(dirfd, path.as_ref())?;
        let Last::Name(name) = p.last else {
            return Err(Errno::EEXIST);
        };
        // Linux's vfs_mkdir: the set-user-ID and set-group-ID bits of `mode` are dropped
        // (the filesystem sets set-group-ID itself when the parent has it); sticky stays.
        let perm = mode & (0o777 | S_ISVTX) & !self.umask.load(Ordering::Relaxed);
        p.dir.create(name, NewNode::Directory, perm).map(|_| ())
    }

    /// `rmdir`.
    pub fn rmdir(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        self.unlinkat(AT_FDCWD, path, AT_REMOVEDIR)
    }

    /// `unlink`.
    pub fn unlink(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        self.unlinkat(AT_FDCWD, path, 0)
    }

    /// `unlinkat`: removes a name, or with `AT_REMOVEDIR` an empty directory.
    pub fn unlinkat(&self, dirfd: Fd, path: impl AsRef<[u8]>, flags: u32) -> Result<(), Errno> {
        if flags & !AT_REMOVEDIR != 0 {
            return Err(Errno::EINVAL);
        }
        let p = self.parent_at(dirfd, path.as_ref())?;
        if flags & AT_REMOVEDIR != 0 {
            let name = match p.last {
                Last::Name(n) => n,
                Last::Dot => return Err(Errno::EINVAL),
                Last::DotDot => return Err(Errno::ENOTEMPTY),
                Last::Root => return Err(Errno::EBUSY),
            };
            let node = self.lookup_child(&p.dir, name)?;
            if self.is_mount_root(&node) {
                return Err(Errno::EBUSY);
            }
            return p.dir.rmdir(name);
        }
        let Last::Name(name) = p.last else {
            return Err(Errno::EISDIR);
        };
        if p.slash {
            let node = self.lookup_child(&p.dir, name)?;
            return Err(if node.file_type() == FileType::Directory {
                Errno::EISDIR
            } else {
                Errno::ENOTDIR
            });
        }
        p.dir.unlink(name)
    }

    /// `rename`.
    pub fn rename(&self, old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Result<(), Errno> {
        self.renameat2(AT_FDCWD, old, AT_FDCWD, new, 0)
    }

    /// `renameat2` with flags `0` or `RENAME_NOREPLACE`.
    pub fn renameat2(
        &self,
        olddirfd: Fd,
        old: impl AsRef<[u8]>,
        newdirfd: Fd,
        new: impl AsRef<[u8]>,
        flags: u32,
    ) -> Result<(), Errno> {
        if flags & !RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        let op = self.parent_at(olddirfd, old.as_ref())?;
        let np = self.parent_at(newdirfd, new.as_ref())?;
        if op.dir.stat().dev != np.dir.stat().dev {
            return Err(Errno::EXDEV);
        }
        let Last::Name(old_name) = op.last else {
            return Err(Errno::EBUSY);
        };
        let Last::Name(new_name) = np.last else {
            return Err(if flags & RENAME_NOREPLACE != 0 {
                Errno::EEXIST
            } else {
                Errno::EBUSY
            });
        };
        let src = self.lookup_child(&op.dir, old_name)?;
        let src_dir = src.file_type() == FileType::Directory;
        if !src_dir && (op.slash || np.slash) {
            return Err(Errno::ENOTDIR);
        }
        let dst = match self.lookup_child(&np.dir, new_name) {
            Ok(n) => Some(n),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        // A directory may not move below itself; the target may not be an ancestor of
        // the source.
        if src_dir && self.is_ancestor_or_self(&src, &np.dir) {
            return Err(Errno::EINVAL);
        }
        if let Some(d) = &dst {
            if self.is_ancestor_or_self(d, &op.dir) {
                return Err(Errno::ENOTEMPTY);
            }
            if same(d, &src) {
                return Ok(());
            }
            if self.is_mount_root(d) {
                return Err(Errno::EBUSY);
            }
        }
        if self.is_mount_root(&src) {
            return Err(Errno::EBUSY);
        }
        op.dir.rename(old_name, &np.dir, new_name, flags)
    }

    fn is_ancestor_or_self(&self, anc: &VnodeRef, node: &VnodeRef) -> bool {
        let mut cur = node.clone();
        for _ in 0..4096 {
            if same(&cur, anc) {
                return true;
            }
            if same(&cur, &self.root) {
                return false;
            }
            match self.parent_of(&cur) {
                Ok(p) => cur = p,
                Err(_) => return false,
            }
        }
        false
    }

    /// `link`: a new name for a non-directory (a final symbolic link is not followed).
    pub fn link(&self, old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Result<(), Errno> {
        self.linkat(AT_FDCWD, old, AT_FDCWD, new, 0)
    }

    /// `linkat` with `AT_SYMLINK_FOLLOW`.
    pub fn linkat(
        &self,
        olddirfd: Fd,
        old: impl AsRef<[u8]>,
        newdirfd: Fd,
        new: impl AsRef<[u8]>,
        flags: u32,
    ) -> Result<(), Errno> {
        if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
            return Err(Errno::EINVAL);
        }
        let src = self.resolve(olddirfd, old.as_ref(), flags & AT_SYMLINK_FOLLOW != 0)?;
        let np = self.parent_at(newdirfd, new.as_ref())?;
        let Last::Name(name) = np.last else {
            return Err(Errno::EEXIST);
        };
        match self.lookup_child(&np.dir, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(Errno::ENOENT) if np.slash => return Err(Errno::ENOENT),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        if src.stat().dev != np.dir.stat().dev {
            return Err(Errno::EXDEV);
        }
        if src.file_type() == FileType::Directory {
            return Err(Errno::EPERM);
        }
        np.dir.link(name, &src)
    }

    /// `symlink`: makes `linkpath` a symbolic link holding `target`.
    pub fn symlink(
        &self,
        target: impl AsRef<[u8]>,
        linkpath: impl AsRef<[u8]>,
    ) -> Result<(), Errno> {
        self.symlinkat(target, AT_FDCWD, linkpath)
    }

    /// `symlinkat`.
    pub fn symlinkat(
        &self,
        target: impl AsRef<[u8]>,
        dirfd: Fd,
        linkpath: impl AsRef<[u8]>,
    ) -> Result<(), Errno> {
        let target = target.as_ref();
        Self::check_path(target)?;
        let p = self.parent_at(dirfd, linkpath.as_ref())?;
        let Last::Name(name) = p.last else {
            return Err(Errno::EEXIST);
        };
        if p.slash {
            return match self.lookup_child(&p.dir, name) {
                Ok(_) => Err(Errno::EEXIST),
                Err(e) => Err(e),
            };
        }
        p.dir
            .create(name, NewNode::Symlink(target), 0o777)
            .map(|_| ())
    }

    /// `readlink`: copies the target into `buf` (truncated, no NUL); `EINVAL` if not a
    /// link or `buf` is empty.
    pub fn readlink(&self, path: impl AsRef<[u8]>, buf: &mut [u8]) -> Result<usize, Errno> {
        self.readlinkat(AT_FDCWD, path, buf)
    }

    /// `readlinkat`.
    pub fn readlinkat(
        &self,
        dirfd: Fd,
        path: impl AsRef<[u8]>,
        buf: &mut [u8],
    ) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Err(Errno::EINVAL);
        }
        let node = self.resolve(dirfd, path.as_ref(), false)?;
        let target = node.readlink()?;
        let n = target.len().min(buf.len());
        buf[..n].copy_from_slice(&target[..n]);
        Ok(n)
    }

    /// `chmod`: sets the permission bits (follows links).
    pub fn chmod(&self, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        self.fchmodat(AT_FDCWD, path, mode)
    }

    /// `fchmodat(dirfd, path, mode)`: sets the permission bits (`mode & 0o7777`) of what
    /// `path` names, symbolic links followed, relative to `dirfd` (as Linux's `fchmodat`,
    /// which has no flags).
    pub fn fchmodat(&self, dirfd: Fd, path: impl AsRef<[u8]>, mode: u32) -> Result<(), Errno> {
        self.resolve(dirfd, path.as_ref(), true)?.set_mode(mode)
    }

    /// `fchmod(fd, mode)`: the permission bits of the file open as `fd`. A pipe keeps no
    /// mode of its own here, so the call succeeds and changes nothing (Linux changes the
    /// pipe's pipefs inode, which no path reaches).
    pub fn fchmod(&self, fd: Fd, mode: u32) -> Result<(), Errno> {
        let f = self.file(fd)?;
        match &f.object {
            Object::Node(n) => n.set_mode(mode),
            _ => Ok(()),
        }
    }

    /// `statfs(path)`: what the filesystem holding `path` (followed) reports.
    pub fn statfs(&self, path: impl AsRef<[u8]>) -> Result<StatFs, Errno> {
        let node = self.resolve(AT_FDCWD, path.as_ref(), true)?;
        self.statfs_of(&node)
    }

    /// `fstatfs(fd)`: what the filesystem of the file open as `fd` reports; a pipe is on
    /// the pipe filesystem, as on Linux.
    pub fn fstatfs(&self, fd: Fd) -> Result<StatFs, Errno> {
        match &self.file(fd)?.object {
            Object::Node(n) => self.statfs_of(n),
            Object::Pipe(_) => Ok(StatFs::in_memory(PIPEFS_MAGIC)),
            _ => Ok(StatFs::in_memory(ANON_INODE_FS_MAGIC)),
        }
    }

    /// The filesystem a node belongs to is the mount whose root has the node's device
    /// number (every mount has its own).
    fn statfs_of(&self, node: &VnodeRef) -> Result<StatFs, Errno> {
        let dev = node.stat().dev;
        let fs = self
            .mounts
            .read()
            .iter()
            .find(|m| m.root.stat().dev == dev)
            .map(|m| m.fs.clone())
            .ok_or(Errno::ENOSYS)?;
        fs.statfs()
    }

    /// `utimensat(dirfd, path, times, flags)`: sets a file's access and modification times
    /// (`times[0]` and `times[1]`; a `NULL` times array is `[Now, Now]`). Flags
    /// `AT_SYMLINK_NOFOLLOW` (change a symbolic link itself) and `AT_EMPTY_PATH`. A `None`
    /// path changes the file open as `dirfd` (`futimens`), and then takes no flags. As on
    /// Linux, omitting both times still checks the path and changes nothing; a pipe keeps
    /// no times here, so changing its times succeeds and changes nothing (as `fchmod`).
    pub fn utimensat(
        &self,
        dirfd: Fd,
        path: Option<&[u8]>,
        times: [TimeChange; 2],
        flags: u32,
    ) -> Result<(), Errno> {
        if flags & !UTIMENSAT_FLAGS != 0 {
            return Err(Errno::EINVAL);
        }
        let node = match path {
            None if dirfd == AT_FDCWD => return Err(Errno::EFAULT),
            None if flags != 0 => return Err(Errno::EINVAL),
            None => self.file(dirfd)?,
            Some(b"") if flags & AT_EMPTY_PATH != 0 && dirfd != AT_FDCWD => self.file(dirfd)?,
            Some(b"") if flags & AT_EMPTY_PATH != 0 => {
                let cwd = self.cwd.lock().clone();
                return Self::set_times(&cwd, times);
            }
            Some(path) => {
                let node = self.resolve(dirfd, path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
                return Self::set_times(&node, times);
            }
        };
        match &node.object {
            Object::Node(n) => Self::set_times(n, times),
            _ => Ok(()),
        }
    }

    /// `chown(path, uid, gid)`: sets the owner and group of what `path` names (links
    /// followed); see [`Vfs::fchownat`].
    pub fn chown(&self, path: impl AsRef<[u8]>, uid: u32, gid: u32) -> Result<(), Errno> {
        self.fchownat(AT_FDCWD, path, uid, gid, 0)
    }

    /// `lchown(path, uid, gid)`: as [`Vfs::chown`], on a final symbolic link itself.
    pub fn lchown(&self, path: impl AsRef<[u8]>, uid: u32, gid: u32) -> Result<(), Errno> {
        self.fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)
    }

    /// `fchownat(dirfd, path, uid, gid, flags)`: sets the owner and group of what `path`
    /// names relative to `dirfd` through [`Vnode::set_owner`](crate::Vnode::set_owner);
    /// an id of `u32::MAX` (the caller's `-1`) is left unchanged. The caller is root, so
    /// any ids are allowed. Flags: `AT_SYMLINK_NOFOLLOW` (change a final symbolic link
    /// itself) and `AT_EMPTY_PATH` (an empty path means `dirfd`, or the working directory
    /// for `AT_FDCWD`); others are `EINVAL`. As Linux's `chown`, also with both ids `-1`:
    /// the change time moves and a non-directory loses set-user-ID (and set-group-ID if
    /// group-executable). A pipe keeps no owner here: the call succeeds and changes nothing
    /// (as [`Vfs::fchmod`]); devfs nodes refuse with `EPERM`.
    pub fn fchownat(
        &self,
        dirfd: Fd,
        path: impl AsRef<[u8]>,
        uid: u32,
        gid: u32,
        flags: u32,
    ) -> Result<(), Errno> {
        if flags & !FCHOWNAT_FLAGS != 0 {
            return Err(Errno::EINVAL);
        }
        let path = path.as_ref();
        if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
            if dirfd != AT_FDCWD {
                return self.fchown(dirfd, uid, gid);
            }
            let cwd = self.cwd.lock().clone();
            return Self::set_owner(&cwd, uid, gid);
        }
        let node = self.resolve(dirfd, path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
        Self::set_owner(&node, uid, gid)
    }

    /// `fchown(fd, uid, gid)`: as [`Vfs::fchownat`], on the file open as `fd`.
    pub fn fchown(&self, fd: Fd, uid: u32, gid: u32) -> Result<(), Errno> {
        match &self.file(fd)?.object {
            Object::Node(n) => Self::set_owner(n, uid, gid),
            _ => Ok(()),
        }
    }

    fn set_owner(node: &VnodeRef, uid: u32, gid: u32) -> Result<(), Errno> {
        let id = |id: u32| (id != u32::MAX).then_some(id);
        node.set_owner(id(uid), id(gid))
    }

    fn set_times(node: &VnodeRef, [atime, mtime]: [TimeChange; 2]) -> Result<(), Errno> {
        if (atime, mtime) == (TimeChange::Omit, TimeChange::Omit) {
            return Ok(());
        }
        node.set_times(atime, mtime)
    }

    // ----- working directory -------------------------------------------------------------

    /// `chdir`.
    pub fn chdir(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        let node = self.resolve(AT_FDCWD, path.as_ref(), true)?;
        if node.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        *self.cwd.lock() = node;
        Ok(())
    }

    /// `fchdir`.
    pub fn fchdir(&self, fd: Fd) -> Result<(), Errno> {
        let f = self.file(fd)?;
        match &f.object {
            Object::Node(n) if n.file_type() == FileType::Directory => {
                *self.cwd.lock() = n.clone();
                Ok(())
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// The working directory's absolute path; `ENOENT` once it was removed.
    pub fn cwd(&self) -> Result<Vec<u8>, Errno> {
        let cwd = self.cwd.lock().clone();
        self.dir_path(cwd)
    }

    /// The absolute path of the directory `dir` (mount points crossed upwards); `ENOENT`
    /// once it was removed.
    pub(crate) fn dir_path(&self, dir: VnodeRef) -> Result<Vec<u8>, Errno> {
        let mut cur = dir;
        let mut parts: Vec<Vec<u8>> = Vec::new();
        loop {
            if same(&cur, &self.root) {
                break;
            }
            let point = self
                .mounts
                .read()
                .iter()
                .skip(1)
                .rev()
                .find(|m| same(&m.root, &cur))
                .map(|m| m.point.clone());
            if let Some(p) = point {
                cur = p;
                continue;
            }
            parts.push(cur.dir_name().ok_or(Errno::ENOENT)?);
            cur = cur.parent().ok_or(Errno::ENOENT)?;
        }
        if parts.is_empty() {
            return Ok(b"/".to_vec());
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        Ok(out)
    }

    /// `getcwd` into `buf` with its NUL; returns the length including the NUL. `ERANGE`
    /// if `buf` is too small.
    pub fn getcwd(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let path = self.cwd()?;
        if path.len() + 1 > buf.len() {
            return Err(Errno::ERANGE);
        }
        buf[..path.len()].copy_from_slice(&path);
        buf[path.len()] = 0;
        Ok(path.len() + 1)
    }

    /// `umask`: sets the creation mask, returns the previous one.
    pub fn umask(&self, mask: u32) -> u32 {
        self.umask.swap(mask & 0o777, Ordering::Relaxed)
    }

    // ----- helpers for the initrd and images --------------------------------------------

    /// Creates `path` and every missing parent directory (mode `0o755`), like `mkdir -p`.
    pub fn mkdir_all(&self, path: impl AsRef<[u8]>) -> Result<(), Errno> {
        let path = path.as_ref();
        let mut end = 0;
        while end < path.len() {
            end = path[end + 1..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(path.len(), |i| i + end + 1);
            match self.mkdir(&path[..end], 0o755) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes `data` as the whole content of `path` (created with `mode`, truncated).
    pub fn write_file(&self, path: impl AsRef<[u8]>, data: &[u8], mode: u32) -> Result<(), Errno> {
        let fd = self.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)?;
        let mut done = 0;
        let r = loop {
            if done == data.len() {
                break Ok(());
            }
            match self.write(fd, &data[done..]) {
                Ok(0) => break Err(Errno::ENOSPC),
                Ok(n) => done += n,
                Err(e) => break Err(e),
            }
        };
        let _ = self.close(fd);
        r
    }

    /// Reads the whole of `path`, asking for as much as its size says in one `read` (the
    /// filesystem may split it; the buffer grows if the file is longer than it said).
    pub fn read_file(&self, path: impl AsRef<[u8]>) -> Result<Vec<u8>, Errno> {
        /// The most the file's size may reserve up front (a sparse or lying size must not
        /// allocate the world); beyond it the buffer grows as the data arrives.
        const MAX_HINT: usize = 16 << 20;
        let fd = self.open(path, O_RDONLY, 0)?;
        // Read in pieces as large as the file (one read for most files): a filesystem
        // that pays per call, a 9P mount say, makes one round trip per message instead of
        // one per 4 KiB. The extra byte finds the end without growing the buffer.
        let hint = self.fstat(fd).map_or(0, |st| st.size).min(MAX_HINT as u64) as usize;
        let mut out = Vec::with_capacity(hint + 1);
        let r = loop {
            if out.len() == out.capacity() {
                out.reserve(out.len().max(4096));
            }
            let start = out.len();
            out.resize(out.capacity(), 0);
            match self.read(fd, &mut out[start..]) {
                Ok(0) => {
                    out.truncate(start);
                    break Ok(());
                }
                Ok(n) => out.truncate(start + n),
                Err(e) => {
                    out.truncate(start);
                    break Err(e);
                }
            }
        };
        let _ = self.close(fd);
        r.map(|_| out)
    }
}
