//! Host benchmarks of uk-alloc's backends against talc, rlsf, linked_list_allocator and
//! buddy_system_allocator, in one run:
//!
//! 1. **Heap efficiency** (printed first): talc's method — random allocations, frees and
//!    reallocations until the first failure; the share of the heap held by live requested
//!    bytes at that moment, averaged over rounds.
//! 2. **Random actions** (divan, `random_actions`): talc's method — a script of allocations,
//!    frees and reallocations of mixed sizes (talc's size and alignment distributions), run
//!    on a fresh heap; the same script for every allocator. Two size mixes: up to 1000 bytes
//!    and up to 30000 bytes.
//! 3. **Initialisation over 1 GiB** (divan, `init_1gib`): creating the allocator and giving
//!    it a 1 GiB lazily backed region.
//!
//! Every allocator sits behind the same `spin::Mutex` and is called through `GlobalAlloc`.
//! Run with `cargo bench -p uk-alloc` (add `-- --sample-count 20` for a quicker run).
//!
//! On a shared, noisy machine, `UK_ALLOC_BENCH_RATIO=1000` (or `30000`) is steadier: it runs
//! the random-actions script of TLSF, rlsf, talc and buddy_system_allocator in interleaved
//! rounds and prints medians and throughput relative to rlsf, plus `null`, a stand-in that
//! returns one address and does nothing, which measures the script's own cost.
//!
//! `UK_ALLOC_BENCH_TIMED="rlsf,uk TLSF,talc"` follows talc's own timed procedure instead:
//! a 128 MiB heap touched beforehand; per trial, a fresh allocator runs the mix for a 2 ms
//! warm-up and then for 200 ms on the heap the warm-up left, and its score is the number
//! of actions done. Trials are interleaved; medians of 15 (`UK_ALLOC_BENCH_TRIALS`) at
//! talc's maximum sizes 200 B to 30 kB (`UK_ALLOC_BENCH_SIZES`), relative to the first
//! name. `rlsf (talc's config)` is rlsf as talc's benchmark sets it up (`usize` bitmaps,
//! 64 second-level classes). `UK_ALLOC_BENCH_STEADY="uk TLSF,1000"` is a deterministic
//! steady-state run (for cache simulators) that reports what the reallocations did.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;

use divan::Bencher;
use uk_alloc::{Allocator, Buddy, Locked, Region, Tlsf};

fn main() {
    // `UK_ALLOC_BENCH_ONCE="rlsf,1000"` runs one random-actions script once and exits, for
    // profilers and instruction counters.
    if let Ok(one) = std::env::var("UK_ALLOC_BENCH_ONCE") {
        let (name, max) = one.split_once(',').expect("NAME,MAX");
        // `UK_ALLOC_BENCH_REPEAT=N` runs it N times (on a fresh heap each time), for sampling
        // profilers.
        let repeat = std::env::var("UK_ALLOC_BENCH_REPEAT").map_or(1, |n| n.parse().unwrap());
        let arena = bench_arena();
        for _ in 0..repeat {
            // SAFETY: the only allocator of the process's arena; dropped before the next.
            let heap = unsafe { make(name, arena.base, arena.len) };
            println!("{}", random_actions(&*heap, max.parse().unwrap()));
        }
        return;
    }
    // `UK_ALLOC_BENCH_RATIO="1000"` times the random-actions script of every allocator in
    // interleaved rounds (so a noisy machine slows them alike) and prints each median and
    // its throughput relative to rlsf.
    if let Ok(max) = std::env::var("UK_ALLOC_BENCH_RATIO") {
        interleaved_ratios(max.parse().expect("MAX"));
        return;
    }
    // `UK_ALLOC_BENCH_STEADY="rlsf,1000"`: a deterministic steady-state run (for cache
    // simulators too) that reports what the reallocations did.
    if let Ok(one) = std::env::var("UK_ALLOC_BENCH_STEADY") {
        let (name, max) = one.split_once(',').expect("NAME,MAX");
        steady_state(name, max.parse().expect("MAX"));
        return;
    }
    // `UK_ALLOC_BENCH_TIMED="rlsf,uk TLSF"`: talc's own timed procedure, see `timed_ratios`.
    if let Ok(names) = std::env::var("UK_ALLOC_BENCH_TIMED") {
        timed_ratios(&names);
        return;
    }
    heap_efficiency_table();
    divan::main();
}

