//! aarch64 (AAPCS64): register switch, q0–q31 + FPSR + FPCR, `TPIDR_EL0`.

use core::alloc::Layout;
use core::arch::{asm, naked_asm};

use crate::{Context, ContextError, ContextOps, EntryFn, TlsVariant, stack_top};

/// The aarch64 [`ContextOps`].
///
/// The switch saves x19–x30 and sp, plus d8–d15 when the target has FP/SIMD registers
/// (AAPCS64 makes their low halves callee-saved, and the `aarch64-unknown-none` target lets
/// the compiler use them anywhere).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64;

impl Aarch64 {
    /// The implementation (nothing to detect: the extended context is fixed).
    pub const fn detect() -> Self {
        Self
    }
}

/// Bytes of one saved frame: x19–x30 (96), plus d8–d15 (64) with FP/SIMD.
#[cfg(target_feature = "neon")]
const FRAME: usize = 160;
#[cfg(not(target_feature = "neon"))]
const FRAME: usize = 96;

/// q0–q31 (512 bytes), FPSR and FPCR (8 bytes each).
const ECTX_SIZE: usize = 528;

#[cfg(target_feature = "neon")]
#[unsafe(naked)]
unsafe extern "C" fn switch_stacks(prev_sp: *mut usize, next_sp: usize) {
    naked_asm!(
        "sub sp, sp, #160",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        "mov x9, sp",
        "str x9, [x0]",
        "mov sp, x1",
        "ldp x19, x20, [sp, #0]",
        "ldp x21, x22, [sp, #16]",
        "ldp x23, x24, [sp, #32]",
        "ldp x25, x26, [sp, #48]",
        "ldp x27, x28, [sp, #64]",
        "ldp x29, x30, [sp, #80]",
        "ldp d8, d9, [sp, #96]",
        "ldp d10, d11, [sp, #112]",
        "ldp d12, d13, [sp, #128]",
        "ldp d14, d15, [sp, #144]",
        "add sp, sp, #160",
        "ret",
    )
}

#[cfg(not(target_feature = "neon"))]
#[unsafe(naked)]
unsafe extern "C" fn switch_stacks(prev_sp: *mut usize, next_sp: usize) {
    naked_asm!(
        "sub sp, sp, #96",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "mov x9, sp",
        "str x9, [x0]",
        "mov sp, x1",
        "ldp x19, x20, [sp, #0]",
        "ldp x21, x22, [sp, #16]",
        "ldp x23, x24, [sp, #32]",
        "ldp x25, x26, [sp, #48]",
        "ldp x27, x28, [sp, #64]",
        "ldp x29, x30, [sp, #80]",
        "add sp, sp, #96",
        "ret",
    )
}

/// First code of a new context: x19 = arg0, x20 = arg1, x21 = entry (placed by `init`);
/// every other general register is zeroed, then the entry is called; traps if it returns.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        "mov x0, x19",
        "mov x1, x20",
        "mov x16, x21",
        "mov x19, xzr",
        "mov x20, xzr",
        "mov x21, xzr",
        "mov x2, xzr",
        "mov x3, xzr",
        "mov x4, xzr",
        "mov x5, xzr",
        "mov x6, xzr",
        "mov x7, xzr",
        "mov x8, xzr",
        "mov x9, xzr",
        "mov x10, xzr",
        "mov x11, xzr",
        "mov x12, xzr",
        "mov x13, xzr",
        "mov x14, xzr",
        "mov x15, xzr",
        "mov x17, xzr",
        "mov x18, xzr",
        "mov x30, xzr",
        "blr x16",
        "brk #0x3c",
    )
}

// SAFETY: `init` lays out exactly the frame `switch_stacks` pops (x19–x30 with x30 = the
// trampoline, and zeroed d8–d15 when present); `switch_stacks` saves every AAPCS64
// callee-saved register (x19–x29, the link register, sp, d8–d15); the extended-context
// methods touch ECTX_SIZE bytes.
unsafe impl ContextOps for Aarch64 {
    const TLS_VARIANT: TlsVariant = TlsVariant::I;

    unsafe fn init(
        &self,
        ctx: &mut Context,
        stack: *mut u8,
        size: usize,
        entry: EntryFn,
        arg0: usize,
        arg1: usize,
    ) -> Result<(), ContextError> {
        let top = stack_top(stack, size, 16, FRAME)?;
        let frame = (top - FRAME) as *mut usize;
        for i in 0..FRAME / 8 {
            let word = match i {
                0 => arg0,
                1 => arg1,
                2 => entry as usize,
                11 => trampoline as *const () as usize,
                _ => 0,
            };
            // SAFETY: `stack_top` checked that FRAME bytes below the aligned top are inside
            // the caller's stack, which the caller lets us write.
            unsafe { frame.add(i).write(word) };
        }
        ctx.sp = frame as usize;
        Ok(())
    }

