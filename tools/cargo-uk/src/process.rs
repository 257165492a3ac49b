//! Running a child process (QEMU) with a time limit, capturing what it prints.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where the child's standard streams go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Standard input and output are the terminal's (the guest console is interactive);
    /// standard error is copied to ours as it comes and also kept.
    Interactive,
    /// No input; standard output and error are kept (nothing is shown while it runs).
    Captured,
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status.
    Exited(i32),
    /// A signal it did not expect ended it (number, or -1 when unknown).
    Signaled(i32),
    /// It ran past the time limit and was killed.
    TimedOut,
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// Its standard output (empty for [`Io::Interactive`]).
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Wall-clock time from start to end.
    pub elapsed: Duration,
}

/// Turns what the child writes on standard output into what is shown and kept (the defmt
/// decoder of `cargo uk run`); called with each chunk as it arrives.
pub type Filter = Box<dyn FnMut(&[u8]) -> Vec<u8> + Send>;

/// Where a reader copies what it reads as it comes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Echo {
    None,
    Stdout,
    Stderr,
}

fn reader<R: Read + Send + 'static>(
    mut source: R,
    echo: Echo,
    mut filter: Option<Filter>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let filtered;
                    let bytes = match &mut filter {
                        Some(f) => {
                            filtered = f(&buf[..n]);
                            &filtered[..]
                        }
                        None => &buf[..n],
                    };
                    kept.extend_from_slice(bytes);
                    match echo {
                        Echo::None => {}
                        Echo::Stdout => {
                            let mut out = io::stdout().lock();
                            let _ = out.write_all(bytes);
                            let _ = out.flush();
                        }
                        Echo::Stderr => {
                            let mut err = io::stderr().lock();
                            let _ = err.write_all(bytes);
                            let _ = err.flush();
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    })
}

/// How a process that ended with `status` ended.
pub fn ending_of(status: ExitStatus) -> Ending {
    if let Some(code) = status.code() {
        return Ending::Exited(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ending::Signaled(sig);
        }
    }
    Ending::Signaled(-1)
}

/// Ends `child` after a time-out. An interactive QEMU owns the terminal's mode, so it gets
/// SIGTERM first (it then restores the terminal) and SIGKILL only if it is still there after
/// a grace period; a captured one is killed at once.
fn stop(child: &mut Child, io: Io) {
    #[cfg(unix)]
    if io == Io::Interactive {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) only sends a signal; `pid` is our own unreaped child, so the id
            // cannot have been reused by another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let grace = Instant::now() + Duration::from_secs(3);
            while Instant::now() < grace {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = io;
    let _ = child.kill();
}

/// Runs `program args...` until it exits or `timeout` passes (then it is killed and the
/// outcome is [`Ending::TimedOut`]). Fails only when the program cannot be started.
pub fn run(
    program: &str,
    args: &[OsString],
    io: Io,
    timeout: Option<Duration>,
) -> io::Result<Outcome> {
    run_filtered(program, args, io, timeout, None)
}

/// [`run`] with the child's standard output passed through `filter` (for
/// [`Io::Interactive`] it is then piped through us to our standard output, the input
/// staying the terminal's).
pub fn run_filtered(
    program: &str,
    args: &[OsString],
    io: Io,
    timeout: Option<Duration>,
    filter: Option<Filter>,
) -> io::Result<Outcome> {
    let mut command = Command::new(program);
    command.args(args).stderr(Stdio::piped());
    match (io, filter.is_some()) {
        (Io::Interactive, false) => command.stdin(Stdio::inherit()).stdout(Stdio::inherit()),
        (Io::Interactive, true) => command.stdin(Stdio::inherit()).stdout(Stdio::piped()),
        (Io::Captured, _) => command.stdin(Stdio::null()).stdout(Stdio::piped()),
    };
    let start = Instant::now();
    let mut child = command.spawn()?;
    let out_echo = if io == Io::Interactive {
        Echo::Stdout
    } else {
        Echo::None
    };
    let out_reader = child.stdout.take().map(|s| reader(s, out_echo, filter));
    let err_echo = if io == Io::Interactive {
        Echo::Stderr
    } else {
        Echo::None
    };
    let err_reader = child.stderr.take().map(|s| reader(s, err_echo, None));
    let deadline = timeout.map(|t| start + t);
    let ending = loop {
        if let Some(status) = child.try_wait()? {
            break ending_of(status);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop(&mut child, io);
            let _ = child.wait();
            break Ending::TimedOut;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let collect = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    Ok(Outcome {
        ending,
        stdout: collect(out_reader),
        stderr: collect(err_reader),
        elapsed,
    })
}

/// `true` when `program` can be found on `PATH` (or is a path to an existing file).
pub fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["-c".into(), script.into()]
    }

    #[test]
    fn captures_output_and_status() {
        let out = run(
            "sh",
            &sh("echo out; echo err >&2; exit 3"),
            Io::Captured,
            None,
        )
        .unwrap();
        assert_eq!(out.ending, Ending::Exited(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn kills_a_hung_child() {
        let limit = Duration::from_millis(300);
        let out = run(
            "sh",
            &sh("echo started; exec sleep 30"),
            Io::Captured,
            Some(limit),
        )
        .unwrap();
        assert_eq!(out.ending, Ending::TimedOut);
        assert_eq!(out.stdout, "started\n");
        assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    }

    #[test]
    fn filters_standard_output() {
        let upper: Filter = Box::new(|b: &[u8]| b.to_ascii_uppercase());
        let out = run_filtered(
            "sh",
            &sh("echo quiet; echo err >&2"),
            Io::Captured,
            None,
            Some(upper),
        )
        .unwrap();
        assert_eq!(out.stdout, "QUIET\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn reports_a_signal() {
        let out = run("sh", &sh("kill -9 $$"), Io::Captured, None).unwrap();
        assert_eq!(out.ending, Ending::Signaled(9));
    }

    #[test]
    fn missing_program_is_an_error() {
        assert!(run("/nonexistent/qemu", &[], Io::Captured, None).is_err());
        assert!(!on_path("/nonexistent/qemu"));
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-a-program-uk-rs"));
    }
}
