//! Usable RAM from the boot memory map: pure functions over plain data.
//!
//! The PVH start info hands over the firmware's E820-style table, which on QEMU is the raw
//! table of the machine: it lists low memory as one usable range and says nothing about the
//! image, its stacks or its page tables. [`carve`] turns it into what
//! [`uk_hal::Platform::memory_regions`] promises: usable (type 1) RAM only, minus everything
//! the board still uses, page-aligned, sorted and disjoint.
//!
//! The rules, in order:
//!
//! 1. only type-1 ([`E820_RAM`]) entries are usable; where a usable entry overlaps an entry of
//!    any other type, the other type wins (a firmware table may overlap itself);
//! 2. everything below [`LOW_MEMORY_END`] (1 MiB) is dropped: the real-mode IVT, BIOS data,
//!    EBDA, option ROMs and the boot information itself live there, and 640 KiB is not worth
//!    the risk;
//! 3. the caller's reserved ranges (the image with its stacks and page tables, boot modules)
//!    are cut out;
//! 4. what lies at or above the end of the identity map is dropped and counted in
//!    [`Carved::unmapped_bytes`] so the board can say so on the console;
//! 5. each piece is shrunk to whole 4 KiB pages; pieces that vanish are dropped;
//! 6. at most `out.len()` regions are kept; extra (smallest-address-last) ones are counted in
//!    [`Carved::overflow`].

use uk_hal::MemoryRegion;

/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// Everything below this address is left out of the usable regions.
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// Granule the regions are aligned to.
pub const PAGE_SIZE: u64 = 4096;

/// One entry of the boot memory map (`hvm_memmap_table_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Physical start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (1 = usable RAM, 2 = reserved, 3 = ACPI reclaimable, ...).
    pub kind: u32,
}

/// A half-open physical range `[start, end)` the board keeps for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// The range `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Range { start, end }
    }
}

/// Result of [`carve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Carved {
    /// Number of regions written to the front of `out`.
    pub count: usize,
    /// Bytes of usable RAM at or above the mapped limit that were left out.
    pub unmapped_bytes: u64,
    /// Regions dropped because `out` was full.
    pub overflow: usize,
}

/// Computes the usable regions of `entries` (see the module docs for the rules) into `out`.
///
/// `mapped_end` is the end of the identity map: nothing at or above it is reported.
///
/// `entries` is walked twice (usable RAM first, then everything else), so the boot code can
/// pass an iterator that parses the loader's table in place.
pub fn carve<I>(entries: I, reserved: &[Range], mapped_end: u64, out: &mut [MemoryRegion]) -> Carved
where
    I: IntoIterator<Item = RawEntry>,
    I::IntoIter: Clone,
{
    let entries = entries.into_iter();
    let mut set = RegionSet {
        out,
        count: 0,
        overflow: 0,
    };
    let mut unmapped_bytes = 0;

    for entry in entries.clone().filter(|e| e.kind == E820_RAM) {
        let end = entry.addr.saturating_add(entry.size);
        let start = entry.addr.max(LOW_MEMORY_END);
        if start >= end {
            continue;
        }
        if end > mapped_end {
            let cut = start.max(mapped_end);
            unmapped_bytes += end - cut;
        }
        set.add(start, end.min(mapped_end));
    }
    // Other types win over usable RAM, whatever their order in the table.
    for entry in entries.filter(|e| e.kind != E820_RAM) {
        set.remove(entry.addr, entry.addr.saturating_add(entry.size));
    }
    for range in reserved {
        set.remove(range.start, range.end);
    }
    set.align_to_pages();

    // Unmapped bytes also count usable RAM the other rules removed; that is harmless, the
    // number only tells the user how much RAM above the map was not used.
    Carved {
        count: set.count,
        unmapped_bytes,
        overflow: set.overflow,
    }
}

