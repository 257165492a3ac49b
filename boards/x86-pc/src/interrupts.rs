//! The board's interrupts as [`uk_hal::irq::Interrupts`]: local APIC (per CPU: IPIs, EOI,
//! the timer), IOAPICs (the ISA and other GSI lines), external interrupt dispatch, and
//! secondary CPUs started with INIT/SIPI.
//!
//! Set up on the first [`uk_hal::Platform::interrupts`] call (on the boot CPU, once), so an
//! image that never uses interrupts pays nothing at boot: the MADT gives the CPUs' APIC ids
//! and the IOAPICs; the local APIC is enabled (x2APIC when CPUID has it, xAPIC otherwise);
//! the 8259 PICs are remapped to 0x20-0x2F and masked; every IOAPIC entry is masked, with
//! GSI `g` on vector `0x30 + g` to the boot CPU and the MADT's ISA overrides applied; the
//! timer is TSC-deadline when CPUID has it, otherwise one-shot calibrated against the TSC.
//!
//! # Entry
//!
//! Every vector 32-255 goes through one stub (see `arch`) to `irq_entry` on the
//! interrupted stack with interrupts masked: the spurious vector (0xFF) is counted and left
//! without EOI; any other vector gets its EOI first when its in-service bit is set (a stray
//! 8259 interrupt has none), then its handler from the [`HandlerTable`] runs. EOI before
//! the handler lets a handler switch threads (preemption from the timer) without leaving the
//! vector's priority class blocked. Level-triggered lines are ended after their handler
//! instead (see [`apic::entry_plan`]). A vector without a handler is logged once and
//! counted, never fatal; a level line without one is masked.

extern crate alloc;

use core::cell::UnsafeCell;
use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use uk_hal::Clock;
use uk_hal::irq::{
    CpuSet, CpuStartError, GENERAL_REGISTERS, HandlerTable, InterruptedRegisters, Interrupts,
    IpiTarget, IrqCpuInterface, IrqDistributor, IrqError, IrqHandler, IrqNumber, LocalTimer,
    RegisterSlot, Trigger,
};

use crate::acpi::{self, Madt, PhysMem};
use crate::apic::{self, ApicRegs, Icr, Shorthand, reg, vector};
use crate::arch;
use crate::ioapic::IoApic;
use crate::irqhw::{self, IoApicMmio, X2apic, Xapic};
use crate::machine::MachineKind;
use crate::{PLATFORM, TSC_HZ};

/// Most CPUs the board starts.
pub const MAX_CPUS: usize = acpi::MAX_CPUS;
/// Stack of a secondary CPU (its `entry` runs on it).
pub const AP_STACK_SIZE: usize = 64 * 1024;
/// Double-fault stack of a secondary CPU.
const AP_DF_STACK_SIZE: usize = 16 * 1024;

/// Local APIC access in the mode the board chose.
#[derive(Clone, Copy)]
pub enum Lapic {
    /// xAPIC MMIO at this base.
    X(u64),
    /// x2APIC MSRs.
    X2,
}

impl ApicRegs for Lapic {
    fn read(&self, offset: u32) -> u32 {
        match *self {
            Lapic::X(base) => Xapic { base }.read(offset),
            Lapic::X2 => X2apic.read(offset),
        }
    }
    fn write(&self, offset: u32, value: u32) {
        match *self {
            Lapic::X(base) => Xapic { base }.write(offset, value),
            Lapic::X2 => X2apic.write(offset, value),
        }
    }
    fn send(&self, icr: &Icr) -> bool {
        match *self {
            Lapic::X(base) => Xapic { base }.send(icr),
            Lapic::X2 => X2apic.send(icr),
        }
    }
    fn x2apic(&self) -> bool {
        matches!(self, Lapic::X2)
    }
}

/// How the local timer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    /// `IA32_TSC_DEADLINE`: an absolute TSC value.
    TscDeadline,
    /// One-shot count at this many Hz (after the divide-by-16).
    OneShot(u64),
}

/// What set-up found; written once, then read-only.
struct State {
    madt: Madt,
    lapic: Lapic,
    timer: TimerMode,
    ioapics: [Option<IoApic<IoApicMmio>>; acpi::MAX_IOAPICS],
    /// One past the highest vector an IOAPIC line has.
    line_end: u32,
}

struct StateCell {
    /// 0 not set up, 1 being set up, 2 ready, 3 failed.
    phase: AtomicU8,
    state: UnsafeCell<Option<State>>,
}

// SAFETY: `state` is written only by the caller that moved `phase` from 0 to 1, before it
// stores 2 (release); readers read it only after seeing 2 (acquire).
unsafe impl Sync for StateCell {}

static STATE: StateCell = StateCell {
    phase: AtomicU8::new(0),
    state: UnsafeCell::new(None),
};

fn state() -> Option<&'static State> {
    if STATE.phase.load(Ordering::Acquire) != 2 {
        return None;
    }
    // SAFETY: set before phase 2 and never written again (see the `Sync` impl).
    unsafe { (*STATE.state.get()).as_ref() }
}

