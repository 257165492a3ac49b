//! Clock maths: TSC ticks to nanoseconds, and the TSC frequency from a PIT measurement.
//!
//! The monotonic clock is `ticks_to_ns(rdtsc() - tsc_at_first_instruction)`. The conversion
//! is one 64x64->128-bit multiply and a shift ([`Scale`]): no division on the read path, no
//! overflow for any 64-bit tick count, and a relative error below 2^-30 for counters up to
//! 4 GHz (below 2^-26 up to 100 GHz): a millisecond per ten days at worst.
//!
//! The frequency comes from [`frequency_from_pit`]: TSC ticks counted across a known number
//! of PIT periods (the 8254 runs at 1.193182 MHz on every PC, QEMU included).

/// Input clock of the 8254 PIT in Hz (14.31818 MHz / 12), as QEMU models it.
pub const PIT_HZ: u64 = 1_193_182;

const NS_PER_S: u128 = 1_000_000_000;

/// Fixed-point factor turning counter ticks into nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Nanoseconds per tick, times 2^[`Scale::SHIFT`].
    pub mult: u64,
}

impl Scale {
    /// Fraction bits of [`Scale::mult`].
    pub const SHIFT: u32 = 32;

    /// The scale of a counter running at `hz` (at least 1).
    pub const fn for_frequency(hz: u64) -> Scale {
        let hz = if hz == 0 { 1 } else { hz };
        // Rounded to nearest. 1e9 * 2^32 + hz / 2 < 2^63 for every hz, so 64-bit division
        // suffices (and keeps the 128-bit division routine off the boot path).
        let mult = ((NS_PER_S as u64) << Scale::SHIFT).saturating_add(hz / 2) / hz;
        Scale { mult }
    }

    /// `ticks` in nanoseconds, saturating at `u64::MAX` (584 years).
    pub const fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let ns = (ticks as u128 * self.mult as u128) >> Scale::SHIFT;
        if ns > u64::MAX as u128 {
            u64::MAX
        } else {
            ns as u64
        }
    }
}

/// The TSC frequency in Hz from `tsc_ticks` counted across `pit_ticks` PIT periods.
///
/// Returns `None` when there is nothing to divide by (no PIT ticks, or a PIT that did not
/// count) or the result does not fit.
pub const fn frequency_from_pit(tsc_ticks: u64, pit_ticks: u64) -> Option<u64> {
    if pit_ticks == 0 || tsc_ticks == 0 {
        return None;
    }
    // 64-bit arithmetic while the product fits (4 hours of ticks at 1 GHz), which keeps
    // the 128-bit division routine off the boot path.
    if let Some(product) = tsc_ticks.checked_mul(PIT_HZ) {
        if let Some(rounded) = product.checked_add(pit_ticks / 2) {
            return Some(rounded / pit_ticks);
        }
    }
    let hz = (tsc_ticks as u128 * PIT_HZ as u128 + pit_ticks as u128 / 2) / pit_ticks as u128;
    if hz > u64::MAX as u128 {
        None
    } else {
        Some(hz as u64)
    }
}

/// Whether a calibration over a long window (`fine_hz`) agrees with a coarse one over the
/// window's first few PIT ticks (`coarse_hz`) within a factor of 1.5.
///
/// The PIT channel counts 16 bits: a window longer than 65 536 ticks (55 ms, e.g. a slow
/// debug boot overlapping it) wraps and reads as far fewer ticks, which makes `fine_hz` at
/// least twice too high. The coarse measurement is too short to wrap, and even with its
/// polling error it is well within a factor of 1.5.
pub const fn calibrations_agree(fine_hz: u64, coarse_hz: u64) -> bool {
    let (fine, coarse) = (fine_hz as u128, coarse_hz as u128);
    2 * fine <= 3 * coarse && 2 * coarse <= 3 * fine
}

/// PIT ticks elapsed between two reads of a down-counting 16-bit counter (one wrap at most).
pub const fn pit_elapsed(earlier: u16, later: u16) -> u16 {
    earlier.wrapping_sub(later)
}

/// PIT ticks in `us` microseconds, rounded up.
pub const fn pit_ticks_for_us(us: u64) -> u64 {
    (us * PIT_HZ).div_ceil(1_000_000)
}

