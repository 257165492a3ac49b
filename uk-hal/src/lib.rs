//! Platform-facing traits of uk-rs.
//!
//! Every other uk-rs crate talks to hardware through the traits here, never through a board
//! crate. A board (`uk-board-x86-pc`, `uk-board-qemu-virt`, or a board of your own kernel)
//! implements them once; the runtime, the scheduler and the subsystems stay portable and can
//! be tested on the host with fakes.
//!
//! The traits are deliberately small, in the spirit of Tock's HIL: each one says what a board
//! must provide for one concern and nothing more.
//!
//! - [`Console`]: an unbuffered byte sink for logs and test output.
//! - [`Clock`]: a monotonic clock counted from the image's first instruction, plus the raw
//!   cycle counter behind it for measurements in cycles. The runtime registers the board's
//!   clock once at boot ([`register_system_clock`]) so that crates without a board handle
//!   (the random generator's jitter fallback) can find it ([`system_clock`]).
//! - `HostClock` (feature `std`): the host's monotonic clock, for tests and benchmarks
//!   that run uk-rs code in a Linux process.
//! - [`Platform`]: what the runtime needs to start an application: the board's name, the
//!   usable memory regions, the kernel command line, and ways to end the run; optionally
//!   where devices are: virtio-mmio slots ([`VirtioMmioSlot`]), PCI configuration access
//!   ([`PciConfigAccess`]) and which device addresses are mapped
//!   ([`Platform::mmio_is_mapped`]), for uk-virtio; and optionally page-granular access
//!   rights for RAM ([`PageProtection`], [`Platform::page_protection`]): guard pages and
//!   `mprotect`.
//!
//! - [`irq`]: interrupt controllers split as the hardware is — a distributor side
//!   ([`irq::IrqDistributor`]: enable, priority, trigger, routing) and a per-CPU side
//!   ([`irq::IrqCpuInterface`]: acknowledge, end of interrupt, SGIs/IPIs), a per-CPU
//!   [`irq::LocalTimer`], and a lock-free handler table ([`irq::HandlerTable`]). While a
//!   handler runs, [`irq::Interrupts::interrupted_registers`] gives it the interrupted
//!   code's registers ([`irq::InterruptedRegisters`]: each board's frame described by a
//!   table in Linux's `ucontext_t` order), which a process layer hands to signal handlers.
//! - [`fault`]: CPU faults a board offers to a hook before it reports them (memory
//!   faults, misaligned accesses, undefined instructions, division errors, x86 general
//!   protection, breakpoints; [`fault::set_hook`], [`fault::offer`]), so a process layer
//!   can run a program's `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` or `SIGTRAP` handler and
//!   resume the faulting code, or end the program as the signal's default action does.
//!
//! # Example
//!
//! A host-side fake platform, as the crates' unit tests use:
//!
//! ```
//! use uk_hal::{Clock, Console, MemoryRegion, Platform};
//! use core::sync::atomic::{AtomicU64, Ordering};
//!
//! struct Fake { now: AtomicU64 }
//! impl Console for Fake { fn write_bytes(&self, _bytes: &[u8]) {} }
//! impl Clock for Fake {
//!     fn monotonic_ns(&self) -> u64 { self.now.load(Ordering::Relaxed) }
//!     fn cycles(&self) -> u64 { self.monotonic_ns() }
//!     fn cycles_per_second(&self) -> u64 { 1_000_000_000 }
//! }
//! impl Platform for Fake {
//!     fn board_name(&self) -> &'static str { "fake" }
//!     fn machine(&self) -> &str { "host process" }
//!     fn memory_regions(&self) -> &[MemoryRegion] { &[] }
//!     fn command_line(&self) -> &str { "" }
//!     fn exit(&self, code: u8) -> ! { std::process::exit(code.into()) }
//!     fn power_off(&self) -> ! { std::process::exit(0) }
//! }
//! let board = Fake { now: AtomicU64::new(5) };
//! assert_eq!(board.monotonic_ns(), 5);
//! ```
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod fault;
pub mod irq;

