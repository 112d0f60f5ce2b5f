//! Phase 3, route: host and path (and method) select a configured route, using one canonical
//! authority for both matching and what goes upstream.

use std::borrow::Cow;

use http::{Request, Response, StatusCode, header};

use crate::body::Body;
use crate::problem::Problem;
use crate::step::{Step, StepLayer, StepService};

#[derive(Debug, Clone, Copy, Default)]
pub struct RouteStep;

pub type RouteLayer = StepLayer<RouteStep>;
pub type Route<S> = StepService<RouteStep, S>;

/// Lower-case, no port, no trailing dot; borrowed when already lower-case.
pub fn canonical_host(h: &str) -> Cow<'_, str> {
    let h = split_port(h).0.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

/// A `Host` value's host, and the digits after its last `:` when there are only digits there
/// (perhaps none; an IPv6 literal ends with `]`).
fn split_port(h: &str) -> (&str, Option<&str>) {
    // Read from the end, a byte at a time: a port has at most a few digits.
    let b = h.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    match b.len().checked_sub(digits + 1) {
        Some(i) if b[i] == b':' => (&h[..i], Some(&h[i + 1..])),
        _ => (h, None),
    }
}

impl Step for RouteStep {
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        // Held apart from the request (a reference count, not a copy), so the canonical host
        // can borrow them while the request's target is rewritten.
        // One pass finds the first `Host` and whether another follows.
        let mut hosts = crate::headers::all(req.headers(), &header::HOST);
        let host_value = hosts.next().cloned();
        let more_hosts = hosts.next().is_some();
        let authority = req.uri().authority().cloned();
        let host_header = match host_value.as_ref().map(|v| v.to_str()) {
            Some(Err(_)) => return Err(bad(req, "the Host header is not valid text")),
            Some(Ok(h)) => Some(h),
            None => None,
        };
        // HTTP/2 names the host in `:authority`, with or without a `Host` beside it.
        let authority = authority.as_ref().map(|a| a.as_str());
        let host = match (
            host_header.map(canonical_host),
            authority.map(canonical_host),
        ) {
            (Some(h), Some(a)) if h != a => {
                return Err(bad(
                    req,
                    "the request target's authority and the Host header differ",
                ));
            }
            (Some(h), _) | (None, Some(h)) => Some(h),
            (None, None) => None,
        };
        if more_hosts {
            return Err(bad(req, "the request carries more than one Host header"));
        }
        if let Some(h) = &host
            && !valid_host(h)
        {
            return Err(bad(
                req,
                "the Host header is not a valid host name or address",
            ));
        }
        if !host_header.into_iter().chain(authority).all(valid_port) {
            return Err(bad(
                req,
                "the request's host names a port that is not a port number",
            ));
        }
        if let Some(why) =
            ambiguous_path(req.uri().path()).or_else(|| disguised_path(req.uri().path()))
        {
            // Routing, policy and the backend must see the same path: refuse what they
            // could read differently.
            return Err(bad_path(req, why));
        }
        // `%63ustomers` is `customers` to every backend that decodes it: routed, and sent on,
        // as that.
        if let Some(uri) = unreserved_decoded(req.uri()) {
            *req.uri_mut() = uri;
        }
        let Some(ctx) = crate::context::of(req) else {
            return Err(crate::context::missing());
        };
        // The TLS name the client connected to must be the host it asks for: no fronting one
        // region's name to reach another's route.
        if let (Some(sni), Some(h)) = (&ctx.conn.sni, &host)
            && canonical_host(sni) != *h
        {
            return Err(crate::problem::close_connection(
                Problem::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "misdirected_request",
                    "the request's host differs from the TLS server name of the connection",
                )
                .with_decision(&ctx.decision_id)
                .into_response(),
            ));
        }
        let found = ctx
            .snapshot
            .match_route(host.as_deref(), req.uri().path(), req.method());
        // A path a backend could route elsewhere than the gateway did, by dropping `;`
        // parameters (Tomcat, Jetty, Spring) or by not minding letter case (IIS, ASP.NET), is
        // refused: policy would be that of one route and the backend's handler another's.
        if let Some(n) = found
            && let Some(why) = read_otherwise(&ctx.snapshot, host.as_deref(), req, n)
        {
            return Err(bad_path(req, why));
        }
        let Some(n) = found else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no route matches this request",
            )
            .with_decision(&ctx.decision_id)
            .into_response());
        };
        let allows_upgrade = ctx.snapshot.route(n).is_some_and(|r| r.allow_upgrade);
        if is_upgrade(req) && !allows_upgrade {
            // The client may already be sending the upgraded protocol: close.
            return Err(crate::problem::close_connection(
                Problem::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "upgrade_refused",
                    "this route does not allow protocol upgrades",
                )
                .with_decision(&ctx.decision_id)
                .into_response(),
            ));
        }
        if let Some(ctx) = crate::context::of_mut(req) {
            ctx.route = Some(n);
        }
        Ok(())
    }
}

