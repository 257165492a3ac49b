//! Interrupt controllers, split as the hardware is.
//!
//! Both GICs and the x86 APICs have a shared side that decides which interrupt lines exist,
//! how they trigger and which CPUs they reach (the GIC distributor, the IOAPIC), and a per-CPU
//! side that takes an interrupt, ends it and sends inter-processor interrupts (the GIC CPU
//! interface or ICC registers, the local APIC). The traits follow that split so a driver maps
//! onto them one to one:
//!
//! - [`IrqDistributor`]: enable, disable, priority, trigger, routing of one line.
//! - [`IrqCpuInterface`]: acknowledge, end of interrupt, SGI/IPI to a set of CPUs.
//! - [`LocalTimer`]: the per-CPU one-shot timer that drives sleeps and preemption.
//! - [`HandlerTable`]: which function handles which line; lock-free, so registering never
//!   races with an interrupt being dispatched.
//! - [`InterruptedRegisters`]: the interrupted code's registers, as a board's interrupt
//!   entry saved them ([`Interrupts::interrupted_registers`]): read and, where the board's
//!   return path takes them back, written.
//!
//! Every fallible call returns an [`IrqError`] and leaves the hardware as it was.

use core::sync::atomic::{AtomicUsize, Ordering};

/// An interrupt number as the controller numbers it (GIC INTID; x86 vector).
pub type IrqNumber = u32;

/// How a line signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered: one interrupt per rising edge (or message).
    Edge,
    /// Level-sensitive: pending while the device holds the line.
    Level,
}

/// A set of logical CPUs, one bit each (CPU 0 is bit 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub u64);

impl CpuSet {
    /// The set holding only `cpu`.
    pub const fn single(cpu: u32) -> Self {
        Self(1 << cpu)
    }
    /// Whether `cpu` is in the set.
    pub const fn contains(&self, cpu: u32) -> bool {
        cpu < 64 && self.0 & (1 << cpu) != 0
    }
    /// Iterates over the CPUs of the set in ascending order.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&cpu| self.contains(cpu))
    }
}

/// Which CPUs a software-generated interrupt goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiTarget {
    /// The listed CPUs.
    Cpus(CpuSet),
    /// Every CPU but the sender.
    AllButSelf,
    /// The sender only.
    SelfOnly,
}

/// Why an interrupt-controller call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// The controller has no such interrupt number.
    NoSuchIrq(IrqNumber),
    /// The interrupt exists but this setting does not apply to it (for example the trigger
    /// of an SGI, which is always edge).
    NotConfigurable(IrqNumber),
    /// The CPU set names a CPU the controller does not know.
    NoSuchCpu(u32),
    /// A handler is already registered for the line.
    HandlerBusy(IrqNumber),
}

impl core::fmt::Display for IrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSuchIrq(irq) => write!(f, "interrupt {irq} does not exist on this controller"),
            Self::NotConfigurable(irq) => write!(f, "interrupt {irq} cannot take this setting"),
            Self::NoSuchCpu(cpu) => write!(f, "CPU {cpu} is not known to the controller"),
            Self::HandlerBusy(irq) => write!(f, "interrupt {irq} already has a handler"),
        }
    }
}

/// The shared side of an interrupt controller (GIC distributor, IOAPIC).
pub trait IrqDistributor: Sync {
    /// Lets `irq` reach the CPUs it is routed to.
    fn enable(&self, irq: IrqNumber) -> Result<(), IrqError>;
    /// Masks `irq`.
    fn disable(&self, irq: IrqNumber) -> Result<(), IrqError>;
    /// Sets the priority of `irq` (0 is the most urgent; the controller may drop low bits).
    fn set_priority(&self, irq: IrqNumber, priority: u8) -> Result<(), IrqError>;
    /// Sets how `irq` triggers.
    fn set_trigger(&self, irq: IrqNumber, trigger: Trigger) -> Result<(), IrqError>;
    /// Routes `irq` to `cpus` (a controller that routes to one CPU takes the lowest).
    fn route(&self, irq: IrqNumber, cpus: CpuSet) -> Result<(), IrqError>;
    /// One past the highest interrupt number the controller has.
    fn line_count(&self) -> u32;
}

