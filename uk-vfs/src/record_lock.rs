//! POSIX record locks (`fcntl` `F_GETLK`, `F_SETLK`, `F_SETLKW`) and open file
//! description locks (`F_OFD_GETLK`, `F_OFD_SETLK`, `F_OFD_SETLKW`), as Linux keeps them.
//!
//! A record lock covers a byte range of a file, from a start to an end or to wherever the
//! file will end, and is shared (`F_RDLCK`: other readers may lock the range too) or
//! exclusive (`F_WRLCK`). Two kinds of owner hold them, and locks of different owners
//! conflict alike:
//!
//! - **POSIX locks** (`F_SETLK`) belong to the process, that is to its descriptor table (a
//!   [`Vfs`], as Linux's owner is the table). A process never conflicts with itself: a new
//!   lock replaces what it held in its range, splitting or merging its own locks. Closing
//!   *any* descriptor of the file releases all of the process's locks on it, even when
//!   other descriptors of that file stay open: POSIX's rule, and Linux's.
//! - **Open file description locks** (`F_OFD_SETLK`) belong to the open file description,
//!   as `flock` locks do: descriptors `dup` made share them, two `open`s of one file
//!   conflict even in one process, and they go with the description's last close.
//!
//! Locks are taken on the file, keyed by its device and inode number (as [`flock`] locks
//! are), so every `Vfs` of the image sees them. `F_SETLKW` waits on the file's [`Wait`]
//! while the request conflicts: a signal's handler ends the wait with `EINTR`, or
//! restarts the call when it was installed with `SA_RESTART` (see [`crate::wait`]); a
//! POSIX request that would wait for a process that (through the locks it waits for)
//! waits for the caller fails with `EDEADLK` instead, as Linux detects it (following
//! at most 10 owners).
//!
//! The table is a map from file to a vector of locks: a program holds a handful of locks
//! per file, so a vector scan is what is fastest here. Locks of a 9P mount are kept in the
//! image: processes on the host do not see them.
//!
//! [`flock`]: crate::flock
//! [`Wait`]: crate::wait::Wait

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Mutex;

use crate::file::{Fd, OpenFile};
use crate::flock::LockKey;
use crate::types::{SEEK_CUR, SEEK_END, SEEK_SET};
use crate::wait::{Wait, new_wait, restarting};
use crate::{Errno, Vfs};

/// `fcntl`: the first lock that would conflict with the one described (POSIX owner).
pub const F_GETLK: u32 = 5;
/// `fcntl`: take or release a POSIX lock; `EAGAIN` on a conflict.
pub const F_SETLK: u32 = 6;
/// `fcntl`: take or release a POSIX lock, waiting while it conflicts.
pub const F_SETLKW: u32 = 7;
/// `fcntl`: as [`F_GETLK`], for an open file description lock.
pub const F_OFD_GETLK: u32 = 36;
/// `fcntl`: as [`F_SETLK`], for an open file description lock.
pub const F_OFD_SETLK: u32 = 37;
/// `fcntl`: as [`F_SETLKW`], for an open file description lock.
pub const F_OFD_SETLKW: u32 = 38;
/// Lock type: shared (the descriptor must be open for reading).
pub const F_RDLCK: i16 = 0;
/// Lock type: exclusive (the descriptor must be open for writing).
pub const F_WRLCK: i16 = 1;
/// Lock type: release.
pub const F_UNLCK: i16 = 2;
/// Size of Linux's `struct flock` on x86_64 and aarch64.
pub const FLOCK_SIZE: usize = 32;

/// The last byte a lock can cover (Linux's `OFFSET_MAX`): a lock to the end of the file
/// ends here.
const OFFSET_MAX: u64 = i64::MAX as u64;
/// Owners followed when looking for a deadlock (Linux's `MAX_DEADLK_ITERATIONS`).
const MAX_DEADLOCK_STEPS: usize = 10;

