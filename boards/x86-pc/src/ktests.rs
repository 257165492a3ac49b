//! In-image test cases of the board (feature `ktest`), run by the `uk-ktest` image.

use uk_hal::{Clock, Platform};
use uk_test::{expect, expect_eq, ktest};

use crate::clock;
use crate::machine::MachineKind;
use crate::{PLATFORM, arch, memmap, tables};

ktest! {
    /// The clock never goes backwards and advances between reads.
    fn clock_is_monotonic() {
        let first = PLATFORM.monotonic_ns();
        let mut last = first;
        for _ in 0..1000 {
            let now = PLATFORM.monotonic_ns();
            expect!(now >= last, "clock went back from {} to {}", last, now);
            last = now;
        }
        expect!(last > first, "clock did not advance over 1000 reads");
        expect!(PLATFORM.cycles() > PLATFORM.tsc_at_entry());
    }
}

/// Length of one measurement of `tsc_rate_matches_the_pit`: 17 898 PIT ticks = 15 ms.
const RUN_PIT_TICKS: u16 = 17_898;
/// How far a measurement may grow (5 ms) while stalls widen its end edges.
const RUN_MAX_PIT_TICKS: u16 = RUN_PIT_TICKS + 5_966;
/// Worst-case error of one measurement from its edge brackets (0.6 us each under TCG give
/// 40 ppm over 15 ms; two tight edges at most 112 ppm).
const RUN_MAX_ERROR_PPM: u64 = 200;
/// Measurements whose median is judged.
const RUNS: usize = 3;

/// One measurement of the TSC against the PIT, with the clock read around it.
#[derive(Clone, Copy)]
struct Run {
    window: clock::PitWindow,
    hz: u64,
    /// The clock read before the PIT was started.
    before: ClockRead,
    /// The clock read after the window closed.
    after: ClockRead,
}

impl Run {
    /// How far the clock advanced around the measurement.
    fn around_ns(&self) -> u64 {
        self.after.ns.saturating_sub(self.before.ns)
    }
}

/// One `monotonic_ns` read with TSC reads on both sides of it.
#[derive(Clone, Copy)]
struct ClockRead {
    tsc_before: u64,
    ns: u64,
    tsc_after: u64,
}

impl ClockRead {
    fn take() -> ClockRead {
        let tsc_before = PLATFORM.cycles();
        let ns = PLATFORM.monotonic_ns();
        let tsc_after = PLATFORM.cycles();
        ClockRead {
            tsc_before,
            ns,
            tsc_after,
        }
    }

    /// The read lies between the clock's times at the TSC reads around it.
    fn is_bracketed(&self) -> bool {
        PLATFORM.ns_at(self.tsc_before) <= self.ns && self.ns <= PLATFORM.ns_at(self.tsc_after)
    }
}

fn measure() -> Option<Run> {
    let before = ClockRead::take();
    arch::pit_restart();
    let read = &mut arch::pit_read;
    let start = clock::open_window(read)?;
    let window = clock::close_window(
        read,
        start,
        RUN_PIT_TICKS,
        RUN_MAX_PIT_TICKS,
        RUN_MAX_ERROR_PPM,
    )?;
    let after = ClockRead::take();
    Some(Run {
        window,
        hz: window.frequency()?,
        before,
        after,
    })
}

ktest! {
    /// Three measurements of 15 ms against the PIT: by their median, the TSC advances at the
    /// calibrated rate within 1 % and the clock advances by the PIT's time between the edges
    /// within 1 %. Each measurement brackets its PIT edges with TSC reads and retakes an
    /// edge a stall of the CPU fell into; the median outvotes one measurement a stall
    /// spoiled anyway (one that wrapped the PIT is retaken). A calibration really off (by
    /// 5 %, say) is off in all three. `monotonic_ns` read around each measurement (which
    /// includes starting the PIT) agrees with the clock at the TSC reads around it, and
    /// advances at least as much as between the edges.
    fn tsc_rate_matches_the_pit() {
        let claimed_hz = PLATFORM.cycles_per_second();
        let mut runs = [None; RUNS];
        let mut attempts = 0;
        for slot in runs.iter_mut() {
            while slot.is_none() && attempts < RUNS + 2 {
                attempts += 1;
                *slot = measure();
            }
            match slot {
                Some(run) => uk_rt::println!(
                    "    {} Hz over {} PIT ticks (edge brackets {} + {} cycles, at most {} ppm off), {} ns around",
                    run.hz,
                    run.window.ticks(),
                    run.window.start.width(),
                    run.window.end.width(),
                    run.window.error_ppm(),
                    run.around_ns()
                ),
                None => uk_rt::println!(
                    "    no measurement in {} attempts (PIT stopped or wrapped)",
                    attempts
                ),
            }
        }
        let taken = runs.iter().flatten().count();
        expect!(taken >= 2, "only {} of {} measurements", taken, RUNS);
        let Some(median_run) = median_run(&runs) else { return };
        let measured_hz = median_run.hz;
        let ppm = clock::ppm_difference(claimed_hz, measured_hz);
        let [boot_ticks, boot_start, boot_end] = crate::boot::calibration_window();
        uk_rt::println!(
            "    TSC {} Hz calibrated at boot over {} PIT ticks (edge brackets {} + {} cycles), median {} Hz: {} ppm apart",
            claimed_hz,
            boot_ticks,
            boot_start,
            boot_end,
            measured_hz,
            ppm
        );
        expect!(ppm < 10_000, "calibrated {} Hz vs {} Hz measured", claimed_hz, measured_hz);

        let window = median_run.window;
        let pit_ns = window.pit_ns();
        let clock_ns = PLATFORM.ns_at(window.end.tsc()) - PLATFORM.ns_at(window.start.tsc());
        expect!(
            clock::ppm_difference(clock_ns, pit_ns) < 10_000,
            "clock advanced {} ns between the PIT edges, the PIT counted {} ns",
            clock_ns,
            pit_ns
        );
        for run in runs.iter().flatten() {
            // `monotonic_ns` is the clock checked against the PIT above, at the TSC of the
            // read: each read lies between the clock's times at the TSC reads around it,
            // and the clock read around a measurement advances at least as much as between
            // its edges and at most as much as between the outer TSC reads. (How far it
            // advances outside the edges depends on the host's pace, which no bound here
            // should.)
            for read in [run.before, run.after] {
                expect!(
                    read.is_bracketed(),
                    "monotonic_ns {} outside the clock's {}..{} ns at the TSC reads around it",
                    read.ns,
                    PLATFORM.ns_at(read.tsc_before),
                    PLATFORM.ns_at(read.tsc_after)
                );
            }
            let edges_ns =
                PLATFORM.ns_at(run.window.end.lo).saturating_sub(PLATFORM.ns_at(run.window.start.hi));
            let outer_ns = PLATFORM
                .ns_at(run.after.tsc_after)
                .saturating_sub(PLATFORM.ns_at(run.before.tsc_before));
            expect!(
                edges_ns <= run.around_ns() && run.around_ns() <= outer_ns,
                "clock advanced {} ns around a measurement, {} ns inside it, {} ns between the outer TSC reads",
                run.around_ns(),
                edges_ns,
                outer_ns
            );
        }
    }
}

/// The measurement with the median frequency.
fn median_run(runs: &[Option<Run>; RUNS]) -> Option<Run> {
    let mut rates = [0; RUNS];
    let mut taken = 0;
    for run in runs.iter().flatten() {
        rates[taken] = run.hz;
        taken += 1;
    }
    let hz = clock::median(&mut rates[..taken])?;
    runs.iter().flatten().find(|run| run.hz == hz).copied()
}

ktest! {
    /// Usable memory is non-empty, page-aligned, sorted, disjoint, above 1 MiB, outside the
    /// image, mapped (first and last byte readable) and within the identity map.
    fn memory_regions_are_sane() {
        let regions = PLATFORM.memory_regions();
        expect!(!regions.is_empty());
        let (image_start, image_end) = arch::image_range();
        let mut previous_end = 0;
        for region in regions {
            expect!(region.size > 0);
            expect!(region.base % memmap::PAGE_SIZE == 0 && region.size % memmap::PAGE_SIZE == 0);
            expect!(region.base >= memmap::LOW_MEMORY_END);
            expect!(region.base > previous_end || previous_end == 0, "regions unsorted or touching");
            expect!(region.end() <= image_start || region.base >= image_end, "region overlaps the image");
            expect!(region.end() <= 512 * tables::PAGE_1G);
            // SAFETY: the region is RAM the board reported as mapped; reads have no side
            // effects and the heap's contents are only read.
            let (_first, _last) = unsafe { (arch::probe(region.base), arch::probe(region.end() - 1)) };
            previous_end = region.end();
        }
    }
}

ktest! {
    /// The command line the board kept is the loader's, byte for byte (when the loader's copy
    /// was not handed to the heap).
    fn command_line_matches_the_boot_info() {
        let line = PLATFORM.command_line();
        expect!(!line.contains('\0'));
        let Some(info) = PLATFORM.start_info() else {
            expect!(false, "no start info");
            return;
        };
        let paddr = info.cmdline_paddr;
        if paddr == 0 {
            expect_eq!(line, "");
            return;
        }
        let in_heap = PLATFORM.memory_regions().iter().any(|r| r.base <= paddr && paddr < r.end());
        if !in_heap {
            for (i, byte) in line.bytes().chain([0]).enumerate() {
                // SAFETY: the loader's command line lies outside every usable region (checked)
                // in identity-mapped low memory nobody writes.
                let original = unsafe { arch::probe(paddr + i as u64) };
                expect_eq!(original, byte);
            }
        }
    }
}

