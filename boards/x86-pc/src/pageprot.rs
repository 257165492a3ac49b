//! Page protection, the pure part: which page-table entries [`uk_hal::PageProtection`]
//! writes, how many tables a range needs, and the descriptor bits. Plain functions over
//! tables of 512 entries, tested on the host against fake table memory; the board's
//! `protection` module runs them on the live tables.
//!
//! # The tables
//!
//! The board identity-maps RAM from one PML4 entry, so the walk starts at the page
//! directory pointer table (the *root* here, 512 entries of 1 GiB): slots 0-3 point to the
//! four page directories of the first 4 GiB (2 MiB pages, built at entry), slots 4 and up
//! are 1 GiB pages (`arch::map_high_memory`). Boot has already split a few 2 MiB pages into
//! 4 KiB tables for its guard pages.
//!
//! # Setting rights
//!
//! [`protect`] gives the 4 KiB pages of a range their rights, all or nothing:
//!
//! 1. [`check_range`]: `Unaligned` for a misaligned start or length or a length of 0, then
//!    `NotRam` unless the range lies wholly inside one of the board's memory regions;
//! 2. [`tables_needed`]: every huge page the range touches whose rights differ from the
//!    requested ones needs a table (a 1 GiB page a page directory, plus a page table for
//!    each of its 2 MiB pages the range touches). A huge page that already has the
//!    requested rights is left as it is, so giving [`PageAccess::ReadWrite`] to memory
//!    nobody protected needs no table and cannot fail for lack of one;
//! 3. all those tables are allocated ([`TableAlloc`]) before any entry changes; if one is
//!    missing, the ones already taken are freed and the answer is
//!    [`ProtectError::OutOfTables`], with nothing changed;
//! 4. [`apply`] splits first: each huge page is replaced by a new table mapping exactly
//!    the same addresses with the same flags ([`split_1g_entry`], [`split_2m_entry`]),
//!    built completely before the entry that pointed to the huge page is switched to it
//!    ([`pointer_entry`]), then invalidated. A split changes no translation, so it is safe
//!    with the memory in use, and a split table stays afterwards;
//! 5. then the 4 KiB entries are written ([`leaf_entry`]): `None` clears the present bit,
//!    `ReadOnly` sets present and clears writable, `ReadWrite` sets both, as at boot. The
//!    address stays the page's own (identity), so a page keeps its frame through `None`.
//!    Each entry that changed is reported to the `invalidate` callback.

use uk_hal::{MemoryRegion, PROTECTION_PAGE, PageAccess, ProtectError};

use crate::tables::{PAGE_1G, PAGE_2M, PAGE_4K, PTE_HUGE, PTE_PRESENT, PTE_WRITABLE};

/// Entries in a page table of any level.
pub const ENTRIES: usize = 512;
/// A page table of any level.
pub type Table = [u64; ENTRIES];

/// Page table entry bit: user-accessible (the board maps nothing for user mode, but a split
/// keeps the bit as it was).
pub const PTE_USER: u64 = 1 << 2;
/// PAT bit of a 4 KiB page's entry (bit 7, where huge entries have [`PTE_HUGE`]).
pub const PTE_PAT_4K: u64 = 1 << 7;
/// PAT bit of a 2 MiB or 1 GiB page's entry (bit 12).
pub const PTE_PAT_HUGE: u64 = 1 << 12;
/// Address bits of an entry for a 4 KiB page or a table.
pub const ADDRESS_4K: u64 = 0x000f_ffff_ffff_f000;
/// Address bits of an entry for a 2 MiB page.
pub const ADDRESS_2M: u64 = 0x000f_ffff_ffe0_0000;
/// Address bits of an entry for a 1 GiB page.
pub const ADDRESS_1G: u64 = 0x000f_ffff_c000_0000;
/// Bits 52-63 of an entry (execute-disable, protection key, ignored bits): a split copies them.
const HIGH_FLAGS: u64 = 0xfff0_0000_0000_0000;
/// The end of what the root table can map: 512 GiB.
pub const MAPPED_LIMIT: u64 = ENTRIES as u64 * PAGE_1G;

const _: () = assert!(PROTECTION_PAGE as u64 == PAGE_4K);

/// Index into the table of the level whose pages are `1 << shift` bytes.
const fn index(addr: u64, shift: u32) -> usize {
    ((addr >> shift) & (ENTRIES as u64 - 1)) as usize
}

const fn present(entry: u64) -> bool {
    entry & PTE_PRESENT != 0
}

const fn huge(entry: u64) -> bool {
    entry & PTE_HUGE != 0
}

/// The rights an entry grants on its own: not present is [`PageAccess::None`], present
/// without the writable bit [`PageAccess::ReadOnly`], both [`PageAccess::ReadWrite`].
pub const fn access_of(entry: u64) -> PageAccess {
    if !present(entry) {
        PageAccess::None
    } else if entry & PTE_WRITABLE == 0 {
        PageAccess::ReadOnly
    } else {
        PageAccess::ReadWrite
    }
}

/// The 4 KiB entry for the identity-mapped `page` with the rights `access`, keeping every
/// other flag of `old` (caching, accessed/dirty, execute-disable, ...).
pub const fn leaf_entry(page: u64, old: u64, access: PageAccess) -> u64 {
    let flags = old & !ADDRESS_4K & !(PTE_PRESENT | PTE_WRITABLE);
    let rights = match access {
        PageAccess::None => 0,
        PageAccess::ReadOnly => PTE_PRESENT,
        PageAccess::ReadWrite => PTE_PRESENT | PTE_WRITABLE,
    };
    (page & ADDRESS_4K) | flags | rights
}

