//! In-image test cases (feature `ktest`): a pthread-style create and join built from raw
//! clone (`PTHREAD_FLAGS`: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM, SETTLS, PARENT_SETTID,
//! CHILD_CLEARTID) and a futex wait on the tid word, once through direct calls and once
//! through the real trap instruction (`syscall` / `svc #0`), compared with each other;
//! signals through the trap, and a `SA_ONSTACK` handler on the alternate stack.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use uk_context::{ContextOps, Native, TcbSpec, TlsLayout};
use uk_hal::Platform;
use uk_sched::{RoundRobin, idle};
use uk_syscall::Sysno;

use crate::flags::PTHREAD_FLAGS;
use crate::{FUTEX_PRIVATE_FLAG, FUTEX_WAIT, System, system};

/// Status the exit hook saw (+1; 0 = not called).
static EXIT_SEEN: AtomicU32 = AtomicU32::new(0);

/// Runs `main` as the first thread of a new process on a fresh scheduler until every
/// thread ended; returns the status the exit hook saw, if it was called.
fn run_process(sys: &'static System, main: fn(usize) -> i32, arg: usize) -> Option<u8> {
    let sched: &'static RoundRobin<Native, &'static dyn Platform> = Box::leak(Box::new(
        RoundRobin::cooperative(Native::detect(), uk_rt::platform(), idle::Poll).with_cpu_time(),
    ));
    EXIT_SEEN.store(0, Ordering::SeqCst);
    sys.set_host(Some(sched));
    sys.set_exit_hook(|status| EXIT_SEEN.store(u32::from(status) + 1, Ordering::SeqCst));
    let spawned = sys.spawn_process("ktest-main", main, arg);
    uk_test::expect!(spawned.is_ok());
    uk_sched::Scheduler::run(sched);
    sys.set_host(None);
    sys.set_exit_hook(crate::host::default_exit);
    match EXIT_SEEN.load(Ordering::SeqCst) {
        0 => None,
        n => Some((n - 1) as u8),
    }
}

/// A TLS block for a child, built from the image's TLS template like a libc's
/// pthread_create does; returns (block, thread pointer).
fn tls_block() -> (Vec<u128>, usize) {
    let template = uk_context::tls::image_template().expect("image TLS template");
    let layout = TlsLayout::new(Native::TLS_VARIANT, &template, TcbSpec::of::<[usize; 8]>())
        .expect("layout");
    let mut block = vec![0u128; layout.alloc_layout().size().div_ceil(16) + 1];
    // SAFETY: the vector holds at least `layout.size` bytes, 16-aligned (the layouts of
    // this template ask no more; checked below).
    let area =
        unsafe { core::slice::from_raw_parts_mut(block.as_mut_ptr().cast::<u8>(), layout.size) };
    assert!(layout.alloc_layout().align() <= 16);
    let tp = layout.init(&template, area).expect("tls init");
    (block, tp)
}

/// What a child saw: tid, pid, the thread pointer in the CPU, the tid word, done flag.
#[derive(Default)]
struct Seen {
    tid: AtomicUsize,
    pid: AtomicUsize,
    tp: AtomicUsize,
    word: AtomicUsize,
    /// A callee-saved register of the parent at the trap (r12 / x20), as the child found it.
    register: AtomicUsize,
}

/// One pthread-style run's inputs and outputs (shared with the child by address).
struct Join {
    /// The process layer the run uses (the image's for the trap; a fresh one for direct
    /// calls, so a failure elsewhere cannot leak into the direct run).
    sys: &'static System,
    /// Both `parent_tid` and `child_tid`, as glibc's pthread `tid` field.
    tid_word: AtomicU32,
    tls: usize,
    seen: Seen,
    /// Results for the comparison of the two paths.
    clone_ret: AtomicUsize,
    parent_pid: AtomicUsize,
    wait_rets: AtomicUsize,
}

const CHILD_STATUS: i32 = 42;
const STACK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Direct calls

fn child_direct(join: usize) -> i32 {
    // SAFETY: `join` is the address of the `Join` the parent keeps alive until the join.
    let join = unsafe { &*(join as *const Join) };
    let (tid, pid) = (join.sys.gettid(), join.sys.getpid());
    join.seen
        .tid
        .store(tid.unwrap_or(0) as usize, Ordering::SeqCst);
    join.seen
        .pid
        .store(pid.unwrap_or(0) as usize, Ordering::SeqCst);
    join.seen
        .tp
        .store(Native::detect().thread_pointer(), Ordering::SeqCst);
    join.seen.word.store(
        join.tid_word.load(Ordering::SeqCst) as usize,
        Ordering::SeqCst,
    );
    uk_sched::yield_now();
    CHILD_STATUS
}

