//! virtio-9p as a [`uk_9pfs::Transport`].

use alloc::string::String;
use alloc::vec::Vec;

use uk_9pfs::wire::HEADER_SIZE;
use uk_9pfs::{Transport, TransportError};
use uk_hal::Platform;
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport as VirtioTransport};

use crate::device::{DeviceInfo, Error, Location, find_first};
use crate::polled::PolledQueue;

/// The largest 9P message [`Virtio9pTransport`] carries: 64 KiB of payload plus 24 bytes, the
/// largest header of a read or write (`Twrite`: size, type, tag, fid, offset, count = 23
/// bytes; Linux's `P9_IOHDRSZ` is 24), so a client reads and writes in 64 KiB pieces.
///
/// Nothing in the transport needs a smaller limit: each message travels in one descriptor
/// whose buffer is the caller's (one contiguous range under the identity map), and QEMU
/// accepts any `msize` from 4096 up. Larger messages only cost the client bigger buffers.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 + 24;

/// Descriptors in the queue: a request and its reply take two (one with indirect
/// descriptors), and one request is in flight at a time.
const QUEUE_SIZE: usize = 16;

/// A virtio-9p device carrying 9P messages for uk-9pfs.
///
/// Made by [`find_9p`]; drives the device's request queue over a virtio-mmio or PCI
/// transport from virtio-drivers. The device is *polled*: [`Transport::round_trip`] puts
/// the request and the reply buffer on the queue, notifies the device, and then waits for
/// the device to use them by calling [`uk_hal::relax`] in a loop, with no timeout. Inside
/// a uk-sched thread that yields, so the other threads run while QEMU's I/O thread answers
/// (virtio-drivers' own `VirtIO9p` spins in its `request`, holding the CPU for the whole
/// round trip; that is why this crate drives its queues itself). A device that never answers
/// keeps the caller waiting, and the run's timeout ends it. The device's interrupt stays
/// off (PCI INTx disabled; the virtio-mmio SPI is never enabled at the GIC).
///
/// Dropping it resets the device and makes it available to [`find_9p`] again.
pub struct Virtio9pTransport {
    queue: PolledQueue<QUEUE_SIZE>,
    mount_tag: String,
}

impl core::fmt::Debug for Virtio9pTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Virtio9pTransport")
            .field("location", &self.location())
            .field("mount_tag", &self.mount_tag)
            .finish()
    }
}

impl Virtio9pTransport {
    /// Opens the virtio-9p device `device` (from [`crate::devices`]) and brings it up.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `device` is not a 9p device, else what [`crate::open`] and
    /// the device's initialisation ([`Error::Device`]) report.
    pub fn open(platform: &dyn Platform, device: &DeviceInfo) -> Result<Self, Error> {
        let queue = PolledQueue::open(platform, device, DeviceType::_9P)?;
        let mount_tag =
            read_mount_tag(queue.transport()).map_err(|e| Error::Device(device.location, e))?;
        Ok(Self { queue, mount_tag })
    }

    /// The mount tag the device reports (QEMU `mount_tag=`).
    pub fn mount_tag(&self) -> &str {
        &self.mount_tag
    }

    /// Where the device is.
    pub fn location(&self) -> Location {
        self.queue.location()
    }
}

/// The mount tag from the device's configuration space: a length (u16) and that many bytes.
fn read_mount_tag(transport: &SomeTransport<'static>) -> virtio_drivers::Result<String> {
    transport.read_consistent(|| {
        let len: u16 = transport.read_config_space(0)?;
        let mut bytes = Vec::with_capacity(usize::from(len));
        for i in 0..usize::from(len) {
            bytes.push(transport.read_config_space::<u8>(2 + i)?);
        }
        String::from_utf8(bytes).map_err(|_| virtio_drivers::Error::IoError)
    })
}

impl Transport for Virtio9pTransport {
    /// [`MAX_MESSAGE_SIZE`].
    fn max_message_size(&self) -> usize {
        MAX_MESSAGE_SIZE
    }

    /// Sends `request` and waits (through [`uk_hal::relax`]) for the reply in `reply`.
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
        match self.queue.exchange(&[request], &mut [reply]) {
            // The reply's own size field must say what the device delivered.
            Ok(len)
                if (HEADER_SIZE..=reply.len()).contains(&(len as usize))
                    && reply[..4] == len.to_le_bytes() =>
            {
                Ok(len as usize)
            }
            Ok(len) => {
                log::warn!(
                    "uk-virtio: {}: a reply of {len} bytes that its size field does not match",
                    self.location()
                );
                Err(TransportError::Io)
            }
            Err(e) => {
                log::warn!("uk-virtio: {}: 9p request failed: {e}", self.location());
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
    find_first(platform, DeviceType::_9P, |device| {
        // A device with another tag is dropped here: reset and free again.
        Virtio9pTransport::open(platform, device).map(|found| {
            tag.is_none_or(|tag| found.mount_tag() == tag)
                .then_some(found)
        })
    })
}
