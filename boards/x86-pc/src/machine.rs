//! Naming the machine found at boot: which QEMU machine type (from the PCI host bridge, or
//! its absence), which accelerator (CPUID hypervisor leaf) and which CPU (CPUID brand
//! string). Pure functions over what `arch` reads.

/// What the board found out about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineKind {
    /// Some other PCI host bridge (or not known yet).
    OtherPc,
    /// PCI host bridge 8086:1237 (i440FX): QEMU `pc`.
    Pc,
    /// PCI host bridge 8086:29c0 (Q35 MCH): QEMU `q35`.
    Q35,
    /// No PCI configuration space behind ports 0xCF8/0xCFC: QEMU `microvm`.
    Microvm,
}

impl MachineKind {
    /// Classifies by the vendor/device dword of PCI 00:00.0 (`0xffff_ffff` when nothing
    /// answers).
    pub const fn from_host_bridge(id: u32) -> MachineKind {
        match id {
            0x1237_8086 => MachineKind::Pc,
            0x29c0_8086 => MachineKind::Q35,
            0xffff_ffff | 0 => MachineKind::Microvm,
            _ => MachineKind::OtherPc,
        }
    }

    /// The machine's name.
    pub const fn name(self) -> &'static str {
        match self {
            MachineKind::Pc => "QEMU pc",
            MachineKind::Q35 => "QEMU q35",
            MachineKind::Microvm => "QEMU microvm",
            MachineKind::OtherPc => "x86 PC",
        }
    }

    /// Whether the firmware (SeaBIOS on `pc` and `q35`) left its last console line open
    /// ("Booting from ROM.."), so the board ends it before printing.
    pub const fn firmware_leaves_line_open(self) -> bool {
        matches!(self, MachineKind::Pc | MachineKind::Q35)
    }

    /// Whether the PIIX4/ICH9 ACPI PM block at 0x600 (set up by SeaBIOS) is there.
    pub const fn has_acpi_pm_ports(self) -> bool {
        matches!(self, MachineKind::Pc | MachineKind::Q35)
    }

    /// How to reach PCI configuration space: ports 0xCF8/0xCFC wherever a host bridge
    /// answered there at boot (SeaBIOS assigned the BARs); `microvm` has no PCI bus.
    pub const fn pci_config_access(self) -> Option<uk_hal::PciConfigAccess> {
        match self {
            MachineKind::Microvm => None,
            MachineKind::Pc | MachineKind::Q35 | MachineKind::OtherPc => {
                Some(uk_hal::PciConfigAccess::PortIo)
            }
        }
    }
}

/// Where QEMU `microvm` puts its virtio-mmio transports: [`MICROVM_VIRTIO_SLOTS`] windows of
/// 512 bytes from this address, most of them empty (device id 0). The machine has no device
/// tree and no PCI; QEMU names the windows only on a Linux kernel's command line
/// (`virtio_mmio.device=`), so the board lists the machine's fixed layout and drivers probe
/// each window's magic and device id.
pub const MICROVM_VIRTIO_BASE: u64 = 0xfeb0_0000;
/// Number of virtio-mmio windows listed on `microvm`: QEMU makes 24 with its second IOAPIC
/// (the default) and 8 without, and plugs the first device into the highest (0xfeb02e00
/// with 24); a window without a transport reads as no device.
pub const MICROVM_VIRTIO_SLOTS: usize = 24;

/// The virtio-mmio windows of `microvm` ([`MICROVM_VIRTIO_BASE`]), none elsewhere.
pub const fn virtio_mmio_slots(kind: MachineKind) -> &'static [uk_hal::VirtioMmioSlot] {
    const fn slots() -> [uk_hal::VirtioMmioSlot; MICROVM_VIRTIO_SLOTS] {
        let mut out = [uk_hal::VirtioMmioSlot {
            region: uk_hal::MemoryRegion { base: 0, size: 0 },
            interrupt: None,
        }; MICROVM_VIRTIO_SLOTS];
        let mut i = 0;
        while i < MICROVM_VIRTIO_SLOTS {
            out[i].region.base = MICROVM_VIRTIO_BASE + 0x200 * i as u64;
            out[i].region.size = 0x200;
            i += 1;
        }
        out
    }
    static MICROVM: [uk_hal::VirtioMmioSlot; MICROVM_VIRTIO_SLOTS] = slots();
    match kind {
        MachineKind::Microvm => &MICROVM,
        _ => &[],
    }
}

