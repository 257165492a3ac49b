//! The ChaCha20 generator with fast key erasure and a reseed policy.

use core::fmt;

use rand_chacha::ChaCha20Core;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::rand_core::block::BlockRngCore;
use zeroize::Zeroize;

/// Bytes one call of the ChaCha20 core produces (four 64-byte blocks).
const BATCH: usize = 256;
/// Key length of ChaCha20.
const KEY: usize = 32;

/// When a [`ChaCha20Drbg`] asks for fresh seed material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReseedPolicy {
    /// Reseed after this many output bytes since the last (re)seed.
    pub max_bytes: u64,
    /// Reseed when this many nanoseconds passed since the last (re)seed (only when the caller
    /// passes the time).
    pub max_interval_ns: u64,
}

impl ReseedPolicy {
    /// 1 MiB of output or 60 seconds, whichever comes first (Linux reseeds its generator
    /// every 60 s).
    pub const DEFAULT: ReseedPolicy = ReseedPolicy {
        max_bytes: 1 << 20,
        max_interval_ns: 60_000_000_000,
    };
}

impl Default for ReseedPolicy {
    fn default() -> Self {
        ReseedPolicy::DEFAULT
    }
}

/// A ChaCha20 deterministic random bit generator with fast key erasure.
///
/// The state is one 256-bit key (inside a `rand_chacha` ChaCha20 core, counter from zero).
/// Every request ([`fill`](Self::fill)) runs ChaCha20 under the current key; the first 32
/// bytes of that stream become the next key and the rest is the output. The old key is
/// overwritten before `fill` returns, and the leftover stream is zeroed, so whoever reads the
/// state afterwards cannot recompute earlier output (D. J. Bernstein, "Fast-key-erasure random
/// number generators", 2017).
///
/// [`reseed`](Self::reseed) XORs fresh seed material into the next key: the result is
/// unpredictable if either the old state or the new seed is. [`needs_reseed`](Self::needs_reseed)
/// applies the [`ReseedPolicy`]; the owner ([`crate::Pool`]) fetches the seed.
///
/// Deliberately not `Clone`: a copy of the state would survive erasure.
pub struct ChaCha20Drbg {
    core: ChaCha20Core,
    policy: ReseedPolicy,
    since_reseed: u64,
    reseeded_at_ns: Option<u64>,
    reseeds: u64,
}

impl ChaCha20Drbg {
    /// A generator keyed with `seed` at time `now_ns` (if known).
    pub fn from_seed(seed: [u8; 32], now_ns: Option<u64>, policy: ReseedPolicy) -> Self {
        let mut seed = seed;
        let drbg = ChaCha20Drbg {
            core: ChaCha20Core::from_seed(seed),
            policy,
            since_reseed: 0,
            reseeded_at_ns: now_ns,
            reseeds: 0,
        };
        seed.zeroize();
        drbg
    }

    /// Fills `dest` with output and erases the key that produced it.
    pub fn fill(&mut self, dest: &mut [u8]) {
        let mut batch = [0u8; BATCH];
        self.next_batch(&mut batch);
        let mut next_key = [0u8; KEY];
        next_key.copy_from_slice(&batch[..KEY]);

        let mut available = &batch[KEY..];
        let mut rest = &mut *dest;
        loop {
            let n = available.len().min(rest.len());
            rest[..n].copy_from_slice(&available[..n]);
            rest = &mut rest[n..];
            if rest.is_empty() {
                break;
            }
            self.next_batch(&mut batch);
            available = &batch[..];
        }
        batch.zeroize();
        self.rekey(&mut next_key);
        self.since_reseed = self.since_reseed.saturating_add(dest.len() as u64);
    }

    /// Mixes `seed` into the key: the next key is the stream's next 32 bytes XOR `seed`.
    pub fn reseed(&mut self, seed: &[u8; 32], now_ns: Option<u64>) {
        let mut batch = [0u8; BATCH];
        self.next_batch(&mut batch);
        let mut next_key = [0u8; KEY];
        for (key, (stream, fresh)) in next_key.iter_mut().zip(batch.iter().zip(seed)) {
            *key = stream ^ fresh;
        }
        batch.zeroize();
        self.rekey(&mut next_key);
        self.since_reseed = 0;
        self.reseeded_at_ns = now_ns.or(self.reseeded_at_ns);
        self.reseeds += 1;
    }