/// A byte sink the runtime writes logs and test results to.
///
/// Implementations must be callable from any context, including exception handlers and a
/// panic, so they take `&self` and serialise internally (or are lock-free). Writes are
/// unbuffered: when `write_bytes` returns, the bytes have left for the device.
pub trait Console: Sync {
    /// Writes every byte of `bytes`, translating nothing (the caller sends `\r\n` if needed).
    fn write_bytes(&self, bytes: &[u8]);
}

/// A monotonic clock.
///
/// Time zero is the image's first instruction, so [`Clock::monotonic_ns`] read at `main`
/// is the boot time of the guest.
pub trait Clock: Sync {
    /// Nanoseconds since the image's first instruction. Never decreases.
    fn monotonic_ns(&self) -> u64;
    /// The raw counter behind the clock (TSC on x86_64, CNTVCT_EL0 on aarch64), for
    /// measurements in cycles.
    fn cycles(&self) -> u64;
    /// Frequency of [`Clock::cycles`] in Hz.
    fn cycles_per_second(&self) -> u64;
}

/// A reference to a clock is a clock, so a scheduler can own `&'static dyn Platform` (or
/// any `&'static` board) as its clock without an adapter.
impl<T: Clock + ?Sized> Clock for &T {
    fn monotonic_ns(&self) -> u64 {
        (**self).monotonic_ns()
    }
    fn cycles(&self) -> u64 {
        (**self).cycles()
    }
    fn cycles_per_second(&self) -> u64 {
        (**self).cycles_per_second()
    }
}

/// The board clock registered by the runtime; null until then.
static SYSTEM_CLOCK: core::sync::atomic::AtomicPtr<&'static dyn Clock> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Registers the running board's clock as the image's system clock (first call wins;
/// returns whether this call was it). The runtime does this once at boot.
///
/// It takes a reference to a `&'static dyn Clock` kept in a `static`, because the clock
/// reference itself is two words and the registry holds one.
pub fn register_system_clock(clock: &'static &'static dyn Clock) -> bool {
    let ptr = core::ptr::from_ref(clock).cast_mut();
    SYSTEM_CLOCK
        .compare_exchange(
            core::ptr::null_mut(),
            ptr,
            core::sync::atomic::Ordering::AcqRel,
            core::sync::atomic::Ordering::Acquire,
        )
        .is_ok()
}

/// The clock registered with [`register_system_clock`], if any (none on the host unless a
/// test registered one).
pub fn system_clock() -> Option<&'static dyn Clock> {
    let ptr = SYSTEM_CLOCK.load(core::sync::atomic::Ordering::Acquire);
    // SAFETY: the only non-null value ever stored comes from a `&'static &'static dyn
    // Clock` in `register_system_clock`, so it points to a live, never-mutated reference.
    unsafe { ptr.as_ref() }.copied()
}

/// The host's monotonic clock as a [`Clock`] (feature `std`): nanoseconds since the value
/// was made, and cycles are nanoseconds too. For tests and benchmarks that run uk-rs code
/// (schedulers, the random generator, the process layer) in a Linux process.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy)]
pub struct HostClock(pub std::time::Instant);

#[cfg(feature = "std")]
impl HostClock {
    /// A clock that starts now.
    pub fn new() -> Self {
        Self(std::time::Instant::now())
    }
}

#[cfg(feature = "std")]
impl Default for HostClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl Clock for HostClock {
    fn monotonic_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn cycles(&self) -> u64 {
        self.monotonic_ns()
    }
    fn cycles_per_second(&self) -> u64 {
        1_000_000_000
    }
}

