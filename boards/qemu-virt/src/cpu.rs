//! Naming the machine: the CPU from `MIDR_EL1`, the board from the device tree, the
//! exception level the image was entered at (for [`uk_hal::Platform::machine`]).

use core::fmt::{self, Write};

use crate::fixed_str::FixedStr;

/// Capacity of the machine description.
pub const MACHINE_LEN: usize = 128;

/// The CPU core's name for a `MIDR_EL1` value, as QEMU's `-cpu` spells it where QEMU models
/// the core; `None` for a core this table does not know.
pub fn core_name(midr: u64) -> Option<&'static str> {
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    let name = match (implementer, part) {
        // QEMU's `max` (and `any`) identify as implementer 0, part 0x51 ('Q').
        (0x00, 0x051) => "max",
        (0x41, 0xd02) => "cortex-a34",
        (0x41, 0xd03) => "cortex-a53",
        (0x41, 0xd04) => "cortex-a35",
        (0x41, 0xd05) => "cortex-a55",
        (0x41, 0xd07) => "cortex-a57",
        (0x41, 0xd08) => "cortex-a72",
        (0x41, 0xd09) => "cortex-a73",
        (0x41, 0xd0a) => "cortex-a75",
        (0x41, 0xd0b) => "cortex-a76",
        (0x41, 0xd0c) => "neoverse-n1",
        (0x41, 0xd0d) => "cortex-a77",
        (0x41, 0xd40) => "neoverse-v1",
        (0x41, 0xd41) => "cortex-a78",
        (0x41, 0xd44) => "cortex-x1",
        (0x41, 0xd46) => "cortex-a510",
        (0x41, 0xd47) => "cortex-a710",
        (0x41, 0xd48) => "cortex-x2",
        (0x41, 0xd49) => "neoverse-n2",
        (0x41, 0xd4f) => "neoverse-v2",
        (0x46, 0x001) => "a64fx",
        _ => return None,
    };
    Some(name)
}

/// The board's name from the device tree root: QEMU's `virt` says `linux,dummy-virt`.
pub fn board_model<'a>(model: Option<&'a str>, first_compatible: Option<&'a str>) -> &'a str {
    match (model, first_compatible) {
        (_, Some("linux,dummy-virt")) | (Some("linux,dummy-virt"), _) => "QEMU virt",
        (Some(model), _) => model,
        (None, Some(compatible)) => compatible,
        (None, None) => "unknown board",
    }
}

/// What [`describe`] reports.
#[derive(Clone, Copy, Debug)]
pub struct MachineFacts<'a> {
    /// Board name ([`board_model`]).
    pub board: &'a str,
    /// `MIDR_EL1`.
    pub midr: u64,
    /// Exception level the image's first instruction ran at.
    pub entry_el: u8,
}

impl fmt::Display for MachineFacts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} (MIDR {:#010x}), entered at EL{}",
            self.board,
            core_name(self.midr).unwrap_or("unknown core"),
            self.midr,
            self.entry_el
        )
    }
}

/// The machine description, e.g. `QEMU virt, cortex-a72 (MIDR 0x410fd083), entered at EL2`.
pub fn describe(facts: MachineFacts<'_>) -> FixedStr<MACHINE_LEN> {
    let mut out = FixedStr::new();
    // FixedStr never fails a write (it truncates).
    let _ = write!(out, "{facts}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_qemu_cores() {
        assert_eq!(core_name(0x410f_d083), Some("cortex-a72"));
        assert_eq!(core_name(0x411f_d070), Some("cortex-a57"));
        assert_eq!(core_name(0x000f_0510), Some("max"));
        assert_eq!(core_name(0x4e0f_0000), None);
    }

    #[test]
    fn board_names() {
        assert_eq!(
            board_model(Some("linux,dummy-virt"), Some("linux,dummy-virt")),
            "QEMU virt"
        );
        assert_eq!(board_model(Some("Test board"), Some("x,y")), "Test board");
        assert_eq!(board_model(None, Some("x,y")), "x,y");
        assert_eq!(board_model(None, None), "unknown board");
    }

    #[test]
    fn machine_description() {
        let facts = MachineFacts {
            board: "QEMU virt",
            midr: 0x410f_d083,
            entry_el: 2,
        };
        assert_eq!(
            describe(facts).as_str(),
            "QEMU virt, cortex-a72 (MIDR 0x410fd083), entered at EL2"
        );
        let unknown = MachineFacts {
            board: "b",
            midr: 0x1234,
            entry_el: 1,
        };
        assert_eq!(
            describe(unknown).as_str(),
            "b, unknown core (MIDR 0x00001234), entered at EL1"
        );
    }
}
