//! Host benchmarks of uk-sched against named peers (see the README for the results table).
//!
//! Every benchmark runs a fixed number of operations per sample and reports per-sample
//! time; divide by the item count (divan prints the throughput too):
//!
//! - `yield_pingpong_*`: ROUNDS round trips between two threads (each round trip is two
//!   switches): uk-sched cooperative yield (without and with extended context), a
//!   corosensei coroutine resumed and suspended, two OS threads over rendezvous channels,
//!   and, as the floor under uk-sched, uk-context's switch alone between two contexts.
//! - `create_run_exit_*`: THREADS threads created, run to completion and reclaimed:
//!   uk-sched with a pooled stack (all created first, then run; or one at a time, as the
//!   corosensei peer does), corosensei with a reused stack, `std::thread` spawn + join.
//! - `semaphore_pingpong_*`: ROUNDS round trips between two threads that each block on a
//!   semaphore until the other gives it a unit: uk-sched's per-CPU `Semaphore` and its
//!   `SharedSemaphore` (both threads on one scheduler: what sharing costs where it is not
//!   needed), and two OS threads over `std::sync::{Mutex, Condvar}` semaphores.
//! - `channel_pingpong_*`: ROUNDS (OS threads: OS_ROUNDS) round trips of a value between
//!   two threads over two bounded channels of one slot: `SharedChannel` between two
//!   uk-sched threads of one scheduler, `std::sync::mpsc::sync_channel(1)` between two OS
//!   threads.
//! - `uncontended_*`: ROUNDS take-and-give pairs with no other thread: `SharedSemaphore`'s
//!   `try_down` + `up`, `SharedMutex`'s lock + unlock, `std::sync::Mutex` and `spin::Mutex`.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, mpsc};

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};
use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use uk_alloc::{Allocator, Locked, Tlsf};
use uk_context::{Context, ContextOps, Native};
use uk_hal::HostClock;
use uk_sched::{
    RoundRobin, Scheduler, Semaphore, SharedChannel, SharedMutex, SharedSemaphore, StackPool,
    Thread, idle, yield_now,
};

const ROUNDS: usize = 10_000;
const OS_ROUNDS: usize = 1_000;
const THREADS: usize = 1_000;

fn sched() -> RoundRobin<Native, HostClock> {
    sched_with(Native::detect())
}

fn sched_with(ops: Native) -> RoundRobin<Native, HostClock> {
    RoundRobin::cooperative(ops, HostClock::new(), idle::Poll)
}

fn main() {
    divan::main();
}

// ----- the process's allocator: glibc's, or uk-alloc's TLSF while a `_uk_alloc` row runs

/// glibc's malloc, except while a [`UkAllocGuard`] lives, when new blocks come from
/// uk-alloc's TLSF over [`ARENA`] (the batch's stacks included, as in an image). Every block
/// goes back (or is resized) by the allocator it came from, told apart by its address, so
/// blocks may cross the switch.
struct BenchAlloc;

#[global_allocator]
static ALLOCATOR: BenchAlloc = BenchAlloc;

/// Room for the thousand 16 KiB pooled stacks and thread objects of a batch, twice over
/// (zero-initialised: the static costs no file size and its pages are mapped on first use).
const ARENA_BYTES: usize = 32 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: the arena is only ever handed to TLSF (once), which serialises its use.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
static TLSF: Locked<Tlsf> = Locked::new(Tlsf::new());
static USE_TLSF: AtomicBool = AtomicBool::new(false);

fn in_arena(ptr: *mut u8) -> bool {
    let base = ARENA.0.get().cast::<u8>();
    (base..base.wrapping_add(ARENA_BYTES)).contains(&ptr)
}

