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

/// Appends `n` zero-padded to `width` digits.
fn push_digits(s: &mut String, n: i64, width: u32) {
    for p in (0..width).rev() {
        s.push((b'0' + ((n / 10_i64.pow(p)) % 10) as u8) as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            rfc3339_micros(1_594_857_600_000_001),
            "2020-07-16T00:00:00.000001Z"
        );
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    }
}
