//! Wiring a scheduler to a board's interrupts: masking, per-CPU slots, the timer.
//!
//! Board-independent: everything goes through [`uk_hal::irq::Interrupts`], so the same code
//! serves the GIC with the arm generic timer and the local APIC with its timer.
//!
//! - [`install`] (idempotent) makes the scheduler mask interrupts through the board
//!   ([`Interrupts::mask`]/[`Interrupts::restore`]), name the calling CPU through the
//!   controller ([`uk_hal::irq::IrqCpuInterface::cpu_id`]) for the per-CPU "running thread"
//!   slots (on a machine of more than one CPU), and registers this module's handler for
//!   the local timer's interrupt.
//! - [`TimerIdle`] is an [`Idle`] that arms the local timer at the nearest deadline (or
//!   disarms it) and waits for an interrupt: no ticks while idle, never a spin.
//! - [`crate::RoundRobin::with_interrupts`] makes a scheduler program the timer at every
//!   decision (nearest sleeper; a time slice only while it is preemptive and another thread
//!   waits) and, while it runs, be its CPU's tick target: the timer handler disarms the timer
//!   and calls the scheduler's tick, which wakes due sleepers, may preempt, and re-arms.
//! - For the layer above (a process layer's timers and signals):
//!   [`request_timer_interrupt`] asks for an interrupt by a deadline that every
//!   programming keeps until it comes, [`set_timer_exit_hook`] runs a function at the end
//!   of every timer interrupt on the interrupted thread's stack, and
//!   [`set_preemption_filter`] lets it keep a thread from being preempted (inside a
//!   system call).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

use uk_hal::Clock;
use uk_hal::irq::{Interrupts, IrqError, IrqNumber};

use crate::cpu::{self, MAX_CPUS};
use crate::idle::Idle;

/// The board's interrupts, set once by [`install`].
struct Installed {
    /// 0: empty, 1: being written, 2: set.
    state: AtomicU8,
    value: UnsafeCell<Option<&'static dyn Interrupts>>,
}

// SAFETY: `value` is written once, by the caller that moved `state` from 0 to 1, before
// `state` becomes 2 (release); it is read only after `state` is seen as 2 (acquire).
unsafe impl Sync for Installed {}

static INSTALLED: Installed = Installed {
    state: AtomicU8::new(0),
    value: UnsafeCell::new(None),
};

/// The interrupts [`install`] was given, if any.
pub fn interrupts() -> Option<&'static dyn Interrupts> {
    if INSTALLED.state.load(Ordering::Acquire) != 2 {
        return None;
    }
    // SAFETY: set before `state` became 2 and never written again (see the `Sync` impl).
    unsafe { *INSTALLED.value.get() }
}

fn mask() -> usize {
    interrupts().map_or(0, |i| i.mask())
}

fn restore(state: usize) {
    if let Some(i) = interrupts() {
        i.restore(state);
    }
}

fn cpu_id() -> usize {
    interrupts().map_or(0, |i| i.cpu_interface().cpu_id() as usize)
}

/// Connects this crate to the board's interrupts: masking, CPU numbering, the timer
/// handler, and the handler of the wake-up interrupt [`crate::RemoteWaker`] sends
/// (`free_ipi()` + [`crate::remote::WAKE_IPI_OFFSET`]). Idempotent (only the first call's
/// `interrupts` counts); call it on the boot CPU before starting others.
/// [`crate::RoundRobin::with_interrupts`] calls it.
///
/// # Errors
///
/// The timer's interrupt or the wake-up interrupt already has another handler
/// ([`IrqError::HandlerBusy`]).
pub fn install(interrupts: &'static dyn Interrupts) -> Result<(), IrqError> {
    match INSTALLED
        .state
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {}
        Err(_) => {
            while INSTALLED.state.load(Ordering::Acquire) != 2 {
                core::hint::spin_loop();
            }
            return Ok(());
        }
    }
    // SAFETY: we moved `state` from 0 to 1: nobody else writes, nobody reads yet.
    unsafe { *INSTALLED.value.get() = Some(interrupts) };
    INSTALLED.state.store(2, Ordering::Release);
    // On a machine of one CPU every caller is CPU 0: the per-CPU slots need no name, and
    // asking the controller would cost every scheduler and process-layer call (each
    // "which thread runs" lookup) an indirect call and a register read.
    if interrupts.cpu_count() > 1 {
        cpu::set_cpu_id_fn(cpu_id);
    }
    cpu::set_irq_ops(cpu::IrqOps {
        save: mask,
        restore,
    });
    let timer = interrupts.timer();
    disarm(timer);
    interrupts.register_handler(timer.irq(), on_timer)?;
    interrupts.register_handler(
        interrupts.free_ipi() + crate::remote::WAKE_IPI_OFFSET,
        on_wake_ipi,
    )
}

