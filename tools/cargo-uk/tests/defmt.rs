//! defmt end to end: `cargo uk run -p defmt-hello` builds an image that logs defmt frames on
//! the serial line, and what the user reads is decoded text, with the plain text around
//! the frames intact. Without `qemu-system-x86_64` on PATH the test says so and stops.

use std::process::{Command, Stdio};

#[test]
fn defmt_frames_are_decoded_into_text() {
    let qemu = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join("qemu-system-x86_64").is_file())
    });
    if !qemu {
        eprintln!("qemu-system-x86_64 is not installed: defmt decoding not tested");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-uk"))
        .args(["run", "-p", "defmt-hello", "--no-kvm", "--", "a", "b"])
        .current_dir(&root)
        .env("NO_COLOR", "1")
        .env_remove("DEFMT_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run cargo-uk");
    let stdout = String::from_utf8(out.stdout).expect("decoded output is text");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.ends_with(needle))
            .unwrap_or_else(|| panic!("no line ends with {needle:?}:\n{stdout}"))
    };
    let plain = at("defmt-hello: plain text still works");
    let hello = at(" INFO Hello from defmt on x86-pc");
    let ram = at(" KiB of RAM, 2 arguments");
    let warn = at(" WARN a warning with a float 1.5 and a list [1, 2, 3]");
    let error = at(" ns");
    let done = at("defmt-hello: done");
    assert!(plain < hello && hello < ram && ram < warn && warn < error && error < done);
    // Timestamps: microseconds as seconds with six decimals, not decreasing.
    let stamps: Vec<f64> = [hello, ram, warn, error]
        .iter()
        .map(|&i| lines[i].split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    // DEFMT_LOG=info: the debug frame is not in the image.
    assert!(!stdout.contains("debug frames cost nothing"), "{stdout}");
    assert!(!stdout.contains("malformed"), "{stdout}");
}
