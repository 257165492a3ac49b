//! The one dependency of a uk-rs application.
//!
//! An application is written once and runs on every board: this crate re-exports the
//! runtime ([`uk_rt`]) and links the board crate that matches the compilation target
//! (`uk-board-x86-pc` for `x86_64-unknown-none`, `uk-board-qemu-virt` for
//! `aarch64-unknown-none`). Building the same application for another target is what moves
//! it to another board.
//!
//! The board brings the machine up and hands it to the runtime, which sets up logging and a
//! heap and then calls the function named by [`main!`].
//!
//! # Features
//!
//! - `ktest`: links the boards' in-image test cases (used by the `uk-ktest` image).
//! - `alloc-tlsf` (uk-rt's default), `alloc-buddy`, `alloc-region`: the heap allocator,
//!   forwarded to uk-rt; `cargo uk` enables one from `allocator` in the application's
//!   `[package.metadata.uk]`.
//! - `defmt`: log with defmt (uk-rt's `defmt` feature; see `examples/defmt-hello`).
//!
//! # Example
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! uk_app::main!(main);
//!
//! fn main(args: &uk_app::Args) -> i32 {
//!     log::info!("started with {} arguments", args.len());
//!     uk_app::println!("hello from {}", uk_app::platform().board_name());
//!     0
//! }
//! ```
#![no_std]

pub use uk_rt::*;

/// The board crate linked for this target.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use uk_board_x86_pc as board;

/// The board crate linked for this target.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use uk_board_qemu_virt as board;
