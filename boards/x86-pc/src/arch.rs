//! Everything that touches the machine: the PVH entry trampoline and exception stubs
//! (assembly), the boot-time storage (page tables, stacks), port and MMIO access, the system
//! tables, the PIT, and the ways out. All assembly and hardware access of the board is here.
//!
//! # Entry
//!
//! QEMU's PVH loader (the `pvh.bin` option ROM on `pc`, qboot on `microvm`) jumps to
//! `uk_pvh_start` in 32-bit protected mode with paging off, flat segments and `ebx` holding
//! the physical address of `struct hvm_start_info`. The trampoline:
//!
//! 1. reads the TSC (time zero of the clock) — the very first instruction;
//! 2. builds the identity map of the first 4 GiB with 2 MiB pages (PML4 -> one PDPT -> four
//!    page directories, all in the image's `.uk_noinit` area), sets CR4.PAE (and OSFXSR,
//!    OSXMMEXCPT so SSE works; OSXSAVE with XCR0 = x87|SSE, plus AVX where CPUID offers it,
//!    when CPUID.1:ECX.XSAVE is set, so uk-context picks XSAVEOPT/XSAVE), CR3, EFER.LME,
//!    then CR0.PG|WP|NE|MP (EM cleared);
//! 3. loads the GDT (null, 64-bit code 0x08, data 0x10, TSS 0x18) and far-jumps to 64-bit
//!    code, loads the data segments and the boot stack;
//! 4. zeroes `.bss` and calls [`crate::boot::boot_main`] with the start info address and the
//!    TSC of step 1.
//!
//! # Exceptions
//!
//! 32 stubs of 16 bytes each push a zero error code where the CPU does not push one, then
//! the vector number, and jump to a common path that saves the 15 general registers and
//! calls [`crate::boot::exception_entry`] with a pointer to the resulting
//! [`ExceptionFrame`](crate::report::ExceptionFrame), which never returns. The stubs of the
//! exceptions offered to a fault hook ([`crate::report::OFFERED_VECTORS`]: `#DE`, `#BP`,
//! `#UD`, `#GP`, `#PF`) have a path of their own that calls
//! [`crate::boot::recoverable_fault_entry`] instead: when that returns (the hook recovered
//! the fault), the path restores every register from the frame, drops the vector and error
//! code and returns to the faulting code with `iretq`.
//! Every vector but the double fault runs on the interrupted stack; the double fault runs
//! on its own (IST 1 of the TSS), so an overflow of the boot stack into its unmapped guard
//! page is reported instead of ending in a triple fault.

#[cfg(feature = "ktest")]
use core::arch::asm;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::instructions::port::Port;
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::structures::tss::TaskStateSegment;

use crate::clock::PitRead;
use crate::pageprot;
use crate::report::Landmark;
use crate::serial::PortIo;
use crate::tables;

/// Bytes of the boot stack (the application's `main` runs on it). Unoptimised builds move
/// large values through several stack temporaries (an allocator's control block is about
/// 16 KiB), so a debug image gets twice the room.
pub const BOOT_STACK_SIZE: usize = if cfg!(debug_assertions) { 256 } else { 128 } * 1024;
/// Bytes of the double-fault stack.
pub const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;
/// Page tables available for splitting 2 MiB pages into 4 KiB ones (guard pages).
const PT_POOL_PAGES: usize = 4;

