//! Every combination of the clone flag table, against a model written from the reference
//! table (§3) and Linux's rules, on the pure validator and on a running System.

mod common;

use proptest::prelude::*;
use uk_posix_process::Errno;
use uk_posix_process::flags::*;

/// Flags with rules of their own: every subset of these is tried.
const RULED: [u64; 14] = [
    CLONE_VM,
    CLONE_FS,
    CLONE_FILES,
    CLONE_SIGHAND,
    CLONE_THREAD,
    CLONE_CLEAR_SIGHAND,
    CLONE_PIDFD,
    CLONE_DETACHED,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    CLONE_SETTLS,
    CLONE_PARENT_SETTID,
    CLONE_CHILD_SETTID,
    CLONE_CHILD_CLEARTID,
];

/// The rest of the table: each is added alone to every subset above.
const OTHERS: [u64; 12] = [
    CLONE_PTRACE,
    CLONE_VFORK,
    CLONE_PARENT,
    CLONE_SYSVSEM,
    CLONE_UNTRACED,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWPID,
    CLONE_NEWNET,
    CLONE_IO,
    CLONE_INTO_CGROUP,
];

fn subset(bits: &[u64], mask: u32) -> u64 {
    bits.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, b)| *b)
        .fold(0, |a, b| a | b)
}

/// What Linux and the reference table say about `f`.
fn model(f: u64, via: Via) -> Result<(), Errno> {
    let has = |b: u64| f & b == b;
    let any = |b: u64| f & b != 0;
    let namespaces = CLONE_NEWNS
        | CLONE_NEWCGROUP
        | CLONE_NEWUTS
        | CLONE_NEWIPC
        | CLONE_NEWUSER
        | CLONE_NEWPID
        | CLONE_NEWNET;
    let unsupported = CLONE_PTRACE | CLONE_VFORK | CLONE_UNTRACED | CLONE_IO | CLONE_INTO_CGROUP;
    let defined = 0x1_ffff_ff00u64 | CLONE_INTO_CGROUP;
    let einval = f & !defined != 0
        || (via == Via::Clone && f >> 32 != 0)
        || (via == Via::Clone && has(CLONE_PIDFD | CLONE_PARENT_SETTID))
        || (via == Via::Clone3 && any(CLONE_DETACHED))
        || has(CLONE_NEWNS | CLONE_FS)
        || has(CLONE_NEWUSER | CLONE_FS)
        || (any(CLONE_THREAD) && !any(CLONE_SIGHAND))
        || (any(CLONE_SIGHAND) && !any(CLONE_VM))
        || has(CLONE_SIGHAND | CLONE_CLEAR_SIGHAND)
        || (any(CLONE_PIDFD) && any(CLONE_DETACHED | CLONE_THREAD))
        || any(namespaces);
    if einval {
        return Err(Errno::EINVAL);
    }
    if any(unsupported) || !has(CLONE_VM | CLONE_FS | CLONE_FILES) {
        return Err(Errno::ENOSYS);
    }
    Ok(())
}

fn args(flags: u64) -> CloneArgs {
    CloneArgs {
        flags,
        parent_tid: 0x1000_0000,
        child_tid: 0x2000_0000,
        tls: 0x3000_0000,
        ..CloneArgs::default()
    }
}

fn check(flags: u64) {
    for via in [Via::Clone, Via::Clone3] {
        let got = args(flags).validate(via);
        assert_eq!(
            got.map(|_| ()),
            model(flags, via),
            "flags {flags:#x} via {via:?}"
        );
        if let Ok(plan) = got {
            assert_eq!(plan.thread, flags & CLONE_THREAD != 0);
            assert_eq!(plan.tls, (flags & CLONE_SETTLS != 0).then_some(0x3000_0000));
            assert_eq!(
                plan.parent_settid,
                (flags & CLONE_PARENT_SETTID != 0).then_some(0x1000_0000)
            );
            assert_eq!(
                plan.child_settid,
                (flags & CLONE_CHILD_SETTID != 0).then_some(0x2000_0000)
            );
            assert_eq!(
                plan.child_cleartid,
                (flags & CLONE_CHILD_CLEARTID != 0).then_some(0x2000_0000)
            );
        }
    }
}

