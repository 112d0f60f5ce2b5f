//! Header names Domicile sets and the hop-by-hop rules of RFC 9110 section 7.6.1.

use http::header::{self, HeaderMap, HeaderName};

pub const DECISION: HeaderName = HeaderName::from_static("domicile-decision");
pub const SUBJECT_JURISDICTION: HeaderName =
    HeaderName::from_static("domicile-subject-jurisdiction");
pub const REGION: HeaderName = HeaderName::from_static("domicile-region");
pub const VERDICT: HeaderName = HeaderName::from_static("domicile-verdict");

// The forwarding headers Domicile sets, named once: inserting by `&str` would copy a
// non-standard name into a new allocation on every request.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Global Privacy Control (`Sec-GPC: 1`).
pub const SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");

const OWN: [HeaderName; 4] = [DECISION, SUBJECT_JURISDICTION, REGION, VERDICT];

/// Non-standard names common on requests and responses, whose parsing would otherwise copy
/// each into a new allocation.
const COMMON_CUSTOM: [HeaderName; 5] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("traceparent"),
];

/// A header name read off the wire: `HeaderName::from_bytes`, except that the common
/// non-standard names (in any letter case) are the shared constants rather than new copies.
pub fn name_from_bytes(raw: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    if let Some(n) = as_usually_written(raw) {
        return Ok(n);
    }
    if raw.len() >= 11 && raw.len() <= 17 {
        for n in &COMMON_CUSTOM {
            if n.as_str().len() == raw.len() && n.as_str().as_bytes().eq_ignore_ascii_case(raw) {
                return Ok(n.clone());
            }
        }
    }
    HeaderName::from_bytes(raw)
}

/// The names nearly every request and response carries, spelt as clients and servers write
/// them (capitalised, or all lower case): matched byte for byte, without the case folding
/// and table search of `HeaderName::from_bytes`. Any other spelling goes that way.
fn as_usually_written(raw: &[u8]) -> Option<HeaderName> {
    use http::header as h;
    let name = match raw {
        b"Host" | b"host" => h::HOST,
        b"Date" | b"date" => h::DATE,
        b"Server" | b"server" => h::SERVER,
        b"Accept" | b"accept" => h::ACCEPT,
        b"User-Agent" | b"user-agent" => h::USER_AGENT,
        b"Connection" | b"connection" => h::CONNECTION,
        b"Content-Type" | b"content-type" => h::CONTENT_TYPE,
        b"Content-Length" | b"content-length" => h::CONTENT_LENGTH,
        b"Cache-Control" | b"cache-control" => h::CACHE_CONTROL,
        _ => return None,
    };
    Some(name)
}

/// A chunk's size in hexadecimal digits, as chunked framing writes it (no allocation).
pub fn chunk_size(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Headers that carry the message's meaning: `Connection` may not name them for removal, or
/// the gateway and the backend would read different messages.
const END_TO_END: [&str; 7] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "authorization",
    "cookie",
    "forwarded",
];

/// Headers that claim a client address. With [`SPOOFABLE`], believed from trusted proxies
/// only.
const CLIENT_IP_CLAIMS: [&str; 7] = [
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "client-ip",
    "x-original-forwarded-for",
];

/// Headers besides [`CLIENT_IP_CLAIMS`] that claim an original URL, host or method. Believed
/// from trusted proxies only; anyone else's are removed before forwarding, as are all of an
/// untrusted client's `x-forwarded-*` and `forwarded` (the gateway writes its own).
pub const SPOOFABLE: [&str; 6] = [
    "x-original-url",
    "x-original-host",
    "x-rewrite-url",
    "x-http-method",
    "x-http-method-override",
    "x-method-override",
];

/// Whether a (lower-case) name is one only a trusted proxy may set: every `x-forwarded-*`
/// (`-port`, `-prefix`, `-server` and the rest), `forwarded`, the [`CLIENT_IP_CLAIMS`] and
/// the [`SPOOFABLE`] ones.
/// Every comparison is by [`spelled`], so a spelling with `_` for `-` is one too.
fn proxy_claim(name: &str) -> bool {
    starts_spelled(name, "x-forwarded-")
        || spelled(name, "forwarded")
        || CLIENT_IP_CLAIMS.iter().any(|f| spelled(name, f))
        || SPOOFABLE.iter().any(|f| spelled(name, f))
}

