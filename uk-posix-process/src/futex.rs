//! futex(2): WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE, WAKE_OP, and the
//! priority-inheritance operations LOCK_PI, LOCK_PI2, TRYLOCK_PI and UNLOCK_PI (see
//! the `pi` submodule for their protocol and what differs from Linux).
//!
//! A signal sent to a waiting thread ends its wait after the handler ran, as Linux's
//! does: a WAIT or WAIT_BITSET without a timeout whose first handler was installed with
//! `SA_RESTART` starts again (checking the word anew, so a changed word gives `EAGAIN`),
//! any other returns `EINTR`; a signal that ran no handler (ignored by the time it was
//! taken) restarts the wait, timed or not, keeping its deadline.
//!
//! One table of waiters for the whole image, keyed by the word's address (one address
//! space: private and shared futexes on the same word are the same futex, as they are for
//! anonymous memory in Linux). A waiter blocks through uk-sched's two-phase block
//! ([`uk_sched::prepare_block`] / [`uk_sched::commit_block`]), the primitive its wait
//! queues are built on; the table is its own queue because REQUEUE moves waiters between
//! words, which a `WaitQueue` cannot. The value check and the enqueue happen under the
//! table's lock, and a waker removes the waiter before waking it, so no wake-up is lost.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::lock::Lock as Mutex;
use uk_sched::ThreadRef;
use uk_syscall::Errno;

use crate::ids::Tid;
use crate::system::{Cpu, System};
use crate::time::{Deadline, Timespec};
use uk_syscall::user::UserPtr;

mod pi;

pub use pi::{FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS};

/// Wait while the word equals the value (relative timeout).
pub const FUTEX_WAIT: i32 = 0;
/// Wake up to `val` waiters.
pub const FUTEX_WAKE: i32 = 1;
/// Wake `val`, move up to `val2` waiters to `uaddr2`.
pub const FUTEX_REQUEUE: i32 = 3;
/// As REQUEUE, only if the word still equals `val3`.
pub const FUTEX_CMP_REQUEUE: i32 = 4;
/// As WAIT with a bitset and an absolute timeout.
pub const FUTEX_WAIT_BITSET: i32 = 9;
/// As WAKE, only waiters whose bitset intersects `val3`.
pub const FUTEX_WAKE_BITSET: i32 = 10;
/// Changes the word at `uaddr2` by the operation `val3` encodes, wakes up to `val` waiters
/// of `uaddr`, and, if the old value of `uaddr2` passes `val3`'s comparison, up to `val2`
/// waiters of `uaddr2` (see [`WakeOp`]).
pub const FUTEX_WAKE_OP: i32 = 5;
/// Takes a priority-inheritance futex (absolute `CLOCK_REALTIME` timeout).
pub const FUTEX_LOCK_PI: i32 = 6;
/// Releases a priority-inheritance futex, handing it to its first waiter.
pub const FUTEX_UNLOCK_PI: i32 = 7;
/// Takes a priority-inheritance futex if that needs no wait.
pub const FUTEX_TRYLOCK_PI: i32 = 8;
/// As LOCK_PI, the absolute timeout on `CLOCK_MONOTONIC` unless `FUTEX_CLOCK_REALTIME`.
pub const FUTEX_LOCK_PI2: i32 = 13;
/// Process-private futex (same key here).
pub const FUTEX_PRIVATE_FLAG: i32 = 128;
/// The absolute timeout of WAIT_BITSET is on `CLOCK_REALTIME`.
pub const FUTEX_CLOCK_REALTIME: i32 = 256;
/// Bitset matching every waiter.
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// The key under which threads wait in `poll` and `select`: never a futex word's, which
/// must be 4-byte aligned.
pub(crate) const POLL_KEY: usize = 1;