// SAFETY: forwards each call to glibc's allocator or to TLSF, both `GlobalAlloc`s; frees and
// resizes go to the one that made the block (TLSF's blocks are exactly those in the arena).
unsafe impl GlobalAlloc for BenchAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            if USE_TLSF.load(Ordering::Relaxed) {
                // Should the arena ever run out, glibc serves the request: a panic's own
                // allocations must not fail, or the report would never be printed.
                let p = TLSF.alloc(layout);
                if p.is_null() { System.alloc(layout) } else { p }
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract; the block came from the allocator its address names.
        unsafe {
            if in_arena(ptr) {
                TLSF.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        unsafe {
            if in_arena(ptr) {
                TLSF.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// While it lives, new allocations come from uk-alloc's TLSF.
struct UkAllocGuard;

impl UkAllocGuard {
    fn enable() -> Self {
        static GIVE_ARENA: Once = Once::new();
        GIVE_ARENA.call_once(|| {
            // SAFETY: the arena is static, unused by anything else, and given once.
            unsafe { TLSF.lock().add_memory(ARENA.0.get().cast(), ARENA_BYTES) }
                .expect("the arena is usable memory");
        });
        USE_TLSF.store(true, Ordering::Relaxed);
        UkAllocGuard
    }
}

impl Drop for UkAllocGuard {
    fn drop(&mut self) {
        USE_TLSF.store(false, Ordering::Relaxed);
    }
}

fn pingpong(b: Bencher, ectx: bool) {
    pingpong_with(b, ectx, Native::detect());
}

fn pingpong_with(b: Bencher, ectx: bool, ops: Native) {
    let s = sched_with(ops);
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for name in ["ping", "pong"] {
            let t = Thread::builder(name)
                .stack_size(16 * 1024)
                .ectx(ectx)
                .create(s.ops(), || {
                    for _ in 0..ROUNDS {
                        yield_now();
                    }
                })
                .unwrap();
            s.add(&t).unwrap();
        }
        s.run();
    });
}

#[divan::bench]
fn yield_pingpong_uk_sched(b: Bencher) {
    pingpong(b, false);
}

/// The same through the scheduler's typed [`Scheduler::yield_now`], which each thread
/// calls on the scheduler it holds (as a corosensei coroutine holds its `Yielder`).
#[divan::bench]
fn yield_pingpong_uk_sched_typed(b: Bencher) {
    typed_pingpong(b, sched());
}

/// The typed ping-pong on a scheduler that counts each thread's CPU time
/// ([`RoundRobin::with_cpu_time`]), with a clock read as a board reads its own (the
/// time-stamp counter and a multiply), against the same scheduler without counting: the
/// cost of the accounting, one clock read per switch.
#[cfg(target_arch = "x86_64")]
#[divan::bench(args = [false, true])]
fn yield_pingpong_uk_sched_typed_tsc_clock(b: Bencher, count_cpu_time: bool) {
    let s = RoundRobin::cooperative(Native::detect(), TscClock::calibrated(), idle::Poll);
    typed_pingpong(b, if count_cpu_time { s.with_cpu_time() } else { s });
}

fn typed_pingpong<K: uk_hal::Clock + 'static>(b: Bencher, s: RoundRobin<Native, K>) {
    let s = std::rc::Rc::new(s);
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for name in ["ping", "pong"] {
            let mine = s.clone();
            let t = Thread::builder(name)
                .stack_size(16 * 1024)
                .create(s.ops(), move || {
                    for _ in 0..ROUNDS {
                        mine.yield_now();
                    }
                })
                .unwrap();
            s.add(&t).unwrap();
        }
        s.run();
    });
}

/// Nanoseconds from the time-stamp counter, as the x86 board computes them: counter
/// times a 32.32 fixed-point factor measured against the OS clock.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct TscClock {
    ns_per_cycle_q32: u64,
}

