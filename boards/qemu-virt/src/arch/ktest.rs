//! The board's in-image test cases (feature `ktest`): they run inside the booted image, so
//! they check what only the real machine can show.

use aarch64_cpu::registers::{CurrentEL, ID_AA64MMFR0_EL1, Readable, SCTLR_EL1, TCR_EL1};
use uk_hal::{Clock, Platform};
use uk_test::{expect, expect_eq, ktest};

use super::{PLATFORM, asm, mmu};
use crate::memmap::{PAGE_SIZE, Range};
use crate::{clock, devtree, pagetable};

/// The device tree blob QEMU handed over (it stays in memory, carved out of the heap).
fn device_tree() -> &'static [u8] {
    let blob = PLATFORM.boot_info().expect("booted").blob;
    // SAFETY: boot mapped the blob, checked its header, and excluded it from the memory
    // regions: it is never written, so a shared view of it is sound for the whole run.
    unsafe {
        core::slice::from_raw_parts(blob.start as *const u8, (blob.end - blob.start) as usize)
    }
}

ktest! {
    /// The kernel runs at EL1, whichever level QEMU entered it at.
    fn runs_at_el1() {
        expect_eq!(CurrentEL.read(CurrentEL::EL), 1);
        let entry = PLATFORM.entry_el().unwrap_or(0);
        expect!(entry == 1 || entry == 2, "entered at EL{entry}");
    }
}

ktest! {
    /// The MMU, both caches and write-implies-never-execute are on; the physical address size
    /// in TCR_EL1 is one the CPU has.
    fn mmu_and_caches_are_on() {
        expect!(SCTLR_EL1.is_set(SCTLR_EL1::M));
        expect!(SCTLR_EL1.is_set(SCTLR_EL1::C));
        expect!(SCTLR_EL1.is_set(SCTLR_EL1::I));
        expect!(SCTLR_EL1.is_set(SCTLR_EL1::WXN));
        let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
        expect_eq!(TCR_EL1.read(TCR_EL1::IPS), pagetable::ips_for_parange(parange));
        expect_eq!(TCR_EL1.read(TCR_EL1::T0SZ), pagetable::T0SZ);
    }
}

ktest! {
    /// The clock never goes backwards and is already past the time `main` was reached.
    fn clock_is_monotonic() {
        let mut last_cycles = PLATFORM.cycles();
        let mut last_ns = PLATFORM.monotonic_ns();
        expect!(last_ns >= uk_rt::time_to_main_ns());
        expect!(uk_rt::time_to_main_ns() > 0);
        for _ in 0..10_000 {
            let cycles = PLATFORM.cycles();
            let ns = PLATFORM.monotonic_ns();
            expect!(cycles >= last_cycles);
            expect!(ns >= last_ns);
            last_cycles = cycles;
            last_ns = ns;
        }
        expect!(PLATFORM.cycles_per_second() > 1_000_000, "CNTFRQ_EL0 = {}", PLATFORM.cycles_per_second());
    }
}

ktest! {
    /// The counter advances at the CNTFRQ_EL0 rate (within 10 %), measured against the PL031
    /// real-time clock's one-second ticks, an independent time source (skipped without one).
    fn clock_advances_at_cntfrq() {
        let Ok(tree) = fdt::Fdt::new(device_tree()) else {
            return expect!(false, "device tree unreadable");
        };
        let Some(rtc) = tree.find_compatible(&["arm,pl031"]).and_then(|n| n.reg()?.next()) else {
            return;
        };
        let data = rtc.starting_address as u64; // RTCDR: seconds
        let seconds = || {
            // SAFETY: the device tree's PL031 sits in the low GiB, mapped as Device memory;
            // reading RTCDR has no side effect.
            unsafe { (data as *const u32).read_volatile() }
        };
        let frequency = PLATFORM.cycles_per_second();
        let deadline = PLATFORM.cycles() + 3 * frequency;
        let wait_for_tick = || {
            let start = seconds();
            while seconds() == start {
                if PLATFORM.cycles() > deadline {
                    return None;
                }
            }
            Some(PLATFORM.cycles())
        };
        let (Some(first), Some(second)) = (wait_for_tick(), wait_for_tick()) else {
            return expect!(false, "the RTC did not tick within 3 s of counter time");
        };
        let measured = second - first;
        expect!(
            measured.abs_diff(frequency) < frequency / 10,
            "{measured} ticks in one RTC second, CNTFRQ_EL0 = {frequency}"
        );
        let ns = clock::ticks_to_ns(measured, frequency as u32);
        expect!(ns.abs_diff(1_000_000_000) < 100_000_000, "one RTC second = {ns} ns");
    }
}

