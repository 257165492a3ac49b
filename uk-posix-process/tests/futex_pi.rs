//! Priority-inheritance futexes (LOCK_PI, LOCK_PI2, TRYLOCK_PI, UNLOCK_PI) on uk-sched
//! threads with a fake clock: the word's protocol, handover to the waiters in order,
//! errors, timeouts on both clocks, a signal during the wait (the handler runs and the wait
//! goes on), an owner that ends while others wait, and a property test of the calls that
//! never wait against a model of the word.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

use common::{addr, run_main, spawn, word, world};
use proptest::prelude::*;
use uk_posix_process::signal::{SIGUSR1, SigAction};
use uk_posix_process::*;

fn ts(sec: i64, nsec: i64) -> usize {
    Box::leak(Box::new(Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    })) as *const Timespec as usize
}

fn lock(sys: &System, f: usize) -> Result<usize, Errno> {
    sys.futex(f, FUTEX_LOCK_PI | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0)
}

fn unlock(sys: &System, f: usize) -> Result<usize, Errno> {
    sys.futex(f, FUTEX_UNLOCK_PI | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0)
}

fn trylock(sys: &System, f: usize) -> Result<usize, Errno> {
    sys.futex(f, FUTEX_TRYLOCK_PI, 0, 0, 0, 0)
}

#[test]
fn uncontended_lock_unlock_and_the_callers_own_errors() {
    run_main(move |sys, _clock| {
        let me = sys.gettid().unwrap() as u32;
        let f = word(0);
        assert_eq!(lock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), me);
        // The owner again: EDEADLK, the word untouched.
        assert_eq!(lock(sys, addr(f)), Err(Errno::EDEADLK));
        assert_eq!(trylock(sys, addr(f)), Err(Errno::EDEADLK));
        assert_eq!(f.load(Ordering::SeqCst), me);
        assert_eq!(unlock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), 0);
        // Not the owner (nobody is): EPERM.
        assert_eq!(unlock(sys, addr(f)), Err(Errno::EPERM));
        assert_eq!(trylock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), me);
        // An unlock with FUTEX_WAITERS set but nobody waiting frees the word.
        f.store(me | FUTEX_WAITERS, Ordering::SeqCst);
        assert_eq!(unlock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), 0);
        // A word whose owner died (tid 0): taken, FUTEX_OWNER_DIED kept for the new owner.
        f.store(FUTEX_OWNER_DIED, Ordering::SeqCst);
        assert_eq!(lock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), me | FUTEX_OWNER_DIED);
        assert_eq!(unlock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), 0);
        // LOCK_PI2 takes a free word as LOCK_PI does.
        assert_eq!(sys.futex(addr(f), FUTEX_LOCK_PI2, 0, 0, 0, 0), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), me);
    });
}

#[test]
fn a_dead_owner_is_esrch_and_a_live_one_makes_trylock_eagain() {
    run_main(move |sys, _clock| {
        let f = word(4000); // no thread has tid 4000
        assert_eq!(lock(sys, addr(f)), Err(Errno::ESRCH));
        assert_eq!(trylock(sys, addr(f)), Err(Errno::ESRCH));
        assert_eq!(unlock(sys, addr(f)), Err(Errno::EPERM));
        // Owned by a live thread (blocked, not ended): TRYLOCK does not wait.
        let g = word(0);
        let gate = word(0);
        let other = spawn(sys, move || {
            assert_eq!(lock(sys, addr(g)), Ok(0));
            // Parked until the main thread lets it go.
            while gate.load(Ordering::SeqCst) == 0 {
                let _ = sys.futex(addr(gate), FUTEX_WAIT, 0, 0, 0, 0);
            }
            assert_eq!(unlock(sys, addr(g)), Ok(0));
            0
        });
        uk_sched::yield_now();
        assert_eq!(g.load(Ordering::SeqCst), other as u32);
        assert_eq!(trylock(sys, addr(g)), Err(Errno::EAGAIN));
        assert_eq!(unlock(sys, addr(g)), Err(Errno::EPERM));
        assert_eq!(g.load(Ordering::SeqCst), other as u32);
        gate.store(1, Ordering::SeqCst);
        sys.futex_wake(addr(gate), 1, FUTEX_BITSET_MATCH_ANY)
            .unwrap();
        uk_sched::yield_now();
        assert_eq!(g.load(Ordering::SeqCst), 0);
        assert_eq!(trylock(sys, addr(g)), Ok(0));
    });
}

