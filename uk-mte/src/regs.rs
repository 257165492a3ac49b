//! System-register fields MTE uses, as pure functions over register values (tested on the
//! host; the `arch` module reads and writes the registers).
//!
//! `aarch64-cpu` names `ID_AA64PFR1_EL1.MTE`, `ID_AA64ISAR0_EL1.RNDR` and `TCR_EL1.TBI0`, but
//! none of `SCTLR_EL1.{ATA, TCF}`, `TCR_EL1.TCMA0`, `GCR_EL1`, `RGSR_EL1`, `TFSR_EL1`,
//! `GMID_EL1` or `RNDR`; they are defined here.

use crate::tag::ExcludeMask;

/// How tag check faults are reported (`SCTLR_EL1.TCF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckMode {
    /// A mismatching access raises a synchronous data abort (fault status 0x11) on the
    /// access itself: precise, the default.
    Synchronous,
    /// A mismatching access completes; the fault is recorded in `TFSR_EL1` and read later
    /// ([`crate::take_async_faults`]).
    Asynchronous,
    /// Reads are checked synchronously, writes asynchronously (needs FEAT_MTE3).
    Asymmetric,
}

impl CheckMode {
    /// The `SCTLR_EL1.TCF` value of this mode.
    pub const fn tcf(self) -> u64 {
        match self {
            CheckMode::Synchronous => 0b01,
            CheckMode::Asynchronous => 0b10,
            CheckMode::Asymmetric => 0b11,
        }
    }

    /// The mode a `SCTLR_EL1.TCF` value selects; `None` for 0 (no checks).
    pub const fn from_tcf(tcf: u64) -> Option<CheckMode> {
        match tcf & 0b11 {
            0b01 => Some(CheckMode::Synchronous),
            0b10 => Some(CheckMode::Asynchronous),
            0b11 => Some(CheckMode::Asymmetric),
            _ => None,
        }
    }

    /// The lowest `ID_AA64PFR1_EL1.MTE` value that supports this mode: 2 (FEAT_MTE2) for
    /// the synchronous and asynchronous modes, 3 (FEAT_MTE3) for the asymmetric one.
    pub const fn min_level(self) -> u8 {
        match self {
            CheckMode::Asymmetric => 3,
            _ => 2,
        }
    }
}

/// `ID_AA64PFR1_EL1.MTE` (bits 11:8): 0 none, 1 FEAT_MTE (instructions only, no tag
/// storage), 2 FEAT_MTE2 (full MTE), 3 FEAT_MTE3 (adds the asymmetric mode).
pub const fn mte_level(id_aa64pfr1: u64) -> u8 {
    ((id_aa64pfr1 >> 8) & 0xf) as u8
}

/// Whether `ID_AA64ISAR0_EL1.RNDR` (bits 63:60) reports the `RNDR` register (FEAT_RNG).
pub const fn has_rndr(id_aa64isar0: u64) -> bool {
    (id_aa64isar0 >> 60) & 0xf != 0
}

/// `SCTLR_EL1.TCF` (bits 41:40): tag check fault mode at EL1.
pub const SCTLR_TCF_SHIFT: u32 = 40;
/// `SCTLR_EL1.TCF` field mask.
pub const SCTLR_TCF: u64 = 0b11 << SCTLR_TCF_SHIFT;
/// `SCTLR_EL1.ATA` (bit 43): EL1 may access allocation tags.
pub const SCTLR_ATA: u64 = 1 << 43;

/// `SCTLR_EL1` with allocation tag access on and tag checks in `mode`.
pub const fn sctlr_with_mode(sctlr: u64, mode: CheckMode) -> u64 {
    (sctlr & !SCTLR_TCF) | (mode.tcf() << SCTLR_TCF_SHIFT) | SCTLR_ATA
}

/// The check mode `SCTLR_EL1` selects, if tag access is on and checks are.
pub const fn sctlr_mode(sctlr: u64) -> Option<CheckMode> {
    if sctlr & SCTLR_ATA == 0 {
        return None;
    }
    CheckMode::from_tcf(sctlr >> SCTLR_TCF_SHIFT)
}

/// `TCR_EL1.TBI0` (bit 37): the top byte of `TTBR0_EL1` addresses is ignored, so pointers
/// can carry tags.
pub const TCR_TBI0: u64 = 1 << 37;
/// `TCR_EL1.TCMA0` (bit 57): accesses with logical tag 0 are unchecked. Kept clear so that
/// an untagged pointer into a tagged allocation faults too.
pub const TCR_TCMA0: u64 = 1 << 57;

/// `TCR_EL1` as tagging needs it: `TBI0` set, `TCMA0` clear.
pub const fn tcr_for_tagging(tcr: u64) -> u64 {
    (tcr | TCR_TBI0) & !TCR_TCMA0
}

/// `GCR_EL1.RRND` (bit 16): tags from an implementation-defined generator instead of the
/// seed in `RGSR_EL1`. Kept clear: the seed comes from `RNDR`.
pub const GCR_RRND: u64 = 1 << 16;

/// `GCR_EL1` excluding `exclude` from random tags, with the `RGSR_EL1` generator.
pub const fn gcr(exclude: ExcludeMask) -> u64 {
    exclude.bits() as u64
}

