//! Builds musl for a uk-rs image from the image's build script, with musl's system calls
//! turned into direct function calls of the image's handlers.
//!
//! A prebuilt musl (Debian's `musl-dev`, say) inlines a `syscall` / `svc #0` instruction at
//! every system call, so each one traps into uk-syscall's binary entry: it works, and costs
//! a trap. Unikraft 0.11 builds musl with its `__syscall` redirected to direct calls
//! instead, and so does this crate. It unpacks musl 1.2.3 (the release Unikraft 0.11's
//! lib-musl uses), replaces the few files where musl meets the kernel, and runs musl's own
//! `configure` and `make`:
//!
//! - `arch/<arch>/syscall_arch.h`: the seven inline `__syscallN` functions call
//!   uk-syscall's C entry `uk_syscall6(number, a0, ..., a5)`, which runs the registered
//!   handler and returns Linux's raw result. There is no vDSO, so `clock_gettime` is a
//!   direct call too.
//! - `src/thread/<arch>/syscall_cp.s`: the cancellation-point stub tail-calls `uk_syscall6`.
//! - `src/thread/<arch>/clone.s`: `__clone` jumps to uk-posix-process's `uk_clone`, which
//!   takes the same arguments and starts the child in `entry(arg)` on its stack.
//! - `src/thread/x86_64/__set_thread_area.s`: `arch_prctl(ARCH_SET_FS)` through
//!   `uk_syscall6`.
//! - `src/thread/<arch>/__unmapself.s`: a detached thread's `munmap` of its own stack and
//!   its `exit`, through `uk_syscall6`.
//!
//! On x86_64 it also takes out musl's assembly that uses the red zone below the stack
//! pointer, which the image's interrupts overwrite ([`Arch::removals`]): `fenv.s`, replaced
//! by a `fenv.c` of this crate, and `exp2l.s`/`expm1l.s`, for which musl's generic C is built.
//! And it changes one line ([`Arch::edits`]): x86_64's `a_crash()` (how `__stack_chk_fail`
//! and mallocng's corruption checks end the program) is `hlt`, which faults in Linux user
//! mode but only waits for an interrupt in ring 0, where the image runs C code; musl's
//! generic store to address 0 takes its place, so the process dies of `SIGSEGV` as on Linux.
//!
//! So an image linking the result needs uk-syscall (for `uk_syscall6`) and uk-posix-process
//! (for `uk_clone` and the handlers); in exchange no call of the C program traps, which
//! `uk_syscall::trapped_calls` lets the image check. At run time the image starts the
//! program with uk-posix-process's `System::spawn_c_program`, passing musl's
//! `__libc_start_main`, the C `main` and a `startup::StartupBlock`. The repository's
//! `examples/musl` is a complete image: a C program with threads, stdio, files and signals.
//!
//! # Where the source comes from
//!
//! [`Source::Download`] fetches the release tarball with `curl` (a subprocess, so that
//! build scripts do not carry an HTTP and TLS stack) from musl.libc.org, then from Debian's
//! archive, whose `musl_1.2.3.orig.tar.gz` is the same file. [`Source::Path`] takes a local
//! tarball or an unpacked tree (`apt-get source musl` gives one) for offline builds. Every
//! tarball, downloaded or given, must match the release's SHA-256; a tree must look like
//! musl's. The tarball is unpacked with the `tar` and `flate2` crates.
//!
//! # Rebuilds
//!
//! A build lives in the build script's `OUT_DIR` and is reused while its inputs (release,
//! source setting, tool prefix, replaced and removed files) are unchanged: about half a
//! minute per architecture the first time on two cores, nothing after. Files changed inside
//! a tree given by [`Source::Path`] are not noticed; change the setting (or `cargo clean`)
//! to rebuild.
//!
//! # Example
//!
//! A `build.rs` of an image with C code in `c/`:
//!
//! ```no_run
//! fn main() -> Result<(), uk_musl::Error> {
//!     println!("cargo:rerun-if-changed=c");
//!     if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
//!         return Ok(()); // host builds (lints, docs) link no image
//!     }
//!     let musl = uk_musl::Builder::from_cargo_env()?.build()?;
//!     musl.cc().file("c/main.c").compile("program");
//!     musl.link();
//!     Ok(())
//! }
//! ```
//!
//! `from_cargo_env` reads `MUSL_SRC` (a [`Source::Path`]), `MUSL_URL` (one download
//! address instead of the two built in) and `MUSL_CROSS_COMPILE` (the tool prefix, by
//! default `<arch>-linux-gnu-`: Debian's `gcc` and `gcc-aarch64-linux-gnu`).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The musl release built: the one Unikraft 0.11's lib-musl uses.
pub const RELEASE: &str = "musl-1.2.3";
/// SHA-256 of [`RELEASE`]'s tarball (`musl-1.2.3.tar.gz`).
pub const RELEASE_SHA256: &str = "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4";
/// Where [`Source::Download`] looks, in order.
pub const RELEASE_URLS: [&str; 2] = [
    "https://musl.libc.org/releases/musl-1.2.3.tar.gz",
    "http://deb.debian.org/debian/pool/main/m/musl/musl_1.2.3.orig.tar.gz",
];

