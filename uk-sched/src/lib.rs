//! Threads made apart from schedulers, a `Scheduler` trait, cooperative and preemptive
//! round robin, wait queues and locks.
//!
//! # Design
//!
//! A [`Thread`] is created on its own ([`Thread::builder`]): a stack (64 KiB unless told
//! otherwise, or one from a [`StackPool`], or caller memory), optionally a TLS block built
//! from the image's TLS template with room for a libc's TCB, optionally an extended
//! (FPU/SIMD) context, an entry with an argument (or a closure), an exit callback and a
//! destructor. It does nothing until a scheduler adopts it with [`Scheduler::add`]; it can
//! be [removed](Scheduler::remove) and added to another scheduler in any state (runnable,
//! blocked, sleeping with a deadline, exited) without leaving an entry behind in any queue,
//! and a blocked thread keeps its deadline when it moves.
//!
//! [`Scheduler`] is the seam for policies: add, remove, yield, block (with a deadline),
//! wake, sleep, exit, current, run (the idle loop) and tick (the timer interrupt). This
//! crate provides [`RoundRobin`], generic over the processor half of a switch
//! ([`uk_context::ContextOps`]) and a clock ([`uk_hal::Clock`]): cooperative, or preemptive
//! with a time slice counted in [`Scheduler::tick`]s. FIFO run queue; a yielding or
//! preempted thread goes to the tail; sleepers are kept sorted by deadline and are made
//! runnable no earlier than their deadline; when nothing is runnable, [`Scheduler::run`]
//! calls an [`Idle`] hook once with the nearest deadline (or none) that halts the CPU until
//! then or until an interrupt, and never spins. Exited threads are reclaimed (stack, TLS,
//! extended context freed, destructor run) by the next scheduling decision.
//!
//! Stacks this crate allocates carry a guard word at their lowest address: debug builds
//! check the caller's at every yield, block, sleep and exit, every build when the thread is
//! reclaimed, and a thread found past its end stops the image with a message naming it
//! ([`Stack::overflowed`]). An image whose board sets page rights (uk-hal's
//! `PageProtection`) can also put an inaccessible page below every stack
//! ([`set_guard_pages`]): an overflow then faults at its first access past the end.
//!
//! A scheduler built [`RoundRobin::with_cpu_time`] charges each thread the time from every
//! switch into it to the next switch away ([`Thread::cpu_time_ns`]), at the price of one
//! clock read per switch, and counts its switches away, voluntary (it blocked or slept) and
//! involuntary (it yielded to another thread or was preempted), as Linux counts them
//! ([`Thread::context_switches`]); a process layer's `clock()` and `getrusage` are built on
//! it.
//!
//! Waiting and locking ([`WaitQueue`], [`Semaphore`], recursive [`Mutex`], [`CondVar`])
//! need no scheduler argument: the calling thread blocks through its owner, and a wake-up
//! goes to the woken thread's owner. Blocking is two-phase ([`prepare_block`] marks the
//! thread blocked while it still runs, [`commit_block`] switches away unless a wake-up came
//! meanwhile), so a wake-up racing with the switch is never lost. Interrupt masking comes
//! from [`set_irq_ops`] (a board installs it); scheduler state is only touched with
//! interrupts masked. These locks belong to one CPU; threads of different CPUs share a
//! [`SharedSemaphore`], a [`SharedMutex`] or a [`SharedChannel`] (`Send + Sync`), whose
//! `up`, unlock or send hands a unit to a waiter of any CPU through that thread's
//! [`RemoteWaker`]; and a
//! [`RemoteSpawner`] ([`RoundRobin::remote_spawner`]) lets any CPU start threads on a
//! scheduler of another.
//!
//! # Fast paths: the typed calls
//!
//! The free functions ([`yield_now`], [`sleep`], ...) find the caller's scheduler at run
//! time, through the CPU's running-thread slot and a dynamic call, so any code can call them
//! without knowing the scheduler's type. A thread that holds its scheduler (a kernel's
//! per-CPU `RoundRobin<MyCpu, MyClock>`, or an `Rc` in a hosted program) can call
//! [`Scheduler::yield_now`] on it instead: statically dispatched, it inlines the switch into
//! the caller, whose frame then saves only the registers live there, once, rather than all
//! callee-saved registers on every switch (120 instead of 154 instructions per ping-pong
//! round trip; see the README's benchmarks). It checks that the caller is this scheduler's
//! running thread and panics otherwise, as every calling-thread method does. The price is
//! code size: each call site carries the whole switch path (about 0.8 KiB on x86_64 at
//! `opt-level = 3`, the three extended-context methods included), where a call of the free
//! function is a few instructions; keep it for the hot loops.
//!
//! # Interrupts, timers and several CPUs
//!
//! [`irq`] wires a scheduler to a board's [`uk_hal::irq::Interrupts`], board-independently
//! (the GIC with the arm generic timer, the local APIC with its timer):
//! [`RoundRobin::with_interrupts`] makes the scheduler program the calling CPU's one-shot
//! timer at every decision — the nearest sleeper's deadline, plus the end of a time slice
//! only while it is preemptive and another thread waits — so an idle CPU takes no ticks, and
//! a CPU-bound thread is preempted from the timer interrupt ([`Scheduler::tick`] runs inside
//! the handler, on the interrupted thread's stack). [`irq::TimerIdle`] idles in
//! [`uk_hal::irq::Interrupts::wait_for_interrupt`] with the timer armed at the nearest
//! deadline. The running thread is tracked per CPU (up to [`MAX_CPUS`], numbered by the
//! interrupt controller once [`irq::install`] ran); each CPU runs a scheduler instance of
//! its own, built and run on that CPU. A thread's scheduler state is only touched by its
//! CPU (threads are not `Send`), so another CPU wakes a thread through a
//! [`RemoteWaker`] ([`Thread::remote_waker`]): a lock-free request to the thread's CPU plus
//! a wake-up interrupt there (see [`remote`]). Checking for such requests costs every switch
//! one load and a branch.
//!
//! # Unikraft 0.11 defects this crate does not have
//!
//! Each has a host test: removing a sleeping thread leaves nothing in the sleep queue
//! (`remove_sleeping_thread_leaves_no_entry`); idle with no deadline waits once instead of
//! spinning (`idle_never_spins_without_deadline`); a wake-up between marking a thread
//! blocked and the switch is not lost (`wake_between_prepare_and_commit_is_not_lost`); a
//! failing init hook rolls back every earlier hook (`init_hook_rollback_is_exact`).
//!
//! # Features
//!
//! - `std`: the "current thread" slot becomes thread-local, so independent schedulers can
//!   run in several OS threads of a hosted process (tests and benchmarks do this).
//! - `ktest`: registers in-image test cases with `uk-test` (on aarch64 also: a sleeper woken
//!   by the timer interrupt within a tick, a CPU-bound thread preempted).
//! - `ktest-smp`: the in-image cases that need a second CPU (QEMU `-smp 2`): CPU 1 runs a
//!   scheduler of its own; an SGI/IPI goes CPU 0 → 1 → 0. They fail, saying so, on one CPU.
//!
//! # Example: green threads in a Linux process
//!
//! ```
//! # #[cfg(target_arch = "x86_64")] {
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use uk_sched::{idle, RoundRobin, Scheduler, yield_now};
//!
//! struct HostClock(std::time::Instant);
//! impl uk_hal::Clock for HostClock {
//!     fn monotonic_ns(&self) -> u64 { self.0.elapsed().as_nanos() as u64 }
//!     fn cycles(&self) -> u64 { self.monotonic_ns() }
//!     fn cycles_per_second(&self) -> u64 { 1_000_000_000 }
//! }
//!
//! let sched = RoundRobin::cooperative(
//!     uk_context::Native::detect(),
//!     HostClock(std::time::Instant::now()),
//!     idle::Poll,
//! );
//! let log = Rc::new(RefCell::new(Vec::new()));
//! for name in ["a", "b"] {
//!     let log = log.clone();
//!     sched.spawn(name, move || {
//!         for i in 0..2 {
//!             log.borrow_mut().push(format!("{name}{i}"));
//!             yield_now();
//!         }
//!     }).unwrap();
//! }
//! sched.run(); // returns when every thread has exited
//! assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1"]);
//! # }
//! ```
//!
//! # Example: another kernel's context switch and clock
//!
//! A kernel with its own switch code implements [`uk_context::ContextOps`] (an `unsafe`
//! trait: the scheduler trusts it to switch correctly) and `uk_hal::Clock`; here the
//! switch simply delegates to this crate's own x86_64 code and the clock is a counter.
//!
//! ```
//! # #[cfg(target_arch = "x86_64")] {
//! use core::alloc::Layout;
//! use core::sync::atomic::{AtomicU64, Ordering};
//! use uk_context::{Context, ContextError, ContextOps, EntryFn, TlsVariant, X86_64};
//! use uk_sched::{RoundRobin, Scheduler};
//!
//! #[derive(Clone)]
//! struct MyCpu(X86_64);
//! // SAFETY: every method delegates to a correct implementation.
//! unsafe impl ContextOps for MyCpu {
//!     const TLS_VARIANT: TlsVariant = TlsVariant::II;
//!     unsafe fn init(&self, ctx: &mut Context, stack: *mut u8, size: usize, entry: EntryFn,
//!                    a0: usize, a1: usize) -> Result<(), ContextError> {
//!         // SAFETY: forwarded contract.
//!         unsafe { self.0.init(ctx, stack, size, entry, a0, a1) }
//!     }
//!     unsafe fn switch(&self, prev: *mut Context, next: *const Context) {
//!         // SAFETY: forwarded contract.
//!         unsafe { self.0.switch(prev, next) }
//!     }
//!     fn ectx_layout(&self) -> Layout { self.0.ectx_layout() }
//!     // SAFETY (all three): forwarded contracts.
//!     unsafe fn ectx_init(&self, a: *mut u8) { unsafe { self.0.ectx_init(a) } }
//!     unsafe fn ectx_save(&self, a: *mut u8) { unsafe { self.0.ectx_save(a) } }
//!     unsafe fn ectx_restore(&self, a: *const u8) { unsafe { self.0.ectx_restore(a) } }
//!     unsafe fn set_thread_pointer(&self, _tp: usize) {}
//!     fn thread_pointer(&self) -> usize { 0 }
//! }
//!
//! struct Ticks(AtomicU64);
//! impl uk_hal::Clock for Ticks {
//!     fn monotonic_ns(&self) -> u64 { self.0.fetch_add(1, Ordering::Relaxed) }
//!     fn cycles(&self) -> u64 { self.monotonic_ns() }
//!     fn cycles_per_second(&self) -> u64 { 1_000_000_000 }
//! }
//!
//! let sched = RoundRobin::cooperative(MyCpu(X86_64::detect()), Ticks(AtomicU64::new(0)),
//!                                     uk_sched::idle::Poll);
//! sched.spawn("sleeper", || uk_sched::sleep(100)).unwrap();
//! sched.run();
//! assert!(sched.now() >= 100);
//! # }
//! ```
#![no_std]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod base;
mod cpu;
pub mod idle;
pub mod irq;
pub mod remote;
mod rr;
pub mod shared;
pub mod spawner;
mod sync;
#[cfg(any(test, feature = "std"))]
pub mod testing;
mod thread;

