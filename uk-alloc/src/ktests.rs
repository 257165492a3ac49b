//! In-image test cases (feature `ktest`): every backend on the target CPU, over an arena
//! taken from the image's own heap through `alloc::` and given back at the end.
//!
//! The image heap itself (every board region in use, its statistics and limit, page
//! allocation) is tested by `uk-rt`'s cases; these check the backends as a library.

extern crate alloc;

use core::alloc::Layout;
use core::ptr::NonNull;

use uk_test::{expect, expect_eq, ktest};

use crate::{AllocError, Allocator, Buddy, PAGE_SIZE, Region, Tlsf};

/// A page-aligned arena from the image's heap, freed on drop.
struct Arena {
    base: NonNull<u8>,
    layout: Layout,
}

impl Arena {
    fn new(bytes: usize) -> Option<Arena> {
        let layout = Layout::from_size_align(bytes, PAGE_SIZE).ok()?;
        // SAFETY: `layout` has a non-zero size; a null result is handled.
        let base = NonNull::new(unsafe { alloc::alloc::alloc(layout) })?;
        Some(Arena { base, layout })
    }

    /// A backend of type `A` over the arena.
    fn give<A: Allocator>(&self, mut allocator: A) -> A {
        // SAFETY: the arena is a live allocation, and outlives the allocator in every case
        // below (both are locals, the allocator declared later); each allocator is dead
        // before the next one is given the same arena.
        let added = unsafe { allocator.add_memory(self.base.as_ptr(), self.layout.size()) };
        assert_eq!(added, Ok(()), "arena refused");
        allocator
    }

