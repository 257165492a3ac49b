//! eventfd and epoll: the typed API (counter rules, readiness, every `epoll_ctl` errno,
//! level, edge and one-shot reporting, registrations going with the last close), blocking
//! between real threads, the `struct epoll_event` ABI, and the raw adapters (fixed cases
//! and a property test: random arguments give an errno or a success, and a refusal changes
//! no registration).

use alloc::vec::Vec;
use std::sync::Arc as StdArc;

use super::{fresh, thread_wait};
use crate::epoll::*;
use crate::eventfd::*;
use crate::poll::*;
use crate::*;

fn ev(events: u32, data: u64) -> EpollEvent {
    EpollEvent { events, data }
}

fn read_u64(vfs: &Vfs, fd: Fd) -> Result<u64, Errno> {
    let mut buf = [0u8; 8];
    vfs.read(fd, &mut buf).map(|n| {
        assert_eq!(n, 8);
        u64::from_ne_bytes(buf)
    })
}

fn write_u64(vfs: &Vfs, fd: Fd, v: u64) -> Result<usize, Errno> {
    vfs.write(fd, &v.to_ne_bytes())
}

fn revents(vfs: &Vfs, fd: Fd, events: u16) -> u16 {
    let mut fds = [PollFd {
        fd,
        events: events as i16,
        revents: 0,
    }];
    vfs.poll(&mut fds);
    fds[0].revents as u16
}

/// What the set reports now, as (events, data), consuming edge and one-shot state.
fn collect(vfs: &Vfs, ep: Fd, max: usize) -> Vec<(u32, u64)> {
    vfs.epoll_instance(ep)
        .unwrap()
        .collect(max)
        .into_iter()
        .map(|e| (e.events, e.data))
        .collect()
}

#[test]
fn eventfd_counts_reads_and_writes_like_linux() {
    let vfs = fresh();
    assert_eq!(vfs.eventfd2(0, 8), Err(Errno::EINVAL));
    assert_eq!(vfs.eventfd2(0, O_RDWR | 0o100), Err(Errno::EINVAL));
    let fd = vfs.eventfd2(5, EFD_NONBLOCK | EFD_CLOEXEC).unwrap();
    assert_eq!(vfs.fcntl(fd, F_GETFD, 0), Ok(1));
    assert_eq!(
        vfs.fcntl(fd, F_GETFL, 0),
        Ok((O_RDWR | O_NONBLOCK) as usize)
    );
    // Short buffers are EINVAL (an empty one too); longer ones move 8 bytes.
    assert_eq!(vfs.read(fd, &mut [0; 7]), Err(Errno::EINVAL));
    assert_eq!(vfs.read(fd, &mut []), Err(Errno::EINVAL));
    assert_eq!(vfs.write(fd, &[1; 7]), Err(Errno::EINVAL));
    assert_eq!(vfs.write(fd, &[]), Err(Errno::EINVAL));
    let mut big = [0u8; 16];
    assert_eq!(vfs.read(fd, &mut big), Ok(8));
    assert_eq!(u64::from_ne_bytes(big[..8].try_into().unwrap()), 5);
    assert_eq!(read_u64(&vfs, fd), Err(Errno::EAGAIN));
    // Writes add up; a read takes all and leaves 0.
    let mut long = 3u64.to_ne_bytes().to_vec();
    long.extend_from_slice(&[0xff; 8]);
    assert_eq!(vfs.write(fd, &long), Ok(8));
    assert_eq!(write_u64(&vfs, fd, 4), Ok(8));
    assert_eq!(read_u64(&vfs, fd), Ok(7));
    // u64::MAX is never a value; the counter holds at most u64::MAX - 1.
    assert_eq!(write_u64(&vfs, fd, u64::MAX), Err(Errno::EINVAL));
    assert_eq!(write_u64(&vfs, fd, EVENTFD_MAX), Ok(8));
    assert_eq!(write_u64(&vfs, fd, 1), Err(Errno::EAGAIN));
    assert_eq!(write_u64(&vfs, fd, 0), Ok(8));
    assert_eq!(revents(&vfs, fd, POLLIN | POLLOUT), POLLIN);
    assert_eq!(read_u64(&vfs, fd), Ok(EVENTFD_MAX));
    assert_eq!(revents(&vfs, fd, POLLIN | POLLOUT), POLLOUT);
    assert_eq!(write_u64(&vfs, fd, 1), Ok(8));
    assert_eq!(revents(&vfs, fd, POLLIN | POLLOUT), POLLIN | POLLOUT);
    // Every read and write (of 0 too) moves the epoch.
    for op in 0..3 {
        let before = readiness_epoch();
        match op {
            0 => assert_eq!(write_u64(&vfs, fd, 0), Ok(8)),
            1 => assert_eq!(write_u64(&vfs, fd, 2), Ok(8)),
            _ => assert_eq!(read_u64(&vfs, fd), Ok(3)),
        }
        assert!(readiness_epoch() > before);
    }
    vfs.close(fd).unwrap();

    // A semaphore: each read takes 1.
    let sem = vfs.eventfd2(2, EFD_SEMAPHORE | EFD_NONBLOCK).unwrap();
    assert_eq!(vfs.fcntl(sem, F_GETFD, 0), Ok(0));
    assert_eq!(read_u64(&vfs, sem), Ok(1));
    assert_eq!(read_u64(&vfs, sem), Ok(1));
    assert_eq!(read_u64(&vfs, sem), Err(Errno::EAGAIN));
    vfs.close(sem).unwrap();
}

