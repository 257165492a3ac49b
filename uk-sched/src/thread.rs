//! Threads: creation (apart from any scheduler), stacks, TLS, extended context, hooks.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::{RefCell, UnsafeCell};
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use uk_hal::{PROTECTION_PAGE, PageAccess, PageProtection};

use uk_context::{Context, ContextOps, TcbSpec, TlsLayout, TlsTemplate};

use crate::SchedError;
use crate::base::SchedCore;

/// A shared handle to a thread. Schedulers, wait queues and users each hold one.
pub type ThreadRef = Arc<Thread>;

/// Default stack size of a thread (as Unikraft's).
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// The life-cycle state of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// Running or ready to run.
    Runnable,
    /// Waiting for a wake-up (and maybe a deadline).
    Blocked,
    /// Finished; final: an exited thread never runs again.
    Exited,
}

/// A thread's switches away, counted as Linux counts them for `getrusage`'s `ru_nvcsw` and
/// `ru_nivcsw` (by a scheduler built [`crate::RoundRobin::with_cpu_time`]): only a switch to
/// another thread or to the idle loop counts, not a yield that found nothing else to run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ContextSwitches {
    /// Switches away because the thread blocked: it waited for a wake-up, slept or waited
    /// with a deadline.
    pub voluntary: u64,
    /// Switches away while the thread stayed runnable: a yield another thread ran for, or
    /// a preemption. Linux counts `sched_yield` here too (its switch leaves the task
    /// runnable).
    pub involuntary: u64,
}

/// The error an init hook returns to refuse a thread; creation fails with
/// [`SchedError::HookFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookError(pub i32);

/// A pair of per-thread callbacks another crate registers (a process layer, a libc).
///
/// `init` runs when a thread is created, in the creator's context but with the new
/// thread's thread pointer installed; `exit` runs when the thread exits (or, if it never
/// ran, when it is dropped), in reverse registration order, only for hooks whose `init`
/// succeeded. When an `init` fails, the `exit` of every earlier hook runs (in reverse) and
/// creation fails: no hook is skipped (Unikraft 0.11 skips one).
#[derive(Debug, Clone, Copy)]
pub struct ThreadHook {
    /// Name for diagnostics.
    pub name: &'static str,
    /// Called at creation.
    pub init: fn(&Thread) -> Result<(), HookError>,
    /// Called at exit.
    pub exit: fn(&Thread),
}

/// Memory for a thread's stack.
pub struct Stack {
    ptr: NonNull<u8>,
    size: usize,
    origin: StackOrigin,
    /// The page below `ptr` is an inaccessible guard page of the same allocation
    /// ([`set_guard_pages`]).
    guard_page: bool,
}

/// The board's page rights, once an image asked for guard pages ([`set_guard_pages`]).
static GUARD_PAGES: spin::Once<&'static dyn PageProtection> = spin::Once::new();

/// Puts an inaccessible page below every stack this crate allocates from now on
/// ([`Stack::alloc`], [`StackPool::get`]), using the board's page rights: a thread that runs
/// past the end of its stack faults at once, and the board's fault report names the page,
/// instead of overwriting the memory below (the guard word only notices afterwards, at
/// the next switch). The first call wins; returns whether this call set it.
///
/// Each stack then takes one more page and a 4 KiB alignment, and allocating or freeing one
/// changes a page's rights (a page-table write and a TLB invalidation; pooled stacks keep
/// their guard while pooled). Where the rights cannot be set (the board refuses, or is out
/// of memory for a page table) the stack is made without a guard page, as before.
pub fn set_guard_pages(protection: &'static dyn PageProtection) -> bool {
    let mut set = false;
    GUARD_PAGES.call_once(|| {
        set = true;
        protection
    });
    set
}

/// The layout of a guarded stack of `size` bytes: the guard page, then the stack rounded up
/// to whole pages.
fn guarded_layout(size: usize) -> Option<Layout> {
    let total = size
        .checked_next_multiple_of(PROTECTION_PAGE)?
        .checked_add(PROTECTION_PAGE)?;
    Layout::from_size_align(total, PROTECTION_PAGE).ok()
}

