//! Arm Memory Tagging Extension for uk-rs: detection, enabling, tag operations, and
//! [`Tagged`], an allocator wrapper that turns heap overflows and use-after-free into faults.
//!
//! # How MTE works
//!
//! With FEAT_MTE2, every 16-byte granule of memory mapped *Normal Tagged* (`MAIR` attribute
//! `0xF0`) has a 4-bit allocation tag, and every pointer carries a 4-bit logical tag in bits
//! 59:56 (ignored by translation once `TCR_EL1.TBI0` is set). When tag checking is on, an
//! access whose logical tag differs from the allocation tag of the granule it touches is a
//! *tag check fault*: a synchronous data abort with fault status `0x11`, or, in the
//! asynchronous mode, a flag in `TFSR_EL1`. An allocator that gives each allocation a random
//! tag, and its memory the same tag, makes an access past the end of an allocation (into a
//! neighbour with another tag) or through a pointer kept after `free` (the memory has been
//! re-tagged) fault with high probability.
//!
//! # This crate
//!
//! - [`detect`] reads `ID_AA64PFR1_EL1.MTE` (and `ID_AA64ISAR0_EL1.RNDR`); MTE needs level
//!   2 or more ([`Support::has_mte2`]). QEMU's `-cpu max` reports level 1 (no tag storage)
//!   unless the machine has tag memory (`-machine virt,mte=on`).
//! - [`enable`] switches tag checking on for EL1 in a [`CheckMode`] (synchronous by default,
//!   asynchronous or asymmetric): `GCR_EL1` excludes tags 0 and 15 from random tags,
//!   `RGSR_EL1` is seeded from `RNDR` when the CPU has it (else from the counter), `TFSR_EL1`
//!   is cleared, `TCR_EL1.TBI0` is set and `TCMA0` cleared (so tag-0 accesses are checked
//!   too), `SCTLR_EL1.ATA` and `TCF` are set and `PSTATE.TCO` cleared. It first checks that
//!   RAM really is mapped Normal Tagged (an `AT` translation of a stack address): the board
//!   must map it so. The `qemu-virt` board does whenever the CPU has FEAT_MTE2; until checks
//!   are enabled tagged memory behaves as ordinary write-back memory.
//! - [`tag`] is the tag arithmetic (tags in pointers, exclusion masks, granules, the
//!   choice `irg` makes) and [`regs`] the register fields, both pure and host-tested;
//!   `ops` (on `aarch64-unknown-none`) wraps the instructions `irg`, `gmi`, `ldg`, `stg` and
//!   `st2g`.
//! - [`Tagged<A>`](Tagged) wraps any `uk-alloc` [`Allocator`](uk_alloc::Allocator). See
//!   its module ([`tagged`]) for the invariant it keeps and how each call maintains it.
//!   Where tagging is not active (MTE absent or not enabled, and on x86_64) it passes every
//!   call through and hands out untagged pointers, so the same code runs everywhere.
//!
//! A synchronous tag check fault is reported by the board's exception handler; on
//! `qemu-virt` the report names it ("tag check fault") with the pointer's and the memory's
//! tags, and the image fails (or, in the in-image tests, the running case does).
//!
//! # Unikraft 0.11 defects this crate does not repeat
//!
//! Its random-tag helper discarded the result of `irg`, so allocations were never tagged;
//! its `realloc` passed the tagged pointer to the backend instead of stripping it.
//!
//! # Features
//!
//! - `ktest`: in-image test cases that pass on every configuration (with MTE2 they check
//!   the registers, 100 000 random in-bounds allocations, neighbour tags, re-tagging on
//!   `free` and `realloc`, and fault recording in the asynchronous and asymmetric modes;
//!   without it, that [`Tagged`] passes through, and they say so).
//! - `ktest-faults`: two more cases, `#[should_fail]`, whose access must raise a synchronous
//!   tag check fault (a one-granule overflow, a use after free). A `#[should_fail]` case
//!   cannot pass honestly where nothing faults, so these are built only into the image run on
//!   a configuration with MTE2 (cargo-uk's `qemu-virt/mte`, which builds the test image with
//!   this feature); on any other configuration they would fail, as they should.
//!
//! # Example
//!
//! ```
//! use uk_alloc::{Allocator, Tlsf};
//! use uk_mte::{CheckMode, Tagged, tag};
//!
//! // At boot, on any target: enabling fails without FEAT_MTE2, and `Tagged` passes through.
//! let _ = uk_mte::enable(CheckMode::Synchronous);
//! let mut heap = Tagged::new(Tlsf::new());
//! let mut ram = vec![0u128; 4096];
//! // SAFETY: `ram` outlives `heap` and nothing else uses it.
//! unsafe { heap.add_memory(ram.as_mut_ptr().cast(), 65536) }.unwrap();
//! let p = heap.malloc(100).unwrap();
//! if uk_mte::enabled() {
//!     assert_ne!(tag::tag_of(p.as_ptr()), tag::Tag::ZERO);
//! }
//! // SAFETY: `p` is live.
//! unsafe { heap.free(p) }.unwrap();
//! ```
#![cfg_attr(not(test), no_std)]

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch;
#[cfg(feature = "ktest")]
mod ktests;
pub mod regs;
pub mod tag;
pub mod tagged;

