//! The hardware side (`aarch64-unknown-none` only): the MTE instructions and the system
//! registers `aarch64-cpu` lacks, each a small `asm!` block.
//!
//! The tag instructions need the assembler's `memtag` extension, switched on inside each
//! block (`.arch_extension memtag`) so that the crate builds without target features. The
//! system registers are named by their encodings (`S3_0_C1_C0_6` is `GCR_EL1`, ...), which
//! every assembler accepts.

use core::arch::asm;

use aarch64_cpu::registers::{ID_AA64ISAR0_EL1, ID_AA64PFR1_EL1, Readable};

use crate::regs::TCO_BIT;
use crate::tag::{ExcludeMask, Tag, tag_address};

/// The raw `ID_AA64PFR1_EL1` value.
pub(crate) fn id_aa64pfr1() -> u64 {
    ID_AA64PFR1_EL1.get()
}

/// The raw `ID_AA64ISAR0_EL1` value.
pub(crate) fn id_aa64isar0() -> u64 {
    ID_AA64ISAR0_EL1.get()
}

/// Reads a system register by name or encoding.
macro_rules! read_sysreg {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reading this system register has no side effect; callers only reach
        // here on a CPU that implements it (checked through the ID registers).
        unsafe {
            asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack, preserves_flags))
        };
        value
    }};
}

/// Writes a system register by name or encoding, then synchronises the context.
macro_rules! write_sysreg {
    ($reg:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the callers write MTE control registers (documented at each call) on a
        // CPU with FEAT_MTE2; the `isb` makes the new value take effect before the next
        // instruction. Not `nomem`: the writes change how memory accesses behave.
        unsafe {
            asm!(concat!("msr ", $reg, ", {}"), "isb", in(reg) value, options(nostack, preserves_flags))
        };
    }};
}

/// `GCR_EL1` (tag generation control).
pub(crate) fn set_gcr(value: u64) {
    write_sysreg!("S3_0_C1_C0_6", value);
}

/// Reads `GCR_EL1`.
pub(crate) fn gcr() -> u64 {
    read_sysreg!("S3_0_C1_C0_6")
}

/// `RGSR_EL1` (random tag seed).
pub(crate) fn set_rgsr(value: u64) {
    write_sysreg!("S3_0_C1_C0_5", value);
}

/// Reads `RGSR_EL1`.
pub(crate) fn rgsr() -> u64 {
    read_sysreg!("S3_0_C1_C0_5")
}

/// Reads `TFSR_EL1` after making earlier asynchronous faults visible in it.
pub(crate) fn tfsr() -> u64 {
    // SAFETY: barriers only.
    unsafe { asm!("dsb nsh", "isb", options(nostack, preserves_flags)) };
    read_sysreg!("S3_0_C5_C6_0")
}

/// Writes `TFSR_EL1` (zero clears recorded faults).
pub(crate) fn set_tfsr(value: u64) {
    write_sysreg!("S3_0_C5_C6_0", value);
}

/// Writes `TFSRE0_EL1` (faults recorded for EL0 accesses).
pub(crate) fn set_tfsre0(value: u64) {
    write_sysreg!("S3_0_C5_C6_1", value);
}

/// Reads `GMID_EL1` (block size of `LDGM`/`STGM`).
pub(crate) fn gmid() -> u64 {
    read_sysreg!("S3_1_C0_C0_4")
}

/// Reads `SCTLR_EL1`.
pub(crate) fn sctlr() -> u64 {
    read_sysreg!("sctlr_el1")
}

/// Writes `SCTLR_EL1`: the callers change only the MTE fields (`ATA`, `TCF`).
pub(crate) fn set_sctlr(value: u64) {
    write_sysreg!("sctlr_el1", value);
}

/// Reads `TCR_EL1`.
pub(crate) fn tcr() -> u64 {
    read_sysreg!("tcr_el1")
}