global_asm!(
    r#"
    /* XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical entry point for PVH loaders. QEMU reads
       the descriptor as a 64-bit word, so it is a .quad. */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad uk_pvh_start
    .balign 4
    .popsection

    .pushsection .text.uk_boot, "ax", @progbits
    .code32
    .global uk_pvh_start
    .type uk_pvh_start, @function
uk_pvh_start:
    rdtsc
    movl %eax, %esi
    movl %edx, %ebp
    cld

    /* PML4 and PDPT: zero both (adjacent, 8 KiB), then one entry each level. Plain stores,
       32 bytes a round: under TCG each `rep stos` iteration costs as much as a loop round. */
    movl $uk_pml4, %edi
    leal 8192(%edi), %ecx
    xorl %eax, %eax
7:  movl %eax, (%edi)
    movl %eax, 4(%edi)
    movl %eax, 8(%edi)
    movl %eax, 12(%edi)
    movl %eax, 16(%edi)
    movl %eax, 20(%edi)
    movl %eax, 24(%edi)
    movl %eax, 28(%edi)
    addl $32, %edi
    cmpl %ecx, %edi
    jb 7b
    movl $uk_pdpt + 3, %eax
    movl %eax, uk_pml4
    movl $uk_pd + 3, %eax
    movl $uk_pdpt, %edi
    movl $4, %ecx
2:  movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    decl %ecx
    jnz 2b

    /* Four page directories: 2048 x 2 MiB = 4 GiB, present | writable | huge; two
       entries a round (the high halves are 0 below 4 GiB). */
    movl $uk_pd, %edi
    movl $0x83, %eax
    xorl %edx, %edx
    movl $1024, %ecx
3:  movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $0x200000, %eax
    movl %eax, 8(%edi)
    movl %edx, 12(%edi)
    addl $0x200000, %eax
    addl $16, %edi
    decl %ecx
    jnz 3b

    movl %cr4, %eax
    orl $0x620, %eax            /* PAE | OSFXSR | OSXMMEXCPT */
    movl %eax, %cr4

    /* XSAVE: when CPUID.1:ECX.XSAVE is set, set CR4.OSXSAVE and enable x87 | SSE in XCR0,
       plus AVX when CPUID.1:ECX.AVX is set and leaf 0xD offers it; uk-context then picks
       XSAVEOPT/XSAVE. CPUID clobbers ebx, which holds the start info: edi keeps it. */
    movl %ebx, %edi
    movl $1, %eax
    xorl %ecx, %ecx
    cpuid
    btl $26, %ecx               /* XSAVE */
    jnc 8f
    movl %cr4, %eax
    orl $0x40000, %eax          /* OSXSAVE */
    movl %eax, %cr4
    movl $3, %eax               /* x87 | SSE */
    btl $28, %ecx               /* AVX */
    jnc 9f
    movl $0xd, %eax
    xorl %ecx, %ecx
    cpuid                       /* eax: the XCR0 bits the CPU supports */
    andl $7, %eax               /* keep x87 | SSE | AVX ... */
    orl $3, %eax                /* ... of which x87 and SSE are architectural */
9:  xorl %edx, %edx
    xorl %ecx, %ecx
    xsetbv
8:  movl %edi, %ebx
    movl $uk_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx      /* EFER */
    rdmsr
    orl $0x100, %eax            /* LME */
    wrmsr
    movl %cr0, %eax
    andl $0xfffffffb, %eax      /* no EM: x87/SSE instructions run */
    orl $0x80010023, %eax       /* PG | WP | NE | MP | PE */
    movl %eax, %cr0

    lgdt uk_gdt_ptr
    ljmpl $0x08, $4f

    .code64
4:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    leaq uk_boot_stack_top(%rip), %rsp

    /* Zero .bss (64-byte aligned at both ends by the linker script), 64 bytes a round. */
    leaq __uk_bss_start(%rip), %rdi
    leaq __uk_bss_end(%rip), %rcx
    xorl %eax, %eax
    jmp 6f
5:  movq %rax, (%rdi)
    movq %rax, 8(%rdi)
    movq %rax, 16(%rdi)
    movq %rax, 24(%rdi)
    movq %rax, 32(%rdi)
    movq %rax, 40(%rdi)
    movq %rax, 48(%rdi)
    movq %rax, 56(%rdi)
    addq $64, %rdi
6:  cmpq %rcx, %rdi
    jb 5b

    movl %ebx, %edi             /* start info (zero-extended) */
    movl %esi, %esi
    movl %ebp, %ebp
    shlq $32, %rbp
    orq %rbp, %rsi              /* TSC at entry */
    xorl %ebp, %ebp
    call {boot_main}
    ud2
    .size uk_pvh_start, . - uk_pvh_start
    .popsection

    /* Exception entry: 32 stubs of 16 bytes. */
    .pushsection .text.uk_vectors, "ax", @progbits
    .balign 16
    .global uk_exception_stubs
uk_exception_stubs:
    uk_vector = 0
    .rept 32
    .balign 16
    .if ((0x60227d00 >> uk_vector) & 1) == 0
    .byte 0x6a, 0               /* push $0: no CPU error code */
    .endif
    .byte 0x6a, uk_vector       /* push $vector */
    .if (({offered} >> uk_vector) & 1) == 1
    jmp uk_recoverable_fault_common
    .else
    jmp uk_exception_common
    .endif
    uk_vector = uk_vector + 1
    .endr

    /* The 15 general registers over the vector: the `ExceptionFrame` (report.rs). The
       CPU aligned RSP to 16 bytes before its 5 words; with the error code, the vector and
       these 15 the frame is 22 words, so RSP is 16-byte aligned at the calls below. */
    .macro uk_save_registers
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    .endm

uk_exception_common:
    uk_save_registers
    movq %rsp, %rdi
    cld
    call {exception_entry}
    ud2

    /* The exceptions offered to the fault hook (#DE, #BP, #UD, #GP, #PF):
       `recoverable_fault_entry` returns when the hook recovered the fault. Every register
       comes back from the frame, which the hook may have changed (RIP and RSP among them:
       `iretq` pops both), the vector and error code are dropped, and the faulting code
       resumes. The frame lies on the faulting thread's stack (no IST), so a hook that
       switched threads meanwhile finds it there when this thread runs again. */
uk_recoverable_fault_common:
    uk_save_registers
    movq %rsp, %rdi
    cld
    call {recoverable_fault_entry}
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp              /* the vector and the error code */
    iretq
    .popsection

    /* External interrupts (vectors 32-255): 224 stubs of 8 bytes push the vector (as a
       sign-extended byte: the dispatcher takes its low 8 bits) and
       jump to a common path that saves the 15 general registers (the callee-saved ones
       too, although the Rust dispatcher keeps them itself, so that the frame holds all of
       the interrupted code's registers for `Interrupts::interrupted_registers`, and what a
       signal handler changes there is what that code gets back; the image is soft-float,
       so no FP/SIMD state is touched) and calls the dispatcher on the interrupted stack. A
       handler may switch threads: this frame then waits on the old thread's stack until it
       runs again. */
    .pushsection .text.uk_irq_vectors, "ax", @progbits
    .balign 16
    .global uk_irq_stubs
uk_irq_stubs:
    uk_vector = 32
    .rept 224
    .balign 8
    .byte 0x6a, uk_vector       /* push $vector (imm8) */
    jmp uk_irq_common
    uk_vector = uk_vector + 1
    .endr

uk_irq_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq 120(%rsp), %rdi        /* the vector */
    movq %rsp, %rsi             /* the frame: saved registers, vector, then the CPU's */
    subq $8, %rsp               /* 16-byte alignment at the call */
    cld
    call {irq_entry}
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $8, %rsp               /* the vector */
    iretq
    .popsection

    /* GDT: null, kernel code (64-bit), kernel data, TSS (16 bytes, filled at boot). */
    .pushsection .data.uk_gdt, "aw", @progbits
    .balign 16
    .global uk_gdt
uk_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0
    .quad 0
uk_gdt_ptr:
    .word uk_gdt_ptr - uk_gdt - 1
    .quad uk_gdt
    .popsection

    /* Boot-time storage, never loaded nor zeroed: every byte is written before use. */
    .pushsection .uk_noinit, "aw", @nobits
    .balign 4096
    .global uk_pml4, uk_pdpt, uk_pd, uk_pt_pool
uk_pml4:    .skip 4096
uk_pdpt:    .skip 4096
uk_pd:      .skip 4 * 4096
uk_pt_pool: .skip {pt_pool} * 4096
    .global uk_df_stack_guard, uk_df_stack_top, uk_boot_stack_guard, uk_boot_stack_top
uk_df_stack_guard:   .skip 4096
    .skip {df_stack}
uk_df_stack_top:
uk_boot_stack_guard: .skip 4096
    .skip {boot_stack}
uk_boot_stack_top:
    .popsection
    "#,
    boot_main = sym crate::boot::boot_main,
    exception_entry = sym crate::boot::exception_entry,
    recoverable_fault_entry = sym crate::boot::recoverable_fault_entry,
    offered = const crate::report::OFFERED_VECTORS,
    irq_entry = sym crate::interrupts::irq_entry,
    pt_pool = const PT_POOL_PAGES,
    df_stack = const DOUBLE_FAULT_STACK_SIZE,
    boot_stack = const BOOT_STACK_SIZE,
    options(att_syntax)
);

