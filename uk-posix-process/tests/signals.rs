//! Signals on a live System: handlers run synchronously when a thread signals itself,
//! blocked signals wait for the unblock, default actions end the process with 128 + the
//! signal, ignored ones vanish, new threads inherit the mask, and bad input is refused
//! without changing anything.

mod common;

use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use common::{addr, spawn, word, world};
use uk_posix_process::signal::*;
use uk_posix_process::{Errno, System};

fn handler(f: extern "C" fn(i32)) -> SigAction {
    SigAction {
        handler: f as usize,
        ..SigAction::default()
    }
}

fn ignore() -> SigAction {
    SigAction {
        handler: SIG_IGN,
        ..SigAction::default()
    }
}

fn me(sys: &System) -> i32 {
    sys.gettid().unwrap()
}

/// The System a handler looks at (each test sets it before raising, holding `SERIAL`).
static SYS: AtomicPtr<System> = AtomicPtr::new(std::ptr::null_mut());
/// Serialises the tests whose handlers use `SYS` (tests run in parallel).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes `SERIAL` and points handlers at `sys`.
fn handlers_use(sys: &'static System) -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    SYS.store(sys as *const System as *mut System, Ordering::SeqCst);
    guard
}

fn sys_in_handler() -> &'static System {
    // SAFETY: set from a leaked `&'static System` before any handler runs.
    unsafe { &*SYS.load(Ordering::SeqCst) }
}

static USR1_CALLS: AtomicUsize = AtomicUsize::new(0);
static USR1_MASK: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(sig: i32) {
    assert_eq!(sig, SIGUSR1);
    USR1_CALLS.fetch_add(1, Ordering::SeqCst);
    // The mask while the handler runs: the action's mask and the signal itself.
    let mask = sys_in_handler().rt_sigprocmask(SIG_BLOCK, None).unwrap();
    USR1_MASK.store(mask, Ordering::SeqCst);
}

#[test]
fn a_handler_runs_before_raise_returns_and_a_blocked_signal_waits_for_the_unblock() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let status = w.run(move || {
        let act = SigAction {
            mask: sig_bit(SIGUSR2),
            ..handler(on_usr1)
        };
        assert_eq!(
            sys.rt_sigaction(SIGUSR1, Some(act)),
            Ok(SigAction::default())
        );
        assert_eq!(sys.rt_sigaction(SIGUSR1, None), Ok(act));
        sys.tgkill(None, me(sys), SIGUSR1).unwrap();
        assert_eq!(
            USR1_CALLS.load(Ordering::SeqCst),
            1,
            "ran before tkill returned"
        );
        assert_eq!(
            USR1_MASK.load(Ordering::SeqCst),
            sig_bit(SIGUSR1) | sig_bit(SIGUSR2)
        );
        assert_eq!(sys.rt_sigprocmask(SIG_BLOCK, None), Ok(0), "mask restored");
        // Blocked: pending until unblocked, then delivered by that very call.
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        sys.tgkill(Some(sys.getpid().unwrap()), me(sys), SIGUSR1)
            .unwrap();
        sys.kill(0, SIGUSR1).unwrap();
        assert_eq!(USR1_CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGUSR1)));
        sys.rt_sigprocmask(SIG_UNBLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        // Once for the thread's pending signal, once for the process's.
        assert_eq!(USR1_CALLS.load(Ordering::SeqCst), 3);
        assert_eq!(sys.sigpending(), Ok(0));
        4
    });
    assert_eq!(status, Some(4));
}

#[test]
fn the_default_action_ends_the_process_with_128_plus_the_signal() {
    let w = world();
    let sys = w.sys;
    let after = std::sync::Arc::new(AtomicUsize::new(0));
    let after2 = after.clone();
    let status = w.run(move || {
        sys.kill(0, SIGTERM).unwrap();
        after2.store(1, Ordering::SeqCst);
        0
    });
    assert_eq!(status, Some(128 + SIGTERM as u8));
    assert_eq!(
        after.load(Ordering::SeqCst),
        0,
        "nothing ran after the signal"
    );
}

#[test]
fn ignored_signals_and_those_ignored_by_default_vanish() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(ignore())).unwrap();
        sys.tgkill(None, me(sys), SIGUSR2).unwrap();
        sys.kill(sys.getpid().unwrap(), SIGCHLD).unwrap();
        sys.kill(0, SIGWINCH).unwrap();
        // Blocked then ignored: setting SIG_IGN discards it where the process has it.
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGINT)))
            .unwrap();
        sys.kill(0, SIGINT).unwrap();
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGINT)));
        sys.rt_sigaction(SIGINT, Some(ignore())).unwrap();
        assert_eq!(sys.sigpending(), Ok(0));
        5
    });
    assert_eq!(status, Some(5));
}

