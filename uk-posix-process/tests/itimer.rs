//! The real-time interval timer: `alarm` and `setitimer` send `SIGALRM` at their deadline
//! to a waiting thread (on the test's fake clock, which the idle hook moves to the next
//! deadline), re-arm by their interval, end the process without a handler, wait while the
//! signal is blocked, and refuse bad input without changing anything.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{world, world_counting_cpu_time};
use uk_posix_process::itimer::{ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL, Itimerval, Timeval};
use uk_posix_process::signal::{
    SIG_BLOCK, SIG_SETMASK, SIGALRM, SIGPROF, SIGVTALRM, SigAction, sig_bit,
};
use uk_posix_process::{Errno, System, Timespec};

/// Handler runs so far (the tests with a handler take turns through `SERIAL`).
static ALARMS: AtomicUsize = AtomicUsize::new(0);
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

extern "C" fn on_alarm(sig: i32) {
    assert_eq!(sig, SIGALRM);
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

fn handle(sys: &System) {
    sys.rt_sigaction(
        SIGALRM,
        Some(SigAction {
            handler: on_alarm as *const () as usize,
            ..SigAction::default()
        }),
    )
    .unwrap();
}

fn ms(n: u64) -> u64 {
    n * 1_000_000
}

#[test]
fn an_alarm_ends_a_pause_at_its_deadline_and_reports_what_was_left() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        handle(sys);
        ALARMS.store(0, Ordering::SeqCst);
        let start = sys.monotonic_ns();
        assert_eq!(sys.alarm(5), 0);
        // Replaced after 2 s: 3 s were left; the new one is due 2 s later.
        clock.advance(ms(2000));
        assert_eq!(sys.alarm(2), 3);
        let left = sys.getitimer(ITIMER_REAL).unwrap();
        assert_eq!(
            left.value,
            Timeval {
                tv_sec: 2,
                tv_usec: 0
            }
        );
        assert_eq!(left.interval, Timeval::default());
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        assert_eq!(ALARMS.load(Ordering::SeqCst), 1);
        assert_eq!(
            sys.monotonic_ns(),
            start + ms(4000),
            "fired at its deadline"
        );
        // Once only: disarmed now.
        assert_eq!(sys.getitimer(ITIMER_REAL), Ok(Itimerval::default()));
        assert_eq!(sys.alarm(0), 0);
        sys.rt_sigaction(SIGALRM, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn an_interval_timer_re_arms_and_interrupts_sleeps() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        handle(sys);
        ALARMS.store(0, Ordering::SeqCst);
        let start = sys.monotonic_ns();
        let every = Itimerval {
            interval: Timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            },
            value: Timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            },
        };
        assert_eq!(sys.setitimer(ITIMER_REAL, every), Ok(Itimerval::default()));
        // Each expiry ends the sleep it falls in with EINTR, after the handler ran.
        let mut ends = Vec::new();
        for _ in 0..3 {
            let r = sys.nanosleep(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            assert_eq!(r, Err(Errno::EINTR));
            ends.push(clock.0.load(Ordering::SeqCst) - start);
        }
        assert_eq!(ends, [ms(50), ms(150), ms(250)]);
        assert_eq!(ALARMS.load(Ordering::SeqCst), 3);
        let left = sys.getitimer(ITIMER_REAL).unwrap();
        assert_eq!(
            left.value,
            Timeval {
                tv_sec: 0,
                tv_usec: 100_000
            }
        );
        assert_eq!(
            left.interval,
            Timeval {
                tv_sec: 0,
                tv_usec: 100_000
            }
        );
        // A blocked SIGALRM does not end a sleep; it waits, pending.
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGALRM)))
            .unwrap();
        assert_eq!(
            sys.nanosleep(Timespec {
                tv_sec: 0,
                tv_nsec: ms(150) as i64
            }),
            Ok(())
        );
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGALRM)));
        assert_eq!(ALARMS.load(Ordering::SeqCst), 3);
        // Disarm, then let the pending one run.
        assert!(sys.setitimer(ITIMER_REAL, Itimerval::default()).is_ok());
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        assert_eq!(ALARMS.load(Ordering::SeqCst), 4);
        sys.rt_sigaction(SIGALRM, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn without_a_handler_the_alarm_ends_the_process() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        sys.alarm(1);
        let _ = sys.pause();
        unreachable!("SIGALRM's default action ends the process");
    });
    assert_eq!(status, Some(128 + SIGALRM as u8));
}

static CPU_SIGNALS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

