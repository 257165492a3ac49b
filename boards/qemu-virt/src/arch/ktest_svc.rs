//! In-image test cases of uk-syscall's aarch64 `svc` entry and return path under a retried
//! translation fault (feature `ktest`; the ktest image links uk-syscall, so `svc #0` reaches
//! its entry through the board's vector).
//!
//! Another CPU splitting the 2 MiB block that holds a thread's stack makes a store to or a
//! load from that stack fault; the board retries the fault once the split is over, but the
//! retried exception overwrites `ELR_EL1` and `SPSR_EL1`. The cases stage that on one CPU
//! with [`protect::REPAIR_ON_FAULT`]: a page with no access whose next translation fault the
//! handler repairs (read-write again) and retries, as if a split had just ended.
//!
//! - [`svc_entry_survives_a_retried_fault`]: `svc #0` on `SP_EL0` with the stack pointer at
//!   the top of such a page, so the entry's first store to its frame (below the 128-byte red
//!   zone, on that page) faults. The call returns after the `svc` with `-ENOSYS` and every
//!   other register, the stack pointer, the flags, `DAIF` and `q0`-`q31` as they were.
//! - [`svc_return_survives_a_retried_fault`]: a hand-made frame returning to EL1t, resumed
//!   through `uk_syscall_svc_restore`, whose general registers lie on such a page and the rest
//!   (`ELR`, `SPSR`, SIMD) on the next one, so the loads of the general registers fault after
//!   those of `ELR`/`SPSR`. It lands at the frame's `elr` with the frame's registers, stack
//!   pointer, flags, `DAIF` and SIMD state.
//!
//! With an entry that stores to the caller's stack before it reads `ELR_EL1`, the retried
//! fault makes the call "return" into the entry itself, on the caller's stack pointer: its
//! next store hits the page above, which has no access and is not armed, and the case fails
//! with a CPU exception. With a return path that writes `ELR_EL1` before its loads, the
//! `eret` goes back into the return path with the frame's `x0` (an unmapped address) as its
//! base: again a CPU exception.

use core::alloc::Layout;
use core::arch::global_asm;
use core::sync::atomic::Ordering;

use uk_hal::{PROTECTION_PAGE, PageAccess, PageProtection, Platform};
use uk_test::{expect, expect_eq, ktest};

use super::{PLATFORM, protect};

/// `-ENOSYS`, what a number nobody registered returns.
const ENOSYS: u64 = -38i64 as u64;

/// A number beyond every syscall table: `-ENOSYS`, whatever the image registers.
const UNKNOWN_NUMBER: u64 = 0x7ff0_0000;

/// Bytes uk-syscall's entry leaves alone below the caller's stack pointer (its red zone)
/// plus its frame (`TrapFrame`, 800 bytes): the frame starts this far below.
const FRAME_BELOW_SP: usize = 128 + 800;

/// Words of uk-syscall's aarch64 `TrapFrame`: `x0`-`x30`, `sp`, `elr`, `spsr` (words 0-33),
/// `q0`-`q31` (34-97), `FPSR`, `FPCR` (98, 99).
const FRAME_WORDS: usize = 100;

/// Byte offset of `elr` in the frame: the general registers and `sp` come before it.
const FRAME_ELR: usize = 32 * 8;

/// What [`__uk_ktest_svc_call`] and [`__uk_ktest_svc_landing`] keep of the Rust caller:
/// `sp`, `SPSel`, `SP_EL0`, `x18`-`x30`, `d8`-`d15` (see the assembly).
const SAVED_WORDS: usize = 24;

/// The register block of [`__uk_ktest_svc_call`]: loaded before `svc #0` and written
/// after it.
#[repr(C, align(16))]
struct CallBlock {
    /// `x0`-`x30` (`x28` holds the block's own address across the call).
    x: [u64; 31],
    /// In: the stack pointer for the call (`SP_EL0`); out: the stack pointer after it.
    sp: u64,
    /// In: `NZCV` for the call; out: `NZCV` after it.
    nzcv: u64,
    /// Out: `DAIF` after the call.
    daif: u64,
    /// The caller's context, put back before returning.
    saved: [u64; SAVED_WORDS],
    /// `q0`-`q31` loaded before the call.
    q_in: [u128; 32],
    /// `q0`-`q31` after the call.
    q_out: [u128; 32],
}

/// What [`__uk_ktest_svc_landing`] writes below the stack pointer it lands with, and the
/// context it goes back to above it: a resumed frame's `sp` points at `saved`.
#[repr(C, align(16))]
struct Landing {
    /// `q0`-`q31` at the landing.
    q: [u128; 32],
    /// `x0`-`x30`, `NZCV`, `DAIF`, `sp` at the landing.
    x: [u64; 34],
    /// The caller's context, put back by the landing.
    saved: [u64; SAVED_WORDS],
}

