//! Serving Rust's `alloc` from any [`Allocator`]: the [`Locked`] adapter.
//!
//! ```
//! use uk_alloc::{Locked, Tlsf};
//!
//! // In an image: `#[global_allocator] static HEAP: Locked<Tlsf> = Locked::new(Tlsf::new());`
//! // and the board hands its RAM over with `HEAP.lock().add_memory(..)` at boot.
//! static HEAP: Locked<Tlsf> = Locked::new(Tlsf::new());
//! # use core::alloc::{GlobalAlloc, Layout};
//! # use uk_alloc::Allocator;
//! # let arena: &'static mut [u8] = Box::leak(vec![0u8; 1 << 16].into_boxed_slice());
//! // SAFETY: the leaked arena lives forever and is used for nothing else.
//! unsafe { HEAP.lock().add_memory(arena.as_mut_ptr(), arena.len()).unwrap() };
//! let layout = Layout::from_size_align(100, 64).unwrap();
//! // SAFETY: `layout` has a non-zero size; the pointer is freed with the same layout.
//! unsafe {
//!     let p = HEAP.alloc(layout);
//!     assert_eq!(p as usize % 64, 0);
//!     HEAP.dealloc(p, layout);
//! }
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use lock_api::{Mutex, MutexGuard, RawMutex};

use crate::{Allocator, MIN_ALIGN};

/// An [`Allocator`] behind a lock, implementing [`GlobalAlloc`] so it can be the
/// `#[global_allocator]`.
///
/// The lock is any [`lock_api::RawMutex`]: a spin lock by default (`spin::Mutex<()>`), or
/// [`CriticalSectionRawMutex`] where the allocator is also used
/// from interrupt handlers.
///
/// `GlobalAlloc::dealloc` cannot return an error and must not unwind, so a deallocation the
/// backend rejects (a bad or double free it detected) leaves the allocator untouched and is
/// counted in [`Locked::rejected_frees`] for the runtime to report.
pub struct Locked<A, R = spin::Mutex<()>> {
    inner: Mutex<R, A>,
    rejected: AtomicUsize,
}

impl<A, R: RawMutex> Locked<A, R> {
    /// Wraps `allocator`. Usable in a `static`.
    pub const fn new(allocator: A) -> Self {
        Locked {
            inner: Mutex::const_new(R::INIT, allocator),
            rejected: AtomicUsize::new(0),
        }
    }

    /// Locks the allocator, for the calls `GlobalAlloc` does not cover (adding memory,
    /// statistics, limits, pages).
    pub fn lock(&self) -> MutexGuard<'_, R, A> {
        self.inner.lock()
    }

    /// Number of deallocations the backend rejected as bad or double frees.
    pub fn rejected_frees(&self) -> usize {
        self.rejected.load(Ordering::Relaxed)
    }

    fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the backend under the lock; the backend returns blocks
// of at least `layout.size()` bytes aligned to `layout.align()` that do not overlap any live
// block, and keeps blocks valid until they are deallocated.
unsafe impl<A: Allocator, R: RawMutex> GlobalAlloc for Locked<A, R> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.lock().alloc_aligned(layout.align(), layout.size()) {
            Ok(p) => p.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else {
            return self.reject();
        };
        // SAFETY: `GlobalAlloc`'s contract makes `ptr` a live block of this allocator,
        // allocated with `layout` (or reallocated to its size).
        if unsafe { self.lock().free_sized(p, layout.size()) }.is_err() {
            self.reject();
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: `alloc` returned `layout.size()` writable bytes.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(p) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        if layout.align() <= MIN_ALIGN {
            // SAFETY: `GlobalAlloc`'s contract makes `ptr` live, allocated with `layout` (or
            // reallocated to its size), and `new_size` non-zero.
            return match unsafe { self.lock().realloc_sized(p, layout.size(), new_size) } {
                Ok(Some(n)) => n.as_ptr(),
                _ => ptr::null_mut(),
            };
        }
        // The backends' realloc keeps only MIN_ALIGN alignment when it moves a block, so
        // over-aligned blocks resize in place or move by hand.
        let mut a = self.lock();
        // SAFETY: as above.
        match unsafe { a.realloc_in_place(p, new_size) } {
            Ok(true) => return ptr,
            Ok(false) => {}
            Err(_) => return ptr::null_mut(),
        }
        let Ok(n) = a.alloc_aligned(layout.align(), new_size) else {
            return ptr::null_mut();
        };
        // SAFETY: `ptr` holds `layout.size()` bytes, `n` at least `new_size`; they are
        // distinct live blocks.
        unsafe {
            ptr::copy_nonoverlapping(ptr, n.as_ptr(), layout.size().min(new_size));
            if a.free(p).is_err() {
                drop(a);
                self.reject();
            }
        }
        n.as_ptr()
    }
}

/// A [`lock_api::RawMutex`] built on the `critical-section` crate: locking enters a
/// critical section (interrupts masked on a single core, plus whatever the board's
/// implementation does across cores) and unlocking leaves it.
///
/// Locking it again from inside its own critical section (an allocation from code that
/// holds the allocator's guard) is a bug and panics instead of deadlocking.
pub struct CriticalSectionRawMutex {
    taken: core::sync::atomic::AtomicBool,
    state: core::cell::UnsafeCell<core::mem::MaybeUninit<critical_section::RestoreState>>,
}

// SAFETY: `state` is only written by the holder of the lock (inside the critical section,
// after `taken` was set) and only read by it when unlocking.
unsafe impl Sync for CriticalSectionRawMutex {}

// SAFETY: `try_lock` only succeeds for one holder at a time: the critical section
// serialises callers, and `taken` refuses a second holder until `unlock`.
unsafe impl RawMutex for CriticalSectionRawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = CriticalSectionRawMutex {
        taken: core::sync::atomic::AtomicBool::new(false),
        state: core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()),
    };
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        assert!(
            self.try_lock(),
            "critical-section mutex locked again from inside its own critical section"
        );
    }

    fn try_lock(&self) -> bool {
        // SAFETY: every successful acquire is paired with a release, in `unlock` or just
        // below, in reverse order of acquisition.
        let state = unsafe { critical_section::acquire() };
        if self.taken.swap(true, Ordering::Acquire) {
            // SAFETY: releases the section acquired above.
            unsafe { critical_section::release(state) };
            return false;
        }
        // SAFETY: we hold the lock; nobody else touches `state` until `unlock`.
        unsafe { (*self.state.get()).write(state) };
        true
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock, so `try_lock` stored the restore state.
        let state = unsafe { (*self.state.get()).assume_init_read() };
        self.taken.store(false, Ordering::Release);
        // SAFETY: releases the section `try_lock` acquired.
        unsafe { critical_section::release(state) };
    }
}
