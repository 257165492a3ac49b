//! Probes of the binary entry, shared by the host tests (x86_64, entering the entry as
//! `syscall` would) and the in-image cases (through the real `syscall` / `svc #0`).
//!
//! Compiled for tests and the `ktest` feature only. The probes register three private
//! syscall numbers:
//!
//! - [`NOP`] returns 0 (the no-op of the benchmarks);
//! - [`CLOBBER`] scrambles every register a handler may (all caller-saved general registers
//!   and every vector register the ABI lets it use), as an SSE/NEON-heavy handler would;
//! - [`CAPTURE`] copies its own trap frame aside (for [`resume_captured`]) and returns 1.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::{Args, Errno, SyscallResult, TrapFrame};

/// Private number of the no-op handler.
pub const NOP: usize = 507;
/// Private number of the register-scrambling handler; it returns `args[0] ^ CLOBBER_XOR`.
pub const CLOBBER: usize = 508;
/// What [`CLOBBER`] XORs into its first argument to make its result.
pub const CLOBBER_XOR: usize = 0x0f0f_0f0f_5555_aaaa;
/// Private number of the frame-capturing handler.
pub const CAPTURE: usize = 506;
/// A private number nobody registers.
pub const UNREGISTERED: usize = 505;
/// Private number of the summing handler: the wrapping sum of the arguments, or `EBADF`
/// when the first one is 0.
pub const SUM: usize = 504;

/// Private number of the handler that returns the interrupt mask and flags it runs with
/// (x86_64: `RFLAGS`; aarch64: `DAIF`).
pub const FLAGS: usize = 511;

/// Returns the flags the handler runs with.
pub fn sys_flags(_args: &Args) -> SyscallResult {
    let flags: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads RFLAGS through the stack (push and pop of one word).
    unsafe {
        core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(preserves_flags))
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads DAIF.
    unsafe {
        core::arch::asm!("mrs {}, daif", out(reg) flags, options(nomem, nostack, preserves_flags))
    };
    Ok(flags)
}
crate::register!(number FLAGS => sys_flags);

/// The summing handler.
pub fn sys_sum(args: &Args) -> SyscallResult {
    if args[0] == 0 {
        return Err(Errno::EBADF);
    }
    Ok(args.iter().fold(0usize, |sum, a| sum.wrapping_add(*a)))
}
crate::register!(number SUM => sys_sum);

/// The no-op handler.
pub fn sys_nop(_args: &Args) -> SyscallResult {
    Ok(0)
}
crate::register!(number NOP => sys_nop);

/// Scrambles every register a handler may, then returns `args[0] ^ CLOBBER_XOR`.
pub fn sys_clobber(args: &Args) -> SyscallResult {
    scramble();
    Ok(args[0] ^ CLOBBER_XOR)
}
crate::register!(number CLOBBER => sys_clobber);

