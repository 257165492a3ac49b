//! Process descriptors on the image's global layer and VFS: `pidfd_open` of a child, its
//! descriptor turning readable for `poll` and `epoll_wait` when the child ends (and not
//! before), `waitid(P_PIDFD)` blocking or not, `pidfd_send_signal` with and without
//! information, and Linux's refusals.

mod common;

use common::{child_process, run_on_the_image_layer};
use uk_posix_process::Errno;
use uk_posix_process::signal::{SI_QUEUE, SIG_BLOCK, SIGCHLD, SIGUSR1, SigInfo, sig_bit};
use uk_posix_process::wait::{ExitKind, P_PIDFD, WEXITED};
use uk_vfs::PollFd;
use uk_vfs::epoll::{EPOLL_CTL_ADD, EPOLLIN};
use uk_vfs::pidfd::PIDFD_NONBLOCK;
use uk_vfs::poll::POLLIN;

fn vfs() -> &'static uk_vfs::Vfs {
    uk_vfs::global::vfs()
}

#[test]
fn a_pidfd_turns_readable_when_its_process_ends_and_waitid_reaps_through_it() {
    run_on_the_image_layer(|sys| {
        let pid = child_process(sys, SIGCHLD as u64, || {
            for _ in 0..3 {
                uk_sched::yield_now();
            }
            4
        });
        let fd = sys.pidfd_open(pid, 0).unwrap();
        let nonblocking = sys.pidfd_open(pid, PIDFD_NONBLOCK).unwrap();
        let mut fds = [PollFd {
            fd,
            events: POLLIN as i16,
            revents: 0,
        }];
        assert_eq!(sys.poll(&mut fds, Some(0), None), Ok(0), "still running");
        assert_eq!(
            sys.waitid(P_PIDFD, nonblocking, WEXITED),
            Err(Errno::EAGAIN),
            "a non-blocking pidfd: not yet"
        );
        // poll without a deadline ends when the child does.
        assert_eq!(sys.poll(&mut fds, None, None), Ok(1));
        assert_eq!(fds[0].revents as u16, POLLIN);
        assert!(sys.is_zombie(pid));
        let ep = vfs().epoll_create1(0).unwrap();
        let event = uk_vfs::EpollEvent {
            events: EPOLLIN,
            data: 3,
        };
        vfs().epoll_ctl(ep, EPOLL_CTL_ADD, fd, event).unwrap();
        assert_eq!(sys.epoll_wait(ep, 1, None, None), Ok(vec![event]));
        assert_eq!(
            sys.pidfd_send_signal(fd, 0, None),
            Err(Errno::ESRCH),
            "ended"
        );
        let reaped = sys.waitid(P_PIDFD, fd, WEXITED).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (pid, ExitKind::Exited(4)));
        for f in [fd, nonblocking, ep] {
            vfs().close(f).unwrap();
        }
    });
}

#[test]
fn signals_go_through_a_pidfd() {
    run_on_the_image_layer(|sys| {
        let me = sys.getpid().unwrap();
        let fd = sys.pidfd_open(me, 0).unwrap();
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        assert_eq!(sys.pidfd_send_signal(fd, 0, None), Ok(()), "alive");
        let mut info = SigInfo::new(SIGUSR1, SI_QUEUE, me);
        info.value = 9;
        sys.pidfd_send_signal(fd, SIGUSR1, Some(info)).unwrap();
        let taken = sys.rt_sigtimedwait(sig_bit(SIGUSR1), None).unwrap();
        assert_eq!((taken.code, taken.value), (SI_QUEUE, 9));
        sys.pidfd_send_signal(fd, SIGUSR1, None).unwrap();
        assert_eq!(sys.rt_sigtimedwait(sig_bit(SIGUSR1), None).unwrap().pid, me);
        // Refusals.
        let other = SigInfo::new(SIGCHLD, SI_QUEUE, me);
        assert_eq!(
            sys.pidfd_send_signal(fd, SIGUSR1, Some(other)),
            Err(Errno::EINVAL)
        );
        assert_eq!(sys.pidfd_send_signal(fd, 65, None), Err(Errno::EINVAL));
        let pipe = vfs().pipe2(0).unwrap();
        assert_eq!(
            sys.pidfd_send_signal(pipe[0], SIGUSR1, None),
            Err(Errno::EBADF)
        );
        assert_eq!(sys.waitid(P_PIDFD, pipe[0], WEXITED), Err(Errno::EBADF));
        assert_eq!(
            sys.waitid(P_PIDFD, fd, WEXITED),
            Err(Errno::ECHILD),
            "not a child"
        );
        assert_eq!(sys.pidfd_open(me, 1), Err(Errno::EINVAL));
        assert_eq!(sys.pidfd_open(0, 0), Err(Errno::EINVAL));
        assert_eq!(sys.pidfd_open(30_000, 0), Err(Errno::ESRCH));
        let mut buf = [0u8; 8];
        assert_eq!(vfs().read(fd, &mut buf), Err(Errno::EINVAL));
        for f in [fd, pipe[0], pipe[1]] {
            vfs().close(f).unwrap();
        }
    });
}

