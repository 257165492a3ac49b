//! Interrupts on `virt`: the GIC the device tree names (v2 or v3, `uk-gic`), the IRQ
//! entry's Rust half, the virtual generic timer as the per-CPU [`LocalTimer`], secondary
//! CPUs through PSCI `CPU_ON`, and [`uk_hal::irq::Interrupts`] over all of it.
//!
//! The IRQ vector (assembly, `asm`) saves the caller-saved registers (FP/SIMD included) on
//! the *interrupted thread's* stack (`SP_EL0`) and calls [`irq_entry`]: acknowledge, end of
//! interrupt, then the handler, until the CPU interface reports spurious (1023, never
//! ended). Ending before dispatching lets a handler switch threads (the scheduler's tick
//! preempts from inside the timer handler) without leaving the GIC's running priority
//! raised; interrupts stay masked throughout, so nothing nests. An interrupt with no handler
//! is logged once per line and ended.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::registers::{
    CNTV_CTL_EL0, CNTV_CVAL_EL0, MAIR_EL1, MPIDR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1,
    Writeable,
};
use uk_gic::regs::{MmioFrame, SystemRegisters};
use uk_gic::{CpuTable, Gic, GicLayout, GicVersion, Gicv2, Gicv3};
use uk_hal::irq::{
    CpuStartError, GENERAL_REGISTERS, HandlerTable, InterruptedRegisters, Interrupts,
    IrqCpuInterface, IrqDistributor, IrqError, IrqHandler, IrqNumber, LocalTimer, RegisterSlot,
    Trigger,
};

use super::asm::{self, Psci};
use crate::clock;

/// The GIC as the board drives it.
type BoardGic = Gic<MmioFrame, MmioFrame, MmioFrame, SystemRegisters>;

/// The virtual timer's PPI when the device tree does not say (`/timer`, third entry:
/// PPI 11).
pub const DEFAULT_TIMER_PPI: IrqNumber = 27;

/// The virtual timer's INTID in use (from the device tree).
static TIMER_PPI: AtomicU32 = AtomicU32::new(DEFAULT_TIMER_PPI);

fn timer_ppi() -> IrqNumber {
    TIMER_PPI.load(Ordering::Relaxed)
}
/// The first SGI offered to applications ([`Interrupts::free_ipi`]); SGIs 1-15 are free
/// but for SGI 7, uk-sched's remote wake-up once its `irq::install` ran.
pub const FREE_IPI: IrqNumber = 1;
/// PSCI `CPU_ON` (SMC64).
const PSCI_CPU_ON: u32 = 0xc400_0003;
/// Boot stack of a secondary CPU.
const SECONDARY_STACK: usize = 64 * 1024;
/// Exception stack of a secondary CPU.
const SECONDARY_EXCEPTION_STACK: usize = 16 * 1024;
/// Interrupt lines the handler table covers (every INTID below the special ones).
const LINES: usize = 1020;

static GIC: spin::Once<BoardGic> = spin::Once::new();
static HANDLERS: HandlerTable<LINES> = HandlerTable::new();
/// One bit per line: already logged as unhandled.
static LOGGED: [AtomicU32; LINES.div_ceil(32)] = [const { AtomicU32::new(0) }; LINES.div_ceil(32)];
/// Unhandled interrupts so far (all lines).
static UNHANDLED: AtomicU64 = AtomicU64::new(0);

/// The board's interrupts; [`super::QemuVirt`] hands them out once the GIC is up.
pub static INTERRUPTS: BoardInterrupts = BoardInterrupts {
    cpus: spin::Once::new(),
    online: [const { AtomicBool::new(false) }; uk_gic::MAX_CPUS],
    time_zero: AtomicU64::new(0),
    frequency: AtomicU32::new(0),
    psci: spin::Once::new(),
};

/// [`Interrupts`] on `virt`.
pub struct BoardInterrupts {
    cpus: spin::Once<CpuTable>,
    online: [AtomicBool; uk_gic::MAX_CPUS],
    time_zero: AtomicU64,
    frequency: AtomicU32,
    psci: spin::Once<Option<Psci>>,
}

