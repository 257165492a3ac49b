//! The hardware generator of the architecture being compiled for.

use crate::source::{RandomSource, SourceKind};

#[cfg(target_arch = "aarch64")]
pub use crate::aarch64::{Rndr as Hardware, rndr_field};
#[cfg(target_arch = "x86_64")]
pub use crate::x86_64::{CpuFeatures, Rdrand as Hardware, cpu_features};

/// Stands in for the hardware generator on architectures without one; no value exists.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[derive(Debug)]
pub enum Hardware {}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
impl Hardware {
    /// Always `None`: this architecture has no supported instruction.
    pub fn detect() -> Option<Hardware> {
        None
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
impl RandomSource for Hardware {
    fn kind(&self) -> SourceKind {
        match *self {}
    }
    fn try_random(&mut self) -> Option<u64> {
        match *self {}
    }
}

/// The hardware generator of this CPU, if it has one: RNDR on aarch64 with FEAT_RNG,
/// RDRAND (and RDSEED) on x86_64 when CPUID shows them.
pub fn detect_hardware() -> Option<Hardware> {
    Hardware::detect()
}

/// What [`detect_hardware`] would find, as a [`SourceKind`], without keeping the generator.
pub fn hardware_kind() -> Option<SourceKind> {
    detect_hardware().map(|hw| hw.kind())
}