/// The hook [`relax`] calls, as a `fn()` address; 0 until one is registered.
static RELAX: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Registers what [`relax`] does (first call wins; returns whether this call was it). A
/// scheduler registers "let the other threads run" (uk-sched: yield when called from one of
/// its threads), so that code waiting for a device or a lock does not hold the CPU.
pub fn register_relax(hook: fn()) -> bool {
    RELAX
        .compare_exchange(
            0,
            hook as usize,
            core::sync::atomic::Ordering::AcqRel,
            core::sync::atomic::Ordering::Acquire,
        )
        .is_ok()
}

/// What code does in each turn of a wait for something another thread, a device or another
/// CPU will do: the registered hook ([`register_relax`]), or [`core::hint::spin_loop`]
/// without one. Drivers that poll (uk-virtio) and spin locks held across device waits
/// (uk-9pfs) call it, so that under a cooperative scheduler the other threads run while
/// they wait instead of never. It may switch threads: call it with interrupts enabled,
/// outside critical sections, and with no lock held that a thread of the same CPU could
/// want, unless that lock relaxes too.
pub fn relax() {
    match RELAX.load(core::sync::atomic::Ordering::Acquire) {
        0 => core::hint::spin_loop(),
        hook => {
            // SAFETY: the only non-zero value ever stored is the address of a `fn()`
            // (`register_relax`), and a `fn()` is exactly a code address.
            let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
            hook();
        }
    }
}

/// A range of physical addresses.
///
/// In [`Platform::memory_regions`], usable RAM handed from the board to the allocators: a
/// board lists only memory nobody else uses (the image, its boot stacks, page tables and the
/// boot information, device tree or memory map, are already carved out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Physical (and, with the boards' identity maps, virtual) start address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl MemoryRegion {
    /// One past the last byte of the region.
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// A virtio-mmio transport the board knows of: a device tree node compatible with
/// `virtio,mmio` (QEMU `virt` has 32, most of them empty: device id 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioSlot {
    /// The register window: physical address (identity-mapped) and length in bytes.
    pub region: MemoryRegion,
    /// The interrupt line as the board's interrupt controller numbers it (a GIC INTID on
    /// `virt`), if the tree names one. Polled drivers do not need it.
    pub interrupt: Option<u32>,
}

/// How the CPU reaches PCI configuration space ([`Platform::pci_config_access`]).
///
/// More mechanisms (a memory-mapped ECAM window) can be added without breaking boards or
/// drivers: matches on it need a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciConfigAccess {
    /// x86 configuration mechanism #1: the address of a 32-bit register goes to I/O port
    /// `0xCF8` (`0x8000_0000 | bus << 16 | device << 11 | function << 8 | offset`), the
    /// register is read or written at port `0xCFC`. Buses 0-255, 256 bytes per function.
    /// The firmware (SeaBIOS on QEMU `pc` and `q35`) has assigned the BARs.
    PortIo,
}

/// The size of the pages [`PageProtection`] works on: 4 KiB on both boards.
pub const PROTECTION_PAGE: usize = 4096;

/// What a page of RAM may be used for, as [`PageProtection`] sets it.
///
/// Execution is not a right of its own: RAM outside the image is never executable on the
/// boards (Arm `XN`; x86 maps it executable, but nothing loads code there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageAccess {
    /// Any access faults (a guard page, `PROT_NONE`).
    None,
    /// Reads succeed, writes fault (`PROT_READ`).
    ReadOnly,
    /// Reads and writes succeed: how the boards map all RAM at boot.
    ReadWrite,
}

/// Why [`PageProtection::set_access`] changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtectError {
    /// The start or the length is not a multiple of [`PROTECTION_PAGE`], or the length is 0.
    Unaligned,
    /// Part of the range is not RAM the board hands out ([`Platform::memory_regions`]):
    /// the image, its stacks and page tables, device memory or nothing at all.
    NotRam,
    /// A page table needed to give single pages their own rights could not be allocated.
    OutOfTables,
}

impl core::fmt::Display for ProtectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Unaligned => "range not page-aligned or empty",
            Self::NotRam => "range not in the board's RAM",
            Self::OutOfTables => "no memory for a page table",
        })
    }
}

