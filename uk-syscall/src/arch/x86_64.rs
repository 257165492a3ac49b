//! x86_64: the frame the `syscall` entry saves, the entry itself, the return path that
//! [`resume_frame`] shares, and the CPU setup (`EFER.SCE`, `STAR`, `LSTAR`, `SFMASK`).
//!
//! # Entry
//!
//! `syscall` at CPL 0 loads `RIP` from `LSTAR`, the return address into `rcx`, `RFLAGS` into
//! `r11`, masks `RFLAGS` with `SFMASK` (so `IF`, `TF`, `DF`, `AC` and `NT` are clear) and
//! leaves `rsp` alone. The entry:
//!
//! 1. parks `rcx` just below the caller's 128-byte red zone, keeps the caller's `rsp` in
//!    `rcx`, and places a 64-byte aligned [`TrapFrame`] below that, on the caller's own
//!    stack: the red zone is never written, and a handler that blocks keeps its frame on its
//!    own thread's stack (a shared per-CPU stack would be overwritten by the next thread's
//!    call);
//! 2. saves every general register, then the x87/SSE/AVX state with `XSAVE` (or `FXSAVE`
//!    when the OS did not enable XSAVE);
//! 3. sets `IF` as the caller had it and calls [`crate::trap`]'s handler, which dispatches
//!    through the table and writes the result into the frame's `rax`;
//! 4. restores (interrupts off): the extended state, every register, `rcx` = return
//!    address, `r11` = `RFLAGS` (what Linux leaves there), then `popfq` from the frame
//!    (rflags back, `IF` included), `pop rsp` (the caller's stack) and `jmp rcx`. `sysret`
//!    cannot be used: it always returns to CPL 3.
//!
//! Between `popfq` and `jmp rcx` an interrupt may be taken: it lands first on the frame
//! (below `rsp`, dead by then), then, after `pop rsp`, on the caller's stack exactly as it
//! would one instruction later in the caller's own code.

use core::arch::global_asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::Args;

/// Bytes of the extended-state area: the XSAVE standard format up to the AVX component
/// (legacy 512, header 64, AVX upper halves 256), the x87 | SSE | AVX state the boards
/// enable. `FXSAVE` uses the first 512.
const EXT_SIZE: usize = 832;

/// XSAVE components saved: x87, SSE, AVX (the `XCR0` bits the boards enable).
const SAVED_COMPONENTS: u64 = 0b111;

/// The registers a trapped `syscall` saved, and what the caller will get back.
///
/// `rcx` and `r11` have no slot: the instruction overwrites them with the return address
/// ([`TrapFrame::rip`]) and the flags ([`TrapFrame::rflags`]), and Linux returns with those
/// values in them, as this entry does.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct TrapFrame {
    /// The x87/SSE/AVX state (`XSAVE` standard format, or `FXSAVE`).
    ext: [u8; EXT_SIZE],
    /// The argument registers in Linux's order: `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`.
    pub args: Args,
    /// `rax`: the syscall number at the trap, the result on return.
    pub rax: usize,
    /// `rbx`.
    pub rbx: usize,
    /// `rbp`.
    pub rbp: usize,
    /// `r12`.
    pub r12: usize,
    /// `r13`.
    pub r13: usize,
    /// `r14`.
    pub r14: usize,
    /// `r15`.
    pub r15: usize,
    /// The return address (the caller's `rcx` after `syscall`).
    pub rip: usize,
    /// The caller's `RFLAGS` (its `r11` after `syscall`).
    pub rflags: usize,
    /// The caller's stack pointer. Must directly follow `rflags` (`popfq; pop rsp`).
    pub rsp: usize,
}

const _: () = {
    assert!(offset_of!(TrapFrame, rsp) == offset_of!(TrapFrame, rflags) + 8);
    assert!(offset_of!(TrapFrame, ext) == 0);
    assert!(core::mem::size_of::<TrapFrame>() == EXT_SIZE + 16 * 8);
    assert!(core::mem::size_of::<TrapFrame>() % 64 == 0);
};

impl TrapFrame {
    /// Byte offset of [`TrapFrame::args`], for [`crate::trap_frame`].
    pub(crate) const ARGS_OFFSET: usize = offset_of!(TrapFrame, args);

    /// The syscall number (`rax` at the trap).
    pub fn number(&self) -> usize {
        self.rax
    }

    /// The six arguments.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The value the caller finds in `rax` on return.
    pub fn result(&self) -> usize {
        self.rax
    }

    /// Sets the value the caller finds in `rax` on return.
    pub fn set_result(&mut self, value: usize) {
        self.rax = value;
    }

    /// The caller's stack pointer.
    pub fn sp(&self) -> usize {
        self.rsp
    }

