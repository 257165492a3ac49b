//! The IOAPIC: redirection entries of the global system interrupts (GSIs), edited one field
//! at a time.
//!
//! An IOAPIC has an index register (IOREGSEL, offset 0) and a data window (IOWIN, offset
//! 0x10); register 1 holds the number of redirection entries, entry `n` is registers
//! `0x10 + 2n` (low: vector, delivery, destination mode, polarity, trigger, mask) and
//! `0x11 + 2n` (high: destination APIC id in bits 31:24). Every change here is a
//! read-modify-write of the one field it concerns: enabling a line leaves its vector,
//! trigger and destination as they were (host tests check this against a fake register
//! file, including the read-only status bits).
//!
//! [`IoApicRegs`] is the index/window access (the board implements it with MMIO under a
//! lock, since selecting and accessing are two steps).

/// Index/window access to one IOAPIC's registers.
pub trait IoApicRegs {
    /// Reads register `index`.
    fn read(&self, index: u32) -> u32;
    /// Writes register `index`.
    fn write(&self, index: u32, value: u32);
}

/// Version register index (max redirection entry in bits 23:16).
pub const VERSION: u32 = 1;
/// Low half of redirection entry 0.
pub const REDIRECTION_BASE: u32 = 0x10;

/// Low-half bits of a redirection entry.
pub mod bits {
    /// Vector, bits 7:0.
    pub const VECTOR: u32 = 0xff;
    /// Delivery mode, bits 10:8 (000 fixed).
    pub const DELIVERY: u32 = 0b111 << 8;
    /// Destination mode (1 logical, 0 physical).
    pub const LOGICAL: u32 = 1 << 11;
    /// Delivery status (read-only).
    pub const PENDING: u32 = 1 << 12;
    /// Polarity: active low.
    pub const ACTIVE_LOW: u32 = 1 << 13;
    /// Remote IRR (read-only, level lines).
    pub const REMOTE_IRR: u32 = 1 << 14;
    /// Trigger mode: level.
    pub const LEVEL: u32 = 1 << 15;
    /// Masked.
    pub const MASKED: u32 = 1 << 16;
    /// Bits a write may change (the rest of the low half is read-only or reserved).
    pub const WRITABLE: u32 = VECTOR | DELIVERY | LOGICAL | ACTIVE_LOW | LEVEL | MASKED;
}

/// One IOAPIC serving GSIs `gsi_base .. gsi_base + entries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic<R> {
    regs: R,
    gsi_base: u32,
    entries: u32,
}

impl<R: IoApicRegs> IoApic<R> {
    /// The IOAPIC behind `regs`, serving GSIs from `gsi_base`; reads its entry count.
    pub fn new(regs: R, gsi_base: u32) -> Self {
        let entries = ((regs.read(VERSION) >> 16) & 0xff) + 1;
        IoApic {
            regs,
            gsi_base,
            entries,
        }
    }

    /// The first GSI served.
    pub fn gsi_base(&self) -> u32 {
        self.gsi_base
    }

    /// Number of redirection entries (24 on QEMU).
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// The entry of `gsi`, if this IOAPIC serves it.
    pub fn pin(&self, gsi: u32) -> Option<u32> {
        let pin = gsi.checked_sub(self.gsi_base)?;
        (pin < self.entries).then_some(pin)
    }

    /// The low half of `pin`'s entry.
    pub fn low(&self, pin: u32) -> u32 {
        self.regs.read(REDIRECTION_BASE + 2 * pin)
    }

    /// The destination APIC id of `pin` (physical mode).
    pub fn destination(&self, pin: u32) -> u32 {
        self.regs.read(REDIRECTION_BASE + 2 * pin + 1) >> 24
    }

    /// Changes the bits `mask` of `pin`'s low half to `value`, keeping every other bit.
    fn update(&self, pin: u32, mask: u32, value: u32) {
        let index = REDIRECTION_BASE + 2 * pin;
        let old = self.regs.read(index) & bits::WRITABLE;
        self.regs.write(index, (old & !mask) | (value & mask));
    }

