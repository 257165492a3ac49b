//! A binary buddy allocator over 4 KiB pages, for page-granular memory.
//!
//! Memory is cut into naturally aligned blocks of `2^order` pages (a block of order `k`
//! starts at an address that is a multiple of `2^k` pages). A free block sits on the list of
//! its order; allocating splits a larger block in halves until the order fits, freeing merges
//! a block with its *buddy* (the other half of the block they were split from) for as long
//! as the buddy is free.
//!
//! # What differs from Unikraft 0.11's `bbuddy`
//!
//! - **Any size up to the largest free block.** A request of `n` pages takes a block of order
//!   `⌈log2 n⌉` and gives the unused tail back at once, as aligned blocks, so requests are not
//!   rounded to a power of two: 1 GiB plus a header fits in a 4 GiB machine (0.11 needed a
//!   free 2 GiB block and failed).
//! - **Metadata counted once.** Each region's descriptor and bitmap are carved from the
//!   region's first pages before any page is put on a free list;
//!   [`Allocator::available`] is exactly the managed pages (0.11 subtracted the metadata a
//!   second time).
//! - **Constant-time start.** Adding a region writes its descriptor and one header per
//!   initial block (at most two per order), and nothing else. The per-page bitmap ("page
//!   starts a free block") is never cleared: a bit is only ever read for a page that is the
//!   buddy of a block being freed, and every such page had its bit written when its parent
//!   block was split. Unikraft 0.11 walked every page and took 2.42 ms for 1 GiB.
//!
//! # Byte interface
//!
//! `malloc` and friends allocate whole pages with a 16-byte header (block address and
//! alignment, requested size) in front of the returned pointer, as Unikraft's
//! `uk_malloc_ifpages` does. `realloc` stays in place while the page count is unchanged and
//! moves otherwise.
//!
//! # Checked mode
//!
//! [`Buddy::new_checked`] keeps two more bitmaps per region, marking the first and the last
//! page of every live allocation, and clears all bitmaps when a region is added (this costs
//! the constant-time start). `free`, `realloc` and `pfree` then accept any pointer value and
//! any page count: anything that is not exactly a live allocation is reported as
//! [`AllocError::BadFree`] or [`AllocError::DoubleFree`] and nothing is touched. Without it,
//! only the checks the headers allow are made (the pointer lies in a region, the header is
//! consistent, the block is not already free), which catch a repeated free of the same
//! pointer while its memory is unused but not every misuse.
//!
//! # Freeing part of a run
//!
//! [`Allocator::pfree_part`] frees any page-aligned part of a live run: the run's blocks
//! that lie in the part are freed (and merge with free buddies), a block that straddles an
//! end of the part is split in halves until each half lies in it or outside it, and the
//! pages before and after the part remain live runs of their own. A run is always the
//! largest aligned blocks that fit from its start (the pieces a request is cut into are
//! exactly those), so a remaining piece is freed later like any run, and once every piece
//! is freed everything has merged back. Each split marks the upper half's first page as not
//! free, as the pieces of a new run are marked, so the per-page bitmap still needs no
//! clearing.

use core::ptr::{self, NonNull};

use crate::stats::{Accounting, accounted_alloc};
use crate::util::{RawBitmap, align_down, align_up, msb};
use crate::{AllocError, Allocator, MAX_REQUEST, MIN_ALIGN, PAGE_SIZE, Stats};

const PAGE_SHIFT: u32 = PAGE_SIZE.trailing_zeros();
/// Orders `0..ORDERS`: the largest block covers half the address space.
const ORDERS: usize = (usize::BITS - PAGE_SHIFT) as usize;
/// Header in front of every byte-interface allocation.
const HDR: usize = 16;
/// Offset of a free block's header in its first page: after the 16 bytes where a freed
/// byte allocation's scribbled header may sit, so a second `free` still recognises it.
const FB_OFF: usize = 16;

/// Pages of a byte allocation whose payload starts `off` bytes into its block and holds
/// `size` bytes (at least one byte, so a zero-sized allocation's pointer stays inside it).
/// `off + size` must not overflow: `off <= 2^62` and `size <= MAX_REQUEST`.
fn pages_for(off: usize, size: usize) -> usize {
    (off + size.max(1)).div_ceil(PAGE_SIZE)
}

