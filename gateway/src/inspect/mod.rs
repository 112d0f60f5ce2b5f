//! Phase 4, inspect: find personal data in the query string and the body, as category and
//! location, never the value. Bytes in, findings out.
//!
//! A body that cannot be fully inspected (over the buffer limit, encoded, of an unsupported type,
//! invalid or too deeply nested) is marked uninspectable: the decision treats it as personal data
//! of unknown category, which never crosses a border.

pub mod corpus;
pub mod detect;
pub mod json;
pub mod normalise;

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use domicile_policy::{Category, Country};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::body::Body;
use crate::context::RequestContext;
use crate::problem::Problem;
use crate::step::PhaseFuture;

/// Maximum JSON nesting inspected; deeper documents are uninspectable.
pub const MAX_JSON_DEPTH: usize = 128;

/// One place personal data was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub category: Category,
    /// A JSON pointer, `query:<key>`, `form:<key>` or `body`.
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
        }
    }

    /// The status a rejecting route answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Uninspectable::TooLarge | Uninspectable::TooManyFindings => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Uninspectable::ContentEncoding | Uninspectable::UnsupportedContentType => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Uninspectable::InvalidJson
            | Uninspectable::TooDeep
            | Uninspectable::InvalidUtf8
            | Uninspectable::AmbiguousHeaders => StatusCode::BAD_REQUEST,
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
    seen: rustc_hash::FxHashSet<(Category, String)>,
}

impl Inspection {
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

    fn push(&mut self, hit: detect::Hit, location: String) {
        if self.overflow {
            return;
        }
        if !self.seen.insert((hit.category, location.clone())) {
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
}

/// Inspects a query string (`a=b&c=d`, percent-decoded, `+` as space).
pub fn inspect_query(query: &str, out: &mut Inspection) {
    form_pairs(query.as_bytes(), "query", out);
}

/// Whether a key may appear in a location as it is. Keys can themselves be data (an account
/// number, a name, an address used as a map key); only short, plain identifiers without long
/// digit runs are kept, anything else is recorded as `*`.
pub fn safe_key(k: &str) -> bool {
    k.len() <= 64
        && !k.is_empty()
        && k.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'$' | b'[' | b']')
        })
        && k.bytes().filter(u8::is_ascii_digit).count() < 5
        && !detect::is_personal(k)
}

fn form_pairs(bytes: &[u8], prefix: &str, out: &mut Inspection) {
    for (k, v) in form_urlencoded::parse(bytes) {
        let location = if safe_key(&k) {
            format!("{prefix}:{k}")
        } else {
            format!("{prefix}:*")
        };
        detect::scan(&k, |h| out.push(h, location.clone()));
        detect::scan_field(Some(&k), detect::Value::Str(&v), &mut |h| {
            out.push(h, location.clone())
        });
    }
}

/// The body's media type, lower-cased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Inspects a complete body by its content type; returns the status.
pub fn inspect_body(headers: &HeaderMap, body: &[u8], out: &mut Inspection) -> InspectStatus {
    if body.is_empty() {
        return InspectStatus::Complete;
    }
    if headers.get_all(header::CONTENT_TYPE).iter().count() > 1
        || headers.get_all(header::CONTENT_ENCODING).iter().count() > 1
    {
        return InspectStatus::Uninspectable(Uninspectable::AmbiguousHeaders);
    }
    if let Some(enc) = headers.get(header::CONTENT_ENCODING)
        && enc
            .as_bytes()
            .split(|c| *c == b',')
            .any(|e| !e.trim_ascii().eq_ignore_ascii_case(b"identity"))
    {
        return InspectStatus::Uninspectable(Uninspectable::ContentEncoding);
    }
    let media = media_type(headers);
    let kind = match media.as_deref() {
        Some("application/json") => Kind::Json,
        Some(m) if m.starts_with("application/") && m.ends_with("+json") => Kind::Json,
        Some("application/x-www-form-urlencoded") => Kind::Form,
        Some("text/plain") => Kind::Text,
        // No declared type: inspect by content when it is JSON, else it is opaque.
        None if body
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            .is_some_and(|c| *c == b'{' || *c == b'[') =>
        {
            Kind::Json
        }
        _ => return InspectStatus::Uninspectable(Uninspectable::UnsupportedContentType),
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return InspectStatus::Uninspectable(Uninspectable::InvalidUtf8);
    };
    match kind {
        Kind::Json => match json::walk(text, MAX_JSON_DEPTH, |h, p| out.push(h, p)) {
            Ok(()) => InspectStatus::Complete,
            Err(json::JsonError::Invalid) => {
                InspectStatus::Uninspectable(Uninspectable::InvalidJson)
            }
            Err(json::JsonError::TooDeep) => InspectStatus::Uninspectable(Uninspectable::TooDeep),
        },
        Kind::Form => {
            form_pairs(body, "form", out);
            InspectStatus::Complete
        }
        Kind::Text => {
            // JSON sent as text is read as JSON too, as a lenient backend would (escapes
            // decoded); the raw text is scanned either way.
            let looks_json = text.trim_start().starts_with(['{', '[']);
            if looks_json {
                let _ = json::walk(text, MAX_JSON_DEPTH, |h, p| out.push(h, p));
            }
            detect::scan(text, |h| out.push(h, "body".to_owned()));
            InspectStatus::Complete
        }
    }
}

/// Scans trailer values (they arrive with the body and reach HTTP/2 backends).
pub fn inspect_trailers(trailers: &HeaderMap, out: &mut Inspection) {
    for (name, value) in trailers {
        if let Ok(v) = value.to_str() {
            detect::scan(v, |h| out.push(h, format!("trailer:{name}")));
        }
    }
}

enum Kind {
    Json,
    Form,
    Text,
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
        let inspects = req
            .extensions()
            .get::<RequestContext>()
            .and_then(|ctx| ctx.route.and_then(|n| ctx.snapshot.route(n)))
            .is_some_and(|r| r.inspect);
        if !inspects {
            // The body is not read, but the query is: a declared-clean route still gets no
            // personal data through its URL unnoticed.
            let upgrade = crate::route::is_upgrade(&req);
            let mut found = Inspection::default();
            if let Some(q) = req.uri().query() {
                inspect_query(q, &mut found);
            }
            if let Some(ctx) = req.extensions_mut().get_mut::<RequestContext>() {
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

async fn inspect_request(
    mut req: Request<Body>,
    budget: &Arc<Semaphore>,
) -> Result<Request<Body>, Response<Body>> {
    let Some(ctx) = req.extensions().get::<RequestContext>() else {
        return Err(crate::context::missing());
    };
    let Some(route) = ctx.route.and_then(|n| ctx.snapshot.route(n)) else {
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
    if let Some(q) = req.uri().query() {
        inspect_query(q, &mut inspection);
    }
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
    let buffer_permit = if needs_buffer {
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
                inspection.status = inspect_body(req.headers(), &data, &mut inspection);
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
                    },
                    None => Body::full(prefix),
                };
            }
        }
    }
    if inspection.overflow {
        inspection.status = InspectStatus::Uninspectable(Uninspectable::TooManyFindings);
    }
    if let Some(ctx) = req.extensions_mut().get_mut::<RequestContext>() {
        ctx.inspection = inspection;
        // Held until the buffered body has been forwarded or answered.
        ctx.buffer_permit = buffer_permit;
    }
    Ok(req)
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
        Body::Incoming(mut inc) => {
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
}
