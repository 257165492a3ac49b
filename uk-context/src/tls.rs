//! Thread-local storage blocks: layout from a TLS template, and their initialisation.
//!
//! An ELF image describes its thread-local data with one `PT_TLS` segment: the initialised
//! bytes (`.tdata`), the size of the zero-initialised rest (`.tbss`), the segment alignment
//! `p_align`, and the segment's address, of which only its remainder modulo `p_align`
//! matters. That is a [`TlsTemplate`]. Each thread gets its own copy, placed relative to the
//! thread pointer the way the architecture's ABI (and thus the linker, which computed every
//! variable's offset) expects:
//!
//! ```text
//! variant II (x86_64)   [pad][.tdata|.tbss][pad][TCB: self pointer, rest of the caller's TCB]
//!                                                ^ tp
//! variant I (aarch64)   [caller's TCB][16-byte reserve][pad][.tdata|.tbss]
//!                                     ^ tp                   ^ tp + 16 + pad (= tp + max(16, p_align)
//!                                                              when the segment is aligned)
//! ```
//!
//! Unlike Unikraft 0.11, whose x86 code rounds the block to 8 bytes and so misplaces data
//! whose segment asks for more, the layout here honours `p_align` (and the segment address
//! remainder) exactly as the linkers compute the offsets (`tp - round_up(memsz, p_align)`
//! for variant II, `tp + round_up(16, p_align)` for variant I).
//!
//! A libc brings its own thread control block (musl's `struct pthread` is 280 bytes on
//! x86_64): [`TcbSpec`] reserves room for it where the ABI puts it, at the thread pointer
//! for variant II (its first word becomes the self pointer, as musl and glibc expect), and
//! directly below the thread pointer for variant I (where musl finds `struct pthread`).

use crate::align_up;
use core::fmt;

/// Which of the two ELF TLS layouts an architecture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVariant {
    /// Variant I (aarch64, riscv): TCB at the thread pointer, data above it.
    I,
    /// Variant II (x86_64, i386): data below the thread pointer, which points at the TCB
    /// whose first word points to itself.
    II,
}

/// The image's TLS initialisation image (its `PT_TLS` segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsTemplate<'a> {
    tdata: &'a [u8],
    tbss_size: usize,
    align: usize,
    vaddr_mod: usize,
}

impl<'a> TlsTemplate<'a> {
    /// A template with no thread-local data.
    pub const EMPTY: TlsTemplate<'static> = TlsTemplate {
        tdata: &[],
        tbss_size: 0,
        align: 1,
        vaddr_mod: 0,
    };

    /// A template from the segment's initialised bytes, the size of its zero-filled part and
    /// its alignment (`p_align`; 0 counts as 1).
    ///
    /// # Errors
    ///
    /// [`TlsError::BadAlign`] if `align` is not a power of two; [`TlsError::TooLarge`] if the
    /// sizes overflow.
    pub const fn new(tdata: &'a [u8], tbss_size: usize, align: usize) -> Result<Self, TlsError> {
        Self::with_vaddr(tdata, tbss_size, align, 0)
    }

    /// As [`TlsTemplate::new`], for a segment whose address `p_vaddr` is not a multiple of
    /// its alignment: `vaddr` is the segment's address (only `vaddr % align` is used).
    ///
    /// # Errors
    ///
    /// As [`TlsTemplate::new`].
    pub const fn with_vaddr(
        tdata: &'a [u8],
        tbss_size: usize,
        align: usize,
        vaddr: usize,
    ) -> Result<Self, TlsError> {
        let align = if align == 0 { 1 } else { align };
        if !align.is_power_of_two() {
            return Err(TlsError::BadAlign);
        }
        if tdata.len().checked_add(tbss_size).is_none() {
            return Err(TlsError::TooLarge);
        }
        Ok(Self {
            tdata,
            tbss_size,
            align,
            vaddr_mod: vaddr & (align - 1),
        })
    }

    /// The initialised bytes (`.tdata`).
    pub const fn tdata(&self) -> &'a [u8] {
        self.tdata
    }

    /// Bytes of zero-initialised data after `.tdata` (`.tbss`).
    pub const fn tbss_size(&self) -> usize {
        self.tbss_size
    }

    /// The segment alignment (`p_align`, at least 1).
    pub const fn align(&self) -> usize {
        self.align
    }

    /// Total bytes of thread-local data (`p_memsz`).
    pub const fn mem_size(&self) -> usize {
        self.tdata.len() + self.tbss_size
    }
}

