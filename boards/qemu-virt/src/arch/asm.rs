//! All of the board's assembly: the entry point, the exception vectors, the fault trampoline,
//! and the few instructions Rust has no intrinsic for (semihosting, PSCI calls, TLB and cache
//! maintenance, break-before-make for page protection, reading a memory tag for a tag check
//! fault report, a breakpoint for the in-image tests).
//!
//! # Entry (`_start`)
//!
//! QEMU starts an ELF image at its entry point with the MMU off, at EL1 (`-machine virt`) or
//! EL2 (`virtualization=on`). The entry:
//!
//! 1. reads `CNTVCT_EL0` after an `isb` before anything else: time zero of the clock;
//! 2. at EL2, prepares EL1 and drops to it with `eret`: `HCR_EL2.RW` (EL1 is AArch64) and,
//!    on a CPU with FEAT_MTE2, `HCR_EL2.ATA` (EL1 may use memory tags),
//!    `CNTHCTL_EL2` (EL1 may read the physical counter and timer), `CPTR_EL2` (no FP/SIMD
//!    trap), `HSTR_EL2` cleared, `VPIDR/VMPIDR_EL2` copied from the real IDs, `SCTLR_EL1` in
//!    a known state (MMU off), `SPSR_EL2` = EL1h with DAIF masked, `ELR_EL2` = the EL1 path;
//! 3. at EL1, enables FP/SIMD (`CPACR_EL1.FPEN`): the `aarch64-unknown-none` target keeps
//!    floats and memcpy in NEON registers, so no Rust code may run before this;
//! 4. installs the vectors (`VBAR_EL1`), points `SP_EL1` at the exception stack and `SP_EL0`
//!    at the boot stack and selects `SP_EL0`, so the kernel runs on `SP_EL0` and every
//!    exception lands on a stack of its own (a stack overflow into a guard page can still be
//!    reported);
//! 5. zeroes `.bss` (64 bytes a round: the linker script aligns it so) and calls [`super::boot`] with the loader's `x0`, time zero and the entry
//!    exception level.
//!
//! EL3 entry (`secure=on`) is not supported: the CPU parks in `wfe`.
//!
//! # Vectors
//!
//! Vectors 0 and 4 (synchronous, current EL, with `SP_EL0` where kernel code traps, or
//! `SP_ELx` for code in exception context) first check for `svc` (`ESR_EL1.EC == 0x15`) and
//! branch to `uk_syscall_svc_entry` when the image links uk-syscall (a weak reference; 0
//! otherwise, and the `svc` is reported like any other exception).
//!
//! Each of the 16 entries reserves an [`ExceptionFrame`](crate::exception::ExceptionFrame)
//! on the stack, saves `x0`/`x1`, puts its own number in `x0` and branches to common code
//! that saves the rest (all general registers, the interrupted SP, `ELR`, `SPSR`, `ESR`,
//! `FAR`), then `q0`-`q31`, `FPCR` and `FPSR` below it (together a
//! [`SavedState`](crate::exception::SavedState)), and calls [`super::exception()`] with it.
//! That handler returns only to retry a translation fault in a block that page protection
//! splits on another CPU at that moment (see `protect`), or for a fault offered to the
//! hook (below), having changed the saved state; the common code then restores every
//! register from it (`SP_EL0` too when returning to EL1t) and `eret`s.
//!
//! # Faults offered to the hook
//!
//! A data or instruction abort (EC 0x25, 0x21) with a translation or permission fault, a
//! data abort with an alignment fault, a PC alignment fault (EC 0x22), an undefined
//! instruction (EC 0x00) or a `brk` (EC 0x3c) with an immediate other than the two below
//! ([`crate::exception::offered_fault`]), taken through vector 0 (EL1t: a thread on
//! `SP_EL0`) with IRQs unmasked in the faulting code, not retried and not nested in a
//! report, goes to `uk_hal::fault`'s hook when one is set (`fault`). The hook must not run
//! on the exception stack (per CPU; the hook may block, switch threads, fault again or
//! never return), so the handler copies the whole saved state (816 bytes) below the
//! faulting thread's stack pointer, 16-byte aligned (AAPCS64 has no red zone; if that
//! memory does not translate for writing, a stack overflow say, the fault is reported as
//! before), and changes its own frame: `ELR` =
//! `__uk_fault_trampoline`, `SPSR` = EL1t with the faulting code's `DAIF`, `SP_EL0` = `x0`
//! = the copy. The trampoline calls [`super::fault::offer_from_copy`], which builds the
//! `InterruptedRegisters` over the copy's frame and offers the fault, then executes
//! `brk #0xfa01` (`Resume`) or `brk #0xfa02` (`Unhandled`) with `x0` = `SP` = the copy. Vector
//! 0 recognises these (EC 0x3c, the immediate, `ELR` the trampoline's very `brk`) and loads
//! the copy into its saved state: after `Resume` it returns to the faulting code with the
//! copy's registers as the hook left them (`x0`-`x30`, `SP`, `PC`, flags, `q0`-`q31`,
//! `FPCR`, `FPSR`; PSTATE as the fault found it); after `Unhandled` it reports the original
//! fault (its `ESR`, `FAR`, `ELR` and general registers, as the fault left them). The
//! copy, in the order the vectors save it (`SavedState`):
//!
//! | bytes      | contents                                                            |
//! |------------|---------------------------------------------------------------------|
//! | 0-15       | `FPCR`, `FPSR`                                                      |
//! | 16-527     | `q0`-`q31`                                                          |
//! | 528-775    | words 0-30 of the frame: `x0`-`x30` (writable for the hook)         |
//! | 776        | word 31: the interrupted `SP` (writable)                            |
//! | 784        | word 32: `ELR_EL1`, the PC (writable)                               |
//! | 792        | word 33: `SPSR_EL1`, PSTATE (reported only)                         |
//! | 800-815    | words 34-35: `ESR_EL1`, `FAR_EL1`                                   |
//!
//! Words 0-33 of the frame are Linux's aarch64 `ucontext` order (`regs[0..31]`, `sp`,
//! `pc`, `pstate`), so the register table of the hook's `InterruptedRegisters` is the
//! identity.
//!
//! The two IRQ entries of the current exception level are different (vector 1, taken on
//! `SP_EL0`, where threads run; vector 5, taken on `SP_EL1`, where the test runner
//! continues after a failed case). They save all general registers, `ELR`, `SPSR`, `FPCR`,
//! `FPSR` and `q0`-`q31` on the *interrupted* stack (vector 1 switches back to `SP_EL0`
//! first), call [`super::irq::irq_entry`] and return with `eret`. The frame stays on the
//! interrupted thread's stack, so the handler may switch threads and the return happens
//! when the thread is resumed. A thread's stack is heap memory, which another CPU may be
//! splitting: vector 1 reads `ELR_EL1`/`SPSR_EL1` before its first store there (parking
//! `x0`/`x1` on the exception stack, which is never split) and writes them back only after
//! its last load from there, so a retried fault in between loses nothing.
//!
//! # Secondary CPUs
//!
//! `__uk_secondary_start` is the PSCI `CPU_ON` entry: the same EL2-to-EL1 drop as `_start`
//! (an assembler macro shared by both), FP/SIMD on, then `MAIR`, `TCR`, `TTBR0` and
//! `SCTLR` copied from the boot CPU (read from the start block `x0` points to, cleaned to
//! the point of coherency by the boot CPU, since this CPU's caches are still off), the
//! vectors, its own exception stack (`SP_EL1`) and boot stack (`SP_EL0`), and the Rust
//! entry [`super::irq::secondary_entry`]. At EL2 with a GICv3 CPU interface,
//! `ICC_SRE_EL2` is set (`SRE`, `Enable`) so EL1 may use the system-register interface.

