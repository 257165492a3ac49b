//! QEMU command lines and the meaning of QEMU's exit: pure functions, no process handling.

use std::ffi::OsString;
use std::path::Path;

use crate::boards::{Board, ExitProtocol, Variant};
use crate::process::Ending;

/// The accelerator QEMU runs the guest with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's binary translator (`-accel tcg`), the default: works everywhere.
    Tcg,
    /// Hardware virtualisation (`-accel kvm -cpu host`), x86-pc on an x86_64 host only.
    Kvm,
}

impl Accel {
    /// Name as given to `-accel`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Everything that goes into one QEMU command line.
#[derive(Clone, Debug)]
pub struct QemuConfig<'a> {
    /// The board being emulated.
    pub board: &'static Board,
    /// Its machine configuration.
    pub variant: &'static Variant,
    /// TCG or KVM.
    pub accel: Accel,
    /// Guest memory, QEMU `-m` syntax (`64M`).
    pub memory: &'a str,
    /// Number of CPUs (`-smp`), QEMU's default when `None`.
    pub smp: Option<u32>,
    /// The image to boot (`-kernel`).
    pub kernel: &'a Path,
    /// Kernel command line (`-append`), left out when `None`.
    pub append: Option<String>,
    /// Initial RAM disk (`-initrd`), if any.
    pub initrd: Option<&'a Path>,
    /// A host directory shared with the guest over virtio-9p, mount tag [`SHARE_TAG`]
    /// (check the configuration with [`share_device`] first).
    pub share: Option<&'a Path>,
    /// A virtio entropy device ([`rng_device`]), which uk-virtio's `install_rng` finds.
    pub rng: bool,
    /// A gdb stub on this TCP port, the CPUs stopped until gdb continues (`-gdb tcp::PORT -S`).
    pub gdb_port: Option<u16>,
    /// Extra arguments, appended last (the manifest's `qemu-args`).
    pub extra: &'a [String],
}

/// The mount tag of the host directory a run shares with the guest (`share` in the
/// manifest, `--share` on the command line); uk-virtio finds the device by it.
pub const SHARE_TAG: &str = "share";

/// QEMU's id of the shared directory's file system device.
const SHARE_FSDEV: &str = "uk-share";

/// The QEMU virtio-9p device that carries a shared directory on `board` in `variant`: the
/// PCI one on x86 `pc`, the virtio-mmio one on `virt` and on x86 `microvm` (which has no
/// PCI bus; the board lists its virtio-mmio windows). Every configuration has one.
pub fn share_device(board: &Board, variant: &Variant) -> &'static str {
    if on_virtio_mmio(board, variant) {
        "virtio-9p-device"
    } else {
        "virtio-9p-pci"
    }
}

/// The QEMU virtio entropy device of `board` in `variant` (`--rng`, the manifest's `rng`):
/// on the same bus as [`share_device`]'s. Its default backend reads the host's
/// `/dev/urandom`.
pub fn rng_device(board: &Board, variant: &Variant) -> &'static str {
    if on_virtio_mmio(board, variant) {
        "virtio-rng-device"
    } else {
        "virtio-rng-pci"
    }
}

/// QEMU's id of the backend of [`slow_rng_args`]'s device.
const SLOW_RNG_BACKEND: &str = "uk-slow-rng";

/// The QEMU arguments of an entropy device ([`rng_device`]) that gives `max_bytes` bytes and
/// then nothing until `period_ms` milliseconds have passed (QEMU's rate limit, `max-bytes`
/// per `period`): with a period longer than the run, a device that stops answering, for
/// uk-virtio's in-image test of its timeout. Its backend reads the host's `/dev/urandom`,
/// as the default one does.
pub fn slow_rng_args(
    board: &Board,
    variant: &Variant,
    max_bytes: u64,
    period_ms: u32,
) -> Vec<String> {
    vec![
        "-object".to_owned(),
        format!("rng-random,filename=/dev/urandom,id={SLOW_RNG_BACKEND}"),
        "-device".to_owned(),
        format!(
            "{},rng={SLOW_RNG_BACKEND},max-bytes={max_bytes},period={period_ms}",
            rng_device(board, variant)
        ),
    ]
}

