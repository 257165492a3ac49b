//! Statistical sanity checks of random output (not a certification: they catch a stuck,
//! biased or badly broken generator, as the in-image tests need).
//!
//! [`BitStats`] takes bytes in any number of pieces (bits of each byte least significant
//! first) and checks, with integer arithmetic only:
//!
//! - monobit: the count of ones is within six standard deviations of half the bits (for
//!   1 MiB that is ±0.21 %; [`BitStats::ones_ppm`] gives the balance for a fixed bound);
//! - runs: the number of runs (maximal blocks of equal bits) is within six standard
//!   deviations of its expectation given the ones count;
//! - longest run: no run longer than log2(bits) + 17 (chance below about 1 in 100 000);
//! - bytes: the chi-square statistic of the byte histogram (255 degrees of freedom) lies
//!   within six standard deviations of 255, checked from 2560 bytes on.

use core::fmt;

/// Running statistics over a bit stream.
#[derive(Clone, Debug)]
pub struct BitStats {
    bits: u64,
    ones: u64,
    runs: u64,
    longest: u64,
    last: Option<bool>,
    current: u64,
    histogram: [u64; 256],
}

/// Which check failed, with the measured value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Too few bits to judge (fewer than 64).
    TooShort,
    /// The ones count is off.
    Monobit {
        /// Ones counted.
        ones: u64,
        /// Bits counted.
        bits: u64,
    },
    /// The number of runs is off.
    Runs {
        /// Runs counted.
        runs: u64,
        /// Runs expected.
        expected: u64,
    },
    /// A run is too long.
    LongestRun {
        /// The longest run seen.
        longest: u64,
        /// The bound.
        limit: u64,
    },
    /// The byte histogram is too uneven (or too even).
    Bytes {
        /// The chi-square statistic, rounded down.
        chi_square: u64,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Failure::TooShort => f.write_str("fewer than 64 bits"),
            Failure::Monobit { ones, bits } => write!(f, "monobit: {ones} ones in {bits} bits"),
            Failure::Runs { runs, expected } => write!(f, "runs: {runs}, expected {expected}"),
            Failure::LongestRun { longest, limit } => {
                write!(f, "longest run {longest} bits, limit {limit}")
            }
            Failure::Bytes { chi_square } => write!(f, "byte chi-square {chi_square} (df 255)"),
        }
    }
}

impl Default for BitStats {
    fn default() -> Self {
        BitStats::new()
    }
}

impl BitStats {
    /// Empty statistics.
    pub const fn new() -> Self {
        BitStats {
            bits: 0,
            ones: 0,
            runs: 0,
            longest: 0,
            last: None,
            current: 0,
            histogram: [0; 256],
        }
    }