/// Linux's `struct flock`: what `fcntl`'s lock commands read and (`F_GETLK`) write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flock {
    /// [`F_RDLCK`], [`F_WRLCK`] or [`F_UNLCK`].
    pub l_type: i16,
    /// What `l_start` counts from: `SEEK_SET`, `SEEK_CUR` (the file position) or
    /// `SEEK_END` (the file's size).
    pub l_whence: i16,
    /// The first byte, from `l_whence`.
    pub l_start: i64,
    /// The length: 0 is "to the end of the file, wherever it will be"; a negative length
    /// covers the `-l_len` bytes before `l_start`.
    pub l_len: i64,
    /// `F_GETLK`: the process holding the conflicting lock (-1 for an open file
    /// description lock); must be 0 for the `F_OFD_*` commands.
    pub l_pid: i32,
}

impl Flock {
    /// Decodes the caller's `struct flock` (native byte order; padding ignored).
    pub fn from_bytes(raw: &[u8; FLOCK_SIZE]) -> Flock {
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            i64::from_ne_bytes(b)
        };
        Flock {
            l_type: i16::from_ne_bytes([raw[0], raw[1]]),
            l_whence: i16::from_ne_bytes([raw[2], raw[3]]),
            l_start: word(8),
            l_len: word(16),
            l_pid: i32::from_ne_bytes([raw[24], raw[25], raw[26], raw[27]]),
        }
    }

    /// Encodes it as the caller's `struct flock` (padding zeroed).
    pub fn to_bytes(&self) -> [u8; FLOCK_SIZE] {
        let mut raw = [0u8; FLOCK_SIZE];
        raw[0..2].copy_from_slice(&self.l_type.to_ne_bytes());
        raw[2..4].copy_from_slice(&self.l_whence.to_ne_bytes());
        raw[8..16].copy_from_slice(&self.l_start.to_ne_bytes());
        raw[16..24].copy_from_slice(&self.l_len.to_ne_bytes());
        raw[24..28].copy_from_slice(&self.l_pid.to_ne_bytes());
        raw
    }
}

/// Who holds a record lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Owner {
    /// A process: the id of its descriptor table ([`Vfs`]).
    Process(u64),
    /// An open file description: its address, unique while it lives (it releases its
    /// locks before it goes).
    Description(usize),
}

/// One lock: `owner` holds bytes `start..=end` shared or (`write`) exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) owner: Owner,
    /// The process that took it (`F_GETLK`'s `l_pid`).
    pub(crate) pid: i32,
    pub(crate) write: bool,
    pub(crate) start: u64,
    /// The last byte covered (inclusive; [`OFFSET_MAX`] for "to the end").
    pub(crate) end: u64,
}

impl Record {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }

    /// Whether this lock stands in the way of `req`.
    fn conflicts_with(&self, req: &Record) -> bool {
        self.owner != req.owner && (self.write || req.write) && self.overlaps(req.start, req.end)
    }

    /// What `F_GETLK` reports about this lock.
    fn describe(&self) -> Flock {
        Flock {
            l_type: if self.write { F_WRLCK } else { F_RDLCK },
            l_whence: SEEK_SET as i16,
            l_start: self.start as i64,
            l_len: if self.end == OFFSET_MAX {
                0
            } else {
                (self.end - self.start + 1) as i64
            },
            l_pid: match self.owner {
                Owner::Process(_) => self.pid,
                Owner::Description(_) => -1,
            },
        }
    }
}

/// The first lock of `records` that stands in the way of `req`.
pub(crate) fn first_conflict<'a>(records: &'a [Record], req: &Record) -> Option<&'a Record> {
    records.iter().find(|r| r.conflicts_with(req))
}

