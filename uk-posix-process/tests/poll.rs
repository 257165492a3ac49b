//! poll, ppoll, select and pselect6 on the image's global layer and global VFS (this
//! file's process has them to itself; its tests take turns): readiness now, a wait that a
//! pipe write from another thread ends, timeouts, signals ending the wait (or not, under
//! ppoll's mask), select's sets, and the raw calls' checks.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use common::{on_signal, spawn, world_on};
use uk_posix_process::signal::{SIG_SETMASK, SIGUSR1, SigAction, sig_bit};
use uk_posix_process::{Errno, FdSets, system};
use uk_syscall::{Sysno, dispatch};
use uk_vfs::PollFd;
use uk_vfs::poll::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

static SERIAL: Mutex<()> = Mutex::new(());
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: i32) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

fn entry(fd: i32, events: u16) -> PollFd {
    PollFd {
        fd,
        events: events as i16,
        revents: 0,
    }
}

fn vfs() -> &'static uk_vfs::Vfs {
    uk_vfs::global::vfs()
}

#[test]
fn poll_looks_waits_for_a_writer_and_times_out() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let clock = w.clock.clone();
    let status = w.run(move || {
        let [r, wr] = vfs().pipe2(0).unwrap();
        // Nothing to read, a deadline already passed: one look.
        let now = sys.monotonic_ns();
        let mut fds = [entry(r, POLLIN), entry(wr, POLLOUT)];
        assert_eq!(sys.poll(&mut fds[..1], Some(now), None), Ok(0));
        assert_eq!(sys.poll(&mut fds, Some(now), None), Ok(1));
        assert_eq!(fds[1].revents as u16, POLLOUT);
        // No deadline: the wait ends when another thread writes (a missed wake would
        // leave every thread blocked, which the test's idle hook reports as a deadlock).
        spawn(sys, move || {
            uk_sched::yield_now();
            vfs().write(wr, b"hi").unwrap();
            0
        });
        let start = sys.monotonic_ns();
        let mut fds = [entry(r, POLLIN)];
        assert_eq!(sys.poll(&mut fds, None, None), Ok(1));
        assert_eq!(fds[0].revents as u16, POLLIN);
        assert_eq!(sys.monotonic_ns(), start, "woken, not timed out");
        let mut buf = [0u8; 4];
        assert_eq!(vfs().read(r, &mut buf), Ok(2));
        // A timeout: the clock reaches the deadline and nothing is ready.
        let deadline = sys.monotonic_ns() + 5_000_000;
        assert_eq!(sys.poll(&mut fds, Some(deadline), None), Ok(0));
        assert!(clock.0.load(Ordering::SeqCst) >= deadline);
        // The writer is gone: the read end hangs up, reported unasked.
        vfs().close(wr).unwrap();
        assert_eq!(sys.poll(&mut fds, None, None), Ok(1));
        assert_eq!(fds[0].revents as u16, POLLHUP);
        vfs().close(r).unwrap();
        let mut fds = [entry(r, POLLIN), entry(-1, POLLIN)];
        assert_eq!(sys.poll(&mut fds, None, None), Ok(1));
        assert_eq!((fds[0].revents as u16, fds[1].revents), (POLLNVAL, 0));
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_signal_ends_a_poll_unless_ppolls_mask_blocks_it() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        on_signal(sys, SIGUSR1, note as *const () as usize, 0);
        let [r, wr] = vfs().pipe2(0).unwrap();
        let me = sys.gettid().unwrap();
        CAUGHT.store(0, Ordering::SeqCst);
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR1).unwrap();
            0
        });
        let mut fds = [entry(r, POLLIN)];
        assert_eq!(sys.poll(&mut fds, None, None), Err(Errno::EINTR));
        assert_eq!(CAUGHT.load(Ordering::SeqCst), SIGUSR1);
        // Under ppoll's mask the signal waits; a write ends the wait; the mask comes back
        // and lets the signal run.
        CAUGHT.store(0, Ordering::SeqCst);
        spawn(sys, move || {
            sys.tgkill(None, me, SIGUSR1).unwrap();
            uk_sched::yield_now();
            vfs().write(wr, b"x").unwrap();
            0
        });
        assert_eq!(sys.poll(&mut fds, None, Some(sig_bit(SIGUSR1))), Ok(1));
        assert_eq!(CAUGHT.load(Ordering::SeqCst), 0, "blocked during the wait");
        assert_eq!(sys.rt_sigprocmask(SIG_SETMASK, Some(0)), Ok(0));
        assert_eq!(CAUGHT.load(Ordering::SeqCst), SIGUSR1);
        vfs().close(r).unwrap();
        vfs().close(wr).unwrap();
        sys.rt_sigaction(SIGUSR1, Some(SigAction::default()))
            .unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn select_keeps_the_ready_descriptors_and_refuses_closed_ones() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        let [r, wr] = vfs().pipe2(0).unwrap();
        let (r, wr) = (r as usize, wr as usize);
        let bits = |fds: &[usize]| {
            let mut words = vec![0u64; 1];
            for &fd in fds {
                words[fd / 64] |= 1 << (fd % 64);
            }
            Some(words)
        };
        let mut sets = FdSets {
            read: bits(&[r, wr]),
            write: bits(&[r, wr]),
            except: bits(&[r]),
        };
        let now = sys.monotonic_ns();
        // Only the write end is writable; nothing is readable or exceptional. (A read end
        // asked for writing is not writable: it was not opened for it.)
        assert_eq!(sys.select(64, &mut sets, Some(now), None), Ok(1));
        assert_eq!(sets.read, bits(&[]));
        assert_eq!(sets.write, bits(&[wr]));
        assert_eq!(sets.except, bits(&[]));
        vfs().write(wr as i32, b"x").unwrap();
        let mut sets = FdSets {
            read: bits(&[r]),
            ..FdSets::default()
        };
        assert_eq!(sys.select(64, &mut sets, None, None), Ok(1));
        assert_eq!(sets.read, bits(&[r]));
        // A closed descriptor: EBADF, the sets untouched.
        vfs().close(r as i32).unwrap();
        let mut sets = FdSets {
            read: bits(&[r]),
            ..FdSets::default()
        };
        assert_eq!(sys.select(64, &mut sets, None, None), Err(Errno::EBADF));
        assert_eq!(sets.read, bits(&[r]));
        // The write end with no reader: in error, so both readable and writable.
        let mut sets = FdSets {
            read: bits(&[wr]),
            write: bits(&[wr]),
            except: None,
        };
        assert_eq!(sys.select(64, &mut sets, None, None), Ok(2));
        let mut probe = [entry(wr as i32, POLLOUT)];
        vfs().poll(&mut probe);
        assert_eq!(probe[0].revents as u16 & POLLERR, POLLERR);
        vfs().close(wr as i32).unwrap();
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn the_raw_calls_check_before_they_wait() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        let call = |n: Sysno, a: [usize; 6]| dispatch(n as usize, &a);
        let err = |e: Errno| -(e.into_raw() as isize);
        let [r, wr] = vfs().pipe2(0).unwrap();
        let mut fds = [entry(r, POLLIN), entry(wr, POLLOUT)];
        let addr = fds.as_mut_ptr() as usize;
        let zero = [0i64; 2];
        let zero = zero.as_ptr() as usize;
        assert_eq!(call(Sysno::ppoll, [addr, 2, zero, 0, 8, 0]), 1);
        assert_eq!(fds[1].revents as u16, POLLOUT);
        assert_eq!(fds[0].revents, 0);
        assert_eq!(
            call(Sysno::ppoll, [1, 2, zero, 0, 8, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::ppoll, [addr, 1 << 20, zero, 0, 8, 0]),
            err(Errno::EINVAL)
        );
        let mask = 0u64;
        let mask = &mask as *const u64 as usize;
        assert_eq!(
            call(Sysno::ppoll, [addr, 2, zero, mask, 4, 0]),
            err(Errno::EINVAL)
        );
        let bad_time = [0i64, 1_000_000_000];
        let bad_time = bad_time.as_ptr() as usize;
        assert_eq!(
            call(Sysno::ppoll, [addr, 2, bad_time, 0, 8, 0]),
            err(Errno::EINVAL)
        );
        // pselect6: a set of `nfds` bits, written back.
        let mut read = [1u64 << r | 1 << wr];
        let mut write = [1u64 << wr];
        let (ra, wa) = (read.as_mut_ptr() as usize, write.as_mut_ptr() as usize);
        assert_eq!(call(Sysno::pselect6, [64, ra, wa, 0, zero, 0]), 1);
        assert_eq!((read[0], write[0]), (0, 1 << wr));
        assert_eq!(
            call(Sysno::pselect6, [usize::MAX, ra, wa, 0, zero, 0]),
            err(Errno::EINVAL)
        );
        vfs().close(r).unwrap();
        vfs().close(wr).unwrap();
        0
    });
    assert_eq!(status, Some(0));
}
