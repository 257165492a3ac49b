//! timerfd through the typed `Vfs` API and the raw adapters: the descriptor's flags and
//! anonymous-inode behaviour, Linux's refusals in Linux's order (each changing nothing),
//! `poll` and epoll readiness (level and edge), a blocking read that waits for the expiry
//! and one a signal interrupts, and `struct itimerspec` through caller memory. The timer
//! logic itself (counting, overruns, absolute times, cancellation) is tested on fake
//! clocks in `timerfd.rs`; here the clocks are the host's, so every wait is short and
//! every "not yet" is an hour away.

use alloc::vec::Vec;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{fresh, interrupt_next_wait, thread_wait};
use crate::epoll::*;
use crate::poll::*;
use crate::timerfd::*;
use crate::*;

/// The host's clocks.
struct HostClocks;

impl TimeSource for HostClocks {
    fn monotonic_ns(&self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
    fn realtime_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }
}

fn clocks() {
    set_time_source(&HostClocks);
}

const MS: u64 = 1_000_000;
const HOUR: u64 = 3_600_000 * MS;

fn spec(interval_ns: u64, value_ns: u64) -> ItimerSpec {
    ItimerSpec::from_ns(interval_ns, value_ns)
}

fn read_count(vfs: &Vfs, fd: Fd) -> Result<u64, Errno> {
    let mut buf = [0u8; 8];
    vfs.read(fd, &mut buf).map(|n| {
        assert_eq!(n, 8);
        u64::from_ne_bytes(buf)
    })
}

fn revents(vfs: &Vfs, fd: Fd) -> u16 {
    let mut fds = [PollFd {
        fd,
        events: (POLLIN | POLLOUT) as i16,
        revents: 0,
    }];
    vfs.poll(&mut fds);
    fds[0].revents as u16
}

#[test]
fn create_refuses_bad_clocks_and_flags() {
    clocks();
    let vfs = fresh();
    for clock in [2, 3, 4, 5, 6, 10, 11, -1] {
        assert_eq!(vfs.timerfd_create(clock, 0), Err(Errno::EINVAL), "{clock}");
    }
    for flags in [1, 2, O_RDWR, O_CLOEXEC | 1, u32::MAX] {
        assert_eq!(
            vfs.timerfd_create(CLOCK_MONOTONIC, flags),
            Err(Errno::EINVAL)
        );
    }
    let fd = vfs
        .timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC)
        .unwrap();
    assert_eq!(vfs.fcntl(fd, F_GETFD, 0), Ok(1));
    assert_eq!(
        vfs.fcntl(fd, F_GETFL, 0),
        Ok((O_RDWR | O_NONBLOCK) as usize)
    );
    let plain = vfs.timerfd_create(CLOCK_REALTIME, 0).unwrap();
    assert_eq!(vfs.fcntl(plain, F_GETFD, 0), Ok(0));
    assert_eq!(vfs.fcntl(plain, F_GETFL, 0), Ok(O_RDWR as usize));
    for alarm in [CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM] {
        let a = vfs.timerfd_create(alarm, 0).unwrap();
        vfs.close(a).unwrap();
    }
    // An anonymous-inode file, like an eventfd; never written.
    let e = vfs.eventfd2(0, 0).unwrap();
    let (st, se) = (vfs.fstat(fd).unwrap(), vfs.fstat(e).unwrap());
    assert_eq!((st.mode, st.ino, st.dev), (0o600, se.ino, se.dev));
    assert_eq!(vfs.lseek(fd, 10, SEEK_SET), Ok(0));
    assert_eq!(vfs.pread(fd, &mut [0; 8], 0), Err(Errno::ESPIPE));
    assert_eq!(vfs.write(fd, &1u64.to_ne_bytes()), Err(Errno::EINVAL));
    assert_eq!(vfs.ioctl(fd, devfs::TCGETS, &mut []), Err(Errno::ENOTTY));
    assert_eq!(vfs.fstatfs(fd).map(|s| s.fs_type), Ok(ANON_INODE_FS_MAGIC));
    for f in [fd, plain, e] {
        vfs.close(f).unwrap();
    }
}

