//! virtio-9p as a [`uk_9pfs::Transport`].

use uk_9pfs::{Transport, TransportError};
use uk_hal::Platform;
use virtio_drivers::device::virtio_9p::VirtIO9p;
use virtio_drivers::transport::{DeviceType, SomeTransport};

use crate::UkHal;
use crate::device::{Claim, DeviceInfo, Error, Location, devices, open_claimed};

/// Bytes of a 9P message header: size (4), type (1), tag (2).
pub const HEADER_SIZE: usize = 7;

/// The largest 9P message [`Virtio9pTransport`] carries: 64 KiB of payload plus 24 bytes, the
/// largest header of a read or write (`Twrite`: size, type, tag, fid, offset, count = 23
/// bytes; Linux's `P9_IOHDRSZ` is 24), so a client reads and writes in 64 KiB pieces.
///
/// Nothing in the transport needs a smaller limit: each message travels in one descriptor
/// whose buffer is the caller's (one contiguous range under the identity map), and QEMU
/// accepts any `msize` from 4096 up. Larger messages only cost the client bigger buffers.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 + 24;

/// A virtio-9p device carrying 9P messages for uk-9pfs.
///
/// Made by [`find_9p`]; wraps virtio-drivers' `VirtIO9p` over a virtio-mmio or PCI
/// transport. The device is *polled*: [`Transport::round_trip`] puts the request and the
/// reply buffer on the queue, notifies the device and spins until the device has used them
/// (virtio-drivers' `add_notify_wait_pop`), with no timeout. Under QEMU the reply comes
/// while the vCPU spins (QEMU's I/O thread answers); a device that never answers keeps the
/// caller spinning, and the run's timeout ends it. The device's interrupt stays off (PCI
/// INTx disabled; the virtio-mmio SPI is never enabled at the GIC).
///
/// Dropping it resets the device and makes it available to [`find_9p`] again.
pub struct Virtio9pTransport {
    // Field order matters: the device is reset (dropped) before the claim is released.
    device: VirtIO9p<UkHal, SomeTransport<'static>>,
    location: Location,
    _claim: Claim,
}

impl core::fmt::Debug for Virtio9pTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Virtio9pTransport")
            .field("location", &self.location)
            .field("mount_tag", &self.device.mount_tag())
            .finish()
    }
}

impl Virtio9pTransport {
    /// Opens the virtio-9p device `device` (from [`crate::devices`]) and brings it up.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `device` is not a 9p device, else what [`crate::open`] and
    /// the driver's initialisation ([`Error::Device`]) report.
    pub fn open(platform: &dyn Platform, device: &DeviceInfo) -> Result<Self, Error> {
        if device.device_type != DeviceType::_9P {
            return Err(Error::NotFound);
        }
        let (transport, claim) = open_claimed(platform, device)?;
        let device_9p =
            VirtIO9p::<UkHal, _>::new(transport).map_err(|e| Error::Device(device.location, e))?;
        Ok(Self {
            device: device_9p,
            location: device.location,
            _claim: claim,
        })
    }

    /// The mount tag the device reports (QEMU `mount_tag=`).
    pub fn mount_tag(&self) -> &str {
        self.device.mount_tag()
    }

    /// Where the device is.
    pub fn location(&self) -> Location {
        self.location
    }
}

impl Transport for Virtio9pTransport {
    /// [`MAX_MESSAGE_SIZE`].
    fn max_message_size(&self) -> usize {
        MAX_MESSAGE_SIZE
    }

    /// Sends `request` and waits (spinning) for the reply in `reply`.
    ///
    /// `reply` should hold the negotiated `msize`: QEMU treats a reply that does not fit
    /// the buffer as a broken driver and stops the device.
    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        if request.len() > MAX_MESSAGE_SIZE || reply.len() < HEADER_SIZE {
            return Err(TransportError::TooLarge);
        }
        if request.len() < HEADER_SIZE {
            return Err(TransportError::Io);
        }
        match self.device.request(request, reply) {
            Ok(len) if (len as usize) <= reply.len() => Ok(len as usize),
            Ok(len) => {
                log::warn!("uk-virtio: {}: reply of {len} bytes overran", self.location);
                Err(TransportError::Io)
            }
            Err(e) => {
                log::warn!("uk-virtio: {}: 9p request failed: {e}", self.location);
                Err(TransportError::Io)
            }
        }
    }
}

/// Finds a virtio-9p device, with mount tag `tag` if given (else the first one), and opens
/// it as a [`uk_9pfs::Transport`].
///
/// Devices are tried in [`crate::devices`] order; a device with another tag is reset and
/// left free again. `cargo uk run --share DIR` gives the guest one with tag `share`.
///
/// # Errors
///
/// [`Error::NotFound`] if the board reports no 9p device (with that tag); if a 9p device
/// could not be opened and none matched, that device's error ([`Error::Busy`],
/// [`Error::NotMapped`], ...).
pub fn find_9p(platform: &dyn Platform, tag: Option<&str>) -> Result<Virtio9pTransport, Error> {
    let mut failure = None;
    for device in devices(platform)
        .iter()
        .filter(|d| d.device_type == DeviceType::_9P)
    {
        match Virtio9pTransport::open(platform, device) {
            Ok(found) if tag.is_none_or(|tag| found.mount_tag() == tag) => return Ok(found),
            Ok(_) => {}
            Err(e) => {
                match e {
                    Error::Busy(_) => log::debug!("uk-virtio: {e}"),
                    _ => log::warn!("uk-virtio: {e}"),
                }
                failure.get_or_insert(e);
            }
        }
    }
    Err(failure.unwrap_or(Error::NotFound))
}
