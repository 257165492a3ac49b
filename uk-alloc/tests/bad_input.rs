//! Bad input: foreign, interior and repeated frees, foreign reallocs, wrong page counts,
//! zero and overflowing sizes, invalid alignments. Each is refused with a typed error and
//! leaves the allocator exactly as it was.
#![cfg(all(feature = "tlsf", feature = "buddy", feature = "region"))]

mod common;

use std::ptr::NonNull;

use common::{ALL, Arena, CHECKED, Kind};
use uk_alloc::{AllocError, Allocator, MAX_REQUEST, PAGE_SIZE};

/// Everything observable about an allocator's state.
fn snapshot(a: &dyn Allocator) -> (uk_alloc::Stats, usize, usize, usize) {
    (a.stats(), a.available(), a.max_alloc(), a.max_pages())
}

#[test]
fn checked_backends_refuse_bad_frees() {
    for kind in CHECKED {
        let arena = Arena::new(1 << 20, 0);
        let other = Arena::new(1 << 16, 0);
        let mut a = kind.with_arena(&arena);
        let p = a.malloc(100).unwrap();
        let q = a.malloc(5000).unwrap();
        let pages = a.palloc(3).unwrap();
        let mut on_stack = [0u128; 4];
        let before = snapshot(&*a);
        let bad: Vec<(NonNull<u8>, &str)> = vec![
            (NonNull::from(&mut on_stack).cast(), "stack"),
            (
                NonNull::new(other.base.wrapping_add(64)).unwrap(),
                "other arena",
            ),
            (
                NonNull::new(p.as_ptr().wrapping_add(16)).unwrap(),
                "interior",
            ),
            (
                NonNull::new(p.as_ptr().wrapping_add(1)).unwrap(),
                "misaligned",
            ),
            (
                NonNull::new(q.as_ptr().wrapping_add(4096)).unwrap(),
                "interior page",
            ),
            (NonNull::new(arena.base).unwrap(), "arena start"),
            (
                NonNull::new(pages.as_ptr().wrapping_add(PAGE_SIZE)).unwrap(),
                "inside pages",
            ),
        ];
        for (ptr, what) in &bad {
            // SAFETY: checked backends accept any pointer value.
            unsafe {
                assert_eq!(
                    a.free(*ptr),
                    Err(AllocError::BadFree),
                    "{kind:?} free {what}"
                );
                assert_eq!(
                    a.realloc(Some(*ptr), 10),
                    Err(AllocError::BadFree),
                    "{kind:?} realloc {what}"
                );
                assert!(a.pfree(*ptr, 1).is_err(), "{kind:?} pfree {what}");
                assert!(
                    a.allocation_size(*ptr).is_err(),
                    "{kind:?} allocation_size {what}"
                );
            }
            assert_eq!(snapshot(&*a), before, "{kind:?}: state changed by {what}");
        }
        // SAFETY: as above; `p`, `q` and `pages` are live until freed here.
        unsafe {
            assert_eq!(a.pfree(pages, 2), Err(AllocError::BadFree), "{kind:?}");
            assert_eq!(a.pfree(pages, 4), Err(AllocError::BadFree), "{kind:?}");
            assert_eq!(snapshot(&*a), before);
            a.free(p).unwrap();
            a.free(q).unwrap();
            a.pfree(pages, 3).unwrap();
            let after = snapshot(&*a);
            for ptr in [p, q] {
                assert_eq!(
                    a.free(ptr),
                    Err(AllocError::DoubleFree),
                    "{kind:?} double free"
                );
                assert_eq!(
                    a.realloc(Some(ptr), 1),
                    Err(AllocError::DoubleFree),
                    "{kind:?}"
                );
                assert_eq!(
                    a.allocation_size(ptr),
                    Err(AllocError::DoubleFree),
                    "{kind:?}"
                );
            }
            assert!(a.pfree(pages, 3).is_err(), "{kind:?} double pfree");
            assert_eq!(snapshot(&*a), after);
        }
        // The heap still works.
        let r = a.malloc(1000).unwrap();
        // SAFETY: live.
        unsafe { a.free(r).unwrap() };
        drop(a);
    }
}

/// Without checked mode, an immediate second free of the same pointer is still caught.
#[test]
fn unchecked_backends_catch_an_immediate_double_free() {
    for kind in [Kind::Tlsf, Kind::Buddy] {
        let arena = Arena::new(1 << 20, 0);
        let mut a = kind.with_arena(&arena);
        let keep = a.malloc(64).unwrap();
        let p = a.malloc(64).unwrap();
        let q = a.malloc(64).unwrap();
        // SAFETY: the double frees are of pointers whose memory nobody reused in between,
        // which the unchecked backends document as detected.
        unsafe {
            a.free(p).unwrap();
            let after = snapshot(&*a);
            assert_eq!(a.free(p), Err(AllocError::DoubleFree), "{kind:?}");
            a.free(q).unwrap();
            assert_eq!(
                a.free(q),
                Err(AllocError::DoubleFree),
                "{kind:?} after merge"
            );
            assert_eq!(
                a.free(p),
                Err(AllocError::DoubleFree),
                "{kind:?} after merge"
            );
            let _ = after;
            a.free(keep).unwrap();
        }
        drop(a);
    }
}

