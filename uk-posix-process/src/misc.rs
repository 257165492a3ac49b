//! uname, sysinfo, getrandom, user and group ids, CPU affinity, and the process calls a
//! unikernel cannot honour.

use core::sync::atomic::{AtomicBool, Ordering};

use uk_syscall::Errno;

use crate::system::System;
use uk_syscall::user::UserSlice;

/// Length of each `struct utsname` field.
pub const UTS_LEN: usize = 65;

/// Linux's `struct utsname`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utsname {
    /// "Linux": binaries compiled for Linux check it.
    pub sysname: [u8; UTS_LEN],
    /// Host name.
    pub nodename: [u8; UTS_LEN],
    /// Kernel release (a Linux-style version for libcs that parse it).
    pub release: [u8; UTS_LEN],
    /// Build description.
    pub version: [u8; UTS_LEN],
    /// `x86_64` or `aarch64`.
    pub machine: [u8; UTS_LEN],
    /// NIS domain name.
    pub domainname: [u8; UTS_LEN],
}

fn field(text: &str) -> [u8; UTS_LEN] {
    let mut out = [0; UTS_LEN];
    let n = text.len().min(UTS_LEN - 1);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// The machine name uname reports.
pub const MACHINE: &str = if cfg!(target_arch = "aarch64") {
    "aarch64"
} else {
    "x86_64"
};

/// uname(2) without the pointer.
pub fn uname() -> Utsname {
    Utsname {
        sysname: field("Linux"),
        nodename: field("uk-rs"),
        release: field("6.1.0-uk-rs"),
        version: field(concat!(
            "uk-rs ",
            env!("CARGO_PKG_VERSION"),
            " (Unikraft 0.11 process layer)"
        )),
        machine: field(MACHINE),
        domainname: field("(none)"),
    }
}

/// Logs "`name` is not supported" once per call site's flag.
fn unsupported(flag: &AtomicBool, name: &str, why: &str) -> Errno {
    if !flag.swap(true, Ordering::Relaxed) {
        log::warn!("{name}: not supported in a unikernel ({why}): ENOSYS");
    }
    Errno::ENOSYS
}

static FORK: AtomicBool = AtomicBool::new(false);
static VFORK: AtomicBool = AtomicBool::new(false);
static EXECVE: AtomicBool = AtomicBool::new(false);

/// fork(2): `ENOSYS` (one address space), logged once.
///
/// # Errors
///
/// Always `ENOSYS`.
pub fn fork() -> Result<usize, Errno> {
    Err(unsupported(
        &FORK,
        "fork",
        "one address space; use clone with CLONE_VM",
    ))
}

/// vfork(2): `ENOSYS`, logged once.
///
/// # Errors
///
/// Always `ENOSYS`.
pub fn vfork() -> Result<usize, Errno> {
    Err(unsupported(
        &VFORK,
        "vfork",
        "no second process image to exec",
    ))
}

/// execve(2): `ENOSYS`, logged once.
///
/// # Errors
///
/// Always `ENOSYS`.
pub fn execve() -> Result<usize, Errno> {
    Err(unsupported(
        &EXECVE,
        "execve",
        "the image is the only program",
    ))
}

/// The one user and group a unikernel has: root (0), as Unikraft reports it. `getuid`,
/// `geteuid`, `getgid` and `getegid` return it; `getresuid`/`getresgid` write it three
/// times; `getgroups` lists no supplementary group.
pub const ROOT_ID: u32 = 0;

/// Bytes of the CPU mask `sched_getaffinity` reports (one `unsigned long`: Linux's
/// `cpumask_size()` for up to 64 CPUs).
pub const AFFINITY_MASK_SIZE: usize = 8;

/// The CPUs the process layer's threads run on: CPU 0 (it keeps them on one scheduler).
pub const AFFINITY_MASK: u64 = 1;

/// The checks `sched_getaffinity(pid, len, mask)` makes before it writes: `len` must hold
/// the kernel's mask ([`AFFINITY_MASK_SIZE`]) and be a multiple of a word; `pid` 0 is the
/// caller, any other must be a live thread (`exists`).
///
/// # Errors
///
/// `EINVAL` for a short or odd `len`; `ESRCH` for an unknown thread.
pub(crate) fn check_affinity_request(
    pid: i32,
    len: usize,
    exists: impl Fn(i32) -> bool,
) -> Result<(), Errno> {
    if len < AFFINITY_MASK_SIZE || len % size_of::<usize>() != 0 {
        return Err(Errno::EINVAL);
    }
    if pid != 0 && (pid < 0 || !exists(pid)) {
        return Err(Errno::ESRCH);
    }
    Ok(())
}

/// `sched_setaffinity`'s judgement of a requested mask (its first word): any set that holds
/// CPU 0 is accepted (the threads already run there, nothing changes); one without it
/// cannot be honoured.
///
/// # Errors
///
/// `EINVAL` when the mask leaves out CPU 0.
pub(crate) fn check_affinity_mask(mask: u64) -> Result<(), Errno> {
    if mask & AFFINITY_MASK == 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Size of Linux's `struct sysinfo` on 64-bit architectures.
pub const SYSINFO_SIZE: usize = 112;

/// What sysinfo(2) reports (Linux's `struct sysinfo`; byte counts in units of
/// `mem_unit`, always 1 here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sysinfo {
    /// Seconds since boot.
    pub uptime: i64,
    /// Load averages over 1, 5 and 15 minutes (fixed point, 1 << 16 = 1.0): not kept, 0.
    pub loads: [u64; 3],
    /// All the memory the image's allocator manages.
    pub totalram: u64,
    /// What of it is free now.
    pub freeram: u64,
    /// Shared memory: not counted, 0.
    pub sharedram: u64,
    /// Buffers: none, 0.
    pub bufferram: u64,
    /// Swap: none, 0.
    pub totalswap: u64,
    /// Free swap: none, 0.
    pub freeswap: u64,
    /// Threads alive (Linux counts every task).
    pub procs: u16,
    /// High memory: none, 0.
    pub totalhigh: u64,
    /// Free high memory: none, 0.
    pub freehigh: u64,
    /// Size of the unit the memory fields count in, in bytes.
    pub mem_unit: u32,
}

impl Sysinfo {
    /// The struct as the caller's memory holds it (native byte order, padding zeroed).
    pub fn to_bytes(&self) -> [u8; SYSINFO_SIZE] {
        let mut out = [0u8; SYSINFO_SIZE];
        out[0..8].copy_from_slice(&self.uptime.to_ne_bytes());
        let [a, b, c] = self.loads;
        let words = [
            a,
            b,
            c,
            self.totalram,
            self.freeram,
            self.sharedram,
            self.bufferram,
            self.totalswap,
            self.freeswap,
        ];
        for (i, w) in words.iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&w.to_ne_bytes());
        }
        out[80..82].copy_from_slice(&self.procs.to_ne_bytes());
        out[88..96].copy_from_slice(&self.totalhigh.to_ne_bytes());
        out[96..104].copy_from_slice(&self.freehigh.to_ne_bytes());
        out[104..108].copy_from_slice(&self.mem_unit.to_ne_bytes());
        out
    }
}

