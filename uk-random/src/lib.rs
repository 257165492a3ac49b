//! Hardware randomness (RNDR, RDRAND/RDSEED), a ChaCha20 CSPRNG and getrandom semantics.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 6 of the project.
//!
//! What it will own: the `RandomSource` trait, hardware sources with bounded retries, a reseeding ChaCha20 generator and the getrandom syscall semantics.
#![no_std]