/// The naturally aligned blocks the run of `n >= 1` pages at page-aligned `addr` is made of,
/// as (address, order), in address order: at each step the largest block that starts there
/// (aligned to its size) and fits in what is left of the run.
///
/// For a run `alloc_pages` made (its start is aligned to `n`'s next power of two) these are
/// the binary digits of `n`, high to low, exactly the pieces it cut; for the pieces
/// `free_part_at` leaves of a run they are exactly the halves it kept (see there). So every
/// live run is these blocks, each allocated, with its first page marked "not a free block".
fn run_blocks(addr: usize, n: usize) -> impl Iterator<Item = (usize, usize)> {
    let end = addr + (n << PAGE_SHIFT);
    let mut at = addr;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let align = (at >> PAGE_SHIFT).trailing_zeros();
        let fit = msb((end - at) >> PAGE_SHIFT);
        let order = align.min(fit).min(ORDERS as u32 - 1) as usize;
        let block = at;
        at += PAGE_SIZE << order;
        Some((block, order))
    })
}

/// Header of a free block, at [`FB_OFF`] in its first page.
#[repr(C)]
struct FreeBlock {
    next: *mut FreeBlock,
    prev: *mut FreeBlock,
    order: usize,
    region: *mut RegionMeta,
}

/// Descriptor of a region, in the region's first page.
#[repr(C)]
struct RegionMeta {
    next: *mut RegionMeta,
    /// First managed page.
    base: *mut u8,
    /// Number of managed pages.
    pages: usize,
    /// Bit per page: the page starts a free block.
    free_heads: RawBitmap,
    /// Checked mode: bit per page, the page is the first of a live allocation.
    alloc_heads: RawBitmap,
    /// Checked mode: bit per page, the page is the last of a live allocation.
    alloc_lasts: RawBitmap,
}

impl RegionMeta {
    fn contains(&self, addr: usize, len: usize) -> bool {
        let base = self.base as usize;
        addr >= base
            && addr - base <= self.pages << PAGE_SHIFT
            && len <= (self.pages << PAGE_SHIFT) - (addr - base)
    }

    fn page(&self, addr: usize) -> usize {
        (addr - self.base as usize) >> PAGE_SHIFT
    }

    /// A pointer to `addr` derived from the region's own pointer.
    fn ptr(&self, addr: usize) -> *mut u8 {
        self.base.wrapping_add(addr - self.base as usize)
    }
}

/// The buddy allocator. See the [module documentation](self).
///
/// ```
/// use uk_alloc::{Allocator, Buddy, PAGE_SIZE};
///
/// let mut arena = vec![0u8; 64 * PAGE_SIZE];
/// let mut pages = Buddy::new();
/// // SAFETY: the arena outlives the allocator and is used for nothing else.
/// unsafe { pages.add_memory(arena.as_mut_ptr(), arena.len()).unwrap() };
/// let p = pages.palloc(5).unwrap();
/// assert_eq!(p.as_ptr() as usize % PAGE_SIZE, 0);
/// // SAFETY: `p` is a live 5-page allocation from `pages`.
/// unsafe { pages.pfree(p, 5).unwrap() };
/// ```
pub struct Buddy {
    heads: [*mut FreeBlock; ORDERS],
    /// Bit `k`: list `k` is non-empty.
    nonempty: u64,
    regions: *mut RegionMeta,
    free_pages: usize,
    checked: bool,
    acct: Accounting,
}

// SAFETY: a `Buddy` exclusively owns the memory its raw pointers point into (the regions
// given to `add_memory`); nothing in it is tied to the thread that created it.
unsafe impl Send for Buddy {}

impl Default for Buddy {
    fn default() -> Self {
        Self::new()
    }
}

impl Buddy {
    /// An empty allocator without memory. Usable in a `static`.
    pub const fn new() -> Self {
        Buddy {
            heads: [ptr::null_mut(); ORDERS],
            nonempty: 0,
            regions: ptr::null_mut(),
            free_pages: 0,
            checked: false,
            acct: Accounting::new(),
        }
    }

    /// An empty allocator in checked mode (see the [module documentation](self)): every
    /// pointer and page count passed to `free`, `realloc` or `pfree` is validated, so the
    /// safety precondition on those methods is lifted.
    pub const fn new_checked() -> Self {
        let mut b = Self::new();
        b.checked = true;
        b
    }

    /// Whether this allocator validates pointers fully.
    pub const fn is_checked(&self) -> bool {
        self.checked
    }

