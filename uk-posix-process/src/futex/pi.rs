//! Priority-inheritance futexes: FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI and
//! FUTEX_UNLOCK_PI, with Linux's user-space protocol (futex(2), "Priority-inheritance
//! futexes").
//!
//! The word holds its owner's tid ([`FUTEX_TID_MASK`]), [`FUTEX_WAITERS`] while threads may
//! wait in the kernel, and [`FUTEX_OWNER_DIED`]. User space takes a free lock by
//! compare-and-swap of 0 to its tid, and releases it by swapping its tid back to 0; only
//! when that fails (the word is not 0, or has `FUTEX_WAITERS`) does it call in:
//!
//! - LOCK_PI takes the word for the caller when its tid field is 0 (keeping
//!   `FUTEX_OWNER_DIED`: a robust mutex's next owner sees it), and otherwise sets
//!   `FUTEX_WAITERS` and waits, in FIFO order, until the owner hands the word over. Errors
//!   as Linux's: `EDEADLK` when the caller owns the word, `ESRCH` when its owner's tid names
//!   no live thread, `ETIMEDOUT` at the absolute deadline (`CLOCK_REALTIME` for LOCK_PI;
//!   for LOCK_PI2 `CLOCK_MONOTONIC` unless `FUTEX_CLOCK_REALTIME`). A signal for the
//!   waiting thread runs its handler and the wait goes on (Linux restarts LOCK_PI after a
//!   handler whatever `SA_RESTART` says, `ERESTARTNOINTR`, so it never returns `EINTR`),
//!   with the same absolute deadline.
//! - TRYLOCK_PI does the same without waiting: `EAGAIN` when another thread owns the word.
//! - UNLOCK_PI, by the owner only (`EPERM` else), writes the first waiter's tid into the
//!   word (with `FUTEX_WAITERS` if others still wait) and wakes it: the lock passes
//!   directly, no third thread can take it in between; with no waiter the word becomes 0.
//!
//! What differs from Linux:
//!
//! - No priority is inherited: uk-sched runs its threads round-robin without priorities,
//!   so boosting the owner would change nothing. The waiters are served first come, first
//!   served (Linux: by priority, FIFO among equals).
//! - There is no kernel-side state per word (Linux's `pi_state`): the word and the queue of
//!   waiters are the state. A FUTEX_WAKE on the word wakes LOCK_PI waiters too (Linux
//!   refuses with `EINVAL`); a woken waiter looks at the word again and takes it if its tid
//!   field is 0, else waits on. That is what musl's `pthread_exit` relies on for a robust
//!   PI mutex it still holds: it writes `FUTEX_OWNER_DIED` into the word and wakes one
//!   waiter, which then owns the mutex with `FUTEX_OWNER_DIED` set (`EOWNERDEAD`).
//!   FUTEX_REQUEUE refuses (`EINVAL`) to move LOCK_PI waiters, as Linux.
//! - The robust list is not walked when a thread ends (musl walks it in `pthread_exit`, see
//!   [`System::set_robust_list`]). A thread that ends while owning a PI word that others
//!   wait for passes it to the first of them as an unlock would, without
//!   `FUTEX_OWNER_DIED` (Linux does the same for a word not on the robust list). A word
//!   whose owner ended with no waiter keeps the dead tid: the next LOCK_PI gets `ESRCH`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::MutexGuard;
use uk_syscall::Errno;
use uk_syscall::user::UserPtr;

use super::{FUTEX_BITSET_MATCH_ANY, WaitEnd, Waiter};
use crate::ids::Tid;
use crate::system::{Cpu, System};
use crate::time::Timespec;

/// The futex waiter table, locked.
type WaiterTable<'a> = MutexGuard<'a, Cpu<Vec<Waiter>>>;

/// The owner's tid in a PI futex word.
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Set in a PI futex word while threads may be waiting for it in the kernel: the owner
/// must unlock through FUTEX_UNLOCK_PI.
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Set in a PI futex word whose owner ended without unlocking it (robust futexes).
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

/// Whether some LOCK_PI waiter waits for the word at `addr`.
pub(super) fn pi_waited(waiters: &[Waiter], addr: usize) -> bool {
    waiters.iter().any(|w| w.key == addr && w.pi_tid != 0)
}

