//! Copying to and from caller memory: every pointer a syscall takes is checked against the
//! memory the board reported before it is touched, so a bad pointer is `EFAULT`, never a
//! fault of the kernel.
//!
//! There is one address space (the image's); "user" memory is any byte the caller may
//! name: the RAM regions of the board and the image itself (statics, boot stack), minus the
//! NULL page. An [`AddressSpace`] holds those ranges; a [`UserPtr`] or [`UserSlice`] is an
//! unchecked address until one of its accessors checks it against a space.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use uk_syscall::Errno;

/// Size of the NULL page: addresses below it are never valid.
pub const NULL_PAGE: usize = 4096;

/// Most ranges an [`AddressSpace`] holds.
pub const MAX_RANGES: usize = 32;

/// Memory a caller may name: up to [`MAX_RANGES`] disjoint `[start, end)` ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    ranges: [(usize, usize); MAX_RANGES],
    len: usize,
}

impl AddressSpace {
    /// A space with no valid byte.
    pub const fn empty() -> Self {
        Self {
            ranges: [(0, 0); MAX_RANGES],
            len: 0,
        }
    }

    /// The lower half of a 48-bit address space above the NULL page: the default of a
    /// hosted build, where the process's memory is wherever the host put it.
    pub const fn hosted() -> Self {
        let mut space = Self::empty();
        space.ranges[0] = (NULL_PAGE, 1 << 47);
        space.len = 1;
        space
    }

    /// Adds `[start, start + len)`, clipped above the NULL page. Ranges past
    /// [`MAX_RANGES`], empty ones and overflowing ones are ignored (and reported `false`).
    pub fn add(&mut self, start: usize, len: usize) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        let start = start.max(NULL_PAGE);
        if start >= end || self.len == MAX_RANGES {
            return false;
        }
        self.ranges[self.len] = (start, end);
        self.len += 1;
        true
    }

    /// The ranges, in the order added.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges[..self.len]
    }

    /// Whether every byte of `[addr, addr + len)` lies in one range. A zero length is
    /// valid at any address outside the NULL page.
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        if addr < NULL_PAGE {
            return false;
        }
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.ranges()
            .iter()
            .any(|&(s, e)| addr >= s && end <= e && (len > 0 || addr < e))
    }

    /// `Ok` if [`AddressSpace::contains`], else `EFAULT`.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a range not wholly inside the space.
    pub fn check(&self, addr: usize, len: usize) -> Result<(), Errno> {
        if self.contains(addr, len) {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }
}

/// A caller's pointer to one `T`; checked on every access.
#[derive(Debug)]
pub struct UserPtr<T> {
    addr: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for UserPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for UserPtr<T> {}

impl<T: Copy> UserPtr<T> {
    /// The pointer the caller passed.
    pub const fn new(addr: usize) -> Self {
        Self {
            addr,
            _t: PhantomData,
        }
    }

    /// The raw address.
    pub const fn addr(self) -> usize {
        self.addr
    }

    /// Whether the caller passed NULL (many syscalls treat NULL as "no value").
    pub const fn is_null(self) -> bool {
        self.addr == 0
    }

    /// Checks that the whole `T` lies in `space`.
    ///
    /// # Errors
    ///
    /// `EFAULT`.
    pub fn check(self, space: &AddressSpace) -> Result<(), Errno> {
        space.check(self.addr, size_of::<T>())
    }

    /// Copies the value in (unaligned reads are fine).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a pointer outside `space`.
    pub fn read(self, space: &AddressSpace) -> Result<T, Errno> {
        self.check(space)?;
        // SAFETY: the `size_of::<T>()` bytes at `addr` are RAM of the image (checked
        // above); `T: Copy` is a plain-data ABI structure for which any bit pattern the
        // caller wrote is a value; unaligned access is explicit.
        Ok(unsafe { core::ptr::read_unaligned(self.addr as *const T) })
    }

    /// Copies `value` out.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a pointer outside `space`; nothing is written then.
    pub fn write(self, space: &AddressSpace, value: T) -> Result<(), Errno> {
        self.check(space)?;
        // SAFETY: checked RAM of the image, which the caller handed us to write; the
        // caller owns it (a syscall's output argument), and unaligned access is explicit.
        unsafe { core::ptr::write_unaligned(self.addr as *mut T, value) };
        Ok(())
    }
}

impl UserPtr<u32> {
    /// The 32-bit word as an atomic (futex words): it must be 4-byte aligned.
    ///
    /// # Errors
    ///
    /// `EINVAL` when misaligned (as Linux's futex), `EFAULT` outside `space`.
    pub fn atomic(self, space: &AddressSpace) -> Result<&'static AtomicU32, Errno> {
        if self.addr % 4 != 0 {
            return Err(Errno::EINVAL);
        }
        self.check(space)?;
        // SAFETY: aligned, checked RAM of the image, which stays mapped for the image's
        // life (one address space, nothing is ever unmapped); `AtomicU32` has the layout
        // of `u32`, and every access to the word from here on is atomic.
        Ok(unsafe { AtomicU32::from_ptr(self.addr as *mut u32) })
    }

