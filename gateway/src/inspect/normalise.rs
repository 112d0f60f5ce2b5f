//! Evasions undone before matching: percent-encoding (twice), HTML entities, literal `\u`
//! escapes, Unicode compatibility forms (NFKC: full-width letters and digits, `﹫`, `．`),
//! default-ignorable characters (zero-width spaces and joiners, soft hyphens, BOMs), other
//! scripts' decimal digits and dashes. Base64 values that decode to text, or to gzip-compressed
//! text, are decoded by [`base64_text`] and scanned as well.
//!
//! A value made of plain ASCII without `%`, `&` or `\` is returned as it is, without copying:
//! that is almost every value.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use super::decode::{self, Coding, DecodeLimits};

/// Whether `s` needs any normalisation.
pub fn needs_work(s: &str) -> bool {
    s.bytes()
        .any(|c| c >= 0x80 || c == b'%' || c == b'&' || c == b'\\')
}

/// `s` with the evasions undone.
pub fn normalise(s: &str) -> Cow<'_, str> {
    normalise_layers(s).0
}

/// [`normalise`], and whether the value was still percent-encoded after the two layers undone
/// (encoded three times or more: what the third layer hides is not read).
pub fn normalise_layers(s: &str) -> (Cow<'_, str>, bool) {
    if !needs_work(s) {
        return (Cow::Borrowed(s), false);
    }
    let mut cur: Cow<'_, str> = Cow::Borrowed(s);
    // Percent-encoding, up to two layers (`%2540` is `%40` is `@`).
    let mut layers = 0;
    while layers < 2 && has_percent_escape(&cur) {
        let decoded = percent_encoding::percent_decode_str(&cur)
            .decode_utf8_lossy()
            .into_owned();
        cur = Cow::Owned(decoded);
        layers += 1;
    }
    let deeper = layers == 2 && has_percent_escape(&cur);
    if cur.contains('&') {
        cur = Cow::Owned(html_entities(&cur));
    }
    if cur.contains("\\u") {
        cur = Cow::Owned(u_escapes(&cur));
    }
    if !cur.is_ascii() && !settled(&cur) {
        cur = Cow::Owned(unicode(&cur));
    }
    (cur, deeper)
}

fn has_percent_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// Named entities that stand for characters identifiers are written with.
const ENTITIES: &[(&str, char)] = &[
    ("commat", '@'),
    ("period", '.'),
    ("plus", '+'),
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("num", '#'),
    ("hyphen", '-'),
    ("dash", '-'),
    ("minus", '-'),
    ("lpar", '('),
    ("rpar", ')'),
    ("sol", '/'),
    ("colon", ':'),
    ("lowbar", '_'),
    ("comma", ','),
];