/// Entry `index` (0-511) of the page table that maps the 2 MiB page of entry `huge` in
/// 4 KiB pages: the same addresses and flags, with the PAT bit moved from bit 12 to bit 7
/// (where the huge entry has its page-size bit).
pub const fn split_2m_entry(huge: u64, index: usize) -> u64 {
    let pat = if huge & PTE_PAT_HUGE != 0 {
        PTE_PAT_4K
    } else {
        0
    };
    ((huge & ADDRESS_2M) + index as u64 * PAGE_4K)
        | (huge & 0xfff & !PTE_HUGE)
        | pat
        | (huge & HIGH_FLAGS)
}

/// Entry `index` (0-511) of the page directory that maps the 1 GiB page of entry `huge` in
/// 2 MiB pages: the same addresses and flags (the page-size and PAT bits sit alike at both
/// levels).
pub const fn split_1g_entry(huge: u64, index: usize) -> u64 {
    ((huge & ADDRESS_1G) + index as u64 * PAGE_2M) | (huge & 0x1fff) | (huge & HIGH_FLAGS)
}

/// The page table [`split_2m_entry`] fills.
pub fn split_2m(huge: u64) -> Table {
    core::array::from_fn(|i| split_2m_entry(huge, i))
}

/// The page directory [`split_1g_entry`] fills.
pub fn split_1g(huge: u64) -> Table {
    core::array::from_fn(|i| split_1g_entry(huge, i))
}

/// The entry that points to the table at `table`, which replaces the huge page of entry
/// `huge`: present and writable (the rights live in the new table's entries, and the
/// levels' rights combine), user-accessible if the huge page was.
pub const fn pointer_entry(table: u64, huge: u64) -> u64 {
    (table & ADDRESS_4K) | PTE_PRESENT | PTE_WRITABLE | (huge & PTE_USER)
}

/// Page-table memory: the entries of the tables, by the table's (physical = virtual)
/// address. On the board it is the live tables; on the host a map of fake tables.
pub trait TableMemory {
    /// Entry `index` (0-511) of the table at `table`.
    fn read(&self, table: u64, index: usize) -> u64;
    /// Sets entry `index` (0-511) of the table at `table` to `entry`. A write is visible to
    /// the page walker no earlier than every write before it.
    fn write(&mut self, table: u64, index: usize, entry: u64);
}

/// Where new page tables come from.
pub trait TableAlloc {
    /// A 4 KiB, 4 KiB-aligned table at a non-zero address, or `None` when there is no
    /// memory for one.
    fn alloc(&mut self) -> Option<u64>;
    /// Gives back a table [`TableAlloc::alloc`] returned.
    ///
    /// # Safety
    ///
    /// `table` came from this allocator's `alloc`, was not freed since and is not (or no
    /// longer) part of the page tables.
    unsafe fn free(&mut self, table: u64);
}

/// The range `[start, start + len)` as addresses, if [`PageProtection::set_access`] may
/// change it: [`ProtectError::Unaligned`] for a start or length that is not a multiple of
/// [`PROTECTION_PAGE`] or a length of 0, [`ProtectError::NotRam`] unless it lies wholly
/// inside one of `regions` (and below [`MAPPED_LIMIT`]). Overflow is `NotRam`.
///
/// [`PageProtection::set_access`]: uk_hal::PageProtection::set_access
pub fn check_range(
    regions: &[MemoryRegion],
    start: usize,
    len: usize,
) -> Result<(u64, u64), ProtectError> {
    if len == 0 || start % PROTECTION_PAGE != 0 || len % PROTECTION_PAGE != 0 {
        return Err(ProtectError::Unaligned);
    }
    let end = start.checked_add(len).ok_or(ProtectError::NotRam)?;
    let (start, end) = (start as u64, end as u64);
    let inside = end <= MAPPED_LIMIT
        && regions
            .iter()
            .any(|r| r.base <= start && end <= r.base.saturating_add(r.size));
    if inside {
        Ok((start, end))
    } else {
        Err(ProtectError::NotRam)
    }
}

/// Whether `addr` lies in one of `regions` (and below [`MAPPED_LIMIT`]).
pub fn in_ram(regions: &[MemoryRegion], addr: u64) -> bool {
    addr < MAPPED_LIMIT
        && regions
            .iter()
            .any(|r| r.base <= addr && addr - r.base < r.size)
}

/// The leaf entry that maps `addr` and the size of its page (4 KiB, 2 MiB or 1 GiB), or
/// the first not-present entry on the way and the size it would map. `None` at or above
/// [`MAPPED_LIMIT`].
pub fn leaf(mem: &impl TableMemory, root: u64, addr: u64) -> Option<(u64, u64)> {
    let (table, slot, size) = leaf_slot(mem, root, addr)?;
    Some((mem.read(table, slot), size))
}

/// Where [`leaf`]'s entry is: its table, its index there, and the size of its page.
pub fn leaf_slot(mem: &impl TableMemory, root: u64, addr: u64) -> Option<(u64, usize, u64)> {
    if addr >= MAPPED_LIMIT {
        return None;
    }
    let e1 = mem.read(root, index(addr, 30));
    if !present(e1) || huge(e1) {
        return Some((root, index(addr, 30), PAGE_1G));
    }
    let directory = e1 & ADDRESS_4K;
    let e2 = mem.read(directory, index(addr, 21));
    if !present(e2) || huge(e2) {
        return Some((directory, index(addr, 21), PAGE_2M));
    }
    Some((e2 & ADDRESS_4K, index(addr, 12), PAGE_4K))
}

