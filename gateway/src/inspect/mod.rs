//! Phase 4, inspect: find personal data in the URL path and query, the configured headers and
//! cookies, the body and its trailers, as category and location, never the value. Bytes in,
//! findings out.
//!
//! Bodies are unwrapped for inspection only ([`decode`]: content codings and charsets;
//! [`multipart`]: form-data parts) and read by their declared type; a route's [`fieldmap`]
//! adds what its fields are declared to hold. A body that cannot be fully inspected (over the
//! buffer limit, undecodable, a decompression bomb, of an unsupported type, invalid or too
//! deeply nested) is marked uninspectable: the decision treats it as personal data of unknown
//! category, which never crosses a border.

pub mod corpus;
pub mod decode;
pub mod detect;
pub mod fieldmap;
mod fragments;
pub mod fuzzing;
pub mod json;
pub mod multipart;
pub mod normalise;
pub mod xml;

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use domicile_policy::{Category, Country};
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::body::Body;
use crate::problem::Problem;
use crate::step::PhaseFuture;

/// Maximum JSON nesting inspected; deeper documents are uninspectable.
pub const MAX_JSON_DEPTH: usize = 128;

/// One place personal data was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub category: Category,
    /// A JSON pointer, `query:<key>`, `form:<key>`, `multipart:<field>`, `path:/<n>`,
    /// `header:<name>`, `cookie:<name>`, `trailer:<name>` or `body`.
    pub location: String,
    pub detector: &'static str,
    /// How sure the detector is, 0-100 (see [`detect::Hit::confidence`]). Not written to
    /// decision records, whose findings stay category, location, detector and country.
    #[serde(skip_serializing)]
    pub confidence: u8,
    /// The country the value belongs to (a phone number's), when known. Jurisdiction evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Country>,
}

/// Why a body could not be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Uninspectable {
    TooLarge,
    ContentEncoding,
    UnsupportedContentType,
    InvalidJson,
    TooDeep,
    InvalidUtf8,
    /// More findings than one request may carry.
    TooManyFindings,
    /// `Content-Type` or `Content-Encoding` given more than once.
    AmbiguousHeaders,
    /// The content coding's data is corrupt or truncated.
    Undecodable,
    /// The body decodes past the size or ratio limit. Always refused, whatever the route says.
    DecompressionBomb,
    /// A declared charset that is not supported.
    UnsupportedCharset,
    /// Bytes that are not valid in the declared charset.
    InvalidCharset,
    /// A multipart body that is not well-formed or has no valid boundary.
    InvalidMultipart,
    /// More multipart parts than the limit.
    TooManyParts,
    /// A binary multipart part on a route whose `binary_parts` is `uninspectable`.
    BinaryPart,
    /// A form body with a `%` that does not begin a two-digit hex escape: decoders differ on
    /// what it means.
    InvalidForm,
    /// An XML body whose document type declares entities, or that refers to an entity that
    /// is not one of XML's five: what it expands to is not seen here.
    XmlEntities,
    /// An XML body that is not well-formed.
    InvalidXml,
    /// An XML declaration naming an encoding other than the one the body is read in.
    XmlEncoding,
}

impl Uninspectable {
    pub fn as_str(self) -> &'static str {
        match self {
            Uninspectable::TooLarge => "too_large",
            Uninspectable::ContentEncoding => "content_encoding",
            Uninspectable::UnsupportedContentType => "unsupported_content_type",
            Uninspectable::InvalidJson => "invalid_json",
            Uninspectable::TooDeep => "too_deep",
            Uninspectable::InvalidUtf8 => "invalid_utf8",
            Uninspectable::TooManyFindings => "too_many_findings",
            Uninspectable::AmbiguousHeaders => "ambiguous_headers",
            Uninspectable::Undecodable => "undecodable",
            Uninspectable::DecompressionBomb => "decompression_bomb",
            Uninspectable::UnsupportedCharset => "unsupported_charset",
            Uninspectable::InvalidCharset => "invalid_charset",
            Uninspectable::InvalidMultipart => "invalid_multipart",
            Uninspectable::TooManyParts => "too_many_parts",
            Uninspectable::BinaryPart => "binary_part",
            Uninspectable::InvalidForm => "invalid_form",
            Uninspectable::XmlEntities => "xml_entities",
            Uninspectable::InvalidXml => "invalid_xml",
            Uninspectable::XmlEncoding => "xml_encoding",
        }
    }

    /// The status a rejecting route answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Uninspectable::TooLarge
            | Uninspectable::TooManyFindings
            | Uninspectable::DecompressionBomb
            | Uninspectable::TooManyParts => StatusCode::PAYLOAD_TOO_LARGE,
            Uninspectable::ContentEncoding
            | Uninspectable::UnsupportedContentType
            | Uninspectable::UnsupportedCharset
            | Uninspectable::BinaryPart
            | Uninspectable::XmlEntities
            | Uninspectable::XmlEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Uninspectable::InvalidJson
            | Uninspectable::TooDeep
            | Uninspectable::InvalidUtf8
            | Uninspectable::AmbiguousHeaders
            | Uninspectable::Undecodable
            | Uninspectable::InvalidCharset
            | Uninspectable::InvalidMultipart
            | Uninspectable::InvalidForm
            | Uninspectable::InvalidXml => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the request is refused even on a route that keeps what it cannot inspect: a
    /// decompression bomb is an attack on whoever decodes it next.
    pub fn always_rejected(self) -> bool {
        self == Uninspectable::DecompressionBomb
    }

    /// What a decision record's reason trail says about it.
    pub fn describe(self) -> &'static str {
        match self {
            Uninspectable::TooLarge => "the body is larger than server.limits.max_body_bytes",
            Uninspectable::ContentEncoding => "the body has a content coding that is not supported",
            Uninspectable::UnsupportedContentType => {
                "the body's content type cannot be read for personal data"
            }
            Uninspectable::InvalidJson => "the body is not valid JSON",
            Uninspectable::TooDeep => "the body is nested deeper than the inspection limit",
            Uninspectable::InvalidUtf8 => "the body is not valid UTF-8",
            Uninspectable::TooManyFindings => {
                "the request holds more findings than one record may list"
            }
            Uninspectable::AmbiguousHeaders => {
                "Content-Type or Content-Encoding is given more than once"
            }
            Uninspectable::Undecodable => "the body's content coding is corrupt or truncated",
            Uninspectable::DecompressionBomb => {
                "the body decodes past inspect.max_decoded_bytes or inspect.max_decode_ratio"
            }
            Uninspectable::UnsupportedCharset => {
                "the body declares a charset that is not supported"
            }
            Uninspectable::InvalidCharset => "the body is not valid in its declared charset",
            Uninspectable::InvalidMultipart => "the multipart body is not well-formed",
            Uninspectable::TooManyParts => {
                "the multipart body has more parts than inspect.max_parts"
            }
            Uninspectable::BinaryPart => {
                "a multipart part has a binary type and the route's binary_parts is uninspectable"
            }
            Uninspectable::InvalidForm => {
                "the form body has a '%' that does not begin a two-digit hex escape"
            }
            Uninspectable::XmlEntities => {
                "the XML body declares entities or refers to one that is not predefined"
            }
            Uninspectable::InvalidXml => "the body is not well-formed XML",
            Uninspectable::XmlEncoding => {
                "the XML declaration names an encoding other than the one the body is read in"
            }
        }
    }
}

/// What inspection concluded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum InspectStatus {
    /// The route is declared to carry no personal data.
    #[default]
    Skipped,
    Complete,
    Uninspectable(Uninspectable),
}

/// The most findings one request may carry; past it the request is uninspectable (a body
/// made of personal data cannot be summarised in a bounded record, and checking it must not
/// cost unbounded time).
pub const MAX_FINDINGS: usize = 256;

/// Findings and status, kept in the request context.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    pub status: InspectStatus,
    pub findings: Vec<Finding>,
    /// The request upgrades the connection to a tunnel whose content cannot be inspected.
    pub tunnel: bool,
    /// More than [`MAX_FINDINGS`] were found.
    pub overflow: bool,
    /// Locations deliberately not inspected (binary multipart parts on a `skip` route).
    pub not_inspected: Vec<String>,
    /// Fields of the body that the route's field map does not know.
    pub unmapped: Vec<String>,
    /// The categories found at each location so far, one bit each.
    seen: rustc_hash::FxHashMap<String, u32>,
    /// A file embedded in a value (`embedded.*`) is listed in `not_inspected` instead of
    /// found: set while a body is read for a route that forwards binary uploads uninspected.
    skip_files: bool,
}

// Every category has its bit in [`Inspection::seen`].
const _: () = assert!(Category::ALL.len() <= 32);

impl Inspection {
    /// Whether the request carries personal data, or may: something was found, or not
    /// everything could be read ([`Self::categories`] is not empty).
    pub fn personal(&self) -> bool {
        !self.findings.is_empty()
            || matches!(self.status, InspectStatus::Uninspectable(_))
            || self.tunnel
    }

    /// Distinct categories found, with `uninspectable` when the body could not be inspected.
    pub fn categories(&self) -> Vec<Category> {
        let mut cats: Vec<Category> = self.findings.iter().map(|f| f.category).collect();
        if matches!(self.status, InspectStatus::Uninspectable(_)) || self.tunnel {
            cats.push(Category::Uninspectable);
        }
        cats.sort_unstable();
        cats.dedup();
        cats
    }

    /// A JSON walk's finding under `prefix`; its pointer is built only while findings are
    /// still kept (a body of many findings does not build one for each).
    fn found(&mut self, hit: detect::Hit, at: json::Location<'_, '_>, prefix: &str) {
        if !self.overflow {
            self.push(hit, prefixed(prefix, at.pointer()));
        }
    }

    /// A location deliberately not inspected.
    fn skipped(&mut self, location: String) {
        if !self.not_inspected.contains(&location) {
            self.not_inspected.push(location);
        }
    }