/// Whether a (lower-case) name is one only Domicile or a trusted proxy may set, also when it
/// is spelled with `_` for `-`: CGI-style backends read `x_forwarded_for` as
/// `x-forwarded-for`, and `domicile_decision` as Domicile's own.
fn protected(name: &str) -> bool {
    starts_spelled(name, "domicile-") || proxy_claim(name)
}

/// The forwarding headers that carry the client's address, or the scheme, host and port it
/// asked for; with [`CLIENT_IP_CLAIMS`], what the resolve step reads as the client (from
/// trusted proxies) and the gateway rewrites or removes on the way upstream.
const FORWARDING: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

/// Whether a (lower-case) name is a client-address header ([`FORWARDING`],
/// [`CLIENT_IP_CLAIMS`]) or Domicile's own (`domicile-*`), also spelled with `_` for `-`.
pub(crate) fn address_or_own(name: &str) -> bool {
    starts_spelled(name, "domicile-")
        || FORWARDING.iter().any(|f| spelled(name, f))
        || CLIENT_IP_CLAIMS.iter().any(|f| spelled(name, f))
}

/// Whether a header name as sent begins with `prefix`, some of its `-` perhaps written `_`.
fn starts_spelled(sent: &str, prefix: &str) -> bool {
    sent.get(..prefix.len()).is_some_and(|p| spelled(p, prefix))
}

/// Whether a header name as sent is `field`, some of its `-` perhaps written `_`. Compared
/// byte by byte, without a copy.
fn spelled(sent: &str, field: &str) -> bool {
    sent.len() == field.len()
        && sent
            .bytes()
            .zip(field.bytes())
            .all(|(s, f)| s == f || (s == b'_' && f == b'-'))
}

/// Removes client-sent copies of the headers only Domicile may set, and the spellings with `_`
/// for `-` of every [`protected`] name.
pub fn strip_own(h: &mut HeaderMap) {
    strip_where(h, |n| {
        (n.starts_with("domicile-") && OWN.iter().any(|o| o.as_str() == n))
            || (n.contains('_') && protected(n))
    });
}

/// Removes `fields` spelled with `_` for `-`, leaving them as they are named.
pub fn strip_underscored(h: &mut HeaderMap, fields: &[HeaderName]) {
    strip_where(h, |n| {
        n.contains('_') && fields.iter().any(|f| spelled(n, f.as_str()))
    });
}

/// Removes `fields` however they are spelled, as named or with `_` for `-`.
pub fn strip_fields(h: &mut HeaderMap, fields: &[HeaderName]) {
    strip_where(h, |n| fields.iter().any(|f| spelled(n, f.as_str())));
}

/// Removes the headers only a trusted proxy may set (a client that is not one sent them): the
/// [`CLIENT_IP_CLAIMS`] and [`SPOOFABLE`] ones and every `x-forwarded-*` and `forwarded`, which the gateway then writes
/// anew.
pub fn strip_spoofable(h: &mut HeaderMap) {
    strip_where(h, proxy_claim);
}

/// Up to this many distinct names, a lookup compares names in order instead of hashing the
/// one asked for: a request usually carries a handful, and most names looked up on the
/// request path (`Upgrade`, `Forwarded`, `Sec-GPC`, ...) are absent.
const SCAN_MAX: usize = 8;

/// Every value of `name` in `h`, in order: what `h.get_all(name)` gives.
pub fn all<'a, 'n>(h: &'a HeaderMap, name: &'n HeaderName) -> Values<'a, 'n> {
    if h.keys_len() <= SCAN_MAX {
        Values::Scan(h.iter(), name)
    } else {
        Values::Map(h.get_all(name).iter())
    }
}

/// The first value of `name` in `h`: what `h.get(name)` gives.
pub fn first<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a http::HeaderValue> {
    all(h, name).next()
}

/// The values [`all`] finds.
#[derive(Debug)]
pub enum Values<'a, 'n> {
    Scan(http::header::Iter<'a, http::HeaderValue>, &'n HeaderName),
    Map(http::header::ValueIter<'a, http::HeaderValue>),
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a http::HeaderValue;

    fn next(&mut self) -> Option<&'a http::HeaderValue> {
        match self {
            Values::Scan(fields, name) => fields.find_map(|(n, v)| (n == *name).then_some(v)),
            Values::Map(values) => values.next(),
        }
    }
}

