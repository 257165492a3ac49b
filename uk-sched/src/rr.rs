//! Round-robin scheduling, cooperative or preemptive.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use uk_context::{Context, ContextOps};
use uk_hal::Clock;
use uk_hal::irq::{Interrupts, IrqError};

use crate::base::{self, SchedCore};
use crate::remote::{self, Inbox};
use crate::thread::{RawBlock, Thread, ThreadRef, ThreadState};
use crate::{Idle, SchedError, Scheduler, cpu};

/// Counters a scheduler keeps about itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Register switches performed (thread to thread, to idle, from idle).
    pub switches: u64,
    /// Calls of the idle hook.
    pub idle_calls: u64,
    /// Threads reclaimed after exiting.
    pub reclaimed: u64,
    /// Switches forced by [`Scheduler::tick`] (preemptions).
    pub preemptions: u64,
}

struct SleepEntry {
    deadline: u64,
    seq: u64,
    thread: ThreadRef,
}

/// A thread this scheduler holds through `members` (or, once exited, `zombies`): the run
/// queue and the running slot refer to threads without touching their reference counts.
type RawThread = NonNull<Thread>;

/// The FIFO of runnable threads, linked through `Inner::run_next`. Every entry is a member
/// of the scheduler that owns the queue, so it is alive while queued.
struct RunQueue {
    head: Option<RawThread>,
    tail: Option<RawThread>,
    len: usize,
}

impl RunQueue {
    const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    #[inline]
    fn push_back(&mut self, thread: RawThread) {
        // SAFETY: `thread` and the tail are members (alive); their `Inner`s are touched only
        // by this CPU with interrupts masked, and no other reference to them is live here.
        unsafe {
            (*thread.as_ref().inner_ptr()).run_next = None;
            match self.tail {
                Some(tail) => (*tail.as_ref().inner_ptr()).run_next = Some(thread),
                None => self.head = Some(thread),
            }
        }
        self.tail = Some(thread);
        self.len += 1;
    }

    #[inline]
    fn pop_front(&mut self) -> Option<RawThread> {
        let head = self.head?;
        // SAFETY: as in `push_back`: the head is a member. Its link is left as it is: only
        // queued threads' links are ever read, and `push_back` resets it.
        let next = unsafe { (*head.as_ref().inner_ptr()).run_next };
        self.head = next;
        if next.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        Some(head)
    }

    /// Takes the head and queues `thread` (not queued) at the tail in one step, the length
    /// unchanged: a yield's rotation, with fewer stores than `pop_front` then `push_back`
    /// (no passage through the empty queue). `None`, queue unchanged, if it is empty.
    #[inline]
    fn rotate(&mut self, thread: RawThread) -> Option<RawThread> {
        let head = self.head?;
        // SAFETY: as in `push_back`: the head, the tail and `thread` are members.
        unsafe {
            let after_head = (*head.as_ref().inner_ptr()).run_next;
            (*thread.as_ref().inner_ptr()).run_next = None;
            match after_head {
                // The head was the only entry: `thread` becomes the whole queue.
                None => self.head = Some(thread),
                Some(second) => {
                    let tail = self.tail.expect("a queue with a head has a tail");
                    (*tail.as_ref().inner_ptr()).run_next = Some(thread);
                    self.head = Some(second);
                }
            }
        }
        self.tail = Some(thread);
        Some(head)
    }

    /// Unlinks `thread` if it is queued.
    fn remove(&mut self, thread: RawThread) {
        let mut prev: Option<RawThread> = None;
        let mut cur = self.head;
        while let Some(c) = cur {
            // SAFETY: as in `push_back`: every queued thread is a member.
            let next = unsafe { (*c.as_ref().inner_ptr()).run_next };
            if c == thread {
                match prev {
                    // SAFETY: as above.
                    Some(p) => unsafe { (*p.as_ref().inner_ptr()).run_next = next },
                    None => self.head = next,
                }
                if self.tail == Some(thread) {
                    self.tail = prev;
                }
                // SAFETY: as above.
                unsafe { (*thread.as_ref().inner_ptr()).run_next = None };
                self.len -= 1;
                return;
            }
            prev = cur;
            cur = next;
        }
    }
}

struct State {
    /// The running thread (`None` in the idle loop); kept alive by `members` or `zombies`.
    current: Option<RawThread>,
    /// Runnable members, FIFO, linked through their `run_next` (intrusive: queueing never
    /// allocates and costs a few stores); each is kept alive by `members`.
    runq: RunQueue,
    /// Sorted by (deadline, seq): equal deadlines wake in the order they were queued.
    sleepq: VecDeque<SleepEntry>,
    members: Vec<ThreadRef>,
    zombies: Vec<ThreadRef>,
    idle_ctx: Context,
    running: bool,
    seq: u64,
    ticks: u32,
    base_irq: usize,
    installed_tp: usize,
    /// The remote wake-ups of the CPU this scheduler runs on (set by `run`).
    home: &'static Inbox,
    stats: Stats,
}