    fn push(&mut self, hit: detect::Hit, location: String) {
        if self.overflow {
            return;
        }
        let location = bounded_location(location);
        if self.skip_files && hit.detector.starts_with("embedded.") {
            self.skipped(location);
            return;
        }
        let bit = 1u32 << (hit.category as u32);
        let new = match self.seen.get_mut(location.as_str()) {
            Some(bits) => {
                let new = *bits & bit == 0;
                *bits |= bit;
                new
            }
            None => {
                self.seen.insert(location.clone(), bit);
                true
            }
        };
        if !new {
            // A second finding of the same category at the same place keeps the country
            // evidence the first one lacked (two masked keys share the location `*`).
            if let Some(c) = hit.country
                && let Some(f) = self.findings.iter_mut().find(|f| {
                    f.category == hit.category && f.location == location && f.country.is_none()
                })
            {
                f.country = Some(c);
            }
            return;
        }
        if self.findings.len() >= MAX_FINDINGS {
            self.overflow = true;
            return;
        }
        self.findings.push(Finding {
            category: hit.category,
            location,
            detector: hit.detector,
            confidence: hit.confidence,
            country: hit.country,
        });
    }

    /// A field the route's field map declares: authoritative for its category, so what the
    /// detectors found of that category at that place or inside it gives way to it (a country
    /// they read there is kept as evidence). What they found of other categories stays: a
    /// field declared as a name that holds an SSN still holds an SSN.
    fn declare(&mut self, category: Category, location: String) {
        // Compared with findings as they are kept: bounded ([`bounded_location`]).
        let location = bounded_location(location);
        let within = |l: &str| {
            l.strip_prefix(location.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let replaced = |f: &Finding| f.category == category && within(&f.location);
        let country = self
            .findings
            .iter()
            .filter(|f| replaced(f))
            .find_map(|f| f.country);
        self.findings.retain(|f| !replaced(f));
        let bit = 1u32 << (category as u32);
        self.seen.retain(|l, bits| {
            if within(l) {
                *bits &= !bit;
            }
            *bits != 0
        });
        self.push(
            detect::Hit {
                category,
                detector: "field_map",
                country,
                confidence: 100,
            },
            location,
        );
    }
}

/// Starts one inspection's budgets on this thread: the numbering-plan lookups of phone
/// numbers, the bytes compressed values may decompress to, and the detectors' work (for a
/// body, set again once its size decoded is known).
fn new_budgets() {
    detect::phone::new_lookup_budget();
    normalise::new_inflate_budget();
    detect::new_work_budget(0, 0);
}

/// Inspects a query string (`a=b&c=d`, percent-decoded, `+` as space).
pub fn inspect_query(query: &str, out: &mut Inspection) {
    new_budgets();
    form_pairs(query.as_bytes(), "query", out);
}

/// Whether a key may appear in a location as it is. Keys can themselves be data (an account
/// number, a name, an address used as a map key); only short, plain identifiers without long
/// digit runs are kept, anything else is recorded as `*`.
pub fn safe_key(k: &str) -> bool {
    plain_key(k) && !detect::is_personal(k)
}

/// The shape [`safe_key`] asks of a key before running the detectors on it.
fn plain_key(k: &str) -> bool {
    k.len() <= 64
        && !k.is_empty()
        && k.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'$' | b'[' | b']')
        })
        && k.bytes().filter(u8::is_ascii_digit).count() < 5
}

/// Whether every `%` begins a two-digit hex escape.
fn escapes_valid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Reads `a=b&c=d` pairs (percent-decoded, `+` as space) under `prefix`. Adjacent values are
/// also read together, as a JSON object's are ([`fragments`]): `card=4111&card=1111&…`.
fn form_pairs(bytes: &[u8], prefix: &str, out: &mut Inspection) {
    let mut frags = fragments::Fragments::default();
    for (k, v) in form_urlencoded::parse(bytes) {
        if out.overflow {
            // More findings than a record keeps: the body already counts as uninspectable,
            // and nothing further can change that.
            return;
        }
        // The key is scanned once: for what it is, and for whether it may be shown
        // ([`safe_key`]).
        let mut key_hits = Vec::new();
        detect::scan_name(&k, |h| key_hits.push(h));
        let shown = key_hits.is_empty() && plain_key(&k);
        let location = || {
            if shown {
                format!("{prefix}:{k}")
            } else {
                format!("{prefix}:*")
            }
        };
        for h in key_hits {
            out.push(h, location());
        }
        let field = detect::lexicon::classify(&k);
        let found = detect::scan_value(field, &v, &mut |h| out.push(h, location()));
        let hints = fragments::NameHints::of(&k);
        frags.add(&v, found, hints, field, location, &mut |h, l| {
            out.push(h, l)
        });
    }
    frags.flush(&mut |h, l| out.push(h, l));
}

/// Percent-decodes `s` (`+` stays a `+`); invalid escapes are kept as they are and invalid
/// UTF-8 is replaced, so what a detector sees is never less than what was sent.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The longest location a finding keeps, in bytes.
pub const MAX_LOCATION: usize = 256;

/// A location of at most [`MAX_LOCATION`] bytes: a longer one (a pointer 128 levels deep)
/// keeps its end, the most specific part, after `…`, so that 256 findings cannot make a
/// record megabytes long.
fn bounded_location(location: String) -> String {
    if location.len() <= MAX_LOCATION {
        return location;
    }
    format!("…{}", tail(&location, MAX_LOCATION - '…'.len_utf8()))
}

/// The last `max` bytes of `s` at most, beginning on a character boundary.
pub(crate) fn tail(s: &str, max: usize) -> &str {
    let mut from = s.len().saturating_sub(max);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}

/// Inspects the URL path, segment by segment, percent-decoded: `path:/0` is the first.
pub fn inspect_path(path: &str, out: &mut Inspection) {
    new_budgets();
    for (n, seg) in path_segments(path).enumerate() {
        if seg.is_empty() {
            continue;
        }
        let decoded = percent_decode(seg);
        detect::scan(&decoded, |h| out.push(h, format!("path:/{n}")));
    }
}

/// The segments of `path` after its leading slashes, as `trim_start_matches('/')` and then
/// `split('/')` give them, found by scanning bytes: a path is a few short segments, for which
/// the string searcher's set-up costs more than the scan.
fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    let start = path.bytes().take_while(|&b| b == b'/').count();
    let mut rest = path.get(start..);
    std::iter::from_fn(move || {
        let r = rest?;
        // A slash is ASCII: the positions around it are character boundaries.
        match r.bytes().position(|b| b == b'/') {
            Some(at) => {
                rest = r.get(at + 1..);
                r.get(..at)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Which cookies are inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieList {
    All,
    Named(Vec<String>),
}

/// Which request headers are inspected: `[inspect] headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderList {
    /// Every header but those that carry no personal data by their definition
    /// ([`not_personal`]), the cookies (read one by one, as `[inspect] cookies` says) and
    /// those named in `[inspect] skip_headers`.
    All { skip: Vec<HeaderName> },
    /// These headers only.
    Named(Vec<HeaderName>),
}

/// What of the request head beyond the URL is inspected: `[inspect] headers`, `skip_headers`
/// and `cookies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadOptions {
    pub headers: HeaderList,
    pub cookies: CookieList,
}

impl Default for HeadOptions {
    fn default() -> HeadOptions {
        HeadOptions {
            headers: HeaderList::All { skip: Vec::new() },
            cookies: CookieList::All,
        }
    }
}

/// Headers that carry no personal data by their definition (content negotiation, caching,
/// framing, fetch metadata, client hints, trace context), and those the gateway reads or
/// writes itself: the client's address in the forwarding headers (`Forwarded`,
/// `X-Forwarded-For`, `-Proto`, `-Host`, `-Port`, `X-Real-IP` and the other client-address
/// claims) is what the resolve step reads as evidence, and they are rewritten or removed on the
/// way upstream, as Domicile's own `domicile-*` headers are. Every other header is inspected
/// by default: `User-Agent`, custom `X-` headers, and the identity headers an authenticating
/// proxy adds (`X-Forwarded-User`, `X-Forwarded-Email`) included.
pub fn not_personal(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "accept"
            | "accept-charset"
            | "accept-encoding"
            | "accept-language"
            | "cache-control"
            | "connection"
            | "content-encoding"
            | "content-language"
            | "content-length"
            | "content-md5"
            | "content-type"
            | "date"
            | "dnt"
            | "expect"
            | "host"
            | "if-match"
            | "if-modified-since"
            | "if-none-match"
            | "if-range"
            | "if-unmodified-since"
            | "keep-alive"
            | "max-forwards"
            | "origin"
            | "pragma"
            | "priority"
            | "proxy-connection"
            | "range"
            | "te"
            | "traceparent"
            | "tracestate"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "upgrade-insecure-requests"
            | "via"
            | "x-request-id"
    ) || n.starts_with("sec-ch-")
        || n.starts_with("sec-fetch-")
        || n.starts_with("sec-websocket-")
        || n.starts_with("access-control-request-")
        || n == "sec-gpc"
        || crate::headers::address_or_own(n)
}

/// Inspects the configured headers (values as sent, and percent-decoded) and cookies.
pub fn inspect_headers(headers: &HeaderMap, opts: &HeadOptions, out: &mut Inspection) {
    new_budgets();
    let mut cookies = false;
    match &opts.headers {
        HeaderList::All { skip } => {
            for (name, value) in headers {
                if name == header::COOKIE {
                    cookies = true;
                    continue;
                }
                if not_personal(name) || skip.contains(name) {
                    continue;
                }
                inspect_header(name, value, out);
            }
        }
        HeaderList::Named(names) => {
            for name in names {
                for value in headers.get_all(name) {
                    inspect_header(name, value, out);
                }
            }
            cookies = headers.contains_key(header::COOKIE);
        }
    }
    if cookies {
        inspect_cookies(headers, &opts.cookies, out);
    }
}

/// Inspects one header value, reported at `header:<name>`.
fn inspect_header(name: &HeaderName, value: &http::HeaderValue, out: &mut Inspection) {
    let credentials = *name == header::AUTHORIZATION || *name == header::PROXY_AUTHORIZATION;
    // Locations are made only when something is found.
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut v: &str = &text;
    // Credentials are read after their scheme: a bearer token is opened for its claims,
    // Basic's base64 is decoded to its user name (and password, of which, as of every value,
    // nothing is recorded).
    if credentials && let Some((_, cred)) = v.trim().split_once(' ') {
        v = cred.trim();
    }
    detect::scan(v, |h| out.push(h, format!("header:{name}")));
    if v.contains('%') {
        detect::scan(&percent_decode(v), |h| {
            out.push(h, format!("header:{name}"))
        });
    }
    // A URL's query (a `Referer`) is read a parameter at a time, as the request's own is
    // (`form_urlencoded`, each value in the field its key names): a value that is base64 or a
    // token as a whole is only seen as one on its own.
    if let Some((_, query)) = v.split_once('?') {
        let query = query.split('#').next().unwrap_or("");
        for (k, value) in form_urlencoded::parse(query.as_bytes()) {
            let mut found = |h| out.push(h, format!("header:{name}"));
            detect::scan(&k, &mut found);
            detect::scan_field(Some(&k), detect::Value::Str(&value), &mut found);
        }
    }
}

/// Inspects the cookies `list` names (names too: they can be data).
fn inspect_cookies(headers: &HeaderMap, list: &CookieList, out: &mut Inspection) {
    for value in headers.get_all(header::COOKIE) {
        let v = String::from_utf8_lossy(value.as_bytes());
        for pair in v.split(';') {
            let (name, value) = pair.split_once('=').unwrap_or(("", pair));
            let name = name.trim();
            if let CookieList::Named(names) = list
                && !names.iter().any(|n| n == name)
            {
                continue;
            }
            let value = percent_decode(value.trim().trim_matches('"'));
            let location = || {
                if safe_key(name) {
                    format!("cookie:{name}")
                } else {
                    "cookie:*".to_owned()
                }
            };
            // Names can be data too, as form keys can.
            detect::scan(name, |h| out.push(h, location()));
            detect::scan(&value, |h| out.push(h, location()));
        }
    }
}

/// What happens to a binary part of a multipart body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BinaryParts {
    /// The body counts as uninspectable.
    #[default]
    Uninspectable,
    /// The part is forwarded uninspected and listed in the record's `not_inspected`.
    Skip,
}

