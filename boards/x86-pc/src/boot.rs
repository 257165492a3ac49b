//! The boot sequence in Rust, from the entry trampoline to [`uk_rt::start`], and the CPU
//! exception handler.

#[cfg(feature = "ktest")]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::{AtomicBool, Ordering};

use uk_hal::Console;

use crate::bootinfo::{self, StartInfo};
use crate::clock::{self, Scale};
use crate::machine::{self, MachineKind};
use crate::memmap::{self, Range};
use crate::report::{self, ExceptionFrame};
use crate::tables;
use crate::{BootData, CMDLINE_MAX, PLATFORM, arch, irqhw};

/// Memory map entries read from the start info (QEMU passes a handful).
const MAX_MEMMAP_ENTRIES: usize = 128;
/// Boot modules whose memory is kept out of the usable regions.
const MAX_MODULES: usize = 16;
/// Length of the TSC calibration against the PIT. Boot work runs inside this window, so it
/// adds less than this to the boot time. 600 PIT ticks at 1.193182 MHz are 503 us.
const CALIBRATION_PIT_TICKS: u16 = 600;
/// Worst-case error of the calibration from the TSC brackets of its two PIT edges (see
/// [`clock::close_window`]). Typical brackets under TCG (0.6 us each) give 1 100 ppm over
/// 600 ticks, so this does not extend the window in the common case.
const CALIBRATION_MAX_ERROR_PPM: u64 = 2_000;
/// Longest the calibration window grows (10 ms) while stalls of the CPU keep widening the
/// brackets of its end edges.
const CALIBRATION_MAX_PIT_TICKS: u16 = 12_000;
/// Calibrations on their own after the overlapped one failed.
const RECALIBRATIONS: u32 = 3;
/// Frequencies outside this range are a broken measurement.
const PLAUSIBLE_HZ: core::ops::RangeInclusive<u64> = 10_000_000..=100_000_000_000;

fn say(line: &[u8]) {
    PLATFORM.write_bytes(line);
}

/// Ends a boot that cannot continue: message, then isa-debug-exit with status 101.
fn boot_failed(message: &str) -> ! {
    say(b"x86-pc: boot failed: ");
    say(message.as_bytes());
    say(b"\r\n");
    arch::debug_exit(uk_rt::FATAL_EXIT_CODE);
    arch::halt_forever()
}

/// Entered from the trampoline in 64-bit mode on the boot stack, `.bss` zeroed.
pub(crate) extern "C" fn boot_main(start_info_paddr: u64, tsc_at_entry: u64) -> ! {
    crate::TSC_AT_ENTRY.store(tsc_at_entry, Ordering::Relaxed);
    crate::console().init();
    arch::load_exception_tables();
    let kind = MachineKind::from_host_bridge(arch::pci_host_bridge_id());
    if kind.firmware_leaves_line_open() {
        say(b"\r\n");
    }
    // The calibration window runs while the rest of the boot work is done.
    arch::pit_restart();
    let opened = clock::open_window(&mut arch::pit_read);

    if !(1..(4 << 30) - bootinfo::START_INFO_V1_SIZE as u64).contains(&start_info_paddr) {
        boot_failed(bootinfo::BootInfoError::BadMagic(0).message());
    }
    // SAFETY: the start info lies below 4 GiB (checked) in identity-mapped memory the loader
    // filled and nobody writes during boot; 56 bytes may reach past a version-0 structure
    // into other mapped memory, which is only read.
    let raw_info = unsafe { arch::phys_bytes(start_info_paddr, bootinfo::START_INFO_V1_SIZE) };
    let info = bootinfo::parse_start_info(raw_info).unwrap_or_else(|e| {
        if let bootinfo::BootInfoError::BadMagic(found) = e {
            say(b"x86-pc: found ");
            say(&report::hex64(found.into()));
            say(b" at ebx = ");
            say(&report::hex64(start_info_paddr));
            say(b"\r\n");
        }
        boot_failed(e.message())
    });

    // SAFETY: this is the boot sequence, the one writer of the boot data; it runs once and
    // publishes the data at its end, so no shared reference exists while this one lives.
    let data = unsafe { &mut *crate::BOOT.boot_ptr() };
    data.start_info = info;
    // Copy what later memory use could overwrite before anything else.
    copy_cmdline(&info, data);
    find_memory(&info, data);

    // Only now: on `pc` the loader's data (start info, memory map) lies in page 0.
    let missed = arch::unmap_guard_pages();
    if missed > 0 {
        say(b"x86-pc: warning: out of page tables, some stack guard pages stay mapped\r\n");
    }

    let brand_raw = arch::cpu_brand();
    let accel = arch::hypervisor_vendor().and_then(machine::accelerator);
    data.kind = kind;
    data.machine = machine::describe(kind, machine::brand(&brand_raw), accel);

    // A window that wrapped (a very slow boot, or a stall of tens of milliseconds) is
    // measured again, on its own.
    let hz = opened
        .and_then(calibration)
        .or_else(calibration_on_its_own)
        .filter(|hz| PLAUSIBLE_HZ.contains(hz))
        .unwrap_or_else(tsc_frequency_without_pit);
    crate::TSC_HZ.store(hz, Ordering::Relaxed);
    crate::TSC_SCALE.store(Scale::for_frequency(hz).mult, Ordering::Relaxed);

    crate::BOOT.publish();
    arch::syscall_cpu_init();
    uk_rt::start(&PLATFORM)
}

