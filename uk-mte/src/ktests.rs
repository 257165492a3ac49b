//! In-image test cases (features `ktest` and `ktest-faults`).
//!
//! Every case enables synchronous tag checking first (once per image) and clears
//! `PSTATE.TCO`, which an earlier case's exception may have left set (the runner continues
//! after an exception without returning from it). Without FEAT_MTE2 the `ktest` cases check
//! that [`Tagged`] passes through, or have nothing to check and say so; they pass either way.
//! The `ktest-faults` cases are `#[should_fail]` and need MTE2: see the crate documentation.
//!
//! The cases share one tagged heap, a [`Tagged`] TLSF over a chunk of the image's heap.
//! Faulting accesses happen with its lock released, so a fault never leaves it locked. A
//! case that fails where nobody expected it (a stack overflow, a failed `expect!` while the
//! heap is locked or being set up) is abandoned, never unwound: the next case finds the heap
//! locked or half set up, and fails saying so instead of spinning forever.

extern crate alloc;

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};

use spin::{Mutex, MutexGuard, Once};
use uk_alloc::{AllocError, Allocator, Buddy, Tlsf};
use uk_rt::println;
use uk_test::{expect, expect_eq, ktest};

use crate::tag::{self, GRANULE, Tag, tag_of};
use crate::{CheckMode, Tagged, detect, enabled, regs};

/// Bytes of the chunk the tagged heap manages.
const HEAP_BYTES: usize = 512 * 1024;

static STATUS: Once<Result<(), crate::MteError>> = Once::new();
/// The shared tagged heap, built at compile time: an unoptimised build would move the TLSF
/// control block (about 10 KiB) through a dozen stack temporaries to build it at run time
/// (a 78 KiB frame, past the boot stack's end).
static HEAP: Mutex<Tagged<Tlsf>> = Mutex::new(Tagged::new(Tlsf::new()));
/// Whether [`HEAP`] has its memory: [`EMPTY`], [`GIVING`] (a case is giving it, or failed
/// while it did) or [`READY`].
static HEAP_STATE: AtomicU8 = AtomicU8::new(EMPTY);
const EMPTY: u8 = 0;
const GIVING: u8 = 1;
const READY: u8 = 2;

/// Enables synchronous checks (once), clears `PSTATE.TCO`, and tells whether MTE is on.
fn prepare() -> bool {
    let status = STATUS.call_once(|| {
        let status = crate::enable(CheckMode::Synchronous);
        match &status {
            Ok(()) => println!(
                "    uk-mte: MTE level {}, synchronous tag checks on",
                detect().level
            ),
            Err(e) => println!("    uk-mte: {e}: the tagging allocator passes through"),
        }
        status
    });
    if status.is_ok() {
        let _ = crate::set_mode(CheckMode::Synchronous);
        crate::set_tag_check_override(false);
    }
    enabled()
}

/// The shared tagged heap (a chunk of the image heap, given on first use, never given
/// back), locked. Cases run one at a time on one CPU, so a lock already held or a setup
/// already under way belongs to an abandoned case: that fails the calling case (a panic)
/// rather than spinning forever.
fn heap() -> MutexGuard<'static, Tagged<Tlsf>> {
    let mut heap = HEAP
        .try_lock()
        .expect("the tagged heap is locked: a case failed while it held it");
    match HEAP_STATE.compare_exchange(EMPTY, GIVING, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {
            let layout = Layout::from_size_align(HEAP_BYTES, 4096).expect("layout");
            // SAFETY: a non-zero size; the result is checked.
            let chunk = unsafe { alloc::alloc::alloc(layout) };
            assert!(!chunk.is_null(), "no memory for the tagged heap");
            // SAFETY: the chunk is a fresh allocation that is never freed nor used otherwise;
            // memory from the image heap carries allocation tag 0 (nothing tags it).
            unsafe { heap.add_memory(chunk, HEAP_BYTES) }.expect("tagged heap");
            HEAP_STATE.store(READY, Ordering::SeqCst);
        }
        Err(READY) => {}
        Err(_) => panic!("the tagged heap has no memory: a case failed while giving it"),
    }
    heap
}