    /// Atomically loads the word (sequentially consistent).
    ///
    /// # Errors
    ///
    /// As [`UserPtr::atomic`].
    pub fn load(self, space: &AddressSpace) -> Result<u32, Errno> {
        Ok(self.atomic(space)?.load(Ordering::SeqCst))
    }
}

/// A caller's buffer of bytes; checked on every access.
#[derive(Clone, Copy, Debug)]
pub struct UserSlice {
    addr: usize,
    len: usize,
}

impl UserSlice {
    /// The buffer the caller passed.
    pub const fn new(addr: usize, len: usize) -> Self {
        Self { addr, len }
    }

    /// The raw address.
    pub const fn addr(self) -> usize {
        self.addr
    }

    /// Length in bytes.
    pub const fn len(self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to the start of the buffer (at most its length).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space`; nothing is written then.
    pub fn write(self, space: &AddressSpace, bytes: &[u8]) -> Result<usize, Errno> {
        let n = bytes.len().min(self.len);
        if n == 0 {
            return Ok(0);
        }
        space.check(self.addr, n)?;
        // SAFETY: `n` checked bytes of image RAM the caller handed us to write; the source
        // is a Rust slice, which cannot overlap a buffer the caller owns exclusively.
        unsafe { core::ptr::copy(bytes.as_ptr(), self.addr as *mut u8, n) };
        Ok(n)
    }

    /// Fills the whole buffer with `byte`.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space`.
    pub fn fill(self, space: &AddressSpace, byte: u8) -> Result<(), Errno> {
        if self.len == 0 {
            return Ok(());
        }
        space.check(self.addr, self.len)?;
        // SAFETY: checked image RAM the caller handed us to write.
        unsafe { core::ptr::write_bytes(self.addr as *mut u8, byte, self.len) };
        Ok(())
    }

    /// Runs `f` on the buffer as a mutable slice (to fill it in place, e.g. random bytes).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space`; `f` does not run then.
    pub fn with_mut<R>(
        self,
        space: &AddressSpace,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, Errno> {
        if self.len == 0 {
            return Ok(f(&mut []));
        }
        space.check(self.addr, self.len)?;
        // SAFETY: `len` checked bytes of image RAM that the caller handed us as an output
        // buffer for this call; the slice does not outlive `f`.
        let slice = unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) };
        Ok(f(slice))
    }
}

/// The image's own extent, from the boards' linker scripts.
#[cfg(target_os = "none")]
pub(crate) fn image_range() -> (usize, usize) {
    unsafe extern "C" {
        static __uk_image_start: u8;
        static __uk_image_end: u8;
    }
    let start = &raw const __uk_image_start as usize;
    let end = &raw const __uk_image_end as usize;
    (start, end)
}

/// The space of a booted image: every RAM region of the board plus the image.
#[cfg(target_os = "none")]
pub(crate) fn image_space() -> AddressSpace {
    let mut space = AddressSpace::empty();
    let (start, end) = image_range();
    space.add(start, end - start);
    if let Some(platform) = uk_rt::try_platform() {
        for region in platform.memory_regions() {
            space.add(region.base as usize, region.size as usize);
        }
    }
    space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_page_and_outside_are_efault() {
        let space = AddressSpace::hosted();
        assert_eq!(UserPtr::<u64>::new(0).read(&space), Err(Errno::EFAULT));
        assert_eq!(UserPtr::<u64>::new(4095).read(&space), Err(Errno::EFAULT));
        assert_eq!(
            UserPtr::<u64>::new(usize::MAX - 3).read(&space),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            UserPtr::<u64>::new(1 << 50).write(&space, 1),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            UserSlice::new(usize::MAX - 10, 100).fill(&space, 0),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn ranges_bound_access() {
        let mut space = AddressSpace::empty();
        assert!(space.add(0x10000, 0x1000));
        assert!(!space.add(usize::MAX, 2));
        assert!(!space.add(0, 100), "wholly inside the NULL page");
        assert!(space.contains(0x10000, 0x1000));
        assert!(!space.contains(0x10000, 0x1001));
        assert!(!space.contains(0xffff, 2));
        assert!(space.contains(0x10fff, 0));
        assert!(!space.contains(0x11000, 0));
    }

    #[test]
    fn copies_round_trip_and_atomic_needs_alignment() {
        let space = AddressSpace::hosted();
        let mut word = [0u32; 2];
        let p = UserPtr::<u32>::new(word.as_mut_ptr() as usize);
        p.write(&space, 7).unwrap();
        assert_eq!(p.read(&space), Ok(7));
        assert_eq!(p.load(&space), Ok(7));
        let odd = UserPtr::<u32>::new(word.as_mut_ptr() as usize + 1);
        assert_eq!(odd.atomic(&space).err(), Some(Errno::EINVAL));
        let mut buf = [1u8; 8];
        let s = UserSlice::new(buf.as_mut_ptr() as usize, 4);
        assert_eq!(s.write(&space, &[9; 6]), Ok(4));
        assert_eq!(buf, [9, 9, 9, 9, 1, 1, 1, 1]);
        assert_eq!(word[0], 7);
    }
}
