//! Reading test results out of output text: the in-image test runner's lines and
//! `cargo test`'s result lines.

/// The verdict of one in-image test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseVerdict {
    /// `... ok`
    Ok,
    /// `... ok (failed as expected)`: a `#[should_fail]` case that failed.
    FailedAsExpected,
    /// `... FAILED (reason)`, with the text after `FAILED`.
    Failed(String),
}

impl CaseVerdict {
    /// `true` for the two passing verdicts.
    pub fn passed(&self) -> bool {
        !matches!(self, CaseVerdict::Failed(_))
    }
}

/// One `test SUITE::NAME ... VERDICT` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseLine {
    /// `SUITE::NAME`.
    pub name: String,
    /// What happened.
    pub verdict: CaseVerdict,
}

/// Passed and failed counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

/// Everything the in-image test runner reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KtestReport {
    /// The case lines, in order.
    pub cases: Vec<CaseLine>,
    /// The closing `N passed, N failed` line, when one was printed.
    pub closing: Option<Counts>,
}

impl KtestReport {
    /// The run's counts: the closing line's, or (when it is missing) those of the case lines.
    pub fn counts(&self) -> Counts {
        self.closing.unwrap_or_else(|| Counts {
            passed: self.cases.iter().filter(|c| c.verdict.passed()).count(),
            failed: self.cases.iter().filter(|c| !c.verdict.passed()).count(),
        })
    }

    /// Names of the failed cases.
    pub fn failed_names(&self) -> impl Iterator<Item = &str> {
        self.cases
            .iter()
            .filter(|c| !c.verdict.passed())
            .map(|c| c.name.as_str())
    }
}

/// SeaBIOS (the x86 `pc` firmware) ends its banner with this and no line break, so the
/// guest's first line would start after it.
const SEABIOS_BOOT: &str = "Booting from ROM..";

/// Removes terminal escape sequences (`ESC [ ... final`, `ESC x`) and control characters
/// other than tab from one line.
pub fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next_if_eq(&'[').is_some() {
                // Parameters and intermediates, then one final byte in '@'..='~'.
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// The lines of console output as a person reads them: without the `\r` of the guest's
/// `\r\n` line ends, without terminal escape sequences, and without the firmware's
/// `Booting from ROM..` in front of the guest's first line.
pub fn output_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(|l| {
        let clean = strip_escapes(l);
        match clean.strip_prefix(SEABIOS_BOOT) {
            Some(rest) => rest.to_owned(),
            None => clean,
        }
    })
}

/// Parses `test SUITE::NAME ... ok`, `... ok (failed as expected)` or `... FAILED (...)`.
pub fn parse_case_line(line: &str) -> Option<CaseLine> {
    let rest = line.trim_end().strip_prefix("test ")?;
    let (name, verdict) = rest.split_once(" ... ")?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let verdict = match verdict {
        "ok" => CaseVerdict::Ok,
        "ok (failed as expected)" => CaseVerdict::FailedAsExpected,
        v => CaseVerdict::Failed(v.strip_prefix("FAILED")?.trim().to_owned()),
    };
    Some(CaseLine {
        name: name.to_owned(),
        verdict,
    })
}

fn count(word: &str, suffix: &str) -> Option<usize> {
    word.trim().strip_suffix(suffix)?.trim_end().parse().ok()
}

/// Parses a closing line `N passed, N failed` (more `, ...` fields may follow).
pub fn parse_closing_line(line: &str) -> Option<Counts> {
    let mut fields = line.trim().split(',');
    let passed = count(fields.next()?, " passed")?;
    let failed = count(fields.next()?, " failed")?;
    Some(Counts { passed, failed })
}

/// Parses a whole in-image test run's output. The last closing line counts.
pub fn parse_ktest_output(text: &str) -> KtestReport {
    let mut report = KtestReport::default();
    for line in output_lines(text) {
        if let Some(case) = parse_case_line(&line) {
            report.cases.push(case);
        } else if let Some(counts) = parse_closing_line(&line) {
            report.closing = Some(counts);
        }
    }
    report
}