#[cfg(feature = "ktest")]
global_asm!(
    r#"
    /* A guarded stack for the stack-overflow test case, and a call on another stack. */
    .pushsection .uk_noinit, "aw", @nobits
    .balign 4096
    .global uk_ktest_stack_guard, uk_ktest_stack_top
uk_ktest_stack_guard: .skip 4096
    .skip 16384
uk_ktest_stack_top:
    .popsection

    .pushsection .text.uk_call_on_stack, "ax", @progbits
    .global uk_call_on_stack
uk_call_on_stack:              /* (rdi = stack top, rsi = function) */
    pushq %rbp
    movq %rsp, %rbp
    movq %rdi, %rsp
    callq *%rsi
    movq %rbp, %rsp
    popq %rbp
    retq
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static mut uk_gdt: [u64; 5];
    static uk_exception_stubs: [u8; 32 * 16];
    static uk_irq_stubs: [u8; 224 * 8];
    static mut uk_pdpt: [u64; 512];
    static mut uk_pd: [u64; 4 * 512];
    static mut uk_pt_pool: [[u64; 512]; PT_POOL_PAGES];
    static uk_df_stack_guard: [u8; 4096];
    static uk_df_stack_top: u8;
    static uk_boot_stack_guard: [u8; 4096];
    static __uk_image_start: u8;
    static __uk_image_end: u8;
    #[cfg(feature = "ktest")]
    static uk_ktest_stack_guard: [u8; 4096];
    #[cfg(feature = "ktest")]
    static uk_ktest_stack_top: u8;
    #[cfg(feature = "ktest")]
    fn uk_call_on_stack(top: usize, function: extern "C" fn());
}

