//! What `mmap` of a descriptor needs from the VFS: [`Vfs::map_file`] checks the descriptor
//! as Linux's `do_mmap` does and says how to map it ([`FileMap`]).
//!
//! - **Private mappings** ([`FileMap::Private`]) are copies: the process layer fills
//!   anonymous pages from the node ([`Vnode::read_at`](crate::Vnode::read_at)), so any
//!   filesystem whose regular files can be read is mappable (ramfs, 9pfs, the initrd's
//!   files). Later changes of the file do not show through a private mapping (POSIX leaves
//!   it unspecified).
//! - **`/dev/zero`** maps as anonymous memory ([`FileMap::Zero`]), shared or private, as on
//!   Linux (one address space and no `fork`: shared anonymous memory is anonymous memory).
//! - **Shared mappings** ([`FileMap::Shared`]) are the file's own memory: the node hands
//!   out a [`SharedMap`] of page-aligned, contiguous pages that its reads and writes use
//!   too, so a store through the mapping is seen by `read` and a `write` through the
//!   mapping at once. ramfs does this ([`Vnode::map_shared`](crate::Vnode::map_shared));
//!   other filesystems refuse with `ENODEV`.
//!
//! A shared mapping is a run: one page-aligned allocation of whole pages, refcounted
//! by the file's page table (one reference per page it holds) and by each [`SharedMap`].
//! The memory goes back to the allocator when the last of them goes, so truncating or
//! unlinking a mapped file never frees memory that is still mapped.
#![allow(unsafe_code)]

use alloc::sync::Arc;
use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::Errno;
use crate::file::Object;
use crate::types::{F_SEAL_FUTURE_WRITE, F_SEAL_WRITE, O_PATH};
use crate::vfs::Vfs;
use crate::vnode::VnodeRef;

/// Page size of mappings.
pub const MAP_PAGE: usize = 4096;

/// Largest file offset a mapping may reach (Linux's `MAX_LFS_FILESIZE`).
const MAX_MAP_END: u64 = i64::MAX as u64;

/// How `mmap` maps a node ([`Vnode::map_kind`](crate::Vnode::map_kind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// Not mappable (`ENODEV`): directories, pipes, most devices.
    Unmappable,
    /// A file: private mappings copy it, shared ones ask
    /// [`Vnode::map_shared`](crate::Vnode::map_shared).
    File,
    /// Anonymous zeroed memory (`/dev/zero`).
    Zero,
}

/// How to map a descriptor, as [`Vfs::map_file`] decided.
pub enum FileMap {
    /// Anonymous zeroed memory (`/dev/zero`).
    Zero,
    /// A private copy: fill fresh pages from this node at the mapping's offset (bytes past
    /// the end of file read as zeros).
    Private(VnodeRef),
    /// The file's own pages.
    Shared(SharedMap),
}

impl core::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileMap::Zero => f.write_str("Zero"),
            FileMap::Private(_) => f.write_str("Private"),
            FileMap::Shared(m) => m.fmt(f),
        }
    }
}

/// A run of page-aligned, contiguous, zero-initialised pages that a file and its shared
/// mappings share. Its memory is only ever reached through raw pointers (never through a
/// Rust reference), since the mapping's users write it at any time.
pub(crate) struct Run {
    base: NonNull<u8>,
    pages: usize,
    /// Live [`SharedMap`]s of this run.
    maps: AtomicUsize,
}

// SAFETY: the run owns its allocation; every access goes through raw-pointer copies of
// checked spans, so sharing it between threads hands out no references.
unsafe impl Send for Run {}
// SAFETY: as above.
unsafe impl Sync for Run {}

fn run_layout(pages: usize) -> Option<Layout> {
    let size = pages.checked_mul(MAP_PAGE)?;
    if size == 0 {
        return None;
    }
    Layout::from_size_align(size, MAP_PAGE).ok()
}

