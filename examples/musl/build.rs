//! Builds musl 1.2.3 from source with its system calls turned into direct calls of the
//! image's handlers, then compiles `c/hello.c` against it and links both into the image.
//!
//! # Why from source
//!
//! A prebuilt musl (Debian's `musl-dev`, say) has a `syscall` / `svc #0` instruction inlined
//! at every system call, so each one traps into uk-syscall's binary entry. Unikraft 0.11
//! builds musl with its `__syscall` redirected to direct calls instead, and so does this
//! script: it replaces musl's `arch/<arch>/syscall_arch.h` with `musl/syscall_arch.h`, which
//! calls uk-syscall's `uk_syscall6`, and the assembly in `src/thread/<arch>/` that would
//! still trap with the files in `musl/<arch>/`: the cancellation-point stub, `__clone`
//! (uk-posix-process's `uk_clone`) and, on x86_64, `__set_thread_area` (`arch_prctl`).
//! Everything else is musl's own build (`configure`, `make lib/libc.a install-headers`),
//! about half a minute per architecture, done once per build directory.
//!
//! # Where the source comes from
//!
//! - `MUSL_SRC`: an unpacked musl 1.2.3 tree (`apt-get source musl` gives one) or its
//!   release tarball, for offline builds (musl is rebuilt when the variable changes, not
//!   when files in the tree do);
//! - otherwise the release tarball is downloaded with `curl` from `MUSL_URL` if set, else
//!   from musl.libc.org, else from Debian's archive (whose `musl_1.2.3.orig.tar.gz` is the
//!   same file). Any tarball, given or downloaded, must match the release's SHA-256.
//!
//! `MUSL_CROSS_COMPILE` overrides the tool prefix (default `<arch>-linux-gnu-`: Debian's
//! `gcc` and `gcc-aarch64-linux-gnu`, which also bring `ar` and `ranlib`).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The musl release built: the one Unikraft 0.11's lib-musl uses.
const MUSL: &str = "musl-1.2.3";
const MUSL_SHA256: &str = "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4";
const MUSL_URLS: [&str; 2] = [
    "https://musl.libc.org/releases/musl-1.2.3.tar.gz",
    "http://deb.debian.org/debian/pool/main/m/musl/musl_1.2.3.orig.tar.gz",
];

