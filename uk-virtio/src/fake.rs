//! A fake virtio device for host tests: a virtio-drivers [`Transport`] over shared state,
//! and the device's side of the split virtqueue the driver sets up (it reads the chains the
//! driver made available and puts them on the used ring), plus a [`WaitEnv`] whose clock
//! and relax turns the test controls.
//!
//! virtio-drivers has a fake transport of its own, but only for its own tests
//! (`#[cfg(test)]`), so this crate has this one.

use std::sync::{Arc, Mutex};
use std::vec::Vec;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::device::{Claim, Location};
use crate::polled::WaitEnv;

/// Descriptor flag: the chain goes on at `next`.
const NEXT: u16 = 1;
/// Descriptor flag: the device writes the buffer.
const WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors.
const INDIRECT: u16 = 4;

/// Where the driver put queue 0.
#[derive(Clone, Copy, Debug)]
struct Rings {
    size: u16,
    descriptors: PhysAddr,
    avail: PhysAddr,
    used: PhysAddr,
}

/// The device's state, shared by its transport and the test.
#[derive(Debug)]
pub(crate) struct Device {
    device_type: DeviceType,
    /// The status register.
    pub(crate) status: DeviceStatus,
    /// Times the driver wrote 0 (reset) to the status register after the device was up.
    pub(crate) resets: u32,
    /// The device ignores a reset: its status reads back unchanged.
    pub(crate) ignores_reset: bool,
    /// Notifications of queue 0 so far.
    pub(crate) notified: u32,
    config: Vec<u8>,
    rings: Option<Rings>,
    /// The next available-ring entry the device takes.
    next_avail: u16,
    /// The used ring's index as the device last wrote it.
    used_idx: u16,
}

/// The shared handle on a fake device.
pub(crate) type Shared = Arc<Mutex<Device>>;

impl Device {
    /// A device of type `device_type` with configuration space `config`, not brought up.
    pub(crate) fn new(device_type: DeviceType, config: &[u8]) -> Shared {
        Arc::new(Mutex::new(Device {
            device_type,
            status: DeviceStatus::empty(),
            resets: 0,
            ignores_reset: false,
            notified: 0,
            config: config.to_vec(),
            rings: None,
            next_avail: 0,
            used_idx: 0,
        }))
    }

    /// Chains the driver made available that the device has not taken yet.
    pub(crate) fn pending(&self) -> u16 {
        let Some(rings) = self.rings else { return 0 };
        // SAFETY: `avail` is the driver area virtio-drivers allocated for the queue (live
        // while the queue is, which the test keeps); `idx` is its second u16.
        let idx = unsafe { ((rings.avail + 2) as *const u16).read_volatile() };
        idx.wrapping_sub(self.next_avail)
    }

    /// Takes the next available chain: gives the bytes of its device-readable buffers to
    /// `answer` and writes what it returns to the device-writable ones (as much as fits),
    /// then puts the chain on the used ring with the length written, reported as `id` if
    /// given (a broken device) else the chain's head. `false` if nothing was available.
    pub(crate) fn answer_as(
        &mut self,
        id: Option<u32>,
        answer: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> bool {
        if self.pending() == 0 {
            return false;
        }
        let rings = self.rings.expect("pending chains without a queue");
        let size = usize::from(rings.size);
        let slot = usize::from(self.next_avail) % size;
        // SAFETY: the avail ring (flags, idx, ring[size]) lies in the driver area the driver
        // allocated for `size` entries.
        let head = unsafe { ((rings.avail + 4) as *const u16).add(slot).read_volatile() };
        assert!(usize::from(head) < size, "a chain head outside the table");
        let (mut input, mut writable) = (Vec::new(), Vec::new());
        let mut index = head;
        loop {
            let at = rings.descriptors + 16 * u64::from(index);
            // SAFETY: `index` < `size` (the head is checked above, each `next` below), and the
            // table holds `size` descriptors of 16 bytes: address, length, flags, next.
            let (addr, len, flags, next) = unsafe {
                (
                    (at as *const u64).read_volatile(),
                    ((at + 8) as *const u32).read_volatile(),
                    ((at + 12) as *const u16).read_volatile(),
                    ((at + 14) as *const u16).read_volatile(),
                )
            };
            assert_eq!(
                flags & INDIRECT,
                0,
                "the fake device offers no indirect descriptors"
            );
            if flags & WRITE == 0 {
                // SAFETY: a device-readable buffer of the driver's, `len` bytes at `addr`
                // (identity mapped), live until the driver pops the chain.
                input.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(addr as *const u8, len as usize)
                });
            } else {
                writable.push((addr, len as usize));
            }
            if flags & NEXT == 0 {
                break;
            }
            assert!(usize::from(next) < size, "a chain leaves the table");
            index = next;
        }
        let output = answer(&input);
        let mut written = 0;
        for (addr, len) in writable {
            let n = len.min(output.len() - written);
            // SAFETY: a device-writable buffer of the driver's, `len` >= `n` bytes at `addr`,
            // not otherwise accessed until the driver pops the chain.
            unsafe {
                std::ptr::copy_nonoverlapping(output[written..].as_ptr(), addr as *mut u8, n);
            }
            written += n;
        }
        let used_slot = usize::from(self.used_idx) % size;
        let element = (rings.used + 4 + 8 * used_slot as u64) as *mut u32;
        // SAFETY: the used ring (flags, idx, ring[size] of id and length) lies in the device
        // area the driver allocated for `size` entries; only the device writes it.
        unsafe {
            element.write_volatile(id.unwrap_or(u32::from(head)));
            element.add(1).write_volatile(written as u32);
            self.used_idx = self.used_idx.wrapping_add(1);
            ((rings.used + 2) as *mut u16).write_volatile(self.used_idx);
        }
        self.next_avail = self.next_avail.wrapping_add(1);
        true
    }

    /// [`Device::answer_as`] with the chain's own head: a working device.
    pub(crate) fn answer(&mut self, answer: impl FnOnce(&[u8]) -> Vec<u8>) -> bool {
        self.answer_as(None, answer)
    }
}

