//! The CMOS real-time clock, read once at boot for the wall clock (not on Xen, whose
//! shared info page carries it).

use crate::cpu::{inb, outb, rdtsc};

fn cmos(reg: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index/data pair; selecting a register and
    // reading it has no side effect beyond the index latch.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

/// Raw RTC registers: seconds, minutes, hours, day, month, year, century.
type RtcRaw = [u8; 7];

fn read_raw() -> RtcRaw {
    [
        cmos(0x00),
        cmos(0x02),
        cmos(0x04),
        cmos(0x07),
        cmos(0x08),
        cmos(0x09),
        cmos(0x32),
    ]
}

pub(super) fn read_rtc() -> Option<u64> {
    // Wait (bounded) for no update in progress, then read until two reads agree.
    let t0 = rdtsc();
    while cmos(0x0A) & 0x80 != 0 && rdtsc().wrapping_sub(t0) < (1 << 28) {
        core::hint::spin_loop();
    }
    let mut raw = read_raw();
    for _ in 0..5 {
        let again = read_raw();
        if again == raw {
            break;
        }
        raw = again;
    }
    let status_b = cmos(0x0B);
    decode_rtc(raw, status_b)
}

fn bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0F)
}

/// Decodes raw RTC registers (binary or BCD, 12- or 24-hour, per status register B)
/// into Unix seconds; `None` if they do not form a plausible date.
pub(crate) fn decode_rtc(raw: RtcRaw, status_b: u8) -> Option<u64> {
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let conv = |v: u8| if binary { v } else { bcd(v) };
    let pm = raw[2] & 0x80 != 0;
    let sec = conv(raw[0]);
    let min = conv(raw[1]);
    let mut hour = conv(raw[2] & 0x7F);
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = conv(raw[3]);
    let month = conv(raw[4]);
    let year2 = conv(raw[5]);
    let century = conv(raw[6]);
    let century = if (19..=21).contains(&century) {
        century
    } else {
        20
    };
    if sec > 59
        || min > 59
        || hour > 23
        || !(1..=31).contains(&day)
        || !(1..=12).contains(&month)
        || year2 > 99
    {
        return None;
    }
    let year = i64::from(century) * 100 + i64::from(year2);
    let days = days_from_civil(year, u32::from(month), u32::from(day));
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    u64::try_from(secs).ok()
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
///
/// Counts in 400-year eras starting on 1 March, so that the leap day is the last day of
/// the (shifted) year and month lengths follow a fixed pattern.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let m = i64::from(month);
    let shifted_month = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn rtc_decoding() {
        // 2026-11-01 13:45:30 in BCD, 24-hour mode, century 0x20.
        let raw = [0x30, 0x45, 0x13, 0x01, 0x11, 0x26, 0x20];
        assert_eq!(decode_rtc(raw, 0x02), Some(1_793_540_730));
        // Same in binary, 12-hour mode with the PM bit.
        let raw = [30, 45, 0x80 | 1, 1, 11, 26, 20];
        assert_eq!(decode_rtc(raw, 0x04), Some(1_793_540_730));
        // No RTC: the bus reads 0xFF.
        assert_eq!(decode_rtc([0xFF; 7], 0xFF), None);
    }
}