struct Core<C, K> {
    ops: C,
    clock: K,
    idle: Box<dyn Idle>,
    slice: Option<u32>,
    /// Counts each thread's running time (`RoundRobin::with_cpu_time`).
    cpu_time: bool,
    /// The board's interrupts and the tick length, when the scheduler drives the timer.
    timer: Option<(&'static dyn Interrupts, u64)>,
    state: UnsafeCell<State>,
}

/// A round-robin scheduler: FIFO run queue, a yielding (or preempted) thread goes to the
/// tail, sleepers ordered by deadline. Cooperative ([`RoundRobin::cooperative`]) or
/// preemptive ([`RoundRobin::preemptive`], driven by [`Scheduler::tick`]).
///
/// Generic over the register/FPU/TLS operations `C` and the clock `K`; its state lives in a
/// heap box that stays put while the `RoundRobin` value moves.
pub struct RoundRobin<C: ContextOps + Clone + 'static, K: Clock + 'static> {
    core: Box<Core<C, K>>,
}

impl<C: ContextOps + Clone + 'static, K: Clock + 'static> RoundRobin<C, K> {
    /// A cooperative scheduler: a thread runs until it yields, blocks, sleeps or exits.
    pub fn cooperative(ops: C, clock: K, idle: impl Idle + 'static) -> Self {
        Self::new(ops, clock, Box::new(idle), None)
    }

    /// A preemptive scheduler: every `slice_ticks` calls of [`Scheduler::tick`] the running
    /// thread goes to the tail of the run queue if another thread is runnable.
    pub fn preemptive(ops: C, clock: K, idle: impl Idle + 'static, slice_ticks: u32) -> Self {
        Self::new(ops, clock, Box::new(idle), Some(slice_ticks.max(1)))
    }

    fn new(ops: C, clock: K, idle: Box<dyn Idle>, slice: Option<u32>) -> Self {
        Self {
            core: Box::new(Core {
                ops,
                clock,
                idle,
                slice,
                cpu_time: false,
                timer: None,
                state: UnsafeCell::new(State {
                    current: None,
                    runq: RunQueue::new(),
                    sleepq: VecDeque::new(),
                    members: Vec::new(),
                    zombies: Vec::new(),
                    idle_ctx: Context::new(),
                    running: false,
                    seq: 0,
                    ticks: 0,
                    base_irq: 0,
                    installed_tp: 0,
                    home: &remote::NOWHERE,
                    stats: Stats::default(),
                }),
            }),
        }
    }

    /// Drives this scheduler from the board's timer interrupt: it programs the calling CPU's
    /// [`uk_hal::irq::LocalTimer`] at every decision (the nearest sleeper's deadline, plus
    /// the end of a `tick_ns` time slice only while it is preemptive and another thread
    /// waits; nothing while idle without sleepers) and, while [`Scheduler::run`] runs, its
    /// [`Scheduler::tick`] is called from the timer interrupt. Calls
    /// [`crate::irq::install`]. Build and run the scheduler on the CPU it serves; unmask
    /// interrupts there (`Interrupts::enable_on_this_cpu`) before `run` for preemption.
    ///
    /// # Errors
    ///
    /// The timer's interrupt has a handler that is not this crate's.
    pub fn with_interrupts(
        mut self,
        interrupts: &'static dyn Interrupts,
        tick_ns: u64,
    ) -> Result<Self, IrqError> {
        crate::irq::install(interrupts)?;
        self.core.timer = Some((interrupts, tick_ns.max(1)));
        Ok(self)
    }

    /// Counts the processor time of every thread of this scheduler
    /// ([`crate::Thread::cpu_time_ns`], what a process layer's `CLOCK_THREAD_CPUTIME_ID`,
    /// `clock()` and `getrusage` report). It costs one clock read per switch, which is why
    /// it is asked for rather than always on: the host benchmarks' clock is a system call
    /// away, a board's counter a single instruction. The time is charged to the thread
    /// that was running when the switch happened, interrupt handlers included; time in the
    /// idle loop is nobody's. The same switch also counts the outgoing thread's switch
    /// away, voluntary when it blocked and involuntary when it stayed runnable
    /// ([`crate::Thread::context_switches`], `getrusage`'s `ru_nvcsw` and `ru_nivcsw`); its
    /// last switch, at exit, is not counted.
    pub fn with_cpu_time(mut self) -> Self {
        self.core.cpu_time = true;
        self
    }

    /// The context operations this scheduler was built with (to create threads).
    pub fn ops(&self) -> &C {
        &self.core.ops
    }

