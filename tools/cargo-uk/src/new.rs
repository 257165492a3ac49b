//! `cargo uk new NAME [--path DIR]`: a new application outside the uk-rs repository.
//!
//! The project depends on `uk-app` by path (the absolute path of the uk-rs sources; by
//! version once the crates are published) and carries what building an image needs, since
//! cargo reads its configuration from the directory it runs in, not from the uk-rs
//! repository:
//!
//! - `Cargo.toml`: the package, one binary, `[package.metadata.uk]`, the release profile
//!   of uk-rs images (`panic = "abort"`, LTO, size-optimised) and an empty `[workspace]`
//!   so that it is a workspace of its own wherever it is created;
//! - `.cargo/config.toml`: the linker script and static relocation model of each bare-metal
//!   target, and the `cargo uk` alias, which runs cargo-uk from the uk-rs sources
//!   (`cargo run --manifest-path <uk-rs>/tools/cargo-uk/Cargo.toml`);
//! - `rust-toolchain.toml`: the toolchain with both bare-metal targets;
//! - `Cargo.lock`: a copy of the uk-rs lock file, so the project starts from the versions
//!   uk-rs is tested with (cargo drops the entries it does not need);
//! - `src/main.rs`: an application that greets and prints its arguments;
//! - `.gitignore`.
//!
//! With `--c` the application is a C program instead: `c/main.c` (greets and prints its
//! arguments through musl's stdio), a `build.rs` that builds musl with direct system calls
//! (uk-musl) and compiles the C code against it, and a `src/main.rs` that starts the C
//! program as the image's process (uk-posix-process's `spawn_c_program`).
//!
//! cargo-uk finds the application from the current directory's package, so `cargo uk run`
//! in the new folder builds and boots it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::UsageError;

/// Checks a package name for `cargo uk new`: an ASCII letter, then letters, digits, `-`
/// or `_`, at most 64 characters, and not a name the build would confuse with a uk-rs crate.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "bad application name '{name}' (allowed: an ASCII letter, then letters, digits, '-' or '_', at most 64 characters)"
        ));
    }
    if name.starts_with("uk-") || name.starts_with("uk_") || name == "cargo-uk" || name == "test" {
        return Err(format!(
            "the name '{name}' is taken by uk-rs or cargo (uk-*, cargo-uk, test); choose another"
        ));
    }
    Ok(())
}

/// The uk-rs sources this cargo-uk was built from (`tools/cargo-uk/../..`), if they are
/// still there.
pub fn default_uk_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().ok()?;
    root.join("uk-app/Cargo.toml").is_file().then_some(root)
}

/// The language a new application is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// A Rust application on `uk-app`.
    Rust,
    /// A C program on musl, started by a small Rust image.
    C,
}