/// The driver's side: a virtio-drivers transport onto a [`Device`].
#[derive(Debug)]
pub(crate) struct FakeTransport(pub(crate) Shared);

impl Transport for FakeTransport {
    fn device_type(&self) -> DeviceType {
        self.0.lock().unwrap().device_type
    }

    fn read_device_features(&mut self) -> u64 {
        0
    }

    fn write_driver_features(&mut self, _driver_features: u64) {}

    fn max_queue_size(&mut self, _queue: u16) -> u32 {
        256
    }

    fn notify(&mut self, queue: u16) {
        assert_eq!(queue, 0);
        self.0.lock().unwrap().notified += 1;
    }

    fn get_status(&self) -> DeviceStatus {
        self.0.lock().unwrap().status
    }

    fn set_status(&mut self, status: DeviceStatus) {
        let mut device = self.0.lock().unwrap();
        if status.is_empty() && device.status.contains(DeviceStatus::DRIVER_OK) {
            device.resets += 1;
            if device.ignores_reset {
                return;
            }
        }
        device.status = status;
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        assert_eq!(queue, 0);
        self.0.lock().unwrap().rings = Some(Rings {
            size: size as u16,
            descriptors,
            avail: driver_area,
            used: device_area,
        });
    }

    fn queue_unset(&mut self, _queue: u16) {
        self.0.lock().unwrap().rings = None;
    }

    fn queue_used(&mut self, _queue: u16) -> bool {
        self.0.lock().unwrap().rings.is_some()
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }

    fn read_config_generation(&self) -> u32 {
        0
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let device = self.0.lock().unwrap();
        let bytes = device
            .config
            .get(offset..offset + size_of::<T>())
            .ok_or(Error::ConfigSpaceTooSmall)?;
        T::read_from_bytes(bytes).map_err(|_| Error::ConfigSpaceTooSmall)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _offset: usize,
        _value: T,
    ) -> Result<(), Error> {
        Err(Error::Unsupported)
    }
}

/// A place for a fake device no other test uses (each test takes its own `n`), claimed.
pub(crate) fn claimed(n: u64) -> (Location, Claim) {
    let location = Location::Mmio {
        base: 0xfa4e_0000 + 0x200 * n,
        size: 0x200,
    };
    (
        location,
        Claim::take(location).expect("fake location in use"),
    )
}

/// A test's clock and relax: each turn advances the clock by `step_ns` (if there is a clock)
/// and then lets `on_turn` act (the device answering, say).
pub(crate) struct FakeEnv<F: FnMut(u64)> {
    /// The clock's reading; `None`: no clock registered.
    pub(crate) now: Option<u64>,
    /// How far a turn moves the clock.
    pub(crate) step_ns: u64,
    /// Turns so far.
    pub(crate) turns: u64,
    /// What happens on each turn (given its number, from 1).
    pub(crate) on_turn: F,
}

impl<F: FnMut(u64)> FakeEnv<F> {
    /// A clock at 1 s that a turn moves by `step_ns`.
    pub(crate) fn clocked(step_ns: u64, on_turn: F) -> Self {
        FakeEnv {
            now: Some(1_000_000_000),
            step_ns,
            turns: 0,
            on_turn,
        }
    }
}

impl<F: FnMut(u64)> WaitEnv for FakeEnv<F> {
    fn now_ns(&self) -> Option<u64> {
        self.now
    }

    fn relax(&mut self) {
        self.turns += 1;
        if let Some(now) = &mut self.now {
            *now += self.step_ns;
        }
        (self.on_turn)(self.turns);
    }
}
