//! The little of ACPI the interrupt setup needs: find the RSDP, walk the RSDT/XSDT to the
//! MADT ("APIC" table) and read from it the local APIC address, the CPUs' APIC ids, the
//! IOAPICs and the ISA interrupt overrides.
//!
//! Pure code over a [`PhysMem`] reader, so the parser is tested on the host against tables
//! built in memory (and random bytes: a bad table is an [`AcpiError`], never a panic). Every
//! table's checksum and length are checked before a field is read.

/// Reads physical memory (identity-mapped on the board; a byte buffer in tests).
pub trait PhysMem {
    /// The `len` bytes at `addr`, or `None` when they are not readable memory.
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// Why the MADT could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP at the given address nor in the BIOS area.
    NoRsdp,
    /// A table's checksum (or the RSDP's) does not add up to zero.
    BadChecksum(u64),
    /// A table's length is shorter than its header or than what it claims to hold.
    BadLength(u64),
    /// A table lies outside readable memory.
    Unreadable(u64),
    /// The RSDT/XSDT lists no MADT.
    NoMadt,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => write!(f, "no ACPI RSDP"),
            Self::BadChecksum(at) => write!(f, "ACPI table at {at:#x} fails its checksum"),
            Self::BadLength(at) => write!(f, "ACPI table at {at:#x} has a bad length"),
            Self::Unreadable(at) => write!(f, "ACPI table at {at:#x} is not in readable memory"),
            Self::NoMadt => write!(f, "no MADT in the ACPI tables"),
        }
    }
}

/// Most CPUs kept from the MADT.
pub const MAX_CPUS: usize = 16;
/// Most IOAPICs kept from the MADT.
pub const MAX_IOAPICS: usize = 4;
/// Most ISA interrupt source overrides kept.
pub const MAX_OVERRIDES: usize = 16;

/// An IOAPIC as the MADT lists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoApicInfo {
    /// Its APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u32,
    /// The first global system interrupt (GSI) it serves.
    pub gsi_base: u32,
}

/// An ISA IRQ that reaches another GSI, or with other signalling than ISA's active-high
/// edge (MADT interrupt source override).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsaOverride {
    /// The ISA IRQ (0-15).
    pub irq: u8,
    /// The GSI it is wired to.
    pub gsi: u32,
    /// MPS INTI flags: polarity in bits 1:0 (1 high, 3 low), trigger in bits 3:2 (1 edge,
    /// 3 level), 0 = the bus's default.
    pub flags: u16,
}

impl IsaOverride {
    /// Whether the line is active low (otherwise ISA's default, active high).
    pub const fn active_low(&self) -> bool {
        self.flags & 3 == 3
    }
    /// Whether the line is level-triggered (otherwise ISA's default, edge).
    pub const fn level(&self) -> bool {
        (self.flags >> 2) & 3 == 3
    }
}

/// What the MADT says about the interrupt hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Madt {
    /// Physical address of the local APICs' registers (xAPIC mode).
    pub lapic_address: u64,
    /// Whether the machine also has the dual 8259 PICs (PCAT_COMPAT), to be masked.
    pub has_8259: bool,
    /// APIC ids of the usable CPUs, in MADT order (the boot CPU first on QEMU).
    pub cpu_apic_ids: [u32; MAX_CPUS],
    /// Entries of [`Madt::cpu_apic_ids`] in use.
    pub cpu_count: usize,
    /// The IOAPICs.
    pub ioapics: [IoApicInfo; MAX_IOAPICS],
    /// Entries of [`Madt::ioapics`] in use.
    pub ioapic_count: usize,
    /// ISA interrupt source overrides.
    pub overrides: [IsaOverride; MAX_OVERRIDES],
    /// Entries of [`Madt::overrides`] in use.
    pub override_count: usize,
    /// Entries that did not fit the arrays above (CPUs, IOAPICs or overrides left out).
    pub dropped: usize,
}

impl Madt {
    const EMPTY: Madt = Madt {
        lapic_address: 0xfee0_0000,
        has_8259: false,
        cpu_apic_ids: [0; MAX_CPUS],
        cpu_count: 0,
        ioapics: [IoApicInfo {
            id: 0,
            address: 0,
            gsi_base: 0,
        }; MAX_IOAPICS],
        ioapic_count: 0,
        overrides: [IsaOverride {
            irq: 0,
            gsi: 0,
            flags: 0,
        }; MAX_OVERRIDES],
        override_count: 0,
        dropped: 0,
    };