/// Under the table's lock, with the word at `addr` read as `v`: passes the word to the
/// first LOCK_PI waiter of `addr` (its tid, and `FUTEX_WAITERS` while others still wait),
/// taking it off the queue, or with no waiter makes the word 0. Returns the waiter to wake;
/// `Err(())` when the word changed since `v` was read (read it again).
fn pass_on(
    waiters: &mut Vec<Waiter>,
    addr: usize,
    word: &AtomicU32,
    v: u32,
) -> Result<Option<Waiter>, ()> {
    let first = waiters.iter().position(|w| w.key == addr && w.pi_tid != 0);
    let new = match first {
        Some(i) => {
            let others = waiters
                .iter()
                .enumerate()
                .any(|(j, w)| j != i && w.key == addr && w.pi_tid != 0);
            waiters[i].pi_tid as u32 | if others { FUTEX_WAITERS } else { 0 }
        }
        None => 0,
    };
    word.compare_exchange(v, new, Ordering::SeqCst, Ordering::SeqCst)
        .map_err(|_| ())?;
    Ok(first.map(|i| waiters.remove(i)))
}

/// What one attempt on a PI word found.
enum Attempt {
    /// The caller owns the word now.
    Taken,
    /// The caller owns the word already.
    Owned,
    /// Another live thread owns it (the word as read).
    Busy(u32),
}

