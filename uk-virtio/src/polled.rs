//! One virtqueue driven by polling: what every driver of this crate shares.

use core::sync::atomic::{AtomicUsize, Ordering};

use uk_hal::Platform;
use virtio_drivers::device::common::Feature;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport as VirtioTransport};

use crate::UkHal;
use crate::device::{Claim, DeviceInfo, Error, Location, open_claimed};

/// A device brought up with one virtqueue (index 0) of `SIZE` descriptors, whose requests
/// wait for the device by calling [`uk_hal::relax`] in a loop.
///
/// virtio-drivers' own drivers spin in their requests, holding the CPU for the whole round
/// trip; inside a uk-sched thread a relax is a yield, so the other threads run while QEMU's
/// I/O thread answers. That is why this crate drives its queues itself.
pub(crate) struct PolledQueue<const SIZE: usize> {
    // Field order matters: the transport resets the device when dropped, before the queue's
    // memory is freed and before the claim is released.
    transport: SomeTransport<'static>,
    queue: VirtQueue<UkHal, SIZE>,
    location: Location,
    _claim: Claim,
}

/// The one queue the drivers here use.
const QUEUE: u16 = 0;

impl<const SIZE: usize> PolledQueue<SIZE> {
    /// Opens `device`, which must be of type `kind`, negotiates indirect descriptors and
    /// event indices when offered, and sets up queue 0.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if `device` is of another type, else what [`crate::open`] and
    /// the queue set-up ([`Error::Device`]) report.
    pub(crate) fn open(
        platform: &dyn Platform,
        device: &DeviceInfo,
        kind: DeviceType,
    ) -> Result<Self, Error> {
        if device.device_type != kind {
            return Err(Error::NotFound);
        }
        let (mut transport, claim) = open_claimed(platform, device)?;
        let location = device.location;
        let features = transport
            .begin_init(Feature::RING_INDIRECT_DESC | Feature::RING_EVENT_IDX | Feature::VERSION_1);
        let queue = VirtQueue::new(
            &mut transport,
            QUEUE,
            features.contains(Feature::RING_INDIRECT_DESC),
            features.contains(Feature::RING_EVENT_IDX),
        )
        .map_err(|e| Error::Device(location, e))?;
        transport.finish_init();
        Ok(Self {
            transport,
            queue,
            location,
            _claim: claim,
        })
    }

    /// The device's transport (for its configuration space).
    pub(crate) fn transport(&self) -> &SomeTransport<'static> {
        &self.transport
    }

    /// Where the device is.
    pub(crate) fn location(&self) -> Location {
        self.location
    }

    /// Puts `inputs` (read by the device) and `outputs` (written by it) on the queue as one
    /// chain, waits (relaxing) until the device has used them, and returns the length the
    /// device wrote.
    pub(crate) fn exchange<'a>(
        &mut self,
        inputs: &'a [&'a [u8]],
        outputs: &'a mut [&'a mut [u8]],
    ) -> virtio_drivers::Result<u32> {
        // SAFETY: the buffers stay borrowed by `inputs`/`outputs`, untouched, until
        // `pop_used` below returns with this token; nothing else is in flight on the queue
        // (`&mut self`).
        let token = unsafe { self.queue.add(inputs, outputs) }?;
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        while !self.queue.can_pop() {
            WAIT_TURNS.fetch_add(1, Ordering::Relaxed);
            uk_hal::relax();
        }
        // SAFETY: the same buffers as given to `add` with this token, still valid.
        unsafe { self.queue.pop_used(token, inputs, outputs) }
    }
}

/// Turns of the wait loop of every polled request so far ([`wait_turns`]).
static WAIT_TURNS: AtomicUsize = AtomicUsize::new(0);

/// How many times, so far, a request to a device of this crate (9p, entropy) found its
/// answer not there yet and relaxed ([`uk_hal::relax`]) before looking again; 0 if QEMU
/// always answered before the guest looked. A diagnostic, and what tells a test whether
/// there was a wait to share.
pub fn wait_turns() -> usize {
    WAIT_TURNS.load(Ordering::Relaxed)
}