/// Removes every header whose name matches: one scan over the names present, rather than a
/// hashed lookup per name that might be there.
fn strip_where(h: &mut HeaderMap, matches: impl Fn(&str) -> bool) {
    if !h.keys().any(|k| matches(k.as_str())) {
        return;
    }
    let remove: Vec<HeaderName> = h.keys().filter(|k| matches(k.as_str())).cloned().collect();
    for n in remove {
        h.remove(n);
    }
}

/// Fields a trailer section may not carry on (RFC 9110 section 6.5.1): those that frame,
/// route, authenticate or condition the message. With them go the hop-by-hop fields
/// ([`HOP_BY_HOP`], `proxy-*`) and those the gateway sets or strips from heads (`domicile-*`,
/// `x-forwarded-*`, `forwarded`, [`CLIENT_IP_CLAIMS`], [`SPOOFABLE`]), which a trailer would otherwise smuggle past
/// it.
const NOT_IN_TRAILERS: [&str; 17] = [
    "authorization",
    "cache-control",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "expect",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "max-forwards",
    "range",
    "set-cookie",
];

/// Whether a field may be passed on in trailers: not one of [`NOT_IN_TRAILERS`], a hop-by-hop
/// field, nor one only Domicile or a trusted proxy may set ([`protected`]).
pub fn trailer_allowed(name: &str) -> bool {
    !(NOT_IN_TRAILERS.contains(&name)
        || HOP_BY_HOP.iter().any(|h| h.as_str() == name)
        || name.starts_with("proxy-")
        || protected(name))
}

/// Removes from a trailer section every field [`trailer_allowed`] refuses.
pub fn strip_from_trailers(h: &mut HeaderMap) {
    strip_where(h, |n| !trailer_allowed(n));
}

/// The hop-by-hop headers every message loses, by name. `HTTP2-Settings` belongs to an h2c
/// upgrade (RFC 7540 section 3.2.1), which is never passed on.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Whether a backend's answer field named `raw` (as it came, any case) is one the gateway
/// removes or reads before passing the answer on: a hop-by-hop field ([`HOP_BY_HOP`],
/// `proxy-*`), or one [`strip_own`] removes (`domicile-*`, a name with `_`). Such an answer
/// goes through the header map, whose strips handle it.
pub fn needs_attention_in_answer(raw: &[u8]) -> bool {
    let starts = |p: &[u8]| raw.len() >= p.len() && raw[..p.len()].eq_ignore_ascii_case(p);
    starts(b"domicile-")
        || starts(b"proxy-")
        || raw.contains(&b'_')
        || HOP_BY_HOP.iter().any(|h| {
            h.as_str().len() == raw.len() && h.as_str().as_bytes().eq_ignore_ascii_case(raw)
        })
}

/// Where `Trailer` is in [`HOP_BY_HOP`].
const TRAILER_AT: usize = 3;

/// The `Trailer` field for the trailers passed on: the names `h` declares that trailers may
/// carry ([`trailer_allowed`]), or `None` when there are none.
fn declared_trailers(h: &HeaderMap) -> Option<http::HeaderValue> {
    let mut names = String::new();
    for v in h.get_all(header::TRAILER) {
        let Ok(v) = v.to_str() else { continue };
        for n in v.split(',').map(str::trim) {
            let Ok(name) = HeaderName::from_bytes(n.as_bytes()) else {
                continue;
            };
            if trailer_allowed(name.as_str()) {
                if !names.is_empty() {
                    names.push_str(", ");
                }
                names.push_str(name.as_str());
            }
        }
    }
    http::HeaderValue::try_from(names)
        .ok()
        .filter(|v| !v.is_empty())
}

