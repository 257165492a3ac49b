//! In-image test framework of uk-rs (the role of Unikraft's `uktest`).
//!
//! Any crate registers test cases with [`ktest!`]; the cases land in one link-time table
//! ([`CASES`], a `linkme` distributed slice) and an image that links the crate runs them all
//! inside the booted unikernel. Cases use [`expect!`] and [`expect_eq!`] for expectations
//! that record a failure and go on (Unikraft's `UK_TEST_EXPECT`), and ordinary `assert!` for
//! expectations that end the case (its `UK_TEST_ASSERT`): the runtime turns the panic into a
//! failed case and carries on with the next one.
//!
//! # Output
//!
//! Each case prints exactly one result line, and every failed expectation one detail line
//! before it:
//!
//! ```text
//!     expectation failed at uk-test/src/selftest.rs:20: 1 + 1 == 3
//! test uk-test::selftest_failing_expectation ... FAILED (uk-test/src/selftest.rs:20: 1 + 1 == 3)
//! test uk-test::selftest_passes ... ok
//! 12 passed, 1 failed
//! ```
//!
//! The closing line is the only line of the form `N passed, N failed`, so a host tool (or
//! CI) reads the outcome from it; the runtime then exits QEMU with success only when nothing
//! failed.
//!
//! # Surviving panics and CPU exceptions
//!
//! The runner keeps its progress in statics ([`Runner`]), not on the stack. When a case
//! panics or takes a CPU exception, the runtime calls [`Runner::abort_current`], which
//! reports the case as failed, and then restarts [`Runner::run`] on a fresh stack: the
//! remaining cases still run, and a broken case can never hang the run.
//!
//! # Cases that must fail
//!
//! `#[should_fail]` inverts a case: it passes only if an expectation fails, it panics, or it
//! takes a CPU exception. The self-test suite uses this to prove that failures are caught.
//!
//! A case can also name the failure it must end with ([`Expected`]), so that a different
//! one (a stack overflow where a tag check fault was meant, a panic where an expectation
//! was) fails it instead of passing it:
//!
//! ```text
//! #[should_fail(expectation)]                        // only failed expect!/expect_eq!
//! #[should_fail(panic)]                              // only a panic (or a failed assert!)
//! #[should_fail(cpu_exception)]                      // only a CPU exception
//! #[should_fail(cpu_exception = "tag check fault")]  // whose board report contains this
//! ```
//!
//! Every failure of such a case must be of that kind; the result line names the first one
//! that was not: `FAILED (expected a CPU exception reporting "tag check fault", got panicked
//! at src/lib.rs:12)`. The report text reaches the runner through
//! [`Runner::abort_current_exception`], which the runtime calls with what the board printed.
//!
//! # Example
//!
//! ```
//! uk_test::ktest! {
//!     /// Two plus two, inside the image.
//!     fn arithmetic_works() {
//!         uk_test::expect_eq!(2 + 2, 4);
//!     }
//! }
//! # fn main() { arithmetic_works(); }
//! ```
#![no_std]

mod runner;
#[cfg(feature = "selftest")]
mod selftest;

pub use runner::{Runner, Summary};

#[doc(hidden)]
pub use linkme as __linkme;

/// One registered in-image test case.
#[derive(Debug)]
pub struct TestCase {
    /// The registering crate's package name.
    pub suite: &'static str,
    /// The test function's name.
    pub name: &'static str,
    /// The test body.
    pub run: fn(),
    /// `Some` when the case is expected to fail, with what (see the crate docs).
    pub should_fail: Option<Expected>,
}

/// The failure a `#[should_fail]` case must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Any failure (`#[should_fail]`).
    Any,
    /// Failed [`expect!`] or [`expect_eq!`] expectations (`#[should_fail(expectation)]`).
    Expectation,
    /// A panic, a failed `assert!` included (`#[should_fail(panic)]`).
    Panic,
    /// A CPU exception whose board report contains this text (`#[should_fail(cpu_exception
    /// = "text")]`); empty for any CPU exception (`#[should_fail(cpu_exception)]`).
    CpuException(&'static str),
}

