//! CPU time: the CPU-time clocks of `clock_gettime`, `getrusage` and `times`.
//!
//! A thread's CPU time is what its scheduler counted for it
//! ([`uk_sched::Thread::cpu_time_ns`]): the time from each switch into the thread to the next
//! switch away, which a scheduler keeps when it is built
//! [`with_cpu_time`](uk_sched::RoundRobin::with_cpu_time). A process's is the sum over its
//! live threads plus what its ended threads had used when they exited. There is no user and
//! kernel mode in a unikernel (a system call is a function call), so all of it is reported
//! as user time and the system time is 0; the three Linux clock types (`PROF`, `VIRT`,
//! `SCHED`) therefore read the same. The boot context, which no scheduler runs, is charged
//! the time since boot.
//!
//! `getrusage` reports, besides the CPU time, what this layer can count honestly:
//!
//! - `ru_nvcsw` and `ru_nivcsw`, the thread's (or the process's threads', ended ones
//!   included) switches away as the scheduler counted them
//!   ([`uk_sched::Thread::context_switches`], kept by the same
//!   [`with_cpu_time`](uk_sched::RoundRobin::with_cpu_time) scheduler that counts CPU time,
//!   at no cost otherwise): voluntary when the thread blocked (a futex wait, a sleep, a
//!   wait for a signal or for I/O readiness), involuntary when it stayed runnable (a
//!   `sched_yield` that let another thread run, which Linux counts so too, or a
//!   preemption). A yield with nothing else to run is no switch.
//! - `ru_maxrss`, in KiB: the most anonymous memory the layer had mapped at once
//!   ([`System::data_peak`]: `mmap` plus the break, where a libc's `malloc` gets its
//!   memory; pages are zeroed when mapped, so mapped is resident). There is one address
//!   space: the figure belongs to the image's mappings, not to one process, and the image
//!   itself, thread stacks and the kernel's own heap are not in it. `RUSAGE_THREAD`
//!   reports the same figure, as Linux reports the process's for a thread.
//!
//! The rest is 0: `ru_stime` (no kernel mode, above), `ru_minflt` and `ru_majflt` (there
//! are no page faults: pages are there when mapped), `ru_inblock` and `ru_oublock` (not
//! counted), and `ru_ixrss`, `ru_idrss`, `ru_isrss`, `ru_nswap`, `ru_msgsnd`,
//! `ru_msgrcv` and `ru_nsignals`, which Linux does not maintain either.
//!
//! `RUSAGE_CHILDREN`, `times`' `tms_cutime` and the `rusage` of `wait4`/`waitid` count the
//! children a wait reaped (see [`crate::system::wait`]): each one's own figures and those
//! of the children it had reaped itself, as on Linux. Their `ru_maxrss` is the image's
//! figure when the child was reaped, the one figure there is.
//!
//! Clock ids: `CLOCK_PROCESS_CPUTIME_ID` and `CLOCK_THREAD_CPUTIME_ID` for the caller, and
//! Linux's dynamic ids for another process or thread (`clock_getcpuclockid`,
//! `pthread_getcpuclockid`): `(!id << 3) | type`, with bit 2 set for a thread. A thread clock
//! only names threads of the caller's own process, as on Linux.

use uk_syscall::Errno;

use crate::ids::{Pid, Tid};
use crate::itimer::Timeval;
use crate::system::System;
use crate::time::{NSEC_PER_SEC, Timespec};

/// The calling process's CPU time.
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
/// The calling thread's CPU time.
pub const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// `getrusage`: the calling process.
pub const RUSAGE_SELF: i32 = 0;
/// `getrusage`: the calling process's waited-for children (and theirs).
pub const RUSAGE_CHILDREN: i32 = -1;
/// `getrusage`: the calling thread.
pub const RUSAGE_THREAD: i32 = 1;

/// Clock ticks per second of `times` (Linux's `USER_HZ`, what `sysconf(_SC_CLK_TCK)` says).
pub const CLOCK_TICKS_PER_SEC: u64 = 100;

/// A CPU-time clock, decoded from a clock id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuClock {
    /// A process (0: the caller's).
    Process(Pid),
    /// A thread of the caller's process (0: the caller).
    Thread(Tid),
}