    /// Takes the region that holds `addr` out of the allocator when none of its pages is
    /// in use, and gives back the memory it managed: the page-aligned part of what
    /// [`Allocator::add_memory`] was given, its metadata pages included, as (start,
    /// length). The caller owns that memory again. `None`, with nothing changed, when some
    /// page of the region is allocated or `addr` lies in no region.
    ///
    /// A region whose pages are all free has merged back into the blocks it was cut into
    /// when it was added (merging stops only at an allocated buddy or the region's edge), so
    /// the check looks at those few blocks, at most two per order: O(log n). The image's
    /// page pool uses it to hand an emptied chunk back to the heap.
    pub fn remove_free_region(&mut self, addr: *const u8) -> Option<(NonNull<u8>, usize)> {
        let addr = addr as usize;
        let mut r = self.regions;
        while !r.is_null() {
            // SAFETY: the region list holds descriptors written by `add_region`, each at the
            // start of its region's memory (its metadata pages come before `base`).
            let (end, next) =
                unsafe { ((*r).base as usize + ((*r).pages << PAGE_SHIFT), (*r).next) };
            if r as usize <= addr && addr < end {
                break;
            }
            r = next;
        }
        if r.is_null() {
            return None;
        }
        // SAFETY: `r` is a live descriptor of the region list; a page whose free-head bit is
        // set starts a free block with a valid header (see `free_block`); the descriptor's
        // address, where the returned memory starts, is not null.
        unsafe {
            let (first, pages) = ((*r).base as usize, (*r).pages);
            let whole = run_blocks(first, pages).all(|(block, order)| {
                (*r).free_heads.get((*r).page(block))
                    && (*(*r).ptr(block + FB_OFF).cast::<FreeBlock>()).order == order
            });
            if !whole {
                return None;
            }
            for (block, order) in run_blocks(first, pages) {
                self.unlink(r, (*r).ptr(block + FB_OFF).cast::<FreeBlock>(), order);
            }
            // Out of the region list.
            if self.regions == r {
                self.regions = (*r).next;
            } else {
                let mut prev = self.regions;
                while (*prev).next != r {
                    prev = (*prev).next;
                }
                (*prev).next = (*r).next;
            }
            let start = r.cast::<u8>();
            let len = first + (pages << PAGE_SHIFT) - start as usize;
            Some((NonNull::new_unchecked(start), len))
        }
    }

    fn region_of(&self, addr: usize, len: usize) -> Option<*mut RegionMeta> {
        let mut r = self.regions;
        while !r.is_null() {
            // SAFETY: the region list holds descriptors written by `add_memory`.
            unsafe {
                if (*r).contains(addr, len) {
                    return Some(r);
                }
                r = (*r).next;
            }
        }
        None
    }

    /// Puts the block at `b` of `order` on its free list.
    ///
    /// # Safety
    ///
    /// `b..b + 2^order pages` must be an unused block of region `r`.
    #[inline]
    unsafe fn push(&mut self, r: *mut RegionMeta, b: *mut u8, order: usize) {
        let head = self.heads[order];
        let fb = b.wrapping_add(FB_OFF).cast::<FreeBlock>();
        // SAFETY: the caller guarantees `b` is a page of region `r` that we own; `head`, if
        // non-null, is a free block header.
        unsafe {
            fb.write(FreeBlock {
                next: head,
                prev: ptr::null_mut(),
                order,
                region: r,
            });
            if !head.is_null() {
                (*head).prev = fb;
            }
            (*r).free_heads.set((*r).page(b as usize), true);
        }
        self.heads[order] = fb;
        self.nonempty |= 1 << order;
        self.free_pages += 1 << order;
    }

    /// Takes the free block `b` of `order` off its list.
    ///
    /// # Safety
    ///
    /// `b` must be a free block of `order` in region `r`.
    #[inline]
    unsafe fn unlink(&mut self, r: *mut RegionMeta, b: *mut FreeBlock, order: usize) {
        // SAFETY: the caller guarantees `b` is on list `order`; its neighbours are too.
        unsafe {
            let (next, prev) = ((*b).next, (*b).prev);
            if prev.is_null() {
                self.heads[order] = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*r).free_heads.set((*r).page(b as usize - FB_OFF), false);
        }
        if self.heads[order].is_null() {
            self.nonempty &= !(1 << order);
        }
        self.free_pages -= 1 << order;
    }

