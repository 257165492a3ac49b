//! Links defmt's linker script, which keeps the `.defmt` section (the interned strings
//! `cargo uk` decodes frames with) next to the board's own script.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=build.rs");
}