/// Allocates `size` bytes of stack with an inaccessible page below them; `None` when the
/// allocator or the page rights refuse (nothing is kept then).
fn alloc_guarded(size: usize, protection: &dyn PageProtection) -> Option<NonNull<u8>> {
    let layout = guarded_layout(size)?;
    // SAFETY: the layout has a non-zero size.
    let block = NonNull::new(unsafe { alloc::alloc::alloc(layout) })?;
    // SAFETY: the first page of a block this function owns; it gets its rights back before
    // the block is freed (`free_stack`).
    let guarded = unsafe {
        protection.set_access(block.as_ptr() as usize, PROTECTION_PAGE, PageAccess::None)
    };
    if guarded.is_err() {
        // SAFETY: allocated above with this layout, never handed out.
        unsafe { alloc::alloc::dealloc(block.as_ptr(), layout) };
        return None;
    }
    // SAFETY: the block is at least two pages long, so one page in is still inside it.
    Some(unsafe { block.add(PROTECTION_PAGE) })
}

/// Frees stack memory of `size` bytes at `ptr` that [`Stack::alloc`] made, giving a guard
/// page back its rights first.
///
/// # Safety
///
/// `ptr`, `size` and `guard_page` describe a live stack allocation of `Stack::alloc`, not
/// used afterwards.
unsafe fn free_stack(ptr: NonNull<u8>, size: usize, guard_page: bool) {
    if !guard_page {
        let layout = Layout::from_size_align(size, STACK_ALIGN).expect("checked at alloc");
        // SAFETY: per the contract, allocated with this very layout.
        unsafe { alloc::alloc::dealloc(ptr.as_ptr(), layout) };
        return;
    }
    let (Some(protection), Some(layout)) = (GUARD_PAGES.get(), guarded_layout(size)) else {
        return; // unreachable: a guard page was made with both
    };
    let block = ptr.as_ptr().wrapping_sub(PROTECTION_PAGE);
    // SAFETY: the guard page of this stack (contract), which this crate protected and now
    // gives back; the tables for it exist, so this needs no memory.
    let opened =
        unsafe { protection.set_access(block as usize, PROTECTION_PAGE, PageAccess::ReadWrite) };
    if opened.is_ok() {
        // SAFETY: the block `alloc_guarded` allocated with this layout.
        unsafe { alloc::alloc::dealloc(block, layout) };
    }
    // Otherwise the block is kept: memory the allocator would hand out must be writable.
}

enum StackOrigin {
    Heap,
    Borrowed,
    Pool(Rc<RefCell<PoolInner>>),
}

/// Alignment of every stack this crate allocates.
const STACK_ALIGN: usize = 16;

/// The guard word at the lowest address of every stack this crate allocates, mixed with
/// that address so that a copy of another stack's word does not pass. A thread that runs
/// past the end of its stack overwrites it first (stacks grow down on both
/// architectures).
const STACK_GUARD: u64 = 0x756b_2d73_7461_636b; // "uk-stack"

impl Stack {
    /// Allocates a stack of `size` bytes from the global allocator.
    ///
    /// # Errors
    ///
    /// [`SchedError::OutOfMemory`] when the allocator fails, [`SchedError::BadStack`] for
    /// a zero size.
    pub fn alloc(size: usize) -> Result<Self, SchedError> {
        if size == 0 {
            return Err(SchedError::BadStack);
        }
        let layout =
            Layout::from_size_align(size, STACK_ALIGN).map_err(|_| SchedError::BadStack)?;
        if let Some(ptr) = GUARD_PAGES.get().and_then(|p| alloc_guarded(size, *p)) {
            let stack = Self {
                ptr,
                size,
                origin: StackOrigin::Heap,
                guard_page: true,
            };
            stack.arm_guard();
            return Ok(stack);
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc(layout) };
        let ptr = NonNull::new(ptr).ok_or(SchedError::OutOfMemory)?;
        let stack = Self {
            ptr,
            size,
            origin: StackOrigin::Heap,
            guard_page: false,
        };
        stack.arm_guard();
        Ok(stack)
    }

    /// The guard word this stack holds while it has not overflowed; `None` for caller
    /// memory (nothing is written there) and stacks too small for one.
    fn guard(&self) -> Option<u64> {
        let owned = !matches!(self.origin, StackOrigin::Borrowed);
        (owned && self.size >= 2 * size_of::<u64>())
            .then_some(STACK_GUARD ^ self.ptr.as_ptr() as u64)
    }

    fn arm_guard(&self) {
        if let Some(guard) = self.guard() {
            // SAFETY: the stack is this crate's allocation of at least 16 bytes, aligned
            // to 16; its lowest word is the guard's (a thread that reached it has
            // overflowed, and is being stopped).
            unsafe { self.ptr.as_ptr().cast::<u64>().write_volatile(guard) };
        }
    }

