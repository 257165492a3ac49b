//! The image's memory: a `uk-alloc` heap over every usable region, serving `alloc::` before
//! `main`, and a buddy pool for page allocations.
//!
//! # Heap
//!
//! [`ImageAllocator`] is the image's `#[global_allocator]`. At boot `uk_rt::start` hands it
//! every region of [`Platform::memory_regions`](uk_hal::Platform::memory_regions); each
//! region becomes part of one heap (the backends manage any number of disjoint regions, so
//! nothing is lost to a single-arena design). The backend is chosen at build time:
//!
//! | feature | heap backend | adding a region |
//! |---|---|---|
//! | `alloc-tlsf` (default) | [`uk_alloc::Tlsf`]: O(1) `malloc`/`free`, good fit | O(1): two headers |
//! | `alloc-buddy` | `uk_alloc::Buddy`: bytes served as whole pages | O(1) per initial block |
//! | `alloc-region` | `uk_alloc::Region`: bump allocator, `free` keeps the memory | O(1) |
//!
//! Features are additive, so when several are enabled the least default wins: `alloc-region`
//! over `alloc-buddy` over `alloc-tlsf`. An empty backend is all zero bytes, so the
//! allocator is a `static` in `.bss`: its list heads (10 KiB for the TLSF) cost the image file
//! nothing and need no initialisation, and handing a region over is constant time whatever
//! its size, so the heap adds next to nothing to boot time.
//!
//! # Pages
//!
//! [`ImageAllocator::palloc`] hands out page-aligned runs of [`PAGE_SIZE`]-byte pages (for
//! stacks, page tables, DMA buffers). With feature `pages-buddy` (default) they come from a
//! `uk_alloc::Buddy` pool that starts empty and grows on demand by taking *chunks* from
//! the heap: a chunk is a power of two of at least 2 MiB, aligned to its size and twice the
//! block the request needs (the buddy keeps its metadata in the chunk's first page, so its
//! largest block is half the chunk). Pages freed go back to the pool, where the buddy merges
//! them, and a chunk whose pages are all free again goes back to the heap (so memory a
//! burst of page allocations took serves any purpose afterwards; taking a chunk again is
//! constant time), unless the heap is a `Region`, which would never reuse it. When the heap cannot spare a whole chunk (or
//! the pool already holds [`MAX_CHUNKS`]), the request is served by the heap backend's own
//! `palloc`, and `pfree` routes each run back to whichever allocator it came from. This is
//! what `uk-alloc`'s design favours: every backend accepts memory at any time, the buddy's
//! start is constant time, and no share of memory is set aside for pages an image may never
//! ask for. With `alloc-buddy` the heap already is a buddy allocator and serves pages itself.
//! Without `pages-buddy`, pages always come from the heap backend.
//!
//! [`ImageAllocator::pfree_part`] frees part of a run ([`Allocator::pfree_part`]) through
//! the same routing: the pool's buddy frees any part, a TLSF heap a tail, and a refusal
//! ([`AllocError::Unsupported`]) leaves the run whole.
//!
//! # Accounting
//!
//! [`ImageAllocator::stats`] are the heap's statistics ([`Stats`], in requested bytes,
//! exact); chunks taken by the page pool count there as live allocations, so the heap's
//! byte limit ([`ImageAllocator::set_limit`], `RLIMIT_DATA` semantics) bounds heap and page
//! pool together. [`ImageAllocator::page_stats`] are the pool's statistics: the pages it
//! handed out. Growing the pool is tried only when the heap reports room for a chunk, so a
//! request served by the fallback is not also counted as an `ENOMEM`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use uk_alloc::Locked;
pub use uk_alloc::{AllocError, Allocator, PAGE_SIZE, Stats};

/// The heap backend this image was built with (see the [module documentation](self)).
#[cfg(feature = "alloc-region")]
pub type HeapBackend = uk_alloc::Region;
/// The heap backend this image was built with (see the [module documentation](self)).
#[cfg(all(feature = "alloc-buddy", not(feature = "alloc-region")))]
pub type HeapBackend = uk_alloc::Buddy;
/// The heap backend this image was built with (see the [module documentation](self)).
#[cfg(not(any(feature = "alloc-buddy", feature = "alloc-region")))]
pub type HeapBackend = uk_alloc::Tlsf;

