//! POSIX timers: `timer_create` and friends on the test's fake clock (the idle hook moves
//! it to the next deadline, so a `pause` ends exactly at a timer's expiry): signals with
//! their `siginfo` (`SI_TIMER`, id, value, overruns), periodic re-arming, expiries missed
//! while nothing waited counted as overruns, thread-directed timers taken by `sigtimedwait`,
//! and bad input refused without a change.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use common::{FakeClock, addr, on_signal, run_main, spawn, word};
use uk_posix_process::signal::{
    SA_SIGINFO, SI_QUEUE, SI_TKILL, SI_USER, SIG_BLOCK, SIGALRM, SIGRTMIN_KERNEL, SIGUSR1, SigInfo,
    sig_bit,
};
use uk_posix_process::time::{CLOCK_MONOTONIC, CLOCK_REALTIME, TIMER_ABSTIME};
use uk_posix_process::timer::{
    Itimerspec, MAX_TIMERS, SI_TIMER, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_THREAD_ID,
    SigEvent,
};
use uk_posix_process::{Errno, System, Timespec};

/// The last timer signal a handler saw: [count, signo, code, timer id, overrun, value].
static SEEN: [AtomicI64; 6] = [const { AtomicI64::new(0) }; 6];
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" fn record(sig: i32, info: *mut SigInfo, _context: *mut u64) {
    // SAFETY: the layer passes a live siginfo.
    let info = unsafe { &*info };
    SEEN[0].fetch_add(1, Ordering::SeqCst);
    SEEN[1].store(i64::from(sig), Ordering::SeqCst);
    SEEN[2].store(i64::from(info.code), Ordering::SeqCst);
    SEEN[3].store(i64::from(info.pid), Ordering::SeqCst);
    SEEN[4].store(i64::from(info.uid), Ordering::SeqCst);
    SEEN[5].store(info.value as i64, Ordering::SeqCst);
}

fn seen() -> [i64; 6] {
    SEEN.each_ref().map(|v| v.load(Ordering::SeqCst))
}

fn handle(sys: &System, sig: i32) {
    SEEN.iter().for_each(|v| v.store(0, Ordering::SeqCst));
    on_signal(sys, sig, record as *const () as usize, SA_SIGINFO);
}

/// [`run_main`], one test at a time (handlers record into shared statics).
fn serial_run(body: impl FnOnce(&'static System, FakeClock) + 'static) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run_main(body);
}

fn ms(n: u64) -> u64 {
    n * 1_000_000
}

fn spec(value_ms: u64, interval_ms: u64) -> Itimerspec {
    Itimerspec {
        interval: Timespec::from_ns(ms(interval_ms)),
        value: Timespec::from_ns(ms(value_ms)),
    }
}

fn signal_event(signo: i32, value: u64) -> SigEvent {
    SigEvent {
        value,
        signo,
        notify: SIGEV_SIGNAL,
        thread_id: 0,
    }
}

#[test]
fn a_periodic_timer_signals_at_each_expiry_with_its_id_and_value() {
    serial_run(move |sys, _clock| {
        handle(sys, SIGUSR1);
        let id = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGUSR1, 77)))
            .unwrap();
        assert_eq!(id, 0, "ids start at 0");
        let start = sys.monotonic_ns();
        assert_eq!(
            sys.timer_settime(id, 0, spec(1000, 250)),
            Ok(Itimerspec::default())
        );
        assert_eq!(sys.timer_gettime(id), Ok(spec(1000, 250)));
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        assert_eq!(sys.monotonic_ns() - start, ms(1000));
        assert_eq!(
            seen(),
            [1, i64::from(SIGUSR1), i64::from(SI_TIMER), 0, 0, 77]
        );
        assert_eq!(sys.timer_gettime(id), Ok(spec(250, 250)));
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        assert_eq!(sys.monotonic_ns() - start, ms(1250));
        assert_eq!(seen()[0], 2);
        assert_eq!(sys.timer_getoverrun(id), Ok(0));
        // Disarmed: the old setting comes back, nothing fires any more.
        assert_eq!(
            sys.timer_settime(id, 0, Itimerspec::default()),
            Ok(spec(250, 250))
        );
        assert_eq!(sys.timer_gettime(id), Ok(Itimerspec::default()));
        sys.timer_delete(id).unwrap();
    });
}

