//! Carving the usable memory map: RAM ranges minus reserved ranges.
//!
//! The device tree lists RAM (`/memory` nodes); the board knows what is already taken (the
//! image with its stacks and page tables, the device tree blob itself, `/memreserve/` entries
//! and `/reserved-memory` children). [`usable`] subtracts one from the other and hands out
//! whole pages, sorted and disjoint, as the allocators expect. Everything here is fixed-size
//! (no allocator exists yet when it runs) and pure, so it is tested on the host.

use uk_hal::MemoryRegion;

/// Granule the usable regions are trimmed to.
pub const PAGE_SIZE: u64 = 4096;

/// Most usable regions kept; further ones are dropped (and counted).
pub const MAX_REGIONS: usize = 32;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// The range of `size` bytes at `base`, clamped at the top of the address space.
    pub const fn from_base_size(base: u64, size: u64) -> Self {
        Self {
            start: base,
            end: base.saturating_add(size),
        }
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `address` lies in the range.
    pub const fn contains(&self, address: u64) -> bool {
        self.start <= address && address < self.end
    }
}

/// A fixed-capacity list of usable memory regions, sorted by address and disjoint.
#[derive(Clone, Debug)]
pub struct RegionList {
    regions: [MemoryRegion; MAX_REGIONS],
    len: usize,
    dropped: usize,
}

impl RegionList {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            regions: [MemoryRegion { base: 0, size: 0 }; MAX_REGIONS],
            len: 0,
            dropped: 0,
        }
    }

    /// The regions, in ascending address order.
    pub fn as_slice(&self) -> &[MemoryRegion] {
        &self.regions[..self.len]
    }

    /// How many regions did not fit in [`MAX_REGIONS`] and were left out.
    pub const fn dropped(&self) -> usize {
        self.dropped
    }

    /// Total bytes over all regions.
    pub fn total_bytes(&self) -> u64 {
        self.as_slice().iter().map(|r| r.size).sum()
    }

    /// Appends `range` trimmed inwards to whole pages, if anything is left of it.
    fn push_pages(&mut self, range: Range) {
        let start = range.start.checked_next_multiple_of(PAGE_SIZE);
        let end = range.end - range.end % PAGE_SIZE;
        let Some(start) = start.filter(|&s| s < end) else {
            return;
        };
        if self.len == MAX_REGIONS {
            self.dropped += 1;
            return;
        }
        self.regions[self.len] = MemoryRegion {
            base: start,
            size: end - start,
        };
        self.len += 1;
    }
}

impl Default for RegionList {
    fn default() -> Self {
        Self::new()
    }
}