    /// Whether a thread ran past the end of this stack: the guard word at its lowest
    /// address (written when the crate allocated it; caller memory has none) was
    /// overwritten. A deep overflow may skip the word; most write it on the way down.
    pub fn overflowed(&self) -> bool {
        self.guard().is_some_and(|guard| {
            // SAFETY: the stack is this crate's live allocation of at least 16 bytes,
            // aligned to 16; its first word is the guard, plain memory the thread may
            // have written (hence volatile).
            unsafe { self.ptr.as_ptr().cast::<u64>().read_volatile() != guard }
        })
    }

    /// Uses caller-owned memory as a stack (nothing is freed when the thread is reclaimed).
    pub fn from_static(memory: &'static mut [u8]) -> Self {
        let size = memory.len();
        // A slice pointer is never null.
        let ptr = NonNull::new(memory.as_mut_ptr()).expect("slice pointer");
        Self {
            ptr,
            size,
            origin: StackOrigin::Borrowed,
            guard_page: false,
        }
    }

    /// Whether an inaccessible page lies below the stack ([`set_guard_pages`]).
    pub fn has_guard_page(&self) -> bool {
        self.guard_page
    }

    /// Lowest address of the stack.
    pub fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        match &self.origin {
            // SAFETY: allocated by `Stack::alloc` with this size and guard page.
            StackOrigin::Heap => unsafe { free_stack(self.ptr, self.size, self.guard_page) },
            StackOrigin::Borrowed => {}
            StackOrigin::Pool(pool) => {
                let mut pool = pool.borrow_mut();
                if pool.free.len() < pool.max_free {
                    pool.free.push((self.ptr, self.guard_page));
                } else {
                    // SAFETY: pool stacks are allocated by `Stack::alloc` (in
                    // `StackPool::get`) with the pool's size.
                    unsafe { free_stack(self.ptr, pool.size, self.guard_page) };
                }
            }
        }
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("base", &self.ptr)
            .field("size", &self.size)
            .finish()
    }
}

struct PoolInner {
    size: usize,
    max_free: usize,
    /// Unused stacks, each with whether it has a guard page.
    free: Vec<(NonNull<u8>, bool)>,
}

/// A pool of equally sized stacks: a reclaimed thread's stack goes back to the pool and the
/// next thread takes it without touching the allocator.
#[derive(Clone)]
pub struct StackPool(Rc<RefCell<PoolInner>>);

impl StackPool {
    /// A pool of stacks of `size` bytes that keeps at most `max_free` unused stacks.
    pub fn new(size: usize, max_free: usize) -> Self {
        Self(Rc::new(RefCell::new(PoolInner {
            size,
            max_free,
            free: Vec::new(),
        })))
    }

    /// A stack from the pool, allocated if none is free.
    ///
    /// # Errors
    ///
    /// As [`Stack::alloc`].
    pub fn get(&self) -> Result<Stack, SchedError> {
        let mut inner = self.0.borrow_mut();
        let size = inner.size;
        let (ptr, guard_page) = match inner.free.pop() {
            Some(free) => free,
            None => {
                drop(inner);
                let stack = Stack::alloc(size)?;
                let free = (stack.ptr, stack.guard_page);
                core::mem::forget(stack);
                free
            }
        };
        let stack = Stack {
            ptr,
            size,
            origin: StackOrigin::Pool(self.0.clone()),
            guard_page,
        };
        stack.arm_guard();
        Ok(stack)
    }

    /// Number of stacks waiting in the pool.
    pub fn free_count(&self) -> usize {
        self.0.borrow().free.len()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        for (ptr, guard_page) in self.free.drain(..) {
            // SAFETY: every pooled stack was allocated by `Stack::alloc` with the pool's size.
            unsafe { free_stack(ptr, self.size, guard_page) };
        }
    }
}

/// A heap block with its layout, freed on drop (TLS blocks, extended-context areas).
pub(crate) struct RawBlock {
    pub(crate) ptr: NonNull<u8>,
    layout: Layout,
}

impl RawBlock {
    pub(crate) fn alloc(layout: Layout) -> Result<Self, SchedError> {
        // SAFETY: both callers pass layouts of non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(SchedError::OutOfMemory)?,
            layout,
        })
    }
}

