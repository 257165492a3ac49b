//! Board-independent runtime of uk-rs images.
//!
//! A board crate brings the machine up (stack, MMU or paging, console, clock, memory map)
//! and then hands over to [`start`]. From there the runtime does what every image needs,
//! the same way on every board:
//!
//! 1. remembers the board as the image's [`Platform`] ([`platform`]);
//! 2. routes the `log` crate to the console, with a timestamp from the board clock;
//! 3. gives every usable memory region to the image allocator (feature `heap`): a
//!    `uk-alloc` heap behind the `#[global_allocator]`, so `alloc` works before `main`, and a
//!    buddy pool for pages ([`heap`], [`allocator`]);
//! 4. splits the kernel command line into kernel parameters and application arguments
//!    ([`cmdline`]);
//! 5. calls the application's `main` (declared with [`main!`]) and ends the run with its
//!    exit code through [`Platform::exit`].
//!
//! A panic prints its location and message and exits with status 101, as Rust's `std`
//! does. A board's exception handler prints its register report and then calls
//! [`fatal_error`]. Both go through the same path, which also serves the in-image test
//! driver ([`run_tests`]): when a test case is running, the failure is charged to that case
//! and the run continues with the next case on a fresh stack instead of ending.
//!
//! Everything that needs a bare-metal target (the panic handler, the global allocator
//! registration, the stack switch) is compiled only for `target_os = "none"`; the rest is
//! tested on the host.
//!
//! # Memory
//!
//! [`allocator`] returns the image's [`ImageAllocator`]: heap statistics and free memory,
//! the `RLIMIT_DATA`-style byte limit, page allocation (`palloc`/`pfree`), and the backend
//! itself through [`ImageAllocator::with_heap`]. The [`heap`] module explains where pages
//! come from and how they are counted. The `uk-alloc` crate is re-exported as
//! [`uk_alloc`].
//!
//! # Features
//!
//! - `alloc-tlsf` (default): the heap is `uk-alloc`'s TLSF (O(1) `malloc`/`free`).
//! - `alloc-buddy`: the heap is `uk-alloc`'s buddy allocator (whole pages; it serves page
//!   allocations itself).
//! - `alloc-region`: the heap is `uk-alloc`'s region (bump) allocator; `free` keeps the memory.
//! - `pages-buddy` (default): page allocations come from a buddy pool that takes chunks from
//!   the heap on demand; without it they come from the heap backend.
//! - `heap`: the umbrella the `alloc-*` features imply: without any of them there is no
//!   allocator at all (`default-features = false`), and an image must bring its own
//!   `#[global_allocator]`. Enabled alone it means `alloc-tlsf`. With several `alloc-*`
//!   features, `alloc-region` wins over `alloc-buddy`, which wins over `alloc-tlsf`.
//! - `defmt`: a defmt global logger on the board console (module `defmt_logger`, bare-metal
//!   targets only): `defmt::info!` and friends write compact binary frames that
//!   `cargo uk run` decodes into text; the image's package links `defmt.x` from its
//!   `build.rs`. The kernel parameter `sched=cooperative|preemptive` is read into
//!   [`cmdline::KernelParams::sched`] whatever the features.
//! - `critical-section` (default): the image implements the `critical-section` crate
//!   ([`critical`]): interrupts masked on the calling CPU plus one image-wide lock across
//!   CPUs, nestable. Turn it off (`default-features = false`) to bring your own.
//! - `ktest`: registers the in-image test cases of the image allocator (every region in
//!   use, exact statistics, the byte limit, page alignment) with `uk-test`.
//!
//! # Example
//!
//! An application is written against `uk-app`, which re-exports this crate:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! uk_app::main!(main);
//! fn main(args: &uk_app::Args) -> i32 {
//!     uk_app::println!("hello from {}", uk_app::platform().board_name());
//!     0
//! }
//! ```
#![no_std]

pub mod cmdline;
pub mod critical;
#[cfg(all(feature = "defmt", target_os = "none"))]
pub mod defmt_logger;
#[cfg(target_os = "none")]
mod fatal;
#[cfg(feature = "heap")]
pub mod heap;
#[cfg(all(feature = "ktest", feature = "heap"))]
mod ktests;
mod logger;

use core::sync::atomic::{AtomicU64, Ordering};

pub use cmdline::Args;
#[cfg(target_os = "none")]
pub use fatal::CpuMode;
#[cfg(feature = "heap")]
pub use heap::{ImageAllocator, allocator};
/// The `log` crate, re-exported so applications log without a dependency of their own.
pub use log;
/// The `uk-alloc` crate (allocator trait, statistics, errors), re-exported for applications.
#[cfg(feature = "heap")]
pub use uk_alloc;
pub use uk_hal::{Clock, Console, MemoryRegion, Platform};

/// Exit status of an image that panicked or took a fatal CPU exception (as Rust's `std`).
pub const FATAL_EXIT_CODE: u8 = 101;

static PLATFORM: spin::Once<&'static dyn Platform> = spin::Once::new();
static TIME_TO_MAIN_NS: AtomicU64 = AtomicU64::new(0);

