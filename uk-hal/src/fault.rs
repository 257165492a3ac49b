//! Memory faults that the code above the board may handle: the way to `SIGSEGV`.
//!
//! A board reports a CPU exception and ends the run, unless the exception is a memory
//! fault (x86 `#PF`, Arm data or instruction abort from a translation or permission fault)
//! that the faulting thread's own code could recover from. For those, a board that supports
//! it first offers the fault to the hook installed here ([`set_hook`]): a process layer
//! runs the program's `SIGSEGV` handler and answers [`FaultOutcome::Resume`], and the board
//! returns to the faulting code with the registers the hook left (the faulting instruction
//! again, unless the handler moved the program counter); [`FaultOutcome::Unhandled`] (or no
//! hook) and the board reports the fault as before.
//!
//! # What a board promises when it calls [`offer`]
//!
//! - The fault was taken in thread context: on the thread's own stack, not while a fault
//!   is being reported, not a fault the board handles itself (a retried translation
//!   fault, say), and with interrupts unmasked in the faulting code. Interrupt handlers
//!   and critical sections run with interrupts masked, so a fault there (a kernel bug) is
//!   never offered.
//! - The hook runs on the faulting thread's stack, below everything the faulting code had
//!   there, with interrupts as the faulting code had them (unmasked if they were), and the
//!   board holds no lock and keeps no per-CPU state across the call. So the hook may block,
//!   switch threads, take interrupts, fault again (and be offered that fault), or never
//!   return (a handler that `siglongjmp`s away).
//! - The [`InterruptedRegisters`] name the faulting code's general registers, program
//!   counter and stack pointer as [`crate::irq::Interrupts::interrupted_registers`] does for
//!   an interrupt; what the hook writes to a writable one is what the code resumes with.
//!
//! Boards say in their documentation which faults they offer. A board that never calls
//! [`offer`] keeps every fault fatal, which is also what happens while no hook is set.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::irq::InterruptedRegisters;

/// The kind of access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAccess {
    /// A load.
    Read,
    /// A store (an atomic read-modify-write counts as a store).
    Write,
    /// An instruction fetch.
    Execute,
}

/// A memory fault a board offers to the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryFault {
    /// The address the access faulted at (x86 `CR2`, Arm `FAR_EL1`).
    pub addr: usize,
    /// What the access was.
    pub access: FaultAccess,
}

/// What the board does after the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Return to the faulting code with the registers as the hook left them.
    Resume,
    /// Report the fault as the board reports any CPU exception (the run ends, or the
    /// in-image test fails).
    Unhandled,
}

/// A fault hook: gets the fault and the faulting code's registers, valid during the call.
pub type FaultHook = fn(&MemoryFault, &InterruptedRegisters) -> FaultOutcome;

/// The hook as an address (0: none).
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs `hook` for every later fault (`None` removes it); returns the one it replaces.
pub fn set_hook(hook: Option<FaultHook>) -> Option<FaultHook> {
    let previous = HOOK.swap(hook.map_or(0, |h| h as usize), Ordering::AcqRel);
    from_address(previous)
}

/// The hook installed now.
pub fn hook() -> Option<FaultHook> {
    from_address(HOOK.load(Ordering::Acquire))
}

fn from_address(address: usize) -> Option<FaultHook> {
    // SAFETY: a non-zero value in `HOOK` was stored by `set_hook` from a `FaultHook`.
    (address != 0).then(|| unsafe { core::mem::transmute::<usize, FaultHook>(address) })
}

/// For boards: offers `fault` to the hook, on the promises of the [module
/// documentation](self); [`FaultOutcome::Unhandled`] when none is installed.
pub fn offer(fault: &MemoryFault, registers: &InterruptedRegisters) -> FaultOutcome {
    hook().map_or(FaultOutcome::Unhandled, |hook| hook(fault, registers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{GENERAL_REGISTERS, RegisterSlot};

    static LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = [RegisterSlot::Absent; GENERAL_REGISTERS];

    fn resume_on_writes(fault: &MemoryFault, _: &InterruptedRegisters) -> FaultOutcome {
        if fault.access == FaultAccess::Write {
            FaultOutcome::Resume
        } else {
            FaultOutcome::Unhandled
        }
    }

    /// Without a hook a fault is unhandled; with one, the hook decides; `set_hook` hands the
    /// previous hook back, and removing it makes faults unhandled again.
    #[test]
    fn offer_goes_to_the_installed_hook() {
        let mut frame = [0usize; 1];
        // SAFETY: the layout names no word, so nothing in the frame is ever read.
        let registers = unsafe {
            InterruptedRegisters::new(core::ptr::NonNull::from(&mut frame).cast(), &LAYOUT)
        };
        let write = MemoryFault {
            addr: 0x1000,
            access: FaultAccess::Write,
        };
        let read = MemoryFault {
            addr: 0x1000,
            access: FaultAccess::Read,
        };
        assert!(set_hook(None).is_none());
        assert_eq!(offer(&write, &registers), FaultOutcome::Unhandled);
        assert!(set_hook(Some(resume_on_writes)).is_none());
        assert!(hook().is_some());
        assert_eq!(offer(&write, &registers), FaultOutcome::Resume);
        assert_eq!(offer(&read, &registers), FaultOutcome::Unhandled);
        let previous = set_hook(None).expect("the hook set above");
        assert_eq!(previous(&write, &registers), FaultOutcome::Resume);
        assert_eq!(offer(&write, &registers), FaultOutcome::Unhandled);
    }
}
