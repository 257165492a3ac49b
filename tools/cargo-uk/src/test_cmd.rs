//! `cargo uk test`: host tests, the in-image tests on every board configuration, and every
//! example against its `expect.toml`, with a summary table and a closing count line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::boards::{self, BOARDS, Board, Variant, lookup_board};
use crate::expect::Expect;
use crate::host;
use crate::manifest::{self, Manifest};
use crate::new::Lang;
use crate::process::{self, Ending, Io};
use crate::qemu::{self, Accel, GuestFailure, QemuConfig};
use crate::report::{self, Counts};
use crate::workspace::{Image, Workspace, cargo_program};
use crate::{TestArgs, UsageError};

/// Lines of a failed run's output shown in the failure report.
const TAIL_LINES: usize = 60;

/// The verdict of one run, before it becomes a table row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The run passed.
    pub ok: bool,
    /// Result column: `ok`, `FAILED` or `HUNG`.
    pub label: &'static str,
    /// Test cases passed and failed (a failed run counts at least one failure).
    pub counts: Counts,
    /// Why it failed (empty when it passed).
    pub note: String,
}

impl Evaluation {
    fn from_problems(problems: Vec<String>, hung: bool, mut counts: Counts) -> Evaluation {
        let ok = problems.is_empty();
        if !ok && counts.failed == 0 {
            counts.failed = 1;
        }
        let label = match (ok, hung) {
            (true, _) => "ok",
            (false, true) => "HUNG",
            (false, false) => "FAILED",
        };
        Evaluation {
            ok,
            label,
            counts,
            note: problems.join("; "),
        }
    }

    fn failed(note: String) -> Evaluation {
        Evaluation::from_problems(vec![note], false, Counts::default())
    }
}

/// Judges a run of the in-image test image: it passes only with a closing line, no failed
/// case and exit code 0.
pub fn evaluate_ktest(board: &Board, ending: Ending, stdout: &str, stderr: &str) -> Evaluation {
    evaluate_ktest_of(board, ending, stdout, stderr, None)
}

/// [`evaluate_ktest`]; given `case` (`suite::name`), a run without that case's result line
/// fails too: a run made for one case must not pass having run none (the case renamed, or
/// its filter gone wrong).
fn evaluate_ktest_of(
    board: &Board,
    ending: Ending,
    stdout: &str,
    stderr: &str,
    case: Option<&str>,
) -> Evaluation {
    let report = report::parse_ktest_output(stdout);
    let counts = report.counts();
    let mut problems = Vec::new();
    if let Some(case) = case {
        if !report.cases.iter().any(|c| c.name == case) {
            problems.push(format!("case {case} did not run"));
        }
    }
    let exit = qemu::guest_exit(board, ending, stderr);
    if let Err(failure) = &exit {
        problems.push(failure.to_string());
    }
    if report.closing.is_none() && !matches!(exit, Err(GuestFailure::Qemu(_))) {
        problems.push("no closing `N passed, N failed` line".to_owned());
    }
    if counts.failed > 0 {
        let names: Vec<&str> = report.failed_names().collect();
        let mut note = format!("{} failed", counts.failed);
        if !names.is_empty() {
            note.push_str(&format!(": {}", names.join(", ")));
        }
        problems.push(note);
    }
    if let Ok(code) = exit {
        if code != 0 {
            problems.push(format!("exit code {code}"));
        }
    }
    Evaluation::from_problems(problems, exit == Err(GuestFailure::Hung), counts)
}

/// Judges a run of an example against its expectations.
pub fn evaluate_example(
    board: &Board,
    expect: &Expect,
    ending: Ending,
    stdout: &str,
    stderr: &str,
) -> Evaluation {
    let exit = qemu::guest_exit(board, ending, stderr);
    let problems = match &exit {
        Err(failure) => vec![failure.to_string()],
        Ok(code) => match expect.check(board.name, stdout, *code) {
            Ok(()) => Vec::new(),
            Err(e) => vec![e],
        },
    };
    let counts = Counts {
        passed: usize::from(problems.is_empty()),
        failed: 0,
    };
    Evaluation::from_problems(problems, exit == Err(GuestFailure::Hung), counts)
}

/// One line of the summary table.
#[derive(Clone, Debug)]
pub struct Row {
    /// What ran (`host tests`, `ktest`, `example helloworld`).
    pub what: String,
    /// Where (`host`, `x86-pc/pc`, ...).
    pub config: String,
    /// The verdict.
    pub eval: Evaluation,
    /// How long it took.
    pub time: Duration,
    /// Output shown when it failed: the command line, then what it printed.
    pub output: String,
}

/// Formats a duration for the table (`12.3s`).
pub fn format_time(time: Duration) -> String {
    format!("{:.1}s", time.as_secs_f64())
}

