// The image layout constants, shared by the crate (`mod layout`) and its build script
// (`include!`), which writes them into the linker script.

/// Where the image is linked: 2 MiB above the start of `virt`'s RAM, leaving the first
/// 2 MiB to the device tree QEMU writes there (QEMU limits the blob to the space below the
/// image's lowest address).
pub const IMAGE_BASE: u64 = 0x4020_0000;

/// Where `virt`'s RAM starts, and so where QEMU puts the device tree for an ELF image.
pub const RAM_BASE: u64 = 0x4000_0000;

/// Size of the boot stack `main` runs on (a guard page below it is unmapped).
pub const BOOT_STACK_SIZE: u64 = 64 * 1024;

/// Size of the stack exception handlers run on (a guard page below it is unmapped).
pub const EXCEPTION_STACK_SIZE: u64 = 16 * 1024;
