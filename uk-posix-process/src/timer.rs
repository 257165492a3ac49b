//! POSIX per-process timers: `timer_create`, `timer_settime`, `timer_gettime`,
//! `timer_getoverrun`, `timer_delete`.
//!
//! A process owns up to [`MAX_TIMERS`] timers, numbered from 0 as Linux numbers them. Each
//! measures one clock (`CLOCK_REALTIME`, `CLOCK_MONOTONIC` and their variants; the CPU-time
//! clocks are `EOPNOTSUPP`: nothing would interrupt a thread when its CPU time runs out)
//! and notifies as its `sigevent` says: `SIGEV_SIGNAL` sends a signal to the process,
//! `SIGEV_THREAD_ID` to one thread of it (what musl's `SIGEV_THREAD` timers use: a helper
//! thread waits for the signal and calls the function), `SIGEV_NONE` nothing. The signal
//! carries `si_code` `SI_TIMER`, the timer id, the overrun count and the `sigev_value`.
//!
//! Expiry works as for the interval timer of [`crate::itimer`]: deadlines are kept where
//! threads wait, so every futex wait, sleep, `pause`, `sigsuspend`, `sigtimedwait` and
//! `poll` of the process also ends at its nearest timer deadline and fires the timers that
//! are due. A periodic timer whose expiries were not seen (nothing waited) counts them as
//! overruns, as does an expiry while the timer's previous signal is still queued: the
//! queued signal's `si_overrun` grows instead of a second one being queued, as on Linux.
//! `timer_getoverrun` reports the count of the timer's most recent signal. As on Linux, each
//! timer's signal has a queue entry of its own, also for a standard signal: two timers on
//! `SIGALRM`, or a `kill` and a timer, are two deliveries (a `kill` while the timer's
//! instance waits adds nothing, as for any pending standard signal).
//!
//! `timer_delete`, and `timer_settime` (re-arming or disarming), take back the timer's
//! signal if it is still queued (pending, not yet delivered or taken), as Linux does since
//! its POSIX timer rework (6.13; before, the kernel delivered it anyway): only that
//! instance goes, the others of the same number (a `sigqueue`'s, another timer's) stay,
//! and so does the pending bit while one of them waits. A process's timers and their
//! queued signals end with the process (there is no `execve` that would keep the process
//! and drop its timers).
//!
//! A timer armed with an absolute `CLOCK_REALTIME` time follows the wall clock: when
//! `clock_settime` or `settimeofday` moves it, the timer's deadline (and its later
//! periods) move with it, so a timer set for 12:00 expires when the wall clock says 12:00,
//! at once if the clock jumped past it; relative ones, and those on the monotonic clock,
//! keep their deadlines (POSIX, and Linux, do the same).
//!
//! Difference from Linux: a timer's signal is told from others by its `si_code` (`SI_TIMER`), id and number, so
//! a `sigqueue` the process sends itself with exactly those fields is taken for the
//! timer's.

use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, Ordering};

use uk_syscall::Errno;

use crate::ids::{Pid, Tid};
use crate::signal::{
    SI_TKILL, SI_USER, SigInfo, SigProcess, SigThread, check_signal, enqueue_timer, sig_bit,
    withdraw,
};
use crate::system::System;
use crate::time::{Kind, TIMER_ABSTIME, Timespec, kind};

/// `sigev_notify`: send `sigev_signo` to the process.
pub const SIGEV_SIGNAL: i32 = 0;
/// `sigev_notify`: no notification (the timer only counts).
pub const SIGEV_NONE: i32 = 1;
/// `sigev_notify`: a libc's thread notification; the kernel refuses it (`EINVAL`).
pub const SIGEV_THREAD: i32 = 2;
/// `sigev_notify`: send `sigev_signo` to the thread `sigev_notify_thread_id`.
pub const SIGEV_THREAD_ID: i32 = 4;
/// `si_code` of a timer's signal.
pub const SI_TIMER: i32 = -2;
/// Timers a process may have (Linux bounds them by `RLIMIT_SIGPENDING`).
pub const MAX_TIMERS: usize = 1024;
/// The largest overrun count reported (POSIX's `DELAYTIMER_MAX`).
pub const DELAYTIMER_MAX: u32 = i32::MAX as u32;

