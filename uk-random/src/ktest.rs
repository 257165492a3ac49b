//! In-image test cases (feature `ktest`): the source chosen for this CPU, statistics of
//! 1 MiB of output, successive outputs differ, reseeding from the chosen source.

use uk_hal::Clock;

use crate::stats::BitStats;
use crate::{
    GRND_INSECURE, GRND_NONBLOCK, GRND_RANDOM, Pool, RandomSource, ReseedPolicy, SourceKind, Wait,
};

/// The board clock, for jitter and time-based reseeding.
struct BoardClock;

impl Clock for BoardClock {
    fn monotonic_ns(&self) -> u64 {
        uk_rt::platform().monotonic_ns()
    }
    fn cycles(&self) -> u64 {
        uk_rt::platform().cycles()
    }
    fn cycles_per_second(&self) -> u64 {
        uk_rt::platform().cycles_per_second()
    }
}

static CLOCK: BoardClock = BoardClock;

/// The source the CPU's identification registers call for, read here independently of the
/// crate's own detection.
#[cfg(target_arch = "x86_64")]
fn expected() -> (SourceKind, &'static str) {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86_64 processor and only reads identification data.
    #[allow(unused_unsafe)]
    let (max, ecx1) = unsafe { (__cpuid(0).eax, __cpuid(1).ecx) };
    // SAFETY: as above; leaf 7 is only used when the maximum leaf reaches it.
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { __cpuid_count(7, 0).ebx };
    let ebx7 = if max >= 7 { leaf7 } else { 0 };
    match (ecx1 & (1 << 30) != 0, ebx7 & (1 << 18) != 0) {
        (true, true) => (SourceKind::RdrandRdseed, "CPUID: RDRAND and RDSEED"),
        (true, false) => (SourceKind::Rdrand, "CPUID: RDRAND, no RDSEED"),
        (false, _) => (SourceKind::Jitter, "CPUID: no RDRAND"),
    }
}

/// The source the CPU's identification registers call for, read here independently of the
/// crate's own detection.
#[cfg(target_arch = "aarch64")]
fn expected() -> (SourceKind, &'static str) {
    use aarch64_cpu::registers::{ID_AA64ISAR0_EL1, Readable};
    if ID_AA64ISAR0_EL1.get() >> 60 != 0 {
        (SourceKind::Rndr, "ID_AA64ISAR0_EL1.RNDR: FEAT_RNG")
    } else {
        (SourceKind::Jitter, "ID_AA64ISAR0_EL1.RNDR: no FEAT_RNG")
    }
}

fn init() -> SourceKind {
    crate::init(&CLOCK).expect("the global generator seeds")
}

uk_test::ktest! {
    /// The generator is seeded from the source the CPU's ID registers call for, and says so.
    fn chosen_source_matches_the_cpu() {
        let (want, why) = expected();
        let got = init();
        let status = crate::status();
        log::info!("seeded from {got} ({why}); hardware {:?}", status.hardware);
        uk_test::expect_eq!(got, want);
        uk_test::expect_eq!(status.seeded_by, Some(want));
        let hardware = want.is_hardware().then_some(want);
        uk_test::expect_eq!(status.hardware, hardware);
        uk_test::expect_eq!(crate::hardware_kind(), hardware);
    }
}

uk_test::ktest! {
    /// 1 MiB of getrandom output: ones within 0.5 % of half, runs, longest run, byte histogram.
    fn one_mib_has_sane_statistics() {
        init();
        let mut stats = BitStats::new();
        let mut buf = [0u8; 4096];
        for _ in 0..256 {
            uk_test::expect_eq!(crate::getrandom(&mut buf, 0), Ok(buf.len()));
            stats.update(&buf);
        }
        log::info!(
            "1 MiB: {} ppm ones, {} runs, longest run {}, chi-square {}",
            stats.ones_ppm(),
            stats.runs(),
            stats.longest_run(),
            stats.chi_square()
        );
        uk_test::expect_eq!(stats.bits(), 8 << 20);
        let ppm = stats.ones_ppm();
        uk_test::expect!((497_500..=502_500).contains(&ppm), "ones {ppm} ppm, not within 0.5 % of half");
        uk_test::expect_eq!(stats.check(), Ok(()));
    }
}

uk_test::ktest! {
    /// Two successive outputs differ, from the generator and from the raw hardware.
    fn successive_outputs_differ() {
        init();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        uk_test::expect_eq!(crate::getrandom(&mut a, 0), Ok(32));
        uk_test::expect_eq!(crate::getrandom(&mut b, GRND_NONBLOCK), Ok(32));
        uk_test::expect!(a != b);
        uk_test::expect!(a != [0; 32] && b != [0; 32]);
        if let Some(mut hw) = crate::detect_hardware() {
            let (x, y) = (hw.random_u64(), hw.random_u64());
            uk_test::expect!(x.is_ok() && y.is_ok() && x != y, "{x:?} {y:?}");
            let (x, y) = (hw.seed_u64(), hw.seed_u64());
            uk_test::expect!(x.is_ok() && y.is_ok() && x != y, "{x:?} {y:?}");
        }
    }
}

uk_test::ktest! {
    /// 64 KiB straight from the hardware instruction pass the same statistics (if present).
    fn raw_hardware_output_has_sane_statistics() {
        let Some(mut hw) = crate::detect_hardware() else {
            log::info!("no hardware instruction on this CPU");
            return;
        };
        let mut stats = BitStats::new();
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            uk_test::expect_eq!(hw.fill(&mut buf), Ok(()));
            stats.update(&buf);
        }
        uk_test::expect_eq!(stats.check(), Ok(()));
    }
}

uk_test::ktest! {
    /// A pool with a small reseed policy reseeds from the chosen source without failures.
    fn reseeds_from_the_chosen_source() {
        let pool = Pool::new(
            crate::detect_hardware,
            ReseedPolicy { max_bytes: 4096, max_interval_ns: u64::MAX },
        );
        pool.set_clock(&CLOCK);
        let mut buf = [0u8; 4096];
        for _ in 0..8 {
            uk_test::expect!(pool.fill(&mut buf, Wait::Yes).is_ok());
        }
        let status = pool.status();
        uk_test::expect_eq!(status.reseeds, 7);
        uk_test::expect_eq!(status.reseed_failures, 0);
        uk_test::expect_eq!(status.seeded_by, Some(expected().0));
    }
}

uk_test::ktest! {
    /// getrandom's flags inside the image: EINVAL for unknown bits and INSECURE|RANDOM.
    fn getrandom_flags() {
        init();
        let mut buf = [0u8; 8];
        uk_test::expect_eq!(crate::getrandom(&mut buf, 0x10), Err(crate::Errno::EINVAL));
        uk_test::expect_eq!(
            crate::getrandom(&mut buf, GRND_INSECURE | GRND_RANDOM),
            Err(crate::Errno::EINVAL)
        );
        uk_test::expect_eq!(crate::getrandom(&mut buf, GRND_RANDOM | GRND_NONBLOCK), Ok(8));
        uk_test::expect_eq!(crate::getrandom(&mut buf, GRND_INSECURE), Ok(8));
    }
}
