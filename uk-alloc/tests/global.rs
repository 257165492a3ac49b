//! The `GlobalAlloc` adapter over every backend, with both lock types.
#![cfg(all(feature = "tlsf", feature = "buddy", feature = "region"))]

mod common;

use std::alloc::{GlobalAlloc, Layout};

use common::Arena;
use uk_alloc::{Allocator, Buddy, CheckedTlsf, CriticalSectionRawMutex, Locked, Region, Tlsf};

/// Allocates, grows, shrinks and frees blocks of assorted layouts through `GlobalAlloc`,
/// checking alignment and contents.
fn exercise<G: GlobalAlloc>(heap: &G) {
    let mut blocks: Vec<(*mut u8, Layout, u8)> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..2000u32 {
        let r = next();
        if r % 3 != 0 || blocks.is_empty() {
            let size = 1 + (r >> 8) as usize % 3000;
            let align = 1usize << ((r >> 40) % 10);
            let layout = Layout::from_size_align(size, align).unwrap();
            let zeroed = r % 5 == 0;
            // SAFETY: non-zero size.
            let p = unsafe {
                if zeroed {
                    heap.alloc_zeroed(layout)
                } else {
                    heap.alloc(layout)
                }
            };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            // SAFETY: `p` holds `size` bytes.
            unsafe {
                if zeroed {
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                }
                p.write_bytes(i as u8, size);
            }
            blocks.push((p, layout, i as u8));
        } else {
            let j = (r >> 16) as usize % blocks.len();
            let (p, layout, fill) = blocks.swap_remove(j);
            // SAFETY: `p` is live with `layout`.
            unsafe {
                assert!(
                    std::slice::from_raw_parts(p, layout.size())
                        .iter()
                        .all(|&b| b == fill)
                );
                if r % 2 == 0 {
                    let new_size = 1 + (r >> 24) as usize % 6000;
                    let q = heap.realloc(p, layout, new_size);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % layout.align(), 0);
                    let kept = layout.size().min(new_size);
                    assert!(
                        std::slice::from_raw_parts(q, kept)
                            .iter()
                            .all(|&b| b == fill)
                    );
                    q.write_bytes(fill, new_size);
                    let nl = Layout::from_size_align(new_size, layout.align()).unwrap();
                    blocks.push((q, nl, fill));
                } else {
                    heap.dealloc(p, layout);
                }
            }
        }
    }
    for (p, layout, _) in blocks {
        // SAFETY: live.
        unsafe { heap.dealloc(p, layout) };
    }
}

#[test]
fn every_backend_serves_global_alloc() {
    let arena = Arena::new(64 << 20, 0);
    // Each heap lives in its own block, so one allocator at a time owns the arena.
    {
        let heap: Locked<Tlsf> = Locked::new(Tlsf::new());
        // SAFETY: the arena outlives `heap`.
        unsafe { heap.lock().add_memory(arena.base, arena.len).unwrap() };
        exercise(&heap);
        assert_eq!(heap.lock().stats().cur_allocs, 0);
        assert_eq!(heap.rejected_frees(), 0);
    }
    {
        let heap: Locked<Buddy, CriticalSectionRawMutex> = Locked::new(Buddy::new_checked());
        // SAFETY: as above.
        unsafe { heap.lock().add_memory(arena.base, arena.len).unwrap() };
        exercise(&heap);
        assert_eq!(heap.lock().stats().cur_allocs, 0);
    }
    {
        let heap: Locked<Region> = Locked::new(Region::new());
        // SAFETY: as above.
        unsafe { heap.lock().add_memory(arena.base, arena.len).unwrap() };
        exercise(&heap);
        assert_eq!(heap.lock().stats().cur_allocs, 0);
    }
}

#[test]
fn rejected_frees_are_counted_not_applied() {
    let arena = Arena::new(1 << 20, 0);
    let heap: Locked<CheckedTlsf> = Locked::new(Tlsf::new_checked());
    // SAFETY: the arena outlives `heap`.
    unsafe { heap.lock().add_memory(arena.base, arena.len).unwrap() };
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: the checked backend validates every pointer, so the bad frees below are
    // refused rather than undefined.
    unsafe {
        let p = heap.alloc(layout);
        heap.dealloc(p.add(16), layout);
        heap.dealloc(p, layout);
        heap.dealloc(p, layout);
    }
    assert_eq!(heap.rejected_frees(), 2);
    assert_eq!(heap.lock().stats().cur_allocs, 0);
}

#[test]
fn critical_section_mutex_refuses_reentry() {
    let heap: Locked<Tlsf, CriticalSectionRawMutex> = Locked::new(Tlsf::new());
    let guard = heap.lock();
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _second = heap.lock();
    }));
    assert!(again.is_err(), "a nested lock must panic, not deadlock");
    drop(guard);
    drop(heap.lock());
}