    /// The CPUs' APIC ids.
    pub fn cpus(&self) -> &[u32] {
        &self.cpu_apic_ids[..self.cpu_count]
    }
    /// The IOAPICs.
    pub fn ioapics(&self) -> &[IoApicInfo] {
        &self.ioapics[..self.ioapic_count]
    }
    /// The ISA overrides.
    pub fn overrides(&self) -> &[IsaOverride] {
        &self.overrides[..self.override_count]
    }
    /// The GSI and signalling of ISA IRQ `irq`: (gsi, active_low, level).
    pub fn isa_irq(&self, irq: u8) -> (u32, bool, bool) {
        self.overrides()
            .iter()
            .find(|o| o.irq == irq)
            .map_or((u32::from(irq), false, false), |o| {
                (o.gsi, o.active_low(), o.level())
            })
    }
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
const HEADER_LEN: usize = 36;

/// Checks the RSDP at `addr`; returns (root table address, entry size: 4 RSDT, 8 XSDT).
fn rsdp_at(mem: &dyn PhysMem, addr: u64) -> Result<(u64, usize), AcpiError> {
    let head = mem.bytes(addr, 20).ok_or(AcpiError::Unreadable(addr))?;
    if &head[..8] != RSDP_SIGNATURE {
        return Err(AcpiError::NoRsdp);
    }
    if sum(head) != 0 {
        return Err(AcpiError::BadChecksum(addr));
    }
    let revision = head[15];
    let rsdt = u64::from(u32_at(head, 16));
    if revision >= 2
        && let Some(full) = mem.bytes(addr, 36)
    {
        let length = u32_at(full, 20) as usize;
        let xsdt = u64_at(full, 24);
        if length >= 36
            && let Some(all) = mem.bytes(addr, length)
            && sum(all) == 0
            && xsdt != 0
        {
            return Ok((xsdt, 8));
        }
    }
    Ok((rsdt, 4))
}

/// Finds the RSDP: at `hint` when non-zero (the PVH start info's `rsdp_paddr`), otherwise
/// on a 16-byte boundary in the BIOS area 0xE0000-0xFFFFF. Returns (root table address,
/// entry size: 4 for the RSDT, 8 for the XSDT).
pub fn find_root(mem: &dyn PhysMem, hint: u64) -> Result<(u64, usize), AcpiError> {
    if hint != 0 {
        return rsdp_at(mem, hint);
    }
    (0xe_0000u64..0x10_0000)
        .step_by(16)
        .find_map(|addr| rsdp_at(mem, addr).ok())
        .ok_or(AcpiError::NoRsdp)
}

/// A whole table at `addr` whose length and checksum are right.
fn table(mem: &dyn PhysMem, addr: u64) -> Result<&[u8], AcpiError> {
    let head = mem
        .bytes(addr, HEADER_LEN)
        .ok_or(AcpiError::Unreadable(addr))?;
    let length = u32_at(head, 4) as usize;
    if length < HEADER_LEN {
        return Err(AcpiError::BadLength(addr));
    }
    let all = mem.bytes(addr, length).ok_or(AcpiError::Unreadable(addr))?;
    if sum(all) != 0 {
        return Err(AcpiError::BadChecksum(addr));
    }
    Ok(all)
}

/// Finds and parses the MADT through the RSDP at `rsdp_hint` (see [`find_root`]).
pub fn read_madt(mem: &dyn PhysMem, rsdp_hint: u64) -> Result<Madt, AcpiError> {
    let (root, entry_size) = find_root(mem, rsdp_hint)?;
    let root_table = table(mem, root)?;
    let madt = root_table[HEADER_LEN..]
        .chunks_exact(entry_size)
        .map(|entry| {
            if entry_size == 8 {
                u64_at(entry, 0)
            } else {
                u64::from(u32_at(entry, 0))
            }
        })
        .find(|&addr| {
            mem.bytes(addr, 4)
                .is_some_and(|signature| signature == b"APIC")
        })
        .ok_or(AcpiError::NoMadt)?;
    parse_madt(table(mem, madt)?).ok_or(AcpiError::BadLength(madt))
}

/// Parses a MADT whose checksum was checked. `None` if it is too short for its fixed part.
pub fn parse_madt(table: &[u8]) -> Option<Madt> {
    if table.len() < HEADER_LEN + 8 {
        return None;
    }
    let mut madt = Madt::EMPTY;
    madt.lapic_address = u64::from(u32_at(table, HEADER_LEN));
    madt.has_8259 = u32_at(table, HEADER_LEN + 4) & 1 != 0;
    let mut rest = &table[HEADER_LEN + 8..];
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], usize::from(rest[1]));
        if len < 2 || len > rest.len() {
            break;
        }
        let entry = &rest[..len];
        rest = &rest[len..];
        match (kind, len) {
            // Processor local APIC: usable if enabled (bit 0) or online capable (bit 1).
            (0, 8..) if u32_at(entry, 4) & 3 != 0 => push_cpu(&mut madt, u32::from(entry[3])),
            // IOAPIC.
            (1, 12..) => {
                let info = IoApicInfo {
                    id: entry[2],
                    address: u32_at(entry, 4),
                    gsi_base: u32_at(entry, 8),
                };
                match madt.ioapics.get_mut(madt.ioapic_count) {
                    Some(slot) => {
                        *slot = info;
                        madt.ioapic_count += 1;
                    }
                    None => madt.dropped += 1,
                }
            }
            // Interrupt source override, ISA bus (0) only.
            (2, 10..) if entry[2] == 0 => {
                let ov = IsaOverride {
                    irq: entry[3],
                    gsi: u32_at(entry, 4),
                    flags: u16_at(entry, 8),
                };
                match madt.overrides.get_mut(madt.override_count) {
                    Some(slot) => {
                        *slot = ov;
                        madt.override_count += 1;
                    }
                    None => madt.dropped += 1,
                }
            }
            // Local APIC address override (64-bit).
            (5, 12..) => madt.lapic_address = u64_at(entry, 4),
            // Processor local x2APIC (ids above 254).
            (9, 16..) if u32_at(entry, 8) & 3 != 0 => push_cpu(&mut madt, u32_at(entry, 4)),
            _ => {}
        }
    }
    Some(madt)
}

