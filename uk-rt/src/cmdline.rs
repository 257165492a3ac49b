//! Kernel command line: kernel parameters, then `--`, then application arguments.
//!
//! The line is split on whitespace; a double-quoted word may contain spaces (`"two words"`).
//! Words before a standalone `--` are kernel parameters (`key=value`), words after it are
//! the application's arguments. A line without `--` is all application arguments, as in
//! Unikraft. Splitting never allocates: the words are slices of the board's command line,
//! held in a fixed table of [`MAX_ARGS`] entries; extra words are dropped with a warning.

/// Most words kept from the command line (kernel parameters and arguments together).
pub const MAX_ARGS: usize = 64;

/// Kernel log verbosity, set with `loglevel=` (`error`, `warn`, `info`, `debug`, `trace`,
/// or `off`).
pub type LogLevel = log::LevelFilter;

/// Scheduler policy asked for with `sched=` (`cooperative` or `preemptive`; `cargo uk` sets
/// it from `scheduler` in the application's `[package.metadata.uk]`). The runtime does not
/// build a scheduler itself: an application that makes one reads this to choose the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedPolicy {
    /// Threads run until they yield or block.
    Cooperative,
    /// Threads are also switched when their time slice ends (timer interrupt).
    Preemptive,
}

/// Parses a `sched=` value.
pub fn parse_sched(value: &str) -> Option<SchedPolicy> {
    match value {
        "cooperative" => Some(SchedPolicy::Cooperative),
        "preemptive" => Some(SchedPolicy::Preemptive),
        _ => None,
    }
}

/// The kernel parameters found on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelParams {
    /// `loglevel=`; `info` when absent.
    pub log_level: LogLevel,
    /// `sched=`; `None` when absent (the application's own choice).
    pub sched: Option<SchedPolicy>,
    words: &'static [&'static str],
    /// More words than [`MAX_ARGS`] were given; the rest were dropped.
    pub truncated: bool,
}

impl KernelParams {
    /// Parameters this runtime does not know, or whose value is invalid (reported once at
    /// boot, then ignored).
    pub fn unknown(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.words.iter().copied().filter(|w| {
            let known = w
                .strip_prefix("loglevel=")
                .is_some_and(|value| parse_log_level(value).is_some())
                || w.strip_prefix("sched=")
                    .is_some_and(|value| parse_sched(value).is_some());
            !known
        })
    }
}

/// The application's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Args {
    words: &'static [&'static str],
}

impl Args {
    /// Arguments as a slice.
    pub fn as_slice(&self) -> &'static [&'static str] {
        self.words
    }
    /// Iterates over the arguments.
    pub fn iter(&self) -> core::slice::Iter<'static, &'static str> {
        self.words.iter()
    }
    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.words.len()
    }
    /// `true` when there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Splits `line` into words into `table`; returns how many were stored and whether any
/// were dropped for lack of room.
pub fn split_words<'a>(line: &'a str, table: &mut [&'a str]) -> (usize, bool) {
    let mut count = 0;
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let (word, after) = if let Some(quoted) = rest.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if count == table.len() {
            return (count, true);
        }
        table[count] = word;
        count += 1;
        rest = after.trim_start();
    }
    (count, false)
}

/// Splits already-split `words` into kernel parameters and application arguments.
pub fn partition<'a>(words: &'a [&'a str]) -> (&'a [&'a str], &'a [&'a str]) {
    match words.iter().position(|&w| w == "--") {
        Some(dashes) => (&words[..dashes], &words[dashes + 1..]),
        None => (&[], words),
    }
}

/// Parses a `loglevel=` value.
pub fn parse_log_level(value: &str) -> Option<LogLevel> {
    Some(match value {
        "off" => LogLevel::Off,
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return None,
    })
}

fn params_from(words: &'static [&'static str], truncated: bool) -> KernelParams {
    let log_level = words
        .iter()
        .rev()
        .find_map(|w| w.strip_prefix("loglevel=").and_then(parse_log_level))
        .unwrap_or(LogLevel::Info);
    let sched = words
        .iter()
        .rev()
        .find_map(|w| w.strip_prefix("sched=").and_then(parse_sched));
    KernelParams {
        log_level,
        sched,
        words,
        truncated,
    }
}

static TABLE: spin::Once<([&'static str; MAX_ARGS], usize, bool)> = spin::Once::new();

/// Splits the board's command line once (later calls return the first result).
pub fn split(line: &'static str) -> (KernelParams, &'static Args) {
    static ARGS: spin::Once<Args> = spin::Once::new();
    let (table, count, truncated) = TABLE.call_once(|| {
        let mut table = [""; MAX_ARGS];
        let (count, truncated) = split_words(line, &mut table);
        (table, count, truncated)
    });
    let (params, args) = partition(&table[..*count]);
    let args = ARGS.call_once(|| Args { words: args });
    (params_from(params, *truncated), args)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn words(line: &str) -> ([&str; 8], usize, bool) {
        let mut table = [""; 8];
        let (n, truncated) = split_words(line, &mut table);
        (table, n, truncated)
    }

    #[test]
    fn splits_on_whitespace_and_quotes() {
        let (t, n, truncated) = words("  a  \"two words\"\tc \"\" d");
        assert_eq!(&t[..n], &["a", "two words", "c", "", "d"]);
        assert!(!truncated);
    }

    #[test]
    fn unterminated_quote_takes_the_rest() {
        let (t, n, _) = words("a \"b c");
        assert_eq!(&t[..n], &["a", "b c"]);
    }

    #[test]
    fn empty_line_has_no_words() {
        assert_eq!(words("").1, 0);
        assert_eq!(words("   \t ").1, 0);
    }

    #[test]
    fn too_many_words_are_dropped_and_flagged() {
        let (t, n, truncated) = words("1 2 3 4 5 6 7 8 9 10");
        assert_eq!(n, 8);
        assert_eq!(t[7], "8");
        assert!(truncated);
    }

    #[test]
    fn dashes_separate_kernel_params_from_args() {
        let all = ["loglevel=debug", "--", "x", "--", "y"];
        let (params, args) = partition(&all);
        assert_eq!(params, &["loglevel=debug"]);
        assert_eq!(args, &["x", "--", "y"]);
        let plain = ["x", "y"];
        assert_eq!(partition(&plain), (&[][..], &plain[..]));
    }

    #[test]
    fn log_level_parses_and_last_wins() {
        static WORDS: [&str; 4] = ["loglevel=debug", "foo=1", "loglevel=error", "loglevel=loud"];
        let params = params_from(&WORDS, false);
        assert_eq!(params.log_level, LogLevel::Error);
        assert_eq!(
            params.unknown().collect::<Vec<_>>(),
            ["foo=1", "loglevel=loud"]
        );
        assert_eq!(parse_log_level("loud"), None);
        assert_eq!(params_from(&[], false).log_level, LogLevel::Info);
    }

    #[test]
    fn sched_policy_parses_and_bad_values_are_unknown() {
        static WORDS: [&str; 3] = ["sched=preemptive", "sched=fifo", "loglevel=warn"];
        let params = params_from(&WORDS, false);
        assert_eq!(params.sched, Some(SchedPolicy::Preemptive));
        assert_eq!(params.unknown().collect::<Vec<_>>(), ["sched=fifo"]);
        static COOP: [&str; 1] = ["sched=cooperative"];
        assert_eq!(
            params_from(&COOP, false).sched,
            Some(SchedPolicy::Cooperative)
        );
        assert_eq!(params_from(&[], false).sched, None);
        assert_eq!(parse_sched("Preemptive"), None);
    }
}
