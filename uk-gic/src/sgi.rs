//! Bit-exact encodings of software-generated interrupts: `GICD_SGIR` (GICv2) and
//! `ICC_SGI1R_EL1` (GICv3).
//!
//! `ICC_SGI1R_EL1` names up to 16 CPUs of one affinity group at a time: the CPUs whose
//! `MPIDR` agree in Aff3, Aff2, Aff1 and in `Aff0 / 16` (the range selector, RS); the target
//! list has bit `Aff0 % 16` for each. Unikraft 0.11 put Aff1 and Aff2 into the wrong fields,
//! always sent Aff3 = 0 and never set RS; [`sgi1r`] and [`sgi1r_for_set`] are tested against
//! a table of MPIDR values for exactly these fields.

use uk_hal::irq::IrqError;

/// The highest SGI number (SGIs are INTIDs 0 to 15).
pub const MAX_SGI: u32 = 15;

/// The four affinity levels of an `MPIDR_EL1` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Affinity {
    /// Aff3 (`MPIDR[39:32]`).
    pub aff3: u8,
    /// Aff2 (`MPIDR[23:16]`).
    pub aff2: u8,
    /// Aff1 (`MPIDR[15:8]`).
    pub aff1: u8,
    /// Aff0 (`MPIDR[7:0]`).
    pub aff0: u8,
}

impl Affinity {
    /// The affinity fields of an `MPIDR_EL1` value (the other bits are ignored).
    pub const fn from_mpidr(mpidr: u64) -> Self {
        Self {
            aff3: (mpidr >> 32) as u8,
            aff2: (mpidr >> 16) as u8,
            aff1: (mpidr >> 8) as u8,
            aff0: mpidr as u8,
        }
    }

    /// The packed value `GICR_TYPER[63:32]` and `GICD_IROUTER` use (Aff3.Aff2.Aff1.Aff0).
    pub const fn packed(self) -> u32 {
        ((self.aff3 as u32) << 24)
            | ((self.aff2 as u32) << 16)
            | ((self.aff1 as u32) << 8)
            | self.aff0 as u32
    }

    /// `GICD_IROUTER` value routing to this CPU (Aff3 at bits 39:32, IRM = 0).
    pub const fn irouter(self) -> u64 {
        ((self.aff3 as u64) << 32)
            | ((self.aff2 as u64) << 16)
            | ((self.aff1 as u64) << 8)
            | self.aff0 as u64
    }

    /// The group `ICC_SGI1R_EL1` can address at once: everything but `Aff0 % 16`.
    const fn group(self) -> (u8, u8, u8, u8) {
        (self.aff3, self.aff2, self.aff1, self.aff0 / 16)
    }
}

fn check_sgi(intid: u32) -> Result<(), IrqError> {
    if intid > MAX_SGI {
        return Err(IrqError::NotConfigurable(intid));
    }
    Ok(())
}

/// `ICC_SGI1R_EL1.IRM`: every PE but the sender.
pub const SGI1R_IRM: u64 = 1 << 40;

/// `ICC_SGI1R_EL1` for SGI `intid` to the one CPU `target`.
///
/// # Errors
///
/// `intid` above 15.
pub fn sgi1r(intid: u32, target: Affinity) -> Result<u64, IrqError> {
    check_sgi(intid)?;
    Ok(encode_group(intid, target.group(), 1 << (target.aff0 % 16)))
}

fn encode_group(intid: u32, (aff3, aff2, aff1, rs): (u8, u8, u8, u8), list: u16) -> u64 {
    u64::from(list)
        | (u64::from(aff1) << 16)
        | (u64::from(intid) << 24)
        | (u64::from(aff2) << 32)
        | (u64::from(rs) << 44)
        | (u64::from(aff3) << 48)
}

/// `ICC_SGI1R_EL1` for SGI `intid` to every CPU but the sender (IRM = 1).
///
/// # Errors
///
/// `intid` above 15.
pub fn sgi1r_broadcast(intid: u32) -> Result<u64, IrqError> {
    check_sgi(intid)?;
    Ok(SGI1R_IRM | (u64::from(intid) << 24))
}

/// The `ICC_SGI1R_EL1` writes that deliver SGI `intid` to every CPU of `targets`: one per
/// affinity group, in the order the groups first appear. Returns how many of `out` it
/// filled.
///
/// # Errors
///
/// `intid` above 15, or more groups than `out` has room for
/// ([`IrqError::NoSuchCpu`] with the first CPU left over, by its index in `targets`).
pub fn sgi1r_for_set(
    intid: u32,
    targets: impl IntoIterator<Item = Affinity>,
    out: &mut [u64],
) -> Result<usize, IrqError> {
    check_sgi(intid)?;
    let mut groups = 0;
    for (index, target) in targets.into_iter().enumerate() {
        let word = sgi1r(intid, target)?;
        let group_bits = word & !0xffff;
        match out[..groups]
            .iter_mut()
            .find(|w| **w & !0xffff == group_bits)
        {
            Some(w) => *w |= word & 0xffff,
            None => {
                let slot = out
                    .get_mut(groups)
                    .ok_or(IrqError::NoSuchCpu(index as u32))?;
                *slot = word;
                groups += 1;
            }
        }
    }
    Ok(groups)
}

/// `GICD_SGIR.TargetListFilter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgirFilter {
    /// The CPU interfaces in the target list (bits 23:16).
    List(u8),
    /// Every CPU interface but the sender's.
    AllButSelf,
    /// The sender's only.
    SelfOnly,
}

