//! The local APIC: register map, the interrupt command register (ICR) encoding, the vector
//! plan of the board, and the timer arithmetic. Pure code tested on the host; `arch` does
//! the register accesses (xAPIC MMIO or x2APIC MSRs) through [`ApicRegs`].
//!
//! # xAPIC and x2APIC
//!
//! Both modes have the same registers; xAPIC maps them at 16-byte steps from the base the
//! `IA32_APIC_BASE` MSR gives (0xFEE0_0000), x2APIC as MSRs `0x800 + offset / 16`. Two
//! differences matter here: the APIC id (bits 31:24 of register 0x20 in xAPIC, the whole
//! register in x2APIC) and the ICR (two 32-bit registers written high then low, the
//! destination in bits 31:24 of the high one, in xAPIC; one 64-bit MSR with a 32-bit
//! destination in bits 63:32 in x2APIC). [`Icr::xapic`] and [`Icr::x2apic`] encode both.
//! The board uses x2APIC when CPUID.1:ECX.x2APIC says the CPU has it and xAPIC otherwise
//! (QEMU 7.2 TCG `-cpu max` has no x2APIC; KVM and QEMU 8.1+ TCG do).

/// Register offsets (xAPIC MMIO offsets; the x2APIC MSR is `0x800 + offset / 16`).
pub mod reg {
    /// Local APIC id.
    pub const ID: u32 = 0x20;
    /// Task priority.
    pub const TPR: u32 = 0x80;
    /// End of interrupt.
    pub const EOI: u32 = 0xb0;
    /// Spurious interrupt vector (and the APIC software enable, bit 8).
    pub const SVR: u32 = 0xf0;
    /// In-service register, 8 registers of 32 bits at 16-byte steps.
    pub const ISR0: u32 = 0x100;
    /// Interrupt request register, 8 x 32 bits.
    pub const IRR0: u32 = 0x200;
    /// Error status.
    pub const ESR: u32 = 0x280;
    /// Interrupt command, low half (x2APIC: the whole 64-bit ICR).
    pub const ICR_LOW: u32 = 0x300;
    /// Interrupt command, high half (xAPIC only).
    pub const ICR_HIGH: u32 = 0x310;
    /// LVT timer.
    pub const LVT_TIMER: u32 = 0x320;
    /// LVT LINT0 (the 8259's INTR in virtual-wire mode).
    pub const LVT_LINT0: u32 = 0x350;
    /// LVT LINT1 (NMI).
    pub const LVT_LINT1: u32 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u32 = 0x370;
    /// Timer initial count.
    pub const TIMER_INITIAL: u32 = 0x380;
    /// Timer current count.
    pub const TIMER_CURRENT: u32 = 0x390;
    /// Timer divide configuration.
    pub const TIMER_DIVIDE: u32 = 0x3e0;
    /// x2APIC self IPI (write-only, x2APIC mode only).
    pub const SELF_IPI: u32 = 0x3f0;

    /// The x2APIC MSR of register `offset`.
    pub const fn x2apic_msr(offset: u32) -> u32 {
        0x800 + (offset >> 4)
    }
}

/// The board's vectors. 0-31 are CPU exceptions.
pub mod vector {
    /// Where the (masked) 8259 PICs are remapped, so a stray PIC interrupt (IRQ 7 and 15
    /// spurious ones can come even when masked) lands on a vector of its own, never on an
    /// exception: 0x20-0x2F.
    pub const PIC_BASE: u8 = 0x20;
    /// IOAPIC lines: GSI `g` is vector `GSI_BASE + g`, for `g < GSI_COUNT`.
    pub const GSI_BASE: u8 = 0x30;
    /// Number of GSIs the board gives vectors to (two 24-pin IOAPICs).
    pub const GSI_COUNT: u8 = 48;
    /// The first vector free for applications' IPIs ([`uk_hal::irq::Interrupts::free_ipi`]).
    pub const FREE_IPI: u8 = 0xe0;
    /// The last vector free for applications.
    pub const FREE_IPI_LAST: u8 = 0xeb;
    /// The local APIC timer.
    pub const TIMER: u8 = 0xec;
    /// TLB shootdown: another CPU changed page rights (`crate::protection`).
    pub const TLB_SHOOTDOWN: u8 = 0xed;
    /// The local APIC error interrupt.
    pub const ERROR: u8 = 0xfe;
    /// The spurious-interrupt vector (SVR): the CPU takes it without an in-service bit, so
    /// it gets no EOI.
    pub const SPURIOUS: u8 = 0xff;
}

