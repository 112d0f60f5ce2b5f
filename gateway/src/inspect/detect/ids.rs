//! Identifiers with check digits: IBAN, payment cards and national identifiers.
//!
//! A value is cut into runs of identifier-like words (letters and digits, with `-`, `.` and `/`
//! inside a word, and words separated by spaces), and every window of a run is reduced to its
//! letters and digits and tried against each format. A format whose check digit is strong, or
//! whose written form is distinctive (`123-45-6789`), is reported anywhere; one whose check
//! catches only one random number in ten or eleven is reported only in a field that is named as
//! an identifier (`contextual`), where the field name already says what the value is.

use domicile_policy::{Category, Country};

use super::Hit;

/// The longest reduced window tried (an IBAN has at most 34 characters).
const MAX_COMPACT: usize = 34;

/// The most words one run holds (an IBAN written in pairs has 17).
const MAX_WORDS: usize = 24;

/// Finds identifiers in `s`. `contextual` enables the formats whose check alone is weak.
pub(super) fn scan(s: &str, contextual: bool, out: &mut dyn FnMut(Hit)) {
    scan_runs::<true>(s, contextual, out);
}

/// [`scan`]; with `PRUNE`, a run that can hold no identifier is not tried ([`may_hold_one`]).
fn scan_runs<const PRUNE: bool>(s: &str, contextual: bool, out: &mut dyn FnMut(Hit)) {
    let b = s.as_bytes();
    let mut words: [(usize, usize); MAX_WORDS] = [(0, 0); MAX_WORDS];
    let mut n = 0;
    // Letters and digits of the run's first word.
    let mut first_alnum = 0;
    // The run began with a lower-case pair of letters.
    let mut lower_start = false;
    let mut i = 0;
    while i < b.len() {
        // Next word: delimited by spaces and punctuation that never sits inside an identifier.
        while i < b.len() && WORD[usize::from(b[i])] & DELIM != 0 {
            i += 1;
        }
        // The word's classes are learnt while its end is found.
        let start = i;
        let (mut classes, mut alnum) = (0u8, 0usize);
        while i < b.len() {
            let k = WORD[usize::from(b[i])];
            if k & DELIM != 0 {
                break;
            }
            classes |= k;
            alnum += usize::from(k >> 6);
            i += 1;
        }
        let (mut ws, mut we) = (start, i);
        while ws < we && WORD[usize::from(b[ws])] & SEP != 0 {
            ws += 1;
        }
        while we > ws && WORD[usize::from(b[we - 1])] & SEP != 0 {
            we -= 1;
        }
        let word = &b[ws..we];
        // Separators alone (the `-` of `4111 - 1111`) are part of the gap between two words.
        if word.is_empty() && start < i && classes == SEP {
            continue;
        }
        // A gap of up to four spaces or tabs, with at most one separator among them
        // (`4111 1111`, `4111\t1111`, `4111 - 1111`), joins two words; a wider gap, or any
        // other delimiter, ends a run.
        let joined = n > 0 && {
            let gap = &b[words[n - 1].1..ws];
            gap.len() <= 4
                && gap
                    .iter()
                    .all(|&c| matches!(c, b' ' | b'\t') || WORD[usize::from(c)] == SEP)
                && gap.iter().filter(|&&c| WORD[usize::from(c)] == SEP).count() <= 1
        };
        // Letters, digits and inner separators only; a digit, or a short upper-case word (an
        // IBAN's country); no more letters and digits than the longest identifier (a digest, a
        // token is never part of one). In lower case, a pair of letters (`ab 12 34 56 c`,
        // `de 89 3704 ...`) starts a run, and a single letter may end a run that one started:
        // a lone `a` or `y` after a number is too common in prose to be read as a check letter.
        let lower = classes & (DIGIT | UPPER | OTHER) == 0;
        let idish = !word.is_empty()
            && classes & OTHER == 0
            && alnum <= MAX_COMPACT
            && (classes & DIGIT != 0
                || (word.len() <= 4 && word.iter().all(u8::is_ascii_uppercase))
                // A codice fiscale whose digits omocodia wrote as letters.
                || (word.len() == 16 && word.iter().all(u8::is_ascii_uppercase))
                || (lower && word.len() == 2)
                || (lower && word.len() == 1 && joined && lower_start));
        if !idish || !joined || n == words.len() {
            if n > 0 && (!PRUNE || may_hold_one(b, &words[..n], first_alnum)) {
                run(s, &words[..n], contextual, out);
            }
            n = 0;
        }
        if idish {
            if n == 0 {
                lower_start = lower && word.len() == 2;
                first_alnum = alnum;
            }
            words[n] = (ws, we);
            n += 1;
        }
    }
    if n > 0 && (!PRUNE || may_hold_one(b, &words[..n], first_alnum)) {
        run(s, &words[..n], contextual, out);
    }
}