    /// The clock deadlines are measured against.
    pub fn clock(&self) -> &K {
        &self.core.clock
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        with_irqs_masked(|| self.core.st().stats)
    }

    /// Threads in this scheduler that have not exited.
    pub fn thread_count(&self) -> usize {
        with_irqs_masked(|| self.core.st().members.len())
    }

    /// Threads in the run queue (not counting the running one).
    pub fn runnable_count(&self) -> usize {
        with_irqs_masked(|| self.core.st().runq.len)
    }

    /// Threads sleeping with a deadline.
    pub fn sleeping_count(&self) -> usize {
        with_irqs_masked(|| self.core.st().sleepq.len())
    }

    /// Creates a thread with default settings running `entry` and adds it.
    ///
    /// # Errors
    ///
    /// As [`crate::ThreadBuilder::create`].
    pub fn spawn(
        &self,
        name: &'static str,
        entry: impl FnOnce() + 'static,
    ) -> Result<ThreadRef, SchedError> {
        let thread = Thread::builder(name).create(&self.core.ops, entry)?;
        self.add(&thread)?;
        Ok(thread)
    }

    /// A handle that any CPU (or, hosted, any OS thread) uses to start threads on this
    /// scheduler: see [`crate::RemoteSpawner`]. Adds one service thread (named
    /// `remote-spawner`) that lives while handles exist, so [`Scheduler::run`] returns only
    /// after the last handle is dropped.
    ///
    /// # Errors
    ///
    /// As [`RoundRobin::spawn`] for the service thread.
    pub fn remote_spawner(&self) -> Result<crate::RemoteSpawner, SchedError> {
        crate::RemoteSpawner::start(self.core.ops.clone(), |service| {
            self.spawn("remote-spawner", service).map(drop)
        })
    }

    fn core_ptr(&self) -> NonNull<dyn SchedCore> {
        self.core.as_owner()
    }

    fn owns(&self, thread: &Thread) -> bool {
        thread
            .inner()
            .owner
            .is_some_and(|o| o.cast::<u8>() == self.core_ptr().cast::<u8>())
    }

    /// The running thread, asserting that it is one of ours.
    fn me(&self) -> &'static Thread {
        let me = cpu::current_ptr();
        // SAFETY: non-null current pointers are alive while they run (see `base::current`).
        let me: Option<&'static Thread> = unsafe { me.as_ref() };
        match me {
            Some(me) if self.owns(me) => me,
            _ => panic!("uk-sched: must be called by a running thread of this scheduler"),
        }
    }
}

fn with_irqs_masked<R>(f: impl FnOnce() -> R) -> R {
    let irq = cpu::irq_save();
    let r = f();
    cpu::irq_restore(irq);
    r
}

impl<C: ContextOps + Clone + 'static, K: Clock + 'static> Core<C, K> {
    /// Makes `thread` a member ([`Scheduler::add`]).
    fn add_member(&self, thread: &ThreadRef) -> Result<(), SchedError> {
        with_irqs_masked(|| {
            let inner = thread.inner_mut();
            if inner.owner.is_some() {
                return Err(SchedError::AlreadyScheduled);
            }
            if inner.state == ThreadState::Exited {
                return Err(SchedError::Exited);
            }
            let st = self.st();
            // Reserve so that wake-ups (maybe from interrupts) never allocate: room for
            // every member in each queue. The capacity checks skip the (out-of-line)
            // reserve calls in the common case where the room is already there.
            let want = st.members.len() + 1;
            if st.members.capacity() < want {
                st.members
                    .try_reserve(1)
                    .map_err(|_| SchedError::OutOfMemory)?;
            }
            if st.sleepq.capacity() < want {
                st.sleepq
                    .try_reserve(want - st.sleepq.len())
                    .map_err(|_| SchedError::OutOfMemory)?;
            }
            inner.owner = Some(self.as_owner());
            inner.member_idx = st.members.len();
            st.members.push(thread.clone());
            match (inner.state, inner.deadline) {
                (ThreadState::Runnable, _) => self.enqueue(thread),
                (ThreadState::Blocked, Some(d)) => self.sleepq_insert(thread, d),
                _ => {}
            }
            Ok(())
        })
    }

    /// This scheduler as its threads' owner.
    fn as_owner(&self) -> NonNull<dyn SchedCore> {
        NonNull::from(self as &dyn SchedCore)
    }

    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    fn st(&self) -> &mut State {
        // SAFETY: the state is only touched by the CPU that runs this scheduler, with
        // interrupts masked; references never live across a switch (they are re-taken).
        unsafe { &mut *self.state.get() }
    }