static INFO_SIGNO: AtomicI32 = AtomicI32::new(0);
static INFO_CODE: AtomicI32 = AtomicI32::new(0);
static INFO_PID: AtomicI32 = AtomicI32::new(0);
static RESET_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_info(sig: i32, info: *mut SigInfo, context: *mut u64) {
    // SAFETY: the layer passes a live siginfo_t.
    let info = unsafe { &*info };
    assert_eq!(info.signo, sig);
    assert!(!context.is_null());
    INFO_SIGNO.store(info.signo, Ordering::SeqCst);
    INFO_CODE.store(info.code, Ordering::SeqCst);
    INFO_PID.store(info.pid, Ordering::SeqCst);
    RESET_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn siginfo_handlers_and_sa_resethand() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let act = SigAction {
            handler: on_info as *const () as usize,
            flags: SA_SIGINFO | SA_RESETHAND,
            ..SigAction::default()
        };
        sys.rt_sigaction(SIGHUP, Some(act)).unwrap();
        sys.tgkill(None, me(sys), SIGHUP).unwrap();
        assert_eq!(INFO_SIGNO.load(Ordering::SeqCst), SIGHUP);
        assert_eq!(INFO_CODE.load(Ordering::SeqCst), SI_TKILL);
        assert_eq!(INFO_PID.load(Ordering::SeqCst), sys.getpid().unwrap());
        // SA_RESETHAND: the action is the default again, so a second SIGHUP ends us.
        assert_eq!(sys.rt_sigaction(SIGHUP, None), Ok(SigAction::default()));
        sys.kill(0, SIGHUP).unwrap();
        0
    });
    assert_eq!(RESET_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(status, Some(128 + SIGHUP as u8));
}

/// The `uc_sigmask` word of the kernel's `ucontext_t`.
const UC_SIGMASK_WORD: usize = if cfg!(target_arch = "aarch64") { 5 } else { 37 };

static SEEN_UC_MASK: AtomicU64 = AtomicU64::new(0);

/// Records the mask the context says the thread returns to, and adds SIGUSR2 to it, as
/// musl's cancellation handler adds its own signal.
extern "C" fn block_usr2_on_return(_sig: i32, _info: *mut SigInfo, context: *mut u64) {
    // SAFETY: the layer passes a live, writable ucontext_t of the C library's size.
    let mask = unsafe { &mut *context.add(UC_SIGMASK_WORD) };
    SEEN_UC_MASK.store(*mask, Ordering::SeqCst);
    *mask |= sig_bit(SIGUSR2) | sig_bit(SIGKILL);
}

#[test]
fn the_mask_a_siginfo_handler_leaves_in_its_context_is_restored() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let status = w.run(move || {
        let act = SigAction {
            handler: block_usr2_on_return as *const () as usize,
            flags: SA_SIGINFO,
            ..SigAction::default()
        };
        sys.rt_sigaction(SIGUSR1, Some(act)).unwrap();
        sys.rt_sigprocmask(SIG_SETMASK, Some(sig_bit(SIGHUP)))
            .unwrap();
        sys.tgkill(None, me(sys), SIGUSR1).unwrap();
        // The context held the mask from before the signal; what the handler left there
        // is the thread's mask now (never SIGKILL).
        assert_eq!(SEEN_UC_MASK.load(Ordering::SeqCst), sig_bit(SIGHUP));
        assert_eq!(
            sys.rt_sigprocmask(SIG_BLOCK, None),
            Ok(sig_bit(SIGHUP) | sig_bit(SIGUSR2))
        );
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        6
    });
    assert_eq!(status, Some(6));
}