/// Size and alignment of the thread control block a caller wants next to the TLS data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcbSpec {
    /// Bytes of the caller's TCB (0 for none).
    pub size: usize,
    /// Its alignment (a power of two).
    pub align: usize,
}

impl TcbSpec {
    /// No TCB beyond what the ABI itself reserves.
    pub const NONE: Self = Self { size: 0, align: 1 };

    /// Room for a `T` (for example a libc's thread structure).
    pub const fn of<T>() -> Self {
        Self {
            size: core::mem::size_of::<T>(),
            align: core::mem::align_of::<T>(),
        }
    }
}

/// Why a TLS layout could not be made or applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// An alignment is not a power of two.
    BadAlign,
    /// The sizes overflow the address space.
    TooLarge,
    /// The memory offered is smaller than [`TlsLayout::size`].
    AreaTooSmall,
    /// The memory offered is not aligned to [`TlsLayout::align`].
    AreaMisaligned,
    /// The template is not the one the layout was computed for.
    TemplateMismatch,
    /// The image's `.tdata` bounds are reversed (end before start).
    BadBounds,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadAlign => "alignment is not a power of two",
            Self::TooLarge => "TLS block size overflows",
            Self::AreaTooSmall => "memory for the TLS block is too small",
            Self::AreaMisaligned => "memory for the TLS block is misaligned",
            Self::TemplateMismatch => "TLS template does not match the layout",
            Self::BadBounds => "the image's .tdata ends before it starts",
        })
    }
}

impl core::error::Error for TlsError {}

/// Where everything goes in one thread's TLS block; offsets are from the block's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLayout {
    /// The variant this layout follows.
    pub variant: TlsVariant,
    /// Bytes of the whole block.
    pub size: usize,
    /// Alignment the block's memory needs.
    pub align: usize,
    /// Offset of the thread pointer.
    pub tp_offset: usize,
    /// Offset of the first byte of `.tdata`.
    pub data_offset: usize,
    /// Offset of the caller's TCB (equal to `tp_offset` for variant II, below it for
    /// variant I); its size is [`TcbSpec::size`].
    pub tcb_offset: usize,
    /// Bytes of the caller's TCB.
    pub tcb_size: usize,
    /// Bytes of thread-local data (`.tdata` + `.tbss`).
    pub mem_size: usize,
    /// Bytes of `.tdata`.
    pub tdata_size: usize,
}

/// The 16 bytes variant I reserves at the thread pointer (two words on 64-bit).
const VARIANT_I_RESERVE: usize = 16;

