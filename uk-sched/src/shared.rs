//! A semaphore, a mutex and a channel that threads of different CPUs share:
//! [`SharedSemaphore`], [`SharedMutex`], [`SharedChannel`].
//!
//! The crate's [`WaitQueue`](crate::WaitQueue), [`Semaphore`](crate::Semaphore),
//! [`Mutex`](crate::Mutex) and [`CondVar`](crate::CondVar) belong to one CPU: their state is
//! guarded by masking that CPU's interrupts, which keeps them cheap but means a thread of
//! another CPU must not touch them. A [`SharedSemaphore`] is `Send + Sync` and may be used
//! from every CPU at once (and, hosted, from several OS threads, each running its own
//! schedulers).
//!
//! Its state is one atomic word, the count of units and a "threads wait" flag, and a queue
//! of waiters behind a spin lock. While nobody waits, taking and giving a unit are one
//! compare-exchange each on the word, lock-free (so interrupt handlers may use them too).
//! A thread that finds no unit takes the lock (with its CPU's interrupts masked, so an
//! interrupt handler of the same CPU never spins on it), sets the flag, queues a small
//! record (a "granted" flag and a [`RemoteWaker`] for itself) and blocks. While the flag
//! is set the count is zero, and [`SharedSemaphore::up`] takes the lock too: it hands its
//! unit straight to the longest waiter by setting that waiter's flag, clears the word's
//! flag when the queue empties, and then wakes the waiter through its waker, which travels
//! to the waiter's home CPU as a remote wake-up (or wakes it at once when that is the
//! calling CPU). The waiter checks its flag between [`crate::prepare_block`] and
//! [`crate::commit_block`], so a hand-off that comes at any moment is never lost, and a
//! unit handed to a waiter is never taken by a thread that came later (FIFO). The lock is
//! held for a few instructions, never across a switch.
//!
//! A wait that times out takes its record out of the queue under the lock; if a unit was
//! handed to it just before, it keeps that unit and reports success instead, so no unit is
//! ever lost either. Blocking costs two small allocations (the record and its waker).
//!
//! [`SharedMutex<T>`] is a value behind a semaphore of one unit: a thread that finds it
//! locked blocks rather than spins, and unlocking hands the lock to the longest waiter.
//! [`SharedChannel<T>`] is a bounded queue between two such semaphores (free and filled
//! slots).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cpu;
use crate::remote::RemoteWaker;
use crate::sync::TimedOut;

/// Runs `f` on what `lock` guards, holding it with this CPU's interrupts masked, so that an
/// interrupt handler of the same CPU never spins on a lock its CPU holds.
pub(crate) fn with_locked<T, R>(lock: &spin::Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    let irq = cpu::irq_save();
    let result = f(&mut lock.lock());
    cpu::irq_restore(irq);
    result
}

/// A blocked thread's place in a [`SharedSemaphore`]'s queue.
struct Waiter {
    /// Set, under the lock, when [`SharedSemaphore::up`] hands this waiter its unit.
    granted: AtomicBool,
    waker: RemoteWaker,
}

/// Bit 0 of a [`SharedSemaphore`]'s word: threads wait (then the count is zero). Set and
/// cleared only under the lock, so `up` sees it or finds the waiter queued once it has
/// the lock.
const WAITING: usize = 1;
/// One unit in the word (the count sits above the flag).
const UNIT: usize = 2;

/// A counting semaphore shared by threads of every CPU; see the [module
/// documentation](self) for how a unit reaches a thread of another CPU.
///
/// ```
/// # #[cfg(target_arch = "x86_64")] {
/// use std::sync::Arc;
/// use uk_sched::{RoundRobin, Scheduler, SharedSemaphore, idle};
///
/// let items = Arc::new(SharedSemaphore::new(0));
/// let sched = RoundRobin::cooperative(
///     uk_context::Native::detect(),
///     uk_hal::HostClock::new(),
///     idle::Poll,
/// );
/// let consumer_items = items.clone();
/// sched
///     .spawn("consumer", move || {
///         for _ in 0..3 {
///             consumer_items.down(); // each unit comes from the other OS thread (CPU)
///         }
///     })
///     .unwrap();
/// let producer = std::thread::spawn(move || {
///     for _ in 0..3 {
///         items.up();
///     }
/// });
/// sched.run(); // returns once the consumer took its three units
/// producer.join().unwrap();
/// # }
/// ```
pub struct SharedSemaphore {
    /// `count * UNIT`, plus `WAITING` while threads wait.
    word: AtomicUsize,
    waiters: spin::Mutex<VecDeque<Arc<Waiter>>>,
}

