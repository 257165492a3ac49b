//! The boards an image can be built for, and the QEMU machine configurations each board
//! boots on.
//!
//! Everything here is a constant table: adding a board or a configuration is adding a row.

/// How the guest's exit status reaches the host through QEMU's own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitProtocol {
    /// x86 `isa-debug-exit`: a guest write of `code` makes QEMU exit with `(code << 1) | 1`;
    /// QEMU's exit status 0 means the guest powered the machine off.
    IsaDebugExit,
    /// Arm semihosting `SYS_EXIT`: QEMU exits with the guest's code as it is.
    Semihosting,
}

/// One QEMU machine configuration of a board (machine type and CPU model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Short name used on the command line (`--variant`) and in reports.
    pub name: &'static str,
    /// Value of QEMU's `-machine` option.
    pub machine: &'static str,
    /// Value of QEMU's `-cpu` option under TCG.
    pub cpu: &'static str,
    /// One-line description for `--help` and error messages.
    pub about: &'static str,
}

/// A board: a Rust target, a QEMU system emulator and the configurations it is tested on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// Board name as used on the command line (`--board`).
    pub name: &'static str,
    /// Rust target triple the board's images are built for.
    pub triple: &'static str,
    /// QEMU system emulator binary.
    pub qemu: &'static str,
    /// Debian package that ships [`Board::qemu`].
    pub qemu_package: &'static str,
    /// Board-specific QEMU arguments, placed after `-no-reboot`.
    pub extra_args: &'static [&'static str],
    /// How the guest's exit code is carried to QEMU's exit status.
    pub exit: ExitProtocol,
    /// Whether KVM can serve this board on a host of the same architecture.
    pub host_arch: &'static str,
    /// Configurations; the first one is the default.
    pub variants: &'static [Variant],
}

impl Board {
    /// The default configuration (the first of [`Board::variants`]).
    pub fn default_variant(&self) -> &'static Variant {
        &self.variants[0]
    }

    /// Finds a configuration by name.
    pub fn variant(&self, name: &str) -> Option<&'static Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// Finds a configuration by name, or explains which ones exist.
    pub fn lookup_variant(&self, name: &str) -> Result<&'static Variant, String> {
        self.variant(name).ok_or_else(|| {
            format!(
                "unknown variant '{name}' for board {} (known: {})",
                self.name,
                self.variants
                    .iter()
                    .map(|v| v.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

/// Every board, the default (`x86-pc`) first.
pub const BOARDS: &[Board] = &[
    Board {
        name: "x86-pc",
        triple: "x86_64-unknown-none",
        qemu: "qemu-system-x86_64",
        qemu_package: "qemu-system-x86",
        extra_args: &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        exit: ExitProtocol::IsaDebugExit,
        host_arch: "x86_64",
        variants: &[
            Variant {
                name: "pc",
                machine: "pc",
                cpu: "max",
                about: "QEMU pc (i440FX), -cpu max",
            },
            Variant {
                name: "microvm",
                machine: "microvm",
                cpu: "max",
                about: "QEMU microvm, -cpu max",
            },
        ],
    },
    Board {
        name: "qemu-virt",
        triple: "aarch64-unknown-none",
        qemu: "qemu-system-aarch64",
        qemu_package: "qemu-system-arm",
        extra_args: &["-semihosting-config", "enable=on,target=native"],
        exit: ExitProtocol::Semihosting,
        host_arch: "aarch64",
        variants: &[
            Variant {
                name: "max",
                machine: "virt",
                cpu: "max",
                about: "QEMU virt, -cpu max (entered at EL1)",
            },
            Variant {
                name: "cortex-a72",
                machine: "virt",
                cpu: "cortex-a72",
                about: "QEMU virt, -cpu cortex-a72 (Armv8.0)",
            },
            Variant {
                name: "el2",
                machine: "virt,virtualization=on",
                cpu: "max",
                about: "QEMU virt with virtualization=on, -cpu max (entered at EL2)",
            },
        ],
    },
];

/// Finds a board by name.
pub fn board(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

/// Finds a board by name, or explains which ones exist.
pub fn lookup_board(name: &str) -> Result<&'static Board, String> {
    board(name).ok_or_else(|| {
        format!(
            "unknown board '{name}' (known boards: {})",
            BOARDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The board configurations the in-image tests run on: every variant of every board.
pub fn test_configurations() -> impl Iterator<Item = (&'static Board, &'static Variant)> {
    BOARDS
        .iter()
        .flat_map(|b| b.variants.iter().map(move |v| (b, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_map_to_their_targets_and_emulators() {
        let x86 = board("x86-pc").unwrap();
        assert_eq!(x86.triple, "x86_64-unknown-none");
        assert_eq!(x86.qemu, "qemu-system-x86_64");
        assert_eq!(x86.qemu_package, "qemu-system-x86");
        assert_eq!(x86.exit, ExitProtocol::IsaDebugExit);
        let virt = board("qemu-virt").unwrap();
        assert_eq!(virt.triple, "aarch64-unknown-none");
        assert_eq!(virt.qemu, "qemu-system-aarch64");
        assert_eq!(virt.qemu_package, "qemu-system-arm");
        assert_eq!(virt.exit, ExitProtocol::Semihosting);
        assert_eq!(BOARDS[0].name, "x86-pc");
    }

    #[test]
    fn default_variants_are_the_contract_ones() {
        let x86 = board("x86-pc").unwrap().default_variant();
        assert_eq!((x86.machine, x86.cpu), ("pc", "max"));
        let virt = board("qemu-virt").unwrap().default_variant();
        assert_eq!((virt.machine, virt.cpu), ("virt", "max"));
    }

    #[test]
    fn test_configurations_cover_all_five() {
        let configs: Vec<_> = test_configurations()
            .map(|(b, v)| (b.name, v.machine, v.cpu))
            .collect();
        assert_eq!(
            configs,
            [
                ("x86-pc", "pc", "max"),
                ("x86-pc", "microvm", "max"),
                ("qemu-virt", "virt", "max"),
                ("qemu-virt", "virt", "cortex-a72"),
                ("qemu-virt", "virt,virtualization=on", "max"),
            ]
        );
    }

    #[test]
    fn unknown_names_are_explained() {
        let err = lookup_board("riscv").unwrap_err();
        assert_eq!(
            err,
            "unknown board 'riscv' (known boards: x86-pc, qemu-virt)"
        );
        let err = board("qemu-virt")
            .unwrap()
            .lookup_variant("pc")
            .unwrap_err();
        assert!(err.contains("max, cortex-a72, el2"), "{err}");
        assert!(board("x86-pc").unwrap().lookup_variant("microvm").is_ok());
    }

    #[test]
    fn variant_names_are_unique_per_board() {
        for b in BOARDS {
            for (i, v) in b.variants.iter().enumerate() {
                assert!(b.variants[i + 1..].iter().all(|w| w.name != v.name));
            }
        }
    }
}
