//! GICv3: a distributor (`GICD`) with affinity routing, one redistributor (`GICR`) per CPU
//! holding its SGIs' and PPIs' configuration, and the CPU interface as system registers.

use core::sync::atomic::{AtomicUsize, Ordering};

use uk_hal::irq::{
    CpuSet, IpiTarget, IrqCpuInterface, IrqDistributor, IrqError, IrqNumber, Trigger,
};

use crate::regs::{CpuRegs, Mmio};
use crate::sgi::{Affinity, sgi1r, sgi1r_broadcast, sgi1r_for_set};
use crate::{
    CpuTable, DEFAULT_PRIORITY, GICD_CTLR, GICD_ICENABLER, GICD_ICFGR, GICD_IGROUPR,
    GICD_IPRIORITYR, GICD_ISENABLER, GICD_TYPER, GicError, MAX_CPUS, PRIORITY_MASK, SPURIOUS_FIRST,
    fields, line_count,
};

/// `GICD_IROUTER<n>` (64-bit each, from INTID 0; only SPIs have one).
pub const GICD_IROUTER: usize = 0x6000;
/// `GICD_CTLR.RWP`: a register write is still taking effect.
pub const GICD_CTLR_RWP: u32 = 1 << 31;
/// `GICD_CTLR` value: affinity routing (`ARE`/`ARE_NS`, bit 4) and group 1 on (bit 1 is
/// `EnableGrp1` with one security state, `EnableGrp1A` in the non-secure view).
pub const GICD_CTLR_ON: u32 = (1 << 4) | (1 << 1);
/// `GICR_TYPER` (64-bit) in the RD frame.
pub const GICR_TYPER: usize = 0x08;
/// `GICR_WAKER` in the RD frame.
pub const GICR_WAKER: usize = 0x14;
/// Offset of the SGI frame from the RD frame.
pub const SGI_FRAME: usize = 0x1_0000;
/// `GICR_IGROUPR0` (SGI frame).
pub const GICR_IGROUPR0: usize = SGI_FRAME + 0x080;
/// `GICR_ISENABLER0` (SGI frame).
pub const GICR_ISENABLER0: usize = SGI_FRAME + 0x100;
/// `GICR_ICENABLER0` (SGI frame).
pub const GICR_ICENABLER0: usize = SGI_FRAME + 0x180;
/// `GICR_IPRIORITYR0..7` (SGI frame).
pub const GICR_IPRIORITYR: usize = SGI_FRAME + 0x400;
/// `GICR_ICFGR0` (SGI frame; `ICFGR1`, the PPIs, follows at +4).
pub const GICR_ICFGR0: usize = SGI_FRAME + 0xc00;
/// Redistributor stride without virtual LPIs (RD + SGI frames).
pub const GICR_STRIDE: usize = 0x2_0000;
/// Redistributor stride with virtual LPIs (`GICR_TYPER.VLPIS`: two more frames).
pub const GICR_STRIDE_VLPI: usize = 0x4_0000;
/// Polls of a "write pending"/"children asleep" bit before giving up.
const POLLS: u32 = 1_000_000;

/// A GICv3 over its distributor frame `D`, its redistributor region `R` (every CPU's
/// redistributor, one after the other) and the CPU's system registers `S`.
pub struct Gicv3<D, R, S> {
    gicd: D,
    gicr: R,
    regs: S,
    cpus: CpuTable,
    /// The byte offset of each CPU's redistributor in `gicr`, plus one (0: not found yet).
    frame: [AtomicUsize; MAX_CPUS],
    /// Size of the redistributor region.
    gicr_size: usize,
}

impl<D: Mmio, R: Mmio, S: CpuRegs> Gicv3<D, R, S> {
    /// The driver for the CPUs whose `MPIDR`s are `cpus`; `gicr_size` bounds the search
    /// for redistributors. Touches no register.
    pub fn new(gicd: D, gicr: R, gicr_size: usize, regs: S, cpus: CpuTable) -> Self {
        Self {
            gicd,
            gicr,
            regs,
            cpus,
            frame: [const { AtomicUsize::new(0) }; MAX_CPUS],
            gicr_size,
        }
    }