/// Ends the calibration window from `start`: the TSC frequency, `None` if the window wrapped
/// (see [`clock::close_window`]) or the PIT stopped.
fn calibration(start: clock::PitEdge) -> Option<u64> {
    let window = clock::close_window(
        &mut arch::pit_read,
        start,
        CALIBRATION_PIT_TICKS,
        CALIBRATION_MAX_PIT_TICKS,
        CALIBRATION_MAX_ERROR_PPM,
    )?;
    record(&window);
    window.frequency()
}

/// The calibration window boot took: PIT ticks, start and end bracket widths in cycles.
#[cfg(feature = "ktest")]
static CALIBRATION_WINDOW: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// Keeps the calibration window for the in-image test's report.
fn record(window: &clock::PitWindow) {
    #[cfg(feature = "ktest")]
    for (slot, value) in
        CALIBRATION_WINDOW
            .iter()
            .zip([window.ticks(), window.start.width(), window.end.width()])
    {
        slot.store(value, Ordering::Relaxed);
    }
    #[cfg(not(feature = "ktest"))]
    let _ = window;
}

/// The TSC calibration's window as boot took it (for the in-image test's report):
/// (PIT ticks, start bracket cycles, end bracket cycles), zeroes without a PIT.
#[cfg(feature = "ktest")]
pub(crate) fn calibration_window() -> [u64; 3] {
    CALIBRATION_WINDOW
        .each_ref()
        .map(|slot| slot.load(Ordering::Relaxed))
}

/// Calibrates with nothing else running, a few times at most (a window this short wraps
/// only if the CPU stalls for 45 ms inside it). `None` if the PIT does not count.
fn calibration_on_its_own() -> Option<u64> {
    for _ in 0..RECALIBRATIONS {
        arch::pit_restart();
        if let Some(hz) = calibration(clock::open_window(&mut arch::pit_read)?) {
            return Some(hz);
        }
    }
    None
}

fn copy_cmdline(info: &StartInfo, data: &mut BootData) {
    let paddr = info.cmdline_paddr;
    if paddr == 0 {
        return;
    }
    if !(1..4 << 30).contains(&paddr) {
        say(b"x86-pc: warning: command line outside the first 4 GiB ignored\r\n");
        return;
    }
    // One byte more than the buffer tells a cut line from one that fits exactly.
    let len = (CMDLINE_MAX as u64 + 1).min((4 << 30) - paddr) as usize;
    // SAFETY: below 4 GiB, identity-mapped; the loader's copy of the line is only read here.
    let src = unsafe { arch::phys_bytes(paddr, len) };
    let copy = bootinfo::copy_cmdline(src, &mut data.cmdline);
    data.cmdline_len = copy.len;
    if copy.truncated {
        say(b"x86-pc: warning: kernel command line longer than 4096 bytes, cut\r\n");
    }
    if copy.invalid_utf8 {
        say(b"x86-pc: warning: kernel command line is not UTF-8, cut at the first bad byte\r\n");
    }
}

