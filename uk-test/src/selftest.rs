//! The framework's self-test: proves inside a booted image that passing cases pass and
//! that each kind of failure (expectation, assertion, panic) is caught and reported.
//! A CPU exception case lives in each board's suite, since raising one is arch-specific.

crate::ktest! {
    /// Expectations that hold leave the case passing.
    fn selftest_passing_expectations() {
        let two = core::hint::black_box(2);
        crate::expect!(two + two == 4);
        crate::expect_eq!(two * 3, 6);
        crate::expect!(two < 3, "two is {}", two);
    }
}

crate::ktest! {
    /// A failed expectation is reported as a failure.
    #[should_fail(expectation)]
    fn selftest_failed_expectation_is_reported() {
        crate::expect_eq!(core::hint::black_box(1) + 1, 3);
    }
}

crate::ktest! {
    /// A failed `assert!` ends the case as a failure; the run goes on with the next case.
    #[should_fail(panic)]
    fn selftest_failed_assertion_is_reported() {
        let answer = core::hint::black_box(41);
        assert_eq!(answer, 42, "deliberate");
    }
}

crate::ktest! {
    /// A panic ends the case as a failure; the run goes on with the next case.
    #[should_fail(panic)]
    fn selftest_panic_is_reported() {
        if core::hint::black_box(true) {
            panic!("deliberate panic inside a test case");
        }
    }
}
