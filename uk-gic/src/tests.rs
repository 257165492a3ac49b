//! Host tests of both drivers against fake register files.

use std::collections::BTreeMap;
use std::vec::Vec;

use uk_hal::irq::{CpuSet, IpiTarget, IrqCpuInterface, IrqDistributor, IrqError, Trigger};

use crate::regs::fake::{FakeCpu, FakeFrame};
use crate::v2::{GICC_EOIR, GICC_IAR, GICD_ITARGETSR, GICD_SGIR};
use crate::v3::{GICR_ICFGR0, GICR_IPRIORITYR, GICR_STRIDE, GICR_TYPER, GICR_WAKER};
use crate::*;

/// 3 → 128 lines.
const TYPER_128: u32 = 3;
const MPIDRS: [u64; 2] = [0x8000_0000, 0x8000_0001];

fn v2() -> Gicv2<FakeFrame, FakeFrame, FakeCpu> {
    let gicd = FakeFrame::new();
    gicd.preset(GICD_TYPER, TYPER_128);
    let cpu = FakeCpu::default();
    *cpu.mpidr.lock().unwrap() = MPIDRS[0];
    Gicv2::new(gicd, FakeFrame::new(), cpu, CpuTable::new(&MPIDRS).unwrap())
}

/// A GICv3 with two redistributors (the second is `Last`), CPU 0 initialised.
fn v3() -> Gicv3<FakeFrame, FakeFrame, FakeCpu> {
    let gicd = FakeFrame::new();
    gicd.preset(GICD_TYPER, TYPER_128);
    let gicr = FakeFrame::redistributors();
    for (i, &mpidr) in MPIDRS.iter().enumerate() {
        let at = i * GICR_STRIDE;
        gicr.preset(at + GICR_TYPER + 4, (mpidr & 0xff) as u32);
        gicr.preset(at + GICR_TYPER, if i == 1 { 1 << 4 } else { 0 });
        gicr.preset(at + GICR_WAKER, 0b110);
    }
    let cpu = FakeCpu::default();
    *cpu.mpidr.lock().unwrap() = MPIDRS[0];
    let gic = Gicv3::new(
        gicd,
        gicr,
        2 * GICR_STRIDE,
        cpu,
        CpuTable::new(&MPIDRS).unwrap(),
    );
    gic.init_cpu().unwrap();
    gic
}

/// Fills `frame`'s cells in `range` with a pattern no driver write produces by chance.
fn fill(frame: &FakeFrame, range: core::ops::Range<usize>) {
    for offset in range.step_by(4) {
        frame.preset(
            offset,
            0x5a5a_5a5a ^ (offset as u32).wrapping_mul(0x9e37_79b9),
        );
    }
}

/// The cells that differ between two snapshots.
fn changed(before: &BTreeMap<usize, u32>, after: &BTreeMap<usize, u32>) -> Vec<usize> {
    after
        .iter()
        .filter(|(k, v)| before.get(k).copied().unwrap_or(0) != **v)
        .map(|(k, _)| *k)
        .collect()
}

/// Checks that only `irq`'s `width`-bit field of the bank at `base` changed, and to `want`.
fn only_field(
    before: &BTreeMap<usize, u32>,
    after: &BTreeMap<usize, u32>,
    base: usize,
    irq: u32,
    width: u32,
    want: u32,
) {
    let per_word = 32 / width;
    let word = base + (irq / per_word) as usize * 4;
    let shift = (irq % per_word) * width;
    let mask = ((1u64 << width) - 1) as u32;
    for offset in changed(before, after) {
        assert_eq!(
            offset, word,
            "irq {irq}: write outside its word at {offset:#x}"
        );
    }
    let old = before.get(&word).copied().unwrap_or(0);
    let new = after.get(&word).copied().unwrap_or(0);
    assert_eq!(
        new & !(mask << shift),
        old & !(mask << shift),
        "irq {irq}: neighbours changed"
    );
    assert_eq!((new >> shift) & mask, want, "irq {irq}: field not written");
}

