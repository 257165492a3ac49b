//! Small helpers shared by the backends: alignment arithmetic and raw bitmaps.

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

#[cfg(test)]
mod tests {
    use super::*;

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