/// ICR delivery modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The vector to the destination.
    Fixed = 0b000,
    /// Non-maskable interrupt (vector ignored).
    Nmi = 0b100,
    /// INIT (vector ignored).
    Init = 0b101,
    /// Start-up IPI: the vector is the page number of the real-mode entry.
    StartUp = 0b110,
}

/// ICR destination shorthands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shorthand {
    /// The destination field says where.
    None = 0b00,
    /// The sender.
    SelfOnly = 0b01,
    /// Every CPU, the sender included.
    AllIncludingSelf = 0b10,
    /// Every CPU but the sender.
    AllButSelf = 0b11,
}

/// One inter-processor interrupt, as the ICR encodes it (physical destination mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icr {
    /// Vector (fixed), or page number (start-up).
    pub vector: u8,
    /// Delivery mode.
    pub delivery: Delivery,
    /// Level: assert (every mode but the INIT level de-assert).
    pub assert: bool,
    /// Trigger mode level (only the INIT de-assert uses it).
    pub level_triggered: bool,
    /// Destination shorthand.
    pub shorthand: Shorthand,
    /// Physical APIC id of the destination (when [`Icr::shorthand`] is `None`).
    pub destination: u32,
}

/// Bit 12 of the ICR (xAPIC): the previous IPI is still being sent.
pub const ICR_SEND_PENDING: u32 = 1 << 12;

impl Icr {
    /// A fixed IPI of `vector` to the CPU with APIC id `destination`.
    pub const fn fixed(vector: u8, destination: u32) -> Self {
        Icr {
            vector,
            delivery: Delivery::Fixed,
            assert: true,
            level_triggered: false,
            shorthand: Shorthand::None,
            destination,
        }
    }

    /// A fixed IPI of `vector` through a shorthand (no destination id).
    pub const fn shorthand(vector: u8, shorthand: Shorthand) -> Self {
        Icr {
            shorthand,
            ..Self::fixed(vector, 0)
        }
    }

    /// INIT (assert) to `destination`.
    pub const fn init(destination: u32) -> Self {
        Icr {
            delivery: Delivery::Init,
            level_triggered: true,
            vector: 0,
            ..Self::fixed(0, destination)
        }
    }

    /// Start-up IPI to `destination`, entering real mode at physical `page << 12`.
    pub const fn startup(page: u8, destination: u32) -> Self {
        Icr {
            delivery: Delivery::StartUp,
            ..Self::fixed(page, destination)
        }
    }

    /// The low 32 bits, the same in both modes.
    pub const fn low(&self) -> u32 {
        self.vector as u32
            | (self.delivery as u32) << 8
            // bit 11: destination mode 0 = physical
            | (self.assert as u32) << 14
            | (self.level_triggered as u32) << 15
            | (self.shorthand as u32) << 18
    }

    /// The xAPIC pair (high, low): write high first, then low (which sends). `None` when
    /// the destination does not fit xAPIC's 8-bit id.
    pub const fn xapic(&self) -> Option<(u32, u32)> {
        if self.destination > 0xff {
            return None;
        }
        Some((self.destination << 24, self.low()))
    }

    /// The x2APIC ICR MSR value.
    pub const fn x2apic(&self) -> u64 {
        (self.destination as u64) << 32 | self.low() as u64
    }
}