#[test]
fn expiries_nobody_waited_for_are_overruns_of_one_signal() {
    serial_run(move |sys, clock| {
        handle(sys, SIGUSR1);
        let id = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGUSR1, 1)))
            .unwrap();
        sys.timer_settime(id, 0, spec(10, 10)).unwrap();
        // 55 ms of work: expiries at 10, 20, 30, 40 and 50 ms, seen at once.
        clock.advance(ms(55));
        assert_eq!(sys.timer_getoverrun(id), Ok(4));
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        let [count, _, code, _, overrun, _] = seen();
        assert_eq!((count, code, overrun), (1, i64::from(SI_TIMER), 4));
        // The next expiry is on the old grid (60 ms), not 10 ms after the late look.
        assert_eq!(
            sys.timer_gettime(id).unwrap().value,
            Timespec::from_ns(ms(5))
        );

        // While its signal is blocked and queued, more expiries add to its overrun.
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        clock.advance(ms(5));
        assert_eq!(sys.timer_getoverrun(id), Ok(0), "one queued signal");
        clock.advance(ms(30));
        assert_eq!(sys.timer_getoverrun(id), Ok(3));
        sys.rt_sigprocmask(
            uk_posix_process::signal::SIG_UNBLOCK,
            Some(sig_bit(SIGUSR1)),
        )
        .unwrap();
        assert_eq!(seen()[0], 2, "one signal for four expiries");
        assert_eq!(seen()[4], 3);
        sys.timer_delete(id).unwrap();
    });
}

#[test]
fn a_thread_directed_timer_is_taken_by_its_thread_in_sigtimedwait() {
    static TAKEN: [AtomicI64; 3] = [const { AtomicI64::new(0) }; 3];
    static WAITER: AtomicUsize = AtomicUsize::new(0);
    serial_run(move |sys, _clock| {
        let sig = SIGRTMIN_KERNEL + 2;
        let waiter = spawn(sys, move || {
            sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(sig))).unwrap();
            WAITER.store(sys.gettid().unwrap() as usize, Ordering::SeqCst);
            // What musl's SIGEV_THREAD helper does: wait for the timer's signal.
            let info = sys.rt_sigtimedwait(sig_bit(sig), None).unwrap();
            TAKEN[0].store(i64::from(info.signo), Ordering::SeqCst);
            TAKEN[1].store(i64::from(info.code), Ordering::SeqCst);
            TAKEN[2].store(info.value as i64, Ordering::SeqCst);
            0
        });
        sys.sched_yield();
        assert_eq!(WAITER.load(Ordering::SeqCst), waiter as usize);
        let event = SigEvent {
            value: 0xabc,
            signo: sig,
            notify: SIGEV_SIGNAL | SIGEV_THREAD_ID,
            thread_id: waiter,
        };
        let id = sys.timer_create(CLOCK_REALTIME, Some(event)).unwrap();
        let start = sys.monotonic_ns();
        sys.timer_settime(id, 0, spec(300, 0)).unwrap();
        // This thread sleeps past it; the waiter's wait ends at the deadline.
        sys.nanosleep(Timespec::from_ns(ms(500))).unwrap();
        assert_eq!(sys.monotonic_ns() - start, ms(500));
        assert_eq!(
            TAKEN.each_ref().map(|v| v.load(Ordering::SeqCst)),
            [i64::from(sig), i64::from(SI_TIMER), 0xabc]
        );
        assert_eq!(sys.timer_gettime(id), Ok(Itimerspec::default()), "one-shot");
    });
}