    /// The running thread when the caller is it: this scheduler's current thread is the
    /// one running on this CPU (not, say, the thread that called an inner scheduler's `run`).
    /// Interrupts masked.
    #[inline(always)]
    fn calling_thread(&self) -> Option<&'static Thread> {
        let current = self.st().current?;
        if current.as_ptr().cast_const() != cpu::current_ptr() {
            return None;
        }
        // SAFETY: the current thread is held by `members` (or, exiting, `zombies`) and is
        // the caller, so it is alive for as long as the caller can use the reference.
        Some(unsafe { current.as_ref() })
    }

    #[inline]
    fn is_current(&self, thread: &Thread) -> bool {
        self.st().current == Some(NonNull::from(thread))
    }

    /// Puts a runnable member thread at the tail (no allocation: capacity is reserved in
    /// `add`; no reference count: `members` holds it).
    #[inline]
    fn enqueue(&self, thread: &Thread) {
        let inner = thread.inner_mut();
        if inner.in_runq || self.is_current(thread) {
            return;
        }
        inner.in_runq = true;
        self.st().runq.push_back(NonNull::from(thread));
    }

    fn sleepq_insert(&self, thread: &Thread, deadline: u64) {
        let st = self.st();
        st.seq += 1;
        let seq = st.seq;
        let at = st
            .sleepq
            .partition_point(|e| (e.deadline, e.seq) <= (deadline, seq));
        st.sleepq.insert(
            at,
            SleepEntry {
                deadline,
                seq,
                // SAFETY: only members (held by `members`) are put to sleep.
                thread: unsafe { thread.to_ref() },
            },
        );
        thread.inner_mut().in_sleepq = true;
    }

    fn sleepq_remove(&self, thread: &Thread) {
        let st = self.st();
        if let Some(at) = st
            .sleepq
            .iter()
            .position(|e| core::ptr::eq(&*e.thread, thread))
        {
            st.sleepq.remove(at);
        }
        thread.inner_mut().in_sleepq = false;
    }

    /// Wakes every due sleeper; reads the clock only when someone sleeps.
    #[inline(always)]
    fn wake_due_now(&self) {
        if !self.st().sleepq.is_empty() {
            self.wake_due_at_clock();
        }
    }

    /// Out of line, so that the clock read's stack frame stays off the switch path.
    #[inline(never)]
    fn wake_due_at_clock(&self) {
        self.wake_due(self.clock.monotonic_ns());
    }

    /// Wakes every sleeper whose deadline is not after `now`, in deadline order.
    fn wake_due(&self, now: u64) {
        loop {
            let st = self.st();
            match st.sleepq.front() {
                Some(e) if e.deadline <= now => {}
                _ => return,
            }
            let entry = st.sleepq.pop_front().expect("checked");
            let inner = entry.thread.inner_mut();
            inner.in_sleepq = false;
            inner.deadline = None;
            inner.timed_out = true;
            inner.state = ThreadState::Runnable;
            self.enqueue(&entry.thread);
        }
    }

    /// Wakes the threads other CPUs asked to wake (one load when none did).
    #[inline(always)]
    fn take_remote_wakes(&self) {
        self.st().home.take_pending();
    }

    /// When the idle loop must look at the inbox again at the latest: while remote wakers
    /// of this CPU exist and no wake-up interrupt can end the idle wait (no timer-driven
    /// scheduler on bare metal; always when hosted), every [`remote::REMOTE_POLL_NS`].
    fn remote_poll_deadline(&self) -> Option<u64> {
        let home = self.st().home;
        let interrupt_reaches_idle = cfg!(not(any(test, feature = "std"))) && self.timer.is_some();
        (home.has_wakers() && !interrupt_reaches_idle).then(|| {
            self.clock
                .monotonic_ns()
                .saturating_add(remote::REMOTE_POLL_NS)
        })
    }

    /// Drops exited threads other than the running one, freeing their memory.
    #[inline(always)]
    fn reclaim(&self) {
        if !self.st().zombies.is_empty() {
            self.reclaim_zombies();
        }
    }

    #[inline(never)]
    fn reclaim_zombies(&self) {
        let st = self.st();
        let current = st.current.map(|c| c.as_ptr().cast_const());
        let mut i = 0;
        while i < st.zombies.len() {
            if Some(Arc::as_ptr(&st.zombies[i])) == current {
                i += 1;
                continue;
            }
            let zombie = st.zombies.swap_remove(i);
            zombie.inner_mut().owner = None;
            st.stats.reclaimed += 1;
            zombie.reclaim();
            drop(zombie);
        }
    }

    /// Takes a thread out of `members`, handing back the scheduler's reference.
    fn remove_member(&self, thread: &Thread) -> ThreadRef {
        let st = self.st();
        let idx = thread.inner().member_idx;
        debug_assert!(core::ptr::eq(&*st.members[idx], thread));
        let removed = st.members.swap_remove(idx);
        if let Some(moved) = st.members.get(idx) {
            moved.inner_mut().member_idx = idx;
        }
        removed
    }

    /// Switches from the running thread `me` to the next runnable thread (or to idle); `me`
    /// is requeued at the tail if it is still runnable. Returns when `me` runs again (never
    /// if it exited). Interrupts are masked.
    fn switch_away(&self, me: &Thread) {
        self.switch_away_inline(me);
    }

    /// [`Core::switch_away`], inlined into a caller whose scheduler type is known (the typed
    /// [`Scheduler::yield_now`]): the switch's register saves then happen once in the
    /// caller's frame, as with a coroutine's inlined suspend, instead of in a call per
    /// switch.
    #[inline(always)]
    fn switch_away_inline(&self, me: &Thread) {
        self.reclaim();
        self.wake_due_now();
        self.take_remote_wakes();
        let st = self.st();
        let next = if me.inner().state == ThreadState::Runnable {
            debug_assert_eq!(
                st.current,
                Some(NonNull::from(me)),
                "running thread is current"
            );
            // The running thread is in no queue: it goes to the tail as the head leaves
            // (no allocation: the queue is intrusive). Nothing else runnable: keep running.
            let Some(next) = st.runq.rotate(NonNull::from(me)) else {
                self.program_timer();
                return;
            };
            me.inner_mut().in_runq = true;
            Some(next)
        } else {
            st.runq.pop_front()
        };
        self.keep_tp(me);
        if self.cpu_time {
            self.charge(me, next);
        }
        let next_ctx: *const Context = match next {
            Some(n) => {
                // SAFETY: run-queue entries are members, alive while `members` holds them.
                let n = unsafe { n.as_ref() };
                n.inner_mut().in_runq = false;
                // The running thread is never queued (`enqueue` skips the current thread,
                // and a yield queues it only after taking the head).
                debug_assert!(!core::ptr::eq(n, me), "the running thread was queued");
                self.install_tp(n);
                &raw const n.inner().ctx
            }
            None => &raw const st.idle_ctx,
        };
        cpu::set_current(next.map_or(core::ptr::null(), |n| n.as_ptr().cast_const()));
        st.current = next;
        st.stats.switches += 1;
        if self.slice.is_some() {
            st.ticks = 0;
        }
        self.program_timer();
        // Only locals from here on: after the switch this thread may have been moved to
        // another scheduler, which is the one that resumes it.
        let ops = self.ops.clone();
        let me_inner = me.inner_ptr();
        // SAFETY: `me` is running, so its extended-context area (if any) is alive and was
        // initialised at creation; `next_ctx` is a context saved by a switch or set up by
        // `init`, whose thread (or this scheduler's idle loop) is alive: the thread is a
        // member. The area is restored only after `me` runs again.
        unsafe {
            let ectx = (*me_inner).ectx.as_ref().map(|e| e.ptr.as_ptr());
            if let Some(area) = ectx
                && (*me_inner).state != ThreadState::Exited
            {
                ops.ectx_save(area);
            }
            ops.switch(&raw mut (*me_inner).ctx, next_ctx);
            if let Some(area) = ectx {
                ops.ectx_restore(area);
            }
        }
    }

    /// Charges the time since `me` was switched in to it and counts its switch away (by
    /// its state: blocked is voluntary, runnable involuntary, exited not counted), and
    /// starts `next`'s interval.
    #[inline(never)]
    fn charge(&self, me: &Thread, next: Option<RawThread>) {
        let now = self.clock.monotonic_ns();
        let inner = me.inner_mut();
        inner.cpu_ns = inner
            .cpu_ns
            .saturating_add(now.saturating_sub(inner.running_since));
        match inner.state {
            ThreadState::Blocked => inner.switches.voluntary += 1,
            ThreadState::Runnable => inner.switches.involuntary += 1,
            ThreadState::Exited => {}
        }
        if let Some(next) = next {
            // SAFETY: run-queue entries are members, alive while `members` holds them.
            unsafe { next.as_ref() }.inner_mut().running_since = now;
        }
    }

    /// Where a thread can set its thread pointer itself (`ContextOps::
    /// THREAD_POINTER_SET_BY_THREADS`), records the register's value as the outgoing
    /// thread's if it changed since the scheduler installed one.
    fn keep_tp(&self, me: &Thread) {
        if C::THREAD_POINTER_SET_BY_THREADS {
            let tp = self.ops.thread_pointer();
            let st = self.st();
            if tp != st.installed_tp {
                me.inner_mut().tp = tp;
                st.installed_tp = tp;
            }
        }
    }

    fn install_tp(&self, next: &Thread) {
        let tp = next.inner().tp;
        let st = self.st();
        if tp != 0 && tp != st.installed_tp {
            // SAFETY: a thread's non-zero thread pointer points into its own TLS block
            // (built at creation or set by a process layer), which lives as long as it does.
            unsafe { self.ops.set_thread_pointer(tp) };
            st.installed_tp = tp;
        }
    }

    /// Arms the CPU's timer for the next event this scheduler needs (interrupts masked).
    #[inline]
    fn program_timer(&self) {
        if let Some((interrupts, tick_ns)) = self.timer {
            self.program_timer_slow(interrupts, tick_ns);
        }
    }

    #[inline(never)]
    fn program_timer_slow(&self, interrupts: &'static dyn Interrupts, tick_ns: u64) {
        let st = self.st();
        let sleeper = st.sleepq.front().map(|e| e.deadline);
        let contended = self.slice.is_some() && st.current.is_some() && st.runq.head.is_some();
        let slice_end = contended.then(|| self.clock.monotonic_ns().saturating_add(tick_ns));
        let timer = interrupts.timer();
        // An interrupt a process layer asked for (`irq::request_timer_interrupt`) stays.
        let wanted = crate::irq::next_timer_deadline(sleeper, slice_end);
        match crate::irq::earliest(wanted, crate::irq::requested_deadline()) {
            Some(deadline) => crate::irq::arm(timer, deadline),
            None => crate::irq::disarm(timer),
        }
    }

    /// The timer interrupt (see [`Scheduler::tick`]); interrupts masked.
    fn tick_locked(&self) {
        self.wake_due_now();
        let st = self.st();
        if let (Some(slice), Some(current)) = (self.slice, st.current) {
            st.ticks += 1;
            // A thread its owner says may not be preempted now (inside a system call)
            // keeps the CPU; its slice stays used up, so the first tick it may be, it is.
            if st.ticks >= slice && crate::irq::may_preempt() {
                st.ticks = 0;
                if st.runq.head.is_some() {
                    st.stats.preemptions += 1;
                    // SAFETY: `current` is the running thread, alive while it runs.
                    self.switch_away(unsafe { current.as_ref() });
                    // Resumed: whoever switched back programmed the timer for this thread.
                    return;
                }
            }
        }
        self.program_timer();
    }

    /// The idle loop: runs threads until none is left.
    fn run(&self) {
        // Waits in drivers and spin locks (`uk_hal::relax`) yield to the other threads from
        // now on (the first scheduler to run registers it, once for the image).
        uk_hal::register_relax(crate::base::relax_hook);
        let irq = cpu::irq_save();
        let outer = cpu::current_ptr();
        let saved_tp = self.ops.thread_pointer();
        {
            let st = self.st();
            assert!(!st.running, "uk-sched: scheduler already running");
            st.running = true;
            st.base_irq = irq;
            st.installed_tp = saved_tp;
            st.current = None;
            st.home = remote::home_inbox();
        }
        cpu::set_current(core::ptr::null());
        let previous_target = self.timer.map(|_| {
            crate::irq::set_tick_target(core::ptr::from_ref(self).cast(), tick_erased::<C, K>)
        });
        // The caller's FPU/SIMD state comes back when `run` returns, whatever the threads
        // with extended contexts left in the registers (only when some thread has one).
        let idle_ectx = if self.st().members.iter().any(|t| t.has_ectx()) {
            RawBlock::alloc(self.ops.ectx_layout())
                .ok()
                .inspect(|area| {
                    // SAFETY: a fresh area of the implementation's layout.
                    unsafe { self.ops.ectx_init(area.ptr.as_ptr()) };
                })
        } else {
            None
        };
        loop {
            self.reclaim();
            if self.st().members.is_empty() {
                break;
            }
            self.wake_due_now();
            self.take_remote_wakes();
            let st = self.st();
            if let Some(next_ptr) = st.runq.pop_front() {
                // SAFETY: run-queue entries are members, alive while `members` holds them.
                let next = unsafe { next_ptr.as_ref() };
                next.inner_mut().in_runq = false;
                if self.cpu_time {
                    next.inner_mut().running_since = self.clock.monotonic_ns();
                }
                self.install_tp(next);
                cpu::set_current(next);
                let next_ctx: *const Context = &raw const next.inner().ctx;
                st.current = Some(next_ptr);
                st.stats.switches += 1;
                st.ticks = 0;
                self.program_timer();
                // SAFETY: the context belongs to a live member thread (held by `members`);
                // the idle context is this frame, which stays alive until `run` returns.
                unsafe { self.ops.switch(&raw mut st.idle_ctx, next_ctx) };
                #[cfg(any(test, feature = "std"))]
                if let Some(payload) = base::take_panic() {
                    if let Some(previous) = previous_target {
                        crate::irq::restore_tick_target(previous);
                    }
                    self.stop_running(irq, outer, saved_tp, idle_ectx.as_ref());
                    std::panic::resume_unwind(payload);
                }
                continue;
            }
            let sleeper = st.sleepq.front().map(|e| e.deadline);
            st.stats.idle_calls += 1;
            let deadline = crate::irq::earliest(sleeper, self.remote_poll_deadline());
            self.program_timer();
            self.idle.idle(&self.clock, deadline);
        }
        if let Some(previous) = previous_target {
            if let Some((interrupts, _)) = self.timer {
                crate::irq::disarm(interrupts.timer());
            }
            crate::irq::restore_tick_target(previous);
        }
        self.stop_running(irq, outer, saved_tp, idle_ectx.as_ref());
    }

    /// Leaves the idle loop: restores the caller's FPU/SIMD state, thread pointer, current
    /// thread and interrupt state.
    fn stop_running(
        &self,
        irq: usize,
        outer: *const Thread,
        saved_tp: usize,
        idle_ectx: Option<&RawBlock>,
    ) {
        let st = self.st();
        st.running = false;
        if let Some(area) = idle_ectx {
            // SAFETY: saved by `ectx_init` at the start of `run` with this implementation.
            unsafe { self.ops.ectx_restore(area.ptr.as_ptr()) };
        }
        if st.installed_tp != saved_tp {
            // SAFETY: puts back the thread pointer the caller of `run` had.
            unsafe { self.ops.set_thread_pointer(saved_tp) };
        }
        cpu::set_current(outer);
        cpu::irq_restore(irq);
    }
}

