//! virtio-rng, the virtio entropy device, as a [`uk_random::EntropyDevice`].

use alloc::boxed::Box;
use core::time::Duration;

use uk_hal::Platform;
use uk_random::{EntropyDevice, Output, SourceError, SourceKind};
use virtio_drivers::transport::DeviceType;

use crate::device::{DeviceInfo, Error, Location, find_first};
use crate::polled::{PolledQueue, Timeout};

/// Descriptors in the queue: a request is one device-writable buffer, one at a time.
const QUEUE_SIZE: usize = 4;

/// Answers of zero bytes in a row after which a read gives up: the device has nothing to
/// give (a rate-limited or exhausted backend), and a caller waiting for a seed should fall
/// back rather than wait forever.
const EMPTY_ANSWERS: u32 = 16;

/// How [`EntropyDevice::kind`] names this device.
pub const VIRTIO_RNG: SourceKind = SourceKind::Other("virtio-rng");

/// A virtio entropy device (QEMU `-device virtio-rng-pci` on x86 `pc`,
/// `-device virtio-rng-device` on `virt` and `microvm`): bytes from the host's generator
/// (QEMU's default backend reads the host's `/dev/urandom`).
///
/// Made by [`find_rng`]; polled like every device here (a request waits through
/// [`uk_hal::relax`], a yield inside a uk-sched thread), for at most its timeout
/// ([`VirtioRng::set_timeout`], else [`crate::default_timeout`]): a device that does not
/// answer by then is reset and out of use, and this read and every later one fail with
/// [`Error::Timeout`] (uk-random then seeds from elsewhere or reports the failure).
/// Requests are serialised by a try-lock taken in the same relax loop, never by spinning on
/// a held lock: under the cooperative scheduler a thread spinning on a lock whose holder
/// waits for the device would never let the holder run again. The lock is held for one
/// read, whose every request ends by its deadline, so a waiter gets its turn too.
///
/// It implements [`EntropyDevice`], so it can seed uk-random's generator on a CPU without
/// a random-number instruction ([`install_rng`] does that for the image-wide one).
pub struct VirtioRng {
    queue: spin::Mutex<PolledQueue<QUEUE_SIZE>>,
    location: Location,
    timeout: Timeout,
}

impl core::fmt::Debug for VirtioRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioRng")
            .field("location", &self.location)
            .finish()
    }
}

impl VirtioRng {
    /// Opens the virtio-rng device `device` (from [`crate::devices`]) and brings it up.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `device` is not an entropy device, else what [`crate::open`]
    /// and the queue set-up ([`Error::Device`]) report.
    pub fn open(platform: &dyn Platform, device: &DeviceInfo) -> Result<Self, Error> {
        let queue = PolledQueue::open(platform, device, DeviceType::EntropySource)?;
        Ok(VirtioRng {
            queue: spin::Mutex::new(queue),
            location: device.location,
            timeout: Timeout::new(),
        })
    }

    /// Where the device is.
    pub fn location(&self) -> Location {
        self.location
    }

    /// How long each request waits for the device: its own timeout if
    /// [`VirtioRng::set_timeout`] set one, else [`crate::default_timeout`].
    pub fn timeout(&self) -> Duration {
        self.timeout.get()
    }

