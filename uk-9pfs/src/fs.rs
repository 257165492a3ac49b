//! [`NinePFs`]: a uk-vfs [`FileSystem`] whose nodes live on a 9P2000.L server.
//!
//! Each vnode holds a fid walked to its file (from its parent's fid, one name per
//! lookup), and opens further fids lazily for I/O: one for reading and writing (or one
//! per direction when the server refuses `O_RDWR`), one for listing a directory. Every
//! fid is clunked when the vnode is dropped.
//!
//! Lock order: the directory map, then a node's state, then the client. A vnode is
//! never dropped while the map or the client is locked, since its `Drop` takes both.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;

/// The locks of a mount: a spin lock that relaxes through [`uk_hal::relax`] while it waits.
///
/// A vnode's state and the session are held across round trips, and a transport may let
/// other threads run while it waits for the server (uk-virtio does, through the same
/// hook). A thread of the same CPU that then wants the lock must let its holder run too
/// instead of spinning forever under a cooperative scheduler.
type Mutex<T> = spin::mutex::Mutex<T, Relax>;
type MutexGuard<'a, T> = spin::mutex::MutexGuard<'a, T>;

/// [`spin::RelaxStrategy`] through [`uk_hal::relax`] (a yield inside a uk-sched thread,
/// `spin_loop` elsewhere).
struct Relax;

impl spin::RelaxStrategy for Relax {
    fn relax() {
        uk_hal::relax();
    }
}
use uk_vfs::{
    DIR_END, DirEntry, Errno, FileSystem, FileType, NAME_MAX, NewNode, RENAME_NOREPLACE, S_IFMT,
    Stat, TimeChange, Timespec, Vnode, VnodeRef,
};

use crate::client::{Client, Error, Fid};
use crate::transport::Transport;
use crate::wire::{
    self, AT_REMOVEDIR, Attr, DOTL_CREATE, DOTL_DIRECTORY, DOTL_EXCL, DOTL_RDONLY, DOTL_RDWR,
    DOTL_WRONLY, GETATTR_BASIC, GETATTR_BTIME, Qid, SETATTR_ATIME, SETATTR_ATIME_SET, SETATTR_GID,
    SETATTR_MODE, SETATTR_MTIME, SETATTR_MTIME_SET, SETATTR_SIZE, SETATTR_UID, SetAttr, StatFs,
};

/// The `Tsetattr` valid bits and value for one `utimensat` time: `now` asks the server for
/// its current time, `now | set` for the time given (seconds as two's complement, as Linux's
/// client sends them).
fn time_change(change: TimeChange, now: u32, set: u32) -> (u32, u64, u64) {
    match change {
        TimeChange::Omit => (0, 0, 0),
        TimeChange::Now => (now, 0, 0),
        TimeChange::Set(t) => (now | set, t.sec as u64, u64::from(t.nsec)),
    }
}

/// The client type a [`NinePFs`] drives: the transport's type is erased so the
/// filesystem and its vnodes are one type whatever carries the messages.
pub type DynClient = Client<Box<dyn Transport>>;

/// Largest file size (Linux's `MAX_LFS_FILESIZE` on 64-bit).
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Directory positions below this are the server's cookie plus 2; see [`Cookies`].
const DIRECT_LIMIT: u64 = 1 << 30;

struct Shared {
    client: Mutex<DynClient>,
    dev: u64,
    /// Live directory vnodes by qid path: a directory looked up twice is one vnode, which
    /// the VFS relies on for mount points, `..` and rename's ancestor check.
    dirs: Mutex<BTreeMap<u64, Weak<Node>>>,
}

/// A host folder (any 9P2000.L export) as a uk-vfs filesystem.
///
/// Built by [`NinePFs::mount`]; mount it with `Vfs::mount`. Every operation is a
/// synchronous round trip through the shared [`Client`] (see the crate documentation for
/// what is supported).
pub struct NinePFs {
    root: Arc<Node>,
}

