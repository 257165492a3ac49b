//! uk-rs board for the QEMU x86_64 `pc` and `microvm` machines.
//!
//! An image links this crate (through `uk-app`) and boots with
//!
//! ```text
//! qemu-system-x86_64 -machine pc -cpu max -m 64M -nographic -nodefaults -serial stdio \
//!     -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel IMAGE [-append "..."]
//! ```
//!
//! or the same with `-machine microvm`. The board brings the machine from the loader's hands
//! to `uk_rt::start`: long mode, console, clock, memory map, command line, exception
//! reports. Everything else (heap, logger, tests, the application) is the runtime's.
//!
//! # Boot protocol: PVH
//!
//! The image is a plain ELF64 linked at 1 MiB (physical = virtual) with an ELF note
//! `XEN_ELFNOTE_PHYS32_ENTRY` (name `Xen`, type 18, a 64-bit descriptor with the entry
//! address). QEMU's `-kernel` recognises it, loads the segments and enters the image through
//! its PVH firmware (the `pvh.bin` option ROM after SeaBIOS on `pc`, qboot on `microvm`): in
//! 32-bit protected mode, paging off, interrupts off, `ebx` = physical address of
//! `struct hvm_start_info`. The same image boots on both machines, and on any other PVH
//! loader (Firecracker, Cloud Hypervisor, Xen PVH).
//!
//! The first instruction reads the TSC: that is time zero of the [`Clock`]. The trampoline
//! (see `arch`) builds an identity map of the first 4 GiB with 2 MiB pages (RAM and MMIO
//! alike), enters long mode, zeroes `.bss` and calls the Rust boot sequence (`boot`), which
//!
//! 1. initialises the 16550 console on COM1 (0x3F8, 115200 8N1, [`serial`]);
//! 2. loads the TSS (with a 16 KiB double-fault stack on IST 1) and an IDT with all 32 CPU
//!    exception vectors; each prints a report (vector name and number, error code, RIP, CR2
//!    for page and double faults, RSP, RFLAGS, CS, SS and all general registers, [`report`])
//!    and calls `uk_rt::fatal_exception`, which fails the running in-image test or exits with
//!    status 101 (an exception before the runtime started exits with 101 directly); a
//!    thread's page fault, `#DE`, `#BP`, `#UD` or `#GP` may first go to a fault hook (see
//!    [Faults offered to a hook](#faults-offered-to-a-hook));
//! 3. probes the PCI host bridge at 00:00.0 ([`machine`]): i440FX is `pc`, the Q35 MCH is
//!    `q35`, no PCI at all is `microvm` (on `pc`/`q35` a newline first ends SeaBIOS's
//!    "Booting from ROM.." line);
//! 4. starts the PIT calibration window (channel 2, gated through port 0x61) at a PIT edge,
//!    so the rest of the boot work overlaps it;
//! 5. parses the start info ([`bootinfo`]) and copies the command line into a static
//!    4 KiB buffer first, so nothing can overwrite it later;
//! 6. turns the memory map into usable regions ([`memmap`]): type-1 RAM above 1 MiB minus the
//!    image (with its stacks and page tables) and boot modules, page-aligned, sorted and
//!    disjoint. RAM above 4 GiB is mapped with 1 GiB pages when the CPU has them (up to
//!    512 GiB) and otherwise left out with a console line saying how much;
//! 7. unmaps page 0 (null pointers fault) and the guard pages below the stacks, splitting
//!    their 2 MiB page into 4 KiB pages. Only now: on `pc` the loader's memory map lies in
//!    page 0;
//! 8. names the machine: type from step 3, CPUID brand string and hypervisor (`TCG`, `KVM`),
//!    e.g. `QEMU pc, QEMU TCG CPU version 2.5+, TCG`;
//! 9. finishes the calibration: TSC ticks across at least 600 PIT ticks (503 us), from a
//!    tick edge to a tick edge, each edge bracketed by the TSC reads around the latches of
//!    the two PIT reads that saw it ([`clock`]). Under TCG the vCPU thread can be
//!    descheduled between a latch and its TSC read: an edge with a wide bracket is not used
//!    (the next one is, a tick later), and a window whose worst-case error from its
//!    brackets is over 0.2 % grows until it is not (at most 10 ms). A window long enough by
//!    the TSC to have wrapped the 16-bit counter (a very slow boot) is checked against a
//!    short measurement, and if it did wrap, measured again on its own. Without a PIT:
//!    CPUID leaves 0x15/0x16;
//! 10. hands over to `uk_rt::start` with `PLATFORM`.
//!
//! # Boot time under TCG
//!
//! Under QEMU TCG, boot time is dominated by translating code the first time it runs (on
//! the development machine about 8 us per translation block; the same memory-map code runs
//! in 16 us the second time and in 480 us the first), not by what the code computes. The
//! boot path avoids `core::fmt`, the UTF-8 decoder (ASCII fast paths), 128-bit division and
//! multi-KiB copies (the boot data is filled in place), and its work overlaps the
//! calibration window, which therefore adds almost nothing to the boot time.
//!
//! # Interrupts and secondary CPUs
//!
//! [`uk_hal::Platform::interrupts`] returns the board's [`uk_hal::irq::Interrupts`]
//! ([`interrupts::X86Interrupts`]), set up on its first call (so an image that never asks
//! pays nothing at boot): the ACPI MADT ([`acpi`]) names the CPUs' APIC ids and the IOAPICs;
//! the local APIC ([`apic`]) runs in x2APIC mode when CPUID has it and in xAPIC mode
//! otherwise (QEMU 7.2 TCG has no x2APIC); the 8259 PICs are remapped to 0x20-0x2F and
//! masked; every IOAPIC entry ([`ioapic`]) starts masked with GSI `g` on vector `0x30 + g`.
//!
//! | vectors   | use                                                         |
//! |-----------|-------------------------------------------------------------|
//! | 0x00-0x1F | CPU exceptions (reports, `uk_rt::fatal_exception`; a `#PF`  |
//! |           | may go to the fault hook first)                             |
//! | 0x20-0x2F | the masked 8259s (a stray one is logged, never an exception)|
//! | 0x30-0x5F | IOAPIC lines, GSI 0-47 ([`uk_hal::irq::IrqDistributor`])    |
//! | 0xE0-0xEB | free for applications' IPIs (`free_ipi()` is 0xE0); uk-sched |
//! |           | takes 0xE6 for remote wake-ups once its `irq::install` ran  |
//! | 0xEC      | local APIC timer ([`uk_hal::irq::LocalTimer`])              |
//! | 0xED      | TLB shootdown after a page-rights change (`protection`)     |
//! | 0xFE      | local APIC error                                            |
//! | 0xFF      | spurious (no EOI)                                           |
//!
//! Every vector 32-255 enters one assembly stub that saves the caller-saved registers on
//! the interrupted stack and calls the dispatcher: spurious vector counted, no EOI; any
//! other one gets its EOI first (when its in-service bit is set, which a stray 8259
//! interrupt's is not), then its handler from a [`uk_hal::irq::HandlerTable`] runs, so a
//! handler may switch threads (uk-sched's preemption) without blocking its priority class.
//! Level-triggered IOAPIC lines are the exception: ended after their handler (which must
//! not switch threads), since an EOI before it would make the IOAPIC resend the line the
//! device still asserts. A vector without a handler is logged once and counted, never
//! fatal; a level line without one is also masked (it would come back for ever).
//!
//! The timer is the APIC timer in TSC-deadline mode when CPUID has it, otherwise one-shot
//! (divide by 16) with its rate measured against the TSC; a one-shot interrupt that still
//! comes early is re-armed for the rest, so a handler never runs before its deadline. It is
//! one-shot only: no ticks while idle.
//!
//! `start_cpu` brings up a secondary CPU with INIT and start-up IPIs: a 16-bit trampoline
//! copied to the page at 0x8000 (below 1 MiB, never among the usable regions) loads the boot
//! GDT and page tables and jumps straight to long mode; the CPU then gets the boot CPU's
//! CR0/CR4/XCR0, a GDT and TSS of its own (with its own double-fault stack), the shared IDT,
//! its local APIC and timer, a 64 KiB stack from the heap, and runs `entry(cpu)` with
//! interrupts masked. [`interrupts::X86Interrupts::stop_cpu`] puts it back to
//! wait-for-start-up (INIT), and it can be started again on the same stacks.
//!
//! # Page protection
//!
//! [`uk_hal::Platform::page_protection`] returns [`protection::PAGE_PROTECTION`], which
//! gives 4 KiB pages of the usable regions their own rights ([`uk_hal::PageProtection`]):
//! `None` clears the present bit, `ReadOnly` the writable bit (CR0.WP is set, so the
//! kernel's own writes fault too), `ReadWrite` is the boot mapping. The first change in a
//! 2 MiB page splits it into a page table mapping exactly the same addresses with the same
//! flags (a 1 GiB page above 4 GiB first into a page directory of 2 MiB pages), built
//! completely before the directory entry is switched to it and then invalidated; the table
//! stays. Tables come from the heap (`alloc_zeroed`, 4 KiB-aligned), all of them allocated
//! before any entry changes: a call that cannot get them gives back what it got and fails
//! with `OutOfTables`, having changed nothing. Ranges outside the usable regions (the
//! image, its stacks and tables, low memory, MMIO) are `NotRam`, misaligned or empty ones
//! `Unaligned`. Calls are serialised by a spin lock held with interrupts masked; the
//! calling CPU's TLB is invalidated page by page (`invlpg`), or flushed once for ranges
//! over 32 pages. Every other running CPU is asked to flush its TLB (an IPI on vector
//! 0xED, answered by a CR3 reload) and waited for before the call returns, up to 100 ms
//! for a CPU that keeps interrupts masked (*Other CPUs: TLB shootdown* in [`protection`]).
//! The
//! entries to write, the tables a range needs and the descriptor bits are pure functions
//! ([`pageprot`]); a page fault in a protected page is reported with a line naming it
//! (`CR2 is in a page PageProtection made read-only (PageAccess::ReadOnly)`, [`report`]).
//!
//! # Faults offered to a hook
//!
//! The board offers page faults (`#PF`, vector 14), divide errors (`#DE`, 0), breakpoints
//! (`#BP`, 3), invalid opcodes (`#UD`, 6) and general-protection faults (`#GP`, 13;
//! [`report::OFFERED_VECTORS`]) to the hook of [`uk_hal::fault`] (a process layer's
//! signals), on that module's promises, when the faulting code ran with interrupts
//! unmasked (RFLAGS.IF), the exception is not one taken while an exception is being
//! reported, and a hook is installed ([`report::offers_fault`]); every other exception is
//! reported as above: the double fault (on its own stack, no thread's), `#MC`, `#NM`, the
//! x87 and SIMD floating-point `#MF` and `#XM`, `#AC`, `#SS`, `#NP`, `#TS`, `#DB`, `#OF`,
//! `#BR` and the rest. The fault ([`report::offered_fault`]) is, for `#PF`, `CR2` with the
//! access from the error code (bit 4 instruction fetch, else bit 1 write, else read,
//! [`report::fault_access`]); for the others the instruction's address, RIP (RIP - 1 for
//! `int3`, a trap: its RIP is past the instruction). The registers are the exception frame
//! on the faulting thread's stack (no IST for these; only the double fault has its own
//! stack) in Linux `gregs` order ([`report::EXCEPTION_FRAME_LAYOUT`]): the 15 general
//! registers, RSP and RIP writable (`iretq` pops both), RFLAGS reported only. The hook runs
//! on that stack with interrupts unmasked; the board holds no lock and keeps no per-CPU
//! state across the call, so the hook may block, switch threads, fault again or never
//! return. On `Resume` the offered exceptions' own stub path restores every register
//! from the frame, as the hook left it, drops the vector and error code and returns with
//! `iretq` (to the faulting instruction again, unless the hook moved RIP; for `int3` the
//! instruction after it); on `Unhandled` the exception is reported (with the frame as the
//! hook left it). The frame is pushed at the faulting stack pointer, so code of the image
//! must not keep data below it (as for interrupts): Rust for `x86_64-unknown-none` has no
//! red zone, uk-musl compiles C with `-mno-red-zone` and leaves out musl's x86_64
//! assembly that used the red zone (`fenv.s`, `exp2l.s`, `expm1l.s`).
//!
//! # Memory layout
//!
//! ```text
//! 0x0000_0000  page 0: unmapped (null pointer guard)
//! 0x0000_1000  low memory: BIOS data, EBDA, loader data; mapped, never handed out
//! 0x0000_8000  secondary CPUs' real-mode trampoline (written by `start_cpu`)
//! 0x0010_0000  image: .note.Xen, .text (entry first), .rodata, .data, .bss,
//!              .uk_noinit: PML4, PDPT, 4 page directories, 4 page tables for boot's
//!              guard pages (run-time splits take their tables from the heap),
//!              [guard] 16 KiB double-fault stack, [guard] 128 KiB boot stack
//!              (and with `ktest` a guarded 16 KiB test stack)
//! image end    usable RAM (memory_regions) up to the top of RAM
//! 3-4 GiB      MMIO (identity-mapped with the rest of the first 4 GiB)
//! ```
//!
//! # Modules
//!
//! - `arch` (bare metal only): all assembly and hardware access: entry trampoline,
//!   exception stubs, GDT/TSS/IDT, page tables, port I/O, PIT, CPUID, exits.
//! - `boot` (bare metal only): the boot sequence above and the exception handler.
//! - `irqhw` (bare metal only): local APIC and IOAPIC register access, the 8259s, interrupt
//!   masking, the per-CPU GS pointer, the secondary CPUs' trampoline.
//! - [`interrupts`] (bare metal only): the [`uk_hal::irq::Interrupts`] implementation.
//! - [`protection`] (bare metal only): the [`uk_hal::PageProtection`] implementation.
//! - [`bootinfo`], [`memmap`], [`clock`], [`report`], [`tables`], [`pageprot`], [`machine`],
//!   [`serial`], [`acpi`], [`apic`], [`ioapic`]: pure logic with host unit tests
//!   (`cargo test -p uk-board-x86-pc`): memory maps, the MADT parser (also property-tested
//!   on random bytes), ICR encodings, timer arithmetic, IOAPIC entries edited field by
//!   field against a fake register file, page-table splits and rights against fake table
//!   memory (also property-tested against a model of each page's rights).
//!
//! `unsafe` outside `arch` and `irqhw` is limited to `boot` reading the loader's memory
//! (start info, memory map, command line) by physical address and naming the page fault's
//! frame as the fault hook's registers, the write-once cells holding
//! the boot data and the interrupt set-up, one `from_utf8_unchecked` after an ASCII check
//! ([`bootinfo::ascii_str`]), in [`interrupts`]: reading the ACPI tables by physical
//! address, the stacks of secondary CPUs from the heap, and their entry function passed
//! through an atomic, and in [`protection`]: page tables from the heap and access to the
//! live tables (`arch::LiveTables`).
//!
//! # Devices
//!
//! [`uk_hal::Platform::pci_config_access`] is configuration mechanism #1 (ports
//! 0xCF8/0xCFC) on `pc` and `q35`, where SeaBIOS has assigned the BARs before the PVH
//! entry, and `None` on `microvm`, which has no PCI bus; there
//! [`uk_hal::Platform::virtio_mmio_slots`] lists the machine's fixed virtio-mmio windows
//! from 0xfeb00000 ([`machine::virtio_mmio_slots`]), which drivers probe.
//! [`uk_hal::Platform::mmio_is_mapped`] is true for device registers in the first 4 GiB
//! ([`machine::is_device_mapped`]); a 64-bit BAR placed above 4 GiB is not mapped, and
//! drivers report it instead of touching it.
//!
//! # Ending the run
//!
//! [`Platform::exit`] writes the code to isa-debug-exit (port 0xf4); QEMU exits with
//! `code << 1 | 1`, of which the host sees the low 8 bits: a code of 128 or more arrives
//! as `code - 128`, so such a code is first printed (`x86-pc: exit status 134 ...`).
//! Without the device, code 0 falls back to power-off and other codes halt after a
//! console line. [`Platform::power_off`] makes QEMU exit with status 0: on `pc` and
//! `q35` through the ACPI PM1a control register at 0x604 (SLP_EN, SLP_TYP 0, as SeaBIOS
//! sets up the PM block), on `microvm` through the ACPI generic event device's sleep control
//! register at MMIO 0xfea0_0200 (SLP_EN, SLP_TYP 5). If neither stops the machine (e.g.
//! `microvm,acpi=off`), it falls back to isa-debug-exit with code 0 (QEMU status 1), then
//! halts.
//!
//! # Console driver
//!
//! [`serial`] is a small driver of its own rather than the `uart_16550` crate: it is
//! lock-free behind `&self` (usable from exception handlers and after a test case was
//! abandoned mid-write), loads 16 bytes into the FIFO per status check (each port access is
//! an exit to QEMU's device model under TCG), leaves UART interrupts off and has no
//! dependencies; see the module docs.
//!
//! # Features
//!
//! - `ktest`: registers the board's in-image test cases (with `uk_test::ktest!`): clock
//!   monotonicity, TSC frequency against the median of three 15 ms PIT measurements
//!   (< 1 %; each with bracketed edges, so a stall of the vCPU thread does not fail it),
//!   memory map sanity,
//!   command line against the boot information, machine name, and `#[should_fail]` cases
//!   that raise real CPU exceptions (`ud2`, a read of the unmapped 0x100_0000_0000, a null
//!   read, a stack overflow into a guard page reported through the double fault) to prove
//!   exceptions become failures and the run goes on. Interrupts: an IPI to self arrives
//!   with its vector; a vector without a handler is logged and ended (a handled vector of
//!   the same class still comes after it); the timer wakes a halted CPU at its deadline and
//!   never before; the PIT's IRQ 0 arrives through the IOAPIC when enabled and not when
//!   masked, and as a level line exactly once per assertion (and, unhandled, is masked
//!   after one); with `-smp 2`, CPU 1 starts, answers IPIs, is stopped and started again.
//!   Page protection on heap pages: a page set to `None` faults on a read and one set to
//!   `ReadOnly` on a write (`#[should_fail]`, each naming the page in its report; the
//!   faulting case's block stays allocated, so the page is never handed out again), rights
//!   round-trip with `access` reporting each, bad ranges get their error and change
//!   nothing, a range across a 2 MiB boundary works, and with the heap's byte limit one
//!   table short a call fails with `OutOfTables`, gives every table back and changes no
//!   page. Fault hooks: a hook that gives a page without access (or a read-only page) its
//!   rights back resumes the faulting read (write), offered with its address, access and
//!   registers; one that moves RIP past a faulting load (and sets RAX) resumes after it;
//!   a `div` by zero, a `ud2`, a load through the non-canonical 0x8000_0000_0000_0000 and
//!   an `int3` are offered as `DivideError`, `IllegalInstruction`, `GeneralProtection`
//!   and `Breakpoint` at the instruction (RIP past the `int3`), and a hook that moves RIP
//!   past the instruction resumes after it with R8, CF and ZF as they were; a hook that
//!   declines leaves the usual report for each of the five kinds (`#[should_fail]`,
//!   showing the register the hook marked with the kind it saw); a fault with interrupts
//!   masked is never offered (`#[should_fail]`: the hook would have recovered it).
//!
//! # Host builds
//!
//! All machine code is behind `cfg(all(target_arch = "x86_64", target_os = "none"))`; on
//! the host the crate builds its pure modules, which is what the unit tests exercise.
//!
//! [`Clock`]: uk_hal::Clock
//! [`Platform::exit`]: uk_hal::Platform::exit
//! [`Platform::power_off`]: uk_hal::Platform::power_off
#![no_std]