/// Applies `req`'s owner's request to `records`: its locks in `req`'s range are released
/// (the parts outside the range stay, so a lock may split in two), and unless `unlock`
/// the range is locked as `req` says, merged with the owner's locks of the same kind that
/// touch it. The caller has checked that nothing conflicts. Returns how the number of
/// POSIX locks changed.
pub(crate) fn apply(records: &mut Vec<Record>, req: Record, unlock: bool) -> isize {
    let before = records.len() as isize;
    let posix = matches!(req.owner, Owner::Process(_));
    let mut merged = req;
    let mut kept = Vec::with_capacity(records.len() + 2);
    for r in records.drain(..) {
        if r.owner != req.owner {
            kept.push(r);
            continue;
        }
        let touches = r.overlaps(req.start.saturating_sub(1), req.end.saturating_add(1));
        if !unlock && r.write == req.write && touches {
            // Same kind, overlapping or adjacent: one lock.
            merged.start = merged.start.min(r.start);
            merged.end = merged.end.max(r.end);
            continue;
        }
        if !r.overlaps(req.start, req.end) {
            kept.push(r);
            continue;
        }
        if r.start < req.start {
            kept.push(Record {
                end: req.start - 1,
                ..r
            });
        }
        if r.end > req.end {
            kept.push(Record {
                start: req.end + 1,
                ..r
            });
        }
    }
    if !unlock {
        kept.push(merged);
    }
    *records = kept;
    if posix {
        records.len() as isize - before
    } else {
        0
    }
}

/// The locks of one file.
struct FileRecords {
    records: Vec<Record>,
    /// Requests waiting on `wait`; the entry (and its `wait`) stays while any does.
    waiters: usize,
    wait: Arc<dyn Wait>,
}

/// Every file with a lock or a waiter, and the POSIX owners waiting (for deadlocks).
struct Table {
    files: BTreeMap<LockKey, FileRecords>,
    /// Each waiting `F_SETLKW` request of a POSIX owner, and its file.
    blocked: Vec<(LockKey, Record)>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    files: BTreeMap::new(),
    blocked: Vec::new(),
});

/// POSIX locks held anywhere: while 0, closing a descriptor has nothing to release.
static POSIX_LOCKS: AtomicUsize = AtomicUsize::new(0);