/// The per-CPU side of an interrupt controller (GIC CPU interface, local APIC). Its methods
/// act on the CPU that calls them.
pub trait IrqCpuInterface: Sync {
    /// Takes the highest-priority pending interrupt; `None` when it was spurious (GIC 1023),
    /// which must not be ended.
    fn acknowledge(&self) -> Option<IrqNumber>;
    /// Ends `irq`, taken by [`IrqCpuInterface::acknowledge`] on this CPU.
    fn end_of_interrupt(&self, irq: IrqNumber);
    /// Sends software-generated interrupt `irq` to `target`.
    fn send_ipi(&self, irq: IrqNumber, target: IpiTarget) -> Result<(), IrqError>;
    /// The logical number of the calling CPU.
    fn cpu_id(&self) -> u32;
}

/// A per-CPU one-shot timer (arm generic timer, APIC timer / TSC deadline).
pub trait LocalTimer: Sync {
    /// The interrupt the timer raises on this CPU.
    fn irq(&self) -> IrqNumber;
    /// Raises the timer interrupt once, at or after `deadline_ns` on the [`crate::Clock`]'s
    /// scale; replaces any earlier arming.
    fn arm_at(&self, deadline_ns: u64);
    /// Cancels an armed deadline.
    fn disarm(&self);
}

/// Why a secondary CPU could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuStartError {
    /// The machine has no such CPU.
    NoSuchCpu(u32),
    /// The CPU is running already.
    AlreadyOn(u32),
    /// The firmware or the CPU refused (PSCI error code, INIT/SIPI timeout).
    Refused(i32),
}

/// A board's interrupt machinery as one object, so board-independent code (the scheduler's
/// timer wiring, an example measuring IPI latency) reaches it through
/// [`crate::Platform::interrupts`].
pub trait Interrupts: Sync {
    /// The shared side (GIC distributor, IOAPIC).
    fn distributor(&self) -> &dyn IrqDistributor;
    /// The calling CPU's side (GIC CPU interface / ICC registers, local APIC).
    fn cpu_interface(&self) -> &dyn IrqCpuInterface;
    /// The calling CPU's one-shot timer.
    fn timer(&self) -> &dyn LocalTimer;
    /// Registers `handler` for `irq` on every CPU.
    fn register_handler(&self, irq: IrqNumber, handler: IrqHandler) -> Result<(), IrqError>;
    /// A software-generated interrupt number free for applications (an SGI on the GIC, an
    /// IPI vector on x86).
    fn free_ipi(&self) -> IrqNumber;
    /// Unmasks interrupts on the calling CPU.
    fn enable_on_this_cpu(&self);
    /// The number of CPUs the machine has (QEMU `-smp`).
    fn cpu_count(&self) -> u32;
    /// Starts CPU `cpu` on a stack of its own; it runs `entry(cpu)` with interrupts masked
    /// and its CPU interface and timer initialised.
    fn start_cpu(&self, cpu: u32, entry: fn(u32) -> !) -> Result<(), CpuStartError>;
    /// Masks interrupts on the calling CPU and returns the previous state for
    /// [`Interrupts::restore`].
    fn mask(&self) -> usize;
    /// Restores a state returned by [`Interrupts::mask`] on the same CPU.
    fn restore(&self, state: usize);
    /// Called with interrupts masked: unmasks and waits, atomically, until an interrupt has
    /// been taken (its handler has run), then masks again and returns. An interrupt that
    /// became pending before the call ends the wait at once (aarch64 `wfi` wakes on a
    /// pending interrupt even while masked; x86 `sti; hlt` cannot lose one).
    fn wait_for_interrupt(&self);
    /// The registers of the code the interrupt being handled on the calling CPU
    /// interrupted, as its entry saved them in its frame on the interrupted stack; `None`
    /// outside an interrupt handler or on a board that does not say (the default). Meant
    /// for the handler's own use: a process layer reports them to a signal handler and
    /// lets it change where and how the code resumes, as `sigreturn` does. Valid until that
    /// handler returns (see [`InterruptedRegisters`]).
    fn interrupted_registers(&self) -> Option<InterruptedRegisters> {
        None
    }
}

/// How many general registers [`InterruptedRegisters`] names, numbered as Linux's
/// `ucontext_t` orders them, so a process layer copies them one to one: on x86_64 the
/// `gregs` from `REG_R8` (0) to `REG_EFL` (17: `r8`-`r15`, `rdi`, `rsi`, `rbp`, `rbx`,
/// `rdx`, `rax`, `rcx`, `rsp`, `rip`, `eflags`); on aarch64 `regs[0..31]` (`x0`-`x30`),
/// then `sp` (31), `pc` (32) and `pstate` (33).
pub const GENERAL_REGISTERS: usize = if cfg!(target_arch = "aarch64") {
    34
} else {
    18
};

