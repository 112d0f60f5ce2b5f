//! Detectors: byte scanners for values that are personal data by their shape. Linear time, no
//! backtracking, no allocation unless something is found.

use domicile_policy::{Category, Country};

/// What a detector found in one value (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub category: Category,
    pub detector: &'static str,
    /// The country the value belongs to, when its format says so.
    pub country: Option<Country>,
}

/// Runs every detector on one string and calls `out` for each hit (at most one per category).
pub fn scan(s: &str, mut out: impl FnMut(Hit)) {
    let b = s.as_bytes();
    // Fast reject: both detectors need a marker byte.
    let has_at = b.contains(&b'@');
    let has_plus = b.contains(&b'+');
    if has_at && contains_email(b) {
        out(Hit {
            category: Category::Email,
            detector: "email.rfc5322",
            country: None,
        });
    }
    if has_plus && let Some(country) = find_e164(s) {
        out(Hit {
            category: Category::Phone,
            detector: "phone.e164",
            country,
        });
    }
}

/// Whether any detector fires on `s` (used to redact keys that are data).
pub fn is_personal(s: &str) -> bool {
    let mut any = false;
    scan(s, |_| any = true);
    any
}

fn is_local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80 || b"!#$%&'*+/=?^_`{|}~.-".contains(&c)
}

fn is_domain_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80 || c == b'-' || c == b'.'
}

/// An address `local@domain.tld`: a non-empty local part, a domain of two or more labels,
/// labels not starting or ending with `-`, a TLD of two or more letters (or an IDN `xn--`).
fn contains_email(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'@') {
        let at = i + off;
        i = at + 1;
        let local_len = b[..at]
            .iter()
            .rev()
            .take_while(|&&c| is_local_byte(c))
            .count();
        if local_len == 0 || b[at - local_len] == b'.' || b[at - 1] == b'.' {
            continue;
        }
        let domain_len = b[at + 1..]
            .iter()
            .take_while(|&&c| is_domain_byte(c))
            .count();
        let mut domain = &b[at + 1..at + 1 + domain_len];
        // A sentence may end right after the address.
        while let [rest @ .., b'.'] = domain {
            domain = rest;
        }
        if valid_domain(domain) {
            return true;
        }
    }
    false
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&c| c == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2
        && last.len() >= 2
        && (last.iter().all(|c| c.is_ascii_alphabetic() || *c >= 0x80) || last.starts_with(b"xn--"))
}

/// Finds an international number: `+` then 8 to 15 digits, with spaces, dots, dashes or
/// parentheses (at most two in a row) between them. Returns the number's country when libphonenumber's metadata
/// knows it (`Some(None)` for a well-formed number of no single country).
fn find_e164(s: &str) -> Option<Option<Country>> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'+') {
        let start = i + off;
        i = start + 1;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'+') {
            continue;
        }
        let mut digits = 0;
        let mut end = start + 1;
        // Separators come alone or in pairs such as ") " or " (".
        let mut sep_run = 0;
        while end < b.len() {
            let c = b[end];
            if c.is_ascii_digit() {
                digits += 1;
                sep_run = 0;
            } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') && sep_run < 2 && digits > 0 {
                sep_run += 1;
            } else {
                break;
            }
            end += 1;
        }
        // Trailing separators are not part of the number.
        while end > start + 1 && matches!(b[end - 1], b' ' | b'-' | b'.' | b'(' | b')') {
            end -= 1;
        }
        let followed_by_alnum = end < b.len() && b[end].is_ascii_alphanumeric();
        if !(8..=15).contains(&digits) || followed_by_alnum || b.get(start + 1) == Some(&b'0') {
            continue;
        }
        let candidate = &s[start..end];
        return Some(number_country(candidate));
    }
    None
}

/// The country a number in international form belongs to. A calling code that only one
/// country uses answers directly; a shared one (+1, +7, +44, ...) needs libphonenumber's
/// number-range rules, which are much slower, so only those numbers are fully parsed.
fn number_country(candidate: &str) -> Option<Country> {
    let digits = candidate.bytes().filter(u8::is_ascii_digit).take(3);
    let mut code: u16 = 0;
    for (len, d) in digits.enumerate() {
        code = code * 10 + u16::from(d - b'0');
        match single_country_codes().get(&code) {
            Some(Some(c)) => return Some(*c),
            Some(None) => break,
            None if len < 2 => continue,
            None => return None,
        }
    }
    phonenumber::parse(None, candidate).ok().and_then(|n| {
        if !phonenumber::is_valid(&n) {
            return None;
        }
        n.country()
            .id()
            .and_then(|id| Country::parse(id.as_ref()).ok())
    })
}

/// Calling code → its country when exactly one country uses it, `None` when several do.
fn single_country_codes() -> &'static rustc_hash::FxHashMap<u16, Option<Country>> {
    static TABLE: std::sync::OnceLock<rustc_hash::FxHashMap<u16, Option<Country>>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let db = &*phonenumber::metadata::DATABASE;
        (1u16..1000)
            .filter_map(|code| {
                let regions = db.region(&code)?;
                let countries: Vec<Country> = regions
                    .iter()
                    .filter_map(|r| Country::parse(r).ok())
                    .collect();
                match countries.as_slice() {
                    [] => None,
                    [one] if regions.len() == 1 => Some((code, Some(*one))),
                    _ => Some((code, None)),
                }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(s: &str) -> Vec<(Category, Option<String>)> {
        let mut v = Vec::new();
        scan(s, |h| {
            v.push((h.category, h.country.map(|c| c.to_string())))
        });
        v
    }

    #[test]
    fn emails() {
        for s in [
            "jane.doe@example.com",
            "write to jane+tag@mail.example.co.uk.",
            "ünïcødé@bücher.example",
            "a@b.io",
            "x@xn--bcher-kva.example",
        ] {
            assert_eq!(cats(s), vec![(Category::Email, None)], "{s}");
        }
        for s in [
            "@example.com",
            "jane@",
            "jane@localhost",
            "jane@example.c",
            "a.@b.com",
            "price: 5 @ 3.00",
            "jane@-x.com",
        ] {
            assert!(cats(s).is_empty(), "{s}");
        }
    }

    #[test]
    fn phones_carry_their_country() {
        assert_eq!(
            cats("+49 30 901820"),
            vec![(Category::Phone, Some("DE".into()))]
        );
        assert_eq!(
            cats("call +33 1 42 68 53 00 now"),
            vec![(Category::Phone, Some("FR".into()))]
        );
        assert_eq!(
            cats("+1 (202) 456-1111"),
            vec![(Category::Phone, Some("US".into()))]
        );
        assert_eq!(
            cats("+442079460000"),
            vec![(Category::Phone, Some("GB".into()))]
        );
        assert_eq!(
            cats("+33 6 12 34 56 78"),
            vec![(Category::Phone, Some("FR".into()))]
        );
        assert_eq!(
            cats("+7 495 123-45-67"),
            vec![(Category::Phone, Some("RU".into()))]
        );
        assert_eq!(
            cats("+44 1534 123456"),
            vec![(Category::Phone, Some("JE".into()))]
        );
        for s in [
            "+123",
            "1+49301234567",
            "+49 30 9018 20abc",
            "version 2.0+build",
            "+0049301234567",
        ] {
            assert!(cats(s).is_empty(), "{s}");
        }
    }
}