impl core::fmt::Debug for SharedSemaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedSemaphore")
            .field("count", &self.count())
            .field("waiters", &self.waiters())
            .finish()
    }
}

impl Default for SharedSemaphore {
    /// A semaphore holding no unit.
    fn default() -> Self {
        Self::new(0)
    }
}

impl SharedSemaphore {
    /// A semaphore holding `count` units (`const`: it may be a `static`).
    ///
    /// # Panics
    ///
    /// If `count` exceeds `usize::MAX / 2` (one bit of the word is the waiting flag).
    pub const fn new(count: usize) -> Self {
        assert!(
            count <= usize::MAX / UNIT,
            "uk-sched: SharedSemaphore count too large"
        );
        Self {
            word: AtomicUsize::new(count * UNIT),
            waiters: spin::Mutex::new(VecDeque::new()),
        }
    }

    fn with_queue<R>(&self, f: impl FnOnce(&mut VecDeque<Arc<Waiter>>) -> R) -> R {
        with_locked(&self.waiters, f)
    }

    /// Units available now (zero while threads wait).
    pub fn count(&self) -> usize {
        self.word.load(Ordering::Relaxed) / UNIT
    }

    /// Threads waiting now.
    pub fn waiters(&self) -> usize {
        self.with_queue(|q| q.len())
    }

    /// Takes one unit if there is one, without blocking: lock-free. Any context: a thread
    /// of any CPU, an interrupt handler, code outside every scheduler.
    pub fn try_down(&self) -> bool {
        self.try_down_from(self.word.load(Ordering::Relaxed))
    }

