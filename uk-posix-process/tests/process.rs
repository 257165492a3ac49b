//! Ids, clone semantics, exit and exit_group on uk-sched threads in a hosted process.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use common::{addr, boxed, stack, word, world};
use uk_posix_process::flags::*;
use uk_posix_process::{ChildStart, Errno, FUTEX_WAIT, System, startup};

fn call(f: impl FnOnce() -> i32 + 'static) -> ChildStart {
    let (entry, arg) = boxed(f);
    ChildStart::Call { entry, arg }
}

fn pthread_args(stack_top: usize, ptid: usize, ctid: usize, tls: usize) -> CloneArgs {
    CloneArgs::from_legacy(PTHREAD_FLAGS, stack_top, ptid, ctid, tls)
}

#[test]
fn first_thread_ids() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        let pid = sys.getpid().unwrap();
        assert!(pid > 0, "0 is never an id");
        assert_eq!(sys.gettid().unwrap(), pid);
        assert_eq!(sys.getppid().unwrap(), 0);
        3
    });
    assert_eq!(status, Some(3));
    assert_eq!(sys.process_count(), 0);
    assert_eq!(sys.ids_in_use(), 0, "every id returned");
}

#[test]
fn pthread_create_and_join_with_cleartid() {
    let w = world();
    let sys = w.sys;
    let seen = Rc::new(RefCell::new(None));
    let seen2 = seen.clone();
    let status = w.run(move || {
        let ptid = word(0);
        let ctid = word(0);
        let tls = 0x5000_0000usize;
        let seen3 = seen2.clone();
        let start = call(move || {
            // PARENT_SETTID happened before we run.
            let me = sys.gettid().unwrap();
            *seen3.borrow_mut() = Some((
                me,
                sys.getpid().unwrap(),
                ptid.load(Ordering::SeqCst),
                uk_sched::current().unwrap().thread_pointer(),
            ));
            uk_sched::yield_now();
            11
        });
        let tid = sys
            .clone(
                &pthread_args(stack(64 * 1024), addr(ptid), addr(ctid), tls),
                Via::Clone,
                start,
            )
            .unwrap();
        assert_eq!(ptid.load(Ordering::SeqCst), tid as u32);
        // CHILD_SETTID was not asked for: the clear word is untouched until exit.
        ctid.store(tid as u32, Ordering::SeqCst);
        // Join: wait on the tid word until the child's exit clears it.
        while ctid.load(Ordering::SeqCst) != 0 {
            match sys.futex(addr(ctid), FUTEX_WAIT, tid as u32, 0, 0, 0) {
                Ok(_) | Err(Errno::EAGAIN) => {}
                Err(e) => panic!("futex: {e}"),
            }
        }
        assert_eq!(sys.thread_count(), 1);
        let (me, pid, p, tp) = seen2.borrow().unwrap();
        assert_eq!(me, tid);
        assert_eq!(pid, sys.getpid().unwrap(), "CLONE_THREAD: same process");
        assert_eq!(p, tid as u32);
        assert_eq!(tp, tls, "CLONE_SETTLS");
        0
    });
    assert_eq!(
        status,
        Some(0),
        "the process ends with the last thread's status"
    );
    assert!(seen.borrow().is_some());
}

#[test]
fn cleartid_wakes_a_blocked_joiner() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let ctid = word(0);
        let flags = PTHREAD_FLAGS | CLONE_CHILD_SETTID;
        let a = CloneArgs::from_legacy(flags, 0, addr(word(0)), addr(ctid), 0x1000);
        let tid = sys.clone(&a, Via::Clone, call(|| 0)).unwrap();
        assert_eq!(
            ctid.load(Ordering::SeqCst),
            tid as u32,
            "CHILD_SETTID before the child runs"
        );
        // The joiner blocks (the child has not run yet) and is woken by the exit.
        assert_eq!(
            sys.futex(addr(ctid), FUTEX_WAIT, tid as u32, 0, 0, 0),
            Ok(0)
        );
        assert_eq!(ctid.load(Ordering::SeqCst), 0);
        assert_eq!(sys.futex_waiters(addr(ctid)), 0);
        0
    });
}