/// Whether AVX registers are usable (the OS enabled the AVX state in `XCR0`).
#[cfg(target_arch = "x86_64")]
pub fn avx_enabled() -> bool {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 27) == 0 || leaf1.ecx & (1 << 28) == 0 {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV with ecx = 0 is allowed.
    let xcr0 = unsafe { core::arch::x86_64::_xgetbv(0) };
    xcr0 & 0b110 == 0b110
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn scramble() {
    if avx_enabled() {
        // SAFETY: AVX is enabled; the upper halves of ymm0-15 are caller-saved (declared
        // through `clobber_abi`, invisible to soft-float code).
        unsafe {
            core::arch::asm!(
                "vpcmpeqd ymm0, ymm0, ymm0",
                "vpcmpeqd ymm1, ymm1, ymm1",
                "vpcmpeqd ymm2, ymm2, ymm2",
                "vpcmpeqd ymm3, ymm3, ymm3",
                "vpcmpeqd ymm4, ymm4, ymm4",
                "vpcmpeqd ymm5, ymm5, ymm5",
                "vpcmpeqd ymm6, ymm6, ymm6",
                "vpcmpeqd ymm7, ymm7, ymm7",
                "vpcmpeqd ymm8, ymm8, ymm8",
                "vpcmpeqd ymm9, ymm9, ymm9",
                "vpcmpeqd ymm10, ymm10, ymm10",
                "vpcmpeqd ymm11, ymm11, ymm11",
                "vpcmpeqd ymm12, ymm12, ymm12",
                "vpcmpeqd ymm13, ymm13, ymm13",
                "vpcmpeqd ymm14, ymm14, ymm14",
                "vpcmpeqd ymm15, ymm15, ymm15",
                clobber_abi("C"),
                options(nostack, nomem)
            )
        }
    }
    // SAFETY: writes only registers the C ABI lets a callee destroy (declared through
    // `clobber_abi`; on a soft-float target the compiler keeps nothing in xmm registers, so
    // writing them is invisible to it, as it is to a real SSE-using handler).
    unsafe {
        core::arch::asm!(
            "pcmpeqd xmm0, xmm0",
            "pcmpeqd xmm1, xmm1",
            "pcmpeqd xmm2, xmm2",
            "pcmpeqd xmm3, xmm3",
            "pcmpeqd xmm4, xmm4",
            "pcmpeqd xmm5, xmm5",
            "pcmpeqd xmm6, xmm6",
            "pcmpeqd xmm7, xmm7",
            "pcmpeqd xmm8, xmm8",
            "pcmpeqd xmm9, xmm9",
            "pcmpeqd xmm10, xmm10",
            "pcmpeqd xmm11, xmm11",
            "pcmpeqd xmm12, xmm12",
            "pcmpeqd xmm13, xmm13",
            "pcmpeqd xmm14, xmm14",
            "pcmpeqd xmm15, xmm15",
            "mov rax, -1",
            "mov rcx, -1",
            "mov rdx, -1",
            "mov rsi, -1",
            "mov rdi, -1",
            "mov r8, -1",
            "mov r9, -1",
            "mov r10, -1",
            "mov r11, -1",
            "std",
            "cld",
            clobber_abi("C"),
            options(nostack)
        )
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) fn scramble() {
    // SAFETY: writes only registers the C ABI lets a callee destroy (x0-x17, v0-v7,
    // v16-v31, NZCV), declared through `clobber_abi`.
    unsafe {
        core::arch::asm!(
            "movi v0.2d, #-1",
            "movi v1.2d, #-1",
            "movi v2.2d, #-1",
            "movi v3.2d, #-1",
            "movi v4.2d, #-1",
            "movi v5.2d, #-1",
            "movi v6.2d, #-1",
            "movi v7.2d, #-1",
            "movi v16.2d, #-1",
            "movi v17.2d, #-1",
            "movi v18.2d, #-1",
            "movi v19.2d, #-1",
            "movi v20.2d, #-1",
            "movi v21.2d, #-1",
            "movi v22.2d, #-1",
            "movi v23.2d, #-1",
            "movi v24.2d, #-1",
            "movi v25.2d, #-1",
            "movi v26.2d, #-1",
            "movi v27.2d, #-1",
            "movi v28.2d, #-1",
            "movi v29.2d, #-1",
            "movi v30.2d, #-1",
            "movi v31.2d, #-1",
            "mov x0, #-1",
            "mov x1, #-1",
            "mov x2, #-1",
            "mov x3, #-1",
            "mov x4, #-1",
            "mov x5, #-1",
            "mov x6, #-1",
            "mov x7, #-1",
            "mov x8, #-1",
            "mov x9, #-1",
            "mov x10, #-1",
            "mov x11, #-1",
            "mov x12, #-1",
            "mov x13, #-1",
            "mov x14, #-1",
            "mov x15, #-1",
            "mov x16, #-1",
            "mov x17, #-1",
            "mov x9, #1",
            "cmn x9, #1",
            clobber_abi("C"),
            options(nostack, nomem)
        )
    }
}

/// One captured frame, written by [`sys_capture`] and taken by [`resume_captured`].
struct Captured {
    full: AtomicBool,
    frame: UnsafeCell<Option<TrapFrame>>,
}

// SAFETY: `frame` is written only while `full` is false (then set with release) and read
// only after `full` was seen true (acquire) and cleared by the reader: one side at a time.
unsafe impl Sync for Captured {}

static CAPTURED: Captured = Captured {
    full: AtomicBool::new(false),
    frame: UnsafeCell::new(None),
};

/// Copies the trap frame of this call aside and returns 1; `EBUSY` if one is already
/// waiting, `ESRCH` for a direct call (no frame).
pub fn sys_capture(args: &Args) -> SyscallResult {
    let frame = crate::trap_frame(args).ok_or(Errno::ESRCH)?;
    if CAPTURED.full.load(Ordering::Acquire) {
        return Err(Errno::EBUSY);
    }
    // SAFETY: `full` is false: nobody reads the cell (see the `Sync` impl).
    unsafe { *CAPTURED.frame.get() = Some(*frame) };
    CAPTURED.full.store(true, Ordering::Release);
    Ok(1)
}
crate::register!(number CAPTURE => sys_capture);

/// Takes the frame [`sys_capture`] put aside, if any.
pub fn take_captured() -> Option<TrapFrame> {
    if !CAPTURED.full.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: `full` is true: the writer is done (see the `Sync` impl).
    let frame = unsafe { (*CAPTURED.frame.get()).take() };
    CAPTURED.full.store(false, Ordering::Release);
    frame
}

/// Takes the captured frame, makes it return 2 on the stack `new_sp`, and resumes it.
///
/// # Safety
///
/// A frame must have been captured by the probe in [`resume_probe`], whose code expects
/// exactly this.
pub unsafe extern "C" fn resume_captured(new_sp: usize) -> ! {
    let Some(mut frame) = take_captured() else {
        panic!("resume_captured: no frame captured");
    };
    frame.set_result(2);
    frame.set_sp(new_sp);
    // SAFETY: the frame comes from the probe's trapped call; its code continues on
    // `new_sp`, which the probe provided, and switches back to its own stack at once.
    unsafe { crate::resume_frame(&frame) }
}

/// The general-register pattern the probes load into register `i`.
pub const fn pattern(i: usize) -> usize {
    0xa5a5_0000_1234_0000 ^ (i << 40) ^ (i * 0x1111)
}

/// The vector-register pattern the probes load into vector register `i` (two halves).
pub const fn vector_pattern(i: usize) -> [u64; 2] {
    [
        0xc3c3_0000_0000_0000 ^ ((i as u64) << 8),
        0x3c3c_0000_0000_0000 ^ (i as u64),
    ]
}

/// The value the red-zone probe writes `i` words below the stack pointer (`i` in 1..=16).
pub const fn red_zone_pattern(i: usize) -> u64 {
    0x7e7e_0000_0000_0000 ^ (i as u64)
}

/// What the register probe saw after its trapped call.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Probe {
    /// Every general register after the call (x86_64 encoding order: rax rcx rdx rbx rsp rbp
    /// rsi rdi r8..r15; aarch64: x0..x30, then sp).
    pub gprs: [u64; 32],
    /// The stack pointer before the call.
    pub sp_before: u64,
    /// Vector registers before the call (the probe puts them back at its end).
    pub original: [[u64; 2]; 32],
    /// Patterns loaded into the vector registers.
    pub loaded: [[u64; 2]; 32],
    /// Vector registers after the call.
    pub vectors: [[u64; 2]; 32],
    /// The 16 words below the stack pointer after the call (`red[i - 1]` was `i` words
    /// below).
    pub red: [u64; 16],
}

impl Default for Probe {
    fn default() -> Self {
        let mut loaded = [[0; 2]; 32];
        for (i, v) in loaded.iter_mut().enumerate() {
            *v = vector_pattern(i);
        }
        Self {
            gprs: [0; 32],
            sp_before: 0,
            original: [[0; 2]; 32],
            loaded,
            vectors: [[0; 2]; 32],
            red: [0; 16],
        }
    }
}

/// Registers whose value a syscall may change (x86_64: rax = result, rcx and r11 = return
/// address and flags; aarch64: x0 = result).
#[cfg(target_arch = "x86_64")]
pub const CLOBBERED: &[usize] = &[0, 1, 11];
/// Registers whose value a syscall may change (x86_64: rax = result, rcx and r11 = return
/// address and flags; aarch64: x0 = result).
#[cfg(target_arch = "aarch64")]
pub const CLOBBERED: &[usize] = &[0];

/// Number of general registers the probe checks.
#[cfg(target_arch = "x86_64")]
pub const GPRS: usize = 16;
/// Number of general registers the probe checks.
#[cfg(target_arch = "aarch64")]
pub const GPRS: usize = 31;
/// Number of vector registers the probe checks.
#[cfg(target_arch = "x86_64")]
pub const VECTORS: usize = 16;
/// Number of vector registers the probe checks.
#[cfg(target_arch = "aarch64")]
pub const VECTORS: usize = 32;
/// Index of the syscall number register (x86_64 rax, aarch64 x8).
#[cfg(target_arch = "x86_64")]
const NUMBER_REG: usize = 0;
#[cfg(target_arch = "aarch64")]
const NUMBER_REG: usize = 8;
/// Index of the first argument register (x86_64 rdi, aarch64 x0).
#[cfg(target_arch = "x86_64")]
pub const ARG0_REG: usize = 7;
/// Index of the first argument register (x86_64 rdi, aarch64 x0).
#[cfg(target_arch = "aarch64")]
pub const ARG0_REG: usize = 0;

impl Probe {
    /// What went wrong, as a list of complaints; empty when the call behaved like Linux's.
    pub fn check(&self, expected_result: u64) -> ProbeReport {
        let mut report = ProbeReport::default();
        let result = self.gprs[0];
        if result != expected_result {
            report.result = Some(result);
        }
        for i in 0..GPRS {
            // The number register keeps the number, not a pattern (x86_64: rax, clobbered).
            if CLOBBERED.contains(&i) || i == SP_REG || i == NUMBER_REG {
                continue;
            }
            if self.gprs[i] != pattern(i) as u64 {
                report.gprs |= 1 << i;
            }
        }
        if self.gprs[SP_REG] != self.sp_before {
            report.sp = true;
        }
        for i in 0..VECTORS {
            if self.vectors[i] != self.loaded[i] {
                report.vectors |= 1 << i;
            }
        }
        for (i, &word) in self.red.iter().enumerate() {
            if word != red_zone_pattern(i + 1) {
                report.red_zone |= 1 << i;
            }
        }
        report
    }
}

#[cfg(target_arch = "x86_64")]
const SP_REG: usize = 4;
#[cfg(target_arch = "aarch64")]
const SP_REG: usize = 31;

/// The verdict of [`Probe::check`]: masks of the registers that changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// The result register, if it was not the expected value.
    pub result: Option<u64>,
    /// General registers (by index) that changed.
    pub gprs: u64,
    /// Whether the stack pointer changed.
    pub sp: bool,
    /// Vector registers that changed.
    pub vectors: u64,
    /// Red-zone words (bit `i`: `i + 1` words below the stack pointer) that changed.
    pub red_zone: u64,
}