#[test]
fn unlock_hands_the_word_to_the_waiters_in_their_order() {
    run_main(move |sys, _clock| {
        let me = sys.gettid().unwrap() as u32;
        let f = word(0);
        assert_eq!(lock(sys, addr(f)), Ok(0));
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut tids = Vec::new();
        for _ in 0..3 {
            let order = order.clone();
            tids.push(spawn(sys, move || {
                let tid = sys.gettid().unwrap();
                assert_eq!(lock(sys, addr(f)), Ok(0));
                // Handed over: the word holds this thread's tid.
                assert_eq!(f.load(Ordering::SeqCst) & FUTEX_TID_MASK, tid as u32);
                order.borrow_mut().push(tid);
                uk_sched::yield_now(); // the others stay queued meanwhile
                assert_eq!(unlock(sys, addr(f)), Ok(0));
                0
            }));
            uk_sched::yield_now(); // each queues before the next starts
        }
        assert_eq!(sys.futex_waiters(addr(f)), 3);
        assert_eq!(f.load(Ordering::SeqCst), me | FUTEX_WAITERS);
        assert_eq!(unlock(sys, addr(f)), Ok(0));
        // Straight to the first waiter, FUTEX_WAITERS kept for the other two: this thread
        // cannot take it back.
        assert_eq!(f.load(Ordering::SeqCst), tids[0] as u32 | FUTEX_WAITERS);
        assert_eq!(trylock(sys, addr(f)), Err(Errno::EAGAIN));
        assert_eq!(sys.futex_waiters(addr(f)), 2);
        // Waiting behind the three.
        assert_eq!(lock(sys, addr(f)), Ok(0));
        assert_eq!(*order.borrow(), tids);
        // The last of the queue: no FUTEX_WAITERS.
        assert_eq!(f.load(Ordering::SeqCst), me);
        assert_eq!(unlock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), 0);
        // REQUEUE refuses to move LOCK_PI waiters (as Linux).
        assert_eq!(lock(sys, addr(f)), Ok(0));
        spawn(sys, move || lock(sys, addr(f)).map_or(1, |_| 0));
        uk_sched::yield_now();
        let g = word(0);
        assert_eq!(
            sys.futex_requeue(addr(f), 0, 1, addr(g), None),
            Err(Errno::EINVAL)
        );
        assert_eq!(unlock(sys, addr(f)), Ok(0));
    });
}

#[test]
fn lock_pi_times_out_at_an_absolute_deadline_on_either_clock() {
    run_main(move |sys, clock| {
        let f = word(0);
        let holder = spawn(sys, move || {
            assert_eq!(lock(sys, addr(f)), Ok(0));
            // Ends at 100 s: until then the word is held.
            sys.nanosleep(Timespec {
                tv_sec: 100,
                tv_nsec: 0,
            })
            .unwrap();
            assert_eq!(unlock(sys, addr(f)), Ok(0));
            0
        });
        uk_sched::yield_now();
        assert_eq!(f.load(Ordering::SeqCst), holder as u32);
        clock.set(10_000_000_000);
        sys.set_realtime_ns(1_700_000_000_000_000_000);
        // LOCK_PI: CLOCK_REALTIME, 2 s from now.
        assert_eq!(
            sys.futex(addr(f), FUTEX_LOCK_PI, 0, ts(1_700_000_002, 0), 0, 0),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 12_000_000_000);
        assert_eq!(sys.futex_waiters(addr(f)), 0);
        // LOCK_PI2: CLOCK_MONOTONIC, or CLOCK_REALTIME with the flag.
        assert_eq!(
            sys.futex(addr(f), FUTEX_LOCK_PI2, 0, ts(13, 500), 0, 0),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 13_000_000_500);
        assert_eq!(
            sys.futex(
                addr(f),
                FUTEX_LOCK_PI2 | FUTEX_CLOCK_REALTIME,
                0,
                ts(1_700_000_004, 0),
                0,
                0
            ),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 14_000_000_000);
        // A deadline already past: at once.
        assert_eq!(
            sys.futex(addr(f), FUTEX_LOCK_PI2, 0, ts(1, 0), 0, 0),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sys.monotonic_ns(), 14_000_000_000);
        // LOCK_PI has no clock flag (Linux: ENOSYS); bad timespecs are EINVAL.
        assert_eq!(
            sys.futex(
                addr(f),
                FUTEX_LOCK_PI | FUTEX_CLOCK_REALTIME,
                0,
                ts(1, 0),
                0,
                0
            ),
            Err(Errno::ENOSYS)
        );
        assert_eq!(
            sys.futex(addr(f), FUTEX_LOCK_PI, 0, ts(0, 1_000_000_000), 0, 0),
            Err(Errno::EINVAL)
        );
        // Still the holder's; without a timeout the wait lasts until its unlock, once its
        // sleep (from 0 s on the fake clock) ends at 100 s.
        assert_eq!(lock(sys, addr(f)), Ok(0));
        assert!(sys.monotonic_ns() >= 100_000_000_000);
    });
}