ktest! {
    /// The memory map is non-empty, page-aligned, sorted and disjoint, lies in the device
    /// tree's RAM, spares the image, its stacks and page tables and the device tree, and every
    /// region is mapped writable.
    fn memory_map_is_sane() {
        let regions = PLATFORM.memory_regions();
        let info = PLATFORM.boot_info().expect("booted");
        let layout = mmu::image_layout();
        let image = Range { start: layout.start, end: layout.end };
        expect!(!regions.is_empty());
        expect!(regions.windows(2).all(|w| w[0].end() <= w[1].base), "sorted and disjoint");
        for region in regions {
            let range = Range { start: region.base, end: region.end() };
            expect!(region.size > 0 && region.base % PAGE_SIZE == 0 && region.size % PAGE_SIZE == 0);
            expect!(!range.overlaps(&image), "{range:x?} overlaps the image {image:x?}");
            expect!(!range.overlaps(&info.blob), "{range:x?} overlaps the device tree");
            expect!(info.ram().iter().any(|ram| ram.start <= range.start && range.end <= ram.end));
            expect!(asm::translates_for_write(region.base));
            expect!(asm::translates_for_write(region.end() - PAGE_SIZE));
        }
        let total: u64 = regions.iter().map(|r| r.size).sum();
        let ram: u64 = info.ram().iter().map(|r| r.end - r.start).sum();
        // At most the image and the device tree (1 MiB on QEMU) are missing.
        expect!(total + (image.end - image.start) + (2 << 20) >= ram, "{total} of {ram} bytes usable");
    }
}

ktest! {
    /// The command line the runtime sees is `/chosen/bootargs`.
    fn command_line_is_bootargs() {
        let blob = device_tree();
        let info = PLATFORM.boot_info().expect("booted");
        let again = devtree::parse(blob, info.blob.start, &[]);
        expect!(again.is_ok());
        if let Ok(again) = again {
            expect_eq!(PLATFORM.command_line(), again.command_line.as_str());
        }
    }
}

ktest! {
    /// The machine description names the board, the core and the entry level.
    fn machine_is_described() {
        let machine = PLATFORM.machine();
        expect!(machine.starts_with("QEMU virt, "), "{machine}");
        expect!(machine.contains("(MIDR 0x"), "{machine}");
        expect!(machine.contains("entered at EL"), "{machine}");
        expect!(!machine.contains("unknown core"), "{machine}");
    }
}

ktest! {
    /// A `brk` is a CPU exception, and a CPU exception fails the case (the run goes on).
    #[should_fail(cpu_exception = "BRK instruction")]
    fn breakpoint_fails_the_case() {
        asm::breakpoint();
    }
}

ktest! {
    /// A stack guard page is unmapped: touching it faults.
    #[should_fail(cpu_exception = "(stack guard page: stack overflow)")]
    fn guard_page_faults() {
        let guard = mmu::guard_pages()[0].start;
        // SAFETY: deliberately reads an unmapped page: the data abort ends the case before the
        // value could be used.
        let value = unsafe { (guard as *const u64).read_volatile() };
        expect_eq!(value, u64::MAX); // not reached
    }
}

