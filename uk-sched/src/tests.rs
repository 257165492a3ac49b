//! Host tests of the scheduler, the wait queues and the locks.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU64, Ordering};
use std::string::String;

use uk_context::{Native, TcbSpec, TlsTemplate};
use uk_hal::Clock;

use crate::*;

// ---------------------------------------------------------------------------------------
// Fixtures

/// A clock that only moves when told (by a thread "working" or by the idle hook).
#[derive(Clone, Default)]
struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
    fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn monotonic_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn cycles(&self) -> u64 {
        self.monotonic_ns()
    }
    fn cycles_per_second(&self) -> u64 {
        1_000_000_000
    }
}

/// A simulated interrupt handler.
type Interrupt = std::boxed::Box<dyn FnMut()>;

/// Idle hook for a fake clock: jumps to the deadline, as a halted CPU woken by its timer
/// would find the time. Counts its calls.
#[derive(Clone, Default)]
struct JumpIdle {
    clock: FakeClock,
    calls: Rc<Cell<u32>>,
    /// Called when there is no deadline (a simulated interrupt source).
    on_no_deadline: Rc<RefCell<Option<Interrupt>>>,
}

impl Idle for JumpIdle {
    fn idle(&self, _clock: &dyn Clock, deadline: Option<u64>) {
        self.calls.set(self.calls.get() + 1);
        match deadline {
            Some(d) => {
                if d > self.clock.monotonic_ns() {
                    self.clock.set(d);
                }
            }
            None => match self.on_no_deadline.borrow_mut().as_mut() {
                Some(interrupt) => interrupt(),
                None => panic!("deadlock in test"),
            },
        }
    }
}

type Sched = RoundRobin<Native, FakeClock>;

fn fake() -> (Sched, FakeClock, JumpIdle) {
    let clock = FakeClock::default();
    let idle = JumpIdle {
        clock: clock.clone(),
        ..Default::default()
    };
    (
        RoundRobin::cooperative(Native::detect(), clock.clone(), idle.clone()),
        clock,
        idle,
    )
}

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

// ---------------------------------------------------------------------------------------
// Ordering and sleeping

#[test]
fn round_robin_is_fifo_and_yield_goes_to_the_tail() {
    let (s, _, _) = fake();
    let l = log();
    for name in ["a", "b", "c"] {
        let l = l.clone();
        s.spawn(name, move || {
            for i in 0..3 {
                push(&l, format!("{name}{i}"));
                yield_now();
            }
        })
        .unwrap();
    }
    s.run();
    assert_eq!(
        *l.borrow(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
    assert_eq!(s.thread_count(), 0);
    assert_eq!(s.stats().reclaimed, 3);
}

#[test]
fn relax_yields_inside_threads_and_spins_outside() {
    // Outside a thread there is nothing to yield to.
    assert!(!yield_if_in_thread());
    let (s, _, _) = fake();
    let l = log();
    let waiter = l.clone();
    s.spawn("waiter", move || {
        // A driver's wait: relax until the other thread has done its part (bounded, so a
        // relax that only spins fails the test instead of hanging it).
        for _ in 0..1000 {
            if waiter.borrow().iter().any(|e| e == "done") {
                push(&waiter, "waited");
                return;
            }
            push(&waiter, "relax");
            uk_hal::relax();
        }
    })
    .unwrap();
    let other = l.clone();
    s.spawn("other", move || push(&other, "done")).unwrap();
    // `run` registers the hook (once per process; the first one wins, and every scheduler
    // registers the same function).
    s.run();
    assert_eq!(*l.borrow(), ["relax", "done", "waited"]);
}

#[test]
fn typed_yield_is_fifo_like_the_free_function() {
    let (s, _, _) = fake();
    let s_ref = unsafe_static(&s);
    let l = log();
    for name in ["a", "b"] {
        let l = l.clone();
        s.spawn(name, move || {
            for i in 0..2 {
                push(&l, format!("{name}{i}"));
                s_ref.yield_now();
            }
        })
        .unwrap();
    }
    s.run();
    assert_eq!(*l.borrow(), ["a0", "b0", "a1", "b1"]);
    assert_eq!(s.stats().reclaimed, 2);
}

#[test]
#[should_panic(expected = "must be called by a running thread of this scheduler")]
fn typed_yield_outside_its_threads_panics() {
    let (s, _, _) = fake();
    s.yield_now();
}

/// A thread of an inner scheduler (run by a thread of the outer one) is not the outer
/// scheduler's running thread: the outer one's typed yield refuses it, though the thread
/// that called the inner `run` is the outer scheduler's current thread.
#[test]
#[should_panic(expected = "must be called by a running thread of this scheduler")]
fn typed_yield_of_another_scheduler_panics() {
    let (outer, _, _) = fake();
    let outer_ref = unsafe_static(&outer);
    outer
        .spawn("host", move || {
            let (inner, _, _) = fake();
            inner.spawn("guest", move || outer_ref.yield_now()).unwrap();
            inner.run();
        })
        .unwrap();
    outer.run();
}

// ---------------------------------------------------------------------------------------
// CPU time

/// A scheduler that counts CPU time, on the fake clock.
fn fake_counting() -> (Sched, FakeClock) {
    let (s, clock, _) = fake();
    (s.with_cpu_time(), clock)
}

#[test]
fn cpu_time_charges_each_thread_only_its_own_running_time() {
    let (s, clock) = fake_counting();
    let seen = log();
    let mut threads = Vec::new();
    for (name, work) in [("a", 300u64), ("b", 50)] {
        let (clock, seen) = (clock.clone(), seen.clone());
        threads.push(
            s.spawn(name, move || {
                for round in 0..3u64 {
                    clock.advance(work);
                    let me = current().unwrap();
                    // While running, the time since the switch in counts too.
                    push(&seen, format!("{name}{round}={:?}", me.cpu_time_ns()));
                    yield_now();
                }
            })
            .unwrap(),
        );
    }
    // Time passing while a thread sleeps is not its own.
    let sleeper = {
        let clock = clock.clone();
        s.spawn("sleeper", move || {
            clock.advance(7);
            sleep(1_000);
            clock.advance(3);
        })
        .unwrap()
    };
    s.run();
    assert_eq!(
        *seen.borrow(),
        [
            "a0=Some(300)",
            "b0=Some(50)",
            "a1=Some(600)",
            "b1=Some(100)",
            "a2=Some(900)",
            "b2=Some(150)",
        ]
    );
    // Exited and reclaimed: the totals stay readable.
    assert_eq!(threads[0].cpu_time_ns(), Some(900));
    assert_eq!(threads[1].cpu_time_ns(), Some(150));
    assert_eq!(sleeper.cpu_time_ns(), Some(10));
}

#[test]
fn cpu_time_is_none_unless_asked_for_and_survives_a_move() {
    let (plain, clock, _) = fake();
    let t = plain
        .spawn("t", {
            let clock = clock.clone();
            move || {
                clock.advance(40);
                assert_eq!(current().unwrap().cpu_time_ns(), None);
            }
        })
        .unwrap();
    assert_eq!(
        t.cpu_time_ns(),
        None,
        "a member of a scheduler that does not count"
    );
    plain.run();

    // Counted on one scheduler, moved (sleeping) to another: the total goes with it.
    let (first, clock) = fake_counting();
    let second = RoundRobin::cooperative(
        Native::detect(),
        clock.clone(),
        JumpIdle {
            clock: clock.clone(),
            ..Default::default()
        },
    )
    .with_cpu_time();
    let t = first
        .spawn("mover", {
            let clock = clock.clone();
            move || {
                clock.advance(25);
                sleep(1_000);
                clock.advance(5);
            }
        })
        .unwrap();
    let first_ref: &'static Sched = unsafe_static(&first);
    let mover = t.clone();
    first
        .spawn("remover", move || first_ref.remove(&mover).unwrap())
        .unwrap();
    first.run();
    assert_eq!(t.cpu_time_ns(), Some(25), "in no scheduler");
    drop(first);
    second.add(&t).unwrap();
    second.run();
    assert_eq!(t.cpu_time_ns(), Some(30));
}

#[test]
fn context_switches_count_blocking_as_voluntary_and_yielding_to_another_as_involuntary() {
    let (s, _clock) = fake_counting();
    let seen = log();
    let mut threads = Vec::new();
    for (name, nap) in [("a", 100u64), ("b", 50)] {
        let seen = seen.clone();
        threads.push(
            s.spawn(name, move || {
                // Two yields while the other thread is runnable: involuntary, as Linux
                // counts sched_yield.
                yield_now();
                yield_now();
                // Sleeping: voluntary.
                sleep(nap);
                // Alone (the other sleeps or has exited): a yield that switches nowhere
                // does not count.
                yield_now();
                let me = current().unwrap();
                push(&seen, format!("{name}={:?}", me.context_switches()));
            })
            .unwrap(),
        );
    }
    s.run();
    let counted = |voluntary, involuntary| ContextSwitches {
        voluntary,
        involuntary,
    };
    assert_eq!(
        *seen.borrow(),
        [
            format!("b={:?}", Some(counted(1, 2))),
            format!("a={:?}", Some(counted(1, 2))),
        ]
    );
    // Exited: the counts stay readable; the switch at exit is not one of them.
    assert_eq!(threads[0].context_switches(), Some(counted(1, 2)));
    assert_eq!(threads[1].context_switches(), Some(counted(1, 2)));

    // Preemptions are involuntary.
    let clock = FakeClock::default();
    let idle = JumpIdle {
        clock: clock.clone(),
        ..Default::default()
    };
    let p = RoundRobin::preemptive(Native::detect(), clock, idle, 2).with_cpu_time();
    let p_ref = unsafe_static(&p);
    let spinners: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            p.spawn(name, move || {
                for _ in 0..4 {
                    p_ref.tick();
                }
            })
            .unwrap()
        })
        .collect();
    p.run();
    assert_eq!(p.stats().preemptions, 4);
    for t in &spinners {
        assert_eq!(t.context_switches(), Some(counted(0, 2)));
    }

    // Not counted unless asked for.
    let (plain, _, _) = fake();
    let t = plain
        .spawn("t", || {
            assert_eq!(current().unwrap().context_switches(), None)
        })
        .unwrap();
    assert_eq!(t.context_switches(), None);
    plain.run();
}

