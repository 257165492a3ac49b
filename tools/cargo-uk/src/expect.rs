//! `examples/<name>/expect.toml`: what an example's run must show.
//!
//! ```toml
//! args = ["one", "two words"]          # application arguments (after `--`)
//! exit_code = 0                        # the guest's exit code
//! smp = 2                              # QEMU -smp (default: the configuration's)
//! lines = ['^Hello from uk-rs on {board}', '^args: \["one", "two words"\]$']
//! ```
//!
//! Each regular expression of `lines` must match an output line, in order: the match for
//! one expression is looked for after the line the previous one matched. `{board}` stands
//! for the board's name (regex-escaped).
//!
//! `initrd = "rootfs"` boots the example with an initial RAM disk: a file, or a directory
//! (relative to the example's directory) packed as a CPIO newc archive. Without it the
//! application manifest's `initrd` (`[package.metadata.uk]`) is used, if any.
//!
//! `differs_between_boots = '^random: 16 bytes ([0-9a-f]{32})$'` boots the example twice:
//! both runs must pass, and the first capture group of the first line matching the
//! expression must differ between them (for output that must never repeat, such as random
//! bytes).

use regex_lite::Regex;
use serde::Deserialize;

use crate::report::output_lines;

/// The expectations of one example.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Application arguments passed after `--`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The exit code the run must end with.
    #[serde(default)]
    pub exit_code: i32,
    /// Regular expressions that must match output lines, in this order.
    #[serde(default)]
    pub lines: Vec<String>,
    /// A regular expression with one capture group whose value must differ between two
    /// boots of the example.
    #[serde(default)]
    pub differs_between_boots: Option<String>,
    /// CPUs the example runs with (QEMU `-smp`); the configuration's when absent.
    #[serde(default)]
    pub smp: Option<u32>,
    /// Initial RAM disk for the run: a file, or a directory packed as CPIO newc, relative to
    /// the example's directory (overrides the manifest's `initrd`).
    #[serde(default)]
    pub initrd: Option<String>,
}

impl Expect {
    /// Parses an `expect.toml` text.
    pub fn parse(text: &str) -> Result<Expect, String> {
        toml::from_str(text).map_err(|e| one_line(&e.to_string()))
    }

    /// The `lines` patterns compiled for `board`.
    pub fn patterns(&self, board: &str) -> Result<Vec<Regex>, String> {
        let escaped = regex_lite::escape(board);
        self.lines
            .iter()
            .map(|p| {
                Regex::new(&p.replace("{board}", &escaped)).map_err(|e| {
                    format!("bad regular expression {p:?}: {}", one_line(&e.to_string()))
                })
            })
            .collect()
    }

    /// The value captured by [`Expect::differs_between_boots`] in `output`, if that field
    /// is set: `Ok(None)` when it is not, an error when no line matches.
    pub fn boot_value(&self, output: &str) -> Result<Option<String>, String> {
        let Some(pattern) = &self.differs_between_boots else {
            return Ok(None);
        };
        let regex = Regex::new(pattern).map_err(|e| {
            format!(
                "bad regular expression {pattern:?}: {}",
                one_line(&e.to_string())
            )
        })?;
        output_lines(output)
            .find_map(|line| {
                regex
                    .captures(&line)
                    .map(|c| c.get(1).map_or(c[0].to_owned(), |m| m.as_str().to_owned()))
            })
            .map(Some)
            .ok_or_else(|| format!("no line matches '{pattern}' (differs_between_boots)"))
    }

    /// Checks a run's output and exit code against these expectations on `board`.
    pub fn check(&self, board: &str, output: &str, exit_code: i32) -> Result<(), String> {
        let patterns = self.patterns(board)?;
        let mut lines = output_lines(output);
        for (i, pattern) in patterns.iter().enumerate() {
            if !lines.any(|line| pattern.is_match(&line)) {
                let what = if i == 0 {
                    "in the output".to_owned()
                } else {
                    format!("after the line matching '{}'", patterns[i - 1].as_str())
                };
                return Err(format!("no line matches '{}' {what}", pattern.as_str()));
            }
        }
        if exit_code != self.exit_code {
            return Err(format!(
                "exit code {exit_code}, expected {}",
                self.exit_code
            ));
        }
        Ok(())
    }
}