/// talc's own procedure: for each trial a fresh allocator runs the mix for a 2 ms warm-up
/// (its blocks freed at the end), then for 200 ms on the same heap; the score is the number
/// of actions. Trials of the allocators are interleaved.
fn timed_ratios(names: &str) {
    let trials: usize = std::env::var("UK_ALLOC_BENCH_TRIALS").map_or(15, |n| n.parse().unwrap());
    let names: Vec<&str> = names.split(',').collect();
    // talc's benchmark heap: 128 MiB, touched before anything is timed.
    let arena = Arena::new(128 << 20);
    // SAFETY: the mapping is read-write.
    unsafe { arena.base.write_bytes(0xab, arena.len) };
    // `UK_ALLOC_BENCH_SIZES="3000,30000"` measures only those maximum sizes.
    let sizes: Vec<usize> = std::env::var("UK_ALLOC_BENCH_SIZES").map_or_else(
        |_| vec![200, 1000, 3000, 10_000, 30_000],
        |s| s.split(',').map(|n| n.parse().expect("SIZES")).collect(),
    );
    for max in sizes {
        let mut scores: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for trial in 0..trials {
            for k in 0..names.len() {
                let i = (k + trial) % names.len();
                // SAFETY: one allocator at a time owns the arena.
                let heap = unsafe { make(names[i], arena.base, arena.len) };
                timed_actions(&*heap, max, std::time::Duration::from_millis(2));
                let (score, failed) =
                    timed_actions(&*heap, max, std::time::Duration::from_millis(200));
                if failed > 0 {
                    eprintln!("{}: {failed} failed actions at {max} B", names[i]);
                }
                scores[i].push(score);
            }
        }
        let medians: Vec<usize> = scores
            .iter_mut()
            .map(|v| {
                v.sort();
                v[v.len() / 2]
            })
            .collect();
        print!("{max:>6} B:");
        for (name, m) in names.iter().zip(&medians) {
            print!("  {name} {m} ({:.3})", *m as f64 / medians[0] as f64);
        }
        println!();
    }
}

/// Counts what reallocations do: (grown in place, shrunk in place, moved, bytes copied).
struct Counting<'a> {
    heap: &'a dyn GlobalAlloc,
    counts: std::cell::Cell<[usize; 4]>,
    /// The highest block end seen.
    top: std::cell::Cell<usize>,
}

impl Counting<'_> {
    fn saw(&self, p: *mut u8, size: usize) -> *mut u8 {
        self.top.set(self.top.get().max(p as usize + size));
        p
    }
}

// SAFETY: forwards every call; only counts.
unsafe impl GlobalAlloc for Counting<'_> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        self.saw(unsafe { self.heap.alloc(layout) }, layout.size())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { self.heap.realloc(ptr, layout, new_size) };
        if p.is_null() {
            return p;
        }
        let mut c = self.counts.get();
        match (p == ptr, new_size > layout.size()) {
            (true, true) => c[0] += 1,
            (true, false) => c[1] += 1,
            (false, _) => {
                c[2] += 1;
                c[3] += new_size.min(layout.size());
            }
        }
        self.counts.set(c);
        self.saw(p, new_size)
    }
}

/// 20,000 warm-up actions on a fresh heap (their blocks freed at the end), then 500,000
/// actions on the same heap, counting what the reallocations do and how high in the arena
/// blocks reach.
fn steady_state(name: &str, max: usize) {
    let arena = Arena::new(128 << 20);
    // SAFETY: the only allocator of the arena.
    let heap = unsafe { make(name, arena.base, arena.len) };
    let counting = Counting {
        heap: &*heap,
        counts: Default::default(),
        top: std::cell::Cell::new(arena.base as usize),
    };
    for actions in [20_000, 500_000] {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ actions);
        let mut live = Vec::with_capacity(100_000);
        counting.counts.set([0; 4]);
        for _ in 0..actions {
            step(&counting, &mut rng, &mut live, max);
        }
    }
    let [grown, shrunk, moved, bytes] = counting.counts.get();
    println!(
        "{name}, up to {max} B, 500,000 actions after a warm-up: reallocations {grown} grown and \
         {shrunk} shrunk in place, {moved} moved ({:.1} MB copied); blocks reach {:.1} MiB \
         into the arena",
        bytes as f64 / 1e6,
        (counting.top.get() - arena.base as usize) as f64 / f64::from(1 << 20)
    );
}