/// Local APIC register access of one mode (implemented by the board for MMIO and MSRs, by
/// tests with a fake register file).
pub trait ApicRegs {
    /// Reads register `offset` (see [`reg`]).
    fn read(&self, offset: u32) -> u32;
    /// Writes register `offset`.
    fn write(&self, offset: u32, value: u32);
    /// Sends an IPI; `false` if the destination cannot be encoded in this mode.
    fn send(&self, icr: &Icr) -> bool;
    /// Whether this is x2APIC mode (full 32-bit ids).
    fn x2apic(&self) -> bool;
}

/// The SVR value: APIC software-enabled, spurious vector [`vector::SPURIOUS`].
pub const SVR_ENABLE: u32 = 1 << 8 | vector::SPURIOUS as u32;
/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT delivery mode NMI.
pub const LVT_NMI: u32 = 0b100 << 8;
/// LVT timer mode TSC-deadline (bits 18:17 = 10); one-shot is 00.
pub const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
/// Timer divide configuration value for divide by 16 (0b0011).
pub const DIVIDE_BY_16: u32 = 0b0011;
/// The divisor [`DIVIDE_BY_16`] selects.
pub const DIVISOR: u64 = 16;

/// The APIC id of the CPU whose registers `regs` are.
pub fn apic_id(regs: &dyn ApicRegs) -> u32 {
    let raw = regs.read(reg::ID);
    if regs.x2apic() { raw } else { raw >> 24 }
}

/// Brings the calling CPU's local APIC to the board's state: software-enabled with the
/// spurious vector, task priority 0 (take every vector), LINT0 (the 8259's virtual wire)
/// masked, LINT1 as NMI, the error interrupt on [`vector::ERROR`], the timer masked, errors
/// cleared.
///
/// The order matters: LINT0 is masked before anything else, and the task priority is
/// written last. Firmware (SeaBIOS) leaves LINT0 as the 8259's virtual wire, and an 8259
/// interrupt (the PIT's, 18.2 times a second) taken through it while interrupts were off
/// stays latched in the CPU; on QEMU only an APIC update after the mask (the TPR write
/// is one) drops it. Without that, the first `sti` takes an interrupt the APIC no longer
/// has, which QEMU delivers as vector -1 (a #GP).
pub fn init(regs: &dyn ApicRegs) {
    regs.write(reg::LVT_LINT0, LVT_MASKED);
    regs.write(reg::LVT_LINT1, LVT_NMI);
    regs.write(reg::LVT_TIMER, LVT_MASKED | u32::from(vector::TIMER));
    regs.write(reg::LVT_ERROR, u32::from(vector::ERROR));
    regs.write(reg::TIMER_DIVIDE, DIVIDE_BY_16);
    regs.write(reg::SVR, SVR_ENABLE);
    // The ESR latches on a write; two writes clear it.
    regs.write(reg::ESR, 0);
    regs.write(reg::ESR, 0);
    regs.write(reg::TPR, 0);
}

/// Whether vector `v`'s in-service bit is set: an interrupt the CPU took from this APIC
/// (and so one to end with an EOI). Spurious interrupts and stray 8259 ones have no bit.
pub fn in_service(regs: &dyn ApicRegs, v: u8) -> bool {
    let word = regs.read(reg::ISR0 + u32::from(v / 32) * 0x10);
    word & (1 << (v % 32)) != 0
}

/// The highest in-service vector (the one being handled), if any.
pub fn highest_in_service(regs: &dyn ApicRegs) -> Option<u8> {
    (0..8u32).rev().find_map(|i| {
        let word = regs.read(reg::ISR0 + i * 0x10);
        (word != 0).then(|| (i * 32 + 31 - word.leading_zeros()) as u8)
    })
}

/// What the interrupt entry does with a vector it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryPlan {
    /// Write EOI before the handler, so a handler that switches threads does not keep the
    /// vector's priority class blocked (edge: IPIs, the timer, edge lines).
    pub eoi_before: bool,
    /// Write EOI after the handler (level-triggered IOAPIC lines: an EOI before the handler
    /// silenced the device would make the IOAPIC send the still-asserted line again).
    pub eoi_after: bool,
    /// Run the vector's handler (or log that it has none).
    pub dispatch: bool,
}

