//! A C program on uk-rs: `c/hello.c`, an ordinary program, is compiled against musl and
//! linked with musl's static C library, which `build.rs` builds from source with its
//! system calls turned into direct calls (`musl/syscall_arch.h`), as Unikraft 0.11 does.
//! Nothing in the program knows about uk-rs: printf, malloc, stdio files, directories,
//! pthreads, `__thread` variables, clocks, getrandom and signals all reach uk-rs's Linux
//! syscall handlers as plain function calls of `uk_syscall6`, and `main`'s return value
//! becomes the run's exit status through musl's `exit`.
//!
//! musl's own assembly that would still trap is replaced as well (`__clone` becomes a jump
//! to uk-posix-process's `uk_clone`, x86_64's `__set_thread_area` a direct `arch_prctl`),
//! so no call of the program goes through `syscall` / `svc #0`. When the program ends, the
//! image lists the calls that came through the trap anyway (`uk_syscall::trapped_calls`):
//! none, unless `-- costs` made some on purpose.
//!
//! The Rust side does what Linux's `execve` does for a static executable: it builds the
//! start-up block (`argv`, `envp` and the auxiliary vector, with a `PT_TLS` header that
//! describes the image's TLS template, where the linker put the C code's `__thread`
//! variables) and calls musl's start code on a thread of the process layer.
//!
//! ```text
//! cargo uk run --example musl -- one two             # x86-pc
//! cargo uk run --example musl --board qemu-virt      # aarch64
//! cargo uk run --example musl -- suite               # the C library test suite (c/suite*.c)
//! cargo uk run --example musl -- suite pipes         # one group of it
//! ```
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::fmt::Write;

use uk_context::Native;
use uk_posix_process::startup::{CMain, LibcStart, StartupBlock, TlsSegment};
use uk_sched::{RoundRobin, Scheduler, idle};

uk_app::main!(main);

unsafe extern "C" {
    /// The C program's `main` (`c/hello.c`).
    #[link_name = "main"]
    fn c_main(argc: i32, argv: *mut *mut c_char, envp: *mut *mut c_char) -> i32;
    /// musl's start code: initialises the C library from the start-up block `argv`
    /// begins, runs `main` and passes its result to `exit`. It never returns.
    fn __libc_start_main(
        main: CMain,
        argc: i32,
        argv: *mut *mut c_char,
        init: usize,
        fini: usize,
        ldso: usize,
    ) -> i32;
}

/// The scheduler's time slice under `sched=preemptive` (cooperative, the timer interrupt
/// only wakes sleepers and brings the process layer's timer signals).
const TICK_NS: u64 = 10_000_000;

/// The environment the program sees.
const ENV: [&[u8]; 2] = [b"HOME=/", b"PATH=/bin"];

/// The C program's start-up block: `argv` is `hello` and the image's arguments, the
/// auxiliary vector describes the image's TLS template (where the linker put the C code's
/// `__thread` variables) and carries 16 bytes from the random pool.
fn startup_block(args: &uk_app::Args) -> Result<StartupBlock, &'static str> {
    let mut argv: Vec<&[u8]> = Vec::from([&b"hello"[..]]);
    argv.extend(args.as_slice().iter().map(|a| a.as_bytes()));
    let mut random = [0u8; 16];
    uk_random::fill_bytes(&mut random).map_err(|_| "no entropy for AT_RANDOM")?;
    let tls = TlsSegment::of_image().map_err(|_| "the image's TLS template is unusable")?;
    StartupBlock::new(&argv, &ENV, tls, random).map_err(|_| "an argument holds a NUL byte")
}

/// Ends the run once the program's last thread has exited, after listing the system calls
/// that came through the trap instead of a direct call (per number, in number order).
fn report_traps_and_exit(status: u8) {
    let mut trapped = String::new();
    for number in 0..uk_syscall::TABLE_LEN {
        let calls = uk_syscall::trapped_calls(number);
        if calls > 0 {
            let separator = if trapped.is_empty() { "" } else { ", " };
            let _ = write!(trapped, "{separator}{} {calls}", uk_syscall::name(number));
        }
    }
    if trapped.is_empty() {
        trapped.push_str("none");
    }
    uk_app::println!("musl: syscalls that trapped: {trapped}");
    uk_app::platform().exit(status)
}

fn main(args: &uk_app::Args) -> Result<(), uk_posix_process::Errno> {
    let platform = uk_app::platform();
    // The binary syscall entry (for code that still traps), and the console behind fds 0-2.
    if let Err(e) = uk_syscall::install() {
        uk_app::println!("musl: no syscall entry: {e:?}");
        return Err(uk_posix_process::Errno::ENOSYS);
    }
    uk_vfs::set_console(platform);
    let block = startup_block(args).map_err(|why| {
        uk_app::println!("musl: {why}");
        uk_posix_process::Errno::EINVAL
    })?;
    // Cooperative unless the kernel parameter `sched=preemptive` asks otherwise (`cargo uk
    // run --scheduler preemptive`): then the timer interrupt also switches threads every
    // tick while another one is runnable.
    let (params, _) = uk_app::cmdline::split(platform.command_line());
    // Thread stacks (the C program's main thread's included) get an inaccessible page
    // below them where the board can set page rights: an overflow faults at once.
    if let Some(protection) = platform.page_protection() {
        uk_sched::set_guard_pages(protection);
    }
    let irqs = platform.interrupts();
    let preemptive =
        params.sched == Some(uk_app::cmdline::SchedPolicy::Preemptive) && irqs.is_some();
    let mut sched = if preemptive {
        RoundRobin::preemptive(Native::detect(), platform, idle::Poll, 1)
    } else {
        RoundRobin::cooperative(Native::detect(), platform, idle::Poll)
    }
    // Counting CPU time gives the C program clock(), getrusage, times and the CPU-time
    // clocks.
    .with_cpu_time();
    // The board's timer interrupt lets the process layer interrupt a C thread that
    // computes without system calls when one of its timers runs out (alarm, setitimer,
    // POSIX timers): the handler runs at the interrupt, as on Linux.
    if let Some(irqs) = irqs {
        sched = sched.with_interrupts(irqs, TICK_NS).map_err(|e| {
            uk_app::println!("musl: the timer interrupt is taken: {e:?}");
            uk_posix_process::Errno::EBUSY
        })?;
    }
    let sched: &'static RoundRobin<_, _> = Box::leak(Box::new(sched));
    uk_posix_process::install(sched);
    let system = uk_posix_process::system();
    system.set_exit_hook(report_traps_and_exit);
    let start: LibcStart = __libc_start_main;
    system.spawn_c_program("hello", start, c_main, block)?;
    if let Some(irqs) = irqs {
        irqs.enable_on_this_cpu();
    }
    // Runs until the C program's exit_group ends the process, and with it the run.
    sched.run();
    Ok(())
}
