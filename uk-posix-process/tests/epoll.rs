//! epoll_wait, epoll_pwait and epoll_pwait2 on the image's global layer and global VFS
//! (this file's process has them to itself; its tests take turns), with real scheduler
//! threads and a fake clock: a wait that another thread's eventfd or pipe write ends,
//! edge-triggered and one-shot registrations reported once, registrations gone with the
//! last close, timeouts, signals ending the wait (or not, under epoll_pwait's mask), and
//! the raw calls' checks and `struct epoll_event` layout.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use common::{on_signal, spawn, world_on};
use uk_posix_process::signal::{SIG_SETMASK, SIGUSR1, SigAction, sig_bit};
use uk_posix_process::{Errno, system};
use uk_syscall::{Sysno, dispatch};
use uk_vfs::EpollEvent;
use uk_vfs::epoll::{
    EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_EVENT_SIZE, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLONESHOT,
    EPOLLOUT,
};
use uk_vfs::eventfd::EFD_NONBLOCK;

static SERIAL: Mutex<()> = Mutex::new(());
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: i32) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

fn vfs() -> &'static uk_vfs::Vfs {
    uk_vfs::global::vfs()
}

fn add(ep: i32, fd: i32, events: u32, data: u64) {
    vfs()
        .epoll_ctl(ep, EPOLL_CTL_ADD, fd, EpollEvent { events, data })
        .unwrap();
}

fn bump(fd: i32) {
    assert_eq!(vfs().write(fd, &1u64.to_ne_bytes()), Ok(8));
}

/// (events, data) of each event.
fn pairs(events: &[EpollEvent]) -> Vec<(u32, u64)> {
    events.iter().map(|e| (e.events, e.data)).collect()
}