#[test]
fn clone_without_settls_inherits_thread_pointer() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        uk_sched::current().unwrap().set_thread_pointer(0x7777_0000);
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let a = CloneArgs::from_legacy(PTHREAD_FLAGS & !CLONE_SETTLS, 0, addr(word(0)), 0, 0x1234);
        sys.clone(
            &a,
            Via::Clone,
            call(move || {
                g.set(uk_sched::current().unwrap().thread_pointer());
                0
            }),
        )
        .unwrap();
        while sys.thread_count() > 1 {
            uk_sched::yield_now();
        }
        assert_eq!(got.get(), 0x7777_0000);
        0
    });
}

#[test]
fn new_process_without_clone_thread() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let parent = sys.getpid().unwrap();
        let seen = Rc::new(Cell::new((0, 0, 0)));
        let s = seen.clone();
        let a = CloneArgs::from_legacy(CLONE_VM | CLONE_FS | CLONE_FILES | 17, 0, 0, 0, 0);
        let tid = sys
            .clone(
                &a,
                Via::Clone,
                call(move || {
                    s.set((
                        sys.getpid().unwrap(),
                        sys.gettid().unwrap(),
                        sys.getppid().unwrap(),
                    ));
                    0
                }),
            )
            .unwrap();
        assert_eq!(sys.process_count(), 2);
        while sys.process_count() > 1 {
            uk_sched::yield_now();
        }
        assert_eq!(
            seen.get(),
            (tid, tid, parent),
            "pid = tid of the first thread; ppid = caller"
        );
        0
    });
}

#[test]
fn orphans_are_reparented_to_the_first_process() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let init = sys.getpid().unwrap();
        let grandchild_ppid = Rc::new(Cell::new((-1, -1)));
        let g = grandchild_ppid.clone();
        let proc_flags = CLONE_VM | CLONE_FS | CLONE_FILES;
        // A child process starts a grandchild process and ends; the grandchild's parent
        // becomes the first process.
        let a = CloneArgs::from_legacy(proc_flags, 0, 0, 0, 0);
        sys.clone(
            &a,
            Via::Clone,
            call(move || {
                let me = sys.getpid().unwrap();
                sys.clone(
                    &a,
                    Via::Clone,
                    call(move || {
                        let before = sys.getppid().unwrap();
                        for _ in 0..6 {
                            uk_sched::yield_now();
                        }
                        g.set((before, sys.getppid().unwrap()));
                        0
                    }),
                )
                .unwrap();
                // Let the grandchild see its parent alive first.
                uk_sched::yield_now();
                assert_ne!(me, init);
                0
            }),
        )
        .unwrap();
        while sys.process_count() > 1 {
            uk_sched::yield_now();
        }
        let (before, after) = grandchild_ppid.get();
        assert!(before > 0);
        assert_ne!(before, init, "first the child process is the parent");
        assert_eq!(after, init, "then the first process");
        0
    });
}

/// Clones a child that records the address of one of its locals, waits for it to end and
/// returns that address.
fn local_address_in_child(sys: &'static System, a: &CloneArgs, via: Via) -> usize {
    let seen = Rc::new(Cell::new(0usize));
    let s = seen.clone();
    sys.clone(
        a,
        via,
        call(move || {
            let local = 0u8;
            s.set(std::hint::black_box(&local) as *const u8 as usize);
            0
        }),
    )
    .unwrap();
    while sys.thread_count() > 1 {
        uk_sched::yield_now();
    }
    seen.get()
}

#[test]
fn child_runs_on_the_given_stack() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        // clone3: the stack is [stack, stack + stack_size).
        let size = 64 * 1024;
        let top = stack(size);
        let base = top - size;
        let a = CloneArgs {
            flags: PTHREAD_FLAGS,
            stack: base,
            stack_size: size,
            parent_tid: addr(word(0)),
            ..CloneArgs::default()
        };
        let seen = local_address_in_child(sys, &a, Via::Clone3);
        assert!(
            (base..top).contains(&seen),
            "{seen:#x} in {base:#x}..{top:#x}"
        );
        // Legacy clone: the stack argument is the top.
        let top2 = stack(size);
        let a = CloneArgs::from_legacy(PTHREAD_FLAGS, top2, addr(word(0)), 0, 0);
        let seen = local_address_in_child(sys, &a, Via::Clone);
        assert!((top2 - size..top2).contains(&seen));
        0
    });
}