/// Sets the GIC up on the boot CPU: distributor, this CPU's interface, the timer PPI.
/// `time_zero` and `frequency` define the clock the timer's deadlines are on.
pub(super) fn init(
    layout: GicLayout,
    timer: Option<IrqNumber>,
    mpidrs: &[u64],
    psci: Option<Psci>,
    time_zero: u64,
    frequency: u32,
) -> Result<(), uk_gic::GicError> {
    let cpus = CpuTable::new(mpidrs)?;
    // Only a PPI can be a per-CPU timer.
    if let Some(ppi) = timer.filter(|irq| (16..32).contains(irq)) {
        TIMER_PPI.store(ppi, Ordering::Relaxed);
    }
    let (d_base, d_size) = layout.distributor;
    let (c_base, c_size) = layout.cpu_side;
    // SAFETY: the device tree names these frames for the GIC, and the identity map covers
    // the low GiB as Device memory; only this driver touches them.
    let gicd = unsafe { MmioFrame::new(d_base as usize, d_size as usize) };
    // SAFETY: as above.
    let cpu_side = unsafe { MmioFrame::new(c_base as usize, c_size as usize) };
    let gic = match layout.version {
        GicVersion::V2 => Gic::V2(Gicv2::new(gicd, cpu_side, SystemRegisters, cpus)),
        GicVersion::V3 => Gic::V3(Gicv3::new(
            gicd,
            cpu_side,
            c_size as usize,
            SystemRegisters,
            cpus,
        )),
    };
    gic.init_distributor()?;
    let gic = GIC.call_once(|| gic);
    let board = &INTERRUPTS;
    board.cpus.call_once(|| cpus);
    board.psci.call_once(|| psci);
    board.time_zero.store(time_zero, Ordering::Relaxed);
    board.frequency.store(frequency, Ordering::Relaxed);
    board.online[0].store(true, Ordering::Relaxed);
    init_this_cpu(gic)
}

/// Per CPU: the CPU interface (redistributor on v3), the timer disarmed, its PPI on.
fn init_this_cpu(gic: &BoardGic) -> Result<(), uk_gic::GicError> {
    gic.init_cpu()?;
    GenericTimer.disarm();
    // The errors are impossible here: its PPI exists on every GIC and this CPU's interface
    // (redistributor) was just found.
    let _ = gic.set_trigger(timer_ppi(), Trigger::Level);
    let _ = gic.set_priority(timer_ppi(), uk_gic::DEFAULT_PRIORITY);
    let _ = gic.enable(timer_ppi());
    Ok(())
}

/// The GIC, once [`init`] succeeded.
pub(super) fn ready() -> bool {
    GIC.is_completed()
}

/// Unhandled interrupts taken so far.
pub fn unhandled_count() -> u64 {
    UNHANDLED.load(Ordering::Relaxed)
}

/// Where the IRQ frame (`asm`) keeps each general register, in Linux's order
/// ([`uk_hal::irq::GENERAL_REGISTERS`]): `x0`-`x18` in words 0-18, `x29` and `x30` in 19
/// and 20, `ELR_EL1` (the PC) in 21, `SPSR_EL1` (PSTATE, reported only) in 22, `x19`-`x28`
/// after the SIMD registers in 90-99; the interrupted SP is where the frame ends (the
/// entry pushes it right below), reported only.
const FRAME_LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = {
    use RegisterSlot::{AddressOfWord, ReadOnlyWord, Word};
    let mut layout = [Word(0); GENERAL_REGISTERS];
    let mut x = 0;
    while x < 31 {
        layout[x] = Word(match x {
            0..=18 => x as u16,
            19..=28 => 90 + (x as u16 - 19),
            _ => 19 + (x as u16 - 29),
        });
        x += 1;
    }
    layout[31] = AddressOfWord((super::asm::IRQ_FRAME_SIZE / 8) as u16);
    layout[32] = Word(21);
    layout[33] = ReadOnlyWord(22);
    layout
};

/// Per CPU: the frame of the interrupt whose handler runs
/// ([`Interrupts::interrupted_registers`]), null outside handlers.
static INTERRUPTED_FRAME: [AtomicPtr<usize>; uk_gic::MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; uk_gic::MAX_CPUS];

/// The calling CPU's slot of [`INTERRUPTED_FRAME`].
fn interrupted_frame_slot() -> &'static AtomicPtr<usize> {
    let cpu = GIC.get().map_or(0, |gic| gic.cpu_id() as usize);
    &INTERRUPTED_FRAME[cpu.min(uk_gic::MAX_CPUS - 1)]
}

/// The IRQ vector's Rust half, on the interrupted thread's stack (`frame`), interrupts
/// masked.
pub(super) extern "C" fn irq_entry(frame: *mut u64) {
    let Some(gic) = GIC.get() else {
        return;
    };
    // The handlers may ask for the interrupted registers (and change them). A handler that
    // switches threads comes back here when this thread runs again, and puts back what
    // this interrupt found.
    let outer = interrupted_frame_slot().swap(frame.cast::<usize>(), Ordering::Relaxed);
    uk_gic::dispatch::handle_pending(gic, &HANDLERS, unhandled);
    interrupted_frame_slot().store(outer, Ordering::Relaxed);
}

