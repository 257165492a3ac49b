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
            sys.futex(addr(f), 5 /* WAKE_OP */, 1, 0, 0, 0),
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