    /// Allocates `n >= 1` pages starting at a multiple of `2^min_order` pages.
    fn alloc_pages(&mut self, n: usize, min_order: u32) -> Option<(*mut RegionMeta, *mut u8)> {
        let want = n
            .checked_next_power_of_two()?
            .trailing_zeros()
            .max(min_order) as usize;
        if want >= ORDERS || n > 1 << want {
            return None;
        }
        let candidates = self.nonempty & (u64::MAX << want);
        if candidates == 0 {
            return None;
        }
        let mut order = candidates.trailing_zeros() as usize;
        let fb = self.heads[order];
        // SAFETY: list `order` is non-empty, so `fb` is a free block whose header names its
        // region; every block pushed below is a part of it, unused.
        unsafe {
            let r = (*fb).region;
            self.unlink(r, fb, order);
            let b = fb.cast::<u8>().sub(FB_OFF);
            while order > want {
                order -= 1;
                self.push(r, b.add(PAGE_SIZE << order), order);
            }
            if n < 1 << want {
                // The allocation is the first `n` pages; its pieces are the binary digits of
                // `n`, high to low. Mark their first pages "not a free block" (their
                // buddies may be read later) and give the tail back as aligned blocks.
                let mut off = 0usize;
                for j in (0..want).rev() {
                    if n & (1 << j) != 0 {
                        if off != 0 {
                            (*r).free_heads.set((*r).page(b as usize) + off, false);
                        }
                        off += 1 << j;
                    }
                }
                let mut q = n;
                while q < 1 << want {
                    let j = q.trailing_zeros() as usize;
                    self.push(r, b.add(q << PAGE_SHIFT), j);
                    q += 1 << j;
                }
            }
            if self.checked {
                let first = (*r).page(b as usize);
                (*r).alloc_heads.set(first, true);
                (*r).alloc_lasts.set(first + n - 1, true);
            }
            Some((r, b))
        }
    }

    /// Returns the `n` pages at `b` (a live allocation of region `r`) to the free lists.
    ///
    /// # Safety
    ///
    /// `b, n` must be exactly a live allocation of region `r`: made by `alloc_pages`, or a
    /// piece `free_part_at` left.
    unsafe fn free_pages_at(&mut self, r: *mut RegionMeta, b: *mut u8, n: usize) {
        // SAFETY: the caller guarantees the allocation; its blocks are those `run_blocks`
        // names (see there), each an allocated block of the region.
        unsafe {
            if self.checked {
                let first = (*r).page(b as usize);
                (*r).alloc_heads.set(first, false);
                (*r).alloc_lasts.set(first + n - 1, false);
            }
            for (addr, order) in run_blocks(b as usize, n) {
                self.free_block(r, (*r).ptr(addr), order);
            }
        }
    }

    /// Frees the `part` pages at `at` of the live allocation of `n` pages at `b` in region
    /// `r`, leaving the pages before and after the part as allocations of their own (the
    /// checked-mode marks are the caller's).
    ///
    /// Each block of the run that lies wholly in the part is freed; one that straddles an
    /// end of the part is split in halves until every half lies in the part (freed) or
    /// outside it (kept allocated). Each split marks the upper half's first page "not a
    /// free block", as `alloc_pages` marks the pieces of a run, so every block that may
    /// later be freed (and every block whose buddy it is) has its bit written. The halves
    /// kept before the part are then the blocks `run_blocks` names for the head piece, and
    /// those kept after it the blocks it names for the tail piece.
    ///
    /// # Safety
    ///
    /// As for `free_pages_at`, and `at..at + part` pages must lie inside the allocation.
    unsafe fn free_part_at(
        &mut self,
        r: *mut RegionMeta,
        b: *mut u8,
        n: usize,
        at: *mut u8,
        part: usize,
    ) {
        let (lo, hi) = (at as usize, at as usize + (part << PAGE_SHIFT));
        for (addr, order) in run_blocks(b as usize, n) {
            // SAFETY: every block of the run is an allocated block of region `r`.
            unsafe { self.free_in_block(r, addr, order, lo, hi) };
        }
    }

    /// Frees the pages of the allocated block at `addr` of `order` (region `r`) that lie in
    /// `lo..hi` (page-aligned), splitting the block as often as that needs (see
    /// `free_part_at`). At most `ORDERS` levels deep.
    ///
    /// # Safety
    ///
    /// `addr` must be an allocated block of `order` in region `r` whose first page is
    /// marked "not a free block".
    unsafe fn free_in_block(
        &mut self,
        r: *mut RegionMeta,
        addr: usize,
        order: usize,
        lo: usize,
        hi: usize,
    ) {
        let end = addr + (PAGE_SIZE << order);
        if end <= lo || hi <= addr {
            return;
        }
        // SAFETY: the caller guarantees the block; its halves are blocks of the same region,
        // allocated, with their first pages marked (the lower one's is the block's).
        unsafe {
            // A one-page block is in or out of a page-aligned range: this never splits
            // order 0.
            if (lo <= addr && end <= hi) || order == 0 {
                self.free_block(r, (*r).ptr(addr), order);
                return;
            }
            let half = order - 1;
            let mid = addr + (PAGE_SIZE << half);
            (*r).free_heads.set((*r).page(mid), false);
            self.free_in_block(r, addr, half, lo, hi);
            self.free_in_block(r, mid, half, lo, hi);
        }
    }

