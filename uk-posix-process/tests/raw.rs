//! The raw syscall surface through `uk_syscall::dispatch`: fixed cases for the pointer
//! handling (EFAULT, the old rlimit always written), and property tests: random arguments
//! never panic and never corrupt the layer's state.
//!
//! The raw adapters use the image's global `System`. Caller memory is confined to an arena
//! (the address space is set to it), so random pointers can only land there.

use std::sync::Mutex;

use proptest::prelude::*;
use uk_posix_process::rlimit::*;
use uk_posix_process::*;
use uk_syscall::user::AddressSpace;
use uk_syscall::{Sysno, dispatch};

const ARENA: usize = 64 * 1024;

/// The arena's address (leaked, 16-byte aligned) and a lock serialising the tests.
fn arena() -> (usize, std::sync::MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    static BASE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = *BASE.get_or_init(|| {
        let v: &'static mut [u128] = Box::leak(vec![0u128; ARENA / 16].into_boxed_slice());
        let base = v.as_ptr() as usize;
        let mut space = AddressSpace::empty();
        space.add(base, ARENA);
        system().set_address_space(space);
        system().set_data_limit_hook(|_| {});
        base
    });
    (base, guard)
}

fn call(n: Sysno, args: [usize; 6]) -> isize {
    dispatch(n as usize, &args)
}

fn err(e: Errno) -> isize {
    -(e.into_raw() as isize)
}

