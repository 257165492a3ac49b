//! `signalfd`: signals read from a descriptor, with Linux's semantics (signalfd(2)).
//!
//! A signalfd holds a set of signals, its mask. A read takes signals of the mask that are
//! pending for the reading thread (its own first, then its process's, lowest number
//! first, as a `sigtimedwait` would) and returns one 128-byte `struct signalfd_siginfo`
//! for each, as many as fit in the buffer; a signal taken this way is consumed, no handler
//! runs for it. With none pending a read waits (through the [`crate::wait`] seam, as a
//! pipe does: a signal outside the mask that runs a handler ends it with `EINTR`) or, on a
//! non-blocking descriptor, fails with `EAGAIN`; a buffer shorter than 128 bytes is
//! `EINVAL`, and so is a write. A program blocks the mask's signals with `sigprocmask`
//! first, so that they stay pending for the descriptor instead of being delivered.
//!
//! `signalfd4(-1, mask, flags)` makes one; `signalfd4(fd, mask, flags)` on an existing
//! signalfd replaces its mask. `SIGKILL` and `SIGSTOP` are dropped from any mask silently,
//! as on Linux. Readiness: `POLLIN` while a signal of the mask is pending for the thread
//! that asks (Linux answers for the polling thread too).
//!
//! **The seam.** uk-vfs knows no signals: the process layer installs a [`SignalSource`]
//! ([`set_signal_source`]) that looks at and takes the calling thread's pending signals,
//! already encoded as `signalfd_siginfo`. When a signal becomes pending anywhere, the
//! layer calls [`signals_arrived`], which wakes every thread waiting in a signalfd read and
//! moves the signalfds' generation and the [readiness epoch](crate::readiness_epoch), so
//! that `poll`, `select` and `epoll_wait` look again. (A blocked signal does not wake the
//! thread it waits for: the signalfd's own wake-up is what ends such a wait.)
//!
//! A signalfd is an anonymous-inode file as on Linux: `fstat` gives the shared anonymous
//! inode, `lseek` returns 0, `pread`/`pwrite` are `ESPIPE`; the descriptor is open for
//! reading and writing.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use crate::Errno;
use crate::file::{Fd, Object};
use crate::poll::{POLLIN, changed};
use crate::types::{O_CLOEXEC, O_NONBLOCK};
use crate::vfs::Vfs;
use crate::wait::{Wait, new_wait};

/// `signalfd4` flag: close-on-exec (`O_CLOEXEC`).
pub const SFD_CLOEXEC: u32 = O_CLOEXEC;
/// `signalfd4` flag: non-blocking (`O_NONBLOCK`).
pub const SFD_NONBLOCK: u32 = O_NONBLOCK;

/// The size of `struct signalfd_siginfo`: what a read returns per signal.
pub const SIGINFO_SIZE: usize = 128;

/// The size of a signal mask `signalfd4` takes (`sizemask`): Linux's 64-signal set.
pub const SIGSET_SIZE: usize = 8;

/// `SIGKILL` and `SIGSTOP`, which no mask holds.
const UNBLOCKABLE: u64 = (1 << (9 - 1)) | (1 << (19 - 1));

/// Where signalfds look at and take the calling thread's signals.
pub trait SignalSource: Send + Sync {
    /// Whether a signal of `mask` (bit `n - 1` for signal `n`) is pending for the calling
    /// thread or its process.
    fn pending(&self, mask: u64) -> bool;
    /// Takes the lowest-numbered signal of `mask` pending for the calling thread (its own
    /// before its process's), as `signalfd_siginfo`; `None` when none is.
    fn take(&self, mask: u64) -> Option<[u8; SIGINFO_SIZE]>;
}

static SOURCE: Once<&'static dyn SignalSource> = Once::new();

/// Sets where signalfds take signals (first call wins). Without one, `signalfd4` fails
/// with `ENOSYS`.
pub fn set_signal_source(source: &'static dyn SignalSource) {
    SOURCE.call_once(|| source);
}

/// Moves when a signal may have become pending: every signalfd's readiness may differ.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The one wait every signalfd reader queues in (made with the first signalfd, so that it
/// comes from the wait factory the process layer installed).
static READERS: Once<Box<dyn Wait>> = Once::new();

/// Tells the signalfds that a signal became pending somewhere: wakes their waiting
/// readers and moves their readiness, so pollers look again. Cheap while no signalfd was
/// ever made.
pub fn signals_arrived() {
    if let Some(readers) = READERS.get() {
        changed(&GENERATION);
        readers.wake_all();
    }
}

/// A signalfd: its mask.
pub struct SignalFd {
    mask: AtomicU64,
    source: &'static dyn SignalSource,
}

impl core::fmt::Debug for SignalFd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignalFd")
            .field("mask", &format_args!("{:#x}", self.mask()))
            .finish()
    }
}

impl SignalFd {
    /// A signalfd for `mask` (`SIGKILL` and `SIGSTOP` dropped) reading from `source`.
    pub fn new(mask: u64, source: &'static dyn SignalSource) -> SignalFd {
        READERS.call_once(new_wait);
        SignalFd {
            mask: AtomicU64::new(mask & !UNBLOCKABLE),
            source,
        }
    }