impl System {
    /// sysinfo(2) without the pointer: the time since boot, the memory the page source
    /// draws from ([`crate::PageSource::memory`]: the image's allocator; 0 when the source
    /// cannot tell) and the number of threads. musl's `sysconf(_SC_PHYS_PAGES)` and
    /// `sysconf(_SC_AVPHYS_PAGES)` are these memory figures in pages.
    pub fn sysinfo(&self) -> Sysinfo {
        let (total, free) = self.pages().memory().unwrap_or((0, 0));
        Sysinfo {
            uptime: (self.monotonic_ns() / 1_000_000_000) as i64,
            totalram: total as u64,
            freeram: free as u64,
            procs: u16::try_from(self.thread_count()).unwrap_or(u16::MAX),
            mem_unit: 1,
            ..Sysinfo::default()
        }
    }

    /// getrandom(2) into a caller buffer: flags first (`EINVAL`), then the buffer
    /// (`EFAULT`), then `uk_random::getrandom` with its errors converted.
    ///
    /// # Errors
    ///
    /// `EINVAL`, `EFAULT`, `EAGAIN` (not seeded and `GRND_NONBLOCK`), `EIO`.
    pub fn getrandom(&self, buf: usize, len: usize, flags: u32) -> Result<usize, Errno> {
        uk_random::check_flags(flags).map_err(convert)?;
        let len = len.min(uk_random::MAX_COUNT);
        UserSlice::new(buf, len)
            .with_mut(&self.address_space(), |bytes| {
                uk_random::getrandom(bytes, flags)
            })?
            .map_err(convert)
    }
}

/// uk-random's local errno to the shared one.
fn convert(e: uk_random::Errno) -> Errno {
    Errno::new(e.code())
}