#[test]
fn defaults_absolute_times_and_sigev_none() {
    serial_run(move |sys, _clock| {
        handle(sys, SIGALRM);
        // No sigevent: SIGALRM with the id as value.
        let quiet = sys
            .timer_create(
                CLOCK_MONOTONIC,
                Some(SigEvent {
                    notify: SIGEV_NONE,
                    ..SigEvent::default()
                }),
            )
            .unwrap();
        let id = sys.timer_create(CLOCK_MONOTONIC, None).unwrap();
        assert_eq!((quiet, id), (0, 1));
        let start = sys.monotonic_ns();
        sys.timer_settime(quiet, 0, spec(100, 0)).unwrap();
        let at = Timespec::from_ns(start + ms(400));
        sys.timer_settime(
            id,
            TIMER_ABSTIME,
            Itimerspec {
                value: at,
                ..Itimerspec::default()
            },
        )
        .unwrap();
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        assert_eq!(
            sys.monotonic_ns() - start,
            ms(400),
            "the quiet timer woke nobody"
        );
        assert_eq!(
            seen(),
            [1, i64::from(SIGALRM), i64::from(SI_TIMER), 1, 0, 1]
        );
        assert_eq!(sys.timer_gettime(quiet), Ok(Itimerspec::default()));
        // Deleted ids are given again.
        sys.timer_delete(quiet).unwrap();
        assert_eq!(sys.timer_create(CLOCK_MONOTONIC, None), Ok(0));
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    serial_run(move |sys, _clock| {
        let good = signal_event(SIGUSR1, 0);
        assert_eq!(sys.timer_create(99, Some(good)), Err(Errno::EINVAL));
        assert_eq!(sys.timer_create(-1, Some(good)), Err(Errno::EINVAL));
        assert_eq!(
            sys.timer_create(2, Some(good)),
            Err(Errno::EOPNOTSUPP),
            "CPU-time clock"
        );
        for bad in [
            SigEvent {
                notify: SIGEV_THREAD,
                ..good
            },
            SigEvent { notify: 9, ..good },
            SigEvent { signo: 0, ..good },
            SigEvent { signo: 65, ..good },
            SigEvent {
                notify: SIGEV_SIGNAL | SIGEV_THREAD_ID,
                thread_id: 4000,
                ..good
            },
            SigEvent {
                notify: SIGEV_SIGNAL | SIGEV_THREAD_ID,
                thread_id: -1,
                ..good
            },
        ] {
            assert_eq!(
                sys.timer_create(CLOCK_MONOTONIC, Some(bad)),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        let id = sys.timer_create(CLOCK_MONOTONIC, Some(good)).unwrap();
        assert_eq!(id, 0, "no refused call took an id");
        sys.timer_settime(id, 0, spec(100, 10)).unwrap();
        let bad_time = Itimerspec {
            value: Timespec {
                tv_sec: 1,
                tv_nsec: 1_000_000_000,
            },
            ..Itimerspec::default()
        };
        assert_eq!(sys.timer_settime(id, 0, bad_time), Err(Errno::EINVAL));
        let negative = Itimerspec {
            interval: Timespec {
                tv_sec: -1,
                tv_nsec: 0,
            },
            ..spec(5, 0)
        };
        assert_eq!(sys.timer_settime(id, 0, negative), Err(Errno::EINVAL));
        assert_eq!(sys.timer_gettime(id), Ok(spec(100, 10)), "unchanged");
        for unknown in [1, -1, 4096] {
            assert_eq!(
                sys.timer_settime(unknown, 0, spec(1, 0)),
                Err(Errno::EINVAL)
            );
            assert_eq!(sys.timer_gettime(unknown), Err(Errno::EINVAL));
            assert_eq!(sys.timer_getoverrun(unknown), Err(Errno::EINVAL));
            assert_eq!(sys.timer_delete(unknown), Err(Errno::EINVAL));
        }
        sys.timer_delete(id).unwrap();
        assert_eq!(sys.timer_delete(id), Err(Errno::EINVAL));
        // The table is bounded.
        for n in 0..MAX_TIMERS {
            assert_eq!(sys.timer_create(CLOCK_MONOTONIC, Some(good)), Ok(n as i32));
        }
        assert_eq!(
            sys.timer_create(CLOCK_MONOTONIC, Some(good)),
            Err(Errno::EAGAIN)
        );
    });
}

/// Takes every pending signal of `set` without waiting: (signo, code, timer id or sender,
/// value) of each, in the order they come.
fn take_all(sys: &System, set: u64) -> Vec<(i32, i32, i32, u64)> {
    let mut taken = Vec::new();
    while let Ok(info) = sys.rt_sigtimedwait(set, Some(sys.monotonic_ns())) {
        taken.push((info.signo, info.code, info.pid, info.value));
    }
    taken
}

#[test]
fn each_timer_signal_is_an_instance_of_its_own_even_for_a_standard_signal() {
    serial_run(move |sys, clock| {
        let pid = sys.getpid().unwrap();
        let tid = sys.gettid().unwrap();
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGALRM)))
            .unwrap();
        let fire = |timers: &[i32]| {
            for &t in timers {
                sys.timer_settime(t, 0, spec(10, 0)).unwrap();
            }
            clock.advance(ms(10));
            for &t in timers {
                assert_eq!(sys.timer_gettime(t), Ok(Itimerspec::default()), "fired");
            }
        };
        let a = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGALRM, 1)))
            .unwrap();
        let b = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGALRM, 2)))
            .unwrap();
        // Two timers on one standard signal: two deliveries, each with its timer's fields.
        fire(&[a, b]);
        assert_eq!(
            take_all(sys, sig_bit(SIGALRM)),
            [(SIGALRM, SI_TIMER, a, 1), (SIGALRM, SI_TIMER, b, 2)]
        );
        // A kill pending before the timer fired keeps its own instance, delivered first.
        sys.kill(pid, SIGALRM).unwrap();
        fire(&[a]);
        assert_eq!(
            take_all(sys, sig_bit(SIGALRM)),
            [(SIGALRM, SI_USER, pid, 0), (SIGALRM, SI_TIMER, a, 1)]
        );
        // A kill while the timer's instance waits adds nothing (a standard signal pending).
        fire(&[a]);
        sys.kill(pid, SIGALRM).unwrap();
        assert_eq!(take_all(sys, sig_bit(SIGALRM)), [(SIGALRM, SI_TIMER, a, 1)]);
        // The same for a thread: a tgkill and a thread-directed timer.
        let event = SigEvent {
            value: 9,
            signo: SIGALRM,
            notify: SIGEV_SIGNAL | SIGEV_THREAD_ID,
            thread_id: tid,
        };
        let c = sys.timer_create(CLOCK_MONOTONIC, Some(event)).unwrap();
        sys.tgkill(Some(pid), tid, SIGALRM).unwrap();
        fire(&[c]);
        assert_eq!(
            take_all(sys, sig_bit(SIGALRM)),
            [(SIGALRM, SI_TKILL, pid, 0), (SIGALRM, SI_TIMER, c, 9)]
        );
    });
}

