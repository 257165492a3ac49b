//! How a pipe end waits: the [`Wait`] seam and its implementations.
//!
//! A pipe needs "sleep until the other end did something" and "wake whoever sleeps". The
//! layer that runs the program's threads plugs in its own wait with [`set_wait_factory`]:
//! uk-posix-process does (its `connect_vfs`), so that a signal ends the wait as on Linux
//! (below). Without a factory, a pipe blocks on a `uk-sched` `WaitQueue` (feature
//! `sched`), and without that either it spins politely ([`Spin`]), which is correct with
//! real threads and harmless where the condition is already true; host tests plug in real
//! OS threads.
//!
//! # Signals
//!
//! uk-vfs knows nothing of signals; a [`Wait`] may. One whose waiter gets a signal that
//! runs a handler ends the wait with an error, the handler having run already:
//!
//! - `EINTR`: the handler was installed without `SA_RESTART`. The blocking call (pipe or
//!   eventfd `read`/`write`, `flock`) fails with `EINTR`, or returns what it transferred
//!   already (a pipe write that put part of its bytes in), as Linux does.
//! - `ERESTARTSYS` (Linux's internal "restart the call" code): the handler asked for
//!   `SA_RESTART`. A call that transferred nothing is made again from the start, as
//!   Linux restarts a system call: the descriptor is looked up anew, so a handler that
//!   closed it makes the restarted call fail with `EBADF`, and one that set `O_NONBLOCK`
//!   makes it return `EAGAIN` instead of waiting. A call that transferred some bytes
//!   returns their count, as Linux's pipe write does. The objects (pipe ends, eventfds,
//!   locks) return `ERESTARTSYS`; the [`Vfs`](crate::Vfs) operations that reach them
//!   restart, so `ERESTARTSYS` never leaves the `Vfs`.
//!
//! A signal that is ignored, or blocked, is the `Wait`'s to leave unnoticed; one whose
//! default action ends the program ends it from inside the wait.

use alloc::boxed::Box;

use spin::Once;

use crate::Errno;

/// Something a thread blocks on until a condition holds.
pub trait Wait: Send + Sync {
    /// Returns once `ready()` is true. `ready` may run many times.
    ///
    /// # Errors
    ///
    /// `EDEADLK` if the caller cannot block (no thread to switch away from, so nobody
    /// could ever make `ready` true); `EINTR` or `ERESTARTSYS` when a signal's handler ran
    /// (see the [module documentation](self)).
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<(), Errno>;
    /// Wakes every waiter so it re-checks its condition.
    fn wake_all(&self);
}

/// Makes the [`Wait`] of each new pipe end.
pub type WaitFactory = fn() -> Box<dyn Wait>;

static FACTORY: Once<WaitFactory> = Once::new();

/// Chooses how pipes made from now on block (first call wins).
pub fn set_wait_factory(factory: WaitFactory) {
    FACTORY.call_once(|| factory);
}

/// Makes `call` (one whole operation of a descriptor, from its lookup on) until it ends
/// with anything but `ERESTARTSYS`: the restart of a call interrupted by a handler
/// installed with `SA_RESTART` (see the [module documentation](self)).
pub(crate) fn restarting<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(Errno::ERESTARTSYS) => {}
            other => return other,
        }
    }
}

pub(crate) fn new_wait() -> Box<dyn Wait> {
    if let Some(f) = FACTORY.get() {
        return f();
    }
    #[cfg(feature = "sched")]
    {
        Box::new(sched::SchedWait::new())
    }
    #[cfg(not(feature = "sched"))]
    {
        Box::new(Spin)
    }
}

/// Busy-waits, re-checking the condition: for hosts with real threads and no scheduler.
#[derive(Debug, Default)]
pub struct Spin;

impl Wait for Spin {
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<(), Errno> {
        let mut spins = 0u32;
        while !ready() {
            spins = spins.wrapping_add(1);
            core::hint::spin_loop();
        }
        Ok(())
    }
    fn wake_all(&self) {}
}

#[cfg(feature = "sched")]
#[allow(unsafe_code)]
mod sched {
    //! The one place this crate needs `unsafe`: `uk_sched::WaitQueue` is deliberately not
    //! `Sync` (it relies on masking interrupts on the CPU that owns it).

    use super::Wait;
    use crate::Errno;

    /// A pipe end's wait queue.
    pub struct SchedWait(uk_sched::WaitQueue);

    impl SchedWait {
        pub fn new() -> Self {
            Self(uk_sched::WaitQueue::new())
        }
    }

    // SAFETY: uk-sched runs its threads on one CPU and a `WaitQueue` touches its waiter
    // list only with interrupts masked on that CPU, so sharing it between the threads of
    // that CPU is what it is built for; the VFS never moves it to another CPU.
    unsafe impl Send for SchedWait {}
    // SAFETY: as above.
    unsafe impl Sync for SchedWait {}

    impl Wait for SchedWait {
        fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<(), Errno> {
            if ready() {
                return Ok(());
            }
            if uk_sched::current().is_none() {
                return Err(Errno::EDEADLK);
            }
            self.0.wait(ready);
            Ok(())
        }
        fn wake_all(&self) {
            self.0.wake_all();
        }
    }
}