/// The entry's plan for vector `v` whose in-service bit is `in_service`, `level` if it is a
/// level-triggered line: the spurious vector gets neither EOI nor dispatch (the APIC sets
/// no in-service bit for it); a vector without an in-service bit (a stray 8259 interrupt)
/// is dispatched (logged) without EOI, which would otherwise end some other, genuinely
/// in-service, interrupt; any other vector gets one EOI, before its handler or (level)
/// after it.
pub const fn entry_plan(v: u8, in_service: bool, level: bool) -> EntryPlan {
    if v == vector::SPURIOUS {
        return EntryPlan {
            eoi_before: false,
            eoi_after: false,
            dispatch: false,
        };
    }
    EntryPlan {
        eoi_before: in_service && !level,
        eoi_after: in_service && level,
        dispatch: true,
    }
}

/// The one-shot timer's initial count for `delta_ns` at an APIC timer clock of `timer_hz`
/// (after the divider): rounded up so the interrupt never comes early, at least 1 (0 would
/// stop the timer), at most `u32::MAX` (a longer wait fires early; the scheduler re-arms).
pub fn one_shot_count(delta_ns: u64, timer_hz: u64) -> u32 {
    let count = (u128::from(delta_ns) * u128::from(timer_hz)).div_ceil(1_000_000_000);
    count.clamp(1, u128::from(u32::MAX)) as u32
}

/// The APIC timer clock (after the divider) from a calibration: the counter went down by
/// `counted` while the TSC at `tsc_hz` advanced by `tsc_ticks`. `None` for a useless
/// measurement.
pub fn timer_hz(counted: u32, tsc_ticks: u64, tsc_hz: u64) -> Option<u64> {
    if counted == 0 || tsc_ticks == 0 {
        return None;
    }
    let hz = u128::from(counted) * u128::from(tsc_hz) / u128::from(tsc_ticks);
    u64::try_from(hz).ok().filter(|&hz| hz > 0)
}

