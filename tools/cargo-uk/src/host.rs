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
