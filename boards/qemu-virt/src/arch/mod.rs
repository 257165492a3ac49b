//! The bare-metal half of the board: boot, the [`Platform`] implementation, the exception
//! handler. Compiled only for `aarch64-unknown-none`.

mod asm;
mod fault;
pub mod irq;
#[cfg(feature = "ktest")]
mod ktest;
#[cfg(feature = "ktest")]
mod ktest_svc;
mod mmu;
mod protect;
mod uart;

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, MIDR_EL1, Readable};
use uk_hal::{Clock, Console, ConsoleWriter, MemoryRegion, Platform};

use crate::cpu::{self, MACHINE_LEN, MachineFacts};
use crate::devtree::{self, BootInfo, Conduit};
use crate::exception::{self, Report, SavedState};
use crate::fixed_str::FixedStr;
use crate::memmap::Range;
use crate::pagetable::L1_BLOCK;
use crate::{BOARD_NAME, RAM_BASE, clock};
use asm::Psci;

/// PSCI `SYSTEM_OFF` (SMC32 function ID).
const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;

/// The board: QEMU `virt` as found at boot.
///
/// There is one, [`PLATFORM`]; the boot code fills it in and hands it to `uk_rt::start`.
/// Everything in it starts as zero, so it lives in `.bss` and costs the image file nothing.
pub struct QemuVirt {
    console: uart::Pl011,
    time_zero: AtomicU64,
    frequency: AtomicU64,
    psci: AtomicU8,
    exiting: AtomicBool,
    entry_el: AtomicU8,
    /// Set once `found` is written (release), read before it (acquire).
    booted: AtomicBool,
    found: UnsafeCell<MaybeUninit<BootInfo>>,
    machine: spin::Once<FixedStr<MACHINE_LEN>>,
}

// SAFETY: `found` is written once, by the boot code on the only CPU, before `booted` is set
// with release ordering; it is read only after `booted` is seen set with acquire ordering,
// and never written again. Every other field is atomic or `spin::Once`.
unsafe impl Sync for QemuVirt {}

/// The board instance the boot code hands to the runtime.
pub static PLATFORM: QemuVirt = QemuVirt {
    // SAFETY: base 0 selects `virt`'s UART0 (a PL011 in the low GiB above the flash window,
    // which is Device memory with the MMU off and in the identity map) until boot reads the
    // device tree.
    console: unsafe { uart::Pl011::new(0) },
    time_zero: AtomicU64::new(0),
    frequency: AtomicU64::new(0),
    psci: AtomicU8::new(0),
    exiting: AtomicBool::new(false),
    entry_el: AtomicU8::new(0),
    booted: AtomicBool::new(false),
    found: UnsafeCell::new(MaybeUninit::uninit()),
    machine: spin::Once::new(),
};

impl QemuVirt {
    fn psci(&self) -> Option<Psci> {
        match self.psci.load(Ordering::Relaxed) {
            1 => Some(Psci::Hvc),
            2 => Some(Psci::Smc),
            _ => None,
        }
    }

    fn frequency(&self) -> u32 {
        self.frequency.load(Ordering::Relaxed) as u32
    }

    /// The exception level the image was entered at (1 or 2), once booted.
    pub fn entry_el(&self) -> Option<u8> {
        self.boot_info()
            .map(|_| self.entry_el.load(Ordering::Relaxed))
    }

    /// What the device tree said (RAM, the blob's place, ...), once booted.
    pub fn boot_info(&self) -> Option<&BootInfo> {
        if !self.booted.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: `booted` is set only after `found` was written, and `found` never changes
        // again (see the `Sync` impl).
        Some(unsafe { (*self.found.get()).assume_init_ref() })
    }

    /// Keeps what boot found; once.
    fn set_boot_info(&self, info: BootInfo, entry_el: u8) {
        if self.booted.load(Ordering::Acquire) {
            return;
        }
        self.entry_el.store(entry_el, Ordering::Relaxed);
        // SAFETY: boot code on the only CPU, before `booted` is set: nobody reads `found` yet.
        unsafe { (*self.found.get()).write(info) };
        self.booted.store(true, Ordering::Release);
    }