/// The per-CPU block GS points to; its first word is the logical CPU number.
#[repr(C)]
struct PerCpu {
    cpu: AtomicU32,
    apic_id: AtomicU32,
    /// The one-shot timer's deadline (clock ns), 0 when disarmed.
    deadline: AtomicU64,
    /// The frame of the interrupt whose handler runs
    /// ([`Interrupts::interrupted_registers`]), null outside handlers.
    interrupted_frame: AtomicPtr<usize>,
}

static PER_CPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        cpu: AtomicU32::new(0),
        apic_id: AtomicU32::new(0),
        deadline: AtomicU64::new(0),
        interrupted_frame: AtomicPtr::new(core::ptr::null_mut()),
    }
}; MAX_CPUS];

/// Where the interrupt stubs' frame (`uk_irq_common` in `arch.rs`) keeps each general
/// register, in Linux's `gregs` order ([`uk_hal::irq::GENERAL_REGISTERS`]). The stubs push
/// `rax`, `rcx`, `rdx`, `rsi`, `rdi`, `r8`-`r11`, `rbx`, `rbp`, `r12`-`r15` (so `r15` is word
/// 0) below the vector (word 15) and the CPU's frame: RIP (16), CS, RFLAGS (18), RSP (19),
/// SS. RFLAGS and RSP are reported only: a handler must not clear the interrupt flag or
/// move the stack the frame itself lies on.
const FRAME_LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = {
    use RegisterSlot::{ReadOnlyWord, Word};
    [
        Word(9),          // r8
        Word(8),          // r9
        Word(7),          // r10
        Word(6),          // r11
        Word(3),          // r12
        Word(2),          // r13
        Word(1),          // r14
        Word(0),          // r15
        Word(10),         // rdi
        Word(11),         // rsi
        Word(4),          // rbp
        Word(5),          // rbx
        Word(12),         // rdx
        Word(14),         // rax
        Word(13),         // rcx
        ReadOnlyWord(19), // rsp
        Word(16),         // rip
        ReadOnlyWord(18), // rflags
    ]
};

/// The calling CPU's block.
fn this_cpu() -> &'static PerCpu {
    &PER_CPU[(INTERRUPTS.cpu_id() as usize).min(MAX_CPUS - 1)]
}

static HANDLERS: HandlerTable<256> = HandlerTable::new();
/// Vectors whose missing handler was logged (one bit each).
static LOGGED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static UNHANDLED: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
static SPURIOUS: AtomicUsize = AtomicUsize::new(0);
/// Level-triggered vectors (one bit each): ended after their handler, not before.
static LEVEL: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn set_level_vector(v: u32, level: bool) {
    let bit = 1u64 << (v % 64);
    let word = &LEVEL[(v / 64) as usize % 4];
    if level {
        word.fetch_or(bit, Ordering::Relaxed);
    } else {
        word.fetch_and(!bit, Ordering::Relaxed);
    }
}

fn is_level_vector(v: u8) -> bool {
    LEVEL[usize::from(v / 64)].load(Ordering::Relaxed) & (1 << (v % 64)) != 0
}

/// One-shot timer interrupts that came before their deadline and were re-armed.
static EARLY: AtomicUsize = AtomicUsize::new(0);
/// Serialises IOAPIC index/window pairs and read-modify-writes.
static IOAPIC_LOCK: AtomicBool = AtomicBool::new(false);
/// Secondary CPUs that reached `ap_main`.
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Secondary CPUs a start was attempted for.
static STARTING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Stack tops of secondary CPUs (main, double fault), allocated on their first start and
/// reused when a stopped CPU starts again.
static STACKS: [[AtomicU64; 2]; MAX_CPUS] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_CPUS];
/// One start at a time (the trampoline's slots are shared).
static START_LOCK: AtomicBool = AtomicBool::new(false);
/// The entry of the CPU being started.
static AP_ENTRY: AtomicUsize = AtomicUsize::new(0);
/// Top of the double-fault stack of the CPU being started.
static AP_DF_STACK: AtomicU64 = AtomicU64::new(0);
/// The boot CPU's CR0, CR4 and XCR0, for secondary CPUs.
static CONTROL: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

struct CpuTablesCell(UnsafeCell<[arch::CpuTables; MAX_CPUS]>);
// SAFETY: slot `cpu` is written only by CPU `cpu` in `ap_main`, each time it starts (a
// stopped CPU no longer runs, so it holds no reference any more).
unsafe impl Sync for CpuTablesCell {}
static CPU_TABLES: CpuTablesCell = CpuTablesCell(UnsafeCell::new(
    [const { arch::CpuTables::new() }; MAX_CPUS],
));

/// The board's [`Interrupts`].
pub struct X86Interrupts {
    _private: (),
}

/// The one instance.
pub static INTERRUPTS: X86Interrupts = X86Interrupts { _private: () };