/// Decodes `&#64;`, `&#x40;` and the named entities above; anything else stays as written.
fn html_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // The `;` is looked for only as far as an entity can reach: looking further would
        // make a value of many `&` and no `;` cost the square of its length.
        let mut reach = rest.as_bytes()[1..].iter().take(11);
        let decoded = reach.position(|&c| c == b';').and_then(|e| {
            let body = &rest[1..1 + e];
            let ch = if let Some(hex) = body.strip_prefix("#x").or_else(|| body.strip_prefix("#X"))
            {
                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
            } else if let Some(dec) = body.strip_prefix('#') {
                dec.parse::<u32>().ok().and_then(char::from_u32)
            } else {
                ENTITIES.iter().find(|(n, _)| *n == body).map(|(_, c)| *c)
            }?;
            Some((ch, e + 2))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes literal `\uXXXX` escapes left in a value (JSON escaped twice, or sent in a form).
fn u_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let unit = |t: &str| t.get(2..6).and_then(|h| u32::from_str_radix(h, 16).ok());
        match unit(rest) {
            Some(hi @ 0xD800..=0xDBFF) => {
                let lo = rest
                    .get(6..)
                    .filter(|t| t.starts_with("\\u"))
                    .and_then(unit);
                match lo {
                    Some(lo @ 0xDC00..=0xDFFF) => {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        rest = &rest[12..];
                    }
                    _ => {
                        out.push('\u{FFFD}');
                        rest = &rest[6..];
                    }
                }
            }
            Some(u) => {
                out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
                rest = &rest[6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Unicode default-ignorable code points (DerivedCoreProperties.txt), which render as nothing
/// and can be slipped inside an identifier.
fn ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The zero of every block of ten decimal digits (general category Nd) beyond ASCII, in
/// order: Unicode 15's, each running zero to nine. A backend's number parser (Python's `int`,
/// .NET's `char.IsDigit`) reads any of them as the digit it is.
const DIGIT_ZEROS: [u32; 67] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0,
    0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

/// The ASCII digit a decimal digit of another script is.
fn ascii_digit(u: u32) -> Option<char> {
    let at = DIGIT_ZEROS.partition_point(|&z| z <= u).checked_sub(1)?;
    let offset = u - DIGIT_ZEROS[at];
    (offset < 10).then(|| char::from(b'0' + offset as u8))
}

/// What [`unicode`] makes of one character of NFKC text: dropped (`None`) when it is
/// default-ignorable, another script's digit as its ASCII digit, a dash as `-`, an ideographic
/// full stop as `.` (as IDNA maps it in a domain name).
fn map_char(c: char) -> Option<char> {
    if c.is_ascii() {
        return Some(c);
    }
    if ignorable(c) {
        return None;
    }
    if let Some(d) = ascii_digit(c as u32) {
        return Some(d);
    }
    Some(match c {
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => '-',
        '\u{3002}' | '\u{FF61}' => '.',
        _ => c,
    })
}

fn unicode(s: &str) -> String {
    fold(s.nfkc()).collect()
}

/// What [`unicode`] does after NFKC: each character through [`map_char`], and a combining
/// mark on a digit (`4̲1̲1̲1̲`) dropped: the digit is what is read.
fn fold(chars: impl Iterator<Item = char>) -> impl Iterator<Item = char> {
    let mut after_digit = false;
    chars.filter_map(map_char).filter(move |&c| {
        let keep = !(after_digit && combining(c));
        if keep {
            after_digit = c.is_ascii_digit();
        }
        keep
    })
}

/// A combining mark of the blocks that decorate any character: Unicode's combining
/// diacritical marks (with their extended and supplement blocks), the combining marks for
/// symbols, and the combining half marks.
fn combining(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Whether [`unicode`] would give `s` back unchanged: the quick check proves it NFKC already
/// (most text in most scripts is), and no character of it is dropped or rewritten. Such a
/// value is scanned where it lies, without composing it again into a copy.
fn settled(s: &str) -> bool {
    let stable = stable_chars();
    s.chars().all(|c| {
        let u = c as usize;
        u < 0x80 || (u < 0x10000 && stable[u >> 6] & (1 << (u & 63)) != 0)
    }) || settled_slowly(s)
}

/// [`settled`] as NFKC's quick check and [`fold`] tell it, character by character.
fn settled_slowly(s: &str) -> bool {
    is_nfkc_quick(s.chars()) == IsNormalized::Yes && fold(s.chars()).eq(s.chars())
}

/// The characters of the Basic Multilingual Plane that leave any text they are in settled, a
/// bit each: NFKC's quick check says yes to them and they do not combine (so a text of them
/// alone is NFKC as it is), and [`fold`] keeps them as they are. Most letters of most scripts
/// are; a text of them alone is told settled with one lookup a character, where the quick
/// check and the fold cost tens of instructions each.
fn stable_chars() -> &'static [u64; 1024] {
    static STABLE: std::sync::OnceLock<Box<[u64; 1024]>> = std::sync::OnceLock::new();
    STABLE.get_or_init(|| {
        let mut bits = Box::new([0u64; 1024]);
        for u in 0x80..0x10000u32 {
            let Some(c) = char::from_u32(u) else { continue };
            let one = std::iter::once(c);
            if unicode_normalization::char::canonical_combining_class(c) == 0
                && is_nfkc_quick(one.clone()) == IsNormalized::Yes
                && !combining(c)
                && fold(one).eq(std::iter::once(c))
            {
                bits[(u >> 6) as usize] |= 1 << (u & 63);
            }
        }
        bits
    })
}

const INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);

const B64_UPPER: u8 = 1;
const B64_LOWER: u8 = 2;
const B64_STD: u8 = 4;
const B64_URL: u8 = 8;
const B64_INVALID: u8 = 16;

/// Byte classes for [`base64_text`]: digits are 0.
const BASE64_CLASSES: [u8; 256] = {
    let mut t = [B64_INVALID; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c as u8 {
            b'A'..=b'Z' => B64_UPPER,
            b'a'..=b'z' => B64_LOWER,
            b'0'..=b'9' => 0,
            b'+' | b'/' => B64_STD,
            b'-' | b'_' => B64_URL,
            _ => B64_INVALID,
        };
        c += 1;
    }
    t
};

/// What a base64 value holds, when it holds something to read.
#[derive(Debug, PartialEq, Eq)]
pub enum Unwrapped {
    /// Printable UTF-8 text (gzip-compressed text is decompressed first).
    Text(String),
    /// What may hold anything and is not read, named by the detector id that reports it: gzip
    /// data that is corrupt or decompresses past its limits (`compressed.gzip`), or a file of a
    /// kind told by its signature, a document, an image or an archive (`embedded.pdf`).
    Unread(&'static str),
}

/// What a base64 (or base64url) value decodes to, when the whole value is base64 of at least
/// 12 characters and decodes to printable UTF-8, or to gzip data (`H4sI...`, as APIs send
/// compressed payloads in JSON strings), or to a file of a kind told by its signature.
/// Speculative: most long tokens are not base64 of text, and the check fails on their first
/// byte outside the alphabet.
pub fn base64_text(s: &str) -> Option<Unwrapped> {
    let mut t = s.trim();
    // A data URL (`data:text/csv;base64,...`) carries base64 after its comma.
    if let Some(rest) = t.strip_prefix("data:") {
        t = rest.split_once(";base64,")?.1;
    }
    // Base64 as MIME and base64(1) write it: in lines of 76 (or 64) characters.
    let joined;
    if memchr::memchr2(b'\r', b'\n', t.as_bytes()).is_some() {
        joined = t.replace(['\r', '\n'], "");
        t = &joined;
    }
    if t.len() < 12 || t.len() > MAX_BASE64 {
        return None;
    }
    let body = t.trim_end_matches('=');
    if t.len() - body.len() > 2 {
        return None;
    }
    // The classes of the value's bytes, OR-ed without a branch per byte (the bytes of a
    // token are random, so branches on them would be mispredicted).
    let seen = body
        .bytes()
        .fold(0u8, |seen, c| seen | BASE64_CLASSES[usize::from(c)]);
    let (upper, lower) = (seen & B64_UPPER != 0, seen & B64_LOWER != 0);
    let (std, url) = (seen & B64_STD != 0, seen & B64_URL != 0);
    if seen & B64_INVALID != 0 {
        return None;
    }
    // Base64 of text has both cases; hex digests, UUIDs and slugs do not, and are not decoded.
    if (std && url) || !upper || !lower {
        return None;
    }
    let engine = if url { &URL_SAFE } else { &STANDARD };
    // Most such values are tokens that decode to random bytes: the first twelve decoded bytes
    // already say so, before the whole value is decoded.
    let mut head = [0u8; 12];
    let n = engine
        .decode_slice(&body[..body.len().min(16)], &mut head)
        .ok()?;
    if let Some(kind) = file_kind(&head[..n]) {
        return Some(Unwrapped::Unread(kind));
    }
    let gzip = head[..n].starts_with(&GZIP_MAGIC);
    if !gzip && !text_prefix(&head[..n]) {
        return None;
    }
    let mut bytes = engine.decode(body).ok()?;
    if gzip {
        let left = INFLATE_LEFT.with(std::cell::Cell::get);
        let limits = DecodeLimits {
            max_decoded_bytes: MAX_BASE64.min(left),
            max_ratio: 100,
        };
        // What a failed decoding may have produced before it stopped counts as spent too, or
        // a body of many small bombs would decompress far more than the budget.
        let decoded = decode::decode(&[Coding::Gzip], &bytes, limits);
        let spent = decoded
            .as_ref()
            .map_or(limits.allowed(bytes.len()), |d| d.len());
        INFLATE_LEFT.with(|b| b.set(left.saturating_sub(spent)));
        bytes = match decoded {
            Ok(text) => text.into_owned(),
            Err(_) => return Some(Unwrapped::Unread("compressed.gzip")),
        };
    }
    let text = String::from_utf8(bytes).ok()?;
    printable(&text).then_some(Unwrapped::Text(text))
}

/// The most bytes the gzip values of one inspection (a body, the query, the headers) may
/// decompress to together (a failed decoding counts what it may have produced); past it, further
/// compressed values are unread (`compressed.gzip`).
/// A body of many small compressed values would otherwise ask for far more work than its size.
const INFLATE_BUDGET: usize = 8 << 20;

thread_local! {
    static INFLATE_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(INFLATE_BUDGET) };
}

/// Starts a new inspection's decompression budget on this thread ([`INFLATE_BUDGET`]).
pub(crate) fn new_inflate_budget() {
    INFLATE_LEFT.with(|b| b.set(INFLATE_BUDGET));
}

/// The kind of file the first bytes of a decoded value begin, by the signatures the formats
/// define: documents, images and archives, which may hold anything (a scanned passport, a
/// spreadsheet of customers) and are not read here.
fn file_kind(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: [(&[u8], &str); 12] = [
        (b"PK\x03\x04", "embedded.zip"),
        (b"%PDF-", "embedded.pdf"),
        (b"\x89PNG\r\n\x1a\n", "embedded.png"),
        (b"\xff\xd8\xff\xe0", "embedded.jpeg"),
        (b"\xff\xd8\xff\xe1", "embedded.jpeg"),
        (b"\xff\xd8\xff\xdb", "embedded.jpeg"),
        (b"GIF87a", "embedded.gif"),
        (b"GIF89a", "embedded.gif"),
        (b"II*\x00", "embedded.tiff"),
        (b"MM\x00*", "embedded.tiff"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "embedded.ole"),
        (b"7z\xbc\xaf\x27\x1c", "embedded.7z"),
    ];
    if let Some(&(_, kind)) = SIGNATURES.iter().find(|(sig, _)| head.starts_with(sig)) {
        return Some(kind);
    }
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("embedded.webp")
    } else if head.get(4..8) == Some(b"ftyp") {
        // ISO base media files: HEIC and AVIF photos, MP4 and QuickTime video.
        Some("embedded.media")
    } else {
        None
    }
}

/// The first bytes of a gzip member with the deflate method (RFC 1952).
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// The longest base64 value decoded (the inspection buffer bounds a body anyway; a value is
/// decoded only when its first bytes already decode to text).
const MAX_BASE64: usize = 1 << 20;

/// Whether a value that is not base64 as it stands may be once its wrapping is undone: a data
/// URL, or base64 in lines (long, of both cases, with a line break).
pub fn maybe_wrapped_base64(s: &str) -> bool {
    s.starts_with("data:") || (s.len() >= 64 && s.contains('\n'))
}

/// No control characters but tabs and line breaks.
fn printable(t: &str) -> bool {
    t.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// Whether `b` can begin printable UTF-8 text (a sequence cut at its end still can).
fn text_prefix(b: &[u8]) -> bool {
    let valid = match std::str::from_utf8(b) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => {
            // Only the last character is incomplete.
            std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    printable(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_not_copied() {
        assert!(matches!(normalise("jane@example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn text_already_normal_is_scanned_where_it_lies() {
        // Text in many scripts that NFKC and the character mapping leave as it is.
        for s in [
            "Lieferung in 3-5 Werktagen",
            "Zamówienie 61207 wysłane",
            "订单 55012 已发货",
            "注文 33017 を発送しました",
            "Entrega em até 5 dias úteis",
            "ünïcødé@bücher.example",
            "Ελληνικά και русский текст",
            "한국어 주문",
        ] {
            assert_eq!(unicode(s), s, "{s}");
            assert!(settled(s), "{s}");
            assert!(matches!(normalise(s), Cow::Borrowed(_)), "{s}");
        }
        // Text that NFKC or the mapping changes is never taken as settled.
        for s in [
            "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            "ja\u{200B}ne",
            "+٤٩ ٣٠",
            "4111\u{2011}1111",
            "\u{FB01}le",
            "\u{2126}",
            "e\u{301}",
            "e\u{301}\u{327}",
            "\u{1100}\u{1161}",
            "x\u{00AD}y",
        ] {
            assert!(!settled(s), "{s:?}");
            assert_ne!(unicode(s), s, "{s:?}");
        }
    }

    #[test]
    fn settled_by_lookup_as_by_the_quick_check() {
        // Characters of every kind near the lookup's edges: ASCII, letters of many scripts,
        // combining marks, conjoining jamo, compatibility forms, ignorables, other scripts'
        // digits, dashes and stops the fold rewrites, and characters past the BMP.
        let chars: Vec<char> =
            "aZ9 @.-\u{7f}\u{80}\u{a0}\u{aa}\u{b2}\u{c0}\u{e9}\u{ff}\u{132}\u{17f}\
             \u{300}\u{301}\u{327}\u{345}\u{3a9}\u{3c9}\u{416}\u{5d0}\u{627}\u{664}\u{901}\u{93f}\
             \u{e01}\u{1100}\u{1161}\u{11a8}\u{200b}\u{2011}\u{2126}\u{2212}\u{3002}\u{3042}\
             \u{3099}\u{30ab}\u{4e00}\u{ac00}\u{d7a3}\u{fb01}\u{fe63}\u{ff10}\u{ff21}\u{ff61}\
             \u{1d400}\u{1f600}\u{20000}"
                .chars()
                .collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 6) as usize;
            let s: String = (0..len)
                .map(|i| chars[(x >> (8 + 8 * i)) as usize % chars.len()])
                .collect();
            assert_eq!(settled(&s), settled_slowly(&s), "{s:?}");
        }
        // And each character of the plane alone, after a letter and after a digit.
        for u in 0x80..0x10000u32 {
            let Some(c) = char::from_u32(u) else { continue };
            for s in [c.to_string(), format!("a{c}"), format!("4{c}")] {
                assert_eq!(settled(&s), settled_slowly(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn entities_end_within_their_reach() {
        assert_eq!(html_entities("a&#64;b&commat;c"), "a@b@c");
        // Ten characters at most between `&` and `;`.
        assert_eq!(html_entities("&#000000064;"), "@");
        assert_eq!(html_entities("&#0000000064;"), "&#0000000064;");
        // Many `&` and no `;`: left as they are (the value a search for `;` through the whole
        // rest made quadratic; no time is asserted).
        let amps = "&".repeat(256 * 1024);
        assert_eq!(html_entities(&amps), amps);
        assert_eq!(html_entities("&&#64;&"), "&@&");
    }

    #[test]
    fn evasions_are_undone() {
        for (input, want) in [
            ("jane%40example.com", "jane@example.com"),
            ("jane%2540example.com", "jane@example.com"),
            ("jane&#64;example&#46;com", "jane@example.com"),
            ("jane&commat;example&period;com", "jane@example.com"),
            ("jane&#x40;example.com", "jane@example.com"),
            ("\\u006aane@example.com", "jane@example.com"),
            ("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "jane@example.com"),
            ("ja\u{200B}ne@ex\u{200D}ample.com", "jane@example.com"),
            ("jane\u{FE6B}example.com", "jane@example.com"),
            ("＋４９ ３０ ９０１８２０", "+49 30 901820"),
            ("+٤٩ ٣٠ ٩٠١٨٢٠", "+49 30 901820"),
            // Kannada, Malayalam, Khmer, Lao, and a block of the supplementary planes.
            ("+೪೯ ೩೦ ೯೦೧೮೨೦", "+49 30 901820"),
            ("൪൧൧൧", "4111"),
            ("៤១១១", "4111"),
            ("໔໑໑໑", "4111"),
            ("\u{11066}\u{1106F}", "09"),
            ("jane@example。com", "jane@example.com"),
            ("4\u{332}1\u{332}1\u{332}1\u{332}", "4111"),
            ("4\u{20E3}1\u{301}", "41"),
            // Marks on letters are the letters' own.
            ("e\u{301}", "é"),
            ("jane@example｡com", "jane@example.com"),
            ("4111\u{2011}1111", "4111-1111"),
            ("100% & more", "100% & more"),
        ] {
            assert_eq!(normalise(input), want, "{input}");
        }
    }

    fn text(s: &str) -> Option<String> {
        match base64_text(s)? {
            Unwrapped::Text(t) => Some(t),
            Unwrapped::Unread(_) => None,
        }
    }

    fn gzip_b64(data: &[u8]) -> String {
        use std::io::Write as _;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        STANDARD.encode(z.finish().unwrap())
    }

    /// Letters in no pattern: about five bits a byte once compressed, far from a bomb's ratio.
    fn letters(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b'a' + ((x >> 33) % 26) as u8
            })
            .collect()
    }

    #[test]
    fn gzip_in_base64_is_decompressed_within_limits() {
        new_inflate_budget();
        assert_eq!(
            text(&gzip_b64(b"contact: jane@example.com")),
            Some("contact: jane@example.com".into())
        );
        // Compressed binary holds no text to read, as base64 of binary does not.
        assert_eq!(
            base64_text(&gzip_b64(&[0u8, 1, 2, 3, 0xff, 0xfe, 7, 8])),
            None
        );
        // Two MiB of zeros (a thousand to one), corrupt data, and a truncated member cannot
        // be read.
        assert_eq!(
            base64_text(&gzip_b64(&vec![b'0'; 2 << 20])),
            Some(Unwrapped::Unread("compressed.gzip"))
        );
        let mut corrupt = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
        corrupt.extend_from_slice(b"not deflate data at all, just text");
        assert_eq!(
            base64_text(&STANDARD.encode(&corrupt)),
            Some(Unwrapped::Unread("compressed.gzip"))
        );
        let whole = gzip_b64(b"contact: jane@example.com, and more text after it");
        assert_eq!(
            base64_text(&whole[..whole.len() / 2 / 4 * 4]),
            Some(Unwrapped::Unread("compressed.gzip"))
        );
    }

    #[test]
    fn files_are_told_by_their_signatures() {
        let file = |head: &[u8]| {
            let mut b = head.to_vec();
            b.extend_from_slice(&letters(40, 3));
            base64_text(&STANDARD.encode(&b))
        };
        for (head, kind) in [
            (&b"PK\x03\x04\x14\x00\x06\x00"[..], "embedded.zip"),
            (b"%PDF-1.4\n", "embedded.pdf"),
            (b"\x89PNG\r\n\x1a\n", "embedded.png"),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF", "embedded.jpeg"),
            (b"\xff\xd8\xff\xe1\x12\x34Exif", "embedded.jpeg"),
            (b"GIF89a", "embedded.gif"),
            (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "embedded.webp"),
            (b"\x00\x00\x00\x18ftypheic", "embedded.media"),
            (b"\x00\x00\x00\x20ftypisom", "embedded.media"),
            (b"II*\x00\x08\x00", "embedded.tiff"),
            (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "embedded.ole"),
            (b"7z\xbc\xaf\x27\x1c", "embedded.7z"),
        ] {
            assert_eq!(file(head), Some(Unwrapped::Unread(kind)), "{kind}");
        }
        // Text that merely starts like one is text; random bytes are nothing.
        assert!(matches!(file(b"PK is a prefix "), Some(Unwrapped::Text(_))));
        assert!(matches!(file(b"GIF87 "), Some(Unwrapped::Text(_))));
        assert_eq!(file(b"\xff\xd8\xff\x00\x9a"), None);
    }

    #[test]
    fn one_inspection_decompresses_at_most_its_budget() {
        new_inflate_budget();
        let value = gzip_b64(&letters((1 << 20) - 16, 7));
        for n in 0..INFLATE_BUDGET / MAX_BASE64 {
            assert!(
                matches!(base64_text(&value), Some(Unwrapped::Text(_))),
                "value {n}"
            );
        }
        assert_eq!(
            base64_text(&value),
            Some(Unwrapped::Unread("compressed.gzip"))
        );
        // Decodings that fail spend the budget too: what each may have produced (4 MiB of
        // zeros compress to about 4 KiB, so each may have produced about 400 KiB).
        let bomb = gzip_b64(&vec![b'0'; 4 << 20]);
        new_inflate_budget();
        assert_eq!(
            base64_text(&bomb),
            Some(Unwrapped::Unread("compressed.gzip"))
        );
        assert!(matches!(base64_text(&value), Some(Unwrapped::Text(_))));
        new_inflate_budget();
        for _ in 0..INFLATE_BUDGET / (256 << 10) {
            assert_eq!(
                base64_text(&bomb),
                Some(Unwrapped::Unread("compressed.gzip"))
            );
        }
        assert_eq!(
            base64_text(&value),
            Some(Unwrapped::Unread("compressed.gzip"))
        );
        new_inflate_budget();
        assert!(matches!(base64_text(&value), Some(Unwrapped::Text(_))));
    }

    #[test]
    fn base64_of_text_is_decoded() {
        assert_eq!(
            text("ZW1haWw6am9obkBleGFtcGxlLmNvbQ=="),
            Some("email:john@example.com".into())
        );
        assert_eq!(
            text("am9obkBleGFtcGxlLmNvbQ"),
            Some("john@example.com".into())
        );
        assert_eq!(text("3q2+7w=="), None);
        assert_eq!(text("550e8400-e29b-41d4-a716-446655440000"), None);
        assert_eq!(text("hello world"), None);
        // Random tokens are refused from their first bytes; text with multi-byte characters
        // cut at the end of those bytes is still read whole.
        assert_eq!(text("72JCiYPtNxrU37bEOyHGZ394GM6rwM6q"), None);
        assert_eq!(
            text("YcOpw6nDqcOpw6nDqWpvaG5AZXhhbXBsZS5jb20="),
            Some("aééééééjohn@example.com".into())
        );
        assert!(text_prefix("abcé".as_bytes()) && text_prefix(&"abcé".as_bytes()[..4]));
        assert!(!text_prefix(b"ab\x01") && !text_prefix(b"\xff\xfe"));
    }
}
