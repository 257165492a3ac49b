//! The application manifest: `[package.metadata.uk]` in an application's `Cargo.toml`.
//!
//! ```toml
//! [package.metadata.uk]
//! boards = ["x86-pc", "qemu-virt"]   # boards the application runs on; the first is the default
//! scheduler = "cooperative"          # cooperative | preemptive: kernel parameter `sched=...`
//! allocator = "tlsf"                 # tlsf | buddy | region: cargo feature `uk-app/alloc-...`
//! memory = "128M"                    # guest memory, QEMU -m syntax (K, M or G suffix)
//! cpus = 1                           # QEMU -smp, 1 to 64
//! kernel-params = ["loglevel=debug"] # kernel parameters (before `--` on the command line)
//! args = ["one", "two words"]        # application arguments (after `--`)
//! initrd = "rootfs"                  # a file (-initrd FILE) or a directory (packed as CPIO newc)
//! share = "shared"                   # a host directory the guest reaches over virtio-9p (tag `share`)
//! rng = true                         # a virtio entropy device (virtio-rng-pci / virtio-rng-device)
//! qemu-args = ["-device", "virtio-net-pci"]  # appended to the QEMU command line
//! features = ["extra"]               # cargo features of the application to build with
//! ```
//!
//! Every field is optional. A value that is not allowed is reported with the field's name
//! and what is allowed; unknown fields are refused (a typo would otherwise be ignored).
//! Command-line flags override the manifest (`--board`, `--mem`, `--smp`, `--initrd`,
//! `--allocator`, `--scheduler`, and arguments after `--` replace `args`).
//!
//! `board = "x86-pc"` is accepted as a shorthand for `boards = ["x86-pc"]`.
//!
//! The scheduler policy has no cargo feature to map to (uk-sched builds both policies;
//! the application constructs its scheduler), so it is validated here and handed to the
//! image as the kernel parameter `sched=cooperative|preemptive`, which uk-rt reads
//! (`uk_rt::cmdline::KernelParams::sched`).

use std::path::{Path, PathBuf};

use crate::boards::{BOARDS, lookup_board};

/// The `[package.metadata.uk]` keys, for the error on an unknown one.
pub const FIELDS: &[&str] = &[
    "board",
    "boards",
    "scheduler",
    "allocator",
    "memory",
    "cpus",
    "kernel-params",
    "args",
    "initrd",
    "share",
    "rng",
    "qemu-args",
    "features",
];

/// Scheduler policies (value of `scheduler`).
pub const SCHEDULERS: &[&str] = &["cooperative", "preemptive"];

/// Allocators (value of `allocator`) and the uk-app feature each selects.
pub const ALLOCATORS: &[(&str, &str)] = &[
    ("tlsf", "uk-app/alloc-tlsf"),
    ("buddy", "uk-app/alloc-buddy"),
    ("region", "uk-app/alloc-region"),
];

/// Most CPUs `cpus` may ask for.
pub const MAX_CPUS: u32 = 64;

/// An application's `[package.metadata.uk]`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Boards the application runs on (empty: every board); the first is the default.
    pub boards: Vec<String>,
    /// `cooperative` or `preemptive`.
    pub scheduler: Option<String>,
    /// `tlsf`, `buddy` or `region`.
    pub allocator: Option<String>,
    /// Guest memory, QEMU `-m` syntax.
    pub memory: Option<String>,
    /// Number of CPUs.
    pub cpus: Option<u32>,
    /// Kernel parameters (`key=value`).
    pub kernel_params: Vec<String>,
    /// Application arguments.
    pub args: Vec<String>,
    /// Initial RAM disk: a file or a directory, relative to the package directory.
    pub initrd: Option<PathBuf>,
    /// A host directory shared with the guest over virtio-9p (mount tag
    /// [`crate::qemu::SHARE_TAG`]), relative to the package directory.
    pub share: Option<PathBuf>,
    /// Give the guest a virtio entropy device ([`crate::qemu::rng_device`]).
    pub rng: bool,
    /// Extra QEMU arguments.
    pub qemu_args: Vec<String>,
    /// Cargo features of the application package.
    pub features: Vec<String>,
}