/// Parses `cargo test`'s `test result: ok. N passed; M failed; ...` line.
pub fn parse_cargo_test_result(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_, fields) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    let (mut seen_passed, mut seen_failed) = (false, false);
    for field in fields.split(';') {
        if let Some(n) = count(field, " passed") {
            counts.passed = n;
            seen_passed = true;
        } else if let Some(n) = count(field, " failed") {
            counts.failed = n;
            seen_failed = true;
        }
    }
    (seen_passed && seen_failed).then_some(counts)
}

/// Sums every `test result:` line of a `cargo test` output.
pub fn sum_cargo_test_results(text: &str) -> (Counts, usize) {
    let mut total = Counts::default();
    let mut lines = 0;
    for counts in text.lines().filter_map(parse_cargo_test_result) {
        total += counts;
        lines += 1;
    }
    (total, lines)
}

/// The last `n` lines of `text`, with a note of how many were left out. From the lines
/// left out, those of every in-image case that failed are kept (its own output, from the
/// line after the previous case's verdict down to its `FAILED` line), so that the details
/// of a failure early in a long run are never cut.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<String> = output_lines(text).collect();
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        let kept: Vec<&str> = failed_case_lines(&lines)
            .take_while(|&i| i < skip)
            .map(|i| lines[i].as_str())
            .collect();
        if kept.is_empty() {
            out.push_str(&format!("[... {skip} earlier lines left out ...]\n"));
        } else {
            out.push_str(&format!(
                "[... {skip} earlier lines left out; those of the cases that failed: ...]\n"
            ));
            for line in kept {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("[... and the last lines: ...]\n");
        }
    }
    for line in &lines[skip..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The indices, in order, of the lines that belong to failed cases: each `FAILED` case line
/// with the lines printed since the previous case line.
fn failed_case_lines(lines: &[String]) -> impl Iterator<Item = usize> + '_ {
    let mut case_start = 0;
    lines.iter().enumerate().flat_map(move |(i, line)| {
        let mut block = 0..0;
        if let Some(case) = parse_case_line(line) {
            if !case.verdict.passed() {
                block = case_start..i + 1;
            }
            case_start = i + 1;
        }
        block
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lines() {
        assert_eq!(
            parse_case_line("test clock::monotonic ... ok"),
            Some(CaseLine {
                name: "clock::monotonic".into(),
                verdict: CaseVerdict::Ok
            })
        );
        assert_eq!(
            parse_case_line("test board::ud2 ... ok (failed as expected)\r")
                .unwrap()
                .verdict,
            CaseVerdict::FailedAsExpected
        );
        assert_eq!(
            parse_case_line("test mem::regions ... FAILED (expect failed at src/lib.rs:3: a < b)")
                .unwrap()
                .verdict,
            CaseVerdict::Failed("(expect failed at src/lib.rs:3: a < b)".into())
        );
        assert_eq!(
            parse_case_line("test x::y ... FAILED").unwrap().verdict,
            CaseVerdict::Failed(String::new())
        );
        assert_eq!(parse_case_line("test x::y ... maybe"), None);
        assert_eq!(parse_case_line("testing x ... ok"), None);
        assert_eq!(parse_case_line("[info] test a ... ok"), None);
    }

    #[test]
    fn closing_lines() {
        assert_eq!(
            parse_closing_line("12 passed, 0 failed"),
            Some(Counts {
                passed: 12,
                failed: 0
            })
        );
        assert_eq!(
            parse_closing_line("3 passed, 2 failed, 7 filtered out\r"),
            Some(Counts {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(parse_closing_line("passed, failed"), None);
        assert_eq!(parse_closing_line("3 passed"), None);
        assert_eq!(parse_closing_line("x passed, 0 failed"), None);
    }

    const KTEST: &str = "uk-rs booting\r\n\
        test uk_test::expect_passes ... ok\r\n\
        test x86_pc::ud2_is_reported ... ok (failed as expected)\r\n\
        [x86-pc] #UD at 0x1234\r\n\
        test x86_pc::clock_rate ... FAILED (panicked at src/ktest.rs:10:5: too slow)\r\n\
        2 passed, 1 failed\r\n";

    #[test]
    fn whole_ktest_output() {
        let report = parse_ktest_output(KTEST);
        assert_eq!(report.cases.len(), 3);
        assert_eq!(
            report.closing,
            Some(Counts {
                passed: 2,
                failed: 1
            })
        );
        assert_eq!(
            report.failed_names().collect::<Vec<_>>(),
            ["x86_pc::clock_rate"]
        );
    }

    #[test]
    fn counts_fall_back_to_case_lines_without_closing_line() {
        let cut = &KTEST[..KTEST.find("2 passed").unwrap()];
        let report = parse_ktest_output(cut);
        assert_eq!(report.closing, None);
        assert_eq!(
            report.counts(),
            Counts {
                passed: 2,
                failed: 1
            }
        );
        assert_eq!(parse_ktest_output("").counts(), Counts::default());
    }

    #[test]
    fn cargo_test_results() {
        assert_eq!(
            parse_cargo_test_result(
                "test result: ok. 15 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some(Counts {
                passed: 15,
                failed: 0
            })
        );
        assert_eq!(
            parse_cargo_test_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some(Counts {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(parse_cargo_test_result("test foo ... ok"), None);
        let out = "running 2 tests\n\
                   test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
                   running 0 tests\n\
                   test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
                   test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            sum_cargo_test_results(out),
            (
                Counts {
                    passed: 6,
                    failed: 1
                },
                3
            )
        );
    }

    #[test]
    fn console_noise_is_removed() {
        let seabios = "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\
                       Booting from ROM..Hello from uk-rs on x86-pc (pc)\r\nbye\r\n";
        let lines: Vec<String> = output_lines(seabios).collect();
        assert_eq!(
            lines,
            [
                "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
                "Hello from uk-rs on x86-pc (pc)",
                "bye"
            ]
        );
        assert_eq!(strip_escapes("a\x1b[1;31mred\x1b[0m\tb\x07"), "ared\tb");
        assert_eq!(strip_escapes("cut\x1b["), "cut");
        let report =
            parse_ktest_output("Booting from ROM..test a::b ... ok\r\n1 passed, 0 failed\r\n");
        assert_eq!(report.cases.len(), 1);
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\r\nb\n", 5), "a\nb\n");
        assert_eq!(
            tail("1\n2\n3\n4\n", 2),
            "[... 2 earlier lines left out ...]\n3\n4\n"
        );
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn tails_keep_the_lines_of_failed_cases_left_out() {
        let run = "boot\n\
                   test a::one ... ok\n\
                   timer: woken [5, 6] ns late\n\
                   expectation failed at x.rs:3: late < 1\n\
                   test a::two ... FAILED (x.rs:3: late < 1)\n\
                   noise\n\
                   test a::three ... ok\n\
                   test a::four ... ok\n\
                   1 passed, 1 failed\n";
        assert_eq!(
            tail(run, 2),
            "[... 7 earlier lines left out; those of the cases that failed: ...]\n\
             timer: woken [5, 6] ns late\n\
             expectation failed at x.rs:3: late < 1\n\
             test a::two ... FAILED (x.rs:3: late < 1)\n\
             [... and the last lines: ...]\n\
             test a::four ... ok\n\
             1 passed, 1 failed\n"
        );
        // A failed case whose output begins before the last lines: that beginning is kept.
        assert!(tail(run, 6).starts_with(
            "[... 3 earlier lines left out; those of the cases that failed: ...]\n\
             timer: woken [5, 6] ns late\n\
             [... and the last lines: ...]\n\
             expectation failed"
        ));
        // No failure among the lines left out: just the count.
        assert!(tail(run, 7).starts_with("[... 2 earlier lines left out ...]\ntimer"));
    }
}