// ---------------------------------------------------------------------------------------
// Stack guard

#[test]
fn allocated_stacks_carry_a_guard_word_and_caller_memory_none() {
    let stack = Stack::alloc(4096).unwrap();
    assert!(!stack.overflowed());
    // SAFETY: the stack is a live 4 KiB allocation; this is what running past its end does.
    unsafe { stack.base().cast::<u64>().write_volatile(0) };
    assert!(stack.overflowed());

    let pool = StackPool::new(4096, 1);
    let pooled = pool.get().unwrap();
    // SAFETY: as above.
    unsafe { pooled.base().cast::<u64>().write_volatile(0) };
    assert!(pooled.overflowed());
    drop(pooled);
    assert!(
        !pool.get().unwrap().overflowed(),
        "a reused stack is guarded afresh"
    );

    let memory: &'static mut [u8] = alloc::boxed::Box::leak(vec![0u8; 4096].into_boxed_slice());
    let borrowed = Stack::from_static(memory);
    // SAFETY: caller memory, 4 KiB; the crate writes nothing there.
    unsafe { borrowed.base().cast::<u64>().write_volatile(0) };
    assert!(!borrowed.overflowed(), "caller memory has no guard");
}

#[test]
#[should_panic(expected = "thread 'deep' overflowed its 131072-byte stack")]
fn a_thread_that_runs_past_its_stack_is_stopped_at_its_next_switch() {
    let (s, _, _) = fake();
    // Room for the panic machinery of a hosted test.
    let stack = Stack::alloc(128 * 1024).unwrap();
    let bottom = stack.base() as usize;
    let t = Thread::builder("deep")
        .stack(stack)
        .create(s.ops(), move || {
            // SAFETY: the lowest word of this thread's own stack, which a frame that ran
            // past the end would have overwritten.
            unsafe { (bottom as *mut u64).write_volatile(0x1234) };
            yield_now();
            unreachable!("switched away with a broken guard");
        })
        .unwrap();
    s.add(&t).unwrap();
    s.spawn("other", || {}).unwrap();
    s.run();
}

#[test]
fn thread_ids_are_unique_stable_and_never_zero() {
    let (s, _, _) = fake();
    let threads: Vec<ThreadRef> = (0..4).map(|_| s.spawn("t", || {}).unwrap()).collect();
    // Asked in an order unlike creation's: numbers are given on first request.
    let ids: Vec<u64> = threads.iter().rev().map(|t| t.id()).collect();
    assert!(ids.iter().all(|&id| id != 0));
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len());
    s.run();
    // Stable for the thread's whole life, exited included.
    let again: Vec<u64> = threads.iter().rev().map(|t| t.id()).collect();
    assert_eq!(again, ids);
    let later = s.spawn("later", || {}).unwrap();
    assert!(!ids.contains(&later.id()));
    s.run();
}

#[test]
fn yield_alone_keeps_running_without_a_switch() {
    let (s, _, _) = fake();
    s.spawn("solo", || {
        for _ in 0..10 {
            yield_now();
        }
    })
    .unwrap();
    s.run();
    // Idle -> solo once, solo -> idle at exit.
    assert_eq!(s.stats().switches, 2);
}

#[test]
fn sleepers_wake_in_deadline_order_never_early() {
    let (s, clock, idle) = fake();
    let l = log();
    // (name, sleep ns): equal deadlines wake in the order they went to sleep.
    for (name, ns) in [("a", 300u64), ("b", 100), ("c", 200), ("d", 100), ("e", 0)] {
        let (l, clock) = (l.clone(), clock.clone());
        s.spawn(name, move || {
            let deadline = clock.monotonic_ns() + ns;
            sleep(ns);
            let now = clock.monotonic_ns();
            assert!(now >= deadline, "{name} woke early");
            push(&l, format!("{name}@{now}"));
        })
        .unwrap();
    }
    s.run();
    assert_eq!(*l.borrow(), ["e@0", "b@100", "d@100", "c@200", "a@300"]);
    // One idle call per distinct deadline: the idle loop halts, it does not spin.
    assert_eq!(idle.calls.get(), 3);
}