/// Linux's `struct sigevent` on 64-bit targets, as far as timers read it (64 bytes in all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigEvent {
    /// `sigev_value`, handed to the handler as `si_value`.
    pub value: u64,
    /// `sigev_signo`.
    pub signo: i32,
    /// `sigev_notify`.
    pub notify: i32,
    /// `sigev_notify_thread_id` (`SIGEV_THREAD_ID`).
    pub thread_id: i32,
}

impl SigEvent {
    /// Bytes of the structure in caller memory.
    pub const SIZE: usize = 64;

    /// The fields from the structure's first three words.
    pub fn from_words([value, signo_notify, tid]: [u64; 3]) -> SigEvent {
        SigEvent {
            value,
            signo: signo_notify as u32 as i32,
            notify: (signo_notify >> 32) as u32 as i32,
            thread_id: tid as u32 as i32,
        }
    }
}

/// Linux's `struct itimerspec`: the re-arming interval and the first expiry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimerspec {
    /// Re-armed with this after each expiry (0: once).
    pub interval: Timespec,
    /// Time to the next expiry, or its absolute time with `TIMER_ABSTIME` (0: disarmed).
    pub value: Timespec,
}

impl From<[i64; 4]> for Itimerspec {
    /// The fields in ABI order, as read from a caller.
    fn from([is, ins, vs, vns]: [i64; 4]) -> Self {
        Itimerspec {
            interval: Timespec::from([is, ins]),
            value: Timespec::from([vs, vns]),
        }
    }
}

/// Where a timer's signal goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    None,
    Process(i32),
    Thread(i32, Tid),
}

/// One timer of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PosixTimer {
    clock: Kind,
    target: Target,
    signo: i32,
    value: u64,
    /// Next expiry on the monotonic clock, when armed.
    deadline_ns: Option<u64>,
    /// Armed with an absolute time of `CLOCK_REALTIME`: the deadline follows the wall
    /// clock when it is set.
    follows_wall_clock: bool,
    interval_ns: u64,
    /// The overrun count of the timer's most recent signal.
    overrun: u32,
    /// Unique among the timers made since boot: tells a timer from a later one that got
    /// its id after it was deleted.
    serial: u64,
}

/// The next [`PosixTimer::serial`].
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// A process's timers, by id.
pub(crate) type Timers = BTreeMap<i32, PosixTimer>;

/// Moves the deadlines of the timers of `timers` that follow the wall clock by `moved_ns`,
/// the wall clock's jump (forward when positive), so each keeps its wall-clock time. (A
/// deadline moved before boot becomes boot, the monotonic clock's 0: a periodic timer
/// then counts its periods from there.)
pub(crate) fn follow_wall_clock(timers: &mut Timers, moved_ns: i128) {
    for timer in timers.values_mut().filter(|t| t.follows_wall_clock) {
        if let Some(deadline) = timer.deadline_ns.as_mut() {
            let moved = i128::from(*deadline) - moved_ns;
            *deadline = moved.clamp(0, i128::from(u64::MAX)) as u64;
        }
    }
}

/// A due timer's signal, to be queued once the process's state is let go.
struct Expiry {
    id: i32,
    serial: u64,
    signo: i32,
    value: u64,
    target: Target,
    missed: u64,
}

