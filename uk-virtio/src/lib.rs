//! virtio devices for uk-rs images: discovery through the board, DMA under the boards'
//! identity maps, virtio-9p as the transport of uk-9pfs, and virtio-rng as a seed source of
//! uk-random.
//!
//! The device drivers themselves are [`virtio_drivers`]'s; this crate is the glue between
//! them and a uk-rs image.
//!
//! # Discovery, per board
//!
//! The crate never names a board. It asks [`uk_hal::Platform`]:
//!
//! - [`Platform::virtio_mmio_slots`]: the QEMU `virt` board reports its device tree's
//!   `virtio,mmio` nodes (32 windows of 0x200 bytes from `0x0a00_0000`); the x86 board on
//!   `microvm`, which has neither a device tree nor PCI, the machine's 24 fixed windows
//!   from `0xfeb0_0000`. [`devices`] reads
//!   each window's magic and device id and skips empty slots (device id 0). QEMU's default
//!   is the legacy virtio-mmio interface (version 1), which virtio-drivers drives.
//! - [`Platform::pci_config_access`]: the x86 `pc` board reports configuration mechanism
//!   #1 (ports 0xCF8/0xCFC; `microvm` has no PCI bus). [`devices`] scans bus 0 and the
//!   buses behind PCI-to-PCI bridges ([`pci::virtio_functions`]) for vendor 0x1AF4.
//!   SeaBIOS has assigned the BARs by the time the image runs; [`open`] checks every
//!   memory BAR against the board's map ([`pci::check_bars`]), then turns on memory
//!   decoding and bus mastering and builds virtio-drivers' `PciTransport`.
//! - [`Platform::mmio_is_mapped`]: before a register window is touched, the board says
//!   whether it maps it as device memory (the low GiB on `virt`, the first 4 GiB on `pc`).
//!   A window outside is [`Error::NotMapped`], never a fault.
//!
//! # DMA under an identity map
//!
//! [`UkHal`] is the [`virtio_drivers::Hal`]: DMA pages come zeroed from the global
//! allocator, and the address the device sees is the pointer itself, because both boards
//! map RAM at its physical address and QEMU's DMA is cache-coherent. Its docs say what a
//! board with another mapping would need.
//!
//! # Polling
//!
//! Drivers here poll: device interrupts stay off (PCI INTx disabled; the virtio-mmio
//! interrupt is never enabled at the GIC), and a request waits for the device to use its
//! buffers by calling [`uk_hal::relax`] in a loop. Once a uk-sched scheduler runs, that is
//! a yield inside its threads, so the other threads run while QEMU's I/O thread answers;
//! elsewhere it spins. The queues are driven here rather than through virtio-drivers'
//! `VirtIO9p` and `VirtIORng`, whose requests spin for the whole round trip, without end.
//!
//! # A device that stops answering
//!
//! A request waits at most a timeout: [`DEFAULT_TIMEOUT`] (10 s), changed for the whole
//! image with [`set_default_timeout`] or for one device with
//! [`Virtio9pTransport::set_timeout`] / [`VirtioRng::set_timeout`]. Time comes from the
//! board clock the runtime registers ([`uk_hal::system_clock`]); without one the wait counts
//! its turns instead, each as [`NS_PER_TURN_WITHOUT_CLOCK`]. The queue is looked at once more
//! after the deadline, so an answer that came while the waiting thread did not run is taken.
//!
//! A device that has not used the request's buffers by then still owns them, so it is
//! reset (status 0, as when its driver is dropped) and the wait goes on, up to the same
//! timeout, until it reads back the reset: only then has it let go of them. The request
//! fails with [`Error::Timeout`], and so does every later request to that device, at once,
//! without touching its queue; the failure is logged by the request that met it, the later
//! ones fail quietly. uk-9pfs gives the failure to its VFS callers as `EIO`; the
//! entropy device's reads fail, and uk-random seeds from another source or reports the
//! error. A used ring that names another request than the one in flight is handled the
//! same way, as [`Error::Device`]. Dropping the driver gives the device back (a 9p device
//! can be opened again, from scratch); a device that never reads back its reset is never
//! given back, and its queue memory never freed, since it may still write there. The
//! request's buffers, the caller's, cannot be kept back like that without waiting forever:
//! such a device is taken for dead (an error is logged), the one case in which a device
//! that later wrote after all could reach memory handed back.
//!
//! # What is supported
//!
//! - virtio-9p ([`find_9p`], [`Virtio9pTransport`]), implementing [`uk_9pfs::Transport`];
//! - virtio-rng ([`find_rng`], [`VirtioRng`]), implementing [`uk_random::EntropyDevice`];
//!   [`install_rng`] makes it the seed source of the image-wide generator on a CPU without
//!   RNDR or RDRAND;
//! - any other virtio-drivers driver over [`open`]'s transport (not exercised yet);
//! - virtio-mmio v1 and v2, virtio-pci modern (and transitional) devices.
//!
//! Not yet: PCI over ECAM (QEMU `virt`'s PCIe host, `q35`'s MMCONFIG; the port mechanism
//! serves `q35` too), assigning BARs where no firmware did, interrupt-driven completion,
//! hot-unplug.
//!
//! # Features
//!
//! - `ktest`: registers in-image test cases with uk-test: device discovery, the DMA
//!   allocator, and with a 9p device (QEMU `-fsdev local,id=fs0,path=DIR,security_model=none
//!   -device virtio-9p-pci,fsdev=fs0,mount_tag=share`, `virtio-9p-device` on `virt`) a
//!   hand-built `Tversion`, `Tattach`, `Twalk`/`Tlopen`/`Tread` through the transport; with
//!   an entropy device (`-device virtio-rng-pci`, `virtio-rng-device`), reads of several
//!   lengths, a pool seeded from it, and two threads sharing it. Cases that need a device
//!   pass with a "skipped" line when there is none. With an entropy device rate-limited to N
//!   bytes (QEMU `max-bytes=N,period=600000`) and the application argument
//!   `virtio-slow-rng=N` (`cargo uk test`'s `ktest (slow rng)` rows), a real device that
//!   stops answering: the read after the quota fails with [`Error::Timeout`] after the
//!   device's timeout (300 ms), the device reads back its reset, and later reads fail at
//!   once.
//!
//! # Example
//!
//! ```no_run
//! # // Needs a booted image with a virtio-9p device; compiled, not run.
//! # fn platform() -> &'static dyn uk_hal::Platform { unimplemented!() }
//! use uk_9pfs::Transport;
//!
//! match uk_virtio::find_9p(platform(), Some("share")) {
//!     Ok(mut transport) => {
//!         let msize = transport.max_message_size();
//!         // Hand `transport` to uk-9pfs, which speaks 9P2000.L over `round_trip`.
//!         # let _ = msize;
//!     }
//!     Err(uk_virtio::Error::NotFound) => log::info!("no shared directory"),
//!     Err(e) => log::warn!("virtio-9p: {e}"),
//! }
//! ```
//!
//! [`Platform::virtio_mmio_slots`]: uk_hal::Platform::virtio_mmio_slots
//! [`Platform::pci_config_access`]: uk_hal::Platform::pci_config_access
//! [`Platform::mmio_is_mapped`]: uk_hal::Platform::mmio_is_mapped
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod device;
#[cfg(test)]
mod fake;
mod hal;
mod p9;
pub mod pci;
mod polled;
mod rng;

#[cfg(feature = "ktest")]
mod ktest;

pub use device::{DeviceInfo, Error, Location, devices, open};
pub use hal::UkHal;
pub use p9::{MAX_MESSAGE_SIZE, Virtio9pTransport, find_9p};
pub use polled::{
    DEFAULT_TIMEOUT, NS_PER_TURN_WITHOUT_CLOCK, default_timeout, set_default_timeout, wait_turns,
};
pub use rng::{InstallError, VIRTIO_RNG, VirtioRng, find_rng, install_rng};
/// The virtio-drivers crate this one builds on (its drivers, transports and `DeviceType`).
pub use virtio_drivers;
