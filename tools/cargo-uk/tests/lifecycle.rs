//! The background-instance lifecycle with real QEMU processes: `run --detach`, `ps`,
//! `logs`, `stop`, `rm`, two instances at once, a name collision, an instance whose guest
//! exits on its own and one whose QEMU is killed from outside.
//!
//! The images are built by cargo-uk itself (helloworld for x86-pc, debug: seconds once the
//! target directory is warm). Long-running instances are QEMU waiting for gdb
//! (`--gdb-port`): they run until they are stopped, whatever the machine's speed.
//! Without `qemu-system-x86_64` on PATH the test says so and checks nothing else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Env {
    state: PathBuf,
    root: PathBuf,
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cargo-uk"))
            .args(args)
            .current_dir(&self.root)
            .env("UK_STATE_DIR", &self.state)
            .env("NO_COLOR", "1")
            .output()
            .expect("run cargo-uk")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cargo uk {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state_of(&self, name: &str) -> String {
        let ps = self.ok(&["ps"]);
        let line = ps
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not in ps:\n{ps}"));
        // STATE is the third column and may hold spaces: "exited (0)".
        let cols: Vec<&str> = line.split("  ").filter(|c| !c.trim().is_empty()).collect();
        cols[2].trim().to_owned()
    }

    fn wait_state(&self, name: &str, want: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let state = self.state_of(name);
            if state.starts_with(want) || Instant::now() > end {
                return state;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn qemu_pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.state.join("instances").join(name).join("qemu.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[test]
fn detached_instances_lifecycle() {
    if !on_path("qemu-system-x86_64") {
        eprintln!("qemu-system-x86_64 is not installed: lifecycle not tested");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let env = Env {
        state: std::env::temp_dir().join(format!("cargo-uk-lifecycle-{}", std::process::id())),
        root: root.canonicalize().unwrap(),
    };
    let _ = std::fs::remove_dir_all(&env.state);

    // An instance whose guest exits at once: it shows as exited with the guest's code.
    let name = env.ok(&["run", "--detach", "--no-kvm", "--", "one"]);
    assert_eq!(name.trim(), "helloworld-1");
    let state = env.wait_state("helloworld-1", "exited", Duration::from_secs(60));
    assert_eq!(state, "exited (0)");
    let logs = env.ok(&["logs", "helloworld-1"]);
    assert!(logs.contains("Hello from uk-rs on x86-pc"), "{logs}");
    assert!(logs.contains(r#"args: ["one"]"#), "{logs}");
    // logs -f of an ended instance prints everything and returns.
    assert_eq!(env.ok(&["logs", "-f", "helloworld-1"]), logs);

    // logs -f started while the guest may still be running waits for its end.
    env.ok(&["run", "-d", "--name", "follow", "--no-kvm"]);
    let followed = env.ok(&["logs", "-f", "follow"]);
    assert!(followed.contains("first instruction to main"), "{followed}");
    assert!(env.state_of("follow").starts_with("exited"));
    env.ok(&["rm", "follow"]);

    // Two long-running instances at once (QEMU waiting for gdb).
    let (p1, p2) = (free_port(), free_port());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "long",
        "--no-kvm",
        "--gdb-port",
        &p1.to_string(),
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--no-kvm",
        "--gdb-port",
        &p2.to_string(),
    ]);
    assert_eq!(
        env.wait_state("long", "running", Duration::from_secs(10)),
        "running"
    );
    assert_eq!(
        env.wait_state("other", "running", Duration::from_secs(10)),
        "running"
    );
    let ps = env.ok(&["ps"]);
    assert!(ps.starts_with("NAME"), "{ps}");
    let long = ps.lines().find(|l| l.starts_with("long ")).unwrap();
    assert!(
        long.contains("x86-pc/pc") && long.contains("64M") && long.contains("helloworld"),
        "{long}"
    );

    // A name in use is refused before anything is built or started.
    let out = env.run(&["run", "-d", "--name", "long"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("an instance named 'long' already exists (state: running)"),
        "{err}"
    );

    // rm refuses a running instance; stop ends it; then rm removes it.
    let out = env.run(&["rm", "long"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is running"));
    let pid = env.qemu_pid("long");
    assert_eq!(env.ok(&["stop", "long"]).trim(), "long: stopped");
    assert_eq!(env.state_of("long"), "stopped");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} still runs"
    );
    let out = env.run(&["stop", "long"]);
    assert_eq!(out.status.code(), Some(2));
    env.ok(&["rm", "long"]);
    assert!(!env.ok(&["ps"]).contains("long"));

    // QEMU killed from outside: the supervisor records how it died.
    let pid = env.qemu_pid("other");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let state = env.wait_state("other", "failed", Duration::from_secs(10));
    assert_eq!(state, "failed (QEMU died of signal 9)");
    env.ok(&["rm", "other"]);

    // rm --force stops a running one.
    let p3 = free_port();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "forced",
        "--no-kvm",
        "--gdb-port",
        &p3.to_string(),
    ]);
    assert_eq!(
        env.wait_state("forced", "running", Duration::from_secs(10)),
        "running"
    );
    let pid = env.qemu_pid("forced");
    assert_eq!(
        env.ok(&["rm", "--force", "forced"]).trim(),
        "removed forced"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} still runs"
    );

    env.ok(&["rm", "helloworld-1"]);
    assert_eq!(
        env.ok(&["ps"]),
        "NAME  BOARD  STATE  UPTIME  MEMORY  IMAGE\n"
    );
    let _ = std::fs::remove_dir_all(&env.state);
}
