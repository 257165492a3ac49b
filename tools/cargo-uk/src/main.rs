//! `cargo uk`: build, boot and test uk-rs unikernel images under QEMU.
//!
//! The workspace reaches this tool through a cargo alias (`uk = "run --quiet --release
//! --package cargo-uk --"` in `.cargo/config.toml`), so `cargo uk ...` needs no install step;
//! installed as `cargo-uk` on `PATH` it works the same way.
//!
//! - `cargo uk build [--board B] [--example E] [--release]` builds an image with
//!   `cargo build -p E --target <board's triple>` and prints its path and size.
//! - `cargo uk run [...] [-- ARGS]` builds it and boots it under QEMU with the contract's
//!   command line, the guest console on the terminal, and exits with the guest's exit code
//!   (decoded from `isa-debug-exit` on x86, semihosting on aarch64).
//! - `cargo uk test` runs the host tests (`cargo test`), the in-image test image on every
//!   board configuration, and every example against its `expect.toml`, then prints a table
//!   and a closing `N passed, N failed` line.
//!
//! A configuration may give the in-image test image cargo features of its own
//! ([`boards::Variant::ktest_features`]): cases that need hardware only that configuration
//! emulates. `qemu-virt/mte` (`-machine virt,mte=on`) builds it with `mte-faults`, the
//! `#[should_fail]` cases that must raise a tag check fault. QEMU before 8.0 emulates memory
//! tags with one tag per page (QEMU issue 1416), so with such a QEMU those cases are left out
//! and a note says so (`UK_QEMU_HAS_FIXES=1` keeps them, for a QEMU with the fix backported).
//!
//! The design keeps everything that can be decided without running a process in pure
//! functions with unit tests: the board and configuration tables ([`boards`]), QEMU command
//! lines, kernel command-line quoting and exit-code decoding ([`qemu`]), the parsing of test
//! output ([`report`]) and of `expect.toml` ([`expect`]). Process handling (time limits,
//! capture) lives in [`process`], cargo in [`workspace`], QEMU installation in [`host`].
//!
//! User mistakes and failures end with a one-line `error: ...` and a non-zero exit status
//! (2 for a bad command line, 1 otherwise), never with a panic.

pub mod boards;
pub mod expect;
pub mod host;
pub mod process;
pub mod qemu;
pub mod report;
pub mod test_cmd;
pub mod workspace;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::boards::lookup_board;
use crate::process::Io;
use crate::qemu::{Accel, AccelRequest, GuestFailure, QemuConfig};
use crate::workspace::{Image, Workspace};

/// A mistake in the command line: reported as `error: ...`, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Build, boot and test uk-rs unikernel images under QEMU.
#[derive(Debug, Parser)]
#[command(name = "cargo-uk", bin_name = "cargo uk", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build an image and print its path and size in bytes.
    Build(BuildArgs),
    /// Build an image and boot it under QEMU; exit with the guest's exit code.
    Run(RunArgs),
    /// Run the host tests, the in-image tests on every board configuration and every example.
    Test(TestArgs),
}

/// Which image for which board.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Board: x86-pc (x86_64-unknown-none) or qemu-virt (aarch64-unknown-none).
    #[arg(long, value_name = "BOARD", default_value = "x86-pc")]
    pub board: String,
    /// Example under examples/ (package and binary of that name); `ktest` is the in-image
    /// test image.
    #[arg(long, value_name = "NAME", default_value = "helloworld")]
    pub example: String,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
}

/// Arguments of `cargo uk build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Arguments of `cargo uk run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Machine configuration: x86-pc: pc (default), microvm; qemu-virt: max (default),
    /// cortex-a72, el2 (virtualization=on, entered at EL2), mte (mte=on: memory tagging).
    #[arg(long, visible_alias = "machine-variant", value_name = "VARIANT")]
    pub variant: Option<String>,
    /// Use KVM (`-accel kvm -cpu host`); x86-pc on an x86_64 host only. Without it KVM is used
    /// only when /proc/cpuinfo shows vmx/svm and /dev/kvm is usable.
    #[arg(long, conflicts_with = "no_kvm")]
    pub kvm: bool,
    /// Never use KVM: run under TCG.
    #[arg(long)]
    pub no_kvm: bool,
    /// Guest memory (QEMU -m syntax).
    #[arg(long, value_name = "SIZE", default_value = "64M")]
    pub mem: String,
    /// Number of CPUs (QEMU -smp).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub smp: Option<u32>,
    /// Kill the guest after this many seconds (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Application arguments, passed on the kernel command line after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Arguments of `cargo uk test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test only this board's configurations (default: every board).
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,
    /// Run only the in-image test cases matching PATTERN (passed to the ktest image as
    /// application arguments); may be repeated.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Kill an image after this many seconds and report it as hung.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// QEMU runs at a time.
    #[arg(long, short, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: u64,
}

