//! Allocator trait with buddy, region and TLSF backends, exact statistics and byte limits.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 4 of the project.
//!
//! What it will own: the `Allocator` trait, buddy (pages), region (bump) and TLSF backends, a `GlobalAlloc` adapter, Unikraft-style statistics and an RLIMIT_DATA-style byte limit. Until then images use uk-rt's early heap.
#![no_std]
