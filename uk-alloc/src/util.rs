//! Small helpers shared by the backends: alignment arithmetic and raw bitmaps.

use crate::AllocError;

/// Rounds `x` up to a multiple of the power of two `align`; `None` on overflow.
#[inline(always)]
pub(crate) const fn align_up(x: usize, align: usize) -> Option<usize> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Rounds `x` down to a multiple of the power of two `align`.
#[inline(always)]
pub(crate) const fn align_down(x: usize, align: usize) -> usize {
    x & !(align - 1)
}

/// Index of the most significant set bit of a non-zero `x`.
#[inline(always)]
pub(crate) const fn msb(x: usize) -> u32 {
    usize::BITS - 1 - x.leading_zeros()
}

/// Checks that `part_pages` pages at `part` are a non-empty, page-aligned piece of the
/// `run_pages` pages at `run` (the arguments of [`crate::Allocator::pfree_part`]) and returns
/// how many pages of the run lie before the part and after it. Anything else, including a
/// misaligned or empty run or part and a byte count that overflows, is
/// [`AllocError::BadFree`].
pub(crate) fn part_of_run(
    run: usize,
    run_pages: usize,
    part: usize,
    part_pages: usize,
) -> Result<(usize, usize), AllocError> {
    use crate::PAGE_SIZE;
    let run_end = run_pages
        .checked_mul(PAGE_SIZE)
        .and_then(|bytes| run.checked_add(bytes));
    let part_end = part_pages
        .checked_mul(PAGE_SIZE)
        .and_then(|bytes| part.checked_add(bytes));
    match (run_end, part_end) {
        (Some(run_end), Some(part_end))
            if run % PAGE_SIZE == 0
                && part % PAGE_SIZE == 0
                && part_pages > 0
                && run <= part
                && part_end <= run_end =>
        {
            Ok(((part - run) / PAGE_SIZE, (run_end - part_end) / PAGE_SIZE))
        }
        _ => Err(AllocError::BadFree),
    }
}

