//! CPU faults become signals, delivered at the fault: `SIGSEGV`, `SIGBUS`, `SIGILL`,
//! `SIGFPE` and `SIGTRAP`.
//!
//! A board that offers faults ([`uk_hal::fault`]) calls [`cpu_fault`], which
//! [`crate::install`] sets as the hook. Each kind of fault is the signal Linux sends for it
//! ([`signal_of`]):
//!
//! | fault | signal | `si_code` | `si_addr` |
//! |---|---|---|---|
//! | memory (page rights, nothing mapped) | `SIGSEGV` | [`SEGV_ACCERR`] in a mapping or a protected page, [`SEGV_MAPERR`] elsewhere | the address accessed |
//! | x86 general protection (`#GP`) | `SIGSEGV` | [`SI_KERNEL`] | 0 |
//! | misaligned (Arm alignment fault) | `SIGBUS` | [`BUS_ADRALN`] | the address accessed |
//! | undefined instruction (x86 `#UD`, Arm `UDF`) | `SIGILL` | [`ILL_ILLOPC`] | the instruction |
//! | integer division (x86 `#DE`) | `SIGFPE` | [`FPE_INTDIV`] | the instruction |
//! | breakpoint (x86 `int3`) | `SIGTRAP` | [`SI_KERNEL`] | 0 |
//! | breakpoint (Arm `BRK`) | `SIGTRAP` | [`TRAP_BRKPT`] | the instruction |
//!
//! For a thread running application code ([`crate::interrupt::IN_APPLICATION`]: C code,
//! or a handler the layer runs) whose signal is caught and not blocked, the layer runs the
//! program's handler right there, on top of the faulting code, as Linux does on its way
//! back from the fault; a `SA_SIGINFO` handler's context reports the faulting code's
//! registers. When the handler returns, the faulting code resumes with the registers the
//! handler left in its context: the faulting instruction runs again (after the handler
//! gave the page the rights it lacked, say), or the code goes where the handler moved the
//! program counter (past an undefined instruction, say). A handler that `siglongjmp`s away
//! leaves the fault behind for good, which the boards allow.
//!
//! Where the signal is blocked, ignored or left to its default, the fault ends the
//! process as Linux's `force_sig_fault` does: the signal's default action, so the parent's
//! `wait` sees the process killed by that signal, and the run ends with status 128 + the
//! signal when it was the last process. A line on the log names the process, the thread,
//! the fault and the program counter and stack pointer, for the post-mortem the board's
//! report used to give. A fault inside the signal's own handler ends the process the same
//! way unless the handler was installed with `SA_NODEFER` (the signal is blocked while it
//! runs).
//!
//! Faults the layer leaves to the board (which reports them and ends the run): a fault
//! inside a system call or the layer's own code (a kernel bug; a bad pointer handed to a
//! system call is `EFAULT` before anything touches it), a fault in a thread of no
//! process, and kinds of fault this version does not know.
//!
//! The handler runs with the faulting code's FPU/SIMD registers kept, as at a timer
//! interrupt ([`crate::interrupt`]), on the faulting thread's stack below the fault (or its
//! alternate stack with `SA_ONSTACK`). A stack overflow into a guard page is fatal all the
//! same on x86-pc (a double fault, which has no thread stack to run a handler on).

use uk_hal::fault::{Fault, FaultAccess, FaultOutcome, MemoryFault};
use uk_hal::irq::{InterruptedRegisters, PC_REGISTER, SP_REGISTER};

use crate::interrupt::{self, IN_APPLICATION, IN_KERNEL};
use crate::signal::{
    BUS_ADRALN, FPE_INTDIV, ILL_ILLOPC, SEGV_ACCERR, SEGV_MAPERR, SI_KERNEL, SIGBUS, SIGFPE,
    SIGILL, SIGSEGV, SIGTRAP, SigInfo, TRAP_BRKPT, saved_register,
};
use crate::system::System;

/// The image's fault hook ([`uk_hal::fault::set_hook`]): [`System::cpu_fault`] of the
/// layer.
pub(crate) fn cpu_fault(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
    crate::system().cpu_fault(fault, registers)
}