/// The summary table, a header and one row per run.
pub fn format_table(rows: &[Row]) -> String {
    let header = ["what", "board/config", "result", "passed", "failed", "time"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.what.clone(),
                r.config.clone(),
                r.eval.label.to_owned(),
                r.eval.counts.passed.to_string(),
                r.eval.counts.failed.to_string(),
                format_time(r.time),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            // Text columns align left, numbers right.
            if i < 3 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("{cell:>w$}"));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    for row in &cells {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

/// The totals of all rows.
pub fn totals(rows: &[Row]) -> Counts {
    let mut total = Counts::default();
    for row in rows {
        total += row.eval.counts;
    }
    total
}

/// What a QEMU run checks.
#[derive(Clone, Debug)]
enum Check {
    Ktest,
    /// A ktest run made for this case (`suite::name`), which must have run.
    KtestCase(String),
    Example(Result<Expect, String>),
}

/// One QEMU run to do.
struct Job {
    what: String,
    board: &'static Board,
    variant: &'static Variant,
    kernel: Result<PathBuf, String>,
    append: Option<String>,
    check: Check,
    /// Guest memory, CPUs, initrd and extra QEMU arguments (an example's manifest).
    machine: Machine,
}

/// What an example's manifest asks of the machine.
#[derive(Clone, Debug)]
struct Machine {
    memory: String,
    smp: Option<u32>,
    initrd: Option<PathBuf>,
    /// A fresh copy of the directory shared with the guest over virtio-9p.
    share: Option<PathBuf>,
    /// A virtio entropy device.
    rng: bool,
    extra: Vec<String>,
}

impl Default for Machine {
    fn default() -> Machine {
        Machine {
            memory: "64M".to_owned(),
            smp: None,
            initrd: None,
            share: None,
            rng: false,
            extra: Vec::new(),
        }
    }
}

impl Job {
    fn config(&self) -> String {
        format!("{}/{}", self.board.name, self.variant.name)
    }

    fn run(&self, timeout: Duration) -> Row {
        let row = |eval, time, output| Row {
            what: self.what.clone(),
            config: self.config(),
            eval,
            time,
            output,
        };
        let kernel = match &self.kernel {
            Ok(kernel) => kernel,
            Err(e) => return row(Evaluation::failed(e.clone()), Duration::ZERO, String::new()),
        };
        let expect = match &self.check {
            Check::Example(Err(e)) => {
                return row(Evaluation::failed(e.clone()), Duration::ZERO, String::new());
            }
            Check::Example(Ok(expect)) => Some(expect),
            Check::Ktest | Check::KtestCase(_) => None,
        };
        let config = QemuConfig {
            board: self.board,
            variant: self.variant,
            accel: Accel::Tcg,
            memory: &self.machine.memory,
            smp: self.machine.smp.or(self.variant.smp),
            kernel,
            append: self.append.clone(),
            initrd: self.machine.initrd.as_deref(),
            share: self.machine.share.as_deref(),
            rng: self.machine.rng,
            gdb_port: None,
            extra: &self.machine.extra,
        };
        let args = qemu::qemu_args(&config);
        let command = qemu::display_command(self.board.qemu, &args);
        if let Err(e) = crate::defmt::ConsoleDecoder::for_image(kernel, false) {
            return row(Evaluation::failed(e), Duration::ZERO, String::new());
        }
        let filter = || {
            crate::defmt::ConsoleDecoder::for_image(kernel, false)
                .ok()
                .flatten()
                .map(crate::defmt::ConsoleDecoder::into_filter)
        };
        let outcome = match process::run_filtered(
            self.board.qemu,
            &args,
            Io::Captured,
            Some(timeout),
            filter(),
        ) {
            Ok(outcome) => outcome,
            Err(e) => {
                let note = format!("cannot start {}: {e}", self.board.qemu);
                return row(Evaluation::failed(note), Duration::ZERO, command);
            }
        };
        let mut eval = match expect {
            Some(e) => evaluate_example(
                self.board,
                e,
                outcome.ending,
                &outcome.stdout,
                &outcome.stderr,
            ),
            None => {
                let case = match &self.check {
                    Check::KtestCase(case) => Some(case.as_str()),
                    _ => None,
                };
                let (stdout, stderr) = (&outcome.stdout, &outcome.stderr);
                evaluate_ktest_of(self.board, outcome.ending, stdout, stderr, case)
            }
        };
        if let Some(e) = expect.filter(|e| e.differs_between_boots.is_some()) {
            if eval.ok {
                eval = self.second_boot(e, &args, timeout, &outcome.stdout, filter());
            }
        }
        let mut output = format!("$ {command}\n{}", report::tail(&outcome.stdout, TAIL_LINES));
        if !outcome.stderr.trim().is_empty() {
            output.push_str("[QEMU standard error]\n");
            output.push_str(&report::tail(&outcome.stderr, 20));
        }
        row(eval, outcome.elapsed, output)
    }
}

impl Job {
    /// Boots the example a second time for `differs_between_boots`: the second run must
    /// pass too, and its captured value must differ from the first run's.
    fn second_boot(
        &self,
        expect: &Expect,
        args: &[std::ffi::OsString],
        timeout: Duration,
        first: &str,
        filter: Option<process::Filter>,
    ) -> Evaluation {
        let again =
            match process::run_filtered(self.board.qemu, args, Io::Captured, Some(timeout), filter)
            {
                Ok(outcome) => outcome,
                Err(e) => {
                    return Evaluation::failed(format!(
                        "second boot: cannot start {}: {e}",
                        self.board.qemu
                    ));
                }
            };
        let eval = evaluate_example(
            self.board,
            expect,
            again.ending,
            &again.stdout,
            &again.stderr,
        );
        if !eval.ok {
            return Evaluation::failed(format!("second boot: {}", eval.note));
        }
        match (expect.boot_value(first), expect.boot_value(&again.stdout)) {
            (Ok(Some(a)), Ok(Some(b))) if a == b => {
                Evaluation::failed(format!("two boots printed the same value {a}"))
            }
            (Ok(_), Ok(_)) => eval,
            (Err(e), _) | (_, Err(e)) => Evaluation::failed(e),
        }
    }
}

/// Runs `jobs`, `parallel` at a time, printing a line as each ends; rows in job order.
fn run_jobs(jobs: &[Job], parallel: usize, timeout: Duration) -> Vec<Row> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let row = job.run(timeout);
                    print_progress(&row);
                    if let Ok(mut done) = done.lock() {
                        done[i] = Some(row);
                    }
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

fn print_progress(row: &Row) {
    let color = if row.eval.ok {
        crate::style::Color::Green
    } else {
        crate::style::Color::Red
    };
    let label = crate::style::paint(row.eval.label, color, crate::style::stdout_colors());
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "{} on {}: {} ({} passed, {} failed) in {}",
        row.what,
        row.config,
        label,
        row.eval.counts.passed,
        row.eval.counts.failed,
        format_time(row.time)
    );
    if !row.eval.ok {
        let _ = write!(out, ": {}", row.eval.note);
    }
    let _ = writeln!(out);
    let _ = out.flush();
}

/// Runs `cargo test --no-fail-fast` at the workspace root (its default members are the host
/// crates), echoing its standard output, and sums its `test result:` lines.
fn host_tests(ws: &Workspace) -> Row {
    let start = Instant::now();
    let row = |eval, output| Row {
        what: "host tests".to_owned(),
        config: "host".to_owned(),
        eval,
        time: start.elapsed(),
        output,
    };
    let child = Command::new(cargo_program())
        .current_dir(&ws.root)
        // All test binaries run even when one fails, so the totals are complete.
        .args(["test", "--no-fail-fast"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            return row(
                Evaluation::failed(format!("cannot run cargo test: {e}")),
                String::new(),
            );
        }
    };
    let mut text = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait();
    let (counts, _) = report::sum_cargo_test_results(&text);
    let mut problems = Vec::new();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => problems.push(format!("cargo test failed ({s}); its output is above")),
        Err(e) => problems.push(format!("cannot wait for cargo test: {e}")),
    }
    row(
        Evaluation::from_problems(problems, false, counts),
        String::new(),
    )
}

