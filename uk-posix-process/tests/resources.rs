//! rlimits, anonymous memory, clocks and sleeping, uname and getrandom.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::world;
use uk_posix_process::rlimit::*;
use uk_posix_process::time::{CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_REALTIME, TIMER_ABSTIME};
use uk_posix_process::*;

fn lim(cur: u64, max: u64) -> Rlimit {
    Rlimit {
        rlim_cur: cur,
        rlim_max: max,
    }
}

static DATA_LIMIT: AtomicUsize = AtomicUsize::new(0);

#[test]
fn rlimits_apply_and_old_value_is_written() {
    let sys = System::new();
    sys.set_data_limit_hook(|l| DATA_LIMIT.store(l.unwrap_or(usize::MAX), Ordering::SeqCst));
    assert_eq!(
        sys.getrlimit(RLIMIT_STACK),
        Ok(lim(64 * 1024, RLIM_INFINITY))
    );
    assert_eq!(sys.getrlimit(RLIMIT_NOFILE), Ok(lim(1024, 4096)));
    assert_eq!(
        sys.getrlimit(RLIMIT_DATA),
        Ok(lim(RLIM_INFINITY, RLIM_INFINITY))
    );
    assert_eq!(sys.getrlimit(16), Err(Errno::EINVAL));
    assert_eq!(sys.nofile_limit(), 1024);
    // soft > hard: EINVAL; raising hard: EPERM; nothing changes.
    assert_eq!(
        sys.setrlimit(RLIMIT_NOFILE, lim(5000, 4000)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        sys.setrlimit(RLIMIT_NOFILE, lim(100, 5000)),
        Err(Errno::EPERM)
    );
    assert_eq!(sys.nofile_limit(), 1024);
    // Setting takes effect (Unikraft 0.11 ignores it) and returns the old value.
    assert_eq!(
        sys.setrlimit(RLIMIT_NOFILE, lim(64, 2048)),
        Ok(lim(1024, 4096))
    );
    assert_eq!(sys.nofile_limit(), 64);
    assert_eq!(
        sys.setrlimit(RLIMIT_NOFILE, lim(64, 4096)),
        Err(Errno::EPERM),
        "hard cannot go back up"
    );
    // RLIMIT_DATA reaches the allocator hook.
    assert_eq!(
        sys.setrlimit(RLIMIT_DATA, lim(1 << 20, RLIM_INFINITY)),
        Ok(lim(RLIM_INFINITY, RLIM_INFINITY))
    );
    assert_eq!(DATA_LIMIT.load(Ordering::SeqCst), 1 << 20);
    assert_eq!(sys.data_limit(), Some(1 << 20));
    // prlimit: pid 0 and own pid; unknown pid ESRCH.
    assert_eq!(
        sys.prlimit(0, RLIMIT_DATA, None),
        Ok(lim(1 << 20, RLIM_INFINITY))
    );
    let me = sys.getpid().unwrap();
    assert!(sys.prlimit(me, RLIMIT_STACK, None).is_ok());
    assert_eq!(sys.prlimit(me + 100, RLIMIT_STACK, None), Err(Errno::ESRCH));
    assert_eq!(sys.prlimit(-1, RLIMIT_STACK, None), Err(Errno::ESRCH));
}

#[test]
fn stack_limit_sizes_new_threads() {
    let w = world();
    let sys = w.sys;
    sys.setrlimit(RLIMIT_STACK, lim(16 * 1024, RLIM_INFINITY))
        .unwrap();
    // A child on a default stack of 16 KiB: a 4 KiB frame fits; 64 KiB of frames would not,
    // so only check what the limit promises and that the value is read.
    assert_eq!(sys.getrlimit(RLIMIT_STACK).unwrap().rlim_cur, 16 * 1024);
    let status = w.run(move || {
        let (entry, arg) = common::boxed(|| {
            let buf = std::hint::black_box([1u8; 4096]);
            i32::from(buf[4095])
        });
        let a = flags::CloneArgs::from_legacy(
            flags::PTHREAD_FLAGS,
            0,
            common::addr(common::word(0)),
            0,
            0,
        );
        sys.clone(&a, flags::Via::Clone, ChildStart::Call { entry, arg })
            .unwrap();
        sys.exit(0)
    });
    assert_eq!(
        status,
        Some(1),
        "the child ran on its RLIMIT_STACK stack and exited last"
    );
}

#[test]
fn mmap_munmap_mprotect() {
    let sys = System::new();
    let anon = MAP_PRIVATE | MAP_ANONYMOUS;
    let p = sys
        .mmap(0, 10_000, PROT_READ | PROT_WRITE, anon, -1, 0)
        .unwrap();
    assert_eq!(p % PAGE_SIZE, 0);
    // From here caller memory is only the mapping's last two pages, so mprotect can tell
    // a mapped page from an unmapped one.
    let mut space = uk_syscall::user::AddressSpace::empty();
    space.add(p + PAGE_SIZE, 2 * PAGE_SIZE);
    sys.set_address_space(space);
    // SAFETY: three fresh pages mapped above.
    let bytes = unsafe { std::slice::from_raw_parts_mut(p as *mut u8, 3 * PAGE_SIZE) };
    assert!(bytes.iter().all(|&b| b == 0), "zero-filled");
    bytes.fill(0xAB);
    assert_eq!(sys.mprotect(p, PAGE_SIZE, PROT_READ), Ok(()));
    assert_eq!(
        sys.mprotect(p + 1, PAGE_SIZE, PROT_READ),
        Err(Errno::EINVAL)
    );
    assert_eq!(sys.mprotect(p, PAGE_SIZE, 0x40), Err(Errno::EINVAL));
    // MAP_FIXED inside our mapping zeroes it again; outside: ENOMEM.
    assert_eq!(
        sys.mmap(p + PAGE_SIZE, PAGE_SIZE, PROT_READ, anon | MAP_FIXED, -1, 0),
        Ok(p + PAGE_SIZE)
    );
    assert_eq!(bytes[PAGE_SIZE], 0);
    assert_eq!(bytes[0], 0xAB);
    assert_eq!(
        sys.mmap(p, PAGE_SIZE, PROT_READ, anon | MAP_FIXED_NOREPLACE, -1, 0),
        Err(Errno::EEXIST)
    );
    // Bad arguments.
    assert_eq!(sys.mmap(0, 0, PROT_READ, anon, -1, 0), Err(Errno::EINVAL));
    assert_eq!(
        sys.mmap(0, 10, PROT_READ, MAP_ANONYMOUS, -1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        sys.mmap(0, 10, PROT_READ, anon, -1, 100),
        Err(Errno::EINVAL)
    );
    assert_eq!(sys.mmap(0, 10, 0x80, anon, -1, 0), Err(Errno::EINVAL));
    assert_eq!(
        sys.mmap(0, 10, PROT_READ, MAP_PRIVATE, 1000, 0),
        Err(Errno::EBADF),
        "a file mapping of a descriptor that is not open"
    );
    assert_eq!(
        sys.mmap(0, usize::MAX, PROT_READ, anon, -1, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(sys.munmap(p + 1, 10), Err(Errno::EINVAL));
    assert_eq!(sys.munmap(p, 0), Err(Errno::EINVAL));
    // Partial unmaps, then the rest: the run goes back once.
    assert_eq!(sys.munmap(p, PAGE_SIZE), Ok(()));
    assert_eq!(
        sys.mprotect(p, PAGE_SIZE, PROT_READ),
        Err(Errno::ENOMEM),
        "unmapped page"
    );
    assert_eq!(
        sys.mprotect(p + PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ),
        Ok(())
    );
    assert_eq!(sys.munmap(p, 3 * PAGE_SIZE), Ok(()));
    assert_eq!(
        sys.munmap(p, 3 * PAGE_SIZE),
        Ok(()),
        "unmapping nothing is fine"
    );
}

#[test]
fn rlimit_data_bounds_mmap_and_brk() {
    let sys = System::new();
    sys.set_data_limit_hook(|_| {});
    sys.setrlimit(RLIMIT_DATA, lim(3 * PAGE_SIZE as u64, RLIM_INFINITY))
        .unwrap();
    let anon = MAP_PRIVATE | MAP_ANONYMOUS;
    let p = sys.mmap(0, 2 * PAGE_SIZE, PROT_READ, anon, -1, 0).unwrap();
    assert_eq!(
        sys.mmap(0, 2 * PAGE_SIZE, PROT_READ, anon, -1, 0),
        Err(Errno::ENOMEM)
    );
    let base = sys.brk(0);
    assert_ne!(base, 0);
    assert_eq!(sys.brk(base + PAGE_SIZE), base + PAGE_SIZE);
    assert_eq!(
        sys.brk(base + 2 * PAGE_SIZE),
        base + PAGE_SIZE,
        "over RLIMIT_DATA: old break"
    );
    sys.munmap(p, 2 * PAGE_SIZE).unwrap();
    assert_eq!(sys.brk(base + 2 * PAGE_SIZE), base + 2 * PAGE_SIZE);
}

#[test]
fn brk_grows_zeroed_and_refuses_beyond() {
    let sys = System::new();
    sys.set_brk_max(8 * PAGE_SIZE);
    let base = sys.brk(0);
    assert_eq!(sys.brk(0), base, "brk(0) reads the break");
    assert_eq!(sys.brk(base - 1), base, "below the start: unchanged");
    let top = sys.brk(base + 100);
    assert_eq!(top, base + 100);
    // SAFETY: 100 bytes of the break just granted.
    let bytes = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, 100) };
    assert!(bytes.iter().all(|&b| b == 0));
    bytes.fill(7);
    assert_eq!(sys.brk(base + 50), base + 50);
    assert_eq!(sys.brk(base + 100), base + 100);
    // SAFETY: as above.
    let bytes = unsafe { std::slice::from_raw_parts(base as *const u8, 100) };
    assert_eq!(bytes[49], 7);
    assert_eq!(bytes[50], 0, "re-grown memory is zero");
    assert_eq!(
        sys.brk(base + 9 * PAGE_SIZE),
        base + 100,
        "past the arena: unchanged"
    );
}

#[test]
fn clocks_and_sleep_on_the_scheduler_clock() {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    w.run(move || {
        clock.set(5_000_000_123);
        assert_eq!(
            sys.clock_gettime(CLOCK_MONOTONIC),
            Ok(Timespec {
                tv_sec: 5,
                tv_nsec: 123
            })
        );
        assert_eq!(
            sys.clock_gettime(CLOCK_REALTIME),
            Ok(Timespec {
                tv_sec: 5,
                tv_nsec: 123
            }),
            "epoch at boot"
        );
        sys.set_realtime_ns(1_000_000_000_000);
        assert_eq!(sys.clock_gettime(CLOCK_REALTIME).unwrap().tv_sec, 1000);
        assert_eq!(sys.clock_gettime(2), Err(Errno::EINVAL));
        assert_eq!(sys.clock_gettime(-1), Err(Errno::EINVAL));
        // Time comes from the host here: nanoseconds.
        assert_eq!(sys.clock_getres(CLOCK_MONOTONIC), Ok(Timespec::from_ns(1)));
        assert_eq!(sys.clock_getres(2), Err(Errno::EINVAL));
        // nanosleep honours seconds and nanoseconds.
        sys.nanosleep(Timespec {
            tv_sec: 1,
            tv_nsec: 5,
        })
        .unwrap();
        assert_eq!(sys.monotonic_ns(), 6_000_000_128);
        assert_eq!(
            sys.nanosleep(Timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000_000
            }),
            Err(Errno::EINVAL)
        );
        // clock_nanosleep absolute on both clocks.
        sys.clock_nanosleep(
            CLOCK_MONOTONIC,
            TIMER_ABSTIME,
            Timespec {
                tv_sec: 7,
                tv_nsec: 0,
            },
        )
        .unwrap();
        assert_eq!(sys.monotonic_ns(), 7_000_000_000);
        sys.clock_nanosleep(
            CLOCK_REALTIME,
            TIMER_ABSTIME,
            Timespec {
                tv_sec: 1002,
                tv_nsec: 0,
            },
        )
        .unwrap();
        assert_eq!(sys.clock_gettime(CLOCK_REALTIME).unwrap().tv_sec, 1002);
        sys.clock_nanosleep(
            CLOCK_MONOTONIC,
            0,
            Timespec {
                tv_sec: 0,
                tv_nsec: 10,
            },
        )
        .unwrap();
        assert_eq!(
            sys.clock_nanosleep(3, 0, Timespec::default()),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            sys.clock_nanosleep(99, 0, Timespec::default()),
            Err(Errno::EINVAL)
        );
        0
    });
}

#[test]
fn uname_and_getrandom() {
    let u = uname();
    assert_eq!(&u.sysname[..6], b"Linux\0");
    assert_eq!(&u.machine[..MACHINE.len()], MACHINE.as_bytes());
    assert!(u.version.contains(&0), "NUL-terminated");
    let sys = System::new();
    let mut buf = [0u8; 64];
    assert_eq!(sys.getrandom(buf.as_mut_ptr() as usize, 64, 0), Ok(64));
    assert!(buf.iter().any(|&b| b != 0));
    assert_eq!(sys.getrandom(0, 64, 0), Err(Errno::EFAULT));
    assert_eq!(sys.getrandom(0, 0, 0), Ok(0));
    assert_eq!(
        sys.getrandom(buf.as_mut_ptr() as usize, 64, 0x100),
        Err(Errno::EINVAL),
        "flags first"
    );
    assert_eq!(sys.getrandom(0, 64, 0x100), Err(Errno::EINVAL));
    assert_eq!(fork(), Err(Errno::ENOSYS));
    assert_eq!(vfork(), Err(Errno::ENOSYS));
    assert_eq!(execve(), Err(Errno::ENOSYS));
}

#[test]
fn the_clock_resolution_is_one_tick_of_the_counter() {
    struct Counter(u64);
    impl uk_hal::Clock for Counter {
        fn monotonic_ns(&self) -> u64 {
            0
        }
        fn cycles(&self) -> u64 {
            0
        }
        fn cycles_per_second(&self) -> u64 {
            self.0
        }
    }
    let sys = System::new();
    // QEMU virt's generic timer: 62.5 MHz, 16 ns a tick.
    sys.set_clock(Some(Box::leak(Box::new(Counter(62_500_000)))));
    assert_eq!(sys.clock_getres(CLOCK_MONOTONIC), Ok(Timespec::from_ns(16)));
    assert_eq!(sys.clock_getres(CLOCK_REALTIME), Ok(Timespec::from_ns(16)));
    // A counter of 3 GHz still reports a whole nanosecond, 24 MHz rounds up.
    sys.set_clock(Some(Box::leak(Box::new(Counter(3_000_000_000)))));
    assert_eq!(sys.clock_getres(CLOCK_MONOTONIC), Ok(Timespec::from_ns(1)));
    sys.set_clock(Some(Box::leak(Box::new(Counter(24_000_000)))));
    assert_eq!(sys.clock_getres(CLOCK_BOOTTIME), Ok(Timespec::from_ns(42)));
    assert_eq!(sys.clock_getres(12), Err(Errno::EINVAL));
}

#[test]
fn madvise_dontneed_zeroes_mapped_memory_and_refuses_the_rest() {
    let sys = System::new();
    let anon = MAP_PRIVATE | MAP_ANONYMOUS;
    let m = sys
        .mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, anon, -1, 0)
        .unwrap();
    // Caller memory: the mapping and one page of a buffer that is not a mapping.
    let other: &'static mut [u8] = Box::leak(vec![0x55u8; 3 * PAGE_SIZE].into_boxed_slice());
    let other_page = (other.as_ptr() as usize).next_multiple_of(PAGE_SIZE);
    let mut space = uk_syscall::user::AddressSpace::empty();
    space.add(m, 2 * PAGE_SIZE);
    space.add(other_page, PAGE_SIZE);
    sys.set_address_space(space);
    // SAFETY: the two pages mapped above.
    let bytes = unsafe { std::slice::from_raw_parts_mut(m as *mut u8, 2 * PAGE_SIZE) };
    bytes.fill(0x77);
    assert_eq!(
        sys.madvise(m + 1, PAGE_SIZE, MADV_DONTNEED),
        Err(Errno::EINVAL)
    );
    assert_eq!(sys.madvise(m, PAGE_SIZE, 5), Err(Errno::EINVAL));
    assert_eq!(sys.madvise(m, PAGE_SIZE, 3), Ok(()));
    assert!(bytes.iter().all(|&b| b == 0x77), "a hint changes nothing");
    // One byte names its whole page.
    assert_eq!(sys.madvise(m + PAGE_SIZE, 1, MADV_DONTNEED), Ok(()));
    assert!(bytes[PAGE_SIZE..].iter().all(|&b| b == 0));
    assert!(bytes[..PAGE_SIZE].iter().all(|&b| b == 0x77));
    // Caller memory that is not a mapping: hints pass, MADV_DONTNEED is refused.
    assert_eq!(
        sys.madvise(other_page, PAGE_SIZE, MADV_DONTNEED),
        Err(Errno::EINVAL)
    );
    assert_eq!(sys.madvise(other_page, PAGE_SIZE, 0), Ok(()));
    assert!(other.iter().all(|&b| b == 0x55));
    // Outside caller memory: ENOMEM for any advice.
    assert_eq!(
        sys.madvise(other_page + PAGE_SIZE, PAGE_SIZE, 0),
        Err(Errno::ENOMEM)
    );
    // Unmapped (though still caller memory here): no longer zeroed.
    assert_eq!(sys.munmap(m, 2 * PAGE_SIZE), Ok(()));
    assert_eq!(sys.madvise(m, PAGE_SIZE, MADV_DONTNEED), Err(Errno::EINVAL));
}