#[test]
fn deleting_a_timer_takes_back_its_queued_signal_and_only_it() {
    serial_run(move |sys, clock| {
        let rt = SIGRTMIN_KERNEL + 3;
        let pid = sys.getpid().unwrap();
        let tid = sys.gettid().unwrap();
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(rt) | sig_bit(SIGUSR1)))
            .unwrap();

        // A real-time signal: a sigqueue's instance and two timers' queue behind each
        // other; deleting the first timer takes its instance alone.
        let mut queued = SigInfo::new(rt, SI_QUEUE, pid);
        queued.value = 3;
        sys.rt_sigqueueinfo(pid, rt, queued).unwrap();
        let a = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(rt, 1)))
            .unwrap();
        let b = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(rt, 2)))
            .unwrap();
        sys.timer_settime(a, 0, spec(10, 0)).unwrap();
        sys.timer_settime(b, 0, spec(10, 0)).unwrap();
        clock.advance(ms(20));
        assert_eq!(sys.timer_gettime(a), Ok(Itimerspec::default()), "fired");
        sys.timer_delete(a).unwrap();
        assert_ne!(sys.sigpending().unwrap() & sig_bit(rt), 0);
        assert_eq!(
            take_all(sys, sig_bit(rt)),
            [(rt, SI_QUEUE, pid, 3), (rt, SI_TIMER, b, 2)]
        );
        // Deleting the other after its signal was taken takes nothing.
        sys.timer_delete(b).unwrap();
        assert_eq!(sys.sigpending().unwrap() & sig_bit(rt), 0);

        // A standard signal: the timer's was the only instance, so it is no longer pending.
        let c = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGUSR1, 4)))
            .unwrap();
        sys.timer_settime(c, 0, spec(10, 10)).unwrap();
        clock.advance(ms(35));
        assert_eq!(sys.timer_getoverrun(c), Ok(2));
        assert_ne!(sys.sigpending().unwrap() & sig_bit(SIGUSR1), 0);
        sys.timer_delete(c).unwrap();
        assert_eq!(sys.sigpending().unwrap() & sig_bit(SIGUSR1), 0);
        handle(sys, SIGUSR1);
        sys.rt_sigprocmask(
            uk_posix_process::signal::SIG_UNBLOCK,
            Some(sig_bit(SIGUSR1)),
        )
        .unwrap();
        assert_eq!(
            seen()[0],
            0,
            "the deleted timer's signal never ran its handler"
        );
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();

        // Pending for the thread as well (a tgkill): that stays.
        let d = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGUSR1, 5)))
            .unwrap();
        sys.timer_settime(d, 0, spec(10, 0)).unwrap();
        clock.advance(ms(10));
        sys.timer_gettime(d).unwrap();
        sys.tgkill(Some(pid), tid, SIGUSR1).unwrap();
        sys.timer_delete(d).unwrap();
        assert_eq!(
            take_all(sys, sig_bit(SIGUSR1)),
            [(SIGUSR1, SI_TKILL, pid, 0)]
        );

        // Pending from a kill before the timer fired: the timer queued nothing of its own,
        // and the kill's signal stays.
        sys.kill(pid, SIGUSR1).unwrap();
        let e = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(SIGUSR1, 6)))
            .unwrap();
        sys.timer_settime(e, 0, spec(10, 0)).unwrap();
        clock.advance(ms(10));
        sys.timer_gettime(e).unwrap();
        sys.timer_delete(e).unwrap();
        assert_eq!(
            take_all(sys, sig_bit(SIGUSR1)),
            [(SIGUSR1, SI_USER, pid, 0)]
        );

        // A thread-directed timer's signal is taken back from the thread.
        let event = SigEvent {
            value: 7,
            signo: rt,
            notify: SIGEV_SIGNAL | SIGEV_THREAD_ID,
            thread_id: tid,
        };
        let f = sys.timer_create(CLOCK_MONOTONIC, Some(event)).unwrap();
        let g = sys
            .timer_create(CLOCK_MONOTONIC, Some(SigEvent { value: 8, ..event }))
            .unwrap();
        sys.timer_settime(f, 0, spec(10, 0)).unwrap();
        sys.timer_settime(g, 0, spec(10, 0)).unwrap();
        clock.advance(ms(10));
        sys.timer_gettime(f).unwrap();
        sys.timer_delete(f).unwrap();
        assert_eq!(take_all(sys, sig_bit(rt)), [(rt, SI_TIMER, g, 8)]);
        sys.timer_delete(g).unwrap();
    });
}