use core::arch::{asm, global_asm};

use aarch64_cpu::registers::{CNTHCTL_EL2, CPACR_EL1, HCR_EL2, SPSR_EL2};

use crate::exception::{BRK_FAULT_REPORT, BRK_FAULT_RESUME, FP_AREA_SIZE, FRAME_SIZE, offset};

/// `HCR_EL2` for the drop: EL1 runs AArch64, nothing trapped to EL2.
const HCR: u64 = HCR_EL2::RW::EL1IsAarch64.value;
/// `HCR_EL2.ATA`, added to [`HCR`] on a CPU with FEAT_MTE2 (`ID_AA64PFR1_EL1.MTE >= 2`):
/// EL1 may then use memory tags and their registers (`GCR_EL1`, `RGSR_EL1`, `TFSR_EL1`),
/// which would otherwise trap to EL2, where this image has no vectors. The bit is RES0
/// without FEAT_MTE2, hence the check.
const HCR_ATA: u64 = HCR_EL2::ATA::SET.value;
/// `CNTHCTL_EL2`: EL1 and EL0 may use the physical counter and timer.
const CNTHCTL: u64 = CNTHCTL_EL2::EL1PCTEN::SET.value | CNTHCTL_EL2::EL1PCEN::SET.value;
/// `CPTR_EL2` (`E2H = 0` layout): the RES1 bits 13, 9 and 7:0, `TSM` (bit 12, traps SME
/// where implemented, RES1 elsewhere); `TFP` (bit 10) and `TZ` (bit 8) clear, so FP/SIMD and
/// SVE are not trapped to EL2. `aarch64-cpu` names only `TAM` of this register.
const CPTR: u64 = 0x32ff;
/// `SCTLR_EL1` before the MMU is on: only the RES1 bits of ARMv8.0 (29, 28, 23, 22, 20, 11);
/// MMU, caches and alignment checks off, little-endian.
pub(super) const SCTLR_EL1_RES1: u64 = 0x30d0_0800;
/// `SPSR_EL2` for the `eret`: EL1 with `SP_EL1`, debug, SError, IRQ and FIQ masked.
const SPSR: u64 = SPSR_EL2::D::Masked.value
    | SPSR_EL2::A::Masked.value
    | SPSR_EL2::I::Masked.value
    | SPSR_EL2::F::Masked.value
    | SPSR_EL2::M::EL1h.value;
