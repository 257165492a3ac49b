//! Host benchmarks of caller-memory checks (`uk_syscall::user`), peers in the same run:
//!
//! - `slice_checked_2` / `slice_checked_32`: a 4 KiB buffer borrowed through
//!   `UserSlice::bytes` from a space of 2 ranges (an image: the image and one RAM region) and
//!   of 32 ranges (the most a space holds; the buffer in the last);
//! - `slice_unchecked`: the peer, `slice::from_raw_parts` with no check (what a handler
//!   that trusts its caller does);
//! - `path_checked`: a 40-byte path read by `UserCStr::read` (limit 4096, only caller
//!   memory scanned); `path_unchecked`: the peer, `CStr::from_ptr` (scans until a NUL,
//!   wherever that is).
//!
//! Each sample makes CALLS accesses; divan prints the time per sample and the throughput.
#![allow(missing_docs)]

use std::ffi::CStr;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use uk_syscall::user::{AddressSpace, MAX_RANGES, UserCStr, UserSlice};

const CALLS: usize = 1_000;
const LEN: usize = 4096;

fn main() {
    divan::main();
}

/// A space of `ranges` ranges whose last one is `buf`; the others lie below it.
fn space_with(buf: &[u8], ranges: usize) -> AddressSpace {
    let mut space = AddressSpace::empty();
    for i in 1..ranges {
        assert!(space.add(0x10_0000 * i, 0x1000));
    }
    assert!(space.add(buf.as_ptr() as usize, buf.len()));
    space
}

fn checked(b: Bencher, ranges: usize) {
    let buf = vec![1u8; LEN];
    let space = space_with(&buf, ranges);
    let addr = buf.as_ptr() as usize;
    assert_eq!(
        UserSlice::new(addr, LEN).bytes(&space).map(<[u8]>::len),
        Ok(LEN)
    );
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            let bytes = UserSlice::new(black_box(addr), black_box(LEN)).bytes(&space);
            black_box(bytes.map(|b| b.as_ptr()).ok());
        }
    });
}

#[divan::bench]
fn slice_checked_2(b: Bencher) {
    checked(b, 2);
}

#[divan::bench]
fn slice_checked_32(b: Bencher) {
    checked(b, MAX_RANGES);
}

#[divan::bench]
fn slice_unchecked(b: Bencher) {
    let buf = vec![1u8; LEN];
    let addr = buf.as_ptr() as usize;
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            let (addr, len) = (black_box(addr), black_box(LEN));
            // SAFETY: `buf` is live and `LEN` bytes long.
            let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
            black_box(bytes.as_ptr());
        }
    });
}

const PATH: &[u8] = b"/usr/share/uk-rs/examples/files/motd.txt\0";

#[divan::bench]
fn path_checked(b: Bencher) {
    let buf = PATH.to_vec();
    let space = space_with(&buf, 2);
    let addr = buf.as_ptr() as usize;
    assert_eq!(
        UserCStr::new(addr).read(&space, 4096).map(<[u8]>::len),
        Ok(PATH.len() - 1)
    );
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            black_box(UserCStr::new(black_box(addr)).read(&space, 4096).ok());
        }
    });
}

#[divan::bench]
fn path_unchecked(b: Bencher) {
    let buf = PATH.to_vec();
    let addr = buf.as_ptr() as usize;
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            // SAFETY: `buf` is live and NUL-terminated.
            let s = unsafe { CStr::from_ptr(black_box(addr) as *const core::ffi::c_char) };
            black_box(s.to_bytes());
        }
    });
}
