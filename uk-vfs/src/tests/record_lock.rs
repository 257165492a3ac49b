//! Record locks (`fcntl` `F_*LK` and `F_OFD_*LK`): the range arithmetic against a model of
//! every byte, POSIX and open file description owners, closing, waiting between real
//! threads, interruptions, deadlock detection, every errno, and the raw adapter.

use alloc::vec::Vec;
use std::sync::Arc as StdArc;

use proptest::prelude::*;

use super::{fresh, interrupt_next_wait, interrupt_next_wait_running, thread_wait};
use crate::record_lock::*;
use crate::*;

fn lock(l_type: i16, l_start: i64, l_len: i64) -> Flock {
    Flock {
        l_type,
        l_whence: SEEK_SET as i16,
        l_start,
        l_len,
        l_pid: 0,
    }
}

/// `fcntl(fd, cmd, lock)` on a copy of `lock`: the result, and what a GETLK wrote.
fn call(vfs: &Vfs, fd: Fd, cmd: u32, l: Flock) -> Result<Flock, Errno> {
    let mut l = l;
    vfs.fcntl_lock(fd, cmd, &mut l).map(|()| l)
}

/// What `F_GETLK` (or `F_OFD_GETLK`) says of a write lock over `start..start + len`.
fn holder(vfs: &Vfs, fd: Fd, cmd: u32, start: i64, len: i64) -> Flock {
    call(vfs, fd, cmd, lock(F_WRLCK, start, len)).unwrap()
}

/// Two "processes" (descriptor tables) over one filesystem, and a file of 100 bytes open
/// read-write in each.
fn two_processes() -> (StdArc<Vfs>, StdArc<Vfs>, Fd, Fd) {
    let fs = RamFs::new();
    let a = StdArc::new(Vfs::new(fs.clone()));
    let b = StdArc::new(Vfs::new(fs));
    a.write_file("/data", &[7u8; 100], 0o644).unwrap();
    let fa = a.open("/data", O_RDWR, 0).unwrap();
    let fb = b.open("/data", O_RDWR, 0).unwrap();
    (a, b, fa, fb)
}

#[test]
fn posix_locks_belong_to_the_process_and_go_with_any_close() {
    let (a, b, fa, fb) = two_processes();
    let fa2 = a.open("/data", O_RDWR, 0).unwrap();
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 0, 10)).map(|_| ()),
        Ok(())
    );
    // The same process through another description: no conflict, and the two merge.
    assert_eq!(
        call(&a, fa2, F_SETLK, lock(F_WRLCK, 5, 10)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_RDLCK, 14, 1)),
        Err(Errno::EAGAIN)
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_RDLCK, 15, 1)).map(|_| ()),
        Ok(())
    );
    let seen = holder(&b, fb, F_GETLK, 0, 0);
    assert_eq!(
        (
            seen.l_type,
            seen.l_whence,
            seen.l_start,
            seen.l_len,
            seen.l_pid
        ),
        (F_WRLCK, SEEK_SET as i16, 0, 15, 1)
    );
    // Nothing in the way: F_UNLCK, the rest as given.
    let free = holder(&b, fb, F_GETLK, 50, 10);
    assert_eq!((free.l_type, free.l_start, free.l_len), (F_UNLCK, 50, 10));
    // Closing another descriptor of the file releases all of a's locks on it.
    a.close(fa2).unwrap();
    assert_eq!(holder(&b, fb, F_GETLK, 0, 0).l_type, F_UNLCK);
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 0, 15)).map(|_| ()),
        Ok(())
    );
    // And a's view: b's lock, with b's process id from its source.
    b.set_pid_source(|| 42);
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 0, 1)).map(|_| ()),
        Ok(())
    );
    let seen = holder(&a, fa, F_GETLK, 0, 1);
    assert_eq!(
        (seen.l_start, seen.l_len, seen.l_pid),
        (0, 15, 42),
        "merged with the first"
    );
    // A process's table going releases its locks.
    drop(b);
    assert_eq!(holder(&a, fa, F_GETLK, 0, 0).l_type, F_UNLCK);
}

#[test]
fn unlocking_a_part_splits_a_lock_and_a_downgrade_lets_readers_in() {
    let (a, b, fa, fb) = two_processes();
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 0, 100)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_UNLCK, 40, 20)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 40, 20)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 39, 1)),
        Err(Errno::EAGAIN)
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 60, 1)),
        Err(Errno::EAGAIN)
    );
    let right = holder(&b, fb, F_GETLK, 60, 0);
    assert_eq!((right.l_start, right.l_len), (60, 40));
    // Downgrading a's right part to shared lets b read-lock it, not write-lock it.
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_RDLCK, 60, 40)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_RDLCK, 70, 5)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 80, 5)),
        Err(Errno::EAGAIN)
    );
    // And a cannot upgrade what b shares.
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 72, 1)),
        Err(Errno::EAGAIN)
    );
}