/// talc's random-actions loop: actions until `duration` has passed, checked every 100.
fn timed_actions(
    heap: &dyn GlobalAlloc,
    max: usize,
    duration: std::time::Duration,
) -> (usize, usize) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ max as u64);
    let mut live: Vec<Block<'_>> = Vec::with_capacity(100_000);
    let (mut score, mut failed) = (0, 0);
    let start = std::time::Instant::now();
    while start.elapsed() < duration {
        for _ in 0..100 {
            match step(heap, &mut rng, &mut live, max) {
                Some(true) => score += 1,
                Some(false) => failed += 1,
                None => {}
            }
        }
    }
    (score, failed)
}

fn interleaved_ratios(max: usize) {
    const ROUNDS: usize = 200;
    let arena = bench_arena();
    let names = ["rlsf", "uk TLSF", "talc", "buddy_system_allocator", "null"];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); names.len()];
    for round in 0..ROUNDS {
        for k in 0..names.len() {
            // Rotate the order so no allocator always runs right after the same one.
            let i = (k + round) % names.len();
            // SAFETY: one allocator at a time owns the arena; it is dropped before the next.
            let heap = unsafe { make(names[i], arena.base, arena.len) };
            let t = std::time::Instant::now();
            std::hint::black_box(random_actions(&*heap, max));
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    println!("random actions up to {max} B, medians of {ROUNDS} interleaved rounds:");
    for (name, m) in names.iter().zip(&medians) {
        println!(
            "  {name:<24} {:8.1} us  throughput vs rlsf {:.3}",
            m * 1e6,
            medians[0] / m
        );
    }
}

/// The allocators whose efficiency is measured (`UK_ALLOC_EFFICIENCY=name` for one).
fn efficiency_allocators() -> Vec<&'static str> {
    match std::env::var("UK_ALLOC_EFFICIENCY") {
        Ok(one) => ALLOCATORS.iter().copied().filter(|n| *n == one).collect(),
        Err(_) => ALLOCATORS.to_vec(),
    }
}

// ----- arenas -----

/// A lazily backed anonymous mapping.
struct Arena {
    base: *mut u8,
    len: usize,
}

// SAFETY: the arena is a plain memory range; the benchmarks hand it to one allocator at a
// time.
unsafe impl Sync for Arena {}
// SAFETY: as above.
unsafe impl Send for Arena {}

impl Arena {
    fn new(len: usize) -> Arena {
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Arena {
            base: p.cast(),
            len,
        }
    }
}

const HEAP: usize = 64 << 20;
const GIB: usize = 1 << 30;

fn bench_arena() -> &'static Arena {
    static A: std::sync::OnceLock<Arena> = std::sync::OnceLock::new();
    A.get_or_init(|| {
        let a = Arena::new(HEAP);
        // Touch it once so page faults do not favour whoever runs second.
        // SAFETY: the mapping is read-write.
        unsafe { a.base.write_bytes(0, a.len) };
        a
    })
}

fn gib_arena() -> &'static Arena {
    static A: std::sync::OnceLock<Arena> = std::sync::OnceLock::new();
    A.get_or_init(|| Arena::new(GIB + (2 << 20)))
}

// ----- the allocators, all behind spin::Mutex and GlobalAlloc -----

const ALLOCATORS: &[&str] = &[
    "uk TLSF",
    "uk buddy",
    "talc",
    "rlsf",
    "linked_list_allocator",
    "buddy_system_allocator",
];

/// rlsf as this benchmark has always configured it (32-bit bitmaps suffice for 64 MiB).
type RlsfTlsf = rlsf::Tlsf<'static, u32, u32, 28, 32>;

/// rlsf as talc's own benchmark configures it: `usize` bitmaps, 52 first-level and 64
/// second-level classes.
type RlsfTalcConfig = rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize - 12 }, 64>;

struct RlsfHeap<T>(spin::Mutex<T>);

/// The rlsf calls the benchmark needs, for any configuration.
trait RlsfLike {
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, align: usize);
    unsafe fn reallocate(&mut self, ptr: NonNull<u8>, layout: Layout) -> Option<NonNull<u8>>;
}