/// Name of [`HeapBackend`]: `"tlsf"`, `"buddy"` or `"region"`.
pub const BACKEND: &str = if cfg!(feature = "alloc-region") {
    "region"
} else if cfg!(feature = "alloc-buddy") {
    "buddy"
} else {
    "tlsf"
};

/// Whether page allocations come from the buddy pool rather than the heap backend.
#[cfg_attr(not(feature = "pages-buddy"), allow(dead_code))]
const PAGE_POOL: bool = cfg!(all(
    feature = "pages-buddy",
    any(feature = "alloc-region", not(feature = "alloc-buddy"))
));

/// Most chunks the page pool takes from the heap; requests beyond go to the heap directly.
pub const MAX_CHUNKS: usize = 16;

/// Smallest chunk the page pool takes from the heap.
pub const MIN_CHUNK: usize = 2 << 20;

/// Bytes of the chunk the page pool takes from the heap to serve `pages` pages: twice the
/// power-of-two block the buddy serves them from, at least [`MIN_CHUNK`]. `None` when the
/// size overflows.
pub fn chunk_bytes(pages: usize) -> Option<usize> {
    let block = pages.checked_next_power_of_two()?.checked_mul(PAGE_SIZE)?;
    Some(block.checked_mul(2)?.max(MIN_CHUNK))
}

/// The buddy pool behind [`ImageAllocator::palloc`] (feature `pages-buddy`).
#[cfg(feature = "pages-buddy")]
struct PagePool {
    buddy: uk_alloc::Buddy,
    /// `(start, end)` of every chunk taken from the heap.
    chunks: [(usize, usize); MAX_CHUNKS],
    count: usize,
}

#[cfg(feature = "pages-buddy")]
impl PagePool {
    const fn new() -> Self {
        PagePool {
            buddy: uk_alloc::Buddy::new(),
            chunks: [(0, 0); MAX_CHUNKS],
            count: 0,
        }
    }

    fn owns(&self, address: usize) -> bool {
        self.chunks[..self.count]
            .iter()
            .any(|&(start, end)| (start..end).contains(&address))
    }

    /// Takes a chunk big enough for `pages` from `heap`, if the heap has room for one.
    fn grow(&mut self, heap: &mut dyn Allocator, pages: usize) -> bool {
        let Some(bytes) = chunk_bytes(pages) else {
            return false;
        };
        // An aligned block of `bytes` surely fits in a free block of twice that (plus
        // headers): asking only then keeps a refused chunk out of the heap's ENOMEM count.
        let room = bytes.saturating_mul(2).saturating_add(4 * PAGE_SIZE);
        if self.count == MAX_CHUNKS || heap.max_alloc() < room {
            return false;
        }
        let Ok(chunk) = heap.alloc_aligned(bytes, bytes) else {
            return false;
        };
        // SAFETY: the chunk is a live heap allocation of `bytes` bytes that nobody else
        // uses; it stays allocated (owned by the pool) until the pool gives it back.
        if unsafe { self.buddy.add_memory(chunk.as_ptr(), bytes) }.is_err() {
            // SAFETY: the chunk was allocated just above and is not used.
            let _ = unsafe { heap.free(chunk) };
            return false;
        }
        let start = chunk.as_ptr() as usize;
        self.chunks[self.count] = (start, start + bytes);
        self.count += 1;
        true
    }

    fn palloc(
        &mut self,
        heap: &mut dyn Allocator,
        pages: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        // `max_pages` is exact: asking the buddy only when it can serve keeps a request
        // that the heap then serves out of the pool's ENOMEM count.
        if pages == 0 || self.buddy.max_pages() >= pages || self.grow(heap, pages) {
            return self.buddy.palloc(pages);
        }
        heap.palloc(pages)
    }

    /// # Safety
    ///
    /// As [`Allocator::pfree`] for a run this pool or `heap` handed out.
    unsafe fn pfree(
        &mut self,
        heap: &mut dyn Allocator,
        ptr: NonNull<u8>,
        pages: usize,
    ) -> Result<(), AllocError> {
        // SAFETY: forwarded contract; each run goes back to the allocator it came from.
        unsafe {
            if self.owns(ptr.as_ptr() as usize) {
                self.buddy.pfree(ptr, pages)?;
                self.release_if_empty(heap, ptr.as_ptr() as usize);
                Ok(())
            } else {
                heap.pfree(ptr, pages)
            }
        }
    }