ktest! {
    /// The machine is named, and the name matches the detected machine type.
    fn machine_is_named() {
        let machine = PLATFORM.machine();
        expect!(machine.starts_with(PLATFORM.machine_kind().name()), "{}", machine);
        expect!(PLATFORM.machine_kind() != MachineKind::OtherPc, "{}", machine);
        expect_eq!(PLATFORM.board_name(), "x86-pc");
    }
}

ktest! {
    /// `ud2` raises #UD; the exception report is printed and the case fails.
    #[should_fail(cpu_exception = "#UD invalid opcode")]
    fn invalid_opcode_fails_the_case() {
        arch::ud2();
    }
}

ktest! {
    /// A read of 0x100_0000_0000 (1 TiB, never mapped) raises #PF and fails the case.
    #[should_fail(cpu_exception = "#PF page fault (not-present read, kernel)")]
    fn unmapped_read_fails_the_case() {
        // SAFETY: the address is unmapped, so the read faults (the point of the case).
        let _ = unsafe { arch::probe(0x100_0000_0000) };
    }
}

ktest! {
    /// Page 0 is unmapped: a null pointer read faults.
    #[should_fail(cpu_exception = "the unmapped page 0: null pointer")]
    fn null_read_fails_the_case() {
        // SAFETY: page 0 is unmapped, so the read faults (the point of the case).
        let _ = unsafe { arch::probe(core::hint::black_box(0x10)) };
    }
}

extern "C" fn recurse_forever() {
    fn descend(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 32]);
        // Never true (the stack ends long before), but the compiler cannot know.
        if frame[0] == u64::MAX {
            return 0;
        }
        descend(frame[0] + 1) + core::hint::black_box(frame[31])
    }
    descend(0);
}

ktest! {
    /// Unbounded recursion on a guarded stack runs into the guard page; the page fault
    /// cannot push its frame and becomes a double fault, which runs on its own stack and is
    /// reported instead of resetting the machine.
    #[should_fail(cpu_exception = "the ktest stack guard page: stack overflow")]
    fn stack_overflow_is_a_double_fault_report() {
        arch::call_on_ktest_stack(recurse_forever);
    }
}

/// Interrupt cases: IPIs to self and to another CPU, the local timer, a vector without a
/// handler, and the scheduler driven by the timer interrupt.
mod irq {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use uk_hal::irq::{CpuSet, Interrupts, IpiTarget};
    use uk_hal::{Clock, Platform};
    use uk_test::{expect, expect_eq, ktest};

    use crate::PLATFORM;
    use crate::apic::vector;
    use crate::interrupts::{self, X86Interrupts};

    // Vectors of the applications' range (0xE0-0xEB) that board-independent suites leave
    // alone (examples use `free_ipi()`, 0xE0; uk-sched's remote wake-up 0xE6 and its SMP
    // cases 0xE8 and 0xE9), so the cases never share a handler.
    /// Vector of the self-IPI case.
    const SELF_VECTOR: u32 = vector::FREE_IPI_LAST as u32;
    /// A vector nobody registers, in the same priority class as [`SELF_VECTOR`].
    const UNHANDLED_VECTOR: u32 = vector::FREE_IPI as u32 + 4;
    /// CPU 0 -> CPU 1.
    const PING: u32 = vector::FREE_IPI_LAST as u32 - 1;
    /// CPU 1 -> CPU 0.
    const PONG: u32 = vector::FREE_IPI as u32 + 5;