/// The rights the tables give the page holding `addr` (below [`MAPPED_LIMIT`]; above it,
/// [`PageAccess::None`]). The tables above the leaf are always present and writable where
/// RAM is mapped, so the leaf decides.
pub fn access_at(mem: &impl TableMemory, root: u64, addr: u64) -> PageAccess {
    leaf(mem, root, addr).map_or(PageAccess::None, |(entry, _)| access_of(entry))
}

/// Calls `f` with each `step`-aligned block start in `[start, end)`'s blocks of `step`
/// bytes, and the part of the range in it.
fn blocks(start: u64, end: u64, step: u64, mut f: impl FnMut(u64, u64, u64)) {
    let mut block = start & !(step - 1);
    while block < end {
        f(block, start.max(block), end.min(block + step));
        block += step;
    }
}

/// How many tables setting `[start, end)` (page-aligned, below [`MAPPED_LIMIT`]) to
/// `access` needs: a page directory for each 1 GiB page and a page table for each 2 MiB
/// page (one a split 1 GiB page yields included) the range touches, whose rights differ
/// from `access`. [`ProtectError::NotRam`] if the range meets a not-present directory
/// entry (nothing the board maps as RAM).
pub fn tables_needed(
    mem: &impl TableMemory,
    root: u64,
    start: u64,
    end: u64,
    access: PageAccess,
) -> Result<usize, ProtectError> {
    if end > MAPPED_LIMIT || start >= end {
        return Err(ProtectError::NotRam);
    }
    let mut needed = 0;
    let mut result = Ok(());
    blocks(start, end, PAGE_1G, |gig, from, to| {
        let e1 = mem.read(root, index(gig, 30));
        if !present(e1) {
            result = Err(ProtectError::NotRam);
        } else if huge(e1) {
            if access_of(e1) != access {
                let mut chunks = 0;
                blocks(from, to, PAGE_2M, |_, _, _| chunks += 1);
                needed += 1 + chunks;
            }
        } else {
            blocks(from, to, PAGE_2M, |chunk, _, _| {
                let e2 = mem.read(e1 & ADDRESS_4K, index(chunk, 21));
                if !present(e2) {
                    result = Err(ProtectError::NotRam);
                } else if huge(e2) && access_of(e2) != access {
                    needed += 1;
                }
            });
        }
    });
    result.map(|()| needed)
}

/// Tables allocated ahead of [`apply`], kept as a stack threaded through their first entry
/// (so keeping them needs no memory of its own; [`apply`] overwrites every entry of a table
/// it uses).
#[derive(Debug, Default)]
pub struct FreshTables {
    top: u64,
    count: usize,
}

impl FreshTables {
    /// No tables.
    pub const fn new() -> Self {
        FreshTables { top: 0, count: 0 }
    }

    /// How many tables are kept.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether no table is kept.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Keeps `table` (non-zero, 4 KiB-aligned, owned by the caller until popped).
    pub fn push(&mut self, mem: &mut impl TableMemory, table: u64) {
        mem.write(table, 0, self.top);
        self.top = table;
        self.count += 1;
    }

    /// The table kept last, if any.
    pub fn pop(&mut self, mem: &impl TableMemory) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let table = self.top;
        self.top = mem.read(table, 0);
        self.count -= 1;
        Some(table)
    }
}

/// Fills the new table `table` with `entry(i)` for every index `i`.
fn fill(mem: &mut impl TableMemory, table: u64, entry: impl Fn(usize) -> u64) {
    for i in 0..ENTRIES {
        mem.write(table, i, entry(i));
    }
}

/// Gives the pages of `[start, end)` (page-aligned, below [`MAPPED_LIMIT`]) the rights
/// `access`, splitting huge pages with tables from `fresh`; returns how many 4 KiB entries
/// changed. Every changed entry (and every split huge page, by an address in it) is passed
/// to `invalidate` after it was written.
///
/// Splits come first, for the whole range; the 4 KiB entries only when every split
/// succeeded. So with fewer tables than [`tables_needed`] said, it fails with
/// [`ProtectError::OutOfTables`] having only split (which changes no translation), and
/// [`protect`] never lets that happen.
pub fn apply(
    mem: &mut impl TableMemory,
    root: u64,
    start: u64,
    end: u64,
    access: PageAccess,
    fresh: &mut FreshTables,
    invalidate: &mut dyn FnMut(u64),
) -> Result<usize, ProtectError> {
    if end > MAPPED_LIMIT || start >= end {
        return Err(ProtectError::NotRam);
    }
    // Pass 1: split every huge page whose rights differ.
    let mut result = Ok(());
    blocks(start, end, PAGE_1G, |gig, from, to| {
        if result.is_err() {
            return;
        }
        let slot = index(gig, 30);
        let mut e1 = mem.read(root, slot);
        if !present(e1) {
            result = Err(ProtectError::NotRam);
            return;
        }
        if huge(e1) {
            if access_of(e1) == access {
                return;
            }
            let Some(pd) = fresh.pop(mem) else {
                result = Err(ProtectError::OutOfTables);
                return;
            };
            fill(mem, pd, |i| split_1g_entry(e1, i));
            let pointer = pointer_entry(pd, e1);
            mem.write(root, slot, pointer);
            invalidate(gig);
            e1 = pointer;
        }
        let pd = e1 & ADDRESS_4K;
        blocks(from, to, PAGE_2M, |chunk, _, _| {
            if result.is_err() {
                return;
            }
            let slot = index(chunk, 21);
            let e2 = mem.read(pd, slot);
            if !present(e2) {
                result = Err(ProtectError::NotRam);
            } else if huge(e2) && access_of(e2) != access {
                let Some(pt) = fresh.pop(mem) else {
                    result = Err(ProtectError::OutOfTables);
                    return;
                };
                fill(mem, pt, |i| split_2m_entry(e2, i));
                mem.write(pd, slot, pointer_entry(pt, e2));
                invalidate(chunk);
            }
        });
    });
    result?;

    // Pass 2: the 4 KiB entries. A huge page left is one that has the rights already.
    let mut changed = 0;
    blocks(start, end, PAGE_1G, |gig, from, to| {
        let e1 = mem.read(root, index(gig, 30));
        if huge(e1) {
            return;
        }
        blocks(from, to, PAGE_2M, |chunk, from, to| {
            let e2 = mem.read(e1 & ADDRESS_4K, index(chunk, 21));
            if huge(e2) {
                return;
            }
            let pt = e2 & ADDRESS_4K;
            let mut page = from;
            while page < to {
                let slot = index(page, 12);
                let old = mem.read(pt, slot);
                let new = leaf_entry(page, old, access);
                if new != old {
                    mem.write(pt, slot, new);
                    invalidate(page);
                    changed += 1;
                }
                page += PAGE_4K;
            }
        });
    });
    Ok(changed)
}