impl ProbeReport {
    /// Whether nothing went wrong.
    pub fn ok(&self) -> bool {
        *self == Self::default()
    }
}

/// Loads [`pattern`]s into every general register (so the first argument is
/// `pattern(ARG0_REG)`) and [`vector_pattern`]s into every vector register, writes
/// [`red_zone_pattern`]s below the stack pointer, makes syscall `number` through the trap,
/// and records what every register and the red zone hold afterwards.
pub fn register_probe(number: usize) -> Probe {
    let mut probe = Probe::default();
    arch::probe(number, &mut probe);
    probe
}

/// The AVX registers around a trapped call (x86_64 with AVX enabled).
#[cfg(target_arch = "x86_64")]
#[repr(C, align(32))]
#[derive(Clone, Debug)]
pub struct AvxProbe {
    /// ymm0-15 before the probe (put back at its end).
    pub original: [[u64; 4]; 16],
    /// Patterns loaded before the call.
    pub loaded: [[u64; 4]; 16],
    /// ymm0-15 after the call.
    pub after: [[u64; 4]; 16],
}

/// Loads 256-bit patterns into ymm0-15, makes syscall `number` through the trap and records
/// ymm0-15 afterwards; `None` without AVX.
#[cfg(target_arch = "x86_64")]
pub fn avx_probe(number: usize) -> Option<AvxProbe> {
    if !avx_enabled() {
        return None;
    }
    let mut probe = AvxProbe {
        original: [[0; 4]; 16],
        loaded: [[0; 4]; 16],
        after: [[0; 4]; 16],
    };
    for (i, v) in probe.loaded.iter_mut().enumerate() {
        let [a, b] = vector_pattern(i);
        *v = [a, b, !a ^ 0x5555, !b ^ ((i as u64) << 20)];
    }
    arch::avx_probe(number, &mut probe);
    Some(probe)
}

