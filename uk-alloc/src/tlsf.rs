//! TLSF: a two-level segregated-fit allocator for general use.
//!
//! Free blocks live in `FL_COUNT × 32` doubly linked lists. The first level splits sizes by
//! power of two, the second splits each power-of-two range into 32 equal classes; a
//! first-level bitmap and one second-level bitmap per first level say which lists are
//! non-empty. Finding a block that fits is two bit scans, splitting and merging are
//! constant-time pointer updates: `malloc` and `free` run in O(1) whatever the heap holds.
//! Small blocks are recycled even faster through quick lists (below).
//!
//! # Block layout
//!
//! Blocks are 16-byte aligned and a multiple of 16 bytes long. Each starts with a header
//! word holding the size and two flags (this block is free, the previous block is free).
//! An allocated block keeps the caller's requested size in its second word, so an
//! allocation costs 16 bytes of header, and the pointer returned is the block address plus
//! 16 (hence 16-byte aligned). A free block keeps its list links in the second and third
//! words and repeats its size in its last word, so the next block can find its start when
//! merging. Each region ends with a 16-byte sentinel that looks allocated, so merging never
//! runs off the end.
//!
//! A request that the constant-time search cannot serve (because the search rounds the size
//! up to the next class boundary to guarantee a fit) falls back to scanning the one list whose
//! blocks may still fit. That keeps [`Allocator::max_alloc`] exact and the heap usable to
//! its last block, at a cost bounded by the number of blocks in that list, paid only when the
//! constant-time path fails.
//!
//! # Quick lists
//!
//! Freeing a block under 1 KiB does not merge it at once: the block is *parked* on a quick
//! list for its exact size (64 lists, at most 32 blocks each), marked with a flag that
//! makes it look allocated to its neighbours. Parking touches only the block's header; a
//! request of the same block size takes the most recently parked block back just as
//! cheaply. Neither walks the free lists, reads the neighbours or writes a footer, which is
//! most of the cost of a small `malloc`/`free` pair (the idea of dlmalloc's fastbins).
//! A free that finds its quick list full merges as usual.
//!
//! Parked memory is never lost: before any allocation would fail (including `realloc` and
//! `palloc`), every parked block is merged back and the allocation retried, a bounded
//! amount of work (at most 2048 blocks) paid only on that path. [`Allocator::available`]
//! counts parked blocks as free, and [`Allocator::max_alloc`] and [`Allocator::max_pages`]
//! report what would fit after merging them back, so both stay exact. A parked block is
//! recognised as freed by `free`, `realloc` and `allocation_size` in both modes.
//!
//! # Size hints
//!
//! A `free` reads the block's header, then the next block's (to merge with it): two cache
//! misses in a row when the heap's headers are cold. [`Allocator::free_sized`] and
//! [`Allocator::realloc_sized`] (which [`crate::Locked`] calls with the sizes Rust's
//! `GlobalAlloc` passes) use the requested size to prefetch where the next header most
//! likely is, so both misses are in flight at once. The size is never trusted: the header
//! decides everything, and a wrong size only wastes a prefetch.
//!
//! # Page runs
//!
//! `palloc` is a page-aligned allocation of whole pages (its 16-byte header sits in the
//! granule before the run). [`Allocator::pfree_part`] frees the whole run or a tail of it
//! by shrinking the block in place; a part that leaves pages after it is refused with
//! [`AllocError::Unsupported`], since those pages would need a header of their own inside
//! the run.
//!
//! # Checked mode
//!
//! [`Tlsf::new_checked`] keeps, per region, a bitmap with one bit per 16-byte granule
//! marking where blocks start (0.8 % of the region). The bitmap is never cleared as a whole:
//! two small summary levels say which of its words have been written, so adding a region
//! stays constant time (a gigabyte needs 2 KiB cleared). `free`, `realloc` and `pfree` then
//! accept any pointer value: a pointer outside every region, inside a block or at a block
//! that is already free is reported as [`AllocError::BadFree`] or
//! [`AllocError::DoubleFree`] and nothing is touched. Without it, the checks are the cheap
//! ones the header allows (inside the heap's address range, aligned, header says
//! allocated with a sane size), which catch most double frees but cannot vouch for a pointer
//! into the middle of an allocation.

use core::ptr::{self, NonNull};

use crate::stats::{Accounting, accounted_alloc};
use crate::util::{LazyBitmap, align_down, align_up, msb, prefetch};
use crate::{AllocError, Allocator, MAX_REQUEST, PAGE_SIZE, Stats};

/// Block sizes and addresses are multiples of this.
const GRANULE: usize = 16;
/// Bytes in front of every allocation: the size word and the requested-size word.
const HDR: usize = 16;
/// Smallest block: header word, two links and the footer word of a free block.
const MIN_BLOCK: usize = 32;
/// log2 of the number of second-level classes per first-level range.
const SL_LOG: u32 = 5;
const SL_COUNT: usize = 1 << SL_LOG;
/// Sizes below `1 << SMALL_LOG` use first level 0, one exact 16-byte class per list.
const SMALL_LOG: u32 = SL_LOG + GRANULE.trailing_zeros();
const SMALL: usize = 1 << SMALL_LOG;
/// Blocks are smaller than `1 << MAX_LOG` bytes (256 TiB on 64-bit targets).
const MAX_LOG: u32 = if usize::BITS >= 64 {
    48
} else {
    usize::BITS - 1
};
const FL_COUNT: usize = (MAX_LOG - SMALL_LOG + 1) as usize;
/// The largest block the lists can hold.
const MAX_BLOCK: usize = (1 << MAX_LOG) - GRANULE;
const _: () = assert!(MAX_BLOCK - HDR <= MAX_REQUEST);

const FREE: usize = 1;
const PREV_FREE: usize = 2;
/// A freed block parked on a quick list: free memory, but allocated to its neighbours.
const QUICK: usize = 4;
const FLAGS: usize = GRANULE - 1;

/// Blocks smaller than this (1 KiB) are parked on a quick list when freed, one list per
/// exact block size (16-byte steps).
const QUICK_LIMIT: usize = 1024;
const QUICK_CLASSES: usize = QUICK_LIMIT / GRANULE;
/// Blocks a quick list holds at most; a free finding its list full merges as usual.
const QUICK_CAP: u8 = 32;

/// First- and second-level indices of the class of `size` bytes; the first level may be
/// `FL_COUNT` (no such list) for sizes of `1 << MAX_LOG` and above.
#[inline(always)]
fn class_of(size: usize) -> (usize, usize) {
    if size < SMALL {
        (0, size / GRANULE)
    } else {
        let m = msb(size);
        (
            (m - SMALL_LOG + 1) as usize,
            (size >> (m - SL_LOG)) & (SL_COUNT - 1),
        )
    }
}

/// Indices of the list a block of `size <= MAX_BLOCK` bytes belongs to.
#[inline(always)]
fn mapping(size: usize) -> (usize, usize) {
    let (fl, sl) = class_of(size);
    // Blocks never exceed MAX_BLOCK, so the clamp changes nothing; it lets the compiler
    // drop the bounds checks on the list arrays.
    (fl.min(FL_COUNT - 1), sl)
}

/// Indices of the first list whose every block is at least `size` bytes (`size <=
/// MAX_BLOCK`); the first level is `FL_COUNT` when no list qualifies.
#[inline(always)]
fn mapping_search(size: usize) -> (usize, usize) {
    if size < SMALL {
        class_of(size)
    } else {
        // `size <= MAX_BLOCK`, so adding less than a class width cannot overflow.
        class_of(size + (1 << (msb(size) - SL_LOG)) - 1)
    }
}

/// The largest block size list `(fl, sl)` can hold.
fn class_max(fl: usize, sl: usize) -> usize {
    if fl == 0 {
        sl * GRANULE
    } else {
        let m = fl as u32 + SMALL_LOG - 1;
        (1usize << m) + ((sl + 1) << (m - SL_LOG)) - GRANULE
    }
}

/// Block size for a request of `size` bytes (`size <= MAX_REQUEST`).
#[inline(always)]
fn block_size(size: usize) -> usize {
    let s = (size + HDR + GRANULE - 1) & !(GRANULE - 1);
    if s < MIN_BLOCK { MIN_BLOCK } else { s }
}

// Raw block accessors. Every block pointer the allocator handles is 16-byte aligned and
// points at a header inside a region it owns, so word-sized reads and writes at the offsets
// below are in bounds and aligned; each caller states this in its SAFETY comment.

#[inline(always)]
unsafe fn word(b: *mut u8, i: usize) -> usize {
    // SAFETY: caller guarantees `b` is a block header with at least `i + 1` words.
    unsafe { *b.cast::<usize>().add(i) }
}

#[inline(always)]
unsafe fn set_word(b: *mut u8, i: usize, v: usize) {
    // SAFETY: as for `word`.
    unsafe { *b.cast::<usize>().add(i) = v }
}

#[inline(always)]
unsafe fn link(b: *mut u8, i: usize) -> *mut u8 {
    // SAFETY: caller guarantees `b` is a free block, whose words 1 and 2 are links, or a
    // parked one, whose word 1 is its quick-list link.
    unsafe { *b.cast::<*mut u8>().add(i) }
}

#[inline(always)]
unsafe fn set_link(b: *mut u8, i: usize, v: *mut u8) {
    // SAFETY: as for `link`.
    unsafe { *b.cast::<*mut u8>().add(i) = v }
}

#[inline(always)]
unsafe fn size_of_block(b: *mut u8) -> usize {
    // SAFETY: caller guarantees `b` is a block header.
    unsafe { word(b, 0) & !FLAGS }
}

/// Per-region metadata of checked mode, stored at the region's start.
#[repr(C)]
struct RegionMeta {
    next: *mut RegionMeta,
    /// Address of the first block; bit `i` of `starts` is the granule at `first + 16 * i`.
    first: *mut u8,
    /// Address of the sentinel.
    end: usize,
    starts: LazyBitmap,
}

