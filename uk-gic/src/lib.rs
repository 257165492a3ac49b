//! Arm GICv2 and GICv3 interrupt controller drivers with software-generated interrupts.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 5 of the project.
//!
//! What it will own: distributor, redistributor and CPU interface drivers, a bit-exact SGI encoder, behind uk-hal's interrupt-controller traits.
#![no_std]