/// Builds one image and returns its path.
fn build_image(ws: &Workspace, image: &Image, triple: &str, release: bool) -> Result<PathBuf> {
    let mut built = ws.build(triple, std::slice::from_ref(image), release, false)?;
    built
        .remove(image.package())
        .with_context(|| format!("cargo built no binary `{}`", image.package()))
}

fn cmd_build(args: &BuildArgs) -> Result<ExitCode> {
    let board = lookup_board(&args.image.board).map_err(UsageError)?;
    let ws = Workspace::locate()?;
    let image = ws.image(&args.image.example)?;
    let path = build_image(&ws, &image, board.triple, args.image.release)?;
    let size = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    println!("{} ({size} bytes)", path.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(args: &RunArgs) -> Result<ExitCode> {
    let board = lookup_board(&args.image.board).map_err(UsageError)?;
    let variant = match &args.variant {
        Some(name) => board.lookup_variant(name).map_err(UsageError)?,
        None => board.default_variant(),
    };
    let request = match (args.kvm, args.no_kvm) {
        (true, _) => AccelRequest::Kvm,
        (_, true) => AccelRequest::Tcg,
        _ => AccelRequest::Auto,
    };
    let accel = qemu::choose_accel(board, request, host::host_info()).map_err(UsageError)?;
    let append = qemu::append_line(&args.args).map_err(UsageError)?;
    let ws = Workspace::locate()?;
    let image = ws.image(&args.image.example)?;
    host::ensure_qemu(board)?;
    let kernel = if image == Image::Ktest {
        // The test image carries the cases of this configuration's own hardware, if any.
        let forced = std::env::var_os(boards::QEMU_FIXED_ENV).is_some_and(|v| v == "1");
        let (features, note) =
            boards::ktest_features(variant, host::qemu_version(board.qemu), forced);
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        let mut built = ws.build_with_features(
            board.triple,
            std::slice::from_ref(&image),
            features,
            args.image.release,
            false,
        )?;
        built
            .remove(image.package())
            .with_context(|| format!("cargo built no binary `{}`", image.package()))?
    } else {
        build_image(&ws, &image, board.triple, args.image.release)?
    };
    let config = QemuConfig {
        board,
        variant,
        accel,
        memory: &args.mem,
        smp: args.smp.or(variant.smp),
        kernel: &kernel,
        append,
    };
    let qemu_args: Vec<OsString> = qemu::qemu_args(&config);
    eprintln!(
        "     Running `{}`",
        qemu::display_command(board.qemu, &qemu_args)
    );
    let timeout = (args.timeout > 0).then(|| Duration::from_secs(args.timeout));
    let outcome = process::run(board.qemu, &qemu_args, Io::Interactive, timeout)
        .with_context(|| format!("cannot start {}", board.qemu))?;
    match qemu::guest_exit(board, outcome.ending, &outcome.stderr) {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))),
        Err(failure) => Err(run_failure(failure, accel, request, args.timeout)),
    }
}

