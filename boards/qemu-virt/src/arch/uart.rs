//! A transmit-only PL011 driver: two registers, lock-free.
//!
//! The console must work from any context, exception handlers and a fault in the middle of a
//! write included, so it takes `&self`, keeps its base address in an atomic and holds no lock:
//! a byte goes out when the transmit FIFO has room (`FR.TXFF` clear) by a write to `DR`. The
//! `arm-pl011-uart` crate was considered: its `Uart` needs `&mut self` (so a lock, which a
//! fault path can deadlock on), pulls in `zerocopy`, `safe-mmio`, `thiserror` and `bitflags`
//! for what is two registers here, and requires Rust 1.88 (the workspace supports 1.85).
//!
//! No baud-rate setup: QEMU ignores it and on hardware the firmware has done it; the driver
//! only makes sure the UART and its transmitter are enabled.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::FALLBACK_UART;

/// Data register: a write sends a byte.
const DR: u64 = 0x000;
/// Flag register.
const FR: u64 = 0x018;
/// Control register.
const CR: u64 = 0x030;
/// `FR.TXFF`: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;
/// `FR.BUSY`: still transmitting.
const FR_BUSY: u32 = 1 << 3;
/// `CR.UARTEN`: the UART is enabled.
const CR_UARTEN: u32 = 1 << 0;
/// `CR.TXE`: the transmitter is enabled.
const CR_TXE: u32 = 1 << 8;

/// A PL011 at a base address that boot code may change once the device tree is read.
pub(super) struct Pl011 {
    base: AtomicU64,
}

impl Pl011 {
    /// The UART at `base`, or at [`FALLBACK_UART`] for 0.
    ///
    /// # Safety
    ///
    /// `base` (or the fallback) must be the address of a PL011's registers, identity-mapped as Device memory
    /// (or reached with the MMU off) whenever the console is used.
    pub(super) const unsafe fn new(base: u64) -> Self {
        Self {
            base: AtomicU64::new(base),
        }
    }

    /// Moves the console to the PL011 at `base` and enables its transmitter.
    ///
    /// # Safety
    ///
    /// `base` must be the identity-mapped (Device memory) address of a PL011's registers.
    pub(super) unsafe fn set_base(&self, base: u64) {
        self.base.store(base, Ordering::Relaxed);
        let cr = self.read(CR);
        if cr & (CR_UARTEN | CR_TXE) != CR_UARTEN | CR_TXE {
            self.write(CR, cr | CR_UARTEN | CR_TXE);
        }
    }

    /// Sends every byte, waiting for room in the FIFO as needed.
    pub(super) fn write_bytes(&self, bytes: &[u8]) {
        for &byte in bytes {
            while self.read(FR) & FR_TXFF != 0 {
                core::hint::spin_loop();
            }
            self.write(DR, u32::from(byte));
        }
    }

    /// Waits until the last byte has left the shift register (before powering off).
    pub(super) fn flush(&self) {
        while self.read(FR) & FR_BUSY != 0 {
            core::hint::spin_loop();
        }
    }

    fn base(&self) -> u64 {
        match self.base.load(Ordering::Relaxed) {
            0 => FALLBACK_UART,
            base => base,
        }
    }

    fn read(&self, offset: u64) -> u32 {
        let address = (self.base() + offset) as *const u32;
        // SAFETY: `base` is a PL011's register block, identity-mapped as Device memory (the
        // constructor's and `set_base`'s contract); `offset` names one of its registers.
        unsafe { address.read_volatile() }
    }

    fn write(&self, offset: u64, value: u32) {
        let address = (self.base() + offset) as *mut u32;
        // SAFETY: as in `read`; writing DR or CR has no effect on memory.
        unsafe { address.write_volatile(value) }
    }
}
