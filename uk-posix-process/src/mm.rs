//! Memory as a libc needs it: mmap (anonymous and of files), munmap, mprotect, madvise,
//! msync, brk.
//!
//! Private mappings are runs of pages from the [`crate::PageSource`] (the image's page
//! pool), zero-filled, or for a file (feature `vfs`) filled from it at the offset: a copy,
//! so later changes of the file do not show through and stores stay private. Shared file
//! mappings are the file's own memory (uk-vfs's `SharedMap`, ramfs only): each mapped page
//! is counted per mapping that covers it, and its memory is kept until the last of them is
//! unmapped. Two mappings of the same file pages share one address here (one address
//! space without an MMU to alias pages), so an `munmap` of one of them only drops that
//! mapping's count of the pages.
//!
//! Page rights: `mmap`'s and `mprotect`'s `prot` take effect on the pages of private
//! mappings when the page source can set rights in hardware ([`crate::PageSource::set_rights`];
//! on a booted image, a board with uk-hal's `PageProtection`): `PROT_NONE` pages fault on
//! every access and `PROT_READ` ones on writes, as musl's thread stack guards and a
//! program's own guard pages expect. The same rights go into uk-syscall's record
//! (`set_rights`), so a system call handed such a page fails with `EFAULT` instead of
//! faulting in the kernel. Rights taken away are recorded before the hardware changes and
//! given back in hardware first, and every page is made read-write again before it returns
//! to the page source or this layer writes it (`munmap`, `mremap`, `MADV_DONTNEED`, a
//! `MAP_FIXED` over it). The break, shared file mappings (the file's pages, which other
//! mappings may share at the same address) and the image keep read-write whatever
//! `mprotect` says, and so does everything when the source cannot set rights.
//!
//! An `munmap` of part of a private mapping gives those pages back to the page source at
//! once, as Linux frees them, when the source can free part of a run
//! ([`crate::PageSource::free_part`]; the image's page pool can): the mapping is split, and
//! the mapped pages before and after the hole stay as mappings (and runs) of their own.
//! `mremap` shrinking in place (musl's `realloc` of a large block) frees its tail this way
//! too. A source that only takes whole runs back (the hosted default, the global allocator)
//! keeps the unmapped pages of a run until its last page is unmapped, and they stay counted
//! until then.
//!
//! `RLIMIT_DATA` bounds the bytes of private mappings plus the break (Linux counts private
//! writable mappings; here every private one, file or not, whatever its protection, since
//! each takes its own pages): the pages each private run holds, so pages given back stop
//! counting at once; shared file mappings belong to the file and are not counted.
#![allow(unsafe_code)]

use alloc::collections::BTreeMap;
#[cfg(feature = "vfs")]
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use uk_syscall::Errno;

use crate::PAGE_SIZE;
use crate::system::System;
use uk_syscall::user::{
    PageRights, UserSlice, forget_rights, protected_extent, protected_in, set_rights,
};

/// Pages may not be accessed at all.
pub const PROT_NONE: u32 = 0;
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
/// mremap: the mapping may move to a new address.
pub const MREMAP_MAYMOVE: u32 = 1;
/// mremap: move to exactly `new_addr` (refused here, see [`System::mremap`]).
pub const MREMAP_FIXED: u32 = 2;
/// mremap: move, leaving the old range mapped (refused here, see [`System::mremap`]).
pub const MREMAP_DONTUNMAP: u32 = 4;
/// madvise: the pages' contents may go; private anonymous memory reads as zero afterwards.
pub const MADV_DONTNEED: i32 = 4;
/// msync: schedule the write-back and return.
pub const MS_ASYNC: u32 = 1;
/// msync: invalidate other mappings of the file.
pub const MS_INVALIDATE: u32 = 2;
/// msync: write back and wait.
pub const MS_SYNC: u32 = 4;

/// Whether `advice` is one Linux knows (`MADV_NORMAL` 0 to `MADV_DONTNEED` 4, `MADV_FREE` 8
/// to `MADV_POPULATE_WRITE` 23).
fn known_advice(advice: i32) -> bool {
    matches!(advice, 0..=4 | 8..=23)
}

const PROT_KNOWN: u32 = PROT_READ | PROT_WRITE | PROT_EXEC | 0x8 /* SEM */;

// Shared file mappings hand out uk-vfs's pages as this layer's pages.
#[cfg(feature = "vfs")]
const _: () = assert!(PAGE_SIZE == uk_vfs::mmap::MAP_PAGE);

/// Default size the break may grow to (reserved on first use).
pub const DEFAULT_BRK_MAX: usize = 1 << 20;

/// A private mapping: exactly one live run of pages of the page source, at the key it is
/// stored under in [`Mm::maps`] (a partial `munmap` the source accepts leaves the pieces as
/// mappings, and runs, of their own).
struct Mapping {
    pages: usize,
    /// One bit per page: still mapped (a page stays in the run, unmapped, when the source
    /// would not take it back alone).
    live: Vec<u64>,
    live_count: usize,
    /// The file and offset a private file mapping was filled from (`MADV_DONTNEED` fills
    /// its pages from there again, as Linux does).
    #[cfg(feature = "vfs")]
    file: Option<(uk_vfs::VnodeRef, u64)>,
    /// The path of a private file mapping's file, as its descriptor named it when it was
    /// mapped (`/proc/<pid>/maps`).
    #[cfg(feature = "vfs")]
    name: Option<Arc<[u8]>>,
}

