//! The POSIX process layer of uk-rs: pids and tids, clone and clone3 with Linux
//! semantics, futex, exit and exit_group, resource limits, clocks and sleeping, anonymous
//! memory, uname, getrandom and signals.
//!
//! # Design
//!
//! A unikernel has one address space and one program, but a Linux libc inside it still
//! makes threads with `clone`, parks them with `futex`, asks for its pid and limits, and
//! ends the run with `exit_group`. This crate gives those calls Linux's semantics on top of
//! uk-sched threads.
//!
//! - **State lives in a [`System`].** The image has one ([`system()`]); the free functions
//!   of this crate ([`getpid`], [`clone_call`], [`futex()`], ...) act on it, and the raw
//!   adapters in [`raw`] (registered with `uk_syscall::register!`) unpack Linux's register
//!   arguments into the same typed functions. Hosted tests create their own `System`s.
//! - **Threads are uk-sched threads.** A [`ThreadHost`] (implemented by
//!   `uk_sched::RoundRobin`) creates and schedules them. The layer knows a thread by its
//!   uk-sched id; a thread it did not create (or the boot context) is adopted on its first
//!   call into the first process.
//! - **Clone's logic is apart from how the child starts.** [`System::clone`] validates the
//!   flags against [`flags::FLAG_TABLE`] (Linux's own consistency rules first), checks
//!   every pointer it will write, reserves a tid, creates the thread, picks its thread
//!   group and thread pointer (`CLONE_SETTLS`, else the caller's), hands out the parent's
//!   pidfd (`CLONE_PIDFD`), writes `PARENT_SETTID`/`CHILD_SETTID` and only then schedules
//!   the child. *How* the child
//!   starts is a [`ChildStart`]: a function on the clone stack (musl's `__clone` as a
//!   direct call, [`clone_call`]), or a closure from the syscall layer that resumes the
//!   trapped caller's registers with a return value of 0 on the child's stack (Linux
//!   register semantics; [`raw::sys_clone`] builds it from `uk_syscall::trap_frame`).
//! - **Thread exit** runs in the thread's uk-sched exit callback: `CHILD_CLEARTID` (or
//!   `set_tid_address`) zeroes the word and wakes one futex waiter, the tid is recycled,
//!   the last thread ends its process, and the last process ends the run through the exit
//!   hook (the board's `Platform::exit` with the status; [`System::set_exit_hook`]). A
//!   process with a live parent leaves a zombie and sends its exit signal until `wait4` or
//!   `waitid` reaps it ([`wait`]).
//! - **Thread pointer**: `arch_prctl(ARCH_SET_FS)` on x86_64 ([`tls`]) keeps it in the
//!   calling thread, so the scheduler installs it whenever the thread runs.
//! - **Starting a libc**: [`startup::StartupBlock`] builds the `argv`, `envp` and
//!   auxiliary vector a libc's start code reads (what Linux's `execve` leaves on the
//!   stack), including a `PT_TLS` header for the image's TLS template.
//! - **Ids** come from a bitmap in `1..=32767`: 0 is never handed out, ids are reused
//!   cyclically ([`ids::IdAllocator`]).
//! - **Pointers from callers** go through [`uk_syscall::user`], the one module of uk-rs
//!   that touches caller memory: checked against the image's declared caller memory (the
//!   board's RAM regions and the image, never the NULL page) before any access, so a bad
//!   pointer is `EFAULT` and never a kernel fault. [`System::set_address_space`] replaces
//!   that memory for one `System` (hosted tests confine callers to an arena).
//! - **Signals for threads that compute**: with a scheduler on the board's timer interrupt,
//!   the layer asks for an interrupt at the next deadline of the running process's timers
//!   and runs the handlers due for a thread the interrupt caught in application code; only
//!   application code is preempted under a preemptive scheduler ([`interrupt`]).
//!
//! # Unikraft 0.11 defects this crate does not have
//!
//! Each has a test: tid 0 is never handed out (`ids::tests::zero_is_never_handed_out`);
//! the child of a trapped clone keeps the caller's registers (in image,
//! `pthread_create_join_trap` finds a callee-saved register of the parent in the child;
//! on the host the thread pointer is inherited without `CLONE_SETTLS`:
//! `clone_without_settls_inherits_thread_pointer`); `FUTEX_WAIT_BITSET`
//! exists (`wait_bitset_and_wake_bitset`); futex timeouts honour seconds
//! (`futex_timeout_honours_seconds`); the last thread's exit ends the run
//! (`last_exit_reaches_exit_hook`); `setrlimit` takes effect and `RLIMIT_DATA`'s old value
//! is written (`rlimits_apply_and_old_value_is_written`).
//!
//! # Features
//!
//! - `vfs` (default): uk-vfs's descriptor table follows `RLIMIT_NOFILE`, and `poll`,
//!   `ppoll`, `select` and `pselect6` wait on its descriptors ([`poll`]), `epoll_wait`,
//!   `epoll_pwait` and `epoll_pwait2` on its epoll sets ([`epoll`]); a blocking pipe or
//!   eventfd `read`/`write` and a waiting `flock` end with `EINTR` when a signal's handler
//!   runs, or restart with `SA_RESTART` ([`vfs_wait`]).
//! - `ktest`: registers in-image test cases with uk-test (pthread-style create and join
//!   from raw clone and futex).
//!
//! # Example
//!
//! ```
//! # #[cfg(target_arch = "x86_64")] {
//! use uk_posix_process::{System, flags};
//! use uk_sched::{RoundRobin, idle};
//!
//! # struct HostClock(std::time::Instant);
//! # impl uk_hal::Clock for HostClock {
//! #     fn monotonic_ns(&self) -> u64 { self.0.elapsed().as_nanos() as u64 }
//! #     fn cycles(&self) -> u64 { self.monotonic_ns() }
//! #     fn cycles_per_second(&self) -> u64 { 1_000_000_000 }
//! # }
//! let sched: &'static _ = Box::leak(Box::new(RoundRobin::cooperative(
//!     uk_context::Native::detect(), HostClock(std::time::Instant::now()), idle::Poll)));
//! let sys: &'static System = Box::leak(Box::new(System::new()));
//! sys.set_host(Some(sched));
//! sys.set_exit_hook(|status| assert_eq!(status, 7));
//!
//! fn main_thread(sys: usize) -> i32 {
//!     // SAFETY (of the cast): the argument is the leaked System above.
//!     let sys: &'static System = unsafe { &*(sys as *const System) };
//!     let pid = sys.getpid().unwrap();
//!     assert_eq!(sys.gettid().unwrap(), pid); // the first thread's tid is the pid
//!     7
//! }
//! sys.spawn_process("main", main_thread, sys as *const System as usize).unwrap();
//! uk_sched::Scheduler::run(sched);
//! assert_eq!(sys.last_exit_status(), Some(7));
//! # }
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cputime;
#[cfg(feature = "vfs")]
pub mod epoll;
pub mod fault;
pub mod flags;
mod futex;
mod host;
pub mod ids;
pub mod interrupt;
pub mod itimer;
mod lock;
mod misc;
mod mm;
#[cfg(feature = "vfs")]
pub mod pidfd;
#[cfg(feature = "vfs")]
pub mod poll;
pub mod raw;
pub mod rlimit;
pub mod signal;
pub mod startup;
mod system;
pub mod time;
pub mod timer;
pub mod tls;
#[cfg(feature = "vfs")]
pub mod vfs_wait;

