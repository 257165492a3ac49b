//! The board's [`PageProtection`] ([`X86PageProtection`], returned by
//! [`uk_hal::Platform::page_protection`]): [`crate::pageprot`]'s logic on the live page
//! tables, with page tables from the heap, one lock, and TLB invalidation.
//!
//! # Page tables from the heap
//!
//! A table needed at run time (a page table to split a 2 MiB page, a page directory and
//! page tables to split a 1 GiB page) is a 4 KiB, 4 KiB-aligned block of the global
//! allocator (`alloc::alloc::alloc_zeroed`). The boot pool (`uk_pt_pool`, four tables in
//! the image) is not used: it serves the guard pages boot unmaps before the heap exists,
//! and one source of tables keeps the all-or-nothing rule simple: every table a call needs
//! is allocated before any entry changes, and on a failure exactly those are given back.
//! A split table stays for good (it is never merged back into a huge page), so a heap block
//! that holds a table is never freed. Memory is the only limit: the heap's byte limit
//! (`uk_rt::allocator().set_limit`) counts the tables too, and an allocation it refuses is
//! [`ProtectError::OutOfTables`].
//!
//! `set_access` allocates, so it must not be called where the heap cannot be used (from an
//! interrupt handler that may have interrupted the allocator, or from inside the global
//! allocator).
//!
//! # Serialisation and invalidation
//!
//! Callers are serialised by a spin lock taken with interrupts masked on the calling CPU (a
//! timer interrupt cannot preempt the holder, so another thread on the same CPU never
//! spins on it). [`PageProtection::access`] takes no lock: a table is fully written before
//! the entry that points to it, entries are written whole, and tables are never freed, so a
//! walk at any moment sees either the old or the new state of an entry.
//!
//! On the calling CPU every changed 4 KiB entry and every split huge page is invalidated
//! with `invlpg` right after it was written; for a range over [`FLUSH_ALL_PAGES`] pages the
//! whole TLB is flushed once at the end instead (a CR3 reload).
//!
//! # Other CPUs
//!
//! There is no TLB shootdown: the invalidation reaches only the calling CPU. A secondary CPU
//! (`X86Interrupts::start_cpu`) shares the page tables but may go on using a translation it
//! cached before the change until its TLB drops it (its own `invlpg` or CR3 reload, or
//! eviction): after taking rights away, another CPU may still read or write the page for a
//! while; after giving rights back, another CPU may take one spurious page fault on a page
//! it still sees with the old rights (which the board reports as any page fault). The
//! trait's documentation allows this; a caller that shares protected pages between CPUs
//! must make the other CPUs flush (for example by an IPI of its own whose handler calls
//! [`flush_this_cpu`]).

extern crate alloc;

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, Ordering};

use uk_hal::{PROTECTION_PAGE, PageAccess, PageProtection, Platform, ProtectError};

use crate::pageprot::{self, TableAlloc};
use crate::report::{self, Landmark};
use crate::{PLATFORM, arch, irqhw};

/// Ranges of more pages than this flush the whole TLB once instead of each page.
pub const FLUSH_ALL_PAGES: usize = 32;

/// The board's page protection (see the [module documentation](self)).
pub struct X86PageProtection {
    _private: (),
}

/// The one instance, which [`uk_hal::Platform::page_protection`] returns.
pub static PAGE_PROTECTION: X86PageProtection = X86PageProtection { _private: () };

/// Held while the tables change.
static LOCK: AtomicBool = AtomicBool::new(false);

/// The lock, with interrupts masked on this CPU while it is held.
struct Guard {
    interrupts: usize,
}

impl Guard {
    fn lock() -> Guard {
        let interrupts = irqhw::irq_save();
        while LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        Guard { interrupts }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        LOCK.store(false, Ordering::Release);
        irqhw::irq_restore(self.interrupts);
    }
}

/// A page table's memory: 4 KiB, 4 KiB-aligned.
#[repr(C, align(4096))]
struct TablePage([u64; pageprot::ENTRIES]);