/// How one body is inspected: limits and the route's rules.
#[derive(Debug, Clone)]
pub struct BodyOptions<'a> {
    pub decode: decode::DecodeLimits,
    /// The most parts a multipart body may have.
    pub max_parts: usize,
    /// The detectors' work budget per byte of the body (decoded) ([`detect::new_work_budget`]).
    pub work_per_byte: usize,
    pub binary_parts: BinaryParts,
    /// The route's declared fields for this request, when it has a field map.
    pub fields: Option<Vec<&'a fieldmap::Field>>,
}

/// Parts a multipart body may have when `[inspect] max_parts` is not set.
pub const DEFAULT_MAX_PARTS: usize = 128;

/// The detectors' work budget per byte when `[inspect] work_per_byte` is not set.
pub const DEFAULT_WORK_PER_BYTE: usize = 128;

impl Default for BodyOptions<'_> {
    fn default() -> Self {
        BodyOptions {
            decode: decode::DecodeLimits::default(),
            max_parts: DEFAULT_MAX_PARTS,
            work_per_byte: DEFAULT_WORK_PER_BYTE,
            binary_parts: BinaryParts::Uninspectable,
            fields: None,
        }
    }
}

/// The body's media type, lower-cased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(bare_media_type(ct))
}

fn bare_media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// How a media type is read; `None` for a type that is not read (binary).
fn kind_of(media: &str) -> Option<Kind> {
    Some(match media {
        "application/json" => Kind::Json,
        m if m.starts_with("application/") && m.ends_with("+json") => Kind::Json,
        "application/x-www-form-urlencoded" => Kind::Form,
        "multipart/form-data" => Kind::Multipart,
        "application/xml" | "text/xml" => Kind::Xml,
        m if m.starts_with("application/") && m.ends_with("+xml") => Kind::Xml,
        m if m.starts_with("text/") => Kind::Text,
        "application/csv" => Kind::Text,
        _ => return None,
    })
}

impl From<decode::DecodeError> for Uninspectable {
    fn from(e: decode::DecodeError) -> Uninspectable {
        match e {
            decode::DecodeError::UnknownCoding | decode::DecodeError::TooManyCodings => {
                Uninspectable::ContentEncoding
            }
            decode::DecodeError::Corrupt(_) => Uninspectable::Undecodable,
            decode::DecodeError::Bomb => Uninspectable::DecompressionBomb,
            decode::DecodeError::UnknownCharset => Uninspectable::UnsupportedCharset,
            decode::DecodeError::AmbiguousCharset => Uninspectable::AmbiguousHeaders,
            decode::DecodeError::InvalidCharset => Uninspectable::InvalidCharset,
        }
    }
}

impl From<multipart::MultipartError> for Uninspectable {
    fn from(e: multipart::MultipartError) -> Uninspectable {
        match e {
            multipart::MultipartError::Boundary | multipart::MultipartError::Malformed => {
                Uninspectable::InvalidMultipart
            }
            multipart::MultipartError::TooManyParts => Uninspectable::TooManyParts,
        }
    }
}

/// A body that reaches every table the detectors build on first use: the field-name
/// lexicon's automaton, the phone number metadata and the plans of national numbers, the
/// country index, and the table of characters that need no normalising. Synthetic values from
/// documentation ranges.
const WARM_UP: &str = r#"{"full_name":"María García","email":"jane.doe@example.com",
"phone":"030 901820","mobile":"+49 30 901820","iban":"DE89 3704 0044 0532 0130 00",
"card":"4111 1111 1111 1111","ip":"192.0.2.1","nationality":"Deutschland",
"note":"jane (at) example (dot) com"}"#;

/// Builds the detectors' tables before a request needs them: built on first use, they would
/// cost the first request that meets personal data a few hundred milliseconds. Returns what
/// the sample body was found to hold (its findings show which detectors ran).
pub fn warm_up() -> Inspection {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let mut out = Inspection::default();
    out.status = inspect_body(&headers, WARM_UP.as_bytes(), &mut out);
    out
}

/// Inspects a complete body by its content type with the default limits; returns the status.
pub fn inspect_body(headers: &HeaderMap, body: &[u8], out: &mut Inspection) -> InspectStatus {
    inspect_body_with(headers, body, &BodyOptions::default(), out)
}

/// Inspects a complete body: content codings undone, then read by its content type and
/// charset.
pub fn inspect_body_with(
    headers: &HeaderMap,
    body: &[u8],
    opts: &BodyOptions<'_>,
    out: &mut Inspection,
) -> InspectStatus {
    new_budgets();
    out.skip_files = opts.binary_parts == BinaryParts::Skip;
    let status = match body_status(headers, body, opts, out) {
        Ok(()) => InspectStatus::Complete,
        Err(why) => InspectStatus::Uninspectable(why),
    };
    out.skip_files = false;
    status
}

fn body_status(
    headers: &HeaderMap,
    body: &[u8],
    opts: &BodyOptions<'_>,
    out: &mut Inspection,
) -> Result<(), Uninspectable> {
    if body.is_empty() {
        return Ok(());
    }
    if headers.get_all(header::CONTENT_TYPE).iter().count() > 1
        || headers.get_all(header::CONTENT_ENCODING).iter().count() > 1
    {
        return Err(Uninspectable::AmbiguousHeaders);
    }
    let codings = decode::codings(headers)?;
    let body = decode::decode(&codings, body, opts.decode)?;
    detect::new_work_budget(body.len(), opts.work_per_byte);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map_err(|_| Uninspectable::UnsupportedContentType)
        })
        .transpose()?;
    let kind = match media_type(headers).as_deref() {
        // No declared type: inspect by content when it is JSON, else it is opaque.
        None if body
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            .is_some_and(|c| *c == b'{' || *c == b'[') =>
        {
            Kind::Json
        }
        None => return Err(Uninspectable::UnsupportedContentType),
        Some(m) => kind_of(m).ok_or(Uninspectable::UnsupportedContentType)?,
    };
    let ct = content_type.unwrap_or("");
    read_kind(
        kind,
        ct,
        &body,
        Where::Body,
        opts,
        out,
        &mut Default::default(),
    )
}

/// Where a piece of content sits: the body itself or a multipart part (its location).
#[derive(Clone, Copy)]
enum Where<'a> {
    Body,
    /// A multipart part: its location, its field name when it has one, and how deep in
    /// multipart bodies it is.
    Part(&'a str, Option<&'a str>, usize),
}

impl Where<'_> {
    /// How many multipart bodies the content is inside.
    fn depth(self) -> usize {
        match self {
            Where::Body => 0,
            Where::Part(_, _, depth) => depth,
        }
    }
}