/// Whether a run of words may hold an identifier, told without reducing it. A run of one word
/// has one window, the word; longer than any format but an IBAN (nineteen letters and
/// digits), it can only be an IBAN, which starts with two letters and two digits. A URL's
/// host and path (`cdn.example.com/p/1000703/1.jpg`) is such a word.
fn may_hold_one(b: &[u8], words: &[(usize, usize)], first_alnum: usize) -> bool {
    let [(ws, we)] = words else {
        return true;
    };
    first_alnum <= 19 || iban_start(&b[*ws..*we])
}

/// Whether the letters and digits of `word` start as an IBAN's do: two letters, two digits.
fn iban_start(word: &[u8]) -> bool {
    // Read only as far as the first character that rules an IBAN out.
    let mut head = word.iter().filter(|c| c.is_ascii_alphanumeric());
    head.next().is_some_and(u8::is_ascii_alphabetic)
        && head.next().is_some_and(u8::is_ascii_alphabetic)
        && head.next().is_some_and(u8::is_ascii_digit)
        && head.next().is_some_and(u8::is_ascii_digit)
}

/// Whether `word`, a run of one word (letters and digits, and any of `-`, `.`, `/`, `_`) with
/// between `lo` and `hi` letters and digits, may hold an identifier: no format has fewer than
/// nine letters and digits or more than [`MAX_COMPACT`], and one of more than nineteen is an
/// IBAN ([`may_hold_one`]). `true` when any count in the range may.
pub(super) fn lone_word_may_hold(word: &[u8], lo: usize, hi: usize) -> bool {
    hi >= 9 && lo <= MAX_COMPACT && (lo <= 19 || iban_start(word))
}

/// Whether `c` ends a word or cannot be in one, `:` aside: what the profile's `BREAKS_WORD`
/// class is made from.
pub(super) const fn breaks_word(c: u8) -> bool {
    WORD[c as usize] & (DELIM | OTHER) != 0 && c != b':'
}

/// Byte classes for cutting a value into words, one table lookup per byte.
const DELIM: u8 = 1;
/// `-`, `.`, `/` and `_`: inside a word, never at its ends.
const SEP: u8 = 2;
const DIGIT: u8 = 4;
const UPPER: u8 = 8;
const LOWER: u8 = 16;
/// Anything else inside a word.
const OTHER: u8 = 32;
/// Set with each of [`DIGIT`], [`UPPER`] and [`LOWER`], as the top bit: shifted down, it counts
/// a letter or digit without a test.
const ALNUM: u8 = 64;

const WORD: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'0'..=b'9' => DIGIT | ALNUM,
            b'A'..=b'Z' => UPPER | ALNUM,
            b'a'..=b'z' => LOWER | ALNUM,
            b'-' | b'.' | b'/' | b'_' => SEP,
            // Spaces and punctuation that never sit inside an identifier.
            b' ' | b'\t' | b'\n' | b'\x0c' | b'\r' | b',' | b';' | b':' | b'=' | b'(' | b')'
            | b'[' | b']' | b'{' | b'}' | b'<' | b'>' | b'"' | b'\'' | b'|' | b'#' | b'&'
            | b'?' | b'!' | b'*' => DELIM,
            _ => OTHER,
        };
        c += 1;
    }
    t
};

/// Tries the windows of a run of words, longest first from each start, so that a number
/// written in groups is read whole before any of its parts.
fn run(s: &str, words: &[(usize, usize)], contextual: bool, out: &mut dyn FnMut(Hit)) {
    let b = s.as_bytes();
    // No format is shorter than nine characters (`de la`, `AB 12`).
    if words.iter().map(|&(ws, we)| we - ws).sum::<usize>() < 9 {
        return;
    }
    // Alphanumeric characters of each word, reduced once.
    let mut compact = [0u8; MAX_COMPACT * 2];
    let mut ends = [0u8; MAX_WORDS];
    let mut len = 0;
    for (n, &(ws, we)) in words.iter().enumerate() {
        for &c in &b[ws..we] {
            // Without a branch on the byte: letters and digits of identifiers come in no
            // predictable order.
            if len < compact.len() {
                compact[len] = c.to_ascii_uppercase();
                len += usize::from(WORD[usize::from(c)] & (DIGIT | UPPER | LOWER) != 0);
            }
        }
        ends[n] = len as u8;
    }
    let mut start = 0;
    'outer: while start < words.len() {
        let from = if start == 0 {
            0
        } else {
            usize::from(ends[start - 1])
        };
        // A window that starts with a digit is at most a card number long: every longer
        // format starts with letters (an IBAN's country).
        let longest = if compact.get(from).is_some_and(u8::is_ascii_digit) {
            19
        } else {
            MAX_COMPACT
        };
        for end in (start..words.len()).rev() {
            let window = &compact[from..usize::from(ends[end])];
            if window.len() > longest {
                continue;
            }
            // No format is shorter than nine characters, nor are the shorter windows left.
            if window.len() < 9 {
                break;
            }
            // A window costs its bytes and the checks tried on it.
            if !super::spend(window.len() + 16, out) {
                return;
            }
            let raw = &s[words[start].0..words[end].1];
            if let Some(hit) = identify(window, raw, contextual) {
                out(hit);
                start = end + 1;
                continue 'outer;
            }
        }
        start += 1;
    }
}

