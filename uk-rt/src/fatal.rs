//! The one path for fatal events: panics and CPU exceptions.
//!
//! Outside a test case the image exits with [`crate::FATAL_EXIT_CODE`]. Inside one, the case
//! is charged with the failure and the test run restarts on a fresh stack: the frames of the
//! failed case are abandoned, never unwound (images are built with `panic = "abort"`), so no
//! destructor of the failed case runs. That is acceptable in a test image and is what makes
//! a panic or a CPU exception unable to hang or end the run.

extern crate alloc;

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicUsize, Ordering};

use uk_test::{Failure, Runner, SourcePath};

use crate::{FATAL_EXIT_CODE, println, try_platform};

/// Size of the stack the test runner restarts on.
const RUNNER_STACK_SIZE: usize = 64 * 1024;

/// Top of the runner's restart stack; 0 until a test run starts. Taken from the heap when a
/// test run starts, so images that run no tests carry no extra stack.
static RUNNER_STACK_TOP: AtomicUsize = AtomicUsize::new(0);

/// Reserves the restart stack (once) and runs the tests.
pub(crate) fn start_tests() -> ! {
    if RUNNER_STACK_TOP.load(Ordering::SeqCst) == 0 {
        let stack = alloc::vec![0u128; RUNNER_STACK_SIZE / 16].leak();
        RUNNER_STACK_TOP.store(stack.as_ptr_range().end as usize, Ordering::SeqCst);
    }
    continue_tests()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let (file, line) = info
        .location()
        .map_or(("<unknown>", 0), |l| (l.file(), l.line()));
    println!("panicked at {file}:{line}: {}", info.message());
    fail(Failure::Panic {
        file: SourcePath::new(file),
        line,
    })
}

/// Charges `failure` to the running test case and continues the run, or ends the image.
pub(crate) fn fail(failure: Failure) -> ! {
    if Runner::global().abort_current(failure) {
        restart_tests_on_fresh_stack()
    }
    match try_platform() {
        Some(platform) => platform.exit(FATAL_EXIT_CODE),
        // Before the board handed over there is no way to report; stop here.
        None => loop {
            core::hint::spin_loop();
        },
    }
}

/// Runs (or resumes) the test run and exits with its result.
pub(crate) extern "C" fn continue_tests() -> ! {
    let summary = Runner::global().run();
    crate::platform().exit(if summary.success() { 0 } else { 1 })
}

fn restart_tests_on_fresh_stack() -> ! {
    let top = RUNNER_STACK_TOP.load(Ordering::SeqCst);
    // SAFETY: a case is running, so `start_tests` set `top` to the end of a leaked, 16-byte
    // aligned (u128 elements) allocation reserved for this purpose; `continue_tests` never
    // returns, so nothing pops past `top`. Whatever ran on that stack before (a failed case)
    // is abandoned for good, and no reference into it survives.
    unsafe { switch_stack_and_call(top, continue_tests) }
}

/// Sets the stack pointer to `top` and calls `entry`.
///
/// # Safety
///
/// `top` must be the 16-byte aligned end of a stack no live data uses.
unsafe fn switch_stack_and_call(top: usize, entry: extern "C" fn() -> !) -> ! {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller guarantees `top` is a free, aligned stack; `entry` diverges. The
    // `call` pushes a return address, so `entry` starts with rsp+8 16-byte aligned as the
    // System V ABI expects.
    unsafe {
        core::arch::asm!("mov rsp, {top}", "xor ebp, ebp", "call {entry}",
            top = in(reg) top, entry = in(reg) entry, options(noreturn));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; aarch64 requires only a 16-byte aligned sp at the call.
    unsafe {
        core::arch::asm!("mov sp, {top}", "mov x29, xzr", "blr {entry}",
            top = in(reg) top, entry = in(reg) entry, options(noreturn));
    }
}
