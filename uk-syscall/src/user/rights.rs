//! Pages of caller memory with fewer rights than read-write: what the accessors must not
//! touch.
//!
//! A uk-rs image maps all its RAM readable and writable, and the accessors of this module's
//! parent rely on that. A board that can set page rights (uk-hal's `PageProtection`) lets a
//! process layer make `PROT_NONE` and `PROT_READ` mappings, and a guard page below a
//! thread's stack: an access against their rights is a CPU exception. A caller that names
//! such a page in a syscall must get `EFAULT`, as on Linux, and not crash the kernel, so
//! whoever changes a page's rights in hardware records them here too ([`set_rights`]), and
//! [`AddressSpace::check`](super::AddressSpace::check) (reads) and
//! [`AddressSpace::check_write`](super::AddressSpace::check_write) consult the record.
//!
//! The record is a sorted table of at most [`MAX_PROTECTED_RANGES`] disjoint page ranges,
//! each with its rights (adjacent ranges with the same rights are merged; read-write pages
//! are not recorded). It lives in a static, without a heap, so the crate keeps working in
//! kernels without an allocator; a full table refuses the change with `ENOMEM`, as Linux
//! refuses a mapping past `vm.max_map_count`. While nothing is recorded, a check costs one
//! atomic load.
//!
//! ```
//! use uk_syscall::user::{AddressSpace, PageRights, UserSlice, rights_of, set_rights};
//! use uk_syscall::Errno;
//!
//! #[repr(align(4096))]
//! struct Pages([u8; 8192]);
//! let mut memory = Pages([0; 8192]);
//! let base = memory.0.as_mut_ptr() as usize;
//! let space = AddressSpace::hosted();
//!
//! // The second page becomes read-only (the hardware is not told here: a record only).
//! set_rights(base + 4096, 4096, PageRights::Read)?;
//! assert_eq!(rights_of(base + 4096), PageRights::Read);
//! assert_eq!(UserSlice::new(base + 4000, 200).bytes(&space).map(|b| b.len()), Ok(200));
//! assert_eq!(UserSlice::new(base + 4000, 200).fill(&space, 1), Err(Errno::EFAULT));
//! // Back to read-write before the memory goes away.
//! set_rights(base + 4096, 4096, PageRights::ReadWrite)?;
//! assert_eq!(UserSlice::new(base + 4000, 200).fill(&space, 1), Ok(()));
//! # Ok::<(), Errno>(())
//! ```

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::Errno;

/// The page size rights are recorded in.
pub const RIGHTS_PAGE: usize = 4096;

/// Most ranges the record holds (each one a run of pages with the same rights).
pub const MAX_PROTECTED_RANGES: usize = 1024;

/// What a page of caller memory may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageRights {
    /// Nothing: every access faults (`PROT_NONE`, a guard page).
    None,
    /// Reads only (`PROT_READ`).
    Read,
    /// Reads and writes: every page not recorded.
    ReadWrite,
}

impl PageRights {
    /// Whether these rights allow a read, or a write when `write`.
    pub const fn allow(self, write: bool) -> bool {
        match self {
            Self::None => false,
            Self::Read => !write,
            Self::ReadWrite => true,
        }
    }
}

/// A sorted table of disjoint `[start, end)` page ranges whose rights are not read-write.
pub(crate) struct Table<const N: usize> {
    ranges: [(usize, usize, PageRights); N],
    len: usize,
}

impl<const N: usize> Table<N> {
    /// An empty table: every page read-write.
    pub(crate) const fn new() -> Self {
        Self {
            ranges: [(0, 0, PageRights::ReadWrite); N],
            len: 0,
        }
    }

    /// The recorded ranges, in address order.
    pub(crate) fn ranges(&self) -> &[(usize, usize, PageRights)] {
        &self.ranges[..self.len]
    }

    /// Gives `[start, end)` (page-aligned, non-empty) the rights `rights`. All or nothing:
    /// `false` when the table would overflow, and then nothing changed.
    pub(crate) fn set(&mut self, start: usize, end: usize, rights: PageRights) -> bool {
        let ranges = self.ranges();
        // The window of entries the change replaces: those overlapping [start, end), widened
        // by a neighbour that touches it with the same rights (it merges).
        let mut first = ranges.partition_point(|&(_, e, _)| e <= start);
        let mut last = ranges.partition_point(|&(s, _, _)| s < end);
        let mut replacement: [(usize, usize, PageRights); 3] = [(0, 0, PageRights::ReadWrite); 3];
        let mut count = 0;
        let mut push = |piece: (usize, usize, PageRights)| {
            if piece.0 >= piece.1 || piece.2 == PageRights::ReadWrite {
                return;
            }
            if count > 0 {
                let previous: &mut (usize, usize, PageRights) = &mut replacement[count - 1];
                if previous.1 == piece.0 && previous.2 == piece.2 {
                    previous.1 = piece.1;
                    return;
                }
            }
            replacement[count] = piece;
            count += 1;
        };
        if first > 0 && ranges[first - 1].1 == start && ranges[first - 1].2 == rights {
            first -= 1;
        }
        if last < ranges.len() && ranges[last].0 == end && ranges[last].2 == rights {
            last += 1;
        }
        let window = &ranges[first..last];
        if let Some(&(s, _, r)) = window.first() {
            push((s, start, r));
        }
        push((start, end, rights));
        if let Some(&(_, e, r)) = window.last() {
            push((end, e, r));
        }
        // (A neighbour pulled in for merging lies wholly outside [start, end): its piece is
        // itself, merged with the new range.)
        let replacement = &replacement[..count];
        let new_len = self.len - (last - first) + replacement.len();
        if new_len > N {
            return false;
        }
        self.ranges
            .copy_within(last..self.len, first + replacement.len());
        self.ranges[first..first + replacement.len()].copy_from_slice(replacement);
        self.len = new_len;
        true
    }