#[test]
fn sizes_and_alignments_behave_as_glibc() {
    for kind in ALL {
        let arena = Arena::new(1 << 20, 0);
        let mut a = kind.with_arena(&arena);
        let before = snapshot(&*a);
        let mut enomem = 0;
        // Sizes above isize::MAX, or whose rounding overflows: ENOMEM, counted.
        for n in [usize::MAX, usize::MAX - 15, MAX_REQUEST + 1, MAX_REQUEST] {
            assert_eq!(
                a.malloc(n),
                Err(AllocError::NoMem),
                "{kind:?} malloc({n:#x})"
            );
            assert_eq!(a.memalign(4096, n), Err(AllocError::NoMem), "{kind:?}");
            enomem += 2;
        }
        assert_eq!(a.calloc(usize::MAX, 2), Err(AllocError::NoMem));
        assert_eq!(a.calloc(1 << 40, 1 << 40), Err(AllocError::NoMem));
        assert_eq!(a.palloc(usize::MAX / 2), Err(AllocError::NoMem));
        assert_eq!(a.palloc(0), Err(AllocError::NoMem));
        enomem += 4;
        // posix_memalign: EINVAL for a non-power-of-two or a non-multiple of the pointer
        // size, not counted as ENOMEM.
        for align in [0, 1, 2, 4, 3, 24, 48, usize::MAX] {
            assert_eq!(
                a.posix_memalign(align, 8),
                Err(AllocError::Inval),
                "{kind:?} {align}"
            );
        }
        assert_eq!(a.alloc_aligned(3, 8), Err(AllocError::Inval));
        // memalign: glibc rounds a non-power-of-two up, refuses only the impossible.
        assert_eq!(a.memalign(usize::MAX, 8), Err(AllocError::Inval));
        assert_eq!(
            a.memalign(1 << (usize::BITS - 1), 8),
            Err(AllocError::NoMem)
        );
        enomem += 1;
        let s = a.stats();
        assert_eq!(s.enomem, enomem, "{kind:?}");
        assert_eq!((s.total_allocs, s.cur_bytes), (0, 0));
        assert_eq!(
            (a.available(), a.max_alloc()),
            (before.1, before.2),
            "{kind:?}: failures changed the heap"
        );
        let p = a.memalign(48, 10).unwrap();
        assert_eq!(p.as_ptr() as usize % 64, 0, "{kind:?}: 48 rounds up to 64");
        let q = a.posix_memalign(256, 0).unwrap();
        assert_eq!(q.as_ptr() as usize % 256, 0);
        // malloc(0) pointers are unique and freeable.
        let z1 = a.malloc(0).unwrap();
        let z2 = a.malloc(0).unwrap();
        assert_ne!(z1, z2);
        // A failing realloc keeps the old block.
        // SAFETY: `p` is live and holds 10 bytes.
        unsafe {
            p.as_ptr().write_bytes(7, 10);
            assert_eq!(a.realloc(Some(p), usize::MAX), Err(AllocError::NoMem));
            assert_eq!(a.realloc(Some(p), MAX_REQUEST), Err(AllocError::NoMem));
            assert!(
                std::slice::from_raw_parts(p.as_ptr(), 10)
                    .iter()
                    .all(|&b| b == 7)
            );
            // realloc(NULL, n) is malloc; realloc(p, 0) frees.
            let r = a.realloc(None, 0).unwrap().unwrap();
            assert_eq!(a.realloc(Some(r), 0), Ok(None));
            for x in [p, q, z1, z2] {
                a.free(x).unwrap();
            }
        }
        assert_eq!(a.stats().cur_allocs, 0);
        drop(a);
    }
}

/// The byte limit refuses exactly what would exceed it, and nothing changes when it does.
#[test]
fn limit_is_exact() {
    for kind in ALL {
        let arena = Arena::new(1 << 22, 0);
        let mut a = kind.with_arena(&arena);
        a.set_limit(Some(10_000));
        let p = a.malloc(6_000).unwrap();
        assert_eq!(a.max_alloc(), 4_000, "{kind:?}");
        assert_eq!(a.max_pages(), 0, "{kind:?}");
        let before = snapshot(&*a);
        assert_eq!(a.malloc(4_001), Err(AllocError::NoMem));
        assert_eq!(a.calloc(4_001, 1), Err(AllocError::NoMem));
        assert_eq!(a.palloc(1), Err(AllocError::NoMem));
        // SAFETY: `p` is live.
        let grown = unsafe { a.realloc(Some(p), 10_001) };
        assert_eq!(grown, Err(AllocError::NoMem));
        let after = snapshot(&*a);
        assert_eq!(after.0.enomem, before.0.enomem + 4, "{kind:?}");
        let mut s = after.0;
        s.enomem = before.0.enomem;
        assert_eq!((s, after.1, after.2, after.3), before, "{kind:?}");
        // Up to the limit exactly.
        let q = a.malloc(4_000).unwrap();
        assert_eq!(a.malloc(1), Err(AllocError::NoMem));
        let z = a.malloc(0).unwrap();
        // SAFETY: `p`, `q` and `z` are live until freed below.
        unsafe {
            let p = a.realloc(Some(p), 5_000).unwrap().unwrap();
            let q = a.realloc(Some(q), 5_000).unwrap().unwrap();
            assert_eq!(a.realloc(Some(q), 5_001), Err(AllocError::NoMem));
            // Lowering the limit below the use only blocks further allocations.
            a.set_limit(Some(100));
            assert_eq!(a.malloc(1), Err(AllocError::NoMem));
            a.free(p).unwrap();
            a.free(q).unwrap();
            a.free(z).unwrap();
        }
        let r = a.malloc(100).unwrap();
        assert_eq!(a.malloc(1), Err(AllocError::NoMem));
        a.set_limit(None);
        assert_eq!(a.limit(), None);
        let t = a.malloc(100_000).unwrap();
        // SAFETY: live.
        unsafe {
            a.free(r).unwrap();
            a.free(t).unwrap();
        }
        drop(a);
    }
}