impl CpuClock {
    /// The CPU-time clock `clock` names; `None` for a clock that is not one (the wall and
    /// monotonic clocks, unknown non-negative ids).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a dynamic id of the invalid type 3, or naming an id out of range.
    pub(crate) fn decode(clock: i32) -> Option<Result<Self, Errno>> {
        match clock {
            CLOCK_PROCESS_CPUTIME_ID => Some(Ok(Self::Process(0))),
            CLOCK_THREAD_CPUTIME_ID => Some(Ok(Self::Thread(0))),
            c if c < 0 => Some(Self::decode_dynamic(c)),
            _ => None,
        }
    }

    fn decode_dynamic(clock: i32) -> Result<Self, Errno> {
        const TYPE_MASK: i32 = 3;
        const PER_THREAD: i32 = 4;
        if clock & TYPE_MASK == TYPE_MASK {
            return Err(Errno::EINVAL);
        }
        let id = Pid::try_from(!(clock >> 3)).map_err(|_| Errno::EINVAL)?;
        Ok(if clock & PER_THREAD != 0 {
            Self::Thread(id)
        } else {
            Self::Process(id)
        })
    }
}

/// Linux's `struct rusage` (144 bytes on 64-bit targets). See the module documentation for
/// what each field means here; the ones not counted are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rusage {
    /// CPU time (all of it: there is no separate kernel mode).
    pub ru_utime: Timeval,
    /// Time in the kernel: always 0.
    pub ru_stime: Timeval,
    /// The most anonymous memory mapped at once (`mmap` and the break), in KiB.
    pub ru_maxrss: i64,
    /// Shared text size: 0 (Linux does not maintain it either).
    pub ru_ixrss: i64,
    /// Unshared data size: 0 (not maintained by Linux).
    pub ru_idrss: i64,
    /// Unshared stack size: 0 (not maintained by Linux).
    pub ru_isrss: i64,
    /// Minor page faults: 0 (pages are present when mapped).
    pub ru_minflt: i64,
    /// Major page faults: 0 (no paging).
    pub ru_majflt: i64,
    /// Swaps: 0 (not maintained by Linux).
    pub ru_nswap: i64,
    /// Block input operations: 0 (not counted).
    pub ru_inblock: i64,
    /// Block output operations: 0 (not counted).
    pub ru_oublock: i64,
    /// IPC messages sent: 0 (not maintained by Linux).
    pub ru_msgsnd: i64,
    /// IPC messages received: 0 (not maintained by Linux).
    pub ru_msgrcv: i64,
    /// Signals received: 0 (not maintained by Linux).
    pub ru_nsignals: i64,
    /// Voluntary context switches (the thread blocked).
    pub ru_nvcsw: i64,
    /// Involuntary context switches (the thread stayed runnable: yielded or preempted).
    pub ru_nivcsw: i64,
}

/// Linux's `struct tms`, in clock ticks ([`CLOCK_TICKS_PER_SEC`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tms {
    /// The process's CPU time.
    pub tms_utime: i64,
    /// Time in the kernel: always 0.
    pub tms_stime: i64,
    /// Waited-for children's CPU time (and that of their own waited-for children).
    pub tms_cutime: i64,
    /// Waited-for children's kernel time: always 0.
    pub tms_cstime: i64,
}

/// `ns` as a timeval, truncated to whole microseconds (as Linux reports `ru_utime`).
fn timeval(ns: u64) -> Timeval {
    Timeval {
        tv_sec: (ns / NSEC_PER_SEC) as i64,
        tv_usec: (ns % NSEC_PER_SEC / 1000) as i64,
    }
}

/// `ns` in clock ticks ([`CLOCK_TICKS_PER_SEC`]), truncated.
pub(crate) fn ticks(ns: u64) -> i64 {
    (ns / (NSEC_PER_SEC / CLOCK_TICKS_PER_SEC)) as i64
}

/// A timeval in clock ticks, truncated.
pub(crate) fn timeval_ticks(tv: &Timeval) -> i64 {
    let per_tick_us = (1_000_000 / CLOCK_TICKS_PER_SEC) as i64;
    tv.tv_sec * CLOCK_TICKS_PER_SEC as i64 + tv.tv_usec / per_tick_us
}

impl Rusage {
    /// The figures of `used`, with `maxrss_kib` as `ru_maxrss` (the rest 0).
    pub(crate) fn of(used: crate::system::Usage, maxrss_kib: i64) -> Rusage {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Rusage {
            ru_utime: timeval(used.cpu_ns),
            ru_maxrss: maxrss_kib,
            ru_nvcsw: count(used.switches.voluntary),
            ru_nivcsw: count(used.switches.involuntary),
            ..Rusage::default()
        }
    }
}