/// Reads content of a known kind; `content_type` is the full header value (for parameters).
fn read_kind(
    kind: Kind,
    content_type: &str,
    bytes: &[u8],
    at: Where<'_>,
    opts: &BodyOptions<'_>,
    out: &mut Inspection,
    frags: &mut fragments::Fragments,
) -> Result<(), Uninspectable> {
    if let Kind::Multipart = kind {
        return read_multipart(content_type, bytes, opts, at.depth(), out);
    }
    let charset = decode::charset_param(content_type)?;
    let decoded = decode::text(bytes, charset.as_deref()).map_err(|e| match (e, &charset) {
        (decode::DecodeError::InvalidCharset, None) => Uninspectable::InvalidUtf8,
        (decode::DecodeError::InvalidCharset, Some(c)) if c == "utf-8" || c == "utf8" => {
            Uninspectable::InvalidUtf8
        }
        (e, _) => e.into(),
    })?;
    let text: &str = &decoded;
    let (prefix, plain) = match at {
        Where::Body => (String::new(), "body".to_owned()),
        Where::Part(loc, ..) => (loc.to_owned(), loc.to_owned()),
    };
    match kind {
        Kind::Json => {
            // A route's field map is applied in the same pass as the detectors.
            let mut map = match (at, &opts.fields) {
                (Where::Body, Some(fields)) => Some(fieldmap::Applier::new(fields)),
                _ => None,
            };
            let found = |h, at: json::Location<'_, '_>| out.found(h, at, &prefix);
            match map.as_mut() {
                Some(map) => json::walk_observed(text, MAX_JSON_DEPTH, found, map),
                None => json::walk(text, MAX_JSON_DEPTH, found),
            }
            .map_err(|e| match e {
                json::JsonError::Invalid => Uninspectable::InvalidJson,
                json::JsonError::TooDeep => Uninspectable::TooDeep,
            })?;
            if let Some(map) = map {
                let applied = map.finish();
                for (category, location) in applied.declared {
                    out.declare(category, location);
                }
                out.unmapped = applied.unmapped;
            }
        }
        Kind::Form => {
            let prefix = match at {
                Where::Body => "form",
                Where::Part(loc, ..) => loc,
            };
            if !escapes_valid(text.as_bytes()) {
                return Err(Uninspectable::InvalidForm);
            }
            form_pairs(text.as_bytes(), prefix, out);
        }
        Kind::Xml => {
            read_xml(text, charset.as_deref(), &prefix, out)?;
            if let Where::Part(_, Some(name), _) = at {
                detect::scan(name, |h| out.push(h, plain.clone()));
            }
            detect::scan_base64_runs(text, |h| out.push(h, plain.clone()));
        }
        Kind::Text => {
            // JSON sent as text is read as JSON too, as a lenient backend would (escapes
            // decoded); the raw text is scanned either way.
            let looks_json = text.trim_start().starts_with(['{', '[']);
            if looks_json {
                let _ = json::walk(text, MAX_JSON_DEPTH, |h, at| out.found(h, at, &prefix));
            }
            match at {
                // A form field sent as a part: its name says what it holds, as in a form.
                // Adjacent short fields are read together too, as a form's are.
                Where::Part(_, Some(name), _) => {
                    detect::scan(name, |h| out.push(h, plain.clone()));
                    let field = detect::lexicon::classify(name);
                    let found =
                        detect::scan_value(field, text, &mut |h| out.push(h, plain.clone()));
                    let hints = fragments::NameHints::of(name);
                    let location = || plain.clone();
                    frags.add(text, found, hints, field, location, &mut |h, l| {
                        out.push(h, l)
                    });
                }
                _ => detect::scan(text, |h| out.push(h, plain.clone())),
            }
            // Base64 inside the text (`<email>amFuZUBl...</email>`, a word of a sentence).
            detect::scan_base64_runs(text, |h| out.push(h, plain.clone()));
        }
        Kind::Multipart => {}
    }
    // In Shift_JIS, GBK and Big5 a character's second byte may be an ASCII one
    // (`jane\x81@example.com` decodes without its `@`), which a backend that reads the bytes
    // as ASCII still sees. When the text has fewer ASCII characters than the body has ASCII
    // bytes, the bytes are also scanned as that backend reads them, every other byte a letter.
    // (UTF-8 is read where it lies, and never does this.)
    if matches!(decoded, std::borrow::Cow::Owned(_))
        && bytes.iter().filter(|b| b.is_ascii()).count() > text.bytes().filter(u8::is_ascii).count()
    {
        let as_ascii: String = bytes
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { 'x' })
            .collect();
        detect::scan(&as_ascii, |h| out.push(h, plain.clone()));
    }
    Ok(())
}

/// Reads an XML document ([`xml`]), decoded as `charset`, with its locations under `prefix`.
fn read_xml(
    text: &str,
    charset: Option<&str>,
    prefix: &str,
    out: &mut Inspection,
) -> Result<(), Uninspectable> {
    // Locations are built only while findings are still kept, as a JSON walk's are.
    xml::walk(text, charset, MAX_JSON_DEPTH, &mut |h, l| {
        if !out.overflow {
            out.push(h, prefixed(prefix, l.build()))
        }
    })
    .map_err(|e| match e {
        xml::XmlError::Invalid => Uninspectable::InvalidXml,
        xml::XmlError::TooDeep => Uninspectable::TooDeep,
        xml::XmlError::Entities => Uninspectable::XmlEntities,
        xml::XmlError::Encoding => Uninspectable::XmlEncoding,
    })
}

/// Multipart bodies nest at most this deep (`multipart/mixed` inside form-data).
const MAX_MULTIPART_DEPTH: usize = 2;

/// A JSON pointer inside a part, after the part's location (a body's pointer as it is).
fn prefixed(prefix: &str, pointer: String) -> String {
    if prefix.is_empty() {
        pointer
    } else {
        format!("{prefix}{pointer}")
    }
}

fn read_multipart(
    content_type: &str,
    bytes: &[u8],
    opts: &BodyOptions<'_>,
    depth: usize,
    out: &mut Inspection,
) -> Result<(), Uninspectable> {
    if depth >= MAX_MULTIPART_DEPTH {
        return Err(Uninspectable::TooDeep);
    }
    let boundary = multipart::boundary(content_type)?;
    // The body is form-data; a part of it that is multipart itself holds one field's files.
    let parts = if depth == 0 {
        multipart::parse(bytes, &boundary, opts.max_parts)?
    } else {
        multipart::parse_mixed(bytes, &boundary, opts.max_parts)?
    };
    // Adjacent text fields are read together ([`fragments`]); any other part ends a run.
    let mut frags = fragments::Fragments::default();
    for part in parts {
        let location = match part.name.as_deref() {
            Some(n) if safe_key(n) => format!("multipart:{n}"),
            _ => "multipart:*".to_owned(),
        };
        for f in &part.filenames {
            detect::scan(f, |h| out.push(h, location.clone()));
        }
        let body = multipart::transfer_decoded(&part).ok_or(Uninspectable::ContentEncoding)?;
        let ct = part.content_type.as_deref().unwrap_or("text/plain");
        let media = bare_media_type(ct);
        let kind = if media.starts_with("multipart/") {
            Some(Kind::Multipart)
        } else {
            kind_of(&media)
        };
        // A file's text is not a field's value, nor is a part without a name: neither is
        // joined, and either ends a run.
        let joinable =
            matches!(kind, Some(Kind::Text)) && part.filenames.is_empty() && part.name.is_some();
        if !joinable {
            frags.flush(&mut |h, l| out.push(h, l));
        }
        let mut alone = fragments::Fragments::default();
        match kind {
            Some(kind) => read_kind(
                kind,
                ct,
                &body,
                Where::Part(&location, part.name.as_deref(), depth + 1),
                opts,
                out,
                if joinable { &mut frags } else { &mut alone },
            )?,
            None if body.is_empty() => {}
            None => match opts.binary_parts {
                BinaryParts::Uninspectable => return Err(Uninspectable::BinaryPart),
                BinaryParts::Skip => out.skipped(location),
            },
        }
    }
    frags.flush(&mut |h, l| out.push(h, l));
    Ok(())
}

/// Scans trailer values (they arrive with the body and reach HTTP/2 backends).
pub fn inspect_trailers(trailers: &HeaderMap, out: &mut Inspection) {
    new_budgets();
    for (name, value) in trailers {
        // Read as headers are: a byte that is not UTF-8 does not hide the rest.
        let v = String::from_utf8_lossy(value.as_bytes());
        // Trailer names are the client's choice: a name that is data is masked.
        let location = if safe_key(name.as_str()) {
            format!("trailer:{name}")
        } else {
            "trailer:*".to_owned()
        };
        detect::scan(&v, |h| out.push(h, location.clone()));
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Json,
    Form,
    Text,
    Xml,
    Multipart,
}

/// Builds [`Inspect`].
#[derive(Debug, Clone)]
pub struct InspectLayer {
    budget: Arc<Semaphore>,
}

impl InspectLayer {
    /// `max_buffered_bytes` bounds the bodies held for inspection across all requests.
    pub fn new(max_buffered_bytes: usize) -> InspectLayer {
        let kib = u32::try_from(max_buffered_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        InspectLayer {
            budget: Arc::new(Semaphore::new(kib as usize)),
        }
    }
}

impl<S> Layer<S> for InspectLayer {
    type Service = Inspect<S>;
    fn layer(&self, inner: S) -> Inspect<S> {
        Inspect {
            inner,
            budget: self.budget.clone(),
        }
    }
}

/// The inspect phase.
#[derive(Debug, Clone)]
pub struct Inspect<S> {
    inner: S,
    budget: Arc<Semaphore>,
}

impl<S> Service<Request<Body>> for Inspect<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = PhaseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let inspects = crate::context::of(&req)
            .and_then(|ctx| ctx.route.and_then(|n| ctx.snapshot.route(n)))
            .is_some_and(|r| r.inspect);
        if !inspects {
            // The body is not read, but the query is: a declared-clean route still gets no
            // personal data through its URL unnoticed.
            let upgrade = crate::route::is_upgrade(&req);
            let mut found = Inspection::default();
            if let Some(ctx) = crate::context::of(&req) {
                inspect_head(&req, &ctx.snapshot.config.inspect.head, &mut found);
            }
            if let Some(ctx) = crate::context::of_mut(&mut req) {
                // A declared-clean route still cannot vouch for what flows through a tunnel.
                ctx.inspection.tunnel = upgrade;
                ctx.inspection.findings = found.findings;
                if found.overflow {
                    ctx.inspection.status =
                        InspectStatus::Uninspectable(Uninspectable::TooManyFindings);
                }
            }
            return PhaseFuture::Inner {
                fut: self.inner.call(req),
            };
        }
        let inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, inner);
        let budget = self.budget.clone();
        PhaseFuture::Boxed {
            fut: Box::pin(async move {
                let req = match inspect_request(req, &budget).await {
                    Ok(req) => req,
                    Err(res) => return Ok(res),
                };
                inner.call(req).await
            }),
        }
    }
}

/// Bodies up to this size are inspected where the request is handled (about 0.2 ms); larger
/// ones on a blocking thread.
const INLINE_BODY: usize = 64 * 1024;

/// Inspects a complete body with the options of route `route_at` of `snapshot`, into
/// `inspection`, which it gives back.
fn inspect_complete(
    snapshot: &crate::state::Snapshot,
    route_at: Option<usize>,
    (method, path, headers): (&http::Method, &str, &HeaderMap),
    data: &[u8],
    mut inspection: Inspection,
) -> Inspection {
    let route = route_at.and_then(|n| snapshot.route(n));
    let opts = BodyOptions {
        decode: snapshot.config.inspect.decode,
        max_parts: snapshot.config.inspect.max_parts,
        work_per_byte: snapshot.config.inspect.work_per_byte,
        binary_parts: route.map_or(BinaryParts::Uninspectable, |r| r.binary_parts),
        fields: route
            .and_then(|r| r.field_map.as_ref())
            .and_then(|m| m.fields_for(method, path)),
    };
    inspection.status = inspect_body_with(headers, data, &opts, &mut inspection);
    inspection
}