    /// Frees the block at `b` of `order`, merging it with its buddy while possible.
    ///
    /// # Safety
    ///
    /// `b` must be an allocated block of `order` in region `r`.
    unsafe fn free_block(&mut self, r: *mut RegionMeta, b: *mut u8, order: usize) {
        let mut addr = b as usize;
        let mut order = order;
        // SAFETY: `r` is a live descriptor. A buddy inside the region whose free-head bit is
        // set is a free block with a valid header (the bit of every page that can be a
        // buddy was written when its parent was split; see the module docs).
        unsafe {
            while order + 1 < ORDERS {
                let size = PAGE_SIZE << order;
                let buddy = addr ^ size;
                if !(*r).contains(buddy, size) || !(*r).free_heads.get((*r).page(buddy)) {
                    break;
                }
                let bb = (*r).ptr(buddy + FB_OFF).cast::<FreeBlock>();
                if (*bb).order != order {
                    break;
                }
                self.unlink(r, bb, order);
                addr &= !size;
                order += 1;
            }
            self.push(r, (*r).ptr(addr), order);
        }
    }

    /// Checks that `first..first + n` pages of region `r` are exactly one live allocation
    /// (checked mode only).
    fn check_allocation(
        &self,
        r: *mut RegionMeta,
        addr: usize,
        n: usize,
    ) -> Result<(), AllocError> {
        // SAFETY: `r` is a live descriptor containing `addr..addr + n` pages, so every bit
        // index below is within its bitmaps.
        unsafe {
            let first = (*r).page(addr);
            let last = first + n - 1;
            if !(*r).alloc_heads.get(first) {
                return Err(if (*r).free_heads.get(first) {
                    AllocError::DoubleFree
                } else {
                    AllocError::BadFree
                });
            }
            if !(*r).alloc_lasts.get(last)
                || (*r).alloc_lasts.any(first, last)
                || (*r).alloc_heads.any(first + 1, last + 1)
            {
                return Err(AllocError::BadFree);
            }
        }
        Ok(())
    }

    /// Validates a byte-interface pointer; returns its region, block, payload offset,
    /// requested size and page count.
    fn validate(
        &self,
        ptr: NonNull<u8>,
    ) -> Result<(*mut RegionMeta, *mut u8, usize, usize), AllocError> {
        let p = ptr.as_ptr() as usize;
        if p % MIN_ALIGN != 0 || p < HDR {
            return Err(AllocError::BadFree);
        }
        let r = self.region_of(p - HDR, HDR).ok_or(AllocError::BadFree)?;
        // SAFETY: `p - HDR..p` lies in region `r`, memory we own and can read.
        let (w0, size) = unsafe {
            let h = (*r).ptr(p - HDR).cast::<usize>();
            (*h, *h.add(1))
        };
        let block = w0 & !(PAGE_SIZE - 1);
        let shift = (w0 & (PAGE_SIZE - 1)) as u32;
        if shift == 0 && block == align_down(p - HDR, PAGE_SIZE) {
            // The header `free` scribbles.
            return Err(AllocError::DoubleFree);
        }
        if !(4..usize::BITS - 1).contains(&shift) || size > MAX_REQUEST {
            return Err(AllocError::BadFree);
        }
        let off = 1usize << shift;
        let pages = pages_for(off, size);
        // SAFETY: `r` is a live descriptor.
        let inside = unsafe { (*r).contains(block, pages << PAGE_SHIFT) };
        if block.checked_add(off) != Some(p) || !inside {
            return Err(AllocError::BadFree);
        }
        if self.checked {
            self.check_allocation(r, block, pages)?;
        } else {
            // SAFETY: `block` is a page of region `r`.
            if unsafe { (*r).free_heads.get((*r).page(block)) } {
                return Err(AllocError::DoubleFree);
            }
        }
        // SAFETY: as above.
        Ok((r, unsafe { (*r).ptr(block) }, off, size))
    }

