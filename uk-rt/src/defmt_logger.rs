//! The defmt global logger (feature `defmt`).
//!
//! Every defmt log call becomes one frame on the board console: the byte `0xFF` (which
//! never occurs in UTF-8 text, so the host can tell frames from the plain text that shares
//! the line), then the frame rzcobs-encoded by [`defmt::Encoder`], which ends it with
//! `0x00`. `cargo uk run` (and `test`, `logs`) decodes frames with the image's table of
//! interned strings. Timestamps are microseconds of the board's monotonic clock.
//!
//! A frame is written while the logger is held. A log call made while another one is in
//! progress (from an interrupt handler, or another thread that preempted it) is dropped,
//! so that the frame in progress stays whole; it never spins or panics.
//!
//! The image's package must link defmt's linker script, which keeps the `.defmt` section
//! of interned strings: a `build.rs` with
//! `println!("cargo:rustc-link-arg-bins=-Tdefmt.x");` (defmt puts the script on the
//! linker search path).

use core::sync::atomic::{AtomicUsize, Ordering};

/// Byte written before each frame.
pub const FRAME_START: u8 = 0xFF;

/// How many log calls are in progress; only the outermost one writes.
static DEPTH: AtomicUsize = AtomicUsize::new(0);

static ENCODER: spin::Mutex<defmt::Encoder> = spin::Mutex::new(defmt::Encoder::new());

fn console(bytes: &[u8]) {
    if let Some(platform) = crate::try_platform() {
        platform.write_bytes(bytes);
    }
}

#[defmt::global_logger]
struct Logger;

// SAFETY: `acquire`/`release` pair up as defmt requires; only the outermost acquire (depth
// 0 -> 1) starts a frame and only its release ends it, and `write` encodes only at depth
// 1, so frames never interleave. The encoder is behind a lock besides.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if DEPTH.fetch_add(1, Ordering::Acquire) == 0 {
            console(&[FRAME_START]);
            ENCODER.lock().start_frame(console);
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        if DEPTH.load(Ordering::Relaxed) == 1 {
            ENCODER.lock().end_frame(console);
        }
        DEPTH.fetch_sub(1, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        if DEPTH.load(Ordering::Relaxed) == 1 {
            ENCODER.lock().write(bytes, console);
        }
    }
}

defmt::timestamp!(
    "{=u64:us}",
    crate::try_platform().map_or(0, |p| p.monotonic_ns() / 1_000)
);
