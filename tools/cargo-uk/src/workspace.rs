//! The workspace: where it is, which images it has, and building them with cargo.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::UsageError;

/// Package (and binary) name of the in-image test image (`ktest/`).
pub const KTEST_PACKAGE: &str = "uk-ktest";

/// The defmt log levels images are built with when `DEFMT_LOG` is not set.
pub const DEFAULT_DEFMT_LOG: &str = "info";

/// A bootable image of the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// `examples/<name>`: package and binary `<name>`.
    Example(String),
    /// The in-image test image, package and binary `uk-ktest`.
    Ktest,
    /// An application package of the workspace (package and binary of that name), found
    /// from the current directory or named with `--example`: an application made with
    /// `cargo uk new`, outside this repository.
    App(String),
}

impl Image {
    /// Cargo package name (also the binary's name).
    pub fn package(&self) -> &str {
        match self {
            Image::Example(name) | Image::App(name) => name,
            Image::Ktest => KTEST_PACKAGE,
        }
    }

    /// Name for reports: the example's name, or `ktest`.
    pub fn label(&self) -> &str {
        match self {
            Image::Example(name) | Image::App(name) => name,
            Image::Ktest => "ktest",
        }
    }
}

/// A package of the workspace, as `cargo metadata` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Its `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// Whether it has a binary target of the package's own name (an image).
    pub has_bin: bool,
}

impl Package {
    /// The package's directory.
    pub fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }
}

/// Resolves `--example NAME` among `examples`; `ktest` (or `uk-ktest`) names the test image.
pub fn resolve_image(name: &str, examples: &[String]) -> Result<Image, String> {
    resolve_image_in(name, examples, &[])
}

/// Resolves `--example NAME` among `examples`, then among `apps` (application packages of
/// the workspace); `ktest` (or `uk-ktest`) names the test image.
pub fn resolve_image_in(name: &str, examples: &[String], apps: &[&str]) -> Result<Image, String> {
    if name == "ktest" || name == KTEST_PACKAGE {
        return Ok(Image::Ktest);
    }
    if examples.iter().any(|e| e == name) {
        return Ok(Image::Example(name.to_owned()));
    }
    if apps.contains(&name) {
        return Ok(Image::App(name.to_owned()));
    }
    let known = if examples.is_empty() {
        "none found under examples/".to_owned()
    } else {
        examples.join(", ")
    };
    Err(format!(
        "unknown example '{name}' (examples: {known}; `ktest` is the in-image test image)"
    ))
}

/// The workspace being worked on.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The workspace root (holds the root `Cargo.toml`).
    pub root: PathBuf,
    /// Cargo's target directory (respects `CARGO_TARGET_DIR` and cargo configuration).
    pub target_dir: PathBuf,
    /// The workspace's packages.
    pub packages: Vec<Package>,
}

/// The cargo binary to run: the one that runs us (`$CARGO`), else `cargo` from `PATH`.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Reads `workspace_root` and `target_directory` from `cargo metadata` JSON.
pub fn parse_metadata(json: &str) -> Result<Workspace, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("cargo metadata printed bad JSON: {e}"))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .ok_or_else(|| format!("cargo metadata printed no `{name}`"))
    };
    let mut packages = Vec::new();
    for p in value
        .get("packages")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(manifest)) = (
            p.get("name").and_then(|v| v.as_str()),
            p.get("manifest_path").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let has_bin = p
            .get("targets")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .any(|t| {
                t.get("name").and_then(|n| n.as_str()) == Some(name)
                    && t.get("kind")
                        .and_then(|k| k.as_array())
                        .is_some_and(|k| k.iter().any(|k| k.as_str() == Some("bin")))
            });
        packages.push(Package {
            name: name.to_owned(),
            manifest_path: PathBuf::from(manifest),
            has_bin,
        });
    }
    Ok(Workspace {
        root: field("workspace_root")?,
        target_dir: field("target_directory")?,
        packages,
    })
}

