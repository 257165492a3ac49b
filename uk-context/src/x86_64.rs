//! x86_64 (System V ABI): register switch, XSAVEOPT/XSAVE/FXSAVE, FS base.

use core::alloc::Layout;
use core::arch::x86_64::__cpuid_count;
use core::arch::{asm, naked_asm};

use crate::{Context, ContextError, ContextOps, EntryFn, TlsVariant, stack_top};

/// How the extended context is saved and restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsaveMethod {
    /// `XSAVEOPT`/`XRSTOR`: skips components unchanged since they were restored from the
    /// same area.
    XsaveOpt,
    /// `XSAVE`/`XRSTOR`: every component enabled in XCR0.
    Xsave,
    /// `FXSAVE`/`FXRSTOR`: x87 and SSE only (512 bytes).
    Fxsave,
}

/// The x86_64 [`ContextOps`]: works on bare metal (ring 0) and in a Linux user process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86_64 {
    method: XsaveMethod,
    ectx_size: usize,
}

/// Bytes of the frame [`X86_64::init`] lays on a new stack: the resume address (the
/// trampoline), the two arguments, the entry and four pad words.
const INIT_FRAME: usize = 8 * 8;
/// The legacy FXSAVE area.
const FXSAVE_SIZE: usize = 512;

impl X86_64 {
    /// Chooses the extended-context method from CPUID: XSAVEOPT if the OS enabled XSAVE
    /// (CPUID.1:ECX.OSXSAVE) and the CPU has XSAVEOPT, else XSAVE, else FXSAVE; the XSAVE
    /// area size is CPUID.(EAX=0xD,ECX=0):EBX, the size for the features enabled in XCR0.
    pub fn detect() -> Self {
        let leaf1 = __cpuid_count(1, 0);
        let osxsave = leaf1.ecx & (1 << 27) != 0;
        if osxsave {
            let size = __cpuid_count(0xd, 0).ebx as usize;
            let xsaveopt = __cpuid_count(0xd, 1).eax & 1 != 0;
            let method = if xsaveopt {
                XsaveMethod::XsaveOpt
            } else {
                XsaveMethod::Xsave
            };
            return Self {
                method,
                ectx_size: size.max(FXSAVE_SIZE + 64),
            };
        }
        Self {
            method: XsaveMethod::Fxsave,
            ectx_size: FXSAVE_SIZE,
        }
    }

    /// Uses `method` if this CPU (and OS) supports it, e.g. to compare costs.
    pub fn with_method(method: XsaveMethod) -> Option<Self> {
        let best = Self::detect();
        match (method, best.method) {
            (XsaveMethod::Fxsave, _) => Some(Self {
                method,
                ectx_size: FXSAVE_SIZE,
            }),
            (XsaveMethod::Xsave, XsaveMethod::Xsave | XsaveMethod::XsaveOpt) => {
                Some(Self { method, ..best })
            }
            (XsaveMethod::XsaveOpt, XsaveMethod::XsaveOpt) => Some(best),
            _ => None,
        }
    }

    /// The method in use.
    pub fn method(&self) -> XsaveMethod {
        self.method
    }
}

impl Default for X86_64 {
    fn default() -> Self {
        Self::detect()
    }
}

/// First code of a new context, jumped to by the switch with rsp on the frame `init` laid
/// out: arg0, arg1, entry (the resume address is already popped). Clears every other
/// general register, aligns the stack so that the entry sees rsp + 8 ≡ 0 (mod 16), and
/// calls the entry; traps if it returns.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        "pop rdi",
        "pop rsi",
        "pop rax",
        "xor ebx, ebx",
        "xor ebp, ebp",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "xor ecx, ecx",
        "xor edx, edx",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "xor r11d, r11d",
        "and rsp, -16",
        "call rax",
        "xor eax, eax",
        "ud2",
    )
}

// SAFETY: `init` lays out the frame the switch resumes (a resume address into `trampoline`,
// which pops the arguments and the entry); the switch keeps every System V callee-saved
// general register (rbp and rbx on the stack, r12–r15 declared clobbered so the compiler
// saves the live ones) and rsp; the extended-context methods touch `ectx_size`
// bytes, the size CPUID reports for the enabled features (or 512 for FXSAVE).
unsafe impl ContextOps for X86_64 {
    const TLS_VARIANT: TlsVariant = TlsVariant::II;

