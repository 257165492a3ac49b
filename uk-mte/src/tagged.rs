//! [`Tagged`]: any [`Allocator`] made memory-safe(r) by tagging its allocations.
//!
//! # Invariant
//!
//! While tagging is active, every granule that is not part of a live allocation made
//! through the wrapper carries allocation tag 0, the tag of ordinary (untagged) pointers.
//! Every live allocation carries one random tag from 1 to 14 on all its granules, and its
//! pointer carries the same logical tag. Hence:
//!
//! - the backend's own accesses (its headers, free lists, the copy in `realloc`) use
//!   untagged pointers on tag-0 memory, and never fault;
//! - an access past the end of an allocation reaches a granule of tag 0 (a header, slack,
//!   free memory) or of a neighbour, whose tag is chosen to differ: it faults;
//! - after `free` the memory is tag 0 again, so a stale pointer faults on its first access,
//!   and a second `free` of it is recognised (its tag no longer matches the memory's).
//!
//! # The operations
//!
//! - Allocation: the backend allocates; the wrapper picks a tag with `irg`, excluding 0 and
//!   15 (`GCR_EL1`) and the tags of the nearest granules on both sides (see below), writes
//!   it to every granule of `size` rounded up to 16 bytes, and returns the pointer with the
//!   tag. (Unikraft 0.11 discarded the result of `irg`, so its allocations went untagged.)
//! - `free`: the pointer's tag is checked against the memory's (first and last granule),
//!   the granules go back to tag 0, and the *untagged* pointer is freed. If the backend
//!   refuses, the tags are restored.
//! - `realloc`: the old granules go back to tag 0 and the untagged pointer goes to the
//!   backend, which may resize in place or copy (its copy reads tag-0 memory through an
//!   untagged pointer); the result gets a fresh tag that also differs from the old one, so
//!   even a pointer kept across an in-place `realloc` faults. A failed `realloc` restores
//!   the old tags. (Unikraft 0.11 passed the tagged pointer on.)
//! - `palloc`/`pfree`: the same for page runs; `pfree` checks the tag of every granule of
//!   the run it is given before touching anything.
//!
//! The size to re-tag on `free` comes from [`Allocator::allocation_size`], which every
//! `uk-alloc` backend provides. A zero-sized allocation gets a tagged pointer but no tagged
//! granule (it owns no byte).
//!
//! # Neighbours
//!
//! To make sure that two allocations next to each other never share a tag, a new allocation
//! also excludes the tags of the two granules before it and the two after it (the 16-byte
//! header the `uk-alloc` backends put between allocations is one granule). Those granules
//! are read only where that is known to be safe: in a page the allocation itself occupies,
//! or in a region given to the allocator through [`Tagged::add_memory`](Allocator::add_memory)
//! (up to [`MAX_REGIONS`] are remembered). A neighbour in another, unknown page gets an
//! independent tag (a 1 in 14 chance of a match for a run that ends on a page boundary).
//!
//! # Requirements on the backend
//!
//! Allocations must be 16-byte aligned and must not share their last granule with anything
//! the backend uses (true of every `uk-alloc` backend: their blocks and headers are 16-byte
//! granular), and memory handed to the allocator must carry allocation tag 0 (the state
//! after reset).

use core::ptr::NonNull;

use uk_alloc::{AllocError, Allocator, PAGE_SIZE, Stats};

use crate::tag::{ExcludeMask, GRANULE, Tag, strip_address, tag_of, tagged_len, with_tag_nonnull};

/// Regions [`Tagged`] remembers (for reading the tags of neighbouring granules).
pub const MAX_REGIONS: usize = 16;

/// Where allocation tags live: the hardware ([`HardwareTags`]), or a model of it (the host
/// tests use one).
pub trait TagStore {
    /// Whether tags are in use now. When `false`, [`Tagged`] passes every call straight to
    /// its backend and hands out untagged pointers.
    fn active(&self) -> bool;

    /// A random tag outside `exclude` (`irg`).
    fn random_tag(&self, exclude: ExcludeMask) -> Tag;

    /// The allocation tag of the granule at the untagged address `address`.
    ///
    /// # Safety
    ///
    /// `address` must be mapped memory whose tags the store may read.
    unsafe fn load_tag(&self, address: usize) -> Tag;