impl<C: ContextOps + Clone + 'static, K: Clock + 'static> SchedCore for Core<C, K> {
    fn add(&self, thread: &ThreadRef) -> Result<(), SchedError> {
        self.add_member(thread)
    }

    fn wake_locked(&self, thread: &ThreadRef) {
        let inner = thread.inner_mut();
        if inner.state != ThreadState::Blocked {
            return;
        }
        inner.state = ThreadState::Runnable;
        inner.timed_out = false;
        inner.deadline = None;
        if inner.in_sleepq {
            self.sleepq_remove(thread);
        }
        // A thread that marked itself blocked but has not switched away yet is current:
        // it is just runnable again, and `switch_away` keeps it running (no lost wake-up).
        self.enqueue(thread);
        self.program_timer();
    }

    fn prepare_block_locked(&self, me: &Thread, deadline: Option<u64>) -> bool {
        let inner = me.inner_mut();
        if let Some(d) = deadline
            && d <= self.clock.monotonic_ns()
        {
            inner.timed_out = true;
            return false;
        }
        inner.state = ThreadState::Blocked;
        inner.timed_out = false;
        inner.deadline = deadline;
        if let Some(d) = deadline {
            debug_assert!(self.is_current(me), "running thread is current");
            self.sleepq_insert(me, d);
        }
        true
    }