fn load_expect(ws: &Workspace, example: &str) -> Result<Expect, String> {
    let path = ws.root.join("examples").join(example).join("expect.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => Expect::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "warning: {} is missing: checking only that the example exits with 0",
                path.display()
            );
            Ok(Expect::default())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Builds the ktest image with the features of each configuration of `board` that has some
/// (and a QEMU that can run them, see [`boards::ktest_features`]), copying each binary to
/// `uk-ktest+FEATURE...` beside the plain one. Returns, by configuration name, the features
/// and the copy's path (or why there is none). Notes on left-out features are printed.
/// `version` is the board's QEMU's, `forced` [`boards::qemu_fixes_forced`].
fn featured_ktests(
    ws: &Workspace,
    board: &'static Board,
    version: Option<(u32, u32, u32)>,
    forced: bool,
) -> BTreeMap<&'static str, (&'static [&'static str], Result<PathBuf, String>)> {
    let mut featured = BTreeMap::new();
    for variant in board.variants {
        let (features, note) = boards::ktest_features(variant, version, forced);
        if let Some(note) = note {
            println!("note: {}/{}: {note}", board.name, variant.name);
        }
        if features.is_empty() {
            continue;
        }
        println!(
            "==> building ktest with {} for {}/{}",
            features.join(", "),
            board.name,
            variant.name
        );
        let _ = std::io::stdout().flush();
        let path = ws
            .build_with_features(board.triple, &[Image::Ktest], features, true, false)
            .map_err(|e| format!("not run: {e:#}"))
            .and_then(|paths| {
                let built = paths
                    .get(Image::Ktest.package())
                    .ok_or_else(|| "not run: cargo built no ktest image".to_owned())?;
                let copy = built.with_file_name(format!(
                    "{}+{}",
                    Image::Ktest.package(),
                    features.join("+")
                ));
                std::fs::copy(built, &copy)
                    .map_err(|e| format!("not run: cannot copy {}: {e}", built.display()))?;
                Ok(copy)
            });
        featured.insert(variant.name, (features, path));
    }
    featured
}

/// Name of the application the new-project check creates (`newapp`, or `newcapp` for
/// the C template).
fn new_project_app(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "newapp",
        Lang::C => "newcapp",
    }
}

/// Judges the output of `cargo uk run --release -- one` in a project made by `cargo uk new`
/// (with `--c` for [`Lang::C`]).
pub fn evaluate_new_project(lang: Lang, status: Option<i32>, stdout: &str) -> Evaluation {
    let app = new_project_app(lang);
    let lines = match lang {
        Lang::Rust => vec![
            format!("^Hello from {app} on {{board}}$"),
            r#"^args: \["one"\]$"#.to_owned(),
        ],
        Lang::C => vec![
            format!("^Hello from C in {app}, argc 2$"),
            r"^argv\[1\] = one$".to_owned(),
        ],
    };
    let expect = Expect {
        lines,
        ..Expect::default()
    };
    let problems = match status {
        None => vec!["cargo uk run was killed by a signal".to_owned()],
        Some(code) => expect
            .check("x86-pc", stdout, code)
            .err()
            .into_iter()
            .collect(),
    };
    let counts = Counts {
        passed: usize::from(problems.is_empty()),
        failed: 0,
    };
    Evaluation::from_problems(problems, false, counts)
}

/// Creates a project with `cargo uk new` (with `--c` for [`Lang::C`]) under the system's
/// temporary directory, then builds and boots it with the project's own `cargo uk` alias
/// from its folder, as a user would.
fn new_project_row(ws: &Workspace, timeout: Duration, lang: Lang) -> Row {
    let start = Instant::now();
    let app = new_project_app(lang);
    let c_flag: &[&str] = match lang {
        Lang::Rust => &[],
        Lang::C => &["--c"],
    };
    let what = [&[NEW_PROJECT][..], c_flag].concat().join(" ");
    let row = |eval, output| Row {
        what: what.clone(),
        config: "x86-pc/pc".to_owned(),
        eval,
        time: start.elapsed(),
        output,
    };
    // Outside this repository, as a user's project is: cargo merges the `.cargo/config.toml`
    // of every directory above a project, and this repository's (its `uk` alias, the target
    // rustflags) must not leak into the new project's.
    let base = std::env::temp_dir().join(format!("uk-rs-new-project-{}", std::process::id()));
    let dir = base.join(app);
    let _ = std::fs::remove_dir_all(&dir);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return row(
                Evaluation::failed(format!("cannot find cargo-uk: {e}")),
                String::new(),
            );
        }
    };
    let created = Command::new(&exe)
        .args(["new", app])
        .args(c_flag)
        .arg("--path")
        .arg(&dir)
        .stdin(Stdio::null())
        .output();
    match created {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return row(
                Evaluation::failed(format!("cargo uk new failed: {msg}")),
                String::new(),
            );
        }
        Err(e) => {
            return row(
                Evaluation::failed(format!("cannot run cargo uk new: {e}")),
                String::new(),
            );
        }
    }
    // The project's alias runs cargo-uk from these sources; the shared target directory
    // keeps that build, and the uk-rs crates', from being done again.
    let run = Command::new(cargo_program())
        .current_dir(&dir)
        .args(["uk", "run", "--release", "--board", "x86-pc", "--no-kvm"])
        .args(["--timeout", &timeout.as_secs().to_string(), "--", "one"])
        .env("CARGO_TARGET_DIR", &ws.target_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) => {
            return row(
                Evaluation::failed(format!("cannot run cargo uk run: {e}")),
                String::new(),
            );
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let eval = evaluate_new_project(lang, out.status.code(), &stdout);
    if out.status.success() {
        // Kept after a failure, for a look at what was generated.
        let _ = std::fs::remove_dir_all(&base);
    }
    let output = format!(
        "$ cd {} && cargo uk run --release --board x86-pc -- one\n{}[standard error]\n{}",
        dir.display(),
        report::tail(&stdout, TAIL_LINES),
        report::tail(&stderr, 30)
    );
    row(eval, output)
}

/// An example's expectations and manifest.
#[derive(Clone, Debug)]
struct ExampleSetup {
    expect: Expect,
    manifest: Manifest,
}