/// The interrupts, set up on the first call (boot CPU); `None` if set-up failed.
pub fn get() -> Option<&'static X86Interrupts> {
    match STATE
        .phase
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {
            let flags = irqhw::irq_save();
            let result = set_up();
            // SAFETY: phase 1 is ours alone (see `StateCell`).
            unsafe { *STATE.state.get() = result };
            let ok = state_is_set();
            STATE.phase.store(if ok { 2 } else { 3 }, Ordering::Release);
            if ok {
                cpu_init_timer();
            }
            irqhw::irq_restore(flags);
        }
        Err(_) => {
            while STATE.phase.load(Ordering::Acquire) == 1 {
                core::hint::spin_loop();
            }
        }
    }
    state().map(|_| &INTERRUPTS)
}

fn state_is_set() -> bool {
    // SAFETY: called by the set-up caller in phase 1 (see `get`).
    unsafe { (*STATE.state.get()).is_some() }
}

/// Identity-mapped physical memory below the MMIO hole, without page 0 and the image (its
/// guard pages are unmapped; ACPI tables are never in it): a table pointer into either is
/// an [`acpi::AcpiError::Unreadable`], not a page fault.
struct Identity;

impl PhysMem for Identity {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        let (image_start, image_end) = arch::image_range();
        if addr < 0x1000 || end > 0xfec0_0000 || (addr < image_end && end > image_start) {
            return None;
        }
        // SAFETY: below the MMIO hole, identity-mapped, above the unmapped page 0: firmware
        // tables (ACPI) that nothing writes; only read.
        Some(unsafe { arch::phys_bytes(addr, len) })
    }
}

fn warn(line: &str) {
    log::warn!("x86-pc: {line}");
}

fn set_up() -> Option<State> {
    let hint = PLATFORM.start_info().map_or(0, |info| info.rsdp_paddr);
    let x2 = arch::cpuid(1, 0)[2] & (1 << 21) != 0;
    let lapic = if x2 {
        irqhw::enable_x2apic();
        Lapic::X2
    } else {
        let base = irqhw::rdmsr(irqhw::APIC_BASE_MSR);
        if base & (1 << 11) == 0 {
            // SAFETY: setting the global enable bit only turns the local APIC on.
            unsafe { irqhw::wrmsr(irqhw::APIC_BASE_MSR, base | 1 << 11) };
        }
        Lapic::X(base & 0x000f_ffff_ffff_f000)
    };
    let boot_id = apic::apic_id(&lapic);
    let mut madt = match acpi::read_madt(&Identity, hint) {
        Ok(madt) => madt,
        Err(e) => {
            log::warn!("x86-pc: {e}; assuming one CPU and an IOAPIC at 0xfec00000");
            let mut madt = acpi::parse_madt(&[0; 44])?;
            madt.cpu_apic_ids[0] = boot_id;
            madt.cpu_count = 1;
            madt.ioapics[0].address = 0xfec0_0000;
            madt.ioapic_count = 1;
            madt
        }
    };
    if PLATFORM.machine_kind() == MachineKind::Microvm
        && !madt.overrides().iter().any(|o| o.irq == 0)
        && madt.override_count < acpi::MAX_OVERRIDES
    {
        // QEMU's IOAPIC model takes ISA IRQ 0 (the PIT) on pin 2 on every machine, but
        // `microvm`'s MADT, unlike `pc`'s and `q35`'s, lists no override saying so.
        madt.overrides[madt.override_count] = acpi::IsaOverride {
            irq: 0,
            gsi: 2,
            flags: 0,
        };
        madt.override_count += 1;
    }
    if madt.dropped > 0 {
        warn("more CPUs, IOAPICs or overrides than the board keeps; some left out");
    }
    // The boot CPU is CPU 0.
    match madt.cpus().iter().position(|&id| id == boot_id) {
        Some(at) => madt.cpu_apic_ids[..=at].rotate_right(1),
        None if madt.cpu_count < MAX_CPUS => {
            madt.cpu_apic_ids[..=madt.cpu_count].rotate_right(1);
            madt.cpu_apic_ids[0] = boot_id;
            madt.cpu_count += 1;
        }
        None => madt.cpu_apic_ids[0] = boot_id,
    }

    // The 8259s first: an interrupt they still raise meets vectors of their own (0x20-0x2F),
    // never an exception's.
    irqhw::mask_pic(vector::PIC_BASE);
    apic::init(&lapic);
    if madt.cpu_count > 1 {
        // The firmware leaves the other CPUs halted in its own code with their local APICs
        // set up its way (LINT0 as the 8259's virtual wire): INIT puts them in the
        // wait-for-start-up state with their APICs reset, where nothing reaches them.
        lapic.send(&Icr {
            shorthand: Shorthand::AllButSelf,
            ..Icr::init(0)
        });
    }

    let mut ioapics = [const { None }; acpi::MAX_IOAPICS];
    let mut line_end = u32::from(vector::GSI_BASE);
    for (slot, info) in ioapics.iter_mut().zip(madt.ioapics()) {
        let io = IoApic::new(
            IoApicMmio {
                base: u64::from(info.address),
            },
            info.gsi_base,
        );
        io.reset(
            u32::from(vector::GSI_BASE) + info.gsi_base,
            u8::try_from(boot_id).unwrap_or(0),
        );
        let end = (info.gsi_base + io.entries()).min(u32::from(vector::GSI_COUNT));
        line_end = line_end.max(u32::from(vector::GSI_BASE) + end);
        *slot = Some(io);
    }
    for ov in madt.overrides() {
        if let Some((io, pin)) = ioapics
            .iter()
            .flatten()
            .find_map(|io| io.pin(ov.gsi).map(|pin| (io, pin)))
        {
            io.set_active_low(pin, ov.active_low());
            io.set_level(pin, ov.level());
            set_level_vector(u32::from(vector::GSI_BASE) + ov.gsi, ov.level());
        }
    }

    // SAFETY: this is the boot CPU's block, static, and GS is used by nothing else.
    unsafe { irqhw::set_gs_base(&raw const PER_CPU[0] as u64) };
    PER_CPU[0].apic_id.store(boot_id, Ordering::Relaxed);

    let deadline = arch::cpuid(1, 0)[2] & (1 << 24) != 0;
    let timer = if deadline {
        TimerMode::TscDeadline
    } else {
        TimerMode::OneShot(calibrate(&lapic))
    };
    Some(State {
        madt,
        lapic,
        timer,
        ioapics,
        line_end,
    })
}

