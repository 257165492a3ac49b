//! The image's global layer (this file's process has it to itself; its tests take turns):
//! `uk_clone`, musl's `__clone` for C callers, and raw syscalls that need a scheduler
//! thread.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{addr, spawn, stack, word, world_on};
use uk_posix_process::flags::{CLONE_VFORK, PTHREAD_FLAGS};
use uk_posix_process::signal::{SIGUSR2, SigAction};
use uk_posix_process::{Errno, FUTEX_WAIT, system, uk_clone};
use uk_syscall::Sysno;

/// The global layer takes one scheduler at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the C child saw: its argument and its thread pointer.
static SEEN_ARG: AtomicUsize = AtomicUsize::new(0);
static SEEN_TP: AtomicUsize = AtomicUsize::new(0);

extern "C" fn c_child(arg: usize) -> i32 {
    SEEN_ARG.store(arg, Ordering::SeqCst);
    SEEN_TP.store(
        uk_sched::current().unwrap().thread_pointer(),
        Ordering::SeqCst,
    );
    // Only the last thread's status is the process's: main's 0 wins below.
    5
}

fn errno(e: Errno) -> i32 {
    -e.into_raw()
}

#[test]
fn uk_clone_runs_a_c_entry_and_refuses_bad_input_unchanged() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    let w = world_on(sys);
    let status = w.run(move || {
        let (ptid, ctid) = (word(0), word(0));
        let tls = stack(4096) - 256;
        let flags = PTHREAD_FLAGS as i32;
        // A null entry or a refused flag set: an error, no thread, no tid written.
        let top = stack(64 * 1024);
        assert_eq!(
            uk_clone(None, top, flags, 1, addr(ptid), tls, addr(ctid)),
            errno(Errno::EINVAL)
        );
        let vfork = (PTHREAD_FLAGS | CLONE_VFORK) as i32;
        let refused = uk_clone(Some(c_child), top, vfork, 1, addr(ptid), tls, addr(ctid));
        assert!(refused < 0, "{refused}");
        assert_eq!(sys.thread_count(), 1);
        assert_eq!(ptid.load(Ordering::SeqCst), 0);

        let tid = uk_clone(Some(c_child), top, flags, 42, addr(ptid), tls, addr(ctid));
        assert!(tid > 0, "{tid}");
        assert_eq!(
            ptid.load(Ordering::SeqCst),
            tid as u32,
            "CLONE_PARENT_SETTID"
        );
        // Join as musl does: wait on the tid word until the child's exit clears it.
        ctid.store(tid as u32, Ordering::SeqCst);
        while ctid.load(Ordering::SeqCst) != 0 {
            match sys.futex(addr(ctid), FUTEX_WAIT, tid as u32, 0, 0, 0) {
                Ok(_) | Err(Errno::EAGAIN) => {}
                Err(e) => panic!("futex: {e}"),
            }
        }
        assert_eq!(SEEN_ARG.load(Ordering::SeqCst), 42);
        assert_eq!(SEEN_TP.load(Ordering::SeqCst), tls, "CLONE_SETTLS");
        assert_eq!(sys.thread_count(), 1);
        0
    });
    assert_eq!(status, Some(0));
}

