//! BSD `flock` locks, as Linux keeps them.
//!
//! A lock belongs to an open file description (so descriptors `dup` made share it, and two
//! `open`s of one file conflict even in one process) and is taken on the file: the key is
//! its device and inode number, so two vnodes a filesystem made for one file (a 9P mount
//! may) share locks, and so do the `Vfs`es of every process. Any number of descriptions
//! may hold a shared lock, one an exclusive lock. The last close of a description releases
//! its lock (the description's `Drop` does it).
//!
//! A request that conflicts waits on the file's [`Wait`] (the seam pipes block on) until a
//! lock is released, or fails with `EWOULDBLOCK` with `LOCK_NB`; a signal that runs a
//! handler ends the wait with `EINTR` (a handler with `SA_RESTART` lets it go on), when
//! the [`Wait`] in use tells (see [`crate::wait`]). Converting a held lock
//! is Linux's (and BSD's) two steps: the old lock is released first, then the new one is
//! requested, so a conversion that has to wait lets others in, and one that fails with
//! `LOCK_NB` leaves the description without a lock. Locks of a 9P mount are kept here,
//! in the image: processes on the host do not see them.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use crate::file::Fd;
use crate::types::{LOCK_EX, LOCK_MAND, LOCK_NB, LOCK_SH, LOCK_UN};
use crate::wait::{Wait, new_wait, restarting};
use crate::{Errno, Vfs};

/// What a lock is taken on: the file's device and inode number.
pub(crate) type LockKey = (u64, u64);

/// The locks of one file.
struct Entry {
    /// Holders: (open file description, exclusive).
    holders: Vec<(usize, bool)>,
    /// Requests waiting on `wait`; the entry (and its `wait`) stays while any does.
    waiters: usize,
    wait: Arc<dyn Wait>,
}

impl Entry {
    fn conflicts(&self, owner: usize, exclusive: bool) -> bool {
        self.holders
            .iter()
            .any(|&(o, ex)| o != owner && (exclusive || ex))
    }
}

/// Every file with a lock or a waiter.
static LOCKS: Mutex<BTreeMap<LockKey, Entry>> = Mutex::new(BTreeMap::new());

/// Removes `key`'s entry once nobody holds or waits for a lock on it.
fn tidy(table: &mut BTreeMap<LockKey, Entry>, key: LockKey) {
    if table
        .get(&key)
        .is_some_and(|e| e.holders.is_empty() && e.waiters == 0)
    {
        table.remove(&key);
    }
}

/// Takes (or converts to) a shared or exclusive lock for `owner` on `key`, waiting while it
/// conflicts unless `nonblock` (then `EWOULDBLOCK`).
fn lock(key: LockKey, owner: usize, exclusive: bool, nonblock: bool) -> Result<(), Errno> {
    let mut table = LOCKS.lock();
    let entry = table.entry(key).or_insert_with(|| Entry {
        holders: Vec::new(),
        waiters: 0,
        wait: Arc::from(new_wait()),
    });
    let mut released = false;
    if let Some(i) = entry.holders.iter().position(|&(o, _)| o == owner) {
        if entry.holders[i].1 == exclusive {
            return Ok(());
        }
        // A conversion releases the old lock first, as Linux does.
        entry.holders.swap_remove(i);
        released = true;
    }
    loop {
        let entry = table.get_mut(&key).expect("kept while in use");
        if !entry.conflicts(owner, exclusive) {
            entry.holders.push((owner, exclusive));
            let wait = entry.wait.clone();
            drop(table);
            if released {
                wait.wake_all();
            }
            return Ok(());
        }
        let wait = entry.wait.clone();
        if nonblock {
            tidy(&mut table, key);
            drop(table);
            if released {
                wait.wake_all();
            }
            return Err(Errno::EWOULDBLOCK);
        }
        entry.waiters += 1;
        drop(table);
        if core::mem::take(&mut released) {
            wait.wake_all();
        }
        let waited = wait.wait(&mut || {
            LOCKS
                .lock()
                .get(&key)
                .is_none_or(|e| !e.conflicts(owner, exclusive))
        });
        table = LOCKS.lock();
        table.get_mut(&key).expect("kept while waited on").waiters -= 1;
        if let Err(e) = waited {
            tidy(&mut table, key);
            return Err(e);
        }
    }
}

/// Releases `owner`'s lock on `key`, if it holds one, and wakes the requests waiting on
/// the file.
pub(crate) fn release(key: LockKey, owner: usize) {
    let mut table = LOCKS.lock();
    let Some(entry) = table.get_mut(&key) else {
        return;
    };
    let Some(i) = entry.holders.iter().position(|&(o, _)| o == owner) else {
        return;
    };
    entry.holders.swap_remove(i);
    let wait = entry.wait.clone();
    tidy(&mut table, key);
    drop(table);
    wait.wake_all();
}

impl Vfs {
    /// `flock(fd, op)`: BSD locks on the open file description of `fd` (see the
    /// [`flock`](crate::flock) module). `op` is `LOCK_SH` or `LOCK_EX`, either with
    /// `LOCK_NB` (`EWOULDBLOCK` instead of waiting), or `LOCK_UN`; holding the asked lock
    /// already succeeds, and a held lock of the other kind is converted. Any other `op` is
    /// `EINVAL` (checked before the descriptor, as Linux does), except that `LOCK_MAND`
    /// requests succeed and do nothing, as on Linux. Pipes and directories lock too.
    ///
    /// # Errors
    ///
    /// `EINVAL`, `EBADF`, `EWOULDBLOCK`; `EDEADLK` if the caller would wait with no thread
    /// to switch to (the [`Wait`] seam's rule); `EINTR` when a signal's handler (without
    /// `SA_RESTART`) ran while it waited.
    pub fn flock(&self, fd: Fd, op: u32) -> Result<(), Errno> {
        if op & LOCK_MAND != 0 {
            return Ok(());
        }
        let exclusive = match op & !LOCK_NB {
            LOCK_SH => Some(false),
            LOCK_EX => Some(true),
            LOCK_UN => None,
            _ => return Err(Errno::EINVAL),
        };
        // Restarted from the lookup of `fd` (see `crate::wait`).
        restarting(|| {
            let f = self.file(fd)?;
            let key = f.lock_key();
            match exclusive {
                None => {
                    release(key, f.lock_owner());
                    Ok(())
                }
                Some(ex) => lock(key, f.lock_owner(), ex, op & LOCK_NB != 0),
            }
        })
    }
}