impl NinePFs {
    /// Connects over `transport`: negotiates `9P2000.L` and `msize`, attaches as `root`
    /// (uid 0) to the export `aname` (`b""`: the server's default).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedVersion`] if the server speaks another version (`Errno`:
    /// `EPROTONOSUPPORT`), the server's `Rlerror` for the attach, `ENOTDIR` if the root is
    /// not a directory, or a transport or decoding error (`EIO`). `Error` converts into
    /// [`Errno`] with `?`.
    pub fn mount<T: Transport + 'static>(transport: T, aname: &[u8]) -> Result<Arc<Self>, Error> {
        let client = Client::new(Box::new(transport) as Box<dyn Transport>)?;
        Self::attach(client, b"root", aname, 0)
    }

    /// Attaches a connected client as `uname`/`n_uname` to the export `aname`.
    ///
    /// # Errors
    ///
    /// As [`NinePFs::mount`], less the version negotiation.
    pub fn attach(
        mut client: DynClient,
        uname: &[u8],
        aname: &[u8],
        n_uname: u32,
    ) -> Result<Arc<Self>, Error> {
        let (fid, qid) = client.attach(uname, aname, n_uname)?;
        if !qid.is_dir() {
            let _ = client.clunk(fid);
            return Err(Error::Server(Errno::ENOTDIR));
        }
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
            // Anonymous, from uk-vfs's one counter, so `st_dev` tells every mount apart.
            dev: uk_vfs::anonymous_dev(),
            dirs: Mutex::new(BTreeMap::new()),
        });
        let root = Node::new(&shared, fid, qid, None, &[]);
        shared.dirs.lock().insert(qid.path, Arc::downgrade(&root));
        Ok(Arc::new(NinePFs { root }))
    }

    /// The negotiated largest message.
    pub fn msize(&self) -> u32 {
        self.root.client().msize()
    }

    /// Fids this mount holds on the server (the root's included).
    pub fn open_fids(&self) -> usize {
        self.root.client().open_fids()
    }
}

impl FileSystem for NinePFs {
    fn name(&self) -> &'static str {
        "9p"
    }
    fn root(&self) -> VnodeRef {
        self.root.clone()
    }
    /// The server's counts for the exported filesystem (`Tstatfs`), as Linux's 9P client
    /// reports them: the type is the server's filesystem's, the fragment size its block
    /// size. Errors are the server's, or `EIO`.
    fn statfs(&self) -> Result<uk_vfs::StatFs, Errno> {
        let r: StatFs = self.root.client().statfs(self.root.fid).map_err(errno)?;
        Ok(uk_vfs::StatFs {
            fs_type: u64::from(r.fs_type),
            bsize: u64::from(r.bsize),
            blocks: r.blocks,
            bfree: r.bfree,
            bavail: r.bavail,
            files: r.files,
            ffree: r.ffree,
            fsid: [r.fsid as u32, (r.fsid >> 32) as u32],
            namelen: u64::from(r.namelen),
            frsize: u64::from(r.bsize),
            flags: uk_vfs::ST_VALID,
        })
    }
}

/// Maps an error to the VFS's `errno`, logging what the caller cannot see in it (not the
/// server's answers, nor what the client logged).
fn errno(e: Error) -> Errno {
    match e {
        Error::Server(_) | Error::WalkIncomplete => {}
        ref other if logged_by_client(other) => {}
        ref other => log::warn!("9pfs: {other}"),
    }
    e.errno()
}

/// Whether the client logged `e` already: transport failures are logged there, and a run
/// of them (a dead device's) only once.
fn logged_by_client(e: &Error) -> bool {
    matches!(e, Error::Transport(_))
}

/// Directory positions for the server's readdir cookies.
///
/// The VFS owns positions 0 and 1 and needs every listing position below `DIR_END`
/// (`i32::MAX`); 9P cookies are opaque 64-bit values (QEMU passes on the host's
/// `telldir`, an index on tmpfs but a 63-bit hash on ext4). So:
///
/// - a cookie `c < 2^30 - 2` is position `c + 2` (cookie 0, "from the start", is
///   position 2) — no state, and exact;
/// - a larger cookie gets the next position from `2^30` on, remembered in both
///   directions for the vnode's life (directory vnodes are shared, so every open file of
///   the directory agrees).
///
/// A position thus always resumes at the very cookie the server gave, and the server's
/// own guarantee (an entry present throughout a listing is seen exactly once) carries
/// over unchanged. A position this vnode never handed out ends the listing.
#[derive(Default)]
struct Cookies {
    table: Vec<u64>,
    index: BTreeMap<u64, u64>,
}