#[test]
fn eventfd_and_epoll_are_anonymous_inode_files() {
    let vfs = fresh();
    let e = vfs.eventfd2(0, 0).unwrap();
    let ep = vfs.epoll_create1(0).unwrap();
    let (se, sp) = (vfs.fstat(e).unwrap(), vfs.fstat(ep).unwrap());
    assert_eq!(se.mode, 0o600, "no file type, as Linux's anon inode");
    assert_eq!((se.ino, se.dev, se.nlink), (sp.ino, sp.dev, 1));
    assert_eq!(se.size, 0);
    for fd in [e, ep] {
        // Linux's noop_llseek: the position stays 0; whence past SEEK_HOLE is EINVAL.
        assert_eq!(vfs.lseek(fd, 10, SEEK_SET), Ok(0));
        assert_eq!(vfs.lseek(fd, 0, 9), Err(Errno::EINVAL));
        assert_eq!(vfs.pread(fd, &mut [0; 8], 0), Err(Errno::ESPIPE));
        assert_eq!(vfs.pwrite(fd, &[0; 8], 0), Err(Errno::ESPIPE));
        assert_eq!(vfs.fstatfs(fd).map(|s| s.fs_type), Ok(ANON_INODE_FS_MAGIC));
        assert_eq!(vfs.ioctl(fd, devfs::TCGETS, &mut []), Err(Errno::ENOTTY));
        assert_eq!(vfs.fsync(fd), Err(Errno::EINVAL));
        assert_eq!(vfs.ftruncate(fd, 0), Err(Errno::EINVAL));
        assert_eq!(vfs.fallocate(fd, 0, 0, 1), Err(Errno::ENODEV));
        assert_eq!(vfs.getdents64(fd, &mut [0; 64]), Err(Errno::ENOTDIR));
    }
    // An epoll set is neither read nor written.
    assert_eq!(vfs.read(ep, &mut [0; 16]), Err(Errno::EINVAL));
    assert_eq!(vfs.write(ep, &[0; 16]), Err(Errno::EINVAL));
    // Not a sendfile end.
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    assert_eq!(vfs.sendfile(e, r, None, 8), Err(Errno::EINVAL));
    assert_eq!(vfs.sendfile(w, e, None, 8), Err(Errno::EINVAL));
    for fd in [e, ep, r, w] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn eventfd_blocks_across_threads() {
    wait::set_wait_factory(thread_wait);
    let vfs = StdArc::new(fresh());
    let fd = vfs.eventfd2(0, 0).unwrap();
    // A read waits for a writer.
    let writer = {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            write_u64(&vfs, fd, 42).unwrap();
        })
    };
    assert_eq!(read_u64(&vfs, fd), Ok(42));
    writer.join().unwrap();
    // A write that would overflow waits for a reader.
    write_u64(&vfs, fd, EVENTFD_MAX).unwrap();
    let reader = {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            read_u64(&vfs, fd).unwrap()
        })
    };
    assert_eq!(write_u64(&vfs, fd, 9), Ok(8));
    assert_eq!(reader.join().unwrap(), EVENTFD_MAX);
    assert_eq!(read_u64(&vfs, fd), Ok(9));
    vfs.close(fd).unwrap();
}

