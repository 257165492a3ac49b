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
    /// Cargo features of the ktest image (package `uk-ktest`) on this configuration: test
    /// cases that need hardware only this configuration has. Empty for most.
    pub ktest_features: &'static [&'static str],
    /// The oldest QEMU `(major, minor)` that emulates this configuration's distinctive
    /// hardware correctly (`(0, 0)`: any). With an older one the ktest image is built without
    /// [`Variant::ktest_features`] and examples' extra runs on it are left out; both ask
    /// [`qemu_emulates`].
    pub min_qemu: (u32, u32),
    /// QEMU `-smp` for this configuration (`None`: QEMU's default, one CPU).
    pub smp: Option<u32>,
}

/// Environment variable that makes [`qemu_emulates`] accept any QEMU version (for a QEMU
/// older than [`Variant::min_qemu`] built with the fixes backported): set to `1`.
pub const QEMU_FIXED_ENV: &str = "UK_QEMU_HAS_FIXES";

/// Whether [`QEMU_FIXED_ENV`] is set to `1` in this process's environment.
pub fn qemu_fixes_forced() -> bool {
    std::env::var_os(QEMU_FIXED_ENV).is_some_and(|v| v == "1")
}

/// Whether QEMU `version` (`None`: unknown) emulates `variant` correctly, that is, is at
/// least [`Variant::min_qemu`]; `forced` ([`QEMU_FIXED_ENV`]) accepts any version. The one
/// place that decides it, for the ktest image's features ([`ktest_features`]) and for the
/// extra runs of examples (`cargo uk test`). The error says why, for a `note:` line.
pub fn qemu_emulates(
    variant: &Variant,
    version: Option<(u32, u32, u32)>,
    forced: bool,
) -> Result<(), String> {
    let (major, minor) = variant.min_qemu;
    if forced || (major, minor) == (0, 0) {
        return Ok(());
    }
    match version {
        Some((a, b, _)) if (a, b) >= (major, minor) => Ok(()),
        found => {
            let found = found.map_or("an unknown QEMU version".to_owned(), |(a, b, c)| {
                format!("QEMU {a}.{b}.{c}")
            });
            Err(format!(
                "{found} is older than {major}.{minor}, the first to emulate this \
                 configuration correctly (set {QEMU_FIXED_ENV}=1 for a QEMU with the fixes)"
            ))
        }
    }
}

