//! `timerfd`: timers behind descriptors, with Linux's semantics (timerfd_create(2)).
//!
//! A timerfd counts the expirations of one timer. [`TimerFd::settime`] arms it to expire
//! after a relative time, or at an absolute time of its clock ([`TFD_TIMER_ABSTIME`]), and
//! then every interval (0: once); a zero `it_value` disarms it. Arming, re-arming and
//! disarming forget the expirations not yet read, and return the previous setting as
//! [`TimerFd::gettime`] would have: the time left until the next expiry (0 when
//! disarmed or when a one-shot timer has expired) and the interval. A read of 8 bytes or
//! more returns the expirations since the last read or `settime` as a native-endian `u64`
//! and sets the count to 0; a periodic timer that expired several times in between
//! counts each (its overruns). With none yet, a read waits (through the [`crate::wait`]
//! seam, as a pipe does: a signal that runs a handler ends it with `EINTR`, or restarts
//! it with `SA_RESTART`) or, on a non-blocking descriptor, fails with `EAGAIN`; a buffer
//! shorter than 8 bytes is `EINVAL`. Writes are `EINVAL`, as Linux's timerfd has no
//! `write`. Readiness: `POLLIN` while at least one expiration is unread.
//!
//! **Clocks.** `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` (the same here: nothing suspends)
//! count from boot; `CLOCK_REALTIME` is the wall clock: a timer armed for an absolute
//! time of it follows the clock when it is set (`clock_settime`), one armed with a
//! relative time keeps its length (Linux makes it a monotonic timer). `CLOCK_REALTIME_ALARM` and `CLOCK_BOOTTIME_ALARM` are accepted as their
//! plain clocks: the image runs as root (Linux's `CAP_WAKE_ALARM` check passes) and never
//! suspends, so there is nothing to wake from. Any other clock is `EINVAL`, as is any
//! flag but [`TFD_NONBLOCK`] and [`TFD_CLOEXEC`].
//!
//! **`TFD_TIMER_CANCEL_ON_SET`**, with [`TFD_TIMER_ABSTIME`] on a real-time clock, makes
//! the timer cancelable: when the wall clock is set ([`clock_was_set`], which
//! uk-posix-process calls from `clock_settime` and `settimeofday`), the descriptor becomes
//! readable and the next read fails with `ECANCELED`, dropping the unread count, once per
//! setting of the clock; the timer stays armed. With other flags or clocks it is ignored,
//! as on Linux.
//!
//! **Time and expiry.** Timers read their clocks through a [`TimeSource`]
//! ([`set_time_source`]; uk-posix-process installs its own, so timerfds see the same
//! clocks as `clock_gettime`). There is no timer interrupt: expirations are counted when
//! someone looks (a read, `gettime`, `poll`, an epoll scan), from the deadline and the
//! interval, so nothing runs per expiry and a short interval costs nothing while nobody
//! reads. What makes a *waiting* thread see an expiry is the hook pair
//! [`next_deadline_ns`] and [`fire_due`]: the process layer sleeps no later than the
//! earliest deadline of a timerfd not yet readable, and at that deadline calls
//! `fire_due`, which wakes the timer's readers and moves its generation and the
//! [readiness epoch](crate::readiness_epoch), so `poll`, `select` and `epoll_wait` look
//! again. As with the process's interval timers, a wait anywhere in the image wakes for
//! the deadline; a program whose threads all compute sees the expiry at its next look.
//! A periodic timer wakes nobody after its first unread expiry (its count grows, its
//! readiness does not change), as Linux re-arms it only when read.
//!
//! A timerfd is an anonymous-inode file as on Linux: `fstat` gives the shared anonymous
//! inode, `lseek` returns 0, `pread`/`pwrite` are `ESPIPE`; the descriptor is open for
//! reading and writing (`F_GETFL` shows `O_RDWR`). Not done: the `TFD_IOC_SET_TICKS`
//! ioctl (Linux's checkpoint-restore only; `ENOTTY` here).

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::{Mutex, Once};

use crate::Errno;
use crate::file::{Fd, Object};
use crate::poll::{POLLIN, changed};
use crate::types::{O_CLOEXEC, O_NONBLOCK};
use crate::vfs::Vfs;
use crate::wait::{Wait, new_wait};

/// The wall clock (absolute deadlines on it move when it is set).
pub const CLOCK_REALTIME: i32 = 0;
/// Time since boot, never set.
pub const CLOCK_MONOTONIC: i32 = 1;
/// Time since boot including suspension: the same as [`CLOCK_MONOTONIC`] here.
pub const CLOCK_BOOTTIME: i32 = 7;
/// [`CLOCK_REALTIME`] that would wake a suspended system: accepted as [`CLOCK_REALTIME`].
pub const CLOCK_REALTIME_ALARM: i32 = 8;
/// [`CLOCK_BOOTTIME`] that would wake a suspended system: accepted as [`CLOCK_BOOTTIME`].
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;

/// `timerfd_create` flag: close-on-exec (`O_CLOEXEC`).
pub const TFD_CLOEXEC: u32 = O_CLOEXEC;
/// `timerfd_create` flag: non-blocking (`O_NONBLOCK`).
pub const TFD_NONBLOCK: u32 = O_NONBLOCK;
/// `timerfd_settime` flag: `it_value` is an absolute time of the timer's clock.
pub const TFD_TIMER_ABSTIME: u32 = 1;
/// `timerfd_settime` flag: with [`TFD_TIMER_ABSTIME`] on a real-time clock, a setting
/// of the wall clock cancels the timer's reads (`ECANCELED`).
pub const TFD_TIMER_CANCEL_ON_SET: u32 = 2;