/// One attempt to take the PI word at `addr` (read as `v`) for thread `me`, under the
/// table's lock; `None` when the word changed meanwhile. `Err(ESRCH)` when the owner's tid
/// names no live thread.
fn pi_attempt(
    addr: usize,
    word: &AtomicU32,
    me: Tid,
    waiters: &[Waiter],
    v: u32,
    owner_alive: bool,
) -> Result<Option<Attempt>, Errno> {
    let owner = v & FUTEX_TID_MASK;
    if owner == 0 {
        // Free (perhaps with OWNER_DIED, which the new owner must see).
        let waiting = if pi_waited(waiters, addr) {
            FUTEX_WAITERS
        } else {
            0
        };
        let new = me as u32 | (v & FUTEX_OWNER_DIED) | waiting;
        return Ok(word
            .compare_exchange(v, new, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            .then_some(Attempt::Taken));
    }
    if owner == me as u32 {
        return Ok(Some(Attempt::Owned));
    }
    if !owner_alive {
        return Err(Errno::ESRCH);
    }
    Ok(Some(Attempt::Busy(v)))
}

impl System {
    /// Reads the word and whether its owner (if any) is a live thread, without the table's
    /// lock (the thread table has its own).
    fn pi_peek(&self, word: &AtomicU32) -> (u32, bool) {
        let v = word.load(Ordering::SeqCst);
        let owner = v & FUTEX_TID_MASK;
        (v, owner != 0 && self.tid_exists(owner as Tid))
    }

    /// Decides what the caller `me` may do with the PI word at `addr`: peeks at it (the
    /// owner's liveness is looked up outside the waiter table's lock), then attempts it
    /// under that lock, looking again while the word moves. Returns the decision with the
    /// lock still held, so that a caller that must wait queues before anyone can hand over.
    fn pi_decide(
        &self,
        addr: usize,
        word: &AtomicU32,
        me: Tid,
    ) -> Result<(Attempt, WaiterTable<'_>), Errno> {
        loop {
            let (seen, owner_alive) = self.pi_peek(word);
            let w = self.futex.waiters.lock();
            let v = word.load(Ordering::SeqCst);
            if v != seen {
                continue;
            }
            if let Some(attempt) = pi_attempt(addr, word, me, &w.0, v, owner_alive)? {
                return Ok((attempt, w));
            }
        }
    }

    /// FUTEX_LOCK_PI / FUTEX_LOCK_PI2: takes the PI futex word at `addr` for the caller,
    /// waiting (FIFO) until its owner hands it over or the absolute `timeout` passes, on
    /// `CLOCK_REALTIME` when `realtime`, else `CLOCK_MONOTONIC`. A handled signal does not
    /// end the wait (Linux restarts the call). The protocol is in the module documentation
    /// (`futex/pi.rs`).
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned word, bad timespec), `EFAULT`, `EDEADLK` (the caller owns the
    /// word), `ESRCH` (its owner's tid names no live thread), `ETIMEDOUT`, `ENOSYS` when it
    /// would have to wait outside a scheduler thread.
    pub fn futex_lock_pi(
        &self,
        addr: usize,
        timeout: Option<Timespec>,
        realtime: bool,
    ) -> Result<usize, Errno> {
        let word = UserPtr::<u32>::new(addr).atomic(&self.address_space())?;
        let deadline = match timeout {
            Some(t) => Some(super::absolute_deadline(t, realtime)?),
            None => None,
        };
        let me = self.gettid()?;
        let mut first = true;
        loop {
            // A signal already pending would not end the wait: run its handler first.
            if self.has_deliverable_signal() {
                self.deliver_pending_signals();
            }
            let id = {
                let (attempt, mut w) = self.pi_decide(addr, word, me)?;
                match attempt {
                    Attempt::Taken => return Ok(0),
                    // After a wait, only a handover makes the caller the owner.
                    Attempt::Owned if first => return Err(Errno::EDEADLK),
                    Attempt::Owned => return Ok(0),
                    Attempt::Busy(v) => {
                        if v & FUTEX_WAITERS == 0
                            && word
                                .compare_exchange(
                                    v,
                                    v | FUTEX_WAITERS,
                                    Ordering::SeqCst,
                                    Ordering::SeqCst,
                                )
                                .is_err()
                        {
                            continue;
                        }
                    }
                }
                let Some(thread) = uk_sched::current() else {
                    log::warn!("futex LOCK_PI would wait outside a scheduler thread: ENOSYS");
                    return Err(Errno::ENOSYS);
                };
                let id = self.futex.next_id.fetch_add(1, Ordering::Relaxed);
                w.0.push(Waiter {
                    id,
                    thread,
                    key: addr,
                    bitset: FUTEX_BITSET_MATCH_ANY,
                    pi_tid: me,
                });
                id
            };
            first = false;
            match self.block_queued(id, deadline) {
                // Handed the word (then it holds the caller's tid), or woken by a
                // FUTEX_WAKE: look again.
                WaitEnd::Woken => {}
                // The handler runs, then the call goes on (ERESTARTNOINTR).
                WaitEnd::Interrupted => {
                    self.deliver_pending_signals();
                }
                WaitEnd::TimedOut => return Err(Errno::ETIMEDOUT),
            }
        }
    }

    /// FUTEX_TRYLOCK_PI: takes the PI futex word at `addr` for the caller if that needs no
    /// wait.
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned word), `EFAULT`, `EDEADLK` (the caller owns the word), `ESRCH`
    /// (its owner's tid names no live thread), `EAGAIN` (another thread owns it).
    pub fn futex_trylock_pi(&self, addr: usize) -> Result<usize, Errno> {
        let word = UserPtr::<u32>::new(addr).atomic(&self.address_space())?;
        let me = self.gettid()?;
        match self.pi_decide(addr, word, me)?.0 {
            Attempt::Taken => Ok(0),
            Attempt::Owned => Err(Errno::EDEADLK),
            Attempt::Busy(_) => Err(Errno::EAGAIN),
        }
    }

    /// FUTEX_UNLOCK_PI: the caller gives up the PI futex word at `addr`: it goes to the
    /// first waiter, woken as its owner, or becomes 0 when none waits.
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned word), `EFAULT`, `EPERM` (the caller does not own the word).
    pub fn futex_unlock_pi(&self, addr: usize) -> Result<usize, Errno> {
        let word = UserPtr::<u32>::new(addr).atomic(&self.address_space())?;
        let me = self.gettid()?;
        let next = {
            let mut w = self.futex.waiters.lock();
            loop {
                let v = word.load(Ordering::SeqCst);
                if v & FUTEX_TID_MASK != me as u32 {
                    return Err(Errno::EPERM);
                }
                if let Ok(next) = pass_on(&mut w.0, addr, word, v) {
                    break next;
                }
            }
        };
        if let Some(waiter) = next {
            waiter.thread.wake();
        }
        Ok(0)
    }

    /// Thread `tid` has ended: every PI word it still owns that threads wait for passes to
    /// the first of them, as its unlock would have.
    pub(crate) fn futex_pi_owner_ended(&self, tid: Tid) {
        let space = self.address_space();
        let woken: Vec<Waiter> = {
            let mut w = self.futex.waiters.lock();
            let mut keys: Vec<usize> =
                w.0.iter()
                    .filter(|x| x.pi_tid != 0)
                    .map(|x| x.key)
                    .collect();
            keys.sort_unstable();
            keys.dedup();
            let mut woken = Vec::new();
            for addr in keys {
                let Ok(word) = UserPtr::<u32>::new(addr).atomic(&space) else {
                    continue;
                };
                loop {
                    let v = word.load(Ordering::SeqCst);
                    if v & FUTEX_TID_MASK != tid as u32 {
                        break;
                    }
                    if let Ok(next) = pass_on(&mut w.0, addr, word, v) {
                        woken.extend(next);
                        break;
                    }
                }
            }
            woken
        };
        for waiter in &woken {
            waiter.thread.wake();
        }
    }
}