/// The allocation tag of the granule at `ptr` (tag 0 while MTE is off).
fn memory_tag(ptr: NonNull<u8>) -> Tag {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    if enabled() {
        // SAFETY: MTE is on and `ptr` points into the tagged heap.
        return unsafe { crate::arch::ldg(tag::strip_address(ptr.as_ptr() as usize)) };
    }
    let _ = ptr;
    Tag::ZERO
}

/// xorshift64*: cheap, deterministic pseudo-random numbers for the random workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

ktest! {
    /// MTE is detected and, with FEAT_MTE2, enabled with the documented register values:
    /// synchronous checks with tag access, top-byte-ignore without the tag-0 exemption,
    /// tags 0 and 15 excluded, a non-zero seed, RAM mapped Normal Tagged.
    fn mte_is_detected_and_enabled() {
        let on = prepare();
        let support = detect();
        // The board maps RAM Normal Tagged exactly when the CPU has MTE2.
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        {
            let probe = 0u64;
            let attribute = crate::memory_attribute(&raw const probe as usize);
            let expected = if support.has_mte2() { regs::NORMAL_TAGGED } else { 0xff };
            expect_eq!(attribute, Some(expected));
        }
        if !on {
            let status = STATUS.get().copied();
            match status {
                // No MTE2 (x86_64, cortex-a72, or `-cpu max` without tag memory).
                Some(Err(crate::MteError::NotSupported { level })) => {
                    expect!(!support.has_mte2());
                    expect_eq!(level, support.level);
                }
                // MTE2 advertised, but the emulator keeps one tag per page: refused.
                Some(Err(crate::MteError::TagStorageBroken)) => expect!(support.has_mte2()),
                other => expect!(false, "unexpected: {other:?}"),
            }
            expect_eq!(crate::enable(CheckMode::Synchronous), status.unwrap_or(Ok(())));
            expect!(!crate::take_async_faults());
            expect_eq!(crate::registers(), crate::Registers::default());
            return;
        }
        expect!(support.has_mte2());
        let r = crate::registers();
        expect_eq!(regs::sctlr_mode(r.sctlr), Some(CheckMode::Synchronous));
        expect!(r.tcr & regs::TCR_TBI0 != 0);
        expect_eq!(r.tcr & regs::TCR_TCMA0, 0);
        expect_eq!(r.gcr & 0x1_ffff, 0x8001);
        expect!(regs::rgsr_seed(r.rgsr) != 0);
        expect!(!r.tco);
        let p = heap().malloc(64);
        if let Ok(p) = p {
            expect_eq!(crate::memory_attribute(tag::strip_address(p.as_ptr() as usize)), Some(regs::NORMAL_TAGGED));
            // `gmi` agrees with the mask arithmetic.
            #[cfg(all(target_arch = "aarch64", target_os = "none"))]
            {
                // SAFETY: MTE is on.
                let m = unsafe { crate::arch::gmi(p.as_ptr() as usize, crate::ExcludeMask::RESERVED) };
                expect_eq!(m, crate::ExcludeMask::RESERVED.with(tag_of(p.as_ptr())));
            }
            // SAFETY: live.
            expect!(unsafe { heap().free(p) }.is_ok());
        }
        expect!(p.is_ok());
        println!("    uk-mte: GMID_EL1 block {} bytes, RNDR {}", regs::gmid_block_bytes(r.gmid), if support.rndr { "seeds the tags" } else { "absent" });
    }
}