/// The files of a new project, as (relative path, contents).
pub fn files(name: &str, uk_root: &Path, lang: Lang) -> Vec<(PathBuf, String)> {
    let root = uk_root.display().to_string();
    // A JSON string is a valid TOML basic string (same escapes).
    let toml_str = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let path_dep = |krate: &str, extra: &str| {
        format!(
            "{krate} = {{ path = {}{extra} }}\n",
            toml_str(&format!("{root}/{krate}"))
        )
    };
    let dependencies = match lang {
        Lang::Rust => path_dep("uk-app", ""),
        Lang::C => [
            path_dep("uk-app", ""),
            path_dep("uk-context", ""),
            path_dep("uk-sched", ""),
            path_dep("uk-syscall", ", features = [\"image\"]"),
            path_dep("uk-posix-process", ", features = [\"vfs\"]"),
            path_dep("uk-vfs", ""),
            path_dep("uk-random", ""),
            // musl, built with its system calls as direct calls of the image's handlers.
            format!("\n[build-dependencies]\n{}", path_dep("uk-musl", "")),
        ]
        .concat(),
    };
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[[bin]]
name = "{name}"
test = false
bench = false

[dependencies]
# The uk-rs sources, by path; once uk-rs is published: uk-app = "0.1" (and so on).
{dependencies}
# How `cargo uk` builds and boots this application (see `cargo uk --help`).
[package.metadata.uk]
boards = ["x86-pc", "qemu-virt"]   # the first is the default board
memory = "64M"
# allocator = "tlsf"               # tlsf | buddy | region
# scheduler = "cooperative"        # cooperative | preemptive
# cpus = 1
# args = ["one", "two words"]
# kernel-params = ["loglevel=debug"]
# initrd = "rootfs"                # a file, or a directory packed as CPIO
# qemu-args = []

# Images abort on panic and are optimised for size, as in uk-rs. Symbols are kept (they
# are not loaded): defmt decodes its frames with them, gdb names functions with them.
[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
lto = true
codegen-units = 1
opt-level = "s"
debug = false
strip = "debuginfo"

# A workspace of its own, wherever it is created.
[workspace]
"#
    );
    let config = format!(
        r#"# `cargo uk ...` runs the uk-rs host tool from the uk-rs sources.
[alias]
uk = ["run", "--quiet", "--release", "--manifest-path", {manifest}, "--"]

# Bare-metal images link with their board's linker script (put on the linker search path by
# the board crate's build script) at a fixed address.
[target.x86_64-unknown-none]
rustflags = ["-C", "link-arg=-Tuk-x86-pc.ld", "-C", "relocation-model=static"]

[target.aarch64-unknown-none]
rustflags = ["-C", "link-arg=-Tuk-qemu-virt.ld", "-C", "relocation-model=static"]
"#,
        manifest = toml_str(&format!("{root}/tools/cargo-uk/Cargo.toml")),
    );
    let rust_main = format!(
        r#"//! {name}: a uk-rs application. `cargo uk run` boots it under QEMU,
//! `cargo uk run --board qemu-virt -- a b` on the aarch64 board with two arguments.
#![no_std]
#![no_main]

uk_app::main!(main);

fn main(args: &uk_app::Args) -> i32 {{
    let platform = uk_app::platform();
    uk_app::println!("Hello from {name} on {{}}", platform.board_name());
    uk_app::println!("args: {{:?}}", args.as_slice());
    0
}}
"#
    );
    let toolchain = r#"[toolchain]
# Pinned, not "stable": stable 1.99 ships no rust-std for aarch64-unknown-none through the
# package mirror CI and development machines use (its manifest marks it unavailable), and a
# fixed version keeps lints and codegen reproducible between runs.
channel = "1.98.0"
components = ["rustfmt", "clippy"]
targets = ["x86_64-unknown-none", "aarch64-unknown-none"]
profile = "minimal"
"#;
    let mut files = vec![
        ("Cargo.toml".into(), cargo_toml),
        (".cargo/config.toml".into(), config),
        ("rust-toolchain.toml".into(), toolchain.to_owned()),
        (".gitignore".into(), "/target\n".to_owned()),
    ];
    match lang {
        Lang::Rust => files.push(("src/main.rs".into(), rust_main)),
        Lang::C => files.extend(c_files(name)),
    }
    files
}

