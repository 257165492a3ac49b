//! `pidfd`: a process behind a descriptor, with Linux's semantics (pidfd_open(2)).
//!
//! A pidfd names one process. It becomes readable (`POLLIN`) once the process has ended,
//! whether or not its parent waited for it yet, so `poll`, `select` and `epoll` wait for a
//! process to end without `SIGCHLD`; the process layer sends signals through it
//! (`pidfd_send_signal`) and waits for a child through it (`waitid(P_PIDFD, …)`). A read
//! or write is `EINVAL`, as on Linux, where a pidfd has neither.
//!
//! **The seam.** uk-vfs knows no processes: the process layer makes pidfds for processes
//! it checked ([`Vfs::pidfd_open`] takes the pid and whether it is alive), installs a
//! [`ProcessSource`] that says whether a process is still alive ([`set_process_source`]),
//! and calls [`process_ended`] when one ends, which moves the pidfds' generation and the
//! [readiness epoch](crate::readiness_epoch), so that waiting pollers look again.
//!
//! A pidfd is an anonymous-inode file as on Linux: `fstat` gives the shared anonymous
//! inode, `/proc/<pid>/fd` names it `anon_inode:[pidfd]`.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use crate::Errno;
use crate::file::{Fd, Object};
use crate::poll::{POLLIN, changed};
use crate::types::{O_CLOEXEC, O_NONBLOCK};
use crate::vfs::Vfs;

/// `pidfd_open` flag: the descriptor is non-blocking (what `waitid` through it honours).
pub const PIDFD_NONBLOCK: u32 = O_NONBLOCK;

/// Where pidfds learn whether their process still runs.
pub trait ProcessSource: Send + Sync {
    /// Whether process `pid` is alive (not ended: a zombie has ended).
    fn alive(&self, pid: i32) -> bool;
}

static SOURCE: Once<&'static dyn ProcessSource> = Once::new();

/// Sets where pidfds ask whether their process is alive (first call wins). Without one,
/// [`Vfs::pidfd_open`] fails with `ENOSYS`.
pub fn set_process_source(source: &'static dyn ProcessSource) {
    SOURCE.call_once(|| source);
}

/// Moves whenever a process ends: every pidfd's readiness may differ.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Tells the pidfds that a process ended: pollers look again.
pub fn process_ended() {
    changed(&GENERATION);
}

/// A pidfd: the process it names.
pub struct PidFd {
    pid: i32,
    source: &'static dyn ProcessSource,
}

impl core::fmt::Debug for PidFd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PidFd").field("pid", &self.pid).finish()
    }
}

impl PidFd {
    /// The pid it names.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Moves whenever its readiness may have changed (for edge-triggered epoll).
    pub fn generation(&self) -> u64 {
        GENERATION.load(Ordering::SeqCst)
    }

    /// `POLLIN` once the process has ended.
    pub fn poll_events(&self) -> u16 {
        if self.source.alive(self.pid) {
            0
        } else {
            POLLIN
        }
    }
}

impl Vfs {
    /// A pidfd for process `pid` on the lowest free descriptor, open for reading and
    /// writing, with [`PIDFD_NONBLOCK`] as `O_NONBLOCK`. The caller (the process layer)
    /// has checked that `pid` names a process.
    ///
    /// # Errors
    ///
    /// `EINVAL` for flags other than [`PIDFD_NONBLOCK`]; `EMFILE`; `ENOSYS` without a
    /// [`ProcessSource`].
    pub fn pidfd_open(&self, pid: i32, flags: u32) -> Result<Fd, Errno> {
        if flags & !PIDFD_NONBLOCK != 0 {
            return Err(Errno::EINVAL);
        }
        let Some(source) = SOURCE.get().copied() else {
            log::warn!("pidfd_open with no process source installed: ENOSYS");
            return Err(Errno::ENOSYS);
        };
        // Linux's pidfds are always close-on-exec.
        self.open_anonymous(Object::PidFd(PidFd { pid, source }), flags | O_CLOEXEC)
    }

    /// The pid and the non-blocking flag of the pidfd open as `fd`.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor that is not open or is no pidfd (Linux's answer to both).
    pub fn pidfd_target(&self, fd: Fd) -> Result<(i32, bool), Errno> {
        let file = self.file(fd)?;
        match &file.object {
            Object::PidFd(p) => Ok((p.pid, file.flags() & O_NONBLOCK != 0)),
            _ => Err(Errno::EBADF),
        }
    }
}
