//! Resource limits: prlimit64, getrlimit, setrlimit.
//!
//! One set of limits for the image (there is one address space). Three limits act:
//! `RLIMIT_DATA` (the allocator's byte limit, and mmap/brk), `RLIMIT_STACK` (the stack of a
//! new thread that brings none) and `RLIMIT_NOFILE` (the fd-table size the VFS reads with
//! [`crate::nofile_limit`]). The others are stored and reported.

use uk_syscall::Errno;

use crate::ids::Pid;
use crate::system::System;

/// "No limit".
pub const RLIM_INFINITY: u64 = u64::MAX;
/// Number of resources Linux defines.
pub const RLIM_NLIMITS: usize = 16;
/// Largest `RLIMIT_NOFILE` (Linux's default `nr_open`).
pub const NR_OPEN: u64 = 1 << 20;

/// CPU time in seconds.
pub const RLIMIT_CPU: u32 = 0;
/// Largest file.
pub const RLIMIT_FSIZE: u32 = 1;
/// Data segment: heap, brk and anonymous mappings.
pub const RLIMIT_DATA: u32 = 2;
/// Stack size of new threads.
pub const RLIMIT_STACK: u32 = 3;
/// Core file size.
pub const RLIMIT_CORE: u32 = 4;
/// Open files: the size of the fd table.
pub const RLIMIT_NOFILE: u32 = 7;
/// Address space.
pub const RLIMIT_AS: u32 = 9;

/// Linux's `struct rlimit` (64-bit fields).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit (what is enforced).
    pub rlim_cur: u64,
    /// Hard limit (ceiling of the soft one).
    pub rlim_max: u64,
}

impl From<[u64; 2]> for Rlimit {
    /// The fields in ABI order, as read from a caller (`[rlim_cur, rlim_max]`).
    fn from([rlim_cur, rlim_max]: [u64; 2]) -> Self {
        Self { rlim_cur, rlim_max }
    }
}

impl Rlimit {
    const INF: Self = Self {
        rlim_cur: RLIM_INFINITY,
        rlim_max: RLIM_INFINITY,
    };
}

/// The limits of the image.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    values: [Rlimit; RLIM_NLIMITS],
}

impl Limits {
    pub(crate) const fn new() -> Self {
        let mut values = [Rlimit::INF; RLIM_NLIMITS];
        values[RLIMIT_STACK as usize] = Rlimit {
            rlim_cur: uk_sched::DEFAULT_STACK_SIZE as u64,
            rlim_max: RLIM_INFINITY,
        };
        values[RLIMIT_NOFILE as usize] = Rlimit {
            rlim_cur: 1024,
            rlim_max: 4096,
        };
        values[RLIMIT_CORE as usize] = Rlimit {
            rlim_cur: 0,
            rlim_max: RLIM_INFINITY,
        };
        Self { values }
    }

    /// Stack bytes of a new thread: the `RLIMIT_STACK` soft limit, within sane bounds.
    pub(crate) fn stack_default(&self) -> usize {
        let v = self.values[RLIMIT_STACK as usize].rlim_cur;
        usize::try_from(v)
            .unwrap_or(usize::MAX)
            .clamp(16 * 1024, 64 << 20)
    }

    pub(crate) fn get(&self, resource: u32) -> Option<Rlimit> {
        self.values.get(resource as usize).copied()
    }
}

impl System {
    /// getrlimit(2) without the pointer.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown resource.
    pub fn getrlimit(&self, resource: u32) -> Result<Rlimit, Errno> {
        self.limits.lock().get(resource).ok_or(Errno::EINVAL)
    }

    /// setrlimit(2) without the pointer; returns the old value.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown resource or soft above hard, `EPERM` for raising the hard
    /// limit (or `RLIMIT_NOFILE` past [`NR_OPEN`]). Nothing changes on an error.
    pub fn setrlimit(&self, resource: u32, new: Rlimit) -> Result<Rlimit, Errno> {
        self.prlimit(0, resource, Some(new))
    }

    /// prlimit64(2) without the pointers: reads and optionally sets a limit of process
    /// `pid` (0: the caller's; limits are image-wide). Returns the old value.
    ///
    /// # Errors
    ///
    /// `ESRCH` for an unknown pid, and as [`System::setrlimit`].
    pub fn prlimit(&self, pid: Pid, resource: u32, new: Option<Rlimit>) -> Result<Rlimit, Errno> {
        if pid < 0 || (pid != 0 && !self.pid_exists(pid)) {
            return Err(Errno::ESRCH);
        }
        let hook = self.data_limit_hook();
        let mut limits = self.limits.lock();
        let old = limits.get(resource).ok_or(Errno::EINVAL)?;
        if let Some(new) = new {
            if new.rlim_cur > new.rlim_max {
                return Err(Errno::EINVAL);
            }
            if new.rlim_max > old.rlim_max {
                return Err(Errno::EPERM);
            }
            if resource == RLIMIT_NOFILE && new.rlim_max > NR_OPEN {
                return Err(Errno::EPERM);
            }
            limits.values[resource as usize] = new;
            if resource == RLIMIT_DATA {
                let limit = (new.rlim_cur != RLIM_INFINITY)
                    .then(|| usize::try_from(new.rlim_cur).unwrap_or(usize::MAX));
                hook(limit);
            }
        }
        Ok(old)
    }

    /// The `RLIMIT_NOFILE` soft limit: how many descriptors the fd table may hold.
    pub fn nofile_limit(&self) -> usize {
        let v = self.limits.lock().values[RLIMIT_NOFILE as usize].rlim_cur;
        usize::try_from(v).unwrap_or(usize::MAX)
    }

    /// The `RLIMIT_DATA` soft limit in bytes (`None`: unlimited).
    pub fn data_limit(&self) -> Option<usize> {
        let v = self.limits.lock().values[RLIMIT_DATA as usize].rlim_cur;
        (v != RLIM_INFINITY).then(|| usize::try_from(v).unwrap_or(usize::MAX))
    }
}