impl Run {
    /// `pages` zeroed pages, or `ENOMEM`.
    pub(crate) fn new(pages: usize) -> Result<Arc<Run>, Errno> {
        let layout = run_layout(pages).ok_or(Errno::ENOMEM)?;
        // SAFETY: the layout has a non-zero size.
        let base =
            NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) }).ok_or(Errno::ENOMEM)?;
        Ok(Arc::new(Run {
            base,
            pages,
            maps: AtomicUsize::new(0),
        }))
    }

    /// Pages in the run.
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Whether a [`SharedMap`] of the run is alive.
    pub(crate) fn mapped(&self) -> bool {
        self.maps.load(Ordering::Acquire) != 0
    }

    /// The address of `len` bytes at `within` of page `page`, if they lie in the run.
    fn span(&self, page: usize, within: usize, len: usize) -> Option<*mut u8> {
        let end = within.checked_add(len)?;
        if page >= self.pages || end > MAP_PAGE {
            return None;
        }
        // SAFETY: `page * MAP_PAGE + within` is inside the allocation (checked above), so
        // the offset stays in bounds.
        Some(unsafe { self.base.as_ptr().add(page * MAP_PAGE + within) })
    }

    /// Copies bytes of page `page` from `within` into `dst` (nothing outside the run).
    pub(crate) fn read(&self, page: usize, within: usize, dst: &mut [u8]) {
        if let Some(src) = self.span(page, within, dst.len()) {
            // SAFETY: `src` is valid for `dst.len()` bytes of the run's allocation (checked
            // by `span`), which lives as long as `self`; `dst` is a distinct Rust buffer.
            unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        }
    }

    /// Copies `src` into page `page` from `within` (nothing outside the run).
    pub(crate) fn write(&self, page: usize, within: usize, src: &[u8]) {
        if let Some(dst) = self.span(page, within, src.len()) {
            // SAFETY: as in `read`, the other way round.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        }
    }

    /// Copies page `page` of this run over page `to_page` of `to` (nothing if either
    /// page lies outside its run or both are the same page).
    pub(crate) fn copy_page_to(&self, page: usize, to: &Run, to_page: usize) {
        let (Some(src), Some(dst)) = (self.span(page, 0, MAP_PAGE), to.span(to_page, 0, MAP_PAGE))
        else {
            return;
        };
        if src == dst {
            return;
        }
        // SAFETY: both spans are whole pages of live allocations (checked by `span`); two
        // different pages of page-aligned runs never overlap.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, MAP_PAGE) };
    }

    /// Zeroes bytes `[from, to)` of page `page` (nothing outside the run).
    pub(crate) fn zero(&self, page: usize, from: usize, to: usize) {
        if let Some(dst) = self.span(page, from, to.saturating_sub(from)) {
            // SAFETY: `span` checked the bytes lie in the run's allocation.
            unsafe { core::ptr::write_bytes(dst, 0, to - from) };
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(layout) = run_layout(self.pages) {
            // SAFETY: allocated in `Run::new` with this layout; the last reference is gone,
            // so no file page and no mapping uses it any more.
            unsafe { alloc::alloc::dealloc(self.base.as_ptr(), layout) };
        }
    }
}

/// A live shared mapping of a file: `pages` contiguous page-aligned pages at
/// [`SharedMap::addr`], the same memory the file's reads and writes use. The memory stays
/// valid until this is dropped (the `munmap` of the mapping's last page), whatever happens
/// to the file meanwhile.
pub struct SharedMap {
    run: Arc<Run>,
    first: usize,
    pages: usize,
}

impl SharedMap {
    /// A mapping of pages `[first, first + pages)` of `run` (checked by the caller).
    pub(crate) fn new(run: &Arc<Run>, first: usize, pages: usize) -> Option<SharedMap> {
        if pages == 0 || first.checked_add(pages)? > run.pages() {
            return None;
        }
        run.maps.fetch_add(1, Ordering::AcqRel);
        Some(SharedMap {
            run: run.clone(),
            first,
            pages,
        })
    }

    /// The mapping as one mapping per page, in order (a caller that unmaps page by page
    /// keeps each page's memory alive exactly as long as it keeps its part).
    pub fn split(self) -> alloc::vec::Vec<SharedMap> {
        (0..self.pages)
            .filter_map(|k| SharedMap::new(&self.run, self.first + k, 1))
            .collect()
    }

    /// The page-aligned address of the mapping's first byte.
    pub fn addr(&self) -> usize {
        self.run.base.as_ptr() as usize + self.first * MAP_PAGE
    }

    /// The mapping's length in pages.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

impl core::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedMap")
            .field("addr", &self.addr())
            .field("pages", &self.pages)
            .finish()
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        self.run.maps.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Vfs {
    /// The VFS half of `mmap(addr, pages * 4096, prot, flags, fd, offset)` without
    /// `MAP_ANONYMOUS`: checks `fd` in the order Linux's `do_mmap` does and says how to map
    /// it. `shared` is `MAP_SHARED`/`MAP_SHARED_VALIDATE`, `write` is `PROT_WRITE`; the
    /// caller has checked the flags, the length and the offset's alignment.
    ///
    /// # Errors
    ///
    /// `EBADF` (`fd` not open, or an `O_PATH` descriptor), `EOVERFLOW` (the mapping would
    /// reach past the largest file offset), `EACCES` (a shared writable mapping of a
    /// descriptor not open for writing, or any mapping of one not open for reading),
    /// `EPERM` (a shared writable mapping of a file sealed with `F_SEAL_WRITE` or
    /// `F_SEAL_FUTURE_WRITE`),
    /// `ENODEV` (pipes, eventfds, epoll sets, directories, devices other than `/dev/zero`,
    /// and shared mappings on filesystems other than ramfs), `ENOMEM` (a shared mapping's
    /// memory, see [`Vnode::map_shared`](crate::Vnode::map_shared)). Nothing changes on an
    /// error.
    pub fn map_file(
        &self,
        fd: crate::Fd,
        offset: u64,
        pages: usize,
        shared: bool,
        write: bool,
    ) -> Result<FileMap, Errno> {
        let (node, kind) = self.map_check(fd, offset, pages, shared, write)?;
        match kind {
            MapKind::Unmappable => Err(Errno::ENODEV),
            MapKind::Zero => Ok(FileMap::Zero),
            MapKind::File if shared => node
                .map_shared(offset / MAP_PAGE as u64, pages)
                .map(FileMap::Shared),
            MapKind::File => Ok(FileMap::Private(node)),
        }
    }

    /// [`Vfs::map_file`]'s checks alone, changing nothing: the node and how it maps
    /// (never [`MapKind::Unmappable`]).
    ///
    /// # Errors
    ///
    /// As [`Vfs::map_file`], but no `ENODEV` for a shared mapping of a file whose
    /// filesystem cannot share its pages and no `ENOMEM` (nothing is allocated).
    pub fn map_check(
        &self,
        fd: crate::Fd,
        offset: u64,
        pages: usize,
        shared: bool,
        write: bool,
    ) -> Result<(VnodeRef, MapKind), Errno> {
        let f = self.file(fd)?;
        if f.flags() & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        let len = (pages as u64)
            .checked_mul(MAP_PAGE as u64)
            .ok_or(Errno::EOVERFLOW)?;
        if offset.checked_add(len).is_none_or(|end| end > MAX_MAP_END) {
            return Err(Errno::EOVERFLOW);
        }
        if shared && write && !f.writable() {
            return Err(Errno::EACCES);
        }
        if !f.readable() {
            return Err(Errno::EACCES);
        }
        let node = match &f.object {
            Object::Node(n) => n.clone(),
            _ => return Err(Errno::ENODEV),
        };
        // A file sealed against writes (a memfd) takes no new shared writable mapping.
        if shared
            && write
            && node
                .seals()
                .is_ok_and(|s| s & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0)
        {
            return Err(Errno::EPERM);
        }
        match node.map_kind() {
            MapKind::Unmappable => Err(Errno::ENODEV),
            kind => Ok((node, kind)),
        }
    }
}