#[test]
fn description_locks_conflict_within_a_process_and_go_with_the_last_close() {
    let vfs = fresh();
    vfs.write_file("/ofd", b"0123456789", 0o644).unwrap();
    let one = vfs.open("/ofd", O_RDWR, 0).unwrap();
    let two = vfs.open("/ofd", O_RDWR, 0).unwrap();
    assert_eq!(
        call(&vfs, one, F_OFD_SETLK, lock(F_WRLCK, 0, 0)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&vfs, two, F_OFD_SETLK, lock(F_RDLCK, 3, 1)),
        Err(Errno::EAGAIN)
    );
    let seen = holder(&vfs, two, F_OFD_GETLK, 0, 1);
    assert_eq!(
        (seen.l_type, seen.l_start, seen.l_len, seen.l_pid),
        (F_WRLCK, 0, 0, -1)
    );
    // The same process's POSIX lock conflicts with it too (another owner).
    assert_eq!(
        call(&vfs, two, F_SETLK, lock(F_RDLCK, 3, 1)),
        Err(Errno::EAGAIN)
    );
    // A dup shares the description: closing the first descriptor keeps the lock.
    let three = vfs.dup(one).unwrap();
    vfs.close(one).unwrap();
    assert_eq!(
        call(&vfs, two, F_OFD_SETLK, lock(F_RDLCK, 3, 1)),
        Err(Errno::EAGAIN)
    );
    vfs.close(three).unwrap();
    assert_eq!(
        call(&vfs, two, F_OFD_SETLK, lock(F_RDLCK, 3, 1)).map(|_| ()),
        Ok(())
    );
    vfs.close(two).unwrap();
}

#[test]
fn bad_requests_fail_in_linux_order_and_change_nothing() {
    let (a, b, fa, fb) = two_processes();
    let ro = a.open("/data", O_RDONLY, 0).unwrap();
    let wo = a.open("/data", O_WRONLY, 0).unwrap();
    assert_eq!(
        call(&a, 99, F_SETLK, lock(F_WRLCK, 0, 1)),
        Err(Errno::EBADF)
    );
    assert_eq!(call(&a, fa, 99, lock(F_WRLCK, 0, 1)), Err(Errno::EINVAL));
    assert_eq!(call(&a, fa, F_SETLK, lock(3, 0, 1)), Err(Errno::EINVAL));
    assert_eq!(
        call(&a, fa, F_GETLK, lock(F_UNLCK, 0, 1)),
        Err(Errno::EINVAL)
    );
    let mut whence = lock(F_WRLCK, 0, 1);
    whence.l_whence = 3;
    assert_eq!(call(&a, fa, F_SETLK, whence), Err(Errno::EINVAL));
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, -1, 1)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 5, -6)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, i64::MAX, 2)),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(
        call(&a, ro, F_SETLK, lock(F_WRLCK, 0, 1)),
        Err(Errno::EBADF)
    );
    assert_eq!(
        call(&a, wo, F_SETLK, lock(F_RDLCK, 0, 1)),
        Err(Errno::EBADF)
    );
    let mut pid = lock(F_WRLCK, 0, 1);
    pid.l_pid = 7;
    assert_eq!(call(&a, fa, F_OFD_SETLK, pid), Err(Errno::EINVAL));
    assert_eq!(call(&a, fa, F_OFD_GETLK, pid), Err(Errno::EINVAL));
    // None of them took anything.
    assert_eq!(holder(&b, fb, F_GETLK, 0, 0).l_type, F_UNLCK);
    // Allowed: a read lock through a read-only descriptor, unlocking through any, the
    // largest range, a negative length (the bytes before the start).
    assert_eq!(
        call(&a, ro, F_SETLK, lock(F_RDLCK, 0, 1)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&a, wo, F_SETLK, lock(F_UNLCK, 0, 1)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, i64::MAX, 1)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 10, -4)).map(|_| ()),
        Ok(())
    );
    let seen = holder(&b, fb, F_GETLK, 0, 20);
    assert_eq!((seen.l_start, seen.l_len), (6, 4));
}