/// Whether virtio devices of `board` in `variant` sit on virtio-mmio (`virt`, x86
/// `microvm`) rather than PCI (x86 `pc`).
fn on_virtio_mmio(board: &Board, variant: &Variant) -> bool {
    board.name == "qemu-virt" || variant.machine.starts_with("microvm")
}

/// The arguments (without the binary) of the QEMU command line for `config`, in the order of
/// the contract: `-machine M -accel A -cpu C -m MEM [-smp N] -nographic -nodefaults
/// -serial stdio -no-reboot <board args> -kernel IMG [-append CMDLINE] [-initrd FILE]
/// [-fsdev local,... -device virtio-9p-...] [-device virtio-rng-...] [-gdb tcp::PORT -S]
/// [EXTRA...]`.
pub fn qemu_args(config: &QemuConfig<'_>) -> Vec<OsString> {
    let cpu = match config.accel {
        Accel::Tcg => config.variant.cpu,
        Accel::Kvm => "host",
    };
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    push("-machine");
    push(config.variant.machine);
    push("-accel");
    push(config.accel.name());
    push("-cpu");
    push(cpu);
    push("-m");
    push(config.memory);
    if let Some(n) = config.smp {
        push("-smp");
        push(&n.to_string());
    }
    for a in [
        "-nographic",
        "-nodefaults",
        "-serial",
        "stdio",
        "-no-reboot",
    ] {
        push(a);
    }
    for a in config.board.extra_args {
        push(a);
    }
    push("-kernel");
    args.push(config.kernel.as_os_str().to_owned());
    if let Some(line) = &config.append {
        args.push("-append".into());
        args.push(line.into());
    }
    if let Some(initrd) = config.initrd {
        if config.board.name == "qemu-virt" {
            // QEMU ignores `-initrd` for an ELF kernel on `virt`; its guest loader places
            // the file and names it in the device tree (`/chosen/module@ADDR`, compatible
            // `multiboot,ramdisk`), where the board finds it.
            let size = std::fs::metadata(initrd).map_or(0, |m| m.len());
            let addr = virt_initrd_address(config.memory, size);
            let mut device = OsString::from(format!("guest-loader,addr={addr:#x},initrd="));
            device.push(initrd.as_os_str());
            args.push("-device".into());
            args.push(device);
        } else {
            args.push("-initrd".into());
            args.push(initrd.as_os_str().to_owned());
        }
    }
    if let Some(dir) = config.share {
        let device = share_device(config.board, config.variant);
        // QEMU's option syntax doubles a comma inside a value.
        let mut fsdev = OsString::from(format!("local,id={SHARE_FSDEV},security_model=none,path="));
        fsdev.push(dir.to_string_lossy().replace(',', ",,"));
        args.push("-fsdev".into());
        args.push(fsdev);
        args.push("-device".into());
        args.push(format!("{device},fsdev={SHARE_FSDEV},mount_tag={SHARE_TAG}").into());
    }
    if config.rng {
        args.push("-device".into());
        args.push(rng_device(config.board, config.variant).into());
    }
    if let Some(port) = config.gdb_port {
        args.push("-gdb".into());
        args.push(format!("tcp::{port}").into());
        args.push("-S".into());
    }
    args.extend(config.extra.iter().map(OsString::from));
    args
}

/// Start of RAM on QEMU `virt`.
const VIRT_RAM_BASE: u64 = 0x4000_0000;

/// Bytes of guest memory for QEMU `-m` syntax (a number with an optional K, M, G or T
/// suffix; no suffix means MiB), `None` when it does not parse.
pub fn memory_bytes(memory: &str) -> Option<u64> {
    let memory = memory.trim();
    let (number, unit) = match memory.char_indices().last()? {
        (at, c) if c.is_ascii_alphabetic() => (&memory[..at], c.to_ascii_uppercase()),
        _ => (memory, 'M'),
    };
    let shift = match unit {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Where the initrd goes on `virt`: at the end of RAM, 2 MiB aligned with 2 MiB to spare,
/// far from the image (loaded near the start of RAM) and the device tree (at its start).
fn virt_initrd_address(memory: &str, size: u64) -> u64 {
    const ALIGN: u64 = 2 << 20;
    let ram = memory_bytes(memory).unwrap_or(64 << 20);
    let room = size.div_ceil(ALIGN) * ALIGN + ALIGN;
    VIRT_RAM_BASE + ram.saturating_sub(room).max(ram / 2) / ALIGN * ALIGN
}

/// Quotes one application argument for the kernel command line: an argument that is empty
/// or holds whitespace goes in double quotes. The guest's command-line splitter has no
/// escape for `"`, so an argument containing one is refused.
pub fn quote_arg(arg: &str) -> Result<String, String> {
    if arg.contains('"') {
        return Err(format!(
            "argument {arg:?} contains a double quote, which the kernel command line cannot carry"
        ));
    }
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        Ok(format!("\"{arg}\""))
    } else {
        Ok(arg.to_owned())
    }
}

/// The `-append` value carrying `args` as application arguments: `-- arg1 "arg 2"`, or
/// `None` when there are no arguments.
pub fn append_line<S: AsRef<str>>(args: &[S]) -> Result<Option<String>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut line = String::from("--");
    for arg in args {
        line.push(' ');
        line.push_str(&quote_arg(arg.as_ref())?);
    }
    Ok(Some(line))
}