#[test]
fn every_combination_of_the_table() {
    let mut accepted = 0;
    for mask in 0..1u32 << RULED.len() {
        let base = subset(&RULED, mask);
        check(base);
        if args(base).validate(Via::Clone).is_ok() {
            accepted += 1;
        }
        for other in OTHERS {
            check(base | other);
        }
    }
    // VM|FS|FILES, then SIGHAND/THREAD (3 valid ways: none, SIGHAND, both;
    // CLEAR_SIGHAND is a clone3-only bit), DETACHED free, four pointer/TLS flags free:
    // 3 * 2 * 16; and with PIDFD (a new process, not DETACHED, and in legacy clone not
    // with PARENT_SETTID, whose argument it takes): 2 * 8.
    assert_eq!(accepted, 96 + 16);
}

#[test]
fn table_covers_every_flag_once() {
    let mut seen = 0u64;
    for row in FLAG_TABLE {
        assert_eq!(row.bit.count_ones(), 1, "{}", row.name);
        assert_eq!(seen & row.bit, 0, "{} twice", row.name);
        seen |= row.bit;
    }
    assert_eq!(seen, KNOWN_FLAGS);
    assert_eq!(PTHREAD_FLAGS & !KNOWN_FLAGS, 0);
    assert!(args(PTHREAD_FLAGS).validate(Via::Clone).is_ok());
}

#[test]
fn clone3_struct_rules() {
    let mut bytes = vec![0u8; CLONE_ARGS_SIZE_VER2];
    bytes[..8].copy_from_slice(&PTHREAD_FLAGS.to_ne_bytes());
    assert_eq!(CloneArgs::from_clone3(&bytes[..63]), Err(Errno::EINVAL));
    let parsed = CloneArgs::from_clone3(&bytes[..CLONE_ARGS_SIZE_VER0]).unwrap();
    assert_eq!(parsed.flags, PTHREAD_FLAGS);
    let mut big = bytes.clone();
    big.resize(200, 0);
    assert!(CloneArgs::from_clone3(&big).is_ok(), "zero tail accepted");
    big[150] = 1;
    assert_eq!(CloneArgs::from_clone3(&big), Err(Errno::E2BIG));
    assert_eq!(CloneArgs::from_clone3(&vec![0; 4097]), Err(Errno::E2BIG));
    // stack and stack_size go together; the child starts at stack + stack_size.
    let a = CloneArgs {
        flags: PTHREAD_FLAGS,
        stack: 0x10000,
        ..CloneArgs::default()
    };
    assert_eq!(a.validate(Via::Clone3), Err(Errno::EINVAL));
    let a = CloneArgs {
        stack_size: 0x1000,
        ..a
    };
    assert_eq!(a.validate(Via::Clone3).unwrap().stack_top, Some(0x11000));
    // exit_signal must be a signal number; set_tid is unsupported; cgroup needs its flag.
    assert_eq!(
        CloneArgs {
            exit_signal: 65,
            ..a
        }
        .validate(Via::Clone3),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        CloneArgs {
            set_tid: 0x5000,
            set_tid_size: 1,
            ..a
        }
        .validate(Via::Clone3),
        Err(Errno::ENOSYS)
    );
    assert_eq!(
        CloneArgs {
            set_tid_size: 1,
            ..a
        }
        .validate(Via::Clone3),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        CloneArgs { cgroup: 3, ..a }.validate(Via::Clone3),
        Err(Errno::EINVAL)
    );
}

#[test]
fn legacy_clone_takes_exit_signal_from_low_byte() {
    let a = CloneArgs::from_legacy(CLONE_VM | CLONE_FS | CLONE_FILES | 17, 0, 0, 0, 0);
    assert_eq!(a.flags, CLONE_VM | CLONE_FS | CLONE_FILES);
    assert_eq!(a.validate(Via::Clone).unwrap().exit_signal, 17);
}

proptest! {
    #[test]
    fn random_flags_agree_with_model(flags in any::<u64>()) {
        for via in [Via::Clone, Via::Clone3] {
            prop_assert_eq!(args(flags).validate(via).map(|_| ()), model(flags, via));
        }
    }
}