#[test]
fn re_arming_or_disarming_a_timer_takes_back_its_queued_signal() {
    serial_run(move |sys, clock| {
        let rt = SIGRTMIN_KERNEL + 4;
        let tid = sys.gettid().unwrap();
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(rt))).unwrap();
        let a = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(rt, 1)))
            .unwrap();
        let b = sys
            .timer_create(CLOCK_MONOTONIC, Some(signal_event(rt, 2)))
            .unwrap();
        sys.timer_settime(a, 0, spec(10, 0)).unwrap();
        sys.timer_settime(b, 0, spec(10, 0)).unwrap();
        clock.advance(ms(10));
        sys.timer_gettime(a).unwrap();
        // Re-arming `a` drops its signal of the old setting; `b`'s stays.
        sys.timer_settime(a, 0, spec(50, 0)).unwrap();
        assert_eq!(take_all(sys, sig_bit(rt)), [(rt, SI_TIMER, b, 2)]);
        // The new setting fires and queues again; disarming drops that one too.
        clock.advance(ms(50));
        sys.timer_gettime(a).unwrap();
        assert_ne!(sys.sigpending().unwrap() & sig_bit(rt), 0);
        sys.timer_settime(a, 0, spec(0, 0)).unwrap();
        assert_eq!(sys.sigpending().unwrap() & sig_bit(rt), 0);
        // A thread-directed timer: taken back from the thread's queue.
        let event = SigEvent {
            value: 3,
            signo: rt,
            notify: SIGEV_SIGNAL | SIGEV_THREAD_ID,
            thread_id: tid,
        };
        let c = sys.timer_create(CLOCK_MONOTONIC, Some(event)).unwrap();
        sys.timer_settime(c, 0, spec(10, 0)).unwrap();
        clock.advance(ms(10));
        sys.timer_gettime(c).unwrap();
        sys.timer_settime(c, 0, spec(0, 0)).unwrap();
        assert_eq!(take_all(sys, sig_bit(rt)), []);
        for t in [a, b, c] {
            sys.timer_delete(t).unwrap();
        }
    });
}

