//! Clocks and sleeping: clock_gettime, clock_getres, nanosleep, clock_nanosleep, sched_yield
//! (the CPU-time clocks are [`crate::cputime`]'s).

use uk_syscall::Errno;

use crate::cputime::CpuClock;
use crate::futex::WaitEnd;
use crate::system::System;

/// Linux's `struct timespec` on 64-bit targets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

impl From<[i64; 2]> for Timespec {
    /// The fields in ABI order, as read from a caller (`[tv_sec, tv_nsec]`).
    fn from([tv_sec, tv_nsec]: [i64; 2]) -> Self {
        Self { tv_sec, tv_nsec }
    }
}

/// Nanoseconds per second.
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

impl Timespec {
    /// `ns` nanoseconds as a timespec.
    pub const fn from_ns(ns: u64) -> Self {
        Self {
            tv_sec: (ns / NSEC_PER_SEC) as i64,
            tv_nsec: (ns % NSEC_PER_SEC) as i64,
        }
    }

    /// The value in nanoseconds (saturating at `u64::MAX`), seconds and nanoseconds both
    /// honoured (Unikraft 0.11's futex ignores `tv_sec`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a negative second count or nanoseconds outside `0..1e9`.
    pub fn to_ns(self) -> Result<u64, Errno> {
        if self.tv_sec < 0 || !(0..NSEC_PER_SEC as i64).contains(&self.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Ok((self.tv_sec as u64)
            .saturating_mul(NSEC_PER_SEC)
            .saturating_add(self.tv_nsec as u64))
    }
}

/// Wall-clock time (starts at the epoch: no RTC is read; see [`System::set_realtime_ns`]).
pub const CLOCK_REALTIME: i32 = 0;
/// Time since boot, never set.
pub const CLOCK_MONOTONIC: i32 = 1;
/// Same as `CLOCK_MONOTONIC` here.
pub const CLOCK_MONOTONIC_RAW: i32 = 4;
/// Same as `CLOCK_REALTIME` here.
pub const CLOCK_REALTIME_COARSE: i32 = 5;
/// Same as `CLOCK_MONOTONIC` here.
pub const CLOCK_MONOTONIC_COARSE: i32 = 6;
/// Same as `CLOCK_MONOTONIC` here (nothing suspends).
pub const CLOCK_BOOTTIME: i32 = 7;
/// clock_nanosleep: the request is an absolute time.
pub const TIMER_ABSTIME: i32 = 1;

/// Which clock a clock id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Realtime,
    Monotonic,
}

pub(crate) fn kind(clock: i32) -> Result<Kind, Errno> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Ok(Kind::Realtime),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            Ok(Kind::Monotonic)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// When a wait or sleep ends by itself: a time of the monotonic clock, or of the wall
/// clock, which may be set meanwhile (a waiter works its deadline out again on every
/// wake-up, and setting the wall clock wakes every waiter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// This time of the monotonic clock, in nanoseconds.
    Monotonic(u64),
    /// This time of the wall clock (`CLOCK_REALTIME`), in nanoseconds since the epoch.
    WallClock(u64),
}

impl System {
    /// clock_gettime(2) without the pointer: the time on `clock`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown clock id, and for a CPU-time clock as
    /// [`crate::cputime`] says (a process or thread that does not exist, a scheduler that
    /// does not count).
    pub fn clock_gettime(&self, clock: i32) -> Result<Timespec, Errno> {
        if let Some(cpu) = CpuClock::decode(clock) {
            return self.cpu_clock_gettime(cpu?);
        }
        Ok(Timespec::from_ns(match kind(clock)? {
            Kind::Realtime => self.realtime_ns(),
            Kind::Monotonic => self.monotonic_ns(),
        }))
    }

    /// clock_settime(2) without the pointer: sets `CLOCK_REALTIME` to `ts` (the image is
    /// root, so it may). Sleeps until, and timers armed for, an absolute time of the
    /// real-time clock follow it, as on Linux: one whose time the clock jumped past ends or
    /// expires at once. Relative ones keep their length. uk-vfs's timerfds follow the same
    /// rule (see [`System::set_realtime_ns`]).
    ///
    /// # Errors
    ///
    /// `EINVAL` for any other clock (Linux's: the monotonic ones cannot be set, CPU-time
    /// clocks neither) and for a negative second count or nanoseconds outside `0..1e9`.
    pub fn clock_settime(&self, clock: i32, ts: Timespec) -> Result<(), Errno> {
        if clock != CLOCK_REALTIME {
            return Err(Errno::EINVAL);
        }
        self.set_realtime_ns(ts.to_ns()?);
        Ok(())
    }

