//! In-image test cases of the board (feature `ktest`), run by the `uk-ktest` image.

use uk_hal::{Clock, Platform};
use uk_test::{expect, expect_eq, ktest};

use crate::clock::{self, PIT_HZ};
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

ktest! {
    /// Over 40 ms measured by the PIT, the TSC advances at the calibrated rate and the clock
    /// by 40 ms, both within 1 %; the clock read around the wait agrees within 5 % (the
    /// reads themselves take time, a lot of it under TCG the first time they run).
    fn tsc_rate_matches_the_pit() {
        // 47 727 PIT ticks = 40 ms.
        const TICKS: u16 = 47_727;
        let ns_before = PLATFORM.monotonic_ns();
        let start = arch::pit_start();
        expect!(start.is_some(), "PIT channel 2 does not count");
        let Some(start) = start else { return };
        let end = arch::pit_wait(start, TICKS);
        let ns_after = PLATFORM.monotonic_ns();
        let Some(end) = end else {
            expect!(false, "PIT stopped counting");
            return;
        };
        let pit_ticks = u64::from(clock::pit_elapsed(start.count, end.count));
        let measured_hz = clock::frequency_from_pit(end.tsc - start.tsc, pit_ticks).unwrap_or(0);
        let claimed_hz = PLATFORM.cycles_per_second();
        let ppm = clock::ppm_difference(claimed_hz, measured_hz);
        uk_rt::println!(
            "    TSC {} Hz calibrated at boot, {} Hz over {} PIT ticks: {} ppm apart",
            claimed_hz,
            measured_hz,
            pit_ticks,
            ppm
        );
        expect!(ppm < 10_000, "calibrated {} Hz vs {} Hz measured", claimed_hz, measured_hz);

        let pit_ns = pit_ticks * 1_000_000_000 / PIT_HZ;
        let clock_ns = PLATFORM.ns_at(end.tsc) - PLATFORM.ns_at(start.tsc);
        expect!(
            clock::ppm_difference(clock_ns, pit_ns) < 10_000,
            "clock advanced {} ns between the PIT edges, the PIT counted {} ns",
            clock_ns,
            pit_ns
        );
        let around_ns = ns_after - ns_before;
        expect!(
            around_ns >= pit_ns && clock::ppm_difference(around_ns, pit_ns) < 50_000,
            "clock advanced {} ns around a wait of {} ns",
            around_ns,
            pit_ns
        );
    }
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
    #[should_fail]
    fn invalid_opcode_fails_the_case() {
        arch::ud2();
    }
}

ktest! {
    /// A read of 0x100_0000_0000 (1 TiB, never mapped) raises #PF and fails the case.
    #[should_fail]
    fn unmapped_read_fails_the_case() {
        // SAFETY: the address is unmapped, so the read faults (the point of the case).
        let _ = unsafe { arch::probe(0x100_0000_0000) };
    }
}

ktest! {
    /// Page 0 is unmapped: a null pointer read faults.
    #[should_fail]
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
    #[should_fail]
    fn stack_overflow_is_a_double_fault_report() {
        arch::call_on_ktest_stack(recurse_forever);
    }
}
