//! Caller memory: the one place where a pointer a syscall received becomes a Rust value.
//!
//! A uk-rs image has one address space; "user" memory is every byte a caller may name by
//! address: the image itself (statics, the boot stack) and the board's RAM regions (heap,
//! thread stacks), minus the NULL page. An [`AddressSpace`] describes that memory as up to
//! [`MAX_RANGES`] `[start, end)` ranges; it is declared once for the whole image with
//! [`declare`] and read back with [`caller_memory`]. Every handler that takes a pointer
//! (the VFS, the process layer, an image's own handlers) checks it against that one
//! declaration, so a bad pointer is `EFAULT` and never a fault of the kernel.
//!
//! The rules, the same for every accessor:
//!
//! - a non-empty buffer is valid when it lies wholly inside **one** declared range;
//! - `NULL`, anything in the NULL page (below [`NULL_PAGE`], which [`AddressSpace::add`]
//!   clips away) and a range whose end wraps past `usize::MAX` are `EFAULT`;
//! - a zero-length buffer is valid at any address, `NULL` included, as on Linux
//!   (`read(fd, NULL, 0)` returns 0): nothing is touched;
//! - a NUL-terminated string ([`UserCStr`]) is read up to a limit: `EFAULT` when caller
//!   memory ends before its NUL, `ENAMETOOLONG` when no NUL comes within the limit;
//! - a futex word ([`UserPtr::atomic`]) must be 4-byte aligned (`EINVAL`, checked before
//!   the range, as Linux does);
//! - a page recorded with fewer rights ([`set_rights`], by whoever made it `PROT_NONE` or
//!   `PROT_READ` in hardware) is `EFAULT` for the access it does not allow: reads
//!   ([`AddressSpace::check`]) need it readable, writes ([`AddressSpace::check_write`])
//!   writable;
//! - no input panics: every length and offset is computed with checked arithmetic.
//!
//! Typed accessors carry the address until they are used: [`UserPtr<T>`] for one value
//! (unaligned reads of [`Plain`] data, writes of any `Copy` value), [`UserSlice`] for a
//! byte buffer (borrow it, fill it in place, copy into it, hand it over for good),
//! [`UserCStr`] for a path. Each takes the space to check against, usually
//! [`caller_memory()`]; the process layer's hosted tests pass their own spaces.
//!
//! # Declaring caller memory
//!
//! [`declare`] sets the image's caller memory; the first declaration wins. When nothing was
//! declared, [`caller_memory`] is:
//!
//! - on a hosted build (tests, benchmarks): [`AddressSpace::hosted`], the lower 128 TiB
//!   above the NULL page, where the host process keeps its memory;
//! - on a uk-rs image with the `image` feature: the image's extent (the `__uk_image_start`
//!   and `__uk_image_end` symbols of the boards' linker scripts) plus every region of
//!   `uk_hal::Platform::memory_regions`, taken from `uk-rt`
//!   on first use once the board has registered and declared from then on;
//! - otherwise (another kernel that forgot to declare): empty, so every non-empty buffer
//!   is `EFAULT` rather than trusted.
//!
//! The declaration is a promise: every byte of every range is mapped, readable and writable
//! for as long as syscalls run. The accessors rely on it; the checks exist so a caller's
//! bad pointer cannot break it. What the checks cannot know, in one address space, is
//! what else refers to the memory a caller names: a caller that passes a buffer the kernel
//! is itself using, or overlapping buffers to one call, gets what it asked for (as with a
//! C caller of a unikernel). Borrowed slices therefore live only for the call
//! ([`UserSlice::with_mut`] scopes them to a closure), except [`UserSlice::hand_over`],
//! whose contract is that the caller gives the memory away (a clone stack).
//!
//! # Example
//!
//! ```
//! use uk_syscall::Errno;
//! use uk_syscall::user::{AddressSpace, UserCStr, UserPtr, UserSlice};
//!
//! let mut memory = [0u8; 64];
//! memory[..5].copy_from_slice(b"/etc\0");
//! let base = memory.as_mut_ptr() as usize;
//! let mut space = AddressSpace::empty();
//! space.add(base, memory.len());
//!
//! assert_eq!(UserCStr::new(base).read(&space, 4096), Ok(&b"/etc"[..]));
//! UserPtr::<u32>::new(base + 8).write(&space, 7)?;
//! assert_eq!(UserPtr::<u32>::new(base + 8).read(&space), Ok(7));
//! // Crossing the end of the range, NULL, a wrapping range: EFAULT.
//! assert_eq!(UserPtr::<u64>::new(base + 60).read(&space), Err(Errno::EFAULT));
//! assert_eq!(UserSlice::new(0, 1).bytes(&space), Err(Errno::EFAULT));
//! assert_eq!(UserSlice::new(base, usize::MAX).bytes(&space), Err(Errno::EFAULT));
//! // An empty buffer is fine anywhere.
//! assert_eq!(UserSlice::new(0, 0).bytes(&space), Ok(&[][..]));
//! // A misaligned futex word: EINVAL.
//! assert_eq!(UserPtr::<u32>::new(base + 2).atomic(&space).err(), Some(Errno::EINVAL));
//! # Ok::<(), Errno>(())
//! ```
//!
//! A handler uses the image's caller memory:
//!
//! ```
//! use uk_syscall::user::{UserSlice, caller_memory};
//! use uk_syscall::{Args, SyscallResult};
//!
//! fn sys_write_console(a: &Args) -> SyscallResult {
//!     let bytes = UserSlice::new(a[1], a[2]).bytes(caller_memory())?;
//!     // ... hand `bytes` to the console ...
//!     Ok(bytes.len())
//! }
//! ```

