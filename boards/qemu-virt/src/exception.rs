//! The CPU-exception report: what the vectors saved, and how it reads on the console.
//!
//! Every one of the 16 vectors saves an [`ExceptionFrame`] (all general registers, the
//! interrupted SP, `ELR_EL1`, `SPSR_EL1`, `ESR_EL1`, `FAR_EL1`) with the FP/SIMD registers
//! below it ([`SavedState`]) and passes it with its vector number to the handler, which
//! prints a [`Report`] and hands over to `uk_rt::fatal_exception`, or first offers a fault
//! a thread's code may recover from to `uk_hal::fault` ([`offered_fault`]). Decoding and
//! formatting live here, apart from the assembly, and are tested on the host.

use core::fmt;

use uk_hal::PageAccess;
use uk_hal::fault::{Fault, FaultAccess, MemoryFault};

use crate::memmap::Range;

/// Registers saved by the exception vectors, in the order the assembly stores them.
#[repr(C)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExceptionFrame {
    /// `x0` to `x30` (`x29` is the frame pointer, `x30` the link register).
    pub x: [u64; 31],
    /// The stack pointer of the interrupted code.
    pub sp: u64,
    /// `ELR_EL1`: where the exception was taken.
    pub elr: u64,
    /// `SPSR_EL1`: the interrupted PSTATE.
    pub spsr: u64,
    /// `ESR_EL1`: the syndrome.
    pub esr: u64,
    /// `FAR_EL1`: the faulting address (meaningful for aborts and alignment faults).
    pub far: u64,
}

/// Size of [`ExceptionFrame`] in bytes; the vector assembly reserves exactly this much.
pub const FRAME_SIZE: usize = core::mem::size_of::<ExceptionFrame>();
const _: () = assert!(FRAME_SIZE == 36 * 8 && FRAME_SIZE % 16 == 0);

/// Byte offsets of the frame fields, for the assembly (which stores `x30`/`sp`, `elr`/`spsr`
/// and `esr`/`far` in pairs at `SP - 8`, `ELR` and `ESR`).
pub mod offset {
    /// `sp` (`x30` just below).
    pub const SP: usize = 31 * 8;
    /// `elr` (`spsr` just above).
    pub const ELR: usize = 32 * 8;
    /// `esr` (`far` just above).
    pub const ESR: usize = 34 * 8;
}

/// Everything the synchronous vectors save, in memory order from the stack pointer they
/// call the handler with: `FPCR`, `FPSR`, `q0`-`q31`, then the [`ExceptionFrame`]. The
/// handler may change it: the vectors restore every register from it when it returns. A
/// fault offered to `uk_hal::fault` gets a copy of it on the faulting thread's stack.
#[repr(C, align(16))]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedState {
    /// `FPCR`.
    pub fpcr: u64,
    /// `FPSR`.
    pub fpsr: u64,
    /// `q0` to `q31`, each as its low and high doubleword.
    pub q: [[u64; 2]; 32],
    /// The general registers and the exception's system registers.
    pub frame: ExceptionFrame,
}

/// Bytes of [`SavedState`] below the [`ExceptionFrame`]: what the vectors push after it.
pub const FP_AREA_SIZE: usize = core::mem::offset_of!(SavedState, frame);
/// Size of [`SavedState`] in bytes (a multiple of 16: it keeps a stack aligned).
pub const SAVED_STATE_SIZE: usize = core::mem::size_of::<SavedState>();
const _: () = assert!(FP_AREA_SIZE == 16 + 512 && SAVED_STATE_SIZE == FP_AREA_SIZE + FRAME_SIZE);

/// `SPSR_EL1.M[4:0]` of code at EL1 on `SP_EL0` (EL1t): where threads run.
pub const SPSR_EL1T: u64 = 0b0_0100;
/// `SPSR_EL1.M[4:0]`: execution state, exception level and stack pointer.
pub const SPSR_MODE: u64 = 0x1f;
/// `SPSR_EL1.{D,A,I,F}`: the interrupt masks.
pub const SPSR_DAIF: u64 = 0xf << 6;
/// `SPSR_EL1.I`: IRQs masked.
const SPSR_I: u64 = 1 << 7;

