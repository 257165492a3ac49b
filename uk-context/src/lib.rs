//! Register, extended (FPU/SIMD) and TLS contexts for x86_64 and aarch64.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 3 of the project.
//!
//! What it will own: the `ContextOps` trait (initialise a context on a caller-chosen stack, switch, save and restore the extended context, set the thread pointer), and TLS areas built from the image's `.tdata`/`.tbss` with room for a third-party TCB.
#![no_std]