#[test]
fn bad_child_tid_is_skipped_as_linux_does() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        // CHILD_SETTID and CHILD_CLEARTID through a bad pointer: the clone succeeds, the
        // write and the exit-time clear are skipped (Linux ignores faults there too).
        let flags = PTHREAD_FLAGS | CLONE_CHILD_SETTID;
        let a = CloneArgs::from_legacy(flags, 0, addr(word(0)), 8, 0);
        let tid = sys.clone(&a, Via::Clone, call(|| 0)).unwrap();
        assert!(tid > 0);
        while sys.thread_count() > 1 {
            uk_sched::yield_now();
        }
        0
    });
}

#[test]
fn refused_clone_changes_nothing() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let ptid = word(0xdead);
        let before = (sys.thread_count(), sys.ids_in_use(), sys.process_count());
        for (flags, want) in [
            (PTHREAD_FLAGS & !CLONE_SIGHAND, Errno::EINVAL),
            (PTHREAD_FLAGS | CLONE_VFORK, Errno::ENOSYS),
            (PTHREAD_FLAGS | CLONE_NEWNET, Errno::EINVAL),
            (
                PTHREAD_FLAGS & !CLONE_VM & !CLONE_SIGHAND & !CLONE_THREAD,
                Errno::ENOSYS,
            ),
        ] {
            let a = CloneArgs::from_legacy(flags, 0, addr(ptid), 0, 0);
            assert_eq!(
                sys.clone(&a, Via::Clone, call(|| 0)),
                Err(want),
                "{flags:#x}"
            );
        }
        // A bad parent_tid pointer: EFAULT, nothing changed.
        for bad in [0usize, 8, usize::MAX - 2, 1 << 60] {
            let a = CloneArgs::from_legacy(PTHREAD_FLAGS, 0, bad, 0, 0);
            assert_eq!(sys.clone(&a, Via::Clone, call(|| 0)), Err(Errno::EFAULT));
        }
        // A clone stack outside memory: EFAULT instead of a crash.
        let a = CloneArgs::from_legacy(PTHREAD_FLAGS, 16, addr(ptid), 0, 0);
        assert_eq!(sys.clone(&a, Via::Clone, call(|| 0)), Err(Errno::EFAULT));
        assert_eq!(
            (sys.thread_count(), sys.ids_in_use(), sys.process_count()),
            before
        );
        assert_eq!(ptid.load(Ordering::SeqCst), 0xdead);
        0
    });
}

#[test]
fn ids_run_out_with_eagain_and_come_back() {
    let w = common::world_with(System::with_max_id(3));
    let sys = w.sys;
    w.run(move || {
        let mut tids = vec![sys.gettid().unwrap()];
        for _ in 0..2 {
            tids.push(
                sys.clone(
                    &pthread_args(0, addr(word(0)), 0, 0),
                    Via::Clone,
                    call(|| 0),
                )
                .unwrap(),
            );
        }
        tids.sort();
        assert_eq!(tids, [1, 2, 3]);
        let before = (sys.thread_count(), sys.ids_in_use());
        assert_eq!(
            sys.clone(
                &pthread_args(0, addr(word(0)), 0, 0),
                Via::Clone,
                call(|| 0)
            ),
            Err(Errno::EAGAIN)
        );
        assert_eq!((sys.thread_count(), sys.ids_in_use()), before);
        while sys.thread_count() > 1 {
            uk_sched::yield_now();
        }
        // Recycled: the freed ids are handed out again.
        let again = sys
            .clone(
                &pthread_args(0, addr(word(0)), 0, 0),
                Via::Clone,
                call(|| 0),
            )
            .unwrap();
        assert!(again == 2 || again == 3, "{again}");
        0
    });
}

