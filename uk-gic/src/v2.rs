//! GICv2: a distributor (`GICD`) and a memory-mapped CPU interface (`GICC`) per CPU (one
//! frame, banked by the CPU that accesses it).

use core::sync::atomic::{AtomicU32, Ordering};

use uk_hal::irq::{
    CpuSet, IpiTarget, IrqCpuInterface, IrqDistributor, IrqError, IrqNumber, Trigger,
};

use crate::regs::{CpuRegs, Mmio};
use crate::sgi::{SgirFilter, gicd_sgir};
use crate::{
    CpuTable, DEFAULT_PRIORITY, GICD_CTLR, GICD_ICENABLER, GICD_ICFGR, GICD_IPRIORITYR,
    GICD_ISENABLER, GICD_TYPER, MAX_CPUS, PRIORITY_MASK, SPURIOUS_FIRST, fields, line_count,
};

/// `GICD_ITARGETSR`: one byte per interrupt, a mask of CPU interfaces.
pub const GICD_ITARGETSR: usize = 0x800;
/// `GICD_SGIR`.
pub const GICD_SGIR: usize = 0xf00;
/// `GICC_CTLR`.
pub const GICC_CTLR: usize = 0x00;
/// `GICC_PMR`.
pub const GICC_PMR: usize = 0x04;
/// `GICC_BPR`.
pub const GICC_BPR: usize = 0x08;
/// `GICC_IAR`.
pub const GICC_IAR: usize = 0x0c;
/// `GICC_EOIR`.
pub const GICC_EOIR: usize = 0x10;

/// A GICv2 over its distributor frame `D`, CPU interface frame `C` and `MPIDR` source `R`.
pub struct Gicv2<D, C, R> {
    gicd: D,
    gicc: C,
    regs: R,
    cpus: CpuTable,
    /// Each CPU's interface mask (`GICD_ITARGETSR0`'s own byte), learnt in `init_cpu`.
    interface: [AtomicU32; MAX_CPUS],
    /// Each CPU's last `GICC_IAR` value: EOI must write it back whole (for an SGI it holds
    /// the sending CPU in bits 12:10).
    last_iar: [AtomicU32; MAX_CPUS],
}

impl<D: Mmio, C: Mmio, R: CpuRegs> Gicv2<D, C, R> {
    /// The driver for the CPUs whose `MPIDR`s are `cpus` (logical CPU `i` = `cpus[i]`);
    /// touches no register.
    pub fn new(gicd: D, gicc: C, regs: R, cpus: CpuTable) -> Self {
        Self {
            gicd,
            gicc,
            regs,
            cpus,
            interface: [const { AtomicU32::new(0) }; MAX_CPUS],
            last_iar: [const { AtomicU32::new(0) }; MAX_CPUS],
        }
    }

    /// Once, on the boot CPU: every SPI disabled, level-sensitive, priority
    /// [`DEFAULT_PRIORITY`], routed to CPU 0; then the distributor on.
    pub fn init_distributor(&self) {
        let d = &self.gicd;
        d.write32(GICD_CTLR, 0);
        let lines = self.line_count();
        for irq in (32..lines).step_by(32) {
            d.write32(GICD_ICENABLER + (irq as usize / 32) * 4, u32::MAX);
        }
        for irq in (32..lines).step_by(4) {
            let p = u32::from(DEFAULT_PRIORITY);
            d.write32(GICD_IPRIORITYR + irq as usize, p * 0x0101_0101);
            d.write32(GICD_ITARGETSR + irq as usize, 0x0101_0101);
        }
        for irq in (32..lines).step_by(16) {
            d.write32(GICD_ICFGR + (irq as usize / 16) * 4, 0);
        }
        d.write32(GICD_CTLR, 1);
    }

    /// On each CPU: SGIs on, PPIs off, their priorities [`DEFAULT_PRIORITY`]; the CPU
    /// interface on with priority mask [`PRIORITY_MASK`].
    pub fn init_cpu(&self) {
        let d = &self.gicd;
        let cpu = (self.cpu_id() as usize).min(MAX_CPUS - 1);
        d.write32(GICD_ICENABLER, 0xffff_0000);
        d.write32(GICD_ISENABLER, 0x0000_ffff);
        for irq in (0..32).step_by(4) {
            d.write32(
                GICD_IPRIORITYR + irq,
                u32::from(DEFAULT_PRIORITY) * 0x0101_0101,
            );
        }
        // The banked ITARGETSR0..7 read as this CPU's own interface mask.
        let own = d.read32(GICD_ITARGETSR) & 0xff;
        let own = if own == 0 { 1 << cpu } else { own };
        self.interface[cpu].store(own, Ordering::Relaxed);
        let c = &self.gicc;
        c.write32(GICC_PMR, u32::from(PRIORITY_MASK));
        c.write32(GICC_BPR, 0);
        c.write32(GICC_CTLR, 1);
    }