/// Page-granular access rights for RAM: guard pages and `mprotect`.
///
/// The boards map RAM in large blocks (2 MiB and 1 GiB), all readable and writable. A board
/// that implements this trait gives a block its own table of 4 KiB pages the first time a
/// page in it needs other rights (the table stays afterwards), so a process layer can make
/// `PROT_NONE` and `PROT_READ` mappings that fault, and a scheduler can put a guard page
/// below a stack. An access against the rights is a CPU exception, which the board reports
/// as it reports any other fault.
///
/// A board should make the change reach every running CPU's TLB before `set_access`
/// returns (qemu-virt broadcasts its invalidation; x86-pc shoots the other CPUs' TLBs down
/// with an IPI). Where it cannot (x86-pc: a CPU that keeps interrupts masked too long),
/// that CPU may use a translation cached before the change for a while; the boards say
/// when.
pub trait PageProtection: Sync {
    /// Gives the pages of `[start, start + len)` the rights `access`. All or nothing: on an
    /// error no page changed.
    ///
    /// # Errors
    ///
    /// [`ProtectError::Unaligned`] for a misaligned or empty range,
    /// [`ProtectError::NotRam`] for a range that leaves the board's RAM,
    /// [`ProtectError::OutOfTables`] when a page table could not be allocated.
    ///
    /// # Safety
    ///
    /// Taking rights away makes every access of that kind to the pages fault, the kernel's
    /// own included: the caller must own the pages (a mapping it made, a stack's guard) and
    /// give them back [`PageAccess::ReadWrite`] before they return to an allocator.
    unsafe fn set_access(
        &self,
        start: usize,
        len: usize,
        access: PageAccess,
    ) -> Result<(), ProtectError>;

    /// The rights of the page holding `addr`, or `None` outside the board's RAM.
    fn access(&self, addr: usize) -> Option<PageAccess>;
}

/// What the runtime needs from a board to start an application and end the run.
///
/// The methods with default bodies are optional: a board overrides those it has something
/// to say about, and the defaults report "nothing there".
pub trait Platform: Console + Clock {
    /// Short name of the board crate, as `cargo uk --board` spells it (`x86-pc`, `qemu-virt`).
    fn board_name(&self) -> &'static str;
    /// The machine actually found at boot, e.g. `QEMU pc, AMD EPYC` or `QEMU virt, cortex-a72, EL1`.
    fn machine(&self) -> &str;
    /// Every usable RAM region, in ascending address order, none overlapping.
    fn memory_regions(&self) -> &[MemoryRegion];
    /// The kernel command line as given by the boot loader (QEMU `-append`); empty if none.
    fn command_line(&self) -> &str;
    /// Ends the run and reports `code` to the host (isa-debug-exit on x86, semihosting on
    /// aarch64). `cargo uk` turns it back into the same process exit code.
    fn exit(&self, code: u8) -> !;
    /// Powers the machine off without a status (ACPI or PSCI SYSTEM_OFF).
    fn power_off(&self) -> !;
    /// The initial RAM disk the boot loader loaded (QEMU `-initrd`), if any. The board keeps
    /// its bytes out of [`Platform::memory_regions`].
    fn initrd(&self) -> Option<&'static [u8]> {
        None
    }
    /// The board's interrupt controllers, timers and secondary CPUs, once it has them.
    fn interrupts(&self) -> Option<&dyn irq::Interrupts> {
        None
    }
    /// Where virtio-mmio devices may be, in the order the board found them (device tree
    /// order on `virt`: lowest address first). A slot may be empty (device id 0); drivers
    /// probe it. None by default.
    fn virtio_mmio_slots(&self) -> &[VirtioMmioSlot] {
        &[]
    }
    /// How to reach PCI configuration space, if the machine has a PCI bus whose BARs are
    /// already assigned (QEMU `pc` and `q35`: [`PciConfigAccess::PortIo`]; `microvm` has no
    /// PCI bus). `None` by default.
    fn pci_config_access(&self) -> Option<PciConfigAccess> {
        None
    }
    /// Whether the `size` bytes of device registers at physical address `base` are
    /// identity-mapped (virtual address = physical address) with attributes fit for
    /// registers (uncached, or Device memory on Arm), so a driver may access them.
    ///
    /// Drivers ask before they touch a PCI BAR or a device tree `reg` window, and turn a
    /// `false` into an error instead of a fault. The question is about device addresses;
    /// the answer for RAM is unspecified. `false` by default, so a board that says nothing
    /// never has its unmapped addresses dereferenced.
    fn mmio_is_mapped(&self, base: u64, size: u64) -> bool {
        let _ = (base, size);
        false
    }
    /// Page-granular access rights for RAM ([`PageProtection`]), if the board can set them.
    /// `None` by default: all RAM stays readable and writable.
    fn page_protection(&self) -> Option<&dyn PageProtection> {
        None
    }
}

