//! What every scheduler instance offers its threads, type-erased, and the operations on the
//! calling thread that go through it.

use alloc::sync::Arc;

use crate::cpu;
use crate::thread::{Entry, Thread, ThreadRef, ThreadState};

/// The scheduler side a thread talks to: its owner. Object-safe so that threads, wait
/// queues and locks do not depend on the scheduler's type parameters.
///
/// The `_locked` methods expect interrupts masked by the caller.
pub(crate) trait SchedCore {
    /// Makes a blocked member thread runnable.
    fn wake_locked(&self, thread: &ThreadRef);
    /// Marks the running thread blocked (until `deadline`). Returns `false` without
    /// blocking when the deadline has already passed.
    fn prepare_block_locked(&self, me: &Thread, deadline: Option<u64>) -> bool;
    /// Switches away if the running thread is still blocked; returns when it runs again.
    fn commit_block_locked(&self, me: &Thread);
    /// Lets the other runnable threads run first.
    fn yield_locked(&self, me: &Thread);
    /// Retires the running thread for good.
    fn exit_locked(&self, me: &Thread) -> !;
    /// First code of a new thread after the switch into it.
    fn started(&self, me: &Thread);
    /// The scheduler's clock, in nanoseconds.
    fn now(&self) -> u64;
    /// The CPU time `thread` (a member) has used, `None` if this scheduler does not count it.
    fn cpu_time_ns(&self, thread: &Thread) -> Option<u64>;
    /// The switches away of `thread` (a member), `None` if this scheduler does not count
    /// them.
    fn context_switches(&self, thread: &Thread) -> Option<crate::ContextSwitches>;
    /// Makes `thread` a member ([`crate::Scheduler::add`]; masks interrupts itself).
    fn add(&self, thread: &ThreadRef) -> Result<(), crate::SchedError>;
}

/// The owner of the running thread; panics outside a scheduled thread.
#[inline]
fn running() -> (&'static Thread, &'static dyn SchedCore) {
    let me = cpu::current_ptr();
    assert!(
        !me.is_null(),
        "uk-sched: called outside a thread of a running scheduler"
    );
    // SAFETY: the running thread is kept alive by its scheduler's `current` slot for as long
    // as it runs; the reference does not outlive this thread's execution.
    let me: &'static Thread = unsafe { &*me };
    let owner = me.inner().owner.expect("the running thread has an owner");
    // SAFETY: the scheduler that switched to this thread owns it and outlives the switch;
    // it cannot be dropped while one of its threads runs.
    let owner: &'static dyn SchedCore = unsafe { owner.as_ref() };
    // Debug builds, whose frames are several times larger, check the caller's stack guard
    // at every yield, block, sleep and exit; every build checks it when the thread is
    // reclaimed.
    #[cfg(debug_assertions)]
    me.check_stack();
    (me, owner)
}

/// Entry of every thread created by this crate (see `ThreadBuilder::build`).
pub(crate) extern "C" fn thread_start(thread: usize, _unused: usize) -> ! {
    let (me, owner) = running();
    debug_assert_eq!(me as *const Thread as usize, thread);
    owner.started(me);
    let entry = me.inner_mut().entry.take();
    let run = move || match entry {
        Some(Entry::Fn(f, arg)) => f(arg),
        Some(Entry::Closure(f)) => f(),
        None => {}
    };
    #[cfg(any(test, feature = "std"))]
    if let Err(payload) = std::panic::catch_unwind(core::panic::AssertUnwindSafe(run)) {
        // A panic cannot unwind past the thread's first frame; hand it to `run`'s caller.
        PANIC.with(|p| *p.borrow_mut() = Some(payload));
    }
    #[cfg(not(any(test, feature = "std")))]
    run();
    exit()
}

#[cfg(any(test, feature = "std"))]
std::thread_local! {
    static PANIC: core::cell::RefCell<Option<std::boxed::Box<dyn core::any::Any + Send>>> =
        const { core::cell::RefCell::new(None) };
}

/// Takes the payload of a panic that ended a thread (hosted builds only).
#[cfg(any(test, feature = "std"))]
pub(crate) fn take_panic() -> Option<std::boxed::Box<dyn core::any::Any + Send>> {
    PANIC.with(|p| p.borrow_mut().take())
}

/// The running thread, if the caller is one.
pub fn current() -> Option<ThreadRef> {
    let me = cpu::current_ptr();
    if me.is_null() {
        return None;
    }
    // SAFETY: a non-null current pointer comes from `Arc::as_ptr` of the thread its
    // scheduler holds in its `current` slot, so the allocation is alive and counted; taking
    // one more count is sound.
    unsafe {
        Arc::increment_strong_count(me);
        Some(Arc::from_raw(me))
    }
}

/// Runs `f` on the running thread, if the caller is one, without taking a reference count:
/// cheaper than [`current`] and usable in an interrupt handler (it only reads this CPU's
/// "running thread" slot), which sees the thread it interrupted.
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> Option<R> {
    let me = cpu::current_ptr();
    if me.is_null() {
        return None;
    }
    // SAFETY: a non-null current pointer is the thread its scheduler holds (counted) in its
    // `current` slot; it stays alive at least while it runs, which includes this call made
    // by it or by an interrupt handler on its stack.
    Some(f(unsafe { &*me }))
}