    /// clock_getres(2) without the pointer: the resolution of `clock`, one tick of the
    /// counter the clocks are read from (the board's: 16 ns for QEMU `virt`'s 62.5 MHz
    /// generic timer, 1 ns for a TSC of a gigahertz or more), rounded up to whole
    /// nanoseconds; 1 ns on a hosted build.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a clock [`System::clock_gettime`] refuses.
    pub fn clock_getres(&self, clock: i32) -> Result<Timespec, Errno> {
        match CpuClock::decode(clock) {
            // The clock must be one that can be read (a live process or thread).
            Some(cpu) => drop(self.cpu_clock_gettime(cpu?)?),
            None => drop(kind(clock)?),
        }
        let ns = self
            .counter_hz()
            .filter(|&hz| hz > 0)
            .map_or(1, |hz| NSEC_PER_SEC.div_ceil(hz));
        Ok(Timespec::from_ns(ns))
    }

    /// The monotonic time `until` stands for now.
    pub(crate) fn monotonic_deadline(&self, until: Deadline) -> u64 {
        match until {
            Deadline::Monotonic(ns) => ns,
            Deadline::WallClock(unix_ns) => self.wall_to_monotonic(unix_ns),
        }
    }

    /// Sleeps until `until`, or until a signal for the thread has run its handler
    /// (`EINTR`; ignored signals do not end the sleep). A wall-clock deadline is worked
    /// out again whenever the wall clock is set.
    fn sleep_until(&self, until: Deadline) -> Result<(), Errno> {
        if uk_sched::current().is_some() {
            loop {
                // Queued as a signal waiter, so that a sender finds the sleeper.
                let end = self.wait_for_signal(Some(until), || self.has_deliverable_signal())?;
                if end != WaitEnd::TimedOut && self.deliver_pending_signals() > 0 {
                    return Err(Errno::EINTR);
                }
                if self.monotonic_ns() >= self.monotonic_deadline(until) {
                    return Ok(());
                }
            }
        }
        if !self.has_clock() {
            log::warn!("sleep outside a scheduler thread with no clock installed: ENOSYS");
            return Err(Errno::ENOSYS);
        }
        // The boot context has nothing to switch to: watch the clock.
        while self.monotonic_ns() < self.monotonic_deadline(until) {
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// nanosleep(2): sleeps at least `req`, unless a signal for the thread runs its handler
    /// first.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad timespec; `EINTR` when a signal handler ended the sleep (the raw
    /// syscall then writes the time left to `rem`).
    pub fn nanosleep(&self, req: Timespec) -> Result<(), Errno> {
        let ns = req.to_ns()?;
        self.sleep_until(Deadline::Monotonic(self.monotonic_ns().saturating_add(ns)))
    }

    /// clock_nanosleep(2): sleeps for `req` on `clock`, or until it (with `TIMER_ABSTIME`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown clock or a bad timespec, `EOPNOTSUPP` (ENOTSUP) for a CPU-time
    /// clock, `EINTR` when a signal handler ended the sleep.
    pub fn clock_nanosleep(&self, clock: i32, flags: i32, req: Timespec) -> Result<(), Errno> {
        let kind = match kind(clock) {
            Ok(k) => k,
            // Linux: CPU-time clocks cannot be slept on.
            Err(_) if clock == 2 || clock == 3 => return Err(Errno::EOPNOTSUPP),
            Err(e) => return Err(e),
        };
        let ns = req.to_ns()?;
        let until = if flags & TIMER_ABSTIME != 0 {
            match kind {
                Kind::Monotonic => Deadline::Monotonic(ns),
                Kind::Realtime => Deadline::WallClock(ns),
            }
        } else {
            Deadline::Monotonic(self.monotonic_ns().saturating_add(ns))
        };
        self.sleep_until(until)
    }

    /// sched_yield(2): lets every other runnable thread run first.
    pub fn sched_yield(&self) {
        if uk_sched::current().is_some() {
            uk_sched::yield_now();
        }
    }
}
