//! A C program on uk-rs: `c/hello.c`, an ordinary program compiled against musl's headers
//! and linked with musl's static C library (Debian's `musl-dev`), runs as the image's
//! process. Nothing in it knows about uk-rs: printf, malloc, stdio files, directories,
//! pthreads, `__thread` variables, clocks and getrandom all reach uk-rs's Linux syscall
//! handlers through musl's own `syscall` (x86_64) and `svc #0` (aarch64) instructions, and
//! `main`'s return value becomes the run's exit status through musl's `exit`.
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
use alloc::vec::Vec;
use core::ffi::c_char;

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
    uk_posix_process::system().spawn_process("hello", start_c, 0)?;
    // Runs until the C program's exit_group ends the process, and with it the run.
    sched.run();
    Ok(())
}
