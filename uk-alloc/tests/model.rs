//! Property tests: every backend runs random sequences of operations next to a model that
//! knows what must hold — no two live allocations overlap, alignments are honoured,
//! contents survive `realloc` (and nothing else writes into an allocation), statistics are
//! exactly the model's, the byte limit refuses exactly the requests that exceed it, and
//! `malloc(n)`/`palloc(n)` succeed exactly when `n <= max_alloc()`/`max_pages()`. Partial
//! page frees (`pfree_part`) succeed exactly where the backend documents it (any part for
//! the buddy, the whole run or a tail for TLSF, nothing for the region), leave the pieces
//! as runs of their own with their contents, and every piece merges back once freed.
#![cfg(all(feature = "tlsf", feature = "buddy", feature = "region"))]

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{ALL, Arena, Kind};
use proptest::prelude::*;
use uk_alloc::{AllocError, MIN_ALIGN, PAGE_SIZE, Stats};

#[derive(Clone, Debug)]
enum Op {
    Malloc(usize),
    Calloc(usize, usize),
    Memalign(u32, usize),
    Realloc(usize, usize),
    Free(usize),
    Palloc(usize),
    Pfree(usize),
    /// `pfree_part` of a live page run chosen by the first number: the part starts at the
    /// second modulo the run's pages and is one more than the third modulo what is left.
    PfreePart(usize, usize, usize),
    /// `Some(x)`: limit = current bytes + x.
    Limit(Option<usize>),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..64,
        6 => 64usize..1024,
        3 => 1024usize..16384,
        1 => 16384usize..131072,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => size().prop_map(Op::Malloc),
        2 => (0usize..64, 0usize..64).prop_map(|(n, m)| Op::Calloc(n, m)),
        3 => (0u32..14, size()).prop_map(|(s, n)| Op::Memalign(s, n)),
        6 => (any::<usize>(), size()).prop_map(|(i, n)| Op::Realloc(i, n)),
        1 => any::<usize>().prop_map(|i| Op::Realloc(i, 0)),
        8 => any::<usize>().prop_map(Op::Free),
        2 => (1usize..9).prop_map(Op::Palloc),
        2 => any::<usize>().prop_map(Op::Pfree),
        2 => any::<(usize, usize, usize)>().prop_map(|(i, a, b)| Op::PfreePart(i, a, b)),
        1 => prop_oneof![Just(None), (0usize..65536).prop_map(Some)].prop_map(Op::Limit),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: NonNull<u8>,
    size: usize,
    /// `Some(pages)` for a `palloc` allocation.
    pages: Option<usize>,
    fill: u8,
}

struct Model {
    live: Vec<Live>,
    /// Start -> end of every live allocation (zero sizes count one byte, for uniqueness).
    ranges: BTreeMap<usize, usize>,
    stats: Stats,
    limit: Option<usize>,
    next_fill: u8,
}

impl Model {
    fn new() -> Self {
        Model {
            live: Vec::new(),
            ranges: BTreeMap::new(),
            stats: Stats::default(),
            limit: None,
            next_fill: 1,
        }
    }

    fn over_limit(&self, released: usize, size: usize) -> bool {
        match self.limit {
            Some(l) => (self.stats.cur_bytes - released).saturating_add(size) > l,
            None => false,
        }
    }

    fn request(&mut self, size: usize) {
        let s = &mut self.stats;
        s.last_alloc_size = size;
        s.max_alloc_size = s.max_alloc_size.max(size);
        s.min_alloc_size = Some(s.min_alloc_size.map_or(size, |m| m.min(size)));
        s.total_allocs += 1;
    }