impl Cookies {
    fn cookie_of(&self, pos: u64) -> Option<u64> {
        if pos < DIRECT_LIMIT {
            Some(pos.saturating_sub(2))
        } else {
            self.table.get((pos - DIRECT_LIMIT) as usize).copied()
        }
    }

    fn pos_of(&mut self, cookie: u64) -> Option<u64> {
        if cookie < DIRECT_LIMIT - 2 {
            return Some(cookie + 2);
        }
        if let Some(&p) = self.index.get(&cookie) {
            return Some(p);
        }
        let p = DIRECT_LIMIT + self.table.len() as u64;
        if p >= DIR_END {
            return None;
        }
        self.table.push(cookie);
        self.index.insert(cookie, p);
        Some(p)
    }
}

#[derive(Default)]
struct State {
    /// An open fid that reads (files) or lists (directories).
    rd: Option<Fid>,
    /// An open fid that writes; the same as `rd` when opened `O_RDWR`.
    wr: Option<Fid>,
    /// The directory this one was looked up in (directories only, `None` at the root).
    parent: Option<Arc<Node>>,
    /// The name in `parent` (directories only).
    name: Vec<u8>,
    /// Removed through this mount (`rmdir`, or replaced by a rename).
    removed: bool,
    cookies: Cookies,
}

/// A file, directory or link of a [`NinePFs`].
pub struct Node {
    shared: Arc<Shared>,
    /// Walked to the file, never opened: the handle for walks, attributes and names.
    fid: Fid,
    qid: Qid,
    kind: FileType,
    me: Weak<Node>,
    state: Mutex<State>,
}

fn kind_of(qid: &Qid) -> FileType {
    if qid.is_dir() {
        FileType::Directory
    } else if qid.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Regular
    }
}

/// The VFS type of a readdir entry: its `DT_*` type, else its qid's.
fn kind_of_dirent(e: &wire::Dirent<'_>) -> FileType {
    match e.kind {
        uk_vfs::DT_DIR => FileType::Directory,
        uk_vfs::DT_LNK => FileType::Symlink,
        uk_vfs::DT_REG => FileType::Regular,
        uk_vfs::DT_CHR => FileType::CharDevice,
        uk_vfs::DT_FIFO => FileType::Fifo,
        _ => kind_of(&e.qid),
    }
}

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        Err(Errno::ENAMETOOLONG)
    } else {
        Ok(())
    }
}

fn timespec(sec: u64, nsec: u64) -> Timespec {
    Timespec {
        sec: sec as i64,
        nsec: nsec.min(999_999_999) as u32,
    }
}

impl Node {
    fn new(
        shared: &Arc<Shared>,
        fid: Fid,
        qid: Qid,
        parent: Option<Arc<Node>>,
        name: &[u8],
    ) -> Arc<Node> {
        let kind = kind_of(&qid);
        let (parent, name) = if kind == FileType::Directory {
            (parent, name.to_vec())
        } else {
            (None, Vec::new())
        };
        Arc::new_cyclic(|me| Node {
            shared: shared.clone(),
            fid,
            qid,
            kind,
            me: me.clone(),
            state: Mutex::new(State {
                parent,
                name,
                ..State::default()
            }),
        })
    }