/// The ktest features to build for `variant` with QEMU `version` (`None`: unknown), and,
/// when some are left out, a note that says why ([`qemu_emulates`]). `forced` keeps them
/// whatever the version ([`QEMU_FIXED_ENV`]).
pub fn ktest_features(
    variant: &Variant,
    version: Option<(u32, u32, u32)>,
    forced: bool,
) -> (&'static [&'static str], Option<String>) {
    let features = variant.ktest_features;
    if features.is_empty() {
        return (features, None);
    }
    match qemu_emulates(variant, version, forced) {
        Ok(()) => (features, None),
        Err(why) => (
            &[],
            Some(format!(
                "ktest features {} left out: {why}",
                features.join(", ")
            )),
        ),
    }
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
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "microvm",
                machine: "microvm",
                cpu: "max",
                about: "QEMU microvm, -cpu max",
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "qemu64",
                machine: "pc",
                cpu: "qemu64",
                about: "QEMU pc, -cpu qemu64 (no RDRAND/RDSEED, no XSAVE, no 1 GiB pages)",
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "smp",
                machine: "pc",
                cpu: "max",
                about: "QEMU pc, -cpu max, -smp 2: a second CPU (INIT/SIPI), cross-CPU IPIs",
                ktest_features: &["smp"],
                min_qemu: (0, 0),
                smp: Some(2),
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
                about: "QEMU virt (GICv2, QEMU's default), -cpu max (entered at EL1)",
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "cortex-a72",
                machine: "virt",
                cpu: "cortex-a72",
                about: "QEMU virt, -cpu cortex-a72 (Armv8.0)",
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "el2",
                machine: "virt,virtualization=on",
                cpu: "max",
                about: "QEMU virt with virtualization=on, -cpu max (entered at EL2)",
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "mte",
                machine: "virt,mte=on",
                cpu: "max",
                about: "QEMU virt with tag memory (mte=on), -cpu max: Arm MTE (FEAT_MTE2)",
                // The cases that must raise a tag check fault. QEMU before 8.0 stores one
                // tag per page instead of one per 16-byte granule (QEMU issue 1416).
                ktest_features: &["mte-faults"],
                min_qemu: (8, 0),
                smp: None,
            },
            Variant {
                name: "gicv3",
                machine: "virt,gic-version=3",
                cpu: "max",
                about: "QEMU virt with a GICv3 (gic-version=3), -cpu max",
                ktest_features: &[],
                min_qemu: (0, 0),
                smp: None,
            },
            Variant {
                name: "smp",
                machine: "virt",
                cpu: "max",
                about: "QEMU virt (GICv2), -smp 2: a second CPU (PSCI CPU_ON), cross-CPU SGIs",
                ktest_features: &["smp"],
                min_qemu: (0, 0),
                smp: Some(2),
            },
            Variant {
                name: "smp-gicv3",
                machine: "virt,gic-version=3",
                cpu: "max",
                about: "QEMU virt with a GICv3, -smp 2: a second CPU, its redistributor, SGIs",
                ktest_features: &["smp"],
                min_qemu: (0, 0),
                smp: Some(2),
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
    fn test_configurations_cover_all_eleven() {
        let configs: Vec<_> = test_configurations()
            .map(|(b, v)| (b.name, v.machine, v.cpu))
            .collect();
        assert_eq!(
            configs,
            [
                ("x86-pc", "pc", "max"),
                ("x86-pc", "microvm", "max"),
                ("x86-pc", "pc", "qemu64"),
                ("x86-pc", "pc", "max"),
                ("qemu-virt", "virt", "max"),
                ("qemu-virt", "virt", "cortex-a72"),
                ("qemu-virt", "virt,virtualization=on", "max"),
                ("qemu-virt", "virt,mte=on", "max"),
                ("qemu-virt", "virt,gic-version=3", "max"),
                ("qemu-virt", "virt", "max"),
                ("qemu-virt", "virt,gic-version=3", "max"),
            ]
        );
    }

    #[test]
    fn only_the_mte_and_smp_configurations_have_ktest_features() {
        let mte = board("qemu-virt").unwrap().variant("mte").unwrap();
        assert_eq!(mte.ktest_features, ["mte-faults"]);
        assert_eq!(mte.min_qemu, (8, 0));
        for (b, v) in test_configurations() {
            // The cases that need a second CPU go only where QEMU gives one.
            assert_eq!(
                v.ktest_features.contains(&"smp"),
                v.smp.is_some_and(|n| n >= 2)
            );
            if v.name != "mte" && v.smp.is_none() {
                assert!(v.ktest_features.is_empty(), "{}/{}", b.name, v.name);
                assert_eq!(ktest_features(v, None, false), (&[][..], None));
            }
        }
    }

    #[test]
    fn ktest_features_need_a_recent_enough_qemu() {
        let mte = board("qemu-virt").unwrap().variant("mte").unwrap();
        assert_eq!(
            ktest_features(mte, Some((8, 0, 0)), false),
            (&["mte-faults"][..], None)
        );
        assert_eq!(
            ktest_features(mte, Some((9, 2, 1)), false).0,
            ["mte-faults"]
        );
        let (features, note) = ktest_features(mte, Some((7, 2, 22)), false);
        assert!(features.is_empty());
        let note = note.unwrap();
        assert!(
            note.starts_with("ktest features mte-faults left out: QEMU 7.2.22 is older than 8.0"),
            "{note}"
        );
        assert!(note.contains("UK_QEMU_HAS_FIXES=1"), "{note}");
        let (features, note) = ktest_features(mte, None, false);
        assert!(features.is_empty());
        assert!(note.unwrap().contains("an unknown QEMU version"));
        // Forced: kept whatever the version.
        assert_eq!(
            ktest_features(mte, Some((7, 2, 22)), true),
            (&["mte-faults"][..], None)
        );
    }

    #[test]
    fn qemu_emulates_gates_on_the_variant_minimum() {
        let virt = board("qemu-virt").unwrap();
        let mte = virt.variant("mte").unwrap();
        assert_eq!(qemu_emulates(mte, Some((8, 0, 0)), false), Ok(()));
        assert_eq!(qemu_emulates(mte, Some((10, 0, 2)), false), Ok(()));
        let why = qemu_emulates(mte, Some((7, 2, 22)), false).unwrap_err();
        assert_eq!(
            why,
            "QEMU 7.2.22 is older than 8.0, the first to emulate this configuration correctly \
             (set UK_QEMU_HAS_FIXES=1 for a QEMU with the fixes)"
        );
        let why = qemu_emulates(mte, None, false).unwrap_err();
        assert!(
            why.starts_with("an unknown QEMU version is older than 8.0"),
            "{why}"
        );
        // Forced: any version, even an unknown one.
        assert_eq!(qemu_emulates(mte, Some((7, 2, 22)), true), Ok(()));
        assert_eq!(qemu_emulates(mte, None, true), Ok(()));
        // A configuration without a minimum runs on any QEMU, known or not.
        for (_, v) in test_configurations().filter(|(_, v)| v.name != "mte") {
            assert_eq!(v.min_qemu, (0, 0));
            assert_eq!(qemu_emulates(v, None, false), Ok(()));
            assert_eq!(qemu_emulates(v, Some((2, 0, 0)), false), Ok(()));
        }
        // The ktest note is built from the same decision.
        let (_, note) = ktest_features(mte, Some((7, 2, 22)), false);
        let why = qemu_emulates(mte, Some((7, 2, 22)), false).unwrap_err();
        assert_eq!(
            note.unwrap(),
            format!("ktest features mte-faults left out: {why}")
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
        assert!(err.contains("max, cortex-a72, el2, mte"), "{err}");
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