/// `GICD_SGIR` for SGI `intid`: `filter << 24 | targets << 16 | intid` (NSATT = 0).
///
/// # Errors
///
/// `intid` above 15.
pub fn gicd_sgir(intid: u32, filter: SgirFilter) -> Result<u32, IrqError> {
    check_sgi(intid)?;
    let (filter, list) = match filter {
        SgirFilter::List(list) => (0, list),
        SgirFilter::AllButSelf => (1, 0),
        SgirFilter::SelfOnly => (2, 0),
    };
    Ok((filter << 24) | (u32::from(list) << 16) | intid)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    /// (MPIDR, SGI, expected ICC_SGI1R_EL1), worked out field by field from the Arm GIC
    /// architecture specification (TargetList 15:0, Aff1 23:16, INTID 27:24, Aff2 39:32,
    /// IRM 40, RS 47:44, Aff3 55:48).
    const TABLE: &[(u64, u32, u64)] = &[
        // CPU 0 of a flat system.
        (0x8000_0000, 0, 0x0000_0000_0000_0001),
        // Aff0 = 1 (QEMU virt's second CPU), SGI 1.
        (0x8000_0001, 1, 0x0000_0000_0100_0002),
        // Aff0 = 15: last bit of the list, RS = 0.
        (0x0000_000f, 7, 0x0000_0000_0700_8000),
        // Aff0 = 16: RS = 1, list bit 0 (0.11 could not reach it).
        (0x0000_0010, 3, 0x0000_1000_0300_0001),
        // Aff0 = 0x25: RS = 2, bit 5.
        (0x0000_0025, 15, 0x0000_2000_0f00_0020),
        // Aff1 = 2 goes to bits 23:16 (0.11 shifted it elsewhere).
        (0x0000_0203, 4, 0x0000_0000_0402_0008),
        // Aff2 = 0x12 to bits 39:32.
        (0x0012_0000, 2, 0x0000_0012_0200_0001),
        // Aff3 = 0x7f to bits 55:48 (0.11 always sent 0).
        (0x7f_0000_0000, 9, 0x007f_0000_0900_0001),
        // Everything at once; MT and U bits (24, 30) and bit 31 are not affinity.
        (0xab_c1cd_ef31, 5, 0x00ab_30cd_05ef_0002),
    ];

    #[test]
    fn sgi1r_matches_the_table() {
        for &(mpidr, intid, want) in TABLE {
            let got = sgi1r(intid, Affinity::from_mpidr(mpidr)).unwrap();
            assert_eq!(
                got, want,
                "MPIDR {mpidr:#x} SGI {intid}: {got:#018x} != {want:#018x}"
            );
        }
    }

    #[test]
    fn broadcast_sets_irm_only() {
        assert_eq!(sgi1r_broadcast(6).unwrap(), (1 << 40) | (6 << 24));
        assert_eq!(sgi1r_broadcast(16), Err(IrqError::NotConfigurable(16)));
    }

    #[test]
    fn bad_intids_are_refused() {
        assert_eq!(
            sgi1r(16, Affinity::from_mpidr(0)),
            Err(IrqError::NotConfigurable(16))
        );
        assert_eq!(
            gicd_sgir(99, SgirFilter::SelfOnly),
            Err(IrqError::NotConfigurable(99))
        );
    }

    #[test]
    fn sets_merge_per_group() {
        let cpus = [0x0u64, 0x1, 0x11, 0x100, 0x3].map(Affinity::from_mpidr);
        let mut out = [0u64; 4];
        let n = sgi1r_for_set(2, cpus, &mut out).unwrap();
        assert_eq!(n, 3);
        assert_eq!(out[0], (2 << 24) | 0b1011);
        assert_eq!(out[1], (2 << 24) | (1 << 44) | 0b10);
        assert_eq!(out[2], (2 << 24) | (1 << 16) | 1);
        let mut small = [0u64; 1];
        assert_eq!(
            sgi1r_for_set(2, cpus, &mut small),
            Err(IrqError::NoSuchCpu(2))
        );
    }

    #[test]
    fn gicv2_sgir_fields() {
        assert_eq!(gicd_sgir(3, SgirFilter::List(0b10)).unwrap(), 0x0002_0003);
        assert_eq!(gicd_sgir(15, SgirFilter::AllButSelf).unwrap(), 0x0100_000f);
        assert_eq!(gicd_sgir(0, SgirFilter::SelfOnly).unwrap(), 0x0200_0000);
        assert_eq!(gicd_sgir(1, SgirFilter::List(0xff)).unwrap(), 0x00ff_0001);
    }

    proptest! {
        /// Decoding the fields back gives the MPIDR's affinity for any MPIDR.
        #[test]
        fn sgi1r_round_trips(mpidr in any::<u64>(), intid in 0u32..16) {
            let a = Affinity::from_mpidr(mpidr);
            let v = sgi1r(intid, a).unwrap();
            prop_assert_eq!(v & 0xffff, 1 << (a.aff0 % 16));
            prop_assert_eq!((v >> 16) & 0xff, u64::from(a.aff1));
            prop_assert_eq!((v >> 24) & 0xf, u64::from(intid));
            prop_assert_eq!((v >> 32) & 0xff, u64::from(a.aff2));
            prop_assert_eq!((v >> 40) & 1, 0);
            prop_assert_eq!((v >> 44) & 0xf, u64::from(a.aff0 / 16));
            prop_assert_eq!((v >> 48) & 0xff, u64::from(a.aff3));
            // RES0 bits: 41..44 and 56..64.
            prop_assert_eq!(v & 0xff00_0e00_0000_0000, 0);
        }
    }
}
