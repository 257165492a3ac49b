//! Blocking pipe and eventfd calls interrupted by signals, on the image's global layer and
//! global VFS (this file's process has them to itself; its tests take turns): `EINTR`
//! after the handler ran, a restart with `SA_RESTART`, a partial write's count, ignored and
//! blocked signals that leave the wait alone, a default action that ends the process, and
//! `alarm`. A wait a signal failed to end leaves every thread blocked with no deadline,
//! which the fake clock's idle hook reports as a deadlock (the test fails, it never hangs).

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use common::{on_signal, spawn, world_on};
use uk_posix_process::signal::{
    SA_RESTART, SIG_BLOCK, SIG_IGN, SIG_SETMASK, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SigAction,
    sig_bit,
};
use uk_posix_process::{Errno, System, system};
use uk_syscall::{Sysno, dispatch};
use uk_vfs::{PIPE_BUF, PIPE_CAPACITY};

static SERIAL: Mutex<()> = Mutex::new(());
/// The last signal a handler saw.
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// How many times a handler ran.
static RUNS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn note(sig: i32) {
    CAUGHT.store(sig, Ordering::SeqCst);
    RUNS.fetch_add(1, Ordering::SeqCst);
}

fn vfs() -> &'static uk_vfs::Vfs {
    uk_vfs::global::vfs()
}

