// The image layout constants, shared by the crate (`mod layout`) and its build script
// (`include!`), which writes them into the linker script.

/// Where the image is linked: 2 MiB above the start of `virt`'s RAM, leaving the first
/// 2 MiB to the device tree QEMU writes there (QEMU limits the blob to the space below the
/// image's lowest address).
pub const IMAGE_BASE: u64 = 0x4020_0000;

/// Where `virt`'s RAM starts, and so where QEMU puts the device tree for an ELF image.
pub const RAM_BASE: u64 = 0x4000_0000;

/// Size of the boot stack `main` runs on (a guard page below it is unmapped), for an image
/// built with or without debug assertions. Unoptimised builds move large values through
/// several stack temporaries (a TLSF control block of about 10 KiB becomes a 78 KiB frame
/// in uk-mte's in-image tests), so a debug image gets four times the room, 256 KiB as on
/// x86-pc. The build script asks with the target's `CARGO_CFG_DEBUG_ASSERTIONS`, not its
/// own `cfg!(debug_assertions)`: build scripts are compiled with settings of their own.
pub const fn boot_stack_size(debug_assertions: bool) -> u64 {
    if debug_assertions {
        256 * 1024
    } else {
        64 * 1024
    }
}

/// Size of this build's boot stack: [`boot_stack_size`] of the crate's own
/// `debug_assertions`, which are the image's (Cargo builds the crate with the image's profile).
pub const BOOT_STACK_SIZE: u64 = boot_stack_size(cfg!(debug_assertions));

/// Size of the stack exception handlers run on (a guard page below it is unmapped).
pub const EXCEPTION_STACK_SIZE: u64 = 16 * 1024;
