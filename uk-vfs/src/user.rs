//! Caller memory: the only place this crate turns raw syscall pointers into slices.
//!
//! The image declares which address ranges hold caller memory with
//! [`set_valid_ranges`]; a pointer outside them (or `NULL`, or a range that wraps) gives
//! `EFAULT` instead of a fault. Before any declaration, every address from 4096 up is
//! taken as valid (the first page is never mapped, so `NULL` and small offsets from it
//! fault as on Linux); host tests rely on that default.
//!
//! A zero-length buffer is valid whatever its address, as on Linux (`read(fd, NULL, 0)`
//! returns 0).
#![allow(unsafe_code)]

use core::ops::Range;

use spin::Once;

use crate::Errno;
use crate::types::PATH_MAX;

static RANGES: Once<&'static [Range<usize>]> = Once::new();

/// Declares the address ranges that hold caller memory (first call wins).
pub fn set_valid_ranges(ranges: &'static [Range<usize>]) {
    RANGES.call_once(|| ranges);
}

/// Whether `[ptr, ptr + len)` lies inside caller memory.
pub fn check(ptr: usize, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let end = ptr.checked_add(len).ok_or(Errno::EFAULT)?;
    let ok = match RANGES.get() {
        Some(ranges) => ranges.iter().any(|r| r.start <= ptr && end <= r.end),
        None => ptr >= 4096,
    };
    if ok { Ok(()) } else { Err(Errno::EFAULT) }
}

/// How many bytes from `ptr` on are valid (up to `max`).
fn valid_prefix(ptr: usize, max: usize) -> usize {
    if ptr == 0 {
        return 0;
    }
    match RANGES.get() {
        Some(ranges) => ranges
            .iter()
            .find(|r| r.start <= ptr && ptr < r.end)
            .map_or(0, |r| (r.end - ptr).min(max)),
        None if ptr >= 4096 => max.min(usize::MAX - ptr),
        None => 0,
    }
}

/// The caller's buffer `[ptr, ptr + len)` for reading.
pub fn slice<'a>(ptr: usize, len: usize) -> Result<&'a [u8], Errno> {
    check(ptr, len)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `check` proved the range lies in memory the image declared as caller memory,
    // mapped for the duration of the syscall; the VFS holds no reference into it, and the
    // slice lives only for the handler that asked for it.
    Ok(unsafe { core::slice::from_raw_parts(ptr as *const u8, len) })
}

/// The caller's buffer `[ptr, ptr + len)` for writing.
pub fn slice_mut<'a>(ptr: usize, len: usize) -> Result<&'a mut [u8], Errno> {
    check(ptr, len)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `slice`; handlers take one mutable caller slice at a time, so no two
    // live slices alias.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr as *mut u8, len) })
}

/// The NUL-terminated string at `ptr` (a path), without its NUL. `EFAULT` if it runs out
/// of caller memory first, `ENAMETOOLONG` if no NUL comes within `PATH_MAX` bytes.
pub fn cstr<'a>(ptr: usize) -> Result<&'a [u8], Errno> {
    let avail = valid_prefix(ptr, PATH_MAX);
    if avail == 0 {
        return Err(Errno::EFAULT);
    }
    let bytes = slice(ptr, avail)?;
    match bytes.iter().position(|&c| c == 0) {
        Some(n) => Ok(&bytes[..n]),
        None if avail == PATH_MAX => Err(Errno::ENAMETOOLONG),
        None => Err(Errno::EFAULT),
    }
}

/// Copies `bytes` to the caller at `ptr`.
pub fn write(ptr: usize, bytes: &[u8]) -> Result<(), Errno> {
    slice_mut(ptr, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}

/// Reads a native-endian `i32` pair (the `int fds[2]` of `pipe2`) destination check.
pub fn write_i32_pair(ptr: usize, pair: [i32; 2]) -> Result<(), Errno> {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&pair[0].to_ne_bytes());
    b[4..].copy_from_slice(&pair[1].to_ne_bytes());
    write(ptr, &b)
}

/// The `i`-th `struct iovec` (base, length) of the array at `ptr`.
pub fn iovec(ptr: usize, i: usize) -> Result<(usize, usize), Errno> {
    let at = i
        .checked_mul(16)
        .and_then(|o| ptr.checked_add(o))
        .ok_or(Errno::EFAULT)?;
    let b = slice(at, 16)?;
    let base = u64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])) as usize;
    let len = u64::from_ne_bytes(b[8..].try_into().unwrap_or([0; 8])) as usize;
    Ok((base, len))
}