pub mod acpi;
pub mod apic;
pub mod bootinfo;
pub mod clock;
pub mod ioapic;
pub mod machine;
pub mod memmap;
pub mod pageprot;
pub mod report;
pub mod serial;
pub mod tables;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod arch;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod boot;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod interrupts;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod irqhw;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod protection;

/// The page secondary CPUs start in (for the in-image test that checks it is never handed
/// out).
#[cfg(all(target_arch = "x86_64", target_os = "none", feature = "ktest"))]
fn irqhw_trampoline_page() -> u64 {
    irqhw::TRAMPOLINE_PAGE
}
#[cfg(all(target_arch = "x86_64", target_os = "none", feature = "ktest"))]
mod ktests;

/// Most usable memory regions reported.
pub const MAX_REGIONS: usize = 32;
/// Size of the static command line buffer; longer lines are cut (with a console warning).
pub const CMDLINE_MAX: usize = 4096;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use platform::{PLATFORM, X86Pc};

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
use platform::{BOOT, BootData, TSC_AT_ENTRY, TSC_HZ, TSC_SCALE, console};

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod platform {
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use uk_hal::{Clock, Console, MemoryRegion, Platform};

    use crate::arch;
    use crate::bootinfo::StartInfo;
    use crate::clock::Scale;
    use crate::machine::{FixedStr, MachineKind};
    use crate::serial::{COM1, Uart16550};
    use crate::{CMDLINE_MAX, MAX_REGIONS};

    /// TSC read by the first instruction of the image.
    pub(crate) static TSC_AT_ENTRY: AtomicU64 = AtomicU64::new(0);
    /// Calibrated TSC frequency in Hz.
    pub(crate) static TSC_HZ: AtomicU64 = AtomicU64::new(1_000_000_000);
    /// [`Scale::mult`] for [`TSC_HZ`].
    pub(crate) static TSC_SCALE: AtomicU64 = AtomicU64::new(1 << Scale::SHIFT);

    /// What boot found out, kept for the life of the image.
    pub(crate) struct BootData {
        pub(crate) regions: [MemoryRegion; MAX_REGIONS],
        pub(crate) region_count: usize,
        pub(crate) cmdline: [u8; CMDLINE_MAX],
        pub(crate) cmdline_len: usize,
        pub(crate) machine: FixedStr<128>,
        pub(crate) kind: MachineKind,
        pub(crate) start_info: StartInfo,
        /// The first boot module (QEMU `-initrd`), kept out of `regions`; empty if none.
        pub(crate) initrd: crate::memmap::Range,
    }

    impl BootData {
        pub(crate) const fn new() -> Self {
            BootData {
                regions: [MemoryRegion { base: 0, size: 0 }; MAX_REGIONS],
                region_count: 0,
                cmdline: [0; CMDLINE_MAX],
                cmdline_len: 0,
                machine: FixedStr::new(),
                kind: MachineKind::OtherPc,
                initrd: crate::memmap::Range::new(0, 0),
                start_info: StartInfo {
                    version: 0,
                    flags: 0,
                    nr_modules: 0,
                    modlist_paddr: 0,
                    cmdline_paddr: 0,
                    rsdp_paddr: 0,
                    memmap_paddr: 0,
                    memmap_entries: 0,
                },
            }
        }
    }

    /// [`BootData`], filled in place by boot (no multi-KiB copies: under TCG every `rep movs`
    /// iteration costs), then published read-only.
    pub(crate) struct BootStore {
        data: UnsafeCell<BootData>,
        ready: AtomicBool,
    }

    // SAFETY: `data` is written only through `boot_ptr`, by the boot code on the one CPU
    // before `publish`; shared references exist only after `publish` (see `get`).
    unsafe impl Sync for BootStore {}

    impl BootStore {
        /// The data to fill in place.
        ///
        /// The boot sequence may write through the pointer, once, before
        /// [`BootStore::publish`]; nothing else may.
        pub(crate) fn boot_ptr(&self) -> *mut BootData {
            self.data.get()
        }

        /// Makes the data readable; the boot sequence no longer writes it.
        pub(crate) fn publish(&self) {
            self.ready.store(true, Ordering::Release);
        }

        /// The published data, `None` while boot is still filling it.
        pub(crate) fn get(&self) -> Option<&BootData> {
            // SAFETY: after `publish` (observed by the Acquire load) nothing writes `data`.
            self.ready
                .load(Ordering::Acquire)
                .then(|| unsafe { &*self.data.get() })
        }
    }

    pub(crate) static BOOT: BootStore = BootStore {
        data: UnsafeCell::new(BootData::new()),
        ready: AtomicBool::new(false),
    };

    /// COM1. A handle is two words; every caller makes its own (the driver is lock-free).
    pub(crate) const fn console() -> Uart16550<arch::Pio> {
        Uart16550::new(arch::Pio, COM1)
    }

    /// The board: QEMU x86_64 `pc` or `microvm`, as found at boot.
    pub struct X86Pc {
        _private: (),
    }

    /// The one instance, handed to `uk_rt::start` at the end of boot.
    pub static PLATFORM: X86Pc = X86Pc { _private: () };

    impl X86Pc {
        /// The machine type found at boot (before boot finishes: [`MachineKind::OtherPc`]).
        pub fn machine_kind(&self) -> MachineKind {
            BOOT.get().map_or(MachineKind::OtherPc, |b| b.kind)
        }

        /// The PVH start info as the loader passed it.
        pub fn start_info(&self) -> Option<StartInfo> {
            BOOT.get().map(|b| b.start_info)
        }

        /// The clock reading ([`Clock::monotonic_ns`]) at TSC value `tsc`.
        pub fn ns_at(&self, tsc: u64) -> u64 {
            let ticks = tsc.saturating_sub(TSC_AT_ENTRY.load(Ordering::Relaxed));
            Scale {
                mult: TSC_SCALE.load(Ordering::Relaxed),
            }
            .ticks_to_ns(ticks)
        }

        /// The TSC at the image's first instruction (time zero).
        pub fn tsc_at_entry(&self) -> u64 {
            TSC_AT_ENTRY.load(Ordering::Relaxed)
        }
    }

    impl Console for X86Pc {
        fn write_bytes(&self, bytes: &[u8]) {
            console().write(bytes);
        }
    }

    impl Clock for X86Pc {
        fn monotonic_ns(&self) -> u64 {
            self.ns_at(arch::rdtsc())
        }

        fn cycles(&self) -> u64 {
            arch::rdtsc()
        }

        fn cycles_per_second(&self) -> u64 {
            TSC_HZ.load(Ordering::Relaxed)
        }
    }

    impl Platform for X86Pc {
        fn board_name(&self) -> &'static str {
            "x86-pc"
        }

        fn machine(&self) -> &str {
            BOOT.get().map_or("x86 PC", |b| b.machine.as_str())
        }

        fn memory_regions(&self) -> &[MemoryRegion] {
            BOOT.get().map_or(&[], |b| &b.regions[..b.region_count])
        }

        fn initrd(&self) -> Option<&'static [u8]> {
            let range = BOOT.get()?.initrd;
            let len = usize::try_from(range.end.checked_sub(range.start)?).ok()?;
            if len == 0 {
                return None;
            }
            // SAFETY: boot checked the module lies in identity-mapped RAM and kept it out of
            // the usable regions, so nothing else ever writes it.
            Some(unsafe { arch::phys_bytes(range.start, len) })
        }

        fn command_line(&self) -> &str {
            BOOT.get().map_or("", |b| {
                let line = &b.cmdline[..b.cmdline_len];
                // Boot kept only valid UTF-8; the ASCII check spares the decoder's code.
                crate::bootinfo::ascii_str(line)
                    .or_else(|| core::str::from_utf8(line).ok())
                    .unwrap_or("")
            })
        }

        fn exit(&self, code: u8) -> ! {
            if code >= 128 {
                // QEMU's exit status is 8 bits and isa-debug-exit doubles the code, so only
                // 0-127 arrive whole: say the real one first.
                let mut line = *b"x86-pc: exit status ___ (isa-debug-exit carries 7 bits)\r\n";
                line[20] = b'0' + code / 100;
                line[21] = b'0' + code / 10 % 10;
                line[22] = b'0' + code % 10;
                self.write_bytes(&line);
            }
            arch::debug_exit(code);
            // QEMU takes the write as a shutdown request and stops the guest shortly after,
            // not at the instruction: give it about a second (2^31 TSC ticks; counted in
            // ticks, which work before the clock is calibrated) before concluding there is
            // no device.
            let start = arch::rdtsc();
            while arch::rdtsc().wrapping_sub(start) < 1 << 31 {
                core::hint::spin_loop();
            }
            if code == 0 {
                self.power_off();
            }
            self.write_bytes(b"x86-pc: no isa-debug-exit device (-device isa-debug-exit,iobase=0xf4,iosize=0x04); exit code lost, halting\r\n");
            arch::halt_forever()
        }

        fn interrupts(&self) -> Option<&dyn uk_hal::irq::Interrupts> {
            crate::interrupts::get().map(|i| i as &dyn uk_hal::irq::Interrupts)
        }

        /// Ports 0xCF8/0xCFC on `pc` and `q35` (a host bridge answered there at boot), none
        /// on `microvm` or before boot finished.
        fn pci_config_access(&self) -> Option<uk_hal::PciConfigAccess> {
            BOOT.get().and_then(|b| b.kind.pci_config_access())
        }

        /// `microvm`'s fixed virtio-mmio windows ([`crate::machine::virtio_mmio_slots`]);
        /// none on `pc`/`q35`, whose virtio devices are on PCI.
        fn virtio_mmio_slots(&self) -> &[uk_hal::VirtioMmioSlot] {
            BOOT.get()
                .map_or(&[], |b| crate::machine::virtio_mmio_slots(b.kind))
        }

        /// The first 4 GiB but page 0 ([`crate::machine::is_device_mapped`]).
        fn mmio_is_mapped(&self, base: u64, size: u64) -> bool {
            crate::machine::is_device_mapped(base, size)
        }

        /// [`crate::protection::PAGE_PROTECTION`]: 4 KiB rights for the usable regions,
        /// page tables from the heap, no TLB shootdown to other CPUs.
        fn page_protection(&self) -> Option<&dyn uk_hal::PageProtection> {
            Some(&crate::protection::PAGE_PROTECTION)
        }

        fn power_off(&self) -> ! {
            match self.machine_kind() {
                MachineKind::Microvm => arch::microvm_ged_power_off(),
                MachineKind::Pc | MachineKind::Q35 => arch::acpi_pm_power_off(),
                MachineKind::OtherPc => {
                    arch::acpi_pm_power_off();
                    arch::microvm_ged_power_off();
                }
            }
            // QEMU handles the request in its main loop, a moment after the write: give it
            // 100 ms before concluding the machine has no such register.
            let deadline = self.cycles() + self.cycles_per_second() / 10;
            while self.cycles() < deadline {
                core::hint::spin_loop();
            }
            arch::debug_exit(0);
            self.write_bytes(b"x86-pc: power-off not supported by this machine, halting\r\n");
            arch::halt_forever()
        }
    }
}
