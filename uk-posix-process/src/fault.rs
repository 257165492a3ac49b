//! Memory faults become `SIGSEGV`, delivered at the fault.
//!
//! A board that offers memory faults ([`uk_hal::fault`]) calls [`memory_fault`], which
//! [`crate::install`] sets as the hook. For a thread running application code
//! ([`crate::interrupt::IN_APPLICATION`]: C code, or a handler the layer runs) whose
//! `SIGSEGV` is neither blocked nor ignored nor left to its default, the layer runs the
//! program's handler right there, on top of the faulting code, as Linux does on its way
//! back from the fault: `si_addr` is the faulting address, `si_code` is [`SEGV_ACCERR`]
//! when memory is mapped there without the right for the access (a `PROT_NONE` or
//! `PROT_READ` mapping, a guard page) and [`SEGV_MAPERR`] otherwise, and a `SA_SIGINFO`
//! handler's context reports the faulting code's registers. When the handler returns, the
//! faulting code resumes with the registers the handler left in its context: the faulting
//! instruction runs again (after the handler gave the page the rights it lacked, say), or
//! the code goes where the handler moved the program counter. A handler that
//! `siglongjmp`s away leaves the fault behind for good, which the boards allow.
//!
//! Everything else stays fatal, as Linux's `force_sig_fault` makes it: a blocked, ignored
//! or default `SIGSEGV` (the board reports the fault and the run ends), a fault inside a
//! system call or the layer's own code (a kernel bug; a bad pointer handed to a system
//! call is `EFAULT` before anything touches it), and a fault in a thread of no process. A
//! fault inside the `SIGSEGV` handler itself is fatal too unless the handler was installed
//! with `SA_NODEFER` (the signal is blocked while it runs).
//!
//! The handler runs with the faulting code's FPU/SIMD registers kept, as at a timer
//! interrupt ([`crate::interrupt`]), on the faulting thread's stack below the fault (or its
//! alternate stack with `SA_ONSTACK`). A stack overflow into a guard page is fatal all the
//! same on x86-pc (a double fault, which has no thread stack to run a handler on).

use uk_hal::fault::{FaultOutcome, MemoryFault};
use uk_hal::irq::InterruptedRegisters;

use crate::interrupt::{self, IN_APPLICATION, IN_KERNEL};
use crate::signal::{SEGV_ACCERR, SEGV_MAPERR, SIGSEGV, SigInfo};
use crate::system::System;

/// The image's fault hook ([`uk_hal::fault::set_hook`]): [`System::memory_fault`] of the
/// layer.
pub(crate) fn memory_fault(fault: &MemoryFault, registers: &InterruptedRegisters) -> FaultOutcome {
    crate::system().memory_fault(fault, registers)
}

impl System {
    /// Runs the calling thread's `SIGSEGV` handler for `fault` (see the [module
    /// documentation](self)) and answers [`FaultOutcome::Resume`]; or
    /// [`FaultOutcome::Unhandled`], with nothing run, where the fault stays fatal.
    pub fn memory_fault(
        &self,
        fault: &MemoryFault,
        registers: &InterruptedRegisters,
    ) -> FaultOutcome {
        if interrupt::state() != Some(IN_APPLICATION) {
            return FaultOutcome::Unhandled;
        }
        let old = interrupt::switch_state(IN_KERNEL);
        let outcome = match self.take_fault_action(SIGSEGV) {
            Some(action) => {
                let info = SigInfo::fault(SIGSEGV, self.segv_code(fault.addr), fault.addr);
                let mut ran = false;
                interrupt::keeping_extended_state(|| {
                    ran = self.handle(SIGSEGV, &action, info, Some(*registers));
                });
                if ran {
                    FaultOutcome::Resume
                } else {
                    FaultOutcome::Unhandled
                }
            }
            None => FaultOutcome::Unhandled,
        };
        self.back_to_application_code(old);
        outcome
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
