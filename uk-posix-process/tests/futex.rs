//! futex semantics on uk-sched threads with a fake clock: values, bitsets, requeue,
//! timeouts (seconds and nanoseconds both honoured), bad arguments.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use common::{addr, spawn, word, world};
use uk_posix_process::*;

fn ts(sec: i64, nsec: i64) -> usize {
    Box::leak(Box::new(Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    })) as *const Timespec as usize
}

#[test]
fn value_mismatch_alignment_and_bad_pointers() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let f = word(5);
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 4, 0, 0, 0),
            Err(Errno::EAGAIN)
        );
        assert_eq!(
            sys.futex(addr(f) + 1, FUTEX_WAIT, 5, 0, 0, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(sys.futex(0, FUTEX_WAIT, 0, 0, 0, 0), Err(Errno::EFAULT));
        assert_eq!(sys.futex(0, FUTEX_WAKE, 1, 0, 0, 0), Err(Errno::EFAULT));
        assert_eq!(
            sys.futex(1 << 60, FUTEX_WAKE, 1, 0, 0, 0),
            Err(Errno::EFAULT)
        );
        // A bad timeout pointer is EFAULT, a bad timespec EINVAL.
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 5, 8, 0, 0),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 5, ts(0, 1_000_000_000), 0, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 5, ts(-1, 0), 0, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 5, ts(0, -1), 0, 0),
            Err(Errno::EINVAL)
        );
        // Zero bitsets, unknown operations, REALTIME on a wake.
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT_BITSET, 5, 0, 0, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAKE_BITSET, 1, 0, 0, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.futex(addr(f), 12 /* CMP_REQUEUE_PI */, 1, 0, 0, 0),
            Err(Errno::ENOSYS)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 1, 0, 0, 0),
            Err(Errno::ENOSYS)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0),
            Ok(0)
        );
        assert_eq!(sys.futex_waiters(addr(f)), 0);
        0
    });
}

#[test]
fn futex_timeout_honours_seconds() {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    w.run(move || {
        let f = word(0);
        // 2.5 s relative: seconds count (Unikraft 0.11 ignores tv_sec).
        let t0 = sys.monotonic_ns();
        assert_eq!(
            sys.futex(
                addr(f),
                FUTEX_WAIT | FUTEX_PRIVATE_FLAG,
                0,
                ts(2, 500_000_000),
                0,
                0
            ),
            Err(Errno::ETIMEDOUT)
        );
        let waited = sys.monotonic_ns() - t0;
        assert!(waited >= 2_500_000_000, "{waited}");
        assert!(waited < 2_600_000_000, "{waited}");
        // Nanoseconds alone.
        let t0 = sys.monotonic_ns();
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 0, ts(0, 1234), 0, 0),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns() - t0, 1234);
        // A zero timeout times out at once.
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT, 0, ts(0, 0), 0, 0),
            Err(Errno::ETIMEDOUT)
        );
        // WAIT_BITSET: absolute, on the monotonic clock, and on the realtime clock.
        clock.set(10_000_000_000);
        assert_eq!(
            sys.futex(
                addr(f),
                FUTEX_WAIT_BITSET,
                0,
                ts(12, 0),
                0,
                FUTEX_BITSET_MATCH_ANY
            ),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 12_000_000_000);
        sys.set_realtime_ns(1_700_000_000_000_000_000);
        let deadline = ts(1_700_000_003, 0);
        assert_eq!(
            sys.futex(
                addr(f),
                FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME,
                0,
                deadline,
                0,
                1
            ),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 15_000_000_000);
        // A deadline in the past: at once.
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAIT_BITSET, 0, ts(1, 0), 0, 1),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 15_000_000_000);
        0
    });
}

#[test]
fn wake_before_timeout_returns_zero() {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    w.run(move || {
        let f = word(0);
        spawn(sys, move || {
            clock.advance(1_000);
            f.store(1, Ordering::SeqCst);
            assert_eq!(sys.futex(addr(f), FUTEX_WAKE, 1, 0, 0, 0), Ok(1));
            0
        });
        assert_eq!(sys.futex(addr(f), FUTEX_WAIT, 0, ts(5, 0), 0, 0), Ok(0));
        assert!(sys.monotonic_ns() < 5_000_000_000, "woken, not timed out");
        0
    });
}