#[test]
fn v2_priority_changes_only_its_byte() {
    let gic = v2();
    fill(gic_d(&gic), GICD_IPRIORITYR..GICD_IPRIORITYR + 128);
    for irq in 0..128 {
        let before = gic_d(&gic).snapshot();
        let priority = (irq as u8).wrapping_mul(37) | 1;
        gic.set_priority(irq, priority).unwrap();
        only_field(
            &before,
            &gic_d(&gic).snapshot(),
            GICD_IPRIORITYR,
            irq,
            8,
            u32::from(priority),
        );
    }
}

#[test]
fn v2_trigger_changes_only_its_field() {
    let gic = v2();
    fill(gic_d(&gic), GICD_ICFGR..GICD_ICFGR + 32);
    for irq in 16..128 {
        for (trigger, edge) in [(Trigger::Edge, 1), (Trigger::Level, 0)] {
            let before = gic_d(&gic).snapshot();
            let bit0 = crate::fields::read_field(gic_d(&gic), GICD_ICFGR, irq, 2) & 1;
            gic.set_trigger(irq, trigger).unwrap();
            only_field(
                &before,
                &gic_d(&gic).snapshot(),
                GICD_ICFGR,
                irq,
                2,
                (edge << 1) | bit0,
            );
        }
    }
    let before = gic_d(&gic).snapshot();
    assert_eq!(
        gic.set_trigger(5, Trigger::Level),
        Err(IrqError::NotConfigurable(5))
    );
    assert_eq!(
        gic.set_trigger(128, Trigger::Level),
        Err(IrqError::NoSuchIrq(128))
    );
    assert_eq!(before, gic_d(&gic).snapshot());
}

fn gic_d<A: regs::Mmio, B: regs::CpuRegs>(gic: &Gicv2<FakeFrame, A, B>) -> &FakeFrame {
    gic.distributor_frame()
}

#[test]
fn v3_priority_and_trigger_change_only_their_fields() {
    let gic = v3();
    let (gicd, gicr) = gic.frames();
    fill(gicd, GICD_IPRIORITYR..GICD_IPRIORITYR + 128);
    fill(gicd, GICD_ICFGR..GICD_ICFGR + 32);
    fill(gicr, GICR_IPRIORITYR..GICR_IPRIORITYR + 32);
    fill(gicr, GICR_ICFGR0..GICR_ICFGR0 + 8);
    for irq in 0..128u32 {
        let (frame, prio_base, cfg_base) = if irq < 32 {
            (gicr, GICR_IPRIORITYR, GICR_ICFGR0)
        } else {
            (gicd, GICD_IPRIORITYR, GICD_ICFGR)
        };
        let other = if irq < 32 { gicd } else { gicr };
        let other_before = other.snapshot();
        let before = frame.snapshot();
        gic.set_priority(irq, 0x40 | (irq as u8 & 0x3f)).unwrap();
        only_field(
            &before,
            &frame.snapshot(),
            prio_base,
            irq,
            8,
            0x40 | (irq & 0x3f),
        );
        if irq >= 16 {
            let before = frame.snapshot();
            let bit0 = crate::fields::read_field(frame, cfg_base, irq, 2) & 1;
            gic.set_trigger(irq, Trigger::Edge).unwrap();
            only_field(&before, &frame.snapshot(), cfg_base, irq, 2, 0b10 | bit0);
        }
        assert_eq!(
            other_before,
            other.snapshot(),
            "irq {irq} touched the other frame"
        );
    }
}

/// Unikraft 0.11 wrote a PPI's trigger to `GICD_ICFGR1`; with affinity routing only the
/// redistributor's `GICR_ICFGR1` counts.
#[test]
fn v3_ppi_trigger_goes_to_the_redistributor() {
    let gic = v3();
    let (gicd, gicr) = gic.frames();
    gicd.clear_log();
    gicr.clear_log();
    gic.set_trigger(27, Trigger::Edge).unwrap();
    assert!(
        gicd.writes().is_empty(),
        "distributor written: {:?}",
        gicd.writes()
    );
    assert_eq!(gicr.writes(), [(GICR_ICFGR0 + 4, 0b10 << 22)]);
    gic.set_trigger(27, Trigger::Level).unwrap();
    assert_eq!(gicr.get(GICR_ICFGR0 + 4), 0);
}