    fn commit_block_locked(&self, me: &Thread) {
        while me.inner().state == ThreadState::Blocked {
            self.switch_away(me);
            // Resumed: by this scheduler or, if moved meanwhile, by another one.
            if me.inner().state == ThreadState::Blocked {
                // Only a scheduler without runnable threads could resume a blocked thread,
                // which none does; stay safe and block again through the current owner.
                let Some(owner) = me.inner().owner else {
                    return;
                };
                // SAFETY: the running thread's owner is alive (see `base::running`).
                unsafe { owner.as_ref() }.commit_block_locked(me);
                return;
            }
        }
    }

    fn yield_locked(&self, me: &Thread) {
        self.switch_away(me);
    }

    fn exit_locked(&self, me: &Thread) -> ! {
        assert!(self.is_current(me), "running thread is current");
        {
            let inner = me.inner_mut();
            inner.state = ThreadState::Exited;
            if inner.in_sleepq {
                self.sleepq_remove(me);
            }
            inner.deadline = None;
        }
        // The scheduler's reference moves from `members` to `zombies`, which keeps the
        // thread alive (it is still `current`) until the next scheduling decision.
        let me_ref = self.remove_member(me);
        self.st().zombies.push(me_ref);
        self.switch_away(me);
        unreachable!("an exited thread was resumed");
    }

