//! Waking a thread from another CPU: [`RemoteWaker`].
//!
//! A [`Thread`] and its schedulers live on one CPU (the thread's *home*; hosted, one OS
//! thread), and their state is guarded by masking that CPU's interrupts, not by locks. So
//! another CPU never touches a thread: it hands the wake-up to the home CPU instead.
//!
//! Each home has an *inbox*, a lock-free stack of wake requests that any CPU may push to
//! and only the home CPU takes from. A [`RemoteWaker`] is a small shared record (a weak
//! reference to the thread, a "queued" flag, a link) that its [`RemoteWaker::wake`] pushes
//! onto the thread's home inbox — at most once until the home takes it, however many CPUs
//! wake meanwhile — and then, when the board's interrupts are installed
//! ([`crate::irq::install`]), sends the home CPU an inter-processor interrupt
//! ([`uk_hal::irq::Interrupts::free_ipi`] + [`WAKE_IPI_OFFSET`]) whose handler takes the
//! inbox at once, even from the idle loop's wait for an interrupt.
//!
//! The home also takes its inbox at every scheduling decision (one load when it is empty),
//! so a cooperative scheduler without interrupts still sees remote wake-ups at its next
//! switch; and while remote wakers of a home exist, a scheduler that does not drive the
//! timer idles at most [`REMOTE_POLL_NS`] at a time instead of waiting for a deadline that
//! may never come (hosted processes and `idle::Poll`).
//!
//! On bare metal a CPU is told apart by [`crate::set_cpu_id_fn`] (which
//! [`crate::irq::install`] sets up), as for the per-CPU running-thread slots: with several
//! CPUs, install it before making wakers.
//!
//! Taking a request wakes the thread as [`Thread::wake`] would on its home CPU: a blocked
//! thread becomes runnable, any other is left alone. A request is taken *after* its
//! "queued" flag is cleared with an acquire exchange, so whatever the waking CPU wrote before
//! calling `wake` (the condition the thread waits for) is visible to the thread once it
//! runs, and a `wake` that comes while the request is being taken is either part of that
//! take or queues a new request: no wake-up is lost. A waker may outlive its thread; waking
//! it then does nothing.

use alloc::sync::{Arc, Weak};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

#[cfg(not(any(test, feature = "std")))]
use crate::cpu;
use crate::thread::Thread;

/// Offset from the board's [`uk_hal::irq::Interrupts::free_ipi`] of the inter-processor
/// interrupt that tells a CPU its inbox has wake requests (x86-pc: vector 0xE6; qemu-virt:
/// SGI 7), one no board, example or in-image suite of this workspace uses for anything
/// else. [`crate::irq::install`] registers its handler.
pub const WAKE_IPI_OFFSET: u32 = 6;

/// How long (ns) a scheduler that does not drive the timer idles at most while remote
/// wakers of its home exist: it then looks at its inbox again.
pub const REMOTE_POLL_NS: u64 = 20_000;

/// The wake requests of one home (a CPU; hosted, an OS thread).
pub(crate) struct Inbox {
    /// Requests not yet taken, last pushed first; each holds one count of its `Arc<Slot>`.
    head: AtomicPtr<Slot>,
    /// Live wakers whose thread lives here.
    wakers: AtomicUsize,
    /// The CPU to interrupt (bare metal).
    cpu: usize,
}

