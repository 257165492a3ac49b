//! The board's in-image test cases (feature `ktest`): they run inside the booted image, so
//! they check what only the real machine can show.

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use aarch64_cpu::registers::{CurrentEL, ID_AA64MMFR0_EL1, Readable, SCTLR_EL1, TCR_EL1};
use uk_hal::fault::{Fault, FaultAccess, FaultHook, FaultOutcome, MemoryFault};
use uk_hal::irq::{InterruptedRegisters, PC_REGISTER, SP_REGISTER};
use uk_hal::{Clock, PROTECTION_PAGE, PageAccess, PageProtection, Platform, ProtectError};
use uk_test::{expect, expect_eq, ktest};

use super::{PLATFORM, asm, mmu, protect};
use crate::memmap::{PAGE_SIZE, Range};
use crate::pagetable::{L1_BLOCK, L2_BLOCK};
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
    /// The low GiB is device memory in 2 MiB blocks from the GIC (`0x0800_0000`) up, and
    /// unmapped below (the flash window): the MMU and `mmio_is_mapped` agree.
    fn low_gib_maps_devices_above_the_flash_window() {
        let flash_end = pagetable::UNMAPPED_LOW_END;
        for address in [0, 16, 0x0400_0000, flash_end - PAGE_SIZE] {
            expect!(!asm::translates_for_read(address), "{address:#x} translates");
            expect!(!PLATFORM.mmio_is_mapped(address, 8), "{address:#x} said mapped");
            expect_eq!(protect::mapping_level(address), None);
        }
        let uart = PLATFORM.boot_info().and_then(|info| info.console).unwrap_or(crate::FALLBACK_UART);
        for address in [flash_end, uart, 0x0a00_0000, L1_BLOCK - PAGE_SIZE] {
            expect!(asm::translates_for_read(address), "{address:#x} does not translate");
            expect!(PLATFORM.mmio_is_mapped(address, 8), "{address:#x} said unmapped");
            expect_eq!(protect::mapping_level(address), Some(2));
        }
        expect!(!PLATFORM.mmio_is_mapped(flash_end - 8, 16), "a range into the flash window");
    }
}

ktest! {
    /// The bottom 128 MiB (`virt`'s flash, which the board never uses) is unmapped, unlike
    /// the devices above it: a NULL pointer dereference (a load from address 16) takes a
    /// translation fault in the low GiB's level-2 table instead of reading flash.
    #[should_fail(cpu_exception = "translation fault at level 2, on a read\n  FAR_EL1  0x0000000000000010\n")]
    fn null_pointer_read_faults() {
        let null = core::hint::black_box(16usize) as *const u64;
        // SAFETY: deliberately reads an unmapped address: the data abort ends the case before
        // the value could be used.
        let value = unsafe { null.read_volatile() };
        expect_eq!(value, u64::MAX); // not reached
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

/// The board's page protection (there once booted).
fn protection() -> &'static dyn PageProtection {
    PLATFORM
        .page_protection()
        .expect("qemu-virt has page protection")
}

/// Heap memory for the page-protection cases: whole pages, page aligned, given back
/// read-write before they are freed.
struct TestPages {
    base: usize,
    layout: Layout,
}

/// Pages a case that must fault left inaccessible or read-only (it cannot clean up after
/// its fault): the next page-protection case makes them read-write again and frees them.
static LEFT_BEHIND: spin::Mutex<Option<(usize, Layout)>> = spin::Mutex::new(None);

impl TestPages {
    /// `bytes` (a multiple of the page size) of heap memory, each page starting with
    /// [`pattern`].
    fn new(bytes: usize) -> Self {
        let pages = Self::untouched(bytes);
        for offset in (0..bytes).step_by(PROTECTION_PAGE) {
            pages.write(offset, pattern(pages.base + offset));
        }
        pages
    }

    /// `bytes` of heap memory as the allocator hands it out (not a byte written, so a large
    /// allocation costs the host no memory).
    fn untouched(bytes: usize) -> Self {
        give_back_left_behind();
        let layout = Layout::from_size_align(bytes, PROTECTION_PAGE).expect("layout");
        // SAFETY: a non-zero size; a null result is checked.
        let base = unsafe { alloc::alloc::alloc(layout) };
        assert!(!base.is_null(), "no {bytes} bytes of heap for the test");
        Self {
            base: base as usize,
            layout,
        }
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    fn read(&self, offset: usize) -> u64 {
        assert!(offset + 8 <= self.len());
        // SAFETY: inside the allocation; the caller has made the page readable (or means
        // the read to fault).
        unsafe { ((self.base + offset) as *const u64).read_volatile() }
    }

    fn write(&self, offset: usize, value: u64) {
        assert!(offset + 8 <= self.len());
        // SAFETY: inside the allocation; the caller has made the page writable (or means
        // the write to fault).
        unsafe { ((self.base + offset) as *mut u64).write_volatile(value) }
    }

    /// Sets the rights of `pages` pages from page `first` of the allocation.
    fn set(&self, first: usize, pages: usize, access: PageAccess) -> Result<(), ProtectError> {
        // SAFETY: the pages belong to this allocation, and `Drop` (or
        // `give_back_left_behind`) makes them read-write again before freeing them.
        unsafe {
            protection().set_access(
                self.base + first * PROTECTION_PAGE,
                pages * PROTECTION_PAGE,
                access,
            )
        }
    }

    /// Keeps the pages out of the heap until the next case gives them back: for a case that
    /// ends in a fault.
    fn leave_behind(self) {
        let pages = core::mem::ManuallyDrop::new(self);
        *LEFT_BEHIND.lock() = Some((pages.base, pages.layout));
    }
}

impl Drop for TestPages {
    fn drop(&mut self) {
        give_back(self.base, self.layout);
    }
}

/// Makes the pages read-write again and frees them.
fn give_back(base: usize, layout: Layout) {
    // SAFETY: the pages are the test's own allocation.
    let restored = unsafe { protection().set_access(base, layout.size(), PageAccess::ReadWrite) };
    if restored.is_ok() {
        // SAFETY: allocated with `layout`, read-write again.
        unsafe { alloc::alloc::dealloc(base as *mut u8, layout) };
    }
    expect_eq!(restored, Ok(()));
}

fn give_back_left_behind() {
    remove_left_behind_hook();
    let left = LEFT_BEHIND.lock().take();
    if let Some((base, layout)) = left {
        give_back(base, layout);
    }
}

/// What a test page holds at `address`: its own address, mixed.
fn pattern(address: usize) -> u64 {
    (address as u64) ^ 0x5a5a_0000_0000_a5a5
}

ktest! {
    /// A heap page set to no access faults on a read: a translation fault at level 3 (the
    /// block holding it became a level-3 table), reported with the page's address.
    #[should_fail(cpu_exception = "translation fault at level 3, on a read")]
    fn page_without_access_faults_on_read() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let base = pages.base;
        expect_eq!(pages.set(0, 1, PageAccess::None), Ok(()));
        expect_eq!(protection().access(base), Some(PageAccess::None));
        expect_eq!(protect::mapping_level(base as u64), Some(3));
        pages.leave_behind();
        // SAFETY: deliberately reads the inaccessible page: the data abort ends the case.
        let value = unsafe { (base as *const u64).read_volatile() };
        expect_eq!(value, 0); // not reached
    }
}

ktest! {
    /// A heap page set read-only can be read (its contents unchanged), but a write faults: a
    /// permission fault at level 3.
    #[should_fail(cpu_exception = "permission fault at level 3, on a write")]
    fn read_only_page_faults_on_write() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let base = pages.base;
        expect_eq!(pages.set(0, 1, PageAccess::ReadOnly), Ok(()));
        expect_eq!(protection().access(base), Some(PageAccess::ReadOnly));
        expect_eq!(pages.read(0), pattern(base));
        expect!(asm::translates_for_read(base as u64));
        expect!(!asm::translates_for_write(base as u64));
        pages.leave_behind();
        // SAFETY: deliberately writes the read-only page: the permission fault ends the case.
        unsafe { (base as *mut u64).write_volatile(1) };
    }
}