fn main_direct(join: usize) -> i32 {
    // SAFETY: as in `child_direct`: the test keeps the `Join` alive over the run.
    let j = unsafe { &*(join as *const Join) };
    let stack: Vec<u128> = vec![0; STACK / 16];
    let top = stack.as_ptr() as usize + STACK;
    let word = &j.tid_word as *const AtomicU32 as usize;
    let args = crate::flags::CloneArgs::from_legacy(PTHREAD_FLAGS, top, word, word, j.tls);
    let start = crate::ChildStart::Call {
        entry: child_direct,
        arg: join,
    };
    let tid = j.sys.clone(&args, crate::flags::Via::Clone, start);
    let Ok(tid) = tid else {
        return 1;
    };
    j.clone_ret.store(tid as usize, Ordering::SeqCst);
    j.parent_pid
        .store(j.sys.getpid().unwrap_or(0) as usize, Ordering::SeqCst);
    // pthread_join: wait while the tid word holds the tid.
    let mut waits = 0;
    loop {
        let v = j.tid_word.load(Ordering::SeqCst);
        if v == 0 {
            break;
        }
        let r = j
            .sys
            .futex(word, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, v, 0, 0, 0);
        waits += usize::from(r == Ok(0));
    }
    j.wait_rets.store(waits, Ordering::SeqCst);
    drop(stack);
    0
}

// ---------------------------------------------------------------------------------------
// The trap instruction