#[test]
fn work_makes_sleepers_due_at_the_next_decision() {
    let (s, clock, idle) = fake();
    let l = log();
    let (l1, l2) = (l.clone(), l.clone());
    s.spawn("sleeper", move || {
        sleep(50);
        push(&l1, "sleeper");
    })
    .unwrap();
    let c = clock.clone();
    s.spawn("worker", move || {
        for i in 0..3 {
            c.advance(30);
            push(&l2, format!("w{i}"));
            yield_now();
        }
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["w0", "w1", "sleeper", "w2"]);
    assert_eq!(idle.calls.get(), 0);
}

/// Unikraft 0.11 busy-spins in idle when no thread sleeps with a deadline.
#[test]
fn idle_never_spins_without_deadline() {
    let (s, _, idle) = fake();
    let l = log();
    let l2 = l.clone();
    let blocked = s
        .spawn("waiter", move || {
            block();
            push(&l2, "woken");
        })
        .unwrap();
    // The "interrupt" that comes while the CPU halts wakes the waiter.
    let b = blocked.clone();
    *idle.on_no_deadline.borrow_mut() = Some(std::boxed::Box::new(move || b.wake()));
    s.run();
    assert_eq!(*l.borrow(), ["woken"]);
    assert_eq!(idle.calls.get(), 1, "idle waited once for the interrupt");
}

/// Unikraft 0.11 (#643): an interrupt between marking the thread blocked and the switch
/// wakes it without queueing it, and the wake-up is lost.
#[test]
fn wake_between_prepare_and_commit_is_not_lost() {
    let (s, _, idle) = fake();
    let l = log();
    let l2 = l.clone();
    s.spawn("t", move || {
        assert!(prepare_block(None));
        // What an interrupt handler would do right here.
        current().unwrap().wake();
        let timed_out = commit_block();
        push(&l2, format!("continued timed_out={timed_out}"));
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["continued timed_out=false"]);
    assert_eq!(idle.calls.get(), 0);
}

#[test]
fn wake_of_sleeper_cuts_block_until_short() {
    let (s, clock, _) = fake();
    let l = log();
    let sleeper = {
        let l = l.clone();
        s.spawn("s", move || {
            let timed_out = block_until(1_000);
            push(&l, format!("timed_out={timed_out}"));
            let timed_out = block_until(2_000);
            push(&l, format!("timed_out={timed_out}"));
        })
        .unwrap()
    };
    let c = clock.clone();
    s.spawn("w", move || {
        c.advance(10);
        sleeper.wake();
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["timed_out=false", "timed_out=true"]);
    assert_eq!(clock.monotonic_ns(), 2_000);
}

// ---------------------------------------------------------------------------------------
// Adding, removing, moving

/// Unikraft 0.11 leaves a removed sleeping thread in the sleep queue (use after free).
#[test]
fn remove_sleeping_thread_leaves_no_entry() {
    let (s1, clock, _) = fake();
    let s2 = RoundRobin::cooperative(
        Native::detect(),
        clock.clone(),
        JumpIdle {
            clock: clock.clone(),
            ..Default::default()
        },
    );
    let l = log();
    let sleeper = {
        let l = l.clone();
        s1.spawn("sleeper", move || {
            push(&l, "sleeping");
            sleep(1_000);
            push(&l, format!("woke at {}", now()));
        })
        .unwrap()
    };
    let s1_ref: &'static Sched = unsafe_static(&s1);
    let sl = sleeper.clone();
    s1.spawn("remover", move || {
        assert_eq!(s1_ref.sleeping_count(), 1);
        s1_ref.remove(&sl).unwrap();
        assert_eq!(s1_ref.sleeping_count(), 0);
        assert_eq!(s1_ref.runnable_count(), 0);
    })
    .unwrap();
    s1.run();
    assert_eq!(*l.borrow(), ["sleeping"]);
    assert_eq!(sleeper.state(), ThreadState::Blocked);
    assert_eq!(sleeper.deadline(), Some(1_000));
    assert!(!sleeper.is_scheduled());
    drop(s1);
    // The sleeper moves on to another scheduler and keeps its deadline.
    s2.add(&sleeper).unwrap();
    assert_eq!(s2.sleeping_count(), 1);
    s2.run();
    assert_eq!(*l.borrow(), ["sleeping", "woke at 1000"]);
    assert!(sleeper.is_exited());
}

/// Extends a reference to a scheduler that outlives every thread using it in the test.
fn unsafe_static(s: &Sched) -> &'static Sched {
    // SAFETY: every caller runs the scheduler to completion (all threads that use the
    // reference finish) before the scheduler is dropped.
    unsafe { &*(s as *const Sched) }
}

#[test]
fn threads_move_between_schedulers_in_every_state() {
    let (s1, clock, _) = fake();
    let s2 = RoundRobin::cooperative(
        Native::detect(),
        clock.clone(),
        JumpIdle {
            clock: clock.clone(),
            ..Default::default()
        },
    );
    let l = log();
    // A runnable, never-started thread moves before running.
    let fresh = {
        let l = l.clone();
        Thread::builder("fresh")
            .create(s1.ops(), move || push(&l, "fresh ran"))
            .unwrap()
    };
    s1.add(&fresh).unwrap();
    assert_eq!(s1.add(&fresh), Err(SchedError::AlreadyScheduled));
    assert_eq!(s2.remove(&fresh), Err(SchedError::NotMember));
    s1.remove(&fresh).unwrap();
    assert_eq!(s1.runnable_count(), 0);
    s2.add(&fresh).unwrap();
    // A blocked (started) thread moves while blocked without deadline.
    let blocked = {
        let l = l.clone();
        s1.spawn("blocked", move || {
            push(&l, "blocked");
            block();
            push(&l, "resumed");
        })
        .unwrap()
    };
    let s1_ref = unsafe_static(&s1);
    let s2_ref = unsafe_static(&s2);
    let b = blocked.clone();
    s1.spawn("mover", move || {
        assert_eq!(s1_ref.remove(&current().unwrap()), Err(SchedError::Running));
        s1_ref.remove(&b).unwrap();
        s2_ref.add(&b).unwrap();
        b.wake();
    })
    .unwrap();
    s1.run();
    assert_eq!(*l.borrow(), ["blocked"]);
    s2.run();
    assert_eq!(*l.borrow(), ["blocked", "fresh ran", "resumed"]);
    // Exited is final.
    assert_eq!(s1.add(&blocked), Err(SchedError::Exited));
}

#[test]
fn exited_threads_are_reclaimed_at_the_next_decision() {
    let (s, _, _) = fake();
    let destroyed = Rc::new(Cell::new(0));
    let d = destroyed.clone();
    let t = Thread::builder("t")
        .destructor(move |_| d.set(d.get() + 1))
        .create(s.ops(), || {})
        .unwrap();
    s.add(&t).unwrap();
    let s_ref = unsafe_static(&s);
    let (t2, d2) = (t.clone(), destroyed.clone());
    s.spawn("observer", move || {
        yield_now(); // t runs and exits; this decision reclaims it
        assert!(t2.is_exited());
        assert_eq!(d2.get(), 1);
        assert!(!t2.is_scheduled());
        assert_eq!(s_ref.remove(&t2), Err(SchedError::NotMember));
        assert_eq!(s_ref.add(&t2), Err(SchedError::Exited));
    })
    .unwrap();
    s.run();
    assert_eq!(destroyed.get(), 1);
    drop(t);
    assert_eq!(destroyed.get(), 1);
}

// ---------------------------------------------------------------------------------------
// Life cycle: callbacks, hooks, memory

#[test]
fn exit_callback_and_destructor_run_exactly_once() {
    let (s, _, _) = fake();
    let counts = Rc::new([Cell::new(0), Cell::new(0), Cell::new(0), Cell::new(0)]);
    let c = counts.clone();
    let c2 = counts.clone();
    let t = Thread::builder("ran")
        .on_exit(move |t| {
            assert_eq!(t.name(), "ran");
            c[0].set(c[0].get() + 1)
        })
        .destructor(move |_| c2[1].set(c2[1].get() + 1))
        .create(s.ops(), || exit())
        .unwrap();
    s.add(&t).unwrap();
    s.run();
    drop(t);
    let c = counts.clone();
    let c2 = counts.clone();
    // Created, never scheduled, dropped.
    let never = Thread::builder("never")
        .on_exit(move |_| c[2].set(c[2].get() + 1))
        .destructor(move |_| c2[3].set(c2[3].get() + 1))
        .create(s.ops(), || unreachable!())
        .unwrap();
    drop(never);
    assert_eq!(
        counts.iter().map(Cell::get).collect::<Vec<_>>(),
        [1, 1, 1, 1]
    );
}

std::thread_local! {
    static HOOK_LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn hook_log(entry: &str) {
    HOOK_LOG.with(|l| l.borrow_mut().push(entry.into()));
}

fn logged_ok(entry: &str) -> Result<(), HookError> {
    hook_log(entry);
    Ok(())
}

fn take_hook_log() -> Vec<String> {
    HOOK_LOG.with(|l| core::mem::take(&mut *l.borrow_mut()))
}

static HOOKS_FAILING_THIRD: [ThreadHook; 4] = [
    ThreadHook {
        name: "h1",
        init: |_| logged_ok("init1"),
        exit: |_| hook_log("exit1"),
    },
    ThreadHook {
        name: "h2",
        init: |_| logged_ok("init2"),
        exit: |_| hook_log("exit2"),
    },
    ThreadHook {
        name: "h3",
        init: |_| Err(HookError(-12)),
        exit: |_| hook_log("exit3"),
    },
    ThreadHook {
        name: "h4",
        init: |_| logged_ok("init4"),
        exit: |_| hook_log("exit4"),
    },
];

static HOOKS_OK: [ThreadHook; 2] = [
    ThreadHook {
        name: "h1",
        init: |_| logged_ok("init1"),
        exit: |_| hook_log("exit1"),
    },
    ThreadHook {
        name: "h2",
        init: |_| logged_ok("init2"),
        exit: |_| hook_log("exit2"),
    },
];

/// Unikraft 0.11's rollback after a failing init hook skips one of the earlier hooks.
#[test]
fn init_hook_rollback_is_exact() {
    let ops = Native::detect();
    take_hook_log();
    let destroyed = Rc::new(Cell::new(false));
    let d = destroyed.clone();
    let err = Thread::builder("x")
        .hooks(&HOOKS_FAILING_THIRD)
        .destructor(move |_| d.set(true))
        .create(&ops, || {})
        .unwrap_err();
    assert_eq!(
        err,
        SchedError::HookFailed {
            hook: "h3",
            error: HookError(-12)
        }
    );
    assert_eq!(take_hook_log(), ["init1", "init2", "exit2", "exit1"]);
    assert!(
        !destroyed.get(),
        "a thread that failed creation never existed"
    );

    // Success: exit hooks in reverse when the thread exits, once.
    let (s, _, _) = fake();
    let t = Thread::builder("y")
        .hooks(&HOOKS_OK)
        .create(s.ops(), || hook_log("body"))
        .unwrap();
    s.add(&t).unwrap();
    s.run();
    drop(t);
    assert_eq!(
        take_hook_log(),
        ["init1", "init2", "body", "exit2", "exit1"]
    );
}

#[test]
fn tls_block_is_built_for_the_thread() {
    static TDATA: [u8; 4] = [1, 2, 3, 4];
    let (s, _, _) = fake();
    let template = TlsTemplate::new(&TDATA, 12, 32).unwrap();
    let t = Thread::builder("tls")
        .tls(
            template,
            TcbSpec {
                size: 280,
                align: 8,
            },
        )
        .create(s.ops(), || {})
        .unwrap();
    let tp = t.thread_pointer();
    assert_ne!(tp, 0);
    assert_eq!(tp % 32, 0);
    // Variant II on x86_64: self pointer at tp, data right below (rounded to 32).
    // SAFETY: the block is alive (the thread is) and laid out as checked by uk-context.
    unsafe {
        assert_eq!(*(tp as *const usize), tp);
        let data = (tp - 32) as *const u8;
        assert_eq!(
            core::slice::from_raw_parts(data, 16),
            [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
    s.add(&t).unwrap();
    s.run();
    assert_eq!(t.thread_pointer(), tp);
}

#[test]
fn bad_stacks_are_refused() {
    let ops = Native::detect();
    assert_eq!(
        Thread::builder("z")
            .stack_size(0)
            .create(&ops, || {})
            .unwrap_err(),
        SchedError::BadStack
    );
    assert_eq!(
        Thread::builder("z")
            .stack_size(32)
            .create(&ops, || {})
            .unwrap_err(),
        SchedError::BadStack
    );
    let t = Thread::builder("min").stack_size(4096).create(&ops, || {});
    assert!(t.is_ok());
}

/// Every thread gets its own FPU/SIMD control state when it asks for an extended context,
/// inherited from its creator at creation.
#[test]
fn extended_context_survives_switches() {
    #[cfg(target_arch = "x86_64")]
    fn mxcsr() -> u32 {
        let mut v = 0u32;
        // SAFETY: stores MXCSR to a local.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &raw mut v, options(nostack)) };
        v
    }
    #[cfg(target_arch = "x86_64")]
    fn set_mxcsr(v: u32) {
        // SAFETY: a valid MXCSR (mode bits only changed).
        unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &raw const v, options(nostack)) };
    }
    let (s, _, _) = fake();
    let base = mxcsr();
    let results = Rc::new(RefCell::new(Vec::new()));
    for (i, mode) in [0x0000u32, 0x2000, 0x4000, 0x6000].into_iter().enumerate() {
        let r = results.clone();
        // Inherit: set the mode in the creator before creating thread i.
        set_mxcsr((base & !0x6000) | mode);
        let t = Thread::builder("fpu")
            .ectx(true)
            .create(s.ops(), move || {
                let mut ok = true;
                let mut acc = 1.0f64 + i as f64;
                for _ in 0..5 {
                    ok &= mxcsr() & 0x6000 == mode;
                    acc = core::hint::black_box(acc * 1.5);
                    yield_now();
                }
                r.borrow_mut().push((i, ok, acc));
            })
            .unwrap();
        s.add(&t).unwrap();
    }
    set_mxcsr(base);
    s.run();
    assert_eq!(mxcsr(), base, "the idle context keeps its own state");
    let results = results.borrow();
    assert_eq!(results.len(), 4);
    for &(i, ok, acc) in results.iter() {
        assert!(ok, "thread {i} lost its rounding mode");
        assert!(acc > 7.0);
    }
}

// ---------------------------------------------------------------------------------------
// 10,000 threads, no leak

#[test]
fn ten_thousand_threads_leave_no_leak() {
    // The OS thread's remote-wake inbox is made once, by its first scheduler run, and kept
    // (see `remote::home_inbox`): make it before counting.
    let _ = remote::home_inbox();
    let before = crate::tests::alloc_counter::live_bytes();
    {
        let (s, _, _) = fake();
        let done = Rc::new(Cell::new(0u32));
        let pool = StackPool::new(16 * 1024, 64);
        for batch in 0..10 {
            for i in 0..1_000 {
                let d = done.clone();
                let t = Thread::builder("many")
                    .stack(pool.get().unwrap())
                    .create(s.ops(), move || {
                        if i % 2 == 0 {
                            yield_now();
                        }
                        d.set(d.get() + 1);
                    })
                    .unwrap();
                s.add(&t).unwrap();
            }
            s.run();
            assert_eq!(done.get(), (batch + 1) * 1_000);
        }
        assert_eq!(s.stats().reclaimed, 10_000);
        // Plain heap stacks too.
        for _ in 0..1_000 {
            s.spawn("heap", || {}).unwrap();
        }
        s.run();
        assert_eq!(s.stats().reclaimed, 11_000);
    }
    assert_eq!(
        crate::tests::alloc_counter::live_bytes(),
        before,
        "bytes leaked"
    );
}

/// Counts live heap bytes per OS thread (tests run in parallel threads).
pub(crate) mod alloc_counter {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::Cell;
    use std::alloc::System;

    std::thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        /// Requests of at least this many bytes fail (on this OS thread only).
        static FAIL_FROM: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    /// Makes requests of at least `bytes` fail on the calling OS thread (`usize::MAX`: none).
    pub(crate) fn fail_from(bytes: usize) {
        FAIL_FROM.with(|f| f.set(bytes));
    }

    fn refused(layout: Layout) -> bool {
        FAIL_FROM
            .try_with(|f| layout.size() >= f.get())
            .unwrap_or(false)
    }

    struct Counting;

    // SAFETY: forwards to the system allocator; the counter has no effect on memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if refused(layout) {
                return core::ptr::null_mut();
            }
            let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if refused(layout) {
                return core::ptr::null_mut();
            }
            let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
            // SAFETY: forwarded contract.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = LIVE.try_with(|l| l.set(l.get() + new_size as isize - layout.size() as isize));
            // SAFETY: forwarded contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    pub(crate) fn live_bytes() -> isize {
        LIVE.with(Cell::get)
    }
}

// ---------------------------------------------------------------------------------------
// Preemption

#[test]
fn preemptive_round_robin_switches_on_slice_end() {
    let clock = FakeClock::default();
    let idle = JumpIdle {
        clock: clock.clone(),
        ..Default::default()
    };
    let s = RoundRobin::preemptive(Native::detect(), clock, idle, 2);
    let s_ref = unsafe_static(&s);
    let l = log();
    for name in ["a", "b"] {
        let l = l.clone();
        s.spawn(name, move || {
            // CPU-bound: never yields; a timer interrupt arrives after every step.
            for i in 0..4 {
                push(&l, format!("{name}{i}"));
                s_ref.tick();
            }
        })
        .unwrap();
    }
    s.run();
    assert_eq!(
        *l.borrow(),
        ["a0", "a1", "b0", "b1", "a2", "a3", "b2", "b3"]
    );
    assert_eq!(s.stats().preemptions, 4);
}

#[test]
fn cooperative_tick_only_wakes_sleepers() {
    let (s, clock, _) = fake();
    let s_ref = unsafe_static(&s);
    let l = log();
    let l1 = l.clone();
    s.spawn("sleeper", move || {
        sleep(10);
        push(&l1, "sleeper");
    })
    .unwrap();
    let l2 = l.clone();
    s.spawn("spinner", move || {
        for i in 0..3 {
            clock.advance(10);
            s_ref.tick();
            push(&l2, format!("spin{i}"));
        }
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["spin0", "spin1", "spin2", "sleeper"]);
}

// ---------------------------------------------------------------------------------------
// Wait queues and locks

#[test]
fn semaphore_hands_units_in_fifo_order_and_times_out() {
    let (s, clock, _) = fake();
    let sem = Rc::new(Semaphore::new(0));
    let l = log();
    for name in ["c1", "c2"] {
        let (sem, l) = (sem.clone(), l.clone());
        s.spawn(name, move || {
            sem.down();
            push(&l, format!("{name} got"));
        })
        .unwrap();
    }
    {
        let (sem, l) = (sem.clone(), l.clone());
        s.spawn("producer", move || {
            assert!(!sem.try_down());
            sem.up();
            sem.up();
            push(&l, "produced");
            yield_now();
            let start = now();
            assert_eq!(sem.down_timeout(500), Err(TimedOut));
            push(&l, format!("timed out after {}", now() - start));
            sem.up();
            assert_eq!(sem.down_timeout(500), Ok(()));
        })
        .unwrap();
    }
    s.run();
    assert_eq!(
        *l.borrow(),
        ["produced", "c1 got", "c2 got", "timed out after 500"]
    );
    assert_eq!(clock.monotonic_ns(), 500);
    assert_eq!(sem.count(), 0);
}

#[test]
fn mutex_excludes_and_recurses_for_its_owner() {
    let (s, _, _) = fake();
    let m = Rc::new(Mutex::new());
    let l = log();
    for name in ["a", "b"] {
        let (m, l) = (m.clone(), l.clone());
        s.spawn(name, move || {
            for _ in 0..2 {
                let g = m.lock();
                let g2 = m.lock(); // recursive
                assert_eq!(m.depth(), 2);
                push(&l, format!("{name} in"));
                yield_now(); // the other thread must not get in
                push(&l, format!("{name} out"));
                drop(g2);
                assert!(m.is_locked());
                drop(g);
                yield_now();
            }
        })
        .unwrap();
    }
    let m2 = m.clone();
    s.spawn("intruder", move || {
        assert_eq!(m2.unlock(), Err(NotOwner));
        assert!(m2.try_lock().is_none());
    })
    .unwrap();
    s.run();
    let l = l.borrow();
    for pair in l.chunks(2) {
        assert_eq!(
            pair[0].replace(" in", ""),
            pair[1].replace(" out", ""),
            "{l:?}"
        );
    }
    assert_eq!(l.len(), 8);
    assert!(!m.is_locked());
}

#[test]
fn condvar_wait_and_notify() {
    let (s, _, _) = fake();
    let m = Rc::new(Mutex::new());
    let cv = Rc::new(CondVar::new());
    let ready = Rc::new(Cell::new(false));
    let l = log();
    for name in ["w1", "w2"] {
        let (m, cv, ready, l) = (m.clone(), cv.clone(), ready.clone(), l.clone());
        s.spawn(name, move || {
            let mut g = m.lock();
            let _inner = m.lock(); // waits with depth 2
            while !ready.get() {
                g = cv.wait(g);
            }
            assert_eq!(m.depth(), 2);
            push(&l, format!("{name} saw ready"));
            drop(_inner);
            drop(g);
        })
        .unwrap();
    }
    {
        let (m, cv, ready, l) = (m.clone(), cv.clone(), ready.clone(), l.clone());
        s.spawn("notifier", move || {
            let g = m.lock();
            ready.set(true);
            push(&l, "notify");
            cv.notify_all();
            drop(g);
            let g = m.lock();
            let start = now();
            let (g, t) = cv.wait_until(g, Some(start + 100)).unwrap_err();
            assert_eq!(t, TimedOut);
            assert!(now() >= start + 100);
            drop(g);
        })
        .unwrap();
    }
    s.run();
    assert_eq!(*l.borrow(), ["notify", "w1 saw ready", "w2 saw ready"]);
}

#[test]
fn wait_queue_wake_one_and_all() {
    let (s, _, _) = fake();
    let wq = Rc::new(WaitQueue::new());
    let flag = Rc::new(Cell::new(0));
    let l = log();
    for name in ["a", "b", "c"] {
        let (wq, flag, l) = (wq.clone(), flag.clone(), l.clone());
        s.spawn(name, move || {
            wq.wait(|| flag.get() > 0);
            push(&l, name);
        })
        .unwrap();
    }
    let wq2 = wq.clone();
    s.spawn("waker", move || {
        assert_eq!(wq2.len(), 3);
        flag.set(1);
        assert!(wq2.wake_one());
        yield_now();
        assert_eq!(wq2.wake_all(), 2);
        assert!(!wq2.wake_one());
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["a", "b", "c"]);
    assert!(wq.is_empty());
}

// ---------------------------------------------------------------------------------------
// Random operation sequences against a model

#[derive(Debug, Clone, Copy)]
enum Op {
    Yield,
    /// The typed [`Scheduler::yield_now`] on the thread's scheduler: the same policy.
    YieldTyped,
    Sleep(u64),
    Work(u64),
}

/// A straightforward simulation of the documented policy.
fn model(scripts: &[Vec<Op>]) -> (Vec<(usize, usize)>, u64) {
    let n = scripts.len();
    let mut clock = 0u64;
    let mut seq = 0u64;
    let mut runq: VecDeque<usize> = (0..n).collect();
    let mut sleepq: Vec<(u64, u64, usize)> = Vec::new();
    let mut pc = vec![0usize; n];
    let mut exited = 0;
    let mut trace = Vec::new();
    let wake_due = |clock: u64, sleepq: &mut Vec<(u64, u64, usize)>, runq: &mut VecDeque<usize>| {
        sleepq.sort();
        while let Some(&(d, _, t)) = sleepq.first() {
            if d > clock {
                break;
            }
            sleepq.remove(0);
            runq.push_back(t);
        }
    };
    let mut running: Option<usize> = None;
    loop {
        let Some(t) = running else {
            if exited == n {
                break;
            }
            wake_due(clock, &mut sleepq, &mut runq);
            match runq.pop_front() {
                Some(t) => running = Some(t),
                None => {
                    sleepq.sort();
                    clock = clock.max(sleepq[0].0);
                }
            }
            continue;
        };
        if pc[t] == scripts[t].len() {
            exited += 1;
            wake_due(clock, &mut sleepq, &mut runq);
            running = runq.pop_front();
            continue;
        }
        let op = scripts[t][pc[t]];
        trace.push((t, pc[t]));
        pc[t] += 1;
        match op {
            Op::Work(d) => clock += d,
            Op::Yield | Op::YieldTyped => {
                wake_due(clock, &mut sleepq, &mut runq);
                if !runq.is_empty() {
                    runq.push_back(t);
                    running = runq.pop_front();
                }
            }
            Op::Sleep(0) => {}
            Op::Sleep(d) => {
                seq += 1;
                sleepq.push((clock + d, seq, t));
                wake_due(clock, &mut sleepq, &mut runq);
                running = runq.pop_front();
            }
        }
    }
    (trace, clock)
}

fn real(scripts: &[Vec<Op>]) -> (Vec<(usize, usize)>, u64) {
    let (s, clock, _) = fake();
    let trace = Rc::new(RefCell::new(Vec::new()));
    let s_ref = unsafe_static(&s);
    for (t, script) in scripts.iter().enumerate() {
        let (script, trace, clock) = (script.clone(), trace.clone(), clock.clone());
        s.spawn("p", move || {
            for (i, op) in script.into_iter().enumerate() {
                trace.borrow_mut().push((t, i));
                match op {
                    Op::Yield => yield_now(),
                    Op::YieldTyped => s_ref.yield_now(),
                    Op::Sleep(d) => sleep(d),
                    Op::Work(d) => clock.advance(d),
                }
            }
        })
        .unwrap();
    }
    s.run();
    assert_eq!(s.thread_count(), 0);
    assert_eq!(s.runnable_count() + s.sleeping_count(), 0);
    let t = trace.borrow().clone();
    (t, clock.monotonic_ns())
}

mod model_check {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Yield),
            2 => Just(Op::YieldTyped),
            2 => (0u64..40).prop_map(Op::Sleep),
            1 => (0u64..25).prop_map(Op::Work),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn scheduler_matches_model(scripts in proptest::collection::vec(proptest::collection::vec(op(), 0..12), 1..7)) {
            prop_assert_eq!(real(&scripts), model(&scripts));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timer programming through `uk_hal::irq::Interrupts` (tickless idle, slice only when
// contended).

mod timer_wiring {
    use std::sync::Mutex;

    use super::*;
    use crate::testing::{FREE_IPI, FakeInterrupts};

    static FAKE: FakeInterrupts = FakeInterrupts::new();
    /// The tests here share `FAKE` (and the process-wide install): one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn armed() -> Option<u64> {
        FAKE.armed()
    }

    const TICK: u64 = 1_000;

    #[test]
    fn preemptive_arms_a_slice_only_while_contended_and_sleeps_tickless() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, idle) = {
            let (_s, clock, idle) = fake();
            (clock, idle)
        };
        let s = RoundRobin::preemptive(Native::detect(), clock.clone(), idle.clone(), 1)
            .with_interrupts(&FAKE, TICK)
            .unwrap();
        assert!(FAKE.has_timer_handler());
        // And the remote wake-up interrupt.
        assert!(
            FAKE.other_handlers()
                .contains(&(FREE_IPI + crate::remote::WAKE_IPI_OFFSET))
        );
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (c, log) = (clock.clone(), seen.clone());
        s.spawn("a", move || {
            // "b" is queued: the slice timer runs.
            log.borrow_mut()
                .push(("a contended", armed(), c.monotonic_ns()));
            yield_now();
            // "b" has exited: alone, no tick.
            log.borrow_mut()
                .push(("a alone", armed(), c.monotonic_ns()));
            let deadline = c.monotonic_ns() + 5_000;
            sleep_until(deadline);
            log.borrow_mut().push(("a woke", armed(), deadline));
        })
        .unwrap();
        let log = seen.clone();
        s.spawn("b", move || {
            log.borrow_mut().push(("b contended", armed(), 0))
        })
        .unwrap();
        s.run();
        let seen = seen.borrow();
        assert_eq!(seen[0].0, "a contended");
        assert_eq!(seen[0].1, Some(seen[0].2 + TICK));
        // When "b" ran, "a" was queued behind it.
        assert_eq!(seen[1].0, "b contended");
        assert!(seen[1].1.is_some());
        assert_eq!(seen[2], ("a alone", None, seen[2].2));
        // Woken at its deadline with nothing else to wait for: disarmed again.
        assert_eq!(seen[3].1, None);
        assert!(clock.monotonic_ns() >= seen[3].2);
        // One idle period for the one sleep: no periodic ticks while idle.
        assert_eq!(idle.calls.get(), 1);
        assert_eq!(armed(), None);
    }

    #[test]
    fn cooperative_never_arms_a_slice() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_s, clock, idle) = fake();
        let s = RoundRobin::cooperative(Native::detect(), clock, idle)
            .with_interrupts(&FAKE, TICK)
            .unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..3 {
            let log = seen.clone();
            s.spawn("t", move || {
                log.borrow_mut().push(armed());
                yield_now();
                log.borrow_mut().push(armed());
            })
            .unwrap();
        }
        s.run();
        assert_eq!(*seen.borrow(), vec![None; 6]);
    }

    /// A preemptive scheduler (a slice of one tick) on the fake board's timer.
    fn preemptive_on_the_fake_timer() -> RoundRobin<Native, impl Clock + Clone + 'static> {
        let (_s, clock, idle) = fake();
        RoundRobin::preemptive(Native::detect(), clock, idle, 1)
            .with_interrupts(&FAKE, TICK)
            .unwrap()
    }

    #[test]
    fn timer_interrupt_ticks_the_running_scheduler_and_preempts() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let s = preemptive_on_the_fake_timer();
        let order = Rc::new(RefCell::new(String::new()));
        let o = order.clone();
        s.spawn("spinner", move || {
            o.borrow_mut().push('s');
            // A timer interrupt arrives while this thread runs: the handler preempts it.
            FAKE.fire_timer();
            o.borrow_mut().push('S');
        })
        .unwrap();
        let o = order.clone();
        s.spawn("other", move || o.borrow_mut().push('o')).unwrap();
        let before = crate::irq::timer_interrupts();
        s.run();
        assert_eq!(*order.borrow(), "soS");
        assert_eq!(s.stats().preemptions, 1);
        assert_eq!(crate::irq::timer_interrupts(), before + 1);
    }

    /// What the preemption filter of these tests answers "no" for.
    static HOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    fn not_while_held() -> bool {
        !HOLD.load(Ordering::SeqCst)
    }

    /// The preemption filter keeps a thread on the CPU through ticks while it says no (as
    /// a process layer does inside a system call); the first tick after, it is preempted.
    #[test]
    fn the_preemption_filter_defers_preemption_to_the_first_tick_it_allows() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        crate::irq::set_preemption_filter(not_while_held);
        let s = preemptive_on_the_fake_timer();
        let order = Rc::new(RefCell::new(String::new()));
        let o = order.clone();
        s.spawn("in a call", move || {
            HOLD.store(true, Ordering::SeqCst);
            FAKE.fire_timer();
            FAKE.fire_timer();
            o.borrow_mut().push('k');
            HOLD.store(false, Ordering::SeqCst);
            FAKE.fire_timer();
            o.borrow_mut().push('a');
        })
        .unwrap();
        let o = order.clone();
        s.spawn("other", move || o.borrow_mut().push('o')).unwrap();
        s.run();
        assert_eq!(*order.borrow(), "koa");
        assert_eq!(s.stats().preemptions, 1);
    }

    static HOOK_SAW: std::sync::Mutex<Vec<Option<u64>>> = std::sync::Mutex::new(Vec::new());

    /// The exit hook records the interrupted thread's owner word (the fake board names no
    /// interrupted registers).
    fn record_exit(interrupted: Option<uk_hal::irq::InterruptedRegisters>) {
        assert!(interrupted.is_none());
        let word = crate::with_current(|t| t.owner_word().load(Ordering::Relaxed) as u64);
        HOOK_SAW.lock().unwrap().push(word);
    }

    /// A requested interrupt arms the timer earlier than the scheduler would, survives the
    /// scheduler's own programming until the next timer interrupt, and is dropped by it; the
    /// exit hook then runs for the interrupted thread, whose owner word it can read.
    #[test]
    fn requested_interrupt_is_kept_until_taken_and_the_exit_hook_sees_the_thread() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_s, clock, idle) = fake();
        let s = RoundRobin::cooperative(Native::detect(), clock.clone(), idle)
            .with_interrupts(&FAKE, TICK)
            .unwrap();
        crate::irq::set_timer_exit_hook(record_exit);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (log, c) = (seen.clone(), clock.clone());
        s.spawn("computing", move || {
            crate::with_current(|t| t.owner_word().store(7, Ordering::Relaxed));
            let at = c.monotonic_ns() + 50_000;
            crate::irq::request_timer_interrupt(at);
            log.borrow_mut().push(armed() == Some(at));
            // A later request does not move it; an earlier one does.
            crate::irq::request_timer_interrupt(at + 1);
            log.borrow_mut().push(armed() == Some(at));
            // The scheduler's own programming (a yield) keeps the request.
            yield_now();
            log.borrow_mut().push(armed() == Some(at));
            FAKE.fire_timer();
            // Taken: the scheduler needs no timer, and the request is gone.
            yield_now();
            log.borrow_mut().push(armed().is_none());
        })
        .unwrap();
        HOOK_SAW.lock().unwrap().clear();
        s.run();
        assert_eq!(*seen.borrow(), vec![true; 4]);
        assert_eq!(*HOOK_SAW.lock().unwrap(), vec![Some(7)]);
        // Outside any thread the hook finds none.
        FAKE.fire_timer();
        assert_eq!(HOOK_SAW.lock().unwrap()[1], None);
    }
}