    fn wait_rwp(&self) -> Result<(), GicError> {
        for _ in 0..POLLS {
            if self.gicd.read32(GICD_CTLR) & GICD_CTLR_RWP == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(GicError::Timeout("GICD_CTLR.RWP"))
    }

    /// Once, on the boot CPU: the distributor off, every SPI group 1, disabled,
    /// level-sensitive, priority [`DEFAULT_PRIORITY`], routed to CPU 0; then affinity
    /// routing and group 1 on.
    ///
    /// # Errors
    ///
    /// The distributor never finished a write ([`GicError::Timeout`]).
    pub fn init_distributor(&self) -> Result<(), GicError> {
        let d = &self.gicd;
        d.write32(GICD_CTLR, 0);
        self.wait_rwp()?;
        let lines = self.line_count();
        for irq in (32..lines).step_by(32) {
            let word = (irq as usize / 32) * 4;
            d.write32(GICD_ICENABLER + word, u32::MAX);
            d.write32(GICD_IGROUPR + word, u32::MAX);
        }
        for irq in (32..lines).step_by(4) {
            d.write32(
                GICD_IPRIORITYR + irq as usize,
                u32::from(DEFAULT_PRIORITY) * 0x0101_0101,
            );
        }
        for irq in (32..lines).step_by(16) {
            d.write32(GICD_ICFGR + (irq as usize / 16) * 4, 0);
        }
        let boot = Affinity::from_mpidr(self.cpus.mpidr(0).unwrap_or(0)).irouter();
        for irq in 32..lines {
            d.write64(GICD_IROUTER + irq as usize * 8, boot);
        }
        self.wait_rwp()?;
        d.write32(GICD_CTLR, GICD_CTLR_ON);
        self.wait_rwp()
    }

    /// Finds the redistributor whose `GICR_TYPER` affinity is `mpidr`'s.
    fn find_frame(&self, mpidr: u64) -> Option<usize> {
        let want = Affinity::from_mpidr(mpidr).packed();
        let mut at = 0;
        while at + GICR_STRIDE <= self.gicr_size {
            let typer = self.gicr.read64(at + GICR_TYPER);
            if (typer >> 32) as u32 == want {
                return Some(at);
            }
            if typer & (1 << 4) != 0 {
                return None; // Last
            }
            at += if typer & (1 << 1) != 0 {
                GICR_STRIDE_VLPI
            } else {
                GICR_STRIDE
            };
        }
        None
    }

    /// On each CPU: finds and wakes its redistributor (`GICR_WAKER.ProcessorSleep` cleared,
    /// then `ChildrenAsleep` polled until clear), SGIs on and PPIs off in group 1 at
    /// [`DEFAULT_PRIORITY`], the system-register interface on (`ICC_SRE_EL1`), priority
    /// mask [`PRIORITY_MASK`], binary point 0, group 1 on.
    ///
    /// # Errors
    ///
    /// No redistributor for this CPU, a redistributor that does not wake, or no system
    /// register access (a hypervisor that keeps `ICC_SRE_EL1.SRE` clear).
    pub fn init_cpu(&self) -> Result<(), GicError> {
        let mpidr = self.regs.mpidr();
        let cpu = self
            .cpus
            .index_of(mpidr)
            .ok_or(GicError::UnknownCpu(mpidr))?;
        let frame = self
            .find_frame(mpidr)
            .ok_or(GicError::NoRedistributor(mpidr))?;
        let r = &self.gicr;
        let waker = r.read32(frame + GICR_WAKER);
        r.write32(frame + GICR_WAKER, waker & !(1 << 1));
        let mut awake = false;
        for _ in 0..POLLS {
            if r.read32(frame + GICR_WAKER) & (1 << 2) == 0 {
                awake = true;
                break;
            }
            core::hint::spin_loop();
        }
        if !awake {
            return Err(GicError::Timeout("GICR_WAKER.ChildrenAsleep"));
        }
        r.write32(frame + GICR_IGROUPR0, u32::MAX);
        r.write32(frame + GICR_ICENABLER0, 0xffff_0000);
        r.write32(frame + GICR_ISENABLER0, 0x0000_ffff);
        for irq in (0..32).step_by(4) {
            r.write32(
                frame + GICR_IPRIORITYR + irq,
                u32::from(DEFAULT_PRIORITY) * 0x0101_0101,
            );
        }
        self.frame[cpu as usize].store(frame + 1, Ordering::Release);
        if !self.regs.enable_system_registers() {
            return Err(GicError::NoSystemRegisters);
        }
        self.regs.set_priority_mask(PRIORITY_MASK);
        self.regs.set_binary_point(0);
        self.regs.set_group1_enable(true);
        Ok(())
    }

    /// The calling CPU's redistributor offset; SGIs and PPIs are configured there.
    fn own_frame(&self, irq: IrqNumber) -> Result<usize, IrqError> {
        match self.frame[self.cpu_id() as usize].load(Ordering::Acquire) {
            0 => Err(IrqError::NotConfigurable(irq)),
            frame => Ok(frame - 1),
        }
    }

    /// The distributor and redistributor frames (tests look at what was written).
    #[cfg(test)]
    pub(crate) fn frames(&self) -> (&D, &R) {
        (&self.gicd, &self.gicr)
    }

    /// The CPU registers.
    #[cfg(test)]
    pub(crate) fn cpu_regs(&self) -> &S {
        &self.regs
    }

    fn check(&self, irq: IrqNumber) -> Result<(), IrqError> {
        if irq >= self.line_count() {
            return Err(IrqError::NoSuchIrq(irq));
        }
        Ok(())
    }
}

impl<D: Mmio, R: Mmio, S: CpuRegs> IrqDistributor for Gicv3<D, R, S> {
    /// SGIs and PPIs: in the calling CPU's redistributor; SPIs: in the distributor.
    fn enable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.check(irq)?;
        if irq < 32 {
            let frame = self.own_frame(irq)?;
            self.gicr.write32(frame + GICR_ISENABLER0, 1 << irq);
        } else {
            fields::write_one_bit(&self.gicd, GICD_ISENABLER, irq);
        }
        Ok(())
    }

