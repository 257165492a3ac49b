//! In-image test cases of the image allocator (feature `ktest`): they run inside the booted
//! image, on the heap every other part of the image uses.
//!
//! No case panics while it holds the heap's lock (inside [`ImageAllocator::with_heap`]):
//! results are collected first and checked once the lock is released, so a failure cannot
//! leave the lock taken for the cases that follow.

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use uk_alloc::{AllocError, Allocator, PAGE_SIZE, Stats};
use uk_test::{expect, expect_eq, ktest};

use crate::{ImageAllocator, allocator, platform, println};

/// Most blocks `heap_serves_every_region` takes at once.
const MAX_BLOCKS: usize = 128;

ktest! {
    /// Every usable memory region of the board is part of the heap: taking the largest free
    /// block until none of at least a page is left puts a block in every region of 256 KiB
    /// or more (smaller ones may be used up by what the image already allocated).
    fn heap_serves_every_region() {
        let regions = platform().memory_regions();
        expect!(!regions.is_empty());
        let heap = allocator();
        let before = heap.stats();
        let free_before = heap.with_heap(|h| h.available());
        let mut blocks = [(NonNull::<u8>::dangling(), 0usize); MAX_BLOCKS];
        let mut count = 0;
        let mut refused = None;
        heap.with_heap(|h| {
            while count < MAX_BLOCKS {
                // `max_alloc` is exact: a request of that size must succeed.
                let size = h.max_alloc();
                if size < PAGE_SIZE {
                    break;
                }
                match h.malloc(size) {
                    Ok(p) => {
                        blocks[count] = (p, size);
                        count += 1;
                    }
                    Err(e) => {
                        refused = Some((size, e));
                        break;
                    }
                }
            }
        });
        let blocks = &blocks[..count];
        for &(p, size) in blocks {
            // SAFETY: `p` is a live allocation of `size >= PAGE_SIZE` bytes.
            unsafe {
                p.as_ptr().write_volatile(0x5a);
                p.as_ptr().add(size - 1).write_volatile(0xa5);
            }
        }
        let taken: usize = blocks.iter().map(|b| b.1).sum();
        println!(
            "    {} heap over {} region(s): took {} block(s), {} KiB",
            heap.backend(),
            regions.len(),
            count,
            taken / 1024
        );
        expect_eq!(refused, None);
        for region in regions.iter().filter(|r| r.size >= 256 * 1024) {
            let range = region.base as usize..(region.base + region.size) as usize;
            expect!(
                blocks.iter().any(|(p, _)| range.contains(&(p.as_ptr() as usize))),
                "no block in region {:#x}+{:#x}",
                region.base,
                region.size
            );
        }
        let freed = heap.with_heap(|h| {
            blocks
                .iter()
                // SAFETY: each block is live and freed once.
                .all(|&(p, _)| unsafe { h.free(p) }.is_ok())
        });
        expect!(freed);
        expect_eq!(heap.with_heap(|h| h.available()), free_before);
        let after = heap.stats();
        expect_eq!(after.cur_bytes, before.cur_bytes);
        expect_eq!(after.total_allocs, before.total_allocs + count as u64);
    }
}

/// Runs a fixed sequence of requests on the heap and returns the statistics in the middle
/// (three allocations live) and at the end (all freed).
fn sequence(h: &mut dyn Allocator) -> Result<(Stats, Stats), AllocError> {
    let p = h.malloc(100)?;
    let q = h.calloc(3, 40)?;
    // SAFETY: `p` is live; it moves or grows in place.
    let p = unsafe { h.realloc(Some(p), 300)? }.ok_or(AllocError::NoMem)?;
    let r = h.memalign(256, 1000)?;
    let middle = h.stats();
    // SAFETY: each pointer is live and freed once.
    unsafe {
        h.free(p)?;
        h.free(q)?;
        h.free(r)?;
    }
    Ok((middle, h.stats()))
}

ktest! {
    /// The heap's statistics are exact after a known sequence of requests (in requested
    /// bytes), through the allocator interface and through `alloc::` alike.
    fn heap_statistics_are_exact() {
        let heap = allocator();
        let s0 = heap.stats();
        let result = heap.with_heap(sequence);
        let Ok((middle, end)) = result else {
            return expect!(false, "sequence failed: {result:?}");
        };
        // malloc, calloc, realloc (one free and one allocation), memalign.
        expect_eq!(middle.total_allocs, s0.total_allocs + 4);
        expect_eq!(middle.total_frees, s0.total_frees + 1);
        expect_eq!(middle.cur_allocs, s0.cur_allocs + 3);
        expect_eq!(middle.cur_bytes, s0.cur_bytes + 300 + 120 + 1000);
        expect_eq!(middle.last_alloc_size, 1000);
        expect_eq!(middle.max_alloc_size, s0.max_alloc_size.max(1000));
        expect_eq!(middle.min_alloc_size, Some(s0.min_alloc_size.map_or(100, |m| m.min(100))));
        expect!(middle.max_bytes >= s0.cur_bytes + 1420);
        expect_eq!(end.total_allocs, s0.total_allocs + 4);
        expect_eq!(end.total_frees, s0.total_frees + 4);
        expect_eq!(end.cur_allocs, s0.cur_allocs);
        expect_eq!(end.cur_bytes, s0.cur_bytes);
        expect_eq!(end.enomem, s0.enomem);

        let v: Vec<u8> = Vec::with_capacity(1000);
        let with_vec = heap.stats();
        drop(v);
        expect_eq!(with_vec.cur_bytes, s0.cur_bytes + 1000);
        expect_eq!(with_vec.cur_allocs, s0.cur_allocs + 1);
        expect_eq!(heap.stats().cur_bytes, s0.cur_bytes);
        expect_eq!(heap.rejected_frees(), 0);
    }
}

