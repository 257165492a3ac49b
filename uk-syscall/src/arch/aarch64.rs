//! aarch64: the frame `svc #0` saves, the entry the board's vector branches to, the return
//! path that [`resume_frame`] shares.
//!
//! # Entry
//!
//! The qemu-virt board runs kernel code at EL1 on `SP_EL0`; `svc #0` there is a synchronous
//! exception to the "current EL with SP_EL0" vector, on `SP_EL1` (code that runs in exception
//! context, on `SP_EL1`, traps to the "current EL with SP_ELx" vector instead; both are
//! handled). When the syndrome says SVC (`ESR_EL1.EC == 0x15`) and the image links this
//! crate, the vector lowers `SP_EL1` by 144 bytes, stores `x0` at the new `SP_EL1` (leaving
//! the 128 bytes above untouched: the red zone of a caller on `SP_EL1`) and branches to
//! `uk_syscall_svc_entry` (a weak reference on the board's side) with the entry's address in
//! `x0`; every other register, `ELR_EL1` and `SPSR_EL1` are as the exception left them. The
//! entry:
//!
//! 1. takes `x0` back and pops `SP_EL1`, so the exception stack is as it was;
//! 2. selects the caller's stack (`SP_EL0`, or `SP_EL1` for a caller in exception context,
//!    from `SPSR_EL1.M[0]`) and places a [`TrapFrame`] below 128 bytes it leaves alone, so a
//!    handler that blocks keeps its frame on its own thread's stack;
//! 3. saves `x0`–`x30`, the caller's `sp`, `ELR_EL1`, `SPSR_EL1`, `q0`–`q31`, `FPSR`, `FPCR`;
//! 4. sets `DAIF` as the caller had it (so the handler runs like a direct call) and calls
//!    the dispatcher, which writes the result into the frame's `x0`;
//! 5. masks `DAIF`, restores everything (`ELR_EL1`/`SPSR_EL1` too, which an interrupt during
//!    the handler may have changed) and returns with `eret` after the `svc`.
//!
//! SVE state beyond the low 128 bits of each vector is not saved: as on Linux, a syscall
//! may discard it (and the board leaves SVE trapped).

use core::arch::global_asm;
use core::mem::offset_of;

use crate::Args;

/// The registers a trapped `svc #0` saved, and what the caller will get back.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct TrapFrame {
    /// `x0`–`x30`; `x0`–`x5` are the arguments, `x8` the number, `x0` the result.
    pub x: [usize; 31],
    /// The caller's stack pointer (`SP_EL0`).
    pub sp: usize,
    /// The return address (`ELR_EL1`: the instruction after the `svc`).
    pub elr: usize,
    /// The caller's `PSTATE` (`SPSR_EL1`): flags, interrupt masks, mode.
    pub spsr: usize,
    /// `q0`–`q31`.
    q: [u128; 32],
    /// `FPSR`.
    fpsr: usize,
    /// `FPCR`.
    fpcr: usize,
}

const _: () = {
    assert!(offset_of!(TrapFrame, x) == 0);
    assert!(offset_of!(TrapFrame, q) == 272);
    assert!(core::mem::size_of::<TrapFrame>() == 800);
};

/// Bytes below the caller's stack pointer the entry does not touch.
const RED_ZONE: usize = 128;

impl TrapFrame {
    /// Byte offset of the argument registers, for [`crate::trap_frame`].
    pub(crate) const ARGS_OFFSET: usize = offset_of!(TrapFrame, x);

    /// The syscall number (`x8`).
    pub fn number(&self) -> usize {
        self.x[8]
    }

    /// The six arguments (`x0`–`x5`).
    pub fn args(&self) -> &Args {
        // SAFETY: `x` starts with six `usize`s, laid out exactly as `[usize; 6]`.
        unsafe { &*Self::args_ptr(self) }
    }

    /// The value the caller finds in `x0` on return.
    pub fn result(&self) -> usize {
        self.x[0]
    }

    /// Sets the value the caller finds in `x0` on return.
    pub fn set_result(&mut self, value: usize) {
        self.x[0] = value;
    }