/// Whether the port of a `Host` value, when it has one, is a number from 1 to 65535 (an empty
/// port, `host:`, is refused as well: nothing needs it).
fn valid_port(h: &str) -> bool {
    match split_port(h).1 {
        // No port, or a host ending in other characters (which `valid_host` judges).
        None => true,
        Some(d) => {
            (1..=5).contains(&d.len()) && d.parse().is_ok_and(|p: u32| (1..=65_535).contains(&p))
        }
    }
}

/// A host name (letters, digits, `-`, `.`, `_`) or an IP literal (`[...]` for IPv6).
pub fn valid_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    h.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// Why a path could be read differently by the gateway and a backend: dot segments (also
/// with `;` parameters), encoded dots, slashes or backslashes, backslashes, empty segments,
/// encoded NUL. `None` when it is unambiguous.
pub fn ambiguous_path(path: &str) -> Option<&'static str> {
    // One pass over the bytes, without a lower-cased copy or a split: `%2e`, `%2f`, `%5c`,
    // `%00`, `%25` in either case; each segment's name (what precedes its first `;`) is
    // looked at as its `/` is reached. The reasons are given in the order checked.
    let b = path.as_bytes();
    let (mut encoded, mut backslash, mut empty, mut dot) = (false, false, false, false);
    let dots = |name: &[u8]| name == b"." || name == b"..";
    // Where the current segment starts, and where its name ends when a `;` came.
    let mut segment = 0;
    let mut name_end = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' => {
                encoded |= matches!(
                    b.get(i + 1..i + 3),
                    Some(
                        [b'2', b'e' | b'E' | b'f' | b'F' | b'5']
                            | [b'5', b'c' | b'C']
                            | [b'0', b'0']
                    )
                );
            }
            b'\\' => backslash = true,
            b'/' => {
                empty |= i > 0 && b[i - 1] == b'/';
                dot |= dots(&b[segment..name_end.unwrap_or(i)]);
                segment = i + 1;
                name_end = None;
            }
            b';' if name_end.is_none() => name_end = Some(i),
            _ => {}
        }
    }
    dot |= dots(&b[segment..name_end.unwrap_or(b.len())]);
    if encoded {
        Some("the path contains an encoded dot, slash, backslash, percent or NUL")
    } else if backslash {
        Some("the path contains a backslash")
    } else if empty {
        Some("the path contains an empty segment")
    } else if dot {
        Some("the path contains a dot segment")
    } else {
        None
    }
}

