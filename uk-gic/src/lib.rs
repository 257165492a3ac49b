//! Arm GICv2 and GICv3 interrupt controller drivers with software-generated interrupts.
//!
//! # Design
//!
//! The drivers implement uk-hal's split interface ([`uk_hal::irq::IrqDistributor`] for the
//! shared side, [`uk_hal::irq::IrqCpuInterface`] for the calling CPU's side) over register
//! access traits ([`regs::Mmio`] for the memory-mapped frames, [`regs::CpuRegs`] for
//! `MPIDR_EL1` and the GICv3 `ICC_*_EL1` system registers). On a board the frames are
//! [`regs::MmioFrame`]s and the CPU registers `regs::SystemRegisters` (aarch64); in host tests
//! they are `regs::fake` (feature `fake`) register files that record every write, so each driver path is
//! tested without hardware.
//!
//! - [`Gicv2`]: distributor (`GICD`) and memory-mapped CPU interface (`GICC`). SGIs through
//!   `GICD_SGIR` ([`sgi::gicd_sgir`]); end of interrupt writes back the whole `GICC_IAR`
//!   value (an SGI's source CPU included).
//! - [`Gicv3`]: distributor with affinity routing (`GICD_IROUTER`), one redistributor per
//!   CPU found by its `GICR_TYPER` affinity and woken through `GICR_WAKER`, CPU interface by
//!   system registers. SGIs through `ICC_SGI1R_EL1` ([`sgi::sgi1r`]: target list, Aff1,
//!   Aff2, Aff3, range selector for Aff0 ≥ 16, IRM broadcast). SGI and PPI enable,
//!   priority and trigger go to the calling CPU's redistributor.
//! - [`dispatch::handle_pending`]: the loop of a board's IRQ entry (acknowledge, end,
//!   dispatch through a [`uk_hal::irq::HandlerTable`], until spurious).
//! - [`Gic`]: either, chosen at boot from the device tree ([`GicVersion::from_compatible`],
//!   [`GicLayout::from_reg`]).
//!
//! Priority and trigger writes change only their interrupt's field (read-modify-write of
//! the word; set/clear-enable registers take one bit). Interrupt numbers outside the
//! controller, SGI triggers and SGI/PPI routing are refused with an
//! [`uk_hal::irq::IrqError`], touching nothing. The spurious INTIDs 1020 to 1023 are never
//! acknowledged as interrupts and never ended.
//!
//! # Unikraft 0.11 defects this crate does not have
//!
//! Each has a host test: Aff1/Aff2 in their own `ICC_SGI1R_EL1` fields, Aff3 sent, the range
//! selector used for Aff0 ≥ 16 (`sgi::tests::sgi1r_matches_the_table`); a PPI's trigger
//! written to the redistributor, not the distributor (`tests::v3_ppi_trigger_goes_to_the_redistributor`);
//! no EOI for spurious 1023 (`tests::spurious_gets_no_eoi_v2`/`_v3`, and the IRQ loop's
//! `dispatch::tests::acknowledge_end_dispatch_until_spurious`).
//!
//! # Features
//!
//! - `ktest`: in-image test cases (an SGI to self arrives with its INTID; an interrupt
//!   with no handler is logged and acknowledged) for a board that registers its
//!   [`uk_hal::irq::Interrupts`] with the runtime.
//! - `fake`: exports `regs::fake` (feature `fake`) to other crates' tests.
//!
//! # Example
//!
//! ```
//! use uk_gic::{CpuTable, Gicv3, regs::fake::{FakeCpu, FakeFrame}};
//! use uk_hal::irq::{IrqCpuInterface, IpiTarget, CpuSet};
//!
//! let cpus = CpuTable::new(&[0x8000_0000, 0x8000_0001]).unwrap();
//! let gic = Gicv3::new(FakeFrame::new(), FakeFrame::new(), 0x4_0000, FakeCpu::default(), cpus);
//! gic.send_ipi(1, IpiTarget::Cpus(CpuSet::single(1))).unwrap();
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

pub mod dispatch;
mod fields;
#[cfg(all(feature = "ktest", target_os = "none", target_arch = "aarch64"))]
mod ktest;
pub mod regs;
pub mod sgi;
mod v2;
mod v3;

#[cfg(test)]
mod tests;

use core::fmt;

use uk_hal::irq::{
    CpuSet, IpiTarget, IrqCpuInterface, IrqDistributor, IrqError, IrqNumber, Trigger,
};

pub use v2::Gicv2;
pub use v3::Gicv3;

/// Most CPUs a driver knows (GICv2 addresses at most 8).
pub const MAX_CPUS: usize = 16;
/// Priority given to every interrupt at initialisation (lower is more urgent).
pub const DEFAULT_PRIORITY: u8 = 0xa0;
/// The CPU interface priority mask: every priority below it is signalled.
pub const PRIORITY_MASK: u8 = 0xff;
/// The first special INTID (1020 to 1023); 1023 is "spurious".
pub const SPURIOUS_FIRST: u32 = 1020;
/// The spurious INTID.
pub const SPURIOUS: u32 = 1023;