/// Removes hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade` and `Proxy-*`. The sender's `Trailer` is
/// replaced by one that declares only the trailer fields passed on: an HTTP/1.1 peer sends
/// only the trailer fields a message declares.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names, noting which of the fixed ones are present; most messages
    // carry only `Connection`, if anything, and then nothing is allocated.
    let mut present = 0u8;
    let mut proxy: Vec<HeaderName> = Vec::new();
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|x| x == k) {
            present |= 1 << i;
        } else if k.as_str().starts_with("proxy-") {
            proxy.push(k.clone());
        }
    }
    if present == 0 && proxy.is_empty() {
        return;
    }
    let declared = if present & (1 << TRAILER_AT) != 0 {
        declared_trailers(h)
    } else {
        None
    };
    if present & 1 != 0 {
        // The names `Connection` lists go too. Its values are copied first (cheap handles; a
        // second line, rare, is what would allocate).
        let mut lines = h.get_all(header::CONNECTION).iter();
        let first = lines.next().cloned();
        let more: Vec<http::HeaderValue> = lines.cloned().collect();
        for v in first.iter().chain(&more) {
            let Ok(v) = v.to_str() else { continue };
            for n in v.split(',') {
                let n = n.trim();
                // `close` and `keep-alive` are options, not header names to drop.
                if n.is_empty()
                    || n.eq_ignore_ascii_case("close")
                    || n.eq_ignore_ascii_case("keep-alive")
                {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(n.as_bytes())
                    && !END_TO_END.contains(&name.as_str())
                {
                    h.remove(name);
                }
            }
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
    for n in proxy {
        h.remove(n);
    }
    if let Some(v) = declared {
        h.insert(header::TRAILER, v);
    }
}

/// Whether a comma-separated value lists `token` (ASCII case-insensitive, spaces trimmed).
pub fn lists_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A `Content-Length` value (or one item of a comma-separated list of them): one to nineteen
/// ASCII digits and nothing else, so that it always fits a `u64`.
pub fn length_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Whether an `Upgrade` value asks for a protocol other than `h2c`: an h2c upgrade is ignored
/// (`route::upgrade_protocols`), so the connection stays HTTP/1.1.
pub fn upgrade_beyond_h2c(v: &[u8]) -> bool {
    upgrade_tokens(v).next().is_some()
}

/// The protocols an `Upgrade` value names, trimmed, but `h2c`.
pub fn upgrade_tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case(b"h2c"))
}

/// The comma-separated directives of a `Cache-Control` value, trimmed; a comma inside a
/// quoted string (`private="a, b"`) is part of its directive.
fn directives(v: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    v.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ',' && !quoted {
            return true;
        }
        false
    })
    .map(str::trim)
    .filter(|d| !d.is_empty())
}