/// Packages that are not applications: the host tool itself.
const NOT_APPS: &[&str] = &["cargo-uk"];

/// The application package around `cwd`: the package with a binary of its own name whose
/// directory is `cwd` or its nearest ancestor among the packages (the host tool and the
/// test image excluded).
pub fn package_around<'a>(packages: &'a [Package], cwd: &Path) -> Option<&'a Package> {
    packages
        .iter()
        .filter(|p| p.has_bin && !NOT_APPS.contains(&p.name.as_str()) && p.name != KTEST_PACKAGE)
        .filter(|p| cwd.starts_with(p.dir()))
        .max_by_key(|p| p.dir().components().count())
}

/// The first `error:` line of cargo's standard error, without the prefix (or the first line).
pub fn cargo_error_line(stderr: &str) -> String {
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find_map(|l| l.strip_prefix("error:"))
        .or_else(|| lines().next())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

impl Workspace {
    /// Finds the workspace around the current directory with
    /// `cargo metadata --format-version 1 --no-deps`.
    pub fn locate() -> Result<Workspace> {
        let output = Command::new(cargo_program())
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run `cargo metadata`")?;
        if !output.status.success() {
            bail!(
                "cannot read the workspace (`cargo metadata` failed: {})",
                cargo_error_line(&String::from_utf8_lossy(&output.stderr))
            );
        }
        parse_metadata(&String::from_utf8_lossy(&output.stdout)).map_err(|e| anyhow!(e))
    }

    /// The examples: every directory under `examples/` that has a `Cargo.toml`, sorted.
    pub fn examples(&self) -> Vec<String> {
        list_examples(&self.root.join("examples"))
    }

    /// Application packages outside `examples/` (packages with a binary of their name).
    pub fn apps(&self) -> Vec<&str> {
        let examples = self.root.join("examples");
        self.packages
            .iter()
            .filter(|p| {
                p.has_bin
                    && !NOT_APPS.contains(&p.name.as_str())
                    && p.name != KTEST_PACKAGE
                    && !p.dir().starts_with(&examples)
            })
            .map(|p| p.name.as_str())
            .collect()
    }

    /// Resolves `--example NAME`; an unknown name is a usage error. Without a name: the
    /// application package around the current directory, else `helloworld`.
    pub fn image(&self, name: Option<&str>) -> Result<Image> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => match std::env::current_dir()
                .ok()
                .and_then(|cwd| package_around(&self.packages, &cwd).cloned())
            {
                Some(p) if self.examples().contains(&p.name) => return Ok(Image::Example(p.name)),
                Some(p) => return Ok(Image::App(p.name)),
                None => "helloworld".to_owned(),
            },
        };
        resolve_image_in(&name, &self.examples(), &self.apps()).map_err(|e| UsageError(e).into())
    }

    /// The directory of an image's package.
    pub fn package_dir(&self, image: &Image) -> PathBuf {
        match image {
            Image::Example(name) => self.root.join("examples").join(name),
            Image::Ktest => self.root.join("ktest"),
            Image::App(name) => self
                .packages
                .iter()
                .find(|p| &p.name == name)
                .map_or_else(|| self.root.clone(), |p| p.dir().to_owned()),
        }
    }

    /// The `[package.metadata.uk]` manifest of an image's package.
    pub fn manifest(&self, image: &Image) -> Result<crate::manifest::Manifest, String> {
        crate::manifest::Manifest::load(&self.package_dir(image).join("Cargo.toml"))
    }

    /// Builds `images` for `triple` in one cargo invocation (cargo's progress and diagnostics
    /// go to standard error) and returns each image's path by package name.
    ///
    /// With `keep_going`, cargo builds what it can (`--keep-going`) and a failed build
    /// returns the images that were built; without it a failed build is an error.
    pub fn build(
        &self,
        triple: &str,
        images: &[Image],
        release: bool,
        keep_going: bool,
    ) -> Result<BTreeMap<String, PathBuf>> {
        self.build_with_features(triple, images, &[], release, keep_going)
    }

    /// [`Workspace::build`] with cargo features (`package/feature` or, with one image,
    /// plain feature names of that package).
    pub fn build_with_features(
        &self,
        triple: &str,
        images: &[Image],
        features: &[&str],
        release: bool,
        keep_going: bool,
    ) -> Result<BTreeMap<String, PathBuf>> {
        let mut command = Command::new(cargo_program());
        command.current_dir(&self.root).arg("build");
        for image in images {
            command.args(["-p", image.package()]);
        }
        if !features.is_empty() {
            command.args(["--features", &features.join(",")]);
        }
        command.args(["--target", triple]);
        if release {
            command.arg("--release");
        }
        if keep_going {
            command.arg("--keep-going");
        }
        // defmt compiles in only the log levels DEFMT_LOG asks for (`error` when unset).
        if std::env::var_os("DEFMT_LOG").is_none() {
            command.env("DEFMT_LOG", DEFAULT_DEFMT_LOG);
        }
        let names: Vec<&str> = images.iter().map(Image::package).collect();
        let fancy = crate::style::stderr_colors();
        let found = if fancy {
            build_with_progress(command, &names, triple)?
        } else {
            command
                .arg("--message-format=json-render-diagnostics")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = command.spawn().context("cannot run `cargo build`")?;
            let mut found = BTreeMap::new();
            if let Some(stdout) = child.stdout.take() {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some((name, path)) = parse_artifact(&line) {
                        if names.contains(&name.as_str()) {
                            found.insert(name, path);
                        }
                    }
                }
            }
            let status = child.wait().context("cannot wait for `cargo build`")?;
            (found, status)
        };
        let (mut found, status) = found;
        if !status.success() && keep_going {
            return Ok(found);
        }
        if !status.success() {
            bail!(
                "build of {} for {triple} failed (cargo's messages are above)",
                names.join(", ")
            );
        }
        for name in names {
            if !found.contains_key(name) {
                let fallback = self.image_path(triple, name, release);
                if !fallback.is_file() {
                    bail!(
                        "cargo built no binary `{name}` for {triple} (is it a [[bin]] of package `{name}`?)"
                    );
                }
                found.insert(name.to_owned(), fallback);
            }
        }
        Ok(found)
    }

    /// Where cargo puts binary `name` built for `triple`.
    pub fn image_path(&self, triple: &str, name: &str, release: bool) -> PathBuf {
        let profile = if release { "release" } else { "debug" };
        self.target_dir.join(triple).join(profile).join(name)
    }
}