    /// Sets the allocation tag of every granule of `[start, start + len)` (untagged,
    /// granule-aligned, `len` a multiple of [`GRANULE`]) to `tag`.
    ///
    /// # Safety
    ///
    /// The range must be mapped memory that belongs to the caller.
    unsafe fn store_tags(&self, start: usize, len: usize, tag: Tag);
}

/// The CPU's allocation tags. Active once [`crate::enable`] succeeded; on other targets and
/// CPUs without FEAT_MTE2 never.
#[derive(Clone, Copy, Debug, Default)]
pub struct HardwareTags;

impl TagStore for HardwareTags {
    fn active(&self) -> bool {
        crate::enabled()
    }

    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    fn random_tag(&self, exclude: ExcludeMask) -> Tag {
        // SAFETY: only called while active, so FEAT_MTE2 is implemented.
        Tag::of_address(unsafe { crate::arch::irg(0, exclude) })
    }

    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    unsafe fn load_tag(&self, address: usize) -> Tag {
        // SAFETY: FEAT_MTE2 (active) and a mapped address (the caller's contract).
        unsafe { crate::arch::ldg(address) }
    }

    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    unsafe fn store_tags(&self, start: usize, len: usize, tag: Tag) {
        // SAFETY: FEAT_MTE2 (active) and the caller's range.
        unsafe { crate::arch::store_tags(start, len, tag) }
    }

    // Elsewhere tagging is never active, so these are never called.
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    fn random_tag(&self, _: ExcludeMask) -> Tag {
        Tag::ZERO
    }

    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    unsafe fn load_tag(&self, _: usize) -> Tag {
        Tag::ZERO
    }

    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    unsafe fn store_tags(&self, _: usize, _: usize, _: Tag) {}
}

/// An [`Allocator`] whose allocations carry memory tags (see the
/// [module documentation](self)). Statistics, limit and free memory are the backend's,
/// unchanged: sizes are passed on exactly as requested.
pub struct Tagged<A, S = HardwareTags> {
    inner: A,
    tags: S,
    regions: [(usize, usize); MAX_REGIONS],
    region_count: usize,
}

impl<A> Tagged<A> {
    /// Wraps `inner`, tagging with the CPU's tags once [`crate::enable`] succeeded. Usable
    /// in a `static`.
    pub const fn new(inner: A) -> Self {
        Self::with_store(inner, HardwareTags)
    }
}

impl<A, S> Tagged<A, S> {
    /// Wraps `inner`, keeping tags in `tags`.
    pub const fn with_store(inner: A, tags: S) -> Self {
        Tagged {
            inner,
            tags,
            regions: [(0, 0); MAX_REGIONS],
            region_count: 0,
        }
    }

    /// The backend.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The tag store.
    pub fn store(&self) -> &S {
        &self.tags
    }

    /// Whether the granule at `address` may be read: it lies in a page of the allocation
    /// `[start, end)` or in a known region.
    fn readable(&self, address: usize, start: usize, end: usize) -> bool {
        let page = |a: usize| a / PAGE_SIZE;
        let own = page(address) == page(start) || (end > start && page(address) == page(end - 1));
        own || self.regions[..self.region_count]
            .iter()
            .any(|&(lo, hi)| (lo..hi).contains(&address))
    }
}

impl<A: Allocator, S: TagStore> Tagged<A, S> {
    /// Tags the new allocation at `p` of `size` bytes with a fresh tag outside `exclude`
    /// and the neighbours' tags; returns the tagged pointer.
    fn tag_new(&self, p: NonNull<u8>, size: usize, exclude: ExcludeMask) -> NonNull<u8> {
        let start = p.as_ptr() as usize;
        let len = tagged_len(size);
        let end = start + len;
        let mut exclude = exclude.union(ExcludeMask::RESERVED);
        for address in [
            start.wrapping_sub(2 * GRANULE),
            start.wrapping_sub(GRANULE),
            end,
            end.wrapping_add(GRANULE),
        ] {
            if self.readable(address, start, end) {
                // SAFETY: `readable` established that the granule is mapped memory of the
                // allocation's pages or of a region given to this allocator.
                exclude = exclude.with(unsafe { self.tags.load_tag(address) });
            }
        }
        let tag = self.tags.random_tag(exclude);
        // SAFETY: `[start, end)` is the fresh allocation, granule aligned (16-byte aligned
        // backend) and not shared with anything else (the backend requirement).
        unsafe { self.tags.store_tags(start, len, tag) };
        with_tag_nonnull(p, tag)
    }