impl Drop for RawBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `RawBlock::alloc` with `self.layout`.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

pub(crate) enum Entry {
    Fn(fn(usize), usize),
    Closure(Box<dyn FnOnce()>),
}

type Callback = Box<dyn FnOnce(&Thread)>;

/// Mutable part of a thread; touched only by the CPU that runs its scheduler with
/// interrupts masked, or by the thread itself.
pub(crate) struct Inner {
    pub(crate) state: ThreadState,
    pub(crate) ctx: Context,
    pub(crate) owner: Option<NonNull<dyn SchedCore>>,
    pub(crate) member_idx: usize,
    pub(crate) in_runq: bool,
    /// The next thread in its scheduler's run queue (meaningful while `in_runq`).
    pub(crate) run_next: Option<NonNull<Thread>>,
    pub(crate) in_sleepq: bool,
    pub(crate) deadline: Option<u64>,
    pub(crate) timed_out: bool,
    pub(crate) entry: Option<Entry>,
    pub(crate) stack: Option<Stack>,
    pub(crate) tls: Option<RawBlock>,
    pub(crate) ectx: Option<RawBlock>,
    pub(crate) tp: usize,
    /// Nanoseconds run up to the last switch away (kept only by a scheduler that counts
    /// CPU time, see `RoundRobin::with_cpu_time`).
    pub(crate) cpu_ns: u64,
    /// The scheduler clock when the thread was last switched in.
    pub(crate) running_since: u64,
    /// Switches away so far (kept with `cpu_ns`).
    pub(crate) switches: ContextSwitches,
    on_exit: Option<Callback>,
    destructor: Option<Callback>,
    hooks: &'static [ThreadHook],
    hooks_done: bool,
}

/// A thread: a stack, a register context, optionally TLS and an extended context, an entry.
///
/// Threads are created on their own ([`Thread::builder`]) and run once added to a
/// scheduler ([`crate::Scheduler::add`]); they can be removed and added to another
/// scheduler in any state. Not `Send`/`Sync`: a thread and its schedulers live on one CPU.
pub struct Thread {
    /// 0 until [`Thread::id`] first gives one out.
    id: AtomicU64,
    name: Cow<'static, str>,
    owner_word: AtomicUsize,
    inner: UnsafeCell<Inner>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Thread {
    /// Starts describing a new thread named `name`.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> ThreadBuilder {
        ThreadBuilder {
            name: name.into(),
            stack_size: DEFAULT_STACK_SIZE,
            stack: None,
            tls: None,
            ectx: false,
            on_exit: None,
            destructor: None,
            hooks: &[],
        }
    }

