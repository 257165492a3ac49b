//! Linux syscall numbers, Errno, a dispatch table and binary syscall entry for x86_64 and aarch64.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 7 of the project.
//!
//! What it will own: syscall numbers for both architectures, `Errno`, the handler table (direct calls inside the image) and the `syscall`/`svc #0` entry paths to the same table.
#![no_std]
