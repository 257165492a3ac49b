//! Host benchmarks of the syscall shim, in one run (see the README for the ratios):
//!
//! - `direct_call`: a no-op handler called as a Rust function (not inlined: a real call);
//! - `dispatch_by_number`: the same no-op reached through [`uk_syscall::dispatch`] (table
//!   lookup, call, folding into the raw convention);
//! - `linux_getppid`: a real Linux syscall, `getppid`, with the `syscall` instruction
//!   (no libc wrapper), through [`uk_syscall::trap`].
//!
//! Each sample makes CALLS calls; divan prints the time per sample and the throughput.
#![allow(missing_docs)]

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use uk_syscall::{Args, SyscallResult, Sysno};

const CALLS: usize = 1_000;
/// A private number for the no-op.
const NOP: usize = 510;

#[inline(never)]
fn sys_nop(_args: &Args) -> SyscallResult {
    Ok(0)
}
uk_syscall::register!(number NOP => sys_nop);

fn main() {
    divan::main();
}

#[divan::bench]
fn direct_call(b: Bencher) {
    let args: Args = [1, 2, 3, 4, 5, 6];
    let handler: fn(&Args) -> SyscallResult = black_box(sys_nop);
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            let _ = black_box(handler(black_box(&args)));
        }
    });
}

#[divan::bench]
fn dispatch_by_number(b: Bencher) {
    let args: Args = [1, 2, 3, 4, 5, 6];
    assert_eq!(uk_syscall::dispatch(NOP, &args), 0);
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            black_box(uk_syscall::dispatch(black_box(NOP), black_box(&args)));
        }
    });
}

#[divan::bench]
fn linux_getppid(b: Bencher) {
    let args: Args = [0; 6];
    let number = Sysno::getppid as usize;
    // SAFETY: getppid takes no arguments and touches no memory.
    let ppid = unsafe { uk_syscall::trap(number, &args) };
    assert_eq!(ppid, std::os::unix::process::parent_id() as isize);
    b.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            // SAFETY: as above.
            black_box(unsafe { uk_syscall::trap(black_box(number), black_box(&args)) });
        }
    });
}