/// The image in memory, from its first byte to the end of its stacks and page tables.
pub fn image_range() -> (u64, u64) {
    (
        &raw const __uk_image_start as u64,
        &raw const __uk_image_end as u64,
    )
}

fn page_of<T>(guard: *const T) -> (u64, u64) {
    let start = guard as u64;
    (start, start + tables::PAGE_4K)
}

/// Guard pages the exception report names when CR2 points into one.
pub fn landmarks() -> [Landmark; 4] {
    let (boot, df) = (
        page_of(&raw const uk_boot_stack_guard),
        page_of(&raw const uk_df_stack_guard),
    );
    #[cfg(feature = "ktest")]
    let ktest = page_of(ktest_stack_guard() as *const u8);
    #[cfg(not(feature = "ktest"))]
    let ktest = (0, 0);
    [
        Landmark {
            start: boot.0,
            end: boot.1,
            meaning: "the boot stack guard page: stack overflow",
        },
        Landmark {
            start: ktest.0,
            end: ktest.1,
            meaning: "the ktest stack guard page: stack overflow",
        },
        Landmark {
            start: df.0,
            end: df.1,
            meaning: "the double-fault stack guard page",
        },
        Landmark {
            start: 0,
            end: tables::PAGE_4K,
            meaning: "the unmapped page 0: null pointer",
        },
    ]
}

/// `in`/`out` instructions.
#[derive(Clone, Copy)]
pub struct Pio;

impl PortIo for Pio {
    fn inb(&self, port: u16) -> u8 {
        inb(port)
    }
    fn outb(&self, port: u16, value: u8) {
        outb(port, value)
    }
}

// Port access. Ports on a PC only reach devices; a stray access cannot break memory safety
// of the Rust program (the board never programs DMA), so these are safe wrappers.
fn inb(port: u16) -> u8 {
    // SAFETY: port input has no memory effects (see above).
    unsafe { Port::<u8>::new(port).read() }
}
fn outb(port: u16, value: u8) {
    // SAFETY: port output has no memory effects (see above).
    unsafe { Port::<u8>::new(port).write(value) }
}
fn outw(port: u16, value: u16) {
    // SAFETY: port output has no memory effects (see above).
    unsafe { Port::<u16>::new(port).write(value) }
}
fn inl(port: u16) -> u32 {
    // SAFETY: port input has no memory effects (see above).
    unsafe { Port::<u32>::new(port).read() }
}
fn outl(port: u16, value: u32) {
    // SAFETY: port output has no memory effects (see above).
    unsafe { Port::<u32>::new(port).write(value) }
}

/// The time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a counter; CR4.TSD is clear, so it is allowed at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPUID `leaf`/`subleaf` as (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The 48-byte CPUID brand string (zeroes when the CPU has none).
pub fn cpu_brand() -> [u8; 48] {
    let mut raw = [0u8; 48];
    if cpuid(0x8000_0000, 0)[0] >= 0x8000_0004 {
        for (i, leaf) in (0x8000_0002..=0x8000_0004).enumerate() {
            for (j, reg) in cpuid(leaf, 0).iter().enumerate() {
                let at = i * 16 + j * 4;
                raw[at..at + 4].copy_from_slice(&reg.to_le_bytes());
            }
        }
    }
    raw
}

/// The hypervisor vendor words (EBX, ECX, EDX of CPUID leaf 0x4000_0000), if the CPU says
/// it runs under a hypervisor.
pub fn hypervisor_vendor() -> Option<[u32; 3]> {
    if cpuid(1, 0)[2] & (1 << 31) == 0 {
        return None;
    }
    let [_, ebx, ecx, edx] = cpuid(0x4000_0000, 0);
    Some([ebx, ecx, edx])
}

/// Whether the CPU maps 1 GiB pages (CPUID 0x8000_0001 EDX bit 26).
pub fn has_1g_pages() -> bool {
    cpuid(0x8000_0000, 0)[0] >= 0x8000_0001 && cpuid(0x8000_0001, 0)[3] & (1 << 26) != 0
}