/// The program counter's number among the [`GENERAL_REGISTERS`] (`REG_RIP`, `pc`).
pub const PC_REGISTER: usize = if cfg!(target_arch = "aarch64") {
    32
} else {
    16
};

/// The stack pointer's number among the [`GENERAL_REGISTERS`] (`REG_RSP`, `sp`).
pub const SP_REGISTER: usize = if cfg!(target_arch = "aarch64") {
    31
} else {
    15
};

/// Where a board's interrupt frame keeps one register ([`InterruptedRegisters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterSlot {
    /// In the frame's word `n`; what is written there is what the interrupted code gets
    /// back when the interrupt returns.
    Word(u16),
    /// In the frame's word `n`, reported only: the return path does not take a changed
    /// value (flags and processor state, whose privileged bits must stay the kernel's).
    ReadOnlyWord(u16),
    /// The address of the frame's word `n`, reported only: the interrupted stack pointer
    /// of a board whose entry pushes its frame right below it.
    AddressOfWord(u16),
    /// Not saved by the board.
    Absent,
}

/// The registers an interrupt's entry saved for the code it interrupted: a frame on the
/// interrupted stack and the board's table of where each of the [`GENERAL_REGISTERS`] lies
/// in it.
///
/// A table rather than one frame layout for all boards: each entry path saves what it
/// needs in the order its instructions favour (the CPU's own frame on x86, `stp` pairs on
/// aarch64), and the reader needs only a word index per register.
#[derive(Clone, Copy, Debug)]
pub struct InterruptedRegisters {
    frame: core::ptr::NonNull<usize>,
    layout: &'static [RegisterSlot; GENERAL_REGISTERS],
}

impl InterruptedRegisters {
    /// The registers in `frame`, laid out as `layout` says.
    ///
    /// # Safety
    ///
    /// Every word `layout` names as [`RegisterSlot::Word`] or [`RegisterSlot::ReadOnlyWord`]
    /// lies in `frame`'s allocation, aligned, readable and (for `Word`) writable, and stays
    /// so for as long as [`Self::get`] and [`Self::set`] are called: until the interrupt
    /// handler that owns the frame returns.
    pub const unsafe fn new(
        frame: core::ptr::NonNull<usize>,
        layout: &'static [RegisterSlot; GENERAL_REGISTERS],
    ) -> Self {
        Self { frame, layout }
    }

    /// Register `register`'s saved value; `None` for a register the board does not save
    /// or a number past [`GENERAL_REGISTERS`].
    ///
    /// # Safety
    ///
    /// Called while the interrupt handler whose frame this is runs (see [`Self::new`]).
    pub unsafe fn get(&self, register: usize) -> Option<usize> {
        match *self.layout.get(register)? {
            RegisterSlot::Word(word) | RegisterSlot::ReadOnlyWord(word) => {
                // SAFETY: `new`'s contract: the word lies in the live frame, aligned and
                // readable while the handler runs, which the caller promises.
                Some(unsafe { self.frame.add(usize::from(word)).read() })
            }
            RegisterSlot::AddressOfWord(word) => {
                Some(self.frame.as_ptr().wrapping_add(usize::from(word)) as usize)
            }
            RegisterSlot::Absent => None,
        }
    }

    /// Sets register `register` to `value` for the interrupted code's return; `false` (and
    /// nothing written) for a register that is reported only, absent, or past
    /// [`GENERAL_REGISTERS`].
    ///
    /// # Safety
    ///
    /// As [`Self::get`]; and the interrupted code can take the value (a program counter
    /// where code is meant to run, as a signal handler's `sigreturn` chooses).
    pub unsafe fn set(&self, register: usize, value: usize) -> bool {
        match self.layout.get(register) {
            Some(&RegisterSlot::Word(word)) => {
                // SAFETY: `new`'s contract: the word lies in the live frame, aligned and
                // writable while the handler runs, which the caller promises.
                unsafe { self.frame.add(usize::from(word)).write(value) };
                true
            }
            _ => false,
        }
    }
}

/// A handler for one interrupt line; gets the number it was registered for.
pub type IrqHandler = fn(IrqNumber);

/// Handlers by interrupt number, `N` lines, registered and looked up without locks.
pub struct HandlerTable<const N: usize> {
    handlers: [AtomicUsize; N],
}