/// The architectures uk-rs images run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64` (the x86-pc board).
    X86_64,
    /// `aarch64` (the qemu-virt board).
    Aarch64,
}

impl Arch {
    /// The architecture of a Rust target (`CARGO_CFG_TARGET_ARCH`).
    pub fn from_target_arch(name: &str) -> Result<Arch, Error> {
        match name {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            other => Err(Error::UnsupportedArch(other.to_string())),
        }
    }

    /// The name musl and Rust both use.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The C compiler flags for code that runs in an image of this architecture, musl's
    /// and the program's alike: position-independent like the image; no stack protector
    /// (nothing in the image sets up the canary); on x86_64 no red zone, because interrupts
    /// arrive on the running thread's stack (there is no privilege change to switch
    /// stacks), where the CPU's interrupt frame would overwrite the 128 bytes below the
    /// stack pointer that the System V ABI otherwise leaves to leaf functions.
    pub fn cflags(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["-fPIE", "-fno-stack-protector", "-mno-red-zone"],
            Arch::Aarch64 => &["-fPIE", "-fno-stack-protector"],
        }
    }

    /// The files this crate puts into musl's tree for this architecture: (path in the tree,
    /// contents).
    ///
    /// Besides the files where musl meets the kernel, x86_64 gets its own
    /// `src/fenv/x86_64/fenv.c` (musl's build lets a file in the architecture's directory
    /// replace the generic one of the same name): the floating-point environment functions
    /// in C with inline assembly on compiler-allocated memory, in place of musl's
    /// `fenv.s`, which keeps MXCSR in the red zone (see [`Arch::removals`]).
    pub fn replacements(self) -> Vec<(String, &'static str)> {
        const SYSCALL_ARCH: &str = include_str!("../musl/syscall_arch.h");
        let arch = self.name();
        let mut files = vec![(format!("arch/{arch}/syscall_arch.h"), SYSCALL_ARCH)];
        let thread: &[(&str, &str)] = match self {
            Arch::X86_64 => &[
                ("syscall_cp.s", include_str!("../musl/x86_64/syscall_cp.s")),
                ("clone.s", include_str!("../musl/x86_64/clone.s")),
                (
                    "__set_thread_area.s",
                    include_str!("../musl/x86_64/__set_thread_area.s"),
                ),
                (
                    "__unmapself.s",
                    include_str!("../musl/x86_64/__unmapself.s"),
                ),
            ],
            Arch::Aarch64 => &[
                ("syscall_cp.s", include_str!("../musl/aarch64/syscall_cp.s")),
                ("clone.s", include_str!("../musl/aarch64/clone.s")),
                (
                    "__unmapself.s",
                    include_str!("../musl/aarch64/__unmapself.s"),
                ),
            ],
        };
        files.extend(
            thread
                .iter()
                .map(|(name, text)| (format!("src/thread/{arch}/{name}"), *text)),
        );
        if self == Arch::X86_64 {
            files.push((
                "src/fenv/x86_64/fenv.c".to_string(),
                include_str!("../musl/x86_64/fenv.c"),
            ));
        }
        files
    }

    /// The files this crate deletes from musl's tree for this architecture (paths in the
    /// tree), before writing [`Arch::replacements`]; a file already gone is no error.
    ///
    /// On x86_64 these are musl's hand-written assembly files that use the red zone, the
    /// 128 bytes below the stack pointer, as scratch memory although the image is compiled
    /// with `-mno-red-zone` ([`Arch::cflags`]): an interrupt, or a page fault running a
    /// SIGSEGV handler, between their store and their load would overwrite it.
    ///
    /// - `src/fenv/x86_64/fenv.s` (MXCSR between `stmxcsr` and `ldmxcsr`): replaced by this
    ///   crate's `fenv.c`.
    /// - `src/math/x86_64/exp2l.s` (`exp2l` and `expm1l`, a constant at `-4(%rsp)`) and the
    ///   empty `src/math/x86_64/expm1l.s` that only keeps the generic `expm1l.c` out: musl's
    ///   generic C `exp2l.c` and `expm1l.c` (80-bit `long double`) are built instead.
    ///   `expl.s` calls `exp2l`, which the C version provides.
    pub fn removals(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &[
                "src/fenv/x86_64/fenv.s",
                "src/math/x86_64/exp2l.s",
                "src/math/x86_64/expm1l.s",
            ],
            Arch::Aarch64 => &[],
        }
    }

    /// The lines this crate changes in musl's own files for this architecture: (path in
    /// the tree, musl's text, the text put in its place), each applied where musl's text
    /// is found once.
    ///
    /// - x86_64 `arch/x86_64/atomic_arch.h`: musl's `a_crash()`, which `abort`,
    ///   `__stack_chk_fail` and mallocng's heap-corruption checks call to end the program
    ///   at once, is `hlt`. In Linux user mode `hlt` is a privileged instruction, so it
    ///   faults and the process dies of `SIGSEGV`; in this image C code runs in ring 0,
    ///   where `hlt` waits for the next interrupt and then returns, and the program went on
    ///   past the corruption it had just found. The replacement is musl's generic
    ///   `a_crash`, a store to address 0, which faults on both boards (page 0 is unmapped)
    ///   and so ends the process with `SIGSEGV`, as on Linux.
    pub fn edits(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Arch::X86_64 => &[(
                "arch/x86_64/atomic_arch.h",
                "__asm__ __volatile__( \"hlt\" : : : \"memory\" );",
                "*(volatile char *)0 = 0; /* uk-musl: hlt does not fault in ring 0 */",
            )],
            Arch::Aarch64 => &[],
        }
    }

    /// Deletes [`Arch::removals`] from the musl tree at `tree`, applies [`Arch::edits`] and
    /// writes [`Arch::replacements`] into it. Running it again on the same tree changes
    /// nothing; a tree where an edit finds neither musl's text nor its replacement is
    /// [`Error::NotMuslTree`].
    fn patch_tree(self, tree: &Path) -> Result<(), Error> {
        for path in self.removals() {
            let file = tree.join(path);
            match fs::remove_file(&file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&file)(e)),
                _ => {}
            }
        }
        for (path, musl, ours) in self.edits() {
            let file = tree.join(path);
            let text = fs::read_to_string(&file).map_err(io_at(&file))?;
            if text.matches(musl).count() == 1 {
                fs::write(&file, text.replace(musl, ours)).map_err(io_at(&file))?;
            } else if !text.contains(ours) {
                return Err(Error::NotMuslTree(file));
            }
        }
        for (path, text) in self.replacements() {
            let file = tree.join(path);
            fs::write(&file, text).map_err(io_at(&file))?;
        }
        Ok(())
    }
}