/// A syscall through the trap instruction.
///
/// # Safety
///
/// The call's arguments must be valid for syscall `n` (pointers to live memory).
#[cfg(target_arch = "x86_64")]
unsafe fn trap(n: Sysno, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the `syscall` entry preserves every register but rax, rcx and r11 (declared)
    // and the red zone; the caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as usize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}

/// A syscall through the trap instruction.
///
/// # Safety
///
/// The call's arguments must be valid for syscall `n` (pointers to live memory).
#[cfg(target_arch = "aarch64")]
unsafe fn trap(n: Sysno, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: `svc #0` preserves every register but x0 (the result); the caller vouches
    // for the arguments.
    unsafe {
        core::arch::asm!(
            "svc #0",
            in("x8") n as usize,
            inlateout("x0") a[0] => ret,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
        );
    }
    ret
}

/// clone through the trap, musl-style: the parent gets the child's tid; the child resumes
/// here with 0 on `stack` (where `f` and `arg` wait), calls `f(arg)` and exits through the
/// trap with its return value.
///
/// # Safety
///
/// `stack` is the 16-aligned top of memory the child may use; the pointers are valid.
#[cfg(target_arch = "x86_64")]
unsafe fn trap_clone(
    flags: u64,
    stack: usize,
    ptid: usize,
    ctid: usize,
    tls: usize,
    f: extern "C" fn(usize, usize) -> i32,
    arg: usize,
) -> isize {
    let sp = stack - 16;
    // SAFETY: the two words below the stack top belong to the child's stack.
    unsafe {
        (sp as *mut usize).write(f as usize);
        ((sp + 8) as *mut usize).write(arg);
    }
    let ret: isize;
    // SAFETY: the parent path is a plain syscall (rax, rcx, r11 clobbered); the child path
    // never returns into compiled code: it runs on its own stack and ends with exit.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "pop rax",
            "pop rdi",
            "mov rsi, r12",
            "call rax",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const Sysno::exit as usize,
            inlateout("rax") Sysno::clone as usize => ret,
            in("rdi") flags, in("rsi") sp, in("rdx") ptid, in("r10") ctid, in("r8") tls,
            in("r12") MARKER,
            lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}

/// clone through the trap (aarch64 argument order: flags, stack, ptid, tls, ctid).
///
/// # Safety
///
/// As the x86_64 version.
#[cfg(target_arch = "aarch64")]
unsafe fn trap_clone(
    flags: u64,
    stack: usize,
    ptid: usize,
    ctid: usize,
    tls: usize,
    f: extern "C" fn(usize, usize) -> i32,
    arg: usize,
) -> isize {
    let sp = stack - 16;
    // SAFETY: the two words below the stack top belong to the child's stack.
    unsafe {
        (sp as *mut usize).write(f as usize);
        ((sp + 8) as *mut usize).write(arg);
    }
    let ret: isize;
    // SAFETY: the parent path is a plain `svc` (x0 is the result); the child path never
    // returns into compiled code: it runs on its own stack and ends with exit.
    unsafe {
        core::arch::asm!(
            "svc #0",
            "cbnz x0, 2f",
            "ldp x9, x0, [sp], #16",
            "mov x1, x20",
            "blr x9",
            "mov x8, #{exit}",
            "svc #0",
            "brk #1",
            "2:",
            exit = const Sysno::exit as usize,
            in("x8") Sysno::clone as usize,
            inlateout("x0") flags as usize => ret,
            in("x1") sp, in("x2") ptid, in("x3") tls, in("x4") ctid,
            in("x20") MARKER,
            lateout("x9") _, lateout("x30") _,
        );
    }
    ret
}

/// Left in a callee-saved register across the clone trap; the child must find it there
/// (Linux copies the parent's registers; Unikraft 0.11 zeroes them, #823).
const MARKER: usize = 0x5a5a_1234_c0de_0042;

extern "C" fn child_trap(join: usize, register: usize) -> i32 {
    // SAFETY: `join` is the address of the `Join` the parent keeps alive until the join.
    let join = unsafe { &*(join as *const Join) };
    join.seen.register.store(register, Ordering::SeqCst);
    // SAFETY: syscalls without pointer arguments.
    let (tid, pid) = unsafe { (trap(Sysno::gettid, [0; 6]), trap(Sysno::getpid, [0; 6])) };
    join.seen.tid.store(tid as usize, Ordering::SeqCst);
    join.seen.pid.store(pid as usize, Ordering::SeqCst);
    join.seen
        .tp
        .store(Native::detect().thread_pointer(), Ordering::SeqCst);
    join.seen.word.store(
        join.tid_word.load(Ordering::SeqCst) as usize,
        Ordering::SeqCst,
    );
    // SAFETY: no arguments.
    unsafe { trap(Sysno::sched_yield, [0; 6]) };
    CHILD_STATUS
}

fn main_trap(join: usize) -> i32 {
    // SAFETY: as in `child_trap`.
    let j = unsafe { &*(join as *const Join) };
    let stack: Vec<u128> = vec![0; STACK / 16];
    let top = stack.as_ptr() as usize + STACK;
    let word = &j.tid_word as *const AtomicU32 as usize;
    // SAFETY: the stack lives until after the join; the tid word and `Join` live longer.
    let tid = unsafe { trap_clone(PTHREAD_FLAGS, top, word, word, j.tls, child_trap, join) };
    if tid <= 0 {
        j.clone_ret.store(tid as usize, Ordering::SeqCst);
        return 1;
    }
    j.clone_ret.store(tid as usize, Ordering::SeqCst);
    // SAFETY: no arguments.
    j.parent_pid.store(
        unsafe { trap(Sysno::getpid, [0; 6]) } as usize,
        Ordering::SeqCst,
    );
    let mut waits = 0;
    loop {
        let v = j.tid_word.load(Ordering::SeqCst);
        if v == 0 {
            break;
        }
        // SAFETY: the word is live.
        let r = unsafe {
            trap(
                Sysno::futex,
                [
                    word,
                    (FUTEX_WAIT | FUTEX_PRIVATE_FLAG) as usize,
                    v as usize,
                    0,
                    0,
                    0,
                ],
            )
        };
        waits += usize::from(r == 0);
    }
    j.wait_rets.store(waits, Ordering::SeqCst);
    drop(stack);
    0
}

fn new_join(sys: &'static System) -> (Box<Join>, Vec<u128>) {
    let (block, tp) = tls_block();
    let join = Box::new(Join {
        sys,
        tid_word: AtomicU32::new(0),
        tls: tp,
        seen: Seen::default(),
        clone_ret: AtomicUsize::new(0),
        parent_pid: AtomicUsize::new(0),
        wait_rets: AtomicUsize::new(0),
    });
    (join, block)
}

/// Checks one run; returns (clone result, what the child saw) for comparisons.
fn check(j: &Join, status: Option<u8>) -> (usize, usize, usize) {
    let tid = j.clone_ret.load(Ordering::SeqCst);
    uk_test::expect!(tid > 0 && tid < 1 << 22);
    uk_test::expect_eq!(status, Some(0));
    // PARENT_SETTID wrote the tid before the child ran; CHILD_CLEARTID zeroed it.
    uk_test::expect_eq!(j.seen.word.load(Ordering::SeqCst), tid);
    uk_test::expect_eq!(j.tid_word.load(Ordering::SeqCst), 0);
    uk_test::expect_eq!(j.seen.tid.load(Ordering::SeqCst), tid);
    uk_test::expect_eq!(
        j.seen.pid.load(Ordering::SeqCst),
        j.parent_pid.load(Ordering::SeqCst)
    );
    uk_test::expect!(j.seen.pid.load(Ordering::SeqCst) != tid);
    // CLONE_SETTLS: the child ran with the thread pointer of its TLS block.
    uk_test::expect_eq!(j.seen.tp.load(Ordering::SeqCst), j.tls);
    uk_test::expect_eq!(j.sys.thread_count(), 0);
    (
        tid,
        j.seen.pid.load(Ordering::SeqCst),
        j.wait_rets.load(Ordering::SeqCst),
    )
}

uk_test::ktest! {
    /// pthread_create/pthread_join from raw clone (direct call) and futex on the tid word.
    fn pthread_create_join_direct() {
        let sys: &'static System = Box::leak(Box::new(System::new()));
        let (join, _tls) = new_join(sys);
        let status = run_process(sys, main_direct, &*join as *const Join as usize);
        let (_, _, waits) = check(&join, status);
        // The parent really blocked: the child had not run when it first waited.
        uk_test::expect_eq!(waits, 1);
    }
}

uk_test::ktest! {
    /// The same through the trap instruction (syscall / svc #0): the child resumes the
    /// parent's registers with 0 on its stack; results agree with the direct calls.
    fn pthread_create_join_trap() {
        let _ = uk_syscall::install();
        let (direct, _tls) = new_join(system());
        let direct_status = run_process(system(), main_direct, &*direct as *const Join as usize);
        let (_, _, direct_waits) = check(&direct, direct_status);
        let (join, _tls2) = new_join(system());
        let status = run_process(system(), main_trap, &*join as *const Join as usize);
        let (tid, pid, waits) = check(&join, status);
        // Same shape as the direct run: a new tid in the same numbering, the parent's pid,
        // one blocking wait.
        // Ids are handed out cyclically: the trap run's child got a fresh tid.
        uk_test::expect!(tid != direct.clone_ret.load(Ordering::SeqCst));
        uk_test::expect_eq!(pid, join.parent_pid.load(Ordering::SeqCst));
        uk_test::expect_eq!(waits, direct_waits);
        // The child resumed with the parent's registers (only the result and sp differ).
        uk_test::expect_eq!(join.seen.register.load(Ordering::SeqCst), MARKER);
    }
}

uk_test::ktest! {
    /// Bad pointers through the trap are EFAULT, and the kernel stays up.
    fn bad_pointers_through_the_trap_are_efault() {
        let _ = uk_syscall::install();
        let efault = -(uk_syscall::Errno::EFAULT.into_raw() as isize);
        for bad in [0usize, 8, usize::MAX - 15, 1 << 60] {
            // SAFETY: the pointers are bad on purpose; the layer must refuse them.
            unsafe {
                uk_test::expect_eq!(trap(Sysno::uname, [bad, 0, 0, 0, 0, 0]), efault);
                uk_test::expect_eq!(trap(Sysno::clock_gettime, [1, bad, 0, 0, 0, 0]), efault);
                uk_test::expect_eq!(trap(Sysno::getrandom, [bad, 16, 0, 0, 0, 0]), efault);
                // NULL is "no old value" for prlimit64.
                if bad != 0 {
                    uk_test::expect_eq!(trap(Sysno::prlimit64, [0, 3, 0, bad, 0, 0]), efault);
                }
            }
        }
        let mut name = crate::uname();
        // SAFETY: a live utsname.
        let r = unsafe { trap(Sysno::uname, [&raw mut name as usize, 0, 0, 0, 0, 0]) };
        uk_test::expect_eq!(r, 0);
        uk_test::expect_eq!(name, crate::uname());
    }
}

#[cfg(feature = "vfs")]
uk_test::ktest! {
    /// RLIMIT_NOFILE sizes the VFS descriptor table: with the soft limit two above the
    /// descriptors in use, `open` gives EMFILE once no descriptor below it is free, and
    /// works again when the limit is restored.
    fn rlimit_nofile_sizes_the_vfs_descriptor_table() {
        use crate::rlimit::RLIMIT_NOFILE;
        crate::connect_vfs();
        let sys = system();
        let vfs = uk_vfs::global::vfs();
        let old = sys.getrlimit(RLIMIT_NOFILE).expect("get");
        let limit = vfs.open_fds() as u64 + 2;
        let set = sys.setrlimit(RLIMIT_NOFILE, crate::Rlimit { rlim_cur: limit, rlim_max: old.rlim_max });
        uk_test::expect!(set.is_ok());
        let mut opened = Vec::new();
        let mut refused = None;
        for _ in 0..64 {
            match vfs.open("/dev/null", uk_vfs::O_RDONLY, 0) {
                Ok(fd) => opened.push(fd),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        uk_test::expect_eq!(refused, Some(crate::Errno::EMFILE));
        uk_test::expect!(opened.len() >= 2, "{} opened", opened.len());
        uk_test::expect!(opened.iter().all(|fd| u64::try_from(*fd).is_ok_and(|fd| fd < limit)));
        let back = sys.setrlimit(RLIMIT_NOFILE, old);
        uk_test::expect!(back.is_ok());
        let again = vfs.open("/dev/null", uk_vfs::O_RDONLY, 0);
        uk_test::expect!(again.is_ok(), "{again:?}");
        for fd in opened.into_iter().chain(again) {
            let _ = vfs.close(fd);
        }
    }
}

uk_test::ktest! {
    /// RLIMIT_DATA reaches the image allocator: a limit below what is in use makes the
    /// next allocation fail; restoring it makes it work again.
    fn rlimit_data_limits_the_heap() {
        use crate::rlimit::{RLIM_INFINITY, RLIMIT_DATA};
        let sys = system();
        let old = sys.getrlimit(RLIMIT_DATA).expect("get");
        let limit = 64 * 1024;
        let set = sys.setrlimit(RLIMIT_DATA, crate::Rlimit { rlim_cur: limit, rlim_max: old.rlim_max });
        uk_test::expect!(set.is_ok());
        uk_test::expect_eq!(uk_rt::allocator().limit(), Some(limit as usize));
        let layout = core::alloc::Layout::from_size_align(256 * 1024, 16).expect("layout");
        // Through the image allocator itself: `alloc::alloc` pairs may be elided by the
        // optimiser, which would make the check meaningless in a release build.
        let heap = uk_rt::allocator();
        // SAFETY: a non-zero layout; freed below if it unexpectedly succeeds.
        let p = unsafe { core::alloc::GlobalAlloc::alloc(heap, core::hint::black_box(layout)) };
        uk_test::expect!(p.is_null());
        if !p.is_null() {
            // SAFETY: allocated above with this layout.
            unsafe { core::alloc::GlobalAlloc::dealloc(heap, p, layout) };
        }
        let back = sys.setrlimit(RLIMIT_DATA, crate::Rlimit { rlim_cur: RLIM_INFINITY, rlim_max: old.rlim_max });
        uk_test::expect!(back.is_ok());
        uk_test::expect_eq!(uk_rt::allocator().limit(), None);
        // SAFETY: as above.
        let p = unsafe { core::alloc::GlobalAlloc::alloc(heap, core::hint::black_box(layout)) };
        uk_test::expect!(!p.is_null());
        if !p.is_null() {
            // SAFETY: allocated above with this layout.
            unsafe { core::alloc::GlobalAlloc::dealloc(heap, p, layout) };
        }
    }
}

/// The run of `exit_group_ends_every_thread`: how many threads got to block.
static BLOCKED: AtomicUsize = AtomicUsize::new(0);

fn blocked_forever(word: usize) -> i32 {
    BLOCKED.fetch_add(1, Ordering::SeqCst);
    // Nobody ever wakes this word: only exit_group ends the thread.
    let sys = KILL_SYS.load(Ordering::SeqCst);
    // SAFETY: the test stores a leaked `System` before the run.
    let sys = unsafe { &*(sys as *const System) };
    let _ = sys.futex(word, FUTEX_WAIT, 0, 0, 0, 0);
    1
}

fn busy_forever(_: usize) -> i32 {
    BLOCKED.fetch_add(1, Ordering::SeqCst);
    loop {
        uk_sched::yield_now();
    }
}

static KILL_SYS: AtomicUsize = AtomicUsize::new(0);

fn main_exit_group(word: usize) -> i32 {
    // SAFETY: as in `blocked_forever`.
    let sys = unsafe { &*(KILL_SYS.load(Ordering::SeqCst) as *const System) };
    let flags = PTHREAD_FLAGS & !crate::flags::CLONE_SETTLS;
    for entry in [
        blocked_forever as fn(usize) -> i32,
        blocked_forever,
        busy_forever,
    ] {
        let args = crate::flags::CloneArgs::from_legacy(flags, 0, word + 4, 0, 0);
        let start = crate::ChildStart::Call { entry, arg: word };
        if sys.clone(&args, crate::flags::Via::Clone, start).is_err() {
            return 2;
        }
    }
    while BLOCKED.load(Ordering::SeqCst) < 3 {
        uk_sched::yield_now();
    }
    sys.exit_group(23)
}

/// What `main_cpu_time` measured, in nanoseconds: [elapsed while spinning, thread CPU time
/// after spinning, thread CPU time after sleeping, process CPU time, `getrusage` in
/// microseconds].
static CPU_SEEN: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

/// Spins 20 ms, then sleeps 200 ms, reading the CPU-time clocks through the trap.
fn main_cpu_time(_: usize) -> i32 {
    let sys = system();
    let read = |clock: usize| {
        let mut ts = crate::Timespec::default();
        // SAFETY: a live timespec.
        let r = unsafe {
            trap(
                Sysno::clock_gettime,
                [clock, &raw mut ts as usize, 0, 0, 0, 0],
            )
        };
        uk_test::expect_eq!(r, 0);
        ts.to_ns().unwrap_or(0) as usize
    };
    // The spin starts after the first reading (which may build the syscall table) and
    // the elapsed time includes both readings.
    let start = sys.monotonic_ns();
    let before = read(crate::cputime::CLOCK_THREAD_CPUTIME_ID as usize);
    let spin_start = sys.monotonic_ns();
    while sys.monotonic_ns() - spin_start < 20_000_000 {
        core::hint::spin_loop();
    }
    let spun = read(crate::cputime::CLOCK_THREAD_CPUTIME_ID as usize) - before;
    CPU_SEEN[0].store((sys.monotonic_ns() - start) as usize, Ordering::SeqCst);
    CPU_SEEN[1].store(spun, Ordering::SeqCst);
    let _ = sys.nanosleep(crate::Timespec::from_ns(200_000_000));
    CPU_SEEN[2].store(
        read(crate::cputime::CLOCK_THREAD_CPUTIME_ID as usize) - before,
        Ordering::SeqCst,
    );
    CPU_SEEN[3].store(
        read(crate::cputime::CLOCK_PROCESS_CPUTIME_ID as usize),
        Ordering::SeqCst,
    );
    let mut usage = crate::Rusage::default();
    // SAFETY: a live rusage.
    let r = unsafe { trap(Sysno::getrusage, [0, &raw mut usage as usize, 0, 0, 0, 0]) };
    uk_test::expect_eq!(r, 0);
    CPU_SEEN[4].store(
        (usage.ru_utime.tv_sec * 1_000_000 + usage.ru_utime.tv_usec) as usize,
        Ordering::SeqCst,
    );
    CPU_SEEN[5].store(usage.ru_nvcsw as usize, Ordering::SeqCst);
    0
}

uk_test::ktest! {
    /// The CPU-time clocks through the trap: a thread that spins 20 ms has used at least
    /// 20 ms and no more than the time that passed; 200 ms of sleep add less than half of
    /// that (the sleep call's own work counts, and takes milliseconds in a debug build
    /// under TCG); the process clock and getrusage include it, and count the sleep as a
    /// voluntary switch.
    fn cpu_time_counts_running_not_sleeping() {
        let _ = uk_syscall::install();
        let status = run_process(system(), main_cpu_time, 0);
        uk_test::expect_eq!(status, Some(0));
        let seen = CPU_SEEN.each_ref().map(|v| v.load(Ordering::SeqCst));
        let [elapsed, spun, after_sleep, process, rusage_us, voluntary] = seen;
        uk_test::expect!(spun >= 20_000_000 && spun <= elapsed + 1_000_000);
        uk_test::expect!(
            after_sleep >= spun && after_sleep - spun < 100_000_000,
            "{} ns of CPU time after spinning, {} ns after sleeping 200 ms",
            spun,
            after_sleep
        );
        uk_test::expect!(process >= after_sleep);
        // getrusage came last: at least the process clock's reading, in whole microseconds.
        uk_test::expect!(rusage_us * 1000 + 1000 > process);
        uk_test::expect!(voluntary >= 1, "the sleep blocked: {voluntary}");
    }
}

uk_test::ktest! {
    /// exit_group ends threads blocked in futex and threads that never block, and the run
    /// ends with its status through the exit hook.
    fn exit_group_ends_every_thread() {
        let sys: &'static System = Box::leak(Box::new(System::new()));
        KILL_SYS.store(sys as *const System as usize, Ordering::SeqCst);
        BLOCKED.store(0, Ordering::SeqCst);
        let words: &'static [AtomicU32; 2] = Box::leak(Box::new([AtomicU32::new(0), AtomicU32::new(0)]));
        let status = run_process(sys, main_exit_group, words.as_ptr() as usize);
        uk_test::expect_eq!(status, Some(23));
        uk_test::expect_eq!(BLOCKED.load(Ordering::SeqCst), 3);
        uk_test::expect_eq!(sys.thread_count(), 0);
        uk_test::expect_eq!(sys.futex_waiters(words.as_ptr() as usize), 0);
        uk_test::expect_eq!(sys.ids_in_use(), 0);
    }
}

#[cfg(target_arch = "x86_64")]
uk_test::ktest! {
    /// arch_prctl through the `syscall` instruction: ARCH_SET_FS puts the address in the
    /// CPU's FS base at once (read back with RDMSR), ARCH_GET_FS writes it to caller memory,
    /// GS is refused and a bad pointer is EFAULT; the old FS base is put back.
    fn arch_prctl_sets_the_fs_base_through_the_trap() {
        use crate::tls::{ARCH_GET_FS, ARCH_SET_FS, ARCH_SET_GS};
        let _ = uk_syscall::install();
        let ops = Native::detect();
        let before = ops.thread_pointer();
        let block: Box<[u64; 8]> = Box::new([0; 8]);
        let want = block.as_ptr() as usize;
        let mut out = 0u64;
        // SAFETY: arch_prctl's arguments: a code and an address (a live block, or `out`).
        let (set, now, get, gs, fault, restore) = unsafe {
            let set = trap(Sysno::arch_prctl, [ARCH_SET_FS as usize, want, 0, 0, 0, 0]);
            let now = ops.thread_pointer();
            let get = trap(Sysno::arch_prctl, [ARCH_GET_FS as usize, &raw mut out as usize, 0, 0, 0, 0]);
            let gs = trap(Sysno::arch_prctl, [ARCH_SET_GS as usize, want, 0, 0, 0, 0]);
            let fault = trap(Sysno::arch_prctl, [ARCH_GET_FS as usize, 0, 0, 0, 0, 0]);
            let restore = trap(Sysno::arch_prctl, [ARCH_SET_FS as usize, before, 0, 0, 0, 0]);
            (set, now, get, gs, fault, restore)
        };
        uk_test::expect_eq!(set, 0);
        uk_test::expect_eq!(now, want);
        uk_test::expect_eq!(get, 0);
        uk_test::expect_eq!(out, want as u64);
        uk_test::expect_eq!(gs, -(uk_syscall::Errno::EPERM.into_raw() as isize));
        uk_test::expect_eq!(fault, -(uk_syscall::Errno::EFAULT.into_raw() as isize));
        uk_test::expect_eq!(restore, 0);
        uk_test::expect_eq!(ops.thread_pointer(), before);
        drop(block);
    }
}

/// Calls of the signal handler below, and the signal it last saw.
static SIGNAL_CALLS: AtomicUsize = AtomicUsize::new(0);
static SIGNAL_SEEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(sig: i32) {
    SIGNAL_SEEN.store(sig as usize, Ordering::SeqCst);
    SIGNAL_CALLS.fetch_add(1, Ordering::SeqCst);
}

/// The process's main thread for `signals_through_the_trap`: returns 0 when every check
/// passed, else the number of the first one that failed.
fn main_signals(_: usize) -> i32 {
    use crate::signal::{SIG_BLOCK, SIG_UNBLOCK, SIGUSR1, SigAction, sig_bit};
    let calls = || SIGNAL_CALLS.load(Ordering::SeqCst);
    let act = SigAction {
        handler: count_signal as *const () as usize,
        ..SigAction::default()
    }
    .to_raw();
    let set = sig_bit(SIGUSR1);
    let mut pending = 0u64;
    let usr1 = SIGUSR1 as usize;
    // SAFETY: every pointer passed is to a live local of the right size; the handler is a
    // function of this image taking the signal number.
    unsafe {
        let tid = trap(Sysno::gettid, [0; 6]) as usize;
        if trap(
            Sysno::rt_sigaction,
            [usr1, act.as_ptr() as usize, 0, 8, 0, 0],
        ) != 0
        {
            return 1;
        }
        // Raised and handled before tkill returns.
        if trap(Sysno::tkill, [tid, usr1, 0, 0, 0, 0]) != 0 || calls() != 1 {
            return 2;
        }
        // Blocked: pending, then handled by the unblocking call.
        let set_ptr = &raw const set as usize;
        trap(
            Sysno::rt_sigprocmask,
            [SIG_BLOCK as usize, set_ptr, 0, 8, 0, 0],
        );
        trap(Sysno::tkill, [tid, usr1, 0, 0, 0, 0]);
        trap(
            Sysno::rt_sigpending,
            [&raw mut pending as usize, 8, 0, 0, 0, 0],
        );
        if calls() != 1 || pending != set {
            return 3;
        }
        trap(
            Sysno::rt_sigprocmask,
            [SIG_UNBLOCK as usize, set_ptr, 0, 8, 0, 0],
        );
        if calls() != 2 || SIGNAL_SEEN.load(Ordering::SeqCst) != usr1 {
            return 4;
        }
        // The default action of SIGTERM ends the process with 128 + 15.
        trap(Sysno::kill, [0, 15, 0, 0, 0, 0]);
    }
    5
}

uk_test::ktest! {
    /// Signals through the trap instruction: a handler installed with rt_sigaction runs
    /// before tkill returns; blocked, the signal is pending until rt_sigprocmask unblocks
    /// it; SIGTERM's default action ends the process with status 143.
    fn signals_through_the_trap() {
        let _ = uk_syscall::install();
        SIGNAL_CALLS.store(0, Ordering::SeqCst);
        let status = run_process(system(), main_signals, 0);
        uk_test::expect_eq!(status, Some(143));
        uk_test::expect_eq!(SIGNAL_CALLS.load(Ordering::SeqCst), 2);
    }
}

/// The alternate stack of `sigaltstack_and_sa_onstack_through_the_trap` (16-byte aligned).
const ALT_STACK_SIZE: usize = 32 * 1024;

/// What the `SA_ONSTACK` handler saw: the address of one of its locals, `old_ss` of a
/// `sigaltstack` through the trap (its flags), the result of a change tried there, and
/// its context's `uc_stack.ss_sp`.
static ALT_LOCAL: AtomicUsize = AtomicUsize::new(0);
static ALT_OLD_FLAGS: AtomicUsize = AtomicUsize::new(0);
static ALT_CHANGE: AtomicUsize = AtomicUsize::new(0);
static ALT_UC_SP: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_alt_stack(_sig: i32, _info: *mut crate::signal::SigInfo, context: *mut u64) {
    let here = 0u8;
    ALT_LOCAL.store(
        core::hint::black_box(&here) as *const u8 as usize,
        Ordering::SeqCst,
    );
    let mut old = [0u64; 3];
    let off = crate::signal::SigStack::DISABLED.to_words();
    // SAFETY: `old` and `off` are live locals of `stack_t`'s size; the context is the live
    // ucontext_t the layer passes (uc_stack.ss_sp is its word 2).
    unsafe {
        trap(Sysno::sigaltstack, [0, &raw mut old as usize, 0, 0, 0, 0]);
        let change = trap(Sysno::sigaltstack, [off.as_ptr() as usize, 0, 0, 0, 0, 0]);
        ALT_CHANGE.store(change as usize, Ordering::SeqCst);
        ALT_UC_SP.store(*context.add(2) as usize, Ordering::SeqCst);
    }
    ALT_OLD_FLAGS.store(old[1] as usize, Ordering::SeqCst);
}

/// The process's main thread for `sigaltstack_and_sa_onstack_through_the_trap`: sets the
/// alternate stack (the address in `stack`) and a `SA_ONSTACK` handler through the trap,
/// raises the signal; returns 0 when the calls succeeded, else the failing step.
fn main_alt_stack(stack: usize) -> i32 {
    use crate::signal::{MINSIGSTKSZ, SA_ONSTACK, SA_SIGINFO, SIGUSR1, SigAction, SigStack};
    let ss = SigStack {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    }
    .to_words();
    let small = SigStack {
        ss_size: MINSIGSTKSZ - 1,
        ..SigStack::from_words(ss)
    }
    .to_words();
    let act = SigAction {
        handler: on_alt_stack as *const () as usize,
        flags: SA_ONSTACK | SA_SIGINFO,
        ..SigAction::default()
    }
    .to_raw();
    let mut old = [0u64; 3];
    let enomem = -(crate::Errno::ENOMEM.into_raw() as isize);
    // SAFETY: every pointer passed is to a live local of the right size; the alternate
    // stack is the caller's leaked block; the handler is a function of this image with the
    // `SA_SIGINFO` signature.
    unsafe {
        if trap(Sysno::sigaltstack, [small.as_ptr() as usize, 0, 0, 0, 0, 0]) != enomem {
            return 1;
        }
        if trap(
            Sysno::sigaltstack,
            [ss.as_ptr() as usize, &raw mut old as usize, 0, 0, 0, 0],
        ) != 0
            || SigStack::from_words(old) != SigStack::DISABLED
        {
            return 2;
        }
        let usr1 = SIGUSR1 as usize;
        if trap(
            Sysno::rt_sigaction,
            [usr1, act.as_ptr() as usize, 0, 8, 0, 0],
        ) != 0
        {
            return 3;
        }
        let tid = trap(Sysno::gettid, [0; 6]) as usize;
        if trap(Sysno::tkill, [tid, usr1, 0, 0, 0, 0]) != 0 {
            return 4;
        }
        // Back on the thread's stack: the alternate stack is still set, flags 0.
        if trap(Sysno::sigaltstack, [0, &raw mut old as usize, 0, 0, 0, 0]) != 0 || old != ss {
            return 5;
        }
        let off = SigStack::DISABLED.to_words();
        trap(Sysno::sigaltstack, [off.as_ptr() as usize, 0, 0, 0, 0, 0]);
        let default = SigAction::default().to_raw();
        trap(
            Sysno::rt_sigaction,
            [usr1, default.as_ptr() as usize, 0, 8, 0, 0],
        );
    }
    0
}

uk_test::ktest! {
    /// sigaltstack and SA_ONSTACK through the trap instruction: a handler installed with
    /// SA_ONSTACK runs on the alternate stack (a local of it lies there), where
    /// sigaltstack reports SS_ONSTACK and refuses a change with EPERM, and its context's
    /// uc_stack names the stack; a stack below MINSIGSTKSZ is ENOMEM.
    fn sigaltstack_and_sa_onstack_through_the_trap() {
        use crate::signal::SS_ONSTACK;
        let _ = uk_syscall::install();
        let stack: Vec<u128> = vec![0; ALT_STACK_SIZE / 16];
        let base = stack.as_ptr() as usize;
        ALT_LOCAL.store(0, Ordering::SeqCst);
        let status = run_process(system(), main_alt_stack, base);
        uk_test::expect_eq!(status, Some(0));
        let local = ALT_LOCAL.load(Ordering::SeqCst);
        uk_test::expect!(local > base && local < base + ALT_STACK_SIZE, "local {local:#x}, stack {base:#x}");
        uk_test::expect_eq!(ALT_OLD_FLAGS.load(Ordering::SeqCst), SS_ONSTACK as usize);
        uk_test::expect_eq!(
            ALT_CHANGE.load(Ordering::SeqCst) as isize,
            -(crate::Errno::EPERM.into_raw() as isize)
        );
        uk_test::expect_eq!(ALT_UC_SP.load(Ordering::SeqCst), base);
        drop(stack);
    }
}
