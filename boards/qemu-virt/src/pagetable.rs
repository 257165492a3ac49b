//! The identity map: translation-table descriptors and how the tables are filled.
//!
//! The board runs with a 4 KiB granule and 39-bit virtual addresses (`T0SZ = 25`), so a walk
//! starts at level 1 and one table of 512 entries covers the first 512 GiB of physical
//! address space, which holds all of `virt`'s RAM and low MMIO:
//!
//! - level 1 entry 0: the low 1 GiB, where `virt` puts its devices (GIC, PL011, RTC,
//!   virtio-mmio, PCIe PIO/ECAM), through a level-2 table of 2 MiB Device-nGnRE blocks, never
//!   executable, except the first 128 MiB ([`UNMAPPED_LOW_END`]: `virt`'s two flash banks,
//!   which the board never uses), left unmapped so that a NULL pointer (or any address
//!   there) takes a translation fault;
//! - the image's GiB: a level-2 table of 2 MiB Normal write-back blocks, read-write and never
//!   executable, except the 2 MiB blocks holding the image, which get level-3 tables so each
//!   4 KiB page has its own rights: code read-only and executable, read-only data read-only,
//!   the stack guard pages unmapped, everything else read-write;
//! - every other GiB with RAM (from the device tree, added once it is parsed): one Normal
//!   1 GiB block, read-write, never executable.
//!
//! The descriptors and the filling are pure functions over plain arrays (tested on the host);
//! the `arch` module points them at the tables the linker script reserves and turns the
//! MMU on.
//!
//! At run time, page protection ([`uk_hal::PageProtection`]) splits RAM blocks into tables
//! of smaller entries with the block's attributes and gives single pages their own rights:
//! [`set_access`] and its parts ([`tables_needed`], [`own_block_tables`],
//! [`page_of_block`], [`page_with_access`], ...) over a [`TableMemory`], which is the live
//! tables on the board and a map of arrays in the host tests (see the crate documentation,
//! *Page protection*).

use uk_hal::{MemoryRegion, PageAccess, ProtectError};

use crate::memmap::Range;

/// Entries in a translation table (4 KiB granule).
pub const ENTRIES: usize = 512;
/// Bytes one level-1 entry maps.
pub const L1_BLOCK: u64 = 1 << 30;
/// Bytes one level-2 entry maps.
pub const L2_BLOCK: u64 = 1 << 21;
/// Bytes one level-3 entry maps.
pub const PAGE: u64 = 1 << 12;
/// End of the unmapped window at the bottom of the address space: `virt`'s two 64 MiB flash
/// banks (`0x0000_0000..0x0800_0000`), which an image loaded with `-kernel` never uses, so
/// that a NULL pointer dereference faults. The GIC starts right above, at `0x0800_0000`.
pub const UNMAPPED_LOW_END: u64 = 0x0800_0000;
/// Virtual (and, identity-mapped, physical) address bits translated.
pub const VA_BITS: u64 = 39;
/// `TCR_EL1.T0SZ` for [`VA_BITS`].
pub const T0SZ: u64 = 64 - VA_BITS;

/// `MAIR_EL1` index of Device-nGnRE memory (attribute `0x04`).
pub const ATTR_DEVICE: u64 = 0;
/// `MAIR_EL1` index of Normal memory, inner and outer write-back read/write-allocate (`0xff`,
/// or `0xf0`, the same but Tagged, on a CPU with FEAT_MTE2: see [`mair_el1`]).
pub const ATTR_NORMAL: u64 = 1;

/// Normal memory, inner and outer write-back, non-transient, read- and write-allocate.
pub const MAIR_NORMAL: u8 = 0xff;
/// [`MAIR_NORMAL`] with allocation tags (FEAT_MTE2's Normal Tagged memory).
pub const MAIR_NORMAL_TAGGED: u8 = 0xf0;
/// Device-nGnRE memory.
pub const MAIR_DEVICE: u8 = 0x04;

/// The `MAIR_EL1` value for `ID_AA64PFR1_EL1.MTE` = `mte_level`: Device-nGnRE at index
/// [`ATTR_DEVICE`], and at index [`ATTR_NORMAL`] (all RAM, the image included) Normal
/// write-back memory, *Tagged* when the CPU has FEAT_MTE2 (level 2 or more).
///
/// This is the board's side of memory tagging, used by the `uk-mte` crate: tags can only be
/// stored in, and checked on, memory mapped Normal Tagged. Until software turns tag access
/// and checking on (`SCTLR_EL1.ATA`, `TCF`, which the board leaves clear), Normal Tagged
/// memory behaves exactly as Normal memory, so mapping RAM tagged costs nothing elsewhere.
/// Level 1 (FEAT_MTE without tag storage, as QEMU's `-cpu max` without `mte=on` reports)
/// keeps plain Normal memory.
pub const fn mair_el1(mte_level: u64) -> u64 {
    let normal = if mte_level >= 2 {
        MAIR_NORMAL_TAGGED
    } else {
        MAIR_NORMAL
    };
    ((MAIR_DEVICE as u64) << (8 * ATTR_DEVICE)) | ((normal as u64) << (8 * ATTR_NORMAL))
}

/// Descriptor bits (stage 1, 4 KiB granule).
pub mod bits {
    /// Valid entry.
    pub const VALID: u64 = 1 << 0;
    /// At levels 1 and 2: next-level table (else block). At level 3: must be set (page).
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// Shift of the `MAIR_EL1` index (`AttrIndx`, bits 4:2).
    pub const ATTR_INDEX_SHIFT: u64 = 2;
    /// `AP[2]`: read-only.
    pub const READ_ONLY: u64 = 1 << 7;
    /// `SH = 0b11`: inner shareable.
    pub const INNER_SHAREABLE: u64 = 0b11 << 8;
    /// Access flag (set, so no access-flag fault is ever taken).
    pub const ACCESSED: u64 = 1 << 10;
    /// Privileged execute-never.
    pub const PXN: u64 = 1 << 53;
    /// Unprivileged execute-never.
    pub const UXN: u64 = 1 << 54;
    /// Output address bits 47:12.
    pub const ADDRESS: u64 = 0x0000_ffff_ffff_f000;
    /// Contiguous hint: one of 16 adjacent entries with the same attributes (never set by
    /// this board, and never inherited by a split table).
    pub const CONTIGUOUS: u64 = 1 << 52;
}

/// What a mapping allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Not mapped: any access faults (stack guard pages).
    None,
    /// Normal memory, read-only, executable at EL1.
    Code,
    /// Normal memory, read-only.
    ReadOnly,
    /// Normal memory, read-write.
    ReadWrite,
    /// Device-nGnRE memory, read-write.
    Device,
}

const fn attributes(access: Access) -> u64 {
    use bits::*;
    let normal = ACCESSED | INNER_SHAREABLE | (ATTR_NORMAL << ATTR_INDEX_SHIFT) | UXN;
    match access {
        Access::None => 0,
        Access::Code => normal | READ_ONLY,
        Access::ReadOnly => normal | READ_ONLY | PXN,
        Access::ReadWrite => normal | PXN,
        Access::Device => ACCESSED | (ATTR_DEVICE << ATTR_INDEX_SHIFT) | UXN | PXN,
    }
}

/// A level-1 or level-2 block descriptor mapping `address` (aligned to the block size).
pub const fn block(address: u64, access: Access) -> u64 {
    match access {
        Access::None => 0,
        _ => (address & bits::ADDRESS) | attributes(access) | bits::VALID,
    }
}

/// A level-3 page descriptor mapping the 4 KiB page at `address`.
pub const fn page(address: u64, access: Access) -> u64 {
    match access {
        Access::None => 0,
        _ => (address & bits::ADDRESS) | attributes(access) | bits::TABLE_OR_PAGE | bits::VALID,
    }
}

/// A level-1 or level-2 descriptor pointing to the next-level table at `table`.
pub const fn table(table: u64) -> u64 {
    (table & bits::ADDRESS) | bits::TABLE_OR_PAGE | bits::VALID
}

/// `TCR_EL1.IPS` for a given `ID_AA64MMFR0_EL1.PARange`: the CPU's physical address size,
/// capped at 48 bits (`0b101`). With a 4 KiB granule and no FEAT_LPA2, 52-bit output
/// addresses (`0b110`, reported by `-cpu max`) cannot be used; values above `0b110` are
/// reserved.
pub const fn ips_for_parange(parange: u64) -> u64 {
    if parange > 0b101 { 0b101 } else { parange }
}

/// Where the image's parts lie, from the linker script's symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// Start of the image (page aligned; the ELF headers and code begin here).
    pub start: u64,
    /// End of the code, page aligned: `[start, code_end)` is executable.
    pub code_end: u64,
    /// End of the read-only data, page aligned: `[code_end, rodata_end)` is read-only.
    pub rodata_end: u64,
    /// Unmapped stack guard pages (page aligned).
    pub guards: [Range; 2],
    /// End of the image, page tables included.
    pub end: u64,
}