#[test]
fn ranges_count_from_the_position_and_the_end() {
    let (a, b, fa, fb) = two_processes();
    a.lseek(fa, 30, SEEK_SET).unwrap();
    let mut cur = lock(F_WRLCK, -10, 5);
    cur.l_whence = SEEK_CUR as i16;
    assert_eq!(call(&a, fa, F_SETLK, cur).map(|_| ()), Ok(()));
    let mut end = lock(F_WRLCK, -1, 0);
    end.l_whence = SEEK_END as i16;
    assert_eq!(call(&a, fa, F_SETLK, end).map(|_| ()), Ok(()));
    let first = holder(&b, fb, F_GETLK, 0, 0);
    assert_eq!((first.l_start, first.l_len), (20, 5));
    let second = holder(&b, fb, F_GETLK, 50, 0);
    assert_eq!((second.l_start, second.l_len), (99, 0));
}

#[test]
fn a_waiting_request_gets_the_lock_when_it_is_released() {
    wait::set_wait_factory(thread_wait);
    let (a, b, fa, fb) = two_processes();
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 0, 10)).map(|_| ()),
        Ok(())
    );
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || call(&b, fb, F_SETLKW, lock(F_WRLCK, 5, 1)).map(|_| ()))
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(!waiter.is_finished(), "it waits while a holds the range");
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_UNLCK, 0, 0)).map(|_| ()),
        Ok(())
    );
    assert_eq!(waiter.join().unwrap(), Ok(()));
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_RDLCK, 5, 1)),
        Err(Errno::EAGAIN)
    );
}

#[test]
fn an_interrupted_wait_fails_with_eintr_or_restarts_from_the_lookup() {
    wait::set_wait_factory(thread_wait);
    let (a, b, fa, fb) = two_processes();
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 0, 10)).map(|_| ()),
        Ok(())
    );
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(
        call(&b, fb, F_SETLKW, lock(F_WRLCK, 0, 1)),
        Err(Errno::EINTR)
    );
    // SA_RESTART and a handler that closed the descriptor: the restart finds it closed.
    let bb = b.clone();
    interrupt_next_wait_running(Errno::ERESTARTSYS, move || bb.close(fb).unwrap());
    assert_eq!(
        call(&b, fb, F_SETLKW, lock(F_WRLCK, 0, 1)),
        Err(Errno::EBADF)
    );
    // Nothing of b's stayed behind.
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_UNLCK, 0, 0)).map(|_| ()),
        Ok(())
    );
    let fb = b.open("/data", O_RDWR, 0).unwrap();
    assert_eq!(holder(&a, fa, F_GETLK, 0, 0).l_type, F_UNLCK);
    b.close(fb).unwrap();
}

#[test]
fn a_cycle_of_waiting_processes_is_edeadlk() {
    wait::set_wait_factory(thread_wait);
    let (a, b, fa, fb) = two_processes();
    assert_eq!(
        call(&a, fa, F_SETLK, lock(F_WRLCK, 0, 1)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_WRLCK, 1, 1)).map(|_| ()),
        Ok(())
    );
    let waiter = {
        let a = a.clone();
        std::thread::spawn(move || call(&a, fa, F_SETLKW, lock(F_WRLCK, 1, 1)).map(|_| ()))
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(!waiter.is_finished());
    // b waiting for a's byte would wait for a process that waits for b.
    assert_eq!(
        call(&b, fb, F_SETLKW, lock(F_WRLCK, 0, 1)),
        Err(Errno::EDEADLK)
    );
    // b gives up its byte: a's waiting request gets it.
    assert_eq!(
        call(&b, fb, F_SETLK, lock(F_UNLCK, 1, 1)).map(|_| ()),
        Ok(())
    );
    assert_eq!(waiter.join().unwrap(), Ok(()));
}

