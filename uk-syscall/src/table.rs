//! The dispatch table: registrations collected by `linkme`, indexed by number on first use.
//!
//! The table is built lazily, without a lock: a caller that finds it unbuilt walks every
//! registration in slice order and stores each handler into its slot with a compare-and-swap
//! from "empty". Concurrent (or re-entrant, from an interrupt) builders do the same walk, so
//! the first registration of a number in slice order always wins, whoever stores it, and
//! nobody ever waits for anybody: a dispatch can never hang on the table.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{Args, Errno, Handler, SyscallResult, Sysno};

/// One handler registration, as [`crate::register!`] emits it.
#[derive(Debug)]
pub struct Registration {
    /// The syscall number on the target architecture.
    pub number: usize,
    /// The handler for it.
    pub handler: Handler,
}

/// Every registration linked into the image.
#[linkme::distributed_slice]
pub static REGISTRATIONS: [Registration];

/// Numbers the table holds: `0..TABLE_LEN`. Larger than the highest syscall number of
/// either architecture (x86_64 and aarch64 both stay below 470 in Linux 6.x), with room for
/// private numbers (`500..512`) that Linux does not use.
pub const TABLE_LEN: usize = 512;

/// Handler addresses by number; 0 = none.
static TABLE: [AtomicUsize; TABLE_LEN] = [const { AtomicUsize::new(0) }; TABLE_LEN];
/// Set (release) once a builder has stored every registration.
static BUILT: AtomicBool = AtomicBool::new(false);
/// Set by the first builder to finish, which is the one that logs configuration errors.
static REPORTED: AtomicBool = AtomicBool::new(false);
/// Set (release) once that builder has logged them: another thread may see the table built
/// while the report is still being written.
static REPORT_DONE: AtomicBool = AtomicBool::new(false);
/// One flag per number in the table: "ENOSYS already logged".
static LOGGED: [AtomicBool; TABLE_LEN] = [const { AtomicBool::new(false) }; TABLE_LEN];
/// How many distinct numbers beyond the table are remembered as "logged".
const OUT_OF_RANGE_LOGGED: usize = 16;
/// Numbers beyond the table already logged (0 = free slot; 0 itself is in the table).
static LOGGED_BEYOND: [AtomicUsize; OUT_OF_RANGE_LOGGED] =
    [const { AtomicUsize::new(0) }; OUT_OF_RANGE_LOGGED];
/// Set once the notice "further unknown numbers are not logged" was printed.
static LOGGED_OVERFLOW: AtomicBool = AtomicBool::new(false);

/// What the table made of the registrations linked into the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Numbers that have a handler.
    pub handlers: usize,
    /// Registrations ignored because an earlier one (in link order) has the same number with
    /// a different handler. Each is logged once as an error.
    pub conflicts: usize,
    /// Registrations ignored because their number is not below [`TABLE_LEN`].
    pub out_of_range: usize,
}