#[test]
fn wake_counts_and_order() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let f = word(0);
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..4 {
            let o = order.clone();
            spawn(sys, move || {
                assert_eq!(sys.futex(addr(f), FUTEX_WAIT, 0, 0, 0, 0), Ok(0));
                o.borrow_mut().push(i);
                0
            });
        }
        uk_sched::yield_now();
        assert_eq!(sys.futex_waiters(addr(f)), 4);
        // nr <= 0 still wakes one, as Linux.
        assert_eq!(sys.futex(addr(f), FUTEX_WAKE, 0, 0, 0, 0), Ok(1));
        assert_eq!(sys.futex(addr(f), FUTEX_WAKE, 2, 0, 0, 0), Ok(2));
        uk_sched::yield_now();
        assert_eq!(*order.borrow(), [0, 1, 2], "FIFO");
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAKE, i32::MAX as u32, 0, 0, 0),
            Ok(1)
        );
        assert_eq!(sys.futex(addr(f), FUTEX_WAKE, 1, 0, 0, 0), Ok(0));
        0
    });
}

#[test]
fn wait_bitset_and_wake_bitset() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let f = word(0);
        let woke = Rc::new(Cell::new(0u32));
        for bits in [0b01u32, 0b10] {
            let wk = woke.clone();
            spawn(sys, move || {
                assert_eq!(
                    sys.futex(
                        addr(f),
                        FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                        0,
                        0,
                        0,
                        bits
                    ),
                    Ok(0)
                );
                wk.set(wk.get() | bits);
                0
            });
        }
        uk_sched::yield_now();
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAKE_BITSET, 10, 0, 0, 0b100),
            Ok(0),
            "no bit in common"
        );
        assert_eq!(sys.futex(addr(f), FUTEX_WAKE_BITSET, 10, 0, 0, 0b10), Ok(1));
        uk_sched::yield_now();
        assert_eq!(woke.get(), 0b10);
        assert_eq!(
            sys.futex(addr(f), FUTEX_WAKE, 10, 0, 0, 0),
            Ok(1),
            "plain wake matches any"
        );
        uk_sched::yield_now();
        assert_eq!(woke.get(), 0b11);
        0
    });
}

#[test]
fn requeue_and_cmp_requeue() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let (a, b) = (word(7), word(0));
        let done = Rc::new(Cell::new(0));
        for _ in 0..5 {
            let d = done.clone();
            spawn(sys, move || {
                assert_eq!(sys.futex(addr(a), FUTEX_WAIT, 7, 0, 0, 0), Ok(0));
                d.set(d.get() + 1);
                0
            });
        }
        uk_sched::yield_now();
        // CMP_REQUEUE with a stale value: EAGAIN, nothing moves.
        assert_eq!(
            sys.futex(addr(a), FUTEX_CMP_REQUEUE, 1, 2, addr(b), 8),
            Err(Errno::EAGAIN)
        );
        assert_eq!(
            (sys.futex_waiters(addr(a)), sys.futex_waiters(addr(b))),
            (5, 0)
        );
        // Negative counts: EINVAL.
        assert_eq!(
            sys.futex(addr(a), FUTEX_CMP_REQUEUE, -1i32 as u32, 2, addr(b), 7),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.futex(addr(a), FUTEX_REQUEUE, 1, 0, 8, 0),
            Err(Errno::EFAULT),
            "bad uaddr2"
        );
        // Wake 1, move 2 to b: returns 3.
        assert_eq!(
            sys.futex(
                addr(a),
                FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG,
                1,
                2,
                addr(b),
                7
            ),
            Ok(3)
        );
        assert_eq!(
            (sys.futex_waiters(addr(a)), sys.futex_waiters(addr(b))),
            (2, 2)
        );
        // Plain REQUEUE: wake none, move the rest.
        assert_eq!(sys.futex(addr(a), FUTEX_REQUEUE, 0, 10, addr(b), 0), Ok(2));
        assert_eq!(
            (sys.futex_waiters(addr(a)), sys.futex_waiters(addr(b))),
            (0, 4)
        );
        uk_sched::yield_now();
        assert_eq!(done.get(), 1);
        // Waking the new word wakes the moved waiters.
        assert_eq!(sys.futex(addr(b), FUTEX_WAKE, 10, 0, 0, 0), Ok(4));
        uk_sched::yield_now();
        assert_eq!(done.get(), 5);
        0
    });
}