    /// The rights of the page holding `addr`.
    pub(crate) fn rights_of(&self, addr: usize) -> PageRights {
        let ranges = self.ranges();
        let i = ranges.partition_point(|&(_, e, _)| e <= addr);
        match ranges.get(i) {
            Some(&(s, _, r)) if s <= addr => r,
            _ => PageRights::ReadWrite,
        }
    }

    /// The recorded ranges that overlap `[start, end)`, whole, in address order.
    pub(crate) fn overlapping(&self, start: usize, end: usize) -> &[(usize, usize, PageRights)] {
        let ranges = self.ranges();
        let first = ranges.partition_point(|&(_, e, _)| e <= start);
        let last = ranges.partition_point(|&(s, _, _)| s < end).max(first);
        &ranges[first..last]
    }

    /// Whether every byte of `[addr, end)` allows a read, or a write when `write`.
    pub(crate) fn allows(&self, addr: usize, end: usize, write: bool) -> bool {
        self.overlapping(addr, end)
            .iter()
            .all(|&(_, _, r)| r.allow(write))
    }
}

/// The image's record.
static RECORD: spin::RwLock<Table<MAX_PROTECTED_RANGES>> = spin::RwLock::new(Table::new());

/// How many ranges [`RECORD`] holds, readable without its lock (the fast path).
static RECORDED: AtomicUsize = AtomicUsize::new(0);

/// Records that the pages of `[start, start + len)` have the rights `rights` (read-write
/// pages are simply forgotten). Call it beside the hardware change: after taking rights
/// away, and after giving them back. It changes only the record the accessors check.
///
/// # Errors
///
/// `EINVAL` for a `start` or `len` that is not a multiple of [`RIGHTS_PAGE`], a zero `len`
/// or a range that wraps; `ENOMEM` when the record would need more than
/// [`MAX_PROTECTED_RANGES`] ranges. Nothing changes on an error.
pub fn set_rights(start: usize, len: usize, rights: PageRights) -> Result<(), Errno> {
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    if start % RIGHTS_PAGE != 0 || len % RIGHTS_PAGE != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    let mut record = RECORD.write();
    if !record.set(start, end, rights) {
        return Err(Errno::ENOMEM);
    }
    RECORDED.store(record.len, Ordering::Release);
    Ok(())
}

/// The recorded rights of the page holding `addr` (read-write when nothing is recorded).
pub fn rights_of(addr: usize) -> PageRights {
    if RECORDED.load(Ordering::Acquire) == 0 {
        return PageRights::ReadWrite;
    }
    RECORD.read().rights_of(addr)
}

/// Calls `visit` with each recorded range overlapping `[start, start + len)`, clipped to it,
/// in address order (the pages that are not read-write). The record is read-locked
/// meanwhile: `visit` must not change it.
pub fn protected_in(start: usize, len: usize, mut visit: impl FnMut(usize, usize, PageRights)) {
    if RECORDED.load(Ordering::Acquire) == 0 || len == 0 {
        return;
    }
    let end = start.saturating_add(len);
    for &(s, e, r) in RECORD.read().overlapping(start, end) {
        visit(s.max(start), e.min(end), r);
    }
}

/// The smallest range holding every recorded range that overlaps `[start, start + len)`,
/// whole (not clipped), or `None` when none does: what [`forget_rights`] would clear.
pub fn protected_extent(start: usize, len: usize) -> Option<(usize, usize)> {
    if RECORDED.load(Ordering::Acquire) == 0 || len == 0 {
        return None;
    }
    let record = RECORD.read();
    let overlapping = record.overlapping(start, start.saturating_add(len));
    Some((overlapping.first()?.0, overlapping.last()?.1))
}

/// Forgets every recorded range that overlaps `[start, start + len)`, whole: unlike
/// [`set_rights`], this never needs a free entry, so it cannot fail. For a caller that must
/// give pages back read-write when [`set_rights`] refuses to split a range (a full record):
/// it first makes all of [`protected_extent`] read-write in hardware.
pub fn forget_rights(start: usize, len: usize) {
    let Some((first, last)) = protected_extent(start, len) else {
        return;
    };
    let mut record = RECORD.write();
    // Setting whole entries read-write only removes entries.
    let forgotten = record.set(first, last, PageRights::ReadWrite);
    debug_assert!(forgotten);
    RECORDED.store(record.len, Ordering::Release);
}

