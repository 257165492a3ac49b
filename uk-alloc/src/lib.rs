//! Memory allocators for uk-rs: the `Allocator` trait of Unikraft's `ukalloc`, three
//! backends, exact statistics, a byte limit, and a `GlobalAlloc` adapter.
//!
//! # Design
//!
//! Every backend implements [`Allocator`], the interface of Unikraft's `struct uk_alloc`:
//! `malloc`, `calloc`, `realloc`, `memalign`, `posix_memalign`, `free`, page allocation
//! (`palloc`/`pfree`), free memory, the largest possible allocation, and adding memory
//! regions at any time. Beyond Unikraft, [`Allocator::pfree_part`] frees part of a page run
//! and leaves the pages before and after it as live runs of their own (a libc's partial
//! `munmap`); the buddy allocator frees any part, TLSF a tail, the others refuse with
//! [`AllocError::Unsupported`] and change nothing. Methods take `&mut self`; sharing goes through [`Locked`], which
//! also makes any backend Rust's `#[global_allocator]`. Callers that know an allocation's
//! size (Rust's `dealloc` and `realloc` do) pass it to [`Allocator::free_sized`] and
//! [`Allocator::realloc_sized`] as a hint, never trusted, that lets TLSF start loading the
//! next block's header early.
//!
//! - [`Tlsf`] — two-level segregated fit, **the general-purpose heap**. Free blocks sit in
//!   size-class lists found by two bit scans, so `malloc` and `free` take constant time
//!   whatever the heap holds (what a kernel wants from an allocator called in interrupt
//!   context or under a lock). Good-fit placement and merging keep fragmentation low: over
//!   99 % of a heap can be filled with mixed sizes. Freed blocks under 1 KiB are parked on
//!   bounded per-size quick lists and reused first, merged back before any allocation
//!   would fail. Adding a region writes two headers, so a gigabyte is ready in under a
//!   microsecond.
//! - [`Buddy`] — a binary buddy allocator over 4 KiB pages, **for page-granular memory**
//!   (page tables, DMA buffers, stacks). Blocks are naturally aligned; a request of any page
//!   count takes exactly that many pages (the tail of the power-of-two block goes back at
//!   once), so everything up to the largest free block fits. Its per-page bitmap is never
//!   cleared: only bits a split has written are ever read, so adding a region is constant
//!   time too.
//! - [`Region`] — a bump allocator **for early boot**, before the board has mapped its RAM or
//!   chosen a heap: a pointer moves forward and `free` gives nothing back (documented, and
//!   still validated and counted).
//!
//! # Statistics, limit, bad input
//!
//! [`Stats`] holds Unikraft's counters (last, smallest and largest request; allocations and
//! frees; live allocations and bytes and their peaks; `ENOMEM` failures). They count the
//! bytes callers asked for, which every backend stores with each allocation, so a `free`
//! takes back exactly what its allocation added and the figures are the same whichever
//! backend serves the requests. [`Allocator::set_limit`] sets a byte limit with
//! `RLIMIT_DATA` semantics: a request that would take the live bytes past it fails with
//! [`AllocError::NoMem`] before anything changes.
//!
//! Every failure is a typed [`AllocError`] (`EINVAL`/`ENOMEM`-like variants and reports of
//! bad and double frees) and leaves the allocator exactly as it was. Sizes follow glibc:
//! `malloc(0)` returns a unique pointer, sizes above `isize::MAX` and products or roundings
//! that overflow fail with `ENOMEM`, `posix_memalign` refuses alignments that are not a
//! power-of-two multiple of the pointer size with `EINVAL`, `realloc(p, 0)` frees.
//!
//! `free` and `realloc` check what a block's header allows (in the heap, aligned, allocated,
//! sane size), which catches a repeated free of the same pointer. The *checked mode* of
//! [`Tlsf::new_checked`] and [`Buddy::new_checked`] adds out-of-band bitmaps of where blocks
//! start, so any pointer value — foreign, interior, freed — is recognised and reported; in
//! that mode the safety precondition of `free`, `realloc` and `pfree` is lifted. [`Region`]
//! always validates.
//!
//! # Unikraft 0.11 defects this crate does not repeat
//!
//! `calloc` with a zero size divided by zero; `realloc` copied the new size out of the old
//! block; the buddy allocator counted its metadata twice (#688); a 1 GiB allocation failed
//! with 4 GiB of RAM; buddy initialisation walked every page (2.42 ms for 1 GiB). Each has a
//! test in `tests/defects.rs`.
//!
//! # Features
//!
//! `tlsf`, `buddy` and `region` (all on by default) select the backends, so an image links
//! only what it uses. `ktest` registers in-image test cases (`uk-test`) that run every
//! backend on the target CPU over memory taken from the image's heap (exact statistics, the
//! limit, natural alignment of buddy blocks, partial frees of buddy runs, checked mode's
//! refusals). [`Locked`] takes any [`lock_api::RawMutex`]: `spin::Mutex<()>` by
//! default, or [`CriticalSectionRawMutex`] where interrupt handlers allocate too (the board
//! provides the `critical-section` implementation).
//!
//! # Example
//!
//! ```
//! use uk_alloc::{AllocError, Allocator, Tlsf};
//!
//! let mut ram = vec![0u8; 1 << 20];
//! let mut heap = Tlsf::new();
//! // SAFETY: `ram` outlives `heap` and nothing else uses it.
//! unsafe { heap.add_memory(ram.as_mut_ptr(), ram.len()) }?;
//!
//! heap.set_limit(Some(4096));
//! let p = heap.malloc(1000)?;
//! assert_eq!(heap.malloc(4000), Err(AllocError::NoMem)); // past the limit
//! // SAFETY: `p` is live; the contents move with it.
//! let p = unsafe { heap.realloc(Some(p), 3000) }?.unwrap();
//! let s = heap.stats();
//! assert_eq!((s.cur_allocs, s.cur_bytes, s.enomem), (1, 3000, 1));
//!
//! // SAFETY: `p` is live.
//! unsafe { heap.free(p) }?;
//! // SAFETY: checked or not, an immediate second free is recognised.
//! assert_eq!(unsafe { heap.free(p) }, Err(AllocError::DoubleFree));
//! # Ok::<(), AllocError>(())
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
// With some backends left out, some shared helpers go unused.
#![cfg_attr(
    not(all(feature = "tlsf", feature = "buddy", feature = "region")),
    allow(dead_code)
)]