pub use regs::CheckMode;
pub use tag::{ExcludeMask, Tag};
pub use tagged::{HardwareTags, TagStore, Tagged};

/// The MTE instructions, for code that manages tags itself (`aarch64-unknown-none` only).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod ops {
    pub use crate::arch::{gmi, irg, ldg, st2g, stg, store_tags};
}

/// What the CPU offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    /// `ID_AA64PFR1_EL1.MTE`: 0 none, 1 instructions only (no tag storage), 2 FEAT_MTE2,
    /// 3 FEAT_MTE3. Always 0 off aarch64.
    pub level: u8,
    /// Whether `RNDR` (FEAT_RNG) can seed the tag generator.
    pub rndr: bool,
}

impl Support {
    /// Whether full MTE (tag storage and checks) is implemented.
    pub const fn has_mte2(&self) -> bool {
        self.level >= 2
    }

    /// Whether `mode` is available.
    pub const fn supports(&self, mode: CheckMode) -> bool {
        self.level >= mode.min_level()
    }
}

/// Reads the CPU's ID registers. Off `aarch64-unknown-none`: nothing supported.
pub fn detect() -> Support {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return Support {
        level: regs::mte_level(arch::id_aa64pfr1()),
        rndr: regs::has_rndr(arch::id_aa64isar0()),
    };
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    Support {
        level: 0,
        rndr: false,
    }
}

/// Why [`enable`] or [`set_mode`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MteError {
    /// The CPU lacks FEAT_MTE2 (`level` is `ID_AA64PFR1_EL1.MTE`).
    NotSupported {
        /// `ID_AA64PFR1_EL1.MTE`.
        level: u8,
    },
    /// The mode needs a later MTE version (the asymmetric mode needs FEAT_MTE3).
    ModeNotSupported(CheckMode),
    /// RAM is not mapped Normal Tagged (`attribute` is the `MAIR` attribute found); the board
    /// must map it so before tags can be stored.
    MemoryNotTagged {
        /// The memory attribute RAM is mapped with.
        attribute: u8,
    },
    /// The memory system does not keep a tag per 16-byte granule: a tag stored in one granule
    /// showed up in another granule of the same page. QEMU before 8.0 does this with
    /// `mte=on` (QEMU issue 1416: the tag address misses the offset in the page), so every
    /// allocation would re-tag its whole page. Tagging stays off.
    TagStorageBroken,
    /// [`set_mode`] before [`enable`].
    NotEnabled,
}

impl fmt::Display for MteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MteError::NotSupported { level } => {
                write!(f, "no FEAT_MTE2 (ID_AA64PFR1_EL1.MTE = {level})")
            }
            MteError::ModeNotSupported(mode) => {
                write!(
                    f,
                    "{mode:?} tag checking needs MTE level {}",
                    mode.min_level()
                )
            }
            MteError::MemoryNotTagged { attribute } => write!(
                f,
                "RAM is mapped with attribute {attribute:#04x}, not Normal Tagged (0xf0)"
            ),
            MteError::TagStorageBroken => f.write_str(
                "tag storage keeps one tag per page, not per 16-byte granule \
                 (QEMU before 8.0, issue 1416)",
            ),
            MteError::NotEnabled => f.write_str("MTE is not enabled"),
        }
    }
}

impl core::error::Error for MteError {}

/// The check mode in force: 0 while disabled, else `CheckMode::tcf()`.
static MODE: AtomicU8 = AtomicU8::new(0);

/// Whether tag checking is on (after a successful [`enable`]).
pub fn enabled() -> bool {
    MODE.load(Ordering::Acquire) != 0
}

/// The check mode in force, `None` while disabled.
pub fn mode() -> Option<CheckMode> {
    CheckMode::from_tcf(u64::from(MODE.load(Ordering::Acquire)))
}