/// Decodes QEMU's exit status into the guest's exit code.
///
/// `isa-debug-exit` turns a guest code `c` into status `2c + 1`, and a powered-off machine
/// exits 0; an even non-zero status cannot come from the guest. Semihosting passes the
/// code through unchanged.
pub fn decode_exit(protocol: ExitProtocol, status: i32) -> Result<i32, String> {
    match protocol {
        ExitProtocol::Semihosting => Ok(status),
        ExitProtocol::IsaDebugExit if status == 0 => Ok(0),
        ExitProtocol::IsaDebugExit if status > 0 && status % 2 == 1 => Ok((status - 1) / 2),
        ExitProtocol::IsaDebugExit => Err(format!(
            "QEMU exited with status {status}, which isa-debug-exit cannot produce"
        )),
    }
}

/// Finds QEMU's own error message in its standard error (the guest's console is on standard
/// output): the first line that starts with `qemu:` or `<binary>:` and is not a warning.
/// QEMU fails with status 1, which on x86 would otherwise decode as the guest's exit code 0.
pub fn qemu_error(stderr: &str, binary: &str) -> Option<String> {
    stderr.lines().map(str::trim).find_map(|line| {
        let rest = line
            .strip_prefix(binary)
            .or_else(|| line.strip_prefix("qemu"))?
            .strip_prefix(':')?;
        let rest = rest.trim_start();
        if rest.starts_with("warning:") || rest.starts_with("terminating on signal") {
            None
        } else {
            Some(line.to_owned())
        }
    })
}

/// Why a boot did not give a guest exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestFailure {
    /// The image ran past the time limit and QEMU was killed.
    Hung,
    /// QEMU died of a signal (an abort, say).
    Signal(i32),
    /// QEMU refused to start or failed: its error message.
    Qemu(String),
    /// QEMU's exit status has no meaning under the board's exit protocol.
    Status(String),
}

impl std::fmt::Display for GuestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestFailure::Hung => write!(f, "hung: no exit before the time limit, QEMU was killed"),
            GuestFailure::Signal(sig) => write!(f, "QEMU died of signal {sig}"),
            GuestFailure::Qemu(msg) => write!(f, "QEMU failed: {msg}"),
            GuestFailure::Status(msg) => f.write_str(msg),
        }
    }
}

/// The guest's exit code from how QEMU ended and what it printed on standard error.
///
/// QEMU's own failures exit with status 1, which both exit protocols would read as a guest
/// exit code; a status of 1 together with a QEMU error message on standard error is
/// therefore taken as QEMU's failure.
pub fn guest_exit(board: &Board, ending: Ending, stderr: &str) -> Result<i32, GuestFailure> {
    match ending {
        Ending::TimedOut => Err(GuestFailure::Hung),
        Ending::Signaled(sig) => Err(match qemu_error(stderr, board.qemu) {
            Some(msg) => GuestFailure::Qemu(format!("{msg} (QEMU then died of signal {sig})")),
            None => GuestFailure::Signal(sig),
        }),
        Ending::Exited(status) => {
            if status == 1 {
                if let Some(msg) = qemu_error(stderr, board.qemu) {
                    return Err(GuestFailure::Qemu(msg));
                }
            }
            decode_exit(board.exit, status).map_err(GuestFailure::Status)
        }
    }
}