    /// Whether the policy asks for a reseed: enough output, or (with `now_ns`) enough time
    /// since the last (re)seed.
    pub fn needs_reseed(&self, now_ns: Option<u64>) -> bool {
        if self.since_reseed >= self.policy.max_bytes {
            return true;
        }
        match (now_ns, self.reseeded_at_ns) {
            (Some(now), Some(then)) => now.saturating_sub(then) >= self.policy.max_interval_ns,
            _ => false,
        }
    }

    /// Output bytes since the last (re)seed.
    pub fn bytes_since_reseed(&self) -> u64 {
        self.since_reseed
    }

    /// How many times [`reseed`](Self::reseed) ran.
    pub fn reseeds(&self) -> u64 {
        self.reseeds
    }

    /// The reseed policy.
    pub fn policy(&self) -> ReseedPolicy {
        self.policy
    }

    /// Runs the core once: 256 bytes of keystream, little-endian words.
    fn next_batch(&mut self, out: &mut [u8; BATCH]) {
        let mut words = <ChaCha20Core as BlockRngCore>::Results::default();
        self.core.generate(&mut words);
        let words: &mut [u32] = words.as_mut();
        for (bytes, word) in out.chunks_exact_mut(4).zip(words.iter()) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        words.zeroize();
    }

    /// Replaces the core (and with it the old key) in place, then wipes `key`.
    fn rekey(&mut self, key: &mut [u8; KEY]) {
        // The assignment overwrites the old core's storage: the only copy of the old key
        // this generator keeps.
        self.core = ChaCha20Core::from_seed(*key);
        key.zeroize();
    }

    /// The raw bytes of the ChaCha20 core: the only part of the state that holds key
    /// material. For the key-erasure tests.
    #[cfg(test)]
    fn core_bytes(&self) -> &[u8] {
        // SAFETY: the core is three 16-byte vectors of `u32` words (rand_chacha's `ChaCha`):
        // every byte is initialised and there is no padding; the slice borrows `self`.
        unsafe {
            core::slice::from_raw_parts(
                (&raw const self.core).cast::<u8>(),
                core::mem::size_of::<ChaCha20Core>(),
            )
        }
    }
}