    /// Sets the stack pointer the call returns with (a new thread's stack).
    pub fn set_sp(&mut self, sp: usize) {
        self.rsp = sp;
    }

    /// Where the call returns to (the instruction after `syscall`).
    pub fn pc(&self) -> usize {
        self.rip
    }

    /// Sets where the call returns to.
    pub fn set_pc(&mut self, pc: usize) {
        self.rip = pc;
    }

    #[cfg(test)]
    pub(crate) fn set_number(&mut self, number: usize) {
        self.rax = number;
    }

    /// A frame of zeros (tests of the dispatch path only: resuming it would load an
    /// all-zero `MXCSR` under `FXSAVE`).
    #[cfg(test)]
    pub(crate) fn zeroed() -> Self {
        Self {
            ext: [0; EXT_SIZE],
            args: [0; 6],
            rax: 0,
            rbx: 0,
            rbp: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
            rip: 0,
            rflags: 0,
            rsp: 0,
        }
    }
}

impl core::fmt::Debug for TrapFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrapFrame")
            .field("rax", &format_args!("{:#x}", self.rax))
            .field("args", &format_args!("{:#x?}", self.args))
            .field("rbx", &format_args!("{:#x}", self.rbx))
            .field("rbp", &format_args!("{:#x}", self.rbp))
            .field("r12", &format_args!("{:#x}", self.r12))
            .field("r13", &format_args!("{:#x}", self.r13))
            .field("r14", &format_args!("{:#x}", self.r14))
            .field("r15", &format_args!("{:#x}", self.r15))
            .field("rip", &format_args!("{:#x}", self.rip))
            .field("rflags", &format_args!("{:#x}", self.rflags))
            .field("rsp", &format_args!("{:#x}", self.rsp))
            .finish_non_exhaustive()
    }
}

/// `XSAVE` requested-feature bitmap, or 0 for `FXSAVE`: chosen by [`detect_extended_state`].
/// The entry reads it; until it is set, `FXSAVE` is used, which every x86_64 CPU has.
static XSAVE_MASK: AtomicU32 = AtomicU32::new(0);

/// Chooses `XSAVE` (x87 | SSE | AVX as far as `XCR0` enables them) when the OS enabled it
/// (`CPUID.1:ECX.OSXSAVE`), else `FXSAVE`. Works at any privilege level.
pub(crate) fn detect_extended_state() -> u32 {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    let mask = if leaf1.ecx & (1 << 27) != 0 {
        // SAFETY: OSXSAVE is set, so XGETBV with ecx = 0 is allowed at any CPL.
        let xcr0 = unsafe { core::arch::x86_64::_xgetbv(0) };
        (xcr0 & SAVED_COMPONENTS) as u32
    } else {
        0
    };
    XSAVE_MASK.store(mask, Ordering::Relaxed);
    mask
}

/// Forces the extended-state method (0 = `FXSAVE`), for the host tests of both paths.
#[cfg(test)]
pub(crate) fn set_extended_state_mask(mask: u32) {
    XSAVE_MASK.store(mask, Ordering::Relaxed);
}

/// Whether the assembly below runs at CPL 0 (the images) or in a host test process, where
/// `cli`/`sti` would fault and are left out (the host tests enter with `IF` clear in `r11`).
const KERNEL: usize = cfg!(target_os = "none") as usize;