#[test]
fn a_new_thread_starts_with_its_creators_mask_and_signals_to_it_wait_for_it() {
    let w = world();
    let sys = w.sys;
    let child_mask = std::sync::Arc::new(AtomicU64::new(u64::MAX));
    let child_mask2 = child_mask.clone();
    let status = w.run(move || {
        sys.rt_sigprocmask(SIG_SETMASK, Some(sig_bit(SIGUSR2) | sig_bit(SIGKILL)))
            .unwrap();
        let tid = spawn(sys, move || {
            child_mask2.store(
                sys.rt_sigprocmask(SIG_BLOCK, None).unwrap(),
                Ordering::SeqCst,
            );
            // A signal another thread sent is pending for this one only.
            uk_sched::yield_now();
            assert_eq!(sys.sigpending(), Ok(sig_bit(SIGUSR2)));
            sys.rt_sigaction(SIGUSR2, Some(ignore())).unwrap();
            sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
            0
        });
        uk_sched::yield_now();
        sys.tgkill(None, tid, SIGUSR2).unwrap();
        assert_eq!(sys.sigpending(), Ok(0), "not the sender's");
        for _ in 0..4 {
            uk_sched::yield_now();
        }
        6
    });
    assert_eq!(status, Some(6));
    assert_eq!(child_mask.load(Ordering::SeqCst), sig_bit(SIGUSR2));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let pid = sys.getpid().unwrap();
        for bad in [-1, 65, 1000] {
            assert_eq!(sys.kill(0, bad), Err(Errno::EINVAL));
            assert_eq!(sys.tgkill(None, me(sys), bad), Err(Errno::EINVAL));
            assert_eq!(sys.rt_sigaction(bad, None), Err(Errno::EINVAL));
        }
        assert_eq!(
            sys.rt_sigaction(SIGKILL, Some(ignore())),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.rt_sigaction(SIGSTOP, Some(handler(on_usr1))),
            Err(Errno::EINVAL)
        );
        // A handler in the NULL page is refused rather than ever called.
        let wild = SigAction {
            handler: 0x10,
            ..SigAction::default()
        };
        assert_eq!(sys.rt_sigaction(SIGUSR1, Some(wild)), Err(Errno::EFAULT));
        assert_eq!(sys.rt_sigaction(SIGUSR1, None), Ok(SigAction::default()));
        assert_eq!(sys.rt_sigprocmask(9, Some(1)), Err(Errno::EINVAL));
        assert_eq!(sys.tgkill(None, 0, SIGUSR1), Err(Errno::EINVAL));
        assert_eq!(sys.tgkill(Some(0), me(sys), SIGUSR1), Err(Errno::EINVAL));
        assert_eq!(sys.tgkill(None, 30_000, SIGUSR1), Err(Errno::ESRCH));
        assert_eq!(
            sys.tgkill(Some(pid + 1), me(sys), SIGUSR1),
            Err(Errno::ESRCH)
        );
        assert_eq!(sys.kill(30_000, SIGUSR1), Err(Errno::ESRCH));
        assert_eq!(sys.kill(-30_000, SIGUSR1), Err(Errno::ESRCH));
        // Signal 0 only checks existence.
        assert_eq!(sys.kill(pid, 0), Ok(()));
        assert_eq!(sys.kill(30_000, 0), Err(Errno::ESRCH));
        assert_eq!(sys.tgkill(None, me(sys), 0), Ok(()));
        assert_eq!(sys.sigpending(), Ok(0));
        assert_eq!(sys.rt_sigprocmask(SIG_BLOCK, None), Ok(0));
        7
    });
    assert_eq!(status, Some(7));
}

static WAKER_TID: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_tid(_sig: i32) {
    WAKER_TID.store(sys_in_handler().gettid().unwrap(), Ordering::SeqCst);
}

#[test]
fn a_signal_for_a_thread_waiting_on_a_futex_runs_its_handler_there_and_ends_the_wait_with_eintr() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let results2 = results.clone();
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(handler(note_tid))).unwrap();
        let word = word(0);
        let child_results = results2.clone();
        let tid = spawn(sys, move || {
            // Blocks SIGUSR1 only: SIGUSR1 must not end the wait, SIGUSR2 must.
            sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
                .unwrap();
            let r = sys.futex_wait(addr(word), 0, None);
            child_results
                .lock()
                .unwrap()
                .push((r, sys.gettid().unwrap()));
            0
        });
        // Let the child block.
        for _ in 0..3 {
            uk_sched::yield_now();
        }
        assert_eq!(sys.futex_waiters(addr(word)), 1);
        sys.tgkill(None, tid, SIGUSR1).unwrap();
        uk_sched::yield_now();
        assert_eq!(
            sys.futex_waiters(addr(word)),
            1,
            "a blocked signal wakes nobody"
        );
        sys.tgkill(None, tid, SIGUSR2).unwrap();
        for _ in 0..3 {
            uk_sched::yield_now();
        }
        assert_eq!(sys.futex_waiters(addr(word)), 0);
        let got = results2.lock().unwrap().clone();
        assert_eq!(got, vec![(Err(Errno::EINTR), tid)]);
        // The handler ran on the waiting thread, not on the sender.
        assert_eq!(WAKER_TID.load(Ordering::SeqCst), tid);
        8
    });
    assert_eq!(status, Some(8));
    assert_eq!(results.lock().unwrap().len(), 1);
}

