//! Randomness for uk-rs: hardware random-number instructions, a ChaCha20 generator with fast
//! key erasure, and getrandom(2) semantics (the role of Unikraft's `ukarch_random` and
//! `ukswrand`).
//!
//! # Design
//!
//! A kernel needs random bytes before anything else can supply them: for stack canaries,
//! address randomisation, hash seeds, and the `getrandom` system call that every modern libc
//! calls at start-up. Modern CPUs carry a hardware generator: Arm FEAT_RNG (`RNDR` and the
//! reseeding `RNDRRS`, announced in `ID_AA64ISAR0_EL1.RNDR`) and x86 `RDRAND`/`RDSEED`
//! (announced by CPUID). Both can fail transiently and report it in a flag, not in the value,
//! so every attempt checks the flag, retries a bounded number of times and then reports a
//! typed [`SourceError`]: a failed read never becomes output. The [`RandomSource`] trait is
//! that contract: single attempts from the implementor, bounded retries on top. `Rndr`
//! (aarch64) and `Rdrand` (x86_64) implement it; so does [`Jitter`], the fallback.
//!
//! Hardware generators are slow (each read can cost a trip to a shared entropy unit, and
//! under QEMU a call into the host), and a kernel should not trust one device with every
//! byte, so output comes from a software generator: [`ChaCha20Drbg`], the ChaCha20 block
//! function (20 rounds, from `rand_chacha`) keyed with 256 bits of seed. It uses fast key
//! erasure: the first 32 bytes of each request's keystream replace the key before the
//! request returns, so the state left behind cannot reproduce earlier output. It reseeds
//! from the seed-grade output (RNDRRS, RDSEED) after 1 MiB of output or 60 seconds
//! ([`ReseedPolicy`]), mixing the fresh seed into the next key.
//!
//! When the CPU has no instruction (QEMU `-cpu cortex-a72`, `-cpu qemu64`), or the one it has
//! fails its start-up self-test or later stops working, seeds come from an [`EntropyDevice`]
//! if the image registered one ([`set_entropy_device`]; uk-virtio's `VirtioRng` is the
//! virtio entropy device, which reads the host's generator), read outside the lock because a
//! device answers slowly. Without one, they come from the jitter of the board's cycle counter
//! around varying work, conditioned through ChaCha20. That is weaker, so the first use logs
//! a warning. There is never a fixed seed: a clock without jitter fails the health checks and
//! the request fails with an error.
//!
//! [`Pool`] ties this together behind a spin lock taken with interrupts masked (an interrupt
//! handler may ask for bytes); the image-wide instance is reached through [`init`],
//! [`getrandom`], [`fill_bytes`] and [`status`]. [`getrandom`] follows Linux: the flags
//! [`GRND_NONBLOCK`], [`GRND_RANDOM`] and [`GRND_INSECURE`], `EINVAL` for unknown flags or
//! `GRND_INSECURE | GRND_RANDOM`, and the number of bytes written as the result. Its error
//! type [`Errno`] is local until `uk-syscall` provides the shared one; the function is
//! shaped to be registered there, and [`fill_bytes`] is the read path for `/dev/urandom` and
//! `/dev/random` in `uk-vfs`.
//!
//! Unikraft 0.11's generator ran 8 rounds while calling itself ChaCha20, seeded from the wall
//! clock, ignored getrandom's flags, ignored RDRAND's carry flag and had no fallback between
//! hardware and software; each of those is a test here.
//!
//! # Features
//!
//! - `ktest`: registers in-image test cases with `uk-test` (the right source is chosen for
//!   the CPU, bit statistics of 1 MiB, successive outputs differ, reseeding works).
//!
//! # Example
//!
//! ```
//! use uk_random::{Pool, ReseedPolicy, Wait, GRND_NONBLOCK};
//!
//! // The image-wide generator: `uk_random::init(clock)` once at boot, then
//! // `uk_random::getrandom(&mut buf, flags)`. A pool of one's own works the same way:
//! let pool = Pool::new(uk_random::detect_hardware, ReseedPolicy::DEFAULT);
//! let mut key = [0u8; 32];
//! match pool.getrandom(&mut key, GRND_NONBLOCK) {
//!     Ok(n) => assert_eq!(n, 32),
//!     // No instruction on this CPU and no clock registered for jitter.
//!     Err(errno) => assert_eq!(errno, uk_random::Errno::EAGAIN),
//! }
//! assert_eq!(pool.getrandom(&mut key, 0x8), Err(uk_random::Errno::EINVAL));
//! # let _ = Wait::Yes;
//! ```
#![no_std]

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod device;
mod drbg;
mod getrandom;
mod global;
mod hw;
mod irq;
mod jitter;
mod pool;
mod source;
pub mod stats;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(all(feature = "ktest", target_os = "none"))]
mod ktest;

#[cfg(target_arch = "aarch64")]
pub use aarch64::Rndr;
pub use device::{DeviceError, EntropyDevice};
pub use drbg::{ChaCha20Drbg, ReseedPolicy};
pub use getrandom::{Errno, GRND_INSECURE, GRND_NONBLOCK, GRND_RANDOM, MAX_COUNT, check_flags};
pub use global::{fill_bytes, getrandom, global, init, next_u64, set_entropy_device, status};
#[cfg(target_arch = "aarch64")]
pub use hw::rndr_field;
#[cfg(target_arch = "x86_64")]
pub use hw::{CpuFeatures, cpu_features};
pub use hw::{Hardware, detect_hardware, hardware_kind};
pub use jitter::{DEFAULT_SAMPLES, Jitter};
pub use pool::{CHUNK, Error, Pool, Status, Wait};
pub use source::{Output, RANDOM_ATTEMPTS, RandomSource, SEED_ATTEMPTS, SourceError, SourceKind};
#[cfg(target_arch = "x86_64")]
pub use x86_64::Rdrand;

#[cfg(test)]
mod rfc8439;