/// Runs `cargo build` (prepared in `command`) with an indicatif spinner on standard error:
/// how many crates are compiled and which one was last, cargo's diagnostics printed above
/// it in colour. Returns the binaries found among `names` and cargo's exit status.
fn build_with_progress(
    mut command: Command,
    names: &[&str],
    triple: &str,
) -> Result<(BTreeMap<String, PathBuf>, std::process::ExitStatus)> {
    use indicatif::{ProgressBar, ProgressStyle};
    command
        .args([
            "--message-format=json-diagnostic-rendered-ansi",
            "--color=always",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("cannot run `cargo build`")?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} {prefix:.bold} [{elapsed}] {pos} crates {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(format!("Building {} for {triple}", names.join(", ")));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    // Cargo's own status lines ("Compiling x") on standard error feed the message; any
    // other line (errors, warnings summaries) is printed above the spinner.
    let stderr_thread = child.stderr.take().map(|stderr| {
        let bar = bar.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let plain = crate::report::strip_escapes(&line);
                let status = plain.trim_start();
                if let Some(rest) = status
                    .strip_prefix("Compiling ")
                    .or_else(|| status.strip_prefix("Checking "))
                {
                    bar.set_message(rest.split(' ').next().unwrap_or("").to_owned());
                } else if status.starts_with("Finished ") || status.starts_with("Blocking ") {
                    bar.set_message(status.to_owned());
                } else if !status.is_empty() {
                    bar.println(&line);
                }
            }
        })
    });
    let mut found = BTreeMap::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rendered) = parse_rendered_message(&line) {
                bar.suspend(|| eprint!("{rendered}"));
                continue;
            }
            if is_artifact(&line) {
                bar.inc(1);
            }
            if let Some((name, path)) = parse_artifact(&line) {
                if names.contains(&name.as_str()) {
                    found.insert(name, path);
                }
            }
        }
    }
    if let Some(t) = stderr_thread {
        let _ = t.join();
    }
    let status = child.wait().context("cannot wait for `cargo build`")?;
    bar.finish_and_clear();
    Ok((found, status))
}