/// Interrupts `cpu` so that it takes its remote wake-ups (bare metal, once [`install`]
/// ran). Hosted, every OS thread is its own home and polls (see [`crate::remote`]).
pub(crate) fn kick(cpu: usize) {
    #[cfg(not(any(test, feature = "std")))]
    if let Some(irqs) = interrupts() {
        // A failed send leaves the request queued: the home still takes it at its next
        // scheduling decision.
        let _ = irqs.cpu_interface().send_ipi(
            irqs.free_ipi() + crate::remote::WAKE_IPI_OFFSET,
            uk_hal::irq::IpiTarget::Cpus(uk_hal::irq::CpuSet::single(cpu as u32)),
        );
    }
    #[cfg(any(test, feature = "std"))]
    let _ = cpu;
}

/// The wake-up interrupt: take this CPU's remote wake-ups now.
fn on_wake_ipi(_irq: IrqNumber) {
    crate::remote::home_inbox().take_pending();
}

/// A CPU's tick target: a type-erased scheduler core and its tick function.
struct TickSlot {
    core: AtomicPtr<()>,
    tick: AtomicPtr<()>,
}

static TICK: [TickSlot; MAX_CPUS] = [const {
    TickSlot {
        core: AtomicPtr::new(core::ptr::null_mut()),
        tick: AtomicPtr::new(core::ptr::null_mut()),
    }
}; MAX_CPUS];

/// Makes `core` (passed to `tick`) the calling CPU's tick target, returning the previous
/// one; `core` null clears it. Interrupts masked by the caller.
pub(crate) fn set_tick_target(core: *const (), tick: fn(*const ())) -> (*const (), *const ()) {
    let slot = &TICK[cpu::cpu_index()];
    let old_core = slot.core.swap(core.cast_mut(), Ordering::Relaxed);
    let old_tick = slot.tick.swap(tick as *mut (), Ordering::Relaxed);
    (old_core, old_tick)
}

/// Puts back a target returned by [`set_tick_target`].
pub(crate) fn restore_tick_target(previous: (*const (), *const ())) {
    let slot = &TICK[cpu::cpu_index()];
    slot.tick.store(previous.1.cast_mut(), Ordering::Relaxed);
    slot.core.store(previous.0.cast_mut(), Ordering::Relaxed);
}

/// Timer interrupts handled so far, all CPUs.
static TIMER_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// How many timer interrupts this module's handler has taken (all CPUs): lets a test tell
/// a wake-up by the timer from one by polling.
pub fn timer_interrupts() -> u64 {
    TIMER_INTERRUPTS.load(Ordering::Relaxed)
}

/// The local timer's interrupt: disarm (the arm generic timer is level-triggered and stays
/// asserted until then), drop this CPU's interrupt request ([`request_timer_interrupt`]),
/// then the CPU's scheduler ticks and re-arms as it needs, and last the exit hook
/// ([`set_timer_exit_hook`]) runs for the interrupted thread.
fn on_timer(_irq: IrqNumber) {
    let Some(interrupts) = interrupts() else {
        return;
    };
    // Read now: a tick that switches threads comes back here later, when another
    // interrupt may be the board's current one.
    let interrupted = interrupts.interrupted_registers();
    disarm(interrupts.timer());
    TIMER_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    let cpu = cpu::cpu_index();
    REQUESTED[cpu].store(NONE, Ordering::Relaxed);
    let slot = &TICK[cpu];
    let core = slot.core.load(Ordering::Relaxed);
    let tick = slot.tick.load(Ordering::Relaxed);
    if !core.is_null() && !tick.is_null() {
        // SAFETY: `set_tick_target` stores a `fn(*const ())` next to a core pointer that
        // stays valid until `restore_tick_target` replaces it (the scheduler's `run`
        // brackets both).
        let tick: fn(*const ()) = unsafe { core::mem::transmute::<*mut (), fn(*const ())>(tick) };
        tick(core);
    }
    if let Some(hook) = EXIT_HOOK.get() {
        hook(interrupted);
    }
}

/// No deadline, in the per-CPU deadline slots.
const NONE: u64 = u64::MAX;

/// Per CPU: the deadline the local timer is armed at ([`NONE`]: disarmed), as this module
/// and the schedulers programmed it.
static ARMED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NONE) }; MAX_CPUS];

/// Per CPU: the earliest deadline asked for with [`request_timer_interrupt`] since the last
/// timer interrupt ([`NONE`]: none).
static REQUESTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NONE) }; MAX_CPUS];

/// What runs at the end of every timer interrupt ([`set_timer_exit_hook`]).
static EXIT_HOOK: spin::Once<TimerExitHook> = spin::Once::new();

/// A timer interrupt's exit hook: gets the interrupted thread's registers
/// ([`uk_hal::irq::Interrupts::interrupted_registers`], when the board says), valid while
/// the hook runs.
pub type TimerExitHook = fn(Option<uk_hal::irq::InterruptedRegisters>);

