//! Register, extended (FPU/SIMD) and TLS contexts for x86_64 and aarch64.
//!
//! This crate is the part of a thread switch that depends on the processor; it knows
//! nothing about threads or schedulers. A scheduler (`uk-sched`, or your own) drives it
//! through one trait, [`ContextOps`]:
//!
//! - **Register context.** [`ContextOps::init`] prepares a [`Context`] on a stack the caller
//!   chose (any size that holds the initial frame; the top is aligned as the ABI requires),
//!   so that the first switch to it calls `entry(arg0, arg1)` with every other general
//!   register zero and the frame pointer zero (back-traces stop there).
//!   [`ContextOps::switch`] saves only the registers the ABI makes callee-saved plus the
//!   stack pointer. On x86_64 it is inline assembly that declares every other register
//!   clobbered, so the compiler spills only what is live at that point (and the callee-saved
//!   r12–r15 it uses); on aarch64 it is an ordinary function call for the compiler, so
//!   everything else is already spilled by the caller. A [`Context`] is a single word, the
//!   saved stack pointer; the registers live on the thread's own stack.
//! - **Extended context.** FPU/SIMD state is saved separately and only for threads that have
//!   an area for it ([`ContextOps::ectx_layout`], [`ContextOps::ectx_save`],
//!   [`ContextOps::ectx_restore`]). A context without one is what Unikraft calls
//!   "ISR-safe": code that uses general registers only never pays for FPU state. On x86_64
//!   the method comes from CPUID once, at [`X86_64::detect`]: `XSAVEOPT` when the OS enabled
//!   XSAVE and the CPU has it, else `XSAVE` (size from CPUID leaf 0xD), else `FXSAVE`
//!   (512 bytes). On aarch64 the area holds q0–q31, FPSR and FPCR. [`ContextOps::ectx_init`]
//!   stores the caller's current state into a fresh area, so a new thread inherits its
//!   creator's control state (MXCSR and the x87 control word, resp. FPCR).
//! - **TLS.** [`tls`] computes the layout of a thread's TLS block from a [`TlsTemplate`]
//!   (the image's `.tdata` bytes, `.tbss` size and the segment's `p_align`) with room for a
//!   TCB of the caller's choice (a libc's thread structure), for TLS variant II (x86_64: data
//!   below the thread pointer, a self pointer at it) and variant I (aarch64: a 16-byte TCB
//!   reserve at the thread pointer, data above it). The layout is pure arithmetic and is
//!   tested on the host for many sizes and alignments. [`ContextOps::set_thread_pointer`]
//!   installs the result (FS base, `TPIDR_EL0`).
//!
//! # Running in a Linux process
//!
//! The x86_64 implementation also works in a Linux user process: switching stacks, XSAVE
//! and FXSAVE are all legal in ring 3. Only the thread pointer is left alone there (the
//! host's libc owns FS base), so [`ContextOps::set_thread_pointer`] does nothing and
//! [`ContextOps::thread_pointer`] reads 0. This is how `uk-sched` is unit-tested and
//! benchmarked on the host.
//!
//! # Rules for the caller
//!
//! The extended context must be saved by the thread that leaves *before*
//! [`ContextOps::switch`] and restored by the thread that resumes *after* `switch` returns
//! in it (a new thread restores it before its entry runs). Restoring it inside one thread
//! keeps the callee-saved SIMD registers (aarch64 d8–d15) consistent with what the register
//! switch saved on the stack.
//!
//! # Features
//!
//! - `ktest`: registers in-image test cases with `uk-test` (FPU/SIMD registers survive
//!   switches, the thread pointer reads back what was installed).
//!
//! # Example
//!
//! Two contexts on the host (x86_64): the main context starts a second one on a heap stack
//! and the second switches back.
//!
//! ```
//! # #[cfg(target_arch = "x86_64")] {
//! use uk_context::{Context, ContextOps, X86_64};
//!
//! static mut MAIN: Context = Context::new();
//! static mut CHILD: Context = Context::new();
//!
//! extern "C" fn child(a: usize, b: usize) -> ! {
//!     assert_eq!((a, b), (7, 9));
//!     let ops = X86_64::detect();
//!     // SAFETY: both contexts are valid; MAIN was saved by the switch that started us.
//!     unsafe { ops.switch(&raw mut CHILD, &raw const MAIN) };
//!     unreachable!("nobody resumes the child");
//! }
//!
//! let ops = X86_64::detect();
//! let mut stack = vec![0u8; 16 * 1024];
//! // SAFETY: the stack outlives every use of CHILD and is used by nothing else.
//! unsafe {
//!     let ctx = &raw mut CHILD;
//!     ops.init(&mut *ctx, stack.as_mut_ptr(), stack.len(), child, 7, 9).unwrap();
//!     ops.switch(&raw mut MAIN, &raw const CHILD);
//! }
//! # }
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