/// Lets every other runnable thread of the caller's scheduler run first (the caller goes to
/// the tail of the run queue).
///
/// # Panics
///
/// Outside a thread of a running scheduler (as every function here).
pub fn yield_now() {
    let (me, owner) = running();
    let irq = cpu::irq_save();
    owner.yield_locked(me);
    cpu::irq_restore(irq);
}

/// [`yield_now`] when the caller is a thread of a running scheduler; does nothing (and
/// returns `false`) anywhere else. A running scheduler registers it as the image's
/// [`uk_hal::relax`] hook, so that drivers polling a device and spin locks held across
/// such waits let the other threads of a cooperative scheduler run.
pub fn yield_if_in_thread() -> bool {
    if cpu::current_ptr().is_null() {
        return false;
    }
    yield_now();
    true
}

/// The [`uk_hal::relax`] hook: yield inside a thread, spin elsewhere.
pub(crate) fn relax_hook() {
    if !yield_if_in_thread() {
        core::hint::spin_loop();
    }
}

/// Blocks the caller until another thread or an interrupt wakes it.
pub fn block() {
    prepare_block(None);
    commit_block();
}

/// Blocks the caller until woken or until the scheduler clock reaches `deadline_ns`.
/// Returns `true` if the deadline passed (the thread timed out).
pub fn block_until(deadline_ns: u64) -> bool {
    if !prepare_block(Some(deadline_ns)) {
        return true;
    }
    commit_block()
}

/// First half of a race-free block: marks the caller blocked (and queued for its deadline)
/// while it keeps running. A wake-up from here on (another thread, an interrupt) makes it
/// runnable again, and [`commit_block`] then returns at once: no wake-up is lost between
/// checking a condition and sleeping (the lost wake-up of Unikraft 0.11, #643).
///
/// Returns `false`, without blocking, if the deadline has already passed.
pub fn prepare_block(deadline_ns: Option<u64>) -> bool {
    let (me, owner) = running();
    let irq = cpu::irq_save();
    let blocked = owner.prepare_block_locked(me, deadline_ns);
    cpu::irq_restore(irq);
    blocked
}

/// Second half of [`prepare_block`]: switches away unless a wake-up already came. Returns
/// `true` if the thread was woken by its deadline.
pub fn commit_block() -> bool {
    let (me, owner) = running();
    let irq = cpu::irq_save();
    owner.commit_block_locked(me);
    let inner = me.inner();
    let timed_out = inner.timed_out;
    cpu::irq_restore(irq);
    timed_out
}

/// Undoes [`prepare_block`] (the condition became true meanwhile).
pub fn cancel_block() {
    let (me, owner) = running();
    let irq = cpu::irq_save();
    if me.inner().state == ThreadState::Blocked {
        // SAFETY of the clone: the running thread is alive (see `running`).
        let me_ref = current().expect("running");
        owner.wake_locked(&me_ref);
    }
    cpu::irq_restore(irq);
}

/// Sleeps at least `ns` nanoseconds of the scheduler clock.
pub fn sleep(ns: u64) {
    let (_, owner) = running();
    sleep_until(owner.now().saturating_add(ns));
}

/// Sleeps until the scheduler clock reaches `deadline_ns`; explicit wake-ups do not cut a
/// sleep short.
pub fn sleep_until(deadline_ns: u64) {
    loop {
        let (_, owner) = running();
        if owner.now() >= deadline_ns || block_until(deadline_ns) {
            // A deadline wake-up is never early: the scheduler compares against its clock.
            return;
        }
    }
}

/// The scheduler clock of the caller's scheduler.
pub fn now() -> u64 {
    running().1.now()
}

/// Ends the calling thread: runs its exit callback and exit hooks, then leaves it to be
/// reclaimed (stack, TLS, destructor) by its scheduler.
pub fn exit() -> ! {
    let (me, _) = running();
    me.finish();
    // The callbacks may have moved the thread (unlikely but allowed): ask again.
    let (me, owner) = running();
    let _irq = cpu::irq_save();
    owner.exit_locked(me)
}

/// Wakes `thread` through its owner (or marks it runnable if it has none).
pub(crate) fn wake(thread: &ThreadRef) {
    let irq = cpu::irq_save();
    match thread.inner().owner {
        Some(owner) => {
            // SAFETY: a thread's owner pointer is cleared before its scheduler goes away.
            unsafe { owner.as_ref() }.wake_locked(thread);
        }
        None => {
            let inner = thread.inner_mut();
            if inner.state == ThreadState::Blocked {
                inner.state = ThreadState::Runnable;
                inner.deadline = None;
                inner.timed_out = false;
            }
        }
    }
    cpu::irq_restore(irq);
}

/// Adds `thread` to the scheduler of the calling thread, as [`crate::Scheduler::add`] would.
/// Panics outside a scheduled thread.
pub(crate) fn add_to_own_scheduler(thread: &ThreadRef) -> Result<(), crate::SchedError> {
    let (_, owner) = running();
    owner.add(thread)
}
