//! Background instances: `cargo uk run --detach`, `ps`, `logs`, `stop`, `rm`.
//!
//! Each instance is a directory `<state>/instances/<name>/` where `<state>` is
//! `$UK_STATE_DIR`, else `$XDG_STATE_HOME/uk-rs`, else `~/.local/state/uk-rs`:
//!
//! | file | written by | content |
//! |---|---|---|
//! | `instance.json` | `run --detach` | name, board, configuration, image, memory, QEMU command line, start time |
//! | `supervisor.pid` | `run --detach` | the supervisor's process id |
//! | `qemu.pid` | supervisor | QEMU's process id, once started |
//! | `console.log` | QEMU | the guest console (QEMU's standard output) |
//! | `qemu-stderr.log` | QEMU | QEMU's own messages |
//! | `exit.json` | supervisor | how QEMU ended, the guest's exit code, the end time |
//! | `stop-requested` | `stop` | marks an instance ended on request |
//! | `image.elf` | `run --detach` | the instance's own copy of the image |
//! | `supervisor.log` | supervisor | why the supervisor failed, if it did |
//!
//! QEMU is not started by `run --detach` itself but by a supervisor: `cargo-uk` started
//! again as `cargo-uk __supervise DIR` in a process group of its own (so the terminal's
//! Ctrl-C does not reach it). The supervisor is QEMU's parent, so it learns QEMU's exit
//! status with `wait` whatever ends QEMU (the guest exiting, a crash, a signal from outside)
//! and writes it to `exit.json` (written to a temporary file and renamed, so it is either
//! there whole or not at all). The state shown by `ps` follows from the files:
//! `exit.json` present means exited (or stopped, when `stop-requested` is there); else a
//! live supervisor means running; else the supervisor was killed and the state is `lost`.
//! A process id is only believed when `/proc/PID/cmdline` still names that process (ids
//! are reused).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::UsageError;
use crate::boards::lookup_board;
use crate::process::{Ending, ending_of};
use crate::qemu;
use crate::style::{Color, paint};

/// Environment variable that overrides the state directory (tests use it).
pub const STATE_ENV: &str = "UK_STATE_DIR";

/// What `run --detach` records about an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Instance name.
    pub name: String,
    /// Board name.
    pub board: String,
    /// Configuration (variant) name.
    pub variant: String,
    /// Image label (example or application name).
    pub image: String,
    /// Path of the image file.
    pub kernel: PathBuf,
    /// Guest memory (QEMU `-m`).
    pub memory: String,
    /// QEMU binary.
    pub qemu: String,
    /// QEMU arguments.
    pub args: Vec<String>,
    /// Start time, seconds since the Unix epoch.
    pub started: u64,
}

/// What the supervisor records when QEMU ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// QEMU's exit status, when it exited.
    pub status: Option<i32>,
    /// The signal that ended QEMU, when one did.
    pub signal: Option<i32>,
    /// The guest's exit code, when QEMU's status carries one.
    pub guest_code: Option<i32>,
    /// Why there is no guest exit code (QEMU's error, a signal).
    pub failure: Option<String>,
    /// End time, seconds since the Unix epoch.
    pub ended: u64,
}

/// The state of an instance, as `ps` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// QEMU is being started.
    Starting,
    /// QEMU is running.
    Running,
    /// Ended by `cargo uk stop`.
    Stopped,
    /// QEMU ended on its own: the guest's exit code, or why there is none.
    Exited(Result<i32, String>),
    /// The supervisor is gone and left no exit status.
    Lost,
}

impl State {
    /// Whether QEMU may still be running.
    pub fn is_running(&self) -> bool {
        matches!(self, State::Starting | State::Running)
    }

    /// Short text for `ps`.
    pub fn text(&self) -> String {
        match self {
            State::Starting => "starting".into(),
            State::Running => "running".into(),
            State::Stopped => "stopped".into(),
            State::Exited(Ok(code)) => format!("exited ({code})"),
            State::Exited(Err(why)) => format!("failed ({why})"),
            State::Lost => "lost".into(),
        }
    }

    fn color(&self) -> Color {
        match self {
            State::Starting | State::Running => Color::Green,
            State::Stopped => Color::Dim,
            State::Exited(Ok(0)) => Color::Bold,
            State::Exited(_) | State::Lost => Color::Red,
        }
    }
}

