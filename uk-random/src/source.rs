//! The [`RandomSource`] trait: one attempt at 64 random bits, and bounded retries on top.

use core::fmt;

/// Attempts [`RandomSource::random_u64`] makes before it reports failure, unless the source
/// says otherwise ([`RandomSource::attempts`]).
///
/// Intel's guidance for RDRAND is that ten consecutive failures mean a broken generator, not
/// a busy one; RNDR behaves the same way.
pub const RANDOM_ATTEMPTS: u32 = 10;

/// Attempts [`RandomSource::seed_u64`] makes before it reports failure, unless the source says
/// otherwise.
///
/// Seed-grade instructions (RDSEED, RNDRRS) draw on the entropy source itself and fail
/// legitimately while it refills, so they get more attempts, with a spin-loop hint between
/// them.
pub const SEED_ATTEMPTS: u32 = 128;

/// Where random bits came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// Arm FEAT_RNG: `RNDR` for output, `RNDRRS` (reseeded first) for seeds.
    Rndr,
    /// x86 `RDRAND` for output and `RDSEED` for seeds.
    RdrandRdseed,
    /// x86 `RDRAND` alone: seeds are RDRAND output too.
    Rdrand,
    /// Timing jitter of the board's cycle counter around varying work ([`crate::Jitter`]).
    Jitter,
    /// Any other source (a device, or a fake in tests), by name.
    Other(&'static str),
}

impl SourceKind {
    /// A short name for logs and reports (`rndr`, `rdrand+rdseed`, `rdrand`, `timer jitter`).
    pub const fn name(self) -> &'static str {
        match self {
            SourceKind::Rndr => "rndr",
            SourceKind::RdrandRdseed => "rdrand+rdseed",
            SourceKind::Rdrand => "rdrand",
            SourceKind::Jitter => "timer jitter",
            SourceKind::Other(name) => name,
        }
    }

    /// Whether the source is a CPU instruction.
    pub const fn is_hardware(self) -> bool {
        matches!(
            self,
            SourceKind::Rndr | SourceKind::RdrandRdseed | SourceKind::Rdrand
        )
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of a source's two outputs was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Ordinary output (RNDR, RDRAND): a hardware DRBG's stream.
    Random,
    /// Seed-grade output (RNDRRS, RDSEED): fresh from the entropy source.
    Seed,
}

/// A source reported failure on every attempt.
///
/// Hardware instructions report failure in a flag (NZCV.Z for RNDR/RNDRRS, CF clear for
/// RDRAND/RDSEED) and the jitter source when its health checks fail; the retry loop turns a
/// run of such failures into this error instead of using whatever the register held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceError {
    /// The source that failed.
    pub kind: SourceKind,
    /// The output that was asked for.
    pub output: Output,
    /// How many attempts failed.
    pub attempts: u32,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.output {
            Output::Random => "random",
            Output::Seed => "seed",
        };
        write!(
            f,
            "{}: {} attempts at {what} output all failed",
            self.kind, self.attempts
        )
    }
}

impl core::error::Error for SourceError {}

/// A source of random bits: a CPU instruction, a device, timer jitter.
///
/// An implementation provides single attempts ([`try_random`](Self::try_random), and
/// [`try_seed`](Self::try_seed) when it has a seed-grade output); the provided methods retry a
/// bounded number of times ([`attempts`](Self::attempts)) and report a [`SourceError`] when
/// every attempt failed. A failed attempt is never turned into output.
///
/// The trait is object safe, so a generator can be seeded from `&mut dyn RandomSource`.
///
/// # Example
///
/// ```
/// use uk_random::{RandomSource, SourceKind};
///
/// /// Fails `failures` times, then counts up.
/// struct Flaky { failures: u32, next: u64 }
///
/// impl RandomSource for Flaky {
///     fn kind(&self) -> SourceKind { SourceKind::Other("flaky") }
///     fn try_random(&mut self) -> Option<u64> {
///         if self.failures > 0 { self.failures -= 1; return None; }
///         self.next += 1;
///         Some(self.next)
///     }
/// }
///
/// let mut ok = Flaky { failures: 3, next: 0 };
/// assert_eq!(ok.random_u64(), Ok(1));
/// let mut broken = Flaky { failures: 100, next: 0 };
/// assert!(broken.random_u64().is_err());
/// ```
pub trait RandomSource {
    /// What this source is, for reports and logs.
    fn kind(&self) -> SourceKind;

