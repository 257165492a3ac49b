//! Child processes: zombies, exit signals, `wait4` and `waitid` with Linux's rules, and the
//! children's usage in `getrusage(RUSAGE_CHILDREN)` and `times`.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{child_process, on_signal, run_main, spawn, world, world_counting_cpu_time};
use uk_posix_process::cputime::RUSAGE_CHILDREN;
use uk_posix_process::procctl::{PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG};
use uk_posix_process::signal::{
    SA_NOCLDWAIT, SA_RESTART, SIG_BLOCK, SIG_IGN, SIGCHLD, SIGKILL, SIGTERM, SIGUSR1, SIGUSR2,
    SigAction, sig_bit,
};
use uk_posix_process::wait::*;
use uk_posix_process::{Errno, Pid, System};

fn sigchld_child(sys: &'static System, f: impl FnOnce() -> i32 + 'static) -> Pid {
    child_process(sys, SIGCHLD as u64, f)
}

/// Lets every other thread run until none is left runnable but this one (the test's
/// scheduler is cooperative, so a few yields do it).
fn settle() {
    for _ in 0..8 {
        uk_sched::yield_now();
    }
}

fn handler_address(f: extern "C" fn(i32)) -> usize {
    f as usize
}

fn exited(code: u8) -> ExitKind {
    ExitKind::Exited(code)
}

#[test]
fn an_ended_child_is_a_zombie_until_waited_for() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let ids_before = sys.ids_in_use();
        let pid = sigchld_child(sys, || 42);
        settle();
        assert_eq!(sys.process_count(), 1, "the child has ended");
        assert!(sys.is_zombie(pid));
        assert_eq!(sys.ids_in_use(), ids_before + 1, "its pid stays taken");
        assert_eq!(sys.kill(pid as i32, 0), Ok(()), "a zombie still exists");
        assert_eq!(sys.kill(pid as i32, SIGTERM), Ok(()), "and takes no signal");
        let reaped = sys.wait4(-1, 0).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (pid, exited(42)));
        assert_eq!(reaped.how.wait_status(), 42 << 8, "WEXITSTATUS 42");
        assert!(!sys.is_zombie(pid));
        assert_eq!(sys.ids_in_use(), ids_before, "reaping frees the pid");
        assert_eq!(sys.kill(pid as i32, 0), Err(Errno::ESRCH));
        assert_eq!(sys.wait4(-1, 0), Err(Errno::ECHILD), "nothing left");
        0
    });
    assert_eq!(status, Some(0));
    assert_eq!(sys.ids_in_use(), 0);
}

#[test]
fn a_blocking_wait_sleeps_until_the_child_ends_and_wnohang_does_not() {
    run_main(|sys, _| {
        let steps = Rc::new(Cell::new(0));
        let s = steps.clone();
        let pid = sigchld_child(sys, move || {
            for _ in 0..5 {
                s.set(s.get() + 1);
                uk_sched::yield_now();
            }
            7
        });
        assert_eq!(sys.wait4(pid as i32, WNOHANG), Ok(None), "still running");
        assert_eq!(steps.get(), 0, "WNOHANG did not wait");
        let reaped = sys.wait4(pid as i32, 0).unwrap().unwrap();
        assert_eq!(steps.get(), 5, "waited for all of it");
        assert_eq!((reaped.pid, reaped.how), (pid, exited(7)));
    });
}

#[test]
fn wait4_selects_by_pid_and_by_process_group() {
    run_main(|sys, _| {
        let me = sys.getpid().unwrap();
        let a = sigchld_child(sys, || 1);
        let b = sigchld_child(sys, || 2);
        // b leads a group of its own before it ends.
        sys.setpgid(b, b).unwrap();
        settle();
        assert_eq!(sys.wait4(me, 0), Err(Errno::ECHILD), "not a child");
        assert_eq!(sys.wait4(9999, WNOHANG), Err(Errno::ECHILD));
        // Group 0: the caller's own, which only a is in.
        assert_eq!(sys.wait4(0, 0).unwrap().unwrap().pid, a);
        assert_eq!(sys.wait4(0, 0), Err(Errno::ECHILD), "b is in another group");
        assert_eq!(sys.wait4(-(b as i32), 0).unwrap().unwrap().pid, b);
    });
}

