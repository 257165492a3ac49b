//! CPU-wide state the scheduler needs: the running thread and interrupt masking.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::thread::Thread;

/// How to mask interrupts on this CPU; a board (or your kernel) installs it once with
/// [`set_irq_ops`]. Until then masking does nothing, which is right for a host process and
/// for a kernel that has not enabled interrupts.
#[derive(Debug, Clone, Copy)]
pub struct IrqOps {
    /// Masks interrupts and returns the previous state.
    pub save: fn() -> usize,
    /// Restores a state returned by `save`.
    pub restore: fn(usize),
}

static IRQ_SAVE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static IRQ_RESTORE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the interrupt-masking functions every scheduler, wait queue and lock of this
/// crate uses. Call it before interrupts are first enabled.
pub fn set_irq_ops(ops: IrqOps) {
    IRQ_RESTORE.store(ops.restore as *mut (), Ordering::Release);
    IRQ_SAVE.store(ops.save as *mut (), Ordering::Release);
}

/// Masks interrupts (if [`IrqOps`] are installed) and returns the previous state.
#[inline]
pub(crate) fn irq_save() -> usize {
    let f = IRQ_SAVE.load(Ordering::Acquire);
    if f.is_null() {
        return 0;
    }
    // SAFETY: only `set_irq_ops` stores here, and it stores a `fn() -> usize`.
    let f: fn() -> usize = unsafe { core::mem::transmute::<*mut (), fn() -> usize>(f) };
    f()
}

/// Restores a state returned by [`irq_save`].
#[inline]
pub(crate) fn irq_restore(state: usize) {
    let f = IRQ_RESTORE.load(Ordering::Acquire);
    if f.is_null() {
        return;
    }
    // SAFETY: only `set_irq_ops` stores here, and it stores a `fn(usize)`.
    let f: fn(usize) = unsafe { core::mem::transmute::<*mut (), fn(usize)>(f) };
    f(state)
}

#[cfg(any(test, feature = "std"))]
std::thread_local! {
    static CURRENT: core::cell::Cell<*const Thread> = const { core::cell::Cell::new(core::ptr::null()) };
}

/// The thread running on this CPU (null in idle or outside any scheduler).
#[cfg(any(test, feature = "std"))]
#[inline]
pub(crate) fn current_ptr() -> *const Thread {
    CURRENT.with(|c| c.get())
}

/// Records the thread now running on this CPU.
#[cfg(any(test, feature = "std"))]
#[inline]
pub(crate) fn set_current(thread: *const Thread) {
    CURRENT.with(|c| c.set(thread));
}

/// Most CPUs whose running thread is tracked (one slot each); a CPU id at or above it shares
/// the last slot, so a board starts no more than this many CPUs.
pub const MAX_CPUS: usize = 16;

/// The calling CPU's index (`0..MAX_CPUS`), installed with [`set_cpu_id_fn`].
static CPU_ID: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the function that names the calling CPU (dense, the boot CPU is 0), for the
/// per-CPU "running thread" slots. Until then every caller is CPU 0, which is right for a
/// single-CPU machine. [`crate::irq::install`] installs the interrupt controller's.
pub fn set_cpu_id_fn(f: fn() -> usize) {
    CPU_ID.store(f as *mut (), Ordering::Release);
}

/// The calling CPU's slot index.
#[inline]
pub(crate) fn cpu_index() -> usize {
    let f = CPU_ID.load(Ordering::Acquire);
    if f.is_null() {
        return 0;
    }
    // SAFETY: only `set_cpu_id_fn` stores here, and it stores a `fn() -> usize`.
    let f: fn() -> usize = unsafe { core::mem::transmute::<*mut (), fn() -> usize>(f) };
    f().min(MAX_CPUS - 1)
}

/// The running thread of each CPU (bare metal: one slot per CPU, indexed by [`cpu_index`]).
#[cfg(not(any(test, feature = "std")))]
static CURRENT: [AtomicPtr<Thread>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// The thread running on this CPU (null in idle or outside any scheduler).
#[cfg(not(any(test, feature = "std")))]
#[inline]
pub(crate) fn current_ptr() -> *const Thread {
    CURRENT[cpu_index()].load(Ordering::Relaxed)
}

/// Records the thread now running on this CPU.
#[cfg(not(any(test, feature = "std")))]
#[inline]
pub(crate) fn set_current(thread: *const Thread) {
    CURRENT[cpu_index()].store(thread.cast_mut(), Ordering::Relaxed);
}
