//! `poll`, `ppoll`, `select` and `pselect6` over the image's VFS (feature `vfs`).
//!
//! uk-vfs says what each descriptor is ready for at the moment it is asked
//! ([`uk_vfs::Vfs::poll`]); this module waits. A caller with nothing ready queues as a
//! waiter under `POLL_KEY` (a key of the futex table) and sleeps until a pipe's readiness
//! changes (the VFS's readiness hook, installed by [`crate::connect_vfs`], wakes every
//! such waiter, and the epoch check makes a change between the look and the sleep
//! impossible to miss), until its timeout, or until a signal for it runs a handler
//! (`EINTR`, as Linux does for `poll` and `select` whatever `SA_RESTART` says). `ppoll`
//! and `pselect6` wait with the given signal mask, as `sigsuspend` does.
//!
//! `select`'s sets become poll entries (read: `POLLIN`, write: `POLLOUT`, except:
//! `POLLPRI`) and back, with Linux's mapping: a hang-up or error makes a descriptor both
//! readable and writable for `select`; a descriptor that is not open is `EBADF`.

use alloc::vec::Vec;

use uk_syscall::Errno;
use uk_vfs::PollFd;
use uk_vfs::poll::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM};

use crate::futex::{FUTEX_BITSET_MATCH_ANY, POLL_KEY};
use crate::signal::SigSet;
use crate::system::System;

/// What makes a descriptor of `select`'s read set ready (Linux's `POLLIN_SET`).
const SELECT_READ: u16 = POLLIN | POLLRDNORM | POLLHUP | POLLERR;
/// What makes a descriptor of the write set ready (`POLLOUT_SET`).
const SELECT_WRITE: u16 = POLLOUT | POLLWRNORM | POLLERR;
/// What makes a descriptor of the exception set ready (`POLLEX_SET`).
const SELECT_EXCEPT: u16 = POLLPRI;

/// `select`'s three descriptor sets, as words of bits (`None`: a NULL set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdSets {
    /// Descriptors to watch for reading.
    pub read: Option<Vec<u64>>,
    /// Descriptors to watch for writing.
    pub write: Option<Vec<u64>>,
    /// Descriptors to watch for exceptional conditions.
    pub except: Option<Vec<u64>>,
}

fn bit(set: &Option<Vec<u64>>, fd: usize) -> bool {
    set.as_ref()
        .is_some_and(|words| words.get(fd / 64).is_some_and(|w| w >> (fd % 64) & 1 != 0))
}

impl System {
    /// `poll`/`ppoll`: fills each entry's `revents`, waiting while none is ready until
    /// `deadline_ns` of the monotonic clock (`None`: no limit; a past deadline: look once)
    /// with the thread's mask replaced by `mask` if given. Returns how many entries are
    /// ready (0 at the deadline).
    ///
    /// # Errors
    ///
    /// `EINTR` when a signal ran a handler first; `ENOSYS` when it would have to wait
    /// outside a scheduler thread.
    pub fn poll(
        &self,
        fds: &mut [PollFd],
        deadline_ns: Option<u64>,
        mask: Option<SigSet>,
    ) -> Result<usize, Errno> {
        match mask {
            Some(mask) => self.with_temporary_mask(mask, || self.poll_loop(fds, deadline_ns))?,
            None => self.poll_loop(fds, deadline_ns),
        }
    }

    fn poll_loop(&self, fds: &mut [PollFd], deadline_ns: Option<u64>) -> Result<usize, Errno> {
        let vfs = uk_vfs::global::vfs();
        self.wait_ready(deadline_ns, || match vfs.poll(fds) {
            0 => None,
            ready => Some(ready),
        })
        .map(|ready| ready.unwrap_or(0))
    }

    /// The wait of `poll`, `select` and `epoll_wait`: `look` says what is ready (`None`:
    /// nothing yet); with nothing, the caller sleeps until the VFS's readiness epoch moves
    /// (its hook wakes the poll key; the epoch is read before each look, so a change
    /// between the look and the sleep ends the sleep at once), `deadline_ns` (then
    /// `Ok(None)`) or a signal that runs a handler (`EINTR`).
    pub(crate) fn wait_ready<T>(
        &self,
        deadline_ns: Option<u64>,
        mut look: impl FnMut() -> Option<T>,
    ) -> Result<Option<T>, Errno> {
        loop {
            let epoch = uk_vfs::readiness_epoch();
            if let Some(found) = look() {
                return Ok(Some(found));
            }
            if deadline_ns.is_some_and(|d| self.monotonic_ns() >= d) {
                return Ok(None);
            }
            if self.deliver_pending_signals() > 0 {
                return Err(Errno::EINTR);
            }
            let deadline = deadline_ns.map(crate::time::Deadline::Monotonic);
            self.wait_queued(POLL_KEY, FUTEX_BITSET_MATCH_ANY, deadline, || {
                uk_vfs::readiness_epoch() != epoch || self.has_deliverable_signal()
            })?;
            if self.deliver_pending_signals() > 0 {
                return Err(Errno::EINTR);
            }
        }
    }

    /// `select`/`pselect6` on descriptors `0..nfds`: keeps in each set the descriptors that
    /// are ready for it, waiting as [`System::poll`] does while none is; returns the number
    /// of bits left set.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor in a set that is not open (the sets are left as given);
    /// `EINTR`, `ENOSYS` as [`System::poll`].
    pub fn select(
        &self,
        nfds: usize,
        sets: &mut FdSets,
        deadline_ns: Option<u64>,
        mask: Option<SigSet>,
    ) -> Result<usize, Errno> {
        let mut entries = Vec::new();
        for fd in 0..nfds {
            let mut events = 0;
            if bit(&sets.read, fd) {
                events |= POLLIN;
            }
            if bit(&sets.write, fd) {
                events |= POLLOUT;
            }
            if bit(&sets.except, fd) {
                events |= POLLPRI;
            }
            if events != 0 {
                entries.push(PollFd {
                    fd: fd as i32,
                    events: events as i16,
                    revents: 0,
                });
            }
        }
        let mut probe = entries.clone();
        uk_vfs::global::vfs().poll(&mut probe);
        if probe.iter().any(|e| e.revents as u16 & POLLNVAL != 0) {
            return Err(Errno::EBADF);
        }
        self.poll(&mut entries, deadline_ns, mask)?;
        for words in [&mut sets.read, &mut sets.write, &mut sets.except]
            .into_iter()
            .flatten()
        {
            words.iter_mut().for_each(|w| *w = 0);
        }
        let mut count = 0;
        for e in &entries {
            let fd = e.fd as usize;
            let revents = e.revents as u16;
            let asked = e.events as u16;
            for (set, wanted, ready_mask) in [
                (&mut sets.read, POLLIN, SELECT_READ),
                (&mut sets.write, POLLOUT, SELECT_WRITE),
                (&mut sets.except, POLLPRI, SELECT_EXCEPT),
            ] {
                if asked & wanted != 0 && revents & ready_mask != 0 {
                    if let Some(words) = set {
                        words[fd / 64] |= 1 << (fd % 64);
                        count += 1;
                    }
                }
            }
        }
        Ok(count)
    }
}