#[test]
fn bad_arguments_are_refused_before_anything_is_reaped() {
    run_main(|sys, _| {
        let pid = sigchld_child(sys, || 3);
        settle();
        assert_eq!(sys.wait4(-1, 0x10), Err(Errno::EINVAL), "unknown option");
        assert_eq!(sys.wait4(-1, WNOWAIT), Err(Errno::EINVAL), "waitid's only");
        assert_eq!(sys.wait4(i32::MIN, 0), Err(Errno::ESRCH));
        assert_eq!(
            sys.waitid(P_ALL, 0, WNOHANG),
            Err(Errno::EINVAL),
            "no WEXITED"
        );
        assert_eq!(sys.waitid(P_ALL, 0, WEXITED | 0x10), Err(Errno::EINVAL));
        assert_eq!(sys.waitid(P_PID, 0, WEXITED), Err(Errno::EINVAL));
        assert_eq!(sys.waitid(P_PID, -4, WEXITED), Err(Errno::EINVAL));
        assert_eq!(sys.waitid(P_PGID, -1, WEXITED), Err(Errno::EINVAL));
        assert_eq!(sys.waitid(P_PIDFD, 3, WEXITED), Err(Errno::EBADF));
        assert_eq!(sys.waitid(P_PIDFD, -1, WEXITED), Err(Errno::EINVAL));
        assert_eq!(sys.waitid(7, 0, WEXITED), Err(Errno::EINVAL));
        assert!(sys.is_zombie(pid), "none of these reaped it");
        assert_eq!(sys.wait4(pid as i32, 0).unwrap().unwrap().pid, pid);
    });
}

#[test]
fn waitid_reports_with_siginfo_and_wnowait_leaves_the_zombie() {
    run_main(|sys, _| {
        let pid = sigchld_child(sys, || 9);
        assert_eq!(sys.waitid(P_PID, pid as i32, WEXITED | WNOHANG), Ok(None));
        let seen = sys
            .waitid(P_PID, pid as i32, WEXITED | WNOWAIT)
            .unwrap()
            .unwrap();
        assert_eq!((seen.pid, seen.how), (pid, exited(9)));
        assert!(sys.is_zombie(pid), "WNOWAIT reaps nothing");
        let info = seen.siginfo();
        assert_eq!(
            (info.signo, info.code, info.pid),
            (SIGCHLD, CLD_EXITED, pid)
        );
        assert_eq!(info.value as i32, 9, "si_status");
        // Stopped or continued children never exist: those alone find nothing.
        assert_eq!(
            sys.waitid(P_ALL, 0, WSTOPPED | WCONTINUED | WNOHANG),
            Ok(None)
        );
        let reaped = sys.waitid(P_ALL, 0, WEXITED).unwrap().unwrap();
        assert_eq!(reaped, seen);
        assert!(!sys.is_zombie(pid));
        assert_eq!(sys.waitid(P_ALL, 0, WEXITED), Err(Errno::ECHILD));
    });
}

#[test]
fn a_child_killed_by_a_signal_is_reported_so() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let pid = sigchld_child(sys, move || {
            sys.kill(sys.getpid().unwrap(), SIGTERM).unwrap();
            unreachable!("SIGTERM's default action ends the process")
        });
        let reaped = sys.wait4(-1, 0).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (pid, ExitKind::Killed(SIGTERM)));
        assert_eq!(reaped.how.wait_status(), SIGTERM, "WIFSIGNALED, WTERMSIG");
        assert_eq!(reaped.siginfo().code, CLD_KILLED);
        assert_eq!(reaped.siginfo().value as i32, SIGTERM);
        // A child that calls exit(128 + 15) is a different thing.
        let other = sigchld_child(sys, || 128 + SIGTERM);
        let reaped = sys.wait4(other as i32, 0).unwrap().unwrap();
        assert_eq!(reaped.how, exited(143));
        // The parent's own SIGKILL still ends the run with 128 + 9.
        sys.kill(0, SIGKILL).unwrap();
        unreachable!()
    });
    assert_eq!(status, Some(128 + SIGKILL as u8));
}