/// The size of a `struct itimerspec` in caller memory.
pub const ITIMERSPEC_SIZE: usize = 32;

const NSEC_PER_SEC: u64 = 1_000_000_000;

/// Where timerfds read the time.
pub trait TimeSource: Send + Sync {
    /// Nanoseconds since boot; never goes back.
    fn monotonic_ns(&self) -> u64;
    /// Nanoseconds since the Unix epoch on the wall clock (which may be set).
    fn realtime_ns(&self) -> u64;
}

static SOURCE: Once<&'static dyn TimeSource> = Once::new();

/// Sets the clocks of the timerfds [`Vfs::timerfd_create`](crate::Vfs::timerfd_create)
/// makes (first call wins). Without one, `timerfd_create` fails with `ENOSYS`.
pub fn set_time_source(source: &'static dyn TimeSource) {
    SOURCE.call_once(|| source);
}

/// The time source [`set_time_source`] installed, if any.
pub fn time_source() -> Option<&'static dyn TimeSource> {
    SOURCE.get().copied()
}

/// The clock a timer counts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerClock {
    /// The wall clock ([`CLOCK_REALTIME`], [`CLOCK_REALTIME_ALARM`]).
    Realtime,
    /// Time since boot ([`CLOCK_MONOTONIC`], [`CLOCK_BOOTTIME`], [`CLOCK_BOOTTIME_ALARM`]).
    Monotonic,
}

impl TimerClock {
    /// The clock `timerfd_create` accepts as `clockid`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for any other clock id (Linux's list: the coarse, raw and CPU-time clocks
    /// are refused).
    pub fn from_id(clockid: i32) -> Result<TimerClock, Errno> {
        match clockid {
            CLOCK_REALTIME | CLOCK_REALTIME_ALARM => Ok(TimerClock::Realtime),
            CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => Ok(TimerClock::Monotonic),
            _ => Err(Errno::EINVAL),
        }
    }

    fn now(self, source: &dyn TimeSource) -> u64 {
        match self {
            TimerClock::Realtime => source.realtime_ns(),
            TimerClock::Monotonic => source.monotonic_ns(),
        }
    }
}

/// Linux's `struct itimerspec`: the interval and the value, each a `struct timespec`
/// (seconds, nanoseconds), in the caller's layout order. As given by a caller it is
/// unchecked; [`ItimerSpec::check`] says whether Linux would take it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItimerSpec {
    /// `it_interval.tv_sec`: whole seconds of the interval.
    pub interval_sec: i64,
    /// `it_interval.tv_nsec`: nanoseconds of the interval, `0..1_000_000_000`.
    pub interval_nsec: i64,
    /// `it_value.tv_sec`: whole seconds of the value.
    pub value_sec: i64,
    /// `it_value.tv_nsec`: nanoseconds of the value, `0..1_000_000_000`.
    pub value_nsec: i64,
}

fn timespec_ns(sec: i64, nsec: i64) -> Result<u64, Errno> {
    if sec < 0 || !(0..NSEC_PER_SEC as i64).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NSEC_PER_SEC)
        .saturating_add(nsec as u64))
}

impl ItimerSpec {
    /// An interval and a value given in nanoseconds.
    pub const fn from_ns(interval_ns: u64, value_ns: u64) -> ItimerSpec {
        ItimerSpec {
            interval_sec: (interval_ns / NSEC_PER_SEC) as i64,
            interval_nsec: (interval_ns % NSEC_PER_SEC) as i64,
            value_sec: (value_ns / NSEC_PER_SEC) as i64,
            value_nsec: (value_ns % NSEC_PER_SEC) as i64,
        }
    }

    /// The interval in nanoseconds (saturating).
    ///
    /// # Errors
    ///
    /// `EINVAL` for negative seconds or nanoseconds outside `0..1_000_000_000`.
    pub fn interval_ns(&self) -> Result<u64, Errno> {
        timespec_ns(self.interval_sec, self.interval_nsec)
    }

    /// The value in nanoseconds (saturating).
    ///
    /// # Errors
    ///
    /// As [`ItimerSpec::interval_ns`].
    pub fn value_ns(&self) -> Result<u64, Errno> {
        timespec_ns(self.value_sec, self.value_nsec)
    }

    /// Whether both timespecs are valid (Linux's `timespec64_valid`).
    ///
    /// # Errors
    ///
    /// `EINVAL` when either is not.
    pub fn check(&self) -> Result<(), Errno> {
        self.value_ns().and(self.interval_ns()).map(|_| ())
    }

    /// The structure in the caller's layout (native byte order).
    pub fn to_bytes(self) -> [u8; ITIMERSPEC_SIZE] {
        let mut out = [0u8; ITIMERSPEC_SIZE];
        let fields = [
            self.interval_sec,
            self.interval_nsec,
            self.value_sec,
            self.value_nsec,
        ];
        for (chunk, field) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field.to_ne_bytes());
        }
        out
    }

    /// The structure at the start of `bytes` (`None` if shorter than [`ITIMERSPEC_SIZE`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<ItimerSpec> {
        let bytes = bytes.get(..ITIMERSPEC_SIZE)?;
        let mut fields = [0i64; 4];
        for (field, chunk) in fields.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(chunk);
            *field = i64::from_ne_bytes(raw);
        }
        let [interval_sec, interval_nsec, value_sec, value_nsec] = fields;
        Some(ItimerSpec {
            interval_sec,
            interval_nsec,
            value_sec,
            value_nsec,
        })
    }
}

