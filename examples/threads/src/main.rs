//! Threads on uk-rs: a cooperative round-robin scheduler ([`uk_sched::RoundRobin`]) over
//! the board's clock runs three workers that take turns, a producer and a consumer that
//! hand items over a semaphore, and a sleeper; `main` becomes the idle loop until every
//! thread has exited.
//!
//! ```text
//! cargo uk run -p threads                       # x86-pc
//! cargo uk run -p threads --board qemu-virt     # aarch64
//! ```
#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Write;

use uk_context::Native;
use uk_sched::{RoundRobin, Scheduler, Semaphore, idle, sleep, yield_now};

uk_app::main!(main);

fn main(_args: &uk_app::Args) -> Result<(), uk_sched::SchedError> {
    let platform = uk_app::platform();
    // The simplest idle: watch the clock until the nearest deadline (uk_sched::irq::TimerIdle
    // halts until the timer interrupt instead; see examples/smp).
    let sched = RoundRobin::cooperative(Native::detect(), platform, idle::Poll);
    // Where the board can set page rights, every thread stack gets an inaccessible page
    // below it: a thread that overflows its stack faults at once.
    if let Some(protection) = platform.page_protection() {
        uk_sched::set_guard_pages(protection);
    }

    let turns = Rc::new(RefCell::new(String::new()));
    for name in ["a", "b", "c"] {
        let turns = turns.clone();
        sched.spawn(name, move || {
            for i in 0..3 {
                let _ = write!(turns.borrow_mut(), " {name}{i}");
                yield_now();
            }
        })?;
    }

    let items = Rc::new(Semaphore::new(0));
    let queue = Rc::new(RefCell::new(Vec::new()));
    let received = Rc::new(RefCell::new(Vec::new()));
    {
        let (items, queue) = (items.clone(), queue.clone());
        sched.spawn("producer", move || {
            for item in 1..=5 {
                queue.borrow_mut().push(item);
                items.up();
                yield_now();
            }
        })?;
    }
    {
        let (items, queue, received) = (items.clone(), queue.clone(), received.clone());
        sched.spawn("consumer", move || {
            for _ in 0..5 {
                items.down();
                let item = queue.borrow_mut().remove(0);
                received.borrow_mut().push(item);
            }
        })?;
    }

    let slept = Rc::new(RefCell::new(0u64));
    {
        let slept = slept.clone();
        sched.spawn("sleeper", move || {
            let start = uk_sched::now();
            sleep(10_000_000);
            *slept.borrow_mut() = uk_sched::now() - start;
        })?;
    }

    let start = platform.monotonic_ns();
    sched.run();
    let elapsed = platform.monotonic_ns() - start;

    uk_app::println!("threads: workers took turns:{}", turns.borrow());
    uk_app::println!("threads: consumer received {:?}", received.borrow());
    let slept = *slept.borrow();
    uk_app::println!(
        "threads: sleeper slept {}.{:03} ms (asked 10 ms)",
        slept / 1_000_000,
        slept / 1_000 % 1_000
    );
    let stats = sched.stats();
    uk_app::println!(
        "threads: {} threads reclaimed, {} switches, {} us",
        stats.reclaimed,
        stats.switches,
        elapsed / 1_000
    );
    // What the page below a new stack allows, as the board's page tables say.
    let stack = uk_sched::Stack::alloc(uk_sched::DEFAULT_STACK_SIZE)?;
    let below = platform
        .page_protection()
        .and_then(|p| p.access(stack.base() as usize - 1));
    uk_app::println!(
        "threads: below a stack: {}",
        match below {
            Some(uk_hal::PageAccess::None) if stack.has_guard_page() => "a guard page",
            _ => "no guard page",
        }
    );
    Ok(())
}