#[test]
fn the_exit_signal_reaches_the_parent_with_the_childs_information() {
    run_main(|sys, _| {
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGCHLD)))
            .unwrap();
        let pid = sigchld_child(sys, || 5);
        let info = sys.rt_sigtimedwait(sig_bit(SIGCHLD), None).unwrap();
        assert_eq!(
            (info.signo, info.code, info.pid),
            (SIGCHLD, CLD_EXITED, pid)
        );
        assert_eq!(info.value as i32, 5);
        assert_eq!(info.child_cpu_ticks(), 0);
        // Taking the signal reaps nothing.
        assert_eq!(sys.wait4(-1, 0).unwrap().unwrap().pid, pid);
        // Another exit signal: SIGUSR1, and the child is a "clone" child.
        let clone_child = child_process(sys, SIGUSR1 as u64, || 6);
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR1)))
            .unwrap();
        let info = sys.rt_sigtimedwait(sig_bit(SIGUSR1), None).unwrap();
        assert_eq!((info.signo, info.pid), (SIGUSR1, clone_child));
        assert_eq!(sys.wait4(-1, 0), Err(Errno::ECHILD), "plain waits skip it");
        let reaped = sys.wait4(-1, WCLONE).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (clone_child, exited(6)));
    });
}

/// `CLONE_PARENT` makes the child its creator's sibling: the creator's parent waits for it
/// and is told of its end with the creator's own exit signal, not the one given. The
/// image's init has no parent to share: `EINVAL`, and nothing is made.
#[test]
fn a_clone_parent_child_belongs_to_its_creators_parent() {
    use uk_posix_process::ChildStart;
    use uk_posix_process::flags::{CLONE_FILES, CLONE_FS, CLONE_PARENT, CLONE_VM, CloneArgs, Via};

    fn sibling_of_caller(
        sys: &'static System,
        f: impl FnOnce() -> i32 + 'static,
    ) -> Result<Pid, Errno> {
        let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_PARENT | SIGUSR1 as u64;
        let (entry, arg) = common::boxed(f);
        sys.clone(
            &CloneArgs::from_legacy(flags, 0, 0, 0, 0),
            Via::Clone,
            ChildStart::Call { entry, arg },
        )
    }

    run_main(|sys, _| {
        let main = sys.getpid().unwrap();
        let before = (sys.thread_count(), sys.ids_in_use());
        assert_eq!(
            sibling_of_caller(sys, || 0),
            Err(Errno::EINVAL),
            "from init"
        );
        assert_eq!((sys.thread_count(), sys.ids_in_use()), before);

        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGCHLD) | sig_bit(SIGUSR1)))
            .unwrap();
        let sibling = Rc::new(Cell::new(0));
        let its_parent = Rc::new(Cell::new(0));
        let (s, p) = (sibling.clone(), its_parent.clone());
        let middle = sigchld_child(sys, move || {
            let pid = sibling_of_caller(sys, move || {
                p.set(sys.getppid().unwrap());
                4
            });
            s.set(pid.unwrap());
            0
        });
        settle();
        assert_eq!(its_parent.get(), main, "the creator's parent");
        // Both children are main's, ended with SIGCHLD (the creator's exit signal).
        let mut reaped = [
            sys.wait4(-1, 0).unwrap().unwrap(),
            sys.wait4(-1, 0).unwrap().unwrap(),
        ];
        reaped.sort_by_key(|r| r.pid);
        let mut want = [(middle, exited(0)), (sibling.get(), exited(4))];
        want.sort_by_key(|w| w.0);
        assert_eq!(reaped.map(|r| (r.pid, r.how)), want);
        assert_eq!(sys.sigpending(), Ok(sig_bit(SIGCHLD)), "no SIGUSR1");
    });
}

