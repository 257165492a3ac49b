//! Process descriptors (feature `vfs`): `pidfd_open`, `pidfd_send_signal` and
//! `waitid(P_PIDFD, …)` over uk-vfs's pidfds (see [`uk_vfs::pidfd`]).
//!
//! A pidfd names a process the caller may signal or, if it is the caller's child, wait
//! for. It turns readable when the process ends (the layer calls
//! [`uk_vfs::pidfd::process_ended`] whenever one does), so `poll` and `epoll` wait for any
//! process to end. With Linux's rules: `pidfd_open` takes the pid of a process (a zombie
//! included), not of a thread that does not lead one; `pidfd_send_signal` refuses flags,
//! a descriptor that is no pidfd (`EBADF`), information whose number differs from the
//! signal or that claims to come from the kernel for another process, and reaches a
//! process that has ended with `ESRCH`; a `waitid` through a non-blocking pidfd whose
//! child still runs is `EAGAIN`. `clone` and `clone3` with `CLONE_PIDFD` hand the parent a
//! pidfd of the new process (see [`System::clone`]).
//!
//! `pidfd_getfd` copies a descriptor of the process a pidfd names into the caller's table,
//! close-on-exec, as Linux does. Every process of the image shares one descriptor table
//! (`clone` requires `CLONE_FILES`), so the copy is a `dup` of the same number, made after
//! Linux's checks: flags, the pidfd, the process (an ended one has no descriptors left:
//! `EBADF` while it is a zombie, `ESRCH` once reaped) and the descriptor. Everything runs
//! as root, so the ptrace-access check always allows.

use uk_syscall::Errno;
use uk_vfs::pidfd::PIDFD_NONBLOCK;

use crate::signal::{SI_TKILL, SI_USER, SigInfo, check_signal};
use crate::system::System;

impl System {
    /// `pidfd_open(pid, flags)`: a pidfd (close-on-exec) for process `pid`, non-blocking
    /// with [`PIDFD_NONBLOCK`].
    ///
    /// # Errors
    ///
    /// `EINVAL` for other flags, a `pid` ≤ 0, or the id of a thread that leads no process;
    /// `ESRCH` for an id nothing has; `EMFILE`.
    pub fn pidfd_open(&self, pid: i32, flags: u32) -> Result<i32, Errno> {
        if flags & !PIDFD_NONBLOCK != 0 || pid <= 0 {
            return Err(Errno::EINVAL);
        }
        if !self.pid_exists(pid) && !self.is_zombie(pid) {
            return Err(if self.tid_exists(pid) {
                Errno::EINVAL
            } else {
                Errno::ESRCH
            });
        }
        self.vfs().pidfd_open(pid, flags)
    }

    /// `pidfd_getfd(pidfd, targetfd, flags)`: a new descriptor (close-on-exec) for the open
    /// file that `targetfd` is in the process `pidfd` names.
    ///
    /// # Errors
    ///
    /// `EINVAL` for flags; `EBADF` for a descriptor that is no pidfd, a process that has
    /// ended but is not yet reaped, or a `targetfd` that is not open; `ESRCH` for a reaped
    /// process; `EMFILE`.
    pub fn pidfd_getfd(&self, pidfd: i32, targetfd: i32, flags: u32) -> Result<i32, Errno> {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let (pid, _) = self.vfs().pidfd_target(pidfd)?;
        if !self.pid_exists(pid) {
            return Err(if self.is_zombie(pid) {
                Errno::EBADF
            } else {
                Errno::ESRCH
            });
        }
        // `EINVAL` from the lowest number 0 means a limit of no descriptors at all.
        let fd = self
            .vfs()
            .fcntl(targetfd, uk_vfs::F_DUPFD_CLOEXEC, 0)
            .map_err(|e| if e == Errno::EINVAL { Errno::EMFILE } else { e })?;
        Ok(fd as i32)
    }

    /// `pidfd_send_signal(pidfd, sig, info, 0)`: sends `sig` (0: only checks that the
    /// process is alive) to the process `pidfd` names, with `info` if given (its
    /// `si_signo` must be `sig`), else as `kill` would.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor that is no pidfd; `EINVAL` for a bad signal or information
    /// of another signal; `EPERM` for kernel-style information (`si_code` ≥ 0 or
    /// `SI_TKILL`) sent to another process; `ESRCH` once the process has ended.
    pub fn pidfd_send_signal(
        &self,
        pidfd: i32,
        sig: i32,
        info: Option<SigInfo>,
    ) -> Result<(), Errno> {
        let (pid, _) = self.vfs().pidfd_target(pidfd)?;
        if sig != 0 {
            check_signal(sig)?;
        }
        let own = self.getpid()?;
        let info = match info {
            Some(info) => {
                if info.signo != sig {
                    return Err(Errno::EINVAL);
                }
                if pid != own && (info.code >= 0 || info.code == SI_TKILL) {
                    return Err(Errno::EPERM);
                }
                info
            }
            None => SigInfo::new(sig, SI_USER, own),
        };
        // An ended process (a zombie too) takes no more signals.
        if !self.pid_exists(pid) {
            return Err(Errno::ESRCH);
        }
        self.send_signal_to(pid, info)
    }

    /// The pid a pidfd names for `waitid(P_PIDFD, …)`, and the options it waits with (a
    /// non-blocking pidfd adds `WNOHANG`).
    pub(crate) fn pidfd_wait_target(
        &self,
        pidfd: i32,
        options: i32,
    ) -> Result<(i32, i32, bool), Errno> {
        let (pid, nonblock) = self.vfs().pidfd_target(pidfd)?;
        let options = if nonblock {
            options | crate::system::wait::WNOHANG
        } else {
            options
        };
        Ok((pid, options, nonblock))
    }
}

/// The image layer's processes, as uk-vfs's pidfds ask about them.
pub(crate) struct ImageProcesses;

impl uk_vfs::pidfd::ProcessSource for ImageProcesses {
    fn alive(&self, pid: i32) -> bool {
        crate::system().pid_exists(pid)
    }
}