/// The System the handler looks at.
static SYS: AtomicPtr<System> = AtomicPtr::new(std::ptr::null_mut());
static HANDLED: AtomicUsize = AtomicUsize::new(0);
static HANDLED_BY: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_usr1(_sig: i32) {
    // SAFETY: set from a leaked `&'static System` before the signal is sent.
    let sys = unsafe { &*SYS.load(Ordering::SeqCst) };
    HANDLED.fetch_add(1, Ordering::SeqCst);
    HANDLED_BY.store(sys.gettid().unwrap(), Ordering::SeqCst);
}

#[test]
fn a_signal_runs_its_handler_and_the_lock_pi_wait_goes_on() {
    run_main(move |sys, _clock| {
        SYS.store(sys as *const System as *mut System, Ordering::SeqCst);
        let act = SigAction {
            handler: on_usr1 as extern "C" fn(i32) as usize,
            ..SigAction::default()
        };
        sys.rt_sigaction(SIGUSR1, Some(act)).unwrap();
        let f = word(0);
        assert_eq!(lock(sys, addr(f)), Ok(0));
        let result = Rc::new(RefCell::new(None));
        let r2 = result.clone();
        let waiter = spawn(sys, move || {
            *r2.borrow_mut() = Some(lock(sys, addr(f)));
            0
        });
        uk_sched::yield_now();
        assert_eq!(sys.futex_waiters(addr(f)), 1);
        sys.tgkill(None, waiter, SIGUSR1).unwrap();
        uk_sched::yield_now();
        // The handler ran on the waiter; LOCK_PI did not return EINTR: it waits again.
        assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
        assert_eq!(HANDLED_BY.load(Ordering::SeqCst), waiter);
        assert!(result.borrow().is_none());
        assert_eq!(sys.futex_waiters(addr(f)), 1);
        assert_eq!(unlock(sys, addr(f)), Ok(0));
        uk_sched::yield_now();
        assert_eq!(*result.borrow(), Some(Ok(0)));
        assert_eq!(f.load(Ordering::SeqCst), waiter as u32);
    });
}