/// [`WakeOp`]: the word becomes the operand.
pub const FUTEX_OP_SET: u32 = 0;
/// [`WakeOp`]: the operand is added to the word (wrapping).
pub const FUTEX_OP_ADD: u32 = 1;
/// [`WakeOp`]: the word is ORed with the operand.
pub const FUTEX_OP_OR: u32 = 2;
/// [`WakeOp`]: the word is ANDed with the operand's complement.
pub const FUTEX_OP_ANDN: u32 = 3;
/// [`WakeOp`]: the word is XORed with the operand.
pub const FUTEX_OP_XOR: u32 = 4;
/// [`WakeOp`], added to an operation: the operand is `1 << oparg`.
pub const FUTEX_OP_OPARG_SHIFT: u32 = 8;
/// [`WakeOp`] comparison: old value `==` the comparison argument.
pub const FUTEX_OP_CMP_EQ: u32 = 0;
/// [`WakeOp`] comparison: `!=`.
pub const FUTEX_OP_CMP_NE: u32 = 1;
/// [`WakeOp`] comparison: `<` (signed).
pub const FUTEX_OP_CMP_LT: u32 = 2;
/// [`WakeOp`] comparison: `<=` (signed).
pub const FUTEX_OP_CMP_LE: u32 = 3;
/// [`WakeOp`] comparison: `>` (signed).
pub const FUTEX_OP_CMP_GT: u32 = 4;
/// [`WakeOp`] comparison: `>=` (signed).
pub const FUTEX_OP_CMP_GE: u32 = 5;

/// The operation and comparison FUTEX_WAKE_OP's `val3` encodes, as Linux's `FUTEX_OP()`
/// macro lays them out: bits 28–31 the operation ([`FUTEX_OP_SET`] to [`FUTEX_OP_XOR`],
/// plus [`FUTEX_OP_OPARG_SHIFT`]), bits 24–27 the comparison ([`FUTEX_OP_CMP_EQ`] to
/// [`FUTEX_OP_CMP_GE`]), bits 12–23 the operand and bits 0–11 the comparison argument,
/// both 12-bit signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeOp {
    op: u32,
    operand: u32,
    cmp: u32,
    cmparg: i32,
}

/// The 12-bit signed field of `val3` at `shift`.
fn field12(val3: u32, shift: u32) -> i32 {
    (((val3 >> shift) & 0xfff) as i32) << 20 >> 20
}

impl WakeOp {
    /// Decodes `val3`.
    ///
    /// # Errors
    ///
    /// `ENOSYS` for an unknown operation or comparison, as Linux (which finds an unknown
    /// comparison only after it changed the word; here nothing changes). A shift operand
    /// outside 0–31 is taken modulo 32, as Linux does.
    pub fn decode(val3: u32) -> Result<Self, Errno> {
        let op = (val3 >> 28) & 7;
        let cmp = (val3 >> 24) & 0xf;
        if op > FUTEX_OP_XOR || cmp > FUTEX_OP_CMP_GE {
            return Err(Errno::ENOSYS);
        }
        let oparg = field12(val3, 12);
        let operand = if (val3 >> 28) & FUTEX_OP_OPARG_SHIFT != 0 {
            1u32 << (oparg & 31)
        } else {
            oparg as u32
        };
        Ok(Self {
            op,
            operand,
            cmp,
            cmparg: field12(val3, 0),
        })
    }

    /// The word's new value.
    pub fn apply(self, old: u32) -> u32 {
        match self.op {
            FUTEX_OP_SET => self.operand,
            FUTEX_OP_ADD => old.wrapping_add(self.operand),
            FUTEX_OP_OR => old | self.operand,
            FUTEX_OP_ANDN => old & !self.operand,
            _ => old ^ self.operand,
        }
    }

    /// Whether the word's old value passes the comparison (signed, as Linux compares).
    pub fn passes(self, old: u32) -> bool {
        let old = old as i32;
        match self.cmp {
            FUTEX_OP_CMP_EQ => old == self.cmparg,
            FUTEX_OP_CMP_NE => old != self.cmparg,
            FUTEX_OP_CMP_LT => old < self.cmparg,
            FUTEX_OP_CMP_LE => old <= self.cmparg,
            FUTEX_OP_CMP_GT => old > self.cmparg,
            _ => old >= self.cmparg,
        }
    }
}

struct Waiter {
    id: u64,
    thread: ThreadRef,
    key: usize,
    bitset: u32,
    /// The waiter's tid when it waits in LOCK_PI (an UNLOCK_PI hands it the word), else 0.
    pi_tid: Tid,
}

/// The waiters of every futex word.
pub(crate) struct FutexTable {
    waiters: Mutex<Cpu<Vec<Waiter>>>,
    /// Waits ended by a signal (their waiters return `EINTR`), by waiter id.
    interrupted: Mutex<Cpu<Vec<u64>>>,
    next_id: AtomicU64,
}