/// Adapts any [`Console`] to [`core::fmt::Write`], turning `\n` into `\r\n` so output reads
/// right on a raw serial terminal.
pub struct ConsoleWriter<'a>(pub &'a dyn Console);

impl core::fmt::Write for ConsoleWriter<'_> {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let mut rest = text.as_bytes();
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.0.write_bytes(&rest[..newline]);
            self.0.write_bytes(b"\r\n");
            rest = &rest[newline + 1..];
        }
        self.0.write_bytes(rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u64);
    impl Clock for Fixed {
        fn monotonic_ns(&self) -> u64 {
            self.0
        }
        fn cycles(&self) -> u64 {
            self.0
        }
        fn cycles_per_second(&self) -> u64 {
            1_000_000_000
        }
    }

    static FIRST: Fixed = Fixed(7);
    static SECOND: Fixed = Fixed(9);
    static FIRST_REF: &dyn Clock = &FIRST;
    static SECOND_REF: &dyn Clock = &SECOND;

    struct Bare;
    impl Console for Bare {
        fn write_bytes(&self, _bytes: &[u8]) {}
    }
    impl Clock for Bare {
        fn monotonic_ns(&self) -> u64 {
            0
        }
        fn cycles(&self) -> u64 {
            0
        }
        fn cycles_per_second(&self) -> u64 {
            1
        }
    }
    impl Platform for Bare {
        fn board_name(&self) -> &'static str {
            "bare"
        }
        fn machine(&self) -> &str {
            "bare"
        }
        fn memory_regions(&self) -> &[MemoryRegion] {
            &[]
        }
        fn command_line(&self) -> &str {
            ""
        }
        fn exit(&self, _code: u8) -> ! {
            unreachable!()
        }
        fn power_off(&self) -> ! {
            unreachable!()
        }
    }

    /// A board that says nothing about devices has none, and no address is mapped for them.
    #[test]
    fn device_discovery_defaults_report_nothing() {
        let board: &dyn Platform = &Bare;
        assert!(board.virtio_mmio_slots().is_empty());
        assert_eq!(board.pci_config_access(), None);
        assert!(!board.mmio_is_mapped(0x0a00_0000, 0x200));
    }

    static RELAXED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    fn count_relax() {
        RELAXED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    fn other_relax() {
        RELAXED.fetch_add(100, core::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn relax_spins_until_a_hook_is_registered_and_the_first_hook_stays() {
        relax();
        assert_eq!(RELAXED.load(core::sync::atomic::Ordering::Relaxed), 0);
        assert!(register_relax(count_relax));
        assert!(!register_relax(other_relax));
        relax();
        relax();
        assert_eq!(RELAXED.load(core::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn the_first_registered_system_clock_stays() {
        assert!(system_clock().is_none());
        assert!(register_system_clock(&FIRST_REF));
        assert!(!register_system_clock(&SECOND_REF));
        assert_eq!(system_clock().map(|c| c.monotonic_ns()), Some(7));
    }
}