    /// A process-wide unique number, never reused and never 0. It is given on the first
    /// request, so creating a thread updates no shared counter; numbers therefore follow
    /// the order of first request, not of creation.
    pub fn id(&self) -> u64 {
        match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(),
            id => id,
        }
    }

    /// A word the layer above the scheduler keeps for this thread as it likes; 0 when the
    /// thread is made, never read by the scheduler. It is an atomic so that an interrupt
    /// handler may read the running thread's word while the thread itself writes it: a
    /// process layer records there whether the thread runs application code or is inside
    /// a system call, and its timer-interrupt hook reads it through [`crate::with_current`]
    /// to decide whether a signal may be delivered right away.
    pub fn owner_word(&self) -> &AtomicUsize {
        &self.owner_word
    }

    #[cold]
    fn assign_id(&self) -> u64 {
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // An interrupt handler on this CPU may have asked in between: its number stays.
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(first) => first,
        }
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> ThreadState {
        self.inner().state
    }

    /// Whether the thread has exited (final).
    pub fn is_exited(&self) -> bool {
        self.state() == ThreadState::Exited
    }

    /// The processor time this thread has used, in nanoseconds of its scheduler's clock:
    /// every interval from a switch into it to the next switch away, plus, while it runs,
    /// the time since it was switched in. `None` when its scheduler does not count CPU time
    /// ([`crate::RoundRobin::with_cpu_time`]). A thread that is in no scheduler reports
    /// what it used until it was removed. A thread running on another CPU reports its time
    /// up to its last switch there.
    pub fn cpu_time_ns(&self) -> Option<u64> {
        match self.inner().owner {
            // SAFETY: a thread's owner outlives its membership (a scheduler gives its
            // threads up before it is dropped), and the thread is a member while it has one.
            Some(owner) => unsafe { owner.as_ref() }.cpu_time_ns(self),
            None => Some(self.inner().cpu_ns),
        }
    }

    /// The thread's switches away so far, voluntary and involuntary (see
    /// [`ContextSwitches`]). `None` when its scheduler does not count them, which is the
    /// one that does not count CPU time ([`crate::RoundRobin::with_cpu_time`] turns both
    /// on). A thread that is in no scheduler reports its switches until it was removed.
    pub fn context_switches(&self) -> Option<ContextSwitches> {
        match self.inner().owner {
            // SAFETY: as in `cpu_time_ns`.
            Some(owner) => unsafe { owner.as_ref() }.context_switches(self),
            None => Some(self.inner().switches),
        }
    }

    /// The wake-up deadline of a thread blocked with one.
    pub fn deadline(&self) -> Option<u64> {
        self.inner().deadline
    }

    /// Whether the thread saves and restores FPU/SIMD state when switched.
    pub fn has_ectx(&self) -> bool {
        self.inner().ectx.is_some()
    }

    /// The thread pointer installed while this thread runs (0: none of its own).
    pub fn thread_pointer(&self) -> usize {
        self.inner().tp
    }

    /// Sets the thread pointer this thread runs with from its next switch in (a process
    /// layer uses this for `arch_prctl(ARCH_SET_FS)` or `CLONE_SETTLS`; the caller also
    /// installs it with `ContextOps::set_thread_pointer` if the thread is running).
    pub fn set_thread_pointer(&self, tp: usize) {
        let irq = crate::cpu::irq_save();
        self.inner_mut().tp = tp;
        crate::cpu::irq_restore(irq);
    }

    /// Whether the thread belongs to a scheduler.
    pub fn is_scheduled(&self) -> bool {
        self.inner().owner.is_some()
    }

    /// Makes a blocked thread runnable (through the scheduler that owns it; a thread in no
    /// scheduler is just marked runnable). Does nothing to a runnable or exited thread.
    pub fn wake(self: &Arc<Self>) {
        crate::base::wake(self);
    }

    /// A handle that wakes this thread from another CPU (or, hosted, another OS thread),
    /// where the thread itself cannot go (it is not `Send`): see [`crate::RemoteWaker`].
    /// Call it on the thread's home CPU, the one its schedulers run on.
    pub fn remote_waker(self: &Arc<Self>) -> crate::RemoteWaker {
        crate::RemoteWaker::new(self)
    }

    /// Another counted handle to this thread.
    ///
    /// # Safety
    ///
    /// `self` must live in an `Arc` that is still counted (every thread a scheduler holds:
    /// its members, zombies and sleepers are `ThreadRef`s).
    pub(crate) unsafe fn to_ref(&self) -> ThreadRef {
        let me: *const Thread = self;
        // SAFETY: per the contract, `me` came from `Arc::new` in `ThreadBuilder::build` and
        // its allocation holds at least one count; taking one more is sound.
        unsafe {
            Arc::increment_strong_count(me);
            Arc::from_raw(me)
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        // SAFETY: shared reads happen on the owning CPU; writers hold the interrupt mask
        // and never keep a reference across calls that could read (single CPU).
        unsafe { &*self.inner.get() }
    }

    #[allow(clippy::mut_from_ref)]
    pub(crate) fn inner_mut(&self) -> &mut Inner {
        // SAFETY: as `inner`: callers keep the reference short and never across a switch.
        unsafe { &mut *self.inner.get() }
    }

    pub(crate) fn inner_ptr(&self) -> *mut Inner {
        self.inner.get()
    }

    /// Runs the exit callback and the exit hooks (reverse order), once.
    pub(crate) fn finish(&self) {
        let (callback, hooks) = {
            let inner = self.inner_mut();
            let hooks = if inner.hooks_done {
                &[][..]
            } else {
                inner.hooks
            };
            inner.hooks_done = true;
            (inner.on_exit.take(), hooks)
        };
        if let Some(callback) = callback {
            callback(self);
        }
        for hook in hooks.iter().rev() {
            (hook.exit)(self);
        }
    }

    /// Frees stack, TLS and extended context and runs the destructor, once.
    /// Stops everything when the thread has run past the end of its stack (see
    /// [`Stack::overflowed`]): what lies below it is corrupted, so going on would spread
    /// the damage; the panic names the thread and the stack's size.
    pub(crate) fn check_stack(&self) {
        if let Some(stack) = &self.inner().stack
            && stack.overflowed()
        {
            // Reported once: a hosted build catches the panic in the thread, which then
            // exits and is reclaimed (checked again) where no one could catch a second.
            stack.arm_guard();
            stack_overflow(self.name(), stack.size());
        }
    }

    pub(crate) fn reclaim(&self) {
        self.check_stack();
        let (stack, tls, ectx, destructor) = {
            let inner = self.inner_mut();
            (
                inner.stack.take(),
                inner.tls.take(),
                inner.ectx.take(),
                inner.destructor.take(),
            )
        };
        drop((stack, tls, ectx));
        if let Some(destructor) = destructor {
            destructor(self);
        }
    }
}