global_asm!(
    r#"
    .pushsection .text.uk_syscall, "ax", @progbits
    .balign 16
    .global uk_syscall_entry
    .type uk_syscall_entry, @function
uk_syscall_entry:
    mov     [rsp - 136], rcx
    mov     rcx, rsp
    lea     rsp, [rsp - 136]
    and     rsp, -64
    sub     rsp, {size}
    mov     [rsp + {rsp_}], rcx
    mov     rcx, [rcx - 136]
    mov     [rsp + {rip}], rcx
    mov     [rsp + {rflags}], r11
    mov     [rsp + {args}], rdi
    mov     [rsp + {args} + 8], rsi
    mov     [rsp + {args} + 16], rdx
    mov     [rsp + {args} + 24], r10
    mov     [rsp + {args} + 32], r8
    mov     [rsp + {args} + 40], r9
    mov     [rsp + {rax}], rax
    mov     [rsp + {rbx}], rbx
    mov     [rsp + {rbp}], rbp
    mov     [rsp + {r12}], r12
    mov     [rsp + {r13}], r13
    mov     [rsp + {r14}], r14
    mov     [rsp + {r15}], r15
    mov     ecx, dword ptr [rip + {mask}]
    test    ecx, ecx
    jz      2f
    /* XRSTOR faults on a header with reserved bytes set, and XSAVE writes only the
       XSTATE_BV bits it saves: the whole header starts zeroed. */
    xor     eax, eax
    mov     [rsp + 512], rax
    mov     [rsp + 520], rax
    mov     [rsp + 528], rax
    mov     [rsp + 536], rax
    mov     [rsp + 544], rax
    mov     [rsp + 552], rax
    mov     [rsp + 560], rax
    mov     [rsp + 568], rax
    mov     eax, ecx
    xor     edx, edx
    xsave64 [rsp]
    jmp     3f
2:
    fxsave64 [rsp]
3:
    .if {kernel}
    test    r11d, 0x200
    jz      4f
    sti
4:
    .endif
    cld
    mov     rdi, rsp
    call    {handle}
    mov     rdi, rsp
    jmp     uk_syscall_restore
    .size uk_syscall_entry, . - uk_syscall_entry

    /* rdi = a 64-byte aligned frame at or below rsp, with free stack below it. */
    .balign 16
    .global uk_syscall_restore
    .type uk_syscall_restore, @function
uk_syscall_restore:
    .if {kernel}
    cli
    .endif
    mov     rsp, rdi
    mov     ecx, dword ptr [rip + {mask}]
    test    ecx, ecx
    jz      2f
    mov     eax, ecx
    xor     edx, edx
    xrstor64 [rsp]
    jmp     3f
2:
    fxrstor64 [rsp]
3:
    mov     rdi, [rsp + {args}]
    mov     rsi, [rsp + {args} + 8]
    mov     rdx, [rsp + {args} + 16]
    mov     r10, [rsp + {args} + 24]
    mov     r8, [rsp + {args} + 32]
    mov     r9, [rsp + {args} + 40]
    mov     rax, [rsp + {rax}]
    mov     rbx, [rsp + {rbx}]
    mov     rbp, [rsp + {rbp}]
    mov     r12, [rsp + {r12}]
    mov     r13, [rsp + {r13}]
    mov     r14, [rsp + {r14}]
    mov     r15, [rsp + {r15}]
    mov     rcx, [rsp + {rip}]
    mov     r11, [rsp + {rflags}]
    lea     rsp, [rsp + {rflags}]
    popfq
    pop     rsp
    jmp     rcx
    .size uk_syscall_restore, . - uk_syscall_restore
    .popsection
"#,
    size = const core::mem::size_of::<TrapFrame>(),
    args = const offset_of!(TrapFrame, args),
    rax = const offset_of!(TrapFrame, rax),
    rbx = const offset_of!(TrapFrame, rbx),
    rbp = const offset_of!(TrapFrame, rbp),
    r12 = const offset_of!(TrapFrame, r12),
    r13 = const offset_of!(TrapFrame, r13),
    r14 = const offset_of!(TrapFrame, r14),
    r15 = const offset_of!(TrapFrame, r15),
    rip = const offset_of!(TrapFrame, rip),
    rflags = const offset_of!(TrapFrame, rflags),
    rsp_ = const offset_of!(TrapFrame, rsp),
    mask = sym XSAVE_MASK,
    kernel = const KERNEL,
    handle = sym crate::trap::handle,
);

unsafe extern "C" {
    /// The `LSTAR` target (assembly above).
    pub(crate) fn uk_syscall_entry();
    /// Restores the frame `rdi` points to and returns into it (assembly above).
    fn uk_syscall_restore();
}

/// Starts executing `frame` as if its trapped call returned now: every register and the
/// x87/SSE/AVX state from the frame, `rflags` as saved (interrupts included), `rsp` =
/// [`TrapFrame::sp`], and a jump to [`TrapFrame::pc`] with `rcx`/`r11` = return address and
/// flags, as after any `syscall`.
///
/// The frame is copied onto the current stack first, so it may live anywhere (a `Box`, the
/// parent's stack). Call it on the stack the new thread owns; nothing of the current call
/// chain survives.
///
/// # Safety
///
/// The frame must come from a trapped call of this image (or be a copy of one with fields
/// changed): its `rip` must be code that expects to be returned into with `rsp` and the
/// other registers as given, and the memory `rsp` points to must be a valid stack for it.
pub unsafe fn resume_frame(frame: &TrapFrame) -> ! {
    let copy = *frame;
    // SAFETY: `copy` is a 64-byte aligned frame on this stack, with free stack below it, as
    // the restore path requires; the caller vouches for the frame's contents.
    unsafe {
        core::arch::asm!(
            "jmp {restore}",
            restore = sym uk_syscall_restore,
            in("rdi") &copy,
            options(noreturn)
        )
    }
}

