//! Register access: memory-mapped frames and the GICv3 CPU system registers, each behind a
//! small trait so the drivers run on the host against `fake` register files.

/// A memory-mapped register frame (GICD, GICC, one GICR), addressed by byte offset.
pub trait Mmio: Sync {
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32);
    /// Reads the 64-bit register at `offset` (GICR_TYPER, GICD_IROUTER).
    fn read64(&self, offset: usize) -> u64 {
        u64::from(self.read32(offset)) | (u64::from(self.read32(offset + 4)) << 32)
    }
    /// Writes the 64-bit register at `offset`.
    fn write64(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}

/// A register frame at a physical address mapped as Device memory.
#[derive(Debug)]
pub struct MmioFrame {
    base: usize,
    size: usize,
}

impl MmioFrame {
    /// A frame of `size` bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base..base + size` must be a GIC register frame mapped as Device memory for as long
    /// as the value lives, and nothing else may drive it in a conflicting way.
    pub const unsafe fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    /// Base address.
    pub const fn base(&self) -> usize {
        self.base
    }

    fn at(&self, offset: usize, width: usize) -> usize {
        assert!(
            offset + width <= self.size,
            "GIC register offset {offset:#x} out of frame"
        );
        self.base + offset
    }
}

impl Mmio for MmioFrame {
    fn read32(&self, offset: usize) -> u32 {
        let address = self.at(offset, 4);
        // SAFETY: in the frame (checked), which `new`'s caller promised is a mapped GIC frame.
        unsafe { core::ptr::read_volatile(address as *const u32) }
    }
    fn write32(&self, offset: usize, value: u32) {
        let address = self.at(offset, 4);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) }
    }
    fn read64(&self, offset: usize) -> u64 {
        let address = self.at(offset, 8);
        // SAFETY: as in `read32`; the 64-bit GIC registers are 8-byte aligned.
        unsafe { core::ptr::read_volatile(address as *const u64) }
    }
    fn write64(&self, offset: usize, value: u64) {
        let address = self.at(offset, 8);
        // SAFETY: as in `read64`.
        unsafe { core::ptr::write_volatile(address as *mut u64, value) }
    }
}

/// The CPU registers the drivers need: `MPIDR_EL1` (both versions) and the GICv3 CPU
/// interface system registers (`ICC_*_EL1`).
pub trait CpuRegs: Sync {
    /// `MPIDR_EL1` of the calling CPU.
    fn mpidr(&self) -> u64;
    /// Sets `ICC_SRE_EL1.SRE` (system-register access to the CPU interface) and returns
    /// whether it stuck.
    fn enable_system_registers(&self) -> bool;
    /// `ICC_PMR_EL1`: the priority mask.
    fn set_priority_mask(&self, mask: u8);
    /// `ICC_BPR1_EL1`: binary point.
    fn set_binary_point(&self, value: u8);
    /// `ICC_IGRPEN1_EL1`: group 1 interrupts on or off.
    fn set_group1_enable(&self, on: bool);
    /// Reads `ICC_IAR1_EL1` (acknowledges).
    fn read_iar1(&self) -> u32;
    /// Writes `ICC_EOIR1_EL1`.
    fn write_eoir1(&self, intid: u32);
    /// Writes `ICC_SGI1R_EL1`.
    fn write_sgi1r(&self, value: u64);
    /// Makes this CPU's earlier memory writes visible to the others before an SGI is sent
    /// (`dsb ish`); a no-op in fakes.
    fn barrier_before_sgi(&self) {}
}

/// The real system registers, on aarch64.
#[cfg(target_arch = "aarch64")]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRegisters;

#[cfg(target_arch = "aarch64")]
mod sysreg {
    use core::arch::asm;

    /// Reads the system register `$name`.
    macro_rules! read {
        ($name:literal) => {{
            let value: u64;
            // SAFETY: reading these GIC/ID registers at EL1 has no effect but the value
            // (IAR1 acknowledges, which is what the caller asks for).
            unsafe { asm!(concat!("mrs {}, ", $name), out(reg) value, options(nostack)) };
            value
        }};
    }
    /// Writes the system register `$name` and synchronises.
    macro_rules! write {
        ($name:literal, $value:expr) => {{
            let value: u64 = $value;
            // SAFETY: the GICv3 CPU interface registers written here change only interrupt
            // delivery state, as the driver intends.
            unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack)) };
        }};
    }

    impl super::CpuRegs for super::SystemRegisters {
        fn mpidr(&self) -> u64 {
            read!("mpidr_el1")
        }
        fn enable_system_registers(&self) -> bool {
            let sre = read!("S3_0_C12_C12_5");
            write!("S3_0_C12_C12_5", sre | 1);
            read!("S3_0_C12_C12_5") & 1 == 1
        }
        fn set_priority_mask(&self, mask: u8) {
            write!("S3_0_C4_C6_0", u64::from(mask));
        }
        fn set_binary_point(&self, value: u8) {
            write!("S3_0_C12_C12_3", u64::from(value));
        }
        fn set_group1_enable(&self, on: bool) {
            write!("S3_0_C12_C12_7", u64::from(on));
        }
        fn read_iar1(&self) -> u32 {
            read!("S3_0_C12_C12_0") as u32
        }
        fn write_eoir1(&self, intid: u32) {
            write!("S3_0_C12_C12_1", u64::from(intid));
        }
        fn write_sgi1r(&self, value: u64) {
            write!("S3_0_C12_C11_5", value);
        }
        fn barrier_before_sgi(&self) {
            // SAFETY: a barrier has no other effect.
            unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
        }
    }
}

