//! The interval timers: `setitimer`/`getitimer` with `ITIMER_REAL`, `ITIMER_VIRTUAL` and
//! `ITIMER_PROF`, and `alarm`.
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
//! `ITIMER_VIRTUAL` and `ITIMER_PROF` count the process's CPU time (the same here: there
//! is no kernel mode, so all of it is user time) and send `SIGVTALRM` and `SIGPROF`. A
//! thread's CPU time only grows while it runs, so their expiry is checked where a running
//! thread passes: on the way back from every system call (the image's return hook,
//! [`System::syscall_returned`]), which then delivers the signal to that thread. A
//! profiler's `SIGPROF` thus comes at the first call after the time ran out; a loop that
//! makes no calls is not interrupted (no preemption, as for every signal here). They need
//! a scheduler that counts CPU time (`EINVAL` otherwise), and cost nothing on the return
//! path until one is armed. The POSIX timers of [`crate::timer`] fire through the same
//! waits as `ITIMER_REAL`.

use core::sync::atomic::{AtomicBool, Ordering};

use uk_syscall::Errno;

use crate::cputime::CpuClock;
use crate::signal::{SI_KERNEL, SIGALRM, SIGPROF, SIGVTALRM, SigInfo, enqueue};
use crate::system::System;
use crate::time::NSEC_PER_SEC;

/// Set once any process armed a CPU-time timer: until then, the return path does not look
/// at CPU time.
static CPU_ALARMS_USED: AtomicBool = AtomicBool::new(false);

/// `setitimer`: the real-time timer, which sends `SIGALRM`.
pub const ITIMER_REAL: i32 = 0;
/// `setitimer`: process CPU time in user mode, which sends `SIGVTALRM`.
pub const ITIMER_VIRTUAL: i32 = 1;
/// `setitimer`: process CPU time, which sends `SIGPROF`.
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

/// Which interval timer a `which` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// `ITIMER_REAL`, on the monotonic clock.
    Real,
    /// `ITIMER_VIRTUAL` (0) or `ITIMER_PROF` (1), on the process's CPU time.
    Cpu(usize),
}

fn check_which(which: i32) -> Result<Which, Errno> {
    match which {
        ITIMER_REAL => Ok(Which::Real),
        ITIMER_VIRTUAL => Ok(Which::Cpu(0)),
        ITIMER_PROF => Ok(Which::Cpu(1)),
        _ => Err(Errno::EINVAL),
    }
}

/// The signal of CPU-time timer `index`.
const CPU_ALARM_SIGNALS: [i32; 2] = [SIGVTALRM, SIGPROF];

impl Alarm {
    /// The alarm after an expiry at `now`: re-armed by its interval past `now` (the
    /// periods that went by unseen skipped), or none.
    fn after_expiry(self, now: u64) -> Option<Alarm> {
        (self.interval_ns > 0).then(|| {
            let missed = (now - self.deadline_ns) / self.interval_ns + 1;
            Alarm {
                deadline_ns: self
                    .deadline_ns
                    .saturating_add(missed.saturating_mul(self.interval_ns)),
                interval_ns: self.interval_ns,
            }
        })
    }

    /// Its setting as `getitimer` reports it at `now` (a due one reads as 1 µs).
    fn setting(self, now: u64) -> Itimerval {
        Itimerval {
            interval: Timeval::from_ns_up(self.interval_ns),
            value: Timeval::from_ns_up(self.deadline_ns.saturating_sub(now).max(1)),
        }
    }
}

impl System {
    /// `getitimer(which)`: the time left and the interval of one of the caller's process
    /// timers.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown timer, or a CPU-time one when the caller's scheduler does
    /// not count CPU time.
    pub fn getitimer(&self, which: i32) -> Result<Itimerval, Errno> {
        let (alarm, now) = match check_which(which)? {
            Which::Real => {
                self.fire_due_alarm();
                let alarm = self.with_caller_signals(|_, p, _, _| p.alarm)?;
                (alarm, self.monotonic_ns())
            }
            Which::Cpu(index) => {
                let now = self.cpu_time_ns(CpuClock::Process(0))?;
                (
                    self.with_caller_signals(|_, p, _, _| p.cpu_alarms[index])?,
                    now,
                )
            }
        };
        Ok(alarm.map_or_else(Itimerval::default, |a| a.setting(now)))
    }

