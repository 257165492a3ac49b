//! Fixtures of the host tests: a fake clock, an idle hook that jumps the clock to the next
//! deadline, a scheduler and a leaked `System` per test, and closures as thread entries.
#![allow(dead_code)]

use std::boxed::Box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use uk_context::Native;
use uk_hal::Clock;
use uk_posix_process::rlimit::{RLIM_INFINITY, RLIMIT_STACK};
use uk_posix_process::{Rlimit, System};
use uk_sched::{Idle, RoundRobin, Scheduler};

/// A clock that moves only when the idle hook (or a test) moves it.
#[derive(Clone, Default)]
pub struct FakeClock(pub Arc<AtomicU64>);

impl FakeClock {
    pub fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::SeqCst);
    }
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
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

/// Idle: a halted CPU woken by its timer finds the clock at the deadline. With no deadline
/// nothing can ever wake a thread: the test deadlocked, and fails instead of hanging.
pub struct JumpIdle(pub FakeClock);

impl Idle for JumpIdle {
    fn idle(&self, _clock: &dyn Clock, deadline: Option<u64>) {
        match deadline {
            Some(d) => {
                if d > self.0.monotonic_ns() {
                    self.0.set(d);
                }
            }
            None => panic!("deadlock: every thread blocked without a deadline"),
        }
    }
}

pub type Sched = RoundRobin<Native, FakeClock>;

/// A fresh scheduler (leaked: threads hold it for the whole test) and process layer.
pub struct World {
    pub sched: &'static Sched,
    pub sys: &'static System,
    pub clock: FakeClock,
}

/// Runs `body` as the main thread of a fresh [`world`] and requires the run to end
/// normally (status 0): the shape most tests have.
pub fn run_main(body: impl FnOnce(&'static System, FakeClock) + 'static) {
    let w = world();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        body(sys, clock);
        0
    });
    assert_eq!(status, Some(0));
}

pub fn world() -> World {
    world_with(System::new())
}

pub fn world_with(sys: System) -> World {
    world_on(Box::leak(Box::new(sys)))
}

/// A fresh scheduler for `sys` (the global one, say).
pub fn world_on(sys: &'static System) -> World {
    world_of(sys, false)
}

/// As [`world`], with a scheduler that counts each thread's CPU time.
pub fn world_counting_cpu_time() -> World {
    world_of(Box::leak(Box::new(System::new())), true)
}

fn world_of(sys: &'static System, cpu_time: bool) -> World {
    let clock = FakeClock::default();
    let mut sched =
        RoundRobin::cooperative(Native::detect(), clock.clone(), JumpIdle(clock.clone()));
    if cpu_time {
        sched = sched.with_cpu_time();
    }
    let sched: &'static Sched = Box::leak(Box::new(sched));
    sys.set_host(Some(sched));
    // Host closures with assertion messages like more room than 64 KiB.
    sys.setrlimit(
        RLIMIT_STACK,
        Rlimit {
            rlim_cur: 512 * 1024,
            rlim_max: RLIM_INFINITY,
        },
    )
    .unwrap();
    sys.set_exit_hook(|_| {});
    World { sched, sys, clock }
}

type Body = Box<dyn FnOnce() -> i32>;

/// The entry of a thread running a boxed closure (its argument is the leaked box).
///
/// A failed assertion in a world's thread ends the whole test binary: the other threads
/// of that world often wait for something the failed one would have done, so the run
/// would otherwise never end, and a hung test says nothing. The panic's message (printed
/// by the hook before this) names the assertion.
pub fn boxed_entry(arg: usize) -> i32 {
    // SAFETY: `arg` comes from `boxed` below, taken exactly once.
    let body: Box<Body> = unsafe { Box::from_raw(arg as *mut Body) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            // Straight to the process's stderr: the test harness's capture dies with it.
            let _ = writeln!(
                std::io::stderr(),
                "a thread of a test's world panicked, ending the test binary: {message}"
            );
            std::process::abort();
        }
    }
}

/// A closure as (entry, arg) for `ChildStart::Call` and `spawn_process`.
pub fn boxed(f: impl FnOnce() -> i32 + 'static) -> (fn(usize) -> i32, usize) {
    let body: Body = Box::new(f);
    (boxed_entry, Box::into_raw(Box::new(body)) as usize)
}

impl World {
    /// Runs `main` as the first thread of a new process until every thread has ended;
    /// returns the run's exit status.
    pub fn run(&self, main: impl FnOnce() -> i32 + 'static) -> Option<u8> {
        let (entry, arg) = boxed(main);
        self.sys
            .spawn_process("main", entry, arg)
            .expect("spawn main");
        self.sched.run();
        self.sys.last_exit_status()
    }
}

/// A 16-byte aligned stack that lives for the test; returns its top.
pub fn stack(bytes: usize) -> usize {
    let v: &'static mut [u128] = Box::leak(vec![0u128; bytes / 16].into_boxed_slice());
    v.as_ptr() as usize + bytes
}

/// A leaked futex word.
pub fn word(v: u32) -> &'static std::sync::atomic::AtomicU32 {
    Box::leak(Box::new(std::sync::atomic::AtomicU32::new(v)))
}

pub fn addr(w: &std::sync::atomic::AtomicU32) -> usize {
    w as *const _ as usize
}

/// Starts `f` on a new thread of the caller's process (pthread flags, a stack from the
/// layer, a parent tid word); returns its tid.
pub fn spawn(sys: &'static System, f: impl FnOnce() -> i32 + 'static) -> uk_posix_process::Tid {
    use uk_posix_process::ChildStart;
    use uk_posix_process::flags::{CloneArgs, PTHREAD_FLAGS, Via};
    let (entry, arg) = boxed(f);
    let a = CloneArgs::from_legacy(PTHREAD_FLAGS, 0, addr(word(0)), 0, 0);
    sys.clone(&a, Via::Clone, ChildStart::Call { entry, arg })
        .unwrap()
}

/// Installs `handler` (an `extern "C"` function's address) for `sig` with `flags`.
pub fn on_signal(sys: &System, sig: i32, handler: usize, flags: u64) {
    let action = uk_posix_process::signal::SigAction {
        handler,
        flags,
        ..Default::default()
    };
    sys.rt_sigaction(sig, Some(action)).unwrap();
}

/// Runs `body` as the first thread of a process on the image's global layer, connected to
/// the global VFS, one test of the binary at a time, and requires a normal end.
pub fn run_on_the_image_layer(body: impl FnOnce(&'static System) + 'static) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sys = uk_posix_process::system();
    uk_posix_process::connect_vfs();
    let w = world_on(sys);
    let status = w.run(move || {
        body(sys);
        0
    });
    assert_eq!(status, Some(0));
}

/// Starts a child process of the caller's (clone without `CLONE_THREAD`, with
/// `exit_signal`) running `f`; returns its pid.
pub fn child_process(
    sys: &'static System,
    exit_signal: u64,
    f: impl FnOnce() -> i32 + 'static,
) -> uk_posix_process::Pid {
    use uk_posix_process::ChildStart;
    use uk_posix_process::flags::{CLONE_FILES, CLONE_FS, CLONE_VM, CloneArgs, Via};
    let (entry, arg) = boxed(f);
    let flags = CLONE_VM | CLONE_FS | CLONE_FILES | exit_signal;
    let a = CloneArgs::from_legacy(flags, 0, 0, 0, 0);
    sys.clone(&a, Via::Clone, ChildStart::Call { entry, arg })
        .unwrap()
}