/// The TLSF allocator. See the [module documentation](self).
///
/// ```
/// use uk_alloc::{Allocator, Tlsf};
///
/// let mut arena = vec![0u8; 1 << 16];
/// let mut heap = Tlsf::new();
/// // SAFETY: the arena outlives the allocator and is used for nothing else.
/// unsafe { heap.add_memory(arena.as_mut_ptr(), arena.len()).unwrap() };
/// let p = heap.malloc(100).unwrap();
/// // SAFETY: `p` is live and came from `heap`.
/// unsafe { heap.free(p).unwrap() };
/// ```
pub struct Tlsf<const CHECKED: bool = false> {
    fl_bitmap: u64,
    sl_bitmap: [u32; FL_COUNT],
    heads: [[*mut u8; SL_COUNT]; FL_COUNT],
    /// Bytes in free blocks.
    free_bytes: usize,
    /// Lowest block address and highest sentinel address over all regions.
    lo: usize,
    hi: usize,
    /// Granules from `lo` at which an allocated block may start: `(hi - lo - HDR) / GRANULE`
    /// (a block has at least MIN_BLOCK bytes before `hi`), 0 without memory.
    start_granules: usize,
    regions: *mut RegionMeta,
    acct: Accounting,
    /// Quick lists: freed small blocks by exact size, linked through word 1.
    quick: [*mut u8; QUICK_CLASSES],
    quick_len: [u8; QUICK_CLASSES],
}

/// A [`Tlsf`] in checked mode, as [`Tlsf::new_checked`] makes it. The mode is a type
/// parameter so that the unchecked allocator pays nothing for it.
pub type CheckedTlsf = Tlsf<true>;

// SAFETY: a `Tlsf` exclusively owns the memory its raw pointers point into (the regions
// given to `add_memory`); nothing in it is tied to the thread that created it.
unsafe impl<const CHECKED: bool> Send for Tlsf<CHECKED> {}

impl Default for Tlsf {
    fn default() -> Self {
        Self::new()
    }
}

impl Tlsf {
    /// An empty allocator without memory; give it some with [`Allocator::add_memory`].
    /// Usable in a `static`.
    pub const fn new() -> Self {
        Self::empty()
    }
}

impl Tlsf<true> {
    /// An empty allocator in checked mode (see the [module documentation](self)): every
    /// pointer passed to `free`, `realloc` or `pfree` is validated, so the safety
    /// precondition on those methods is lifted. Usable in a `static`.
    pub const fn new_checked() -> Self {
        Self::empty()
    }
}

impl<const CHECKED: bool> Tlsf<CHECKED> {
    const fn empty() -> Self {
        Tlsf {
            fl_bitmap: 0,
            sl_bitmap: [0; FL_COUNT],
            heads: [[ptr::null_mut(); SL_COUNT]; FL_COUNT],
            free_bytes: 0,
            // No region yet: the empty range 0..0 (all-zero empty state, see `Accounting`).
            lo: 0,
            hi: 0,
            start_granules: 0,
            regions: ptr::null_mut(),
            acct: Accounting::new(),
            quick: [ptr::null_mut(); QUICK_CLASSES],
            quick_len: [0; QUICK_CLASSES],
        }
    }

    /// Whether this allocator validates pointers fully.
    pub const fn is_checked(&self) -> bool {
        CHECKED
    }

