//! Encodings of the x86_64 system tables the board builds at boot: IDT gates, the TSS
//! descriptor and page table entries. Pure functions, tested on the host; `arch` writes
//! the results into the live tables.

/// Kernel code segment selector (GDT entry 1, 64-bit).
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data segment selector (GDT entry 2).
pub const KERNEL_DS: u16 = 0x10;
/// TSS selector (GDT entries 3 and 4, a 16-byte system descriptor).
pub const TSS_SELECTOR: u16 = 0x18;

/// IST slot (1-based, as the gate encodes it) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u8 = 1;

/// A 64-bit interrupt gate: present, DPL 0, type 0xE (interrupts stay disabled in the
/// handler), jumping to `handler` in [`KERNEL_CS`] on IST stack `ist` (0 = current stack).
pub const fn interrupt_gate(handler: u64, ist: u8) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (KERNEL_CS as u64) << 16
        | ((ist & 7) as u64) << 32
        | 0x8e << 40
        | ((handler >> 16) & 0xffff) << 48;
    [low, handler >> 32]
}

/// The 16-byte available 64-bit TSS descriptor for a TSS at `base` with `limit` (size - 1).
pub const fn tss_descriptor(base: u64, limit: u32) -> [u64; 2] {
    let low = (limit as u64 & 0xffff)
        | (base & 0xff_ffff) << 16
        | 0x89 << 40 // present, DPL 0, type 9 = available 64-bit TSS
        | ((limit as u64 >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    [low, base >> 32]
}

/// Page table entry bit: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Page table entry bit: writable.
pub const PTE_WRITABLE: u64 = 1 << 1;
/// Page directory (PDPT) entry bit: maps a 2 MiB (1 GiB) page instead of pointing to a table.
pub const PTE_HUGE: u64 = 1 << 7;

/// Size of a page mapped by a page table entry.
pub const PAGE_4K: u64 = 1 << 12;
/// Size of a page mapped by a huge page directory entry.
pub const PAGE_2M: u64 = 1 << 21;
/// Size of a page mapped by a huge PDPT entry.
pub const PAGE_1G: u64 = 1 << 30;

/// Identity map of the 2 MiB region at `base` in 4 KiB pages (the split of a huge page).
pub fn identity_4k(table: &mut [u64; 512], base: u64) {
    for (i, entry) in table.iter_mut().enumerate() {
        *entry = (base + i as u64 * PAGE_4K) | PTE_PRESENT | PTE_WRITABLE;
    }
}

/// Entry of the PDPT slot `index` mapping the identity 1 GiB page there.
pub const fn identity_1g(index: u64) -> u64 {
    (index * PAGE_1G) | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE
}

/// Entry pointing to a next-level table at `table`.
pub const fn table_entry(table: u64) -> u64 {
    table | PTE_PRESENT | PTE_WRITABLE
}

/// The end of the identity map to build for usable RAM ending at `ram_end`: the first
/// 4 GiB always (2 MiB pages, built at entry), then whole 1 GiB pages up to `ram_end` when
/// the CPU has them, at most 512 GiB (one PDPT).
pub const fn mapped_end(ram_end: u64, has_1g_pages: bool) -> u64 {
    const LOW: u64 = 4 * PAGE_1G;
    const MAX: u64 = 512 * PAGE_1G;
    if !has_1g_pages || ram_end <= LOW {
        return LOW;
    }
    match ram_end.checked_next_multiple_of(PAGE_1G) {
        Some(end) if end <= MAX => end,
        _ => MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_layout() {
        let [low, high] = interrupt_gate(0x1234_5678_9abc_def0, 1);
        assert_eq!(low & 0xffff, 0xdef0, "offset 15:0");
        assert_eq!((low >> 16) & 0xffff, 0x08, "selector");
        assert_eq!((low >> 32) & 0xff, 1, "IST");
        assert_eq!((low >> 40) & 0xff, 0x8e, "present interrupt gate");
        assert_eq!(low >> 48, 0x9abc, "offset 31:16");
        assert_eq!(high, 0x1234_5678, "offset 63:32");
        assert_eq!(
            (interrupt_gate(0x10_0000, 9)[0] >> 32) & 0xff,
            1,
            "IST is 3 bits"
        );
    }

    #[test]
    fn tss_descriptor_layout() {
        let [low, high] = tss_descriptor(0xffff_8000_1234_5678, 0x67);
        assert_eq!(low & 0xffff, 0x67);
        assert_eq!((low >> 16) & 0xff_ffff, 0x34_5678);
        assert_eq!((low >> 40) & 0xff, 0x89);
        assert_eq!((low >> 48) & 0xf, 0);
        assert_eq!(low >> 56, 0x12);
        assert_eq!(high, 0xffff_8000);
        assert_eq!(tss_descriptor(0x10_5000, 0x67), [0x0000_8910_5000_0067, 0]);
    }

    #[test]
    fn identity_entries() {
        let mut table = [0u64; 512];
        identity_4k(&mut table, 0x20_0000);
        assert_eq!(table[0], 0x20_0003);
        assert_eq!(table[511], 0x3f_f003);
        assert_eq!(identity_1g(5), 0x1_4000_0083);
        assert_eq!(table_entry(0x10_3000), 0x10_3003);
    }

    #[test]
    fn mapped_end_rules() {
        const G: u64 = PAGE_1G;
        assert_eq!(mapped_end(64 << 20, true), 4 * G);
        assert_eq!(mapped_end(6 * G, false), 4 * G);
        assert_eq!(mapped_end(6 * G, true), 6 * G);
        assert_eq!(mapped_end(6 * G + 1, true), 7 * G);
        assert_eq!(mapped_end(4096 * G, true), 512 * G);
        assert_eq!(mapped_end(u64::MAX - 5, true), 512 * G);
    }
}
