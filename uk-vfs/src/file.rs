//! Open file descriptions and the per-process descriptor table.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

use crate::Errno;
use crate::epoll::Epoll;
use crate::eventfd::EventFd;
use crate::flock::{self, LockKey};
use crate::pidfd::PidFd;
use crate::pipe::PipeEnd;
use crate::record_lock;
use crate::signalfd::SignalFd;
use crate::timerfd::TimerFd;
use crate::types::{DEFAULT_MAX_FDS, O_ACCMODE, O_NONBLOCK, O_RDWR, O_WRONLY};
use crate::vnode::VnodeRef;

/// A file descriptor number.
pub type Fd = i32;

/// What an open file description refers to.
pub(crate) enum Object {
    /// A node of a mounted filesystem.
    Node(VnodeRef),
    /// One end of a pipe.
    Pipe(PipeEnd),
    /// An eventfd counter.
    EventFd(EventFd),
    /// An epoll set.
    Epoll(Epoll),
    /// A timerfd.
    TimerFd(TimerFd),
    /// A signalfd.
    SignalFd(SignalFd),
    /// A pidfd.
    PidFd(PidFd),
}

impl Object {
    /// Whether it is an anonymous-inode file (an eventfd, epoll set, timerfd, signalfd or
    /// pidfd): what Linux makes with `anon_inode_getfile`, all sharing one inode, seeking
    /// with `noop_llseek`, never spliced. The one list of them the other matches lean on.
    pub(crate) fn is_anonymous(&self) -> bool {
        match self {
            Object::EventFd(_)
            | Object::Epoll(_)
            | Object::TimerFd(_)
            | Object::SignalFd(_)
            | Object::PidFd(_) => true,
            Object::Node(_) | Object::Pipe(_) => false,
        }
    }

    /// What `poll` reports for a pipe end or an anonymous file that is no epoll set, with
    /// its generation, read first (see [`crate::epoll`]'s module docs); `None` for a node
    /// or an epoll set, whose readiness their callers work out.
    pub(crate) fn own_readiness(&self) -> Option<(u16, u64)> {
        // A tuple's parts are evaluated in order: each generation before the readiness.
        let (generation, events) = match self {
            Object::Pipe(p) => (p.generation(), p.poll_events()),
            Object::EventFd(e) => (e.generation(), e.poll_events()),
            Object::TimerFd(t) => (t.generation(), t.poll_events()),
            Object::SignalFd(s) => (s.generation(), s.poll_events()),
            Object::PidFd(p) => (p.generation(), p.poll_events()),
            Object::Node(_) | Object::Epoll(_) => return None,
        };
        Some((events, generation))
    }

    /// `fstat` of an object that is not a node: a pipe's own, the shared anonymous inode
    /// of the anonymous files.
    pub(crate) fn special_stat(&self) -> Option<crate::types::Stat> {
        match self {
            Object::Node(_) => None,
            Object::Pipe(p) => Some(p.stat()),
            _ => Some(crate::eventfd::anon_stat()),
        }
    }

    /// The node, for what only nodes do.
    pub(crate) fn node(&self) -> Option<&VnodeRef> {
        match self {
            Object::Node(n) => Some(n),
            _ => None,
        }
    }
}

/// Where an open file description's node was found, for the path `/proc/<pid>/fd/N`
/// shows (Linux's `d_path` of the open file).
#[derive(Clone)]
pub(crate) enum Origin {
    /// Opened by a path: the directory that held it and its name there (a directory's
    /// own path is found from the node, so directories record nothing).
    Entry(VnodeRef, alloc::boxed::Box<[u8]>),
    /// A fixed name (a memfd's `/memfd:NAME (deleted)`).
    Label(alloc::boxed::Box<[u8]>),
}

/// An open file description: the object, the status flags, the offset and the `flock`
/// lock, shared by every descriptor `dup` made from the same `open`. Dropping the last
/// reference (the last descriptor closed) releases its lock.
pub struct OpenFile {
    pub(crate) object: Object,
    pub(crate) flags: AtomicU32,
    pub(crate) pos: Mutex<u64>,
    /// The file's lock key, set by the first `flock` on this description.
    pub(crate) lock_key: spin::Once<LockKey>,
    /// Where the node was found (`None`: a directory, a pipe, an eventfd, an epoll set).
    pub(crate) origin: Option<Origin>,
}

impl OpenFile {
    pub(crate) fn new(object: Object, flags: u32) -> Arc<Self> {
        Arc::new(OpenFile {
            object,
            flags: AtomicU32::new(flags),
            pos: Mutex::new(0),
            lock_key: spin::Once::new(),
            origin: None,
        })
    }

    /// As [`OpenFile::new`], remembering where the node was found.
    pub(crate) fn with_origin(object: Object, flags: u32, origin: Option<Origin>) -> Arc<Self> {
        Arc::new(OpenFile {
            object,
            flags: AtomicU32::new(flags),
            pos: Mutex::new(0),
            lock_key: spin::Once::new(),
            origin,
        })
    }

