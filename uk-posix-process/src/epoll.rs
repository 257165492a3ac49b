//! `epoll_wait`, `epoll_pwait` and `epoll_pwait2` over uk-vfs's epoll sets (feature `vfs`).
//!
//! uk-vfs owns the sets ([`uk_vfs::epoll`]: `epoll_create1`, `epoll_ctl`, level, edge and
//! one-shot reporting); this module waits, exactly as [`System::poll`] does: it reads the
//! [`readiness epoch`](uk_vfs::readiness_epoch), asks the set for its events
//! ([`uk_vfs::EpollInstance::collect`]), and with nothing to report queues under the poll
//! key until the VFS's readiness hook wakes it (any pipe, eventfd or epoll change moves
//! the epoch, so a change between the look and the sleep ends the sleep at once), until
//! the deadline, or until a signal runs a handler (`EINTR`, whatever `SA_RESTART` says, as
//! Linux does for `epoll_wait`). `epoll_pwait` and `epoll_pwait2` wait with the given
//! signal mask, as `ppoll` does.
//!
//! The set is held for the whole wait: closing its descriptor meanwhile does not end the
//! wait, as on Linux.

use alloc::vec::Vec;

use uk_syscall::Errno;
use uk_vfs::epoll::{EPOLL_EVENT_SIZE, EpollEvent};

use crate::signal::SigSet;
use crate::system::System;

/// The most events one call may ask for (Linux's `EP_MAX_EVENTS`).
pub const EP_MAX_EVENTS: usize = i32::MAX as usize / EPOLL_EVENT_SIZE;

impl System {
    /// `epoll_wait`/`epoll_pwait`/`epoll_pwait2`: up to `maxevents` events of the epoll
    /// set `epfd`, waiting while none holds until `deadline_ns` of the monotonic clock
    /// (`None`: no limit; a past deadline: look once) with the thread's mask replaced by
    /// `mask` if given. An empty result means the deadline passed.
    ///
    /// # Errors
    ///
    /// `EINVAL` for `maxevents` 0 or above [`EP_MAX_EVENTS`], or an `epfd` that is no
    /// epoll set; `EBADF` for an `epfd` that is not open; `EINTR` when a signal ran a
    /// handler first; `ENOSYS` when it would have to wait outside a scheduler thread.
    pub fn epoll_wait(
        &self,
        epfd: i32,
        maxevents: usize,
        deadline_ns: Option<u64>,
        mask: Option<SigSet>,
    ) -> Result<Vec<EpollEvent>, Errno> {
        if maxevents == 0 || maxevents > EP_MAX_EVENTS {
            return Err(Errno::EINVAL);
        }
        let set = uk_vfs::global::vfs().epoll_instance(epfd)?;
        let wait = || {
            self.wait_ready(deadline_ns, || {
                Some(set.collect(maxevents)).filter(|e| !e.is_empty())
            })
            .map(Option::unwrap_or_default)
        };
        match mask {
            Some(mask) => self.with_temporary_mask(mask, wait)?,
            None => wait(),
        }
    }
}