    /// One attempt at 64 bits of ordinary output; `None` when the source reported failure.
    fn try_random(&mut self) -> Option<u64>;

    /// One attempt at 64 bits of seed-grade output; `None` when the source reported failure.
    ///
    /// Defaults to [`try_random`](Self::try_random) for sources without a separate seed
    /// output.
    fn try_seed(&mut self) -> Option<u64> {
        self.try_random()
    }

    /// How many attempts the provided methods make for `output` before they give up.
    fn attempts(&self, output: Output) -> u32 {
        match output {
            Output::Random => RANDOM_ATTEMPTS,
            Output::Seed => SEED_ATTEMPTS,
        }
    }

    /// 64 bits of ordinary output, retried up to [`attempts`](Self::attempts) times.
    fn random_u64(&mut self) -> Result<u64, SourceError> {
        next(self, Output::Random)
    }

    /// 64 bits of seed-grade output, retried up to [`attempts`](Self::attempts) times.
    fn seed_u64(&mut self) -> Result<u64, SourceError> {
        next(self, Output::Seed)
    }

    /// Fills `dest` with ordinary output. On error `dest` may be partly written.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), SourceError> {
        fill_with(self, dest, Output::Random)
    }

    /// Fills `dest` with seed-grade output. On error `dest` may be partly written.
    fn fill_seed(&mut self, dest: &mut [u8]) -> Result<(), SourceError> {
        fill_with(self, dest, Output::Seed)
    }
}

/// The bounded retry loop behind [`RandomSource::random_u64`] and [`RandomSource::seed_u64`].
fn next<S: RandomSource + ?Sized>(source: &mut S, output: Output) -> Result<u64, SourceError> {
    let attempts = source.attempts(output).max(1);
    for attempt in 0..attempts {
        if attempt > 0 {
            core::hint::spin_loop();
        }
        let value = match output {
            Output::Random => source.try_random(),
            Output::Seed => source.try_seed(),
        };
        if let Some(value) = value {
            return Ok(value);
        }
    }
    Err(SourceError {
        kind: source.kind(),
        output,
        attempts,
    })
}