/// An interrupt nobody handles: counted, logged once per line, and silenced where it could
/// repeat forever (a level-triggered line stays asserted): the timer is disarmed, another
/// PPI or SPI disabled (on this CPU, for a PPI) until a handler is registered for it.
#[cold]
fn unhandled(irq: IrqNumber) {
    UNHANDLED.fetch_add(1, Ordering::Relaxed);
    if irq == timer_ppi() {
        GenericTimer.disarm();
    } else if irq >= 16
        && let Some(gic) = GIC.get()
    {
        let _ = gic.disable(irq);
    }
    let Some(word) = LOGGED.get(irq as usize / 32) else {
        return;
    };
    let bit = 1 << (irq % 32);
    if word.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        uk_rt::log::warn!("qemu-virt: interrupt {irq} has no handler; acknowledged and ignored");
    }
}

/// The virtual generic timer of the calling CPU (`CNTV_*_EL0`, its PPI).
pub struct GenericTimer;

impl LocalTimer for GenericTimer {
    fn irq(&self) -> IrqNumber {
        timer_ppi()
    }

    fn arm_at(&self, deadline_ns: u64) {
        let board = &INTERRUPTS;
        let ticks = clock::ns_to_ticks(deadline_ns, board.frequency.load(Ordering::Relaxed));
        let at = board
            .time_zero
            .load(Ordering::Relaxed)
            .saturating_add(ticks);
        CNTV_CVAL_EL0.set(at);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }

    fn disarm(&self) {
        CNTV_CTL_EL0.set(0);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }
}

impl Interrupts for BoardInterrupts {
    fn distributor(&self) -> &dyn IrqDistributor {
        GIC.get()
            .expect("interrupts are handed out only once the GIC is up")
    }

    fn cpu_interface(&self) -> &dyn IrqCpuInterface {
        GIC.get()
            .expect("interrupts are handed out only once the GIC is up")
    }

    fn timer(&self) -> &dyn LocalTimer {
        &GenericTimer
    }

    /// Registers `handler` and (for a PPI or SPI) enables the line, in case it was disabled
    /// for want of a handler (a PPI: on the calling CPU).
    fn register_handler(&self, irq: IrqNumber, handler: IrqHandler) -> Result<(), IrqError> {
        HANDLERS.register(irq, handler)?;
        if irq >= 16 {
            self.distributor().enable(irq)?;
        }
        Ok(())
    }

    fn free_ipi(&self) -> IrqNumber {
        FREE_IPI
    }

    fn enable_on_this_cpu(&self) {
        // SAFETY: unmasking IRQs only lets the vectors (installed at boot) run.
        unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, nomem)) };
    }

    fn cpu_count(&self) -> u32 {
        self.cpus.get().map_or(1, CpuTable::count)
    }

    fn start_cpu(&self, cpu: u32, entry: fn(u32) -> !) -> Result<(), CpuStartError> {
        start_secondary(self, cpu, entry)
    }

    fn mask(&self) -> usize {
        irq_save() as usize
    }

    fn restore(&self, state: usize) {
        irq_restore(state as u64);
    }

    fn interrupted_registers(&self) -> Option<InterruptedRegisters> {
        let frame = core::ptr::NonNull::new(interrupted_frame_slot().load(Ordering::Relaxed))?;
        // SAFETY: a non-null frame is the one `irq_entry` got from the IRQ entry for the
        // interrupt whose handler runs on this CPU: `IRQ_FRAME_SIZE` bytes on the
        // interrupted stack, alive and aligned until that handler returns, where it is
        // replaced; `FRAME_LAYOUT` reads and writes only words inside it.
        Some(unsafe { InterruptedRegisters::new(frame, &FRAME_LAYOUT) })
    }

    fn wait_for_interrupt(&self) {
        // SAFETY: `wfi` wakes on a pending interrupt even while masked; the unmask window
        // then takes it (its handler runs on this stack) and the mask closes it again.
        unsafe {
            core::arch::asm!(
                "wfi",
                "msr daifclr, #2",
                "isb",
                "msr daifset, #2",
                options(nostack)
            )
        };
    }
}

/// What a secondary CPU needs before it can run Rust: read by the assembly with the MMU
/// and caches off (so the boot CPU cleans it to the point of coherency first).
#[repr(C)]
pub(super) struct StartBlock {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
    stack_top: u64,
    exception_stack_top: u64,
    cpu: u64,
    entry: fn(u32) -> !,
}