impl Expected {
    /// Whether `failure` is one this expectation allows; `report` is the board's report of a
    /// CPU exception, when the runtime passed it on.
    pub fn admits(&self, failure: &Failure, report: Option<&str>) -> bool {
        match (self, failure) {
            (Expected::Any, _)
            | (Expected::Expectation, Failure::Expectation { .. })
            | (Expected::Panic, Failure::Panic { .. }) => true,
            (Expected::CpuException(text), Failure::CpuException) => {
                text.is_empty() || report.is_some_and(|r| r.contains(text))
            }
            _ => false,
        }
    }
}

impl core::fmt::Display for Expected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Expected::Any => f.write_str("a failure"),
            Expected::Expectation => f.write_str("a failed expectation"),
            Expected::Panic => f.write_str("a panic"),
            Expected::CpuException("") => f.write_str("a CPU exception"),
            Expected::CpuException(text) => write!(f, "a CPU exception reporting {text:?}"),
        }
    }
}

impl TestCase {
    /// Whether `filters` select this case ([`selects`]).
    pub fn matches<'a>(&self, filters: impl IntoIterator<Item = &'a str>) -> bool {
        selects(filters, self.suite, self.name)
    }
}

/// The image's rule for choosing cases, also what a host tool that plans runs (`cargo uk
/// test`) must agree with: no filter selects every case; a filter selects a case whose
/// suite or name contains it, or, written `s::n`, one whose suite ends with `s` and whose
/// name starts with `n`.
pub fn selects<'a>(filters: impl IntoIterator<Item = &'a str>, suite: &str, name: &str) -> bool {
    let mut any_filter = false;
    for filter in filters {
        any_filter = true;
        if suite.contains(filter)
            || name.contains(filter)
            || filter
                .split_once("::")
                .is_some_and(|(s, n)| suite.ends_with(s) && name.starts_with(n))
        {
            return true;
        }
    }
    !any_filter
}

/// Every test case linked into the image, in link order.
#[linkme::distributed_slice]
pub static CASES: [TestCase];