fn main() {
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-changed=musl");
    for var in ["MUSL_SRC", "MUSL_URL", "MUSL_CROSS_COMPILE"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        // Host builds (lints, docs) do not link the image.
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let cross =
        std::env::var("MUSL_CROSS_COMPILE").unwrap_or_else(|_| format!("{arch}-linux-gnu-"));
    let compiler = format!("{cross}gcc");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let prefix = build_musl(&arch, &cross, &out).unwrap_or_else(|e| panic!("musl: {e}"));

    // The compiler's own headers come after musl's (as in musl's own wrapper).
    let own = Command::new(&compiler)
        .arg("-print-file-name=include")
        .output()
        .unwrap_or_else(|e| panic!("{compiler} is needed to build this example: {e}"));
    let own = String::from_utf8(own.stdout).unwrap();
    cc::Build::new()
        .compiler(&compiler)
        .file("c/hello.c")
        .flag("-nostdinc")
        .flag("-isystem")
        .flag(prefix.join("include").to_str().unwrap())
        .flag("-isystem")
        .flag(own.trim())
        .flag("-fPIE")
        // The image runs with the FPU and SIMD on but takes no red-zone or stack-probe
        // assumptions from the C code.
        .flag("-fno-stack-protector")
        .opt_level(2)
        .cargo_warnings(true)
        .compile("hello");
    println!(
        "cargo:rustc-link-arg={}",
        prefix.join("lib").join("libc.a").display()
    );
}

/// Builds musl for `arch` under `out` unless an identical build is there already, and
/// returns its install prefix (`include/` and `lib/libc.a`).
fn build_musl(arch: &str, cross: &str, out: &Path) -> Result<PathBuf, String> {
    // `musl/syscall_arch.h` serves both architectures; `musl/<arch>/NAME` replaces musl's
    // `src/thread/<arch>/NAME`.
    let patches = Path::new("musl");
    let mut replacements = vec![(
        patches.join("syscall_arch.h"),
        format!("arch/{arch}/syscall_arch.h"),
    )];
    let own = patches.join(arch);
    let mut names: Vec<_> = fs::read_dir(&own)
        .map_err(|e| format!("{}: {e}", own.display()))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    names.sort();
    for name in names {
        let into = format!("src/thread/{arch}/{}", name.to_string_lossy());
        replacements.push((own.join(name), into));
    }
    // What the build depends on: the release, where it came from, the tools and the
    // replaced files.
    let source = std::env::var("MUSL_SRC").unwrap_or_default();
    let mut stamp = format!("{MUSL} {cross} {source}\n");
    for (file, _) in &replacements {
        stamp += &fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let prefix = out.join("musl");
    let stamp_file = prefix.join("uk-rs-build-stamp");
    if fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
        && prefix.join("lib/libc.a").exists()
    {
        return Ok(prefix);
    }

    let tree = out.join(MUSL);
    if tree.exists() {
        fs::remove_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    unpack_source(out, &tree)?;
    for (file, into) in &replacements {
        fs::copy(file, tree.join(into)).map_err(|e| format!("{into}: {e}"))?;
    }

    let jobs = std::env::var("NUM_JOBS").unwrap_or_else(|_| "1".into());
    run(Command::new("./configure")
        .current_dir(&tree)
        .arg(format!("--target={arch}"))
        .arg(format!("--prefix={}", prefix.display()))
        .arg("--disable-shared")
        .env("CROSS_COMPILE", cross)
        .env("CC", format!("{cross}gcc"))
        // Position-independent like the image; no stack protector (nothing sets the canary).
        .env("CFLAGS", "-fPIE -fno-stack-protector"))?;
    run(Command::new("make")
        .current_dir(&tree)
        .arg(format!("-j{jobs}"))
        .args(["lib/libc.a", "install-headers"]))?;
    fs::create_dir_all(prefix.join("lib")).map_err(|e| e.to_string())?;
    fs::copy(tree.join("lib/libc.a"), prefix.join("lib/libc.a")).map_err(|e| e.to_string())?;
    fs::write(&stamp_file, stamp).map_err(|e| e.to_string())?;
    Ok(prefix)
}

/// Puts a pristine musl source tree at `tree`: copied from `MUSL_SRC` when that is a
/// directory, else unpacked from a verified tarball.
fn unpack_source(out: &Path, tree: &Path) -> Result<(), String> {
    let given = std::env::var_os("MUSL_SRC").map(PathBuf::from);
    if let Some(dir) = given.as_ref().filter(|p| p.is_dir()) {
        if !dir.join("arch").join("generic").is_dir() {
            return Err(format!(
                "MUSL_SRC={} is not a musl source tree",
                dir.display()
            ));
        }
        return copy_tree(dir, tree);
    }
    let tarball = match given {
        Some(file) => file,
        None => download(out)?,
    };
    let bytes = fs::read(&tarball).map_err(|e| format!("{}: {e}", tarball.display()))?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    if digest != MUSL_SHA256 {
        return Err(format!(
            "{} has SHA-256 {digest}, not {MUSL}'s {MUSL_SHA256}",
            tarball.display()
        ));
    }
    run(Command::new("tar")
        .current_dir(out)
        .arg("xzf")
        .arg(&tarball))?;
    if tree.is_dir() {
        Ok(())
    } else {
        Err(format!("{} did not unpack to {MUSL}/", tarball.display()))
    }
}

/// Downloads the release tarball into `out` (once: a verified copy there is reused).
fn download(out: &Path) -> Result<PathBuf, String> {
    let file = out.join(format!("{MUSL}.tar.gz"));
    if fs::read(&file).is_ok_and(|b| format!("{:x}", Sha256::digest(&b)) == MUSL_SHA256) {
        return Ok(file);
    }
    let urls: Vec<String> = match std::env::var("MUSL_URL") {
        Ok(url) => vec![url],
        Err(_) => MUSL_URLS.iter().map(|u| u.to_string()).collect(),
    };
    let mut failures = Vec::new();
    for url in &urls {
        let fetched = Command::new("curl")
            .args(["-fsSL", "--retry", "2", "--connect-timeout", "20", "-o"])
            .arg(&file)
            .arg(url)
            .status();
        match fetched {
            Ok(status) if status.success() => return Ok(file),
            Ok(status) => failures.push(format!("{url}: curl {status}")),
            Err(e) => failures.push(format!("{url}: curl: {e}")),
        }
    }
    Err(format!(
        "could not download {MUSL} ({}); set MUSL_SRC to its source tree or tarball",
        failures.join("; ")
    ))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

/// Runs a build step, keeping its output out of cargo's unless it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{:?} failed ({}):\n{}{}",
        command,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
