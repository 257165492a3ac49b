//! A second CPU and inter-processor interrupts, board-independent: everything goes through
//! the board's [`uk_hal::irq::Interrupts`] (`Platform::interrupts`), so the same code runs
//! on qemu-virt (GIC SGIs, PSCI `CPU_ON`) and x86-pc (local APIC IPIs, INIT/SIPI).
//!
//! CPU 0 starts CPU 1, then sends the application's free SGI/IPI to CPU 1 `ROUNDS` times;
//! CPU 1's handler notes the counter and answers CPU 0 with the same interrupt; CPU 0's
//! handler notes the counter again. Printed: the latency from the send to CPU 1's handler,
//! the round trip back to CPU 0, and an interrupt to self, each as minimum and median in
//! cycles of the board's counter (`Clock::cycles`: `CNTVCT_EL0`, the TSC).
//!
//! CPU 1 runs a uk-sched scheduler driven by its timer interrupt, whose one thread waits
//! for jobs. Last, CPU 0 hands it `ROUNDS` jobs, waking it each time through its
//! [`uk_sched::RemoteWaker`] (a request to CPU 1 plus uk-sched's wake-up interrupt), and
//! prints the latency from `wake()` to the thread running on CPU 1. Then the same
//! scheduler's echo thread, blocked on a [`uk_sched::SharedSemaphore`], answers `ROUNDS`
//! units from CPU 0 with a unit on another (which CPU 0, outside any thread, polls with
//! `try_down`): printed, the round trip. Last, CPU 0 starts a thread on CPU 1's scheduler
//! through its [`uk_sched::RemoteSpawner`] and prints where it ran and how soon.
//!
//! Finally, with CPU 1 still running, CPU 0 makes a heap page read-only and read-write
//! again `ROUNDS` times through the board's [`uk_hal::PageProtection`] and prints what a
//! round costs: every change reaches CPU 1's TLB before `set_access` returns (x86-pc: a
//! shootdown IPI CPU 1 answers; qemu-virt: broadcast TLB invalidation).
//!
//! ```text
//! cargo uk run --example smp --board qemu-virt --smp 2
//! cargo uk run --example smp --smp 2                    # x86-pc
//! ```
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use uk_context::Native;
use uk_hal::irq::{CpuSet, Interrupts, IpiTarget, IrqNumber};
use uk_hal::{PROTECTION_PAGE, PageAccess, Platform};
use uk_sched::irq::TimerIdle;
use uk_sched::{RemoteSpawner, RemoteWaker, RoundRobin, Scheduler, SharedSemaphore};

uk_app::main!(main);

/// Interrupts timed per measurement.
const ROUNDS: usize = 64;
/// How long to wait for one interrupt before giving up, in ns.
const PATIENCE_NS: u64 = 1_000_000_000;

/// Counter value when CPU 1's handler ran.
static AT_CPU1: AtomicU64 = AtomicU64::new(0);
/// Counter value when CPU 0's handler ran.
static AT_CPU0: AtomicU64 = AtomicU64::new(0);
/// Interrupts CPU 0's handler has seen.
static BACK: AtomicU32 = AtomicU32::new(0);
/// Whether CPU 1 answers (false while CPU 0 measures interrupts to itself).
static ANSWER: AtomicBool = AtomicBool::new(true);
static CPU1_UP: AtomicBool = AtomicBool::new(false);
/// The last job CPU 0 handed CPU 1's worker thread (0: none yet; `STOP` ends it).
static JOB: AtomicU32 = AtomicU32::new(0);
/// The last job the worker finished.
static DONE: AtomicU32 = AtomicU32::new(0);
/// Counter value when the worker took its last job.
static AT_WORKER: AtomicU64 = AtomicU64::new(0);
/// The worker's waker (a leaked box), published by CPU 1.
static WORKER: AtomicPtr<RemoteWaker> = AtomicPtr::new(core::ptr::null_mut());
const STOP: u32 = u32::MAX;
/// CPU 0 gives a unit here; CPU 1's echo thread takes it...
static PING: SharedSemaphore = SharedSemaphore::new(0);
/// ... and answers with one here.
static PONG: SharedSemaphore = SharedSemaphore::new(0);
/// Tells the echo thread, with a last unit, that no more come.
static ECHO_STOP: AtomicBool = AtomicBool::new(false);
/// CPU 1's spawner (a leaked box), published by CPU 1.
static SPAWNER: AtomicPtr<RemoteSpawner> = AtomicPtr::new(core::ptr::null_mut());
/// The spawned thread's report: its CPU id plus one (0: not run yet).
static SPAWNED_ON: AtomicU32 = AtomicU32::new(0);
/// Counter value when the spawned thread ran.
static AT_SPAWNED: AtomicU64 = AtomicU64::new(0);

