//! Xen's per-vCPU time (`vcpu_time_info`, the "pvclock"): system time in nanoseconds is
//! `system_time + scale(rdtsc() - tsc_timestamp)`, where scaling shifts the TSC delta
//! by `tsc_shift` (left if positive) and multiplies by `tsc_to_system_mul / 2^32`.
//! `version` is a seqlock: odd while Xen updates the record; read until it is even and
//! unchanged.

/// One consistent copy of `vcpu_time_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeInfo {
    /// Seqlock counter.
    pub version: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot of the domain at `tsc_timestamp`.
    pub system_time: u64,
    /// Multiplier (32.32 fixed point) from shifted TSC ticks to nanoseconds.
    pub tsc_to_system_mul: u32,
    /// Shift applied to TSC deltas before multiplying.
    pub tsc_shift: i8,
}

/// Scales a TSC delta to nanoseconds.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        delta << shift
    } else {
        delta >> (-shift)
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

/// The TSC frequency (ticks per second) that `mul` and `shift` describe; 0 if `mul` is 0.
pub fn tsc_hz(mul: u32, shift: i8) -> u64 {
    if mul == 0 {
        return 0;
    }
    // ns = ticks * 2^shift * mul / 2^32  =>  hz = 1e9 * 2^32 / (mul * 2^shift)
    let num = 1_000_000_000u128 << 32;
    let hz = if shift >= 0 {
        num / (u128::from(mul) << shift)
    } else {
        (num << (-shift)) / u128::from(mul)
    };
    hz as u64
}

/// Nanoseconds of system time at TSC value `tsc`.
pub fn system_time_at(t: &TimeInfo, tsc: u64) -> u64 {
    t.system_time.wrapping_add(scale_delta(
        tsc.wrapping_sub(t.tsc_timestamp),
        t.tsc_to_system_mul,
        t.tsc_shift,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_round_trips() {
        // A 2.5 GHz TSC: 0.4 ns per tick = 0.8 * 2^-1 -> mul = 0.8 * 2^32, shift = -1.
        let mul = (0.8f64 * 4294967296.0) as u32;
        let hz = tsc_hz(mul, -1);
        assert!((2_499_999_000..=2_500_001_000).contains(&hz), "{hz}");
        assert_eq!(scale_delta(2_500_000_000, mul, -1) / 1000, 999_999);
        // 1 GHz with shift 0 cannot be expressed (mul would be 2^32); shift 1, mul 2^31.
        assert_eq!(tsc_hz(1 << 31, 1), 1_000_000_000);
        assert_eq!(tsc_hz(0, 0), 0);
    }

    #[test]
    fn system_time_adds_scaled_delta() {
        let t = TimeInfo {
            version: 2,
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 1,
        };
        assert_eq!(system_time_at(&t, 1000), 5_000);
        assert_eq!(system_time_at(&t, 3000), 7_000);
    }
}