/// The board this image runs on.
///
/// # Panics
///
/// If called before the board handed over to [`start`].
pub fn platform() -> &'static dyn Platform {
    *PLATFORM
        .get()
        .expect("uk_rt::platform() before uk_rt::start()")
}

/// The board, or `None` before [`start`] ran (useful in fault paths).
pub fn try_platform() -> Option<&'static dyn Platform> {
    PLATFORM.get().copied()
}

/// Nanoseconds from the image's first instruction to the call of the application's `main`.
pub fn time_to_main_ns() -> u64 {
    TIME_TO_MAIN_NS.load(Ordering::Relaxed)
}

/// How an application's `main` result becomes the image's exit code.
pub trait Termination {
    /// The exit code to report to the host.
    fn report(self) -> u8;
}

impl Termination for () {
    fn report(self) -> u8 {
        0
    }
}

impl Termination for u8 {
    fn report(self) -> u8 {
        self
    }
}

impl Termination for i32 {
    /// Only the low 8 bits reach the host, as with a Linux process.
    fn report(self) -> u8 {
        self as u8
    }
}

impl<T: Termination, E: core::fmt::Debug> Termination for Result<T, E> {
    fn report(self) -> u8 {
        match self {
            Ok(value) => value.report(),
            Err(error) => {
                println!("Error: {error:?}");
                1
            }
        }
    }
}

/// Declares the application's entry point; the runtime calls it after boot.
///
/// The function takes `&Args` and returns anything that implements [`Termination`]
/// (`()`, `i32`, `u8`, `Result<T, E: Debug>`).
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[doc(hidden)]
        #[unsafe(export_name = "__uk_app_main")]
        pub fn __uk_app_main(args: &$crate::Args) -> u8 {
            $crate::Termination::report($main(args))
        }
    };
}

/// Prints to the board console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

/// Prints a line to the board console, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments<'_>) {
    if let Some(platform) = try_platform() {
        let _ = core::fmt::Write::write_fmt(&mut uk_hal::ConsoleWriter(platform), args);
    }
}

#[cfg(target_os = "none")]
unsafe extern "Rust" {
    /// Defined by [`main!`] in the application.
    fn __uk_app_main(args: &Args) -> u8;
}

/// Registers the board as early as its console and exit work, before the rest of its
/// bring-up: from then on a panic is printed and ends the run through [`Platform::exit`]
/// instead of stopping silently. [`start`] registers the board too; calling both is fine,
/// and only the first registration counts.
pub fn install(platform: &'static dyn Platform) {
    let platform = *PLATFORM.call_once(|| platform);
    let clock: &'static &'static dyn uk_hal::Clock = BOARD_CLOCK.call_once(|| platform);
    uk_hal::register_system_clock(clock);
}

/// The board as a clock, kept for [`uk_hal::register_system_clock`].
static BOARD_CLOCK: spin::Once<&'static dyn uk_hal::Clock> = spin::Once::new();

/// Hands the machine over from the board to the runtime; never returns.
///
/// The board calls this once, with interrupts off, after its console, clock and memory map
/// work. Every region of [`Platform::memory_regions`] must be mapped and free.
#[cfg(target_os = "none")]
pub fn start(platform: &'static dyn Platform) -> ! {
    install(platform);
    let (params, args) = cmdline::split(platform.command_line());
    logger::init(platform, params.log_level);
    for unknown in params.unknown() {
        log::warn!("unknown kernel parameter `{unknown}` ignored");
    }
    #[cfg(feature = "heap")]
    heap::init(platform.memory_regions());
    TIME_TO_MAIN_NS.store(platform.monotonic_ns(), Ordering::Relaxed);
    // SAFETY: `__uk_app_main` is defined by `main!` with exactly this signature; an image
    // without it fails to link rather than calling something else.
    let code = unsafe { __uk_app_main(args) };
    platform.exit(code)
}

/// Runs every registered in-image test case selected by `filters` (substrings of
/// `suite::name`; none selects all), prints the closing `N passed, N failed` line and exits:
/// status 0 only when no case failed.
///
/// A panic or CPU exception inside a case fails that case; the run continues with the next.
#[cfg(target_os = "none")]
pub fn run_tests(filters: &'static [&'static str]) -> ! {
    uk_test::Runner::global().prepare(platform(), &uk_test::CASES, filters);
    fatal::start_tests()
}

/// Ends the image after a fatal CPU exception the board has already reported.
///
/// Inside a test case the case fails and the run continues with the next case; otherwise the
/// image exits with [`FATAL_EXIT_CODE`].
#[cfg(target_os = "none")]
pub fn fatal_error() -> ! {
    fatal::fail(uk_test::Failure::CpuException)
}

/// [`fatal_error`] with the text of the board's report (or its first part): a test case
/// that must fail with a CPU exception whose report contains some text
/// (`#[should_fail(cpu_exception = "text")]`) is checked against it.
#[cfg(target_os = "none")]
pub fn fatal_exception(report: &str) -> ! {
    fatal::fail_exception(report)
}