/// How many times the wall clock was set ([`clock_was_set`]).
static CLOCK_SETS: AtomicU64 = AtomicU64::new(0);

/// A timer's arming and its unread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    /// The clock `deadline` is a time of: the timer's own, except for a real-time timer
    /// armed with a relative time, which counts on the monotonic clock (Linux's "POSIX
    /// magic" in `hrtimer_init`: relative `CLOCK_REALTIME` timers do not move when the
    /// clock is set).
    base: TimerClock,
    /// The next expiry not yet counted, in nanoseconds of `base`; `None`: disarmed (or a
    /// one-shot that expired).
    deadline: Option<u64>,
    /// Re-armed by this after each expiry (0: once). Kept when disarmed, as Linux does.
    interval: u64,
    /// Expirations not yet read.
    ticks: u64,
    /// A cancelable timer: the clock-setting count it last saw.
    cancel_seen: Option<u64>,
}

impl Default for State {
    fn default() -> State {
        State {
            base: TimerClock::Monotonic,
            deadline: None,
            interval: 0,
            ticks: 0,
            cancel_seen: None,
        }
    }
}

impl State {
    /// Now on the clock of the deadline.
    fn now(&self, source: &dyn TimeSource) -> u64 {
        self.base.now(source)
    }

    /// Counts the expirations up to `now`: one for the deadline, and one per interval
    /// that passed after it (a deadline exactly at `now` has expired). Returns whether the
    /// timer became readable.
    fn advance(&mut self, now: u64) -> bool {
        let Some(deadline) = self.deadline.filter(|&d| d <= now) else {
            return false;
        };
        let missed = match self.interval {
            0 => {
                self.deadline = None;
                1
            }
            step => {
                let n = (now - deadline) / step + 1;
                // A deadline past the end of time never comes.
                self.deadline = n
                    .checked_mul(step)
                    .and_then(|gone| deadline.checked_add(gone));
                n
            }
        };
        let was_readable = self.readable();
        self.ticks = self.ticks.saturating_add(missed);
        !was_readable
    }

    /// Whether the wall clock was set since this cancelable timer last looked.
    fn canceled(&self) -> bool {
        self.cancel_seen
            .is_some_and(|seen| seen != CLOCK_SETS.load(Ordering::SeqCst))
    }

    fn readable(&self) -> bool {
        self.ticks > 0 || self.canceled()
    }

    /// What `gettime` reports at `now` (after [`State::advance`] to `now`).
    fn current(&self, now: u64) -> ItimerSpec {
        let left = self.deadline.map_or(0, |d| d.saturating_sub(now));
        ItimerSpec::from_ns(self.interval, left)
    }
}

struct Core {
    clock: TimerClock,
    source: &'static dyn TimeSource,
    state: Mutex<State>,
    readable: Box<dyn Wait>,
    generation: AtomicU64,
}

/// Timerfds alive, so the hooks skip the registry when there are none.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Every timerfd made (weakly: the open file description owns it).
static REGISTRY: Mutex<Vec<Weak<Core>>> = Mutex::new(Vec::new());

impl Drop for Core {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Core {
    /// Counts the expirations up to now; wakes the readers and pollers if that made the
    /// timer readable. Returns whether it did.
    fn refresh(&self) -> bool {
        let became = {
            let mut st = self.state.lock();
            let now = st.now(self.source);
            st.advance(now)
        };
        if became {
            self.notify();
        }
        became
    }

    /// Wakes the readers (who look again) and moves the generation and the epoch (so
    /// pollers look again).
    fn notify(&self) {
        self.readable.wake_all();
        changed(&self.generation);
    }

    /// Whether a read would not wait now (without counting: a reader's wait condition).
    fn ready_now(&self) -> bool {
        let st = self.state.lock();
        let now = st.now(self.source);
        st.readable() || st.deadline.is_some_and(|d| d <= now)
    }

    /// The monotonic time at which this timer becomes readable, if armed and not readable.
    fn wake_at(&self) -> Option<u64> {
        let st = *self.state.lock();
        if st.readable() {
            return None;
        }
        let deadline = st.deadline?;
        Some(match st.base {
            TimerClock::Monotonic => deadline,
            TimerClock::Realtime => {
                // The wall clock first: the monotonic reading after it is no earlier, so
                // the wake is never early.
                let real = self.source.realtime_ns();
                let mono = self.source.monotonic_ns();
                mono.saturating_add(deadline.saturating_sub(real))
            }
        })
    }
}

/// A timer behind a descriptor (see the [module documentation](self)).
pub struct TimerFd {
    core: Arc<Core>,
}

impl core::fmt::Debug for TimerFd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimerFd")
            .field("clock", &self.core.clock)
            .field("state", &*self.core.state.lock())
            .finish()
    }
}

impl TimerFd {
    /// A disarmed timer on `clock`, reading time from `source`.
    pub fn new(clock: TimerClock, source: &'static dyn TimeSource) -> TimerFd {
        let core = Arc::new(Core {
            clock,
            source,
            state: Mutex::new(State::default()),
            readable: new_wait(),
            generation: AtomicU64::new(0),
        });
        LIVE.fetch_add(1, Ordering::SeqCst);
        let mut registry = REGISTRY.lock();
        registry.retain(|t| t.strong_count() > 0);
        registry.push(Arc::downgrade(&core));
        TimerFd { core }
    }

