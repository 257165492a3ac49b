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
/// `getrusage`: the calling process's waited-for children (none: there is no `fork`).
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

/// Linux's `struct rusage` (144 bytes on 64-bit targets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rusage {
    /// CPU time (all of it: there is no separate kernel mode).
    pub ru_utime: Timeval,
    /// Time in the kernel: always 0.
    pub ru_stime: Timeval,
    /// Fields Linux keeps and this layer does not count, 0 (`ru_maxrss`, `ru_ixrss`,
    /// `ru_idrss`, `ru_isrss`, `ru_minflt`, `ru_majflt`, `ru_nswap`, `ru_inblock`,
    /// `ru_oublock`, `ru_msgsnd`, `ru_msgrcv`, `ru_nsignals`, `ru_nvcsw`, `ru_nivcsw`).
    pub uncounted: [i64; 14],
}

/// Linux's `struct tms`, in clock ticks ([`CLOCK_TICKS_PER_SEC`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tms {
    /// The process's CPU time.
    pub tms_utime: i64,
    /// Time in the kernel: always 0.
    pub tms_stime: i64,
    /// Waited-for children's CPU time: always 0 (no `fork`).
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

fn ticks(ns: u64) -> i64 {
    (ns / (NSEC_PER_SEC / CLOCK_TICKS_PER_SEC)) as i64
}

impl System {
    /// The reading of a CPU-time clock (see the module documentation).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an id naming no process or thread, a thread of another process, an
    /// invalid clock type, or a thread whose scheduler does not count CPU time.
    pub(crate) fn cpu_clock_gettime(&self, clock: CpuClock) -> Result<Timespec, Errno> {
        self.cpu_time_ns(clock).map(Timespec::from_ns)
    }

    /// getrusage(2) without the pointer: the CPU time of the caller's process
    /// ([`RUSAGE_SELF`]) or thread ([`RUSAGE_THREAD`]), or nothing for
    /// [`RUSAGE_CHILDREN`] (no process here has waited-for children).
    ///
    /// # Errors
    ///
    /// `EINVAL` for another `who`, or when the caller's scheduler does not count CPU time.
    pub fn getrusage(&self, who: i32) -> Result<Rusage, Errno> {
        let ns = match who {
            RUSAGE_SELF => self.cpu_time_ns(CpuClock::Process(0))?,
            RUSAGE_THREAD => self.cpu_time_ns(CpuClock::Thread(0))?,
            RUSAGE_CHILDREN => 0,
            _ => return Err(Errno::EINVAL),
        };
        Ok(Rusage {
            ru_utime: timeval(ns),
            ..Rusage::default()
        })
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
