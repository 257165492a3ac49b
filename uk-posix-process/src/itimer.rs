//! The real-time interval timer: `setitimer`/`getitimer` with `ITIMER_REAL`, and `alarm`.
//!
//! Each process has one timer: a deadline on the monotonic clock and an interval to re-arm
//! it with. When it expires the process gets `SIGALRM` (`si_code` `SI_KERNEL`), delivered
//! as any process-directed signal is: to a waiting thread that lets it through, which runs
//! the handler and sees its wait end with `EINTR`; without a handler the default action
//! ends the process with 128 + 14.
//!
//! There is no timer interrupt to fire it: the layer keeps the deadline where threads
//! wait. Every futex wait, sleep, `pause`, `sigsuspend` and `poll` also ends at the
//! process's timer deadline, fires the timer and carries on (or ends, if the signal is
//! for it). So a timer expires on time whenever a thread of the process is waiting,
//! sleeping or idle — the common `alarm(n); pause();`, or a timeout around a blocking
//! call — and otherwise at the next such call; a process that only computes never sees
//! it, as a cooperative scheduler would not run a timer thread meanwhile either.
//!
//! `ITIMER_VIRTUAL` and `ITIMER_PROF` count CPU time, which nothing would interrupt a
//! thread for when it runs out: they are refused with `EINVAL` rather than accepted and
//! never fired. The POSIX timers of [`crate::timer`] fire through the same waits.

use uk_syscall::Errno;

use crate::signal::{SI_KERNEL, SIGALRM, SigInfo, enqueue};
use crate::system::System;
use crate::time::NSEC_PER_SEC;

/// `setitimer`: the real-time timer, which sends `SIGALRM`.
pub const ITIMER_REAL: i32 = 0;
/// `setitimer`: process CPU time in user mode (not kept: `EINVAL`).
pub const ITIMER_VIRTUAL: i32 = 1;
/// `setitimer`: process CPU time (not kept: `EINVAL`).
pub const ITIMER_PROF: i32 = 2;

/// Linux's `struct timeval`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    /// Seconds.
    pub tv_sec: i64,
    /// Microseconds, `0..1_000_000`.
    pub tv_usec: i64,
}

impl Timeval {
    /// The value in nanoseconds (saturating).
    ///
    /// # Errors
    ///
    /// `EINVAL` for negative seconds or microseconds outside `0..1_000_000`.
    pub fn to_ns(self) -> Result<u64, Errno> {
        if self.tv_sec < 0 || !(0..1_000_000).contains(&self.tv_usec) {
            return Err(Errno::EINVAL);
        }
        Ok((self.tv_sec as u64)
            .saturating_mul(NSEC_PER_SEC)
            .saturating_add(self.tv_usec as u64 * 1000))
    }

    /// `ns` nanoseconds, rounded up to whole microseconds (a timer that has time left
    /// never reads as 0).
    pub fn from_ns_up(ns: u64) -> Timeval {
        let us = ns.div_ceil(1000);
        Timeval {
            tv_sec: (us / 1_000_000) as i64,
            tv_usec: (us % 1_000_000) as i64,
        }
    }
}

/// Linux's `struct itimerval`: the re-arming interval and the time left.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimerval {
    /// Re-armed with this after each expiry (0: once).
    pub interval: Timeval,
    /// Time to the next expiry (0: disarmed).
    pub value: Timeval,
}

impl From<[i64; 4]> for Itimerval {
    /// The fields in ABI order, as read from a caller.
    fn from([is, iu, vs, vu]: [i64; 4]) -> Self {
        Itimerval {
            interval: Timeval {
                tv_sec: is,
                tv_usec: iu,
            },
            value: Timeval {
                tv_sec: vs,
                tv_usec: vu,
            },
        }
    }
}

/// An armed timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Alarm {
    pub(crate) deadline_ns: u64,
    interval_ns: u64,
}

fn check_which(which: i32) -> Result<(), Errno> {
    match which {
        ITIMER_REAL => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

impl System {
    /// `getitimer(which)`: the time left and the interval of the caller's process timer.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a timer other than `ITIMER_REAL`.
    pub fn getitimer(&self, which: i32) -> Result<Itimerval, Errno> {
        check_which(which)?;
        self.fire_due_alarm();
        let now = self.monotonic_ns();
        let alarm = self.with_caller_signals(|_, p, _, _| p.alarm)?;
        Ok(alarm.map_or_else(Itimerval::default, |a| Itimerval {
            interval: Timeval::from_ns_up(a.interval_ns),
            value: Timeval::from_ns_up(a.deadline_ns.saturating_sub(now).max(1)),
        }))
    }

    /// `setitimer(which, new)`: arms the caller's process timer to expire after
    /// `new.value` and then every `new.interval` (a zero value disarms it); returns the
    /// previous setting, as `getitimer` would have.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a timer other than `ITIMER_REAL` or a bad `timeval`; nothing changes.
    pub fn setitimer(&self, which: i32, new: Itimerval) -> Result<Itimerval, Errno> {
        check_which(which)?;
        let value = new.value.to_ns()?;
        let interval = new.interval.to_ns()?;
        let old = self.getitimer(which)?;
        let now = self.monotonic_ns();
        let alarm = (value > 0).then(|| Alarm {
            deadline_ns: now.saturating_add(value),
            interval_ns: interval,
        });
        self.with_caller_signals(|_, p, _, _| p.alarm = alarm)?;
        Ok(old)
    }

    /// `alarm(seconds)`: `setitimer(ITIMER_REAL)` for `seconds` once (0 cancels); returns
    /// the seconds the previous alarm had left, rounded to the nearest (at least 1 if it
    /// had any time left).
    pub fn alarm(&self, seconds: u32) -> u32 {
        let new = Itimerval {
            value: Timeval {
                tv_sec: i64::from(seconds),
                tv_usec: 0,
            },
            ..Itimerval::default()
        };
        match self.setitimer(ITIMER_REAL, new) {
            Ok(old) if old.value != Timeval::default() => {
                let rounded = old.value.tv_sec + i64::from(old.value.tv_usec >= 500_000);
                rounded.max(1) as u32
            }
            _ => 0,
        }
    }

    /// Fires the caller's process timer if its deadline has passed: `SIGALRM` becomes
    /// pending for the process (and a waiting thread that lets it through is woken to
    /// take it), and the timer is re-armed by its interval (skipping the periods that
    /// passed unseen) or disarmed. Returns whether it fired.
    pub(crate) fn fire_due_alarm(&self) -> bool {
        let now = self.monotonic_ns();
        let fired = self.with_caller_signals(|_, p, _, pid| {
            let a = p.alarm?;
            if now < a.deadline_ns {
                return None;
            }
            p.alarm = (a.interval_ns > 0).then(|| {
                let missed = (now - a.deadline_ns) / a.interval_ns + 1;
                Alarm {
                    deadline_ns: a
                        .deadline_ns
                        .saturating_add(missed.saturating_mul(a.interval_ns)),
                    interval_ns: a.interval_ns,
                }
            });
            let info = SigInfo::new(SIGALRM, SI_KERNEL, 0);
            enqueue(&mut p.pending, &mut p.queued, info, false).ok()?;
            Some(pid)
        });
        let Ok(Some(pid)) = fired else {
            return false;
        };
        self.note_signal_sent();
        let _ = self.hand_to_a_waiter(pid, SIGALRM);
        true
    }
}
