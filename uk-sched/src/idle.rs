//! What a scheduler does when no thread is runnable.

use uk_hal::Clock;

/// Waits for the next event when no thread is runnable.
///
/// [`crate::Scheduler::run`] calls it once per idle period, with interrupts masked (through
/// [`crate::IrqOps`]): an implementation unmasks and waits atomically (x86 `sti; hlt`,
/// aarch64 `wfi` with the interrupt pending check), masks again and returns when an
/// interrupt came or the clock reached `deadline_ns`. With no deadline and no interrupt
/// source nothing can ever wake a thread again; an implementation may report that.
pub trait Idle {
    /// Waits until `deadline_ns` (if any) or an interrupt.
    fn idle(&self, clock: &dyn Clock, deadline_ns: Option<u64>);
}

impl<F: Fn(&dyn Clock, Option<u64>)> Idle for F {
    fn idle(&self, clock: &dyn Clock, deadline_ns: Option<u64>) {
        self(clock, deadline_ns)
    }
}

/// Idles by watching the clock until the deadline: for machines without a timer interrupt
/// yet, and for hosted processes. With no deadline it panics: every remaining thread is
/// blocked and nothing could wake one (a deadlock), which is better reported than hidden.
#[derive(Debug, Default, Clone, Copy)]
pub struct Poll;

impl Idle for Poll {
    fn idle(&self, clock: &dyn Clock, deadline_ns: Option<u64>) {
        let Some(deadline) = deadline_ns else {
            panic!(
                "uk-sched: every thread is blocked with no deadline and no interrupt source (deadlock)"
            );
        };
        while clock.monotonic_ns() < deadline {
            core::hint::spin_loop();
        }
    }
}

/// Idles a hosted process with `std::thread::sleep` until the deadline (feature `std`).
#[cfg(any(test, feature = "std"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct HostSleep;

#[cfg(any(test, feature = "std"))]
impl Idle for HostSleep {
    fn idle(&self, clock: &dyn Clock, deadline_ns: Option<u64>) {
        let Some(deadline) = deadline_ns else {
            panic!(
                "uk-sched: every thread is blocked with no deadline and no interrupt source (deadlock)"
            );
        };
        let now = clock.monotonic_ns();
        if deadline > now {
            std::thread::sleep(core::time::Duration::from_nanos(deadline - now));
        }
    }
}