    fn print(&self, args: fmt::Arguments<'_>) {
        let _ = ConsoleWriter(self).write_fmt(args);
    }

    /// Reports a failure before the runtime took over, and ends the run.
    fn boot_failed(&self, args: fmt::Arguments<'_>) -> ! {
        self.print(format_args!("qemu-virt: boot failed: {args}\n"));
        self.exit(uk_rt::FATAL_EXIT_CODE)
    }

    fn power_off_or_park(&self) -> ! {
        self.console.flush();
        if let Some(psci) = self.psci() {
            psci.call(PSCI_SYSTEM_OFF);
        }
        loop {
            aarch64_cpu::asm::wfe();
        }
    }
}

impl Console for QemuVirt {
    fn write_bytes(&self, bytes: &[u8]) {
        self.console.write_bytes(bytes);
    }
}

impl Clock for QemuVirt {
    fn monotonic_ns(&self) -> u64 {
        let ticks = self.cycles() - self.time_zero.load(Ordering::Relaxed);
        clock::ticks_to_ns(ticks, self.frequency())
    }

    fn cycles(&self) -> u64 {
        // The isb keeps the counter read from being taken early, out of program order.
        barrier::isb(barrier::SY);
        CNTVCT_EL0.get()
    }

    fn cycles_per_second(&self) -> u64 {
        self.frequency.load(Ordering::Relaxed)
    }
}

impl Platform for QemuVirt {
    fn board_name(&self) -> &'static str {
        BOARD_NAME
    }

    /// Formatted on first use (not at boot, where every instruction costs boot time).
    fn machine(&self) -> &str {
        let Some(info) = self.boot_info() else {
            return "QEMU virt (booting)";
        };
        self.machine
            .call_once(|| {
                let entry_el = self.entry_el.load(Ordering::Relaxed);
                cpu::describe(MachineFacts {
                    board: info.board.as_str(),
                    midr: MIDR_EL1.get(),
                    entry_el,
                })
            })
            .as_str()
    }

    fn memory_regions(&self) -> &[MemoryRegion] {
        self.boot_info().map_or(&[], |info| info.memory.as_slice())
    }

    fn initrd(&self) -> Option<&'static [u8]> {
        let range = self.boot_info()?.initrd?;
        let len = usize::try_from(range.end - range.start).ok()?;
        // SAFETY: the device tree reader kept the initrd only inside RAM, which boot mapped
        // whole, and held it out of the usable memory, so nothing else writes it.
        Some(unsafe { core::slice::from_raw_parts(range.start as *const u8, len) })
    }

    fn command_line(&self) -> &str {
        self.boot_info()
            .map_or("", |info| info.command_line.as_str())
    }

    fn exit(&self, code: u8) -> ! {
        self.console.flush();
        self.exiting.store(true, Ordering::SeqCst);
        asm::semihosting_exit(code);
        // The host ignored the request.
        self.power_off_or_park()
    }

    fn power_off(&self) -> ! {
        self.console.flush();
        if let Some(psci) = self.psci() {
            psci.call(PSCI_SYSTEM_OFF);
        }
        // No PSCI (or it returned): a semihosting exit with status 0 is the next best thing.
        if !self.exiting.swap(true, Ordering::SeqCst) {
            asm::semihosting_exit(0);
        }
        self.power_off_or_park()
    }

    fn interrupts(&self) -> Option<&dyn uk_hal::irq::Interrupts> {
        irq::ready().then_some(&irq::INTERRUPTS as &dyn uk_hal::irq::Interrupts)
    }

    /// The device tree's `virtio,mmio` nodes (32 on `virt`, most of them empty).
    fn virtio_mmio_slots(&self) -> &[uk_hal::VirtioMmioSlot] {
        self.boot_info().map_or(&[], |info| info.virtio_mmio())
    }

    /// The low GiB above the flash window (`0x0800_0000..0x4000_0000`), Device-nGnRE blocks
    /// of the identity map; the flash window (NULL included) is unmapped.
    fn mmio_is_mapped(&self, base: u64, size: u64) -> bool {
        crate::pagetable::is_device_mapped(base, size)
    }

    /// Once booted: page-granular rights for the usable memory, blocks split into tables
    /// from the heap on demand (see the crate documentation, *Page protection*).
    fn page_protection(&self) -> Option<&dyn uk_hal::PageProtection> {
        self.boot_info()
            .map(|_| &protect::PROTECTION as &dyn uk_hal::PageProtection)
    }
}