#[test]
fn epoll_ctl_refuses_like_linux_and_changes_nothing() {
    let vfs = fresh();
    assert_eq!(vfs.epoll_create1(1), Err(Errno::EINVAL));
    assert_eq!(vfs.epoll_create1(O_NONBLOCK), Err(Errno::EINVAL));
    assert_eq!(vfs.epoll_create(0), Err(Errno::EINVAL));
    assert_eq!(vfs.epoll_create(-1), Err(Errno::EINVAL));
    let ep = vfs.epoll_create(1).unwrap();
    assert_eq!(vfs.fcntl(ep, F_GETFD, 0), Ok(0));
    let ep2 = vfs.epoll_create1(EPOLL_CLOEXEC).unwrap();
    assert_eq!(vfs.fcntl(ep2, F_GETFD, 0), Ok(1));
    let e = vfs.eventfd2(0, EFD_NONBLOCK).unwrap();
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    let file = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    let dir = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let null = vfs.open("/dev/null", O_RDWR, 0).unwrap();
    let console = vfs.open("/dev/console", O_RDWR, 0).unwrap();
    let add = |ep: Fd, fd: Fd, events: u32| vfs.epoll_ctl(ep, EPOLL_CTL_ADD, fd, ev(events, 7));

    assert_eq!(add(99, e, EPOLLIN), Err(Errno::EBADF));
    assert_eq!(add(-1, e, EPOLLIN), Err(Errno::EBADF));
    assert_eq!(add(ep, 99, EPOLLIN), Err(Errno::EBADF));
    // EBADF for the target comes before "epfd is no set".
    assert_eq!(add(r, 99, EPOLLIN), Err(Errno::EBADF));
    // No readiness to watch: regular files, directories, devices (not the console).
    assert_eq!(add(ep, file, EPOLLIN), Err(Errno::EPERM));
    assert_eq!(add(ep, dir, EPOLLIN), Err(Errno::EPERM));
    assert_eq!(add(ep, null, EPOLLIN), Err(Errno::EPERM));
    // EPERM comes before "epfd is no set".
    assert_eq!(add(r, file, EPOLLIN), Err(Errno::EPERM));
    assert_eq!(add(r, e, EPOLLIN), Err(Errno::EINVAL));
    assert_eq!(add(ep, ep, EPOLLIN), Err(Errno::EINVAL));
    let ep_dup = vfs.dup(ep).unwrap();
    assert_eq!(add(ep, ep_dup, EPOLLIN), Err(Errno::EINVAL));
    // EPOLLEXCLUSIVE: ADD only, not on a set, only with in/out/err/hup/ET.
    assert_eq!(add(ep, ep2, EPOLLIN | EPOLLEXCLUSIVE), Err(Errno::EINVAL));
    for extra in [EPOLLONESHOT, EPOLLRDHUP, EPOLLPRI] {
        assert_eq!(
            add(ep, e, EPOLLIN | EPOLLEXCLUSIVE | extra),
            Err(Errno::EINVAL)
        );
    }
    assert_eq!(vfs.epoll_registrations(ep), []);
    // Unknown ops.
    for op in [0, 4, -1] {
        assert_eq!(vfs.epoll_ctl(ep, op, e, ev(EPOLLIN, 0)), Err(Errno::EINVAL));
    }
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_MOD, e, ev(EPOLLIN, 0)),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_DEL, e, ev(0, 0)),
        Err(Errno::ENOENT)
    );

    // Accepted: pipes, eventfds, sets, the console; unknown event bits are kept.
    assert_eq!(add(ep, e, EPOLLIN | EPOLLEXCLUSIVE | EPOLLET), Ok(()));
    assert_eq!(add(ep, r, 0x0fff_0000 & !EPOLLEXCLUSIVE), Ok(()));
    assert_eq!(add(ep, console, EPOLLOUT), Ok(()));
    assert_eq!(add(ep, ep2, EPOLLIN), Ok(()));
    assert_eq!(add(ep, e, EPOLLIN), Err(Errno::EEXIST));
    let regs = vfs.epoll_registrations(ep);
    assert_eq!(regs.len(), 4);
    assert_eq!(
        regs[0],
        (
            e,
            EPOLLIN | EPOLLEXCLUSIVE | EPOLLET | EPOLLERR | EPOLLHUP,
            7
        )
    );
    assert_eq!(
        regs[1].1,
        (0x0fff_0000 & !EPOLLEXCLUSIVE) | EPOLLERR | EPOLLHUP
    );
    // An exclusive registration cannot be modified; MOD never takes EXCLUSIVE.
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_MOD, e, ev(EPOLLOUT, 1)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_MOD, r, ev(EPOLLIN | EPOLLEXCLUSIVE, 1)),
        Err(Errno::EINVAL)
    );
    // Loops: a set inside itself through another, and nesting too deep.
    assert_eq!(add(ep2, ep, EPOLLIN), Err(Errno::ELOOP));
    let chain: Vec<Fd> = (0..6).map(|_| vfs.epoll_create1(0).unwrap()).collect();
    let [a, b, c, d, f, g] = chain[..] else {
        unreachable!()
    };
    // Built from the bottom up: b holds four levels of sets, a would hold five.
    for (outer, inner) in [(f, g), (d, f), (c, d), (b, c)] {
        assert_eq!(add(outer, inner, EPOLLIN), Ok(()));
    }
    assert_eq!(add(a, b, EPOLLIN), Err(Errno::ELOOP), "five levels below a");
    let before: Vec<_> = [ep, ep2, a, b]
        .iter()
        .map(|&s| vfs.epoll_registrations(s))
        .collect();
    // Every refusal above left the registrations as they were.
    assert_eq!(add(ep2, ep, EPOLLIN), Err(Errno::ELOOP));
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_MOD, e, ev(EPOLLOUT, 1)),
        Err(Errno::EINVAL)
    );
    let after: Vec<_> = [ep, ep2, a, b]
        .iter()
        .map(|&s| vfs.epoll_registrations(s))
        .collect();
    assert_eq!(before, after);
    // DEL, then the descriptor can be added again.
    assert_eq!(vfs.epoll_ctl(ep, EPOLL_CTL_DEL, r, ev(0, 0)), Ok(()));
    assert_eq!(vfs.epoll_registrations(ep).len(), 3);
    assert_eq!(add(ep, r, EPOLLIN), Ok(()));
    for fd in [
        ep, ep2, ep_dup, e, r, w, file, dir, null, console, a, b, c, d, f, g,
    ] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn level_edge_and_oneshot_reporting() {
    let vfs = fresh();
    let ep = vfs.epoll_create1(0).unwrap();
    let lt = vfs.eventfd2(0, EFD_NONBLOCK).unwrap();
    let et = vfs.eventfd2(0, EFD_NONBLOCK).unwrap();
    let one = vfs.eventfd2(0, EFD_NONBLOCK).unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, lt, ev(EPOLLIN, 1))
        .unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, et, ev(EPOLLIN | EPOLLET, 2))
        .unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, one, ev(EPOLLIN | EPOLLONESHOT, 3))
        .unwrap();
    assert_eq!(collect(&vfs, ep, 8), []);
    assert_eq!(revents(&vfs, ep, POLLIN), 0);
    for fd in [lt, et, one] {
        write_u64(&vfs, fd, 1).unwrap();
    }
    // The set is readable (poll does not consume anything).
    assert_eq!(revents(&vfs, ep, POLLIN | POLLOUT), POLLIN);
    assert_eq!(revents(&vfs, ep, POLLRDNORM), POLLRDNORM);
    let mut got = collect(&vfs, ep, 8);
    got.sort_by_key(|e| e.1);
    assert_eq!(got, [(EPOLLIN, 1), (EPOLLIN, 2), (EPOLLIN, 3)]);
    // Level: again. Edge: not until the eventfd changes. One-shot: disabled.
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLIN, 1)]);
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLIN, 1)]);
    write_u64(&vfs, et, 1).unwrap();
    write_u64(&vfs, one, 1).unwrap();
    let mut got = collect(&vfs, ep, 8);
    got.sort_by_key(|e| e.1);
    assert_eq!(got, [(EPOLLIN, 1), (EPOLLIN, 2)], "one edge per change");
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLIN, 1)]);
    // A write of 0 is a change too (Linux wakes then).
    write_u64(&vfs, et, 0).unwrap();
    assert_eq!(collect(&vfs, ep, 8).len(), 2);
    // A change that leaves it unready reports nothing; the next ready one does.
    read_u64(&vfs, et).unwrap();
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLIN, 1)]);
    write_u64(&vfs, et, 5).unwrap();
    assert_eq!(collect(&vfs, ep, 8).len(), 2);
    // MOD re-arms the one-shot (and forgets the edge: reported once again).
    vfs.epoll_ctl(ep, EPOLL_CTL_MOD, one, ev(EPOLLIN | EPOLLOUT, 30))
        .unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_MOD, et, ev(EPOLLIN | EPOLLET, 20))
        .unwrap();
    let mut got = collect(&vfs, ep, 8);
    got.sort_by_key(|e| e.1);
    assert_eq!(got, [(EPOLLIN, 1), (EPOLLIN, 20), (EPOLLIN | EPOLLOUT, 30)]);
    // The one-shot is level-triggered now.
    assert_eq!(collect(&vfs, ep, 8).len(), 2);
    // maxevents: the rest comes in the next call, in turn.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let got = collect(&vfs, ep, 1);
        assert_eq!(got.len(), 1);
        seen.push(got[0].1);
    }
    seen.sort();
    assert_eq!(seen, [1, 1, 30, 30]);
    for fd in [ep, lt, et, one] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn pipes_hang_ups_and_nested_sets() {
    let vfs = fresh();
    let ep = vfs.epoll_create1(0).unwrap();
    let inner = vfs.epoll_create1(0).unwrap();
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, w, ev(EPOLLOUT | EPOLLET, 2))
        .unwrap();
    vfs.epoll_ctl(inner, EPOLL_CTL_ADD, r, ev(EPOLLIN | EPOLLRDHUP, 1))
        .unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, inner, ev(EPOLLIN, 3))
        .unwrap();
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLOUT, 2)]);
    assert_eq!(collect(&vfs, ep, 8), []);
    assert_eq!(vfs.write(w, b"x"), Ok(1));
    // The inner set became readable; the write end changed too (an edge).
    let mut got = collect(&vfs, ep, 8);
    got.sort_by_key(|e| e.1);
    assert_eq!(got, [(EPOLLOUT, 2), (EPOLLIN, 3)]);
    assert_eq!(collect(&vfs, inner, 8), [(EPOLLIN, 1)]);
    // The writer gone: hang-up, reported although not asked for.
    vfs.close(w).unwrap();
    assert_eq!(collect(&vfs, inner, 8), [(EPOLLIN | EPOLLHUP, 1)]);
    vfs.read(r, &mut [0; 4]).unwrap();
    assert_eq!(collect(&vfs, inner, 8), [(EPOLLHUP, 1)]);
    for fd in [ep, inner, r] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn the_last_close_removes_registrations() {
    let vfs = fresh();
    let ep = vfs.epoll_create1(0).unwrap();
    let e = vfs.eventfd2(1, 0).unwrap();
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, e, ev(EPOLLIN, 9)).unwrap();
    // A dup keeps the description open: still reported, under the number it was added as.
    let d = vfs.dup(e).unwrap();
    vfs.close(e).unwrap();
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLIN, 9)]);
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_MOD, d, ev(EPOLLIN, 1)),
        Err(Errno::ENOENT)
    );
    // The last descriptor closed: gone from the set.
    vfs.close(d).unwrap();
    assert_eq!(collect(&vfs, ep, 8), []);
    assert_eq!(vfs.epoll_registrations(ep), []);
    // A new file on the old number is a new registration.
    let e2 = vfs.eventfd2(1, 0).unwrap();
    assert_eq!(e2, e);
    assert_eq!(
        vfs.epoll_ctl(ep, EPOLL_CTL_DEL, e2, ev(0, 0)),
        Err(Errno::ENOENT)
    );
    vfs.epoll_ctl(ep, EPOLL_CTL_ADD, e2, ev(EPOLLIN, 10))
        .unwrap();
    assert_eq!(collect(&vfs, ep, 8), [(EPOLLIN, 10)]);
    // A set held for waiting outlives its descriptor.
    let held = vfs.epoll_instance(ep).unwrap();
    vfs.close(ep).unwrap();
    assert_eq!(held.collect(8).len(), 1);
    assert!(matches!(vfs.epoll_instance(ep), Err(Errno::EBADF)));
    assert!(matches!(vfs.epoll_instance(e2), Err(Errno::EINVAL)));
    vfs.close(e2).unwrap();
}