/// A manifest error: which field and what is wrong.
fn field_error(field: &str, message: impl std::fmt::Display) -> String {
    format!("[package.metadata.uk] {field}: {message}")
}

fn string_of(field: &str, value: &toml::Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| field_error(field, format!("expected a string, found {}", kind(value))))
}

fn strings_of(field: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    let array = value.as_array().ok_or_else(|| {
        field_error(
            field,
            format!("expected an array of strings, found {}", kind(value)),
        )
    })?;
    array
        .iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                field_error(
                    field,
                    format!("expected an array of strings, found an element {}", kind(v)),
                )
            })
        })
        .collect()
}

/// A non-empty path (to `what`, relative to the package).
fn path_of(field: &str, value: &toml::Value, what: &str) -> Result<PathBuf, String> {
    let s = string_of(field, value)?;
    if s.is_empty() {
        return Err(field_error(
            field,
            format!("empty (allowed: a path to {what}, relative to the package)"),
        ));
    }
    Ok(PathBuf::from(s))
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Checks a QEMU `-m` size: digits with an optional `K`, `M` or `G` suffix (`M` when none),
/// at least 2 MiB and at most 1 TiB.
pub fn validate_memory(value: &str) -> Result<(), String> {
    let allowed =
        "allowed: a size such as 64M, 512M or 1G (digits with a K, M or G suffix), 2M to 1024G";
    let (digits, unit) = match value.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&value[..i], c.to_ascii_uppercase()),
        _ => (value, 'M'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{value}' is not a size ({allowed})"));
    }
    let shift = match unit {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(format!("'{value}' has an unknown unit ({allowed})")),
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_shl(shift).filter(|b| b >> shift == n));
    match bytes {
        Some(b) if (2 << 20..=1 << 40).contains(&b) => Ok(()),
        _ => Err(format!("'{value}' is out of range ({allowed})")),
    }
}

/// Checks a scheduler policy name.
pub fn validate_scheduler(value: &str) -> Result<(), String> {
    if SCHEDULERS.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "unknown scheduler '{value}' (allowed: {})",
            SCHEDULERS.join(", ")
        ))
    }
}

/// The uk-app feature of an allocator name.
pub fn allocator_feature(value: &str) -> Result<&'static str, String> {
    ALLOCATORS
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, feature)| *feature)
        .ok_or_else(|| {
            format!(
                "unknown allocator '{value}' (allowed: {})",
                ALLOCATORS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Checks a kernel parameter: `key=value`, no whitespace, no double quote, not `--`.
pub fn validate_kernel_param(param: &str) -> Result<(), String> {
    let ok = param
        .split_once('=')
        .is_some_and(|(k, _)| !k.is_empty() && !k.starts_with('-'))
        && !param.chars().any(|c| c.is_whitespace() || c == '"');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{param}' is not a kernel parameter (allowed: key=value without spaces or quotes)"
        ))
    }
}