    /// Sets how long each request waits for the device (from the next request on), in
    /// place of [`crate::default_timeout`]. `Duration::MAX` waits as good as forever.
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }

    /// The device's status register as it reads now (a device out of use after a timeout
    /// reads back its reset: empty); for the in-image test of the timeout.
    #[cfg(feature = "ktest")]
    pub(crate) fn device_status(&self) -> virtio_drivers::transport::DeviceStatus {
        use virtio_drivers::transport::Transport as _;
        let queue = self.lock_queue();
        queue.transport().get_status()
    }

    /// The queue, taken by a try-lock in a relax loop (see the type's documentation).
    fn lock_queue(&self) -> spin::MutexGuard<'_, PolledQueue<QUEUE_SIZE>> {
        loop {
            if let Some(queue) = self.queue.try_lock() {
                return queue;
            }
            uk_hal::relax();
        }
    }

    /// Fills all of `dest` from the device, in as many requests as it takes (the device may
    /// answer with fewer bytes than asked).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the device did not answer a request in time (then or
    /// before: the device is out of use); [`Error::Device`] when a request fails, when the
    /// device claims to have written more than asked, or after 16 empty answers in a row.
    /// `dest` may then be partly written.
    pub fn read(&self, dest: &mut [u8]) -> Result<(), Error> {
        let mut queue = self.lock_queue();
        let timeout = self.timeout();
        fill_by_requests(dest, self.location, |rest| {
            queue.exchange(&[], &mut [rest], timeout)
        })
    }
}

/// Fills `dest` by asking `request` for the part still missing, until it is full; how
/// [`VirtioRng::read`] handles the device's answers (see its errors). The errors it makes
/// itself are logged here; those of `request` were logged where they arose (the queue).
fn fill_by_requests(
    dest: &mut [u8],
    location: Location,
    mut request: impl FnMut(&mut [u8]) -> Result<u32, Error>,
) -> Result<(), Error> {
    let mut filled = 0;
    let mut empty = 0;
    while filled < dest.len() {
        let rest = &mut dest[filled..];
        let asked = rest.len();
        let written = request(rest)? as usize;
        if written > asked {
            log::warn!("uk-virtio: {location}: virtio-rng wrote {written} bytes, asked {asked}");
            return Err(Error::Device(location, virtio_drivers::Error::IoError));
        }
        if written == 0 {
            empty += 1;
            if empty == EMPTY_ANSWERS {
                log::warn!(
                    "uk-virtio: {location}: virtio-rng answered {EMPTY_ANSWERS} times with nothing"
                );
                return Err(Error::Device(location, virtio_drivers::Error::NotReady));
            }
        } else {
            empty = 0;
        }
        filled += written;
    }
    Ok(())
}

impl EntropyDevice for VirtioRng {
    /// [`VIRTIO_RNG`].
    fn kind(&self) -> SourceKind {
        VIRTIO_RNG
    }

    /// [`VirtioRng::read`], its error (logged where it arose) reported as one failed
    /// attempt at seed output.
    fn fill_entropy(&self, dest: &mut [u8]) -> Result<(), SourceError> {
        self.read(dest).map_err(|_| SourceError {
            kind: VIRTIO_RNG,
            output: Output::Seed,
            attempts: 1,
        })
    }
}

/// Finds the first virtio entropy device the board reports and opens it.
///
/// # Errors
///
/// [`Error::NotFound`] if there is none; if every one failed to open, the first one's error.
pub fn find_rng(platform: &dyn Platform) -> Result<VirtioRng, Error> {
    find_first(platform, DeviceType::EntropySource, |device| {
        VirtioRng::open(platform, device).map(Some)
    })
}

/// Why [`install_rng`] did not make a device the seed source.
#[derive(Debug)]
pub enum InstallError {
    /// No device, or it could not be opened.
    Device(Error),
    /// uk-random refused it (failed self-test, or another device is registered).
    Refused(uk_random::DeviceError),
}

impl core::fmt::Display for InstallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InstallError::Device(e) => write!(f, "virtio-rng: {e}"),
            InstallError::Refused(e) => write!(f, "virtio-rng: {e}"),
        }
    }
}

impl core::error::Error for InstallError {}

