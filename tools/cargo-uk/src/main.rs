//! `cargo uk`: build, boot and test uk-rs unikernel images under QEMU, in the style of
//! Unikraft's KraftKit (`kraft build`, `run`, `ps`, `stop`, `rm`, `kraft.yaml`), done the
//! Cargo way.
//!
//! The workspace reaches this tool through a cargo alias (`uk = "run --quiet --release
//! --package cargo-uk --"` in `.cargo/config.toml`), so `cargo uk ...` needs no install step;
//! a project made with `cargo uk new` gets an alias of its own that runs it from the uk-rs
//! sources; installed as `cargo-uk` on `PATH` it works the same way.
//!
//! - `cargo uk build [--board B] [-p NAME] [--release] [--size]` builds an image with
//!   `cargo build -p NAME --target <board's triple>` and prints its path and size; `--size`
//!   adds the size of each loaded ELF section. On a terminal a spinner shows how many crates
//!   are compiled (from cargo's JSON messages) and diagnostics are coloured.
//! - `cargo uk run [...] [-- ARGS]` builds it and boots it under QEMU with the contract's
//!   command line, the guest console on the terminal, and exits with the guest's exit code
//!   (decoded from `isa-debug-exit` on x86, semihosting on aarch64). `--gdb` / `--gdb-port`
//!   start QEMU with a gdb stub and the CPUs stopped, and print the gdb command that
//!   attaches. `--detach` starts it in the background ([`instances`]).
//! - `cargo uk ps | logs NAME [-f] | stop NAME | rm NAME [--force]` manage background
//!   instances.
//! - `cargo uk new NAME [--path DIR]` creates an application outside the repository
//!   ([`new`]).
//! - `cargo uk test` runs the host tests (`cargo test`), the in-image test image on every
//!   board configuration, every example against its `expect.toml`, and a project made with
//!   `cargo uk new`, then prints a table and a closing `N passed, N failed` line. `--board`
//!   and `--filter` run a subset ([`test_cmd::select`]).
//!
//! Without `-p`, the image is the application package around the current directory (so
//! `cargo uk run` in an application's folder boots it), else `helloworld`.
//!
//! # The application manifest
//!
//! An application describes how it is built and booted in `[package.metadata.uk]` of its
//! `Cargo.toml` ([`manifest`]): boards, scheduler policy, allocator, memory, CPUs, kernel
//! parameters and arguments, initrd (a file, or a directory packed as CPIO newc by
//! [`cpio`]), a host directory shared over virtio-9p (`share`, see
//! [`qemu::share_device`]) and extra QEMU arguments. Command-line flags override it.
//!
//! ```toml
//! [package.metadata.uk]
//! boards = ["x86-pc", "qemu-virt"]
//! allocator = "buddy"        # cargo feature uk-app/alloc-buddy
//! scheduler = "preemptive"   # kernel parameter sched=preemptive
//! memory = "128M"
//! cpus = 1
//! initrd = "rootfs"
//! share = "shared"
//! ```
//!
//! # defmt
//!
//! An image built with uk-rt's `defmt` feature writes defmt frames on the console;
//! `run`, `test` and `logs` decode them with the image's `.defmt` table ([`defmt`]), so the
//! user reads text. Images are built with `DEFMT_LOG=info` unless `DEFMT_LOG` is set.
//!
//! A configuration may give the in-image test image cargo features of its own
//! ([`boards::Variant::ktest_features`]): cases that need hardware only that configuration
//! emulates. `qemu-virt/mte` (`-machine virt,mte=on`) builds it with `mte-faults`, the
//! `#[should_fail]` cases that must raise a tag check fault. QEMU before 8.0 emulates memory
//! tags with one tag per page (QEMU issue 1416), so with such a QEMU those cases are left out
//! and a note says so (`UK_QEMU_HAS_FIXES=1` keeps them, for a QEMU with the fix backported).
//! An example's `expect.toml` may ask for more runs on other configurations (`[[also]]`,
//! [`expect`]); one function, [`boards::qemu_emulates`], gates both those runs and the
//! ktest features.
//!
//! The design keeps everything that can be decided without running a process in pure
//! functions with unit tests: the board and configuration tables ([`boards`]), QEMU command
//! lines, kernel command-line quoting and exit-code decoding ([`qemu`]), the manifest
//! ([`manifest`]), the parsing of test output ([`report`]) and of `expect.toml`
//! ([`expect`]), instance states ([`instances`]). Process handling (time limits, capture)
//! lives in [`process`], cargo in [`workspace`], QEMU installation in [`host`].
//!
//! User mistakes and failures end with a one-line `error: ...` and a non-zero exit status
//! (2 for a bad command line, 1 otherwise), never with a panic.