#[test]
fn pointers_are_checked() {
    let (base, _g) = arena();
    for bad in [0usize, 1, 4095, base - 8, base + ARENA - 4, usize::MAX - 7] {
        assert_eq!(
            call(Sysno::uname, [bad, 0, 0, 0, 0, 0]),
            err(Errno::EFAULT),
            "{bad:#x}"
        );
        assert_eq!(
            call(Sysno::clock_gettime, [1, bad, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::getrlimit, [RLIMIT_STACK as usize, bad, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::setrlimit, [RLIMIT_STACK as usize, bad, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::nanosleep, [bad, 0, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::clone3, [bad, 64, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::getrandom, [bad, 16, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            call(Sysno::sysinfo, [bad, 0, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
    }
    assert_eq!(call(Sysno::sysinfo, [base, 0, 0, 0, 0, 0]), 0);
    // SAFETY: the arena is ours; sysinfo wrote a struct sysinfo at its start, whose
    // mem_unit is at byte 104.
    let unit = unsafe { std::ptr::read_unaligned((base + 104) as *const u32) };
    assert_eq!(unit, 1);
    assert_eq!(call(Sysno::uname, [base, 0, 0, 0, 0, 0]), 0);
    // SAFETY: the arena is ours; uname wrote a utsname at its start.
    let name = unsafe { std::slice::from_raw_parts(base as *const u8, 6) };
    assert_eq!(name, b"Linux\0");
}

#[test]
fn prlimit_writes_old_value_and_changes_nothing_on_error() {
    let (base, _g) = arena();
    let new = base + 256;
    let old = base + 512;
    let put = |at: usize, r: Rlimit| {
        // SAFETY: inside the arena.
        unsafe { std::ptr::write_unaligned(at as *mut Rlimit, r) }
    };
    let get = |at: usize| {
        // SAFETY: inside the arena.
        unsafe { std::ptr::read_unaligned(at as *const Rlimit) }
    };
    let before = system().getrlimit(RLIMIT_DATA).unwrap();
    // Old value of RLIMIT_DATA written (Unikraft 0.11 leaves it unwritten).
    put(
        old,
        Rlimit {
            rlim_cur: 1,
            rlim_max: 2,
        },
    );
    assert_eq!(
        call(Sysno::prlimit64, [0, RLIMIT_DATA as usize, 0, old, 0, 0]),
        0
    );
    assert_eq!(get(old), before);
    // A bad old pointer: EFAULT before anything is applied.
    put(
        new,
        Rlimit {
            rlim_cur: 12345,
            rlim_max: before.rlim_max,
        },
    );
    assert_eq!(
        call(Sysno::prlimit64, [0, RLIMIT_DATA as usize, new, 8, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(system().getrlimit(RLIMIT_DATA).unwrap(), before);
    // soft > hard: EINVAL, old not written.
    put(
        new,
        Rlimit {
            rlim_cur: 10,
            rlim_max: 5,
        },
    );
    put(
        old,
        Rlimit {
            rlim_cur: 1,
            rlim_max: 2,
        },
    );
    assert_eq!(
        call(Sysno::prlimit64, [0, RLIMIT_DATA as usize, new, old, 0, 0]),
        err(Errno::EINVAL)
    );
    assert_eq!(
        get(old),
        Rlimit {
            rlim_cur: 1,
            rlim_max: 2
        }
    );
    // Unknown pid.
    assert_eq!(
        call(
            Sysno::prlimit64,
            [999_999, RLIMIT_DATA as usize, 0, old, 0, 0]
        ),
        err(Errno::ESRCH)
    );
}

#[test]
fn pi_futex_calls_check_the_word_and_the_timeout_pointer() {
    let (base, _g) = arena();
    let pi = |op: i32, uaddr: usize, timeout: usize| {
        call(Sysno::futex, [uaddr, op as usize, 0, timeout, 0, 0])
    };
    for op in [
        FUTEX_LOCK_PI,
        FUTEX_LOCK_PI2,
        FUTEX_TRYLOCK_PI,
        FUTEX_UNLOCK_PI,
    ] {
        for bad in [0usize, 4096, base - 8, base + ARENA, usize::MAX - 3] {
            assert_eq!(pi(op, bad, 0), err(Errno::EFAULT), "{op} {bad:#x}");
        }
        assert_eq!(pi(op, base + 2, 0), err(Errno::EINVAL), "{op}");
    }
    // A word in the arena: the boot context takes it and gives it back.
    let word = base + 256;
    // SAFETY: an aligned word inside the leaked arena, which nothing else uses meanwhile
    // (the arena lock is held).
    let value = |v: Option<u32>| unsafe {
        let p = word as *mut u32;
        if let Some(v) = v {
            p.write_volatile(v);
        }
        p.read_volatile()
    };
    value(Some(0));
    let tid = call(Sysno::gettid, [0; 6]) as u32;
    // A timeout pointer outside the arena is EFAULT before anything is taken.
    assert_eq!(pi(FUTEX_LOCK_PI, word, 8), err(Errno::EFAULT));
    assert_eq!(value(None), 0);
    assert_eq!(pi(FUTEX_LOCK_PI | FUTEX_PRIVATE_FLAG, word, 0), 0);
    assert_eq!(value(None), tid);
    assert_eq!(pi(FUTEX_TRYLOCK_PI, word, 0), err(Errno::EDEADLK));
    assert_eq!(pi(FUTEX_UNLOCK_PI, word, 0), 0);
    assert_eq!(value(None), 0);
    assert_eq!(pi(FUTEX_UNLOCK_PI, word, 0), err(Errno::EPERM));
}

#[test]
fn clone_by_number_without_a_trap_frame() {
    let (_base, _g) = arena();
    // Bad flags are reported as such; good ones need the trap entry's registers.
    assert_eq!(
        call(Sysno::clone, [flags::CLONE_THREAD as usize, 0, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    assert_eq!(
        call(Sysno::clone, [flags::PTHREAD_FLAGS as usize, 0, 0, 0, 0, 0]),
        err(Errno::ENOSYS)
    );
    assert_eq!(call(Sysno::clone3, [0, 8, 0, 0, 0, 0]), err(Errno::EINVAL));
    assert_eq!(
        call(Sysno::clone3, [0, 5000, 0, 0, 0, 0]),
        err(Errno::E2BIG)
    );
}

#[test]
fn signal_calls_check_sizes_and_pointers_before_changing_anything() {
    use uk_posix_process::signal::{SIG_BLOCK, SIGUSR1, SIGUSR2, SigAction, sig_bit};
    let (base, _g) = arena();
    let act = base + 1024;
    let set = base + 2048;
    let ignore = SigAction {
        handler: 1,
        ..SigAction::default()
    };
    // SAFETY: the arena is ours, 64 KiB, aligned.
    unsafe {
        (act as *mut [u8; 32]).write(ignore.to_raw());
        (set as *mut u64).write(sig_bit(SIGUSR2));
    }
    let usr1 = SIGUSR1 as usize;
    // Only an 8-byte sigset.
    assert_eq!(
        call(Sysno::rt_sigaction, [usr1, act, 0, 4, 0, 0]),
        err(Errno::EINVAL)
    );
    assert_eq!(
        call(Sysno::rt_sigprocmask, [0, set, 0, 16, 0, 0]),
        err(Errno::EINVAL)
    );
    assert_eq!(
        call(Sysno::rt_sigpending, [set, 9, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    // A bad old-value pointer fails before the action or mask changes.
    assert_eq!(
        call(Sysno::rt_sigaction, [usr1, act, 8, 8, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(
        call(Sysno::rt_sigaction, [usr1, 8, 0, 8, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(
        system().rt_sigaction(SIGUSR1, None),
        Ok(SigAction::default())
    );
    let how = SIG_BLOCK as usize;
    assert_eq!(
        call(Sysno::rt_sigprocmask, [how, set, 8, 8, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(system().rt_sigprocmask(SIG_BLOCK, None), Ok(0));
    // The good calls, old values written back.
    let old = base + 4096;
    assert_eq!(call(Sysno::rt_sigaction, [usr1, act, old, 8, 0, 0]), 0);
    assert_eq!(call(Sysno::rt_sigaction, [usr1, 0, old, 8, 0, 0]), 0);
    // SAFETY: the arena is ours, and the call wrote 32 bytes there.
    let written = unsafe { *(old as *const [u8; 32]) };
    assert_eq!(SigAction::from_raw(written), ignore);
    assert_eq!(call(Sysno::rt_sigprocmask, [how, set, 0, 8, 0, 0]), 0);
    assert_eq!(call(Sysno::rt_sigprocmask, [how, 0, old, 8, 0, 0]), 0);
    // SAFETY: the arena is ours.
    assert_eq!(unsafe { *(old as *const u64) }, sig_bit(SIGUSR2));
    assert_eq!(call(Sysno::rt_sigpending, [old, 8, 0, 0, 0, 0]), 0);
    // rt_sigsuspend and rt_sigtimedwait: sizes and pointers first.
    assert_eq!(
        call(Sysno::rt_sigsuspend, [set, 4, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    assert_eq!(
        call(Sysno::rt_sigsuspend, [8, 8, 0, 0, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(
        system().rt_sigprocmask(SIG_BLOCK, None),
        Ok(sig_bit(SIGUSR2))
    );
    let me = system().gettid().unwrap() as usize;
    assert_eq!(call(Sysno::tkill, [me, SIGUSR2 as usize, 0, 0, 0, 0]), 0);
    // A zero timespec (do not wait), written here: the property test leaves its writes
    // all over the arena.
    let zero = base + 3072;
    // SAFETY: the arena is ours, and `zero` is 8-byte aligned inside it.
    unsafe { (zero as *mut [i64; 2]).write([0, 0]) };
    for bad in [
        [set, 0, zero, 16, 0, 0],
        [8, 0, zero, 8, 0, 0],
        [set, 8, zero, 8, 0, 0],
        [set, 0, 8, 8, 0, 0],
    ] {
        let want = if bad[3] == 16 {
            Errno::EINVAL
        } else {
            Errno::EFAULT
        };
        assert_eq!(call(Sysno::rt_sigtimedwait, bad), err(want), "{bad:?}");
        // Nothing was taken.
        assert_eq!(system().sigpending(), Ok(sig_bit(SIGUSR2)));
    }
    let info = base + 8192;
    assert_eq!(
        call(Sysno::rt_sigtimedwait, [set, info, zero, 8, 0, 0]),
        SIGUSR2 as isize
    );
    // SAFETY: the arena is ours; the call wrote a siginfo_t (signo first) there.
    assert_eq!(unsafe { *(info as *const i32) }, SIGUSR2);
    assert_eq!(system().sigpending(), Ok(0));
    assert_eq!(
        call(Sysno::rt_sigtimedwait, [set, info, zero, 8, 0, 0]),
        err(Errno::EAGAIN)
    );
    // Restore the defaults for the other tests.
    system()
        .rt_sigaction(SIGUSR1, Some(SigAction::default()))
        .unwrap();
    system()
        .rt_sigprocmask(uk_posix_process::signal::SIG_SETMASK, Some(0))
        .unwrap();
}

#[test]
fn sigaltstack_reads_checks_and_writes_stack_t() {
    use uk_posix_process::signal::{MINSIGSTKSZ, SS_AUTODISARM, SS_DISABLE, SS_ONSTACK, SigStack};
    let (base, _g) = arena();
    let space = || system().address_space();
    let put = |at: usize, s: SigStack| {
        uk_syscall::user::UserPtr::<[u64; 3]>::new(at)
            .write(&space(), s.to_words())
            .unwrap()
    };
    let get = |at: usize| {
        SigStack::from_words(
            uk_syscall::user::UserPtr::<[u64; 3]>::new(at)
                .read(&space())
                .unwrap(),
        )
    };
    let (ss, old) = (base + 128, base + 192);
    // The property test may have left one: start from none.
    system().sigaltstack(Some(SigStack::DISABLED)).unwrap();
    let alt = SigStack {
        ss_sp: base + 16 * 1024,
        ss_flags: SS_AUTODISARM,
        ss_size: MINSIGSTKSZ,
    };
    put(ss, alt);
    put(old, alt);
    // Bad pointers: EFAULT, nothing changed, nothing written.
    assert_eq!(
        call(Sysno::sigaltstack, [8, 0, 0, 0, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(
        call(Sysno::sigaltstack, [ss, base + ARENA - 8, 0, 0, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(system().sigaltstack(None), Ok(SigStack::DISABLED));
    // Bad values: EINVAL, ENOMEM, and EFAULT for a stack outside caller memory.
    for (bad, want) in [
        (SigStack { ss_flags: 4, ..alt }, Errno::EINVAL),
        (
            SigStack {
                ss_size: MINSIGSTKSZ - 1,
                ..alt
            },
            Errno::ENOMEM,
        ),
        (
            SigStack {
                ss_sp: base + ARENA - 1024,
                ..alt
            },
            Errno::EFAULT,
        ),
    ] {
        put(ss, bad);
        assert_eq!(
            call(Sysno::sigaltstack, [ss, old, 0, 0, 0, 0]),
            err(want),
            "{bad:?}"
        );
        assert_eq!(get(old), alt, "old_ss not written");
        assert_eq!(system().sigaltstack(None), Ok(SigStack::DISABLED));
    }
    // Set, then read back: old_ss gets the previous value.
    put(ss, alt);
    assert_eq!(call(Sysno::sigaltstack, [ss, old, 0, 0, 0, 0]), 0);
    assert_eq!(get(old), SigStack::DISABLED);
    assert_eq!(call(Sysno::sigaltstack, [0, old, 0, 0, 0, 0]), 0);
    assert_eq!(get(old), alt);
    // SS_ONSTACK given is taken as 0; SS_DISABLE removes it (size ignored).
    put(
        ss,
        SigStack {
            ss_flags: SS_ONSTACK,
            ..alt
        },
    );
    assert_eq!(call(Sysno::sigaltstack, [ss, 0, 0, 0, 0, 0]), 0);
    assert_eq!(
        system().sigaltstack(None),
        Ok(SigStack { ss_flags: 0, ..alt })
    );
    put(
        ss,
        SigStack {
            ss_sp: 0,
            ss_flags: SS_DISABLE,
            ss_size: 0,
        },
    );
    assert_eq!(call(Sysno::sigaltstack, [ss, old, 0, 0, 0, 0]), 0);
    assert_eq!(get(old).ss_flags, 0);
    assert_eq!(system().sigaltstack(None), Ok(SigStack::DISABLED));
}

#[test]
fn ids_are_root_and_the_affinity_is_cpu_0() {
    let (base, _g) = arena();
    let space = || system().address_space();
    for n in [Sysno::getuid, Sysno::geteuid, Sysno::getgid, Sysno::getegid] {
        assert_eq!(call(n, [0; 6]), 0, "{n:?}");
    }
    assert_eq!(call(Sysno::getgroups, [0, 0, 0, 0, 0, 0]), 0);
    assert_eq!(
        call(Sysno::getgroups, [usize::MAX, 0, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    // getresuid: the three pointers are checked before any is written.
    let ids = [base, base + 4, base + 8];
    uk_syscall::user::UserSlice::new(base, 12)
        .write(&space(), &[0xff; 12])
        .unwrap();
    assert_eq!(
        call(Sysno::getresuid, [ids[0], ids[1], 0, 0, 0, 0]),
        err(Errno::EFAULT)
    );
    let read = |at: usize| {
        uk_syscall::user::UserPtr::<u32>::new(at)
            .read(&space())
            .unwrap()
    };
    assert_eq!(read(ids[0]), u32::MAX, "nothing written");
    assert_eq!(call(Sysno::getresgid, [ids[0], ids[1], ids[2], 0, 0, 0]), 0);
    assert_eq!(ids.map(read), [0; 3]);

    // sched_getaffinity: the mask's size, CPU 0; short or odd lengths and unknown ids
    // refused before anything is written.
    let mask = base + 64;
    uk_syscall::user::UserSlice::new(mask, 8)
        .write(&space(), &[0xee; 8])
        .unwrap();
    let word = || {
        uk_syscall::user::UserPtr::<u64>::new(mask)
            .read(&space())
            .unwrap()
    };
    for (pid, len) in [(0, 4), (0, 12), (0, 0)] {
        assert_eq!(
            call(Sysno::sched_getaffinity, [pid, len, mask, 0, 0, 0]),
            err(Errno::EINVAL),
            "len {len}"
        );
    }
    assert_eq!(
        call(Sysno::sched_getaffinity, [99_999, 8, mask, 0, 0, 0]),
        err(Errno::ESRCH)
    );
    assert_eq!(word(), 0xeeee_eeee_eeee_eeee);
    assert_eq!(
        call(Sysno::sched_getaffinity, [0, 8, 1, 0, 0, 0]),
        err(Errno::EFAULT)
    );
    assert_eq!(call(Sysno::sched_getaffinity, [0, 128, mask, 0, 0, 0]), 8);
    assert_eq!(word(), 1);
    // sched_setaffinity: a set holding CPU 0 is accepted, one without it refused.
    assert_eq!(call(Sysno::sched_setaffinity, [0, 8, mask, 0, 0, 0]), 0);
    uk_syscall::user::UserPtr::<u64>::new(mask)
        .write(&space(), 0b110)
        .unwrap();
    assert_eq!(
        call(Sysno::sched_setaffinity, [0, 8, mask, 0, 0, 0]),
        err(Errno::EINVAL)
    );
}

/// Numbers the property test calls (exit and exit_group end the caller: not here, nor
/// kill, tkill and tgkill, whose default actions end it too).
fn surface() -> Vec<Sysno> {
    let mut v = vec![
        Sysno::getpid,
        Sysno::gettid,
        Sysno::getppid,
        Sysno::set_tid_address,
        Sysno::clone,
        Sysno::clone3,
        Sysno::futex,
        Sysno::getresuid,
        Sysno::sched_getaffinity,
        Sysno::sched_setaffinity,
        Sysno::madvise,
        Sysno::clock_getres,
        Sysno::getrusage,
        Sysno::times,
        Sysno::timer_create,
        Sysno::timer_settime,
        Sysno::timer_gettime,
        Sysno::timer_getoverrun,
        Sysno::timer_delete,
        Sysno::wait4,
        Sysno::waitid,
        Sysno::execve,
        Sysno::prlimit64,
        Sysno::getrlimit,
        Sysno::setrlimit,
        Sysno::uname,
        Sysno::sched_yield,
        Sysno::nanosleep,
        Sysno::clock_nanosleep,
        Sysno::clock_gettime,
        Sysno::mmap,
        Sysno::munmap,
        Sysno::mprotect,
        Sysno::brk,
        Sysno::getrandom,
        Sysno::rt_sigaction,
        Sysno::rt_sigprocmask,
        Sysno::rt_sigpending,
        Sysno::sigaltstack,
        // (No pidfd_send_signal: a random signal through a pidfd of this process would
        // end the test binary, as kill's would.)
        Sysno::pidfd_open,
        Sysno::pidfd_getfd,
        // Outside a scheduler thread these cannot wait: ENOSYS, or a result at once.
        Sysno::rt_sigsuspend,
        Sysno::rt_sigtimedwait,
        Sysno::epoll_pwait,
        Sysno::epoll_pwait2,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([Sysno::fork, Sysno::vfork, Sysno::epoll_wait]);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_arguments_never_panic_or_corrupt(
        picks in proptest::collection::vec((0usize..64, proptest::array::uniform6(0usize..7), proptest::array::uniform6(any::<u16>())), 1..8)
    ) {
        let (base, _g) = arena();
        let sys = system();
        let numbers = surface();
        let pid = sys.getpid().unwrap();
        let tid = sys.gettid().unwrap();
        let fds_before = open_fds();
        for (n, kinds, raw) in picks {
            let n = numbers[n % numbers.len()];
            let mut args = [0usize; 6];
            for i in 0..6 {
                args[i] = match kinds[i] {
                    0 => 0,
                    1 => raw[i] as usize % 64,
                    2 => base + raw[i] as usize % ARENA,
                    3 => base + (raw[i] as usize % (ARENA / 8)) * 8,
                    4 => (raw[i] as usize) << 40,
                    5 => usize::MAX - raw[i] as usize,
                    _ => 1usize << (raw[i] % 64),
                };
            }
            let mask = sys.rt_sigprocmask(0, None).unwrap();
            let r = dispatch(n as usize, &args);
            if matches!(
                n,
                Sysno::rt_sigsuspend | Sysno::rt_sigtimedwait | Sysno::epoll_pwait | Sysno::epoll_pwait2
            ) {
                // Their masks are temporary.
                prop_assert_eq!(sys.rt_sigprocmask(0, None).unwrap(), mask);
            }
            // A value, or a negated errno in -4095..=-1 (never a stray negative).
            prop_assert!(r > -4096, "{n:?}{args:x?} -> {r}");
            // The caller's identity and the process table did not change.
            prop_assert_eq!(sys.getpid().unwrap(), pid);
            prop_assert_eq!(sys.gettid().unwrap(), tid);
            prop_assert_eq!(sys.thread_count(), 1);
            prop_assert_eq!(sys.process_count(), 1);
            // SIGKILL and SIGSTOP are never blocked, whatever was asked.
            let kill_stop = (1u64 << 8) | (1 << 18);
            prop_assert_eq!(sys.rt_sigprocmask(0, None).unwrap() & kill_stop, 0);
            // An alternate stack, if one was set, is big enough and in caller memory.
            let alt = sys.sigaltstack(None).unwrap();
            prop_assert!(
                !alt.is_enabled()
                    || (alt.ss_size >= uk_posix_process::signal::MINSIGSTKSZ
                        && sys.address_space().contains(alt.ss_sp, alt.ss_size)),
                "{alt:x?}"
            );
            for res in 0..RLIM_NLIMITS as u32 {
                let l = sys.getrlimit(res).unwrap();
                prop_assert!(l.rlim_cur <= l.rlim_max);
            }
        }
        // Descriptors the calls opened (pidfds, their copies) go, so cases do not add up.
        for fd in open_fds() {
            if !fds_before.contains(&fd) {
                uk_vfs::global::vfs().close(fd).unwrap();
            }
        }
    }
}

/// The descriptors open in the image's table's first 128 numbers (a case opens at most a
/// few, on the lowest free numbers).
fn open_fds() -> Vec<i32> {
    let vfs = uk_vfs::global::vfs();
    (0..128)
        .filter(|&fd| vfs.fcntl(fd, uk_vfs::F_GETFD, 0).is_ok())
        .collect()
}