/// Defines a function and registers it as an in-image test case of the calling crate.
///
/// An optional `#[should_fail]` before the function marks a case that passes only if it
/// fails; `#[should_fail(expectation)]`, `#[should_fail(panic)]`,
/// `#[should_fail(cpu_exception)]` and `#[should_fail(cpu_exception = "text")]` say with
/// what ([`Expected`], see the crate docs).
#[macro_export]
macro_rules! ktest {
    ($(#[doc = $doc:literal])* #[should_fail] fn $name:ident() $body:block) => {
        $crate::ktest!(
            @emit ::core::option::Option::Some($crate::Expected::Any),
            $(#[doc = $doc])* fn $name() $body
        );
    };
    ($(#[doc = $doc:literal])* #[should_fail($($kind:tt)+)] fn $name:ident() $body:block) => {
        $crate::ktest!(
            @emit ::core::option::Option::Some($crate::ktest!(@expected $($kind)+)),
            $(#[doc = $doc])* fn $name() $body
        );
    };
    ($(#[doc = $doc:literal])* fn $name:ident() $body:block) => {
        $crate::ktest!(@emit ::core::option::Option::None, $(#[doc = $doc])* fn $name() $body);
    };
    (@expected expectation) => { $crate::Expected::Expectation };
    (@expected panic) => { $crate::Expected::Panic };
    (@expected cpu_exception) => { $crate::Expected::CpuException("") };
    (@expected cpu_exception = $text:literal) => { $crate::Expected::CpuException($text) };
    (@expected $($other:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "unknown #[should_fail(...)] kind `",
            ::core::stringify!($($other)*),
            "` (allowed: expectation, panic, cpu_exception, cpu_exception = \"text\")"
        ))
    };
    (@emit $should_fail:expr, $(#[doc = $doc:literal])* fn $name:ident() $body:block) => {
        $(#[doc = $doc])*
        pub fn $name() $body

        const _: () = {
            #[$crate::__linkme::distributed_slice($crate::CASES)]
            #[linkme(crate = $crate::__linkme)]
            static CASE: $crate::TestCase = $crate::TestCase {
                suite: ::core::env!("CARGO_PKG_NAME"),
                name: ::core::stringify!($name),
                run: $name,
                should_fail: $should_fail,
            };
        };
    };
}

/// Checks a condition; on failure records it (with file, line and the expression) and lets
/// the case continue.
#[macro_export]
macro_rules! expect {
    ($cond:expr $(,)?) => {
        if !$cond {
            $crate::record_failure(::core::file!(), ::core::line!(), ::core::stringify!($cond), None);
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            $crate::record_failure(
                ::core::file!(),
                ::core::line!(),
                ::core::stringify!($cond),
                Some(format_args!($($msg)+)),
            );
        }
    };
}

/// Checks that two values are equal; on failure records both values and lets the case
/// continue.
#[macro_export]
macro_rules! expect_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (left, right) => {
                if !(*left == *right) {
                    $crate::record_failure(
                        ::core::file!(),
                        ::core::line!(),
                        ::core::concat!(
                            ::core::stringify!($left),
                            " == ",
                            ::core::stringify!($right)
                        ),
                        Some(format_args!("left: {:?}, right: {:?}", left, right)),
                    );
                }
            }
        }
    };
}

/// Records a failed expectation of the running case: `expr` is the expectation's source
/// text, `detail` optional values. Called by [`expect!`] and [`expect_eq!`].
pub fn record_failure(
    file: &'static str,
    line: u32,
    expr: &'static str,
    detail: Option<core::fmt::Arguments<'_>>,
) {
    runner::record_failure(Failure::Expectation { file, line, expr }, detail);
}

/// Why a case failed; the first failure of a case is named on its result line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An [`expect!`] or [`expect_eq!`] did not hold.
    Expectation {
        /// Source file of the expectation.
        file: &'static str,
        /// Line of the expectation.
        line: u32,
        /// Source text of the expectation.
        expr: &'static str,
    },
    /// The case panicked (this includes a failed `assert!`).
    Panic {
        /// Source file of the panic.
        file: SourcePath,
        /// Line of the panic.
        line: u32,
    },
    /// The case took a CPU exception; the board printed the register report above.
    CpuException,
}

/// A source path kept by value (a panic location only lives as long as the panic), cut to
/// its last [`SourcePath::CAPACITY`] bytes if longer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePath {
    bytes: [u8; SourcePath::CAPACITY],
    len: usize,
    cut: bool,
}

impl SourcePath {
    /// Longest path kept whole.
    pub const CAPACITY: usize = 96;

    /// Copies `path`, keeping its tail (the file name) if it is too long.
    pub fn new(path: &str) -> Self {
        let mut start = path.len().saturating_sub(Self::CAPACITY);
        while !path.is_char_boundary(start) {
            start += 1;
        }
        let tail = &path.as_bytes()[start..];
        let mut bytes = [0; Self::CAPACITY];
        bytes[..tail.len()].copy_from_slice(tail);
        SourcePath {
            bytes,
            len: tail.len(),
            cut: start > 0,
        }
    }

    /// The kept path.
    pub fn as_str(&self) -> &str {
        // The bytes are a char-boundary slice of a `str`, so this cannot fail.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Display for SourcePath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.cut {
            f.write_str("...")?;
        }
        f.write_str(self.as_str())
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Expectation { file, line, expr } => write!(f, "{file}:{line}: {expr}"),
            Failure::Panic { file, line } => write!(f, "panicked at {file}:{line}"),
            Failure::CpuException => f.write_str("CPU exception"),
        }
    }
}