/// Measures the APIC timer (divide by 16) against the TSC over 1 ms, twice: the first run
/// also translates the code under TCG (its register accesses are slow the first time), the
/// second is used. Each end of the window is the midpoint of the TSC reads around the
/// register access.
fn calibrate(lapic: &Lapic) -> u64 {
    let tsc_hz = TSC_HZ.load(Ordering::Relaxed);
    lapic.write(reg::LVT_TIMER, apic::LVT_MASKED | u32::from(vector::TIMER));
    lapic.write(reg::TIMER_DIVIDE, apic::DIVIDE_BY_16);
    let mut hz = None;
    for _ in 0..2 {
        let before_start = arch::rdtsc();
        lapic.write(reg::TIMER_INITIAL, u32::MAX);
        let after_start = arch::rdtsc();
        while arch::rdtsc() - after_start < tsc_hz / 1000 {
            core::hint::spin_loop();
        }
        let before_end = arch::rdtsc();
        let left = lapic.read(reg::TIMER_CURRENT);
        let after_end = arch::rdtsc();
        lapic.write(reg::TIMER_INITIAL, 0);
        let ticks = (before_end / 2 + after_end / 2) - (before_start / 2 + after_start / 2);
        hz = apic::timer_hz(u32::MAX - left, ticks, tsc_hz);
    }
    hz.unwrap_or_else(|| {
        warn("APIC timer did not count during calibration; assuming 62.5 MHz");
        62_500_000
    })
}

/// Programs the calling CPU's LVT timer for the board's mode, unmasked, disarmed.
fn cpu_init_timer() {
    let Some(s) = state() else { return };
    let mode = match s.timer {
        TimerMode::TscDeadline => apic::LVT_TSC_DEADLINE,
        TimerMode::OneShot(_) => 0,
    };
    s.lapic
        .write(reg::LVT_TIMER, mode | u32::from(vector::TIMER));
    s.lapic.write(reg::TIMER_DIVIDE, apic::DIVIDE_BY_16);
    INTERRUPTS.disarm();
}

fn lapic() -> Lapic {
    state().map_or(Lapic::X(0xfee0_0000), |s| s.lapic)
}

/// Called by the interrupt stubs with the vector (32-255) and their frame, interrupts
/// masked.
pub(crate) extern "C" fn irq_entry(raw_vector: u64, frame: *mut u64) {
    let v = raw_vector as u8;
    let lapic = lapic();
    let level = is_level_vector(v);
    let plan = apic::entry_plan(
        v,
        v != vector::SPURIOUS && apic::in_service(&lapic, v),
        level,
    );
    if !plan.dispatch {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if plan.eoi_before {
        lapic.write(reg::EOI, 0);
    }
    if v == vector::TIMER && early_one_shot() {
        return;
    }
    if v == vector::TLB_SHOOTDOWN {
        // The board's own vector, never an application handler's (edge: ended above).
        crate::protection::answer_shootdown();
        return;
    }
    // The handler may ask where the interrupt returns to (and change it). A handler that
    // switches threads comes back here when this thread runs again, and puts back what
    // this interrupt found.
    let outer = this_cpu()
        .interrupted_frame
        .swap(frame.cast::<usize>(), Ordering::Relaxed);
    let handled = HANDLERS.dispatch(IrqNumber::from(v));
    this_cpu().interrupted_frame.store(outer, Ordering::Relaxed);
    if !handled {
        UNHANDLED[usize::from(v)].fetch_add(1, Ordering::Relaxed);
        // A level line nobody serves stays asserted: masked, or it would come back for
        // ever. Registering a handler does not unmask it; `enable` does.
        let silenced = level && INTERRUPTS.disable(IrqNumber::from(v)).is_ok();
        let bit = 1u64 << (v % 64);
        if LOGGED[usize::from(v / 64)].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            log::warn!(
                "x86-pc: interrupt vector {v:#04x} without a handler on CPU {} (acknowledged{}; logged once)",
                INTERRUPTS.cpu_id(),
                if silenced { ", level line masked" } else { "" }
            );
        }
    }
    if plan.eoi_after {
        lapic.write(reg::EOI, 0);
    }
}