impl FutexTable {
    pub(crate) const fn new() -> Self {
        Self {
            waiters: Mutex::new(Cpu(Vec::new())),
            interrupted: Mutex::new(Cpu(Vec::new())),
            next_id: AtomicU64::new(1),
        }
    }

    /// Ends the wait of the uk-sched thread `thread_id`, if it is waiting, so that it
    /// returns `EINTR` (a signal arrived for it); `true` if it was waiting.
    pub(crate) fn interrupt(&self, thread_id: u64) -> bool {
        let taken = {
            let mut w = self.waiters.lock();
            w.0.iter()
                .position(|x| x.thread.id() == thread_id)
                .map(|i| w.0.remove(i))
        };
        match taken {
            Some(waiter) => {
                self.interrupted.lock().0.push(waiter.id);
                waiter.thread.wake();
                true
            }
            None => false,
        }
    }

    /// Wakes every waiting thread without ending its wait, so that each works out again
    /// when it has to wake (the timers' deadlines moved).
    pub(crate) fn nudge_all(&self) {
        let threads: Vec<ThreadRef> = self
            .waiters
            .lock()
            .0
            .iter()
            .map(|w| w.thread.clone())
            .collect();
        for thread in threads {
            thread.wake();
        }
    }

    /// Whether wait `id` was ended by [`FutexTable::interrupt`] (forgetting it).
    fn was_interrupted(&self, id: u64) -> bool {
        let mut list = self.interrupted.lock();
        match list.0.iter().position(|&x| x == id) {
            Some(i) => {
                list.0.swap_remove(i);
                true
            }
            None => false,
        }
    }

    fn present(&self, id: u64) -> bool {
        self.waiters.lock().0.iter().any(|w| w.id == id)
    }

    /// Removes waiter `id`; `true` if it was still queued (not woken).
    fn take(&self, id: u64) -> bool {
        let removed = {
            let mut w = self.waiters.lock();
            w.0.iter().position(|x| x.id == id).map(|i| w.0.remove(i))
        };
        removed.is_some()
    }

    /// Drops every wait of `thread` (it is being ended by exit_group).
    pub(crate) fn purge(&self, thread: &ThreadRef) {
        let removed: Vec<Waiter> = {
            let mut w = self.waiters.lock();
            let (gone, kept) = core::mem::take(&mut w.0)
                .into_iter()
                .partition(|x| alloc::sync::Arc::ptr_eq(&x.thread, thread));
            w.0 = kept;
            gone
        };
        drop(removed);
    }

    /// Number of threads waiting on `addr`.
    pub(crate) fn waiting(&self, addr: usize) -> usize {
        self.waiters
            .lock()
            .0
            .iter()
            .filter(|w| w.key == addr)
            .count()
    }
}

/// How a queued wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// A futex wake took the waiter off the queue.
    Woken,
    /// A signal for the waiting thread did.
    Interrupted,
    /// The deadline passed first.
    TimedOut,
}

/// An absolute futex timeout on `CLOCK_REALTIME` (`realtime`) or `CLOCK_MONOTONIC`.
fn absolute_deadline(t: Timespec, realtime: bool) -> Result<Deadline, Errno> {
    let ns = t.to_ns()?;
    Ok(if realtime {
        Deadline::WallClock(ns)
    } else {
        Deadline::Monotonic(ns)
    })
}

/// Linux's count semantics: `nr <= 0` still wakes one.
fn wake_budget(nr: i32) -> usize {
    nr.max(1) as usize
}

/// Takes off the queue, in order, up to `budget` waiters of `addr` whose bitset
/// intersects `bitset`.
fn take_matching(
    waiters: &mut Vec<Waiter>,
    addr: usize,
    budget: usize,
    bitset: u32,
) -> Vec<Waiter> {
    let mut taken = Vec::new();
    let mut i = 0;
    while i < waiters.len() && taken.len() < budget {
        if waiters[i].key == addr && waiters[i].bitset & bitset != 0 {
            taken.push(waiters.remove(i));
        } else {
            i += 1;
        }
    }
    taken
}