#[cfg(all(feature = "ktest", target_os = "none"))]
mod ktest;

pub use cputime::{Rusage, Tms};
pub use futex::{
    FUTEX_BITSET_MATCH_ANY, FUTEX_CLOCK_REALTIME, FUTEX_CMP_REQUEUE, FUTEX_LOCK_PI, FUTEX_LOCK_PI2,
    FUTEX_OP_ADD, FUTEX_OP_ANDN, FUTEX_OP_CMP_EQ, FUTEX_OP_CMP_GE, FUTEX_OP_CMP_GT,
    FUTEX_OP_CMP_LE, FUTEX_OP_CMP_LT, FUTEX_OP_CMP_NE, FUTEX_OP_OPARG_SHIFT, FUTEX_OP_OR,
    FUTEX_OP_SET, FUTEX_OP_XOR, FUTEX_OWNER_DIED, FUTEX_PRIVATE_FLAG, FUTEX_REQUEUE,
    FUTEX_TID_MASK, FUTEX_TRYLOCK_PI, FUTEX_UNLOCK_PI, FUTEX_WAIT, FUTEX_WAIT_BITSET,
    FUTEX_WAITERS, FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_WAKE_OP, WakeOp,
};
#[cfg(target_os = "none")]
pub use host::ImagePages;
pub use host::{DataLimitHook, ExitHook, HeapPages, PageSource, ThreadHost};
pub use ids::{Pid, Tid};
pub use misc::{
    AFFINITY_MASK, AFFINITY_MASK_SIZE, MACHINE, ROOT_ID, SYSINFO_SIZE, Sysinfo, UTS_LEN, Utsname,
    execve, fork, uname, vfork,
};
pub use mm::{
    DEFAULT_BRK_MAX, MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE,
    MAP_SHARED, MAP_SHARED_VALIDATE, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, MS_ASYNC,
    MS_INVALIDATE, MS_SYNC, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE,
};
#[cfg(feature = "vfs")]
pub use poll::FdSets;
pub use rlimit::Rlimit;
pub use system::{ChildStart, ROBUST_LIST_HEAD_LEN, System, procctl, wait};
pub use time::Timespec;
pub use uk_syscall::Errno;