ktest! {
    /// None, read-only, read-write and back: `access` reports each state, the MMU agrees
    /// (`AT S1E1R`/`S1E1W`), the contents survive, and the neighbouring pages keep their
    /// rights throughout.
    fn page_rights_round_trip() {
        let pages = TestPages::new(3 * PROTECTION_PAGE);
        let before = pages.base;
        let page = before + PROTECTION_PAGE;
        let after = page + PROTECTION_PAGE;
        let readable = |a: usize| asm::translates_for_read(a as u64);
        let writable = |a: usize| asm::translates_for_write(a as u64);
        expect_eq!(protection().access(page), Some(PageAccess::ReadWrite));
        for (access, read, write) in [
            (PageAccess::None, false, false),
            (PageAccess::ReadOnly, true, false),
            (PageAccess::None, false, false),
            (PageAccess::ReadWrite, true, true),
            (PageAccess::ReadOnly, true, false),
            (PageAccess::ReadWrite, true, true),
        ] {
            expect_eq!(pages.set(1, 1, access), Ok(()));
            expect_eq!(protection().access(page), Some(access));
            expect_eq!(protection().access(page + 0xff8), Some(access));
            let mmu = (readable(page), writable(page));
            expect!(mmu == (read, write), "{access:?}: the MMU reads and writes {mmu:?}");
            for neighbour in [before, after] {
                expect_eq!(protection().access(neighbour), Some(PageAccess::ReadWrite));
                expect!(writable(neighbour));
            }
            if read {
                expect_eq!(pages.read(PROTECTION_PAGE), pattern(page));
            }
        }
        pages.write(PROTECTION_PAGE, 7);
        expect_eq!(pages.read(PROTECTION_PAGE), 7);
        expect_eq!(pages.read(0), pattern(before));
        expect_eq!(pages.read(2 * PROTECTION_PAGE), pattern(after));
        expect_eq!(protect::mapping_level(page as u64), Some(3));
    }
}

ktest! {
    /// Misaligned or empty ranges, ranges outside the usable memory (the image, MMIO, the
    /// device tree, past the end of RAM, wrapping) are refused with the right error and
    /// change nothing; `access` knows nothing outside RAM.
    fn bad_ranges_are_refused_and_change_nothing() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let page = pages.base;
        let p = protection();
        let info = PLATFORM.boot_info().expect("booted");
        let image = mmu::image_layout();
        let last = PLATFORM.memory_regions().last().expect("RAM").end() as usize;
        let set = |start: usize, len: usize| {
            // SAFETY: every one of these calls is refused (checked below): nothing changes.
            unsafe { p.set_access(start, len, PageAccess::None) }
        };
        for (start, len) in [
            (page + 8, PROTECTION_PAGE),
            (page, 100),
            (page, 0),
            (page, PROTECTION_PAGE + 1),
        ] {
            let result = set(start, len);
            expect!(result == Err(ProtectError::Unaligned), "{start:#x} + {len:#x}: {result:?}");
        }
        for (start, len) in [
            (image.start as usize, PROTECTION_PAGE),
            (image.end as usize - PROTECTION_PAGE, 2 * PROTECTION_PAGE),
            (0x0900_0000, PROTECTION_PAGE),
            (info.blob.start as usize, PROTECTION_PAGE),
            (last - PROTECTION_PAGE, 2 * PROTECTION_PAGE),
            (last, PROTECTION_PAGE),
            (usize::MAX - 0xfff, PROTECTION_PAGE),
            (page, usize::MAX - 0xfff),
        ] {
            let result = set(start, len);
            expect!(result == Err(ProtectError::NotRam), "{start:#x} + {len:#x}: {result:?}");
        }
        expect_eq!(p.access(page), Some(PageAccess::ReadWrite));
        expect!(asm::translates_for_write(page as u64));
        expect!(asm::translates_for_write(last as u64 - PAGE_SIZE));
        expect!(asm::translates_for_write(image.end - PAGE_SIZE));
        expect_eq!(p.access(image.start as usize), None);
        expect_eq!(p.access(0x0900_0000), None);
        expect_eq!(p.access(last), None);
        expect_eq!(p.access(usize::MAX), None);
    }
}