impl Manifest {
    /// Reads `[package.metadata.uk]` from the text of a `Cargo.toml`; no such table gives
    /// the empty manifest.
    pub fn from_cargo_toml(text: &str) -> Result<Manifest, String> {
        let doc: toml::Table = toml::from_str(text)
            .map_err(|e| format!("Cargo.toml: {}", e.to_string().replace('\n', " ")))?;
        let uk = doc
            .get("package")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("uk"));
        match uk {
            None => Ok(Manifest::default()),
            Some(toml::Value::Table(table)) => Manifest::from_table(table),
            Some(other) => Err(format!(
                "[package.metadata.uk] must be a table, found {}",
                kind(other)
            )),
        }
    }

    /// Reads and validates the fields of a `[package.metadata.uk]` table.
    pub fn from_table(table: &toml::Table) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        if table.contains_key("board") && table.contains_key("boards") {
            return Err(field_error(
                "board",
                "give either `board` or `boards`, not both",
            ));
        }
        for (key, value) in table {
            match key.as_str() {
                "board" => m.boards = vec![string_of(key, value)?],
                "boards" => {
                    m.boards = strings_of(key, value)?;
                    if m.boards.is_empty() {
                        return Err(field_error(
                            key,
                            format!("empty (allowed: one or more of {})", board_names()),
                        ));
                    }
                }
                "scheduler" => {
                    let s = string_of(key, value)?;
                    validate_scheduler(&s).map_err(|e| field_error(key, e))?;
                    m.scheduler = Some(s);
                }
                "allocator" => {
                    let s = string_of(key, value)?;
                    allocator_feature(&s).map_err(|e| field_error(key, e))?;
                    m.allocator = Some(s);
                }
                "memory" => {
                    let s = match value {
                        toml::Value::Integer(n) => format!("{n}M"),
                        other => string_of(key, other)?,
                    };
                    validate_memory(&s).map_err(|e| field_error(key, e))?;
                    m.memory = Some(s);
                }
                "cpus" => {
                    let n = value
                        .as_integer()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (1..=MAX_CPUS).contains(n));
                    m.cpus = Some(n.ok_or_else(|| {
                        field_error(
                            key,
                            format!(
                                "{} is not allowed (allowed: an integer from 1 to {MAX_CPUS})",
                                match value {
                                    toml::Value::Integer(n) => n.to_string(),
                                    other => kind(other).to_owned(),
                                }
                            ),
                        )
                    })?);
                }
                "kernel-params" => {
                    m.kernel_params = strings_of(key, value)?;
                    for p in &m.kernel_params {
                        validate_kernel_param(p).map_err(|e| field_error(key, e))?;
                        if p.starts_with("sched=") {
                            return Err(field_error(
                                key,
                                "set the scheduler with `scheduler = \"...\"`, not `sched=`",
                            ));
                        }
                    }
                }
                "args" => {
                    m.args = strings_of(key, value)?;
                    crate::qemu::append_line(&m.args).map_err(|e| field_error(key, e))?;
                }
                "initrd" => m.initrd = Some(path_of(key, value, "a file or a directory")?),
                "share" => m.share = Some(path_of(key, value, "a directory")?),
                "rng" => {
                    m.rng = value.as_bool().ok_or_else(|| {
                        field_error(
                            key,
                            format!("expected true or false, found {}", kind(value)),
                        )
                    })?;
                }
                "qemu-args" => m.qemu_args = strings_of(key, value)?,
                "features" => m.features = strings_of(key, value)?,
                other => {
                    return Err(format!(
                        "[package.metadata.uk]: unknown field `{other}` (allowed: {})",
                        FIELDS.join(", ")
                    ));
                }
            }
        }
        for b in &m.boards {
            lookup_board(b).map_err(|e| field_error("boards", e))?;
        }
        Ok(m)
    }

    /// Reads the manifest of the package whose `Cargo.toml` is `path`.
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Manifest::from_cargo_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether the application runs on `board` (every board when none is listed).
    pub fn supports(&self, board: &str) -> bool {
        self.boards.is_empty() || self.boards.iter().any(|b| b == board)
    }

    /// The board to use: the command line's, else the manifest's first, else `x86-pc`.
    /// A board the manifest does not list is refused.
    pub fn choose_board(&self, flag: Option<&str>) -> Result<String, String> {
        match flag {
            Some(b) if !self.supports(b) => Err(format!(
                "board {b} is not among the application's boards ([package.metadata.uk] boards = [{}])",
                self.boards
                    .iter()
                    .map(|b| format!("\"{b}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(b) => Ok(b.to_owned()),
            None => Ok(self
                .boards
                .first()
                .cloned()
                .unwrap_or_else(|| BOARDS[0].name.to_owned())),
        }
    }

    /// Cargo features to build with: the allocator's and the application's own.
    pub fn cargo_features(&self, allocator: Option<&str>) -> Result<Vec<String>, String> {
        let mut features = self.features.clone();
        if let Some(a) = allocator.or(self.allocator.as_deref()) {
            features.push(allocator_feature(a)?.to_owned());
        }
        Ok(features)
    }

    /// Kernel parameters for the command line: the manifest's plus `sched=` for the
    /// scheduler (`scheduler` overrides the manifest's).
    pub fn kernel_params(&self, scheduler: Option<&str>) -> Result<Vec<String>, String> {
        let mut params = self.kernel_params.clone();
        if let Some(s) = scheduler.or(self.scheduler.as_deref()) {
            validate_scheduler(s)?;
            params.push(format!("sched={s}"));
        }
        Ok(params)
    }
}

fn board_names() -> String {
    BOARDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
}

/// The kernel command line from kernel parameters and application arguments:
/// `PARAMS -- ARGS`, `None` when both are empty.
pub fn command_line(params: &[String], args: &[String]) -> Result<Option<String>, String> {
    for p in params {
        validate_kernel_param(p)?;
    }
    let app = crate::qemu::append_line(args)?;
    Ok(match (params.is_empty(), app) {
        (true, app) => app,
        (false, None) => Some(format!("{} --", params.join(" "))),
        (false, Some(app)) => Some(format!("{} {app}", params.join(" "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Manifest, String> {
        Manifest::from_cargo_toml(&format!(
            "[package]\nname = \"app\"\n[package.metadata.uk]\n{body}"
        ))
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"boards = ["qemu-virt", "x86-pc"]
scheduler = "preemptive"
allocator = "buddy"
memory = "128M"
cpus = 2
kernel-params = ["loglevel=debug"]
args = ["one", "two words"]
initrd = "rootfs"
share = "shared"
rng = true
qemu-args = ["-device", "virtio-rng-pci"]
features = ["extra"]"#,
        )
        .unwrap();
        assert!(m.rng);
        assert!(!parse("").unwrap().rng);
        assert_eq!(m.boards, ["qemu-virt", "x86-pc"]);
        assert_eq!(m.cpus, Some(2));
        assert_eq!(m.memory.as_deref(), Some("128M"));
        assert_eq!(m.initrd.as_deref(), Some(Path::new("rootfs")));
        assert_eq!(m.share.as_deref(), Some(Path::new("shared")));
        assert_eq!(m.qemu_args, ["-device", "virtio-rng-pci"]);
        assert_eq!(m.choose_board(None).unwrap(), "qemu-virt");
        assert_eq!(
            m.cargo_features(None).unwrap(),
            ["extra", "uk-app/alloc-buddy"]
        );
        assert_eq!(
            m.cargo_features(Some("region")).unwrap(),
            ["extra", "uk-app/alloc-region"]
        );
        assert_eq!(
            m.kernel_params(None).unwrap(),
            ["loglevel=debug", "sched=preemptive"]
        );
        assert_eq!(
            m.kernel_params(Some("cooperative")).unwrap(),
            ["loglevel=debug", "sched=cooperative"]
        );
        assert!(m.kernel_params(Some("fifo")).is_err());
    }

    #[test]
    fn no_table_is_the_empty_manifest() {
        let m = Manifest::from_cargo_toml("[package]\nname = \"x\"\n").unwrap();
        assert_eq!(m, Manifest::default());
        assert_eq!(m.choose_board(None).unwrap(), "x86-pc");
        assert_eq!(m.choose_board(Some("qemu-virt")).unwrap(), "qemu-virt");
        assert!(m.cargo_features(None).unwrap().is_empty());
        assert!(m.kernel_params(None).unwrap().is_empty());
    }

    #[test]
    fn board_shorthand_and_board_choice() {
        let m = parse("board = \"qemu-virt\"").unwrap();
        assert_eq!(m.boards, ["qemu-virt"]);
        let err = m.choose_board(Some("x86-pc")).unwrap_err();
        assert!(
            err.contains("board x86-pc is not among the application's boards"),
            "{err}"
        );
        let err = parse("board = \"x\"\nboards = [\"x86-pc\"]").unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    fn expect_error(body: &str, needles: &[&str]) {
        let err = parse(body).unwrap_err();
        for needle in needles {
            assert!(err.contains(needle), "{body}: {err}");
        }
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn bad_values_name_the_field_and_what_is_allowed() {
        expect_error(
            "boards = [\"riscv\"]",
            &["boards", "unknown board 'riscv'", "x86-pc, qemu-virt"],
        );
        expect_error("boards = []", &["boards", "empty", "x86-pc, qemu-virt"]);
        expect_error("boards = \"x86-pc\"", &["boards", "array of strings"]);
        expect_error(
            "scheduler = \"fifo\"",
            &["scheduler", "'fifo'", "cooperative, preemptive"],
        );
        expect_error(
            "allocator = \"slab\"",
            &["allocator", "'slab'", "tlsf, buddy, region"],
        );
        expect_error("memory = \"lots\"", &["memory", "'lots'", "64M"]);
        expect_error("memory = \"1M\"", &["memory", "out of range"]);
        expect_error("memory = \"64X\"", &["memory", "unknown unit"]);
        expect_error("cpus = 0", &["cpus", "1 to 64"]);
        expect_error("cpus = 65", &["cpus", "1 to 64"]);
        expect_error("cpus = \"two\"", &["cpus", "1 to 64"]);
        expect_error(
            "kernel-params = [\"loglevel debug\"]",
            &["kernel-params", "key=value"],
        );
        expect_error(
            "kernel-params = [\"sched=x\"]",
            &["kernel-params", "scheduler"],
        );
        expect_error("args = [\"say \\\"hi\\\"\"]", &["args", "double quote"]);
        expect_error("args = [1]", &["args", "an element an integer"]);
        expect_error("initrd = \"\"", &["initrd", "file or a directory"]);
        expect_error("initrd = 3", &["initrd", "expected a string"]);
        expect_error("share = \"\"", &["share", "a directory"]);
        expect_error("share = [\"a\"]", &["share", "expected a string"]);
        expect_error(
            "rng = \"yes\"",
            &["rng", "expected true or false, found a string"],
        );
        expect_error("qemu-args = \"-s\"", &["qemu-args", "array of strings"]);
        expect_error(
            "alocator = \"tlsf\"",
            &["unknown field `alocator`", "allocator", "qemu-args"],
        );
        let err = Manifest::from_cargo_toml("[package.metadata]\nuk = 3\n").unwrap_err();
        assert!(err.contains("must be a table"), "{err}");
    }

    #[test]
    fn memory_sizes() {
        for ok in ["64M", "64m", "2M", "1G", "1024G", "65536K", "128"] {
            assert_eq!(validate_memory(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "M",
            "-1M",
            "1.5G",
            "1025G",
            "2047K",
            "99999999999999999999G",
        ] {
            assert!(validate_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("memory = 256").unwrap().memory.as_deref(),
            Some("256M")
        );
    }

    #[test]
    fn command_lines() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&[], &[]).unwrap(), None);
        assert_eq!(
            command_line(&s(&["sched=cooperative"]), &[])
                .unwrap()
                .unwrap(),
            "sched=cooperative --"
        );
        assert_eq!(
            command_line(&s(&["a=1", "b=2"]), &s(&["x y"]))
                .unwrap()
                .unwrap(),
            "a=1 b=2 -- \"x y\""
        );
        assert_eq!(command_line(&[], &s(&["x"])).unwrap().unwrap(), "-- x");
        assert!(command_line(&s(&["nokey"]), &[]).is_err());
        assert!(command_line(&s(&["--"]), &[]).is_err());
    }
}