    /// The distributor frame (tests look at what was written).
    #[cfg(test)]
    pub(crate) fn distributor_frame(&self) -> &D {
        &self.gicd
    }

    /// The CPU interface frame.
    #[cfg(test)]
    pub(crate) fn cpu_frame(&self) -> &C {
        &self.gicc
    }

    fn check(&self, irq: IrqNumber) -> Result<(), IrqError> {
        if irq >= self.line_count() {
            return Err(IrqError::NoSuchIrq(irq));
        }
        Ok(())
    }

    /// The CPU interface mask of logical CPU `cpu`; a GICv2 has at most 8 interfaces.
    fn interface_mask(&self, cpu: u32) -> Result<u32, IrqError> {
        if cpu >= self.cpus.count() || cpu >= 8 {
            return Err(IrqError::NoSuchCpu(cpu));
        }
        Ok(match self.interface[cpu as usize].load(Ordering::Relaxed) {
            0 => 1 << cpu,
            mask => mask,
        })
    }
}

impl<D: Mmio, C: Mmio, R: CpuRegs> IrqDistributor for Gicv2<D, C, R> {
    fn enable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.check(irq)?;
        fields::write_one_bit(&self.gicd, GICD_ISENABLER, irq);
        Ok(())
    }

    fn disable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.check(irq)?;
        fields::write_one_bit(&self.gicd, GICD_ICENABLER, irq);
        Ok(())
    }

    fn set_priority(&self, irq: IrqNumber, priority: u8) -> Result<(), IrqError> {
        self.check(irq)?;
        fields::write_field(&self.gicd, GICD_IPRIORITYR, irq, 8, u32::from(priority));
        Ok(())
    }

    /// SGIs are always edge ([`IrqError::NotConfigurable`]); PPIs and SPIs are configured in
    /// `GICD_ICFGR` (on a GICv2, PPIs live in the distributor's banked copy).
    fn set_trigger(&self, irq: IrqNumber, trigger: Trigger) -> Result<(), IrqError> {
        self.check(irq)?;
        if irq < 16 {
            return Err(IrqError::NotConfigurable(irq));
        }
        fields::write_edge(&self.gicd, GICD_ICFGR, irq, trigger == Trigger::Edge);
        Ok(())
    }

    /// SPIs only (SGIs and PPIs belong to their CPU): `GICD_ITARGETSR` gets the interface
    /// mask of every CPU in the set.
    fn route(&self, irq: IrqNumber, cpus: CpuSet) -> Result<(), IrqError> {
        self.check(irq)?;
        if irq < 32 {
            return Err(IrqError::NotConfigurable(irq));
        }
        let mut mask = 0;
        for cpu in cpus.iter() {
            mask |= self.interface_mask(cpu)?;
        }
        if mask == 0 {
            return Err(IrqError::NotConfigurable(irq));
        }
        fields::write_field(&self.gicd, GICD_ITARGETSR, irq, 8, mask);
        Ok(())
    }

    fn line_count(&self) -> u32 {
        line_count(self.gicd.read32(GICD_TYPER))
    }
}

impl<D: Mmio, C: Mmio, R: CpuRegs> IrqCpuInterface for Gicv2<D, C, R> {
    fn acknowledge(&self) -> Option<IrqNumber> {
        let raw = self.gicc.read32(GICC_IAR);
        let irq = raw & 0x3ff;
        if irq >= SPURIOUS_FIRST {
            return None;
        }
        self.last_iar[self.cpu_id() as usize].store(raw, Ordering::Relaxed);
        Some(irq)
    }

    fn end_of_interrupt(&self, irq: IrqNumber) {
        if irq >= SPURIOUS_FIRST {
            return;
        }
        let raw = self.last_iar[self.cpu_id() as usize].load(Ordering::Relaxed);
        let value = if raw & 0x3ff == irq { raw } else { irq };
        self.gicc.write32(GICC_EOIR, value);
    }

    fn send_ipi(&self, irq: IrqNumber, target: IpiTarget) -> Result<(), IrqError> {
        let filter = match target {
            IpiTarget::SelfOnly => SgirFilter::SelfOnly,
            IpiTarget::AllButSelf => SgirFilter::AllButSelf,
            IpiTarget::Cpus(set) => {
                let mut list = 0;
                for cpu in set.iter() {
                    list |= self.interface_mask(cpu)?;
                }
                SgirFilter::List(list as u8)
            }
        };
        let value = gicd_sgir(irq, filter)?;
        self.regs.barrier_before_sgi();
        self.gicd.write32(GICD_SGIR, value);
        Ok(())
    }

    fn cpu_id(&self) -> u32 {
        self.cpus.index_of(self.regs.mpidr()).unwrap_or(0)
    }
}