#[test]
fn settime_and_gettime_refuse_in_linuxs_order_and_change_nothing() {
    clocks();
    let vfs = fresh();
    let fd = vfs.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK).unwrap();
    let e = vfs.eventfd2(0, 0).unwrap();
    vfs.timerfd_settime(fd, 0, spec(HOUR, HOUR)).unwrap();
    let bad_time = ItimerSpec {
        value_nsec: 1_000_000_000,
        ..spec(0, 1)
    };
    // Flags and timespecs first, then the descriptor, then its kind.
    assert_eq!(vfs.timerfd_settime(99, 4, spec(0, 1)), Err(Errno::EINVAL));
    assert_eq!(vfs.timerfd_settime(99, 0, bad_time), Err(Errno::EINVAL));
    assert_eq!(vfs.timerfd_settime(99, 0, spec(0, 1)), Err(Errno::EBADF));
    assert_eq!(vfs.timerfd_settime(e, 0, spec(0, 1)), Err(Errno::EINVAL));
    assert_eq!(vfs.timerfd_settime(fd, 0, bad_time), Err(Errno::EINVAL));
    assert_eq!(
        vfs.timerfd_settime(fd, TFD_NONBLOCK, spec(0, 1)),
        Err(Errno::EINVAL)
    );
    assert_eq!(vfs.timerfd_gettime(99), Err(Errno::EBADF));
    assert_eq!(vfs.timerfd_gettime(e), Err(Errno::EINVAL));
    assert_eq!(vfs.timerfd_gettime(-1), Err(Errno::EBADF));
    let now = vfs.timerfd_gettime(fd).unwrap();
    assert_eq!(now.interval_ns(), Ok(HOUR));
    assert!(now.value_ns().unwrap() > HOUR - 60_000 * MS, "{now:?}");
    assert_eq!(read_count(&vfs, fd), Err(Errno::EAGAIN));
    // A short buffer is EINVAL, even on an expired timer, whose count stays.
    vfs.timerfd_settime(fd, 0, spec(0, 1)).unwrap();
    std::thread::sleep(Duration::from_millis(1));
    assert_eq!(vfs.read(fd, &mut [0; 7]), Err(Errno::EINVAL));
    assert_eq!(read_count(&vfs, fd), Ok(1));
    vfs.close(fd).unwrap();
    vfs.close(e).unwrap();
}

#[test]
fn poll_and_epoll_see_the_expiry() {
    clocks();
    let vfs = fresh();
    let fd = vfs.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK).unwrap();
    let periodic = vfs.timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK).unwrap();
    let ep = vfs.epoll_create1(0).unwrap();
    let add = |f: Fd, events: u32, data: u64| {
        vfs.epoll_ctl(ep, EPOLL_CTL_ADD, f, EpollEvent { events, data })
    };
    add(fd, EPOLLIN, 1).unwrap();
    add(periodic, EPOLLIN | EPOLLET, 2).unwrap();
    let collect = || {
        let mut got: Vec<(u32, u64)> = vfs
            .epoll_instance(ep)
            .unwrap()
            .collect(8)
            .into_iter()
            .map(|e| (e.events, e.data))
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        revents(&vfs, fd),
        0,
        "disarmed: never ready, never writable"
    );
    assert_eq!(collect(), []);
    vfs.timerfd_settime(fd, 0, spec(0, 2 * MS)).unwrap();
    // Absolute on the wall clock, every 100 ms (far apart, so that a slow host does not
    // see a second expiry where the test expects none).
    let wall = HostClocks.realtime_ns();
    vfs.timerfd_settime(periodic, TFD_TIMER_ABSTIME, spec(100 * MS, wall + 2 * MS))
        .unwrap();
    assert_eq!(revents(&vfs, fd), 0);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(revents(&vfs, fd), POLLIN);
    assert_eq!(revents(&vfs, periodic), POLLIN);
    assert_eq!(collect(), [(EPOLLIN, 1), (EPOLLIN, 2)]);
    // Level-triggered stays; the edge was reported once.
    assert_eq!(collect(), [(EPOLLIN, 1)]);
    assert_eq!(read_count(&vfs, fd), Ok(1));
    assert!(read_count(&vfs, periodic).unwrap() >= 1);
    assert_eq!(collect(), []);
    assert_eq!(revents(&vfs, fd), 0);
    // The next expiry of the periodic timer is a new edge.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(collect(), [(EPOLLIN, 2)]);
    // Disarmed, it reports nothing once read.
    vfs.timerfd_settime(periodic, 0, spec(0, 0)).unwrap();
    assert_eq!(read_count(&vfs, periodic), Err(Errno::EAGAIN));
    assert_eq!(collect(), []);
    for f in [fd, periodic, ep] {
        vfs.close(f).unwrap();
    }
}

