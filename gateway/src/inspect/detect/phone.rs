//! Phone numbers: international form anywhere, national forms in phone fields.

use domicile_policy::Country;

/// Finds an international number: `+` then 8 to 15 digits, with spaces, dots, dashes, slashes
/// or parentheses (at most two in a row) between and before them. Returns the number's country
/// when libphonenumber's metadata knows it (`Some(None)` for a well-formed number of no single
/// country).
pub(super) fn find_e164(s: &str) -> Option<Option<Country>> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'+') {
        let start = i + off;
        i = start + 1;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'+') {
            continue;
        }
        let mut digits = 0;
        let mut first_digit = None;
        let mut end = start + 1;
        // Separators come alone or in pairs such as ") " or " (", also before the first digit
        // (`+(49) 30 901820`, `+ 49 30 901820`).
        let mut sep_run = 0;
        while end < b.len() {
            let c = b[end];
            if c.is_ascii_digit() {
                first_digit.get_or_insert(c);
                digits += 1;
                sep_run = 0;
            } else if is_separator(c) && sep_run < 2 {
                sep_run += 1;
            } else {
                break;
            }
            end += 1;
        }
        // Trailing separators are not part of the number.
        while end > start + 1 && is_separator(b[end - 1]) {
            end -= 1;
        }
        let followed_by_alnum = end < b.len() && b[end].is_ascii_alphanumeric();
        if !(8..=15).contains(&digits) || followed_by_alnum || first_digit == Some(b'0') {
            continue;
        }
        let candidate = &s[start..end];
        return Some(number_country(candidate));
    }
    None
}

/// What may stand between the digits of a number: spaces, dashes, dots, slashes (`30/901820`)
/// and parentheses.
fn is_separator(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
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
    let key = plan_key(0, candidate);
    if let Some(known) = plan_lookup(key) {
        return known;
    }
    if !spend_lookup() {
        // Still a number in international form; which of the code's countries is not known.
        return None;
    }
    let country = phonenumber::parse(None, candidate).ok().and_then(|n| {
        if !phonenumber::is_valid(&n) {
            return None;
        }
        n.country()
            .id()
            .and_then(|id| Country::parse(id.as_ref()).ok())
    });
    plan_store(key, country);
    country
}

/// Full numbering-plan lookups (libphonenumber, for a prefix not seen before) one inspection
/// may make. Each costs from about a hundred microseconds (a national number tried against 24
/// plans) to milliseconds; without a bound, a body or query of distinct numbers in a phone
/// field would cost seconds of CPU. Past it a number is still found, its country unknown.
const LOOKUP_BUDGET: u32 = 16;

thread_local! {
    static LOOKUPS_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(LOOKUP_BUDGET) };
}

/// Starts a new inspection's lookup budget on this thread ([`LOOKUP_BUDGET`]).
pub(crate) fn new_lookup_budget() {
    LOOKUPS_LEFT.with(|b| b.set(LOOKUP_BUDGET));
}

/// Takes one lookup from the budget; false when none is left. (The first lookup the process
/// makes gives libphonenumber its larger cache first.)
fn spend_lookup() -> bool {
    let left = LOOKUPS_LEFT.with(|b| match b.get() {
        0 => false,
        n => {
            b.set(n - 1);
            true
        }
    });
    if left {
        grow_regex_cache();
    }
    left
}

/// Compiled regular expressions libphonenumber keeps. Its own cache holds 100, fewer than the
/// plans of the regions a national number is tried against, so every lookup compiled them
/// again (milliseconds); with room for all of them a lookup is about 0.1 ms.
const REGEX_CACHE: usize = 4096;

fn grow_regex_cache() {
    static GROWN: std::sync::Once = std::sync::Once::new();
    GROWN.call_once(|| {
        if let Ok(mut cache) = phonenumber::metadata::DATABASE.cache().lock() {
            *cache = regex_cache::RegexCache::new(REGEX_CACHE);
        }
    });
}