fn load_example(ws: &Workspace, example: &str) -> Result<ExampleSetup, String> {
    let expect = load_expect(ws, example)?;
    let manifest = ws.manifest(&Image::Example(example.to_owned()))?;
    check_also_boards(&expect, &manifest).map_err(|e| {
        let path = ws.root.join("examples").join(example).join("expect.toml");
        format!("{}: {e}", path.display())
    })?;
    Ok(ExampleSetup { expect, manifest })
}

/// Refuses an `[[also]]` run on a board the example's manifest does not allow.
fn check_also_boards(expect: &Expect, manifest: &Manifest) -> Result<(), String> {
    for (i, also) in expect.also.iter().enumerate() {
        let (board, _) = also.resolve(i)?;
        if !manifest.supports(board.name) {
            return Err(format!(
                "also[{i}].board: board {} is not among the application's boards \
                 ([package.metadata.uk] boards = [{}])",
                board.name,
                manifest.boards.join(", ")
            ));
        }
    }
    Ok(())
}

/// The extra runs (`[[also]]`) of an example on `board`: the row name, the configuration
/// and the expectations of each, in file order, after the QEMU gate: a configuration that
/// `version` does not emulate correctly ([`boards::qemu_emulates`]) is left out, with a
/// note saying why.
fn also_runs(
    example: &str,
    expect: &Expect,
    board: &Board,
    version: Option<(u32, u32, u32)>,
    forced: bool,
) -> (Vec<(String, &'static Variant, Expect)>, Vec<String>) {
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    for (i, also) in expect.also.iter().enumerate() {
        // Names were checked when the file was read.
        let Ok((b, variant)) = also.resolve(i) else {
            continue;
        };
        if b.name != board.name {
            continue;
        }
        let mut what = example_row_name(example, &also.args);
        // A run under another scheduler keeps a row (and a share directory) of its own.
        if let Some(policy) = &also.scheduler {
            what = format!("{what} (sched={policy})");
        }
        if let Err(why) = boards::qemu_emulates(variant, version, forced) {
            notes.push(format!(
                "{what} on {}/{} left out: {why}",
                board.name, variant.name
            ));
            continue;
        }
        runs.push((what, variant, also.expect(expect)));
    }
    (runs, notes)
}

/// The row name of an example run: `example NAME`, followed by ` -- ARGS` when the run
/// gives arguments of its own (two runs on one configuration stay apart).
fn example_row_name(example: &str, args: &[String]) -> String {
    if args.is_empty() {
        format!("example {example}")
    } else {
        format!("example {example} -- {}", args.join(" "))
    }
}

/// The row name that selects the new-project check with `--filter`.
pub const NEW_PROJECT: &str = "new-project";

/// What `--filter` patterns select.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Run the host tests (only without a filter).
    pub host: bool,
    /// Run the ktest image, with these case filters.
    pub ktest: Option<Vec<String>>,
    /// The examples to run.
    pub examples: Vec<String>,
    /// Create, build and boot a project made by `cargo uk new`.
    pub new_project: bool,
}

/// Splits `--filter` patterns: a pattern equal to an example's name (or `new-project`)
/// selects that run; the others are in-image test case filters, and select the ktest
/// image. Without patterns everything runs.
pub fn select(filters: &[String], examples: &[String]) -> Selection {
    if filters.is_empty() {
        return Selection {
            host: true,
            ktest: Some(Vec::new()),
            examples: examples.to_vec(),
            new_project: true,
        };
    }
    let named: Vec<String> = examples
        .iter()
        .filter(|e| filters.contains(e))
        .cloned()
        .collect();
    let cases: Vec<String> = filters
        .iter()
        .filter(|f| !examples.contains(f) && f.as_str() != NEW_PROJECT)
        .cloned()
        .collect();
    Selection {
        host: false,
        ktest: (!cases.is_empty()).then_some(cases),
        examples: named,
        new_project: filters.iter().any(|f| f == NEW_PROJECT),
    }
}

/// The example runs of one board: their jobs, after building what they need. Examples whose
/// manifest asks for cargo features are built one by one (features unify within one cargo
/// invocation); the others in `shared`.
fn example_job(
    ws: &Workspace,
    run: ExampleRun<'_>,
    example: &str,
    setup: &Result<ExampleSetup, String>,
    kernel: Result<PathBuf, String>,
) -> Job {
    let ExampleRun {
        what,
        board,
        variant,
        expect,
    } = run;
    let job = |kernel, append, check, machine| Job {
        what: what.clone(),
        board,
        variant,
        kernel,
        append,
        check,
        machine,
    };
    let fail = |e: String| {
        job(
            kernel.clone(),
            None,
            Check::Example(Err(e)),
            Machine::default(),
        )
    };
    let setup = match setup {
        Ok(s) => s,
        Err(e) => return fail(e.clone()),
    };
    let expect = expect.unwrap_or(&setup.expect);
    let m = &setup.manifest;
    let args = if expect.args.is_empty() {
        &m.args
    } else {
        &expect.args
    };
    let append = match m
        .kernel_params(expect.scheduler.as_deref())
        .and_then(|p| manifest::command_line(&p, args))
    {
        Ok(a) => a,
        Err(e) => return fail(format!("expect.toml args: {e}")),
    };
    let dir = ws.package_dir(&Image::Example(example.to_owned()));
    let initrd = match (&expect.initrd, &m.initrd) {
        (Some(p), _) => Some(dir.join(p)),
        (None, Some(p)) => Some(dir.join(p)),
        (None, None) => None,
    };
    let initrd = match initrd {
        Some(p) => {
            match crate::prepare_initrd(&p, &ws.target_dir, &format!("{example}-{}", board.name)) {
                Ok(p) => Some(p),
                Err(e) => return fail(format!("{e:#}")),
            }
        }
        None => None,
    };
    // The guest may write to its shared directory: every run gets a fresh copy, so runs
    // start alike and the source tree is never touched.
    let share = match &m.share {
        Some(p) => {
            // One directory per run: the default run and `[[also]]` runs on the same
            // configuration must not see each other's writes.
            let run: String = what
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let label = format!("{run}-{}-{}", board.name, variant.name);
            match fresh_share(&ws.target_dir, &label, Some(&dir.join(p))) {
                Ok(p) => Some(p),
                Err(e) => return fail(format!("share: {e}")),
            }
        }
        None => None,
    };
    let machine = Machine {
        memory: m.memory.clone().unwrap_or_else(|| "64M".to_owned()),
        smp: m.cpus.or(expect.smp),
        initrd,
        share,
        rng: m.rng,
        extra: m.qemu_args.clone(),
    };
    job(kernel, append, Check::Example(Ok(expect.clone())), machine)
}