/// The state directory from the environment (`UK_STATE_DIR`, `XDG_STATE_HOME`, `HOME`).
pub fn state_dir_from(
    uk_state: Option<&std::ffi::OsStr>,
    xdg_state: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, String> {
    let set = |v: Option<&std::ffi::OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(uk_state) {
        return Ok(dir);
    }
    if let Some(dir) = set(xdg_state) {
        return Ok(dir.join("uk-rs"));
    }
    if let Some(home) = set(home) {
        return Ok(home.join(".local/state/uk-rs"));
    }
    Err("no state directory: set UK_STATE_DIR, XDG_STATE_HOME or HOME".into())
}

/// Where instances live: `<state>/instances`.
pub fn instances_dir() -> Result<PathBuf> {
    let state = state_dir_from(
        std::env::var_os(STATE_ENV).as_deref(),
        std::env::var_os("XDG_STATE_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
    .map_err(|e| anyhow!(e))?;
    Ok(state.join("instances"))
}

/// Checks an instance name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad instance name '{name}' (allowed: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-')"
        ))
    }
}

/// The first `<label>-<n>` (n = 1, 2, ...) not in `taken`.
pub fn free_name(label: &str, taken: &[String]) -> String {
    (1..)
        .map(|n| format!("{label}-{n}"))
        .find(|name| !taken.contains(name))
        .unwrap_or_else(|| label.to_owned())
}

/// The names of existing instances, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("instance.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Formats a duration in seconds as `45s`, `3m05s`, `2h03m`, `1d02h`.
pub fn format_uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Whether process `pid` is alive and its command line contains `needle`.
pub fn process_matches(pid: u32, needle: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The state letter follows the parenthesised command name.
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X');
    alive && String::from_utf8_lossy(&cmdline).contains(needle)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One instance directory.
#[derive(Clone, Debug)]
pub struct Instance {
    /// Its directory.
    pub dir: PathBuf,
    /// What `run --detach` recorded.
    pub record: Record,
}

impl Instance {
    /// Opens instance `name` under `dir`; an unknown name is a usage error listing the known.
    pub fn open(dir: &Path, name: &str) -> Result<Instance> {
        validate_name(name).map_err(UsageError)?;
        let path = dir.join(name);
        let text = match std::fs::read_to_string(path.join("instance.json")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let known = names(dir);
                let known = if known.is_empty() {
                    "there are none".to_owned()
                } else {
                    format!("instances: {}", known.join(", "))
                };
                return Err(UsageError(format!("no instance named '{name}' ({known})")).into());
            }
            Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
        };
        let record: Record = serde_json::from_str(&text)
            .with_context(|| format!("{}/instance.json is damaged", path.display()))?;
        Ok(Instance { dir: path, record })
    }

    /// The exit record, once QEMU has ended.
    pub fn exit(&self) -> Option<Exit> {
        let text = std::fs::read_to_string(self.dir.join("exit.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn supervisor_alive(&self) -> bool {
        read_pid(&self.dir.join("supervisor.pid"))
            .is_some_and(|pid| process_matches(pid, "__supervise"))
    }

    /// QEMU's process id, when it is alive.
    pub fn qemu_pid(&self) -> Option<u32> {
        read_pid(&self.dir.join("qemu.pid")).filter(|&pid| process_matches(pid, &self.record.qemu))
    }

    /// The current state.
    pub fn state(&self) -> State {
        if let Some(exit) = self.exit() {
            if self.dir.join("stop-requested").exists() {
                return State::Stopped;
            }
            return State::Exited(match (exit.guest_code, exit.failure) {
                (Some(code), _) => Ok(code),
                (None, Some(why)) => Err(why),
                (None, None) => Err("unknown".into()),
            });
        }
        if self.supervisor_alive() {
            if self.dir.join("qemu.pid").exists() {
                State::Running
            } else {
                State::Starting
            }
        } else {
            State::Lost
        }
    }

    /// Seconds it has run (until now, or until it ended).
    pub fn uptime(&self) -> u64 {
        let end = self.exit().map_or_else(now, |e| e.ended);
        end.saturating_sub(self.record.started)
    }

    /// Ends a running instance: SIGTERM to QEMU, SIGKILL after `grace`. Returns once the
    /// supervisor has written the exit status (or the processes are gone).
    pub fn stop(&self, grace: Duration) -> Result<()> {
        std::fs::write(self.dir.join("stop-requested"), b"")
            .with_context(|| format!("cannot write in {}", self.dir.display()))?;
        let Some(pid) = self.qemu_pid() else {
            // Starting, or QEMU already gone: wait for the supervisor to notice.
            self.wait_for_exit(grace);
            return Ok(());
        };
        signal(pid, libc::SIGTERM);
        if !self.wait_for_exit(grace) {
            signal(pid, libc::SIGKILL);
            self.wait_for_exit(Duration::from_secs(5));
        }
        Ok(())
    }

    fn wait_for_exit(&self, limit: Duration) -> bool {
        let end = std::time::Instant::now() + limit;
        loop {
            if self.exit().is_some() || !self.supervisor_alive() {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) only sends a signal; `pid` was checked against /proc just before
        // (it is the instance's QEMU), so it names the process meant.
        unsafe { libc::kill(pid, sig) };
    }
}

fn name_taken(dir: &Path, name: &str) -> anyhow::Error {
    let state =
        Instance::open(dir, name).map_or_else(|_| "unknown".to_owned(), |i| i.state().text());
    UsageError(format!(
        "an instance named '{name}' already exists (state: {state}); choose another --name or remove it with `cargo uk rm {name}`"
    ))
    .into()
}

/// Refuses a name already in use (checked again, atomically, by [`create`]).
pub fn check_free(dir: &Path, name: &str) -> Result<()> {
    if dir.join(name).exists() {
        return Err(name_taken(dir, name));
    }
    Ok(())
}

/// Creates the directory of a new instance; an existing name is refused.
pub fn create(dir: &Path, record: &Record) -> Result<Instance> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(&record.name);
    match std::fs::create_dir(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(name_taken(dir, &record.name));
        }
        Err(e) => return Err(anyhow!("cannot create {}: {e}", path.display())),
    }
    let json = serde_json::to_vec_pretty(record)?;
    write_atomic(&path.join("instance.json"), &json)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Instance {
        dir: path,
        record: record.clone(),
    })
}