impl<FL: rlsf::int::BinInteger, SL: rlsf::int::BinInteger, const F: usize, const S: usize> RlsfLike
    for rlsf::Tlsf<'static, FL, SL, F, S>
{
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        rlsf::Tlsf::allocate(self, layout)
    }
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, align: usize) {
        // SAFETY: forwarded contract.
        unsafe { rlsf::Tlsf::deallocate(self, ptr, align) }
    }
    unsafe fn reallocate(&mut self, ptr: NonNull<u8>, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded contract.
        unsafe { rlsf::Tlsf::reallocate(self, ptr, layout) }
    }
}

// SAFETY: forwards to rlsf under the lock with rlsf's documented contracts.
unsafe impl<T: RlsfLike + Send> GlobalAlloc for RlsfHeap<T> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate(layout)
            .map_or(std::ptr::null_mut(), |p| p.as_ptr())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `allocate` with `layout`.
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(ptr), layout.align())
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `allocate` with `layout`; the new layout is valid.
        unsafe {
            self.0
                .lock()
                .reallocate(
                    NonNull::new_unchecked(ptr),
                    Layout::from_size_align_unchecked(new_size, layout.align()),
                )
                .map_or(std::ptr::null_mut(), |p| p.as_ptr())
        }
    }
}

/// Not an allocator: returns the arena's start for every request and touches nothing, to
/// measure what the benchmark's own work costs.
struct NullHeap(*mut u8);

// SAFETY: nothing is ever written through the returned pointers by the benchmark.
unsafe impl GlobalAlloc for NullHeap {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        self.0
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    unsafe fn realloc(&self, ptr: *mut u8, _layout: Layout, _new_size: usize) -> *mut u8 {
        ptr
    }
}

struct LlaHeap(spin::Mutex<linked_list_allocator::Heap>);

// SAFETY: forwards to linked_list_allocator under the lock.
unsafe impl GlobalAlloc for LlaHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(std::ptr::null_mut(), |p| p.as_ptr())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `allocate_first_fit` with `layout`.
        unsafe {
            self.0
                .lock()
                .deallocate(NonNull::new_unchecked(ptr), layout)
        }
    }
}

struct BsaHeap(spin::Mutex<buddy_system_allocator::Heap<33>>);

// SAFETY: forwards to buddy_system_allocator under the lock.
unsafe impl GlobalAlloc for BsaHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .alloc(layout)
            .map_or(std::ptr::null_mut(), |p| p.as_ptr())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with `layout`.
        self.0
            .lock()
            .dealloc(unsafe { NonNull::new_unchecked(ptr) }, layout)
    }
}

/// Builds allocator `name` over `len` bytes at `base`.
///
/// # Safety
///
/// The memory must be unused by anything else while the allocator lives.
unsafe fn make(name: &str, base: *mut u8, len: usize) -> Box<dyn GlobalAlloc> {
    // SAFETY: the caller hands over the memory.
    unsafe {
        match name {
            "uk TLSF" => {
                let h = Locked::<Tlsf>::new(Tlsf::new());
                h.lock().add_memory(base, len).unwrap();
                Box::new(h)
            }
            "uk TLSF (checked)" => {
                let h = Locked::<uk_alloc::CheckedTlsf>::new(Tlsf::new_checked());
                h.lock().add_memory(base, len).unwrap();
                Box::new(h)
            }
            "uk buddy" => {
                let h = Locked::<Buddy>::new(Buddy::new());
                h.lock().add_memory(base, len).unwrap();
                Box::new(h)
            }
            "uk buddy (checked)" => {
                let h = Locked::<Buddy>::new(Buddy::new_checked());
                h.lock().add_memory(base, len).unwrap();
                Box::new(h)
            }
            "uk region" => {
                let h = Locked::<Region>::new(Region::new());
                h.lock().add_memory(base, len).unwrap();
                Box::new(h)
            }
            "talc" => {
                let t = talc::Talck::<spin::Mutex<()>, _>::new(talc::Talc::new(talc::ErrOnOom));
                t.lock()
                    .claim(talc::Span::from_base_size(base, len))
                    .unwrap();
                Box::new(t)
            }
            "rlsf" => {
                let mut t = RlsfTlsf::new();
                let block = NonNull::slice_from_raw_parts(NonNull::new(base).unwrap(), len);
                t.insert_free_block_ptr(block).unwrap();
                Box::new(RlsfHeap(spin::Mutex::new(t)))
            }
            "rlsf (talc's config)" => {
                let mut t = RlsfTalcConfig::new();
                let block = NonNull::slice_from_raw_parts(NonNull::new(base).unwrap(), len);
                t.insert_free_block_ptr(block).unwrap();
                Box::new(RlsfHeap(spin::Mutex::new(t)))
            }
            "linked_list_allocator" => {
                let mut h = linked_list_allocator::Heap::empty();
                h.init(base, len);
                Box::new(LlaHeap(spin::Mutex::new(h)))
            }
            "buddy_system_allocator" => {
                let mut h = buddy_system_allocator::Heap::<33>::new();
                h.init(base as usize, len);
                Box::new(BsaHeap(spin::Mutex::new(h)))
            }
            "null" => Box::new(NullHeap(base)),
            _ => unreachable!("unknown allocator {name}"),
        }
    }
}

