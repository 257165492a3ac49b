//! Command-line behaviour of the built `cargo-uk` binary: bad input gives one `error:` line
//! and a non-zero status, never a panic or backtrace.

use std::process::{Command, Output};

fn cargo_uk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-uk"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run cargo-uk")
}

/// Asserts a one-line `error: ...` on standard error, containing `needle`, and returns the
/// exit status.
fn one_line_error(out: &Output, needle: &str) -> i32 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.status.code().expect("exit status")
}

#[test]
fn unknown_board() {
    for cmd in ["build", "run", "test"] {
        let out = cargo_uk(&[cmd, "--board", "riscv-virt"]);
        let code = one_line_error(
            &out,
            "unknown board 'riscv-virt' (known boards: x86-pc, qemu-virt)",
        );
        assert_eq!(code, 2, "{cmd}");
    }
}

#[test]
fn unknown_variant() {
    let out = cargo_uk(&["run", "--board", "qemu-virt", "--variant", "microvm"]);
    let code = one_line_error(&out, "unknown variant 'microvm' for board qemu-virt");
    assert_eq!(code, 2);
}

#[test]
fn kvm_for_the_arm_board_is_refused() {
    let out = cargo_uk(&["run", "--board", "qemu-virt", "--kvm"]);
    assert_eq!(one_line_error(&out, "--kvm works only for board x86-pc"), 2);
}

#[test]
fn argument_with_a_double_quote_is_refused() {
    let out = cargo_uk(&["run", "--", "say \"hi\""]);
    assert_eq!(one_line_error(&out, "double quote"), 2);
}

#[test]
fn unknown_example() {
    // Inside the workspace this is "unknown example"; if the workspace cannot be read it
    // is that error instead: either way one line and a failure status.
    let out = cargo_uk(&["build", "--example", "no-such-example"]);
    let code = one_line_error(&out, "");
    assert!(code == 1 || code == 2, "{code}");
}

#[test]
fn bad_option_values_are_one_line() {
    let out = cargo_uk(&["run", "--smp", "zero"]);
    assert_eq!(one_line_error(&out, "invalid value 'zero'"), 2);
    let out = cargo_uk(&["frobnicate"]);
    assert_eq!(one_line_error(&out, "frobnicate"), 2);
}

#[test]
fn help_and_version() {
    let out = cargo_uk(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["build", "run", "test"] {
        assert!(help.contains(cmd), "{help}");
    }
    // As an installed cargo subcommand, cargo passes `uk` first.
    let out = cargo_uk(&["uk", "--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cargo-uk 0.1.0"
    );
}

#[test]
fn instance_commands_reject_bad_and_unknown_names() {
    let state = std::env::temp_dir().join(format!("cargo-uk-cli-state-{}", std::process::id()));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cargo-uk"))
            .args(args)
            .env("UK_STATE_DIR", &state)
            .output()
            .expect("run cargo-uk")
    };
    for cmd in ["logs", "stop", "rm"] {
        let out = run(&[cmd, "nobody"]);
        assert_eq!(
            one_line_error(&out, "no instance named 'nobody' (there are none)"),
            2,
            "{cmd}"
        );
        let out = run(&[cmd, "../etc"]);
        assert_eq!(
            one_line_error(&out, "bad instance name '../etc'"),
            2,
            "{cmd}"
        );
        let out = run(&[cmd]);
        assert_eq!(one_line_error(&out, "required"), 2, "{cmd}");
    }
    let out = run(&["run", "--detach", "--name", "a b"]);
    assert_eq!(one_line_error(&out, "bad instance name 'a b'"), 2);
    let out = run(&["run", "--name", "x"]);
    assert_eq!(one_line_error(&out, "--detach"), 2);
    let out = run(&["ps"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "NAME  BOARD  STATE  UPTIME  MEMORY  IMAGE\n"
    );
}

#[test]
fn bad_run_options_name_what_is_allowed() {
    let out = cargo_uk(&["run", "--mem", "lots"]);
    assert_eq!(one_line_error(&out, "--mem: 'lots' is not a size"), 2);
    let out = cargo_uk(&["run", "--scheduler", "fifo"]);
    assert_eq!(
        one_line_error(
            &out,
            "--scheduler: unknown scheduler 'fifo' (allowed: cooperative, preemptive)"
        ),
        2
    );
    let out = cargo_uk(&["build", "--allocator", "slab"]);
    assert_eq!(
        one_line_error(
            &out,
            "--allocator: unknown allocator 'slab' (allowed: tlsf, buddy, region)"
        ),
        2
    );
    let out = cargo_uk(&["run", "--gdb-port", "70000"]);
    assert_eq!(one_line_error(&out, "70000"), 2);
}

#[test]
fn new_refuses_bad_names_and_existing_directories() {
    let out = cargo_uk(&["new", "2fast"]);
    assert_eq!(one_line_error(&out, "bad application name '2fast'"), 2);
    let out = cargo_uk(&["new", "uk-thing"]);
    assert_eq!(one_line_error(&out, "taken by uk-rs"), 2);
    let dir = std::env::temp_dir().join(format!("cargo-uk-cli-new-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), "").unwrap();
    let out = cargo_uk(&["new", "app", "--path", dir.to_str().unwrap()]);
    assert_eq!(one_line_error(&out, "already exists and is not empty"), 2);
    assert!(dir.join("keep").is_file() && !dir.join("Cargo.toml").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