/// `CPACR_EL1`: FP/SIMD instructions are not trapped at EL1 and EL0.
const CPACR: u64 = CPACR_EL1::FPEN::TrapNothing.value;

global_asm!(
    r#"
    /* q0-q31 to (`op` stp) or from (`op` ldp) the 512 bytes at `base`, as the exception
       and IRQ paths keep them. */
    .macro  uk_q_regs op, base
    \op     q0, q1, [\base, #0]
    \op     q2, q3, [\base, #32]
    \op     q4, q5, [\base, #64]
    \op     q6, q7, [\base, #96]
    \op     q8, q9, [\base, #128]
    \op     q10, q11, [\base, #160]
    \op     q12, q13, [\base, #192]
    \op     q14, q15, [\base, #224]
    \op     q16, q17, [\base, #256]
    \op     q18, q19, [\base, #288]
    \op     q20, q21, [\base, #320]
    \op     q22, q23, [\base, #352]
    \op     q24, q25, [\base, #384]
    \op     q26, q27, [\base, #416]
    \op     q28, q29, [\base, #448]
    \op     q30, q31, [\base, #480]
    .endm

    /* x4-x17 to (`op` stp) or from (`op` ldp) their places in both frames, at sp. */
    .macro  uk_x4_x17 op
    \op     x4, x5, [sp, #32]
    \op     x6, x7, [sp, #48]
    \op     x8, x9, [sp, #64]
    \op     x10, x11, [sp, #80]
    \op     x12, x13, [sp, #96]
    \op     x14, x15, [sp, #112]
    \op     x16, x17, [sp, #128]
    .endm

    .macro  uk_el2_to_el1 target
    mov     x9, #{hcr}
    mrs     x10, id_aa64pfr1_el1
    ubfx    x10, x10, #8, #4
    cmp     x10, #2
    b.lo    104f
    orr     x9, x9, #{hcr_ata}
104:
    msr     hcr_el2, x9
    mov     x9, #{cnthctl}
    msr     cnthctl_el2, x9
    mov     x9, #{cptr}
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    mrs     x10, id_aa64pfr0_el1
    ubfx    x10, x10, #24, #4
    cbz     x10, 105f
    mov     x9, #0xf
    msr     S3_4_C12_C9_5, x9
    isb
105:
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    mrs     x9, mpidr_el1
    msr     vmpidr_el2, x9
    ldr     x9, ={sctlr}
    msr     sctlr_el1, x9
    mov     x9, #{spsr}
    msr     spsr_el2, x9
    adr     x9, \target
    msr     elr_el2, x9
    eret
    .endm

    .section .text.uk_boot, "ax"
    .global _start
    .type _start, %function
_start:
    isb
    mrs     x19, cntvct_el0
    mov     x20, x0
    mrs     x21, CurrentEL
    ubfx    x21, x21, #2, #2
    cmp     x21, #2
    b.lt    1f
    b.gt    9f

    uk_el2_to_el1 1f

1:
    mov     x9, #{cpacr}
    msr     cpacr_el1, x9
    adrp    x9, __uk_vectors
    add     x9, x9, :lo12:__uk_vectors
    msr     vbar_el1, x9
    adrp    x9, __uk_exception_stack_top
    add     x9, x9, :lo12:__uk_exception_stack_top
    mov     sp, x9
    adrp    x9, __uk_boot_stack_top
    add     x9, x9, :lo12:__uk_boot_stack_top
    msr     sp_el0, x9
    msr     spsel, #0
    isb

    adrp    x9, __uk_bss_start
    add     x9, x9, :lo12:__uk_bss_start
    adrp    x10, __uk_bss_end
    add     x10, x10, :lo12:__uk_bss_end
2:
    cmp     x9, x10
    b.hs    3f
    stp     xzr, xzr, [x9]
    stp     xzr, xzr, [x9, #16]
    stp     xzr, xzr, [x9, #32]
    stp     xzr, xzr, [x9, #48]
    add     x9, x9, #64
    b       2b
3:
    mov     x0, x20
    mov     x1, x19
    mov     x2, x21
    mov     x29, xzr
    mov     x30, xzr
    bl      {boot}
9:
    wfe
    b       9b
    .ltorg
    .size _start, . - _start

__uk_exception_common:
    stp     x2, x3, [sp, #16]
    uk_x4_x17 stp
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, spsr_el1
    add     x3, sp, #{frame}
    mrs     x4, sp_el0
    tst     x2, #1
    csel    x3, x3, x4, ne
    stp     x30, x3, [sp, #{x30}]
    mrs     x4, elr_el1
    stp     x4, x2, [sp, #{elr}]
    mrs     x4, esr_el1
    mrs     x5, far_el1
    stp     x4, x5, [sp, #{esr}]
    mov     x1, x0
    /* The FP/SIMD registers too, below the frame: the handler may return (below), and
       Rust code may use them for anything. */
    sub     sp, sp, #{fp_area}
    add     x2, sp, #16
    uk_q_regs stp, x2
    mrs     x2, fpcr
    mrs     x3, fpsr
    stp     x2, x3, [sp, #0]
    mov     x0, sp
    mov     x29, xzr
    bl      {handler}
    /* The handler returned: to retry a translation fault in a block another CPU is
       splitting (see `protect`), to run the fault trampoline, or to resume after it (see
       the module documentation). Every register from the saved state, which the handler
       may have changed; for EL1t SP_EL0 too. */
    ldp     x2, x3, [sp, #0]
    msr     fpcr, x2
    msr     fpsr, x3
    add     x2, sp, #16
    uk_q_regs ldp, x2
    add     sp, sp, #{fp_area}
    ldp     x4, x5, [sp, #{elr}]
    msr     elr_el1, x4
    msr     spsr_el1, x5
    tbnz    x5, #0, 1f
    ldr     x2, [sp, #{sp}]
    msr     sp_el0, x2
1:
    ldp     x2, x3, [sp, #16]
    uk_x4_x17 ldp
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #{x30}]
    ldp     x0, x1, [sp]
    add     sp, sp, #{frame}
    eret

    .section .text.uk_vectors, "ax"
    .balign 2048
    .global __uk_vectors
__uk_vectors:
    .set    vector, 0
    .rept   16
    .balign 128
    .if     vector == 1
    b       __uk_irq_entry
    .elseif vector == 5
    b       __uk_irq_entry_spx
    .else
    .if (vector & 0xb) == 0
    /* Vectors 0 and 4 (synchronous, current EL, SP_EL0 or SP_ELx): svc #0 from EL1 goes to
       uk-syscall's entry if the image links it (a weak reference: the board does not depend
       on uk-syscall). Contract: SP_EL1 lowered by 144 bytes with x0 stored at the new SP
       (the 128 bytes above stay untouched: for code trapping on SP_EL1 they are below its
       stack pointer), x0 = the entry's address, everything else as the exception left it;
       the entry pops SP_EL1 and ends with eret. */
    str     x0, [sp, #-144]!
    mrs     x0, esr_el1
    ubfx    x0, x0, #26, #6
    cmp     x0, #0x15
    b.ne    1f
    adrp    x0, __uk_svc_entry_address
    ldr     x0, [x0, :lo12:__uk_svc_entry_address]
    cbz     x0, 1f
    br      x0
1:
    ldr     x0, [sp], #144
    .endif
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp]
    mov     x0, #vector
    b       __uk_exception_common
    .endif
    .set    vector, vector + 1
    .endr

    .section .text.uk_irq, "ax"
__uk_irq_entry:
    /* Interrupted on SP_EL0 (a thread): the frame goes on the thread's stack, which may lie
       in a block another CPU is splitting; a fault there is retried, but it overwrites
       ELR_EL1 and SPSR_EL1. So they are read before that stack is touched, with x0 and x1
       parked on the exception stack (never split), and the parked pair is moved over. */
    stp     x0, x1, [sp, #-16]!
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    msr     spsel, #0
    sub     sp, sp, #{irq_frame}
    stp     x30, x0, [sp, #160]
    mrs     x0, fpcr
    stp     x1, x0, [sp, #176]
    stp     x2, x3, [sp, #16]
    msr     spsel, #1
    ldp     x2, x3, [sp], #16
    msr     spsel, #0
    stp     x2, x3, [sp, #0]
    b       1f
__uk_irq_entry_spx:
    /* Interrupted on SP_EL1: the frame goes on the exception stack. */
    sub     sp, sp, #{irq_frame}
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    mrs     x2, fpcr
    stp     x30, x0, [sp, #160]
    stp     x1, x2, [sp, #176]
1:
    uk_x4_x17 stp
    stp     x18, x29, [sp, #144]
    mrs     x3, fpsr
    str     x3, [sp, #192]
    add     x0, sp, #208
    uk_q_regs stp, x0
    add     x0, x0, #512
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    mov     x29, xzr
    mov     x0, sp
    bl      {irq_handler}
    add     x0, sp, #720
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    add     x0, sp, #208
    uk_q_regs ldp, x0
    ldp     x1, x2, [sp, #176]
    ldr     x3, [sp, #192]
    msr     fpcr, x2
    msr     fpsr, x3
    tbnz    x1, #0, 2f
    /* Back to SP_EL0 (SPSR.M[0] clear: the frame is on the thread's stack, see the entry):
       every load from that stack happens before ELR_EL1 and SPSR_EL1 are written, and the
       frame's x0 and x1 wait on the exception stack meanwhile. */
    ldp     x2, x3, [sp, #0]
    msr     spsel, #1
    stp     x2, x3, [sp, #-16]!
    msr     spsel, #0
    ldp     x30, x0, [sp, #160]
    ldp     x2, x3, [sp, #16]
    uk_x4_x17 ldp
    ldp     x18, x29, [sp, #144]
    add     sp, sp, #{irq_frame}
    msr     spsel, #1
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp], #16
    eret
2:
    ldp     x30, x0, [sp, #160]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    uk_x4_x17 ldp
    ldp     x18, x29, [sp, #144]
    add     sp, sp, #{irq_frame}
    eret

    .section .text.uk_fault, "ax"
    /* The fault trampoline: entered with eret from the synchronous vector at EL1t, with
       SP_EL0 = x0 = the copy of the faulting code's state, interrupts as that code had
       them. The Rust half offers the fault and answers 1 (resume) or 0 (report); the copy
       goes back to the vectors with a brk of the answer's immediate, x0 = the copy. */
    .global __uk_fault_trampoline
    .type __uk_fault_trampoline, %function
__uk_fault_trampoline:
    mov     x29, xzr
    mov     x30, xzr
    bl      {offer}
    cbz     x0, 1f
    mov     x0, sp
    .global __uk_fault_resume
__uk_fault_resume:
    brk     #{brk_resume}
1:
    mov     x0, sp
    .global __uk_fault_report
__uk_fault_report:
    brk     #{brk_report}
    .size __uk_fault_trampoline, . - __uk_fault_trampoline

    .section .text.uk_secondary, "ax"
    .global __uk_secondary_start
__uk_secondary_start:
    mov     x19, x0
    mrs     x21, CurrentEL
    ubfx    x21, x21, #2, #2
    cmp     x21, #2
    b.lt    11f
    b.gt    19f
    uk_el2_to_el1 11f
11:
    mov     x9, #{cpacr}
    msr     cpacr_el1, x9
    isb
    ldp     x1, x2, [x19, #0]
    msr     mair_el1, x1
    msr     tcr_el1, x2
    ldp     x1, x2, [x19, #16]
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     sctlr_el1, x2
    isb
    adrp    x9, __uk_vectors
    add     x9, x9, :lo12:__uk_vectors
    msr     vbar_el1, x9
    ldp     x1, x2, [x19, #32]
    mov     sp, x2
    msr     sp_el0, x1
    msr     spsel, #0
    isb
    mov     x0, x19
    mov     x29, xzr
    mov     x30, xzr
    bl      {secondary}
19:
    wfe
    b       19b
    .pushsection .rodata.uk_svc_hook, "a"
    .balign 8
    /* A weak reference (not `.weak`, which would clash with the definition when LTO puts
       both in one module): 0 when nothing defines the entry. */
    .weakref __uk_svc_entry_weak, uk_syscall_svc_entry
__uk_svc_entry_address:
    .quad   __uk_svc_entry_weak
    .popsection
"#,
    hcr = const HCR,
    hcr_ata = const HCR_ATA,
    cnthctl = const CNTHCTL,
    cptr = const CPTR,
    sctlr = const SCTLR_EL1_RES1,
    spsr = const SPSR,
    cpacr = const CPACR,
    frame = const FRAME_SIZE,
    fp_area = const FP_AREA_SIZE,
    x30 = const offset::SP - 8,
    sp = const offset::SP,
    elr = const offset::ELR,
    esr = const offset::ESR,
    boot = sym super::boot,
    handler = sym super::exception,
    irq_frame = const IRQ_FRAME_SIZE,
    irq_handler = sym super::irq::irq_entry,
    secondary = sym super::irq::secondary_entry,
    offer = sym super::fault::offer_from_copy,
    brk_resume = const BRK_FAULT_RESUME,
    brk_report = const BRK_FAULT_REPORT,
);

/// Bytes the IRQ entry saves on the interrupted thread's stack: x0–x18, x29, x30, ELR,
/// SPSR, FPCR, FPSR (208 with padding), q0–q31 (512), then x19–x28 (80), which the Rust
/// handler would keep itself but which a signal handler reads and may change through
/// `Interrupts::interrupted_registers` (`irq::FRAME_LAYOUT`).
pub(super) const IRQ_FRAME_SIZE: usize = 208 + 512 + 80;

unsafe extern "C" {
    /// The secondary CPUs' entry (PSCI `CPU_ON` target): `x0` points at a
    /// [`super::irq::StartBlock`].
    pub(super) fn __uk_secondary_start();
    /// The fault trampoline (see the module documentation): the synchronous vector's
    /// `eret` target for a fault offered to the hook. Never called.
    pub(super) fn __uk_fault_trampoline();
    /// The trampoline's `brk` after the hook answered `Resume` (the address `ELR_EL1`
    /// names then). Never called.
    pub(super) fn __uk_fault_resume();
    /// The trampoline's `brk` after the hook answered `Unhandled`. Never called.
    pub(super) fn __uk_fault_report();
}

/// The allocation tag of the granule at `address` (`ldg`), for the report of a tag check
/// fault. Only call it after such a fault: the instruction needs FEAT_MTE, and the address
/// must be mapped (a tag check fault is taken on a translated, mapped address).
pub(super) fn load_tag(address: u64) -> u8 {
    let mut tagged: u64 = 0;
    // SAFETY: called only for a tag check fault, which implies FEAT_MTE2 with tag access on
    // and a mapped address; `ldg` reads a tag (never data) into the register and is not tag
    // checked itself.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "ldg {t}, [{a}]",
            t = inout(reg) tagged,
            a = in(reg) address,
            options(readonly, nostack, preserves_flags)
        )
    };
    ((tagged >> 56) & 0xf) as u8
}

/// Semihosting operation `SYS_EXIT`; on AArch64 its argument is a parameter block.
const SYS_EXIT: u64 = 0x18;
/// Semihosting stop reason for a normal exit with a status (`ADP_Stopped_ApplicationExit`).
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// Asks the semihosting host (QEMU with `-semihosting-config enable=on`) to exit with
/// `code`. Returns only if the host ignores the request; if semihosting is off, the `hlt`
/// raises an undefined-instruction exception instead.
pub(super) fn semihosting_exit(code: u8) {
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(code)];
    // SAFETY: `hlt #0xf000` is the A64 semihosting trap; SYS_EXIT reads the two-word block
    // that `x1` points to (alive for the duration of the call) and writes only `x0`.
    unsafe {
        asm!("hlt #0xf000", inout("x0") SYS_EXIT => _, in("x1") block.as_ptr(), options(nostack, readonly));
    }
}

/// PSCI through the conduit the device tree names.
#[derive(Clone, Copy)]
pub(super) enum Psci {
    /// `hvc #0`.
    Hvc,
    /// `smc #0`.
    Smc,
}

impl Psci {
    /// Makes the PSCI call `function` with no arguments and returns `x0`.
    pub(super) fn call(self, function: u32) -> u64 {
        self.call3(function, 0, 0, 0)
    }

    /// Makes the PSCI call `function` with arguments `x1`-`x3` and returns `x0`.
    pub(super) fn call3(self, function: u32, a1: u64, a2: u64, a3: u64) -> u64 {
        let result;
        // SAFETY: an SMCCC call with no memory arguments; the callee may clobber x0-x17
        // (SMCCC v1.0), all declared. The functions this board uses (SYSTEM_OFF, VERSION,
        // CPU_ON) change no memory of ours (CPU_ON starts another CPU at an entry point
        // whose start block the caller prepared).
        unsafe {
            match self {
                Psci::Hvc => asm!("hvc #0", inout("x0") u64::from(function) => result,
                    inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                    out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                    out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                    out("x15") _, out("x16") _, out("x17") _, options(nostack)),
                Psci::Smc => asm!("smc #0", inout("x0") u64::from(function) => result,
                    inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                    out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                    out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                    out("x15") _, out("x16") _, out("x17") _, options(nostack)),
            }
        }
        result
    }
}

/// Invalidates every stage-1 EL1&0 TLB entry on this CPU and waits for it to complete.
pub(super) fn invalidate_tlb() {
    // SAFETY: TLB maintenance only drops cached translations; the tables in memory stay the
    // authority, so no program-visible state changes.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Replaces the live block descriptor at `entry`, which maps the memory at `address`, by
/// `descriptor` (a table descriptor whose table, fully written, maps the same memory with
/// the same attributes), with Arm's break-before-make: invalid descriptor, `dsb ish`,
/// `tlbi vaae1is` (every CPU, every level, any ASID) for the block's address, `dsb ish`,
/// the new descriptor, `dsb ish`, `isb`. A TLB invalidation by address removes every
/// entry cached for the block that holds the address, whatever its size.
///
/// Between the break and the make nothing may touch the block: the sequence is one `asm!`
/// block that uses registers only (no stack, no memory but the two stores to `entry`),
/// with `DAIF` all masked around it, so this CPU takes no exception in the window; the
/// leading `dsb ish` makes the new table (and whatever the caller stored before) visible
/// to every CPU's table walks first. Other CPUs that touch the block in the window take a
/// translation fault, which the exception handler retries (`protect`).
///
/// # Safety
///
/// `entry` must be the live level-1 or level-2 entry (a block) of the identity map that
/// maps `address`, outside the memory that block maps, and `descriptor` must map that
/// memory as the block did, or with only the rights the caller means to change.
pub(super) unsafe fn break_before_make(entry: *mut u64, descriptor: u64, address: u64) {
    // SAFETY: the caller guarantees that `entry` is a live table entry outside the block and
    // that `descriptor` maps what the block mapped; the sequence touches no other memory,
    // and the code (in the image) is mapped by other entries.
    unsafe {
        asm!(
            "mrs    {daif}, daif",
            "msr    daifset, #0xf",
            "dsb    ish",
            "str    xzr, [{entry}]",
            "dsb    ish",
            "tlbi   vaae1is, {page}",
            "dsb    ish",
            "str    {descriptor}, [{entry}]",
            "dsb    ish",
            "isb",
            "msr    daif, {daif}",
            entry = in(reg) entry,
            descriptor = in(reg) descriptor,
            page = in(reg) (address >> 12) & ((1 << 44) - 1),
            daif = out(reg) _,
            options(nostack, preserves_flags),
        )
    };
}

/// Pages above which [`invalidate_pages`] drops every translation instead of one page at a
/// time.
const INVALIDATE_PAGE_BY_PAGE: u64 = 64;

/// After page descriptors of `[start, end)` changed in place: `dsb ishst` (the stores reach
/// the table walkers), `tlbi vaae1is` for every page (or `tlbi vmalle1is` for more than
/// [`INVALIDATE_PAGE_BY_PAGE`] pages), `dsb ish`, `isb`. The inner-shareable forms reach
/// every CPU.
pub(super) fn invalidate_pages(start: u64, end: u64) {
    // SAFETY: a barrier has no other effect.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
    if (end - start) / 4096 > INVALIDATE_PAGE_BY_PAGE {
        // SAFETY: TLB maintenance only drops cached translations; the tables stay the
        // authority.
        unsafe { asm!("tlbi vmalle1is", options(nostack, preserves_flags)) };
    } else {
        let mut page = start;
        while page < end {
            // SAFETY: as above, for one page.
            unsafe {
                asm!("tlbi vaae1is, {}", in(reg) (page >> 12) & ((1 << 44) - 1),
                    options(nostack, preserves_flags))
            };
            page += 4096;
        }
    }
    // SAFETY: barriers only.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Defines a function telling whether an EL1 access to an address translates now (an `AT`
/// instruction, then `PAR_EL1.F`), leaving `PAR_EL1` as it was: the exception handler asks
/// this in the middle of other code.
macro_rules! translates {
    ($(#[$doc:meta])* $name:ident, $at:literal) => {
        $(#[$doc])*
        pub(super) fn $name(address: u64) -> bool {
            let par: u64;
            // SAFETY: address translation only fills PAR_EL1, which is put back; it never
            // faults or touches memory.
            unsafe {
                asm!(
                    "mrs    {saved}, par_el1",
                    "isb",
                    concat!("at     ", $at, ", {address}"),
                    "isb",
                    "mrs    {par}, par_el1",
                    "msr    par_el1, {saved}",
                    address = in(reg) address,
                    saved = out(reg) _,
                    par = out(reg) par,
                    options(nostack, preserves_flags)
                )
            };
            par & 1 == 0
        }
    };
}

translates!(
    /// Whether an EL1 read of `address` translates now (`AT S1E1R`).
    translates_for_read,
    "s1e1r"
);

translates!(
    /// Whether an EL1 write to `address` translates now (`AT S1E1W`).
    translates_for_write,
    "s1e1w"
);

/// Invalidates the data cache lines of `[start, end)` to the point of coherency, so that data
/// written with the MMU (and so the caches) off is not shadowed by stale lines afterwards.
pub(super) fn invalidate_dcache(start: u64, end: u64) {
    for_each_dcache_line(start, end, |address| {
        // SAFETY: `dc ivac` on memory just written with the caches off discards only stale
        // copies; the memory itself holds the data that counts.
        unsafe { asm!("dc ivac, {}", in(reg) address, options(nostack, preserves_flags)) };
    });
}

/// Cleans the data cache lines of `[start, end)` to the point of coherency, so that a CPU
/// with its caches still off (a secondary CPU starting) reads what this one wrote.
pub(super) fn clean_dcache(start: u64, end: u64) {
    for_each_dcache_line(start, end, |address| {
        // SAFETY: `dc cvac` writes dirty lines back; the data stays as it is.
        unsafe { asm!("dc cvac, {}", in(reg) address, options(nostack, preserves_flags)) };
    });
}

/// Runs `op` on the address of every data cache line of `[start, end)`, then waits for the
/// maintenance to complete (`dsb sy`).
#[inline(always)]
fn for_each_dcache_line(start: u64, end: u64, op: impl Fn(u64)) {
    // Smallest line size the CPU reports (CTR_EL0.DminLine, log2 of words).
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut address = start & !(line - 1);
    while address < end {
        op(address);
        address += line;
    }
    // SAFETY: a barrier has no other effect.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Executes `brk #0`: a breakpoint exception, for the in-image test that proves exceptions
/// become test failures.
#[cfg(feature = "ktest")]
pub(super) fn breakpoint() {
    // SAFETY: `brk` only raises a synchronous exception, reported by the vectors.
    unsafe { asm!("brk #0", options(nomem, nostack)) };
}