/// Vendor/device dword of PCI 00:00.0 through configuration mechanism #1, or `0xffff_ffff`
/// when nothing decodes the ports (`microvm`).
pub fn pci_host_bridge_id() -> u32 {
    outl(0xcf8, 0x8000_0000);
    inl(0xcfc)
}

/// A cell written only during single-threaded boot (interrupts off, one CPU) and by code
/// that runs strictly before anything reads it.
struct BootCell<T>(UnsafeCell<T>);

// SAFETY: uk-rs boards run one CPU with interrupts off; the cells are written by boot code
// before any reader exists (and afterwards only read by the CPU through the loaded tables).
unsafe impl<T> Sync for BootCell<T> {}

static TSS: BootCell<TaskStateSegment> = BootCell(UnsafeCell::new(TaskStateSegment::new()));
static IDT: BootCell<[[u64; 2]; 256]> = BootCell(UnsafeCell::new([[0; 2]; 256]));

/// Loads the TSS (with the double-fault stack as IST 1) and the IDT with the 32 exception
/// vectors and the 224 external interrupt vectors (see [`crate::interrupts`]). Call once,
/// early in boot.
pub fn load_exception_tables() {
    let tss = TSS.0.get();
    let idt = IDT.0.get();
    // SAFETY: boot runs single-threaded and calls this once, before any exception can use
    // these tables: nobody else references TSS, IDT or the GDT's TSS slot. The stub table is
    // 32 stubs of 16 bytes and 224 of 8 (see the assembly), the IDT is 256 gates, the TSS is 'static and
    // its descriptor is written into the reserved GDT slots 3 and 4 before `ltr`.
    unsafe {
        let df_top = &raw const uk_df_stack_top as u64;
        (*tss).interrupt_stack_table[usize::from(tables::DOUBLE_FAULT_IST - 1)] =
            VirtAddr::new(df_top);
        let limit = (core::mem::size_of::<TaskStateSegment>() - 1) as u32;
        let [low, high] = tables::tss_descriptor(tss as u64, limit);
        let gdt = &raw mut uk_gdt;
        (*gdt)[3] = low;
        (*gdt)[4] = high;
        x86_64::instructions::tables::load_tss(SegmentSelector(tables::TSS_SELECTOR));

        let stubs = &raw const uk_exception_stubs as u64;
        let irq_stubs = &raw const uk_irq_stubs as u64;
        for (vector, gate) in (*idt).iter_mut().enumerate() {
            let ist = if vector as u64 == crate::report::DOUBLE_FAULT {
                tables::DOUBLE_FAULT_IST
            } else {
                0
            };
            let stub = match vector.checked_sub(32) {
                None => stubs + 16 * vector as u64,
                Some(external) => irq_stubs + 8 * external as u64,
            };
            *gate = tables::interrupt_gate(stub, ist);
        }
    }
    load_idt();
}

/// Loads the IDT (the same for every CPU: it is written once, before any other CPU
/// starts, and only read afterwards).
pub fn load_idt() {
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[[u64; 2]; 256]>() - 1) as u16,
        base: VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the IDT is 'static, fully written by `load_exception_tables` on the boot CPU
    // before any caller of this, and its gates point to the stubs above.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// A secondary CPU's own GDT (null, code 0x08, data 0x10, its TSS at 0x18) and TSS.
pub struct CpuTables {
    gdt: [u64; 5],
    tss: TaskStateSegment,
}

impl CpuTables {
    /// Empty (all-zero, so an array of them is `.bss`, not image bytes), filled by
    /// [`load_cpu_tables`].
    pub const fn new() -> Self {
        CpuTables {
            gdt: [0; 5],
            // SAFETY: the TSS is plain integers; all-zero is a valid value (and is replaced
            // by `TaskStateSegment::new()` before use).
            tss: unsafe { core::mem::zeroed() },
        }
    }
}