use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::Errno;

/// Size of the NULL page: no address below it is ever caller memory.
pub const NULL_PAGE: usize = 4096;

/// Most ranges an [`AddressSpace`] holds.
pub const MAX_RANGES: usize = 32;

/// End of the hosted default space: the lower half of a 48-bit address space.
const HOSTED_END: usize = 1 << 47;

/// Memory a caller may name: up to [`MAX_RANGES`] `[start, end)` ranges above the NULL page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    ranges: [(usize, usize); MAX_RANGES],
    len: usize,
}

impl Default for AddressSpace {
    fn default() -> Self {
        Self::empty()
    }
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
        space.ranges[0] = (NULL_PAGE, HOSTED_END);
        space.len = 1;
        space
    }

    /// Adds `[start, start + len)`, clipped above the NULL page. Ranges past
    /// [`MAX_RANGES`], empty ones (also after clipping) and ones whose end overflows are
    /// ignored and reported `false`.
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

    /// Whether every byte of `[addr, addr + len)` lies in one range. With a zero length:
    /// whether `addr` itself lies in one (a membership question; for access, [`check`]
    /// accepts an empty buffer anywhere).
    ///
    /// [`check`]: AddressSpace::check
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

    /// `Ok` when `len` bytes at `addr` may be read: a zero length always may, anything else
    /// must be [`contained`](AddressSpace::contains), with no page recorded inaccessible
    /// ([`set_rights`]).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a non-empty range not wholly inside one range of the space, or with a
    /// page that may not be read.
    pub fn check(&self, addr: usize, len: usize) -> Result<(), Errno> {
        self.check_access(addr, len, false)
    }

    /// `Ok` when `len` bytes at `addr` may be written: as [`check`](AddressSpace::check),
    /// and no page of them is recorded read-only ([`set_rights`]).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a non-empty range outside the space or with a page that may not be
    /// written.
    pub fn check_write(&self, addr: usize, len: usize) -> Result<(), Errno> {
        self.check_access(addr, len, true)
    }

    fn check_access(&self, addr: usize, len: usize, write: bool) -> Result<(), Errno> {
        if len == 0 || (self.contains(addr, len) && rights::allows(addr, addr + len, write)) {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }

    /// How many bytes from `addr` on are caller memory, at most `max` (0 when `addr` is
    /// outside the space).
    pub fn valid_from(&self, addr: usize, max: usize) -> usize {
        if addr < NULL_PAGE {
            return 0;
        }
        self.ranges()
            .iter()
            .find(|&&(s, e)| s <= addr && addr < e)
            .map_or(0, |&(_, e)| (e - addr).min(max))
    }
}

