//! Detectors: byte scanners for values that are personal data by their shape, and field-name
//! lexicons for values that are personal data by what their field is called. Linear time, no
//! backtracking, no allocation unless a value needs normalising or something is found.
//!
//! # Layout
//! - [`email`]: addresses, internationalised local parts and IDN domains;
//! - `phone`: international numbers anywhere, national formats in phone fields;
//! - `ids`: IBAN, payment cards and national identifiers with their check digits;
//! - `net`: IPv4 and IPv6 addresses;
//! - [`lexicon`]: field names in seven languages, and country names in values.
//!
//! Every value first goes through [`super::normalise`], which undoes encodings and Unicode
//! tricks; a value that needs none is scanned in place.

pub mod email;
pub(crate) mod ids;
pub mod lexicon;
mod net;
pub(crate) mod phone;
mod token;

use token::maybe_sealed;

use domicile_policy::{Category, Country};

use super::normalise;
use lexicon::Field;

/// What a detector found in one value (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub category: Category,
    pub detector: &'static str,
    /// The country the value belongs to, when its format says so.
    pub country: Option<Country>,
    /// How sure the detector is, 0-100: a check digit over a distinctive format is 90 or more,
    /// a field name alone 50-70.
    pub confidence: u8,
}

/// A value as the detectors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a str),
    /// A JSON number, as written.
    Number(&'a str),
    Bool(bool),
}

/// Runs every value detector on one string and calls `out` for each hit.
pub fn scan(s: &str, mut out: impl FnMut(Hit)) {
    scan_text(s, None, &mut out);
}

/// Runs the value detectors on `s` in a field the lexicon classified as `field` (no findings
/// from the field name itself).
pub fn scan_in(field: Option<Field>, s: &str, out: &mut dyn FnMut(Hit)) {
    scan_text(s, field, out);
}

/// Scans a value together with the name of the field it sits in: the field name can say
/// what the value is (the lexicons), and can let weak check-digit formats count.
pub fn scan_field(key: Option<&str>, value: Value<'_>, out: &mut dyn FnMut(Hit)) {
    let field = key.and_then(lexicon::classify);
    scan_classified(field, value, out);
}

/// Whether `h` was found in the value itself, not from its field's name alone: only such a
/// finding stops the value from being part of a value split across fields.
pub(crate) fn of_value(h: &Hit) -> bool {
    !h.detector.starts_with("field.")
}

/// [`scan_classified`] on a string value, reporting each hit; whether any was found in the
/// value itself ([`of_value`]).
pub(crate) fn scan_value(field: Option<Field>, s: &str, out: &mut dyn FnMut(Hit)) -> bool {
    let mut found = false;
    scan_classified(field, Value::Str(s), &mut |h| {
        found |= of_value(&h);
        out(h)
    });
    found
}

/// [`scan_field`] with the field name already classified.
pub fn scan_classified(field: Option<Field>, value: Value<'_>, out: &mut dyn FnMut(Hit)) {
    match value {
        Value::Str(s) => scan_str(field, s, &profile(s.as_bytes()), out),
        Value::Number(n) => {
            // Numbers that are really identifiers, or phone numbers written as numbers.
            let integer = n.bytes().all(|c| c.is_ascii_digit());
            let mut found = false;
            if integer && (id_length(n) || matches!(field, Some(Field::Phone | Field::NationalId)))
            {
                let phone_like = if field == Some(Field::Phone) {
                    Some(format!("+{n}"))
                } else {
                    None
                };
                let text = phone_like.as_deref().unwrap_or(n);
                detect_text(text, &profile(text.as_bytes()), field, &mut |h| {
                    found = true;
                    out(h)
                });
            }
            if let Some(f) = field {
                field_hits(f, n, found, out);
            }
        }
        Value::Bool(_) => {
            if let Some(Field::Is(c)) = field
                && c.is_special()
            {
                out(field_hit(c, None, 60));
            }
        }
    }
}

/// Whether a number has a length some identifier has; 10 and 13 digits are epoch timestamps
/// far more often, and a 10-digit personnummer counts only in a named field anyway. Outside a
/// named field, [`scan_classified`] finds nothing in a number without such a length.
#[inline]
pub(crate) fn id_length(n: &str) -> bool {
    matches!(n.len(), 9 | 11 | 12 | 14..=19)
}

/// [`scan_classified`] on a string whose [`Profile`] is known (the JSON walker learns it while
/// reading the string).
pub(crate) fn scan_str(field: Option<Field>, s: &str, p: &Profile, out: &mut dyn FnMut(Hit)) {
    let blank = if p.work() {
        s.trim().is_empty()
    } else {
        p.blank()
    };
    if blank {
        return;
    }
    let mut found = false;
    scan_profiled(s, p, field, &mut |h| {
        found = true;
        out(h)
    });
    if let Some(f) = field {
        field_hits(f, s, found, out);
    }
}

/// Whether any detector fires on `s` (used to redact keys that are data).
pub fn is_personal(s: &str) -> bool {
    let mut any = false;
    scan_name(s, |_| any = true);
    any
}

/// [`scan`] for a name (a key, a field or element name). A name that may be shown in a
/// location as it is ([`super::plain_key`]: short and plain) is scanned outside the detectors'
/// budget, so that what decides whether it is shown is never cut short; any other name is
/// shown as `*` whatever is found, and counts against the budget like a value.
pub fn scan_name(s: &str, mut out: impl FnMut(Hit)) {
    if !super::plain_key(s) {
        scan_text(s, None, &mut out);
        return;
    }
    /// Puts metering back as it was when dropped, also if scanning panics.
    struct Unmetered(bool);
    impl Drop for Unmetered {
        fn drop(&mut self) {
            let was = self.0;
            BUDGET.with(|w| {
                w.set(Work {
                    metered: was,
                    ..w.get()
                })
            });
        }
    }
    let _restore = Unmetered(BUDGET.with(|w| {
        let work = w.get();
        w.set(Work {
            metered: false,
            ..work
        });
        work.metered
    }));
    scan_text(s, None, &mut out);
}

