//! In-image test cases (feature `ktest`): every case goes through the real trap instruction
//! (`syscall` at CPL 0 on x86_64, `svc #0` at EL1 on aarch64) into the board's entry path.

use alloc::vec;

use crate::testing::{
    self, ARG0_REG, CAPTURE, CLOBBER, CLOBBER_XOR, NOP, SUM, UNREGISTERED, pattern,
};
use crate::{Args, Errno, Sysno, dispatch, trap};

extern crate alloc;

const ENOSYS: isize = -38;

/// A trapped call.
fn via_trap(number: usize, args: &Args) -> isize {
    // SAFETY: the private test handlers and unregistered numbers touch no memory, except
    // USER_SUM, which reaches caller memory only through `crate::user` checks.
    unsafe { trap(number, args) }
}

uk_test::ktest! {
    /// The entry is installed: `install()` succeeds again (idempotent) on this CPU.
    fn install_is_idempotent() {
        uk_test::expect!(crate::install().is_ok());
    }
}

uk_test::ktest! {
    /// Results through the trap equal direct calls: values, errors, ENOSYS.
    fn trap_equals_direct_call() {
        let cases: [(usize, Args); 6] = [
            (SUM, [1, 2, 3, 4, 5, 6]),
            (SUM, [usize::MAX, 2, 0, 0, 0, 0]),
            (SUM, [0, 1, 1, 1, 1, 1]),
            (NOP, [9; 6]),
            (UNREGISTERED, [0; 6]),
            (Sysno::kexec_load as usize, [1, 2, 0, 0, 0, 0]),
        ];
        for (number, args) in cases {
            let direct = dispatch(number, &args);
            let trapped = via_trap(number, &args);
            uk_test::expect_eq!(trapped, direct);
        }
        uk_test::expect_eq!(via_trap(SUM, &[1, 2, 3, 4, 5, 6]), 21);
        uk_test::expect_eq!(via_trap(SUM, &[0; 6]), -(Errno::EBADF.into_raw() as isize));
    }
}

uk_test::ktest! {
    /// `trapped_calls` counts every call through the trap, per number, and no direct call;
    /// numbers beyond the table are not counted.
    fn trapped_calls_counts_the_trap_only() {
        let (before_nop, before_sum) = (crate::trapped_calls(NOP), crate::trapped_calls(SUM));
        for _ in 0..3 {
            via_trap(NOP, &[0; 6]);
            dispatch(NOP, &[0; 6]);
            crate::uk_syscall6(NOP, 0, 0, 0, 0, 0, 0);
        }
        via_trap(SUM, &[1, 2, 3, 4, 5, 6]);
        via_trap(100_000, &[0; 6]);
        uk_test::expect_eq!(crate::trapped_calls(NOP), before_nop + 3);
        uk_test::expect_eq!(crate::trapped_calls(SUM), before_sum + 1);
        uk_test::expect_eq!(crate::trapped_calls(100_000), 0);
    }
}

uk_test::ktest! {
    /// An unknown number gives -ENOSYS through the trap, for a Linux name nobody
    /// registered and for numbers beyond any table.
    fn unknown_number_is_enosys() {
        uk_test::expect_eq!(via_trap(UNREGISTERED, &[0; 6]), ENOSYS);
        uk_test::expect_eq!(via_trap(Sysno::vhangup as usize, &[0; 6]), ENOSYS);
        uk_test::expect_eq!(via_trap(usize::MAX, &[0; 6]), ENOSYS);
        uk_test::expect_eq!(via_trap(100_000, &[0; 6]), ENOSYS);
    }
}

uk_test::ktest! {
    /// Every general register but the ones Linux clobbers (x86_64 rax, rcx, r11; aarch64
    /// x0) survives a handler that scrambles all it may; the stack pointer too.
    fn general_registers_preserved() {
        let probe = testing::register_probe(CLOBBER);
        let report = probe.check((pattern(ARG0_REG) ^ CLOBBER_XOR) as u64);
        uk_test::expect_eq!(report.result, None);
        uk_test::expect_eq!(report.gprs, 0);
        uk_test::expect!(!report.sp);
    }
}

uk_test::ktest! {
    /// Every vector register (xmm0-15 / q0-q31) survives a handler that overwrites them.
    fn fp_simd_registers_preserved() {
        let probe = testing::register_probe(CLOBBER);
        let report = probe.check((pattern(ARG0_REG) ^ CLOBBER_XOR) as u64);
        uk_test::expect_eq!(report.vectors, 0);
    }
}

uk_test::ktest! {
    /// The 128 bytes below the caller's stack pointer are untouched by the entry.
    fn red_zone_untouched() {
        let probe = testing::register_probe(CLOBBER);
        let report = probe.check((pattern(ARG0_REG) ^ CLOBBER_XOR) as u64);
        uk_test::expect_eq!(report.red_zone, 0);
        // The unknown-number path too.
        let report = testing::register_probe(UNREGISTERED).check(ENOSYS as u64);
        uk_test::expect!(report.ok());
    }
}

