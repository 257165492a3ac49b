//! `Allocator::pfree_part`: freeing part of a page run. The buddy frees any part and the
//! pieces left merge back once freed (also over memory that starts as garbage, which its
//! lazily written bitmap must never trust); checked mode refuses anything that is not part
//! of exactly a live run and changes nothing; TLSF frees a tail; the region allocator and
//! the trait's default refuse with `Unsupported`; statistics are exact throughout.
#![cfg(all(feature = "tlsf", feature = "buddy", feature = "region"))]

mod common;

use std::ptr::NonNull;

use common::{Arena, Kind};
use uk_alloc::{AllocError, Allocator, PAGE_SIZE, Stats};

/// The pointer `pages` pages past `p`.
fn at(p: NonNull<u8>, pages: usize) -> NonNull<u8> {
    NonNull::new(p.as_ptr().wrapping_add(pages * PAGE_SIZE)).unwrap()
}

/// Writes `byte` over `pages` pages at `p`.
fn fill(p: NonNull<u8>, pages: usize, byte: u8) {
    // SAFETY: the caller's live pages.
    unsafe { p.as_ptr().write_bytes(byte, pages * PAGE_SIZE) };
}

/// Whether every byte of `pages` pages at `p` is `byte`.
fn holds(p: NonNull<u8>, pages: usize, byte: u8) -> bool {
    // SAFETY: the caller's live pages.
    unsafe { std::slice::from_raw_parts(p.as_ptr(), pages * PAGE_SIZE) }
        .iter()
        .all(|&b| b == byte)
}

/// What a backend looks like from outside: free memory, largest page run, statistics.
fn state(a: &dyn Allocator) -> (usize, usize, Stats) {
    (a.available(), a.max_pages(), a.stats())
}

/// Frees `part` pages `head` pages into a run of `n` pages, checks the pieces kept their
/// bytes and the statistics, frees the pieces (tail first when `tail_first`), and checks
/// that everything merged back.
fn part_then_pieces(a: &mut dyn Allocator, n: usize, head: usize, part: usize, tail_first: bool) {
    let tail = n - head - part;
    let start = state(a);
    let run = a.palloc(n).unwrap();
    fill(run, n, 0x5A);
    let before = a.stats();
    // SAFETY: a live run; the part lies inside it.
    unsafe { a.pfree_part(run, n, at(run, head), part) }.unwrap();
    let s = a.stats();
    let pieces = usize::from(head > 0) + usize::from(tail > 0);
    assert_eq!(s.total_frees, before.total_frees + 1, "{n} {head} {part}");
    assert_eq!(s.total_allocs, before.total_allocs, "no new request");
    assert_eq!(s.cur_allocs, before.cur_allocs - 1 + pieces);
    assert_eq!(s.cur_bytes, before.cur_bytes - part * PAGE_SIZE);
    assert_eq!(
        a.available(),
        start.0 - (head + tail) * PAGE_SIZE,
        "exactly the part's pages are free ({n} {head} {part})"
    );
    assert!(holds(run, head, 0x5A) && holds(at(run, head + part), tail, 0x5A));
    let mut pieces = vec![(run, head), (at(run, head + part), tail)];
    if tail_first {
        pieces.reverse();
    }
    for (p, k) in pieces {
        if k > 0 {
            // The part's pages may be anybody's now; a piece is still its own.
            fill(p, k, 0xC3);
            // SAFETY: a live piece the partial free left, with its own count.
            unsafe { a.pfree(p, k) }.unwrap();
        }
    }
    let end = state(a);
    assert_eq!(
        (end.0, end.1),
        (start.0, start.1),
        "merged back ({n} {head} {part})"
    );
    assert_eq!(
        (end.2.cur_allocs, end.2.cur_bytes),
        (start.2.cur_allocs, start.2.cur_bytes)
    );
}

#[test]
fn buddy_frees_a_head_a_tail_a_middle_and_a_whole_run() {
    for kind in [Kind::Buddy, Kind::BuddyChecked] {
        let arena = Arena::new(256 * PAGE_SIZE, 0);
        let mut a = kind.with_arena(&arena);
        for (n, head, part) in [
            (13, 0, 4),  // head
            (13, 9, 4),  // tail
            (13, 3, 7),  // middle
            (13, 0, 13), // whole
            (16, 5, 1),  // one page inside one block
            (1, 0, 1),
        ] {
            for tail_first in [false, true] {
                part_then_pieces(&mut *a, n, head, part, tail_first);
            }
        }
    }
}

