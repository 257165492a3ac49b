//! A fake interrupt controller for host tests (feature `std`): what a scheduler or a
//! process layer built on [`crate::irq`] programs, without a board.
//!
//! [`FakeInterrupts`] records where its local timer is armed and which handlers were
//! registered; a test plays the timer interrupt with [`FakeInterrupts::fire_timer`], as a
//! board calls the handler [`crate::irq::install`] registered. Masking does nothing (a
//! hosted test has no interrupts to mask), there is one CPU, and no CPU can be started.

use std::sync::Mutex;
use std::vec::Vec;

use uk_hal::irq::{
    CpuSet, CpuStartError, Interrupts, IpiTarget, IrqCpuInterface, IrqDistributor, IrqError,
    IrqHandler, IrqNumber, LocalTimer, Trigger,
};

/// The fake's local timer interrupt.
pub const TIMER_IRQ: IrqNumber = 27;
/// The fake's first interrupt free for applications' IPIs.
pub const FREE_IPI: IrqNumber = 1;

/// A one-CPU interrupt controller whose timer records its deadline (see the [module
/// documentation](self)). Made as a `static` ([`FakeInterrupts::new`]), since
/// [`crate::irq::install`] takes a `&'static dyn Interrupts`.
pub struct FakeInterrupts {
    armed: Mutex<Option<u64>>,
    timer_handler: Mutex<Option<IrqHandler>>,
    others: Mutex<Vec<IrqNumber>>,
}

impl FakeInterrupts {
    /// A controller with its timer disarmed and no handler.
    pub const fn new() -> Self {
        Self {
            armed: Mutex::new(None),
            timer_handler: Mutex::new(None),
            others: Mutex::new(Vec::new()),
        }
    }

    /// Where the timer is armed (`None`: disarmed).
    pub fn armed(&self) -> Option<u64> {
        *self.armed.lock().unwrap()
    }

    /// Whether a handler for the timer interrupt ([`TIMER_IRQ`]) was registered.
    pub fn has_timer_handler(&self) -> bool {
        self.timer_handler.lock().unwrap().is_some()
    }

    /// The interrupts other than the timer's that were given a handler.
    pub fn other_handlers(&self) -> Vec<IrqNumber> {
        self.others.lock().unwrap().clone()
    }

    /// The timer interrupt: calls the registered handler, as a board does.
    ///
    /// # Panics
    ///
    /// When no handler was registered for it.
    pub fn fire_timer(&self) {
        let handler = self
            .timer_handler
            .lock()
            .unwrap()
            .expect("a timer handler is registered");
        handler(TIMER_IRQ);
    }
}

impl Default for FakeInterrupts {
    fn default() -> Self {
        Self::new()
    }
}

impl IrqDistributor for FakeInterrupts {
    fn enable(&self, _: IrqNumber) -> Result<(), IrqError> {
        Ok(())
    }
    fn disable(&self, _: IrqNumber) -> Result<(), IrqError> {
        Ok(())
    }
    fn set_priority(&self, _: IrqNumber, _: u8) -> Result<(), IrqError> {
        Ok(())
    }
    fn set_trigger(&self, _: IrqNumber, _: Trigger) -> Result<(), IrqError> {
        Ok(())
    }
    fn route(&self, _: IrqNumber, _: CpuSet) -> Result<(), IrqError> {
        Ok(())
    }
    fn line_count(&self) -> u32 {
        64
    }
}

impl IrqCpuInterface for FakeInterrupts {
    fn acknowledge(&self) -> Option<IrqNumber> {
        None
    }
    fn end_of_interrupt(&self, _: IrqNumber) {}
    fn send_ipi(&self, _: IrqNumber, _: IpiTarget) -> Result<(), IrqError> {
        Ok(())
    }
    fn cpu_id(&self) -> u32 {
        0
    }
}

impl LocalTimer for FakeInterrupts {
    fn irq(&self) -> IrqNumber {
        TIMER_IRQ
    }
    fn arm_at(&self, deadline_ns: u64) {
        *self.armed.lock().unwrap() = Some(deadline_ns);
    }
    fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
    }
}

impl Interrupts for FakeInterrupts {
    fn distributor(&self) -> &dyn IrqDistributor {
        self
    }
    fn cpu_interface(&self) -> &dyn IrqCpuInterface {
        self
    }
    fn timer(&self) -> &dyn LocalTimer {
        self
    }
    fn register_handler(&self, irq: IrqNumber, handler: IrqHandler) -> Result<(), IrqError> {
        if irq == TIMER_IRQ {
            *self.timer_handler.lock().unwrap() = Some(handler);
        } else {
            self.others.lock().unwrap().push(irq);
        }
        Ok(())
    }
    fn free_ipi(&self) -> IrqNumber {
        FREE_IPI
    }
    fn enable_on_this_cpu(&self) {}
    fn cpu_count(&self) -> u32 {
        1
    }
    fn start_cpu(&self, cpu: u32, _: fn(u32) -> !) -> Result<(), CpuStartError> {
        Err(CpuStartError::NoSuchCpu(cpu))
    }
    fn mask(&self) -> usize {
        0
    }
    fn restore(&self, _: usize) {}
    fn wait_for_interrupt(&self) {}
}