ktest! {
    /// Two pages on either side of a 2 MiB boundary go read-only and back in one call: both
    /// blocks are split, both pages change, the pages around them do not.
    fn range_across_a_2mib_boundary() {
        let pages = TestPages::new(L2_BLOCK as usize + 2 * PROTECTION_PAGE);
        let boundary = (pages.base + PROTECTION_PAGE).next_multiple_of(L2_BLOCK as usize);
        let first = (boundary - PROTECTION_PAGE - pages.base) / PROTECTION_PAGE;
        expect_eq!(pages.set(first, 2, PageAccess::ReadOnly), Ok(()));
        for (address, access) in [
            (boundary - 2 * PROTECTION_PAGE, PageAccess::ReadWrite),
            (boundary - PROTECTION_PAGE, PageAccess::ReadOnly),
            (boundary, PageAccess::ReadOnly),
            (boundary + PROTECTION_PAGE, PageAccess::ReadWrite),
        ] {
            if address < pages.base || address >= pages.base + pages.len() {
                continue;
            }
            let got = protection().access(address);
            expect!(got == Some(access), "{address:#x}: {got:?}");
            let writable = asm::translates_for_write(address as u64);
            expect!(writable == (access == PageAccess::ReadWrite), "{address:#x}");
            let level = protect::mapping_level(address as u64);
            expect!(level == Some(3), "{address:#x}: level {level:?}");
            expect_eq!(pages.read(address - pages.base), pattern(address));
        }
        expect_eq!(pages.set(first, 2, PageAccess::ReadWrite), Ok(()));
        for address in [boundary - PROTECTION_PAGE, boundary] {
            expect_eq!(protection().access(address), Some(PageAccess::ReadWrite));
            pages.write(address - pages.base, 9);
            expect_eq!(pages.read(address - pages.base), 9);
        }
    }
}

ktest! {
    /// With the heap allowed one more table than it holds, a range needing two or more new
    /// tables fails with `OutOfTables` and changes nothing: its blocks stay blocks, read-write.
    fn out_of_tables_changes_nothing() {
        const BLOCKS: usize = 7;
        let pages = TestPages::new((BLOCKS + 1) * L2_BLOCK as usize);
        let start = pages.base.next_multiple_of(L2_BLOCK as usize) as u64;
        let end = start + BLOCKS as u64 * L2_BLOCK;
        let levels = || -> [Option<u8>; BLOCKS] {
            core::array::from_fn(|i| protect::mapping_level(start + i as u64 * L2_BLOCK))
        };
        // Blocks earlier cases split (the tables stay) need no table: any two of the seven
        // that did not will do.
        let needed = protect::tables_needed(start, end).unwrap_or(0);
        expect!(needed >= 2, "{needed} tables for {start:#x}..{end:#x}: {:?}", levels());
        let before = levels();
        // Room for all tables but the last: the ones allocated first are freed again.
        let heap = uk_rt::allocator();
        let limit = heap.limit();
        let room = needed.saturating_sub(1) * PROTECTION_PAGE;
        heap.set_limit(Some(heap.stats().cur_bytes + room));
        // SAFETY: the range lies inside the test's allocation (and is refused).
        let result = unsafe {
            protection().set_access(start as usize, (end - start) as usize, PageAccess::None)
        };
        heap.set_limit(limit);
        expect_eq!(result, Err(ProtectError::OutOfTables));
        expect_eq!(levels(), before);
        expect_eq!(protect::tables_needed(start, end), Ok(needed));
        for block in (start..end).step_by(L2_BLOCK as usize) {
            for address in [block, block + L2_BLOCK - PAGE_SIZE] {
                expect_eq!(protection().access(address as usize), Some(PageAccess::ReadWrite));
                expect!(asm::translates_for_write(address));
                let offset = address as usize - pages.base;
                expect_eq!(pages.read(offset), pattern(address as usize));
            }
        }
    }
}

ktest! {
    /// With RAM beyond the image's GiB (`--mem 2G`), a page there splits its 1 GiB block
    /// into a level-2 table in one break (skipped with less RAM).
    fn a_1gib_block_is_split() {
        let image_gib_end = (mmu::image_layout().start / L1_BLOCK + 1) * L1_BLOCK;
        let heap = uk_rt::allocator();
        if !PLATFORM.memory_regions().iter().any(|r| r.end() > image_gib_end + L2_BLOCK)
            || heap.available() < (L1_BLOCK + (16 << 20)) as usize
        {
            uk_rt::println!("    skipped: no RAM beyond the image's GiB (run with --mem 2G)");
            return;
        }
        let pages = TestPages::untouched(L1_BLOCK as usize);
        let page = (pages.base as u64).max(image_gib_end).next_multiple_of(PAGE_SIZE);
        expect!(page + PAGE_SIZE <= (pages.base + pages.len()) as u64);
        let level = protect::mapping_level(page);
        uk_rt::println!("    page {page:#x}: level {level:?} before");
        let offset = page as usize - pages.base;
        let first = offset / PROTECTION_PAGE;
        pages.write(offset, pattern(page as usize));
        expect_eq!(pages.set(first, 1, PageAccess::None), Ok(()));
        expect_eq!(protection().access(page as usize), Some(PageAccess::None));
        expect_eq!(protect::mapping_level(page), Some(3));
        expect!(!asm::translates_for_read(page));
        // The rest of that GiB: 2 MiB blocks with the GiB's attributes (or pages).
        let far = page + L1_BLOCK / 2;
        if far < (pages.base + pages.len()) as u64 {
            expect!(matches!(protect::mapping_level(far), Some(2 | 3)));
            expect!(asm::translates_for_write(far));
        }
        expect_eq!(pages.set(first, 1, PageAccess::ReadWrite), Ok(()));
        expect_eq!(pages.read(offset), pattern(page as usize));
        pages.write(offset, 3);
        expect_eq!(pages.read(offset), 3);
    }
}