    fn disable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.check(irq)?;
        if irq < 32 {
            let frame = self.own_frame(irq)?;
            self.gicr.write32(frame + GICR_ICENABLER0, 1 << irq);
        } else {
            fields::write_one_bit(&self.gicd, GICD_ICENABLER, irq);
        }
        Ok(())
    }

    fn set_priority(&self, irq: IrqNumber, priority: u8) -> Result<(), IrqError> {
        self.check(irq)?;
        let value = u32::from(priority);
        if irq < 32 {
            let frame = self.own_frame(irq)?;
            let gicr = Offset(&self.gicr, frame);
            fields::write_field(&gicr, GICR_IPRIORITYR, irq, 8, value);
        } else {
            fields::write_field(&self.gicd, GICD_IPRIORITYR, irq, 8, value);
        }
        Ok(())
    }

    /// SGIs: [`IrqError::NotConfigurable`]. PPIs: the calling CPU's redistributor
    /// (`GICR_ICFGR1`; with affinity routing the distributor's copy is not used, where
    /// Unikraft 0.11 wrote it). SPIs: `GICD_ICFGR`.
    fn set_trigger(&self, irq: IrqNumber, trigger: Trigger) -> Result<(), IrqError> {
        self.check(irq)?;
        let edge = trigger == Trigger::Edge;
        if irq < 16 {
            return Err(IrqError::NotConfigurable(irq));
        }
        if irq < 32 {
            let frame = self.own_frame(irq)?;
            fields::write_edge(&Offset(&self.gicr, frame), GICR_ICFGR0, irq, edge);
        } else {
            fields::write_edge(&self.gicd, GICD_ICFGR, irq, edge);
        }
        Ok(())
    }

    /// SPIs only: `GICD_IROUTER` names the lowest CPU of the set.
    fn route(&self, irq: IrqNumber, cpus: CpuSet) -> Result<(), IrqError> {
        self.check(irq)?;
        if irq < 32 {
            return Err(IrqError::NotConfigurable(irq));
        }
        let cpu = cpus.iter().next().ok_or(IrqError::NotConfigurable(irq))?;
        let mpidr = self.cpus.mpidr(cpu).ok_or(IrqError::NoSuchCpu(cpu))?;
        self.gicd.write64(
            GICD_IROUTER + irq as usize * 8,
            Affinity::from_mpidr(mpidr).irouter(),
        );
        Ok(())
    }

    fn line_count(&self) -> u32 {
        line_count(self.gicd.read32(GICD_TYPER))
    }
}

impl<D: Mmio, R: Mmio, S: CpuRegs> IrqCpuInterface for Gicv3<D, R, S> {
    fn acknowledge(&self) -> Option<IrqNumber> {
        let irq = self.regs.read_iar1() & 0xff_ffff;
        (!(SPURIOUS_FIRST..1024).contains(&irq)).then_some(irq)
    }

    fn end_of_interrupt(&self, irq: IrqNumber) {
        if (SPURIOUS_FIRST..1024).contains(&irq) {
            return;
        }
        self.regs.write_eoir1(irq);
    }

    fn send_ipi(&self, irq: IrqNumber, target: IpiTarget) -> Result<(), IrqError> {
        let mut words = [0u64; MAX_CPUS];
        let count = match target {
            IpiTarget::SelfOnly => {
                words[0] = sgi1r(irq, Affinity::from_mpidr(self.regs.mpidr()))?;
                1
            }
            IpiTarget::AllButSelf => {
                words[0] = sgi1r_broadcast(irq)?;
                1
            }
            IpiTarget::Cpus(set) => {
                let mut affinities = [Affinity::from_mpidr(0); MAX_CPUS];
                let mut n = 0;
                for cpu in set.iter() {
                    let mpidr = self.cpus.mpidr(cpu).ok_or(IrqError::NoSuchCpu(cpu))?;
                    affinities[n] = Affinity::from_mpidr(mpidr);
                    n += 1;
                }
                sgi1r_for_set(irq, affinities[..n].iter().copied(), &mut words)?
            }
        };
        self.regs.barrier_before_sgi();
        for &word in &words[..count] {
            self.regs.write_sgi1r(word);
        }
        Ok(())
    }

    fn cpu_id(&self) -> u32 {
        self.cpus.index_of(self.regs.mpidr()).unwrap_or(0)
    }
}

/// A view of a frame from `base` on (one redistributor of the region).
struct Offset<'a, M: ?Sized>(&'a M, usize);

impl<M: Mmio + ?Sized> Mmio for Offset<'_, M> {
    fn read32(&self, offset: usize) -> u32 {
        self.0.read32(self.1 + offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        self.0.write32(self.1 + offset, value)
    }
}