fn interrupts() -> &'static dyn Interrupts {
    uk_app::platform()
        .interrupts()
        .expect("checked by main before any interrupt")
}

/// The one handler, on both CPUs.
fn on_ipi(irq: IrqNumber) {
    let now = uk_app::platform().cycles();
    let irqs = interrupts();
    if irqs.cpu_interface().cpu_id() == 0 {
        AT_CPU0.store(now, Ordering::SeqCst);
        BACK.fetch_add(1, Ordering::SeqCst);
    } else {
        AT_CPU1.store(now, Ordering::SeqCst);
        if ANSWER.load(Ordering::SeqCst) {
            let _ = irqs
                .cpu_interface()
                .send_ipi(irq, IpiTarget::Cpus(CpuSet::single(0)));
        }
    }
}

/// CPU 1's worker thread: waits for a job, takes it, waits for the next, until `STOP`.
fn worker() {
    let platform = uk_app::platform();
    loop {
        // Check between prepare and commit: a wake-up in between is not lost.
        uk_sched::prepare_block(None);
        let job = JOB.load(Ordering::Acquire);
        if job == DONE.load(Ordering::Relaxed) {
            uk_sched::commit_block();
            continue;
        }
        uk_sched::cancel_block();
        if job == STOP {
            return;
        }
        AT_WORKER.store(platform.cycles(), Ordering::SeqCst);
        DONE.store(job, Ordering::Release);
    }
}

/// CPU 1's echo thread: blocks until CPU 0 gives a unit on `PING`, answers on `PONG`.
fn echo() {
    loop {
        PING.down();
        if ECHO_STOP.load(Ordering::Acquire) {
            return;
        }
        PONG.up();
    }
}

/// CPU 1: a scheduler of its own with the worker and echo threads (interrupts are taken while it
/// idles), then sleep between interrupts.
fn cpu1_main(_cpu: u32) -> ! {
    let irqs = interrupts();
    irqs.mask();
    let sched = RoundRobin::cooperative(Native::detect(), uk_app::platform(), TimerIdle(irqs))
        .with_interrupts(irqs, 10_000_000);
    let spawned = sched.map(|s| {
        let echo = s.spawn("echo", echo);
        s.spawn("worker", worker).map(|t| (s, t, echo.is_ok()))
    });
    match spawned {
        Ok(Ok((sched, thread, true))) => {
            let waker = alloc::boxed::Box::new(thread.remote_waker());
            WORKER.store(alloc::boxed::Box::into_raw(waker), Ordering::Release);
            if let Ok(spawner) = sched.remote_spawner() {
                let spawner = alloc::boxed::Box::new(spawner);
                SPAWNER.store(alloc::boxed::Box::into_raw(spawner), Ordering::Release);
            }
            drop(thread);
            CPU1_UP.store(true, Ordering::SeqCst);
            sched.run();
        }
        _ => CPU1_UP.store(true, Ordering::SeqCst),
    }
    loop {
        irqs.wait_for_interrupt();
    }
}