#[cold]
#[inline(never)]
fn stack_overflow(name: &str, size: usize) -> ! {
    panic!("uk-sched: thread '{name}' overflowed its {size}-byte stack; give it a larger one")
}

impl Drop for Thread {
    fn drop(&mut self) {
        // A thread that never exited (created and dropped, or removed and dropped) still
        // gets its exit callback, exit hooks and destructor exactly once.
        self.finish();
        self.reclaim();
    }
}

impl fmt::Debug for Thread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id())
            .field("name", &self.name)
            .field("state", &self.state())
            .finish()
    }
}

/// Describes a thread to create; see [`Thread::builder`].
#[must_use]
pub struct ThreadBuilder {
    name: Cow<'static, str>,
    stack_size: usize,
    stack: Option<Stack>,
    tls: Option<(TlsTemplate<'static>, TcbSpec)>,
    ectx: bool,
    on_exit: Option<Callback>,
    destructor: Option<Callback>,
    hooks: &'static [ThreadHook],
}

impl ThreadBuilder {
    /// Stack size to allocate (default [`DEFAULT_STACK_SIZE`]).
    pub fn stack_size(mut self, size: usize) -> Self {
        self.stack_size = size;
        self
    }

    /// Runs on this stack instead of allocating one (e.g. from a [`StackPool`]).
    pub fn stack(mut self, stack: Stack) -> Self {
        self.stack = Some(stack);
        self
    }

    /// Gives the thread its own TLS block built from `template`, with room for a TCB.
    pub fn tls(mut self, template: TlsTemplate<'static>, tcb: TcbSpec) -> Self {
        self.tls = Some((template, tcb));
        self
    }

    /// Saves and restores the FPU/SIMD state of this thread on every switch (off by default:
    /// a thread without it must not use FPU/SIMD registers).
    pub fn ectx(mut self, enabled: bool) -> Self {
        self.ectx = enabled;
        self
    }

    /// Runs `callback` once when the thread exits (in the thread's context), or when it is
    /// dropped without having exited.
    pub fn on_exit(mut self, callback: impl FnOnce(&Thread) + 'static) -> Self {
        self.on_exit = Some(Box::new(callback));
        self
    }

    /// Runs `destructor` once when the thread's memory is reclaimed.
    pub fn destructor(mut self, destructor: impl FnOnce(&Thread) + 'static) -> Self {
        self.destructor = Some(Box::new(destructor));
        self
    }

    /// Per-thread init/exit hooks to run (see [`ThreadHook`]).
    pub fn hooks(mut self, hooks: &'static [ThreadHook]) -> Self {
        self.hooks = hooks;
        self
    }

    /// Creates the thread to run `entry(arg)`.
    ///
    /// # Errors
    ///
    /// See [`ThreadBuilder::create`].
    pub fn create_fn<C: ContextOps>(
        self,
        ops: &C,
        entry: fn(usize),
        arg: usize,
    ) -> Result<ThreadRef, SchedError> {
        self.build(ops, Entry::Fn(entry, arg))
    }

    /// Creates the thread to run `entry`.
    ///
    /// # Errors
    ///
    /// [`SchedError::OutOfMemory`], [`SchedError::BadStack`] (stack too small for the
    /// initial frame), [`SchedError::Tls`], or [`SchedError::HookFailed`] when an init hook
    /// refused (every earlier hook's exit has run then).
    pub fn create<C: ContextOps>(
        self,
        ops: &C,
        entry: impl FnOnce() + 'static,
    ) -> Result<ThreadRef, SchedError> {
        self.build(ops, Entry::Closure(Box::new(entry)))
    }