/// What [`protect`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Tables allocated and installed (splits).
    pub tables: usize,
    /// 4 KiB entries changed.
    pub pages: usize,
}

/// [`uk_hal::PageProtection::set_access`] over `mem` with the root table at `root`: checks
/// the range against `regions`, counts the tables it needs, allocates them all from
/// `tables` (on failure frees those it got and returns [`ProtectError::OutOfTables`] with
/// nothing changed), then [`apply`]. The caller serialises calls and invalidates the TLB
/// entries of the addresses `invalidate` receives.
#[allow(clippy::too_many_arguments)]
pub fn protect(
    mem: &mut impl TableMemory,
    tables: &mut impl TableAlloc,
    root: u64,
    regions: &[MemoryRegion],
    start: usize,
    len: usize,
    access: PageAccess,
    invalidate: &mut dyn FnMut(u64),
) -> Result<Outcome, ProtectError> {
    let (start, end) = check_range(regions, start, len)?;
    let needed = tables_needed(mem, root, start, end, access)?;
    let mut fresh = FreshTables::new();
    while fresh.len() < needed {
        match tables.alloc() {
            Some(table) if table != 0 && table & !ADDRESS_4K == 0 => fresh.push(mem, table),
            other => {
                if let Some(table) = other {
                    // SAFETY: just allocated and never installed.
                    unsafe { tables.free(table) };
                }
                free_all(mem, tables, &mut fresh);
                return Err(ProtectError::OutOfTables);
            }
        }
    }
    let result = apply(mem, root, start, end, access, &mut fresh, invalidate);
    // Left over only if the tables changed since they were counted, which the caller's
    // lock rules out: give them back rather than leak them.
    let unused = fresh.len();
    free_all(mem, tables, &mut fresh);
    result.map(|pages| Outcome {
        tables: needed - unused,
        pages,
    })
}