extern "C" fn on_cpu_timer(sig: i32) {
    let index = usize::from(sig == SIGPROF);
    CPU_SIGNALS[index].fetch_add(1, Ordering::SeqCst);
}

fn cpu_signals() -> [usize; 2] {
    CPU_SIGNALS.each_ref().map(|c| c.load(Ordering::SeqCst))
}

fn every(value_ms: u64, interval_ms: u64) -> Itimerval {
    Itimerval {
        value: Timeval::from_ns_up(ms(value_ms)),
        interval: Timeval::from_ns_up(ms(interval_ms)),
    }
}

#[test]
fn cpu_time_timers_fire_on_the_way_back_from_a_call_once_the_time_is_used() {
    let w = world_counting_cpu_time();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        for sig in [SIGVTALRM, SIGPROF] {
            let action = SigAction {
                handler: on_cpu_timer as *const () as usize,
                ..SigAction::default()
            };
            sys.rt_sigaction(sig, Some(action)).unwrap();
        }
        // PROF once after 30 ms of CPU time; VIRTUAL after 10 ms, then every 10 ms.
        assert_eq!(
            sys.setitimer(ITIMER_PROF, every(30, 0)),
            Ok(Itimerval::default())
        );
        sys.setitimer(ITIMER_VIRTUAL, every(10, 10)).unwrap();
        clock.advance(ms(5));
        sys.syscall_returned();
        assert_eq!(cpu_signals(), [0, 0], "no time ran out yet");
        assert_eq!(sys.getitimer(ITIMER_VIRTUAL), Ok(every(5, 10)));
        assert_eq!(sys.getitimer(ITIMER_PROF), Ok(every(25, 0)));
        // Time spent waiting is no CPU time.
        sys.nanosleep(Timespec::from_ns(ms(100))).unwrap();
        assert_eq!(sys.getitimer(ITIMER_PROF), Ok(every(25, 0)));
        clock.advance(ms(30));
        assert_eq!(cpu_signals(), [0, 0], "not before a call returns");
        sys.syscall_returned();
        assert_eq!(
            cpu_signals(),
            [1, 1],
            "one of each (the periods missed coalesce)"
        );
        assert_eq!(sys.getitimer(ITIMER_PROF), Ok(Itimerval::default()), "once");
        // VIRTUAL was due at 10 ms of CPU time, now 35: re-armed for 40.
        assert_eq!(sys.getitimer(ITIMER_VIRTUAL), Ok(every(5, 10)));
        sys.setitimer(ITIMER_VIRTUAL, Itimerval::default()).unwrap();
        clock.advance(ms(50));
        sys.syscall_returned();
        assert_eq!(cpu_signals(), [1, 1], "disarmed");
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn cpu_time_timers_need_a_scheduler_that_counts_cpu_time() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        for which in [ITIMER_VIRTUAL, ITIMER_PROF] {
            assert_eq!(sys.setitimer(which, every(10, 0)), Err(Errno::EINVAL));
            assert_eq!(sys.getitimer(which), Err(Errno::EINVAL));
        }
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn bad_timers_and_values_are_refused_and_change_nothing() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let armed = Itimerval {
            value: Timeval {
                tv_sec: 7,
                tv_usec: 0,
            },
            ..Itimerval::default()
        };
        sys.setitimer(ITIMER_REAL, armed).unwrap();
        for which in [3, -1] {
            assert_eq!(
                sys.setitimer(which, Itimerval::default()),
                Err(Errno::EINVAL)
            );
            assert_eq!(sys.getitimer(which), Err(Errno::EINVAL));
        }
        for bad in [
            Timeval {
                tv_sec: -1,
                tv_usec: 0,
            },
            Timeval {
                tv_sec: 0,
                tv_usec: 1_000_000,
            },
            Timeval {
                tv_sec: 0,
                tv_usec: -1,
            },
        ] {
            let as_value = Itimerval {
                value: bad,
                ..Itimerval::default()
            };
            let as_interval = Itimerval {
                interval: bad,
                ..armed
            };
            assert_eq!(sys.setitimer(ITIMER_REAL, as_value), Err(Errno::EINVAL));
            assert_eq!(sys.setitimer(ITIMER_REAL, as_interval), Err(Errno::EINVAL));
        }
        assert_eq!(sys.getitimer(ITIMER_REAL).unwrap().value.tv_sec, 7);
        sys.setitimer(ITIMER_REAL, Itimerval::default()).unwrap();
        0
    });
    assert_eq!(status, Some(0));
}
