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
//! # Other CPUs: TLB shootdown
//!
//! x86 invalidates TLB entries only on the CPU that asks, so after changing entries
//! `set_access` makes every other running CPU ([`crate::interrupts::X86Interrupts::cpu_online`])
//! flush too, before it returns: it raises a request number, sends those CPUs the
//! board's own IPI ([`vector::TLB_SHOOTDOWN`], 0xED), and waits until each has reported
//! the number back. The IPI's handler reloads CR3 (the board sets no global pages, so that
//! drops every translation) and reports the request number it saw. Every change is shot
//! down, taking rights away (another CPU must not go on writing through an old entry) and
//! giving them back (another CPU must not take a fault on an entry with old, narrower
//! rights). A CPU that is not running has nothing cached: INIT clears its TLB and a
//! started CPU loads CR3 afresh.
//!
//! A CPU waiting for this module's lock answers requests while it spins (it waits with
//! interrupts masked, so the IPI cannot reach it), so two CPUs changing rights at once
//! never wait for each other. A CPU that runs with interrupts masked elsewhere for long
//! cannot answer: the wait gives up after [`SHOOTDOWN_WAIT_NS`] (counted in
//! [`shootdown_timeouts`], logged once), and that CPU flushes when it takes the IPI, which
//! its local APIC keeps pending until then. Until that moment it may still use old rights.
//! Requests are serialised by the lock, so one request number is in flight at a time.

extern crate alloc;

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use uk_hal::irq::{CpuSet, Interrupts, IpiTarget};
use uk_hal::{Clock, PROTECTION_PAGE, PageAccess, PageProtection, Platform, ProtectError};

use crate::apic::vector;
use crate::interrupts::{self, MAX_CPUS};
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
            // The holder may be waiting for this CPU's answer to its shootdown.
            answer_shootdown();
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
    /// entry changes; this CPU's TLB invalidated, then every other running CPU's.
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
        if result.as_ref().is_ok_and(|outcome| outcome.pages > 0) {
            shoot_down();
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

/// How long [`PageProtection::set_access`] waits for the other CPUs' answers: 100 ms.
pub const SHOOTDOWN_WAIT_NS: u64 = 100_000_000;

/// The last shootdown request number (raised under the lock).
static REQUESTED: AtomicU64 = AtomicU64::new(0);
/// The last request number each CPU flushed for.
static ANSWERED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Requests answered by IPI or while spinning, all CPUs (for the in-image tests).
static ANSWERS: AtomicU64 = AtomicU64::new(0);
/// CPUs that did not answer within [`SHOOTDOWN_WAIT_NS`].
static TIMEOUTS: AtomicUsize = AtomicUsize::new(0);

/// This CPU's logical number (0 before the interrupt controllers are set up, when no
/// other CPU runs).
fn this_cpu() -> u32 {
    interrupts::get().map_or(0, |irqs| irqs.cpu_interface().cpu_id())
}

/// Makes every other running CPU flush its TLB, waiting (at most [`SHOOTDOWN_WAIT_NS`])
/// until each has. Called with the lock held, after this CPU's own invalidation.
fn shoot_down() {
    let Some(irqs) = interrupts::get() else {
        return; // no interrupt controller: no other CPU was started
    };
    let me = irqs.cpu_interface().cpu_id();
    let others = (0..irqs.cpu_count().min(MAX_CPUS as u32))
        .filter(|&cpu| cpu != me && irqs.cpu_online(cpu))
        .fold(0u64, |set, cpu| set | 1 << cpu);
    if others == 0 {
        return;
    }
    // The entries are written before the number is raised; a CPU that reads the number
    // flushes after that, so its next walk sees them.
    let request = REQUESTED.fetch_add(1, Ordering::SeqCst) + 1;
    ANSWERED[me as usize].store(request, Ordering::Relaxed);
    // The CPUs were checked above; a send refused here (none is) leaves the wait to time out.
    let _ = irqs.cpu_interface().send_ipi(
        u32::from(vector::TLB_SHOOTDOWN),
        IpiTarget::Cpus(CpuSet(others)),
    );
    let deadline = PLATFORM.monotonic_ns() + SHOOTDOWN_WAIT_NS;
    for cpu in CpuSet(others).iter() {
        // A CPU stopped meanwhile has nothing cached any more.
        while ANSWERED[cpu as usize].load(Ordering::Acquire) < request && irqs.cpu_online(cpu) {
            if PLATFORM.monotonic_ns() > deadline {
                if TIMEOUTS.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(
                        "x86-pc: CPU {cpu} did not answer a TLB shootdown within 100 ms (interrupts masked?); it may use old page rights until it takes the IPI (logged once)"
                    );
                }
                break;
            }
            core::hint::spin_loop();
        }
    }
}

/// Flushes this CPU's TLB if a shootdown request is newer than its last answer, and
/// answers it. Run by the [`vector::TLB_SHOOTDOWN`] IPI and by CPUs spinning on the lock;
/// takes no lock.
pub(crate) fn answer_shootdown() {
    let requested = REQUESTED.load(Ordering::Acquire);
    let Some(answered) = ANSWERED.get(this_cpu() as usize) else {
        return;
    };
    if answered.load(Ordering::Relaxed) >= requested {
        return; // answered already (while spinning on the lock), or nothing asked
    }
    arch::flush_tlb();
    answered.store(requested, Ordering::Release);
    ANSWERS.fetch_add(1, Ordering::Relaxed);
}

/// Shootdown answers so far, all CPUs.
pub fn shootdown_answers() -> u64 {
    ANSWERS.load(Ordering::Relaxed)
}

/// Shootdowns a CPU did not answer within [`SHOOTDOWN_WAIT_NS`] so far.
pub fn shootdown_timeouts() -> usize {
    TIMEOUTS.load(Ordering::Relaxed)
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
