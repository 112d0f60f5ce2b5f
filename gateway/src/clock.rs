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

/// An RFC 3339 UTC timestamp with microseconds, e.g. `2026-11-28T23:47:06.123456Z`: fixed
/// width, kept on the stack (records take two per request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp([u8; 27]);

impl Timestamp {
    pub fn as_str(&self) -> &str {
        // Digits and ASCII punctuation only.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The same text as bytes, for writers that take bytes (no UTF-8 check).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

domicile_regions::text_traits!(Timestamp);

/// The RFC 3339 UTC timestamp, with microseconds, of a time in microseconds since the epoch.
pub fn rfc3339_micros(micros: i64) -> Timestamp {
    // The date and time of day change once a second, and a thread writes many records a
    // second: those 20 bytes are kept per thread with the second they are for.
    thread_local! {
        static SECOND: std::cell::Cell<(i64, [u8; 20])> =
            const { std::cell::Cell::new((i64::MIN, [0; 20])) };
    }
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (at, prefix) = SECOND.get();
    if at == secs {
        let mut t = *b"0000-00-00T00:00:00.000000Z";
        t[..20].copy_from_slice(&prefix);
        put_digits(&mut t[20..26], frac);
        return Timestamp(t);
    }
    let t = format_rfc3339(secs, frac);
    let mut prefix = [0u8; 20];
    prefix.copy_from_slice(&t.0[..20]);
    SECOND.set((secs, prefix));
    t
}

/// [`rfc3339_micros`] worked out from the seconds and the microseconds within them.
fn format_rfc3339(secs: i64, frac: i64) -> Timestamp {
    let date = Date::from_unix_seconds(secs);
    let tod = secs.rem_euclid(86_400);
    let mut t = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut t[0..4], i64::from(date.year()));
    put_digits(&mut t[5..7], i64::from(date.month()));
    put_digits(&mut t[8..10], i64::from(date.day()));
    put_digits(&mut t[11..13], tod / 3600);
    put_digits(&mut t[14..16], (tod % 3600) / 60);
    put_digits(&mut t[17..19], tod % 60);
    put_digits(&mut t[20..26], frac);
    Timestamp(t)
}

/// Reads an RFC 3339 time (`2026-11-29T12:00:00+02:00`, `2026-11-29T10:00:00.5Z`; `t` or a
/// space for `T`, `z` for `Z`) or a date alone (its midnight UTC) as microseconds since the
/// epoch. Digits past the sixth of a fraction are dropped; a leap second reads as the second
/// before it.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let days = s.get(..10)?.parse::<Date>().ok()?.unix_days();
    if b.len() == 10 {
        return Some(days * 86_400 * 1_000_000);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut frac = 0i64;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        for k in 0..6 {
            frac = frac * 10
                + b.get(at + 1 + k)
                    .filter(|_| k < digits)
                    .map_or(0, |c| i64::from(c - b'0'));
        }
        at += 1 + digits;
    }
    let offset = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    Some(secs * 1_000_000 + frac)
}

/// Writes the last `out.len()` digits of `n` (non-negative) into `out`, zero-padded.
fn put_digits(out: &mut [u8], n: i64) {
    // Right to left by tens: no power of ten and no division by one per digit.
    let mut n = n.unsigned_abs();
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Appends the current time as an HTTP date (RFC 9110 section 5.6.7), formatted once per
/// second per thread.
pub fn http_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (at, mut text) = CACHED.get();
    if at != secs {
        let formatted = httpdate::fmt_http_date(now);
        if formatted.len() == text.len() {
            text.copy_from_slice(formatted.as_bytes());
            CACHED.set((secs, text));
        } else {
            out.extend_from_slice(formatted.as_bytes());
            return;
        }
    }
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_date_is_the_current_second_whether_formatted_or_cached() {
        for _ in 0..3 {
            let before = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut out = Vec::new();
            http_date(&mut out);
            let after = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(text.len(), 29, "{text}");
            assert!(text.ends_with(" GMT"), "{text}");
            let at = httpdate::parse_http_date(text)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!((before..=after).contains(&at), "{text}");
        }
    }

    #[test]
    fn digits_are_zero_padded_and_cut_to_width() {
        for n in [0i64, 7, 42, 999, 1_000, 2026, 123_456, 999_999, 1_000_000] {
            for width in [1u32, 2, 4, 6] {
                let mut s = vec![b'x'; width as usize];
                put_digits(&mut s, n);
                let full = format!("{n:020}");
                assert_eq!(s, &full.as_bytes()[20 - width as usize..], "{n} {width}");
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
    fn parses_rfc3339_times_and_dates_to_utc() {
        let at = |s: &str| parse_rfc3339(s).map(|m| rfc3339_micros(m).as_str().to_owned());
        let utc = |s: &str| Some(s.to_owned());
        assert_eq!(at("2026-11-29"), utc("2026-11-29T00:00:00.000000Z"));
        assert_eq!(
            at("2026-11-29T12:00:00Z"),
            utc("2026-11-29T12:00:00.000000Z")
        );
        assert_eq!(
            at("2026-11-29T12:00:00+02:00"),
            utc("2026-11-29T10:00:00.000000Z")
        );
        assert_eq!(
            at("2026-11-29t01:30:00-02:30"),
            utc("2026-11-29T04:00:00.000000Z")
        );
        // Across midnight, a month and a year.
        assert_eq!(
            at("2027-01-01T00:30:00+01:00"),
            utc("2026-12-31T23:30:00.000000Z")
        );
        assert_eq!(
            at("2026-11-29 10:00:00.5z"),
            utc("2026-11-29T10:00:00.500000Z")
        );
        assert_eq!(
            at("2026-11-29T10:00:00.123456789Z"),
            utc("2026-11-29T10:00:00.123456Z")
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-29T24:00:00Z",
            "2026-11-29T10:00:00",
            "2026-11-29T10:00:00.Z",
            "2026-11-29T10:00:00+0200",
            "2026-11-29T10:00:00+02:00x",
            "2026-11-29X",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            rfc3339_micros(1_594_857_600_000_001),
            "2020-07-16T00:00:00.000001Z"
        );
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_kept_second_serves_only_its_own_times() {
        // Within one second, across its edges (a day's and a year's), and back again.
        let last = 1_798_761_599_000_000; // 2026-12-31T23:59:59Z
        for (m, text) in [
            (last, "2026-12-31T23:59:59.000000Z"),
            (last + 999_999, "2026-12-31T23:59:59.999999Z"),
            (last + 1_000_000, "2027-01-01T00:00:00.000000Z"),
            (last + 1_000_001, "2027-01-01T00:00:00.000001Z"),
            (last + 5, "2026-12-31T23:59:59.000005Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (0, "1970-01-01T00:00:00.000000Z"),
        ] {
            assert_eq!(rfc3339_micros(m), text);
            assert_eq!(
                rfc3339_micros(m),
                format_rfc3339(m.div_euclid(1_000_000), m.rem_euclid(1_000_000))
            );
        }
    }
}
