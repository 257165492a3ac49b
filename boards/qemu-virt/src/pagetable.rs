//! The identity map: translation-table descriptors and how the tables are filled.
//!
//! The board runs with a 4 KiB granule and 39-bit virtual addresses (`T0SZ = 25`), so a walk
//! starts at level 1 and one table of 512 entries covers the first 512 GiB of physical
//! address space, which holds all of `virt`'s RAM and low MMIO:
//!
//! - level 1 entry 0: the low 1 GiB, where `virt` puts its devices (flash, GIC, PL011, RTC,
//!   virtio-mmio, PCIe PIO/ECAM), as one Device-nGnRE block, never executable;
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

use crate::memmap::Range;

/// Entries in a translation table (4 KiB granule).
pub const ENTRIES: usize = 512;
/// Bytes one level-1 entry maps.
pub const L1_BLOCK: u64 = 1 << 30;
/// Bytes one level-2 entry maps.
pub const L2_BLOCK: u64 = 1 << 21;
/// Bytes one level-3 entry maps.
pub const PAGE: u64 = 1 << 12;
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

/// The translation tables: a level-1 table, the level-2 table of the image's GiB and the
/// level-3 tables of the image, with the physical addresses the descriptors point to.
pub struct Tables<'a> {
    /// The level-1 table (`TTBR0_EL1`).
    pub l1: &'a mut [u64; ENTRIES],
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
    /// Fills every table: MMIO, the image's GiB, the image page by page (see the module
    /// docs). Other GiBs stay unmapped until [`Tables::map_ram`].
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
        self.l1[0] = block(0, Access::Device);
        self.l1[gib as usize] = table(self.l2_address);

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

/// Whether the `size` bytes at `base` lie in the low GiB, the Device-nGnRE block of the
/// identity map where `virt` puts its device registers (what the board answers to
/// [`uk_hal::Platform::mmio_is_mapped`]). An empty or wrapping range is not.
pub const fn is_device_mapped(base: u64, size: u64) -> bool {
    match base.checked_add(size) {
        Some(end) => size > 0 && end <= L1_BLOCK,
        None => false,
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_window_is_the_low_gib() {
        assert!(is_device_mapped(0x0a00_0000, 0x200), "virtio-mmio slot 0");
        assert!(is_device_mapped(0x3fff_f000, 0x1000));
        assert!(!is_device_mapped(0x3fff_f000, 0x1001), "crosses into RAM");
        assert!(
            !is_device_mapped(0x40_1000_0000, 0x1000),
            "high PCIe window"
        );
        assert!(!is_device_mapped(0x1000, 0));
        assert!(!is_device_mapped(u64::MAX, 2));
    }

    const BASE: u64 = 0x4020_0000;

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
        l2: Box<[u64; ENTRIES]>,
        l3: Vec<[u64; ENTRIES]>,
    }

    impl Owned {
        fn new(l3: usize) -> Self {
            Self {
                l1: Box::new([7; ENTRIES]),
                l2: Box::new([7; ENTRIES]),
                l3: vec![[7; ENTRIES]; l3],
            }
        }
        fn tables(&mut self) -> Tables<'_> {
            Tables {
                l2_address: 0x4030_1000,
                l3_address: 0x4030_2000,
                l1: &mut self.l1,
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
        assert_eq!(l1 & bits::ADDRESS, 0x4030_1000);
        let l2 = t.l2[((va >> 21) & 511) as usize];
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
        // MMIO: PL011 at 0x0900_0000 through the device block.
        assert_eq!(walk(&t, 0x0900_0000), Some(block(0, Access::Device)));
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