/// Loads `tables` on the calling (secondary) CPU: a copy of the boot GDT's segments with
/// its own TSS, whose IST 1 (the double fault's) is `double_fault_stack_top`, then the IDT.
///
/// # Safety
///
/// `tables` must be used by the calling CPU only, for good (the CPU keeps pointers to
/// them), and `double_fault_stack_top` must be the top of a stack of its own.
pub unsafe fn load_cpu_tables(tables_: &'static mut CpuTables, double_fault_stack_top: u64) {
    tables_.tss = TaskStateSegment::new();
    tables_.tss.interrupt_stack_table[usize::from(tables::DOUBLE_FAULT_IST - 1)] =
        VirtAddr::new(double_fault_stack_top);
    let limit = (core::mem::size_of::<TaskStateSegment>() - 1) as u32;
    let [low, high] = tables::tss_descriptor(&raw const tables_.tss as u64, limit);
    // SAFETY: the boot GDT's code and data descriptors are constants written by the
    // assembly; reading them races with nothing.
    let boot = unsafe { (&raw const uk_gdt).read() };
    tables_.gdt = [boot[0], boot[1], boot[2], low, high];
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
        base: VirtAddr::new(tables_.gdt.as_ptr() as u64),
    };
    // SAFETY: the GDT has the same code/data selectors as the one the CPU runs on (the
    // hidden parts of CS/SS stay valid), lives for good (caller), and its TSS descriptor
    // is available (never loaded before), so `ltr` succeeds.
    unsafe {
        x86_64::instructions::tables::lgdt(&pointer);
        x86_64::instructions::tables::load_tss(SegmentSelector(tables::TSS_SELECTOR));
    }
    load_idt();
}

/// Page tables taken from the pool so far.
static PT_USED: BootCell<usize> = BootCell(UnsafeCell::new(0));

/// Unmaps the 4 KiB page at `addr` (below 4 GiB), splitting its 2 MiB page if needed.
/// Returns `false` when no page table was left to split with. The caller flushes the TLB.
fn unmap_4k(addr: u64) -> bool {
    let pd_index = (addr >> 21) as usize;
    if pd_index >= 4 * 512 {
        return false;
    }
    // SAFETY: boot is single-threaded; the page directories and the pool are the live
    // tables, owned by this module and only changed here. A split 2 MiB page is replaced by
    // a table mapping exactly the same addresses before the PDE is switched, so no access
    // that is running changes its translation except for the page being unmapped, which the
    // caller guarantees is unused.
    unsafe {
        let pd = &raw mut uk_pd;
        let entry = (*pd)[pd_index];
        let table: *mut [u64; 512] = if entry & tables::PTE_HUGE != 0 {
            let used = PT_USED.0.get();
            if *used == PT_POOL_PAGES {
                return false;
            }
            let table = &raw mut uk_pt_pool[*used];
            *used += 1;
            tables::identity_4k(&mut *table, (pd_index as u64) << 21);
            (*pd)[pd_index] = tables::table_entry(table as u64);
            table
        } else {
            (entry & !0xfff) as *mut [u64; 512]
        };
        (*table)[(addr >> 12) as usize & 511] = 0;
    }
    true
}

/// Unmaps page 0 (null pointers fault) and the guard pages below the stacks. Returns how
/// many could not be unmapped for lack of page tables.
pub fn unmap_guard_pages() -> usize {
    #[cfg(feature = "ktest")]
    let ktest = ktest_stack_guard();
    #[cfg(not(feature = "ktest"))]
    let ktest = u64::MAX;
    let pages = [
        0,
        &raw const uk_boot_stack_guard as u64,
        &raw const uk_df_stack_guard as u64,
        ktest,
    ];
    let missed = pages
        .iter()
        .filter(|&&page| page != u64::MAX && !unmap_4k(page))
        .count();
    x86_64::instructions::tlb::flush_all();
    missed
}

/// Extends the identity map with 1 GiB pages from 4 GiB up to `end` (a multiple of 1 GiB,
/// at most 512 GiB; see [`tables::mapped_end`]).
pub fn map_high_memory(end: u64) {
    let last = (end / tables::PAGE_1G).min(512) as usize;
    // SAFETY: boot is single-threaded and the PDPT is owned by this module; slots 4.. are
    // empty (zeroed at entry), so this adds translations and changes none.
    unsafe {
        let pdpt = &raw mut uk_pdpt;
        for index in 4..last {
            (*pdpt)[index] = tables::identity_1g(index as u64);
        }
    }
    x86_64::instructions::tlb::flush_all();
}

/// The root of the identity map as [`crate::pageprot`] walks it: the page directory
/// pointer table (the PML4's one entry covers the 512 GiB it maps).
pub fn page_table_root() -> u64 {
    &raw const uk_pdpt as u64
}

/// The live page tables as [`pageprot::TableMemory`]: each entry is read and written as an
/// [`AtomicU64`] at its identity-mapped address, writes with `Release` (a new table's
/// entries reach memory before the entry that points to it; x86 keeps stores in order
/// anyway, and the page walker sees them as any other reader) and reads with `Acquire`.
pub struct LiveTables {
    _private: (),
}

