//! CPU faults that the code above the board may handle: the way to `SIGSEGV`, `SIGBUS`,
//! `SIGILL`, `SIGFPE` and `SIGTRAP`.
//!
//! A board reports a CPU exception and ends the run, unless the exception is a fault that
//! the faulting thread's own code could recover from: a memory fault (x86 `#PF`, Arm data
//! or instruction abort from a translation or permission fault), a misaligned access the
//! CPU refuses, an undefined instruction, an integer division error, a general-protection
//! fault or a breakpoint instruction ([`Fault`]). For those, a board that supports it first
//! offers the fault to the hook installed here ([`set_hook`]): a process layer runs the
//! program's signal handler and answers [`FaultOutcome::Resume`], and the board returns to
//! the faulting code with the registers the hook left (the faulting instruction again,
//! unless the handler moved the program counter); [`FaultOutcome::Unhandled`] (or no hook)
//! and the board reports the fault as before. The hook may also end the faulting program
//! and never return.
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
//!   return (a handler that `siglongjmp`s away, a program that the fault ends).
//! - The [`InterruptedRegisters`] name the faulting code's general registers, program
//!   counter and stack pointer as [`crate::irq::Interrupts::interrupted_registers`] does for
//!   an interrupt; what the hook writes to a writable one is what the code resumes with.
//!   The program counter is where the CPU reports the fault: the faulting instruction for
//!   every kind except an x86 breakpoint (`int3` is a trap: the instruction after it).
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

/// A memory fault: an access the page tables refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryFault {
    /// The address the access faulted at (x86 `CR2`, Arm `FAR_EL1`).
    pub addr: usize,
    /// What the access was.
    pub access: FaultAccess,
}

/// A fault a board offers to the hook.
///
/// Each kind says which exceptions it stands for; the signal a POSIX layer makes of it is
/// Linux's for the same exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// An access the page tables refuse: x86 `#PF`, Arm data or instruction abort from a
    /// translation or permission fault (`SIGSEGV`).
    Memory(MemoryFault),
    /// An access the CPU refuses for its alignment: an Arm alignment fault (`SIGBUS`,
    /// `BUS_ADRALN`). `addr` is the address accessed.
    Misaligned {
        /// The address accessed (Arm `FAR_EL1`).
        addr: usize,
        /// What the access was.
        access: FaultAccess,
    },
    /// An instruction the CPU does not execute: x86 `#UD`, an Arm instruction with an
    /// unknown syndrome (`UDF` and undefined encodings; `SIGILL`, `ILL_ILLOPC`).
    IllegalInstruction {
        /// The instruction's address.
        addr: usize,
    },
    /// An integer division by zero or whose quotient does not fit: x86 `#DE` (`SIGFPE`,
    /// `FPE_INTDIV`). Arm's division does not fault.
    DivideError {
        /// The dividing instruction's address.
        addr: usize,
    },
    /// An x86 general-protection fault (`#GP`): a non-canonical address, a bad segment, a
    /// misaligned SSE operand (`SIGSEGV` with `SI_KERNEL` and no address, as on Linux).
    GeneralProtection {
        /// The faulting instruction's address.
        addr: usize,
    },
    /// A breakpoint instruction: x86 `int3`, Arm `BRK` with an immediate the board does not
    /// use itself (`SIGTRAP`).
    Breakpoint {
        /// The instruction's address (x86: of the `int3`, the program counter is past it).
        addr: usize,
    },
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
pub type FaultHook = fn(&Fault, &InterruptedRegisters) -> FaultOutcome;

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
pub fn offer(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
    hook().map_or(FaultOutcome::Unhandled, |hook| hook(fault, registers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::{GENERAL_REGISTERS, RegisterSlot};

    static LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = [RegisterSlot::Absent; GENERAL_REGISTERS];

    fn resume_on_writes(fault: &Fault, _: &InterruptedRegisters) -> FaultOutcome {
        if matches!(
            fault,
            Fault::Memory(MemoryFault {
                access: FaultAccess::Write,
                ..
            })
        ) {
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
        let write = Fault::Memory(MemoryFault {
            addr: 0x1000,
            access: FaultAccess::Write,
        });
        let read = Fault::Memory(MemoryFault {
            addr: 0x1000,
            access: FaultAccess::Read,
        });
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
