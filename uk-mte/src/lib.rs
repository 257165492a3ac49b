//! Arm Memory Tagging Extension: enable, tag operations and a tagging allocator wrapper.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 4 of the project.
//!
//! What it will own: detection and enabling of FEAT_MTE2, tag instructions, and `Tagged<A: Allocator>` that catches overflows and use-after-free.
#![no_std]