impl Inbox {
    const fn new(cpu: usize) -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            wakers: AtomicUsize::new(0),
            cpu,
        }
    }

    /// Whether requests wait (a single load).
    #[inline(always)]
    fn has_requests(&self) -> bool {
        !self.head.load(Ordering::Relaxed).is_null()
    }

    /// Requests waiting (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        let mut n = 0;
        let mut at = self.head.load(Ordering::Acquire);
        while !at.is_null() {
            n += 1;
            // SAFETY: only for a test that knows the home is not taking requests meanwhile.
            at = unsafe { (*at).next.load(Ordering::Relaxed) };
        }
        n
    }

    /// Whether some remote waker of this home exists.
    pub(crate) fn has_wakers(&self) -> bool {
        self.wakers.load(Ordering::Relaxed) != 0
    }

    /// Wakes the thread of every waiting request, if any: one load when there is none (this
    /// is on every switch). Only on the home CPU.
    #[inline(always)]
    pub(crate) fn take_pending(&self) {
        if self.has_requests() {
            self.take_requests();
        }
    }

    /// Wakes the thread of every waiting request, oldest first. Only on the home CPU.
    #[cold]
    #[inline(never)]
    pub(crate) fn take_requests(&self) {
        let mut taken = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        // Newest first as pushed: reverse, so threads wake in the order they were woken.
        let mut oldest_first: *mut Slot = ptr::null_mut();
        while !taken.is_null() {
            // SAFETY: every pointer on the stack came from `Arc::into_raw` in `push` and its
            // count is owned by the stack, which we emptied: nobody else reads these links.
            let next = unsafe { (*taken).next.load(Ordering::Relaxed) };
            // SAFETY: as above.
            unsafe { (*taken).next.store(oldest_first, Ordering::Relaxed) };
            oldest_first = taken;
            taken = next;
        }
        while !oldest_first.is_null() {
            // SAFETY: the count `push` transferred to the stack, now ours to drop.
            let slot = unsafe { Arc::from_raw(oldest_first) };
            oldest_first = slot.next.load(Ordering::Relaxed);
            // Acquire: the waking CPU's writes before `wake` (its release exchange of the
            // flag) are visible from here on, to the thread too once it runs.
            slot.queued.swap(false, Ordering::AcqRel);
            if let Some(thread) = slot.thread.upgrade_at_home() {
                thread.wake();
            }
        }
    }
}

/// The inbox of a scheduler that has not run yet: no waker ever points at it.
pub(crate) static NOWHERE: Inbox = Inbox::new(usize::MAX);

/// The calling CPU's inbox (bare metal: one per CPU).
#[cfg(not(any(test, feature = "std")))]
pub(crate) fn home_inbox() -> &'static Inbox {
    static INBOXES: [Inbox; cpu::MAX_CPUS] = {
        let mut inboxes = [const { Inbox::new(0) }; cpu::MAX_CPUS];
        let mut i = 0;
        while i < cpu::MAX_CPUS {
            inboxes[i].cpu = i;
            i += 1;
        }
        inboxes
    };
    &INBOXES[cpu::cpu_index()]
}

/// The calling OS thread's inbox (hosted: each OS thread is a home). Made on first use (the
/// first scheduler run or remote waker of the OS thread) and kept for the rest of the
/// process (three words per such OS thread), so that a waker never points at a freed inbox.
#[cfg(any(test, feature = "std"))]
pub(crate) fn home_inbox() -> &'static Inbox {
    std::thread_local! {
        static INBOX: core::cell::Cell<Option<&'static Inbox>> =
            const { core::cell::Cell::new(None) };
    }
    INBOX.with(|cell| {
        *cell.get().get_or_insert_with(|| {
            let inbox: &'static Inbox =
                alloc::boxed::Box::leak(alloc::boxed::Box::new(Inbox::new(0)));
            cell.set(Some(inbox));
            inbox
        })
    })
}

/// The waker's weak reference to its thread.
struct HomeThread(Weak<Thread>);

// SAFETY: the weak reference is upgraded only on the thread's home CPU (by
// `Inbox::take_requests`, which only the home runs), where the thread's state may be
// touched. Elsewhere it is only dropped: that updates the allocation's atomic weak count
// and, once the thread is gone, frees the memory through the global allocator, which every
// CPU may call; the thread's own fields are never read off its home.
unsafe impl Send for HomeThread {}
// SAFETY: as above: shared access elsewhere never reads through the reference.
unsafe impl Sync for HomeThread {}

impl HomeThread {
    /// The thread, if still alive. Only on its home CPU.
    fn upgrade_at_home(&self) -> Option<Arc<Thread>> {
        self.0.upgrade()
    }
}