pub mod boards;
pub mod cpio;
pub mod defmt;
pub mod expect;
pub mod host;
pub mod instances;
pub mod manifest;
pub mod new;
pub mod process;
pub mod qemu;
pub mod report;
pub mod style;
pub mod test_cmd;
pub mod workspace;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::boards::{Board, Variant, lookup_board};
use crate::manifest::Manifest;
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
    /// Build an image and print its path and size in bytes (`--size`: by section).
    Build(BuildArgs),
    /// Build an image and boot it under QEMU; exit with the guest's exit code
    /// (`--detach`: in the background).
    Run(RunArgs),
    /// Run the host tests, the in-image tests on every board configuration and every example.
    Test(TestArgs),
    /// Create a new application (outside this repository) that `cargo uk run` boots.
    New(NewArgs),
    /// List the background instances: name, board, state, uptime, memory, image.
    Ps,
    /// Print the console output of an instance.
    Logs(LogsArgs),
    /// Stop a running instance (SIGTERM to QEMU, SIGKILL after 5 s).
    Stop(NameArg),
    /// Remove an instance and its logs (a running one only with --force).
    Rm(RmArgs),
    /// Internal: the supervisor of a detached instance.
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The instance's directory.
        dir: PathBuf,
    },
}

/// Which image for which board.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Board: x86-pc (x86_64-unknown-none) or qemu-virt (aarch64-unknown-none). Default:
    /// the first of the application's `[package.metadata.uk] boards`, else x86-pc.
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,
    /// Example under examples/ (package and binary of that name), an application package
    /// of the workspace, or `ktest` (the in-image test image). Default: the application
    /// around the current directory, else helloworld.
    #[arg(long, short = 'p', visible_alias = "package", value_name = "NAME")]
    pub example: Option<String>,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
    /// Heap allocator: tlsf, buddy or region (cargo feature `uk-app/alloc-...`); overrides
    /// the manifest's `allocator`.
    #[arg(long, value_name = "NAME")]
    pub allocator: Option<String>,
    /// Extra cargo features of the application (comma-separated), added to the manifest's.
    #[arg(long, value_name = "FEATURES", value_delimiter = ',')]
    pub features: Vec<String>,
}

/// Arguments of `cargo uk build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Print the image's size by ELF section.
    #[arg(long)]
    pub size: bool,
}

