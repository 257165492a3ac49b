//! Writes the board's linker script, `uk-qemu-virt.ld`, into `OUT_DIR` and puts that
//! directory on the linker search path, so every image depending on this crate links with
//! `-C link-arg=-Tuk-qemu-virt.ld` (set in the workspace's `.cargo/config.toml`).

use std::{env, fs, path::PathBuf};

#[allow(dead_code)]
mod layout {
    include!("src/layout.rs");
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = linker_script();
    fs::write(out.join("uk-qemu-virt.ld"), script).expect("write the linker script");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/layout.rs");
}

fn linker_script() -> String {
    format!(
        r#"/* uk-qemu-virt.ld: written by the build script of uk-board-qemu-virt; do not edit. */
ENTRY(_start)

/* Three load segments (and PT_TLS over the thread-local template in the data segment): the
 * ELF headers share the first page with the code, so the file needs no padding up to the 64 KiB segment alignment and the image stays small. The page tables give
 * each part its rights (see the crate's pagetable module). */
PHDRS
{{
    text PT_LOAD FILEHDR PHDRS FLAGS(5);
    rodata PT_LOAD FLAGS(4);
    data PT_LOAD FLAGS(6);
    tls PT_TLS;
}}

SECTIONS
{{
    __uk_image_start = {image_base:#x};
    . = __uk_image_start + SIZEOF_HEADERS;

    .text : {{
        KEEP(*(.text.uk_boot))
        *(.text .text.*)
    }} :text
    . = ALIGN(4096);
    __uk_code_end = .;

    .rodata : {{
        *(.rodata .rodata.*)
    }} :rodata
    . = ALIGN(4096);
    __uk_rodata_end = .;

    .data : {{
        *(.data .data.*)
    }} :data
    /* Thread-local template: the linker makes a PT_TLS segment of these two. .tdata is
       loaded (its bytes are every thread's initial values); .tbss takes no space in the
       image. The symbols below give uk-context the template (`uk_context::tls::image_template`). */
    .tdata : ALIGN(8) {{
        __uk_tdata_keep = .;
        *(.tdata .tdata.* .gnu.linkonce.td.*)
    }} :data :tls
    .tbss : ALIGN(8) {{
        __uk_tbss_keep = .;
        *(.tbss .tbss.* .gnu.linkonce.tb.*)
        *(.tcommon)
    }} :data :tls
    __uk_tdata_start = ADDR(.tdata);
    __uk_tdata_end = ADDR(.tdata) + SIZEOF(.tdata);
    /* .tbss plus any padding between the end of .tdata and its start. An empty .tbss
       is not part of the TLS segment, and lld gives it the address where the location
       counter happens to be, so its size is 0, not the distance to that address. */
    __uk_tbss_size = SIZEOF(.tbss) > 0 ? ADDR(.tbss) + SIZEOF(.tbss) - __uk_tdata_end : 0;
    __uk_tls_align = MAX(ALIGNOF(.tdata), ALIGNOF(.tbss));

    /* Aligned to 64 bytes at both ends: the entry code zeroes it 64 bytes at a time. */
    .bss (NOLOAD) : ALIGN(64) {{
        __uk_bss_start = .;
        *(.bss .bss.*)
        *(COMMON)
        . = ALIGN(64);
        __uk_bss_end = .;
    }} :data

    /* Stacks grow down; an unmapped guard page below each turns an overflow into a fault. */
    .stacks (NOLOAD) : ALIGN(4096) {{
        __uk_boot_stack_guard = .;
        . += 4096;
        . += {boot_stack:#x};
        __uk_boot_stack_top = .;
        __uk_exception_stack_guard = .;
        . += 4096;
        . += {exception_stack:#x};
        __uk_exception_stack_top = .;
    }} :data

    /* Level 1, level 2 for the image's GiB, level 2 for the low GiB (devices, the flash
     * window unmapped), and enough level-3 tables for the image page by page (one per 2 MiB,
     * plus one for the tables themselves and one for a 2 MiB crossing). */
    .page_tables (NOLOAD) : ALIGN(4096) {{
        __uk_page_tables = .;
        . += 4096 * (3 + (. - __uk_image_start) / 0x200000 + 2);
        __uk_page_tables_end = .;
    }} :data

    __uk_image_end = .;

    /DISCARD/ : {{
        *(.eh_frame .eh_frame_hdr .eh_frame.*)
        *(.note .note.*)
        *(.comment)
    }}
}}

ASSERT(__uk_image_start >= {ram_base:#x} + 0x100000, "the image must leave room for the device tree at the start of RAM")
ASSERT(__uk_image_end <= {ram_base:#x} + 0x40000000, "the image must end within the first GiB of RAM")
"#,
        image_base = layout::IMAGE_BASE,
        ram_base = layout::RAM_BASE,
        // Cargo sets it when the image (not this script) has debug assertions.
        boot_stack = layout::boot_stack_size(env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_some()),
        exception_stack = layout::EXCEPTION_STACK_SIZE,
    )
}
