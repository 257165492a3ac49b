//! What the process layer needs from its surroundings, as small seams: a scheduler to put
//! threads into ([`ThreadHost`]), pages for anonymous memory ([`PageSource`]), and a few
//! plain function hooks (machine exit, the allocator's byte limit).
#![allow(unsafe_code)]

use alloc::boxed::Box;
use core::alloc::Layout;
use core::ptr::NonNull;

use uk_context::ContextOps;
use uk_hal::Clock;
use uk_sched::{RoundRobin, SchedError, Scheduler, ThreadBuilder, ThreadRef};
use uk_syscall::Errno;
use uk_syscall::user::PageRights;

/// The scheduler threads of the process layer live in. Object-safe, so the layer does not
/// name the scheduler's type parameters; [`RoundRobin`] implements it.
pub trait ThreadHost {
    /// Creates a thread from `builder` running `entry` (not yet scheduled).
    ///
    /// # Errors
    ///
    /// As [`ThreadBuilder::create`].
    fn create(
        &self,
        builder: ThreadBuilder,
        entry: Box<dyn FnOnce()>,
    ) -> Result<ThreadRef, SchedError>;
    /// Schedules a created thread.
    ///
    /// # Errors
    ///
    /// As [`Scheduler::add`].
    fn add(&self, thread: &ThreadRef) -> Result<(), SchedError>;
    /// Takes a thread out of the scheduler for good (exit_group of its process).
    ///
    /// # Errors
    ///
    /// As [`Scheduler::remove`].
    fn remove(&self, thread: &ThreadRef) -> Result<(), SchedError>;
    /// The scheduler clock in nanoseconds (the clock futex and sleep deadlines use).
    fn now_ns(&self) -> u64;
    /// The thread pointer installed in the CPU now (the caller's TLS).
    fn thread_pointer(&self) -> usize;
    /// Installs `tp` as the CPU's thread pointer now (`arch_prctl(ARCH_SET_FS)`; the
    /// running thread keeps it through [`uk_sched::Thread::set_thread_pointer`]).
    ///
    /// # Safety
    ///
    /// Code running afterwards that uses TLS reads through `tp`: it must be the address its
    /// TLS layout expects, or only code that asked for it may use TLS.
    unsafe fn set_thread_pointer(&self, tp: usize);
}

impl<C: ContextOps + Clone + 'static, K: Clock + 'static> ThreadHost for RoundRobin<C, K> {
    fn create(
        &self,
        builder: ThreadBuilder,
        entry: Box<dyn FnOnce()>,
    ) -> Result<ThreadRef, SchedError> {
        builder.create(self.ops(), entry)
    }

    fn add(&self, thread: &ThreadRef) -> Result<(), SchedError> {
        Scheduler::add(self, thread)
    }

    fn remove(&self, thread: &ThreadRef) -> Result<(), SchedError> {
        Scheduler::remove(self, thread)
    }

    fn now_ns(&self) -> u64 {
        Scheduler::now(self)
    }

    fn thread_pointer(&self) -> usize {
        self.ops().thread_pointer()
    }

    unsafe fn set_thread_pointer(&self, tp: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.ops().set_thread_pointer(tp) }
    }
}

