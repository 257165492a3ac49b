//! Page protection on `virt` ([`uk_hal::PageProtection`]): the live identity map behind
//! [`pagetable::set_access`], the break-before-make of a block, and the exception handler's
//! side of it. The design is described in the crate documentation (*Page protection*).

use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use uk_hal::{PageAccess, PageProtection, Platform, ProtectError};

use super::{PLATFORM, asm, mmu};
use crate::exception;
use crate::memmap::Range;
use crate::pagetable::{self, ENTRIES, PAGE, TableMemory};

/// The board's [`PageProtection`], handed out by [`super::QemuVirt`] once booted.
pub struct BoardProtection;

/// The one instance.
pub static PROTECTION: BoardProtection = BoardProtection;

/// Serialises every reader and writer of the tables' run-time changes (held with IRQs
/// masked, so an interrupt handler on the same CPU cannot deadlock on it).
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// The block a CPU is splitting right now ([`pagetable::split_state`]), 0 when none: set
/// before the break, cleared after the make.
static SPLITTING: AtomicU64 = AtomicU64::new(0);

/// Affinity (`MPIDR_EL1`) of the CPU that set [`SPLITTING`].
static SPLITTER: AtomicU64 = AtomicU64::new(0);

/// The calling CPU's affinity fields (`Aff3` to `Aff0`).
fn this_cpu() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// Runs `f` with IRQs masked on this CPU and [`LOCK`] held.
fn locked<R>(f: impl FnOnce() -> R) -> R {
    let daif = super::irq::irq_save();
    let result = {
        let _guard = LOCK.lock();
        f()
    };
    super::irq::irq_restore(daif);
    result
}

/// The identity map as it runs: tables read and written in place by their (identity-mapped)
/// address, new ones from the heap.
///
/// Only [`pagetable::set_access`] and [`pagetable::lookup`] use it, under [`LOCK`], and they
/// pass table addresses of exactly two kinds: the level-1 table of `TTBR0_EL1` or a table
/// a descriptor of these tables points to (the image's `.page_tables`, or a table this
/// type allocated), and tables [`TableMemory::alloc_table`] returned. Every one is a
/// 4 KiB-aligned, mapped array of 512 descriptors that no Rust reference covers.
struct LiveTables;

/// The layout of a table on the heap.
const TABLE: Layout = match Layout::from_size_align(PAGE as usize, PAGE as usize) {
    Ok(layout) => layout,
    Err(_) => panic!("a page is a valid layout"),
};

impl LiveTables {
    fn entry(table: u64, index: usize) -> *mut u64 {
        debug_assert!(table % PAGE == 0 && index < ENTRIES);
        (table as *mut u64).wrapping_add(index)
    }
}

impl TableMemory for LiveTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: a table address of the kinds the type's documentation lists and an index
        // below 512: a mapped, aligned descriptor. Volatile: the MMU reads it too.
        unsafe { Self::entry(table, index).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, descriptor: u64) {
        // SAFETY: as for `read`; a single aligned 64-bit store, so a table walk sees the old
        // descriptor or the new one, never a mix. `set_access` writes live entries only
        // where no break-before-make is needed (page rights).
        unsafe { Self::entry(table, index).write_volatile(descriptor) }
    }

    fn split(&mut self, table: u64, index: usize, descriptor: u64, address: u64, size: u64) {
        // Recorded before the break for the exception handler of the other CPUs; the
        // `dsb ish` at the start of the sequence orders these stores before it.
        SPLITTER.store(this_cpu(), Ordering::SeqCst);
        SPLITTING.store(pagetable::split_state(address, size), Ordering::SeqCst);
        // SAFETY: `set_access` replaces a live block entry by a filled table mapping the
        // same memory. The entry lies outside the block: it is in the level-1 table or the
        // image's level-2 table (both in the image), or in a level-2 table from the heap,
        // which lies in another GiB, or inside its own GiB in a 2 MiB block that got a
        // level-3 table together with it (`pagetable::own_block_tables`), so never in a
        // block being split.
        unsafe { asm::break_before_make(Self::entry(table, index), descriptor, address) };
        SPLITTING.store(0, Ordering::SeqCst);
    }

    fn invalidate(&mut self, range: Range) {
        asm::invalidate_pages(range.start, range.end);
    }

    fn alloc_table(&mut self) -> Option<u64> {
        // SAFETY: the layout is not zero-sized.
        let table = unsafe { alloc::alloc::alloc_zeroed(TABLE) };
        (!table.is_null()).then_some(table as u64)
    }

    fn free_table(&mut self, table: u64) {
        // SAFETY: `table` came from `alloc_table` with the same layout, and the MMU never
        // used it (`set_access` frees only tables it did not link in).
        unsafe { alloc::alloc::dealloc(table as *mut u8, TABLE) };
    }
}

impl PageProtection for BoardProtection {
    /// Splits blocks into tables from the heap as needed (see the crate documentation);
    /// every CPU sees the change when this returns (inner-shareable TLB maintenance).
    unsafe fn set_access(
        &self,
        start: usize,
        len: usize,
        access: PageAccess,
    ) -> Result<(), ProtectError> {
        let range = pagetable::checked_range(PLATFORM.memory_regions(), start, len)?;
        locked(|| pagetable::set_access(&mut LiveTables, mmu::l1_table(), range, Some(access)))
    }

