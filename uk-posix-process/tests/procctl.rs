//! Process groups and sessions, scheduling policies, prctl, mlock and getcpu
//! (`uk_posix_process::procctl`), typed and through the raw syscalls.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{boxed, run_main, world};
use uk_posix_process::flags::*;
use uk_posix_process::procctl::*;
use uk_posix_process::{ChildStart, Errno, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use uk_syscall::{Sysno, dispatch};

fn call(f: impl FnOnce() -> i32 + 'static) -> ChildStart {
    let (entry, arg) = boxed(f);
    ChildStart::Call { entry, arg }
}

/// Starts `body` on a new thread of the caller's process (its own 64 KiB stack).
fn spawn_thread(sys: &'static uk_posix_process::System, body: impl FnOnce() -> i32 + 'static) {
    let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    let args = CloneArgs::from_legacy(flags, common::stack(64 << 10), 0, 0, 0);
    sys.clone(&args, Via::Clone, call(body)).unwrap();
}

fn raw(n: Sysno, args: [usize; 6]) -> isize {
    dispatch(n as usize, &args)
}

fn err(e: Errno) -> isize {
    -(e.into_raw() as isize)
}

/// Runs `body` on a scheduler thread of the image's global `System` (the raw calls' one),
/// one test at a time.
fn on_global_system(body: impl FnOnce() -> i32 + 'static) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        common::world_on(uk_posix_process::system()).run(body),
        Some(0)
    );
}

#[test]
fn the_first_process_starts_in_group_and_session_0_and_setsid_leads_a_new_one() {
    run_main(|sys, _| {
        let me = sys.getpid().unwrap();
        assert_eq!(
            (sys.getpgid(0), sys.getsid(0)),
            (Ok(0), Ok(0)),
            "as Linux's init"
        );
        assert_eq!(sys.getpgid(me), Ok(0));
        assert_eq!(sys.getpgid(me + 1000), Err(Errno::ESRCH));
        assert_eq!(sys.getsid(-1), Err(Errno::ESRCH));
        assert_eq!(sys.setpgid(0, -1), Err(Errno::EINVAL));
        assert_eq!(sys.setpgid(me + 1000, 0), Err(Errno::ESRCH));
        assert_eq!(sys.setpgid(0, 4242), Err(Errno::EPERM), "no such group");
        // A group of its own: then it leads a group, and may not start a session.
        assert_eq!(sys.setpgid(0, 0), Ok(()));
        assert_eq!((sys.getpgid(0), sys.getsid(0)), (Ok(me), Ok(0)));
        assert_eq!(sys.setsid(), Err(Errno::EPERM), "a group leader");
        assert_eq!(sys.setpgid(0, me), Ok(()));
    });
}

#[test]
fn setsid_makes_a_session_leader_that_setpgid_cannot_move() {
    run_main(|sys, _| {
        let me = sys.getpid().unwrap();
        assert_eq!(sys.setsid(), Ok(me));
        assert_eq!((sys.getpgid(0), sys.getsid(0)), (Ok(me), Ok(me)));
        assert_eq!(sys.setsid(), Err(Errno::EPERM), "already leads a group");
        assert_eq!(sys.setpgid(0, 0), Err(Errno::EPERM), "a session leader");
    });
}

#[test]
fn children_inherit_the_group_and_setpgid_moves_them_within_the_session() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let me = sys.getpid().unwrap();
        assert_eq!(sys.setsid(), Ok(me));
        let seen = Rc::new(Cell::new((0, 0)));
        let go = Rc::new(Cell::new(false));
        let (s, g) = (seen.clone(), go.clone());
        let a = CloneArgs::from_legacy(CLONE_VM | CLONE_FS | CLONE_FILES | 17, 0, 0, 0, 0);
        let child = sys
            .clone(
                &a,
                Via::Clone,
                call(move || {
                    s.set((sys.getpgid(0).unwrap(), sys.getsid(0).unwrap()));
                    while !g.get() {
                        uk_sched::yield_now();
                    }
                    // In a group of its own it may start a session: no group has its id
                    // once its parent moved it back.
                    assert_eq!(sys.setsid(), Ok(sys.getpid().unwrap()));
                    0
                }),
            )
            .unwrap();
        while seen.get() == (0, 0) {
            uk_sched::yield_now();
        }
        assert_eq!(seen.get(), (me, me), "the creator's group and session");
        assert_eq!(sys.getpgid(child), Ok(me));
        // Into a group of its own, then back into the parent's.
        assert_eq!(sys.setpgid(child, 0), Ok(()));
        assert_eq!(sys.getpgid(child), Ok(child));
        assert_eq!(sys.setpgid(child, 9999), Err(Errno::EPERM));
        assert_eq!(sys.setpgid(child, me), Ok(()));
        go.set(true);
        while sys.process_count() > 1 {
            uk_sched::yield_now();
        }
        0
    });
}

