//! Finding virtio devices through the board, and handing each out once.

use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use uk_hal::Platform;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::VirtioPciError;
use virtio_drivers::transport::{DeviceType, SomeTransport};

/// `virt` (0x74726976 little-endian): the first register of every virtio-mmio window.
const MMIO_MAGIC: u32 = 0x7472_6976;

/// Where a virtio device sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A virtio-mmio transport: its register window (identity-mapped).
    Mmio {
        /// Physical address of the registers.
        base: u64,
        /// Length of the window in bytes.
        size: u64,
    },
    /// A PCI function.
    Pci {
        /// Bus number.
        bus: u8,
        /// Device number (0-31).
        device: u8,
        /// Function number (0-7).
        function: u8,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Location::Mmio { base, .. } => write!(f, "virtio-mmio@{base:#x}"),
            Location::Pci {
                bus,
                device,
                function,
            } => write!(f, "pci {bus:02x}:{device:02x}.{function}"),
        }
    }
}

/// A virtio device found by [`devices`], not opened yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What kind of device it is (virtio device id).
    pub device_type: DeviceType,
    /// Where it is.
    pub location: Location,
}

/// Why a virtio device could not be found or opened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No device of the wanted kind (with the wanted 9p mount tag, for [`crate::find_9p`]).
    NotFound,
    /// The device is already open: uk-virtio hands each device to one driver.
    Busy(Location),
    /// The device's registers (a PCI BAR, a virtio-mmio window) lie where the board does not
    /// map device memory ([`uk_hal::Platform::mmio_is_mapped`]); on x86 `pc`, a 64-bit BAR
    /// the firmware placed above 4 GiB.
    NotMapped {
        /// The device.
        location: Location,
        /// Physical address of the registers.
        address: u64,
        /// Their size in bytes.
        size: u64,
    },
    /// The board offers a way to reach the device that this build cannot use (PCI port
    /// I/O outside an x86_64 image).
    Unsupported(Location),
    /// The virtio-mmio header was rejected (bad magic, unknown version or device id).
    Mmio(Location, MmioError),
    /// The PCI function's virtio capabilities or BARs were rejected.
    Pci(Location, VirtioPciError),
    /// The driver could not bring the device up (feature negotiation, queue set-up, DMA
    /// memory, configuration space), or a request to it failed (see each driver's docs).
    Device(Location, virtio_drivers::Error),
    /// The device did not answer a request within its timeout
    /// ([`crate::set_default_timeout`], or the device's own `set_timeout`). It was reset, so
    /// that it no longer uses the request's buffers, and is out of use: every later request
    /// to it fails with this error at once. Dropping the driver and opening the device again
    /// ([`crate::find_9p`]) brings it up afresh.
    Timeout(Location),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such virtio device"),
            Error::Busy(at) => write!(f, "{at}: already open"),
            Error::NotMapped {
                location,
                address,
                size,
            } => write!(
                f,
                "{location}: registers at {address:#x} (+{size:#x}) are outside the board's \
                 device mappings"
            ),
            Error::Unsupported(at) => write!(f, "{at}: no way to reach it in this build"),
            Error::Mmio(at, e) => write!(f, "{at}: {e}"),
            Error::Pci(at, e) => write!(f, "{at}: {e}"),
            Error::Device(at, e) => write!(f, "{at}: {e}"),
            Error::Timeout(at) => write!(
                f,
                "{at}: no answer within the timeout; the device was reset and is out of use"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// Every virtio device the board reports, in order: virtio-mmio slots that hold a device
/// (the board's order), then PCI functions (bus 0 first, bridges walked; see
/// [`crate::pci`]).
///
/// Finding only reads: the magic, version and device id registers of virtio-mmio windows,
/// and PCI vendor, device and header-type registers. Windows the board does not map
/// ([`uk_hal::Platform::mmio_is_mapped`]) are skipped with a debug log line.
pub fn devices(platform: &dyn Platform) -> Vec<DeviceInfo> {
    let mut found = Vec::new();
    for slot in platform.virtio_mmio_slots() {
        let (base, size) = (slot.region.base, slot.region.size);
        if size < 0x100 || !platform.mmio_is_mapped(base, size) {
            log::debug!("uk-virtio: virtio-mmio slot {base:#x}+{size:#x} not mapped, skipped");
            continue;
        }
        // SAFETY: the board maps the window as device memory (checked above) and it is at
        // least 0x100 bytes, so the three registers at its start can be read; reading
        // magic, version and device id has no side effect on a virtio-mmio device.
        let (magic, device_id) = unsafe {
            let registers = base as usize as *const u32;
            (registers.read_volatile(), registers.add(2).read_volatile())
        };
        if magic != MMIO_MAGIC || device_id == 0 {
            continue;
        }
        if let Ok(device_type) = DeviceType::try_from(device_id) {
            found.push(DeviceInfo {
                device_type,
                location: Location::Mmio { base, size },
            });
        }
    }
    if let Some(access) = platform.pci_config_access() {
        pci_devices(access, &mut found);
    }
    found
}

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
fn pci_devices(access: uk_hal::PciConfigAccess, found: &mut Vec<DeviceInfo>) {
    use crate::pci::{PortIoCam, virtio_functions};
    use virtio_drivers::transport::pci::bus::PciRoot;
    match access {
        uk_hal::PciConfigAccess::PortIo => {
            let root = PciRoot::new(PortIoCam::new());
            let cam = PortIoCam::new();
            for (function, device_type) in virtio_functions(&root, &cam) {
                found.push(DeviceInfo {
                    device_type,
                    location: Location::Pci {
                        bus: function.bus,
                        device: function.device,
                        function: function.function,
                    },
                });
            }
        }
        _ => log::debug!("uk-virtio: PCI access {access:?} not supported"),
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
fn pci_devices(access: uk_hal::PciConfigAccess, _found: &mut Vec<DeviceInfo>) {
    log::debug!("uk-virtio: PCI access {access:?} not supported on this target");
}

/// Tries `open` on each device of type `kind` the board reports, in [`devices`] order, and
/// returns the first it accepts (`Ok(Some(_))`; `Ok(None)` passes a device over). A device
/// that fails to open is logged (at debug level when it is merely open already).
///
/// # Errors
///
/// [`Error::NotFound`] if no device was accepted and none failed; else the first failure.
pub(crate) fn find_first<T>(
    platform: &dyn Platform,
    kind: DeviceType,
    mut open: impl FnMut(&DeviceInfo) -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let mut failure = None;
    for device in devices(platform).iter().filter(|d| d.device_type == kind) {
        match open(device) {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
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

/// The devices handed out, so that no device gets two drivers.
static OPEN: spin::Mutex<Vec<Location>> = spin::Mutex::new(Vec::new());

/// A device marked open; dropping it marks the device free again.
#[derive(Debug)]
pub(crate) struct Claim(Location);

impl Claim {
    /// Marks `location` open, unless it already is.
    pub(crate) fn take(location: Location) -> Result<Self, Error> {
        let mut open = OPEN.lock();
        if open.contains(&location) {
            return Err(Error::Busy(location));
        }
        open.push(location);
        Ok(Claim(location))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        OPEN.lock().retain(|&at| at != self.0);
    }
}

/// Opens `device` (from [`devices`]) as a virtio-drivers transport, for any of
/// virtio-drivers' device drivers (`VirtIOBlk::<UkHal, _>::new(transport)`, ...).
///
/// On PCI, first checks that every memory BAR lies in the board's device mappings, then
/// turns on memory decoding and bus mastering and turns INTx off (drivers poll).
///
/// A device is handed out once per boot: a second `open` of the same device fails with
/// [`Error::Busy`] even after the transport was dropped (dropping it resets the device).
/// [`crate::Virtio9pTransport`] is the exception: it gives its device back when dropped.
///
/// # Errors
///
/// [`Error::Busy`], [`Error::NotMapped`], [`Error::Unsupported`], [`Error::Mmio`] or
/// [`Error::Pci`]; never a panic or a fault for a device that is absent or misplaced.
pub fn open(platform: &dyn Platform, device: &DeviceInfo) -> Result<SomeTransport<'static>, Error> {
    let (transport, claim) = open_claimed(platform, device)?;
    // The claim stays for the rest of the run (see above).
    core::mem::forget(claim);
    Ok(transport)
}

/// [`open`], with the claim that keeps other drivers off the device.
pub(crate) fn open_claimed(
    platform: &dyn Platform,
    device: &DeviceInfo,
) -> Result<(SomeTransport<'static>, Claim), Error> {
    let location = device.location;
    let claim = Claim::take(location)?;
    let transport = match location {
        Location::Mmio { base, size } => open_mmio(platform, location, base, size)?,
        Location::Pci {
            bus,
            device,
            function,
        } => open_pci(platform, location, bus, device, function)?,
    };
    Ok((transport, claim))
}

fn open_mmio(
    platform: &dyn Platform,
    location: Location,
    base: u64,
    size: u64,
) -> Result<SomeTransport<'static>, Error> {
    let not_mapped = Error::NotMapped {
        location,
        address: base,
        size,
    };
    if !platform.mmio_is_mapped(base, size) {
        return Err(not_mapped);
    }
    let (Some(header), Ok(len)) = (
        NonNull::new(base as usize as *mut VirtIOHeader),
        usize::try_from(size),
    ) else {
        return Err(not_mapped);
    };
    // SAFETY: the board maps the `size` bytes at `base` as device memory for the rest of the
    // run (the identity map is never torn down, hence `'static`); the window is a
    // virtio-mmio transport the board reported, so it holds a virtio header (checked by
    // `new`: magic, version, device id) followed by the config space; the claim keeps any
    // other transport off it.
    let transport =
        unsafe { MmioTransport::new(header, len) }.map_err(|e| Error::Mmio(location, e))?;
    Ok(SomeTransport::Mmio(transport))
}

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
fn open_pci(
    platform: &dyn Platform,
    location: Location,
    bus: u8,
    device: u8,
    function: u8,
) -> Result<SomeTransport<'static>, Error> {
    use crate::pci::{PortIoCam, check_bars, enable};
    use virtio_drivers::transport::pci::PciTransport;
    use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
    match platform.pci_config_access() {
        Some(uk_hal::PciConfigAccess::PortIo) => {}
        _ => return Err(Error::Unsupported(location)),
    }
    let function = DeviceFunction {
        bus,
        device,
        function,
    };
    let mut root = PciRoot::new(PortIoCam::new());
    check_bars(&mut root, function, |base, size| {
        platform.mmio_is_mapped(base, size)
    })
    .map_err(|bar| Error::NotMapped {
        location,
        address: bar.address,
        size: bar.size,
    })?;
    enable(&mut root, function);
    let transport = PciTransport::new::<crate::UkHal, _>(&mut root, function)
        .map_err(|e| Error::Pci(location, e))?;
    Ok(SomeTransport::Pci(transport))
}

#[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
fn open_pci(
    _platform: &dyn Platform,
    location: Location,
    _bus: u8,
    _device: u8,
    _function: u8,
) -> Result<SomeTransport<'static>, Error> {
    Err(Error::Unsupported(location))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    #[test]
    fn a_device_is_claimed_once_until_released() {
        let at = Location::Pci {
            bus: 9,
            device: 1,
            function: 0,
        };
        let first = Claim::take(at).unwrap();
        assert_eq!(Claim::take(at).unwrap_err(), Error::Busy(at));
        drop(first);
        drop(Claim::take(at).unwrap());
    }

    /// A board with two virtio-mmio slots in host memory: a console (device id 3) and an
    /// empty one (device id 0), and a third slot it does not map.
    struct FakeBoard {
        slots: [uk_hal::VirtioMmioSlot; 3],
    }
    impl uk_hal::Console for FakeBoard {
        fn write_bytes(&self, _bytes: &[u8]) {}
    }
    impl uk_hal::Clock for FakeBoard {
        fn monotonic_ns(&self) -> u64 {
            0
        }
        fn cycles(&self) -> u64 {
            0
        }
        fn cycles_per_second(&self) -> u64 {
            1
        }
    }
    impl Platform for FakeBoard {
        fn board_name(&self) -> &'static str {
            "fake"
        }
        fn machine(&self) -> &str {
            "fake"
        }
        fn memory_regions(&self) -> &[uk_hal::MemoryRegion] {
            &[]
        }
        fn command_line(&self) -> &str {
            ""
        }
        fn exit(&self, _code: u8) -> ! {
            unreachable!()
        }
        fn power_off(&self) -> ! {
            unreachable!()
        }
        fn virtio_mmio_slots(&self) -> &[uk_hal::VirtioMmioSlot] {
            &self.slots
        }
        fn mmio_is_mapped(&self, base: u64, _size: u64) -> bool {
            base != self.slots[2].region.base
        }
    }

    fn window(device_id: u32) -> Box<[u32; 128]> {
        let mut w = Box::new([0u32; 128]);
        (w[0], w[1], w[2]) = (MMIO_MAGIC, 2, device_id);
        w
    }

    #[test]
    fn mmio_slots_are_probed_and_opened_once() {
        let (console, empty, unmapped) = (window(3), window(0), window(2));
        let slot = |w: &[u32; 128]| uk_hal::VirtioMmioSlot {
            region: uk_hal::MemoryRegion {
                base: w.as_ptr() as u64,
                size: 0x200,
            },
            interrupt: None,
        };
        let board = FakeBoard {
            slots: [slot(&console), slot(&empty), slot(&unmapped)],
        };
        let found = devices(&board);
        let at = Location::Mmio {
            base: console.as_ptr() as u64,
            size: 0x200,
        };
        assert_eq!(
            found,
            [DeviceInfo {
                device_type: DeviceType::Console,
                location: at
            }]
        );
        let transport = open(&board, &found[0]).unwrap();
        assert!(matches!(transport, SomeTransport::Mmio(_)));
        assert_eq!(open(&board, &found[0]).unwrap_err(), Error::Busy(at));
        drop(transport);
        let gone = DeviceInfo {
            device_type: DeviceType::Block,
            location: Location::Mmio {
                base: unmapped.as_ptr() as u64,
                size: 0x200,
            },
        };
        assert!(matches!(open(&board, &gone), Err(Error::NotMapped { .. })));
        let pci = DeviceInfo {
            device_type: DeviceType::Block,
            location: Location::Pci {
                bus: 0,
                device: 1,
                function: 0,
            },
        };
        assert_eq!(
            open(&board, &pci).unwrap_err(),
            Error::Unsupported(pci.location)
        );
    }

    #[test]
    fn locations_and_errors_read_well() {
        let mmio = Location::Mmio {
            base: 0x0a00_3e00,
            size: 0x200,
        };
        assert_eq!(mmio.to_string(), "virtio-mmio@0xa003e00");
        let pci = Location::Pci {
            bus: 0,
            device: 4,
            function: 0,
        };
        assert_eq!(pci.to_string(), "pci 00:04.0");
        let e = Error::NotMapped {
            location: pci,
            address: 0x1_0000_0000,
            size: 0x4000,
        };
        assert_eq!(
            e.to_string(),
            "pci 00:04.0: registers at 0x100000000 (+0x4000) are outside the board's device \
             mappings"
        );
    }
}