/// Turns tag checking on at EL1 in `mode` (see the crate documentation for each register).
/// Calling it again only changes the mode ([`set_mode`]).
///
/// Before checks go on, a self-test stores two different tags in two granules of one page
/// and reads them back, so that a memory system that does not keep a tag per granule is
/// refused rather than trusted.
///
/// # Errors
///
/// [`MteError::NotSupported`] without FEAT_MTE2 (always, off `aarch64-unknown-none`),
/// [`MteError::ModeNotSupported`] for the asymmetric mode without FEAT_MTE3,
/// [`MteError::MemoryNotTagged`] when RAM is not mapped Normal Tagged,
/// [`MteError::TagStorageBroken`] when the self-test fails. Tag checking stays off then.
pub fn enable(mode: CheckMode) -> Result<(), MteError> {
    let support = detect();
    if !support.has_mte2() {
        return Err(MteError::NotSupported {
            level: support.level,
        });
    }
    if !support.supports(mode) {
        return Err(MteError::ModeNotSupported(mode));
    }
    if enabled() {
        return set_mode(mode);
    }
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        // RAM's attribute, from the translation of a stack address (the image's RAM, mapped
        // like the rest).
        let probe = 0u128;
        let attribute = regs::par_attribute(arch::translate(&raw const probe as usize));
        if attribute != Some(regs::NORMAL_TAGGED) {
            return Err(MteError::MemoryNotTagged {
                attribute: attribute.unwrap_or(0),
            });
        }
        let random = if support.rndr { arch::rndr() } else { None };
        let seed =
            random.unwrap_or_else(|| arch::counter().rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15);
        arch::set_gcr(regs::gcr(ExcludeMask::RESERVED));
        arch::set_rgsr(regs::rgsr_from_random(seed));
        arch::set_tfsr(0);
        arch::set_tfsre0(0);
        let (tcr, sctlr) = (arch::tcr(), arch::sctlr());
        arch::set_tcr(regs::tcr_for_tagging(tcr));
        // Tag access on, checks still off, for the self-test of the tag storage.
        arch::set_sctlr((sctlr & !regs::SCTLR_TCF) | regs::SCTLR_ATA);
        if !arch::tags_per_granule() {
            arch::set_sctlr(sctlr);
            arch::set_tcr(tcr);
            return Err(MteError::TagStorageBroken);
        }
        arch::set_sctlr(regs::sctlr_with_mode(sctlr, mode));
        arch::set_tco(false);
        MODE.store(mode.tcf() as u8, Ordering::Release);
    }
    Ok(())
}

/// Switches an enabled MTE to another check mode; pending asynchronous faults are cleared.
///
/// # Errors
///
/// [`MteError::NotEnabled`] before [`enable`]; [`MteError::ModeNotSupported`] for the
/// asymmetric mode without FEAT_MTE3.
pub fn set_mode(mode: CheckMode) -> Result<(), MteError> {
    if !enabled() {
        return Err(MteError::NotEnabled);
    }
    if !detect().supports(mode) {
        return Err(MteError::ModeNotSupported(mode));
    }
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        arch::set_sctlr(regs::sctlr_with_mode(arch::sctlr(), mode));
        arch::set_tfsr(0);
        MODE.store(mode.tcf() as u8, Ordering::Release);
    }
    Ok(())
}

/// Whether an asynchronous tag check fault was recorded (`TFSR_EL1.TF0`/`TF1`) since the
/// last call; clears the record. Always `false` while MTE is disabled.
pub fn take_async_faults() -> bool {
    if !enabled() {
        return false;
    }
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        let tfsr = arch::tfsr();
        if tfsr & (regs::TFSR_TF0 | regs::TFSR_TF1) != 0 {
            arch::set_tfsr(0);
            return true;
        }
    }
    false
}

/// Turns tag checks off (`true`) or back on (`false`) for the current context
/// (`PSTATE.TCO`). An exception sets it; code that goes on after an exception without
/// returning from it must clear it to be checked again. Does nothing while MTE is disabled.
pub fn set_tag_check_override(on: bool) {
    if !enabled() {
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    arch::set_tco(on);
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    let _ = on;
}

/// A snapshot of the MTE registers, for diagnostics and tests (zeros while disabled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    /// `SCTLR_EL1`.
    pub sctlr: u64,
    /// `TCR_EL1`.
    pub tcr: u64,
    /// `GCR_EL1`.
    pub gcr: u64,
    /// `RGSR_EL1`.
    pub rgsr: u64,
    /// `TFSR_EL1`.
    pub tfsr: u64,
    /// `GMID_EL1`.
    pub gmid: u64,
    /// `PSTATE.TCO`.
    pub tco: bool,
}

/// Reads the MTE registers (all zero while MTE is disabled: they may not exist).
pub fn registers() -> Registers {
    if !enabled() {
        return Registers::default();
    }
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return Registers {
        sctlr: arch::sctlr(),
        tcr: arch::tcr(),
        gcr: arch::gcr(),
        rgsr: arch::rgsr(),
        tfsr: arch::tfsr(),
        gmid: arch::gmid(),
        tco: arch::tco(),
    };
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    Registers::default()
}

/// The memory attribute (`MAIR` value) the address `address` is mapped with, from an `AT`
/// translation; `None` if it is not mapped, or off `aarch64-unknown-none`.
pub fn memory_attribute(address: usize) -> Option<u8> {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    return regs::par_attribute(arch::translate(address));
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    {
        let _ = address;
        None
    }
}