    fn irqs() -> &'static X86Interrupts {
        interrupts::get().expect("the board's interrupts are set up")
    }

    /// Waits with interrupts on until `done` or 100 ms passed; returns `done()`.
    fn wait_until(done: impl Fn() -> bool) -> bool {
        let i = irqs();
        let deadline = PLATFORM.monotonic_ns() + 100_000_000;
        let flags = i.mask();
        while !done() && PLATFORM.monotonic_ns() < deadline {
            // A window for pending interrupts (no halt: nothing may come).
            i.restore(1);
            core::hint::spin_loop();
            i.mask();
        }
        i.restore(flags);
        done()
    }

    static SELF_SEEN: AtomicU32 = AtomicU32::new(0);
    static SELF_COUNT: AtomicU32 = AtomicU32::new(0);

    fn on_self(irq: u32) {
        SELF_SEEN.store(irq, Ordering::Relaxed);
        SELF_COUNT.fetch_add(1, Ordering::Relaxed);
    }

    fn register_once(irq: u32, handler: fn(u32)) {
        // A second registration of the same case (a rerun) finds it busy: fine.
        let _ = irqs().register_handler(irq, handler);
    }

    ktest! {
        /// The local APIC runs in x2APIC mode exactly when CPUID.1:ECX.x2APIC (bit 21) says
        /// the CPU has it, and the timer uses TSC-deadline exactly when CPUID.1:ECX bit 24
        /// does; the run prints which paths it exercises (QEMU 10's TCG `-cpu max` has both,
        /// `-cpu qemu64` and QEMU 7.2 neither).
        fn apic_modes_follow_cpuid() {
            let i = irqs();
            let ecx = crate::arch::cpuid(1, 0)[2];
            let (x2apic, deadline) = (ecx & (1 << 21) != 0, ecx & (1 << 24) != 0);
            let timer = i.timer_mode();
            uk_rt::println!(
                "    local APIC: {}, timer: {:?}",
                if i.x2apic() { "x2APIC (MSRs)" } else { "xAPIC (MMIO)" },
                timer
            );
            expect_eq!(i.x2apic(), x2apic);
            expect_eq!(matches!(timer, Some(interrupts::TimerMode::TscDeadline)), deadline);
        }
    }

    ktest! {
        /// An IPI to self, by shorthand and by the CPU set {0}, arrives once each with its
        /// vector, on CPU 0, and is ended (its in-service bit is clear afterwards).
        fn self_ipi_arrives_with_its_vector() {
            let i = irqs();
            register_once(SELF_VECTOR, on_self);
            let before = SELF_COUNT.load(Ordering::Relaxed);
            let flags = i.mask();
            i.cpu_interface().send_ipi(SELF_VECTOR, IpiTarget::SelfOnly).unwrap();
            expect!(SELF_COUNT.load(Ordering::Relaxed) == before, "taken while masked");
            i.restore(flags);
            expect!(wait_until(|| SELF_COUNT.load(Ordering::Relaxed) == before + 1));
            expect_eq!(SELF_SEEN.load(Ordering::Relaxed), SELF_VECTOR);
            i.cpu_interface().send_ipi(SELF_VECTOR, IpiTarget::Cpus(CpuSet::single(0))).unwrap();
            expect!(wait_until(|| SELF_COUNT.load(Ordering::Relaxed) == before + 2));
            expect!(!i.in_service(SELF_VECTOR as u8));
            expect_eq!(i.cpu_interface().cpu_id(), 0);
            // Bad requests are refused and send nothing.
            expect!(i.cpu_interface().send_ipi(255, IpiTarget::SelfOnly).is_err());
            expect!(i.cpu_interface().send_ipi(7, IpiTarget::SelfOnly).is_err());
            expect!(i.cpu_interface().send_ipi(SELF_VECTOR, IpiTarget::Cpus(CpuSet::single(40))).is_err());
            expect!(!wait_until(|| SELF_COUNT.load(Ordering::Relaxed) > before + 2));
        }
    }

    ktest! {
        /// A vector without a handler is counted (and logged once), ended, and not fatal: a
        /// handled vector of the same priority class still arrives after it (without the
        /// EOI it would stay blocked behind the unhandled one's in-service bit).
        fn interrupt_without_handler_is_logged_and_acknowledged() {
            let i = irqs();
            register_once(SELF_VECTOR, on_self);
            let unhandled = i.unhandled_count_of(UNHANDLED_VECTOR as u8);
            let seen = SELF_COUNT.load(Ordering::Relaxed);
            i.cpu_interface().send_ipi(UNHANDLED_VECTOR, IpiTarget::SelfOnly).unwrap();
            expect!(wait_until(|| i.unhandled_count_of(UNHANDLED_VECTOR as u8) == unhandled + 1));
            expect!(!i.in_service(UNHANDLED_VECTOR as u8), "unhandled vector not ended");
            i.cpu_interface().send_ipi(SELF_VECTOR, IpiTarget::SelfOnly).unwrap();
            expect!(wait_until(|| SELF_COUNT.load(Ordering::Relaxed) > seen));
        }
    }

    ktest! {
        /// The local timer's interrupt wakes a halted CPU at its deadline, never before it,
        /// and soon after it. Nothing else can wake the CPU: every other source is masked
        /// or idle. A disarmed timer raises nothing.
        fn local_timer_fires_at_its_deadline() {
            use uk_hal::irq::LocalTimer;
            let i = irqs();
            let flags = i.mask();
            // The first rounds also translate the handler path and may log the timer
            // vector as unhandled (when no scheduler registered it yet): only the later
            // rounds are timed. Lateness is judged by the median (under 1 ms) and the worst
            // (under 20 ms) of five, best of two attempts: under TCG a loaded host delays
            // QEMU's timer thread by milliseconds now and then. Never early is exact.
            let mut verdict = (u64::MAX, u64::MAX);
            for _attempt in 0..2 {
                let mut late = [0u64; 7];
                for (slot, delay_ns) in late.iter_mut().zip([100_000u64, 100_000, 300_000, 1_000_000, 2_000_000, 500_000, 5_000_000]) {
                    let deadline = PLATFORM.monotonic_ns() + delay_ns;
                    i.arm_at(deadline);
                    i.wait_for_interrupt();
                    let at = PLATFORM.monotonic_ns();
                    expect!(at >= deadline, "woken {} ns early", deadline - at);
                    *slot = at.saturating_sub(deadline);
                }
                let timed = &mut late[2..];
                uk_rt::println!("timer ({:?}): woken {:?} ns after the deadlines ({} early interrupts re-armed)", i.timer_mode(), timed, i.early_timer_count());
                timed.sort_unstable();
                verdict = (timed[timed.len() / 2], timed[timed.len() - 1]);
                if verdict.0 < 1_000_000 && verdict.1 < 20_000_000 {
                    break;
                }
            }
            expect!(verdict.0 < 1_000_000, "median {} ns late", verdict.0);
            expect!(verdict.1 < 20_000_000, "worst {} ns late", verdict.1);
            // Disarmed: nothing comes. The deadline is 20 ms away so that the host
            // pausing QEMU between the two calls (a millisecond happens under TCG on a
            // busy machine) cannot fire it before the disarm; then wait 10 ms past it.
            let deadline = PLATFORM.monotonic_ns() + 20_000_000;
            i.arm_at(deadline);
            i.disarm();
            while PLATFORM.monotonic_ns() < deadline + 10_000_000 {}
            expect!(!i.requested(vector::TIMER), "disarmed timer fired");
            i.restore(flags);
        }
    }

    static PIT_IRQS: AtomicU32 = AtomicU32::new(0);

    fn on_pit(_irq: u32) {
        PIT_IRQS.fetch_add(1, Ordering::Relaxed);
    }

    ktest! {
        /// An ISA line through the IOAPIC: the PIT's IRQ 0 (GSI 2 after the MADT's
        /// override on QEMU), routed to CPU 0, edge, enabled, arrives on its vector once
        /// per one-shot; masked, it does not. Bad requests are typed errors.
        fn ioapic_delivers_the_pit_interrupt() {
            use uk_hal::irq::{IrqError, Trigger};
            let i = irqs();
            let d = i.distributor();
            let v = i.isa_vector(0).expect("IRQ 0 has an IOAPIC line");
            expect!(d.line_count() > v);
            register_once(v, on_pit);
            d.route(v, CpuSet::single(0)).unwrap();
            // Only while no other case holds the line (see `level_line_is_ended_after_its_handler`).
            d.set_trigger(v, Trigger::Edge).unwrap();
            d.enable(v).unwrap();
            let before = PIT_IRQS.load(Ordering::Relaxed);
            crate::arch::pit_ch0_one_shot(1193); // 1 ms
            expect!(wait_until(|| PIT_IRQS.load(Ordering::Relaxed) > before), "no IRQ 0 on vector {:#x}", v);
            // Masked: the next one-shot raises nothing.
            d.disable(v).unwrap();
            let masked = PIT_IRQS.load(Ordering::Relaxed);
            crate::arch::pit_ch0_one_shot(1193);
            let end = PLATFORM.monotonic_ns() + 5_000_000;
            let flags = i.mask();
            while PLATFORM.monotonic_ns() < end {
                i.restore(1);
                i.mask();
            }
            i.restore(flags);
            expect_eq!(PIT_IRQS.load(Ordering::Relaxed), masked);
            // Typed errors.
            expect_eq!(d.enable(0x20), Err(IrqError::NoSuchIrq(0x20)));
            expect_eq!(d.enable(d.line_count()), Err(IrqError::NoSuchIrq(d.line_count())));
            expect_eq!(d.set_priority(v, 0), Err(IrqError::NotConfigurable(v)));
            expect_eq!(d.route(v, CpuSet(0)), Err(IrqError::NoSuchCpu(64)));
            expect_eq!(d.route(v, CpuSet::single(40)), Err(IrqError::NoSuchCpu(40)));
        }
    }

    static LEVEL_IRQS: AtomicU32 = AtomicU32::new(0);

    /// Handles the PIT as a level source: counts, then silences it (a new count drops its
    /// output until the count runs out, 55 ms later).
    fn on_pit_level(_irq: u32) {
        LEVEL_IRQS.fetch_add(1, Ordering::Relaxed);
        crate::arch::pit_ch0_one_shot(0xffff);
    }

    /// Polls interrupts for `ns`.
    fn poll_for(ns: u64) {
        let i = irqs();
        let end = PLATFORM.monotonic_ns() + ns;
        let flags = i.mask();
        while PLATFORM.monotonic_ns() < end {
            i.restore(1);
            i.mask();
        }
        i.restore(flags);
    }

    ktest! {
        /// A level-triggered line (the PIT's output in mode 0 stays high after its count
        /// runs out): without a handler it is taken once, logged and masked (no interrupt
        /// storm); with a handler that silences the device it is taken exactly once per
        /// assertion (ended after the handler: ended before, the IOAPIC would send the
        /// still-asserted line a second time).
        fn level_line_is_ended_after_its_handler() {
            use uk_hal::irq::Trigger;
            let i = irqs();
            let d = i.distributor();
            let v = i.isa_vector(0).expect("IRQ 0 has an IOAPIC line");
            let had_edge_handler = i.unregister_handler(v);
            d.set_trigger(v, Trigger::Level).unwrap();

            let before = i.unhandled_count_of(v as u8);
            d.enable(v).unwrap();
            crate::arch::pit_ch0_one_shot(1193);
            poll_for(10_000_000);
            let taken = i.unhandled_count_of(v as u8) - before;
            expect!(taken == 1, "unhandled level line taken {} times", taken);
            expect!(i.line_masked(v) == Some(true), "unhandled level line left unmasked");

            i.register_handler(v, on_pit_level).unwrap();
            LEVEL_IRQS.store(0, Ordering::Relaxed);
            crate::arch::pit_ch0_one_shot(1193);
            d.enable(v).unwrap();
            expect!(wait_until(|| LEVEL_IRQS.load(Ordering::Relaxed) > 0), "level IRQ 0 never came");
            poll_for(5_000_000);
            expect_eq!(LEVEL_IRQS.load(Ordering::Relaxed), 1);

            d.disable(v).unwrap();
            d.set_trigger(v, Trigger::Edge).unwrap();
            i.unregister_handler(v);
            if had_edge_handler {
                i.register_handler(v, on_pit).unwrap();
            }
        }
    }

    ktest! {
        /// The page secondary CPUs start in (below 1 MiB) is never handed out as memory.
        fn trampoline_page_is_not_usable_memory() {
            let page = crate::irqhw_trampoline_page();
            for r in PLATFORM.memory_regions() {
                expect!(page + 4096 <= r.base || page >= r.end(), "{:#x} in {:?}", page, r);
            }
        }
    }

    /// CPU 1's record of the ping it took: its CPU number + 1.
    static PING_CPU: AtomicU32 = AtomicU32::new(0);
    static PONGS: AtomicU32 = AtomicU32::new(0);
    static PING_SENT_AT: AtomicU64 = AtomicU64::new(0);
    static PING_TAKEN_AT: AtomicU64 = AtomicU64::new(0);

    fn on_ping(_irq: u32) {
        PING_TAKEN_AT.store(PLATFORM.cycles(), Ordering::Relaxed);
        let i = irqs();
        PING_CPU.store(i.cpu_interface().cpu_id() + 1, Ordering::Relaxed);
        let _ = i
            .cpu_interface()
            .send_ipi(PONG, IpiTarget::Cpus(CpuSet::single(0)));
    }

    fn on_pong(_irq: u32) {
        PONGS.fetch_add(1, Ordering::Relaxed);
    }

    fn cpu1_idle(_cpu: u32) -> ! {
        let i = irqs();
        loop {
            i.wait_for_interrupt();
        }
    }

    ktest! {
        /// With `-smp 2`: CPU 1 starts (INIT/SIPI), takes an IPI from CPU 0 on CPU 1 and
        /// answers with one CPU 0 takes, three times; then it is stopped (INIT) and started
        /// again, and answers again. If another case started CPU 1 already, its interrupt
        /// loop serves the IPIs the same way and it is left running. With one CPU the case
        /// checks that starting a CPU that does not exist is refused.
        fn cross_cpu_ipi_round_trip() {
            use uk_hal::irq::CpuStartError;
            let i = irqs();
            if i.cpu_count() < 2 {
                expect_eq!(i.start_cpu(1, cpu1_idle), Err(CpuStartError::NoSuchCpu(1)));
                uk_rt::println!("one CPU: run with -smp 2 for the cross-CPU IPI");
                return;
            }
            register_once(PING, on_ping);
            register_once(PONG, on_pong);
            let ours = match i.start_cpu(1, cpu1_idle) {
                Ok(()) => true,
                Err(CpuStartError::AlreadyOn(1)) => false,
                Err(e) => panic!("CPU 1 did not start: {:?}", e),
            };
            expect_eq!(i.start_cpu(1, cpu1_idle), Err(CpuStartError::AlreadyOn(1)));
            expect_eq!(i.start_cpu(0, cpu1_idle), Err(CpuStartError::AlreadyOn(0)));
            expect!(i.cpu_online(1));
            ping_pong(3);
            if ours {
                expect_eq!(i.stop_cpu(1), Ok(()));
                expect!(!i.cpu_online(1));
                expect_eq!(i.start_cpu(1, cpu1_idle), Ok(()));
                ping_pong(1);
                expect_eq!(i.stop_cpu(1), Ok(()));
            }
            expect!(i.stop_cpu(0).is_err());
        }
    }

    /// What CPU 1's `syscall` returned (0: not run yet).
    static CPU1_SYSCALL: AtomicU64 = AtomicU64::new(0);
    /// A number uk-syscall's own tests keep unregistered (`testing::UNREGISTERED`).
    const UNSERVED: u64 = 505;

    fn cpu1_syscall(_cpu: u32) -> ! {
        let result: u64;
        // SAFETY: a syscall with a number no handler serves: uk-syscall's entry answers
        // -ENOSYS and preserves every register but rax, rcx and r11 (declared).
        unsafe {
            core::arch::asm!("syscall", inout("rax") UNSERVED => result, out("rcx") _, out("r11") _);
        }
        CPU1_SYSCALL.store(result, Ordering::SeqCst);
        cpu1_idle(1)
    }

    ktest! {
        /// With `-smp 2` and uk-syscall linked: the `syscall` instruction works on CPU 1 too
        /// (its MSRs are per CPU): an unserved number gives -ENOSYS there.
        fn syscall_traps_on_a_secondary_cpu() {
            use uk_hal::irq::CpuStartError;
            let i = irqs();
            if i.cpu_count() < 2 || !crate::arch::syscall_linked() {
                uk_rt::println!("needs -smp 2 and uk-syscall in the image; nothing to check");
                return;
            }
            CPU1_SYSCALL.store(0, Ordering::SeqCst);
            match i.start_cpu(1, cpu1_syscall) {
                Ok(()) => {}
                Err(CpuStartError::AlreadyOn(1)) => {
                    uk_rt::println!("CPU 1 runs another case's code; nothing to check");
                    return;
                }
                Err(e) => panic!("CPU 1 did not start: {:?}", e),
            }
            expect!(wait_until(|| CPU1_SYSCALL.load(Ordering::SeqCst) != 0), "CPU 1 never returned");
            expect_eq!(CPU1_SYSCALL.load(Ordering::SeqCst) as i64, -38);
            expect_eq!(i.stop_cpu(1), Ok(()));
        }
    }

    fn ping_pong(rounds: u32) {
        let i = irqs();
        for round in 0..rounds {
            let pongs = PONGS.load(Ordering::Relaxed);
            PING_CPU.store(0, Ordering::Relaxed);
            PING_SENT_AT.store(PLATFORM.cycles(), Ordering::Relaxed);
            i.cpu_interface()
                .send_ipi(PING, IpiTarget::Cpus(CpuSet::single(1)))
                .unwrap();
            expect!(
                wait_until(|| PONGS.load(Ordering::Relaxed) > pongs),
                "round {}: no answer",
                round
            );
            expect!(
                PING_CPU.load(Ordering::Relaxed) == 2,
                "ping taken on CPU {}",
                PING_CPU.load(Ordering::Relaxed) as i64 - 1
            );
            let latency = PING_TAKEN_AT
                .load(Ordering::Relaxed)
                .wrapping_sub(PING_SENT_AT.load(Ordering::Relaxed));
            uk_rt::println!("IPI CPU 0 -> CPU 1: {} cycles to the handler", latency);
        }
    }
}

