//! Anonymous memory as a libc's malloc needs it: mmap, munmap, mprotect, brk.
//!
//! Mappings are runs of pages from the [`crate::PageSource`] (the image's page pool),
//! zero-filled. There is one address space and no MMU protection per mapping: `mprotect`
//! checks its arguments and succeeds on mapped memory. A partial `munmap` forgets the pages
//! it names; the run goes back to the page source when all of its pages are unmapped.
//! `RLIMIT_DATA` bounds the bytes mapped plus the break.
#![allow(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use uk_syscall::Errno;

use crate::PAGE_SIZE;
use crate::system::System;
use uk_syscall::user::UserSlice;

/// Pages may be read.
pub const PROT_READ: u32 = 1;
/// Pages may be written.
pub const PROT_WRITE: u32 = 2;
/// Pages may be executed.
pub const PROT_EXEC: u32 = 4;
/// Shared mapping.
pub const MAP_SHARED: u32 = 0x01;
/// Private mapping.
pub const MAP_PRIVATE: u32 = 0x02;
/// Shared, refusing unknown flags.
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
/// Exactly at `addr`.
pub const MAP_FIXED: u32 = 0x10;
/// Not backed by a file.
pub const MAP_ANONYMOUS: u32 = 0x20;
/// Exactly at `addr`, failing if something is there.
pub const MAP_FIXED_NOREPLACE: u32 = 0x100000;
/// Flags accepted without effect (reservation and placement hints).
const MAP_HINTS: u32 = 0x0100 /* GROWSDOWN */ | 0x0800 /* DENYWRITE */ | 0x1000 /* EXECUTABLE */
    | 0x2000 /* LOCKED */ | 0x4000 /* NORESERVE */ | 0x8000 /* POPULATE */ | 0x10000 /* NONBLOCK */
    | 0x20000 /* STACK */ | 0x40000 /* HUGETLB */ | 0x80000 /* SYNC */;
/// madvise: the pages' contents may go; private anonymous memory reads as zero afterwards.
pub const MADV_DONTNEED: i32 = 4;

/// Whether `advice` is one Linux knows (`MADV_NORMAL` 0 to `MADV_DONTNEED` 4, `MADV_FREE` 8
/// to `MADV_POPULATE_WRITE` 23).
fn known_advice(advice: i32) -> bool {
    matches!(advice, 0..=4 | 8..=23)
}

const PROT_KNOWN: u32 = PROT_READ | PROT_WRITE | PROT_EXEC | 0x8 /* SEM */;

/// Default size the break may grow to (reserved on first use).
pub const DEFAULT_BRK_MAX: usize = 1 << 20;

struct Mapping {
    pages: usize,
    /// One bit per page: still mapped.
    live: Vec<u64>,
    live_count: usize,
}

struct Brk {
    base: usize,
    cur: usize,
    pages: usize,
}

/// Anonymous memory bookkeeping.
pub(crate) struct Mm {
    maps: BTreeMap<usize, Mapping>,
    brk: Option<Brk>,
    brk_max: usize,
    /// Bytes mapped plus the break's extent (what RLIMIT_DATA bounds).
    data: usize,
    /// The most `data` has been (`getrusage`'s `ru_maxrss`).
    data_peak: usize,
}

impl Mm {
    pub(crate) const fn new() -> Self {
        Self {
            maps: BTreeMap::new(),
            brk: None,
            brk_max: DEFAULT_BRK_MAX,
            data: 0,
            data_peak: 0,
        }
    }

    /// The mapping holding `addr`, as (start, pages).
    fn find(&self, addr: usize) -> Option<(usize, usize)> {
        let (&start, m) = self.maps.range(..=addr).next_back()?;
        (addr < start + m.pages * PAGE_SIZE).then_some((start, m.pages))
    }

    /// Whether `[addr, addr+len)` lies in live pages of mappings or in the break.
    fn covers(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        if let Some(b) = &self.brk
            && addr >= b.base
            && end <= b.cur
        {
            return true;
        }
        let mut at = addr;
        while at < end {
            let Some((start, _)) = self.find(at) else {
                return false;
            };
            let m = &self.maps[&start];
            let page = (at - start) / PAGE_SIZE;
            if m.live[page / 64] & (1 << (page % 64)) == 0 {
                return false;
            }
            at = start + (page + 1) * PAGE_SIZE;
        }
        true
    }
}

fn pages_for(len: usize) -> Option<usize> {
    len.checked_add(PAGE_SIZE - 1).map(|l| l / PAGE_SIZE)
}

impl System {
    fn data_allows(&self, mm: &Mm, more: usize) -> bool {
        match self.data_limit() {
            None => true,
            Some(limit) => mm.data.checked_add(more).is_some_and(|t| t <= limit),
        }
    }