/// `true` when a `/proc/cpuinfo` text lists the `vmx` (Intel VT-x) or `svm` (AMD-V) flag.
pub fn cpuinfo_has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "flags").then_some(value)
        })
        .any(|flags| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// What the user asked for about acceleration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelRequest {
    /// `--kvm`: KVM or fail.
    Kvm,
    /// `--no-kvm`: TCG.
    Tcg,
    /// Neither: KVM when the host clearly supports it, else TCG.
    Auto,
}

/// What is known about the host when choosing an accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// Host architecture (`std::env::consts::ARCH`).
    pub arch: &'static str,
    /// `/proc/cpuinfo` shows `vmx` or `svm`.
    pub virt_flags: bool,
    /// `/dev/kvm` can be opened for reading and writing.
    pub dev_kvm: bool,
}

/// Chooses the accelerator. KVM serves only x86-pc on an x86_64 host; without `--kvm` it is
/// used only when the CPU shows `vmx`/`svm` and `/dev/kvm` is usable. TCG otherwise.
pub fn choose_accel(board: &Board, request: AccelRequest, host: HostInfo) -> Result<Accel, String> {
    let kvm_possible = board.host_arch == "x86_64" && host.arch == "x86_64";
    match request {
        AccelRequest::Tcg => Ok(Accel::Tcg),
        AccelRequest::Kvm if !kvm_possible => Err(format!(
            "--kvm works only for board x86-pc on an x86_64 host (board {}, host {}); run without --kvm",
            board.name, host.arch
        )),
        AccelRequest::Kvm => Ok(Accel::Kvm),
        AccelRequest::Auto if kvm_possible && host.virt_flags && host.dev_kvm => Ok(Accel::Kvm),
        AccelRequest::Auto => Ok(Accel::Tcg),
    }
}