#[test]
fn spurious_gets_no_eoi_v2() {
    let gic = v2();
    let gicc = gic.cpu_frame();
    gicc.preset(GICC_IAR, SPURIOUS);
    assert_eq!(gic.acknowledge(), None);
    gic.end_of_interrupt(SPURIOUS);
    assert!(gicc.writes().is_empty());
    // An SGI from CPU 1 (IAR bits 12:10): the EOI writes the same value back.
    gicc.preset(GICC_IAR, (1 << 10) | 3);
    assert_eq!(gic.acknowledge(), Some(3));
    gic.end_of_interrupt(3);
    assert_eq!(gicc.writes(), [(GICC_EOIR, (1 << 10) | 3)]);
}

#[test]
fn spurious_gets_no_eoi_v3() {
    let gic = v3();
    let cpu = gic.cpu_regs();
    *cpu.iar.lock().unwrap() = SPURIOUS;
    assert_eq!(gic.acknowledge(), None);
    gic.end_of_interrupt(SPURIOUS);
    assert!(cpu.eoir.lock().unwrap().is_empty());
    *cpu.iar.lock().unwrap() = 27;
    assert_eq!(gic.acknowledge(), Some(27));
    gic.end_of_interrupt(27);
    assert_eq!(*cpu.eoir.lock().unwrap(), [27]);
}

#[test]
fn v3_init_wakes_the_callers_redistributor() {
    let gic = v3();
    let (_, gicr) = gic.frames();
    // CPU 0's redistributor is awake, CPU 1's still asleep.
    assert_eq!(gicr.get(GICR_WAKER) & 0b110, 0);
    assert_eq!(gicr.get(GICR_STRIDE + GICR_WAKER) & 0b110, 0b110);
    let cpu = gic.cpu_regs();
    assert!(*cpu.sre.lock().unwrap());
    assert_eq!(*cpu.pmr.lock().unwrap(), Some(PRIORITY_MASK));
    assert_eq!(*cpu.bpr.lock().unwrap(), Some(0));
    assert_eq!(*cpu.grp1.lock().unwrap(), Some(true));
    // Now CPU 1 initialises: its own frame, the second one, wakes.
    *cpu.mpidr.lock().unwrap() = MPIDRS[1];
    gic.init_cpu().unwrap();
    assert_eq!(gicr.get(GICR_STRIDE + GICR_WAKER) & 0b110, 0);
    gicr.clear_log();
    gic.enable(27).unwrap();
    assert_eq!(
        gicr.writes(),
        [(GICR_STRIDE + crate::v3::GICR_ISENABLER0, 1 << 27)]
    );
}

#[test]
fn v3_init_reports_a_stuck_or_missing_redistributor() {
    let gicr = FakeFrame::new(); // ChildrenAsleep never clears
    gicr.preset(GICR_TYPER + 4, 0);
    gicr.preset(GICR_TYPER, 1 << 4);
    gicr.preset(GICR_WAKER, 0b110);
    let cpu = FakeCpu::default();
    let gic = Gicv3::new(
        FakeFrame::new(),
        gicr,
        GICR_STRIDE,
        cpu,
        CpuTable::new(&[0]).unwrap(),
    );
    assert_eq!(
        gic.init_cpu(),
        Err(GicError::Timeout("GICR_WAKER.ChildrenAsleep"))
    );
    let gic = Gicv3::new(
        FakeFrame::new(),
        FakeFrame::new(),
        GICR_STRIDE,
        FakeCpu::default(),
        CpuTable::new(&[0x100]).unwrap(),
    );
    *gic.cpu_regs().mpidr.lock().unwrap() = 0x100;
    assert_eq!(gic.init_cpu(), Err(GicError::NoRedistributor(0x100)));
}

#[test]
fn v3_ipis_encode_each_target_kind() {
    let gic = v3();
    let cpu = gic.cpu_regs();
    gic.send_ipi(1, IpiTarget::Cpus(CpuSet(0b11))).unwrap();
    gic.send_ipi(2, IpiTarget::SelfOnly).unwrap();
    gic.send_ipi(3, IpiTarget::AllButSelf).unwrap();
    assert_eq!(
        *cpu.sgi1r.lock().unwrap(),
        [(1 << 24) | 0b11, (2 << 24) | 0b1, (1 << 40) | (3 << 24)]
    );
    assert_eq!(
        gic.send_ipi(1, IpiTarget::Cpus(CpuSet(0b100))),
        Err(IrqError::NoSuchCpu(2))
    );
    assert_eq!(
        gic.send_ipi(16, IpiTarget::SelfOnly),
        Err(IrqError::NotConfigurable(16))
    );
    assert_eq!(cpu.sgi1r.lock().unwrap().len(), 3);
}