/// The TSC value at `deadline_ns` on the board clock's scale: time zero is TSC
/// `tsc_at_entry`, the TSC runs at `tsc_hz`. Rounded up (never early), saturating.
pub fn tsc_at(deadline_ns: u64, tsc_at_entry: u64, tsc_hz: u64) -> u64 {
    let ticks = (u128::from(deadline_ns) * u128::from(tsc_hz)).div_ceil(1_000_000_000);
    u64::try_from(ticks)
        .unwrap_or(u64::MAX)
        .saturating_add(tsc_at_entry)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    #[test]
    fn icr_fixed_physical() {
        let icr = Icr::fixed(0xe0, 1);
        assert_eq!(
            icr.low(),
            0x0000_40e0,
            "vector, fixed, physical, assert, edge"
        );
        assert_eq!(icr.xapic(), Some((0x0100_0000, 0x40e0)));
        assert_eq!(icr.x2apic(), 0x0000_0001_0000_40e0);
        assert_eq!(Icr::fixed(0x31, 0xff).xapic(), Some((0xff00_0000, 0x4031)));
        assert_eq!(
            Icr::fixed(0x31, 0x100).xapic(),
            None,
            "xAPIC ids are 8 bits"
        );
        assert_eq!(Icr::fixed(0x31, 0x1234_5678).x2apic() >> 32, 0x1234_5678);
    }

    #[test]
    fn icr_shorthands() {
        assert_eq!(Icr::shorthand(0xe1, Shorthand::SelfOnly).low(), 0x0004_40e1);
        assert_eq!(
            Icr::shorthand(0xe1, Shorthand::AllIncludingSelf).low(),
            0x0008_40e1
        );
        assert_eq!(
            Icr::shorthand(0xe1, Shorthand::AllButSelf).low(),
            0x000c_40e1
        );
        assert_eq!(
            Icr::shorthand(0xe1, Shorthand::AllButSelf).xapic(),
            Some((0, 0x000c_40e1)),
            "no destination with a shorthand"
        );
    }

    #[test]
    fn icr_init_and_startup() {
        // INIT: delivery 101, level assert, level-triggered (the SDM's 0x000C4500 is the
        // broadcast form with shorthand all-but-self).
        assert_eq!(Icr::init(3).xapic(), Some((0x0300_0000, 0x0000_c500)));
        // SIPI to page 8 (0x8000): delivery 110, assert, vector 8.
        assert_eq!(Icr::startup(8, 3).xapic(), Some((0x0300_0000, 0x0000_4608)));
        assert_eq!(Icr::startup(8, 3).x2apic(), 0x0000_0003_0000_4608);
        assert_eq!(
            Icr {
                delivery: Delivery::Nmi,
                ..Icr::fixed(0, 2)
            }
            .low(),
            0x4400
        );
    }

    #[test]
    fn msr_numbers() {
        assert_eq!(reg::x2apic_msr(reg::ID), 0x802);
        assert_eq!(reg::x2apic_msr(reg::EOI), 0x80b);
        assert_eq!(reg::x2apic_msr(reg::ICR_LOW), 0x830);
        assert_eq!(reg::x2apic_msr(reg::LVT_TIMER), 0x832);
        assert_eq!(reg::x2apic_msr(reg::SELF_IPI), 0x83f);
    }

    /// A fake local APIC: a register file and the ICRs sent.
    struct Fake {
        regs: RefCell<[u32; 0x40]>,
        sent: RefCell<Vec<Icr>>,
        /// Registers written, in order.
        writes: RefCell<Vec<u32>>,
        x2: bool,
    }

    impl ApicRegs for Fake {
        fn read(&self, offset: u32) -> u32 {
            self.regs.borrow()[(offset >> 4) as usize]
        }
        fn write(&self, offset: u32, value: u32) {
            self.regs.borrow_mut()[(offset >> 4) as usize] = value;
            self.writes.borrow_mut().push(offset);
        }
        fn send(&self, icr: &Icr) -> bool {
            if !self.x2 && icr.xapic().is_none() {
                return false;
            }
            self.sent.borrow_mut().push(*icr);
            true
        }
        fn x2apic(&self) -> bool {
            self.x2
        }
    }

    fn fake(x2: bool) -> Fake {
        Fake {
            regs: RefCell::new([0; 0x40]),
            sent: RefCell::new(Vec::new()),
            writes: RefCell::new(Vec::new()),
            x2,
        }
    }

    #[test]
    fn ids_by_mode() {
        let x = fake(false);
        x.write(reg::ID, 0x0300_0000);
        assert_eq!(apic_id(&x), 3);
        let x2 = fake(true);
        x2.write(reg::ID, 0x0000_0123);
        assert_eq!(apic_id(&x2), 0x123);
    }

    #[test]
    fn init_state() {
        let f = fake(false);
        f.write(reg::TPR, 0x20);
        init(&f);
        assert_eq!(f.read(reg::SVR), 0x1ff);
        assert_eq!(f.read(reg::TPR), 0);
        assert_eq!(f.read(reg::LVT_LINT0) & LVT_MASKED, LVT_MASKED);
        assert_eq!(f.read(reg::LVT_LINT1), 0x400);
        assert_eq!(f.read(reg::LVT_TIMER), 0x1_00ec);
        assert_eq!(f.read(reg::LVT_ERROR), 0xfe);
        assert_eq!(f.read(reg::TIMER_DIVIDE), 3);
        // LINT0 masked first, the TPR written last (see `init`).
        let writes = f.writes.borrow();
        assert_eq!(writes[1], reg::LVT_LINT0);
        assert_eq!(writes.last(), Some(&reg::TPR));
    }

    #[test]
    fn in_service_bits() {
        let f = fake(false);
        assert_eq!(highest_in_service(&f), None);
        f.write(reg::ISR0 + 0x70, 1 << 12); // vector 0xec
        f.write(reg::ISR0 + 0x10, 1 << 16); // vector 0x30
        assert!(in_service(&f, 0xec));
        assert!(in_service(&f, 0x30));
        assert!(!in_service(&f, 0xff));
        assert!(!in_service(&f, 0x27));
        assert_eq!(highest_in_service(&f), Some(0xec));
        f.write(reg::ISR0 + 0x70, 0);
        assert_eq!(highest_in_service(&f), Some(0x30));
        assert!(f.sent.borrow().is_empty());
        assert!(f.send(&Icr::fixed(1, 2)));
        assert!(!f.send(&Icr::fixed(1, 256)));
    }

    #[test]
    fn entry_plans() {
        let none = EntryPlan {
            eoi_before: false,
            eoi_after: false,
            dispatch: false,
        };
        assert_eq!(
            entry_plan(vector::SPURIOUS, false, false),
            none,
            "spurious: no EOI"
        );
        assert_eq!(entry_plan(vector::SPURIOUS, true, true), none);
        let ipi = entry_plan(vector::FREE_IPI, true, false);
        assert!(ipi.eoi_before && !ipi.eoi_after && ipi.dispatch);
        let stray = entry_plan(vector::PIC_BASE + 7, false, false);
        assert!(
            !stray.eoi_before && !stray.eoi_after && stray.dispatch,
            "stray 8259: no EOI"
        );
        assert_eq!(entry_plan(vector::TIMER, true, false), ipi);
        let level = entry_plan(vector::GSI_BASE + 11, true, true);
        assert!(
            !level.eoi_before && level.eoi_after && level.dispatch,
            "level: EOI after"
        );
    }

    proptest::proptest! {
        #[test]
        fn icr_fields_land_where_the_sdm_puts_them(vector in 0u8.., dest in 0u32.., sh in 0u8..4, mode in 0u8..4) {
            let shorthand = [Shorthand::None, Shorthand::SelfOnly, Shorthand::AllIncludingSelf, Shorthand::AllButSelf][usize::from(sh)];
            let delivery = [Delivery::Fixed, Delivery::Nmi, Delivery::Init, Delivery::StartUp][usize::from(mode)];
            let icr = Icr { vector, delivery, assert: true, level_triggered: false, shorthand, destination: dest };
            let x2 = icr.x2apic();
            proptest::prop_assert_eq!((x2 >> 32) as u32, dest);
            proptest::prop_assert_eq!(x2 as u8, vector);
            proptest::prop_assert_eq!((x2 >> 8) & 7, delivery as u64);
            proptest::prop_assert_eq!((x2 >> 11) & 1, 0, "physical destination mode");
            proptest::prop_assert_eq!((x2 >> 14) & 1, 1);
            proptest::prop_assert_eq!((x2 >> 18) & 3, sh as u64);
            proptest::prop_assert_eq!(x2 & !0xffff_ffff_000c_c7ff, 0, "reserved bits clear");
            match icr.xapic() {
                Some((high, low)) => {
                    proptest::prop_assert!(dest <= 0xff);
                    proptest::prop_assert_eq!(high, dest << 24);
                    proptest::prop_assert_eq!(low, x2 as u32);
                }
                None => proptest::prop_assert!(dest > 0xff),
            }
        }
    }

    #[test]
    fn timer_arithmetic() {
        // 62.5 MHz (1 GHz / 16): 1 ms is 62 500 counts; 1 ns rounds up to 1.
        assert_eq!(one_shot_count(1_000_000, 62_500_000), 62_500);
        assert_eq!(one_shot_count(1, 62_500_000), 1);
        assert_eq!(one_shot_count(0, 62_500_000), 1);
        assert_eq!(one_shot_count(u64::MAX, 62_500_000), u32::MAX);
        assert_eq!(timer_hz(62_500, 3_000_000, 3_000_000_000), Some(62_500_000));
        assert_eq!(timer_hz(0, 3, 3), None);
        assert_eq!(timer_hz(5, 0, 3), None);
        assert_eq!(tsc_at(1_000, 500, 2_000_000_000), 2_500);
        assert_eq!(tsc_at(1, 0, 3_000_000_000), 3);
        assert_eq!(tsc_at(1, 0, 1), 1, "rounded up");
        assert_eq!(tsc_at(u64::MAX, u64::MAX - 1, 5_000_000_000), u64::MAX);
    }
}