/// The space used before any declaration on a hosted build.
#[cfg(not(target_os = "none"))]
static HOSTED: AddressSpace = AddressSpace::hosted();

/// The space used when nothing declared any caller memory on an image.
#[cfg(target_os = "none")]
static EMPTY: AddressSpace = AddressSpace::empty();

static DECLARED: spin::Once<AddressSpace> = spin::Once::new();

/// Declares the image's caller memory. The first declaration wins: `true` when this call
/// made it, `false` when caller memory was already declared (then nothing changes).
///
/// The ranges must be memory that stays mapped, readable and writable while syscalls run
/// (see the [module docs](self)).
pub fn declare(space: AddressSpace) -> bool {
    let mut made = false;
    DECLARED.call_once(|| {
        made = true;
        space
    });
    made
}

/// The declared caller memory, if any declaration happened yet.
pub fn declared() -> Option<&'static AddressSpace> {
    DECLARED.get()
}

/// The caller memory every handler checks pointers against: the declared space, else the
/// default described in the [module docs](self).
pub fn caller_memory() -> &'static AddressSpace {
    match DECLARED.get() {
        Some(space) => space,
        None => undeclared(),
    }
}

#[cfg(not(target_os = "none"))]
fn undeclared() -> &'static AddressSpace {
    &HOSTED
}

#[cfg(all(target_os = "none", feature = "image"))]
fn undeclared() -> &'static AddressSpace {
    match uk_rt::try_platform() {
        Some(platform) => DECLARED.call_once(|| image::space(platform)),
        // Before the board registered, no memory is known: nothing is caller memory.
        None => &EMPTY,
    }
}

#[cfg(all(target_os = "none", not(feature = "image")))]
fn undeclared() -> &'static AddressSpace {
    &EMPTY
}

/// The caller memory of a uk-rs image, from the boards' linker scripts and memory maps.
#[cfg(all(target_os = "none", feature = "image"))]
mod image {
    use super::AddressSpace;

    unsafe extern "C" {
        static __uk_image_start: u8;
        static __uk_image_end: u8;
    }

    /// The image in memory, from its first byte to the end of its stacks and tables.
    pub(super) fn range() -> (usize, usize) {
        let start = &raw const __uk_image_start as usize;
        let end = &raw const __uk_image_end as usize;
        (start, end)
    }

    /// The image plus every RAM region the board reported.
    pub(super) fn space(platform: &dyn uk_hal::Platform) -> AddressSpace {
        let mut space = AddressSpace::empty();
        let (start, end) = range();
        space.add(start, end.saturating_sub(start));
        for region in platform.memory_regions() {
            if !space.add(region.base as usize, region.size as usize) {
                log::warn!(
                    "caller memory: region {:#x}+{:#x} not added (empty, wrapping or past {} ranges)",
                    region.base,
                    region.size,
                    super::MAX_RANGES
                );
            }
        }
        space
    }
}

/// The image's extent as caller memory knows it (`[__uk_image_start, __uk_image_end)`).
#[cfg(all(target_os = "none", feature = "image"))]
pub fn image_range() -> (usize, usize) {
    image::range()
}

/// Plain data: every bit pattern of `size_of::<Self>()` bytes is a value of the type, so a
/// [`UserPtr::read`] may take whatever the caller left in memory. Implemented for the
/// integer types and arrays of plain data; read an ABI structure as an array of its fields
/// (a `struct timespec` as `[i64; 2]`) and convert.
///
/// A `bool` (or any type with invalid bit patterns) cannot be read from a caller:
///
/// ```compile_fail
/// use uk_syscall::user::{AddressSpace, UserPtr};
/// let _ = UserPtr::<bool>::new(0x1000).read(&AddressSpace::hosted());
/// ```
///
/// # Safety
///
/// Only for types without invalid bit patterns and without padding (no `bool`, `char`,
/// enums, references, pointers with provenance rules, or `NonZero*`).
pub unsafe trait Plain: Copy {}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            // SAFETY: every bit pattern of an integer type is a value; no padding.
            unsafe impl Plain for $t {}
        )*
    };
}
plain!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