/// Whether a line of cargo's JSON output is a `compiler-artifact` message.
pub fn is_artifact(line: &str) -> bool {
    line.starts_with('{') && line.contains("\"reason\":\"compiler-artifact\"")
}

/// The rendered text of a `compiler-message` (a warning or error of rustc), if the line
/// is one.
pub fn parse_rendered_message(line: &str) -> Option<String> {
    if !line.starts_with('{') {
        return None;
    }
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-message" {
        return None;
    }
    Some(msg.get("message")?.get("rendered")?.as_str()?.to_owned())
}

/// Lists the examples under `dir`: subdirectories with a `Cargo.toml`, sorted by name.
pub fn list_examples(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Reads a `compiler-artifact` message of `cargo build --message-format=json`: the binary
/// target's name and its executable.
pub fn parse_artifact(line: &str) -> Option<(String, PathBuf)> {
    if !line.starts_with('{') {
        return None;
    }
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = msg.get("target")?;
    let is_bin = target
        .get("kind")?
        .as_array()?
        .iter()
        .any(|k| k.as_str() == Some("bin"));
    if !is_bin {
        return None;
    }
    let name = target.get("name")?.as_str()?;
    let exe = msg.get("executable")?.as_str()?;
    Some((name.to_owned(), PathBuf::from(exe)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fields() {
        let json =
            r#"{"packages":[],"workspace_root":"/w","target_directory":"/w/target","version":1}"#;
        let ws = parse_metadata(json).unwrap();
        assert_eq!(ws.root, Path::new("/w"));
        assert_eq!(ws.target_dir, Path::new("/w/target"));
        assert!(parse_metadata("{}").unwrap_err().contains("workspace_root"));
        assert!(parse_metadata("nope").is_err());
        assert_eq!(
            ws.image_path("x86_64-unknown-none", "helloworld", true),
            Path::new("/w/target/x86_64-unknown-none/release/helloworld")
        );
    }

    #[test]
    fn cargo_errors_become_one_line() {
        let stderr = "error: failed to load manifest for workspace member `/w/uk-app`\n\
                      referenced by workspace at `/w/Cargo.toml`\n\nCaused by:\n  x\n";
        assert_eq!(
            cargo_error_line(stderr),
            "failed to load manifest for workspace member `/w/uk-app`"
        );
        assert_eq!(cargo_error_line("boom\n"), "boom");
        assert_eq!(cargo_error_line(""), "no message");
    }

    #[test]
    fn artifacts() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/examples/helloworld#0.1.0","target":{"kind":["bin"],"crate_types":["bin"],"name":"helloworld","src_path":"/w/examples/helloworld/src/main.rs"},"profile":{},"features":[],"filenames":["/w/target/x86_64-unknown-none/release/helloworld"],"executable":"/w/target/x86_64-unknown-none/release/helloworld","fresh":true}"#;
        assert_eq!(
            parse_artifact(bin),
            Some((
                "helloworld".into(),
                PathBuf::from("/w/target/x86_64-unknown-none/release/helloworld")
            ))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"uk_rt"},"executable":null}"#;
        assert_eq!(parse_artifact(lib), None);
        assert_eq!(
            parse_artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(parse_artifact("   Compiling x"), None);
        assert!(is_artifact(bin));
        assert!(!is_artifact(
            r#"{"reason":"build-finished","success":true}"#
        ));
    }

    #[test]
    fn rendered_messages() {
        let msg = r#"{"reason":"compiler-message","message":{"rendered":"warning: unused\n","level":"warning"}}"#;
        assert_eq!(
            parse_rendered_message(msg).as_deref(),
            Some("warning: unused\n")
        );
        assert_eq!(
            parse_rendered_message(r#"{"reason":"compiler-artifact"}"#),
            None
        );
        assert_eq!(parse_rendered_message("plain"), None);
    }

    #[test]
    fn packages_from_metadata_and_the_one_around_a_directory() {
        let json = r#"{"packages":[
            {"name":"cargo-uk","manifest_path":"/w/tools/cargo-uk/Cargo.toml","targets":[{"name":"cargo-uk","kind":["bin"]}]},
            {"name":"uk-rt","manifest_path":"/w/uk-rt/Cargo.toml","targets":[{"name":"uk_rt","kind":["lib"]}]},
            {"name":"helloworld","manifest_path":"/w/examples/helloworld/Cargo.toml","targets":[{"name":"helloworld","kind":["bin"]}]},
            {"name":"app","manifest_path":"/p/Cargo.toml","targets":[{"name":"app","kind":["bin"]}]}
        ],"workspace_root":"/w","target_directory":"/w/target"}"#;
        let ws = parse_metadata(json).unwrap();
        assert_eq!(ws.packages.len(), 4);
        assert!(ws.packages[0].has_bin && !ws.packages[1].has_bin);
        let around = |d: &str| package_around(&ws.packages, Path::new(d)).map(|p| p.name.clone());
        assert_eq!(
            around("/w/examples/helloworld/src").as_deref(),
            Some("helloworld")
        );
        assert_eq!(around("/p").as_deref(), Some("app"));
        assert_eq!(around("/w/tools/cargo-uk"), None);
        assert_eq!(around("/w/uk-rt"), None);
        assert_eq!(around("/w"), None);
        assert_eq!(ws.apps(), ["app"]);
        assert_eq!(ws.package_dir(&Image::App("app".into())), Path::new("/p"));
        assert_eq!(
            ws.package_dir(&Image::Example("helloworld".into())),
            Path::new("/w/examples/helloworld")
        );
        assert_eq!(
            resolve_image_in("app", &[], &["app"]),
            Ok(Image::App("app".into()))
        );
    }

    #[test]
    fn image_names() {
        let examples = vec!["alloc".to_owned(), "helloworld".to_owned()];
        assert_eq!(
            resolve_image("helloworld", &examples),
            Ok(Image::Example("helloworld".into()))
        );
        assert_eq!(resolve_image("ktest", &examples), Ok(Image::Ktest));
        assert_eq!(resolve_image("uk-ktest", &examples), Ok(Image::Ktest));
        assert_eq!(Image::Ktest.package(), "uk-ktest");
        assert_eq!(Image::Ktest.label(), "ktest");
        let err = resolve_image("nope", &examples).unwrap_err();
        assert_eq!(
            err,
            "unknown example 'nope' (examples: alloc, helloworld; `ktest` is the in-image test image)"
        );
        assert!(resolve_image("x", &[]).unwrap_err().contains("none found"));
    }

    #[test]
    fn example_directories() {
        let dir = std::env::temp_dir().join(format!("cargo-uk-examples-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, manifest) in [("b", true), ("a", true), ("notes", false)] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            if manifest {
                std::fs::write(dir.join(name).join("Cargo.toml"), "").unwrap();
            }
        }
        std::fs::write(dir.join("README.md"), "").unwrap();
        assert_eq!(list_examples(&dir), ["a", "b"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(list_examples(&dir).is_empty());
    }
}