/// Why a path's non-ASCII, percent-encoded or not, could hide a dot, slash or backslash from the
/// gateway but not from a backend: an overlong UTF-8 form (`%c0%ae` is `.` to a lenient
/// decoder), or a character that Unicode compatibility normalisation (NFKC, which some
/// frameworks apply to paths) turns into one (`%ef%bc%8e`, the fullwidth full stop; the
/// fullwidth solidus; the one-dot leader). `None` when there is none, and at once for an
/// ASCII path without encoded non-ASCII.
pub fn disguised_path(path: &str) -> Option<&'static str> {
    use unicode_normalization::UnicodeNormalization;
    let b = path.as_bytes();
    let high = |i: usize| {
        b[i] == b'%'
            && b.get(i + 1)
                .is_some_and(|c| matches!(c, b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
    };
    // Raw non-ASCII bytes (which the request-target parsers let through) are read alike.
    if path.is_ascii() && !(0..b.len()).any(high) {
        return None;
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    // Overlong forms: the leads C0 and C1, E0 before 80-9F, F0 before 80-8F.
    let overlong = decoded.windows(2).any(|w| {
        matches!(
            w,
            [0xc0 | 0xc1, _] | [0xe0, 0x80..=0x9f] | [0xf0, 0x80..=0x8f]
        )
    }) || decoded.last().is_some_and(|&c| c == 0xc0 || c == 0xc1);
    if overlong {
        return Some("the path contains an overlong UTF-8 encoding, which may hide a dot or slash");
    }
    let text = String::from_utf8_lossy(&decoded);
    let separators = |s: &str| {
        s.bytes()
            .filter(|c| matches!(c, b'.' | b'/' | b'\\'))
            .count()
    };
    let normalised: String = text.nfkc().collect();
    (separators(&normalised) > separators(&text))
        .then_some("the path contains a character that normalises to a dot, slash or backslash")
}

/// Why route `n`, found for `req`'s path, is not the route a backend could find for it: the
/// route found for the path without `;` parameters, or for the path in any letter case, is
/// another. `None` when every reading routes alike (or finds no route, which is not a
/// backend's to serve).
fn read_otherwise(
    snap: &crate::state::Snapshot,
    host: Option<&str>,
    req: &Request<Body>,
    n: usize,
) -> Option<&'static str> {
    let path = req.uri().path();
    if path.contains(';') {
        let bare: String = path
            .split('/')
            .map(|seg| seg.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/");
        if snap
            .match_route(host, &bare, req.method())
            .is_some_and(|m| m != n)
        {
            return Some("the path routes elsewhere without its ';' parameters");
        }
    }
    if path.bytes().any(|c| c.is_ascii_uppercase())
        && snap
            .match_route_as(host, path, req.method(), true)
            .is_some_and(|m| m != n)
    {
        return Some("the path routes elsewhere in another letter case");
    }
    None
}

/// The target with percent-encoded unreserved characters (letters, digits, `-`, `_`, `~`;
/// RFC 3986 section 6.2.2.2) in its path decoded; `None` when there are none. An encoded dot
/// never gets here ([`ambiguous_path`]).
fn unreserved_decoded(uri: &http::Uri) -> Option<http::Uri> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let hex = |c: u8| (c as char).to_digit(16);
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'~') {
                out.push(c);
                changed = true;
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    if !changed {
        return None;
    }
    let mut target = String::from_utf8(out).ok()?;
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(target.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// An HTTP/1.1 `Upgrade` request (e.g. WebSocket).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    crate::headers::all(req.headers(), &header::UPGRADE)
        .any(|v| crate::headers::upgrade_beyond_h2c(v.as_bytes()))
}

/// The protocols a request asks to upgrade to, without `h2c`: an h2c upgrade is ignored, never
/// passed on (it would let a client speak HTTP/2 to the backend past the gateway, RFC 9113
/// section 3.1 deprecates it), and the request is served as the HTTP/1.1 request it also is.
/// `None` when nothing else is asked for.
pub fn upgrade_protocols<B>(req: &Request<B>) -> Option<http::HeaderValue> {
    if !is_upgrade(req) {
        return None;
    }
    let mut kept = Vec::new();
    for v in req.headers().get_all(header::UPGRADE) {
        for p in crate::headers::upgrade_tokens(v.as_bytes()) {
            if !kept.is_empty() {
                kept.extend_from_slice(b", ");
            }
            kept.extend_from_slice(p);
        }
    }
    http::HeaderValue::from_bytes(&kept).ok()
}

fn bad_path(req: &Request<Body>, detail: &str) -> Response<Body> {
    let mut p = Problem::new(StatusCode::BAD_REQUEST, "ambiguous_path", detail);
    if let Some(ctx) = crate::context::of(req) {
        p = p.with_decision(&ctx.decision_id);
    }
    crate::problem::close_connection(p.into_response())
}

fn bad(req: &Request<Body>, detail: &str) -> Response<Body> {
    let mut p = Problem::new(StatusCode::BAD_REQUEST, "bad_authority", detail);
    if let Some(ctx) = crate::context::of(req) {
        p = p.with_decision(&ctx.decision_id);
    }
    crate::problem::close_connection(p.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_paths_are_named() {
        for p in [
            "/public/../customers",
            "/public/%2e%2e/customers",
            "/public/%2E%2e/customers",
            "/public/..;/customers",
            "/a/./b",
            "/a//b",
            "/a\\b",
            "/a%2fb",
            "/a%5cb",
            "/a%252e%252e/b",
            "/a/..",
            "/a%2Fb",
            "/a%5Cb",
            "/a%00",
            "%2e",
        ] {
            assert!(ambiguous_path(p).is_some(), "{p}");
        }
        for p in [
            "/",
            "/customers/7",
            "/a.b/c..d/.well-known",
            "/a;v=1/b",
            "/a%2",
            "/a%20b%41",
            "/%",
        ] {
            assert_eq!(ambiguous_path(p), None, "{p}");
        }
        for p in [
            "/public/%c0%ae%c0%ae/customers",
            "/a%C0%AFb",
            "/a%e0%80%ae",
            "/a%f0%80%80%ae",
            "/public/%ef%bc%8e%ef%bc%8e/customers",
            "/a%EF%BC%8Fb",
            "/a%ef%bc%bcb",
            "/a%e2%80%a4%e2%80%a4/b",
            "/public/\u{ff0e}\u{ff0e}/customers",
            "/a\u{ff0f}b",
        ] {
            assert!(disguised_path(p).is_some(), "{p}");
        }
        for p in [
            "/customers/7",
            "/caf%C3%A9/men%C3%BC",
            "/%E6%97%A5%E6%9C%AC",
            "/latin1/%E9t%E9",
            "/a.b/%C3%A9.json",
            "/caf\u{e9}/\u{65e5}\u{672c}",
        ] {
            assert_eq!(disguised_path(p), None, "{p}");
        }
        for (h, ok) in [
            ("api.example.com", true),
            ("api.example.com:8443", true),
            ("[::1]:443", true),
            ("[::1]", true),
            ("api.example.com:", false),
            ("api.example.com:0", false),
            ("api.example.com:65536", false),
            // Not a port at all: the host name's own check refuses it.
            ("api.example.com:0443x", true),
            ("api.example.com:000080", false),
        ] {
            assert_eq!(valid_port(h), ok, "{h}");
        }
        assert!(valid_host("api.example.com"));
        assert!(valid_host("[::1]"));
        assert!(!valid_host("a\";for=8.8.8.8"));
        assert!(!valid_host("a b"));
    }

    /// The single pass answers exactly like the plain definition (lower-case the path, look
    /// for each encoded form, then backslashes, empty segments and dot segments), on every
    /// path of up to five characters over the bytes that matter.
    #[test]
    fn ambiguous_path_matches_its_definition() {
        fn reference(path: &str) -> Option<&'static str> {
            let lower = path.to_ascii_lowercase();
            if ["%2e", "%2f", "%5c", "%00", "%25"]
                .iter()
                .any(|bad| lower.contains(bad))
            {
                return Some("the path contains an encoded dot, slash, backslash, percent or NUL");
            }
            if path.contains('\\') {
                return Some("the path contains a backslash");
            }
            if path.contains("//") {
                return Some("the path contains an empty segment");
            }
            path.split('/')
                .any(|seg| matches!(seg.split(';').next(), Some("." | "..")))
                .then_some("the path contains a dot segment")
        }
        let alphabet = [
            '%', '2', '5', '0', 'e', 'E', 'c', 'F', '/', '\\', '.', ';', 'a',
        ];
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..5 {
            let mut next = Vec::new();
            for p in &paths {
                for c in alphabet {
                    let q = format!("{p}{c}");
                    assert_eq!(ambiguous_path(&q), reference(&q), "{q:?}");
                    checked += 1;
                    next.push(q);
                }
            }
            paths = next;
        }
        assert!(checked > 400_000);
    }

    #[test]
    fn hosts_are_canonical() {
        assert_eq!(canonical_host("API.Example.com.:8443"), "api.example.com");
        assert_eq!(canonical_host("[::1]"), "[::1]");
        assert_eq!(canonical_host("[::1]:80"), "[::1]");
    }
}
