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

/// Size of the stack the test runner restarts on (every case after a failed one runs on
/// it, and it has no guard page): as large as the boards' boot stacks, four times larger in
/// an unoptimised build, whose frames are several times larger.
const RUNNER_STACK_SIZE: usize = if cfg!(debug_assertions) { 256 } else { 64 } * 1024;

/// Top of the runner's restart stack; 0 until a test run starts. Taken from the heap when a
/// test run starts, so images that run no tests carry no extra stack.
static RUNNER_STACK_TOP: AtomicUsize = AtomicUsize::new(0);

/// The CPU state the test run started in, which a restart after a CPU exception puts back:
/// the failed case's exception was never returned from, so the CPU is still in exception
/// state (aarch64: on SP_EL1 with every interrupt masked, its exception stack holding the
/// abandoned frame; x86_64: interrupts off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuMode {
    /// aarch64: DAIF; x86_64: RFLAGS.IF (0x200) or 0.
    pub interrupt_mask: usize,
    /// aarch64: SPSel (0: the run uses SP_EL0); x86_64: 0.
    pub stack_select: usize,
    /// aarch64 with SPSel 0: SP_EL1 (the exception stack's top) at the start; otherwise 0.
    pub exception_stack: usize,
}

/// [`CpuMode`] at the start of the test run, packed (interrupt mask, stack select,
/// exception stack).
static START_MODE: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

impl CpuMode {
    /// The calling CPU's mode now.
    pub fn current() -> Self {
        #[cfg(target_arch = "aarch64")]
        {
            let (daif, spsel, sp_el1): (usize, usize, usize);
            // SAFETY: reads DAIF and SPSel; with every interrupt masked, briefly selects
            // SP_EL1 to read it (an EL1 cannot `mrs` SP_EL1) and selects the previous stack
            // pointer again before anything can use it. No memory is touched.
            unsafe {
                core::arch::asm!(
                    "mrs {daif}, daif",
                    "mrs {spsel}, spsel",
                    "msr daifset, #0xf",
                    "msr spsel, #1",
                    "mov {sp1}, sp",
                    "msr spsel, {spsel}",
                    "msr daif, {daif}",
                    daif = out(reg) daif, spsel = out(reg) spsel, sp1 = out(reg) sp_el1,
                    options(nomem, preserves_flags)
                );
            }
            let exception_stack = if spsel == 0 { sp_el1 } else { 0 };
            Self {
                interrupt_mask: daif,
                stack_select: spsel,
                exception_stack,
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            let rflags: usize;
            // SAFETY: reads RFLAGS through the stack (pushfq/pop), nothing else.
            unsafe {
                core::arch::asm!("pushfq", "pop {}", out(reg) rflags, options(preserves_flags))
            };
            Self {
                interrupt_mask: rflags & 0x200,
                ..Self::default()
            }
        }
    }

    /// The mode the test run started in (all zero before a test run).
    pub fn at_test_start() -> Self {
        Self {
            interrupt_mask: START_MODE[0].load(Ordering::SeqCst),
            stack_select: START_MODE[1].load(Ordering::SeqCst),
            exception_stack: START_MODE[2].load(Ordering::SeqCst),
        }
    }
}

/// Reserves the restart stack (once), records the CPU mode, and runs the tests.
pub(crate) fn start_tests() -> ! {
    if RUNNER_STACK_TOP.load(Ordering::SeqCst) == 0 {
        let stack = alloc::vec![0u128; RUNNER_STACK_SIZE / 16].leak();
        RUNNER_STACK_TOP.store(stack.as_ptr_range().end as usize, Ordering::SeqCst);
        let mode = CpuMode::current();
        START_MODE[0].store(mode.interrupt_mask, Ordering::SeqCst);
        START_MODE[1].store(mode.stack_select, Ordering::SeqCst);
        START_MODE[2].store(mode.exception_stack, Ordering::SeqCst);
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
    end_image()
}

/// [`fail`] for a CPU exception the board reported as `report`.
pub(crate) fn fail_exception(report: &str) -> ! {
    if Runner::global().abort_current_exception(report) {
        restart_tests_on_fresh_stack()
    }
    end_image()
}

/// Exits with [`FATAL_EXIT_CODE`] (no test case to charge).
fn end_image() -> ! {
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
    // aligned (u128 elements) allocation reserved for this purpose, and recorded the mode
    // the run started in; `continue_tests` never returns, so nothing pops past `top`.
    // Whatever ran on that stack before (a failed case) is abandoned for good, and no
    // reference into it survives.
    unsafe { restore_mode_and_call(CpuMode::at_test_start(), top, continue_tests) }
}

/// Puts the CPU back into `mode`, sets the stack pointer to `top` and calls `entry`.
///
/// # Safety
///
/// `top` must be the 16-byte aligned end of a stack no live data uses; `mode` must be one
/// [`CpuMode::current`] returned on this CPU, whose exception stack holds no live frame.
unsafe fn restore_mode_and_call(mode: CpuMode, top: usize, entry: extern "C" fn() -> !) -> ! {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller guarantees `top` is a free, aligned stack; `entry` diverges. The
    // `call` pushes a return address, so `entry` starts with rsp+8 16-byte aligned as the
    // System V ABI expects. Interrupts come back on only if the run started with them on.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "test {mask}, {mask}",
            "jz 2f",
            "sti",
            "2:",
            "call {entry}",
            top = in(reg) top, mask = in(reg) mode.interrupt_mask, entry = in(reg) entry,
            options(noreturn)
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; aarch64 requires only a 16-byte aligned sp at the call. With every
    // interrupt masked, SP_EL1 gets its top back (the abandoned exception frame is dropped)
    // when the run uses SP_EL0, the run's stack selection returns, then the run's DAIF.
    unsafe {
        core::arch::asm!(
            "msr daifset, #0xf",
            "cbz {spsel}, 2f",
            "mov sp, {top}",
            "b 3f",
            "2:",
            "msr spsel, #1",
            "mov sp, {sp1}",
            "msr spsel, #0",
            "mov sp, {top}",
            "3:",
            "msr daif, {daif}",
            "mov x29, xzr",
            "blr {entry}",
            top = in(reg) top, spsel = in(reg) mode.stack_select,
            sp1 = in(reg) mode.exception_stack, daif = in(reg) mode.interrupt_mask,
            entry = in(reg) entry, options(noreturn)
        );
    }
}