ktest! {
    /// The return from the exception handler to the faulting instruction (what another CPU
    /// does after touching a block while it is split): a fault on an inaccessible page that
    /// the handler finds readable again (as if a split had ended) is retried, and the load
    /// completes with every general register and the flags as they were.
    fn transient_translation_fault_is_retried() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let base = pages.base;
        expect_eq!(pages.set(0, 1, PageAccess::None), Ok(()));
        protect::REPAIR_ON_FAULT.store(base as u64, Ordering::SeqCst);
        let value: u64;
        let flags_in: u64 = 0x6000_0000; // Z and C
        let flags_out: u64;
        let mut regs = [0u64; 16];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1) ^ 0x8000_0000_dead_0000;
        }
        let expected = regs;
        // SAFETY: loads from the test's page, which the handler makes readable (the armed
        // repair); only the named registers change.
        unsafe {
            core::arch::asm!(
                "msr nzcv, {flags_in}",
                "ldr {value}, [{address}]",
                "mrs {flags_out}, nzcv",
                address = in(reg) base,
                flags_in = in(reg) flags_in,
                value = out(reg) value,
                flags_out = out(reg) flags_out,
                inout("x0") regs[0], inout("x1") regs[1], inout("x2") regs[2],
                inout("x3") regs[3], inout("x4") regs[4], inout("x5") regs[5],
                inout("x6") regs[6], inout("x7") regs[7], inout("x20") regs[8],
                inout("x21") regs[9], inout("x22") regs[10], inout("x23") regs[11],
                inout("x24") regs[12], inout("x25") regs[13], inout("x26") regs[14],
                inout("x27") regs[15],
                options(nostack),
            )
        };
        // Disarmed: the fault was taken and repaired.
        expect_eq!(protect::REPAIR_ON_FAULT.load(Ordering::SeqCst), 0);
        expect_eq!(value, pattern(base));
        expect_eq!(flags_out & 0xf000_0000, flags_in);
        expect_eq!(regs, expected);
        expect_eq!(protection().access(base), Some(PageAccess::ReadWrite));
    }
}

/// What [`test_hook`] does with an armed fault (of the armed kind, in the armed range).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Makes the faulting page read-write again; `Resume` (a memory fault; `Unhandled` for
    /// other kinds, which no page rights repair).
    Repair = 0,
    /// Moves the program counter to the word after the one it points into (past the
    /// faulting instruction; for a misaligned branch target, past the word it lies in) and
    /// sets `x9` to [`HOOK_MARKER`]; `Resume`.
    SkipInstruction = 1,
    /// `Unhandled` (when called again for the same fault, which a resumed `Unhandled`
    /// would cause: returns to the caller through `x30`, so the case ends without a fault).
    Decline = 2,
}

/// The kinds of [`Fault`] [`test_hook`] tells apart, as it records them in [`HOOK_FAULT`]
/// and [`HOOK_KIND`] (atomics hold numbers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// [`Fault::Memory`].
    Memory = 1,
    /// [`Fault::Misaligned`].
    Misaligned = 2,
    /// [`Fault::IllegalInstruction`].
    IllegalInstruction = 3,
    /// [`Fault::Breakpoint`].
    Breakpoint = 4,
}

/// The armed range `[start, end)` of [`test_hook`]; faults elsewhere go to the hook
/// installed before it.
static HOOK_RANGE: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
/// The armed [`Kind`] of [`test_hook`]; faults of other kinds go to the hook installed
/// before it, so a fault offered as the wrong kind is reported and fails the case.
static HOOK_KIND: AtomicU8 = AtomicU8::new(0);
/// [`Behaviour`] of [`test_hook`].
static HOOK_BEHAVIOUR: AtomicU8 = AtomicU8::new(0);
/// Calls of [`test_hook`] for an armed fault.
static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);
/// The last armed fault [`test_hook`] got: address, access (0 none, 1 read, 2 write, 3
/// execute), [`Kind`].
static HOOK_FAULT: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
/// What [`test_hook`] saw of the faulting code and of itself: the interrupted SP, its own
/// SP, its own `DAIF`, `x16`, `x17`, and the PC.
static HOOK_SAW: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
/// The hook installed before [`test_hook`], put back afterwards.
static PREVIOUS_HOOK: spin::Mutex<Option<FaultHook>> = spin::Mutex::new(None);
/// [`test_hook`] stayed installed after a case that ended in a fault.
static HOOK_LEFT_BEHIND: AtomicBool = AtomicBool::new(false);
/// What [`Behaviour::SkipInstruction`] writes to `x9`.
const HOOK_MARKER: usize = 0x600d_f00d_0000_0009;

fn access_code(access: FaultAccess) -> usize {
    match access {
        FaultAccess::Read => 1,
        FaultAccess::Write => 2,
        FaultAccess::Execute => 3,
    }
}

/// A fault's kind, address and access code (0 for none), as [`test_hook`] records them;
/// `None` for the kinds this board never offers (x86's divide error and general
/// protection fault).
fn parts(fault: &Fault) -> Option<(Kind, usize, usize)> {
    match *fault {
        Fault::Memory(MemoryFault { addr, access }) => {
            Some((Kind::Memory, addr, access_code(access)))
        }
        Fault::Misaligned { addr, access } => Some((Kind::Misaligned, addr, access_code(access))),
        Fault::IllegalInstruction { addr } => Some((Kind::IllegalInstruction, addr, 0)),
        Fault::Breakpoint { addr } => Some((Kind::Breakpoint, addr, 0)),
        _ => None,
    }
}