#[cfg(target_arch = "x86_64")]
impl TscClock {
    fn calibrated() -> Self {
        let (t0, c0) = (std::time::Instant::now(), tsc());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (ns, cycles) = (t0.elapsed().as_nanos() as u64, tsc() - c0);
        Self {
            ns_per_cycle_q32: ((u128::from(ns) << 32) / u128::from(cycles.max(1))) as u64,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn tsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter; every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_arch = "x86_64")]
impl uk_hal::Clock for TscClock {
    fn monotonic_ns(&self) -> u64 {
        ((u128::from(tsc()) * u128::from(self.ns_per_cycle_q32)) >> 32) as u64
    }
    fn cycles(&self) -> u64 {
        tsc()
    }
    fn cycles_per_second(&self) -> u64 {
        ((1_000_000_000u128 << 32) / u128::from(self.ns_per_cycle_q32.max(1))) as u64
    }
}

#[divan::bench]
fn yield_pingpong_uk_sched_ectx(b: Bencher) {
    pingpong(b, true);
}

#[divan::bench]
fn yield_pingpong_uk_sched_ectx_xsave(b: Bencher) {
    let ops = uk_context::X86_64::with_method(uk_context::XsaveMethod::Xsave).expect("XSAVE");
    pingpong_with(b, true, ops);
}

#[divan::bench]
fn yield_pingpong_uk_sched_ectx_fxsave(b: Bencher) {
    let ops = uk_context::X86_64::with_method(uk_context::XsaveMethod::Fxsave).expect("FXSAVE");
    pingpong_with(b, true, ops);
}

#[divan::bench]
fn yield_pingpong_corosensei(b: Bencher) {
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        let mut co = Coroutine::with_stack(DefaultStack::new(16 * 1024).unwrap(), |y, ()| {
            loop {
                y.suspend(());
            }
        });
        for _ in 0..ROUNDS {
            black_box(co.resume(()));
        }
        // Not finished: force-unwind it (outside the measured loop's work, but counted).
        drop(co);
    });
}

#[divan::bench]
fn yield_pingpong_os_threads(b: Bencher) {
    b.counter(ItemsCount::new(OS_ROUNDS)).bench_local(|| {
        let (to_pong, from_ping) = mpsc::sync_channel::<()>(0);
        let (to_ping, from_pong) = mpsc::sync_channel::<()>(0);
        let pong = std::thread::spawn(move || {
            for _ in 0..OS_ROUNDS {
                from_ping.recv().unwrap();
                to_ping.send(()).unwrap();
            }
        });
        for _ in 0..OS_ROUNDS {
            to_pong.send(()).unwrap();
            from_pong.recv().unwrap();
        }
        pong.join().unwrap();
    });
}

#[divan::bench]
fn create_run_exit_uk_sched_pooled(b: Bencher) {
    create_run_exit_batch(b);
}

/// The same with uk-alloc's TLSF allocating the thread objects and stacks, as in an image
/// (the glibc rows above pay for glibc's `free` of a batch of 1,000 blocks, which its
/// per-thread cache does not hold).
#[divan::bench]
fn create_run_exit_uk_sched_pooled_uk_alloc(b: Bencher) {
    let _tlsf = UkAllocGuard::enable();
    create_run_exit_batch(b);
}

/// 1,000 threads created on pooled stacks, then all run to completion and reclaimed.
fn create_run_exit_batch(b: Bencher) {
    let s = sched();
    let pool = StackPool::new(16 * 1024, THREADS);
    b.counter(ItemsCount::new(THREADS)).bench_local(|| {
        for _ in 0..THREADS {
            add_pooled_thread(&s, &pool);
        }
        s.run();
    });
}

/// Creates a thread on a stack of `pool` that passes its argument to `black_box`, and adds
/// it to `s` (which then holds the only reference).
#[inline(always)] // as if written out in each loop, so the harness costs what it did
fn add_pooled_thread(s: &RoundRobin<Native, HostClock>, pool: &StackPool) {
    let t = Thread::builder("t")
        .stack(pool.get().unwrap())
        .create_fn(
            s.ops(),
            |x| {
                black_box(x);
            },
            1,
        )
        .unwrap();
    s.add(&t).unwrap();
}

/// The same work one thread at a time, as the corosensei peer does it: each thread is
/// created, run to its end and reclaimed before the next one is created.
#[divan::bench]
fn create_run_exit_uk_sched_pooled_one_at_a_time(b: Bencher) {
    create_run_exit_one_at_a_time(b);
}

/// The same with uk-alloc's TLSF as the allocator, as in an image.
#[divan::bench]
fn create_run_exit_uk_sched_pooled_one_at_a_time_uk_alloc(b: Bencher) {
    let _tlsf = UkAllocGuard::enable();
    create_run_exit_one_at_a_time(b);
}