fn start_secondary(
    board: &BoardInterrupts,
    cpu: u32,
    entry: fn(u32) -> !,
) -> Result<(), CpuStartError> {
    let cpus = board.cpus.get().ok_or(CpuStartError::NoSuchCpu(cpu))?;
    let mpidr = cpus.mpidr(cpu).ok_or(CpuStartError::NoSuchCpu(cpu))?;
    let Some(Some(psci)) = board.psci.get().copied() else {
        return Err(CpuStartError::Refused(-1));
    };
    if board.online[cpu as usize].swap(true, Ordering::AcqRel) {
        return Err(CpuStartError::AlreadyOn(cpu));
    }
    let stack = alloc_stack(SECONDARY_STACK);
    let exception_stack = alloc_stack(SECONDARY_EXCEPTION_STACK);
    let (Some(stack), Some(exception_stack)) = (stack, exception_stack) else {
        board.online[cpu as usize].store(false, Ordering::Release);
        return Err(CpuStartError::Refused(-2));
    };
    // The exception stack gets level-3 tables now, while this CPU is not running: page
    // protection never splits the block under it later, which the exception entry could
    // not survive (it stores there before saving ELR_EL1, see `protect`).
    let exception_stack_base = exception_stack - SECONDARY_EXCEPTION_STACK as u64;
    if super::protect::map_with_pages(exception_stack_base, exception_stack).is_err() {
        board.online[cpu as usize].store(false, Ordering::Release);
        return Err(CpuStartError::Refused(-2));
    }
    let block = alloc::boxed::Box::new(StartBlock {
        mair: MAIR_EL1.get(),
        tcr: TCR_EL1.get(),
        ttbr0: TTBR0_EL1.get(),
        sctlr: SCTLR_EL1.get(),
        stack_top: stack,
        exception_stack_top: exception_stack,
        cpu: u64::from(cpu),
        entry,
    });
    let block = alloc::boxed::Box::into_raw(block);
    let start = block as u64;
    asm::clean_dcache(start, start + core::mem::size_of::<StartBlock>() as u64);
    let result = psci.call3(
        PSCI_CPU_ON,
        mpidr,
        asm::__uk_secondary_start as *const () as u64,
        start,
    ) as i64;
    match result {
        0 => Ok(()),
        error => {
            board.online[cpu as usize].store(false, Ordering::Release);
            // SAFETY: the CPU did not start, so nothing else has the block.
            drop(unsafe { alloc::boxed::Box::from_raw(block) });
            Err(if error == -4 {
                CpuStartError::AlreadyOn(cpu)
            } else {
                CpuStartError::Refused(error as i32)
            })
        }
    }
}

/// A stack of `size` bytes that lives for the rest of the run; its top.
fn alloc_stack(size: usize) -> Option<u64> {
    let layout = core::alloc::Layout::from_size_align(size, 16).ok()?;
    // SAFETY: the layout is non-zero-sized.
    let base = unsafe { alloc::alloc::alloc(layout) };
    (!base.is_null()).then(|| base as u64 + size as u64)
}

/// A secondary CPU's first Rust code, on its own stack with the MMU on, at EL1.
pub(super) extern "C" fn secondary_entry(block: *const StartBlock) -> ! {
    // SAFETY: the boot CPU built the block, leaked it for this CPU and does not touch it
    // again.
    let block = unsafe { &*block };
    let cpu = block.cpu as u32;
    let entry = block.entry;
    let gic = GIC.get().expect("secondary CPUs start after the GIC");
    if let Err(e) = init_this_cpu(gic) {
        uk_rt::log::error!("qemu-virt: CPU {cpu} (MPIDR {:#x}): {e}", MPIDR_EL1.get());
        loop {
            aarch64_cpu::asm::wfe();
        }
    }
    entry(cpu)
}

/// Masks IRQs on this CPU and returns the `DAIF` value from before, for [`irq_restore`].
/// Memory accesses are not moved across it (no `nomem`), so what a caller does after it
/// (taking a lock) stays after it.
pub(crate) fn irq_save() -> u64 {
    let daif: u64;
    // SAFETY: reads DAIF and masks IRQs; nothing else changes.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nostack)) };
    daif
}

/// Sets IRQs on this CPU back to what `daif` (from [`irq_save`]) says: unmasked or masked
/// (masked again when something in between, a thread switch say, unmasked them).
pub(crate) fn irq_restore(daif: u64) {
    if daif & (1 << 7) == 0 {
        // SAFETY: unmasking IRQs only lets the vectors (installed at boot) run.
        unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
    } else {
        // SAFETY: masking IRQs has no effect but deferring them.
        unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
    }
}