/// Arguments of `cargo uk run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Machine configuration: x86-pc: pc (default), microvm, qemu64; qemu-virt: max
    /// (default), cortex-a72, el2 (virtualization=on, entered at EL2), mte (mte=on).
    #[arg(long, visible_alias = "machine-variant", value_name = "VARIANT")]
    pub variant: Option<String>,
    /// Use KVM (`-accel kvm -cpu host`); x86-pc on an x86_64 host only. Without it KVM is used
    /// only when /proc/cpuinfo shows vmx/svm and /dev/kvm is usable.
    #[arg(long, conflicts_with = "no_kvm")]
    pub kvm: bool,
    /// Never use KVM: run under TCG.
    #[arg(long)]
    pub no_kvm: bool,
    /// Guest memory (QEMU -m syntax); default: the manifest's `memory`, else 64M.
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Number of CPUs (QEMU -smp); default: the manifest's `cpus`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: Option<u32>,
    /// Scheduler policy, cooperative or preemptive (kernel parameter `sched=`); overrides
    /// the manifest's `scheduler`.
    #[arg(long, value_name = "POLICY")]
    pub scheduler: Option<String>,
    /// Initial RAM disk: a file (`-initrd FILE`) or a directory (packed as CPIO newc);
    /// overrides the manifest's `initrd`.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// A host directory the guest reaches over virtio-9p (mount tag `share`; uk-9pfs mounts
    /// it), read and written in place; overrides the manifest's `share`.
    #[arg(long, value_name = "DIR")]
    pub share: Option<PathBuf>,
    /// Give the guest a virtio entropy device (virtio-rng-pci on x86 `pc`, virtio-rng-device
    /// on virtio-mmio), as the manifest's `rng = true` does; uk-virtio's `install_rng` makes
    /// it uk-random's seed source on a CPU without RNDR or RDRAND.
    #[arg(long)]
    pub rng: bool,
    /// Kill the guest after this many seconds (0: no limit; no limit with --gdb or --detach).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Start QEMU with a gdb stub, the CPUs stopped until gdb continues, and print the gdb
    /// command that attaches.
    #[arg(long)]
    pub gdb: bool,
    /// The gdb stub's TCP port (implies --gdb).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub gdb_port: Option<u16>,
    /// Start the instance in the background (see `cargo uk ps`, `logs`, `stop`, `rm`).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Name of the background instance (default: IMAGE-N).
    #[arg(long, requires = "detach", value_name = "NAME")]
    pub name: Option<String>,
    /// Application arguments, passed on the kernel command line after `--`; replace the
    /// manifest's `args`.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Arguments of `cargo uk test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test only this board's configurations (default: every board).
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,
    /// Run a subset: a PATTERN that names an example (or `new-project`) selects its runs;
    /// any other PATTERN selects in-image test cases (`suite::name` substrings, passed to
    /// the ktest image). With a filter the host tests are left out. May be repeated.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Kill an image after this many seconds and report it as hung.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// QEMU runs at a time.
    #[arg(long, short, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: u64,
}

/// Arguments of `cargo uk new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The application's (package's) name.
    pub name: String,
    /// Where to create it (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The uk-rs sources to depend on (default: the ones this cargo-uk was built from).
    #[arg(long, value_name = "DIR")]
    pub uk_path: Option<PathBuf>,
    /// A C program (c/main.c, linked with musl built for uk-rs) instead of a Rust
    /// application.
    #[arg(long)]
    pub c: bool,
}

/// An instance name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// The instance's name (see `cargo uk ps`).
    pub name: String,
}

/// Arguments of `cargo uk logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The instance's name.
    pub name: String,
    /// Keep printing what the guest writes until the instance ends.
    #[arg(long, short)]
    pub follow: bool,
}

/// Arguments of `cargo uk rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The instance's name.
    pub name: String,
    /// Stop a running instance first.
    #[arg(long, short)]
    pub force: bool,
}

/// An image resolved with its board and manifest.
struct Target {
    ws: Workspace,
    board: &'static Board,
    image: Image,
    manifest: Manifest,
    features: Vec<String>,
}

fn resolve(args: &ImageArgs) -> Result<Target> {
    if let Some(b) = &args.board {
        lookup_board(b).map_err(UsageError)?;
    }
    if let Some(a) = &args.allocator {
        manifest::allocator_feature(a).map_err(|e| UsageError(format!("--allocator: {e}")))?;
    }
    let ws = Workspace::locate()?;
    let image = ws.image(args.example.as_deref())?;
    let manifest = if image == Image::Ktest {
        Manifest::default()
    } else {
        ws.manifest(&image).map_err(UsageError)?
    };
    let board = manifest
        .choose_board(args.board.as_deref())
        .map_err(UsageError)?;
    let board = lookup_board(&board).map_err(UsageError)?;
    let mut features = manifest
        .cargo_features(args.allocator.as_deref())
        .map_err(UsageError)?;
    features.extend(args.features.iter().cloned());
    Ok(Target {
        ws,
        board,
        image,
        manifest,
        features,
    })
}

