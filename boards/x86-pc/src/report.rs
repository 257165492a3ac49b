//! CPU exception reports: the saved register frame and its console text, without
//! `core::fmt` (the report must work when little else does, and costs no formatting code).
//!
//! A report looks like this (one line per group of registers):
//!
//! ```text
//! x86-pc: CPU exception 14 #PF page fault (not-present read, kernel)
//!   error code 0x0000000000000000  CR2 0x0000010000000000
//!   RIP 0x0000000000101a2c  RSP 0x0000000000123f58  RFLAGS 0x0000000000010082
//!   CS  0x0008  SS 0x0010
//!   RAX 0x...  RBX 0x...  RCX 0x...  RDX 0x...
//!   RSI 0x...  RDI 0x...  RBP 0x...  R8  0x...
//!   R9  0x...  R10 0x...  R11 0x...  R12 0x...
//!   R13 0x...  R14 0x...  R15 0x...
//! ```
//!
//! When CR2 (page and double faults) lies in a page with a meaning ([`Landmark`]), a line
//! after the error code says which: page 0 (a null pointer), a stack's guard page (a stack
//! overflow), or a page [`uk_hal::PageProtection`] took rights from
//! ([`protection_landmark`]):
//!
//! ```text
//! x86-pc: CPU exception 14 #PF page fault (protection violation on write)
//!   error code 0x0000000000000003  CR2 0x0000000000403000
//!   CR2 is in a page PageProtection made read-only (PageAccess::ReadOnly)
//! ```

/// Registers saved by the exception entry stubs, lowest address first: the stub pushes the
/// general registers (RAX first, so R15 ends lowest) over the vector number, the error code
/// (the CPU's, or 0) and the frame the CPU pushed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExceptionFrame {
    /// R15 at the time of the exception.
    pub r15: u64,
    /// R14.
    pub r14: u64,
    /// R13.
    pub r13: u64,
    /// R12.
    pub r12: u64,
    /// R11.
    pub r11: u64,
    /// R10.
    pub r10: u64,
    /// R9.
    pub r9: u64,
    /// R8.
    pub r8: u64,
    /// RBP.
    pub rbp: u64,
    /// RDI.
    pub rdi: u64,
    /// RSI.
    pub rsi: u64,
    /// RDX.
    pub rdx: u64,
    /// RCX.
    pub rcx: u64,
    /// RBX.
    pub rbx: u64,
    /// RAX.
    pub rax: u64,
    /// Exception vector (0..=31).
    pub vector: u64,
    /// Error code pushed by the CPU, or 0 for vectors without one.
    pub error_code: u64,
    /// Address of the faulting (or, for traps, the next) instruction.
    pub rip: u64,
    /// Code segment selector.
    pub cs: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// Stack pointer at the time of the exception.
    pub rsp: u64,
    /// Stack segment selector.
    pub ss: u64,
}

/// Bytes of [`ExceptionFrame`]; the entry stub relies on it.
pub const FRAME_SIZE: usize = 22 * 8;
const _: () = assert!(core::mem::size_of::<ExceptionFrame>() == FRAME_SIZE);

/// Vectors for which the CPU pushes an error code.
pub const ERROR_CODE_VECTORS: u32 = 1 << 8
    | 1 << 10
    | 1 << 11
    | 1 << 12
    | 1 << 13
    | 1 << 14
    | 1 << 17
    | 1 << 21
    | 1 << 29
    | 1 << 30;

/// Vector of the divide error (`#DE`: division by zero, or a quotient that does not fit).
pub const DIVIDE_ERROR: u64 = 0;
/// Vector of the breakpoint (`#BP`: `int3`, a trap: RIP is past the instruction).
pub const BREAKPOINT: u64 = 3;
/// Vector of the invalid opcode (`#UD`: `ud2`, an undefined encoding).
pub const INVALID_OPCODE: u64 = 6;
/// Vector of the general-protection fault (`#GP`: a non-canonical address, among others).
pub const GENERAL_PROTECTION: u64 = 13;
/// Vector of the page fault.
pub const PAGE_FAULT: u64 = 14;
/// Vector of the double fault.
pub const DOUBLE_FAULT: u64 = 8;

/// The vectors whose exceptions go to [`uk_hal::fault::offer`] (bit `n` for vector `n`):
/// `#DE`, `#BP`, `#UD`, `#GP`, `#PF`. Their stubs take the returning path; none uses an
/// IST stack, so each runs on the faulting thread's stack.
pub const OFFERED_VECTORS: u32 = 1 << DIVIDE_ERROR
    | 1 << BREAKPOINT
    | 1 << INVALID_OPCODE
    | 1 << GENERAL_PROTECTION
    | 1 << PAGE_FAULT;