    /// Gives the chunk holding `address` back to `heap` if none of its pages is in use any
    /// more, so that memory the pool no longer needs serves every purpose again (a large
    /// allocation, another chunk) instead of staying the pool's for good.
    fn release_if_empty(&mut self, heap: &mut dyn Allocator, address: usize) {
        // A region (bump) heap keeps what is freed: a chunk given back would be lost.
        if cfg!(feature = "alloc-region") {
            return;
        }
        let Some(i) = self.chunks[..self.count]
            .iter()
            .position(|&(start, end)| (start..end).contains(&address))
        else {
            return;
        };
        let start = self.chunks[i].0;
        if self.buddy.remove_free_region(start as *const u8).is_none() {
            return;
        }
        self.count -= 1;
        self.chunks[i] = self.chunks[self.count];
        let chunk = NonNull::new(start as *mut u8).expect("a chunk is a heap allocation");
        // SAFETY: the chunk is the live heap allocation `grow` made, which the buddy no
        // longer manages (it gave the region back) and nothing else uses.
        let freed = unsafe { heap.free(chunk) };
        debug_assert!(
            freed.is_ok(),
            "the heap refused a chunk of its own: {freed:?}"
        );
    }

    /// # Safety
    ///
    /// As [`Allocator::pfree_part`] for a run this pool or `heap` handed out (or a piece
    /// of one that an earlier partial free left).
    unsafe fn pfree_part(
        &mut self,
        heap: &mut dyn Allocator,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> Result<(), AllocError> {
        // SAFETY: forwarded contract; each run (and every piece of it, which lies in the
        // same chunk) goes to the allocator it came from.
        unsafe {
            if self.owns(run.as_ptr() as usize) {
                self.buddy.pfree_part(run, run_pages, part, part_pages)?;
                self.release_if_empty(heap, run.as_ptr() as usize);
                Ok(())
            } else {
                heap.pfree_part(run, run_pages, part, part_pages)
            }
        }
    }
}

/// The image's allocator: the `#[global_allocator]` of every image, and the page allocator.
/// See the [module documentation](self); [`crate::allocator`] returns the image's one.
///
/// Every method takes the heap's spin lock for its duration: none may be called from an
/// interrupt handler that could interrupt a holder of the lock. The `GlobalAlloc` methods
/// hold it with interrupts masked (once the board has [`uk_hal::Platform::interrupts`]), so a
/// preempting timer interrupt never strands the lock.
pub struct ImageAllocator {
    heap: Locked<HeapBackend>,
    #[cfg(feature = "pages-buddy")]
    pages: spin::Mutex<PagePool>,
    /// Bytes of every region the allocator took ([`ImageAllocator::total`]).
    total: core::sync::atomic::AtomicUsize,
}

impl Default for ImageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageAllocator {
    /// An allocator without memory. Usable in a `static`: the empty backends are all zero
    /// bytes, so it sits in `.bss` and needs no initialisation at boot.
    pub const fn new() -> Self {
        ImageAllocator {
            heap: Locked::new(HeapBackend::new()),
            #[cfg(feature = "pages-buddy")]
            pages: spin::Mutex::new(PagePool::new()),
            total: core::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Bytes of memory handed to the allocator: every region [`ImageAllocator::add_memory`]
    /// took, its metadata included (the image's RAM, as `sysinfo`'s `totalram` reports
    /// it; [`ImageAllocator::available`] is what of it is free).
    pub fn total(&self) -> usize {
        self.total.load(core::sync::atomic::Ordering::Relaxed)
    }

    fn heap(&self) -> &Locked<HeapBackend> {
        &self.heap
    }

    #[cfg(feature = "pages-buddy")]
    fn pool(&self) -> &spin::Mutex<PagePool> {
        &self.pages
    }

    /// Name of the heap backend: `"tlsf"`, `"buddy"` or `"region"`.
    pub fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Gives the `len` bytes at `base` to the heap ([`Allocator::add_memory`]).
    ///
    /// # Errors
    ///
    /// [`AllocError::Inval`] for a region too small for the backend's bookkeeping (it is
    /// left unused).
    ///
    /// # Safety
    ///
    /// As [`Allocator::add_memory`]: the range is mapped read-write, used by nothing else,
    /// overlaps no other region, and stays so for the image's lifetime.
    pub unsafe fn add_memory(&self, base: *mut u8, len: usize) -> Result<(), AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.heap().lock().add_memory(base, len) }?;
        self.total
            .fetch_add(len, core::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Runs `f` on the heap backend under its lock, for what the other methods do not
    /// cover (`malloc`, `realloc`, `memalign`, ... through [`Allocator`]).
    ///
    /// `f` must not allocate through `alloc::` (the global allocator): the lock is held.
    pub fn with_heap<R>(&self, f: impl FnOnce(&mut dyn Allocator) -> R) -> R {
        f(&mut *self.heap().lock())
    }

    /// The heap's statistics, in requested bytes; chunks of the page pool count as
    /// allocations.
    pub fn stats(&self) -> Stats {
        self.heap().lock().stats()
    }

    /// The page pool's statistics: the pages it handed out (each run counts its bytes).
    /// Without a pool (`alloc-buddy`, or no `pages-buddy`) the heap serves pages and this
    /// is [`ImageAllocator::stats`].
    pub fn page_stats(&self) -> Stats {
        #[cfg(feature = "pages-buddy")]
        if PAGE_POOL {
            return self.pool().lock().buddy.stats();
        }
        self.stats()
    }

    /// The heap's byte limit, `None` when unlimited.
    pub fn limit(&self) -> Option<usize> {
        self.heap().lock().limit()
    }

    /// Sets the heap's byte limit (`RLIMIT_DATA` semantics, see [`Allocator::set_limit`]):
    /// a request that would take the live requested bytes past it fails with `ENOMEM` and
    /// changes nothing. Chunks the page pool takes count against it.
    pub fn set_limit(&self, limit: Option<usize>) {
        self.heap().lock().set_limit(limit);
    }

    /// Free bytes: the heap's free memory plus the page pool's free pages.
    pub fn available(&self) -> usize {
        let heap = self.heap().lock().available();
        #[cfg(feature = "pages-buddy")]
        if PAGE_POOL {
            return heap + self.pool().lock().buddy.available();
        }
        heap
    }

    /// The largest `n` for which a `malloc(n)` on the heap succeeds now.
    pub fn max_alloc(&self) -> usize {
        self.heap().lock().max_alloc()
    }

    /// The largest page count [`ImageAllocator::palloc`] can serve now without growing the
    /// pool by a chunk (a request beyond may still succeed from a new chunk).
    pub fn max_pages(&self) -> usize {
        #[cfg(feature = "pages-buddy")]
        if PAGE_POOL {
            let pool = self.pool().lock();
            return pool.buddy.max_pages().max(self.heap().lock().max_pages());
        }
        self.heap().lock().max_pages()
    }

    /// Allocates `pages` contiguous pages aligned to [`PAGE_SIZE`] (see the module
    /// documentation for where they come from).
    ///
    /// # Errors
    ///
    /// [`AllocError::NoMem`] when no run of that many pages is free, for zero pages, or when
    /// the byte count overflows.
    pub fn palloc(&self, pages: usize) -> Result<NonNull<u8>, AllocError> {
        #[cfg(feature = "pages-buddy")]
        if PAGE_POOL {
            // Lock order: pool, then heap (the global allocator takes only the heap's).
            let mut pool = self.pool().lock();
            return pool.palloc(&mut *self.heap().lock(), pages);
        }
        self.heap().lock().palloc(pages)
    }

    /// Frees `pages` pages at `ptr` that [`ImageAllocator::palloc`] returned.
    ///
    /// # Errors
    ///
    /// What the owning backend detects ([`AllocError::BadFree`], [`AllocError::DoubleFree`]).
    ///
    /// # Safety
    ///
    /// `ptr` and `pages` are exactly the pointer and count of a live `palloc` run.
    pub unsafe fn pfree(&self, ptr: NonNull<u8>, pages: usize) -> Result<(), AllocError> {
        #[cfg(feature = "pages-buddy")]
        if PAGE_POOL {
            let mut pool = self.pool().lock();
            // SAFETY: forwarded contract.
            return unsafe { pool.pfree(&mut *self.heap().lock(), ptr, pages) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.heap().lock().pfree(ptr, pages) }
    }

    /// Frees `part_pages` pages at `part`, a page-aligned part of a live run of `run_pages`
    /// pages at `run` that [`ImageAllocator::palloc`] returned, and keeps the pages before
    /// and after the part as runs of their own, each freed later with its own pointer and
    /// count ([`Allocator::pfree_part`]). Runs of the buddy pool (the default, `pages-buddy`)
    /// and of an `alloc-buddy` heap can lose any part; runs the TLSF heap served (the
    /// pool's fallback, or no pool) their tail; a `Region` heap none.
    ///
    /// # Errors
    ///
    /// [`AllocError::Unsupported`] when the owning backend does not free this part (the run
    /// is then still live whole), and what it detects ([`AllocError::BadFree`] for a part
    /// outside the run, [`AllocError::DoubleFree`]). Nothing changes on an error.
    ///
    /// # Safety
    ///
    /// `run` and `run_pages` are exactly the pointer and count of a live run (one `palloc`
    /// returned, or a piece an earlier `pfree_part` left).
    pub unsafe fn pfree_part(
        &self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> Result<(), AllocError> {
        #[cfg(feature = "pages-buddy")]
        if PAGE_POOL {
            let mut pool = self.pool().lock();
            // SAFETY: forwarded contract.
            return unsafe {
                pool.pfree_part(&mut *self.heap().lock(), run, run_pages, part, part_pages)
            };
        }
        // SAFETY: forwarded contract.
        unsafe {
            self.heap()
                .lock()
                .pfree_part(run, run_pages, part, part_pages)
        }
    }

    /// Deallocations through `alloc::` that the backend rejected as bad or double frees.
    pub fn rejected_frees(&self) -> usize {
        self.heap().rejected_frees()
    }
}

/// Runs `f` with interrupts masked on this CPU (through the board's
/// [`uk_hal::irq::Interrupts`], once it has them): the heap lock is a spin lock, and a timer
/// interrupt that preempted its holder could otherwise hand the CPU to a thread that spins
/// on it forever.
#[inline]
fn irqs_masked<R>(f: impl FnOnce() -> R) -> R {
    let irqs = crate::try_platform().and_then(|p| p.interrupts());
    let state = irqs.map(|i| i.mask());
    let result = f();
    if let (Some(irqs), Some(state)) = (irqs, state) {
        irqs.restore(state);
    }
    result
}

// SAFETY: every method forwards to `Locked`, whose `GlobalAlloc` implementation upholds the
// contract (blocks of the requested size and alignment, disjoint, valid until freed).
unsafe impl GlobalAlloc for ImageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        irqs_masked(|| unsafe { self.heap().alloc(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        irqs_masked(|| unsafe { self.heap().dealloc(ptr, layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        irqs_masked(|| unsafe { self.heap().alloc_zeroed(layout) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        irqs_masked(|| unsafe { self.heap().realloc(ptr, layout, new_size) })
    }
}

#[cfg_attr(target_os = "none", global_allocator)]
static ALLOCATOR: ImageAllocator = ImageAllocator::new();

/// The image's allocator: statistics, byte limit, page allocation (see
/// [`ImageAllocator`]). It is also the `#[global_allocator]` behind `alloc::`.
pub fn allocator() -> &'static ImageAllocator {
    &ALLOCATOR
}

/// Gives every region to the heap; regions too small for the backend's bookkeeping are
/// skipped with a debug log line.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn init(regions: &[uk_hal::MemoryRegion]) {
    for region in regions {
        let base = core::ptr::with_exposed_provenance_mut::<u8>(region.base as usize);
        // SAFETY: the board guarantees (see `uk_rt::start`) that every listed region is
        // mapped, writable and used by nothing else, and that regions do not overlap; each
        // is handed over once.
        if unsafe { ALLOCATOR.add_memory(base, region.size as usize) }.is_err() {
            log::debug!(
                "memory region {:#x}+{:#x} too small for the heap",
                region.base,
                region.size
            );
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    /// Alignment of the test arenas: where the pool's aligned chunks land, and so what stays
    /// contiguous in the heap, must not depend on where the host put the arena.
    const ARENA_ALIGN: usize = 4 << 20;

    /// An allocator over a leaked arena of `bytes` bytes aligned to [`ARENA_ALIGN`].
    fn image(bytes: usize) -> ImageAllocator {
        let arena: &'static mut [u8] = Vec::leak(std::vec![0u8; bytes + ARENA_ALIGN]);
        let offset = arena.as_ptr().align_offset(ARENA_ALIGN);
        let a = ImageAllocator::new();
        // SAFETY: the leaked arena lives forever and is used by nothing else.
        unsafe { a.add_memory(arena[offset..].as_mut_ptr(), bytes).unwrap() };
        a
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_bytes(1), Some(MIN_CHUNK));
        assert_eq!(chunk_bytes(256), Some(MIN_CHUNK));
        assert_eq!(chunk_bytes(257), Some(4 << 20));
        assert_eq!(chunk_bytes(4096), Some(32 << 20));
        assert_eq!(chunk_bytes(usize::MAX), None);
        assert_eq!(chunk_bytes(usize::MAX / PAGE_SIZE), None);
    }

    #[test]
    fn global_alloc_counts_exactly() {
        let a = image(1 << 20);
        let before = a.stats();
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: non-zero size; freed with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(a.stats().cur_bytes, before.cur_bytes + 1000);
            let p = a.realloc(p, layout, 3000);
            assert!(!p.is_null());
            assert_eq!(a.stats().cur_bytes, before.cur_bytes + 3000);
            a.dealloc(p, Layout::from_size_align(3000, 8).unwrap());
        }
        let after = a.stats();
        assert_eq!(after.cur_bytes, before.cur_bytes);
        assert_eq!(after.total_allocs, before.total_allocs + 2);
        assert_eq!(after.total_frees, before.total_frees + 2);
        assert_eq!(a.rejected_frees(), 0);
    }

    #[test]
    fn limit_bounds_heap_and_pool() {
        let a = image(8 << 20);
        a.set_limit(Some(4096));
        assert_eq!(a.limit(), Some(4096));
        let layout = Layout::from_size_align(5000, 16).unwrap();
        // SAFETY: non-zero size.
        assert!(unsafe { a.alloc(layout) }.is_null());
        assert_eq!(a.stats().enomem, 1);
        // The pool cannot take a chunk past the limit either: the heap serves the page,
        // or nothing does.
        assert_eq!(a.palloc(2), Err(AllocError::NoMem));
        let p = a.palloc(1).unwrap();
        assert_eq!(a.stats().cur_bytes, PAGE_SIZE);
        // SAFETY: live run.
        unsafe { a.pfree(p, 1).unwrap() };
        a.set_limit(None);
        assert!(a.palloc(2).is_ok());
    }

    #[test]
    fn pages_come_from_a_pool_that_grows_from_the_heap() {
        if !PAGE_POOL {
            return;
        }
        let a = image(16 << 20);
        assert_eq!(a.page_stats(), Stats::default());
        let one = a.palloc(1).unwrap();
        // The pool took one minimal chunk, counted by the heap.
        assert_eq!(a.stats().cur_bytes, MIN_CHUNK);
        assert_eq!(a.stats().enomem, 0);
        let many = a.palloc(300).unwrap();
        assert_eq!(a.stats().cur_bytes, MIN_CHUNK + (4 << 20));
        for (p, n) in [(one, 1usize), (many, 300)] {
            assert_eq!(p.as_ptr() as usize % PAGE_SIZE, 0);
            // The buddy serves from naturally aligned blocks.
            assert_eq!(p.as_ptr() as usize % (n.next_power_of_two() * PAGE_SIZE), 0);
        }
        let s = a.page_stats();
        assert_eq!((s.cur_allocs, s.cur_bytes), (2, 301 * PAGE_SIZE));
        // Too large for a chunk that the heap can spare: the heap serves it directly.
        let big = a.palloc(1000).unwrap();
        assert_eq!(
            a.stats().cur_bytes,
            MIN_CHUNK + (4 << 20) + 1000 * PAGE_SIZE
        );
        assert_eq!(a.stats().enomem, 0);
        assert_eq!(a.page_stats().enomem, 0);
        // SAFETY: live runs, each freed once with its count.
        unsafe {
            a.pfree(big, 1000).unwrap();
            a.pfree(many, 300).unwrap();
        }
        assert_eq!(a.page_stats().cur_bytes, PAGE_SIZE);
        // The chunk `many` emptied went back to the heap (not to a region heap, which would
        // never reuse it); `one`'s stays with the pool, and its free pages are reused
        // without taking another chunk.
        let region = cfg!(feature = "alloc-region");
        let kept = if region {
            MIN_CHUNK + (4 << 20)
        } else {
            MIN_CHUNK
        };
        assert_eq!(a.stats().cur_bytes, kept);
        let again = a.palloc(200).unwrap();
        assert_eq!(a.stats().cur_bytes, kept);
        // SAFETY: live runs, each freed once with its count.
        unsafe {
            a.pfree(again, 200).unwrap();
            a.pfree(one, 1).unwrap();
        }
        assert_eq!(a.page_stats().cur_bytes, 0);
        // SAFETY: refused; nothing is touched.
        let again = unsafe { a.pfree(one, 1) };
        if region {
            assert_eq!(a.stats().cur_bytes, kept);
            assert_eq!(again, Err(AllocError::DoubleFree));
        } else {
            // Every chunk is back: the heap holds nothing, and all of it can be one block
            // again. A repeated free names memory of the heap now, which reports it.
            assert_eq!(a.stats().cur_bytes, 0);
            assert!(a.max_alloc() > 15 << 20, "{}", a.max_alloc());
            assert_eq!(again, Err(AllocError::BadFree));
        }
        assert_eq!(a.palloc(0), Err(AllocError::NoMem));
    }

    #[test]
    fn parts_of_runs_go_back_to_the_allocator_that_served_them() {
        let a = image(16 << 20);
        let page = |p: NonNull<u8>, n: usize| p.map_addr(|x| x.saturating_add(n * PAGE_SIZE));
        let run = a.palloc(12).unwrap();
        let free = a.available();
        // SAFETY: `run` is a live run of 12 pages; each call names a live run (it, then the
        // pieces it leaves) and a part inside it, or outside it where that is refused.
        unsafe {
            let outside = a.pfree_part(run, 12, page(run, 12), 1);
            let want = if BACKEND == "region" && !PAGE_POOL {
                AllocError::Unsupported
            } else {
                AllocError::BadFree
            };
            assert_eq!(outside, Err(want));
            assert_eq!(a.available(), free, "a refusal changes nothing");
            // Any part of a pool run; a tail of a run the TLSF heap serves.
            let middle = a.pfree_part(run, 12, page(run, 4), 3);
            if PAGE_POOL || BACKEND == "buddy" {
                middle.unwrap();
                assert_eq!(a.available(), free + 3 * PAGE_SIZE);
                assert_eq!(a.page_stats().cur_bytes, 9 * PAGE_SIZE);
                a.pfree(page(run, 7), 5).unwrap();
                a.pfree_part(run, 4, run, 4).unwrap();
            } else if BACKEND == "tlsf" {
                assert_eq!(middle, Err(AllocError::Unsupported));
                a.pfree_part(run, 12, page(run, 4), 8).unwrap();
                assert_eq!(a.stats().cur_bytes, 4 * PAGE_SIZE);
                a.pfree(run, 4).unwrap();
            } else {
                assert_eq!(middle, Err(AllocError::Unsupported));
                a.pfree(run, 12).unwrap();
            }
            assert_eq!(a.page_stats().cur_bytes, 0);
        }
    }

    #[test]
    fn available_and_max_cover_heap_and_pool() {
        let a = image(8 << 20);
        let total = a.available();
        assert!(total > (8 << 20) - 4 * PAGE_SIZE, "{total}");
        let p = a.palloc(4).unwrap();
        assert!(a.available() < total);
        assert!(a.max_pages() >= 4);
        assert!(a.max_alloc() > (3 << 20));
        // SAFETY: live run.
        unsafe { a.pfree(p, 4).unwrap() };
        assert_eq!(a.backend(), BACKEND);
        a.with_heap(|h| {
            let q = h.malloc(10).unwrap();
            // SAFETY: live.
            unsafe { h.free(q).unwrap() };
        });
    }

    #[test]
    fn an_empty_allocator_refuses_politely() {
        let a = ImageAllocator::new();
        // SAFETY: non-zero size.
        assert!(unsafe { a.alloc(Layout::new::<u64>()) }.is_null());
        assert_eq!(a.palloc(1), Err(AllocError::NoMem));
        assert_eq!(a.available(), 0);
        assert_eq!(a.max_alloc(), 0);
    }
}
