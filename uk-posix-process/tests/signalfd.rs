//! uk-vfs's signalfds under the image's global layer and global VFS, with real scheduler
//! threads: blocked signals pending for the reader come out of the descriptor with their
//! information (a `sigqueue`'s value, a child's exit status, a timer's id), a blocking read
//! wakes when another thread sends one, `poll` and `epoll_wait` see them, a new mask is
//! taken by `signalfd4` on the same descriptor, and bad input is refused.

mod common;

use common::{child_process, run_on_the_image_layer, spawn};
use uk_posix_process::Errno;
use uk_posix_process::signal::{
    SI_QUEUE, SI_USER, SIG_BLOCK, SIGCHLD, SIGUSR1, SIGUSR2, SigInfo, sig_bit,
};
use uk_posix_process::wait::CLD_EXITED;
use uk_vfs::epoll::{EPOLL_CTL_ADD, EPOLLIN};
use uk_vfs::poll::POLLIN;
use uk_vfs::signalfd::{SFD_NONBLOCK, SIGINFO_SIZE};
use uk_vfs::{EpollEvent, PollFd};

fn vfs() -> &'static uk_vfs::Vfs {
    uk_vfs::global::vfs()
}

/// One `signalfd_siginfo` read from `fd`: (signo, code, pid, status, int, ptr, tid).
fn read_one(fd: i32) -> Result<[i64; 7], Errno> {
    let mut buf = [0u8; SIGINFO_SIZE];
    assert_eq!(vfs().read(fd, &mut buf)?, SIGINFO_SIZE);
    let u32_at = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap());
    Ok([
        i64::from(u32_at(0)),
        i64::from(u32_at(8) as i32),
        i64::from(u32_at(12)),
        i64::from(u32_at(40) as i32),
        i64::from(u32_at(44) as i32),
        u64_at(48) as i64,
        i64::from(u32_at(24)),
    ])
}

#[test]
fn blocked_signals_come_out_of_the_descriptor_with_their_information() {
    run_on_the_image_layer(|sys| {
        let me = sys.getpid().unwrap();
        let mask = sig_bit(SIGUSR1) | sig_bit(SIGUSR2) | sig_bit(SIGCHLD);
        sys.rt_sigprocmask(SIG_BLOCK, Some(mask)).unwrap();
        let fd = vfs().signalfd4(-1, mask, SFD_NONBLOCK).unwrap();
        let mut buf = [0u8; SIGINFO_SIZE];
        assert_eq!(vfs().read(fd, &mut buf), Err(Errno::EAGAIN), "nothing yet");
        // A kill and a sigqueue with a value.
        sys.kill(me, SIGUSR2).unwrap();
        let mut queued = SigInfo::new(SIGUSR1, SI_QUEUE, me);
        queued.value = 77;
        sys.rt_sigqueueinfo(me, SIGUSR1, queued).unwrap();
        let mut fds = [PollFd {
            fd,
            events: POLLIN as i16,
            revents: 0,
        }];
        assert_eq!(sys.poll(&mut fds, Some(0), None), Ok(1));
        // Lowest number first; none ran a handler (they are blocked and taken).
        let first = read_one(fd).unwrap();
        assert_eq!(first[..2], [i64::from(SIGUSR1), i64::from(SI_QUEUE)]);
        assert_eq!((first[4], first[5]), (77, 77), "ssi_int, ssi_ptr");
        let second = read_one(fd).unwrap();
        assert_eq!(
            second[..3],
            [i64::from(SIGUSR2), i64::from(SI_USER), i64::from(me)]
        );
        assert_eq!(sys.sigpending().unwrap() & mask, 0, "consumed");
        assert_eq!(sys.poll(&mut fds, Some(0), None), Ok(0));
        // A child's exit: SIGCHLD with its pid and status.
        let child = child_process(sys, SIGCHLD as u64, || 9);
        while sys.process_count() > 1 {
            uk_sched::yield_now();
        }
        let exit = read_one(fd).unwrap();
        assert_eq!(
            exit[..4],
            [
                i64::from(SIGCHLD),
                i64::from(CLD_EXITED),
                i64::from(child),
                9
            ]
        );
        sys.wait4(child, 0).unwrap();
        vfs().close(fd).unwrap();
    });
}

#[test]
fn a_blocking_read_and_epoll_wait_wake_when_another_thread_sends() {
    run_on_the_image_layer(|sys| {
        let me = sys.getpid().unwrap();
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        let fd = vfs().signalfd4(-1, sig_bit(SIGUSR1), 0).unwrap();
        spawn(sys, move || {
            sys.kill(me, SIGUSR1).unwrap();
            0
        });
        // The sender runs only once this thread blocks in the read.
        assert_eq!(read_one(fd).unwrap()[0], i64::from(SIGUSR1));
        let ep = vfs().epoll_create1(0).unwrap();
        let event = EpollEvent {
            events: EPOLLIN,
            data: 5,
        };
        vfs().epoll_ctl(ep, EPOLL_CTL_ADD, fd, event).unwrap();
        spawn(sys, move || {
            sys.kill(me, SIGUSR1).unwrap();
            0
        });
        let events = sys.epoll_wait(ep, 2, None, None).unwrap();
        assert_eq!(events, [event]);
        assert_eq!(read_one(fd).unwrap()[0], i64::from(SIGUSR1));
        vfs().close(ep).unwrap();
        vfs().close(fd).unwrap();
    });
}

#[test]
fn a_new_mask_is_taken_and_bad_input_refused() {
    run_on_the_image_layer(|sys| {
        let me = sys.getpid().unwrap();
        let both = sig_bit(SIGUSR1) | sig_bit(SIGUSR2);
        sys.rt_sigprocmask(SIG_BLOCK, Some(both)).unwrap();
        let fd = vfs().signalfd4(-1, sig_bit(SIGUSR1), SFD_NONBLOCK).unwrap();
        sys.kill(me, SIGUSR2).unwrap();
        assert_eq!(read_one(fd), Err(Errno::EAGAIN), "not in the mask");
        assert_eq!(vfs().signalfd4(fd, sig_bit(SIGUSR2), 0), Ok(fd));
        assert_eq!(read_one(fd).unwrap()[0], i64::from(SIGUSR2));
        assert_eq!(vfs().signalfd4(-1, both, 0x4), Err(Errno::EINVAL), "flag");
        let pipe = vfs().pipe2(0).unwrap();
        assert_eq!(vfs().signalfd4(pipe[0], both, 0), Err(Errno::EINVAL));
        assert_eq!(vfs().signalfd4(999, both, 0), Err(Errno::EBADF));
        let mut short = [0u8; SIGINFO_SIZE - 1];
        assert_eq!(vfs().read(fd, &mut short), Err(Errno::EINVAL));
        assert_eq!(vfs().write(fd, &[0; 8]), Err(Errno::EINVAL));
        for f in [fd, pipe[0], pipe[1]] {
            vfs().close(f).unwrap();
        }
    });
}