/// RFLAGS.IF (bit 9): interrupts were unmasked in the code the exception interrupted.
pub const RFLAGS_IF: u64 = 1 << 9;

/// Whether an exception goes to [`uk_hal::fault::offer`] before it is reported: one of
/// [`OFFERED_VECTORS`] (never the double fault, which runs on its own stack), not taken
/// while a report is being written, in code that ran with interrupts unmasked (`rflags`
/// has [`RFLAGS_IF`]: interrupt handlers and critical sections mask them), with a hook
/// installed.
pub fn offers_fault(vector: u64, rflags: u64, reporting: bool, hook_installed: bool) -> bool {
    vector < 32
        && OFFERED_VECTORS >> vector & 1 == 1
        && !reporting
        && rflags & RFLAGS_IF != 0
        && hook_installed
}

/// The [`uk_hal::fault::Fault`] an exception of [`OFFERED_VECTORS`] is, from its vector,
/// error code, saved RIP and `CR2`; `None` for any other vector. A breakpoint is a trap,
/// so its `int3` (one byte) lies just before the saved RIP.
pub fn offered_fault(
    vector: u64,
    error_code: u64,
    rip: u64,
    cr2: u64,
) -> Option<uk_hal::fault::Fault> {
    use uk_hal::fault::{Fault, MemoryFault};
    let addr = rip as usize;
    Some(match vector {
        DIVIDE_ERROR => Fault::DivideError { addr },
        BREAKPOINT => Fault::Breakpoint {
            addr: addr.wrapping_sub(1),
        },
        INVALID_OPCODE => Fault::IllegalInstruction { addr },
        GENERAL_PROTECTION => Fault::GeneralProtection { addr },
        PAGE_FAULT => Fault::Memory(MemoryFault {
            addr: cr2 as usize,
            access: fault_access(error_code),
        }),
        _ => return None,
    })
}

/// The access a page fault's error code names: an instruction fetch (bit 4), a write
/// (bit 1), otherwise a read.
pub fn fault_access(error_code: u64) -> uk_hal::fault::FaultAccess {
    use uk_hal::fault::FaultAccess;
    if error_code & 16 != 0 {
        FaultAccess::Execute
    } else if error_code & 2 != 0 {
        FaultAccess::Write
    } else {
        FaultAccess::Read
    }
}

/// Where an [`ExceptionFrame`] keeps each general register, in Linux's `gregs` order
/// ([`uk_hal::irq::GENERAL_REGISTERS`]), for the [`uk_hal::irq::InterruptedRegisters`] a
/// page fault is offered with. RIP and RSP are writable: the return path (`iretq`) pops
/// both from the frame, so a hook may move the faulting code's program counter and stack.
/// RFLAGS is reported only (its privileged bits, the interrupt flag among them, stay the
/// kernel's).
#[cfg(target_arch = "x86_64")]
pub const EXCEPTION_FRAME_LAYOUT: [uk_hal::irq::RegisterSlot; uk_hal::irq::GENERAL_REGISTERS] = {
    use core::mem::offset_of;
    use uk_hal::irq::RegisterSlot::{ReadOnlyWord, Word};
    /// The frame word at byte `offset`.
    const fn word(offset: usize) -> u16 {
        (offset / 8) as u16
    }
    [
        Word(word(offset_of!(ExceptionFrame, r8))),
        Word(word(offset_of!(ExceptionFrame, r9))),
        Word(word(offset_of!(ExceptionFrame, r10))),
        Word(word(offset_of!(ExceptionFrame, r11))),
        Word(word(offset_of!(ExceptionFrame, r12))),
        Word(word(offset_of!(ExceptionFrame, r13))),
        Word(word(offset_of!(ExceptionFrame, r14))),
        Word(word(offset_of!(ExceptionFrame, r15))),
        Word(word(offset_of!(ExceptionFrame, rdi))),
        Word(word(offset_of!(ExceptionFrame, rsi))),
        Word(word(offset_of!(ExceptionFrame, rbp))),
        Word(word(offset_of!(ExceptionFrame, rbx))),
        Word(word(offset_of!(ExceptionFrame, rdx))),
        Word(word(offset_of!(ExceptionFrame, rax))),
        Word(word(offset_of!(ExceptionFrame, rcx))),
        Word(word(offset_of!(ExceptionFrame, rsp))),
        Word(word(offset_of!(ExceptionFrame, rip))),
        ReadOnlyWord(word(offset_of!(ExceptionFrame, rflags))),
    ]
};

