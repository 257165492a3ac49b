//! virtio-9p as a [`uk_9pfs::Transport`].

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use uk_9pfs::wire::HEADER_SIZE;
use uk_9pfs::{Transport, TransportError};
use uk_hal::Platform;
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport as VirtioTransport};

use crate::device::{DeviceInfo, Error, Location, find_first};
use crate::polled::{PolledQueue, System, Timeout, WaitEnv};

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
pub(crate) const QUEUE_SIZE: usize = 16;

/// A virtio-9p device carrying 9P messages for uk-9pfs.
///
/// Made by [`find_9p`]; drives the device's request queue over a virtio-mmio or PCI
/// transport from virtio-drivers. The device is *polled*: [`Transport::round_trip`] puts
/// the request and the reply buffer on the queue, notifies the device, and then waits for
/// the device to use them by calling [`uk_hal::relax`] in a loop. Inside a uk-sched thread
/// that yields, so the other threads run while QEMU's I/O thread answers (virtio-drivers'
/// own `VirtIO9p` spins in its `request`, holding the CPU for the whole round trip; that is
/// why this crate drives its queues itself). The device's interrupt stays off (PCI INTx
/// disabled; the virtio-mmio SPI is never enabled at the GIC).
///
/// A request waits at most its timeout ([`Virtio9pTransport::set_timeout`], else
/// [`crate::default_timeout`], 10 s unless changed), measured on the board clock
/// ([`uk_hal::system_clock`]; without one, in turns of the wait:
/// [`crate::NS_PER_TURN_WITHOUT_CLOCK`]). A device that has not answered by then is reset,
/// so that it lets go of the request's buffers, and put out of use: that round trip and
/// every later one fail at once with [`TransportError::Io`] (logged with the device's
/// [`Error::Timeout`]), which uk-9pfs gives its VFS callers as `EIO`.
///
/// Dropping it resets the device and makes it available to [`find_9p`] again (a device
/// that timed out comes back up afresh when opened again).
pub struct Virtio9pTransport {
    queue: PolledQueue<QUEUE_SIZE>,
    mount_tag: String,
    timeout: Timeout,
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
        Ok(Self {
            queue,
            mount_tag,
            timeout: Timeout::new(),
        })
    }

    /// The mount tag the device reports (QEMU `mount_tag=`).
    pub fn mount_tag(&self) -> &str {
        &self.mount_tag
    }

    /// Where the device is.
    pub fn location(&self) -> Location {
        self.queue.location()
    }

    /// How long a round trip waits for the device: its own timeout if
    /// [`Virtio9pTransport::set_timeout`] set one, else [`crate::default_timeout`].
    pub fn timeout(&self) -> Duration {
        self.timeout.get()
    }

    /// Sets how long a round trip waits for the device, in place of
    /// [`crate::default_timeout`] (set it before handing the transport to uk-9pfs).
    /// `Duration::MAX` waits as good as forever.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout.set(timeout);
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
    ///
    /// # Errors
    ///
    /// [`TransportError::TooLarge`] for a request over [`MAX_MESSAGE_SIZE`] or a reply
    /// buffer shorter than a header; [`TransportError::Io`] for a request shorter than a
    /// header, a reply whose size field disagrees with what the device wrote, or a device
    /// that failed or did not answer within [`Virtio9pTransport::timeout`] (then or
    /// before; see the type's docs).
    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let timeout = self.timeout();
        round_trip_in(&mut System, &mut self.queue, timeout, request, reply)
    }
}