uk_test::ktest! {
    /// A handler finds the frame of its trapped call (number, arguments, the caller's stack
    /// pointer); a direct call has none.
    fn handler_sees_its_trap_frame() {
        let _ = testing::take_captured();
        uk_test::expect_eq!(dispatch(CAPTURE, &[0; 6]), -(Errno::ESRCH.into_raw() as isize));
        let args = [11, 22, 33, 44, 55, 66];
        uk_test::expect_eq!(via_trap(CAPTURE, &args), 1);
        let frame = testing::take_captured();
        uk_test::expect!(frame.is_some());
        if let Some(frame) = frame {
            uk_test::expect_eq!(frame.number(), CAPTURE);
            uk_test::expect_eq!(*frame.args(), args);
            let here = &args as *const Args as usize;
            // The caller's stack pointer is below its locals, within a page of them.
            uk_test::expect!(frame.sp() < here + 4096 && frame.sp() + 65536 > here);
            uk_test::expect!(frame.pc() != 0);
        }
    }
}

uk_test::ktest! {
    /// A copy of a trap frame resumed on a new stack returns from the trap there, with the
    /// result the frame says and the caller's other registers (what `clone` needs).
    fn resume_frame_on_a_new_stack() {
        let _ = testing::take_captured();
        let mut stack = vec![0u128; 1024];
        let top = stack.as_mut_ptr_range().end as usize;
        // SAFETY: 16 KiB of free, aligned memory.
        let (result, child_sp, kept) = unsafe { testing::resume_probe(top) };
        uk_test::expect_eq!(result, 2);
        uk_test::expect_eq!(child_sp, top);
        uk_test::expect!(kept);
        drop(stack);
    }
}

uk_test::ktest! {
    /// Random numbers beyond the table and random arguments through the trap: always
    /// -ENOSYS, never a fault; random arguments to a registered handler: the direct result.
    fn random_calls_through_the_trap() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        for _ in 0..500 {
            let number = next() | crate::TABLE_LEN;
            let args = [next(), next(), next(), next(), next(), next()];
            uk_test::expect_eq!(via_trap(number, &args), ENOSYS);
            let args = [next(), next(), next(), next(), next(), next()];
            uk_test::expect_eq!(via_trap(SUM, &args), dispatch(SUM, &args));
        }
    }
}

#[cfg(target_arch = "x86_64")]
uk_test::ktest! {
    /// With AVX enabled (XCR0), all 256 bits of ymm0-15 survive a handler that overwrites
    /// them (the entry saves the AVX state with XSAVE).
    fn avx_registers_preserved() {
        match testing::avx_probe(CLOBBER) {
            Some(probe) => uk_test::expect_eq!(probe.after, probe.loaded),
            None => log::info!("no AVX state enabled on this CPU: nothing to check"),
        }
    }
}

#[cfg(target_arch = "aarch64")]
uk_test::ktest! {
    /// `svc #0` from code running on `SP_EL1` (exception context, vector 4): the same result,
    /// the same stack pointer afterwards, and the 128 bytes below it untouched.
    fn svc_from_exception_context() {
        let mut stack = vec![0u64; 1024];
        let top = stack.as_mut_ptr_range().end as usize;
        let len = stack.len();
        for (i, word) in stack[len - 16..].iter_mut().enumerate() {
            *word = testing::red_zone_pattern(16 - i);
        }
        let result: usize;
        let sp_after: usize;
        // SAFETY: SP_EL1 is switched to a private stack for the duration of one trapped
        // call and put back, with the stack selection the block started with (the test
        // runner itself may run on SP_EL1 after a case took an exception), before the block
        // ends; the handler (SUM) touches no memory.
        unsafe {
            core::arch::asm!(
                "mrs x12, spsel",
                "msr spsel, #1",
                "mov x10, sp",
                "mov sp, {top}",
                "svc #0",
                "mov x11, sp",
                "mov sp, x10",
                "msr spsel, x12",
                top = in(reg) top,
                in("x8") SUM,
                inlateout("x0") 1usize => result,
                in("x1") 2usize, in("x2") 3usize, in("x3") 4usize, in("x4") 5usize,
                in("x5") 6usize,
                out("x10") _, out("x11") sp_after, out("x12") _,
            )
        };
        uk_test::expect_eq!(result, 21);
        uk_test::expect_eq!(sp_after, top);
        for (i, word) in stack[len - 16..].iter().enumerate() {
            uk_test::expect_eq!(*word, testing::red_zone_pattern(16 - i));
        }
    }
}