impl TlsLayout {
    /// Computes the block layout for `template` with room for `tcb`.
    ///
    /// # Errors
    ///
    /// [`TlsError::BadAlign`] if `tcb.align` is not a power of two, [`TlsError::TooLarge`]
    /// on overflow.
    pub fn new(
        variant: TlsVariant,
        template: &TlsTemplate<'_>,
        tcb: TcbSpec,
    ) -> Result<Self, TlsError> {
        if !tcb.align.is_power_of_two() {
            return Err(TlsError::BadAlign);
        }
        let p_align = template.align;
        let mem = template.mem_size();
        let word = core::mem::size_of::<usize>();
        let too_large = TlsError::TooLarge;
        let layout = match variant {
            TlsVariant::II => {
                // The linker places a variable at tp - memsz - pad + offset, with pad such
                // that (tp - data) keeps the segment address' remainder modulo p_align.
                let align = p_align.max(tcb.align).max(word);
                let pad =
                    p_align.wrapping_sub(template.vaddr_mod).wrapping_sub(mem) & (p_align - 1);
                let span = mem.checked_add(pad).ok_or(too_large)?;
                let tp_offset = align_up(span, align).ok_or(too_large)?;
                let tcb_size = tcb.size.max(word);
                let size = tp_offset
                    .checked_add(tcb_size)
                    .and_then(|s| align_up(s, align))
                    .ok_or(too_large)?;
                Ok::<_, TlsError>(Self {
                    variant,
                    size,
                    align,
                    tp_offset,
                    data_offset: tp_offset - span,
                    tcb_offset: tp_offset,
                    tcb_size,
                    mem_size: mem,
                    tdata_size: template.tdata.len(),
                })
            }
            TlsVariant::I => {
                // The linker places a variable at tp + 16 + ((vaddr - 16) mod p_align) + offset.
                let align = p_align.max(tcb.align).max(VARIANT_I_RESERVE);
                let gap = VARIANT_I_RESERVE
                    + (template.vaddr_mod.wrapping_sub(VARIANT_I_RESERVE) & (p_align - 1));
                let tp_offset = align_up(tcb.size, align).ok_or(too_large)?;
                let data_offset = tp_offset.checked_add(gap).ok_or(too_large)?;
                let size = data_offset
                    .checked_add(mem)
                    .and_then(|s| align_up(s, align))
                    .ok_or(too_large)?;
                Ok(Self {
                    variant,
                    size,
                    align,
                    tp_offset,
                    data_offset,
                    tcb_offset: tp_offset - tcb.size,
                    tcb_size: tcb.size,
                    mem_size: mem,
                    tdata_size: template.tdata.len(),
                })
            }
        }?;
        // Keep every block allocatable (`Layout` requires size <= isize::MAX).
        if layout.size > isize::MAX as usize {
            return Err(too_large);
        }
        Ok(layout)
    }

    /// The memory layout to allocate the block with.
    pub fn alloc_layout(&self) -> core::alloc::Layout {
        // A size of zero cannot happen (there is always a TCB reserve); `align` is a power
        // of two and `size` a multiple of it, so this never fails.
        core::alloc::Layout::from_size_align(self.size, self.align).expect("valid TLS layout")
    }

    /// Fills `area` with a fresh block: `.tdata` copied, everything else zero, and for
    /// variant II the self pointer at the thread pointer. Returns the thread pointer value.
    ///
    /// # Errors
    ///
    /// [`TlsError::AreaTooSmall`], [`TlsError::AreaMisaligned`], or
    /// [`TlsError::TemplateMismatch`] if `template` has other sizes than the layout's.
    pub fn init(&self, template: &TlsTemplate<'_>, area: &mut [u8]) -> Result<usize, TlsError> {
        if template.tdata.len() != self.tdata_size || template.mem_size() != self.mem_size {
            return Err(TlsError::TemplateMismatch);
        }
        if area.len() < self.size {
            return Err(TlsError::AreaTooSmall);
        }
        if area.as_ptr() as usize & (self.align - 1) != 0 {
            return Err(TlsError::AreaMisaligned);
        }
        let area = &mut area[..self.size];
        area.fill(0);
        area[self.data_offset..self.data_offset + self.tdata_size].copy_from_slice(template.tdata);
        let tp = area.as_ptr() as usize + self.tp_offset;
        if self.variant == TlsVariant::II {
            let word = core::mem::size_of::<usize>();
            area[self.tp_offset..self.tp_offset + word].copy_from_slice(&tp.to_ne_bytes());
        }
        Ok(tp)
    }

    /// Offset from the thread pointer (may be negative) of the byte at `offset` within the
    /// TLS data, as the linker computes it for a thread-local variable.
    pub fn tp_relative(&self, offset: usize) -> isize {
        (self.data_offset + offset) as isize - self.tp_offset as isize
    }
}