fn count_posix(delta: isize) {
    if delta >= 0 {
        POSIX_LOCKS.fetch_add(delta as usize, Ordering::Relaxed);
    } else {
        POSIX_LOCKS.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

impl Table {
    /// Removes `key`'s entry once nobody holds or waits for a lock on it.
    fn tidy(&mut self, key: LockKey) {
        if self
            .files
            .get(&key)
            .is_some_and(|f| f.records.is_empty() && f.waiters == 0)
        {
            self.files.remove(&key);
        }
    }

    /// Whether `req` (a POSIX owner's), blocked by a lock of `blocker`, would wait in a
    /// cycle: `blocker` waits for a lock whose owner waits ... for `req`'s owner.
    fn deadlocks(&self, req: &Record, mut blocker: Owner) -> bool {
        for _ in 0..MAX_DEADLOCK_STEPS {
            if blocker == req.owner {
                return true;
            }
            let Some((key, waiting)) = self.blocked.iter().find(|(_, w)| w.owner == blocker) else {
                return false;
            };
            let next = self
                .files
                .get(key)
                .and_then(|f| first_conflict(&f.records, waiting));
            match next {
                Some(r) if matches!(r.owner, Owner::Process(_)) => blocker = r.owner,
                _ => return false,
            }
        }
        false
    }

    /// Releases every lock of `owner` on `key` (or on every file, `key` `None`); returns
    /// the waits to wake.
    fn release(&mut self, key: Option<LockKey>, owner: Owner) -> Vec<Arc<dyn Wait>> {
        let mut wake = Vec::new();
        let keys: Vec<LockKey> = match key {
            Some(k) => alloc::vec![k],
            None => self.files.keys().copied().collect(),
        };
        for k in keys {
            let Some(file) = self.files.get_mut(&k) else {
                continue;
            };
            let before = file.records.len();
            file.records.retain(|r| r.owner != owner);
            let gone = before - file.records.len();
            if gone > 0 {
                if matches!(owner, Owner::Process(_)) {
                    count_posix(-(gone as isize));
                }
                wake.push(file.wait.clone());
                self.tidy(k);
            }
        }
        wake
    }
}

fn wake(waits: Vec<Arc<dyn Wait>>) {
    for w in waits {
        w.wake_all();
    }
}

/// Releases the locks of `owner` on `key` (every file when `None`) and wakes the requests
/// waiting on them.
pub(crate) fn release(key: Option<LockKey>, owner: Owner) {
    if matches!(owner, Owner::Process(_)) && POSIX_LOCKS.load(Ordering::Relaxed) == 0 {
        return;
    }
    let waits = TABLE.lock().release(key, owner);
    wake(waits);
}

/// Whether any POSIX lock is held (so a close may have one to release).
pub(crate) fn posix_locks_held() -> bool {
    POSIX_LOCKS.load(Ordering::Relaxed) != 0
}

/// The lock of `key` that stands in the way of `req`, as `F_GETLK` reports it.
/// With `own` (an `F_OFD_GETLK` asking with `F_UNLCK`), the first lock of `req`'s own
/// owner in its range instead, as Linux (since 6.10) answers that question.
fn test(key: LockKey, req: &Record, own: bool) -> Option<Flock> {
    let table = TABLE.lock();
    let records = &table.files.get(&key)?.records;
    let found = if own {
        records
            .iter()
            .find(|r| r.owner == req.owner && r.overlaps(req.start, req.end))
    } else {
        first_conflict(records, req)
    };
    found.map(Record::describe)
}

/// Takes or releases (`unlock`) `req` on `key`, waiting while it conflicts unless
/// `nonblock` (then `EAGAIN`).
fn set(key: LockKey, req: Record, unlock: bool, nonblock: bool) -> Result<(), Errno> {
    let mut table = TABLE.lock();
    // Nothing to release on a file without locks: no entry (and no wait) is made for it.
    if unlock && !table.files.contains_key(&key) {
        return Ok(());
    }
    loop {
        let file = table.files.entry(key).or_insert_with(|| FileRecords {
            records: Vec::new(),
            waiters: 0,
            wait: Arc::from(new_wait()),
        });
        let blocker = if unlock {
            None
        } else {
            first_conflict(&file.records, &req).map(|r| r.owner)
        };
        let Some(blocker) = blocker else {
            count_posix(apply(&mut file.records, req, unlock));
            // A release or a downgrade may let a waiter in.
            let waits = (file.waiters > 0).then(|| file.wait.clone());
            table.tidy(key);
            drop(table);
            if let Some(w) = waits {
                w.wake_all();
            }
            return Ok(());
        };
        if nonblock {
            table.tidy(key);
            return Err(Errno::EAGAIN);
        }
        let posix = matches!(req.owner, Owner::Process(_));
        if posix && table.deadlocks(&req, blocker) {
            table.tidy(key);
            return Err(Errno::EDEADLK);
        }
        let file = table.files.get_mut(&key).expect("made above");
        file.waiters += 1;
        let wait = file.wait.clone();
        if posix {
            table.blocked.push((key, req));
        }
        drop(table);
        let waited = wait.wait(&mut || {
            TABLE
                .lock()
                .files
                .get(&key)
                .is_none_or(|f| first_conflict(&f.records, &req).is_none())
        });
        table = TABLE.lock();
        table
            .files
            .get_mut(&key)
            .expect("kept while waited on")
            .waiters -= 1;
        if posix {
            if let Some(i) = table.blocked.iter().position(|b| *b == (key, req)) {
                table.blocked.swap_remove(i);
            }
        }
        if let Err(e) = waited {
            table.tidy(key);
            return Err(e);
        }
    }
}

impl Vfs {
    /// `fcntl(fd, cmd, lock)` for the record lock commands ([`F_GETLK`], [`F_SETLK`],
    /// [`F_SETLKW`] and their `F_OFD_` forms; see the [module documentation](self)).
    /// `F_GETLK` writes into `lock` the first lock that would stand in the way of the one
    /// described, or sets `l_type` to [`F_UNLCK`] when none would; `F_OFD_GETLK` asked
    /// with `F_UNLCK` reports the description's own first lock in the range instead, as
    /// Linux does since 6.10.
    ///
    /// # Errors
    ///
    /// In Linux's order: `EBADF` for a closed `fd`; `EINVAL` for another `cmd`, an unknown
    /// `l_type` or `l_whence`, `F_UNLCK` asked of `F_GETLK`, or a range that starts before
    /// byte 0; `EOVERFLOW` for a range past the largest offset; `EBADF` for `F_RDLCK` on a
    /// descriptor not open for reading, or `F_WRLCK` on one not open for writing; `EINVAL`
    /// for an `F_OFD_` command whose `l_pid` is not 0; `EAGAIN` when an `F_SETLK`
    /// conflicts; from an `F_SETLKW` wait: `EDEADLK` (a cycle of POSIX owners, or no
    /// thread to switch to), `EINTR` (a signal's handler ran; with `SA_RESTART` the call
    /// is made again from the lookup of `fd`). A refused request changes nothing.
    pub fn fcntl_lock(&self, fd: Fd, cmd: u32, lock: &mut Flock) -> Result<(), Errno> {
        let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
        let get = matches!(cmd, F_GETLK | F_OFD_GETLK);
        let wait = matches!(cmd, F_SETLKW | F_OFD_SETLKW);
        restarting(|| {
            let f = self.file(fd)?;
            if !(get || wait || matches!(cmd, F_SETLK | F_OFD_SETLK)) {
                return Err(Errno::EINVAL);
            }
            // Linux lets F_OFD_GETLK ask with F_UNLCK (it then finds the description's
            // own locks), not F_GETLK.
            let unlock = match lock.l_type {
                F_RDLCK | F_WRLCK => false,
                F_UNLCK if !get || cmd == F_OFD_GETLK => true,
                _ => return Err(Errno::EINVAL),
            };
            let (start, end) = self.range(&f, lock)?;
            if !get {
                let allowed = match lock.l_type {
                    F_RDLCK => f.readable(),
                    F_WRLCK => f.writable(),
                    _ => true,
                };
                if !allowed {
                    return Err(Errno::EBADF);
                }
            }
            if ofd && lock.l_pid != 0 {
                return Err(Errno::EINVAL);
            }
            let req = Record {
                owner: if ofd {
                    Owner::Description(f.lock_owner())
                } else {
                    Owner::Process(self.id())
                },
                pid: self.pid(),
                write: lock.l_type == F_WRLCK,
                start,
                end,
            };
            let key = f.lock_key();
            if get {
                match test(key, &req, unlock) {
                    Some(found) => *lock = found,
                    None => lock.l_type = F_UNLCK,
                }
                return Ok(());
            }
            set(key, req, unlock, !wait)
        })
    }

    /// The bytes `lock` describes on `f`, as Linux's `flock_to_posix_lock` computes them:
    /// (first, last), the last being [`OFFSET_MAX`] for a lock to the end.
    fn range(&self, f: &OpenFile, lock: &Flock) -> Result<(u64, u64), Errno> {
        let base: i64 = match lock.l_whence as u32 {
            SEEK_SET => 0,
            SEEK_CUR => i64::try_from(*f.pos.lock()).map_err(|_| Errno::EOVERFLOW)?,
            SEEK_END => {
                i64::try_from(f.object.node().map_or(0, |n| n.stat().size)).unwrap_or(i64::MAX)
            }
            _ => return Err(Errno::EINVAL),
        };
        // Linux adds as the kernel's wrapping arithmetic does: past the largest offset,
        // the start is negative, and that is EINVAL.
        let start = base.wrapping_add(lock.l_start);
        if start < 0 {
            return Err(Errno::EINVAL);
        }
        match lock.l_len {
            0 => Ok((start as u64, OFFSET_MAX)),
            len if len > 0 => {
                if len - 1 > i64::MAX - start {
                    return Err(Errno::EOVERFLOW);
                }
                Ok((start as u64, (start + (len - 1)) as u64))
            }
            len => {
                let first = start
                    .checked_add(len)
                    .filter(|&s| s >= 0)
                    .ok_or(Errno::EINVAL)?;
                Ok((first as u64, start as u64 - 1))
            }
        }
    }

    /// Releases the caller process's POSIX locks on the file `f` is open on: what closing
    /// any descriptor of a file does.
    pub(crate) fn release_posix_locks(&self, f: &OpenFile) {
        if posix_locks_held() {
            release(Some(f.lock_key()), Owner::Process(self.id()));
        }
    }
}