/// Relative difference `|a - b| / b` in parts per million (saturating).
pub const fn ppm_difference(a: u64, b: u64) -> u64 {
    if b == 0 {
        return u64::MAX;
    }
    let diff = a.abs_diff(b) as u128 * 1_000_000 / b as u128;
    if diff > u64::MAX as u128 {
        u64::MAX
    } else {
        diff as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_ns(ticks: u64, hz: u64) -> u128 {
        ticks as u128 * NS_PER_S / hz as u128
    }

    #[test]
    fn one_second_is_one_second() {
        for hz in [
            1,
            1_193_182,
            24_000_000,
            1_000_000_000,
            2_345_678_901,
            3_000_000_000,
            100_000_000_000,
        ] {
            let ns = Scale::for_frequency(hz).ticks_to_ns(hz);
            assert!(ns.abs_diff(1_000_000_000) <= 1, "{hz} Hz: {ns} ns");
        }
    }

    #[test]
    fn large_counts_do_not_overflow() {
        let scale = Scale::for_frequency(2_500_000_000);
        // Ten years of ticks.
        let ticks = 2_500_000_000u64 * 3600 * 24 * 3650;
        let ns = scale.ticks_to_ns(ticks);
        let exact = exact_ns(ticks, 2_500_000_000);
        assert!(
            (ns as u128).abs_diff(exact) * 1_000_000_000 <= exact,
            "{ns} vs {exact}"
        );
        // The largest count still converts (saturating only past u64 nanoseconds).
        let max = scale.ticks_to_ns(u64::MAX);
        assert_eq!(max as u128, (u64::MAX as u128 * scale.mult as u128) >> 32);
        assert_eq!(Scale::for_frequency(1).ticks_to_ns(u64::MAX), u64::MAX);
    }

    #[test]
    fn conversion_is_monotonic_and_precise() {
        let hz = 2_893_202_117;
        let scale = Scale::for_frequency(hz);
        let mut last = 0;
        for ticks in (0..10_000_000u64)
            .step_by(997)
            .chain([1 << 40, 1 << 50, 1 << 60])
        {
            let ns = scale.ticks_to_ns(ticks);
            assert!(ns >= last);
            last = ns;
            let exact = exact_ns(ticks, hz);
            // Relative error under 2^-30, plus the truncation of the last nanosecond.
            assert!(
                (ns as u128).abs_diff(exact) <= exact / (1 << 30) + 1,
                "{ticks}: {ns} vs {exact}"
            );
        }
    }

    #[test]
    fn zero_frequency_is_clamped() {
        assert_eq!(Scale::for_frequency(0), Scale::for_frequency(1));
    }

    #[test]
    fn frequency_from_pit_counts() {
        // 0.5 ms window at 3 GHz: 597 PIT ticks, 1.5 M TSC ticks.
        let pit = pit_ticks_for_us(500);
        assert_eq!(pit, 597);
        let tsc = 3_000_000_000 * pit / PIT_HZ;
        let hz = frequency_from_pit(tsc, pit).unwrap();
        assert!(ppm_difference(hz, 3_000_000_000) < 10, "{hz}");
        assert_eq!(frequency_from_pit(1000, 0), None);
        assert_eq!(frequency_from_pit(0, 10), None);
        assert_eq!(frequency_from_pit(u64::MAX, 1), None);
        assert_eq!(frequency_from_pit(PIT_HZ, PIT_HZ), Some(PIT_HZ));
        // Past a 64-bit product the 128-bit path gives the exact answer.
        let ticks = u64::MAX / PIT_HZ + 12_345;
        assert_eq!(frequency_from_pit(ticks, PIT_HZ), Some(ticks));
    }

    #[test]
    fn wrapped_windows_are_detected() {
        let hz = 2_445_000_000;
        assert!(calibrations_agree(hz, hz));
        assert!(calibrations_agree(hz, hz * 13 / 10), "coarse 30 % high");
        assert!(calibrations_agree(hz, hz * 7 / 10), "coarse 30 % low");
        // 600 ticks measured, 65 536 + 600 elapsed: fine is 110 times too high.
        assert!(!calibrations_agree(hz * (65_536 + 600) / 600, hz));
        // The mildest wrap (a full window of 65 535 ticks) still doubles the result.
        assert!(!calibrations_agree(hz * (65_536 + 65_535) / 65_535, hz));
        assert!(!calibrations_agree(0, hz));
    }

    #[test]
    fn pit_counter_wraps() {
        assert_eq!(pit_elapsed(1000, 400), 600);
        assert_eq!(pit_elapsed(10, 65_530), 16);
        assert_eq!(pit_elapsed(5, 5), 0);
    }

    #[test]
    fn ppm() {
        assert_eq!(ppm_difference(1_010_000, 1_000_000), 10_000);
        assert_eq!(ppm_difference(990_000, 1_000_000), 10_000);
        assert_eq!(ppm_difference(1, 0), u64::MAX);
    }
}