    /// Records a new allocation after checking it overlaps nothing, and fills it.
    fn add(&mut self, ptr: NonNull<u8>, size: usize, pages: Option<usize>) {
        let start = ptr.as_ptr() as usize;
        let end = start + size.max(1);
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= start, "{start:#x}..{end:#x} overlaps {s:#x}..{e:#x}");
        }
        self.ranges.insert(start, end);
        let fill = self.next_fill;
        self.next_fill = self.next_fill.wrapping_add(1).max(1);
        // SAFETY: the allocation holds `size` writable bytes.
        unsafe { ptr.as_ptr().write_bytes(fill, size) };
        self.live.push(Live {
            ptr,
            size,
            pages,
            fill,
        });
    }

    /// Records a piece of a run that `pfree_part` left: it keeps its contents.
    fn add_piece(&mut self, ptr: NonNull<u8>, pages: usize, fill: u8) {
        let start = ptr.as_ptr() as usize;
        self.ranges.insert(start, start + pages * PAGE_SIZE);
        let l = Live {
            ptr,
            size: pages * PAGE_SIZE,
            pages: Some(pages),
            fill,
        };
        check_fill(&l);
        self.live.push(l);
    }

    fn remove(&mut self, i: usize) -> Live {
        let l = self.live.swap_remove(i);
        check_fill(&l);
        self.ranges.remove(&(l.ptr.as_ptr() as usize));
        l
    }

    fn on_alloc(&mut self, size: usize) {
        self.request(size);
        let s = &mut self.stats;
        s.cur_allocs += 1;
        s.max_allocs = s.max_allocs.max(s.cur_allocs);
        s.cur_bytes += size;
        s.max_bytes = s.max_bytes.max(s.cur_bytes);
    }

    fn on_free(&mut self, size: usize) {
        let s = &mut self.stats;
        s.total_frees += 1;
        s.cur_allocs -= 1;
        s.cur_bytes -= size;
    }
}

fn check_fill(l: &Live) {
    // SAFETY: `l` is live, holding `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(l.ptr.as_ptr(), l.size) };
    if let Some(pos) = bytes.iter().position(|&b| b != l.fill) {
        panic!(
            "allocation at {:p} ({} bytes) was overwritten at offset {pos}",
            l.ptr, l.size
        );
    }
}