#[test]
fn the_raw_adapter_reads_and_writes_struct_flock() {
    use uk_syscall::{Sysno, dispatch};
    let sys = |args: [usize; 6]| dispatch(Sysno::fcntl as usize, &args);
    let err = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.write_file("/raw-lock", b"xyz", 0o644).unwrap();
    let one = vfs.open("/raw-lock", O_RDWR, 0).unwrap();
    let two = vfs.open("/raw-lock", O_RDWR, 0).unwrap();
    let set = lock(F_WRLCK, 1, 2).to_bytes();
    let arg = |raw: &[u8; FLOCK_SIZE]| raw.as_ptr() as usize;
    assert_eq!(
        sys([one as usize, F_OFD_SETLK as usize, arg(&set), 0, 0, 0]),
        0
    );
    let mut query = lock(F_RDLCK, 0, 0).to_bytes();
    let ptr = query.as_mut_ptr() as usize;
    assert_eq!(sys([two as usize, F_OFD_GETLK as usize, ptr, 0, 0, 0]), 0);
    assert_eq!(
        Flock::from_bytes(&query),
        Flock {
            l_type: F_WRLCK,
            l_whence: SEEK_SET as i16,
            l_start: 1,
            l_len: 2,
            l_pid: -1
        }
    );
    assert_eq!(
        sys([two as usize, F_OFD_SETLK as usize, arg(&set), 0, 0, 0]),
        err(Errno::EAGAIN)
    );
    // EBADF before EFAULT; EFAULT for a bad pointer.
    assert_eq!(sys([999, F_SETLK as usize, 8, 0, 0, 0]), err(Errno::EBADF));
    assert_eq!(
        sys([one as usize, F_SETLK as usize, 8, 0, 0, 0]),
        err(Errno::EFAULT)
    );
    for fd in [one, two] {
        vfs.close(fd).unwrap();
    }
}

/// Per byte of a small file, the lock each owner holds: 0 none, 1 shared, 2 exclusive.
/// "To the end" covers every byte from the start in the model's last byte too.
const BYTES: usize = 48;

fn model_conflicts(
    model: &[[u8; BYTES]; 3],
    owner: usize,
    write: bool,
    s: usize,
    e: usize,
) -> bool {
    (0..3)
        .filter(|&o| o != owner)
        .any(|o| (s..=e).any(|b| model[o][b] == 2 || (write && model[o][b] == 1)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// `apply` and `first_conflict` against a model of every byte: after any sequence of
    /// requests by three owners, each owner holds exactly the model's bytes, its locks
    /// never overlap and two of the same kind never touch (they merge), a request is
    /// refused exactly when the model says another owner stands in its way, and the POSIX
    /// count changes by the number of locks gained.
    #[test]
    fn apply_matches_a_model_of_every_byte(
        ops in proptest::collection::vec((0usize..3, 0u8..3, 0usize..BYTES, 0usize..12), 1..40)
    ) {
        let mut records: Vec<crate::record_lock::Record> = Vec::new();
        let mut model = [[0u8; BYTES]; 3];
        for (owner, kind, start, len) in ops {
            // len 0: to the end, which the model's last byte stands for.
            let (end, model_end) = if len == 0 {
                (i64::MAX as u64, BYTES - 1)
            } else {
                let e = (start + len - 1).min(BYTES - 2);
                (e as u64, e)
            };
            if model_end < start {
                continue;
            }
            let req = crate::record_lock::Record {
                owner: crate::record_lock::Owner::Process(owner as u64),
                pid: owner as i32,
                write: kind == 1,
                start: start as u64,
                end,
            };
            let unlock = kind == 2;
            let conflict = !unlock && model_conflicts(&model, owner, req.write, start, model_end);
            // An unlock never conflicts; `set` does not ask.
            let found = (!unlock).then(|| crate::record_lock::first_conflict(&records, &req)).flatten();
            prop_assert_eq!(found.is_some(), conflict);
            if let Some(r) = found {
                prop_assert!(r.owner != req.owner && (r.write || req.write));
                prop_assert!(r.start <= req.end && req.start <= r.end);
            }
            if conflict {
                continue;
            }
            let before = records.len() as isize;
            let delta = crate::record_lock::apply(&mut records, req, unlock);
            prop_assert_eq!(delta, records.len() as isize - before);
            let now = match kind {
                0 => 1,
                1 => 2,
                _ => 0,
            };
            model[owner][start..=model_end].fill(now);
            for (o, bytes) in model.iter().enumerate() {
                let mine: Vec<_> = records
                    .iter()
                    .filter(|r| r.owner == crate::record_lock::Owner::Process(o as u64))
                    .collect();
                for (b, &want) in bytes.iter().enumerate() {
                    let held: Vec<_> = mine
                        .iter()
                        .filter(|r| r.start <= b as u64 && b as u64 <= r.end)
                        .collect();
                    prop_assert!(held.len() <= 1, "owner {} has overlapping locks at {}", o, b);
                    let got = held.first().map_or(0, |r| if r.write { 2 } else { 1 });
                    prop_assert_eq!(got, want, "owner {} byte {}", o, b);
                }
                for x in &mine {
                    for y in &mine {
                        if core::ptr::eq(*x, *y) || x.write != y.write {
                            continue;
                        }
                        prop_assert!(
                            x.end.saturating_add(1) != y.start,
                            "owner {}: {:?} and {:?} touch without merging", o, x, y
                        );
                    }
                }
            }
        }
    }
}
