//! The smallest uk-rs application: greets, names the board, echoes its arguments and reports
//! how long the guest took from its first instruction to `main`.
//!
//! ```text
//! cargo uk run                               # x86-pc
//! cargo uk run --board qemu-virt -- a "b c"  # aarch64, with two arguments
//! ```
#![no_std]
#![no_main]

uk_app::main!(main);

fn main(args: &uk_app::Args) -> i32 {
    let platform = uk_app::platform();
    let boot_ns = uk_app::time_to_main_ns();
    uk_app::println!(
        "Hello from uk-rs on {} ({})",
        platform.board_name(),
        platform.machine()
    );
    uk_app::println!("args: {:?}", args.as_slice());
    let regions = platform.memory_regions();
    let ram: u64 = regions.iter().map(|region| region.size).sum();
    uk_app::log::info!(
        "{} KiB of free RAM in {} regions",
        ram / 1024,
        regions.len()
    );
    uk_app::println!(
        "first instruction to main: {}.{:03} us",
        boot_ns / 1_000,
        boot_ns % 1_000
    );
    0
}