/// End of the part of the identity map that holds device registers: the boot trampoline
/// maps the first 4 GiB with 2 MiB pages, RAM and MMIO alike (QEMU's PCI hole, the IOAPIC,
/// the local APIC and SeaBIOS's 32-bit BAR window lie in 3-4 GiB). RAM above 4 GiB may be
/// mapped too, but no device registers are.
pub const DEVICE_MAP_END: u64 = 4 << 30;

/// Whether the `size` bytes of device registers at `base` are identity-mapped (what the
/// board answers to [`uk_hal::Platform::mmio_is_mapped`]): inside the first 4 GiB and not in
/// page 0, which boot unmaps. An empty or wrapping range is not. Caching: the page tables
/// leave it to the MTRRs, which SeaBIOS sets to uncached for the PCI hole (TCG ignores it).
pub const fn is_device_mapped(base: u64, size: u64) -> bool {
    match base.checked_add(size) {
        Some(end) => size > 0 && base >= 0x1000 && end <= DEVICE_MAP_END,
        None => false,
    }
}

/// Accelerator name from the CPUID hypervisor vendor (leaf 0x4000_0000: EBX, ECX, EDX).
pub fn accelerator(vendor: [u32; 3]) -> Option<&'static str> {
    // Compared as words, the way CPUID returns them ("TCGT" "CGTC" "GTCG" little-endian).
    const fn word(text: &[u8; 12], at: usize) -> u32 {
        u32::from_le_bytes([text[at], text[at + 1], text[at + 2], text[at + 3]])
    }
    const fn words(text: &[u8; 12]) -> [u32; 3] {
        [word(text, 0), word(text, 4), word(text, 8)]
    }
    const KNOWN: [([u32; 3], &str); 5] = [
        (words(b"TCGTCGTCGTCG"), "TCG"),
        (words(b"KVMKVMKVM\0\0\0"), "KVM"),
        (words(b"Microsoft Hv"), "Hyper-V"),
        (words(b"VMwareVMware"), "VMware"),
        (words(b"XenVMMXenVMM"), "Xen"),
    ];
    KNOWN
        .iter()
        .find(|(id, _)| *id == vendor)
        .map(|&(_, name)| name)
}

/// The CPUID brand string (48 bytes, NUL-padded, often space-padded) trimmed; empty if it
/// is not ASCII.
pub fn brand(raw: &[u8; 48]) -> &str {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    crate::bootinfo::ascii_str(raw[..end].trim_ascii()).unwrap_or_default()
}

