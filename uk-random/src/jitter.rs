//! Seed material from timing jitter: the last resort when the CPU has no random instruction.

use rand_chacha::ChaCha20Core;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::rand_core::block::BlockRngCore;
use uk_hal::Clock;
use zeroize::Zeroize;

use crate::source::{Output, RandomSource, SourceKind};

/// Samples per 64-bit output unless [`Jitter::with_samples`] says otherwise.
pub const DEFAULT_SAMPLES: u32 = 512;

/// Identical consecutive deltas that make a batch fail (a stuck or far too coarse counter).
const MAX_REPEATS: u32 = 32;

/// A [`RandomSource`] built from the jitter of [`Clock::cycles`] around a small workload.
///
/// Each 64-bit output takes [`DEFAULT_SAMPLES`] samples. A sample runs a few rounds of
/// memory-touching work (the number of rounds comes from the previous delta, so jitter feeds
/// back into the work) and reads the cycle counter; the delta since the previous reading is
/// folded into a 256-bit pool. The pool is then conditioned by using it as a ChaCha20 key:
/// the output is the first word of that keystream, and the pool is wiped.
///
/// Health checks reject a batch (the attempt fails and the retry loop of [`RandomSource`] may
/// try again, then reports a [`crate::SourceError`]): the counter must advance, no delta may
/// repeat 32 times in a row, and at least one delta in eight must differ from its
/// predecessor. A counter that never varies therefore yields an error, never a fixed value.
///
/// Jitter is weaker than a hardware source, above all on an emulator whose counter follows
/// the host clock; the global generator uses it only when no instruction exists, and says so
/// in the log.
pub struct Jitter<'a> {
    clock: &'a dyn Clock,
    samples: u32,
    scratch: [u64; 32],
}

impl<'a> Jitter<'a> {
    /// A jitter source over `clock` with [`DEFAULT_SAMPLES`] samples per output.
    pub fn new(clock: &'a dyn Clock) -> Self {
        Jitter::with_samples(clock, DEFAULT_SAMPLES)
    }

    /// A jitter source taking `samples` samples (at least 64) per 64-bit output.
    pub fn with_samples(clock: &'a dyn Clock, samples: u32) -> Self {
        Jitter {
            clock,
            samples: samples.max(64),
            scratch: [0; 32],
        }
    }

    /// Work whose duration varies with `rounds` and with cache behaviour.
    #[inline(never)]
    fn work(&mut self, rounds: u64, mut state: u64) -> u64 {
        for round in 0..rounds {
            let slot = (state as usize ^ round as usize) % self.scratch.len();
            state = (state ^ self.scratch[slot])
                .rotate_left(17)
                .wrapping_add(round);
            self.scratch[slot] = state;
        }
        core::hint::black_box(state)
    }

    /// One batch: `samples` deltas into the pool, health-checked, conditioned to 64 bits.
    fn batch(&mut self) -> Option<u64> {
        let mut pool = [0u64; 4];
        let start = self.clock.cycles();
        let mut previous = start;
        let mut last_delta = 0u64;
        let mut changes = 0u32;
        let mut repeats = 0u32;
        let mut state = start;
        for i in 0..self.samples {
            state = self.work(8 + (last_delta & 15), state);
            let now = self.clock.cycles();
            let delta = now.wrapping_sub(previous);
            previous = now;
            if delta == last_delta {
                repeats += 1;
                if repeats >= MAX_REPEATS {
                    pool.zeroize();
                    return None;
                }
            } else {
                repeats = 0;
                changes += 1;
            }
            last_delta = delta;
            let lane = (i & 3) as usize;
            pool[lane] = (pool[lane] ^ delta ^ (now << 32))
                .rotate_left(23)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ pool[(lane + 1) & 3];
        }
        if previous == start || changes < self.samples / 8 {
            pool.zeroize();
            return None;
        }
        let mut key = [0u8; 32];
        for (bytes, word) in key.chunks_exact_mut(8).zip(pool.iter()) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        pool.zeroize();
        let mut words = <ChaCha20Core as BlockRngCore>::Results::default();
        let mut core = ChaCha20Core::from_seed(key);
        key.zeroize();
        core.generate(&mut words);
        let words_slice: &mut [u32] = words.as_mut();
        let value = u64::from(words_slice[0]) | (u64::from(words_slice[1]) << 32);
        words_slice.zeroize();
        Some(value)
    }
}

impl RandomSource for Jitter<'_> {
    fn kind(&self) -> SourceKind {
        SourceKind::Jitter
    }

    fn try_random(&mut self) -> Option<u64> {
        self.batch()
    }

    /// Each attempt is a whole batch: a few attempts are enough to ride out a disturbance.
    fn attempts(&self, _output: Output) -> u32 {
        4
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::source::tests::HostClock;

    /// A counter that advances by a fixed step: no jitter at all.
    struct Regular(AtomicU64, u64);

    impl Clock for Regular {
        fn monotonic_ns(&self) -> u64 {
            self.cycles()
        }
        fn cycles(&self) -> u64 {
            self.0.fetch_add(self.1, Ordering::Relaxed)
        }
        fn cycles_per_second(&self) -> u64 {
            1_000_000_000
        }
    }

    #[test]
    fn a_clock_without_jitter_is_an_error_not_a_fixed_seed() {
        for step in [0, 1, 1000] {
            let clock = Regular(AtomicU64::new(5), step);
            let mut jitter = Jitter::new(&clock);
            let err = jitter.random_u64().unwrap_err();
            assert_eq!(err.kind, SourceKind::Jitter);
            assert_eq!(err.attempts, 4);
            let mut seed = [0u8; 32];
            assert!(jitter.fill_seed(&mut seed).is_err());
            assert_eq!(seed, [0; 32]);
        }
    }

    #[test]
    fn the_host_clock_gives_distinct_seeds() {
        let clock = HostClock(std::time::Instant::now());
        let mut jitter = Jitter::new(&clock);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        jitter.fill_seed(&mut a).expect("host clock has jitter");
        jitter.fill_seed(&mut b).expect("host clock has jitter");
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }
}