/// A one-shot timer interrupt before its deadline (the APIC timer's rate is measured
/// against the TSC, within a fraction of a percent): re-armed for the rest, not passed on,
/// so a timer handler never runs before the deadline it asked for.
fn early_one_shot() -> bool {
    let Some(TimerMode::OneShot(hz)) = state().map(|s| s.timer) else {
        return false;
    };
    let cpu = this_cpu();
    let deadline = cpu.deadline.load(Ordering::Relaxed);
    let now = PLATFORM.monotonic_ns();
    if deadline > now {
        EARLY.fetch_add(1, Ordering::Relaxed);
        lapic().write(reg::TIMER_INITIAL, apic::one_shot_count(deadline - now, hz));
        return true;
    }
    cpu.deadline.store(0, Ordering::Relaxed);
    false
}

impl X86Interrupts {
    /// Stops secondary CPU `cpu` with an INIT IPI: whatever it runs is abandoned and it
    /// waits for a start-up IPI again, so [`Interrupts::start_cpu`] can start it anew (on
    /// the same stacks). Only for a CPU that runs nothing anyone waits for (an in-image
    /// test's CPU serving IPIs, say). The boot CPU cannot be stopped.
    pub fn stop_cpu(&self, cpu: u32) -> Result<(), CpuStartError> {
        let (s, apic_id) = cpu_apic_id(cpu)?;
        let index = cpu as usize;
        if cpu == 0 || cpu == self.cpu_id() {
            return Err(CpuStartError::Refused(-16)); // EBUSY
        }
        if !ONLINE[index].load(Ordering::Acquire) {
            return Err(CpuStartError::NoSuchCpu(cpu));
        }
        s.lapic.send(&Icr::init(apic_id));
        // INIT takes effect at once under QEMU; give real hardware its 10 ms.
        spin_ns(10_000_000);
        ONLINE[index].store(false, Ordering::Release);
        STARTING[index].store(false, Ordering::Release);
        Ok(())
    }

    /// Removes the handler of `irq`; returns whether it had one.
    pub fn unregister_handler(&self, irq: IrqNumber) -> bool {
        HANDLERS.unregister(irq)
    }

    /// Whether the IOAPIC line of vector `irq` is masked (`None`: no such line).
    pub fn line_masked(&self, irq: IrqNumber) -> Option<bool> {
        let mut masked = None;
        self.with_pin(irq, |io, pin| {
            masked = Some(io.low(pin) & crate::ioapic::bits::MASKED != 0);
        })
        .ok()?;
        masked
    }