/// The detector id of a finding made from a field name.
fn field_detector(c: Category) -> &'static str {
    match c {
        Category::Email => "field.email",
        Category::Phone => "field.phone",
        Category::Iban => "field.iban",
        Category::PaymentCard => "field.payment_card",
        Category::NationalId => "field.national_id",
        Category::IpAddress => "field.ip_address",
        Category::Name => "field.name",
        Category::Address => "field.address",
        Category::DateOfBirth => "field.date_of_birth",
        Category::PreciseLocation => "field.precise_location",
        Category::Health => "field.health",
        Category::Biometric => "field.biometric",
        Category::Genetic => "field.genetic",
        Category::Religion => "field.religion",
        Category::Ethnicity => "field.ethnicity",
        Category::Political => "field.political",
        Category::SexLife => "field.sex_life",
        Category::Union => "field.union",
        Category::Criminal => "field.criminal",
        Category::Nationality => "field.nationality",
        Category::Uninspectable => "field.uninspectable",
    }
}

fn field_hit(category: Category, country: Option<Country>, confidence: u8) -> Hit {
    Hit {
        category,
        detector: field_detector(category),
        country,
        confidence,
    }
}

/// Findings a field name makes of its value. `found`: a value detector already fired.
fn field_hits(field: Field, v: &str, found: bool, out: &mut dyn FnMut(Hit)) {
    // Counted only for the fields that ask.
    let digits = || v.bytes().filter(u8::is_ascii_digit).count();
    match field {
        Field::Is(Category::DateOfBirth) if digits() >= 2 => {
            out(field_hit(Category::DateOfBirth, None, 80));
        }
        Field::Is(Category::DateOfBirth) => {}
        Field::Is(c) => out(field_hit(c, None, 70)),
        Field::GenericName if lexicon::looks_like_person_name(v) => {
            out(field_hit(Category::Name, None, 50));
        }
        Field::AddressCountry => {
            if let Some(c) = lexicon::country_of(v) {
                out(Hit {
                    category: Category::Address,
                    detector: "field.address_country",
                    country: Some(c),
                    confidence: 60,
                });
            }
        }
        Field::Citizenship => {
            let country = lexicon::country_of(v);
            out(field_hit(Category::Nationality, country, 80));
        }
        Field::Coordinate if lexicon::precise_coordinate(v) => {
            out(field_hit(Category::PreciseLocation, None, 75));
        }
        Field::Phone if !found && digits() >= 6 => out(field_hit(Category::Phone, None, 60)),
        Field::NationalId if !found && v.bytes().filter(u8::is_ascii_alphanumeric).count() >= 5 => {
            out(field_hit(Category::NationalId, None, 65));
        }
        _ => {}
    }
}

/// Normalises a value and runs the value detectors on it, and on the text its base64 decodes to.
fn scan_text(s: &str, field: Option<Field>, out: &mut dyn FnMut(Hit)) {
    scan_profiled(s, &profile(s.as_bytes()), field, out);
}

/// Detector work one inspection may do, in bytes looked at: every value once, and every
/// window of a run of words tried as an identifier (its bytes and 16 for the checks): this
/// much, and a number of bytes per byte of input (`[inspect] work_per_byte`, 128 by default).
/// API records need less than their size; text of small numbers spaced out (`12 34 56 78 90`,
/// a table, or a card number in groups of two) about 60 times it, since every window of them
/// may be an identifier. Past the budget nothing more is read: what is left counts as data of
/// unknown category ([`WORK_DETECTOR`]), which never crosses a border, so that no shape of
/// body, known or not, costs more than its share.
const WORK_BASE: usize = 256 << 10;
/// The detector of the finding an inspection that ran out of budget makes.
pub const WORK_DETECTOR: &str = "inspection.budget";

/// This thread's detector budget: one cell, read once per value.
#[derive(Clone, Copy)]
struct Work {
    left: usize,
    /// Running out was reported.
    reported: bool,
    /// Work counts against the budget ([`scan_name`] turns it off).
    metered: bool,
}

thread_local! {
    /// Outside an inspection (a thread that never began one) there is no limit.
    static BUDGET: std::cell::Cell<Work> = const {
        std::cell::Cell::new(Work { left: usize::MAX, reported: false, metered: true })
    };
}

/// Starts an inspection's detector budget on this thread: [`WORK_BASE`] and `per_byte` for
/// each of `input` bytes.
pub(crate) fn new_work_budget(input: usize, per_byte: usize) {
    let left = work_budget(input, per_byte);
    BUDGET.with(|w| {
        w.set(Work {
            left,
            reported: false,
            ..w.get()
        })
    });
}

/// The work an inspection of `input` bytes may do: [`WORK_BASE`] and `per_byte` a byte.
pub(crate) fn work_budget(input: usize, per_byte: usize) -> usize {
    WORK_BASE.saturating_add(input.saturating_mul(per_byte))
}

/// The work left in this thread's inspection budget.
#[cfg(test)]
pub(crate) fn work_left() -> usize {
    BUDGET.with(|w| w.get().left)
}

/// Takes `n` bytes of work from the budget; false once it is gone, and then, once per
/// inspection, reports the finding that says so.
fn spend(n: usize, out: &mut dyn FnMut(Hit)) -> bool {
    BUDGET.with(|w| {
        let work = w.get();
        if !work.metered {
            return true;
        }
        if work.left >= n {
            w.set(Work {
                left: work.left - n,
                ..work
            });
            return true;
        }
        w.set(Work {
            left: 0,
            reported: true,
            ..work
        });
        if !work.reported {
            out(unread(WORK_DETECTOR, 90));
        }
        false
    })
}

/// [`scan_text`] with the value's profile known.
fn scan_profiled(s: &str, p: &Profile, field: Option<Field>, out: &mut dyn FnMut(Hit)) {
    if !spend(s.len(), out) {
        return;
    }
    if maybe_sealed(s)
        && let Some(sealed) = token::open(s)
    {
        match sealed {
            token::Sealed::Claims(claims) => scan_claims(&claims, out),
            // What cannot be read may be anything: data of unknown category, which never
            // crosses a border.
            token::Sealed::Encrypted(detector) => out(unread(detector, 90)),
        }
        return;
    }
    if p.work() {
        let n = normalised(s, out);
        // Text that needed nothing undone keeps the profile it came with.
        let p = match n {
            std::borrow::Cow::Borrowed(_) => *p,
            std::borrow::Cow::Owned(ref n) => profile(n.as_bytes()),
        };
        detect_text(&n, &p, field, out);
        if may_be_base64(&n, &p) {
            scan_base64(&n, &p, field, out);
        }
    } else {
        // The common case: plain ASCII, scanned in place.
        detect_text(s, p, field, out);
        if may_be_base64(s, p) {
            scan_base64(s, p, field, out);
        }
    }
}