/// The Rust entry, called by `_start` on the boot stack at EL1 with the MMU off.
extern "C" fn boot(loader_x0: u64, time_zero: u64, entry_el: u64) -> ! {
    let board = &PLATFORM;
    let layout = mmu::image_layout();
    // SAFETY: this is the boot path, run once with the MMU off; the layout comes from the
    // linker script of this very image.
    if let Err(e) = unsafe { mmu::enable(&layout) } {
        board.boot_failed(format_args!("cannot build the identity map: {e:?}"));
    }
    board.time_zero.store(time_zero, Ordering::Relaxed);
    // CNTFRQ_EL0 holds the frequency in its low 32 bits; zero would make the clock useless.
    board
        .frequency
        .store(CNTFRQ_EL0.get() & 0xffff_ffff, Ordering::Relaxed);

    let Some((blob, size)) = find_device_tree(loader_x0) else {
        board.boot_failed(format_args!(
            "no device tree (x0 = {loader_x0:#x}, none at {RAM_BASE:#x})"
        ))
    };
    // SAFETY: `find_device_tree` mapped all of the blob; nothing writes it, and the memory
    // map hands it to nobody.
    let bytes = unsafe { core::slice::from_raw_parts(blob as *const u8, size) };
    let image = Range {
        start: layout.start,
        end: layout.end,
    };
    let tree = match devtree::parse(bytes, blob, &[image]) {
        Ok(tree) => tree,
        Err(e) => board.boot_failed(format_args!("device tree at {blob:#x}: {e}")),
    };
    for &ram in tree.ram() {
        // SAFETY: boot code; the range is RAM according to the device tree.
        if let Err(e) = unsafe { mmu::map_ram(ram) } {
            board.boot_failed(format_args!(
                "cannot map RAM {:#x}..{:#x}: {e:?}",
                ram.start, ram.end
            ));
        }
    }
    match tree.console {
        // Only the low GiB above the flash window is mapped as Device memory.
        // SAFETY: the device tree says a PL011 (4 KiB of registers) is there, and the identity
        // map covers it.
        Some(base) if crate::pagetable::is_device_mapped(base, 0x1000) => unsafe {
            board.console.set_base(base)
        },
        _ => {}
    }
    let psci = match tree.psci {
        Some(Conduit::Hvc) => 1,
        Some(Conduit::Smc) => 2,
        None => 0,
    };
    board.psci.store(psci, Ordering::Relaxed);
    let (gic, timer) = (tree.gic, tree.virtual_timer);
    board.set_boot_info(tree, entry_el as u8);
    if let (Some(layout), Some(info)) = (gic, board.boot_info()) {
        if let Err(e) = irq::init(
            layout,
            timer,
            info.cpus(),
            board.psci(),
            time_zero,
            board.frequency(),
        ) {
            board.print(format_args!(
                "qemu-virt: interrupt controller unusable ({e}); running without interrupts\n"
            ));
        }
    }
    uk_rt::start(board)
}

