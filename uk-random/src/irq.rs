//! Masking interrupts around the global generator's lock, so that an interrupt handler that
//! asks for random bytes can never spin on a lock its own CPU holds.
//!
//! On bare metal (`target_os = "none"`) the guard masks IRQs (and FIQs on aarch64) and
//! restores the previous state on drop, like Linux's `spin_lock_irqsave`. In a hosted
//! process (tests) there are no interrupts to mask and the guard does nothing.
//!
//! This belongs to the boards' `critical-section` implementation once they provide one
//! (DESIGN.md, Locking); until then the two instructions live here.

/// Interrupts stay masked while a value is alive; dropping it restores the previous state.
#[must_use = "interrupts are unmasked again when the guard is dropped"]
pub(crate) struct IrqGuard {
    #[cfg_attr(
        not(all(
            target_os = "none",
            any(target_arch = "x86_64", target_arch = "aarch64")
        )),
        allow(dead_code)
    )]
    saved: usize,
}

impl IrqGuard {
    /// Masks interrupts, remembering whether they were enabled.
    #[cfg(all(target_os = "none", target_arch = "x86_64"))]
    pub(crate) fn new() -> IrqGuard {
        let saved: usize;
        // SAFETY: reads RFLAGS through the stack and clears IF; runs at CPL 0 on bare metal.
        // Not `nomem`: the masking must not be reordered with the locked accesses.
        unsafe { core::arch::asm!("pushfq", "pop {}", "cli", out(reg) saved) };
        IrqGuard { saved }
    }

    /// Masks interrupts, remembering whether they were enabled.
    #[cfg(all(target_os = "none", target_arch = "aarch64"))]
    pub(crate) fn new() -> IrqGuard {
        let saved: usize;
        // SAFETY: reads DAIF and sets its I and F bits; allowed at EL1 (and EL2) where the
        // kernel runs. Not `nomem`: the masking must not move across the locked accesses.
        unsafe {
            core::arch::asm!("mrs {}, daif", "msr daifset, #3", out(reg) saved, options(nostack))
        };
        IrqGuard { saved }
    }

    /// No interrupts to mask in a hosted process.
    #[cfg(not(all(
        target_os = "none",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    pub(crate) fn new() -> IrqGuard {
        IrqGuard { saved: 0 }
    }
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        #[cfg(all(target_os = "none", target_arch = "x86_64"))]
        if self.saved & (1 << 9) != 0 {
            // SAFETY: interrupts were enabled when the guard was made (RFLAGS.IF set), so
            // enabling them again restores the previous state.
            unsafe { core::arch::asm!("sti", options(nostack)) };
        }
        #[cfg(all(target_os = "none", target_arch = "aarch64"))]
        // SAFETY: writes back the DAIF value read when the guard was made.
        unsafe {
            core::arch::asm!("msr daif, {}", in(reg) self.saved, options(nostack))
        };
    }
}
