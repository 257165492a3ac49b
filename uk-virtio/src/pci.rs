//! virtio over PCI: enumeration of a PCI hierarchy for virtio functions, BAR checks, and
//! (x86_64 images) configuration mechanism #1 over ports 0xCF8/0xCFC.
//!
//! The logic is generic over virtio-drivers' [`ConfigurationAccess`], so the host tests run
//! it against a fake configuration space.

use alloc::vec::Vec;

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, HeaderType, PciRoot,
};
use virtio_drivers::transport::pci::virtio_device_type;

/// Most buses scanned (bus 0 and the secondary buses of bridges found on the way).
pub const MAX_BUSES: usize = 32;

/// Offset of the bus number register of a PCI-to-PCI bridge (primary, secondary,
/// subordinate, latency timer).
const BRIDGE_BUSES: u8 = 0x18;

/// Every virtio function reachable from bus 0, walking into PCI-to-PCI bridges (secondary
/// bus numbers as the firmware assigned them), each bus once, at most [`MAX_BUSES`] buses.
pub fn virtio_functions<C: ConfigurationAccess>(
    root: &PciRoot<C>,
    cam: &C,
) -> Vec<(DeviceFunction, DeviceType)> {
    let mut found = Vec::new();
    let mut seen = [false; 256];
    let mut buses = [0u8; MAX_BUSES];
    let (mut next, mut queued) = (0, 1);
    seen[0] = true;
    while next < queued {
        let bus = buses[next];
        next += 1;
        for (function, info) in root.enumerate_bus(bus) {
            if let Some(kind) = virtio_device_type(&info) {
                found.push((function, kind));
            }
            if info.header_type == HeaderType::PciPciBridge {
                let secondary = (cam.read_word(function, BRIDGE_BUSES) >> 8) as u8;
                if secondary != 0 && !seen[usize::from(secondary)] && queued < MAX_BUSES {
                    seen[usize::from(secondary)] = true;
                    buses[queued] = secondary;
                    queued += 1;
                }
            }
        }
    }
    found
}

/// A memory BAR of a function that is assigned but not where the board can reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmappedBar {
    /// BAR index (0-5).
    pub index: u8,
    /// Its physical address.
    pub address: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Checks that every assigned memory BAR of `function` lies where `mapped` says the board
/// maps device registers. I/O BARs and unassigned (address 0) ones are not checked:
/// virtio-drivers uses neither. Sizing a BAR turns decoding off for a moment (virtio-drivers
/// does that), so do this before the device is in use.
pub fn check_bars<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    function: DeviceFunction,
    mapped: impl Fn(u64, u64) -> bool,
) -> Result<(), UnmappedBar> {
    let Ok(bars) = root.bars(function) else {
        // An invalid BAR type: virtio-drivers reports it when it reads the BAR it needs.
        return Ok(());
    };
    for (index, bar) in bars.iter().enumerate() {
        if let Some(BarInfo::Memory { address, size, .. }) = *bar {
            log::debug!("uk-virtio: pci {function} BAR{index}: memory {address:#x} +{size:#x}");
            if address != 0 && !mapped(address, size) {
                return Err(UnmappedBar {
                    index: index as u8,
                    address,
                    size,
                });
            }
        }
    }
    Ok(())
}

/// Turns on memory decoding and bus mastering (the device reads and writes the rings in
/// RAM) and turns off INTx: the driver polls. I/O decoding stays as it was.
pub fn enable<C: ConfigurationAccess>(root: &mut PciRoot<C>, function: DeviceFunction) {
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE,
    );
}