impl<const N: usize> HandlerTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            handlers: [const { AtomicUsize::new(0) }; N],
        }
    }

    /// Registers `handler` for `irq`; refuses a line that has one or does not exist.
    pub fn register(&self, irq: IrqNumber, handler: IrqHandler) -> Result<(), IrqError> {
        let slot = self
            .handlers
            .get(irq as usize)
            .ok_or(IrqError::NoSuchIrq(irq))?;
        slot.compare_exchange(0, handler as usize, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|_| IrqError::HandlerBusy(irq))
    }

    /// Removes the handler of `irq`, returning whether there was one.
    pub fn unregister(&self, irq: IrqNumber) -> bool {
        self.handlers
            .get(irq as usize)
            .is_some_and(|slot| slot.swap(0, Ordering::AcqRel) != 0)
    }

    /// Runs the handler of `irq`; returns `false` when it has none (the caller logs it and
    /// still ends the interrupt).
    pub fn dispatch(&self, irq: IrqNumber) -> bool {
        let Some(address) = self
            .handlers
            .get(irq as usize)
            .map(|slot| slot.load(Ordering::Acquire))
        else {
            return false;
        };
        if address == 0 {
            return false;
        }
        // SAFETY: non-zero entries are only ever stored by `register` from an `IrqHandler`.
        let handler = unsafe { core::mem::transmute::<usize, IrqHandler>(address) };
        handler(irq);
        true
    }
}

impl<const N: usize> Default for HandlerTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;

    static SEEN: AtomicU32 = AtomicU32::new(0);
    fn record(irq: IrqNumber) {
        SEEN.store(irq, Ordering::Relaxed);
    }

    #[test]
    fn handler_table_registers_dispatches_and_refuses_bad_lines() {
        let table = HandlerTable::<32>::new();
        assert!(!table.dispatch(5));
        table.register(5, record).unwrap();
        assert_eq!(table.register(5, record), Err(IrqError::HandlerBusy(5)));
        assert_eq!(table.register(32, record), Err(IrqError::NoSuchIrq(32)));
        assert!(table.dispatch(5));
        assert_eq!(SEEN.load(Ordering::Relaxed), 5);
        assert!(table.unregister(5));
        assert!(!table.dispatch(5));
        assert!(!table.dispatch(1000));
    }

    #[test]
    fn cpu_sets() {
        let set = CpuSet(0b1010);
        assert_eq!(set.iter().collect::<std::vec::Vec<_>>(), [1, 3]);
        assert!(CpuSet::single(63).contains(63));
        assert!(!set.contains(64));
    }

    /// A frame of eight words: the program counter in word 2 (writable), the flags in word
    /// 3 (reported only), the stack pointer where the frame ends, one register absent and
    /// every other register in word 0.
    static LAYOUT: [RegisterSlot; GENERAL_REGISTERS] = {
        let mut layout = [RegisterSlot::Word(0); GENERAL_REGISTERS];
        layout[PC_REGISTER] = RegisterSlot::Word(2);
        layout[GENERAL_REGISTERS - 1] = RegisterSlot::ReadOnlyWord(3);
        layout[SP_REGISTER] = RegisterSlot::AddressOfWord(8);
        layout[1] = RegisterSlot::Absent;
        layout
    };

    #[test]
    fn interrupted_registers_read_and_write_only_what_the_layout_allows() {
        let mut frame = [10usize, 11, 12, 13, 14, 15, 16, 17];
        let base = core::ptr::NonNull::from(&mut frame).cast::<usize>();
        // SAFETY: `frame` outlives `registers`, and the layout names words 0-3 (and word
        // 8 only by address).
        let registers = unsafe { InterruptedRegisters::new(base, &LAYOUT) };
        let flags = GENERAL_REGISTERS - 1;
        // SAFETY: as above, for every call below.
        unsafe {
            assert_eq!(registers.get(PC_REGISTER), Some(12));
            assert_eq!(registers.get(flags), Some(13));
            assert_eq!(registers.get(0), Some(10));
            assert_eq!(registers.get(1), None);
            assert_eq!(registers.get(GENERAL_REGISTERS), None);
            assert_eq!(
                registers.get(SP_REGISTER),
                Some(base.as_ptr().wrapping_add(8) as usize)
            );
            assert!(registers.set(PC_REGISTER, 99));
            assert!(!registers.set(flags, 0));
            assert!(!registers.set(SP_REGISTER, 0));
            assert!(!registers.set(1, 0));
            assert!(!registers.set(GENERAL_REGISTERS, 0));
        }
        assert_eq!(frame, [10, 11, 99, 13, 14, 15, 16, 17]);
    }
}