impl Mapping {
    /// Whether page `p` is still mapped.
    fn is_live(&self, p: usize) -> bool {
        self.live[p / 64] & (1 << (p % 64)) != 0
    }

    /// Unmaps page `p` (nothing if it is already).
    fn unmap(&mut self, p: usize) {
        if self.is_live(p) {
            self.live[p / 64] &= !(1 << (p % 64));
            self.live_count -= 1;
        }
    }

    /// The pages `from..to` as a mapping of their own (at `from` pages past this one's
    /// start): their live bits, and for a file mapping the file offset moved along.
    fn piece(&self, from: usize, to: usize) -> Mapping {
        let pages = to - from;
        let mut live = vec![0u64; pages.div_ceil(64)];
        let mut live_count = 0;
        for p in 0..pages {
            if self.is_live(from + p) {
                live[p / 64] |= 1 << (p % 64);
                live_count += 1;
            }
        }
        Mapping {
            pages,
            live,
            live_count,
            #[cfg(feature = "vfs")]
            file: self
                .file
                .as_ref()
                .map(|(node, offset)| (node.clone(), offset + (from * PAGE_SIZE) as u64)),
            #[cfg(feature = "vfs")]
            name: self.name.clone(),
        }
    }
}

/// One page of a shared file mapping.
#[cfg(feature = "vfs")]
struct SharedPage {
    /// How many mappings cover the page.
    count: usize,
    /// Keeps the page's memory alive.
    _map: uk_vfs::SharedMap,
    /// The file's device, inode number, this page's offset in it and its path, for
    /// `/proc/<pid>/maps`.
    file: MapFile,
}

/// What `/proc/<pid>/maps` says about a shared file mapping's page.
#[cfg(feature = "vfs")]
#[derive(Clone)]
pub(crate) struct MapFile {
    dev: u64,
    ino: u64,
    offset: u64,
    name: Option<Arc<[u8]>>,
}

/// Where a mapping's pages come from.
enum Source {
    /// Zeroed pages (`MAP_ANONYMOUS`, `/dev/zero`).
    Anon,
    /// Pages filled from a file at an offset (a private file mapping).
    #[cfg(feature = "vfs")]
    File(uk_vfs::VnodeRef, u64),
    /// The file's own pages (a shared file mapping).
    #[cfg(feature = "vfs")]
    Shared(uk_vfs::SharedMap),
}

struct Brk {
    base: usize,
    cur: usize,
    pages: usize,
}