    /// Usable bytes of the live allocation at `ptr` (at least its requested size), C's
    /// `malloc_usable_size`.
    ///
    /// # Errors
    ///
    /// As [`Allocator::free`] for a pointer that is not live.
    ///
    /// # Safety
    ///
    /// As [`Allocator::free`].
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>) -> Result<usize, AllocError> {
        let b = self.validate(ptr)?;
        // SAFETY: `validate` returned the header of a live block.
        Ok(unsafe { size_of_block(b) } - HDR)
    }

    // ----- free lists -----

    #[inline(always)]
    unsafe fn insert(&mut self, b: *mut u8, size: usize) {
        let (fl, sl) = mapping(size);
        let head = self.heads[fl][sl];
        // SAFETY: `b` is a free block of `size` bytes; `head`, if non-null, is a free block.
        // The head of a list has no meaningful back link (see `remove`), so `b`'s is left
        // as it is; the old head gets one now that it is second.
        unsafe {
            set_link(b, 1, head);
            if !head.is_null() {
                set_link(head, 2, b);
            }
        }
        self.heads[fl][sl] = b;
        self.sl_bitmap[fl] |= 1 << sl;
        self.fl_bitmap |= 1 << fl;
        self.free_bytes += size;
    }

    #[inline(always)]
    unsafe fn remove(&mut self, b: *mut u8, size: usize) {
        let (fl, sl) = mapping(size);
        // SAFETY: `b` is a free block of `size` bytes in list (fl, sl); its neighbours in
        // the list are free blocks too. Only blocks other than a list's head have a valid
        // back link: the head is recognised by comparing with the list's head pointer, so
        // that taking the head (`pop`) never writes to the block behind it.
        unsafe {
            let next = link(b, 1);
            if self.heads[fl][sl] == b {
                // `next` becomes the head: its back link is no longer read.
                self.heads[fl][sl] = next;
            } else {
                let prev = link(b, 2);
                set_link(prev, 1, next);
                if !next.is_null() {
                    set_link(next, 2, prev);
                }
            }
        }
        if self.heads[fl][sl].is_null() {
            self.sl_bitmap[fl] &= !(1 << sl);
            if self.sl_bitmap[fl] == 0 {
                self.fl_bitmap &= !(1 << fl);
            }
        }
        self.free_bytes -= size;
    }

    /// Unlinks and returns the first block of the non-empty list (fl, sl), with its size.
    #[inline(always)]
    unsafe fn pop(&mut self, fl: usize, sl: usize) -> (*mut u8, usize) {
        let b = self.heads[fl][sl];
        // SAFETY: the caller guarantees the list is non-empty, so `b` is a free block, and
        // so is the next one if any.
        unsafe {
            let next = link(b, 1);
            self.heads[fl][sl] = next;
            // `next`, now the head, keeps a stale back link that is never read.
            if next.is_null() {
                self.sl_bitmap[fl] &= !(1 << sl);
                if self.sl_bitmap[fl] == 0 {
                    self.fl_bitmap &= !(1 << fl);
                }
            }
            let size = size_of_block(b);
            self.free_bytes -= size;
            (b, size)
        }
    }

    /// Marks `b` (whose previous block is allocated) as a free block of `size` bytes and
    /// puts it on its list.
    #[inline(always)]
    unsafe fn make_free(&mut self, b: *mut u8, size: usize) {
        // SAFETY: `b..b + size` is a block of this heap followed by another block (or the
        // sentinel) at `b + size`.
        unsafe {
            let next = b.add(size);
            set_word(next, 0, word(next, 0) | PREV_FREE);
            self.make_free_before_flagged(b, size);
        }
    }

    /// As `make_free`, when the block after `b` already has its PREV_FREE flag set.
    #[inline(always)]
    unsafe fn make_free_before_flagged(&mut self, b: *mut u8, size: usize) {
        // SAFETY: `b..b + size` is a block of this heap, whose last word is its footer.
        unsafe {
            set_word(b, 0, size | FREE);
            *b.add(size - size_of::<usize>()).cast::<usize>() = size;
            self.insert(b, size);
        }
    }

    /// Takes the first block of the non-empty list for a block of at least `need` bytes.
    #[inline(always)]
    fn find(&self, need: usize) -> Option<(usize, usize)> {
        let (fl, sl) = mapping_search(need);
        if fl >= FL_COUNT {
            return None;
        }
        let bits = self.sl_bitmap[fl] & (u32::MAX << sl);
        if bits != 0 {
            return Some((fl, bits.trailing_zeros() as usize));
        }
        let fbits = self.fl_bitmap & (u64::MAX << (fl + 1));
        if fbits == 0 {
            return None;
        }
        let f = fbits.trailing_zeros() as usize;
        Some((f, self.sl_bitmap[f].trailing_zeros() as usize))
    }

    /// Finds and unlinks a free block of at least `need` bytes; returns it and its size.
    #[inline(always)]
    fn take(&mut self, need: usize) -> Option<(*mut u8, usize)> {
        if let Some((fl, sl)) = self.find(need) {
            // SAFETY: the bitmaps say list (fl, sl) is non-empty.
            return Some(unsafe { self.pop(fl, sl) });
        }
        self.take_slow(need, GRANULE)
    }

    /// The fallback when no list is guaranteed to fit: scans the lists that may hold a
    /// block where `need` bytes fit at an `align`-aligned payload.
    #[cold]
    fn take_slow(&mut self, need: usize, align: usize) -> Option<(*mut u8, usize)> {
        if need > MAX_BLOCK {
            return None;
        }
        let (fl0, sl0) = mapping(need);
        let mut fl = fl0;
        while fl < FL_COUNT {
            let mut bits = self.sl_bitmap[fl];
            if fl == fl0 {
                bits &= u32::MAX << sl0;
            }
            while bits != 0 {
                let sl = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let mut b = self.heads[fl][sl];
                while !b.is_null() {
                    // SAFETY: `b` is a free block on list (fl, sl).
                    let size = unsafe { size_of_block(b) };
                    if aligned_gap(b, size, need, align).is_some() {
                        // SAFETY: as above.
                        unsafe { self.remove(b, size) };
                        return Some((b, size));
                    }
                    // SAFETY: as above.
                    b = unsafe { link(b, 1) };
                }
                if align == GRANULE {
                    // Only the list of `need`'s own class can hold a block the
                    // constant-time search missed.
                    return None;
                }
            }
            fl += 1;
        }
        None
    }

    /// Turns the unlinked free block `b` of `size` bytes into an allocated block of `need`
    /// bytes, returning the tail to the free lists when it can form a block.
    #[inline(always)]
    unsafe fn carve(&mut self, b: *mut u8, size: usize, need: usize) {
        // SAFETY: `b` is an unlinked block of `size >= need` bytes of this heap, followed by
        // a block or the sentinel.
        unsafe {
            let prev_flag = word(b, 0) & PREV_FREE;
            let rem = size - need;
            if rem >= MIN_BLOCK {
                set_word(b, 0, need | prev_flag);
                let r = b.add(need);
                self.mark_start(r, true);
                // The block after `r` already has PREV_FREE set: `b` was free.
                self.make_free_before_flagged(r, rem);
            } else {
                set_word(b, 0, size | prev_flag);
                let next = b.add(size);
                set_word(next, 0, word(next, 0) & !PREV_FREE);
            }
        }
    }

    /// Returns the allocated block `b` to the free lists, merging with free neighbours.
    unsafe fn release(&mut self, b: *mut u8) {
        // SAFETY: forwarded contract.
        unsafe { self.release_inline(b) }
    }

    /// `release`, inlined into `free`, the hottest caller.
    #[inline(always)]
    unsafe fn release_inline(&mut self, b: *mut u8) {
        // SAFETY: `b` is an allocated block of this heap; its neighbours are blocks (or the
        // sentinel), and when PREV_FREE is set the word before `b` is the previous free
        // block's size.
        unsafe {
            let mut b = b;
            let mut size = size_of_block(b);
            let next = b.add(size);
            let nh = word(next, 0);
            let merged_next = nh & FREE != 0;
            if merged_next {
                let ns = nh & !FLAGS;
                self.remove(next, ns);
                self.mark_start(next, false);
                size += ns;
            } else {
                // `next` stays: it now follows a free block. Its header is at hand (just
                // read), unlike that of the block after a merged `next`.
                set_word(next, 0, nh | PREV_FREE);
            }
            if word(b, 0) & PREV_FREE != 0 {
                let ps = *b.sub(size_of::<usize>()).cast::<usize>();
                let p = b.sub(ps);
                self.remove(p, ps);
                self.mark_start(b, false);
                // Leave the absorbed header saying "free", so a second free of it is
                // recognised as one for as long as the memory is not reused.
                set_word(b, 0, word(b, 0) | FREE);
                b = p;
                size += ps;
            }
            // The block after `b..b + size` has PREV_FREE set: either just above, or
            // because it followed the free `next` already (free blocks are never
            // adjacent), so its header need not be read again.
            self.make_free_before_flagged(b, size);
        }
    }

    /// Shrinks the allocated block `b` of `size` bytes to `need` bytes when the tail can
    /// form a block of its own, freeing the tail.
    unsafe fn shrink(&mut self, b: *mut u8, size: usize, need: usize) {
        if size - need < MIN_BLOCK {
            return;
        }
        // SAFETY: `b` is an allocated block of `size` bytes; the tail `b + need..b + size`
        // becomes an allocated block whose previous block (`b`) is allocated, then is freed.
        unsafe {
            set_word(b, 0, need | (word(b, 0) & PREV_FREE));
            let t = b.add(need);
            set_word(t, 0, size - need);
            self.mark_start(t, true);
            self.release(t);
        }
    }

    /// Makes the allocated block `b` exactly `need` bytes (give or take a tail too small to
    /// split) without moving it: shrinking, or growing into a free next block. Returns
    /// whether it could.
    #[inline]
    unsafe fn resize_in_place(&mut self, b: *mut u8, need: usize) -> bool {
        // SAFETY: `b` is a live allocated block; its successor is a block or the sentinel.
        unsafe {
            let cur = size_of_block(b);
            if need <= cur {
                self.shrink(b, cur, need);
                return true;
            }
            let next = b.add(cur);
            let mut nh = word(next, 0);
            if nh & QUICK != 0 && self.unpark_to_grow(next, cur, need) {
                nh = word(next, 0);
            }
            if nh & FREE == 0 || cur + (nh & !FLAGS) < need {
                return false;
            }
            let ns = nh & !FLAGS;
            self.remove(next, ns);
            self.mark_start(next, false);
            let total = cur + ns;
            set_word(b, 0, total | (word(b, 0) & PREV_FREE));
            let after = b.add(total);
            set_word(after, 0, word(after, 0) & !PREV_FREE);
            self.shrink(b, total, need);
            true
        }
    }

    /// A block of `cur` bytes that must grow to `need` is followed by the parked block
    /// `next`: when `next` together with a free block after it makes room, takes `next`
    /// off its quick list and merges it into the free lists (so `next` then heads a free
    /// block) and returns `true`. Without this a parked neighbour would look allocated and
    /// the `realloc` would move and copy. The list is searched (at most `QUICK_CAP`
    /// links) only when the growth will succeed.
    ///
    /// # Safety
    ///
    /// `next` is a parked block of this heap.
    #[cold]
    #[inline(never)]
    unsafe fn unpark_to_grow(&mut self, next: *mut u8, cur: usize, need: usize) -> bool {
        // SAFETY: `next` is parked (a block that looks allocated, word 1 its list link);
        // the block after it is a block or the sentinel.
        unsafe {
            let size = word(next, 0) & !FLAGS;
            let after = word(next.add(size), 0);
            let beyond = if after & FREE != 0 { after & !FLAGS } else { 0 };
            if cur + size + beyond < need {
                return false;
            }
            let i = size / GRANULE;
            let mut at: *mut *mut u8 = &raw mut self.quick[i];
            while *at != next {
                if (*at).is_null() {
                    // Not on its list (cannot happen): leave it parked.
                    return false;
                }
                at = (*at).add(size_of::<usize>()).cast::<*mut u8>();
            }
            *at = link(next, 1);
            self.quick_len[i] -= 1;
            set_word(next, 0, word(next, 0) & !QUICK);
            // Parked bytes are counted free; `release` counts them again as it merges.
            self.free_bytes -= size;
            self.release(next);
            true
        }
    }

    /// The last resort of a growing `realloc` when no free block fits: slides the
    /// allocation back into a free previous block, together with the next block if that is
    /// free too, moving the first `keep` payload bytes. Returns the new block.
    #[cold]
    unsafe fn grow_backward(&mut self, b: *mut u8, need: usize, keep: usize) -> Option<*mut u8> {
        // SAFETY: `b` is a live allocated block; when PREV_FREE is set, the word before it
        // is the previous free block's size; its successor is a block or the sentinel.
        unsafe {
            if word(b, 0) & PREV_FREE == 0 {
                return None;
            }
            let cur = size_of_block(b);
            let ps = *b.sub(size_of::<usize>()).cast::<usize>();
            let next = b.add(cur);
            let nh = word(next, 0);
            let ns = if nh & FREE != 0 { nh & !FLAGS } else { 0 };
            let total = ps + cur + ns;
            if total < need {
                return None;
            }
            let p = b.sub(ps);
            self.remove(p, ps);
            if ns != 0 {
                self.remove(next, ns);
                self.mark_start(next, false);
            }
            self.mark_start(b, false);
            // The regions overlap: move, not copy.
            ptr::copy(b.add(HDR), p.add(HDR), keep);
            // `p`'s previous block is allocated (`p` was free), so no PREV_FREE flag.
            set_word(p, 0, total);
            let after = p.add(total);
            set_word(after, 0, word(after, 0) & !PREV_FREE);
            self.shrink(p, total, need);
            Some(p)
        }
    }

    /// The moves of a growing or shrinking `realloc` of the allocated block `b` (payload
    /// `ptr`, `old` requested bytes) to `need` bytes for `size` requested: in place, to a
    /// new block, or back into a free predecessor. `None` if none fits.
    ///
    /// # Safety
    ///
    /// `b` is a live allocated block of this heap with payload `ptr`.
    unsafe fn move_or_resize(
        &mut self,
        b: *mut u8,
        ptr: NonNull<u8>,
        need: usize,
        size: usize,
        old: usize,
    ) -> Option<*mut u8> {
        // SAFETY: forwarded contract.
        unsafe {
            if self.resize_in_place(b, need) {
                Some(b)
            } else if let Some(nb) = self.allocate(GRANULE, size) {
                // Copy what the old allocation holds, never more (0.11 read `size` bytes).
                ptr::copy_nonoverlapping(ptr.as_ptr(), nb.add(HDR), old.min(size));
                self.park_or_release(b);
                Some(nb)
            } else {
                self.grow_backward(b, need, old.min(size))
            }
        }
    }

    // ----- quick lists -----

    /// Takes a parked block of exactly `need` bytes, if any, as an allocated block.
    #[inline(always)]
    fn unpark(&mut self, need: usize) -> Option<*mut u8> {
        if need >= QUICK_LIMIT {
            return None;
        }
        let i = need / GRANULE;
        let q = self.quick[i];
        if q.is_null() {
            return None;
        }
        // SAFETY: `q` heads the quick list of blocks of exactly `need` bytes: a block that
        // looks allocated to its neighbours, whose word 1 links the list. Clearing QUICK
        // makes it an allocated block.
        unsafe {
            self.quick[i] = link(q, 1);
            self.quick_len[i] -= 1;
            self.free_bytes -= need;
            set_word(q, 0, word(q, 0) & !QUICK);
        }
        Some(q)
    }

    /// Frees the allocated block `b`: parks it on its quick list when it is small and the
    /// list has room (one header line touched, no neighbour, no list links), else merges it
    /// into the free lists.
    ///
    /// # Safety
    ///
    /// `b` is an allocated block of this heap.
    #[inline(always)]
    unsafe fn park_or_release(&mut self, b: *mut u8) {
        // SAFETY: forwarded contract; word 1 of a parked block is its list link.
        unsafe {
            let h = word(b, 0);
            let bsize = h & !FLAGS;
            if bsize < QUICK_LIMIT && self.quick_len[bsize / GRANULE] < QUICK_CAP {
                let i = bsize / GRANULE;
                set_word(b, 0, h | QUICK);
                set_link(b, 1, self.quick[i]);
                self.quick[i] = b;
                self.quick_len[i] += 1;
                self.free_bytes += bsize;
            } else {
                self.release_inline(b);
            }
        }
    }

    /// Merges every parked block back into the free lists, as `free` would have; returns
    /// whether there was any. Called when an allocation does not fit otherwise, so that
    /// parking never makes an allocation fail. At most `QUICK_CLASSES * QUICK_CAP` blocks.
    #[cold]
    #[inline(never)]
    fn flush_quick(&mut self) -> bool {
        let mut any = false;
        for i in 0..QUICK_CLASSES {
            let mut b = core::mem::replace(&mut self.quick[i], ptr::null_mut());
            self.quick_len[i] = 0;
            while !b.is_null() {
                any = true;
                // SAFETY: `b` is a parked block: allocated as far as its neighbours know,
                // word 1 links the list. Without QUICK it is an allocated block `release`
                // can merge (its bytes leave the parked count and come back merged).
                unsafe {
                    let next = link(b, 1);
                    let h = word(b, 0);
                    set_word(b, 0, h & !QUICK);
                    self.free_bytes -= h & !FLAGS;
                    self.release(b);
                    b = next;
                }
            }
        }
        any
    }

    /// Calls `f(start, size)` for every run of adjacent free and parked blocks that holds a
    /// parked block: the blocks `flush_quick` would produce (a run may be reported more
    /// than once). Bounded by the number of parked blocks squared.
    fn quick_runs(&self, mut f: impl FnMut(*mut u8, usize)) {
        for &head in &self.quick {
            let mut q = head;
            while !q.is_null() {
                // SAFETY: `q` is a parked block; its successors up to the first allocated
                // block (at the latest the region's sentinel, which looks allocated) are
                // blocks, and a set PREV_FREE flag means the word before `q` is the
                // previous free block's size. A run starting with parked blocks is found
                // from its first one; one starting with a free block, from the parked
                // block after it.
                unsafe {
                    let h = word(q, 0);
                    let (start, mut size) = if h & PREV_FREE != 0 {
                        let ps = *q.sub(size_of::<usize>()).cast::<usize>();
                        (q.sub(ps), ps)
                    } else {
                        (q, 0)
                    };
                    let mut at = q;
                    loop {
                        let ah = word(at, 0);
                        if ah & (FREE | QUICK) == 0 {
                            break;
                        }
                        size += ah & !FLAGS;
                        at = at.add(ah & !FLAGS);
                    }
                    f(start, size);
                    q = link(q, 1);
                }
            }
        }
    }

    // ----- checked mode -----

    /// In checked mode, records whether a block starts at `b`.
    #[inline(always)]
    fn mark_start(&mut self, b: *mut u8, on: bool) {
        if !CHECKED {
            return;
        }
        if let Some(r) = self.region_of(b as usize) {
            // SAFETY: `r` is a live region descriptor and `b` lies in its block area.
            unsafe {
                let i = (b as usize - (*r).first as usize) / GRANULE;
                (*r).starts.set(i, on);
            }
        }
    }

    fn region_of(&self, addr: usize) -> Option<*mut RegionMeta> {
        let mut r = self.regions;
        while !r.is_null() {
            // SAFETY: the region list holds descriptors written by `add_memory`.
            unsafe {
                if addr >= (*r).first as usize && addr < (*r).end {
                    return Some(r);
                }
                r = (*r).next;
            }
        }
        None
    }

    /// Checks that `ptr` is a live allocation and returns its block.
    #[inline(always)]
    fn validate(&self, ptr: NonNull<u8>) -> Result<*mut u8, AllocError> {
        if CHECKED {
            return self.validate_checked(ptr);
        }
        let p = ptr.as_ptr() as usize;
        let addr = p.wrapping_sub(HDR);
        // One comparison for "a granule of the heap where a block can start": `lo` is
        // 16-byte aligned, so a misaligned pointer leaves low bits in the offset, which the
        // rotation moves to the top; a pointer below `lo + HDR` wraps to a huge offset.
        if addr
            .wrapping_sub(self.lo)
            .rotate_right(GRANULE.trailing_zeros())
            >= self.start_granules
        {
            return Err(AllocError::BadFree);
        }
        let b = ptr.as_ptr().wrapping_sub(HDR);
        // SAFETY: `b` lies within the heap's address range, so its header is readable.
        let h = unsafe { word(b, 0) };
        // `addr <= hi - MIN_BLOCK` (see `start_granules`), so `room - MIN_BLOCK` does not
        // wrap and one unsigned comparison checks `MIN_BLOCK <= size <= room`; both checks
        // share one branch, the error is told apart only when there is one.
        let room = self.hi - addr;
        let misfit = (h & !FLAGS).wrapping_sub(MIN_BLOCK) > room - MIN_BLOCK;
        if (h & (FREE | QUICK) != 0) | misfit {
            return Err(Self::check_header(h, room)
                .err()
                .unwrap_or(AllocError::BadFree));
        }
        Ok(b)
    }

    /// Whether header `h` is that of an allocated block that fits in `room` bytes.
    #[inline(always)]
    fn check_header(h: usize, room: usize) -> Result<(), AllocError> {
        if h & (FREE | QUICK) != 0 {
            return Err(AllocError::DoubleFree);
        }
        let size = h & !FLAGS;
        if size < MIN_BLOCK || size > room {
            return Err(AllocError::BadFree);
        }
        Ok(())
    }

    #[cold]
    fn validate_checked(&self, ptr: NonNull<u8>) -> Result<*mut u8, AllocError> {
        let p = ptr.as_ptr() as usize;
        if p % GRANULE != 0 || p < HDR {
            return Err(AllocError::BadFree);
        }
        let addr = p - HDR;
        let r = self.region_of(addr).ok_or(AllocError::BadFree)?;
        // SAFETY: `r` is a live region descriptor containing `addr`; deriving the block
        // pointer from the region's own pointer keeps its provenance; the header of any
        // granule of the block area is readable.
        unsafe {
            let first = (*r).first;
            let b = first.add(addr - first as usize);
            let h = word(b, 0);
            if !(*r).starts.get((addr - first as usize) / GRANULE) {
                // Not a block start: a foreign or interior pointer, or a block that was
                // freed and merged into its neighbour (whose stale header says free).
                return Err(if h & FREE != 0 && h & !FLAGS >= MIN_BLOCK {
                    AllocError::DoubleFree
                } else {
                    AllocError::BadFree
                });
            }
            Self::check_header(h, (*r).end - addr)?;
            Ok(b)
        }
    }

    // ----- allocation paths -----

    /// Allocates a block for `size` requested bytes at an `align`-aligned payload.
    #[inline(always)]
    fn allocate(&mut self, align: usize, size: usize) -> Option<*mut u8> {
        let need = block_size(size);
        if align <= GRANULE {
            if let Some(q) = self.unpark(need) {
                return Some(q);
            }
            let (b, bsize) = self.take(need)?;
            // SAFETY: `take` unlinked a free block of `bsize >= need` bytes.
            unsafe { self.carve(b, bsize, need) };
            Some(b)
        } else {
            self.allocate_aligned(align, need)
        }
    }

    fn allocate_aligned(&mut self, align: usize, need: usize) -> Option<*mut u8> {
        // Worst case the payload must move by `align + 16` to leave room for a leading free
        // block of at least MIN_BLOCK bytes.
        // Often the first block of a list that fits `need` is already suitably placed.
        if let Some((fl, sl)) = self.find(need) {
            let b = self.heads[fl][sl];
            // SAFETY: `find` only returns non-empty lists, whose head is a free block.
            if aligned_gap(b, unsafe { size_of_block(b) }, need, align).is_some() {
                // SAFETY: as above.
                unsafe {
                    let block = self.pop(fl, sl);
                    return Some(self.place_aligned(block, need, align));
                }
            }
        }
        let worst = need.checked_add(align)?.checked_add(GRANULE)?;
        let found = if worst <= MAX_BLOCK {
            // SAFETY: `find` only returns non-empty lists.
            self.find(worst).map(|(fl, sl)| unsafe { self.pop(fl, sl) })
        } else {
            None
        };
        let (b, size) = match found {
            Some(found) => found,
            None => self.take_slow(need, align)?,
        };
        if aligned_gap(b, size, need, align).is_none() {
            // Unreachable (both searches guarantee a fit), but never lose a block.
            // SAFETY: `b` is still a well-formed free block of `size` bytes.
            unsafe { self.insert(b, size) };
            return None;
        }
        // SAFETY: `b` is an unlinked free block of `size` bytes with room for the payload.
        Some(unsafe { self.place_aligned((b, size), need, align) })
    }

    /// Allocates `need` bytes at an `align`-aligned payload in the unlinked free block `b`
    /// of `size` bytes, which `aligned_gap` said fits.
    unsafe fn place_aligned(
        &mut self,
        (b, size): (*mut u8, usize),
        need: usize,
        align: usize,
    ) -> *mut u8 {
        let gap = aligned_gap(b, size, need, align).unwrap_or(0);
        // SAFETY: `b` is an unlinked free block of `size` bytes with room for `gap + need`.
        unsafe {
            if gap == 0 {
                self.carve(b, size, need);
                return b;
            }
            // Split off a leading free block of `gap` bytes; the rest is the allocation.
            let a = b.add(gap);
            set_word(a, 0, (size - gap) | PREV_FREE);
            self.mark_start(a, true);
            // `b`'s previous block is allocated (it was free itself), as `make_free` needs.
            self.make_free(b, gap);
            self.carve(a, size - gap, need);
            a
        }
    }

    fn add_region(&mut self, base: *mut u8, len: usize) -> Result<(), AllocError> {
        let start = align_up(base as usize, GRANULE).ok_or(AllocError::Inval)?;
        let end = align_down(
            (base as usize).checked_add(len).ok_or(AllocError::Inval)?,
            GRANULE,
        );
        if end <= start {
            return Err(AllocError::Inval);
        }
        let mut first = start;
        let mut meta: Option<(*mut RegionMeta, usize)> = None;
        if CHECKED {
            let granules = (end - start) / GRANULE;
            let meta_bytes = size_of::<RegionMeta>() + LazyBitmap::bytes_for(granules);
            let m = align_up(meta_bytes, GRANULE).ok_or(AllocError::Inval)?;
            if m > end - start {
                return Err(AllocError::Inval);
            }
            first = start + m;
            meta = Some((base.wrapping_add(start - base as usize).cast(), granules));
        }
        if end - first < MIN_BLOCK + HDR {
            return Err(AllocError::Inval);
        }
        let size = (end - first - HDR).min(MAX_BLOCK);
        let end = first + size;
        // Derive pointers from `base` to keep its provenance.
        let b = base.wrapping_add(first - base as usize);
        // SAFETY: the caller of `add_memory` gave us `base..base + len`; `b..end + HDR` lies
        // inside it, 16-byte aligned. We write the first block's header, the sentinel and,
        // in checked mode, the descriptor and its zeroed bitmap before `b`.
        unsafe {
            if let Some((m, granules)) = meta {
                // Constant time: the bitmap needs no clearing (see `LazyBitmap`).
                let starts = LazyBitmap::new(m.add(1).cast(), granules);
                m.write(RegionMeta {
                    next: self.regions,
                    first: b,
                    end,
                    starts,
                });
                self.regions = m;
            }
            let sentinel = b.add(size);
            set_word(sentinel, 0, 0);
            set_word(sentinel, 1, 0);
            set_word(b, 0, size);
            self.mark_start(b, true);
            self.make_free(b, size);
        }
        self.lo = if self.hi == 0 {
            first
        } else {
            self.lo.min(first)
        };
        self.hi = self.hi.max(end);
        self.start_granules = (self.hi - self.lo - HDR) / GRANULE;
        Ok(())
    }
}