/// Makes a trapped [`CAPTURE`] call, resumes the captured frame on `new_stack` (its top)
/// from inside the probe, and returns what the resumed code saw: (result, its stack
/// pointer, whether a callee-saved pattern survived).
///
/// # Safety
///
/// `new_stack_top` must be the 16-byte aligned top of at least 4 KiB of free, writable
/// memory.
pub unsafe fn resume_probe(new_stack_top: usize) -> (usize, usize, bool) {
    // SAFETY: forwarded.
    unsafe { arch::resume_probe(new_stack_top) }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::{Probe, pattern, red_zone_pattern};
    use core::mem::offset_of;

    /// Enters the syscall entry: the `syscall` instruction in an image; on the host, the
    /// same state `syscall` leaves (rcx = return address, r11 = flags with IF clear) and a
    /// jump, since the host's own `syscall` goes to Linux.
    #[cfg(target_os = "none")]
    macro_rules! trap {
        () => {
            "syscall /* not {entry} */"
        };
    }
    #[cfg(not(target_os = "none"))]
    macro_rules! trap {
        () => {
            "lea rcx, [rip + 77f]\n mov r11d, 0x2\n jmp {entry}\n 77:"
        };
    }

    pub(super) fn probe(number: usize, out: &mut Probe) {
        // SAFETY: the assembly saves and restores every callee-saved register it uses and
        // the vector registers (into `out.original`), declares the caller-saved ones as
        // clobbered, writes only `out` and the 128 bytes below the stack pointer (allowed:
        // no `nostack`), and the trapped call preserves the rest (that is what is probed).
        unsafe {
            core::arch::asm!(
                "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
                "push rdi",
                // Keep the vector registers of the caller; load the patterns.
                "movdqu [rdi + {orig} + 0], xmm0", "movdqu [rdi + {orig} + 16], xmm1",
                "movdqu [rdi + {orig} + 32], xmm2", "movdqu [rdi + {orig} + 48], xmm3",
                "movdqu [rdi + {orig} + 64], xmm4", "movdqu [rdi + {orig} + 80], xmm5",
                "movdqu [rdi + {orig} + 96], xmm6", "movdqu [rdi + {orig} + 112], xmm7",
                "movdqu [rdi + {orig} + 128], xmm8", "movdqu [rdi + {orig} + 144], xmm9",
                "movdqu [rdi + {orig} + 160], xmm10", "movdqu [rdi + {orig} + 176], xmm11",
                "movdqu [rdi + {orig} + 192], xmm12", "movdqu [rdi + {orig} + 208], xmm13",
                "movdqu [rdi + {orig} + 224], xmm14", "movdqu [rdi + {orig} + 240], xmm15",
                "movdqu xmm0, [rdi + {load} + 0]", "movdqu xmm1, [rdi + {load} + 16]",
                "movdqu xmm2, [rdi + {load} + 32]", "movdqu xmm3, [rdi + {load} + 48]",
                "movdqu xmm4, [rdi + {load} + 64]", "movdqu xmm5, [rdi + {load} + 80]",
                "movdqu xmm6, [rdi + {load} + 96]", "movdqu xmm7, [rdi + {load} + 112]",
                "movdqu xmm8, [rdi + {load} + 128]", "movdqu xmm9, [rdi + {load} + 144]",
                "movdqu xmm10, [rdi + {load} + 160]", "movdqu xmm11, [rdi + {load} + 176]",
                "movdqu xmm12, [rdi + {load} + 192]", "movdqu xmm13, [rdi + {load} + 208]",
                "movdqu xmm14, [rdi + {load} + 224]", "movdqu xmm15, [rdi + {load} + 240]",
                "mov [rdi + {spb}], rsp",
                // The red zone: 16 words below rsp.
                "mov rcx, {rz}",
                "mov [rsp - 8], rcx", "xor rcx, 3",
                "mov [rsp - 16], rcx", "xor rcx, 1",
                "mov [rsp - 24], rcx", "xor rcx, 7",
                "mov [rsp - 32], rcx", "xor rcx, 1",
                "mov [rsp - 40], rcx", "xor rcx, 3",
                "mov [rsp - 48], rcx", "xor rcx, 1",
                "mov [rsp - 56], rcx", "xor rcx, 15",
                "mov [rsp - 64], rcx", "xor rcx, 1",
                "mov [rsp - 72], rcx", "xor rcx, 3",
                "mov [rsp - 80], rcx", "xor rcx, 1",
                "mov [rsp - 88], rcx", "xor rcx, 7",
                "mov [rsp - 96], rcx", "xor rcx, 1",
                "mov [rsp - 104], rcx", "xor rcx, 3",
                "mov [rsp - 112], rcx", "xor rcx, 1",
                "mov [rsp - 120], rcx", "xor rcx, 31",
                "mov [rsp - 128], rcx",
                // General registers (rax = the number).
                "mov rax, {number}",
                "movabs rbx, {p3}", "movabs rdx, {p2}", "movabs rbp, {p5}",
                "movabs rsi, {p6}", "movabs rdi, {p7}", "movabs r8, {p8}", "movabs r9, {p9}",
                "movabs r10, {p10}", "movabs r12, {p12}", "movabs r13, {p13}",
                "movabs r14, {p14}", "movabs r15, {p15}",
                trap!(),
                // rax = result; [rsp] = out.
                "xchg rax, [rsp]",
                "mov [rax + 8], rcx", "mov [rax + 16], rdx", "mov [rax + 24], rbx",
                "mov [rax + 32], rsp", "mov [rax + 40], rbp", "mov [rax + 48], rsi",
                "mov [rax + 56], rdi", "mov [rax + 64], r8", "mov [rax + 72], r9",
                "mov [rax + 80], r10", "mov [rax + 88], r11", "mov [rax + 96], r12",
                "mov [rax + 104], r13", "mov [rax + 112], r14", "mov [rax + 120], r15",
                "mov rcx, [rsp]", "mov [rax], rcx",
                "movdqu [rax + {vec} + 0], xmm0", "movdqu [rax + {vec} + 16], xmm1",
                "movdqu [rax + {vec} + 32], xmm2", "movdqu [rax + {vec} + 48], xmm3",
                "movdqu [rax + {vec} + 64], xmm4", "movdqu [rax + {vec} + 80], xmm5",
                "movdqu [rax + {vec} + 96], xmm6", "movdqu [rax + {vec} + 112], xmm7",
                "movdqu [rax + {vec} + 128], xmm8", "movdqu [rax + {vec} + 144], xmm9",
                "movdqu [rax + {vec} + 160], xmm10", "movdqu [rax + {vec} + 176], xmm11",
                "movdqu [rax + {vec} + 192], xmm12", "movdqu [rax + {vec} + 208], xmm13",
                "movdqu [rax + {vec} + 224], xmm14", "movdqu [rax + {vec} + 240], xmm15",
                // The red zone is below the rsp of the call, which is still rsp.
                "mov rsi, rsp",
                "xor ecx, ecx",
                "2:",
                "inc rcx",
                "neg rcx",
                "mov rdx, [rsi + rcx * 8]",
                "neg rcx",
                "mov [rax + {red} + rcx * 8 - 8], rdx",
                "cmp rcx, 16",
                "jb 2b",
                "movdqu xmm0, [rax + {orig} + 0]", "movdqu xmm1, [rax + {orig} + 16]",
                "movdqu xmm2, [rax + {orig} + 32]", "movdqu xmm3, [rax + {orig} + 48]",
                "movdqu xmm4, [rax + {orig} + 64]", "movdqu xmm5, [rax + {orig} + 80]",
                "movdqu xmm6, [rax + {orig} + 96]", "movdqu xmm7, [rax + {orig} + 112]",
                "movdqu xmm8, [rax + {orig} + 128]", "movdqu xmm9, [rax + {orig} + 144]",
                "movdqu xmm10, [rax + {orig} + 160]", "movdqu xmm11, [rax + {orig} + 176]",
                "movdqu xmm12, [rax + {orig} + 192]", "movdqu xmm13, [rax + {orig} + 208]",
                "movdqu xmm14, [rax + {orig} + 224]", "movdqu xmm15, [rax + {orig} + 240]",
                "pop rax",
                "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
                number = in(reg) number,
                rz = const red_zone_pattern(1),
                p2 = const pattern(2), p3 = const pattern(3), p5 = const pattern(5),
                p6 = const pattern(6), p7 = const pattern(7), p8 = const pattern(8),
                p9 = const pattern(9), p10 = const pattern(10), p12 = const pattern(12),
                p13 = const pattern(13), p14 = const pattern(14), p15 = const pattern(15),
                orig = const offset_of!(Probe, original),
                load = const offset_of!(Probe, loaded),
                vec = const offset_of!(Probe, vectors),
                red = const offset_of!(Probe, red),
                spb = const offset_of!(Probe, sp_before),
                entry = sym crate::arch::x86_64_entry,
                inout("rdi") out as *mut Probe => _,
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            )
        }
    }

    pub(super) fn avx_probe(number: usize, out: &mut super::AvxProbe) {
        // SAFETY: AVX is enabled (checked by the caller); ymm0-15 are saved into
        // `out.original` first and put back at the end; the general registers the trap may
        // change are declared; only `out` is written.
        unsafe {
            core::arch::asm!(
                "vmovdqu [rdi + {orig} + 0], ymm0", "vmovdqu [rdi + {orig} + 32], ymm1",
                "vmovdqu [rdi + {orig} + 64], ymm2", "vmovdqu [rdi + {orig} + 96], ymm3",
                "vmovdqu [rdi + {orig} + 128], ymm4", "vmovdqu [rdi + {orig} + 160], ymm5",
                "vmovdqu [rdi + {orig} + 192], ymm6", "vmovdqu [rdi + {orig} + 224], ymm7",
                "vmovdqu [rdi + {orig} + 256], ymm8", "vmovdqu [rdi + {orig} + 288], ymm9",
                "vmovdqu [rdi + {orig} + 320], ymm10", "vmovdqu [rdi + {orig} + 352], ymm11",
                "vmovdqu [rdi + {orig} + 384], ymm12", "vmovdqu [rdi + {orig} + 416], ymm13",
                "vmovdqu [rdi + {orig} + 448], ymm14", "vmovdqu [rdi + {orig} + 480], ymm15",
                "vmovdqu ymm0, [rdi + {load} + 0]", "vmovdqu ymm1, [rdi + {load} + 32]",
                "vmovdqu ymm2, [rdi + {load} + 64]", "vmovdqu ymm3, [rdi + {load} + 96]",
                "vmovdqu ymm4, [rdi + {load} + 128]", "vmovdqu ymm5, [rdi + {load} + 160]",
                "vmovdqu ymm6, [rdi + {load} + 192]", "vmovdqu ymm7, [rdi + {load} + 224]",
                "vmovdqu ymm8, [rdi + {load} + 256]", "vmovdqu ymm9, [rdi + {load} + 288]",
                "vmovdqu ymm10, [rdi + {load} + 320]", "vmovdqu ymm11, [rdi + {load} + 352]",
                "vmovdqu ymm12, [rdi + {load} + 384]", "vmovdqu ymm13, [rdi + {load} + 416]",
                "vmovdqu ymm14, [rdi + {load} + 448]", "vmovdqu ymm15, [rdi + {load} + 480]",
                trap!(),
                "vmovdqu [rdi + {after} + 0], ymm0", "vmovdqu [rdi + {after} + 32], ymm1",
                "vmovdqu [rdi + {after} + 64], ymm2", "vmovdqu [rdi + {after} + 96], ymm3",
                "vmovdqu [rdi + {after} + 128], ymm4", "vmovdqu [rdi + {after} + 160], ymm5",
                "vmovdqu [rdi + {after} + 192], ymm6", "vmovdqu [rdi + {after} + 224], ymm7",
                "vmovdqu [rdi + {after} + 256], ymm8", "vmovdqu [rdi + {after} + 288], ymm9",
                "vmovdqu [rdi + {after} + 320], ymm10", "vmovdqu [rdi + {after} + 352], ymm11",
                "vmovdqu [rdi + {after} + 384], ymm12", "vmovdqu [rdi + {after} + 416], ymm13",
                "vmovdqu [rdi + {after} + 448], ymm14", "vmovdqu [rdi + {after} + 480], ymm15",
                "vmovdqu ymm0, [rdi + {orig} + 0]", "vmovdqu ymm1, [rdi + {orig} + 32]",
                "vmovdqu ymm2, [rdi + {orig} + 64]", "vmovdqu ymm3, [rdi + {orig} + 96]",
                "vmovdqu ymm4, [rdi + {orig} + 128]", "vmovdqu ymm5, [rdi + {orig} + 160]",
                "vmovdqu ymm6, [rdi + {orig} + 192]", "vmovdqu ymm7, [rdi + {orig} + 224]",
                "vmovdqu ymm8, [rdi + {orig} + 256]", "vmovdqu ymm9, [rdi + {orig} + 288]",
                "vmovdqu ymm10, [rdi + {orig} + 320]", "vmovdqu ymm11, [rdi + {orig} + 352]",
                "vmovdqu ymm12, [rdi + {orig} + 384]", "vmovdqu ymm13, [rdi + {orig} + 416]",
                "vmovdqu ymm14, [rdi + {orig} + 448]", "vmovdqu ymm15, [rdi + {orig} + 480]",
                orig = const offset_of!(super::AvxProbe, original),
                load = const offset_of!(super::AvxProbe, loaded),
                after = const offset_of!(super::AvxProbe, after),
                entry = sym crate::arch::x86_64_entry,
                in("rdi") out as *mut super::AvxProbe,
                inout("rax") number => _,
                out("rcx") _, out("r11") _,
            )
        }
    }

    pub(super) unsafe fn resume_probe(new_stack_top: usize) -> (usize, usize, bool) {
        let result: usize;
        let child_sp: usize;
        let kept: usize;
        // SAFETY: callee-saved registers are pushed and popped; the captured frame is
        // resumed from inside this block on the caller-provided stack, where the resumed
        // code only reads its stack pointer and switches back to this block's stack (kept
        // in r12, which the trap preserves and the frame carries).
        unsafe {
            core::arch::asm!(
                "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
                "mov r12, rsp",
                "movabs rbx, {p3}",
                "mov rax, {capture}",
                trap!(),
                "cmp rax, 1",
                "jne 3f",
                // First return: resume the frame on the new stack (never returns).
                "call {resume}",
                "ud2",
                "3:",
                "mov rsi, rsp",
                "mov rsp, r12",
                "mov rdx, rbx",
                "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
                p3 = const pattern(3),
                capture = const super::CAPTURE,
                resume = sym super::resume_captured,
                entry = sym crate::arch::x86_64_entry,
                inout("rdi") new_stack_top => _,
                out("rax") result, out("rsi") child_sp, out("rdx") kept,
                out("rcx") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                clobber_abi("C"),
            )
        }
        (result, child_sp, kept == pattern(3))
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::{Probe, pattern, red_zone_pattern};
    use core::mem::offset_of;

    pub(super) fn probe(number: usize, out: &mut Probe) {
        // SAFETY: the assembly saves and restores the callee-saved registers (x19-x30) and
        // every vector register (into `out.original`) and TPIDR_EL1 (its scratch), declares
        // the caller-saved ones clobbered, writes only `out`, its own stack space and the
        // 128 bytes below it; the trapped call preserves the rest (what is probed).
        unsafe {
            core::arch::asm!(
                "sub sp, sp, #128",
                "stp x19, x20, [sp, #0]", "stp x21, x22, [sp, #16]",
                "stp x23, x24, [sp, #32]", "stp x25, x26, [sp, #48]",
                "stp x27, x28, [sp, #64]", "stp x29, x30, [sp, #80]",
                "mrs x9, tpidr_el1",
                "stp x0, x9, [sp, #96]",
                "str x18, [sp, #112]",
                "add x9, x0, #{orig}",
                "stp q0, q1, [x9, #0]", "stp q2, q3, [x9, #32]",
                "stp q4, q5, [x9, #64]", "stp q6, q7, [x9, #96]",
                "stp q8, q9, [x9, #128]", "stp q10, q11, [x9, #160]",
                "stp q12, q13, [x9, #192]", "stp q14, q15, [x9, #224]",
                "stp q16, q17, [x9, #256]", "stp q18, q19, [x9, #288]",
                "stp q20, q21, [x9, #320]", "stp q22, q23, [x9, #352]",
                "stp q24, q25, [x9, #384]", "stp q26, q27, [x9, #416]",
                "stp q28, q29, [x9, #448]", "stp q30, q31, [x9, #480]",
                "add x9, x0, #{load}",
                "ldp q0, q1, [x9, #0]", "ldp q2, q3, [x9, #32]",
                "ldp q4, q5, [x9, #64]", "ldp q6, q7, [x9, #96]",
                "ldp q8, q9, [x9, #128]", "ldp q10, q11, [x9, #160]",
                "ldp q12, q13, [x9, #192]", "ldp q14, q15, [x9, #224]",
                "ldp q16, q17, [x9, #256]", "ldp q18, q19, [x9, #288]",
                "ldp q20, q21, [x9, #320]", "ldp q22, q23, [x9, #352]",
                "ldp q24, q25, [x9, #384]", "ldp q26, q27, [x9, #416]",
                "ldp q28, q29, [x9, #448]", "ldp q30, q31, [x9, #480]",
                "mov x9, sp",
                "str x9, [x0, #{spb}]",
                // The red zone: 16 words below sp.
                "ldr x10, ={rz}",
                "mov x11, #1",
                "2:",
                "eor x12, x10, x11",
                "neg x13, x11",
                "str x12, [x9, x13, lsl #3]",
                "add x11, x11, #1",
                "cmp x11, #16",
                "b.ls 2b",
                "mov x8, {number}",
                "ldr x0, ={p0}", "ldr x1, ={p1}", "ldr x2, ={p2}", "ldr x3, ={p3}",
                "ldr x4, ={p4}", "ldr x5, ={p5}", "ldr x6, ={p6}", "ldr x7, ={p7}",
                "ldr x9, ={p9}", "ldr x10, ={p10}", "ldr x11, ={p11}",
                "ldr x12, ={p12}", "ldr x13, ={p13}", "ldr x14, ={p14}", "ldr x15, ={p15}",
                "ldr x16, ={p16}", "ldr x17, ={p17}", "ldr x18, ={p18}", "ldr x19, ={p19}",
                "ldr x20, ={p20}", "ldr x21, ={p21}", "ldr x22, ={p22}", "ldr x23, ={p23}",
                "ldr x24, ={p24}", "ldr x25, ={p25}", "ldr x26, ={p26}", "ldr x27, ={p27}",
                "ldr x28, ={p28}", "ldr x29, ={p29}", "ldr x30, ={p30}",
                "b 3f",
                ".ltorg",
                "3:",
                "svc #0",
                "msr tpidr_el1, x0",
                "ldr x0, [sp, #96]",
                "stp x2, x3, [x0, #16]", "stp x4, x5, [x0, #32]", "stp x6, x7, [x0, #48]",
                "stp x8, x9, [x0, #64]", "stp x10, x11, [x0, #80]", "stp x12, x13, [x0, #96]",
                "stp x14, x15, [x0, #112]", "stp x16, x17, [x0, #128]",
                "stp x18, x19, [x0, #144]", "stp x20, x21, [x0, #160]",
                "stp x22, x23, [x0, #176]", "stp x24, x25, [x0, #192]",
                "stp x26, x27, [x0, #208]", "stp x28, x29, [x0, #224]",
                "mov x9, sp",
                "stp x30, x9, [x0, #240]",
                "mrs x9, tpidr_el1",
                "stp x9, x1, [x0, #0]",
                "add x9, x0, #{vec}",
                "stp q0, q1, [x9, #0]", "stp q2, q3, [x9, #32]",
                "stp q4, q5, [x9, #64]", "stp q6, q7, [x9, #96]",
                "stp q8, q9, [x9, #128]", "stp q10, q11, [x9, #160]",
                "stp q12, q13, [x9, #192]", "stp q14, q15, [x9, #224]",
                "stp q16, q17, [x9, #256]", "stp q18, q19, [x9, #288]",
                "stp q20, q21, [x9, #320]", "stp q22, q23, [x9, #352]",
                "stp q24, q25, [x9, #384]", "stp q26, q27, [x9, #416]",
                "stp q28, q29, [x9, #448]", "stp q30, q31, [x9, #480]",
                "mov x9, sp",
                "add x10, x0, #{red}",
                "mov x11, #1",
                "4:",
                "neg x13, x11",
                "ldr x12, [x9, x13, lsl #3]",
                "sub x13, x11, #1",
                "str x12, [x10, x13, lsl #3]",
                "add x11, x11, #1",
                "cmp x11, #16",
                "b.ls 4b",
                "add x9, x0, #{orig}",
                "ldp q0, q1, [x9, #0]", "ldp q2, q3, [x9, #32]",
                "ldp q4, q5, [x9, #64]", "ldp q6, q7, [x9, #96]",
                "ldp q8, q9, [x9, #128]", "ldp q10, q11, [x9, #160]",
                "ldp q12, q13, [x9, #192]", "ldp q14, q15, [x9, #224]",
                "ldp q16, q17, [x9, #256]", "ldp q18, q19, [x9, #288]",
                "ldp q20, q21, [x9, #320]", "ldp q22, q23, [x9, #352]",
                "ldp q24, q25, [x9, #384]", "ldp q26, q27, [x9, #416]",
                "ldp q28, q29, [x9, #448]", "ldp q30, q31, [x9, #480]",
                "ldr x9, [sp, #104]",
                "msr tpidr_el1, x9",
                "ldp x19, x20, [sp, #0]", "ldp x21, x22, [sp, #16]",
                "ldp x23, x24, [sp, #32]", "ldp x25, x26, [sp, #48]",
                "ldp x27, x28, [sp, #64]", "ldp x29, x30, [sp, #80]",
                "ldr x18, [sp, #112]",
                "add sp, sp, #128",
                number = in(reg) number,
                rz = const red_zone_pattern(0),
                p0 = const pattern(0), p1 = const pattern(1), p2 = const pattern(2),
                p3 = const pattern(3), p4 = const pattern(4), p5 = const pattern(5),
                p6 = const pattern(6), p7 = const pattern(7), p9 = const pattern(9),
                p10 = const pattern(10), p11 = const pattern(11), p12 = const pattern(12),
                p13 = const pattern(13), p14 = const pattern(14), p15 = const pattern(15),
                p16 = const pattern(16), p17 = const pattern(17), p18 = const pattern(18),
                p19 = const pattern(19), p20 = const pattern(20), p21 = const pattern(21),
                p22 = const pattern(22), p23 = const pattern(23), p24 = const pattern(24),
                p25 = const pattern(25), p26 = const pattern(26), p27 = const pattern(27),
                p28 = const pattern(28), p29 = const pattern(29), p30 = const pattern(30),
                orig = const offset_of!(Probe, original),
                load = const offset_of!(Probe, loaded),
                vec = const offset_of!(Probe, vectors),
                red = const offset_of!(Probe, red),
                spb = const offset_of!(Probe, sp_before),
                inout("x0") out as *mut Probe => _,
                out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
                out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
                out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
            )
        }
    }

    pub(super) unsafe fn resume_probe(new_stack_top: usize) -> (usize, usize, bool) {
        let result: usize;
        let child_sp: usize;
        let kept: usize;
        // SAFETY: callee-saved registers are saved and restored; the captured frame is
        // resumed from inside this block on the caller-provided stack, where the resumed
        // code only reads its stack pointer and switches back to this block's stack (kept
        // in x19, which the trap preserves and the frame carries).
        unsafe {
            core::arch::asm!(
                "sub sp, sp, #96",
                "stp x19, x20, [sp, #0]", "stp x21, x22, [sp, #16]",
                "stp x23, x24, [sp, #32]", "stp x25, x26, [sp, #48]",
                "stp x27, x28, [sp, #64]", "stp x29, x30, [sp, #80]",
                "mov x19, sp",
                "mov x20, x0",
                "ldr x21, ={p21}",
                "mov x8, #{capture}",
                "svc #0",
                "cmp x0, #1",
                "b.ne 3f",
                "mov x0, x20",
                "bl {resume}",
                "brk #1",
                ".ltorg",
                "3:",
                "mov x1, sp",
                "mov sp, x19",
                "mov x2, x21",
                "ldp x19, x20, [sp, #0]", "ldp x21, x22, [sp, #16]",
                "ldp x23, x24, [sp, #32]", "ldp x25, x26, [sp, #48]",
                "ldp x27, x28, [sp, #64]", "ldp x29, x30, [sp, #80]",
                "add sp, sp, #96",
                p21 = const pattern(21),
                capture = const super::CAPTURE,
                resume = sym super::resume_captured,
                inout("x0") new_stack_top => result,
                out("x1") child_sp, out("x2") kept,
                clobber_abi("C"),
            )
        }
        (result, child_sp, kept == pattern(21))
    }
}

/// The x86_64 entry in a host process: the probes jump to it with the state `syscall`
/// leaves, so the save/restore code, the frame and the resume path run here exactly as in
/// an image (only `cli`/`sti` are left out at CPL 3).
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::vec;

    use super::*;

    fn with_both_state_methods(test: impl Fn()) {
        let _serial = crate::TRAP_LOCK.lock();
        // XSAVE (if the host has it) and FXSAVE.
        let xsave = crate::arch::detect_extended_state();
        test();
        if xsave != 0 {
            crate::arch::set_extended_state_mask(0);
            test();
            crate::arch::set_extended_state_mask(xsave);
        }
    }

    #[test]
    fn clobbering_handler_changes_nothing_the_caller_sees() {
        with_both_state_methods(|| {
            let probe = register_probe(CLOBBER);
            let expected = (pattern(ARG0_REG) ^ CLOBBER_XOR) as u64;
            let report = probe.check(expected);
            assert!(report.ok(), "{report:#x?}\n{probe:#x?}");
        });
    }

    #[test]
    fn nop_and_unknown_through_the_entry() {
        with_both_state_methods(|| {
            assert!(register_probe(NOP).check(0).ok());
            let report = register_probe(UNREGISTERED).check(-38i64 as u64);
            assert!(report.ok(), "{report:x?}");
        });
    }

    #[test]
    fn the_probe_detects_a_broken_register() {
        // The check itself must fail on a mismatch (a probe that cannot fail proves nothing).
        let mut probe = register_probe(NOP);
        probe.gprs[3] ^= 1;
        probe.vectors[9][1] ^= 1;
        probe.red[15] ^= 1;
        let report = probe.check(0);
        assert_eq!(report.gprs, 1 << 3);
        assert_eq!(report.vectors, 1 << 9);
        assert_eq!(report.red_zone, 1 << 15);
        assert_eq!(probe.check(1).result, Some(0));
    }

    #[test]
    fn resumed_frame_returns_on_the_new_stack_with_the_parents_registers() {
        with_both_state_methods(|| {
            let mut stack = vec![0u128; 1024];
            let top = stack.as_mut_ptr_range().end as usize;
            // SAFETY: 16 KiB of free, aligned memory.
            let (result, child_sp, kept) = unsafe { resume_probe(top) };
            assert_eq!(result, 2, "the resumed call returns what the frame says");
            assert_eq!(child_sp, top, "on the new stack");
            assert!(kept, "with the parent's callee-saved registers");
            drop(stack);
        });
    }

    #[test]
    fn avx_upper_halves_survive_with_xsave() {
        let _serial = crate::TRAP_LOCK.lock();
        crate::arch::detect_extended_state();
        // Without AVX on the host there is nothing to check.
        if let Some(probe) = avx_probe(CLOBBER) {
            assert_eq!(probe.after, probe.loaded);
            // Saving only x87 | SSE loses the upper halves: the probe can tell.
            let full = crate::arch::detect_extended_state();
            crate::arch::set_extended_state_mask(0b011);
            let lost = avx_probe(CLOBBER);
            crate::arch::set_extended_state_mask(full);
            let lost = lost.expect("AVX still enabled");
            assert_ne!(lost.after, lost.loaded);
            for (after, loaded) in lost.after.iter().zip(&lost.loaded) {
                assert_eq!(
                    after[..2],
                    loaded[..2],
                    "the low halves are saved by SSE state"
                );
            }
        }
    }

    #[test]
    fn capture_without_a_trap_is_esrch() {
        assert_eq!(sys_capture(&[0; 6]), Err(Errno::ESRCH));
    }
}