    /// The tagged length of the live tagged allocation at the untagged `q` whose pointer
    /// carried `tag`, after checking its first and last granule against `tag`.
    fn extent(&self, q: NonNull<u8>, tag: Tag) -> Result<usize, AllocError> {
        let start = q.as_ptr() as usize;
        // SAFETY: the pointer came from this allocator (the caller's contract), so its
        // first granule is mapped memory of the allocator.
        let first = unsafe { self.tags.load_tag(start) };
        // SAFETY: as for `Allocator::free`, forwarded.
        let size = unsafe { self.inner.allocation_size(q) };
        if first != tag {
            return match size {
                // A zero-sized allocation owns no granule.
                Ok(0) => Ok(0),
                // Freed (re-tagged 0) or a pointer from before a reuse of its memory.
                _ if first == Tag::ZERO => Err(AllocError::DoubleFree),
                _ => Err(AllocError::BadFree),
            };
        }
        let len = tagged_len(size?);
        // SAFETY: the last granule of an allocation the backend vouches for.
        if len == 0 || unsafe { self.tags.load_tag(start + len - GRANULE) } != tag {
            return Err(AllocError::BadFree);
        }
        Ok(len)
    }
}

/// The untagged pointer of `ptr`.
fn untagged(ptr: NonNull<u8>) -> NonNull<u8> {
    ptr.map_addr(|a| core::num::NonZeroUsize::new(strip_address(a.get())).unwrap_or(a))
}

impl<A: Allocator, S: TagStore> Allocator for Tagged<A, S> {
    fn alloc_aligned(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        let p = self.inner.alloc_aligned(align, size)?;
        if !self.tags.active() {
            return Ok(p);
        }
        Ok(self.tag_new(p, size, ExcludeMask::NONE))
    }