impl ImageLayout {
    /// The rights of the page at `address`.
    pub fn access(&self, address: u64) -> Access {
        if self.guards.iter().any(|g| g.contains(address)) {
            Access::None
        } else if (self.start..self.code_end).contains(&address) {
            Access::Code
        } else if (self.code_end..self.rodata_end).contains(&address) {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }

    /// Level-3 tables needed to map the image page by page.
    pub const fn l3_tables_needed(&self) -> usize {
        let first = self.start / L2_BLOCK;
        let last = (self.end - 1) / L2_BLOCK;
        (last - first + 1) as usize
    }
}

/// Why the identity map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The image lies in the low GiB (MMIO), above [`VA_BITS`], or across a GiB boundary.
    ImagePlacement,
    /// The linker script reserved too few level-3 tables.
    TooFewTables {
        /// Tables needed.
        needed: usize,
        /// Tables reserved.
        reserved: usize,
    },
    /// The address lies above what [`VA_BITS`] translate.
    OutOfRange,
}

/// The translation tables: a level-1 table, the level-2 tables of the low GiB (devices) and
/// of the image's GiB and the level-3 tables of the image, with the physical addresses the
/// descriptors point to.
pub struct Tables<'a> {
    /// The level-1 table (`TTBR0_EL1`).
    pub l1: &'a mut [u64; ENTRIES],
    /// The level-2 table for the low GiB (device blocks, the flash window unmapped).
    pub l2_device: &'a mut [u64; ENTRIES],
    /// Physical address of `l2_device`.
    pub l2_device_address: u64,
    /// The level-2 table for the image's GiB.
    pub l2: &'a mut [u64; ENTRIES],
    /// Physical address of `l2`.
    pub l2_address: u64,
    /// Level-3 tables for the image, contiguous.
    pub l3: &'a mut [[u64; ENTRIES]],
    /// Physical address of `l3[0]`.
    pub l3_address: u64,
}

