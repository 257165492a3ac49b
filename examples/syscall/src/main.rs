//! Syscalls on uk-rs: the image registers three handlers with `uk_syscall::register!`
//! (`write` to the console, its buffer checked through `uk_syscall::user`, `getuid`, and a
//! private no-op), then reaches them both ways —
//! as direct calls through the dispatch table and through the architecture's trap
//! instruction (`syscall` on x86_64, `svc #0` on aarch64), as a binary linked against a
//! Linux libc would — and prints the results and what the trap costs against a direct call.
//!
//! ```text
//! cargo uk run --example syscall                      # x86-pc
//! cargo uk run --example syscall --board qemu-virt    # aarch64
//! ```
//!
//! Under QEMU's TCG the costs are emulation time: the ratio is information, not a
//! measurement of hardware.
#![no_std]
#![no_main]

use uk_app::println;
use uk_syscall::user::{UserSlice, caller_memory};
use uk_syscall::{Args, Errno, SyscallResult, Sysno, dispatch, trap};

uk_app::main!(main);

/// A private syscall number (Linux uses none at or above 500 on either architecture).
const NOP: usize = 500;

/// `write(fd, buf, count)` for standard output and error: the bytes go to the console.
/// The buffer goes through `uk_syscall::user`, so a bad pointer is `EFAULT`, not a fault.
fn sys_write(args: &Args) -> SyscallResult {
    let [fd, buf, count, ..] = *args;
    if fd != 1 && fd != 2 {
        return Err(Errno::EBADF);
    }
    // The caller's buffer, checked against the image's caller memory (its RAM and the
    // image itself): NULL or memory outside is EFAULT, an empty buffer is fine anywhere.
    let bytes = UserSlice::new(buf, count).bytes(caller_memory())?;
    uk_app::platform().write_bytes(bytes);
    Ok(count)
}
uk_syscall::register!(write => sys_write);

/// `getuid()`: the only user of a unikernel is root.
fn sys_getuid(_args: &Args) -> SyscallResult {
    Ok(0)
}
uk_syscall::register!(getuid => sys_getuid);

/// Does nothing: the cost of the path itself.
fn sys_nop(_args: &Args) -> SyscallResult {
    Ok(0)
}
uk_syscall::register!(number NOP => sys_nop);

/// A trapped call (the instruction a Linux binary uses).
fn via_trap(number: usize, args: &Args) -> isize {
    // SAFETY: the handlers above only read the buffer they are given (after checking it
    // against caller memory), which the callers below keep alive.
    unsafe { trap(number, args) }
}

/// Nanoseconds per call of `f`, over `calls` calls.
fn ns_per_call(calls: u32, mut f: impl FnMut()) -> u64 {
    let clock = uk_app::platform();
    let start = clock.monotonic_ns();
    for _ in 0..calls {
        f();
    }
    (clock.monotonic_ns() - start) / u64::from(calls)
}

fn main(_args: &uk_app::Args) -> i32 {
    let message = b"syscall: hello from write(2) through the trap\n";
    let args = [1, message.as_ptr() as usize, message.len(), 0, 0, 0];
    let written = via_trap(Sysno::write as usize, &args);
    println!("syscall: write returned {written} (direct call: same handler, same table)");

    let getuid = Sysno::getuid as usize;
    println!(
        "syscall: getuid: trap {}, direct {}",
        via_trap(getuid, &[0; 6]),
        dispatch(getuid, &[0; 6])
    );
    println!(
        "syscall: write to fd 7: trap {}, direct {} (-EBADF)",
        via_trap(Sysno::write as usize, &[7, 0, 1, 0, 0, 0]),
        dispatch(Sysno::write as usize, &[7, 0, 1, 0, 0, 0])
    );
    println!(
        "syscall: write from NULL: trap {}, direct {} (-EFAULT); empty: {}",
        via_trap(Sysno::write as usize, &[1, 0, 8, 0, 0, 0]),
        dispatch(Sysno::write as usize, &[1, 0, 8, 0, 0, 0]),
        dispatch(Sysno::write as usize, &[1, 0, 0, 0, 0, 0])
    );
    let unknown = Sysno::kexec_load as usize;
    println!(
        "syscall: kexec_load (not provided): trap {} (-ENOSYS)",
        via_trap(unknown, &[0; 6])
    );

    const CALLS: u32 = 20_000;
    let args = [1, 2, 3, 4, 5, 6];
    // Warm up (the table is built on first use).
    let _ = via_trap(NOP, &args);
    let direct = ns_per_call(CALLS, || {
        let _ = core::hint::black_box(sys_nop(core::hint::black_box(&args)));
    });
    let table = ns_per_call(CALLS, || {
        core::hint::black_box(dispatch(core::hint::black_box(NOP), &args));
    });
    let trapped = ns_per_call(CALLS, || {
        core::hint::black_box(via_trap(core::hint::black_box(NOP), &args));
    });
    println!(
        "syscall: no-op, {CALLS} calls each: direct {direct} ns, by number {table} ns, trap {trapped} ns per call"
    );
    println!(
        "syscall: trap / direct = {}.{}x (under TCG: emulation time, information only)",
        trapped / direct.max(1),
        (trapped * 10 / direct.max(1)) % 10
    );
    0
}