    unsafe fn init(
        &self,
        ctx: &mut Context,
        stack: *mut u8,
        size: usize,
        entry: EntryFn,
        arg0: usize,
        arg1: usize,
    ) -> Result<(), ContextError> {
        let top = stack_top(stack, size, 16, INIT_FRAME)?;
        let frame = (top - INIT_FRAME) as *mut usize;
        // Popped in this order: the resume address by the switch, then arg0, arg1 and the
        // entry by `trampoline`; four pad words keep the frame's size.
        let words = [
            trampoline as *const () as usize,
            arg0,
            arg1,
            entry as usize,
            0,
            0,
            0,
            0,
        ];
        for (i, word) in words.into_iter().enumerate() {
            // SAFETY: `stack_top` checked that the INIT_FRAME bytes below the aligned top
            // are inside the caller's stack, which the caller lets us write.
            unsafe { frame.add(i).write(word) };
        }
        ctx.sp = frame as usize;
        Ok(())
    }

    /// Inline, so the compiler saves only the live caller-saved registers and the callee
    /// r12–r15 it uses (declared clobbered). The running side pushes rbp, rbx and its resume
    /// address (the label after the sequence), stores rsp, loads the next rsp, pops the other
    /// side's resume address and jumps there. No `ret` is involved, so the return stack
    /// buffer stays in step with the calls, and the indirect jump always lands on the same
    /// label when the other side left from the same switch site, which the branch predictor
    /// learns. (A `call`/`ret` pair here measured 12 % slower on the yield benchmark.)
    #[inline(always)]
    unsafe fn switch(&self, prev: *mut Context, next: *const Context) {
        // The switch sequence; only the clobber list differs between the targets.
        macro_rules! switch_sequence {
            ($($clobbers:tt)*) => {
                asm!(
                    "push rbp",
                    "push rbx",
                    "lea rax, [rip + 4f]",
                    "push rax",
                    "mov [rdi], rsp",
                    "mov rsp, rsi",
                    "pop rax",
                    "jmp rax",
                    "4:",
                    "pop rbx",
                    "pop rbp",
                    inout("rdi") &raw mut (*prev).sp => _,
                    inout("rsi") (*next).sp => _,
                    out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                    $($clobbers)*
                )
            };
        }
        // SAFETY: the caller guarantees `prev` is writable and `next` a resumable context
        // (saved by this very sequence, which resumes at its label with the stack as deep
        // as it was there, or laid out by `init`). From the compiler's view the block returns with
        // rsp, rbp and rbx unchanged, and every register that may differ is declared.
        #[cfg(target_feature = "sse")]
        unsafe {
            switch_sequence!(clobber_abi("C"))
        }
        // SAFETY: as above. On a soft-float target (x86_64-unknown-none) the compiler never
        // allocates vector or x87 registers: the general caller-saved ones are all it has.
        #[cfg(not(target_feature = "sse"))]
        unsafe {
            switch_sequence!(
                out("rax") _, out("rcx") _, out("rdx") _, out("r8") _, out("r9") _,
                out("r10") _, out("r11") _,
            )
        }
    }

    fn ectx_layout(&self) -> Layout {
        let align = if self.method == XsaveMethod::Fxsave {
            16
        } else {
            64
        };
        Layout::from_size_align(self.ectx_size, align).expect("valid XSAVE layout")
    }

    unsafe fn ectx_init(&self, area: *mut u8) {
        // SAFETY: the caller provides `ectx_size` writable, aligned bytes. Zeroing first
        // leaves a valid XSAVE header (XCOMP_BV and the reserved bytes zero).
        unsafe { area.write_bytes(0, self.ectx_size) };
        // SAFETY: as above; a plain XSAVE (or FXSAVE) of the current state, never the
        // optimised form, so every component lands in the fresh area.
        unsafe {
            match self.method {
                XsaveMethod::Fxsave => asm!("fxsave64 [{}]", in(reg) area, options(nostack)),
                XsaveMethod::Xsave | XsaveMethod::XsaveOpt => asm!(
                    "xsave64 [{}]", in(reg) area, in("eax") -1, in("edx") -1, options(nostack)
                ),
            }
        }
    }

    #[inline]
    unsafe fn ectx_save(&self, area: *mut u8) {
        // SAFETY: the caller provides an initialised, aligned area of `ectx_size` bytes.
        // Saving changes no register.
        unsafe {
            match self.method {
                XsaveMethod::XsaveOpt => asm!(
                    "xsaveopt64 [{}]", in(reg) area, in("eax") -1, in("edx") -1, options(nostack)
                ),
                XsaveMethod::Xsave => asm!(
                    "xsave64 [{}]", in(reg) area, in("eax") -1, in("edx") -1, options(nostack)
                ),
                XsaveMethod::Fxsave => asm!("fxsave64 [{}]", in(reg) area, options(nostack)),
            }
        }
    }