    /// The clock the timer counts on.
    pub fn clock(&self) -> TimerClock {
        self.core.clock
    }

    /// The generation: moves when the timer becomes readable, and at every `settime`
    /// (expirations up to now counted first).
    pub fn generation(&self) -> u64 {
        self.core.refresh();
        self.core.generation.load(Ordering::SeqCst)
    }

    /// `POLLIN` while an expiration is unread (or a cancelable timer's clock was set).
    pub fn poll_events(&self) -> u16 {
        self.core.refresh();
        if self.core.state.lock().readable() {
            POLLIN
        } else {
            0
        }
    }

    /// `timerfd_gettime`: the time left until the next expiry (0 if disarmed or expired
    /// for good) and the interval.
    pub fn gettime(&self) -> ItimerSpec {
        let (became, current) = {
            let mut st = self.core.state.lock();
            let now = st.now(self.core.source);
            let became = st.advance(now);
            (became, st.current(now))
        };
        if became {
            self.core.notify();
        }
        current
    }

    /// `timerfd_settime`: arms the timer to expire after `new`'s value (at it, with
    /// [`TFD_TIMER_ABSTIME`]) and then every interval, or disarms it (a zero value); the
    /// unread count is dropped. Returns the previous setting as [`TimerFd::gettime`]
    /// would have. An absolute time already past expires at once.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a flag other than [`TFD_TIMER_ABSTIME`] and
    /// [`TFD_TIMER_CANCEL_ON_SET`], or a timespec with negative seconds or nanoseconds
    /// outside `0..1_000_000_000`; nothing changes.
    pub fn settime(&self, flags: u32, new: ItimerSpec) -> Result<ItimerSpec, Errno> {
        if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
            return Err(Errno::EINVAL);
        }
        let value = new.value_ns()?;
        let interval = new.interval_ns()?;
        let absolute = flags & TFD_TIMER_ABSTIME != 0;
        let cancelable = self.core.clock == TimerClock::Realtime
            && absolute
            && flags & TFD_TIMER_CANCEL_ON_SET != 0;
        let base = match self.core.clock {
            TimerClock::Realtime if absolute => TimerClock::Realtime,
            _ => TimerClock::Monotonic,
        };
        let old = {
            let mut st = self.core.state.lock();
            let then = st.now(self.core.source);
            st.advance(then);
            let old = st.current(then);
            let now = base.now(self.core.source);
            *st = State {
                base,
                deadline: match value {
                    0 => None,
                    v if absolute => Some(v),
                    v => Some(now.saturating_add(v)),
                },
                interval,
                ticks: 0,
                cancel_seen: cancelable.then(|| CLOCK_SETS.load(Ordering::SeqCst)),
            };
            st.advance(now);
            old
        };
        // Readers and pollers look again: the timer may be readable at once, and those
        // already asleep learn the new deadline for their next sleep.
        self.core.notify();
        Ok(old)
    }

    /// Reads the unread count into `buf` (8 bytes, native byte order) and sets it to 0;
    /// returns 8.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a buffer shorter than 8 bytes; `ECANCELED` for a cancelable timer
    /// whose clock was set since it was armed or last read (the count is dropped);
    /// `EAGAIN` when nothing expired and `nonblock`; `EDEADLK` when it would wait outside
    /// a thread; `EINTR` or `ERESTARTSYS` when a signal's handler ran while it waited (see
    /// [`crate::wait`]).
    pub fn read(&self, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            let (taken, became) = {
                let mut st = self.core.state.lock();
                let now = st.now(self.core.source);
                let became = st.advance(now);
                let taken = if st.canceled() {
                    st.ticks = 0;
                    st.cancel_seen = Some(CLOCK_SETS.load(Ordering::SeqCst));
                    Some(Err(Errno::ECANCELED))
                } else if st.ticks > 0 {
                    Some(Ok(core::mem::take(&mut st.ticks)))
                } else if nonblock {
                    Some(Err(Errno::EAGAIN))
                } else {
                    None
                };
                (taken, became)
            };
            if became {
                self.core.notify();
            }
            match taken {
                Some(Ok(ticks)) => {
                    buf[..8].copy_from_slice(&ticks.to_ne_bytes());
                    return Ok(8);
                }
                Some(Err(e)) => return Err(e),
                None => self.core.readable.wait(&mut || self.core.ready_now())?,
            }
        }
    }
}

/// Live timerfds (the registry's lock is not held while they are used).
fn live() -> Vec<Arc<Core>> {
    if LIVE.load(Ordering::SeqCst) == 0 {
        return Vec::new();
    }
    let mut registry = REGISTRY.lock();
    registry.retain(|t| t.strong_count() > 0);
    registry.iter().filter_map(Weak::upgrade).collect()
}

/// The earliest monotonic time (nanoseconds) at which an armed timerfd that is not
/// readable yet expires: a waiting thread should wake then and call [`fire_due`]. A
/// real-time timer's deadline is converted at the current offset of the two clocks.
pub fn next_deadline_ns() -> Option<u64> {
    live().iter().filter_map(|t| t.wake_at()).min()
}