const TABLE_LAYOUT: Layout = Layout::new::<TablePage>();

/// Page tables from the global allocator.
struct HeapTables;

impl TableAlloc for HeapTables {
    fn alloc(&mut self) -> Option<u64> {
        // SAFETY: the layout has a non-zero size.
        let table = unsafe { alloc::alloc::alloc_zeroed(TABLE_LAYOUT) };
        (!table.is_null()).then(|| table.expose_provenance() as u64)
    }

    unsafe fn free(&mut self, table: u64) {
        let table = core::ptr::with_exposed_provenance_mut::<u8>(table as usize);
        // SAFETY: the caller passes a table `alloc` returned (so allocated with this layout
        // by the global allocator), not freed since and not part of the page tables.
        unsafe { alloc::alloc::dealloc(table, TABLE_LAYOUT) };
    }
}

impl PageProtection for X86PageProtection {
    /// See the [module documentation](self): tables from the heap, all allocated before any
    /// entry changes; this CPU's TLB invalidated, other CPUs' not.
    unsafe fn set_access(
        &self,
        start: usize,
        len: usize,
        access: PageAccess,
    ) -> Result<(), ProtectError> {
        let regions = PLATFORM.memory_regions();
        let flush_each = len / PROTECTION_PAGE <= FLUSH_ALL_PAGES;
        let _guard = Guard::lock();
        // SAFETY: the lock is held, so this is the only writer; `pageprot` passes only the
        // root, tables present entries point to and the fresh tables from `HeapTables`, and
        // its writes keep the map identity (rights, and huge pages replaced by tables that
        // map the same addresses). The caller owns the pages whose rights change (the
        // trait's contract); the range lies in the board's RAM (`protect` checks), never
        // in the image, its stacks or its tables.
        let mut tables = unsafe { arch::LiveTables::new() };
        let result = pageprot::protect(
            &mut tables,
            &mut HeapTables,
            arch::page_table_root(),
            regions,
            start,
            len,
            access,
            &mut |addr| {
                if flush_each {
                    arch::invalidate_page(addr);
                }
            },
        );
        if !flush_each {
            arch::flush_tlb();
        }
        result.map(|_| ())
    }

    fn access(&self, addr: usize) -> Option<PageAccess> {
        access_in_ram(addr as u64)
    }
}

/// The rights of the page holding `addr`, `None` outside the board's RAM.
fn access_in_ram(addr: u64) -> Option<PageAccess> {
    if !pageprot::in_ram(PLATFORM.memory_regions(), addr) {
        return None;
    }
    // SAFETY: `access_at` only reads, the root and tables that present entries point to.
    let tables = unsafe { arch::LiveTables::new() };
    Some(pageprot::access_at(&tables, arch::page_table_root(), addr))
}

/// The exception report's landmark for a fault at `cr2`: the page, if it is RAM whose
/// rights [`PageProtection::set_access`] reduced. Takes no lock (it may run while a fault
/// interrupted the lock's holder).
pub(crate) fn landmark(cr2: u64) -> Option<Landmark> {
    report::protection_landmark(cr2, access_in_ram(cr2)?)
}

/// Invalidates the calling CPU's whole TLB: what another CPU must run to drop translations
/// cached before a [`PageProtection::set_access`] elsewhere (see "Other CPUs" in the
/// [module documentation](self)).
pub fn flush_this_cpu() {
    arch::flush_tlb();
}

/// How many tables setting `[start, start + len)` to `access` would allocate now (for the
/// in-image test that runs the heap out of them).
#[cfg(feature = "ktest")]
pub(crate) fn tables_needed(
    start: usize,
    len: usize,
    access: PageAccess,
) -> Result<usize, ProtectError> {
    let (start, end) = pageprot::check_range(PLATFORM.memory_regions(), start, len)?;
    let _guard = Guard::lock();
    // SAFETY: `tables_needed` only reads, the root and tables that present entries point to.
    let tables = unsafe { arch::LiveTables::new() };
    pageprot::tables_needed(&tables, arch::page_table_root(), start, end, access)
}