    fn calloc(&mut self, nmemb: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
        // The backend zeroes through its own (untagged) pointer; tags come after.
        let p = self.inner.calloc(nmemb, size)?;
        if !self.tags.active() {
            return Ok(p);
        }
        Ok(self.tag_new(p, nmemb.saturating_mul(size), ExcludeMask::NONE))
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
            // SAFETY: forwarded contract.
            unsafe { self.free(ptr)? };
            return Ok(None);
        }
        let q = untagged(ptr);
        let tag = tag_of(ptr.as_ptr());
        if !self.tags.active() {
            // SAFETY: forwarded contract, with the tag stripped.
            return unsafe { self.inner.realloc(Some(q), size) };
        }
        // A tag-0 pointer is an allocation made before tagging started: nothing to undo.
        let old = if tag == Tag::ZERO {
            0
        } else {
            self.extent(q, tag)?
        };
        let start = q.as_ptr() as usize;
        // SAFETY: `[start, start + old)` is the live allocation's tagged granules.
        unsafe { self.tags.store_tags(start, old, Tag::ZERO) };
        // SAFETY: forwarded contract, with the tag stripped.
        match unsafe { self.inner.realloc(Some(q), size) } {
            Ok(Some(r)) => Ok(Some(self.tag_new(r, size, ExcludeMask::NONE.with(tag)))),
            Ok(None) => Ok(None),
            Err(e) => {
                // SAFETY: the allocation is still live and unchanged.
                unsafe { self.tags.store_tags(start, old, tag) };
                Err(e)
            }
        }
    }

    unsafe fn realloc_in_place(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
    ) -> Result<bool, AllocError> {
        let q = untagged(ptr);
        let tag = tag_of(ptr.as_ptr());
        if !self.tags.active() || tag == Tag::ZERO {
            // Untagged allocations stay untagged when resized in place.
            // SAFETY: forwarded contract, with the tag stripped.
            return unsafe { self.inner.realloc_in_place(q, size) };
        }
        let old = self.extent(q, tag)?;
        let start = q.as_ptr() as usize;
        // SAFETY: the live allocation's tagged granules.
        unsafe { self.tags.store_tags(start, old, Tag::ZERO) };
        // SAFETY: forwarded contract, with the tag stripped.
        let resized = unsafe { self.inner.realloc_in_place(q, size) };
        let (len, tag) = match resized {
            // Same pointer, so the caller keeps its tag: re-tag with it.
            Ok(true) => (tagged_len(size), tag),
            Ok(false) | Err(_) => (old, tag),
        };
        // SAFETY: the (possibly resized) live allocation.
        unsafe { self.tags.store_tags(start, len, tag) };
        resized
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>) -> Result<(), AllocError> {
        let q = untagged(ptr);
        let tag = tag_of(ptr.as_ptr());
        if !self.tags.active() || tag == Tag::ZERO {
            // SAFETY: forwarded contract, with the tag stripped.
            return unsafe { self.inner.free(q) };
        }
        let len = self.extent(q, tag)?;
        let start = q.as_ptr() as usize;
        // SAFETY: the live allocation's tagged granules, about to be freed.
        unsafe { self.tags.store_tags(start, len, Tag::ZERO) };
        // SAFETY: forwarded contract, with the tag stripped.
        let freed = unsafe { self.inner.free(q) };
        if freed.is_err() {
            // SAFETY: the backend refused, so the allocation is still live.
            unsafe { self.tags.store_tags(start, len, tag) };
        }
        freed
    }

    unsafe fn allocation_size(&self, ptr: NonNull<u8>) -> Result<usize, AllocError> {
        // SAFETY: forwarded contract, with the tag stripped.
        unsafe { self.inner.allocation_size(untagged(ptr)) }
    }

    fn palloc(&mut self, pages: usize) -> Result<NonNull<u8>, AllocError> {
        let p = self.inner.palloc(pages)?;
        if !self.tags.active() {
            return Ok(p);
        }
        // `palloc` succeeded, so the byte count does not overflow.
        Ok(self.tag_new(p, pages * PAGE_SIZE, ExcludeMask::NONE))
    }

    unsafe fn pfree(&mut self, ptr: NonNull<u8>, pages: usize) -> Result<(), AllocError> {
        let q = untagged(ptr);
        let tag = tag_of(ptr.as_ptr());
        if !self.tags.active() || tag == Tag::ZERO {
            // SAFETY: forwarded contract, with the tag stripped.
            return unsafe { self.inner.pfree(q, pages) };
        }
        let start = q.as_ptr() as usize;
        let len = pages.checked_mul(PAGE_SIZE).ok_or(AllocError::BadFree)?;
        if pages == 0 || start % PAGE_SIZE != 0 {
            return Err(AllocError::BadFree);
        }
        // Every granule must carry the tag: the count may not run past the run (its
        // neighbours have other tags, free memory tag 0).
        for offset in (0..len).step_by(GRANULE) {
            // SAFETY: granules of the run up to the first mismatch, mapped: the run's own,
            // or (at a mismatch) the first granule after it, which stops the scan.
            let found = unsafe { self.tags.load_tag(start + offset) };
            if found != tag {
                return Err(if offset == 0 && found == Tag::ZERO {
                    AllocError::DoubleFree
                } else {
                    AllocError::BadFree
                });
            }
        }
        // SAFETY: the whole run carries its tag: it is the caller's live run.
        unsafe { self.tags.store_tags(start, len, Tag::ZERO) };
        // SAFETY: forwarded contract, with the tag stripped.
        let freed = unsafe { self.inner.pfree(q, pages) };
        if freed.is_err() {
            // SAFETY: the backend refused, so the run is still live.
            unsafe { self.tags.store_tags(start, len, tag) };
        }
        freed
    }

    unsafe fn add_memory(&mut self, base: *mut u8, len: usize) -> Result<(), AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.inner.add_memory(base, len)? };
        if self.region_count < MAX_REGIONS {
            let start = base as usize;
            self.regions[self.region_count] = (start, start.saturating_add(len));
            self.region_count += 1;
        }
        Ok(())
    }

    fn available(&self) -> usize {
        self.inner.available()
    }

    fn max_alloc(&self) -> usize {
        self.inner.max_alloc()
    }

    fn max_pages(&self) -> usize {
        self.inner.max_pages()
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    fn limit(&self) -> Option<usize> {
        self.inner.limit()
    }

    fn set_limit(&mut self, limit: Option<usize>) {
        self.inner.set_limit(limit);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::vec::Vec;

    use uk_alloc::{Buddy, Region, Tlsf};

    use super::*;
    use crate::tag::{choose_tag, strip, strip_address, tag_address};

    /// A model of the hardware's tag storage: one tag per granule (0 unless set), and an
    /// `irg` that walks tags like the architecture's generator.
    struct FakeTags {
        active: Cell<bool>,
        tags: RefCell<HashMap<usize, Tag>>,
        seed: Cell<u64>,
        start: Cell<Tag>,
    }

    impl FakeTags {
        fn new() -> FakeTags {
            FakeTags {
                active: Cell::new(true),
                tags: RefCell::new(HashMap::new()),
                seed: Cell::new(0x2545_f491_4f6c_dd1d),
                start: Cell::new(Tag::ZERO),
            }
        }

        fn get(&self, address: usize) -> Tag {
            let granule = strip_address(address) & !(GRANULE - 1);
            self.tags
                .borrow()
                .get(&granule)
                .copied()
                .unwrap_or_default()
        }

        /// Whether an access of `len` bytes through `ptr` passes the tag check.
        fn check(&self, ptr: NonNull<u8>, len: usize) -> bool {
            let address = ptr.as_ptr() as usize;
            let tag = tag_of(ptr.as_ptr());
            let start = strip_address(address) & !(GRANULE - 1);
            let end = strip_address(address) + len;
            (start..end).step_by(GRANULE).all(|g| self.get(g) == tag)
        }
    }

    impl TagStore for &FakeTags {
        fn active(&self) -> bool {
            self.active.get()
        }

        fn random_tag(&self, exclude: ExcludeMask) -> Tag {
            let mut x = self.seed.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.seed.set(x);
            let tag = choose_tag(self.start.get(), (x % 16) as u8, exclude);
            self.start.set(tag);
            tag
        }

        unsafe fn load_tag(&self, address: usize) -> Tag {
            assert_eq!(address % GRANULE, 0, "ldg of an unaligned address");
            self.get(address)
        }

        unsafe fn store_tags(&self, start: usize, len: usize, tag: Tag) {
            assert_eq!(start % GRANULE, 0);
            assert_eq!(len % GRANULE, 0);
            assert_eq!(
                strip_address(start),
                start,
                "tags stored through a tagged address"
            );
            let mut tags = self.tags.borrow_mut();
            for g in (start..start + len).step_by(GRANULE) {
                if tag == Tag::ZERO {
                    tags.remove(&g);
                } else {
                    tags.insert(g, tag);
                }
            }
        }
    }

    /// A page-aligned arena of `len` bytes.
    fn arena(len: usize) -> (Vec<u8>, *mut u8) {
        let mut v = std::vec![0u8; len + PAGE_SIZE];
        let offset = v.as_ptr().align_offset(PAGE_SIZE);
        let base = v[offset..].as_mut_ptr();
        (v, base)
    }

    fn tlsf(tags: &FakeTags, base: *mut u8, len: usize) -> Tagged<Tlsf, &FakeTags> {
        let mut t = Tagged::with_store(Tlsf::new(), tags);
        // SAFETY: the arena outlives the allocator in every test.
        unsafe { t.add_memory(base, len).unwrap() };
        t
    }

    #[test]
    fn allocations_are_tagged_granule_by_granule() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        for size in [1usize, 15, 16, 17, 48, 100, 1000] {
            let p = t.malloc(size).unwrap();
            let tag = tag_of(p.as_ptr());
            assert!(!ExcludeMask::RESERVED.contains(tag), "{size}: {tag}");
            // Every byte of the request is reachable, the rest of the granule too...
            assert!(fake.check(p, tagged_len(size)), "{size}");
            // ...and the next granule is not.
            let past = p.map_addr(|a| a.saturating_add(tagged_len(size)));
            assert!(!fake.check(past, 1), "{size}: overflow not caught");
            // The backend saw the exact size, untagged.
            // SAFETY: live.
            assert_eq!(unsafe { t.allocation_size(p) }, Ok(size));
        }
        assert_eq!(t.stats().cur_bytes, 1 + 15 + 16 + 17 + 48 + 100 + 1000);
    }

    #[test]
    fn free_retags_and_catches_double_and_stale_frees() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        let p = t.malloc(64).unwrap();
        let before = t.stats();
        // SAFETY: live, then freed; further frees must be refused.
        unsafe {
            t.free(p).unwrap();
            assert!(!fake.check(p, 1), "use after free not caught");
            assert_eq!(fake.get(p.as_ptr() as usize), Tag::ZERO);
            assert_eq!(t.free(p), Err(AllocError::DoubleFree));
            // The memory is reused under another tag: the stale pointer is refused.
            let q = t.malloc(64).unwrap();
            assert_eq!(
                strip_address(q.as_ptr() as usize),
                strip_address(p.as_ptr() as usize)
            );
            if tag_of(q.as_ptr()) != tag_of(p.as_ptr()) {
                assert_eq!(t.free(p), Err(AllocError::BadFree));
                assert!(fake.check(q, 64), "a refused free changed the tags");
            }
            t.free(q).unwrap();
        }
        assert_eq!(t.stats().total_frees, before.total_frees + 2);
        assert!(fake.tags.borrow().is_empty(), "all memory back to tag 0");
    }

    #[test]
    fn realloc_strips_moves_and_retags() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        let p = t.malloc(100).unwrap();
        let blocker = t.malloc(16).unwrap();
        // SAFETY: the pointers are live; each result replaces its argument.
        unsafe {
            // In place (shrink): same address, new tag, the freed granule back to 0.
            let q = t.realloc(Some(p), 70).unwrap().unwrap();
            assert_eq!(
                strip_address(q.as_ptr() as usize),
                strip_address(p.as_ptr() as usize)
            );
            assert_ne!(tag_of(q.as_ptr()), tag_of(p.as_ptr()));
            assert!(fake.check(q, 80));
            assert!(!fake.check(p, 1), "stale pointer after an in-place realloc");
            assert_eq!(fake.get(q.as_ptr() as usize + 96), Tag::ZERO);
            // Moved (the blocker is in the way): old memory back to 0.
            let r = t.realloc(Some(q), 5000).unwrap().unwrap();
            assert_ne!(
                strip_address(r.as_ptr() as usize),
                strip_address(q.as_ptr() as usize)
            );
            assert!(fake.check(r, 5000));
            assert!(!fake.check(q, 1));
            assert_eq!(t.allocation_size(r), Ok(5000));
            // A failed realloc leaves the allocation and its tags as they were.
            let stats = t.stats();
            assert_eq!(t.realloc(Some(r), 1 << 20), Err(AllocError::NoMem));
            assert!(fake.check(r, 5000));
            assert_eq!(t.stats().cur_bytes, stats.cur_bytes);
            // realloc(p, 0) frees; realloc(None, n) allocates tagged.
            assert_eq!(t.realloc(Some(r), 0), Ok(None));
            assert!(!fake.check(r, 1));
            let n = t.realloc(None, 10).unwrap().unwrap();
            assert_ne!(tag_of(n.as_ptr()), Tag::ZERO);
            t.free(n).unwrap();
            t.free(blocker).unwrap();
        }
        assert!(fake.tags.borrow().is_empty());
    }

    #[test]
    fn realloc_in_place_keeps_the_pointer_valid() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        let p = t.malloc(200).unwrap();
        // SAFETY: live.
        unsafe {
            assert_eq!(t.realloc_in_place(p, 100), Ok(true));
            assert!(fake.check(p, 100));
            assert!(!fake.check(p.map_addr(|a| a.saturating_add(112)), 1));
            assert_eq!(t.realloc_in_place(p, 300), Ok(true));
            assert!(fake.check(p, 300));
            t.free(p).unwrap();
        }
    }

    #[test]
    fn neighbours_never_share_a_tag() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        let mut blocks: Vec<NonNull<u8>> = (0..300).map(|_| t.malloc(32).unwrap()).collect();
        blocks.sort_by_key(|p| strip_address(p.as_ptr() as usize));
        let mut pairs = 0;
        for w in blocks.windows(2) {
            let (a, b) = (w[0].as_ptr() as usize, w[1].as_ptr() as usize);
            if strip_address(b) == strip_address(a) + 48 {
                pairs += 1;
                assert_ne!(tag_of(w[0].as_ptr()), tag_of(w[1].as_ptr()));
            }
        }
        assert!(pairs > 250, "{pairs}");
        // Page runs that touch, from a buddy allocator.
        let fake = FakeTags::new();
        let (_w, base) = arena(1 << 20);
        let mut b = Tagged::with_store(Buddy::new(), &fake);
        // SAFETY: the arena outlives the allocator.
        unsafe { b.add_memory(base, 1 << 20).unwrap() };
        let mut runs: Vec<NonNull<u8>> = (0..200).map(|_| b.palloc(1).unwrap()).collect();
        runs.sort_by_key(|p| strip_address(p.as_ptr() as usize));
        let mut touching = 0;
        for w in runs.windows(2) {
            if strip_address(w[1].as_ptr() as usize)
                == strip_address(w[0].as_ptr() as usize) + PAGE_SIZE
            {
                touching += 1;
                assert_ne!(tag_of(w[0].as_ptr()), tag_of(w[1].as_ptr()));
            }
        }
        assert!(touching > 150, "{touching}");
        for r in runs {
            // SAFETY: live runs of one page.
            unsafe { b.pfree(r, 1).unwrap() };
        }
        assert!(fake.tags.borrow().is_empty());
    }

    #[test]
    fn pages_checked_before_anything_changes() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 20);
        let mut b = Tagged::with_store(Buddy::new(), &fake);
        // SAFETY: the arena outlives the allocator.
        unsafe { b.add_memory(base, 1 << 20).unwrap() };
        let p = b.palloc(2).unwrap();
        let q = b.palloc(2).unwrap();
        assert!(fake.check(p, 2 * PAGE_SIZE));
        // SAFETY: wrong counts and pointers must be refused without changing anything.
        unsafe {
            assert_eq!(b.pfree(p, 3), Err(AllocError::BadFree));
            assert_eq!(b.pfree(p, 0), Err(AllocError::BadFree));
            let inside = p.map_addr(|a| a.saturating_add(PAGE_SIZE + 16));
            assert_eq!(b.pfree(inside, 1), Err(AllocError::BadFree));
            assert!(fake.check(p, 2 * PAGE_SIZE));
            assert!(fake.check(q, 2 * PAGE_SIZE));
            b.pfree(p, 2).unwrap();
            assert_eq!(b.pfree(p, 2), Err(AllocError::DoubleFree));
            b.pfree(q, 2).unwrap();
        }
        assert_eq!(b.stats().cur_bytes, 0);
    }

    #[test]
    fn zero_sizes_and_calloc() {
        let fake = FakeTags::new();
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        let z = t.malloc(0).unwrap();
        assert_ne!(tag_of(z.as_ptr()), Tag::ZERO);
        assert!(
            fake.tags.borrow().is_empty(),
            "a zero-sized allocation owns no granule"
        );
        // The backend zeroes; the tags come on top.
        let c = t.calloc(10, 10).unwrap();
        assert!(fake.check(c, 100));
        // SAFETY: reading the 100 bytes through the untagged pointer (the host has no TBI).
        let bytes = unsafe { core::slice::from_raw_parts(strip(c.as_ptr()), 100) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: live.
        unsafe {
            t.free(z).unwrap();
            t.free(c).unwrap();
        }
        assert_eq!(t.calloc(usize::MAX, 2), Err(AllocError::NoMem));
        assert_eq!(t.stats().cur_allocs, 0);
    }

    #[test]
    fn inactive_store_passes_through() {
        let fake = FakeTags::new();
        fake.active.set(false);
        let (_v, base) = arena(1 << 16);
        let mut t = tlsf(&fake, base, 1 << 16);
        let p = t.malloc(40).unwrap();
        assert_eq!(tag_of(p.as_ptr()), Tag::ZERO);
        let g = t.palloc(1).unwrap();
        // SAFETY: live pointers of the backend.
        unsafe {
            let p = t.realloc(Some(p), 400).unwrap().unwrap();
            assert_eq!(tag_of(p.as_ptr()), Tag::ZERO);
            t.free(p).unwrap();
            t.pfree(g, 1).unwrap();
        }
        assert!(fake.tags.borrow().is_empty());
        // Allocations from before tagging started are still freed correctly after.
        let old = t.malloc(32).unwrap();
        fake.active.set(true);
        let new = t.malloc(32).unwrap();
        // SAFETY: both live.
        unsafe {
            let old = t.realloc(Some(old), 64).unwrap().unwrap();
            assert_ne!(
                tag_of(old.as_ptr()),
                Tag::ZERO,
                "a reallocated block gets tagged"
            );
            t.free(old).unwrap();
            t.free(new).unwrap();
        }
        assert_eq!(t.stats().cur_allocs, 0);
        assert!(fake.tags.borrow().is_empty());
    }

    /// xorshift64: deterministic pseudo-random numbers below `n`.
    fn rand(state: &mut u64, n: u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state % n
    }

    /// Random operations on `inner`; after every 25, every granule of the arena carries the
    /// tag of the live allocation covering it, and 0 elsewhere.
    fn random_operations<A: Allocator>(inner: A, name: &str) {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let fake = FakeTags::new();
        let len = 1 << 18;
        let (_v, base) = arena(len);
        let mut t = Tagged::with_store(inner, &fake);
        // SAFETY: the arena outlives the allocator.
        unsafe { t.add_memory(base, len).unwrap() };
        let mut live: Vec<(NonNull<u8>, usize, Option<usize>)> = Vec::new();
        for step in 0..1500 {
            match rand(&mut x, 5) {
                0 | 1 if live.len() < 40 => {
                    let size = rand(&mut x, 700) as usize;
                    // The region allocator runs out eventually; the others never do here.
                    match t.malloc(size) {
                        Ok(p) => live.push((p, size, None)),
                        Err(e) => {
                            assert!(name == "region" && e == AllocError::NoMem, "{name}: {e}")
                        }
                    }
                }
                2 if live.len() < 40 => {
                    let pages = 1 + rand(&mut x, 3) as usize;
                    if let Ok(p) = t.palloc(pages) {
                        live.push((p, pages * PAGE_SIZE, Some(pages)));
                    }
                }
                3 if !live.is_empty() => {
                    let i = rand(&mut x, live.len() as u64) as usize;
                    if live[i].2.is_none() {
                        let size = 1 + rand(&mut x, 900) as usize;
                        // SAFETY: live byte allocation.
                        if let Ok(Some(p)) = unsafe { t.realloc(Some(live[i].0), size) } {
                            live[i] = (p, size, None);
                        }
                    }
                }
                _ if !live.is_empty() => {
                    let i = rand(&mut x, live.len() as u64) as usize;
                    let (p, _, pages) = live.swap_remove(i);
                    // SAFETY: live, freed once.
                    unsafe {
                        match pages {
                            Some(n) => t.pfree(p, n).unwrap(),
                            None => t.free(p).unwrap(),
                        }
                    }
                }
                _ => {}
            }
            if step % 25 == 0 {
                let mut expected: HashMap<usize, Tag> = HashMap::new();
                for &(p, size, _) in &live {
                    let start = strip_address(p.as_ptr() as usize);
                    for g in (start..start + tagged_len(size)).step_by(GRANULE) {
                        assert!(expected.insert(g, tag_of(p.as_ptr())).is_none(), "overlap");
                    }
                }
                assert_eq!(*fake.tags.borrow(), expected, "{name}, step {step}");
            }
        }
        for (p, _, pages) in live {
            // SAFETY: live, freed once.
            unsafe {
                match pages {
                    Some(n) => t.pfree(p, n).unwrap(),
                    None => t.free(p).unwrap(),
                }
            }
        }
        assert!(fake.tags.borrow().is_empty(), "{name}");
        assert_eq!(t.stats().cur_bytes, 0);
    }

    #[test]
    fn invariant_holds_over_random_operations() {
        random_operations(Tlsf::new(), "tlsf");
        random_operations(Buddy::new(), "buddy");
        random_operations(Region::new(), "region");
        random_operations(Tlsf::new_checked(), "checked tlsf");
        assert_eq!(tag_address(0x10, Tag::MAX), 0x0f00_0000_0000_0010);
    }
}