    /// Whether secondary CPU `cpu` is running (started and not stopped).
    pub fn cpu_online(&self, cpu: u32) -> bool {
        cpu == 0
            || ONLINE
                .get(cpu as usize)
                .is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// Interrupts of `vector` taken without a handler so far (all CPUs).
    pub fn unhandled_count_of(&self, vector: u8) -> u32 {
        UNHANDLED[usize::from(vector)].load(Ordering::Relaxed)
    }

    /// Whether `vector` is requested (pending, not yet taken) on the calling CPU's local
    /// APIC.
    pub fn requested(&self, vector: u8) -> bool {
        let word = lapic().read(reg::IRR0 + u32::from(vector / 32) * 0x10);
        word & (1 << (vector % 32)) != 0
    }

    /// One-shot timer interrupts that came before their deadline (the timer's measured
    /// rate was a little slow) and were re-armed for the rest, so far.
    pub fn early_timer_count(&self) -> usize {
        EARLY.load(Ordering::Relaxed)
    }

    /// Spurious-vector interrupts taken so far.
    pub fn spurious_count(&self) -> usize {
        SPURIOUS.load(Ordering::Relaxed)
    }

    /// The timer mode in use.
    pub fn timer_mode(&self) -> Option<TimerMode> {
        state().map(|s| s.timer)
    }

    /// Whether the local APICs run in x2APIC mode.
    pub fn x2apic(&self) -> bool {
        state().is_some_and(|s| s.lapic.x2apic())
    }

    /// The APIC id of logical CPU `cpu`.
    pub fn apic_id(&self, cpu: u32) -> Option<u32> {
        state().and_then(|s| s.madt.cpus().get(cpu as usize).copied())
    }

    /// Whether `vector` is in service on the calling CPU's local APIC.
    pub fn in_service(&self, vector: u8) -> bool {
        apic::in_service(&lapic(), vector)
    }

    /// The vector of ISA IRQ `irq` (0-15) after the MADT's overrides (IRQ 0, the PIT, is
    /// GSI 2 on QEMU), `None` if no IOAPIC line has it.
    pub fn isa_vector(&self, irq: u8) -> Option<IrqNumber> {
        let s = state()?;
        let (gsi, _, _) = s.madt.isa_irq(irq);
        (gsi < u32::from(vector::GSI_COUNT)).then(|| u32::from(vector::GSI_BASE) + gsi)
    }

    /// Sets a line's polarity (active low for PCI INTx, active high for ISA).
    pub fn set_active_low(&self, irq: IrqNumber, active_low: bool) -> Result<(), IrqError> {
        self.with_pin(irq, |io, pin| io.set_active_low(pin, active_low))
    }

    /// Runs `f` on the IOAPIC entry of vector `irq`, under the IOAPIC lock.
    fn with_pin(
        &self,
        irq: IrqNumber,
        f: impl FnOnce(&IoApic<IoApicMmio>, u32),
    ) -> Result<(), IrqError> {
        let s = state().ok_or(IrqError::NoSuchIrq(irq))?;
        let gsi = irq
            .checked_sub(u32::from(vector::GSI_BASE))
            .filter(|_| irq < s.line_end)
            .ok_or(IrqError::NoSuchIrq(irq))?;
        let (io, pin) = s
            .ioapics
            .iter()
            .flatten()
            .find_map(|io| io.pin(gsi).map(|pin| (io, pin)))
            .ok_or(IrqError::NoSuchIrq(irq))?;
        let flags = irqhw::irq_save();
        while IOAPIC_LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        f(io, pin);
        IOAPIC_LOCK.store(false, Ordering::Release);
        irqhw::irq_restore(flags);
        Ok(())
    }

    fn cpu_apic_id(&self, cpu: u32) -> Result<u32, IrqError> {
        self.apic_id(cpu).ok_or(IrqError::NoSuchCpu(cpu))
    }
}

impl IrqDistributor for X86Interrupts {
    fn enable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.with_pin(irq, |io, pin| io.set_masked(pin, false))
    }

    fn disable(&self, irq: IrqNumber) -> Result<(), IrqError> {
        self.with_pin(irq, |io, pin| io.set_masked(pin, true))
    }

    /// x86 priorities are the vector's class (vector / 16), fixed by the board's vector
    /// plan: refused with [`IrqError::NotConfigurable`] for a line that exists.
    fn set_priority(&self, irq: IrqNumber, _priority: u8) -> Result<(), IrqError> {
        self.with_pin(irq, |_, _| {})?;
        Err(IrqError::NotConfigurable(irq))
    }

    /// A level-triggered line is ended after its handler (an EOI before it would make the
    /// IOAPIC send the still-asserted line again at once): its handler must not switch
    /// threads. Edge lines, IPIs and the timer are ended before theirs.
    fn set_trigger(&self, irq: IrqNumber, trigger: Trigger) -> Result<(), IrqError> {
        let level = trigger == Trigger::Level;
        self.with_pin(irq, |io, pin| io.set_level(pin, level))?;
        set_level_vector(irq, level);
        Ok(())
    }

    /// Physical destination: the lowest CPU of `cpus` (an empty set is
    /// [`IrqError::NoSuchCpu`] of 64; an xAPIC id above 255 cannot be an IOAPIC target).
    fn route(&self, irq: IrqNumber, cpus: CpuSet) -> Result<(), IrqError> {
        let cpu = cpus.iter().next().ok_or(IrqError::NoSuchCpu(64))?;
        let id = self.cpu_apic_id(cpu)?;
        let id = u8::try_from(id).map_err(|_| IrqError::NoSuchCpu(cpu))?;
        self.with_pin(irq, |io, pin| io.set_destination(pin, id))
    }

    fn line_count(&self) -> u32 {
        state().map_or(0, |s| s.line_end)
    }
}

impl IrqCpuInterface for X86Interrupts {
    /// On x86 the CPU acknowledges by taking the vector; this reports the highest vector in
    /// service on this CPU's local APIC (`None`: nothing in service, e.g. spurious).
    fn acknowledge(&self) -> Option<IrqNumber> {
        apic::highest_in_service(&lapic()).map(IrqNumber::from)
    }

    fn end_of_interrupt(&self, _irq: IrqNumber) {
        lapic().write(reg::EOI, 0);
    }

