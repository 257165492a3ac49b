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
//! 1. selects the caller's stack (`SP_EL0`, or `SP_EL1` for a caller in exception context,
//!    from `SPSR_EL1.M[0]`) and places a [`TrapFrame`] below 128 bytes it leaves alone, so a
//!    handler that blocks keeps its frame on its own thread's stack;
//! 2. saves `x0`–`x30`, the caller's `sp`, `ELR_EL1`, `SPSR_EL1`, `q0`–`q31`, `FPSR`, `FPCR`
//!    there, popping `SP_EL1` on the way, so the exception stack is as it was;
//! 3. sets `DAIF` as the caller had it (so the handler runs like a direct call) and calls
//!    the dispatcher, which writes the result into the frame's `x0`;
//! 4. masks `DAIF`, restores everything (`ELR_EL1`/`SPSR_EL1` too, which an interrupt during
//!    the handler may have changed) and returns with `eret` after the `svc`.
//!
//! # Faults while `ELR_EL1` and `SPSR_EL1` are live
//!
//! A caller on `SP_EL0` is a thread, whose stack is heap memory. On qemu-virt another CPU may
//! be splitting the 2 MiB block holding it (page protection's break-before-make): a store to
//! or load from it then takes a translation fault, which the board retries once the split
//! is over, but that exception overwrites `ELR_EL1` and `SPSR_EL1`. So, for a caller on
//! `SP_EL0`, neither register is live while the caller's stack is touched:
//!
//! - the entry reads them *before* its first store there and parks them, with `x1`, next
//!   to the `x0` the vector stored, in the 144 bytes the vector reserved on `SP_EL1` (the
//!   exception stack, which no split ever breaks). `SP_EL1` stays lowered over the parked
//!   words until they are read back (a retried fault's handler pushes its frame below
//!   `SP_EL1`); meanwhile the entry keeps `SPSel` = 1 and addresses the frame through a
//!   register computed from `SP_EL0`. Only then does it pop `SP_EL1` and select `SP_EL0`.
//!   A fault in that window is taken through the "current EL with SP_ELx" vector.
//! - the return path loads the frame's `ELR`/`SPSR` and parks them, with the frame's `x0`
//!   and `x1`, 32 bytes below `SP_EL1`; it sets `SP_EL0` to the frame's `sp` with `msr`,
//!   loads the other registers from the frame, and only after its last load from the frame
//!   writes `ELR_EL1`/`SPSR_EL1` from the parked words, pops them (`SP_EL1` is as before)
//!   and `eret`s. [`resume_frame`] takes the same path.
//!
//! Interrupts are masked in both windows (by the exception entry; by the return path's first
//! instruction), so only such synchronous faults can happen there. A caller on `SP_EL1`
//! (EL1h, exception context) has its frame on the exception stack, which never faults: that
//! path reads the registers after its stores and writes them before its loads, as it always
//! did. A frame returning to EL1h must therefore lie on memory that no split breaks: the
//! entry's does; [`resume_frame`] copies the frame onto the current stack, so an EL1h frame
//! is resumed from exception context.
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
    assert!(offset_of!(TrapFrame, sp) == 248);
    assert!(offset_of!(TrapFrame, elr) == 256);
    assert!(offset_of!(TrapFrame, q) == 272);
    assert!(core::mem::size_of::<TrapFrame>() == 800);
};

/// Bytes below the caller's stack pointer the entry does not touch.
const RED_ZONE: usize = 128;