async fn inspect_request(
    mut req: Request<Body>,
    budget: &Arc<Semaphore>,
) -> Result<Request<Body>, Response<Body>> {
    let Some(ctx) = crate::context::of(&req) else {
        return Err(crate::context::missing());
    };
    let snapshot = ctx.snapshot.clone();
    let Some(route) = ctx.route.and_then(|n| snapshot.route(n)) else {
        return Ok(req);
    };
    if !route.inspect {
        return Ok(req);
    }
    let limit = ctx.snapshot.config.server.limits.max_body_bytes;
    let read_timeout = ctx.snapshot.config.server.timeouts.body_read;
    let decision_id = ctx.decision_id.clone();
    let mut inspection = Inspection {
        status: InspectStatus::Complete,
        tunnel: crate::route::is_upgrade(&req),
        ..Default::default()
    };
    inspect_head(&req, &snapshot.config.inspect.head, &mut inspection);
    let route_at = ctx.route;
    let route_id = route.id.clone();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Reserve room for the body in the shared buffer budget first: many large bodies at once
    // are refused (503) rather than exhausting memory.
    let reserve = declared.map_or(limit, |n| (n as usize).min(limit)).max(1);
    let kib = u32::try_from(reserve.div_ceil(1024)).unwrap_or(u32::MAX);
    let needs_buffer = !declared.is_some_and(|n| n == 0 || n > limit as u64);
    let mut buffer_permit = if needs_buffer {
        match budget.clone().try_acquire_many_owned(kib) {
            Ok(p) => Some(Arc::new(p)),
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "too many request bodies are being inspected; nothing was forwarded",
                )
                .with_decision(&decision_id)
                .into_response());
            }
        }
    } else {
        None
    };
    let body = std::mem::take(req.body_mut());
    if declared.is_some_and(|n| n > limit as u64) {
        // Too large to inspect: decided on the headers, the body is left unread.
        inspection.status = InspectStatus::Uninspectable(Uninspectable::TooLarge);
        *req.body_mut() = body;
    } else {
        match tokio::time::timeout(read_timeout, collect_limited(body, limit)).await {
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_read_timeout",
                    "the request body was not received in time; nothing was forwarded",
                )
                .with_decision(&decision_id)
                .into_response());
            }
            Ok(Err(())) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "body_read_failed",
                    "the request body could not be read; nothing was forwarded",
                )
                .with_decision(&decision_id)
                .into_response());
            }
            Ok(Ok(Collected::Complete { data, trailers })) => {
                inspection = if data.len() <= INLINE_BODY {
                    let head = (req.method(), req.uri().path(), req.headers());
                    inspect_complete(&snapshot, route_at, head, &data, inspection)
                } else {
                    // A large body costs milliseconds of CPU: on a blocking thread, so that the
                    // other connections this worker serves are not held meanwhile.
                    let snapshot = snapshot.clone();
                    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
                    let headers = req.headers().clone();
                    let data = data.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        let head = (&method, path.as_str(), &headers);
                        inspect_complete(&snapshot, route_at, head, &data, inspection)
                    })
                    .await;
                    let Ok(done) = done else {
                        return Err(Problem::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "the request body could not be inspected; nothing was forwarded",
                        )
                        .with_decision(&decision_id)
                        .into_response());
                    };
                    done
                };
                if !inspection.unmapped.is_empty() {
                    metrics::counter!(
                        "domicile_unmapped_fields_total",
                        "route" => route_id.to_string()
                    )
                    .increment(inspection.unmapped.len() as u64);
                }
                if let Some(t) = &trailers {
                    inspect_trailers(t, &mut inspection);
                }
                *req.body_mut() = Body::Buffered {
                    data: Some(data),
                    trailers,
                };
            }
            Ok(Ok(Collected::Partial { prefix, rest })) => {
                inspection.status = InspectStatus::Uninspectable(Uninspectable::TooLarge);
                *req.body_mut() = match rest {
                    Some(rest) => Body::Chained {
                        prefix: Some(prefix),
                        rest,
                        permit: buffer_permit.take(),
                        deny: None,
                    },
                    None => Body::full(prefix),
                };
            }
        }
    }
    if inspection.overflow {
        inspection.status = InspectStatus::Uninspectable(Uninspectable::TooManyFindings);
    }
    if let Some(ctx) = crate::context::of_mut(&mut req) {
        ctx.inspection = inspection;
        // Held until the buffered body has been forwarded or answered.
        ctx.buffer_permit = buffer_permit;
    }
    Ok(req)
}

/// Inspects the URL path and query and the configured headers and cookies.
fn inspect_head(req: &Request<Body>, opts: &HeadOptions, out: &mut Inspection) {
    inspect_path(req.uri().path(), out);
    if let Some(q) = req.uri().query() {
        inspect_query(q, out);
    }
    inspect_headers(req.headers(), opts, out);
}

enum Collected {
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// The limit was passed: what was read, and the unread rest.
    Partial {
        prefix: Bytes,
        rest: Option<hyper::body::Incoming>,
    },
}