/// Counts the expirations of every timerfd up to now; each that became readable wakes its
/// readers and moves the readiness epoch. Returns whether any did.
pub fn fire_due() -> bool {
    let mut any = false;
    for timer in live() {
        any |= timer.refresh();
    }
    any
}

/// The wall clock was set (`clock_settime`, `settimeofday`): cancelable timers
/// ([`TFD_TIMER_CANCEL_ON_SET`]) become readable and their next read fails with
/// `ECANCELED`, and every real-time timer's readers and pollers look again (absolute
/// deadlines moved with the clock).
pub fn clock_was_set() {
    CLOCK_SETS.fetch_add(1, Ordering::SeqCst);
    for timer in live() {
        if timer.clock == TimerClock::Realtime {
            timer.notify();
        }
    }
}

impl Vfs {
    /// `timerfd_create(clockid, flags)`: a new disarmed timer on the lowest free
    /// descriptor, open for reading and writing; `flags` from [`TFD_NONBLOCK`] and
    /// [`TFD_CLOEXEC`].
    ///
    /// # Errors
    ///
    /// `EINVAL` for another flag or a clock [`TimerClock::from_id`] refuses; `ENOSYS` when
    /// no [`TimeSource`] is installed; `EMFILE` when the descriptor table is full.
    pub fn timerfd_create(&self, clockid: i32, flags: u32) -> Result<Fd, Errno> {
        if flags & !(TFD_NONBLOCK | TFD_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let clock = TimerClock::from_id(clockid)?;
        let Some(source) = time_source() else {
            log::warn!("timerfd_create with no time source installed: ENOSYS");
            return Err(Errno::ENOSYS);
        };
        self.open_anonymous(Object::TimerFd(TimerFd::new(clock, source)), flags)
    }

    /// `timerfd_settime(fd, flags, new)`: [`TimerFd::settime`] on the timer open as `fd`;
    /// returns the previous setting.
    ///
    /// # Errors
    ///
    /// In Linux's order: `EINVAL` for a bad flag or timespec, `EBADF` for a descriptor
    /// that is not open, `EINVAL` for one that is no timerfd. Nothing changes.
    pub fn timerfd_settime(
        &self,
        fd: Fd,
        flags: u32,
        new: ItimerSpec,
    ) -> Result<ItimerSpec, Errno> {
        if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
            return Err(Errno::EINVAL);
        }
        new.check()?;
        self.with_timerfd(fd, |t| t.settime(flags, new))?
    }

    /// `timerfd_gettime(fd)`: [`TimerFd::gettime`] of the timer open as `fd`.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor that is not open, `EINVAL` for one that is no timerfd.
    pub fn timerfd_gettime(&self, fd: Fd) -> Result<ItimerSpec, Errno> {
        self.with_timerfd(fd, TimerFd::gettime)
    }