/// The length of `.tdata` from the bounds the board's linker script exports, after checking
/// them and the alignment (the pure part of `image_template`, which exists on bare metal).
///
/// # Errors
///
/// [`TlsError::BadBounds`] if `end < start`; [`TlsError::BadAlign`] if `align` is neither 0
/// nor a power of two; [`TlsError::TooLarge`] if the segment overflows the address space.
pub const fn image_tdata_len(
    start: usize,
    end: usize,
    tbss_size: usize,
    align: usize,
) -> Result<usize, TlsError> {
    if end < start {
        return Err(TlsError::BadBounds);
    }
    if align != 0 && !align.is_power_of_two() {
        return Err(TlsError::BadAlign);
    }
    let len = end - start;
    match start.checked_add(len) {
        Some(e) if e.checked_add(tbss_size).is_some() => Ok(len),
        _ => Err(TlsError::TooLarge),
    }
}

/// The image's own TLS template: its `.tdata` bytes, `.tbss` size (with the padding before
/// it), alignment and address, from the symbols the board's linker script exports
/// (`__uk_tdata_start`, `__uk_tdata_end`, `__uk_tbss_size`, `__uk_tls_align`). Every board
/// of this workspace links with such a script; an image that calls this without one fails
/// to link.
///
/// # Errors
///
/// As [`image_tdata_len`], should the linker script export inconsistent values.
#[cfg(target_os = "none")]
pub fn image_template() -> Result<TlsTemplate<'static>, TlsError> {
    unsafe extern "C" {
        static __uk_tdata_start: u8;
        static __uk_tdata_end: u8;
        static __uk_tbss_size: u8;
        static __uk_tls_align: u8;
    }
    // Only the symbols' addresses are taken (the last two are plain numbers the linker
    // script defines as symbol values); no memory is read here.
    let start = (&raw const __uk_tdata_start) as usize;
    let end = (&raw const __uk_tdata_end) as usize;
    let tbss_size = (&raw const __uk_tbss_size) as usize;
    let align = (&raw const __uk_tls_align) as usize;
    let len = image_tdata_len(start, end, tbss_size, align)?;
    // SAFETY: `start..end` is the image's `.tdata` output section, loaded with the image,
    // never written (threads get copies) and alive for the image's lifetime.
    let tdata = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
    TlsTemplate::with_vaddr(tdata, tbss_size, align, start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn image_bounds_are_checked() {
        assert_eq!(image_tdata_len(0x1000, 0x1010, 8, 16), Ok(16));
        assert_eq!(image_tdata_len(0x1000, 0x1000, 0, 0), Ok(0));
        assert_eq!(
            image_tdata_len(0x1010, 0x1000, 0, 8),
            Err(TlsError::BadBounds)
        );
        assert_eq!(
            image_tdata_len(0x1000, 0x1008, 0, 24),
            Err(TlsError::BadAlign)
        );
        assert_eq!(
            image_tdata_len(usize::MAX - 8, usize::MAX, 16, 8),
            Err(TlsError::TooLarge)
        );
    }

    /// An aligned buffer of `size` bytes.
    fn aligned(size: usize, align: usize) -> (Vec<u8>, usize) {
        let v = vec![0xAAu8; size + align];
        let start = (align - (v.as_ptr() as usize & (align - 1))) & (align - 1);
        (v, start)
    }

    /// The linkers' offset formulas, written independently from `TlsLayout`.
    fn linker_tp_offset(variant: TlsVariant, mem: usize, align: usize, vaddr: usize) -> isize {
        let (mem, align, vaddr) = (mem as isize, align as isize, vaddr as isize);
        match variant {
            TlsVariant::II => -(mem + ((-vaddr - mem).rem_euclid(align))),
            TlsVariant::I => 16 + (vaddr - 16).rem_euclid(align),
        }
    }

    #[test]
    fn variant_ii_matches_linker_for_many_shapes() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for tdata_len in [0usize, 1, 7, 8, 9, 63, 64, 65, 300] {
                for tbss in [0usize, 1, 5, 16, 100] {
                    for vaddr in [0usize, 1, 3, 8, 17] {
                        for tcb in [
                            TcbSpec::NONE,
                            TcbSpec {
                                size: 280,
                                align: 8,
                            },
                            TcbSpec {
                                size: 64,
                                align: 64,
                            },
                        ] {
                            let t = TlsTemplate::with_vaddr(&data[..tdata_len], tbss, align, vaddr)
                                .unwrap();
                            let l = TlsLayout::new(TlsVariant::II, &t, tcb).unwrap();
                            check_layout(&t, &l, tcb, vaddr);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn variant_i_matches_linker_for_many_shapes() {
        let data: Vec<u8> = (0..=255u8).rev().cycle().take(300).collect();
        for align in [1usize, 2, 8, 16, 32, 64, 256, 4096] {
            for tdata_len in [0usize, 1, 15, 16, 17, 300] {
                for tbss in [0usize, 3, 16, 100] {
                    for vaddr in [0usize, 4, 16, 33] {
                        for tcb in [
                            TcbSpec::NONE,
                            TcbSpec {
                                size: 200,
                                align: 8,
                            },
                            TcbSpec {
                                size: 128,
                                align: 128,
                            },
                        ] {
                            let t = TlsTemplate::with_vaddr(&data[..tdata_len], tbss, align, vaddr)
                                .unwrap();
                            let l = TlsLayout::new(TlsVariant::I, &t, tcb).unwrap();
                            check_layout(&t, &l, tcb, vaddr);
                        }
                    }
                }
            }
        }
    }

    fn check_layout(t: &TlsTemplate<'_>, l: &TlsLayout, tcb: TcbSpec, vaddr: usize) {
        let align = t.align();
        // Offsets match what the linker bakes into the code.
        assert_eq!(
            l.tp_relative(0),
            linker_tp_offset(l.variant, t.mem_size(), align, vaddr),
            "{l:?}"
        );
        // Alignments: block, tp, data (keeps the segment address remainder), TCB.
        assert!(l.align.is_power_of_two() && l.align >= align && l.align >= tcb.align);
        assert_eq!(l.size % l.align, 0);
        assert_eq!(l.tp_offset % align, 0);
        assert_eq!(l.data_offset % align, vaddr % align, "{l:?}");
        assert_eq!(l.tcb_offset % tcb.align, 0);
        // Everything inside the block and disjoint.
        assert!(l.data_offset + t.mem_size() <= l.size);
        assert!(l.tcb_offset + l.tcb_size <= l.size);
        assert!(l.tcb_size >= tcb.size);
        match l.variant {
            TlsVariant::II => {
                assert_eq!(l.tcb_offset, l.tp_offset);
                assert!(l.data_offset + t.mem_size() <= l.tp_offset);
                assert!(l.tcb_size >= 8);
            }
            TlsVariant::I => {
                assert_eq!(l.tcb_offset + tcb.size, l.tp_offset);
                assert!(l.data_offset >= l.tp_offset + 16);
                if vaddr % align == 0 {
                    assert_eq!(l.data_offset - l.tp_offset, 16.max(align));
                }
            }
        }
        // Initialise real memory and look at it.
        let (mut buf, start) = aligned(l.size, l.align);
        let area = &mut buf[start..start + l.size];
        let tp = l.init(t, area).unwrap();
        assert_eq!(tp, area.as_ptr() as usize + l.tp_offset);
        assert_eq!(
            &area[l.data_offset..l.data_offset + t.tdata().len()],
            t.tdata()
        );
        let tbss = l.data_offset + t.tdata().len()..l.data_offset + t.mem_size();
        assert!(area[tbss].iter().all(|&b| b == 0));
        if l.variant == TlsVariant::II {
            let word = usize::from_ne_bytes(area[l.tp_offset..l.tp_offset + 8].try_into().unwrap());
            assert_eq!(word, tp, "self pointer");
            assert!(area[l.tp_offset + 8..].iter().all(|&b| b == 0));
        } else {
            assert!(area[l.tcb_offset..l.data_offset].iter().all(|&b| b == 0));
        }
    }

    /// Unikraft 0.11 rounds the x86 TLS size to 8 and ignores `p_align`: a 64-byte aligned
    /// segment of 8 bytes then starts at tp - 8, which is not 64-byte aligned.
    #[test]
    fn p_align_is_honoured_unlike_0_11() {
        let t = TlsTemplate::new(&[1, 2, 3, 4, 5, 6, 7, 8], 0, 64).unwrap();
        let l = TlsLayout::new(TlsVariant::II, &t, TcbSpec::NONE).unwrap();
        assert_eq!(l.tp_relative(0), -64);
        let (mut buf, start) = aligned(l.size, l.align);
        let tp = l.init(&t, &mut buf[start..start + l.size]).unwrap();
        assert_eq!((tp - 64) % 64, 0);
        let l = TlsLayout::new(TlsVariant::I, &t, TcbSpec::NONE).unwrap();
        assert_eq!(l.tp_relative(0), 64);
    }

    /// musl's `struct pthread` is 280 bytes on x86_64 and starts with its self pointer.
    #[test]
    fn musl_sized_tcb() {
        #[repr(C)]
        struct FakePthread {
            this: usize,
            rest: [u64; 34],
        }
        assert_eq!(core::mem::size_of::<FakePthread>(), 280);
        let t = TlsTemplate::new(&[9; 12], 20, 8).unwrap();
        let l = TlsLayout::new(TlsVariant::II, &t, TcbSpec::of::<FakePthread>()).unwrap();
        assert_eq!(l.tcb_size, 280);
        assert_eq!(l.size, l.tp_offset + 280);
        let l = TlsLayout::new(TlsVariant::I, &t, TcbSpec::of::<FakePthread>()).unwrap();
        assert_eq!(l.tcb_offset + 280, l.tp_offset);
        assert_eq!(l.data_offset, l.tp_offset + 16);
    }

    #[test]
    fn bad_input_is_rejected() {
        assert_eq!(TlsTemplate::new(&[], 0, 3), Err(TlsError::BadAlign));
        assert_eq!(
            TlsTemplate::new(&[1], usize::MAX, 8),
            Err(TlsError::TooLarge)
        );
        let t = TlsTemplate::new(&[], usize::MAX - 64, 8).unwrap();
        assert_eq!(
            TlsLayout::new(TlsVariant::II, &t, TcbSpec::NONE),
            Err(TlsError::TooLarge)
        );
        assert_eq!(
            TlsLayout::new(TlsVariant::I, &t, TcbSpec::NONE),
            Err(TlsError::TooLarge)
        );
        let t = TlsTemplate::new(&[1, 2], 2, 16).unwrap();
        assert_eq!(
            TlsLayout::new(TlsVariant::I, &t, TcbSpec { size: 8, align: 12 }),
            Err(TlsError::BadAlign)
        );
        let l = TlsLayout::new(TlsVariant::II, &t, TcbSpec::NONE).unwrap();
        let (mut buf, start) = aligned(l.size + 1, l.align);
        assert_eq!(
            l.init(&t, &mut buf[start..start + l.size - 1]),
            Err(TlsError::AreaTooSmall)
        );
        assert_eq!(
            l.init(&t, &mut buf[start + 1..start + 1 + l.size]),
            Err(TlsError::AreaMisaligned)
        );
        let other = TlsTemplate::new(&[1], 2, 16).unwrap();
        assert_eq!(
            l.init(&other, &mut buf[start..start + l.size]),
            Err(TlsError::TemplateMismatch)
        );
        assert_eq!(TlsTemplate::new(&[], 0, 0).unwrap().align(), 1);
        assert_eq!(TlsTemplate::EMPTY.mem_size(), 0);
    }
}