ktest! {
    /// 100 000 random allocations, reallocations and frees (1 to 512 bytes) on the tagged
    /// heap: every in-bounds byte is written and read back through its tagged pointer and
    /// nothing faults; every pointer's tag matches its memory's and is never 0 or 15.
    /// Without MTE2 the same workload checks the pass-through (untagged pointers).
    fn in_bounds_accesses_never_fault() {
        let on = prepare();
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        let mut live: [(Option<NonNull<u8>>, usize, u8); 64] = [(None, 0, 0); 64];
        let mut h = heap();
        let before = h.stats();
        let mut bad_tag = 0usize;
        let mut bad_data = 0usize;
        let mut failed = 0usize;
        for step in 0..100_000u32 {
            let slot = rng.below(live.len() as u64) as usize;
            let (ptr, size, fill) = live[slot];
            if let Some(p) = ptr {
                // SAFETY: a live allocation of `size` bytes filled with `fill`.
                let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), size) };
                bad_data += usize::from(bytes.iter().any(|&b| b != fill));
            }
            let new_size = 1 + rng.below(512) as usize;
            let result = match (ptr, rng.below(4)) {
                // SAFETY: `p` is live; it is replaced by the result.
                (Some(p), 0) => unsafe { h.realloc(Some(p), new_size) },
                (Some(p), _) => {
                    // SAFETY: live, freed once.
                    let freed = unsafe { h.free(p) };
                    freed.map(|()| None)
                }
                (None, _) => h.malloc(new_size).map(Some),
            };
            let Ok(result) = result else {
                failed += 1;
                break;
            };
            live[slot] = (None, 0, 0);
            if let Some(p) = result {
                if let (Some(_), true) = (ptr, size > 0) {
                    // A reallocation kept the old contents.
                    // SAFETY: the first `min(size, new_size)` bytes are the old ones.
                    let kept = unsafe { core::slice::from_raw_parts(p.as_ptr(), size.min(new_size)) };
                    bad_data += usize::from(kept.iter().any(|&b| b != fill));
                }
                let fill = step as u8 | 1;
                // SAFETY: the allocation holds `new_size` bytes.
                unsafe { p.as_ptr().write_bytes(fill, new_size) };
                let t = tag_of(p.as_ptr());
                let ok = if on {
                    t != Tag::ZERO && t != Tag::MAX && memory_tag(p) == t
                        && memory_tag(p.map_addr(|a| a.saturating_add(tag::tagged_len(new_size) - GRANULE))) == t
                } else {
                    t == Tag::ZERO
                };
                bad_tag += usize::from(!ok);
                live[slot] = (Some(p), new_size, fill);
            }
        }
        for (ptr, _, _) in live {
            if let Some(p) = ptr {
                // SAFETY: live, freed once.
                failed += usize::from(unsafe { h.free(p) }.is_err());
            }
        }
        let after = h.stats();
        drop(h);
        expect_eq!(failed, 0);
        expect_eq!(bad_data, 0);
        expect_eq!(bad_tag, 0);
        expect_eq!(after.cur_bytes, before.cur_bytes);
        expect_eq!(after.cur_allocs, before.cur_allocs);
        if !on {
            println!("    uk-mte: tagging off: checked the pass-through only");
        }
    }
}

/// `N` allocations from `alloc`, or `None` once one fails (reported as a failed
/// expectation naming `what`).
fn take<const N: usize>(
    what: &str,
    mut alloc: impl FnMut() -> Result<NonNull<u8>, AllocError>,
) -> Option<[NonNull<u8>; N]> {
    let mut taken = [NonNull::<u8>::dangling(); N];
    for slot in taken.iter_mut() {
        match alloc() {
            Ok(p) => *slot = p,
            Err(e) => {
                expect!(false, "{what}: {e}");
                return None;
            }
        }
    }
    Some(taken)
}

/// Runs `check` on a fresh tagged `backend` that manages a chunk of the image heap of its own,
/// so that the layout of its allocations does not depend on what earlier cases left in the
/// shared heap. The allocator dies before the chunk is given back, and only if `check`
/// returns `true` (it freed everything, so every tag is 0 again); otherwise the chunk is
/// leaked rather than handed back to the untagged image heap with tags still set.
fn with_fresh_tagged<A: Allocator>(
    backend: A,
    bytes: usize,
    check: impl FnOnce(&mut Tagged<A>) -> bool,
) {
    let layout = Layout::from_size_align(bytes, 4096).expect("layout");
    // SAFETY: a non-zero size; the result is checked, and freed below.
    let Some(chunk) = NonNull::new(unsafe { alloc::alloc::alloc(layout) }) else {
        return expect!(false, "no chunk of {bytes} bytes");
    };
    let all_freed = {
        let mut tagged = Tagged::new(backend);
        // SAFETY: the chunk outlives `tagged` (dropped before the chunk is freed) and is
        // used by nothing else; memory from the image heap carries allocation tag 0.
        match unsafe { tagged.add_memory(chunk.as_ptr(), bytes) } {
            Ok(()) => check(&mut tagged),
            Err(e) => {
                expect!(false, "add_memory: {e}");
                true
            }
        }
    };
    if all_freed {
        // SAFETY: allocated above with `layout`; every tag in it is 0 again (free re-tags
        // to 0, and `check` freed everything it allocated).
        unsafe { alloc::alloc::dealloc(chunk.as_ptr(), layout) };
    }
}