/// The earliest monotonic deadline of uk-vfs's timerfds that a wait must wake for.
fn fd_timers_deadline() -> Option<u64> {
    #[cfg(feature = "vfs")]
    {
        uk_vfs::timerfd::next_deadline_ns()
    }
    #[cfg(not(feature = "vfs"))]
    {
        None
    }
}

/// Fires uk-vfs's due timerfds (wakes their readers and the pollers); whether any fired.
fn fire_due_fd_timers() -> bool {
    #[cfg(feature = "vfs")]
    {
        uk_vfs::timerfd::fire_due()
    }
    #[cfg(not(feature = "vfs"))]
    {
        false
    }
}

/// Wakes waiters taken off the queue (outside the table's lock); returns how many.
fn wake(woken: Vec<Waiter>) -> usize {
    for waiter in &woken {
        waiter.thread.wake();
    }
    woken.len()
}

impl System {
    /// Number of threads waiting on the futex word at `addr` (for tests and diagnostics).
    pub fn futex_waiters(&self, addr: usize) -> usize {
        self.futex.waiting(addr)
    }

    /// Blocks while `*addr == val`, until woken (by a matching bitset) or until
    /// `deadline_ns` of the monotonic clock.
    ///
    /// # Errors
    ///
    /// `EINVAL` (misaligned word, zero bitset), `EFAULT`, `EAGAIN` (the word differs),
    /// `ETIMEDOUT`, `ENOSYS` outside a scheduler thread.
    pub fn futex_wait_until(
        &self,
        addr: usize,
        val: u32,
        deadline_ns: Option<u64>,
        bitset: u32,
    ) -> Result<usize, Errno> {
        self.futex_wait_deadline(addr, val, deadline_ns.map(Deadline::Monotonic), bitset)
    }

    /// As [`System::futex_wait_until`], with a deadline on either clock.
    fn futex_wait_deadline(
        &self,
        addr: usize,
        val: u32,
        deadline: Option<Deadline>,
        bitset: u32,
    ) -> Result<usize, Errno> {
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        let word = UserPtr::<u32>::new(addr).atomic(&self.address_space())?;
        let Some(me) = uk_sched::current() else {
            if word.load(Ordering::SeqCst) != val {
                return Err(Errno::EAGAIN);
            }
            log::warn!("futex wait outside a scheduler thread: ENOSYS");
            return Err(Errno::ENOSYS);
        };
        let timed = deadline.is_some();
        loop {
            // A signal already waiting for this thread would never end the wait: take it
            // now.
            if self.has_deliverable_signal() {
                if self.futex_wait_restarts(timed) {
                    continue;
                }
                return Err(Errno::EINTR);
            }
            let id = self.futex.next_id.fetch_add(1, Ordering::Relaxed);
            {
                let mut w = self.futex.waiters.lock();
                if word.load(Ordering::SeqCst) != val {
                    return Err(Errno::EAGAIN);
                }
                w.0.push(Waiter {
                    id,
                    thread: me.clone(),
                    key: addr,
                    bitset,
                    pi_tid: 0,
                });
            }
            match self.block_queued(id, deadline) {
                WaitEnd::Woken => return Ok(0),
                // A signal for this thread ended the wait: its handler runs now.
                WaitEnd::Interrupted if self.futex_wait_restarts(timed) => {}
                WaitEnd::Interrupted => return Err(Errno::EINTR),
                WaitEnd::TimedOut => return Err(Errno::ETIMEDOUT),
            }
        }
    }

    /// Runs the handlers of the signals that ended (or would end) a futex wait and says
    /// whether the wait starts again, as Linux's `-ERESTARTSYS` for an untimed wait and
    /// its restart block for a timed one decide: again when no handler ran (the signal
    /// was ignored by the time it was taken, and nothing is left to take), or when the
    /// first handler had `SA_RESTART` and the wait has no deadline.
    fn futex_wait_restarts(&self, timed: bool) -> bool {
        let (handled, restart) = self.deliver_pending_signals_noting_restart();
        if handled == 0 {
            return !self.has_deliverable_signal();
        }
        restart && !timed
    }