/// `GICD_CTLR`.
pub const GICD_CTLR: usize = 0x000;
/// `GICD_TYPER`.
pub const GICD_TYPER: usize = 0x004;
/// `GICD_IGROUPR<n>`.
pub const GICD_IGROUPR: usize = 0x080;
/// `GICD_ISENABLER<n>`.
pub const GICD_ISENABLER: usize = 0x100;
/// `GICD_ICENABLER<n>`.
pub const GICD_ICENABLER: usize = 0x180;
/// `GICD_IPRIORITYR<n>`.
pub const GICD_IPRIORITYR: usize = 0x400;
/// `GICD_ICFGR<n>`.
pub const GICD_ICFGR: usize = 0xc00;

/// Interrupt lines from `GICD_TYPER.ITLinesNumber`: 32 × (N + 1), at most 1020.
pub const fn line_count(typer: u32) -> u32 {
    let lines = 32 * ((typer & 0x1f) + 1);
    if lines > SPURIOUS_FIRST {
        SPURIOUS_FIRST
    } else {
        lines
    }
}

/// Why a GIC could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// No GIC node the driver understands.
    NoController,
    /// The node's `reg` lacks a frame (`0`: distributor, `1`: CPU interface or
    /// redistributors).
    MissingFrame(usize),
    /// More CPUs than [`MAX_CPUS`] (or 8 on a GICv2), or none.
    TooManyCpus(usize),
    /// The calling CPU's `MPIDR` is not in the CPU table.
    UnknownCpu(u64),
    /// No redistributor has the calling CPU's affinity.
    NoRedistributor(u64),
    /// A register bit never reached the expected value.
    Timeout(&'static str),
    /// `ICC_SRE_EL1.SRE` does not stick (a hypervisor forbids system-register access).
    NoSystemRegisters,
}

impl fmt::Display for GicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoController => f.write_str("no GICv2/GICv3 node in the device tree"),
            Self::MissingFrame(i) => write!(f, "the GIC node's reg has no entry {i}"),
            Self::TooManyCpus(n) => write!(f, "{n} CPUs: unsupported count"),
            Self::UnknownCpu(m) => write!(f, "MPIDR {m:#x} is not a known CPU"),
            Self::NoRedistributor(m) => write!(f, "no redistributor for MPIDR {m:#x}"),
            Self::Timeout(bit) => write!(f, "{bit} never settled"),
            Self::NoSystemRegisters => f.write_str("ICC_SRE_EL1.SRE cannot be set"),
        }
    }
}

/// The machine's CPUs by `MPIDR` affinity; logical CPU `i` is entry `i` (the boot CPU
/// first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTable {
    affinity: [u64; MAX_CPUS],
    count: u32,
}

/// The affinity bits of an `MPIDR` (Aff3, Aff2, Aff1, Aff0).
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

impl CpuTable {
    /// A table from the CPUs' `MPIDR` values (device tree `/cpus/cpu@N` `reg`).
    ///
    /// # Errors
    ///
    /// No CPU, or more than [`MAX_CPUS`].
    pub fn new(mpidrs: &[u64]) -> Result<Self, GicError> {
        if mpidrs.is_empty() || mpidrs.len() > MAX_CPUS {
            return Err(GicError::TooManyCpus(mpidrs.len()));
        }
        let mut affinity = [0; MAX_CPUS];
        for (slot, &mpidr) in affinity.iter_mut().zip(mpidrs) {
            *slot = mpidr & AFFINITY_MASK;
        }
        Ok(Self {
            affinity,
            count: mpidrs.len() as u32,
        })
    }

    /// How many CPUs.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The `MPIDR` affinity of logical CPU `cpu`.
    pub fn mpidr(&self, cpu: u32) -> Option<u64> {
        self.affinity[..self.count as usize]
            .get(cpu as usize)
            .copied()
    }

    /// The logical number of the CPU with `mpidr`.
    pub fn index_of(&self, mpidr: u64) -> Option<u32> {
        let mpidr = mpidr & AFFINITY_MASK;
        self.affinity[..self.count as usize]
            .iter()
            .position(|&a| a == mpidr)
            .map(|i| i as u32)
    }
}

/// The GIC architecture version a device-tree node describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`, `arm,cortex-a9-gic`).
    V2,
    /// GICv3 (`arm,gic-v3`).
    V3,
}

impl GicVersion {
    /// The version for one `compatible` string, if it names a GIC this crate drives.
    pub fn from_compatible(compatible: &[u8]) -> Option<Self> {
        match compatible {
            b"arm,cortex-a15-gic"
            | b"arm,gic-400"
            | b"arm,cortex-a9-gic"
            | b"arm,cortex-a7-gic" => Some(Self::V2),
            b"arm,gic-v3" => Some(Self::V3),
            _ => None,
        }
    }
}