/// Register files for host tests: memory that remembers every write.
#[cfg(any(test, feature = "fake"))]
pub mod fake {
    extern crate std;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::vec::Vec;

    use super::{CpuRegs, Mmio};

    /// A frame of plain memory (32-bit cells) with a log of writes. Reading a cell never
    /// written gives its preset value or 0.
    #[derive(Default)]
    pub struct FakeFrame {
        cells: Mutex<BTreeMap<usize, u32>>,
        log: Mutex<Vec<(usize, u32)>>,
        /// Model GICR_WAKER: ChildrenAsleep follows ProcessorSleep.
        pub waker_follows: bool,
    }

    impl FakeFrame {
        /// An all-zero frame.
        pub fn new() -> Self {
            Self::default()
        }
        /// An all-zero redistributor region whose `GICR_WAKER.ChildrenAsleep` follows
        /// `ProcessorSleep` in every frame, as a real redistributor's does.
        pub fn redistributors() -> Self {
            Self {
                waker_follows: true,
                ..Self::default()
            }
        }
        /// Presets a cell without logging.
        pub fn preset(&self, offset: usize, value: u32) {
            self.cells.lock().unwrap().insert(offset, value);
        }
        /// The cell's value.
        pub fn get(&self, offset: usize) -> u32 {
            self.cells
                .lock()
                .unwrap()
                .get(&offset)
                .copied()
                .unwrap_or(0)
        }
        /// Every write so far, in order.
        pub fn writes(&self) -> Vec<(usize, u32)> {
            self.log.lock().unwrap().clone()
        }
        /// Forgets the write log.
        pub fn clear_log(&self) {
            self.log.lock().unwrap().clear();
        }
        /// A copy of every cell.
        pub fn snapshot(&self) -> BTreeMap<usize, u32> {
            self.cells.lock().unwrap().clone()
        }
    }

    impl Mmio for FakeFrame {
        fn read32(&self, offset: usize) -> u32 {
            assert_eq!(offset % 4, 0, "unaligned read {offset:#x}");
            self.get(offset)
        }
        fn write32(&self, offset: usize, value: u32) {
            assert_eq!(offset % 4, 0, "unaligned write {offset:#x}");
            let mut value = value;
            if self.waker_follows && offset % crate::v3::GICR_STRIDE == crate::v3::GICR_WAKER {
                value = if value & 2 == 0 {
                    value & !4
                } else {
                    value | 4
                };
            }
            self.cells.lock().unwrap().insert(offset, value);
            self.log.lock().unwrap().push((offset, value));
        }
    }

    /// Fake GICv3 CPU registers: a settable MPIDR and IAR, a log of what was written.
    #[derive(Default)]
    pub struct FakeCpu {
        /// What `mpidr` returns.
        pub mpidr: Mutex<u64>,
        /// What `read_iar1` returns next.
        pub iar: Mutex<u32>,
        /// Every SGI1R write.
        pub sgi1r: Mutex<Vec<u64>>,
        /// Every EOIR1 write.
        pub eoir: Mutex<Vec<u32>>,
        /// PMR, BPR1, IGRPEN1, SRE as last written.
        pub pmr: Mutex<Option<u8>>,
        /// Last BPR1.
        pub bpr: Mutex<Option<u8>>,
        /// Last IGRPEN1.
        pub grp1: Mutex<Option<bool>>,
        /// Whether SRE was set.
        pub sre: Mutex<bool>,
    }

    impl CpuRegs for FakeCpu {
        fn mpidr(&self) -> u64 {
            *self.mpidr.lock().unwrap()
        }
        fn enable_system_registers(&self) -> bool {
            *self.sre.lock().unwrap() = true;
            true
        }
        fn set_priority_mask(&self, mask: u8) {
            *self.pmr.lock().unwrap() = Some(mask);
        }
        fn set_binary_point(&self, value: u8) {
            *self.bpr.lock().unwrap() = Some(value);
        }
        fn set_group1_enable(&self, on: bool) {
            *self.grp1.lock().unwrap() = Some(on);
        }
        fn read_iar1(&self) -> u32 {
            *self.iar.lock().unwrap()
        }
        fn write_eoir1(&self, intid: u32) {
            self.eoir.lock().unwrap().push(intid);
        }
        fn write_sgi1r(&self, value: u64) {
            self.sgi1r.lock().unwrap().push(value);
        }
    }
}
