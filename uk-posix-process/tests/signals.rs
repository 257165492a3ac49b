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
    // SAFETY: the layer passes a live, writable ucontext_t of at least 4.5 KiB.
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