/// `clone3` with `CLONE_PIDFD` stores a close-on-exec pidfd of the child at `pidfd`; legacy
/// `clone` at `parent_tid`. A bad address or no free descriptor fails the call and leaves
/// no child, no id and no descriptor behind.
#[test]
fn clone_pidfd_hands_the_parent_a_pidfd_or_changes_nothing() {
    use uk_posix_process::ChildStart;
    use uk_posix_process::flags::{CLONE_FILES, CLONE_FS, CLONE_PIDFD, CLONE_VM, CloneArgs, Via};
    use uk_posix_process::rlimit::{RLIMIT_NOFILE, Rlimit};

    run_on_the_image_layer(|sys| {
        let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_PIDFD;
        let start = || {
            let (entry, arg) = common::boxed(|| 7);
            ChildStart::Call { entry, arg }
        };
        // clone3: the `pidfd` field.
        let slot = common::word(0xAAAA);
        let a = CloneArgs {
            flags,
            pidfd: common::addr(slot),
            exit_signal: SIGCHLD as u64,
            ..CloneArgs::default()
        };
        let pid = sys.clone(&a, Via::Clone3, start()).unwrap();
        let fd = slot.load(std::sync::atomic::Ordering::SeqCst) as i32;
        assert_eq!(vfs().pidfd_target(fd), Ok((pid, false)));
        assert_eq!(vfs().fcntl(fd, uk_vfs::F_GETFD, 0), Ok(1), "close-on-exec");
        let reaped = sys.waitid(P_PIDFD, fd, WEXITED).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (pid, ExitKind::Exited(7)));
        vfs().close(fd).unwrap();
        // Legacy clone: the `parent_tid` argument.
        let legacy = CloneArgs::from_legacy(flags | SIGCHLD as u64, 0, common::addr(slot), 0, 0);
        let pid = sys.clone(&legacy, Via::Clone, start()).unwrap();
        let fd = slot.load(std::sync::atomic::Ordering::SeqCst) as i32;
        assert_eq!(vfs().pidfd_target(fd).map(|(p, _)| p), Ok(pid));
        sys.waitid(P_PIDFD, fd, WEXITED).unwrap();
        vfs().close(fd).unwrap();

        let open_fds = || {
            (0..64)
                .filter(|&f| vfs().fcntl(f, uk_vfs::F_GETFD, 0).is_ok())
                .count()
        };
        let (threads, ids, fds) = (sys.thread_count(), sys.ids_in_use(), open_fds());
        // A pidfd address outside the caller's memory.
        let bad = CloneArgs { pidfd: 8, ..a };
        assert_eq!(sys.clone(&bad, Via::Clone3, start()), Err(Errno::EFAULT));
        // No descriptor left: the limit just above a pipe, every number below it taken.
        let was = sys.getrlimit(RLIMIT_NOFILE).unwrap();
        let mut taken = vfs().pipe2(0).unwrap().to_vec();
        let limit = taken.iter().max().map_or(0, |&f| f as u64 + 1);
        sys.setrlimit(
            RLIMIT_NOFILE,
            Rlimit {
                rlim_cur: limit,
                ..was
            },
        )
        .unwrap();
        while let Ok(f) = vfs().dup(taken[0]) {
            taken.push(f);
        }
        slot.store(0xAAAA, std::sync::atomic::Ordering::SeqCst);
        let refused = sys.clone(&a, Via::Clone3, start());
        sys.setrlimit(RLIMIT_NOFILE, was).unwrap();
        for f in taken {
            vfs().close(f).unwrap();
        }
        assert_eq!(refused, Err(Errno::EMFILE));
        assert_eq!(slot.load(std::sync::atomic::Ordering::SeqCst), 0xAAAA);
        assert_eq!(
            (sys.thread_count(), sys.ids_in_use(), open_fds()),
            (threads, ids, fds),
            "no child, no id, no descriptor left behind"
        );
    });
}

/// `pidfd_getfd` copies a descriptor of the named process, close-on-exec, onto the same
/// open file; with Linux's errors, and `EBADF` then `ESRCH` once the process has ended.
#[test]
fn pidfd_getfd_copies_a_descriptor_of_the_process() {
    run_on_the_image_layer(|sys| {
        let pipe = vfs().pipe2(0).unwrap();
        let gate = vfs().pipe2(0).unwrap();
        let pid = child_process(sys, SIGCHLD as u64, move || {
            // Waits for the parent's byte, then ends.
            let mut b = [0u8; 1];
            vfs().read(gate[0], &mut b).unwrap();
            0
        });
        let pidfd = sys.pidfd_open(pid, 0).unwrap();
        let copy = sys.pidfd_getfd(pidfd, pipe[1], 0).unwrap();
        assert!(![pipe[0], pipe[1], pidfd].contains(&copy));
        assert_eq!(
            vfs().fcntl(copy, uk_vfs::F_GETFD, 0),
            Ok(1),
            "close-on-exec"
        );
        assert_eq!(vfs().write(copy, b"x"), Ok(1));
        let mut got = [0u8; 1];
        assert_eq!(vfs().read(pipe[0], &mut got), Ok(1), "the same pipe");
        vfs().close(copy).unwrap();
        // Refusals, in Linux's order.
        assert_eq!(sys.pidfd_getfd(pidfd, pipe[1], 1), Err(Errno::EINVAL));
        assert_eq!(
            sys.pidfd_getfd(pipe[0], pipe[1], 0),
            Err(Errno::EBADF),
            "no pidfd"
        );
        assert_eq!(
            sys.pidfd_getfd(pidfd, 999, 0),
            Err(Errno::EBADF),
            "not open"
        );
        // Ended, not yet reaped: its descriptors are gone.
        assert_eq!(vfs().write(gate[1], b"!"), Ok(1));
        while !sys.is_zombie(pid) {
            uk_sched::yield_now();
        }
        assert_eq!(sys.pidfd_getfd(pidfd, pipe[1], 0), Err(Errno::EBADF));
        sys.waitid(P_PIDFD, pidfd, WEXITED).unwrap();
        assert_eq!(sys.pidfd_getfd(pidfd, pipe[1], 0), Err(Errno::ESRCH));
        for f in [pipe[0], pipe[1], gate[0], gate[1], pidfd] {
            vfs().close(f).unwrap();
        }
    });
}