/// Bytes the board's vector lowers `SP_EL1` by before it branches to the entry (the
/// contract in the module documentation): the caller's `x0` at the new `SP_EL1`; for a
/// caller on `SP_EL0` the entry parks `x1`, `ELR_EL1` and `SPSR_EL1` in the next 24.
const VECTOR_RESERVED: usize = 144;

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

    /* x2-x29 to (`op` stp) or from (`op` ldp) their places in a frame at `base`. */
    .macro  uk_syscall_x2_x29 op, base
    \op     x2, x3, [\base, #16]
    \op     x4, x5, [\base, #32]
    \op     x6, x7, [\base, #48]
    \op     x8, x9, [\base, #64]
    \op     x10, x11, [\base, #80]
    \op     x12, x13, [\base, #96]
    \op     x14, x15, [\base, #112]
    \op     x16, x17, [\base, #128]
    \op     x18, x19, [\base, #144]
    \op     x20, x21, [\base, #160]
    \op     x22, x23, [\base, #176]
    \op     x24, x25, [\base, #192]
    \op     x26, x27, [\base, #208]
    \op     x28, x29, [\base, #224]
    .endm

    .balign 16
    .global uk_syscall_svc_entry
    .type uk_syscall_svc_entry, %function
uk_syscall_svc_entry:
    hint    #36
    mrs     x0, spsr_el1
    tbnz    x0, #0, 1f
    /* The caller ran on SP_EL0 (EL1t, kernel code): its stack may lie in a block another
       CPU is splitting, and a fault there is retried but overwrites ELR_EL1 and SPSR_EL1.
       So they are read before that stack is touched and parked, with x1, next to the
       caller's x0 in the bytes the vector reserved on SP_EL1 (the exception stack, never
       split). SP_EL1 stays lowered over the parked words (a retried fault's handler pushes
       its frame below it) and selected until they are read back; the frame is addressed
       through x0 meanwhile. A fault here comes through the SP_ELx vector. */
    str     x1, [sp, #8]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #16]
    mrs     x0, sp_el0
    sub     x0, x0, #{below}
    uk_syscall_x2_x29 stp, x0
    add     x1, x0, #{below}
    stp     x30, x1, [x0, #{x30}]
    ldp     x2, x3, [sp, #0]
    stp     x2, x3, [x0, #0]
    ldp     x1, x2, [sp, #16]
    add     sp, sp, #{reserved}
    msr     spsel, #0
    mov     sp, x0
    b       2f
1:
    /* The caller ran on SP_EL1 (EL1h: code running in exception context): its stack is
       SP_EL1 itself, once the vector's bytes are popped: the exception stack, which no
       split breaks, so nothing here can overwrite ELR_EL1 and SPSR_EL1 before they are
       read. */
    ldr     x0, [sp], #{reserved}
    sub     sp, sp, #{below}
    stp     x0, x1, [sp, #0]
    uk_syscall_x2_x29 stp, sp
    add     x0, sp, #{below}
    stp     x30, x0, [sp, #{x30}]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
2:
    /* sp = the frame, x1 = ELR, x2 = SPSR of the caller. */
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

    /* x0 = a 16-byte aligned frame; at EL1, with SP_EL0 or SP_EL1 selected. */
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
    tbnz    x2, #0, 5f
    /* Back to EL1t (SPSR.M[0] clear): the frame may lie on a thread's stack, in a block
       another CPU is splitting, and a retried fault overwrites ELR_EL1 and SPSR_EL1. So
       they are written only after the last load from the frame; until then they wait,
       with the frame's x0 and x1, on SP_EL1 (the exception stack, never split), lowered
       over them. The caller's stack pointer goes to SP_EL0 with msr (SP_EL1 selected). */
    msr     spsel, #1
    sub     sp, sp, #32
    stp     x1, x2, [sp, #16]
    ldp     x1, x2, [x0, #0]
    stp     x1, x2, [sp, #0]
    ldr     x1, [x0, #{sp_offset}]
    msr     sp_el0, x1
    uk_syscall_x2_x29 ldp, x0
    ldr     x30, [x0, #{x30}]
    ldp     x0, x1, [sp, #16]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp], #32
    eret
5:
    /* Back to EL1h: the frame is on the exception stack (the entry put it there), which no
       split breaks, so ELR_EL1 and SPSR_EL1 may be written before the loads. The stack
       pointer the frame returns with is SP_EL1's; the frame is addressed through x0. */
    msr     elr_el1, x1
    msr     spsr_el1, x2
    msr     spsel, #1
    uk_syscall_x2_x29 ldp, x0
    ldp     x30, x1, [x0, #{x30}]
    mov     sp, x1
    ldp     x0, x1, [x0, #0]
    eret
    .size uk_syscall_svc_restore, . - uk_syscall_svc_restore
    .purgem uk_syscall_x2_x29
    .popsection
"#,
    below = const RED_ZONE + core::mem::size_of::<TrapFrame>(),
    reserved = const VECTOR_RESERVED,
    x30 = const offset_of!(TrapFrame, x) + 30 * 8,
    sp_offset = const offset_of!(TrapFrame, sp),
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
/// Nothing of the current call chain survives. The return path is the entry's (see
/// *Faults while `ELR_EL1` and `SPSR_EL1` are live* in the module documentation): for an
/// EL1t frame the copy may lie on a thread's stack, in memory another CPU may be splitting;
/// resume an EL1h frame from exception context (on `SP_EL1`).
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