/// The INTID of a device-tree interrupt specifier of a GIC (`#interrupt-cells = 3`: type,
/// number, flags): SPI `n` (type 0) is `32 + n`, PPI `n` (type 1) is `16 + n`. `None` for
/// another type or a number out of range (SPIs 0–987, PPIs 0–15).
pub fn dt_intid(kind: u32, number: u32) -> Option<IrqNumber> {
    match kind {
        0 if number < SPURIOUS_FIRST - 32 => Some(32 + number),
        1 if number < 16 => Some(16 + number),
        _ => None,
    }
}

/// Where a GIC's frames are, from its node's `reg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicLayout {
    /// The version.
    pub version: GicVersion,
    /// Distributor frame (base, size).
    pub distributor: (u64, u64),
    /// GICv2: the CPU interface frame; GICv3: the (first) redistributor region.
    pub cpu_side: (u64, u64),
}

impl GicLayout {
    /// The layout from `reg` entries (base, size) in order: distributor first, then the
    /// CPU interface (v2) or the redistributor region (v3); further entries (GICv2
    /// virtualisation frames, more redistributor regions) are ignored.
    ///
    /// # Errors
    ///
    /// [`GicError::MissingFrame`] for a missing or empty entry.
    pub fn from_reg(version: GicVersion, reg: &[(u64, u64)]) -> Result<Self, GicError> {
        let frame = |i: usize| {
            reg.get(i)
                .copied()
                .filter(|&(_, size)| size > 0)
                .ok_or(GicError::MissingFrame(i))
        };
        Ok(Self {
            version,
            distributor: frame(0)?,
            cpu_side: frame(1)?,
        })
    }
}

/// A GICv2 or a GICv3, as found at boot; delegates every call.
pub enum Gic<D, C, R, S> {
    /// A GICv2 (`C` is its CPU interface frame).
    V2(Gicv2<D, C, S>),
    /// A GICv3 (`R` is its redistributor region).
    V3(Gicv3<D, R, S>),
}

impl<D: regs::Mmio, C: regs::Mmio, R: regs::Mmio, S: regs::CpuRegs> Gic<D, C, R, S> {
    /// Once, on the boot CPU: see [`Gicv2::init_distributor`], [`Gicv3::init_distributor`].
    ///
    /// # Errors
    ///
    /// As the version's.
    pub fn init_distributor(&self) -> Result<(), GicError> {
        match self {
            Self::V2(g) => {
                g.init_distributor();
                Ok(())
            }
            Self::V3(g) => g.init_distributor(),
        }
    }

    /// On every CPU: see [`Gicv2::init_cpu`], [`Gicv3::init_cpu`].
    ///
    /// # Errors
    ///
    /// As the version's.
    pub fn init_cpu(&self) -> Result<(), GicError> {
        match self {
            Self::V2(g) => {
                g.init_cpu();
                Ok(())
            }
            Self::V3(g) => g.init_cpu(),
        }
    }

    /// The version.
    pub fn version(&self) -> GicVersion {
        match self {
            Self::V2(_) => GicVersion::V2,
            Self::V3(_) => GicVersion::V3,
        }
    }

    fn dist(&self) -> &dyn IrqDistributor {
        match self {
            Self::V2(g) => g,
            Self::V3(g) => g,
        }
    }

    fn cpu(&self) -> &dyn IrqCpuInterface {
        match self {
            Self::V2(g) => g,
            Self::V3(g) => g,
        }
    }
}

impl<D: regs::Mmio, C: regs::Mmio, R: regs::Mmio, S: regs::CpuRegs> IrqDistributor
    for Gic<D, C, R, S>
{
    fn enable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.dist().enable(irq)
    }
    fn disable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.dist().disable(irq)
    }
    fn set_priority(&self, irq: IrqNumber, priority: u8) -> Result<(), IrqError> {
        self.dist().set_priority(irq, priority)
    }
    fn set_trigger(&self, irq: IrqNumber, trigger: Trigger) -> Result<(), IrqError> {
        self.dist().set_trigger(irq, trigger)
    }
    fn route(&self, irq: IrqNumber, cpus: CpuSet) -> Result<(), IrqError> {
        self.dist().route(irq, cpus)
    }
    fn line_count(&self) -> u32 {
        self.dist().line_count()
    }
}

impl<D: regs::Mmio, C: regs::Mmio, R: regs::Mmio, S: regs::CpuRegs> IrqCpuInterface
    for Gic<D, C, R, S>
{
    fn acknowledge(&self) -> Option<IrqNumber> {
        self.cpu().acknowledge()
    }
    fn end_of_interrupt(&self, irq: IrqNumber) {
        self.cpu().end_of_interrupt(irq)
    }
    fn send_ipi(&self, irq: IrqNumber, target: IpiTarget) -> Result<(), IrqError> {
        self.cpu().send_ipi(irq, target)
    }
    fn cpu_id(&self) -> u32 {
        self.cpu().cpu_id()
    }
}
