//! One test for each allocator defect of Unikraft 0.11 (reference §5): none may come back.
#![cfg(all(feature = "tlsf", feature = "buddy", feature = "region"))]

mod common;

use std::collections::HashSet;

use common::{ALL, Arena, Kind};
use uk_alloc::{Allocator, Buddy, PAGE_SIZE};

const GIB: usize = 1 << 30;

/// 0.11: `calloc` with a size of 0 divided by zero. Now any zero product returns a unique,
/// freeable pointer and counts a zero-byte allocation.
#[test]
fn calloc_with_a_zero_size_returns_unique_pointers() {
    for kind in ALL {
        let arena = Arena::new(1 << 20, 0);
        let mut a = kind.with_arena(&arena);
        let mut seen = HashSet::new();
        let mut ptrs = Vec::new();
        for (n, m) in [(0, 0), (0, 8), (8, 0), (0, usize::MAX), (usize::MAX, 0)] {
            let p = a
                .calloc(n, m)
                .unwrap_or_else(|e| panic!("{kind:?} calloc({n}, {m}): {e}"));
            assert!(
                seen.insert(p),
                "{kind:?}: calloc({n}, {m}) returned a pointer twice"
            );
            ptrs.push(p);
        }
        let s = a.stats();
        assert_eq!(
            (s.cur_allocs, s.cur_bytes, s.min_alloc_size),
            (5, 0, Some(0))
        );
        for p in ptrs {
            // SAFETY: live allocations of `a`.
            unsafe { a.free(p).unwrap() };
        }
        assert_eq!(a.stats().cur_allocs, 0);
    }
}

/// 0.11: `realloc` copied the *new* size out of the old block, reading past its end. Each
/// backend's last block sits right before an inaccessible guard page; growing it must copy
/// only the bytes it holds, or the test dies with SIGSEGV.
#[test]
fn realloc_reads_only_the_old_allocation() {
    for kind in ALL {
        let arena = Arena::guarded(256 * PAGE_SIZE, 0);
        let spare = Arena::new(1 << 20, 0);
        let mut a = kind.with_arena(&arena);
        // Fill the guarded arena completely, remembering the allocation nearest its end.
        let mut ptrs = Vec::new();
        loop {
            let n = a.max_alloc().min(64);
            if n == 0 || a.malloc(n).map(|p| ptrs.push((p, n))).is_err() {
                break;
            }
        }
        let (last, n) = *ptrs.iter().max_by_key(|(p, _)| *p).unwrap();
        let end = arena.base as usize + arena.len;
        assert!(
            end - last.as_ptr() as usize <= PAGE_SIZE,
            "{kind:?}: no block near the end"
        );
        // SAFETY: `last` holds `n` bytes.
        unsafe { last.as_ptr().write_bytes(0x5A, n) };
        // Give the allocator room to move the block: free the rest, or add memory.
        if kind.is_region() {
            // SAFETY: `spare` outlives `a`.
            unsafe { a.add_memory(spare.base, spare.len).unwrap() };
        } else {
            for &(p, _) in ptrs.iter().filter(|(p, _)| *p != last) {
                // SAFETY: live allocations of `a`.
                unsafe { a.free(p).unwrap() };
            }
        }
        let grown = 3 * PAGE_SIZE;
        // SAFETY: `last` is live.
        let q = unsafe { a.realloc(Some(last), grown) }.unwrap().unwrap();
        // SAFETY: `q` holds `grown` bytes, of which the first `n` were copied.
        let kept = unsafe { std::slice::from_raw_parts(q.as_ptr(), n) };
        assert!(kept.iter().all(|&b| b == 0x5A), "{kind:?}: contents lost");
        drop(a);
    }
}

/// 0.11 (#688): the buddy allocator subtracted its metadata from the free memory twice.
/// Here the free memory is exactly the region minus the pages holding the descriptor and
/// bitmap, and exactly that much can be allocated.
#[test]
fn buddy_metadata_is_counted_once() {
    for checked in [false, true] {
        for pages in [2usize, 3, 64, 1000, 4096, 65536 + 7] {
            let arena = Arena::new(pages * PAGE_SIZE, 0);
            let mut b = if checked {
                Buddy::new_checked()
            } else {
                Buddy::new()
            };
            // SAFETY: the arena outlives `b`.
            unsafe { b.add_memory(arena.base, arena.len).unwrap() };
            // Descriptor (6 words) + one bitmap per map, one bit per page.
            let maps = if checked { 3 } else { 1 };
            let meta = (6 * 8 + maps * pages.div_ceil(64) * 8).div_ceil(PAGE_SIZE);
            let managed = pages - meta;
            assert_eq!(b.available(), managed * PAGE_SIZE, "{pages} pages");
            let mut got = 0;
            let mut live = Vec::new();
            while b.max_pages() > 0 {
                let n = b.max_pages();
                live.push((b.palloc(n).unwrap(), n));
                got += n;
            }
            assert_eq!(got, managed, "{pages} pages: allocatable pages");
            assert_eq!(b.available(), 0);
            assert_eq!(b.stats().cur_bytes, managed * PAGE_SIZE);
            for (p, n) in live {
                // SAFETY: live allocations of `b`.
                unsafe { b.pfree(p, n).unwrap() };
            }
            assert_eq!(b.available(), managed * PAGE_SIZE);
        }
    }
}

/// 0.11: a 1 GiB allocation failed on a machine with 4 GiB of RAM. Here 4 GiB regions —
/// placed as QEMU virt places its RAM (at an odd multiple of 1 GiB) and at an arbitrary page
/// offset — serve 1 GiB through malloc and 1 GiB of pages through palloc at the same time,
/// with both backends that reuse memory. The arena is lazily backed: only headers and the
/// two bytes written are ever touched.
#[test]
fn one_gib_fits_in_four_gib() {
    let arena = Arena::new(6 * GIB, 0);
    let start = arena.base as usize;
    let mut virt = start.next_multiple_of(GIB);
    if (virt / GIB) % 2 == 0 {
        virt += GIB;
    }
    let placements = [
        ("virt-like", arena.base.wrapping_add(virt - start)),
        ("page offset", arena.base.wrapping_add(3 * PAGE_SIZE)),
    ];
    for (where_, base) in placements {
        for kind in [
            Kind::Buddy,
            Kind::BuddyChecked,
            Kind::Tlsf,
            Kind::TlsfChecked,
        ] {
            if kind == Kind::TlsfChecked && where_ == "page offset" {
                continue; // its 32 MiB bitmap is cleared eagerly; once is enough
            }
            let mut a = kind.make();
            // SAFETY: `base..base + 4 GiB` lies inside the 6 GiB arena, which outlives `a`.
            unsafe { a.add_memory(base, 4 * GIB).unwrap() };
            assert!(
                a.max_alloc() >= GIB,
                "{kind:?} {where_}: max_alloc {:#x}",
                a.max_alloc()
            );
            let p = a
                .malloc(GIB)
                .unwrap_or_else(|e| panic!("{kind:?} {where_}: malloc(1 GiB): {e}"));
            let pages = GIB / PAGE_SIZE;
            let q = a
                .palloc(pages)
                .unwrap_or_else(|e| panic!("{kind:?} {where_}: palloc(1 GiB): {e}"));
            // SAFETY: `p` holds 1 GiB: touch its first and last byte; both are live.
            unsafe {
                p.as_ptr().write(1);
                p.as_ptr().add(GIB - 1).write(2);
                a.free(p).unwrap();
                a.pfree(q, pages).unwrap();
            }
            assert_eq!(a.stats().cur_bytes, 0);
            drop(a);
        }
    }
}