/// What libphonenumber said about numbers by their leading digits and length.
///
/// libphonenumber decides a number's region with regular expressions that its crate compiles
/// into a cache of 100; the regions of one shared calling code (+1 has 25) or the plans tried
/// for a national number overflow it, so every parse compiles again (milliseconds). The region
/// follows from the leading digits (the area code or range) and the length, so the answer for
/// the first number of a prefix serves the others. Bounded; cleared when full.
fn plans() -> &'static std::sync::Mutex<rustc_hash::FxHashMap<u64, Option<Country>>> {
    static PLANS: std::sync::OnceLock<
        std::sync::Mutex<rustc_hash::FxHashMap<u64, Option<Country>>>,
    > = std::sync::OnceLock::new();
    PLANS.get_or_init(Default::default)
}

const MAX_PLANS: usize = 65_536;

/// The leading six digits, the digit count and the kind of lookup, packed.
fn plan_key(kind: u64, s: &str) -> u64 {
    let mut lead = 0u64;
    let mut n = 0u64;
    for c in s.bytes().filter(u8::is_ascii_digit) {
        if n < 6 {
            lead = lead * 10 + u64::from(c - b'0');
        }
        n += 1;
    }
    (kind << 40) | (n << 32) | lead
}

fn plan_lookup(key: u64) -> Option<Option<Country>> {
    plans().lock().ok()?.get(&key).copied()
}

fn plan_store(key: u64, country: Option<Country>) {
    if let Ok(mut m) = plans().lock() {
        if m.len() >= MAX_PLANS {
            m.clear();
        }
        m.insert(key, country);
    }
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

/// Regions a national number in a phone field is tried against: the countries whose formats
/// the gateway is expected to see most, each tried with libphonenumber's full rules.
const NATIONAL_REGIONS: [&str; 24] = [
    "DE", "FR", "GB", "ES", "IT", "NL", "PT", "BR", "PL", "SE", "US", "IN", "JP", "CN", "AT", "BE",
    "CH", "IE", "DK", "NO", "FI", "MX", "AU", "CA",
];

/// A number in national form (`030 901820`, `06 12 34 56 78`, `(202) 456-1111`) or with an
/// international `00` prefix, as found in a field known to hold a phone number. Returns the
/// country when exactly one region's numbering plan accepts it (`Some(None)` when several do).
pub(super) fn national(s: &str) -> Option<Option<Country>> {
    let t = s.trim();
    let mut digits = 0;
    for c in t.bytes() {
        match c {
            b'0'..=b'9' => digits += 1,
            b' ' | b'-' | b'.' | b'/' | b'(' | b')' => {}
            _ => return None,
        }
    }
    if !(6..=15).contains(&digits) {
        return None;
    }
    if let Some(rest) = t.strip_prefix("00") {
        return find_e164(&format!("+{rest}"));
    }
    let key = plan_key(1 + u64::from(t.starts_with('0')), t);
    if let Some(known) = plan_lookup(key) {
        return Some(known);
    }
    if !spend_lookup() {
        // In a phone field, with a phone's digits: a phone, its country not worked out.
        return Some(None);
    }
    let mut found = None;
    let mut valid = 0;
    for region in NATIONAL_REGIONS {
        let Ok(id) = region.parse::<phonenumber::country::Id>() else {
            continue;
        };
        if phonenumber::parse(Some(id), t).is_ok_and(|n| phonenumber::is_valid(&n)) {
            valid += 1;
            found = Country::parse(region).ok();
        }
    }
    let answer = match valid {
        0 => return None,
        1 => found,
        _ => None,
    };
    plan_store(key, answer);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspection_makes_a_bounded_number_of_full_lookups() {
        new_lookup_budget();
        // Numbers no plan accepts (15 digits), each of another prefix: every one would need a
        // full lookup.
        let answers: Vec<Option<Option<Country>>> = (0..24)
            .map(|k| national(&format!("0{:03} {:011}", 100 + k, 7)))
            .collect();
        // Within the budget they are looked up (and are no phone number); past it, a value in a
        // phone field with a phone's digits counts as a phone whose country is not known.
        let budget = LOOKUP_BUDGET as usize;
        assert!(answers[..budget].iter().all(Option::is_none), "{answers:?}");
        assert!(
            answers[budget..].iter().all(|a| *a == Some(None)),
            "{answers:?}"
        );
        // A new inspection has a new budget.
        new_lookup_budget();
        assert_eq!(national("0999 00000000007"), None);
    }
}
