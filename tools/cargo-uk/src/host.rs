//! The host machine: the QEMU binaries (installing them when we may) and KVM support.

use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::boards::Board;
use crate::process::on_path;
use crate::qemu::{HostInfo, cpuinfo_has_virtualization};

/// The command that installs `board`'s QEMU on a Debian-like system.
pub fn install_command(board: &Board) -> String {
    format!(
        "sudo apt-get install -y --no-install-recommends {}",
        board.qemu_package
    )
}

/// `true` when we run as root.
fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn apt_get(args: &[&str]) -> bool {
    eprintln!("     Running apt-get {}", args.join(" "));
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        // Keep our standard output for results: apt's chatter goes to standard error.
        .stdout(std::io::stderr())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `board`'s QEMU binary is on `PATH`. When it is missing and we are root on a
/// system with `apt-get`, installs it (saying so); otherwise fails with the command to run.
pub fn ensure_qemu(board: &Board) -> Result<()> {
    if on_path(board.qemu) {
        return Ok(());
    }
    if !is_root() || !on_path("apt-get") {
        bail!(
            "{} not found; install it with: {}",
            board.qemu,
            install_command(board)
        );
    }
    eprintln!(
        "  Installing {} (package {}): it is not on PATH and we run as root",
        board.qemu, board.qemu_package
    );
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        board.qemu_package,
    ];
    // A fresh machine may have no package lists yet: update them and try again.
    let installed = apt_get(&install) || (apt_get(&["update", "-q"]) && apt_get(&install));
    if !installed {
        bail!(
            "installing {} with apt-get failed; install it with: {}",
            board.qemu_package,
            install_command(board)
        );
    }
    if !on_path(board.qemu) {
        bail!(
            "{} still not found after installing {}",
            board.qemu,
            board.qemu_package
        );
    }
    Ok(())
}

/// Reads `(major, minor, micro)` from the first line of `qemu-system-* --version`
/// ("QEMU emulator version 7.2.22 (Debian ...)").
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32, u32)> {
    let line = text.lines().next()?;
    let version = line
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?;
    let mut parts = version.split(['.', '-', '+']).map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let micro = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, micro))
}

/// The version of the QEMU binary `qemu` on `PATH`, `None` if it cannot be run or read.
pub fn qemu_version(qemu: &str) -> Option<(u32, u32, u32)> {
    let output = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&output.stdout))
}

/// What this host offers for KVM.
pub fn host_info() -> HostInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let dev_kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    HostInfo {
        arch: std::env::consts::ARCH,
        virt_flags: cpuinfo_has_virtualization(&cpuinfo),
        dev_kvm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::board;

    #[test]
    fn qemu_versions() {
        assert_eq!(
            parse_qemu_version(
                "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                 Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
            ),
            Some((7, 2, 22))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 8.0.0\n"),
            Some((8, 0, 0))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 9.1.50 (v9.1.0-123-gabc)"),
            Some((9, 1, 50))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.0"),
            Some((10, 0, 0))
        );
        assert_eq!(parse_qemu_version("qemu: not a version"), None);
        assert_eq!(parse_qemu_version(""), None);
    }

    #[test]
    fn install_commands() {
        assert_eq!(
            install_command(board("x86-pc").unwrap()),
            "sudo apt-get install -y --no-install-recommends qemu-system-x86"
        );
        assert_eq!(
            install_command(board("qemu-virt").unwrap()),
            "sudo apt-get install -y --no-install-recommends qemu-system-arm"
        );
    }
}