    /// The most anonymous memory this layer has had mapped at once, in bytes: `mmap`ed
    /// pages plus the break's extent, the figure `RLIMIT_DATA` bounds, at its highest
    /// (`getrusage`'s `ru_maxrss`). Pages are given zeroed when they are mapped, so mapped
    /// means resident here.
    pub fn data_peak(&self) -> usize {
        self.mm.lock().data_peak
    }

    /// Sets how far the break may grow (only before the first `brk`).
    pub fn set_brk_max(&self, bytes: usize) {
        let mut mm = self.mm.lock();
        if mm.brk.is_none() {
            mm.brk_max = bytes;
        }
    }

    /// mmap(2) of anonymous memory: zeroed pages, placed by this layer. `MAP_FIXED` is
    /// honoured inside an existing mapping of this layer (the range is zeroed again).
    ///
    /// # Errors
    ///
    /// `EINVAL` (zero length, unknown prot or flags, neither or both of private/shared, an
    /// unaligned offset or fixed address), `ENODEV` for a file mapping (no VFS mapping
    /// yet), `ENOMEM` (no memory, `RLIMIT_DATA`, a fixed address outside this layer's
    /// mappings), `EEXIST` (`MAP_FIXED_NOREPLACE` over a mapping).
    pub fn mmap(
        &self,
        addr: usize,
        len: usize,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u64,
    ) -> Result<usize, Errno> {
        let _ = fd;
        if len == 0 || prot & !PROT_KNOWN != 0 || offset % PAGE_SIZE as u64 != 0 {
            return Err(Errno::EINVAL);
        }
        let kind = flags & MAP_SHARED_VALIDATE;
        if kind == 0 {
            return Err(Errno::EINVAL);
        }
        let known =
            MAP_SHARED_VALIDATE | MAP_FIXED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_HINTS;
        if kind == MAP_SHARED_VALIDATE && flags & !known != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if flags & MAP_ANONYMOUS == 0 {
            log::warn!("mmap of a file is not supported: ENODEV");
            return Err(Errno::ENODEV);
        }
        let pages = pages_for(len).ok_or(Errno::ENOMEM)?;
        let bytes = pages.checked_mul(PAGE_SIZE).ok_or(Errno::ENOMEM)?;
        let space = self.address_space();
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if addr % PAGE_SIZE != 0 {
                return Err(Errno::EINVAL);
            }
            let mm = self.mm.lock();
            let inside = mm
                .find(addr)
                .is_some_and(|(s, p)| addr + bytes <= s + p * PAGE_SIZE);
            if flags & MAP_FIXED_NOREPLACE != 0 {
                return Err(if mm.find(addr).is_some() {
                    Errno::EEXIST
                } else {
                    Errno::ENOMEM
                });
            }
            if !inside || !mm.covers(addr, bytes) {
                return Err(Errno::ENOMEM);
            }
            drop(mm);
            UserSlice::new(addr, bytes).fill(&space, 0)?;
            return Ok(addr);
        }
        let mut mm = self.mm.lock();
        if !self.data_allows(&mm, bytes) {
            return Err(Errno::ENOMEM);
        }
        let ptr = self.pages().alloc_pages(pages).ok_or(Errno::ENOMEM)?;
        let start = ptr.as_ptr() as usize;
        if UserSlice::new(start, bytes).fill(&space, 0).is_err() {
            // Pages outside the checked space: a misconfigured page source.
            // SAFETY: the run just allocated, returned unused.
            unsafe { self.pages().free_pages(ptr, pages) };
            return Err(Errno::ENOMEM);
        }
        let mut live = vec![0u64; pages.div_ceil(64)];
        for p in 0..pages {
            live[p / 64] |= 1 << (p % 64);
        }
        mm.maps.insert(
            start,
            Mapping {
                pages,
                live,
                live_count: pages,
            },
        );
        mm.data += bytes;
        mm.data_peak = mm.data_peak.max(mm.data);
        Ok(start)
    }

    /// munmap(2): unmaps the pages of `[addr, addr + len)` that this layer mapped; a
    /// mapping whose pages are all unmapped goes back to the page source. Pages of no
    /// mapping are ignored (as Linux).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned address, a zero length or a range past the address space.
    pub fn munmap(&self, addr: usize, len: usize) -> Result<(), Errno> {
        if addr % PAGE_SIZE != 0 || len == 0 {
            return Err(Errno::EINVAL);
        }
        let pages = pages_for(len).ok_or(Errno::EINVAL)?;
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|b| addr.checked_add(b))
            .ok_or(Errno::EINVAL)?;
        let mut freed = Vec::new();
        {
            let mut mm = self.mm.lock();
            let starts: Vec<usize> = mm
                .maps
                .range(..end)
                .filter(|(s, m)| **s + m.pages * PAGE_SIZE > addr)
                .map(|(s, _)| *s)
                .collect();
            for start in starts {
                let Some(m) = mm.maps.get_mut(&start) else {
                    continue;
                };
                let first = addr.saturating_sub(start) / PAGE_SIZE;
                let last = ((end - start) / PAGE_SIZE).min(m.pages);
                for p in first..last {
                    if m.live[p / 64] & (1 << (p % 64)) != 0 {
                        m.live[p / 64] &= !(1 << (p % 64));
                        m.live_count -= 1;
                    }
                }
                if m.live_count == 0 {
                    let pages = m.pages;
                    mm.maps.remove(&start);
                    mm.data -= pages * PAGE_SIZE;
                    freed.push((start, pages));
                }
            }
        }
        for (start, pages) in freed {
            if let Some(ptr) = NonNull::new(start as *mut u8) {
                // SAFETY: `start`/`pages` are exactly a run from `alloc_pages`, removed
                // from the table above, so it is freed once.
                unsafe { self.pages().free_pages(ptr, pages) };
            }
        }
        Ok(())
    }

    /// mprotect(2): checks the arguments; the memory stays readable and writable (one
    /// address space without per-mapping protection).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned address or unknown prot bits, `ENOMEM` for a range that is
    /// not mapped (neither this layer's mappings or break, nor the image and its RAM).
    pub fn mprotect(&self, addr: usize, len: usize, prot: u32) -> Result<(), Errno> {
        if addr % PAGE_SIZE != 0 || prot & !(PROT_KNOWN | 0x0100_0000 | 0x0200_0000) != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let bytes = pages_for(len).ok_or(Errno::ENOMEM)? * PAGE_SIZE;
        if self.mm.lock().covers(addr, bytes) || self.address_space().contains(addr, bytes) {
            Ok(())
        } else {
            Err(Errno::ENOMEM)
        }
    }

    /// madvise(2): every advice Linux knows is a hint this layer may ignore (memory is
    /// never paged out here), except `MADV_DONTNEED`, after which Linux reads private
    /// anonymous pages as zero: the range is zeroed. musl's allocator gives freed pages back
    /// this way.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a misaligned `addr`, an unknown advice, or `MADV_DONTNEED` on memory
    /// that is not this layer's mappings or break (the image itself, say, which must not be
    /// zeroed); `ENOMEM` for a range outside caller memory. Nothing changes on an error.
    pub fn madvise(&self, addr: usize, len: usize, advice: i32) -> Result<(), Errno> {
        if addr % PAGE_SIZE != 0 || !known_advice(advice) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let bytes = pages_for(len).ok_or(Errno::EINVAL)? * PAGE_SIZE;
        let mapped = self.mm.lock().covers(addr, bytes);
        if !mapped && !self.address_space().contains(addr, bytes) {
            return Err(Errno::ENOMEM);
        }
        if advice == MADV_DONTNEED {
            if !mapped {
                return Err(Errno::EINVAL);
            }
            UserSlice::new(addr, bytes).with_mut(&self.address_space(), |b| b.fill(0))?;
        }
        Ok(())
    }

    /// brk(2): moves the break to `addr` and returns the new break, or returns the current
    /// one unchanged when `addr` is 0, below the start, or past what can be had (Linux's
    /// raw brk never fails otherwise). New memory is zero.
    pub fn brk(&self, addr: usize) -> usize {
        let mut mm = self.mm.lock();
        if mm.brk.is_none() {
            let pages = mm.brk_max / PAGE_SIZE;
            let Some(ptr) = (pages > 0)
                .then(|| self.pages().alloc_pages(pages))
                .flatten()
            else {
                return 0;
            };
            let base = ptr.as_ptr() as usize;
            mm.brk = Some(Brk {
                base,
                cur: base,
                pages,
            });
        }
        let Some(b) = &mm.brk else { return 0 };
        let (base, cur, limit) = (b.base, b.cur, b.base + b.pages * PAGE_SIZE);
        if addr < base || addr > limit {
            return cur;
        }
        if addr > cur {
            let grow = addr - cur;
            if !self.data_allows(&mm, grow) {
                return cur;
            }
            if UserSlice::new(cur, grow)
                .fill(&self.address_space(), 0)
                .is_err()
            {
                return cur;
            }
            mm.data += grow;
            mm.data_peak = mm.data_peak.max(mm.data);
        } else {
            mm.data -= cur - addr;
        }
        if let Some(b) = &mut mm.brk {
            b.cur = addr;
        }
        addr
    }
}