impl fmt::Debug for ChaCha20Drbg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints the key.
        f.debug_struct("ChaCha20Drbg")
            .field("policy", &self.policy)
            .field("since_reseed", &self.since_reseed)
            .field("reseeds", &self.reseeds)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// RFC 8439 A.1 test vector #1: all-zero key, nonce and counter. The generator takes the
    /// first 32 bytes as its next key and outputs the next 32.
    #[test]
    fn known_answer_from_a_zero_seed() {
        let block = hex(
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
             da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
        );
        let mut drbg = ChaCha20Drbg::from_seed([0; 32], None, ReseedPolicy::DEFAULT);
        let mut out = [0u8; 32];
        drbg.fill(&mut out);
        assert_eq!(out[..], block[32..]);
        // The next request runs under the key taken from the first 32 bytes.
        let mut next =
            ChaCha20Drbg::from_seed(block[..32].try_into().unwrap(), None, ReseedPolicy::DEFAULT);
        let (mut a, mut b) = ([0u8; 100], [0u8; 100]);
        drbg.fill(&mut a);
        next.fill(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn requests_of_every_length_are_filled_and_differ() {
        let mut drbg = ChaCha20Drbg::from_seed([7; 32], None, ReseedPolicy::DEFAULT);
        let mut seen = Vec::new();
        for len in [0usize, 1, 31, 32, 223, 224, 225, 256, 480, 481, 1000, 4096] {
            let mut buf = vec![0u8; len];
            drbg.fill(&mut buf);
            if len >= 16 {
                assert!(buf.iter().any(|&b| b != 0));
                assert!(!seen.iter().any(|s: &Vec<u8>| s[..16] == buf[..16]));
                seen.push(buf);
            }
        }
        assert_eq!(
            drbg.bytes_since_reseed(),
            [1u64, 31, 32, 223, 224, 225, 256, 480, 481, 1000, 4096]
                .iter()
                .sum::<u64>()
        );
    }

    /// The key the generator moves to after a request under `key`: the first 32 bytes of
    /// ChaCha20(key), computed with the core directly.
    fn successor(key: [u8; 32]) -> [u8; 32] {
        let mut words = <ChaCha20Core as BlockRngCore>::Results::default();
        ChaCha20Core::from_seed(key).generate(&mut words);
        let mut next = [0u8; 32];
        for (bytes, word) in next.chunks_exact_mut(4).zip(words.as_ref().iter()) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        next
    }

    #[test]
    fn fast_key_erasure_leaves_no_old_key_in_the_state() {
        let key = [0x5a; 32];
        let mut drbg = ChaCha20Drbg::from_seed(key, None, ReseedPolicy::DEFAULT);
        // Positive control: the key is visible in the state before the first request.
        assert!(contains(drbg.core_bytes(), &key));
        let mut first = [0u8; 64];
        drbg.fill(&mut first);
        assert!(!contains(drbg.core_bytes(), &key), "old key in the state");

        // Whoever holds the old key can recompute the output; the generator moved on.
        let mut replay = ChaCha20Drbg::from_seed(key, None, ReseedPolicy::DEFAULT);
        let mut again = [0u8; 64];
        replay.fill(&mut again);
        assert_eq!(first, again);
        let mut after = [0u8; 64];
        drbg.fill(&mut after);
        assert_ne!(after, first, "output after erasure differs");

        // Follow the key chain: after each request the state holds exactly the successor
        // key and none of the keys before it.
        let mut drbg = ChaCha20Drbg::from_seed(key, None, ReseedPolicy::DEFAULT);
        let mut chain = vec![key];
        for len in [1usize, 32, 500, 4096, 0, 7] {
            let mut buf = vec![0u8; len];
            drbg.fill(&mut buf);
            chain.push(successor(*chain.last().unwrap()));
            let (current, old) = chain.split_last().unwrap();
            assert!(contains(drbg.core_bytes(), current));
            for old in old {
                assert!(!contains(drbg.core_bytes(), old));
            }
        }
    }

    #[test]
    fn reseed_changes_the_stream_and_resets_the_counters() {
        let policy = ReseedPolicy {
            max_bytes: 100,
            max_interval_ns: 1_000,
        };
        let mut a = ChaCha20Drbg::from_seed([1; 32], Some(0), policy);
        let mut b = ChaCha20Drbg::from_seed([1; 32], Some(0), policy);
        assert!(!a.needs_reseed(Some(999)));
        assert!(a.needs_reseed(Some(1_000)), "time-based");
        assert!(!a.needs_reseed(None));
        let mut buf = [0u8; 100];
        a.fill(&mut buf);
        b.fill(&mut buf);
        assert!(a.needs_reseed(None), "byte-based");

        a.reseed(&[2; 32], Some(5_000));
        assert_eq!((a.bytes_since_reseed(), a.reseeds()), (0, 1));
        assert!(!a.needs_reseed(Some(5_999)));
        assert!(a.needs_reseed(Some(6_000)));
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_ne!(x, y, "the seed changed the stream");

        // Reseeding with zeros still moves the key forward (stream XOR 0).
        let mut c = ChaCha20Drbg::from_seed([1; 32], None, policy);
        let mut d = ChaCha20Drbg::from_seed([1; 32], None, policy);
        c.reseed(&[0; 32], None);
        let (mut p, mut q) = ([0u8; 32], [0u8; 32]);
        c.fill(&mut p);
        d.fill(&mut q);
        assert_ne!(p, q);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let drbg = ChaCha20Drbg::from_seed([0xab; 32], None, ReseedPolicy::DEFAULT);
        let text = std::format!("{drbg:?}");
        assert!(text.starts_with("ChaCha20Drbg"));
        assert!(!text.contains("171"), "{text}");
    }
}