    fn client(&self) -> MutexGuard<'_, DynClient> {
        self.shared.client.lock()
    }

    fn require_dir(&self) -> Result<(), Errno> {
        if self.kind == FileType::Directory {
            Ok(())
        } else {
            Err(Errno::ENOTDIR)
        }
    }

    fn is(&self, other: &Option<Arc<Node>>) -> bool {
        other
            .as_ref()
            .is_some_and(|p| core::ptr::eq(Arc::as_ptr(p), self))
    }

    /// The node for a fid just walked to `name` in this directory. A directory already
    /// known keeps its vnode (and the fresh fid is clunked).
    fn adopt(&self, fid: Fid, qid: Qid, name: &[u8]) -> Arc<Node> {
        let parent = self.me.upgrade();
        if !qid.is_dir() {
            return Node::new(&self.shared, fid, qid, parent, name);
        }
        let known = self
            .shared
            .dirs
            .lock()
            .get(&qid.path)
            .and_then(Weak::upgrade);
        if let Some(node) = known {
            let mut st = node.state.lock();
            if !st.removed {
                // The name walked is the directory's current name (it may have been
                // renamed on the host): keep `..` and getcwd right.
                let old = core::mem::replace(&mut st.parent, parent);
                st.name = name.to_vec();
                drop(st);
                drop(old);
                let r = self.client().clunk(fid);
                if let Some(e) = r.err().filter(|e| !logged_by_client(e)) {
                    log::warn!("9pfs: clunk of a duplicate fid failed: {e}");
                }
                return node;
            }
        }
        let node = Node::new(&self.shared, fid, qid, parent, name);
        // Replacing a dead or removed entry: the old vnode's Drop only removes its own.
        let old = self
            .shared
            .dirs
            .lock()
            .insert(qid.path, Arc::downgrade(&node));
        drop(old);
        node
    }

    /// The live directory vnodes (taken out of the map before anything is done with them).
    fn live_dirs(&self) -> Vec<Arc<Node>> {
        let dirs = self.shared.dirs.lock();
        dirs.values().filter_map(Weak::upgrade).collect()
    }

    fn walk(&self, name: &[u8]) -> Result<(Fid, Qid), Errno> {
        let r = self.client().walk(self.fid, &[name]);
        let (fid, qid) = r.map_err(errno)?;
        Ok((fid, qid.unwrap_or_default()))
    }

    /// An open fid for reading (`write == false`; listing, for a directory) or writing,
    /// opened on first use and kept until the vnode goes.
    fn io_fid(&self, st: &mut State, write: bool) -> Result<Fid, Errno> {
        if let Some(f) = if write { st.wr } else { st.rd } {
            return Ok(f);
        }
        let mut c = self.client();
        let (fid, _) = c.walk(self.fid, &[]).map_err(errno)?;
        let opened = if self.kind == FileType::Directory {
            c.lopen(fid, DOTL_RDONLY | DOTL_DIRECTORY)
                .map(|_| (true, false))
        } else {
            // O_RDWR first, so one fid serves both directions; a file the server will not
            // open both ways (a read-only export, a 0444 file) gets the one asked for.
            match c.lopen(fid, DOTL_RDWR) {
                Ok(_) => Ok((true, true)),
                Err(Error::Server(
                    Errno::EACCES | Errno::EPERM | Errno::EROFS | Errno::ETXTBSY,
                )) => {
                    let flags = if write { DOTL_WRONLY } else { DOTL_RDONLY };
                    c.lopen(fid, flags).map(|_| (!write, write))
                }
                Err(e) => Err(e),
            }
        };
        match opened {
            Ok((rd, wr)) => {
                // The direction asked for is empty by now, so `fid` is recorded at least once.
                if rd && st.rd.is_none() {
                    st.rd = Some(fid);
                }
                if wr && st.wr.is_none() {
                    st.wr = Some(fid);
                }
                Ok(fid)
            }
            Err(e) => {
                let _ = c.clunk(fid);
                Err(errno(e))
            }
        }
    }

    /// A fid for `Tgetattr`: an open one if there is one (it still reaches a file that was
    /// unlinked while open), else the walked one.
    fn attr_fid(&self, st: &State) -> Fid {
        st.rd.or(st.wr).unwrap_or(self.fid)
    }

    fn to_stat(&self, a: &Attr) -> Stat {
        let mode = if a.mode & S_IFMT == 0 {
            a.mode | self.kind.mode_bits()
        } else {
            a.mode
        };
        let btime = if a.valid & GETATTR_BTIME != 0 {
            timespec(a.btime_sec, a.btime_nsec)
        } else {
            Timespec::default()
        };
        Stat {
            dev: self.shared.dev,
            ino: a.qid.path,
            mode,
            nlink: a.nlink.min(u32::MAX as u64) as u32,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev,
            size: a.size,
            blksize: a.blksize.min(u32::MAX as u64) as u32,
            blocks: a.blocks,
            atime: timespec(a.atime_sec, a.atime_nsec),
            mtime: timespec(a.mtime_sec, a.mtime_nsec),
            ctime: timespec(a.ctime_sec, a.ctime_nsec),
            btime,
        }
    }

    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let r = self.client().setattr(self.fid, attr);
        r.map_err(errno)
    }

    /// Creates a regular file: `Tlcreate` on a clone of this directory's fid leaves that
    /// clone open on the new file (kept as its I/O fid), then a walk gives the plain fid.
    fn create_file(&self, name: &[u8], mode: u32) -> Result<Arc<Node>, Errno> {
        let mut c = self.client();
        let (ofid, _) = c.walk(self.fid, &[]).map_err(errno)?;
        let flags = DOTL_RDWR | DOTL_CREATE | DOTL_EXCL;
        let qid = match c.lcreate(ofid, name, flags, mode & 0o7777, 0) {
            Ok(o) => o.qid,
            Err(e) => {
                let _ = c.clunk(ofid);
                return Err(errno(e));
            }
        };
        let fid = match c.walk(self.fid, &[name]) {
            Ok((fid, _)) => fid,
            Err(e) => {
                let _ = c.clunk(ofid);
                return Err(errno(e));
            }
        };
        drop(c);
        let node = Node::new(&self.shared, fid, qid, None, name);
        {
            let mut st = node.state.lock();
            st.rd = Some(ofid);
            st.wr = Some(ofid);
        }
        Ok(node)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.kind == FileType::Directory {
            let mut dirs = self.shared.dirs.lock();
            if dirs
                .get(&self.qid.path)
                .is_some_and(|w| Weak::ptr_eq(w, &self.me))
            {
                dirs.remove(&self.qid.path);
            }
        }
        let st = self.state.get_mut();
        let (rd, wr) = (st.rd.take(), st.wr.take());
        let parent = st.parent.take();
        {
            let mut c = self.shared.client.lock();
            let mut fids = [rd, wr.filter(|w| Some(*w) != rd), Some(self.fid)];
            for fid in fids.iter_mut().filter_map(Option::take) {
                if let Some(e) = c.clunk(fid).err().filter(|e| !logged_by_client(e)) {
                    log::warn!("9pfs: clunk of fid {fid} failed: {e}");
                }
            }
        }
        // Dropping the parent may drop it too (and take the locks): only now.
        drop(parent);
    }
}