/// Joins a multi-line message (as TOML and regex errors are) into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smp_is_read_and_optional() {
        assert_eq!(Expect::parse("smp = 2").unwrap().smp, Some(2));
        assert_eq!(Expect::parse("exit_code = 0").unwrap().smp, None);
        assert!(Expect::parse("smp = \"two\"").is_err());
    }

    #[test]
    fn boot_value_takes_the_first_capture_of_the_first_match() {
        let expect = Expect {
            differs_between_boots: Some(r"^bytes ([0-9a-f]+)$".to_owned()),
            ..Expect::default()
        };
        let out = "noise\r\nbytes 0a1b\r\nbytes ffff\r\n";
        assert_eq!(expect.boot_value(out), Ok(Some("0a1b".to_owned())));
        assert!(
            expect
                .boot_value("nothing\n")
                .unwrap_err()
                .contains("differs_between_boots")
        );
        assert_eq!(Expect::default().boot_value(out), Ok(None));
        let bad = Expect {
            differs_between_boots: Some("(".to_owned()),
            ..Expect::default()
        };
        assert!(
            bad.boot_value(out)
                .unwrap_err()
                .starts_with("bad regular expression")
        );
    }

    #[test]
    fn initrd_parses_from_toml() {
        let expect = Expect::parse("initrd = 'rootfs'").unwrap();
        assert_eq!(expect.initrd.as_deref(), Some("rootfs"));
        assert!(Expect::parse("initrd = 1").is_err());
    }

    #[test]
    fn differs_between_boots_parses_from_toml() {
        let expect = Expect::parse("differs_between_boots = '^x (.*)$'").unwrap();
        assert_eq!(expect.differs_between_boots.as_deref(), Some("^x (.*)$"));
    }

    const SAMPLE: &str = r#"
# arguments passed after `--`
args = ["one", "two words"]
# exit code the run must end with
exit_code = 0
lines = ['^Hello from uk-rs on {board}', '^args: \["one", "two words"\]$']
"#;

    #[test]
    fn parses_the_documented_format() {
        let e = Expect::parse(SAMPLE).unwrap();
        assert_eq!(e.args, ["one", "two words"]);
        assert_eq!(e.exit_code, 0);
        assert_eq!(e.lines.len(), 2);
        assert_eq!(Expect::parse("").unwrap(), Expect::default());
    }

    #[test]
    fn rejects_unknown_keys_and_bad_types() {
        assert!(Expect::parse("exit-code = 1").is_err());
        let err = Expect::parse("exit_code = \"zero\"").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn matches_in_order_with_board_substitution() {
        let e = Expect::parse(SAMPLE).unwrap();
        let out = "boot\r\nHello from uk-rs on x86-pc (pc)\r\nargs: [\"one\", \"two words\"]\r\n";
        assert_eq!(e.check("x86-pc", out, 0), Ok(()));
        // The board name is escaped and substituted.
        let err = e.check("qemu-virt", out, 0).unwrap_err();
        assert!(err.contains("Hello from uk-rs on qemu\\-virt"), "{err}");
        // Order matters.
        let swapped = "args: [\"one\", \"two words\"]\nHello from uk-rs on x86-pc\n";
        let err = e.check("x86-pc", swapped, 0).unwrap_err();
        assert!(err.contains("after the line matching"), "{err}");
    }

    #[test]
    fn dot_in_board_name_is_literal() {
        let e = Expect {
            lines: vec!["^on {board}$".into()],
            ..Expect::default()
        };
        assert!(e.check("a.b", "on a.b\n", 0).is_ok());
        assert!(e.check("a.b", "on axb\n", 0).is_err());
    }

    #[test]
    fn exit_code_must_match() {
        let e = Expect {
            exit_code: 3,
            ..Expect::default()
        };
        assert!(e.check("x86-pc", "", 3).is_ok());
        assert_eq!(
            e.check("x86-pc", "", 0).unwrap_err(),
            "exit code 0, expected 3"
        );
    }

    #[test]
    fn bad_regex_is_reported() {
        let e = Expect {
            lines: vec!["(".into()],
            ..Expect::default()
        };
        let err = e.check("x86-pc", "", 0).unwrap_err();
        assert!(err.starts_with("bad regular expression \"(\""), "{err}");
    }
}
