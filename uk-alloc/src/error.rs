//! The error every fallible allocator operation returns.

use core::fmt;

/// `EINVAL` as Linux numbers it (x86_64 and aarch64 agree).
pub const EINVAL: i32 = 22;
/// `ENOMEM` as Linux numbers it (x86_64 and aarch64 agree).
pub const ENOMEM: i32 = 12;

/// Why an allocator operation failed.
///
/// The first two variants are the `errno` values the C interface reports; the next two are
/// reports of a caller bug that the allocator caught before it could corrupt its state; the
/// last says that a backend does not offer an optional operation. In every case the
/// allocator is left exactly as it was before the call, apart from the
/// [`Stats::enomem`](crate::Stats::enomem) counter for [`AllocError::NoMem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocError {
    /// `EINVAL`: an argument is out of its domain (an alignment that is not a power of two,
    /// a memory region too small or misplaced to be used).
    Inval,
    /// `ENOMEM`: no free block is large enough, the request is larger than any block could
    /// ever be, its size computation overflows, or the byte limit would be exceeded.
    NoMem,
    /// The pointer (or pointer and page count) does not name a live allocation of this
    /// allocator: it is foreign, points inside an allocation, or is misaligned.
    BadFree,
    /// The pointer names an allocation that has already been freed.
    DoubleFree,
    /// The backend does not offer this operation, or not for these arguments (the default
    /// of [`Allocator::pfree_part`](crate::Allocator::pfree_part), and TLSF for a part that
    /// is not the end of its run). Nothing was changed: the caller may go on as if it had
    /// not asked (a page run stays live whole, for instance).
    Unsupported,
}

impl AllocError {
    /// The `errno` value for the C interface: [`ENOMEM`] for [`AllocError::NoMem`],
    /// [`EINVAL`] for everything else (glibc reports a bad `free` by aborting; a unikernel
    /// keeps running and returns `EINVAL` where the interface has a way to say so;
    /// [`AllocError::Unsupported`] is `EINVAL` too: a request outside what the allocator
    /// accepts).
    pub const fn errno(self) -> i32 {
        match self {
            AllocError::NoMem => ENOMEM,
            AllocError::Inval
            | AllocError::BadFree
            | AllocError::DoubleFree
            | AllocError::Unsupported => EINVAL,
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::Inval => "invalid argument (EINVAL)",
            AllocError::NoMem => "out of memory (ENOMEM)",
            AllocError::BadFree => "pointer is not a live allocation of this allocator",
            AllocError::DoubleFree => "allocation freed twice",
            AllocError::Unsupported => "operation not supported by this allocator",
        })
    }
}

impl core::error::Error for AllocError {}