/// Page size of anonymous mappings.
pub const PAGE_SIZE: usize = 4096;

static SYSTEM: System = System::new();

/// The image's process layer (what the raw adapters and the free functions use).
pub fn system() -> &'static System {
    &SYSTEM
}

/// Installs the scheduler new threads of the image's process layer go to. With the `vfs`
/// feature, the image's VFS descriptor table takes its size from `RLIMIT_NOFILE` from then
/// on, so `setrlimit` and `prlimit64` move the point where `open` gives `EMFILE`.
pub fn install(host: &'static dyn ThreadHost) {
    SYSTEM.set_host(Some(host));
    // Signals that became pending for the caller run their handlers on the way back from
    // every system call, as on Linux (not only from the signal calls, waits and sleeps).
    uk_syscall::set_return_hook(|| {
        SYSTEM.syscall_returned();
    });
    // A thread in a system call is not interrupted by a signal handler; one computing in
    // C code is, at the timer interrupts the layer asks for (see `interrupt`).
    uk_syscall::set_call_bracket(uk_syscall::CallBracket {
        enter: interrupt::syscall_entered,
        leave: interrupt::syscall_leaving,
    });
    uk_sched::irq::set_timer_exit_hook(interrupt::timer_interrupt_ends);
    // A CPU fault in C code (a memory fault, an undefined instruction, ...) runs its
    // signal handler, or ends its process, where the board offers it.
    uk_hal::fault::set_hook(Some(fault::cpu_fault));
    // Under a preemptive scheduler only application code is preempted: a system call runs
    // to its next block or return, so no thread is switched away from while it holds the
    // layer's or the VFS's locks.
    uk_sched::irq::set_preemption_filter(interrupt::may_be_preempted);
    #[cfg(feature = "vfs")]
    connect_vfs();
}

