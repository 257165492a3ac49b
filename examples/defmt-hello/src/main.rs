//! defmt on uk-rs: the image logs with `defmt::info!` and friends, which write compact
//! binary frames (an index into the image's table of strings plus the arguments) on the
//! serial line instead of formatted text; `cargo uk run` decodes them with the image's
//! `.defmt` table, so the terminal shows plain text. Plain `println!` text shares the line.
//!
//! ```text
//! cargo uk run -p defmt-hello                      # x86-pc
//! cargo uk run -p defmt-hello --board qemu-virt    # aarch64
//! ```
#![no_std]
#![no_main]

uk_app::main!(main);

fn main(args: &uk_app::Args) -> i32 {
    let platform = uk_app::platform();
    uk_app::println!("defmt-hello: plain text still works");
    defmt::info!("Hello from defmt on {=str}", platform.board_name());
    let ram: u64 = platform.memory_regions().iter().map(|r| r.size).sum();
    defmt::info!(
        "{=u64} KiB of RAM, {=usize} arguments",
        ram / 1024,
        args.len()
    );
    // Left out of the image unless built with DEFMT_LOG=debug (cargo uk uses `info`).
    defmt::debug!("debug frames cost nothing when filtered out");
    defmt::warn!(
        "a warning with a float {=f32} and a list {=[u8]}",
        1.5,
        [1u8, 2, 3][..]
    );
    let ns = platform.monotonic_ns();
    defmt::error!("an error at {=u64} ns", ns);
    uk_app::println!("defmt-hello: done");
    0
}