impl System {
    /// `timer_create(clock, sevp)`: a new disarmed timer of the caller's process; `None`
    /// for `sevp` is `SIGEV_SIGNAL` with `SIGALRM` and the timer id as value. Returns the
    /// id.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` for a CPU-time clock; `EINVAL` for another unknown clock, an unknown
    /// `sigev_notify` (`SIGEV_THREAD` included: that is the libc's), a bad signal number or
    /// a `SIGEV_THREAD_ID` thread that is not in the caller's process; `EAGAIN` beyond
    /// [`MAX_TIMERS`]. Nothing is created on error.
    pub fn timer_create(&self, clock: i32, sevp: Option<SigEvent>) -> Result<i32, Errno> {
        match crate::cputime::CpuClock::decode(clock) {
            Some(Ok(_)) => return Err(Errno::EOPNOTSUPP),
            Some(Err(e)) => return Err(e),
            None => {}
        }
        let clock_kind = kind(clock)?;
        let pid = self.getpid()?;
        let event = sevp.unwrap_or(SigEvent {
            signo: crate::signal::SIGALRM,
            notify: SIGEV_SIGNAL,
            ..SigEvent::default()
        });
        let target = match event.notify {
            SIGEV_NONE => Target::None,
            SIGEV_SIGNAL => Target::Process(pid),
            n if n == SIGEV_SIGNAL | SIGEV_THREAD_ID => {
                let tid = event.thread_id;
                if tid <= 0 || self.with_thread_signals(tid, Some(pid), |_| ()).is_err() {
                    return Err(Errno::EINVAL);
                }
                Target::Thread(pid, tid)
            }
            _ => return Err(Errno::EINVAL),
        };
        if target != Target::None {
            check_signal(event.signo).map_err(|_| Errno::EINVAL)?;
            if event.signo == 0 {
                return Err(Errno::EINVAL);
            }
        }
        self.with_caller_signals(|_, p, _, _| {
            if p.timers.len() >= MAX_TIMERS {
                return Err(Errno::EAGAIN);
            }
            let id = (0..).find(|id| !p.timers.contains_key(id)).unwrap_or(0);
            let value = if sevp.is_some() {
                event.value
            } else {
                id as u64
            };
            p.timers.insert(
                id,
                PosixTimer {
                    clock: clock_kind,
                    target,
                    signo: event.signo,
                    value,
                    deadline_ns: None,
                    follows_wall_clock: false,
                    interval_ns: 0,
                    overrun: 0,
                    serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
                },
            );
            Ok(id)
        })?
    }

    /// `timer_settime(id, flags, new)`: arms the timer to expire at `new.value` (relative,
    /// or an absolute time of its clock with `TIMER_ABSTIME`; 0 disarms) and then every
    /// `new.interval`; returns the previous setting, as `timer_gettime` would have.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown timer or a bad timespec; nothing changes.
    pub fn timer_settime(&self, id: i32, flags: i32, new: Itimerspec) -> Result<Itimerspec, Errno> {
        let value = new.value.to_ns()?;
        let interval = new.interval.to_ns()?;
        self.fire_due_timers();
        let now = self.monotonic_ns();
        let wall_deadline = self.wall_to_monotonic(value);
        let old = self.with_timer_signals(id, |p, thread| {
            let timer = p.timers.get_mut(&id).ok_or(Errno::EINVAL)?;
            let (target, signo) = (timer.target, timer.signo);
            let old = timer.setting(now);
            timer.deadline_ns = (value > 0).then(|| {
                if flags & TIMER_ABSTIME == 0 {
                    now.saturating_add(value)
                } else {
                    match timer.clock {
                        Kind::Monotonic => value,
                        Kind::Realtime => wall_deadline,
                    }
                }
            });
            timer.follows_wall_clock = flags & TIMER_ABSTIME != 0 && timer.clock == Kind::Realtime;
            timer.interval_ns = interval;
            // Its signal of the old setting, if still queued, goes (as on Linux 6.13).
            withdraw_queued(p, thread, target, signo, id);
            Ok(old)
        })??;
        // A thread that computes from now on is interrupted at the expiry.
        self.request_timer_interrupt();
        Ok(old)
    }

    /// `timer_gettime(id)`: the time to the timer's next expiry (0: disarmed; a due timer
    /// that nothing fired yet reads as 1 ns) and its interval.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown timer.
    pub fn timer_gettime(&self, id: i32) -> Result<Itimerspec, Errno> {
        self.fire_due_timers();
        let now = self.monotonic_ns();
        self.with_caller_signals(|_, p, _, _| {
            p.timers
                .get(&id)
                .map(|t| t.setting(now))
                .ok_or(Errno::EINVAL)
        })?
    }

    /// `timer_getoverrun(id)`: the overrun count of the timer's most recent signal (the
    /// expiries it stood for beyond the first), at most [`DELAYTIMER_MAX`].
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown timer.
    pub fn timer_getoverrun(&self, id: i32) -> Result<u32, Errno> {
        self.fire_due_timers();
        self.with_caller_signals(|_, p, _, _| {
            p.timers.get(&id).map(|t| t.overrun).ok_or(Errno::EINVAL)
        })?
    }

