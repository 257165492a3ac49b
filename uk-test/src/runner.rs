//! The runner: progress kept in statics so it survives a panic or CPU exception in a case.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Mutex;
use uk_hal::{Console, ConsoleWriter};

use crate::{Expected, Failure, TestCase};

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
    /// What the running case must fail with (`None`: it must pass).
    current_expected: Mutex<Option<Expected>>,
    /// The running case's first failure that its [`Expected`] does not allow.
    first_unexpected: Mutex<Option<Failure>>,
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
            current_expected: Mutex::new(None),
            first_unexpected: Mutex::new(None),
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
            *self.first_unexpected.lock() = None;
            *self.current_expected.lock() = case.should_fail;
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
        self.abort(failure, None)
    }

    /// [`Runner::abort_current`] for a CPU exception, with the board's `report` of it: a
    /// case that must fail with `cpu_exception = "text"` ([`Expected::CpuException`])
    /// passes only if the report contains the text.
    pub fn abort_current_exception(&self, report: &str) -> bool {
        self.abort(Failure::CpuException, Some(report))
    }

    fn abort(&self, failure: Failure, report: Option<&str>) -> bool {
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
        self.note_failure(failure, report);
        self.finish_current(console, cases);
        true
    }

    fn note_failure(&self, failure: Failure, report: Option<&str>) {
        self.current_failed.store(true, Ordering::SeqCst);
        if let Some(mut first) = self.first_failure.try_lock() {
            first.get_or_insert(failure);
        }
        let expected = self.current_expected.try_lock().and_then(|e| *e);
        if expected.is_some_and(|e| !e.admits(&failure, report)) {
            if let Some(mut unexpected) = self.first_unexpected.try_lock() {
                unexpected.get_or_insert(failure);
            }
        }
    }

    fn finish_current(&self, console: &'static dyn Console, cases: &'static [TestCase]) {
        let index = self.current.swap(NONE, Ordering::SeqCst);
        let Some(case) = cases.get(index) else { return };
        let failed = self.current_failed.load(Ordering::SeqCst);
        let unexpected = *self.first_unexpected.lock();
        let mut out = ConsoleWriter(console);
        let _ = write!(out, "test {}::{} ... ", case.suite, case.name);
        let passed = match case.should_fail {
            None => !failed,
            Some(_) => failed && unexpected.is_none(),
        };
        let _ = match (case.should_fail, failed, unexpected) {
            (None, false, _) => writeln!(out, "ok"),
            (None, true, _) => match *self.first_failure.lock() {
                Some(first) => writeln!(out, "FAILED ({first})"),
                None => writeln!(out, "FAILED"),
            },
            (Some(expected), false, _) => {
                writeln!(out, "FAILED (expected {expected}, none happened)")
            }
            (Some(_), true, None) => writeln!(out, "ok (failed as expected)"),
            (Some(expected), true, Some(got)) => {
                writeln!(out, "FAILED (expected {expected}, got {got})")
            }
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
        runner.note_failure(failure, None);
    } else {
        panic!("expectation failed outside a test case: {failure}");
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::borrow::ToOwned;
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
        expecting(name, run, should_fail.then_some(Expected::Any))
    }

    fn expecting(name: &'static str, run: fn(), should_fail: Option<Expected>) -> TestCase {
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

    fn tag_check_fault() {
        // What the runtime does on a CPU exception: charge it with the board's report.
        assert!(Runner::global().abort_current_exception(
            "CPU exception: data abort\n  ESR_EL1  0x96000051  tag check fault, on a write\n"
        ));
    }
    fn stack_overflow() {
        assert!(Runner::global().abort_current_exception(
            "CPU exception: data abort\n  FAR_EL1  0x4039dfd0  (stack guard page: stack overflow)\n"
        ));
    }
    fn exception_without_report() {
        assert!(Runner::global().abort_current(Failure::CpuException));
    }
    fn expectation_then_exception() {
        expect!(false);
        tag_check_fault();
    }

    #[test]
    fn should_fail_with_a_named_failure_rejects_other_failures() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        const TAG: Option<Expected> = Some(Expected::CpuException("tag check fault"));
        const ANY_EXCEPTION: Option<Expected> = Some(Expected::CpuException(""));
        static CASES: std::sync::OnceLock<[TestCase; 12]> = std::sync::OnceLock::new();
        let cases = CASES.get_or_init(|| {
            [
                expecting("tag_fault", tag_check_fault, TAG),
                expecting("overflow_instead", stack_overflow, TAG),
                expecting("panic_instead", aborted, TAG),
                expecting("expectation_instead", failing, TAG),
                expecting("no_failure", passing, TAG),
                expecting("expectation_first", expectation_then_exception, TAG),
                expecting("no_report", exception_without_report, TAG),
                expecting("any_exception", stack_overflow, ANY_EXCEPTION),
                expecting(
                    "unreported_exception",
                    exception_without_report,
                    ANY_EXCEPTION,
                ),
                expecting("expectation", failing, Some(Expected::Expectation)),
                expecting("panic", aborted, Some(Expected::Panic)),
                expecting(
                    "panic_not_expectation",
                    aborted,
                    Some(Expected::Expectation),
                ),
            ]
        });
        let (summary, lines) = run(cases, &[]);
        let results: Vec<&String> = lines.iter().filter(|l| l.starts_with("test ")).collect();
        let file = file!();
        let expected = [
            "test suite::tag_fault ... ok (failed as expected)".to_owned(),
            "test suite::overflow_instead ... FAILED (expected a CPU exception reporting \
             \"tag check fault\", got CPU exception)"
                .to_owned(),
            "test suite::panic_instead ... FAILED (expected a CPU exception reporting \
             \"tag check fault\", got panicked at x.rs:7)"
                .to_owned(),
            std::format!(
                "test suite::expectation_instead ... FAILED (expected a CPU exception reporting \
                 \"tag check fault\", got {file}:"
            ),
            "test suite::no_failure ... FAILED (expected a CPU exception reporting \
             \"tag check fault\", none happened)"
                .to_owned(),
            std::format!(
                "test suite::expectation_first ... FAILED (expected a CPU exception reporting \
                 \"tag check fault\", got {file}:"
            ),
            "test suite::no_report ... FAILED (expected a CPU exception reporting \
             \"tag check fault\", got CPU exception)"
                .to_owned(),
            "test suite::any_exception ... ok (failed as expected)".to_owned(),
            "test suite::unreported_exception ... ok (failed as expected)".to_owned(),
            "test suite::expectation ... ok (failed as expected)".to_owned(),
            "test suite::panic ... ok (failed as expected)".to_owned(),
            "test suite::panic_not_expectation ... FAILED (expected a failed expectation, got \
             panicked at x.rs:7)"
                .to_owned(),
        ];
        assert_eq!(results.len(), expected.len(), "{lines:#?}");
        for (line, want) in results.iter().zip(&expected) {
            assert!(
                line.starts_with(want.as_str()),
                "{line:?} does not start with {want:?}"
            );
        }
        assert_eq!((summary.passed, summary.failed), (5, 7));
    }

    crate::ktest! {
        #[should_fail(cpu_exception = "tag check fault")]
        fn macro_tag_check_fault() {}
    }
    crate::ktest! {
        /// Documented.
        #[should_fail(cpu_exception)]
        fn macro_any_exception() {}
    }
    crate::ktest! {
        #[should_fail(expectation)]
        fn macro_expectation() {}
    }
    crate::ktest! {
        #[should_fail(panic)]
        fn macro_panic() {}
    }
    crate::ktest! {
        #[should_fail]
        fn macro_any() {}
    }
    crate::ktest! {
        fn macro_passing() {}
    }

    #[test]
    fn the_macro_records_what_a_case_must_fail_with() {
        let find = |name: &str| {
            crate::CASES
                .iter()
                .find(|c| c.name == name)
                .map(|c| (c.suite, c.should_fail))
        };
        let tag = Some(Expected::CpuException("tag check fault"));
        assert_eq!(find("macro_tag_check_fault"), Some(("uk-test", tag)));
        assert_eq!(
            find("macro_any_exception").unwrap().1,
            Some(Expected::CpuException(""))
        );
        assert_eq!(
            find("macro_expectation").unwrap().1,
            Some(Expected::Expectation)
        );
        assert_eq!(find("macro_panic").unwrap().1, Some(Expected::Panic));
        assert_eq!(find("macro_any").unwrap().1, Some(Expected::Any));
        assert_eq!(find("macro_passing").unwrap().1, None);
    }

    #[test]
    fn expected_failures_are_described_and_matched() {
        let panic = Failure::Panic {
            file: crate::SourcePath::new("a.rs"),
            line: 1,
        };
        let expectation = Failure::Expectation {
            file: "b.rs",
            line: 2,
            expr: "x",
        };
        let tag = Expected::CpuException("tag check");
        assert!(tag.admits(&Failure::CpuException, Some("a tag check fault")));
        assert!(!tag.admits(&Failure::CpuException, Some("a translation fault")));
        assert!(!tag.admits(&Failure::CpuException, None));
        assert!(!tag.admits(&panic, Some("tag check")));
        assert!(Expected::CpuException("").admits(&Failure::CpuException, None));
        assert!(Expected::Panic.admits(&panic, None));
        assert!(!Expected::Panic.admits(&expectation, None));
        assert!(Expected::Expectation.admits(&expectation, None));
        assert!(!Expected::Expectation.admits(&Failure::CpuException, Some("")));
        for failure in [panic, expectation, Failure::CpuException] {
            assert!(Expected::Any.admits(&failure, None));
        }
        assert_eq!(std::format!("{}", Expected::Any), "a failure");
        assert_eq!(
            std::format!("{}", Expected::CpuException("")),
            "a CPU exception"
        );
        assert_eq!(
            std::format!("{tag}"),
            "a CPU exception reporting \"tag check\""
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