    /// `try_down`, with a first guess at the word: a mutex guesses "free" and so saves
    /// the load before its compare-exchange (a wrong guess costs a retry).
    fn try_down_from(&self, mut word: usize) -> bool {
        while word >= UNIT {
            // Acquire: what the giver wrote before its `up` is visible now.
            match self.word.compare_exchange_weak(
                word,
                word - UNIT,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
        false
    }

    /// Takes one unit, blocking the calling thread while there is none.
    ///
    /// # Panics
    ///
    /// If called outside a uk-sched thread (as a wait on [`crate::WaitQueue`] does).
    pub fn down(&self) {
        let _ = self.down_until(None);
    }

    /// As [`SharedSemaphore::down`], giving up when the scheduler clock reaches
    /// `deadline_ns` (no deadline with `None`).
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if no unit came in time; the semaphore is then as if this call had not
    /// been made.
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn down_until(&self, deadline_ns: Option<u64>) -> Result<(), TimedOut> {
        self.down_until_from(self.word.load(Ordering::Relaxed), deadline_ns)
    }

    /// `down_until`, with a first guess at the word (see `try_down_from`).
    fn down_until_from(&self, guess: usize, deadline_ns: Option<u64>) -> Result<(), TimedOut> {
        if self.try_down_from(guess) {
            return Ok(());
        }
        // Made outside the lock, which is held with interrupts masked: neither the
        // allocations nor a panic happen there.
        let me = crate::current().expect("uk-sched: SharedSemaphore::down outside a thread");
        let waiter = Arc::new(Waiter {
            granted: AtomicBool::new(false),
            waker: me.remote_waker(),
        });
        let queued = self.with_queue(|q| {
            let mut word = self.word.load(Ordering::Relaxed);
            loop {
                // A unit came back meanwhile: take it; else say that threads wait (a
                // racing lock-free `up` makes the exchange fail and is seen next round).
                let (next, took) = if word >= UNIT {
                    (word - UNIT, true)
                } else {
                    (WAITING, false)
                };
                match self.word.compare_exchange_weak(
                    word,
                    next,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) if took => return false,
                    Ok(_) => break,
                    Err(now) => word = now,
                }
            }
            q.push_back(waiter.clone());
            true
        });
        if !queued {
            return Ok(());
        }
        loop {
            if !crate::prepare_block(deadline_ns) {
                break;
            }
            // Acquire: what the thread that called `up` wrote before is visible now.
            if waiter.granted.load(Ordering::Acquire) {
                crate::cancel_block();
                return Ok(());
            }
            if crate::commit_block() {
                break;
            }
        }
        // Timed out: leave the queue, unless a unit was handed over meanwhile.
        self.with_queue(|q| {
            if waiter.granted.load(Ordering::Acquire) {
                return Ok(());
            }
            q.retain(|w| !Arc::ptr_eq(w, &waiter));
            if q.is_empty() {
                // The count is zero while the flag is set: the word becomes zero.
                self.word.fetch_and(!WAITING, Ordering::Relaxed);
            }
            Err(TimedOut)
        })
    }

    /// Gives one unit back: to the longest-waiting thread, whichever CPU it is on, or to the
    /// count when no thread waits (then lock-free). Any context: a thread of any CPU, code
    /// outside every scheduler, an interrupt handler — there only with an interrupt-safe
    /// global allocator, such as uk-rt's image allocator, since handing a unit over may
    /// free the waiter's queue record.
    ///
    /// # Panics
    ///
    /// If the count would exceed `usize::MAX / 2`.
    pub fn up(&self) {
        self.up_from(self.word.load(Ordering::Relaxed));
    }

    /// `up`, with a first guess at the word (see `try_down_from`).
    fn up_from(&self, mut word: usize) {
        loop {
            while word & WAITING == 0 {
                let more = word
                    .checked_add(UNIT)
                    .expect("uk-sched: SharedSemaphore count overflow");
                // Release: pairs with the taker's acquire.
                match self.word.compare_exchange_weak(
                    word,
                    more,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => word = now,
                }
            }
            let handed = self.with_queue(|q| {
                // Empty only if the last waiter timed out (and cleared the flag) before
                // the lock was ours: then count the unit after all.
                let first = q.pop_front()?;
                if q.is_empty() {
                    self.word.fetch_and(!WAITING, Ordering::Relaxed);
                }
                // Release: pairs with the waiter's acquire load of the flag.
                first.granted.store(true, Ordering::Release);
                Some(first)
            });
            match handed {
                // Outside the lock: waking may interrupt another CPU.
                Some(waiter) => return waiter.waker.wake(),
                None => word = self.word.load(Ordering::Relaxed),
            }
        }
    }
}

/// A mutual-exclusion lock around a `T`, shared by threads of every CPU: a
/// [`SharedSemaphore`] of one unit, so a thread that finds it taken blocks (it does not
/// spin) and the unlocking thread hands the lock straight to the longest waiter, whichever
/// CPU that waiter runs on. Not recursive: a thread that locks it again while holding it
/// waits for itself forever.
///
/// ```
/// # #[cfg(target_arch = "x86_64")] {
/// use uk_sched::SharedMutex;
///
/// static TOTAL: SharedMutex<u64> = SharedMutex::new(0);
/// // From a thread of any CPU (or, uncontended, from outside every scheduler):
/// *TOTAL.lock() += 5;
/// assert_eq!(*TOTAL.try_lock().unwrap(), 5);
/// # }
/// ```
pub struct SharedMutex<T: ?Sized> {
    /// One unit while the lock is free.
    free: SharedSemaphore,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and at most one guard exists at a time
// (each holds the semaphore's one unit), so handing the mutex (and with it the value) to
// another CPU needs only `T: Send`, as for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for SharedMutex<T> {}
// SAFETY: as above: a shared mutex gives each CPU exclusive access in turn, never shared
// access, so `T: Send` suffices.
unsafe impl<T: ?Sized + Send> Sync for SharedMutex<T> {}

impl<T: ?Sized> core::fmt::Debug for SharedMutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedMutex")
            .field("locked", &(self.free.count() == 0))
            .field("waiters", &self.free.waiters())
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for SharedMutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> SharedMutex<T> {
    /// An unlocked mutex around `value` (`const`: it may be a `static`).
    pub const fn new(value: T) -> Self {
        Self {
            free: SharedSemaphore::new(1),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// The value, taking the mutex apart.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> SharedMutex<T> {
    fn guard(&self) -> SharedMutexGuard<'_, T> {
        SharedMutexGuard {
            mutex: self,
            _not_sync_unless_t_is: core::marker::PhantomData,
        }
    }

    /// Locks, blocking the calling thread while another holds the lock.
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn lock(&self) -> SharedMutexGuard<'_, T> {
        let _ = self.free.down_until_from(UNIT, None);
        self.guard()
    }

    /// As [`SharedMutex::lock`], giving up when the scheduler clock reaches `deadline_ns`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if the lock did not come free in time (nothing changed).
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn lock_until(
        &self,
        deadline_ns: Option<u64>,
    ) -> Result<SharedMutexGuard<'_, T>, TimedOut> {
        self.free.down_until_from(UNIT, deadline_ns)?;
        Ok(self.guard())
    }