/// Writes `TCR_EL1` and drops every cached translation, which may hold the old
/// top-byte-ignore setting.
pub(crate) fn set_tcr(value: u64) {
    write_sysreg!("tcr_el1", value);
    // SAFETY: TLB maintenance only drops cached translations; the tables in memory stay
    // the authority, and the identity map they describe is unchanged.
    unsafe {
        asm!(
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Sets or clears `PSTATE.TCO`: while set, no access is tag checked. Taking an exception
/// sets it, so code that continues after an exception without returning from it (the
/// in-image test runner) must clear it again.
pub(crate) fn set_tco(on: bool) {
    let value = if on { TCO_BIT } else { 0 };
    // SAFETY: `TCO` (S3_3_C4_C2_7) is PSTATE.TCO, which only switches tag checking; it
    // exists on every CPU with FEAT_MTE, which the callers checked.
    unsafe {
        asm!("msr S3_3_C4_C2_7, {}", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads `PSTATE.TCO`.
pub(crate) fn tco() -> bool {
    read_sysreg!("S3_3_C4_C2_7") & TCO_BIT != 0
}

/// 64 bits from `RNDR`, retried a few times while it reports failure; `None` if it keeps
/// failing. Only call on a CPU with FEAT_RNG.
pub(crate) fn rndr() -> Option<u64> {
    for _ in 0..16 {
        let value: u64;
        let ok: u64;
        // SAFETY: reading RNDR (S3_3_C2_C4_0) has no side effect beyond the flags, which
        // report success (Z clear) or a transient failure (Z set).
        unsafe {
            asm!(
                "mrs {v}, S3_3_C2_C4_0",
                "cset {ok}, ne",
                v = out(reg) value,
                ok = out(reg) ok,
                options(nomem, nostack)
            )
        };
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

/// The counter, a weak seed when `RNDR` is missing.
pub(crate) fn counter() -> u64 {
    read_sysreg!("cntvct_el0")
}

/// The memory attribute of the stage-1 translation of `address` for a read at EL1
/// (`AT S1E1R`, then `PAR_EL1`).
pub(crate) fn translate(address: usize) -> u64 {
    // SAFETY: address translation only fills PAR_EL1; it never faults or touches memory.
    unsafe {
        asm!("at s1e1r, {}", "isb", in(reg) address, options(nostack, preserves_flags));
    }
    read_sysreg!("par_el1")
}

/// Sixty-four bytes on a 64-byte boundary: four granules in one page.
#[repr(C, align(64))]
struct Scratch([u8; 64]);

/// Whether the memory keeps one tag per granule: stores tags 5 and 10 in granules 0 and 2
/// of a stack buffer (same page, same position in their pair of granules), reads both back,
/// and returns the buffer's tags to 0 before the stack is used again.
///
/// Needs FEAT_MTE2 with `SCTLR_EL1.ATA` set and RAM mapped Normal Tagged.
pub(crate) fn tags_per_granule() -> bool {
    let scratch = Scratch([0; 64]);
    let start = (&raw const scratch) as usize;
    // SAFETY: the caller guarantees FEAT_MTE2 and tag access; the buffer is this frame's,
    // mapped Normal Tagged and writable, and its tags are 0 again before it goes out of scope
    // (tag checks are off meanwhile, so nothing faults on the stale tags).
    let (first, third) = unsafe {
        stg(tag_address(start, Tag::from_low_bits(5)));
        stg(tag_address(start + 32, Tag::from_low_bits(10)));
        let tags = (ldg(start), ldg(start + 32));
        store_tags(start, 64, Tag::ZERO);
        tags
    };
    core::hint::black_box(&scratch);
    first == Tag::from_low_bits(5) && third == Tag::from_low_bits(10)
}

/// `irg`: `address` with a random tag that is neither in `exclude` nor in
/// `GCR_EL1.Exclude`, from the generator seeded in `RGSR_EL1`.
///
/// # Safety
///
/// FEAT_MTE must be implemented (the instruction is undefined otherwise).
pub unsafe fn irg(address: usize, exclude: ExcludeMask) -> usize {
    let tagged: usize;
    // SAFETY: the caller guarantees FEAT_MTE; `irg` only computes a register value.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "irg {out}, {addr}, {ex}",
            out = lateout(reg) tagged,
            addr = in(reg) address,
            ex = in(reg) exclude.bits() as u64,
            options(nomem, nostack, preserves_flags)
        )
    };
    tagged
}

/// `gmi`: `exclude` plus the logical tag of `address`.
///
/// # Safety
///
/// FEAT_MTE must be implemented.
pub unsafe fn gmi(address: usize, exclude: ExcludeMask) -> ExcludeMask {
    let mask: u64;
    // SAFETY: the caller guarantees FEAT_MTE; `gmi` only computes a register value.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "gmi {out}, {addr}, {ex}",
            out = lateout(reg) mask,
            addr = in(reg) address,
            ex = in(reg) exclude.bits() as u64,
            options(nomem, nostack, preserves_flags)
        )
    };
    ExcludeMask::from_bits(mask as u16)
}

/// `ldg`: the allocation tag of the granule holding `address`.
///
/// # Safety
///
/// FEAT_MTE must be implemented and `address` mapped (an unmapped address faults).
pub unsafe fn ldg(address: usize) -> Tag {
    let mut value: usize = 0;
    // SAFETY: the caller guarantees FEAT_MTE and a mapped address; `ldg` reads a tag, not
    // data, and is never tag checked.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "ldg {v}, [{addr}]",
            v = inout(reg) value,
            addr = in(reg) address,
            options(readonly, nostack, preserves_flags)
        )
    };
    Tag::of_address(value)
}

/// `stg`: sets the allocation tag of the granule at `address` (16-byte aligned) to the
/// logical tag of `address`.
///
/// # Safety
///
/// FEAT_MTE must be implemented, `address` granule aligned and mapped as Normal memory, and
/// the granule must belong to the caller: re-tagging memory others access makes their
/// accesses fault.
pub unsafe fn stg(address: usize) {
    // SAFETY: the caller guarantees all of the above; `stg` writes the tag, not data.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "stg {a}, [{a}]",
            a = in(reg) address,
            options(nostack, preserves_flags)
        )
    };
}

/// `st2g`: [`stg`] for the two granules at `address`.
///
/// # Safety
///
/// As for [`stg`], for both granules.
pub unsafe fn st2g(address: usize) {
    // SAFETY: as for `stg`, for the 32 bytes at `address`.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "st2g {a}, [{a}]",
            a = in(reg) address,
            options(nostack, preserves_flags)
        )
    };
}

/// Sets the allocation tag of every granule of `[start, start + len)` to `tag`, two at a
/// time.
///
/// # Safety
///
/// As for [`stg`] for every granule; `start` and `len` are multiples of 16.
pub unsafe fn store_tags(start: usize, len: usize, tag: Tag) {
    let end = start + len;
    let mut at = start;
    while at + 32 <= end {
        // SAFETY: two granules of the caller's range.
        unsafe { st2g(tag_address(at, tag)) };
        at += 32;
    }
    if at < end {
        // SAFETY: the last granule of the caller's range.
        unsafe { stg(tag_address(at, tag)) };
    }
}