// ---------------------------------------------------------------------------------------
// Remote wake-ups (another OS thread plays the other CPU)

/// A scheduler on the host's clock, for tests where another OS thread acts in real time.
fn wall() -> RoundRobin<Native, uk_hal::HostClock> {
    RoundRobin::cooperative(Native::detect(), uk_hal::HostClock::new(), idle::Poll)
}

/// Blocks the calling thread until `ready` holds, checking between prepare and commit (no
/// lost wake-up); gives up at `deadline_ns` and returns whether it had to.
fn block_until_set(ready: &std::sync::atomic::AtomicBool, deadline_ns: u64) -> bool {
    loop {
        if !prepare_block(Some(deadline_ns)) {
            return true;
        }
        if ready.load(Ordering::Acquire) {
            cancel_block();
            return false;
        }
        if commit_block() {
            return !ready.load(Ordering::Acquire);
        }
    }
}

#[test]
fn remote_wake_from_another_os_thread_reaches_a_blocked_thread() {
    let s = wall();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timed_out = Rc::new(Cell::new(None));
    let (r, t) = (ready.clone(), timed_out.clone());
    let waiter = s
        .spawn("waiter", move || {
            // Far deadline: only the remote wake-up can end the wait in time.
            t.set(Some(block_until_set(&r, now() + 20_000_000_000)));
        })
        .unwrap();
    let waker = waiter.remote_waker();
    drop(waiter);
    let other = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(5));
        ready.store(true, Ordering::Release);
        waker.wake();
    });
    let start = std::time::Instant::now();
    s.run();
    other.join().unwrap();
    assert_eq!(timed_out.get(), Some(false));
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        s.stats().idle_calls > 0,
        "the home idled, polling its inbox"
    );
    assert!(!remote::home_inbox().has_wakers(), "the waker is gone");
}