#[test]
fn timers_and_sleeps_for_a_wall_clock_time_follow_the_wall_clock() {
    serial_run(move |sys, clock| {
        // A minute after boot: deadlines moved back below stay after boot.
        clock.advance(ms(60_000));
        handle(sys, SIGUSR1);
        let wall = |s: u64| Timespec::from_ns(s * 1_000_000_000);
        sys.clock_settime(CLOCK_REALTIME, wall(1_000)).unwrap();
        let absolute = sys
            .timer_create(CLOCK_REALTIME, Some(signal_event(SIGUSR1, 1)))
            .unwrap();
        let relative = sys
            .timer_create(CLOCK_REALTIME, Some(signal_event(SIGUSR1, 2)))
            .unwrap();
        // Absolute: 10 s of wall time from now, then every 10 s; relative: in 10 s.
        let at_1010 = Itimerspec {
            value: wall(1_010),
            interval: wall(10),
        };
        sys.timer_settime(absolute, TIMER_ABSTIME, at_1010).unwrap();
        sys.timer_settime(relative, 0, spec(10_000, 0)).unwrap();
        // The clock goes back 100 s: the absolute timer is 110 s away, the relative one
        // still 10 s.
        sys.clock_settime(CLOCK_REALTIME, wall(900)).unwrap();
        assert_eq!(sys.timer_gettime(absolute).unwrap().value, wall(110));
        assert_eq!(sys.timer_gettime(relative).unwrap().value, wall(10));
        // Forward past it: the absolute one is due now, the relative one unmoved.
        let start = sys.monotonic_ns();
        sys.clock_settime(CLOCK_REALTIME, wall(1_015)).unwrap();
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        assert_eq!(sys.monotonic_ns(), start, "it expired at once");
        assert_eq!(seen()[5], 1, "the absolute timer's signal");
        // Its next period stays on the wall clock: 1020, 5 s away.
        assert_eq!(sys.timer_gettime(absolute).unwrap().value, wall(5));
        assert_eq!(sys.timer_gettime(relative).unwrap().value, wall(10));
        sys.timer_delete(absolute).unwrap();
        sys.timer_delete(relative).unwrap();

        // A sleep until a wall-clock time ends when another thread sets the clock past it.
        let sleeper_start = sys.monotonic_ns();
        spawn(sys, move || {
            sys.nanosleep(Timespec::from_ns(ms(5))).unwrap();
            sys.clock_settime(CLOCK_REALTIME, wall(5_000)).unwrap();
            0
        });
        sys.clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, wall(2_000))
            .unwrap();
        assert_eq!(sys.monotonic_ns() - sleeper_start, ms(5), "not 985 s");
        // A relative sleep keeps its length whatever the clock does.
        let start = sys.monotonic_ns();
        spawn(sys, move || {
            sys.nanosleep(Timespec::from_ns(ms(5))).unwrap();
            sys.clock_settime(CLOCK_REALTIME, wall(9_000)).unwrap();
            0
        });
        sys.clock_nanosleep(CLOCK_REALTIME, 0, Timespec::from_ns(ms(20)))
            .unwrap();
        assert_eq!(sys.monotonic_ns() - start, ms(20));
        // A futex wait until a wall-clock time (pthread_cond_timedwait's) likewise.
        let futex_word = word(0);
        let start = sys.monotonic_ns();
        spawn(sys, move || {
            sys.nanosleep(Timespec::from_ns(ms(5))).unwrap();
            sys.clock_settime(CLOCK_REALTIME, wall(20_000)).unwrap();
            0
        });
        let timed_out =
            sys.futex_wait_bitset(addr(futex_word), 0, Some(wall(15_000)), u32::MAX, true);
        assert_eq!(timed_out, Err(Errno::ETIMEDOUT));
        assert_eq!(sys.monotonic_ns() - start, ms(5));
    });
}

#[test]
fn a_wall_clock_behind_the_monotonic_one_still_gives_future_deadlines() {
    serial_run(move |sys, clock| {
        // A minute after boot, the wall clock set to 10 s after the epoch.
        clock.advance(ms(60_000));
        let wall = |s: u64| Timespec::from_ns(s * 1_000_000_000);
        sys.clock_settime(CLOCK_REALTIME, wall(10)).unwrap();
        let quiet = SigEvent {
            notify: SIGEV_NONE,
            ..SigEvent::default()
        };
        let id = sys.timer_create(CLOCK_REALTIME, Some(quiet)).unwrap();
        let at_15 = Itimerspec {
            value: wall(15),
            ..Itimerspec::default()
        };
        sys.timer_settime(id, TIMER_ABSTIME, at_15).unwrap();
        assert_eq!(
            sys.timer_gettime(id).unwrap().value,
            wall(5),
            "not due at once"
        );
        let start = sys.monotonic_ns();
        sys.clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, wall(12))
            .unwrap();
        assert_eq!(sys.monotonic_ns() - start, ms(2_000));
        // A time the wall clock showed before boot is past: the one-shot timer expires.
        sys.timer_settime(
            id,
            TIMER_ABSTIME,
            Itimerspec {
                value: Timespec::from_ns(1),
                ..Itimerspec::default()
            },
        )
        .unwrap();
        assert_eq!(
            sys.timer_gettime(id).unwrap().value,
            Timespec::default(),
            "expired at once"
        );
    });
}