#[cfg(test)]
extern crate std;

use core::ptr::NonNull;

mod error;
mod stats;
mod util;

#[cfg(feature = "buddy")]
pub mod buddy;
pub mod global;
#[cfg(feature = "ktest")]
mod ktests;
#[cfg(feature = "region")]
pub mod region;
#[cfg(feature = "tlsf")]
pub mod tlsf;

#[cfg(feature = "buddy")]
pub use buddy::Buddy;
pub use error::{AllocError, EINVAL, ENOMEM};
pub use global::CriticalSectionRawMutex;
pub use global::Locked;
#[cfg(feature = "region")]
pub use region::Region;
pub use stats::Stats;
#[cfg(feature = "tlsf")]
pub use tlsf::{CheckedTlsf, Tlsf};

/// Size of the pages [`Allocator::palloc`] hands out: 4 KiB on both supported architectures.
pub const PAGE_SIZE: usize = 4096;

/// Alignment of every pointer [`Allocator::malloc`], [`Allocator::calloc`] and
/// [`Allocator::realloc`] return: 16 bytes, C's `alignof(max_align_t)` on x86_64 and aarch64.
pub const MIN_ALIGN: usize = 16;

/// The largest size any request may have: `isize::MAX`, as glibc (and Rust's `Layout`)
/// enforce. Larger requests fail with [`AllocError::NoMem`] before anything is rounded.
pub const MAX_REQUEST: usize = isize::MAX as usize;