    fn started(&self, me: &Thread) {
        if let Some(area) = me.inner().ectx.as_ref() {
            // SAFETY: initialised at creation by this implementation's `ectx_init`.
            unsafe { self.ops.ectx_restore(area.ptr.as_ptr()) };
        }
        cpu::irq_restore(self.st().base_irq);
    }

    fn now(&self) -> u64 {
        self.clock.monotonic_ns()
    }

    fn cpu_time_ns(&self, thread: &Thread) -> Option<u64> {
        if !self.cpu_time {
            return None;
        }
        with_irqs_masked(|| {
            let inner = thread.inner();
            let running = self.st().current == Some(NonNull::from(thread));
            let now_part = if running {
                self.clock
                    .monotonic_ns()
                    .saturating_sub(inner.running_since)
            } else {
                0
            };
            Some(inner.cpu_ns.saturating_add(now_part))
        })
    }

    fn context_switches(&self, thread: &Thread) -> Option<crate::ContextSwitches> {
        if !self.cpu_time {
            return None;
        }
        Some(with_irqs_masked(|| thread.inner().switches))
    }
}

impl<C: ContextOps + Clone + 'static, K: Clock + 'static> Scheduler for RoundRobin<C, K> {
    fn add(&self, thread: &ThreadRef) -> Result<(), SchedError> {
        self.core.add_member(thread)
    }

