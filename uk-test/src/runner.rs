//! The runner: progress kept in statics so it survives a panic or CPU exception in a case.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Mutex;
use uk_hal::{Console, ConsoleWriter};

use crate::{Failure, TestCase};

/// Totals of a finished run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed (including `should_fail` cases that failed).
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases left out by the filters.
    pub filtered_out: usize,
}

impl Summary {
    /// `true` when no case failed.
    pub fn success(&self) -> bool {
        self.failed == 0
    }
}

struct Setup {
    console: &'static dyn Console,
    cases: &'static [TestCase],
    filters: &'static [&'static str],
}

/// The in-image test runner.
///
/// There is one per image ([`Runner::global`]); its state lives in statics so that
/// [`Runner::run`] can be restarted after a case panicked or took a CPU exception and
/// continue with the next case.
pub struct Runner {
    setup: Mutex<Option<Setup>>,
    next: AtomicUsize,
    current: AtomicUsize,
    passed: AtomicUsize,
    failed: AtomicUsize,
    filtered_out: AtomicUsize,
    current_failed: AtomicBool,
    first_failure: Mutex<Option<Failure>>,
}

const NONE: usize = usize::MAX;

static GLOBAL: Runner = Runner::new();

impl Runner {
    const fn new() -> Self {
        Runner {
            setup: Mutex::new(None),
            next: AtomicUsize::new(0),
            current: AtomicUsize::new(NONE),
            passed: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            filtered_out: AtomicUsize::new(0),
            current_failed: AtomicBool::new(false),
            first_failure: Mutex::new(None),
        }
    }

