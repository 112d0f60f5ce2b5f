//! The legal day: each regime reads an instant as a calendar day in its issuing authority's
//! time zone (transfer-law.md §0.2). Only the zones the knowledge base names are known, each
//! as its standard offset and daylight-saving rule; no time-zone database is read.

use std::fmt;
use std::str::FromStr;

use crate::date::Date;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dst {
    None,
    /// EU rule (Directive 2000/84/EC): last Sunday of March to last Sunday of October, 01:00 UTC.
    Eu,
    /// US rule since 2007 (Energy Policy Act 2005): second Sunday of March to first Sunday of
    /// November, 02:00 local time.
    Us,
    /// South-eastern Australia (NSW, ACT, Victoria, Tasmania, since 2008): first Sunday of
    /// October, 02:00 local standard time, to first Sunday of April, 03:00 local summer time.
    Au,
}

/// A named time zone as the engine uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegalTz {
    name: &'static str,
    /// Standard offset from UTC in minutes.
    offset: i64,
    dst: Dst,
}

const ZONES: &[LegalTz] = &[
    LegalTz {
        name: "UTC",
        offset: 0,
        dst: Dst::None,
    },
    LegalTz {
        name: "Europe/Brussels",
        offset: 60,
        dst: Dst::Eu,
    },
    LegalTz {
        name: "Europe/London",
        offset: 0,
        dst: Dst::Eu,
    },
    LegalTz {
        name: "Europe/Zurich",
        offset: 60,
        dst: Dst::Eu,
    },
    // Moscow time has been UTC+3 all year since 26 October 2014.
    LegalTz {
        name: "Europe/Moscow",
        offset: 180,
        dst: Dst::None,
    },
    // Türkiye has kept UTC+3 all year since 7 September 2016.
    LegalTz {
        name: "Europe/Istanbul",
        offset: 180,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Shanghai",
        offset: 480,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Kolkata",
        offset: 330,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Tokyo",
        offset: 540,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Seoul",
        offset: 540,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Riyadh",
        offset: 180,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Ho_Chi_Minh",
        offset: 420,
        dst: Dst::None,
    },
    LegalTz {
        name: "Asia/Jakarta",
        offset: 420,
        dst: Dst::None,
    },
    LegalTz {
        name: "Australia/Sydney",
        offset: 600,
        dst: Dst::Au,
    },
    // Brazil abolished daylight saving time in 2019 (Decree 9,772).
    LegalTz {
        name: "America/Sao_Paulo",
        offset: -180,
        dst: Dst::None,
    },
    LegalTz {
        name: "America/Toronto",
        offset: -300,
        dst: Dst::Us,
    },
    LegalTz {
        name: "America/New_York",
        offset: -300,
        dst: Dst::Us,
    },
    LegalTz {
        name: "America/Los_Angeles",
        offset: -480,
        dst: Dst::Us,
    },
];

/// A time-zone name the engine does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}; expected one of {1}")]
pub struct TzError(String, String);

impl FromStr for LegalTz {
    type Err = TzError;
    fn from_str(s: &str) -> Result<LegalTz, TzError> {
        ZONES.iter().find(|z| z.name == s).copied().ok_or_else(|| {
            TzError(
                s.to_owned(),
                ZONES.iter().map(|z| z.name).collect::<Vec<_>>().join(", "),
            )
        })
    }
}

impl fmt::Display for LegalTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Default for LegalTz {
    fn default() -> LegalTz {
        ZONES[0]
    }
}

/// Unix seconds of 00:00 UTC on the `nth` (1-based; 0 = last) Sunday of `month`.
fn sunday(year: i32, month: u8, nth: u8) -> i64 {
    let day = |d: u8| Date::new(year, month, d).map_or(0, Date::unix_days);
    // 1970-01-01 was a Thursday: day 0 has weekday 4 (0 = Sunday).
    let weekday = |days: i64| (days + 4).rem_euclid(7);
    let days = if nth == 0 {
        let last = (28..=31)
            .rev()
            .find_map(|d| Date::new(year, month, d))
            .map_or(0, Date::unix_days);
        last - weekday(last)
    } else {
        let first = day(1);
        first + (7 - weekday(first)).rem_euclid(7) + 7 * i64::from(nth - 1)
    };
    days * 86_400
}