#[cfg(target_arch = "x86_64")]
uk_test::ktest! {
    /// The handler runs with the caller's interrupt flag and with DF clear (SFMASK) even if
    /// the caller set it; the caller gets its RFLAGS back (DF and the arithmetic flags).
    fn flags_for_the_handler_and_back() {
        let caller: usize;
        let handler: usize;
        let after: usize;
        // SAFETY: DF is set only around the trap and cleared again before the block ends;
        // the FLAGS handler touches no memory.
        unsafe {
            core::arch::asm!(
                "pushfq", "pop {caller}",
                "std",
                "mov eax, 0x7fffffff", "add eax, 1",
                "mov eax, {number}",
                "syscall",
                "pushfq", "pop {after}",
                "cld",
                number = const testing::FLAGS,
                caller = out(reg) caller,
                after = out(reg) after,
                out("rax") handler, out("rcx") _, out("r11") _,
            )
        };
        const IF: usize = 1 << 9;
        const DF: usize = 1 << 10;
        const OF_SF: usize = (1 << 11) | (1 << 7);
        uk_test::expect_eq!(handler & IF, caller & IF);
        uk_test::expect_eq!(handler & DF, 0);
        uk_test::expect_eq!(after & DF, DF);
        uk_test::expect_eq!(after & OF_SF, OF_SF);
        uk_test::expect_eq!(after & IF, caller & IF);
    }
}

#[cfg(target_arch = "aarch64")]
uk_test::ktest! {
    /// The handler runs with the caller's DAIF (here: debug exceptions unmasked, the rest
    /// masked); the caller gets DAIF and NZCV back.
    fn flags_for_the_handler_and_back() {
        let handler: usize;
        let daif_after: usize;
        let nzcv_after: usize;
        let daif_before: usize;
        // SAFETY: DAIF is changed only for the trapped call and restored before the block
        // ends; the FLAGS handler touches no memory.
        unsafe {
            core::arch::asm!(
                "mrs {saved}, daif",
                "msr daifset, #0xf",
                "msr daifclr, #8",
                "mrs {before}, daif",
                "mov x9, #0x7fffffffffffffff",
                "adds x9, x9, #1",
                "svc #0",
                "mrs {nzcv}, nzcv",
                "mrs {after}, daif",
                "msr daif, {saved}",
                saved = out(reg) _,
                before = out(reg) daif_before,
                nzcv = out(reg) nzcv_after,
                after = out(reg) daif_after,
                in("x8") testing::FLAGS,
                lateout("x0") handler,
                out("x9") _,
            )
        };
        uk_test::expect_eq!(daif_before, 0x1c0);
        uk_test::expect_eq!(handler, daif_before);
        uk_test::expect_eq!(daif_after, daif_before);
        // 0x7fff...ffff + 1: N and V set, Z and C clear.
        uk_test::expect_eq!(nzcv_after >> 28, 0b1001);
    }
}