/// Makes the image's VFS descriptor table take its size from `RLIMIT_NOFILE` (and its
/// record locks report `getpid`), wakes the `poll`/`select`/`epoll_wait` waiters when a
/// descriptor's readiness changes, makes uk-vfs's blocking calls wait where a signal
/// ends them ([`vfs_wait`]), gives uk-vfs's timerfds and file times the layer's clocks,
/// and mounts a procfs showing the layer's processes on `/proc` (`system/procfs.rs`; a
/// second call finds it mounted and leaves it): what [`install`] does with the `vfs`
/// feature. Call it before the program makes its first pipe.
#[cfg(feature = "vfs")]
pub fn connect_vfs() {
    uk_vfs::global::vfs().set_max_fds_source(nofile_limit);
    // Record locks report the process holding them (F_GETLK's l_pid).
    uk_vfs::global::vfs().set_pid_source(getpid);
    // Pipes, eventfds and flock locks made from now on wait in the layer's futex table,
    // where a signal for the waiting thread ends the wait (EINTR, or a restart with
    // SA_RESTART) and the process's timers are kept.
    uk_vfs::wait::set_wait_factory(vfs_wait::VfsWait::for_image);
    // A pipe's, eventfd's or epoll set's readiness changed: every thread waiting in poll,
    // select or epoll_wait looks again.
    uk_vfs::set_readiness_hook(|| {
        SYSTEM.wake_pollers();
    });
    // Timerfds read the layer's clocks (those of clock_gettime); every wait of the layer
    // also ends at their deadlines (see futex's block_queued).
    uk_vfs::timerfd::set_time_source(&ImageClocks);
    // Pidfds ask whether their process is alive.
    uk_vfs::pidfd::set_process_source(&pidfd::ImageProcesses);
    // Signalfds read the calling thread's pending signals.
    uk_vfs::signalfd::set_signal_source(&ImageSignals);
    // File times (creation, writes, `utimensat`'s UTIME_NOW) are the wall clock's.
    uk_vfs::set_clock(|| {
        let ns = SYSTEM.realtime_ns();
        uk_vfs::Timespec {
            sec: (ns / time::NSEC_PER_SEC) as i64,
            nsec: (ns % time::NSEC_PER_SEC) as u32,
        }
    });
    // /proc shows the layer's processes (uk-vfs's procfs over this System).
    match uk_vfs::global::mount_proc(&SYSTEM) {
        // EBUSY: an earlier call mounted it.
        Ok(()) | Err(Errno::EBUSY) => {}
        Err(e) => log::warn!("uk-posix-process: /proc not mounted: {e:?}"),
    }
}

/// The image layer's signals, as uk-vfs's signalfds take them.
#[cfg(feature = "vfs")]
struct ImageSignals;

#[cfg(feature = "vfs")]
impl uk_vfs::signalfd::SignalSource for ImageSignals {
    fn pending(&self, mask: u64) -> bool {
        SYSTEM.caller_has_pending(mask)
    }
    fn take(&self, mask: u64) -> Option<[u8; uk_vfs::signalfd::SIGINFO_SIZE]> {
        SYSTEM.take_pending(mask).map(|info| info.to_signalfd())
    }
}

/// The image layer's clocks, as uk-vfs's timerfds read them.
#[cfg(feature = "vfs")]
struct ImageClocks;

#[cfg(feature = "vfs")]
impl uk_vfs::timerfd::TimeSource for ImageClocks {
    fn monotonic_ns(&self) -> u64 {
        SYSTEM.monotonic_ns()
    }
    fn realtime_ns(&self) -> u64 {
        SYSTEM.realtime_ns()
    }
}

/// The caller's process id (0 only if no id was left to adopt an unknown caller).
pub fn getpid() -> Pid {
    SYSTEM.getpid().unwrap_or(0)
}

/// The caller's thread id (0 only if no id was left to adopt an unknown caller).
pub fn gettid() -> Tid {
    SYSTEM.gettid().unwrap_or(0)
}

/// The caller's parent process id (0 for the first process).
pub fn getppid() -> Pid {
    SYSTEM.getppid().unwrap_or(0)
}

