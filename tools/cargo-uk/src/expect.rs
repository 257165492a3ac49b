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
//!
//! Without more, an example runs once per board, on the board's default configuration.
//! Each `[[also]]` table asks for one more run, on the configuration `board`/`variant` (names
//! as `--board` and `--variant` take them), with expectations of its own:
//!
//! ```toml
//! [[also]]
//! board = "qemu-virt"      # required: a board the example's manifest allows
//! variant = "mte"          # required: one of that board's configurations
//! args = ["fault"]         # application arguments (default: the manifest's)
//! exit_code = 101          # default 0
//! lines = ['^mte: overflow by one granule: caught']
//! scheduler = "preemptive" # kernel parameter sched= (default: the top level's, else the manifest's)
//! ```
//!
//! An extra run boots the same image as the board's default run, with the top level's
//! `smp` and `initrd`; its `scheduler` (also allowed at the top level) overrides the
//! manifest's and is checked like it; `differs_between_boots` applies to the default run only. A run on a
//! configuration that needs a newer QEMU than the host's ([`crate::boards::qemu_emulates`])
//! is left out with a `note:` line. Unknown board and variant names are refused when the
//! file is read, naming the field (`also[0].variant: unknown variant ...`).

use regex_lite::Regex;
use serde::Deserialize;

use crate::boards::{Board, Variant, lookup_board};
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
    /// Scheduler policy of the run (kernel parameter `sched=`, overriding the manifest's
    /// `scheduler`): `cooperative` or `preemptive`.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// More runs of the example on other board configurations, each with its own
    /// expectations (`[[also]]` tables).
    #[serde(default)]
    pub also: Vec<AlsoRun>,
}

/// One `[[also]]` table of `expect.toml`: a run on another board configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AlsoRun {
    /// The board's name (`--board`).
    pub board: String,
    /// The configuration's name (`--variant`).
    pub variant: String,
    /// Application arguments passed after `--` (the manifest's when empty).
    #[serde(default)]
    pub args: Vec<String>,
    /// The exit code the run must end with.
    #[serde(default)]
    pub exit_code: i32,
    /// Regular expressions that must match output lines, in this order.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Scheduler policy of the run (as [`Expect::scheduler`]; the top level's when absent).
    #[serde(default)]
    pub scheduler: Option<String>,
}

impl AlsoRun {
    /// The board and configuration this run names, or an error naming the field of
    /// `also[index]` that is wrong.
    pub fn resolve(&self, index: usize) -> Result<(&'static Board, &'static Variant), String> {
        let board = lookup_board(&self.board).map_err(|e| format!("also[{index}].board: {e}"))?;
        let variant = board
            .lookup_variant(&self.variant)
            .map_err(|e| format!("also[{index}].variant: {e}"))?;
        Ok((board, variant))
    }

    /// The expectations of this run: its own arguments, exit code, lines and scheduler (else
    /// `base`'s), the machine settings (`smp`, `initrd`) of `base`, the top level of the file.
    pub fn expect(&self, base: &Expect) -> Expect {
        Expect {
            args: self.args.clone(),
            exit_code: self.exit_code,
            lines: self.lines.clone(),
            differs_between_boots: None,
            smp: base.smp,
            initrd: base.initrd.clone(),
            scheduler: self.scheduler.clone().or_else(|| base.scheduler.clone()),
            also: Vec::new(),
        }
    }
}