    /// The signals it reads.
    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::SeqCst)
    }

    /// Replaces its mask (`SIGKILL` and `SIGSTOP` dropped).
    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask & !UNBLOCKABLE, Ordering::SeqCst);
        changed(&GENERATION);
    }

    /// Moves whenever its readiness may have changed (for edge-triggered epoll).
    pub fn generation(&self) -> u64 {
        GENERATION.load(Ordering::SeqCst)
    }

    /// `POLLIN` while a signal of the mask is pending for the calling thread.
    pub fn poll_events(&self) -> u16 {
        if self.source.pending(self.mask()) {
            POLLIN
        } else {
            0
        }
    }

    /// Reads into `buf` one `signalfd_siginfo` per signal taken, as many as fit and are
    /// pending (at least one: waits for it unless `nonblock`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a buffer shorter than [`SIGINFO_SIZE`]; `EAGAIN` when `nonblock` and
    /// none is pending; `EINTR`/`ERESTARTSYS` from the wait.
    pub fn read(&self, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if buf.len() < SIGINFO_SIZE {
            return Err(Errno::EINVAL);
        }
        loop {
            let mut read = 0;
            for slot in buf.chunks_exact_mut(SIGINFO_SIZE) {
                match self.source.take(self.mask()) {
                    Some(info) => {
                        slot.copy_from_slice(&info);
                        read += SIGINFO_SIZE;
                    }
                    None => break,
                }
            }
            if read > 0 {
                changed(&GENERATION);
                return Ok(read);
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            let readers = READERS.call_once(new_wait);
            readers.wait(&mut || self.source.pending(self.mask()))?;
        }
    }
}

impl Vfs {
    /// `signalfd4(fd, mask, flags)` after the mask was read: with `fd` -1, a new signalfd
    /// for `mask` on the lowest free descriptor; otherwise `fd`'s signalfd gets `mask` and
    /// `fd` is returned (`flags` then change nothing, as on Linux).
    ///
    /// # Errors
    ///
    /// `EINVAL` for flags other than [`SFD_NONBLOCK`] and [`SFD_CLOEXEC`], or an `fd`
    /// that is open but no signalfd; `EBADF` for one that is not open; `EMFILE`; `ENOSYS`
    /// without a [`SignalSource`].
    pub fn signalfd4(&self, fd: Fd, mask: u64, flags: u32) -> Result<Fd, Errno> {
        if flags & !(SFD_NONBLOCK | SFD_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        if fd != -1 {
            return match &self.file(fd)?.object {
                Object::SignalFd(s) => {
                    s.set_mask(mask);
                    Ok(fd)
                }
                _ => Err(Errno::EINVAL),
            };
        }
        let Some(source) = SOURCE.get().copied() else {
            log::warn!("signalfd with no signal source installed: ENOSYS");
            return Err(Errno::ENOSYS);
        };
        self.open_anonymous(Object::SignalFd(SignalFd::new(mask, source)), flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use spin::Mutex;

    /// Pending signals of "the calling thread": a list of (number, tag).
    struct FakeSignals(Mutex<Vec<(u32, u8)>>);

    impl SignalSource for FakeSignals {
        fn pending(&self, mask: u64) -> bool {
            self.0
                .lock()
                .iter()
                .any(|(n, _)| mask & (1 << (n - 1)) != 0)
        }
        fn take(&self, mask: u64) -> Option<[u8; SIGINFO_SIZE]> {
            let mut list = self.0.lock();
            let at = list
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| mask & (1 << (n - 1)) != 0)
                .min_by_key(|(_, (n, _))| *n)
                .map(|(i, _)| i)?;
            let (n, tag) = list.remove(at);
            let mut info = [0; SIGINFO_SIZE];
            info[..4].copy_from_slice(&n.to_ne_bytes());
            info[12] = tag;
            Some(info)
        }
    }

    fn source(signals: &[(u32, u8)]) -> &'static FakeSignals {
        Box::leak(Box::new(FakeSignals(Mutex::new(signals.to_vec()))))
    }

    fn bit(n: u32) -> u64 {
        1 << (n - 1)
    }

    #[test]
    fn reads_take_pending_signals_of_the_mask_lowest_first_as_many_as_fit() {
        let src = source(&[(12, 1), (10, 2), (15, 3)]);
        let fd = SignalFd::new(bit(10) | bit(12), src);
        assert_eq!(fd.poll_events(), POLLIN);
        let mut buf = [0u8; 3 * SIGINFO_SIZE];
        assert_eq!(fd.read(&mut buf, true), Ok(2 * SIGINFO_SIZE));
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), 10);
        assert_eq!(buf[12], 2);
        assert_eq!(u32::from_ne_bytes(buf[128..132].try_into().unwrap()), 12);
        assert_eq!(fd.poll_events(), 0, "15 is not in the mask");
        assert_eq!(fd.read(&mut buf, true), Err(Errno::EAGAIN));
        assert_eq!(src.0.lock().as_slice(), &[(15, 3)], "15 left alone");
    }

    #[test]
    fn short_buffers_are_refused_and_take_nothing() {
        let src = source(&[(10, 0)]);
        let fd = SignalFd::new(bit(10), src);
        let mut small = [0u8; SIGINFO_SIZE - 1];
        assert_eq!(fd.read(&mut small, true), Err(Errno::EINVAL));
        assert_eq!(src.0.lock().len(), 1);
    }

    #[test]
    fn sigkill_and_sigstop_never_join_a_mask() {
        let src = source(&[]);
        let fd = SignalFd::new(u64::MAX, src);
        assert_eq!(fd.mask(), !UNBLOCKABLE);
        let generation = fd.generation();
        fd.set_mask(bit(9) | bit(19) | bit(2));
        assert_eq!(fd.mask(), bit(2));
        assert_ne!(
            fd.generation(),
            generation,
            "a new mask may change readiness"
        );
    }
}