    #[inline]
    unsafe fn switch(&self, prev: *mut Context, next: *const Context) {
        // SAFETY: the caller guarantees `prev` is writable and `next` a resumable context;
        // `switch_stacks` behaves as an ordinary AAPCS64 call for the caller.
        unsafe { switch_stacks(&raw mut (*prev).sp, (*next).sp) }
    }

    fn ectx_layout(&self) -> Layout {
        Layout::from_size_align(ECTX_SIZE, 16).expect("valid layout")
    }

    unsafe fn ectx_init(&self, area: *mut u8) {
        // SAFETY: the caller provides ECTX_SIZE writable, aligned bytes; storing the
        // current state includes FPCR, which the new thread thus inherits.
        unsafe { self.ectx_save(area) }
    }

    #[inline]
    unsafe fn ectx_save(&self, area: *mut u8) {
        #[cfg(target_feature = "neon")]
        // SAFETY: the caller provides ECTX_SIZE writable bytes aligned to 16; the stores
        // change no register but the scratch pointer and two temporaries.
        unsafe {
            asm!(
                "stp q0, q1, [{p}, #0]",
                "stp q2, q3, [{p}, #32]",
                "stp q4, q5, [{p}, #64]",
                "stp q6, q7, [{p}, #96]",
                "stp q8, q9, [{p}, #128]",
                "stp q10, q11, [{p}, #160]",
                "stp q12, q13, [{p}, #192]",
                "stp q14, q15, [{p}, #224]",
                "stp q16, q17, [{p}, #256]",
                "stp q18, q19, [{p}, #288]",
                "stp q20, q21, [{p}, #320]",
                "stp q22, q23, [{p}, #352]",
                "stp q24, q25, [{p}, #384]",
                "stp q26, q27, [{p}, #416]",
                "stp q28, q29, [{p}, #448]",
                "stp q30, q31, [{p}, #480]",
                "mrs {a}, fpsr",
                "mrs {b}, fpcr",
                "str {a}, [{p}, #512]",
                "str {b}, [{p}, #520]",
                p = in(reg) area,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
        #[cfg(not(target_feature = "neon"))]
        let _ = area;
    }

    #[inline]
    unsafe fn ectx_restore(&self, area: *const u8) {
        #[cfg(target_feature = "neon")]
        // SAFETY: the caller provides an area written by `ectx_save`. All vector registers
        // change: the C ABI clobbers cover v0–v7 and v16–v31 and the upper halves of
        // v8–v15; d8–d15 are named explicitly so the compiler preserves its own values
        // around this block.
        unsafe {
            asm!(
                "ldp q0, q1, [{p}, #0]",
                "ldp q2, q3, [{p}, #32]",
                "ldp q4, q5, [{p}, #64]",
                "ldp q6, q7, [{p}, #96]",
                "ldp q8, q9, [{p}, #128]",
                "ldp q10, q11, [{p}, #160]",
                "ldp q12, q13, [{p}, #192]",
                "ldp q14, q15, [{p}, #224]",
                "ldp q16, q17, [{p}, #256]",
                "ldp q18, q19, [{p}, #288]",
                "ldp q20, q21, [{p}, #320]",
                "ldp q22, q23, [{p}, #352]",
                "ldp q24, q25, [{p}, #384]",
                "ldp q26, q27, [{p}, #416]",
                "ldp q28, q29, [{p}, #448]",
                "ldp q30, q31, [{p}, #480]",
                "ldr x9, [{p}, #512]",
                "ldr x10, [{p}, #520]",
                "msr fpsr, x9",
                "msr fpcr, x10",
                p = in(reg) area,
                out("x9") _,
                out("x10") _,
                out("d8") _, out("d9") _, out("d10") _, out("d11") _,
                out("d12") _, out("d13") _, out("d14") _, out("d15") _,
                clobber_abi("C"),
                options(nostack, preserves_flags),
            );
        }
        #[cfg(not(target_feature = "neon"))]
        let _ = area;
    }

    #[cfg(target_os = "none")]
    unsafe fn set_thread_pointer(&self, tp: usize) {
        // SAFETY: writing TPIDR_EL0 only changes what thread-local accesses resolve to; the
        // caller vouches for the block at `tp`.
        unsafe { asm!("msr tpidr_el0, {}", in(reg) tp, options(nostack, nomem, preserves_flags)) };
    }

    #[cfg(not(target_os = "none"))]
    unsafe fn set_thread_pointer(&self, _tp: usize) {}

    #[cfg(target_os = "none")]
    fn thread_pointer(&self) -> usize {
        let tp: usize;
        // SAFETY: reading TPIDR_EL0 has no side effects.
        unsafe { asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags)) };
        tp
    }

    #[cfg(not(target_os = "none"))]
    fn thread_pointer(&self) -> usize {
        0
    }

    const THREAD_POINTER_SET_BY_THREADS: bool = true;
}
