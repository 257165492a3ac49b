//! Wait queues and the locks built on them: semaphore, recursive mutex, condition variable.
//!
//! None of them names a scheduler: the waiting thread blocks through whichever scheduler
//! owns it at that moment, and a wake-up reaches the woken thread's owner, so threads may
//! move between schedulers while they wait. Conditions are checked with interrupts masked,
//! and blocking uses the two-phase [`crate::prepare_block`]/[`crate::commit_block`], so a
//! wake-up between the check and the switch is never lost.

use alloc::collections::VecDeque;
use core::cell::{Cell, UnsafeCell};

use crate::base;
use crate::cpu;
use crate::thread::{Thread, ThreadRef};

/// A wait timed out before its condition became true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl core::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timed out")
    }
}

impl core::error::Error for TimedOut {}

/// Threads waiting for a condition.
#[derive(Default, Debug)]
pub struct WaitQueue {
    waiters: UnsafeCell<VecDeque<ThreadRef>>,
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            waiters: UnsafeCell::new(VecDeque::new()),
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn waiters(&self) -> &mut VecDeque<ThreadRef> {
        // SAFETY: accessed only with interrupts masked on the CPU that owns the queue, and
        // never across a switch.
        unsafe { &mut *self.waiters.get() }
    }

    /// Number of waiting threads.
    pub fn len(&self) -> usize {
        let irq = cpu::irq_save();
        let n = self.waiters().len();
        cpu::irq_restore(irq);
        n
    }

    /// Whether no thread waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks the calling thread until `condition` returns `true`. The condition runs with
    /// interrupts masked, so it may also take what it waited for (a semaphore count).
    pub fn wait(&self, condition: impl FnMut() -> bool) {
        let _ = self.wait_until(condition, None);
    }

    /// As [`WaitQueue::wait`], giving up when the scheduler clock reaches `deadline_ns`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if the deadline passed with the condition still false.
    pub fn wait_until(
        &self,
        mut condition: impl FnMut() -> bool,
        deadline_ns: Option<u64>,
    ) -> Result<(), TimedOut> {
        loop {
            let irq = cpu::irq_save();
            if condition() {
                cpu::irq_restore(irq);
                return Ok(());
            }
            let me = base::current().expect("uk-sched: wait outside a thread");
            if !base::prepare_block(deadline_ns) {
                cpu::irq_restore(irq);
                return Err(TimedOut);
            }
            self.waiters().push_back(me.clone());
            let timed_out = base::commit_block();
            self.forget(&me);
            cpu::irq_restore(irq);
            if timed_out {
                let irq = cpu::irq_save();
                let ok = condition();
                cpu::irq_restore(irq);
                return if ok { Ok(()) } else { Err(TimedOut) };
            }
        }
    }

    fn forget(&self, thread: &Thread) {
        let waiters = self.waiters();
        if let Some(i) = waiters.iter().position(|w| core::ptr::eq(&**w, thread)) {
            waiters.remove(i);
        }
    }

    /// Wakes the longest-waiting thread; returns whether there was one.
    pub fn wake_one(&self) -> bool {
        let irq = cpu::irq_save();
        let woken = self.waiters().pop_front();
        if let Some(thread) = &woken {
            base::wake(thread);
        }
        cpu::irq_restore(irq);
        woken.is_some()
    }

    /// Wakes every waiting thread; returns how many.
    pub fn wake_all(&self) -> usize {
        let irq = cpu::irq_save();
        let all = core::mem::take(self.waiters());
        for thread in &all {
            base::wake(thread);
        }
        cpu::irq_restore(irq);
        all.len()
    }
}

/// A counting semaphore.
pub struct Semaphore {
    count: Cell<usize>,
    queue: WaitQueue,
}

impl Semaphore {
    /// A semaphore holding `count` units.
    pub const fn new(count: usize) -> Self {
        Self {
            count: Cell::new(count),
            queue: WaitQueue::new(),
        }
    }

    /// Units available now.
    pub fn count(&self) -> usize {
        self.count.get()
    }

    fn take(&self) -> bool {
        match self.count.get() {
            0 => false,
            n => {
                self.count.set(n - 1);
                true
            }
        }
    }

    /// Takes one unit, blocking while there is none.
    pub fn down(&self) {
        self.queue.wait(|| self.take());
    }

    /// Takes one unit if there is one, without blocking.
    pub fn try_down(&self) -> bool {
        let irq = cpu::irq_save();
        let ok = self.take();
        cpu::irq_restore(irq);
        ok
    }

    /// Takes one unit, waiting at most until `deadline_ns` of the scheduler clock.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] when no unit came in time.
    pub fn down_until(&self, deadline_ns: u64) -> Result<(), TimedOut> {
        self.queue.wait_until(|| self.take(), Some(deadline_ns))
    }

    /// Takes one unit, waiting at most `timeout_ns`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] when no unit came in time.
    pub fn down_timeout(&self, timeout_ns: u64) -> Result<(), TimedOut> {
        self.down_until(base::now().saturating_add(timeout_ns))
    }

    /// Gives back one unit and wakes one waiter.
    pub fn up(&self) {
        let irq = cpu::irq_save();
        self.count.set(self.count.get() + 1);
        self.queue.wake_one();
        cpu::irq_restore(irq);
    }
}

/// A mutual-exclusion lock its owner may take again (recursively); it is released when the
/// owner has unlocked it as often as it locked it.
#[derive(Debug)]
pub struct Mutex {
    owner: Cell<*const Thread>,
    depth: Cell<usize>,
    queue: WaitQueue,
}

