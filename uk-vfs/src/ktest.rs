//! In-image test cases (feature `ktest`): the image VFS and its devices, the syscall table,
//! pipes and eventfds blocking between scheduler threads, epoll edges, the initrd, and the
//! cost of `open`.

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use uk_context::Native;
use uk_sched::{RoundRobin, Scheduler, idle};
use uk_syscall::{Sysno, dispatch};
use uk_test::{expect, expect_eq};

use crate::global::vfs;
use crate::*;

fn setup() -> &'static Vfs {
    set_console(uk_rt::platform());
    vfs()
}

uk_test::ktest! {
    /// The image VFS has devfs on /dev and descriptors 0-2 on the console; writes to fd 1
    /// reach the board console.
    fn image_vfs_has_dev_and_stdio() {
        let v = setup();
        for fd in 0..3 {
            expect_eq!(v.fstat(fd).map(|s| s.mode & S_IFMT), Ok(S_IFCHR));
        }
        expect_eq!(v.write(1, b"uk-vfs: hello through fd 1\n"), Ok(27));
        expect_eq!(v.stat("/dev/null").map(|s| (major(s.rdev), minor(s.rdev))), Ok((1, 3)));
        let fd = v.open("/dev/urandom", O_RDONLY, 0).unwrap();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        expect_eq!(v.read(fd, &mut a), Ok(32));
        expect_eq!(v.read(fd, &mut b), Ok(32));
        expect!(a != b && a != [0; 32]);
        v.close(fd).unwrap();
        let mut termios = [0u8; devfs::TERMIOS_SIZE];
        expect_eq!(v.ioctl(0, devfs::TCGETS, &mut termios), Ok(0));
    }
}

uk_test::ktest! {
    /// Syscalls through the dispatch table: open, write, lseek, read, stat(NULL) = EFAULT,
    /// getdents64 with a too-small buffer = EINVAL (reference §9), unlink.
    fn syscalls_through_the_table() {
        setup();
        let call = |n: Sysno, a: [usize; 6]| dispatch(n as usize, &a);
        let e = |errno: Errno| -(errno.into_raw() as isize);
        let path = b"/ktest-file\0";
        let fd = call(Sysno::openat, [AT_FDCWD as usize, path.as_ptr() as usize, (O_CREAT | O_RDWR) as usize, 0o644, 0, 0]);
        expect!(fd >= 3, "fd {fd}");
        expect_eq!(call(Sysno::write, [fd as usize, b"data".as_ptr() as usize, 4, 0, 0, 0]), 4);
        expect_eq!(call(Sysno::lseek, [fd as usize, 0, 0, 0, 0, 0]), 0);
        let mut buf = [0u8; 8];
        expect_eq!(call(Sysno::read, [fd as usize, buf.as_mut_ptr() as usize, 8, 0, 0, 0]), 4);
        expect_eq!(&buf[..4], b"data");
        let mut st = [0u8; 256];
        expect_eq!(call(Sysno::statx, [AT_FDCWD as usize, 0, 0, 0x7ff, st.as_mut_ptr() as usize, 0]), e(Errno::EFAULT));
        expect_eq!(call(Sysno::statx, [AT_FDCWD as usize, path.as_ptr() as usize, 0, 0x7ff, st.as_mut_ptr() as usize, 0]), 0);
        expect_eq!(u64::from_ne_bytes(st[40..48].try_into().unwrap()), 4);
        let dfd = call(Sysno::openat, [AT_FDCWD as usize, c"/".as_ptr() as usize, O_DIRECTORY as usize, 0, 0, 0]);
        expect_eq!(call(Sysno::getdents64, [dfd as usize, buf.as_mut_ptr() as usize, 8, 0, 0, 0]), e(Errno::EINVAL));
        let mut big = [0u8; 1024];
        let n = call(Sysno::getdents64, [dfd as usize, big.as_mut_ptr() as usize, 1024, 0, 0, 0]);
        expect!(n >= 3 * 24, "{n}");
        expect_eq!(call(Sysno::close, [dfd as usize, 0, 0, 0, 0, 0]), 0);
        expect_eq!(call(Sysno::close, [fd as usize, 0, 0, 0, 0, 0]), 0);
        expect_eq!(call(Sysno::unlinkat, [AT_FDCWD as usize, path.as_ptr() as usize, 0, 0, 0, 0]), 0);
        expect_eq!(call(Sysno::close, [fd as usize, 0, 0, 0, 0, 0]), e(Errno::EBADF));
    }
}