    /// Blocks the caller, queued as waiter `id`, until a wake or a signal takes it off the
    /// queue or `deadline` passes. A wall-clock deadline is worked out again at every
    /// wake-up ([`System::set_realtime_ns`] wakes every waiter).
    ///
    /// The process's interval timer (`setitimer`, `alarm`) is kept here: the wait also
    /// ends at the timer's deadline, which then sends the process `SIGALRM`; when that
    /// signal is for this thread, its sending takes the waiter off the queue (the wait
    /// ends `Interrupted`), else the wait goes on. uk-vfs's timerfds are kept the same
    /// way (feature `vfs`): the wait also ends at the earliest deadline of a timerfd not
    /// yet readable, which then wakes that timerfd's readers and the pollers (this
    /// waiter among them, if it is one: the wait ends `Woken`), else the wait goes on.
    fn block_queued(&self, id: u64, deadline: Option<Deadline>) -> WaitEnd {
        let ended = || {
            if self.futex.was_interrupted(id) {
                WaitEnd::Interrupted
            } else {
                WaitEnd::Woken
            }
        };
        loop {
            let deadline_ns = deadline.map(|d| self.monotonic_deadline(d));
            let wake_at = [deadline_ns, self.timers_deadline(), fd_timers_deadline()]
                .into_iter()
                .flatten()
                .min();
            let timed_out = if uk_sched::prepare_block(wake_at) {
                if !self.futex.present(id) {
                    // Woken between the enqueue and the block.
                    uk_sched::cancel_block();
                    return ended();
                }
                uk_sched::commit_block()
            } else {
                // The deadline has passed already.
                true
            };
            if !self.futex.present(id) {
                return ended();
            }
            if !timed_out {
                // Woken by someone else (not a futex wake): wait on.
                continue;
            }
            // Both kinds of timer fire, whichever woke the thread.
            let signalled = self.fire_due_timers();
            let fd_fired = fire_due_fd_timers();
            if signalled || fd_fired {
                // A timer's signal is pending, or a timerfd woke its waiters; if either
                // was for this thread, the waiter is gone.
                continue;
            }
            if deadline_ns.is_some_and(|d| self.monotonic_ns() >= d) {
                return if self.futex.take(id) {
                    WaitEnd::TimedOut
                } else {
                    ended()
                };
            }
        }
    }

    /// Blocks the caller until a signal for it ends the wait (the sender finds it through
    /// [`FutexTable::interrupt`], as a futex waiter) or `deadline` passes; never woken
    /// by a futex wake. `ready` is asked once the caller is queued, so that a signal sent
    /// just before cannot be missed: when it says a signal is there, the wait ends at once.
    ///
    /// # Errors
    ///
    /// `ENOSYS` outside a scheduler thread.
    pub(crate) fn wait_for_signal(
        &self,
        deadline: Option<Deadline>,
        ready: impl Fn() -> bool,
    ) -> Result<WaitEnd, Errno> {
        // Key 0 and an empty bitset: no futex word and no futex wake can match this waiter.
        self.wait_queued(0, 0, deadline, ready)
    }