impl System {
    /// The most anonymous memory mapped at once, in KiB (`ru_maxrss`).
    pub(crate) fn data_peak_kib(&self) -> i64 {
        i64::try_from(self.data_peak() / 1024).unwrap_or(i64::MAX)
    }

    /// The reading of a CPU-time clock (see the module documentation).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an id naming no process or thread, a thread of another process, an
    /// invalid clock type, or a thread whose scheduler does not count CPU time.
    pub(crate) fn cpu_clock_gettime(&self, clock: CpuClock) -> Result<Timespec, Errno> {
        self.cpu_time_ns(clock).map(Timespec::from_ns)
    }

    /// getrusage(2) without the pointer: the CPU time and context switches of the caller's
    /// process ([`RUSAGE_SELF`], its ended threads included) or thread
    /// ([`RUSAGE_THREAD`]), with the peak of the mapped anonymous memory for both; or
    /// those of its waited-for children ([`RUSAGE_CHILDREN`]). See the module
    /// documentation.
    ///
    /// # Errors
    ///
    /// `EINVAL` for another `who`, or when the caller's scheduler does not count CPU time.
    pub fn getrusage(&self, who: i32) -> Result<Rusage, Errno> {
        let used = match who {
            RUSAGE_SELF => self.usage(CpuClock::Process(0))?,
            RUSAGE_THREAD => self.usage(CpuClock::Thread(0))?,
            RUSAGE_CHILDREN => {
                let children = self.children_usage()?;
                // No reaped child: nothing to report, the peak included.
                let peak = if children == crate::system::Usage::default() {
                    0
                } else {
                    self.data_peak_kib()
                };
                return Ok(Rusage::of(children, peak));
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok(Rusage::of(used, self.data_peak_kib()))
    }

    /// times(2) without the pointer: the process's CPU time in clock ticks, and the
    /// return value, the monotonic clock in ticks (Linux counts from shortly before boot;
    /// only differences mean anything).
    ///
    /// # Errors
    ///
    /// As [`System::getrusage`].
    pub fn times(&self) -> Result<(Tms, i64), Errno> {
        let used = self.cpu_time_ns(CpuClock::Process(0))?;
        let tms = Tms {
            tms_utime: ticks(used),
            tms_cutime: ticks(self.children_usage()?.cpu_ns),
            ..Tms::default()
        };
        Ok((tms, ticks(self.monotonic_ns())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ids_decode_as_linux_encodes_them() {
        // Linux: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) and MAKE_THREAD_CPUCLOCK.
        let process = |pid: i32, ty: i32| (!pid << 3) | ty;
        let thread = |tid: i32, ty: i32| (!tid << 3) | 4 | ty;
        assert_eq!(
            CpuClock::decode(CLOCK_PROCESS_CPUTIME_ID),
            Some(Ok(CpuClock::Process(0)))
        );
        assert_eq!(
            CpuClock::decode(CLOCK_THREAD_CPUTIME_ID),
            Some(Ok(CpuClock::Thread(0)))
        );
        for ty in 0..3 {
            assert_eq!(
                CpuClock::decode(process(7, ty)),
                Some(Ok(CpuClock::Process(7)))
            );
            assert_eq!(
                CpuClock::decode(thread(42, ty)),
                Some(Ok(CpuClock::Thread(42)))
            );
        }
        assert_eq!(CpuClock::decode(process(7, 3)), Some(Err(Errno::EINVAL)));
        assert_eq!(CpuClock::decode(thread(7, 3)), Some(Err(Errno::EINVAL)));
        for other in [0, 1, 4, 5, 6, 7, 11, i32::MAX] {
            assert_eq!(CpuClock::decode(other), None, "{other}");
        }
    }

    #[test]
    fn layouts_are_linux_ones() {
        assert_eq!(core::mem::size_of::<Rusage>(), 144);
        assert_eq!(core::mem::size_of::<Tms>(), 32);
        assert_eq!(
            timeval(1_234_567_891),
            Timeval {
                tv_sec: 1,
                tv_usec: 234_567
            }
        );
        assert_eq!(ticks(1_234_567_891), 123);
    }
}
