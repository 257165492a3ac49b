//! Generic-timer arithmetic: counter ticks to nanoseconds.
//!
//! The clock counts `CNTVCT_EL0` ticks since the image's first instruction; the tick rate is
//! `CNTFRQ_EL0` (62.5 MHz on QEMU 7.2's `virt`, 1 GHz on newer QEMU and many recent cores).
//! `ticks * 1e9` overflows 64 bits after about 5 minutes at 62.5 MHz, so the conversion
//! splits whole seconds from the remainder; the result is exact (the floor of the true value)
//! and therefore monotonic.

/// Nanoseconds in `ticks` counter ticks at `frequency_hz`, exact (rounded down) for every
/// input; saturates at `u64::MAX` (after 584 years). A zero frequency gives zero.
pub const fn ticks_to_ns(ticks: u64, frequency_hz: u32) -> u64 {
    if frequency_hz == 0 {
        return 0;
    }
    let frequency = frequency_hz as u64;
    let seconds = ticks / frequency;
    let rest = ticks % frequency;
    // rest < 2^32 and 1e9 < 2^30: the product fits in 64 bits.
    let rest_ns = rest * 1_000_000_000 / frequency;
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(rest_ns)
}

/// Counter ticks in `ns` nanoseconds at `frequency_hz`, rounded up (so a wait of at least
/// `ns` never ends early); saturates at `u64::MAX`.
pub const fn ns_to_ticks(ns: u64, frequency_hz: u32) -> u64 {
    let frequency = frequency_hz as u64;
    let seconds = ns / 1_000_000_000;
    let rest = ns % 1_000_000_000;
    // rest < 2^30 and frequency < 2^32: the product fits in 64 bits.
    let rest_ticks = (rest * frequency).div_ceil(1_000_000_000);
    seconds.saturating_mul(frequency).saturating_add(rest_ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(ticks: u64, frequency: u32) -> u64 {
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(frequency);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    const FREQUENCIES: [u32; 5] = [62_500_000, 1_000_000_000, 24_000_000, 19_200_000, u32::MAX];

    #[test]
    fn exact_against_128_bit_arithmetic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for &f in &FREQUENCIES {
            for _ in 0..10_000 {
                // xorshift: spread samples over the whole 64-bit range and small values alike
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                for ticks in [x, x >> 20, x >> 40, x & 0xffff] {
                    assert_eq!(ticks_to_ns(ticks, f), reference(ticks, f), "{ticks} @ {f}");
                }
            }
        }
    }

    #[test]
    fn qemu_rate_examples() {
        assert_eq!(ticks_to_ns(62_500_000, 62_500_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(1, 62_500_000), 16);
        // Past the point where ticks * 1e9 would overflow (about 295 s at 62.5 MHz).
        assert_eq!(
            ticks_to_ns(62_500_000 * 86_400, 62_500_000),
            86_400_000_000_000
        );
        assert_eq!(ticks_to_ns(u64::MAX, 1_000_000_000), u64::MAX);
        assert_eq!(ticks_to_ns(5, 0), 0);
    }

    #[test]
    fn monotonic_across_second_boundaries() {
        let f = 62_500_000;
        let mut last = 0;
        for ticks in (f as u64 - 1000)..(f as u64 + 1000) {
            let ns = ticks_to_ns(ticks, f);
            assert!(ns >= last);
            last = ns;
        }
    }

    #[test]
    fn ns_to_ticks_rounds_up_and_round_trips() {
        assert_eq!(ns_to_ticks(16, 62_500_000), 1);
        assert_eq!(ns_to_ticks(17, 62_500_000), 2);
        assert_eq!(ns_to_ticks(1_000_000_000, 62_500_000), 62_500_000);
        for ns in [0, 1, 999, 123_456_789, 3_600_000_000_000] {
            for &f in &FREQUENCIES {
                assert!(ticks_to_ns(ns_to_ticks(ns, f), f) >= ns);
            }
        }
        assert_eq!(ns_to_ticks(u64::MAX, u32::MAX), u64::MAX);
    }
}
