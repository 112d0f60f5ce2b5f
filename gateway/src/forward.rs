//! The effect: send the request to a backend of the chosen region (streaming both ways, hop-by-hop
//! headers removed, forwarding headers appended), or answer with the problem decided earlier.
//! Runs only after the decision record is durable.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use tower::Service;

use crate::body::Body;
use crate::config::{Protocol, UpstreamHost};
use crate::context::{Action, RequestContext, Summary};
use crate::headers;
use crate::metrics as m;
use crate::problem::Problem;
use crate::trace::TraceWriter;
use crate::trace::record::{OUTCOME_SCHEMA, OutcomeLine};

/// The innermost service. With a writer, each forwarded request's outcome (upstream status
/// and latency) is appended to the trace after its decision record.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    outcomes: Option<Arc<TraceWriter>>,
}

impl Forward {
    pub fn new(outcomes: Option<TraceWriter>) -> Forward {
        Forward {
            outcomes: outcomes.map(Arc::new),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> BoxFuture {
        let outcomes = self.outcomes.clone();
        Box::pin(async move {
            let Some(mut ctx) = crate::context::take(&mut req) else {
                return Ok(crate::context::missing());
            };
            // Nothing else rides on the request now (an upgrade's handle would): its emptied
            // extension map carries the summary on the response, instead of a new one.
            let spare = if req.extensions().is_empty() {
                std::mem::take(req.extensions_mut())
            } else {
                http::Extensions::new()
            };
            // The backend's header lines, when they are passed on as they came.
            let mut raw = None;
            let mut res = match &ctx.action {
                // A body not read (a streamed route blocked on its head) may hold what would
                // read as a next request: the connection closes rather than read on.
                Some(Action::Respond(p)) if req.body().unread_from_client() => {
                    crate::problem::close_connection(p.clone().into_response())
                }
                Some(Action::Respond(p)) => p.clone().into_response(),
                Some(Action::Forward { region }) => {
                    // Planned in place and borrowed while it is sent: the future holds the
                    // prepared request once, and nothing larger is moved into it.
                    let mut planned = plan(req, &ctx, region);
                    let (res, upstream) = match planned {
                        Err(ref mut res) => (std::mem::take(res), None),
                        Ok(ref mut p) => {
                            // `Err(())`: no answer in time.
                            let result = match &mut p.how {
                                // The lean client keeps the response timeout itself, from the
                                // end of the request's body rather than its start, so that a
                                // long upload is not counted against the backend.
                                How::Lean { pool, prepared } => {
                                    let res = pool.send_lean(prepared, p.sent).await;
                                    raw = prepared.take_raw();
                                    match res {
                                        Err(e) if e.is_timeout() => Err(()),
                                        res => Ok(res),
                                    }
                                }
                                How::General(fut) => fut.as_mut().await.map_err(|_| ()),
                            };
                            // The upstream histogram and the outcome line share this one
                            // reading of the clock.
                            let sent = p.sent;
                            let elapsed = sent.elapsed();
                            m::observe_upstream(region, elapsed.as_secs_f64());
                            // The plan is taken now that the send no longer borrows it
                            // (it is the `Ok` matched above).
                            let res = match planned {
                                Ok(p) => finish(p, result, &ctx, region),
                                Err(res) => res,
                            };
                            (res, Some((sent, elapsed)))
                        }
                    };
                    if let Some(w) = &outcomes {
                        // A request never sent (no backend up, shed) is answered now.
                        let (sent, latency) =
                            upstream.unwrap_or_else(|| (Instant::now(), std::time::Duration::ZERO));
                        record_outcome(w, &ctx, region, &res, sent, latency);
                    }
                    res
                }
                None => crate::context::missing(),
            };
            let h = res.headers_mut();
            // The answer to a request that carried personal data may carry it too: no shared
            // cache in front of the gateway may serve it to another client.
            if ctx.inspection.personal() {
                // Its lines are not asked to be kept as they came (`raw_response` below);
                // were any, they would join the map first.
                if let Some(raw) = raw.take() {
                    raw.into_map(h);
                }
                headers::keep_private(h);
            }
            // The gateway's fields: written after the backend's lines when those are kept as
            // they came (the header map then stays empty), else into the map.
            let mut put = |name: HeaderName, value: &HeaderValue| match raw.as_mut() {
                Some(r) => r.add(&name, value),
                None => {
                    h.insert(name, value.clone());
                }
            };
            put(headers::DECISION, &ctx.decision_header);
            if let Some(v) = ctx
                .destination
                .as_ref()
                .and_then(|r| ctx.snapshot.pools.get(r))
                .and_then(|p| p.header.as_ref())
            {
                put(headers::REGION, v);
            }
            if !ctx.enforced
                && let Some(d) = &ctx.decision
            {
                // Dry run: say what enforcement would have done.
                put(
                    headers::VERDICT,
                    &HeaderValue::from_static(d.verdict.as_str()),
                );
            }
            // The context's last use: the summary takes what it needs of it rather than copies.
            let summary = Summary {
                route: ctx
                    .route
                    .and_then(|n| ctx.snapshot.route(n))
                    .map(|r| r.id.clone()),
                verdict: ctx.decision.as_ref().map_or("none", |d| d.verdict.as_str()),
                decision_id: std::mem::replace(
                    &mut ctx.decision_header,
                    HeaderValue::from_static(""),
                ),
                subject: ctx.resolution.as_ref().and_then(|r| r.primary()),
                region: ctx.destination.take(),
                raw,
            };
            let ext = res.extensions_mut();
            ext.extend(spare);
            ext.insert(summary);
            Ok(res)
        })
    }
}

/// Appends the outcome line for a forwarded request (not awaited: the effect already happened).
fn record_outcome(
    w: &TraceWriter,
    ctx: &RequestContext,
    region: &str,
    res: &Response<Body>,
    sent: Instant,
    latency: std::time::Duration,
) {
    // When the answer came, on the wall clock: the request's arrival plus the monotonic time
    // since then (no further clock reading).
    let since_arrival = (sent + latency).saturating_duration_since(ctx.started);
    let answered =
        ctx.received_micros + i64::try_from(since_arrival.as_micros()).unwrap_or(i64::MAX / 2);
    let error = res.extensions().get::<UpstreamError>().map(|e| e.0);
    let line = OutcomeLine {
        schema: OUTCOME_SCHEMA,
        decision_id: &ctx.decision_id,
        time: crate::clock::rfc3339_micros(answered),
        region,
        upstream_status: error.is_none().then(|| res.status().as_u16()),
        error,
        latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    };
    if !w.append_detached_with(crate::trace::record_region(ctx), |out| line.write_json(out)) {
        metrics::counter!(m::TRACE_OUTCOMES_DROPPED).increment(1);
    }
}

/// Copies an upgraded connection both ways until either side closes or nothing has moved for
/// the idle timeout (every byte of the tunnel passes the client side, so that side's clock
/// sees all activity).
async fn tunnel(
    client: hyper::upgrade::Upgraded,
    upstream: hyper::upgrade::Upgraded,
    idle: std::time::Duration,
) {
    let mut client = crate::framing::Sniff::off(
        hyper_util::rt::TokioIo::new(client),
        Arc::new(crate::framing::FramingLog::default()),
    );
    let activity = client.activity();
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let deadline = tokio::time::Instant::from_std(activity.last() + idle);
        tokio::select! {
            _ = &mut copy => return,
            _ = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= std::time::Instant::now() {
                    return;
                }
            }
        }
    }
}