uk_test::ktest! {
    /// A reader and a writer thread move 200 000 bytes through a pipe, blocking on wait
    /// queues when it is full or empty; the reader sees EOF after the writer closes.
    fn pipe_blocks_between_threads() {
        let v = setup();
        let [r, w] = v.pipe2(0).unwrap();
        let s = RoundRobin::cooperative(Native::detect(), uk_rt::platform(), idle::Poll);
        let got = Rc::new(RefCell::new(Vec::new()));
        s.spawn("writer", move || {
            let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let mut done = 0;
            while done < data.len() {
                done += vfs().write(w, &data[done..]).unwrap();
            }
            vfs().close(w).unwrap();
        })
        .expect("spawn");
        {
            let got = got.clone();
            s.spawn("reader", move || {
                let mut buf = vec![0u8; 3000];
                loop {
                    let n = vfs().read(r, &mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.borrow_mut().extend_from_slice(&buf[..n]);
                }
                vfs().close(r).unwrap();
            })
            .expect("spawn");
        }
        s.run();
        let got = got.borrow();
        expect_eq!(got.len(), 200_000);
        expect!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}

uk_test::ktest! {
    /// An eventfd between scheduler threads: the reader blocks on its wait queue until the
    /// writer's values add up; an edge-triggered epoll set made through the syscall table
    /// reports the counter once per change.
    fn eventfd_blocks_between_threads_and_epoll_reports_edges() {
        use crate::epoll::{EPOLL_CTL_ADD, EPOLLET, EPOLLIN, EpollEvent};
        let v = setup();
        let efd = v.eventfd2(0, 0).unwrap();
        let s = RoundRobin::cooperative(Native::detect(), uk_rt::platform(), idle::Poll);
        let total = Rc::new(RefCell::new(0u64));
        {
            let total = total.clone();
            s.spawn("reader", move || {
                while *total.borrow() < 5050 {
                    let mut buf = [0u8; 8];
                    expect_eq!(vfs().read(efd, &mut buf), Ok(8));
                    *total.borrow_mut() += u64::from_ne_bytes(buf);
                }
            })
            .expect("spawn");
        }
        s.spawn("writer", move || {
            for i in 1..=100u64 {
                expect_eq!(vfs().write(efd, &i.to_ne_bytes()), Ok(8));
                if i % 10 == 0 {
                    uk_sched::yield_now();
                }
            }
        })
        .expect("spawn");
        s.run();
        expect_eq!(*total.borrow(), 5050);
        let call = |n: Sysno, a: [usize; 6]| dispatch(n as usize, &a);
        let ep = call(Sysno::epoll_create1, [0; 6]);
        expect!(ep >= 3, "epoll fd {ep}");
        let event = EpollEvent { events: EPOLLIN | EPOLLET, data: 77 }.to_bytes();
        expect_eq!(call(Sysno::epoll_ctl, [ep as usize, EPOLL_CTL_ADD as usize, efd as usize, event.as_ptr() as usize, 0, 0]), 0);
        let set = v.epoll_instance(ep as Fd).unwrap();
        expect_eq!(set.collect(4), []);
        expect_eq!(v.write(efd, &1u64.to_ne_bytes()), Ok(8));
        expect_eq!(set.collect(4), [EpollEvent { events: EPOLLIN, data: 77 }]);
        expect_eq!(set.collect(4), []);
        v.close(ep as Fd).unwrap();
        v.close(efd).unwrap();
    }
}

uk_test::ktest! {
    /// Outside any thread a read that would block forever fails with EDEADLK instead of
    /// hanging; O_NONBLOCK gives EAGAIN; no reader gives EPIPE.
    fn pipe_never_hangs_outside_threads() {
        let v = setup();
        let [r, w] = v.pipe2(0).unwrap();
        expect_eq!(v.read(r, &mut [0; 4]), Err(Errno::EDEADLK));
        v.fcntl(r, F_SETFL, O_NONBLOCK as usize).unwrap();
        expect_eq!(v.read(r, &mut [0; 4]), Err(Errno::EAGAIN));
        v.close(r).unwrap();
        expect_eq!(v.write(w, b"x"), Err(Errno::EPIPE));
        v.close(w).unwrap();
    }
}

uk_test::ktest! {
    /// A newc archive unpacks into a fresh VFS; a truncated one is refused and unpacks
    /// nothing. When the image was booted with -initrd, the archive parses.
    fn initrd_unpacks() {
        let archive = cpio::build(&[
            (b"etc", S_IFDIR | 0o755, b""),
            (b"etc/motd", S_IFREG | 0o644, b"hi\n"),
            (b"motd", S_IFLNK | 0o777, b"etc/motd"),
        ]);
        let v = Vfs::new(RamFs::new());
        expect_eq!(cpio::unpack(&v, &archive), Ok(3));
        expect_eq!(v.read_file("/motd").as_deref(), Ok(&b"hi\n"[..]));
        let v = Vfs::new(RamFs::new());
        expect!(cpio::unpack(&v, &archive[..archive.len() - 20]).is_err());
        expect_eq!(v.stat("/etc"), Err(Errno::ENOENT));
        if let Some(initrd) = uk_rt::platform().initrd() {
            log::info!("initrd: {} bytes", initrd.len());
            expect!(cpio::parse(initrd).is_ok());
        }
    }
}

uk_test::ktest! {
    /// Cost of open+close and stat of a two-level path, in cycles (printed).
    fn open_close_cost() {
        let v = Vfs::new(RamFs::new());
        v.mkdir("/tmp", 0o755).unwrap();
        v.write_file("/tmp/file", b"x", 0o644).unwrap();
        let p = uk_rt::platform();
        let rounds = 2000u64;
        let t0 = p.cycles();
        for _ in 0..rounds {
            let fd = v.open("/tmp/file", O_RDONLY, 0).unwrap();
            v.close(fd).unwrap();
        }
        let t1 = p.cycles();
        for _ in 0..rounds {
            v.stat("/tmp/file").unwrap();
        }
        let t2 = p.cycles();
        log::info!(
            "open+close {} cycles, stat {} cycles (counter at {} Hz)",
            (t1 - t0) / rounds,
            (t2 - t1) / rounds,
            p.cycles_per_second()
        );
        expect!(t1 > t0);
    }
}
