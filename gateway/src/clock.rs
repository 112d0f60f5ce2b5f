//! Wall-clock helpers: the only place the gateway reads the time of day for decisions.

use std::time::{SystemTime, UNIX_EPOCH};

use domicile_policy::Date;

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Today's date in UTC.
pub fn today() -> Date {
    Date::from_unix_seconds(now_micros() / 1_000_000)
}

/// The calendar day in Brussels (CET, UTC+1; CEST, UTC+2 from the last Sunday of March to
/// the last Sunday of October, switching at 01:00 UTC) at a Unix time.
pub fn brussels_date(secs: i64) -> Date {
    let utc_day = Date::from_unix_seconds(secs);
    let year = utc_day.year();
    let last_sunday = |month: u8| -> i64 {
        let last = Date::new(year, month, 31).map_or(0, Date::unix_days);
        // 1970-01-01 was a Thursday: day 0 has weekday 4 (0 = Sunday).
        let weekday = (last + 4).rem_euclid(7);
        (last - weekday) * 86_400 + 3_600
    };
    let summer = secs >= last_sunday(3) && secs < last_sunday(10);
    Date::from_unix_seconds(secs + if summer { 7_200 } else { 3_600 })
}

/// RFC 3339 UTC timestamp with microseconds, e.g. `2026-11-28T23:47:06.123456Z`.
pub fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let date = Date::from_unix_seconds(secs);
    let tod = secs.rem_euclid(86_400);
    let mut s = String::with_capacity(27);
    push_digits(&mut s, i64::from(date.year()), 4);
    s.push('-');
    push_digits(&mut s, i64::from(date.month()), 2);
    s.push('-');
    push_digits(&mut s, i64::from(date.day()), 2);
    s.push('T');
    push_digits(&mut s, tod / 3600, 2);
    s.push(':');
    push_digits(&mut s, (tod % 3600) / 60, 2);
    s.push(':');
    push_digits(&mut s, tod % 60, 2);
    s.push('.');
    push_digits(&mut s, frac, 6);
    s.push('Z');
    s
}

/// Appends the last `width` digits (at most 20) of `n` (non-negative), zero-padded.
fn push_digits(s: &mut String, n: i64, width: u32) {
    // Right to left by tens: no power of ten and no division by one per digit.
    let mut digits = [b'0'; 20];
    let width = (width as usize).min(digits.len());
    let mut n = n.unsigned_abs();
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for &d in &digits[..width] {
        s.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_zero_padded_and_cut_to_width() {
        for n in [0i64, 7, 42, 999, 1_000, 2026, 123_456, 999_999, 1_000_000] {
            for width in [1u32, 2, 4, 6] {
                let mut s = String::new();
                push_digits(&mut s, n, width);
                let full = format!("{n:020}");
                assert_eq!(s, full[20 - width as usize..], "{n} {width}");
            }
        }
    }

    #[test]
    fn brussels_days_start_at_local_midnight() {
        // 2020-07-15 22:30 UTC is 2020-07-16 00:30 in Brussels (summer time).
        assert_eq!(brussels_date(1_594_852_200).to_string(), "2020-07-16");
        assert_eq!(brussels_date(1_594_850_400 - 1).to_string(), "2020-07-15");
        // 2015-10-05 22:00 UTC is 2015-10-06 00:00 CEST.
        assert_eq!(brussels_date(1_444_082_400).to_string(), "2015-10-06");
        // Winter: 2022-12-26 23:30 UTC is 2022-12-27 00:30 CET.
        assert_eq!(brussels_date(1_672_097_400).to_string(), "2022-12-27");
        assert_eq!(brussels_date(1_672_093_800).to_string(), "2022-12-26");
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            rfc3339_micros(1_594_857_600_000_001),
            "2020-07-16T00:00:00.000001Z"
        );
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    }
}
