//! aarch64: `RNDR` and `RNDRRS` (FEAT_RNG), found through `ID_AA64ISAR0_EL1.RNDR`.
//!
//! Both read-only system registers return a random value and clear NZCV on success, or
//! return zero with NZCV = 0b0100 on failure (the entropy source could not deliver in
//! reasonable time). `aarch64-cpu` reads the ID register and wraps the two `mrs`
//! instructions, checking NZCV; this module adds the detection gate and retries.

use aarch64_cpu::asm::random::ArmRng;
use aarch64_cpu::registers::{ID_AA64ISAR0_EL1, Readable};

use crate::source::{RandomSource, SourceKind};

/// `ID_AA64ISAR0_EL1.RNDR` (bits \[63:60\]): 0 without FEAT_RNG, 1 with RNDR and RNDRRS.
pub fn rndr_field() -> u64 {
    ID_AA64ISAR0_EL1.read(ID_AA64ISAR0_EL1::RNDR)
}

/// The Arm hardware generator: `RNDR` for output, `RNDRRS` for seeds.
///
/// Only [`Rndr::detect`] makes one, so holding a value proves the ID register showed
/// FEAT_RNG (reading RNDR without it is UNDEFINED).
#[derive(Debug)]
pub struct Rndr(ArmRng);

impl Rndr {
    /// The generator, if `ID_AA64ISAR0_EL1.RNDR` shows FEAT_RNG.
    pub fn detect() -> Option<Rndr> {
        if rndr_field() == 0 {
            return None;
        }
        ArmRng::new().map(Rndr)
    }
}

impl RandomSource for Rndr {
    fn kind(&self) -> SourceKind {
        SourceKind::Rndr
    }

    fn try_random(&mut self) -> Option<u64> {
        self.0.rndr()
    }

    fn try_seed(&mut self) -> Option<u64> {
        self.0.rndrss()
    }
}