/// Builds one image (with `features`) and returns its path.
fn build_image(
    ws: &Workspace,
    image: &Image,
    triple: &str,
    features: &[String],
    release: bool,
) -> Result<PathBuf> {
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    let mut built = ws.build_with_features(
        triple,
        std::slice::from_ref(image),
        &features,
        release,
        false,
    )?;
    built
        .remove(image.package())
        .with_context(|| format!("cargo built no binary `{}`", image.package()))
}

fn cmd_build(args: &BuildArgs) -> Result<ExitCode> {
    let t = resolve(&args.image)?;
    let path = build_image(
        &t.ws,
        &t.image,
        t.board.triple,
        &t.features,
        args.image.release,
    )?;
    let size = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    println!("{} ({size} bytes)", path.display());
    if args.size {
        style::print_size(&path)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The initrd to pass: a file as it is; a directory packed as CPIO newc into
/// `<target>/uk-initrd/<label>.cpio`.
pub fn prepare_initrd(path: &Path, target_dir: &Path, label: &str) -> Result<PathBuf> {
    let meta = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("initrd {}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(path.to_owned());
    }
    let bytes = cpio::pack_dir(path)
        .with_context(|| format!("cannot pack initrd directory {}", path.display()))?;
    let dir = target_dir.join("uk-initrd");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = dir.join(format!("{label}.cpio"));
    std::fs::write(&out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

/// The absolute path of a directory to share with the guest, after checking that it is one.
pub fn shared_dir(dir: &Path) -> Result<PathBuf> {
    let abs = std::fs::canonicalize(dir)
        .map_err(|e| UsageError(format!("share {}: {e}", dir.display())))?;
    if !abs.is_dir() {
        return Err(UsageError(format!("share {}: not a directory", dir.display())).into());
    }
    Ok(abs)
}

/// The `initrd` of an example's `expect.toml`, relative to the example's directory.
fn example_initrd(ws: &Workspace, image: &Image) -> Result<Option<PathBuf>, String> {
    let Image::Example(_) = image else {
        return Ok(None);
    };
    let dir = ws.package_dir(image);
    let text = match std::fs::read_to_string(dir.join("expect.toml")) {
        Ok(text) => text,
        Err(_) => return Ok(None),
    };
    let expect = expect::Expect::parse(&text)
        .map_err(|e| format!("{}: {e}", dir.join("expect.toml").display()))?;
    Ok(expect.initrd.map(|p| dir.join(p)))
}

/// The gdb command that attaches to a QEMU started with `-gdb tcp::PORT`.
pub fn gdb_command(board: &Board, port: u16, image: &Path) -> String {
    let gdb = if board.host_arch == std::env::consts::ARCH {
        "gdb"
    } else {
        "gdb-multiarch"
    };
    format!(
        "{gdb} -ex {} {}",
        qemu::shell_quote(&format!("target remote :{port}")),
        qemu::shell_quote(&image.to_string_lossy())
    )
}

fn cmd_run(args: &RunArgs) -> Result<ExitCode> {
    if let Some(mem) = &args.mem {
        manifest::validate_memory(mem).map_err(|e| UsageError(format!("--mem: {e}")))?;
    }
    if let Some(s) = &args.scheduler {
        manifest::validate_scheduler(s).map_err(|e| UsageError(format!("--scheduler: {e}")))?;
    }
    if let Some(name) = &args.name {
        instances::validate_name(name).map_err(UsageError)?;
        instances::check_free(&instances::instances_dir()?, name)?;
    }
    let t = resolve(&args.image)?;
    let board = t.board;
    let variant: &'static Variant = match &args.variant {
        Some(name) => board.lookup_variant(name).map_err(UsageError)?,
        None => board.default_variant(),
    };
    let request = match (args.kvm, args.no_kvm) {
        (true, _) => AccelRequest::Kvm,
        (_, true) => AccelRequest::Tcg,
        _ => AccelRequest::Auto,
    };
    let accel = qemu::choose_accel(board, request, host::host_info()).map_err(UsageError)?;
    let app_args = if args.args.is_empty() {
        &t.manifest.args
    } else {
        &args.args
    };
    let params = t
        .manifest
        .kernel_params(args.scheduler.as_deref())
        .map_err(UsageError)?;
    let append = manifest::command_line(&params, app_args).map_err(UsageError)?;
    let memory = args
        .mem
        .clone()
        .or_else(|| t.manifest.memory.clone())
        .unwrap_or_else(|| "64M".to_owned());
    let smp = args.smp.or(t.manifest.cpus);
    let initrd = match (&args.initrd, &t.manifest.initrd) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) => Some(t.ws.package_dir(&t.image).join(p)),
        // An example may name its initrd in expect.toml only: boot it the way it is tested.
        (None, None) => example_initrd(&t.ws, &t.image).map_err(UsageError)?,
    };
    let share = match (&args.share, &t.manifest.share) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) => Some(t.ws.package_dir(&t.image).join(p)),
        (None, None) => None,
    };
    let share = match share {
        Some(dir) => Some(shared_dir(&dir)?),
        None => None,
    };
    host::ensure_qemu(board)?;
    let kernel = if t.image == Image::Ktest {
        // The test image carries the cases of this configuration's own hardware, if any.
        let forced = boards::qemu_fixes_forced();
        let (features, note) =
            boards::ktest_features(variant, host::qemu_version(board.qemu), forced);
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        let mut all: Vec<String> = features.iter().map(|f| (*f).to_owned()).collect();
        all.extend(t.features.iter().cloned());
        build_image(&t.ws, &t.image, board.triple, &all, args.image.release)?
    } else {
        build_image(
            &t.ws,
            &t.image,
            board.triple,
            &t.features,
            args.image.release,
        )?
    };
    let initrd = match &initrd {
        Some(p) => Some(prepare_initrd(
            p,
            &t.ws.target_dir,
            &format!("{}-{}", t.image.label(), board.name),
        )?),
        None => None,
    };
    let gdb_port = match (args.gdb, args.gdb_port) {
        (_, Some(port)) => Some(port),
        (true, None) => Some(1234),
        (false, None) => None,
    };
    let config = QemuConfig {
        board,
        variant,
        accel,
        memory: &memory,
        smp: smp.or(variant.smp),
        kernel: &kernel,
        append,
        initrd: initrd.as_deref(),
        share: share.as_deref(),
        rng: args.rng || t.manifest.rng,
        gdb_port,
        extra: &t.manifest.qemu_args,
    };
    let qemu_args: Vec<OsString> = qemu::qemu_args(&config);
    let colors = style::stderr_colors();
    eprintln!(
        "     {} `{}`",
        style::paint("Running", style::Color::Green, colors),
        qemu::display_command(board.qemu, &qemu_args)
    );
    if let Some(port) = gdb_port {
        eprintln!(
            "     {} the CPUs wait for gdb on port {port}; attach with:\n         {}",
            style::paint("Waiting", style::Color::Green, colors),
            gdb_command(board, port, &kernel)
        );
    }
    if args.detach {
        return run_detached(args, &t, variant, &memory, &kernel, &qemu_args);
    }
    let timeout =
        (args.timeout > 0 && gdb_port.is_none()).then(|| Duration::from_secs(args.timeout));
    // An image with a defmt table logs binary frames: decode them into text.
    let filter = match defmt::ConsoleDecoder::for_image(&kernel, style::stdout_colors()) {
        Ok(decoder) => decoder.map(defmt::ConsoleDecoder::into_filter),
        Err(e) => {
            // A stripped image that was built together with a defmt one (cargo unified
            // the feature) has a `.defmt` section but no table: boot it all the same.
            eprintln!(
                "warning: {}: {e}; defmt frames are shown undecoded",
                kernel.display()
            );
            None
        }
    };
    let outcome = process::run_filtered(board.qemu, &qemu_args, Io::Interactive, timeout, filter)
        .with_context(|| format!("cannot start {}", board.qemu))?;
    match qemu::guest_exit(board, outcome.ending, &outcome.stderr) {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))),
        Err(failure) => Err(run_failure(failure, accel, request, args.timeout)),
    }
}