/// Runs `ops` on a fresh backend of `kind`, checking every step against the model.
fn run(kind: Kind, ops: &[Op]) {
    let arena = Arena::new(48 << 20, 48);
    let mut a = kind.with_arena(&arena);
    let mut m = Model::new();
    for op in ops {
        match *op {
            Op::Malloc(n) => {
                let expect_ok = n <= a.max_alloc();
                let limited = m.over_limit(0, n);
                match a.malloc(n) {
                    Ok(p) => {
                        assert!(
                            expect_ok && !limited,
                            "malloc({n}) succeeded past its bounds"
                        );
                        assert_eq!(p.as_ptr() as usize % MIN_ALIGN, 0);
                        m.on_alloc(n);
                        m.add(p, n, None);
                    }
                    Err(e) => {
                        assert_eq!(e, AllocError::NoMem);
                        assert!(!expect_ok || limited, "malloc({n}) failed below max_alloc");
                        m.stats.enomem += 1;
                    }
                }
            }
            Op::Calloc(n, s) => match a.calloc(n, s) {
                Ok(p) => {
                    assert!(!m.over_limit(0, n * s));
                    // SAFETY: the allocation holds `n * s` bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), n * s) };
                    assert!(bytes.iter().all(|&b| b == 0), "calloc memory not zeroed");
                    m.on_alloc(n * s);
                    m.add(p, n * s, None);
                }
                Err(e) => {
                    assert_eq!(e, AllocError::NoMem);
                    m.stats.enomem += 1;
                }
            },
            Op::Memalign(shift, n) => {
                let align = 1usize << shift;
                match a.memalign(align, n) {
                    Ok(p) => {
                        assert!(!m.over_limit(0, n));
                        assert_eq!(p.as_ptr() as usize % align.max(MIN_ALIGN), 0);
                        m.on_alloc(n);
                        m.add(p, n, None);
                    }
                    Err(e) => {
                        assert_eq!(e, AllocError::NoMem);
                        m.stats.enomem += 1;
                    }
                }
            }
            Op::Realloc(i, n) => {
                let Some(i) = pick(&m, i, false) else {
                    continue;
                };
                let old = m.live[i];
                if n == 0 {
                    m.remove(i);
                    // SAFETY: `old.ptr` is live.
                    let r = unsafe { a.realloc(Some(old.ptr), 0) };
                    assert_eq!(r, Ok(None));
                    m.on_free(old.size);
                } else {
                    let limited = m.over_limit(old.size, n);
                    // SAFETY: `old.ptr` is live.
                    match unsafe { a.realloc(Some(old.ptr), n) } {
                        Ok(Some(p)) => {
                            assert!(!limited, "realloc succeeded past the limit");
                            assert_eq!(p.as_ptr() as usize % MIN_ALIGN, 0);
                            // The kept prefix must be intact.
                            let kept = Live {
                                ptr: p,
                                size: old.size.min(n),
                                pages: None,
                                fill: old.fill,
                            };
                            check_fill(&kept);
                            m.live.swap_remove(i);
                            m.ranges.remove(&(old.ptr.as_ptr() as usize));
                            m.request(n);
                            m.stats.total_frees += 1;
                            m.stats.cur_bytes = m.stats.cur_bytes - old.size + n;
                            m.stats.max_bytes = m.stats.max_bytes.max(m.stats.cur_bytes);
                            m.add(p, n, None);
                        }
                        Ok(None) => panic!("realloc to {n} returned no pointer"),
                        Err(e) => {
                            assert_eq!(e, AllocError::NoMem);
                            m.stats.enomem += 1;
                            check_fill(&old);
                        }
                    }
                }
            }
            Op::Free(i) => {
                let Some(i) = pick(&m, i, false) else {
                    continue;
                };
                let l = m.remove(i);
                // SAFETY: `l.ptr` is live.
                unsafe { a.free(l.ptr).unwrap() };
                m.on_free(l.size);
            }
            Op::Palloc(pages) => {
                let expect_ok = pages <= a.max_pages();
                let limited = m.over_limit(0, pages * PAGE_SIZE);
                match a.palloc(pages) {
                    Ok(p) => {
                        assert!(expect_ok && !limited, "palloc({pages}) past its bounds");
                        assert_eq!(p.as_ptr() as usize % PAGE_SIZE, 0);
                        m.on_alloc(pages * PAGE_SIZE);
                        m.add(p, pages * PAGE_SIZE, Some(pages));
                    }
                    Err(e) => {
                        assert_eq!(e, AllocError::NoMem);
                        assert!(
                            !expect_ok || limited,
                            "palloc({pages}) failed below max_pages"
                        );
                        m.stats.enomem += 1;
                    }
                }
            }
            Op::Pfree(i) => {
                let Some(i) = pick(&m, i, true) else { continue };
                let l = m.remove(i);
                // SAFETY: `l` is a live page allocation.
                unsafe { a.pfree(l.ptr, l.pages.unwrap()).unwrap() };
                m.on_free(l.size);
            }
            Op::PfreePart(i, from, len) => {
                let Some(i) = pick(&m, i, true) else { continue };
                let l = m.live[i];
                let pages = l.pages.unwrap();
                let head = from % pages;
                let part = 1 + len % (pages - head);
                let tail = pages - head - part;
                let at =
                    |n: usize| NonNull::new(l.ptr.as_ptr().wrapping_add(n * PAGE_SIZE)).unwrap();
                let frees = match kind {
                    Kind::Buddy | Kind::BuddyChecked => true,
                    Kind::Tlsf | Kind::TlsfChecked => tail == 0,
                    Kind::Region => false,
                };
                check_fill(&l);
                let before = a.available();
                // SAFETY: `l` is a live page run; the part lies inside it.
                let r = unsafe { a.pfree_part(l.ptr, pages, at(head), part) };
                if !frees {
                    assert_eq!(r, Err(AllocError::Unsupported), "{op:?} on {kind:?}");
                    assert_eq!(a.available(), before, "a refusal changes nothing");
                    check_fill(&l);
                } else {
                    assert_eq!(r, Ok(()), "{op:?} on {kind:?}");
                    // The buddy gives back exactly the part's pages; TLSF its block's
                    // bytes, at least as many.
                    let freed = a.available() - before;
                    match kind {
                        Kind::Buddy | Kind::BuddyChecked => assert_eq!(freed, part * PAGE_SIZE),
                        _ => assert!(freed >= part * PAGE_SIZE, "{freed}"),
                    }
                    // The part is free memory now: only the pieces are checked.
                    m.live.swap_remove(i);
                    m.ranges.remove(&(l.ptr.as_ptr() as usize));
                    if head > 0 {
                        m.add_piece(l.ptr, head, l.fill);
                    }
                    if tail > 0 {
                        m.add_piece(at(head + part), tail, l.fill);
                    }
                    let s = &mut m.stats;
                    s.total_frees += 1;
                    s.cur_bytes -= part * PAGE_SIZE;
                    s.cur_allocs = s.cur_allocs - 1 + usize::from(head > 0) + usize::from(tail > 0);
                    s.max_allocs = s.max_allocs.max(s.cur_allocs);
                }
            }
            Op::Limit(x) => {
                let limit = x.map(|x| m.stats.cur_bytes + x);
                a.set_limit(limit);
                m.limit = limit;
                assert_eq!(a.limit(), limit);
            }
        }
        assert_eq!(a.stats(), m.stats, "after {op:?}");
    }
    for l in &m.live {
        check_fill(l);
        if l.pages.is_none() {
            // SAFETY: `l` is a live byte allocation of `a`.
            let size = unsafe { a.allocation_size(l.ptr) };
            assert_eq!(size, Ok(l.size), "allocation_size of {:p}", l.ptr);
        }
    }
    // Free everything: a backend that reuses memory gets all of it back.
    let before = a.available();
    for l in std::mem::take(&mut m.live) {
        // SAFETY: every remaining allocation is live.
        unsafe {
            match l.pages {
                Some(p) => a.pfree(l.ptr, p).unwrap(),
                None => a.free(l.ptr).unwrap(),
            }
        }
    }
    let s = a.stats();
    assert_eq!((s.cur_allocs, s.cur_bytes), (0, 0));
    if kind.is_region() {
        assert_eq!(a.available(), before);
    } else {
        let (avail, max) = (a.available(), a.max_alloc());
        drop(a);
        // A fresh allocator on the same arena reports the same free memory: every block
        // merged back.
        let fresh = kind.with_arena(&arena);
        assert_eq!(avail, fresh.available());
        assert_eq!(max, fresh.max_alloc().min(m.limit.unwrap_or(usize::MAX)));
    }
}

