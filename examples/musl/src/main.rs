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
use uk_posix_process::startup::{StartupBlock, TlsSegment};
use uk_sched::{RoundRobin, Scheduler, idle};

uk_app::main!(main);

/// A C `main`.
type CMain = unsafe extern "C" fn(i32, *mut *mut c_char, *mut *mut c_char) -> i32;

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

/// The image's command-line arguments, for the program's `argv`.
static ARGS: spin::Once<&'static [&'static str]> = spin::Once::new();

/// The environment the program sees.
const ENV: [&[u8]; 2] = [b"HOME=/", b"PATH=/bin"];

/// The process's first thread: builds the start-up block from the image's arguments and
/// enters musl.
fn start_c(_: usize) -> i32 {
    let mut args: Vec<&[u8]> = Vec::from([&b"hello"[..]]);
    args.extend(
        ARGS.get()
            .into_iter()
            .flat_map(|a| a.iter())
            .map(|a| a.as_bytes()),
    );
    let mut random = [0u8; 16];
    if uk_random::fill_bytes(&mut random).is_err() {
        uk_app::println!("musl: no entropy for AT_RANDOM");
        return 1;
    }
    let tls = match TlsSegment::of_image() {
        Ok(tls) => tls,
        Err(e) => {
            uk_app::println!("musl: the image's TLS template is unusable: {e:?}");
            return 1;
        }
    };
    let block = match StartupBlock::new(&args, &ENV, tls, random) {
        Ok(block) => Box::leak(Box::new(block)),
        Err(e) => {
            uk_app::println!("musl: bad arguments: {e:?}");
            return 1;
        }
    };
    let argc = block.argc() as i32;
    // SAFETY: `block` is leaked, so the argv, envp and auxiliary vector musl reads (and
    // keeps pointers into) live for the rest of the run; `c_main` is the C program's
    // `main`. musl's start code then owns this thread until `exit`.
    unsafe { __libc_start_main(c_main, argc, block.argv() as *mut *mut c_char, 0, 0, 0) }
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
    ARGS.call_once(|| args.as_slice());
    let platform = uk_app::platform();
    // The binary syscall entry musl's instructions reach, and the console behind fds 0-2.
    if let Err(e) = uk_syscall::install() {
        uk_app::println!("musl: no syscall entry: {e:?}");
        return Err(uk_posix_process::Errno::ENOSYS);
    }
    uk_vfs::set_console(platform);
    let sched: &'static RoundRobin<_, _> = Box::leak(Box::new(RoundRobin::cooperative(
        Native::detect(),
        platform,
        idle::Poll,
    )));
    uk_posix_process::install(sched);
    uk_posix_process::system().set_exit_hook(report_traps_and_exit);
    uk_posix_process::system().spawn_process("hello", start_c, 0)?;
    // Runs until the C program's exit_group ends the process, and with it the run.
    sched.run();
    Ok(())
}