fn run_detached(
    args: &RunArgs,
    t: &Target,
    variant: &Variant,
    memory: &str,
    kernel: &Path,
    qemu_args: &[OsString],
) -> Result<ExitCode> {
    let dir = instances::instances_dir()?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => instances::free_name(t.image.label(), &instances::names(&dir)),
    };
    // The instance keeps its own copy of the image: a later build cannot change what
    // `logs` decodes (defmt) or what `ps` names.
    let own_kernel = dir.join(&name).join("image.elf");
    let qemu_args: Vec<OsString> = qemu_args
        .iter()
        .map(|a| {
            if Path::new(a) == kernel {
                own_kernel.clone().into_os_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let record = instances::Record {
        name: name.clone(),
        board: t.board.name.to_owned(),
        variant: variant.name.to_owned(),
        image: t.image.label().to_owned(),
        kernel: own_kernel.clone(),
        memory: memory.to_owned(),
        qemu: t.board.qemu.to_owned(),
        args: qemu_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let instance = instances::create(&dir, &record)?;
    std::fs::copy(kernel, &own_kernel)
        .with_context(|| format!("cannot copy {} into the instance", kernel.display()))?;
    let state = instances::spawn_supervisor(&instance)?;
    if let instances::State::Exited(Err(why)) = &state {
        anyhow::bail!(
            "instance {name} failed at once: {why} (`cargo uk logs {name}` shows what QEMU said)"
        );
    }
    println!("{name}");
    eprintln!(
        "     Started instance {name} ({}): `cargo uk logs {name} -f` follows its console, `cargo uk stop {name}` stops it",
        state.text()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_new(args: &NewArgs) -> Result<ExitCode> {
    new::validate_name(&args.name).map_err(UsageError)?;
    let root = match &args.uk_path {
        Some(p) => p
            .canonicalize()
            .map_err(|e| UsageError(format!("--uk-path {}: {e}", p.display())))?,
        None => new::default_uk_root().ok_or_else(|| {
            UsageError(
                "the uk-rs sources this cargo-uk was built from are gone; pass --uk-path".into(),
            )
        })?,
    };
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let lang = if args.c {
        new::Lang::C
    } else {
        new::Lang::Rust
    };
    new::create(&args.name, &dir, &root, lang)?;
    println!("Created application `{}` in {}", args.name, dir.display());
    println!("  cd {} && cargo uk run", dir.display());
    Ok(ExitCode::SUCCESS)
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
        Cmd::New(args) => cmd_new(args),
        Cmd::Ps => instances::cmd_ps().map(|()| ExitCode::SUCCESS),
        Cmd::Logs(args) => instances::cmd_logs(&args.name, args.follow).map(|()| ExitCode::SUCCESS),
        Cmd::Stop(args) => instances::cmd_stop(&args.name).map(|()| ExitCode::SUCCESS),
        Cmd::Rm(args) => instances::cmd_rm(&args.name, args.force).map(|()| ExitCode::SUCCESS),
        Cmd::Supervise { dir } => instances::supervise(dir)
            .inspect_err(|e| {
                // Its standard streams go nowhere: leave the reason where `ps` users look.
                let _ = std::fs::write(dir.join("supervisor.log"), format!("{e:#}\n"));
            })
            .map(|()| ExitCode::SUCCESS),
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
        assert_eq!(args.image.board.as_deref(), Some("qemu-virt"));
        assert_eq!(args.image.example, None);
        assert!(args.image.release);
        assert_eq!(args.smp, Some(2));
        assert_eq!(args.mem, None);
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
    fn run_detach_gdb_and_instance_arguments() {
        let cli = Cli::try_parse_from([
            "cargo-uk",
            "run",
            "-d",
            "--name",
            "web",
            "--gdb-port",
            "4321",
            "-p",
            "threads",
        ])
        .unwrap();
        let Cmd::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.detach);
        assert_eq!(args.name.as_deref(), Some("web"));
        assert_eq!(args.gdb_port, Some(4321));
        assert_eq!(args.image.example.as_deref(), Some("threads"));
        // --name needs --detach; a port is 1..=65535.
        assert!(Cli::try_parse_from(["cargo-uk", "run", "--name", "x"]).is_err());
        assert!(Cli::try_parse_from(["cargo-uk", "run", "--gdb-port", "0"]).is_err());
        assert!(Cli::try_parse_from(["cargo-uk", "run", "--smp", "65"]).is_err());
        let cli = Cli::try_parse_from(["cargo-uk", "rm", "web", "--force"]).unwrap();
        assert!(matches!(cli.command, Cmd::Rm(RmArgs { force: true, .. })));
        let cli = Cli::try_parse_from(["cargo-uk", "logs", "-f", "web"]).unwrap();
        assert!(matches!(
            cli.command,
            Cmd::Logs(LogsArgs { follow: true, .. })
        ));
        assert!(Cli::try_parse_from(["cargo-uk", "stop"]).is_err());
        let cli = Cli::try_parse_from(["cargo-uk", "new", "app", "--path", "/tmp/x"]).unwrap();
        assert!(matches!(cli.command, Cmd::New(NewArgs { .. })));
        let cli =
            Cli::try_parse_from(["cargo-uk", "build", "--size", "--allocator", "buddy"]).unwrap();
        let Cmd::Build(args) = cli.command else {
            panic!("not build")
        };
        assert!(args.size);
        assert_eq!(args.image.allocator.as_deref(), Some("buddy"));
    }

    #[test]
    fn gdb_commands() {
        let x86 = boards::board("x86-pc").unwrap();
        let virt = boards::board("qemu-virt").unwrap();
        let img = Path::new("/t/x86_64-unknown-none/debug/helloworld");
        let line = gdb_command(x86, 1234, img);
        assert!(
            line.ends_with(" -ex 'target remote :1234' /t/x86_64-unknown-none/debug/helloworld"),
            "{line}"
        );
        if std::env::consts::ARCH == "x86_64" {
            assert!(line.starts_with("gdb "), "{line}");
            assert!(gdb_command(virt, 9, img).starts_with("gdb-multiarch -ex 'target remote :9' "));
        }
    }

    #[test]
    fn initrd_files_pass_and_directories_are_packed() {
        let base = std::env::temp_dir().join(format!("cargo-uk-initrd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("rootfs/etc")).unwrap();
        std::fs::write(base.join("rootfs/etc/motd"), "hi\n").unwrap();
        std::fs::write(base.join("file.img"), "x").unwrap();
        let file = prepare_initrd(&base.join("file.img"), &base, "a").unwrap();
        assert_eq!(file, base.join("file.img"));
        let packed =
            prepare_initrd(&base.join("rootfs"), &base.join("target"), "app-x86-pc").unwrap();
        assert_eq!(packed, base.join("target/uk-initrd/app-x86-pc.cpio"));
        let members = cpio::read(&std::fs::read(&packed).unwrap()).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].name, "etc/motd");
        let err = prepare_initrd(&base.join("missing"), &base, "a").unwrap_err();
        assert!(err.to_string().starts_with("initrd "), "{err}");
        assert!(err.downcast_ref::<UsageError>().is_some());
        std::fs::remove_dir_all(&base).unwrap();
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