/// The C program, its build script and the Rust image that starts it.
fn c_files(name: &str) -> Vec<(PathBuf, String)> {
    let build_rs = r#"//! Builds musl with its system calls as direct calls (uk-musl), compiles `c/` against it
//! and links both into the image. Needs the architecture's GNU C compiler (Debian: `gcc`,
//! `gcc-aarch64-linux-gnu`), `make`, and `curl` unless `MUSL_SRC` names a local musl 1.2.3.

fn main() {
    println!("cargo:rerun-if-changed=c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return; // host builds (lints, docs) link no image
    }
    let musl = uk_musl::Builder::from_cargo_env()
        .and_then(|builder| builder.build())
        .unwrap_or_else(|e| panic!("{e}"));
    musl.cc().file("c/main.c").compile("program");
    musl.link();
}
"#;
    let main_c = format!(
        r#"/* {name}: a C program on uk-rs. `cargo uk run -- a b` boots it with two arguments. */
#include <stdio.h>

int main(int argc, char **argv)
{{
	printf("Hello from C in {name}, argc %d\n", argc);
	for (int i = 1; i < argc; i++)
		printf("argv[%d] = %s\n", i, argv[i]);
	return 0;
}}
"#
    );
    let main_rs = format!(
        r#"//! {name}: starts the C program in `c/` as the image's process. Its musl makes every
//! system call as a direct call of uk-rs's handlers; `main`'s return value is the run's
//! exit status.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_char;

use uk_context::Native;
use uk_posix_process::Errno;
use uk_posix_process::startup::{{CMain, LibcStart, StartupBlock, TlsSegment}};
use uk_sched::{{RoundRobin, Scheduler, idle}};

uk_app::main!(main);

unsafe extern "C" {{
    /// The C program's `main`.
    #[link_name = "main"]
    fn c_main(argc: i32, argv: *mut *mut c_char, envp: *mut *mut c_char) -> i32;
    /// musl's start code: initialises the C library, runs `main`, exits with its result.
    fn __libc_start_main(
        main: CMain,
        argc: i32,
        argv: *mut *mut c_char,
        init: usize,
        fini: usize,
        ldso: usize,
    ) -> i32;
}}

fn main(args: &uk_app::Args) -> Result<(), Errno> {{
    let platform = uk_app::platform();
    // The binary syscall entry (for code that still traps), and the console behind fds 0-2.
    uk_syscall::install().map_err(|_| Errno::ENOSYS)?;
    uk_vfs::set_console(platform);
    // What Linux's execve leaves a static program: argv, envp, the auxiliary vector.
    let mut argv: Vec<&[u8]> = Vec::from([&b"{name}"[..]]);
    argv.extend(args.as_slice().iter().map(|a| a.as_bytes()));
    let mut random = [0u8; 16];
    uk_random::fill_bytes(&mut random).map_err(|_| Errno::EIO)?;
    let block = StartupBlock::new(&argv, &[b"HOME=/"], TlsSegment::of_image()?, random)?;
    let sched: &'static RoundRobin<_, _> = Box::leak(Box::new(RoundRobin::cooperative(
        Native::detect(),
        platform,
        idle::Poll,
    )));
    uk_posix_process::install(sched);
    let start: LibcStart = __libc_start_main;
    uk_posix_process::system().spawn_c_program("{name}", start, c_main, block)?;
    // Runs until the program's exit_group ends the run.
    sched.run();
    Ok(())
}}
"#
    );
    vec![
        ("build.rs".into(), build_rs.to_owned()),
        ("c/main.c".into(), main_c),
        ("src/main.rs".into(), main_rs),
    ]
}

