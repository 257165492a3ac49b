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
    // SAFETY: the private test handlers and unregistered numbers touch no memory.
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
            (Sysno::tkill as usize, [1, 2, 0, 0, 0, 0]),
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