#[test]
fn v2_ipis_and_routing_use_interface_masks() {
    let gic = v2();
    let gicd = gic_d(&gic);
    gicd.preset(GICD_ITARGETSR, 0x0101_0101);
    gic.init_cpu();
    gicd.clear_log();
    gic.send_ipi(4, IpiTarget::Cpus(CpuSet(0b10))).unwrap();
    gic.send_ipi(4, IpiTarget::SelfOnly).unwrap();
    assert_eq!(
        gicd.writes(),
        [(GICD_SGIR, 0x0002_0004), (GICD_SGIR, 0x0200_0004)]
    );
    gicd.clear_log();
    gic.route(40, CpuSet(0b11)).unwrap();
    assert_eq!(crate::fields::read_field(gicd, GICD_ITARGETSR, 40, 8), 0b11);
    assert_eq!(gic.route(20, CpuSet(1)), Err(IrqError::NotConfigurable(20)));
    assert_eq!(gic.route(40, CpuSet(0b1000)), Err(IrqError::NoSuchCpu(3)));
    assert_eq!(gicd.writes().len(), 1);
    // A GICv2 has 8 CPU interfaces: a ninth CPU cannot be targeted even if the table has it.
    let nine: Vec<u64> = (0..9).collect();
    let big = Gicv2::new(
        FakeFrame::new(),
        FakeFrame::new(),
        FakeCpu::default(),
        CpuTable::new(&nine).unwrap(),
    );
    assert_eq!(
        big.send_ipi(1, IpiTarget::Cpus(CpuSet(1 << 8))),
        Err(IrqError::NoSuchCpu(8))
    );
    assert!(big.distributor_frame().writes().is_empty());
}

#[test]
fn bad_numbers_touch_nothing() {
    let gic = v3();
    let (gicd, gicr) = gic.frames();
    gicd.clear_log();
    gicr.clear_log();
    assert_eq!(gic.enable(128), Err(IrqError::NoSuchIrq(128)));
    assert_eq!(gic.disable(5000), Err(IrqError::NoSuchIrq(5000)));
    assert_eq!(gic.set_priority(128, 0), Err(IrqError::NoSuchIrq(128)));
    assert_eq!(gic.route(3, CpuSet(1)), Err(IrqError::NotConfigurable(3)));
    assert!(gicd.writes().is_empty() && gicr.writes().is_empty());
}

#[test]
fn device_tree_helpers() {
    // The virtual timer of QEMU's /timer node: <1 11 4> is PPI 11, INTID 27; a PL011 SPI.
    assert_eq!(dt_intid(1, 11), Some(27));
    assert_eq!(dt_intid(0, 1), Some(33));
    assert_eq!(dt_intid(0, 987), Some(1019));
    assert_eq!(dt_intid(0, 988), None);
    assert_eq!(dt_intid(1, 16), None);
    assert_eq!(dt_intid(2, 0), None);
    assert_eq!(
        GicVersion::from_compatible(b"arm,cortex-a15-gic"),
        Some(GicVersion::V2)
    );
    assert_eq!(
        GicVersion::from_compatible(b"arm,gic-400"),
        Some(GicVersion::V2)
    );
    assert_eq!(
        GicVersion::from_compatible(b"arm,gic-v3"),
        Some(GicVersion::V3)
    );
    assert_eq!(GicVersion::from_compatible(b"arm,gic-v3-its"), None);
    let layout = GicLayout::from_reg(
        GicVersion::V3,
        &[(0x800_0000, 0x1_0000), (0x80a_0000, 0xf6_0000)],
    )
    .unwrap();
    assert_eq!(layout.cpu_side, (0x80a_0000, 0xf6_0000));
    assert_eq!(
        GicLayout::from_reg(GicVersion::V2, &[(0x800_0000, 0x1_0000)]),
        Err(GicError::MissingFrame(1))
    );
    assert_eq!(CpuTable::new(&[]), Err(GicError::TooManyCpus(0)));
    assert_eq!(line_count(0x1f), SPURIOUS_FIRST);
    assert_eq!(line_count(TYPER_128), 128);
}