/// `brk` immediate of the fault trampoline when the hook answered `Resume`: the vectors
/// return to the faulting code with the copy's registers.
pub const BRK_FAULT_RESUME: u16 = 0xfa01;
/// `brk` immediate of the fault trampoline when the hook answered `Unhandled`: the vectors
/// report the original fault from the copy.
pub const BRK_FAULT_REPORT: u16 = 0xfa02;

/// The immediate of a `brk` (`ESR_EL1.EC` 0x3c, `ISS[15:0]`); `None` for other classes.
pub const fn brk_immediate(esr: u64) -> Option<u16> {
    if exception_class(esr) == EC_BRK {
        Some((esr & 0xffff) as u16)
    } else {
        None
    }
}

/// `ESR_EL1.EC` of an exception with an unknown reason: `udf`, undefined encodings.
const EC_UNKNOWN: u8 = 0x00;
/// `ESR_EL1.EC` of an instruction abort taken at the current exception level.
const EC_INSTRUCTION_ABORT: u8 = 0x21;
/// `ESR_EL1.EC` of a PC alignment fault: a branch to an address not a multiple of 4.
const EC_PC_ALIGNMENT: u8 = 0x22;
/// `ESR_EL1.EC` of a data abort taken at the current exception level.
const EC_DATA_ABORT: u8 = 0x25;
/// `ESR_EL1.EC` of a `brk` instruction.
const EC_BRK: u8 = 0x3c;
/// `ESR_EL1.ISS.FnV` (bit 10) of an abort: `FAR_EL1` is not valid.
const ESR_FNV: u64 = 1 << 10;
/// `ESR_EL1.ISS.WnR` (bit 6) of a data abort: the access was a write.
const ESR_WNR: u64 = 1 << 6;
/// Fault status code (`DFSC`) of an alignment fault.
pub const FSC_ALIGNMENT: u8 = 0b10_0001;

/// The fault that a synchronous exception at the current EL reports, if it is one the
/// board may offer to `uk_hal::fault` (the caller also checks that it came through the
/// `SP_EL0` vector and is not retried, not nested in a report, and that a hook is set).
///
/// Only an exception taken from EL1t (a thread, on `SP_EL0`) with IRQs unmasked
/// (`SPSR_EL1.I` clear) is offered, and only these:
///
/// - a data abort (EC 0x25) or instruction abort (EC 0x21) with a translation fault
///   (`xFSC` 0b0001LL) or permission fault (0b0011LL) and a valid `FAR_EL1` (`FnV` clear):
///   [`Fault::Memory`] at `FAR_EL1` as it is, `Execute` for an instruction abort, else
///   `Write` when `ESR_EL1.WnR` (bit 6) is set, else `Read`;
/// - a data abort with an alignment fault ([`FSC_ALIGNMENT`]; `FnV` clear):
///   [`Fault::Misaligned`] at `FAR_EL1`, `Write` or `Read` from `WnR` as above. With
///   `SCTLR_EL1.A` clear (this board) that is an exclusive, acquire/release or atomic
///   access that is not naturally aligned (FEAT_LSE2 relaxes this for some of them within
///   an aligned 16 bytes), or any misaligned access to Device memory;
/// - a PC alignment fault (EC 0x22): [`Fault::Misaligned`] at `FAR_EL1` (the misaligned
///   branch target), `Execute`;
/// - an exception with an unknown reason (EC 0x00: `udf`, an undefined encoding):
///   [`Fault::IllegalInstruction`] at `ELR_EL1`;
/// - a `brk` (EC 0x3c) with any immediate but the fault trampoline's own
///   ([`BRK_FAULT_RESUME`], [`BRK_FAULT_REPORT`]): [`Fault::Breakpoint`] at `ELR_EL1`
///   (the `brk` itself).
///
/// Not access flag, address size, tag check or external aborts, SP alignment faults, nor
/// any other class: those are always reported.
pub const fn offered_fault(frame: &ExceptionFrame) -> Option<Fault> {
    if frame.spsr & SPSR_MODE != SPSR_EL1T || frame.spsr & SPSR_I != 0 {
        return None;
    }
    let esr = frame.esr;
    let far = frame.far as usize;
    let data_access = if esr & ESR_WNR != 0 {
        FaultAccess::Write
    } else {
        FaultAccess::Read
    };
    match exception_class(esr) {
        EC_UNKNOWN => Some(Fault::IllegalInstruction {
            addr: frame.elr as usize,
        }),
        EC_BRK => match brk_immediate(esr) {
            Some(BRK_FAULT_RESUME | BRK_FAULT_REPORT) | None => None,
            Some(_) => Some(Fault::Breakpoint {
                addr: frame.elr as usize,
            }),
        },
        EC_PC_ALIGNMENT => Some(Fault::Misaligned {
            addr: far,
            access: FaultAccess::Execute,
        }),
        // Bit 10 is `FnV` only in an abort's syndrome (in a `brk`'s, part of the immediate).
        _ if esr & ESR_FNV != 0 => None,
        EC_DATA_ABORT if (esr & 0x3f) as u8 == FSC_ALIGNMENT => Some(Fault::Misaligned {
            addr: far,
            access: data_access,
        }),
        ec @ (EC_INSTRUCTION_ABORT | EC_DATA_ABORT)
            if matches!(esr & 0x3c, 0b00_0100 | 0b00_1100) =>
        {
            let access = if ec == EC_INSTRUCTION_ABORT {
                FaultAccess::Execute
            } else {
                data_access
            };
            Some(Fault::Memory(MemoryFault { addr: far, access }))
        }
        _ => None,
    }
}

