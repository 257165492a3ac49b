//! The in-image test image: every in-image test case registered by a linked crate (the
//! test framework's self-test, the board's cases, later every subsystem's) runs inside the
//! booted unikernel. Application arguments are filters (substrings of `suite::name`).
//!
//! ```text
//! cargo uk test                          # runs this image on every board configuration
//! cargo uk test --filter selftest        # only matching cases
//! ```
#![no_std]
#![no_main]

// Link the crates whose in-image cases this image runs.
use uk_alloc as _;
use uk_context as _;
use uk_gic as _;
use uk_mte as _;
use uk_posix_process as _;
use uk_random as _;
use uk_sched as _;
use uk_syscall as _;
use uk_vfs as _;
use uk_virtio as _;

uk_app::main!(main);

fn main(args: &uk_app::Args) -> i32 {
    uk_app::run_tests(args.as_slice())
}