/// Turns a failed boot into the one-line error of `cargo uk run`.
fn run_failure(
    failure: GuestFailure,
    accel: Accel,
    request: AccelRequest,
    timeout: u64,
) -> anyhow::Error {
    let kvm_start_failed =
        accel == Accel::Kvm && matches!(failure, GuestFailure::Qemu(_) | GuestFailure::Signal(_));
    if kvm_start_failed {
        let hint = if request == AccelRequest::Kvm {
            "run without --kvm to use TCG"
        } else {
            "KVM was chosen because the CPU shows vmx/svm; pass --no-kvm to use TCG"
        };
        return anyhow::anyhow!("QEMU could not run the guest with KVM ({failure}); {hint}");
    }
    match failure {
        GuestFailure::Hung => anyhow::anyhow!(
            "the image hung: no exit within {timeout} s, QEMU was killed (raise --timeout, 0 for no limit)"
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Parses the command line; a leading `uk` (as cargo passes to an installed `cargo-uk`) is
/// dropped. Clap's own errors are turned into one line.
fn parse_cli() -> std::result::Result<Cli, ExitCode> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "uk") {
        argv.remove(1);
    }
    Cli::try_parse_from(argv).map_err(|err| {
        use clap::error::ErrorKind;
        if matches!(
            err.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            let _ = err.print();
            return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        eprintln!("{}", one_line_clap_error(&err.render().to_string()));
        ExitCode::from(2)
    })
}

/// Folds clap's multi-line error message into one line (without the usage and help hints).
pub fn one_line_clap_error(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    let line = parts.join(" ");
    if line.starts_with("error:") {
        line
    } else {
        format!("error: {line}")
    }
}

/// Lets a closed output pipe (`cargo uk test | head`) end us quietly, as it does other
/// command-line tools, instead of making `println!` panic.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread
    // exists, has no memory-safety requirement.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match &cli.command {
        Cmd::Build(args) => cmd_build(args),
        Cmd::Run(args) => cmd_run(args),
        Cmd::Test(args) => test_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let message = format!("{err:#}").replace('\n', " ");
            eprintln!("error: {message}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_arguments() {
        let cli = Cli::try_parse_from([
            "cargo-uk",
            "run",
            "--board",
            "qemu-virt",
            "--release",
            "--smp",
            "2",
            "--",
            "one",
            "two words",
        ])
        .unwrap();
        let Cmd::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.image.board, "qemu-virt");
        assert_eq!(args.image.example, "helloworld");
        assert!(args.image.release);
        assert_eq!(args.smp, Some(2));
        assert_eq!(args.mem, "64M");
        assert_eq!(args.timeout, 60);
        assert_eq!(args.args, ["one", "two words"]);
        assert!(Cli::try_parse_from(["cargo-uk", "run", "--kvm", "--no-kvm"]).is_err());
        assert!(Cli::try_parse_from(["cargo-uk", "run", "--smp", "0"]).is_err());
        let cli = Cli::try_parse_from(["cargo-uk", "run", "--machine-variant", "microvm"]).unwrap();
        let Cmd::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.variant.as_deref(), Some("microvm"));
    }

    #[test]
    fn test_arguments() {
        let cli = Cli::try_parse_from([
            "cargo-uk", "test", "--filter", "clock", "--filter", "mem", "-j", "1",
        ])
        .unwrap();
        let Cmd::Test(args) = cli.command else {
            panic!("not test")
        };
        assert_eq!(args.filter, ["clock", "mem"]);
        assert_eq!(args.jobs, 1);
        assert_eq!(args.board, None);
        assert!(Cli::try_parse_from(["cargo-uk", "test", "--timeout", "0"]).is_err());
    }

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: unexpected argument '--bored' found\n\n  tip: a similar argument exists: '--board'\n\nUsage: cargo uk build --board <BOARD>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line_clap_error(rendered),
            "error: unexpected argument '--bored' found tip: a similar argument exists: '--board'"
        );
        let err = Cli::try_parse_from(["cargo-uk", "run", "--smp", "x"]).unwrap_err();
        let line = one_line_clap_error(&err.render().to_string());
        assert!(line.starts_with("error: invalid value 'x'"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn kvm_failures_say_what_to_do() {
        let qemu = GuestFailure::Qemu("qemu-system-x86_64: failed to initialize kvm".into());
        let msg = run_failure(qemu.clone(), Accel::Kvm, AccelRequest::Kvm, 60).to_string();
        assert!(
            msg.contains("with KVM") && msg.contains("without --kvm"),
            "{msg}"
        );
        let msg = run_failure(GuestFailure::Signal(6), Accel::Kvm, AccelRequest::Auto, 60);
        assert!(msg.to_string().contains("--no-kvm"), "{msg}");
        let msg = run_failure(qemu, Accel::Tcg, AccelRequest::Auto, 60).to_string();
        assert!(msg.starts_with("QEMU failed:"), "{msg}");
        let msg = run_failure(GuestFailure::Hung, Accel::Tcg, AccelRequest::Auto, 5).to_string();
        assert!(msg.contains("no exit within 5 s"), "{msg}");
    }
}