/// Anonymous memory bookkeeping.
pub(crate) struct Mm {
    maps: BTreeMap<usize, Mapping>,
    /// Pages of shared file mappings, by address.
    #[cfg(feature = "vfs")]
    shared: BTreeMap<usize, SharedPage>,
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
            #[cfg(feature = "vfs")]
            shared: BTreeMap::new(),
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
                if self.shared_page(at) {
                    at = at - at % PAGE_SIZE + PAGE_SIZE;
                    continue;
                }
                return false;
            };
            let m = &self.maps[&start];
            let page = (at - start) / PAGE_SIZE;
            if !m.is_live(page) {
                return false;
            }
            at = start + (page + 1) * PAGE_SIZE;
        }
        true
    }

    /// Whether the page holding `addr` is a page of a shared file mapping.
    fn shared_page(&self, addr: usize) -> bool {
        #[cfg(feature = "vfs")]
        return self.shared.contains_key(&(addr - addr % PAGE_SIZE));
        #[cfg(not(feature = "vfs"))]
        {
            let _ = addr;
            false
        }
    }

    /// Whether something of this layer is mapped at `addr`.
    fn mapped_at(&self, addr: usize) -> bool {
        self.find(addr).is_some() || self.shared_page(addr)
    }

    /// The parts of `[addr, addr + bytes)` inside private mappings, as (start, length).
    fn private_runs(&self, addr: usize, bytes: usize) -> Vec<(usize, usize)> {
        let end = addr.saturating_add(bytes);
        self.maps
            .range(..end)
            .filter(|(s, m)| **s + m.pages * PAGE_SIZE > addr)
            .map(|(&s, m)| {
                let from = addr.max(s);
                (from, end.min(s + m.pages * PAGE_SIZE) - from)
            })
            .collect()
    }

    /// Bytes mapped now and the most mapped at once (private mappings and the break, as
    /// `RLIMIT_DATA` counts them, plus the pages of shared file mappings now).
    #[cfg(feature = "vfs")]
    pub(crate) fn mapped_bytes(&self) -> (u64, u64) {
        let shared = (self.shared.len() * PAGE_SIZE) as u64;
        (
            self.data as u64 + shared,
            self.data_peak.max(self.data) as u64 + shared,
        )
    }

    /// What is mapped, ascending by address, as `/proc/<pid>/maps` lists it: each stretch
    /// of mapped pages of a private mapping (its file's path, device, inode and offset for
    /// a file mapping), the break (`[heap]`), and runs of consecutive pages of shared file
    /// mappings of one file. A private mapping's pages say the rights `mprotect` gave them
    /// (`r--`, `---`) where the board could set them, `rw` elsewhere.
    #[cfg(feature = "vfs")]
    pub(crate) fn regions(&self) -> Vec<uk_vfs::MapEntry> {
        let line = |start: usize, end: usize, shared: bool| uk_vfs::MapEntry {
            start: start as u64,
            end: end as u64,
            read: true,
            write: true,
            exec: false,
            shared,
            ..uk_vfs::MapEntry::default()
        };
        let mut out = Vec::new();
        for (&start, m) in &self.maps {
            let (dev, ino) = m.file.as_ref().map_or((0, 0), |(node, _)| {
                let st = node.stat();
                (st.dev, st.ino)
            });
            let mut p = 0;
            while p < m.pages {
                if !m.is_live(p) {
                    p += 1;
                    continue;
                }
                let first = p;
                while p < m.pages && m.is_live(p) {
                    p += 1;
                }
                // One line per run of pages with the same rights.
                let (from, to) = (start + first * PAGE_SIZE, start + p * PAGE_SIZE);
                let mut pieces = Vec::new();
                let mut at = from;
                for (s, e, r) in protections(from, to - from) {
                    if at < s {
                        pieces.push((at, s, PageRights::ReadWrite));
                    }
                    pieces.push((s, e, r));
                    at = e;
                }
                if at < to {
                    pieces.push((at, to, PageRights::ReadWrite));
                }
                for (s, e, rights) in pieces {
                    let mut entry = line(s, e, false);
                    entry.read = rights != PageRights::None;
                    entry.write = rights == PageRights::ReadWrite;
                    if let Some((_, offset)) = &m.file {
                        entry.offset = offset + (s - start) as u64;
                        entry.dev = dev;
                        entry.ino = ino;
                        entry.name = m.name.as_deref().map(<[u8]>::to_vec).unwrap_or_default();
                    }
                    out.push(entry);
                }
            }
        }
        if let Some(b) = &self.brk
            && b.cur > b.base
        {
            let end = b.cur.div_ceil(PAGE_SIZE) * PAGE_SIZE;
            let mut e = line(b.base, end, false);
            e.name = b"[heap]".to_vec();
            out.push(e);
        }
        // Consecutive pages of one file at consecutive offsets make one line.
        let shared_line = |start: usize, end: usize, f: &MapFile| {
            let mut e = line(start, end, true);
            e.offset = f.offset;
            e.dev = f.dev;
            e.ino = f.ino;
            e.name = f.name.as_deref().map(<[u8]>::to_vec).unwrap_or_default();
            e
        };
        let mut run: Option<(usize, usize, &MapFile)> = None;
        for (&addr, page) in &self.shared {
            let f = &page.file;
            if let Some((start, end, first)) = &mut run
                && *end == addr
                && first.dev == f.dev
                && first.ino == f.ino
                && first.offset + (addr - *start) as u64 == f.offset
            {
                *end += PAGE_SIZE;
                continue;
            }
            if let Some((start, end, first)) = run.take() {
                out.push(shared_line(start, end, first));
            }
            run = Some((addr, addr + PAGE_SIZE, f));
        }
        if let Some((start, end, first)) = run {
            out.push(shared_line(start, end, first));
        }
        out.sort_by_key(|e| e.start);
        out
    }
}

/// Fills `buf` from `node` at `offset` until the end of file (the rest stays as it is).
#[cfg(feature = "vfs")]
fn read_file(node: &uk_vfs::VnodeRef, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.checked_add(done as u64).ok_or(Errno::EOVERFLOW)?;
        match node.read_at(at, &mut buf[done..], false)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(())
}

fn pages_for(len: usize) -> Option<usize> {
    len.checked_add(PAGE_SIZE - 1).map(|l| l / PAGE_SIZE)
}

/// The rights `prot` gives a page: writable ones are read-write (x86 and Arm have no
/// write-only pages), readable or executable ones read-only, `PROT_NONE` none.
fn rights_for(prot: u32) -> PageRights {
    if prot & PROT_WRITE != 0 {
        PageRights::ReadWrite
    } else if prot & (PROT_READ | PROT_EXEC) != 0 {
        PageRights::Read
    } else {
        PageRights::None
    }
}

/// Pages `[start, end)` with the same rights, as uk-syscall's record holds them.
type RightsRange = (usize, usize, PageRights);