/// Asks the CPU to start loading the cache line holding `p` (a hint for data needed a few
/// instructions later, so that its load overlaps other misses). Any address is fine: the
/// prefetch instructions never fault and change no architectural state.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults, whatever the address, and writes no
    // register, flag or memory.
    unsafe {
        core::arch::asm!("prefetcht0 [{}]", in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PRFM is a hint that never faults, whatever the address, and writes no
    // register, flag or memory.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{}]", in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// A bitmap living in memory the allocator manages (its own metadata), addressed by bit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawBitmap {
    words: *mut u64,
}

impl RawBitmap {
    /// Bytes a bitmap of `bits` bits occupies.
    pub(crate) const fn bytes_for(bits: usize) -> usize {
        bits.div_ceil(64) * 8
    }

    /// # Safety
    ///
    /// `words` must be 8-byte aligned and valid for reads and writes of every word any later
    /// call addresses, for as long as the bitmap is used.
    pub(crate) const unsafe fn new(words: *mut u64) -> Self {
        RawBitmap { words }
    }

    /// Clears the first `bits` bits.
    ///
    /// # Safety
    ///
    /// The bitmap must hold at least `bits` bits.
    pub(crate) unsafe fn clear_all(self, bits: usize) {
        // SAFETY: the caller guarantees the words exist and are writable.
        unsafe { self.words.write_bytes(0, bits.div_ceil(64)) };
    }

    /// # Safety
    ///
    /// `i` must be within the bitmap.
    #[inline(always)]
    pub(crate) unsafe fn get(self, i: usize) -> bool {
        // SAFETY: the caller guarantees word `i / 64` is within the bitmap.
        unsafe { (*self.words.add(i / 64) >> (i % 64)) & 1 != 0 }
    }

    /// # Safety
    ///
    /// `i` must be within the bitmap.
    #[inline(always)]
    pub(crate) unsafe fn set(self, i: usize, on: bool) {
        // SAFETY: the caller guarantees word `i / 64` is within the bitmap.
        let w = unsafe { &mut *self.words.add(i / 64) };
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    /// Whether any bit in `from..to` is set.
    ///
    /// # Safety
    ///
    /// `to` must not exceed the bitmap's size.
    pub(crate) unsafe fn any(self, from: usize, to: usize) -> bool {
        let mut i = from;
        while i < to {
            if i % 64 == 0 && to - i >= 64 {
                // SAFETY: the whole word lies below `to`, within the bitmap.
                if unsafe { *self.words.add(i / 64) } != 0 {
                    return true;
                }
                i += 64;
            } else {
                // SAFETY: `i < to`, within the bitmap.
                if unsafe { self.get(i) } {
                    return true;
                }
                i += 1;
            }
        }
        false
    }
}

/// A bitmap in memory that holds garbage when it is created, usable without clearing it
/// first, so that creating one is constant time whatever its size.
///
/// Two summary levels say which words hold meaningful bits: bit `w` of `level1` is set once
/// word `w` of the bitmap has been initialised, and bit `v` of `level2` once word `v` of
/// `level1` has. Only `level2` (one bit per 4096 words of bitmap: 2 KiB for 2^26 bits) is
/// cleared at creation; a word is zeroed the first time a bit in it is set. A bit in a word
/// never initialised reads as clear.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LazyBitmap {
    bits: *mut u64,
    level1: *mut u64,
    level2: *mut u64,
}

impl LazyBitmap {
    const fn words(bits: usize) -> (usize, usize, usize) {
        let w0 = bits.div_ceil(64);
        let w1 = w0.div_ceil(64);
        (w0, w1, w1.div_ceil(64))
    }

    /// Bytes a bitmap of `bits` bits occupies, summaries included (about 1/63 more than
    /// the bits themselves).
    pub(crate) const fn bytes_for(bits: usize) -> usize {
        let (w0, w1, w2) = Self::words(bits);
        (w0 + w1 + w2) * 8
    }

    /// Lays a bitmap of `bits` bits out at `words` (whatever those words hold) and clears
    /// its top summary level, the only part that needs it.
    ///
    /// # Safety
    ///
    /// `words` must be 8-byte aligned and valid for reads and writes of
    /// [`LazyBitmap::bytes_for`]`(bits)` bytes for as long as the bitmap is used.
    pub(crate) unsafe fn new(words: *mut u64, bits: usize) -> Self {
        let (_, w1, w2) = Self::words(bits);
        // SAFETY: the three levels lie within the `bytes_for(bits)` bytes the caller gave.
        unsafe {
            let level2 = words;
            let level1 = words.add(w2);
            level2.write_bytes(0, w2);
            LazyBitmap {
                bits: level1.add(w1),
                level1,
                level2,
            }
        }
    }

    /// Whether word `w` of `map`, whose validity is bit `w` of `summary`, has been
    /// initialised.
    #[inline(always)]
    unsafe fn valid(summary: *mut u64, w: usize) -> bool {
        // SAFETY: the caller guarantees the summary word exists.
        unsafe { (*summary.add(w / 64) >> (w % 64)) & 1 != 0 }
    }

    /// # Safety
    ///
    /// `i` must be within the bitmap.
    #[inline(always)]
    pub(crate) unsafe fn get(self, i: usize) -> bool {
        let (w, v) = (i / 64, i / 4096);
        // SAFETY: `i` is within the bitmap, so word `w`, summary word `v` and their
        // summary bits exist; a word is read only once its summary says it is initialised.
        unsafe {
            Self::valid(self.level2, v)
                && Self::valid(self.level1, w)
                && (*self.bits.add(w) >> (i % 64)) & 1 != 0
        }
    }

    /// # Safety
    ///
    /// `i` must be within the bitmap.
    #[inline(always)]
    pub(crate) unsafe fn set(self, i: usize, on: bool) {
        let (w, v) = (i / 64, i / 4096);
        // SAFETY: as in `get`; a word is zeroed before its summary bit says it is valid.
        unsafe {
            if !Self::valid(self.level2, v) {
                if !on {
                    return; // reads as clear already
                }
                *self.level1.add(v) = 0;
                *self.level2.add(v / 64) |= 1 << (v % 64);
            }
            if !Self::valid(self.level1, w) {
                if !on {
                    return;
                }
                *self.bits.add(w) = 0;
                *self.level1.add(w / 64) |= 1 << (w % 64);
            }
            let word = &mut *self.bits.add(w);
            if on {
                *word |= 1 << (i % 64);
            } else {
                *word &= !(1 << (i % 64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_bitmap_ignores_garbage_and_matches_a_model() {
        // Sizes around the summary boundaries, over memory full of set bits.
        for bits in [1, 63, 64, 65, 4095, 4096, 4097, 3 * 4096 + 130, 300_000] {
            let mut words = std::vec![u64::MAX; LazyBitmap::bytes_for(bits) / 8];
            // SAFETY: `words` has exactly `bytes_for(bits)` bytes and outlives the bitmap.
            let bm = unsafe { LazyBitmap::new(words.as_mut_ptr(), bits) };
            let mut model = std::vec![false; bits];
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ bits as u64;
            for _ in 0..4 * bits.min(20_000) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % bits as u64) as usize;
                let on = x >> 63 == 0;
                // SAFETY: `i < bits`.
                unsafe { bm.set(i, on) };
                model[i] = on;
            }
            for (i, &m) in model.iter().enumerate() {
                // SAFETY: `i < bits`.
                assert_eq!(unsafe { bm.get(i) }, m, "bit {i} of {bits}");
            }
        }
    }

    #[test]
    fn part_of_run_checks_every_edge() {
        const P: usize = crate::PAGE_SIZE;
        let run = 16 * P;
        assert_eq!(part_of_run(run, 8, run, 8), Ok((0, 0)));
        assert_eq!(part_of_run(run, 8, run, 3), Ok((0, 5)));
        assert_eq!(part_of_run(run, 8, run + 5 * P, 3), Ok((5, 0)));
        assert_eq!(part_of_run(run, 8, run + 2 * P, 3), Ok((2, 3)));
        for (r, n, p, m) in [
            (run, 8, run, 0),                                     // empty part
            (run, 8, run - P, 2),                                 // starts before the run
            (run, 8, run + 6 * P, 3),                             // ends after it
            (run, 8, run + 8 * P, 1),                             // just past it
            (run, 8, run + 1, 1),                                 // misaligned part
            (run + 1, 8, run + P, 1),                             // misaligned run
            (run, 0, run, 1),                                     // empty run
            (run, usize::MAX, run, 1),                            // the run's bytes overflow
            (run, 8, run, usize::MAX / 2),                        // the part's bytes overflow
            (usize::MAX & !(P - 1), 2, usize::MAX & !(P - 1), 1), // past the address space
        ] {
            assert_eq!(
                part_of_run(r, n, p, m),
                Err(AllocError::BadFree),
                "{r:#x} {n} {p:#x} {m}"
            );
        }
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(0, 16), Some(0));
        assert_eq!(align_up(1, 16), Some(16));
        assert_eq!(align_up(usize::MAX, 16), None);
        assert_eq!(align_down(31, 16), 16);
        assert_eq!(msb(1), 0);
        assert_eq!(msb(4096), 12);
    }

    #[test]
    fn bitmap() {
        let mut words = [u64::MAX; 4];
        // SAFETY: four words back the 256-bit bitmap.
        let bm = unsafe { RawBitmap::new(words.as_mut_ptr()) };
        // SAFETY: every index below is under 256.
        unsafe {
            bm.clear_all(256);
            assert!(!bm.any(0, 256));
            bm.set(130, true);
            assert!(bm.get(130));
            assert!(bm.any(0, 256));
            assert!(bm.any(130, 131));
            assert!(!bm.any(0, 130));
            assert!(!bm.any(131, 256));
            bm.set(130, false);
            assert!(!bm.any(0, 256));
        }
        assert_eq!(RawBitmap::bytes_for(65), 16);
    }
}