/// Handlers inside their trapped call right now, and the most seen at once.
static INSIDE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
static MOST_INSIDE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Private number of the handler that blocks: it yields to the other threads (which trap
/// meanwhile) before scrambling the registers and returning like [`CLOBBER`].
const BLOCKING: usize = 509;

fn sys_blocking(args: &Args) -> crate::SyscallResult {
    use core::sync::atomic::Ordering;
    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_INSIDE.fetch_max(now, Ordering::SeqCst);
    uk_sched::yield_now();
    uk_sched::yield_now();
    testing::scramble();
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    Ok(args[0] ^ CLOBBER_XOR)
}
crate::register!(number BLOCKING => sys_blocking);

uk_test::ktest! {
    /// Three threads whose handlers block inside their trapped calls (each yields to the
    /// others, which trap meanwhile) all return into their own frames with every register
    /// and the red zone intact: frames live on each thread's own stack, not on a shared
    /// per-CPU stack that the next thread's call would overwrite.
    fn handlers_that_block_keep_their_frames() {
        use alloc::rc::Rc;
        use alloc::vec::Vec;
        use core::cell::RefCell;
        use core::sync::atomic::Ordering;
        use uk_sched::{RoundRobin, Scheduler, idle};

        MOST_INSIDE.store(0, Ordering::SeqCst);
        let sched = RoundRobin::cooperative(uk_context::Native::detect(), uk_rt::platform(), idle::Poll);
        let reports = Rc::new(RefCell::new(Vec::new()));
        for name in ["a", "b", "c"] {
            let reports = reports.clone();
            let spawned = sched.spawn(name, move || {
                for _ in 0..3 {
                    let probe = testing::register_probe(BLOCKING);
                    let expected = (pattern(ARG0_REG) ^ CLOBBER_XOR) as u64;
                    reports.borrow_mut().push(probe.check(expected));
                }
            });
            uk_test::expect!(spawned.is_ok());
        }
        sched.run();
        let reports = reports.borrow();
        uk_test::expect_eq!(reports.len(), 9);
        for report in reports.iter() {
            uk_test::expect_eq!(*report, testing::ProbeReport::default());
        }
        uk_test::expect_eq!(MOST_INSIDE.load(Ordering::SeqCst), 3);
    }
}

/// A private handler over caller memory: sums the bytes of `[args[0], args[0] + args[1])`,
/// stores the sum as a `u64` at `args[2]` and returns it.
const USER_SUM: usize = 503;

fn sys_user_sum(args: &Args) -> crate::SyscallResult {
    use crate::user::{UserPtr, UserSlice, caller_memory};
    let mem = caller_memory();
    let sum = UserSlice::new(args[0], args[1])
        .bytes(mem)?
        .iter()
        .map(|&b| b as usize)
        .sum::<usize>();
    UserPtr::<u64>::new(args[2]).write(mem, sum as u64)?;
    Ok(sum)
}
crate::register!(number USER_SUM => sys_user_sum);

uk_test::ktest! {
    /// Caller memory on a booted image is the image plus the board's RAM regions, declared
    /// once: statics, the stack and the heap are inside; the NULL page, addresses past
    /// every region and wrapping ranges are not; every region of the board is a range.
    fn caller_memory_is_the_image_and_ram() {
        use crate::user::{self, NULL_PAGE, caller_memory};
        static STATIC: [u8; 16] = [1; 16];
        let mem = caller_memory();
        uk_test::expect!(user::declared() == Some(mem), "declared on first use");
        let (start, end) = user::image_range();
        uk_test::expect!(mem.contains(start.max(NULL_PAGE), end - start.max(NULL_PAGE)));
        let local = [0u8; 32];
        let heap = vec![0u8; 4096];
        for (addr, len) in [
            (STATIC.as_ptr() as usize, STATIC.len()),
            (local.as_ptr() as usize, local.len()),
            (heap.as_ptr() as usize, heap.len()),
        ] {
            uk_test::expect!(mem.check(addr, len).is_ok(), "{addr:#x}+{len}");
        }
        let mut highest = end;
        for region in uk_rt::platform().memory_regions() {
            let base = (region.base as usize).max(NULL_PAGE);
            let top = (region.base + region.size) as usize;
            uk_test::expect!(mem.contains(base, top - base), "region {base:#x}..{top:#x}");
            highest = highest.max(top);
        }
        for (addr, len) in [(0, 1), (8, 8), (NULL_PAGE - 1, 2), (highest, 1), (highest - 4, 8), (usize::MAX - 7, 16)] {
            uk_test::expect_eq!(mem.check(addr, len), Err(Errno::EFAULT));
        }
        uk_test::expect_eq!(mem.check(0, 0), Ok(()));
    }
}

uk_test::ktest! {
    /// A handler reading and writing caller memory through `uk_syscall::user`: through the
    /// trap, good buffers work and bad ones (NULL, past RAM, wrapping) give -EFAULT instead
    /// of a CPU exception; nothing is written on failure.
    fn caller_pointers_through_the_trap() {
        use crate::user::caller_memory;
        let efault = -(Errno::EFAULT.into_raw() as isize);
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let mut out = 0u64;
        let out_at = &raw mut out as usize;
        let good = [bytes.as_ptr() as usize, bytes.len(), out_at, 0, 0, 0];
        uk_test::expect_eq!(via_trap(USER_SUM, &good), 55);
        uk_test::expect_eq!(out, 55);
        uk_test::expect_eq!(dispatch(USER_SUM, &good), 55);
        // An empty buffer anywhere, NULL included: sum 0.
        out = 7;
        uk_test::expect_eq!(via_trap(USER_SUM, &[0, 0, out_at, 0, 0, 0]), 0);
        uk_test::expect_eq!(out, 0);
        let past_ram = caller_memory()
            .ranges()
            .iter()
            .map(|&(_, e)| e)
            .max()
            .unwrap_or(0)
            + 0x1000_0000;
        out = 7;
        for bad in [
            [0, 1, out_at, 0, 0, 0],
            [past_ram, 8, out_at, 0, 0, 0],
            [usize::MAX - 3, 8, out_at, 0, 0, 0],
            [bytes.as_ptr() as usize, usize::MAX, out_at, 0, 0, 0],
            [bytes.as_ptr() as usize, bytes.len(), 0, 0, 0, 0],
            [bytes.as_ptr() as usize, bytes.len(), past_ram, 0, 0, 0],
            [bytes.as_ptr() as usize, bytes.len(), usize::MAX - 3, 0, 0, 0],
        ] {
            uk_test::expect_eq!(via_trap(USER_SUM, &bad), efault);
        }
        uk_test::expect_eq!(out, 7);
    }
}