    fn build<C: ContextOps>(self, ops: &C, entry: Entry) -> Result<ThreadRef, SchedError> {
        let stack = match self.stack {
            Some(stack) => stack,
            None => Stack::alloc(self.stack_size)?,
        };
        let (tls, tp) = match &self.tls {
            None => (None, 0),
            Some((template, tcb)) => {
                let layout =
                    TlsLayout::new(C::TLS_VARIANT, template, *tcb).map_err(SchedError::Tls)?;
                let block = RawBlock::alloc(layout.alloc_layout())?;
                // SAFETY: the block is `layout.size` bytes, aligned, freshly allocated.
                let area =
                    unsafe { core::slice::from_raw_parts_mut(block.ptr.as_ptr(), layout.size) };
                let tp = layout.init(template, area).map_err(SchedError::Tls)?;
                (Some(block), tp)
            }
        };
        let ectx = if self.ectx {
            let block = RawBlock::alloc(ops.ectx_layout())?;
            // SAFETY: the block has the layout the implementation asked for.
            unsafe { ops.ectx_init(block.ptr.as_ptr()) };
            Some(block)
        } else {
            None
        };
        // `Arc` rather than `Rc` although threads stay on one CPU: its counts are atomic, so
        // an interrupt handler may clone or drop a handle while a thread does the same.
        // Written straight into the fresh allocation: building the value on the stack and
        // moving it in costs a copy of the whole thread on every creation.
        #[allow(clippy::arc_with_non_send_sync)]
        let mut thread = Arc::<Thread>::new_uninit();
        let slot = Arc::get_mut(&mut thread).expect("a fresh Arc is unique");
        slot.write(Thread {
            id: AtomicU64::new(0),
            owner_word: AtomicUsize::new(0),
            name: self.name,
            inner: UnsafeCell::new(Inner {
                state: ThreadState::Runnable,
                ctx: Context::new(),
                owner: None,
                member_idx: 0,
                in_runq: false,
                run_next: None,
                in_sleepq: false,
                deadline: None,
                timed_out: false,
                entry: Some(entry),
                stack: None,
                tls,
                ectx,
                tp,
                cpu_ns: 0,
                running_since: 0,
                switches: ContextSwitches::default(),
                on_exit: self.on_exit,
                destructor: self.destructor,
                hooks: &[],
                hooks_done: false,
            }),
        });
        // SAFETY: initialised by the write just above.
        let thread = unsafe { thread.assume_init() };
        {
            let inner = thread.inner_mut();
            let arg = Arc::as_ptr(&thread) as usize;
            // SAFETY: the stack is owned by the thread (stored right after) and lives until
            // the thread is reclaimed, after its last switch.
            unsafe {
                ops.init(
                    &mut inner.ctx,
                    stack.base(),
                    stack.size(),
                    crate::base::thread_start,
                    arg,
                    0,
                )
            }
            .map_err(|_| SchedError::BadStack)?;
            inner.stack = Some(stack);
        }
        run_init_hooks(ops, &thread, self.hooks)?;
        Ok(thread)
    }
}

/// Runs the init hooks with the new thread's thread pointer installed; on failure runs
/// the exit hooks of exactly the hooks that succeeded, in reverse.
fn run_init_hooks<C: ContextOps>(
    ops: &C,
    thread: &Thread,
    hooks: &'static [ThreadHook],
) -> Result<(), SchedError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let tp = thread.inner().tp;
    let saved = ops.thread_pointer();
    if tp != 0 {
        // SAFETY: `tp` points into the thread's freshly built TLS block.
        unsafe { ops.set_thread_pointer(tp) };
    }
    let mut result = Ok(());
    for (done, hook) in hooks.iter().enumerate() {
        if let Err(error) = (hook.init)(thread) {
            for earlier in hooks[..done].iter().rev() {
                (earlier.exit)(thread);
            }
            result = Err(SchedError::HookFailed {
                hook: hook.name,
                error,
            });
            break;
        }
    }
    if tp != 0 {
        // SAFETY: restores the creator's own thread pointer.
        unsafe { ops.set_thread_pointer(saved) };
    }
    let inner = thread.inner_mut();
    match result {
        Ok(()) => inner.hooks = hooks,
        // The failed thread is dropped by the caller; its hooks are already undone.
        // A thread that failed creation never existed: no exit callback, no destructor.
        Err(_) => {
            inner.hooks_done = true;
            inner.on_exit = None;
            inner.destructor = None;
        }
    }
    result
}