/// `s` normalised ([`normalise::normalise_layers`]). Percent-encoding is undone two layers
/// deep; a value still encoded after that was encoded three or more times, which no client
/// does by accident: what it hides is not read, and it is reported as data of unknown
/// category (`encoded.percent_depth`).
fn normalised<'a>(s: &'a str, out: &mut dyn FnMut(Hit)) -> std::borrow::Cow<'a, str> {
    let (n, deeper) = normalise::normalise_layers(s);
    if deeper {
        out(unread("encoded.percent_depth", 80));
    }
    n
}

/// A finding of what could not be read (sealed, compressed past its limits, a file, encoded
/// too deep): data of unknown category, which never crosses a border.
fn unread(detector: &'static str, confidence: u8) -> Hit {
    Hit {
        category: Category::Uninspectable,
        detector,
        country: None,
        confidence,
    }
}

/// Base64 inside free text (an XML element's content, a word of a sentence): each run of 16
/// or more base64 characters that is not the whole text is decoded and scanned as a value of
/// its own would be. For text bodies, where a value is not a field of its own.
pub fn scan_base64_runs(s: &str, mut out: impl FnMut(Hit)) {
    let b = s.as_bytes();
    let alphabet = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_');
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && !alphabet(b[i]) {
            i += 1;
        }
        let start = i;
        while i < b.len() && alphabet(b[i]) {
            i += 1;
        }
        // Padding (at most two `=`) belongs to the run.
        let mut pad = 0;
        while i < b.len() && b[i] == b'=' && pad < 2 {
            i += 1;
            pad += 1;
        }
        let run = &s[start..i];
        if run.len() >= 16 && run.len() < s.trim().len() {
            let p = profile(run.as_bytes());
            scan_base64(run, &p, None, &mut out);
        }
        i = i.max(start + 1);
    }
}

/// Layers of base64 undone within one value (base64 of base64 of text).
const BASE64_DEPTH: usize = 3;

/// Runs the value detectors on the text a base64 value decodes to, and on what that decodes
/// to in turn, up to [`BASE64_DEPTH`] layers.
fn scan_base64(s: &str, p: &Profile, field: Option<Field>, out: &mut dyn FnMut(Hit)) {
    let of = |s: &str, p: &Profile| {
        if may_be_base64(s, p) {
            normalise::base64_text(s)
        } else {
            None
        }
    };
    let mut next = of(s, p);
    for _ in 0..BASE64_DEPTH {
        let decoded = match next.take() {
            None => return,
            Some(normalise::Unwrapped::Text(t)) => t,
            // Compressed data that could not be read, a document, an image or an archive may
            // hold anything: data of unknown category, which never crosses a border.
            Some(normalise::Unwrapped::Unread(detector)) => {
                return out(unread(detector, 90));
            }
        };
        let n = normalised(&decoded, out);
        let p = profile(n.as_bytes());
        detect_text(&n, &p, field, out);
        next = of(&n, &p);
    }
}

/// Whether `s`, of profile `p`, may be base64 that [`scan_base64`] decodes: asked where it is
/// called, so that the commonest answer costs no call.
#[inline]
fn may_be_base64(s: &str, p: &Profile) -> bool {
    p.maybe_base64() || (p.has(UPPER) && p.has(LOWER) && normalise::maybe_wrapped_base64(s))
}

/// A signed token's claims, read as the JSON they are: claim names say what their values are
/// (`name`, `birthdate`, `address`), as field names do. Claims that are not JSON, and those of
/// a token inside a token's claims, are read as text.
///
/// What the claims are is found; which country they name is not kept: a token's claims are
/// evidence of the subject's jurisdiction only when the resolve step has verified its
/// signature (`[resolve.tokens]`), and a forged one must not count as evidence by this way.
fn scan_claims(claims: &str, out: &mut dyn FnMut(Hit)) {
    let mut found = |h: Hit| out(Hit { country: None, ..h });
    match super::json::walk_claims(claims, super::MAX_JSON_DEPTH, |h, _| found(h)) {
        Some(Ok(())) => {}
        Some(Err(_)) | None => scan_text(claims, None, &mut found),
    }
}

/// What one pass over a value learns, to skip detectors that cannot fire.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Profile {
    len: usize,
    digits: usize,
    dots: usize,
    colons: usize,
    /// ASCII letters and digits.
    alnum: usize,
    /// The classes seen, OR-ed (the bits below).
    flags: u16,
}

impl Profile {
    fn has(&self, class: u16) -> bool {
        self.flags & class != 0
    }

    /// Long enough and bracketed to be `a(at)b.cd`.
    fn bracketed_email(&self) -> bool {
        self.len >= 9 && self.has(UPPER | LOWER) && self.has(BRACKET)
    }

    fn maybe_base64(&self) -> bool {
        self.len >= 12 && self.has(UPPER) && self.has(LOWER) && !self.has(OTHER)
    }

    /// Needs normalising (non-ASCII, `%`, `&`, `\`).
    fn work(&self) -> bool {
        self.has(WORK)
    }

    /// No value detector can fire on a value of this profile: what the checks in
    /// [`scan_profiled`] and [`detect_text`] ask first, before any of them looks at the value.
    /// (The JSON walker asks [`Self::quiet_unless_spelled`] and checks spelled-out addresses
    /// itself.)
    #[cfg(test)]
    fn quiet(&self) -> bool {
        self.quiet_unless_spelled() && !self.spelled_email()
    }

    /// [`Self::quiet`], but for an address spelled out in words (`jane at example dot com`),
    /// which [`spelled_email`] alone checks for: spaced text is common, and most of it needs
    /// no other detector.
    pub(crate) fn quiet_unless_spelled(&self) -> bool {
        // The commonest value first: under four digits, under two colons, and none of these
        // classes, leaves only base64 to ask about ([`Self::may_fire`] says the same, longer).
        if self.digits < 4 && self.colons < 2 && !self.has(WORK | AT | BRACKET) {
            return !self.maybe_base64();
        }
        !self.may_fire()
    }