fn find_memory(info: &StartInfo, data: &mut BootData) {
    let count = (info.memmap_entries as usize).min(MAX_MEMMAP_ENTRIES);
    let bytes = count * bootinfo::MEMMAP_ENTRY_SIZE;
    if info.memmap_paddr.saturating_add(bytes as u64) > 4 << 30 {
        boot_failed("PVH memory map outside the first 4 GiB");
    }
    // SAFETY: below 4 GiB (checked), identity-mapped, written by the loader, only read.
    let raw = unsafe { arch::phys_bytes(info.memmap_paddr, bytes) };
    // Parsed in place (twice, by `carve`), not copied: see `BootStore`.
    let entries = raw.chunks_exact(bootinfo::MEMMAP_ENTRY_SIZE).map(|chunk| {
        bootinfo::parse_memmap_entry(
            chunk
                .try_into()
                .unwrap_or(&[0; bootinfo::MEMMAP_ENTRY_SIZE]),
        )
    });

    let (image_start, image_end) = arch::image_range();
    let mut reserved = [Range::new(0, 0); MAX_MODULES + 1];
    reserved[0] = Range::new(image_start, image_end);
    let modules = (info.nr_modules as usize).min(MAX_MODULES);
    let list_bytes = modules * bootinfo::MODULE_ENTRY_SIZE;
    if modules > 0 && info.modlist_paddr.saturating_add(list_bytes as u64) <= 4 << 30 {
        // SAFETY: below 4 GiB (checked), identity-mapped, written by the loader, only read.
        let raw = unsafe { arch::phys_bytes(info.modlist_paddr, list_bytes) };
        for (slot, chunk) in reserved[1..]
            .iter_mut()
            .zip(raw.chunks_exact(bootinfo::MODULE_ENTRY_SIZE))
        {
            *slot = bootinfo::parse_module(
                chunk
                    .try_into()
                    .unwrap_or(&[0; bootinfo::MODULE_ENTRY_SIZE]),
            );
        }
    }

    let ram_end = entries
        .clone()
        .filter(|e| e.kind == memmap::E820_RAM)
        .map(|e| e.addr.saturating_add(e.size))
        .max();
    let mapped_end = tables::mapped_end(ram_end.unwrap_or(0), arch::has_1g_pages());
    if mapped_end > 4 << 30 {
        arch::map_high_memory(mapped_end);
    }

    // The first module is the initrd (QEMU loads `-initrd` as a PVH module).
    if modules > 0 && reserved[1].start < reserved[1].end && reserved[1].end <= mapped_end {
        data.initrd = reserved[1];
    }

    let carved = memmap::carve(entries, &reserved, mapped_end, &mut data.regions);
    data.region_count = carved.count;
    if carved.unmapped_bytes > 0 {
        let mut digits = [0; 20];
        say(b"x86-pc: ");
        say(report::decimal(carved.unmapped_bytes >> 20, &mut digits));
        say(b" MiB of RAM above the identity map left out (no 1 GiB pages, or above 512 GiB)\r\n");
    }
    if carved.overflow > 0 || info.memmap_entries as usize > MAX_MEMMAP_ENTRIES {
        say(b"x86-pc: warning: too many memory regions, the highest are left out\r\n");
    }
    if carved.count == 0 {
        boot_failed("no usable RAM above 1 MiB besides the image");
    }
}

/// The TSC frequency when the PIT cannot be used: CPUID leaf 0x15 (crystal ratio), then
/// leaf 0x16 (base MHz), then a guess of 1 GHz (with a warning).
fn tsc_frequency_without_pit() -> u64 {
    let max_leaf = arch::cpuid(0, 0)[0];
    if max_leaf >= 0x15 {
        let [denominator, numerator, crystal_hz, _] = arch::cpuid(0x15, 0);
        if denominator != 0 && numerator != 0 && crystal_hz != 0 {
            return u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator);
        }
    }
    if max_leaf >= 0x16 {
        let base_mhz = arch::cpuid(0x16, 0)[0] & 0xffff;
        if base_mhz != 0 {
            return u64::from(base_mhz) * 1_000_000;
        }
    }
    say(b"x86-pc: warning: no PIT and no CPUID TSC frequency; assuming 1 GHz\r\n");
    1_000_000_000
}

static IN_HANDLER: AtomicBool = AtomicBool::new(false);

/// Called by the exception stubs with the saved registers; prints the report and hands
/// over to [`uk_rt::fatal_exception`] with its first lines.
pub(crate) extern "C" fn exception_entry(frame: &ExceptionFrame) -> ! {
    report_exception(frame, arch::cr2())
}