    fn add_region(&mut self, base: *mut u8, len: usize) -> Result<(), AllocError> {
        let start = align_up(base as usize, PAGE_SIZE).ok_or(AllocError::Inval)?;
        let end = align_down(
            (base as usize).checked_add(len).ok_or(AllocError::Inval)?,
            PAGE_SIZE,
        );
        if end <= start {
            return Err(AllocError::Inval);
        }
        let total = (end - start) >> PAGE_SHIFT;
        let maps = if self.checked { 3 } else { 1 };
        let map_bytes = RawBitmap::bytes_for(total);
        let meta_pages = (size_of::<RegionMeta>() + maps * map_bytes).div_ceil(PAGE_SIZE);
        if meta_pages >= total {
            return Err(AllocError::Inval);
        }
        let pages = total - meta_pages;
        let m = base.wrapping_add(start - base as usize);
        let first = m.wrapping_add(meta_pages << PAGE_SHIFT);
        // SAFETY: the caller of `add_memory` gave us `base..base + len`; the descriptor and
        // bitmaps fill the first `meta_pages` pages of it and the blocks the rest.
        unsafe {
            let maps_at = m.add(size_of::<RegionMeta>()).cast::<u64>();
            let free_heads = RawBitmap::new(maps_at);
            let alloc_heads = RawBitmap::new(maps_at.wrapping_byte_add(map_bytes));
            let alloc_lasts = RawBitmap::new(maps_at.wrapping_byte_add(2 * map_bytes));
            if self.checked {
                free_heads.clear_all(pages);
                alloc_heads.clear_all(pages);
                alloc_lasts.clear_all(pages);
            }
            let r = m.cast::<RegionMeta>();
            r.write(RegionMeta {
                next: self.regions,
                base: first,
                pages,
                free_heads,
                alloc_heads,
                alloc_lasts,
            });
            self.regions = r;
            // Cut the region into maximal naturally aligned blocks.
            let mut addr = first as usize;
            let end = addr + (pages << PAGE_SHIFT);
            while addr < end {
                let align = (addr >> PAGE_SHIFT).trailing_zeros();
                let fit = msb((end - addr) >> PAGE_SHIFT);
                let order = align.min(fit).min(ORDERS as u32 - 1) as usize;
                self.push(r, (*r).ptr(addr), order);
                addr += PAGE_SIZE << order;
            }
        }
        Ok(())
    }

    /// Allocates `size <= MAX_REQUEST` bytes at an `align`-aligned pointer with its header,
    /// without touching the statistics.
    fn alloc_bytes(&mut self, align: usize, size: usize) -> Option<NonNull<u8>> {
        let off = align.max(HDR);
        off.checked_add(size.max(1))?;
        let min_order = msb(off).saturating_sub(PAGE_SHIFT);
        let (_, b) = self.alloc_pages(pages_for(off, size), min_order)?;
        // SAFETY: the allocation holds `off + size` bytes from `b`; the header sits in the
        // 16 bytes before `b + off`.
        unsafe {
            let p = b.add(off);
            let h = p.sub(HDR).cast::<usize>();
            *h = b as usize | msb(off) as usize;
            *h.add(1) = size;
            Some(NonNull::new_unchecked(p))
        }
    }

    /// Frees the byte allocation at `ptr` (block `b` of region `r`, `pages` long),
    /// scribbling its header so a second free is recognised.
    ///
    /// # Safety
    ///
    /// The arguments must describe a live allocation, as `validate` returns them.
    unsafe fn free_bytes(
        &mut self,
        ptr: NonNull<u8>,
        r: *mut RegionMeta,
        b: *mut u8,
        pages: usize,
    ) {
        // SAFETY: the caller guarantees a live allocation whose header precedes `ptr`.
        unsafe {
            *ptr.as_ptr().sub(HDR).cast::<usize>() = b as usize;
            self.free_pages_at(r, b, pages);
        }
    }

    fn largest_order(&self) -> Option<usize> {
        (self.nonempty != 0).then(|| 63 - self.nonempty.leading_zeros() as usize)
    }
}

