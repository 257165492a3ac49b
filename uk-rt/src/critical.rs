//! The image's [`critical-section`](https://docs.rs/critical-section) implementation
//! (feature `critical-section`, on by default), so that crates written against that crate
//! (`heapless` pools, `portable-atomic` fallbacks, `embassy-sync`, `defmt` transports, ...)
//! work unchanged inside a uk-rs image.
//!
//! A section masks interrupts on the calling CPU (through the board's
//! [`Interrupts::mask`](uk_hal::irq::Interrupts::mask), before interrupts are set up: nothing
//! to mask) and then takes one image-wide lock tagged with the owning CPU's id, so that a
//! section on one CPU also excludes every other CPU. A section entered again on the CPU
//! that holds the lock (nesting, as `critical_section::with` inside another `with`) does not
//! wait for itself: only the outermost release frees the lock, and each release restores the
//! interrupt state its own acquire found.
//!
//! The restore state is a `usize` (feature `restore-state-usize` of `critical-section`):
//! the board's interrupt state shifted left by one, and in bit 0 whether this acquire took
//! the lock (the outermost one) or found it held by its own CPU. An image that brings its
//! own implementation turns the feature off (`default-features = false` on `uk-rt`).
//!
//! The lock logic ([`CpuLock`]) is independent of the board and tested on the host with
//! real threads; the board glue is compiled for bare-metal targets only.

use core::sync::atomic::{AtomicU32, Ordering};

/// Owner value of a free [`CpuLock`].
const FREE: u32 = u32::MAX;

/// An image-wide lock whose holder is a CPU, taken again by that CPU without waiting.
///
/// It is only correct with interrupts masked on the calling CPU while it is held (as the
/// critical section does): otherwise an interrupt handler on the holding CPU would "nest"
/// into a section its CPU is in the middle of.
#[derive(Debug)]
pub struct CpuLock {
    owner: AtomicU32,
}

impl CpuLock {
    /// A free lock.
    pub const fn new() -> Self {
        Self {
            owner: AtomicU32::new(FREE),
        }
    }

    /// Takes the lock for `cpu` (waiting while another CPU holds it). Returns `true` if
    /// this call took it, `false` if `cpu` already held it (a nested section).
    ///
    /// # Panics
    ///
    /// If `cpu` is `u32::MAX`, the value that marks the lock free.
    pub fn enter(&self, cpu: u32) -> bool {
        assert_ne!(cpu, FREE, "CPU id {FREE} is reserved");
        // Only this CPU ever stores its own id, so reading it back means it holds the lock.
        if self.owner.load(Ordering::Relaxed) == cpu {
            return false;
        }
        while self
            .owner
            .compare_exchange_weak(FREE, cpu, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        true
    }

    /// Ends a section: frees the lock if `took` (what the matching [`CpuLock::enter`]
    /// returned) says that section took it.
    pub fn leave(&self, took: bool) {
        if took {
            self.owner.store(FREE, Ordering::Release);
        }
    }

    /// The CPU holding the lock, if any.
    pub fn holder(&self) -> Option<u32> {
        match self.owner.load(Ordering::Relaxed) {
            FREE => None,
            cpu => Some(cpu),
        }
    }
}

impl Default for CpuLock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(any(test, all(target_os = "none", feature = "critical-section")))]
/// Packs the interrupt state and whether the lock was taken into a restore state.
fn pack(irq_state: usize, took: bool) -> usize {
    debug_assert!(
        irq_state >> (usize::BITS - 1) == 0,
        "interrupt state uses the top bit"
    );
    (irq_state << 1) | usize::from(took)
}

#[cfg(any(test, all(target_os = "none", feature = "critical-section")))]
/// The inverse of [`pack`].
fn unpack(state: usize) -> (usize, bool) {
    (state >> 1, state & 1 == 1)
}

#[cfg(all(target_os = "none", feature = "critical-section"))]
mod image {
    use super::{CpuLock, pack, unpack};

    /// The one lock every critical section of the image takes.
    pub(super) static LOCK: CpuLock = CpuLock::new();

    struct ImageCriticalSection;
    critical_section::set_impl!(ImageCriticalSection);

    // SAFETY: `acquire` masks interrupts on the calling CPU and then takes `LOCK` for that
    // CPU, so no other CPU and no interrupt handler of this CPU runs a section until the
    // matching `release`; `release` undoes exactly what its `acquire` did (the lock only if
    // that acquire took it, then the interrupt state it found), and critical-section pairs
    // them in reverse order.
    unsafe impl critical_section::Impl for ImageCriticalSection {
        unsafe fn acquire() -> critical_section::RawRestoreState {
            let (irq_state, cpu) = match crate::try_platform().and_then(|p| p.interrupts()) {
                Some(irqs) => (irqs.mask(), irqs.cpu_interface().cpu_id()),
                // Before the runtime started, or no interrupt controller: interrupts were
                // never enabled and one CPU runs.
                None => (0, 0),
            };
            pack(irq_state, LOCK.enter(cpu))
        }

        unsafe fn release(state: critical_section::RawRestoreState) {
            let (irq_state, took) = unpack(state);
            LOCK.leave(took);
            if let Some(irqs) = crate::try_platform().and_then(|p| p.interrupts()) {
                irqs.restore(irq_state);
            }
        }
    }
}

/// The CPU holding the image's critical section, if any (for tests and diagnostics).
#[cfg(all(target_os = "none", feature = "critical-section"))]
pub fn holder() -> Option<u32> {
    image::LOCK.holder()
}