#[test]
fn buddy_frees_every_part_of_small_runs_over_garbage() {
    // 0xFF everywhere: every bit the unchecked buddy never wrote reads "free block here",
    // so a split that forgot to mark a page would send a merge into the garbage.
    for kind in [Kind::Buddy, Kind::BuddyChecked] {
        let arena = Arena::new(128 * PAGE_SIZE, 0);
        arena.fill(0xFF);
        let mut a = kind.with_arena(&arena);
        // Something allocated first, so that runs start at various alignments.
        let pad = a.palloc(3).unwrap();
        for n in 1..=18 {
            for head in 0..n {
                for part in 1..=n - head {
                    part_then_pieces(&mut *a, n, head, part, (n + head + part) % 2 == 0);
                }
            }
        }
        // SAFETY: a live run.
        unsafe { a.pfree(pad, 3) }.unwrap();
        drop(a);
        let fresh = kind.with_arena(&arena);
        let _ = fresh.available();
    }
}

#[test]
fn buddy_pieces_can_be_freed_in_parts_again() {
    for kind in [Kind::Buddy, Kind::BuddyChecked] {
        let arena = Arena::new(256 * PAGE_SIZE, PAGE_SIZE);
        arena.fill(0xFF);
        let mut a = kind.with_arena(&arena);
        let start = state(&*a);
        let run = a.palloc(37).unwrap();
        fill(run, 37, 1);
        // SAFETY: each call names a live run (the original, then pieces it left) and a
        // part inside it.
        unsafe {
            a.pfree_part(run, 37, at(run, 10), 5).unwrap(); // [0,10) [15,37)
            a.pfree_part(at(run, 15), 22, at(run, 30), 7).unwrap(); // [15,30)
            a.pfree_part(run, 10, at(run, 3), 2).unwrap(); // [0,3) [5,10)
            a.pfree_part(at(run, 15), 15, at(run, 15), 1).unwrap(); // [16,30)
        }
        let live = [(0, 3), (5, 5), (16, 14)];
        let pages: usize = live.iter().map(|l| l.1).sum();
        assert_eq!(a.available(), start.0 - pages * PAGE_SIZE);
        let s = a.stats();
        assert_eq!((s.cur_allocs, s.cur_bytes), (3, pages * PAGE_SIZE));
        assert_eq!((s.total_allocs, s.total_frees), (1, 4));
        for (first, k) in live {
            assert!(holds(at(run, first), k, 1), "piece at page {first}");
        }
        for (first, k) in [(5, 5), (0, 3), (16, 14)] {
            // SAFETY: a live piece.
            unsafe { a.pfree(at(run, first), k) }.unwrap();
        }
        assert_eq!(state(&*a).0, start.0);
        assert_eq!(state(&*a).1, start.1);
    }
}

#[test]
fn checked_buddy_refuses_anything_but_part_of_a_live_run() {
    let arena = Arena::new(128 * PAGE_SIZE, 0);
    let mut a = Kind::BuddyChecked.with_arena(&arena);
    let run = a.palloc(8).unwrap();
    let other = a.palloc(4).unwrap();
    let gone = a.palloc(2).unwrap();
    // SAFETY: a live run.
    unsafe { a.pfree(gone, 2) }.unwrap();
    let before = state(&*a);
    let foreign = NonNull::new(0x1000 as *mut u8).unwrap();
    let misaligned = NonNull::new(run.as_ptr().wrapping_add(8)).unwrap();
    for (r, n, p, m, want) in [
        // Wrong run: a count too short or too long, an interior pointer, a foreign one.
        (run, 7, run, 1, AllocError::BadFree),
        (run, 9, run, 1, AllocError::BadFree),
        (at(run, 1), 7, at(run, 1), 1, AllocError::BadFree),
        (foreign, 1, foreign, 1, AllocError::BadFree),
        // Parts outside the run, empty, misaligned, past the end.
        (run, 8, at(run, 8), 1, AllocError::BadFree),
        (run, 8, at(run, 6), 3, AllocError::BadFree),
        (at(run, 1), 8, run, 1, AllocError::BadFree),
        (run, 8, other, 1, AllocError::BadFree),
        (run, 8, run, 0, AllocError::BadFree),
        (run, 8, misaligned, 1, AllocError::BadFree),
        (run, 8, run, usize::MAX, AllocError::BadFree),
    ] {
        // SAFETY: checked mode validates every argument.
        let r = unsafe { a.pfree_part(r, n, p, m) };
        assert_eq!(r, Err(want), "{r:?} {n} {p:?} {m}");
        assert_eq!(state(&*a), before, "a refusal changes nothing");
    }
    // Free memory is reported as freed when its first page starts a free block, as a bad
    // free when it merged into one that starts lower (where blocks merge depends on the
    // arena's address).
    let freed = |r| matches!(r, Err(AllocError::DoubleFree | AllocError::BadFree));
    // SAFETY: checked mode validates every argument.
    unsafe {
        // A run that was freed.
        assert!(freed(a.pfree_part(gone, 2, gone, 1)));
        assert_eq!(state(&*a), before);
        // After a partial free the old run and the freed part are no runs any more.
        a.pfree_part(run, 8, at(run, 2), 3).unwrap();
        let after = state(&*a);
        assert_eq!(
            a.pfree_part(run, 8, at(run, 6), 1),
            Err(AllocError::BadFree)
        );
        assert_eq!(a.pfree(run, 8), Err(AllocError::BadFree));
        assert!(freed(a.pfree_part(at(run, 2), 3, at(run, 2), 1)));
        assert!(freed(a.pfree(at(run, 2), 3)));
        assert_eq!(
            a.pfree(at(run, 5), 2),
            Err(AllocError::BadFree),
            "part of the tail"
        );
        assert_eq!(state(&*a), after);
        // The pieces are runs of their own.
        a.pfree(run, 2).unwrap();
        assert!(freed(a.pfree(run, 2)));
        a.pfree_part(at(run, 5), 3, at(run, 5), 3).unwrap();
        assert!(freed(a.pfree(at(run, 5), 3)));
        a.pfree(other, 4).unwrap();
    }
    assert_eq!(a.stats().cur_bytes, 0);
}