#[test]
fn mremap_shrinks_in_place_and_moves_to_grow() {
    let sys = System::new();
    let anon = MAP_PRIVATE | MAP_ANONYMOUS;
    let p = sys
        .mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, anon, -1, 0)
        .unwrap();
    // SAFETY: three fresh pages mapped above.
    unsafe { std::slice::from_raw_parts_mut(p as *mut u8, 3 * PAGE_SIZE) }
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    // Refusals change nothing.
    for (old, old_len, new_len, flags, want) in [
        (p + 1, PAGE_SIZE, PAGE_SIZE, 0, Errno::EINVAL),
        (p, 0, PAGE_SIZE, MREMAP_MAYMOVE, Errno::EINVAL),
        (p, PAGE_SIZE, 0, MREMAP_MAYMOVE, Errno::EINVAL),
        (p, PAGE_SIZE, usize::MAX, MREMAP_MAYMOVE, Errno::EINVAL),
        (p, PAGE_SIZE, 2 * PAGE_SIZE, 8, Errno::EINVAL),
        (p, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_FIXED, Errno::EINVAL),
        (
            p,
            PAGE_SIZE,
            2 * PAGE_SIZE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            Errno::EINVAL,
        ),
        (
            p,
            PAGE_SIZE,
            2 * PAGE_SIZE,
            MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
            Errno::EINVAL,
        ),
        (
            p,
            4 * PAGE_SIZE,
            5 * PAGE_SIZE,
            MREMAP_MAYMOVE,
            Errno::EFAULT,
        ),
        (p, 3 * PAGE_SIZE, 4 * PAGE_SIZE, 0, Errno::ENOMEM),
    ] {
        assert_eq!(
            sys.mremap(old, old_len, new_len, flags, 0),
            Err(want),
            "{old_len} {new_len} {flags}"
        );
        assert_eq!(
            sys.mprotect(p, 3 * PAGE_SIZE, PROT_READ),
            Ok(()),
            "still mapped"
        );
    }
    // Shrinking keeps the address and unmaps the tail.
    assert_eq!(sys.mremap(p, 3 * PAGE_SIZE, 2 * PAGE_SIZE, 0, 0), Ok(p));
    assert_eq!(
        sys.mremap(p + 2 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 0, 0),
        Err(Errno::EFAULT),
        "the tail is unmapped"
    );
    assert_eq!(
        sys.mremap(p, 3 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT),
        "the tail is gone"
    );
    // Growing moves: the contents come along, the rest is zero, the old range is gone.
    let q = sys
        .mremap(p, 2 * PAGE_SIZE - 100, 5 * PAGE_SIZE, MREMAP_MAYMOVE, 0)
        .unwrap();
    assert_ne!(q, p);
    // SAFETY: five pages mapped by the mremap.
    let moved = unsafe { std::slice::from_raw_parts(q as *const u8, 5 * PAGE_SIZE) };
    assert!(
        (0..2 * PAGE_SIZE).all(|i| moved[i] == i as u8),
        "contents kept"
    );
    assert!(
        moved[2 * PAGE_SIZE..].iter().all(|&b| b == 0),
        "growth zeroed"
    );
    assert_eq!(
        sys.mremap(p, PAGE_SIZE, PAGE_SIZE, 0, 0),
        Err(Errno::EFAULT),
        "the old range is unmapped"
    );
    assert_eq!(sys.mremap(q, 5 * PAGE_SIZE, 5 * PAGE_SIZE, 0, 0), Ok(q));
    // The break is not a mapping of this layer's mmap.
    let base = sys.brk(0);
    assert_eq!(sys.brk(base + PAGE_SIZE), base + PAGE_SIZE);
    assert_eq!(
        sys.mremap(base, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(sys.munmap(q, 5 * PAGE_SIZE), Ok(()));
}

#[test]
fn mremap_growth_counts_against_rlimit_data() {
    let sys = System::new();
    sys.set_data_limit_hook(|_| {});
    sys.setrlimit(RLIMIT_DATA, lim(4 * PAGE_SIZE as u64, RLIM_INFINITY))
        .unwrap();
    let anon = MAP_PRIVATE | MAP_ANONYMOUS;
    let p = sys.mmap(0, 2 * PAGE_SIZE, PROT_READ, anon, -1, 0).unwrap();
    assert_eq!(
        sys.mremap(p, 2 * PAGE_SIZE, 3 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
        Err(Errno::ENOMEM),
        "old and new together pass the limit"
    );
    assert_eq!(sys.mremap(p, 2 * PAGE_SIZE, 2 * PAGE_SIZE, 0, 0), Ok(p));
    sys.munmap(p, 2 * PAGE_SIZE).unwrap();
    // One page may grow to three: old and new together make the limit exactly.
    let p = sys.mmap(0, PAGE_SIZE, PROT_READ, anon, -1, 0).unwrap();
    let q = sys
        .mremap(p, PAGE_SIZE, 2 * PAGE_SIZE + 1, MREMAP_MAYMOVE, 0)
        .unwrap();
    assert_eq!(
        sys.mremap(q, 3 * PAGE_SIZE, 3 * PAGE_SIZE, 0, 0),
        Ok(q),
        "2 pages + 1 byte is 3 pages"
    );
}

/// A page source that hands out nothing and says how much memory it has.
struct Measured;

impl PageSource for Measured {
    fn alloc_pages(&self, _pages: usize) -> Option<core::ptr::NonNull<u8>> {
        None
    }
    unsafe fn free_pages(&self, _ptr: core::ptr::NonNull<u8>, _pages: usize) {}
    fn memory(&self) -> Option<(usize, usize)> {
        Some((64 << 20, 10 << 20))
    }
}

#[test]
fn sysinfo_reports_the_page_sources_memory_the_uptime_and_the_threads() {
    let sys = System::new();
    // The hosted default (the global allocator) cannot tell: zeros.
    let info = sys.sysinfo();
    assert_eq!((info.totalram, info.freeram, info.mem_unit), (0, 0, 1));
    sys.set_page_source(&Measured);
    let info = sys.sysinfo();
    assert_eq!(
        (info.totalram, info.freeram, info.mem_unit),
        (64 << 20, 10 << 20, 1)
    );
    assert_eq!(info.uptime, (sys.monotonic_ns() / 1_000_000_000) as i64);
    assert_eq!(usize::from(info.procs), sys.thread_count());
    assert_eq!((info.totalswap, info.sharedram, info.loads), (0, 0, [0; 3]));
}

#[test]
fn sysinfo_bytes_are_linux_struct_sysinfo() {
    assert_eq!(SYSINFO_SIZE, core::mem::size_of::<libc::sysinfo>());
    let info = Sysinfo {
        uptime: 1,
        loads: [2, 3, 4],
        totalram: 5,
        freeram: 6,
        sharedram: 7,
        bufferram: 8,
        totalswap: 9,
        freeswap: 10,
        procs: 11,
        totalhigh: 12,
        freehigh: 13,
        mem_unit: 14,
    };
    let bytes = info.to_bytes();
    // SAFETY: `bytes` holds SYSINFO_SIZE bytes, the size of `libc::sysinfo`, a plain C
    // struct of integers (any bit pattern is a value); the read is unaligned.
    let c: libc::sysinfo = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
    assert_eq!(
        (
            c.uptime,
            c.loads,
            c.totalram,
            c.freeram,
            c.sharedram,
            c.bufferram
        ),
        (1, [2, 3, 4], 5, 6, 7, 8)
    );
    assert_eq!(
        (
            c.totalswap,
            c.freeswap,
            c.procs,
            c.totalhigh,
            c.freehigh,
            c.mem_unit
        ),
        (9, 10, 11, 12, 13, 14)
    );
}