impl Vnode for Node {
    fn stat(&self) -> Stat {
        let st = self.state.lock();
        let fid = self.attr_fid(&st);
        let r = self.client().getattr(fid, GETATTR_BASIC | GETATTR_BTIME);
        drop(st);
        match r {
            Ok(a) => self.to_stat(&a),
            Err(e) => {
                // `stat` cannot fail in the trait: report what is known.
                if !logged_by_client(&e) {
                    log::warn!("9pfs: getattr failed: {e}");
                }
                Stat {
                    dev: self.shared.dev,
                    ino: self.qid.path,
                    mode: self.kind.mode_bits(),
                    ..Stat::default()
                }
            }
        }
    }

    fn file_type(&self) -> FileType {
        self.kind
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &[u8]) -> Result<VnodeRef, Errno> {
        self.require_dir()?;
        check_name(name)?;
        let (fid, qid) = self.walk(name)?;
        Ok(self.adopt(fid, qid, name))
    }

    fn parent(&self) -> Option<VnodeRef> {
        let st = self.state.lock();
        st.parent.clone().map(|p| p as VnodeRef)
    }

    fn dir_name(&self) -> Option<Vec<u8>> {
        let st = self.state.lock();
        if st.removed || st.parent.is_none() {
            return None;
        }
        Some(st.name.clone())
    }

    fn create(&self, name: &[u8], kind: NewNode<'_>, mode: u32) -> Result<VnodeRef, Errno> {
        self.require_dir()?;
        check_name(name)?;
        if self.state.lock().removed {
            return Err(Errno::ENOENT);
        }
        match kind {
            NewNode::File => Ok(self.create_file(name, mode)?),
            NewNode::Directory => {
                let r = self.client().mkdir(self.fid, name, mode & 0o7777, 0);
                r.map_err(errno)?;
                let (fid, qid) = self.walk(name)?;
                Ok(self.adopt(fid, qid, name))
            }
            NewNode::Symlink(target) => {
                let r = self.client().symlink(self.fid, name, target, 0);
                r.map_err(errno)?;
                let (fid, qid) = self.walk(name)?;
                Ok(self.adopt(fid, qid, name))
            }
        }
    }