/// The test cases' fault hook (see [`Behaviour`]).
fn test_hook(fault: &Fault, registers: &InterruptedRegisters) -> FaultOutcome {
    let range = HOOK_RANGE[0].load(Ordering::SeqCst)..HOOK_RANGE[1].load(Ordering::SeqCst);
    let kind = HOOK_KIND.load(Ordering::SeqCst);
    let armed = parts(fault).filter(|&(k, addr, _)| k as u8 == kind && range.contains(&addr));
    let Some((kind, addr, access)) = armed else {
        let previous = *PREVIOUS_HOOK.lock();
        return previous.map_or(FaultOutcome::Unhandled, |hook| hook(fault, registers));
    };
    let calls = HOOK_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    HOOK_FAULT[0].store(addr, Ordering::SeqCst);
    HOOK_FAULT[1].store(access, Ordering::SeqCst);
    HOOK_FAULT[2].store(kind as usize, Ordering::SeqCst);
    let (sp, daif): (usize, usize);
    // SAFETY: reads SP and DAIF, nothing else.
    unsafe {
        core::arch::asm!("mov {}, sp", "mrs {}, daif", out(reg) sp, out(reg) daif,
            options(nomem, nostack, preserves_flags))
    };
    // SAFETY: the board calls the hook with registers valid during the call.
    let get = |register| unsafe { registers.get(register) }.unwrap_or(0);
    HOOK_SAW[0].store(get(SP_REGISTER), Ordering::SeqCst);
    HOOK_SAW[1].store(sp, Ordering::SeqCst);
    HOOK_SAW[2].store(daif, Ordering::SeqCst);
    HOOK_SAW[3].store(get(16), Ordering::SeqCst);
    HOOK_SAW[4].store(get(17), Ordering::SeqCst);
    HOOK_SAW[5].store(get(PC_REGISTER), Ordering::SeqCst);
    let behaviour = HOOK_BEHAVIOUR.load(Ordering::SeqCst);
    if behaviour == Behaviour::Repair as u8 {
        if kind != Kind::Memory {
            return FaultOutcome::Unhandled;
        }
        let page = addr & !(PROTECTION_PAGE - 1);
        // SAFETY: the armed range is the running case's own test pages.
        let repaired =
            unsafe { protection().set_access(page, PROTECTION_PAGE, PageAccess::ReadWrite) };
        return if repaired.is_ok() {
            FaultOutcome::Resume
        } else {
            FaultOutcome::Unhandled
        };
    }
    if behaviour == Behaviour::SkipInstruction as u8 {
        // As any code may: caller-saved SIMD registers are the hook's to change; the
        // faulting code must get its own back.
        // SAFETY: only the declared registers change.
        unsafe {
            core::arch::asm!("movi v0.2d, #0", "movi v31.2d, #0", out("v0") _, out("v31") _,
                options(nomem, nostack, preserves_flags))
        };
        // The word after the faulting one: for a misaligned branch target (`x10` + 2 in
        // `run_faulting_code!`), the instruction after the label.
        let next = (get(PC_REGISTER) & !3) + 4;
        // SAFETY: as above; the next instruction of the case's `asm!` block.
        let moved = unsafe { registers.set(PC_REGISTER, next) && registers.set(9, HOOK_MARKER) };
        return if moved {
            FaultOutcome::Resume
        } else {
            FaultOutcome::Unhandled
        };
    }
    // SAFETY: as above; `x30` of a declining case is where it goes on (the caller's return
    // address, or the label its `asm!` block put there).
    if calls > 1 && unsafe { registers.set(PC_REGISTER, get(30)) } {
        return FaultOutcome::Resume;
    }
    FaultOutcome::Unhandled
}

/// [`test_hook`] installed for a case, with `behaviour` for faults of `kind` in `[start,
/// start + len)`; the hook from before is put back on drop.
struct HookGuard;

impl HookGuard {
    fn install(behaviour: Behaviour, kind: Kind, start: usize, len: usize) -> Self {
        remove_left_behind_hook();
        HOOK_BEHAVIOUR.store(behaviour as u8, Ordering::SeqCst);
        HOOK_KIND.store(kind as u8, Ordering::SeqCst);
        HOOK_CALLS.store(0, Ordering::SeqCst);
        for word in &HOOK_FAULT {
            word.store(0, Ordering::SeqCst);
        }
        HOOK_RANGE[0].store(start, Ordering::SeqCst);
        HOOK_RANGE[1].store(start + len, Ordering::SeqCst);
        // A case that failed by an unexpected CPU exception never dropped its guard: the
        // hook is still installed then, and the one from before it still recorded. Taking
        // the hook for its own predecessor would make it call itself for every fault it
        // passes on, without end.
        let replaced = uk_hal::fault::set_hook(Some(test_hook));
        if !replaced.is_some_and(is_test_hook) {
            *PREVIOUS_HOOK.lock() = replaced;
        }
        Self
    }

    /// [`HookGuard::install`] for faults whose address is in the image's code: an
    /// instruction's (illegal instruction, breakpoint) or a branch target's.
    fn install_for_code(behaviour: Behaviour, kind: Kind) -> Self {
        let layout = mmu::image_layout();
        Self::install(
            behaviour,
            kind,
            layout.start as usize,
            (layout.code_end - layout.start) as usize,
        )
    }

    /// Forgets what the hook recorded, for the next fault of the same case.
    fn reset(&self) {
        HOOK_CALLS.store(0, Ordering::SeqCst);
        for word in &HOOK_FAULT {
            word.store(0, Ordering::SeqCst);
        }
    }

    /// For a case that ends in a fault (never returning, so never dropping the guard): the
    /// hook stays, passing faults outside its range on, until the next case that installs
    /// it or protects pages removes it.
    fn leave_behind(self) {
        core::mem::forget(self);
        HOOK_LEFT_BEHIND.store(true, Ordering::SeqCst);
    }
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        remove_hook();
    }
}

