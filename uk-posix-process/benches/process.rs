//! Host benchmarks of the process layer against Linux, in one run:
//! - a futex ping-pong round trip between two uk-sched threads (`System::futex`) against
//!   the same between two OS threads (Linux `futex(2)`);
//! - a pthread-style create and join (clone with `PTHREAD_FLAGS`, join on the tid word)
//!   against `std::thread::spawn` + `join`;
//! - `getpid` through the layer (direct and by number) against Linux's `getpid(2)`.

use std::sync::atomic::{AtomicU32, Ordering};

use divan::Bencher;
use divan::counter::ItemsCount;
use uk_hal::HostClock;
use uk_posix_process::flags::{CloneArgs, PTHREAD_FLAGS, Via};
use uk_posix_process::{ChildStart, FUTEX_PRIVATE_FLAG, FUTEX_WAIT, FUTEX_WAKE, System};
use uk_sched::{RoundRobin, Scheduler, idle};

fn main() {
    divan::main();
}

type Sched = RoundRobin<uk_context::Native, HostClock>;

struct World {
    sched: &'static Sched,
    sys: &'static System,
}

thread_local! {
    static WORLD: World = {
        let sched: &'static Sched = Box::leak(Box::new(RoundRobin::cooperative(
            uk_context::Native::detect(),
            HostClock::new(),
            idle::Poll,
        )));
        let sys: &'static System = Box::leak(Box::new(System::new()));
        sys.set_host(Some(sched));
        sys.set_exit_hook(|_| {});
        World { sched, sys }
    };
}

/// Runs `main(arg)` as a process to its end.
fn run(main: fn(usize) -> i32, arg: usize) {
    WORLD.with(|w| {
        w.sys.spawn_process("bench", main, arg).expect("spawn");
        w.sched.run();
    });
}

fn sys() -> &'static System {
    WORLD.with(|w| w.sys)
}

const ROUNDS: usize = 1000;

struct PingPong {
    word: AtomicU32,
}

fn pong(arg: usize) -> i32 {
    // SAFETY: `arg` is the address of the `PingPong` the benchmark keeps alive.
    let p = unsafe { &*(arg as *const PingPong) };
    let w = &p.word as *const AtomicU32 as usize;
    for _ in 0..ROUNDS {
        while p.word.load(Ordering::SeqCst) == 0 {
            let _ = sys().futex(w, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0);
        }
        p.word.store(0, Ordering::SeqCst);
        let _ = sys().futex(w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0);
    }
    0
}

fn ping(arg: usize) -> i32 {
    // SAFETY: as in `pong`.
    let p = unsafe { &*(arg as *const PingPong) };
    let w = &p.word as *const AtomicU32 as usize;
    let a = CloneArgs::from_legacy(
        PTHREAD_FLAGS & !uk_posix_process::flags::CLONE_SETTLS,
        0,
        w,
        0,
        0,
    );
    sys()
        .clone(&a, Via::Clone, ChildStart::Call { entry: pong, arg })
        .expect("clone");
    p.word.store(0, Ordering::SeqCst);
    for _ in 0..ROUNDS {
        p.word.store(1, Ordering::SeqCst);
        let _ = sys().futex(w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0);
        while p.word.load(Ordering::SeqCst) == 1 {
            let _ = sys().futex(w, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0);
        }
    }
    0
}

/// One futex round trip (wake + wait each way) between two uk-sched threads.
#[divan::bench]
fn futex_round_trip_uk(b: Bencher) {
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        let p = PingPong {
            word: AtomicU32::new(0),
        };
        run(ping, &p as *const PingPong as usize);
    });
}

fn linux_futex(word: &AtomicU32, op: i32, val: u32) {
    // SAFETY: futex(2) on a live word, no timeout, no second word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const AtomicU32,
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            0usize,
            0usize,
            0u32,
        );
    }
}

/// The same round trip between two OS threads with Linux futex(2).
#[divan::bench]
fn futex_round_trip_linux(b: Bencher) {
    b.counter(ItemsCount::new(ROUNDS)).bench_local(|| {
        let word = std::sync::Arc::new(AtomicU32::new(0));
        let w2 = word.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                while w2.load(Ordering::SeqCst) == 0 {
                    linux_futex(&w2, libc::FUTEX_WAIT, 0);
                }
                w2.store(0, Ordering::SeqCst);
                linux_futex(&w2, libc::FUTEX_WAKE, 1);
            }
        });
        for _ in 0..ROUNDS {
            word.store(1, Ordering::SeqCst);
            linux_futex(&word, libc::FUTEX_WAKE, 1);
            while word.load(Ordering::SeqCst) == 1 {
                linux_futex(&word, libc::FUTEX_WAIT, 1);
            }
        }
        t.join().unwrap();
    });
}

const THREADS: usize = 100;

fn nothing(_: usize) -> i32 {
    0
}

fn create_join(_: usize) -> i32 {
    let tid_word = AtomicU32::new(0);
    let w = &tid_word as *const AtomicU32 as usize;
    let a = CloneArgs::from_legacy(
        PTHREAD_FLAGS & !uk_posix_process::flags::CLONE_SETTLS,
        0,
        w,
        w,
        0,
    );
    for _ in 0..THREADS {
        let tid = sys()
            .clone(
                &a,
                Via::Clone,
                ChildStart::Call {
                    entry: nothing,
                    arg: 0,
                },
            )
            .expect("clone");
        while tid_word.load(Ordering::SeqCst) != 0 {
            let _ = sys().futex(w, FUTEX_WAIT, tid as u32, 0, 0, 0);
        }
    }
    0
}

/// pthread-style create + join of a thread that returns at once (uk-sched thread with a
/// fresh 64 KiB stack, the tid word cleared and futex-woken at its exit).
#[divan::bench]
fn create_join_uk(b: Bencher) {
    b.counter(ItemsCount::new(THREADS))
        .bench_local(|| run(create_join, 0));
}

/// `std::thread::spawn` + `join` of a thread that returns at once.
#[divan::bench]
fn create_join_std(b: Bencher) {
    b.counter(ItemsCount::new(THREADS)).bench_local(|| {
        for _ in 0..THREADS {
            std::thread::spawn(|| {}).join().unwrap();
        }
    });
}

/// getpid through the layer, called directly (boot context, adopted once).
#[divan::bench]
fn getpid_uk_direct() -> i32 {
    divan::black_box(sys()).getpid().unwrap_or(0)
}

/// getpid by number through `uk_syscall::dispatch` (the image's global System).
#[divan::bench]
fn getpid_uk_dispatch() -> isize {
    uk_syscall::dispatch(
        divan::black_box(uk_syscall::Sysno::getpid as usize),
        &[0; 6],
    )
}

/// Linux's getpid(2) as a real syscall.
#[divan::bench]
fn getpid_linux() -> libc::c_long {
    // SAFETY: getpid takes no arguments.
    unsafe { libc::syscall(divan::black_box(libc::SYS_getpid)) }
}