// SAFETY: an array of plain values has no padding between elements and every element's
// bit pattern is a value, so every bit pattern of the array is one.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// A caller's pointer to one `T`; checked on every access.
///
/// Reads need `T:` [`Plain`] (any bits are a value); writes take any `Copy` value (an ABI
/// structure such as `struct utsname`).
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
    /// `EFAULT` for a pointer outside `space` or to memory recorded unreadable ([`set_rights`]).
    pub fn read(self, space: &AddressSpace) -> Result<T, Errno>
    where
        T: Plain,
    {
        self.check(space)?;
        if size_of::<T>() == 0 {
            // SAFETY: a zero-sized value is read from no memory; a dangling (non-null,
            // aligned) pointer is valid for it.
            return Ok(unsafe { core::ptr::NonNull::<T>::dangling().as_ptr().read() });
        }
        // SAFETY: the `size_of::<T>()` bytes at `addr` lie in declared caller memory
        // (checked above), which stays mapped while syscalls run; `T: Plain`, so any bit
        // pattern the caller wrote is a value; unaligned access is explicit.
        Ok(unsafe { core::ptr::read_unaligned(self.addr as *const T) })
    }

    /// Copies `value` out.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a pointer outside `space` or to memory recorded read-only or inaccessible; nothing is written then.
    pub fn write(self, space: &AddressSpace, value: T) -> Result<(), Errno> {
        space.check_write(self.addr, size_of::<T>())?;
        if size_of::<T>() == 0 {
            return Ok(());
        }
        // SAFETY: checked caller memory the caller handed over as this syscall's output
        // argument; unaligned access is explicit.
        unsafe { core::ptr::write_unaligned(self.addr as *mut T, value) };
        Ok(())
    }
}

impl UserPtr<u32> {
    /// The 32-bit word as an atomic (a futex word): it must be 4-byte aligned.
    ///
    /// # Errors
    ///
    /// `EINVAL` when misaligned (checked first, as Linux's futex), `EFAULT` outside `space`.
    pub fn atomic(self, space: &AddressSpace) -> Result<&'static AtomicU32, Errno> {
        if self.addr % align_of::<AtomicU32>() != 0 {
            return Err(Errno::EINVAL);
        }
        space.check_write(self.addr, size_of::<u32>())?;
        // SAFETY: aligned, checked caller memory, which stays mapped for the image's life
        // (one address space, never unmapped while declared); `AtomicU32` has the layout of
        // `u32`, and every access the kernel makes to the word from here on is atomic.
        Ok(unsafe { AtomicU32::from_ptr(self.addr as *mut u32) })
    }

    /// Atomically loads the word (sequentially consistent).
    ///
    /// # Errors
    ///
    /// As [`UserPtr::atomic`].
    pub fn load(self, space: &AddressSpace) -> Result<u32, Errno> {
        if self.addr % align_of::<AtomicU32>() != 0 {
            return Err(Errno::EINVAL);
        }
        self.check(space)?;
        // SAFETY: aligned, checked readable caller memory; `AtomicU32` has the layout of
        // `u32`, and the word is only loaded.
        Ok(unsafe { AtomicU32::from_ptr(self.addr as *mut u32) }.load(Ordering::SeqCst))
    }
}