/// Disarms [`test_hook`] and puts the hook from before it back (if it is still installed).
fn remove_hook() {
    HOOK_RANGE[1].store(0, Ordering::SeqCst);
    let previous = PREVIOUS_HOOK.lock().take();
    if uk_hal::fault::hook().is_some_and(is_test_hook) {
        uk_hal::fault::set_hook(previous);
    }
}

/// Whether `hook` is [`test_hook`].
fn is_test_hook(hook: FaultHook) -> bool {
    hook as *const () == test_hook as *const ()
}

fn remove_left_behind_hook() {
    if HOOK_LEFT_BEHIND.swap(false, Ordering::SeqCst) {
        remove_hook();
    }
}

/// Runs `f` with IRQs unmasked (the faulting code of an offered fault has them so), then
/// puts `DAIF.I` back.
fn with_irqs_unmasked<R>(f: impl FnOnce() -> R) -> R {
    let daif = super::irq::irq_save();
    // SAFETY: unmasking IRQs only lets the vectors (installed at boot) run.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
    let result = f();
    super::irq::irq_restore(daif);
    result
}

ktest! {
    /// A fault on a page with no access, taken with IRQs unmasked, goes to the fault hook
    /// with its address and access (a read), on the faulting thread's stack right below its
    /// stack pointer, with IRQs unmasked; the hook makes the page read-write and resumes, and
    /// the read completes with the page's content. A store to a read-only page is offered
    /// as a write, and completes after the hook.
    fn fault_hook_repairs_and_resumes() {
        let pages = TestPages::new(2 * PROTECTION_PAGE);
        let base = pages.base;
        expect_eq!(pages.set(0, 1, PageAccess::None), Ok(()));
        expect_eq!(pages.set(1, 1, PageAccess::ReadOnly), Ok(()));
        let _hook = HookGuard::install(Behaviour::Repair, Kind::Memory, base, pages.len());
        let value = with_irqs_unmasked(|| pages.read(0));
        expect_eq!(value, pattern(base));
        expect_eq!(HOOK_CALLS.load(Ordering::SeqCst), 1);
        expect_eq!(HOOK_FAULT[0].load(Ordering::SeqCst), base);
        expect_eq!(HOOK_FAULT[1].load(Ordering::SeqCst), access_code(FaultAccess::Read));
        let (interrupted_sp, hook_sp) = (HOOK_SAW[0].load(Ordering::SeqCst), HOOK_SAW[1].load(Ordering::SeqCst));
        expect!(
            hook_sp < interrupted_sp && interrupted_sp - hook_sp < 8192,
            "hook on {hook_sp:#x}, faulting code on {interrupted_sp:#x}"
        );
        expect_eq!(HOOK_SAW[2].load(Ordering::SeqCst) & (1 << 7), 0);
        expect_eq!(protection().access(base), Some(PageAccess::ReadWrite));
        let page = base + PROTECTION_PAGE;
        with_irqs_unmasked(|| pages.write(PROTECTION_PAGE + 8, 5));
        expect_eq!(HOOK_CALLS.load(Ordering::SeqCst), 2);
        expect_eq!(HOOK_FAULT[0].load(Ordering::SeqCst), page + 8);
        expect_eq!(HOOK_FAULT[1].load(Ordering::SeqCst), access_code(FaultAccess::Write));
        expect_eq!(pages.read(PROTECTION_PAGE + 8), 5);
        expect_eq!(pages.read(PROTECTION_PAGE), pattern(page));
    }
}

/// `x0`-`x7` and `x20`-`x27` for `run_faulting_code!`: a different value in each.
fn registers_in() -> [u64; 16] {
    core::array::from_fn(|i| {
        0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1) ^ 0x8000_0000_beef_0000
    })
}
/// `x16` and `x17` for `run_faulting_code!`: the registers a veneer or PLT stub may use,
/// which the hook must see as the faulting code had them.
const X16_X17_IN: (u64, u64) = (0x1616_1616_0000_0016, 0x1717_1717_0000_0017);
/// The low and high halves of `q0` and `q31` for `run_faulting_code!`.
const Q_IN: [u64; 4] = [
    0x0a0a_0000_0000_0001,
    0x0b0b_0000_0000_0002,
    0x0c0c_0000_0000_0003,
    0x0d0d_0000_0000_0004,
];
/// The flags for `run_faulting_code!`: N and V.
const FLAGS_IN: u64 = 0x9000_0000;

/// What the code of `run_faulting_code!` ended with.
struct Ran {
    /// `x9`: [`HOOK_MARKER`] once [`Behaviour::SkipInstruction`] moved the PC.
    x9: u64,
    /// `x10`: the address of the code's label `2`.
    x10: u64,
    /// 1 if the code after the faulting instruction ran.
    after: u64,
    /// `NZCV` after the fault.
    flags: u64,
    /// `x16` and `x17` after the fault.
    x16_x17: (u64, u64),
    /// `q0` and `q31` after the fault, as in [`Q_IN`].
    q: [u64; 4],
    /// `x0`-`x7` and `x20`-`x27` after the fault.
    registers: [u64; 16],
}