/// Page protection ([`uk_hal::PageProtection`]) on heap pages: faults on the rights taken
/// away, the rights reported back, bad ranges refused with nothing changed, a range across
/// a 2 MiB boundary, and a heap that runs out of page tables.
mod protection {
    extern crate alloc;

    use core::alloc::Layout;
    use core::sync::atomic::{AtomicU64, Ordering};

    use uk_hal::irq::{CpuStartError, Interrupts};
    use uk_hal::{Clock, PROTECTION_PAGE, PageAccess, PageProtection, Platform, ProtectError};
    use uk_test::{expect, expect_eq, ktest};

    use crate::pageprot::{self, TableMemory};
    use crate::{PLATFORM, arch, interrupts, irqhw, tables};

    const PAGE: usize = PROTECTION_PAGE;

    fn protection() -> &'static dyn PageProtection {
        PLATFORM
            .page_protection()
            .expect("the x86-pc board offers page protection")
    }

    /// Pages from the heap, 4 KiB-aligned, owned by the case; given back read-write before
    /// they are freed. A case that ends in a fault leaves its block allocated for good
    /// (the run goes on with the next case, and a block nobody frees is never handed out
    /// again, so the protected page stays untouched).
    struct Block {
        ptr: *mut u8,
        layout: Layout,
    }

    impl Block {
        fn new(pages: usize) -> Option<Block> {
            let layout = Layout::from_size_align(pages * PAGE, PAGE).ok()?;
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc::alloc::alloc(layout) };
            (!ptr.is_null()).then_some(Block { ptr, layout })
        }

        fn base(&self) -> usize {
            self.ptr as usize
        }

        fn len(&self) -> usize {
            self.layout.size()
        }

        /// Address of byte `offset`.
        fn at(&self, offset: usize) -> usize {
            self.base() + offset
        }

        /// Reads byte `offset` (volatile).
        fn read(&self, offset: usize) -> u8 {
            // SAFETY: inside the block, which the case owns; a page of it without read
            // rights faults, which is what the cases that do that want.
            unsafe { arch::probe(self.at(offset) as u64) }
        }

        /// Writes byte `offset` (volatile).
        fn write(&self, offset: usize, value: u8) {
            // SAFETY: inside the block, which the case owns (see `read`).
            unsafe { self.ptr.add(offset).write_volatile(value) }
        }

        /// Sets the rights of `pages` pages from page `first`.
        fn set(&self, first: usize, pages: usize, access: PageAccess) -> Result<(), ProtectError> {
            // SAFETY: the pages belong to the block, which the case owns; `Drop` gives them
            // back read-write before they return to the heap.
            unsafe { protection().set_access(self.at(first * PAGE), pages * PAGE, access) }
        }
    }

    impl Drop for Block {
        fn drop(&mut self) {
            // Freed only if every page is read-write again (otherwise leaked).
            if self
                .set(0, self.len() / PAGE, PageAccess::ReadWrite)
                .is_ok()
            {
                // SAFETY: allocated with this layout in `new`, freed once, here.
                unsafe { alloc::alloc::dealloc(self.ptr, self.layout) };
            }
        }
    }

    ktest! {
        /// A heap page set to `PageAccess::None` faults on a read, and the report names it.
        #[should_fail(cpu_exception = "CR2 is in a page PageProtection made inaccessible")]
        fn page_without_access_faults_on_read() {
            let Some(block) = Block::new(3) else {
                return expect!(false, "no heap pages");
            };
            block.write(PAGE, 0x5a);
            expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
            expect_eq!(protection().access(block.at(PAGE)), Some(PageAccess::None));
            // The neighbours keep their rights.
            block.write(PAGE - 1, 1);
            block.write(2 * PAGE, 2);
            expect_eq!(block.read(PAGE - 1), 1);
            expect_eq!(block.read(2 * PAGE), 2);
            let _ = block.read(PAGE + 8);
            uk_rt::println!("    the read of a page without access did not fault");
        }
    }

    ktest! {
        /// A heap page set to `PageAccess::ReadOnly` reads back what it held, and a write to
        /// it faults as a protection violation.
        #[should_fail(cpu_exception = "#PF page fault (protection violation on write)")]
        fn read_only_page_faults_on_write() {
            let Some(block) = Block::new(3) else {
                return expect!(false, "no heap pages");
            };
            block.write(PAGE + 100, 0xa5);
            expect_eq!(block.set(1, 1, PageAccess::ReadOnly), Ok(()));
            expect_eq!(protection().access(block.at(PAGE)), Some(PageAccess::ReadOnly));
            expect_eq!(block.read(PAGE + 100), 0xa5);
            block.write(2 * PAGE, 1);
            block.write(PAGE + 100, 0);
            uk_rt::println!("    the write to a read-only page did not fault");
        }
    }

    ktest! {
        /// Pages go through None, ReadOnly and ReadWrite (one page and several at once),
        /// `access` reports each state, the contents survive, and ReadWrite reads and
        /// writes again.
        fn rights_round_trip() {
            let Some(block) = Block::new(4) else {
                return expect!(false, "no heap pages");
            };
            for page in 0..4 {
                block.write(page * PAGE + 7, page as u8 + 1);
            }
            let access = |page: usize| protection().access(block.at(page * PAGE + 5));
            expect_eq!(access(1), Some(PageAccess::ReadWrite));
            expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
            expect_eq!(access(1), Some(PageAccess::None));
            expect_eq!(access(0), Some(PageAccess::ReadWrite));
            expect_eq!(access(2), Some(PageAccess::ReadWrite));
            // Again: nothing to do.
            expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
            expect_eq!(block.set(1, 1, PageAccess::ReadOnly), Ok(()));
            expect_eq!(access(1), Some(PageAccess::ReadOnly));
            // The contents survived None.
            expect_eq!(block.read(PAGE + 7), 2);
            expect_eq!(block.set(1, 1, PageAccess::ReadWrite), Ok(()));
            expect_eq!(access(1), Some(PageAccess::ReadWrite));
            block.write(PAGE + 7, 0x77);
            expect_eq!(block.read(PAGE + 7), 0x77);

            expect_eq!(block.set(0, 4, PageAccess::ReadOnly), Ok(()));
            for page in 0..4 {
                expect_eq!(access(page), Some(PageAccess::ReadOnly));
            }
            expect_eq!(block.read(3 * PAGE + 7), 4);
            expect_eq!(block.set(1, 2, PageAccess::None), Ok(()));
            let states = [0, 1, 2, 3].map(access);
            expect_eq!(
                states,
                [PageAccess::ReadOnly, PageAccess::None, PageAccess::None, PageAccess::ReadOnly].map(Some)
            );
            expect_eq!(block.set(0, 4, PageAccess::ReadWrite), Ok(()));
            for page in 0..4 {
                expect_eq!(access(page), Some(PageAccess::ReadWrite));
                block.write(page * PAGE + 9, 0x10 + page as u8);
                expect_eq!(block.read(page * PAGE + 9), 0x10 + page as u8);
            }
        }
    }

    ktest! {
        /// Bad ranges get their error and change nothing: misaligned or empty ones are
        /// `Unaligned`; the image, page 0, MMIO, unmapped addresses, ranges leaving a
        /// region and ranges that overflow are `NotRam`. `access` is `None` outside RAM.
        fn bad_ranges_change_nothing() {
            let Some(block) = Block::new(4) else {
                return expect!(false, "no heap pages");
            };
            expect_eq!(block.set(1, 1, PageAccess::ReadOnly), Ok(()));
            let p = protection();
            let page = block.at(PAGE);
            let (image_start, _) = arch::image_range();
            let image = image_start as usize;
            let region = PLATFORM
                .memory_regions()
                .iter()
                .find(|r| r.base <= page as u64 && (page as u64) < r.end())
                .copied();
            expect!(region.is_some(), "the heap page {:#x} is in no region", page);
            let region_end = region.map_or(0, |r| r.end() as usize);
            let cases: [(usize, usize, PageAccess, ProtectError); 13] = [
                (page + 1, PAGE, PageAccess::None, ProtectError::Unaligned),
                (page, 0, PageAccess::None, ProtectError::Unaligned),
                (page, 100, PageAccess::None, ProtectError::Unaligned),
                (page, PAGE + 8, PageAccess::None, ProtectError::Unaligned),
                (page - 8, PAGE, PageAccess::ReadWrite, ProtectError::Unaligned),
                // From here the request would give rights, never take them: if a bad range
                // were applied anyway, nothing else would break, and the read-only page
                // (inside most of the ranges) would show it.
                (0, PAGE, PageAccess::ReadWrite, ProtectError::NotRam),
                (image, PAGE, PageAccess::ReadWrite, ProtectError::NotRam),
                (0xfee0_0000, PAGE, PageAccess::ReadWrite, ProtectError::NotRam),
                (0x100_0000_0000, PAGE, PageAccess::ReadWrite, ProtectError::NotRam),
                (page, region_end + PAGE - page, PageAccess::ReadWrite, ProtectError::NotRam),
                (image, page + PAGE - image, PageAccess::ReadWrite, ProtectError::NotRam),
                (page, usize::MAX - (PAGE - 1), PageAccess::ReadWrite, ProtectError::NotRam),
                (usize::MAX - (PAGE - 1), PAGE, PageAccess::ReadWrite, ProtectError::NotRam),
            ];
            for (start, len, access, error) in cases {
                // SAFETY: every range is refused (the point of the case); were one applied,
                // it would only give rights (see above) or touch the case's own block.
                let result = unsafe { p.set_access(start, len, access) };
                expect!(result == Err(error), "{:#x} + {:#x}: {:?}, not {:?}", start, len, result, error);
                expect_eq!(p.access(page), Some(PageAccess::ReadOnly));
                expect_eq!(p.access(page - PAGE), Some(PageAccess::ReadWrite));
                expect_eq!(p.access(page + PAGE), Some(PageAccess::ReadWrite));
            }
            for addr in [0, 0x10, image, 0xfee0_0000, 0x100_0000_0000, region_end, usize::MAX] {
                expect!(p.access(addr).is_none(), "access({:#x}) = {:?}", addr, p.access(addr));
            }
            expect_eq!(block.read(PAGE + 3), 0);
        }
    }

    ktest! {
        /// A range across a 2 MiB boundary (two huge pages split, one page on each side)
        /// goes read-only, inaccessible and back; its neighbours never change. Before
        /// that, with the heap's byte limit leaving room for one table fewer than the
        /// block needs, setting the block fails with `OutOfTables`, gives back every table
        /// it took and changes no page.
        fn range_across_a_2mib_boundary_and_out_of_tables() {
            const SIZE: usize = 4 * tables::PAGE_2M as usize + 2 * PAGE;
            let Some(block) = Block::new(SIZE / PAGE) else {
                return expect!(false, "no {} bytes of heap", SIZE);
            };
            let p = protection();
            let heap = uk_rt::allocator();
            match crate::protection::tables_needed(block.base(), block.len(), PageAccess::None) {
                Ok(0) => uk_rt::println!("    the block's huge pages are all split already: OutOfTables not tried"),
                Ok(needed) => {
                    let limit = heap.limit();
                    let before = heap.stats().cur_bytes;
                    heap.set_limit(Some(before + (needed - 1) * PAGE));
                    // SAFETY: the block is the case's own; the call must fail and change
                    // nothing (were it applied, `Drop` restores the pages).
                    let result = unsafe { p.set_access(block.base(), block.len(), PageAccess::None) };
                    heap.set_limit(limit);
                    uk_rt::println!("    {} tables needed, heap room for {}: {:?}", needed, needed - 1, result);
                    expect_eq!(result, Err(ProtectError::OutOfTables));
                    expect_eq!(heap.stats().cur_bytes, before);
                    expect_eq!(
                        crate::protection::tables_needed(block.base(), block.len(), PageAccess::None),
                        Ok(needed)
                    );
                    let mut changed = 0;
                    for page in 0..SIZE / PAGE {
                        changed += usize::from(p.access(block.at(page * PAGE)) != Some(PageAccess::ReadWrite));
                    }
                    expect_eq!(changed, 0);
                    block.write(0, 1);
                    block.write(SIZE - 1, 2);
                    expect_eq!(block.read(0), 1);
                    expect_eq!(block.read(SIZE - 1), 2);
                }
                Err(e) => expect!(false, "tables_needed: {:?}", e),
            }

            let boundary = (block.base() + PAGE).next_multiple_of(tables::PAGE_2M as usize);
            let first = (boundary - PAGE - block.base()) / PAGE;
            let needed = crate::protection::tables_needed(boundary - PAGE, 2 * PAGE, PageAccess::ReadOnly);
            uk_rt::println!("    boundary {:#x}: {:?} tables to split", boundary, needed);
            for offset in [0, 2 * PAGE - 1] {
                block.write(first * PAGE + offset, 0x33);
            }
            let access = |page: usize| p.access(block.at(page * PAGE));
            for (rights, readable) in [
                (PageAccess::ReadOnly, true),
                (PageAccess::None, false),
                (PageAccess::ReadWrite, true),
            ] {
                expect_eq!(block.set(first, 2, rights), Ok(()));
                expect_eq!(access(first), Some(rights));
                expect_eq!(access(first + 1), Some(rights));
                expect_eq!(access(first - 1), Some(PageAccess::ReadWrite));
                expect_eq!(access(first + 2), Some(PageAccess::ReadWrite));
                if readable {
                    expect_eq!(block.read(first * PAGE), 0x33);
                    expect_eq!(block.read(first * PAGE + 2 * PAGE - 1), 0x33);
                }
                // The neighbours on both sides are still written and read.
                block.write(first * PAGE - 1, 0x44);
                block.write(first * PAGE + 2 * PAGE, 0x55);
                expect_eq!(block.read(first * PAGE - 1), 0x44);
                expect_eq!(block.read(first * PAGE + 2 * PAGE), 0x55);
            }
            block.write(first * PAGE, 0x66);
            block.write(first * PAGE + 2 * PAGE - 1, 0x66);
            expect_eq!(block.read(first * PAGE), 0x66);
            expect_eq!(block.read(first * PAGE + 2 * PAGE - 1), 0x66);
            // The split tables stay.
            expect_eq!(
                crate::protection::tables_needed(boundary - PAGE, 2 * PAGE, PageAccess::None),
                Ok(0)
            );
        }
    }

    /// Faults offered to a fault hook ([`uk_hal::fault`]): a hook that gives a page its
    /// rights back resumes the faulting read or write, a hook that moves the program counter
    /// skips the faulting instruction (a load that page-faults, and a `#DE`, `#UD`, `#GP` or
    /// `#BP`, each offered as its kind), a hook that declines leaves the usual report (for
    /// each kind), and a fault with interrupts masked is never offered.
    ///
    /// Each case installs its hook with a `Hook` guard, which puts the previous one back
    /// when the case returns. A case that ends in a CPU exception is abandoned without its
    /// destructors (see `uk_rt`'s `fatal`), so its hook stays until the next case of this
    /// module installs one or `fault_hooks_of_the_failing_cases` runs (cases run in link
    /// order, not in source order): meanwhile it acts only on memory faults in the page its
    /// case armed (`ARMED`) or on faults of the kind it armed (`ARMED_KIND`), and removes
    /// itself on any other fault, which is reported as usual.
    mod recovery {
        use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};

        use uk_hal::PageAccess;
        use uk_hal::fault::{Fault, FaultAccess, FaultHook, FaultOutcome, MemoryFault, set_hook};
        use uk_hal::irq::{GENERAL_REGISTERS, InterruptedRegisters, PC_REGISTER, SP_REGISTER};
        use uk_test::{expect, expect_eq, ktest};

        use super::{Block, PAGE, protection};
        use crate::{interrupts, irqhw};

        /// The page whose memory faults the running case's hook handles (0: none).
        static ARMED: AtomicUsize = AtomicUsize::new(0);
        /// The kind of fault other than a memory fault that the running case's hook
        /// handles, wherever it is ([`kind_code`]; 0: none).
        static ARMED_KIND: AtomicU8 = AtomicU8::new(0);
        /// Bytes the skipping hook moves the program counter by.
        static SKIP: AtomicUsize = AtomicUsize::new(0);
        /// Hook calls since the case reset it, and what the last call saw.
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        static LAST_KIND: AtomicU8 = AtomicU8::new(0);
        static LAST_ADDR: AtomicUsize = AtomicUsize::new(0);
        static LAST_ACCESS: AtomicU8 = AtomicU8::new(0);
        static LAST_PC: AtomicUsize = AtomicUsize::new(0);
        static LAST_SP: AtomicUsize = AtomicUsize::new(0);
        static LAST_FLAGS: AtomicUsize = AtomicUsize::new(0);
        /// Calls of the declining hooks of the failing cases for their case's fault, by
        /// its kind ([`kind_code`]), and of the hook of the masked fault's case for its
        /// armed page (-1: the case did not run).
        static DECLINED_CALLS: [AtomicI32; KINDS] = [const { AtomicI32::new(-1) }; KINDS];
        static MASKED_CALLS: AtomicI32 = AtomicI32::new(-1);
        /// A failing case left its hook installed.
        static LEFT_INSTALLED: AtomicBool = AtomicBool::new(false);

        /// RFLAGS.IF.
        const IF: usize = 1 << 9;
        /// `GENERAL_REGISTERS` number of RAX (`REG_RAX`).
        const RAX: usize = 13;
        /// What the declining hook leaves in RAX, plus the declined fault's [`kind_code`]
        /// (0xdec1_1ed1 for a memory fault): the report shows that the hook saw the
        /// fault, as its kind, before the board reported it.
        const DECLINED_MARK: usize = 0xdec1_1ed0;
        /// Bytes of `mov rax, qword ptr [rcx]` (48 8b 01).
        const LOAD_LENGTH: usize = 3;
        /// Bytes of `div rcx` (48 f7 f1).
        const DIV_LENGTH: usize = 3;
        /// Bytes of `ud2` (0f 0b).
        const UD2_LENGTH: usize = 2;
        /// Bytes of `int3` (cc).
        const INT3_LENGTH: usize = 1;
        /// An address that is not canonical (bits 63-47 differ): a load from it is `#GP`,
        /// never a page fault.
        const NON_CANONICAL: usize = 0x8000_0000_0000_0000;
        /// What the skipping hook leaves in RAX.
        const SKIPPED_MARK: usize = 0x1234_5678;

        /// The [`kind_code`] of each kind of fault.
        const MEMORY: u8 = 1;
        const DIVIDE_ERROR: u8 = 2;
        const BREAKPOINT: u8 = 3;
        const ILLEGAL_INSTRUCTION: u8 = 4;
        const GENERAL_PROTECTION: u8 = 5;
        /// A kind this board never offers (`Misaligned`, a later one).
        const OTHER: u8 = 6;
        /// Kind codes, 0 (none) included.
        const KINDS: usize = OTHER as usize + 1;

        /// A number for each kind of fault, for the atomics above.
        fn kind_code(fault: &Fault) -> u8 {
            match fault {
                Fault::Memory(_) => MEMORY,
                Fault::DivideError { .. } => DIVIDE_ERROR,
                Fault::Breakpoint { .. } => BREAKPOINT,
                Fault::IllegalInstruction { .. } => ILLEGAL_INSTRUCTION,
                Fault::GeneralProtection { .. } => GENERAL_PROTECTION,
                _ => OTHER,
            }
        }

        /// The address a fault names: the one accessed for a memory fault, else the
        /// instruction's.
        fn fault_address(fault: &Fault) -> usize {
            match *fault {
                Fault::Memory(MemoryFault { addr, .. })
                | Fault::Misaligned { addr, .. }
                | Fault::IllegalInstruction { addr }
                | Fault::DivideError { addr }
                | Fault::GeneralProtection { addr }
                | Fault::Breakpoint { addr } => addr,
                _ => 0,
            }
        }

        fn access_code(access: FaultAccess) -> u8 {
            match access {
                FaultAccess::Read => 1,
                FaultAccess::Write => 2,
                FaultAccess::Execute => 3,
            }
        }

        /// `hook` installed for the case; the previous hook back when dropped.
        struct Hook {
            previous: Option<FaultHook>,
        }

        impl Hook {
            fn install(hook: FaultHook, armed: usize) -> Hook {
                Self::install_armed(hook, armed & !(PAGE - 1), 0)
            }

            /// For faults of the kind `kind` ([`kind_code`]) other than memory faults.
            fn install_for_kind(hook: FaultHook, kind: u8) -> Hook {
                Self::install_armed(hook, 0, kind)
            }

            fn install_armed(hook: FaultHook, page: usize, kind: u8) -> Hook {
                remove_leftover();
                CALLS.store(0, Ordering::SeqCst);
                LAST_ADDR.store(0, Ordering::SeqCst);
                LAST_ACCESS.store(0, Ordering::SeqCst);
                LAST_KIND.store(0, Ordering::SeqCst);
                ARMED.store(page, Ordering::SeqCst);
                ARMED_KIND.store(kind, Ordering::SeqCst);
                Hook {
                    previous: set_hook(Some(hook)),
                }
            }
        }

        impl Drop for Hook {
            fn drop(&mut self) {
                set_hook(self.previous);
                ARMED.store(0, Ordering::SeqCst);
                ARMED_KIND.store(0, Ordering::SeqCst);
            }
        }

        /// Removes the hook a failing case left installed (its guard never dropped).
        fn remove_leftover() {
            if LEFT_INSTALLED.swap(false, Ordering::SeqCst) {
                set_hook(None);
                ARMED.store(0, Ordering::SeqCst);
                ARMED_KIND.store(0, Ordering::SeqCst);
            }
        }

        /// Counts and records the call; the faulting page when it is the armed one (a
        /// memory fault), or the fault's address when its kind is the armed one.
        /// Otherwise the fault is not the running case's (a hook a failed case left
        /// behind): the hook removes itself and declines.
        fn claim(fault: &Fault, registers: &InterruptedRegisters) -> Option<usize> {
            CALLS.fetch_add(1, Ordering::SeqCst);
            let addr = fault_address(fault);
            LAST_ADDR.store(addr, Ordering::SeqCst);
            LAST_KIND.store(kind_code(fault), Ordering::SeqCst);
            if let Fault::Memory(memory) = fault {
                LAST_ACCESS.store(access_code(memory.access), Ordering::SeqCst);
            }
            // SAFETY: called by the hook during the board's offer, while the frame lives.
            let (pc, sp, flags) = unsafe {
                (
                    registers.get(PC_REGISTER),
                    registers.get(SP_REGISTER),
                    registers.get(GENERAL_REGISTERS - 1),
                )
            };
            LAST_PC.store(pc.unwrap_or(0), Ordering::SeqCst);
            LAST_SP.store(sp.unwrap_or(0), Ordering::SeqCst);
            LAST_FLAGS.store(flags.unwrap_or(0), Ordering::SeqCst);
            let page = addr & !(PAGE - 1);
            let mine = match fault {
                Fault::Memory(_) => page != 0 && page == ARMED.load(Ordering::SeqCst),
                _ => kind_code(fault) == ARMED_KIND.load(Ordering::SeqCst),
            };
            if mine {
                Some(if matches!(fault, Fault::Memory(_)) {
                    page
                } else {
                    addr
                })
            } else {
                set_hook(None);
                None
            }
        }

        /// Makes the armed `page` read-write again and resumes the faulting access.
        fn resume_read_write(page: usize) -> FaultOutcome {
            // SAFETY: the armed page belongs to the running case's block (its `Drop` sets
            // it read-write anyway).
            match unsafe { protection().set_access(page, PAGE, PageAccess::ReadWrite) } {
                Ok(()) => FaultOutcome::Resume,
                Err(_) => FaultOutcome::Unhandled,
            }
        }

        /// Gives the armed page its rights back and resumes the faulting access.
        fn restore_rights(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
            claim(fault, registers).map_or(FaultOutcome::Unhandled, resume_read_write)
        }

        /// Moves the program counter by [`SKIP`] bytes, past the faulting instruction of a
        /// `trapping!` function, and sets RAX to [`SKIPPED_MARK`].
        fn skip(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
            if claim(fault, registers).is_none() {
                return FaultOutcome::Unhandled;
            }
            // SAFETY: during the offer; the new program counter is the instruction after
            // the faulting one in a `trapping` function's assembly, which expects it (and
            // RAX) so.
            unsafe {
                match registers.get(PC_REGISTER) {
                    Some(pc) if registers.set(PC_REGISTER, pc + SKIP.load(Ordering::SeqCst)) => {}
                    _ => return FaultOutcome::Unhandled,
                }
                registers.set(RAX, SKIPPED_MARK);
            }
            FaultOutcome::Resume
        }

        /// Declines the fault, after writing [`DECLINED_MARK`] plus the fault's kind to
        /// RAX (which the report then shows), and removes itself: its case is abandoned.
        fn decline(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
            if claim(fault, registers).is_some() {
                let kind = kind_code(fault);
                DECLINED_CALLS[usize::from(kind)].fetch_add(1, Ordering::SeqCst);
                // SAFETY: during the offer; the faulting code never resumes.
                unsafe { registers.set(RAX, DECLINED_MARK + usize::from(kind)) };
            }
            set_hook(None);
            FaultOutcome::Unhandled
        }

        /// [`restore_rights`], counted in [`MASKED_CALLS`].
        fn restore_counted(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
            claim(fault, registers).map_or(FaultOutcome::Unhandled, |page| {
                MASKED_CALLS.fetch_add(1, Ordering::SeqCst);
                resume_read_write(page)
            })
        }

        /// Runs `f` with interrupts unmasked (the interrupt controller set up first, so no
        /// 8259 line arrives on an exception vector), then masks them as they were.
        fn with_interrupts<R>(f: impl FnOnce() -> R) -> Option<R> {
            interrupts::get()?;
            let flags = irqhw::irq_save();
            irqhw::irq_enable();
            let result = f();
            irqhw::irq_restore(flags);
            Some(result)
        }

        ktest! {
            /// A read of a page without access is offered to the hook as a read at its
            /// address, with the faulting code's registers (stack pointer on this case's
            /// stack, interrupts on); the hook makes the page read-write again and resumes,
            /// and the read completes with what the page held. Then a write to a read-only
            /// page: offered as a write, resumed, and the value is written.
            fn fault_hook_restores_rights_and_the_access_resumes() {
                let Some(block) = Block::new(3) else {
                    return expect!(false, "no heap pages");
                };
                block.write(PAGE + 8, 0x5a);
                expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
                let _hook = Hook::install(restore_rights, block.at(PAGE));
                let local = 0u8;
                let here = core::hint::black_box(&raw const local) as usize;
                let read = with_interrupts(|| block.read(PAGE + 8));
                expect_eq!(read, Some(0x5a));
                expect_eq!(CALLS.load(Ordering::SeqCst), 1);
                expect_eq!(LAST_ADDR.load(Ordering::SeqCst), block.at(PAGE + 8));
                expect_eq!(LAST_ACCESS.load(Ordering::SeqCst), access_code(FaultAccess::Read));
                expect_eq!(protection().access(block.at(PAGE)), Some(PageAccess::ReadWrite));
                let sp = LAST_SP.load(Ordering::SeqCst);
                expect!(
                    sp < here && here - sp < 4096,
                    "faulting RSP {:#x}, this case's frame at {:#x}",
                    sp,
                    here
                );
                expect!(LAST_FLAGS.load(Ordering::SeqCst) & IF != 0, "RFLAGS {:#x}", LAST_FLAGS.load(Ordering::SeqCst));
                expect!(LAST_PC.load(Ordering::SeqCst) != 0);

                expect_eq!(block.set(1, 1, PageAccess::ReadOnly), Ok(()));
                expect_eq!(with_interrupts(|| block.write(PAGE + 16, 0x77)), Some(()));
                expect_eq!(CALLS.load(Ordering::SeqCst), 2);
                expect_eq!(LAST_ADDR.load(Ordering::SeqCst), block.at(PAGE + 16));
                expect_eq!(LAST_ACCESS.load(Ordering::SeqCst), access_code(FaultAccess::Write));
                expect_eq!(block.read(PAGE + 16), 0x77);
                expect_eq!(block.read(PAGE + 8), 0x5a);
                expect_eq!(protection().access(block.at(PAGE)), Some(PageAccess::ReadWrite));
            }
        }

        /// What a `trapping!` function returns: RAX, RDX and R8 after the instruction,
        /// the carry and zero flags after it (1: set) and the instruction's address.
        struct Trapped {
            rax: usize,
            rdx: usize,
            r8: usize,
            carry: usize,
            zero: usize,
            at: usize,
        }

        /// The value R8 holds across the faulting instruction of a `trapping!` function.
        const R8_PATTERN: usize = 0x0123_4567_89ab_cdef;

        /// Defines `fn $name(rcx: usize) -> Trapped`: sets RAX, zeroes RDX, sets R8 to
        /// [`R8_PATTERN`] and the carry and zero flags (which none of the instructions
        /// changes when it faults), runs `$instruction` (which faults, with RCX = `rcx`),
        /// then reads the two flags and sets RDX to 0x600d. The case's hook moves RIP past
        /// the instruction (or the case fails). The flags, like R8, reach the code after
        /// the instruction only through the exception frame.
        macro_rules! trapping {
            ($name:ident, $instruction:literal) => {
                fn $name(rcx: usize) -> Trapped {
                    let (rax, rdx, r8, carry, zero, at): (usize, usize, usize, usize, usize, usize);
                    // SAFETY: the instruction faults and the case's hook moves RIP past it;
                    // it writes no memory, and the registers the code changes are declared.
                    unsafe {
                        core::arch::asm!(
                            "lea {at}, [rip + 2f]",
                            "mov eax, 0x5ca1ab1e",
                            "xor r9d, r9d",
                            "xor r10d, r10d",
                            "mov r8, {pattern}",
                            // ZF set (and CF clear) by the xor, then CF set.
                            "xor edx, edx",
                            "stc",
                            "2:",
                            $instruction,
                            "setc r9b",
                            "setz r10b",
                            "mov edx, 0x600d",
                            at = out(reg) at,
                            pattern = const R8_PATTERN,
                            in("rcx") rcx,
                            out("rax") rax,
                            out("rdx") rdx,
                            out("r8") r8,
                            out("r9") carry,
                            out("r10") zero,
                            options(nostack, readonly),
                        );
                    }
                    Trapped { rax, rdx, r8, carry, zero, at }
                }
            };
        }

        trapping!(load_skipped, "mov rax, qword ptr [rcx]");
        trapping!(divide_by_rcx, "div rcx");
        trapping!(undefined_instruction, "ud2");
        trapping!(breakpoint, "int3");

        ktest! {
            /// A hook that moves the program counter past the faulting load (by its fixed
            /// length) and sets RAX resumes after the load: the next instruction runs, RAX
            /// holds what the hook wrote and R8 what it held. The hook saw the load's
            /// address as RIP.
            fn fault_hook_moves_the_program_counter() {
                let Some(block) = Block::new(2) else {
                    return expect!(false, "no heap pages");
                };
                expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
                let _hook = Hook::install(skip, block.at(PAGE));
                SKIP.store(LOAD_LENGTH, Ordering::SeqCst);
                let result = with_interrupts(|| load_skipped(block.at(PAGE + 24)));
                let Some(t) = result else {
                    return expect!(false, "no interrupt controller");
                };
                expect_eq!(CALLS.load(Ordering::SeqCst), 1);
                expect_eq!(LAST_ADDR.load(Ordering::SeqCst), block.at(PAGE + 24));
                expect_eq!(LAST_ACCESS.load(Ordering::SeqCst), access_code(FaultAccess::Read));
                expect_eq!(LAST_PC.load(Ordering::SeqCst), t.at);
                expect_eq!(t.rdx, 0x600d);
                expect_eq!(t.rax, SKIPPED_MARK);
                expect_eq!(t.r8, R8_PATTERN);
                expect!((t.carry, t.zero) == (1, 1), "CF, ZF after the load: {}, {}", t.carry, t.zero);
                expect_eq!(protection().access(block.at(PAGE)), Some(PageAccess::None));
            }
        }

        ktest! {
            /// `#DE` (`div rcx` with RCX 0), `#UD` (`ud2`), `#GP` (a load through the
            /// non-canonical 0x8000_0000_0000_0000) and `#BP` (`int3`) are offered as
            /// their kinds of [`Fault`], at the instruction, with RIP at it (past it for
            /// the breakpoint, a trap). A hook that moves RIP past the instruction (by its
            /// length; 0 for the breakpoint) and sets RAX resumes the code after it, with
            /// R8 as it was.
            fn fault_hook_gets_each_kind_and_moves_past_it() {
                if interrupts::get().is_none() {
                    return expect!(false, "no interrupt controller");
                }
                type Trapping = fn(usize) -> Trapped;
                // Name, code, RCX, kind, bytes to skip, RIP at the offer past the instruction.
                let cases: [(&str, Trapping, usize, u8, usize, usize); 4] = [
                    ("#DE", divide_by_rcx, 0, DIVIDE_ERROR, DIV_LENGTH, 0),
                    ("#UD", undefined_instruction, 0, ILLEGAL_INSTRUCTION, UD2_LENGTH, 0),
                    ("#GP", load_skipped, NON_CANONICAL, GENERAL_PROTECTION, LOAD_LENGTH, 0),
                    ("#BP", breakpoint, 0, BREAKPOINT, 0, INT3_LENGTH),
                ];
                for (name, trapping, rcx, kind, length, pc_after) in cases {
                    let _hook = Hook::install_for_kind(skip, kind);
                    SKIP.store(length, Ordering::SeqCst);
                    let Some(t) = with_interrupts(|| trapping(rcx)) else {
                        return;
                    };
                    uk_rt::println!("    {} at {:#x}: offered and skipped", name, t.at);
                    expect_eq!(CALLS.load(Ordering::SeqCst), 1);
                    expect_eq!(LAST_KIND.load(Ordering::SeqCst), kind);
                    expect_eq!(LAST_ADDR.load(Ordering::SeqCst), t.at);
                    expect_eq!(LAST_PC.load(Ordering::SeqCst), t.at + pc_after);
                    expect!(LAST_FLAGS.load(Ordering::SeqCst) & IF != 0);
                    expect_eq!(t.rax, SKIPPED_MARK);
                    expect_eq!(t.rdx, 0x600d);
                    expect_eq!(t.r8, R8_PATTERN);
                    expect!((t.carry, t.zero) == (1, 1), "CF, ZF after {}: {}, {}", name, t.carry, t.zero);
                }
            }
        }

        ktest! {
            /// A hook that declines the fault: the usual report, and the case fails. The
            /// hook marks RAX in the frame before it declines, and the case must fail with
            /// a report that shows the mark: the fault was offered first, then reported.
            #[should_fail(cpu_exception = "RAX 0x00000000dec11ed1")]
            fn fault_hook_declines_and_the_fault_is_reported() {
                let Some(block) = Block::new(2) else {
                    return expect!(false, "no heap pages");
                };
                expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
                let _hook = Hook::install(decline, block.at(PAGE));
                DECLINED_CALLS[usize::from(MEMORY)].store(0, Ordering::SeqCst);
                LEFT_INSTALLED.store(true, Ordering::SeqCst);
                let _ = with_interrupts(|| block.read(PAGE + 8));
                uk_rt::println!("    the declined fault was not reported");
            }
        }

        /// Runs `trapping(rcx)` with interrupts unmasked under the declining hook, armed
        /// for faults of `kind`: the case ends in the report, which shows
        /// [`DECLINED_MARK`] plus `kind` in RAX. Code that comes back here (a fault not
        /// raised, or resumed) fails the `#[should_fail]` case.
        fn declined(kind: u8, trapping: fn(usize) -> Trapped, rcx: usize) {
            if interrupts::get().is_none() {
                return expect!(false, "no interrupt controller");
            }
            let _hook = Hook::install_for_kind(decline, kind);
            DECLINED_CALLS[usize::from(kind)].store(0, Ordering::SeqCst);
            LEFT_INSTALLED.store(true, Ordering::SeqCst);
            let _ = with_interrupts(|| trapping(rcx));
            uk_rt::println!("    the declined fault was not reported");
        }

        ktest! {
            /// A declined `#DE` is reported after the offer, as a divide error.
            #[should_fail(cpu_exception = "RAX 0x00000000dec11ed2")]
            fn fault_hook_declines_a_divide_error() {
                declined(DIVIDE_ERROR, divide_by_rcx, 0);
            }
        }

        ktest! {
            /// A declined `#BP` is reported after the offer, as a breakpoint (not resumed
            /// past the `int3`, where the trap left RIP).
            #[should_fail(cpu_exception = "RAX 0x00000000dec11ed3")]
            fn fault_hook_declines_a_breakpoint() {
                declined(BREAKPOINT, breakpoint, 0);
            }
        }

        ktest! {
            /// A declined `#UD` is reported after the offer, as an illegal instruction.
            #[should_fail(cpu_exception = "RAX 0x00000000dec11ed4")]
            fn fault_hook_declines_an_invalid_opcode() {
                declined(ILLEGAL_INSTRUCTION, undefined_instruction, 0);
            }
        }

        ktest! {
            /// A declined `#GP` is reported after the offer, as a general-protection fault.
            #[should_fail(cpu_exception = "RAX 0x00000000dec11ed5")]
            fn fault_hook_declines_a_general_protection_fault() {
                declined(GENERAL_PROTECTION, load_skipped, NON_CANONICAL);
            }
        }

        ktest! {
            /// With interrupts masked the fault is not offered: the hook, which would give
            /// the page its rights back and resume, is not called, and the case fails with
            /// the report.
            #[should_fail(cpu_exception = "CR2 is in a page PageProtection made inaccessible")]
            fn fault_with_interrupts_masked_is_not_offered() {
                let Some(block) = Block::new(2) else {
                    return expect!(false, "no heap pages");
                };
                expect_eq!(block.set(1, 1, PageAccess::None), Ok(()));
                if interrupts::get().is_none() {
                    return expect!(false, "no interrupt controller");
                }
                let _hook = Hook::install(restore_counted, block.at(PAGE));
                MASKED_CALLS.store(0, Ordering::SeqCst);
                LEFT_INSTALLED.store(true, Ordering::SeqCst);
                let flags = irqhw::irq_save();
                let _ = block.read(PAGE + 8);
                irqhw::irq_restore(flags);
                uk_rt::println!("    the fault with interrupts masked was recovered");
            }
        }

        ktest! {
            /// Removes the hook a failing case left; of the failing cases that ran before
            /// this one, each declining hook was called once (for its kind of fault), the
            /// one of the masked fault never.
            fn fault_hooks_of_the_failing_cases() {
                remove_leftover();
                let declined = DECLINED_CALLS.each_ref().map(|calls| calls.load(Ordering::SeqCst));
                let masked = MASKED_CALLS.load(Ordering::SeqCst);
                uk_rt::println!(
                    "    hook calls: declining (by kind 1-5) {:?}, masked {} (-1: did not run)",
                    &declined[usize::from(MEMORY)..=usize::from(GENERAL_PROTECTION)],
                    masked
                );
                for (kind, calls) in declined.into_iter().enumerate() {
                    expect!(calls == -1 || calls == 1, "the declining hook was called {} times for kind {}", calls, kind);
                }
                expect!(masked <= 0, "the hook was called {} times with interrupts masked", masked);
            }
        }
    }

    /// The page CPU 1 writes in [`tlb_shootdown_reaches_the_other_cpu`] (0: none yet).
    static WRITTEN_PAGE: AtomicU64 = AtomicU64::new(0);
    /// CPU 1's writes to it so far.
    static WRITES: AtomicU64 = AtomicU64::new(0);

    /// CPU 1: writes the page in [`WRITTEN_PAGE`] for ever, with interrupts on.
    fn cpu1_writer(_cpu: u32) -> ! {
        irqhw::irq_enable();
        loop {
            let page = WRITTEN_PAGE.load(Ordering::Acquire);
            if page != 0 {
                let count = WRITES.fetch_add(1, Ordering::AcqRel);
                // SAFETY: the case's own heap page, which only this loop touches until the
                // case stops this CPU.
                unsafe {
                    core::ptr::with_exposed_provenance_mut::<u64>(page as usize)
                        .write_volatile(count)
                };
            }
            core::hint::spin_loop();
        }
    }

    /// Waits (at most 2 s) until CPU 1 wrote `more` more times; whether it did.
    fn cpu1_writes(more: u64) -> bool {
        let target = WRITES.load(Ordering::Acquire) + more;
        let deadline = PLATFORM.monotonic_ns() + 2_000_000_000;
        while WRITES.load(Ordering::Acquire) < target {
            if PLATFORM.monotonic_ns() > deadline {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    /// Bit 6 of a 4 KiB page's entry: the page was written through it.
    const PTE_DIRTY: u64 = 1 << 6;

    ktest! {
        /// With `-smp 2`: a rights change on CPU 0 makes CPU 1 drop its cached
        /// translations. CPU 1 keeps writing a page; CPU 0 clears the page's dirty bit in
        /// the table, and while CPU 1 writes through the translation it cached the bit
        /// stays clear (QEMU's TCG, like a CPU, keeps a translation until it is
        /// invalidated). Then CPU 0 changes the rights of another page: after
        /// `set_access` returns, CPU 1 has answered the shootdown, its next write walks
        /// the tables again and sets the dirty bit. With one CPU, `set_access` asks
        /// nobody.
        fn tlb_shootdown_reaches_the_other_cpu() {
            let Some(irqs) = interrupts::get() else {
                return expect!(false, "no interrupt controller");
            };
            let Some(block) = Block::new(2) else {
                return expect!(false, "no heap pages");
            };
            // A 4 KiB entry for page 0 (its huge page split), CPU 0's view up to date.
            expect_eq!(block.set(0, 1, PageAccess::ReadOnly), Ok(()));
            expect_eq!(block.set(0, 1, PageAccess::ReadWrite), Ok(()));
            let answers = crate::protection::shootdown_answers();
            let timeouts = crate::protection::shootdown_timeouts();
            if irqs.cpu_count() < 2 {
                expect_eq!(crate::protection::shootdown_answers(), answers);
                uk_rt::println!("    one CPU: run with -smp 2 for the shootdown");
                return;
            }
            WRITTEN_PAGE.store(0, Ordering::Release);
            match irqs.start_cpu(1, cpu1_writer) {
                Ok(()) => {}
                Err(CpuStartError::AlreadyOn(1)) => {
                    uk_rt::println!("    CPU 1 runs another case's code; nothing to check");
                    return;
                }
                Err(e) => return expect!(false, "CPU 1 did not start: {:?}", e),
            }
            // Dropped before the block: CPU 1 never writes a freed page.
            let _stop = StopsCpu1;
            WRITTEN_PAGE.store(block.base() as u64, Ordering::Release);
            expect!(cpu1_writes(1_000), "CPU 1 does not write");
            // SAFETY: the entry of the case's own page, written by no one else (`set_access`
            // is not called meanwhile); only the dirty bit changes.
            let mut live = unsafe { arch::LiveTables::new() };
            let Some((table, slot, size)) =
                pageprot::leaf_slot(&live, arch::page_table_root(), block.base() as u64)
            else {
                return expect!(false, "no entry for {:#x}", block.base());
            };
            expect_eq!(size, tables::PAGE_4K);
            let entry = live.read(table, slot);
            expect!(entry & PTE_DIRTY != 0, "a written page's entry {:#x} is not dirty", entry);
            live.write(table, slot, entry & !PTE_DIRTY);
            arch::invalidate_page(block.base() as u64);
            expect!(cpu1_writes(10_000), "CPU 1 stopped writing");
            expect!(
                live.read(table, slot) & PTE_DIRTY == 0,
                "CPU 1 walked the tables again without being asked (the case proves nothing)"
            );
            expect_eq!(block.set(1, 1, PageAccess::ReadOnly), Ok(()));
            expect!(cpu1_writes(1_000), "CPU 1 stopped writing");
            let entry = live.read(table, slot);
            uk_rt::println!(
                "    entry after the shootdown {:#x}; answers {} -> {}",
                entry,
                answers,
                crate::protection::shootdown_answers()
            );
            expect!(entry & PTE_DIRTY != 0, "CPU 1 still writes through its old translation");
            expect!(crate::protection::shootdown_answers() > answers);
            expect_eq!(crate::protection::shootdown_timeouts(), timeouts);
        }
    }

    /// Stops CPU 1 when dropped, however the case ends.
    struct StopsCpu1;

    impl Drop for StopsCpu1 {
        fn drop(&mut self) {
            WRITTEN_PAGE.store(0, Ordering::Release);
            if let Some(irqs) = interrupts::get() {
                expect_eq!(irqs.stop_cpu(1), Ok(()));
            }
        }
    }
}