    fn with_timerfd<R>(&self, fd: Fd, f: impl FnOnce(&TimerFd) -> R) -> Result<R, Errno> {
        match &self.file(fd)?.object {
            Object::TimerFd(t) => Ok(f(t)),
            _ => Err(Errno::EINVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use proptest::prelude::*;

    /// Clocks that move only when a test moves them.
    #[derive(Default)]
    struct Fake {
        mono: AtomicU64,
        real: AtomicU64,
    }

    impl Fake {
        fn leak(mono: u64, real: u64) -> &'static Fake {
            let fake = Box::leak(Box::new(Fake::default()));
            fake.mono.store(mono, Ordering::SeqCst);
            fake.real.store(real, Ordering::SeqCst);
            fake
        }
        /// Both clocks move on by `ns`.
        fn pass(&self, ns: u64) {
            self.mono.fetch_add(ns, Ordering::SeqCst);
            self.real.fetch_add(ns, Ordering::SeqCst);
        }
    }

    impl TimeSource for Fake {
        fn monotonic_ns(&self) -> u64 {
            self.mono.load(Ordering::SeqCst)
        }
        fn realtime_ns(&self) -> u64 {
            self.real.load(Ordering::SeqCst)
        }
    }

    const MS: u64 = 1_000_000;

    fn count(t: &TimerFd) -> Result<u64, Errno> {
        let mut buf = [0u8; 8];
        t.read(&mut buf, true)?;
        Ok(u64::from_ne_bytes(buf))
    }

    fn rel(interval_ns: u64, value_ns: u64) -> ItimerSpec {
        ItimerSpec::from_ns(interval_ns, value_ns)
    }

    #[test]
    fn clocks_and_layout() {
        assert_eq!(TimerClock::from_id(0), Ok(TimerClock::Realtime));
        assert_eq!(TimerClock::from_id(8), Ok(TimerClock::Realtime));
        for id in [1, 7, 9] {
            assert_eq!(TimerClock::from_id(id), Ok(TimerClock::Monotonic));
        }
        // CPU-time, raw, coarse, TAI and made-up clocks.
        for id in [2, 3, 4, 5, 6, 10, 11, 12, -1, -6, i32::MAX] {
            assert_eq!(TimerClock::from_id(id), Err(Errno::EINVAL), "{id}");
        }
        let spec = ItimerSpec {
            interval_sec: 1,
            interval_nsec: 2,
            value_sec: 3,
            value_nsec: 4,
        };
        let bytes = spec.to_bytes();
        assert_eq!(bytes[..8], 1i64.to_ne_bytes());
        assert_eq!(bytes[24..], 4i64.to_ne_bytes());
        assert_eq!(ItimerSpec::from_bytes(&bytes), Some(spec));
        assert_eq!(ItimerSpec::from_bytes(&bytes[..31]), None);
        assert_eq!(size_of::<ItimerSpec>(), ITIMERSPEC_SIZE);
        assert_eq!(spec.value_ns(), Ok(3 * NSEC_PER_SEC + 4));
        assert_eq!(
            ItimerSpec::from_ns(1_500_000_000, 7),
            ItimerSpec {
                interval_sec: 1,
                interval_nsec: 500_000_000,
                value_sec: 0,
                value_nsec: 7
            }
        );
    }

    #[test]
    fn one_shot_relative_expires_once() {
        let clock = Fake::leak(1_000 * MS, 0);
        let t = TimerFd::new(TimerClock::Monotonic, clock);
        assert_eq!(t.gettime(), ItimerSpec::default());
        assert_eq!(count(&t), Err(Errno::EAGAIN));
        assert_eq!(t.settime(0, rel(0, 10 * MS)), Ok(ItimerSpec::default()));
        assert_eq!(t.poll_events(), 0);
        clock.pass(4 * MS);
        assert_eq!(t.gettime(), rel(0, 6 * MS));
        assert_eq!(count(&t), Err(Errno::EAGAIN));
        // Exactly at the deadline: expired.
        clock.pass(6 * MS);
        assert_eq!(t.poll_events(), POLLIN);
        assert_eq!(t.gettime(), ItimerSpec::default());
        clock.pass(100 * MS);
        assert_eq!(count(&t), Ok(1));
        assert_eq!(count(&t), Err(Errno::EAGAIN));
        assert_eq!(t.poll_events(), 0);
    }

    #[test]
    fn periodic_counts_overruns_and_rearms_from_the_schedule() {
        let clock = Fake::leak(0, 0);
        let t = TimerFd::new(TimerClock::Monotonic, clock);
        t.settime(0, rel(10 * MS, 5 * MS)).unwrap();
        clock.pass(5 * MS);
        assert_eq!(count(&t), Ok(1));
        // 3.5 intervals later: expiries at 15, 25, 35 ms.
        clock.pass(35 * MS);
        assert_eq!(t.gettime(), rel(10 * MS, 5 * MS), "next at 45 ms");
        assert_eq!(count(&t), Ok(3));
        clock.pass(4 * MS);
        assert_eq!(count(&t), Err(Errno::EAGAIN));
        clock.pass(MS);
        assert_eq!(count(&t), Ok(1));
        // A huge gap: the count is exact, not capped.
        clock.pass(10_000 * 10 * MS);
        assert_eq!(count(&t), Ok(10_000));
    }

    #[test]
    fn absolute_times_and_disarming() {
        let clock = Fake::leak(50 * MS, 7_000 * MS);
        let mono = TimerFd::new(TimerClock::Monotonic, clock);
        let real = TimerFd::new(TimerClock::Realtime, clock);
        // Absolute on each timer's own clock.
        mono.settime(TFD_TIMER_ABSTIME, rel(0, 60 * MS)).unwrap();
        real.settime(TFD_TIMER_ABSTIME, rel(0, 7_020 * MS)).unwrap();
        assert_eq!(mono.gettime(), rel(0, 10 * MS));
        assert_eq!(real.gettime(), rel(0, 20 * MS));
        clock.pass(10 * MS);
        assert_eq!(count(&mono), Ok(1));
        assert_eq!(count(&real), Err(Errno::EAGAIN));
        // An absolute time already past expires at once; with an interval, the periods
        // since then count too (Linux's hrtimer_forward).
        mono.settime(TFD_TIMER_ABSTIME, rel(0, 1)).unwrap();
        assert_eq!(count(&mono), Ok(1));
        mono.settime(TFD_TIMER_ABSTIME, rel(25 * MS, 10 * MS))
            .unwrap();
        // now 60: expiries at 10, 35, 60.
        assert_eq!(count(&mono), Ok(3));
        assert_eq!(mono.gettime(), rel(25 * MS, 25 * MS));
        // Re-arming drops the unread count and returns the old setting.
        clock.pass(30 * MS); // 90: one more expiry (85) unread.
        assert_eq!(mono.settime(0, rel(0, 100 * MS)), Ok(rel(25 * MS, 20 * MS)));
        assert_eq!(count(&mono), Err(Errno::EAGAIN));
        // A zero value disarms; the interval given is kept for gettime, as Linux does.
        assert_eq!(mono.settime(0, rel(5 * MS, 0)), Ok(rel(0, 100 * MS)));
        assert_eq!(mono.gettime(), rel(5 * MS, 0));
        clock.pass(1_000 * MS);
        assert_eq!(count(&mono), Err(Errno::EAGAIN));
        assert_eq!(mono.poll_events(), 0);
    }

    #[test]
    fn errors_change_nothing() {
        let clock = Fake::leak(0, 0);
        let t = TimerFd::new(TimerClock::Monotonic, clock);
        t.settime(0, rel(3 * MS, 10 * MS)).unwrap();
        let before = t.gettime();
        let bad = [
            ItimerSpec {
                value_nsec: 1_000_000_000,
                ..rel(0, 1)
            },
            ItimerSpec {
                value_nsec: -1,
                ..rel(0, 1)
            },
            ItimerSpec {
                value_sec: -1,
                ..rel(0, 1)
            },
            ItimerSpec {
                interval_nsec: 1_000_000_000,
                ..rel(0, 1)
            },
            ItimerSpec {
                interval_sec: i64::MIN,
                ..rel(0, 1)
            },
        ];
        for spec in bad {
            assert_eq!(spec.check(), Err(Errno::EINVAL));
            assert_eq!(t.settime(0, spec), Err(Errno::EINVAL), "{spec:?}");
        }
        for flags in [4, 8, 0x100, u32::MAX, O_NONBLOCK, O_CLOEXEC] {
            assert_eq!(
                t.settime(flags, rel(0, 1)),
                Err(Errno::EINVAL),
                "{flags:#x}"
            );
        }
        assert_eq!(t.gettime(), before);
        assert_eq!(t.read(&mut [0; 7], true), Err(Errno::EINVAL));
        clock.pass(10 * MS);
        // A short buffer takes nothing away.
        assert_eq!(t.read(&mut [0; 7], false), Err(Errno::EINVAL));
        let mut big = [0u8; 16];
        assert_eq!(t.read(&mut big, true), Ok(8));
        assert_eq!(big[..8], 1u64.to_ne_bytes());
        // A huge value saturates instead of wrapping, and never expires.
        t.settime(
            0,
            ItimerSpec {
                value_sec: i64::MAX,
                ..rel(0, 0)
            },
        )
        .unwrap();
        clock.pass(1_000_000 * MS);
        assert_eq!(count(&t), Err(Errno::EAGAIN));
        assert!(t.gettime().value_sec > 0);
    }

    #[test]
    fn a_huge_interval_expires_once() {
        let clock = Fake::leak(10, 0);
        let t = TimerFd::new(TimerClock::Monotonic, clock);
        t.settime(0, rel(u64::MAX, 5)).unwrap();
        clock.pass(5);
        assert_eq!(count(&t), Ok(1));
        clock.pass(u64::MAX / 2);
        assert_eq!(count(&t), Err(Errno::EAGAIN));
        assert_eq!(t.gettime().interval_ns(), Ok(u64::MAX));
    }

    #[test]
    fn the_generation_moves_when_it_becomes_readable_and_at_settime() {
        let clock = Fake::leak(0, 0);
        let t = TimerFd::new(TimerClock::Monotonic, clock);
        let g0 = t.generation();
        t.settime(0, rel(MS, MS)).unwrap();
        let g1 = t.generation();
        assert_ne!(g0, g1);
        assert_eq!(t.generation(), g1, "looking moves nothing");
        clock.pass(MS);
        let g2 = t.generation();
        assert_ne!(g1, g2);
        // Further expiries while unread do not move it (one edge until read).
        clock.pass(5 * MS);
        assert_eq!(t.generation(), g2);
        assert_eq!(count(&t), Ok(6));
        assert_eq!(t.generation(), g2, "a read moves nothing");
        clock.pass(MS);
        assert_ne!(t.generation(), g2);
    }

    /// The hooks of the process layer: the earliest deadline of the timers not yet
    /// readable, in monotonic time (a real-time timer's converted), and `fire_due`.
    /// Other tests' timers are in the same registry, so only bounds are checked.
    #[test]
    fn next_deadline_and_fire_due() {
        let clock = Fake::leak(1_000 * MS, 5_000 * MS);
        let real = TimerFd::new(TimerClock::Realtime, clock);
        real.settime(TFD_TIMER_ABSTIME, rel(0, 5_030 * MS)).unwrap();
        let wake = real.core.wake_at();
        assert_eq!(wake, Some(1_030 * MS));
        assert!(next_deadline_ns().is_some_and(|d| d <= 1_030 * MS));
        clock.pass(30 * MS);
        let g = real.core.generation.load(Ordering::SeqCst);
        fire_due();
        assert_ne!(real.core.generation.load(Ordering::SeqCst), g);
        // Readable: no more wake for it.
        assert_eq!(real.core.wake_at(), None);
        assert_eq!(count(&real), Ok(1));
        assert_eq!(real.core.wake_at(), None, "a one-shot timer is done");
    }

    /// `TFD_TIMER_CANCEL_ON_SET`: with `TFD_TIMER_ABSTIME` on the wall clock, a setting
    /// of the clock makes the next read `ECANCELED` (once); otherwise it is ignored.
    #[test]
    fn cancel_on_set() {
        let clock = Fake::leak(0, 1_000 * MS);
        let cancel = TimerFd::new(TimerClock::Realtime, clock);
        let plain_abs = TimerFd::new(TimerClock::Realtime, clock);
        let relative = TimerFd::new(TimerClock::Realtime, clock);
        let mono = TimerFd::new(TimerClock::Monotonic, clock);
        let both = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET;
        cancel.settime(both, rel(0, 2_000 * MS)).unwrap();
        plain_abs
            .settime(TFD_TIMER_ABSTIME, rel(0, 2_000 * MS))
            .unwrap();
        relative
            .settime(TFD_TIMER_CANCEL_ON_SET, rel(0, 1_000 * MS))
            .unwrap();
        mono.settime(both, rel(0, 1_000 * MS)).unwrap();
        assert_eq!(cancel.poll_events(), 0);
        // The wall clock jumps back by half a second.
        clock.real.store(500 * MS, Ordering::SeqCst);
        clock_was_set();
        assert_eq!(cancel.poll_events(), POLLIN);
        assert_eq!(count(&cancel), Err(Errno::ECANCELED));
        assert_eq!(count(&cancel), Err(Errno::EAGAIN), "once per setting");
        assert_eq!(cancel.poll_events(), 0);
        for t in [&plain_abs, &relative, &mono] {
            assert_eq!(t.poll_events(), 0);
            assert_eq!(count(t), Err(Errno::EAGAIN));
        }
        // Absolute deadlines on the wall clock moved with it; a relative one keeps its
        // length (Linux turns relative real-time timers into monotonic ones).
        assert_eq!(plain_abs.gettime(), rel(0, 1_500 * MS));
        assert_eq!(relative.gettime(), rel(0, 1_000 * MS));
        assert_eq!(cancel.gettime(), rel(0, 1_500 * MS), "still armed");
        assert_eq!(mono.gettime(), rel(0, 1_000 * MS));
        // Unread expirations are dropped by the cancellation.
        clock.pass(1_500 * MS);
        clock_was_set();
        assert_eq!(count(&cancel), Err(Errno::ECANCELED));
        assert_eq!(count(&cancel), Err(Errno::EAGAIN));
        assert_eq!(count(&plain_abs), Ok(1));
        // Re-arming without the flag makes it plain again.
        cancel
            .settime(TFD_TIMER_ABSTIME, rel(0, 10_000 * MS))
            .unwrap();
        clock_was_set();
        assert_eq!(count(&cancel), Err(Errno::EAGAIN));
    }

    /// On the wall clock, an absolute deadline follows a jump of the clock and a relative
    /// one keeps its length (it counts on the monotonic clock, as Linux's does), its
    /// interval too; its wake time is its monotonic deadline.
    #[test]
    fn a_relative_real_time_timer_keeps_its_length() {
        let clock = Fake::leak(100 * MS, 9_000 * MS);
        let relative = TimerFd::new(TimerClock::Realtime, clock);
        let absolute = TimerFd::new(TimerClock::Realtime, clock);
        relative.settime(0, rel(10 * MS, 10 * MS)).unwrap();
        absolute
            .settime(TFD_TIMER_ABSTIME, rel(0, 9_010 * MS))
            .unwrap();
        assert_eq!(relative.core.wake_at(), Some(110 * MS));
        // The wall clock jumps an hour ahead: only the absolute timer expires.
        clock.real.fetch_add(3_600_000 * MS, Ordering::SeqCst);
        assert_eq!(count(&relative), Err(Errno::EAGAIN));
        assert_eq!(relative.gettime(), rel(10 * MS, 10 * MS));
        assert_eq!(count(&absolute), Ok(1));
        clock.pass(25 * MS);
        assert_eq!(count(&relative), Ok(2));
        // Re-armed absolute, it counts on the wall clock again.
        relative
            .settime(TFD_TIMER_ABSTIME, rel(0, 3_609_100 * MS))
            .unwrap();
        assert_eq!(relative.gettime(), rel(0, 75 * MS));
    }

    /// A blocking read waits until another thread moves the clock past the deadline
    /// (the host's `Spin` wait asks the timer again and again).
    #[test]
    fn a_blocking_read_waits_for_the_expiry() {
        let clock = Fake::leak(0, 0);
        let t = std::sync::Arc::new(TimerFd::new(TimerClock::Monotonic, clock));
        t.settime(0, rel(0, 10 * MS)).unwrap();
        let mover = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            clock.pass(10 * MS);
        });
        let mut buf = [0u8; 8];
        assert_eq!(t.read(&mut buf, false), Ok(8));
        assert_eq!(u64::from_ne_bytes(buf), 1);
        mover.join().unwrap();
    }