impl LegalTz {
    /// The offset from UTC, in seconds, at a Unix time.
    pub fn offset_at(&self, secs: i64) -> i64 {
        let std = self.offset * 60;
        let year = Date::from_unix_seconds(secs + std).year();
        let summer = match self.dst {
            Dst::None => false,
            Dst::Eu => secs >= sunday(year, 3, 0) + 3_600 && secs < sunday(year, 10, 0) + 3_600,
            // 02:00 local standard time starts summer; 02:00 local summer time ends it.
            Dst::Us => {
                secs >= sunday(year, 3, 2) + 7_200 - std
                    && secs < sunday(year, 11, 1) + 7_200 - std - 3_600
            }
            // Summer spans the new year: it ends in April and starts again in October, both at
            // 02:00 local standard time.
            Dst::Au => {
                secs < sunday(year, 4, 1) + 7_200 - std || secs >= sunday(year, 10, 1) + 7_200 - std
            }
        };
        std + if summer { 3_600 } else { 0 }
    }

    /// The calendar day in this zone at a Unix time.
    pub fn date(&self, secs: i64) -> Date {
        Date::from_unix_seconds(secs + self.offset_at(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str, hour: i64) -> i64 {
        s.parse::<Date>().unwrap().unix_days() * 86_400 + hour * 3_600
    }

    #[test]
    fn privacy_shield_ends_at_midnight_in_brussels() {
        let tz: LegalTz = "Europe/Brussels".parse().unwrap();
        // 22:00 UTC on 15 July 2020 is midnight CEST.
        assert_eq!(tz.date(utc("2020-07-15", 21)).to_string(), "2020-07-15");
        assert_eq!(tz.date(utc("2020-07-15", 22)).to_string(), "2020-07-16");
        // Winter: UTC+1.
        assert_eq!(tz.date(utc("2022-12-26", 23)).to_string(), "2022-12-27");
    }

    #[test]
    fn sydney_keeps_southern_summer_time() {
        let tz: LegalTz = "Australia/Sydney".parse().unwrap();
        // January: UTC+11, so 13:30 UTC is past midnight.
        assert_eq!(tz.date(utc("2025-01-15", 13)).to_string(), "2025-01-16");
        // July: UTC+10.
        assert_eq!(tz.date(utc("2025-07-15", 13)).to_string(), "2025-07-15");
        assert_eq!(tz.date(utc("2025-07-15", 14)).to_string(), "2025-07-16");
        // 6 April 2025, 03:00 summer time (16:00 UTC on the 5th), summer ends: before it the
        // offset is +11, after it +10.
        let end = utc("2025-04-05", 16);
        assert_eq!(tz.offset_at(end - 1), 39_600);
        assert_eq!(tz.offset_at(end), 36_000);
        // 5 October 2025, 02:00 standard time (16:00 UTC on the 4th), summer starts.
        let start = utc("2025-10-04", 16);
        assert_eq!(tz.offset_at(start - 1), 36_000);
        assert_eq!(tz.offset_at(start), 39_600);
    }

    #[test]
    fn each_zone_has_its_own_day() {
        let at = utc("2025-06-30", 23);
        let day = |z: &str| z.parse::<LegalTz>().unwrap().date(at).to_string();
        assert_eq!(day("Europe/London"), "2025-07-01");
        assert_eq!(day("Europe/Moscow"), "2025-07-01");
        assert_eq!(day("Asia/Shanghai"), "2025-07-01");
        assert_eq!(day("America/Sao_Paulo"), "2025-06-30");
        assert_eq!(day("America/Los_Angeles"), "2025-06-30");
        assert_eq!(day("UTC"), "2025-06-30");
    }

    #[test]
    fn us_daylight_saving_follows_the_2007_rule() {
        let la: LegalTz = "America/Los_Angeles".parse().unwrap();
        // 2025: DST from 9 March 10:00 UTC to 2 November 09:00 UTC.
        assert_eq!(la.offset_at(utc("2025-03-09", 9)), -8 * 3_600);
        assert_eq!(la.offset_at(utc("2025-03-09", 10)), -7 * 3_600);
        assert_eq!(la.offset_at(utc("2025-11-02", 8)), -7 * 3_600);
        assert_eq!(la.offset_at(utc("2025-11-02", 9)), -8 * 3_600);
    }

    #[test]
    fn unknown_zones_are_refused() {
        let e = "Mars/Olympus".parse::<LegalTz>().unwrap_err();
        assert!(e.to_string().contains("Europe/Brussels"), "{e}");
    }
}