static SLEEPER_SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_sig: i32) {
    SLEEPER_SIGNALS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_signal_ends_nanosleep_with_eintr_and_the_time_left_in_rem() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    let w = world_on(sys);
    // The raw call's request and `rem` timespecs.
    let cells: &'static mut [i64; 4] = Box::leak(Box::new([10, 0, -1, -1]));
    let base = cells.as_ptr() as usize;
    let status = w.run(move || {
        let action = SigAction {
            handler: count_signal as *const () as usize,
            ..SigAction::default()
        };
        sys.rt_sigaction(SIGUSR2, Some(action)).unwrap();
        let me = sys.gettid().unwrap();
        let start = sys.monotonic_ns();
        spawn(sys, move || {
            // One second into the ten-second sleep.
            sys.nanosleep(uk_posix_process::Timespec::from_ns(1_000_000_000))
                .unwrap();
            sys.tgkill(None, me, SIGUSR2).unwrap();
            0
        });
        let slept = uk_syscall::dispatch(Sysno::nanosleep as usize, &[base, base + 16, 0, 0, 0, 0]);
        assert_eq!(slept, -(Errno::EINTR.into_raw() as isize));
        assert_eq!(
            SLEEPER_SIGNALS.load(Ordering::SeqCst),
            1,
            "the handler ran here"
        );
        assert_eq!(sys.monotonic_ns() - start, 1_000_000_000);
        // SAFETY: `cells` is leaked and 16-byte parts of it are timespecs; the call wrote
        // the time left into the second.
        let rem = unsafe { core::ptr::read_volatile((base + 16) as *const [i64; 2]) };
        assert_eq!(rem, [9, 0]);
        sys.rt_sigaction(SIGUSR2, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

static RETURN_SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_return_signal(_sig: i32) {
    RETURN_SIGNALS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_signal_sent_while_its_thread_is_runnable_runs_when_its_next_call_returns() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    let w = world_on(sys);
    // What an image does: the process layer's return hook is set.
    uk_posix_process::install(w.sched);
    let status = w.run(move || {
        let action = SigAction {
            handler: count_return_signal as *const () as usize,
            ..SigAction::default()
        };
        sys.rt_sigaction(SIGUSR2, Some(action)).unwrap();
        RETURN_SIGNALS.store(0, Ordering::SeqCst);
        let me = sys.gettid().unwrap();
        let yield_call = || uk_syscall::dispatch(Sysno::sched_yield as usize, &[0; 6]);
        // The sender runs during the yield, while this thread is runnable but not waiting:
        // the signal is only pending then, and runs on the way back from the call.
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR2).unwrap();
            0
        });
        assert_eq!(yield_call(), 0);
        assert_eq!(
            RETURN_SIGNALS.load(Ordering::SeqCst),
            1,
            "ran at the return"
        );

        // Blocked, it stays pending through returns until unblocked.
        let set = uk_posix_process::signal::sig_bit(SIGUSR2);
        sys.rt_sigprocmask(uk_posix_process::signal::SIG_BLOCK, Some(set))
            .unwrap();
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR2).unwrap();
            0
        });
        assert_eq!(yield_call(), 0);
        assert_eq!(yield_call(), 0);
        assert_eq!(
            RETURN_SIGNALS.load(Ordering::SeqCst),
            1,
            "blocked: still pending"
        );
        sys.rt_sigprocmask(uk_posix_process::signal::SIG_UNBLOCK, Some(set))
            .unwrap();
        assert_eq!(
            RETURN_SIGNALS.load(Ordering::SeqCst),
            2,
            "run at the unblock"
        );
        sys.rt_sigaction(SIGUSR2, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn raw_wait4_and_waitid_check_their_pointers_before_reaping() {
    use uk_posix_process::cputime::Rusage;
    use uk_posix_process::flags::{CLONE_FILES, CLONE_FS, CLONE_VM, CloneArgs, Via};
    use uk_posix_process::signal::SIGCHLD;
    use uk_posix_process::wait::{P_ALL, WEXITED, WNOHANG};
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    let w = world_on(sys);
    let status = w.run(move || {
        let call = |n: Sysno, args: [usize; 6]| uk_syscall::dispatch(n as usize, &args);
        let release = word(0);
        let (entry, arg) = common::boxed(move || {
            while release.load(Ordering::SeqCst) == 0 {
                uk_sched::yield_now();
            }
            3
        });
        let flags = CLONE_VM | CLONE_FS | CLONE_FILES | SIGCHLD as u64;
        let a = CloneArgs::from_legacy(flags, 0, 0, 0, 0);
        let pid = sys
            .clone(
                &a,
                Via::Clone,
                uk_posix_process::ChildStart::Call { entry, arg },
            )
            .unwrap();
        // waitid with WNOHANG while the child runs: 0, and si_signo..si_status zeroed.
        let info: &'static mut [u32; 32] = Box::leak(Box::new([0xffff_ffff; 32]));
        let info_at = info.as_mut_ptr() as usize;
        let options = (WEXITED | WNOHANG) as usize;
        assert_eq!(
            call(Sysno::waitid, [P_ALL as usize, 0, info_at, options, 0, 0]),
            0
        );
        // SAFETY: `info` is leaked; the call wrote into it.
        let words = unsafe { core::ptr::read_volatile(info_at as *const [u32; 32]) };
        assert_eq!(&words[..7], &[0; 7]);
        assert_eq!(words[7], 0xffff_ffff, "only those fields");
        release.store(1, Ordering::SeqCst);
        for _ in 0..4 {
            uk_sched::yield_now();
        }
        assert!(sys.is_zombie(pid));
        // A status or rusage pointer outside caller memory: EFAULT, the child stays.
        let bad = 8;
        assert_eq!(
            call(Sysno::wait4, [pid as usize, bad, 0, 0, 0, 0]),
            -(Errno::EFAULT.into_raw() as isize)
        );
        assert_eq!(
            call(Sysno::wait4, [pid as usize, 0, 0, bad, 0, 0]),
            -(Errno::EFAULT.into_raw() as isize)
        );
        assert_eq!(
            call(
                Sysno::waitid,
                [P_ALL as usize, 0, bad, WEXITED as usize, 0, 0]
            ),
            -(Errno::EFAULT.into_raw() as isize)
        );
        assert!(sys.is_zombie(pid), "nothing reaped");
        let status = word(0);
        let usage: &'static mut Rusage = Box::leak(Box::default());
        let usage_at = usage as *mut Rusage as usize;
        let reaped = call(
            Sysno::wait4,
            [pid as usize, addr(status), 0, usage_at, 0, 0],
        );
        assert_eq!(reaped, pid as isize);
        assert_eq!(status.load(Ordering::SeqCst), 3 << 8, "WEXITSTATUS 3");
        0
    });
    assert_eq!(status, Some(0));
}
