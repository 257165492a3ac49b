//! Interrupt hardware access: local APIC registers (xAPIC MMIO, x2APIC MSRs), IOAPIC MMIO,
//! the 8259 PICs, interrupt masking, the per-CPU pointer in GS, and the real-mode
//! trampoline secondary CPUs start in. The logic using these is in [`crate::interrupts`].
//!
//! # The secondary CPUs' trampoline
//!
//! A start-up IPI starts a CPU in real mode at `page << 12`, so the first instructions must
//! lie below 1 MiB. `uk_ap_trampoline` (16-bit code, position-independent within its page)
//! is copied to [`TRAMPOLINE_PAGE`]; it loads the boot GDT, sets CR4.PAE, CR3 (the boot
//! page tables, which every CPU shares), EFER.LME and CR0.PG|PE, and far-jumps straight to
//! 64-bit code in the image (`uk_ap_long`), which takes the stack and CPU number the boot
//! CPU left in [`AP_STACK`] and [`AP_CPU`] and calls `interrupts::ap_main`. CPUs start one
//! at a time, so one pair of slots is enough.

use core::arch::{asm, global_asm};
use core::sync::atomic::AtomicU64;

use crate::apic::{ApicRegs, Icr, reg};
use crate::ioapic::IoApicRegs;

/// Physical page the trampoline is copied to (0x8000: conventional memory the loaders
/// leave free; below 1 MiB, so never among the usable memory regions).
pub const TRAMPOLINE_PAGE: u64 = 0x8000;

/// Stack top for the CPU being started.
pub static AP_STACK: AtomicU64 = AtomicU64::new(0);
/// Logical number of the CPU being started.
pub static AP_CPU: AtomicU64 = AtomicU64::new(0);

global_asm!(
    r#"
    .pushsection .text.uk_ap_trampoline, "ax", @progbits
    .code16
    .global uk_ap_trampoline, uk_ap_trampoline_end
uk_ap_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl uk_ap_gdt_ptr - uk_ap_trampoline
    movl $0x20, %eax            /* PAE */
    movl %eax, %cr4
    movl $uk_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx      /* EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl $0x80000011, %eax      /* PG | ET | PE: straight to compatibility mode */
    movl %eax, %cr0
    ljmpl $0x08, $uk_ap_long
    .balign 8
uk_ap_gdt_ptr:
    .word 23                    /* null, code 0x08, data 0x10 of the boot GDT */
    .long uk_gdt
uk_ap_trampoline_end:

    .code64
uk_ap_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq {stack}(%rip), %rsp
    movq {cpu}(%rip), %rdi
    xorl %ebp, %ebp
    call {ap_main}
    ud2
    .popsection
    "#,
    stack = sym AP_STACK,
    cpu = sym AP_CPU,
    ap_main = sym crate::interrupts::ap_main,
    options(att_syntax)
);

unsafe extern "C" {
    static uk_ap_trampoline: u8;
    static uk_ap_trampoline_end: u8;
}

/// Copies the trampoline to [`TRAMPOLINE_PAGE`].
///
/// # Safety
///
/// The page must be mapped RAM that nothing else uses (see [`TRAMPOLINE_PAGE`]).
pub unsafe fn install_trampoline() {
    let start = &raw const uk_ap_trampoline;
    let len = &raw const uk_ap_trampoline_end as usize - start as usize;
    // SAFETY: the source is the trampoline's bytes in the image; the destination is the
    // free page (caller), identity-mapped; they do not overlap (the image is above 1 MiB).
    unsafe { core::ptr::copy_nonoverlapping(start, TRAMPOLINE_PAGE as *mut u8, len) };
}

/// Reads MSR `msr`.
pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: callers read architectural MSRs CPUID said exist; rdmsr has no memory effects.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

/// Writes MSR `msr`.
///
/// # Safety
///
/// The write must not break memory safety (no MSR here remaps memory or changes paging).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) }
}

