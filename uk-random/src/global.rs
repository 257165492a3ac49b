//! The image-wide generator: one [`Pool`] over this CPU's hardware source.

use uk_hal::Clock;

use crate::device::{DeviceError, EntropyDevice};
use crate::drbg::ReseedPolicy;
use crate::getrandom::Errno;
use crate::hw::Hardware;
use crate::pool::{Error, Pool, Status, Wait};
use crate::source::SourceKind;

static GLOBAL: Pool<Hardware> = Pool::new(Hardware::detect, ReseedPolicy::DEFAULT);

/// The image-wide pool (hardware probed on first use).
pub fn global() -> &'static Pool<Hardware> {
    &GLOBAL
}

/// Registers the board clock (for timer jitter and time-based reseeding) and seeds the
/// global generator now, so the choice of source appears in the boot log.
///
/// Without this call the generator seeds itself on first use: from hardware, else from the
/// jitter of the image's system clock (which uk-rt registers at boot, see
/// [`uk_hal::system_clock`]). Only with neither (a host process, or a kernel that registers
/// no clock) do requests fail with `EIO` ([`Error::NoSource`]).
pub fn init(clock: &'static dyn Clock) -> Result<SourceKind, Error> {
    GLOBAL.set_clock(clock);
    GLOBAL.ensure_seeded(Wait::Yes)
}

/// Registers `device` as the global generator's seed source for when the CPU has no
/// working random-number instruction (see [`Pool::set_device`]: self-tested first, the
/// first device registered stays). Call it before [`init`], so that the first seed comes
/// from the device rather than from timer jitter.
pub fn set_entropy_device(device: &'static dyn EntropyDevice) -> Result<(), DeviceError> {
    GLOBAL.set_device(device)
}

/// The getrandom(2) handler: fills `buf` from the global generator and returns the number
/// of bytes written. Flags: [`crate::GRND_NONBLOCK`], [`crate::GRND_RANDOM`],
/// [`crate::GRND_INSECURE`]; see [`Pool::getrandom`].
///
/// Shaped for registration with `uk-syscall` (whose syscall glue will check the user
/// pointer and length and build the slice).
pub fn getrandom(buf: &mut [u8], flags: u32) -> Result<usize, Errno> {
    GLOBAL.getrandom(buf, flags)
}

/// Fills `buf` from the global generator, waiting for the first seed if needed: the read
/// path of `/dev/urandom` and `/dev/random` (which, as in Linux 5.6 and later, differ only
/// before the first seed, and this generator has no output before it).
pub fn fill_bytes(buf: &mut [u8]) -> Result<(), Error> {
    GLOBAL.fill(buf, Wait::Yes)
}

/// 64 random bits from the global generator.
pub fn next_u64() -> Result<u64, Error> {
    let mut bytes = [0u8; 8];
    fill_bytes(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// A snapshot of the global generator's state.
pub fn status() -> Status {
    GLOBAL.status()
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::boxed::Box;

    use super::*;
    use crate::source::tests::HostClock;

    #[test]
    fn the_global_generator_on_the_host() {
        let clock: &'static HostClock = Box::leak(Box::new(HostClock(std::time::Instant::now())));
        let kind = init(clock).expect("hardware or jitter on the host");
        assert_eq!(Some(kind), status().seeded_by);
        let expected = crate::hardware_kind().unwrap_or(SourceKind::Jitter);
        assert_eq!(kind, expected);
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        assert_eq!(getrandom(&mut a, 0), Ok(64));
        fill_bytes(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(next_u64().unwrap(), next_u64().unwrap());
        assert!(status().bytes >= 144);
    }
}