#[test]
fn scheduling_policies_without_priorities_are_kept_and_real_time_ones_refused() {
    run_main(|sys, _| {
        let me = sys.gettid().unwrap();
        assert_eq!(sys.sched_getscheduler(0), Ok(SCHED_OTHER));
        assert_eq!(sys.sched_setscheduler(0, SCHED_BATCH, 0), Ok(()));
        assert_eq!(sys.sched_getscheduler(me), Ok(SCHED_BATCH));
        // Reset-on-fork is accepted and not kept as a policy.
        assert_eq!(
            sys.sched_setscheduler(0, SCHED_IDLE | 0x4000_0000, 0),
            Ok(())
        );
        assert_eq!(sys.sched_getscheduler(0), Ok(SCHED_IDLE));
        for (policy, priority, want) in [
            (SCHED_FIFO, 10, Errno::EPERM),
            (SCHED_RR, 99, Errno::EPERM),
            (SCHED_FIFO, 0, Errno::EINVAL),
            (SCHED_RR, 100, Errno::EINVAL),
            (SCHED_OTHER, 1, Errno::EINVAL),
            (6, 0, Errno::EINVAL),
            (4, 0, Errno::EINVAL),
            (-1, 0, Errno::EINVAL),
        ] {
            assert_eq!(
                sys.sched_setscheduler(0, policy, priority),
                Err(want),
                "{policy} {priority}"
            );
        }
        assert_eq!(
            sys.sched_getscheduler(0),
            Ok(SCHED_IDLE),
            "refusals change nothing"
        );
        assert_eq!(sys.sched_getscheduler(-1), Err(Errno::EINVAL));
        assert_eq!(sys.sched_getscheduler(me + 500), Err(Errno::ESRCH));
        assert_eq!(sys.sched_getparam(0), Ok(0));
        assert_eq!(sys.sched_setparam(0, 0), Ok(()));
        assert_eq!(sys.sched_setparam(0, 3), Err(Errno::EINVAL));
        assert_eq!(sched_get_priority_max(SCHED_FIFO), Ok(99));
        assert_eq!(sched_get_priority_min(SCHED_RR), Ok(1));
        assert_eq!(
            (
                sched_get_priority_max(SCHED_OTHER),
                sched_get_priority_min(SCHED_BATCH)
            ),
            (Ok(0), Ok(0))
        );
        assert_eq!(sched_get_priority_max(9), Err(Errno::EINVAL));
        assert_eq!(sched_get_priority_min(-3), Err(Errno::EINVAL));
    });
}

