//! [`EntropyDevice`]: a device that hands out entropy bytes, the seed source between the
//! CPU's instruction and timer jitter.
//!
//! A CPU without a random-number instruction (QEMU `-cpu cortex-a72`, `-cpu qemu64`, most
//! Armv8.0 boards) otherwise has only timer jitter to seed from, which is weak under a
//! hypervisor whose clock is itself emulated. A hypervisor usually offers a better source:
//! the virtio entropy device (`-device virtio-rng-pci`, `virtio-rng-device`), which reads the
//! host's generator. uk-random does not drive devices; a driver crate (uk-virtio's
//! `VirtioRng`) implements this trait and registers its device with
//! [`set_entropy_device`](crate::set_entropy_device) or [`Pool::set_device`](crate::Pool::set_device).
//!
//! Devices answer slowly (a request goes out to the host and back) and may wait for their
//! answer by yielding to other threads, so a pool never reads one under its interrupt-masked
//! lock, and only for seeds: 32 bytes at the first seed and at each reseed.

use zeroize::Zeroize;

use crate::source::{SourceError, SourceKind};

/// A device that fills buffers with entropy from outside the CPU (a hypervisor's generator,
/// a TPM, a hardware noise source behind a bus).
///
/// Methods take `&self`: the device is shared by every pool and thread, so an
/// implementation serialises its requests itself, without holding a lock across a yield
/// that another waiter would spin on.
pub trait EntropyDevice: Sync {
    /// What the device is, for reports and logs (`SourceKind::Other("virtio-rng")`).
    fn kind(&self) -> SourceKind;

    /// Fills all of `dest` with bytes from the device.
    ///
    /// # Errors
    ///
    /// A [`SourceError`] when the device failed or kept returning nothing; `dest` may then
    /// be partly written, and the caller must not use it.
    fn fill_entropy(&self, dest: &mut [u8]) -> Result<(), SourceError>;
}

/// Why a device was not taken as a seed source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The pool already has a device: the first registration stays.
    AlreadySet(SourceKind),
    /// The device failed to answer its self-test.
    Failed(SourceError),
    /// The device answered its self-test with bytes that cannot be random (the reason).
    Rejected(SourceKind, &'static str),
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeviceError::AlreadySet(kind) => write!(f, "{kind} is already the entropy device"),
            DeviceError::Failed(e) => write!(f, "entropy device self-test: {e}"),
            DeviceError::Rejected(kind, why) => write!(f, "{kind} failed its self-test: {why}"),
        }
    }
}

impl core::error::Error for DeviceError {}

/// Bytes read twice by [`self_test`].
const SELF_TEST_BYTES: usize = 32;

/// Reads [`SELF_TEST_BYTES`] twice: both reads must succeed, neither may be one byte
/// repeated (a device returning zeroes, or an unwritten buffer), and they must differ.
pub(crate) fn self_test(device: &dyn EntropyDevice) -> Result<(), DeviceError> {
    let mut first = [0u8; SELF_TEST_BYTES];
    let mut second = [0u8; SELF_TEST_BYTES];
    let verdict = match (
        device.fill_entropy(&mut first),
        device.fill_entropy(&mut second),
    ) {
        (Err(e), _) | (_, Err(e)) => Err(DeviceError::Failed(e)),
        _ if [&first, &second]
            .iter()
            .any(|bytes| bytes.iter().all(|&b| b == bytes[0])) =>
        {
            Err(DeviceError::Rejected(
                device.kind(),
                "it returns one byte repeated",
            ))
        }
        _ if first == second => Err(DeviceError::Rejected(
            device.kind(),
            "it returns the same bytes twice",
        )),
        _ => Ok(()),
    };
    first.zeroize();
    second.zeroize();
    verdict
}

#[cfg(test)]
pub(crate) mod tests {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use super::*;
    use crate::source::Output;

    /// A device over a counter (xorshift), failing its first `failures` requests; counts
    /// the requests it answered.
    pub(crate) struct FakeDevice {
        pub(crate) failures: AtomicU32,
        pub(crate) state: AtomicU64,
        pub(crate) requests: AtomicU32,
        /// Answers with zeroes instead.
        pub(crate) zeroes: bool,
    }

    impl FakeDevice {
        pub(crate) const fn new(failures: u32) -> FakeDevice {
            FakeDevice {
                failures: AtomicU32::new(failures),
                state: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
                requests: AtomicU32::new(0),
                zeroes: false,
            }
        }
    }

    impl EntropyDevice for FakeDevice {
        fn kind(&self) -> SourceKind {
            SourceKind::Other("fake device")
        }
        fn fill_entropy(&self, dest: &mut [u8]) -> Result<(), SourceError> {
            let failing = self
                .failures
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(SourceError {
                    kind: self.kind(),
                    output: Output::Seed,
                    attempts: 1,
                });
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            for b in dest.iter_mut() {
                let mut x = self.state.load(Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.state.store(x, Ordering::Relaxed);
                *b = if self.zeroes { 0 } else { x as u8 };
            }
            Ok(())
        }
    }

    /// Answers every request with the same bytes.
    struct Replaying;

    impl EntropyDevice for Replaying {
        fn kind(&self) -> SourceKind {
            SourceKind::Other("replaying")
        }
        fn fill_entropy(&self, dest: &mut [u8]) -> Result<(), SourceError> {
            for (i, b) in dest.iter_mut().enumerate() {
                *b = i as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn the_self_test_takes_a_working_device_and_refuses_broken_ones() {
        assert_eq!(self_test(&FakeDevice::new(0)), Ok(()));
        assert!(matches!(
            self_test(&FakeDevice::new(1)),
            Err(DeviceError::Failed(SourceError {
                kind: SourceKind::Other("fake device"),
                ..
            }))
        ));
        let zeroes = FakeDevice {
            zeroes: true,
            ..FakeDevice::new(0)
        };
        assert_eq!(
            self_test(&zeroes),
            Err(DeviceError::Rejected(
                SourceKind::Other("fake device"),
                "it returns one byte repeated"
            ))
        );
        assert_eq!(
            self_test(&Replaying),
            Err(DeviceError::Rejected(
                SourceKind::Other("replaying"),
                "it returns the same bytes twice"
            ))
        );
    }
}