/// Why [`install`] did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// Not running at CPL 0 (the MSRs cannot be written): a host process, or user mode.
    NotPrivileged,
    /// The current stack segment is not the code segment + 8, as `syscall` loads them
    /// (`SS = STAR[47:32] + 8`).
    Selectors {
        /// `CS` found.
        cs: u16,
        /// `SS` found.
        ss: u16,
    },
}

/// The current code and stack segment selectors.
fn selectors() -> (u16, u16) {
    use x86_64::instructions::segmentation::{CS, SS, Segment};
    (CS::get_reg().0, SS::get_reg().0)
}

/// The flags `syscall` clears on entry (`SFMASK`): single-step, interrupts, direction,
/// alignment check, nested task, I/O privilege.
pub const SFMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 18) | (1 << 14) | (3 << 12);

/// Makes the `syscall` instruction reach the dispatch table on this CPU: `EFER.SCE`,
/// `STAR` (the current `CS`, whose `SS` must follow it), `LSTAR` (the entry), `SFMASK`,
/// and picks `XSAVE` or `FXSAVE` for the extended state. Idempotent; run it on every CPU
/// that makes syscalls (the boards do it for the boot CPU).
pub fn install() -> Result<(), InstallError> {
    use x86_64::VirtAddr;
    use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
    use x86_64::registers::rflags::RFlags;

    let (cs, ss) = selectors();
    if cs & 3 != 0 {
        return Err(InstallError::NotPrivileged);
    }
    if ss != cs + 8 {
        return Err(InstallError::Selectors { cs, ss });
    }
    detect_extended_state();
    // SAFETY: at CPL 0. STAR's syscall half is the running code segment (its SS follows it,
    // checked); the sysret half is never used (sysret cannot return to CPL 0). LSTAR gets the
    // entry above, SFMASK the flags the entry relies on being clear; EFER only gains SCE.
    unsafe {
        Star::write_raw(0, cs);
        LStar::write(VirtAddr::new(uk_syscall_entry as *const () as u64));
        SFMask::write(RFlags::from_bits_retain(SFMASK));
        Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
    Ok(())
}

/// Keeps the hook in the link: the boards refer to it only weakly, which does not pull an
/// object file out of an archive, while this `#[used]` static does.
#[cfg(target_os = "none")]
#[used]
static KEEP_CPU_INIT: extern "C" fn() = uk_syscall_cpu_init;

/// The boards' hook: they call this symbol (declared weak on their side) on the boot CPU
/// when the image links uk-syscall, so the entry works without the application doing
/// anything.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
pub extern "C" fn uk_syscall_cpu_init() {
    // No logger yet at this point of boot. On failure `syscall` stays undefined (#UD, a
    // reported CPU exception); calling `install()` later tells why.
    let _ = install();
}

/// Executes the `syscall` instruction with `number` and `args` and returns `rax`.
///
/// In an image this reaches this crate's entry and the dispatch table (after
/// [`install`]); in a Linux process it is a real Linux syscall.
///
/// # Safety
///
/// The call does whatever its handler does with the arguments (pointers included), as
/// libc's `syscall()` does.
#[inline]
pub unsafe fn trap(number: usize, args: &Args) -> isize {
    let result: isize;
    // SAFETY: `syscall` clobbers rcx and r11 (declared) and returns in rax; the entry
    // preserves everything else and leaves the red zone alone; the caller vouches for what
    // the handler does with the arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => result,
            in("rdi") args[0], in("rsi") args[1], in("rdx") args[2],
            in("r10") args[3], in("r8") args[4], in("r9") args[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        )
    };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_refuses_outside_ring_0() {
        assert_eq!(install(), Err(InstallError::NotPrivileged));
    }

    #[test]
    fn trap_in_a_linux_process_is_a_linux_syscall() {
        use syscalls::x86_64::Sysno;
        // SAFETY: getpid/getppid touch no memory; write with a bad fd fails before reading.
        unsafe {
            assert_eq!(
                trap(Sysno::getpid as usize, &[0; 6]),
                std::process::id() as isize
            );
            assert_eq!(
                trap(Sysno::getppid as usize, &[0; 6]),
                std::os::unix::process::parent_id() as isize
            );
            assert_eq!(trap(Sysno::write as usize, &[999_999, 0, 1, 0, 0, 0]), -9);
        }
    }

    #[test]
    fn frame_layout() {
        assert_eq!(TrapFrame::ARGS_OFFSET, EXT_SIZE);
        assert_eq!(
            offset_of!(TrapFrame, rsp),
            core::mem::size_of::<TrapFrame>() - 8
        );
        assert_eq!(SFMASK & (1 << 9), 1 << 9, "IF cleared on entry");
        assert_eq!(SFMASK & (1 << 10), 1 << 10, "DF cleared on entry");
    }
}