impl LiveTables {
    /// Access to the live tables.
    ///
    /// # Safety
    ///
    /// Every table address passed to `read` and `write` must be [`page_table_root`], an
    /// address a present non-huge entry of the live tables points to, or a 4 KiB table the
    /// caller owns (a fresh one from the heap); `pageprot`'s walks pass nothing else. Writes
    /// must be serialised (the `protection` lock) and leave the map identity: they may only
    /// change rights, clear the accessed and dirty bits (an in-image test does) or replace a
    /// huge page with a table mapping the same addresses.
    pub unsafe fn new() -> Self {
        LiveTables { _private: () }
    }

    /// Where entry `index` (reduced to 0-511) of the table at `table` is.
    fn entry(table: u64, index: usize) -> *const AtomicU64 {
        core::ptr::with_exposed_provenance::<AtomicU64>(table as usize)
            .wrapping_add(index % pageprot::ENTRIES)
    }
}

impl pageprot::TableMemory for LiveTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is the root, a live table or a table the caller owns (contract of
        // `new`): identity-mapped, 4 KiB-aligned memory of 512 entries, allocated for the
        // duration of the call, and `entry` keeps the index inside it. `AtomicU64` has the
        // layout of `u64`, and every access to the tables after boot is atomic (here) or
        // the CPU's own page walk.
        unsafe { (*Self::entry(table, index)).load(Ordering::Acquire) }
    }

    fn write(&mut self, table: u64, index: usize, entry: u64) {
        // SAFETY: as in `read`; writes are serialised and keep the map identity (contract
        // of `new`).
        unsafe { (*Self::entry(table, index)).store(entry, Ordering::Release) }
    }
}

/// Invalidates this CPU's TLB entries for the page holding `addr` (of any size) and its
/// paging-structure caches (`invlpg`).
pub fn invalidate_page(addr: u64) {
    x86_64::instructions::tlb::flush(VirtAddr::new_truncate(addr));
}

/// Invalidates this CPU's whole TLB (a CR3 reload; the board sets no global pages).
pub fn flush_tlb() {
    x86_64::instructions::tlb::flush_all();
}

/// The `len` bytes of physical memory at `paddr`, as a slice.
///
/// # Safety
///
/// `paddr..paddr + len` must be identity-mapped RAM that nothing writes while the slice is
/// alive (boot information the loader left behind, read before the heap exists).
pub unsafe fn phys_bytes(paddr: u64, len: usize) -> &'static [u8] {
    // SAFETY: guaranteed by the caller; u8 has no alignment or validity requirements.
    unsafe { core::slice::from_raw_parts(paddr as *const u8, len) }
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

// The 8254 PIT, channel 2 (gate and output through port 0x61, no interrupt line).
const PIT_CH2: u16 = 0x42;
const PIT_CMD: u16 = 0x43;
const PORT_61: u16 = 0x61;
/// Channel 2 (bits 7-6 = 10), low then high byte (5-4 = 11), mode 0 (3-1), binary (0).
const PIT_CH2_MODE0: u8 = 0b1011_0000;
/// Channel 2 (bits 7-6 = 10), counter latch (5-4 = 00).
const PIT_CH2_LATCH: u8 = 0b1000_0000;

/// Starts PIT channel 2 counting down from 0xffff (gate on, speaker off); it wraps to
/// 0xffff after 0 and goes on (55 ms a round). The measurements are [`crate::clock`]'s,
/// reading it through [`pit_read`].
pub fn pit_restart() {
    let gate = inb(PORT_61);
    outb(PORT_61, (gate & !0x02) | 0x01); // speaker off, gate on
    outb(PIT_CMD, PIT_CH2_MODE0);
    outb(PIT_CH2, 0xff);
    outb(PIT_CH2, 0xff);
}

/// Latches channel 2 between two TSC reads and reads the count out. A stall of the CPU
/// between the TSC reads shows as a wide bracket; one while reading the count out does not
/// matter (the latch holds the value).
pub fn pit_read() -> PitRead {
    let before = rdtsc();
    outb(PIT_CMD, PIT_CH2_LATCH);
    let after = rdtsc();
    let low = inb(PIT_CH2);
    let high = inb(PIT_CH2);
    PitRead {
        before,
        after,
        count: u16::from_le_bytes([low, high]),
    }
}

/// Programs PIT channel 0 (ISA IRQ 0) for one interrupt after `count` PIT ticks (mode 0:
/// its output rises once at the terminal count and stays high).
#[cfg(feature = "ktest")]
pub fn pit_ch0_one_shot(count: u16) {
    const PIT_CH0: u16 = 0x40;
    /// Channel 0, low then high byte, mode 0, binary.
    const PIT_CH0_MODE0: u8 = 0b0011_0000;
    outb(PIT_CMD, PIT_CH0_MODE0);
    let [low, high] = count.to_le_bytes();
    outb(PIT_CH0, low);
    outb(PIT_CH0, high);
}