pub mod tls;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(all(feature = "ktest", target_os = "none"))]
mod ktest;

use core::alloc::Layout;
use core::fmt;

#[cfg(target_arch = "aarch64")]
pub use aarch64::Aarch64;
pub use tls::{TcbSpec, TlsError, TlsLayout, TlsTemplate, TlsVariant};
#[cfg(target_arch = "x86_64")]
pub use x86_64::{X86_64, XsaveMethod};

/// The [`ContextOps`] implementation of the architecture this crate is compiled for.
#[cfg(target_arch = "x86_64")]
pub type Native = X86_64;
/// The [`ContextOps`] implementation of the architecture this crate is compiled for.
#[cfg(target_arch = "aarch64")]
pub type Native = Aarch64;

/// The function a new context starts in: it receives the two arguments given to
/// [`ContextOps::init`] and must never return (there is nothing to return to; the
/// implementations trap if it does).
pub type EntryFn = extern "C" fn(usize, usize) -> !;

/// A saved register context: the stack pointer of a thread that is not running.
///
/// The registers themselves are on that thread's stack, pushed by [`ContextOps::switch`] or
/// laid out by [`ContextOps::init`]. A `Context` is meaningful only between the switch that
/// saved it and the switch that resumes it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Saved stack pointer (0 while the context is running or was never initialised).
    pub sp: usize,
}

impl Context {
    /// An empty context, to be filled by [`ContextOps::init`] or by the switch away from the
    /// running code.
    pub const fn new() -> Self {
        Self { sp: 0 }
    }
}

/// Why a context could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextError {
    /// The stack cannot hold the initial frame after aligning its top.
    StackTooSmall {
        /// Bytes offered.
        size: usize,
        /// Bytes needed at least (before alignment loss).
        needed: usize,
    },
    /// The stack range wraps around the address space or starts at null.
    BadStack,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StackTooSmall { size, needed } => {
                write!(
                    f,
                    "stack of {size} bytes too small: the initial frame needs {needed}"
                )
            }
            Self::BadStack => f.write_str("stack range is null or wraps around"),
        }
    }
}

impl core::error::Error for ContextError {}

/// The processor-dependent half of a thread switch.
///
/// # Safety
///
/// Implementors promise what the methods document: `init` builds a frame that `switch`
/// resumes into `entry(arg0, arg1)` on the given stack; `switch` preserves every register
/// the platform ABI requires a callee to preserve and resumes the target exactly where its
/// own `switch` call left off; the extended-context methods touch exactly
/// [`ContextOps::ectx_layout`]`().size()` bytes. Schedulers rely on this for memory safety.
pub unsafe trait ContextOps {
    /// The TLS layout this architecture's ABI uses (for [`TlsLayout::new`]).
    const TLS_VARIANT: TlsVariant;

    /// Prepares `ctx` so that the first [`switch`](ContextOps::switch) to it calls
    /// `entry(arg0, arg1)` on the stack `[stack, stack + size)`.
    ///
    /// The stack top is aligned down as the ABI requires; every other general register is
    /// zero at entry. Only the top few words of the stack are written.
    ///
    /// # Errors
    ///
    /// [`ContextError::StackTooSmall`] when the aligned stack cannot hold the initial frame,
    /// [`ContextError::BadStack`] for a null or wrapping range. `ctx` is unchanged then.
    ///
    /// # Safety
    ///
    /// The stack must be writable memory used by nothing else for as long as the context
    /// may run.
    unsafe fn init(
        &self,
        ctx: &mut Context,
        stack: *mut u8,
        size: usize,
        entry: EntryFn,
        arg0: usize,
        arg1: usize,
    ) -> Result<(), ContextError>;