#[cfg(all(feature = "ktest", target_os = "none"))]
mod ktest;

#[cfg(test)]
mod tests;

pub use base::{
    block, block_until, cancel_block, commit_block, current, exit, now, prepare_block, sleep,
    sleep_until, with_current, yield_if_in_thread, yield_now,
};
pub use cpu::{IrqOps, MAX_CPUS, set_cpu_id_fn, set_irq_ops};
pub use idle::Idle;
pub use remote::RemoteWaker;
pub use rr::{RoundRobin, Stats};
pub use shared::{SharedChannel, SharedMutex, SharedMutexGuard, SharedSemaphore};
pub use spawner::RemoteSpawner;
pub use sync::{CondVar, Mutex, MutexGuard, NotOwner, Semaphore, TimedOut, WaitQueue};
pub use thread::{
    ContextSwitches, DEFAULT_STACK_SIZE, HookError, Stack, StackPool, Thread, ThreadBuilder,
    ThreadHook, ThreadRef, ThreadState, set_guard_pages,
};

use core::fmt;

/// Why a scheduler or thread operation failed. Nothing changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedError {
    /// The allocator could not provide memory (stack, TLS, extended context, queues).
    OutOfMemory,
    /// The stack is empty or too small for the initial frame.
    BadStack,
    /// The TLS template or layout is invalid.
    Tls(uk_context::TlsError),
    /// A per-thread init hook refused the thread (every earlier hook's exit has run).
    HookFailed {
        /// The refusing hook's name.
        hook: &'static str,
        /// Its error.
        error: HookError,
    },
    /// The thread already belongs to a scheduler (remove it first).
    AlreadyScheduled,
    /// The thread does not belong to this scheduler.
    NotMember,
    /// The thread is running; it cannot be removed.
    Running,
    /// The thread has exited (final); it cannot be added.
    Exited,
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::BadStack => f.write_str("stack empty or too small for the initial frame"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::HookFailed { hook, error } => {
                write!(f, "thread init hook `{hook}` failed with {}", error.0)
            }
            Self::AlreadyScheduled => f.write_str("thread already belongs to a scheduler"),
            Self::NotMember => f.write_str("thread does not belong to this scheduler"),
            Self::Running => f.write_str("thread is running"),
            Self::Exited => f.write_str("thread has exited"),
        }
    }
}

