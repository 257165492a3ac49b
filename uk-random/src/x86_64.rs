//! x86_64: `RDRAND` and `RDSEED`, found through CPUID.
//!
//! Both instructions set CF on success and clear it (with a zero destination) on failure;
//! the intrinsics return that flag, and every attempt checks it. The instructions execute in
//! any privilege level, so this module also works (and is tested) in a Linux process.

use core::arch::x86_64::{__cpuid, __cpuid_count, _rdrand64_step, _rdseed64_step};

use crate::source::{RandomSource, SourceKind};

/// The random-number instructions CPUID reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// CPUID.01H:ECX.RDRAND\[bit 30\].
    pub rdrand: bool,
    /// CPUID.(EAX=07H,ECX=0):EBX.RDSEED\[bit 18\].
    pub rdseed: bool,
}

/// Reads CPUID leaves 1 and 7 for RDRAND and RDSEED.
pub fn cpu_features() -> CpuFeatures {
    // SAFETY: CPUID exists on every x86_64 processor and only reads identification data.
    // (Newer compilers declare these intrinsics safe; the block keeps older ones building.)
    #[allow(unused_unsafe)]
    let (max_leaf, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
    let rdseed = max_leaf >= 7 && {
        // SAFETY: as above; leaf 7 exists because the maximum leaf is at least 7.
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { __cpuid_count(7, 0) };
        leaf7.ebx & (1 << 18) != 0
    };
    CpuFeatures {
        rdrand: leaf1.ecx & (1 << 30) != 0,
        rdseed,
    }
}

/// The x86 hardware generator: `RDRAND`, plus `RDSEED` for seeds when the CPU has it.
///
/// Only [`Rdrand::detect`] makes one, so holding a value proves CPUID showed RDRAND.
#[derive(Debug)]
pub struct Rdrand {
    rdseed: bool,
}

impl Rdrand {
    /// The generator, if CPUID shows RDRAND.
    pub fn detect() -> Option<Rdrand> {
        let features = cpu_features();
        features.rdrand.then_some(Rdrand {
            rdseed: features.rdseed,
        })
    }

    /// Whether seeds come from RDSEED (otherwise from RDRAND).
    pub fn has_rdseed(&self) -> bool {
        self.rdseed
    }
}

/// One RDRAND attempt.
///
/// # Safety
///
/// The CPU must support RDRAND (CPUID.01H:ECX bit 30).
#[target_feature(enable = "rdrand")]
unsafe fn rdrand_step() -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: this function's contract guarantees RDRAND; the intrinsic writes only `value`.
    #[allow(unused_unsafe)]
    let ok = unsafe { _rdrand64_step(&mut value) };
    (ok == 1).then_some(value)
}

/// One RDSEED attempt.
///
/// # Safety
///
/// The CPU must support RDSEED (CPUID.(EAX=07H,ECX=0):EBX bit 18).
#[target_feature(enable = "rdseed")]
unsafe fn rdseed_step() -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: this function's contract guarantees RDSEED; the intrinsic writes only `value`.
    #[allow(unused_unsafe)]
    let ok = unsafe { _rdseed64_step(&mut value) };
    (ok == 1).then_some(value)
}

impl RandomSource for Rdrand {
    fn kind(&self) -> SourceKind {
        if self.rdseed {
            SourceKind::RdrandRdseed
        } else {
            SourceKind::Rdrand
        }
    }

    fn try_random(&mut self) -> Option<u64> {
        // SAFETY: an `Rdrand` exists only after CPUID showed RDRAND (`detect`).
        unsafe { rdrand_step() }
    }

    fn try_seed(&mut self) -> Option<u64> {
        if self.rdseed {
            // SAFETY: `rdseed` is set only when CPUID showed RDSEED (`detect`).
            unsafe { rdseed_step() }
        } else {
            self.try_random()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_agrees_with_cpuid_and_instructions_work_when_present() {
        let features = cpu_features();
        let Some(mut rng) = Rdrand::detect() else {
            assert!(!features.rdrand);
            return;
        };
        assert_eq!(rng.has_rdseed(), features.rdseed);
        let a = rng.random_u64().expect("RDRAND works on this host");
        let b = rng.random_u64().expect("RDRAND works on this host");
        assert_ne!(a, b);
        let s = rng.seed_u64().expect("seed output works on this host");
        assert_ne!(s, a);
    }
}
