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

/// The files of a new project, as (relative path, contents).
pub fn files(name: &str, uk_root: &Path) -> Vec<(PathBuf, String)> {
    let root = uk_root.display().to_string();
    // A JSON string is a valid TOML basic string (same escapes).
    let toml_str = |s: &str| serde_json::to_string(s).unwrap_or_default();
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
# The uk-rs sources, by path; once uk-rs is published: uk-app = "0.1".
uk-app = {{ path = {uk_app} }}

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
"#,
        uk_app = toml_str(&format!("{root}/uk-app")),
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
    let main_rs = format!(
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
channel = "stable"
components = ["rustfmt", "clippy"]
targets = ["x86_64-unknown-none", "aarch64-unknown-none"]
profile = "minimal"
"#;
    vec![
        ("Cargo.toml".into(), cargo_toml),
        (".cargo/config.toml".into(), config),
        ("rust-toolchain.toml".into(), toolchain.to_owned()),
        ("src/main.rs".into(), main_rs),
        (".gitignore".into(), "/target\n".to_owned()),
    ]
}

/// Creates the project `name` in `dir` (which must not exist, or be empty).
pub fn create(name: &str, dir: &Path, uk_root: &Path) -> Result<()> {
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
    for (path, text) in files(name, uk_root) {
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
        let files = files("hello", Path::new("/opt/uk rs"));
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
    fn create_refuses_a_non_empty_directory_and_a_wrong_root() {
        let base = std::env::temp_dir().join(format!("cargo-uk-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = default_uk_root().expect("built from the uk-rs sources");
        let dir = base.join("app");
        create("app", &dir, &root).unwrap();
        assert!(dir.join("src/main.rs").is_file());
        assert!(dir.join("Cargo.lock").is_file());
        let err = create("app", &dir, &root).unwrap_err().to_string();
        assert!(err.contains("already exists and is not empty"), "{err}");
        let err = create("other", &base.join("o"), &base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not the uk-rs sources"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
