//! In-image test cases (feature `ktest`) on the board's interrupt controller, through
//! [`uk_hal::irq::Interrupts`] (so they run on whichever GIC version QEMU was given).

use core::sync::atomic::{AtomicU32, Ordering};

use uk_hal::irq::{Interrupts, IpiTarget, IrqNumber};

/// SGIs the cases use (the board keeps none of them).
const SGI_SELF: IrqNumber = 8;
const SGI_UNHANDLED: IrqNumber = 13;
const SGI_AFTER: IrqNumber = 12;

/// INTID the last handler call saw, plus one (0: none yet), and on which CPU.
static SEEN: AtomicU32 = AtomicU32::new(0);
static SEEN_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
static CALLS: AtomicU32 = AtomicU32::new(0);

fn record(irq: IrqNumber) {
    SEEN.store(irq + 1, Ordering::SeqCst);
    CALLS.fetch_add(1, Ordering::SeqCst);
    if let Some(irqs) = uk_rt::platform().interrupts() {
        SEEN_CPU.store(irqs.cpu_interface().cpu_id(), Ordering::SeqCst);
    }
}

fn interrupts() -> &'static dyn Interrupts {
    uk_rt::platform()
        .interrupts()
        .expect("the board has an interrupt controller")
}

/// Registers `record` for `irq` (a rerun finds it registered already).
fn handle(irqs: &dyn Interrupts, irq: IrqNumber) {
    let _ = irqs.register_handler(irq, record);
}

/// Sends `irq` to this CPU with interrupts unmasked and waits up to 100 ms for `CALLS` to
/// reach `calls`; returns whether it did.
fn send_to_self_and_wait(irqs: &dyn Interrupts, irq: IrqNumber, calls: u32) -> bool {
    let platform = uk_rt::platform();
    let state = irqs.mask();
    irqs.cpu_interface()
        .send_ipi(irq, IpiTarget::SelfOnly)
        .expect("an SGI number is valid");
    irqs.enable_on_this_cpu();
    let end = platform.monotonic_ns() + 100_000_000;
    while CALLS.load(Ordering::SeqCst) < calls && platform.monotonic_ns() < end {
        core::hint::spin_loop();
    }
    irqs.mask();
    irqs.restore(state);
    CALLS.load(Ordering::SeqCst) >= calls
}

uk_test::ktest! {
    /// An SGI sent to the calling CPU arrives once, with its own INTID, on this CPU.
    fn sgi_to_self_arrives_with_its_intid() {
        let irqs = interrupts();
        handle(irqs, SGI_SELF);
        let before = CALLS.load(Ordering::SeqCst);
        SEEN.store(0, Ordering::SeqCst);
        uk_test::expect!(send_to_self_and_wait(irqs, SGI_SELF, before + 1));
        uk_test::expect_eq!(SEEN.load(Ordering::SeqCst), SGI_SELF + 1);
        uk_test::expect_eq!(SEEN_CPU.load(Ordering::SeqCst), irqs.cpu_interface().cpu_id());
        uk_test::expect_eq!(CALLS.load(Ordering::SeqCst), before + 1);
    }
}

uk_test::ktest! {
    /// An SGI without a handler is logged and acknowledged, not fatal: the run goes on, and
    /// a later SGI of the same priority still arrives (it would not if the first had not
    /// been ended).
    fn unhandled_interrupt_is_acknowledged_not_fatal() {
        let irqs = interrupts();
        handle(irqs, SGI_AFTER);
        let before = CALLS.load(Ordering::SeqCst);
        // No handler: nothing counts it, so only the later SGI can end the wait.
        send_to_self_and_wait(irqs, SGI_UNHANDLED, u32::MAX);
        uk_test::expect_eq!(CALLS.load(Ordering::SeqCst), before);
        SEEN.store(0, Ordering::SeqCst);
        uk_test::expect!(send_to_self_and_wait(irqs, SGI_AFTER, before + 1));
        uk_test::expect_eq!(SEEN.load(Ordering::SeqCst), SGI_AFTER + 1);
    }
}

uk_test::ktest! {
    /// Bad interrupt numbers are refused by the controller with a typed error.
    fn bad_numbers_are_refused() {
        use uk_hal::irq::IrqError;
        let irqs = interrupts();
        let lines = irqs.distributor().line_count();
        uk_test::expect!(lines >= 32);
        uk_test::expect_eq!(irqs.distributor().enable(lines), Err(IrqError::NoSuchIrq(lines)));
        uk_test::expect_eq!(
            irqs.cpu_interface().send_ipi(16, IpiTarget::SelfOnly),
            Err(IrqError::NotConfigurable(16))
        );
    }
}