fn push_cpu(madt: &mut Madt, apic_id: u32) {
    if madt.cpus().contains(&apic_id) {
        return;
    }
    match madt.cpu_apic_ids.get_mut(madt.cpu_count) {
        Some(slot) => {
            *slot = apic_id;
            madt.cpu_count += 1;
        }
        None => madt.dropped += 1,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Physical memory: a buffer at a base address.
    struct Mem {
        base: u64,
        data: Vec<u8>,
    }

    impl PhysMem for Mem {
        fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
            let start = usize::try_from(addr.checked_sub(self.base)?).ok()?;
            self.data.get(start..start.checked_add(len)?)
        }
    }

    fn fix_checksum(table: &mut [u8], at: usize) {
        table[at] = 0;
        table[at] = 0u8.wrapping_sub(sum(table));
    }

    fn sdt(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; HEADER_LEN];
        t[..4].copy_from_slice(signature);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut t, 9);
        t
    }

    fn madt_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT
        // CPU 0 (APIC 0, enabled), CPU 1 (APIC 1, enabled), CPU 2 (APIC 7, disabled).
        for (uid, id, flags) in [(0u8, 0u8, 1u32), (1, 1, 1), (2, 7, 0)] {
            b.extend_from_slice(&[0, 8, uid, id]);
            b.extend_from_slice(&flags.to_le_bytes());
        }
        // IOAPIC id 0 at 0xfec00000, GSI base 0.
        b.extend_from_slice(&[1, 12, 0, 0]);
        b.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        // ISA IRQ 0 -> GSI 2; IRQ 9 -> GSI 9 level, active high (flags 0xd).
        for (irq, gsi, flags) in [(0u8, 2u32, 0u16), (9, 9, 0xd)] {
            b.extend_from_slice(&[2, 10, 0, irq]);
            b.extend_from_slice(&gsi.to_le_bytes());
            b.extend_from_slice(&flags.to_le_bytes());
        }
        // An x2APIC entry for APIC id 300, enabled; an unknown type 0x7f.
        b.extend_from_slice(&[9, 16, 0, 0]);
        b.extend_from_slice(&300u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&[0x7f, 3, 0]);
        b
    }

    /// RSDP (revision 0) at 0xe0010 in the BIOS area, RSDT at 0xe1000, MADT at 0xe2000.
    fn machine() -> Mem {
        let base = 0xe_0000;
        let mut data = vec![0u8; 0x4000];
        let madt = sdt(b"APIC", &madt_body());
        let facp = sdt(b"FACP", &[0; 8]);
        let mut rsdt_body = Vec::new();
        rsdt_body.extend_from_slice(&0xe3000u32.to_le_bytes());
        rsdt_body.extend_from_slice(&0xe2000u32.to_le_bytes());
        let rsdt = sdt(b"RSDT", &rsdt_body);
        let mut rsdp = vec![0u8; 20];
        rsdp[..8].copy_from_slice(RSDP_SIGNATURE);
        rsdp[16..20].copy_from_slice(&0xe1000u32.to_le_bytes());
        fix_checksum(&mut rsdp, 8);
        data[0x10..0x10 + 20].copy_from_slice(&rsdp);
        data[0x1000..0x1000 + rsdt.len()].copy_from_slice(&rsdt);
        data[0x2000..0x2000 + madt.len()].copy_from_slice(&madt);
        data[0x3000..0x3000 + facp.len()].copy_from_slice(&facp);
        Mem { base, data }
    }

    #[test]
    fn reads_cpus_ioapics_and_overrides() {
        let mem = machine();
        for hint in [0, 0xe0010] {
            let madt = read_madt(&mem, hint).unwrap();
            assert_eq!(madt.lapic_address, 0xfee0_0000);
            assert!(madt.has_8259);
            assert_eq!(madt.cpus(), [0, 1, 300]);
            assert_eq!(
                madt.ioapics(),
                [IoApicInfo {
                    id: 0,
                    address: 0xfec0_0000,
                    gsi_base: 0
                }]
            );
            assert_eq!(madt.isa_irq(0), (2, false, false));
            assert_eq!(madt.isa_irq(9), (9, false, true));
            assert_eq!(madt.isa_irq(4), (4, false, false));
            assert_eq!(madt.dropped, 0);
        }
    }

    #[test]
    fn bad_checksums_and_missing_tables_are_errors() {
        let mut mem = machine();
        assert_eq!(read_madt(&mem, 0xe0020), Err(AcpiError::NoRsdp));
        assert_eq!(read_madt(&mem, 0x10), Err(AcpiError::Unreadable(0x10)));
        mem.data[0x2000 + 50] ^= 1; // corrupt the MADT
        assert_eq!(read_madt(&mem, 0), Err(AcpiError::BadChecksum(0xe2000)));
        mem.data[0x1000 + HEADER_LEN + 4] = 0x99; // RSDT now points elsewhere (bad sum too)
        assert_eq!(read_madt(&mem, 0), Err(AcpiError::BadChecksum(0xe1000)));
        let mut empty = machine();
        empty.data[0x10] = b'X';
        assert_eq!(read_madt(&empty, 0), Err(AcpiError::NoRsdp));
    }

    #[test]
    fn xsdt_is_preferred_for_revision_2() {
        let mut mem = machine();
        let mut xsdt_body = Vec::new();
        xsdt_body.extend_from_slice(&0xe2000u64.to_le_bytes());
        let xsdt = sdt(b"XSDT", &xsdt_body);
        mem.data[0x3800..0x3800 + xsdt.len()].copy_from_slice(&xsdt);
        // Break the RSDT: only the XSDT path can find the MADT now.
        mem.data[0x1000 + HEADER_LEN] = 0;
        let mut rsdp = vec![0u8; 36];
        rsdp[..8].copy_from_slice(RSDP_SIGNATURE);
        rsdp[15] = 2;
        rsdp[16..20].copy_from_slice(&0xe1000u32.to_le_bytes());
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&0xe3800u64.to_le_bytes());
        fix_checksum(&mut rsdp[..20], 8);
        fix_checksum(&mut rsdp, 32);
        mem.data[0x10..0x10 + 36].copy_from_slice(&rsdp);
        assert_eq!(read_madt(&mem, 0).unwrap().cpus(), [0, 1, 300]);
    }

    #[test]
    fn full_arrays_count_what_they_drop() {
        let mut body = Vec::new();
        body.extend_from_slice(&[0; 8]);
        for id in 0..(MAX_CPUS as u8 + 3) {
            body.extend_from_slice(&[0, 8, id, id, 1, 0, 0, 0]);
        }
        let madt = parse_madt(&sdt(b"APIC", &body)).unwrap();
        assert_eq!(madt.cpu_count, MAX_CPUS);
        assert_eq!(madt.dropped, 3);
        assert!(!madt.has_8259);
    }

    proptest! {
        #[test]
        fn random_madt_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let table = sdt(b"APIC", &body);
            if let Some(madt) = parse_madt(&table) {
                prop_assert!(madt.cpu_count <= MAX_CPUS);
                prop_assert!(madt.ioapic_count <= MAX_IOAPICS);
            }
        }

        #[test]
        fn random_memory_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), hint in 0u64..700) {
            let mem = Mem { base: 0, data };
            let _ = read_madt(&mem, hint);
        }
    }
}