/// Where anonymous memory (mmap, brk) comes from: runs of whole pages.
pub trait PageSource {
    /// `pages` contiguous pages aligned to 4 KiB, or `None`.
    fn alloc_pages(&self, pages: usize) -> Option<NonNull<u8>>;
    /// Returns a run `alloc_pages` gave.
    ///
    /// # Safety
    ///
    /// `ptr` and `pages` are exactly those of a live run from this source.
    unsafe fn free_pages(&self, ptr: NonNull<u8>, pages: usize);
    /// Returns `part_pages` pages at `part`, a part of the live run of `run_pages` pages at
    /// `run`, if this source can free part of a run; returns whether it did (`munmap` of
    /// part of a private mapping gives its pages back at once this way).
    ///
    /// On `true` the part is the source's again, and the pages before it and after it
    /// (either may be none) are live runs of their own, each returned later with its own
    /// pointer and count (by [`PageSource::free_pages`], or in parts again). On `false`
    /// nothing changed: the run is still live whole. The default returns `false`, for
    /// sources that only take whole runs back.
    ///
    /// # Safety
    ///
    /// `run` and `run_pages` are exactly those of a live run from this source (one
    /// `alloc_pages` gave, or a piece an earlier `free_part` left), and `part` and
    /// `part_pages` name a non-empty, page-aligned range inside it.
    unsafe fn free_part(
        &self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> bool {
        let _ = (run, run_pages, part, part_pages);
        false
    }
    /// The memory this source's pages come from, in bytes: (all of it, what is free now),
    /// as `sysinfo` reports them (`totalram`, `freeram`); `None` (the default) when the
    /// source cannot tell, and `sysinfo` then reports 0 for both.
    fn memory(&self) -> Option<(usize, usize)> {
        None
    }
    /// Gives the `len` bytes of pages at `start`, part of live runs of this source, the
    /// rights `rights` in hardware (`mmap`'s and `mprotect`'s `prot`); returns whether it
    /// did. `Ok(false)`, the default, says the source cannot: the pages stay readable and
    /// writable and the protection is only accepted, as it was before boards could set it.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the hardware needs memory it cannot get (a page table); nothing
    /// changed then.
    ///
    /// # Safety
    ///
    /// `start` and `len` are page-aligned and lie in live runs of this source, which the
    /// caller owns; it gives them back [`PageRights::ReadWrite`] before they are freed.
    unsafe fn set_rights(
        &self,
        start: NonNull<u8>,
        len: usize,
        rights: PageRights,
    ) -> Result<bool, Errno> {
        let _ = (start, len, rights);
        Ok(false)
    }
}

/// Pages from the global allocator (`alloc::alloc`), page-aligned: the default of a hosted
/// build and usable anywhere a global allocator exists. A run goes back whole only
/// (`dealloc` takes the layout it was allocated with): [`PageSource::free_part`] keeps the
/// default, `false`.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeapPages;

fn page_layout(pages: usize) -> Option<Layout> {
    let size = pages.checked_mul(crate::PAGE_SIZE)?;
    if size == 0 {
        return None;
    }
    Layout::from_size_align(size, crate::PAGE_SIZE).ok()
}

impl PageSource for HeapPages {
    fn alloc_pages(&self, pages: usize) -> Option<NonNull<u8>> {
        let layout = page_layout(pages)?;
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { alloc::alloc::alloc(layout) })
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, pages: usize) {
        if let Some(layout) = page_layout(pages) {
            // SAFETY: per the contract, allocated by `alloc_pages` with this layout.
            unsafe { alloc::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

/// Pages from the image allocator's page pool (`uk_rt::allocator().palloc`): the default of
/// a booted image. Parts of runs go back through `uk_rt::allocator().pfree_part`: the
/// pool's buddy frees any part, a TLSF heap (the pool's fallback) a tail, and a run it
/// cannot cut stays whole.
#[cfg(target_os = "none")]
#[derive(Debug, Default, Clone, Copy)]
pub struct ImagePages;

#[cfg(target_os = "none")]
impl PageSource for ImagePages {
    fn alloc_pages(&self, pages: usize) -> Option<NonNull<u8>> {
        uk_rt::allocator().palloc(pages).ok()
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, pages: usize) {
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { uk_rt::allocator().pfree(ptr, pages) } {
            log::error!("uk-posix-process: freeing {pages} pages at {ptr:p}: {e}");
        }
    }

    unsafe fn free_part(
        &self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> bool {
        // SAFETY: forwarded contract.
        match unsafe { uk_rt::allocator().pfree_part(run, run_pages, part, part_pages) } {
            Ok(()) => true,
            Err(uk_rt::heap::AllocError::Unsupported) => false,
            Err(e) => {
                log::error!(
                    "uk-posix-process: freeing {part_pages} pages at {part:p} of the \
                     {run_pages} at {run:p}: {e}"
                );
                false
            }
        }
    }

    fn memory(&self) -> Option<(usize, usize)> {
        let image = uk_rt::allocator();
        Some((image.total(), image.available()))
    }

    unsafe fn set_rights(
        &self,
        start: NonNull<u8>,
        len: usize,
        rights: PageRights,
    ) -> Result<bool, Errno> {
        let Some(protection) = uk_rt::try_platform().and_then(|p| p.page_protection()) else {
            return Ok(false);
        };
        let access = match rights {
            PageRights::None => uk_hal::PageAccess::None,
            PageRights::Read => uk_hal::PageAccess::ReadOnly,
            PageRights::ReadWrite => uk_hal::PageAccess::ReadWrite,
        };
        // SAFETY: forwarded contract: pages of live runs the caller owns, given back
        // read-write before they are freed.
        match unsafe { protection.set_access(start.as_ptr() as usize, len, access) } {
            Ok(()) => Ok(true),
            Err(uk_hal::ProtectError::OutOfTables) => Err(Errno::ENOMEM),
            Err(e) => {
                // The page pool hands out the board's RAM: anything else is a bug here.
                log::error!("uk-posix-process: page rights at {start:p}+{len:#x}: {e}");
                Err(Errno::ENOMEM)
            }
        }
    }
}

/// Ends the run with `status` once the last thread has exited. On a booted image the
/// default is the board's `Platform::exit`; a hosted build's default only logs (tests
/// install their own to observe it).
pub type ExitHook = fn(u8);

/// Applies `RLIMIT_DATA`'s soft limit to the allocator (`None`: unlimited). On a booted
/// image the default is `uk_rt::allocator().set_limit`.
pub type DataLimitHook = fn(Option<usize>);

pub(crate) fn default_exit(status: u8) {
    #[cfg(target_os = "none")]
    if let Some(platform) = uk_rt::try_platform() {
        platform.exit(status);
    }
    log::info!("uk-posix-process: last thread exited with status {status}");
}

pub(crate) fn default_data_limit(limit: Option<usize>) {
    #[cfg(target_os = "none")]
    uk_rt::allocator().set_limit(limit);
    #[cfg(not(target_os = "none"))]
    let _ = limit;
}