/// A ktest run of `kernel` on `variant`, with its own shared directory (a directory that
/// cannot be made fails the run, rather than letting the 9p cases skip unnoticed).
fn ktest_job(
    ws: &Workspace,
    what: String,
    board: &'static Board,
    variant: &'static Variant,
    kernel: Result<PathBuf, String>,
    append: &Option<String>,
    profile: &str,
) -> Job {
    let (kernel, machine) = match ktest_machine(ws, board, variant, profile) {
        Ok(machine) => (kernel, machine),
        Err(e) => (Err(format!("share: {e}")), Machine::default()),
    };
    Job {
        what,
        board,
        variant,
        kernel,
        append: append.clone(),
        check: Check::Ktest,
        machine,
    }
}

/// The file every ktest run finds in its shared directory, and its contents (uk-9pfs's and
/// uk-virtio's in-image cases read it).
pub const KTEST_SHARE_FILE: (&str, &str) = ("hello.txt", "hello from the host\n");

/// The machine of a ktest run: a fresh shared directory holding [`KTEST_SHARE_FILE`], and
/// a virtio entropy device (uk-virtio's cases read it). `profile` tells the debug run's
/// directory from the release run's, which may run at the same time.
fn ktest_machine(
    ws: &Workspace,
    board: &Board,
    variant: &Variant,
    profile: &str,
) -> Result<Machine, String> {
    let label = format!("ktest-{}-{}-{profile}", board.name, variant.name);
    let dir = fresh_share(&ws.target_dir, &label, None)?;
    let file = dir.join(KTEST_SHARE_FILE.0);
    std::fs::write(&file, KTEST_SHARE_FILE.1)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(Machine {
        share: Some(dir),
        rng: true,
        ..Machine::default()
    })
}

/// uk-virtio's in-image case that needs a device that stops answering, as suite (the
/// crate's package name) and case name: it runs in the `ktest (slow rng)` rows
/// ([`slow_rng_job`]) and is skipped in the others.
pub const SLOW_RNG_CASE: (&str, &str) = ("uk-virtio", "a_rate_limited_entropy_device_times_out");

/// Bytes the rate-limited entropy device of [`slow_rng_job`] gives before it stops
/// answering.
const SLOW_RNG_BYTES: u64 = 16;

/// Its period: ten minutes, longer than any run, so that it never answers again.
const SLOW_RNG_PERIOD_MS: u32 = 600_000;

/// Whether the ktest filters `filters` select the case `name` of suite `suite`: the
/// image's own rule, [`uk_test::selects`].
fn selects_case(filters: &[String], (suite, name): (&str, &str)) -> bool {
    uk_test::selects(filters.iter().map(String::as_str), suite, name)
}

/// The run of [`SLOW_RNG_CASE`] on `variant`, or `None` when the ktest filters `filters`
/// leave the case out: the ktest image `kernel`, whose entropy device gives
/// [`SLOW_RNG_BYTES`] bytes and then stops answering ([`qemu::slow_rng_args`], in place of
/// the normal device, without a shared directory), and whose command line runs that case
/// alone and gives it the quota (`virtio-slow-rng=N`, which as a filter matches no case).
fn slow_rng_job(
    board: &'static Board,
    variant: &'static Variant,
    kernel: Result<PathBuf, String>,
    filters: &[String],
) -> Option<Job> {
    if !selects_case(filters, SLOW_RNG_CASE) {
        return None;
    }
    let (suite, name) = SLOW_RNG_CASE;
    let case = format!("{suite}::{name}");
    let args = [case.clone(), format!("virtio-slow-rng={SLOW_RNG_BYTES}")];
    let append = qemu::append_line(&args).expect("no quotes in the arguments");
    Some(Job {
        what: "ktest (slow rng)".to_owned(),
        board,
        variant,
        kernel,
        append,
        check: Check::KtestCase(case),
        machine: Machine {
            extra: qemu::slow_rng_args(board, variant, SLOW_RNG_BYTES, SLOW_RNG_PERIOD_MS),
            ..Machine::default()
        },
    })
}

/// Makes `<target>/uk-share/<label>` anew: empty, or a copy of `source` (files,
/// directories and symbolic links).
fn fresh_share(target_dir: &Path, label: &str, source: Option<&Path>) -> Result<PathBuf, String> {
    let dir = target_dir.join("uk-share").join(label);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    match source {
        Some(src) => copy_tree(src, &dir)
            .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dir.display()))?,
        None => std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?,
    }
    Ok(dir)
}

/// Copies the directory `src` to `dst` (which must not exist).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Which run of an example [`example_job`] makes.
struct ExampleRun<'a> {
    /// Row name.
    what: String,
    board: &'static Board,
    variant: &'static Variant,
    /// The run's expectations; `None`: the top level of `expect.toml` (the default run).
    expect: Option<&'a Expect>,
}