impl Tables<'_> {
    /// Fills every table: MMIO (but the flash window), the image's GiB, the image page by
    /// page (see the module docs). Other GiBs stay unmapped until [`Tables::map_ram`].
    pub fn build(&mut self, image: &ImageLayout) -> Result<(), MapError> {
        let gib = image.start / L1_BLOCK;
        if gib == 0 || gib >= ENTRIES as u64 || (image.end - 1) / L1_BLOCK != gib {
            return Err(MapError::ImagePlacement);
        }
        let needed = image.l3_tables_needed();
        if needed > self.l3.len() {
            return Err(MapError::TooFewTables {
                needed,
                reserved: self.l3.len(),
            });
        }
        self.l1.fill(0);
        self.l1[0] = table(self.l2_device_address);
        self.l1[gib as usize] = table(self.l2_address);
        let unmapped = (UNMAPPED_LOW_END / L2_BLOCK) as usize;
        for (i, entry) in self.l2_device.iter_mut().enumerate() {
            *entry = if i < unmapped {
                0
            } else {
                block(i as u64 * L2_BLOCK, Access::Device)
            };
        }

        let gib_base = gib * L1_BLOCK;
        for (i, entry) in self.l2.iter_mut().enumerate() {
            *entry = block(gib_base + i as u64 * L2_BLOCK, Access::ReadWrite);
        }
        let first = ((image.start - gib_base) / L2_BLOCK) as usize;
        let l3_base = gib_base + first as u64 * L2_BLOCK;
        let l3 = self.l3[..needed].as_flattened_mut();
        // Everything read-write, then the image's parts get their own rights: simple loops,
        // since every instruction of the boot path costs boot time under TCG.
        for (p, entry) in l3.iter_mut().enumerate() {
            *entry = page(l3_base + p as u64 * PAGE, Access::ReadWrite);
        }
        let mut set = |range: Range, access: Access| {
            let mut address = range.start & !(PAGE - 1);
            while address < range.end {
                if let Some(entry) = l3.get_mut((address.wrapping_sub(l3_base) / PAGE) as usize) {
                    *entry = page(address, access);
                }
                address += PAGE;
            }
        };
        set(
            Range {
                start: image.start,
                end: image.code_end,
            },
            Access::Code,
        );
        set(
            Range {
                start: image.code_end,
                end: image.rodata_end,
            },
            Access::ReadOnly,
        );
        for guard in image.guards {
            set(guard, Access::None);
        }
        for k in 0..needed {
            self.l2[first + k] = table(self.l3_address + k as u64 * PAGE);
        }
        Ok(())
    }

    /// Maps every GiB that `ram` touches and that is not mapped yet as Normal read-write
    /// memory (1 GiB blocks). Returns whether an entry changed.
    pub fn map_ram(&mut self, ram: Range) -> Result<bool, MapError> {
        if ram.is_empty() {
            return Ok(false);
        }
        let first = ram.start / L1_BLOCK;
        let last = (ram.end - 1) / L1_BLOCK;
        if last >= ENTRIES as u64 {
            return Err(MapError::OutOfRange);
        }
        let mut changed = false;
        for gib in first..=last {
            let entry = &mut self.l1[gib as usize];
            if *entry & bits::VALID == 0 {
                *entry = block(gib * L1_BLOCK, Access::ReadWrite);
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// Whether the level-1 table maps `address` (the level-1 walk alone).
pub fn l1_maps(l1: &[u64; ENTRIES], address: u64) -> bool {
    let index = address / L1_BLOCK;
    index < ENTRIES as u64 && l1[index as usize] & bits::VALID != 0
}

/// Whether the `size` bytes at `base` lie in the low GiB above the unmapped flash window
/// (`[UNMAPPED_LOW_END, 1 GiB)`), the Device-nGnRE blocks of the identity map where `virt`
/// puts its device registers (what the board answers to
/// [`uk_hal::Platform::mmio_is_mapped`]). An empty or wrapping range is not.
pub const fn is_device_mapped(base: u64, size: u64) -> bool {
    match base.checked_add(size) {
        Some(end) => size > 0 && base >= UNMAPPED_LOW_END && end <= L1_BLOCK,
        None => false,
    }
}

// Page protection: giving single pages of RAM their own rights at run time
// ([`uk_hal::PageProtection`]). The bare-metal side (`arch::protect`) supplies the live
// tables through [`TableMemory`]; everything else is here, tested on the host.

/// The bits of a block or page descriptor that are not attributes: validity, type, output
/// address (with `nT`, bit 16 of a block), and the contiguous hint.
const NOT_ATTRIBUTES: u64 = bits::VALID | bits::TABLE_OR_PAGE | bits::ADDRESS | bits::CONTIGUOUS;

/// The attributes of a block or page descriptor, kept bit for bit when a block becomes a
/// table of smaller entries: the `MAIR_EL1` index (Normal or Normal Tagged memory is decided
/// there), shareability, access permissions, access flag, `nG`, `PXN`/`UXN`, and the
/// software and hardware-use bits. Everything but validity, type, output address and the
/// contiguous hint.
pub const fn descriptor_attributes(descriptor: u64) -> u64 {
    descriptor & !NOT_ATTRIBUTES
}

/// Whether a level-1 or level-2 `descriptor` is a valid block.
pub const fn is_block(descriptor: u64) -> bool {
    descriptor & (bits::VALID | bits::TABLE_OR_PAGE) == bits::VALID
}

/// Whether a block or page `descriptor` maps Normal memory (RAM: `MAIR_EL1` index
/// [`ATTR_NORMAL`]), not Device memory.
pub const fn is_normal(descriptor: u64) -> bool {
    (descriptor >> bits::ATTR_INDEX_SHIFT) & 0b111 == ATTR_NORMAL
}

/// Whether a level-1 or level-2 `descriptor` points to a next-level table.
pub const fn is_table(descriptor: u64) -> bool {
    descriptor & (bits::VALID | bits::TABLE_OR_PAGE) == bits::VALID | bits::TABLE_OR_PAGE
}

/// The address a descriptor holds (a table's, a block's or a page's).
pub const fn descriptor_address(descriptor: u64) -> u64 {
    descriptor & bits::ADDRESS
}

/// The level-3 page descriptor for the 4 KiB page at `address` inside the memory the block
/// descriptor `block` (level 1 or 2) maps: the block's attributes, the page's address.
pub const fn page_of_block(block: u64, address: u64) -> u64 {
    (address & bits::ADDRESS) | descriptor_attributes(block) | bits::TABLE_OR_PAGE | bits::VALID
}

/// The level-2 block descriptor for the 2 MiB at `address` inside the memory the level-1
/// (1 GiB) block descriptor `block` maps: the block's attributes, the 2 MiB's address.
pub const fn l2_block_of_l1_block(block: u64, address: u64) -> u64 {
    (address & bits::ADDRESS & !(L2_BLOCK - 1)) | descriptor_attributes(block) | bits::VALID
}

/// The page descriptor `page` with the rights `access`: valid and read-write (`AP[2]`
/// clear), valid and read-only (`AP[2]` set), or, for [`PageAccess::None`], the same
/// descriptor with its valid bit clear. The MMU ignores every other bit of an invalid
/// descriptor, so the page keeps its address and attributes for a later change back.
pub const fn page_with_access(page: u64, access: PageAccess) -> u64 {
    let valid = page | bits::VALID;
    match access {
        PageAccess::None => valid & !bits::VALID,
        PageAccess::ReadOnly => valid | bits::READ_ONLY,
        PageAccess::ReadWrite => valid & !bits::READ_ONLY,
    }
}

/// The rights a leaf descriptor (a block, or a page as [`page_with_access`] writes it) gives
/// at EL1.
pub const fn access_of(descriptor: u64) -> PageAccess {
    if descriptor & bits::VALID == 0 {
        PageAccess::None
    } else if descriptor & bits::READ_ONLY != 0 {
        PageAccess::ReadOnly
    } else {
        PageAccess::ReadWrite
    }
}

/// Whether `range` lies wholly inside `regions` (sorted and disjoint, as
/// [`uk_hal::Platform::memory_regions`] are); adjacent regions count as one.
pub fn in_regions(regions: &[MemoryRegion], range: Range) -> bool {
    let mut covered = range.start;
    for region in regions {
        if covered >= range.end {
            break;
        }
        if region.base <= covered && covered < region.end() {
            covered = region.end();
        }
    }
    !range.is_empty() && covered >= range.end
}

/// The range `[start, start + len)` that `set_access` was asked for, checked:
/// [`ProtectError::Unaligned`] unless `start` and `len` are multiples of [`PAGE`] and `len`
/// is not 0, [`ProtectError::NotRam`] unless it lies wholly inside `regions` (which also
/// catches a range that wraps around the address space).
pub fn checked_range(
    regions: &[MemoryRegion],
    start: usize,
    len: usize,
) -> Result<Range, ProtectError> {
    let (start, len) = (start as u64, len as u64);
    if start % PAGE != 0 || len % PAGE != 0 || len == 0 {
        return Err(ProtectError::Unaligned);
    }
    let end = start.checked_add(len).ok_or(ProtectError::NotRam)?;
    let range = Range { start, end };
    if in_regions(regions, range) {
        Ok(range)
    } else {
        Err(ProtectError::NotRam)
    }
}

/// What a CPU records while it splits a block ([`TableMemory::split`]), for the exception
/// handler of the other CPUs: the block's address with its size in the low bits (1 for
/// 2 MiB, 2 for 1 GiB); 0 means no split is under way.
pub const fn split_state(address: u64, size: u64) -> u64 {
    let tag = if size == L1_BLOCK { 2 } else { 1 };
    (address & !(L2_BLOCK - 1)) | tag
}

/// Whether the split `state` ([`split_state`]) covers `address`.
pub const fn split_covers(state: u64, address: u64) -> bool {
    let size = match state & 3 {
        1 => L2_BLOCK,
        2 => L1_BLOCK,
        _ => return false,
    };
    let start = state & !3;
    start <= address && address - start < size
}

/// The live translation tables, as [`set_access`] reads and changes them. Tables are named by
/// their physical address, which the identity map makes their virtual address too.
pub trait TableMemory {
    /// Entry `index` of the table at `table`.
    fn read(&self, table: u64, index: usize) -> u64;
    /// Writes entry `index` of the table at `table`: any entry of a table the MMU does not
    /// use yet, or a page descriptor of a live table (a change of rights, which needs no
    /// break-before-make; [`TableMemory::invalidate`] follows).
    fn write(&mut self, table: u64, index: usize, descriptor: u64);
    /// Replaces the live block descriptor at entry `index` of `table`, which maps the `size`
    /// bytes at `address`, by the table descriptor `descriptor`, whose table is filled and
    /// maps the same memory: with break-before-make, including the TLB maintenance.
    fn split(&mut self, table: u64, index: usize, descriptor: u64, address: u64, size: u64);
    /// Makes every CPU drop its translations of `range` after [`TableMemory::write`] changed
    /// live page descriptors there.
    fn invalidate(&mut self, range: Range);
    /// A new table (4 KiB, aligned, zeroed), or `None` when there is no memory for it.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Gives back a table of [`TableMemory::alloc_table`] that the MMU never used.
    fn free_table(&mut self, table: u64);
}

/// New tables a range needs ([`tables_needed`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TablesNeeded {
    /// Level-2 tables: one for each 1 GiB block the range touches.
    pub l2: usize,
    /// Level-3 tables: one for each 2 MiB block the range touches, inside a 1 GiB block or a
    /// level-2 table (not counting [`own_block_tables`]).
    pub l3: usize,
}

impl TablesNeeded {
    /// Level-2 and level-3 tables together.
    pub const fn total(&self) -> usize {
        self.l2 + self.l3
    }
}

/// The part of `range` inside the naturally aligned `size` bytes at `base`.
const fn clip(range: Range, base: u64, size: u64) -> Range {
    let start = if range.start > base {
        range.start
    } else {
        base
    };
    let end = if range.end < base + size {
        range.end
    } else {
        base + size
    };
    Range { start, end }
}

/// Indices of the `size`-byte entries that the non-empty `range` touches, as a range of
/// numbers counted from address 0.
const fn entries(range: Range, size: u64) -> core::ops::RangeInclusive<u64> {
    range.start / size..=(range.end - 1) / size
}

/// Counts the tables that giving `range` (page aligned, non-empty) its own rights needs,
/// and checks that the tables map all of it as this board maps RAM.
///
/// # Errors
///
/// [`ProtectError::NotRam`] when part of the range lies above what the tables translate,
/// in an unmapped GiB or 2 MiB (the flash window), in a block that is not Normal memory (the
/// low GiB's devices), or on a level-3 entry that is not a Normal page of this address (the
/// image's stack guard pages). The caller checks the range against the usable memory first
/// ([`checked_range`]); this keeps the walk itself from ever splitting a device block.
pub fn tables_needed(
    mem: &impl TableMemory,
    l1: u64,
    range: Range,
) -> Result<TablesNeeded, ProtectError> {
    let mut needed = TablesNeeded::default();
    if range.is_empty() || range.end > ENTRIES as u64 * L1_BLOCK {
        return Err(ProtectError::NotRam);
    }
    for gib in entries(range, L1_BLOCK) {
        let in_gib = clip(range, gib * L1_BLOCK, L1_BLOCK);
        let e1 = mem.read(l1, gib as usize);
        if is_block(e1) {
            if !is_normal(e1) {
                return Err(ProtectError::NotRam);
            }
            needed.l2 += 1;
            needed.l3 += entries(in_gib, L2_BLOCK).count();
            continue;
        }
        if !is_table(e1) {
            return Err(ProtectError::NotRam);
        }
        let l2 = descriptor_address(e1);
        for block in entries(in_gib, L2_BLOCK) {
            let e2 = mem.read(l2, (block % ENTRIES as u64) as usize);
            if is_block(e2) {
                if !is_normal(e2) {
                    return Err(ProtectError::NotRam);
                }
                needed.l3 += 1;
                continue;
            }
            if !is_table(e2) {
                return Err(ProtectError::NotRam);
            }
            let l3 = descriptor_address(e2);
            for page in entries(clip(in_gib, block * L2_BLOCK, L2_BLOCK), PAGE) {
                let e3 = mem.read(l3, (page % ENTRIES as u64) as usize);
                // A page as this board writes it, valid or not: never an empty entry.
                if e3 & bits::TABLE_OR_PAGE == 0
                    || descriptor_address(e3) != page * PAGE
                    || !is_normal(e3)
                {
                    return Err(ProtectError::NotRam);
                }
            }
        }
    }
    Ok(needed)
}

/// Index, in the level-2 table replacing the 1 GiB block at `gib_base`, of the 2 MiB block
/// that holds that level-2 table itself, if it lies inside that GiB.
const fn own_block(l2_table: u64, gib_base: u64) -> Option<u64> {
    if gib_base <= l2_table && l2_table - gib_base < L1_BLOCK {
        Some((l2_table - gib_base) / L2_BLOCK)
    } else {
        None
    }
}

/// Level-3 tables needed on top of [`TablesNeeded::l3`] once the level-2 tables are known
/// (`l2_tables`, in the order [`set_access`] uses them: the 1 GiB blocks of `range` in
/// ascending order). A level-2 table that lies inside the 1 GiB block it replaces gets a
/// level-3 table for its own 2 MiB block as well (unless the range splits that block
/// anyway): a later split of a 2 MiB block in that GiB writes the level-2 table, and the
/// write must not go through the very block whose mapping is broken at that moment.
pub fn own_block_tables(
    mem: &impl TableMemory,
    l1: u64,
    range: Range,
    l2_tables: impl IntoIterator<Item = u64>,
) -> usize {
    let mut l2_tables = l2_tables.into_iter();
    let mut extra = 0;
    for gib in entries(range, L1_BLOCK) {
        if !is_block(mem.read(l1, gib as usize)) {
            continue;
        }
        let Some(table) = l2_tables.next() else {
            break;
        };
        let gib_base = gib * L1_BLOCK;
        let touched = entries(clip(range, gib_base, L1_BLOCK), L2_BLOCK);
        if let Some(own) = own_block(table, gib_base)
            && !touched.contains(&(gib * ENTRIES as u64 + own))
        {
            extra += 1;
        }
    }
    extra
}

/// New tables handed out by [`TableMemory::alloc_table`], chained through their first word
/// (so that no allocation is needed to keep track of them).
#[derive(Default)]
struct TableList {
    head: u64,
    len: usize,
}

impl TableList {
    /// Allocates `count` tables; false (keeping those it got) when one cannot be had.
    fn fill(&mut self, mem: &mut impl TableMemory, count: usize) -> bool {
        for _ in 0..count {
            let Some(table) = mem.alloc_table() else {
                return false;
            };
            mem.write(table, 0, self.head);
            self.head = table;
            self.len += 1;
        }
        true
    }

    /// The tables, in the order [`TableList::take`] hands them out.
    fn addresses<'m>(&self, mem: &'m impl TableMemory) -> impl Iterator<Item = u64> + 'm {
        let mut next = self.head;
        let mut left = self.len;
        core::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let table = next;
            next = mem.read(table, 0);
            left -= 1;
            Some(table)
        })
    }

    /// The next table, zeroed again.
    fn take(&mut self, mem: &mut impl TableMemory) -> u64 {
        assert!(self.len > 0, "set_access takes only the tables it counted");
        let table = self.head;
        self.head = mem.read(table, 0);
        mem.write(table, 0, 0);
        self.len -= 1;
        table
    }

    /// Frees every table left.
    fn free(&mut self, mem: &mut impl TableMemory) {
        while self.len > 0 {
            let table = self.take(mem);
            mem.free_table(table);
        }
    }
}