    #[inline]
    unsafe fn ectx_restore(&self, area: *const u8) {
        // SAFETY: the caller provides an area written by this implementation. Every vector
        // and x87 register is caller-saved in the System V ABI, so declaring the C ABI's
        // clobbers tells the compiler all of them change here.
        #[cfg(target_feature = "sse")]
        unsafe {
            match self.method {
                XsaveMethod::XsaveOpt | XsaveMethod::Xsave => asm!(
                    "xrstor64 [{}]", in(reg) area, in("eax") -1, in("edx") -1,
                    clobber_abi("C"), options(nostack)
                ),
                XsaveMethod::Fxsave => asm!(
                    "fxrstor64 [{}]", in(reg) area, clobber_abi("C"), options(nostack)
                ),
            }
        }
        // SAFETY: as above. On a soft-float target (x86_64-unknown-none) the compiler never
        // allocates vector or x87 registers, so there is nothing of its own to clobber.
        #[cfg(not(target_feature = "sse"))]
        unsafe {
            match self.method {
                XsaveMethod::XsaveOpt | XsaveMethod::Xsave => asm!(
                    "xrstor64 [{}]", in(reg) area, in("eax") -1, in("edx") -1, options(nostack)
                ),
                XsaveMethod::Fxsave => asm!("fxrstor64 [{}]", in(reg) area, options(nostack)),
            }
        }
    }

    #[cfg(target_os = "none")]
    unsafe fn set_thread_pointer(&self, tp: usize) {
        // SAFETY: bare metal runs in ring 0, where writing IA32_FS_BASE (0xC000_0100) is
        // allowed; the caller vouches for the block at `tp`.
        unsafe {
            asm!("wrmsr", in("ecx") 0xC000_0100u32, in("eax") tp as u32,
                 in("edx") (tp >> 32) as u32, options(nostack, preserves_flags));
        }
    }

    #[cfg(not(target_os = "none"))]
    unsafe fn set_thread_pointer(&self, _tp: usize) {}

    #[cfg(target_os = "none")]
    fn thread_pointer(&self) -> usize {
        let (lo, hi): (u32, u32);
        // SAFETY: reading IA32_FS_BASE in ring 0 has no side effects.
        unsafe {
            asm!("rdmsr", in("ecx") 0xC000_0100u32, out("eax") lo, out("edx") hi,
                 options(nostack, nomem, preserves_flags));
        }
        (u64::from(hi) << 32 | u64::from(lo)) as usize
    }