/// Runs `cargo uk test`.
pub fn run(args: &TestArgs) -> Result<ExitCode> {
    let boards: Vec<&'static Board> = match &args.board {
        Some(name) => vec![lookup_board(name).map_err(UsageError)?],
        None => BOARDS.iter().collect(),
    };
    let timeout = Duration::from_secs(args.timeout);
    let ws = Workspace::locate()?;
    let all_examples = ws.examples();
    let selection = select(&args.filter, &all_examples);
    let ktest_append = match &selection.ktest {
        Some(filters) => qemu::append_line(filters).map_err(UsageError)?,
        None => None,
    };
    let examples = &selection.examples;
    let setups: BTreeMap<&str, Result<ExampleSetup, String>> = examples
        .iter()
        .map(|e| (e.as_str(), load_example(&ws, e)))
        .collect();

    let mut rows = Vec::new();
    if selection.host {
        println!("==> host tests: cargo test --no-fail-fast");
        rows.push(host_tests(&ws));
    }

    let mut jobs = Vec::new();
    for &board in &boards {
        // Examples this board runs: those whose manifest lists it (or lists no board).
        let on_board: Vec<&String> = examples
            .iter()
            .filter(|e| match &setups[e.as_str()] {
                Ok(s) => s.manifest.supports(board.name),
                Err(_) => true,
            })
            .collect();
        for e in examples.iter().filter(|e| !on_board.contains(e)) {
            println!(
                "note: example {e} is not run on {}: its manifest does not list the board",
                board.name
            );
        }
        let image_count = usize::from(selection.ktest.is_some()) + on_board.len();
        println!(
            "==> building {image_count} image(s) for {} ({}, release){}, one cargo build each",
            board.name,
            board.triple,
            if selection.ktest.is_some() {
                " and the ktest image in the debug profile"
            } else {
                ""
            }
        );
        let _ = std::io::stdout().flush();
        let qemu = host::ensure_qemu(board).map_err(|e| format!("{e:#}"));
        if let Err(e) = &qemu {
            eprintln!("error: {e}");
        }
        let version = host::qemu_version(board.qemu);
        let forced = boards::qemu_fixes_forced();
        // Every image is built by a cargo invocation of its own: cargo unifies the features
        // of the packages it builds together, so one image's features (defmt, an
        // allocator) would otherwise leak into the others.
        let build = |image: &Image, features: &[String], release: bool| {
            qemu.clone().map_err(|e| format!("not run: {e}"))?;
            let features: Vec<&str> = features.iter().map(String::as_str).collect();
            ws.build_with_features(
                board.triple,
                std::slice::from_ref(image),
                &features,
                release,
                false,
            )
            .map_err(|e| format!("not run: {e:#}"))
            .and_then(|mut paths| {
                paths
                    .remove(image.package())
                    .ok_or_else(|| format!("not run: cargo built no {}", image.package()))
            })
        };
        let build_one = |image: &Image, features: &[String]| build(image, features, true);
        if selection.ktest.is_some() {
            // Configurations whose ktest image has features of its own: built first, and
            // the binary copied aside, because the plain build writes the same path.
            let featured = match &qemu {
                Ok(()) => featured_ktests(&ws, board, version, forced),
                Err(_) => BTreeMap::new(),
            };
            let plain = board
                .variants
                .iter()
                .any(|v| !featured.contains_key(v.name))
                .then(|| build_one(&Image::Ktest, &[]));
            let mut default_kernel = Err("not built".to_owned());
            for variant in board.variants {
                let (what, kernel) = match (featured.get(variant.name), &plain) {
                    (Some((features, path)), _) => {
                        (format!("ktest+{}", features.join("+")), path.clone())
                    }
                    (None, Some(path)) => ("ktest".to_owned(), path.clone()),
                    (None, None) => ("ktest".to_owned(), Err("not built".to_owned())),
                };
                if variant.name == board.default_variant().name {
                    default_kernel = kernel.clone();
                }
                jobs.push(ktest_job(
                    &ws,
                    what,
                    board,
                    variant,
                    kernel,
                    &ktest_append,
                    "release",
                ));
            }
            // The same cases built as `cargo uk run` builds by default, on the default
            // configuration: debug builds have their own failures (overflow checks, debug
            // assertions, larger stack frames).
            let debug = build(&Image::Ktest, &[], false);
            let variant = board.default_variant();
            jobs.push(ktest_job(
                &ws,
                "ktest (debug)".to_owned(),
                board,
                variant,
                debug,
                &ktest_append,
                "debug",
            ));
            // uk-virtio's timeout against a device that stops answering: one short run of
            // the release image with a rate-limited entropy device.
            let filters = selection.ktest.as_deref().unwrap_or_default();
            jobs.extend(slow_rng_job(board, variant, default_kernel, filters));
        }
        for example in on_board {
            let image = Image::Example(example.clone());
            let features = setups[example.as_str()]
                .as_ref()
                .ok()
                .and_then(|s| s.manifest.cargo_features(None).ok())
                .unwrap_or_default();
            let kernel = build_one(&image, &features);
            let setup = &setups[example.as_str()];
            let default_run = ExampleRun {
                what: example_row_name(example, &[]),
                board,
                variant: board.default_variant(),
                expect: None,
            };
            jobs.push(example_job(
                &ws,
                default_run,
                example,
                setup,
                kernel.clone(),
            ));
            // Its `[[also]]` runs on this board: the same image on other configurations.
            let Ok(s) = setup else { continue };
            // Without a QEMU every run fails as "not run"; the gate would only add noise.
            let gated = qemu.is_ok();
            let (runs, notes) = also_runs(example, &s.expect, board, version, forced || !gated);
            for note in notes {
                println!("note: {note}");
            }
            for (what, variant, expect) in &runs {
                let run = ExampleRun {
                    what: what.clone(),
                    board,
                    variant,
                    expect: Some(expect),
                };
                jobs.push(example_job(&ws, run, example, setup, kernel.clone()));
            }
        }
    }
    println!(
        "==> {} QEMU run(s), {} at a time, {} s limit each",
        jobs.len(),
        args.jobs,
        args.timeout
    );
    let _ = std::io::stdout().flush();
    rows.extend(run_jobs(
        &jobs,
        usize::try_from(args.jobs).unwrap_or(1),
        timeout,
    ));
    if selection.new_project && boards.iter().any(|b| b.name == "x86-pc") {
        println!("==> new-project: cargo uk new [--c], then cargo uk run in it (x86-pc)");
        let _ = std::io::stdout().flush();
        for lang in [Lang::Rust, Lang::C] {
            let row = new_project_row(&ws, timeout, lang);
            print_progress(&row);
            rows.push(row);
        }
    }

    let failed: Vec<&Row> = rows.iter().filter(|r| !r.eval.ok).collect();
    for row in &failed {
        println!();
        println!(
            "---- {} on {}: {}: {} ----",
            row.what, row.config, row.eval.label, row.eval.note
        );
        print!("{}", row.output);
    }
    println!();
    print!("{}", format_table(&rows));
    let total = totals(&rows);
    println!("{} passed, {} failed", total.passed, total.failed);
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::board;

    const GOOD: &str =
        "test a::one ... ok\r\ntest a::two ... ok (failed as expected)\r\n2 passed, 0 failed\r\n";

    #[test]
    fn ktest_passes_with_closing_line_no_failure_and_exit_zero() {
        let x86 = board("x86-pc").unwrap();
        let e = evaluate_ktest(x86, Ending::Exited(1), GOOD, "");
        assert!(e.ok, "{e:?}");
        assert_eq!(e.label, "ok");
        assert_eq!(
            e.counts,
            Counts {
                passed: 2,
                failed: 0
            }
        );
        let virt = board("qemu-virt").unwrap();
        assert!(evaluate_ktest(virt, Ending::Exited(0), GOOD, "").ok);
        // A run made for one case fails when that case did not run.
        let for_case = |case| evaluate_ktest_of(x86, Ending::Exited(1), GOOD, "", Some(case));
        assert!(for_case("a::two").ok);
        let e = for_case("a::three");
        assert!(!e.ok);
        assert_eq!(e.note, "case a::three did not run");
    }

    #[test]
    fn ktest_failures() {
        let x86 = board("x86-pc").unwrap();
        // Non-zero exit code.
        let e = evaluate_ktest(x86, Ending::Exited(3), GOOD, "");
        assert!(!e.ok);
        assert_eq!(e.note, "exit code 1");
        assert_eq!(e.counts.failed, 1);
        // A failed case.
        let out = "test a::one ... FAILED (boom)\n0 passed, 1 failed\n";
        let e = evaluate_ktest(x86, Ending::Exited(3), out, "");
        assert_eq!(e.note, "1 failed: a::one; exit code 1");
        assert_eq!(e.counts.failed, 1);
        // No closing line.
        let e = evaluate_ktest(x86, Ending::Exited(1), "test a::one ... ok\n", "");
        assert_eq!(e.note, "no closing `N passed, N failed` line");
        assert_eq!(
            e.counts,
            Counts {
                passed: 1,
                failed: 1
            }
        );
        // Hung.
        let e = evaluate_ktest(x86, Ending::TimedOut, "test a::one ... ok\n", "");
        assert_eq!(e.label, "HUNG");
        assert!(e.note.starts_with("hung"), "{}", e.note);
        // QEMU could not start.
        let e = evaluate_ktest(
            x86,
            Ending::Exited(1),
            "",
            "qemu: could not open kernel file 'x'\n",
        );
        assert_eq!(e.label, "FAILED");
        assert_eq!(e.note, "QEMU failed: qemu: could not open kernel file 'x'");
    }

    #[test]
    fn shared_directories_are_fresh_copies() {
        let base = std::env::temp_dir().join(format!("cargo-uk-share-{}", std::process::id()));
        let src = base.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), "a").unwrap();
        std::fs::write(src.join("sub/b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        let copy = fresh_share(&base, "x", Some(&src)).unwrap();
        assert_eq!(copy, base.join("uk-share/x"));
        assert_eq!(
            std::fs::read_to_string(copy.join("sub/b.txt")).unwrap(),
            "b"
        );
        assert_eq!(
            std::fs::read_link(copy.join("link")).unwrap(),
            Path::new("a.txt")
        );
        // What a guest wrote is gone at the next run, and the source was never touched.
        std::fs::write(copy.join("new.txt"), "guest").unwrap();
        std::fs::write(copy.join("a.txt"), "changed").unwrap();
        let again = fresh_share(&base, "x", Some(&src)).unwrap();
        assert!(!again.join("new.txt").exists());
        assert_eq!(std::fs::read_to_string(again.join("a.txt")).unwrap(), "a");
        assert!(!src.join("new.txt").exists());
        let empty = fresh_share(&base, "y", None).unwrap();
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        assert!(fresh_share(&base, "z", Some(&base.join("missing"))).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn examples_are_checked_against_expect() {
        let virt = board("qemu-virt").unwrap();
        let expect = Expect {
            args: vec![],
            exit_code: 0,
            lines: vec!["^Hello from uk-rs on {board}".into()],
            differs_between_boots: None,
            smp: None,
            initrd: None,
            scheduler: None,
            also: vec![],
        };
        let out = "Hello from uk-rs on qemu-virt\r\n";
        let e = evaluate_example(virt, &expect, Ending::Exited(0), out, "");
        assert!(e.ok);
        assert_eq!(
            e.counts,
            Counts {
                passed: 1,
                failed: 0
            }
        );
        let e = evaluate_example(virt, &expect, Ending::Exited(2), out, "");
        assert_eq!(e.note, "exit code 2, expected 0");
        assert_eq!(
            e.counts,
            Counts {
                passed: 0,
                failed: 1
            }
        );
        let e = evaluate_example(virt, &expect, Ending::Exited(0), "Hello\n", "");
        assert!(e.note.starts_with("no line matches"), "{}", e.note);
        let e = evaluate_example(virt, &expect, Ending::TimedOut, out, "");
        assert_eq!(e.label, "HUNG");
    }

    #[test]
    fn filters_select_examples_the_new_project_and_ktest_cases() {
        let examples: Vec<String> = ["files", "helloworld", "threads"]
            .map(String::from)
            .to_vec();
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = select(&[], &examples);
        assert!(all.host && all.new_project);
        assert_eq!(all.ktest, Some(vec![]));
        assert_eq!(all.examples, examples);
        let s = select(&f(&["helloworld"]), &examples);
        assert_eq!(
            s,
            Selection {
                host: false,
                ktest: None,
                examples: f(&["helloworld"]),
                new_project: false
            }
        );
        let s = select(&f(&["clock", "threads", "new-project"]), &examples);
        assert_eq!(s.ktest, Some(f(&["clock"])));
        assert_eq!(s.examples, f(&["threads"]));
        assert!(s.new_project && !s.host);
        // A part of a name is a case filter, not an example.
        let s = select(&f(&["hello"]), &examples);
        assert_eq!(s.ktest, Some(f(&["hello"])));
        assert!(s.examples.is_empty());
    }

    #[test]
    fn the_slow_rng_row_runs_its_case_alone_with_a_rate_limited_device() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let x86 = board("x86-pc").unwrap();
        let pc = x86.default_variant();
        let job = slow_rng_job(x86, pc, Ok(PathBuf::from("img")), &[]).unwrap();
        assert_eq!(job.what, "ktest (slow rng)");
        assert_eq!(
            job.append.as_deref(),
            Some("-- uk-virtio::a_rate_limited_entropy_device_times_out virtio-slow-rng=16")
        );
        assert!(
            matches!(&job.check, Check::KtestCase(c) if c == "uk-virtio::a_rate_limited_entropy_device_times_out")
        );
        // The rate-limited device in place of the normal one, and no shared directory.
        assert!(!job.machine.rng && job.machine.share.is_none());
        assert_eq!(job.machine.extra, qemu::slow_rng_args(x86, pc, 16, 600_000));
        let virt = board("qemu-virt").unwrap();
        let job = slow_rng_job(virt, virt.default_variant(), Err("x".into()), &[]).unwrap();
        assert!(job.machine.extra[3].starts_with("virtio-rng-device,"));
        // Filters select the row as they select the case in the image.
        for selecting in [
            &["virtio"][..],
            &["times_out"],
            &["uk-virtio::a_rate"],
            &["x", "entropy"],
        ] {
            assert!(slow_rng_job(x86, pc, Err("x".into()), &f(selecting)).is_some());
        }
        for leaving_out in [&["9pfs"][..], &["uk-virtio::the_"], &["virtio-slow-rng=16"]] {
            assert!(slow_rng_job(x86, pc, Err("x".into()), &f(leaving_out)).is_none());
        }
    }

    const MTE_EXPECT: &str = r#"
lines = ['^mte: done$']
[[also]]
board = "qemu-virt"
variant = "mte"
lines = ['caught']
[[also]]
board = "qemu-virt"
variant = "mte"
args = ["fault"]
exit_code = 101
[[also]]
board = "qemu-virt"
variant = "el2"
"#;

    #[test]
    fn also_runs_are_per_board_and_gated_by_the_qemu_version() {
        let expect = Expect::parse(MTE_EXPECT).unwrap();
        let virt = board("qemu-virt").unwrap();
        let names = |runs: &[(String, &Variant, Expect)]| {
            runs.iter()
                .map(|(what, v, _)| format!("{what} on {}", v.name))
                .collect::<Vec<_>>()
        };
        // A recent QEMU: every run, in file order, each with its own expectations.
        let (runs, notes) = also_runs("mte", &expect, virt, Some((10, 0, 2)), false);
        assert_eq!(
            names(&runs),
            [
                "example mte on mte",
                "example mte -- fault on mte",
                "example mte on el2"
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(runs[0].2.lines, ["caught"]);
        assert_eq!(
            (runs[1].2.args.clone(), runs[1].2.exit_code),
            (vec!["fault".to_owned()], 101)
        );
        // QEMU 7.2: the mte runs are left out with a note each; el2 needs no minimum.
        let (runs, notes) = also_runs("mte", &expect, virt, Some((7, 2, 22)), false);
        assert_eq!(names(&runs), ["example mte on el2"]);
        assert_eq!(notes.len(), 2);
        let why = boards::qemu_emulates(virt.variant("mte").unwrap(), Some((7, 2, 22)), false)
            .unwrap_err();
        assert_eq!(
            notes[0],
            format!("example mte on qemu-virt/mte left out: {why}")
        );
        assert!(
            notes[1].starts_with("example mte -- fault on qemu-virt/mte left out: QEMU 7.2.22")
        );
        // UK_QEMU_HAS_FIXES=1 keeps them; an unknown version leaves them out.
        assert_eq!(
            also_runs("mte", &expect, virt, Some((7, 2, 22)), true)
                .0
                .len(),
            3
        );
        assert_eq!(also_runs("mte", &expect, virt, None, false).0.len(), 1);
        // Another board has none of them.
        let x86 = board("x86-pc").unwrap();
        let (runs, notes) = also_runs("mte", &expect, x86, Some((10, 0, 2)), false);
        assert!(runs.is_empty() && notes.is_empty());
    }

    #[test]
    fn also_runs_must_be_on_the_manifest_boards() {
        let expect = Expect::parse(MTE_EXPECT).unwrap();
        let any = Manifest::default();
        assert_eq!(check_also_boards(&expect, &any), Ok(()));
        let both = Manifest::from_cargo_toml(
            "[package.metadata.uk]\nboards = [\"x86-pc\", \"qemu-virt\"]",
        )
        .unwrap();
        assert_eq!(check_also_boards(&expect, &both), Ok(()));
        let x86 =
            Manifest::from_cargo_toml("[package.metadata.uk]\nboards = [\"x86-pc\"]").unwrap();
        assert_eq!(
            check_also_boards(&expect, &x86).unwrap_err(),
            "also[0].board: board qemu-virt is not among the application's boards \
             ([package.metadata.uk] boards = [x86-pc])"
        );
    }

    #[test]
    fn example_rows_name_their_arguments() {
        assert_eq!(example_row_name("mte", &[]), "example mte");
        let args = ["fault".to_owned(), "two words".to_owned()];
        assert_eq!(
            example_row_name("mte", &args),
            "example mte -- fault two words"
        );
    }

    #[test]
    fn new_project_output() {
        let good = "Hello from newapp on x86-pc\r\nargs: [\"one\"]\r\n";
        assert!(evaluate_new_project(Lang::Rust, Some(0), good).ok);
        let e = evaluate_new_project(Lang::Rust, Some(1), good);
        assert_eq!(e.note, "exit code 1, expected 0");
        let half = "Hello from newapp on x86-pc\n";
        assert!(!evaluate_new_project(Lang::Rust, Some(0), half).ok);
        assert!(!evaluate_new_project(Lang::Rust, None, good).ok);
        let c = "Hello from C in newcapp, argc 2\r\nargv[1] = one\r\n";
        assert!(evaluate_new_project(Lang::C, Some(0), c).ok);
        assert!(!evaluate_new_project(Lang::C, Some(0), good).ok);
        assert!(!evaluate_new_project(Lang::Rust, Some(0), c).ok);
    }

    fn row(what: &str, eval: Evaluation, secs: u64) -> Row {
        Row {
            what: what.into(),
            config: "x86-pc/pc".into(),
            eval,
            time: Duration::from_millis(secs * 1000 + 300),
            output: String::new(),
        }
    }

    #[test]
    fn table_and_totals() {
        let x86 = board("x86-pc").unwrap();
        let rows = [
            row("ktest", evaluate_ktest(x86, Ending::Exited(1), GOOD, ""), 2),
            row(
                "example helloworld",
                evaluate_example(x86, &Expect::default(), Ending::Exited(5), "", ""),
                12,
            ),
        ];
        let table = format_table(&rows);
        assert_eq!(
            table,
            "what                board/config  result  passed  failed   time\n\
             ktest               x86-pc/pc     ok           2       0   2.3s\n\
             example helloworld  x86-pc/pc     FAILED       0       1  12.3s\n"
        );
        assert_eq!(
            totals(&rows),
            Counts {
                passed: 2,
                failed: 1
            }
        );
    }
}