/// Where musl's source comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The release tarball, fetched with `curl` from each address in turn (once per build
    /// directory: a verified copy there is reused).
    Download {
        /// Addresses to try, in order.
        urls: Vec<String>,
    },
    /// A local release tarball or unpacked musl 1.2.3 tree.
    Path(PathBuf),
}

impl Default for Source {
    fn default() -> Self {
        Source::Download {
            urls: RELEASE_URLS.iter().map(|u| u.to_string()).collect(),
        }
    }
}

/// Why musl could not be built.
#[derive(Debug)]
pub enum Error {
    /// The target architecture is neither x86_64 nor aarch64.
    UnsupportedArch(String),
    /// A variable cargo sets for build scripts is missing.
    MissingCargoEnv(&'static str),
    /// No address gave the tarball (each address with what went wrong).
    Download(Vec<String>),
    /// The tarball is not the release: its SHA-256.
    Checksum {
        /// The tarball.
        path: PathBuf,
        /// Its SHA-256.
        sha256: String,
    },
    /// A directory given as the source is not a musl tree.
    NotMuslTree(PathBuf),
    /// A build step failed: the command and its output.
    Step {
        /// The command line.
        command: String,
        /// Its exit status, standard output and standard error.
        output: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedArch(arch) => {
                write!(f, "musl for uk-rs: no support for architecture {arch}")
            }
            Error::MissingCargoEnv(var) => {
                write!(f, "{var} is not set (uk_musl runs from a build script)")
            }
            Error::Download(failures) => write!(
                f,
                "could not download {RELEASE} ({}); set MUSL_SRC to its source tree or tarball",
                failures.join("; ")
            ),
            Error::Checksum { path, sha256 } => write!(
                f,
                "{} has SHA-256 {sha256}, not {RELEASE}'s {RELEASE_SHA256}",
                path.display()
            ),
            Error::NotMuslTree(path) => write!(f, "{} is not a musl source tree", path.display()),
            Error::Step { command, output } => write!(f, "{command} failed: {output}"),
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What to build and where.
#[derive(Clone, Debug)]
pub struct Builder {
    arch: Arch,
    out_dir: PathBuf,
    source: Source,
    cross_compile: String,
    jobs: usize,
}

impl Builder {
    /// A build of musl for `arch` in `out_dir`, from the default [`Source`], with the tool
    /// prefix `<arch>-linux-gnu-` and one job.
    pub fn new(arch: Arch, out_dir: impl Into<PathBuf>) -> Builder {
        Builder {
            arch,
            out_dir: out_dir.into(),
            source: Source::default(),
            cross_compile: format!("{}-linux-gnu-", arch.name()),
            jobs: 1,
        }
    }

    /// The build a build script wants: the target's architecture, `OUT_DIR`, cargo's
    /// `NUM_JOBS`, and the overrides `MUSL_SRC`, `MUSL_URL` and `MUSL_CROSS_COMPILE` (which it
    /// tells cargo to watch).
    pub fn from_cargo_env() -> Result<Builder, Error> {
        for var in ["MUSL_SRC", "MUSL_URL", "MUSL_CROSS_COMPILE"] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        let var = |name: &'static str| std::env::var_os(name).ok_or(Error::MissingCargoEnv(name));
        let arch = Arch::from_target_arch(&var("CARGO_CFG_TARGET_ARCH")?.to_string_lossy())?;
        let mut builder = Builder::new(arch, var("OUT_DIR")?);
        if let Some(jobs) = std::env::var("NUM_JOBS").ok().and_then(|n| n.parse().ok()) {
            builder = builder.jobs(jobs);
        }
        if let Some(path) = std::env::var_os("MUSL_SRC") {
            builder = builder.source(Source::Path(path.into()));
        } else if let Ok(url) = std::env::var("MUSL_URL") {
            builder = builder.source(Source::Download { urls: vec![url] });
        }
        if let Ok(prefix) = std::env::var("MUSL_CROSS_COMPILE") {
            builder = builder.cross_compile(prefix);
        }
        Ok(builder)
    }

    /// Takes musl's source from `source`.
    pub fn source(mut self, source: Source) -> Builder {
        self.source = source;
        self
    }

    /// Uses `<prefix>gcc`, `<prefix>ar` and `<prefix>ranlib`.
    pub fn cross_compile(mut self, prefix: impl Into<String>) -> Builder {
        self.cross_compile = prefix.into();
        self
    }

    /// Runs up to `jobs` compilations at once (at least one).
    pub fn jobs(mut self, jobs: usize) -> Builder {
        self.jobs = jobs.max(1);
        self
    }

    /// Everything the build depends on, as recorded next to a finished build.
    fn stamp(&self) -> String {
        // The last word names the layout of the results, so that a build made before the
        // math archive existed is not taken for a finished one.
        let mut stamp = format!(
            "{RELEASE} {:?} {} {} libc+math\n",
            self.source,
            self.cross_compile,
            self.arch.cflags().join(" ")
        );
        for path in self.arch.removals() {
            stamp += "removed ";
            stamp += path;
            stamp += "\n";
        }
        for (path, _, ours) in self.arch.edits() {
            stamp += "edited ";
            stamp += path;
            stamp += ": ";
            stamp += ours;
            stamp += "\n";
        }
        for (path, text) in self.arch.replacements() {
            stamp += &path;
            stamp += "\n";
            stamp += text;
        }
        stamp
    }

    /// Builds musl, or finds the identical build already done, and returns it.
    pub fn build(&self) -> Result<Musl, Error> {
        let musl = Musl {
            prefix: self.out_dir.join("musl"),
            compiler: format!("{}gcc", self.cross_compile),
            arch: self.arch,
        };
        let stamp = self.stamp();
        let stamp_file = musl.prefix.join("uk-musl-stamp");
        if fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
            && musl.libc().exists()
            && musl.math().exists()
        {
            return Ok(musl);
        }
        let tree = self.out_dir.join(RELEASE);
        if tree.exists() {
            fs::remove_dir_all(&tree).map_err(io_at(&tree))?;
        }
        self.unpack(&tree)?;
        self.arch.patch_tree(&tree)?;
        run(Command::new("./configure")
            .current_dir(&tree)
            .arg(format!("--target={}", self.arch.name()))
            .arg(format!("--prefix={}", musl.prefix.display()))
            .arg("--disable-shared")
            .env("CROSS_COMPILE", &self.cross_compile)
            .env("CC", &musl.compiler)
            .env("CFLAGS", self.arch.cflags().join(" ")))?;
        run(Command::new("make")
            .current_dir(&tree)
            .arg(format!("-j{}", self.jobs))
            .args(["lib/libc.a", "install-headers"]))?;
        let lib = musl.prefix.join("lib");
        fs::create_dir_all(&lib).map_err(io_at(&lib))?;
        let built = tree.join("lib/libc.a");
        fs::copy(&built, musl.libc()).map_err(io_at(&built))?;
        let mut math = Vec::new();
        objects_under(&tree.join("obj/src/math"), &mut math)?;
        math.sort();
        let _ = fs::remove_file(musl.math());
        run(Command::new(format!("{}ar", self.cross_compile))
            .arg("rc")
            .arg(musl.math())
            .args(&math))?;
        fs::write(&stamp_file, stamp).map_err(io_at(&stamp_file))?;
        Ok(musl)
    }

    /// Puts a pristine musl tree at `tree`.
    fn unpack(&self, tree: &Path) -> Result<(), Error> {
        let tarball = match &self.source {
            Source::Path(dir) if dir.is_dir() => {
                if !dir.join("arch/generic").is_dir() || !dir.join("configure").is_file() {
                    return Err(Error::NotMuslTree(dir.clone()));
                }
                return copy_tree(dir, tree);
            }
            Source::Path(file) => file.clone(),
            Source::Download { urls } => self.download(urls)?,
        };
        let bytes = fs::read(&tarball).map_err(io_at(&tarball))?;
        check_release(&tarball, &bytes)?;
        let into = tree.parent().unwrap_or(Path::new("."));
        tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()))
            .unpack(into)
            .map_err(io_at(&tarball))?;
        if tree.join("configure").is_file() {
            Ok(())
        } else {
            Err(Error::NotMuslTree(tree.to_path_buf()))
        }
    }

    /// The release tarball in the build directory, downloaded unless a verified copy is
    /// there.
    fn download(&self, urls: &[String]) -> Result<PathBuf, Error> {
        let file = self.out_dir.join(format!("{RELEASE}.tar.gz"));
        if fs::read(&file).is_ok_and(|bytes| check_release(&file, &bytes).is_ok()) {
            return Ok(file);
        }
        let mut failures = Vec::new();
        for url in urls {
            let fetched = Command::new("curl")
                .args(["-fsSL", "--retry", "2", "--connect-timeout", "20", "-o"])
                .arg(&file)
                .arg(url)
                .output();
            match fetched {
                Ok(out) if out.status.success() => return Ok(file),
                Ok(out) => failures.push(format!(
                    "{url}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => failures.push(format!("{url}: curl: {e}")),
            }
        }
        Err(Error::Download(failures))
    }
}

/// Checks that `bytes` (read from `path`) are the release tarball.
fn check_release(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let sha256 = format!("{:x}", Sha256::digest(bytes));
    if sha256 == RELEASE_SHA256 {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: path.to_path_buf(),
            sha256,
        })
    }
}

/// Adds the object files (`.lo`, as musl's build names them) under `dir` to `found`.
fn objects_under(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        if path.is_dir() {
            objects_under(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "lo") {
            found.push(path);
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(io_at(to))?;
    for entry in fs::read_dir(from).map_err(io_at(from))? {
        let entry = entry.map_err(io_at(from))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io_at(&entry.path()))?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(io_at(&target))?;
        }
    }
    Ok(())
}

/// Runs a build step, keeping its output out of cargo's unless it fails.
fn run(command: &mut Command) -> Result<(), Error> {
    let line = {
        let mut words: Vec<OsString> = vec![command.get_program().to_owned()];
        words.extend(command.get_args().map(|a| a.to_owned()));
        words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let output = command.output().map_err(|e| Error::Step {
        command: line.clone(),
        output: e.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Step {
        command: line,
        output: format!(
            "{}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// A finished musl build: headers and `libc.a` under one prefix.
#[derive(Clone, Debug)]
pub struct Musl {
    prefix: PathBuf,
    compiler: String,
    arch: Arch,
}

impl Musl {
    /// musl's headers.
    pub fn include_dir(&self) -> PathBuf {
        self.prefix.join("include")
    }

    /// The static C library.
    pub fn libc(&self) -> PathBuf {
        self.prefix.join("lib").join("libc.a")
    }

    /// musl's math functions (`src/math`, with the architecture's own versions), as an
    /// archive of their own: [`Musl::link`] loads all of it (see there for why).
    pub fn math(&self) -> PathBuf {
        self.prefix.join("lib").join("libuk-musl-math.a")
    }

    /// The C compiler musl was built with.
    pub fn compiler(&self) -> &str {
        &self.compiler
    }

    /// A `cc` build set up to compile C for the image against this musl: musl's headers
    /// instead of the system's (the compiler's own, for `stddef.h` and intrinsics, after
    /// them), the architecture's flags ([`Arch::cflags`]), `-O2`.
    ///
    /// # Panics
    ///
    /// When the compiler cannot be run (as `cc` itself does for a missing compiler).
    pub fn cc(&self) -> cc::Build {
        let own = Command::new(&self.compiler)
            .arg("-print-file-name=include")
            .output()
            .unwrap_or_else(|e| panic!("{} is needed to compile C for uk-rs: {e}", self.compiler));
        let own = String::from_utf8_lossy(&own.stdout).trim().to_string();
        let mut build = cc::Build::new();
        build
            .compiler(&self.compiler)
            .flag("-nostdinc")
            .flag("-isystem")
            .flag(self.include_dir().to_string_lossy().as_ref())
            .flag("-isystem")
            .flag(&own)
            .opt_level(2)
            .cargo_warnings(true);
        for flag in self.arch.cflags() {
            build.flag(flag);
        }
        build
    }

    /// Tells cargo to link musl into the image: every object of [`Musl::math`], then
    /// `libc.a` (after the program's own objects).
    ///
    /// The math functions are loaded whole because Rust's `compiler_builtins` defines
    /// `sin`, `pow`, `floor` and the rest as weak symbols, and a linker takes an archive
    /// member only for a symbol nothing defines yet: from `libc.a` alone the C program would
    /// call `compiler_builtins`' versions. On `x86_64-unknown-none` those use the soft-float
    /// convention (arguments in integer registers) while C passes them in SSE registers, so
    /// every result would be wrong. musl's strong definitions replace the weak ones;
    /// `--gc-sections` drops the functions nothing calls.
    pub fn link(&self) {
        println!("cargo:rustc-link-arg=--whole-archive");
        println!("cargo:rustc-link-arg={}", self.math().display());
        println!("cargo:rustc-link-arg=--no-whole-archive");
        println!("cargo:rustc-link-arg={}", self.libc().display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("uk-musl-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_the_two_architectures() {
        assert_eq!(Arch::from_target_arch("x86_64").unwrap(), Arch::X86_64);
        assert_eq!(Arch::from_target_arch("aarch64").unwrap(), Arch::Aarch64);
        assert!(matches!(
            Arch::from_target_arch("riscv64"),
            Err(Error::UnsupportedArch(a)) if a == "riscv64"
        ));
    }

    #[test]
    fn replacements_cover_every_trapping_file_of_each_architecture() {
        for (arch, names) in [
            (
                Arch::X86_64,
                &[
                    "syscall_cp.s",
                    "clone.s",
                    "__set_thread_area.s",
                    "__unmapself.s",
                ][..],
            ),
            (
                Arch::Aarch64,
                &["syscall_cp.s", "clone.s", "__unmapself.s"][..],
            ),
        ] {
            let files: Vec<_> = arch
                .replacements()
                .into_iter()
                .filter(|(path, _)| !path.starts_with("src/fenv/"))
                .collect();
            let a = arch.name();
            assert_eq!(files[0].0, format!("arch/{a}/syscall_arch.h"));
            let thread: Vec<_> = files[1..].iter().map(|(p, _)| p.clone()).collect();
            let want: Vec<_> = names
                .iter()
                .map(|n| format!("src/thread/{a}/{n}"))
                .collect();
            assert_eq!(thread, want);
            for (path, text) in &files {
                // Nothing in them traps: no syscall or svc instruction, outside comments.
                let code: Vec<&str> = text
                    .lines()
                    .map(|l| l.split(['#', '/']).next().unwrap().trim())
                    .collect();
                assert!(
                    !code.iter().any(|l| *l == "syscall" || l.starts_with("svc")),
                    "{path}"
                );
                assert!(
                    text.contains("uk_syscall6") || text.contains("uk_clone"),
                    "{path}"
                );
            }
        }
    }

    /// The lines of an assembly or C text without its comments (`#`, `//`, `/* */`).
    fn code_lines(text: &str) -> Vec<String> {
        let mut code = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("/*") {
            code += &rest[..start];
            rest = rest[start..]
                .find("*/")
                .map_or("", |end| &rest[start + end + 2..]);
        }
        code += rest;
        code.lines()
            .map(|l| l.split(['#', '/']).next().unwrap().trim().to_string())
            .collect()
    }

    #[test]
    fn the_red_zone_assembly_of_x86_64_is_removed_and_fenv_replaced_in_c() {
        assert_eq!(
            Arch::X86_64.removals(),
            [
                "src/fenv/x86_64/fenv.s",
                "src/math/x86_64/exp2l.s",
                "src/math/x86_64/expm1l.s"
            ]
        );
        assert!(Arch::Aarch64.removals().is_empty());
        let files = Arch::X86_64.replacements();
        let fenv = files
            .iter()
            .find(|(path, _)| path == "src/fenv/x86_64/fenv.c")
            .map(|(_, text)| *text)
            .expect("fenv.c");
        // Every function fenv.s defined, and only through compiler-allocated operands: no
        // register named in the assembly, so nothing relative to the stack pointer.
        for name in [
            "int feclearexcept(int mask)",
            "int feraiseexcept(int mask)",
            "int fetestexcept(int mask)",
            "int fegetround(void)",
            "hidden int __fesetround(int r)",
            "int fegetenv(fenv_t *envp)",
            "int fesetenv(const fenv_t *envp)",
        ] {
            assert!(fenv.contains(name), "{name}");
        }
        let code = code_lines(fenv).join("\n");
        assert!(!code.contains("%rsp") && !code.contains("%%"), "{code}");
        assert!(
            !Arch::Aarch64
                .replacements()
                .iter()
                .any(|(p, _)| p.contains("fenv"))
        );
    }

    #[test]
    fn a_tarball_that_is_not_the_release_is_refused_and_nothing_is_built() {
        let out = scratch("checksum");
        let bogus = out.join("bogus.tar.gz");
        fs::write(&bogus, b"not musl").unwrap();
        let err = Builder::new(Arch::X86_64, &out)
            .source(Source::Path(bogus.clone()))
            .build()
            .unwrap_err();
        match err {
            Error::Checksum { path, sha256 } => {
                assert_eq!(path, bogus);
                assert_eq!(sha256.len(), 64);
            }
            other => panic!("{other}"),
        }
        assert!(!out.join("musl").exists());
        fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn a_directory_that_is_not_musl_is_refused() {
        let out = scratch("tree");
        let empty = out.join("empty");
        fs::create_dir_all(&empty).unwrap();
        let err = Builder::new(Arch::Aarch64, &out)
            .source(Source::Path(empty.clone()))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::NotMuslTree(p) if p == empty));
        fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn an_unreachable_address_is_a_download_error_naming_it() {
        let out = scratch("download");
        let url = "http://127.0.0.1:9/musl-1.2.3.tar.gz".to_string();
        let err = Builder::new(Arch::X86_64, &out)
            .source(Source::Download {
                urls: vec![url.clone()],
            })
            .build()
            .unwrap_err();
        match err {
            Error::Download(failures) => {
                assert_eq!(failures.len(), 1);
                assert!(failures[0].starts_with(&url), "{}", failures[0]);
            }
            other => panic!("{other}"),
        }
        fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn a_finished_build_is_reused_only_while_its_inputs_are_the_same() {
        let out = scratch("reuse");
        let builder = Builder::new(Arch::X86_64, &out).source(Source::Path(out.join("gone")));
        // A finished build as `build` leaves it.
        let lib = out.join("musl/lib");
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("libc.a"), b"!<arch>\n").unwrap();
        fs::write(out.join("musl/uk-musl-stamp"), builder.stamp()).unwrap();
        // A build from before the math archive is not reused.
        assert!(builder.build().is_err());
        fs::write(lib.join("libuk-musl-math.a"), b"!<arch>\n").unwrap();
        // Same inputs: reused, although the source is gone.
        let musl = builder.build().unwrap();
        assert_eq!(musl.libc(), lib.join("libc.a"));
        assert_eq!(musl.math(), lib.join("libuk-musl-math.a"));
        assert_eq!(musl.include_dir(), out.join("musl/include"));
        assert_eq!(musl.compiler(), "x86_64-linux-gnu-gcc");
        // Another tool prefix: rebuilt, which needs the (missing) source.
        let other = builder.clone().cross_compile("x86_64-linux-musl-");
        assert!(matches!(other.build(), Err(Error::Io { .. })));
        fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn a_given_tree_is_copied_and_gets_the_replacements() {
        // A stand-in tree whose configure fails: the copy, the replacements and the first
        // step are observable without a cross compiler.
        use std::os::unix::fs::PermissionsExt;
        let out = scratch("unpack");
        let src = out.join("src");
        fs::create_dir_all(src.join("arch/generic")).unwrap();
        fs::create_dir_all(src.join("arch/x86_64")).unwrap();
        fs::create_dir_all(src.join("src/thread/x86_64")).unwrap();
        fs::create_dir_all(src.join("src/fenv/x86_64")).unwrap();
        fs::create_dir_all(src.join("src/math/x86_64")).unwrap();
        // Two of the files to remove; the third is already missing, which is no error.
        fs::write(src.join("src/fenv/x86_64/fenv.s"), "# red zone\n").unwrap();
        fs::write(src.join("src/math/x86_64/exp2l.s"), "# red zone\n").unwrap();
        let atomic = "static inline void a_crash()\n{\n\t__asm__ __volatile__( \"hlt\" : : : \"memory\" );\n}\n";
        fs::write(src.join("arch/x86_64/atomic_arch.h"), atomic).unwrap();
        fs::write(
            src.join("configure"),
            "#!/bin/sh\necho no compiler here\nexit 3\n",
        )
        .unwrap();
        fs::set_permissions(src.join("configure"), fs::Permissions::from_mode(0o755)).unwrap();
        let err = Builder::new(Arch::X86_64, &out)
            .source(Source::Path(src.clone()))
            .build()
            .unwrap_err();
        // configure ran in the copy, after the replacements were written.
        match &err {
            Error::Step { command, output } => {
                assert!(
                    command.starts_with("./configure --target=x86_64"),
                    "{command}"
                );
                assert!(output.contains("no compiler here"), "{output}");
            }
            other => panic!("{other}"),
        }
        let copy = out.join(RELEASE);
        for (path, text) in Arch::X86_64.replacements() {
            assert_eq!(
                fs::read_to_string(copy.join(&path)).unwrap(),
                text,
                "{path}"
            );
        }
        for path in Arch::X86_64.removals() {
            assert!(!copy.join(path).exists(), "{path}");
        }
        let edited = fs::read_to_string(copy.join("arch/x86_64/atomic_arch.h")).unwrap();
        assert!(edited.contains("*(volatile char *)0 = 0;") && !edited.contains("hlt\""));
        // Patching the same tree again (a reused build directory) changes nothing.
        Arch::X86_64.patch_tree(&copy).unwrap();
        assert_eq!(
            fs::read_to_string(copy.join("arch/x86_64/atomic_arch.h")).unwrap(),
            edited
        );
        // A tree where the edit finds neither text is not the musl this crate knows.
        fs::write(copy.join("arch/x86_64/atomic_arch.h"), "/* other */\n").unwrap();
        assert!(matches!(
            Arch::X86_64.patch_tree(&copy),
            Err(Error::NotMuslTree(_))
        ));
        for path in Arch::X86_64.removals() {
            assert!(!copy.join(path).exists(), "{path}");
        }
        for (path, text) in Arch::X86_64.replacements() {
            assert_eq!(fs::read_to_string(copy.join(&path)).unwrap(), text);
        }
        // The given tree is untouched.
        assert!(!src.join("arch/x86_64/syscall_arch.h").exists());
        assert!(src.join("src/fenv/x86_64/fenv.s").exists());
        assert!(
            fs::read_to_string(src.join("arch/x86_64/atomic_arch.h"))
                .unwrap()
                .contains("hlt")
        );
        assert!(!src.join("src/fenv/x86_64/fenv.c").exists());
        fs::remove_dir_all(out).unwrap();
    }
}
