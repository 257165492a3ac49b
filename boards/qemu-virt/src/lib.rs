//! uk-rs board for the QEMU aarch64 `virt` machine.
//!
//! The board brings a `virt` machine from its first instruction to the board-independent
//! runtime (`uk_rt::start`), and implements [`uk_hal::Platform`] for it: a PL011 console, a
//! monotonic clock from the generic timer, the usable memory map and the command line from
//! the device tree, exit with a status through semihosting and power-off through PSCI. CPU
//! exceptions are reported with every register and handed to `uk_rt::fatal_exception`;
//! a thread's memory and alignment faults, undefined instructions and breakpoints are first
//! offered to `uk_hal::fault` (*Faults offered to the hook*).
//!
//! # Booting it
//!
//! An application depends on `uk-app`, which pulls this crate in on `aarch64-unknown-none`;
//! the workspace's `.cargo/config.toml` links with `-Tuk-qemu-virt.ld`, the linker script this
//! crate's build script writes. The image is a static ELF file that QEMU loads directly:
//!
//! ```text
//! cargo build -p helloworld --target aarch64-unknown-none --release
//! qemu-system-aarch64 -machine virt -cpu max -m 64M -nographic -nodefaults -serial stdio \
//!     -no-reboot -semihosting-config enable=on,target=native \
//!     -kernel target/aarch64-unknown-none/release/helloworld -append "hello -- a b"
//! ```
//!
//! `-cpu cortex-a72` works the same, and `-machine virt,virtualization=on` enters the image
//! at EL2 (the board drops to EL1). QEMU's exit status is the image's exit status (semihosting
//! `SYS_EXIT` with `ADP_Stopped_ApplicationExit`); without `-semihosting-config` the board says
//! so on the console and powers off through PSCI instead (status 0).
//!
//! # Boot flow
//!
//! 1. `_start` (assembly, `arch` `asm` module, MMU off): reads `CNTVCT_EL0` after an `isb`
//!    as its first act (time zero of the clock); at EL2 sets `HCR_EL2.RW`, `CNTHCTL_EL2` (EL1
//!    timer and counter access), `CPTR_EL2` (no FP trap), `HSTR_EL2`, `VPIDR/VMPIDR_EL2`,
//!    `SCTLR_EL1`, `SPSR_EL2`/`ELR_EL2` and `eret`s to EL1; enables FP/SIMD (`CPACR_EL1.FPEN`)
//!    before any Rust code (the target keeps values in NEON registers); installs the vectors
//!    (`VBAR_EL1`); runs the kernel on `SP_EL0` (the boot stack) so exceptions land on their own
//!    stack (`SP_EL1`); zeroes `.bss`.
//! 2. `boot` (Rust, still MMU off): fills the translation tables and turns the MMU and the
//!    caches on; records the counter frequency; finds the device tree (`x0` from a Linux-style
//!    loader, else the start of RAM, where QEMU puts it for an ELF image: QEMU 7.2 passes
//!    `x0 = 0` and writes a 1 MiB blob at `0x4000_0000`); reads it ([`devtree`]); maps any
//!    RAM beyond the image's GiB; moves the console to the PL011 the tree names; keeps the
//!    PSCI conduit; hands `PLATFORM` to `uk_rt::start`.
//!
//! EL3 entry (`-machine virt,secure=on` without firmware) is not supported: the CPU parks.
//!
//! # Memory map
//!
//! QEMU writes the device tree at the start of RAM and limits it to the space below the
//! image's lowest address, so the image is linked at [`IMAGE_BASE`] = RAM + 2 MiB. The
//! linker script (written by `build.rs`) lays out, from there: the ELF headers and `.text`
//! (sharing the first page, so the file needs no padding), `.rodata`, `.data`, `.bss`, the
//! boot stack ([`BOOT_STACK_SIZE`]) and the exception stack ([`EXCEPTION_STACK_SIZE`]), each
//! above an unmapped guard page, and the translation tables.
//!
//! The identity map ([`pagetable`]): 4 KiB granule, 39-bit addresses; the low GiB (`virt`'s
//! MMIO) as 2 MiB Device-nGnRE blocks, except its first 128 MiB (`virt`'s flash, unused with
//! `-kernel`; [`pagetable::UNMAPPED_LOW_END`]), left unmapped so that a NULL pointer
//! dereference takes a translation fault (offered to the fault hook like any other, so a C
//! program gets `SIGSEGV`); the image's GiB as Normal write-back memory in 2 MiB blocks, except
//! the image itself, mapped page by page: code read-only and executable, read-only data
//! read-only, guard pages absent, the rest read-write and never executable (`SCTLR_EL1.WXN`
//! on); every other GiB holding RAM as a 1 GiB Normal block. On a CPU with FEAT_MTE2 (QEMU:
//! `-machine virt,mte=on`) Normal memory is Normal *Tagged* (`MAIR` attribute `0xf0`,
//! [`pagetable::mair_el1`]), the mapping the `uk-mte` crate needs to store and check memory
//! tags; it behaves as plain Normal memory until tag checks are turned on. `TCR_EL1.IPS` follows
//! `ID_AA64MMFR0_EL1.PARange`, capped at 48 bits: `-cpu max` reports 52 bits, which a 4 KiB
//! granule cannot use without FEAT_LPA2, `cortex-a72` 44 bits.
//!
//! The usable memory ([`uk_hal::Platform::memory_regions`]) is every memory node's RAM
//! minus the image (stacks and tables included), the device tree blob, `/memreserve/` entries
//! and `/reserved-memory` children, in whole pages ([`memmap`]).
//!
//! # Page protection
//!
//! Once booted, [`uk_hal::Platform::page_protection`] returns the board's
//! [`uk_hal::PageProtection`]: no access, read-only or read-write for whole pages of the
//! usable memory ([`uk_hal::Platform::memory_regions`]; the image, its stacks and tables,
//! the device tree and MMIO are refused with `NotRam`, misaligned or empty ranges with
//! `Unaligned`). The logic is [`pagetable::set_access`], tested on the host; the live
//! tables, the assembly and the exception handler's part are in `arch` (`protect`, `asm`).
//!
//! - **Tables.** The first time a page of a 2 MiB block needs its own rights, the block
//!   becomes a level-3 table of 512 pages; a 1 GiB block becomes a level-2 table of 2 MiB
//!   blocks, with level-3 tables for the 2 MiB blocks the range touches. The new entries
//!   copy the block's attributes bit for bit (`MAIR` index, so Normal or Normal Tagged
//!   memory, shareability, access flag, `nG`, `PXN`/`UXN`); per page only `AP[2]`
//!   (read-only) and validity differ. A page with no access keeps its descriptor with the
//!   valid bit clear, so it comes back with the same attributes. Tables come from the heap
//!   (`alloc_zeroed`, 4 KiB aligned; with the identity map their address is their physical
//!   address) and stay for the rest of the run. The image's 2 MiB blocks are level-3 tables
//!   from boot, so the free pages after the image change in place.
//! - **All or nothing.** The tables are checked, and the new ones a range needs are counted
//!   and allocated, before any descriptor changes; if one cannot be had, those allocated
//!   are freed and the call returns `OutOfTables` with nothing changed. One spin lock, held
//!   with IRQs masked, serialises callers (and `access`).
//! - **Break-before-make.** A new table is written whole, then swapped in for the block in
//!   one `asm!` sequence that uses registers only, with `DAIF` masked: invalid descriptor,
//!   `dsb ish`, `tlbi vaae1is` for the block's address (every CPU), `dsb ish`, table
//!   descriptor, `dsb ish`, `isb`. Nothing in the window touches the block: the code is in
//!   the image, and the descriptor lies outside the block (the level-1 table and the image's
//!   level-2 table are in the image; a level-2 table from the heap lies in another GiB, or
//!   in its own GiB inside a 2 MiB block that got a level-3 table together with it,
//!   [`pagetable::own_block_tables`]). A 1 GiB block is replaced in one break, its new
//!   level-3 tables already in place.
//! - **Other CPUs during the window.** A CPU that touches the block between the break and
//!   the make takes a translation fault. The splitting CPU records the block in a global
//!   before the break and clears the record after the make; the synchronous exception
//!   handler (current-EL vectors) recognises a translation fault with a valid `FAR_EL1`
//!   ([`exception::is_translation_fault`]) inside the recorded block, waits until the record
//!   is cleared, asks the MMU (`AT S1E1R`) whether the address translates now (which also
//!   covers a split that ended before the handler looked) and, if so, returns: the vectors
//!   restore every register (FP/SIMD included) and `eret` to the faulting instruction, which
//!   now succeeds. A fault at an address that still does not translate is reported as
//!   usual. A retried fault overwrites `ELR_EL1` and `SPSR_EL1`, so exception entry and
//!   return code must not touch memory that can be split while those registers hold the
//!   interrupted context: the board's IRQ entry reads them before it stores on the
//!   interrupted thread's stack (parking `x0`/`x1` on the exception stack) and writes them
//!   after its last load from there; a secondary CPU's exception stack (from the heap) gets
//!   level-3 tables before the CPU starts, so no later split breaks it (the boot CPU's is in
//!   the image). uk-syscall's `svc` entry and return path keep the same discipline for a
//!   caller on `SP_EL0`: the entry reads `ELR_EL1`/`SPSR_EL1` before its first store to the
//!   caller's stack and parks them, with `x1`, next to the `x0` the vector stored on
//!   `SP_EL1` (which stays lowered over them until they are read back); the return path
//!   parks them, with the frame's `x0`/`x1`, below `SP_EL1` and writes them after its last
//!   load from the frame. A caller on `SP_EL1` has its frame on the exception stack, which
//!   no split breaks. The in-image cases `svc_entry_survives_a_retried_fault` and
//!   `svc_return_survives_a_retried_fault` (`arch::ktest_svc`) stage a retried fault in each.
//! - **Rights of pages already in a level-3 table** change in place, without
//!   break-before-make: the descriptor, `dsb ishst`, `tlbi vaae1is` per page (`tlbi
//!   vmalle1is` above 64 pages), `dsb ish`, `isb`. The inner-shareable forms reach every
//!   CPU: when `set_access` returns, no CPU uses the old rights.
//! - **Faults.** An access against the rights is a CPU exception with the usual report: a
//!   read of a page with no access is a "translation fault at level 3, on a read", a write
//!   to a read-only page a "permission fault at level 3, on a write", and the `FAR_EL1`
//!   line adds "(protected page: no access)" or "(protected page: read-only)". A thread's
//!   fault is offered to the fault hook first (*Faults offered to the hook*).
//!
//! # Faults offered to the hook
//!
//! The board offers to `uk_hal::fault`'s hook ([`uk_hal::fault::offer`]) a synchronous
//! exception taken from EL1t (a thread, on `SP_EL0`) with IRQs unmasked (`SPSR_EL1.I`
//! clear), when a hook is set, the exception is not a fault the board retries itself (a
//! block being split) and no report is under way ([`exception::offered_fault`]), if it is
//! one of these ([`uk_hal::fault::Fault`]):
//!
//! - a data abort (EC 0x25) or instruction abort (EC 0x21) with a translation fault
//!   (`xFSC` 0b0001LL) or permission fault (0b0011LL) and a valid `FAR_EL1`: `Memory` at
//!   `FAR_EL1` as it is, `Execute` for an instruction abort, else `Write` if `ESR_EL1.WnR`,
//!   else `Read`;
//! - a data abort with an alignment fault (`DFSC` 0b100001): `Misaligned` at `FAR_EL1`,
//!   `Write` or `Read` from `WnR`. The board leaves `SCTLR_EL1.A` clear, so plain loads and
//!   stores to Normal memory may be misaligned; exclusive, acquire/release and atomic
//!   accesses must be naturally aligned (FEAT_LSE2, which `-cpu max` has, relaxes this for
//!   some of them within an aligned 16 bytes), and Device memory accesses always. QEMU's
//!   TCG sets `WnR` for a load-exclusive's alignment fault (a write, then);
//! - a PC alignment fault (EC 0x22, a branch to an address not a multiple of 4):
//!   `Misaligned` at the target (`FAR_EL1`, also the PC), `Execute`;
//! - an exception with an unknown reason (EC 0x00: `udf`, an undefined or unallocated
//!   encoding): `IllegalInstruction` at `ELR_EL1`, the instruction;
//! - a `brk` (EC 0x3c) with any immediate but the trampoline's two (0xfa01, 0xfa02, see
//!   below): `Breakpoint` at `ELR_EL1`, the `brk` itself (the hook moves the PC past it to
//!   go on). Other crates' `brk`s (uk-context's `#0x3c` after a thread's entry returned,
//!   `#1` in tests, LLVM's `#1` for a trap, GCC's `#0x3e8` for `__builtin_trap`) are
//!   offered like any, and reported as before when the hook answers `Unhandled`.
//!
//! Nothing else is offered: not tag check faults (MTE; reported with both tags), access
//! flag, address size or external aborts, SP alignment faults (EC 0x26), other classes, the
//! failed semihosting call at exit; not exceptions on `SP_EL1` (exception context) or with
//! IRQs masked (handlers, critical sections).
//!
//! The hook runs off the exception stack: the handler copies everything the vector saved
//! (`x0`-`x30`, SP, `ELR`, `SPSR`, `ESR`, `FAR`, `FPCR`, `FPSR`, `q0`-`q31`;
//! [`exception::SavedState`]) below the thread's stack pointer and `eret`s to a trampoline at
//! EL1t on the thread's stack, with the faulting code's interrupt masks. The trampoline
//! offers the fault with `InterruptedRegisters` over the copy (`x0`-`x30`, `sp`, `pc`
//! writable, `pstate` reported only, in Linux's `ucontext` order) and returns the copy to
//! the vectors with `brk #0xfa01` (`Resume`: the faulting code continues with the copy's
//! registers, SIMD and flags included) or `brk #0xfa02` (`Unhandled`: the original fault is
//! reported as usual). The board holds nothing across the hook, which may block, switch
//! threads, fault again (and be offered that) or never return. A fault whose copy would not
//! fit (the stack pointer at a guard page) is reported without the hook. The `arch` `asm`
//! module documents the copy's layout.
//!
//! # Devices
//!
//! [`uk_hal::Platform::virtio_mmio_slots`] lists the device tree's `virtio,mmio` nodes (QEMU
//! `virt` has 32 transports at `0x0a00_0000`, `0x200` bytes apart; the first `-device
//! virtio-*-device` takes the highest one, `0x0a00_3e00`, the next one below it, and empty
//! ones read device id 0), and
//! [`uk_hal::Platform::mmio_is_mapped`] says yes for the low GiB above the flash window
//! (`0x0800_0000..0x4000_0000`), the Device-nGnRE blocks of the identity map
//! ([`pagetable::is_device_mapped`]). The board reports no PCI
//! configuration access: `virt`'s PCIe host bridge (ECAM) is there, but with `-kernel`
//! no firmware assigns its BARs, and its 64-bit window lies outside the identity map.
//!
//! # Interrupts and the second CPU
//!
//! When the device tree names a GICv2 (`arm,cortex-a15-gic`, QEMU's default) or a GICv3
//! (`gic-version=3`), boot brings it up with `uk-gic` (distributor, this CPU's interface or
//! redistributor, the virtual timer's PPI 27 level-triggered and enabled) and
//! [`uk_hal::Platform::interrupts`] returns the board's [`uk_hal::irq::Interrupts`]:
//!
//! - IRQ entry: the vectors save the caller-saved state (FP/SIMD included) on the
//!   interrupted stack and the handler acknowledges, ends, then dispatches through a
//!   lock-free [`uk_hal::irq::HandlerTable`] until the CPU interface reports spurious (1023,
//!   never ended). Ending before dispatching lets a handler switch threads (preemption). An
//!   interrupt without a handler is counted (`unhandled_count`), logged once per line,
//!   ended, and (a PPI or SPI) disabled until a handler is registered; the timer is disarmed.
//! - `GenericTimer`: the virtual timer (`CNTV_CVAL_EL0`/`CNTV_CTL_EL0`) as the
//!   [`uk_hal::irq::LocalTimer`], one-shot at a deadline on the clock's scale.
//! - `start_cpu`: PSCI `CPU_ON` (`/psci` conduit) with the MPIDR from `/cpus`; the new CPU
//!   gets a 64 KiB stack and a 16 KiB exception stack from the heap (the latter mapped with
//!   level-3 tables first, see *Page protection*), drops from EL2 if needed, turns on the
//!   MMU with the boot CPU's tables and `MAIR`/`TCR`/`SCTLR`, inits its GIC interface (on
//!   v3: finds and wakes its redistributor) and the timer PPI, and calls the entry with
//!   interrupts masked.
//! - `mask`/`restore`/`wait_for_interrupt`: `DAIF.I`; `wfi`, then a one-instruction unmask
//!   window.
//!
//! # Modules
//!
//! The pure logic is host-tested; only `arch` is compiled for the bare-metal target alone.
//!
//! - [`devtree`]: a single-pass device tree reader (why not the `fdt` crate: see there) and
//!   [`devtree::BootInfo`], what the board keeps: RAM, usable memory, command line (copied
//!   into a 2 KiB buffer), console, PSCI conduit, board name, virtio-mmio transports.
//! - [`memmap`]: RAM minus reserved ranges, page-trimmed, sorted, disjoint.
//! - [`pagetable`]: descriptors, the `TCR_EL1.IPS` choice, filling the tables, and page
//!   protection's logic (splitting blocks, rights, counting tables) over a
//!   [`pagetable::TableMemory`].
//! - [`clock`]: counter ticks to nanoseconds, exact and overflow-free.
//! - [`exception`]: the frame the vectors save and the report they print (class name,
//!   `ESR_EL1` with the fault status decoded, `FAR_EL1`, `ELR_EL1`, `SPSR_EL1`, `x0`-`x30`,
//!   SP; a fault in a guard page is named a stack overflow; a tag check fault shows the
//!   pointer's and the memory's tag).
//! - [`cpu`]: the core's name from `MIDR_EL1`, the machine description.
//! - [`fixed_str`]: strings in fixed buffers (no allocator at boot).
//! - `arch` (bare metal only): `asm` (all assembly: entry, vectors, semihosting, PSCI calls,
//!   TLB and cache maintenance), `mmu` (tables in place, system registers through
//!   `aarch64-cpu`), `uart` (a lock-free, transmit-only PL011 driver; why not a crate: see
//!   there), `irq` (the GIC, IRQ entry, generic timer, secondary CPUs), `protect` (page
//!   protection on the live tables, the retry of faults in a block being split), `fault`
//!   (faults offered to the hook, off the exception stack), `ktest`
//!   (in-image tests), and the `QemuVirt` platform with boot and the exception handler.
//!
//! # Features
//!
//! - `ktest`: registers the board's in-image test cases (`uk_test::ktest!`): the CPU runs at
//!   EL1; MMU, caches and WXN are on with the expected `TCR_EL1`; the clock is monotonic and
//!   advances at `CNTFRQ_EL0` (measured against the PL031 RTC within 10 %); the memory map is
//!   sane and every region is mapped writable (`AT S1E1W`); the command line is `bootargs`;
//!   the machine is described; the reader agrees with the `fdt` crate; an SGI nobody
//!   handles is counted and ended each time; the low GiB maps devices from `0x0800_0000` up
//!   and nothing below; and four cases that must fail: `brk #0`, a read of a stack guard
//!   page, a write to code, a read of address 16 (NULL: a translation fault). Page protection
//!   on heap pages: a page with no access faults on a read and a read-only page on a write
//!   (cases that must fail); rights round trips agree with `access` and the MMU (`AT`); bad
//!   ranges are refused and change nothing; a range across a 2 MiB boundary; `OutOfTables`
//!   under a heap limit changes nothing; a 1 GiB block is split (with `--mem 2G`; skipped
//!   with less RAM); a retried fault returns to the faulting instruction with every
//!   register kept. Faults offered to a hook: a hook that makes a page read-write and
//!   resumes (a read of a no-access page, a write to a read-only one: address and access as
//!   offered, the hook on the faulting stack with IRQs unmasked); a hook that moves the PC
//!   past the faulting instruction and sets a register (the other registers, `x16`, `x17`,
//!   SIMD and flags survive; kind, address, access and PC as offered) for a faulting `ldr`,
//!   `udf #0` (illegal instruction), `brk #0x3e8` (breakpoint), a misaligned `ldar`,
//!   `stlr` and `ldxr` (misaligned read, write, and either) and a branch to a misaligned
//!   target (misaligned execute); a hook that declines an instruction fetch from the heap
//!   and one that declines a `udf` (the usual reports; must fail); no offer with IRQs
//!   masked (must fail); the trampoline's `brk #0xfa01` elsewhere is reported, not offered
//!   (must fail).
//!
//! # Boot time under TCG
//!
//! With `-icount shift=0` (one nanosecond per instruction) the guest reaches `main` of the
//! hello-world example in about 100 µs, i.e. some 100 000 instructions. Without it, QEMU's
//! TCG must first translate every translation block it runs, at several microseconds each
//! on the development machine, and about 650 blocks run before `main` (some 490 of them in
//! this crate): the clock then reads 5 to 10 ms at `main`. The reader, the table fills and
//! `.bss` zeroing are written to run few distinct blocks for this reason, and the machine
//! description is formatted on first use rather than at boot.
#![cfg_attr(not(test), no_std)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
extern crate alloc;

pub mod clock;
pub mod cpu;
pub mod devtree;
pub mod exception;
pub mod fixed_str;
pub mod memmap;
pub mod pagetable;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use arch::irq::{BoardInterrupts, GenericTimer, unhandled_count};
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use arch::{PLATFORM, QemuVirt};

/// The board's name as `cargo uk --board` spells it.
pub const BOARD_NAME: &str = "qemu-virt";

/// The PL011 used when the device tree names none (`virt`'s UART0).
pub const FALLBACK_UART: u64 = 0x0900_0000;

mod layout;
pub use layout::*;
