//! Statistics and the byte limit, shared by every backend.

use core::ptr::NonNull;

use crate::AllocError;

/// The part of `Allocator::alloc_aligned` every backend shares: reject a bad alignment,
/// refuse sizes above `max_size` and past the byte limit, run the backend's own allocation
/// (`raw`) and count its result. `accounting` finds the backend's [`Accounting`].
pub(crate) fn accounted_alloc<B>(
    backend: &mut B,
    accounting: fn(&mut B) -> &mut Accounting,
    max_size: usize,
    align: usize,
    size: usize,
    raw: impl FnOnce(&mut B) -> Option<NonNull<u8>>,
) -> Result<NonNull<u8>, AllocError> {
    if !align.is_power_of_two() {
        return Err(AllocError::Inval);
    }
    if size > max_size {
        return Err(accounting(backend).enomem());
    }
    accounting(backend).admit(0, size)?;
    match raw(backend) {
        Some(ptr) => {
            accounting(backend).on_alloc(size);
            Ok(ptr)
        }
        None => Err(accounting(backend).enomem()),
    }
}

/// Allocation statistics, the fields of Unikraft's `struct uk_alloc_stats`.
///
/// Sizes are the sizes callers *asked for* (`malloc(n)` counts `n`, `calloc(n, m)` counts
/// `n * m`, `palloc(p)` counts `p * PAGE_SIZE`), never a backend's rounded block size, so
/// the figures are the same whichever backend serves the requests and can be checked
/// against a model exactly. Every backend stores each live allocation's requested size, so
/// a `free` subtracts precisely what the matching allocation added.
///
/// A successful `realloc(p, n)` of a live `p` counts as one free of `p` and one allocation of
/// `n` (the number of live allocations does not change); `realloc(None, n)` is a `malloc`
/// and `realloc(p, 0)` a `free`. A successful `pfree_part` counts as one free of the part's
/// bytes; the pieces of the run it leaves are live allocations (so [`Stats::cur_allocs`]
/// goes up by one when a part in the middle leaves two) but not new requests, so after
/// partial frees `total_allocs - total_frees` no longer equals `cur_allocs`. A failed allocation of any kind that fails with `ENOMEM`
/// (including the byte limit and size overflows) increments [`Stats::enomem`] and nothing
/// else; `EINVAL` and bad frees change no statistic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Size of the last satisfied allocation request.
    pub last_alloc_size: usize,
    /// Largest satisfied allocation request.
    pub max_alloc_size: usize,
    /// Smallest satisfied allocation request; `None` until the first one.
    pub min_alloc_size: Option<usize>,
    /// Number of satisfied allocation requests since creation.
    pub total_allocs: u64,
    /// Number of satisfied frees since creation.
    pub total_frees: u64,
    /// Number of live allocations (each piece a `pfree_part` leaves of a run counts as
    /// one).
    pub cur_allocs: usize,
    /// Largest value [`Stats::cur_allocs`] has reached.
    pub max_allocs: usize,
    /// Sum of the requested sizes of the live allocations.
    pub cur_bytes: usize,
    /// Largest value [`Stats::cur_bytes`] has reached.
    pub max_bytes: usize,
    /// Number of requests that failed with `ENOMEM`.
    pub enomem: u64,
}

/// Statistics plus the byte limit: the bookkeeping every backend embeds.
///
/// Its empty state is all zero bytes (no sentinel values), so a backend that embeds it can
/// be a zero-initialised `static`: it lives in `.bss`, costs the image file nothing and
/// needs no initialisation at boot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Accounting {
    stats: Stats,
    /// `stats.min_alloc_size`, inverted (`!min`), meaningful once `stats.total_allocs` is not
    /// zero: the empty state is zero (a minimum of `usize::MAX`), and an update is one
    /// `max` without a branch.
    inv_min: usize,
    /// The byte limit, inverted (`!limit`): 0 is "unlimited" (`usize::MAX`), so the empty
    /// state is all zero.
    inv_limit: usize,
}

impl Accounting {
    pub(crate) const fn new() -> Self {
        Accounting {
            stats: Stats {
                last_alloc_size: 0,
                max_alloc_size: 0,
                min_alloc_size: None,
                total_allocs: 0,
                total_frees: 0,
                cur_allocs: 0,
                max_allocs: 0,
                cur_bytes: 0,
                max_bytes: 0,
                enomem: 0,
            },
            inv_min: 0,
            inv_limit: 0,
        }
    }