    /// Masks every entry (boot: nothing reaches a CPU until a driver enables it), each
    /// with a fixed, edge, active-high setting on `vector_base + pin` to the CPU with
    /// APIC id `destination`.
    pub fn reset(&self, vector_base: u32, destination: u8) {
        for pin in 0..self.entries {
            let index = REDIRECTION_BASE + 2 * pin;
            // Mask first, so the entry never fires half-written.
            self.regs.write(index, bits::MASKED);
            self.regs.write(index + 1, u32::from(destination) << 24);
            self.regs
                .write(index, bits::MASKED | ((vector_base + pin) & bits::VECTOR));
        }
    }

    /// Unmasks (`true`) or masks `pin`.
    pub fn set_masked(&self, pin: u32, masked: bool) {
        self.update(pin, bits::MASKED, if masked { bits::MASKED } else { 0 });
    }

    /// Sets `pin`'s trigger mode.
    pub fn set_level(&self, pin: u32, level: bool) {
        self.update(pin, bits::LEVEL, if level { bits::LEVEL } else { 0 });
    }

    /// Sets `pin`'s polarity.
    pub fn set_active_low(&self, pin: u32, low: bool) {
        self.update(
            pin,
            bits::ACTIVE_LOW,
            if low { bits::ACTIVE_LOW } else { 0 },
        );
    }

    /// Sets `pin`'s vector.
    pub fn set_vector(&self, pin: u32, vector: u8) {
        self.update(pin, bits::VECTOR, u32::from(vector));
    }