/// Runs the `asm!` template lines given with IRQs unmasked (so that their fault is
/// offered), with `$address` in `x11`, the address of their label `2` (which they must
/// define) in `x10`, and known values in `x0`-`x7`, `x16`, `x17`, `x20`-`x27`, `q0`, `q31`
/// and the flags ([`registers_in`], [`X16_X17_IN`], [`Q_IN`], [`FLAGS_IN`]); then the
/// instruction after them, which the hook's [`Behaviour::SkipInstruction`] moves the PC
/// to. The lines may change `x9` (the hook does) and nothing else. Evaluates to what the
/// code ended with ([`Ran`]).
macro_rules! run_faulting_code {
    ($address:expr, $($line:literal),+ $(,)?) => {{
        let mut registers = registers_in();
        let address: usize = $address;
        let (mut x9, mut x10) = (0xbad_u64, 0u64);
        let (mut x16, mut x17) = X16_X17_IN;
        let (mut after, mut flags) = (0u64, 0u64);
        let mut q = Q_IN;
        with_irqs_unmasked(|| {
            // SAFETY: the lines fault (on the case's own memory or code, never changing
            // it) and the case's hook moves the PC to the `mov` after them; only the
            // named registers change.
            unsafe {
                core::arch::asm!(
                    "fmov d0, {q0}",
                    "mov v0.d[1], {q1}",
                    "fmov d31, {q2}",
                    "mov v31.d[1], {q3}",
                    "msr nzcv, {flags_in}",
                    "adr x10, 2f",
                    $($line,)+
                    "mov {after}, #1",
                    "mrs {flags}, nzcv",
                    "fmov {q0}, d0",
                    "mov {q1}, v0.d[1]",
                    "fmov {q2}, d31",
                    "mov {q3}, v31.d[1]",
                    flags_in = in(reg) FLAGS_IN,
                    after = out(reg) after,
                    flags = out(reg) flags,
                    q0 = inout(reg) q[0], q1 = inout(reg) q[1],
                    q2 = inout(reg) q[2], q3 = inout(reg) q[3],
                    inout("x9") x9, out("x10") x10, in("x11") address,
                    inout("x16") x16, inout("x17") x17,
                    inout("x0") registers[0], inout("x1") registers[1], inout("x2") registers[2],
                    inout("x3") registers[3], inout("x4") registers[4], inout("x5") registers[5],
                    inout("x6") registers[6], inout("x7") registers[7], inout("x20") registers[8],
                    inout("x21") registers[9], inout("x22") registers[10], inout("x23") registers[11],
                    inout("x24") registers[12], inout("x25") registers[13], inout("x26") registers[14],
                    inout("x27") registers[15], out("v0") _, out("v31") _,
                    options(nostack),
                )
            }
        });
        Ran { x9, x10, after, flags: flags & 0xf000_0000, x16_x17: (x16, x17), q, registers }
    }};
}

/// Checks a `run_faulting_code!` run under [`Behaviour::SkipInstruction`]: the hook was
/// called once, for a fault of kind `$kind` at `$addr` with one of the access codes
/// `$access` (0: none), with the PC at `$pc` and the faulting code's `x16` and `x17`; the
/// code went on after the faulting instruction with `x9` as the hook set it and every other
/// register (SIMD and flags included) as it was. A macro, so that a failure names the
/// case's line.
macro_rules! expect_skipped {
    ($ran:expr, $kind:expr, $addr:expr, $access:expr, $pc:expr $(,)?) => {{
        let ran: &Ran = &$ran;
        let access: &[usize] = &$access;
        expect_eq!(HOOK_CALLS.load(Ordering::SeqCst), 1);
        expect_eq!(HOOK_FAULT[2].load(Ordering::SeqCst), $kind as usize);
        expect_eq!(HOOK_FAULT[0].load(Ordering::SeqCst), $addr);
        let recorded = HOOK_FAULT[1].load(Ordering::SeqCst);
        expect!(
            access.contains(&recorded),
            "access {recorded}, expected one of {access:?}"
        );
        expect_eq!(HOOK_SAW[5].load(Ordering::SeqCst), $pc as usize);
        let (x16, x17) = X16_X17_IN;
        expect_eq!(HOOK_SAW[3].load(Ordering::SeqCst), x16 as usize);
        expect_eq!(HOOK_SAW[4].load(Ordering::SeqCst), x17 as usize);
        expect_eq!(ran.after, 1);
        expect_eq!(ran.x9, HOOK_MARKER as u64);
        expect_eq!(ran.x16_x17, X16_X17_IN);
        expect_eq!(ran.q, Q_IN);
        expect_eq!(ran.flags, FLAGS_IN);
        expect_eq!(ran.registers, registers_in());
    }};
}

ktest! {
    /// A hook that moves the program counter past a faulting `ldr` and sets `x9`: the
    /// `asm!` block goes on after the load with `x9` as the hook left it, and every other
    /// register as it was: `x0`-`x7`, `x16`, `x17`, `x20`-`x27`, `q0` and `q31`, the flags.
    /// The hook saw `x16`, `x17` and the PC (the address of the `ldr`).
    fn fault_hook_moves_the_pc() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let base = pages.base;
        expect_eq!(pages.set(0, 1, PageAccess::None), Ok(()));
        let _hook = HookGuard::install(Behaviour::SkipInstruction, Kind::Memory, base, pages.len());
        let ran = run_faulting_code!(base, "2: ldr x9, [x11]");
        expect_skipped!(ran, Kind::Memory, base, [access_code(FaultAccess::Read)], ran.x10);
        expect_eq!(protection().access(base), Some(PageAccess::None));
    }
}

ktest! {
    /// `udf #0` (an undefined instruction, EC 0x00) of a thread with IRQs unmasked is
    /// offered as an illegal instruction at its own address (the PC); the hook moves the PC
    /// past it and the code goes on with every register kept.
    fn fault_hook_skips_an_undefined_instruction() {
        let _hook = HookGuard::install_for_code(Behaviour::SkipInstruction, Kind::IllegalInstruction);
        let ran = run_faulting_code!(0, "2: udf #0");
        expect_skipped!(ran, Kind::IllegalInstruction, ran.x10 as usize, [0], ran.x10);
    }
}

ktest! {
    /// `brk #0x3e8` (GCC's `__builtin_trap`) is offered as a breakpoint at its own address
    /// (the PC); the hook moves the PC past it and the code goes on with every register
    /// kept.
    fn fault_hook_skips_a_breakpoint() {
        let _hook = HookGuard::install_for_code(Behaviour::SkipInstruction, Kind::Breakpoint);
        let ran = run_faulting_code!(0, "2: brk #0x3e8");
        expect_skipped!(ran, Kind::Breakpoint, ran.x10 as usize, [0], ran.x10);
    }
}

