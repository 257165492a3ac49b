//! The layer's lock: a spin lock that yields to the holder instead of spinning when the
//! caller is a scheduler thread.
//!
//! On one CPU a spin lock only sees contention when a preemptive scheduler switched away
//! from the holder; spinning then would never end. A waiting thread therefore yields, which
//! lets the holder run and release. The boot context (no thread) spins. The locks are never
//! taken in interrupt handlers, and no lock is held across a block or a switch of the
//! holder's own making.

use spin::{Mutex, MutexGuard};

/// A lock around `T`; see the module documentation.
pub(crate) struct Lock<T>(Mutex<T>);

impl<T> Lock<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(guard) = self.0.try_lock() {
                return guard;
            }
            if uk_sched::current().is_some() {
                uk_sched::yield_now();
            } else {
                core::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use uk_sched::{RoundRobin, Scheduler, idle};

    struct Ticks(core::sync::atomic::AtomicU64);
    impl uk_hal::Clock for Ticks {
        fn monotonic_ns(&self) -> u64 {
            self.0.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
        }
        fn cycles(&self) -> u64 {
            self.monotonic_ns()
        }
        fn cycles_per_second(&self) -> u64 {
            1_000_000_000
        }
    }

    /// A holder switched away from while holding the lock (as preemption would) does not
    /// make a waiting thread spin forever: the waiter yields until the holder releases.
    #[test]
    fn contended_lock_yields_to_the_holder() {
        let sched =
            RoundRobin::cooperative(uk_context::Native::detect(), Ticks(0.into()), idle::Poll);
        let lock: &'static Lock<u32> =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(Lock::new(0)));
        let log = Rc::new(RefCell::new(Vec::new()));
        let l1 = log.clone();
        sched
            .spawn("holder", move || {
                let mut g = lock.lock();
                l1.borrow_mut().push("holder has it");
                uk_sched::yield_now(); // switched away while holding
                uk_sched::yield_now();
                *g += 1;
                l1.borrow_mut().push("holder releases");
            })
            .unwrap();
        let l2 = log.clone();
        sched
            .spawn("waiter", move || {
                let mut g = lock.lock();
                *g += 1;
                l2.borrow_mut().push("waiter has it");
            })
            .unwrap();
        sched.run();
        assert_eq!(
            *log.borrow(),
            ["holder has it", "holder releases", "waiter has it"]
        );
        assert_eq!(*lock.lock(), 2);
    }
}