/// Starts the supervisor of `instance` (this program again, `__supervise DIR`) in a
/// process group of its own, and waits until QEMU runs or has already ended.
pub fn spawn_supervisor(instance: &Instance) -> Result<State> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the cargo-uk executable")?;
    let child = std::process::Command::new(exe)
        .arg("__supervise")
        .arg(&instance.dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the instance's supervisor")?;
    std::fs::write(
        instance.dir.join("supervisor.pid"),
        child.id().to_string().as_bytes(),
    )?;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = instance.state();
        let settled = !matches!(state, State::Starting | State::Lost);
        if settled || std::time::Instant::now() >= end {
            // Give a QEMU that fails at once (a bad option) time to say so.
            if state == State::Running {
                std::thread::sleep(Duration::from_millis(300));
                return Ok(instance.state());
            }
            return Ok(state);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hidden `__supervise DIR` subcommand: starts QEMU as the instance's record says, its
/// output into the instance's log files, waits for it and writes `exit.json`.
pub fn supervise(dir: &Path) -> Result<()> {
    let text = std::fs::read_to_string(dir.join("instance.json"))?;
    let record: Record = serde_json::from_str(&text)?;
    let console = std::fs::File::create(dir.join("console.log"))?;
    let stderr = std::fs::File::create(dir.join("qemu-stderr.log"))?;
    let spawned = std::process::Command::new(&record.qemu)
        .args(&record.args)
        .stdin(std::process::Stdio::null())
        .stdout(console)
        .stderr(stderr)
        .spawn();
    let (ending, failure) = match spawned {
        Ok(mut child) => {
            write_atomic(&dir.join("qemu.pid"), child.id().to_string().as_bytes())?;
            let status = child.wait()?;
            (Some(ending_of(status)), None)
        }
        Err(e) => (None, Some(format!("cannot start {}: {e}", record.qemu))),
    };
    let stderr_text = std::fs::read_to_string(dir.join("qemu-stderr.log")).unwrap_or_default();
    let exit = exit_record(&record, ending, failure, &stderr_text, now());
    write_atomic(&dir.join("exit.json"), &serde_json::to_vec_pretty(&exit)?)?;
    Ok(())
}

/// The exit record from how QEMU ended.
pub fn exit_record(
    record: &Record,
    ending: Option<Ending>,
    failure: Option<String>,
    stderr: &str,
    ended: u64,
) -> Exit {
    let mut exit = Exit {
        status: None,
        signal: None,
        guest_code: None,
        failure,
        ended,
    };
    let Some(ending) = ending else {
        return exit;
    };
    match ending {
        Ending::Exited(s) => exit.status = Some(s),
        Ending::Signaled(s) => exit.signal = Some(s),
        Ending::TimedOut => {}
    }
    match lookup_board(&record.board) {
        Ok(board) => match qemu::guest_exit(board, ending, stderr) {
            Ok(code) => exit.guest_code = Some(code),
            Err(f) => exit.failure = Some(f.to_string()),
        },
        Err(e) => exit.failure = Some(e),
    }
    exit
}

/// The `ps` table.
pub fn ps_table(rows: &[(String, String, State, u64, String, String)], colors: bool) -> String {
    let header = ["NAME", "BOARD", "STATE", "UPTIME", "MEMORY", "IMAGE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|(name, board, state, up, mem, image)| {
            [
                name.clone(),
                board.clone(),
                state.text(),
                format_uptime(*up),
                mem.clone(),
                image.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6], state: Option<&State>| {
        let mut text = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let padded = format!("{c:<w$}");
            match (i, state) {
                (2, Some(s)) => text.push_str(&paint(&padded, s.color(), colors)),
                _ => text.push_str(&padded),
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header, None);
    for (row, cells) in rows.iter().zip(&cells) {
        line(cells.each_ref().map(String::as_str), Some(&row.2));
    }
    out
}

/// `cargo uk ps`.
pub fn cmd_ps() -> Result<()> {
    let dir = instances_dir()?;
    let mut rows = Vec::new();
    for name in names(&dir) {
        let Ok(inst) = Instance::open(&dir, &name) else {
            continue;
        };
        let board = format!("{}/{}", inst.record.board, inst.record.variant);
        rows.push((
            name,
            board,
            inst.state(),
            inst.uptime(),
            inst.record.memory.clone(),
            inst.record.image.clone(),
        ));
    }
    print!("{}", ps_table(&rows, crate::style::stdout_colors()));
    Ok(())
}

/// `cargo uk logs NAME [-f]`: the guest console; with `follow`, waits for more until the
/// instance ends. QEMU's own messages follow once it has ended.
pub fn cmd_logs(name: &str, follow: bool) -> Result<()> {
    let inst = Instance::open(&instances_dir()?, name)?;
    let path = inst.dir.join("console.log");
    let mut out = std::io::stdout().lock();
    let mut pos = 0u64;
    let mut buf = Vec::new();
    // An image with a defmt table logged binary frames: decode them into text.
    let mut decoder =
        crate::defmt::ConsoleDecoder::for_image(&inst.record.kernel, crate::style::stdout_colors())
            .ok()
            .flatten();
    loop {
        // Read whether it has ended before reading the file, so nothing written before the
        // end is missed.
        let ended = !inst.state().is_running();
        if let Ok(mut file) = std::fs::File::open(&path) {
            file.seek(SeekFrom::Start(pos))?;
            buf.clear();
            file.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            match &mut decoder {
                Some(d) => out.write_all(&d.feed(&buf))?,
                None => out.write_all(&buf)?,
            }
            out.flush()?;
        }
        if !follow || ended {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !inst.state().is_running() {
        let stderr = std::fs::read_to_string(inst.dir.join("qemu-stderr.log")).unwrap_or_default();
        if !stderr.trim().is_empty() {
            writeln!(out, "[QEMU standard error]")?;
            out.write_all(stderr.as_bytes())?;
        }
    }
    Ok(())
}

/// `cargo uk stop NAME`.
pub fn cmd_stop(name: &str) -> Result<()> {
    let inst = Instance::open(&instances_dir()?, name)?;
    let state = inst.state();
    if !state.is_running() {
        bail!(UsageError(format!(
            "instance '{name}' is not running ({})",
            state.text()
        )));
    }
    inst.stop(Duration::from_secs(5))?;
    println!("{name}: {}", inst.state().text());
    Ok(())
}

/// `cargo uk rm NAME [--force]`.
pub fn cmd_rm(name: &str, force: bool) -> Result<()> {
    let inst = Instance::open(&instances_dir()?, name)?;
    let state = inst.state();
    if state.is_running() {
        if !force {
            bail!(UsageError(format!(
                "instance '{name}' is running; stop it with `cargo uk stop {name}` or pass --force"
            )));
        }
        inst.stop(Duration::from_secs(5))?;
    } else if state == State::Lost {
        // The supervisor was killed: QEMU may be alive without a parent that waits for it.
        if let Some(pid) = inst.qemu_pid() {
            if !force {
                bail!(UsageError(format!(
                    "instance '{name}' lost its supervisor but QEMU (pid {pid}) still runs; pass --force to kill it"
                )));
            }
            signal(pid, libc::SIGKILL);
        }
    }
    std::fs::remove_dir_all(&inst.dir)
        .with_context(|| format!("cannot remove {}", inst.dir.display()))?;
    println!("removed {name}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_directory_choice() {
        let s = |v: &str| Some(std::ffi::OsStr::new(v).to_owned());
        assert_eq!(
            state_dir_from(s("/u").as_deref(), s("/x").as_deref(), s("/h").as_deref()).unwrap(),
            Path::new("/u")
        );
        assert_eq!(
            state_dir_from(None, s("/x").as_deref(), s("/h").as_deref()).unwrap(),
            Path::new("/x/uk-rs")
        );
        assert_eq!(
            state_dir_from(s("").as_deref(), None, s("/h").as_deref()).unwrap(),
            Path::new("/h/.local/state/uk-rs")
        );
        assert!(state_dir_from(None, None, None).is_err());
    }

    #[test]
    fn names_are_checked_and_generated() {
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("a.b_c").is_ok());
        for bad in ["", "-x", ".x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(free_name("hello", &[]), "hello-1");
        assert_eq!(
            free_name("hello", &["hello-1".into(), "hello-3".into()]),
            "hello-2"
        );
    }

    #[test]
    fn uptimes() {
        assert_eq!(format_uptime(5), "5s");
        assert_eq!(format_uptime(65), "1m05s");
        assert_eq!(format_uptime(3 * 3600 + 120), "3h02m");
        assert_eq!(format_uptime(86400 + 7200), "1d02h");
    }

    fn record(board: &str) -> Record {
        Record {
            name: "n".into(),
            board: board.into(),
            variant: "pc".into(),
            image: "helloworld".into(),
            kernel: "/k".into(),
            memory: "64M".into(),
            qemu: "qemu-system-x86_64".into(),
            args: vec![],
            started: 100,
        }
    }

    #[test]
    fn exit_records_decode_the_guest_code() {
        let r = record("x86-pc");
        let e = exit_record(&r, Some(Ending::Exited(7)), None, "", 200);
        assert_eq!(
            (e.status, e.guest_code, e.failure),
            (Some(7), Some(3), None)
        );
        let e = exit_record(&r, Some(Ending::Signaled(15)), None, "", 200);
        assert_eq!(e.signal, Some(15));
        assert_eq!(e.failure.as_deref(), Some("QEMU died of signal 15"));
        let e = exit_record(&r, None, Some("cannot start".into()), "", 200);
        assert_eq!(e.failure.as_deref(), Some("cannot start"));
        let e = exit_record(
            &record("qemu-virt"),
            Some(Ending::Exited(1)),
            None,
            "qemu-system-aarch64: -m x: bad\n",
            200,
        );
        assert!(e.failure.unwrap().contains("QEMU failed"));
    }

    #[test]
    fn state_files_make_the_state() {
        let dir = std::env::temp_dir().join(format!("cargo-uk-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let inst = create(&dir, &record("x86-pc")).unwrap();
        // No supervisor ever ran: lost.
        assert_eq!(inst.state(), State::Lost);
        // A second instance of the same name is refused.
        let err = create(&dir, &record("x86-pc")).unwrap_err().to_string();
        assert!(err.contains("already exists (state: lost)"), "{err}");
        // The supervisor's pid is this test process, whose cmdline does not say __supervise.
        std::fs::write(
            inst.dir.join("supervisor.pid"),
            std::process::id().to_string(),
        )
        .unwrap();
        assert_eq!(inst.state(), State::Lost);
        let exit = exit_record(&inst.record, Some(Ending::Exited(3)), None, "", 160);
        std::fs::write(
            inst.dir.join("exit.json"),
            serde_json::to_vec(&exit).unwrap(),
        )
        .unwrap();
        assert_eq!(inst.state(), State::Exited(Ok(1)));
        assert_eq!(inst.uptime(), 60);
        std::fs::write(inst.dir.join("stop-requested"), "").unwrap();
        assert_eq!(inst.state(), State::Stopped);
        assert_eq!(names(&dir), ["n"]);
        let err = Instance::open(&dir, "other").unwrap_err().to_string();
        assert_eq!(err, "no instance named 'other' (instances: n)");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ps_table_layout() {
        let rows = vec![
            (
                "hello-1".to_owned(),
                "x86-pc/pc".to_owned(),
                State::Exited(Ok(0)),
                2,
                "64M".to_owned(),
                "helloworld".to_owned(),
            ),
            (
                "t".to_owned(),
                "qemu-virt/max".to_owned(),
                State::Running,
                75,
                "128M".to_owned(),
                "ktest".to_owned(),
            ),
        ];
        assert_eq!(
            ps_table(&rows, false),
            "NAME     BOARD          STATE       UPTIME  MEMORY  IMAGE\n\
             hello-1  x86-pc/pc      exited (0)  2s      64M     helloworld\n\
             t        qemu-virt/max  running     1m15s   128M    ktest\n"
        );
        assert!(ps_table(&rows, true).contains("\x1b[32mrunning"));
    }
}