/// Mnemonic and name of an exception vector.
pub fn vector_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        9 => ("#MP", "coprocessor segment overrun"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point exception"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        28 => ("#HV", "hypervisor injection"),
        29 => ("#VC", "VMM communication"),
        30 => ("#SX", "security exception"),
        _ => ("#??", "reserved vector"),
    }
}

/// A named address range the report points out when CR2 falls into it (guard pages).
#[derive(Clone, Copy, Debug)]
pub struct Landmark {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What a fault there means, e.g. "stack overflow (boot stack guard page)".
    pub meaning: &'static str,
}

/// What the report says of a page fault in a page [`uk_hal::PageProtection`] took rights
/// from (the line reads `CR2 is in a page PageProtection made ...`).
pub const PROTECTED_NONE: &str = "a page PageProtection made inaccessible (PageAccess::None)";
/// See [`PROTECTED_NONE`]: the same for a read-only page.
pub const PROTECTED_READ_ONLY: &str = "a page PageProtection made read-only (PageAccess::ReadOnly)";

/// The landmark for the 4 KiB page at `page` when its rights are `access`: none for a
/// page that is readable and writable.
pub fn protection_landmark(page: u64, access: uk_hal::PageAccess) -> Option<Landmark> {
    let meaning = match access {
        uk_hal::PageAccess::None => PROTECTED_NONE,
        uk_hal::PageAccess::ReadOnly => PROTECTED_READ_ONLY,
        uk_hal::PageAccess::ReadWrite => return None,
    };
    let start = page & !(crate::tables::PAGE_4K - 1);
    Some(Landmark {
        start,
        end: start + crate::tables::PAGE_4K,
        meaning,
    })
}

impl Landmark {
    /// An empty range: never matches.
    pub const NONE: Landmark = Landmark {
        start: 0,
        end: 0,
        meaning: "",
    };
}