fn hit(detector: &'static str, category: Category, country: &str, confidence: u8) -> Hit {
    Hit {
        category,
        detector,
        country: Country::parse(country).ok(),
        confidence,
    }
}

fn id(detector: &'static str, country: &str, confidence: u8) -> Option<Hit> {
    Some(hit(detector, Category::NationalId, country, confidence))
}

/// Tries one reduced window against every format, most distinctive first.
fn identify(c: &[u8], raw: &str, contextual: bool) -> Option<Hit> {
    let digits = c.iter().all(u8::is_ascii_digit);
    if c.len() >= 15 && iban(c) {
        let country = std::str::from_utf8(&c[..2]).unwrap_or("");
        return Some(hit("iban.mod97", Category::Iban, country, 95));
    }
    if c.len() == 16 && codice_fiscale(c) {
        return id("id.it_codice_fiscale", "IT", 95);
    }
    if c.len() == 18 && cn_resident(c) {
        return id("id.cn_resident_id", "CN", 95);
    }
    if c.len() == 9 && uk_nino(c) {
        return id("id.uk_nino", "GB", 90);
    }
    if c.len() == 9 && es_dni(c) {
        let det = if c[0].is_ascii_digit() {
            "id.es_dni"
        } else {
            "id.es_nie"
        };
        return id(det, "ES", 90);
    }
    if c.len() == 15 && fr_nir(c) {
        return id("id.fr_nir", "FR", 90);
    }
    if (c.len() == 10 || c.len() == 11) && fi_hetu(c, raw) {
        // A dashed number that is also a valid Swedish personnummer (one in thirty-one of
        // those whose date reads both ways) is an identifier of either country: none is named.
        if digits && c.len() == 10 && se_personnummer(c) {
            return Some(hit("id.fi_hetu", Category::NationalId, "", 80));
        }
        return id("id.fi_hetu", "FI", 90);
    }
    if !digits {
        return None;
    }
    // Written 6-7 with a dash, a resident registration number is read before the card check
    // (no card is written so).
    if c.len() == 13 && (contextual || (raw.len() == 14 && shaped(raw, &[6, 7], b'-'))) {
        match kr_rrn(c) {
            Some(true) => return id("id.kr_rrn", "KR", 90),
            // Without a check digit (issued since October 2020, or another country's
            // date-based number) only a field named as an identifier says it is one, and
            // no country is named: a date alone is no jurisdiction evidence.
            Some(false) if contextual => {
                return Some(hit("id.kr_rrn", Category::NationalId, "", 70));
            }
            _ => {}
        }
    }
    if (13..=19).contains(&c.len()) && payment_card(c) {
        return Some(Hit {
            category: Category::PaymentCard,
            detector: "card.luhn",
            country: None,
            confidence: 90,
        });
    }
    match c.len() {
        9 => {
            // Written 3-2-4 with dots, dashes or spaces ([`shaped`] splits on `-` and spaces
            // besides the separator it is given).
            let ssn_shape = shaped(raw, &[3, 2, 4], b'.');
            if us_ssn(c) && (contextual || ssn_shape) {
                return id("id.us_ssn", "US", 85);
            }
            if contextual && nl_bsn(c) {
                return id("id.nl_bsn", "NL", 75);
            }
        }
        10 if se_personnummer(c)
            && (contextual || shaped(raw, &[6, 4], b'-') || shaped(raw, &[6, 4], b'+')) =>
        {
            return id("id.se_personnummer", "SE", 80);
        }
        11 => {
            if pl_pesel(c) {
                return id("id.pl_pesel", "PL", 85);
            }
            if br_cpf(c) && (contextual || shaped(raw, &[3, 3, 3, 2], b'.')) {
                return id("id.br_cpf", "BR", 90);
            }
            if de_steuer_id(c) {
                return id("id.de_steuer_id", "DE", 80);
            }
        }
        12 => {
            if se_personnummer(c) {
                return id("id.se_personnummer", "SE", 85);
            }
            let grouped = shaped(raw, &[4, 4, 4], b' ') || shaped(raw, &[4, 4, 4], b'-');
            if in_aadhaar(c) && (contextual || grouped) {
                return id("id.in_aadhaar", "IN", 80);
            }
            if contextual && jp_my_number(c) {
                return id("id.jp_my_number", "JP", 75);
            }
        }
        _ => {}
    }
    None
}

