//! ramfs: every file, directory and link lives in memory.
//!
//! - A regular file is a sparse map of 4 KiB pages: a hole reads as zeros and costs no
//!   memory, `st_blocks` counts the pages present.
//! - A directory keeps its entries by name (lookup) and by position (listing). Every
//!   insertion takes the next position of the directory, so a listing resumed at a
//!   position never repeats or loses an entry that stayed in place.
//! - Unlinking drops the directory's reference; the data goes when the last open file
//!   and the last name are gone (`Arc` counting).
//! - One lock per filesystem serialises changes of the namespace (create, link, unlink,
//!   rename); lookups take only the directory's own lock.
//! - Every node keeps an owner and a group (root's at creation; a node made in a
//!   set-group-ID directory takes its group); `chown` changes them with Linux's set-ID
//!   rules. `fallocate` grows a file's size without reserving pages.
//! - A shared `mmap` ([`Vnode::map_shared`]) moves the file's pages in the mapped range
//!   into one page-aligned run (copying what they held); from then on the file's
//!   page table refers into the run, so `read`, `write` and the mapping use the same
//!   memory. A second mapping of the same pages reuses the run. The run lives while the
//!   file holds one of its pages or a mapping holds it, so truncation and unlinking never
//!   free mapped memory: truncating below a mapped page zeroes it and keeps it in the
//!   table past the end of file (where Linux would raise `SIGBUS` on access, the mapping
//!   reads zeros and its stores are lost when the file grows over them again: growing a
//!   file always zeroes the bytes between the old and the new end).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::mmap::{Run, SharedMap};
use crate::types::{
    F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE,
    FileType, NAME_MAX, RAMFS_MAGIC, S_IFDIR, S_IFMT, S_ISGID, S_ISUID, Stat, StatFs, TimeChange,
    Timespec, makedev,
};
use crate::vnode::{DirEntry, FileSystem, NewNode, Vnode, VnodeRef};
use crate::{Errno, now};

/// A file's page: the page size of shared mappings, whose runs hold the file's pages.
const PAGE: usize = crate::mmap::MAP_PAGE;
/// Largest file size (Linux's `MAX_LFS_FILESIZE` on 64-bit).
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

static NEXT_DEV: AtomicU64 = AtomicU64::new(1);

/// A fresh device number for a filesystem without a device (Linux's anonymous `0:N`), so
/// that `st_dev` tells every mount apart. ramfs and devfs take theirs here; so should any
/// other filesystem (a network one, say).
pub fn anonymous_dev() -> u64 {
    makedev(0, NEXT_DEV.fetch_add(1, Ordering::Relaxed) as u32)
}

struct Shared {
    dev: u64,
    next_ino: AtomicU64,
    tree: Mutex<()>,
}

/// An in-memory filesystem.
pub struct RamFs {
    root: Arc<RamNode>,
}

impl RamFs {
    /// A new filesystem holding an empty root directory with mode `0o755`.
    pub fn new() -> Arc<Self> {
        let shared = Arc::new(Shared {
            dev: anonymous_dev(),
            next_ino: AtomicU64::new(1),
            tree: Mutex::new(()),
        });
        let root = RamNode::new(&shared, FileType::Directory, 0o755, Weak::new(), &[]);
        Arc::new(RamFs { root })
    }
}

impl FileSystem for RamFs {
    fn name(&self) -> &'static str {
        "ramfs"
    }
    fn root(&self) -> VnodeRef {
        self.root.clone()
    }
    fn statfs(&self) -> Result<StatFs, Errno> {
        Ok(StatFs::in_memory(RAMFS_MAGIC))
    }
}

struct Meta {
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    btime: Timespec,
}

struct FileData {
    size: u64,
    /// `F_SEAL_*` bits. A file starts with `F_SEAL_SEAL` (it takes no seals), as tmpfs
    /// files do; a memfd made with `MFD_ALLOW_SEALING` starts with none.
    seals: u32,
    /// Pages by index. Invariant: bytes at or past `size` are zero in [`Page::Own`] pages,
    /// which exist only below `size`; [`Page::Run`] pages may lie past `size` (a mapping
    /// holds them) and hold there whatever the mapping stored, zeroed when `size` grows
    /// over them.
    pages: BTreeMap<u64, Page>,
}