/// What the signal for `fault` carries, as Linux sends it: signal number, `si_code` and
/// `si_addr`; `None` for a kind this version does not know. A memory fault's `si_code`
/// depends on the address space, which [`System::cpu_fault`] asks; here it is
/// [`SEGV_MAPERR`].
pub fn signal_of(fault: &Fault) -> Option<(i32, i32, usize)> {
    Some(match *fault {
        Fault::Memory(MemoryFault { addr, .. }) => (SIGSEGV, SEGV_MAPERR, addr),
        Fault::GeneralProtection { .. } => (SIGSEGV, SI_KERNEL, 0),
        Fault::Misaligned { addr, .. } => (SIGBUS, BUS_ADRALN, addr),
        Fault::IllegalInstruction { addr } => (SIGILL, ILL_ILLOPC, addr),
        Fault::DivideError { addr } => (SIGFPE, FPE_INTDIV, addr),
        // Linux's x86 `int3` is a plain `SIGTRAP` from the kernel; arm64's `BRK` says
        // which breakpoint.
        Fault::Breakpoint { .. } if cfg!(target_arch = "x86_64") => (SIGTRAP, SI_KERNEL, 0),
        Fault::Breakpoint { addr } => (SIGTRAP, TRAP_BRKPT, addr),
        _ => return None,
    })
}

impl System {
    /// Runs the calling thread's handler of the signal for `fault` (see the [module
    /// documentation](self)) and answers [`FaultOutcome::Resume`]; ends the process where
    /// the signal is blocked, ignored or left to its default (and does not return); or
    /// answers [`FaultOutcome::Unhandled`], with nothing run, where the board reports it.
    pub fn cpu_fault(&self, fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
        if interrupt::state() != Some(IN_APPLICATION) {
            return FaultOutcome::Unhandled;
        }
        let Some((sig, code, addr)) = signal_of(fault) else {
            return FaultOutcome::Unhandled;
        };
        let code = match fault {
            Fault::Memory(_) => self.segv_code(addr),
            _ => code,
        };
        if self.gettid().is_err() {
            // A thread of no process.
            return FaultOutcome::Unhandled;
        }
        let old = interrupt::switch_state(IN_KERNEL);
        let Some(action) = self.take_fault_action(sig) else {
            self.log_fatal_fault(sig, code, fault, registers);
            self.killed_by(sig);
        };
        let info = SigInfo::fault(sig, code, addr);
        let mut ran = false;
        interrupt::keeping_extended_state(|| {
            ran = self.handle(sig, &action, info, Some(*registers));
        });
        self.back_to_application_code(old);
        if ran {
            FaultOutcome::Resume
        } else {
            FaultOutcome::Unhandled
        }
    }

    /// The log line a fault that ends its process leaves: who, what, where.
    fn log_fatal_fault(
        &self,
        sig: i32,
        code: i32,
        fault: &Fault,
        registers: &InterruptedRegisters,
    ) {
        let pc = saved_register(registers, PC_REGISTER);
        let sp = saved_register(registers, SP_REGISTER);
        log::warn!(
            "process {} thread {} killed by {} (si_code {code}): {}, pc {:#x}, sp {:#x}",
            self.getpid().unwrap_or(0),
            self.gettid().unwrap_or(0),
            crate::signal::name(sig),
            Described(fault),
            pc.unwrap_or(0),
            sp.unwrap_or(0),
        );
    }
    /// `si_code` for a fault at `addr`: [`SEGV_ACCERR`] inside a mapping or a page whose
    /// rights were taken away, [`SEGV_MAPERR`] elsewhere.
    pub(crate) fn segv_code(&self, addr: usize) -> i32 {
        let restricted =
            uk_syscall::user::rights_of(addr) != uk_syscall::user::PageRights::ReadWrite;
        if restricted || self.is_mapped(addr) {
            SEGV_ACCERR
        } else {
            SEGV_MAPERR
        }
    }
}

/// A fault as the log names it: "read at 0x10", "undefined instruction".
struct Described<'a>(&'a Fault);

impl core::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self.0 {
            Fault::Memory(MemoryFault { addr, access }) | Fault::Misaligned { addr, access } => {
                let access = match access {
                    FaultAccess::Read => "read",
                    FaultAccess::Write => "write",
                    FaultAccess::Execute => "execute",
                };
                let misaligned = if matches!(self.0, Fault::Misaligned { .. }) {
                    "misaligned "
                } else {
                    ""
                };
                write!(f, "{misaligned}{access} at {addr:#x}")
            }
            Fault::IllegalInstruction { .. } => f.write_str("undefined instruction"),
            Fault::DivideError { .. } => f.write_str("integer division error"),
            Fault::GeneralProtection { .. } => f.write_str("general protection fault"),
            Fault::Breakpoint { .. } => f.write_str("breakpoint"),
            _ => f.write_str("fault"),
        }
    }
}