    /// Routes `pin` to the CPU with (8-bit, physical) APIC id `apic_id`. The entry is
    /// masked while its halves disagree, then gets its mask bit back.
    pub fn set_destination(&self, pin: u32, apic_id: u8) {
        let index = REDIRECTION_BASE + 2 * pin;
        let low = self.regs.read(index) & bits::WRITABLE;
        self.regs.write(index, low | bits::MASKED);
        let high = self.regs.read(index + 1) & 0x00ff_ffff;
        self.regs.write(index + 1, high | u32::from(apic_id) << 24);
        self.regs.write(index, low);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use proptest::prelude::*;

    /// A fake IOAPIC register file: 24 entries, read-only status bits set on some.
    struct Fake(RefCell<[u32; 0x40]>);

    impl Fake {
        fn new() -> Self {
            let mut regs = [0u32; 0x40];
            regs[VERSION as usize] = 0x0017_0020;
            Fake(RefCell::new(regs))
        }
    }

    impl IoApicRegs for &Fake {
        fn read(&self, index: u32) -> u32 {
            self.0.borrow()[index as usize]
        }
        fn write(&self, index: u32, value: u32) {
            let mut regs = self.0.borrow_mut();
            let slot = &mut regs[index as usize];
            if index >= REDIRECTION_BASE && index % 2 == 0 {
                // Read-only status bits keep their value whatever is written.
                let ro = bits::PENDING | bits::REMOTE_IRR;
                *slot = (*slot & ro) | (value & !ro);
            } else {
                *slot = value;
            }
        }
    }

    fn snapshot(fake: &Fake) -> [u32; 0x40] {
        *fake.0.borrow()
    }

    #[test]
    fn reset_masks_everything_with_vectors_and_destination() {
        let fake = Fake::new();
        let io = IoApic::new(&fake, 0);
        assert_eq!(io.entries(), 24);
        io.reset(0x30, 2);
        for pin in 0..24 {
            assert_eq!(io.low(pin), bits::MASKED | (0x30 + pin));
            assert_eq!(io.destination(pin), 2);
        }
    }

    #[test]
    fn pins_of_gsis() {
        let fake = Fake::new();
        let io = IoApic::new(&fake, 24);
        assert_eq!(io.pin(23), None);
        assert_eq!(io.pin(24), Some(0));
        assert_eq!(io.pin(47), Some(23));
        assert_eq!(io.pin(48), None);
    }

    #[test]
    fn each_change_touches_only_its_field_of_its_entry() {
        let fake = Fake::new();
        let io = IoApic::new(&fake, 0);
        io.reset(0x30, 0);
        // Status bits set by "hardware" on pin 5 survive every edit.
        fake.0.borrow_mut()[(REDIRECTION_BASE + 10) as usize] |= bits::REMOTE_IRR;
        type Edit = fn(&IoApic<&Fake>);
        let edits: [(Edit, u32, u32); 6] = [
            (|io| io.set_masked(5, false), bits::MASKED, 0),
            (|io| io.set_level(5, true), bits::LEVEL, bits::LEVEL),
            (
                |io| io.set_active_low(5, true),
                bits::ACTIVE_LOW,
                bits::ACTIVE_LOW,
            ),
            (|io| io.set_vector(5, 0x99), bits::VECTOR, 0x99),
            (|io| io.set_masked(5, true), bits::MASKED, bits::MASKED),
            (|io| io.set_level(5, false), bits::LEVEL, 0),
        ];
        for (edit, field, value) in edits {
            let before = snapshot(&fake);
            edit(&io);
            let after = snapshot(&fake);
            for index in 0..0x40 {
                if index == (REDIRECTION_BASE + 10) as usize {
                    assert_eq!(after[index] & !field, before[index] & !field);
                    assert_eq!(after[index] & field, value);
                    assert_ne!(after[index] & bits::REMOTE_IRR, 0);
                } else {
                    assert_eq!(after[index], before[index], "register {index:#x} changed");
                }
            }
        }
    }

    #[test]
    fn destination_changes_only_the_id_and_keeps_the_mask_state() {
        let fake = Fake::new();
        let io = IoApic::new(&fake, 0);
        io.reset(0x30, 0);
        io.set_masked(3, false);
        fake.0.borrow_mut()[(REDIRECTION_BASE + 7) as usize] |= 0x42; // reserved bits
        let before = snapshot(&fake);
        io.set_destination(3, 7);
        let after = snapshot(&fake);
        assert_eq!(io.destination(3), 7);
        assert_eq!(after[(REDIRECTION_BASE + 7) as usize] & 0xff_ffff, 0x42);
        assert_eq!(io.low(3), 0x33, "unmasked again, vector kept");
        for index in 0..0x40 {
            if index != (REDIRECTION_BASE + 7) as usize {
                assert_eq!(after[index], before[index]);
            }
        }
    }

    proptest! {
        #[test]
        fn random_edit_sequences_keep_other_entries(
            edits in proptest::collection::vec((0u32..24, 0u8..5, any::<u8>()), 1..40)
        ) {
            let fake = Fake::new();
            let io = IoApic::new(&fake, 0);
            io.reset(0x30, 0);
            let mut expected: [u32; 24] = core::array::from_fn(|pin| io.low(pin as u32));
            for (pin, kind, value) in edits {
                let flag = value & 1 == 1;
                let e = &mut expected[pin as usize];
                match kind {
                    0 => { io.set_masked(pin, flag); *e = (*e & !bits::MASKED) | if flag { bits::MASKED } else { 0 }; }
                    1 => { io.set_level(pin, flag); *e = (*e & !bits::LEVEL) | if flag { bits::LEVEL } else { 0 }; }
                    2 => { io.set_active_low(pin, flag); *e = (*e & !bits::ACTIVE_LOW) | if flag { bits::ACTIVE_LOW } else { 0 }; }
                    3 => { io.set_vector(pin, value); *e = (*e & !bits::VECTOR) | u32::from(value); }
                    _ => { io.set_destination(pin, value); }
                }
                for p in 0..24u32 {
                    prop_assert_eq!(io.low(p), expected[p as usize]);
                }
            }
        }
    }
}