    /// As [`System::wait_for_signal`], queued under `key` with `bitset`, so that a wake of
    /// that key ends the wait too ([`WaitEnd::Woken`]).
    pub(crate) fn wait_queued(
        &self,
        key: usize,
        bitset: u32,
        deadline: Option<Deadline>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<WaitEnd, Errno> {
        let Some(me) = uk_sched::current() else {
            log::warn!("signal wait outside a scheduler thread: ENOSYS");
            return Err(Errno::ENOSYS);
        };
        let id = self.futex.next_id.fetch_add(1, Ordering::Relaxed);
        self.futex.waiters.lock().0.push(Waiter {
            id,
            thread: me,
            key,
            bitset,
            pi_tid: 0,
        });
        if ready() {
            self.futex.take(id);
            return Ok(WaitEnd::Interrupted);
        }
        Ok(self.block_queued(id, deadline))
    }

    /// FUTEX_WAIT: blocks while `*addr == val`, at most `timeout` (relative).
    ///
    /// # Errors
    ///
    /// As [`System::futex_wait_until`], and `EINVAL` for a bad timespec.
    pub fn futex_wait(
        &self,
        addr: usize,
        val: u32,
        timeout: Option<Timespec>,
    ) -> Result<usize, Errno> {
        let deadline = match timeout {
            Some(t) => Some(self.monotonic_ns().saturating_add(t.to_ns()?)),
            None => None,
        };
        self.futex_wait_until(addr, val, deadline, FUTEX_BITSET_MATCH_ANY)
    }

    /// FUTEX_WAIT_BITSET: blocks while `*addr == val` until woken with an intersecting
    /// bitset, at most until the absolute `timeout` (monotonic, or realtime).
    ///
    /// # Errors
    ///
    /// As [`System::futex_wait`].
    pub fn futex_wait_bitset(
        &self,
        addr: usize,
        val: u32,
        timeout: Option<Timespec>,
        bitset: u32,
        realtime: bool,
    ) -> Result<usize, Errno> {
        let deadline = match timeout {
            Some(t) => Some(absolute_deadline(t, realtime)?),
            None => None,
        };
        self.futex_wait_deadline(addr, val, deadline, bitset)
    }

    /// FUTEX_WAKE / FUTEX_WAKE_BITSET: wakes up to `nr` waiters on `addr` whose bitset
    /// intersects `bitset` (`nr <= 0` wakes one, as Linux); returns how many.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a misaligned word or a zero bitset, `EFAULT`. (LOCK_PI waiters are
    /// woken too, where Linux refuses: see the `pi` submodule.)
    pub fn futex_wake(&self, addr: usize, nr: i32, bitset: u32) -> Result<usize, Errno> {
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        UserPtr::<u32>::new(addr).atomic(&self.address_space())?;
        Ok(self.wake_matching(addr, wake_budget(nr), bitset))
    }

    /// FUTEX_WAKE_OP: changes the word at `addr2` by `op` (atomically, returning nothing
    /// of it), wakes up to `nr` waiters of `addr`, and when the word's old value passes
    /// `op`'s comparison also up to `nr2` waiters of `addr2` (counts `<= 0` wake one, as
    /// Linux). Returns how many woke. Waiters are checked against the words under the
    /// table's lock, so no wake-up is lost against a waiter that read the old value.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a misaligned word, `EFAULT`, `ENOSYS` for an operation or comparison
    /// [`WakeOp::decode`] does not know. A refused call changes nothing. (As FUTEX_WAKE,
    /// it wakes LOCK_PI waiters too.)
    pub fn futex_wake_op(
        &self,
        addr: usize,
        nr: i32,
        addr2: usize,
        nr2: i32,
        op: u32,
    ) -> Result<usize, Errno> {
        let space = self.address_space();
        UserPtr::<u32>::new(addr).atomic(&space)?;
        let word2 = UserPtr::<u32>::new(addr2).atomic(&space)?;
        let op = WakeOp::decode(op)?;
        let woken = {
            let mut w = self.futex.waiters.lock();
            let old = match word2
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(op.apply(v)))
            {
                Ok(v) | Err(v) => v,
            };
            let mut woken = take_matching(&mut w.0, addr, wake_budget(nr), FUTEX_BITSET_MATCH_ANY);
            if op.passes(old) {
                woken.extend(take_matching(
                    &mut w.0,
                    addr2,
                    wake_budget(nr2),
                    FUTEX_BITSET_MATCH_ANY,
                ));
            }
            woken
        };
        Ok(wake(woken))
    }

    /// Wakes every thread waiting in `poll`, `select` or `epoll_wait`, so that each checks
    /// its descriptors again; returns how many there were.
    pub fn wake_pollers(&self) -> usize {
        self.wake_matching(POLL_KEY, usize::MAX, FUTEX_BITSET_MATCH_ANY)
    }

    pub(crate) fn wake_matching(&self, addr: usize, budget: usize, bitset: u32) -> usize {
        let woken = take_matching(&mut self.futex.waiters.lock().0, addr, budget, bitset);
        wake(woken)
    }

