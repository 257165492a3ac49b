//! Randomness on uk-rs: registers the virtio entropy device, if the machine has one, then
//! seeds the image-wide ChaCha20 generator (from RNDR/RNDRRS, from RDRAND/RDSEED, or — on a
//! CPU without them — from the entropy device, else from timer jitter with a warning in the
//! log), prints the source it chose and 16 random bytes, then measures the throughput of the
//! generator against the raw hardware instruction and the device.
//!
//! The manifest asks for the device (`rng = true`: QEMU `-device virtio-rng-pci` on x86
//! `pc`, `virtio-rng-device` on virtio-mmio).
//!
//! ```text
//! cargo uk run --example random                                       # x86-pc, -cpu max
//! cargo uk run --example random --board qemu-virt                     # aarch64, FEAT_RNG
//! cargo uk run --example random --board qemu-virt --variant cortex-a72  # no RNDR: virtio-rng
//! cargo uk run --example random --variant qemu64                        # no RDRAND: virtio-rng
//! ```
//!
//! Every boot prints different bytes.
#![no_std]
#![no_main]

use uk_hal::Clock;
use uk_random::RandomSource;

uk_app::main!(main);

/// The board clock, for jitter seeding and time-based reseeding.
struct BoardClock;

impl Clock for BoardClock {
    fn monotonic_ns(&self) -> u64 {
        uk_app::platform().monotonic_ns()
    }
    fn cycles(&self) -> u64 {
        uk_app::platform().cycles()
    }
    fn cycles_per_second(&self) -> u64 {
        uk_app::platform().cycles_per_second()
    }
}

static CLOCK: BoardClock = BoardClock;

/// How long each throughput measurement runs.
const BUDGET_NS: u64 = 200_000_000;

/// Bytes per second that `fill` sustains over [`BUDGET_NS`], in 4 KiB requests; `None` if
/// a request failed.
fn throughput(mut fill: impl FnMut(&mut [u8]) -> bool) -> Option<u64> {
    let mut buf = [0u8; 4096];
    let start = CLOCK.monotonic_ns();
    let mut bytes = 0u64;
    let mut elapsed = 0;
    while elapsed < BUDGET_NS {
        if !fill(&mut buf) {
            return None;
        }
        bytes += buf.len() as u64;
        elapsed = CLOCK.monotonic_ns() - start;
    }
    Some((u128::from(bytes) * 1_000_000_000 / u128::from(elapsed)) as u64)
}

fn main(_args: &uk_app::Args) -> i32 {
    // Before the first seed, so that a CPU without an instruction seeds from the device.
    let device = match uk_virtio::install_rng(uk_app::platform()) {
        Ok(rng) => {
            uk_app::println!("random: entropy device virtio-rng at {}", rng.location());
            Some(rng)
        }
        Err(uk_virtio::InstallError::Device(uk_virtio::Error::NotFound)) => {
            uk_app::println!("random: no entropy device");
            None
        }
        Err(e) => {
            uk_app::println!("random: {e}");
            return 1;
        }
    };
    let source = match uk_random::init(&CLOCK) {
        Ok(source) => source,
        Err(e) => {
            uk_app::println!("random: cannot seed: {e}");
            return 1;
        }
    };
    uk_app::println!("random: source {source}");

    let mut bytes = [0u8; 16];
    if let Err(e) = uk_random::getrandom(&mut bytes, 0) {
        uk_app::println!("random: getrandom failed: {e}");
        return 1;
    }
    uk_app::print!("random: 16 bytes ");
    for b in bytes {
        uk_app::print!("{b:02x}");
    }
    uk_app::println!();

    let Some(generator) = throughput(|buf| uk_random::fill_bytes(buf).is_ok()) else {
        uk_app::println!("random: the generator failed");
        return 1;
    };
    match uk_random::detect_hardware() {
        Some(mut hw) => {
            let kind = hw.kind();
            let random = throughput(|buf| hw.fill(buf).is_ok());
            let seed = throughput(|buf| hw.fill_seed(buf).is_ok());
            let (Some(random), Some(seed)) = (random, seed) else {
                uk_app::println!("random: {kind} failed while measuring");
                return 1;
            };
            uk_app::println!(
                "random: chacha20 {generator} B/s; {kind} {random} B/s (seed output {seed} B/s)"
            );
        }
        None => uk_app::println!("random: chacha20 {generator} B/s; no hardware instruction"),
    }
    if let Some(rng) = device {
        let Some(rate) = throughput(|buf| rng.read(buf).is_ok()) else {
            uk_app::println!("random: the entropy device failed while measuring");
            return 1;
        };
        uk_app::println!("random: virtio-rng {rate} B/s");
    }
    0
}