#[cfg(all(target_os = "none", feature = "critical-section", feature = "ktest"))]
mod ktests {
    use core::sync::atomic::{AtomicU32, Ordering};

    use uk_hal::irq::{Interrupts, IpiTarget, IrqNumber};
    use uk_test::{expect, expect_eq, ktest};

    use crate::platform;

    /// Offset from the board's `free_ipi()` of the interrupt these cases send (GIC SGI 4,
    /// x86 vector 0xE3: numbers no other suite uses).
    const IPI_OFFSET: IrqNumber = 3;

    static CALLS: AtomicU32 = AtomicU32::new(0);

    fn count(_irq: IrqNumber) {
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    fn interrupts() -> &'static dyn Interrupts {
        platform()
            .interrupts()
            .expect("the board has an interrupt controller")
    }

    /// The calling CPU's interrupt state, read without changing it.
    fn irq_state(irqs: &dyn Interrupts) -> usize {
        let state = irqs.mask();
        irqs.restore(state);
        state
    }

    ktest! {
        /// A section masks interrupts and takes the lock for this CPU; a nested section
        /// neither waits for itself nor releases early; leaving the outer one restores the
        /// interrupt state it found, unmasked included.
        fn critical_section_nests_and_restores_interrupts() {
            let irqs = interrupts();
            let cpu = irqs.cpu_interface().cpu_id();
            let original = irqs.mask();
            let masked = irq_state(irqs);
            irqs.enable_on_this_cpu();
            let unmasked = irq_state(irqs);
            expect!(unmasked != masked, "enabling interrupts changed nothing ({unmasked:#x})");
            let (outer_state, outer_holder, inner_holder) = critical_section::with(|_| {
                let outer_state = irq_state(irqs);
                let outer_holder = super::holder();
                let inner_holder = critical_section::with(|_| super::holder());
                (outer_state, outer_holder, (inner_holder, super::holder()))
            });
            let after_state = irq_state(irqs);
            let after_holder = super::holder();
            irqs.mask();
            irqs.restore(original);
            expect_eq!(outer_state, masked);
            expect_eq!(outer_holder, Some(cpu));
            expect_eq!(inner_holder, (Some(cpu), Some(cpu)));
            expect_eq!(after_state, unmasked);
            expect_eq!(after_holder, None);
        }
    }

    ktest! {
        /// An interrupt raised inside a section is taken only once the section ends.
        fn interrupt_inside_a_section_waits_for_its_end() {
            let irqs = interrupts();
            let irq = irqs.free_ipi() + IPI_OFFSET;
            let _ = irqs.register_handler(irq, count);
            let clock = platform();
            let original = irqs.mask();
            irqs.enable_on_this_cpu();
            let before = CALLS.load(Ordering::SeqCst);
            let during = critical_section::with(|_| {
                let sent = irqs.cpu_interface().send_ipi(irq, IpiTarget::SelfOnly);
                // 2 ms with the interrupt pending: it must not be taken.
                let end = clock.monotonic_ns() + 2_000_000;
                while clock.monotonic_ns() < end {
                    core::hint::spin_loop();
                }
                (sent, CALLS.load(Ordering::SeqCst))
            });
            let end = clock.monotonic_ns() + 1_000_000_000;
            while CALLS.load(Ordering::SeqCst) == before && clock.monotonic_ns() < end {
                core::hint::spin_loop();
            }
            let after = CALLS.load(Ordering::SeqCst);
            irqs.mask();
            irqs.restore(original);
            expect_eq!(during, (Ok(()), before));
            expect_eq!(after, before + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn nesting_on_one_cpu_takes_the_lock_once() {
        let lock = CpuLock::new();
        assert_eq!(lock.holder(), None);
        let outer = lock.enter(3);
        assert!(outer);
        let inner = lock.enter(3);
        assert!(!inner);
        lock.leave(inner);
        assert_eq!(lock.holder(), Some(3), "an inner release keeps the lock");
        lock.leave(outer);
        assert_eq!(lock.holder(), None);
    }

    #[test]
    #[should_panic(expected = "reserved")]
    fn the_free_marker_is_not_a_cpu() {
        CpuLock::new().enter(u32::MAX);
    }

    #[test]
    fn restore_state_round_trips() {
        for irq_state in [0, 1, 0x3c0, 0x246, usize::MAX >> 1] {
            for took in [false, true] {
                assert_eq!(unpack(pack(irq_state, took)), (irq_state, took));
            }
        }
    }

    /// Four "CPUs" (threads with distinct ids) increment a counter with a non-atomic
    /// read-modify-write inside nested sections: no increment is lost.
    #[test]
    fn sections_exclude_other_cpus() {
        const ROUNDS: u64 = 20_000;
        let lock = Arc::new(CpuLock::new());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4u32)
            .map(|cpu| {
                let (lock, counter) = (Arc::clone(&lock), Arc::clone(&counter));
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        let outer = lock.enter(cpu);
                        let inner = lock.enter(cpu);
                        // Split load and store: two holders at once would lose updates.
                        let seen = counter.load(Ordering::Relaxed);
                        std::hint::spin_loop();
                        counter.store(seen + 1, Ordering::Relaxed);
                        lock.leave(inner);
                        lock.leave(outer);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 4 * ROUNDS);
        assert_eq!(lock.holder(), None);
    }
}