/// 2,000 round trips between a uk-sched thread and an OS thread, each woken by the other:
/// a lost wake-up would show as a timed-out wait.
#[test]
fn remote_ping_pong_loses_no_wake_up() {
    use std::sync::atomic::AtomicU32;
    const ROUNDS: u32 = 2_000;
    let s = wall();
    // Odd: the OS thread's turn is over, the uk thread's is due; even: the reverse.
    let turn = Arc::new(AtomicU32::new(0));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timeouts = Rc::new(Cell::new(0u32));
    let (tn, rd, to) = (turn.clone(), ready.clone(), timeouts.clone());
    let finished = turn.clone();
    let waiter = s
        .spawn("ping", move || {
            for _ in 0..ROUNDS {
                if block_until_set(&rd, now() + 5_000_000_000) {
                    to.set(to.get() + 1);
                }
                rd.store(false, Ordering::Relaxed);
                tn.fetch_add(1, Ordering::AcqRel);
            }
        })
        .unwrap();
    let waker = waiter.remote_waker();
    drop(waiter);
    let other = std::thread::spawn(move || {
        for round in 0..ROUNDS {
            while turn.load(Ordering::Acquire) != round {
                std::thread::yield_now();
            }
            ready.store(true, Ordering::Release);
            waker.wake();
        }
    });
    s.run();
    other.join().unwrap();
    assert_eq!(finished.load(Ordering::Acquire), ROUNDS);
    assert_eq!(timeouts.get(), 0, "a wake-up was lost");
    assert!(s.stats().idle_calls > 0, "the uk thread did wait");
}