// ----- talc's distributions, on a deterministic generator -----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    /// Biased towards small sizes: uniform below a uniform cap.
    fn size(&mut self, max: usize) -> usize {
        let cap = self.range(16, max);
        self.range(4, cap)
    }
    /// Mostly pointer alignment, sometimes more.
    fn align(&mut self) -> usize {
        size_of::<usize>() << ((self.next() as u16).trailing_zeros() / 2)
    }
}

struct Block<'a> {
    ptr: *mut u8,
    layout: Layout,
    heap: &'a dyn GlobalAlloc,
}

impl<'a> Block<'a> {
    fn new(heap: &'a dyn GlobalAlloc, size: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { heap.alloc(layout) };
        (!ptr.is_null()).then(|| Block { ptr, layout, heap })
    }

    fn realloc(&mut self, size: usize) -> bool {
        // SAFETY: `ptr` is live with `layout`; `size` is non-zero.
        let p = unsafe { self.heap.realloc(self.ptr, self.layout, size) };
        if p.is_null() {
            return false;
        }
        self.ptr = p;
        self.layout = Layout::from_size_align(size, self.layout.align()).unwrap();
        true
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is live with `layout`.
        unsafe { self.heap.dealloc(self.ptr, self.layout) }
    }
}

// ----- heap efficiency -----

const EFFICIENCY_ROUNDS: usize = 20;

/// Share of the heap (in %) the live requested bytes hold when the first allocation fails,
/// allocating only (talc's sizes and alignments).
fn fill_efficiency(heap: &dyn GlobalAlloc, rng: &mut Rng) -> f64 {
    let mut used = 0usize;
    for _ in 0..EFFICIENCY_ROUNDS {
        let mut live: Vec<Block<'_>> = Vec::with_capacity(100_000);
        while let Some(b) = Block::new(heap, rng.size(10_000), rng.align()) {
            live.push(b);
        }
        used += live.iter().map(|b| b.layout.size()).sum::<usize>();
    }
    used as f64 / (EFFICIENCY_ROUNDS * HEAP) as f64 * 100.0
}

/// Share of the heap (in %) the live requested bytes hold when the first request fails, in
/// talc's mix of allocations, frees and reallocations (up to 100 kB).
fn heap_efficiency(heap: &dyn GlobalAlloc, rng: &mut Rng) -> f64 {
    let mut used = 0usize;
    for _ in 0..EFFICIENCY_ROUNDS {
        let mut live: Vec<Block<'_>> = Vec::with_capacity(100_000);
        loop {
            match rng.range(0, 10) {
                0..=4 => match Block::new(heap, rng.size(10_000), rng.align()) {
                    Some(b) => live.push(b),
                    None => break,
                },
                5 => {
                    if !live.is_empty() {
                        let i = rng.range(0, live.len());
                        live.swap_remove(i);
                    }
                }
                _ => {
                    if !live.is_empty() {
                        let i = rng.range(0, live.len());
                        let n = rng.range(1, 100_000);
                        if !live[i].realloc(n) {
                            break;
                        }
                    }
                }
            }
        }
        used += live.iter().map(|b| b.layout.size()).sum::<usize>();
    }
    used as f64 / (EFFICIENCY_ROUNDS * HEAP) as f64 * 100.0
}