/// Index of a live allocation chosen by `i`; page allocations only when `pages`, byte
/// allocations only otherwise.
fn pick(m: &Model, i: usize, pages: bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..m.live.len())
        .filter(|&j| m.live[j].pages.is_some() == pages)
        .collect();
    (!candidates.is_empty()).then(|| candidates[i % candidates.len()])
}

/// `PROPTEST_CASES` from the environment, for longer runs, or `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]

    #[test]
    fn tlsf_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(Kind::Tlsf, &ops);
    }

    #[test]
    fn tlsf_checked_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(Kind::TlsfChecked, &ops);
    }

    #[test]
    fn buddy_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(Kind::Buddy, &ops);
    }

    #[test]
    fn buddy_checked_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(Kind::BuddyChecked, &ops);
    }

    #[test]
    fn region_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(Kind::Region, &ops);
    }
}

/// Small heaps run out of memory: exhaustion and recovery must keep every property.
#[test]
fn small_heaps_under_pressure() {
    use proptest::test_runner::{Config, TestRunner};
    for kind in ALL {
        let mut runner = TestRunner::new(Config {
            cases: cases(32),
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(op(), 1..200), |ops| {
                run_small(kind, &ops);
                Ok(())
            })
            .unwrap();
    }
}

/// Like `run`, in a 1 MiB arena whose bytes start as garbage.
fn run_small(kind: Kind, ops: &[Op]) {
    let arena = Arena::new(1 << 20, 4096 + 16);
    arena.fill(0xA5);
    let mut a = kind.with_arena(&arena);
    let mut live: Vec<Live> = Vec::new();
    let mut fill = 1u8;
    for op in ops {
        let p = match *op {
            Op::Malloc(n) | Op::Memalign(_, n) | Op::Realloc(_, n) if live.is_empty() => {
                a.malloc(n).ok().map(|p| (p, n))
            }
            Op::Malloc(n) => {
                let ok = n <= a.max_alloc();
                let r = a.malloc(n);
                assert_eq!(r.is_ok(), ok, "malloc({n}) vs max_alloc {}", a.max_alloc());
                r.ok().map(|p| (p, n))
            }
            Op::Free(i) | Op::Realloc(i, 0) | Op::Pfree(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                check_fill(&l);
                // SAFETY: live.
                unsafe { a.free(l.ptr).unwrap() };
                None
            }
            Op::Realloc(i, n) => {
                let i = i % live.len();
                let l = live[i];
                // SAFETY: live.
                match unsafe { a.realloc(Some(l.ptr), n) } {
                    Ok(Some(p)) => {
                        check_fill(&Live {
                            ptr: p,
                            size: l.size.min(n),
                            ..l
                        });
                        live.swap_remove(i);
                        Some((p, n))
                    }
                    _ => {
                        check_fill(&l);
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some((p, n)) = p {
            let start = p.as_ptr() as usize;
            for l in &live {
                let s = l.ptr.as_ptr() as usize;
                assert!(
                    start + n.max(1) <= s || s + l.size.max(1) <= start,
                    "overlap"
                );
            }
            // SAFETY: `n` bytes at `p` belong to the new allocation.
            unsafe { p.as_ptr().write_bytes(fill, n) };
            live.push(Live {
                ptr: p,
                size: n,
                pages: None,
                fill,
            });
            fill = fill.wrapping_add(1).max(1);
        }
    }
    for l in live {
        check_fill(&l);
        // SAFETY: live.
        unsafe { a.free(l.ptr).unwrap() };
    }
    assert_eq!(a.stats().cur_bytes, 0);
}