/// Gives the pages of `range` the rights `access`, all or nothing; with `access` `None`,
/// only makes sure that level-3 tables map them (with their rights as they are).
///
/// 1. Checks the tables and counts the new ones the range needs ([`tables_needed`]),
///    allocates them all, then the level-3 tables for the blocks holding new level-2 tables
///    ([`own_block_tables`]); if one allocation fails, frees every table it got and changes
///    nothing.
/// 2. Each 1 GiB block of the range becomes a level-2 table of 2 MiB blocks with its
///    attributes; each 2 MiB block of the range becomes a level-3 table of pages with the
///    block's attributes, the range's pages with their new rights. New tables are written
///    whole while the MMU does not see them yet, then swapped in for the block
///    ([`TableMemory::split`]: break-before-make); a 1 GiB block is replaced in one go, its
///    new level-3 tables already in place.
/// 3. Pages already mapped by a level-3 table get their new descriptor in place
///    ([`page_with_access`]), followed by one [`TableMemory::invalidate`] over the range
///    if any of them changed.
///
/// # Errors
///
/// [`ProtectError::Unaligned`] for a range that is not page aligned or empty; the errors of
/// [`tables_needed`]; [`ProtectError::OutOfTables`] when a table cannot be allocated.
pub fn set_access(
    mem: &mut impl TableMemory,
    l1: u64,
    range: Range,
    access: Option<PageAccess>,
) -> Result<(), ProtectError> {
    if range.start % PAGE != 0 || range.end % PAGE != 0 || range.is_empty() {
        return Err(ProtectError::Unaligned);
    }
    let needed = tables_needed(mem, l1, range)?;
    let mut l2 = TableList::default();
    let mut l3 = TableList::default();
    let got_all = l2.fill(mem, needed.l2) && {
        let extra = own_block_tables(&*mem, l1, range, l2.addresses(&*mem));
        l3.fill(mem, needed.l3 + extra)
    };
    if !got_all {
        l3.free(mem);
        l2.free(mem);
        return Err(ProtectError::OutOfTables);
    }
    apply(mem, l1, range, access, &mut l2, &mut l3);
    debug_assert!(l2.len == 0 && l3.len == 0, "every counted table is used");
    Ok(())
}

/// Fills the new level-3 table `l3` with the pages of the 2 MiB block `block` (a block
/// descriptor) at `base`; the pages inside `range` get the rights `access`, if any.
fn fill_l3(
    mem: &mut impl TableMemory,
    l3: u64,
    block: u64,
    base: u64,
    range: Range,
    access: Option<PageAccess>,
) {
    for index in 0..ENTRIES {
        let address = base + index as u64 * PAGE;
        let page = page_of_block(block, address);
        let page = match access {
            Some(access) if range.contains(address) => page_with_access(page, access),
            _ => page,
        };
        mem.write(l3, index, page);
    }
}

/// Step 2 and 3 of [`set_access`], with every table counted and allocated.
fn apply(
    mem: &mut impl TableMemory,
    l1: u64,
    range: Range,
    access: Option<PageAccess>,
    l2_tables: &mut TableList,
    l3_tables: &mut TableList,
) {
    let mut live_pages_changed = false;
    for gib in entries(range, L1_BLOCK) {
        let gib_base = gib * L1_BLOCK;
        let in_gib = clip(range, gib_base, L1_BLOCK);
        let e1 = mem.read(l1, gib as usize);
        if is_block(e1) {
            let l2 = l2_tables.take(mem);
            for index in 0..ENTRIES {
                let address = gib_base + index as u64 * L2_BLOCK;
                mem.write(l2, index, l2_block_of_l1_block(e1, address));
            }
            let touched = entries(in_gib, L2_BLOCK);
            let own = own_block(l2, gib_base)
                .map(|index| gib * ENTRIES as u64 + index)
                .filter(|block| !touched.contains(block));
            for block in touched.chain(own) {
                let index = (block % ENTRIES as u64) as usize;
                let base = block * L2_BLOCK;
                let l3 = l3_tables.take(mem);
                let e2 = mem.read(l2, index);
                fill_l3(mem, l3, e2, base, range, access);
                mem.write(l2, index, table(l3));
            }
            mem.split(l1, gib as usize, table(l2), gib_base, L1_BLOCK);
            continue;
        }
        let l2 = descriptor_address(e1);
        for block in entries(in_gib, L2_BLOCK) {
            let index = (block % ENTRIES as u64) as usize;
            let base = block * L2_BLOCK;
            let e2 = mem.read(l2, index);
            if is_block(e2) {
                let l3 = l3_tables.take(mem);
                fill_l3(mem, l3, e2, base, range, access);
                mem.split(l2, index, table(l3), base, L2_BLOCK);
                continue;
            }
            let Some(access) = access else {
                continue;
            };
            let l3 = descriptor_address(e2);
            for page in entries(clip(in_gib, base, L2_BLOCK), PAGE) {
                let index = (page % ENTRIES as u64) as usize;
                let old = mem.read(l3, index);
                let new = page_with_access(old, access);
                if new != old {
                    mem.write(l3, index, new);
                    live_pages_changed = true;
                }
            }
        }
    }
    if live_pages_changed {
        mem.invalidate(range);
    }
}