/// Quotes a word for display in a copy-pasteable shell command line.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command line `binary args...` as a shell would take it.
pub fn display_command(binary: &str, args: &[OsString]) -> String {
    let mut out = shell_quote(binary);
    for a in args {
        out.push(' ');
        out.push_str(&shell_quote(&a.to_string_lossy()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::board;

    fn host(virt_flags: bool, dev_kvm: bool) -> HostInfo {
        HostInfo {
            arch: "x86_64",
            virt_flags,
            dev_kvm,
        }
    }

    fn line(config: &QemuConfig<'_>) -> String {
        display_command(config.board.qemu, &qemu_args(config))
    }

    /// TCG, 64M, the board's default variant, nothing optional set.
    fn config<'a>(board_name: &str, kernel: &'a Path) -> QemuConfig<'a> {
        let b = board(board_name).unwrap();
        QemuConfig {
            board: b,
            variant: b.default_variant(),
            accel: Accel::Tcg,
            memory: "64M",
            smp: None,
            kernel,
            append: None,
            initrd: None,
            share: None,
            rng: false,
            gdb_port: None,
            extra: &[],
        }
    }

    #[test]
    fn x86_pc_command_line_follows_the_contract() {
        let config = config(
            "x86-pc",
            Path::new("/t/x86_64-unknown-none/release/helloworld"),
        );
        assert_eq!(
            line(&config),
            "qemu-system-x86_64 -machine pc -accel tcg -cpu max -m 64M -nographic -nodefaults \
             -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /t/x86_64-unknown-none/release/helloworld"
        );
    }

    #[test]
    fn microvm_kvm_smp_and_append() {
        let config = QemuConfig {
            variant: board("x86-pc").unwrap().variant("microvm").unwrap(),
            accel: Accel::Kvm,
            memory: "128M",
            smp: Some(2),
            append: append_line(&["one", "two words"]).unwrap(),
            ..config("x86-pc", Path::new("img"))
        };
        let args = qemu_args(&config);
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-machine",
                "microvm",
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-m",
                "128M",
                "-smp",
                "2",
                "-nographic",
                "-nodefaults",
                "-serial",
                "stdio",
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-kernel",
                "img",
                "-append",
                "-- one \"two words\"",
            ]
        );
    }

    #[test]
    fn qemu_virt_command_lines() {
        let b = board("qemu-virt").unwrap();
        let mut config = QemuConfig {
            append: Some("-- x".into()),
            ..config("qemu-virt", Path::new("/img"))
        };
        assert_eq!(
            line(&config),
            "qemu-system-aarch64 -machine virt -accel tcg -cpu max -m 64M -nographic -nodefaults \
             -serial stdio -no-reboot -semihosting-config enable=on,target=native -kernel /img \
             -append '-- x'"
        );
        config.variant = b.variant("el2").unwrap();
        config.append = None;
        assert!(line(&config).starts_with(
            "qemu-system-aarch64 -machine virt,virtualization=on -accel tcg -cpu max "
        ));
        config.variant = b.variant("cortex-a72").unwrap();
        assert!(line(&config).contains(" -machine virt -accel tcg -cpu cortex-a72 "));
    }

    #[test]
    fn initrd_gdb_and_extra_arguments_come_last() {
        let extra = vec!["-device".to_owned(), "virtio-rng-pci".to_owned()];
        let config = QemuConfig {
            append: Some("-- x".into()),
            initrd: Some(Path::new("/tmp/root.cpio")),
            gdb_port: Some(1234),
            extra: &extra,
            ..config("x86-pc", Path::new("img"))
        };
        assert!(
            line(&config).ends_with(
                " -kernel img -append '-- x' -initrd /tmp/root.cpio -gdb tcp::1234 -S \
                 -device virtio-rng-pci"
            ),
            "{}",
            line(&config)
        );
    }

    #[test]
    fn a_shared_directory_is_a_9p_device_of_the_board_bus() {
        let pc = QemuConfig {
            share: Some(Path::new("/srv/a,b")),
            ..config("x86-pc", Path::new("img"))
        };
        assert!(
            line(&pc).ends_with(
                " -kernel img -fsdev local,id=uk-share,security_model=none,path=/srv/a,,b \
                 -device virtio-9p-pci,fsdev=uk-share,mount_tag=share"
            ),
            "{}",
            line(&pc)
        );
        let virt = QemuConfig {
            share: Some(Path::new("/srv/s")),
            ..config("qemu-virt", Path::new("img"))
        };
        assert!(
            line(&virt).ends_with(" -device virtio-9p-device,fsdev=uk-share,mount_tag=share"),
            "{}",
            line(&virt)
        );
        // microvm has no PCI bus: its share is a virtio-mmio device, as on virt.
        let x86 = board("x86-pc").unwrap();
        let on_microvm = QemuConfig {
            variant: x86.variant("microvm").unwrap(),
            ..pc
        };
        assert!(
            line(&on_microvm).ends_with(" -device virtio-9p-device,fsdev=uk-share,mount_tag=share"),
            "{}",
            line(&on_microvm)
        );
        for v in x86.variants.iter().filter(|v| v.machine == "pc") {
            assert_eq!(share_device(x86, v), "virtio-9p-pci");
        }
        for v in board("qemu-virt").unwrap().variants {
            assert_eq!(
                share_device(board("qemu-virt").unwrap(), v),
                "virtio-9p-device"
            );
        }
    }

    #[test]
    fn an_entropy_device_sits_on_the_board_bus_after_the_share_and_before_gdb() {
        let x86 = board("x86-pc").unwrap();
        let pc = QemuConfig {
            share: Some(Path::new("/s")),
            rng: true,
            gdb_port: Some(1234),
            ..config("x86-pc", Path::new("img"))
        };
        assert!(
            line(&pc).ends_with(
                " -device virtio-9p-pci,fsdev=uk-share,mount_tag=share \
                 -device virtio-rng-pci -gdb tcp::1234 -S"
            ),
            "{}",
            line(&pc)
        );
        let microvm = QemuConfig {
            variant: x86.variant("microvm").unwrap(),
            gdb_port: None,
            ..pc
        };
        assert!(line(&microvm).ends_with(" -device virtio-rng-device"));
        let virt = QemuConfig {
            rng: true,
            ..config("qemu-virt", Path::new("img"))
        };
        assert!(line(&virt).ends_with(" -kernel img -device virtio-rng-device"));
        assert!(!line(&config("qemu-virt", Path::new("img"))).contains("virtio-rng"));
        for b in crate::boards::BOARDS {
            for v in b.variants {
                let bus = |device: &str| device.rsplit('-').next().unwrap().to_owned();
                assert_eq!(bus(rng_device(b, v)), bus(share_device(b, v)));
            }
        }
    }

    #[test]
    fn a_slow_entropy_device_is_rate_limited_on_each_bus() {
        let x86 = board("x86-pc").unwrap();
        assert_eq!(
            slow_rng_args(x86, x86.default_variant(), 16, 600_000),
            [
                "-object",
                "rng-random,filename=/dev/urandom,id=uk-slow-rng",
                "-device",
                "virtio-rng-pci,rng=uk-slow-rng,max-bytes=16,period=600000"
            ]
        );
        let virt = board("qemu-virt").unwrap();
        let args = slow_rng_args(virt, virt.default_variant(), 8, 1000);
        assert_eq!(
            args[3],
            "virtio-rng-device,rng=uk-slow-rng,max-bytes=8,period=1000"
        );
        let microvm = slow_rng_args(x86, x86.variant("microvm").unwrap(), 8, 1000);
        assert!(microvm[3].starts_with("virtio-rng-device,"));
    }

    #[test]
    fn virt_takes_the_initrd_through_the_guest_loader() {
        let initrd = std::env::temp_dir().join("uk-rs-qemu-test.cpio");
        std::fs::write(&initrd, [0u8; 1000]).unwrap();
        let config = QemuConfig {
            initrd: Some(&initrd),
            ..config("qemu-virt", Path::new("img"))
        };
        let expected = format!(
            " -device guest-loader,addr=0x43c00000,initrd={}",
            initrd.display()
        );
        assert!(line(&config).ends_with(&expected), "{}", line(&config));
        assert!(!line(&config).contains("-initrd"));
    }

    #[test]
    fn memory_sizes_and_virt_initrd_placement() {
        assert_eq!(memory_bytes("64M"), Some(64 << 20));
        assert_eq!(memory_bytes("128"), Some(128 << 20));
        assert_eq!(memory_bytes("1g"), Some(1 << 30));
        assert_eq!(memory_bytes("x"), None);
        assert_eq!(memory_bytes("12Q"), None);
        assert_eq!(virt_initrd_address("64M", 0), 0x43e0_0000);
        assert_eq!(virt_initrd_address("64M", 3 << 20), 0x43a0_0000);
        // A huge initrd never goes below the middle of RAM (QEMU reports what does not fit).
        assert_eq!(virt_initrd_address("64M", 1 << 30), 0x4200_0000);
    }

    #[test]
    fn append_quoting() {
        assert_eq!(append_line::<&str>(&[]).unwrap(), None);
        assert_eq!(append_line(&["a"]).unwrap().unwrap(), "-- a");
        assert_eq!(
            append_line(&["one", "two words", "", "tab\there"])
                .unwrap()
                .unwrap(),
            "-- one \"two words\" \"\" \"tab\there\""
        );
        assert_eq!(
            append_line(&["suite::*", "--", "k=v"]).unwrap().unwrap(),
            "-- suite::* -- k=v"
        );
        let err = append_line(&["say \"hi\""]).unwrap_err();
        assert!(err.contains("double quote"), "{err}");
    }

    #[test]
    fn exit_decoding() {
        use ExitProtocol::*;
        assert_eq!(decode_exit(IsaDebugExit, 0), Ok(0));
        assert_eq!(decode_exit(IsaDebugExit, 1), Ok(0));
        assert_eq!(decode_exit(IsaDebugExit, 3), Ok(1));
        assert_eq!(decode_exit(IsaDebugExit, 203), Ok(101));
        assert_eq!(decode_exit(IsaDebugExit, 255), Ok(127));
        assert!(decode_exit(IsaDebugExit, 2).is_err());
        assert!(decode_exit(IsaDebugExit, -1).is_err());
        assert_eq!(decode_exit(Semihosting, 0), Ok(0));
        assert_eq!(decode_exit(Semihosting, 1), Ok(1));
        assert_eq!(decode_exit(Semihosting, 101), Ok(101));
    }

    #[test]
    fn qemu_errors_are_found_and_warnings_ignored() {
        let bin = "qemu-system-x86_64";
        assert_eq!(qemu_error("", bin), None);
        assert_eq!(
            qemu_error(
                "qemu-system-x86_64: warning: TCG doesn't support requested feature\n",
                bin
            ),
            None
        );
        assert_eq!(
            qemu_error(
                "qemu: could not open kernel file '/x': No such file or directory\n",
                bin
            )
            .as_deref(),
            Some("qemu: could not open kernel file '/x': No such file or directory")
        );
        let kvm = "Could not access KVM kernel module: No such file or directory\n\
                   qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory\n";
        assert_eq!(
            qemu_error(kvm, bin).as_deref(),
            Some(
                "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory"
            )
        );
        assert_eq!(
            qemu_error(
                "qemu-system-x86_64: terminating on signal 15 from pid 1\n",
                bin
            ),
            None
        );
        assert_eq!(qemu_error("qemu-system-x86_64ish: no\n", bin), None);
    }

    #[test]
    fn cpuinfo_flags() {
        let intel = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse\nbugs\t\t: spectre\n";
        let amd = "flags\t\t: fpu svm sse\n";
        let none = "flags\t\t: fpu vmxnot sse\nmodel name\t: vmx svm\n";
        assert!(cpuinfo_has_virtualization(intel));
        assert!(cpuinfo_has_virtualization(amd));
        assert!(!cpuinfo_has_virtualization(none));
        assert!(!cpuinfo_has_virtualization(""));
    }

    #[test]
    fn accelerator_choice() {
        let x86 = board("x86-pc").unwrap();
        let virt = board("qemu-virt").unwrap();
        assert_eq!(
            choose_accel(x86, AccelRequest::Auto, host(false, true)),
            Ok(Accel::Tcg)
        );
        assert_eq!(
            choose_accel(x86, AccelRequest::Auto, host(true, false)),
            Ok(Accel::Tcg)
        );
        assert_eq!(
            choose_accel(x86, AccelRequest::Auto, host(true, true)),
            Ok(Accel::Kvm)
        );
        assert_eq!(
            choose_accel(x86, AccelRequest::Tcg, host(true, true)),
            Ok(Accel::Tcg)
        );
        assert_eq!(
            choose_accel(x86, AccelRequest::Kvm, host(false, false)),
            Ok(Accel::Kvm)
        );
        assert_eq!(
            choose_accel(virt, AccelRequest::Auto, host(true, true)),
            Ok(Accel::Tcg)
        );
        assert!(choose_accel(virt, AccelRequest::Kvm, host(true, true)).is_err());
        let arm_host = HostInfo {
            arch: "aarch64",
            virt_flags: false,
            dev_kvm: true,
        };
        assert!(choose_accel(x86, AccelRequest::Kvm, arm_host).is_err());
    }

    #[test]
    fn shell_quoting_for_display() {
        assert_eq!(shell_quote("-machine"), "-machine");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("-- \"x y\""), "'-- \"x y\"'");
    }

    #[test]
    fn guest_exit_interpretation() {
        let x86 = board("x86-pc").unwrap();
        let virt = board("qemu-virt").unwrap();
        assert_eq!(guest_exit(x86, Ending::Exited(0), ""), Ok(0));
        assert_eq!(guest_exit(x86, Ending::Exited(1), ""), Ok(0));
        assert_eq!(guest_exit(x86, Ending::Exited(7), "qemu: x\n"), Ok(3));
        assert_eq!(guest_exit(virt, Ending::Exited(1), ""), Ok(1));
        assert_eq!(
            guest_exit(x86, Ending::TimedOut, ""),
            Err(GuestFailure::Hung)
        );
        assert_eq!(
            guest_exit(x86, Ending::Signaled(6), ""),
            Err(GuestFailure::Signal(6))
        );
        assert_eq!(
            guest_exit(
                x86,
                Ending::Signaled(6),
                "qemu-system-x86_64: error: failed to set MSR\n"
            ),
            Err(GuestFailure::Qemu(
                "qemu-system-x86_64: error: failed to set MSR (QEMU then died of signal 6)".into()
            ))
        );
        let stderr = "qemu: could not open kernel file '/nonexistent': No such file or directory\n";
        assert_eq!(
            guest_exit(x86, Ending::Exited(1), stderr),
            Err(GuestFailure::Qemu(stderr.trim().into()))
        );
        assert_eq!(
            guest_exit(virt, Ending::Exited(1), stderr)
                .unwrap_err()
                .to_string(),
            format!("QEMU failed: {}", stderr.trim())
        );
        assert!(matches!(
            guest_exit(x86, Ending::Exited(4), ""),
            Err(GuestFailure::Status(_))
        ));
    }
}