    /// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE: wakes up to `nr_wake` waiters of `addr`, then
    /// moves up to `nr_requeue` of the rest to `addr2` (behind its own waiters); with
    /// `cmp`, only while `*addr == cmp`. Returns woken plus moved.
    ///
    /// # Errors
    ///
    /// `EINVAL` (negative counts, misaligned words, a LOCK_PI waiter on `addr`), `EFAULT`,
    /// `EAGAIN` (the word is not `cmp`).
    pub fn futex_requeue(
        &self,
        addr: usize,
        nr_wake: i32,
        nr_requeue: i32,
        addr2: usize,
        cmp: Option<u32>,
    ) -> Result<usize, Errno> {
        if nr_wake < 0 || nr_requeue < 0 {
            return Err(Errno::EINVAL);
        }
        let space = self.address_space();
        let word = UserPtr::<u32>::new(addr).atomic(&space)?;
        UserPtr::<u32>::new(addr2).atomic(&space)?;
        let (woken, moved) = {
            let mut w = self.futex.waiters.lock();
            if let Some(cmp) = cmp
                && word.load(Ordering::SeqCst) != cmp
            {
                return Err(Errno::EAGAIN);
            }
            // A LOCK_PI waiter waits for its word's owner: Linux refuses to move it.
            if pi::pi_waited(&w.0, addr) {
                return Err(Errno::EINVAL);
            }
            let (nr_wake, nr_requeue) = (nr_wake as usize, nr_requeue as usize);
            let mut woken = Vec::new();
            let mut moved = Vec::new();
            let mut i = 0;
            while i < w.0.len() && (woken.len() < nr_wake || moved.len() < nr_requeue) {
                if w.0[i].key != addr {
                    i += 1;
                    continue;
                }
                let waiter = w.0.remove(i);
                if woken.len() < nr_wake {
                    woken.push(waiter);
                } else {
                    moved.push(waiter);
                }
            }
            let count = moved.len();
            for mut waiter in moved {
                waiter.key = addr2;
                w.0.push(waiter);
            }
            (woken, count)
        };
        Ok(wake(woken) + moved)
    }

    /// The futex(2) multiplexer with Linux's raw arguments.
    ///
    /// # Errors
    ///
    /// As the operations; `ENOSYS` for an operation not listed above (logged).
    pub fn futex(
        &self,
        uaddr: usize,
        op: i32,
        val: u32,
        utime: usize,
        uaddr2: usize,
        val3: u32,
    ) -> Result<usize, Errno> {
        let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        let realtime = op & FUTEX_CLOCK_REALTIME != 0;
        if realtime && cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_LOCK_PI2 {
            return Err(Errno::ENOSYS);
        }
        let space = self.address_space();
        let timeout = |utime: usize| -> Result<Option<Timespec>, Errno> {
            if utime == 0 {
                Ok(None)
            } else {
                let t = Timespec::from(UserPtr::<[i64; 2]>::new(utime).read(&space)?);
                t.to_ns()?;
                Ok(Some(t))
            }
        };
        match cmd {
            // Relative: with FUTEX_CLOCK_REALTIME too, a duration is the same on both clocks.
            FUTEX_WAIT => self.futex_wait(uaddr, val, timeout(utime)?),
            FUTEX_WAIT_BITSET => {
                self.futex_wait_bitset(uaddr, val, timeout(utime)?, val3, realtime)
            }
            FUTEX_WAKE => self.futex_wake(uaddr, val as i32, FUTEX_BITSET_MATCH_ANY),
            FUTEX_WAKE_BITSET => self.futex_wake(uaddr, val as i32, val3),
            // `val2` travels in the timeout's place, as for REQUEUE.
            FUTEX_WAKE_OP => self.futex_wake_op(uaddr, val as i32, uaddr2, utime as i32, val3),
            FUTEX_REQUEUE => self.futex_requeue(uaddr, val as i32, utime as i32, uaddr2, None),
            FUTEX_CMP_REQUEUE => {
                self.futex_requeue(uaddr, val as i32, utime as i32, uaddr2, Some(val3))
            }
            // LOCK_PI's timeout is absolute on CLOCK_REALTIME; LOCK_PI2's on the clock the
            // flag names.
            FUTEX_LOCK_PI => self.futex_lock_pi(uaddr, timeout(utime)?, true),
            FUTEX_LOCK_PI2 => self.futex_lock_pi(uaddr, timeout(utime)?, realtime),
            FUTEX_TRYLOCK_PI => self.futex_trylock_pi(uaddr),
            FUTEX_UNLOCK_PI => self.futex_unlock_pi(uaddr),
            _ => {
                log::warn!("futex operation {cmd} is not implemented: ENOSYS");
                Err(Errno::ENOSYS)
            }
        }
    }
}