#[test]
fn set_tid_address_is_cleared_at_exit() {
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let clear = word(99);
        let a = pthread_args(0, addr(word(0)), 0, 0);
        let tid = sys
            .clone(
                &a,
                Via::Clone,
                call(move || {
                    assert_eq!(sys.set_tid_address(addr(clear)), sys.gettid());
                    0
                }),
            )
            .unwrap();
        assert!(tid > 0);
        while sys.thread_count() > 1 {
            uk_sched::yield_now();
        }
        assert_eq!(clear.load(Ordering::SeqCst), 0);
        0
    });
}

#[test]
fn robust_list_is_per_thread_and_starts_empty() {
    use uk_posix_process::ROBUST_LIST_HEAD_LEN;
    let w = world();
    let sys = w.sys;
    w.run(move || {
        assert_eq!(ROBUST_LIST_HEAD_LEN, 3 * std::mem::size_of::<usize>());
        assert_eq!(sys.get_robust_list(0), Ok(0), "none registered yet");
        assert_eq!(
            sys.set_robust_list(0x1000, 8),
            Err(Errno::EINVAL),
            "Linux's size only"
        );
        assert_eq!(sys.set_robust_list(0x1000, ROBUST_LIST_HEAD_LEN), Ok(()));
        let me = sys.gettid().unwrap();
        assert_eq!(sys.get_robust_list(0), Ok(0x1000));
        assert_eq!(sys.get_robust_list(me), Ok(0x1000));
        let child_tid = Rc::new(Cell::new(0));
        let seen = child_tid.clone();
        let tid = sys
            .clone(
                &pthread_args(0, addr(word(0)), 0, 0),
                Via::Clone,
                call(move || {
                    // A new thread has no list of its own; it can read its creator's.
                    assert_eq!(sys.get_robust_list(0), Ok(0));
                    assert_eq!(sys.get_robust_list(me), Ok(0x1000));
                    sys.set_robust_list(0x2000, ROBUST_LIST_HEAD_LEN).unwrap();
                    seen.set(sys.gettid().unwrap());
                    while seen.get() != 0 {
                        uk_sched::yield_now();
                    }
                    0
                }),
            )
            .unwrap();
        while child_tid.get() == 0 {
            uk_sched::yield_now();
        }
        assert_eq!(child_tid.get(), tid);
        assert_eq!(sys.get_robust_list(tid), Ok(0x2000));
        assert_eq!(
            sys.get_robust_list(0),
            Ok(0x1000),
            "each thread keeps its own"
        );
        child_tid.set(0);
        while sys.thread_count() > 1 {
            uk_sched::yield_now();
        }
        assert_eq!(
            sys.get_robust_list(tid),
            Err(Errno::ESRCH),
            "gone with its thread"
        );
        0
    });
}

#[test]
fn last_exit_reaches_exit_hook() {
    use std::sync::atomic::AtomicU32;
    static SEEN: AtomicU32 = AtomicU32::new(0);
    let w = world();
    w.sys.set_exit_hook(|status| {
        SEEN.fetch_add(1 + u32::from(status) * 16, Ordering::SeqCst);
    });
    let sys = w.sys;
    let status = w.run(move || {
        // The first thread leaves early; the child is the last and exits with 42.
        sys.clone(
            &pthread_args(0, addr(word(0)), 0, 0),
            Via::Clone,
            call(move || {
                uk_sched::yield_now();
                uk_sched::yield_now();
                sys.exit(42)
            }),
        )
        .unwrap();
        sys.exit(5)
    });
    assert_eq!(status, Some(42));
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        1 + 42 * 16,
        "hook called once with 42"
    );
    assert_eq!(sys.ids_in_use(), 0);
}