    /// Who holds locks in the [`flock`](crate::flock) table: this description's address,
    /// unique while it lives (and it releases its lock before it goes).
    pub(crate) fn lock_owner(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// The key of the file this description is open on, in the lock tables: its device
    /// and inode number (asked of the file once).
    pub(crate) fn lock_key(&self) -> LockKey {
        *self.lock_key.call_once(|| {
            let st = match &self.object {
                Object::Node(n) => n.stat(),
                other => other.special_stat().unwrap_or_default(),
            };
            (st.dev, st.ino)
        })
    }

    /// The status flags (`F_GETFL`).
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    pub(crate) fn readable(&self) -> bool {
        let acc = self.flags() & O_ACCMODE;
        acc == 0 || acc == O_RDWR
    }

    pub(crate) fn writable(&self) -> bool {
        let acc = self.flags() & O_ACCMODE;
        acc == O_WRONLY || acc == O_RDWR
    }

    pub(crate) fn nonblock(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if let Some(&key) = self.lock_key.get() {
            flock::release(key, self.lock_owner());
            record_lock::release(
                Some(key),
                record_lock::Owner::Description(self.lock_owner()),
            );
        }
    }
}

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    cloexec: bool,
}

/// A descriptor table: lowest free number first, at most `max` descriptors (`RLIMIT_NOFILE`).
pub(crate) struct FdTable {
    slots: Vec<Option<Slot>>,
    max: usize,
    /// No free slot below this index.
    first_free: usize,
    /// Open descriptors.
    count: usize,
}

impl FdTable {
    pub(crate) fn new() -> Self {
        FdTable {
            slots: Vec::new(),
            max: DEFAULT_MAX_FDS,
            first_free: 0,
            count: 0,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    pub(crate) fn get(&self, fd: Fd) -> Result<&Arc<OpenFile>, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .map(|s| &s.file)
            .ok_or(Errno::EBADF)
    }

    pub(crate) fn cloexec(&self, fd: Fd) -> Result<bool, Errno> {
        self.slot(fd).map(|s| s.cloexec)
    }

    fn slot(&self, fd: Fd) -> Result<&Slot, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .ok_or(Errno::EBADF)
    }

    pub(crate) fn set_cloexec(&mut self, fd: Fd, cloexec: bool) -> Result<(), Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        match self.slots.get_mut(i).and_then(|s| s.as_mut()) {
            Some(s) => {
                s.cloexec = cloexec;
                Ok(())
            }
            None => Err(Errno::EBADF),
        }
    }

    /// The lowest free descriptor at or above `min`, below the limit.
    pub(crate) fn lowest_free(&self, min: usize) -> Result<usize, Errno> {
        let mut i = min.max(self.first_free);
        while i < self.slots.len() && self.slots[i].is_some() {
            i += 1;
        }
        if i >= self.max {
            return Err(Errno::EMFILE);
        }
        Ok(i)
    }

    pub(crate) fn install_at(&mut self, i: usize, file: Arc<OpenFile>, cloexec: bool) {
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        if self.slots[i].is_none() {
            self.count += 1;
        }
        self.slots[i] = Some(Slot { file, cloexec });
        if i == self.first_free {
            self.first_free = i + 1;
        }
    }

    pub(crate) fn alloc(
        &mut self,
        min: usize,
        file: Arc<OpenFile>,
        cloexec: bool,
    ) -> Result<Fd, Errno> {
        let i = self.lowest_free(min)?;
        self.install_at(i, file, cloexec);
        Ok(i as Fd)
    }

    /// Replaces `fd`'s slot; returns the file that was there (to drop outside the lock).
    pub(crate) fn replace(
        &mut self,
        fd: usize,
        file: Arc<OpenFile>,
        cloexec: bool,
    ) -> Option<Arc<OpenFile>> {
        let old = self.take(fd);
        self.install_at(fd, file, cloexec);
        old
    }

    pub(crate) fn take(&mut self, fd: usize) -> Option<Arc<OpenFile>> {
        let old = self.slots.get_mut(fd)?.take()?;
        self.count -= 1;
        if fd < self.first_free {
            self.first_free = fd;
        }
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        Some(old.file)
    }

    /// Every open file description in the table (one per descriptor; `dup`s repeat).
    pub(crate) fn files(&self) -> impl Iterator<Item = &Arc<OpenFile>> {
        self.slots.iter().flatten().map(|s| &s.file)
    }

    /// The open descriptors, lowest first.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = Fd> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as Fd)
    }

    pub(crate) fn open_count(&self) -> usize {
        self.count
    }

    /// Whether every descriptor below the limit may be taken (if not, one is free: fewer
    /// than `max` are open).
    pub(crate) fn maybe_full(&self) -> bool {
        self.count >= self.max
    }
}