/// The recorded ranges of `[start, start + len)` that are not read-write, clipped to it.
fn protections(start: usize, len: usize) -> Vec<RightsRange> {
    let mut found = Vec::new();
    protected_in(start, len, |s, e, r| found.push((s, e, r)));
    found
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

    /// mmap(2): anonymous memory (zeroed pages, placed by this layer), or with feature
    /// `vfs` a descriptor of the VFS ([`System::set_vfs`], else the image's): a private
    /// mapping of a file is a copy of it (fresh pages filled from `offset`, bytes past the
    /// end of file zero; later changes of the file do not show through), a shared mapping
    /// of a ramfs file is the file's own memory (coherent with `read` and `write` both
    /// ways, kept by the file after `munmap` and `close`), `/dev/zero` maps as anonymous
    /// memory. `MAP_FIXED` is honoured inside an existing private mapping of this layer
    /// (the range is zeroed again, or filled from the file).
    ///
    /// # Errors
    ///
    /// `EINVAL` (zero length, unknown prot or flags, neither or both of private/shared, an
    /// unaligned offset or fixed address), `EBADF`, `EACCES`, `EOVERFLOW` and `ENODEV`
    /// from the descriptor (uk-vfs's `Vfs::map_file`; `ENODEV` for any file without the
    /// `vfs` feature), a file's read error for a private file mapping, `ENOMEM` (no memory,
    /// `RLIMIT_DATA`, a fixed address outside this layer's private mappings, a shared file
    /// mapping at a fixed address, a shared mapping overlapping a live one of the same file
    /// laid out differently), `EEXIST` (`MAP_FIXED_NOREPLACE` over a mapping). Nothing
    /// changes on an error, but for a file's read error during a `MAP_FIXED` over existing
    /// memory, which leaves the range zeroed.
    pub fn mmap(
        &self,
        addr: usize,
        len: usize,
        prot: u32,
        flags: u32,
        fd: i32,
        offset: u64,
    ) -> Result<usize, Errno> {
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
        let pages = pages_for(len).ok_or(Errno::ENOMEM)?;
        let bytes = pages.checked_mul(PAGE_SIZE).ok_or(Errno::ENOMEM)?;
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let source = if flags & MAP_ANONYMOUS != 0 {
            Source::Anon
        } else {
            self.file_source(fd, offset, pages, kind != MAP_PRIVATE, fixed, prot)?
        };
        // The file's path for /proc/<pid>/maps, as its descriptor names it now.
        #[cfg(feature = "vfs")]
        let name: Option<Arc<[u8]>> = match source {
            Source::Anon => None,
            _ => self.vfs().fd_path(fd).ok().map(Arc::from),
        };
        let space = self.address_space();
        #[cfg(feature = "vfs")]
        if let Source::Shared(map) = source {
            let file = match self.vfs().fstat(fd) {
                Ok(st) => MapFile {
                    dev: st.dev,
                    ino: st.ino,
                    offset,
                    name,
                },
                Err(_) => MapFile {
                    dev: 0,
                    ino: 0,
                    offset,
                    name,
                },
            };
            return Ok(self.map_shared_pages(map, file));
        }
        if fixed {
            if addr % PAGE_SIZE != 0 {
                return Err(Errno::EINVAL);
            }
            let mm = self.mm.lock();
            let inside = mm
                .find(addr)
                .is_some_and(|(s, p)| addr + bytes <= s + p * PAGE_SIZE);
            if flags & MAP_FIXED_NOREPLACE != 0 {
                return Err(if mm.mapped_at(addr) {
                    Errno::EEXIST
                } else {
                    Errno::ENOMEM
                });
            }
            if !inside || !mm.covers(addr, bytes) {
                return Err(Errno::ENOMEM);
            }
            drop(mm);
            let before = self.unprotect(addr, bytes);
            let filled = UserSlice::new(addr, bytes)
                .fill(&space, 0)
                .and_then(|()| Self::fill_source(&source, &space, addr, bytes));
            if let Err(e) = filled {
                let _ = self.reprotect(&before, 0);
                return Err(e);
            }
            if let Err(e) = self.set_page_rights(addr, bytes, rights_for(prot)) {
                let _ = self.reprotect(&before, 0);
                return Err(e);
            }
            return Ok(addr);
        }
        // Reserve the bytes and take the pages, fill them without the lock (a file may be
        // slow to read), then publish the mapping.
        let ptr = {
            let mut mm = self.mm.lock();
            if !self.data_allows(&mm, bytes) {
                return Err(Errno::ENOMEM);
            }
            let ptr = self.pages().alloc_pages(pages).ok_or(Errno::ENOMEM)?;
            mm.data += bytes;
            mm.data_peak = mm.data_peak.max(mm.data);
            ptr
        };
        let start = ptr.as_ptr() as usize;
        let filled = match UserSlice::new(start, bytes).fill(&space, 0) {
            // Pages outside the checked space: a misconfigured page source.
            Err(_) => Err(Errno::ENOMEM),
            Ok(()) => Self::fill_source(&source, &space, start, bytes),
        };
        let filled = filled.and_then(|()| self.set_page_rights(start, bytes, rights_for(prot)));
        let mut mm = self.mm.lock();
        if let Err(e) = filled {
            mm.data -= bytes;
            drop(mm);
            // SAFETY: the run just allocated, never published, returned unused.
            unsafe { self.pages().free_pages(ptr, pages) };
            return Err(e);
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
                #[cfg(feature = "vfs")]
                file: match source {
                    Source::File(node, offset) => Some((node, offset)),
                    _ => None,
                },
                #[cfg(feature = "vfs")]
                name,
            },
        );
        Ok(start)
    }

    /// Where a mapping of descriptor `fd` comes from (see [`System::mmap`]).
    #[cfg(feature = "vfs")]
    fn file_source(
        &self,
        fd: i32,
        offset: u64,
        pages: usize,
        shared: bool,
        fixed: bool,
        prot: u32,
    ) -> Result<Source, Errno> {
        let vfs = self.vfs();
        let write = prot & PROT_WRITE != 0;
        if shared && fixed {
            // A shared file mapping is the file's memory, wherever that is: it cannot be
            // placed. Check the descriptor first (as Linux), then refuse, changing nothing.
            return match vfs.map_check(fd, offset, pages, shared, write)? {
                (_, uk_vfs::MapKind::Zero) => Ok(Source::Anon),
                _ => Err(Errno::ENOMEM),
            };
        }
        Ok(match vfs.map_file(fd, offset, pages, shared, write)? {
            uk_vfs::FileMap::Zero => Source::Anon,
            uk_vfs::FileMap::Private(node) => Source::File(node, offset),
            uk_vfs::FileMap::Shared(map) => Source::Shared(map),
        })
    }

    /// Without the VFS no descriptor can be mapped.
    #[cfg(not(feature = "vfs"))]
    fn file_source(
        &self,
        _fd: i32,
        _offset: u64,
        _pages: usize,
        _shared: bool,
        _fixed: bool,
        _prot: u32,
    ) -> Result<Source, Errno> {
        log::warn!("mmap of a file without the VFS: ENODEV");
        Err(Errno::ENODEV)
    }

    /// Fills `[start, start + bytes)` (zeroed) from a private file mapping's file.
    fn fill_source(
        source: &Source,
        space: &uk_syscall::user::AddressSpace,
        start: usize,
        bytes: usize,
    ) -> Result<(), Errno> {
        match source {
            #[cfg(feature = "vfs")]
            Source::File(node, offset) => UserSlice::new(start, bytes)
                .with_mut(space, |b| read_file(node, *offset, b))
                .and_then(|r| r),
            _ => {
                let _ = (space, start, bytes);
                Ok(())
            }
        }
    }

    /// Records a shared file mapping page by page; returns its address.
    #[cfg(feature = "vfs")]
    fn map_shared_pages(&self, map: uk_vfs::SharedMap, file: MapFile) -> usize {
        let start = map.addr();
        let mut mm = self.mm.lock();
        for (k, page) in map.split().into_iter().enumerate() {
            match mm.shared.entry(start + k * PAGE_SIZE) {
                alloc::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().count += 1,
                alloc::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(SharedPage {
                        count: 1,
                        _map: page,
                        file: MapFile {
                            offset: file.offset + (k * PAGE_SIZE) as u64,
                            ..file.clone()
                        },
                    });
                }
            }
        }
        start
    }

    /// munmap(2): unmaps the pages of `[addr, addr + len)` that this layer mapped. Pages of
    /// a private mapping go back to the page source at once and stop counting against
    /// `RLIMIT_DATA`, as on Linux: the whole run when none of its pages stays mapped, else
    /// the unmapped stretch around the range (with pages unmapped before next to it) through
    /// [`crate::PageSource::free_part`], and the mapped pages before and after it stay as
    /// mappings of their own (a private file mapping's keep their file offsets). A source
    /// that cannot free part of a run (the hosted default, [`crate::HeapPages`]) keeps the
    /// unmapped pages, still counted, until the run's last page is unmapped. A page of
    /// shared file mappings loses one of the mappings that cover it; its memory stays the
    /// file's (and is freed with the file unless another mapping still covers it). Pages
    /// of no mapping are ignored (as Linux), so unmapping a range again does nothing.
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
        // Pages go back to the page source read-write.
        let runs = self.mm.lock().private_runs(addr, end - addr);
        for (start, n) in runs {
            self.unprotect(start, n);
        }
        let mut freed = Vec::new();
        #[cfg(feature = "vfs")]
        let mut unshared = Vec::new();
        {
            let mut mm = self.mm.lock();
            #[cfg(feature = "vfs")]
            {
                let pages: Vec<usize> = mm.shared.range(addr..end).map(|(a, _)| *a).collect();
                for page in pages {
                    if let alloc::collections::btree_map::Entry::Occupied(mut e) =
                        mm.shared.entry(page)
                    {
                        e.get_mut().count -= 1;
                        if e.get().count == 0 {
                            unshared.push(e.remove());
                        }
                    }
                }
            }
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
                // `start < end` and the mapping ends past `addr`: `first < last`.
                let first = addr.saturating_sub(start) / PAGE_SIZE;
                let last = ((end - start) / PAGE_SIZE).min(m.pages);
                for p in first..last {
                    m.unmap(p);
                }
                if m.live_count == 0 {
                    let pages = m.pages;
                    mm.maps.remove(&start);
                    mm.data -= pages * PAGE_SIZE;
                    freed.push((start, pages));
                    continue;
                }
                // The unmapped stretch around the range, with pages unmapped earlier (whose
                // source would not take them then) next to it; some page stays mapped, so
                // it is not the whole run.
                let (mut lo, mut hi) = (first, last);
                while lo > 0 && !m.is_live(lo - 1) {
                    lo -= 1;
                }
                while hi < m.pages && !m.is_live(hi) {
                    hi += 1;
                }
                let (Some(run), Some(part)) = (
                    NonNull::new(start as *mut u8),
                    NonNull::new((start + lo * PAGE_SIZE) as *mut u8),
                ) else {
                    continue;
                };
                // SAFETY: the mapping is exactly a live run of the page source (see
                // `Mapping`) and `lo..hi` is a non-empty range of its pages. Under the lock,
                // so the table and the source agree on what the run is.
                if unsafe { self.pages().free_part(run, m.pages, part, hi - lo) } {
                    let head = (lo > 0).then(|| m.piece(0, lo));
                    let tail = (hi < m.pages).then(|| m.piece(hi, m.pages));
                    mm.maps.remove(&start);
                    if let Some(head) = head {
                        mm.maps.insert(start, head);
                    }
                    if let Some(tail) = tail {
                        mm.maps.insert(start + hi * PAGE_SIZE, tail);
                    }
                    mm.data -= (hi - lo) * PAGE_SIZE;
                }
            }
        }
        #[cfg(feature = "vfs")]
        drop(unshared);
        for (start, pages) in freed {
            if let Some(ptr) = NonNull::new(start as *mut u8) {
                // SAFETY: `start`/`pages` are exactly a run from `alloc_pages`, removed
                // from the table above, so it is freed once.
                unsafe { self.pages().free_pages(ptr, pages) };
            }
        }
        Ok(())
    }

    /// mremap(2) of a mapping of this layer: shrinking unmaps the tail and keeps the
    /// address (the tail's pages go back to the page source at once, and stop counting
    /// against `RLIMIT_DATA`, when it can free part of a run: see [`System::munmap`]);
    /// growing needs `MREMAP_MAYMOVE` (nothing can be added in place: pages come
    /// from the page allocator as whole runs), and then moves the contents to a new
    /// anonymous private mapping and unmaps the old range. That is what musl's `realloc`
    /// asks for its large blocks. A moved private file mapping becomes anonymous memory
    /// (`MADV_DONTNEED` then zeroes it instead of reading the file again), and while it
    /// moves the old and new ranges both count against `RLIMIT_DATA` (Linux counts only the
    /// growth).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned `old`, unknown flags, a zero length (Linux's duplicate of
    /// a shared mapping with `old_len` 0 is not offered), `MREMAP_FIXED` or
    /// `MREMAP_DONTUNMAP` (this layer cannot place a mapping at a chosen address or keep
    /// the old one in place), a length past the address space; `EFAULT` when the old range
    /// is not live pages of one mapping of this layer; `ENOMEM` when it must grow without
    /// `MREMAP_MAYMOVE`, when a shared file mapping must grow (it cannot move apart from
    /// its file's memory), or as [`System::mmap`]. A refused call changes nothing.
    pub fn mremap(
        &self,
        old: usize,
        old_len: usize,
        new_len: usize,
        flags: u32,
        _new_addr: usize,
    ) -> Result<usize, Errno> {
        // Unknown flags, and the two this layer refuses (FIXED, DONTUNMAP): EINVAL.
        if old % PAGE_SIZE != 0 || flags & !MREMAP_MAYMOVE != 0 {
            return Err(Errno::EINVAL);
        }
        let bytes_of = |len: usize| {
            pages_for(len)
                .filter(|&p| p > 0)
                .and_then(|p| p.checked_mul(PAGE_SIZE))
                .ok_or(Errno::EINVAL)
        };
        let (old_bytes, new_bytes) = (bytes_of(old_len)?, bytes_of(new_len)?);
        old.checked_add(old_bytes).ok_or(Errno::EINVAL)?;
        let shared = {
            let mm = self.mm.lock();
            let in_one_mapping = mm
                .find(old)
                .is_some_and(|(start, pages)| old + old_bytes <= start + pages * PAGE_SIZE);
            let shared = !in_one_mapping
                && (0..old_bytes / PAGE_SIZE).all(|i| mm.shared_page(old + i * PAGE_SIZE));
            if !(in_one_mapping || shared) || !mm.covers(old, old_bytes) {
                return Err(Errno::EFAULT);
            }
            shared
        };
        if new_bytes <= old_bytes {
            if new_bytes < old_bytes {
                self.munmap(old + new_bytes, old_bytes - new_bytes)?;
            }
            return Ok(old);
        }
        if flags & MREMAP_MAYMOVE == 0 || shared {
            return Err(Errno::ENOMEM);
        }
        let new = self.mmap(
            0,
            new_bytes,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )?;
        let space = self.address_space();
        // The pages move with their rights (read-write while copied); the growth gets the
        // rights of the last page, as Linux extends the last mapping.
        let before = self.unprotect(old, old_bytes);
        let copied = UserSlice::new(old, old_bytes)
            .bytes(&space)
            .and_then(|from| UserSlice::new(new, old_bytes).write(&space, from))
            .and_then(|_| self.reprotect(&before, new.wrapping_sub(old)))
            .and_then(|()| match before.last() {
                Some(&(_, e, r)) if e == old + old_bytes => {
                    self.set_page_rights(new + old_bytes, new_bytes - old_bytes, r)
                }
                _ => Ok(()),
            });
        if let Err(e) = copied {
            self.munmap(new, new_bytes)?;
            let _ = self.reprotect(&before, 0);
            return Err(e);
        }
        self.munmap(old, old_bytes)?;
        Ok(new)
    }

    /// mprotect(2): pages of private mappings get the rights `prot` asks for, when the page
    /// source can set them (a booted image whose board implements uk-hal's
    /// `PageProtection`): `PROT_NONE` pages fault on any access, `PROT_READ` ones on writes,
    /// and a system call naming them gets `EFAULT` for what they do not allow. The break,
    /// shared file mappings (the file's own pages, which another mapping may share) and the
    /// image and its RAM only have the arguments checked, and stay readable and writable;
    /// so does everything when the source cannot set rights (a hosted build).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned address or unknown prot bits, `ENOMEM` for a range that is
    /// not mapped (neither this layer's mappings or break, nor the image and its RAM), or
    /// when the rights need memory (a page table, or more than uk-syscall's
    /// `MAX_PROTECTED_RANGES` protected ranges). Nothing changes on an error.
    pub fn mprotect(&self, addr: usize, len: usize, prot: u32) -> Result<(), Errno> {
        if addr % PAGE_SIZE != 0 || prot & !(PROT_KNOWN | 0x0100_0000 | 0x0200_0000) != 0 {
            return Err(Errno::EINVAL);
        }
        self.check_mapped(addr, len)?;
        if len == 0 {
            return Ok(());
        }
        let bytes = pages_for(len).ok_or(Errno::ENOMEM)? * PAGE_SIZE;
        let parts = self.mm.lock().private_runs(addr, bytes);
        let rights = rights_for(prot);
        let mut done: Vec<(usize, usize, Vec<RightsRange>)> = Vec::new();
        for (start, n) in parts {
            let before = protections(start, n);
            if let Err(e) = self.set_page_rights(start, n, rights) {
                for (start, n, before) in done.into_iter().rev() {
                    self.restore_page_rights(start, n, &before);
                }
                return Err(e);
            }
            done.push((start, n, before));
        }
        Ok(())
    }

    /// Gives the pages `[start, start + len)` of private mappings `rights`: in the record
    /// system calls check (uk-syscall's `set_rights`) and in hardware, through the page
    /// source. Rights taken away are recorded before the hardware changes, rights given
    /// back after, so a system call never touches a page the hardware refuses. When the
    /// source cannot set rights, nothing changes and this succeeds (the protection is only
    /// accepted). All or nothing.
    fn set_page_rights(&self, start: usize, len: usize, rights: PageRights) -> Result<(), Errno> {
        let Some(ptr) = NonNull::new(start as *mut u8) else {
            return Err(Errno::ENOMEM);
        };
        let before = protections(start, len);
        if rights == PageRights::ReadWrite {
            if before.is_empty() {
                return Ok(());
            }
            // SAFETY: pages of private mappings of this layer (the caller's runs), given
            // back read-write.
            unsafe { self.pages().set_rights(ptr, len, rights) }?;
            return set_rights(start, len, rights).inspect_err(|_| {
                // SAFETY: as above; the pages get back exactly the rights they had.
                unsafe { self.put_back_hardware(start, len, &before) };
            });
        }
        set_rights(start, len, rights)?;
        // SAFETY: pages of private mappings of this layer, which give them back read-write
        // before freeing them (`munmap`, `mremap`).
        match unsafe { self.pages().set_rights(ptr, len, rights) } {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.put_back_record(start, len, &before);
                Ok(())
            }
            Err(e) => {
                self.put_back_record(start, len, &before);
                Err(e)
            }
        }
    }

    /// Gives `[start, start + len)` back the rights `before` (what [`protections`] said of
    /// it), in hardware and in the record: undoing a change that succeeded.
    fn restore_page_rights(&self, start: usize, len: usize, before: &[RightsRange]) {
        // SAFETY: the pages were changed by `set_page_rights` a moment ago: pages of private
        // mappings of this layer, which get back the rights they had.
        unsafe { self.put_back_hardware(start, len, before) };
        self.put_back_record(start, len, before);
    }

    /// Sets the record of `[start, start + len)` back to `before`.
    fn put_back_record(&self, start: usize, len: usize, before: &[RightsRange]) {
        let restored = set_rights(start, len, PageRights::ReadWrite).and_then(|()| {
            before
                .iter()
                .try_for_each(|&(s, e, r)| set_rights(s, e - s, r))
        });
        if let Err(e) = restored {
            // It held these ranges a moment ago; only a concurrent change could fill it.
            log::error!("uk-posix-process: page rights record at {start:#x}+{len:#x}: {e}");
        }
    }

    /// Sets the hardware rights of `[start, start + len)` back to `before`.
    ///
    /// # Safety
    ///
    /// As [`crate::PageSource::set_rights`]: pages of private mappings of this layer.
    unsafe fn put_back_hardware(&self, start: usize, len: usize, before: &[RightsRange]) {
        let pieces = core::iter::once((start, start + len, PageRights::ReadWrite))
            .chain(before.iter().copied());
        for (s, e, r) in pieces {
            if let Some(ptr) = NonNull::new(s as *mut u8) {
                // SAFETY: forwarded contract. The pages' tables exist already (they were
                // changed before), so this needs no memory and cannot fail.
                if let Err(e) = unsafe { self.pages().set_rights(ptr, e - s, r) } {
                    log::error!("uk-posix-process: page rights at {s:#x}: {e}");
                }
            }
        }
    }

    /// Gives every protected page of `[start, start + len)` back read-write (in hardware,
    /// then in the record): before its pages are freed, filled or copied by this layer.
    /// Returns what was there, for [`System::reprotect`].
    fn unprotect(&self, start: usize, len: usize) -> Vec<RightsRange> {
        let before = protections(start, len);
        for &(s, e, _) in &before {
            if self
                .set_page_rights(s, e - s, PageRights::ReadWrite)
                .is_ok()
            {
                continue;
            }
            // Giving rights back needs no page table; only a full record refuses, when it
            // would have to split a range. These pages must become read-write all the same
            // (they may go back to the page source), so the whole recorded ranges around
            // them do: the neighbours lose their protection rather than have the kernel
            // fault on a page the record calls read-write.
            if let Some((first, last)) = protected_extent(s, e - s)
                && let Some(ptr) = NonNull::new(first as *mut u8)
            {
                log::error!(
                    "uk-posix-process: page rights record full: {first:#x}..{last:#x} made \
                     read-write whole to unprotect {s:#x}..{e:#x}"
                );
                // SAFETY: recorded pages are pages of private mappings of this layer, given
                // back read-write; their tables exist, so this needs no memory.
                let _ = unsafe {
                    self.pages()
                        .set_rights(ptr, last - first, PageRights::ReadWrite)
                };
                forget_rights(first, last - first);
            }
        }
        before
    }

    /// Protects again, `offset` bytes further on, what [`System::unprotect`] returned.
    fn reprotect(&self, ranges: &[RightsRange], offset: usize) -> Result<(), Errno> {
        for &(s, e, r) in ranges {
            self.set_page_rights(s.wrapping_add(offset), e - s, r)?;
        }
        Ok(())
    }

    /// madvise(2): every advice Linux knows is a hint this layer may ignore (memory is
    /// never paged out here), except `MADV_DONTNEED`, after which Linux reads private
    /// anonymous pages as zero: those are zeroed (musl's allocator gives freed pages back
    /// this way), pages of a private file mapping read the file again (from the file and
    /// offset the mapping was made with, also where a `MAP_FIXED` file mapping was placed
    /// over it), and shared file mappings keep their contents (they are the file's).
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
            let space = self.address_space();
            for (at, n, source) in self.private_parts(addr, bytes) {
                // Linux drops the pages whatever their rights: write them read-write.
                let before = self.unprotect(at, n);
                let filled = UserSlice::new(at, n)
                    .fill(&space, 0)
                    .and_then(|()| Self::fill_source(&source, &space, at, n));
                self.reprotect(&before, 0)?;
                filled?;
            }
        }
        Ok(())
    }

    /// The private parts of `[addr, addr + bytes)` (the break, private mappings) as
    /// (start, length, what they are filled from).
    fn private_parts(&self, addr: usize, bytes: usize) -> Vec<(usize, usize, Source)> {
        let mm = self.mm.lock();
        let end = addr + bytes;
        if let Some(b) = &mm.brk
            && addr >= b.base
            && end <= b.cur
        {
            return vec![(addr, bytes, Source::Anon)];
        }
        mm.maps
            .range(..end)
            .filter(|(s, m)| **s + m.pages * PAGE_SIZE > addr)
            .map(|(&s, m)| {
                let from = addr.max(s);
                let to = end.min(s + m.pages * PAGE_SIZE);
                #[cfg(feature = "vfs")]
                let source = match &m.file {
                    Some((node, offset)) => Source::File(node.clone(), offset + (from - s) as u64),
                    None => Source::Anon,
                };
                #[cfg(not(feature = "vfs"))]
                let source = Source::Anon;
                (from, to - from, source)
            })
            .collect()
    }

    /// msync(2): mappings here are coherent with their files already (a shared mapping is
    /// the file's memory, a private one is nobody else's), so this only checks.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a misaligned `addr`, unknown flags or both `MS_ASYNC` and `MS_SYNC`;
    /// `ENOMEM` for a range that is not mapped (as `mprotect`).
    pub fn msync(&self, addr: usize, len: usize, flags: u32) -> Result<(), Errno> {
        if addr % PAGE_SIZE != 0
            || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
            || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
        {
            return Err(Errno::EINVAL);
        }
        self.check_mapped(addr, len)
    }

    /// Whether a mapping of this layer (private or shared) holds `addr`.
    pub(crate) fn is_mapped(&self, addr: usize) -> bool {
        self.mm.lock().mapped_at(addr)
    }

    /// `Ok` when `addr..addr + len` (whole pages; nothing for 0) is mapped: by this layer's
    /// mappings or break, or as the image and its RAM; `ENOMEM` otherwise (what `mprotect`
    /// and `msync` say of an unmapped range).
    pub(crate) fn check_mapped(&self, addr: usize, len: usize) -> Result<(), Errno> {
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