    fn link(&self, name: &[u8], target: &VnodeRef) -> Result<(), Errno> {
        self.require_dir()?;
        check_name(name)?;
        let Some(t) = target.as_any().downcast_ref::<Node>() else {
            return Err(Errno::EXDEV);
        };
        if !Arc::ptr_eq(&t.shared, &self.shared) {
            return Err(Errno::EXDEV);
        }
        if t.kind == FileType::Directory {
            return Err(Errno::EPERM);
        }
        let r = self.client().link(self.fid, t.fid, name);
        r.map_err(errno)
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        self.require_dir()?;
        check_name(name)?;
        let r = self.client().unlinkat(self.fid, name, 0);
        r.map_err(errno)
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        self.require_dir()?;
        check_name(name)?;
        let r = self.client().unlinkat(self.fid, name, AT_REMOVEDIR);
        r.map_err(errno)?;
        for d in self.live_dirs() {
            let mut st = d.state.lock();
            if self.is(&st.parent) && st.name == name {
                st.removed = true;
            }
        }
        Ok(())
    }

    fn rename(&self, old: &[u8], new_dir: &VnodeRef, new: &[u8], flags: u32) -> Result<(), Errno> {
        self.require_dir()?;
        check_name(old)?;
        check_name(new)?;
        let Some(nd) = new_dir.as_any().downcast_ref::<Node>() else {
            return Err(Errno::EXDEV);
        };
        if !Arc::ptr_eq(&nd.shared, &self.shared) {
            return Err(Errno::EXDEV);
        }
        nd.require_dir()?;
        if flags & !RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & RENAME_NOREPLACE != 0 {
            // 9P's renameat has no flags: check first (not atomic against the host).
            match nd.walk(new) {
                Ok((fid, _)) => {
                    let _ = self.client().clunk(fid);
                    return Err(Errno::EEXIST);
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        let r = self.client().renameat(self.fid, old, nd.fid, new);
        r.map_err(errno)?;
        // Keep the known directory vnodes' names: the moved one, and one replaced.
        let dirs = self.live_dirs();
        let moved = dirs.iter().find(|d| {
            let st = d.state.lock();
            self.is(&st.parent) && st.name == old
        });
        for d in &dirs {
            if moved.is_some_and(|m| Arc::ptr_eq(m, d)) {
                continue;
            }
            let mut st = d.state.lock();
            if nd.is(&st.parent) && st.name == new {
                st.removed = true;
            }
        }
        if let Some(m) = moved {
            let mut st = m.state.lock();
            let old_parent = core::mem::replace(&mut st.parent, nd.me.upgrade());
            st.name = new.to_vec();
            drop(st);
            drop(old_parent);
        }
        Ok(())
    }

    fn read_dir(&self, pos: u64, sink: &mut dyn FnMut(DirEntry<'_>) -> bool) -> Result<(), Errno> {
        self.require_dir()?;
        let mut st = self.state.lock();
        if st.removed {
            return Err(Errno::ENOENT);
        }
        if pos >= DIR_END {
            return Ok(());
        }
        let Some(mut cookie) = st.cookies.cookie_of(pos) else {
            return Ok(());
        };
        let fid = self.io_fid(&mut st, false)?;
        let cookies = &mut st.cookies;
        let mut c = self.client();
        loop {
            let before = cookie;
            let mut stopped = false;
            let mut overflow = false;
            let sent = c
                .readdir(fid, cookie, &mut |e| {
                    cookie = e.offset;
                    // The VFS lists `.` and `..` itself.
                    if e.name == b"." || e.name == b".." {
                        return true;
                    }
                    let Some(next) = cookies.pos_of(e.offset) else {
                        overflow = true;
                        return false;
                    };
                    let entry = DirEntry {
                        name: e.name,
                        ino: e.qid.path,
                        file_type: kind_of_dirent(&e),
                        next,
                    };
                    stopped = !sink(entry);
                    !stopped
                })
                .map_err(errno)?;
            if overflow {
                return Err(Errno::EOVERFLOW);
            }
            if stopped || sent == 0 {
                return Ok(());
            }
            if cookie == before {
                // A server whose cookies do not advance would list forever.
                log::warn!("9pfs: readdir cookie did not advance");
                return Err(Errno::EIO);
            }
        }
    }

    fn is_empty_dir(&self) -> bool {
        let mut empty = true;
        let r = self.read_dir(2, &mut |_| {
            empty = false;
            false
        });
        r.is_ok() && empty
    }

    fn readlink(&self) -> Result<Arc<[u8]>, Errno> {
        if self.kind != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        let r = self.client().readlink(self.fid);
        r.map(Arc::from).map_err(errno)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], _nonblock: bool) -> Result<usize, Errno> {
        match self.kind {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.state.lock();
        let fid = self.io_fid(&mut st, false)?;
        let r = self.client().read(fid, offset, buf);
        r.map_err(errno)
    }

    fn write_at(&self, offset: u64, buf: &[u8], _nonblock: bool) -> Result<usize, Errno> {
        if self.kind != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if offset >= MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut st = self.state.lock();
        let fid = self.io_fid(&mut st, true)?;
        let r = self.client().write(fid, offset, buf);
        r.map_err(errno)
    }

    /// The end comes from a fresh `Tgetattr` whose failure is reported (the trait's
    /// default would take `stat`'s size, 0 when the server cannot be asked, and write over
    /// the start). The vnode's lock spans both messages, so appends through one vnode do
    /// not interleave; 9P has no atomic append, so a writer on the host (or through another
    /// vnode of the same file) can still come between.
    fn append(&self, buf: &[u8], _nonblock: bool) -> Result<(usize, u64), Errno> {
        if self.kind != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        let mut st = self.state.lock();
        let fid = self.io_fid(&mut st, true)?;
        let mut c = self.client();
        let end = c
            .getattr(self.attr_fid(&st), GETATTR_BASIC)
            .map_err(errno)?
            .size;
        if buf.is_empty() {
            return Ok((0, end));
        }
        if end >= MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let n = c.write(fid, end, buf).map_err(errno)?;
        Ok((n, end + n as u64))
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        match self.kind {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.setattr(&SetAttr {
            valid: SETATTR_SIZE,
            size: len,
            ..SetAttr::default()
        })
    }

    fn set_mode(&self, mode: u32) -> Result<(), Errno> {
        self.setattr(&SetAttr {
            valid: SETATTR_MODE,
            mode: mode & 0o7777,
            ..SetAttr::default()
        })
    }

    fn set_times(&self, atime: TimeChange, mtime: TimeChange) -> Result<(), Errno> {
        let (a_valid, a_sec, a_nsec) = time_change(atime, SETATTR_ATIME, SETATTR_ATIME_SET);
        let (m_valid, m_sec, m_nsec) = time_change(mtime, SETATTR_MTIME, SETATTR_MTIME_SET);
        self.setattr(&SetAttr {
            valid: a_valid | m_valid,
            atime_sec: a_sec,
            atime_nsec: a_nsec,
            mtime_sec: m_sec,
            mtime_nsec: m_nsec,
            ..SetAttr::default()
        })
    }

    /// `Tsetattr` with the uid and gid valid bits of the ids given (as Linux's client
    /// sends `chown`); the server's host applies chown's rules (the set-ID bits) itself.
    /// With neither id there is nothing to send.
    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        let valid = uid.map_or(0, |_| SETATTR_UID) | gid.map_or(0, |_| SETATTR_GID);
        if valid == 0 {
            return Ok(());
        }
        self.setattr(&SetAttr {
            valid,
            uid: uid.unwrap_or(0),
            gid: gid.unwrap_or(0),
            ..SetAttr::default()
        })
    }

    fn sync(&self) -> Result<(), Errno> {
        // Only a fid open for writing can have data of ours on its way (a file's I/O fid is
        // opened read-write when the server allows); without one this vnode wrote nothing.
        let st = self.state.lock();
        match st.wr {
            Some(fid) => self.client().fsync(fid, false).map_err(errno),
            None => Ok(()),
        }
    }
}