ktest! {
    /// Allocations next to each other get different tags (blocks separated by one header
    /// granule, and page runs that touch), and memory between them keeps tag 0.
    fn neighbouring_allocations_get_different_tags() {
        if !prepare() {
            return println!("    uk-mte: tagging off: nothing to check (skipped)");
        }
        with_fresh_tagged(Tlsf::new(), 64 * 1024, |h| {
            let Some(blocks) = take::<48>("malloc", || h.malloc(48)) else {
                return false;
            };
            let mut neighbours = 0;
            for a in &blocks {
                for b in &blocks {
                    let (x, y) = (a.as_ptr() as usize, b.as_ptr() as usize);
                    let (x, y) = (tag::strip_address(x), tag::strip_address(y));
                    // `b` starts one header granule after `a` ends.
                    if y == x + 48 + GRANULE {
                        neighbours += 1;
                        expect!(tag_of(a.as_ptr()) != tag_of(b.as_ptr()), "{a:p} and {b:p}");
                        let header = a.map_addr(|p| p.saturating_add(48));
                        expect_eq!(memory_tag(header), Tag::ZERO);
                    }
                }
            }
            expect!(neighbours >= 24, "only {neighbours} neighbouring pairs");
            for p in blocks {
                // SAFETY: live, freed once.
                expect!(unsafe { h.free(p) }.is_ok());
            }
            true
        });

        // Page runs that touch, from a tagged buddy allocator.
        with_fresh_tagged(Buddy::new(), 128 * 1024, |buddy| {
            let Some(pages) = take::<12>("palloc", || buddy.palloc(1)) else {
                return false;
            };
            let mut touching = 0;
            for a in &pages {
                for b in &pages {
                    let (x, y) = (tag::strip_address(a.as_ptr() as usize), tag::strip_address(b.as_ptr() as usize));
                    if y == x + 4096 {
                        touching += 1;
                        expect!(tag_of(a.as_ptr()) != tag_of(b.as_ptr()), "{a:p} and {b:p}");
                    }
                }
            }
            expect!(touching >= 6, "only {touching} touching runs");
            for p in pages {
                // SAFETY: live runs of one page, freed once.
                expect!(unsafe { buddy.pfree(p, 1) }.is_ok());
            }
            true
        });
    }
}