    /// Whether a detector other than [`spelled_email`] may fire on a value of this profile.
    fn may_fire(&self) -> bool {
        self.work()
            || self.maybe_base64()
            || self.has(AT)
            || self.bracketed_email()
            || (self.has(PLUS) && self.digits >= 8)
            || self.digits >= 6
            || (self.dots >= 3 && self.digits >= 4)
            || self.colons >= 2
    }

    /// Long enough and spaced enough to be `a at b dot cd`: four bytes at least that are none
    /// of letters, digits, dots and colons (the spaces around `at` and `dot`).
    pub(crate) fn spelled_email(&self) -> bool {
        self.len >= 13
            && self.has(UPPER | LOWER)
            && self.has(SPACE)
            && self.len - self.alnum - self.dots - self.colons >= 4
    }

    /// Whether a value of this profile may be one part of a value split across fields
    /// (`json::Walker::fragment`): a group of up to six letters and digits, a calling code, or
    /// a short value that normalising may make one.
    #[inline]
    pub(crate) fn may_be_fragment(&self) -> bool {
        // Most values are longer than a group and need no normalising: told so by two checks.
        if self.len > 6 && !self.has(WORK) {
            return false;
        }
        // A group has a digit, or is all capitals (`AB 12 34 56 C`): short lower-case words
        // are not.
        (self.len <= 6
            && self.alnum == self.len
            && (self.digits > 0 || (self.len <= 4 && !self.has(LOWER))))
            || (self.len <= 4 && self.has(PLUS))
            // Full-width or other scripts' digits, folded before they are joined (a short
            // value to normalise, without ASCII letters).
            || (self.len <= 24 && self.has(WORK) && !self.has(UPPER | LOWER))
    }

    /// Whether `s`, of this profile, may be a token ([`maybe_sealed`]): tokens have dots.
    #[inline]
    pub(crate) fn sealed_in(&self, s: &str) -> bool {
        self.dots >= 2 && maybe_sealed(s)
    }

    /// Nothing but ASCII whitespace (or nothing at all).
    fn blank(&self) -> bool {
        !self.has(NON_SPACE)
    }
}

/// Byte classes for [`Profile`], one table lookup per byte. Each entry holds the class bits
/// in its top 16 bits and the byte's contribution to the counts below them (12 bits each:
/// digits, dots, colons, letters and digits), so that one OR and one addition profile a byte.
const DIGIT: u16 = 1;
const UPPER: u16 = 2;
const LOWER: u16 = 4;
const AT: u16 = 8;
const PLUS: u16 = 16;
/// A byte outside the base64 alphabets.
const OTHER: u16 = 32;
const WORK: u16 = 64;
const DOT: u16 = 128;
const COLON: u16 = 256;
const NON_SPACE: u16 = 512;
/// Ends the plain run of a JSON string: `"`, `\\` or a control character.
const JSON_STOP: u16 = 1024;
/// `(`, `[`, `{`, `<`: an address may be written `jane (at) example (dot) com`.
const BRACKET: u16 = 2048;
/// A space: an address may be written `jane at example dot com`.
const SPACE: u16 = 4096;
/// A byte that ends a word for the identifier scan, or cannot be in one: anything but ASCII
/// letters and digits, `-`, `.`, `/`, `_` and `:` (which [`Profile::colons`] counts).
const BREAKS_WORD: u16 = 8192;

const CLASSES: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let class = match b {
            b'0'..=b'9' => DIGIT | NON_SPACE,
            b'A'..=b'Z' => UPPER | NON_SPACE,
            b'a'..=b'z' => LOWER | NON_SPACE,
            b'/' | b'-' | b'_' | b'=' => NON_SPACE,
            b'@' => AT | OTHER | NON_SPACE,
            b'+' => PLUS | NON_SPACE,
            b'.' => DOT | OTHER | NON_SPACE,
            b':' => COLON | OTHER | NON_SPACE,
            b'\\' => WORK | OTHER | NON_SPACE | JSON_STOP,
            b'"' => OTHER | NON_SPACE | JSON_STOP,
            b'%' | b'&' | 0x80..=0xff => WORK | OTHER | NON_SPACE,
            b' ' => OTHER | SPACE,
            b'(' | b'[' | b'{' | b'<' => BRACKET | OTHER | NON_SPACE,
            b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => OTHER | JSON_STOP,
            0..=0x1f => OTHER | NON_SPACE | JSON_STOP,
            _ => OTHER | NON_SPACE,
        };
        let class = if ids::breaks_word(b) {
            class | BREAKS_WORD
        } else {
            class
        };
        let counts = (class & DIGIT != 0) as u64
            | ((class & DOT != 0) as u64) << 12
            | ((class & COLON != 0) as u64) << 24
            | ((class & (DIGIT | UPPER | LOWER) != 0) as u64) << 36;
        t[c] = (class as u64) << 48 | counts;
        c += 1;
    }
    t
};

/// Profiles `b` up to its first byte of a class in `stop`; returns how many bytes that is.
fn profile_until(b: &[u8], stop: u16) -> (usize, Profile) {
    let stop = u64::from(stop) << 48;
    let mut p = Profile::default();
    let mut seen = 0u64;
    let mut i = 0;
    loop {
        // Counts are summed in 12-bit fields: fold them out before one could overflow.
        let end = b.len().min(i + 0xfff);
        let mut sum = 0u64;
        let mut stopped = false;
        while i < end {
            let e = CLASSES[usize::from(b[i])];
            if e & stop != 0 {
                stopped = true;
                break;
            }
            seen |= e;
            sum = sum.wrapping_add(e);
            i += 1;
        }
        p.digits += (sum & 0xfff) as usize;
        p.dots += (sum >> 12 & 0xfff) as usize;
        p.colons += (sum >> 24 & 0xfff) as usize;
        p.alnum += (sum >> 36 & 0xfff) as usize;
        if stopped || i == b.len() {
            break;
        }
    }
    p.flags = (seen >> 48) as u16;
    p.len = i;
    (i, p)
}

fn profile(b: &[u8]) -> Profile {
    profile_until(b, 0).1
}

/// Reads the plain run of a JSON string's content, up to its closing quote, an escape or a
/// control character, learning its profile on the way: one pass where finding the end and
/// profiling the value would be two. Returns where the run stops (`b.len()` when it does not).
pub(crate) fn json_run(b: &[u8]) -> (usize, Profile) {
    profile_until(b, JSON_STOP)
}