    /// Vectors 32-254 (255 is the spurious vector). Every CPU of a set is checked before
    /// any IPI is sent.
    fn send_ipi(&self, irq: IrqNumber, target: IpiTarget) -> Result<(), IrqError> {
        let v = u8::try_from(irq)
            .ok()
            .filter(|v| (32..vector::SPURIOUS).contains(v))
            .ok_or(IrqError::NoSuchIrq(irq))?;
        let s = state().ok_or(IrqError::NoSuchIrq(irq))?;
        match target {
            IpiTarget::SelfOnly => {
                s.lapic.send(&Icr::shorthand(v, Shorthand::SelfOnly));
            }
            IpiTarget::AllButSelf => {
                s.lapic.send(&Icr::shorthand(v, Shorthand::AllButSelf));
            }
            IpiTarget::Cpus(set) => {
                for cpu in set.iter() {
                    self.cpu_apic_id(cpu)?;
                }
                for cpu in set.iter() {
                    let id = self.cpu_apic_id(cpu)?;
                    if !s.lapic.send(&Icr::fixed(v, id)) {
                        return Err(IrqError::NoSuchCpu(cpu));
                    }
                }
            }
        }
        Ok(())
    }

    fn cpu_id(&self) -> u32 {
        if state().is_none() {
            return 0;
        }
        // SAFETY: once set up, every CPU running code has its GS block (the boot CPU in
        // `set_up`, the others first thing in `ap_main`).
        unsafe { irqhw::gs_u32_at_0() }
    }
}

impl LocalTimer for X86Interrupts {
    fn irq(&self) -> IrqNumber {
        IrqNumber::from(vector::TIMER)
    }

    fn arm_at(&self, deadline_ns: u64) {
        let Some(s) = state() else { return };
        match s.timer {
            TimerMode::TscDeadline => {
                let tsc = apic::tsc_at(
                    deadline_ns,
                    PLATFORM.tsc_at_entry(),
                    TSC_HZ.load(Ordering::Relaxed),
                );
                // SAFETY: the deadline MSR only arms the local timer.
                unsafe { irqhw::wrmsr(irqhw::TSC_DEADLINE_MSR, tsc.max(1)) };
            }
            TimerMode::OneShot(hz) => {
                this_cpu().deadline.store(deadline_ns, Ordering::Relaxed);
                let delta = deadline_ns.saturating_sub(PLATFORM.monotonic_ns());
                s.lapic
                    .write(reg::TIMER_INITIAL, apic::one_shot_count(delta, hz));
            }
        }
    }