#[test]
fn clone_children_are_for_wclone_and_wall_waits() {
    run_main(|sys, _| {
        let quiet = child_process(sys, 0, || 1);
        let normal = sigchld_child(sys, || 2);
        settle();
        assert!(sys.is_zombie(quiet), "no exit signal, still a zombie");
        assert_eq!(sys.wait4(quiet as i32, 0), Err(Errno::ECHILD));
        assert_eq!(sys.wait4(normal as i32, WCLONE), Err(Errno::ECHILD));
        assert_eq!(sys.waitid(P_PID, quiet as i32, WEXITED), Err(Errno::ECHILD));
        let mut both = [
            sys.wait4(-1, WALL).unwrap().unwrap().pid,
            sys.wait4(-1, WALL).unwrap().unwrap().pid,
        ];
        both.sort();
        let mut expected = [quiet, normal];
        expected.sort();
        assert_eq!(both, expected);
    });
}

#[test]
fn a_parent_ignoring_sigchld_keeps_no_zombies() {
    run_main(|sys, _| {
        let ignore = SigAction {
            handler: SIG_IGN,
            ..Default::default()
        };
        sys.rt_sigaction(SIGCHLD, Some(ignore)).unwrap();
        let ids_before = sys.ids_in_use();
        let pid = sigchld_child(sys, || {
            uk_sched::yield_now();
            4
        });
        // A wait while the child lives ends with ECHILD once it is gone.
        assert_eq!(sys.wait4(-1, 0), Err(Errno::ECHILD));
        assert!(!sys.is_zombie(pid));
        assert_eq!(sys.ids_in_use(), ids_before);
        assert_eq!(sys.sigpending().unwrap() & sig_bit(SIGCHLD), 0, "no signal");
        // A child with another exit signal is still kept.
        let other = child_process(sys, 0, || 5);
        settle();
        assert!(sys.is_zombie(other));
        assert_eq!(sys.wait4(other as i32, WALL).unwrap().unwrap().pid, other);
    });
}

static NOCLDWAIT_SIGNALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_sigchld(sig: i32) {
    assert_eq!(sig, SIGCHLD);
    NOCLDWAIT_SIGNALS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn sa_nocldwait_keeps_no_zombie_but_still_signals() {
    run_main(|sys, _| {
        on_signal(sys, SIGCHLD, handler_address(count_sigchld), SA_NOCLDWAIT);
        let pid = sigchld_child(sys, || 0);
        settle();
        assert!(!sys.is_zombie(pid));
        assert_eq!(sys.wait4(-1, WNOHANG), Err(Errno::ECHILD));
        // The handler runs when the caller next takes its signals.
        assert_eq!(sys.rt_sigsuspend(0), Err(Errno::EINTR));
        assert_eq!(
            NOCLDWAIT_SIGNALS.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    });
}

#[test]
fn zombies_of_an_ended_parent_go_to_init() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let grandchild = Rc::new(Cell::new(0));
        let g = grandchild.clone();
        let middle = sigchld_child(sys, move || {
            // Its own child: a "clone" child (exit signal 0), ended before it.
            g.set(child_process(sys, 0, || 11));
            settle();
            0
        });
        assert_eq!(sys.wait4(middle as i32, 0).unwrap().unwrap().how, exited(0));
        let grandchild = grandchild.get();
        assert!(sys.is_zombie(grandchild), "handed to init, not reaped");
        // Handed over, its exit signal became SIGCHLD: a plain wait takes it.
        let reaped = sys.wait4(-1, 0).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (grandchild, exited(11)));
        0
    });
    assert_eq!(status, Some(0));
    assert_eq!(sys.ids_in_use(), 0);
}

#[test]
fn zombies_nobody_waited_for_go_with_the_last_process() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        sigchld_child(sys, || 1);
        sigchld_child(sys, || 2);
        settle();
        0
    });
    assert_eq!(
        status,
        Some(0),
        "the run's status is the last live process's"
    );
    assert_eq!(sys.ids_in_use(), 0, "their pids are free again");
}

static INTERRUPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_interrupt(_sig: i32) {
    INTERRUPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn interrupts() -> usize {
    INTERRUPTS.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn a_handler_interrupts_a_wait_unless_it_restarts_it() {
    run_main(|sys, _| {
        let me = sys.gettid().unwrap();
        // The child ends once the handler has run twice (in the waiting thread).
        let pid = sigchld_child(sys, move || {
            while interrupts() < 2 {
                uk_sched::yield_now();
            }
            8
        });
        // A thread of this process signals the waiting thread.
        let kick = || {
            spawn(sys, move || {
                settle();
                sys.tgkill(None, me, SIGUSR1).unwrap();
                0
            })
        };
        on_signal(sys, SIGUSR1, handler_address(count_interrupt), 0);
        kick();
        assert_eq!(sys.wait4(pid as i32, 0), Err(Errno::EINTR));
        assert_eq!(interrupts(), 1);
        assert!(sys.pid_exists(pid), "the child lives on");
        on_signal(sys, SIGUSR1, handler_address(count_interrupt), SA_RESTART);
        kick();
        // The handler runs inside the wait, which goes on until the child ends.
        let reaped = sys.wait4(pid as i32, 0).unwrap().unwrap();
        assert_eq!((reaped.pid, reaped.how), (pid, exited(8)));
        assert_eq!(interrupts(), 2);
    });
}

#[test]
fn reaped_children_count_in_rusage_children_and_times() {
    let w = world_counting_cpu_time();
    let (sys, clock) = (w.sys, w.clock.clone());
    let status = w.run(move || {
        assert_eq!(sys.getrusage(RUSAGE_CHILDREN).unwrap().ru_utime.tv_usec, 0);
        let c = clock.clone();
        let pid = sigchld_child(sys, move || {
            c.advance(30_000_000);
            // A grandchild the child reaps: its 20 ms count for the child's parent too.
            let c2 = c.clone();
            let grandchild = sigchld_child(sys, move || {
                c2.advance(20_000_000);
                0
            });
            sys.wait4(grandchild as i32, 0).unwrap().unwrap();
            0
        });
        let reaped = sys.wait4(pid as i32, 0).unwrap().unwrap();
        assert_eq!(reaped.usage.ru_utime.tv_sec, 0);
        assert_eq!(
            reaped.usage.ru_utime.tv_usec, 50_000,
            "30 ms + the grandchild's 20"
        );
        assert_eq!(reaped.siginfo().child_cpu_ticks(), 5);
        let children = sys.getrusage(RUSAGE_CHILDREN).unwrap();
        assert_eq!(children.ru_utime, reaped.usage.ru_utime);
        assert!(
            children.ru_nvcsw + children.ru_nivcsw > 0,
            "switches counted"
        );
        let (tms, _) = sys.times().unwrap();
        assert_eq!(tms.tms_cutime, 5, "50 ms in 10 ms ticks");
        0
    });
    assert_eq!(status, Some(0));
}

/// A child that blocks `SIGUSR2` and waits for it; ends with 1 when it came from `from`.
fn waits_for_sigusr2(sys: &'static System, from: Pid) -> impl FnOnce() -> i32 + 'static {
    move || {
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR2)))
            .unwrap();
        let info = sys.rt_sigtimedwait(sig_bit(SIGUSR2), None).unwrap();
        i32::from(info.pid == from)
    }
}

#[test]
fn kill_reaches_process_groups_and_everyone_as_linux_picks_them() {
    run_main(|sys, _| {
        let me = sys.getpid().unwrap();
        assert_eq!(sys.kill(-1, 0), Err(Errno::ESRCH), "nobody but init and me");
        sys.rt_sigprocmask(SIG_BLOCK, Some(sig_bit(SIGUSR2)))
            .unwrap();
        // Group 0 (the caller's): the child and the caller.
        let same = sigchld_child(sys, waits_for_sigusr2(sys, me));
        settle();
        sys.kill(0, SIGUSR2).unwrap();
        assert_eq!(sys.wait4(same, 0).unwrap().unwrap().how, exited(1));
        assert_ne!(sys.sigpending().unwrap() & sig_bit(SIGUSR2), 0, "mine too");
        let taken = sys.rt_sigtimedwait(sig_bit(SIGUSR2), None).unwrap();
        assert_eq!(taken.pid, me);
        // Group -pgid: only the processes of that group.
        let other = sigchld_child(sys, waits_for_sigusr2(sys, me));
        sys.setpgid(other, other).unwrap();
        settle();
        assert_eq!(sys.kill(-other, 0), Ok(()));
        assert_eq!(sys.kill(-(other + 1000), SIGUSR2), Err(Errno::ESRCH));
        sys.kill(-other, SIGUSR2).unwrap();
        assert_eq!(sys.wait4(other, 0).unwrap().unwrap().how, exited(1));
        assert_eq!(sys.sigpending().unwrap() & sig_bit(SIGUSR2), 0, "not mine");
        // -1: every process but init (here the caller itself).
        let any = sigchld_child(sys, waits_for_sigusr2(sys, me));
        settle();
        sys.kill(-1, SIGUSR2).unwrap();
        assert_eq!(sys.wait4(any, 0).unwrap().unwrap().how, exited(1));
        assert_eq!(sys.sigpending().unwrap() & sig_bit(SIGUSR2), 0);
        assert_eq!(sys.kill(i32::MIN, SIGUSR2), Err(Errno::ESRCH));
    });
}