/// A string in a fixed buffer; pushing past the end cuts at a character boundary.
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedStr<N> {
    /// The empty string.
    pub const fn new() -> Self {
        FixedStr {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends as much of `text` as fits.
    pub fn push(&mut self, text: &str) {
        let room = N - self.len;
        let mut take = text.len();
        if take > room {
            take = room;
            while !text.is_char_boundary(take) {
                take -= 1;
            }
        }
        self.buf[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
    }

    /// The contents.
    pub fn as_str(&self) -> &str {
        // Only whole characters of `&str`s are ever copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// `"<machine>, <brand>, <accelerator>"`, leaving out the parts that are unknown.
pub fn describe<const N: usize>(
    kind: MachineKind,
    brand: &str,
    accel: Option<&str>,
) -> FixedStr<N> {
    let mut text = FixedStr::new();
    text.push(kind.name());
    if !brand.is_empty() {
        text.push(", ");
        text.push(brand);
    }
    if let Some(accel) = accel {
        text.push(", ");
        text.push(accel);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_everywhere_but_microvm() {
        use uk_hal::PciConfigAccess::PortIo;
        assert_eq!(MachineKind::Pc.pci_config_access(), Some(PortIo));
        assert_eq!(MachineKind::Q35.pci_config_access(), Some(PortIo));
        assert_eq!(MachineKind::OtherPc.pci_config_access(), Some(PortIo));
        assert_eq!(MachineKind::Microvm.pci_config_access(), None);
    }

    #[test]
    fn microvm_lists_its_virtio_mmio_windows() {
        let slots = virtio_mmio_slots(MachineKind::Microvm);
        assert_eq!(slots.len(), MICROVM_VIRTIO_SLOTS);
        assert_eq!(slots[0].region.base, 0xfeb0_0000);
        assert_eq!(slots[23].region.base, 0xfeb0_2e00);
        assert!(
            slots
                .iter()
                .all(|s| s.region.size == 0x200 && is_device_mapped(s.region.base, s.region.size))
        );
        assert!(virtio_mmio_slots(MachineKind::Pc).is_empty());
        assert!(virtio_mmio_slots(MachineKind::Q35).is_empty());
    }

    #[test]
    fn device_registers_below_4_gib_are_mapped() {
        assert!(
            is_device_mapped(0xfebf_0000, 0x1000),
            "a SeaBIOS 32-bit BAR"
        );
        assert!(is_device_mapped(0xffff_f000, 0x1000));
        assert!(!is_device_mapped(0xffff_f000, 0x1001), "crosses 4 GiB");
        assert!(
            !is_device_mapped(0x1_0000_0000, 0x4000),
            "a 64-bit BAR above 4 GiB"
        );
        assert!(!is_device_mapped(0, 0x1000), "page 0");
        assert!(!is_device_mapped(0xfebf_0000, 0));
        assert!(!is_device_mapped(u64::MAX, 2));
    }

    #[test]
    fn host_bridges() {
        assert_eq!(MachineKind::from_host_bridge(0x1237_8086), MachineKind::Pc);
        assert_eq!(MachineKind::from_host_bridge(0x29c0_8086), MachineKind::Q35);
        assert_eq!(
            MachineKind::from_host_bridge(0xffff_ffff),
            MachineKind::Microvm
        );
        assert_eq!(
            MachineKind::from_host_bridge(0x0123_1022),
            MachineKind::OtherPc
        );
        assert!(MachineKind::Pc.has_acpi_pm_ports() && !MachineKind::Microvm.has_acpi_pm_ports());
    }

    #[test]
    fn brand_and_accelerator() {
        let mut raw = [0u8; 48];
        raw[..29].copy_from_slice(b"  QEMU TCG CPU version 2.5+  ");
        assert_eq!(brand(&raw), "QEMU TCG CPU version 2.5+");
        assert_eq!(brand(&[b' '; 48]), "");
        assert_eq!(brand(&[0xff; 48]), "");
        // CPUID 0x4000_0000 under TCG: EBX "TCGT", ECX "CGTC", EDX "GTCG".
        assert_eq!(
            accelerator([0x5447_4354, 0x4354_4743, 0x4743_5447]),
            Some("TCG")
        );
        assert_eq!(
            accelerator([0x4b4d_564b, 0x564b_4d56, 0x0000_004d]),
            Some("KVM")
        );
        assert_eq!(accelerator([0; 3]), None);
    }

    #[test]
    fn description() {
        let text: FixedStr<64> = describe(
            MachineKind::Microvm,
            "QEMU TCG CPU version 2.5+",
            Some("TCG"),
        );
        assert_eq!(
            text.as_str(),
            "QEMU microvm, QEMU TCG CPU version 2.5+, TCG"
        );
        let text: FixedStr<64> = describe(MachineKind::Pc, "", None);
        assert_eq!(text.as_str(), "QEMU pc");
        let text: FixedStr<10> = describe(MachineKind::Pc, "é", None);
        assert_eq!(text.as_str(), "QEMU pc, ");
        let text: FixedStr<11> = describe(MachineKind::Pc, "é", None);
        assert_eq!(text.as_str(), "QEMU pc, é");
    }
}