/// One waker's shared record.
struct Slot {
    thread: HomeThread,
    inbox: &'static Inbox,
    /// Whether the slot is on the inbox's stack (set by `wake`, cleared by the home).
    queued: AtomicBool,
    /// The next (older) request while queued.
    next: AtomicPtr<Slot>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inbox.wakers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Wakes one thread from any CPU (`Send + Sync`, cheap to clone); made on the thread's home
/// CPU with [`Thread::remote_waker`]. See the [module documentation](self) for how a wake-up
/// travels and why none is lost.
///
/// ```
/// # #[cfg(target_arch = "x86_64")] {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use uk_sched::{RoundRobin, Scheduler, idle};
/// # struct HostClock(std::time::Instant);
/// # impl uk_hal::Clock for HostClock {
/// #     fn monotonic_ns(&self) -> u64 { self.0.elapsed().as_nanos() as u64 }
/// #     fn cycles(&self) -> u64 { self.monotonic_ns() }
/// #     fn cycles_per_second(&self) -> u64 { 1_000_000_000 }
/// # }
///
/// let ready = Arc::new(AtomicBool::new(false));
/// let sched = RoundRobin::cooperative(
///     uk_context::Native::detect(),
///     HostClock(std::time::Instant::now()),
///     idle::Poll,
/// );
/// let flag = ready.clone();
/// let waiter = sched
///     .spawn("waiter", move || {
///         // Check the condition between prepare and commit: no wake-up is lost.
///         while uk_sched::prepare_block(None) {
///             if flag.load(Ordering::Acquire) {
///                 uk_sched::cancel_block();
///                 break;
///             }
///             uk_sched::commit_block();
///         }
///     })
///     .unwrap();
/// let waker = waiter.remote_waker();
/// // Another OS thread (on bare metal: another CPU) sets the condition and wakes it.
/// let other = std::thread::spawn(move || {
///     ready.store(true, Ordering::Release);
///     waker.wake();
/// });
/// sched.run(); // returns once the waiter has finished
/// other.join().unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct RemoteWaker {
    slot: Arc<Slot>,
}

impl core::fmt::Debug for RemoteWaker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteWaker")
            .field("home_cpu", &self.slot.inbox.cpu)
            .field("queued", &self.slot.queued.load(Ordering::Relaxed))
            .finish()
    }
}

impl RemoteWaker {
    /// A waker for `thread`, whose home is the calling CPU.
    pub(crate) fn new(thread: &Arc<Thread>) -> Self {
        let inbox = home_inbox();
        inbox.wakers.fetch_add(1, Ordering::Relaxed);
        Self {
            slot: Arc::new(Slot {
                thread: HomeThread(Arc::downgrade(thread)),
                inbox,
                queued: AtomicBool::new(false),
                next: AtomicPtr::new(ptr::null_mut()),
            }),
        }
    }

    /// Wakes the thread on its home CPU, from any CPU or interrupt handler: a blocked thread
    /// becomes runnable, any other is left alone, and a thread that no longer exists is
    /// ignored. Write the condition the thread waits for before calling this. On the home
    /// CPU itself the thread wakes at once; elsewhere at the home's next scheduling decision
    /// or, with interrupts installed, as soon as the home CPU takes the wake-up interrupt.
    pub fn wake(&self) {
        let inbox = self.slot.inbox;
        if ptr::eq(inbox, home_inbox()) {
            // At home: wake directly (earlier requests first, to keep their order).
            inbox.take_pending();
            if let Some(thread) = self.slot.thread.upgrade_at_home() {
                thread.wake();
            }
            return;
        }
        // Release: the caller's writes travel with the request (see `take_requests`).
        if self.slot.queued.swap(true, Ordering::AcqRel) {
            return; // Already queued; the home has not taken it yet.
        }
        let raw = Arc::into_raw(self.slot.clone()).cast_mut();
        let mut head = inbox.head.load(Ordering::Relaxed);
        loop {
            self.slot.next.store(head, Ordering::Relaxed);
            match inbox
                .head
                .compare_exchange_weak(head, raw, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        crate::irq::kick(inbox.cpu);
    }
}