    fn access(&self, addr: usize) -> Option<PageAccess> {
        let address = addr as u64;
        let page = Range::from_base_size(address & !(PAGE - 1), PAGE);
        if !pagetable::in_regions(PLATFORM.memory_regions(), page) {
            return None;
        }
        locked(|| pagetable::lookup(&LiveTables, mmu::l1_table(), address))
            .map(|(_, descriptor)| pagetable::access_of(descriptor))
    }
}

/// Maps the pages of `[start, end)` (widened to whole pages) by level-3 tables, keeping
/// their rights, so that no later split ever breaks the mapping of that memory. For the
/// exception stacks of secondary CPUs: an exception entry stores there before it has saved
/// `ELR_EL1`, so a fault there could not be retried.
pub(super) fn map_with_pages(start: u64, end: u64) -> Result<(), ProtectError> {
    let range = Range {
        start: start & !(PAGE - 1),
        end: end.next_multiple_of(PAGE),
    };
    if !pagetable::in_regions(PLATFORM.memory_regions(), range) {
        return Err(ProtectError::NotRam);
    }
    locked(|| pagetable::set_access(&mut LiveTables, mmu::l1_table(), range, None))
}

/// Whether the synchronous exception `esr`/`far` is a translation fault that another CPU
/// caused by splitting the block it hit (between the break and the make of
/// [`asm::break_before_make`]), so that returning to the faulting instruction lets it
/// succeed. Waits until that split is over, then asks the MMU whether the address
/// translates now (which also covers a split that ended before this handler looked).
///
/// A translation fault that the CPU splitting took itself is never retried (that would
/// wait forever; it cannot happen, the window touches nothing but the descriptor), and
/// neither is one at an address that still does not translate: a real fault.
pub(super) fn is_transient_fault(esr: u64, far: u64) -> bool {
    if !exception::is_translation_fault(esr) {
        return false;
    }
    // The pointer's tag byte (MTE) is not part of the address.
    let address = far & 0x00ff_ffff_ffff_ffff;
    #[cfg(feature = "ktest")]
    repair_for_test(address);
    wait_for_split(address);
    asm::translates_for_read(address)
}

/// Waits until no other CPU splits the block holding `address` (untagged).
fn wait_for_split(address: u64) {
    let me = this_cpu();
    while pagetable::split_covers(SPLITTING.load(Ordering::Acquire), address)
        && SPLITTER.load(Ordering::Acquire) != me
    {
        core::hint::spin_loop();
    }
}

/// Whether an EL1 write to `address` translates, once a split of its block on another CPU
/// is over: for the copy of a faulting thread's state that the exception handler writes
/// below the thread's stack pointer (`fault`).
pub(super) fn writable(address: u64) -> bool {
    let address = address & 0x00ff_ffff_ffff_ffff;
    wait_for_split(address);
    asm::translates_for_write(address)
}

/// A page that the next translation fault on it makes readable and writable again before
/// [`is_transient_fault`] looks, as if a split had ended meanwhile: the in-image test of
/// the return to the faulting instruction on one CPU (0 when unarmed).
#[cfg(feature = "ktest")]
pub(super) static REPAIR_ON_FAULT: AtomicU64 = AtomicU64::new(0);

/// The test side of [`REPAIR_ON_FAULT`].
#[cfg(feature = "ktest")]
fn repair_for_test(address: u64) {
    let page = address & !(PAGE - 1);
    if page != 0
        && REPAIR_ON_FAULT
            .compare_exchange(page, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        // SAFETY: the in-image test armed this page, which it owns, for exactly this.
        let _ =
            unsafe { PROTECTION.set_access(page as usize, PAGE as usize, PageAccess::ReadWrite) };
    }
}

/// What page protection gave the RAM page at `far`, for the exception report; without the
/// lock (a fault may come from inside a locked section), so the answer may be stale.
pub(super) fn reported_access(far: u64) -> Option<PageAccess> {
    let address = far & 0x00ff_ffff_ffff_ffff;
    let page = Range::from_base_size(address & !(PAGE - 1), PAGE);
    if !pagetable::in_regions(PLATFORM.memory_regions(), page) {
        return None;
    }
    pagetable::lookup(&LiveTables, mmu::l1_table(), address)
        .map(|(_, descriptor)| pagetable::access_of(descriptor))
}

/// The level (1, 2 or 3) of the entry mapping `address`, for the in-image tests.
#[cfg(feature = "ktest")]
pub(super) fn mapping_level(address: u64) -> Option<u8> {
    locked(|| pagetable::lookup(&LiveTables, mmu::l1_table(), address)).map(|(level, _)| level)
}

/// The new tables protecting `[start, end)` would take now (not counting the level-3 tables
/// for the own blocks of new level-2 tables), for the in-image tests.
#[cfg(feature = "ktest")]
pub(super) fn tables_needed(start: u64, end: u64) -> Result<usize, ProtectError> {
    locked(|| pagetable::tables_needed(&LiveTables, mmu::l1_table(), Range { start, end }))
        .map(|needed| needed.total())
}