    /// `timer_delete(id)`: disarms and removes the timer, and takes back its signal if it
    /// is still queued for its process or thread (other pending signals, of the same number
    /// too, stay); its id may be given again.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown timer.
    pub fn timer_delete(&self, id: i32) -> Result<(), Errno> {
        self.with_timer_signals(id, |p, thread| {
            let timer = p.timers.remove(&id).ok_or(Errno::EINVAL)?;
            withdraw_queued(p, thread, timer.target, timer.signo, id);
            Ok(())
        })?
    }

    /// Runs `f` on the caller's process's signal state and, for a timer `id` that signals
    /// one thread, that thread's (`None` if the timer is silent, unknown, or its thread
    /// has ended).
    fn with_timer_signals<R>(
        &self,
        id: i32,
        f: impl FnOnce(&mut SigProcess, Option<(u64, &mut SigThread)>) -> R,
    ) -> Result<R, Errno> {
        let pid = self.getpid()?;
        self.with_process_and_thread_signals(
            pid,
            |p| p.timers.get(&id).and_then(|t| t.target.thread()),
            f,
        )
    }

    /// The nearest deadline among the caller's process's timers that notify (the interval
    /// timer included), if any is armed.
    pub(crate) fn timers_deadline(&self) -> Option<u64> {
        self.with_caller_signals(|_, p, _, _| {
            let posix = p
                .timers
                .values()
                .filter(|t| t.target != Target::None)
                .filter_map(|t| t.deadline_ns)
                .min();
            match (p.alarm.map(|a| a.deadline_ns), posix) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        })
        .ok()
        .flatten()
    }

    /// Fires every due timer of the caller's process (the interval timer included): each
    /// queues its signal (or adds to the overrun of the one still queued) and re-arms by
    /// its interval or disarms. Returns whether any sent a signal.
    pub(crate) fn fire_due_timers(&self) -> bool {
        let mut fired = self.fire_due_alarm();
        let now = self.monotonic_ns();
        let due = self.with_caller_signals(|_, p, _, pid| {
            let mut due = alloc::vec::Vec::new();
            for (&id, timer) in p.timers.iter_mut() {
                let Some(deadline) = timer.deadline_ns.filter(|&d| d <= now) else {
                    continue;
                };
                let missed = match timer.interval_ns {
                    0 => 1,
                    step => (now - deadline) / step + 1,
                };
                timer.deadline_ns = (timer.interval_ns > 0)
                    .then(|| deadline.saturating_add(missed.saturating_mul(timer.interval_ns)));
                if timer.target != Target::None {
                    due.push(Expiry {
                        id,
                        serial: timer.serial,
                        signo: timer.signo,
                        value: timer.value,
                        target: timer.target,
                        missed,
                    });
                }
            }
            (pid, due)
        });
        let Ok((pid, due)) = due else {
            return fired;
        };
        for expiry in due {
            fired |= self.queue_timer_signal(pid, &expiry);
        }
        if fired {
            // Re-armed by their intervals: a thread that computes meanwhile is interrupted
            // at the next expiry.
            self.request_timer_interrupt();
        }
        fired
    }