#[test]
fn unchecked_buddy_recognises_a_freed_run() {
    let arena = Arena::new(64 * PAGE_SIZE, 0);
    let mut a = Kind::Buddy.with_arena(&arena);
    // The first run of a fresh buddy is the start of a block it splits, so once freed its
    // first page heads the merged block again, which the unchecked buddy recognises.
    let run = a.palloc(4).unwrap();
    // SAFETY: a live run, then the same run once freed (see above); the bad part is
    // refused before anything.
    unsafe {
        assert_eq!(
            a.pfree_part(run, 4, at(run, 4), 1),
            Err(AllocError::BadFree)
        );
        a.pfree(run, 4).unwrap();
        let before = state(&*a);
        assert_eq!(a.pfree_part(run, 4, run, 1), Err(AllocError::DoubleFree));
        assert_eq!(state(&*a), before);
    }
}

#[test]
fn tlsf_frees_a_tail_or_the_whole_run_and_refuses_the_rest() {
    for kind in [Kind::Tlsf, Kind::TlsfChecked] {
        let arena = Arena::new(1 << 20, 0);
        let mut a = kind.with_arena(&arena);
        let start = state(&*a);
        let run = a.palloc(10).unwrap();
        let next = a.palloc(1).unwrap();
        fill(run, 10, 7);
        let before = state(&*a);
        // SAFETY: a live run, and parts inside it.
        unsafe {
            for (head, part) in [(0, 3), (3, 4), (0, 1)] {
                assert_eq!(
                    a.pfree_part(run, 10, at(run, head), part),
                    Err(AllocError::Unsupported),
                    "{kind:?}: a part with pages after it"
                );
                assert_eq!(state(&*a), before);
            }
            assert_eq!(
                a.pfree_part(run, 10, at(run, 10), 1),
                Err(AllocError::BadFree)
            );
            assert_eq!(
                a.pfree_part(run, 9, at(run, 8), 1),
                Err(AllocError::BadFree)
            );
            assert_eq!(state(&*a), before);
            a.pfree_part(run, 10, at(run, 6), 4).unwrap();
            let s = a.stats();
            assert_eq!((s.cur_allocs, s.cur_bytes), (2, 7 * PAGE_SIZE));
            assert_eq!(s.total_frees, 1);
            assert!(a.available() >= before.0 + 4 * PAGE_SIZE);
            assert!(holds(run, 6, 7));
            assert_eq!(a.pfree(run, 10), Err(AllocError::BadFree), "the old count");
            // The freed tail is memory the heap hands out again.
            let reuse = a.palloc(3).unwrap();
            fill(reuse, 3, 9);
            assert!(holds(run, 6, 7));
            a.pfree(reuse, 3).unwrap();
            a.pfree_part(run, 6, run, 6).unwrap();
            assert_eq!(a.pfree(run, 6), Err(AllocError::DoubleFree));
            a.pfree(next, 1).unwrap();
        }
        let end = state(&*a);
        assert_eq!((end.0, end.1), (start.0, start.1), "merged back");
        assert_eq!(end.2.cur_bytes, 0);
    }
}