    /// The image's runner.
    pub fn global() -> &'static Runner {
        &GLOBAL
    }

    /// Prepares a run of `cases` (normally [`crate::CASES`]) selected by `filters`, writing to
    /// `console`. Resets all counts.
    pub fn prepare(
        &self,
        console: &'static dyn Console,
        cases: &'static [TestCase],
        filters: &'static [&'static str],
    ) {
        *self.setup.lock() = Some(Setup {
            console,
            cases,
            filters,
        });
        self.next.store(0, Ordering::SeqCst);
        self.current.store(NONE, Ordering::SeqCst);
        self.passed.store(0, Ordering::SeqCst);
        self.failed.store(0, Ordering::SeqCst);
        self.filtered_out.store(0, Ordering::SeqCst);
    }

    /// `true` while a case is running: a panic or CPU exception now belongs to that case.
    pub fn in_case(&self) -> bool {
        self.current.load(Ordering::SeqCst) != NONE
    }

    /// Runs every remaining case and returns the totals, after printing the closing
    /// `N passed, N failed` line. Safe to call again after [`Runner::abort_current`]: it
    /// resumes with the case after the aborted one.
    ///
    /// # Panics
    ///
    /// If [`Runner::prepare`] was not called first.
    pub fn run(&self) -> Summary {
        let (console, cases, filters) = {
            let setup = self.setup.lock();
            let setup = setup.as_ref().expect("Runner::run before Runner::prepare");
            (setup.console, setup.cases, setup.filters)
        };
        loop {
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(case) = cases.get(index) else { break };
            if !case.matches(filters.iter().copied()) {
                self.filtered_out.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            self.current_failed.store(false, Ordering::SeqCst);
            *self.first_failure.lock() = None;
            self.current.store(index, Ordering::SeqCst);
            (case.run)();
            self.finish_current(console, cases);
        }
        let summary = self.summary();
        let _ = writeln!(
            ConsoleWriter(console),
            "{} passed, {} failed",
            summary.passed,
            summary.failed
        );
        summary
    }

    /// Totals so far.
    pub fn summary(&self) -> Summary {
        Summary {
            passed: self.passed.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            filtered_out: self.filtered_out.load(Ordering::SeqCst),
        }
    }

    /// Ends the running case with `failure` (a panic or CPU exception) and reports it. The
    /// caller then restarts [`Runner::run`] on a fresh stack. Returns `false`, doing nothing,
    /// when no case is running.
    pub fn abort_current(&self, failure: Failure) -> bool {
        if !self.in_case() {
            return false;
        }
        let Some((console, cases)) = self
            .setup
            .try_lock()
            .and_then(|s| s.as_ref().map(|s| (s.console, s.cases)))
        else {
            return false;
        };
        self.note_failure(failure);
        self.finish_current(console, cases);
        true
    }

    fn note_failure(&self, failure: Failure) {
        self.current_failed.store(true, Ordering::SeqCst);
        if let Some(mut first) = self.first_failure.try_lock() {
            first.get_or_insert(failure);
        }
    }

    fn finish_current(&self, console: &'static dyn Console, cases: &'static [TestCase]) {
        let index = self.current.swap(NONE, Ordering::SeqCst);
        let Some(case) = cases.get(index) else { return };
        let failed = self.current_failed.load(Ordering::SeqCst);
        let mut out = ConsoleWriter(console);
        let _ = write!(out, "test {}::{} ... ", case.suite, case.name);
        let passed = failed == case.should_fail;
        let _ = match (passed, case.should_fail) {
            (true, false) => writeln!(out, "ok"),
            (true, true) => writeln!(out, "ok (failed as expected)"),
            (false, true) => writeln!(out, "FAILED (expected a failure, none happened)"),
            (false, false) => match *self.first_failure.lock() {
                Some(first) => writeln!(out, "FAILED ({first})"),
                None => writeln!(out, "FAILED"),
            },
        };
        let counter = if passed { &self.passed } else { &self.failed };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) fn record_failure(failure: Failure, detail: Option<core::fmt::Arguments<'_>>) {
    let runner = Runner::global();
    if let Some(console) = runner
        .setup
        .try_lock()
        .and_then(|s| s.as_ref().map(|s| s.console))
    {
        let mut out = ConsoleWriter(console);
        let _ = match detail {
            Some(detail) => writeln!(out, "    expectation failed at {failure} ({detail})"),
            None => writeln!(out, "    expectation failed at {failure}"),
        };
    }
    if runner.in_case() {
        runner.note_failure(failure);
    } else {
        panic!("expectation failed outside a test case: {failure}");
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;
    use std::sync::Mutex as StdMutex;
    use std::vec::Vec;

    use super::*;
    use crate::{expect, expect_eq};

    /// Serialises tests: the runner and its output are global.
    static SERIAL: StdMutex<()> = StdMutex::new(());
    static OUTPUT: StdMutex<String> = StdMutex::new(String::new());

    struct Capture;
    impl Console for Capture {
        fn write_bytes(&self, bytes: &[u8]) {
            OUTPUT
                .lock()
                .unwrap()
                .push_str(core::str::from_utf8(bytes).unwrap());
        }
    }

    fn run(cases: &'static [TestCase], filters: &'static [&'static str]) -> (Summary, Vec<String>) {
        OUTPUT.lock().unwrap().clear();
        let runner = Runner::global();
        runner.prepare(&Capture, cases, filters);
        let summary = runner.run();
        let lines = OUTPUT.lock().unwrap().lines().map(String::from).collect();
        (summary, lines)
    }

    fn case(name: &'static str, run: fn(), should_fail: bool) -> TestCase {
        TestCase {
            suite: "suite",
            name,
            run,
            should_fail,
        }
    }

    fn passing() {
        expect!(true);
        expect_eq!(1 + 1, 2);
    }
    fn failing() {
        expect_eq!(1 + 1, 3);
    }
    static AFTER_FAILURE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    fn failing_then_continuing() {
        expect!(1 > 2, "one is not above {}", 2);
        AFTER_FAILURE.store(true, Ordering::SeqCst);
    }
    fn aborted() {
        // What the runtime does on a panic: charge the case, then restart the run.
        assert!(Runner::global().abort_current(Failure::Panic {
            file: crate::SourcePath::new("x.rs"),
            line: 7
        }));
    }

    #[test]
    fn passing_and_failing_cases_are_counted_and_reported() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CASES: std::sync::OnceLock<[TestCase; 2]> = std::sync::OnceLock::new();
        let cases =
            CASES.get_or_init(|| [case("good", passing, false), case("bad", failing, false)]);
        let (summary, lines) = run(cases, &[]);
        assert_eq!(
            summary,
            Summary {
                passed: 1,
                failed: 1,
                filtered_out: 0
            }
        );
        assert!(!summary.success());
        let file = file!();
        assert_eq!(lines[0], "test suite::good ... ok");
        assert!(
            lines[1].starts_with(&std::format!("    expectation failed at {file}:")),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].ends_with(": 1 + 1 == 3 (left: 2, right: 3)"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with(&std::format!("test suite::bad ... FAILED ({file}:")),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with(": 1 + 1 == 3)"), "{}", lines[2]);
        assert_eq!(lines[3], "1 passed, 1 failed");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn a_failed_expectation_lets_the_case_continue() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CASES: std::sync::OnceLock<[TestCase; 1]> = std::sync::OnceLock::new();
        let cases = CASES.get_or_init(|| [case("continues", failing_then_continuing, false)]);
        AFTER_FAILURE.store(false, Ordering::SeqCst);
        let (summary, lines) = run(cases, &[]);
        assert!(AFTER_FAILURE.load(Ordering::SeqCst));
        assert_eq!(summary.failed, 1);
        assert!(
            lines[0].ends_with("1 > 2 (one is not above 2)"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn should_fail_inverts_the_verdict() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CASES: std::sync::OnceLock<[TestCase; 2]> = std::sync::OnceLock::new();
        let cases = CASES.get_or_init(|| {
            [
                case("must_fail", failing, true),
                case("wrongly_passes", passing, true),
            ]
        });
        let (summary, lines) = run(cases, &[]);
        assert_eq!((summary.passed, summary.failed), (1, 1));
        assert_eq!(
            lines[1],
            "test suite::must_fail ... ok (failed as expected)"
        );
        assert_eq!(
            lines[2],
            "test suite::wrongly_passes ... FAILED (expected a failure, none happened)"
        );
    }

    #[test]
    fn an_aborted_case_fails_and_the_run_continues() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CASES: std::sync::OnceLock<[TestCase; 2]> = std::sync::OnceLock::new();
        let cases = CASES.get_or_init(|| {
            [
                case("aborts", aborted, false),
                case("after", passing, false),
            ]
        });
        let (summary, lines) = run(cases, &[]);
        assert_eq!(
            lines[0],
            "test suite::aborts ... FAILED (panicked at x.rs:7)"
        );
        assert_eq!(lines[1], "test suite::after ... ok");
        assert_eq!((summary.passed, summary.failed), (1, 1));
        assert!(
            !Runner::global().abort_current(Failure::CpuException),
            "no case is running"
        );
    }

    #[test]
    fn filters_select_by_suite_name_or_path() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static CASES: std::sync::OnceLock<[TestCase; 3]> = std::sync::OnceLock::new();
        let cases = CASES.get_or_init(|| {
            [
                case("alpha", passing, false),
                case("beta", passing, false),
                case("gamma", failing, false),
            ]
        });
        let (summary, lines) = run(cases, &["beta", "suite::alp"]);
        assert_eq!(
            summary,
            Summary {
                passed: 2,
                failed: 0,
                filtered_out: 1
            }
        );
        assert_eq!(lines.len(), 3);
        let (summary, _) = run(cases, &["nothing"]);
        assert_eq!(
            summary,
            Summary {
                passed: 0,
                failed: 0,
                filtered_out: 3
            }
        );
    }

    #[test]
    fn long_source_paths_keep_their_tail() {
        let long = "d/".repeat(60) + "file.rs";
        let kept = crate::SourcePath::new(&long);
        assert!(kept.as_str().ends_with("/file.rs"));
        assert_eq!(kept.as_str().len(), crate::SourcePath::CAPACITY);
        assert!(std::format!("{kept}").starts_with("..."));
        assert_eq!(
            std::format!("{}", crate::SourcePath::new("a/b.rs")),
            "a/b.rs"
        );
        let wide = "é".repeat(60);
        assert!(
            crate::SourcePath::new(&wide)
                .as_str()
                .chars()
                .all(|c| c == 'é')
        );
    }

    #[test]
    #[should_panic(expected = "outside a test case")]
    fn an_expectation_outside_a_case_panics() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        expect!(false);
    }
}