/// Marks a response the gateway made because the backend did not answer.
#[derive(Debug, Clone, Copy)]
struct UpstreamError(&'static str);

/// Writes the subject's jurisdictions as the `domicile-subject-jurisdiction` value: comma
/// separated, `unknown` when there are none.
fn header_list(ctx: &RequestContext, out: &mut Vec<u8>) {
    let start = out.len();
    for j in ctx.resolution.iter().flat_map(|r| r.jurisdictions.iter()) {
        if out.len() > start {
            out.push(b',');
        }
        out.extend_from_slice(j.as_str().as_bytes());
    }
    if out.len() == start {
        out.extend_from_slice(b"unknown");
    }
}

/// Appends `s` as a quoted-string (RFC 9110 section 5.6.4): `\\` and `"` escaped. A host
/// never holds either, so the bytes are usually copied in one run.
fn push_quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    while let Some(at) = memchr::memchr2(b'\\', b'"', rest) {
        out.extend_from_slice(&rest[..at]);
        out.push(b'\\');
        out.push(rest[at]);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// How many fields [`ADDED`] holds.
const FIELDS: usize = 6;
/// The fields the gateway writes on a forwarded request in place of any of the same names
/// it carries, in this order.
static ADDED: [HeaderName; FIELDS] = [
    headers::X_FORWARDED_FOR,
    header::FORWARDED,
    headers::X_FORWARDED_PROTO,
    headers::X_FORWARDED_HOST,
    headers::DECISION,
    headers::SUBJECT_JURISDICTION,
];

/// The [`ADDED`] fields of one request and the `Host` it is sent with. They are written once
/// as `name: value` lines: the lean client copies the lines into the request's head, and the
/// general client gets them as header values.
struct Added {
    lines: Vec<u8>,
    /// Where each field's value lies in `lines`.
    values: [std::ops::Range<usize>; FIELDS],
    host: Option<HeaderValue>,
}

impl Added {
    fn new(
        h: &http::HeaderMap,
        ctx: &RequestContext,
        peer_trusted: bool,
        original_host: Option<&HeaderValue>,
        host: Option<HeaderValue>,
    ) -> Added {
        let mut lines = Vec::with_capacity(256);
        let mut values: [std::ops::Range<usize>; FIELDS] = Default::default();
        let mut field = |lines: &mut Vec<u8>, at: usize, write: &mut dyn FnMut(&mut Vec<u8>)| {
            lines.extend_from_slice(ADDED[at].as_str().as_bytes());
            lines.extend_from_slice(b": ");
            let start = lines.len();
            write(lines);
            values[at] = start..lines.len();
            lines.extend_from_slice(b"\r\n");
        };
        let peer = ctx.conn.peer_ip.as_bytes();
        // Only a trusted proxy's chain is passed on (all its header lines, in order); anyone
        // else's is replaced by the peer.
        field(&mut lines, 0, &mut |l| {
            if peer_trusted {
                for v in headers::all(h, &headers::X_FORWARDED_FOR) {
                    l.extend_from_slice(v.as_bytes());
                    l.extend_from_slice(b", ");
                }
            }
            l.extend_from_slice(peer);
        });
        let proto = if ctx.conn.tls { "https" } else { "http" };
        let host_str = original_host.and_then(|v| v.to_str().ok()).unwrap_or("");
        field(&mut lines, 1, &mut |l| {
            if peer_trusted {
                // Every line of the chain, in order, as the resolve step read it.
                for prev in headers::all(h, &header::FORWARDED) {
                    l.extend_from_slice(prev.as_bytes());
                    l.extend_from_slice(b", ");
                }
            }
            l.extend_from_slice(b"for=");
            if ctx.conn.peer.is_ipv6() {
                l.extend_from_slice(b"\"[");
                l.extend_from_slice(peer);
                l.extend_from_slice(b"]\"");
            } else {
                l.extend_from_slice(peer);
            }
            l.extend_from_slice(b";proto=");
            l.extend_from_slice(proto.as_bytes());
            l.extend_from_slice(b";host=");
            push_quoted(l, host_str.as_bytes());
        });
        field(&mut lines, 2, &mut |l| {
            l.extend_from_slice(proto.as_bytes())
        });
        field(&mut lines, 3, &mut |l| {
            l.extend_from_slice(original_host.map_or(&b""[..], |v| v.as_bytes()))
        });
        field(&mut lines, 4, &mut |l| {
            l.extend_from_slice(ctx.decision_header.as_bytes())
        });
        field(&mut lines, 5, &mut |l| header_list(ctx, l));
        // Every piece is a header value already or ASCII the gateway wrote: no line break or
        // other control byte can be in a value. (A trusted chain's bytes go on as they came,
        // a line that is not visible ASCII included, which the resolve step read as a
        // malformed chain.)
        debug_assert!(
            values
                .iter()
                .all(|r| HeaderValue::from_bytes(&lines[r.clone()]).is_ok())
        );
        Added {
            lines,
            values,
            host,
        }
    }

    /// The fields for the lean client's head; `raw_response` as in [`crate::lean::Extra`].
    fn extra(&self, raw_response: bool) -> crate::lean::Extra<'_> {
        crate::lean::Extra {
            host: self.host.as_ref(),
            lines: &self.lines,
            replaces: &ADDED,
            raw_response,
        }
    }

    /// The fields as header values, replacing any of the same names in `h`.
    fn into_map(self, h: &mut http::HeaderMap) {
        for (name, r) in ADDED.iter().zip(self.values) {
            if let Ok(v) = HeaderValue::from_bytes(&self.lines[r]) {
                h.insert(name.clone(), v);
            }
        }
        if let Some(v) = self.host {
            h.insert(header::HOST, v);
        }
    }
}

/// How a request goes to its backend, settled before anything is sent.
// The large variant is the common one, held in place; the other is a box already.
#[allow(clippy::large_enum_variant)]
enum How<'a> {
    /// Through the lean HTTP/1.1 pool.
    Lean {
        pool: &'a crate::pool::H1Pool,
        prepared: crate::lean::Prepared,
    },
    /// Through the general client: its future is large, so it is boxed, and made only here.
    General(GeneralSend<'a>),
}

type GeneralSend<'a> = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Result<Response<crate::body::Upstream>, crate::pool::SendError>,
                    tokio::time::error::Elapsed,
                >,
            > + Send
            + 'a,
    >,
>;

/// A request ready to go to a backend of its region.
struct Planned<'a> {
    how: How<'a>,
    backend: &'a crate::upstream::Backend,
    /// The request's place under the backend's concurrency limit, held until the response
    /// body has been passed on.
    slot: crate::upstream::InFlight,
    /// The client's side of an allowed protocol upgrade.
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// When the request began to be sent.
    sent: Instant,
}