/// The leaf entry mapping `address`: its level (1, 2 or 3) and descriptor (at level 3
/// possibly an invalid page, [`PageAccess::None`]), or `None` where no table maps it.
pub fn lookup(mem: &impl TableMemory, l1: u64, address: u64) -> Option<(u8, u64)> {
    let gib = address / L1_BLOCK;
    if gib >= ENTRIES as u64 {
        return None;
    }
    let e1 = mem.read(l1, gib as usize);
    if is_block(e1) {
        return Some((1, e1));
    }
    if !is_table(e1) {
        return None;
    }
    let e2 = mem.read(
        descriptor_address(e1),
        ((address / L2_BLOCK) % ENTRIES as u64) as usize,
    );
    if is_block(e2) {
        return Some((2, e2));
    }
    if !is_table(e2) {
        return None;
    }
    let e3 = mem.read(
        descriptor_address(e2),
        ((address / PAGE) % ENTRIES as u64) as usize,
    );
    Some((3, e3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_window_is_the_low_gib_above_the_flash() {
        assert!(is_device_mapped(0x0a00_0000, 0x200), "virtio-mmio slot 0");
        assert!(is_device_mapped(0x0900_0000, 0x1000), "PL011");
        assert!(is_device_mapped(0x0800_0000, 0x1_0000), "GIC distributor");
        assert!(is_device_mapped(0x3fff_f000, 0x1000));
        assert!(!is_device_mapped(0x3fff_f000, 0x1001), "crosses into RAM");
        assert!(!is_device_mapped(0, 8), "NULL");
        assert!(!is_device_mapped(0x10, 8));
        assert!(!is_device_mapped(0x0400_0000, 0x1000), "flash bank 1");
        assert!(
            !is_device_mapped(0x07ff_f000, 0x2000),
            "starts in the flash window"
        );
        assert!(!is_device_mapped(0, L1_BLOCK), "the whole low GiB");
        assert!(
            !is_device_mapped(0x40_1000_0000, 0x1000),
            "high PCIe window"
        );
        assert!(!is_device_mapped(0x1000, 0));
        assert!(!is_device_mapped(u64::MAX, 2));
    }

    const BASE: u64 = 0x4020_0000;
    const DEVICE_L2: u64 = 0x4030_8000;

    fn layout() -> ImageLayout {
        ImageLayout {
            start: BASE,
            code_end: BASE + 0x8000,
            rodata_end: BASE + 0xa000,
            guards: [
                Range {
                    start: BASE + 0x10_000,
                    end: BASE + 0x11_000,
                },
                Range {
                    start: BASE + 0x21_000,
                    end: BASE + 0x22_000,
                },
            ],
            end: BASE + 0x30_000,
        }
    }

    struct Owned {
        l1: Box<[u64; ENTRIES]>,
        l2_device: Box<[u64; ENTRIES]>,
        l2: Box<[u64; ENTRIES]>,
        l3: Vec<[u64; ENTRIES]>,
    }

    impl Owned {
        fn new(l3: usize) -> Self {
            Self {
                l1: Box::new([7; ENTRIES]),
                l2_device: Box::new([7; ENTRIES]),
                l2: Box::new([7; ENTRIES]),
                l3: vec![[7; ENTRIES]; l3],
            }
        }
        fn tables(&mut self) -> Tables<'_> {
            Tables {
                l2_device_address: DEVICE_L2,
                l2_address: 0x4030_1000,
                l3_address: 0x4030_2000,
                l1: &mut self.l1,
                l2_device: &mut self.l2_device,
                l2: &mut self.l2,
                l3: &mut self.l3,
            }
        }
    }

    /// Walks the tables like the MMU for the entries this module writes.
    fn walk(t: &Owned, va: u64) -> Option<u64> {
        let l1 = t.l1[(va >> 30) as usize];
        if l1 & bits::VALID == 0 {
            return None;
        }
        if l1 & bits::TABLE_OR_PAGE == 0 {
            return Some(l1);
        }
        let l2_table = match l1 & bits::ADDRESS {
            DEVICE_L2 => &t.l2_device,
            0x4030_1000 => &t.l2,
            other => panic!("unknown level-2 table {other:#x}"),
        };
        let l2 = l2_table[((va >> 21) & 511) as usize];
        if l2 & bits::VALID == 0 {
            return None;
        }
        if l2 & bits::TABLE_OR_PAGE == 0 {
            return Some(l2);
        }
        let k = ((l2 & bits::ADDRESS) - 0x4030_2000) / PAGE;
        let l3 = t.l3[k as usize][((va >> 12) & 511) as usize];
        (l3 & bits::VALID != 0).then_some(l3)
    }

    #[test]
    fn descriptor_encodings() {
        // Device block at 0: AF, AttrIndx 0, PXN, UXN, valid block.
        assert_eq!(block(0, Access::Device), 0x0060_0000_0000_0401);
        // Normal RW 2 MiB block: AF, inner shareable, AttrIndx 1, PXN, UXN.
        assert_eq!(block(0x4000_0000, Access::ReadWrite), 0x0060_0000_4000_0705);
        // Code page: read-only, executable at EL1 only.
        assert_eq!(page(0x4020_0000, Access::Code), 0x0040_0000_4020_0787);
        assert_eq!(page(0x4020_1000, Access::ReadOnly), 0x0060_0000_4020_1787);
        assert_eq!(page(0x4020_1000, Access::None), 0);
        assert_eq!(table(0x4030_1000), 0x4030_1003);
    }

    #[test]
    fn ram_is_tagged_with_mte2_only() {
        assert_eq!(mair_el1(0), 0xff04);
        assert_eq!(mair_el1(1), 0xff04, "FEAT_MTE without tag storage");
        assert_eq!(mair_el1(2), 0xf004);
        assert_eq!(mair_el1(3), 0xf004);
        // RAM descriptors use the index whose attribute changes, devices the other.
        assert_eq!(
            (block(0x4000_0000, Access::ReadWrite) >> bits::ATTR_INDEX_SHIFT) & 7,
            ATTR_NORMAL
        );
        assert_eq!(
            (page(0x4020_0000, Access::Code) >> bits::ATTR_INDEX_SHIFT) & 7,
            ATTR_NORMAL
        );
        assert_eq!(
            (block(0, Access::Device) >> bits::ATTR_INDEX_SHIFT) & 7,
            ATTR_DEVICE
        );
    }

    #[test]
    fn ips_is_capped_at_48_bits() {
        assert_eq!(ips_for_parange(0b0100), 0b0100); // cortex-a72: 44 bits
        assert_eq!(ips_for_parange(0b0101), 0b0101);
        assert_eq!(ips_for_parange(0b0110), 0b0101); // max: 52 bits, unusable with 4 KiB pages here
        assert_eq!(ips_for_parange(0b1111), 0b0101);
    }

    #[test]
    fn builds_the_identity_map() {
        let mut t = Owned::new(2);
        t.tables().build(&layout()).unwrap();
        let rights = |va| walk(&t, va).map(|d| d & !bits::ADDRESS);
        // MMIO: PL011 at 0x0900_0000 through a 2 MiB device block of the low GiB's table.
        assert_eq!(t.l1[0], table(DEVICE_L2));
        assert_eq!(
            walk(&t, 0x0900_0000),
            Some(block(0x0900_0000, Access::Device))
        );
        assert_eq!(
            walk(&t, 0x0a00_3e00),
            Some(block(0x0a00_0000, Access::Device)),
            "virtio-mmio"
        );
        // The flash window (NULL included) is unmapped, the GIC right above it is not.
        for va in [0, 0x10, 0x0400_0000, UNMAPPED_LOW_END - 1] {
            assert_eq!(walk(&t, va), None, "{va:#x}");
        }
        assert_eq!(
            walk(&t, UNMAPPED_LOW_END),
            Some(block(UNMAPPED_LOW_END, Access::Device))
        );
        // Every 2 MiB of the low GiB from there on: device memory, identity, never executable.
        for (i, &entry) in t.l2_device.iter().enumerate() {
            let address = i as u64 * L2_BLOCK;
            let mapped = address >= UNMAPPED_LOW_END;
            assert_eq!(entry & bits::VALID != 0, mapped, "{address:#x}");
            assert_eq!(is_device_mapped(address, L2_BLOCK), mapped, "{address:#x}");
            if mapped {
                assert_eq!(entry, block(address, Access::Device));
                assert!(!is_normal(entry) && entry & bits::PXN != 0 && entry & bits::UXN != 0);
            }
        }
        // RAM below the image (DTB): read-write 2 MiB block.
        assert_eq!(
            walk(&t, 0x4000_0000),
            Some(block(0x4000_0000, Access::ReadWrite))
        );
        assert_eq!(rights(BASE), Some(page(0, Access::Code)));
        assert_eq!(rights(BASE + 0x7fff), Some(page(0, Access::Code)));
        assert_eq!(rights(BASE + 0x8000), Some(page(0, Access::ReadOnly)));
        assert_eq!(rights(BASE + 0xa000), Some(page(0, Access::ReadWrite)));
        assert_eq!(walk(&t, BASE + 0x10_800), None, "guard page");
        assert_eq!(walk(&t, BASE + 0x21_000), None, "guard page");
        assert_eq!(rights(BASE + 0x22_000), Some(page(0, Access::ReadWrite)));
        // The rest of the image's 2 MiB block is free RAM, read-write.
        assert_eq!(
            walk(&t, BASE + 0x1f_f000),
            Some(page(BASE + 0x1f_f000, Access::ReadWrite))
        );
        // Identity: every mapped page points at itself.
        for va in (0x4000_0000..0x4400_0000u64).step_by(0x1000) {
            if let Some(d) = walk(&t, va) {
                let size = if d & bits::TABLE_OR_PAGE != 0 {
                    PAGE
                } else {
                    L2_BLOCK
                };
                assert_eq!(d & bits::ADDRESS, va & !(size - 1), "{va:#x}");
            }
        }
        // Nothing else mapped yet.
        assert_eq!(walk(&t, 0x8000_0000), None);
        assert_eq!(t.l3[1], [7; ENTRIES], "only the tables needed are written");
    }

    #[test]
    fn image_across_a_2mib_boundary_uses_two_l3_tables() {
        let mut l = layout();
        l.end = BASE + L2_BLOCK + 0x1000;
        assert_eq!(l.l3_tables_needed(), 2);
        let mut t = Owned::new(2);
        t.tables().build(&l).unwrap();
        assert_eq!(
            walk(&t, BASE + L2_BLOCK),
            Some(page(BASE + L2_BLOCK, Access::ReadWrite))
        );
        let mut t = Owned::new(1);
        assert_eq!(
            t.tables().build(&l),
            Err(MapError::TooFewTables {
                needed: 2,
                reserved: 1
            })
        );
    }

    #[test]
    fn rejects_bad_placement() {
        let mut t = Owned::new(2);
        let mut l = layout();
        l.start = 0x10_0000;
        assert_eq!(t.tables().build(&l), Err(MapError::ImagePlacement));
        let mut l = layout();
        l.end = 0x8000_1000;
        assert_eq!(t.tables().build(&l), Err(MapError::ImagePlacement));
    }

    #[test]
    fn maps_more_ram_in_gib_blocks() {
        let mut t = Owned::new(2);
        t.tables().build(&layout()).unwrap();
        let before = t.l1[1];
        // 3 GiB of RAM from 1 GiB: the image's GiB stays a table, GiBs 2 and 3 become blocks.
        assert_eq!(
            t.tables().map_ram(Range {
                start: 0x4000_0000,
                end: 0x1_0000_0000
            }),
            Ok(true)
        );
        assert_eq!(t.l1[1], before);
        assert_eq!(
            walk(&t, 0x8000_0000),
            Some(block(0x8000_0000, Access::ReadWrite))
        );
        assert_eq!(
            walk(&t, 0xffff_ffff),
            Some(block(0xc000_0000, Access::ReadWrite))
        );
        assert_eq!(
            t.tables().map_ram(Range {
                start: 0x8000_0000,
                end: 0x9000_0000
            }),
            Ok(false)
        );
        assert!(l1_maps(&t.l1, 0xc000_0000));
        assert!(!l1_maps(&t.l1, 0x1_0000_0000));
        assert_eq!(
            t.tables().map_ram(Range {
                start: 1 << 39,
                end: (1 << 39) + 1
            }),
            Err(MapError::OutOfRange)
        );
    }
}

#[cfg(test)]
mod protection_tests {
    use super::*;
    use std::collections::BTreeMap;

    const L1: u64 = 0x4030_0000;
    const L2: u64 = 0x4030_1000;
    const L3: u64 = 0x4030_2000;
    const DEVICE_L2: u64 = 0x4030_8000;
    const BASE: u64 = 0x4020_0000;
    const GIB2: u64 = 0x8000_0000;
    const MIB: u64 = 1 << 20;

    /// Translation tables in a map from address to table, with a scripted allocator and a
    /// log of what the protection logic asked for.
    #[derive(Clone, Debug, Default)]
    struct Fake {
        tables: BTreeMap<u64, [u64; ENTRIES]>,
        /// Addresses the next allocations return, in order; afterwards fresh ones above
        /// 16 GiB.
        script: Vec<u64>,
        next_fresh: u64,
        /// Allocations that succeed before the allocator runs dry.
        budget: Option<usize>,
        allocated: Vec<u64>,
        freed: Vec<u64>,
        splits: Vec<(u64, usize, u64, u64, u64)>,
        invalidated: Vec<Range>,
    }

    impl TableMemory for Fake {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables
                .get(&table)
                .expect("a table the tables point to")[index]
        }
        fn write(&mut self, table: u64, index: usize, descriptor: u64) {
            self.tables.get_mut(&table).expect("a table")[index] = descriptor;
        }
        fn split(&mut self, table: u64, index: usize, descriptor: u64, address: u64, size: u64) {
            let old = self.read(table, index);
            assert!(is_block(old), "only blocks are split");
            assert!(is_table(descriptor));
            let new = descriptor_address(descriptor);
            assert!(
                self.tables.contains_key(&new),
                "the new table is written first"
            );
            self.splits.push((table, index, descriptor, address, size));
            self.write(table, index, descriptor);
        }
        fn invalidate(&mut self, range: Range) {
            self.invalidated.push(range);
        }
        fn alloc_table(&mut self) -> Option<u64> {
            if self.budget == Some(self.allocated.len()) {
                return None;
            }
            let table = if self.script.is_empty() {
                self.next_fresh += PAGE;
                0x4_0000_0000 + self.next_fresh
            } else {
                self.script.remove(0)
            };
            assert!(self.tables.insert(table, [0; ENTRIES]).is_none());
            self.allocated.push(table);
            Some(table)
        }
        fn free_table(&mut self, table: u64) {
            assert_eq!(
                self.tables.remove(&table),
                Some([0; ENTRIES]),
                "freed zeroed"
            );
            self.freed.push(table);
        }
    }

    /// The board's map for an image at 0x4020_0000 with 3 GiB of RAM from 1 GiB: GiB 1 a
    /// level-2 table (the image's 2 MiB a level-3 table), GiBs 2 and 3 1 GiB blocks.
    fn board() -> Fake {
        let mut l1 = Box::new([0; ENTRIES]);
        let mut l2_device = Box::new([0; ENTRIES]);
        let mut l2 = Box::new([0; ENTRIES]);
        let mut l3 = vec![[0; ENTRIES]; 1];
        let mut tables = Tables {
            l1: &mut l1,
            l2_device: &mut l2_device,
            l2_device_address: DEVICE_L2,
            l2: &mut l2,
            l2_address: L2,
            l3: &mut l3,
            l3_address: L3,
        };
        let image = ImageLayout {
            start: BASE,
            code_end: BASE + 0x8000,
            rodata_end: BASE + 0xa000,
            guards: [
                Range::from_base_size(BASE + 0x10_000, PAGE),
                Range::from_base_size(BASE + 0x21_000, PAGE),
            ],
            end: BASE + 0x30_000,
        };
        tables.build(&image).unwrap();
        tables
            .map_ram(Range {
                start: 0x4000_0000,
                end: 0x1_0000_0000,
            })
            .unwrap();
        let mut fake = Fake::default();
        fake.tables.insert(L1, *l1);
        fake.tables.insert(L2, *l2);
        fake.tables.insert(DEVICE_L2, *l2_device);
        fake.tables.insert(L3, l3[0]);
        fake
    }

    /// What the page at `va` maps to, as a page descriptor (a block's page derived from it).
    fn page_at(mem: &Fake, va: u64) -> Option<u64> {
        let (level, descriptor) = lookup(mem, L1, va)?;
        Some(if level == 3 {
            descriptor
        } else {
            page_of_block(descriptor, va & !(PAGE - 1))
        })
    }

    /// Every page of `[from, to)` maps as before, but those of `range`, which have
    /// `access`'s rights (or, without an access, are unchanged too).
    fn assert_only_range_changed(
        before: &Fake,
        after: &Fake,
        from: u64,
        to: u64,
        range: Range,
        access: Option<PageAccess>,
    ) {
        for va in (from..to).step_by(PAGE as usize) {
            let old = page_at(before, va);
            let new = page_at(after, va);
            match (access, range.contains(va)) {
                (Some(access), true) => {
                    assert_eq!(new, old.map(|d| page_with_access(d, access)), "{va:#x}");
                    assert_eq!(lookup(after, L1, va).map(|(level, _)| level), Some(3));
                }
                _ => assert_eq!(new, old, "{va:#x}"),
            }
        }
    }

    fn range(start: u64, len: u64) -> Range {
        Range::from_base_size(start, len)
    }

    #[test]
    fn pages_keep_the_attributes_of_their_block() {
        // An unusual block: Normal (index 1), inner shareable, AF, nG, PXN, UXN, software
        // bits 55 and 58, the contiguous hint and nT (bit 16): all but the last two survive.
        let attributes = (ATTR_NORMAL << bits::ATTR_INDEX_SHIFT)
            | bits::INNER_SHAREABLE
            | bits::ACCESSED
            | (1 << 11)
            | bits::PXN
            | bits::UXN
            | (1 << 55)
            | (1 << 58);
        let block = 0x8000_0000 | attributes | bits::CONTIGUOUS | (1 << 16) | bits::VALID;
        assert!(is_block(block) && !is_table(block));
        assert_eq!(descriptor_attributes(block), attributes);
        let page = page_of_block(block, 0x8123_4000);
        assert_eq!(page, 0x8123_4000 | attributes | 0b11);
        let l2 = l2_block_of_l1_block(block, 0x8123_4000);
        assert_eq!(l2, 0x8120_0000 | attributes | 0b01);
        assert_eq!(page_of_block(l2, 0x8123_4000), page);
        // The board's own RAM block gives a read-write page; the image's pages agree.
        assert_eq!(
            page_of_block(super::block(0x4000_0000, Access::ReadWrite), 0x4000_1000),
            super::page(0x4000_1000, Access::ReadWrite)
        );
    }

    #[test]
    fn rights_change_only_validity_and_ap2() {
        let rw = super::page(0x4010_0000, Access::ReadWrite);
        let ro = page_with_access(rw, PageAccess::ReadOnly);
        let none = page_with_access(rw, PageAccess::None);
        assert_eq!(ro, super::page(0x4010_0000, Access::ReadOnly));
        assert_eq!(none, rw & !bits::VALID);
        assert_eq!(page_with_access(none, PageAccess::ReadWrite), rw);
        assert_eq!(page_with_access(ro, PageAccess::ReadWrite), rw);
        assert_eq!(
            page_with_access(page_with_access(ro, PageAccess::None), PageAccess::ReadOnly),
            ro
        );
        assert_eq!(access_of(rw), PageAccess::ReadWrite);
        assert_eq!(access_of(ro), PageAccess::ReadOnly);
        assert_eq!(access_of(none), PageAccess::None);
        assert_eq!(
            access_of(block(0x4000_0000, Access::ReadWrite)),
            PageAccess::ReadWrite
        );
    }

    #[test]
    fn ranges_are_checked() {
        let regions = [
            MemoryRegion {
                base: 0x4010_0000,
                size: MIB,
            },
            MemoryRegion {
                base: 0x4023_5000,
                size: 0x4400_0000 - 0x4023_5000,
            },
            MemoryRegion {
                base: 0x4400_0000,
                size: MIB,
            },
        ];
        let ok = |start: u64, len: u64| checked_range(&regions, start as usize, len as usize);
        assert_eq!(ok(0x4010_0000, PAGE), Ok(range(0x4010_0000, PAGE)));
        assert_eq!(ok(0x4010_0001, PAGE), Err(ProtectError::Unaligned));
        assert_eq!(ok(0x4010_0000, 100), Err(ProtectError::Unaligned));
        assert_eq!(ok(0x4010_0000, 0), Err(ProtectError::Unaligned));
        assert_eq!(
            ok(0x4020_0000, PAGE),
            Err(ProtectError::NotRam),
            "the image"
        );
        assert_eq!(ok(0x0900_0000, PAGE), Err(ProtectError::NotRam), "MMIO");
        assert_eq!(ok(0, PAGE), Err(ProtectError::NotRam), "the flash window");
        assert_eq!(
            ok(0x401f_f000, 2 * PAGE),
            Err(ProtectError::NotRam),
            "crosses out"
        );
        assert_eq!(
            ok(0x4000_0000, 2 * MIB),
            Err(ProtectError::NotRam),
            "starts before"
        );
        assert_eq!(
            ok(0x43ff_f000, 2 * PAGE),
            Ok(range(0x43ff_f000, 2 * PAGE)),
            "adjacent regions"
        );
        assert_eq!(
            ok(0x4400_0000, MIB + PAGE),
            Err(ProtectError::NotRam),
            "past the end"
        );
        assert_eq!(
            ok(u64::MAX - 0xfff, PAGE),
            Err(ProtectError::NotRam),
            "wraps"
        );
        assert_eq!(
            ok(0x4010_0000, u64::MAX - 0xfff),
            Err(ProtectError::NotRam),
            "wraps"
        );
        assert_eq!(
            checked_range(&[], 0x4010_0000, 4096),
            Err(ProtectError::NotRam)
        );
    }

    #[test]
    fn split_states_cover_their_block() {
        assert!(!split_covers(0, 0));
        let small = split_state(0x4060_0000, L2_BLOCK);
        assert!(split_covers(small, 0x4060_0000));
        assert!(split_covers(small, 0x407f_ffff));
        assert!(!split_covers(small, 0x4080_0000));
        assert!(!split_covers(small, 0x405f_ffff));
        let big = split_state(GIB2, L1_BLOCK);
        assert!(split_covers(big, GIB2));
        assert!(split_covers(big, 0xbfff_ffff));
        assert!(!split_covers(big, 0xc000_0000));
        assert!(!split_covers(big, 0x7fff_ffff));
    }

    #[test]
    fn first_page_of_a_2mib_block_splits_it_once() {
        let mut mem = board();
        let before = mem.clone();
        let page = range(0x4060_3000, PAGE);
        assert_eq!(
            tables_needed(&mem, L1, page),
            Ok(TablesNeeded { l2: 0, l3: 1 })
        );
        set_access(&mut mem, L1, page, Some(PageAccess::None)).unwrap();
        let l3 = mem.allocated[0];
        assert_eq!(mem.splits, [(L2, 3, table(l3), 0x4060_0000, L2_BLOCK)]);
        assert!(
            mem.invalidated.is_empty(),
            "the break-before-make invalidated the block"
        );
        assert_only_range_changed(
            &before,
            &mem,
            0x4000_0000,
            0x4100_0000,
            page,
            Some(PageAccess::None),
        );
        // Same block again: no table, no split, the page changed in place and invalidated.
        let split = mem.clone();
        assert_eq!(tables_needed(&mem, L1, page), Ok(TablesNeeded::default()));
        set_access(&mut mem, L1, page, Some(PageAccess::ReadOnly)).unwrap();
        assert_eq!(mem.allocated.len(), 1);
        assert_eq!(mem.splits.len(), 1);
        assert_eq!(mem.invalidated, [page]);
        assert_only_range_changed(
            &split,
            &mem,
            0x4060_0000,
            0x4080_0000,
            page,
            Some(PageAccess::ReadOnly),
        );
        // Back to read-write: the table stays, the pages are as the block mapped them.
        set_access(&mut mem, L1, page, Some(PageAccess::ReadWrite)).unwrap();
        assert_only_range_changed(
            &before,
            &mem,
            0x4000_0000,
            0x4100_0000,
            page,
            Some(PageAccess::ReadWrite),
        );
        assert_eq!(lookup(&mem, L1, 0x4060_3000).unwrap().0, 3);
        // Asking for what is already there changes nothing and invalidates nothing.
        set_access(&mut mem, L1, page, Some(PageAccess::ReadWrite)).unwrap();
        assert_eq!(mem.invalidated.len(), 2);
    }

    #[test]
    fn a_range_across_a_2mib_boundary_splits_both_blocks() {
        let mut mem = board();
        let before = mem.clone();
        let across = range(0x407f_e000, 4 * PAGE);
        assert_eq!(
            tables_needed(&mem, L1, across),
            Ok(TablesNeeded { l2: 0, l3: 2 })
        );
        set_access(&mut mem, L1, across, Some(PageAccess::ReadOnly)).unwrap();
        let blocks: Vec<_> = mem.splits.iter().map(|s| (s.1, s.3)).collect();
        assert_eq!(blocks, [(3, 0x4060_0000), (4, 0x4080_0000)]);
        assert_only_range_changed(
            &before,
            &mem,
            0x4040_0000,
            0x40a0_0000,
            across,
            Some(PageAccess::ReadOnly),
        );
    }

    #[test]
    fn the_free_pages_after_the_image_change_in_place() {
        // The image's 2 MiB block has a level-3 table since boot.
        let mut mem = board();
        let before = mem.clone();
        let free = range(BASE + 0x40_000, 2 * PAGE);
        assert_eq!(tables_needed(&mem, L1, free), Ok(TablesNeeded::default()));
        set_access(&mut mem, L1, free, Some(PageAccess::None)).unwrap();
        assert!(mem.splits.is_empty() && mem.allocated.is_empty());
        assert_eq!(mem.invalidated, [free]);
        assert_only_range_changed(
            &before,
            &mem,
            BASE,
            BASE + L2_BLOCK,
            free,
            Some(PageAccess::None),
        );
    }

    #[test]
    fn a_1gib_block_becomes_a_level_2_table_in_one_break() {
        let mut mem = board();
        let before = mem.clone();
        let page = range(GIB2 + 0x1234_5000, PAGE);
        assert_eq!(
            tables_needed(&mem, L1, page),
            Ok(TablesNeeded { l2: 1, l3: 1 })
        );
        set_access(&mut mem, L1, page, Some(PageAccess::None)).unwrap();
        // Level-2 table allocated first (outside GiB 2), then the level-3 table.
        let (l2, l3) = (mem.allocated[0], mem.allocated[1]);
        assert_eq!(mem.splits, [(L1, 2, table(l2), GIB2, L1_BLOCK)]);
        let l2_table = mem.tables[&l2];
        for (index, &entry) in l2_table.iter().enumerate() {
            let address = GIB2 + index as u64 * L2_BLOCK;
            if index == 0x1234_5000 / L2_BLOCK as usize {
                assert_eq!(entry, table(l3));
            } else {
                assert_eq!(entry, block(address, Access::ReadWrite), "{address:#x}");
            }
        }
        assert_only_range_changed(
            &before,
            &mem,
            GIB2,
            GIB2 + L1_BLOCK,
            page,
            Some(PageAccess::None),
        );
        // Another 2 MiB of that GiB: now a block in a level-2 table.
        let next = range(GIB2 + 0x2000_0000, PAGE);
        assert_eq!(
            tables_needed(&mem, L1, next),
            Ok(TablesNeeded { l2: 0, l3: 1 })
        );
        let split = mem.clone();
        set_access(&mut mem, L1, next, Some(PageAccess::ReadOnly)).unwrap();
        assert_eq!(
            mem.splits[1],
            (
                l2,
                256,
                table(mem.allocated[2]),
                GIB2 + 0x2000_0000,
                L2_BLOCK
            )
        );
        assert_only_range_changed(
            &split,
            &mem,
            GIB2,
            GIB2 + L1_BLOCK,
            next,
            Some(PageAccess::ReadOnly),
        );
    }

    #[test]
    fn a_level_2_table_inside_its_own_gib_gets_its_block_split_too() {
        let mut mem = board();
        let before = mem.clone();
        let l2 = GIB2 + 0x60_5000; // in the GiB's fourth 2 MiB block
        mem.script = vec![l2];
        let page = range(GIB2 + 0x1000_0000, PAGE);
        assert_eq!(own_block_tables(&mem, L1, page, [l2]), 1);
        assert_eq!(own_block_tables(&mem, L1, page, [0x4_0000_0000]), 0);
        set_access(&mut mem, L1, page, Some(PageAccess::None)).unwrap();
        assert_eq!(mem.allocated.len(), 3);
        assert!(
            is_table(mem.tables[&l2][3]),
            "the table's own block has level-3 pages"
        );
        assert!(is_table(mem.tables[&l2][128]));
        assert!(is_block(mem.tables[&l2][4]));
        assert_eq!(mem.splits.len(), 1);
        assert_only_range_changed(
            &before,
            &mem,
            GIB2,
            GIB2 + L1_BLOCK,
            page,
            Some(PageAccess::None),
        );
        // A later split in that GiB writes the level-2 table through a page mapping.
        assert_eq!(lookup(&mem, L1, l2).unwrap().0, 3);

        // When the range splits that block anyway, no extra table.
        let mut mem = board();
        let l2 = GIB2 + 0x1000_8000;
        mem.script = vec![l2];
        assert_eq!(own_block_tables(&mem, L1, page, [l2]), 0);
        set_access(&mut mem, L1, page, Some(PageAccess::None)).unwrap();
        assert_eq!(mem.allocated.len(), 2);
    }

    #[test]
    fn a_range_across_gibs_splits_each_part() {
        let mut mem = board();
        let before = mem.clone();
        // The last 2 pages of GiB 1 (a level-2 table) and the first 2 of GiB 2 (a block).
        let across = range(GIB2 - 2 * PAGE, 4 * PAGE);
        assert_eq!(
            tables_needed(&mem, L1, across),
            Ok(TablesNeeded { l2: 1, l3: 2 })
        );
        set_access(&mut mem, L1, across, Some(PageAccess::ReadOnly)).unwrap();
        assert_eq!(mem.splits.len(), 2);
        assert_eq!(
            (mem.splits[0].3, mem.splits[0].4),
            (GIB2 - L2_BLOCK, L2_BLOCK)
        );
        assert_eq!((mem.splits[1].3, mem.splits[1].4), (GIB2, L1_BLOCK));
        assert_only_range_changed(
            &before,
            &mem,
            GIB2 - 4 * MIB,
            GIB2 + 4 * MIB,
            across,
            Some(PageAccess::ReadOnly),
        );
    }

    #[test]
    fn out_of_tables_at_any_point_changes_nothing() {
        // Needs 1 + 3 tables: GiB 2's level-2 table, 2 level-3 tables there, 1 in GiB 1.
        let across = range(GIB2 - PAGE, L2_BLOCK + 2 * PAGE);
        let needed = tables_needed(&board(), L1, across).unwrap();
        assert_eq!(needed, TablesNeeded { l2: 1, l3: 3 });
        for budget in 0..needed.total() {
            let mut mem = board();
            mem.budget = Some(budget);
            let before = mem.tables.clone();
            assert_eq!(
                set_access(&mut mem, L1, across, Some(PageAccess::None)),
                Err(ProtectError::OutOfTables),
                "budget {budget}"
            );
            assert_eq!(mem.tables, before, "budget {budget}: every table as it was");
            assert_eq!(mem.freed.len(), budget, "budget {budget}: all freed");
            assert!(mem.splits.is_empty() && mem.invalidated.is_empty());
        }
        // The extra table of a level-2 table inside its GiB counts too.
        let mut mem = board();
        mem.script = vec![GIB2 + 0x60_5000];
        mem.budget = Some(needed.total());
        let before = mem.tables.clone();
        assert_eq!(
            set_access(&mut mem, L1, across, Some(PageAccess::None)),
            Err(ProtectError::OutOfTables)
        );
        assert_eq!(mem.tables, before);
        assert_eq!(mem.freed.len(), needed.total());
        let mut mem = board();
        mem.budget = Some(needed.total());
        assert_eq!(
            set_access(&mut mem, L1, across, Some(PageAccess::None)),
            Ok(())
        );
    }

    #[test]
    fn what_the_tables_do_not_map_as_ram_is_refused() {
        let mut mem = board();
        let before = mem.tables.clone();
        for bad in [
            range(0x1_0000_0000, PAGE),             // GiB 4: no RAM, unmapped
            range(0xffff_f000, 2 * PAGE),           // RAM, then unmapped
            range(BASE + 0x10_000, PAGE),           // a stack guard page
            range(ENTRIES as u64 * L1_BLOCK, PAGE), // above the 39-bit VA range
            range(0, PAGE),                         // the flash window: unmapped
            range(0x07ff_f000, 2 * PAGE),           // the flash window, then the GIC
            range(0x0900_0000, PAGE),               // a device block (PL011)
            range(0x3fff_f000, 2 * PAGE),           // devices, then RAM
            range(0, 2 * L1_BLOCK),                 // the low GiB and the image's
        ] {
            assert_eq!(
                tables_needed(&mem, L1, bad),
                Err(ProtectError::NotRam),
                "{bad:x?}"
            );
            assert_eq!(
                set_access(&mut mem, L1, bad, Some(PageAccess::None)),
                Err(ProtectError::NotRam)
            );
        }
        assert_eq!(
            set_access(
                &mut mem,
                L1,
                range(0x4060_0800, PAGE),
                Some(PageAccess::None)
            ),
            Err(ProtectError::Unaligned)
        );
        assert_eq!(
            set_access(&mut mem, L1, range(0x4060_0000, 0), Some(PageAccess::None)),
            Err(ProtectError::Unaligned)
        );
        assert_eq!(mem.tables, before);
        assert!(mem.allocated.is_empty());
    }

    #[test]
    fn without_an_access_pages_are_split_but_keep_their_rights() {
        let mut mem = board();
        let before = mem.clone();
        let stack = range(GIB2 + 0x1ff_c000, 6 * PAGE);
        set_access(&mut mem, L1, stack, None).unwrap();
        assert_eq!(mem.allocated.len(), 3);
        assert_only_range_changed(&before, &mem, GIB2, GIB2 + 8 * MIB, stack, None);
        for va in [stack.start, stack.end - PAGE] {
            assert_eq!(lookup(&mem, L1, va).unwrap().0, 3);
        }
        // Nothing left to split: no table, no write, no invalidation.
        let split = mem.clone();
        set_access(&mut mem, L1, stack, None).unwrap();
        assert_eq!(mem.tables, split.tables);
        assert!(mem.invalidated.is_empty());
    }

    #[test]
    fn lookup_finds_the_leaf() {
        let mem = board();
        assert_eq!(
            lookup(&mem, L1, 0x0900_0000),
            Some((2, block(0x0900_0000, Access::Device)))
        );
        assert_eq!(lookup(&mem, L1, 0x10), None, "NULL: the flash window");
        assert_eq!(
            lookup(&mem, L1, 0x4000_0000),
            Some((2, block(0x4000_0000, Access::ReadWrite)))
        );
        assert_eq!(
            lookup(&mem, L1, BASE),
            Some((3, super::page(BASE, Access::Code)))
        );
        assert_eq!(
            lookup(&mem, L1, BASE + 0x10_000),
            Some((3, 0)),
            "guard page"
        );
        assert_eq!(
            lookup(&mem, L1, GIB2 + 5),
            Some((1, block(GIB2, Access::ReadWrite)))
        );
        assert_eq!(lookup(&mem, L1, 0x1_0000_0000), None);
        assert_eq!(lookup(&mem, L1, 1 << 39), None);
    }
}