/// Where a vector sits in the table (`VBAR_EL1 + 0x80 * vector`): source and type.
pub fn vector_name(vector: u64) -> (&'static str, &'static str) {
    let source = match vector / 4 {
        0 => "current EL, SP_EL0",
        1 => "current EL, SP_ELx",
        2 => "lower EL, AArch64",
        3 => "lower EL, AArch32",
        _ => "unknown vector",
    };
    let kind = match vector % 4 {
        0 => "synchronous",
        1 => "IRQ",
        2 => "FIQ",
        _ => "SError",
    };
    (source, kind)
}

/// The exception class (`ESR_EL1.EC`, bits 31:26).
pub const fn exception_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// Name of an exception class, as the Arm ARM describes it.
pub fn exception_class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "trapped SVE/SIMD/FP access",
        0x0d => "branch target exception (BTI)",
        0x0e => "illegal execution state",
        0x11 => "SVC (AArch32)",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "trapped MSR/MRS/system instruction",
        0x19 => "trapped SVE access",
        0x1c => "pointer authentication failure",
        0x1d => "trapped SME access",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort (same EL)",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort (same EL)",
        0x26 => "SP alignment fault",
        0x27 => "memory operation exception",
        0x28 | 0x2c => "floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x38 => "BKPT (AArch32)",
        0x3c => "BRK instruction",
        _ => "reserved exception class",
    }
}

/// Whether `FAR_EL1` is valid for this syndrome (aborts, PC/watchpoint faults).
const fn far_is_meaningful(ec: u8) -> bool {
    matches!(ec, 0x20 | 0x21 | 0x22 | 0x24 | 0x25 | 0x34 | 0x35)
}

/// The fault status (`ISS.xFSC`, bits 5:0) of an instruction or data abort, in words.
pub fn fault_status(esr: u64) -> Option<(&'static str, Option<u8>)> {
    let ec = exception_class(esr);
    if !matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
        return None;
    }
    let fsc = (esr & 0x3f) as u8;
    let level = Some(fsc & 0b11);
    Some(match fsc {
        0b00_0000..=0b00_0011 => ("address size fault", level),
        0b00_0100..=0b00_0111 => ("translation fault", level),
        0b00_1000..=0b00_1011 => ("access flag fault", level),
        0b00_1100..=0b00_1111 => ("permission fault", level),
        0b01_0000 => ("synchronous external abort", None),
        0b01_0001 => ("tag check fault", None),
        0b10_0001 => ("alignment fault", None),
        0b11_0000 => ("TLB conflict abort", None),
        _ => ("other fault", None),
    })
}

/// Fault status code (`DFSC`) of a synchronous tag check fault (FEAT_MTE2).
pub const FSC_TAG_CHECK: u8 = 0b01_0001;

/// Whether `esr` reports a synchronous tag check fault: a data abort with fault status
/// [`FSC_TAG_CHECK`]: an access whose pointer tag differs from the memory's allocation tag.
pub const fn is_tag_check_fault(esr: u64) -> bool {
    matches!(exception_class(esr), 0x24 | 0x25) && (esr & 0x3f) as u8 == FSC_TAG_CHECK
}