/// Creates the project `name` in `dir` (which must not exist, or be empty).
pub fn create(name: &str, dir: &Path, uk_root: &Path, lang: Lang) -> Result<()> {
    validate_name(name).map_err(UsageError)?;
    if !uk_root.join("uk-app/Cargo.toml").is_file() {
        bail!(UsageError(format!(
            "{} is not the uk-rs sources (no uk-app/Cargo.toml); pass --uk-path",
            uk_root.display()
        )));
    }
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            bail!(UsageError(format!(
                "{} already exists and is not empty",
                dir.display()
            )));
        }
    }
    for (path, text) in files(name, uk_root, lang) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let lock = uk_root.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|e| anyhow!("cannot copy {}: {e}", lock.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn names() {
        assert!(validate_name("hello").is_ok());
        assert!(validate_name("my_app-2").is_ok());
        for bad in ["", "2app", "-x", "a b", "a/b", "ünï", "uk-app", "cargo-uk"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_files_are_consistent() {
        let files = files("hello", Path::new("/opt/uk rs"), Lang::Rust);
        let get = |p: &str| {
            &files
                .iter()
                .find(|(path, _)| path == Path::new(p))
                .unwrap()
                .1
        };
        let cargo = get("Cargo.toml");
        let doc: toml::Table = toml::from_str(cargo).unwrap();
        assert_eq!(doc["package"]["name"].as_str(), Some("hello"));
        assert_eq!(
            doc["dependencies"]["uk-app"]["path"].as_str(),
            Some("/opt/uk rs/uk-app")
        );
        assert!(doc.contains_key("workspace"));
        assert_eq!(doc["profile"]["release"]["panic"].as_str(), Some("abort"));
        let m = Manifest::from_cargo_toml(cargo).unwrap();
        assert_eq!(m.boards, ["x86-pc", "qemu-virt"]);
        let config: toml::Table = toml::from_str(get(".cargo/config.toml")).unwrap();
        let alias: Vec<&str> = config["alias"]["uk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            alias,
            [
                "run",
                "--quiet",
                "--release",
                "--manifest-path",
                "/opt/uk rs/tools/cargo-uk/Cargo.toml",
                "--"
            ]
        );
        // The rustflags are the uk-rs workspace's own.
        let ours: toml::Table = toml::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cargo/config.toml"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config["target"], ours["target"]);
        let toolchain = get("rust-toolchain.toml");
        assert_eq!(
            toolchain,
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rust-toolchain.toml")
            )
            .unwrap()
        );
        assert!(get("src/main.rs").contains("Hello from hello on {}"));
    }

    #[test]
    fn the_c_template_builds_musl_and_starts_the_program() {
        let c_files = files("helloc", Path::new("/opt/uk rs"), Lang::C);
        let get = |p: &str| {
            &c_files
                .iter()
                .find(|(path, _)| path == Path::new(p))
                .unwrap_or_else(|| panic!("{p} missing"))
                .1
        };
        let cargo = get("Cargo.toml");
        let doc: toml::Table = toml::from_str(cargo).unwrap();
        let deps = doc["dependencies"].as_table().unwrap();
        for krate in [
            "uk-app",
            "uk-context",
            "uk-sched",
            "uk-syscall",
            "uk-posix-process",
            "uk-vfs",
            "uk-random",
        ] {
            assert_eq!(
                deps[krate]["path"].as_str(),
                Some(format!("/opt/uk rs/{krate}").as_str())
            );
        }
        assert_eq!(
            deps["uk-posix-process"]["features"][0].as_str(),
            Some("vfs")
        );
        assert_eq!(
            doc["build-dependencies"]["uk-musl"]["path"].as_str(),
            Some("/opt/uk rs/uk-musl")
        );
        assert_eq!(
            Manifest::from_cargo_toml(cargo).unwrap().boards,
            ["x86-pc", "qemu-virt"]
        );
        assert!(get("build.rs").contains("uk_musl::Builder::from_cargo_env()"));
        assert!(get("c/main.c").contains("Hello from C in helloc, argc %d"));
        assert!(get("src/main.rs").contains("spawn_c_program(\"helloc\""));
        // The Rust template has none of it.
        let rust = files("hello", Path::new("/opt/uk rs"), Lang::Rust);
        assert!(
            rust.iter()
                .all(|(p, _)| p != Path::new("build.rs") && p != Path::new("c/main.c"))
        );
    }

    #[test]
    fn create_refuses_a_non_empty_directory_and_a_wrong_root() {
        let base = std::env::temp_dir().join(format!("cargo-uk-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = default_uk_root().expect("built from the uk-rs sources");
        let dir = base.join("app");
        create("app", &dir, &root, Lang::Rust).unwrap();
        assert!(dir.join("src/main.rs").is_file());
        assert!(dir.join("Cargo.lock").is_file());
        let err = create("app", &dir, &root, Lang::Rust)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists and is not empty"), "{err}");
        let err = create("other", &base.join("o"), &base, Lang::C)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not the uk-rs sources"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