/// Why [`Mutex::unlock`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

impl core::fmt::Display for NotOwner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the calling thread does not own the mutex")
    }
}

impl core::error::Error for NotOwner {}

impl Default for Mutex {
    fn default() -> Self {
        Self::new()
    }
}

impl Mutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Self {
            owner: Cell::new(core::ptr::null()),
            depth: Cell::new(0),
            queue: WaitQueue::new(),
        }
    }

    fn try_acquire(&self, me: *const Thread) -> bool {
        let owner = self.owner.get();
        if owner.is_null() || owner == me {
            self.owner.set(me);
            self.depth.set(self.depth.get() + 1);
            true
        } else {
            false
        }
    }

    /// Takes the lock, blocking while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_> {
        let me = crate::cpu::current_ptr();
        assert!(!me.is_null(), "uk-sched: Mutex::lock outside a thread");
        self.queue.wait(|| self.try_acquire(me));
        MutexGuard { mutex: self }
    }

    /// Takes the lock if that needs no waiting.
    pub fn try_lock(&self) -> Option<MutexGuard<'_>> {
        let me = crate::cpu::current_ptr();
        let irq = cpu::irq_save();
        let ok = !me.is_null() && self.try_acquire(me);
        cpu::irq_restore(irq);
        if ok {
            Some(MutexGuard { mutex: self })
        } else {
            None
        }
    }

    /// Whether some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        !self.owner.get().is_null()
    }

    /// How many times the owner holds it (0 when unlocked).
    pub fn depth(&self) -> usize {
        self.depth.get()
    }

    /// Releases one level of the lock (usually through dropping a [`MutexGuard`]).
    ///
    /// # Errors
    ///
    /// [`NotOwner`] if the calling thread does not hold it; nothing changes then.
    pub fn unlock(&self) -> Result<(), NotOwner> {
        let irq = cpu::irq_save();
        let result = if self.owner.get() != crate::cpu::current_ptr() || self.owner.get().is_null()
        {
            Err(NotOwner)
        } else {
            let depth = self.depth.get() - 1;
            self.depth.set(depth);
            if depth == 0 {
                self.owner.set(core::ptr::null());
                self.queue.wake_one();
            }
            Ok(())
        };
        cpu::irq_restore(irq);
        result
    }

    /// Releases every level (for [`CondVar`]), returning how many there were.
    fn unlock_all(&self) -> usize {
        let irq = cpu::irq_save();
        let depth = self.depth.replace(0);
        self.owner.set(core::ptr::null());
        self.queue.wake_one();
        cpu::irq_restore(irq);
        depth
    }

    fn relock(&self, depth: usize) {
        let me = crate::cpu::current_ptr();
        self.queue.wait(|| {
            if self.owner.get().is_null() {
                self.owner.set(me);
                self.depth.set(depth);
                true
            } else {
                false
            }
        });
    }
}

/// Holds one level of a [`Mutex`]; dropping it unlocks that level.
#[must_use]
#[derive(Debug)]
pub struct MutexGuard<'a> {
    mutex: &'a Mutex,
}

impl MutexGuard<'_> {
    /// The mutex this guard holds.
    pub fn mutex(&self) -> &Mutex {
        self.mutex
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        self.mutex
            .unlock()
            .expect("a guard is only held by the owner");
    }
}

/// A condition variable used with a [`Mutex`].
#[derive(Default)]
pub struct CondVar {
    generation: Cell<u64>,
    queue: WaitQueue,
}

impl CondVar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Self {
            generation: Cell::new(0),
            queue: WaitQueue::new(),
        }
    }

    /// Atomically releases `guard`'s mutex (every level) and waits for a notification, then
    /// takes the mutex back at the same depth. As everywhere, re-check your predicate.
    pub fn wait<'a>(&self, guard: MutexGuard<'a>) -> MutexGuard<'a> {
        match self.wait_until(guard, None) {
            Ok(guard) | Err((guard, TimedOut)) => guard,
        }
    }

    /// As [`CondVar::wait`], giving up at `deadline_ns`.
    ///
    /// # Errors
    ///
    /// The guard (mutex re-taken) and [`TimedOut`] if no notification came in time.
    #[allow(clippy::type_complexity)]
    pub fn wait_until<'a>(
        &self,
        guard: MutexGuard<'a>,
        deadline_ns: Option<u64>,
    ) -> Result<MutexGuard<'a>, (MutexGuard<'a>, TimedOut)> {
        let mutex = guard.mutex;
        core::mem::forget(guard);
        let irq = cpu::irq_save();
        let seen = self.generation.get();
        // Releasing and starting to wait happen with interrupts masked, and a notification
        // advances the generation, so none can slip in between.
        let depth = mutex.unlock_all();
        let result = self
            .queue
            .wait_until(|| self.generation.get() != seen, deadline_ns);
        cpu::irq_restore(irq);
        mutex.relock(depth);
        let guard = MutexGuard { mutex };
        match result {
            Ok(()) => Ok(guard),
            Err(t) => Err((guard, t)),
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        let irq = cpu::irq_save();
        self.generation.set(self.generation.get() + 1);
        self.queue.wake_one();
        cpu::irq_restore(irq);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let irq = cpu::irq_save();
        self.generation.set(self.generation.get() + 1);
        self.queue.wake_all();
        cpu::irq_restore(irq);
    }
}