fn fill_with<S: RandomSource + ?Sized>(
    source: &mut S,
    dest: &mut [u8],
    output: Output,
) -> Result<(), SourceError> {
    for chunk in dest.chunks_mut(8) {
        let bytes = next(source, output)?.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    Ok(())
}

impl<S: RandomSource + ?Sized> RandomSource for &mut S {
    fn kind(&self) -> SourceKind {
        (**self).kind()
    }
    fn try_random(&mut self) -> Option<u64> {
        (**self).try_random()
    }
    fn try_seed(&mut self) -> Option<u64> {
        (**self).try_seed()
    }
    fn attempts(&self, output: Output) -> u32 {
        (**self).attempts(output)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use super::*;

    pub(crate) use uk_hal::HostClock;

    /// A fake hardware source: fails the first `fail_random` / `fail_seed` attempts, then
    /// returns a counter run through a mixer (distinct values). Counts every attempt.
    #[derive(Debug)]
    pub(crate) struct Fake {
        pub(crate) fail_random: u32,
        pub(crate) fail_seed: u32,
        pub(crate) random_calls: u32,
        pub(crate) seed_calls: u32,
        pub(crate) state: u64,
    }

    impl Fake {
        pub(crate) fn failing(fail_random: u32, fail_seed: u32) -> Fake {
            Fake {
                fail_random,
                fail_seed,
                random_calls: 0,
                seed_calls: 0,
                state: 0x0123_4567_89ab_cdef,
            }
        }

        fn step(&mut self) -> u64 {
            // splitmix64: distinct, well-spread values.
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    impl RandomSource for Fake {
        fn kind(&self) -> SourceKind {
            SourceKind::Other("fake")
        }
        fn try_random(&mut self) -> Option<u64> {
            self.random_calls += 1;
            if self.fail_random > 0 {
                self.fail_random -= 1;
                return None;
            }
            Some(self.step())
        }
        fn try_seed(&mut self) -> Option<u64> {
            self.seed_calls += 1;
            if self.fail_seed > 0 {
                self.fail_seed -= 1;
                return None;
            }
            Some(self.step())
        }
    }

    #[test]
    fn failures_below_the_limit_are_retried() {
        let mut fake = Fake::failing(RANDOM_ATTEMPTS - 1, SEED_ATTEMPTS - 1);
        assert!(fake.random_u64().is_ok());
        assert_eq!(fake.random_calls, RANDOM_ATTEMPTS);
        assert!(fake.seed_u64().is_ok());
        assert_eq!(fake.seed_calls, SEED_ATTEMPTS);
    }

    #[test]
    fn failures_at_the_limit_are_reported_with_a_typed_error() {
        let mut fake = Fake::failing(RANDOM_ATTEMPTS, 0);
        assert_eq!(
            fake.random_u64(),
            Err(SourceError {
                kind: SourceKind::Other("fake"),
                output: Output::Random,
                attempts: RANDOM_ATTEMPTS
            })
        );
        assert_eq!(
            fake.random_calls, RANDOM_ATTEMPTS,
            "bounded: no extra attempt"
        );
        // The next call starts a fresh budget and succeeds.
        assert!(fake.random_u64().is_ok());

        let mut fake = Fake::failing(0, u32::MAX);
        let err = fake.seed_u64().unwrap_err();
        assert_eq!((err.output, err.attempts), (Output::Seed, SEED_ATTEMPTS));
        assert_eq!(fake.seed_calls, SEED_ATTEMPTS);
        assert_eq!(
            std::format!("{err}"),
            "fake: 128 attempts at seed output all failed"
        );
    }

    #[test]
    fn fill_covers_odd_lengths_and_stops_at_the_first_failure() {
        let mut fake = Fake::failing(0, 0);
        let mut buf = [0u8; 13];
        fake.fill(&mut buf).unwrap();
        assert_eq!(fake.random_calls, 2);
        assert!(buf[8..].iter().any(|&b| b != 0));

        let mut fake = Fake::failing(0, u32::MAX);
        let mut seed = [0u8; 32];
        assert!(fake.fill_seed(&mut seed).is_err());
        assert_eq!(seed, [0u8; 32], "nothing written from failed attempts");
    }

    #[test]
    fn works_through_a_trait_object() {
        let mut fake = Fake::failing(1, 1);
        let dynamic: &mut dyn RandomSource = &mut fake;
        assert!(dynamic.random_u64().is_ok());
        // `&mut S` is a source too, so a borrowed source can be handed over by value.
        fn seed_of(mut source: impl RandomSource) -> Result<u64, SourceError> {
            source.seed_u64()
        }
        assert!(seed_of(dynamic).is_ok());
        assert_eq!(fake.seed_calls, 2);
    }

    #[test]
    fn kinds_have_short_names() {
        assert_eq!(SourceKind::RdrandRdseed.to_string(), "rdrand+rdseed");
        assert_eq!(SourceKind::Jitter.to_string(), "timer jitter");
        assert!(SourceKind::Rndr.is_hardware());
        assert!(!SourceKind::Jitter.is_hardware());
        assert!(!SourceKind::Other("x").is_hardware());
    }

    use std::string::ToString;
}