    /// Queues `expiry`'s signal for its target, or adds its expiries to the overrun of the
    /// timer's signal still queued there, and records the overrun count the queued signal
    /// now carries as the timer's, all under one lock (so a `timer_delete` meanwhile either
    /// comes first, and nothing is queued, or after, and takes the signal back); then wakes
    /// a waiter that can take it. Returns whether the timer still existed (`pid` is its
    /// process).
    fn queue_timer_signal(&self, pid: Pid, expiry: &Expiry) -> bool {
        let fresh = (expiry.missed - 1).min(u64::from(DELAYTIMER_MAX)) as u32;
        let mut info = SigInfo::new(expiry.signo, SI_TIMER, expiry.id);
        info.uid = fresh;
        info.value = expiry.value;
        let bit = sig_bit(expiry.signo);
        self.note_signal_sent();
        let wake = self.with_process_and_thread_signals(
            pid,
            |_: &SigProcess| expiry.target.thread(),
            |p, thread| {
                // Deleted (and perhaps its id given again) since it was found due.
                let timer = p
                    .timers
                    .get_mut(&expiry.id)
                    .filter(|t| t.serial == expiry.serial)?;
                let (pending, queued, wake, bare_code) = match (expiry.target, thread) {
                    (Target::Process(_), _) => {
                        (&mut p.pending, &mut p.queued, Wake::Process, SI_USER)
                    }
                    (Target::Thread(..), Some((key, t))) => {
                        let wake = if t.mask & bit == 0 {
                            Wake::Thread(key)
                        } else {
                            Wake::Nobody
                        };
                        (&mut t.pending, &mut t.queued, wake, SI_TKILL)
                    }
                    // Silent, or its thread has ended: nothing to queue or notify.
                    _ => {
                        timer.overrun = fresh;
                        return Some(Wake::Nobody);
                    }
                };
                // The timer's signal still queued gets the expiries instead of a second
                // instance.
                let merged = queued
                    .iter_mut()
                    .find(|q| q.signo == expiry.signo && is_from(q, expiry.id))
                    .map(|q| {
                        q.uid = (u64::from(q.uid) + expiry.missed).min(u64::from(DELAYTIMER_MAX))
                            as u32;
                        q.uid
                    });
                timer.overrun = merged.unwrap_or_else(|| {
                    // A bare instance pending (a `kill`'s) is delivered as it would
                    // have been: from where it waits, from this process.
                    let bare = SigInfo::new(expiry.signo, bare_code, pid);
                    let _ = enqueue_timer(pending, queued, info, bare);
                    fresh
                });
                Some(wake)
            },
        );
        // Pending now: signalfds look again.
        self.note_signal_sent();
        match wake {
            Ok(Some(Wake::Process)) => {
                let _ = self.hand_to_a_waiter(pid, expiry.signo);
            }
            Ok(Some(Wake::Thread(key))) => {
                self.futex.interrupt(key);
            }
            Ok(Some(Wake::Nobody)) => {}
            Ok(None) | Err(_) => return false,
        }
        true
    }
}

/// Whom a queued timer signal is to wake.
enum Wake {
    Nobody,
    /// A waiting thread of the process that lets it through.
    Process,
    /// The target thread (by uk-sched id), which lets it through.
    Thread(u64),
}

/// Whether queued signal information is timer `id`'s.
/// Takes back the signal timer `id` (notifying `target` with `signo`) still has queued
/// there, if any; other queued signals, of the same number too, stay.
fn withdraw_queued(
    p: &mut SigProcess,
    thread: Option<(u64, &mut SigThread)>,
    target: Target,
    signo: i32,
    id: i32,
) {
    let its = |q: &SigInfo| is_from(q, id);
    match (target, thread) {
        (Target::Process(_), _) => {
            withdraw(&mut p.pending, &mut p.queued, signo, its);
        }
        (Target::Thread(..), Some((_, t))) => {
            withdraw(&mut t.pending, &mut t.queued, signo, its);
        }
        // Silent, or its thread has ended (and its queue with it).
        _ => {}
    }
}

fn is_from(info: &SigInfo, id: i32) -> bool {
    info.code == SI_TIMER && info.pid == id
}

impl Target {
    /// The thread a thread-directed timer signals.
    fn thread(self) -> Option<Tid> {
        match self {
            Target::Thread(_, tid) => Some(tid),
            _ => None,
        }
    }
}

impl PosixTimer {
    /// What `timer_gettime` reports at `now`.
    fn setting(&self, now: u64) -> Itimerspec {
        Itimerspec {
            interval: Timespec::from_ns(self.interval_ns),
            value: self.deadline_ns.map_or(Timespec::default(), |d| {
                Timespec::from_ns(d.saturating_sub(now).max(1))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigevent_fields_are_read_as_linux_lays_them_out() {
        // sigev_value, then sigev_signo and sigev_notify, then the thread id.
        let e = SigEvent::from_words([0xdead_beef, (4u64 << 32) | 34, 77]);
        assert_eq!(
            e,
            SigEvent {
                value: 0xdead_beef,
                signo: 34,
                notify: SIGEV_THREAD_ID,
                thread_id: 77
            }
        );
        assert_eq!(core::mem::size_of::<Itimerspec>(), 32);
    }
}