    /// The statistics.
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.min_alloc_size = (s.total_allocs != 0).then_some(!self.inv_min);
        s
    }

    /// Counts one `ENOMEM` and returns the error, for `return Err(acct.enomem())`.
    #[inline]
    pub(crate) fn enomem(&mut self) -> AllocError {
        self.stats.enomem += 1;
        AllocError::NoMem
    }

    /// Checks that `released` bytes going away and `size` bytes arriving keep the live bytes
    /// within the limit; counts an `ENOMEM` when they would not.
    #[inline]
    pub(crate) fn admit(&mut self, released: usize, size: usize) -> Result<(), AllocError> {
        // `released` is always part of `cur_bytes`, so the subtraction cannot wrap.
        let after = (self.stats.cur_bytes - released).checked_add(size);
        match after {
            Some(after) if after <= !self.inv_limit => Ok(()),
            _ => Err(self.enomem()),
        }
    }

    /// Whether an allocation of `size <= MAX_REQUEST` bytes stays within the limit (the fast
    /// paths' form of `admit(0, size)`, which counts nothing).
    #[inline(always)]
    pub(crate) fn fits(&self, size: usize) -> bool {
        // `cur_bytes` sums live allocations, which occupy distinct memory, so it is below
        // `isize::MAX` and adding `size <= isize::MAX` cannot overflow.
        self.stats.cur_bytes + size <= !self.inv_limit
    }

    /// Bytes an allocation may still request before the limit is reached.
    #[inline]
    pub(crate) fn headroom(&self) -> usize {
        (!self.inv_limit).saturating_sub(self.stats.cur_bytes)
    }

    // The extremes are written only when they change (a branch that is almost never taken
    // once a workload is under way), which keeps the stores per allocation to the counters
    // that do change.

    #[inline(always)]
    fn note_request(&mut self, size: usize) {
        let s = &mut self.stats;
        s.last_alloc_size = size;
        if size > s.max_alloc_size {
            s.max_alloc_size = size;
        }
        if !size > self.inv_min {
            self.inv_min = !size;
        }
        s.total_allocs += 1;
    }

    /// Records a satisfied allocation of `size` requested bytes.
    #[inline(always)]
    pub(crate) fn on_alloc(&mut self, size: usize) {
        self.note_request(size);
        let s = &mut self.stats;
        s.cur_allocs += 1;
        if s.cur_allocs > s.max_allocs {
            s.max_allocs = s.cur_allocs;
        }
        s.cur_bytes += size;
        if s.cur_bytes > s.max_bytes {
            s.max_bytes = s.cur_bytes;
        }
    }

    /// Records the free of a live allocation of `size` requested bytes.
    #[inline(always)]
    pub(crate) fn on_free(&mut self, size: usize) {
        let s = &mut self.stats;
        s.total_frees += 1;
        s.cur_allocs -= 1;
        s.cur_bytes -= size;
    }

    /// Records the free of `size` bytes of a live page run that leaves `pieces` (0, 1 or
    /// 2) live runs behind (`Allocator::pfree_part`): one free, `size` bytes fewer, and the
    /// pieces counted as live allocations in place of the run, but no new request.
    #[inline]
    pub(crate) fn on_free_part(&mut self, size: usize, pieces: usize) {
        let s = &mut self.stats;
        s.total_frees += 1;
        s.cur_allocs = s.cur_allocs - 1 + pieces;
        if s.cur_allocs > s.max_allocs {
            s.max_allocs = s.cur_allocs;
        }
        s.cur_bytes -= size;
    }

    /// Records a satisfied `realloc` from `old` to `new` requested bytes.
    #[inline]
    pub(crate) fn on_realloc(&mut self, old: usize, new: usize) {
        self.note_request(new);
        let s = &mut self.stats;
        s.total_frees += 1;
        s.cur_bytes = s.cur_bytes - old + new;
        if s.cur_bytes > s.max_bytes {
            s.max_bytes = s.cur_bytes;
        }
    }

    pub(crate) fn limit(&self) -> Option<usize> {
        (self.inv_limit != 0).then_some(!self.inv_limit)
    }

    pub(crate) fn set_limit(&mut self, limit: Option<usize>) {
        self.inv_limit = !limit.unwrap_or(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_unikraft() {
        let mut a = Accounting::new();
        a.on_alloc(10);
        a.on_alloc(0);
        a.on_alloc(100);
        a.on_free(10);
        a.on_realloc(100, 50);
        let s = a.stats();
        assert_eq!(s.last_alloc_size, 50);
        assert_eq!(s.max_alloc_size, 100);
        assert_eq!(s.min_alloc_size, Some(0));
        assert_eq!(s.total_allocs, 4);
        assert_eq!(s.total_frees, 2);
        assert_eq!(s.cur_allocs, 2);
        assert_eq!(s.max_allocs, 3);
        assert_eq!(s.cur_bytes, 50);
        assert_eq!(s.max_bytes, 110);
        assert_eq!(s.enomem, 0);
    }

    #[test]
    fn a_partial_free_counts_a_free_and_its_pieces() {
        let mut a = Accounting::new();
        a.on_alloc(8 * 4096);
        a.on_free_part(2 * 4096, 2); // the middle: two pieces
        let s = a.stats();
        assert_eq!((s.total_allocs, s.total_frees), (1, 1));
        assert_eq!((s.cur_allocs, s.max_allocs), (2, 2));
        assert_eq!((s.cur_bytes, s.max_bytes), (6 * 4096, 8 * 4096));
        assert_eq!(s.last_alloc_size, 8 * 4096);
        a.on_free_part(4096, 1); // a head: one piece
        a.on_free_part(2 * 4096, 0); // a whole piece
        let s = a.stats();
        assert_eq!((s.total_frees, s.cur_allocs, s.cur_bytes), (3, 1, 3 * 4096));
        a.on_free(3 * 4096);
        assert_eq!((a.stats().cur_allocs, a.stats().cur_bytes), (0, 0));
    }

    #[test]
    fn limit_is_exact_and_counts_enomem() {
        let mut a = Accounting::new();
        a.set_limit(Some(100));
        assert_eq!(a.limit(), Some(100));
        assert!(a.admit(0, 100).is_ok());
        a.on_alloc(60);
        assert_eq!(a.admit(0, 41), Err(AllocError::NoMem));
        assert!(a.admit(0, 40).is_ok());
        assert!(a.admit(60, 100).is_ok());
        assert_eq!(a.admit(0, usize::MAX), Err(AllocError::NoMem));
        assert_eq!(a.stats().enomem, 2);
        assert_eq!(a.headroom(), 40);
        a.set_limit(None);
        assert_eq!(a.limit(), None);
    }
}
