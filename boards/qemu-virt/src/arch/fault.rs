//! Faults offered to the hook of [`uk_hal::fault`], off the exception stack.
//!
//! The synchronous vector saves a [`SavedState`] on the exception stack (`SP_EL1`, per
//! CPU) and calls [`super::exception()`]. For a fault the board offers
//! ([`exception::offered_fault`]: a memory fault, an alignment fault, an undefined
//! instruction or a `brk`; taken through the `SP_EL0` vector, not retried, not nested in
//! a report, a hook set), the handler copies the whole state below the faulting
//! thread's stack pointer ([`divert`]) and rewrites its own frame so that the vectors'
//! `eret` enters the trampoline (`asm`) at EL1t with `SP_EL0` = `x0` = the copy and the
//! faulting code's interrupt masks. The trampoline calls [`offer_from_copy`], which offers
//! the fault with [`InterruptedRegisters`] over the copy ([`COPY_LAYOUT`]), then executes
//! `brk` with [`BRK_FAULT_RESUME`] or [`BRK_FAULT_REPORT`]; the synchronous vector takes
//! that `brk` on the exception stack again and [`returned_from_hook`] loads the copy into
//! its frame, to return to the faulting code with the copy's registers, or to report the
//! original fault. Nothing of the board's is held across the hook.

use core::ptr::NonNull;

use uk_hal::fault::{self, FaultOutcome};
use uk_hal::irq::{
    GENERAL_REGISTERS, InterruptedRegisters, PC_REGISTER, RegisterSlot, SP_REGISTER,
};

use super::{asm, protect};
use crate::exception::{
    self, BRK_FAULT_REPORT, BRK_FAULT_RESUME, ExceptionFrame, SAVED_STATE_SIZE, SPSR_DAIF,
    SPSR_EL1T, SPSR_MODE, SavedState,
};

const _: () = assert!(GENERAL_REGISTERS == 34 && SP_REGISTER == 31 && PC_REGISTER == 32);

/// Where the copy's [`ExceptionFrame`] keeps each register, in Linux's order
/// ([`uk_hal::irq::GENERAL_REGISTERS`]): word `n` is register `n`, `x0`-`x30` (0-30), `sp`
/// (31), `pc` (32, `ELR_EL1`) writable, `pstate` (33, `SPSR_EL1`) reported only.
static COPY_LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = {
    let mut layout = [RegisterSlot::Word(0); GENERAL_REGISTERS];
    let mut register = 0;
    while register < GENERAL_REGISTERS {
        layout[register] = RegisterSlot::Word(register as u16);
        register += 1;
    }
    layout[GENERAL_REGISTERS - 1] = RegisterSlot::ReadOnlyWord(GENERAL_REGISTERS as u16 - 1);
    layout
};
const _: () = assert!(
    core::mem::offset_of!(ExceptionFrame, sp) == SP_REGISTER * 8
        && core::mem::offset_of!(ExceptionFrame, elr) == PC_REGISTER * 8
        && core::mem::offset_of!(ExceptionFrame, spsr) == 33 * 8
);

/// For a synchronous exception through the `SP_EL0` vector (vector 0) that is neither
/// retried nor nested in a report: if it is a fault the board offers and a hook is set,
/// copies `state` below the faulting code's stack pointer (16-byte aligned) and makes it
/// the trampoline's entry (`x0` and `SP` the copy, `ELR` the trampoline, `SPSR` EL1t with
/// the faulting code's `DAIF`), and returns `true`: the vectors' `eret` goes there. `false`
/// (nothing changed) otherwise, also when the copy's memory is not writable (a stack
/// overflow): the fault is then reported as before.
pub(super) fn divert(state: &mut SavedState) -> bool {
    if exception::offered_fault(&state.frame).is_none() || fault::hook().is_none() {
        return false;
    }
    let Some(copy) = state
        .frame
        .sp
        .checked_sub(SAVED_STATE_SIZE as u64)
        .map(|copy| copy & !15)
    else {
        return false;
    };
    if !protect::writable(copy) || !protect::writable(copy + SAVED_STATE_SIZE as u64 - 1) {
        return false;
    }
    // SAFETY: the copy lies right below the faulting thread's stack pointer, where nothing
    // of that thread lives (AAPCS64 has no red zone), in memory that translates for
    // writing (checked just above; a split of its block on another CPU meanwhile is retried
    // like any) and is 16-byte aligned; it does not overlap `state`, on the exception stack.
    unsafe { core::ptr::copy_nonoverlapping(state, copy as *mut SavedState, 1) };
    let frame = &mut state.frame;
    frame.x[0] = copy;
    frame.sp = copy;
    frame.elr = asm::__uk_fault_trampoline as *const () as u64;
    frame.spsr = (frame.spsr & SPSR_DAIF) | SPSR_EL1T;
    true
}