impl Allocator for Buddy {
    fn alloc_aligned(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        accounted_alloc(
            self,
            |b| &mut b.acct,
            MAX_REQUEST,
            align,
            size,
            |b| b.alloc_bytes(align, size),
        )
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
        let (r, b, off, old) = self.validate(ptr)?;
        if size > MAX_REQUEST {
            return Err(self.acct.enomem());
        }
        self.acct.admit(old, size)?;
        if pages_for(off, old) == pages_for(off, size) {
            // SAFETY: the header of the live allocation sits right before `ptr`.
            unsafe { *ptr.as_ptr().sub(HDR).cast::<usize>().add(1) = size };
            self.acct.on_realloc(old, size);
            return Ok(Some(ptr));
        }
        let Some(new) = self.alloc_bytes(MIN_ALIGN, size) else {
            return Err(self.acct.enomem());
        };
        // SAFETY: both allocations are live and distinct; the old one holds `old` bytes,
        // and only those are read (0.11 read `size` bytes from the old block).
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old.min(size));
            self.free_bytes(ptr, r, b, pages_for(off, old));
        }
        self.acct.on_realloc(old, size);
        Ok(Some(new))
    }

    unsafe fn realloc_in_place(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
    ) -> Result<bool, AllocError> {
        let (_, _, off, old) = self.validate(ptr)?;
        if size > MAX_REQUEST {
            return Err(self.acct.enomem());
        }
        self.acct.admit(old, size)?;
        if pages_for(off, old) != pages_for(off, size) {
            return Ok(false);
        }
        // SAFETY: the header of the live allocation sits right before `ptr`.
        unsafe { *ptr.as_ptr().sub(HDR).cast::<usize>().add(1) = size };
        self.acct.on_realloc(old, size);
        Ok(true)
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), AllocError> {
        let (r, b, off, size) = self.validate(ptr)?;
        // SAFETY: `validate` established that `ptr` is a live allocation at block `b` of
        // region `r`.
        unsafe { self.free_bytes(ptr, r, b, pages_for(off, size)) };
        self.acct.on_free(size);
        Ok(())
    }

    unsafe fn allocation_size(&self, ptr: NonNull<u8>) -> Result<usize, AllocError> {
        self.validate(ptr).map(|(_, _, _, size)| size)
    }

    fn palloc(&mut self, pages: usize) -> Result<NonNull<u8>, AllocError> {
        let bytes = match pages.checked_mul(PAGE_SIZE) {
            Some(b) if pages > 0 && b <= MAX_REQUEST => b,
            _ => return Err(self.acct.enomem()),
        };
        self.acct.admit(0, bytes)?;
        match self.alloc_pages(pages, 0) {
            Some((_, b)) => {
                self.acct.on_alloc(bytes);
                // SAFETY: `alloc_pages` returns a pointer into a region, never null.
                Ok(unsafe { NonNull::new_unchecked(b) })
            }
            None => Err(self.acct.enomem()),
        }
    }

    unsafe fn pfree(&mut self, ptr: NonNull<u8>, pages: usize) -> Result<(), AllocError> {
        let addr = ptr.as_ptr() as usize;
        let bytes = pages.checked_mul(PAGE_SIZE).ok_or(AllocError::BadFree)?;
        if addr % PAGE_SIZE != 0 || pages == 0 {
            return Err(AllocError::BadFree);
        }
        let r = self.region_of(addr, bytes).ok_or(AllocError::BadFree)?;
        if self.checked {
            self.check_allocation(r, addr, pages)?;
        } else {
            // SAFETY: `addr` is a page of region `r`.
            if unsafe { (*r).free_heads.get((*r).page(addr)) } {
                return Err(AllocError::DoubleFree);
            }
        }
        // SAFETY: checked above (fully in checked mode; by the caller's contract otherwise).
        unsafe { self.free_pages_at(r, (*r).ptr(addr), pages) };
        self.acct.on_free(bytes);
        Ok(())
    }

    /// Frees any part of a run (see [`Allocator::pfree_part`]): the run's blocks that lie in
    /// the part go back to the free lists (merging with free buddies), a block that
    /// straddles an end of the part is split, and the pages before and after the part stay
    /// allocated as runs of their own. In checked mode `(run, run_pages)` is validated as
    /// `pfree` validates it (anything but exactly a live run is [`AllocError::BadFree`] or
    /// [`AllocError::DoubleFree`], nothing changed), and the first/last-page marks are
    /// moved so that the head and the tail are live allocations of their own. Without
    /// checked mode, the run's first page is checked as `pfree` checks it.
    unsafe fn pfree_part(
        &mut self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> Result<(), AllocError> {
        let addr = run.as_ptr() as usize;
        let (head, tail) =
            crate::util::part_of_run(addr, run_pages, part.as_ptr() as usize, part_pages)?;
        // `part_of_run` checked that the run's bytes neither overflow nor wrap.
        let r = self
            .region_of(addr, run_pages << PAGE_SHIFT)
            .ok_or(AllocError::BadFree)?;
        if self.checked {
            self.check_allocation(r, addr, run_pages)?;
        } else {
            // SAFETY: `addr` is a page of region `r`.
            if unsafe { (*r).free_heads.get((*r).page(addr)) } {
                return Err(AllocError::DoubleFree);
            }
        }
        let bytes = part_pages << PAGE_SHIFT;
        // SAFETY: `(run, run_pages)` is a live allocation of region `r` (checked above in
        // checked mode, by the caller's contract otherwise) and the part lies inside it.
        unsafe {
            let b = (*r).ptr(addr);
            if head == 0 && tail == 0 {
                self.free_pages_at(r, b, run_pages);
                self.acct.on_free(bytes);
                return Ok(());
            }
            if self.checked {
                let first = (*r).page(addr);
                let last = first + run_pages - 1;
                if head == 0 {
                    (*r).alloc_heads.set(first, false);
                } else {
                    (*r).alloc_lasts.set(first + head - 1, true);
                }
                if tail == 0 {
                    (*r).alloc_lasts.set(last, false);
                } else {
                    (*r).alloc_heads.set(last + 1 - tail, true);
                }
            }
            self.free_part_at(
                r,
                b,
                run_pages,
                (*r).ptr(part.as_ptr() as usize),
                part_pages,
            );
        }
        self.acct
            .on_free_part(bytes, usize::from(head > 0) + usize::from(tail > 0));
        Ok(())
    }

    unsafe fn add_memory(&mut self, base: *mut u8, len: usize) -> Result<(), AllocError> {
        self.add_region(base, len)
    }

    fn available(&self) -> usize {
        self.free_pages << PAGE_SHIFT
    }

    fn max_alloc(&self) -> usize {
        match self.largest_order() {
            Some(k) => ((PAGE_SIZE << k) - HDR)
                .min(self.acct.headroom())
                .min(MAX_REQUEST),
            None => 0,
        }
    }

    fn max_pages(&self) -> usize {
        match self.largest_order() {
            Some(k) => (1usize << k).min(self.acct.headroom() / PAGE_SIZE),
            None => 0,
        }
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
    use std::vec;
    use std::vec::Vec;

    /// A page-aligned arena of `pages` pages filled with garbage, so that nothing may rely
    /// on zeroed memory.
    fn arena(pages: usize) -> (Vec<u8>, *mut u8) {
        let mut v = vec![0xA5u8; (pages + 1) * PAGE_SIZE];
        let base = align_up(v.as_mut_ptr() as usize, PAGE_SIZE).unwrap();
        let p = v.as_mut_ptr().wrapping_add(base - v.as_ptr() as usize);
        (v, p)
    }

    #[test]
    fn split_merge_and_exact_sizes() {
        for checked in [false, true] {
            let (_v, base) = arena(1024);
            let mut b = if checked {
                Buddy::new_checked()
            } else {
                Buddy::new()
            };
            // SAFETY: the arena outlives `b`.
            unsafe { b.add_memory(base, 1024 * PAGE_SIZE).unwrap() };
            let total = b.available();
            assert_eq!(total, 1023 * PAGE_SIZE);
            let mut live = Vec::new();
            for n in [1, 3, 5, 7, 100, 2, 33] {
                let p = b.palloc(n).unwrap();
                live.push((p, n));
            }
            let used: usize = live.iter().map(|l| l.1).sum();
            assert_eq!(b.available(), total - used * PAGE_SIZE);
            for (p, n) in live.drain(..).rev() {
                // SAFETY: live allocations.
                unsafe { b.pfree(p, n).unwrap() };
            }
            assert_eq!(b.available(), total);
            // Everything merged back: the largest block is as large as at the start.
            let n = b.max_pages();
            let p = b.palloc(n).unwrap();
            // SAFETY: live allocation.
            unsafe { b.pfree(p, n).unwrap() };
        }
    }

    #[test]
    fn checked_mode_rejects_wrong_counts() {
        let (_v, base) = arena(64);
        let mut b = Buddy::new_checked();
        // SAFETY: the arena outlives `b`.
        unsafe { b.add_memory(base, 64 * PAGE_SIZE).unwrap() };
        let p = b.palloc(3).unwrap();
        let q = b.palloc(3).unwrap();
        // SAFETY: checked mode accepts any pointer and count.
        unsafe {
            assert_eq!(b.pfree(p, 2), Err(AllocError::BadFree));
            assert_eq!(b.pfree(p, 4), Err(AllocError::BadFree));
            let inner = NonNull::new_unchecked(p.as_ptr().add(PAGE_SIZE));
            assert_eq!(b.pfree(inner, 1), Err(AllocError::BadFree));
            b.pfree(p, 3).unwrap();
            assert!(b.pfree(p, 3).is_err());
            b.pfree(q, 3).unwrap();
        }
        let m = b.malloc(10).unwrap();
        // SAFETY: checked mode accepts any pointer.
        unsafe {
            assert_eq!(
                b.free(NonNull::new_unchecked(m.as_ptr().add(16))),
                Err(AllocError::BadFree)
            );
            b.free(m).unwrap();
            assert_eq!(b.free(m), Err(AllocError::DoubleFree));
        }
    }
}
