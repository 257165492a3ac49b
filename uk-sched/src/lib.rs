//! Threads made apart from schedulers, a Scheduler trait, cooperative and preemptive policies, wait queues and locks.
//!
//! **Not built yet.** This crate holds its place in the workspace so the layout of
//! `DESIGN.md` is complete; it contains no code and exports nothing. The work is tracked in
//! issue 3 of the project.
//!
//! What it will own: threads (stack, TLS, entry) created apart from scheduler instances and movable between them, the `Scheduler` trait, cooperative and preemptive round robin, wait queues, semaphore, mutex and condition variable.
#![no_std]