fn build() {
    for registration in REGISTRATIONS.iter() {
        if let Some(slot) = TABLE.get(registration.number) {
            // Only an empty slot takes a handler: the first registration in slice order wins.
            let _ = slot.compare_exchange(
                0,
                registration.handler as usize,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
    BUILT.store(true, Ordering::Release);
}

/// Whether `registration` is the first in slice order with its number and handler (so that
/// counting handlers stays exact when another builder stored it first).
fn first_registration_of(registration: &Registration) -> bool {
    let first = REGISTRATIONS.iter().find(|other| {
        other.number == registration.number
            && other.handler as usize == registration.handler as usize
    });
    first.is_some_and(|first| core::ptr::eq(first, registration))
}

fn ensure_built() {
    if BUILT.load(Ordering::Acquire) {
        return;
    }
    build();
    if !REPORTED.swap(true, Ordering::Relaxed) {
        report();
        REPORT_DONE.store(true, Ordering::Release);
    }
}

/// Logs the configuration errors of the linked registrations, once.
fn report() {
    for registration in REGISTRATIONS.iter() {
        match TABLE.get(registration.number) {
            None => log::error!(
                "syscall number {} (handler at {:#x}) is beyond the table (< {TABLE_LEN}): ignored",
                registration.number,
                registration.handler as usize
            ),
            Some(slot) if slot.load(Ordering::Relaxed) != registration.handler as usize => {
                log::error!(
                    "two handlers registered for syscall {} ({}): the one at {:#x} is ignored, \
                     the first linked ({:#x}) serves it",
                    name(registration.number),
                    registration.number,
                    registration.handler as usize,
                    slot.load(Ordering::Relaxed)
                )
            }
            Some(_) => {}
        }
    }
}

/// Builds the table now (it is otherwise built on first use) and tells what it holds.
///
/// The counts come from a fresh walk of the registrations (quadratic in their number: meant
/// for start-up reports and tests, not for a hot path).
pub fn table_stats() -> TableStats {
    ensure_built();
    walk()
}

fn walk() -> TableStats {
    let mut stats = TableStats::default();
    for registration in REGISTRATIONS.iter() {
        match TABLE.get(registration.number) {
            None => stats.out_of_range += 1,
            Some(slot) if slot.load(Ordering::Relaxed) != registration.handler as usize => {
                stats.conflicts += 1
            }
            Some(_) if first_registration_of(registration) => stats.handlers += 1,
            Some(_) => {}
        }
    }
    stats
}

/// The name of syscall `number` on the target architecture, if Linux has one.
pub fn name(number: usize) -> &'static str {
    Sysno::new(number).map_or("(no Linux syscall)", |sysno| sysno.name())
}

/// The handler registered for `number`, if any.
pub fn handler(number: usize) -> Option<Handler> {
    ensure_built();
    let address = TABLE.get(number)?.load(Ordering::Relaxed);
    if address == 0 {
        return None;
    }
    // SAFETY: every non-zero entry was stored by `build` from a `Handler` function pointer,
    // and function pointers round-trip through `usize` on every target we build for.
    Some(unsafe { core::mem::transmute::<usize, Handler>(address) })
}

/// Whether ENOSYS for `number` is logged now (the first time for this number).
fn first_enosys(number: usize) -> bool {
    if let Some(flag) = LOGGED.get(number) {
        return !flag.swap(true, Ordering::Relaxed);
    }
    for slot in &LOGGED_BEYOND {
        match slot.compare_exchange(0, number, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(existing) if existing == number => return false,
            Err(_) => {}
        }
    }
    if !LOGGED_OVERFLOW.swap(true, Ordering::Relaxed) {
        log::warn!(
            "more than {OUT_OF_RANGE_LOGGED} distinct unknown syscall numbers beyond \
             {TABLE_LEN}: further ones are not logged"
        );
    }
    false
}

/// An `Err` a handler returns, as the caller will see it: errnos outside Linux's range
/// (`1..=4095`, which a raw result can express) would read as success, so they become
/// `EINVAL`.
fn sanitize(error: Errno) -> Errno {
    if (1..=4095).contains(&error.into_raw()) {
        error
    } else {
        log::error!(
            "a syscall handler returned the invalid errno {}; the caller gets EINVAL",
            error.into_raw()
        );
        Errno::EINVAL
    }
}

/// What runs after every handler ([`set_return_hook`]).
static RETURN_HOOK: spin::Once<fn()> = spin::Once::new();

/// Sets the function every call through the table runs after its handler returned and
/// before the result goes back (first call wins): where a process layer delivers the
/// signals that became pending for the caller, as Linux does on the way back from any
/// system call. A call that does not return (`exit`) does not run it. Costs a call
/// nothing but one load and a branch until it is set.
pub fn set_return_hook(hook: fn()) {
    RETURN_HOOK.call_once(|| hook);
}

/// Calls the handler for `number` (or reports it unknown) and returns its result, after
/// the return hook ([`set_return_hook`]) ran.
///
/// A number nobody registered gives `Err(ENOSYS)` and logs one line naming the syscall,
/// once per number. An error outside Linux's errno range becomes `EINVAL`.
pub fn call(number: usize, args: &Args) -> SyscallResult {
    let bracket = BRACKET.get().map(|b| (b, (b.enter)()));
    let result = call_handler(number, args);
    if let Some(hook) = RETURN_HOOK.get() {
        hook();
    }
    if let Some((b, token)) = bracket {
        (b.leave)(token);
    }
    result
}

/// Two functions around every call through the table ([`set_call_bracket`]).
#[derive(Clone, Copy, Debug)]
pub struct CallBracket {
    /// Runs first, before the handler; what it returns goes to `leave`.
    pub enter: fn() -> usize,
    /// Runs last, after the return hook, with the value `enter` returned.
    pub leave: fn(usize),
}

/// What brackets every call ([`set_call_bracket`]).
static BRACKET: spin::Once<CallBracket> = spin::Once::new();

/// Sets the functions every call through the table runs first and last (first call wins):
/// where a process layer marks the calling thread as inside the kernel for the length of
/// the call, so that an interrupt meanwhile does not run a signal handler on top of a
/// half-done system call (see uk-posix-process's asynchronous delivery). `leave` gets what
/// `enter` returned, so nested calls (a signal handler's, run by the return hook) restore
/// the outer state. A call that does not return (`exit`) does not run `leave`. Costs a
/// call one load and a branch until it is set.
pub fn set_call_bracket(bracket: CallBracket) {
    BRACKET.call_once(|| bracket);
}

fn call_handler(number: usize, args: &Args) -> SyscallResult {
    match handler(number) {
        Some(handler) => handler(args).map_err(sanitize),
        None => {
            if first_enosys(number) {
                log::warn!(
                    "syscall {} ({number}) is not implemented: ENOSYS",
                    name(number)
                );
            }
            Err(Errno::ENOSYS)
        }
    }
}

/// Folds a [`SyscallResult`] into Linux's raw convention: the value, or a negated errno in
/// `-4095..=-1`.
#[inline]
pub fn raw(result: SyscallResult) -> isize {
    match result {
        Ok(value) => value as isize,
        Err(errno) => -(errno.into_raw() as isize),
    }
}

/// Calls the handler for `number` and returns Linux's raw result: the value, or a negated
/// errno in `-4095..=-1`.
///
/// A handler must not return `Ok` with a value in `-4095..=-1` (as `isize`): Linux never
/// does (addresses and counts stay below), and the caller would read it as an error.
pub fn dispatch(number: usize, args: &Args) -> isize {
    raw(call(number, args))
}

/// Calls the handler for `number` with C's convention: the value, or `-1` with the error
/// stored through `errno` (which is left alone on success).
pub fn dispatch_errno(number: usize, args: &Args, errno: &mut i32) -> isize {
    match call(number, args) {
        Ok(value) => value as isize,
        Err(error) => {
            *errno = error.into_raw();
            -1
        }
    }
}

/// [`dispatch`] for C callers (a libc's `__syscall` redirected to direct calls): the number
/// and six arguments in registers, Linux's raw result (`-4095..=-1` is `-errno`).
#[unsafe(no_mangle)]
pub extern "C" fn uk_syscall6(
    number: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    dispatch(number, &[a0, a1, a2, a3, a4, a5])
}

/// Folds a raw Linux result into a [`SyscallResult`] (`-4095..=-1` is an error).
pub fn errno(raw: isize) -> SyscallResult {
    Errno::from_ret(raw as usize)
}

#[cfg(test)]
pub(crate) fn logged(number: usize) -> bool {
    match LOGGED.get(number) {
        Some(flag) => flag.load(Ordering::Relaxed),
        None => LOGGED_BEYOND
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == number),
    }
}

#[cfg(test)]
mod tests {
    use std::string::{String, ToString};
    use std::sync::{Mutex, Once};
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::testing;

    /// Every log line of the test process.
    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LINES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn capture_logs() {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            log::set_logger(&Capture).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Trace);
        });
    }

    fn lines_containing(needle: &str) -> usize {
        LINES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    fn sys_getuid(_: &Args) -> SyscallResult {
        Ok(1000)
    }
    crate::register!(getuid => sys_getuid);

    fn sys_sum(args: &Args) -> SyscallResult {
        Ok(args.iter().fold(0usize, |a, b| a.wrapping_add(*b)))
    }
    crate::register!(number 500 => sys_sum);

    fn sys_fail(args: &Args) -> SyscallResult {
        Err(Errno::new(args[0] as i32))
    }
    crate::register!(number 501 => sys_fail);

    // A conflict: two different handlers for 502.
    fn conflict_a(_: &Args) -> SyscallResult {
        Ok(0xa)
    }
    fn conflict_b(_: &Args) -> SyscallResult {
        Ok(0xb)
    }
    crate::register!(number 502 => conflict_a);
    crate::register!(number 502 => conflict_b);

    // The same handler twice for 503: not a conflict.
    fn twice(_: &Args) -> SyscallResult {
        Ok(3)
    }
    crate::register!(number 503 => twice);
    crate::register!(number 503 => twice);

    // Beyond the table.
    fn beyond(_: &Args) -> SyscallResult {
        Ok(0)
    }
    crate::register!(number 4096 => beyond);

    const ENOSYS: isize = -38;

    #[test]
    fn named_and_numbered_registrations_dispatch() {
        assert_eq!(dispatch(Sysno::getuid as usize, &[0; 6]), 1000);
        assert_eq!(dispatch(500, &[1, 2, 3, 4, 5, 6]), 21);
        assert_eq!(handler(500).map(|h| h(&[1; 6])), Some(Ok(6)));
        assert!(handler(testing::UNREGISTERED).is_none());
        assert_eq!(dispatch(testing::NOP, &[0; 6]), 0);
    }

    #[test]
    fn table_reports_conflicts_and_out_of_range() {
        capture_logs();
        let stats = table_stats();
        assert_eq!(stats.conflicts, 1, "{stats:?}");
        assert_eq!(stats.out_of_range, 1, "{stats:?}");
        // getuid, 500, 501, 502, 503, the testing and trap-test handlers.
        assert!(stats.handlers >= 6, "{stats:?}");
        // The first in link order serves 502, every time.
        let first = dispatch(502, &[0; 6]);
        assert!(first == 0xa || first == 0xb);
        for _ in 0..3 {
            assert_eq!(dispatch(502, &[0; 6]), first);
        }
        assert_eq!(dispatch(503, &[0; 6]), 3);
        assert_eq!(dispatch(4096, &[0; 6]), ENOSYS, "not registered");
    }

    #[test]
    fn conflicts_are_logged_once() {
        capture_logs();
        // Whoever built the table first, the report is made exactly once, and only after
        // the logger is in place if this test built it; count only when we can tell.
        let _ = table_stats();
        // Another test's thread may have built the table and still be writing the report
        // (a builder always reports, or sees that another does, right after building).
        let start = std::time::Instant::now();
        while !REPORT_DONE.load(Ordering::Acquire) {
            assert!(start.elapsed().as_secs() < 10, "the report never finished");
            std::thread::yield_now();
        }
        let conflict_lines = lines_containing("two handlers registered for syscall");
        let beyond_lines = lines_containing("beyond the table");
        assert!(conflict_lines <= 1 && beyond_lines <= 1);
        let _ = table_stats();
        assert_eq!(
            lines_containing("two handlers registered for syscall"),
            conflict_lines
        );
    }

    #[test]
    fn unknown_numbers_give_enosys_logged_once_per_number() {
        capture_logs();
        let unknown = Sysno::kexec_load as usize;
        assert!(handler(unknown).is_none());
        let name = Sysno::kexec_load.name();
        let needle = |n: usize| std::format!("({n}) is not implemented");
        assert_eq!(dispatch(unknown, &[0; 6]), ENOSYS);
        assert_eq!(dispatch(unknown, &[1; 6]), ENOSYS);
        assert_eq!(lines_containing(&needle(unknown)), 1);
        assert!(lines_containing(&std::format!("syscall {name} ({unknown})")) == 1);
        assert!(logged(unknown));
        // Another number gets its own line.
        let other = Sysno::vhangup as usize;
        assert_eq!(dispatch(other, &[0; 6]), ENOSYS);
        assert_eq!(lines_containing(&needle(other)), 1);
        // Numbers beyond the table: tests/enosys_log.rs (a process of its own, since the
        // property tests here fill the bounded memory of logged out-of-range numbers).
    }

    #[test]
    fn raw_and_c_conventions() {
        // Errors -4095..=-1; everything else is a value.
        assert_eq!(errno(-1), Err(Errno::EPERM));
        assert_eq!(errno(-4095), Err(Errno::new(4095)));
        assert_eq!(errno(-4096), Ok(-4096isize as usize));
        assert_eq!(errno(0), Ok(0));
        assert_eq!(errno(isize::MIN), Ok(isize::MIN as usize));
        assert_eq!(raw(Ok(7)), 7);
        assert_eq!(raw(Err(Errno::EBADF)), -9);
        assert_eq!(errno(raw(Err(Errno::EBADF))), Err(Errno::EBADF));

        let mut e = 0;
        assert_eq!(
            dispatch_errno(Sysno::getuid as usize, &[0; 6], &mut e),
            1000
        );
        assert_eq!(e, 0, "untouched on success");
        assert_eq!(dispatch_errno(501, &[2, 0, 0, 0, 0, 0], &mut e), -1);
        assert_eq!(e, Errno::ENOENT.into_raw());
        e = 0;
        assert_eq!(dispatch_errno(testing::UNREGISTERED, &[0; 6], &mut e), -1);
        assert_eq!(e, Errno::ENOSYS.into_raw(), "0.11 set errno to -ENOSYS");
        assert_eq!(dispatch(501, &[4095, 0, 0, 0, 0, 0]), -4095);
    }

    #[test]
    fn invalid_errnos_become_einval() {
        capture_logs();
        for bad in [0usize, 4096, 5000, -3isize as usize, i32::MIN as usize] {
            assert_eq!(dispatch(501, &[bad, 0, 0, 0, 0, 0]), -22, "{bad}");
            let mut e = 0;
            assert_eq!(dispatch_errno(501, &[bad, 0, 0, 0, 0, 0], &mut e), -1);
            assert_eq!(e, Errno::EINVAL.into_raw());
        }
    }

    #[test]
    fn c_entry_is_dispatch() {
        assert_eq!(uk_syscall6(500, 1, 2, 3, 4, 5, 6), 21);
        assert_eq!(uk_syscall6(testing::UNREGISTERED, 0, 0, 0, 0, 0, 0), ENOSYS);
        assert_eq!(uk_syscall6(501, 9, 0, 0, 0, 0, 0), -9);
    }

    #[test]
    fn names() {
        assert_eq!(name(Sysno::getuid as usize), "getuid");
        assert_eq!(name(usize::MAX), "(no Linux syscall)");
    }

    proptest! {
        /// Any number with any arguments: no panic, and a raw result that the C convention
        /// and `errno` read the same way.
        #[test]
        fn dispatch_never_panics(number in any::<usize>(), args in any::<[usize; 6]>()) {
            // Keep the private probes out: CAPTURE keeps state, CLOBBER scrambles registers,
            // FLAGS returns whatever RFLAGS holds.
            prop_assume!(
                !(testing::CAPTURE..=testing::CLOBBER).contains(&number)
                    && number != testing::FLAGS
            );
            let raw = dispatch(number, &args);
            let mut e = 0;
            let c = dispatch_errno(number, &args, &mut e);
            match errno(raw) {
                Ok(value) => prop_assert_eq!(c as usize, value),
                Err(error) => {
                    prop_assert_eq!(c, -1);
                    prop_assert_eq!(e, error.into_raw());
                    prop_assert!((1..=4095).contains(&e));
                }
            }
            if handler(number).is_none() {
                prop_assert_eq!(raw, ENOSYS);
            }
        }

        /// Numbers in and around the table: registered ones reach their handler (the same
        /// result as calling it directly), the others give ENOSYS.
        #[test]
        fn dispatch_small_numbers(number in 0usize..(TABLE_LEN + 64), args in any::<[usize; 6]>()) {
            prop_assume!(
                !(testing::CAPTURE..=testing::CLOBBER).contains(&number)
                    && number != testing::FLAGS
            );
            match handler(number) {
                Some(direct) => prop_assert_eq!(dispatch(number, &args), raw(direct(&args).map_err(sanitize))),
                None => prop_assert_eq!(dispatch(number, &args), ENOSYS),
            }
        }
    }
}