/// Every subset of the ruled flags on a running System: a refused one changes nothing
/// (no thread, no id, no write through parent_tid), an accepted one makes exactly one child
/// that sees its tid in place.
#[test]
fn every_combination_on_a_running_system() {
    use std::cell::Cell;
    use std::rc::Rc;
    use uk_posix_process::rlimit::{RLIM_INFINITY, RLIMIT_STACK};
    use uk_posix_process::{ChildStart, Rlimit};

    /// pidfds of this world's children (`CLONE_PIDFD`) need a process source; whether
    /// their process lives is not what this test looks at.
    struct AnyAlive;
    impl uk_vfs::pidfd::ProcessSource for AnyAlive {
        fn alive(&self, _: i32) -> bool {
            true
        }
    }
    uk_vfs::pidfd::set_process_source(&AnyAlive);

    let w = common::world();
    w.sys
        .setrlimit(
            RLIMIT_STACK,
            Rlimit {
                rlim_cur: 32 * 1024,
                rlim_max: RLIM_INFINITY,
            },
        )
        .unwrap();
    let sys = w.sys;
    let children = Rc::new(Cell::new(0u32));
    let c = children.clone();
    let status = w.run(move || {
        let ptid = common::word(0);
        let ctid = common::word(0);
        let mut expected_children = 0;
        for mask in 0..1u32 << RULED.len() {
            let flags = subset(&RULED, mask);
            let (threads, ids) = (sys.thread_count(), sys.ids_in_use());
            ptid.store(0xAAAA, std::sync::atomic::Ordering::SeqCst);
            ctid.store(0xBBBB, std::sync::atomic::Ordering::SeqCst);
            let a = CloneArgs {
                flags,
                // Legacy clone's one argument for both (`CloneArgs::from_legacy`).
                pidfd: common::addr(ptid),
                parent_tid: common::addr(ptid),
                child_tid: common::addr(ctid),
                ..CloneArgs::default()
            };
            let c2 = c.clone();
            let (entry, arg) = common::boxed(move || {
                c2.set(c2.get() + 1);
                0
            });
            let got = sys.clone(&a, Via::Clone, ChildStart::Call { entry, arg });
            assert_eq!(
                got.map(|_| ()),
                model(flags, Via::Clone),
                "flags {flags:#x}"
            );
            match got {
                Err(_) => {
                    // Nothing changed. (The boxed closure leaks; it never ran.)
                    assert_eq!((sys.thread_count(), sys.ids_in_use()), (threads, ids));
                    assert_eq!(ptid.load(std::sync::atomic::Ordering::SeqCst), 0xAAAA);
                    assert_eq!(ctid.load(std::sync::atomic::Ordering::SeqCst), 0xBBBB);
                }
                Ok(tid) => {
                    expected_children += 1;
                    let want_p = if flags & CLONE_PARENT_SETTID != 0 {
                        tid as u32
                    } else if flags & CLONE_PIDFD != 0 {
                        // The parent's pidfd of the child, through the same argument.
                        let fd = ptid.load(std::sync::atomic::Ordering::SeqCst) as i32;
                        let vfs = uk_vfs::global::vfs();
                        assert_eq!(vfs.pidfd_target(fd).map(|(pid, _)| pid), Ok(tid));
                        assert_eq!(vfs.fcntl(fd, uk_vfs::F_GETFD, 0), Ok(1), "close-on-exec");
                        vfs.close(fd).unwrap();
                        fd as u32
                    } else {
                        0xAAAA
                    };
                    let want_c = if flags & CLONE_CHILD_SETTID != 0 {
                        tid as u32
                    } else {
                        0xBBBB
                    };
                    assert_eq!(ptid.load(std::sync::atomic::Ordering::SeqCst), want_p);
                    assert_eq!(ctid.load(std::sync::atomic::Ordering::SeqCst), want_c);
                    assert_eq!(sys.thread_count(), threads + 1);
                    let same_process = sys.threads_of(sys.getpid().unwrap()).contains(&tid);
                    assert_eq!(same_process, flags & CLONE_THREAD != 0);
                    while sys.thread_count() > threads {
                        uk_sched::yield_now();
                    }
                    if flags & CLONE_THREAD == 0 {
                        // A child process keeps its pid as a zombie until waited for.
                        assert!(sys.is_zombie(tid));
                        let reaped = sys.wait4(tid, uk_posix_process::wait::WALL);
                        assert_eq!(reaped.unwrap().map(|r| r.pid), Some(tid));
                    }
                    assert_eq!(sys.ids_in_use(), ids, "the child's ids were recycled");
                }
            }
        }
        assert_eq!(c.get(), expected_children);
        0
    });
    assert_eq!(status, Some(0));
    assert_eq!(
        children.get(),
        96 + 16,
        "children that ran (as accepted by the pure validator)"
    );
}