#[test]
fn an_untimed_futex_wait_restarts_after_an_sa_restart_handler_a_timed_one_does_not() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let results2 = results.clone();
    let status = w.run(move || {
        let restarting = SigAction {
            handler: note_tid as *const () as usize,
            flags: SA_RESTART,
            ..SigAction::default()
        };
        sys.rt_sigaction(SIGUSR2, Some(restarting)).unwrap();
        let word = word(0);
        let waits: [Option<uk_posix_process::Timespec>; 3] = [
            None,
            None,
            Some(uk_posix_process::Timespec {
                tv_sec: 100,
                tv_nsec: 0,
            }),
        ];
        for (round, timeout) in waits.into_iter().enumerate() {
            word.store(0, Ordering::SeqCst);
            WAKER_TID.store(0, Ordering::SeqCst);
            let child_results = results2.clone();
            let tid = spawn(sys, move || {
                let r = sys.futex_wait(addr(word), 0, timeout);
                child_results.lock().unwrap().push((round, r));
                0
            });
            uk_sched::yield_now();
            assert_eq!(sys.futex_waiters(addr(word)), 1);
            sys.tgkill(None, tid, SIGUSR2).unwrap();
            if round == 1 {
                // The restarted call reads the word again.
                word.store(1, Ordering::SeqCst);
            }
            for _ in 0..3 {
                uk_sched::yield_now();
            }
            assert_eq!(WAKER_TID.load(Ordering::SeqCst), tid, "the handler ran");
            if round == 0 {
                assert_eq!(sys.futex_waiters(addr(word)), 1, "waiting again");
                assert!(results2.lock().unwrap().is_empty());
                assert_eq!(sys.futex_wake(addr(word), 1, u32::MAX), Ok(1));
                uk_sched::yield_now();
            }
        }
        assert_eq!(sys.futex_waiters(addr(word)), 0);
        10
    });
    assert_eq!(status, Some(10));
    assert_eq!(
        *results.lock().unwrap(),
        [(0, Ok(0)), (1, Err(Errno::EAGAIN)), (2, Err(Errno::EINTR))]
    );
}

#[test]
fn a_futex_wait_whose_signal_ran_no_handler_goes_on() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let result = std::sync::Arc::new(std::sync::Mutex::new(None));
    let result2 = result.clone();
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(handler(note_tid))).unwrap();
        let word = word(0);
        let tid = spawn(sys, move || {
            let timeout = uk_posix_process::Timespec {
                tv_sec: 100,
                tv_nsec: 0,
            };
            *result2.lock().unwrap() = Some(sys.futex_wait(addr(word), 0, Some(timeout)));
            0
        });
        uk_sched::yield_now();
        WAKER_TID.store(0, Ordering::SeqCst);
        // Sent while handled, ignored before the waiter could take it.
        sys.tgkill(None, tid, SIGUSR2).unwrap();
        sys.rt_sigaction(SIGUSR2, Some(ignore())).unwrap();
        for _ in 0..3 {
            uk_sched::yield_now();
        }
        assert_eq!(WAKER_TID.load(Ordering::SeqCst), 0, "no handler ran");
        assert_eq!(
            sys.futex_waiters(addr(word)),
            1,
            "no EINTR: the wait goes on"
        );
        assert_eq!(sys.futex_wake(addr(word), 1, u32::MAX), Ok(1));
        uk_sched::yield_now();
        11
    });
    assert_eq!(status, Some(11));
    assert_eq!(*result.lock().unwrap(), Some(Ok(0)));
}

#[test]
fn a_signal_that_arrived_while_the_thread_ran_ends_its_next_futex_wait_at_once() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(handler(note_tid))).unwrap();
        let me = me(sys);
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR2).unwrap();
            0
        });
        WAKER_TID.store(0, Ordering::SeqCst);
        uk_sched::yield_now(); // the child sends while this thread is runnable
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGUSR2)));
        // The wait would never end; the pending signal ends it before it blocks.
        let word = word(0);
        assert_eq!(sys.futex_wait(addr(word), 0, None), Err(Errno::EINTR));
        assert_eq!(WAKER_TID.load(Ordering::SeqCst), me);
        assert_eq!(sys.sigpending(), Ok(0));
        9
    });
    assert_eq!(status, Some(9));
}

#[test]
fn sigsuspend_waits_with_its_mask_until_a_handler_ran_then_restores_the_old_mask() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(handler(note_tid))).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(ignore())).unwrap();
        // SIGUSR2 blocked outside the suspension.
        sys.rt_sigprocmask(SIG_SETMASK, Some(sig_bit(SIGUSR2)))
            .unwrap();
        let me = me(sys);
        spawn(sys, move || {
            // An ignored signal does not end the suspension; SIGUSR2 does.
            sys.tgkill(None, me, SIGUSR1).unwrap();
            uk_sched::yield_now();
            sys.tgkill(None, me, SIGUSR2).unwrap();
            0
        });
        WAKER_TID.store(0, Ordering::SeqCst);
        assert_eq!(sys.rt_sigsuspend(0), Err(Errno::EINTR));
        assert_eq!(WAKER_TID.load(Ordering::SeqCst), me, "the handler ran here");
        assert_eq!(
            sys.rt_sigprocmask(SIG_BLOCK, None),
            Ok(sig_bit(SIGUSR2)),
            "the old mask is back"
        );
        // A signal already pending that the suspension mask lets through: at once.
        sys.tgkill(None, me, SIGUSR2).unwrap();
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGUSR2)));
        assert_eq!(sys.rt_sigsuspend(sig_bit(SIGUSR1)), Err(Errno::EINTR));
        assert_eq!(sys.sigpending(), Ok(0));
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        4
    });
    assert_eq!(status, Some(4));
}