    proptest! {
        /// Whatever the arming and however the clock moves between reads, the reads
        /// together return exactly the expirations a model counts up to the last look:
        /// `1 + (now - first) / interval` for a periodic timer, 1 for a one-shot, 0 before
        /// the first; `gettime` always tells the next expiry of that schedule.
        #[test]
        fn reads_add_up_to_the_schedule(
            start in 0u64..1_000_000,
            value in 1u64..10_000,
            interval in prop_oneof![Just(0u64), 1u64..5_000],
            absolute in any::<bool>(),
            steps in proptest::collection::vec((0u64..20_000, any::<bool>()), 1..40),
        ) {
            let clock = Fake::leak(start, 0);
            let t = TimerFd::new(TimerClock::Monotonic, clock);
            let (flags, first) = if absolute {
                (TFD_TIMER_ABSTIME, value)
            } else {
                (0, start + value)
            };
            t.settime(flags, rel(interval, value)).unwrap();
            let mut read = 0u64;
            for (step, look) in steps {
                clock.pass(step);
                let now = clock.monotonic_ns();
                let expected = match (now >= first, interval) {
                    (false, _) => 0,
                    (true, 0) => 1,
                    (true, i) => 1 + (now - first) / i,
                };
                let next = match (now >= first, interval) {
                    (false, _) => first - now,
                    (true, 0) => 0,
                    (true, i) => first + ((now - first) / i + 1) * i - now,
                };
                prop_assert_eq!(t.gettime(), rel(interval, next));
                prop_assert_eq!(t.poll_events() == POLLIN, expected > read);
                if look {
                    match count(&t) {
                        Ok(n) => read += n,
                        Err(e) => prop_assert_eq!(e, Errno::EAGAIN),
                    }
                    prop_assert_eq!(read, expected);
                }
            }
        }
    }
}