const _: () = {
    assert!(core::mem::offset_of!(CallBlock, sp) == 248);
    assert!(core::mem::offset_of!(CallBlock, saved) == 272);
    assert!(core::mem::offset_of!(CallBlock, q_in) == 464);
    assert!(core::mem::offset_of!(CallBlock, q_out) == 976);
    assert!(core::mem::offset_of!(Landing, x) == 512);
    assert!(core::mem::offset_of!(Landing, saved) == 784);
};

global_asm!(
    r#"
    .pushsection .text.uk_ktest_svc, "ax"

    /* q0-q31 to (`op` stp) or from (`op` ldp) the 512 bytes at `base` + `off`. */
    .macro  uk_ktest_svc_q op, base, off
    \op     q0, q1, [\base, #(\off + 0)]
    \op     q2, q3, [\base, #(\off + 32)]
    \op     q4, q5, [\base, #(\off + 64)]
    \op     q6, q7, [\base, #(\off + 96)]
    \op     q8, q9, [\base, #(\off + 128)]
    \op     q10, q11, [\base, #(\off + 160)]
    \op     q12, q13, [\base, #(\off + 192)]
    \op     q14, q15, [\base, #(\off + 224)]
    \op     q16, q17, [\base, #(\off + 256)]
    \op     q18, q19, [\base, #(\off + 288)]
    \op     q20, q21, [\base, #(\off + 320)]
    \op     q22, q23, [\base, #(\off + 352)]
    \op     q24, q25, [\base, #(\off + 384)]
    \op     q26, q27, [\base, #(\off + 416)]
    \op     q28, q29, [\base, #(\off + 448)]
    \op     q30, q31, [\base, #(\off + 480)]
    .endm

    /* x2-x27 to or from their places (8 bytes each from x0's) at `base` + `off`. */
    .macro  uk_ktest_svc_x2_x27 op, base, off
    \op     x2, x3, [\base, #(\off + 16)]
    \op     x4, x5, [\base, #(\off + 32)]
    \op     x6, x7, [\base, #(\off + 48)]
    \op     x8, x9, [\base, #(\off + 64)]
    \op     x10, x11, [\base, #(\off + 80)]
    \op     x12, x13, [\base, #(\off + 96)]
    \op     x14, x15, [\base, #(\off + 112)]
    \op     x16, x17, [\base, #(\off + 128)]
    \op     x18, x19, [\base, #(\off + 144)]
    \op     x20, x21, [\base, #(\off + 160)]
    \op     x22, x23, [\base, #(\off + 176)]
    \op     x24, x25, [\base, #(\off + 192)]
    \op     x26, x27, [\base, #(\off + 208)]
    .endm

    /* The Rust caller's context to the 192 bytes at `base`: sp, SPSel, SP_EL0, x18-x30,
       d8-d15 (x9-x11 are scratch). */
    .macro  uk_ktest_svc_save base
    mrs     x9, spsel
    mov     x10, sp
    msr     spsel, #1
    mrs     x11, sp_el0
    msr     spsel, x9
    stp     x10, x9, [\base, #0]
    stp     x11, x18, [\base, #16]
    stp     x19, x20, [\base, #32]
    stp     x21, x22, [\base, #48]
    stp     x23, x24, [\base, #64]
    stp     x25, x26, [\base, #80]
    stp     x27, x28, [\base, #96]
    stp     x29, x30, [\base, #112]
    stp     d8, d9, [\base, #128]
    stp     d10, d11, [\base, #144]
    stp     d12, d13, [\base, #160]
    stp     d14, d15, [\base, #176]
    .endm

    /* ... and back, returning to the caller. */
    .macro  uk_ktest_svc_back base
    ldp     x9, x10, [\base, #0]
    ldp     x11, x18, [\base, #16]
    ldp     d8, d9, [\base, #128]
    ldp     d10, d11, [\base, #144]
    ldp     d12, d13, [\base, #160]
    ldp     d14, d15, [\base, #176]
    ldp     x19, x20, [\base, #32]
    ldp     x21, x22, [\base, #48]
    ldp     x23, x24, [\base, #64]
    ldp     x25, x26, [\base, #80]
    ldp     x27, x28, [\base, #96]
    ldp     x29, x30, [\base, #112]
    msr     spsel, #1
    msr     sp_el0, x11
    msr     spsel, x10
    mov     sp, x9
    ret
    .endm

    /* x0 = a CallBlock: svc #0 on SP_EL0 (EL1t) with its registers and stack. */
    .balign 16
    .global __uk_ktest_svc_call
    .type __uk_ktest_svc_call, %function
__uk_ktest_svc_call:
    add     x1, x0, #272
    uk_ktest_svc_save x1
    mov     x28, x0
    add     x1, x28, #464
    uk_ktest_svc_q ldp, x1, 0
    msr     spsel, #0
    ldr     x1, [x28, #248]
    mov     sp, x1
    ldr     x1, [x28, #256]
    msr     nzcv, x1
    ldp     x0, x1, [x28, #0]
    uk_ktest_svc_x2_x27 ldp, x28, 0
    ldr     x29, [x28, #232]
    ldr     x30, [x28, #240]
    svc     #0
    stp     x0, x1, [x28, #0]
    mrs     x0, nzcv
    mrs     x1, daif
    stp     x0, x1, [x28, #256]
    mov     x0, sp
    str     x0, [x28, #248]
    uk_ktest_svc_x2_x27 stp, x28, 0
    stp     x28, x29, [x28, #224]
    str     x30, [x28, #240]
    add     x1, x28, #976
    uk_ktest_svc_q stp, x1, 0
    add     x0, x28, #272
    uk_ktest_svc_back x0
    .size __uk_ktest_svc_call, . - __uk_ktest_svc_call

    /* x0 = a frame, x1 = the `saved` words of a Landing (the frame's sp), x2 = the return
       path to resume the frame with: the caller's context goes to x1, then to x2 with x0. */
    .balign 16
    .global __uk_ktest_svc_resume
    .type __uk_ktest_svc_resume, %function
__uk_ktest_svc_resume:
    uk_ktest_svc_save x1
    br      x2
    .size __uk_ktest_svc_resume, . - __uk_ktest_svc_resume

    /* Where the resumed frame returns to: sp = the `saved` words of its Landing. Writes
       every register below them, then returns from __uk_ktest_svc_resume. */
    .balign 16
    .global __uk_ktest_svc_landing
    .type __uk_ktest_svc_landing, %function
__uk_ktest_svc_landing:
    uk_ktest_svc_q stp, sp, -784
    stp     x0, x1, [sp, #-272]
    uk_ktest_svc_x2_x27 stp, sp, -272
    stp     x28, x29, [sp, #-48]
    mrs     x0, nzcv
    stp     x30, x0, [sp, #-32]
    mrs     x0, daif
    mov     x1, sp
    stp     x0, x1, [sp, #-16]
    mov     x0, sp
    uk_ktest_svc_back x0
    .size __uk_ktest_svc_landing, . - __uk_ktest_svc_landing

    .purgem uk_ktest_svc_save
    .purgem uk_ktest_svc_back
    .purgem uk_ktest_svc_q
    .purgem uk_ktest_svc_x2_x27
    .popsection

    .pushsection .rodata.uk_ktest_svc, "a"
    .balign 8
    /* Weak references (see the board's `__uk_svc_entry_address`): 0 when the image does
       not link uk-syscall. */
    .weakref __uk_ktest_svc_entry_weak, uk_syscall_svc_entry
    .weakref __uk_ktest_svc_restore_weak, uk_syscall_svc_restore
    .global __uk_ktest_svc_targets
    .hidden __uk_ktest_svc_targets
__uk_ktest_svc_targets:
    .quad   __uk_ktest_svc_entry_weak
    .quad   __uk_ktest_svc_restore_weak
    .popsection
"#
);

unsafe extern "C" {
    /// Executes `svc #0` on `SP_EL0` with the registers, stack pointer, `NZCV` and
    /// `q0`-`q31` of the block and writes back what the call returned with.
    fn __uk_ktest_svc_call(block: *mut CallBlock);
    /// Resumes `frame` through `restore` (uk-syscall's return path), once the caller's
    /// context is in `saved`; returns when the frame lands at [`__uk_ktest_svc_landing`]
    /// with its `sp` at `saved`.
    fn __uk_ktest_svc_resume(frame: *const u64, saved: *mut u64, restore: usize);
    /// The landing of [`__uk_ktest_svc_resume`]: a frame's `elr`. Never called.
    fn __uk_ktest_svc_landing();
    /// uk-syscall's `uk_syscall_svc_entry` and `uk_syscall_svc_restore`, 0 if not linked.
    static __uk_ktest_svc_targets: [usize; 2];
}

/// uk-syscall's entry and return path, if the image links it.
fn targets() -> Option<(usize, usize)> {
    // SAFETY: two words in `.rodata`, written by the linker only.
    let [entry, restore] = unsafe { core::ptr::addr_of!(__uk_ktest_svc_targets).read() };
    (entry != 0 && restore != 0).then_some((entry, restore))
}

fn protection() -> &'static dyn PageProtection {
    PLATFORM
        .page_protection()
        .expect("qemu-virt has page protection")
}

/// The pattern for general register `i`: not an address anything maps (above 2^62).
const fn pattern(i: usize) -> u64 {
    0x7e57_0000_0000_0000 ^ ((i as u64) << 32) ^ (i as u64 * 0x0101_0101)
}

/// The pattern for vector register `i`.
const fn vector_pattern(i: usize) -> u128 {
    ((0xc3c3_0000_0000_0000 ^ i as u64) as u128) << 64 | (0x3c3c_0000_0000_0000 ^ i as u64) as u128
}

/// `DAIF` as it is now.
fn daif() -> u64 {
    let daif: u64;
    // SAFETY: reads a system register.
    unsafe {
        core::arch::asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack, preserves_flags))
    };
    daif
}

/// `FPCR` and `FPSR` as they are now.
fn fp_control() -> (u64, u64) {
    let (fpcr, fpsr): (u64, u64);
    // SAFETY: reads two system registers.
    unsafe {
        core::arch::asm!("mrs {}, fpcr", "mrs {}, fpsr", out(reg) fpcr, out(reg) fpsr,
            options(nomem, nostack, preserves_flags))
    };
    (fpcr, fpsr)
}

/// Whole pages of heap memory, read-write again and freed on drop.
struct Pages {
    base: usize,
    layout: Layout,
}

/// Pages a case left without access because it ended in a CPU exception: the next case
/// gives them back.
static LEFT_BEHIND: spin::Mutex<Option<(usize, Layout)>> = spin::Mutex::new(None);

impl Pages {
    fn new(count: usize) -> Self {
        give_back_left_behind();
        let layout =
            Layout::from_size_align(count * PROTECTION_PAGE, PROTECTION_PAGE).expect("layout");
        // SAFETY: a non-zero size; a null result is checked.
        let base = unsafe { alloc::alloc::alloc_zeroed(layout) };
        assert!(!base.is_null(), "no heap for the test");
        *LEFT_BEHIND.lock() = Some((base as usize, layout));
        Self {
            base: base as usize,
            layout,
        }
    }

    fn page(&self, index: usize) -> usize {
        self.base + index * PROTECTION_PAGE
    }

    /// Takes page `index` away (no access).
    fn hide(&self, index: usize) {
        // SAFETY: the page belongs to this allocation, which is made read-write again before
        // it is freed (drop, or the next case after a fault).
        let hidden =
            unsafe { protection().set_access(self.page(index), PROTECTION_PAGE, PageAccess::None) };
        assert_eq!(hidden, Ok(()), "set_access");
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        *LEFT_BEHIND.lock() = None;
        give_back(self.base, self.layout);
    }
}

fn give_back(base: usize, layout: Layout) {
    // SAFETY: the allocation's own pages, read-write as the allocator handed them out.
    let restored = unsafe { protection().set_access(base, layout.size(), PageAccess::ReadWrite) };
    assert_eq!(restored, Ok(()), "set_access");
    // SAFETY: allocated with this layout, no longer used.
    unsafe { alloc::alloc::dealloc(base as *mut u8, layout) };
}

fn give_back_left_behind() {
    protect::REPAIR_ON_FAULT.store(0, Ordering::SeqCst);
    if let Some((base, layout)) = LEFT_BEHIND.lock().take() {
        give_back(base, layout);
    }
}

/// Pages of the entry case's stack: the call's stack pointer is the top of the armed page
/// [`CALL_PAGES`]` - 2` (the frame and the red zone lie on it, the handler runs below it); the
/// last page has no access and stays so.
const CALL_PAGES: usize = 16;

ktest! {
    /// `svc #0` from a thread (EL1t) whose stack takes a retried translation fault at the
    /// entry's first store (another CPU splitting the block, staged with
    /// `REPAIR_ON_FAULT`): the call returns after the `svc` with -ENOSYS and every other
    /// register (x1-x30, q0-q31), the stack pointer, NZCV and DAIF as they were.
    fn svc_entry_survives_a_retried_fault() {
        let Some(_) = targets() else {
            uk_rt::println!("    skipped: uk-syscall is not linked");
            return;
        };
        let pages = Pages::new(CALL_PAGES);
        let armed = pages.page(CALL_PAGES - 2);
        let top = pages.page(CALL_PAGES - 1);
        pages.hide(CALL_PAGES - 2);
        pages.hide(CALL_PAGES - 1);
        let mut block = CallBlock {
            x: core::array::from_fn(pattern),
            sp: top as u64,
            nzcv: 0x9000_0000, // N and V
            daif: 0,
            saved: [0; SAVED_WORDS],
            q_in: core::array::from_fn(vector_pattern),
            q_out: [0; 32],
        };
        block.x[8] = UNKNOWN_NUMBER;
        let block_address = &raw mut block as u64;
        block.x[28] = block_address;
        let mut expected = block.x;
        expected[0] = ENOSYS;
        let daif_before = daif();
        // The frame starts this far into the armed page: its first stores fault.
        expect!(top - FRAME_BELOW_SP >= armed);
        protect::REPAIR_ON_FAULT.store(armed as u64, Ordering::SeqCst);
        // SAFETY: the block is valid for the call; the call runs on the test's pages (the
        // handler far below their top), and the assembly gives back every register the C
        // ABI keeps, the stack pointers and SPSel.
        unsafe { __uk_ktest_svc_call(&raw mut block) };
        // Disarmed: the fault was taken (and repaired) inside the entry.
        expect_eq!(protect::REPAIR_ON_FAULT.load(Ordering::SeqCst), 0);
        expect_eq!(block.x, expected);
        expect_eq!(block.sp, top as u64);
        expect_eq!(block.nzcv, 0x9000_0000);
        expect_eq!(block.daif, daif_before);
        expect_eq!(block.q_out, block.q_in);
        expect_eq!(protection().access(armed), Some(PageAccess::ReadWrite));
        expect_eq!(protection().access(top), Some(PageAccess::None));
    }
}

ktest! {
    /// uk-syscall's return path resumes a frame returning to EL1t whose general registers
    /// lie on a page that takes a retried translation fault after `ELR`/`SPSR` were read
    /// (from the next page): it lands at the frame's `elr` with the frame's x0-x30, sp,
    /// NZCV, DAIF and q0-q31.
    fn svc_return_survives_a_retried_fault() {
        let Some((_, restore)) = targets() else {
            uk_rt::println!("    skipped: uk-syscall is not linked");
            return;
        };
        let pages = Pages::new(2);
        // The frame's words 0-31 (x0-x30, sp) end the first page, `elr` starts the second.
        let frame = (pages.page(1) - FRAME_ELR) as *mut u64;
        let mut landing = Landing {
            q: [0; 32],
            x: [0; 34],
            saved: [0; SAVED_WORDS],
        };
        // From the whole struct: the landing writes below `saved` too.
        let saved = (&raw mut landing)
            .cast::<u8>()
            .wrapping_add(core::mem::offset_of!(Landing, saved))
            .cast::<u64>();
        let nzcv = 0x6000_0000; // Z and C
        let daif_now = daif();
        let (fpcr, fpsr) = fp_control();
        let mut words = [0u64; FRAME_WORDS];
        for (i, word) in words[..31].iter_mut().enumerate() {
            *word = pattern(i);
        }
        words[31] = saved as u64;
        words[32] = __uk_ktest_svc_landing as *const () as usize as u64;
        words[33] = nzcv | daif_now | 0b0100; // EL1t
        for i in 0..32 {
            let q = vector_pattern(i);
            words[34 + 2 * i] = q as u64;
            words[35 + 2 * i] = (q >> 64) as u64;
        }
        words[98] = fpsr;
        words[99] = fpcr;
        // SAFETY: `frame` is 16-byte aligned and 800 bytes of the test's pages.
        unsafe { frame.copy_from_nonoverlapping(words.as_ptr(), FRAME_WORDS) };
        pages.hide(0);
        protect::REPAIR_ON_FAULT.store(pages.page(0) as u64, Ordering::SeqCst);
        // SAFETY: the frame returns to the landing, which takes the caller's context back
        // from `saved` (on this stack, alive across the call) and returns; FPCR/FPSR and
        // DAIF are as they were, the flags and SIMD registers the C ABI lets a call change.
        unsafe { __uk_ktest_svc_resume(frame, saved, restore) };
        expect_eq!(protect::REPAIR_ON_FAULT.load(Ordering::SeqCst), 0);
        expect_eq!(landing.x[..31], words[..31]);
        expect_eq!(landing.x[31], nzcv);
        expect_eq!(landing.x[32], daif_now);
        expect_eq!(landing.x[33], saved as u64);
        let q: [u128; 32] = core::array::from_fn(vector_pattern);
        expect_eq!(landing.q, q);
        expect_eq!(protection().access(pages.page(0)), Some(PageAccess::ReadWrite));
    }
}