/// Whether `raw` is digit groups of the given lengths joined by separators (the last group
/// of a CPF is joined by `-`, any other separator by `sep`, `-` or a space).
fn shaped(raw: &str, groups: &[usize], sep: u8) -> bool {
    let mut parts = 0;
    let mut expect = groups.iter();
    for part in raw.split([sep as char, '-', ' ']) {
        if part.is_empty() {
            continue;
        }
        match expect.next() {
            Some(&n) if part.len() == n && part.bytes().all(|c| c.is_ascii_digit()) => parts += 1,
            _ => return false,
        }
    }
    parts == groups.len() && parts > 1
}

fn d(c: u8) -> u32 {
    u32::from(c - b'0')
}

/// The number ASCII digits write (at most nine of them).
fn num(c: &[u8]) -> u32 {
    c.iter().fold(0, |a, &x| a * 10 + d(x))
}

/// The Luhn (mod 10) check over ASCII digits.
pub(crate) fn luhn(c: &[u8]) -> bool {
    let mut sum = 0;
    for (i, &x) in c.iter().rev().enumerate() {
        let mut v = d(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// IBAN lengths by country (ISO 13616 registry, SWIFT, release 99 of 2024).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// ISO 13616: a known country, its length, and the mod-97 check (ISO 7064 MOD 97-10).
pub(crate) fn iban(c: &[u8]) -> bool {
    if c.len() < 15
        || !c[..2].iter().all(u8::is_ascii_uppercase)
        || !c[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(cc, _)| cc[..] == c[..2]) else {
        return false;
    };
    if c.len() != len {
        return false;
    }
    let mut rem: u32 = 0;
    for &x in c[4..].iter().chain(&c[..4]) {
        if x.is_ascii_digit() {
            rem = (rem * 10 + d(x)) % 97;
        } else {
            rem = (rem * 100 + u32::from(x - b'A') + 10) % 97;
        }
    }
    rem == 1
}

/// Luhn, a length the brand issues now, and an issuer range (ISO/IEC 7812 IINs of Visa,
/// Mastercard, American Express, Discover, JCB, Diners Club, UnionPay, Maestro and Mir).
pub(crate) fn payment_card(c: &[u8]) -> bool {
    let n = c.len();
    let p = |k: usize| -> u32 { c[..k].iter().fold(0, |a, &x| a * 10 + d(x)) };
    let brand_ok = match c[0] {
        // Visa stopped issuing 13-digit numbers; an EAN-13 barcode must not pass for one.
        b'4' => matches!(n, 16 | 19),
        b'5' => (p(2) >= 51 && p(2) <= 55 && n == 16) || (matches!(p(2), 50 | 56..=58) && n >= 12),
        b'2' => n == 16 && ((2221..=2720).contains(&p(4)) || (2200..=2204).contains(&p(4))),
        b'3' => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&n))
                || ((matches!(p(3), 300..=305) || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&n))
        }
        b'6' => {
            (p(4) == 6011 || (644..=649).contains(&p(3)) || p(2) == 65 || p(2) == 62 || p(2) == 67)
                && (16..=19).contains(&n)
        }
        _ => false,
    };
    brand_ok && luhn(c)
}

/// US SSN: area 001-899 but not 666, group 01-99, serial 0001-9999 (SSA rules since 2011).
fn us_ssn(c: &[u8]) -> bool {
    let area = c[..3].iter().fold(0, |a, &x| a * 10 + d(x));
    let group = d(c[3]) * 10 + d(c[4]);
    let serial = c[5..].iter().fold(0, |a, &x| a * 10 + d(x));
    (1..900).contains(&area) && area != 666 && group != 0 && serial != 0
}