/// A caller's buffer of bytes; checked on every access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// Checks that the whole buffer lies in `space` (an empty one always does).
    ///
    /// # Errors
    ///
    /// `EFAULT`.
    pub fn check(self, space: &AddressSpace) -> Result<(), Errno> {
        space.check(self.addr, self.len)
    }

    /// The buffer's bytes, to read (a `write`'s source, a structure to copy in).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space` or with a page recorded inaccessible.
    pub fn bytes(self, space: &AddressSpace) -> Result<&[u8], Errno> {
        self.check(space)?;
        if self.len == 0 {
            return Ok(&[]);
        }
        // SAFETY: `len` bytes of checked caller memory, mapped while syscalls run (the
        // promise of the declaration, which outlives the borrow of `space`); the caller
        // handed them to this syscall to read.
        Ok(unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) })
    }

    /// Runs `f` on the buffer as a mutable slice (a `read`'s destination, random bytes).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space` or with a page recorded read-only or inaccessible; `f` does not run then.
    pub fn with_mut<R>(
        self,
        space: &AddressSpace,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, Errno> {
        space.check_write(self.addr, self.len)?;
        if self.len == 0 {
            return Ok(f(&mut []));
        }
        // SAFETY: `len` bytes of checked caller memory that the caller handed over as this
        // syscall's output buffer; the slice lives only as long as `f` runs, and the
        // kernel holds no other reference into it meanwhile.
        let slice = unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) };
        Ok(f(slice))
    }

    /// Copies `bytes` to the start of the buffer (at most its length); returns how many.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space` or with a page recorded read-only or inaccessible; nothing is written then.
    pub fn write(self, space: &AddressSpace, bytes: &[u8]) -> Result<usize, Errno> {
        let n = bytes.len().min(self.len);
        Self::new(self.addr, n).with_mut(space, |dst| dst.copy_from_slice(&bytes[..n]))?;
        Ok(n)
    }

    /// Fills the whole buffer with `byte`.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space` or with a page recorded read-only or inaccessible; nothing is written then.
    pub fn fill(self, space: &AddressSpace, byte: u8) -> Result<(), Errno> {
        self.with_mut(space, |dst| dst.fill(byte))
    }

    /// Takes the buffer over for good: memory the caller gives away for the rest of the
    /// image's life (the stack of a thread `clone` starts).
    ///
    /// # Errors
    ///
    /// `EFAULT` for a buffer outside `space` or with a page recorded read-only or
    /// inaccessible.
    pub fn hand_over(self, space: &AddressSpace) -> Result<&'static mut [u8], Errno> {
        space.check_write(self.addr, self.len)?;
        if self.len == 0 {
            return Ok(&mut []);
        }
        // SAFETY: checked caller memory, mapped for the image's life (one address space,
        // never unmapped while declared); by the syscall's contract (clone's stack) the
        // caller no longer uses it, so this is the only reference from now on.
        Ok(unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) })
    }
}

/// A caller's NUL-terminated string (a path); read up to a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCStr {
    addr: usize,
}

impl UserCStr {
    /// The pointer the caller passed.
    pub const fn new(addr: usize) -> Self {
        Self { addr }
    }

    /// The raw address.
    pub const fn addr(self) -> usize {
        self.addr
    }

    /// The string's bytes without its NUL, which must come within `limit` bytes (Linux:
    /// `PATH_MAX`, 4096, counting the NUL). Only caller memory is scanned.
    ///
    /// # Errors
    ///
    /// `EFAULT` when `addr` is not caller memory or caller memory ends before the NUL,
    /// `ENAMETOOLONG` when the first `limit` bytes hold no NUL (a zero `limit` included).
    pub fn read(self, space: &AddressSpace, limit: usize) -> Result<&[u8], Errno> {
        let avail = space.valid_from(self.addr, limit);
        if avail == 0 {
            return Err(if limit == 0 && space.contains(self.addr, 0) {
                Errno::ENAMETOOLONG
            } else {
                Errno::EFAULT
            });
        }
        let bytes = UserSlice::new(self.addr, avail).bytes(space)?;
        match core::ffi::CStr::from_bytes_until_nul(bytes) {
            Ok(s) => Ok(s.to_bytes()),
            Err(_) if avail == limit => Err(Errno::ENAMETOOLONG),
            Err(_) => Err(Errno::EFAULT),
        }
    }
}

mod rights;
pub use rights::{
    MAX_PROTECTED_RANGES, PageRights, RIGHTS_PAGE, forget_rights, protected_extent, protected_in,
    rights_of, set_rights,
};

#[cfg(test)]
mod tests;