#[test]
fn epoll_event_has_linuxs_layout() {
    #[cfg(target_arch = "x86_64")]
    assert_eq!((EPOLL_EVENT_SIZE, align_of::<EpollEvent>()), (12, 1));
    #[cfg(target_arch = "aarch64")]
    assert_eq!((EPOLL_EVENT_SIZE, align_of::<EpollEvent>()), (16, 8));
    let e = ev(EPOLLIN | EPOLLET, 0x1122_3344_5566_7788);
    let bytes = e.to_bytes();
    assert_eq!(bytes[..4], (EPOLLIN | EPOLLET).to_ne_bytes());
    assert_eq!(
        bytes[EPOLL_EVENT_SIZE - 8..],
        0x1122_3344_5566_7788u64.to_ne_bytes()
    );
    assert_eq!(EpollEvent::from_bytes(&bytes), Some(e));
    assert_eq!(EpollEvent::from_bytes(&bytes[1..]), None);
}

#[test]
fn eventfd_and_epoll_syscalls_through_dispatch() {
    use uk_syscall::{Sysno, dispatch};
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let err = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    assert_eq!(
        call(Sysno::eventfd2, [0, 0o100, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    let e = call(
        Sysno::eventfd2,
        [3, (EFD_NONBLOCK | EFD_SEMAPHORE) as usize, 0, 0, 0, 0],
    );
    assert!(e >= 3, "{e}");
    let e = e as Fd;
    assert_eq!(read_u64(vfs, e), Ok(1));
    // The initial value is a C unsigned int: the upper half of the register is ignored.
    let big = call(Sysno::eventfd2, [(1 << 32) | 2, 0, 0, 0, 0, 0]) as Fd;
    assert_eq!(read_u64(vfs, big), Ok(2));
    assert_eq!(
        call(Sysno::epoll_create1, [1, 0, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    let ep = call(
        Sysno::epoll_create1,
        [EPOLL_CLOEXEC as usize, 0, 0, 0, 0, 0],
    );
    assert!(ep >= 3, "{ep}");
    let ep = ep as Fd;
    let event = ev(EPOLLIN, 0xdead_beef_0000_0001).to_bytes();
    let at = event.as_ptr() as usize;
    let ctl = |op: i32, fd: Fd, ptr: usize| {
        call(
            Sysno::epoll_ctl,
            [ep as usize, op as usize, fd as usize, ptr, 0, 0],
        )
    };
    // The event is read first: EFAULT before EBADF; DEL never reads it.
    assert_eq!(ctl(EPOLL_CTL_ADD, 999, 0), err(Errno::EFAULT));
    assert_eq!(ctl(EPOLL_CTL_ADD, 999, at), err(Errno::EBADF));
    assert_eq!(ctl(77, e, 0), err(Errno::EFAULT));
    assert_eq!(ctl(EPOLL_CTL_ADD, e, at), 0);
    assert_eq!(ctl(EPOLL_CTL_ADD, e, at), err(Errno::EEXIST));
    assert_eq!(
        vfs.epoll_instance(ep).unwrap().collect(4),
        [ev(EPOLLIN, 0xdead_beef_0000_0001)]
    );
    assert_eq!(ctl(EPOLL_CTL_DEL, e, 0), 0);
    assert_eq!(ctl(EPOLL_CTL_DEL, e, 0), err(Errno::ENOENT));
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            call(Sysno::epoll_create, [0, 0, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            call(Sysno::epoll_create, [u32::MAX as usize, 0, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        let old = call(Sysno::epoll_create, [1, 0, 0, 0, 0, 0]);
        assert!(old >= 3);
        vfs.close(old as Fd).unwrap();
        let plain = call(Sysno::eventfd, [4, 0, 0, 0, 0, 0]);
        assert!(plain >= 3);
        assert_eq!(vfs.fcntl(plain as Fd, F_GETFL, 0), Ok(O_RDWR as usize));
        assert_eq!(read_u64(vfs, plain as Fd), Ok(4));
        vfs.close(plain as Fd).unwrap();
    }
    for fd in [e, big, ep] {
        vfs.close(fd).unwrap();
    }
}

/// Random `eventfd2`, `epoll_create1` and `epoll_ctl` arguments through the raw adapters:
/// never a panic, every error an errno (never `ENOSYS`), and a refused call changes no
/// registration and no counter. Descriptors a call made are closed at once.
mod raw_fuzz {
    use super::*;
    use proptest::prelude::*;
    use uk_syscall::{Sysno, dispatch};

    const OPS: &[usize] = &[1, 2, 3, 0, 4, usize::MAX, (1 << 32) | 1];
    const EVENTS: &[u32] = &[
        EPOLLIN,
        EPOLLOUT | EPOLLET,
        EPOLLIN | EPOLLONESHOT,
        EPOLLIN | EPOLLEXCLUSIVE,
        EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT,
        0,
        u32::MAX,
        EPOLLRDHUP | EPOLLPRI | EPOLLWAKEUP,
    ];
    const FLAGS: &[usize] = &[
        0,
        1,
        2,
        3,
        O_CLOEXEC as usize,
        O_NONBLOCK as usize,
        0o100,
        usize::MAX,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn refusals_change_nothing(
            calls in proptest::collection::vec((0u8..3, any::<[u16; 4]>()), 1..16)
        ) {
            let vfs = global::vfs();
            let ep = vfs.epoll_create1(0).unwrap();
            let ep2 = vfs.epoll_create1(0).unwrap();
            let e = vfs.eventfd2(1, EFD_NONBLOCK).unwrap();
            let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
            let file = vfs.open("/dev/null", O_RDWR, 0).unwrap();
            let fds = [ep, ep2, e, r, w, file, -1, 100_000];
            let mut event = [0u8; 16];
            for (which, p) in calls {
                let p = p.map(usize::from);
                let args = match which {
                    0 => [[0, 1, 7, u32::MAX as usize, 1 << 33][p[0] % 5], FLAGS[p[1] % FLAGS.len()], 0, 0, 0, 0],
                    1 => [FLAGS[p[0] % FLAGS.len()], 0, 0, 0, 0, 0],
                    _ => {
                        let e = ev(EVENTS[p[3] % EVENTS.len()], p[3] as u64);
                        event[..EPOLL_EVENT_SIZE].copy_from_slice(&e.to_bytes());
                        let ptr = [event.as_ptr() as usize, 0, 8][p[3] % 3];
                        let epfd = fds[p[0] % 3 + if p[0] & 8 != 0 { 3 } else { 0 }];
                        [epfd as u32 as usize, OPS[p[1] % OPS.len()], fds[p[2] % fds.len()] as u32 as usize, ptr, 0, 0]
                    }
                };
                let sysno = [Sysno::eventfd2, Sysno::epoll_create1, Sysno::epoll_ctl][which as usize];
                // (Not the count of open descriptors: other tests share the global VFS.)
                let snapshot = || {
                    (vfs.epoll_registrations(ep), vfs.epoll_registrations(ep2),
                     revents(vfs, e, POLLIN | POLLOUT))
                };
                let before = snapshot();
                let r = dispatch(sysno as usize, &args);
                prop_assert!(r >= -4095, "{sysno:?} {args:x?}: {r}");
                if r < 0 {
                    prop_assert_ne!(r, -(Errno::ENOSYS.into_raw() as isize));
                    prop_assert_eq!(snapshot(), before, "{:?} {:x?}: {}", sysno, args, r);
                } else if sysno != Sysno::epoll_ctl {
                    prop_assert_eq!(vfs.close(r as Fd), Ok(()));
                }
            }
            for fd in [ep, ep2, e, r, w, file] {
                vfs.close(fd).unwrap();
            }
        }
    }
}