    /// Locks if the lock is free, without blocking. Any context.
    pub fn try_lock(&self) -> Option<SharedMutexGuard<'_, T>> {
        self.free.try_down_from(UNIT).then(|| self.guard())
    }

    /// The value, through an exclusive borrow of the mutex (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

/// Holds a [`SharedMutex`]; dropping it unlocks (handing the lock to the longest waiter).
/// It may be dropped on another CPU than the one that locked.
#[must_use = "dropping the guard unlocks at once"]
pub struct SharedMutexGuard<'a, T: ?Sized> {
    mutex: &'a SharedMutex<T>,
    /// `&mut T`'s auto traits: the guard is `Sync` only when `T` is, since a shared guard
    /// gives shared access to the value.
    _not_sync_unless_t_is: core::marker::PhantomData<&'a mut T>,
}

impl<T: ?Sized + core::fmt::Debug> core::fmt::Debug for SharedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized> core::ops::Deref for SharedMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the mutex's one unit, so no other guard exists and
        // nothing else reaches the value until it is dropped.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> core::ops::DerefMut for SharedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this borrow the only one.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for SharedMutexGuard<'_, T> {
    fn drop(&mut self) {
        // Held: the word is zero unless threads wait.
        self.mutex.free.up_from(0);
    }
}

/// A bounded first-in-first-out channel that threads of every CPU share: senders block
/// while it is full, receivers while it is empty. Two [`SharedSemaphore`]s count the free
/// and the filled slots, and a queue whose room is reserved when the channel is made holds
/// the values behind a short spin lock (held with interrupts masked): sending or receiving
/// without blocking allocates nothing (a blocking wait allocates its record, as
/// [`SharedSemaphore::down`] does). A value handed to a full channel with a deadline that
/// passes comes back to the sender.
///
/// ```
/// # #[cfg(target_arch = "x86_64")] {
/// use core::num::NonZeroUsize;
/// use std::sync::Arc;
/// use uk_sched::{RoundRobin, Scheduler, SharedChannel, idle};
///
/// let numbers = Arc::new(SharedChannel::new(NonZeroUsize::new(4).unwrap()).unwrap());
/// let sched = RoundRobin::cooperative(
///     uk_context::Native::detect(),
///     uk_hal::HostClock::new(),
///     idle::Poll,
/// );
/// let rx = numbers.clone();
/// let sum = std::rc::Rc::new(core::cell::Cell::new(0));
/// let total = sum.clone();
/// sched
///     .spawn("consumer", move || {
///         for _ in 0..10 {
///             total.set(total.get() + rx.recv()); // blocks until the other CPU sends
///         }
///     })
///     .unwrap();
/// // Another OS thread (on bare metal: another CPU) sends from outside any scheduler,
/// // waiting for room with `try_send` since it cannot block.
/// let producer = std::thread::spawn(move || {
///     for n in 1..=10 {
///         let mut value = n;
///         while let Err(back) = numbers.try_send(value) {
///             value = back;
///             std::thread::yield_now();
///         }
///     }
/// });
/// sched.run();
/// producer.join().unwrap();
/// assert_eq!(sum.get(), 55);
/// # }
/// ```
pub struct SharedChannel<T> {
    /// Free slots.
    room: SharedSemaphore,
    /// Filled slots.
    filled: SharedSemaphore,
    values: spin::Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T> core::fmt::Debug for SharedChannel<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedChannel")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> SharedChannel<T> {
    /// An empty channel with room for `capacity` values, reserved now.
    ///
    /// # Errors
    ///
    /// [`crate::SchedError::OutOfMemory`] if the room cannot be allocated.
    pub fn new(capacity: core::num::NonZeroUsize) -> Result<Self, crate::SchedError> {
        let capacity = capacity.get();
        if capacity > usize::MAX / UNIT {
            return Err(crate::SchedError::OutOfMemory);
        }
        let mut values = VecDeque::new();
        values
            .try_reserve_exact(capacity)
            .map_err(|_| crate::SchedError::OutOfMemory)?;
        Ok(Self {
            room: SharedSemaphore::new(capacity),
            filled: SharedSemaphore::new(0),
            values: spin::Mutex::new(values),
            capacity,
        })
    }

