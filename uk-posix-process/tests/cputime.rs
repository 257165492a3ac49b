//! CPU time: the CPU-time clocks, `getrusage` and `times` report what the scheduler
//! counted for each thread (on the test's fake clock, which only a thread's own work or
//! the idle hook moves), a process's total keeps its ended threads, and bad ids are refused;
//! `getrusage` also counts context switches and the peak of the mapped anonymous memory.

mod common;

use common::{spawn, world, world_counting_cpu_time};
use uk_posix_process::cputime::{
    CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, RUSAGE_CHILDREN, RUSAGE_SELF, RUSAGE_THREAD,
};
use uk_posix_process::itimer::Timeval;
use uk_posix_process::{Errno, Rusage, Timespec};

fn ms(n: u64) -> u64 {
    n * 1_000_000
}

/// Linux's dynamic clock ids.
fn process_clock(pid: i32) -> i32 {
    (!pid << 3) | 2
}
fn thread_clock(tid: i32) -> i32 {
    (!tid << 3) | 6
}

#[test]
fn threads_and_processes_are_charged_their_own_running_time() {
    let w = world_counting_cpu_time();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        clock.advance(ms(30));
        let me = sys.gettid().unwrap();
        let worker = {
            let clock = clock.clone();
            spawn(sys, move || {
                clock.advance(ms(200));
                sys.sched_yield();
                clock.advance(ms(100));
                0
            })
        };
        // The worker runs 200 ms, then this thread waits 1 s (not its own time), then
        // the worker finishes its last 100 ms while this thread is runnable.
        sys.sched_yield();
        let thread = sys.clock_gettime(CLOCK_THREAD_CPUTIME_ID).unwrap();
        assert_eq!(thread, Timespec::from_ns(ms(30)));
        assert_eq!(
            sys.clock_gettime(thread_clock(worker)).unwrap(),
            Timespec::from_ns(ms(200))
        );
        assert_eq!(sys.clock_gettime(thread_clock(me)).unwrap(), thread);
        assert_eq!(sys.clock_gettime(thread_clock(0)).unwrap(), thread);
        assert_eq!(
            sys.clock_gettime(CLOCK_PROCESS_CPUTIME_ID).unwrap(),
            Timespec::from_ns(ms(230))
        );
        sys.nanosleep(Timespec::from_ns(ms(1000))).unwrap();
        // The worker has ended meanwhile: the process keeps its 300 ms.
        assert!(!sys.tid_exists(worker));
        assert_eq!(
            sys.clock_gettime(thread_clock(worker)),
            Err(Errno::EINVAL),
            "an ended thread has no clock"
        );
        clock.advance(ms(5));
        let pid = sys.getpid().unwrap();
        let total = Timespec::from_ns(ms(335));
        assert_eq!(sys.clock_gettime(CLOCK_PROCESS_CPUTIME_ID).unwrap(), total);
        assert_eq!(sys.clock_gettime(process_clock(pid)).unwrap(), total);
        assert_eq!(sys.clock_gettime(process_clock(0)).unwrap(), total);

        let usage = sys.getrusage(RUSAGE_SELF).unwrap();
        assert_eq!(
            usage.ru_utime,
            Timeval {
                tv_sec: 0,
                tv_usec: 335_000
            }
        );
        assert_eq!(usage.ru_stime, Timeval::default());
        let mine = sys.getrusage(RUSAGE_THREAD).unwrap();
        assert_eq!(
            mine.ru_utime,
            Timeval {
                tv_sec: 0,
                tv_usec: 35_000
            }
        );
        assert_eq!(sys.getrusage(RUSAGE_CHILDREN).unwrap(), Rusage::default());

        let (tms, now) = sys.times().unwrap();
        assert_eq!(tms.tms_utime, 33, "335 ms in 10 ms ticks");
        assert_eq!((tms.tms_stime, tms.tms_cutime, tms.tms_cstime), (0, 0, 0));
        assert_eq!(now, (sys.monotonic_ns() / 10_000_000) as i64);
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn bad_clock_ids_and_whos_are_refused() {
    let w = world_counting_cpu_time();
    let sys = w.sys;
    let status = w.run(move || {
        let pid = sys.getpid().unwrap();
        // Type 3 is no clock; ids of nobody; a thread clock naming a process id of a thread
        // that does not exist.
        for bad in [
            (!pid << 3) | 3,
            process_clock(4000),
            thread_clock(4000),
            i32::MIN,
            -1,
        ] {
            assert_eq!(sys.clock_gettime(bad), Err(Errno::EINVAL), "{bad:#x}");
            assert_eq!(sys.clock_getres(bad), Err(Errno::EINVAL), "{bad:#x}");
        }
        for who in [2, -2, 7, i32::MIN] {
            assert_eq!(sys.getrusage(who), Err(Errno::EINVAL), "{who}");
        }
        assert!(sys.clock_getres(CLOCK_THREAD_CPUTIME_ID).is_ok());
        assert!(sys.clock_getres(process_clock(pid)).is_ok());
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn a_thread_clock_names_only_threads_of_the_callers_process() {
    let w = world_counting_cpu_time();
    let sys = w.sys;
    let status = w.run(move || {
        let (entry, arg) = common::boxed(move || {
            sys.sched_yield();
            0
        });
        let other = sys.spawn_process("other", entry, arg).unwrap();
        assert_eq!(sys.clock_gettime(thread_clock(other)), Err(Errno::EINVAL));
        // Its process clock is readable (Linux allows reading another process's).
        assert!(sys.clock_gettime(process_clock(other)).is_ok());
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn without_counting_the_cpu_clocks_are_refused_not_invented() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        assert_eq!(
            sys.clock_gettime(CLOCK_THREAD_CPUTIME_ID),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.clock_gettime(CLOCK_PROCESS_CPUTIME_ID),
            Err(Errno::EINVAL)
        );
        assert_eq!(sys.getrusage(RUSAGE_SELF), Err(Errno::EINVAL));
        assert_eq!(sys.times().map(|_| ()), Err(Errno::EINVAL));
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn getrusage_counts_context_switches_and_the_peak_of_mapped_memory() {
    use uk_posix_process::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    let w = world_counting_cpu_time();
    let sys = w.sys;
    let status = w.run(move || {
        let switches = |who| {
            let u = sys.getrusage(who).unwrap();
            (u.ru_nvcsw, u.ru_nivcsw)
        };
        assert_eq!(switches(RUSAGE_THREAD), (0, 0));
        let worker = spawn(sys, move || {
            // Yields to the main thread (involuntary), then sleeps (voluntary).
            sys.sched_yield();
            sys.nanosleep(Timespec::from_ns(ms(10))).unwrap();
            0
        });
        // To the worker and back: one involuntary switch each.
        sys.sched_yield();
        assert_eq!(switches(RUSAGE_THREAD), (0, 1));
        assert_eq!(switches(RUSAGE_SELF), (0, 2));
        // A sleep blocks: voluntary. The worker ends meanwhile; the process keeps its
        // switches.
        sys.nanosleep(Timespec::from_ns(ms(50))).unwrap();
        assert!(!sys.tid_exists(worker));
        assert_eq!(switches(RUSAGE_THREAD), (1, 1));
        assert_eq!(switches(RUSAGE_SELF), (2, 2));
        // A yield with nothing else to run is no switch.
        sys.sched_yield();
        assert_eq!(switches(RUSAGE_THREAD), (1, 1));

        // ru_maxrss: the peak of the anonymous memory mapped, in KiB, for the thread too.
        let maxrss = |who| sys.getrusage(who).unwrap().ru_maxrss;
        assert_eq!(maxrss(RUSAGE_SELF), 0);
        let map = |len| {
            sys.mmap(
                0,
                len,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )
            .unwrap()
        };
        let mib = map(1 << 20);
        assert_eq!(maxrss(RUSAGE_SELF), 1024);
        sys.munmap(mib, 1 << 20).unwrap();
        assert_eq!(maxrss(RUSAGE_SELF), 1024, "a peak stays");
        let half = map(512 << 10);
        assert_eq!(maxrss(RUSAGE_SELF), 1024);
        let more = map(768 << 10);
        assert_eq!(maxrss(RUSAGE_SELF), 1280);
        assert_eq!(maxrss(RUSAGE_THREAD), 1280);
        sys.munmap(half, 512 << 10).unwrap();
        sys.munmap(more, 768 << 10).unwrap();
        // The break counts as well: 512 KiB mapped and 1 MiB of break.
        let kept = map(512 << 10);
        let base = sys.brk(0);
        assert_eq!(sys.brk(base + (1 << 20)), base + (1 << 20));
        assert_eq!(maxrss(RUSAGE_SELF), 1536);
        sys.brk(base);
        sys.munmap(kept, 512 << 10).unwrap();
        assert_eq!(maxrss(RUSAGE_SELF), 1536);
        assert_eq!(sys.getrusage(RUSAGE_CHILDREN).unwrap(), Rusage::default());
        0
    });
    assert_eq!(status, Some(0));
}