ktest! {
    /// `free` re-tags the memory to 0 (and a second free is recognised), `realloc` strips
    /// the tag before the backend sees the pointer and gives the result a new tag, in place
    /// or moved; a failed `realloc` keeps the old allocation usable.
    fn free_and_realloc_retag() {
        if !prepare() {
            // Pass-through: the same calls work with untagged pointers.
            let mut h = heap();
            let p = h.malloc(64).expect("malloc");
            expect_eq!(tag_of(p.as_ptr()), Tag::ZERO);
            // SAFETY: live; then freed once.
            unsafe {
                let q = h.realloc(Some(p), 4000).expect("realloc").expect("pointer");
                expect_eq!(h.allocation_size(q), Ok(4000));
                expect!(h.free(q).is_ok());
            }
            return println!("    uk-mte: tagging off: checked the pass-through only");
        }
        let mut h = heap();
        let Ok(p) = h.malloc(64) else {
            return expect!(false, "malloc");
        };
        let t = tag_of(p.as_ptr());
        // SAFETY: live, then freed; the second free must be refused.
        unsafe {
            expect!(h.free(p).is_ok());
            expect_eq!(h.free(p), Err(AllocError::DoubleFree));
        }
        expect_eq!(memory_tag(p), Tag::ZERO);
        expect!(t != Tag::ZERO);

        let Ok(q) = h.malloc(100) else {
            return expect!(false, "malloc");
        };
        // SAFETY: `q` is live; each result replaces it.
        unsafe {
            q.as_ptr().write_bytes(7, 100);
            // Shrinking stays in place: same address, new tag.
            let r = h.realloc(Some(q), 90).expect("realloc").expect("pointer");
            expect_eq!(tag::strip_address(r.as_ptr() as usize), tag::strip_address(q.as_ptr() as usize));
            expect!(tag_of(r.as_ptr()) != tag_of(q.as_ptr()));
            expect_eq!(memory_tag(r), tag_of(r.as_ptr()));
            // The granule given back by the shrink is untagged again.
            expect_eq!(memory_tag(r.map_addr(|a| a.saturating_add(96))), Tag::ZERO);
            // Growing past a neighbour moves it: the old memory is untagged, the contents
            // kept (in place, the tag would change as above).
            let blocker = h.malloc(16).expect("malloc");
            let s = h.realloc(Some(r), 20_000).expect("realloc").expect("pointer");
            expect!(tag_of(s.as_ptr()) != tag_of(r.as_ptr()));
            if tag::strip_address(s.as_ptr() as usize) != tag::strip_address(r.as_ptr() as usize) {
                expect_eq!(memory_tag(r), Tag::ZERO);
            }
            expect_eq!(memory_tag(s), tag_of(s.as_ptr()));
            expect!(h.free(blocker).is_ok());
            expect!(core::slice::from_raw_parts(s.as_ptr(), 90).iter().all(|&b| b == 7));
            expect_eq!(h.allocation_size(s), Ok(20_000));
            // Too large: refused, and the old allocation is intact and still tagged.
            expect_eq!(h.realloc(Some(s), 1 << 40), Err(AllocError::NoMem));
            expect_eq!(memory_tag(s), tag_of(s.as_ptr()));
            s.as_ptr().add(19_999).write_volatile(1);
            expect!(h.free(s).is_ok());
        }
    }
}

ktest! {
    /// In the asynchronous mode a mismatching access completes and is recorded in
    /// `TFSR_EL1`; in the asymmetric mode (FEAT_MTE3) a mismatching write is recorded the
    /// same way. The accesses go to the allocation's own memory through a pointer with a
    /// wrong tag, so nothing is corrupted.
    fn async_and_asymmetric_modes_record_faults() {
        if !prepare() {
            return println!("    uk-mte: tagging off: nothing to check (skipped)");
        }
        let p = heap().malloc(64).expect("malloc");
        let wrong = tag::with_tag_nonnull(p, tag_of(p.as_ptr()).next().next());
        expect!(!crate::take_async_faults());
        expect!(crate::set_mode(CheckMode::Asynchronous).is_ok());
        // SAFETY: the address is the allocation's own; only the tag is wrong, which in the
        // asynchronous mode is recorded, not raised.
        let value = unsafe { wrong.as_ptr().read_volatile() };
        let recorded = crate::take_async_faults();
        let _ = value;
        expect!(recorded, "asynchronous read mismatch not recorded");
        expect!(!crate::take_async_faults(), "the record is cleared");
        if detect().supports(CheckMode::Asymmetric) {
            expect!(crate::set_mode(CheckMode::Asymmetric).is_ok());
            // SAFETY: as above; writes are asynchronous in this mode.
            unsafe { wrong.as_ptr().write_volatile(1) };
            expect!(crate::take_async_faults(), "asymmetric write mismatch not recorded");
        } else {
            println!("    uk-mte: no FEAT_MTE3: asymmetric mode not checked");
        }
        expect!(crate::set_mode(CheckMode::Synchronous).is_ok());
        // SAFETY: live.
        expect!(unsafe { heap().free(p) }.is_ok());
    }
}

