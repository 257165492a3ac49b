//! The table is built lazily without a lock: threads that race to build it (a process of
//! its own, so that nobody built it before) all see every handler, and a conflicting number
//! is served by the first registration in link order whoever built it.

use std::sync::{Arc, Barrier};

use uk_syscall::{Args, REGISTRATIONS, SyscallResult, dispatch, table_stats};

fn first(_: &Args) -> SyscallResult {
    Ok(1)
}
fn second(_: &Args) -> SyscallResult {
    Ok(2)
}
fn sum(args: &Args) -> SyscallResult {
    Ok(args.iter().sum())
}
uk_syscall::register!(number 500 => first);
uk_syscall::register!(number 500 => second);
uk_syscall::register!(number 501 => sum);

#[test]
fn racing_builders_agree() {
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (dispatch(500, &[0; 6]), dispatch(501, &[i, 1, 1, 1, 1, 1]))
            })
        })
        .collect();
    let expected = REGISTRATIONS
        .iter()
        .find(|r| r.number == 500)
        .map(|r| (r.handler)(&[0; 6]).unwrap() as isize)
        .unwrap();
    for (i, handle) in handles.into_iter().enumerate() {
        let (conflicted, summed) = handle.join().unwrap();
        assert_eq!(conflicted, expected, "the first in link order serves");
        assert_eq!(summed, i as isize + 5);
    }
    let stats = table_stats();
    assert_eq!(
        (stats.handlers, stats.conflicts, stats.out_of_range),
        (2, 1, 0)
    );
}