/// Makes a response private to its client (RFC 9111 section 5.2.2.7): the answer to a request
/// that carried personal data may carry it too, and a shared cache in front of the gateway
/// must not hand it to another client, in another region. A response already `private` or
/// `no-store` is left as it is; otherwise `public` and `s-maxage` go and `private` is added
/// (`max-age` and the rest are kept, for the client's own cache).
pub fn keep_private(h: &mut HeaderMap) {
    // The common case: no directives to keep.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("private"),
        );
        return;
    }
    let mut kept = String::from("private");
    for v in h.get_all(header::CACHE_CONTROL) {
        // A value that is not text cannot be read; it is replaced.
        let Ok(v) = v.to_str() else { continue };
        for d in directives(v) {
            if d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store") {
                return;
            }
            // `private="set-cookie"` keeps only those fields private: it goes, for the
            // unqualified `private`.
            let name = d.split('=').next().unwrap_or("").trim();
            if !["public", "s-maxage", "private"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                kept.push_str(", ");
                kept.push_str(d);
            }
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&kept) {
        h.insert(header::CACHE_CONTROL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_scan_give_what_the_map_gives() {
        // Maps of 1 to 12 distinct names (either side of the scan's limit), each name with one
        // to three values, the repeated ones added out of order.
        let names: Vec<HeaderName> = [
            "host",
            "x-forwarded-for",
            "forwarded",
            "upgrade",
            "sec-gpc",
            "accept",
            "x-a",
            "x-b",
            "x-c",
            "x-d",
            "cookie",
            "x-forwarded-proto",
        ]
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect();
        let absent = [header::CONNECTION, HeaderName::from_static("x-absent")];
        for size in 1..=names.len() {
            let mut h = HeaderMap::new();
            for round in 0..3 {
                for (i, n) in names[..size].iter().enumerate() {
                    if round == 0 || (i + round) % 2 == 0 {
                        let v = format!("{n}-{round}");
                        h.append(n.clone(), http::HeaderValue::from_str(&v).unwrap());
                    }
                }
            }
            assert_eq!(h.keys_len(), size);
            for n in names.iter().chain(&absent) {
                // The comparison is with the scan wherever the map is small enough for it.
                assert_eq!(
                    matches!(all(&h, n), Values::Scan(..)),
                    size <= SCAN_MAX,
                    "{n} in a map of {size} names"
                );
                let scanned: Vec<_> = all(&h, n).collect();
                let mapped: Vec<_> = h.get_all(n).iter().collect();
                assert_eq!(scanned, mapped, "{n} in a map of {size} names");
                assert_eq!(first(&h, n), h.get(n), "{n} in a map of {size} names");
            }
        }
    }

    #[test]
    fn names_read_off_the_wire_are_lower_case_whether_shared_or_parsed() {
        for raw in [
            "X-Forwarded-For",
            "x-request-id",
            "TraceParent",
            "X-Custom-Thing",
            "Host",
            "host",
            "HOST",
            "Content-Length",
            "content-length",
            "CONTENT-length",
            "Cache-Control",
            "User-Agent",
            "server",
            "Date",
        ] {
            let n = name_from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(n.as_str(), raw.to_ascii_lowercase());
            assert_eq!(n, HeaderName::from_bytes(raw.as_bytes()).unwrap());
        }
        assert!(name_from_bytes(b"x-forwarded-fo r").is_err());
        assert!(name_from_bytes(b"").is_err());
    }

    #[test]
    fn every_field_the_strips_take_from_an_answer_needs_attention_in_any_case() {
        // An answer whose lines are passed on as they came skips the strips: every name they
        // would remove must keep such an answer in the header map.
        let mut names: Vec<String> = HOP_BY_HOP.iter().map(|n| n.as_str().to_owned()).collect();
        names.extend(OWN.iter().map(|n| n.as_str().to_owned()));
        names.extend(OWN.iter().map(|n| n.as_str().replace('-', "_")));
        names.extend(
            [
                "proxy-authenticate",
                "proxy-x",
                "x_forwarded_for",
                "x_real_ip",
            ]
            .map(String::from),
        );
        names.extend(["server", "x-kept", "content-type", "vary"].map(String::from));
        for name in &names {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_static("v"),
            );
            strip_hop_by_hop(&mut h);
            strip_own(&mut h);
            let stripped = h.is_empty();
            for spelt in [name.clone(), name.to_ascii_uppercase()] {
                if stripped {
                    assert!(needs_attention_in_answer(spelt.as_bytes()), "{spelt}");
                }
            }
        }
        // And the fields an answer ordinarily carries need none.
        for plain in [
            "Server",
            "Date",
            "Content-Type",
            "Content-Length",
            "Vary",
            "ETag",
        ] {
            assert!(!needs_attention_in_answer(plain.as_bytes()), "{plain}");
        }
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex_without_leading_zeros() {
        for n in [0usize, 1, 9, 10, 15, 16, 255, 7_777, 1 << 20, usize::MAX] {
            assert_eq!(chunk_size(n, &mut [0u8; 16]), format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn lengths_are_digits_only_and_fit_and_tokens_are_whole_items() {
        assert_eq!(length_digits(b"0"), Some(0));
        assert_eq!(length_digits(b"007"), Some(7));
        assert_eq!(
            length_digits(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b" 5",
            b"5 ",
            b"0x10",
            b"1e3",
            b"12345678901234567890",
        ] {
            assert_eq!(
                length_digits(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(lists_token(b"keep-alive, Close", b"close"));
        assert!(lists_token(b"gzip,trailers", b"trailers"));
        assert!(!lists_token(b"closed, x-close", b"close"));
        assert!(!lists_token(b"", b"close"));
    }

    #[test]
    fn responses_to_personal_data_are_kept_private() {
        for (sent, kept) in [
            (vec![], "private"),
            (vec!["public, max-age=600"], "private, max-age=600"),
            (
                vec!["max-age=60, s-maxage=600", "must-revalidate"],
                "private, max-age=60, must-revalidate",
            ),
            (vec!["Private"], "Private"),
            (vec!["no-store"], "no-store"),
            (
                vec!["private=\"set-cookie\", max-age=5"],
                "private, max-age=5",
            ),
            (
                vec!["no-cache=\"set-cookie, x-a\", public"],
                "private, no-cache=\"set-cookie, x-a\"",
            ),
        ] {
            let mut h = HeaderMap::new();
            for v in &sent {
                h.append(header::CACHE_CONTROL, v.parse().unwrap());
            }
            keep_private(&mut h);
            let got: Vec<&str> = h
                .get_all(header::CACHE_CONTROL)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, vec![kept], "{sent:?}");
        }
    }

    #[test]
    fn configured_fields_are_stripped_however_spelled() {
        let fields = [HeaderName::from_static("x-subject-id")];
        let headers = || {
            let mut h = HeaderMap::new();
            for n in [
                "x-subject-id",
                "x_subject_id",
                "x-subject_id",
                "x-subject-idx",
                "x-other",
            ] {
                h.insert(HeaderName::from_static(n), "42".parse().unwrap());
            }
            h
        };
        let kept = |h: &HeaderMap| {
            let mut k: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            k.sort_unstable();
            k.join(" ")
        };
        let mut h = headers();
        strip_underscored(&mut h, &fields);
        assert_eq!(kept(&h), "x-other x-subject-id x-subject-idx");
        let mut h = headers();
        strip_fields(&mut h, &fields);
        assert_eq!(kept(&h), "x-other x-subject-idx");
    }

    #[test]
    fn trailers_keep_only_fields_that_change_nothing_about_the_message() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-checksum", "abc"),
            ("server-timing", "db;dur=5"),
            ("content-length", "0"),
            ("host", "elsewhere"),
            ("authorization", "Basic eDp5"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "a"),
            ("forwarded", "for=10.0.0.1"),
            ("domicile-decision", "forged"),
            ("domicile-anything", "x"),
            ("x-real-ip", "10.0.0.1"),
            ("x-http-method-override", "DELETE"),
            ("proxy-authorization", "x"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("if-match", "*"),
            // Spelled with `_` for `-`, as CGI-style backends read them.
            ("x_forwarded_for", "10.0.0.1"),
            ("domicile_decision", "forged"),
            ("x_real_ip", "10.0.0.1"),
        ] {
            h.insert(HeaderName::from_static(n), v.parse().unwrap());
        }
        strip_from_trailers(&mut h);
        let mut kept: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["server-timing", "x-checksum"]);
    }

    #[test]
    fn connection_cannot_remove_end_to_end_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            "content-type, content-encoding".parse().unwrap(),
        );
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h.insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(h.contains_key(header::CONTENT_TYPE));
        assert!(h.contains_key(header::CONTENT_ENCODING));
        assert!(!h.contains_key(header::CONNECTION));
    }

    #[test]
    fn own_and_spoofable_headers_go_and_others_stay() {
        let mut h = HeaderMap::new();
        h.insert("domicile-decision", "forged".parse().unwrap());
        h.append("domicile-region", "a".parse().unwrap());
        h.append("domicile-region", "b".parse().unwrap());
        h.insert("domicile-other", "1".parse().unwrap());
        h.insert("x-real-ip", "10.0.0.1".parse().unwrap());
        h.insert("x-forwarded-port", "1".parse().unwrap());
        h.insert("x-forwarded-server", "evil".parse().unwrap());
        h.insert("client-ip", "10.0.0.1".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        h.insert("x_kept", "1".parse().unwrap());
        // `_` for `-`: the same field to many backends.
        for n in [
            "domicile_subject_jurisdiction",
            "x_forwarded_for",
            "x_real_ip",
            "domicile_anything",
        ] {
            h.insert(HeaderName::from_static(n), "forged".parse().unwrap());
        }
        strip_own(&mut h);
        assert!(!h.contains_key("domicile-decision"));
        assert!(!h.contains_key("domicile-region"));
        assert!(h.contains_key("domicile-other"));
        assert!(h.contains_key("x-real-ip"));
        assert!(!h.keys().any(|k| k.as_str().starts_with("domicile_")));
        assert!(!h.contains_key("x_forwarded_for") && !h.contains_key("x_real_ip"));
        assert!(h.contains_key("x_kept"));
        strip_spoofable(&mut h);
        assert!(!h.contains_key("x-real-ip"));
        assert!(!h.contains_key("x-forwarded-port"));
        assert!(!h.contains_key("x-forwarded-server"));
        assert!(!h.contains_key("client-ip"));
        assert_eq!(h.len(), 3, "{h:?}");
    }

    #[test]
    fn hop_by_hop_and_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, X-Secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("proxy-authorization", "x".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn the_trailer_field_is_declared_anew_for_the_trailers_passed_on() {
        assert_eq!(HOP_BY_HOP[TRAILER_AT], header::TRAILER);
        let mut h = HeaderMap::new();
        h.insert(
            header::TRAILER,
            "X-Checksum, content-length, Domicile-Decision"
                .parse()
                .unwrap(),
        );
        h.append(header::TRAILER, "server-timing,, bad name".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h[header::TRAILER], "x-checksum, server-timing");
        assert_eq!(h.len(), 1);
        // Nothing left to declare: no field at all.
        let mut h = HeaderMap::new();
        h.insert(header::TRAILER, "content-length, host".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }
}