/// What the trampoline's `brk` said.
pub(super) enum FromHook {
    /// [`BRK_FAULT_RESUME`]: `state` holds the copy, to return to.
    Resume,
    /// [`BRK_FAULT_REPORT`]: `state` holds the copy, the original fault, to report.
    Report,
}

/// For a synchronous exception through the `SP_EL0` vector: if it is the trampoline's
/// `brk` (the immediate and the very instruction, with `x0` = `SP` = the copy), loads the
/// copy into `state` and says which; `None` (nothing changed) for anything else.
pub(super) fn returned_from_hook(state: &mut SavedState) -> Option<FromHook> {
    let frame = &state.frame;
    let (answer, brk) = match exception::brk_immediate(frame.esr)? {
        BRK_FAULT_RESUME => (FromHook::Resume, asm::__uk_fault_resume as *const () as u64),
        BRK_FAULT_REPORT => (FromHook::Report, asm::__uk_fault_report as *const () as u64),
        _ => return None,
    };
    let copy = frame.x[0];
    if frame.elr != brk || frame.sp != copy || copy % 16 != 0 {
        return None;
    }
    // SAFETY: the trampoline's `brk` runs with `x0` = `SP` = the copy `divert` wrote (the
    // trampoline keeps both so): 16-byte aligned on the faulting thread's stack, above
    // everything the trampoline and the hook pushed, and no longer used by them.
    unsafe { core::ptr::copy_nonoverlapping(copy as *const SavedState, state, 1) };
    // The hook could not change PSTATE (reported only); a thread's code runs at EL1t.
    state.frame.spsr = (state.frame.spsr & !SPSR_MODE) | SPSR_EL1T;
    Some(answer)
}

/// The trampoline's Rust half, on the faulting thread's stack right below the copy, at
/// EL1t with interrupts as the faulting code had them: offers the fault to the hook with
/// the copy's registers; 1 when it answered `Resume` (the copy holds what the faulting code
/// resumes with), 0 for `Unhandled` (the copy's general registers put back as the fault
/// left them, for the report).
pub(super) extern "C" fn offer_from_copy(copy: *mut SavedState) -> u64 {
    // SAFETY: the trampoline passes the copy `divert` wrote: aligned, on this thread's
    // stack above everything this function pushes, and nothing else refers to it.
    let frame = unsafe { &raw mut (*copy).frame };
    // SAFETY: as above.
    let original = unsafe { (*frame).clone() };
    let Some(fault) = exception::offered_fault(&original) else {
        return 0;
    };
    // SAFETY: `COPY_LAYOUT` names words 0 to 33 of the frame (36 words), which stays
    // alive, aligned and writable until the trampoline's `brk`, after the hook returned.
    let registers = unsafe {
        InterruptedRegisters::new(
            NonNull::new(frame.cast::<usize>()).expect("the copy is on a stack"),
            &COPY_LAYOUT,
        )
    };
    match fault::offer(&fault, &registers) {
        FaultOutcome::Resume => 1,
        FaultOutcome::Unhandled => {
            // SAFETY: as above; the hook is done with the registers.
            unsafe { frame.write(original) };
            0
        }
    }
}