async fn collect_limited(body: Body, limit: usize) -> Result<Collected, ()> {
    match body {
        Body::Incoming { body: mut inc, .. } => {
            let mut buf = BytesMut::new();
            let mut trailers = None;
            while let Some(frame) = inc.frame().await {
                let frame = frame.map_err(|_| ())?;
                match frame.into_data() {
                    Ok(d) => {
                        buf.extend_from_slice(&d);
                        if buf.len() > limit {
                            return Ok(Collected::Partial {
                                prefix: buf.freeze(),
                                rest: Some(inc),
                            });
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            trailers = Some(t);
                        }
                    }
                }
            }
            Ok(Collected::Complete {
                data: buf.freeze(),
                trailers,
            })
        }
        other => {
            let collected = other.collect().await.map_err(|_| ())?;
            let trailers = collected.trailers().cloned();
            let data = collected.to_bytes();
            if data.len() > limit {
                Ok(Collected::Partial {
                    prefix: data,
                    rest: None,
                })
            } else {
                Ok(Collected::Complete { data, trailers })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_those_of_trimming_and_splitting() {
        for path in [
            "",
            "/",
            "//",
            "/a",
            "a",
            "/catalog/items/42",
            "//a//b/",
            "/a/b/",
            "/ü/日本/x",
            "///",
            "/%2F/a",
            "a/",
            "/a//",
        ] {
            let ours: Vec<&str> = path_segments(path).collect();
            let theirs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            assert_eq!(ours, theirs, "{path:?}");
        }
    }

    #[test]
    fn the_warm_up_sample_reaches_every_detector_that_builds_a_table() {
        let inspection = warm_up();
        assert_eq!(inspection.status, InspectStatus::Complete);
        let found: Vec<(&str, &str, Option<String>)> = inspection
            .findings
            .iter()
            .map(|f| {
                (
                    f.location.as_str(),
                    f.detector,
                    f.country.map(|c| c.to_string()),
                )
            })
            .collect();
        let de = || Some("DE".to_string());
        assert_eq!(
            found,
            vec![
                // Non-ASCII text, normalised: the table of settled characters.
                ("/full_name", "field.name", None),
                ("/email", "email.rfc5322", None),
                // A national number in a field named so: the plans of national numbers.
                ("/phone", "phone.national", None),
                // The calling codes of one country each.
                ("/mobile", "phone.e164", de()),
                ("/iban", "iban.mod97", de()),
                ("/card", "card.luhn", None),
                ("/ip", "ip.v4", None),
                // A country's name: the country index.
                ("/nationality", "field.nationality", de()),
                ("/note", "email.obfuscated", None),
            ]
        );
    }

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn trailers_are_inspected_and_findings_are_bounded() {
        let mut t = HeaderMap::new();
        t.insert("x-contact", "jane@example.com".parse().unwrap());
        let mut i = Inspection::default();
        inspect_trailers(&t, &mut i);
        assert_eq!(i.findings[0].location, "trailer:x-contact");
        // A byte that is not UTF-8 does not hide the rest of the value.
        let mut t = HeaderMap::new();
        let v = http::HeaderValue::from_bytes(b"jane@example.com \x80").unwrap();
        t.insert("x-note", v);
        let mut i = Inspection::default();
        inspect_trailers(&t, &mut i);
        assert_eq!(locations(&i), ["trailer:x-note"]);

        let many: String = (0..MAX_FINDINGS + 10)
            .map(|n| format!("\"k{n}\":\"u{n}@example.com\""))
            .collect::<Vec<_>>()
            .join(",");
        let mut i = Inspection::default();
        let body = format!("{{{many}}}");
        inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
        assert_eq!(i.findings.len(), MAX_FINDINGS);
        assert!(i.overflow);
    }

    #[test]
    fn query_and_form_values_are_inspected() {
        let mut i = Inspection::default();
        inspect_query("email=jane%40example.com&x=1&jane%40example.org=y", &mut i);
        let locs: Vec<&str> = i.findings.iter().map(|f| f.location.as_str()).collect();
        assert_eq!(locs, vec!["query:email", "query:*"]);
        // A form of more findings than a record keeps overflows, with the first ones kept.
        let many: String = (0..MAX_FINDINGS + 10)
            .map(|n| format!("k{n}=u{n}%40example.com"))
            .collect::<Vec<_>>()
            .join("&");
        let mut i = Inspection::default();
        let form = headers("application/x-www-form-urlencoded");
        inspect_body(&form, many.as_bytes(), &mut i);
        assert_eq!(i.findings.len(), MAX_FINDINGS);
        assert!(i.overflow);
        assert_eq!(
            (i.findings[0].location.as_str(), i.findings[0].category),
            ("form:k0", Category::Email)
        );
    }

    #[test]
    fn content_types_decide_how_a_body_is_read() {
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body(
                &headers("application/json; charset=utf-8"),
                br#"{"e":"a@b.io"}"#,
                &mut i
            ),
            InspectStatus::Complete
        );
        assert_eq!(i.findings.len(), 1);
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body(&headers("application/octet-stream"), b"\x00\x01", &mut i),
            InspectStatus::Uninspectable(Uninspectable::UnsupportedContentType)
        );
        let mut h = headers("application/json");
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(
            inspect_body(&h, b"\x1f\x8b", &mut i),
            InspectStatus::Uninspectable(Uninspectable::Undecodable)
        );
        h.insert(header::CONTENT_ENCODING, "compress".parse().unwrap());
        assert_eq!(
            inspect_body(&h, b"\x1f\x9d", &mut i),
            InspectStatus::Uninspectable(Uninspectable::ContentEncoding)
        );
        assert_eq!(
            inspect_body(&headers("application/json"), b"{\"a\":", &mut i),
            InspectStatus::Uninspectable(Uninspectable::InvalidJson)
        );
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body(&HeaderMap::new(), br#" {"p":"+49 30 901820"}"#, &mut i),
            InspectStatus::Complete
        );
        assert_eq!(
            i.findings[0].country.map(|c| c.to_string()).as_deref(),
            Some("DE")
        );
    }

    #[test]
    fn tokens_are_read_for_their_claims_and_encrypted_values_count_as_unknown_data() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims =
            r#"{"sub":"248289761001","email":"jane@example.com","birthdate":"1990-04-12"}"#;
        let id_token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256","typ":"JWT"}"#),
            b64(claims)
        );
        let jwe = format!(
            "{}.a2V5.aXY.Y2lwaGVy.dGFn",
            b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
        );
        let body = format!(r#"{{"id_token":"{id_token}","payload":"{jwe}","n":1}}"#);
        let mut i = Inspection::default();
        let status = inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
        assert_eq!(status, InspectStatus::Complete);
        let found: Vec<(Category, &str, &str)> = i
            .findings
            .iter()
            .map(|f| (f.category, f.location.as_str(), f.detector))
            .collect();
        assert!(
            found.contains(&(Category::Email, "/id_token", "email.rfc5322")),
            "{found:?}"
        );
        assert!(
            found.contains(&(Category::DateOfBirth, "/id_token", "field.date_of_birth")),
            "{found:?}"
        );
        assert!(
            found.contains(&(Category::Uninspectable, "/payload", "encrypted.jwe")),
            "{found:?}"
        );
        assert!(i.categories().contains(&Category::Uninspectable));
        // A small unsigned token has too few digits to look like anything: it is opened all
        // the same.
        let small = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"e":"a@b.co"}"#));
        let mut i = Inspection::default();
        let body = format!(r#"{{"t":"{small}"}}"#);
        inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
        assert_eq!(locations(&i), ["/t"], "{small}");
        // The countries claims name are no evidence of jurisdiction here: only a token the
        // resolve step verified is.
        let claims = r#"{"phone_number":"+49 30 901820","country":"DE"}"#;
        let token = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims));
        let mut i = Inspection::default();
        let body = format!(r#"{{"t":"{token}"}}"#);
        inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
        let found: Vec<_> = i.findings.iter().map(|f| (f.category, f.country)).collect();
        assert_eq!(found, [(Category::Phone, None), (Category::Address, None)]);
        // A token inside a token's claims: its claims are read as text.
        let inner = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(r#"{"x":"jane@example.com"}"#)
        );
        let outer = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(&format!(r#"{{"act":"{inner}"}}"#))
        );
        let mut i = Inspection::default();
        let body = format!(r#"{{"t":"{outer}"}}"#);
        inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
        let found: Vec<_> = i
            .findings
            .iter()
            .map(|f| (f.category, f.location.as_str()))
            .collect();
        assert_eq!(found, [(Category::Email, "/t")]);
        // In a cookie, as session tokens travel.
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("session={id_token}").parse().unwrap(),
        );
        let mut i = Inspection::default();
        inspect_headers(&h, &HeadOptions::default(), &mut i);
        let cats: Vec<Category> = i.findings.iter().map(|f| f.category).collect();
        assert_eq!(
            cats,
            [Category::Email, Category::DateOfBirth],
            "{:?}",
            i.findings
        );
        assert_eq!(locations(&i), ["cookie:session", "cookie:session"]);
    }

    #[test]
    fn a_declared_field_replaces_what_was_found_there_however_deep() {
        let deep = format!("{}/email", "/level".repeat(100));
        let mut i = Inspection::default();
        let hit = detect::Hit {
            category: Category::Email,
            detector: "email.rfc5322",
            country: None,
            confidence: 95,
        };
        i.push(hit, deep.clone());
        i.declare(Category::Email, deep);
        let found: Vec<&str> = i.findings.iter().map(|f| f.detector).collect();
        assert_eq!(found, ["field_map"]);
    }

    #[test]
    fn ascii_a_multibyte_character_swallows_is_read_as_a_byte_reader_reads_it() {
        for (content_type, body) in [
            (
                "text/plain; charset=shift_jis",
                &b"write to jane\x81@example.com"[..],
            ),
            (
                "text/plain; charset=gbk",
                &b"write to jane\x81@example.com"[..],
            ),
            (
                "application/x-www-form-urlencoded; charset=shift_jis",
                &b"note=jane\x81@example.com"[..],
            ),
        ] {
            let mut i = Inspection::default();
            let status = inspect_body(&headers(content_type), body, &mut i);
            assert_eq!(status, InspectStatus::Complete, "{content_type}");
            assert!(
                i.findings.iter().any(|f| f.category == Category::Email),
                "{content_type}: {:?}",
                i.findings
            );
        }
        // Japanese text whose bytes hold no swallowed ASCII is read once, as decoded.
        let mut i = Inspection::default();
        let text = encoding_rs::SHIFT_JIS.encode("日本語のテキスト 123").0;
        inspect_body(&headers("text/plain; charset=shift_jis"), &text, &mut i);
        assert!(i.findings.is_empty(), "{:?}", i.findings);
    }

    #[test]
    fn base64_inside_text_and_xml_is_read() {
        for (content_type, body) in [
            (
                "application/xml",
                "<user><email>amFuZUBleGFtcGxlLmNvbQ==</email></user>",
            ),
            ("text/plain", "my login is amFuZUBleGFtcGxlLmNvbQ== thanks"),
            ("text/html", "<p>id: amFuZUBleGFtcGxlLmNvbQ</p>"),
        ] {
            let mut i = Inspection::default();
            inspect_body(&headers(content_type), body.as_bytes(), &mut i);
            assert!(
                i.findings.iter().any(|f| f.category == Category::Email),
                "{content_type}: {:?}",
                i.findings
            );
        }
        // Words that are not base64 of text stay quiet.
        let mut i = Inspection::default();
        let text =
            "Sessions use tokens such as 72JCiYPtNxrU37bEOyHGZ394GM6rwM6q and X-Request-Id values.";
        inspect_body(&headers("text/plain"), text.as_bytes(), &mut i);
        assert!(i.findings.is_empty(), "{:?}", i.findings);
    }

    #[test]
    fn a_fields_files_in_a_nested_multipart_mixed_part_are_read() {
        // RFC 2388's form: one field, several files, each with a `file` disposition and no name.
        let inner = "--in\r\nContent-Disposition: file; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n\
                     write to jane@example.com\r\n\
                     --in\r\nContent-Disposition: attachment; filename=\"b.txt\"\r\n\r\nnothing here\r\n\
                     --in--";
        let body = format!(
            "--out\r\nContent-Disposition: form-data; name=\"files\"\r\n\
             Content-Type: multipart/mixed; boundary=in\r\n\r\n{inner}\r\n--out--\r\n"
        );
        let mut i = Inspection::default();
        let status = inspect_body(
            &headers("multipart/form-data; boundary=out"),
            body.as_bytes(),
            &mut i,
        );
        assert_eq!(status, InspectStatus::Complete);
        assert!(
            i.findings.iter().any(|f| f.category == Category::Email),
            "{:?}",
            i.findings
        );
        // At the top, form-data's rules still hold: a part without a name is malformed.
        let nameless =
            "--out\r\nContent-Disposition: file; filename=\"a.txt\"\r\n\r\nx\r\n--out--\r\n";
        let status = inspect_body(
            &headers("multipart/form-data; boundary=out"),
            nameless.as_bytes(),
            &mut Inspection::default(),
        );
        assert_eq!(
            status,
            InspectStatus::Uninspectable(Uninspectable::InvalidMultipart)
        );
        // A multipart/mixed part inside the nested one is a level deeper than a form holds:
        // not read, and the body is uninspectable for its depth (400 on a rejecting route).
        let innermost = "--deep\r\nContent-Disposition: attachment; filename=\"c.txt\"\r\n\r\n\
                         jane@example.com\r\n--deep--";
        let inner = format!(
            "--in\r\nContent-Disposition: attachment\r\n\
             Content-Type: multipart/mixed; boundary=deep\r\n\r\n{innermost}\r\n--in--"
        );
        let body = format!(
            "--out\r\nContent-Disposition: form-data; name=\"files\"\r\n\
             Content-Type: multipart/mixed; boundary=in\r\n\r\n{inner}\r\n--out--\r\n"
        );
        let status = inspect_body(
            &headers("multipart/form-data; boundary=out"),
            body.as_bytes(),
            &mut Inspection::default(),
        );
        assert_eq!(status, InspectStatus::Uninspectable(Uninspectable::TooDeep));
        assert_eq!(Uninspectable::TooDeep.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn base64_in_lines_or_in_a_data_url_is_read_in_a_json_body() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD
            .encode("id,mail,city\n1,jane@example.com,Lyon\n2,joe@example.org,Graz\n");
        let lines: Vec<String> = b64
            .as_bytes()
            .chunks(32)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let wrapped = lines.join("\\r\\n");
        for body in [
            format!(r#"{{"file":"{wrapped}"}}"#),
            format!(r#"{{"file":"data:text/csv;base64,{b64}"}}"#),
        ] {
            let mut i = Inspection::default();
            let status = inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
            assert_eq!(status, InspectStatus::Complete);
            assert!(
                i.findings
                    .iter()
                    .any(|f| f.category == Category::Email && f.location == "/file"),
                "{body}: {:?}",
                i.findings
            );
        }
    }

    #[test]
    fn a_declared_field_keeps_what_else_the_detectors_found_in_it() {
        let mut m = fieldmap::FieldMap::default();
        m.declare("/customer", "name").unwrap();
        m.declare("/phone", "phone").unwrap();
        let fields = m.fields_for(&http::Method::POST, "/").unwrap();
        let opts = BodyOptions {
            fields: Some(fields),
            ..BodyOptions::default()
        };
        let body = r#"{"customer":{"full":"Jane Doe","ssn":"123-45-6789","mail":"jane@example.com"},
                      "phone":"+1 202 456 1111"}"#;
        let mut i = Inspection::default();
        inspect_body_with(&headers("application/json"), body.as_bytes(), &opts, &mut i);
        let mut got = found(&i);
        got.sort();
        assert!(
            got.contains(&(Category::Name, "/customer", "field_map")),
            "{got:?}"
        );
        assert!(
            got.contains(&(Category::NationalId, "/customer/ssn", "id.us_ssn")),
            "{got:?}"
        );
        assert!(
            got.contains(&(Category::Email, "/customer/mail", "email.rfc5322")),
            "{got:?}"
        );
        // The declared phone replaces the detector's, keeping the country it read.
        let phone: Vec<&Finding> = i
            .findings
            .iter()
            .filter(|f| f.category == Category::Phone)
            .collect();
        assert_eq!(phone.len(), 1, "{got:?}");
        assert_eq!(phone[0].detector, "field_map");
        assert_eq!(
            phone[0].country.map(|c| c.to_string()).as_deref(),
            Some("US")
        );
    }

    #[test]
    fn long_locations_keep_their_end() {
        let deep = format!("{}/email", "/level".repeat(100));
        let body = format!(
            "{}{{\"email\":\"jane@example.com\"}}{}",
            "{\"level\":".repeat(100),
            "}".repeat(100)
        );
        let mut i = Inspection::default();
        inspect_body(&headers("application/json"), body.as_bytes(), &mut i);
        let loc = &i.findings[0].location;
        assert!(loc.len() <= MAX_LOCATION, "{}", loc.len());
        assert!(
            loc.starts_with('…') && loc.ends_with("/level/email"),
            "{loc}"
        );
        assert!(deep.ends_with(loc.trim_start_matches('…')));
        // An XML run kept apart from the path once its element closed is shown cut the same
        // way.
        let xml = format!(
            "{}<b>jane@example.com</b><c/>{}",
            "<level>".repeat(60),
            "</level>".repeat(60)
        );
        let i = complete(&headers("application/xml"), xml.as_bytes());
        let loc = &i.findings[0].location;
        assert!(loc.len() <= MAX_LOCATION, "{}", loc.len());
        assert!(loc.starts_with('…') && loc.ends_with("/level/b"), "{loc}");
    }

    fn locations(i: &Inspection) -> Vec<&str> {
        i.findings.iter().map(|f| f.location.as_str()).collect()
    }

    /// A body inspected in full, with the default options.
    fn complete(h: &HeaderMap, body: &[u8]) -> Inspection {
        let mut i = Inspection::default();
        assert_eq!(inspect_body(h, body, &mut i), InspectStatus::Complete);
        i
    }

    /// Category, location and detector of each finding.
    fn found(i: &Inspection) -> Vec<(Category, &str, &'static str)> {
        i.findings
            .iter()
            .map(|f| (f.category, f.location.as_str(), f.detector))
            .collect()
    }

    #[test]
    fn a_trailer_name_that_is_data_is_masked() {
        let mut t = HeaderMap::new();
        t.insert("x-4111111111111111", "jane@example.com".parse().unwrap());
        t.insert("x-contact", "joe@example.com".parse().unwrap());
        let mut i = Inspection::default();
        inspect_trailers(&t, &mut i);
        let mut l = locations(&i);
        l.sort_unstable();
        assert_eq!(l, vec!["trailer:*", "trailer:x-contact"]);
    }

    #[test]
    fn gzip_bodies_and_declared_charsets_are_read() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(br#"{"contact":{"mail":"jane@example.com"}}"#)
            .unwrap();
        let mut h = headers("application/json");
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body(&h, &e.finish().unwrap(), &mut i),
            InspectStatus::Complete
        );
        assert_eq!(locations(&i), vec!["/contact/mail"]);

        let mut i = Inspection::default();
        let latin1 = b"name=Ren\xe9e&mail=ren\xe9e@example.com";
        assert_eq!(
            inspect_body(
                &headers("application/x-www-form-urlencoded; charset=iso-8859-1"),
                latin1,
                &mut i
            ),
            InspectStatus::Complete
        );
        // The name field is personal data by its name, the mail field by its value.
        assert_eq!(locations(&i), vec!["form:name", "form:mail"]);
        assert_eq!(
            inspect_body(&headers("text/plain; charset=x-unknown"), b"a", &mut i),
            InspectStatus::Uninspectable(Uninspectable::UnsupportedCharset)
        );
        assert_eq!(
            inspect_body(
                &headers("text/plain; charset=shift_jis"),
                b"\x81\xff",
                &mut i
            ),
            InspectStatus::Uninspectable(Uninspectable::InvalidCharset)
        );
    }

    fn form_data(parts: &[(&str, Option<&str>, &[u8])]) -> (HeaderMap, Vec<u8>) {
        let mut body = Vec::new();
        for (disposition, ct, data) in parts {
            body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; ");
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(b"\r\n");
            if let Some(ct) = ct {
                body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        (headers("multipart/form-data; boundary=XyZ"), body)
    }

    #[test]
    fn a_body_that_asks_for_more_work_than_its_size_allows_is_cut_short_as_unknown_data() {
        let json = headers("application/json");
        // Single digits each followed by a space: every window of them may be an identifier,
        // about 74 bytes of work per byte; with a budget of sixteen, cut short.
        let spaced = format!("[\"{}\"]", "1 ".repeat(128 << 10));
        let tight = BodyOptions {
            work_per_byte: 16,
            ..BodyOptions::default()
        };
        let mut i = Inspection::default();
        let status = inspect_body_with(&json, spaced.as_bytes(), &tight, &mut i);
        assert_eq!(status, InspectStatus::Complete);
        assert_eq!(
            found(&i),
            vec![(Category::Uninspectable, "/0", detect::WORK_DETECTOR)]
        );
        assert_eq!(detect::work_left(), 0);
        // Within the default budget it is read whole.
        let i = complete(&json, spaced.as_bytes());
        assert_eq!(found(&i), vec![]);
        // An ordinary document of the same size (API records, one in twenty with personal
        // data) uses a small part of its budget.
        let corpus = corpus::generate(0x5eed, 40);
        let records: Vec<&[u8]> = corpus
            .samples
            .iter()
            .filter(|s| s.format == corpus::Format::Json)
            .map(|s| s.body.as_slice())
            .collect();
        let mut doc = b"[".to_vec();
        for r in records.iter().cycle() {
            if doc.len() >= spaced.len() {
                break;
            }
            if doc.len() > 1 {
                doc.push(b',');
            }
            doc.extend_from_slice(r);
        }
        doc.push(b']');
        // The work a body took, and its default budget; it must not have run out.
        let work = |body: &[u8]| {
            let i = complete(&json, body);
            assert!(
                i.findings
                    .iter()
                    .all(|f| f.detector != detect::WORK_DETECTOR)
            );
            let budget = detect::work_budget(body.len(), DEFAULT_WORK_PER_BYTE);
            (budget - detect::work_left(), budget)
        };
        let (spent, budget) = work(&doc);
        assert!(spent * 4 < budget, "{spent} of {budget}");
        // Text of numbers with decimals, or small numbers, spaced: the windows an ordinary
        // body asks most for.
        for table in [
            "0.125 3.25 0.875 12.5 ".repeat(12 << 10),
            "12 34 56 78 90 ".repeat(16 << 10),
        ] {
            let (spent, budget) = work(format!("[\"{table}\"]").as_bytes());
            assert!(spent * 2 < budget, "{spent} of {budget}");
        }
    }

    #[test]
    fn values_split_over_adjacent_pairs_and_fields_are_joined() {
        let query = |q: &str| {
            let mut i = Inspection::default();
            inspect_query(q, &mut i);
            i
        };
        // A card number in repeated parameters, a phone number as calling code and number,
        // an address as user and domain: each found where its last part is.
        let i = query("card=4111&card=1111&card=1111&card=1111");
        assert_eq!(
            found(&i),
            vec![(Category::PaymentCard, "query:card", "card.luhn.split")]
        );
        let i = query("cc=%2B33&number=612345678");
        assert_eq!(
            found(&i),
            vec![(Category::Phone, "query:number", "phone.e164.split")]
        );
        let mut i = Inspection::default();
        let form = headers("application/x-www-form-urlencoded");
        inspect_body(&form, b"user=jane&domain=example.com&page=2", &mut i);
        assert_eq!(
            found(&i),
            vec![(Category::Email, "form:domain", "email.rfc5322.split")]
        );
        // Controls: a check digit that fails, a run broken by another value, an empty value,
        // and an address's parts in fields that do not say so.
        for q in [
            "card=4111&card=1111&card=1111&card=1112",
            "card=4111&card=1111&note=hello&card=1111&card=1111",
            "card=4111&card=1111&card=&card=1111&card=1111",
            "a=jane&b=example.com",
        ] {
            assert_eq!(found(&query(q)), vec![], "{q}");
        }

        // Multipart: adjacent text fields are joined; a file between them ends the run.
        let user = ("name=\"user\"", None, &b"jane"[..]);
        let domain = ("name=\"domain\"", None, &b"example.com"[..]);
        let file = (
            "name=\"f\"; filename=\"a.txt\"",
            Some("text/plain"),
            &b"example.org"[..],
        );
        let (h, body) = form_data(&[user, domain]);
        let i = complete(&h, &body);
        assert_eq!(
            found(&i),
            vec![(Category::Email, "multipart:domain", "email.rfc5322.split")]
        );
        let (h, body) = form_data(&[user, file, domain]);
        assert_eq!(found(&complete(&h, &body)), vec![]);
        let (h, body) = form_data(&[user, file]);
        assert_eq!(found(&complete(&h, &body)), vec![]);
    }

    #[test]
    fn files_embedded_as_base64_are_uninspectable_unless_the_route_skips_uploads() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let png = b64(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01");
        let pdf = b64(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj");
        let body = format!(
            r#"{{"scan":"{png}","contract":"data:application/pdf;base64,{pdf}","email":"jane@example.com"}}"#
        );
        let h = headers("application/json");
        let i = complete(&h, body.as_bytes());
        assert_eq!(
            found(&i),
            vec![
                (Category::Uninspectable, "/scan", "embedded.png"),
                (Category::Uninspectable, "/contract", "embedded.pdf"),
                (Category::Email, "/email", "email.rfc5322"),
            ]
        );
        // A route whose binary uploads go on uninspected lists them instead.
        let skip = BodyOptions {
            binary_parts: BinaryParts::Skip,
            ..BodyOptions::default()
        };
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body_with(&h, body.as_bytes(), &skip, &mut i),
            InspectStatus::Complete
        );
        assert_eq!(locations(&i), vec!["/email"]);
        assert_eq!(i.not_inspected, vec!["/scan", "/contract"]);
        // A file skipped so takes nothing from what else is found at its place: an encrypted
        // token beside it, under keys that are data and so share the masked location `/*`.
        let jwe = format!(
            "{}.a2V5.aXY.Y2lwaGVy.dGFn",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
        );
        let body = format!(r#"{{"jane@example.com":"{png}","joe@example.com":"{jwe}"}}"#);
        let mut i = Inspection::default();
        inspect_body_with(&h, body.as_bytes(), &skip, &mut i);
        assert!(
            found(&i).contains(&(Category::Uninspectable, "/*", "encrypted.jwe")),
            "{:?}",
            found(&i)
        );
        assert_eq!(i.not_inspected, vec!["/*"]);
    }

    #[test]
    fn multipart_parts_are_read_through_their_transfer_encoding() {
        let part = |name: &str, cte: &str, data: &str| {
            format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                 Content-Transfer-Encoding: {cte}\r\n\r\n{data}\r\n"
            )
        };
        let h = headers("multipart/form-data; boundary=XyZ");
        let body = [
            // "contact: jane@example.com", as MIME writes base64: in lines.
            part(
                "contact",
                "base64",
                "Y29udGFjdDogamFu\r\nZUBleGFtcGxlLmNvbQ==",
            ),
            part(
                "tel",
                "Quoted-Printable",
                "call +49=2030=20901820 or=\r\n later",
            ),
            part("note", "8bit", "nothing here"),
            "--XyZ--\r\n".to_owned(),
        ]
        .concat();
        let i = complete(&h, body.as_bytes());
        assert_eq!(
            found(&i),
            vec![
                (Category::Email, "multipart:contact", "email.rfc5322"),
                (Category::Phone, "multipart:tel", "phone.e164")
            ]
        );
        // An encoding that is not known, or a body not valid in its own, cannot be read.
        for (cte, data) in [
            ("x-uuencode", "begin 644 x"),
            ("base64", "not base64 at all!"),
            ("quoted-printable", "jane=4"),
            ("quoted-printable", "jane=ZZexample.com"),
        ] {
            let body = [part("p", cte, data), "--XyZ--\r\n".to_owned()].concat();
            let mut i = Inspection::default();
            assert_eq!(
                inspect_body(&h, body.as_bytes(), &mut i),
                InspectStatus::Uninspectable(Uninspectable::ContentEncoding),
                "{cte}: {data}"
            );
        }
    }

    #[test]
    fn multipart_parts_are_read_by_declared_type() {
        let (h, body) = form_data(&[
            ("name=\"email\"", None, b"jane@example.com"),
            (
                "name=\"profile\"; filename=\"p.json\"",
                Some("application/json"),
                br#"{"tel":"+49 30 901820"}"#,
            ),
            (
                "name=\"photo\"; filename=\"jane@example.com.png\"",
                Some("image/png"),
                b"\x89PNG\r\n\x1a\n\x00",
            ),
        ]);
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body(&h, &body, &mut i),
            InspectStatus::Uninspectable(Uninspectable::BinaryPart)
        );
        let skip = BodyOptions {
            binary_parts: BinaryParts::Skip,
            ..BodyOptions::default()
        };
        let mut i = Inspection::default();
        assert_eq!(
            inspect_body_with(&h, &body, &skip, &mut i),
            InspectStatus::Complete
        );
        // The file name of the binary part is still read.
        assert_eq!(
            locations(&i),
            vec![
                "multipart:email",
                "multipart:profile/tel",
                "multipart:photo"
            ]
        );
        assert_eq!(i.not_inspected, vec!["multipart:photo"]);

        let few = BodyOptions {
            max_parts: 2,
            ..BodyOptions::default()
        };
        assert_eq!(
            inspect_body_with(&h, &body, &few, &mut Inspection::default()),
            InspectStatus::Uninspectable(Uninspectable::TooManyParts)
        );
        assert_eq!(
            inspect_body(&h, &body[..body.len() - 9], &mut Inspection::default()),
            InspectStatus::Uninspectable(Uninspectable::InvalidMultipart)
        );
    }

    #[test]
    fn path_headers_and_cookies_are_inspected_by_name_never_value() {
        let mut i = Inspection::default();
        inspect_path("/users/jane%40example.com/phones/%2B4930901820", &mut i);
        assert_eq!(locations(&i), vec!["path:/1", "path:/3"]);

        let mut h = HeaderMap::new();
        h.insert("x-user-email", "jane@example.com".parse().unwrap());
        h.insert("x-other", "joe@example.com".parse().unwrap());
        h.insert(
            header::REFERER,
            "https://shop.example/?u=jane%40example.com"
                .parse()
                .unwrap(),
        );
        h.insert(
            header::COOKIE,
            "sid=abc; session_email=jane%40example.com; jane@example.com=1"
                .parse()
                .unwrap(),
        );
        // Headers that carry no personal data by definition, or the client's address the
        // resolve step reads, are not inspected: nothing is found in them.
        // (Each carries an address here, so that reading it would show.)
        for name in [
            "host",
            "x-forwarded-for",
            "x_real_ip",
            "accept-language",
            "sec-ch-ua-platform",
            "traceparent",
            "domicile-note",
        ] {
            h.insert(
                HeaderName::from_static(name),
                "joe@example.com".parse().unwrap(),
            );
        }
        h.insert(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36"
                .parse()
                .unwrap(),
        );
        let mut i = Inspection::default();
        inspect_headers(&h, &HeadOptions::default(), &mut i);
        // Every other header is read, those outside any list too.
        assert_eq!(
            locations(&i),
            vec![
                "header:x-user-email",
                "header:x-other",
                "header:referer",
                "cookie:session_email",
                "cookie:*"
            ]
        );
        let skip = HeadOptions {
            headers: HeaderList::All {
                skip: vec![HeaderName::from_static("x-other")],
            },
            cookies: CookieList::All,
        };
        let mut i = Inspection::default();
        inspect_headers(&h, &skip, &mut i);
        assert!(!locations(&i).contains(&"header:x-other"));
        assert!(locations(&i).contains(&"header:x-user-email"));
        let only = HeadOptions {
            headers: HeaderList::Named(vec![HeaderName::from_static("x-other")]),
            cookies: CookieList::Named(vec!["sid".into()]),
        };
        let mut i = Inspection::default();
        inspect_headers(&h, &only, &mut i);
        assert_eq!(locations(&i), vec!["header:x-other"]);
        // A personal value in the user agent, or in the identity headers an authenticating
        // proxy adds, is found there.
        let mut ua = HeaderMap::new();
        ua.insert(
            header::USER_AGENT,
            "MyApp/3.2 (jane@example.com)".parse().unwrap(),
        );
        ua.insert("x-forwarded-user", "jane@example.com".parse().unwrap());
        ua.insert("x-forwarded-email", "jane@example.com".parse().unwrap());
        let mut i = Inspection::default();
        inspect_headers(&ua, &HeadOptions::default(), &mut i);
        assert_eq!(
            locations(&i),
            vec![
                "header:user-agent",
                "header:x-forwarded-user",
                "header:x-forwarded-email"
            ]
        );
        // A referring URL's parameters are read one at a time: base64 of an address.
        let mut h = HeaderMap::new();
        h.insert(
            header::REFERER,
            "https://x.example/p?u=amFuZUBleGFtcGxlLmNvbQ==&page=2#top"
                .parse()
                .unwrap(),
        );
        let mut i = Inspection::default();
        inspect_headers(&h, &HeadOptions::default(), &mut i);
        assert_eq!(locations(&i), vec!["header:referer"]);
        assert_eq!(i.findings[0].category, Category::Email);
    }

    #[test]
    fn credentials_are_read_for_the_identity_they_carry() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!(
            "{}.{}.c2ln",
            url.encode(r#"{"alg":"RS256"}"#),
            url.encode(r#"{"sub":"42","email":"jane@example.com"}"#)
        );
        for (value, category) in [
            (
                format!("Basic {}", b64.encode("jane@example.com:s3cret")),
                Some(Category::Email),
            ),
            (format!("Bearer {jwt}"), Some(Category::Email)),
            // A token without data about its subject, and an opaque one: nothing.
            (
                format!(
                    "Bearer {}.{}.c2ln",
                    url.encode(r#"{"alg":"RS256"}"#),
                    url.encode(r#"{"sub":"42"}"#)
                ),
                None,
            ),
            ("Bearer 2YotnFZFEjr1zCsicMWpAA".to_owned(), None),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            let mut i = Inspection::default();
            inspect_headers(&h, &HeadOptions::default(), &mut i);
            if let Some(category) = category {
                let found: Vec<_> = i
                    .findings
                    .iter()
                    .map(|f| (f.category, f.location.as_str()))
                    .collect();
                assert_eq!(found, [(category, "header:authorization")], "{value}");
            } else {
                assert!(i.findings.is_empty(), "{value}: {:?}", i.findings);
            }
        }
    }
}