/// Linux's `FUTEX_OP(op, oparg, cmp, cmparg)`.
fn futex_op(op: u32, oparg: i32, cmp: u32, cmparg: i32) -> u32 {
    ((op & 0xf) << 28)
        | ((cmp & 0xf) << 24)
        | ((oparg as u32 & 0xfff) << 12)
        | (cmparg as u32 & 0xfff)
}

#[test]
fn wake_op_encoding_operations_and_comparisons_are_linux_ones() {
    let apply = |op, oparg, old| {
        WakeOp::decode(futex_op(op, oparg, 0, 0))
            .unwrap()
            .apply(old)
    };
    assert_eq!(apply(FUTEX_OP_SET, 7, 100), 7);
    assert_eq!(apply(FUTEX_OP_ADD, 1, u32::MAX), 0, "wrapping add");
    assert_eq!(
        apply(FUTEX_OP_ADD, -1, 5),
        4,
        "the operand is 12-bit signed"
    );
    assert_eq!(apply(FUTEX_OP_OR, 0b100, 0b001), 0b101);
    assert_eq!(apply(FUTEX_OP_ANDN, 0b100, 0b111), 0b011);
    assert_eq!(apply(FUTEX_OP_XOR, 0b110, 0b011), 0b101);
    assert_eq!(apply(FUTEX_OP_SET | FUTEX_OP_OPARG_SHIFT, 31, 0), 1 << 31);
    assert_eq!(
        apply(FUTEX_OP_OR | FUTEX_OP_OPARG_SHIFT, 33, 0),
        2,
        "shift modulo 32"
    );
    assert_eq!(apply(FUTEX_OP_SET, 0x7ff, 0), 0x7ff);
    assert_eq!(apply(FUTEX_OP_SET, -0x800, 0), (-0x800i32) as u32);
    let passes = |cmp, cmparg, old| {
        WakeOp::decode(futex_op(FUTEX_OP_SET, 0, cmp, cmparg))
            .unwrap()
            .passes(old)
    };
    for (cmp, results) in [
        (FUTEX_OP_CMP_EQ, [false, true, false]),
        (FUTEX_OP_CMP_NE, [true, false, true]),
        (FUTEX_OP_CMP_LT, [true, false, false]),
        (FUTEX_OP_CMP_LE, [true, true, false]),
        (FUTEX_OP_CMP_GT, [false, false, true]),
        (FUTEX_OP_CMP_GE, [false, true, true]),
    ] {
        // Old values below, at and above 0, compared as signed (-1 < 0).
        for (old, want) in [u32::MAX, 0, 1].into_iter().zip(results) {
            assert_eq!(passes(cmp, 0, old), want, "cmp {cmp}, old {old:#x}");
        }
    }
    assert!(
        passes(FUTEX_OP_CMP_EQ, -1, u32::MAX),
        "the argument is 12-bit signed"
    );
    assert_eq!(WakeOp::decode(futex_op(5, 0, 0, 0)), Err(Errno::ENOSYS));
    assert_eq!(WakeOp::decode(futex_op(0, 0, 6, 0)), Err(Errno::ENOSYS));
}

#[test]
fn wake_op_changes_the_second_word_wakes_the_first_and_the_second_by_its_old_value() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let (a, b) = (word(0), word(0));
        let woke = Rc::new(RefCell::new(Vec::new()));
        for (name, f) in [('a', a), ('a', a), ('b', b), ('b', b)] {
            let woke = woke.clone();
            spawn(sys, move || {
                assert_eq!(sys.futex(addr(f), FUTEX_WAIT, 0, 0, 0, 0), Ok(0));
                woke.borrow_mut().push(name);
                0
            });
        }
        uk_sched::yield_now();
        assert_eq!(
            (sys.futex_waiters(addr(a)), sys.futex_waiters(addr(b))),
            (2, 2)
        );
        // b += 1 (old 0 == 0 passes): one of a, one of b.
        let op = futex_op(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0);
        assert_eq!(
            sys.futex(
                addr(a),
                FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG,
                1,
                1,
                addr(b),
                op
            ),
            Ok(2)
        );
        assert_eq!(b.load(Ordering::SeqCst), 1);
        // Again: old value 1 fails the comparison, so only a's waiter wakes.
        assert_eq!(sys.futex(addr(a), FUTEX_WAKE_OP, 5, 5, addr(b), op), Ok(1));
        assert_eq!(b.load(Ordering::SeqCst), 2);
        assert_eq!(
            (sys.futex_waiters(addr(a)), sys.futex_waiters(addr(b))),
            (0, 1)
        );
        uk_sched::yield_now();
        assert_eq!(*woke.borrow(), ['a', 'b', 'a']);
        // Counts <= 0 wake one, as Linux's; the same word twice works.
        let op = futex_op(FUTEX_OP_SET, 9, FUTEX_OP_CMP_GE, 0);
        assert_eq!(sys.futex(addr(b), FUTEX_WAKE_OP, 0, 0, addr(b), op), Ok(1));
        assert_eq!(b.load(Ordering::SeqCst), 9);
        uk_sched::yield_now();
        assert_eq!(*woke.borrow(), ['a', 'b', 'a', 'b']);
        0
    });
}