/// Whether the whole value is a UUID (`8-4-4-4-12` hex) or an ISO 8601 date or timestamp.
fn uuid_or_timestamp(b: &[u8]) -> bool {
    // Without a branch per byte: a UUID's digits and letters come in random order, and a
    // branch on each would be mispredicted about as often as not.
    let hex = |r: std::ops::Range<usize>| {
        b[r].iter().fold(true, |ok, &c| {
            ok & (c.is_ascii_digit() | ((c | 0x20).wrapping_sub(b'a') < 6))
        })
    };
    let uuid = b.len() == 36
        && b[8] == b'-'
        && b[13] == b'-'
        && b[18] == b'-'
        && b[23] == b'-'
        && hex(0..8)
        && hex(9..13)
        && hex(14..18)
        && hex(19..23)
        && hex(24..36);
    let timestamp = (10..=35).contains(&b.len())
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || time_of_day(&b[10..]));
    uuid || timestamp
}

/// Whether `t` is the rest of an ISO 8601 timestamp after its date, and nothing else:
/// `T` or a space, `HH:MM`, optional `:SS` and fraction, optional `Z` or offset. A date
/// followed by other digits (`2024-05-01 4111111111111111`) is not a timestamp.
fn time_of_day(t: &[u8]) -> bool {
    let two = |at: usize| {
        t.get(at..at + 2)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if !matches!(t.first(), Some(b'T' | b't' | b' '))
        || !two(1)
        || t.get(3) != Some(&b':')
        || !two(4)
    {
        return false;
    }
    let mut i = 6;
    if t.get(i) == Some(&b':') {
        if !two(i + 1) {
            return false;
        }
        i += 3;
        if t.get(i) == Some(&b'.') {
            let digits = t[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            i += 1 + digits;
        }
    }
    match t.get(i..) {
        Some([] | [b'Z' | b'z']) => true,
        Some([b'+' | b'-', rest @ ..]) => {
            matches!(rest, [a, b] | [a, b, b':', _, _] | [a, b, _, _] if a.is_ascii_digit() && b.is_ascii_digit())
                && rest.iter().all(|c| c.is_ascii_digit() || *c == b':')
        }
        _ => false,
    }
}

/// Whether `b`, of profile `p`, is one or two words that each hold no identifier, told without
/// the word scan of [`ids::scan`]. A value of ASCII letters and digits, `-`, `.`, `/` and `_`
/// (no byte of [`BREAKS_WORD`]) with at most one `:` is one word, or two on either side of the
/// colon, which no gap joins: each is a run of its own, and [`ids::lone_word_may_hold`] tells
/// from its letters and digits whether it may hold one. The commonest such value is a URL
/// without a query (`https://cdn.example.com/p/1000703/1.jpg`: `https`, too short, and a
/// host and path of more letters and digits than any format but an IBAN).
fn lone_words_without_identifier(b: &[u8], p: &Profile) -> bool {
    if p.has(BREAKS_WORD) || p.colons > 1 {
        return false;
    }
    if p.colons == 0 {
        return !ids::lone_word_may_hold(b, p.alnum, p.alnum);
    }
    let Some(at) = b.iter().position(|&c| c == b':') else {
        return false;
    };
    let (first, second) = (&b[..at], &b[at + 1..]);
    // Each word holds at most as many letters and digits as it has bytes, and the two hold
    // `p.alnum` between them: bounds that decide without counting them (a URL's scheme is too
    // short whatever it holds, and its host and path too long).
    let first_hi = first.len().min(p.alnum);
    let first_lo = p.alnum - second.len().min(p.alnum);
    !ids::lone_word_may_hold(first, first_lo, first_hi)
        && !ids::lone_word_may_hold(second, p.alnum - first_hi, p.alnum - first_lo)
}

/// The one detector that can fire on a value whose profile is
/// [`Profile::quiet_unless_spelled`]: an address spelled out in words.
pub(crate) fn spelled_email(s: &str, out: &mut dyn FnMut(Hit)) {
    if email::contains_obfuscated(s.as_bytes(), false, true) {
        out(OBFUSCATED_EMAIL);
    }
}

const OBFUSCATED_EMAIL: Hit = Hit {
    category: Category::Email,
    detector: "email.obfuscated",
    country: None,
    confidence: 85,
};

/// Runs the value detectors on normalised text.
fn detect_text(s: &str, p: &Profile, field: Option<Field>, out: &mut dyn FnMut(Hit)) {
    if p.has(AT) && email::contains_email(s.as_bytes()) {
        out(Hit {
            category: Category::Email,
            detector: "email.rfc5322",
            country: None,
            confidence: 95,
        });
    } else if (p.bracketed_email() || p.spelled_email())
        && email::contains_obfuscated(s.as_bytes(), p.bracketed_email(), p.spelled_email())
    {
        out(OBFUSCATED_EMAIL);
    }
    let mut phone = false;
    if p.has(PLUS)
        && p.digits >= 8
        && let Some(country) = phone::find_e164(s)
    {
        phone = true;
        out(Hit {
            category: Category::Phone,
            detector: "phone.e164",
            country,
            confidence: 95,
        });
    }
    if !phone
        && field == Some(Field::Phone)
        && p.digits >= 6
        && let Some(country) = phone::national(s)
    {
        out(Hit {
            category: Category::Phone,
            detector: "phone.national",
            country,
            confidence: 85,
        });
    }
    // Every identifier format has at least six digits; UUIDs and timestamps, the commonest
    // digit-bearing values in APIs, are none of them, nor is a value of one or two words too
    // short or too long for any format (a URL without a query, a digest, a token).
    // A codice fiscale with omocodia may have its digits all written as letters.
    let omocodic = (16..=20).contains(&p.alnum) && p.has(UPPER);
    if (p.digits >= 6 || omocodic)
        && !lone_words_without_identifier(s.as_bytes(), p)
        && !uuid_or_timestamp(s.as_bytes())
    {
        ids::scan(s, field == Some(Field::NationalId), out);
    }
    if p.dots >= 3 && p.digits >= 4 && net::find_v4(s) {
        out(Hit {
            category: Category::IpAddress,
            detector: "ip.v4",
            country: None,
            confidence: 90,
        });
    }
    if p.colons >= 2 && net::find_v6(s) {
        out(Hit {
            category: Category::IpAddress,
            detector: "ip.v6",
            country: None,
            confidence: 90,
        });
    }
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
            "jane@example。com",
            "jane@example｡com",
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
    fn addresses_written_with_the_at_as_a_word_are_emails() {
        for s in [
            "write to jane.doe (at) example (dot) com",
            "jane[at]example.com",
            "jane { AT } example dot com",
            "jane<@>example<.>co.uk",
            "jane(at)example(dot)co(dot)uk.",
            "jane [ at ] example [ . ] org",
            "jane at example dot com",
            "write to Jane.Doe AT mail DOT example DOT org please",
        ] {
            let mut hits = Vec::new();
            scan(s, |h| hits.push((h.category, h.detector)));
            assert_eq!(hits, vec![(Category::Email, "email.obfuscated")], "{s}");
        }
        for s in [
            "available at example.com",
            "look at the dot",
            "meet me (at) home",
            "see (a) and (b), [dot] points",
            "jane (at) example",
            "jane (at) example (dot) c",
            "jane (at example) dot com",
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
            "+49 30/901820",
            "+(49) 30 901820",
            "+ 49 30 901820",
            "call +(49)30-901820.",
        ] {
            assert_eq!(cats(s), vec![(Category::Phone, Some("DE".into()))], "{s}");
        }
        for s in [
            "+123",
            "+ 0049 30 901820",
            "1+49301234567",
            "+49 30 9018 20abc",
            "version 2.0+build",
            "+0049301234567",
        ] {
            assert!(cats(s).is_empty(), "{s}");
        }
    }

    fn field(key: &str, v: Value<'_>) -> Vec<(Category, &'static str, Option<String>)> {
        let mut out = Vec::new();
        scan_field(Some(key), v, &mut |h| {
            out.push((h.category, h.detector, h.country.map(|c| c.to_string())))
        });
        out
    }

    #[test]
    fn field_names_say_what_values_are() {
        assert_eq!(
            field("Vorname", Value::Str("Jürgen")),
            vec![(Category::Name, "field.name", None)]
        );
        assert_eq!(
            field("name", Value::Str("Jane Doe")),
            vec![(Category::Name, "field.name", None)]
        );
        assert!(field("name", Value::Str("checkout-v2")).is_empty());
        assert_eq!(
            field("pays", Value::Str("Allemagne")),
            vec![(
                Category::Address,
                "field.address_country",
                Some("DE".into())
            )]
        );
        assert_eq!(
            field("nationality", Value::Str("BR")),
            vec![(
                Category::Nationality,
                "field.nationality",
                Some("BR".into())
            )]
        );
        assert_eq!(
            field("hiv_positive", Value::Bool(false)),
            vec![(Category::Health, "field.health", None)]
        );
        assert_eq!(
            field("lat", Value::Number("52.52001")),
            vec![(Category::PreciseLocation, "field.precise_location", None)]
        );
        assert!(field("lat", Value::Number("52.5")).is_empty());
        assert_eq!(
            field("geburtsdatum", Value::Str("1985-03-14")),
            vec![(Category::DateOfBirth, "field.date_of_birth", None)]
        );
    }

    #[test]
    fn national_phone_formats_in_phone_fields() {
        // A national number names its country only when one numbering plan alone accepts it.
        assert_eq!(
            field("celular", Value::Str("(11) 91234-5678")),
            vec![(Category::Phone, "phone.national", Some("BR".into()))]
        );
        assert_eq!(
            field("telefon", Value::Str("030 901820")),
            vec![(Category::Phone, "phone.national", None)]
        );
        assert_eq!(
            field("téléphone", Value::Str("0033 6 12 34 56 78")),
            vec![(Category::Phone, "phone.national", Some("FR".into()))]
        );
        assert_eq!(
            field("phone", Value::Number("4930901820")),
            vec![(Category::Phone, "phone.e164", Some("DE".into()))]
        );
    }

    #[test]
    fn numbers_that_are_identifiers_are_checked() {
        assert_eq!(
            field("ref", Value::Number("44051401359")),
            vec![(Category::NationalId, "id.pl_pesel", Some("PL".into()))]
        );
        assert_eq!(
            field("bsn", Value::Number("900000004")),
            vec![(Category::NationalId, "id.nl_bsn", Some("NL".into()))]
        );
        assert_eq!(
            field("card", Value::Number("4111111111111111")),
            vec![(Category::PaymentCard, "card.luhn", None)]
        );
        assert!(field("count", Value::Number("1764381234")).is_empty());
    }

    #[test]
    fn evasions_are_seen_through() {
        for s in [
            "jane%40example.com",
            "jane&#64;example.com",
            "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            "ja\u{200B}ne@example.com",
            "ja\\u006ee@example.com",
            "ZW1haWw6amFuZUBleGFtcGxlLmNvbQ==",
        ] {
            assert_eq!(cats(s), vec![(Category::Email, None)], "{s}");
        }
        assert_eq!(cats("IBAN: DE89\u{200b}3704 0044 0532 0130 00").len(), 1);
        // Two layers of percent-encoding are undone; a third is not read, and is reported.
        assert_eq!(cats("john%2540example.com"), vec![(Category::Email, None)]);
        assert_eq!(
            cats("john%252540example.com"),
            vec![(Category::Uninspectable, None)]
        );
        // Inside base64 too.
        use base64::Engine as _;
        let wrapped = base64::engine::general_purpose::STANDARD.encode("john%252540example.com");
        assert_eq!(cats(&wrapped), vec![(Category::Uninspectable, None)]);
        // Text with a percent sign in it, encoded once or twice, is text.
        // (A percent sign that Unicode or entity decoding makes is not an encoding layer.)
        for s in [
            "50%25 off",
            "50%2525 off",
            "100%",
            "a%20b%2520c",
            "\u{ff11}\u{ff10}\u{ff10}\u{ff05}\u{ff42}\u{ff45}\u{ff45}\u{ff46}",
            "100&#37;beef",
        ] {
            assert_eq!(cats(s), vec![], "{s}");
        }
        // Bidi controls that reverse how digits are shown are dropped before matching.
        for s in [
            "jane\u{202E}@example.com",
            "ja\u{2066}ne@exam\u{2069}ple.com",
            "\u{202D}jane@example.com\u{202C}",
        ] {
            assert_eq!(cats(s), vec![(Category::Email, None)], "{s:?}");
        }
        assert_eq!(
            cats("IBAN DE89 3704\u{202E} 0044 0532 0130 00"),
            vec![(Category::Iban, Some("DE".to_owned()))]
        );
        assert_eq!(
            cats("card ４１１１ １１１１ １１１１ １１１１"),
            vec![(Category::PaymentCard, None)]
        );
    }

    #[test]
    fn profiles_count_past_their_folding_width() {
        // Counts are summed in 12-bit fields and folded; a long value must not wrap them.
        let v = format!(
            "{}{}{}",
            "1".repeat(70_000),
            ".".repeat(3),
            ":".repeat(66_000)
        );
        let p = profile(v.as_bytes());
        assert_eq!(p.alnum, 70_000);
        // The same value read as a JSON string.
        let quoted = format!("{v}é% x\"tail");
        let (at, q) = json_run(quoted.as_bytes());
        assert_eq!(at, v.len() + 5);
        let r = profile(&quoted.as_bytes()[..at]);
        assert_eq!(
            (q.len, q.digits, q.dots, q.colons, q.alnum, q.flags),
            (r.len, r.digits, r.dots, r.colons, r.alnum, r.flags)
        );
        assert_eq!(
            (p.digits, p.dots, p.colons, p.len),
            (70_000, 3, 66_000, v.len())
        );
        assert!(p.has(DIGIT) && p.has(COLON) && !p.has(UPPER) && !p.work());
        assert!(profile(b" \t\r\n").blank() && !profile(b" x ").blank());
    }

    #[test]
    fn a_json_run_stops_at_quotes_escapes_and_control_characters() {
        for (raw, stop) in [
            (&b"ab12\"rest"[..], 4),
            (b"ab\\n", 2),
            (b"a\tb", 1),
            (b"a\x01b", 1),
            (b"unterminated", 12),
        ] {
            let (at, p) = json_run(raw);
            assert_eq!(at, stop, "{raw:?}");
            assert_eq!(p.len, stop);
            assert_eq!(
                p.digits,
                raw[..stop].iter().filter(|c| c.is_ascii_digit()).count()
            );
        }
        for raw in [&b"ab12\"rest"[..], b"ab\\n", b"a\tb", b"unterminated"] {
            assert_eq!(crate::jsonstr::plain_len(raw), json_run(raw).0);
        }
        // Against a reading of the stop first and the profile after, on random values.
        const ALPHABET: &[u8] = b"aZ09.:@+% \"\\\x01-=_/\t\xc3\xa9&x\x7f\x1f ";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let len = (seed % 70) as usize;
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ALPHABET[(seed % ALPHABET.len() as u64) as usize]
                })
                .collect();
            let stop = raw
                .iter()
                .position(|c| matches!(c, b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(raw.len());
            let (at, p) = json_run(&raw);
            let reference = profile(&raw[..stop]);
            assert_eq!(
                (at, crate::jsonstr::plain_len(&raw)),
                (stop, stop),
                "{raw:?}"
            );
            assert_eq!(
                (p.len, p.digits, p.dots, p.colons, p.alnum, p.flags),
                (
                    stop,
                    reference.digits,
                    reference.dots,
                    reference.colons,
                    reference.alnum,
                    reference.flags
                ),
                "{raw:?}"
            );
            let slow = |c: &u8| c.is_ascii_digit();
            assert_eq!(p.digits, raw[..stop].iter().filter(|c| slow(c)).count());
        }
        // One stop (or none) at any place in a long value: every lane of the word steps.
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut raw: Vec<u8> = (0..len).map(|n| b"a\xff \x7f~9"[n % 6]).collect();
                    if at < len {
                        raw[at] = stop;
                    }
                    assert_eq!(crate::jsonstr::plain_len(&raw), at, "{raw:?}");
                    assert_eq!(json_run(&raw).0, at, "{raw:?}");
                }
            }
        }
        // A profile learnt while reading is the profile of the value read.
        let (_, p) = json_run(b"jane@example.com\"");
        assert!(p.has(AT) && p.has(DOT) && p.has(LOWER) && !p.has(JSON_STOP));
    }

    #[test]
    fn no_detector_fires_on_a_quiet_value() {
        // `quiet` restates the conditions the detectors start from; every string of the
        // corpus (every locale, format of value and evasion) holds it to them.
        fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
                serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
                    out.push(k.clone());
                    strings(v, out)
                }),
                _ => {}
            }
        }
        let corpus = crate::inspect::corpus::generate(0x5eed, 20);
        let mut values = Vec::new();
        for sample in &corpus.samples {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&sample.body) {
                strings(&v, &mut values);
            }
        }
        // Spelled-out addresses are rare in the corpus: some are added.
        values.extend(
            [
                "jane at example dot com",
                "Write to J.Doe AT mail DOT example DOT org",
            ]
            .map(String::from),
        );
        let (mut quiet, mut spelled, mut fired) = (0, 0, 0);
        for v in &values {
            let p = profile(v.as_bytes());
            assert_eq!(p.quiet_unless_spelled(), !p.may_fire(), "{v:?}");
            let mut hits = Vec::new();
            scan_str(None, v, &p, &mut |h| hits.push(h.detector));
            if p.quiet() {
                quiet += 1;
                assert_eq!(
                    hits,
                    Vec::<&str>::new(),
                    "a detector fired on a quiet value {v:?}"
                );
            } else if p.quiet_unless_spelled() {
                // Only the spelled-out address can be found, and `spelled_email` finds it.
                let mut alone = Vec::new();
                spelled_email(v, &mut |h| alone.push(h.detector));
                assert_eq!(hits, alone, "{v:?}");
                spelled += usize::from(!hits.is_empty());
            } else if !hits.is_empty() {
                fired += 1;
            }
        }
        assert!(
            quiet > 10_000 && fired > 500 && spelled >= 2,
            "{quiet} quiet, {spelled} spelled out, {fired} with findings"
        );
    }

    #[test]
    fn values_of_lone_words_are_passed_over_only_when_they_hold_no_identifier() {
        for c in 0..=255u8 {
            let p = profile(&[c]);
            assert_eq!(p.has(BREAKS_WORD), ids::breaks_word(c), "{c:#04x}");
            let in_a_word = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'/' | b'_');
            assert_eq!(ids::breaks_word(c), !in_a_word && c != b':', "{c:#04x}");
        }
        // Identifiers of every length class, inside values of one or two words.
        let ids = [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "NL91ABNA0417164300",
            "4111111111111111",
            "4111-1111-1111-1111",
            "123-45-6789",
            "RSSMRA85T10A562S",
            "AB123456C",
            "12345678Z",
            "44051401359",
            "900000004",
            "1234567",
        ];
        let heads = [
            "",
            "x",
            "ab",
            "https:",
            "https://",
            "iban:",
            "//",
            "-",
            "id_",
            "a.b/",
            "t.co/",
            "https://t.co/",
            "https://cdn.example.com/p/",
            "2024-05-01:",
        ];
        let tails = ["", "/", ".pdf", ":1", "-x", "/1.jpg", "9", "_a", ":DE89"];
        let mut values: Vec<String> = Vec::new();
        for id in ids {
            for head in heads {
                for tail in tails {
                    values.push(format!("{head}{id}{tail}"));
                }
            }
        }
        let corpus = crate::inspect::corpus::generate(0x1d5, 10);
        for sample in &corpus.samples {
            if let Ok(serde_json::Value::Object(o)) =
                serde_json::from_slice::<serde_json::Value>(&sample.body)
            {
                values.extend(o.values().filter_map(|v| v.as_str().map(String::from)));
            }
        }
        let (mut passed_over, mut found) = (0, 0);
        for v in &values {
            let mut hits = 0;
            ids::scan(v, true, &mut |_| hits += 1);
            found += usize::from(hits > 0);
            if lone_words_without_identifier(v.as_bytes(), &profile(v.as_bytes())) {
                passed_over += 1;
                assert_eq!(hits, 0, "{v:?} was passed over");
            }
        }
        assert!(
            passed_over >= 300 && found >= 300,
            "{passed_over} passed over, {found} found"
        );
        // The case it is for.
        let url = b"https://cdn.example.com/p/1000703/1.jpg";
        assert!(lone_words_without_identifier(url, &profile(url)));
        let short = b"https://t.co/4111111111111111";
        assert!(!lone_words_without_identifier(short, &profile(short)));
    }

    #[test]
    fn uuids_and_timestamps_are_not_identifiers() {
        assert!(uuid_or_timestamp(b"550e8400-e29b-41d4-a716-446655440000"));
        assert!(uuid_or_timestamp(b"2025-03-14T12:30:45.123+01:00"));
        assert!(uuid_or_timestamp(b"2025-03-14"));
        for t in [
            "2025-03-14T12:30:45Z",
            "2025-03-14 12:30",
            "2025-03-14T12:30:45.123456789-0500",
            "2025-03-14t12:30:45+05",
        ] {
            assert!(uuid_or_timestamp(t.as_bytes()), "{t}");
        }
        assert!(!uuid_or_timestamp(
            b"2025-03-14 DE89 3704 0044 0532 0130 00"
        ));
        assert!(cats("2025-03-14 DE89 3704 0044 0532 0130 00").len() == 1);
        // A date in front of an identifier does not hide it.
        for (s, want) in [
            ("2024-05-01 4111111111111111", Category::PaymentCard),
            ("2024-05-01 4111 1111 1111 1111", Category::PaymentCard),
            ("2024-05-01 123-45-6789", Category::NationalId),
            ("2024-05-01T10:00:00Z 123-45-6789", Category::NationalId),
        ] {
            assert!(!uuid_or_timestamp(s.as_bytes()), "{s}");
            assert_eq!(
                cats(s).first().map(|c| c.0),
                Some(want),
                "{s}: {:?}",
                cats(s)
            );
        }
    }

    #[test]
    fn base64_is_read_however_it_is_wrapped_and_in_layers() {
        // Base64 however it is wrapped, and in layers.
        use base64::Engine as _;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let csv = "name,mail\nJane,jane@example.com\nJoe,joe@example.org\nAnn,ann@example.net\n";
        let wrapped: String = b64(csv)
            .as_bytes()
            .chunks(76)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n");
        for s in [
            wrapped.clone(),
            wrapped.replace("\r\n", "\n"),
            format!("data:text/csv;base64,{}", b64(csv)),
            b64(&b64("write to jane@example.com")),
            b64(&b64(&b64("write to jane@example.com"))),
        ] {
            assert_eq!(cats(&s).first().map(|c| c.0), Some(Category::Email), "{s}");
        }
    }

    #[test]
    fn a_number_is_read_however_its_groups_are_spaced() {
        // However the groups of a number are spaced.
        for s in [
            "4111\t1111\t1111\t1111",
            "4111 - 1111 - 1111 - 1111",
            "4111   1111   1111   1111",
            "4111_1111_1111_1111",
        ] {
            assert_eq!(
                cats(s).first().map(|c| c.0),
                Some(Category::PaymentCard),
                "{s:?}"
            );
        }
        // An SSN in its groups, with dashes, dots or spaces.
        for s in ["123-45-6789", "123.45.6789", "123 45 6789"] {
            assert_eq!(
                cats(s).first().map(|c| c.0),
                Some(Category::NationalId),
                "{s}"
            );
        }
    }

    #[test]
    fn a_codice_fiscale_with_every_digit_written_as_a_letter_is_found() {
        // A codice fiscale with every digit written as a letter (omocodia).
        let base = "RSSMRAURTMLARSN";
        let check = (b'A'..=b'Z')
            .map(|l| format!("{base}{}", char::from(l)))
            .find(|cf| ids::is_codice_fiscale(cf.as_bytes()))
            .unwrap();
        assert_eq!(
            cats(&check),
            vec![(Category::NationalId, Some("IT".into()))],
            "{check}"
        );
    }

    #[test]
    fn digits_of_any_script_and_under_combining_marks_are_digits() {
        // Combining marks on digits do not hide them.
        assert_eq!(
            cats("4\u{332}1\u{332}1\u{332}1\u{332} 1111 1111 1111")
                .first()
                .map(|c| c.0),
            Some(Category::PaymentCard)
        );
        // Any script's digits are digits.
        assert_eq!(
            cats("೪೧೧೧ ೧೧೧೧ ೧೧೧೧ ೧೧೧೧").first().map(|c| c.0),
            Some(Category::PaymentCard)
        );
    }
}