#[test]
fn an_owner_that_ends_passes_the_word_to_its_waiter_and_a_wake_lets_a_waiter_take_a_freed_word() {
    run_main(move |sys, _clock| {
        let me = sys.gettid().unwrap() as u32;
        // The owner ends holding the word: the waiter (this thread) is handed it, without
        // FUTEX_OWNER_DIED (the word is on no robust list).
        let f = word(0);
        let owner = spawn(sys, move || {
            assert_eq!(lock(sys, addr(f)), Ok(0));
            uk_sched::yield_now();
            0
        });
        uk_sched::yield_now();
        assert_eq!(f.load(Ordering::SeqCst), owner as u32);
        assert_eq!(lock(sys, addr(f)), Ok(0));
        assert_eq!(f.load(Ordering::SeqCst), me);
        assert!(!sys.tid_exists(owner));
        // musl's pthread_exit on a robust PI mutex: FUTEX_OWNER_DIED in place of its tid,
        // then FUTEX_WAKE; the woken LOCK_PI waiter owns it with FUTEX_OWNER_DIED set.
        let g = word(0);
        let gone = word(0);
        let owner = spawn(sys, move || {
            assert_eq!(lock(sys, addr(g)), Ok(0));
            while gone.load(Ordering::SeqCst) == 0 {
                let _ = sys.futex(addr(gone), FUTEX_WAIT, 0, 0, 0, 0);
            }
            let old = g.swap(FUTEX_OWNER_DIED, Ordering::SeqCst);
            assert_eq!(old & FUTEX_WAITERS, FUTEX_WAITERS);
            assert_eq!(sys.futex_wake(addr(g), 1, FUTEX_BITSET_MATCH_ANY), Ok(1));
            0
        });
        uk_sched::yield_now();
        assert_eq!(g.load(Ordering::SeqCst), owner as u32);
        gone.store(1, Ordering::SeqCst);
        sys.futex_wake(addr(gone), 1, FUTEX_BITSET_MATCH_ANY)
            .unwrap();
        assert_eq!(lock(sys, addr(g)), Ok(0));
        assert_eq!(g.load(Ordering::SeqCst), me | FUTEX_OWNER_DIED);
    });
}

/// What the model says a call that never waits returns, and the word after it.
fn model(op: u8, v: u32, me: u32, live: u32) -> (Result<usize, Errno>, u32) {
    let owner = v & FUTEX_TID_MASK;
    match op {
        // TRYLOCK_PI, and LOCK_PI on a word it can take or must refuse at once.
        0 | 1 => {
            if owner == 0 {
                (Ok(0), me | (v & FUTEX_OWNER_DIED))
            } else if owner == me {
                (Err(Errno::EDEADLK), v)
            } else if owner != live {
                (Err(Errno::ESRCH), v)
            } else {
                (Err(Errno::EAGAIN), v) // TRYLOCK only: LOCK would wait
            }
        }
        // UNLOCK_PI with nobody waiting.
        _ => {
            if owner == me {
                (Ok(0), 0)
            } else {
                (Err(Errno::EPERM), v)
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random words (free, the caller's, a live thread's, a dead tid; each with or without
    /// the two flag bits) and random calls that never wait: results and words as the model.
    #[test]
    fn calls_that_never_wait_follow_the_model(
        ops in proptest::collection::vec((0u8..3, 0u8..4, any::<bool>(), any::<bool>()), 1..24)
    ) {
        let w = world();
        let sys = w.sys;
        let status = w.run(move || {
            let me = sys.gettid().unwrap() as u32;
            let gate = word(0);
            // A live thread that owns nothing, parked until the end.
            let live = spawn(sys, move || {
                while gate.load(Ordering::SeqCst) == 0 {
                    let _ = sys.futex(addr(gate), FUTEX_WAIT, 0, 0, 0, 0);
                }
                0
            }) as u32;
            uk_sched::yield_now();
            let f = word(0);
            for &(op, who, waiters, died) in &ops {
                let owner = [0, me, live, 4000][who as usize];
                let v = owner
                    | if waiters { FUTEX_WAITERS } else { 0 }
                    | if died { FUTEX_OWNER_DIED } else { 0 };
                f.store(v, Ordering::SeqCst);
                let (want, word_after) = model(op, v, me, live);
                if op == 1 && want == Err(Errno::EAGAIN) {
                    continue; // LOCK_PI would wait: not this test's business
                }
                let got = match op {
                    0 => trylock(sys, addr(f)),
                    1 => lock(sys, addr(f)),
                    _ => unlock(sys, addr(f)),
                };
                assert_eq!(got, want, "op {op} on {v:#x}");
                assert_eq!(f.load(Ordering::SeqCst), word_after, "op {op} on {v:#x}");
                assert_eq!(sys.futex_waiters(addr(f)), 0);
            }
            gate.store(1, Ordering::SeqCst);
            sys.futex_wake(addr(gate), 1, FUTEX_BITSET_MATCH_ANY).unwrap();
            0
        });
        prop_assert_eq!(status, Some(0));
    }
}