#[test]
fn wake_op_refuses_bad_input_and_changes_nothing() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let (a, b) = (word(0), word(5));
        spawn(sys, move || {
            sys.futex(addr(a), FUTEX_WAIT, 0, 0, 0, 0).map_or(1, |_| 0)
        });
        uk_sched::yield_now();
        let set = futex_op(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0);
        for (uaddr, uaddr2, op, errno) in [
            (addr(a), addr(b), futex_op(5, 1, 0, 0), Errno::ENOSYS),
            (addr(a), addr(b), futex_op(0, 1, 9, 0), Errno::ENOSYS),
            (addr(a), addr(b) + 2, set, Errno::EINVAL),
            (addr(a) + 1, addr(b), set, Errno::EINVAL),
            (addr(a), 0, set, Errno::EFAULT),
            (0, addr(b), set, Errno::EFAULT),
        ] {
            assert_eq!(
                sys.futex(uaddr, FUTEX_WAKE_OP, 1, 1, uaddr2, op),
                Err(errno)
            );
            assert_eq!(b.load(Ordering::SeqCst), 5);
            assert_eq!(sys.futex_waiters(addr(a)), 1);
        }
        assert_eq!(sys.futex(addr(a), FUTEX_WAKE, 1, 0, 0, 0), Ok(1));
        0
    });
}

#[test]
fn wait_outside_a_thread_does_not_hang() {
    let sys: &'static System = Box::leak(Box::new(System::new()));
    let f = word(0);
    assert_eq!(
        sys.futex(addr(f), FUTEX_WAIT, 0, 0, 0, 0),
        Err(Errno::ENOSYS)
    );
    assert_eq!(
        sys.futex(addr(f), FUTEX_WAIT, 1, 0, 0, 0),
        Err(Errno::EAGAIN)
    );
}

/// A 12-bit field of `val3` as a signed number, the long way.
fn signed12(bits: u32) -> i64 {
    let v = i64::from(bits & 0xfff);
    if v >= 0x800 { v - 0x1000 } else { v }
}

proptest::proptest! {
    /// Every `val3` decodes as Linux's `futex_atomic_op_inuser` reads it, or is `ENOSYS`;
    /// no value panics.
    #[test]
    fn wake_op_decoding_agrees_with_a_model_for_every_val3(val3 in proptest::prelude::any::<u32>(), old in proptest::prelude::any::<u32>()) {
        let (op, cmp) = ((val3 >> 28) & 7, (val3 >> 24) & 0xf);
        let decoded = WakeOp::decode(val3);
        if op > 4 || cmp > 5 {
            proptest::prop_assert_eq!(decoded, Err(Errno::ENOSYS));
            return Ok(());
        }
        let w = decoded.unwrap();
        let oparg = signed12(val3 >> 12);
        let operand = if val3 & (1 << 31) != 0 { 1u64 << (oparg.rem_euclid(32)) } else { oparg as u64 };
        let operand = operand as u32;
        let want = match op {
            0 => operand,
            1 => old.wrapping_add(operand),
            2 => old | operand,
            3 => old & !operand,
            _ => old ^ operand,
        };
        proptest::prop_assert_eq!(w.apply(old), want);
        let (o, c) = (i64::from(old as i32), signed12(val3));
        let pass = [o == c, o != c, o < c, o <= c, o > c, o >= c][cmp as usize];
        proptest::prop_assert_eq!(w.passes(old), pass);
    }
}