#[test]
fn prctl_names_threads_and_keeps_the_process_flags() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let name = |sys: &uk_posix_process::System| {
            let mut out = [0xffu8; NAME_LEN];
            assert_eq!(
                sys.prctl(PR_GET_NAME, [out.as_mut_ptr() as usize, 0, 0, 0]),
                Ok(0)
            );
            out
        };
        assert_eq!(&name(sys)[..6], b"uk-rs\0");
        let long = c"a-much-longer-name-than-fits";
        assert_eq!(
            sys.prctl(PR_SET_NAME, [long.as_ptr() as usize, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(&name(sys), b"a-much-longer-n\0", "15 bytes and a NUL");
        assert_eq!(
            sys.prctl(PR_SET_NAME, [c"worker".as_ptr() as usize, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(&name(sys)[..7], b"worker\0");
        // A new thread has its creator's name.
        let theirs = Rc::new(Cell::new([0u8; NAME_LEN]));
        let t = theirs.clone();
        spawn_thread(sys, move || {
            t.set(name(sys));
            0
        });
        while theirs.get()[0] == 0 {
            uk_sched::yield_now();
        }
        assert_eq!(&theirs.get()[..7], b"worker\0");
        assert_eq!(sys.prctl(PR_SET_NAME, [0, 0, 0, 0]), Err(Errno::EFAULT));
        assert_eq!(sys.prctl(PR_GET_NAME, [8, 0, 0, 0]), Err(Errno::EFAULT));
        // The parent-death signal: any signal or none, kept and read back.
        let mut sig = -1i32;
        let at = &mut sig as *mut i32 as usize;
        assert_eq!(
            sys.prctl(PR_SET_PDEATHSIG, [65, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        assert_eq!(sys.prctl(PR_SET_PDEATHSIG, [9, 0, 0, 0]), Ok(0));
        assert_eq!(sys.prctl(PR_GET_PDEATHSIG, [at, 0, 0, 0]), Ok(0));
        assert_eq!(sig, 9);
        assert_eq!(
            sys.prctl(PR_GET_PDEATHSIG, [8, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        // Dumpable, no-new-privileges, timer slack.
        assert_eq!(sys.prctl(PR_GET_DUMPABLE, [0; 4]), Ok(1));
        assert_eq!(sys.prctl(PR_SET_DUMPABLE, [2, 0, 0, 0]), Err(Errno::EINVAL));
        assert_eq!(sys.prctl(PR_SET_DUMPABLE, [0, 0, 0, 0]), Ok(0));
        assert_eq!(sys.prctl(PR_GET_DUMPABLE, [0; 4]), Ok(0));
        assert_eq!(sys.prctl(PR_GET_NO_NEW_PRIVS, [0; 4]), Ok(0));
        assert_eq!(
            sys.prctl(PR_SET_NO_NEW_PRIVS, [2, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sys.prctl(PR_SET_NO_NEW_PRIVS, [1, 1, 0, 0]),
            Err(Errno::EINVAL)
        );
        assert_eq!(sys.prctl(PR_SET_NO_NEW_PRIVS, [1, 0, 0, 0]), Ok(0));
        assert_eq!(sys.prctl(PR_GET_NO_NEW_PRIVS, [0; 4]), Ok(1));
        assert_eq!(
            sys.prctl(PR_GET_NO_NEW_PRIVS, [1, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        assert_eq!(sys.prctl(30, [0; 4]), Ok(50_000), "timer slack");
        assert_eq!(sys.prctl(29, [1000, 0, 0, 0]), Ok(0));
        assert_eq!(sys.prctl(30, [0; 4]), Ok(1000));
        assert_eq!(sys.prctl(29, [0, 0, 0, 0]), Ok(0));
        assert_eq!(sys.prctl(30, [0; 4]), Ok(50_000), "0 is the default again");
        assert_eq!(sys.prctl(0, [0; 4]), Err(Errno::EINVAL));
        assert_eq!(sys.prctl(1000, [0; 4]), Err(Errno::EINVAL));
        0
    });
}

#[test]
fn mlock_succeeds_on_mapped_memory_only() {
    run_main(|sys, _| {
        let m = sys
            .mmap(
                0,
                3 * 4096,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )
            .unwrap();
        // Only the layer's own mappings count as mapped from now on.
        sys.set_address_space(uk_syscall::user::AddressSpace::empty());
        assert_eq!(sys.mlock(m + 10, 2 * 4096, 0), Ok(()));
        assert_eq!(sys.mlock(m, 3 * 4096, 1), Ok(()), "MLOCK_ONFAULT");
        assert_eq!(sys.mlock(m, 4096, 2), Err(Errno::EINVAL));
        assert_eq!(sys.mlock(m, 0, 0), Ok(()));
        assert_eq!(sys.mlock(usize::MAX - 4095, 8192, 0), Err(Errno::EINVAL));
        sys.munmap(m + 4096, 4096).unwrap();
        assert_eq!(sys.mlock(m, 3 * 4096, 0), Err(Errno::ENOMEM), "a hole");
        assert_eq!(sys.mlock(m + 8192, 4096, 0), Ok(()));
        assert_eq!(sys.mlock(0x1000, 4096, 0), Err(Errno::ENOMEM));
        assert_eq!(sys.mlockall(MCL_CURRENT | MCL_FUTURE), Ok(()));
        assert_eq!(sys.mlockall(MCL_CURRENT | MCL_ONFAULT), Ok(()));
        for bad in [0, MCL_ONFAULT, 8, MCL_CURRENT | 16] {
            assert_eq!(sys.mlockall(bad), Err(Errno::EINVAL), "{bad}");
        }
        sys.munmap(m, 3 * 4096).unwrap();
    });
}

#[test]
fn the_raw_calls_check_pointers_and_arguments_in_linux_order() {
    on_global_system(|| {
        let mut param = 0i32;
        let p = &mut param as *mut i32 as usize;
        assert_eq!(
            raw(Sysno::sched_setscheduler, [0, 0, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            raw(Sysno::sched_setscheduler, [0, 0, 8, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        assert_eq!(
            raw(Sysno::sched_setscheduler, [0, usize::MAX, 8, 0, 0, 0]),
            err(Errno::EINVAL),
            "a negative policy before the pointer"
        );
        assert_eq!(
            raw(
                Sysno::sched_setscheduler,
                [0, SCHED_BATCH as usize, p, 0, 0, 0]
            ),
            0
        );
        assert_eq!(raw(Sysno::sched_getscheduler, [0; 6]), SCHED_BATCH as isize);
        assert_eq!(raw(Sysno::sched_setscheduler, [0, 0, p, 0, 0, 0]), 0);
        param = 7;
        assert_eq!(raw(Sysno::sched_getparam, [0, p, 0, 0, 0, 0]), 0);
        assert_eq!(param, 0);
        assert_eq!(
            raw(Sysno::sched_getparam, [0, 0, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            raw(Sysno::sched_setparam, [usize::MAX, p, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        assert_eq!(raw(Sysno::sched_get_priority_max, [1, 0, 0, 0, 0, 0]), 99);
        let (mut cpu, mut node) = (7u32, 7u32);
        let (c, n) = (
            &mut cpu as *mut u32 as usize,
            &mut node as *mut u32 as usize,
        );
        assert_eq!(raw(Sysno::getcpu, [c, n, 0, 0, 0, 0]), 0);
        assert_eq!((cpu, node), (0, 0));
        assert_eq!(raw(Sysno::getcpu, [0, 0, 0, 0, 0, 0]), 0);
        assert_eq!(raw(Sysno::getcpu, [8, 0, 0, 0, 0, 0]), err(Errno::EFAULT));
        let mut name = [0u8; NAME_LEN];
        assert_eq!(
            raw(
                Sysno::prctl,
                [PR_GET_NAME as usize, name.as_mut_ptr() as usize, 0, 0, 0, 0]
            ),
            0
        );
        assert!(name.contains(&0));
        assert_eq!(raw(Sysno::mlockall, [0; 6]), err(Errno::EINVAL));
        assert_eq!(raw(Sysno::munlockall, [0; 6]), 0);
        assert_eq!(raw(Sysno::getsid, [0; 6]), raw(Sysno::getsid, [0; 6]));
        assert!(raw(Sysno::getpgid, [0; 6]) >= 0);
        0
    });
}

#[test]
fn nice_values_are_kept_clamped_and_inherited() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let me = sys.gettid().unwrap();
        assert_eq!(sys.getpriority(PRIO_PROCESS, 0), Ok(0));
        assert_eq!(sys.setpriority(PRIO_PROCESS, 0, 10), Ok(()));
        assert_eq!(sys.getpriority(PRIO_PROCESS, me), Ok(10));
        assert_eq!(sys.setpriority(PRIO_PROCESS, me, 100), Ok(()));
        assert_eq!(sys.getpriority(PRIO_PROCESS, 0), Ok(19), "clamped");
        assert_eq!(sys.setpriority(PRIO_PROCESS, 0, -50), Ok(()));
        assert_eq!(
            sys.getpriority(PRIO_PROCESS, 0),
            Ok(-20),
            "root may lower it"
        );
        sys.setpriority(PRIO_PROCESS, 0, 4).unwrap();
        // A new thread starts with its creator's value; the group and the user (root)
        // name both threads, and report the lowest value.
        let (done, d) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
        let (stop, tid) = (done.clone(), d.clone());
        spawn_thread(sys, move || {
            tid.set(sys.gettid().unwrap());
            assert_eq!(sys.getpriority(PRIO_PROCESS, 0), Ok(4));
            while !stop.get() {
                uk_sched::yield_now();
            }
            0
        });
        while d.get() == 0 {
            uk_sched::yield_now();
        }
        assert_eq!(sys.setpriority(PRIO_PROCESS, d.get(), -3), Ok(()));
        assert_eq!(sys.getpriority(PRIO_USER, 0), Ok(-3));
        assert_eq!(sys.setpriority(PRIO_PGRP, 0, 7), Ok(()));
        assert_eq!(sys.getpriority(PRIO_PROCESS, d.get()), Ok(7));
        assert_eq!(sys.getpriority(PRIO_PROCESS, 0), Ok(7));
        assert_eq!(
            sys.getpriority(PRIO_USER, 1000),
            Err(Errno::ESRCH),
            "only root"
        );
        assert_eq!(sys.getpriority(PRIO_PROCESS, me + 500), Err(Errno::ESRCH));
        assert_eq!(sys.getpriority(PRIO_PGRP, 4242), Err(Errno::ESRCH));
        assert_eq!(sys.setpriority(3, 0, 0), Err(Errno::EINVAL));
        assert_eq!(sys.getpriority(-1, 0), Err(Errno::EINVAL));
        done.set(true);
        0
    });
}

#[test]
fn the_real_time_clock_can_be_set_and_nothing_else() {
    use uk_posix_process::time::{CLOCK_MONOTONIC, CLOCK_REALTIME, Timespec};
    run_main(|sys, _| {
        let at = Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 5,
        };
        assert_eq!(sys.clock_settime(CLOCK_REALTIME, at), Ok(()));
        let now = sys.clock_gettime(CLOCK_REALTIME).unwrap();
        assert!(
            (1_700_000_000..1_700_000_010).contains(&now.tv_sec),
            "{now:?}"
        );
        let mono = sys.clock_gettime(CLOCK_MONOTONIC).unwrap();
        assert_eq!(sys.clock_settime(CLOCK_MONOTONIC, at), Err(Errno::EINVAL));
        assert!(sys.clock_gettime(CLOCK_MONOTONIC).unwrap().tv_sec >= mono.tv_sec);
        for bad in [
            Timespec {
                tv_sec: -1,
                tv_nsec: 0,
            },
            Timespec {
                tv_sec: 1,
                tv_nsec: 1_000_000_000,
            },
        ] {
            assert_eq!(sys.clock_settime(CLOCK_REALTIME, bad), Err(Errno::EINVAL));
        }
        assert!(sys.clock_gettime(CLOCK_REALTIME).unwrap().tv_sec >= 1_700_000_000);
    });
}

#[test]
fn the_raw_priority_clock_and_interval_calls() {
    on_global_system(|| {
        let mut ts = [7i64; 2];
        let p = ts.as_mut_ptr() as usize;
        assert_eq!(raw(Sysno::sched_rr_get_interval, [0, p, 0, 0, 0, 0]), 0);
        assert_eq!(ts, [0, 0]);
        assert_eq!(
            raw(Sysno::sched_rr_get_interval, [usize::MAX, p, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            raw(Sysno::sched_rr_get_interval, [0, 8, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        // getpriority reports 20 - nice, never negative.
        assert_eq!(raw(Sysno::setpriority, [0, 0, 7, 0, 0, 0]), 0);
        assert_eq!(raw(Sysno::getpriority, [0; 6]), 13);
        assert_eq!(raw(Sysno::setpriority, [0, 0, usize::MAX - 49, 0, 0, 0]), 0);
        assert_eq!(raw(Sysno::getpriority, [0; 6]), 40, "-50 clamped to -20");
        assert_eq!(
            raw(Sysno::clock_settime, [1, p, 0, 0, 0, 0]),
            err(Errno::EINVAL)
        );
        assert_eq!(
            raw(Sysno::clock_settime, [0, 8, 0, 0, 0, 0]),
            err(Errno::EFAULT)
        );
        0
    });
}

#[test]
fn membarrier_offers_its_commands_with_linux_registration_rules() {
    run_main(|sys, _| {
        let offered = sys.membarrier(MEMBARRIER_CMD_QUERY, 0).unwrap() as i32;
        for cmd in [
            MEMBARRIER_CMD_GLOBAL,
            MEMBARRIER_CMD_GLOBAL_EXPEDITED,
            MEMBARRIER_CMD_PRIVATE_EXPEDITED,
            MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
            MEMBARRIER_CMD_GET_REGISTRATIONS,
        ] {
            assert_ne!(offered & cmd, 0, "{cmd}");
        }
        assert_eq!(offered & 128, 0, "no rseq");
        assert_eq!(sys.membarrier(MEMBARRIER_CMD_GLOBAL, 0), Ok(0));
        assert_eq!(sys.membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0), Ok(0));
        assert_eq!(
            sys.membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0),
            Err(Errno::EPERM)
        );
        assert_eq!(
            sys.membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0),
            Err(Errno::EPERM)
        );
        assert_eq!(sys.membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS, 0), Ok(0));
        assert_eq!(
            sys.membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0),
            Ok(0)
        );
        assert_eq!(sys.membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0), Ok(0));
        assert_eq!(
            sys.membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS, 0),
            Ok(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED as usize)
        );
        assert_eq!(sys.membarrier(MEMBARRIER_CMD_GLOBAL, 1), Err(Errno::EINVAL));
        assert_eq!(sys.membarrier(128, 0), Err(Errno::EINVAL), "rseq");
        assert_eq!(sys.membarrier(3, 0), Err(Errno::EINVAL));
        assert_eq!(sys.membarrier(-1, 0), Err(Errno::EINVAL));
    });
}
