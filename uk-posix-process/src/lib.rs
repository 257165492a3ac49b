//! POSIX process layer: pids, tids, clone, futex, exit, rlimits.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 7 of the project.
//!
//! What it will own: ids, clone and clone3 with Linux register semantics, futex, exit and exit_group, rlimits and the small process syscalls.
#![no_std]