fn free_all(mem: &impl TableMemory, tables: &mut impl TableAlloc, fresh: &mut FreshTables) {
    while let Some(table) = fresh.pop(mem) {
        // SAFETY: every table kept in `fresh` came from `tables.alloc()` and was not
        // installed (`apply` pops the ones it installs).
        unsafe { tables.free(table) };
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::tables;

    const G: u64 = PAGE_1G;
    const M2: u64 = PAGE_2M;
    const P: u64 = PAGE_4K;
    const ROOT: u64 = 0x7000_0000_0000;
    /// Where the fake allocator's tables start (far from the root and the boot tables).
    const FRESH_BASE: u64 = 0x8000_0000_0000;

    /// Fake page-table memory: tables by address; a read of a table that does not exist is
    /// a test failure (the walk followed a bad pointer).
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct FakeMem {
        tables: BTreeMap<u64, Box<Table>>,
    }

    impl TableMemory for FakeMem {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables
                .get(&table)
                .unwrap_or_else(|| panic!("read of table {table:#x}, which does not exist"))[index]
        }
        fn write(&mut self, table: u64, index: usize, entry: u64) {
            self.tables
                .entry(table)
                .or_insert_with(|| Box::new([0; ENTRIES]))[index] = entry;
        }
    }

    /// Fake table allocator: fresh addresses, a budget after which it fails, and a record
    /// of what is live.
    #[derive(Debug)]
    struct FakeAlloc {
        next: u64,
        budget: usize,
        live: BTreeSet<u64>,
        freed: usize,
    }

    impl FakeAlloc {
        fn new(budget: usize) -> Self {
            FakeAlloc {
                next: FRESH_BASE,
                budget,
                live: BTreeSet::new(),
                freed: 0,
            }
        }
    }

    impl TableAlloc for FakeAlloc {
        fn alloc(&mut self) -> Option<u64> {
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            let table = self.next;
            self.next += P;
            self.live.insert(table);
            Some(table)
        }
        unsafe fn free(&mut self, table: u64) {
            assert!(self.live.remove(&table), "free of {table:#x}, not live");
            self.freed += 1;
        }
    }

    /// The board's layout in small: the first 4 GiB in 2 MiB pages (four page directories
    /// at 0x1000..0x5000 of fake memory), the 2 MiB page at 2 MiB split at boot into a
    /// table at 0x6000 whose first page is unmapped (a guard page), and 1 GiB pages from
    /// 4 GiB to 8 GiB.
    fn board_tables() -> FakeMem {
        let mut mem = FakeMem::default();
        for slot in 0..4u64 {
            let pd = 0x1000 + slot * P;
            mem.write(ROOT, slot as usize, tables::table_entry(pd));
            for i in 0..ENTRIES {
                mem.write(pd, i, (slot * G + i as u64 * M2) | 0x83);
            }
        }
        let mut pt = [0; ENTRIES];
        tables::identity_4k(&mut pt, M2);
        pt[0] = 0;
        for (i, entry) in pt.iter().enumerate() {
            mem.write(0x6000, i, *entry);
        }
        mem.write(0x1000, 1, tables::table_entry(0x6000));
        for slot in 4..8u64 {
            mem.write(ROOT, slot as usize, tables::identity_1g(slot));
        }
        for slot in 8..ENTRIES {
            mem.write(ROOT, slot, 0);
        }
        mem
    }

    /// RAM as the board would hand it out: from the page after the guard page up to 3 GiB,
    /// and 4 GiB to 8 GiB.
    const REGIONS: [MemoryRegion; 2] = [
        MemoryRegion {
            base: M2 + P,
            size: 3 * G - M2 - P,
        },
        MemoryRegion {
            base: 4 * G,
            size: 4 * G,
        },
    ];

    fn run(
        mem: &mut FakeMem,
        alloc: &mut FakeAlloc,
        start: u64,
        len: u64,
        access: PageAccess,
    ) -> (Result<Outcome, ProtectError>, Vec<u64>) {
        let mut flushed = Vec::new();
        let result = protect(
            mem,
            alloc,
            ROOT,
            &REGIONS,
            start as usize,
            len as usize,
            access,
            &mut |addr| flushed.push(addr),
        );
        (result, flushed)
    }

    /// Every address the walk reaches maps to itself (identity), at every page size.
    fn assert_identity(mem: &FakeMem, addr: u64) {
        let (entry, size) = leaf(mem, ROOT, addr).unwrap();
        let mask = match size {
            PAGE_4K => ADDRESS_4K,
            PAGE_2M => ADDRESS_2M,
            _ => ADDRESS_1G,
        };
        if present(entry) || (size == PAGE_4K && entry != 0) {
            assert_eq!(entry & mask, addr & !(size - 1), "{addr:#x}: {entry:#x}");
        }
    }

    #[test]
    fn descriptor_bits() {
        assert_eq!(access_of(0), PageAccess::None);
        assert_eq!(
            access_of(0x20_0002),
            PageAccess::None,
            "writable, not present"
        );
        assert_eq!(access_of(0x20_0001), PageAccess::ReadOnly);
        assert_eq!(access_of(0x20_0003), PageAccess::ReadWrite);
        assert_eq!(access_of(0x20_0083), PageAccess::ReadWrite, "huge");

        let boot = 0x20_3003 | 1 << 5 | 1 << 63; // accessed, execute-disable
        assert_eq!(leaf_entry(0x20_3000, boot, PageAccess::None), boot & !3);
        assert_eq!(
            leaf_entry(0x20_3000, boot, PageAccess::ReadOnly),
            boot & !PTE_WRITABLE
        );
        assert_eq!(leaf_entry(0x20_3000, boot, PageAccess::ReadWrite), boot);
        // Through None and back: the same entry.
        let none = leaf_entry(0x20_3000, boot, PageAccess::None);
        assert_eq!(leaf_entry(0x20_3000, none, PageAccess::ReadWrite), boot);
        // The address is always the page's own.
        assert_eq!(
            leaf_entry(0x20_3000, 0, PageAccess::ReadWrite),
            0x20_3003,
            "a zero entry becomes the identity"
        );
        assert_eq!(
            leaf_entry(0x20_3000, 0x9_9999_9000 | 3, PageAccess::ReadOnly),
            0x20_3001
        );

        assert_eq!(pointer_entry(0x1234_5000, 0x83), 0x1234_5003);
        assert_eq!(pointer_entry(0x1234_5000, 0x81 | PTE_USER), 0x1234_5007);
    }

    #[test]
    fn split_2m_is_the_boot_identity_map() {
        let mut boot = [0; ENTRIES];
        tables::identity_4k(&mut boot, 0x40_0000);
        assert_eq!(split_2m(0x40_0083), boot);
    }

    #[test]
    fn splits_keep_addresses_and_flags() {
        // 2 MiB page with PAT, PCD, global, accessed, dirty, execute-disable, read-only.
        let huge = 0x1_2340_0000 | PTE_PAT_HUGE | 1 << 8 | 1 << 6 | 1 << 5 | 1 << 4 | 0x81;
        let huge = huge | 1 << 63;
        let pt = split_2m(huge);
        for (i, &entry) in pt.iter().enumerate() {
            assert_eq!(entry & ADDRESS_4K, 0x1_2340_0000 + i as u64 * P);
            assert_eq!(entry & !ADDRESS_4K, 1 << 63 | 1 << 8 | PTE_PAT_4K | 0x71);
            assert_eq!(access_of(entry), PageAccess::ReadOnly);
        }
        // 1 GiB page: 2 MiB pages with the same flags, still huge.
        let huge = tables::identity_1g(5) | PTE_PAT_HUGE | 1 << 63;
        let pd = split_1g(huge);
        for (i, &entry) in pd.iter().enumerate() {
            assert_eq!(entry & ADDRESS_2M, 5 * G + i as u64 * M2);
            assert_eq!(entry & !ADDRESS_2M, 1 << 63 | PTE_PAT_HUGE | 0x83);
        }
        // ... which split again into the 4 KiB pages of the same addresses.
        assert_eq!(split_2m(pd[3])[7] & ADDRESS_4K, 5 * G + 3 * M2 + 7 * P);
        assert_eq!(split_2m(pd[3])[7] & !ADDRESS_4K, 1 << 63 | PTE_PAT_4K | 3);
    }

    #[test]
    fn range_checks() {
        let ok = |s: u64, l: u64| check_range(&REGIONS, s as usize, l as usize);
        assert_eq!(ok(M2 + P, P), Ok((M2 + P, M2 + 2 * P)));
        assert_eq!(ok(M2 + P, 0), Err(ProtectError::Unaligned));
        assert_eq!(ok(M2 + P + 1, P), Err(ProtectError::Unaligned));
        assert_eq!(ok(M2 + P, 100), Err(ProtectError::Unaligned));
        assert_eq!(ok(M2, P), Err(ProtectError::NotRam), "the guard page");
        assert_eq!(
            ok(M2, 2 * P),
            Err(ProtectError::NotRam),
            "starts before RAM"
        );
        assert_eq!(ok(3 * G - P, P), Ok((3 * G - P, 3 * G)));
        assert_eq!(
            ok(3 * G - P, 2 * P),
            Err(ProtectError::NotRam),
            "past the end"
        );
        assert_eq!(ok(3 * G, P), Err(ProtectError::NotRam), "MMIO hole");
        assert_eq!(
            ok(3 * G - P, G + 2 * P),
            Err(ProtectError::NotRam),
            "two regions"
        );
        assert_eq!(ok(8 * G - P, P), Ok((8 * G - P, 8 * G)));
        assert_eq!(ok(1 << 40, P), Err(ProtectError::NotRam));
        let top = usize::MAX - (P as usize - 1);
        assert_eq!(
            check_range(&REGIONS, top, P as usize),
            Err(ProtectError::NotRam)
        );
        assert_eq!(
            check_range(&REGIONS, (M2 + P) as usize, top),
            Err(ProtectError::NotRam),
            "overflow"
        );
        let beyond = [MemoryRegion {
            base: 511 * G,
            size: 2 * G,
        }];
        assert_eq!(
            check_range(&beyond, (512 * G) as usize, P as usize),
            Err(ProtectError::NotRam),
            "past what the root maps"
        );
        assert!(in_ram(&REGIONS, M2 + P) && !in_ram(&REGIONS, M2) && !in_ram(&REGIONS, 3 * G));
        assert!(in_ram(&REGIONS, 8 * G - 1) && !in_ram(&REGIONS, 8 * G));
    }

    #[test]
    fn one_page_in_a_2m_page() {
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(usize::MAX);
        let page = 0x40_3000;
        assert_eq!(
            tables_needed(&mem, ROOT, page, page + P, PageAccess::None),
            Ok(1)
        );
        assert_eq!(
            tables_needed(&mem, ROOT, page, page + P, PageAccess::ReadWrite),
            Ok(0)
        );
        let (result, flushed) = run(&mut mem, &mut alloc, page, P, PageAccess::None);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 1,
                pages: 1
            })
        );
        assert_eq!(
            flushed,
            [0x40_0000, page],
            "the split page, then the changed one"
        );
        assert_eq!(access_at(&mem, ROOT, page), PageAccess::None);
        assert_eq!(access_at(&mem, ROOT, page - P), PageAccess::ReadWrite);
        assert_eq!(access_at(&mem, ROOT, page + P), PageAccess::ReadWrite);
        let pt = mem.read(0x1000, 2) & ADDRESS_4K;
        assert_eq!(pt, FRESH_BASE);
        let mut expected = split_2m(0x40_0083);
        expected[3] &= !(PTE_PRESENT | PTE_WRITABLE);
        assert_eq!(*mem.tables[&pt], expected);
        // The table stays; the next change needs none and changes only its entry.
        let (result, flushed) = run(&mut mem, &mut alloc, page, P, PageAccess::ReadOnly);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 0,
                pages: 1
            })
        );
        assert_eq!(flushed, [page]);
        assert_eq!(access_at(&mem, ROOT, page), PageAccess::ReadOnly);
        let (result, flushed) = run(&mut mem, &mut alloc, page, P, PageAccess::ReadWrite);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 0,
                pages: 1
            })
        );
        assert_eq!(flushed, [page]);
        assert_eq!(*mem.tables[&pt], split_2m(0x40_0083), "as at boot");
        // Nothing to change: nothing written, nothing to invalidate.
        let (result, flushed) = run(&mut mem, &mut alloc, page, P, PageAccess::ReadWrite);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 0,
                pages: 0
            })
        );
        assert!(flushed.is_empty());
        assert_eq!(alloc.live.len(), 1);
    }

    #[test]
    fn the_boot_split_table_is_used_and_its_guard_page_left_alone() {
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(0);
        let (result, _) = run(&mut mem, &mut alloc, M2 + P, 3 * P, PageAccess::ReadOnly);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 0,
                pages: 3
            })
        );
        assert_eq!(mem.read(0x6000, 0), 0, "guard page stays unmapped");
        for i in 1..4 {
            assert_eq!(mem.read(0x6000, i), (M2 + i as u64 * P) | 1);
        }
        assert_eq!(mem.read(0x6000, 4), (M2 + 4 * P) | 3);
        // The guard page itself is not RAM.
        let (result, _) = run(&mut mem, &mut alloc, M2, P, PageAccess::ReadWrite);
        assert_eq!(result, Err(ProtectError::NotRam));
        assert_eq!(mem.read(0x6000, 0), 0);
    }

    #[test]
    fn a_range_across_a_2m_boundary_splits_both_pages() {
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(usize::MAX);
        let boundary = 0x60_0000;
        let (result, flushed) = run(
            &mut mem,
            &mut alloc,
            boundary - P,
            2 * P,
            PageAccess::ReadOnly,
        );
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 2,
                pages: 2
            })
        );
        assert_eq!(flushed, [0x40_0000, boundary, boundary - P, boundary]);
        for (addr, access) in [
            (boundary - 2 * P, PageAccess::ReadWrite),
            (boundary - P, PageAccess::ReadOnly),
            (boundary, PageAccess::ReadOnly),
            (boundary + P, PageAccess::ReadWrite),
        ] {
            assert_eq!(access_at(&mem, ROOT, addr), access, "{addr:#x}");
            assert_identity(&mem, addr);
        }
    }

    #[test]
    fn a_1g_page_splits_into_a_directory_then_tables() {
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(usize::MAX);
        // Across the 2 MiB boundary at 5 GiB + 4 MiB: a directory and two tables.
        let start = 5 * G + 2 * M2 - P;
        assert_eq!(
            tables_needed(&mem, ROOT, start, start + 2 * P, PageAccess::None),
            Ok(3)
        );
        let (result, flushed) = run(&mut mem, &mut alloc, start, 2 * P, PageAccess::None);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 3,
                pages: 2
            })
        );
        assert_eq!(
            flushed,
            [5 * G, 5 * G + M2, 5 * G + 2 * M2, start, start + P]
        );
        let pd = mem.read(ROOT, 5);
        assert_eq!(pd, pointer_entry(pd, 0x83));
        let pd = pd & ADDRESS_4K;
        // The directory maps the same 1 GiB, huge pages but the two split ones.
        for i in 0..ENTRIES {
            let entry = mem.read(pd, i);
            if i == 1 || i == 2 {
                assert!(!huge(entry));
            } else {
                assert_eq!(entry, split_1g_entry(tables::identity_1g(5), i));
            }
        }
        for addr in [5 * G, start - P, start, start + P, start + 2 * P, 6 * G - P] {
            assert_identity(&mem, addr);
        }
        assert_eq!(access_at(&mem, ROOT, start), PageAccess::None);
        assert_eq!(access_at(&mem, ROOT, start + P), PageAccess::None);
        assert_eq!(access_at(&mem, ROOT, start - P), PageAccess::ReadWrite);
        assert_eq!(access_at(&mem, ROOT, start + 2 * P), PageAccess::ReadWrite);
        assert_eq!(access_at(&mem, ROOT, 6 * G), PageAccess::ReadWrite);
        // Across a 1 GiB boundary: the split 1 GiB page needs one more table, the other a
        // directory and a table.
        let start = 6 * G - P;
        assert_eq!(
            tables_needed(&mem, ROOT, start, start + 2 * P, PageAccess::ReadOnly),
            Ok(3)
        );
        let (result, _) = run(&mut mem, &mut alloc, start, 2 * P, PageAccess::ReadOnly);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 3,
                pages: 2
            })
        );
        assert_eq!(alloc.live.len(), 6);
    }

    #[test]
    fn out_of_tables_changes_nothing_and_frees_what_it_took() {
        for budget in 0..3 {
            let mut mem = board_tables();
            let before = mem.clone();
            let mut alloc = FakeAlloc::new(budget);
            let (result, flushed) = run(
                &mut mem,
                &mut alloc,
                5 * G + 2 * M2 - P,
                2 * P,
                PageAccess::None,
            );
            assert_eq!(result, Err(ProtectError::OutOfTables), "budget {budget}");
            assert!(flushed.is_empty());
            assert!(alloc.live.is_empty(), "budget {budget}: {:?}", alloc.live);
            assert_eq!(alloc.freed, budget);
            // The fresh tables were written (the stack's links) but are not reachable;
            // every table that was there before is unchanged.
            for (addr, table) in &before.tables {
                assert_eq!(&mem.tables[addr], table);
            }
        }
        // With exactly enough, it works.
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(3);
        let (result, _) = run(
            &mut mem,
            &mut alloc,
            5 * G + 2 * M2 - P,
            2 * P,
            PageAccess::None,
        );
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 3,
                pages: 2
            })
        );
    }

    #[test]
    fn read_write_on_untouched_memory_needs_no_table() {
        let mut mem = board_tables();
        let before = mem.clone();
        let mut alloc = FakeAlloc::new(0);
        let (result, flushed) = run(&mut mem, &mut alloc, 4 * G, 4 * G, PageAccess::ReadWrite);
        assert_eq!(
            result,
            Ok(Outcome {
                tables: 0,
                pages: 0
            })
        );
        assert!(flushed.is_empty());
        assert_eq!(mem, before);
    }

    #[test]
    fn bad_input_changes_nothing() {
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(usize::MAX);
        let (result, _) = run(&mut mem, &mut alloc, 0x40_0000, P, PageAccess::ReadOnly);
        assert!(result.is_ok());
        let before = mem.clone();
        for (start, len, error) in [
            (0x40_0001, P, ProtectError::Unaligned),
            (0x40_0000, 0, ProtectError::Unaligned),
            (0x40_0000, P + 8, ProtectError::Unaligned),
            (0, P, ProtectError::NotRam),
            (0x40_0000, 3 * G, ProtectError::NotRam),
            (3 * G, P, ProtectError::NotRam),
            (8 * G, P, ProtectError::NotRam),
            (1 << 45, P, ProtectError::NotRam),
        ] {
            let (result, flushed) = run(&mut mem, &mut alloc, start, len, PageAccess::None);
            assert_eq!(result, Err(error), "{start:#x} + {len:#x}");
            assert!(flushed.is_empty());
            assert_eq!(mem, before);
        }
        // Walks never follow a not-present directory entry.
        mem.write(ROOT, 7, 0);
        assert_eq!(
            tables_needed(&mem, ROOT, 7 * G, 7 * G + P, PageAccess::None),
            Err(ProtectError::NotRam)
        );
        assert_eq!(access_at(&mem, ROOT, 7 * G), PageAccess::None);
        let mut fresh = FreshTables::new();
        assert_eq!(
            apply(
                &mut mem,
                ROOT,
                7 * G,
                7 * G + P,
                PageAccess::None,
                &mut fresh,
                &mut |_| {}
            ),
            Err(ProtectError::NotRam)
        );
        assert_eq!(access_at(&mem, ROOT, MAPPED_LIMIT), PageAccess::None);
    }

    #[test]
    fn apply_without_enough_tables_only_splits() {
        let mut mem = board_tables();
        let mut alloc = FakeAlloc::new(usize::MAX);
        let start = 0x60_0000 - P;
        let mut fresh = FreshTables::new();
        let table = alloc.alloc().unwrap();
        fresh.push(&mut mem, table);
        let result = apply(
            &mut mem,
            ROOT,
            start,
            start + 2 * P,
            PageAccess::None,
            &mut fresh,
            &mut |_| {},
        );
        assert_eq!(result, Err(ProtectError::OutOfTables));
        for addr in [start - P, start, start + P, start + 2 * P] {
            assert_eq!(access_at(&mem, ROOT, addr), PageAccess::ReadWrite);
            assert_identity(&mem, addr);
        }
    }

    /// Windows the property test's ranges start near: inside a boot split table, around a
    /// 2 MiB boundary, the end of the first region, across 4 GiB, a 1 GiB boundary, the end
    /// of RAM.
    const ANCHORS: [u64; 6] = [M2, 0x60_0000, 3 * G, 4 * G, 5 * G, 8 * G];

    /// The rights of `addr` are the model's, and its page maps to itself.
    fn check_page(
        mem: &FakeMem,
        model: &BTreeMap<u64, PageAccess>,
        addr: u64,
    ) -> Result<(), TestCaseError> {
        if in_ram(&REGIONS, addr) {
            let expected = model.get(&addr).copied().unwrap_or(PageAccess::ReadWrite);
            prop_assert_eq!(access_at(mem, ROOT, addr), expected, "{:#x}", addr);
            assert_identity(mem, addr);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random operations against a model of each page's rights: results agree, every
        /// page stays identity-mapped, tables are counted exactly, and failed calls (bad
        /// ranges, an allocator that runs dry) change nothing and leak nothing.
        #[test]
        fn matches_a_model(
            ops in proptest::collection::vec(
                (0..ANCHORS.len(), -700i64..700, 0u64..1200, 0..3u8, 0usize..6),
                1..12,
            )
        ) {
            let mut mem = board_tables();
            let mut model: BTreeMap<u64, PageAccess> = BTreeMap::new();
            let mut installed = 0;
            let mut next_fresh = FRESH_BASE;
            let mut touched = BTreeSet::new();
            for (anchor, offset, pages, access, budget) in ops {
                let access = [PageAccess::None, PageAccess::ReadOnly, PageAccess::ReadWrite][access as usize];
                let Some(start) = ANCHORS[anchor].checked_add_signed(offset * P as i64) else { continue };
                let len = pages * P;
                let needed = check_range(&REGIONS, start as usize, len as usize)
                    .and_then(|(s, e)| tables_needed(&mem, ROOT, s, e, access));
                let mut alloc = FakeAlloc::new(budget);
                alloc.next = next_fresh;
                let before = mem.clone();
                let (result, flushed) = run(&mut mem, &mut alloc, start, len, access);
                next_fresh = alloc.next;
                let flushed: BTreeSet<u64> = flushed.into_iter().collect();
                match (needed, result) {
                    (Ok(n), Ok(outcome)) => {
                        prop_assert!(n <= budget);
                        prop_assert_eq!(outcome.tables, n);
                        prop_assert_eq!(alloc.live.len(), n);
                        installed += n;
                        let mut page = start;
                        let mut changed = 0;
                        while page < start + len {
                            let old = model.insert(page, access).unwrap_or(PageAccess::ReadWrite);
                            changed += usize::from(old != access);
                            prop_assert!(flushed.contains(&page) || old == access);
                            touched.insert(page);
                            page += P;
                        }
                        prop_assert_eq!(outcome.pages, changed);
                    }
                    (Ok(n), Err(e)) => {
                        prop_assert_eq!(e, ProtectError::OutOfTables);
                        prop_assert!(n > budget);
                        prop_assert!(alloc.live.is_empty());
                        prop_assert!(flushed.is_empty());
                        for (addr, table) in &before.tables {
                            prop_assert_eq!(&mem.tables[addr], table);
                        }
                    }
                    (Err(e), result) => {
                        prop_assert_eq!(result, Err(e));
                        prop_assert_eq!(&mem, &before);
                    }
                }
                let mut addr = start.saturating_sub(P);
                while addr <= start.saturating_add(len) {
                    check_page(&mem, &model, addr)?;
                    addr += P;
                }
            }
            for &page in &touched {
                for addr in [page.saturating_sub(P), page, page + P] {
                    check_page(&mem, &model, addr)?;
                }
            }
            // Tables reachable from the root: the board's six and every installed one.
            let mut reachable = BTreeSet::new();
            for slot in 0..ENTRIES {
                let e1 = mem.read(ROOT, slot);
                if present(e1) && !huge(e1) {
                    reachable.insert(e1 & ADDRESS_4K);
                    for i in 0..ENTRIES {
                        let e2 = mem.read(e1 & ADDRESS_4K, i);
                        if present(e2) && !huge(e2) {
                            reachable.insert(e2 & ADDRESS_4K);
                        }
                    }
                }
            }
            prop_assert_eq!(reachable.len(), 5 + installed);
        }
    }
}