/// Finds a virtio entropy device and registers it as the seed source of uk-random's
/// image-wide generator ([`uk_random::set_entropy_device`]), for a CPU without a working
/// random-number instruction. Call it before the first random bytes are asked for
/// (before [`uk_random::init`]); returns the device, which stays usable for reads of its
/// own ([`VirtioRng::read`]).
///
/// The device stays open for the rest of the run (it is leaked, as a `'static` seed
/// source must be); when uk-random refuses it, it is closed again.
///
/// # Errors
///
/// [`InstallError::Device`] when there is no device ([`Error::NotFound`]) or it could not
/// be opened; [`InstallError::Refused`] when it failed uk-random's self-test or a device is
/// registered already. The generator is unchanged in both cases.
pub fn install_rng(platform: &dyn Platform) -> Result<&'static VirtioRng, InstallError> {
    let rng = find_rng(platform).map_err(InstallError::Device)?;
    let rng: *mut VirtioRng = Box::into_raw(Box::new(rng));
    // SAFETY: `rng` comes from `Box::into_raw` and is never freed while registered.
    let registered = uk_random::set_entropy_device(unsafe { &*rng });
    if let Err(e) = registered {
        // SAFETY: refused, the generator kept no reference (`Pool::set_device`'s contract),
        // so this is the only owner of the box; dropping it resets and frees the device.
        drop(unsafe { Box::from_raw(rng) });
        return Err(InstallError::Refused(e));
    }
    // SAFETY: as above; registered, the box is never freed, so the reference stays valid.
    Ok(unsafe { &*rng })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const AT: Location = Location::Mmio {
        base: 0x0a00_0000,
        size: 0x200,
    };

    /// Answers each request with the next count of `answers` (as the device would, writing
    /// that many bytes, each one more than the last written); records the sizes asked.
    fn scripted<'a>(
        answers: &'a [u32],
        asked: &'a mut Vec<usize>,
    ) -> impl FnMut(&mut [u8]) -> Result<u32, Error> + 'a {
        let mut next = answers.iter();
        let mut byte = 0u8;
        move |rest: &mut [u8]| {
            asked.push(rest.len());
            let n = *next.next().expect("no more answers scripted");
            for b in rest.iter_mut().take(n as usize) {
                byte = byte.wrapping_add(1);
                *b = byte;
            }
            Ok(n)
        }
    }

    #[test]
    fn short_answers_are_continued_where_they_stopped() {
        let mut dest = [0u8; 10];
        let mut asked = Vec::new();
        fill_by_requests(&mut dest, AT, scripted(&[4, 0, 3, 3], &mut asked)).unwrap();
        assert_eq!(dest, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(asked, [10, 6, 6, 3]);
    }

    #[test]
    fn a_device_that_keeps_giving_nothing_or_too_much_is_an_error() {
        let mut dest = [0u8; 8];
        let mut answers = std::vec![1];
        answers.extend(core::iter::repeat_n(0, EMPTY_ANSWERS as usize));
        let mut asked = Vec::new();
        assert_eq!(
            fill_by_requests(&mut dest, AT, scripted(&answers, &mut asked)),
            Err(Error::Device(AT, virtio_drivers::Error::NotReady))
        );
        assert_eq!(asked.len(), 1 + EMPTY_ANSWERS as usize);

        assert_eq!(
            fill_by_requests(&mut dest, AT, scripted(&[9], &mut asked)),
            Err(Error::Device(AT, virtio_drivers::Error::IoError))
        );

        let failing = |_: &mut [u8]| Err(Error::Device(AT, virtio_drivers::Error::QueueFull));
        assert_eq!(
            fill_by_requests(&mut dest, AT, failing),
            Err(Error::Device(AT, virtio_drivers::Error::QueueFull))
        );
        let mut calls = 0;
        let silent = |_: &mut [u8]| {
            calls += 1;
            Err(Error::Timeout(AT))
        };
        assert_eq!(
            fill_by_requests(&mut dest, AT, silent),
            Err(Error::Timeout(AT))
        );
        assert_eq!(calls, 1, "a timed-out device is asked no more");
        // Nothing asked, nothing requested.
        let never = |_: &mut [u8]| -> Result<u32, Error> { unreachable!() };
        assert_eq!(fill_by_requests(&mut [], AT, never), Ok(()));
    }
}
