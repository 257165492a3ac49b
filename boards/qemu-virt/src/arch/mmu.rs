//! Turning the MMU on: the tables of [`crate::pagetable`] in the memory the linker script
//! reserves, and the system registers that describe them.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, ID_AA64PFR1_EL1, MAIR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1, Writeable,
};

use super::asm;
use crate::memmap::Range;
use crate::pagetable::{self, ENTRIES, ImageLayout, MapError, PAGE, Tables};

unsafe extern "C" {
    static __uk_image_start: u8;
    static __uk_code_end: u8;
    static __uk_rodata_end: u8;
    static __uk_boot_stack_guard: u8;
    static __uk_exception_stack_guard: u8;
    static __uk_image_end: u8;
    static __uk_page_tables: u8;
    static __uk_page_tables_end: u8;
}

/// Where the image's parts lie, from the linker script's symbols.
pub(super) fn image_layout() -> ImageLayout {
    let at = |symbol: *const u8| symbol as u64;
    ImageLayout {
        start: at(&raw const __uk_image_start),
        code_end: at(&raw const __uk_code_end),
        rodata_end: at(&raw const __uk_rodata_end),
        guards: guard_pages(),
        end: at(&raw const __uk_image_end),
    }
}

/// The unmapped pages below the boot and exception stacks.
pub(super) fn guard_pages() -> [Range; 2] {
    let guard = |symbol: *const u8| Range::from_base_size(symbol as u64, PAGE);
    [
        guard(&raw const __uk_boot_stack_guard),
        guard(&raw const __uk_exception_stack_guard),
    ]
}

/// Address of the level-1 table (what `TTBR0_EL1` holds): the first table the linker
/// script reserved.
pub(super) fn l1_table() -> u64 {
    (&raw const __uk_page_tables) as u64
}

/// The table memory the linker script reserved: level 1, level 2 for the image's GiB,
/// level 2 for the low GiB (devices), then level-3 tables.
///
/// # Safety
///
/// Only boot code may call this, and no two of the returned values may live at once: each is
/// an exclusive view of the same memory.
unsafe fn tables<'a>() -> Tables<'a> {
    let start = (&raw const __uk_page_tables) as u64;
    let end = (&raw const __uk_page_tables_end) as u64;
    let count = ((end - start) / PAGE) as usize;
    let table = |index: usize| (start + index as u64 * PAGE) as *mut [u64; ENTRIES];
    // SAFETY: the linker script reserves `count` (at least 4) page-aligned, page-sized tables
    // in `.page_tables`, which nothing but this module touches; the caller guarantees this is
    // the only live view of them.
    unsafe {
        Tables {
            l1: &mut *table(0),
            l2: &mut *table(1),
            l2_address: table(1) as u64,
            l2_device: &mut *table(2),
            l2_device_address: table(2) as u64,
            l3: core::slice::from_raw_parts_mut(table(3), count - 3),
            l3_address: table(3) as u64,
        }
    }
}

/// Builds the identity map and turns the MMU and the caches on.
///
/// # Safety
///
/// Must be called once, by boot code, with the MMU off; `layout` must describe the running
/// image.
pub(super) unsafe fn enable(layout: &ImageLayout) -> Result<(), MapError> {
    // SAFETY: boot code, once; the view dies at the end of this function.
    let mut tables = unsafe { tables() };
    tables.build(layout)?;
    let start = tables.l1.as_ptr() as u64;
    let end = (&raw const __uk_page_tables_end) as u64;
    // The tables were written with the caches off; nothing stale may hide them from the walker.
    asm::invalidate_dcache(start, end);

    // Device-nGnRE and Normal write-back; Normal *Tagged* on a CPU with FEAT_MTE2, so that
    // `uk-mte` can store and check tags in RAM (see `pagetable::mair_el1`).
    MAIR_EL1.set(pagetable::mair_el1(
        ID_AA64PFR1_EL1.read(ID_AA64PFR1_EL1::MTE),
    ));
    let ips = pagetable::ips_for_parange(ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange));
    TCR_EL1.write(
        TCR_EL1::T0SZ.val(pagetable::T0SZ)
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS.val(ips),
    );
    TTBR0_EL1.set_baddr(start);
    barrier::isb(barrier::SY);
    asm::invalidate_tlb();

    // Known RES1 bits plus: MMU, data and instruction caches, SP alignment checks, and
    // write-implies-execute-never.
    let on = SCTLR_EL1::M::Enable
        + SCTLR_EL1::C::Cacheable
        + SCTLR_EL1::I::Cacheable
        + SCTLR_EL1::SA::Enable
        + SCTLR_EL1::SA0::Enable
        + SCTLR_EL1::WXN::Enable;
    SCTLR_EL1.set(asm::SCTLR_EL1_RES1 | on.value);
    barrier::isb(barrier::SY);
    Ok(())
}

/// Maps every GiB that `ram` touches as Normal memory, if not mapped yet.
///
/// # Safety
///
/// Boot code only, after [`enable`]; `ram` must be RAM (Normal memory may be read
/// speculatively).
pub(super) unsafe fn map_ram(ram: Range) -> Result<(), MapError> {
    // SAFETY: boot code; the view dies at the end of this function.
    let mut tables = unsafe { tables() };
    if tables.map_ram(ram)? {
        // Only invalid entries became valid: no TLB entry can be stale, but the walker must
        // see the stores before the next access.
        barrier::dsb(barrier::ISHST);
        barrier::isb(barrier::SY);
    }
    Ok(())
}