/// UK National Insurance number: two prefix letters (HMRC's excluded letters and pairs), six
/// digits, suffix A-D.
fn uk_nino(c: &[u8]) -> bool {
    let (a, b) = (c[0], c[1]);
    a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && !b"DFIQUV".contains(&a)
        && !b"DFIOQUV".contains(&b)
        && ![b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"].contains(&&[a, b])
        && c[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&c[8])
}

/// French NIR (numéro de sécurité sociale): sex, year, month, department (2A/2B for Corsica),
/// commune, order, and the key 97 - (number mod 97).
fn fr_nir(c: &[u8]) -> bool {
    if !b"123478".contains(&c[0]) {
        return false;
    }
    let corsica = match &c[5..7] {
        b"2A" => Some(19),
        b"2B" => Some(18),
        _ => None,
    };
    let body_ok = c
        .iter()
        .enumerate()
        .all(|(i, x)| x.is_ascii_digit() || (i == 6 && corsica.is_some()));
    if !body_ok {
        return false;
    }
    let month = d(c[3]) * 10 + d(c[4]);
    if !(matches!(month, 1..=12 | 20..=42 | 50..=99)) {
        return false;
    }
    let mut n: u64 = 0;
    for (i, &x) in c[..13].iter().enumerate() {
        if i == 5
            && let Some(v) = corsica
        {
            n = n * 100 + v;
            continue;
        }
        if i == 6 && corsica.is_some() {
            continue;
        }
        n = n * 10 + u64::from(x - b'0');
    }
    let key = u64::from(d(c[13]) * 10 + d(c[14]));
    97 - n % 97 == key
}

/// German Steuer-Identifikationsnummer: no leading zero, in the first ten digits one digit twice
/// or three times and the rest at most once, check digit by ISO 7064 MOD 11,10.
fn de_steuer_id(c: &[u8]) -> bool {
    if c[0] == b'0' {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in &c[..10] {
        counts[d(x) as usize] += 1;
    }
    let repeated = counts.iter().filter(|&&k| k > 1).count();
    if repeated != 1 || counts.iter().any(|&k| k > 3) {
        return false;
    }
    let mut product = 10;
    for &x in &c[..10] {
        let mut sum = (d(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == d(c[10])
}

/// The odd-position values of the codice fiscale check (DM 23/12/1976, annex).
pub(crate) const CF_ODD: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// [`codice_fiscale`] of a whole value, for tests that make one.
#[cfg(test)]
pub(super) fn is_codice_fiscale(c: &[u8]) -> bool {
    c.len() == 16 && codice_fiscale(c)
}

/// Italian codice fiscale: surname and name letters, year, month letter, day (+40 for women),
/// place code, check letter; digits may be replaced by letters (omocodia).
fn codice_fiscale(c: &[u8]) -> bool {
    let digitish = |x: u8| x.is_ascii_digit() || b"LMNPQRSTUV".contains(&x);
    let shape = c[..6].iter().all(u8::is_ascii_uppercase)
        && c[6..8].iter().all(|&x| digitish(x))
        && b"ABCDEHLMPRST".contains(&c[8])
        && c[9..11].iter().all(|&x| digitish(x))
        && c[11].is_ascii_uppercase()
        && c[12..15].iter().all(|&x| digitish(x))
        && c[15].is_ascii_uppercase();
    if !shape {
        return false;
    }
    let val = |x: u8| -> u32 {
        if x.is_ascii_digit() {
            d(x)
        } else {
            u32::from(x - b'A')
        }
    };
    let mut sum = 0;
    for (i, &x) in c[..15].iter().enumerate() {
        sum += if i % 2 == 0 {
            CF_ODD[val(x) as usize]
        } else {
            val(x)
        };
    }
    u32::from(c[15] - b'A') == sum % 26
}

/// Spanish DNI (eight digits and a letter) and NIE (X, Y or Z, seven digits, a letter): the
/// letter is the number mod 23 (Real Decreto 1553/2005).
fn es_dni(c: &[u8]) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let lead = match c[0] {
        b'0'..=b'9' => d(c[0]),
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        _ => return false,
    };
    if !c[1..8].iter().all(u8::is_ascii_digit) || !c[8].is_ascii_uppercase() {
        return false;
    }
    let n = c[1..8].iter().fold(lead, |a, &x| a * 10 + d(x));
    LETTERS[(n % 23) as usize] == c[8]
}

/// Dutch BSN: the 11-proof (weights 9..2 and -1).
fn nl_bsn(c: &[u8]) -> bool {
    let mut sum: i32 = 0;
    for (i, &x) in c[..8].iter().enumerate() {
        sum += (9 - i as i32) * d(x) as i32;
    }
    sum -= d(c[8]) as i32;
    sum != 0 && sum % 11 == 0
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn valid_date(y: u32, m: u32, day: u32) -> bool {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// Polish PESEL: a birth date (century in the month), and weights 1,3,7,9 for the check digit.
fn pl_pesel(c: &[u8]) -> bool {
    let yy = d(c[0]) * 10 + d(c[1]);
    let mm = d(c[2]) * 10 + d(c[3]);
    let dd = d(c[4]) * 10 + d(c[5]);
    let (century, month) = match mm {
        1..=12 => (1900, mm),
        21..=32 => (2000, mm - 20),
        41..=52 => (2100, mm - 40),
        61..=72 => (2200, mm - 60),
        81..=92 => (1800, mm - 80),
        _ => return false,
    };
    if !valid_date(century + yy, month, dd) {
        return false;
    }
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = c[..10].iter().zip(W).map(|(&x, w)| d(x) * w).sum();
    (10 - sum % 10) % 10 == d(c[10])
}

/// Swedish personnummer (YYMMDDNNNC or YYYYMMDDNNNC; day + 60 for a samordningsnummer), Luhn
/// over the ten-digit form.
fn se_personnummer(c: &[u8]) -> bool {
    let (century, ten) = if c.len() == 12 {
        let cc = d(c[0]) * 10 + d(c[1]);
        if !(18..=20).contains(&cc) {
            return false;
        }
        (Some(cc * 100), &c[2..])
    } else {
        (None, c)
    };
    let yy = d(ten[0]) * 10 + d(ten[1]);
    let mm = d(ten[2]) * 10 + d(ten[3]);
    let mut dd = d(ten[4]) * 10 + d(ten[5]);
    if dd > 60 {
        dd -= 60;
    }
    // Without a century, 2000 is used: it accepts 29 February of every leap year either way.
    valid_date(century.unwrap_or(2000) + yy, mm, dd) && luhn(ten)
}

/// Finnish henkilötunnus (DDMMYYCZZZQ): a birth date, the century sign (`-` and `U`-`Y`
/// 1900s; `A`-`F` 2000s), an individual number from 002 (900 and up are temporary numbers,
/// personal all the same) and the check character of the nine digits mod 31 (DVV). `raw` is
/// the value as written: a `-` sign is not among the characters `c` keeps. (`+`, the 1800s,
/// never reaches here: a word with a `+` is no identifier's.)
fn fi_hetu(c: &[u8], raw: &str) -> bool {
    const CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    let raw = raw.as_bytes();
    if raw.len() != 11 {
        return false;
    }
    let sign = raw[6].to_ascii_uppercase();
    let century = match sign {
        b'-' | b'U'..=b'Y' => 1900,
        b'A'..=b'F' => 2000,
        _ => return false,
    };
    // The nine digits and the check character, whether the sign was kept in `c` or not.
    let (date, rest) = (&c[..6], if c.len() == 11 { &c[7..] } else { &c[6..] });
    if !date.iter().chain(&rest[..3]).all(u8::is_ascii_digit) {
        return false;
    }
    let (dd, mm, yy) = (num(&date[..2]), num(&date[2..4]), num(&date[4..]));
    let individual = num(&rest[..3]);
    if !valid_date(century + yy, mm, dd) || individual < 2 {
        return false;
    }
    CHECK[((num(date) * 1000 + individual) % 31) as usize] == rest[3].to_ascii_uppercase()
}

/// Korean resident registration number (YYMMDD-GNNNNNC): a birth date whose century the
/// seventh digit gives (9, 0: 1800s; 1, 2, 5, 6: 1900s; 3, 4, 7, 8: 2000s), and the check
/// digit of the weights 2-9, 2-5 mod 11, which numbers issued since October 2020 do not have.
/// `None` when the date is not valid, else whether the check digit holds.
fn kr_rrn(c: &[u8]) -> Option<bool> {
    let century = match c[6] {
        b'9' | b'0' => 1800,
        b'1' | b'2' | b'5' | b'6' => 1900,
        _ => 2000,
    };
    let (yy, mm, dd) = (num(&c[..2]), num(&c[2..4]), num(&c[4..6]));
    if !valid_date(century + yy, mm, dd) {
        return None;
    }
    const W: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    let sum: u32 = c[..12].iter().zip(W).map(|(&x, w)| d(x) * w).sum();
    Some((11 - sum % 11) % 10 == d(c[12]))
}

/// Verhoeff's dihedral-group tables.
pub(crate) const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
pub(crate) const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 8, 5],
];

pub(crate) fn verhoeff(c: &[u8]) -> bool {
    let mut check = 0u8;
    for (i, &x) in c.iter().rev().enumerate() {
        check = VERHOEFF_D[check as usize][VERHOEFF_P[i % 8][(x - b'0') as usize] as usize];
    }
    check == 0
}

/// Indian Aadhaar: twelve digits, not starting with 0 or 1, Verhoeff check (UIDAI).
fn in_aadhaar(c: &[u8]) -> bool {
    c[0] >= b'2' && verhoeff(c)
}

/// Brazilian CPF: two mod-11 check digits; numbers of one repeated digit are invalid.
fn br_cpf(c: &[u8]) -> bool {
    if c.iter().all(|&x| x == c[0]) {
        return false;
    }
    let check = |n: usize| -> u32 {
        let sum: u32 = c[..n]
            .iter()
            .enumerate()
            .map(|(i, &x)| d(x) * (n as u32 + 1 - i as u32))
            .sum();
        let r = sum * 10 % 11;
        if r == 10 { 0 } else { r }
    };
    check(9) == d(c[9]) && check(10) == d(c[10])
}

/// Chinese resident identity card (GB 11643-1999): region, birth date, order, ISO 7064
/// MOD 11-2 check character.
fn cn_resident(c: &[u8]) -> bool {
    if !c[..17].iter().all(u8::is_ascii_digit) || !(c[17].is_ascii_digit() || c[17] == b'X') {
        return false;
    }
    if !(b'1'..=b'8').contains(&c[0]) {
        return false;
    }
    let year = num(&c[6..10]);
    let month = d(c[10]) * 10 + d(c[11]);
    let day = d(c[12]) * 10 + d(c[13]);
    if !(1900..=2099).contains(&year) || !valid_date(year, month, day) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = c[..17].iter().zip(W).map(|(&x, w)| d(x) * w).sum();
    b"10X98765432"[(sum % 11) as usize] == c[17]
}

/// Japanese Individual Number (My Number): check digit by the weights of the Ministry of
/// Internal Affairs ordinance (2014, No. 85), eleven digits and one check digit.
fn jp_my_number(c: &[u8]) -> bool {
    let mut sum = 0;
    for n in 1..=11u32 {
        let p = d(c[11 - n as usize]);
        let q = if n <= 6 { n + 1 } else { n - 5 };
        sum += p * q;
    }
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    check == d(c[11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_left_untried_hold_nothing_a_try_would_find() {
        use crate::inspect::corpus::values::{self, Rng};
        let mut r = Rng::new(11);
        let hosts = [
            "cdn.example.com/p/",
            "x.example/",
            "",
            "https://a.example/v1/",
            "id=",
        ];
        let seps = ["", "-", ".", "/", " "];
        let mut tried = 0;
        for n in 0..20_000 {
            // IBANs (some lower-case, some grouped), card-like and plain numbers, inside or
            // after a URL's host and path.
            let core = match n % 4 {
                0 => {
                    let country = *r.pick(&["DE", "GB", "NL", "FR", "IT"]);
                    values::iban(&mut r, country)
                }
                1 => values::card(&mut r),
                2 => {
                    let len = r.range(5, 30) as usize;
                    r.digits(len)
                }
                _ => {
                    let len = r.range(1, 6) as usize;
                    format!("{}{}", r.letters(len), r.digits(20))
                }
            };
            let core = if r.chance(30) {
                core.to_ascii_lowercase()
            } else {
                core
            };
            let sep = *r.pick(&seps);
            let group = r.range(2, 6) as usize;
            let core = values::grouped(&core, group, sep);
            let v = format!(
                "{}{core}{}",
                r.pick(&hosts),
                r.pick(&["", "/1.jpg", ".png"])
            );
            let mut pruned = Vec::new();
            scan_runs::<true>(&v, n % 3 == 0, &mut |h| pruned.push(h.detector));
            let mut whole = Vec::new();
            scan_runs::<false>(&v, n % 3 == 0, &mut |h| whole.push(h.detector));
            assert_eq!(pruned, whole, "{v}");
            tried += usize::from(!whole.is_empty());
        }
        // Enough of them are identifiers for the comparison to mean something.
        assert!(tried > 1_500, "{tried}");
        // What is left untried: one long word that does not start as an IBAN does.
        let url = b"cdn.example.com/p/1000703/1.jpg";
        assert!(!may_hold_one(url, &[(0, url.len())], 25));
        let iban = b"de89.3704.0044.0532.0130.00";
        assert!(may_hold_one(iban, &[(0, iban.len())], 22));
        assert!(may_hold_one(url, &[(0, 3), (4, 11)], 3));
    }

    fn found(s: &str, contextual: bool) -> Vec<(&'static str, Option<String>)> {
        let mut v = Vec::new();
        scan(s, contextual, &mut |h| {
            v.push((h.detector, h.country.map(|c| c.to_string())))
        });
        v
    }

    fn one(s: &str, contextual: bool) -> Option<&'static str> {
        found(s, contextual).first().map(|h| h.0)
    }

    #[test]
    fn valid_identifiers_are_found_with_their_country() {
        for (value, detector, country) in [
            ("DE89 3704 0044 0532 0130 00", "iban.mod97", "DE"),
            ("GB82WEST12345698765432", "iban.mod97", "GB"),
            ("FR1420041010050500013M02606", "iban.mod97", "FR"),
            ("RSSMRA85T10A562S", "id.it_codice_fiscale", "IT"),
            ("11010519491231002X", "id.cn_resident_id", "CN"),
            ("AB 12 34 56 C", "id.uk_nino", "GB"),
            ("12345678Z", "id.es_dni", "ES"),
            ("X1234567L", "id.es_nie", "ES"),
            ("2 55 08 95 068 042 58", "id.fr_nir", "FR"),
            ("123-45-6789", "id.us_ssn", "US"),
            ("123.45.6789", "id.us_ssn", "US"),
            ("44051401359", "id.pl_pesel", "PL"),
            ("811218-9876", "id.se_personnummer", "SE"),
            ("111.444.777-35", "id.br_cpf", "BR"),
            ("86095742719", "id.de_steuer_id", "DE"),
            ("2345 6789 0124", "id.in_aadhaar", "IN"),
            ("131052-308T", "id.fi_hetu", "FI"),
            ("010594Y9032", "id.fi_hetu", "FI"),
            ("010594y9032", "id.fi_hetu", "FI"),
            ("900101-1234568", "id.kr_rrn", "KR"),
            ("021231-3456788", "id.kr_rrn", "KR"),
        ] {
            let hits = found(&format!("ref: {value}."), false);
            assert_eq!(
                hits.first().cloned(),
                Some((detector, Some(country.to_owned()))),
                "{value}"
            );
        }
    }

    #[test]
    fn identifiers_in_lower_case_groups_are_found() {
        for (value, detector) in [
            ("ab 12 34 56 c", "id.uk_nino"),
            ("ab 123456 c", "id.uk_nino"),
            ("de 89 3704 0044 0532 0130 00", "iban.mod97"),
            ("de89 3704 0044 0532 0130 00", "iban.mod97"),
        ] {
            assert_eq!(
                one(&format!("my number is {value}, thanks"), false),
                Some(detector),
                "{value}"
            );
        }
        // A single lower-case letter ends a run only when a pair of letters began it: after a
        // number, `y`, `a` and `e` are words of prose, not check letters.
        for s in [
            "entre 12345678 y 90",
            "pedido 12345678 a domicilio",
            "ab 12 34 56 e",
            "de la mancha",
        ] {
            assert_eq!(found(s, false), vec![], "{s}");
        }
    }

    #[test]
    fn cards_pass_luhn_and_issuer_ranges() {
        assert_eq!(one("4111 1111 1111 1111", false), Some("card.luhn"));
        assert_eq!(one("5500-0000-0000-0004", false), Some("card.luhn"));
        assert_eq!(one("378282246310005", false), Some("card.luhn"));
        // Luhn-valid but no issuer range; Luhn-invalid in a range.
        assert_eq!(one("9111111111111111", false), None);
        assert_eq!(one("4111 1111 1111 1112", false), None);
    }

    #[test]
    fn weak_checks_need_a_named_field() {
        assert_eq!(one("900000004", false), None);
        assert_eq!(one("900000004", true), Some("id.nl_bsn"));
        assert_eq!(one("123456789", true), Some("id.us_ssn"));
        assert_eq!(one("234567890124", false), None);
        assert_eq!(one("234567890124", true), Some("id.in_aadhaar"));
        assert_eq!(one("11144477735", false), None);
        assert_eq!(one("11144477735", true), Some("id.br_cpf"));
        assert_eq!(one("123456789018", true), Some("id.jp_my_number"));
        // A resident registration number issued since 2020 has no check digit: found in a
        // named field, with no country (a date alone is no evidence of one).
        assert_eq!(one("900101-1234567", false), None);
        assert_eq!(found("900101-1234567", true), vec![("id.kr_rrn", None)]);
        assert_eq!(one("901301-1234565", true), None);
        // A number both a henkilötunnus and a personnummer names neither country.
        assert_eq!(found("010101-3522", false), vec![("id.fi_hetu", None)]);
    }

    #[test]
    fn near_misses_are_not_identifiers() {
        for s in [
            "DE89 3704 0044 0532 0130 01",
            "RSSMRA85T10A562T",
            "11010519491231002Y",
            "AB 12 34 56 E",
            "12345678A",
            "2 55 08 95 068 042 59",
            "666-45-6789",
            "000-12-3456",
            "44051401358",
            "811218-9875",
            "111.444.777-36",
            "2345 6789 0125",
            "order 1234567 on 2024-05-01 at 12:30",
            "version 1.2.3-rc.4",
            "1764381234",
            "1764381234567",
            // A wrong check character, an impossible date, individual number 000, no sign.
            "131052-308U",
            "311352-308U",
            "131052-000V",
            "131052 308T",
            // A wrong check digit, an impossible date, a barcode whose digits would pass.
            "900101-1234567",
            "901301-1234565",
            "9001011234568",
        ] {
            assert_eq!(found(s, false), vec![], "{s}");
        }
    }
}