/// Ends the run with `code` through isa-debug-exit (QEMU exits with `code << 1 | 1`).
/// Returns only if the device is not there.
pub fn debug_exit(code: u8) {
    outl(0xf4, code.into());
}

/// Requests ACPI S5 through the PIIX4/ICH9 PM1a control register at 0x604 (as SeaBIOS
/// programs the PM base on QEMU `pc` and `q35`): SLP_TYP 0 | SLP_EN.
pub fn acpi_pm_power_off() {
    outw(0x604, 0x2000);
}

/// Physical address of the sleep control register of QEMU `microvm`'s ACPI generic event
/// device (GED registers at 0xfea0_0200).
const MICROVM_GED_SLEEP_CTL: u64 = 0xfea0_0200;

/// Requests S5 through the `microvm` GED sleep control register: SLP_TYP 5, SLP_EN.
pub fn microvm_ged_power_off() {
    // SAFETY: 0xfea0_0200 is identity-mapped (first 4 GiB) MMIO of the GED on microvm, and
    // unassigned (writes ignored) elsewhere; it is not RAM of this program.
    unsafe { core::ptr::write_volatile(MICROVM_GED_SLEEP_CTL as *mut u8, (5 << 2) | (1 << 5)) }
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// Executes `ud2` (a test of the exception path).
#[cfg(feature = "ktest")]
pub fn ud2() {
    // SAFETY: ud2 raises #UD; the handler never returns here (the case fails and the run
    // continues on a fresh stack), and nothing is left half-done.
    unsafe { asm!("ud2", options(nostack)) }
}

/// Reads a byte at `addr` with a volatile load (to probe mappings in tests).
///
/// # Safety
///
/// `addr` must be mapped readable memory without read side effects, or unmapped so that
/// the read faults (which the exception path reports).
#[cfg(feature = "ktest")]
pub unsafe fn probe(addr: u64) -> u8 {
    // SAFETY: guaranteed by the caller.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

/// Calls `function` on the guarded ktest stack.
#[cfg(feature = "ktest")]
pub fn call_on_ktest_stack(function: extern "C" fn()) {
    // SAFETY: the ktest stack is reserved for this and used by nothing else; the callee runs
    // with interrupts off on one CPU, and the stub restores the caller's stack on return.
    unsafe { uk_call_on_stack(&raw const uk_ktest_stack_top as usize, function) }
}

/// The ktest stack's guard page.
#[cfg(feature = "ktest")]
pub fn ktest_stack_guard() -> u64 {
    &raw const uk_ktest_stack_guard as u64
}

// The `syscall` instruction: uk-syscall sets up EFER.SCE, STAR, LSTAR and SFMASK in
// `uk_syscall_cpu_init` when the image links it. The board knows the symbol only weakly (it
// does not depend on uk-syscall): without it the address reads as 0 and nothing happens.
global_asm!(
    r#"
    .pushsection .rodata.uk_syscall_hook, "a", @progbits
    .balign 8
    /* A weak reference (not `.weak`, which would clash with the definition when LTO puts
       both in one module): 0 when nothing defines the hook. */
    .weakref __uk_syscall_cpu_init_weak, uk_syscall_cpu_init
uk_syscall_cpu_init_address:
    .quad __uk_syscall_cpu_init_weak
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The address of `uk_syscall_cpu_init`, or 0 when the image does not link uk-syscall.
    static uk_syscall_cpu_init_address: usize;
}

/// Whether the image links uk-syscall (its per-CPU `syscall` set-up hook).
#[cfg(feature = "ktest")]
pub fn syscall_linked() -> bool {
    // SAFETY: a word the linker filled in: the hook's address or 0.
    unsafe { core::ptr::read_volatile(&raw const uk_syscall_cpu_init_address) != 0 }
}

/// Lets uk-syscall set up the `syscall` instruction on this CPU, if the image links it.
pub fn syscall_cpu_init() {
    // SAFETY: a word the linker filled in: the hook's address or 0.
    let address = unsafe { core::ptr::read_volatile(&raw const uk_syscall_cpu_init_address) };
    if address != 0 {
        // SAFETY: a non-zero address is uk-syscall's `extern "C" fn()` hook, which only
        // writes the syscall MSRs of this CPU (the GDT is loaded: it reads CS and SS).
        let hook = unsafe { core::mem::transmute::<usize, extern "C" fn()>(address) };
        hook();
    }
}