/// `0x` and 16 hex digits.
pub fn hex64(value: u64) -> [u8; 18] {
    let mut out = [b'0'; 18];
    out[1] = b'x';
    for (i, slot) in out[2..].iter_mut().enumerate() {
        let nibble = (value >> (60 - 4 * i)) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    out
}

/// `0x` and 4 hex digits.
pub fn hex16(value: u16) -> [u8; 6] {
    let full = hex64(value.into());
    let mut out = [0; 6];
    out[..2].copy_from_slice(b"0x");
    out[2..].copy_from_slice(&full[14..]);
    out
}

/// Decimal digits of `value` into the end of `buf`; returns the used tail.
pub fn decimal(value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = value;
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Writes the report of `frame` (with `cr2` for page and double faults) to `out`, one
/// `\r\n`-terminated line per call.
pub fn write_report(
    frame: &ExceptionFrame,
    cr2: u64,
    landmarks: &[Landmark],
    out: &mut dyn FnMut(&[u8]),
) {
    let (mnemonic, name) = vector_name(frame.vector);
    let mut line = Line::new();
    let mut digits = [0; 20];
    line.push(b"x86-pc: CPU exception ");
    line.push(decimal(frame.vector, &mut digits));
    line.push(b" ");
    line.push(mnemonic.as_bytes());
    line.push(b" ");
    line.push(name.as_bytes());
    if frame.vector == PAGE_FAULT {
        line.push(b" (");
        line.push(page_fault_cause(frame.error_code).as_bytes());
        line.push(b")");
    }
    line.emit(out);

    line.push(b"  error code ");
    line.push(&hex64(frame.error_code));
    let with_cr2 = frame.vector == PAGE_FAULT || frame.vector == DOUBLE_FAULT;
    if with_cr2 {
        line.push(b"  CR2 ");
        line.push(&hex64(cr2));
    }
    line.emit(out);

    if with_cr2 {
        if let Some(mark) = landmarks.iter().find(|m| m.start <= cr2 && cr2 < m.end) {
            line.push(b"  CR2 is in ");
            line.push(mark.meaning.as_bytes());
            line.emit(out);
        }
    }

    registers(
        &mut line,
        out,
        &[
            (b"RIP", frame.rip),
            (b"RSP", frame.rsp),
            (b"RFLAGS", frame.rflags),
        ],
    );
    line.push(b"  CS  ");
    line.push(&hex16(frame.cs as u16));
    line.push(b"  SS ");
    line.push(&hex16(frame.ss as u16));
    line.emit(out);
    registers(
        &mut line,
        out,
        &[
            (b"RAX", frame.rax),
            (b"RBX", frame.rbx),
            (b"RCX", frame.rcx),
            (b"RDX", frame.rdx),
        ],
    );
    registers(
        &mut line,
        out,
        &[
            (b"RSI", frame.rsi),
            (b"RDI", frame.rdi),
            (b"RBP", frame.rbp),
            (b"R8 ", frame.r8),
        ],
    );
    registers(
        &mut line,
        out,
        &[
            (b"R9 ", frame.r9),
            (b"R10", frame.r10),
            (b"R11", frame.r11),
            (b"R12", frame.r12),
        ],
    );
    registers(
        &mut line,
        out,
        &[
            (b"R13", frame.r13),
            (b"R14", frame.r14),
            (b"R15", frame.r15),
        ],
    );
}

fn registers(line: &mut Line, out: &mut dyn FnMut(&[u8]), regs: &[(&[u8], u64)]) {
    for &(name, value) in regs {
        line.push(b"  ");
        line.push(name);
        line.push(b" ");
        line.push(&hex64(value));
    }
    line.emit(out);
}

/// The page fault error code in words: present bit, access kind and privilege.
pub fn page_fault_cause(error_code: u64) -> &'static str {
    let present = error_code & 1 != 0;
    let write = error_code & 2 != 0;
    let user = error_code & 4 != 0;
    let reserved = error_code & 8 != 0;
    let fetch = error_code & 16 != 0;
    if reserved {
        return "reserved bit set in a page table entry";
    }
    match (present, fetch, write, user) {
        (false, true, _, false) => "not-present instruction fetch, kernel",
        (false, true, _, true) => "not-present instruction fetch, user",
        (false, false, false, false) => "not-present read, kernel",
        (false, false, true, false) => "not-present write, kernel",
        (false, false, false, true) => "not-present read, user",
        (false, false, true, true) => "not-present write, user",
        (true, true, _, _) => "protection violation on instruction fetch",
        (true, false, true, _) => "protection violation on write",
        (true, false, false, _) => "protection violation on read",
    }
}

/// A fixed line buffer; long lines are cut, never split.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - 2 - self.len;
        let take = bytes.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
    }

    fn emit(&mut self, out: &mut dyn FnMut(&[u8])) {
        self.buf[self.len..self.len + 2].copy_from_slice(b"\r\n");
        out(&self.buf[..self.len + 2]);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;
    use std::vec::Vec;

    use super::*;

    fn render(frame: &ExceptionFrame, cr2: u64, landmarks: &[Landmark]) -> String {
        let mut text = Vec::new();
        write_report(frame, cr2, landmarks, &mut |bytes| {
            text.extend_from_slice(bytes)
        });
        String::from_utf8(text).unwrap()
    }

    fn frame(vector: u64) -> ExceptionFrame {
        ExceptionFrame {
            r15: 15,
            r14: 14,
            r13: 13,
            r12: 12,
            r11: 11,
            r10: 10,
            r9: 9,
            r8: 8,
            rbp: 0xb,
            rdi: 0xd1,
            rsi: 0x51,
            rdx: 0xd,
            rcx: 0xc,
            rbx: 0xbb,
            rax: 0xaa,
            vector,
            error_code: 0,
            rip: 0x10_1a2c,
            cs: 8,
            rflags: 0x10082,
            rsp: 0x12_3f58,
            ss: 0x10,
        }
    }

    #[test]
    fn invalid_opcode_report_has_every_register() {
        let text = render(&frame(6), 0xdead, &[]);
        assert!(
            text.starts_with("x86-pc: CPU exception 6 #UD invalid opcode\r\n"),
            "{text}"
        );
        assert!(text.contains("error code 0x0000000000000000\r\n"));
        assert!(!text.contains("CR2"), "CR2 only for #PF and #DF: {text}");
        for needle in [
            "RIP 0x0000000000101a2c",
            "RSP 0x0000000000123f58",
            "RFLAGS 0x0000000000010082",
            "CS  0x0008",
            "SS 0x0010",
            "RAX 0x00000000000000aa",
            "RBX 0x00000000000000bb",
            "RCX 0x000000000000000c",
            "RDX 0x000000000000000d",
            "RSI 0x0000000000000051",
            "RDI 0x00000000000000d1",
            "RBP 0x000000000000000b",
            "R8  0x0000000000000008",
            "R9  0x0000000000000009",
            "R10 0x000000000000000a",
            "R11 0x000000000000000b",
            "R12 0x000000000000000c",
            "R13 0x000000000000000d",
            "R14 0x000000000000000e",
            "R15 0x000000000000000f",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(text.split_inclusive('\n').all(|l| l.ends_with("\r\n")));
        assert_eq!(text.lines().count(), 8);
    }

    #[test]
    fn page_fault_report_decodes_the_error_code_and_names_guard_pages() {
        let mut pf = frame(14);
        pf.error_code = 2;
        let guard = [Landmark {
            start: 0x20_0000,
            end: 0x20_1000,
            meaning: "the boot stack guard page",
        }];
        let text = render(&pf, 0x20_0ff8, &guard);
        assert!(text.starts_with(
            "x86-pc: CPU exception 14 #PF page fault (not-present write, kernel)\r\n"
        ));
        assert!(text.contains("error code 0x0000000000000002  CR2 0x0000000000200ff8\r\n"));
        assert!(text.contains("CR2 is in the boot stack guard page\r\n"));
        let text = render(&pf, 0x1000_0000_0000, &guard);
        assert!(text.contains("CR2 0x0000100000000000") && !text.contains("guard"));
        let text = render(&frame(8), 0x20_0000, &guard);
        assert!(text.contains("#DF double fault") && text.contains("guard page"));
    }

    #[test]
    fn page_fault_report_names_protected_pages() {
        use uk_hal::PageAccess;
        assert!(protection_landmark(0x40_3000, PageAccess::ReadWrite).is_none());
        let read_only = protection_landmark(0x40_3abc, PageAccess::ReadOnly).unwrap();
        assert_eq!((read_only.start, read_only.end), (0x40_3000, 0x40_4000));
        let mut pf = frame(14);
        pf.error_code = 3; // present, write
        let text = render(&pf, 0x40_3abc, &[read_only]);
        assert!(
            text.starts_with(
                "x86-pc: CPU exception 14 #PF page fault (protection violation on write)\r\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "  CR2 is in a page PageProtection made read-only (PageAccess::ReadOnly)\r\n"
        ));
        let none = protection_landmark(0x40_3000, PageAccess::None).unwrap();
        pf.error_code = 0; // not present, read
        let text = render(&pf, 0x40_3000, &[none]);
        assert!(
            text.starts_with(
                "x86-pc: CPU exception 14 #PF page fault (not-present read, kernel)\r\n"
            )
        );
        assert!(text.contains(
            "  CR2 is in a page PageProtection made inaccessible (PageAccess::None)\r\n"
        ));
        let text = render(&pf, 0x40_4000, &[none]);
        assert!(!text.contains("PageProtection"), "the next page: {text}");
    }

    #[test]
    fn names_for_all_vectors() {
        for vector in 0..32 {
            let (mnemonic, name) = vector_name(vector);
            assert!(mnemonic.len() == 3 && !name.is_empty());
        }
        assert_eq!(vector_name(13), ("#GP", "general protection"));
        assert_eq!(vector_name(15).1, "reserved vector");
        assert_eq!(vector_name(200).1, "reserved vector");
    }

    #[test]
    fn page_fault_causes() {
        assert_eq!(page_fault_cause(0), "not-present read, kernel");
        assert_eq!(
            page_fault_cause(0b10110),
            "not-present instruction fetch, user"
        );
        assert_eq!(page_fault_cause(0b11), "protection violation on write");
        assert_eq!(
            page_fault_cause(0b1000),
            "reserved bit set in a page table entry"
        );
        assert_eq!(
            page_fault_cause(0b10001),
            "protection violation on instruction fetch"
        );
    }

    #[test]
    fn number_formatting() {
        assert_eq!(&hex64(0), b"0x0000000000000000");
        assert_eq!(&hex64(u64::MAX), b"0xffffffffffffffff");
        assert_eq!(&hex64(0x0123_4567_89ab_cdef), b"0x0123456789abcdef");
        assert_eq!(&hex16(0x10), b"0x0010");
        let mut buf = [0; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(101, &mut buf), b"101");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    /// Each `gregs` number reads its own field of the frame; RIP and RSP written through
    /// the layout land in the frame, RFLAGS is refused.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exception_frame_layout_follows_gregs() {
        use uk_hal::irq::{InterruptedRegisters, PC_REGISTER, SP_REGISTER};
        let mut pf = frame(14);
        pf.error_code = 0xe7;
        let expected = [
            pf.r8, pf.r9, pf.r10, pf.r11, pf.r12, pf.r13, pf.r14, pf.r15, pf.rdi, pf.rsi, pf.rbp,
            pf.rbx, pf.rdx, pf.rax, pf.rcx, pf.rsp, pf.rip, pf.rflags,
        ];
        assert_eq!(
            EXCEPTION_FRAME_LAYOUT[SP_REGISTER],
            uk_hal::irq::RegisterSlot::Word(20)
        );
        assert_eq!(
            EXCEPTION_FRAME_LAYOUT[PC_REGISTER],
            uk_hal::irq::RegisterSlot::Word(17)
        );
        let frame_ptr = core::ptr::NonNull::from(&mut pf).cast::<usize>();
        // SAFETY: the layout names words 0-20 of the 22-word frame, which lives on this
        // stack for the whole test.
        let registers = unsafe { InterruptedRegisters::new(frame_ptr, &EXCEPTION_FRAME_LAYOUT) };
        // SAFETY: the frame is alive (above).
        unsafe {
            for (number, value) in expected.iter().enumerate() {
                assert_eq!(
                    registers.get(number),
                    Some(*value as usize),
                    "gregs {number}"
                );
            }
            assert!(registers.set(PC_REGISTER, 0x1234));
            assert!(registers.set(SP_REGISTER, 0x5678));
            assert!(registers.set(13, 0xaa55));
            assert!(!registers.set(17, 0));
        }
        assert_eq!(
            (pf.rip, pf.rsp, pf.rax, pf.rflags),
            (0x1234, 0x5678, 0xaa55, 0x10082)
        );
        assert_eq!(
            (pf.vector, pf.error_code, pf.cs, pf.ss),
            (14, 0xe7, 8, 0x10)
        );
    }

    #[test]
    fn offered_faults_and_their_access() {
        use uk_hal::fault::{Fault, FaultAccess, MemoryFault};
        let on = RFLAGS_IF | 0x2;
        let offered = [
            DIVIDE_ERROR,
            BREAKPOINT,
            INVALID_OPCODE,
            GENERAL_PROTECTION,
            PAGE_FAULT,
        ];
        for vector in offered {
            assert!(offers_fault(vector, on, false, true), "vector {vector}");
            assert!(!offers_fault(vector, 0x2, false, true), "interrupts masked");
            assert!(!offers_fault(vector, on, true, true), "while reporting");
            assert!(!offers_fault(vector, on, false, false), "no hook");
        }
        for vector in (0..40).filter(|v| !offered.contains(v)) {
            assert!(!offers_fault(vector, on, false, true), "vector {vector}");
            assert_eq!(offered_fault(vector, 0, 0x1000, 0x2000), None);
        }
        let (rip, cr2) = (0x10_0040, 0xdead_b000);
        assert_eq!(
            offered_fault(DIVIDE_ERROR, 0, rip, cr2),
            Some(Fault::DivideError { addr: 0x10_0040 })
        );
        assert_eq!(
            offered_fault(BREAKPOINT, 0, rip, cr2),
            Some(Fault::Breakpoint { addr: 0x10_003f }),
            "the int3 before the trap's RIP"
        );
        assert_eq!(
            offered_fault(INVALID_OPCODE, 0, rip, cr2),
            Some(Fault::IllegalInstruction { addr: 0x10_0040 })
        );
        assert_eq!(
            offered_fault(GENERAL_PROTECTION, 0, rip, cr2),
            Some(Fault::GeneralProtection { addr: 0x10_0040 })
        );
        assert_eq!(
            offered_fault(PAGE_FAULT, 0b10, rip, cr2),
            Some(Fault::Memory(MemoryFault {
                addr: 0xdead_b000,
                access: FaultAccess::Write
            }))
        );
        assert_eq!(fault_access(0), FaultAccess::Read);
        assert_eq!(fault_access(1), FaultAccess::Read);
        assert_eq!(fault_access(0b10), FaultAccess::Write);
        assert_eq!(fault_access(0b11), FaultAccess::Write);
        assert_eq!(fault_access(0b1_0000), FaultAccess::Execute);
        assert_eq!(fault_access(0b1_0001), FaultAccess::Execute);
        assert_eq!(fault_access(0b101), FaultAccess::Read);
    }

    #[test]
    fn error_code_vectors() {
        let with: Vec<u32> = (0..32)
            .filter(|v| ERROR_CODE_VECTORS >> v & 1 == 1)
            .collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }
}