ktest! {
    /// The boot stack has this build's size, 256 KiB with debug assertions and 64 KiB
    /// without: the build script (which sizes it in the linker script from the image's
    /// `CARGO_CFG_DEBUG_ASSERTIONS`) and the crate agree. It lies between the two guard pages.
    fn boot_stack_has_the_size_of_the_build() {
        let [boot, exception] = mmu::guard_pages();
        expect_eq!(exception.start - boot.end, crate::BOOT_STACK_SIZE);
        let expected = if cfg!(debug_assertions) { 256 } else { 64 } * 1024;
        expect_eq!(crate::BOOT_STACK_SIZE, expected);
    }
}

ktest! {
    /// Code is mapped read-only: writing to it faults.
    #[should_fail(cpu_exception = "permission fault at level 3, on a write")]
    fn code_is_read_only() {
        let code = mmu::image_layout().start + 0x800;
        // SAFETY: deliberately writes to a read-only page: the permission fault ends the case
        // before anything changes.
        unsafe { (code as *mut u64).write_volatile(0) };
    }
}

ktest! {
    /// After the CPU exceptions of the cases above (never returned from), the run goes on in
    /// the mode it started in: same stack selection, same DAIF, the exception stack's top
    /// back where it was.
    fn exceptions_leave_the_run_in_its_starting_mode() {
        expect_eq!(uk_rt::CpuMode::current(), uk_rt::CpuMode::at_test_start());
    }
}

ktest! {
    /// The board's device-tree reader and the `fdt` crate read the same RAM, command line and
    /// console from the blob QEMU handed over.
    fn device_tree_reader_agrees_with_fdt_crate() {
        let Ok(tree) = fdt::Fdt::new(device_tree()) else {
            return expect!(false, "the fdt crate rejects the blob");
        };
        let info = PLATFORM.boot_info().expect("booted");
        let mut ram = [Range::default(); devtree::MAX_RAM];
        let mut count = 0;
        for region in tree.find_all_nodes("/memory").flat_map(|n| n.reg().into_iter().flatten()) {
            if count < ram.len() {
                ram[count] = Range::from_base_size(region.starting_address as u64, region.size.unwrap_or(0) as u64);
                count += 1;
            }
        }
        let count = crate::memmap::normalize(&mut ram[..count]);
        expect_eq!(info.ram(), &ram[..count]);
        let bootargs = tree.find_node("/chosen").and_then(|c| c.property("bootargs")).and_then(|p| p.as_str());
        expect_eq!(PLATFORM.command_line(), bootargs.unwrap_or(""));
        let stdout = tree
            .find_node("/chosen")
            .and_then(|c| c.property("stdout-path"))
            .and_then(|p| p.as_str())
            .and_then(|path| tree.find_node(path.split(':').next().unwrap_or(path)))
            .and_then(|n| n.reg()?.next())
            .map(|r| r.starting_address as u64);
        expect_eq!(info.console, stdout);
    }
}

ktest! {
    /// An SGI nobody handles is counted, acknowledged and ended each time (logged once per
    /// line): two of them to self raise the board's count by two, and the run goes on.
    fn unhandled_interrupts_are_counted_and_ended() {
        use uk_hal::irq::IpiTarget;
        let irqs = PLATFORM.interrupts().expect("the GIC is up");
        let before = super::irq::unhandled_count();
        for _ in 0..2 {
            let seen = super::irq::unhandled_count();
            let state = irqs.mask();
            irqs.cpu_interface().send_ipi(14, IpiTarget::SelfOnly).expect("SGI 14");
            irqs.enable_on_this_cpu();
            let end = PLATFORM.monotonic_ns() + 100_000_000;
            while super::irq::unhandled_count() == seen && PLATFORM.monotonic_ns() < end {
                core::hint::spin_loop();
            }
            irqs.mask();
            irqs.restore(state);
        }
        expect_eq!(super::irq::unhandled_count(), before + 2);
    }
}