/// Runs `main` as the first thread of a fresh process of the global layer, its uk-vfs
/// waits on the layer (`connect_vfs`); returns the run's exit status.
fn run(main: impl FnOnce(&'static System) -> i32 + 'static) -> Option<u8> {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    CAUGHT.store(0, Ordering::SeqCst);
    RUNS.store(0, Ordering::SeqCst);
    let w = world_on(sys);
    w.run(move || main(sys))
}

fn handle(sys: &System, sig: i32, flags: u64) {
    on_signal(sys, sig, note as *const () as usize, flags);
}

/// Starts a thread that sends `sig` to thread `to` (once the caller blocked: the scheduler
/// is cooperative), sleeps 1 ms of the fake clock (so the receiver handles it and, if it
/// restarts, waits again), then runs `then`.
fn signal_then(sys: &'static System, to: i32, sig: i32, then: impl FnOnce() + 'static) {
    spawn(sys, move || {
        sys.tgkill(None, to, sig).unwrap();
        uk_sched::sleep(1_000_000);
        then();
        0
    });
}

/// Closes `fds` and restores SIGUSR1's default action; the test's exit status (0).
fn finish(sys: &System, fds: &[i32]) -> i32 {
    for &fd in fds {
        vfs().close(fd).unwrap();
    }
    sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
        .unwrap();
    0
}

#[test]
fn a_pipe_read_ends_with_eintr_after_the_handler() {
    let status = run(|sys| {
        handle(sys, SIGUSR1, 0);
        let [r, w] = vfs().pipe2(0).unwrap();
        let me = sys.gettid().unwrap();
        signal_then(sys, me, SIGUSR1, || {});
        let mut buf = [0u8; 8];
        assert_eq!(vfs().read(r, &mut buf), Err(Errno::EINTR));
        assert_eq!(
            CAUGHT.load(Ordering::SeqCst),
            SIGUSR1,
            "the handler ran first"
        );
        // The raw call: -EINTR.
        signal_then(sys, me, SIGUSR1, || {});
        let raw = dispatch(
            Sysno::read as usize,
            &[r as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        );
        assert_eq!(raw, -(Errno::EINTR.into_raw() as isize));
        assert_eq!(RUNS.load(Ordering::SeqCst), 2);
        // The pipe works as before.
        assert_eq!(vfs().write(w, b"ok"), Ok(2));
        assert_eq!(vfs().read(r, &mut buf), Ok(2));
        finish(sys, &[r, w])
    });
    assert_eq!(status, Some(0));
}

#[test]
fn with_sa_restart_the_read_goes_on_and_returns_what_came_later() {
    let status = run(|sys| {
        handle(sys, SIGUSR1, SA_RESTART);
        let [r, w] = vfs().pipe2(0).unwrap();
        let me = sys.gettid().unwrap();
        // The writer notes whether the handler had run when it wrote.
        static HANDLED_BEFORE_WRITE: AtomicI32 = AtomicI32::new(-1);
        signal_then(sys, me, SIGUSR1, move || {
            HANDLED_BEFORE_WRITE.store(CAUGHT.load(Ordering::SeqCst), Ordering::SeqCst);
            assert_eq!(vfs().write(w, b"late"), Ok(4));
        });
        let mut buf = [0u8; 8];
        assert_eq!(vfs().read(r, &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"late");
        assert_eq!(
            HANDLED_BEFORE_WRITE.load(Ordering::SeqCst),
            SIGUSR1,
            "the handler ran during the wait, which then went on"
        );
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
        finish(sys, &[r, w])
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_write_that_put_part_in_returns_its_count_with_or_without_sa_restart() {
    let status = run(|sys| {
        let me = sys.gettid().unwrap();
        let [r, w] = vfs().pipe2(0).unwrap();
        for flags in [0, SA_RESTART] {
            handle(sys, SIGUSR1, flags);
            // 100 bytes of room; a write larger than PIPE_BUF puts 100 in and waits.
            let fill = vec![1u8; PIPE_CAPACITY - 100];
            assert_eq!(vfs().write(w, &fill), Ok(fill.len()));
            signal_then(sys, me, SIGUSR1, || {});
            assert_eq!(
                vfs().write(w, &[2u8; PIPE_BUF + 1]),
                Ok(100),
                "flags {flags:#x}"
            );
            let mut all = vec![0u8; PIPE_CAPACITY];
            assert_eq!(vfs().read(r, &mut all), Ok(PIPE_CAPACITY));
            assert_eq!(all[PIPE_CAPACITY - 1], 2);
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), 2);
        // Nothing written yet: EINTR without SA_RESTART, a full write with it once a
        // reader made room.
        handle(sys, SIGUSR1, 0);
        assert_eq!(vfs().write(w, &vec![1u8; PIPE_CAPACITY]), Ok(PIPE_CAPACITY));
        signal_then(sys, me, SIGUSR1, || {});
        assert_eq!(vfs().write(w, b"x"), Err(Errno::EINTR));
        handle(sys, SIGUSR1, SA_RESTART);
        signal_then(sys, me, SIGUSR1, move || {
            assert_eq!(vfs().read(r, &mut [0u8; 16]), Ok(16));
        });
        assert_eq!(vfs().write(w, b"x"), Ok(1));
        assert_eq!(RUNS.load(Ordering::SeqCst), 4);
        finish(sys, &[r, w])
    });
    assert_eq!(status, Some(0));
}

#[test]
fn ignored_and_blocked_signals_leave_the_wait_alone() {
    let status = run(|sys| {
        let me = sys.gettid().unwrap();
        let [r, w] = vfs().pipe2(0).unwrap();
        let mut buf = [0u8; 8];
        // Ignored: dropped, the read goes on.
        sys.rt_sigaction(
            SIGUSR2,
            Some(SigAction {
                handler: SIG_IGN,
                ..SigAction::default()
            }),
        )
        .unwrap();
        signal_then(sys, me, SIGUSR2, move || {
            assert_eq!(vfs().write(w, b"a"), Ok(1));
        });
        assert_eq!(vfs().read(r, &mut buf), Ok(1));
        assert_eq!(sys.sigpending(), Ok(0));
        // Blocked: stays pending, the read goes on; the unblock runs the handler.
        handle(sys, SIGUSR1, 0);
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        signal_then(sys, me, SIGUSR1, move || {
            assert_eq!(vfs().write(w, b"b"), Ok(1));
        });
        assert_eq!(vfs().read(r, &mut buf), Ok(1));
        assert_eq!(RUNS.load(Ordering::SeqCst), 0);
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGUSR1)));
        sys.rt_sigprocmask(SIG_SETMASK, Some(0)).unwrap();
        assert_eq!(CAUGHT.load(Ordering::SeqCst), SIGUSR1);
        vfs().close(r).unwrap();
        vfs().close(w).unwrap();
        for sig in [SIGUSR1, SIGUSR2] {
            sys.rt_sigaction(sig, Some(SigAction::default())).unwrap();
        }
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn an_eventfd_read_and_write_end_with_eintr_or_restart() {
    let status = run(|sys| {
        let me = sys.gettid().unwrap();
        let e = vfs().eventfd2(0, 0).unwrap();
        let mut buf = [0u8; 8];
        handle(sys, SIGUSR1, 0);
        signal_then(sys, me, SIGUSR1, || {});
        assert_eq!(vfs().read(e, &mut buf), Err(Errno::EINTR));
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
        handle(sys, SIGUSR1, SA_RESTART);
        signal_then(sys, me, SIGUSR1, move || {
            assert_eq!(vfs().write(e, &7u64.to_ne_bytes()), Ok(8));
        });
        assert_eq!(vfs().read(e, &mut buf), Ok(8));
        assert_eq!(u64::from_ne_bytes(buf), 7);
        assert_eq!(RUNS.load(Ordering::SeqCst), 2);
        // A write that would pass the maximum waits; a signal ends it.
        handle(sys, SIGUSR1, 0);
        let max = uk_vfs::eventfd::EVENTFD_MAX;
        assert_eq!(vfs().write(e, &max.to_ne_bytes()), Ok(8));
        signal_then(sys, me, SIGUSR1, || {});
        assert_eq!(vfs().write(e, &1u64.to_ne_bytes()), Err(Errno::EINTR));
        assert_eq!(RUNS.load(Ordering::SeqCst), 3);
        finish(sys, &[e])
    });
    assert_eq!(status, Some(0));
}

#[test]
fn alarm_ends_a_blocking_read() {
    let status = run(|sys| {
        handle(sys, SIGALRM, 0);
        let [r, w] = vfs().pipe2(0).unwrap();
        let start = sys.monotonic_ns();
        assert_eq!(sys.alarm(1), 0);
        let mut buf = [0u8; 8];
        // No other thread: only the timer can end this wait.
        assert_eq!(vfs().read(r, &mut buf), Err(Errno::EINTR));
        assert_eq!(CAUGHT.load(Ordering::SeqCst), SIGALRM);
        assert!(sys.monotonic_ns() - start >= 1_000_000_000);
        vfs().close(r).unwrap();
        vfs().close(w).unwrap();
        sys.rt_sigaction(SIGALRM, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_signal_whose_default_terminates_ends_the_process_from_the_wait() {
    let status = run(|sys| {
        let me = sys.gettid().unwrap();
        let [r, _w] = vfs().pipe2(0).unwrap();
        signal_then(sys, me, SIGTERM, || {});
        let mut buf = [0u8; 8];
        let _ = vfs().read(r, &mut buf);
        unreachable!("SIGTERM's default action ends the process");
    });
    assert_eq!(status, Some(128 + SIGTERM as u8));
}
