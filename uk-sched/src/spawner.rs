//! Starting threads on another CPU's scheduler: [`RemoteSpawner`].
//!
//! A thread and its scheduler stay on one CPU (threads are not `Send`), so another CPU
//! cannot make a thread for it directly. What it can send is the work: a `Send` closure.
//! [`crate::RoundRobin::remote_spawner`] starts a small service thread on the scheduler it
//! is called on and returns a handle (`Send + Sync`, cheap to clone) that any CPU uses to
//! queue closures for it. The service thread blocks on a [`SharedSemaphore`] until a
//! closure comes, then makes a thread of it on its own scheduler (default settings, as
//! [`crate::RoundRobin::spawn`]) — so the closure runs on the service thread's CPU, as a
//! thread like any other there, able to block, sleep and use the CPU's per-CPU locks.
//!
//! Nothing is added to the scheduler's hot paths: a request is a queue push under a short
//! spin lock (held with interrupts masked) and an `up` on the semaphore, which reaches the
//! service thread as a remote wake-up. Requests are started in the order they were queued.
//!
//! The service thread is a member of its scheduler, so [`crate::Scheduler::run`] does not
//! return while handles exist: dropping the last handle ends the service thread once it
//! has started every request queued before. A closure whose thread cannot be made (the
//! home is out of memory) is dropped and counted ([`RemoteSpawner::failed`]). Requests
//! queued after the scheduler itself was dropped are never started: its service thread no
//! longer runs.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::SharedSemaphore;
use crate::thread::Thread;
use uk_context::ContextOps;

/// What a requested thread runs.
type JobFn = Box<dyn FnOnce() + Send>;
/// One request: the new thread's name and what it runs.
type Job = (&'static str, JobFn);

/// What the handles and the service thread share.
struct Inbox {
    jobs: spin::Mutex<VecDeque<Job>>,
    /// One unit per queued job, plus one when the last handle goes.
    ready: SharedSemaphore,
    /// The last handle is gone: the service thread ends after the queued jobs.
    closed: AtomicBool,
    /// Jobs whose thread could not be made.
    failed: AtomicUsize,
    /// Jobs whose thread was made.
    started: AtomicUsize,
}

impl Inbox {
    fn with_jobs<R>(&self, f: impl FnOnce(&mut VecDeque<Job>) -> R) -> R {
        crate::shared::with_locked(&self.jobs, f)
    }
}

/// Closes the inbox when the last [`RemoteSpawner`] goes.
struct Handles(Arc<Inbox>);

impl Drop for Handles {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.ready.up();
    }
}

/// Starts threads on one scheduler from any CPU (`Send + Sync`, cheap to clone); made by
/// [`crate::RoundRobin::remote_spawner`] on the scheduler's CPU. See the [module
/// documentation](self).
///
/// ```
/// # #[cfg(target_arch = "x86_64")] {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use uk_sched::{RoundRobin, Scheduler, idle};
///
/// let sched = RoundRobin::cooperative(
///     uk_context::Native::detect(),
///     uk_hal::HostClock::new(),
///     idle::Poll,
/// );
/// let spawner = sched.remote_spawner().unwrap();
/// let done = Arc::new(AtomicU32::new(0));
/// let d = done.clone();
/// // Another OS thread (on bare metal: another CPU) starts a thread on `sched`.
/// std::thread::spawn(move || {
///     spawner.spawn("job", move || {
///         uk_sched::yield_now(); // a uk-sched thread of `sched`
///         d.fetch_add(1, Ordering::SeqCst);
///     })
///     .unwrap();
///     // `spawner` dropped here: `run` returns once the job is done.
/// });
/// sched.run();
/// assert_eq!(done.load(Ordering::SeqCst), 1);
/// # }
/// ```
#[derive(Clone)]
pub struct RemoteSpawner {
    handles: Arc<Handles>,
}

impl core::fmt::Debug for RemoteSpawner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inbox = &self.handles.0;
        f.debug_struct("RemoteSpawner")
            .field("queued", &inbox.with_jobs(|q| q.len()))
            .field("started", &inbox.started.load(Ordering::Relaxed))
            .field("failed", &inbox.failed.load(Ordering::Relaxed))
            .finish()
    }
}

impl RemoteSpawner {
    /// Starts the service thread through `spawn_service` (the scheduler's own `spawn`); the
    /// service makes its threads with `ops`, the scheduler's context operations.
    pub(crate) fn start<C: ContextOps + 'static>(
        ops: C,
        spawn_service: impl FnOnce(Box<dyn FnOnce()>) -> Result<(), crate::SchedError>,
    ) -> Result<Self, crate::SchedError> {
        let inbox = Arc::new(Inbox {
            jobs: spin::Mutex::new(VecDeque::new()),
            ready: SharedSemaphore::new(0),
            closed: AtomicBool::new(false),
            failed: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        });
        let served = inbox.clone();
        spawn_service(Box::new(move || serve(&served, &ops)))?;
        Ok(Self {
            handles: Arc::new(Handles(inbox)),
        })
    }

    /// Queues `entry` to run as a new thread named `name` on the spawner's scheduler, from
    /// any CPU. Returns at once; the thread starts when the service thread next runs
    /// (requests start in queueing order). It allocates (the boxed closure and its queue
    /// slot), so it is for threads and other code that may allocate, not for interrupt
    /// handlers of an allocator that is not interrupt-safe.
    ///
    /// # Errors
    ///
    /// [`crate::SchedError::OutOfMemory`] if the request cannot be queued (this CPU's
    /// allocator failed); `entry` is then dropped here and nothing changed.
    pub fn spawn(
        &self,
        name: &'static str,
        entry: impl FnOnce() + Send + 'static,
    ) -> Result<(), crate::SchedError> {
        let inbox = &self.handles.0;
        let job: JobFn = Box::new(entry);
        inbox.with_jobs(|q| {
            q.try_reserve(1)
                .map_err(|_| crate::SchedError::OutOfMemory)?;
            q.push_back((name, job));
            Ok(())
        })?;
        inbox.ready.up();
        Ok(())
    }

    /// Threads the service thread has made so far.
    pub fn started(&self) -> usize {
        self.handles.0.started.load(Ordering::Relaxed)
    }

    /// Requests whose thread could not be made (the home was out of memory); their closure
    /// was dropped.
    pub fn failed(&self) -> usize {
        self.handles.0.failed.load(Ordering::Relaxed)
    }
}

/// The service thread: makes a thread of each queued job on its own scheduler, until the
/// handles are gone and the queue is empty.
fn serve<C: ContextOps>(inbox: &Inbox, ops: &C) {
    let make = |name: &'static str, job: JobFn| -> Result<(), crate::SchedError> {
        let thread = Thread::builder(name).create(ops, job)?;
        crate::base::add_to_own_scheduler(&thread)
    };
    loop {
        inbox.ready.down();
        match inbox.with_jobs(|q| q.pop_front()) {
            Some((name, job)) => match make(name, job) {
                Ok(_) => inbox.started.fetch_add(1, Ordering::Relaxed),
                Err(_) => inbox.failed.fetch_add(1, Ordering::Relaxed),
            },
            // Only the closing unit comes without a job, and it comes after the jobs the
            // last handle queued (one `up` each, in order).
            None if inbox.closed.load(Ordering::Acquire) => return,
            None => continue,
        };
    }
}