ktest! {
    /// Accesses the CPU refuses for their alignment (this board leaves `SCTLR_EL1.A`
    /// clear, so plain loads and stores may be misaligned) are offered as misaligned at
    /// the address accessed, 12 bytes into a 16-byte granule (so the 64-bit access also
    /// crosses the 16-byte boundary within which FEAT_LSE2, which `-cpu max` has, lets an
    /// acquire/release access be misaligned): a load-acquire as a read, a store-release as
    /// a write (which stores nothing), a load-exclusive. The hook moves the PC past each;
    /// every register is kept.
    fn fault_hook_gets_misaligned_accesses() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let address = pages.base + 12;
        let before = (pages.read(8), pages.read(16));
        let hook = HookGuard::install(Behaviour::SkipInstruction, Kind::Misaligned, pages.base, pages.len());
        let (read, write) = (access_code(FaultAccess::Read), access_code(FaultAccess::Write));
        let ran = run_faulting_code!(address, "2: ldar x9, [x11]");
        expect_skipped!(ran, Kind::Misaligned, address, [read], ran.x10);
        hook.reset();
        let ran = run_faulting_code!(address, "2: stlr x9, [x11]");
        expect_skipped!(ran, Kind::Misaligned, address, [write], ran.x10);
        hook.reset();
        // The access is what ESR_EL1.WnR says; QEMU with FEAT_LSE2 checks a load-exclusive's
        // alignment as an atomic access's and sets WnR.
        let ran = run_faulting_code!(address, "2: ldxr x9, [x11]");
        expect_skipped!(ran, Kind::Misaligned, address, [read, write], ran.x10);
        expect_eq!((pages.read(8), pages.read(16)), before);
    }
}

ktest! {
    /// A branch to an address that is not a multiple of 4 takes a PC alignment fault (EC
    /// 0x22), offered as a misaligned instruction fetch at the branch target (also the PC);
    /// the hook moves the PC to the word after the one the target lies in, and the code
    /// goes on with every register kept.
    fn fault_hook_gets_a_misaligned_branch_target() {
        let _hook = HookGuard::install_for_code(Behaviour::SkipInstruction, Kind::Misaligned);
        // The `udf` at the label is never run: the hook resumes after it.
        let ran = run_faulting_code!(0, "add x9, x10, #2", "br x9", "2: udf #0");
        let target = ran.x10 + 2;
        expect_skipped!(ran, Kind::Misaligned, target as usize, [access_code(FaultAccess::Execute)], target);
    }
}

ktest! {
    /// A hook that answers `Unhandled` (here for an instruction fetch from a heap page,
    /// never executable, offered as an execute access): the fault is reported as without
    /// a hook, and fails the case.
    #[should_fail(cpu_exception = "CPU exception: instruction abort (same EL) (EC 0x21), synchronous from current EL, SP_EL0")]
    fn fault_hook_declines() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let base = pages.base;
        HookGuard::install(Behaviour::Decline, Kind::Memory, base, pages.len()).leave_behind();
        pages.leave_behind();
        // SAFETY: deliberately calls into a heap page, which is never executable: the
        // instruction abort ends the case (the hook declines it).
        let code = unsafe { core::mem::transmute::<usize, extern "C" fn()>(base) };
        with_irqs_unmasked(|| code());
        expect!(false, "the call returned: the hook's Unhandled resumed the fault");
    }
}

ktest! {
    /// A fault taken with IRQs masked is not offered: the hook (which would make the page
    /// readable and resume) is not called, and the fault is reported.
    #[should_fail(cpu_exception = "translation fault at level 3, on a read")]
    fn fault_with_irqs_masked_is_not_offered() {
        let pages = TestPages::new(PROTECTION_PAGE);
        let base = pages.base;
        expect_eq!(pages.set(0, 1, PageAccess::None), Ok(()));
        HookGuard::install(Behaviour::Repair, Kind::Memory, base, pages.len()).leave_behind();
        pages.leave_behind();
        let daif = super::irq::irq_save();
        // SAFETY: deliberately reads the inaccessible page with IRQs masked: the data abort
        // ends the case.
        let value = unsafe { (base as *const u64).read_volatile() };
        super::irq::irq_restore(daif);
        expect!(false, "read {value:#x}: the hook ran for a fault with IRQs masked");
    }
}

ktest! {
    /// A hook that answers `Unhandled` for an undefined instruction: the exception is
    /// reported as without a hook, and fails the case.
    #[should_fail(cpu_exception = "CPU exception: unknown reason (undefined instruction) (EC 0x00), synchronous from current EL, SP_EL0")]
    fn fault_hook_declines_an_undefined_instruction() {
        HookGuard::install_for_code(Behaviour::Decline, Kind::IllegalInstruction).leave_behind();
        with_irqs_unmasked(|| {
            // SAFETY: deliberately executes `udf #0`: the hook declines, the report ends
            // the case. Were `Unhandled` resumed, the hook's second call goes on at label
            // 2 (in `x30`).
            unsafe { core::arch::asm!("adr x30, 2f", "udf #0", "2:", out("x30") _, options(nostack)) }
        });
        expect!(false, "the udf returned: the hook's Unhandled resumed the exception");
    }
}

ktest! {
    /// A `brk` with one of the fault trampoline's own immediates, outside the trampoline,
    /// is neither taken for the trampoline's return nor offered as a breakpoint (the hook
    /// would move the PC past it): it is reported.
    #[should_fail(cpu_exception = "(EC 0x3c), synchronous from current EL, SP_EL0\n  ESR_EL1  0x00000000f200fa01\n")]
    fn trampoline_breakpoint_elsewhere_is_reported() {
        HookGuard::install_for_code(Behaviour::SkipInstruction, Kind::Breakpoint).leave_behind();
        with_irqs_unmasked(|| {
            // SAFETY: deliberately executes the trampoline's `brk` elsewhere: the report
            // ends the case.
            unsafe { core::arch::asm!("brk #0xfa01", options(nomem, nostack)) }
        });
        expect!(false, "brk #0xfa01 was offered or resumed");
    }
}