    fn remove(&self, thread: &ThreadRef) -> Result<(), SchedError> {
        with_irqs_masked(|| {
            let core = &*self.core;
            if !self.owns(thread) {
                return Err(SchedError::NotMember);
            }
            if core.is_current(thread) {
                return Err(SchedError::Running);
            }
            let st = core.st();
            if thread.is_exited() {
                if let Some(i) = st.zombies.iter().position(|z| Arc::ptr_eq(z, thread)) {
                    let zombie = st.zombies.swap_remove(i);
                    zombie.inner_mut().owner = None;
                    st.stats.reclaimed += 1;
                    zombie.reclaim();
                }
                return Ok(());
            }
            if thread.inner().in_runq {
                st.runq.remove(NonNull::from(&**thread));
                thread.inner_mut().in_runq = false;
            }
            if thread.inner().in_sleepq {
                // Unlike Unikraft 0.11, a removed sleeper leaves the sleep queue; its
                // deadline goes with it to the next scheduler.
                core.sleepq_remove(thread);
            }
            drop(core.remove_member(thread));
            thread.inner_mut().owner = None;
            Ok(())
        })
    }

    /// Statically dispatched and inlined into the caller (unlike the free
    /// [`crate::yield_now`], which finds the caller's scheduler at run time and switches
    /// behind a dynamic call): the fastest way to yield for a thread that holds its
    /// scheduler.
    #[inline]
    fn yield_now(&self) {
        let irq = cpu::irq_save();
        let core = &*self.core;
        let Some(me) = core.calling_thread() else {
            cpu::irq_restore(irq);
            panic!("uk-sched: must be called by a running thread of this scheduler");
        };
        core.switch_away_inline(me);
        cpu::irq_restore(irq);
    }

    fn block(&self) {
        self.me();
        base::block();
    }

    fn block_until(&self, deadline_ns: u64) -> bool {
        self.me();
        base::block_until(deadline_ns)
    }

    fn wake(&self, thread: &ThreadRef) {
        base::wake(thread);
    }

    fn sleep(&self, ns: u64) {
        self.me();
        base::sleep(ns);
    }

    fn exit(&self) -> ! {
        self.me();
        base::exit()
    }

    fn current(&self) -> Option<ThreadRef> {
        with_irqs_masked(|| {
            self.core.st().current.map(|c| {
                // SAFETY: the running thread is held by `members` (or, exiting, `zombies`).
                unsafe { c.as_ref().to_ref() }
            })
        })
    }

    fn now(&self) -> u64 {
        self.core.clock.monotonic_ns()
    }

    fn run(&self) {
        self.core.run();
    }

    fn tick(&self) {
        let irq = cpu::irq_save();
        self.core.tick_locked();
        cpu::irq_restore(irq);
    }
}

/// The timer handler's way into a scheduler of any type: `core` is a `Core<C, K>` running
/// on this CPU (registered by its `run`).
fn tick_erased<C: ContextOps + Clone + 'static, K: Clock + 'static>(core: *const ()) {
    // SAFETY: `run` registers its own core and unregisters it before returning, so the
    // pointer is a live `Core<C, K>` whenever the timer handler calls this.
    let core = unsafe { &*core.cast::<Core<C, K>>() };
    let irq = cpu::irq_save();
    core.tick_locked();
    cpu::irq_restore(irq);
}

impl<C: ContextOps + Clone + 'static, K: Clock + 'static> Drop for RoundRobin<C, K> {
    fn drop(&mut self) {
        let core = &*self.core;
        let st = core.st();
        assert!(!st.running, "uk-sched: scheduler dropped while running");
        // Detach every thread so none keeps a pointer to this scheduler.
        core.reclaim();
        for thread in st.members.drain(..) {
            let inner = thread.inner_mut();
            inner.owner = None;
            inner.in_runq = false;
            inner.run_next = None;
            inner.in_sleepq = false;
        }
        st.runq = RunQueue::new();
        st.sleepq.clear();
    }
}