#[test]
fn pause_waits_with_the_threads_own_mask_until_a_handler_ran() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(handler(note_tid))).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(ignore())).unwrap();
        sys.rt_sigaction(SIGHUP, Some(handler(note_tid))).unwrap();
        // SIGHUP is blocked: sent first, it stays pending and does not end the pause.
        sys.rt_sigprocmask(SIG_SETMASK, Some(sig_bit(SIGHUP)))
            .unwrap();
        let me = me(sys);
        spawn(sys, move || {
            sys.tgkill(None, me, SIGHUP).unwrap();
            sys.tgkill(None, me, SIGUSR1).unwrap();
            uk_sched::yield_now();
            sys.tgkill(None, me, SIGUSR2).unwrap();
            0
        });
        WAKER_TID.store(0, Ordering::SeqCst);
        assert_eq!(sys.pause(), Err(Errno::EINTR));
        assert_eq!(WAKER_TID.load(Ordering::SeqCst), me, "the handler ran here");
        assert_eq!(
            sys.sigpending(),
            Ok(sig_bit(SIGHUP)),
            "the blocked one still waits"
        );
        assert_eq!(sys.rt_sigprocmask(SIG_BLOCK, None), Ok(sig_bit(SIGHUP)));
        sys.rt_sigaction(SIGHUP, Some(ignore())).unwrap();
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        sys.rt_sigaction(SIGHUP, Some(SigAction::default()))
            .unwrap();
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        5
    });
    assert_eq!(status, Some(5));
}

#[test]
fn sigtimedwait_takes_a_blocked_signal_without_its_handler_and_times_out() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let clock = w.clock.clone();
    let status = w.run(move || {
        sys.rt_sigaction(SIGUSR2, Some(handler(note_tid))).unwrap();
        let set = sig_bit(SIGUSR1) | sig_bit(SIGUSR2);
        sys.rt_sigprocmask(SIG_BLOCK, Some(set)).unwrap();
        let me = me(sys);
        let pid = sys.getpid().unwrap();
        // Pending already: taken at once, thread-directed first, no handler.
        WAKER_TID.store(0, Ordering::SeqCst);
        sys.kill(0, SIGUSR1).unwrap();
        sys.tgkill(None, me, SIGUSR2).unwrap();
        let first = sys.rt_sigtimedwait(set, None).unwrap();
        assert_eq!((first.signo, first.code), (SIGUSR2, SI_TKILL));
        let second = sys.rt_sigtimedwait(set, None).unwrap();
        assert_eq!(
            (second.signo, second.code, second.pid),
            (SIGUSR1, SI_USER, pid)
        );
        assert_eq!(WAKER_TID.load(Ordering::SeqCst), 0, "no handler ran");
        // Nothing pending and a deadline now: EAGAIN at once; later: EAGAIN at the deadline.
        let now = sys.monotonic_ns();
        assert_eq!(
            sys.rt_sigtimedwait(set, Some(now)).unwrap_err(),
            Errno::EAGAIN
        );
        let deadline = now + 5_000_000;
        assert_eq!(
            sys.rt_sigtimedwait(set, Some(deadline)).unwrap_err(),
            Errno::EAGAIN
        );
        assert!(clock.0.load(Ordering::SeqCst) >= deadline);
        // Waiting: another thread's kill of the process finds this thread (the sender
        // blocks the signal itself), which takes it.
        spawn(sys, move || {
            sys.rt_sigprocmask(SIG_BLOCK, Some(set)).unwrap();
            sys.kill(pid, SIGUSR1).unwrap();
            0
        });
        let got = sys.rt_sigtimedwait(sig_bit(SIGUSR1), None).unwrap();
        assert_eq!(got.signo, SIGUSR1);
        // The mask is as it was, and nothing is left pending.
        assert_eq!(sys.rt_sigprocmask(SIG_BLOCK, None), Ok(set));
        assert_eq!(sys.sigpending(), Ok(0));
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        6
    });
    assert_eq!(status, Some(6));
}

/// The values the queued-signal handler saw, in order (si_code in the high half).
static QUEUED_SEEN: std::sync::Mutex<Vec<(i32, i32, u64)>> = std::sync::Mutex::new(Vec::new());

extern "C" fn record_queued(sig: i32, info: *mut SigInfo, _context: *mut u64) {
    // SAFETY: the layer passes a live siginfo_t.
    let info = unsafe { &*info };
    QUEUED_SEEN
        .lock()
        .unwrap()
        .push((sig, info.code, info.value));
}

fn queued_info(code: i32, value: u64) -> SigInfo {
    let mut words = [0u64; 16];
    words[1] = code as u32 as u64;
    words[3] = value;
    SigInfo::from_words(words)
}