/// One page of a file's data.
enum Page {
    /// A page of its own.
    Own(Box<[u8; PAGE]>),
    /// Page `.1` of a run shared with `mmap`ings.
    Run(Arc<Run>, usize),
}

impl Page {
    /// Copies `dst.len()` bytes from `within` (`within + dst.len() <= PAGE`).
    fn read(&self, within: usize, dst: &mut [u8]) {
        match self {
            Page::Own(p) => {
                if let Some(src) = p.get(within..within + dst.len()) {
                    dst.copy_from_slice(src);
                }
            }
            Page::Run(r, i) => r.read(*i, within, dst),
        }
    }

    /// Copies `src` in at `within` (`within + src.len() <= PAGE`).
    fn write(&mut self, within: usize, src: &[u8]) {
        match self {
            Page::Own(p) => {
                if let Some(dst) = p.get_mut(within..within + src.len()) {
                    dst.copy_from_slice(src);
                }
            }
            Page::Run(r, i) => r.write(*i, within, src),
        }
    }

    /// Zeroes bytes `[from, to)` of the page.
    fn zero(&mut self, from: usize, to: usize) {
        match self {
            Page::Own(p) => {
                if let Some(b) = p.get_mut(from..to) {
                    b.fill(0);
                }
            }
            Page::Run(r, i) => r.zero(*i, from, to),
        }
    }

    /// Whether a live mapping holds the page.
    fn mapped(&self) -> bool {
        matches!(self, Page::Run(r, _) if r.mapped())
    }

    /// Copies the whole page into page `k` of `run`.
    fn copy_to(&self, run: &Run, k: usize) {
        match self {
            Page::Own(p) => run.write(k, 0, &p[..]),
            Page::Run(r, i) => r.copy_page_to(*i, run, k),
        }
    }
}

/// Zeroes the bytes `[from, to)` of the pages present (the file grew over them).
fn zero_range(f: &mut FileData, from: u64, to: u64) {
    if to <= from {
        return;
    }
    let page = PAGE as u64;
    for (&k, p) in f.pages.range_mut(from / page..=(to - 1) / page) {
        let start = k * page;
        let a = (from.max(start) - start) as usize;
        let b = (to.min(start + page) - start) as usize;
        p.zero(a, b);
    }
}

struct DirData {
    by_name: BTreeMap<Arc<[u8]>, (u64, Arc<RamNode>)>,
    /// The same entries by listing position (the name shared with `by_name`).
    by_pos: BTreeMap<u64, (Arc<[u8]>, Arc<RamNode>)>,
    next_pos: u64,
    parent: Weak<RamNode>,
    name: Box<[u8]>,
    removed: bool,
}

enum Body {
    File(Mutex<FileData>),
    Dir(Mutex<DirData>),
    Symlink(Arc<[u8]>),
}

/// A node of a [`RamFs`].
pub struct RamNode {
    ino: u64,
    fs: Arc<Shared>,
    me: Weak<RamNode>,
    meta: Mutex<Meta>,
    body: Body,
}

impl RamNode {
    fn new(
        fs: &Arc<Shared>,
        kind: FileType,
        perm: u32,
        parent: Weak<RamNode>,
        name: &[u8],
    ) -> Arc<Self> {
        Self::with_body(
            fs,
            kind,
            perm,
            match kind {
                FileType::Directory => Body::Dir(Mutex::new(DirData {
                    by_name: BTreeMap::new(),
                    by_pos: BTreeMap::new(),
                    next_pos: 2,
                    parent,
                    name: name.into(),
                    removed: false,
                })),
                _ => Body::File(Mutex::new(FileData {
                    size: 0,
                    seals: F_SEAL_SEAL,
                    pages: BTreeMap::new(),
                })),
            },
        )
    }

    fn with_body(fs: &Arc<Shared>, kind: FileType, perm: u32, body: Body) -> Arc<Self> {
        let t = now();
        let ino = fs.next_ino.fetch_add(1, Ordering::Relaxed);
        Arc::new_cyclic(|me| RamNode {
            ino,
            fs: fs.clone(),
            me: me.clone(),
            meta: Mutex::new(Meta {
                mode: kind.mode_bits() | (perm & 0o7777),
                nlink: if kind == FileType::Directory { 2 } else { 1 },
                uid: 0,
                gid: 0,
                atime: t,
                mtime: t,
                ctime: t,
                btime: t,
            }),
            body,
        })
    }