/// Called by the stubs of [`report::OFFERED_VECTORS`] (`#DE`, `#BP`, `#UD`, `#GP`, `#PF`)
/// with the saved registers (on the faulting stack, with interrupts masked). Offers the
/// fault ([`report::offered_fault`]) to [`uk_hal::fault::offer`] when
/// [`report::offers_fault`] says so: with interrupts unmasked for the call, as the faulting
/// code had them, and nothing of the board's held across it (the frame is on the faulting
/// thread's stack, `IN_HANDLER` is clear and stays so, no per-CPU state is touched), so the
/// hook may block, switch threads, take interrupts, fault again or never return. Returns
/// when the hook answered [`FaultOutcome::Resume`](uk_hal::fault::FaultOutcome::Resume):
/// the stub then resumes the faulting code with the registers in `frame`, as the hook left
/// them. Otherwise reports the exception as [`exception_entry`] does.
pub(crate) extern "C" fn recoverable_fault_entry(frame: &mut ExceptionFrame) {
    // Before interrupts are unmasked: a fault in an interrupt handler or in the hook
    // changes CR2.
    let cr2 = arch::cr2();
    let offered = report::offers_fault(
        frame.vector,
        frame.rflags,
        IN_HANDLER.load(Ordering::Relaxed),
        uk_hal::fault::hook().is_some(),
    );
    if let Some(fault) = offered
        .then(|| report::offered_fault(frame.vector, frame.error_code, frame.rip, cr2))
        .flatten()
    {
        let words = core::ptr::NonNull::from(&mut *frame).cast::<usize>();
        // SAFETY: `EXCEPTION_FRAME_LAYOUT` names words 0-20 of the 22-word
        // `ExceptionFrame`, which is aligned, readable and writable, and stays on this
        // thread's stack until this function returns (the registers are used only during
        // the `offer` call below). Whatever the hook writes to a `Word` is a register the
        // stub pops (general registers) or `iretq` loads (RIP, RSP).
        let registers = unsafe {
            uk_hal::irq::InterruptedRegisters::new(words, &report::EXCEPTION_FRAME_LAYOUT)
        };
        irqhw::irq_enable();
        let outcome = uk_hal::fault::offer(&fault, &registers);
        irqhw::irq_disable();
        if outcome == uk_hal::fault::FaultOutcome::Resume {
            return;
        }
    }
    report_exception(frame, cr2)
}

/// Prints the report of `frame` (with `cr2`) and hands over to [`uk_rt::fatal_exception`]
/// with its first lines.
fn report_exception(frame: &ExceptionFrame, cr2: u64) -> ! {
    if IN_HANDLER.swap(true, Ordering::Relaxed) {
        say(b"\r\nx86-pc: CPU exception while reporting a CPU exception\r\n");
        arch::debug_exit(uk_rt::FATAL_EXIT_CODE);
        arch::halt_forever();
    }
    say(b"\r\n");
    // The report's first lines are kept for a test case that must fail with a given
    // exception (`#[should_fail(cpu_exception = "...")]`).
    let mut summary = [0u8; REPORT_SUMMARY];
    let mut kept = 0;
    let [a, b, c, d] = arch::landmarks();
    let protected = match frame.vector {
        report::PAGE_FAULT | report::DOUBLE_FAULT => crate::protection::landmark(cr2),
        _ => None,
    };
    let landmarks = [a, b, c, d, protected.unwrap_or(report::Landmark::NONE)];
    report::write_report(frame, cr2, &landmarks, &mut |line| {
        say(line);
        let take = line.len().min(REPORT_SUMMARY - kept);
        summary[kept..kept + take].copy_from_slice(&line[..take]);
        kept += take;
    });
    IN_HANDLER.store(false, Ordering::Relaxed);
    if uk_rt::try_platform().is_none() {
        // Before the runtime started there is no test run to continue and no exit path
        // of its own: leave directly.
        arch::debug_exit(uk_rt::FATAL_EXIT_CODE);
        arch::halt_forever();
    }
    // The report is ASCII; a cut never splits a character, but keep only valid text anyway.
    let summary = &summary[..kept];
    let text = match core::str::from_utf8(summary) {
        Ok(text) => text,
        Err(e) => core::str::from_utf8(&summary[..e.valid_up_to()]).unwrap_or(""),
    };
    uk_rt::fatal_exception(text)
}

/// Bytes of an exception report handed to the runtime: its first lines.
const REPORT_SUMMARY: usize = 512;