/// A sorted, disjoint set of ranges kept in a caller-provided slice.
struct RegionSet<'a> {
    out: &'a mut [MemoryRegion],
    count: usize,
    overflow: usize,
}

impl RegionSet<'_> {
    /// Adds `[start, end)`, merging it with every region it overlaps or touches.
    fn add(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // First region that ends at or after `start` (could merge), then all that begin at
        // or before `end`.
        let first = self.out[..self.count]
            .iter()
            .position(|r| r.end() >= start)
            .unwrap_or(self.count);
        let mut last = first;
        while last < self.count && self.out[last].base <= end {
            start = start.min(self.out[last].base);
            end = end.max(self.out[last].end());
            last += 1;
        }
        let merged = MemoryRegion {
            base: start,
            size: end - start,
        };
        if last > first {
            // Replace `first..last` by one region.
            self.out[first] = merged;
            self.out.copy_within(last..self.count, first + 1);
            self.count -= last - first - 1;
        } else {
            self.insert(first, merged);
        }
    }

    /// Removes `[start, end)` from every region.
    fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut i = 0;
        while i < self.count {
            let region = self.out[i];
            let (base, top) = (region.base, region.end());
            if top <= start || base >= end {
                i += 1;
                continue;
            }
            let keep_low = (base < start).then(|| MemoryRegion {
                base,
                size: start - base,
            });
            let keep_high = (top > end).then(|| MemoryRegion {
                base: end,
                size: top - end,
            });
            match (keep_low, keep_high) {
                (Some(low), Some(high)) => {
                    self.out[i] = low;
                    self.insert(i + 1, high);
                    i += 2;
                }
                (Some(piece), None) | (None, Some(piece)) => {
                    self.out[i] = piece;
                    i += 1;
                }
                (None, None) => self.delete(i),
            }
        }
    }

    /// Shrinks every region to whole pages and drops the ones left empty.
    fn align_to_pages(&mut self) {
        let mut i = 0;
        while i < self.count {
            let base = self.out[i].base.next_multiple_of(PAGE_SIZE);
            let end = self.out[i].end() & !(PAGE_SIZE - 1);
            if base < end {
                self.out[i] = MemoryRegion {
                    base,
                    size: end - base,
                };
                i += 1;
            } else {
                self.delete(i);
            }
        }
    }

    fn insert(&mut self, at: usize, region: MemoryRegion) {
        if self.count == self.out.len() {
            // Full: keep the lower addresses, drop the highest region.
            self.overflow += 1;
            if at == self.count {
                return;
            }
            self.count -= 1;
        }
        self.out.copy_within(at..self.count, at + 1);
        self.out[at] = region;
        self.count += 1;
    }

    fn delete(&mut self, at: usize) {
        self.out.copy_within(at + 1..self.count, at);
        self.count -= 1;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn ram(addr: u64, size: u64) -> RawEntry {
        RawEntry {
            addr,
            size,
            kind: E820_RAM,
        }
    }

    fn reserved(addr: u64, size: u64) -> RawEntry {
        RawEntry {
            addr,
            size,
            kind: 2,
        }
    }

    fn run(entries: &[RawEntry], keep: &[Range], mapped_end: u64) -> (Vec<(u64, u64)>, Carved) {
        let mut out = [MemoryRegion { base: 0, size: 0 }; 8];
        let carved = carve(entries.iter().copied(), keep, mapped_end, &mut out);
        let list = out[..carved.count]
            .iter()
            .map(|r| (r.base, r.end()))
            .collect();
        (list, carved)
    }

    fn assert_sorted_disjoint(list: &[(u64, u64)]) {
        for pair in list.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "not sorted/disjoint/merged: {list:x?}"
            );
        }
        for &(base, end) in list {
            assert!(base < end && base % PAGE_SIZE == 0 && end % PAGE_SIZE == 0);
        }
    }

    #[test]
    fn qemu_pc_64m_minus_image() {
        // What QEMU's PVH option ROM hands over for `-m 64M` on `pc`.
        let entries = [ram(0, 64 * MIB), reserved(0xfffc_0000, 0x4_0000)];
        let image = Range::new(MIB, MIB + 0x3_5000);
        let (list, carved) = run(&entries, &[image], 4 * GIB);
        assert_eq!(list, [(MIB + 0x3_5000, 64 * MIB)]);
        assert_eq!(carved.unmapped_bytes, 0);
        assert_eq!(carved.overflow, 0);
    }

    #[test]
    fn classic_e820_low_memory_dropped() {
        let entries = [
            ram(0, 0x9fc00),
            reserved(0x9fc00, 0x400),
            reserved(0xf0000, 0x10000),
            ram(MIB, 127 * MIB),
        ];
        let (list, _) = run(&entries, &[Range::new(MIB, 2 * MIB)], 4 * GIB);
        assert_eq!(list, [(2 * MIB, 128 * MIB)]);
    }

    #[test]
    fn unsorted_overlapping_and_touching_entries_merge() {
        let entries = [
            ram(8 * MIB, 8 * MIB),
            ram(2 * MIB, 4 * MIB),
            ram(5 * MIB, MIB),
            ram(6 * MIB, 2 * MIB),
        ];
        let (list, _) = run(&entries, &[], 4 * GIB);
        assert_eq!(list, [(2 * MIB, 16 * MIB)]);
    }

    #[test]
    fn reserved_entries_win_over_ram_in_any_order() {
        let entries = [
            reserved(3 * MIB, MIB),
            ram(2 * MIB, 4 * MIB),
            reserved(5 * MIB + 1, 10),
        ];
        let (list, _) = run(&entries, &[], 4 * GIB);
        // The unaligned reservation removes its whole page.
        assert_eq!(
            list,
            [
                (2 * MIB, 3 * MIB),
                (4 * MIB, 5 * MIB),
                (5 * MIB + PAGE_SIZE, 6 * MIB)
            ]
        );
    }

    #[test]
    fn unaligned_ram_is_shrunk_to_pages_and_tiny_pieces_vanish() {
        let entries = [ram(2 * MIB + 1, MIB), ram(8 * MIB + 10, 100)];
        let (list, _) = run(&entries, &[], 4 * GIB);
        assert_eq!(list, [(2 * MIB + PAGE_SIZE, 3 * MIB)]);
    }

    #[test]
    fn reserved_ranges_split_and_trim() {
        let entries = [ram(MIB, 15 * MIB)];
        let keep = [
            Range::new(MIB, 2 * MIB),
            Range::new(4 * MIB, 5 * MIB),
            Range::new(15 * MIB, 20 * MIB),
        ];
        let (list, _) = run(&entries, &keep, 4 * GIB);
        assert_eq!(list, [(2 * MIB, 4 * MIB), (5 * MIB, 15 * MIB)]);
    }

    #[test]
    fn ram_above_the_map_is_left_out_and_counted() {
        // `-m 5G` on pc: 3 GiB low, 2 GiB above 4 GiB.
        let entries = [ram(0, 3 * GIB), ram(4 * GIB, 2 * GIB)];
        let (list, carved) = run(&entries, &[], 4 * GIB);
        assert_eq!(list, [(MIB, 3 * GIB)]);
        assert_eq!(carved.unmapped_bytes, 2 * GIB);
        // A region straddling the limit is cut at the limit.
        let (list, carved) = run(&[ram(3 * GIB, 2 * GIB)], &[], 4 * GIB);
        assert_eq!(list, [(3 * GIB, 4 * GIB)]);
        assert_eq!(carved.unmapped_bytes, GIB);
        // Mapped with 1 GiB pages, it is all there.
        let (list, carved) = run(&entries, &[], 6 * GIB);
        assert_eq!(list, [(MIB, 3 * GIB), (4 * GIB, 6 * GIB)]);
        assert_eq!(carved.unmapped_bytes, 0);
    }

    #[test]
    fn zero_sized_and_wrapping_entries_are_harmless() {
        let entries = [
            ram(4 * MIB, 0),
            ram(u64::MAX - PAGE_SIZE, 10 * PAGE_SIZE),
            ram(2 * MIB, MIB),
        ];
        let (list, carved) = run(&entries, &[Range::new(9, 3)], 4 * GIB);
        assert_eq!(list, [(2 * MIB, 3 * MIB)]);
        assert!(carved.unmapped_bytes > 0);
    }

    #[test]
    fn too_many_regions_keep_the_lowest() {
        let entries: Vec<RawEntry> = (0..12).map(|i| ram((2 + 2 * i) * MIB, MIB)).collect();
        let (list, carved) = run(&entries, &[], 4 * GIB);
        assert_eq!(list.len(), 8);
        assert_eq!(carved.overflow, 4);
        assert_eq!(list[0], (2 * MIB, 3 * MIB));
        assert_eq!(list[7], (16 * MIB, 17 * MIB));
        assert_sorted_disjoint(&list);
    }

    #[test]
    fn empty_map_gives_no_regions() {
        let (list, carved) = run(&[], &[], 4 * GIB);
        assert!(list.is_empty());
        assert_eq!(carved, Carved::default());
    }

    /// A small deterministic fuzz: random maps against a byte-granular model.
    #[test]
    fn matches_a_page_bitmap_model() {
        let mut seed = 0x1234_5678_9abc_def0_u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        const PAGES: u64 = 512; // model 2 MiB in pages, shifted up by 1 MiB
        for _ in 0..500 {
            let mut entries = Vec::new();
            for _ in 0..next(6) + 1 {
                let addr = MIB / 2 + next(PAGES) * PAGE_SIZE + next(3) * 100;
                let size = next(PAGES / 2) * PAGE_SIZE + next(2) * 50;
                entries.push(RawEntry {
                    addr,
                    size,
                    kind: if next(4) == 0 { 2 } else { 1 },
                });
            }
            let keep = [Range::new(
                MIB + next(PAGES) * PAGE_SIZE,
                MIB + next(PAGES) * PAGE_SIZE,
            )];
            let mapped_end = MIB + next(PAGES + 64) * PAGE_SIZE;
            let (list, _) = run(&entries, &keep, mapped_end);

            // Model: a page is usable if fully covered by RAM, not touched by any other type
            // or the kept range, at or above 1 MiB and below the mapped end.
            let mut expected = Vec::new();
            for page in 0..2 * PAGES {
                let (lo, hi) = (page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
                // The union of RAM entries covers the page iff every candidate for its
                // first uncovered byte (its start, or the end of an entry inside it) is
                // inside some entry.
                let inside = |b: u64| {
                    entries
                        .iter()
                        .any(|e| e.kind == 1 && e.addr <= b && b < e.addr + e.size)
                };
                let covered = inside(lo)
                    && entries
                        .iter()
                        .map(|e| e.addr + e.size)
                        .filter(|&end| lo < end && end < hi)
                        .all(inside);
                let touched = entries
                    .iter()
                    .filter(|e| e.kind != 1)
                    .any(|e| e.size > 0 && e.addr < hi && lo < e.addr + e.size)
                    || (keep[0].start < keep[0].end && keep[0].start < hi && lo < keep[0].end);
                if covered && !touched && lo >= MIB && hi <= mapped_end {
                    expected.push(page);
                }
            }
            let got: Vec<u64> = list
                .iter()
                .flat_map(|&(b, e)| (b / PAGE_SIZE..e / PAGE_SIZE).collect::<Vec<_>>())
                .collect();
            if list.len() < 8 {
                assert_eq!(
                    got, expected,
                    "entries {entries:x?} keep {keep:x?} end {mapped_end:#x}"
                );
            }
            assert_sorted_disjoint(&list);
        }
    }
}