/// Sorts `ranges` by start address (insertion sort: the lists are a handful of entries and
/// this keeps the image small).
pub fn sort_by_start(ranges: &mut [Range]) {
    for i in 1..ranges.len() {
        let mut j = i;
        while j > 0 && ranges[j - 1].start > ranges[j].start {
            ranges.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Sorts `ranges`, merges overlapping or touching ones and drops empty ones, in place;
/// returns how many remain at the front of the slice.
pub fn normalize(ranges: &mut [Range]) -> usize {
    sort_by_start(ranges);
    let mut out = 0;
    for i in 0..ranges.len() {
        let r = ranges[i];
        if r.is_empty() {
            continue;
        }
        if out > 0 && r.start <= ranges[out - 1].end {
            ranges[out - 1].end = ranges[out - 1].end.max(r.end);
        } else {
            ranges[out] = r;
            out += 1;
        }
    }
    out
}

/// The usable memory: every byte of `ram` that no range of `reserved` covers, as whole
/// pages, sorted and disjoint. Both inputs may be unsorted and overlapping; they are sorted
/// in place.
pub fn usable(ram: &mut [Range], reserved: &mut [Range]) -> RegionList {
    let ram_len = normalize(ram);
    let reserved_len = normalize(reserved);
    let reserved = &reserved[..reserved_len];
    let mut list = RegionList::new();
    for r in &ram[..ram_len] {
        let mut cursor = r.start;
        for hole in reserved {
            if hole.end <= cursor {
                continue;
            }
            if hole.start >= r.end {
                break;
            }
            if hole.start > cursor {
                list.push_pages(Range {
                    start: cursor,
                    end: hole.start,
                });
            }
            cursor = hole.end;
            if cursor >= r.end {
                break;
            }
        }
        if cursor < r.end {
            list.push_pages(Range {
                start: cursor,
                end: r.end,
            });
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    fn regions(list: &RegionList) -> Vec<(u64, u64)> {
        list.as_slice().iter().map(|m| (m.base, m.end())).collect()
    }

    #[test]
    fn qemu_virt_layout() {
        // 64 MiB at 1 GiB; the DTB (1 MiB) at the start of RAM, the image at +2 MiB.
        let mut ram = [Range::from_base_size(0x4000_0000, 64 * MIB)];
        let mut reserved = [
            r(0x4020_0000, 0x4023_5000), // image, stacks, page tables
            Range::from_base_size(0x4000_0000, 0x10_0000), // device tree blob
        ];
        let list = usable(&mut ram, &mut reserved);
        assert_eq!(
            regions(&list),
            vec![(0x4010_0000, 0x4020_0000), (0x4023_5000, 0x4400_0000)]
        );
        assert_eq!(list.total_bytes(), 64 * MIB - MIB - 0x35000);
    }

    #[test]
    fn trims_to_whole_pages() {
        let mut ram = [r(0x1000, 0x10_0000)];
        let mut reserved = [r(0x1000, 0x1234), r(0x8000, 0x8001)];
        let list = usable(&mut ram, &mut reserved);
        assert_eq!(regions(&list), vec![(0x2000, 0x8000), (0x9000, 0x10_0000)]);
    }

    #[test]
    fn unsorted_overlapping_inputs() {
        let mut ram = [
            r(0x8000_0000, 0x9000_0000),
            r(0x4000_0000, 0x4800_0000),
            r(0x4400_0000, 0x5000_0000),
        ];
        let mut reserved = [
            r(0x8400_0000, 0x8420_0000),
            r(0x3000_0000, 0x4010_0000),
            r(0x4000_0000, 0x4000_1000),
        ];
        let list = usable(&mut ram, &mut reserved);
        assert_eq!(
            regions(&list),
            vec![
                (0x4010_0000, 0x5000_0000),
                (0x8000_0000, 0x8400_0000),
                (0x8420_0000, 0x9000_0000)
            ]
        );
        let s = list.as_slice();
        assert!(
            s.windows(2).all(|w| w[0].end() <= w[1].base),
            "sorted and disjoint"
        );
    }

    #[test]
    fn reserved_covering_everything_leaves_nothing() {
        let mut ram = [r(0x4000_0000, 0x4400_0000)];
        let mut reserved = [r(0, u64::MAX)];
        assert!(usable(&mut ram, &mut reserved).as_slice().is_empty());
    }

    #[test]
    fn empty_and_tiny_ranges_vanish() {
        let mut ram = [
            r(0x5000, 0x5000),
            r(0x1001, 0x1fff),
            r(0x10_0000, 0x10_2000),
        ];
        let list = usable(&mut ram, &mut []);
        assert_eq!(regions(&list), vec![(0x10_0000, 0x10_2000)]);
    }

    #[test]
    fn top_of_address_space_does_not_overflow() {
        let mut ram = [Range::from_base_size(u64::MAX - 0x2fff, u64::MAX)];
        assert_eq!(ram[0].end, u64::MAX);
        let list = usable(&mut ram, &mut []);
        assert_eq!(regions(&list), vec![(u64::MAX - 0x2fff, u64::MAX - 0xfff)]);
    }

    #[test]
    fn counts_what_does_not_fit() {
        // One RAM range punched by 40 holes gives 41 pieces; 32 are kept.
        let mut ram = [r(0, 100 * PAGE_SIZE)];
        let mut reserved: Vec<Range> = (0..40)
            .map(|i| Range::from_base_size((2 * i + 1) * PAGE_SIZE, PAGE_SIZE))
            .collect();
        let list = usable(&mut ram, &mut reserved);
        assert_eq!(list.as_slice().len(), MAX_REGIONS);
        assert_eq!(list.dropped(), 41 - MAX_REGIONS);
    }

    #[test]
    fn normalize_merges_touching() {
        let mut v = [r(10, 20), r(0, 10), r(30, 40), r(35, 36), r(50, 50)];
        let n = normalize(&mut v);
        assert_eq!(&v[..n], &[r(0, 20), r(30, 40)]);
    }
}