/// Arms `timer` at `deadline_ns` and records it as this CPU's armed deadline.
pub(crate) fn arm(timer: &dyn uk_hal::irq::LocalTimer, deadline_ns: u64) {
    ARMED[cpu::cpu_index()].store(deadline_ns, Ordering::Relaxed);
    timer.arm_at(deadline_ns);
}

/// Disarms `timer` and records that.
pub(crate) fn disarm(timer: &dyn uk_hal::irq::LocalTimer) {
    ARMED[cpu::cpu_index()].store(NONE, Ordering::Relaxed);
    timer.disarm();
}

/// The deadline asked for on this CPU with [`request_timer_interrupt`], if any is pending.
pub(crate) fn requested_deadline() -> Option<u64> {
    let d = REQUESTED[cpu::cpu_index()].load(Ordering::Relaxed);
    (d != NONE).then_some(d)
}

/// Asks for a timer interrupt on the calling CPU no later than `deadline_ns` (the board's
/// monotonic clock, as every deadline here), whatever the scheduler needs for itself: the
/// timer is armed at once if it is not armed earlier, and every later programming by a
/// scheduler keeps it. A request lasts until the next timer interrupt on this CPU, whose
/// exit hook ([`set_timer_exit_hook`]) renews what it still needs; of several requests the
/// earliest counts. This is how a process layer gets a thread that computes without
/// system calls interrupted when one of its timers runs out. Nothing happens before
/// [`install`] (no interrupts: nothing could be delivered anyway).
pub fn request_timer_interrupt(deadline_ns: u64) {
    let Some(interrupts) = interrupts() else {
        return;
    };
    let state = interrupts.mask();
    let cpu = cpu::cpu_index();
    REQUESTED[cpu].fetch_min(deadline_ns, Ordering::Relaxed);
    if deadline_ns < ARMED[cpu].load(Ordering::Relaxed) {
        arm(interrupts.timer(), deadline_ns);
    }
    interrupts.restore(state);
}

/// What decides whether the running thread may be preempted now ([`set_preemption_filter`]).
static PREEMPTION_FILTER: spin::Once<fn() -> bool> = spin::Once::new();

/// Sets the function a preemptive scheduler's tick asks before it switches away from the
/// running thread (first call wins; until then every thread may be preempted). It runs in
/// the timer interrupt with interrupts masked and must not block. A process layer answers
/// "no" while the thread is inside a system call, so that kernel code, which holds locks
/// other threads' calls need, runs to its next block or return as in a non-preemptible
/// kernel, and only application code is preempted; the thread is then preempted at the
/// first tick that finds it back in application code.
pub fn set_preemption_filter(filter: fn() -> bool) {
    PREEMPTION_FILTER.call_once(|| filter);
}

/// Whether the running thread may be preempted now ([`set_preemption_filter`]).
pub(crate) fn may_preempt() -> bool {
    PREEMPTION_FILTER.get().is_none_or(|filter| filter())
}

/// Sets the function every timer interrupt calls last, after the scheduler's tick, on the
/// interrupted thread's stack with interrupts masked (first call wins). A process layer
/// delivers signals there to a thread that was interrupted while running application code
/// (a handler may read and change where that code resumes through the address the hook
/// gets); it may unmask interrupts meanwhile (the interrupt has been ended) and must mask
/// them again before it returns. It also runs when the interrupted context is the idle loop
/// or a thread inside the kernel, so it has to find out where it is before touching locks.
pub fn set_timer_exit_hook(hook: TimerExitHook) {
    EXIT_HOOK.call_once(|| hook);
}

/// Idles on the local timer: arms it at the nearest deadline (disarms it when there is
/// none), then [`Interrupts::wait_for_interrupt`]. No periodic tick, never a spin.
#[derive(Clone, Copy)]
pub struct TimerIdle(pub &'static dyn Interrupts);

impl core::fmt::Debug for TimerIdle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TimerIdle")
    }
}

impl Idle for TimerIdle {
    fn idle(&self, clock: &dyn Clock, deadline_ns: Option<u64>) {
        let timer = self.0.timer();
        match deadline_ns {
            Some(deadline) if deadline <= clock.monotonic_ns() => return,
            Some(deadline) => arm(timer, deadline),
            None => disarm(timer),
        }
        self.0.wait_for_interrupt();
    }
}

/// When a scheduler wants its next timer interrupt: the nearest sleeper's deadline and, if
/// `slice_end` is given (preemptive, another thread waiting), the end of the time slice.
pub fn next_timer_deadline(sleeper: Option<u64>, slice_end: Option<u64>) -> Option<u64> {
    earliest(sleeper, slice_end)
}

/// The earlier of two optional deadlines (`None`: no deadline).
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_deadline() {
        assert_eq!(next_timer_deadline(None, None), None);
        assert_eq!(next_timer_deadline(Some(5), None), Some(5));
        assert_eq!(next_timer_deadline(None, Some(7)), Some(7));
        assert_eq!(next_timer_deadline(Some(9), Some(7)), Some(7));
        assert_eq!(next_timer_deadline(Some(3), Some(7)), Some(3));
    }
}