ktest! {
    /// The byte limit refuses exactly what would exceed it, through the allocator interface,
    /// `alloc::` and page allocation, counts each refusal as ENOMEM, and changes nothing.
    fn heap_limit_is_enforced() {
        let heap: &ImageAllocator = allocator();
        let s0 = heap.stats();
        let old = heap.limit();
        heap.set_limit(Some(s0.cur_bytes + 8192));
        let (fits, over) = heap.with_heap(|h| (h.malloc(8192), h.malloc(1)));
        let at_limit = heap.stats();
        let layout = Layout::from_size_align(16, 16).expect("layout");
        // SAFETY: a non-zero size; a null result is checked below.
        let global = unsafe { alloc::alloc::alloc(layout) };
        let page = heap.palloc(1);
        let refused = heap.stats();
        if let Ok(p) = fits {
            // SAFETY: `p` is live.
            let freed = heap.with_heap(|h| unsafe { h.free(p) });
            expect!(freed.is_ok());
        }
        if let Ok(p) = page {
            // SAFETY: a live run of one page.
            let _ = unsafe { heap.pfree(p, 1) };
        }
        if !global.is_null() {
            // SAFETY: allocated above with `layout`.
            unsafe { alloc::alloc::dealloc(global, layout) };
        }
        heap.set_limit(old);

        expect!(fits.is_ok());
        expect_eq!(over, Err(AllocError::NoMem));
        expect_eq!(at_limit.cur_bytes, s0.cur_bytes + 8192);
        expect_eq!(at_limit.enomem, s0.enomem + 1);
        expect!(global.is_null(), "alloc:: allocated past the limit");
        // A page comes either from a chunk the pool already holds (charged to the heap
        // before) or not at all: the heap's use does not grow past the limit.
        expect_eq!(refused.enomem, s0.enomem + 2 + u64::from(page.is_err()));
        expect_eq!(refused.cur_bytes, s0.cur_bytes + 8192);
        expect_eq!(heap.stats().cur_bytes, s0.cur_bytes);
        expect_eq!(heap.limit(), old);
        // SAFETY: a non-zero size; freed right away.
        unsafe {
            let p = alloc::alloc::alloc(layout);
            expect!(!p.is_null());
            if !p.is_null() {
                alloc::alloc::dealloc(p, layout);
            }
        }
    }
}

ktest! {
    /// Page runs are page aligned, writable, disjoint and counted exactly; freeing them
    /// gives the pages back.
    fn pages_are_aligned_and_counted() {
        let heap = allocator();
        let p0 = heap.page_stats();
        let counts = [1usize, 2, 5, 16, 64];
        let mut runs = [(NonNull::<u8>::dangling(), 0usize); 5];
        for (run, &n) in runs.iter_mut().zip(&counts) {
            match heap.palloc(n) {
                Ok(p) => *run = (p, n),
                Err(e) => return expect!(false, "palloc({n}): {e}"),
            }
        }
        for (i, &(p, n)) in runs.iter().enumerate() {
            let start = p.as_ptr() as usize;
            expect_eq!(start % PAGE_SIZE, 0);
            // SAFETY: `p` is a live run of `n` pages.
            unsafe {
                p.as_ptr().write_volatile(1);
                p.as_ptr().add(n * PAGE_SIZE - 1).write_volatile(2);
            }
            for &(q, m) in &runs[i + 1..] {
                let other = q.as_ptr() as usize;
                expect!(start + n * PAGE_SIZE <= other || other + m * PAGE_SIZE <= start);
            }
        }
        let live = heap.page_stats();
        expect_eq!(live.cur_bytes, p0.cur_bytes + 88 * PAGE_SIZE);
        expect_eq!(live.cur_allocs, p0.cur_allocs + 5);
        for &(p, n) in &runs {
            // SAFETY: each run is live and freed once with its count.
            expect!(unsafe { heap.pfree(p, n) }.is_ok());
        }
        let end = heap.page_stats();
        expect_eq!(end.cur_bytes, p0.cur_bytes);
        expect_eq!(end.total_frees, p0.total_frees + 5);
        expect_eq!(heap.palloc(0), Err(AllocError::NoMem));
    }
}