/// [`Virtio9pTransport::round_trip`] over `queue`, waiting in `env`.
pub(crate) fn round_trip_in<T: VirtioTransport>(
    env: &mut impl WaitEnv,
    queue: &mut PolledQueue<QUEUE_SIZE, T>,
    timeout: Duration,
    request: &[u8],
    reply: &mut [u8],
) -> Result<usize, TransportError> {
    if request.len() > MAX_MESSAGE_SIZE || reply.len() < HEADER_SIZE {
        return Err(TransportError::TooLarge);
    }
    if request.len() < HEADER_SIZE {
        return Err(TransportError::Io);
    }
    match queue.exchange_in(env, &[request], &mut [reply], timeout) {
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
                queue.location()
            );
            Err(TransportError::Io)
        }
        // Logged by the queue, once for a device out of use.
        Err(_) => Err(TransportError::Io),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Device, FakeEnv, FakeTransport, Shared, claimed};
    use std::boxed::Box;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use uk_9pfs::NinePFs;
    use uk_9pfs::wire::{QT_DIR, Qid, Reply, Request, VERSION_9P2000_L};
    use uk_vfs::{Errno, O_RDONLY, RamFs, Vfs};

    /// A 9P server's answer: Rversion, Rattach (a directory), ENOENT for anything else.
    fn serve(request: &[u8]) -> Vec<u8> {
        let (tag, request) = Request::decode(request).expect("a 9P request");
        let reply = match request {
            Request::Version { msize, .. } => Reply::Version {
                msize,
                version: VERSION_9P2000_L,
            },
            Request::Attach { .. } => Reply::Attach {
                qid: Qid {
                    kind: QT_DIR,
                    version: 0,
                    path: 1,
                },
            },
            _ => Reply::Lerror { ecode: 2 },
        };
        let mut out = Vec::new();
        reply.encode(tag, &mut out).unwrap();
        out
    }

    /// [`Virtio9pTransport`]'s round trip over a fake device, which answers while `alive`.
    struct Fake9p {
        queue: PolledQueue<QUEUE_SIZE, FakeTransport>,
        env: FakeEnv<Box<dyn FnMut(u64) + Send>>,
        turns: Arc<AtomicU64>,
    }

    impl Transport for Fake9p {
        fn max_message_size(&self) -> usize {
            8192
        }
        fn round_trip(
            &mut self,
            request: &[u8],
            reply: &mut [u8],
        ) -> Result<usize, TransportError> {
            let before = self.env.turns;
            let got = round_trip_in(
                &mut self.env,
                &mut self.queue,
                Duration::from_millis(100),
                request,
                reply,
            );
            self.turns
                .fetch_add(self.env.turns - before, Ordering::Relaxed);
            got
        }
    }

    #[test]
    fn a_device_that_stops_answering_is_eio_at_the_vfs_at_once_after_the_first_time() {
        let device: Shared = Device::new(DeviceType::_9P, &[]);
        let (location, claim) = claimed(16);
        let queue = PolledQueue::new(FakeTransport(device.clone()), location, claim).unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let (answering, awake) = (device.clone(), alive.clone());
        // The server answers in the first turn of each wait, while alive.
        let on_turn: Box<dyn FnMut(u64) + Send> = Box::new(move |_| {
            if awake.load(Ordering::Relaxed) && answering.lock().unwrap().pending() > 0 {
                answering.lock().unwrap().answer(serve);
            }
        });
        let turns = Arc::new(AtomicU64::new(0));
        let transport = Fake9p {
            queue,
            env: FakeEnv::clocked(1_000_000, on_turn),
            turns: turns.clone(),
        };
        let vfs = Vfs::new(RamFs::new());
        vfs.mkdir("/share", 0o755).unwrap();
        vfs.mount("/share", NinePFs::mount(transport, b"").unwrap())
            .unwrap();
        assert_eq!(vfs.open("/share/missing", O_RDONLY, 0), Err(Errno::ENOENT));
        assert_eq!(device.lock().unwrap().resets, 0);

        alive.store(false, Ordering::Relaxed);
        turns.store(0, Ordering::Relaxed);
        assert_eq!(vfs.open("/share/gone", O_RDONLY, 0), Err(Errno::EIO));
        // The 100 ms of the timeout at 1 ms a turn, then the device reset.
        assert_eq!(turns.load(Ordering::Relaxed), 100);
        assert_eq!(device.lock().unwrap().resets, 1);
        // Later calls fail at once, and the device is never notified again.
        let notified = device.lock().unwrap().notified;
        assert_eq!(vfs.open("/share/gone", O_RDONLY, 0), Err(Errno::EIO));
        assert_eq!(vfs.stat("/share/other").err(), Some(Errno::EIO));
        assert_eq!(turns.load(Ordering::Relaxed), 100);
        assert_eq!(device.lock().unwrap().notified, notified);
    }
}