/// PCI configuration mechanism #1: ports 0xCF8 (address) and 0xCFC (data), x86_64 images.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use port_io::PortIoCam;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod port_io {
    use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
    use x86_64::instructions::port::Port;

    /// Configuration address port.
    const ADDRESS: u16 = 0xcf8;
    /// Configuration data port.
    const DATA: u16 = 0xcfc;

    /// PCI configuration mechanism #1 (ports 0xCF8/0xCFC), the [`ConfigurationAccess`] of
    /// QEMU `pc` and `q35` ([`uk_hal::PciConfigAccess::PortIo`]).
    ///
    /// An access is two port operations (address, then data); each pair runs inside a
    /// `critical-section` section (interrupts masked, other CPUs excluded) so no other
    /// configuration access can come between them. Make one only where the board reports
    /// [`uk_hal::PciConfigAccess::PortIo`]: on a machine without the ports the reads
    /// return all ones (no device) and the writes go nowhere.
    #[derive(Debug)]
    pub struct PortIoCam {
        _private: (),
    }

    impl PortIoCam {
        /// The configuration space behind ports 0xCF8/0xCFC.
        pub(crate) const fn new() -> Self {
            Self { _private: () }
        }

        /// The value for the address port: enable bit, bus, device, function, dword offset.
        pub(crate) const fn address(function: DeviceFunction, offset: u8) -> u32 {
            0x8000_0000
                | (function.bus as u32) << 16
                | ((function.device as u32) & 0x1f) << 11
                | ((function.function as u32) & 0x7) << 8
                | (offset as u32 & 0xfc)
        }
    }

    impl ConfigurationAccess for PortIoCam {
        fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
            critical_section::with(|_| {
                // SAFETY: the board reported configuration mechanism #1, so these ports are
                // the PCI host bridge's; the pair runs without another access in between.
                unsafe {
                    Port::<u32>::new(ADDRESS).write(Self::address(function, register_offset));
                    Port::<u32>::new(DATA).read()
                }
            })
        }

        fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
            critical_section::with(|_| {
                // SAFETY: as in `read_word`; the caller (virtio-drivers' `PciRoot`) writes
                // only the command register and BARs (sizing, then restoring them).
                unsafe {
                    Port::<u32>::new(ADDRESS).write(Self::address(function, register_offset));
                    Port::<u32>::new(DATA).write(data);
                }
            })
        }

        unsafe fn unsafe_clone(&self) -> Self {
            Self::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A configuration space: functions' registers by dword, and BAR size masks.
    #[derive(Default)]
    struct Space {
        words: BTreeMap<(u8, u8, u8, u8), u32>,
        bar_masks: BTreeMap<(u8, u8, u8, u8), u32>,
    }

    #[derive(Clone, Default)]
    struct FakeCam(Rc<RefCell<Space>>);

    fn key(f: DeviceFunction, offset: u8) -> (u8, u8, u8, u8) {
        (f.bus, f.device, f.function, offset)
    }

    impl ConfigurationAccess for FakeCam {
        fn read_word(&self, f: DeviceFunction, offset: u8) -> u32 {
            let space = self.0.borrow();
            let present = space.words.contains_key(&key(f, 0));
            space
                .words
                .get(&key(f, offset))
                .copied()
                .unwrap_or(if present || offset != 0 { 0 } else { u32::MAX })
        }
        fn write_word(&mut self, f: DeviceFunction, offset: u8, data: u32) {
            let mut space = self.0.borrow_mut();
            let data = match space.bar_masks.get(&key(f, offset)) {
                // Sizing: the read-only low bits (type) stay, the address bits take the mask.
                Some(&mask) if data == u32::MAX => {
                    mask | (space.words.get(&key(f, offset)).copied().unwrap_or(0) & 0xf)
                }
                // An unimplemented BAR reads back zero.
                None if (0x10..=0x24).contains(&offset) => 0,
                _ => data,
            };
            space.words.insert(key(f, offset), data);
        }
        unsafe fn unsafe_clone(&self) -> Self {
            self.clone()
        }
    }

    fn df(bus: u8, device: u8, function: u8) -> DeviceFunction {
        DeviceFunction {
            bus,
            device,
            function,
        }
    }

    impl FakeCam {
        fn function(&self, f: DeviceFunction, vendor_device: u32, header: u8) {
            let mut space = self.0.borrow_mut();
            space.words.insert(key(f, 0), vendor_device);
            space.words.insert(key(f, 0x0c), u32::from(header) << 16);
        }
        /// A PCI-to-PCI bridge (header type 1) whose secondary bus is `secondary`, below a
        /// primary bus `primary` (register 0x18).
        fn bridge(&self, f: DeviceFunction, primary: u8, secondary: u8) {
            self.function(f, 0x0001_1b36, 1);
            let buses = u32::from(primary) | u32::from(secondary) << 8;
            self.0.borrow_mut().words.insert(key(f, 0x18), buses);
        }
        fn bar(&self, f: DeviceFunction, index: u8, value: u32, mask: u32) {
            let mut space = self.0.borrow_mut();
            space.words.insert(key(f, 0x10 + 4 * index), value);
            space.bar_masks.insert(key(f, 0x10 + 4 * index), mask);
        }
        fn word(&self, f: DeviceFunction, offset: u8) -> u32 {
            self.0
                .borrow()
                .words
                .get(&key(f, offset))
                .copied()
                .unwrap_or(0)
        }
    }

    /// QEMU `pc` with a virtio-9p-pci (transitional id 0x1009) on bus 0 and a modern
    /// virtio-rng (0x1044) behind a bridge on bus 1, and a bridge loop back to bus 0.
    #[test]
    fn finds_virtio_functions_behind_bridges() {
        let cam = FakeCam::default();
        cam.function(df(0, 0, 0), 0x1237_8086, 0);
        cam.function(df(0, 3, 0), 0x1009_1af4, 0);
        cam.bridge(df(0, 5, 0), 0, 1);
        cam.function(df(1, 0, 0), 0x1044_1af4, 0);
        // Secondary bus 0: a loop back to the root bus.
        cam.bridge(df(1, 1, 0), 1, 0);
        let root = PciRoot::new(cam.clone());
        let found = virtio_functions(&root, &cam);
        assert_eq!(
            found,
            [
                (df(0, 3, 0), DeviceType::_9P),
                (df(1, 0, 0), DeviceType::EntropySource)
            ]
        );
        let empty = FakeCam::default();
        assert!(virtio_functions(&PciRoot::new(empty.clone()), &empty).is_empty());
    }

    /// SeaBIOS's layout for virtio-9p-pci: I/O BAR 0, 32-bit BAR 1 (MSI-X), 64-bit
    /// prefetchable BAR 4; below 4 GiB it passes, above it names the BAR.
    #[test]
    fn bars_outside_the_map_are_reported() {
        let cam = FakeCam::default();
        let f = df(0, 3, 0);
        cam.function(f, 0x1009_1af4, 0);
        cam.bar(f, 0, 0xc001, 0xffff_ffe0);
        cam.bar(f, 1, 0xfebf_1000, 0xffff_f000);
        cam.bar(f, 4, 0xfe00_000c, 0xffff_c000);
        cam.bar(f, 5, 0, 0xffff_ffff);
        cam.0.borrow_mut().words.insert(key(f, 4), 0x0000_0103);
        let below_4g = |base: u64, size: u64| base + size <= 1 << 32;
        let mut root = PciRoot::new(cam.clone());
        assert_eq!(check_bars(&mut root, f, below_4g), Ok(()));
        // The BARs and the command register are as before the sizing.
        assert_eq!(cam.word(f, 0x10 + 16), 0xfe00_000c);
        assert_eq!(cam.word(f, 4), 0x0000_0103);
        cam.bar(f, 5, 0x1, 0xffff_ffff);
        assert_eq!(
            check_bars(&mut root, f, below_4g),
            Err(UnmappedBar {
                index: 4,
                address: 0x1_fe00_0000,
                size: 0x4000
            })
        );
        enable(&mut root, f);
        assert_eq!(
            cam.word(f, 4),
            0x0000_0507,
            "memory, bus master, INTx off, I/O kept"
        );
    }
}