#[test]
fn the_region_allocator_and_the_default_refuse_and_change_nothing() {
    let arena = Arena::new(64 * PAGE_SIZE, 0);
    let mut a = Kind::Region.with_arena(&arena);
    let run = a.palloc(4).unwrap();
    let before = state(&*a);
    // SAFETY: a live run and parts inside it; the region allocator validates anyway.
    unsafe {
        for (head, part) in [(0, 4), (0, 1), (3, 1), (1, 2)] {
            assert_eq!(
                a.pfree_part(run, 4, at(run, head), part),
                Err(AllocError::Unsupported)
            );
            assert_eq!(state(&*a), before);
        }
        a.pfree(run, 4).unwrap();
    }
    assert_eq!(AllocError::Unsupported.errno(), uk_alloc::EINVAL);
}

/// `Buddy::remove_free_region` gives a region back only once every page of it is free
/// (after whole and partial frees alike), returns its page-aligned memory, metadata
/// included, and leaves the other regions serving; anything else changes nothing.
#[test]
fn buddy_gives_back_a_region_only_when_all_of_it_is_free() {
    for checked in [false, true] {
        let (one, two) = (Arena::new(1 << 20, 100), Arena::new(1 << 20, 0));
        let mut b = if checked {
            uk_alloc::Buddy::new_checked()
        } else {
            uk_alloc::Buddy::new()
        };
        // SAFETY: two arenas of this test, used by nothing else.
        unsafe {
            b.add_memory(one.base, one.len).unwrap();
            b.add_memory(two.base, two.len).unwrap();
        }
        let both = b.available();
        let runs: Vec<_> = (0..6).map(|_| b.palloc(20).unwrap()).collect();
        let in_one: Vec<_> = runs
            .iter()
            .copied()
            .filter(|r| {
                (one.base as usize..one.base as usize + one.len).contains(&(r.as_ptr() as usize))
            })
            .collect();
        assert!(!in_one.is_empty(), "some runs come from the first region");
        let held = state(&b);
        assert_eq!(b.remove_free_region(one.base.wrapping_add(5000)), None);
        assert_eq!(b.remove_free_region(std::ptr::null()), None, "in no region");
        assert_eq!(state(&b), held, "a refusal changes nothing");
        // Free the first region's runs: one whole, the others in parts.
        for (i, &r) in in_one.iter().enumerate() {
            // SAFETY: live runs of 20 pages, each freed once, in pieces or whole.
            unsafe {
                if i % 2 == 0 {
                    b.pfree(r, 20).unwrap();
                } else {
                    b.pfree_part(r, 20, at(r, 5), 10).unwrap();
                    assert_eq!(b.remove_free_region(one.base), None, "pieces still live");
                    b.pfree(r, 5).unwrap();
                    b.pfree(at(r, 15), 5).unwrap();
                }
            }
        }
        // Any address of the region names it, its metadata pages too (the arena starts 100
        // bytes into a page: the region from the next page on).
        let aligned = (one.base as usize).next_multiple_of(PAGE_SIZE);
        assert_eq!(
            b.remove_free_region(one.base),
            None,
            "before the region's first page"
        );
        let (start, len) = b
            .remove_free_region(one.base.wrapping_add(aligned - one.base as usize + 10))
            .unwrap();
        assert_eq!(start.as_ptr() as usize, aligned);
        assert_eq!(
            len,
            (one.base as usize + one.len) / PAGE_SIZE * PAGE_SIZE - aligned
        );
        assert_eq!(b.remove_free_region(start.as_ptr()), None, "gone already");
        // The second region serves on; its runs are intact.
        let rest: Vec<_> = runs
            .iter()
            .copied()
            .filter(|r| !in_one.contains(r))
            .collect();
        // Exactly the first region's free pages left the allocator: what a buddy over
        // that region alone has free.
        let alone = {
            let copy = Arena::new(1 << 20, 100);
            let mut solo = if checked {
                uk_alloc::Buddy::new_checked()
            } else {
                uk_alloc::Buddy::new()
            };
            // SAFETY: an arena of this test, used by nothing else.
            unsafe { solo.add_memory(copy.base, copy.len).unwrap() };
            solo.available()
        };
        assert_eq!(b.available(), both - alone - rest.len() * 20 * PAGE_SIZE);
        let more = b.palloc(8).unwrap();
        assert!(
            (two.base as usize..two.base as usize + two.len).contains(&(more.as_ptr() as usize))
        );
        // SAFETY: live runs, each freed once.
        unsafe {
            b.pfree(more, 8).unwrap();
            for r in rest {
                b.pfree(r, 20).unwrap();
            }
        }
        // The memory given back can be given again.
        // SAFETY: the memory the allocator gave back, owned by this test again.
        unsafe { b.add_memory(start.as_ptr(), len).unwrap() };
        assert_eq!(b.available(), both, "the same pages as before");
        assert_eq!(b.stats().cur_allocs, 0);
    }
}