/// An address in the cache line of the header that follows an allocation of `size`
/// requested bytes at `ptr`, if its block has the usual `block_size(size)` bytes: that
/// header starts `size` bytes into the (16-byte aligned) payload rounded up to 16 bytes, so
/// in the 16-byte chunk that holds byte `size + 15`, which never straddles a cache line.
/// Any `size` gives some address (only ever prefetched).
#[inline(always)]
fn next_header_line(ptr: NonNull<u8>, size: usize) -> *const u8 {
    ptr.as_ptr().wrapping_add(size.wrapping_add(GRANULE - 1))
}

/// Whole pages a page-aligned payload can have in a free block at `b` of `size` bytes.
fn page_room(b: *mut u8, size: usize) -> usize {
    let payload = align_up(b as usize + HDR, PAGE_SIZE).unwrap_or(usize::MAX);
    let mut gap = payload.wrapping_sub(HDR + b as usize);
    if gap != 0 && gap < MIN_BLOCK {
        gap += PAGE_SIZE;
    }
    size.checked_sub(gap + HDR)
        .map_or(0, |room| room / PAGE_SIZE)
}

/// Where an `align`-aligned payload of a `need`-byte block fits in the free block `b` of
/// `size` bytes: the size of the leading free block to split off (0 or at least
/// MIN_BLOCK), or `None` if it does not fit.
#[inline(always)]
fn aligned_gap(b: *mut u8, size: usize, need: usize, align: usize) -> Option<usize> {
    let addr = b as usize;
    if align <= GRANULE {
        return (size >= need).then_some(0);
    }
    let payload = align_up(addr + HDR, align)?;
    let mut gap = payload - HDR - addr;
    if gap != 0 && gap < MIN_BLOCK {
        gap += align;
    }
    (gap.checked_add(need)? <= size).then_some(gap)
}

