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