    fn dir(&self) -> Result<&Mutex<DirData>, Errno> {
        match &self.body {
            Body::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn touch_dir(&self, links: i32) {
        let t = now();
        let mut m = self.meta.lock();
        m.mtime = t;
        m.ctime = t;
        m.nlink = m.nlink.wrapping_add_signed(links);
    }

    fn change_links(&self, delta: i32) {
        let mut m = self.meta.lock();
        m.nlink = m.nlink.saturating_add_signed(delta);
        m.ctime = now();
    }

    fn kind(&self) -> FileType {
        match &self.body {
            Body::Dir(_) => FileType::Directory,
            Body::File(_) => FileType::Regular,
            Body::Symlink(_) => FileType::Symlink,
        }
    }

    fn mark_removed(&self) {
        if let Body::Dir(d) = &self.body {
            d.lock().removed = true;
        }
        let mut m = self.meta.lock();
        m.nlink = 0;
        m.ctime = now();
    }
}

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl DirData {
    fn insert(&mut self, name: &[u8], node: Arc<RamNode>) {
        let pos = self.next_pos;
        self.next_pos += 1;
        let name: Arc<[u8]> = Arc::from(name);
        self.by_pos.insert(pos, (name.clone(), node.clone()));
        self.by_name.insert(name, (pos, node));
    }

    fn remove(&mut self, name: &[u8]) -> Option<Arc<RamNode>> {
        let (pos, node) = self.by_name.remove(name)?;
        self.by_pos.remove(&pos);
        Some(node)
    }
}

impl Vnode for RamNode {
    fn stat(&self) -> Stat {
        let m = self.meta.lock();
        let (size, blocks) = match &self.body {
            Body::File(f) => {
                let f = f.lock();
                (f.size, f.pages.len() as u64 * (PAGE as u64 / 512))
            }
            Body::Dir(d) => ((d.lock().by_name.len() as u64 + 2) * 20, 0),
            Body::Symlink(t) => (t.len() as u64, 0),
        };
        Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: m.mode,
            nlink: m.nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            size,
            blksize: PAGE as u32,
            blocks,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            btime: m.btime,
        }
    }

    fn file_type(&self) -> FileType {
        self.kind()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &[u8]) -> Result<VnodeRef, Errno> {
        check_name(name)?;
        let d = self.dir()?.lock();
        match d.by_name.get(name) {
            Some((_, node)) => Ok(node.clone()),
            None => Err(Errno::ENOENT),
        }
    }

    fn parent(&self) -> Option<VnodeRef> {
        let d = self.dir().ok()?.lock();
        d.parent.upgrade().map(|p| p as VnodeRef)
    }

    fn dir_name(&self) -> Option<Vec<u8>> {
        let d = self.dir().ok()?.lock();
        if d.removed || d.parent.strong_count() == 0 {
            return None;
        }
        Some(d.name.to_vec())
    }

    fn create(&self, name: &[u8], kind: NewNode<'_>, mode: u32) -> Result<VnodeRef, Errno> {
        check_name(name)?;
        let _tree = self.fs.tree.lock();
        let dir = self.dir()?;
        {
            let d = dir.lock();
            if d.removed {
                return Err(Errno::ENOENT);
            }
            if d.by_name.contains_key(name) {
                return Err(Errno::EEXIST);
            }
        }
        // As Linux's inode_init_owner: the creator (root) owns the node; in a set-group-ID
        // directory it takes the directory's group.
        let (parent_mode, parent_gid) = {
            let m = self.meta.lock();
            (m.mode, m.gid)
        };
        let (node, links) = match kind {
            NewNode::File => (
                RamNode::new(&self.fs, FileType::Regular, mode, Weak::new(), &[]),
                0,
            ),
            NewNode::Directory => {
                // As Linux's inode_init_owner: a directory made in a set-group-ID directory
                // is set-group-ID too.
                let inherited = parent_mode & S_ISGID;
                (
                    RamNode::new(
                        &self.fs,
                        FileType::Directory,
                        mode | inherited,
                        self.me.clone(),
                        name,
                    ),
                    1,
                )
            }
            NewNode::Symlink(target) => (
                RamNode::with_body(
                    &self.fs,
                    FileType::Symlink,
                    0o777,
                    Body::Symlink(Arc::from(target)),
                ),
                0,
            ),
        };
        if parent_mode & S_ISGID != 0 {
            node.meta.lock().gid = parent_gid;
        }
        dir.lock().insert(name, node.clone());
        self.touch_dir(links);
        Ok(node)
    }

    fn link(&self, name: &[u8], target: &VnodeRef) -> Result<(), Errno> {
        check_name(name)?;
        let Some(node) = target.as_any().downcast_ref::<RamNode>() else {
            return Err(Errno::EXDEV);
        };
        if !Arc::ptr_eq(&node.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        if node.kind() == FileType::Directory {
            return Err(Errno::EPERM);
        }
        let _tree = self.fs.tree.lock();
        let dir = self.dir()?;
        let mut d = dir.lock();
        if d.removed {
            return Err(Errno::ENOENT);
        }
        if d.by_name.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if node.meta.lock().nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let strong = node.me.upgrade().ok_or(Errno::ENOENT)?;
        d.insert(name, strong);
        drop(d);
        node.change_links(1);
        self.touch_dir(0);
        Ok(())
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        check_name(name)?;
        let _tree = self.fs.tree.lock();
        let mut d = self.dir()?.lock();
        let node = match d.by_name.get(name) {
            None => return Err(Errno::ENOENT),
            Some((_, n)) if n.kind() == FileType::Directory => return Err(Errno::EISDIR),
            Some((_, n)) => n.clone(),
        };
        d.remove(name);
        drop(d);
        node.change_links(-1);
        self.touch_dir(0);
        Ok(())
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        check_name(name)?;
        let _tree = self.fs.tree.lock();
        let mut d = self.dir()?.lock();
        let node = match d.by_name.get(name) {
            None => return Err(Errno::ENOENT),
            Some((_, n)) if n.kind() != FileType::Directory => return Err(Errno::ENOTDIR),
            Some((_, n)) => n.clone(),
        };
        if !node.is_empty_dir() {
            return Err(Errno::ENOTEMPTY);
        }
        d.remove(name);
        drop(d);
        node.mark_removed();
        self.touch_dir(-1);
        Ok(())
    }

    fn rename(&self, old: &[u8], new_dir: &VnodeRef, new: &[u8], flags: u32) -> Result<(), Errno> {
        check_name(old)?;
        check_name(new)?;
        let Some(nd) = new_dir.as_any().downcast_ref::<RamNode>() else {
            return Err(Errno::EXDEV);
        };
        if !Arc::ptr_eq(&nd.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        let _tree = self.fs.tree.lock();
        let same_dir = core::ptr::eq(self, nd);
        let src = match self.dir()?.lock().by_name.get(old) {
            Some((_, n)) => n.clone(),
            None => return Err(Errno::ENOENT),
        };
        let dst_dir = nd.dir()?;
        let dst = dst_dir.lock().by_name.get(new).map(|(_, n)| n.clone());
        let src_is_dir = src.kind() == FileType::Directory;
        if let Some(dst) = &dst {
            if Arc::ptr_eq(dst, &src) {
                return Ok(());
            }
            if flags & crate::types::RENAME_NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            let dst_is_dir = dst.kind() == FileType::Directory;
            if src_is_dir && !dst_is_dir {
                return Err(Errno::ENOTDIR);
            }
            if !src_is_dir && dst_is_dir {
                return Err(Errno::EISDIR);
            }
            if dst_is_dir && !dst.is_empty_dir() {
                return Err(Errno::ENOTEMPTY);
            }
        } else if dst_dir.lock().removed {
            return Err(Errno::ENOENT);
        }
        // Commit.
        self.dir()?.lock().remove(old);
        if let Some(dst) = &dst {
            dst_dir.lock().remove(new);
            if dst.kind() == FileType::Directory {
                dst.mark_removed();
                nd.touch_dir(-1);
            } else {
                dst.change_links(-1);
            }
        }
        dst_dir.lock().insert(new, src.clone());
        if let Body::Dir(sd) = &src.body {
            let mut sd = sd.lock();
            sd.parent = nd.me.clone();
            sd.name = new.into();
        }
        let moved_dir_links = i32::from(src_is_dir && !same_dir);
        self.touch_dir(-moved_dir_links);
        nd.touch_dir(moved_dir_links);
        src.meta.lock().ctime = now();
        Ok(())
    }

    fn read_dir(&self, pos: u64, sink: &mut dyn FnMut(DirEntry<'_>) -> bool) -> Result<(), Errno> {
        let d = self.dir()?.lock();
        if d.removed {
            return Err(Errno::ENOENT);
        }
        for (&p, (name, node)) in d.by_pos.range(pos.max(2)..) {
            let entry = DirEntry {
                name,
                ino: node.ino,
                file_type: node.kind(),
                next: p + 1,
            };
            if !sink(entry) {
                break;
            }
        }
        Ok(())
    }

    fn is_empty_dir(&self) -> bool {
        match &self.body {
            Body::Dir(d) => d.lock().by_name.is_empty(),
            _ => false,
        }
    }

    fn readlink(&self) -> Result<Arc<[u8]>, Errno> {
        match &self.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8], _nonblock: bool) -> Result<usize, Errno> {
        let Body::File(f) = &self.body else {
            return Err(match self.kind() {
                FileType::Directory => Errno::EISDIR,
                _ => Errno::EINVAL,
            });
        };
        let f = f.lock();
        if offset >= f.size {
            return Ok(0);
        }
        let n = buf
            .len()
            .min((f.size - offset).min(usize::MAX as u64) as usize);
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let page = at / PAGE as u64;
            let within = (at % PAGE as u64) as usize;
            let chunk = (PAGE - within).min(n - done);
            match f.pages.get(&page) {
                Some(p) => p.read(within, &mut buf[done..done + chunk]),
                None => buf[done..done + chunk].fill(0),
            }
            done += chunk;
        }
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8], _nonblock: bool) -> Result<usize, Errno> {
        let Body::File(f) = &self.body else {
            return Err(Errno::EINVAL);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let mut f = f.lock();
        let end = f.writable_end(offset, offset.saturating_add(buf.len() as u64))?;
        let n = write_pages(&mut f, offset, &buf[..(end - offset) as usize])?;
        drop(f);
        self.modified();
        Ok(n)
    }

    fn append(&self, buf: &[u8], _nonblock: bool) -> Result<(usize, u64), Errno> {
        let Body::File(f) = &self.body else {
            return Err(Errno::EINVAL);
        };
        let mut f = f.lock();
        if buf.is_empty() {
            return Ok((0, f.size));
        }
        let end = f.size;
        let stop = f.writable_end(end, end.saturating_add(buf.len() as u64))?;
        let n = write_pages(&mut f, end, &buf[..(stop - end) as usize])?;
        let new_end = f.size;
        drop(f);
        self.modified();
        Ok((n, new_end))
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        let Body::File(f) = &self.body else {
            return Err(match self.kind() {
                FileType::Directory => Errno::EISDIR,
                _ => Errno::EINVAL,
            });
        };
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut f = f.lock();
        f.check_resize(len)?;
        if len < f.size {
            let first_gone = len.div_ceil(PAGE as u64);
            let gone = f.pages.split_off(&first_gone);
            // A page a mapping still holds stays (zeroed) so that the mapping and the
            // file keep sharing it; the others go.
            for (k, mut p) in gone {
                if p.mapped() {
                    p.zero(0, PAGE);
                    f.pages.insert(k, p);
                }
            }
            let within = (len % PAGE as u64) as usize;
            if within != 0 {
                if let Some(p) = f.pages.get_mut(&(len / PAGE as u64)) {
                    p.zero(within, PAGE);
                }
            }
        } else {
            let old = f.size;
            zero_range(&mut f, old, len);
        }
        f.size = len;
        drop(f);
        self.modified();
        Ok(())
    }

    fn seek_data(&self, offset: u64, hole: bool) -> Result<u64, Errno> {
        let Body::File(f) = &self.body else {
            return Ok(if hole { self.stat().size } else { offset });
        };
        let f = f.lock();
        let page = offset / PAGE as u64;
        if hole {
            let mut p = page;
            while f.pages.contains_key(&p) {
                p += 1;
            }
            Ok((p * PAGE as u64).max(offset).min(f.size))
        } else {
            match f.pages.range(page..).next() {
                Some((&p, _)) if p * (PAGE as u64) < f.size => Ok((p * PAGE as u64).max(offset)),
                _ => Err(Errno::ENXIO),
            }
        }
    }

    fn set_mode(&self, mode: u32) -> Result<(), Errno> {
        if let Body::File(f) = &self.body {
            let exec_sealed = f.lock().seals & F_SEAL_EXEC != 0;
            if exec_sealed && (self.meta.lock().mode ^ mode) & 0o111 != 0 {
                return Err(Errno::EPERM);
            }
        }
        let mut m = self.meta.lock();
        m.mode = (m.mode & S_IFMT) | (mode & 0o7777);
        m.ctime = now();
        Ok(())
    }

    fn set_times(&self, atime: TimeChange, mtime: TimeChange) -> Result<(), Errno> {
        let t = now();
        let mut m = self.meta.lock();
        m.atime = atime.apply(m.atime, t);
        m.mtime = mtime.apply(m.mtime, t);
        m.ctime = t;
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        let t = now();
        let mut m = self.meta.lock();
        if let Some(uid) = uid {
            m.uid = uid;
        }
        if let Some(gid) = gid {
            m.gid = gid;
        }
        // Linux's chown_common, root included: a non-directory loses set-user-ID, and
        // set-group-ID when it is group-executable (without group-execute the bit means
        // mandatory locking and stays).
        if m.mode & S_IFMT != S_IFDIR {
            m.mode &= !S_ISUID;
            if m.mode & 0o010 != 0 {
                m.mode &= !S_ISGID;
            }
        }
        m.ctime = t;
        Ok(())
    }

    /// Moves pages `[first, first + pages)` into one page-aligned run (or reuses the run
    /// that holds exactly them already) and maps it. Pages of the range that are holes,
    /// or past the end of file, become zeroed pages of the run.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the run cannot be allocated, or when part of the range is held by
    /// another live mapping laid out differently (its pages cannot move; mapping the same
    /// range again, or a range within one mapped run, works). Nothing changes then.
    fn map_shared(&self, first: u64, pages: usize) -> Result<SharedMap, Errno> {
        let Body::File(f) = &self.body else {
            return Err(Errno::ENODEV);
        };
        let end = first.checked_add(pages as u64).ok_or(Errno::EOVERFLOW)?;
        let mut f = f.lock();
        if let Some(Page::Run(run, i)) = f.pages.get(&first) {
            let (run, i) = (run.clone(), *i);
            let in_place = i.checked_add(pages).is_some_and(|e| e <= run.pages())
                && (0..pages).all(|k| {
                    matches!(f.pages.get(&(first + k as u64)),
                        Some(Page::Run(r, j)) if Arc::ptr_eq(r, &run) && *j == i + k)
                });
            if in_place {
                return SharedMap::new(&run, i, pages).ok_or(Errno::ENOMEM);
            }
        }
        if f.pages.range(first..end).any(|(_, p)| p.mapped()) {
            return Err(Errno::ENOMEM);
        }
        let run = Run::new(pages)?;
        let map = SharedMap::new(&run, 0, pages).ok_or(Errno::ENOMEM)?;
        for k in 0..pages {
            let index = first + k as u64;
            if let Some(p) = f.pages.get(&index) {
                p.copy_to(&run, k);
            }
            f.pages.insert(index, Page::Run(run.clone(), k));
        }
        Ok(map)
    }

    /// Grows the size under the file's lock (so a concurrent write past the new end is
    /// never undone). No memory is reserved: pages are taken when written, so unlike
    /// tmpfs a later write into the range can still fail with `ENOSPC`.
    fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> Result<(), Errno> {
        let Body::File(f) = &self.body else {
            return Err(Errno::ENODEV);
        };
        let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut f = f.lock();
        // Under F_SEAL_GROW a range past the end is refused even with KEEP_SIZE (Linux's
        // shmem).
        f.check_resize(end.max(f.size))?;
        if keep_size || f.size >= end {
            return Ok(());
        }
        let old = f.size;
        zero_range(&mut f, old, end);
        f.size = end;
        drop(f);
        self.modified();
        Ok(())
    }

    fn seals(&self) -> Result<u32, Errno> {
        match &self.body {
            Body::File(f) => Ok(f.lock().seals),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Linux's `memfd_add_seals`: `F_SEAL_EXEC` on an executable file adds the four
    /// size and write seals with it; `EPERM` once `F_SEAL_SEAL` is held; `EBUSY` for
    /// `F_SEAL_WRITE` while a page of the file is mapped shared (Linux refuses only
    /// writable shared mappings; here a read-only one counts too, this layer not knowing
    /// the mapping's protection).
    fn add_seals(&self, seals: u32) -> Result<(), Errno> {
        let Body::File(f) = &self.body else {
            return Err(Errno::EINVAL);
        };
        // Sealing an executable file's mode seals its contents too (W^X), as Linux does.
        let mut seals = seals;
        if seals & F_SEAL_EXEC != 0 && self.meta.lock().mode & 0o111 != 0 {
            seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
        }
        let mut f = f.lock();
        if f.seals & F_SEAL_SEAL != 0 {
            return Err(Errno::EPERM);
        }
        if seals & F_SEAL_WRITE != 0
            && f.seals & F_SEAL_WRITE == 0
            && f.pages.values().any(Page::mapped)
        {
            return Err(Errno::EBUSY);
        }
        f.seals |= seals;
        Ok(())
    }
}

impl FileData {
    /// Where a write of `offset..end` must stop under the seals: `EPERM` for any write
    /// under `F_SEAL_WRITE` or `F_SEAL_FUTURE_WRITE`. Under `F_SEAL_GROW` a write past
    /// the end stops at the last page boundary within the file, as Linux's page-by-page
    /// write does (a short write), and is `EPERM` when that leaves nothing.
    fn writable_end(&self, offset: u64, end: u64) -> Result<u64, Errno> {
        if self.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
            return Err(Errno::EPERM);
        }
        if end <= self.size || self.seals & F_SEAL_GROW == 0 {
            return Ok(end);
        }
        let cut = self.size - self.size % PAGE as u64;
        if cut <= offset {
            return Err(Errno::EPERM);
        }
        Ok(cut)
    }

    /// `EPERM` when the seals forbid the size `len`: smaller under `F_SEAL_SHRINK`,
    /// larger under `F_SEAL_GROW`.
    fn check_resize(&self, len: u64) -> Result<(), Errno> {
        let sealed = (len < self.size && self.seals & F_SEAL_SHRINK != 0)
            || (len > self.size && self.seals & F_SEAL_GROW != 0);
        if sealed { Err(Errno::EPERM) } else { Ok(()) }
    }
}

/// Lets the ramfs file `node` take seals, starting with `seals` (a memfd made with
/// `MFD_ALLOW_SEALING`: none, or `F_SEAL_EXEC` with `MFD_NOEXEC_SEAL`). Nothing for
/// another node.
pub(crate) fn allow_sealing(node: &VnodeRef, seals: u32) {
    if let Some(RamNode {
        body: Body::File(f),
        ..
    }) = node.as_any().downcast_ref::<RamNode>()
    {
        f.lock().seals = seals;
    }
}

impl RamNode {
    fn modified(&self) {
        let t = now();
        let mut m = self.meta.lock();
        m.mtime = t;
        m.ctime = t;
    }
}

fn write_pages(f: &mut FileData, offset: u64, buf: &[u8]) -> Result<usize, Errno> {
    if buf.is_empty() {
        return Ok(0);
    }
    if offset >= MAX_FILE_SIZE {
        return Err(Errno::EFBIG);
    }
    let n = buf.len().min((MAX_FILE_SIZE - offset) as usize);
    let mut done = 0;
    while done < n {
        let at = offset + done as u64;
        let page = at / PAGE as u64;
        let within = (at % PAGE as u64) as usize;
        let chunk = (PAGE - within).min(n - done);
        let p = match f.pages.entry(page) {
            alloc::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            alloc::collections::btree_map::Entry::Vacant(e) => {
                let Some(fresh) = new_page() else {
                    if done == 0 {
                        return Err(Errno::ENOSPC);
                    }
                    break;
                };
                e.insert(Page::Own(fresh))
            }
        };
        p.write(within, &buf[done..done + chunk]);
        done += chunk;
    }
    let old = f.size;
    let end = offset + done as u64;
    if end > old {
        // Bytes between the old end and the write read as zeros.
        zero_range(f, old, offset.min(end));
        f.size = end;
    }
    Ok(done)
}

fn new_page() -> Option<Box<[u8; PAGE]>> {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(PAGE).ok()?;
    v.resize(PAGE, 0);
    v.into_boxed_slice().try_into().ok()
}
