//! A VFS with Linux semantics: ramfs, devfs, pipes, initrd, getdents64.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 8 of the project.
//!
//! What it will own: mounts, path lookup, the fd table, ramfs, devfs, pipes, the initrd unpacker and the file syscalls.
#![no_std]