/// A memory allocator: the interface of Unikraft's `struct uk_alloc`, in Rust.
///
/// Every backend of this crate ([`Tlsf`], [`Buddy`], [`Region`]) implements it, and any of
/// them can serve Rust's `alloc` through [`Locked`]. Methods take `&mut self`: an allocator
/// is a plain data structure, and callers that share one wrap it in a lock.
///
/// # Contract common to all methods
///
/// - A failed call changes nothing but the [`Stats::enomem`] counter (for
///   [`AllocError::NoMem`]); in particular a failed `realloc` leaves the old allocation
///   valid and untouched.
/// - Sizes are bytes as the caller asked for them. A size above [`MAX_REQUEST`], or one whose
///   rounding or header would overflow, fails with [`AllocError::NoMem`], as in glibc.
/// - A size of zero is valid: the result is a unique pointer that must be freed like any
///   other (glibc's `malloc(0)`).
/// - Statistics ([`Allocator::stats`]) and the byte limit ([`Allocator::set_limit`]) count
///   requested bytes, exactly.
pub trait Allocator {
    /// Allocates `size` bytes aligned to `align`, the primitive the other allocation methods
    /// are built on (Rust's `GlobalAlloc::alloc` maps onto it directly).
    ///
    /// `align` must be a power of two, or the call fails with [`AllocError::Inval`];
    /// alignments below [`MIN_ALIGN`] are raised to it. Fails with [`AllocError::NoMem`] when
    /// no block fits or the byte limit would be exceeded.
    fn alloc_aligned(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError>;

    /// Resizes the allocation at `ptr` to `size` bytes, C's `realloc`, keeping its first
    /// `min(old size, size)` bytes; the pointer returned is [`MIN_ALIGN`]-aligned.
    ///
    /// - `ptr == None` behaves as `malloc(size)` and returns `Some`.
    /// - `size == 0` with `Some(ptr)` frees `ptr` and returns `Ok(None)` (glibc's behaviour).
    /// - On failure the old allocation is left valid and unchanged.
    ///
    /// Only the old allocation's requested bytes are read, never `size` bytes from it.
    ///
    /// # Safety
    ///
    /// `ptr` must be `None` or a live pointer returned by this allocator's byte interface
    /// (`malloc`, `calloc`, `realloc`, `memalign`, `posix_memalign`, `alloc_aligned`).
    /// Backends that validate pointers report a violation as [`AllocError::BadFree`] or
    /// [`AllocError::DoubleFree`] instead (see each backend's *checked mode*), but a caller
    /// may rely on that only with a backend that documents it for its current mode.
    unsafe fn realloc(
        &mut self,
        ptr: Option<NonNull<u8>>,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, AllocError>;

    /// Resizes the allocation at `ptr` to `size` bytes only if that needs no move, returning
    /// whether it did; on `Ok(false)` nothing changed. Counts like [`Allocator::realloc`].
    /// This lets callers that need more than [`MIN_ALIGN`] (Rust's `GlobalAlloc::realloc`)
    /// keep their alignment. The default never resizes.
    ///
    /// # Safety
    ///
    /// As for [`Allocator::realloc`], with `ptr` not `None`.
    unsafe fn realloc_in_place(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
    ) -> Result<bool, AllocError> {
        let _ = (ptr, size);
        Ok(false)
    }

    /// Frees the allocation at `ptr`, C's `free` (a null pointer is the caller's no-op).
    ///
    /// Returns [`AllocError::BadFree`] or [`AllocError::DoubleFree`] when the backend detects
    /// that `ptr` is not a live allocation; the allocator is then left untouched.
    ///
    /// # Safety
    ///
    /// As for [`Allocator::realloc`]: `ptr` must be live and come from this allocator's byte
    /// interface, unless the backend documents that it checks this in its current mode.
    unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), AllocError>;

    /// [`Allocator::realloc`] of the live allocation at `ptr` for a caller that knows its
    /// requested size `old_size` (Rust's `GlobalAlloc::realloc` passes it, and [`Locked`]
    /// forwards it). As for [`Allocator::free_sized`], `old_size` is only a hint that a
    /// backend may use to start loading metadata early; the default ignores it and calls
    /// [`Allocator::realloc`].
    ///
    /// # Safety
    ///
    /// As for [`Allocator::realloc`], with `ptr` not `None`.
    unsafe fn realloc_sized(
        &mut self,
        ptr: NonNull<u8>,
        old_size: usize,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, AllocError> {
        let _ = old_size;
        // SAFETY: forwarded contract.
        unsafe { self.realloc(Some(ptr), size) }
    }

    /// [`Allocator::free`] for a caller that knows the allocation's requested size (C23's
    /// `free_sized`; Rust's `GlobalAlloc::dealloc` passes it, and [`Locked`] forwards it).
    /// `size` is only a hint, never trusted: a backend may use it to start loading the
    /// metadata it is about to need, so a wrong size costs time at most. The default ignores
    /// it and calls [`Allocator::free`].
    ///
    /// # Safety
    ///
    /// As for [`Allocator::free`].
    unsafe fn free_sized(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), AllocError> {
        let _ = size;
        // SAFETY: forwarded contract.
        unsafe { self.free(ptr) }
    }

    /// The size requested for the live allocation at `ptr` made through the byte interface
    /// (`malloc`, `calloc`, `realloc`, `memalign`, `posix_memalign`, `alloc_aligned`): what
    /// [`Allocator::realloc`] would keep. The allocation may have more usable bytes, but these
    /// are the ones that belong to it; wrappers such as `uk-mte`'s tagging allocator use this
    /// to know what to re-tag before a `free`.
    ///
    /// Backends that do not keep the size return [`AllocError::Inval`] (the default); every
    /// backend of this crate keeps it. A pointer that is not a live allocation is reported as
    /// [`Allocator::free`] would report it.
    ///
    /// # Safety
    ///
    /// As for [`Allocator::free`] (nothing is modified).
    unsafe fn allocation_size(&self, ptr: NonNull<u8>) -> Result<usize, AllocError> {
        let _ = ptr;
        Err(AllocError::Inval)
    }

    /// Allocates `pages` contiguous pages of [`PAGE_SIZE`] bytes, aligned to [`PAGE_SIZE`]
    /// (Unikraft's `palloc`). Counts `pages * PAGE_SIZE` bytes in the statistics and limit.
    /// Zero pages, or a byte count that overflows, fail with [`AllocError::NoMem`].
    fn palloc(&mut self, pages: usize) -> Result<NonNull<u8>, AllocError>;

    /// Frees `pages` pages at `ptr` that [`Allocator::palloc`] returned (Unikraft's `pfree`).
    ///
    /// # Safety
    ///
    /// `ptr` and `pages` must be exactly the pointer and count of a live `palloc`
    /// allocation, unless the backend documents that it checks this in its current mode.
    unsafe fn pfree(&mut self, ptr: NonNull<u8>, pages: usize) -> Result<(), AllocError>;

    /// Frees `part_pages` pages at `part`, a page-aligned piece of the live
    /// [`Allocator::palloc`] run of `run_pages` pages at `run`, and keeps the rest of the run
    /// allocated (what Linux's `munmap` of part of a private mapping needs).
    ///
    /// On success the part's pages are free, and what remains of the run is up to two live
    /// runs of their own, each freed later with its own pointer and count (by
    /// [`Allocator::pfree`], or in parts again by this method):
    ///
    /// - the pages before the part: `(part - run) / PAGE_SIZE` pages at `run`, if any;
    /// - the pages after it: the rest, at `part + part_pages * PAGE_SIZE`, if any.
    ///
    /// The original `(run, run_pages)` is no longer a live run: freeing it again is a bad
    /// free. A part that is the whole run is exactly [`Allocator::pfree`].
    ///
    /// Statistics ([`Stats`]): the part counts as one free ([`Stats::total_frees`]) of its
    /// `part_pages * PAGE_SIZE` bytes ([`Stats::cur_bytes`] goes down by them, which makes
    /// room under the byte limit at once). The pieces left are not new allocation requests
    /// ([`Stats::total_allocs`] and the request sizes stay as they are) but they are live
    /// allocations: [`Stats::cur_allocs`] counts one per piece, so it goes down by one when
    /// the whole run goes, stays when a head or a tail goes, and goes up by one when a part
    /// in the middle leaves two pieces.
    ///
    /// Which backends do it: [`Buddy`] frees any part (in checked mode the run is validated
    /// as [`Allocator::pfree`] validates it); [`Tlsf`] frees the whole run or a tail (the
    /// block shrinks in place) and answers [`AllocError::Unsupported`] for a part that leaves
    /// pages after it; [`Region`] and this default implementation answer
    /// [`AllocError::Unsupported`] for every part, changing nothing, so a caller can fall
    /// back to keeping the run whole.
    ///
    /// # Errors
    ///
    /// - [`AllocError::BadFree`]: `part` is not a non-empty, page-aligned range inside the
    ///   run (every backend that frees parts checks this), or the backend detects that `run`
    ///   and `run_pages` are not exactly a live run.
    /// - [`AllocError::DoubleFree`]: the backend detects that the run was already freed.
    /// - [`AllocError::Unsupported`]: the backend does not free this part (see above).
    ///
    /// Nothing changes on an error.
    ///
    /// # Safety
    ///
    /// As for [`Allocator::pfree`]: `run` and `run_pages` must be exactly the pointer and
    /// count of a live run (one `palloc` returned, or a piece an earlier `pfree_part` left),
    /// unless the backend documents that it checks this in its current mode. `part` and
    /// `part_pages` may be anything: they are checked against the run.
    unsafe fn pfree_part(
        &mut self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> Result<(), AllocError> {
        let _ = (run, run_pages, part, part_pages);
        Err(AllocError::Unsupported)
    }

    /// Hands the `len` bytes at `base` to the allocator (Unikraft's `addmem`). May be called
    /// at any time, any number of times, with regions in any order.
    ///
    /// The backend aligns the region inward and keeps its own metadata inside it; a region
    /// too small to hold that metadata and one block fails with [`AllocError::Inval`] and is
    /// left unused.
    ///
    /// # Safety
    ///
    /// The range must be valid for reads and writes, hold initialised bytes (any values:
    /// RAM handed over by firmware qualifies), overlap no other region given to any
    /// allocator, and stay valid and otherwise unused for the allocator's lifetime.
    unsafe fn add_memory(&mut self, base: *mut u8, len: usize) -> Result<(), AllocError>;

    /// Bytes of memory not handed out (Unikraft's `availmem`): the total of all free
    /// blocks, including the space each allocation needs for its header and rounding, and
    /// not reduced by the byte limit.
    fn available(&self) -> usize;

    /// The largest `size` for which `malloc(size)` succeeds right now (Unikraft's
    /// `maxalloc`): bounded by the largest free block and by the byte limit.
    fn max_alloc(&self) -> usize;

    /// The largest `pages` for which `palloc(pages)` succeeds right now (Unikraft's
    /// `pmaxalloc`), bounded by the largest free block and by the byte limit.
    fn max_pages(&self) -> usize;

    /// A snapshot of the statistics.
    fn stats(&self) -> Stats;

    /// The byte limit, `None` when unlimited.
    fn limit(&self) -> Option<usize>;

    /// Sets the byte limit (`RLIMIT_DATA` semantics): an allocation that would bring the
    /// requested bytes of the live allocations above `limit` fails with
    /// [`AllocError::NoMem`] and changes nothing. Lowering the limit below the current use
    /// is allowed; it only makes further allocations fail.
    fn set_limit(&mut self, limit: Option<usize>);

    /// Allocates `size` bytes aligned to [`MIN_ALIGN`], C's `malloc`.
    fn malloc(&mut self, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.alloc_aligned(MIN_ALIGN, size)
    }

    /// Allocates `nmemb * size` zeroed bytes, C's `calloc`. A product that overflows fails
    /// with [`AllocError::NoMem`]; a product of zero returns a unique pointer.
    fn calloc(&mut self, nmemb: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        // An overflowing product becomes a request above MAX_REQUEST, which every backend
        // refuses with ENOMEM (and counts), exactly as a too-large malloc.
        let total = nmemb.saturating_mul(size);
        let ptr = self.malloc(total)?;
        // SAFETY: `malloc` returned at least `total` writable bytes at `ptr`.
        unsafe { ptr.as_ptr().write_bytes(0, total) };
        Ok(ptr)
    }

    /// Allocates `size` bytes aligned to `align`, glibc's `memalign`: an alignment below
    /// [`MIN_ALIGN`] (including 0) is raised to it, one that is not a power of two is
    /// rounded up to the next one, and one above `usize::MAX / 2 + 1` fails with
    /// [`AllocError::Inval`].
    fn memalign(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        let align = if align <= MIN_ALIGN {
            MIN_ALIGN
        } else {
            align.checked_next_power_of_two().ok_or(AllocError::Inval)?
        };
        self.alloc_aligned(align, size)
    }

    /// Allocates `size` bytes aligned to `align`, POSIX's `posix_memalign`: `align` must be
    /// a power of two and a multiple of `size_of::<usize>()`, or the call fails with
    /// [`AllocError::Inval`] (and counts nothing).
    fn posix_memalign(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        if !align.is_power_of_two() || align % size_of::<usize>() != 0 {
            return Err(AllocError::Inval);
        }
        self.alloc_aligned(align, size)
    }
}