#[test]
fn a_wait_ends_on_another_threads_eventfd_or_pipe_write() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        let ep = vfs().epoll_create1(0).unwrap();
        let efd = vfs().eventfd2(0, EFD_NONBLOCK).unwrap();
        let [r, wr] = vfs().pipe2(0).unwrap();
        add(ep, efd, EPOLLIN, 1);
        add(ep, r, EPOLLIN, 2);
        // Nothing ready and no deadline: another thread's eventfd write ends the wait (a
        // missed wake would leave every thread blocked: the idle hook reports a deadlock).
        spawn(sys, move || {
            uk_sched::yield_now();
            bump(efd);
            0
        });
        let start = sys.monotonic_ns();
        let got = sys.epoll_wait(ep, 8, None, None).unwrap();
        assert_eq!(pairs(&got), [(EPOLLIN, 1)]);
        assert_eq!(sys.monotonic_ns(), start, "woken, not timed out");
        vfs().read(efd, &mut [0; 8]).unwrap();
        // The same with a pipe write, while a deadline is far away.
        spawn(sys, move || {
            uk_sched::yield_now();
            vfs().write(wr, b"hi").unwrap();
            0
        });
        let far = sys.monotonic_ns() + 10_000_000_000;
        let got = sys.epoll_wait(ep, 8, Some(far), None).unwrap();
        assert_eq!(pairs(&got), [(EPOLLIN, 2)]);
        assert_eq!(sys.monotonic_ns(), start);
        // Two waiters on one set both wake.
        spawn(sys, move || {
            let got = system().epoll_wait(ep, 8, None, None).unwrap();
            assert_eq!(pairs(&got), [(EPOLLIN, 1)]);
            0
        });
        vfs().read(r, &mut [0; 4]).unwrap();
        spawn(sys, move || {
            uk_sched::yield_now();
            bump(efd);
            0
        });
        let got = sys.epoll_wait(ep, 8, None, None).unwrap();
        assert_eq!(pairs(&got), [(EPOLLIN, 1)]);
        uk_sched::yield_now();
        for fd in [ep, efd, r, wr] {
            vfs().close(fd).unwrap();
        }
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn edges_one_shots_closes_and_timeouts() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let clock = w.clock.clone();
    let status = w.run(move || {
        let ep = vfs().epoll_create1(0).unwrap();
        let et = vfs().eventfd2(0, EFD_NONBLOCK).unwrap();
        let one = vfs().eventfd2(0, EFD_NONBLOCK).unwrap();
        add(ep, et, EPOLLIN | EPOLLET, 1);
        add(ep, one, EPOLLIN | EPOLLONESHOT, 2);
        let now = sys.monotonic_ns();
        // Nothing ready, a deadline already passed: one look.
        assert_eq!(sys.epoll_wait(ep, 8, Some(now), None), Ok(vec![]));
        bump(et);
        bump(one);
        let mut got = pairs(&sys.epoll_wait(ep, 8, Some(now), None).unwrap());
        got.sort();
        assert_eq!(got, [(EPOLLIN, 1), (EPOLLIN, 2)]);
        // Still readable, but each was reported: nothing until a change (edge) or a MOD
        // (one-shot). A wait with a deadline times out on the clock.
        let deadline = sys.monotonic_ns() + 5_000_000;
        assert_eq!(sys.epoll_wait(ep, 8, Some(deadline), None), Ok(vec![]));
        assert!(clock.0.load(Ordering::SeqCst) >= deadline);
        // Another thread's write is an edge: the wait ends, once.
        spawn(sys, move || {
            uk_sched::yield_now();
            bump(et);
            bump(one);
            0
        });
        let got = sys.epoll_wait(ep, 8, None, None).unwrap();
        assert_eq!(pairs(&got), [(EPOLLIN, 1)]);
        let now = sys.monotonic_ns();
        assert_eq!(sys.epoll_wait(ep, 8, Some(now), None), Ok(vec![]));
        vfs()
            .epoll_ctl(
                ep,
                EPOLL_CTL_MOD,
                one,
                EpollEvent {
                    events: EPOLLIN | EPOLLOUT,
                    data: 3,
                },
            )
            .unwrap();
        let got = sys.epoll_wait(ep, 8, Some(now), None).unwrap();
        assert_eq!(pairs(&got), [(EPOLLIN | EPOLLOUT, 3)]);
        // maxevents: one at a time, in turn.
        bump(et);
        let a = sys.epoll_wait(ep, 1, Some(now), None).unwrap();
        let b = sys.epoll_wait(ep, 1, Some(now), None).unwrap();
        assert_ne!(pairs(&a), pairs(&b));
        assert_eq!(sys.epoll_wait(ep, 0, Some(now), None), Err(Errno::EINVAL));
        // Closing the last descriptor of a file removes its registration.
        vfs().close(one).unwrap();
        assert_eq!(sys.epoll_wait(ep, 8, Some(now), None), Ok(vec![]));
        // A hang-up is reported unasked.
        let [r, wr] = vfs().pipe2(0).unwrap();
        add(ep, r, EPOLLIN, 4);
        spawn(sys, move || {
            vfs().close(wr).unwrap();
            0
        });
        let got = sys.epoll_wait(ep, 8, None, None).unwrap();
        assert_eq!(pairs(&got), [(EPOLLHUP, 4)]);
        // Not an epoll set; not open.
        assert_eq!(sys.epoll_wait(r, 8, Some(now), None), Err(Errno::EINVAL));
        for fd in [ep, et, r] {
            vfs().close(fd).unwrap();
        }
        assert_eq!(sys.epoll_wait(ep, 8, Some(now), None), Err(Errno::EBADF));
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_signal_ends_a_wait_unless_epoll_pwaits_mask_blocks_it() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        on_signal(sys, SIGUSR1, note as *const () as usize, 0);
        let ep = vfs().epoll_create1(0).unwrap();
        let efd = vfs().eventfd2(0, EFD_NONBLOCK).unwrap();
        add(ep, efd, EPOLLIN, 1);
        let me = sys.gettid().unwrap();
        CAUGHT.store(0, Ordering::SeqCst);
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR1).unwrap();
            0
        });
        assert_eq!(sys.epoll_wait(ep, 8, None, None), Err(Errno::EINTR));
        assert_eq!(
            CAUGHT.load(Ordering::SeqCst),
            SIGUSR1,
            "the handler ran first"
        );
        // Under epoll_pwait's mask the signal waits; a write ends the wait; the mask comes
        // back and lets the signal run.
        CAUGHT.store(0, Ordering::SeqCst);
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR1).unwrap();
            uk_sched::yield_now();
            bump(efd);
            0
        });
        let got = sys.epoll_wait(ep, 8, None, Some(sig_bit(SIGUSR1))).unwrap();
        assert_eq!(pairs(&got), [(EPOLLIN, 1)]);
        assert_eq!(CAUGHT.load(Ordering::SeqCst), 0, "blocked during the wait");
        assert_eq!(sys.rt_sigprocmask(SIG_SETMASK, Some(0)), Ok(0));
        assert_eq!(CAUGHT.load(Ordering::SeqCst), SIGUSR1);
        for fd in [ep, efd] {
            vfs().close(fd).unwrap();
        }
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn the_raw_calls_check_before_they_wait_and_write_linuxs_layout() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        let call = |n: Sysno, a: [usize; 6]| dispatch(n as usize, &a);
        let err = |e: Errno| -(e.into_raw() as isize);
        let ep = vfs().epoll_create1(0).unwrap();
        let a = vfs().eventfd2(1, EFD_NONBLOCK).unwrap();
        let b = vfs().eventfd2(1, EFD_NONBLOCK).unwrap();
        add(ep, a, EPOLLIN, 0x1111_2222_3333_4444);
        add(ep, b, EPOLLOUT, 0x5555_6666_7777_8888);
        let mut buf = [0xaau8; 4 * 16];
        let at = buf.as_mut_ptr() as usize;
        let zero = [0i64; 2];
        let zero = zero.as_ptr() as usize;
        let epu = ep as usize;
        // epoll_pwait: a timeout of 0 looks once; both events, packed as the ABI says.
        assert_eq!(call(Sysno::epoll_pwait, [epu, at, 4, 0, 0, 8]), 2);
        let mut got: Vec<_> = buf
            .chunks_exact(EPOLL_EVENT_SIZE)
            .take(2)
            .map(|c| EpollEvent::from_bytes(c).unwrap())
            .map(|e| (e.events, e.data))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (EPOLLIN, 0x1111_2222_3333_4444),
                (EPOLLOUT, 0x5555_6666_7777_8888)
            ]
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(EPOLL_EVENT_SIZE, 12);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(EPOLL_EVENT_SIZE, 16);
        // Nothing past the events reported is written.
        assert!(buf[2 * EPOLL_EVENT_SIZE..].iter().all(|&b| b == 0xaa));
        // maxevents limits the answer.
        assert_eq!(call(Sysno::epoll_pwait2, [epu, at, 1, zero, 0, 8]), 1);
        // Refusals, in Linux's order.
        let maxed = i32::MAX as usize;
        for (args, want) in [
            ([epu, at, 0, 0, 0, 8], Errno::EINVAL),
            ([epu, at, u32::MAX as usize, 0, 0, 8], Errno::EINVAL),
            ([epu, at, maxed, 0, 0, 8], Errno::EINVAL),
            ([epu, 0, 1, 0, 0, 8], Errno::EFAULT),
            ([epu, 8, 1, 0, 0, 8], Errno::EFAULT),
            ([999, at, 1, 0, 0, 8], Errno::EBADF),
            ([a as usize, at, 1, 0, 0, 8], Errno::EINVAL),
        ] {
            assert_eq!(call(Sysno::epoll_pwait, args), err(want), "{args:x?}");
        }
        let mask = 0u64;
        let mask = &mask as *const u64 as usize;
        // The mask comes first: a bad size or pointer before a bad maxevents.
        assert_eq!(
            call(Sysno::epoll_pwait, [epu, 0, 1, 0, mask, 4]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(Sysno::epoll_pwait, [epu, at, 0, 0, 8, 8]),
            err(Errno::EFAULT)
        );
        assert_eq!(call(Sysno::epoll_pwait, [epu, at, 4, 0, mask, 8]), 2);
        // epoll_pwait2: the timespec before all else.
        let bad_time = [0i64, 1_000_000_000];
        let bad_time = bad_time.as_ptr() as usize;
        assert_eq!(
            call(Sysno::epoll_pwait2, [epu, 0, 1, bad_time, 0, 8]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(Sysno::epoll_pwait2, [epu, at, 0, 8, 0, 8]),
            err(Errno::EFAULT)
        );
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(call(Sysno::epoll_wait, [epu, at, 4, 0, 0, 0]), 2);
            assert_eq!(
                call(Sysno::epoll_wait, [epu, at, usize::MAX, 0, 0, 0]),
                err(Errno::EINVAL)
            );
        }
        // A negative timeout waits: another thread makes the set ready.
        vfs().read(a, &mut [0; 8]).unwrap();
        vfs().close(b).unwrap();
        spawn(sys, move || {
            uk_sched::yield_now();
            bump(a);
            0
        });
        assert_eq!(call(Sysno::epoll_pwait, [epu, at, 4, usize::MAX, 0, 8]), 1);
        for fd in [ep, a] {
            vfs().close(fd).unwrap();
        }
        0
    });
    assert_eq!(status, Some(0));
}