/// Whether the non-empty `[addr, end)` may be read, or written when `write`, by its
/// recorded rights.
pub(super) fn allows(addr: usize, end: usize, write: bool) -> bool {
    if RECORDED.load(Ordering::Acquire) == 0 {
        return true;
    }
    RECORD.read().allows(addr, end, write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const P: usize = RIGHTS_PAGE;

    fn rights() -> impl Strategy<Value = PageRights> {
        prop_oneof![
            Just(PageRights::None),
            Just(PageRights::Read),
            Just(PageRights::ReadWrite)
        ]
    }

    #[test]
    fn splits_and_merges() {
        let mut t = Table::<8>::new();
        assert!(t.set(P, 5 * P, PageRights::None));
        assert!(t.set(2 * P, 3 * P, PageRights::Read));
        assert_eq!(
            t.ranges(),
            &[
                (P, 2 * P, PageRights::None),
                (2 * P, 3 * P, PageRights::Read),
                (3 * P, 5 * P, PageRights::None)
            ]
        );
        assert!(t.set(2 * P, 3 * P, PageRights::None));
        assert_eq!(t.ranges(), &[(P, 5 * P, PageRights::None)]);
        assert!(t.set(0, 6 * P, PageRights::ReadWrite));
        assert_eq!(t.ranges(), &[]);
    }

    #[test]
    fn a_full_table_changes_nothing() {
        let mut t = Table::<2>::new();
        assert!(t.set(0, 4 * P, PageRights::None));
        assert!(t.set(8 * P, 9 * P, PageRights::Read));
        let before: Vec<_> = t.ranges().to_vec();
        // Splitting the first range needs a third entry.
        assert!(!t.set(P, 2 * P, PageRights::ReadWrite));
        assert_eq!(t.ranges(), &before[..]);
        // Merging into a neighbour needs none.
        assert!(t.set(4 * P, 5 * P, PageRights::None));
        assert_eq!(t.ranges()[0], (0, 5 * P, PageRights::None));
    }

    #[test]
    fn setting_whole_entries_read_write_needs_no_room() {
        let mut t = Table::<2>::new();
        assert!(t.set(0, 4 * P, PageRights::None));
        assert!(t.set(6 * P, 9 * P, PageRights::Read));
        // Opening a page inside a range splits it: a third entry, refused.
        assert!(!t.set(P, 2 * P, PageRights::ReadWrite));
        // Clearing whole entries needs none.
        assert!(t.set(0, 9 * P, PageRights::ReadWrite));
        assert_eq!(t.ranges(), &[]);
    }

    #[test]
    fn bad_arguments_are_einval() {
        assert_eq!(set_rights(1, P, PageRights::None), Err(Errno::EINVAL));
        assert_eq!(set_rights(P, 1, PageRights::None), Err(Errno::EINVAL));
        assert_eq!(set_rights(P, 0, PageRights::None), Err(Errno::EINVAL));
        assert_eq!(
            set_rights(usize::MAX - P + 1, 2 * P, PageRights::None),
            Err(Errno::EINVAL)
        );
    }

    proptest! {
        /// Any sequence of changes leaves the table equal to a page-by-page model, sorted,
        /// disjoint, merged, without read-write entries; a refused change changes nothing.
        #[test]
        fn follows_a_page_model(
            changes in proptest::collection::vec((0usize..40, 1usize..12, rights()), 1..60),
            probes in proptest::collection::vec((0usize..52, 0usize..8, any::<bool>()), 8),
        ) {
            let mut t = Table::<6>::new();
            let mut model: BTreeMap<usize, PageRights> = BTreeMap::new();
            for (page, pages, r) in changes {
                let before: Vec<_> = t.ranges().to_vec();
                if t.set(page * P, (page + pages) * P, r) {
                    for p in page..page + pages {
                        if r == PageRights::ReadWrite { model.remove(&p); } else { model.insert(p, r); }
                    }
                } else {
                    prop_assert_eq!(t.ranges(), &before[..]);
                }
                let mut from_table = BTreeMap::new();
                let mut last_end = 0;
                let mut last_rights = None;
                for (i, &(s, e, r)) in t.ranges().iter().enumerate() {
                    prop_assert!(s < e && s % P == 0 && e % P == 0);
                    prop_assert!(i == 0 || s >= last_end);
                    prop_assert!(!(i > 0 && s == last_end && last_rights == Some(r)), "unmerged");
                    prop_assert_ne!(r, PageRights::ReadWrite);
                    for p in s / P..e / P { from_table.insert(p, r); }
                    last_end = e;
                    last_rights = Some(r);
                }
                prop_assert_eq!(&from_table, &model);
            }
            for (page, pages, write) in probes {
                let want = (page..page + pages.max(1))
                    .all(|p| model.get(&p).copied().unwrap_or(PageRights::ReadWrite).allow(write));
                prop_assert_eq!(t.allows(page * P + 1, (page + pages.max(1)) * P - 1, write), want);
                prop_assert_eq!(t.rights_of(page * P + 7), model.get(&page).copied().unwrap_or(PageRights::ReadWrite));
            }
        }
    }
}