    /// The caller's stack pointer.
    pub fn sp(&self) -> usize {
        self.sp
    }

    /// Sets the stack pointer the call returns with (a new thread's stack).
    pub fn set_sp(&mut self, sp: usize) {
        self.sp = sp;
    }

    /// Where the call returns to (the instruction after `svc`).
    pub fn pc(&self) -> usize {
        self.elr
    }

    /// Sets where the call returns to.
    pub fn set_pc(&mut self, pc: usize) {
        self.elr = pc;
    }
}

impl core::fmt::Debug for TrapFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrapFrame")
            .field("x", &format_args!("{:#x?}", self.x))
            .field("sp", &format_args!("{:#x}", self.sp))
            .field("elr", &format_args!("{:#x}", self.elr))
            .field("spsr", &format_args!("{:#x}", self.spsr))
            .finish_non_exhaustive()
    }
}

global_asm!(
    r#"
    .pushsection .text.uk_syscall, "ax"
    .balign 16
    .global uk_syscall_svc_entry
    .type uk_syscall_svc_entry, %function
uk_syscall_svc_entry:
    hint    #36
    mrs     x0, spsr_el1
    tbnz    x0, #0, 1f
    /* The caller ran on SP_EL0 (EL1t, kernel code): its stack is SP_EL0. */
    ldr     x0, [sp], #144
    msr     spsel, #0
    b       2f
1:
    /* The caller ran on SP_EL1 (EL1h: code running in exception context): its stack is
       SP_EL1 itself, once the 16 bytes are popped. */
    ldr     x0, [sp], #144
2:
    sub     sp, sp, #{below}
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    add     x0, sp, #{below}
    stp     x30, x0, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #{elr}]
    add     x3, sp, #{q}
    stp     q0, q1, [x3, #0]
    stp     q2, q3, [x3, #32]
    stp     q4, q5, [x3, #64]
    stp     q6, q7, [x3, #96]
    stp     q8, q9, [x3, #128]
    stp     q10, q11, [x3, #160]
    stp     q12, q13, [x3, #192]
    stp     q14, q15, [x3, #224]
    stp     q16, q17, [x3, #256]
    stp     q18, q19, [x3, #288]
    stp     q20, q21, [x3, #320]
    stp     q22, q23, [x3, #352]
    stp     q24, q25, [x3, #384]
    stp     q26, q27, [x3, #416]
    stp     q28, q29, [x3, #448]
    stp     q30, q31, [x3, #480]
    mrs     x4, fpsr
    mrs     x5, fpcr
    add     x6, sp, #{fpsr}
    stp     x4, x5, [x6]
    and     x2, x2, #0x3c0
    msr     daif, x2
    mov     x0, sp
    mov     x29, xzr
    bl      {handle}
    mov     x0, sp
    b       uk_syscall_svc_restore
    .size uk_syscall_svc_entry, . - uk_syscall_svc_entry

    /* x0 = a 16-byte aligned frame; at EL1 with SP_EL0 selected. */
    .balign 16
    .global uk_syscall_svc_restore
    .type uk_syscall_svc_restore, %function
uk_syscall_svc_restore:
    msr     daifset, #0xf
    add     x3, x0, #{q}
    ldp     q0, q1, [x3, #0]
    ldp     q2, q3, [x3, #32]
    ldp     q4, q5, [x3, #64]
    ldp     q6, q7, [x3, #96]
    ldp     q8, q9, [x3, #128]
    ldp     q10, q11, [x3, #160]
    ldp     q12, q13, [x3, #192]
    ldp     q14, q15, [x3, #224]
    ldp     q16, q17, [x3, #256]
    ldp     q18, q19, [x3, #288]
    ldp     q20, q21, [x3, #320]
    ldp     q22, q23, [x3, #352]
    ldp     q24, q25, [x3, #384]
    ldp     q26, q27, [x3, #416]
    ldp     q28, q29, [x3, #448]
    ldp     q30, q31, [x3, #480]
    add     x6, x0, #{fpsr}
    ldp     x4, x5, [x6]
    msr     fpsr, x4
    msr     fpcr, x5
    ldp     x1, x2, [x0, #{elr}]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    /* The stack pointer the frame returns with belongs to the mode it returns to (SPSR.M[0]:
       SP_EL1 for EL1h, SP_EL0 for EL1t); the frame is addressed through x0 meanwhile. */
    tbnz    x2, #0, 5f
    msr     spsel, #0
    b       6f
5:
    msr     spsel, #1
6:
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldp     x30, x1, [x0, #240]
    mov     sp, x1
    ldp     x0, x1, [x0, #0]
    eret
    .size uk_syscall_svc_restore, . - uk_syscall_svc_restore
    .popsection
"#,
    below = const RED_ZONE + core::mem::size_of::<TrapFrame>(),
    elr = const offset_of!(TrapFrame, elr),
    q = const offset_of!(TrapFrame, q),
    fpsr = const offset_of!(TrapFrame, fpsr),
    handle = sym crate::trap::handle,
);

unsafe extern "C" {
    /// The entry the board's vector branches to (assembly above).
    pub(crate) fn uk_syscall_svc_entry();
    /// Restores the frame `x0` points to and returns into it (assembly above).
    fn uk_syscall_svc_restore();
}

/// Keeps the entry in the link: the board refers to it only weakly, which does not pull an
/// object file out of an archive, while this `#[used]` static does.
#[used]
static KEEP_ENTRY: unsafe extern "C" fn() = uk_syscall_svc_entry;

/// Starts executing `frame` as if its trapped call returned now: every register and the
/// FP/SIMD state from the frame, `PSTATE` from its `spsr` (interrupt masks included), `sp` =
/// [`TrapFrame::sp`], and an `eret` to [`TrapFrame::pc`].
///
/// The frame is copied onto the current stack first, so it may live anywhere (a `Box`, the
/// parent's stack). Call it at EL1 on the stack the new thread owns; the stack pointer of the
/// mode the frame's `spsr` names (EL1t: `SP_EL0`, EL1h: `SP_EL1`) gets [`TrapFrame::sp`].
/// Nothing of the current call chain survives.
///
/// # Safety
///
/// The frame must come from a trapped call of this image (or be a copy of one with fields
/// changed): its `elr` must be code that expects to be returned into with `sp` and the other
/// registers as given, its `spsr` an EL1 state (EL1t or EL1h), and `sp` a valid stack for
/// that code.
pub unsafe fn resume_frame(frame: &TrapFrame) -> ! {
    let copy = *frame;
    // SAFETY: `copy` is a 16-byte aligned frame on this stack; the restore path masks
    // interrupts before it reloads `ELR_EL1`/`SPSR_EL1` and leaves with `eret`; the caller
    // vouches for the frame's contents.
    unsafe {
        core::arch::asm!(
            "b {restore}",
            restore = sym uk_syscall_svc_restore,
            in("x0") &copy,
            options(noreturn)
        )
    }
}

/// Why [`install`] did nothing. On aarch64 nothing can go wrong: the board's vector finds
/// the entry through a (weak) symbol, so there is nothing to set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {}

/// Nothing to do on aarch64: the board's synchronous vector branches to the entry whenever
/// the image links this crate. Present so that code calling it builds on both
/// architectures.
pub fn install() -> Result<(), InstallError> {
    Ok(())
}

/// Executes `svc #0` with `number` (in `x8`) and `args` (`x0`–`x5`) and returns `x0`.
///
/// In an image this reaches this crate's entry and the dispatch table; in a Linux process
/// it is a real Linux syscall.
///
/// # Safety
///
/// The call does whatever its handler does with the arguments (pointers included), as
/// libc's `syscall()` does.
#[inline]
pub unsafe fn trap(number: usize, args: &Args) -> isize {
    let result: isize;
    // SAFETY: the entry preserves every register but x0 (the result) and the FP/SIMD
    // state; the caller vouches for what the handler does with the arguments.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inlateout("x0") args[0] => result,
            in("x1") args[1], in("x2") args[2], in("x3") args[3],
            in("x4") args[4], in("x5") args[5], in("x8") number,
            options(nostack)
        )
    };
    result
}