#[test]
fn wakes_before_the_home_looks_queue_one_request() {
    let s = wall();
    let woken = Rc::new(Cell::new(0u32));
    let w = woken.clone();
    let waiter = s
        .spawn("waiter", move || {
            block();
            w.set(w.get() + 1);
        })
        .unwrap();
    let waker = waiter.remote_waker();
    let copy = waker.clone();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let waker = copy.clone();
            scope.spawn(move || {
                for _ in 0..100 {
                    waker.wake();
                }
            });
        }
    });
    // Four OS threads woke 400 times: one request, taken once by the home.
    assert_eq!(remote::home_inbox().queued(), 1);
    // The thread has not run yet (not blocked): the request finds it runnable and leaves
    // it alone; it then blocks, and a remote wake-up after that ends the block.
    let other = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(5));
        waker.wake();
    });
    s.run();
    other.join().unwrap();
    assert_eq!(woken.get(), 1);
    assert_eq!(remote::home_inbox().queued(), 0);
    drop(waiter);
}

#[test]
fn a_waker_outliving_its_thread_does_nothing() {
    let (s, _, _) = fake();
    let thread = s.spawn("short", || {}).unwrap();
    let waker = thread.remote_waker();
    s.run();
    drop(thread);
    assert_eq!(s.thread_count(), 0);
    let other = {
        let waker = waker.clone();
        std::thread::spawn(move || waker.wake())
    };
    other.join().unwrap();
    assert_eq!(remote::home_inbox().queued(), 1);
    remote::home_inbox().take_requests();
    assert_eq!(remote::home_inbox().queued(), 0);
    // Waking at home, with the thread gone, does nothing either.
    waker.wake();
    assert!(remote::home_inbox().has_wakers());
    drop(waker);
    assert!(!remote::home_inbox().has_wakers());
}