#[test]
fn a_blocking_read_waits_and_a_signal_ends_it() {
    clocks();
    wait::set_wait_factory(thread_wait);
    let vfs = fresh();
    let fd = vfs.timerfd_create(CLOCK_MONOTONIC, 0).unwrap();
    vfs.timerfd_settime(fd, 0, spec(0, 20 * MS)).unwrap();
    let start = Instant::now();
    assert_eq!(read_count(&vfs, fd), Ok(1));
    assert!(start.elapsed() >= Duration::from_millis(20));
    // A handler without SA_RESTART ends the wait; nothing was taken.
    vfs.timerfd_settime(fd, 0, spec(0, HOUR)).unwrap();
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(read_count(&vfs, fd), Err(Errno::EINTR));
    // With SA_RESTART the read starts over and returns the expiry.
    vfs.timerfd_settime(fd, 0, spec(0, 10 * MS)).unwrap();
    interrupt_next_wait(Errno::ERESTARTSYS);
    assert_eq!(read_count(&vfs, fd), Ok(1));
    vfs.close(fd).unwrap();
}

#[test]
fn syscalls_through_dispatch() {
    use uk_syscall::{Sysno, dispatch};
    clocks();
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let err = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    assert_eq!(
        call(
            Sysno::timerfd_create,
            [CLOCK_MONOTONIC as usize, 1, 0, 0, 0, 0]
        ),
        err(Errno::EINVAL)
    );
    assert_eq!(
        call(Sysno::timerfd_create, [4, 0, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    let fd = call(
        Sysno::timerfd_create,
        [CLOCK_MONOTONIC as usize, TFD_NONBLOCK as usize, 0, 0, 0, 0],
    );
    assert!(fd >= 3, "{fd}");
    let fd = fd as Fd;
    let e = vfs.eventfd2(0, 0).unwrap();
    let new = spec(2 * HOUR, HOUR).to_bytes();
    let mut old = [0xaau8; ITIMERSPEC_SIZE];
    let set = |f: Fd, flags: usize, new: usize, old: usize| {
        call(Sysno::timerfd_settime, [f as usize, flags, new, old, 0, 0])
    };
    let (new_at, old_at) = (new.as_ptr() as usize, old.as_mut_ptr() as usize);
    // new_value is read first: EFAULT before every other refusal.
    assert_eq!(set(999, 99, 0, 0), err(Errno::EFAULT));
    assert_eq!(set(999, 99, new_at, 0), err(Errno::EINVAL));
    assert_eq!(set(999, 0, new_at, 0), err(Errno::EBADF));
    assert_eq!(set(e, 0, new_at, 0), err(Errno::EINVAL));
    // A bad old_value pointer: EFAULT, and the timer is left disarmed.
    assert_eq!(set(fd, 0, new_at, 8), err(Errno::EFAULT));
    assert_eq!(vfs.timerfd_gettime(fd), Ok(ItimerSpec::default()));
    // NULL old_value is fine; then the previous setting is written out.
    assert_eq!(set(fd, 0, new_at, 0), 0);
    assert_eq!(set(fd, 0, new_at, old_at), 0);
    let old = ItimerSpec::from_bytes(&old).unwrap();
    assert_eq!(old.interval_ns(), Ok(2 * HOUR));
    assert!(old.value_ns().unwrap() <= HOUR && old.value_ns().unwrap() > HOUR / 2);
    let mut cur = [0u8; ITIMERSPEC_SIZE];
    let get = |f: Fd, at: usize| call(Sysno::timerfd_gettime, [f as usize, at, 0, 0, 0, 0]);
    assert_eq!(get(999, cur.as_mut_ptr() as usize), err(Errno::EBADF));
    assert_eq!(get(e, cur.as_mut_ptr() as usize), err(Errno::EINVAL));
    assert_eq!(get(fd, 0), err(Errno::EFAULT));
    assert_eq!(get(fd, cur.as_mut_ptr() as usize), 0);
    let cur = ItimerSpec::from_bytes(&cur).unwrap();
    assert_eq!(cur.interval_ns(), Ok(2 * HOUR));
    assert!(cur.value_ns().unwrap() > HOUR / 2);
    // An expiry read through read(2).
    let soon = spec(0, 1).to_bytes();
    assert_eq!(set(fd, 0, soon.as_ptr() as usize, 0), 0);
    std::thread::sleep(Duration::from_millis(1));
    let mut count = [0u8; 8];
    assert_eq!(
        call(
            Sysno::read,
            [fd as usize, count.as_mut_ptr() as usize, 8, 0, 0, 0]
        ),
        8
    );
    assert_eq!(u64::from_ne_bytes(count), 1);
    for f in [fd, e] {
        vfs.close(f).unwrap();
    }
}

/// Random arguments to the three raw adapters: never a panic, every error an errno (never
/// `ENOSYS`), and a refused `timerfd_settime` leaves the timer as it was (a valid setting
/// that slipped through would show: it arms two hours, the timer has at most one).
mod raw_fuzz {
    use super::*;
    use proptest::prelude::*;
    use uk_syscall::{Sysno, dispatch};

    const CLOCKS: &[usize] = &[0, 1, 2, 4, 7, 8, 9, 11, usize::MAX, 1 << 32];
    const FLAGS: &[usize] = &[
        0,
        1,
        2,
        3,
        4,
        O_NONBLOCK as usize,
        O_CLOEXEC as usize,
        (O_NONBLOCK | O_CLOEXEC) as usize,
        u32::MAX as usize,
        1 << 32,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn refusals_change_nothing(
            calls in proptest::collection::vec((0u8..3, 0usize..16, 0usize..10, 0usize..4, 0usize..3), 1..16)
        ) {
            clocks();
            let vfs = global::vfs();
            let t = vfs.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK).unwrap();
            let e = vfs.eventfd2(0, 0).unwrap();
            let baseline = spec(HOUR, HOUR);
            vfs.timerfd_settime(t, 0, baseline).unwrap();
            let fds = [t, e, -1, 9999, t, t];
            let good = spec(7 * MS, 2 * HOUR).to_bytes();
            let bad_nsec = ItimerSpec { value_nsec: 1_000_000_000, ..spec(7 * MS, 2 * HOUR) }.to_bytes();
            let bad_sec = ItimerSpec { interval_sec: -1, ..spec(7 * MS, 2 * HOUR) }.to_bytes();
            let mut out = [0u8; ITIMERSPEC_SIZE];
            let out_at = out.as_mut_ptr() as usize;
            let specs = [good.as_ptr() as usize, bad_nsec.as_ptr() as usize, bad_sec.as_ptr() as usize, 0];
            let outs = [0, out_at, 8];
            for (kind, a, b, c, d) in calls {
                let fd = fds[a % fds.len()] as usize;
                let before = vfs.timerfd_gettime(t).unwrap();
                let r = match kind {
                    0 => dispatch(Sysno::timerfd_create as usize, &[CLOCKS[b], FLAGS[(a + c) % FLAGS.len()], 0, 0, 0, 0]),
                    1 => dispatch(Sysno::timerfd_settime as usize, &[fd, FLAGS[b], specs[c], outs[d], 0, 0]),
                    _ => dispatch(Sysno::timerfd_gettime as usize, &[fd, outs[d], 0, 0, 0, 0]),
                };
                prop_assert!(r != -(Errno::ENOSYS.into_raw() as isize));
                if kind == 0 && r >= 0 {
                    vfs.close(r as Fd).unwrap();
                    continue;
                }
                if kind == 1 && r == 0 && fd == t as usize {
                    // Applied: back to the baseline for the next call.
                    vfs.timerfd_settime(t, 0, baseline).unwrap();
                    continue;
                }
                if r < 0 {
                    prop_assert!(r >= -4095, "{r}");
                }
                let after = vfs.timerfd_gettime(t).unwrap();
                prop_assert_eq!(after.interval_ns(), before.interval_ns());
                let (was, now) = (before.value_ns().unwrap(), after.value_ns().unwrap());
                prop_assert!(now <= was && was - now < 1_000 * MS, "{before:?} -> {after:?}");
            }
            vfs.close(t).unwrap();
            vfs.close(e).unwrap();
        }
    }
}