/// Waits until `done` or the patience runs out; `false` on time-out.
fn wait(platform: &dyn Platform, done: impl Fn() -> bool) -> bool {
    let end = platform.monotonic_ns() + PATIENCE_NS;
    while !done() {
        if platform.monotonic_ns() > end {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Minimum and median of `samples` (sorted in place).
fn min_median(samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    (samples[0], samples[samples.len() / 2])
}

fn main(_args: &uk_app::Args) -> i32 {
    let platform = uk_app::platform();
    let Some(irqs) = platform.interrupts() else {
        uk_app::println!("smp: this board has no interrupt controller");
        return 1;
    };
    let cpus = irqs.cpu_count();
    if cpus < 2 {
        uk_app::println!("smp: {cpus} CPU: run with -smp 2 (cargo uk run --smp 2)");
        return 1;
    }
    // uk-sched's wiring (interrupt masking, CPU numbers, its timer and wake-up interrupts)
    // before CPU 1 starts its scheduler.
    if let Err(e) = uk_sched::irq::install(irqs) {
        uk_app::println!("smp: uk-sched cannot take its interrupts: {e}");
        return 1;
    }
    let ipi = irqs.free_ipi();
    if let Err(e) = irqs.register_handler(ipi, on_ipi) {
        uk_app::println!("smp: cannot take interrupt {ipi}: {e}");
        return 1;
    }
    if let Err(e) = irqs.start_cpu(1, cpu1_main) {
        uk_app::println!("smp: CPU 1 did not start: {e:?}");
        return 1;
    }
    if !wait(platform, || CPU1_UP.load(Ordering::SeqCst)) {
        uk_app::println!("smp: CPU 1 started but never reported");
        return 1;
    }
    uk_app::println!("smp: {cpus} CPUs, CPU 1 started");
    irqs.enable_on_this_cpu();

    let mut there = [0u64; ROUNDS];
    let mut round_trip = [0u64; ROUNDS];
    for i in 0..ROUNDS {
        let before = BACK.load(Ordering::SeqCst);
        let sent = platform.cycles();
        if irqs
            .cpu_interface()
            .send_ipi(ipi, IpiTarget::Cpus(CpuSet::single(1)))
            .is_err()
            || !wait(platform, || BACK.load(Ordering::SeqCst) != before)
        {
            uk_app::println!("smp: interrupt {i} to CPU 1 was not answered");
            return 1;
        }
        there[i] = AT_CPU1.load(Ordering::SeqCst).saturating_sub(sent);
        round_trip[i] = AT_CPU0.load(Ordering::SeqCst).saturating_sub(sent);
    }
    ANSWER.store(false, Ordering::SeqCst);
    let mut to_self = [0u64; ROUNDS];
    for sample in &mut to_self {
        let before = BACK.load(Ordering::SeqCst);
        let sent = platform.cycles();
        if irqs
            .cpu_interface()
            .send_ipi(ipi, IpiTarget::SelfOnly)
            .is_err()
            || !wait(platform, || BACK.load(Ordering::SeqCst) != before)
        {
            uk_app::println!("smp: interrupt to self never arrived");
            return 1;
        }
        *sample = AT_CPU0.load(Ordering::SeqCst).saturating_sub(sent);
    }
    irqs.mask();

    // SAFETY: published once by CPU 1 (a leaked box) before it reported, never freed.
    let Some(worker) = (unsafe { WORKER.load(Ordering::Acquire).as_ref() }) else {
        uk_app::println!("smp: CPU 1's scheduler did not start");
        return 1;
    };
    let mut wake = [0u64; ROUNDS];
    for (i, sample) in wake.iter_mut().enumerate() {
        let job = i as u32 + 1;
        JOB.store(job, Ordering::Release);
        let sent = platform.cycles();
        worker.wake();
        if !wait(platform, || DONE.load(Ordering::Acquire) == job) {
            uk_app::println!("smp: CPU 1's worker never took job {job}");
            return 1;
        }
        *sample = AT_WORKER.load(Ordering::SeqCst).saturating_sub(sent);
    }
    JOB.store(STOP, Ordering::Release);
    worker.wake();

    let mut echo = [0u64; ROUNDS];
    for (i, sample) in echo.iter_mut().enumerate() {
        let sent = platform.cycles();
        PING.up();
        if !wait(platform, || PONG.try_down()) {
            uk_app::println!("smp: CPU 1's echo thread never answered unit {i}");
            return 1;
        }
        *sample = platform.cycles().saturating_sub(sent);
    }
    ECHO_STOP.store(true, Ordering::Release);
    PING.up();

    let hz = platform.cycles_per_second();
    for (what, samples) in [
        ("CPU 0 -> CPU 1", &mut there),
        ("CPU 0 -> CPU 1 -> CPU 0", &mut round_trip),
        ("CPU 0 -> itself", &mut to_self),
    ] {
        let (min, median) = min_median(samples);
        uk_app::println!(
            "smp: IPI {what}: min {min} median {median} cycles over {ROUNDS} interrupts ({} ns median at {hz} Hz)",
            median.saturating_mul(1_000_000_000) / hz.max(1)
        );
    }
    let (min, median) = min_median(&mut wake);
    uk_app::println!(
        "smp: wake CPU 0 -> thread on CPU 1: min {min} median {median} cycles over {ROUNDS} wakes ({} ns median at {hz} Hz)",
        median.saturating_mul(1_000_000_000) / hz.max(1)
    );
    // SAFETY: published by CPU 1 (a leaked box) before it reported, never freed.
    let Some(spawner) = (unsafe { SPAWNER.load(Ordering::Acquire).as_ref() }) else {
        uk_app::println!("smp: CPU 1 made no spawner");
        return 1;
    };
    let sent = platform.cycles();
    let queued = spawner.spawn("spawned", || {
        AT_SPAWNED.store(uk_app::platform().cycles(), Ordering::SeqCst);
        SPAWNED_ON.store(interrupts().cpu_interface().cpu_id() + 1, Ordering::Release);
    });
    if queued.is_err() || !wait(platform, || SPAWNED_ON.load(Ordering::Acquire) != 0) {
        uk_app::println!("smp: the thread started on CPU 1 never ran ({queued:?})");
        return 1;
    }
    let spawn_cycles = AT_SPAWNED.load(Ordering::SeqCst).saturating_sub(sent);

    let (min, median) = min_median(&mut echo);
    uk_app::println!(
        "smp: shared semaphore CPU 0 -> thread on CPU 1 -> CPU 0: min {min} median {median} cycles over {ROUNDS} round trips ({} ns median at {hz} Hz)",
        median.saturating_mul(1_000_000_000) / hz.max(1)
    );
    uk_app::println!(
        "smp: spawn CPU 0 -> new thread on CPU {}: ran {spawn_cycles} cycles after spawn() ({} ns at {hz} Hz)",
        SPAWNED_ON.load(Ordering::Acquire) - 1,
        spawn_cycles.saturating_mul(1_000_000_000) / hz.max(1)
    );
    if let Some(mut rounds) = page_rights_rounds(platform) {
        let (min, median) = min_median(&mut rounds);
        uk_app::println!(
            "smp: page rights read-only and back with CPU 1 running: min {min} median {median} cycles over {ROUNDS} rounds ({} ns median at {hz} Hz)",
            median.saturating_mul(1_000_000_000) / hz.max(1)
        );
    }
    uk_app::println!("smp: done");
    0
}

/// `ROUNDS` times a heap page made read-only and read-write again, in cycles each; `None`
/// (said why) where the board cannot or a change fails.
fn page_rights_rounds(platform: &dyn Platform) -> Option<[u64; ROUNDS]> {
    let Some(protection) = platform.page_protection() else {
        uk_app::println!("smp: this board cannot set page rights");
        return None;
    };
    let layout = core::alloc::Layout::from_size_align(PROTECTION_PAGE, PROTECTION_PAGE).ok()?;
    // SAFETY: the layout has a non-zero size.
    let page = unsafe { alloc::alloc::alloc(layout) };
    if page.is_null() {
        uk_app::println!("smp: no heap page");
        return None;
    }
    let mut cycles = [0; ROUNDS];
    let mut failed = None;
    for sample in cycles.iter_mut() {
        let start = platform.cycles();
        for access in [PageAccess::ReadOnly, PageAccess::ReadWrite] {
            // SAFETY: the page is this function's own heap block; it is read-write again
            // before it is freed (a failed change changed nothing).
            if let Err(e) = unsafe { protection.set_access(page as usize, PROTECTION_PAGE, access) }
            {
                failed.get_or_insert(e);
            }
        }
        *sample = platform.cycles().saturating_sub(start);
    }
    // SAFETY: read-write (see above), allocated with this layout, freed once.
    unsafe { alloc::alloc::dealloc(page, layout) };
    if let Some(e) = failed {
        uk_app::println!("smp: a page-rights change failed: {e:?}");
        return None;
    }
    Some(cycles)
}