    fn disarm(&self) {
        let Some(s) = state() else { return };
        match s.timer {
            // SAFETY: the deadline MSR only arms the local timer; 0 disarms.
            TimerMode::TscDeadline => unsafe { irqhw::wrmsr(irqhw::TSC_DEADLINE_MSR, 0) },
            TimerMode::OneShot(_) => {
                s.lapic.write(reg::TIMER_INITIAL, 0);
                this_cpu().deadline.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Interrupts for X86Interrupts {
    fn distributor(&self) -> &dyn IrqDistributor {
        self
    }

    fn cpu_interface(&self) -> &dyn IrqCpuInterface {
        self
    }

    fn timer(&self) -> &dyn LocalTimer {
        self
    }

    /// Vectors 32-254; 255 is the spurious vector.
    fn register_handler(&self, irq: IrqNumber, handler: IrqHandler) -> Result<(), IrqError> {
        if !(32..u32::from(vector::SPURIOUS)).contains(&irq) {
            return Err(IrqError::NoSuchIrq(irq));
        }
        HANDLERS.register(irq, handler)
    }

    fn free_ipi(&self) -> IrqNumber {
        IrqNumber::from(vector::FREE_IPI)
    }

    fn enable_on_this_cpu(&self) {
        irqhw::irq_enable();
    }

    fn cpu_count(&self) -> u32 {
        state().map_or(1, |s| s.madt.cpu_count as u32)
    }

    fn mask(&self) -> usize {
        irqhw::irq_save()
    }

    fn restore(&self, state: usize) {
        irqhw::irq_restore(state);
    }

    fn wait_for_interrupt(&self) {
        irqhw::wait_for_interrupt();
    }

    fn interrupted_registers(&self) -> Option<InterruptedRegisters> {
        let frame = core::ptr::NonNull::new(this_cpu().interrupted_frame.load(Ordering::Relaxed))?;
        // SAFETY: a non-null frame is the one `irq_entry` got from the stubs for the
        // interrupt whose handler runs on this CPU: 21 words on its stack (the 15 saved
        // registers, the vector, the CPU's 5), alive and aligned until that handler
        // returns, where it is replaced; `FRAME_LAYOUT` names only those words.
        Some(unsafe { InterruptedRegisters::new(frame, &FRAME_LAYOUT) })
    }

    fn start_cpu(&self, cpu: u32, entry: fn(u32) -> !) -> Result<(), CpuStartError> {
        let (s, apic_id) = cpu_apic_id(cpu)?;
        let index = cpu as usize;
        if cpu == 0 || STARTING[index].swap(true, Ordering::AcqRel) {
            return Err(CpuStartError::AlreadyOn(cpu));
        }
        let [stack, df_stack] = [(0, AP_STACK_SIZE), (1, AP_DF_STACK_SIZE)].map(|(which, size)| {
            let slot = &STACKS[index][which];
            let top = slot.load(Ordering::Relaxed);
            if top != 0 {
                return Some(top);
            }
            let top = alloc_stack(size)?;
            slot.store(top, Ordering::Relaxed);
            Some(top)
        });
        let (Some(stack), Some(df_stack)) = (stack, df_stack) else {
            STARTING[index].store(false, Ordering::Release);
            return Err(CpuStartError::Refused(-12)); // ENOMEM
        };
        while START_LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        for (slot, value) in CONTROL.iter().zip(irqhw::control_registers()) {
            slot.store(value, Ordering::Relaxed);
        }
        AP_ENTRY.store(entry as usize, Ordering::Relaxed);
        AP_DF_STACK.store(df_stack, Ordering::Relaxed);
        irqhw::AP_STACK.store(stack, Ordering::Relaxed);
        irqhw::AP_CPU.store(u64::from(cpu), Ordering::Release);
        // SAFETY: the trampoline page is conventional memory below 1 MiB that the board
        // never hands out (memory_regions start at 1 MiB) and nothing else uses.
        unsafe { irqhw::install_trampoline() };

        let page = (irqhw::TRAMPOLINE_PAGE >> 12) as u8;
        s.lapic.send(&Icr::init(apic_id));
        spin_ns(10_000_000);
        let mut started = false;
        // The second start-up IPI only when the first was not taken (MP spec).
        for wait_ns in [200_000_000, 1_000_000_000] {
            s.lapic.send(&Icr::startup(page, apic_id));
            let deadline = PLATFORM.monotonic_ns() + wait_ns;
            while !ONLINE[index].load(Ordering::Acquire) && PLATFORM.monotonic_ns() < deadline {
                core::hint::spin_loop();
            }
            if ONLINE[index].load(Ordering::Acquire) {
                started = true;
                break;
            }
        }
        START_LOCK.store(false, Ordering::Release);
        if started {
            Ok(())
        } else {
            // Back to wait-for-start-up, so it cannot run later on stale slots.
            s.lapic.send(&Icr::init(apic_id));
            STARTING[index].store(false, Ordering::Release);
            Err(CpuStartError::Refused(-110)) // ETIMEDOUT
        }
    }
}

/// The board state and the local APIC id of CPU `cpu` (`NoSuchCpu` when the MADT lists none).
fn cpu_apic_id(cpu: u32) -> Result<(&'static State, u32), CpuStartError> {
    let s = state().ok_or(CpuStartError::NoSuchCpu(cpu))?;
    let apic_id = *s
        .madt
        .cpus()
        .get(cpu as usize)
        .ok_or(CpuStartError::NoSuchCpu(cpu))?;
    Ok((s, apic_id))
}

fn spin_ns(ns: u64) {
    let end = PLATFORM.monotonic_ns() + ns;
    while PLATFORM.monotonic_ns() < end {
        core::hint::spin_loop();
    }
}

/// A stack of `size` bytes from the heap (never freed: the CPU runs for good); its top.
fn alloc_stack(size: usize) -> Option<u64> {
    let layout = core::alloc::Layout::from_size_align(size, 16).ok()?;
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { alloc::alloc::alloc(layout) };
    (!base.is_null()).then(|| base as u64 + size as u64)
}

/// A secondary CPU's first Rust code, on its own stack, interrupts masked.
pub(crate) extern "C" fn ap_main(cpu: u64) -> ! {
    let index = cpu as usize;
    let control = CONTROL.each_ref().map(|c| c.load(Ordering::Relaxed));
    // SAFETY: the boot CPU's values, stored by `start_cpu` before the start-up IPI.
    unsafe { irqhw::load_control_registers(control) };
    // SAFETY: slot `index` belongs to this CPU alone (one CPU per number, started once);
    // the double-fault stack was allocated for it by `start_cpu`.
    unsafe {
        let tables = &mut (*CPU_TABLES.0.get())[index];
        arch::load_cpu_tables(tables, AP_DF_STACK.load(Ordering::Relaxed));
    }
    // The `syscall` MSRs are per CPU: a thread running here traps like one on CPU 0.
    arch::syscall_cpu_init();
    PER_CPU[index].cpu.store(cpu as u32, Ordering::Relaxed);
    // SAFETY: this CPU's own static block.
    unsafe { irqhw::set_gs_base(&raw const PER_CPU[index] as u64) };
    let lapic = lapic();
    if lapic.x2apic() {
        irqhw::enable_x2apic();
    }
    apic::init(&lapic);
    PER_CPU[index]
        .apic_id
        .store(apic::apic_id(&lapic), Ordering::Relaxed);
    cpu_init_timer();
    let entry = AP_ENTRY.load(Ordering::Relaxed);
    ONLINE[index].store(true, Ordering::Release);
    // SAFETY: `start_cpu` stored a `fn(u32) -> !` here before starting this CPU, and holds
    // the start lock until it sees ONLINE, so it is this CPU's entry.
    let entry = unsafe { core::mem::transmute::<usize, fn(u32) -> !>(entry) };
    entry(cpu as u32)
}