fn create_run_exit_one_at_a_time(b: Bencher) {
    let s = sched();
    let pool = StackPool::new(16 * 1024, 1);
    b.counter(ItemsCount::new(THREADS)).bench_local(|| {
        for _ in 0..THREADS {
            add_pooled_thread(&s, &pool);
            s.run();
        }
    });
}

#[divan::bench]
fn create_run_exit_corosensei_reused_stack(b: Bencher) {
    let mut stack = Some(DefaultStack::new(16 * 1024).unwrap());
    b.counter(ItemsCount::new(THREADS)).bench_local(|| {
        for _ in 0..THREADS {
            let mut co = Coroutine::with_stack(stack.take().unwrap(), |_, x: usize| black_box(x));
            match co.resume(1) {
                CoroutineResult::Return(r) => drop(black_box(r)),
                CoroutineResult::Yield(()) => unreachable!(),
            }
            stack = Some(co.into_stack());
        }
    });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn create_run_exit_std_thread(b: Bencher) {
    b.counter(ItemsCount::new(100usize)).bench_local(|| {
        for _ in 0..100 {
            std::thread::spawn(|| black_box(1)).join().unwrap();
        }
    });
}

/// The two contexts of [`yield_pingpong_uk_context_switch_only`], shared with the other side.
struct PingPong {
    ops: uk_context::X86_64,
    main: Context,
    other: Context,
}

/// The other side: switches straight back, forever.
extern "C" fn bounce(pair: usize, _: usize) -> ! {
    let pair = pair as *mut PingPong;
    loop {
        // SAFETY: `pair` outlives every switch into this context (the benchmark keeps it
        // alive until after its last round trip, and never resumes this side again), and
        // `main` was saved by the switch that resumed us.
        unsafe {
            let ops = (*pair).ops;
            ops.switch(&raw mut (*pair).other, &raw const (*pair).main);
        }
    }
}

/// The floor under the uk-sched figures: uk-context's switch alone, between the benchmark and
/// a context that switches straight back (no scheduler, no run queue).
#[divan::bench]
fn yield_pingpong_uk_context_switch_only(b: Bencher) {
    let ops = Native::detect();
    let mut stack = vec![0u8; 16 * 1024];
    let mut pair = Box::new(PingPong {
        ops,
        main: Context::new(),
        other: Context::new(),
    });
    let arg = &raw mut *pair as usize;
    // SAFETY: the stack is used by nothing else and outlives the context (dropped after the
    // last switch into it).
    unsafe {
        ops.init(
            &mut pair.other,
            stack.as_mut_ptr(),
            stack.len(),
            bounce,
            arg,
            0,
        )
    }
    .expect("a 16 KiB stack");
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for _ in 0..ROUNDS {
            // SAFETY: `other` was laid out by `init` or saved by `bounce`'s switch, and its
            // stack is alive.
            unsafe { ops.switch(&raw mut pair.main, &raw const pair.other) };
        }
    });
    drop(stack);
}

// ----- semaphores -----

/// The common shape of the semaphores compared (a unit given, a unit taken, blocking).
trait Units: 'static {
    fn empty() -> Self;
    fn give(&self);
    fn take(&self);
}

impl Units for Semaphore {
    fn empty() -> Self {
        Semaphore::new(0)
    }
    fn give(&self) {
        self.up();
    }
    fn take(&self) {
        self.down();
    }
}

impl Units for SharedSemaphore {
    fn empty() -> Self {
        SharedSemaphore::new(0)
    }
    fn give(&self) {
        self.up();
    }
    fn take(&self) {
        self.down();
    }
}

fn semaphore_pingpong<S: Units>(b: Bencher) {
    let s = sched();
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        let ping = std::rc::Rc::new(S::empty());
        let pong = std::rc::Rc::new(S::empty());
        let (ping2, pong2) = (ping.clone(), pong.clone());
        s.spawn("ping", move || {
            for _ in 0..ROUNDS {
                ping.give();
                pong.take();
            }
        })
        .unwrap();
        s.spawn("pong", move || {
            for _ in 0..ROUNDS {
                ping2.take();
                pong2.give();
            }
        })
        .unwrap();
        s.run();
    });
}

