//! The wait uk-vfs's blocking calls use in the image (feature `vfs`): a signal ends it.
//!
//! A pipe or eventfd `read`/`write` that has to wait, and a `flock` that conflicts, block
//! through uk-vfs's [`Wait`] seam. [`crate::connect_vfs`] makes every such wait a
//! [`VfsWait`] of the image's [`System`], so that those waits behave as on Linux (signal(7),
//! "Interruption of system calls and library functions by signal handlers"):
//!
//! - A waiting thread queues in the layer's futex table, under a key of its own object
//!   (never a futex word's address: those are 4-byte aligned, and the keys here are
//!   `4n + 2`). The object's `wake_all` wakes that key, so a write to a pipe ends the wait
//!   of its reader; the condition is asked again once the thread is queued, so no wake-up
//!   between the look and the sleep is lost.
//! - A signal sent to the thread (`tgkill`, `pthread_kill`) or to its process (`kill`,
//!   `alarm` and the other timers) finds it there as it finds a futex waiter (the sender
//!   takes it off the queue and wakes it), with no seam of uk-vfs's own: uk-vfs stays
//!   ignorant of signals. The process's timers are kept while the thread waits, so
//!   `alarm(1); read(empty_pipe)` ends after a second.
//! - Woken by a signal, the thread delivers its pending signals itself. When a handler ran,
//!   the wait ends: `EINTR`, or, when the first handler that ran was installed with
//!   `SA_RESTART`, `ERESTARTSYS`, which uk-vfs turns into a restart of the call (made
//!   again from the lookup of its descriptor) unless the call transferred bytes already (a
//!   pipe write then returns their count, as Linux does). `SA_RESTART` is honoured here, in the layer that knows the
//!   dispositions, and applied there, where the call knows what it transferred.
//! - An ignored signal (`SIG_IGN`, or a default action of ignoring) is dropped and the wait
//!   goes on; a blocked one stays pending and does not wake the thread; one whose default
//!   action terminates ends the process from inside the wait.
//!
//! Outside a scheduler thread, a wait whose condition is false fails with `EDEADLK` (the
//! seam's rule: nobody could make it true).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};

use uk_syscall::Errno;
use uk_vfs::wait::Wait;

use crate::futex::FUTEX_BITSET_MATCH_ANY;
use crate::system::System;

/// Hands out the keys of [`VfsWait`]s.
static NEXT_KEY: AtomicUsize = AtomicUsize::new(0);

/// A uk-vfs [`Wait`] that a signal for the waiting thread ends (see the
/// [module documentation](self)).
pub struct VfsWait {
    sys: &'static System,
    key: usize,
}

impl core::fmt::Debug for VfsWait {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VfsWait").field("key", &self.key).finish()
    }
}

impl VfsWait {
    /// A wait whose waiters queue in `sys`'s futex table and get `sys`'s signals.
    pub fn new(sys: &'static System) -> VfsWait {
        // 4n + 2: never 4-byte aligned (futex words), never 0 or 1 (the signal-only and
        // poll keys). Wrapping takes 2^62 waits.
        let n = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        VfsWait {
            sys,
            key: n.wrapping_shl(2) | 2,
        }
    }

    /// The factory [`crate::connect_vfs`] registers: every new pipe end, eventfd and lock
    /// waits on the image's layer.
    pub(crate) fn for_image() -> Box<dyn Wait> {
        Box::new(VfsWait::new(crate::system()))
    }
}

impl Wait for VfsWait {
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<(), Errno> {
        loop {
            if ready() {
                return Ok(());
            }
            if uk_sched::current().is_none() {
                return Err(Errno::EDEADLK);
            }
            // A signal already pending (sent before the wait, or the one that ended the
            // last round): its handler runs now, and ends the call.
            if let Some(restart) = self.sys.run_handlers_for_wait() {
                return Err(if restart {
                    Errno::ERESTARTSYS
                } else {
                    Errno::EINTR
                });
            }
            self.sys
                .wait_queued(self.key, FUTEX_BITSET_MATCH_ANY, None, || {
                    ready() || self.sys.known_caller_may_take_a_signal()
                })
                .map_err(|_| Errno::EDEADLK)?;
        }
    }

    fn wake_all(&self) {
        self.sys
            .wake_matching(self.key, usize::MAX, FUTEX_BITSET_MATCH_ANY);
    }
}

impl System {
    /// Whether a signal is pending for the caller that it does not block, without adopting
    /// a thread the layer does not know (a thread of another subsystem may use a pipe).
    pub(crate) fn known_caller_may_take_a_signal(&self) -> bool {
        self.signals_sent.load(Ordering::Relaxed) && self.known_caller_has_deliverable_signal()
    }

    /// Delivers the caller's pending signals for a wait of uk-vfs: `Some(restart)` when a
    /// handler ran (`restart`: the first had `SA_RESTART`), `None` when none did (nothing
    /// was pending, or what was is ignored).
    fn run_handlers_for_wait(&self) -> Option<bool> {
        if !self.known_caller_may_take_a_signal() {
            return None;
        }
        match self.deliver_pending_signals_noting_restart() {
            (0, _) => None,
            (_, restart) => Some(restart),
        }
    }
}