    /// Runs `f` on each backend in turn, each given the whole arena; each backend is dead
    /// before the next is given the arena.
    fn each_backend(&self, mut f: impl FnMut(&str, &mut dyn Allocator)) {
        f("tlsf", &mut self.give(Tlsf::new()));
        f("buddy", &mut self.give(Buddy::new()));
        f("region", &mut self.give(Region::new()));
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

/// A fixed sequence of requests; returns the statistics with three allocations live.
fn sequence(a: &mut dyn Allocator) -> Result<crate::Stats, AllocError> {
    let p = a.malloc(100)?;
    let q = a.calloc(4, 25)?;
    // SAFETY: `p` is live.
    let p = unsafe { a.realloc(Some(p), 700)? }.ok_or(AllocError::NoMem)?;
    let r = a.posix_memalign(64, 10)?;
    // SAFETY: live allocations.
    unsafe {
        expect_eq!(a.allocation_size(p), Ok(700));
        expect_eq!(a.allocation_size(q), Ok(100));
        expect_eq!(a.allocation_size(r), Ok(10));
    }
    expect_eq!(r.as_ptr() as usize % 64, 0);
    let live = a.stats();
    // SAFETY: each pointer is live and freed once.
    unsafe {
        a.free(p)?;
        a.free(q)?;
        a.free(r)?;
    }
    Ok(live)
}

ktest! {
    /// Every backend counts a known sequence exactly, in requested bytes, on the target.
    fn backends_count_exactly() {
        let Some(arena) = Arena::new(512 * 1024) else {
            return expect!(false, "no arena");
        };
        arena.each_backend(|name, a| {
            let live = sequence(a);
            let Ok(live) = live else {
                return expect!(false, "{name}: {live:?}");
            };
            expect_eq!(live.total_allocs, 4);
            expect_eq!(live.total_frees, 1);
            expect_eq!((live.cur_allocs, live.cur_bytes), (3, 810));
            expect_eq!(live.min_alloc_size, Some(10));
            expect_eq!(live.max_alloc_size, 700);
            expect_eq!(live.max_bytes, 810);
            let end = a.stats();
            expect_eq!((end.cur_allocs, end.cur_bytes, end.total_frees), (0, 0, 4));
        });
    }
}

ktest! {
    /// The byte limit refuses exactly what exceeds it, counts ENOMEM and changes nothing
    /// else, on every backend.
    fn backends_enforce_the_limit() {
        let Some(arena) = Arena::new(256 * 1024) else {
            return expect!(false, "no arena");
        };
        arena.each_backend(|name, a| {
            a.set_limit(Some(5000));
            let p = a.malloc(4000);
            expect!(p.is_ok());
            let before = (a.stats(), a.available());
            expect_eq!(a.malloc(1001), Err(AllocError::NoMem));
            expect_eq!(a.palloc(1), Err(AllocError::NoMem));
            let after = (a.stats(), a.available());
            expect_eq!(after.0.enomem, before.0.enomem + 2);
            expect_eq!(after.0.cur_bytes, before.0.cur_bytes);
            expect_eq!(after.1, before.1);
            expect!(a.malloc(1000).is_ok(), "{name}: exactly at the limit");
            expect_eq!(a.max_alloc(), 0);
        });
    }
}

ktest! {
    /// Buddy runs are naturally aligned (a run of n pages on a multiple of the next power of
    /// two of n pages), disjoint, and merge back completely.
    fn buddy_runs_are_naturally_aligned() {
        let Some(arena) = Arena::new(1 << 20) else {
            return expect!(false, "no arena");
        };
        let mut b = arena.give(Buddy::new());
        let largest = b.max_pages();
        let counts = [1usize, 2, 3, 8, 17, 30];
        let mut runs = [(NonNull::<u8>::dangling(), 0usize); 6];
        for (run, &n) in runs.iter_mut().zip(&counts) {
            match b.palloc(n) {
                Ok(p) => *run = (p, n),
                Err(e) => return expect!(false, "palloc({n}): {e}"),
            }
        }
        for (i, &(p, n)) in runs.iter().enumerate() {
            let start = p.as_ptr() as usize;
            expect_eq!(start % (n.next_power_of_two() * PAGE_SIZE), 0);
            for &(q, m) in &runs[i + 1..] {
                let other = q.as_ptr() as usize;
                expect!(start + n * PAGE_SIZE <= other || other + m * PAGE_SIZE <= start);
            }
        }
        for &(p, n) in &runs {
            // SAFETY: each run is live and freed once.
            expect!(unsafe { b.pfree(p, n) }.is_ok());
        }
        expect_eq!(b.max_pages(), largest);
    }
}

ktest! {
    /// The buddy frees parts of a run on the target: a middle part, then a head of what is
    /// left; the pieces keep their bytes, the statistics count one free per part, a part
    /// outside the run is refused in checked mode with nothing changed, and once the pieces
    /// are freed everything has merged back.
    fn buddy_frees_parts_of_runs() {
        let Some(arena) = Arena::new(1 << 20) else {
            return expect!(false, "no arena");
        };
        let mut b = arena.give(Buddy::new_checked());
        let (free, largest) = (b.available(), b.max_pages());
        let Ok(run) = b.palloc(13) else {
            return expect!(false, "palloc");
        };
        let page = |n: usize| run.map_addr(|a| a.saturating_add(n * PAGE_SIZE));
        // SAFETY: `run` is a live run of 13 pages; every call below names a live run (the
        // original, then the pieces it leaves) and checked mode validates the rest.
        unsafe {
            run.as_ptr().write_bytes(0x3C, 13 * PAGE_SIZE);
            let before = (b.stats(), b.available());
            expect_eq!(b.pfree_part(run, 13, page(13), 1), Err(AllocError::BadFree));
            expect_eq!((b.stats(), b.available()), before);
            expect_eq!(b.pfree_part(run, 13, page(4), 5), Ok(()));
            expect_eq!(b.pfree_part(page(9), 4, page(9), 1), Ok(()));
            expect_eq!(b.available(), free - 7 * PAGE_SIZE);
            let s = b.stats();
            expect_eq!((s.cur_allocs, s.cur_bytes, s.total_frees), (2, 7 * PAGE_SIZE, 2));
            let head = core::slice::from_raw_parts(run.as_ptr(), 4 * PAGE_SIZE);
            let tail = core::slice::from_raw_parts(page(10).as_ptr(), 3 * PAGE_SIZE);
            expect!(head.iter().chain(tail).all(|&x| x == 0x3C), "pieces kept");
            expect_eq!(b.pfree(page(10), 3), Ok(()));
            expect_eq!(b.pfree(run, 4), Ok(()));
        }
        expect_eq!((b.available(), b.max_pages()), (free, largest));
        expect_eq!(b.stats().cur_bytes, 0);
    }
}

ktest! {
    /// Checked TLSF refuses foreign, interior and repeated frees on the target, leaving its
    /// state untouched.
    fn checked_tlsf_refuses_bad_frees() {
        let Some(arena) = Arena::new(128 * 1024) else {
            return expect!(false, "no arena");
        };
        let mut t = arena.give(Tlsf::new_checked());
        let Ok(p) = t.malloc(64) else {
            return expect!(false, "malloc");
        };
        // The block's contents are what an interior pointer's "header" is read from: data
        // that looks like a freed block's header is reported as a double free (a stale
        // header of a merged block looks the same), so give it plain contents.
        // SAFETY: `p` is a live allocation of 64 bytes.
        unsafe { p.as_ptr().write_bytes(0, 64) };
        let before = (t.stats(), t.available());
        let mut local = [0u128; 2];
        // SAFETY: checked mode accepts any pointer value.
        unsafe {
            expect_eq!(t.free(NonNull::from(&mut local).cast()), Err(AllocError::BadFree));
            expect_eq!(t.free(p.add(16)), Err(AllocError::BadFree));
            expect_eq!((t.stats(), t.available()), before);
            expect_eq!(t.free(p), Ok(()));
            expect_eq!(t.free(p), Err(AllocError::DoubleFree));
        }
    }
}

ktest! {
    /// TLSF resizes in place on the target: growth into the free block after an
    /// allocation keeps its contents and address, the byte limit refuses growth in place
    /// and changes nothing, shrinking gives the tail back; `free_sized` (which prefetches
    /// with the target's own instruction) frees exactly whatever size hint it is given.
    fn tlsf_resizes_in_place_and_frees_with_size_hints() {
        let Some(arena) = Arena::new(256 * 1024) else {
            return expect!(false, "no arena");
        };
        let mut t = arena.give(Tlsf::new());
        let (Ok(a), Ok(b)) = (t.malloc(1000), t.malloc(20_000)) else {
            return expect!(false, "first allocations");
        };
        // SAFETY: `a` and `b` are live allocations of 1000 and 20 000 bytes of `t`; each is
        // freed once, `a` through realloc's result.
        unsafe {
            a.as_ptr().write_bytes(0x5A, 1000);
            expect_eq!(t.free(b), Ok(()));
            let free = t.available();
            expect_eq!(t.realloc(Some(a), 15_000), Ok(Some(a)));
            expect_eq!(free - t.available(), 14_000);
            let bytes = core::slice::from_raw_parts(a.as_ptr(), 1000);
            expect!(bytes.iter().all(|&x| x == 0x5A), "contents kept");
            t.set_limit(Some(15_500));
            let before = (t.stats().cur_bytes, t.available(), t.max_alloc());
            expect_eq!(t.realloc(Some(a), 15_501), Err(AllocError::NoMem));
            expect_eq!(t.realloc_in_place(a, 15_501), Err(AllocError::NoMem));
            expect_eq!((t.stats().cur_bytes, t.available(), t.max_alloc()), before);
            expect_eq!(t.allocation_size(a), Ok(15_000));
            t.set_limit(None);
            expect_eq!(t.realloc(Some(a), 100), Ok(Some(a)));
            expect_eq!(t.available(), free + 1024 - 128);
            expect_eq!(t.free_sized(a, 100), Ok(()));
            expect_eq!(t.stats().cur_bytes, 0);
        }
        for hint in [0, 5000, usize::MAX] {
            let Ok(p) = t.malloc(5000) else {
                return expect!(false, "malloc");
            };
            // SAFETY: `p` is live and freed once.
            expect_eq!(unsafe { t.free_sized(p, hint) }, Ok(()));
        }
        expect_eq!(t.stats().cur_bytes, 0);
        expect_eq!(t.stats().total_frees, 7);
    }
}