fn heap_efficiency_table() {
    // Skip when divan is only listing benchmarks, or filtered to another one.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // Divan's options that take a value; any other non-option argument is a filter.
    const VALUED: &[&str] = &[
        "--sample-count",
        "--sample-size",
        "--min-time",
        "--max-time",
        "--threads",
        "--timer",
        "--color",
        "--skip",
        "--bytes-format",
        "--items-format",
    ];
    let mut filters = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        if VALUED.contains(&a.as_str()) {
            rest.next();
        } else if !a.starts_with('-') {
            filters.push(a.as_str());
        }
    }
    if !filters.is_empty() && !filters.iter().any(|f| "heap_efficiency".contains(f)) {
        return;
    }
    let arena = bench_arena();
    println!(
        "heap_efficiency ({} MiB heap, {EFFICIENCY_ROUNDS} rounds): allocate until failure | talc's mix until failure",
        HEAP >> 20
    );
    for name in efficiency_allocators() {
        // SAFETY: one allocator at a time owns the arena.
        let heap = unsafe { make(name, arena.base, arena.len) };
        let f = fill_efficiency(&*heap, &mut Rng(0x9E37_79B9_7F4A_7C15));
        drop(heap);
        // SAFETY: as above; the previous allocator is gone.
        let heap = unsafe { make(name, arena.base, arena.len) };
        let e = heap_efficiency(&*heap, &mut Rng(0x9E37_79B9_7F4A_7C15));
        println!("  {name:<24} {f:6.2} % | {e:6.2} %");
    }
    println!();
}

// ----- random actions -----

const ACTIONS: usize = 20_000;
const MIN_LIVE: usize = 300;

/// Runs talc's random-actions mix for `ACTIONS` steps with allocations up to `max` bytes.
/// Returns the number of successful operations (all of them, on a heap this size).
fn random_actions(heap: &dyn GlobalAlloc, max: usize) -> usize {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut live: Vec<Block<'_>> = Vec::with_capacity(4096);
    let mut done = 0;
    for _ in 0..ACTIONS {
        done += usize::from(step(heap, &mut rng, &mut live, max) == Some(true));
    }
    drop(live);
    done
}

/// One random action: whether it succeeded, or `None` for a reallocation with no block to
/// reallocate.
fn step<'a>(
    heap: &'a dyn GlobalAlloc,
    rng: &mut Rng,
    live: &mut Vec<Block<'a>>,
    max: usize,
) -> Option<bool> {
    let action = rng.range(0, 7);
    if action == 6 {
        if live.is_empty() {
            return None;
        }
        let i = rng.range(0, live.len());
        let n = rng.range(1, max * 3);
        Some(live[i].realloc(n))
    } else if action < 3 || live.len() < MIN_LIVE {
        let (size, align) = (rng.size(max), rng.align());
        let block = Block::new(heap, size, align);
        let ok = block.is_some();
        live.extend(block);
        Some(ok)
    } else {
        let i = rng.range(0, live.len());
        live.swap_remove(i);
        Some(true)
    }
}

#[divan::bench(args = ALLOCATORS, consts = [1000, 30000], sample_count = 30)]
fn random_actions_bench<const MAX: usize>(bencher: Bencher, name: &str) {
    let arena = bench_arena();
    bencher
        .counter(divan::counter::ItemsCount::new(ACTIONS))
        .bench_local(|| {
            // SAFETY: one allocator at a time owns the arena; it is dropped before the next
            // iteration builds another.
            let heap = unsafe { make(name, arena.base, arena.len) };
            divan::black_box(random_actions(&*heap, MAX))
        });
}

// ----- initialisation over 1 GiB -----

const INIT: &[&str] = &[
    "uk TLSF",
    "uk buddy",
    "uk region",
    "uk TLSF (checked)",
    "uk buddy (checked)",
    "talc",
    "rlsf",
    "linked_list_allocator",
    "buddy_system_allocator",
];

#[divan::bench(args = INIT, sample_count = 50)]
fn init_1gib(bencher: Bencher, name: &str) {
    let arena = gib_arena();
    // Start 1 MiB + 12 KiB in: RAM rarely starts on a large power of two.
    let base = arena.base.wrapping_add((1 << 20) + 3 * 4096);
    bencher.bench_local(|| {
        // SAFETY: one allocator at a time owns the region; each is dropped after its
        // measurement, before the next is built.
        let heap = unsafe { make(name, base, GIB) };
        divan::black_box(heap)
    });
}