    #[cfg(not(target_os = "none"))]
    fn thread_pointer(&self) -> usize {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Registers recorded by `probe_entry` at its first instruction.
    static mut PROBE: [usize; 16] = [0; 16];
    static mut MAIN: Context = Context::new();
    static mut CHILD: Context = Context::new();

    /// Records rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8–r15 into `PROBE`, then continues
    /// in `probe_done`.
    #[unsafe(naked)]
    extern "C" fn probe_entry(_a: usize, _b: usize) -> ! {
        naked_asm!(
            "mov [rip + {p} + 0], rax",
            "mov [rip + {p} + 8], rbx",
            "mov [rip + {p} + 16], rcx",
            "mov [rip + {p} + 24], rdx",
            "mov [rip + {p} + 32], rsi",
            "mov [rip + {p} + 40], rdi",
            "mov [rip + {p} + 48], rbp",
            "mov [rip + {p} + 56], rsp",
            "mov [rip + {p} + 64], r8",
            "mov [rip + {p} + 72], r9",
            "mov [rip + {p} + 80], r10",
            "mov [rip + {p} + 88], r11",
            "mov [rip + {p} + 96], r12",
            "mov [rip + {p} + 104], r13",
            "mov [rip + {p} + 112], r14",
            "mov [rip + {p} + 120], r15",
            "jmp {done}",
            p = sym PROBE,
            done = sym probe_done,
        )
    }

    extern "C" fn probe_done(_a: usize, _b: usize) -> ! {
        let ops = X86_64::detect();
        // SAFETY: MAIN was saved by the switch that started this context.
        unsafe { ops.switch(&raw mut CHILD, &raw const MAIN) };
        unreachable!()
    }

    #[test]
    fn new_context_starts_with_args_zeroed_registers_and_aligned_stack() {
        let ops = X86_64::detect();
        for size in [4096, 4096 + 3, 8192 + 9, 65536] {
            for misalign in [0usize, 1, 8, 13] {
                let mut stack = vec![0xEEu8; size + misalign];
                // SAFETY: the stack lives until the child switched back for good; the
                // statics are only used by this test (tests of this module do not share
                // them with other tests).
                unsafe {
                    let base = stack.as_mut_ptr().add(misalign);
                    let child = &raw mut CHILD;
                    ops.init(&mut *child, base, size, probe_entry, 0x1111, 0x2222)
                        .unwrap();
                    ops.switch(&raw mut MAIN, &raw const CHILD);
                    let r = (&raw const PROBE).read();
                    assert_eq!((r[5], r[4]), (0x1111, 0x2222), "rdi, rsi");
                    // rax holds the entry address in the trampoline's `call rax`.
                    for (i, &v) in r.iter().enumerate() {
                        if ![0, 4, 5, 7].contains(&i) {
                            assert_eq!(v, 0, "register #{i} not zero at entry");
                        }
                    }
                    let rsp = r[7];
                    assert_eq!((rsp + 8) % 16, 0, "System V entry alignment");
                    assert!(rsp > base as usize && rsp < base as usize + size);
                }
            }
        }
    }

    #[test]
    fn too_small_stacks_are_rejected() {
        let ops = X86_64::detect();
        let mut ctx = Context::new();
        let mut stack = [0u8; 96];
        // SAFETY: init fails before writing anything.
        let err = unsafe { ops.init(&mut ctx, stack.as_mut_ptr(), 40, probe_entry, 0, 0) };
        assert!(matches!(
            err,
            Err(ContextError::StackTooSmall { size: 40, .. })
        ));
        assert_eq!(ctx, Context::new());
        // SAFETY: as above.
        let err = unsafe { ops.init(&mut ctx, core::ptr::null_mut(), 4096, probe_entry, 0, 0) };
        assert_eq!(err, Err(ContextError::BadStack));
        // The smallest stack that holds the frame after alignment is accepted.
        let base = stack
            .as_mut_ptr()
            .wrapping_add(stack.as_ptr().align_offset(16));
        // SAFETY: `base` is at most 15 bytes into the 96-byte array, so the 64 bytes from
        // it are inside; the context is never switched to.
        unsafe { ops.init(&mut ctx, base, 64, probe_entry, 0, 0) }.unwrap();
        assert_eq!(ctx.sp, base as usize);
    }

    fn aligned_area(ops: &X86_64) -> (Vec<u8>, *mut u8) {
        let l = ops.ectx_layout();
        let mut v = vec![0u8; l.size() + l.align()];
        let p = v.as_mut_ptr();
        let off = p.align_offset(l.align());
        // SAFETY: off < align, within the vector.
        (v, unsafe { p.add(off) })
    }

    fn mxcsr() -> u32 {
        let mut v = 0u32;
        // SAFETY: stores MXCSR to a local.
        unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut v, options(nostack)) };
        v
    }

    fn set_mxcsr(v: u32) {
        // SAFETY: loads a valid MXCSR value (only mask and mode bits).
        unsafe { asm!("ldmxcsr [{}]", in(reg) &raw const v, options(nostack)) };
    }

    #[test]
    fn every_method_preserves_xmm_and_inherits_mxcsr() {
        let methods = [
            XsaveMethod::XsaveOpt,
            XsaveMethod::Xsave,
            XsaveMethod::Fxsave,
        ];
        let mut tried = 0;
        for method in methods {
            let Some(ops) = X86_64::with_method(method) else {
                continue;
            };
            tried += 1;
            let (_keep, area) = aligned_area(&ops);
            let before = mxcsr();
            // Round toward zero + flush to zero: an unusual control state to inherit.
            let custom = (before & !0x6000) | 0x6000 | 0x8000;
            set_mxcsr(custom);
            // SAFETY: the area has the layout's size and alignment.
            unsafe { ops.ectx_init(area) };
            set_mxcsr(before);
            // SAFETY: as above.
            unsafe { ops.ectx_restore(area) };
            assert_eq!(mxcsr(), custom, "{method:?}: new context inherits MXCSR");
            set_mxcsr(before);

            // xmm5 (and xmm15) survive save, clobber, restore.
            let (lo, hi): (u64, u64);
            // SAFETY: writes xmm5/xmm15, saves, clobbers, restores, reads; the area is valid.
            unsafe {
                asm!(
                    "movq xmm5, {a}",
                    "movq xmm15, {b}",
                    a = in(reg) 0x0123_4567_89ab_cdefu64,
                    b = in(reg) 0x0fed_cba9_8765_4321u64,
                    out("xmm5") _, out("xmm15") _,
                );
                ops.ectx_save(area);
                asm!("pxor xmm5, xmm5", "pxor xmm15, xmm15", out("xmm5") _, out("xmm15") _);
                ops.ectx_restore(area);
                asm!("movq {a}, xmm5", "movq {b}, xmm15", a = out(reg) lo, b = out(reg) hi,
                     out("xmm5") _, out("xmm15") _);
            }
            assert_eq!(
                (lo, hi),
                (0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321),
                "{method:?}"
            );
        }
        assert!(tried >= 1);
        let layout = X86_64::detect().ectx_layout();
        assert!(layout.size() >= 512);
    }

    #[test]
    fn host_thread_pointer_is_left_alone() {
        let ops = X86_64::detect();
        // SAFETY: a no-op on the host.
        unsafe { ops.set_thread_pointer(0x1234) };
        assert_eq!(ops.thread_pointer(), 0);
        assert_eq!(X86_64::TLS_VARIANT, TlsVariant::II);
    }
}