#[test]
fn exit_group_ends_every_thread() {
    let w = world();
    let sys = w.sys;
    let ran_after = Rc::new(Cell::new(false));
    let r = ran_after.clone();
    let clears: Vec<&'static std::sync::atomic::AtomicU32> = (0..3).map(|_| word(1)).collect();
    let c2 = clears.clone();
    let status = w.run(move || {
        // A futex waiter, a sleeper and a busy yielder.
        let f = word(0);
        let bodies: Vec<Box<dyn FnOnce() -> i32>> = vec![
            Box::new(move || {
                let _ = sys.futex(addr(f), FUTEX_WAIT, 0, 0, 0, 0);
                0
            }),
            Box::new(move || {
                let _ = sys.nanosleep(uk_posix_process::Timespec {
                    tv_sec: 1000,
                    tv_nsec: 0,
                });
                0
            }),
            Box::new(|| {
                loop {
                    uk_sched::yield_now();
                }
            }),
        ];
        for (body, clear) in bodies.into_iter().zip(c2) {
            let a = pthread_args(0, addr(word(0)), addr(clear), 0);
            sys.clone(&a, Via::Clone, call(body)).unwrap();
        }
        uk_sched::yield_now();
        uk_sched::yield_now();
        assert_eq!(sys.thread_count(), 4);
        assert_eq!(sys.futex_waiters(addr(f)), 1);
        let r2 = r.clone();
        // A thread of another process survives the group exit.
        let other = CloneArgs::from_legacy(CLONE_VM | CLONE_FS | CLONE_FILES, 0, 0, 0, 0);
        sys.clone(
            &other,
            Via::Clone,
            call(move || {
                for _ in 0..5 {
                    uk_sched::yield_now();
                }
                r2.set(true);
                9
            }),
        )
        .unwrap();
        sys.exit_group(3)
    });
    assert_eq!(sys.thread_count(), 0);
    assert!(ran_after.get(), "the other process ran to its end");
    assert_eq!(status, Some(9), "the last process to end gives the status");
    for c in clears {
        assert_eq!(
            c.load(Ordering::SeqCst),
            0,
            "clear_child_tid of a killed thread"
        );
    }
}

#[test]
fn exit_group_status_of_a_lone_process() {
    let w = world();
    let sys = w.sys;
    let status = w.run(move || {
        for _ in 0..3 {
            sys.clone(
                &pthread_args(0, addr(word(0)), 0, 0),
                Via::Clone,
                call(|| {
                    loop {
                        uk_sched::yield_now();
                    }
                }),
            )
            .unwrap();
        }
        uk_sched::yield_now();
        sys.exit_group(77)
    });
    assert_eq!(status, Some(77));
    assert_eq!(sys.ids_in_use(), 0);
}

#[test]
fn clone_without_a_scheduler_is_enosys() {
    let sys: &'static System = Box::leak(Box::new(System::new()));
    let a = pthread_args(0, 0, 0, 0);
    assert_eq!(sys.clone(&a, Via::Clone, call(|| 0)), Err(Errno::ENOSYS));
    // The boot context is adopted as the first process.
    let pid = sys.getpid().unwrap();
    assert_eq!(sys.gettid().unwrap(), pid);
    assert_eq!(sys.thread_count(), 1);
}

#[test]
fn unknown_callers_are_adopted_into_the_first_process() {
    let w = world();
    let sys = w.sys;
    let first = sys.getpid().unwrap();
    let got = Rc::new(Cell::new((0, 0)));
    let g = got.clone();
    w.sched
        .spawn("foreign", move || {
            g.set((sys.getpid().unwrap(), sys.gettid().unwrap()))
        })
        .unwrap();
    uk_sched::Scheduler::run(w.sched);
    assert_eq!(got.get().0, first);
    assert_ne!(got.get().1, first);
}