/// Finds the device tree: where a Linux-style loader's `x0` points, else at the start of RAM,
/// where QEMU writes it for an ELF image (it passes no argument). Maps the blob's GiBs.
fn find_device_tree(loader_x0: u64) -> Option<(u64, usize)> {
    [loader_x0, RAM_BASE]
        .into_iter()
        .filter(|&address| address >= L1_BLOCK)
        .find_map(|address| {
            // SAFETY: boot code; a tree is only ever in RAM, and RAM GiBs are Normal memory.
            unsafe { mmu::map_ram(Range::from_base_size(address, 8)) }.ok()?;
            // SAFETY: the eight bytes at `address` were just mapped.
            let header = unsafe { (address as *const [u8; 8]).read_unaligned() };
            let size = devtree::blob_size(header)?;
            // SAFETY: as above, for the whole blob.
            unsafe { mmu::map_ram(Range::from_base_size(address, size as u64)) }.ok()?;
            Some((address, size))
        })
}

/// Bytes of an exception report handed to the runtime: its lines up to the registers.
const REPORT_SUMMARY: usize = 640;

/// Nesting depth of [`exception()`]: a fault while reporting a fault skips the report.
static HANDLING: AtomicU8 = AtomicU8::new(0);

/// The exception handler, called by the vectors on the exception stack with the saved
/// registers; reports and hands over to the runtime.
///
/// It returns (and the vectors restore every register from `state` and `eret`) only
///
/// - for a translation fault at the current exception level that another CPU caused by
///   splitting a block for page protection at that moment ([`protect::is_transient_fault`]):
///   the access succeeds once the block's table is in;
/// - for a fault it offers to `uk_hal::fault` ([`fault::divert`]; memory and alignment
///   faults, undefined instructions, `brk`): `state` then enters the fault trampoline,
///   which runs the hook on the faulting thread's stack;
/// - for the trampoline's `brk` after the hook answered `Resume` ([`fault::returned_from_hook`]):
///   `state` then holds the copy the hook may have changed. After `Unhandled`, the original
///   fault, loaded from the copy, is reported as any other.
extern "C" fn exception(state: &mut SavedState, vector: u64) {
    let offered = vector == 0
        && match fault::returned_from_hook(state) {
            Some(fault::FromHook::Resume) => return,
            Some(fault::FromHook::Report) => true,
            None => false,
        };
    let frame = &state.frame;
    if !offered && matches!(vector, 0 | 4) && protect::is_transient_fault(frame.esr, frame.far) {
        return;
    }
    let board = &PLATFORM;
    if board.exiting.load(Ordering::SeqCst) {
        // The semihosting exit itself trapped: semihosting is off in QEMU.
        board.print(format_args!(
            "qemu-virt: no semihosting (QEMU needs -semihosting-config enable=on,target=native); \
             exit status lost, powering off\n"
        ));
        board.power_off_or_park();
    }
    // A thread's fault that its own code may recover from goes to the hook first (once),
    // unless a report is under way (on any CPU).
    if !offered && vector == 0 && HANDLING.load(Ordering::SeqCst) == 0 && fault::divert(state) {
        return;
    }
    let frame = &state.frame;
    if HANDLING.fetch_add(1, Ordering::SeqCst) > 0 {
        // Reporting faulted (the console itself?): end without another report.
        board.exit(uk_rt::FATAL_EXIT_CODE);
    }
    let guards = mmu::guard_pages();
    // A tag check fault only happens with FEAT_MTE2 and tag access on, so `ldg` may read
    // the allocation tag of the granule the access touched.
    let memory_tag = exception::is_tag_check_fault(frame.esr).then(|| asm::load_tag(frame.far));
    let page_access =
        exception::fault_status(frame.esr).and_then(|_| protect::reported_access(frame.far));
    let report = Report {
        frame,
        vector,
        guards: &guards,
        memory_tag,
        page_access,
    };
    board.print(format_args!("{report}"));
    // Its first lines (what happened, the fault, the addresses) again, for a test case that
    // must fail with a given exception (`#[should_fail(cpu_exception = "...")]`).
    let mut summary = FixedStr::<REPORT_SUMMARY>::new();
    let _ = write!(summary, "{report}");
    HANDLING.store(0, Ordering::SeqCst);
    if uk_rt::try_platform().is_some() {
        uk_rt::fatal_exception(summary.as_str())
    }
    board.exit(uk_rt::FATAL_EXIT_CODE)
}