#[test]
fn real_time_signals_queue_with_their_values_and_standard_ones_do_not() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let rt = SIGRTMIN_KERNEL + 3;
    let status = w.run(move || {
        let act = SigAction {
            handler: record_queued as *const () as usize,
            flags: SA_SIGINFO,
            ..SigAction::default()
        };
        sys.rt_sigaction(rt, Some(act)).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(act)).unwrap();
        let pid = sys.getpid().unwrap();
        QUEUED_SEEN.lock().unwrap().clear();
        sys.rt_sigprocmask(SIG_SETMASK, Some(sig_bit(rt) | sig_bit(SIGUSR1)))
            .unwrap();
        for value in [11, 22, 33] {
            sys.rt_sigqueueinfo(pid, rt, queued_info(SI_QUEUE, value))
                .unwrap();
        }
        sys.kill(pid, rt).unwrap();
        // A standard signal: the first instance stays, a second is not queued.
        sys.rt_sigqueueinfo(pid, SIGUSR1, queued_info(SI_QUEUE, 7))
            .unwrap();
        sys.rt_sigqueueinfo(pid, SIGUSR1, queued_info(SI_QUEUE, 8))
            .unwrap();
        assert_eq!(sys.sigpending(), Ok(sig_bit(rt) | sig_bit(SIGUSR1)));
        assert!(QUEUED_SEEN.lock().unwrap().is_empty());
        // sigtimedwait takes the oldest instance; the signal stays pending behind it.
        let taken = sys.rt_sigtimedwait(sig_bit(rt), Some(0)).unwrap();
        assert_eq!((taken.signo, taken.code, taken.value), (rt, SI_QUEUE, 11));
        assert_eq!(sys.sigpending(), Ok(sig_bit(rt) | sig_bit(SIGUSR1)));
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        assert_eq!(
            *QUEUED_SEEN.lock().unwrap(),
            [
                (SIGUSR1, SI_QUEUE, 7),
                (rt, SI_QUEUE, 22),
                (rt, SI_QUEUE, 33),
                (rt, SI_USER, 0)
            ]
        );
        assert_eq!(sys.sigpending(), Ok(0));

        // Refused without a change: a kernel-looking code for another process, no such
        // process, a bad signal; and past the queue's capacity.
        assert_eq!(
            sys.rt_sigqueueinfo(pid + 100, rt, queued_info(SI_USER, 1)),
            Err(Errno::EPERM)
        );
        assert_eq!(
            sys.rt_sigqueueinfo(pid + 100, rt, queued_info(SI_QUEUE, 1)),
            Err(Errno::ESRCH)
        );
        assert_eq!(
            sys.rt_sigqueueinfo(pid, 65, queued_info(SI_QUEUE, 1)),
            Err(Errno::EINVAL)
        );
        sys.rt_sigprocmask(SIG_SETMASK, Some(sig_bit(rt))).unwrap();
        for value in 0..MAX_QUEUED as u64 {
            sys.rt_sigqueueinfo(pid, rt, queued_info(SI_QUEUE, value))
                .unwrap();
        }
        assert_eq!(
            sys.rt_sigqueueinfo(pid, rt, queued_info(SI_QUEUE, 9)),
            Err(Errno::EAGAIN)
        );
        // Ignoring the signal discards every queued instance.
        sys.rt_sigaction(rt, Some(ignore())).unwrap();
        assert_eq!(sys.sigpending(), Ok(0));
        sys.rt_sigaction(rt, Some(act)).unwrap();
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        assert_eq!(QUEUED_SEEN.lock().unwrap().len(), 4);

        // Thread-directed: rt_tgsigqueueinfo to the caller itself.
        let me = me(sys);
        sys.rt_tgsigqueueinfo(pid, me, rt, queued_info(SI_QUEUE, 99))
            .unwrap();
        assert_eq!(
            QUEUED_SEEN.lock().unwrap().last(),
            Some(&(rt, SI_QUEUE, 99))
        );
        sys.rt_sigaction(rt, Some(SigAction::default())).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

/// A leaked alternate stack of `bytes` bytes (16-byte aligned).
fn alt_stack(bytes: usize, flags: i32) -> SigStack {
    let top = common::stack(bytes);
    SigStack {
        ss_sp: top - bytes,
        ss_flags: flags,
        ss_size: bytes,
    }
}

/// The address of a local of the caller: where its stack is.
#[inline(always)]
fn local_address() -> usize {
    let here = 0u8;
    std::hint::black_box(&here) as *const u8 as usize
}

#[test]
fn sigaltstack_is_per_thread_and_a_new_thread_starts_without_one() {
    let w = world();
    let sys = w.sys;
    let child_saw = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = child_saw.clone();
    let status = w.run(move || {
        assert_eq!(sys.sigaltstack(None), Ok(SigStack::DISABLED));
        let mine = alt_stack(MINSIGSTKSZ, 0);
        assert_eq!(sys.sigaltstack(Some(mine)), Ok(SigStack::DISABLED));
        // Not on it: reported with flags 0.
        assert_eq!(sys.sigaltstack(None), Ok(mine));
        let theirs = alt_stack(4 * MINSIGSTKSZ, SS_AUTODISARM);
        spawn(sys, move || {
            let mut seen = seen.lock().unwrap();
            seen.push(sys.sigaltstack(None));
            seen.push(sys.sigaltstack(Some(theirs)));
            seen.push(sys.sigaltstack(None));
            0
        });
        for _ in 0..4 {
            uk_sched::yield_now();
        }
        // The child's stack is its own.
        assert_eq!(sys.sigaltstack(None), Ok(mine));
        // Refused calls change nothing.
        for (bad, want) in [
            (
                SigStack {
                    ss_flags: 3,
                    ..mine
                },
                Errno::EINVAL,
            ),
            (
                SigStack {
                    ss_size: MINSIGSTKSZ - 1,
                    ..mine
                },
                Errno::ENOMEM,
            ),
            (SigStack { ss_sp: 0, ..mine }, Errno::EFAULT),
        ] {
            assert_eq!(sys.sigaltstack(Some(bad)), Err(want), "{bad:?}");
            assert_eq!(sys.sigaltstack(None), Ok(mine));
        }
        // A caller whose stack pointer is on it may not change it.
        let inside = mine.ss_sp + 64;
        assert_eq!(
            sys.sigaltstack_at(None, inside),
            Ok(SigStack {
                ss_flags: SS_ONSTACK,
                ..mine
            })
        );
        assert_eq!(
            sys.sigaltstack_at(Some(SigStack::DISABLED), inside),
            Err(Errno::EPERM)
        );
        assert_eq!(sys.sigaltstack(Some(SigStack::DISABLED)), Ok(mine));
        assert_eq!(sys.sigaltstack(None), Ok(SigStack::DISABLED));
        3
    });
    assert_eq!(status, Some(3));
    let theirs = child_saw.lock().unwrap();
    assert_eq!(theirs.len(), 3);
    assert_eq!(theirs[0], Ok(SigStack::DISABLED), "a new thread has none");
    assert_eq!(theirs[1], Ok(SigStack::DISABLED));
    assert_eq!(
        theirs[2].map(|s| (s.ss_size, s.ss_flags)),
        Ok((4 * MINSIGSTKSZ, SS_AUTODISARM))
    );
}

/// What the handlers on the alternate stack saw.
#[derive(Debug, Default, Clone)]
struct OnAltStack {
    /// Address of a local of `on_alt`, of `on_alt_nested`, of `on_plain`.
    local: usize,
    nested_local: usize,
    plain_local: usize,
    /// `sigaltstack(NULL, &old)` inside the handler, and a change tried there.
    report: Option<Result<SigStack, Errno>>,
    change: Option<Result<SigStack, Errno>>,
    /// The handler's context's `uc_stack`.
    uc_stack: [u64; 3],
    /// Whether another thread ran while the handler waited on the alternate stack.
    other_ran: bool,
}

static ALT_SEEN: std::sync::Mutex<Option<OnAltStack>> = std::sync::Mutex::new(None);
static OTHER_RAN: AtomicUsize = AtomicUsize::new(0);

fn note(f: impl FnOnce(&mut OnAltStack)) {
    let mut seen = ALT_SEEN.lock().unwrap_or_else(|e| e.into_inner());
    f(seen.get_or_insert_with(OnAltStack::default));
}

extern "C" fn on_alt(_sig: i32, _info: *mut SigInfo, context: *mut u64) {
    let local = local_address();
    let sys = sys_in_handler();
    let report = sys.sigaltstack(None);
    let change = sys.sigaltstack(Some(SigStack::DISABLED));
    // SAFETY: the layer passes a live ucontext_t; uc_stack is words 2 to 4.
    let uc_stack = unsafe { [*context.add(2), *context.add(3), *context.add(4)] };
    note(|s| {
        s.local = local;
        s.report = Some(report);
        s.change = Some(change);
        s.uc_stack = uc_stack;
    });
    // A nested SA_ONSTACK signal stays on this stack, and a plain handler runs here too.
    sys.tgkill(None, sys.gettid().unwrap(), SIGUSR2).unwrap();
    sys.tgkill(None, sys.gettid().unwrap(), SIGHUP).unwrap();
    // Blocking on the alternate stack: another thread runs meanwhile.
    for _ in 0..8 {
        if OTHER_RAN.load(Ordering::SeqCst) != 0 {
            break;
        }
        uk_sched::yield_now();
    }
    note(|s| s.other_ran = OTHER_RAN.load(Ordering::SeqCst) != 0);
}

extern "C" fn on_alt_nested(_sig: i32) {
    let local = local_address();
    note(|s| s.nested_local = local);
}

extern "C" fn on_plain(_sig: i32) {
    let local = local_address();
    note(|s| s.plain_local = local);
}

#[test]
fn an_sa_onstack_handler_runs_on_the_alternate_stack() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    *ALT_SEEN.lock().unwrap_or_else(|e| e.into_inner()) = None;
    OTHER_RAN.store(0, Ordering::SeqCst);
    let alt = alt_stack(64 * 1024, 0);
    let status = w.run(move || {
        let onstack = |f: usize, flags: u64| SigAction {
            handler: f,
            flags,
            ..SigAction::default()
        };
        sys.rt_sigaction(
            SIGUSR1,
            Some(onstack(
                on_alt as *const () as usize,
                SA_ONSTACK | SA_SIGINFO,
            )),
        )
        .unwrap();
        sys.rt_sigaction(
            SIGUSR2,
            Some(onstack(on_alt_nested as *const () as usize, SA_ONSTACK)),
        )
        .unwrap();
        sys.rt_sigaction(SIGHUP, Some(onstack(on_plain as *const () as usize, 0)))
            .unwrap();
        // Without an alternate stack, SA_ONSTACK runs the handler here.
        sys.tgkill(None, me(sys), SIGUSR2).unwrap();
        let here = local_address();
        let nested = ALT_SEEN.lock().unwrap().take().unwrap().nested_local;
        assert!(!alt.contains(nested));
        assert!(
            nested < here && here - nested < 64 * 1024,
            "{nested:#x} {here:#x}"
        );

        sys.sigaltstack(Some(alt)).unwrap();
        spawn(sys, || {
            OTHER_RAN.store(1, Ordering::SeqCst);
            0
        });
        sys.tgkill(None, me(sys), SIGUSR1).unwrap();
        // Back on the thread's stack, with the alternate stack as it was.
        assert!(!alt.contains(local_address()));
        assert_eq!(sys.sigaltstack(None), Ok(alt));
        // A handler without SA_ONSTACK runs on the thread's stack.
        sys.tgkill(None, me(sys), SIGHUP).unwrap();
        let plain = ALT_SEEN.lock().unwrap().as_ref().unwrap().plain_local;
        assert!(!alt.contains(plain), "{plain:#x}");
        sys.sigaltstack(Some(SigStack::DISABLED)).unwrap();
        for sig in [SIGUSR1, SIGUSR2, SIGHUP] {
            sys.rt_sigaction(sig, Some(SigAction::default())).unwrap();
        }
        9
    });
    assert_eq!(status, Some(9));
    let seen = ALT_SEEN.lock().unwrap().clone().unwrap();
    assert!(
        alt.contains(seen.local),
        "handler local {:#x} not in {alt:x?}",
        seen.local
    );
    assert!(
        alt.contains(seen.nested_local),
        "nested {:#x}",
        seen.nested_local
    );
    assert!(
        seen.nested_local < seen.local,
        "nested below the outer handler"
    );
    assert_eq!(
        seen.report,
        Some(Ok(SigStack {
            ss_flags: SS_ONSTACK,
            ..alt
        }))
    );
    assert_eq!(seen.change, Some(Err(Errno::EPERM)));
    assert_eq!(SigStack::from_words(seen.uc_stack), alt);
    assert!(seen.other_ran, "the handler blocked and another thread ran");
}