    /// `setitimer(which, new)`: arms the caller's process timer to expire after
    /// `new.value` and then every `new.interval` (a zero value disarms it); returns the
    /// previous setting, as `getitimer` would have.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown timer or a bad `timeval`, or as [`System::getitimer`];
    /// nothing changes.
    pub fn setitimer(&self, which: i32, new: Itimerval) -> Result<Itimerval, Errno> {
        let which_timer = check_which(which)?;
        let value = new.value.to_ns()?;
        let interval = new.interval.to_ns()?;
        let old = self.getitimer(which)?;
        let now = match which_timer {
            Which::Real => self.monotonic_ns(),
            Which::Cpu(_) => self.cpu_time_ns(CpuClock::Process(0))?,
        };
        let alarm = (value > 0).then(|| Alarm {
            deadline_ns: now.saturating_add(value),
            interval_ns: interval,
        });
        self.with_caller_signals(|_, p, _, _| match which_timer {
            Which::Real => p.alarm = alarm,
            Which::Cpu(index) => {
                if alarm.is_some() {
                    CPU_ALARMS_USED.store(true, Ordering::Relaxed);
                }
                p.cpu_alarms[index] = alarm;
            }
        })?;
        // A thread that computes from now on is interrupted when it runs out.
        self.request_timer_interrupt();
        Ok(old)
    }

    /// What the image's system-call return hook does for the calling thread: fires the
    /// CPU-time timers of its process that ran out, then runs the handlers of the
    /// signals pending for it, as Linux does on the way back to user mode. A thread the
    /// layer does not know is left alone.
    pub fn syscall_returned(&self) {
        self.recheck_timers_after_interrupt();
        self.deliver_on_return();
    }

    /// When the caller's process's CPU-time timers would run out if it kept the CPU from
    /// `now` on (monotonic nanoseconds): the earliest, if one is armed.
    pub(crate) fn cpu_alarm_deadline(&self, now: u64) -> Option<u64> {
        if !CPU_ALARMS_USED.load(Ordering::Relaxed) || !self.caller_is_known() {
            return None;
        }
        let used = self.cpu_time_ns(CpuClock::Process(0)).ok()?;
        let earliest = self
            .with_caller_signals(|_, p, _, _| {
                p.cpu_alarms.iter().flatten().map(|a| a.deadline_ns).min()
            })
            .ok()??;
        Some(now.saturating_add(earliest.saturating_sub(used)))
    }

    /// Fires the caller's process's CPU-time timers whose time ran out: `SIGVTALRM` or
    /// `SIGPROF` becomes pending for the process, and the timer is re-armed or disarmed.
    /// Nothing until a CPU-time timer was armed, and nothing for a caller the layer does
    /// not know (it would be adopted into a process) or whose CPU time is not counted.
    pub(crate) fn fire_due_cpu_alarms(&self) {
        if !CPU_ALARMS_USED.load(Ordering::Relaxed) || !self.caller_is_known() {
            return;
        }
        let Ok(now) = self.cpu_time_ns(CpuClock::Process(0)) else {
            return;
        };
        let fired = self.with_caller_signals(|_, p, _, pid| {
            let mut fired = false;
            for (slot, signo) in p.cpu_alarms.iter_mut().zip(CPU_ALARM_SIGNALS) {
                let Some(alarm) = slot.filter(|a| now >= a.deadline_ns) else {
                    continue;
                };
                *slot = alarm.after_expiry(now);
                let info = SigInfo::new(signo, SI_KERNEL, 0);
                fired |= enqueue(&mut p.pending, &mut p.queued, info, false).is_ok();
            }
            fired.then_some(pid)
        });
        if let Ok(Some(pid)) = fired {
            // Re-armed by its interval: the next run-out needs an interrupt too.
            self.request_timer_interrupt();
            self.note_signal_sent();
            // The caller takes it on its way back unless it blocks it; then another thread.
            for signo in CPU_ALARM_SIGNALS {
                let _ = self.hand_to_a_waiter(pid, signo);
            }
        }
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
            p.alarm = a.after_expiry(now);
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