/// arch_prctl: ARCH_SET_FS keeps the value in the calling thread (so the scheduler installs
/// it at every switch in) and ARCH_GET_FS reads it back; a clone without CLONE_SETTLS
/// inherits it; bad requests change nothing.
#[test]
fn arch_prctl_sets_and_reads_the_callers_thread_pointer() {
    use uk_posix_process::tls::{ARCH_GET_FS, ARCH_GET_GS, ARCH_SET_FS, ARCH_SET_GS};
    let w = world();
    let sys = w.sys;
    w.run(move || {
        let me = uk_sched::current().expect("a thread");
        assert_eq!(sys.arch_prctl(ARCH_SET_FS, 0x1234_5000), Ok(0));
        assert_eq!(me.thread_pointer(), 0x1234_5000);
        let mut out = 0u64;
        let out_addr = &raw mut out as usize;
        assert_eq!(sys.arch_prctl(ARCH_GET_FS, out_addr), Ok(0));
        assert_eq!(out, 0x1234_5000);
        // Refused, and nothing changed.
        assert_eq!(
            sys.arch_prctl(ARCH_SET_FS, 0x8000_0000_0000_0000),
            Err(Errno::EPERM)
        );
        assert_eq!(sys.arch_prctl(ARCH_SET_GS, 0x1000), Err(Errno::EPERM));
        assert_eq!(sys.arch_prctl(ARCH_GET_GS, out_addr), Err(Errno::EPERM));
        assert_eq!(sys.arch_prctl(0x9999, 0), Err(Errno::EINVAL));
        assert_eq!(sys.arch_prctl(ARCH_GET_FS, 0), Err(Errno::EFAULT));
        assert_eq!(me.thread_pointer(), 0x1234_5000);
        // A thread without CLONE_SETTLS inherits the thread pointer, and its own change
        // stays its own.
        let seen = word(0);
        let a = CloneArgs::from_legacy(PTHREAD_FLAGS & !CLONE_SETTLS, 0, addr(word(0)), 0, 0);
        sys.clone(
            &a,
            Via::Clone,
            call(move || {
                let child = uk_sched::current().expect("a thread");
                seen.store(child.thread_pointer() as u32, Ordering::SeqCst);
                assert_eq!(sys.arch_prctl(ARCH_SET_FS, 0x7777_0000), Ok(0));
                0
            }),
        )
        .unwrap();
        while sys.thread_count() > 1 {
            uk_sched::yield_now();
        }
        assert_eq!(seen.load(Ordering::SeqCst), 0x1234_5000);
        assert_eq!(me.thread_pointer(), 0x1234_5000);
        0
    });
}

/// A libc start routine as musl's is called: finds `envp` after `argv` and runs `main`
/// (returning its value where musl would exit with it).
unsafe extern "C" fn fake_libc_start(
    main: startup::CMain,
    argc: i32,
    argv: *mut *mut core::ffi::c_char,
    _init: usize,
    _fini: usize,
    _ldso: usize,
) -> i32 {
    // SAFETY: `argv` is a start-up block: `argc` pointers and a null, then `envp`.
    unsafe { main(argc, argv, argv.add(argc as usize + 1)) }
}

/// A C `main` that checks its arguments and environment: `argc * 10 + 1` when they are
/// those `spawn_c_program` was given.
unsafe extern "C" fn fake_c_main(
    argc: i32,
    argv: *mut *mut core::ffi::c_char,
    envp: *mut *mut core::ffi::c_char,
) -> i32 {
    // SAFETY: the block's pointers are C strings, each array ends with a null.
    let (arg1, env0, env_end) = unsafe {
        (
            std::ffi::CStr::from_ptr(*argv.add(1)),
            std::ffi::CStr::from_ptr(*envp),
            (*envp.add(1)).is_null(),
        )
    };
    let ok = arg1.to_bytes() == b"two" && env0.to_bytes() == b"HOME=/" && env_end;
    argc * 10 + i32::from(ok)
}

#[test]
fn a_c_program_starts_through_its_libc_with_the_startup_block() {
    let w = world();
    let block = startup::StartupBlock::new(
        &[b"prog", b"two"],
        &[b"HOME=/"],
        startup::TlsSegment::NONE,
        [1; 16],
    )
    .unwrap();
    let pid = w
        .sys
        .spawn_c_program("prog", fake_libc_start, fake_c_main, block)
        .unwrap();
    assert!(pid > 0);
    uk_sched::Scheduler::run(w.sched);
    assert_eq!(w.sys.last_exit_status(), Some(21));
}