impl core::error::Error for SchedError {}

/// A scheduling policy over threads. Object-safe.
///
/// Methods that act on "the calling thread" (yield, block, sleep, exit) must be called by a
/// running thread of this scheduler; they panic otherwise. The free functions of this crate
/// ([`yield_now`], [`sleep`], ...) do the same through whatever scheduler owns the caller;
/// called on a scheduler of known type, [`Scheduler::yield_now`] is the faster of the two
/// (see "Fast paths" in the crate docs).
pub trait Scheduler {
    /// Adopts a created (or removed) thread in any non-exited state: a runnable one joins
    /// the tail of the run queue, a blocked one with a deadline the sleep queue.
    ///
    /// # Errors
    ///
    /// [`SchedError::AlreadyScheduled`], [`SchedError::Exited`], [`SchedError::OutOfMemory`].
    fn add(&self, thread: &ThreadRef) -> Result<(), SchedError>;

    /// Gives a thread up, leaving no entry in any queue; its state (and deadline) is kept
    /// for the next scheduler. An exited thread is reclaimed at once.
    ///
    /// # Errors
    ///
    /// [`SchedError::NotMember`], or [`SchedError::Running`] for the running thread.
    fn remove(&self, thread: &ThreadRef) -> Result<(), SchedError>;

    /// The calling thread goes to the tail of the run queue.
    fn yield_now(&self);

    /// Blocks the calling thread until woken.
    fn block(&self);

    /// Blocks the calling thread until woken or until `deadline_ns`; `true` if it timed out.
    fn block_until(&self, deadline_ns: u64) -> bool;

    /// Makes a blocked thread runnable (from a thread or an interrupt handler).
    fn wake(&self, thread: &ThreadRef);

    /// Sleeps the calling thread for at least `ns` nanoseconds of the scheduler clock.
    fn sleep(&self, ns: u64);

    /// Ends the calling thread.
    fn exit(&self) -> !;

    /// The thread this scheduler runs now (`None` in its idle loop).
    fn current(&self) -> Option<ThreadRef>;

    /// The scheduler clock in nanoseconds.
    fn now(&self) -> u64;

    /// Runs the scheduler on the calling context, which becomes its idle loop, until no
    /// thread is left.
    fn run(&self);

    /// Timer interrupt: wakes due sleepers and, for a preemptive policy, ends the running
    /// thread's time slice. A board calls it from its timer interrupt handler (on the
    /// interrupted thread's stack, after acknowledging the interrupt).
    fn tick(&self);
}