    /// Adds `bytes` to the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.histogram[usize::from(b)] += 1;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            self.push(u64::from_le_bytes(le), 64);
        }
        for &b in words.remainder() {
            self.push(u64::from(b), 8);
        }
    }

    /// Adds the low `count` bits of `word`, least significant first.
    fn push(&mut self, word: u64, count: u32) {
        let mut rest = word;
        let mut left = count;
        self.bits += u64::from(count);
        while left > 0 {
            let bit = rest & 1 == 1;
            let len = if bit {
                rest.trailing_ones()
            } else {
                rest.trailing_zeros()
            }
            .min(left);
            if bit {
                self.ones += u64::from(len);
            }
            if self.last == Some(bit) {
                self.current += u64::from(len);
            } else {
                self.runs += 1;
                self.current = u64::from(len);
                self.last = Some(bit);
            }
            self.longest = self.longest.max(self.current);
            rest = rest.checked_shr(len).unwrap_or(0);
            left -= len;
        }
    }

    /// Bits seen.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Ones seen.
    pub fn ones(&self) -> u64 {
        self.ones
    }

    /// Runs seen.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// The longest run seen.
    pub fn longest_run(&self) -> u64 {
        self.longest
    }

    /// The ones count as parts per million of the bits (500 000 is perfect balance).
    pub fn ones_ppm(&self) -> u64 {
        (u128::from(self.ones) * 1_000_000)
            .checked_div(u128::from(self.bits))
            .unwrap_or(0) as u64
    }

    /// The chi-square statistic of the byte histogram, rounded down.
    pub fn chi_square(&self) -> u64 {
        let n = u128::from(self.bits / 8);
        if n == 0 {
            return 0;
        }
        // sum (c - n/256)^2 / (n/256) = sum (256 c - n)^2 / (256 n)
        let sum: u128 = self
            .histogram
            .iter()
            .map(|&c| {
                let d = (256 * u128::from(c)).abs_diff(n);
                d * d
            })
            .sum();
        (sum / (256 * n)) as u64
    }

    /// Runs every check; the first failure is returned.
    pub fn check(&self) -> Result<(), Failure> {
        let n = u128::from(self.bits);
        if n < 64 {
            return Err(Failure::TooShort);
        }
        let ones = u128::from(self.ones);
        // 2 ones - n has standard deviation sqrt(n): 6 sigma is (2 ones - n)^2 <= 36 n.
        let excess = (2 * ones).abs_diff(n);
        if excess * excess > 36 * n {
            return Err(Failure::Monobit {
                ones: self.ones,
                bits: self.bits,
            });
        }
        // Runs given n1 ones and n0 zeros: mean 1 + 2 n1 n0 / n; variance close to n / 4
        // when balanced: 6 sigma is |runs - mean| <= 3 sqrt(n).
        let zeros = n - ones;
        let expected = 1 + 2 * ones * zeros / n;
        let off = u128::from(self.runs).abs_diff(expected);
        if off * off > 9 * n {
            return Err(Failure::Runs {
                runs: self.runs,
                expected: expected as u64,
            });
        }
        let limit = u64::from(self.bits.ilog2()) + 17;
        if self.longest > limit {
            return Err(Failure::LongestRun {
                longest: self.longest,
                limit,
            });
        }
        if self.bits / 8 >= 2560 {
            // 255 degrees of freedom: mean 255, standard deviation sqrt(510) < 22.6.
            let chi_square = self.chi_square();
            if !(120..=390).contains(&chi_square) {
                return Err(Failure::Bytes { chi_square });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;

    use super::*;
    use crate::drbg::{ChaCha20Drbg, ReseedPolicy};

    fn random(len: usize, seed: u8) -> std::vec::Vec<u8> {
        let mut drbg = ChaCha20Drbg::from_seed([seed; 32], None, ReseedPolicy::DEFAULT);
        let mut buf = vec![0u8; len];
        drbg.fill(&mut buf);
        buf
    }

    #[test]
    fn counts_bits_runs_and_the_longest_run_across_pieces() {
        let mut stats = BitStats::new();
        // 0b0000_0111, 0b1111_1111, then 0b0000_0001: bits LSB first:
        // 111 00000 | 11111111 | 1 0000000  -> runs: 111, 00000, 111111111 (9), 0000000
        stats.update(&[0x07]);
        stats.update(&[0xff, 0x01]);
        assert_eq!(stats.bits(), 24);
        assert_eq!(stats.ones(), 3 + 8 + 1);
        assert_eq!(stats.runs(), 4);
        assert_eq!(stats.longest_run(), 9);

        // Whole words and a tail give the same as bytes one by one.
        let data = random(1003, 9);
        let mut whole = BitStats::new();
        whole.update(&data);
        let mut bytewise = BitStats::new();
        for b in &data {
            bytewise.update(core::slice::from_ref(b));
        }
        assert_eq!(
            (whole.ones(), whole.runs(), whole.longest_run()),
            (bytewise.ones(), bytewise.runs(), bytewise.longest_run())
        );
    }

    #[test]
    fn generator_output_passes() {
        for seed in 0..4 {
            let mut stats = BitStats::new();
            stats.update(&random(1 << 20, seed));
            assert_eq!(stats.check(), Ok(()), "seed {seed}: {stats:?}");
            let ppm = stats.ones_ppm();
            assert!((497_500..=502_500).contains(&ppm), "{ppm}");
        }
    }

    #[test]
    fn broken_streams_fail() {
        let check = |data: &[u8]| {
            let mut stats = BitStats::new();
            stats.update(data);
            stats.check()
        };
        assert!(matches!(check(&[0; 4096]), Err(Failure::Monobit { .. })));
        assert!(matches!(check(&[0xff; 4096]), Err(Failure::Monobit { .. })));
        // Balanced but alternating: far too many runs.
        assert!(matches!(check(&[0x55; 4096]), Err(Failure::Runs { .. })));
        // Balanced, runs of 8: far too few runs.
        let blocks: std::vec::Vec<u8> = (0..4096)
            .map(|i| if i % 2 == 0 { 0 } else { 0xff })
            .collect();
        assert!(matches!(check(&blocks), Err(Failure::Runs { .. })));
        // Good data with 64 zero bits planted: the longest run gives it away.
        let mut planted = random(1 << 16, 3);
        planted[1000..1008].fill(0);
        assert!(matches!(check(&planted), Err(Failure::LongestRun { .. })));
        // Every byte value equally often, in a bit-balanced order: the histogram is too even.
        let even: std::vec::Vec<u8> = (0..64 * 256).map(|i| (i % 256) as u8).collect();
        let mut stats = BitStats::new();
        stats.update(&even);
        assert_eq!(stats.chi_square(), 0);
        assert!(check(&[1, 2]).is_err());
    }
}