impl<const CHECKED: bool> Tlsf<CHECKED> {
    /// `alloc_aligned` for everything the fast path leaves: over-aligned requests, requests
    /// no list is guaranteed to fit, and every failure (counted here).
    #[inline(never)]
    fn alloc_aligned_slow(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        // MAX_BLOCK - HDR is below MAX_REQUEST on every target.
        accounted_alloc(
            self,
            |t| &mut t.acct,
            MAX_BLOCK - HDR,
            align,
            size,
            |t| {
                let block = match t.allocate(align, size) {
                    Some(block) => block,
                    None if t.flush_quick() => t.allocate(align, size)?,
                    None => return None,
                };
                // SAFETY: `block` is a freshly allocated block; word 1 holds the request size
                // and the payload starts 16 bytes in.
                unsafe {
                    set_word(block, 1, size);
                    Some(NonNull::new_unchecked(block.add(HDR)))
                }
            },
        )
    }
}

impl<const CHECKED: bool> Allocator for Tlsf<CHECKED> {
    // `alloc_aligned` and `free` are always inlined: left to itself the compiler calls them
    // from `Locked`, and the call (a second prologue and epilogue, the result passed through
    // memory) cost 10 to 15 instructions of the 60 to 150 an allocation or a free takes.
    // Measured (callgrind): 200,000 to 270,000 fewer instructions per random-actions script
    // of 20,000 operations; the x86 helloworld image grows by 16 bytes of text.
    #[inline(always)]
    fn alloc_aligned(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        // The fast path, small enough to inline into callers such as `Locked::alloc`: a
        // request of at most 16-byte alignment, within the limit, for which the
        // constant-time search finds a list. It changes nothing until it has a block, so
        // anything else falls through to the general path, which checks (and counts)
        // everything again.
        if align <= GRANULE
            && align.is_power_of_two()
            && size <= MAX_BLOCK - HDR
            && self.acct.fits(size)
        {
            let need = block_size(size);
            if let Some(q) = self.unpark(need) {
                // SAFETY: `q` is now an allocated block of `need` bytes; word 1 holds the
                // request size and the payload starts 16 bytes in.
                unsafe {
                    set_word(q, 1, size);
                    self.acct.on_alloc(size);
                    return Ok(NonNull::new_unchecked(q.add(HDR)));
                }
            }
            if let Some((fl, sl)) = self.find(need) {
                // SAFETY: `find` only returns non-empty lists; their head is a free block
                // of at least `need` bytes, which `carve` turns into an allocated block
                // whose word 1 holds the request size and whose payload starts 16 bytes in.
                unsafe {
                    let (b, bsize) = self.pop(fl, sl);
                    self.carve(b, bsize, need);
                    set_word(b, 1, size);
                    self.acct.on_alloc(size);
                    return Ok(NonNull::new_unchecked(b.add(HDR)));
                }
            }
        }
        self.alloc_aligned_slow(align, size)
    }