/// Sets the caller's `clear_child_tid` word; returns its tid.
///
/// # Errors
///
/// `EAGAIN` when an unknown caller cannot be adopted.
pub fn set_tid_address(tidptr: usize) -> Result<Tid, Errno> {
    SYSTEM.set_tid_address(tidptr)
}

/// musl's `__clone(entry, stack, flags, arg, parent_tid, tls, child_tid)` as a direct call:
/// clone with Linux's flag semantics whose child runs `entry(arg)` on `stack` (the top;
/// 0 for a fresh stack of `RLIMIT_STACK` bytes) and exits with its return value.
///
/// # Errors
///
/// As [`System::clone`].
pub fn clone_call(
    entry: fn(usize) -> i32,
    stack: usize,
    flags: u64,
    arg: usize,
    parent_tid: usize,
    tls: usize,
    child_tid: usize,
) -> Result<Tid, Errno> {
    let args = flags::CloneArgs::from_legacy(flags, stack, parent_tid, child_tid, tls);
    SYSTEM.clone(&args, flags::Via::Clone, ChildStart::Call { entry, arg })
}

/// musl's `__clone(entry, stack, flags, arg, parent_tid, tls, child_tid)` for C callers:
/// [`clone_call`] with a C entry function, returning the child's id or `-errno` as C's
/// `__clone` does. A libc built for uk-rs points its `__clone` here (the repository's
/// `examples/musl` replaces musl's `src/thread/<arch>/clone.s` with a jump to it), so
/// `pthread_create` makes no trap. A null `entry` is `-EINVAL`.
// `no_mangle` is the one unsafe attribute here: the symbol name is this crate's own prefix,
// so it cannot collide with another definition.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn uk_clone(
    entry: Option<extern "C" fn(usize) -> i32>,
    stack: usize,
    flags: core::ffi::c_int,
    arg: usize,
    parent_tid: usize,
    tls: usize,
    child_tid: usize,
) -> core::ffi::c_int {
    let Some(entry) = entry else {
        return -Errno::EINVAL.into_raw();
    };
    // C's `int` flags, as the kernel reads them: the low 32 bits.
    let flags = u64::from(flags as u32);
    let args = flags::CloneArgs::from_legacy(flags, stack, parent_tid, child_tid, tls);
    // A way into the layer from C that is not a system call: bracketed as one.
    let state = interrupt::syscall_entered();
    let result = SYSTEM.clone(&args, flags::Via::Clone, ChildStart::CallC { entry, arg });
    interrupt::syscall_leaving(state);
    match result {
        Ok(tid) => tid as core::ffi::c_int,
        Err(errno) => -errno.into_raw(),
    }
}

/// futex(2) on the image's layer.
///
/// # Errors
///
/// As [`System::futex`].
pub fn futex(
    uaddr: usize,
    op: i32,
    val: u32,
    utime: usize,
    uaddr2: usize,
    val3: u32,
) -> Result<usize, Errno> {
    SYSTEM.futex(uaddr, op, val, utime, uaddr2, val3)
}

/// Ends the calling thread (`exit(2)`).
pub fn exit(status: i32) -> ! {
    SYSTEM.exit(status)
}

/// Ends every thread of the caller's process (`exit_group(2)`).
pub fn exit_group(status: i32) -> ! {
    SYSTEM.exit_group(status)
}

/// The `RLIMIT_NOFILE` soft limit of the image: the size the VFS gives its fd table.
pub fn nofile_limit() -> usize {
    SYSTEM.nofile_limit()
}

/// The `RLIMIT_STACK` soft limit: the stack size of a new thread that brings none.
pub fn stack_limit() -> usize {
    SYSTEM
        .getrlimit(rlimit::RLIMIT_STACK)
        .map_or(uk_sched::DEFAULT_STACK_SIZE, |r| {
            usize::try_from(r.rlim_cur).unwrap_or(usize::MAX)
        })
}