static DISARMED_REPORT: std::sync::Mutex<Option<(usize, Result<SigStack, Errno>)>> =
    std::sync::Mutex::new(None);

extern "C" fn on_disarmed(_sig: i32) {
    let report = sys_in_handler().sigaltstack(None);
    *DISARMED_REPORT.lock().unwrap_or_else(|e| e.into_inner()) = Some((local_address(), report));
}

#[test]
fn ss_autodisarm_disables_the_stack_while_the_handler_runs() {
    let w = world();
    let sys = w.sys;
    let _serial = handlers_use(sys);
    let alt = alt_stack(16 * 1024, SS_AUTODISARM);
    let status = w.run(move || {
        sys.rt_sigaction(
            SIGUSR1,
            Some(SigAction {
                handler: on_disarmed as *const () as usize,
                flags: SA_ONSTACK,
                ..SigAction::default()
            }),
        )
        .unwrap();
        sys.sigaltstack(Some(alt)).unwrap();
        sys.tgkill(None, me(sys), SIGUSR1).unwrap();
        let (local, report) = DISARMED_REPORT.lock().unwrap().take().unwrap();
        assert!(alt.contains(local), "{local:#x}");
        assert_eq!(report, Ok(SigStack::DISABLED), "disarmed inside");
        assert_eq!(sys.sigaltstack(None), Ok(alt), "back afterwards");
        sys.sigaltstack(Some(SigStack::DISABLED)).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        2
    });
    assert_eq!(status, Some(2));
}