/// `RGSR_EL1` from 64 random bits: the 16-bit `SEED` (bits 23:8) folded from all of them,
/// never zero (a zero seed would make the generator repeat one tag), and `TAG` 0.
pub const fn rgsr_from_random(random: u64) -> u64 {
    let folded = (random ^ random >> 16 ^ random >> 32 ^ random >> 48) & 0xffff;
    let seed = if folded == 0 { 1 } else { folded };
    seed << 8
}

/// The `SEED` field of an `RGSR_EL1` value.
pub const fn rgsr_seed(rgsr: u64) -> u16 {
    ((rgsr >> 8) & 0xffff) as u16
}

/// `TFSR_EL1.TF0` (bit 0): an asynchronous tag check fault on a `TTBR0_EL1` address.
pub const TFSR_TF0: u64 = 1 << 0;
/// `TFSR_EL1.TF1` (bit 1): the same for a `TTBR1_EL1` address.
pub const TFSR_TF1: u64 = 1 << 1;

/// `PSTATE.TCO` as the `TCO` register holds it (bit 25): tag checks overridden (off).
pub const TCO_BIT: u64 = 1 << 25;

/// The `MAIR` attribute of Normal Tagged memory: inner and outer write-back, read- and
/// write-allocate, tagged.
pub const NORMAL_TAGGED: u8 = 0xf0;

/// The memory attribute (`PAR_EL1.ATTR`, bits 63:56) of a successful address translation,
/// or `None` when `PAR_EL1.F` (bit 0) reports a fault.
pub const fn par_attribute(par: u64) -> Option<u8> {
    if par & 1 != 0 {
        None
    } else {
        Some((par >> 56) as u8)
    }
}

/// `GMID_EL1.BS` (bits 3:0): log2 of the block size, in words, that `LDGM`/`STGM` handle.
pub const fn gmid_block_bytes(gmid: u64) -> usize {
    4usize << (gmid & 0xf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_registers() {
        // QEMU 7.2 `-cpu max` with `mte=on`: MTE = 3 (FEAT_MTE3); without tag memory: 1.
        assert_eq!(mte_level(0x0000_0000_0000_0321), 3);
        assert_eq!(mte_level(0x0000_0000_0000_0121), 1);
        assert_eq!(mte_level(0), 0);
        assert!(has_rndr(0x1000_0000_0000_0000));
        assert!(!has_rndr(0x0fff_ffff_ffff_ffff));
    }

    #[test]
    fn modes() {
        for mode in [
            CheckMode::Synchronous,
            CheckMode::Asynchronous,
            CheckMode::Asymmetric,
        ] {
            assert_eq!(CheckMode::from_tcf(mode.tcf()), Some(mode));
            let sctlr = sctlr_with_mode(0x30d0_1985, mode);
            assert_eq!(sctlr_mode(sctlr), Some(mode));
            // Everything else is kept.
            assert_eq!(sctlr & !(SCTLR_TCF | SCTLR_ATA), 0x30d0_1985);
        }
        assert_eq!(CheckMode::from_tcf(0), None);
        assert_eq!(
            sctlr_with_mode(SCTLR_TCF, CheckMode::Synchronous),
            (1 << 40) | SCTLR_ATA
        );
        // Checks without tag access do not count as enabled.
        assert_eq!(sctlr_mode(1 << 40), None);
        assert_eq!(CheckMode::Asymmetric.min_level(), 3);
        assert_eq!(CheckMode::Asynchronous.min_level(), 2);
    }

    #[test]
    fn translation_control() {
        // QEMU's reset-ish value of this board plus a stray TCMA0.
        let tcr = 0x0000_0005_0080_3519 | TCR_TCMA0;
        let t = tcr_for_tagging(tcr);
        assert_ne!(t & TCR_TBI0, 0);
        assert_eq!(t & TCR_TCMA0, 0);
        assert_eq!(t & !(TCR_TBI0 | TCR_TCMA0), tcr & !(TCR_TBI0 | TCR_TCMA0));
        assert_eq!(tcr_for_tagging(t), t);
    }

    #[test]
    fn tag_generation_registers() {
        assert_eq!(gcr(ExcludeMask::RESERVED), 0x8001);
        assert_eq!(gcr(ExcludeMask::RESERVED) & GCR_RRND, 0);
        let r = rgsr_from_random(0x1234_5678_9abc_0001);
        assert_eq!(r & 0xf, 0, "start tag 0");
        assert_eq!(r & !0xff_ff00, 0, "only SEED and TAG");
        assert_eq!(rgsr_seed(r), (0x1234 ^ 0x5678 ^ 0x9abc ^ 0x0001) as u16);
        // Random bits that fold to zero still give a non-zero seed.
        assert_eq!(rgsr_seed(rgsr_from_random(0x1234_5678_9abc_def0)), 1);
        assert_eq!(rgsr_seed(rgsr_from_random(0)), 1);
        assert_eq!(rgsr_seed(rgsr_from_random(0xffff_ffff_ffff_ffff)), 1);
        assert_eq!(rgsr_seed(rgsr_from_random(0x0001_0001_0000_0000)), 1);
    }

    #[test]
    fn translation_results() {
        assert_eq!(par_attribute(0xf000_0000_4020_0000), Some(NORMAL_TAGGED));
        assert_eq!(par_attribute(0xff00_0000_4020_0000), Some(0xff));
        assert_eq!(par_attribute(0x0000_0000_0000_0809), None);
        assert_eq!(gmid_block_bytes(4), 64);
        assert_eq!(gmid_block_bytes(6), 256);
    }
}