    unsafe fn realloc(
        &mut self,
        ptr: Option<NonNull<u8>>,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, AllocError> {
        let Some(ptr) = ptr else {
            return self.malloc(size).map(Some);
        };
        if size == 0 {
            // SAFETY: forwarded caller contract.
            unsafe { self.free(ptr)? };
            return Ok(None);
        }
        let b = self.validate(ptr)?;
        // SAFETY: `b` is the header of the live allocation at `ptr`.
        let old = unsafe { word(b, 1) };
        if size > MAX_BLOCK - HDR {
            return Err(self.acct.enomem());
        }
        self.acct.admit(old, size)?;
        let need = block_size(size);
        // SAFETY: `b` is a live allocated block holding `old` requested bytes.
        unsafe {
            let nb = match self.move_or_resize(b, ptr, need, size, old) {
                Some(nb) => nb,
                None if self.flush_quick() => match self.move_or_resize(b, ptr, need, size, old) {
                    Some(nb) => nb,
                    None => return Err(self.acct.enomem()),
                },
                None => return Err(self.acct.enomem()),
            };
            set_word(nb, 1, size);
            self.acct.on_realloc(old, size);
            Ok(Some(NonNull::new_unchecked(nb.add(HDR))))
        }
    }

    #[inline]
    unsafe fn realloc_sized(
        &mut self,
        ptr: NonNull<u8>,
        old_size: usize,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, AllocError> {
        // As in `free_sized`: the next block's header, which growing in place and freeing
        // the old block read, starts loading together with the block's own header.
        prefetch(next_header_line(ptr, old_size));
        // SAFETY: forwarded contract.
        unsafe { self.realloc(Some(ptr), size) }
    }

    unsafe fn realloc_in_place(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
    ) -> Result<bool, AllocError> {
        let b = self.validate(ptr)?;
        // SAFETY: `b` is the header of the live allocation at `ptr`.
        let old = unsafe { word(b, 1) };
        if size > MAX_BLOCK - HDR {
            return Err(self.acct.enomem());
        }
        self.acct.admit(old, size)?;
        // SAFETY: as above.
        unsafe {
            if !self.resize_in_place(b, block_size(size)) {
                return Ok(false);
            }
            set_word(b, 1, size);
        }
        self.acct.on_realloc(old, size);
        Ok(true)
    }

    #[inline(always)]
    unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), AllocError> {
        let b = self.validate(ptr)?;
        // SAFETY: `b` is the header of a live allocation.
        unsafe {
            let size = word(b, 1);
            self.park_or_release(b);
            self.acct.on_free(size);
        }
        Ok(())
    }

    #[inline]
    unsafe fn free_sized(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), AllocError> {
        // A block of `size` requested bytes usually ends exactly at `block_size(size)`: start
        // loading the next block's header, which merging reads, while the block's own header
        // (which says where the next one really is) is still on its way, so that the two
        // cache misses overlap instead of following each other. Blocks small enough to be
        // parked need no neighbour. Only a prefetch: a wrong size costs nothing but time.
        if size >= QUICK_LIMIT - HDR {
            prefetch(next_header_line(ptr, size));
        }
        // SAFETY: forwarded contract.
        unsafe { self.free(ptr) }
    }

    unsafe fn allocation_size(&self, ptr: NonNull<u8>) -> Result<usize, AllocError> {
        let b = self.validate(ptr)?;
        // SAFETY: `b` is the header of a live allocation; word 1 is its requested size.
        Ok(unsafe { word(b, 1) })
    }

    fn palloc(&mut self, pages: usize) -> Result<NonNull<u8>, AllocError> {
        match pages.checked_mul(PAGE_SIZE) {
            Some(bytes) if pages > 0 => self.alloc_aligned(PAGE_SIZE, bytes),
            _ => Err(self.acct.enomem()),
        }
    }

    unsafe fn pfree(&mut self, ptr: NonNull<u8>, pages: usize) -> Result<(), AllocError> {
        let b = self.validate(ptr)?;
        // SAFETY: `b` is the header of a live allocation.
        let size = unsafe { word(b, 1) };
        if ptr.as_ptr() as usize % PAGE_SIZE != 0 || pages.checked_mul(PAGE_SIZE) != Some(size) {
            return Err(AllocError::BadFree);
        }
        // SAFETY: as above.
        unsafe { self.release(b) };
        self.acct.on_free(size);
        Ok(())
    }

    /// Frees the whole run (as `pfree`) or its tail: the block shrinks in place and the
    /// tail goes back to the free lists, merged with a free successor, as a shrinking
    /// `realloc` does. A part that leaves pages after it is [`AllocError::Unsupported`]
    /// (the pages after it would need a header inside the run, where the caller's data is),
    /// and the run stays live whole. The run is validated as `pfree` validates it, before
    /// anything else; see [`Allocator::pfree_part`].
    unsafe fn pfree_part(
        &mut self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> Result<(), AllocError> {
        let (head, tail) = crate::util::part_of_run(
            run.as_ptr() as usize,
            run_pages,
            part.as_ptr() as usize,
            part_pages,
        )?;
        let b = self.validate(run)?;
        // SAFETY: `b` is the header of a live allocation.
        let size = unsafe { word(b, 1) };
        if run_pages.checked_mul(PAGE_SIZE) != Some(size) {
            return Err(AllocError::BadFree);
        }
        if tail != 0 {
            return Err(AllocError::Unsupported);
        }
        let bytes = part_pages * PAGE_SIZE;
        if head == 0 {
            // SAFETY: as above.
            unsafe { self.release(b) };
            self.acct.on_free(bytes);
            return Ok(());
        }
        let keep = head * PAGE_SIZE;
        // SAFETY: `b` is a live allocated block holding `size` requested bytes; it keeps
        // the first `keep` of them, and the tail it gives up is at least a page, so
        // `shrink` always splits it off.
        unsafe {
            self.shrink(b, size_of_block(b), block_size(keep));
            set_word(b, 1, keep);
        }
        self.acct.on_free_part(bytes, 1);
        Ok(())
    }

    unsafe fn add_memory(&mut self, base: *mut u8, len: usize) -> Result<(), AllocError> {
        self.add_region(base, len)
    }

    fn available(&self) -> usize {
        self.free_bytes
    }

    fn max_alloc(&self) -> usize {
        // The largest block once the quick lists are merged back (what an allocation that
        // does not fit otherwise gets, see `flush_quick`).
        let mut largest = 0;
        self.quick_runs(|_, size| largest = largest.max(size));
        if self.fl_bitmap != 0 {
            let fl = 63 - self.fl_bitmap.leading_zeros() as usize;
            let sl = 31 - self.sl_bitmap[fl].leading_zeros() as usize;
            let mut b = self.heads[fl][sl];
            while !b.is_null() {
                // SAFETY: `b` is a free block on list (fl, sl).
                unsafe {
                    largest = largest.max(size_of_block(b));
                    b = link(b, 1);
                }
            }
        }
        if largest == 0 {
            return 0;
        }
        (largest - HDR).min(self.acct.headroom()).min(MAX_REQUEST)
    }

    fn max_pages(&self) -> usize {
        // The runs the quick lists would merge into, then the classes from the largest
        // down, stopping once no block of a class could beat the best found: page
        // alignment makes the answer depend on addresses.
        let mut best = 0;
        self.quick_runs(|b, size| best = best.max(page_room(b, size)));
        let mut fl_bits = self.fl_bitmap;
        while fl_bits != 0 {
            let fl = 63 - fl_bits.leading_zeros() as usize;
            fl_bits &= !(1 << fl);
            let mut sl_bits = self.sl_bitmap[fl];
            while sl_bits != 0 {
                let sl = 31 - sl_bits.leading_zeros() as usize;
                sl_bits &= !(1 << sl);
                if class_max(fl, sl).saturating_sub(HDR) / PAGE_SIZE <= best {
                    return best.min(self.acct.headroom() / PAGE_SIZE);
                }
                let mut b = self.heads[fl][sl];
                while !b.is_null() {
                    // SAFETY: `b` is a free block on list (fl, sl).
                    unsafe {
                        best = best.max(page_room(b, size_of_block(b)));
                        b = link(b, 1);
                    }
                }
            }
        }
        best.min(self.acct.headroom() / PAGE_SIZE)
    }

    fn stats(&self) -> Stats {
        self.acct.stats()
    }

    fn limit(&self) -> Option<usize> {
        self.acct.limit()
    }

    fn set_limit(&mut self, limit: Option<usize>) {
        self.acct.set_limit(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    fn heap(bytes: usize, checked: bool) -> (Box<dyn Allocator>, Vec<u128>) {
        let mut arena: Vec<u128> = vec![0; bytes / 16];
        let mut t: Box<dyn Allocator> = if checked {
            Box::new(Tlsf::new_checked())
        } else {
            Box::new(Tlsf::new())
        };
        // SAFETY: the arena is returned alongside and outlives every use in the test.
        unsafe { t.add_memory(arena.as_mut_ptr().cast(), bytes).unwrap() };
        (t, arena)
    }

    #[test]
    fn mapping_is_monotonic_and_search_fits() {
        let mut last = (0, 0);
        for size in (MIN_BLOCK..1 << 20).step_by(16) {
            let m = mapping(size);
            assert!(m >= last, "{size}");
            last = m;
            let (fl, sl) = mapping_search(size);
            // Every block in the search class is at least `size`.
            let class_min = if fl == 0 {
                sl * GRANULE
            } else {
                class_max(fl, sl) + GRANULE - (1 << (fl as u32 + SMALL_LOG - 1 - SL_LOG))
            };
            assert!(class_min >= size, "{size}: {fl},{sl} min {class_min}");
            assert!(class_max(m.0, m.1) >= size);
        }
    }

    #[test]
    fn the_size_hint_prefetches_the_next_headers_cache_line() {
        for base in [0x1000usize, 0x1010, 0x1020, 0x1030] {
            let ptr = NonNull::new(ptr::without_provenance_mut::<u8>(base)).unwrap();
            for size in HDR..5000 {
                let next = base - HDR + block_size(size);
                let hint = next_header_line(ptr, size) as usize;
                assert_eq!(hint / 64, next / 64, "payload {base:#x}, {size} bytes");
            }
        }
    }

    #[test]
    fn alloc_free_merges_back() {
        let (mut t, _a) = heap(1 << 16, false);
        let total = t.available();
        assert_eq!(total, (1 << 16) - HDR);
        let ps: Vec<_> = (1..50).map(|i| t.malloc(i * 7).unwrap()).collect();
        for p in ps.iter().rev().step_by(2) {
            // SAFETY: live pointers from `t`.
            unsafe { t.free(*p).unwrap() };
        }
        for p in ps.iter().rev().skip(1).step_by(2) {
            // SAFETY: live pointers from `t`.
            unsafe { t.free(*p).unwrap() };
        }
        assert_eq!(t.available(), total);
        assert_eq!(t.max_alloc(), total - HDR);
        let p = t.malloc(t.max_alloc()).unwrap();
        assert_eq!(t.malloc(0), Err(AllocError::NoMem));
        // SAFETY: live pointer from `t`.
        unsafe { t.free(p).unwrap() };
    }

    #[test]
    fn aligned_allocations() {
        let (mut t, _a) = heap(1 << 20, true);
        for shift in 4..16 {
            let p = t.alloc_aligned(1 << shift, 100).unwrap();
            assert_eq!(p.as_ptr() as usize % (1 << shift), 0);
        }
        assert!(t.max_pages() > 0);
        let n = t.max_pages();
        assert_eq!(t.palloc(n + 1), Err(AllocError::NoMem));
        let p = t.palloc(n).unwrap();
        // SAFETY: live allocation of `n` pages.
        unsafe { t.pfree(p, n).unwrap() };
    }

    #[test]
    fn realloc_slides_back_into_a_free_predecessor() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 14, checked);
            let a = t.malloc(4000).unwrap();
            let b = t.malloc(2000).unwrap();
            // Fill the rest so no free block can take a grown `b`.
            let rest = t.malloc(t.max_alloc()).unwrap();
            // SAFETY: live pointers of `t`.
            unsafe {
                b.as_ptr().write_bytes(0x3C, 2000);
                t.free(a).unwrap();
                assert!(t.max_alloc() < 5000);
                let moved = t.realloc(Some(b), 5000).unwrap().unwrap();
                assert_eq!(moved, a, "slid back to where `a` was");
                let kept = std::slice::from_raw_parts(moved.as_ptr(), 2000);
                assert!(kept.iter().all(|&x| x == 0x3C));
                t.free(moved).unwrap();
                t.free(rest).unwrap();
            }
            assert_eq!(
                t.available(),
                (1 << 14)
                    - HDR
                    - if checked {
                        size_of::<RegionMeta>() + LazyBitmap::bytes_for(1024)
                    } else {
                        0
                    }
            );
        }
    }

    /// Fills `n` bytes at `p` with a pattern derived from `seed`.
    fn fill(p: NonNull<u8>, n: usize, seed: u8) {
        // SAFETY: callers pass a live allocation of at least `n` bytes.
        let s = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), n) };
        for (i, x) in s.iter_mut().enumerate() {
            *x = seed ^ (i as u8).wrapping_mul(31);
        }
    }

    /// Whether the first `n` bytes at `p` still hold `fill(p, n, seed)`'s pattern.
    fn kept(p: NonNull<u8>, n: usize, seed: u8) -> bool {
        // SAFETY: callers pass a live allocation of at least `n` bytes.
        let s = unsafe { std::slice::from_raw_parts(p.as_ptr(), n) };
        s.iter()
            .enumerate()
            .all(|(i, &x)| x == seed ^ (i as u8).wrapping_mul(31))
    }

    #[test]
    fn realloc_grows_and_shrinks_in_place_with_exact_stats_and_limit() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 16, checked);
            let a = t.malloc(1000).unwrap();
            let b = t.malloc(3000).unwrap();
            let c = t.malloc(100).unwrap();
            // Take the rest of the heap, so that `b`'s block is the only free memory.
            let rest = t.malloc(t.max_alloc()).unwrap();
            fill(a, 1000, 0xA5);
            // SAFETY: live pointers of `t`.
            unsafe { t.free(b).unwrap() };
            // `a` is followed by `b`'s free block: growing into it does not move `a`.
            let (avail, st) = (t.available(), t.stats());
            // SAFETY: as above.
            let grown = unsafe { t.realloc(Some(a), 3000) }.unwrap().unwrap();
            assert_eq!(grown, a, "grown in place");
            assert!(kept(a, 1000, 0xA5));
            assert_eq!(avail - t.available(), block_size(3000) - block_size(1000));
            let s = t.stats();
            assert_eq!(s.cur_bytes, st.cur_bytes + 2000);
            assert_eq!(s.cur_allocs, st.cur_allocs);
            assert_eq!(s.total_allocs, st.total_allocs + 1);
            assert_eq!(s.total_frees, st.total_frees + 1);
            assert_eq!(s.last_alloc_size, 3000);
            // SAFETY: as above.
            assert_eq!(unsafe { t.allocation_size(a) }, Ok(3000));

            // The byte limit applies to growth in place too, and a refusal changes nothing.
            fill(a, 3000, 0x3C);
            t.set_limit(Some(t.stats().cur_bytes + 500));
            let before = (t.available(), t.max_alloc(), t.stats().cur_bytes);
            let enomem = t.stats().enomem;
            // SAFETY: as above.
            unsafe {
                assert_eq!(t.realloc(Some(a), 3501), Err(AllocError::NoMem));
                assert_eq!(t.realloc_in_place(a, 3501), Err(AllocError::NoMem));
            }
            assert_eq!((t.available(), t.max_alloc(), t.stats().cur_bytes), before);
            assert_eq!(t.stats().enomem, enomem + 2);
            assert!(kept(a, 3000, 0x3C));
            // SAFETY: as above.
            unsafe {
                assert_eq!(t.allocation_size(a), Ok(3000));
                // Exactly at the limit succeeds, in place.
                assert_eq!(t.realloc_in_place(a, 3500), Ok(true));
            }
            assert_eq!(t.stats().cur_bytes, before.2 + 500);
            assert!(kept(a, 3000, 0x3C));
            t.set_limit(None);

            // Shrinking splits off the tail, which merges with the free block after it.
            let st = t.stats();
            let avail = t.available();
            // SAFETY: as above.
            let shrunk = unsafe { t.realloc(Some(a), 200) }.unwrap().unwrap();
            assert_eq!(shrunk, a);
            assert!(kept(a, 200, 0x3C));
            assert_eq!(t.available() - avail, block_size(3500) - block_size(200));
            assert_eq!(t.stats().cur_bytes, st.cur_bytes - 3300);
            // The freed tail and the rest of `b`'s block are one block again, the only free
            // one: a request for all of it gets it, right after `a`.
            let room = block_size(1000) + block_size(3000) - block_size(200) - HDR;
            let d = t.malloc(room).unwrap();
            // SAFETY: as above.
            unsafe {
                assert_eq!(d.as_ptr(), a.as_ptr().add(block_size(200)));
                t.free(d).unwrap();
                t.free(c).unwrap();
                t.free(a).unwrap();
                t.free(rest).unwrap();
            }
            assert_eq!(t.stats().cur_bytes, 0);
            let whole = t.max_alloc();
            let all = t.malloc(whole).unwrap();
            // SAFETY: as above.
            unsafe { t.free(all).unwrap() };
        }
    }

    #[test]
    fn realloc_grows_in_place_into_a_parked_neighbour_and_what_follows_it() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 16, checked);
            // x | parked | free | guard | rest of the heap
            let x = t.malloc(1000).unwrap();
            let parked = t.malloc(200).unwrap();
            let freed = t.malloc(2000).unwrap();
            let guard = t.malloc(100).unwrap();
            let rest = t.malloc(t.max_alloc()).unwrap();
            fill(x, 1000, 0xC3);
            // SAFETY: live pointers of `t`; `freed` is merged into the free lists, `parked`
            // (a small block) goes to its quick list.
            unsafe {
                t.free(freed).unwrap();
                t.free(parked).unwrap();
            }
            let avail = t.available();
            // SAFETY: as above.
            let grown = unsafe { t.realloc(Some(x), 2500) }.unwrap().unwrap();
            assert_eq!(grown, x, "grown over the parked block and the free one");
            assert!(kept(x, 1000, 0xC3));
            assert_eq!(avail - t.available(), block_size(2500) - block_size(1000));
            // The parked block left its quick list: a request of its size is not handed
            // memory inside `x`.
            let again = t.malloc(200).unwrap();
            let (xa, ga) = (x.as_ptr() as usize, again.as_ptr() as usize);
            assert!(ga + 200 <= xa || ga >= xa + 2500, "no overlap");
            // SAFETY: as above.
            unsafe {
                t.free(again).unwrap();
                t.free(x).unwrap();
            }

            // SAFETY: as above.
            unsafe {
                t.free(guard).unwrap();
                t.free(rest).unwrap();
            }
            assert_eq!(t.stats().cur_allocs, 0);

            // A parked neighbour without room behind it stays parked: `y` moves and the
            // parked block is the next one handed out for its size (a fresh heap: the one
            // above has parked blocks of that size).
            let (mut t, _a) = heap(1 << 16, checked);
            let y = t.malloc(1000).unwrap();
            let p = t.malloc(200).unwrap();
            let wall = t.malloc(100).unwrap();
            // SAFETY: as above.
            unsafe { t.free(p).unwrap() };
            // SAFETY: as above.
            let moved = unsafe { t.realloc(Some(y), 2500) }.unwrap().unwrap();
            assert_ne!(moved, y);
            assert_eq!(t.malloc(200).unwrap(), p, "still parked");
            // SAFETY: as above.
            unsafe {
                t.free(p).unwrap();
                t.free(moved).unwrap();
                t.free(wall).unwrap();
            }
            assert_eq!(t.stats().cur_allocs, 0);
        }
    }

    #[test]
    fn realloc_grows_in_place_up_to_the_end_of_the_heap() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 16, checked);
            let whole = t.max_alloc();
            // A lone block is followed by the rest of the heap, up to the sentinel.
            let a = t.malloc(100).unwrap();
            fill(a, 100, 7);
            // SAFETY: live pointer of `t`.
            unsafe {
                assert_eq!(t.realloc(Some(a), whole + 1), Err(AllocError::NoMem));
                assert_eq!(t.realloc_in_place(a, whole + 1), Ok(false));
                assert_eq!(t.allocation_size(a), Ok(100));
                assert_eq!(
                    t.realloc(Some(a), whole),
                    Ok(Some(a)),
                    "in place, whole heap"
                );
            }
            assert!(kept(a, 100, 7));
            assert_eq!(t.available(), 0);
            assert_eq!(t.stats().cur_bytes, whole);
            assert_eq!(t.malloc(0), Err(AllocError::NoMem));
            // SAFETY: as above.
            unsafe {
                assert_eq!(t.realloc(Some(a), 50), Ok(Some(a)));
                assert!(kept(a, 50, 7));
                t.free(a).unwrap();
            }
            assert_eq!(t.max_alloc(), whole);
        }
    }

    #[test]
    fn free_sized_takes_the_size_as_a_hint_only() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 18, checked);
            let total = t.available();
            let ps: Vec<_> = (0..20).map(|i| t.malloc(100 + 700 * i).unwrap()).collect();
            for (i, &p) in ps.iter().enumerate() {
                // Right, wrong, zero and absurd sizes: all free the block, nothing else.
                let hint = match i % 4 {
                    0 => 100 + 700 * i,
                    1 => 3 * i + 1,
                    2 => 0,
                    _ => usize::MAX,
                };
                let st = t.stats();
                // SAFETY: live pointers of `t`, each freed once.
                unsafe { t.free_sized(p, hint).unwrap() };
                assert_eq!(t.stats().cur_bytes, st.cur_bytes - (100 + 700 * i));
                assert_eq!(t.stats().total_frees, st.total_frees + 1);
                // SAFETY: a freed pointer; both modes recognise it from its header or
                // bitmap while the memory is not reused.
                let again = unsafe { t.free_sized(p, 100 + 700 * i) };
                assert!(
                    matches!(again, Err(AllocError::DoubleFree)),
                    "{i}: {again:?}"
                );
            }
            assert_eq!(t.available(), total);
            if checked {
                let mut x = [0u128; 4];
                let foreign = NonNull::from(&mut x[1]).cast::<u8>();
                // SAFETY: checked mode validates any pointer before touching anything.
                let r = unsafe { t.free_sized(foreign, 16) };
                assert_eq!(r, Err(AllocError::BadFree));

                assert_eq!(t.available(), total);
            }
        }
    }

    #[test]
    fn unchecked_validation_holds_at_the_edges_of_the_heap() {
        const BYTES: usize = 4096;
        let mut arena: Vec<u128> = vec![0; BYTES / 16];
        let base = arena.as_mut_ptr().cast::<u8>();
        let mut t = Tlsf::new();
        // SAFETY: the arena outlives `t` and is used for nothing else.
        unsafe { t.add_memory(base, BYTES).unwrap() };
        // The sentinel takes the last 16 bytes: `hi` is its address.
        let hi = base.wrapping_add(BYTES - HDR);
        // All but the last 32 bytes before the sentinel, then a minimal block there.
        let a = t.malloc(BYTES - HDR - MIN_BLOCK - HDR).unwrap();
        let b = t.malloc(1).unwrap();
        assert_eq!(b.as_ptr(), hi.wrapping_sub(MIN_BLOCK - HDR), "last block");
        let before = (t.available(), t.stats());
        let bad = [
            base,                        // header before the heap
            hi,                          // header in the last granule, too close to `hi`
            hi.wrapping_add(HDR),        // the sentinel
            b.as_ptr().wrapping_add(8),  // misaligned
            a.as_ptr().wrapping_add(16), // inside `a`, whose payload holds zeros
        ];
        for p in bad {
            // SAFETY: each pointer is outside the heap or a readable granule of it, which
            // unchecked mode may read as a header before refusing it.
            let r = unsafe { t.free(NonNull::new(p).unwrap()) };
            assert_eq!(
                r,
                Err(AllocError::BadFree),
                "{:#x}",
                p as usize - base as usize
            );
        }
        assert_eq!((t.available(), t.stats()), before);
        // SAFETY: live pointers of `t`, each freed once.
        unsafe {
            t.free(b).unwrap();
            assert_eq!(t.free(b), Err(AllocError::DoubleFree));
            t.free(a).unwrap();
        }
        assert_eq!(t.available(), BYTES - HDR);
    }

    #[test]
    fn realloc_sized_takes_the_old_size_as_a_hint_only() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 18, checked);
            let total = t.available();
            let mut live: Vec<(NonNull<u8>, usize)> = (0..12)
                .map(|i| {
                    let n = 50 + 900 * i;
                    let p = t.malloc(n).unwrap();
                    fill(p, n, i as u8);
                    (p, n)
                })
                .collect();
            for round in 0..3 {
                for (i, (p, n)) in live.iter_mut().enumerate() {
                    // Grow, shrink, grow: in place or moved, with right, wrong, zero and
                    // absurd hints, always the same outcome as `realloc`.
                    let new = if (i + round) % 2 == 0 {
                        *n * 2 + 7
                    } else {
                        *n / 3 + 1
                    };
                    let hint = [*n, *n / 2 + 5, 0, usize::MAX][(i + round) % 4];
                    let st = t.stats();
                    // SAFETY: live pointers of `t`; the result replaces `p`.
                    let q = unsafe { t.realloc_sized(*p, hint, new) }.unwrap().unwrap();
                    let keep = (*n).min(new);
                    assert!(kept(q, keep, i as u8), "{round} {i}");
                    assert_eq!(t.stats().cur_bytes, st.cur_bytes - *n + new);
                    assert_eq!(t.stats().total_frees, st.total_frees + 1);
                    fill(q, new, i as u8);
                    (*p, *n) = (q, new);
                }
            }
            let before = (t.available(), t.stats());
            let (p, n) = live[0];
            // SAFETY: as above; a failing realloc changes nothing.
            unsafe {
                assert_eq!(t.realloc_sized(p, n, 1 << 40), Err(AllocError::NoMem));
                assert_eq!(t.allocation_size(p), Ok(n));
            }
            assert_eq!(t.available(), before.0);
            assert_eq!(t.stats().cur_bytes, before.1.cur_bytes);
            for (p, n) in live {
                // SAFETY: live pointers of `t`, freed once.
                unsafe { t.free_sized(p, n).unwrap() };
                // SAFETY: freed above; recognised in both modes.
                let again = unsafe { t.realloc_sized(p, n, 10) };
                assert!(matches!(again, Err(AllocError::DoubleFree)), "{again:?}");
            }
            assert_eq!(t.available(), total);
            assert_eq!(t.stats().cur_bytes, 0);
        }
    }

    #[test]
    fn freeing_next_to_free_blocks_keeps_the_prev_free_flags() {
        // Free a block between two free ones and next to an allocated one, in every order;
        // the allocated neighbour's flags must say whether its predecessor is free, or the
        // final merge would go wrong (checked by merging everything back).
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let (mut t, _a) = heap(1 << 15, false);
            let total = t.available();
            let ps: Vec<_> = [1500, 2500, 3500, 4500]
                .iter()
                .map(|&n| t.malloc(n).unwrap())
                .collect();
            let last = ps[3];
            fill(last, 4500, 9);
            // Take the rest, so that the freed blocks are the only free memory.
            let rest = t.malloc(t.max_alloc()).unwrap();
            for i in order {
                // SAFETY: live pointers of `t`, each freed once.
                unsafe { t.free(ps[i]).unwrap() };
            }
            // The three freed blocks are one now, the only free one: a request for all of
            // it gets it.
            let three = block_size(1500) + block_size(2500) + block_size(3500) - HDR;
            let q = t.malloc(three).unwrap();
            assert_eq!(q, ps[0]);
            assert!(kept(last, 4500, 9));
            // SAFETY: live pointers of `t`.
            unsafe {
                t.free(last).unwrap();
                t.free(q).unwrap();
                t.free(rest).unwrap();
            }
            assert_eq!(t.available(), total);
            assert_eq!(t.max_alloc(), total - HDR);
        }
    }

    #[test]
    fn quick_lists_reuse_park_refuse_double_frees_and_merge_back() {
        for checked in [false, true] {
            let (mut t, _a) = heap(1 << 16, checked);
            let total = t.available();
            let whole = t.max_alloc();
            // A freed small block is reused first, for a request of its exact block size.
            let p = t.malloc(100).unwrap();
            let guard = t.malloc(100).unwrap();
            // SAFETY: live pointers of `t`; checked or not, a parked block's second free is
            // recognised from its header.
            unsafe {
                t.free(p).unwrap();
                assert_eq!(t.free(p), Err(AllocError::DoubleFree));
                assert_eq!(t.realloc(Some(p), 10), Err(AllocError::DoubleFree));
                assert_eq!(t.allocation_size(p), Err(AllocError::DoubleFree));
            }
            assert_eq!(
                t.malloc(112).unwrap(),
                p,
                "same block size (128), same block"
            );
            // SAFETY: live pointers of `t`.
            unsafe {
                t.free(p).unwrap();
                t.free(guard).unwrap();
            }
            // Fill the heap with small blocks (more than the quick lists hold), free them
            // all: parked or merged, the whole heap is one allocation away, exactly.
            let mut ps = Vec::new();
            let mut n = 0;
            while let Ok(p) = t.malloc(16 + 16 * (n % 50)) {
                ps.push(p);
                n += 1;
            }
            assert!(ps.len() > QUICK_CAP as usize * 4);
            for p in ps
                .iter()
                .rev()
                .step_by(2)
                .chain(ps.iter().rev().skip(1).step_by(2))
            {
                // SAFETY: live pointers of `t`, each freed once.
                unsafe { t.free(*p).unwrap() };
            }
            assert_eq!(t.available(), total);
            assert_eq!(t.max_alloc(), whole);
            assert!(t.max_pages() >= (whole - PAGE_SIZE) / PAGE_SIZE);
            let pages = t.max_pages();
            let q = t.palloc(pages).unwrap();
            // SAFETY: live page run of `t`.
            unsafe { t.pfree(q, pages).unwrap() };
            let all = t.malloc(whole).unwrap();
            assert_eq!(t.malloc(0), Err(AllocError::NoMem));
            // SAFETY: live pointer of `t`.
            unsafe { t.free(all).unwrap() };
            assert_eq!(t.available(), total);
        }
    }

    #[test]
    fn checked_mode_over_garbage_memory_rejects_every_non_block_pointer() {
        // The start bitmap is never cleared: words nobody wrote must read as "no block".
        // The garbage looks like allocated 64-byte block headers everywhere (and sets bit
        // 6 of every bitmap word), so trusting an unwritten bitmap word would accept a
        // free.
        let bytes = 1 << 20;
        let garbage = 0x40u128 | 0x40 << 64;
        let mut arena: Vec<u128> = vec![garbage; bytes / 16];
        let base = arena.as_mut_ptr().cast::<u8>();
        let mut t = Tlsf::new_checked();
        // SAFETY: the arena outlives `t` and is used for nothing else.
        unsafe { t.add_memory(base, bytes).unwrap() };
        let p = t.malloc(100).unwrap();
        let q = t.malloc(5000).unwrap();
        let before = (t.available(), t.max_alloc(), t.stats());
        let mut refused = 0;
        for offset in (0..bytes).step_by(16) {
            // SAFETY: in-bounds addresses of the arena; checked mode accepts any pointer.
            let r = unsafe { NonNull::new_unchecked(base.add(offset)) };
            if r == p || r == q {
                continue;
            }
            // SAFETY: checked mode validates the pointer before touching anything.
            let err = unsafe { t.free(r) }.unwrap_err();
            assert!(matches!(err, AllocError::BadFree | AllocError::DoubleFree));
            refused += 1;
        }
        assert_eq!(refused, bytes / 16 - 2);
        assert_eq!((t.available(), t.max_alloc(), t.stats()), before);
        // SAFETY: live pointers of `t`.
        unsafe {
            t.free(p).unwrap();
            t.free(q).unwrap();
        }
    }

    #[test]
    fn checked_mode_rejects_bad_pointers() {
        let (mut t, _a) = heap(1 << 16, true);
        let p = t.malloc(64).unwrap();
        let q = t.malloc(64).unwrap();
        // SAFETY: checked mode accepts any pointer value.
        unsafe {
            let inner = NonNull::new_unchecked(p.as_ptr().add(16));
            assert_eq!(t.free(inner), Err(AllocError::BadFree));
            let mut x = 0u128;
            assert_eq!(
                t.free(NonNull::from(&mut x).cast()),
                Err(AllocError::BadFree)
            );
            t.free(p).unwrap();
            assert_eq!(t.free(p), Err(AllocError::DoubleFree));
            t.free(q).unwrap();
            assert_eq!(t.free(q), Err(AllocError::DoubleFree));
            assert_eq!(t.realloc(Some(q), 10), Err(AllocError::DoubleFree));
        }
    }
}
