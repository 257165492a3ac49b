//! uk-vfs's timerfds under the image's global layer and global VFS, with real scheduler
//! threads and a fake clock that the idle hook jumps to the next deadline (a wait nobody
//! can end panics as a deadlock): a blocking read, `poll` and `epoll_wait` without a
//! deadline end at the timer's expiry because every wait of the layer also sleeps no
//! later than the earliest timerfd deadline; a reader that went to sleep before the timer
//! was armed learns the deadline; periodic expiries are counted; `clock_settime` cancels
//! `TFD_TIMER_CANCEL_ON_SET` timers and wakes their readers; a signal ends a blocking read.

mod common;

use std::sync::atomic::{AtomicI32, Ordering};

use common::{on_signal, run_on_the_image_layer, spawn};
use uk_posix_process::itimer::{ITIMER_REAL, Itimerval, Timeval};
use uk_posix_process::signal::SIGALRM;
use uk_posix_process::time::{CLOCK_REALTIME, Timespec};
use uk_posix_process::{Errno, system};
use uk_vfs::epoll::{EPOLL_CTL_ADD, EPOLLIN};
use uk_vfs::poll::POLLIN;
use uk_vfs::timerfd::{
    CLOCK_MONOTONIC, ItimerSpec, TFD_NONBLOCK, TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET,
};
use uk_vfs::{EpollEvent, PollFd};

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: i32) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

const MS: u64 = 1_000_000;

fn vfs() -> &'static uk_vfs::Vfs {
    uk_vfs::global::vfs()
}

fn count(fd: i32) -> Result<u64, Errno> {
    let mut buf = [0u8; 8];
    vfs().read(fd, &mut buf).map(|_| u64::from_ne_bytes(buf))
}

fn arm(fd: i32, interval_ns: u64, value_ns: u64) {
    vfs()
        .timerfd_settime(fd, 0, ItimerSpec::from_ns(interval_ns, value_ns))
        .unwrap();
}

#[test]
fn reads_and_polls_without_deadlines_end_at_the_expiry() {
    run_on_the_image_layer(|sys| {
        let t = vfs().timerfd_create(CLOCK_MONOTONIC, 0).unwrap();
        // A one-shot timer: the read sleeps until its deadline, exactly.
        let start = sys.monotonic_ns();
        arm(t, 0, 5 * MS);
        assert_eq!(count(t), Ok(1));
        assert_eq!(sys.monotonic_ns(), start + 5 * MS);
        // Periodic: every read returns at the next expiry; a pause of three periods
        // counts three.
        arm(t, 2 * MS, 2 * MS);
        assert_eq!(count(t), Ok(1));
        assert_eq!(sys.monotonic_ns(), start + 7 * MS);
        sys.nanosleep(Timespec::from_ns(6 * MS)).unwrap();
        assert_eq!(count(t), Ok(3));
        assert_eq!(count(t), Ok(1));
        assert_eq!(sys.monotonic_ns(), start + 15 * MS);
        // poll without a deadline ends at the expiry.
        arm(t, 0, 4 * MS);
        let mut fds = [PollFd {
            fd: t,
            events: POLLIN as i16,
            revents: 0,
        }];
        assert_eq!(sys.poll(&mut fds, None, None), Ok(1));
        assert_eq!(fds[0].revents as u16, POLLIN);
        assert_eq!(sys.monotonic_ns(), start + 19 * MS);
        assert_eq!(count(t), Ok(1));
        // So does epoll_wait; a later deadline of its own does not matter.
        let ep = vfs().epoll_create1(0).unwrap();
        vfs()
            .epoll_ctl(
                ep,
                EPOLL_CTL_ADD,
                t,
                EpollEvent {
                    events: EPOLLIN,
                    data: 7,
                },
            )
            .unwrap();
        arm(t, 0, 3 * MS);
        let got = sys.epoll_wait(ep, 4, None, None).unwrap();
        assert_eq!(
            got,
            [EpollEvent {
                events: EPOLLIN,
                data: 7
            }]
        );
        assert_eq!(sys.monotonic_ns(), start + 22 * MS);
        // A deadline before the expiry ends the wait first.
        arm(t, 0, 10 * MS);
        let deadline = sys.monotonic_ns() + MS;
        assert_eq!(sys.epoll_wait(ep, 4, Some(deadline), None), Ok(vec![]));
        assert_eq!(sys.monotonic_ns(), deadline);
        for fd in [t, ep] {
            vfs().close(fd).unwrap();
        }
    });
}

#[test]
fn a_sleeping_reader_learns_of_a_later_arming() {
    run_on_the_image_layer(|sys| {
        let t = vfs().timerfd_create(CLOCK_MONOTONIC, 0).unwrap();
        let start = sys.monotonic_ns();
        // The reader sleeps on a disarmed timer (no deadline at all); the main thread arms
        // it and ends without ever waiting, so only the reader can keep the deadline.
        spawn(sys, move || {
            assert_eq!(count(t), Ok(1));
            assert_eq!(system().monotonic_ns(), start + 8 * MS);
            vfs().close(t).unwrap();
            0
        });
        uk_sched::yield_now();
        arm(t, 0, 8 * MS);
    });
}

#[test]
fn clock_settime_cancels_and_wakes() {
    run_on_the_image_layer(|sys| {
        let realtime = uk_vfs::timerfd::CLOCK_REALTIME;
        let t = vfs().timerfd_create(realtime, 0).unwrap();
        let plain = vfs().timerfd_create(realtime, TFD_NONBLOCK).unwrap();
        let wall = sys.realtime_ns();
        let at = ItimerSpec::from_ns(0, wall + 3_600_000 * MS);
        vfs()
            .timerfd_settime(t, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, at)
            .unwrap();
        vfs().timerfd_settime(plain, TFD_TIMER_ABSTIME, at).unwrap();
        // A reader of the cancelable timer sleeps an hour away; setting the clock wakes it
        // with ECANCELED. The plain timer's deadline moved with the clock: now due.
        spawn(sys, move || {
            let sys = system();
            uk_sched::yield_now();
            sys.clock_settime(CLOCK_REALTIME, Timespec::from_ns(wall + 3_600_000 * MS))
                .unwrap();
            0
        });
        let before = sys.monotonic_ns();
        assert_eq!(count(t), Err(Errno::ECANCELED));
        assert_eq!(
            sys.monotonic_ns(),
            before,
            "woken by the setting, not a deadline"
        );
        assert_eq!(count(plain), Ok(1));
        for fd in [t, plain] {
            vfs().close(fd).unwrap();
        }
    });
}

#[test]
fn a_signal_ends_a_blocking_read() {
    run_on_the_image_layer(|sys| {
        on_signal(sys, SIGALRM, note as *const () as usize, 0);
        let t = vfs().timerfd_create(CLOCK_MONOTONIC, 0).unwrap();
        arm(t, 0, 50 * MS);
        let start = sys.monotonic_ns();
        sys.setitimer(
            ITIMER_REAL,
            Itimerval {
                interval: Timeval::default(),
                value: Timeval {
                    tv_sec: 0,
                    tv_usec: 10_000,
                },
            },
        )
        .unwrap();
        assert_eq!(count(t), Err(Errno::EINTR));
        assert_eq!(CAUGHT.load(Ordering::SeqCst), SIGALRM);
        assert_eq!(sys.monotonic_ns(), start + 10 * MS);
        // The timer is still armed and its expiry still comes.
        assert_eq!(count(t), Ok(1));
        assert_eq!(sys.monotonic_ns(), start + 50 * MS);
        vfs().close(t).unwrap();
    });
}