#[test]
fn a_parent_death_signal_comes_when_the_parent_ends() {
    run_main(|sys, _| {
        let grandchild = Rc::new(Cell::new(0));
        let g = grandchild.clone();
        let middle = sigchld_child(sys, move || {
            let me = sys.getpid().unwrap();
            g.set(sigchld_child(sys, move || {
                sys.prctl(PR_SET_PDEATHSIG, [SIGUSR2 as usize, 0, 0, 0])
                    .unwrap();
                waits_for_sigusr2(sys, me)()
            }));
            settle();
            0
        });
        assert_eq!(sys.wait4(middle, 0).unwrap().unwrap().pid, middle);
        let reaped = sys.wait4(-1, 0).unwrap().unwrap();
        assert_eq!(reaped.pid, grandchild.get());
        assert_eq!(reaped.how, exited(1), "SIGUSR2 from its ended parent");
    });
}

#[test]
fn orphans_go_to_the_nearest_subreaper() {
    run_main(|sys, _| {
        let init = sys.getpid().unwrap();
        let seen = Rc::new(Cell::new((0, 0)));
        let s = seen.clone();
        let reaper = sigchld_child(sys, move || {
            let me = sys.getpid().unwrap();
            sys.prctl(PR_SET_CHILD_SUBREAPER, [1, 0, 0, 0]).unwrap();
            let s2 = s.clone();
            let middle = sigchld_child(sys, move || {
                sigchld_child(sys, move || {
                    settle();
                    s2.set((sys.getppid().unwrap(), 0));
                    4
                });
                0
            });
            assert_eq!(sys.wait4(middle, 0).unwrap().unwrap().pid, middle);
            // The grandchild is now this process's, and it reaps it.
            let reaped = sys.wait4(-1, 0).unwrap().unwrap();
            assert_eq!(reaped.how, exited(4));
            s.set((s.get().0, me));
            0
        });
        assert_eq!(sys.wait4(reaper, 0).unwrap().unwrap().how, exited(0));
        let (grandchilds_parent, reaper_pid) = seen.get();
        assert_eq!(grandchilds_parent, reaper_pid, "the subreaper, not init");
        assert_ne!(grandchilds_parent, init);
    });
}

#[test]
fn a_zombie_still_holds_its_process_group() {
    run_main(|sys, _| {
        let init = sys.setsid().unwrap();
        let c = sigchld_child(sys, move || {
            let me = sys.getpid().unwrap();
            // A group of its own, a child in it that ends, and back to init's group.
            sys.setpgid(0, 0).unwrap();
            let d = sigchld_child(sys, || 0);
            sys.setpgid(0, init).unwrap();
            settle();
            assert!(sys.is_zombie(d));
            // Group `me` lives on through the zombie: no new session under that id, and
            // another child may join it.
            assert_eq!(sys.setsid(), Err(Errno::EPERM));
            let e = sigchld_child(sys, || {
                settle();
                0
            });
            assert_eq!(sys.setpgid(e, me), Ok(()));
            assert_eq!(sys.getpgid(e), Ok(me));
            sys.wait4(d, 0).unwrap();
            sys.wait4(e, 0).unwrap();
            // Both gone: the id is free for a session.
            assert_eq!(sys.setsid(), Ok(me));
            0
        });
        assert_eq!(sys.wait4(c, 0).unwrap().unwrap().how, exited(0));
    });
}