    /// How many values it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values waiting to be received now.
    pub fn len(&self) -> usize {
        self.with_values(|v| v.len())
    }

    /// Whether no value waits now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with_values<R>(&self, f: impl FnOnce(&mut VecDeque<T>) -> R) -> R {
        with_locked(&self.values, f)
    }

    /// Puts `value` in a slot this caller has taken from `room`.
    fn put(&self, value: T) {
        // The room was reserved when the channel was made and `room` counts what is free:
        // this never allocates.
        self.with_values(|v| v.push_back(value));
        self.filled.up();
    }

    /// Takes the oldest value, for a unit this caller has taken from `filled`.
    fn take(&self) -> T {
        let value = self
            .with_values(|v| v.pop_front())
            .expect("uk-sched: a filled unit always has its value");
        self.room.up();
        value
    }

    /// Sends `value`, blocking the calling thread while the channel is full.
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn send(&self, value: T) {
        self.room.down();
        self.put(value);
    }

    /// As [`SharedChannel::send`], giving up when the scheduler clock reaches
    /// `deadline_ns`.
    ///
    /// # Errors
    ///
    /// The value back, if no room came in time (nothing changed).
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn send_until(&self, value: T, deadline_ns: Option<u64>) -> Result<(), T> {
        match self.room.down_until(deadline_ns) {
            Ok(()) => {
                self.put(value);
                Ok(())
            }
            Err(TimedOut) => Err(value),
        }
    }

    /// Sends `value` if there is room, without blocking. Any context (see
    /// [`SharedSemaphore::up`] for interrupt handlers).
    ///
    /// # Errors
    ///
    /// The value back, if the channel is full.
    pub fn try_send(&self, value: T) -> Result<(), T> {
        if self.room.try_down() {
            self.put(value);
            Ok(())
        } else {
            Err(value)
        }
    }

    /// Receives the oldest value, blocking the calling thread while there is none.
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn recv(&self) -> T {
        self.filled.down();
        self.take()
    }

    /// As [`SharedChannel::recv`], giving up when the scheduler clock reaches `deadline_ns`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if no value came in time (nothing changed).
    ///
    /// # Panics
    ///
    /// If it has to block outside a uk-sched thread.
    pub fn recv_until(&self, deadline_ns: Option<u64>) -> Result<T, TimedOut> {
        self.filled.down_until(deadline_ns)?;
        Ok(self.take())
    }

    /// Receives the oldest value if there is one, without blocking. Any context (see
    /// [`SharedSemaphore::up`] for interrupt handlers).
    pub fn try_recv(&self) -> Option<T> {
        self.filled.try_down().then(|| self.take())
    }
}