/// Whether `esr` reports a translation fault (at any level) of a data access or an
/// instruction fetch at the current exception level with a valid `FAR_EL1` (`FnV`, bit 10,
/// clear): what another CPU takes when it touches a block while page protection splits it
/// (see the crate documentation, *Page protection*).
pub const fn is_translation_fault(esr: u64) -> bool {
    matches!(exception_class(esr), 0x21 | 0x25) && (esr & 0x3c) == 0b00_0100 && esr & (1 << 10) == 0
}

/// The logical tag of a faulting address (bits 59:56 of `FAR_EL1`, which a tag check
/// fault reports; bits 63:60 are unknown then).
pub const fn pointer_tag(far: u64) -> u8 {
    ((far >> 56) & 0xf) as u8
}

/// A printable exception report.
///
/// `guards` are the stack guard pages: a fault there is named a stack overflow.
/// `page_access` is what page protection ([`uk_hal::PageProtection`]) gave the page at
/// `FAR_EL1`, if it is RAM: a fault on a page made inaccessible or read-only says so.
pub struct Report<'a> {
    /// The saved registers.
    pub frame: &'a ExceptionFrame,
    /// The vector number (0 to 15).
    pub vector: u64,
    /// Stack guard pages.
    pub guards: &'a [Range],
    /// For a tag check fault, the allocation tag of the granule at `FAR_EL1` (read by the
    /// handler with `ldg`), shown next to the pointer's tag.
    pub memory_tag: Option<u8>,
    /// The rights of the RAM page at `FAR_EL1` ([`uk_hal::PageProtection::access`]), for an
    /// abort; `None` when the address is not RAM (or not known).
    pub page_access: Option<PageAccess>,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = self.frame;
        let ec = exception_class(frame.esr);
        let (source, kind) = vector_name(self.vector);
        writeln!(
            f,
            "CPU exception: {} (EC {ec:#04x}), {kind} from {source}",
            exception_class_name(ec)
        )?;
        write!(f, "  ESR_EL1  {:#018x}", frame.esr)?;
        if let Some((status, level)) = fault_status(frame.esr) {
            write!(f, "  {status}")?;
            if let Some(level) = level {
                write!(f, " at level {level}")?;
            }
            // WnR (bit 6) is valid for data aborts that are not external aborts.
            if matches!(ec, 0x24 | 0x25) {
                f.write_str(if frame.esr & (1 << 6) != 0 {
                    ", on a write"
                } else {
                    ", on a read"
                })?;
            }
        }
        writeln!(f)?;
        if is_tag_check_fault(frame.esr) {
            write!(
                f,
                "  tag check fault: pointer tag {:#x}",
                pointer_tag(frame.far)
            )?;
            if let Some(tag) = self.memory_tag {
                write!(f, ", memory tag {tag:#x}")?;
            }
            writeln!(
                f,
                ", {} at {:#x}, instruction at {:#x}",
                if frame.esr & (1 << 6) != 0 {
                    "write"
                } else {
                    "read"
                },
                frame.far & 0x00ff_ffff_ffff_ffff,
                frame.elr
            )?;
        }
        write!(f, "  FAR_EL1  {:#018x}", frame.far)?;
        if !far_is_meaningful(ec) {
            f.write_str("  (not valid for this class)")?;
        } else if self.guards.iter().any(|g| g.contains(frame.far)) {
            f.write_str("  (stack guard page: stack overflow)")?;
        } else if self.page_access == Some(PageAccess::None) {
            f.write_str("  (protected page: no access)")?;
        } else if self.page_access == Some(PageAccess::ReadOnly) {
            f.write_str("  (protected page: read-only)")?;
        }
        writeln!(f)?;
        writeln!(f, "  ELR_EL1  {:#018x}", frame.elr)?;
        writeln!(f, "  SPSR_EL1 {:#018x}", frame.spsr)?;
        for (row, regs) in frame.x.chunks(4).enumerate() {
            f.write_str(" ")?;
            for (col, value) in regs.iter().enumerate() {
                let n = row * 4 + col;
                write!(f, " {:>3} {value:#018x}", Reg(n))?;
            }
            if regs.len() < 4 {
                write!(f, "  {:>3} {:#018x}", "sp", frame.sp)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Register name `x<n>` for [`Report`]'s aligned columns.
struct Reg(usize);

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut name = crate::fixed_str::FixedStr::<3>::new();
        let _ = fmt::Write::write_fmt(&mut name, format_args!("x{}", self.0));
        f.pad(name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(esr: u64, far: u64) -> ExceptionFrame {
        let mut x = [0; 31];
        for (i, r) in x.iter_mut().enumerate() {
            *r = 0x1000 + i as u64;
        }
        ExceptionFrame {
            x,
            sp: 0x4021_0000,
            elr: 0x4020_1234,
            spsr: 0x3c4,
            esr,
            far,
        }
    }

    #[test]
    fn frame_layout_matches_assembly() {
        let f = frame(1, 2);
        let base = &f as *const _ as usize;
        assert_eq!(&f.sp as *const _ as usize - base, offset::SP);
        assert_eq!(&f.elr as *const _ as usize - base, offset::ELR);
        assert_eq!(&f.esr as *const _ as usize - base, offset::ESR);
        assert_eq!(FRAME_SIZE, 288);
    }

    #[test]
    fn brk_report() {
        // brk #0 at EL1: EC 0x3c, IL set, comment 0
        let esr = (0x3c << 26) | (1 << 25);
        let text = Report {
            frame: &frame(esr, 0),
            vector: 0,
            guards: &[],
            memory_tag: None,
            page_access: None,
        }
        .to_string();
        assert!(
            text.starts_with(
                "CPU exception: BRK instruction (EC 0x3c), synchronous from current EL, SP_EL0\n"
            ),
            "{text}"
        );
        assert!(text.contains("ESR_EL1  0x00000000f2000000"), "{text}");
        assert!(text.contains("(not valid for this class)"), "{text}");
        assert!(text.contains("ELR_EL1  0x0000000040201234"), "{text}");
        assert!(text.contains("SPSR_EL1 0x00000000000003c4"), "{text}");
        for n in 0..31 {
            assert!(
                text.contains(&format!("x{n} {:#018x}", 0x1000 + n)),
                "x{n} missing: {text}"
            );
        }
        assert!(text.contains(" sp 0x0000000040210000"), "{text}");
        assert_eq!(text.lines().count(), 5 + 8);
    }

    #[test]
    fn data_abort_report() {
        // Data abort, same EL, translation fault level 1, write.
        let esr = (0x25 << 26) | (1 << 25) | (1 << 6) | 0b000101;
        let text = Report {
            frame: &frame(esr, 0xdead_0000),
            vector: 4,
            guards: &[],
            memory_tag: None,
            page_access: None,
        }
        .to_string();
        assert!(
            text.contains("data abort (same EL) (EC 0x25), synchronous from current EL, SP_ELx"),
            "{text}"
        );
        assert!(
            text.contains("translation fault at level 1, on a write"),
            "{text}"
        );
        assert!(text.contains("FAR_EL1  0x00000000dead0000\n"), "{text}");
    }

    #[test]
    fn stack_overflow_is_named() {
        let esr = (0x25 << 26) | (1 << 6) | 0b000111;
        let guard = Range {
            start: 0x4030_0000,
            end: 0x4030_1000,
        };
        let text = Report {
            frame: &frame(esr, 0x4030_0ff0),
            vector: 0,
            guards: &[guard],
            memory_tag: None,
            page_access: None,
        }
        .to_string();
        assert!(text.contains("stack guard page: stack overflow"), "{text}");
    }

    #[test]
    fn tag_check_fault_report() {
        // Synchronous tag check fault on a write at EL1: EC 0x25, IL, WnR, DFSC 0x11; the
        // pointer carries tag 0xa in bits 59:56.
        let esr = (0x25 << 26) | (1 << 25) | (1 << 6) | 0x11;
        assert!(is_tag_check_fault(esr));
        assert!(!is_tag_check_fault((0x25 << 26) | 0x10));
        assert!(
            !is_tag_check_fault((0x21 << 26) | 0x11),
            "instruction aborts are not"
        );
        let far = 0x0a00_0000_4030_1240;
        assert_eq!(pointer_tag(far), 0xa);
        assert_eq!(pointer_tag(0xf300_0000_0000_0000), 0x3);
        let text = Report {
            frame: &frame(esr, far),
            vector: 4,
            guards: &[],
            memory_tag: Some(0),
            page_access: None,
        }
        .to_string();
        assert!(text.contains("  tag check fault, on a write\n"), "{text}");
        assert!(
            text.contains(
                "  tag check fault: pointer tag 0xa, memory tag 0x0, write at 0x40301240, \
                 instruction at 0x40201234\n"
            ),
            "{text}"
        );
        assert!(text.contains("FAR_EL1  0x0a00000040301240\n"), "{text}");
        assert_eq!(text.lines().count(), 6 + 8);
        // Without the memory's tag (not readable), the rest is still there; a read says so.
        let text = Report {
            frame: &frame(esr & !(1 << 6), far),
            vector: 4,
            guards: &[],
            memory_tag: None,
            page_access: None,
        }
        .to_string();
        assert!(
            text.contains("tag check fault: pointer tag 0xa, read at 0x40301240"),
            "{text}"
        );
        // Other faults print no tag line.
        let text = Report {
            frame: &frame((0x25 << 26) | 0x07, far),
            vector: 4,
            guards: &[],
            memory_tag: Some(3),
            page_access: None,
        }
        .to_string();
        assert!(!text.contains("pointer tag"), "{text}");
    }

    #[test]
    fn protected_pages_are_named() {
        // A read of a page set to no access: translation fault at level 3.
        let read = (0x25 << 26) | (1 << 25) | 0b000111;
        let text = Report {
            frame: &frame(read, 0x4060_3008),
            vector: 0,
            guards: &[],
            memory_tag: None,
            page_access: Some(PageAccess::None),
        }
        .to_string();
        assert!(
            text.contains("translation fault at level 3, on a read\n"),
            "{text}"
        );
        assert!(
            text.contains("FAR_EL1  0x0000000040603008  (protected page: no access)\n"),
            "{text}"
        );
        // A write to a read-only page: permission fault at level 3.
        let write = (0x25 << 26) | (1 << 25) | (1 << 6) | 0b001111;
        let text = Report {
            frame: &frame(write, 0x4060_4000),
            vector: 0,
            guards: &[],
            memory_tag: None,
            page_access: Some(PageAccess::ReadOnly),
        }
        .to_string();
        assert!(
            text.contains("permission fault at level 3, on a write\n"),
            "{text}"
        );
        assert!(text.contains("(protected page: read-only)"), "{text}");
        // Read-write RAM, and classes without a fault address, say nothing more.
        let text = Report {
            frame: &frame(write, 0x4060_4000),
            vector: 0,
            guards: &[],
            memory_tag: None,
            page_access: Some(PageAccess::ReadWrite),
        }
        .to_string();
        assert!(!text.contains("protected page"), "{text}");
        let text = Report {
            frame: &frame(0x3c << 26, 0x4060_4000),
            vector: 0,
            guards: &[],
            memory_tag: None,
            page_access: Some(PageAccess::None),
        }
        .to_string();
        assert!(!text.contains("protected page"), "{text}");
    }

    #[test]
    fn translation_faults_are_recognised() {
        for level in 0..4 {
            assert!(is_translation_fault(
                (0x25 << 26) | (1 << 25) | 0b100 | level
            ));
            assert!(is_translation_fault(
                (0x25 << 26) | (1 << 6) | 0b100 | level
            ));
            assert!(is_translation_fault((0x21 << 26) | 0b100 | level));
            // Permission, access flag and address size faults are not.
            assert!(!is_translation_fault((0x25 << 26) | 0b1100 | level));
            assert!(!is_translation_fault((0x25 << 26) | 0b1000 | level));
            assert!(!is_translation_fault((0x25 << 26) | level));
        }
        assert!(
            !is_translation_fault((0x25 << 26) | (1 << 10) | 0b111),
            "FAR not valid"
        );
        assert!(!is_translation_fault((0x24 << 26) | 0b111), "from EL0");
        assert!(!is_translation_fault((0x3c << 26) | 0b111), "BRK");
        assert!(
            !is_translation_fault((0x25 << 26) | 0x11),
            "tag check fault"
        );
    }

    #[test]
    fn saved_state_layout_matches_assembly() {
        let state = SavedState::default();
        let base = &state as *const _ as usize;
        assert_eq!(&state.q as *const _ as usize - base, 16);
        assert_eq!(&state.frame as *const _ as usize - base, FP_AREA_SIZE);
        assert_eq!((FP_AREA_SIZE, SAVED_STATE_SIZE), (528, 816));
        assert_eq!(core::mem::align_of::<SavedState>(), 16);
    }

    #[test]
    fn offered_faults() {
        // EL1t with D, A and F masked, IRQs unmasked: a thread.
        let thread = 0x344;
        let fault = |esr: u64, spsr: u64| {
            let mut f = frame(esr, 0x4060_3008);
            f.spsr = spsr;
            offered_fault(&f)
        };
        let at = |access| {
            Some(Fault::Memory(MemoryFault {
                addr: 0x4060_3008,
                access,
            }))
        };
        for level in 0..4 {
            // Translation and permission faults of loads, stores and instruction fetches.
            let read = (0x25 << 26) | (1 << 25) | 0b0100 | level;
            assert_eq!(fault(read, thread), at(FaultAccess::Read));
            assert_eq!(fault(read | (1 << 6), thread), at(FaultAccess::Write));
            let write = (0x25 << 26) | (1 << 25) | (1 << 6) | 0b1100 | level;
            assert_eq!(fault(write, thread), at(FaultAccess::Write));
            assert_eq!(fault(write & !(1 << 6), thread), at(FaultAccess::Read));
            let fetch = (0x21 << 26) | (1 << 25) | 0b1100 | level;
            assert_eq!(fault(fetch, thread), at(FaultAccess::Execute));
            assert_eq!(fault(fetch & !0b1000, thread), at(FaultAccess::Execute));
            // Not with IRQs masked, not on SP_EL1, not from AArch32 or a lower EL.
            assert_eq!(fault(read, thread | (1 << 7)), None, "IRQs masked");
            assert_eq!(fault(read, 0x345), None, "EL1h");
            assert_eq!(fault(read, 0x340), None, "EL0");
            assert_eq!(fault(read, thread | 0x10), None, "AArch32");
            assert_eq!(
                fault((0x24 << 26) | 0b0100 | level, thread),
                None,
                "from EL0"
            );
            // Access flag and address size faults are not offered.
            assert_eq!(fault((0x25 << 26) | 0b1000 | level, thread), None);
            assert_eq!(fault((0x25 << 26) | level, thread), None);
        }
        // Nor tag check faults, external aborts, an invalid FAR, other classes.
        assert_eq!(
            fault((0x25 << 26) | FSC_TAG_CHECK as u64, thread),
            None,
            "tag check"
        );
        assert_eq!(fault((0x25 << 26) | 0b01_0000, thread), None, "external");
        assert_eq!(
            fault((0x25 << 26) | (1 << 10) | 0b0111, thread),
            None,
            "FnV"
        );
        for ec in [
            0x01, 0x07, 0x0e, 0x15, 0x18, 0x20, 0x24, 0x26, 0x2f, 0x30, 0x32, 0x34,
        ] {
            assert_eq!(
                fault((ec << 26) | (1 << 25) | 0b0111, thread),
                None,
                "EC {ec:#x}"
            );
        }
    }

    #[test]
    fn offered_alignment_faults() {
        let thread = 0x344;
        let fault = |esr: u64, far: u64, spsr: u64| {
            let mut f = frame(esr, far);
            f.spsr = spsr;
            offered_fault(&f)
        };
        // A data abort with DFSC 0b100001: misaligned at FAR, the access from WnR.
        let load = (0x25 << 26) | (1 << 25) | FSC_ALIGNMENT as u64;
        let misaligned = |addr, access| Some(Fault::Misaligned { addr, access });
        assert_eq!(
            fault(load, 0x4060_300c, thread),
            misaligned(0x4060_300c, FaultAccess::Read)
        );
        assert_eq!(
            fault(load | (1 << 6), 0x4060_3014, thread),
            misaligned(0x4060_3014, FaultAccess::Write)
        );
        // A PC alignment fault: the misaligned branch target (FAR), an instruction fetch.
        assert_eq!(
            fault((0x22 << 26) | (1 << 25), 0x4020_1236, thread),
            misaligned(0x4020_1236, FaultAccess::Execute)
        );
        // Under the same conditions as memory faults only.
        assert_eq!(fault(load, 0x4060_300c, thread | (1 << 7)), None);
        assert_eq!(fault(load, 0x4060_300c, 0x345), None);
        assert_eq!(fault((0x22 << 26) | (1 << 25), 0x4020_1236, 0x3c5), None);
        assert_eq!(fault(load | (1 << 10), 0x4060_300c, thread), None, "FnV");
        // Not an instruction abort with that status (reserved), not from a lower EL, not
        // an SP alignment fault.
        assert_eq!(
            fault((0x21 << 26) | FSC_ALIGNMENT as u64, 0x10, thread),
            None
        );
        assert_eq!(
            fault((0x24 << 26) | FSC_ALIGNMENT as u64, 0x10, thread),
            None
        );
        assert_eq!(fault((0x26 << 26) | (1 << 25), 0x10, thread), None);
    }

    #[test]
    fn offered_instruction_faults() {
        let thread = 0x344;
        let fault = |esr: u64, spsr: u64| {
            let mut f = frame(esr, 0xdead_0000);
            f.spsr = spsr;
            offered_fault(&f)
        };
        // `udf #imm` and undefined encodings (EC 0x00, IL set, ISS 0): at ELR, not FAR.
        let udf = 1 << 25;
        let illegal = Some(Fault::IllegalInstruction { addr: 0x4020_1234 });
        assert_eq!(fault(udf, thread), illegal);
        assert_eq!(fault(udf, thread | (1 << 7)), None, "IRQs masked");
        assert_eq!(fault(udf, 0x3c5), None, "EL1h");
        // `brk` with any immediate but the trampoline's two: at ELR (the `brk` itself).
        let brk = |imm: u16| (0x3c << 26) | (1 << 25) | u64::from(imm);
        let breakpoint = Some(Fault::Breakpoint { addr: 0x4020_1234 });
        // 0x3e8: GCC's `__builtin_trap`; 0x400 sets bit 10 (an abort's FnV) and 0x40 bit 6
        // (WnR): neither means anything for a `brk`.
        for imm in [
            0, 1, 0x3c, 0x3e8, 0x400, 0x440, 0xf000, 0xfa00, 0xfa03, 0xffff,
        ] {
            assert_eq!(fault(brk(imm), thread), breakpoint, "brk #{imm:#x}");
        }
        for imm in [BRK_FAULT_RESUME, BRK_FAULT_REPORT] {
            assert_eq!(fault(brk(imm), thread), None, "brk #{imm:#x}");
        }
        assert_eq!(fault(brk(0x3e8), thread | (1 << 7)), None, "IRQs masked");
        assert_eq!(fault(brk(0x3e8), 0x3c5), None, "EL1h");
        // Neither is a BKPT from AArch32 (EC 0x38), a hardware breakpoint (EC 0x30/0x31)
        // or an SVC.
        assert_eq!(fault((0x38 << 26) | 0x3e8, thread), None);
        assert_eq!(fault((0x30 << 26) | 0x3e8, thread), None);
        assert_eq!(fault((0x15 << 26) | (1 << 25), thread), None);
    }

    #[test]
    fn brk_immediates() {
        let brk = |imm: u16| (0x3c << 26) | (1 << 25) | u64::from(imm);
        assert_eq!(brk_immediate(brk(BRK_FAULT_RESUME)), Some(BRK_FAULT_RESUME));
        assert_eq!(brk_immediate(brk(BRK_FAULT_REPORT)), Some(BRK_FAULT_REPORT));
        assert_eq!(brk_immediate(brk(0)), Some(0));
        assert_eq!(brk_immediate((0x25 << 26) | 0xfa01), None);
        assert_ne!(BRK_FAULT_RESUME, BRK_FAULT_REPORT);
    }

    #[test]
    fn names() {
        assert_eq!(vector_name(15), ("lower EL, AArch32", "SError"));
        assert_eq!(vector_name(5), ("current EL, SP_ELx", "IRQ"));
        assert_eq!(
            exception_class_name(0x00),
            "unknown reason (undefined instruction)"
        );
        assert_eq!(exception_class_name(0x3f), "reserved exception class");
        assert_eq!(fault_status(0x15 << 26), None);
        assert_eq!(
            fault_status((0x21 << 26) | 0x0f),
            Some(("permission fault", Some(3)))
        );
        assert_eq!(
            fault_status((0x25 << 26) | 0x21),
            Some(("alignment fault", None))
        );
    }
}