ktest! {
    /// The cost of tagging, as a ratio: 20 000 `malloc(64)`/`free` pairs through the tagged
    /// heap against the same on an untagged TLSF over a chunk of the same size (printed,
    /// not judged: under QEMU's TCG the figures describe the emulator more than a CPU).
    fn tagged_malloc_free_cost() {
        let on = prepare();
        let layout = Layout::from_size_align(64 * 1024, 4096).expect("layout");
        // SAFETY: a non-zero size; the result is checked, and freed below.
        let Some(chunk) = NonNull::new(unsafe { alloc::alloc::alloc(layout) }) else {
            return expect!(false, "no chunk");
        };
        let mut plain = Tlsf::new();
        // SAFETY: the chunk outlives `plain` (dead before the chunk is freed), unused else.
        expect!(unsafe { plain.add_memory(chunk.as_ptr(), layout.size()) }.is_ok());
        let platform = uk_rt::platform();
        let time = |a: &mut dyn Allocator| {
            let start = platform.cycles();
            for _ in 0..20_000 {
                let Ok(p) = a.malloc(64) else { return None };
                // SAFETY: live, freed once.
                if unsafe { a.free(p) }.is_err() {
                    return None;
                }
            }
            Some(platform.cycles() - start)
        };
        let untagged = time(&mut plain);
        let tagged = time(&mut *heap());
        // SAFETY: allocated above with `layout`; `plain` is not used any more.
        unsafe { alloc::alloc::dealloc(chunk.as_ptr(), layout) };
        let (Some(untagged), Some(tagged)) = (untagged, tagged) else {
            return expect!(false, "an allocation failed");
        };
        let per_pair = |cycles: u64| cycles * 1_000_000_000 / platform.cycles_per_second().max(1) / 20_000;
        let ratio_x100 = tagged * 100 / untagged.max(1);
        println!(
            "    uk-mte: malloc(64)+free: {} ns {}, {} ns untagged: {}.{:02}x",
            per_pair(tagged),
            if on { "tagged" } else { "through the pass-through wrapper" },
            per_pair(untagged),
            ratio_x100 / 100,
            ratio_x100 % 100
        );
    }
}

#[cfg(feature = "ktest-faults")]
ktest! {
    /// A write one granule past the end of an allocation raises a synchronous tag check
    /// fault (reported by the board as "tag check fault"), which fails the case as expected.
    /// Without MTE2 nothing faults and the case fails, as it should: this case is built only
    /// into images for a configuration with MTE2.
    #[should_fail(cpu_exception = "tag check fault, on a write")]
    fn overflow_by_one_granule_faults() {
        if !prepare() {
            return println!("    uk-mte: no MTE2 on a configuration that promises it: no fault");
        }
        let Ok(p) = heap().malloc(32) else {
            return println!("    uk-mte: malloc failed: no fault");
        };
        // SAFETY: deliberately out of bounds by one granule: the byte after the 32 bytes
        // is the next block's header granule, tag 0, so the store faults before it writes.
        unsafe { p.as_ptr().add(32).write_volatile(0xee) };
        println!("    uk-mte: the overflow did not fault");
    }
}

#[cfg(feature = "ktest-faults")]
ktest! {
    /// A read through a pointer kept after `free` raises a synchronous tag check fault: the
    /// memory was re-tagged to 0 by `free`. Needs MTE2, like the case above.
    #[should_fail(cpu_exception = "tag check fault, on a read")]
    fn use_after_free_faults() {
        if !prepare() {
            return println!("    uk-mte: no MTE2 on a configuration that promises it: no fault");
        }
        let p = {
            let mut h = heap();
            let Ok(p) = h.malloc(64) else {
                return println!("    uk-mte: malloc failed: no fault");
            };
            // SAFETY: live, freed once.
            if unsafe { h.free(p) }.is_err() {
                return println!("    uk-mte: free failed: no fault");
            }
            p
        };
        // SAFETY: deliberately a use after free: the memory is tag 0, the pointer is not.
        let value = unsafe { p.as_ptr().read_volatile() };
        println!("    uk-mte: the use after free did not fault (read {value})");
    }
}