/// `IA32_APIC_BASE`.
pub const APIC_BASE_MSR: u32 = 0x1b;
/// `IA32_TSC_DEADLINE`.
pub const TSC_DEADLINE_MSR: u32 = 0x6e0;
/// `IA32_GS_BASE`.
const GS_BASE_MSR: u32 = 0xc000_0101;

/// Switches the calling CPU's local APIC to x2APIC mode (EN | EXTD).
pub fn enable_x2apic() {
    let base = rdmsr(APIC_BASE_MSR);
    // SAFETY: setting EXTD with EN set is the architectural switch to x2APIC mode (the
    // caller checked CPUID); it moves the registers from MMIO to MSRs, nothing else.
    unsafe { wrmsr(APIC_BASE_MSR, base | 1 << 11 | 1 << 10) };
}

/// xAPIC registers by MMIO at `base` (identity-mapped, below 4 GiB).
pub struct Xapic {
    /// Physical (= virtual) address of the register page.
    pub base: u64,
}

impl ApicRegs for Xapic {
    fn read(&self, offset: u32) -> u32 {
        // SAFETY: `base` is the APIC page from IA32_APIC_BASE, identity-mapped MMIO; the
        // offsets are the registers of `apic::reg` (aligned, inside the page).
        unsafe { core::ptr::read_volatile((self.base + u64::from(offset)) as *const u32) }
    }
    fn write(&self, offset: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + u64::from(offset)) as *mut u32, value) }
    }
    fn send(&self, icr: &Icr) -> bool {
        let Some((high, low)) = icr.xapic() else {
            return false;
        };
        let state = irq_save();
        // The previous IPI leaves the ICR when its delivery is done; bounded wait.
        for _ in 0..100_000 {
            if self.read(reg::ICR_LOW) & crate::apic::ICR_SEND_PENDING == 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // Two writes: no interrupt handler of this CPU may send in between (masked).
        self.write(reg::ICR_HIGH, high);
        self.write(reg::ICR_LOW, low);
        irq_restore(state);
        true
    }
    fn x2apic(&self) -> bool {
        false
    }
}

/// x2APIC registers by MSRs.
pub struct X2apic;

impl ApicRegs for X2apic {
    fn read(&self, offset: u32) -> u32 {
        rdmsr(reg::x2apic_msr(offset)) as u32
    }
    fn write(&self, offset: u32, value: u32) {
        // SAFETY: x2APIC register MSRs only program the local APIC.
        unsafe { wrmsr(reg::x2apic_msr(offset), value.into()) }
    }
    fn send(&self, icr: &Icr) -> bool {
        // SAFETY: the ICR MSR only sends an IPI.
        unsafe { wrmsr(reg::x2apic_msr(reg::ICR_LOW), icr.x2apic()) };
        true
    }
    fn x2apic(&self) -> bool {
        true
    }
}

/// IOAPIC registers by MMIO at `base` (IOREGSEL at +0, IOWIN at +0x10). The caller
/// serialises index/window pairs.
pub struct IoApicMmio {
    /// Physical (= virtual) address of the registers.
    pub base: u64,
}

impl IoApicRegs for IoApicMmio {
    fn read(&self, index: u32) -> u32 {
        // SAFETY: `base` is an IOAPIC the MADT lists, identity-mapped MMIO below 4 GiB.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, index);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }
    fn write(&self, index: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, index);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
        }
    }
}

fn outb(port: u16, value: u8) {
    // SAFETY: port output reaches devices only (see `arch`).
    unsafe { x86_64::instructions::port::Port::<u8>::new(port).write(value) }
}

/// Remaps the two 8259 PICs to vectors `base..base + 16` (so a stray one never looks like a
/// CPU exception) and masks every line: the IOAPIC serves the ISA lines. Harmless where
/// there is no PIC (the ports decode to nothing).
pub fn mask_pic(base: u8) {
    const ICW1_INIT_ICW4: u8 = 0x11;
    for (command, data, offset, wiring) in [(0x20, 0x21, base, 1 << 2), (0xa0, 0xa1, base + 8, 2)] {
        outb(command, ICW1_INIT_ICW4);
        outb(data, offset); // ICW2: vector base
        outb(data, wiring); // ICW3: slave on IRQ 2 / slave id 2
        outb(data, 0x01); // ICW4: 8086 mode
        outb(data, 0xff); // OCW1: mask everything
    }
}