#[divan::bench]
fn semaphore_pingpong_uk_sched_local(b: Bencher) {
    semaphore_pingpong::<Semaphore>(b);
}

#[divan::bench]
fn semaphore_pingpong_uk_sched_shared(b: Bencher) {
    semaphore_pingpong::<SharedSemaphore>(b);
}

/// A counting semaphore of the standard library's parts, for the OS-thread peer.
#[derive(Default)]
struct StdSemaphore {
    count: std::sync::Mutex<usize>,
    more: std::sync::Condvar,
}

impl StdSemaphore {
    fn up(&self) {
        *self.count.lock().unwrap() += 1;
        self.more.notify_one();
    }
    fn down(&self) {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            count = self.more.wait(count).unwrap();
        }
        *count -= 1;
    }
}

#[divan::bench]
fn semaphore_pingpong_os_threads_std(b: Bencher) {
    b.counter(ItemsCount::new(OS_ROUNDS)).bench_local(|| {
        let ping = std::sync::Arc::new(StdSemaphore::default());
        let pong = std::sync::Arc::new(StdSemaphore::default());
        let (ping2, pong2) = (ping.clone(), pong.clone());
        let other = std::thread::spawn(move || {
            for _ in 0..OS_ROUNDS {
                ping2.down();
                pong2.up();
            }
        });
        for _ in 0..OS_ROUNDS {
            ping.up();
            pong.down();
        }
        other.join().unwrap();
    });
}

#[divan::bench]
fn channel_pingpong_uk_sched_shared(b: Bencher) {
    let s = sched();
    let one = std::num::NonZeroUsize::new(1).unwrap();
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        let there = std::rc::Rc::new(SharedChannel::new(one).unwrap());
        let back = std::rc::Rc::new(SharedChannel::new(one).unwrap());
        let (there2, back2) = (there.clone(), back.clone());
        s.spawn("ping", move || {
            for i in 0..ROUNDS {
                there.send(i);
                black_box(back.recv());
            }
        })
        .unwrap();
        s.spawn("pong", move || {
            for _ in 0..ROUNDS {
                back2.send(there2.recv());
            }
        })
        .unwrap();
        s.run();
    });
}

#[divan::bench]
fn channel_pingpong_os_threads_std(b: Bencher) {
    b.counter(ItemsCount::new(OS_ROUNDS)).bench_local(|| {
        let (to_pong, from_ping) = mpsc::sync_channel::<usize>(1);
        let (to_ping, from_pong) = mpsc::sync_channel::<usize>(1);
        let pong = std::thread::spawn(move || {
            for _ in 0..OS_ROUNDS {
                to_ping.send(from_ping.recv().unwrap()).unwrap();
            }
        });
        for i in 0..OS_ROUNDS {
            to_pong.send(i).unwrap();
            black_box(from_pong.recv().unwrap());
        }
        pong.join().unwrap();
    });
}

#[divan::bench]
fn uncontended_shared_semaphore(b: Bencher) {
    let sem = SharedSemaphore::new(1);
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for _ in 0..ROUNDS {
            black_box(sem.try_down());
            sem.up();
        }
    });
}

#[divan::bench]
fn uncontended_shared_mutex(b: Bencher) {
    let m = SharedMutex::new(0u64);
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for _ in 0..ROUNDS {
            *m.lock() += 1;
        }
    });
    black_box(m.into_inner());
}

#[divan::bench]
fn uncontended_std_mutex(b: Bencher) {
    let m = std::sync::Mutex::new(0u64);
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for _ in 0..ROUNDS {
            *black_box(&m).lock().unwrap() += 1;
        }
    });
}

#[divan::bench]
fn uncontended_spin_mutex(b: Bencher) {
    let m = spin::Mutex::new(0u64);
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        for _ in 0..ROUNDS {
            *black_box(&m).lock() += 1;
        }
    });
}