/// Picks the backend of `region`, builds its target and header fields and prepares the
/// request for the client that will send it; `Err` is the answer when it cannot go.
// The error is the answer itself, produced at most once per request.
#[allow(clippy::result_large_err)]
fn plan<'a>(
    mut req: Request<Body>,
    ctx: &'a RequestContext,
    region: &Arc<str>,
) -> Result<Planned<'a>, Response<Body>> {
    let problem = |status, code: &str, detail: &str| {
        Problem::new(status, code, detail)
            .with_decision(&ctx.decision_id)
            .into_response()
    };
    let pick = ctx
        .snapshot
        .pools
        .get(region)
        .map_or(crate::upstream::Pick::Down, |p| p.pick_slot());
    let (backend, slot) = match pick {
        crate::upstream::Pick::Backend(b, slot) => (b, slot),
        crate::upstream::Pick::Saturated => {
            // Load shedding: every live backend of the region is at its concurrency limit.
            m::count_shed(region);
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "every backend of the region is at its concurrency limit; nothing was forwarded",
            )
            .with_reason("backend_saturated")
            .with_decision(&ctx.decision_id);
            p.retry_after = Some(1);
            let mut r = p.into_response();
            r.extensions_mut().insert(UpstreamError("upstream_shed"));
            return Err(r);
        }
        crate::upstream::Pick::Down => {
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "region_unavailable",
                "the region has no backend available; nothing was forwarded",
            ));
        }
    };
    let route = ctx.route.and_then(|n| ctx.snapshot.route(n));
    // Target: the backend's path prefix, then the request's path; origin form for the lean
    // HTTP/1 pool, the backend's scheme and authority in front for the general client.
    let base_path = backend.url.path().trim_end_matches('/');
    let pq = match req.uri().path_and_query() {
        Some(pq) if base_path.is_empty() => Ok(pq.clone()),
        Some(pq) => http::uri::PathAndQuery::try_from(format!("{base_path}{pq}")),
        None if base_path.is_empty() => Ok(http::uri::PathAndQuery::from_static("/")),
        None => http::uri::PathAndQuery::try_from(format!("{base_path}/")),
    };
    let uri = pq.map_err(http::Error::from).and_then(|pq| {
        if backend.uses_pool() {
            Ok(Uri::from(pq))
        } else {
            Uri::builder()
                .scheme(backend.url.scheme_str().unwrap_or("http"))
                .authority(backend.url.authority().map_or("", |a| a.as_str()))
                .path_and_query(pq)
                .build()
        }
    });
    let Ok(uri) = uri else {
        return Err(problem(
            StatusCode::BAD_GATEWAY,
            "bad_upstream_uri",
            "the upstream address could not be built",
        ));
    };
    let original_host = headers::first(req.headers(), &header::HOST)
        .cloned()
        .or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
    let is_h2_backend = backend.protocol == Protocol::Http2;
    let upgrade_value = crate::route::upgrade_protocols(&req);
    let upgrade = upgrade_value.is_some();
    if upgrade && is_h2_backend {
        return Err(problem(
            StatusCode::BAD_GATEWAY,
            "upgrade_unsupported",
            "protocol upgrades cannot be forwarded to an HTTP/2 backend",
        ));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    *req.uri_mut() = uri;
    *req.version_mut() = if is_h2_backend {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let peer_trusted = ctx.snapshot.trusted.is_trusted(ctx.conn.peer.ip());
    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    if let Some(v) = upgrade_value {
        // An allowed upgrade keeps the two headers that ask for it.
        h.insert(header::UPGRADE, v);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if !peer_trusted {
        headers::strip_spoofable(h);
    }
    // An HTTP/1.1 request always carries a Host: the client's when preserved and sent,
    // else the backend's.
    let host = match route.map(|r| &r.upstream_host) {
        Some(UpstreamHost::Preserve) => original_host
            .clone()
            .or_else(|| backend.host_header.clone()),
        Some(UpstreamHost::Backend) | None => backend.host_header.clone(),
    };
    let added = Added::new(h, ctx, peer_trusted, original_host.as_ref(), host);
    let sent = Instant::now();
    // The lean server writes the backend's lines as they came when the answer is passed on
    // unchanged; one to a request with personal data gets `Cache-Control` rewritten.
    let raw_response = ctx.lean_server && !ctx.inspection.personal();
    let how = match backend.prepare_lean(req, &added.extra(raw_response)) {
        Ok((pool, prepared)) => How::Lean { pool, prepared },
        Err(mut req) => {
            let h = req.headers_mut();
            added.into_map(h);
            if is_h2_backend {
                // HTTP/2 carries the authority in :authority; a Host header is not sent.
                h.remove(header::HOST);
            }
            How::General(Box::pin(tokio::time::timeout(
                backend.response_timeout,
                backend.send(req),
            )))
        }
    };
    Ok(Planned {
        how,
        backend,
        slot,
        client_upgrade,
        sent,
    })
}

/// The response to a sent request: the backend's, passed on, or the problem that stands for
/// it.
fn finish(
    p: Planned<'_>,
    result: Result<Result<Response<crate::body::Upstream>, crate::pool::SendError>, ()>,
    ctx: &RequestContext,
    region: &str,
) -> Response<Body> {
    let problem = |status, code: &str, detail: &str, error: &'static str| {
        let mut r = Problem::new(status, code, detail)
            .with_decision(&ctx.decision_id)
            .into_response();
        r.extensions_mut().insert(UpstreamError(error));
        r
    };
    match result {
        Ok(Ok(mut res)) => {
            let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client_upgrade)) = (switching, p.client_upgrade) {
                let upstream_upgrade = hyper::upgrade::on(&mut res);
                let decision_id = ctx.decision_id.clone();
                let idle = ctx.snapshot.config.server.timeouts.idle;
                tokio::spawn(async move {
                    match tokio::join!(client_upgrade, upstream_upgrade) {
                        (Ok(client), Ok(upstream)) => tunnel(client, upstream, idle).await,
                        _ => tracing::debug!(decision_id, "upgrade did not complete"),
                    }
                });
            }
            let (mut parts, body) = res.into_parts();
            let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
            headers::strip_hop_by_hop(&mut parts.headers);
            headers::strip_own(&mut parts.headers);
            if switching && let Some(v) = upgrade_value {
                parts.headers.insert(header::UPGRADE, v);
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            Response::from_parts(parts, Body::held(body, p.slot, p.backend.response_timeout))
        }
        Ok(Err(e)) if e.is_request_body() => {
            // The client's body failed on its way: the backend is not at fault, and what it
            // received of the request is incomplete.
            tracing::info!(decision_id = %ctx.decision_id, region, error = %e, "request body failed while forwarded");
            problem(
                StatusCode::BAD_REQUEST,
                "request_body_failed",
                "the request body could not be read to its end; the backend got an incomplete request and its answer is not passed on",
                "request_body_failed",
            )
        }
        Ok(Err(e)) => {
            if e.is_connect() {
                // Passive health: skip this backend for a while.
                p.backend.mark_failed();
            }
            tracing::warn!(decision_id = %ctx.decision_id, region, error = %e, "upstream request failed");
            problem(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the backend could not be reached or answered badly",
                "upstream_failed",
            )
        }
        Err(()) => problem(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the backend did not answer in time",
            "upstream_timeout",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_string_escapes_backslashes_and_quotes_only() {
        let quoted = |s: &str| {
            let mut out = Vec::new();
            push_quoted(&mut out, s.as_bytes());
            String::from_utf8(out).unwrap()
        };
        assert_eq!(quoted("api.example:8443"), r#""api.example:8443""#);
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(quoted(r#"a"b\c""#), r#""a\"b\\c\"""#);
        assert_eq!(quoted(r#"\"#), r#""\\""#);
    }
}