#[test]
fn a_remote_waker_used_at_home_wakes_at_once() {
    let (s, _, _) = fake();
    let l = log();
    let l2 = l.clone();
    let waiter = s
        .spawn("waiter", move || {
            block();
            push(&l2, "waiter woken");
        })
        .unwrap();
    let waker = waiter.remote_waker();
    let l3 = l.clone();
    s.spawn("waker", move || {
        waker.wake();
        push(&l3, "waker done");
        yield_now();
        push(&l3, "waker again");
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["waker done", "waiter woken", "waker again"]);
    assert_eq!(remote::home_inbox().queued(), 0);
}

// ---------------------------------------------------------------------------------------
// SharedSemaphore (other OS threads play the other CPUs)

/// A scheduler on the host's clock that idles by sleeping: several such homes run side by
/// side with the other tests on two host cores without each spinning one away.
fn sleepy() -> RoundRobin<Native, uk_hal::HostClock> {
    RoundRobin::cooperative(Native::detect(), uk_hal::HostClock::new(), idle::HostSleep)
}

/// Two homes (OS threads), each running a scheduler with two consumers, take 2,000 units a
/// third OS thread gives one by one: every unit reaches exactly one consumer, none waits
/// out its (far) deadline, and the semaphore ends empty with no waiter left.
#[test]
fn shared_semaphore_hands_units_to_threads_of_other_homes() {
    use std::sync::atomic::AtomicU32;
    const PER_CONSUMER: u32 = 500;
    let sem = Arc::new(SharedSemaphore::new(0));
    let taken = Arc::new(AtomicU32::new(0));
    let timeouts = Arc::new(AtomicU32::new(0));
    let homes: Vec<_> = (0..2)
        .map(|_| {
            let (sem, taken, timeouts) = (sem.clone(), taken.clone(), timeouts.clone());
            std::thread::spawn(move || {
                let s = sleepy();
                for _ in 0..2 {
                    let (sem, taken, timeouts) = (sem.clone(), taken.clone(), timeouts.clone());
                    s.spawn("consumer", move || {
                        for _ in 0..PER_CONSUMER {
                            match sem.down_until(Some(now() + 20_000_000_000)) {
                                Ok(()) => taken.fetch_add(1, Ordering::Relaxed),
                                Err(TimedOut) => timeouts.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    })
                    .unwrap();
                }
                s.run();
            })
        })
        .collect();
    for i in 0..4 * PER_CONSUMER {
        sem.up();
        if i % 64 == 0 {
            std::thread::yield_now();
        }
    }
    for home in homes {
        home.join().unwrap();
    }
    assert_eq!(timeouts.load(Ordering::Relaxed), 0, "a unit was lost");
    assert_eq!(taken.load(Ordering::Relaxed), 4 * PER_CONSUMER);
    assert_eq!((sem.count(), sem.waiters()), (0, 0));
}

/// 1,000 round trips between threads of two homes, each blocking on its own semaphore
/// until the other gives it a unit.
#[test]
fn shared_semaphore_ping_pong_between_two_homes() {
    const ROUNDS: usize = 1_000;
    let ping = Arc::new(SharedSemaphore::new(0));
    let pong = Arc::new(SharedSemaphore::new(0));
    let side = |give: Arc<SharedSemaphore>, take: Arc<SharedSemaphore>, first: bool| {
        std::thread::spawn(move || {
            let s = sleepy();
            let timeouts = Rc::new(Cell::new(0));
            let t = timeouts.clone();
            s.spawn("side", move || {
                for _ in 0..ROUNDS {
                    if first {
                        give.up();
                    }
                    if take.down_until(Some(now() + 20_000_000_000)).is_err() {
                        t.set(t.get() + 1);
                    }
                    if !first {
                        give.up();
                    }
                }
            })
            .unwrap();
            s.run();
            timeouts.get()
        })
    };
    let a = side(ping.clone(), pong.clone(), true);
    let b = side(pong.clone(), ping.clone(), false);
    assert_eq!(a.join().unwrap(), 0, "a unit was lost");
    assert_eq!(b.join().unwrap(), 0, "a unit was lost");
    assert_eq!((ping.count(), pong.count()), (0, 0));
}

/// Waiters are served in the order they came, a unit handed to a waiter is not taken by a
/// later `try_down`, and the semaphore works from outside every thread.
#[test]
fn shared_semaphore_serves_waiters_in_order() {
    let (s, _, _) = fake();
    let sem = Rc::new(SharedSemaphore::new(1));
    let l = log();
    for name in ["a", "b", "c"] {
        let (sem, l) = (sem.clone(), l.clone());
        s.spawn(name, move || {
            sem.down();
            push(&l, name);
        })
        .unwrap();
    }
    let (sem2, l2) = (sem.clone(), l.clone());
    s.spawn("giver", move || {
        // "a" took the one unit; "b" and "c" wait, in that order.
        assert_eq!((sem2.count(), sem2.waiters()), (0, 2));
        sem2.up();
        // The unit went to "b", which has not run yet: nobody may take it from it.
        assert!(!sem2.try_down());
        assert_eq!((sem2.count(), sem2.waiters()), (0, 1));
        sem2.up();
        assert_eq!((sem2.count(), sem2.waiters()), (0, 0));
        push(&l2, "giver");
    })
    .unwrap();
    s.run();
    assert_eq!(*l.borrow(), ["a", "giver", "b", "c"]);
    assert_eq!((sem.count(), sem.waiters()), (0, 0));
    sem.up();
    assert!(sem.try_down() && !sem.try_down());
}

/// A wait that times out leaves the semaphore as it found it: no waiter stays queued, and
/// a later unit is counted rather than handed to the thread that gave up.
#[test]
fn shared_semaphore_timeout_changes_nothing() {
    let (s, clock, _) = fake();
    let sem = Rc::new(SharedSemaphore::new(0));
    let result = Rc::new(Cell::new(None));
    let (sm, r) = (sem.clone(), result.clone());
    s.spawn("waiter", move || {
        r.set(Some(sm.down_until(Some(now() + 1_000_000))));
    })
    .unwrap();
    s.run();
    assert_eq!(result.get(), Some(Err(TimedOut)));
    assert!(clock.monotonic_ns() >= 1_000_000);
    assert_eq!((sem.count(), sem.waiters()), (0, 0));
    sem.up();
    assert_eq!(sem.count(), 1);
    // With a unit there, a deadline already past still succeeds (no blocking).
    let (sm, r) = (sem.clone(), result.clone());
    s.spawn("taker", move || r.set(Some(sm.down_until(Some(0)))))
        .unwrap();
    s.run();
    assert_eq!(result.get(), Some(Ok(())));
    assert_eq!(sem.count(), 0);
}

/// Units given while waits time out all the time are never lost: every `up` ends either in
/// a successful `down` or in the final count.
#[test]
fn shared_semaphore_loses_no_unit_to_racing_timeouts() {
    use std::sync::atomic::AtomicU32;
    const UPS: u32 = 3_000;
    let sem = Arc::new(SharedSemaphore::new(0));
    let taken = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let home = {
        let (sem, taken, stop) = (sem.clone(), taken.clone(), stop.clone());
        std::thread::spawn(move || {
            let s = sleepy();
            for _ in 0..3 {
                let (sem, taken, stop) = (sem.clone(), taken.clone(), stop.clone());
                s.spawn("taker", move || {
                    while !stop.load(Ordering::Acquire) {
                        // Deadlines of 0 to 20 µs: many end while a unit is on its way.
                        let wait = (now() % 21) * 1_000;
                        if sem.down_until(Some(now() + wait)).is_ok() {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .unwrap();
            }
            s.run();
        })
    };
    for i in 0..UPS {
        sem.up();
        if i % 16 == 0 {
            std::thread::sleep(std::time::Duration::from_micros(10));
        }
    }
    // Let the takers drain what is left, then stop them.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sem.count() > 0 && std::time::Instant::now() < end {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Release);
    home.join().unwrap();
    assert_eq!(sem.waiters(), 0);
    assert_eq!(
        taken.load(Ordering::Relaxed) as usize + sem.count(),
        UPS as usize
    );
}

#[test]
#[should_panic(expected = "outside a thread")]
fn shared_semaphore_down_outside_a_thread_panics_when_it_would_block() {
    let sem = SharedSemaphore::new(1);
    sem.down(); // a unit is there: no blocking, no thread needed
    sem.down();
}

/// Four threads on two homes add to one counter 2,000 times each, yielding between reading
/// and writing it: with exclusion failing, updates would be lost.
#[test]
fn shared_mutex_excludes_threads_of_every_home() {
    const ADDS: u64 = 2_000;
    let total = Arc::new(SharedMutex::new(0u64));
    let homes: Vec<_> = (0..2)
        .map(|_| {
            let total = total.clone();
            std::thread::spawn(move || {
                let s = sleepy();
                for _ in 0..2 {
                    let total = total.clone();
                    s.spawn("adder", move || {
                        for _ in 0..ADDS {
                            let mut guard = total.lock();
                            let seen = *guard;
                            // Let the home's other adder try to lock meanwhile.
                            yield_now();
                            *guard = seen + 1;
                        }
                    })
                    .unwrap();
                }
                s.run();
            })
        })
        .collect();
    for home in homes {
        home.join().unwrap();
    }
    assert_eq!(*total.try_lock().expect("unlocked at the end"), 4 * ADDS);
}

/// `try_lock` and a timed lock fail while the lock is held and change nothing; unlocking
/// hands the lock to the waiter; a guard may be dropped on another OS thread (CPU).
#[test]
fn shared_mutex_try_timeout_and_hand_off() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedMutex<Cell<u32>>>();
    let (s, _, _) = fake();
    let m = Arc::new(SharedMutex::new(7u32));
    let l = log();
    let (m1, l1) = (m.clone(), l.clone());
    s.spawn("holder", move || {
        let mut g = m1.lock();
        *g += 1;
        sleep(1_000_000);
        push(&l1, "holder unlocks");
        drop(g);
    })
    .unwrap();
    let (m2, l2) = (m.clone(), l.clone());
    s.spawn("impatient", move || {
        assert!(m2.try_lock().is_none());
        assert!(m2.lock_until(Some(now() + 500_000)).is_err());
        push(&l2, "impatient gave up");
        let g = m2.lock();
        push(&l2, format!("waiter got {}", *g));
    })
    .unwrap();
    s.run();
    assert_eq!(
        *l.borrow(),
        ["impatient gave up", "holder unlocks", "waiter got 8"]
    );
    let g = m.lock(); // uncontended: no thread needed
    std::thread::scope(|scope| {
        scope.spawn(move || drop(g));
    });
    let mut m = Arc::into_inner(m).unwrap();
    *m.get_mut() += 1;
    assert_eq!(m.into_inner(), 9);
}

// ---------------------------------------------------------------------------------------
// RemoteSpawner (other OS threads play the other CPUs)

/// Three OS threads start 100 threads each on one home's scheduler: every closure runs as
/// a uk-sched thread on the home's OS thread, each producer's in the order it queued them,
/// and `run` returns once the last handle is gone.
#[test]
fn remote_spawner_starts_threads_from_other_homes() {
    const EACH: usize = 100;
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = sleepy();
    let spawner = s.remote_spawner().unwrap();
    let home = std::thread::current().id();
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let (spawner, ran) = (spawner.clone(), ran.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let ran = ran.clone();
                    spawner
                        .spawn("job", move || {
                            assert!(current().is_some(), "a uk-sched thread");
                            assert_eq!(std::thread::current().id(), home);
                            yield_now();
                            ran.lock().unwrap().push((p, i));
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let check = spawner.clone();
    drop(spawner);
    let closer = std::thread::spawn(move || {
        for producer in producers {
            producer.join().unwrap();
        }
        // The last handle: `run` may return once everything queued has run.
        drop(check);
    });
    s.run();
    closer.join().unwrap();
    let ran = ran.lock().unwrap();
    assert_eq!(ran.len(), 3 * EACH);
    for p in 0..3 {
        let order: Vec<usize> = ran.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(order, (0..EACH).collect::<Vec<_>>(), "producer {p}'s order");
    }
    assert_eq!(s.thread_count(), 0, "the service thread ended too");
}

/// A spawner used at home, its counters, and a scheduler whose only handle is dropped
/// unused: `run` returns at once.
#[test]
fn remote_spawner_at_home_and_unused() {
    let (s, _, _) = fake();
    let spawner = s.remote_spawner().unwrap();
    let l = log();
    let (l1, sp) = (l.clone(), spawner.clone());
    s.spawn("local", move || {
        let l2 = std::sync::Arc::new(std::sync::Mutex::new(Vec::<&str>::new()));
        let l3 = l2.clone();
        sp.spawn("child", move || l3.lock().unwrap().push("child ran"))
            .unwrap();
        yield_now();
        yield_now();
        push(&l1, format!("{:?}", l2.lock().unwrap()));
        assert_eq!((sp.started(), sp.failed()), (1, 0));
    })
    .unwrap();
    drop(spawner);
    s.run();
    assert_eq!(*l.borrow(), ["[\"child ran\"]"]);
    assert_eq!(s.thread_count(), 0);
    // Made and dropped before any run: the service thread ends on its first turn.
    drop(s.remote_spawner().unwrap());
    s.run();
    assert_eq!(s.thread_count(), 0);
}

/// A thread the home cannot make (its stack allocation fails) is counted and its closure
/// dropped; the service goes on with the next request, and a whole spawner session leaves
/// no byte behind.
#[test]
fn remote_spawner_counts_failures_and_leaks_nothing() {
    let _ = remote::home_inbox();
    let before = crate::tests::alloc_counter::live_bytes();
    {
        let (s, _, _) = fake();
        let spawner = s.remote_spawner().unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let dropped = Arc::new(std::sync::atomic::AtomicU32::new(0));
        /// Counts its drop: the closure of a thread that could not be made is dropped.
        struct Witness(Arc<std::sync::atomic::AtomicU32>);
        impl Drop for Witness {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (sp, r, d) = (spawner.clone(), ran.clone(), dropped.clone());
        s.spawn("requester", move || {
            // Stacks (64 KiB by default) cannot be had while the first request is served.
            crate::tests::alloc_counter::fail_from(16 * 1024);
            let w = Witness(d.clone());
            let r1 = r.clone();
            sp.spawn("doomed", move || {
                let _w = &w;
                r1.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            yield_now(); // the service takes the request, and fails
            crate::tests::alloc_counter::fail_from(usize::MAX);
            assert_eq!((sp.started(), sp.failed()), (0, 1));
            assert_eq!(d.load(Ordering::SeqCst), 1, "the closure was dropped");
            let r2 = r.clone();
            sp.spawn("fine", move || {
                r2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        })
        .unwrap();
        drop(spawner);
        s.run();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only the second request ran");
        assert_eq!(s.thread_count(), 0);
    }
    assert_eq!(
        crate::tests::alloc_counter::live_bytes(),
        before,
        "bytes leaked"
    );
}

// ---------------------------------------------------------------------------------------
// SharedChannel

/// Two producers on two homes send 1,000 values each through a channel of 8 slots (so they
/// block often) to a consumer on a third home: every value arrives once, each producer's in
/// order, and no wait runs out its deadline.
#[test]
fn shared_channel_carries_values_between_homes() {
    const EACH: u32 = 1_000;
    let channel = Arc::new(SharedChannel::new(core::num::NonZeroUsize::new(8).unwrap()).unwrap());
    let producers: Vec<_> = (0..2u32)
        .map(|p| {
            let channel = channel.clone();
            std::thread::spawn(move || {
                let s = sleepy();
                let timeouts = Rc::new(Cell::new(0));
                let t = timeouts.clone();
                s.spawn("producer", move || {
                    for i in 0..EACH {
                        if channel
                            .send_until((p, i), Some(now() + 20_000_000_000))
                            .is_err()
                        {
                            t.set(t.get() + 1);
                        }
                    }
                })
                .unwrap();
                s.run();
                timeouts.get()
            })
        })
        .collect();
    let consumer = {
        let channel = channel.clone();
        std::thread::spawn(move || {
            let s = sleepy();
            let got = Rc::new(RefCell::new(Vec::new()));
            let g = got.clone();
            s.spawn("consumer", move || {
                for _ in 0..2 * EACH {
                    match channel.recv_until(Some(now() + 20_000_000_000)) {
                        Ok(v) => g.borrow_mut().push(v),
                        Err(TimedOut) => return,
                    }
                }
            })
            .unwrap();
            s.run();
            got.take()
        })
    };
    for producer in producers {
        assert_eq!(producer.join().unwrap(), 0, "a send timed out");
    }
    let got = consumer.join().unwrap();
    assert_eq!(got.len(), 2 * EACH as usize);
    for p in 0..2 {
        let order: Vec<u32> = got.iter().filter(|v| v.0 == p).map(|v| v.1).collect();
        assert_eq!(order, (0..EACH).collect::<Vec<_>>(), "producer {p}'s order");
    }
    assert!(channel.is_empty());
}

/// A full channel refuses and gives the value back, a timed-out send or receive changes
/// nothing, values come out oldest first, and sending or receiving without blocking
/// allocates nothing.
#[test]
fn shared_channel_full_empty_and_timeouts() {
    let (s, _, _) = fake();
    let channel = Rc::new(SharedChannel::new(core::num::NonZeroUsize::new(2).unwrap()).unwrap());
    let c = channel.clone();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    s.spawn("user", move || {
        // Operations that do not block allocate nothing (only a blocking wait does).
        crate::tests::alloc_counter::fail_from(1);
        assert_eq!(c.try_send(1), Ok(()));
        assert_eq!(c.try_send(2), Ok(()));
        assert_eq!(c.try_send(3), Err(3));
        crate::tests::alloc_counter::fail_from(usize::MAX);
        assert_eq!(c.send_until(4, Some(now() + 1_000)), Err(4));
        assert_eq!((c.len(), c.capacity()), (2, 2));
        crate::tests::alloc_counter::fail_from(1);
        assert_eq!(c.try_recv(), Some(1));
        c.send(5);
        assert_eq!(c.recv(), 2);
        assert_eq!(c.recv_until(Some(now() + 1_000)), Ok(5));
        assert_eq!(c.try_recv(), None);
        crate::tests::alloc_counter::fail_from(usize::MAX);
        assert_eq!(c.recv_until(Some(now() + 1_000)), Err(TimedOut));
        assert!(c.is_empty());
        d.set(true);
    })
    .unwrap();
    s.run();
    assert!(done.get());
    assert!(
        SharedChannel::<u8>::new(core::num::NonZeroUsize::new(usize::MAX).unwrap()).is_err(),
        "room that cannot be had is an error, not a panic"
    );
}