impl Expect {
    /// Parses an `expect.toml` text, checking the board and variant names of its
    /// `[[also]]` tables.
    pub fn parse(text: &str) -> Result<Expect, String> {
        let expect: Expect = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        if let Some(s) = &expect.scheduler {
            crate::manifest::validate_scheduler(s).map_err(|e| format!("scheduler: {e}"))?;
        }
        for (i, also) in expect.also.iter().enumerate() {
            also.resolve(i)?;
            if let Some(s) = &also.scheduler {
                crate::manifest::validate_scheduler(s)
                    .map_err(|e| format!("also[{i}].scheduler: {e}"))?;
            }
        }
        Ok(expect)
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
    fn scheduler_is_checked_and_inherited_by_also_runs() {
        let text = "scheduler = \"preemptive\"\n[[also]]\nboard = \"x86-pc\"\nvariant = \"pc\"\n\
                    [[also]]\nboard = \"x86-pc\"\nvariant = \"pc\"\nscheduler = \"cooperative\"\n";
        let e = Expect::parse(text).unwrap();
        assert_eq!(e.scheduler.as_deref(), Some("preemptive"));
        assert_eq!(
            e.also[0].expect(&e).scheduler.as_deref(),
            Some("preemptive")
        );
        assert_eq!(
            e.also[1].expect(&e).scheduler.as_deref(),
            Some("cooperative")
        );
        let err = Expect::parse("scheduler = \"fifo\"").unwrap_err();
        assert!(
            err.starts_with("scheduler: unknown scheduler 'fifo'"),
            "{err}"
        );
        let err =
            Expect::parse("[[also]]\nboard = \"x86-pc\"\nvariant = \"pc\"\nscheduler = \"rr\"\n")
                .unwrap_err();
        assert!(
            err.starts_with("also[0].scheduler: unknown scheduler 'rr'"),
            "{err}"
        );
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

    const ALSO: &str = r#"
exit_code = 0
lines = ['^plain$']
smp = 2
initrd = 'rootfs'

[[also]]
board = "qemu-virt"
variant = "mte"
lines = ['^tagged$']

[[also]]
board = "qemu-virt"
variant = "mte"
args = ["fault"]
exit_code = 101
lines = ['^caught$', '^fault$']
"#;

    #[test]
    fn also_tables_parse_in_order() {
        let e = Expect::parse(ALSO).unwrap();
        assert_eq!(e.lines, ["^plain$"]);
        assert_eq!(e.also.len(), 2);
        let first = &e.also[0];
        assert_eq!(
            (first.board.as_str(), first.variant.as_str()),
            ("qemu-virt", "mte")
        );
        assert!(first.args.is_empty());
        assert_eq!(first.exit_code, 0);
        let (board, variant) = e.also[1].resolve(1).unwrap();
        assert_eq!((board.name, variant.machine), ("qemu-virt", "virt,mte=on"));
        // A run's expectations: its own args, exit code and lines, the top level's machine.
        let run = e.also[1].expect(&e);
        assert_eq!(run.args, ["fault"]);
        assert_eq!(run.exit_code, 101);
        assert_eq!(run.lines, ["^caught$", "^fault$"]);
        assert_eq!((run.smp, run.initrd.as_deref()), (Some(2), Some("rootfs")));
        assert!(run.also.is_empty() && run.differs_between_boots.is_none());
        assert!(run.check("qemu-virt", "caught\nfault\n", 101).is_ok());
        assert_eq!(
            run.check("qemu-virt", "caught\nfault\n", 0).unwrap_err(),
            "exit code 0, expected 101"
        );
        // Without `[[also]]` there is no extra run.
        assert!(Expect::parse(SAMPLE).unwrap().also.is_empty());
    }

    #[test]
    fn also_names_are_checked_and_errors_name_the_field() {
        let err = Expect::parse("[[also]]\nboard = 'riscv'\nvariant = 'mte'").unwrap_err();
        assert_eq!(
            err,
            "also[0].board: unknown board 'riscv' (known boards: x86-pc, qemu-virt)"
        );
        let text = "[[also]]\nboard = 'qemu-virt'\nvariant = 'mte'\n\
                    [[also]]\nboard = 'x86-pc'\nvariant = 'mte'";
        let err = Expect::parse(text).unwrap_err();
        assert!(
            err.starts_with("also[1].variant: unknown variant 'mte' for board x86-pc (known: pc, "),
            "{err}"
        );
        // Both names are required, unknown keys and bad types refused, on one line.
        for (text, needle) in [
            ("[[also]]\nvariant = 'mte'", "board"),
            ("[[also]]\nboard = 'qemu-virt'", "variant"),
            (
                "[[also]]\nboard = 'qemu-virt'\nvariant = 'mte'\nexitcode = 1",
                "exitcode",
            ),
            (
                "[[also]]\nboard = 'qemu-virt'\nvariant = 'mte'\nexit_code = 'x'",
                "exit_code",
            ),
            ("also = 'qemu-virt/mte'", "also"),
            ("[also]\nboard = 'qemu-virt'\nvariant = 'mte'", "also"),
        ] {
            let err = Expect::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
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
