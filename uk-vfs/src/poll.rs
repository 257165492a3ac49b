//! Readiness for `poll`/`select`/`epoll`: what each open file reports, and the signal that
//! some file's readiness changed.
//!
//! Readiness is asked, never pushed: [`Vfs::poll`](crate::Vfs::poll) computes each
//! descriptor's events from its file's state at the moment of the call (a pipe's buffer and
//! its ends, an eventfd's counter, whether an epoll set has something to report, whether a
//! timerfd has an unread expiration; every
//! other file is always ready, as Linux's default for files without a `poll` operation).
//! Waiting belongs to the caller, which also has to watch for signals and a timeout:
//! uk-posix-process waits until the [`readiness_epoch`] moves, and the hook given to
//! [`set_readiness_hook`] (called after every pipe, eventfd and epoll change) wakes it.
//!
//! **Why an epoch.** A waiter cannot hold a lock across "look at every descriptor" and "go
//! to sleep", and the files it watches have no list of waiters to push to. So it reads the
//! epoch, looks, and sleeps only until the epoch differs from what it read: a change that
//! lands between the look and the sleep has moved the epoch already, and the sleep ends at
//! once. A spurious wake costs one more look, never a missed event.
//!
//! **Generations.** Besides the global epoch, every pollable object (a pipe, an eventfd)
//! has a generation of its own, moved by each change to it before the epoch moves. Edge
//! triggered epoll ([`crate::epoll`]) remembers the generation it last reported a file at
//! and reports the file again only once the generation has moved: "something happened to
//! this file since you last heard of it", which is what Linux's wake-up on every write
//! gives an `EPOLLET` waiter.

use core::sync::atomic::{AtomicU64, Ordering};

/// `poll`: data to read (or, for a pipe, the other end closed).
pub const POLLIN: u16 = 0x001;
/// `poll`: urgent data (never reported here; asked by `select`'s exception set).
pub const POLLPRI: u16 = 0x002;
/// `poll`: room to write.
pub const POLLOUT: u16 = 0x004;
/// `poll`, output only: an error condition (a pipe's write end with no reader left).
pub const POLLERR: u16 = 0x008;
/// `poll`, output only: hung up (a pipe's read end with no writer left).
pub const POLLHUP: u16 = 0x010;
/// `poll`, output only: the descriptor is not open.
pub const POLLNVAL: u16 = 0x020;
/// `poll`: normal data to read (as `POLLIN`).
pub const POLLRDNORM: u16 = 0x040;
/// `poll`: room to write normal data (as `POLLOUT`).
pub const POLLWRNORM: u16 = 0x100;

/// `poll`: the peer closed its writing half (sockets; accepted, never reported here).
pub const POLLRDHUP: u16 = 0x2000;

/// What a file that is always ready reports (Linux's `DEFAULT_POLLMASK`).
pub const ALWAYS_READY: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

/// Linux's `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; a negative one is skipped (its `revents` become 0).
    pub fd: i32,
    /// The events asked for.
    pub events: i16,
    /// The events that hold: those asked for, and `POLLERR`, `POLLHUP`, `POLLNVAL` always.
    pub revents: i16,
}

static EPOCH: AtomicU64 = AtomicU64::new(0);
static HOOK: spin::Once<fn()> = spin::Once::new();

/// A counter that moves whenever a pipe's readiness may have changed. A waiter reads it
/// before checking its descriptors and waits until it differs, so that a change between
/// the check and the wait is never missed.
pub fn readiness_epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Sets the function called after every readiness change (first call wins): the waker of
/// whatever waits in `poll`.
pub fn set_readiness_hook(hook: fn()) {
    HOOK.call_once(|| hook);
}

/// Moves `generation` (the changed object's own counter), then the epoch, and calls the
/// hook.
pub(crate) fn changed(generation: &AtomicU64) {
    generation.fetch_add(1, Ordering::SeqCst);
    readiness_changed();
}

/// Moves the epoch and calls the hook (a change no single object's generation tells: an
/// epoll set's registrations).
pub(crate) fn readiness_changed() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
    if let Some(hook) = HOOK.get() {
        hook();
    }
}