/// Masks interrupts on the calling CPU; returns whether they were enabled (1) or not (0).
#[inline]
pub fn irq_save() -> usize {
    let enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    usize::from(enabled)
}

/// Restores a state from [`irq_save`] exactly: enabled (1) or masked (0).
#[inline]
pub fn irq_restore(state: usize) {
    if state != 0 {
        x86_64::instructions::interrupts::enable();
    } else {
        x86_64::instructions::interrupts::disable();
    }
}

/// Unmasks interrupts on the calling CPU.
pub fn irq_enable() {
    x86_64::instructions::interrupts::enable();
}

/// Masks interrupts on the calling CPU.
pub fn irq_disable() {
    x86_64::instructions::interrupts::disable();
}

/// With interrupts masked: unmasks and halts atomically (an interrupt pending at the `sti`
/// is taken after the `hlt` starts, thanks to the `sti` shadow), then masks again.
pub fn wait_for_interrupt() {
    // SAFETY: sti; hlt; cli only changes IF and waits; interrupt handlers preserve every
    // register (see the stubs).
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Points GS at the calling CPU's per-CPU block.
///
/// # Safety
///
/// `block` must stay valid for good and be the calling CPU's own.
pub unsafe fn set_gs_base(block: u64) {
    // SAFETY: GS base is used by nothing else in the image (ring 0 only, no swapgs);
    // guaranteed valid by the caller.
    unsafe { wrmsr(GS_BASE_MSR, block) };
}

/// The first 32 bits of the calling CPU's per-CPU block (its logical number).
///
/// # Safety
///
/// [`set_gs_base`] must have run on this CPU.
#[inline]
pub unsafe fn gs_u32_at_0() -> u32 {
    let value: u32;
    // SAFETY: GS points to the per-CPU block (caller); a 4-byte read at its start.
    unsafe {
        asm!("mov {0:e}, gs:[0]", out(reg) value, options(nostack, readonly, preserves_flags))
    };
    value
}

/// The control registers a secondary CPU copies from the boot CPU: CR0, CR4, XCR0 (0 when
/// CR4.OSXSAVE is clear).
pub fn control_registers() -> [u64; 3] {
    let cr0 = x86_64::registers::control::Cr0::read_raw();
    let cr4 = x86_64::registers::control::Cr4::read_raw();
    let xcr0 = if cr4 & (1 << 18) != 0 {
        let (low, high): (u32, u32);
        // SAFETY: xgetbv with ecx = 0 reads XCR0; allowed since CR4.OSXSAVE is set.
        unsafe {
            asm!("xgetbv", in("ecx") 0, out("eax") low, out("edx") high, options(nomem, nostack))
        };
        u64::from(low) | u64::from(high) << 32
    } else {
        0
    };
    [cr0, cr4, xcr0]
}

/// Loads the boot CPU's CR4, XCR0 and CR0 (from [`control_registers`]) on a secondary CPU.
///
/// # Safety
///
/// `values` must come from [`control_registers`] on the boot CPU: the same paging mode and
/// features on a CPU of the same kind.
pub unsafe fn load_control_registers(values: [u64; 3]) {
    let [cr0, cr4, xcr0] = values;
    // SAFETY: the same settings the boot CPU runs with (caller); paging stays as it is
    // (PAE, PG and CR3 already match).
    unsafe {
        asm!("mov cr4, {}", in(reg) cr4, options(nostack));
        if cr4 & (1 << 18) != 0 {
            asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32,
                 options(nomem, nostack));
        }
        asm!("mov cr0, {}", in(reg) cr0, options(nostack));
    }
}