    /// Saves the running context into `prev` and resumes `next`. Returns when some other
    /// code switches back to `prev`.
    ///
    /// Only the ABI's callee-saved registers and the stack pointer are saved; the extended
    /// context is the caller's business (see the crate docs for the order).
    ///
    /// # Safety
    ///
    /// `prev` must be valid for writes; `next` must hold a context saved by `switch` or set
    /// up by [`init`](ContextOps::init) whose stack is still alive, and must not be the
    /// running context. Interrupt handlers must not observe the half-switched state (call
    /// with interrupts masked if they could switch too).
    unsafe fn switch(&self, prev: *mut Context, next: *const Context);

    /// Size and alignment of an extended-context area.
    fn ectx_layout(&self) -> Layout;

    /// Initialises an extended-context area with the caller's current state (so the new
    /// thread inherits the control state: MXCSR and x87 control word, resp. FPCR).
    ///
    /// # Safety
    ///
    /// `area` must be valid for writes of [`ectx_layout`](ContextOps::ectx_layout) bytes and
    /// aligned to its alignment.
    unsafe fn ectx_init(&self, area: *mut u8);

    /// Saves the current FPU/SIMD state into `area`.
    ///
    /// # Safety
    ///
    /// As [`ectx_init`](ContextOps::ectx_init); the area must have been initialised by it.
    unsafe fn ectx_save(&self, area: *mut u8);

    /// Loads the FPU/SIMD state from `area`.
    ///
    /// # Safety
    ///
    /// `area` must hold state written by [`ectx_init`](ContextOps::ectx_init) or
    /// [`ectx_save`](ContextOps::ectx_save) of this same implementation.
    unsafe fn ectx_restore(&self, area: *const u8);

    /// Installs `tp` as the thread pointer (FS base on x86_64, `TPIDR_EL0` on aarch64).
    /// Does nothing when running in a hosted process, whose libc owns the thread pointer.
    ///
    /// # Safety
    ///
    /// Code that reads thread-local data afterwards must find a TLS block laid out for this
    /// architecture at `tp` (or must not read any).
    unsafe fn set_thread_pointer(&self, tp: usize);

    /// The thread pointer as last installed (0 in a hosted process).
    fn thread_pointer(&self) -> usize;

    /// Whether a thread can change its thread pointer without the kernel: aarch64's
    /// `TPIDR_EL0` is an ordinary register that libcs write themselves (musl's
    /// `__set_thread_area` is one `msr`), while x86_64's FS base takes `arch_prctl`. A
    /// scheduler then reads the register back when it switches a thread out, as Linux
    /// does, so that the value the thread set is the one it finds again.
    const THREAD_POINTER_SET_BY_THREADS: bool = false;
}

/// Returns `value` rounded up to a multiple of `align` (a power of two), or `None` on
/// overflow.
pub(crate) const fn align_up(value: usize, align: usize) -> Option<usize> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Checks a stack range and returns its aligned top, or an error if fewer than `needed`
/// bytes remain below the aligned top.
pub(crate) fn stack_top(
    stack: *mut u8,
    size: usize,
    align: usize,
    needed: usize,
) -> Result<usize, ContextError> {
    let base = stack as usize;
    let end = base.checked_add(size).ok_or(ContextError::BadStack)?;
    if base == 0 {
        return Err(ContextError::BadStack);
    }
    let top = end & !(align - 1);
    if top < base || top - base < needed {
        return Err(ContextError::StackTooSmall { size, needed });
    }
    Ok(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_top_aligns_and_checks_size() {
        let p = 0x1000 as *mut u8;
        assert_eq!(stack_top(p, 0x100, 16, 64), Ok(0x1100));
        assert_eq!(stack_top(0x1001 as *mut u8, 0x100, 16, 64), Ok(0x1100));
        assert_eq!(
            stack_top(0x1001 as *mut u8, 0x4e, 16, 64),
            Err(ContextError::StackTooSmall {
                size: 0x4e,
                needed: 64
            })
        );
        assert_eq!(
            stack_top(p, 63, 16, 64),
            Err(ContextError::StackTooSmall {
                size: 63,
                needed: 64
            })
        );
        assert_eq!(
            stack_top(core::ptr::null_mut(), 4096, 16, 64),
            Err(ContextError::BadStack)
        );
        assert_eq!(
            stack_top(usize::MAX as *mut u8, 4096, 16, 64),
            Err(ContextError::BadStack)
        );
    }

    #[test]
    fn align_up_works() {
        assert_eq!(align_up(0, 8), Some(0));
        assert_eq!(align_up(1, 8), Some(8));
        assert_eq!(align_up(8, 8), Some(8));
        assert_eq!(align_up(usize::MAX, 2), None);
    }
}
