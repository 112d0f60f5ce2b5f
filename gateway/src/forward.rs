//! The effect: send the request to a backend of the chosen region (streaming both ways, hop-by-hop
//! headers removed, forwarding headers appended), or answer with the problem decided earlier.
//! Runs only after the decision record is durable.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{self, HeaderValue};
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
    outcomes: Option<TraceWriter>,
}

impl Forward {
    pub fn new(outcomes: Option<TraceWriter>) -> Forward {
        Forward { outcomes }
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
            let Some(ctx) = req.extensions_mut().remove::<RequestContext>() else {
                return Ok(crate::context::missing());
            };
            let summary = Summary {
                route: ctx
                    .route
                    .and_then(|n| ctx.snapshot.route(n))
                    .map(|r| r.id.clone()),
                verdict: ctx.decision.as_ref().map_or("none", |d| d.verdict.as_str()),
                decision_id: ctx.decision_header.clone(),
                subject: ctx.resolution.as_ref().and_then(|r| r.primary()),
                region: ctx.destination.clone(),
            };
            let mut res = match ctx.action.clone() {
                // A body not read (a streamed route blocked on its head) may hold what would
                // read as a next request: the connection closes rather than read on.
                Some(Action::Respond(p)) if req.body().unread_from_client() => {
                    crate::problem::close_connection(p.into_response())
                }
                Some(Action::Respond(p)) => p.into_response(),
                Some(Action::Forward { region }) => {
                    let mut upstream = None;
                    let res = forward(req, &ctx, &region, &mut upstream).await;
                    if let Some(w) = &outcomes {
                        // A request never sent (no backend up, shed) is answered now.
                        let (sent, latency) =
                            upstream.unwrap_or_else(|| (Instant::now(), std::time::Duration::ZERO));
                        record_outcome(w, &ctx, &region, &res, sent, latency);
                    }
                    res
                }
                None => crate::context::missing(),
            };
            let h = res.headers_mut();
            // The answer to a request that carried personal data may carry it too: no shared
            // cache in front of the gateway may serve it to another client.
            if ctx.inspection.personal() {
                headers::keep_private(h);
            }
            h.insert(headers::DECISION, ctx.decision_header.clone());
            if let Some(Ok(v)) = ctx.destination.as_deref().map(HeaderValue::from_str) {
                h.insert(headers::REGION, v);
            }
            if !ctx.enforced
                && let Some(d) = &ctx.decision
            {
                // Dry run: say what enforcement would have done.
                h.insert(
                    headers::VERDICT,
                    HeaderValue::from_static(d.verdict.as_str()),
                );
            }
            res.extensions_mut().insert(summary);
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

fn header_list(ctx: &RequestContext) -> String {
    let mut out = String::with_capacity(16);
    for j in ctx.resolution.iter().flat_map(|r| r.jurisdictions.iter()) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(j.as_str());
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// Sends the request to a backend of `region`. When it was sent, `upstream` gets the instant
/// and the time from then to the backend's response head (the upstream histogram and the
/// outcome line share that one reading of the clock).
async fn forward(
    mut req: Request<Body>,
    ctx: &RequestContext,
    region: &Arc<str>,
    upstream: &mut Option<(Instant, std::time::Duration)>,
) -> Response<Body> {
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
    // Held until the backend's response body has been passed on.
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
            return r;
        }
        crate::upstream::Pick::Down => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "region_unavailable",
                "the region has no backend available; nothing was forwarded",
            );
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
        return problem(
            StatusCode::BAD_GATEWAY,
            "bad_upstream_uri",
            "the upstream address could not be built",
        );
    };
    let original_host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let is_h2_backend = backend.protocol == Protocol::Http2;
    let upgrade_value = crate::route::upgrade_protocols(&req);
    let upgrade = upgrade_value.is_some();
    if upgrade && is_h2_backend {
        return problem(
            StatusCode::BAD_GATEWAY,
            "upgrade_unsupported",
            "protocol upgrades cannot be forwarded to an HTTP/2 backend",
        );
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
    let peer = &ctx.conn.peer_ip;
    if !peer_trusted {
        headers::strip_spoofable(h);
    }
    // Only a trusted proxy's chain is passed on (all its header lines, in order); anyone
    // else's is replaced by the peer.
    let mut xff = Vec::with_capacity(64);
    if peer_trusted {
        for v in h.get_all(headers::X_FORWARDED_FOR) {
            xff.extend_from_slice(v.as_bytes());
            xff.extend_from_slice(b", ");
        }
    }
    xff.extend_from_slice(peer.as_bytes());
    let proto = if ctx.conn.tls { "https" } else { "http" };
    let host_str = original_host
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut forwarded = Vec::with_capacity(64);
    if peer_trusted {
        // Every line of the chain, in order, as the resolve step read it.
        for prev in h.get_all(header::FORWARDED) {
            forwarded.extend_from_slice(prev.as_bytes());
            forwarded.extend_from_slice(b", ");
        }
    }
    forwarded.extend_from_slice(b"for=");
    if ctx.conn.peer.is_ipv6() {
        forwarded.extend_from_slice(b"\"[");
        forwarded.extend_from_slice(peer.as_bytes());
        forwarded.extend_from_slice(b"]\"");
    } else {
        forwarded.extend_from_slice(peer.as_bytes());
    }
    forwarded.extend_from_slice(b";proto=");
    forwarded.extend_from_slice(proto.as_bytes());
    forwarded.extend_from_slice(b";host=\"");
    for &c in host_str.as_bytes() {
        if matches!(c, b'\\' | b'"') {
            forwarded.push(b'\\');
        }
        forwarded.push(c);
    }
    forwarded.push(b'"');
    // A trusted chain's bytes go on as they came (a line that is not visible ASCII included,
    // which the resolve step read as a malformed chain).
    // The buffers become the values as they are, without a copy.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
        h.insert(headers::X_FORWARDED_FOR, v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded)) {
        h.insert(header::FORWARDED, v);
    }
    h.insert(headers::X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match &original_host {
        Some(v) => h.insert(headers::X_FORWARDED_HOST, v.clone()),
        None => h.insert(headers::X_FORWARDED_HOST, HeaderValue::from_static("")),
    };
    h.insert(headers::DECISION, ctx.decision_header.clone());
    if let Ok(v) = HeaderValue::try_from(header_list(ctx)) {
        h.insert(headers::SUBJECT_JURISDICTION, v);
    }
    let backend_host = || {
        backend
            .url
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    };
    // An HTTP/1.1 request always carries a Host: the client's when preserved and sent,
    // else the backend's.
    let host = match route.map(|r| &r.upstream_host) {
        Some(UpstreamHost::Preserve) => original_host.or_else(backend_host),
        Some(UpstreamHost::Backend) | None => backend_host(),
    };
    if let Some(v) = host {
        h.insert(header::HOST, v);
    }
    if is_h2_backend {
        // HTTP/2 carries the authority in :authority; a Host header is not sent.
        h.remove(header::HOST);
    }
    let sent = Instant::now();
    let wait = backend.response_timeout;
    // `Err(())`: no answer in time.
    let result = match backend.prepare_lean(req) {
        // The lean client's future is small: awaited in place, with no allocation. It keeps
        // the response timeout itself, from the end of the request's body rather than its
        // start, so that a long upload is not counted against the backend.
        Ok((pool, mut prepared)) => match pool.send_lean(&mut prepared).await {
            Err(e) if e.is_timeout() => Err(()),
            res => Ok(res),
        },
        // Boxed: the general client's future is large, and every future around this one is
        // moved.
        Err(req) => tokio::time::timeout(wait, Box::pin(backend.send(req)))
            .await
            .map_err(|_| ()),
    };
    let elapsed = sent.elapsed();
    *upstream = Some((sent, elapsed));
    m::observe_upstream(region, elapsed.as_secs_f64());
    match result {
        Ok(Ok(mut res)) => {
            let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
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
            Response::from_parts(parts, Body::held(body, slot, wait))
        }
        Ok(Err(e)) if e.is_request_body() => {
            // The client's body failed on its way: the backend is not at fault, and what it
            // received of the request is incomplete.
            tracing::info!(decision_id = %ctx.decision_id, region = &**region, error = %e, "request body failed while forwarded");
            let mut r = problem(
                StatusCode::BAD_REQUEST,
                "request_body_failed",
                "the request body could not be read to its end; the backend got an incomplete request and its answer is not passed on",
            );
            r.extensions_mut()
                .insert(UpstreamError("request_body_failed"));
            r
        }
        Ok(Err(e)) => {
            if e.is_connect() {
                // Passive health: skip this backend for a while.
                backend.mark_failed();
            }
            tracing::warn!(decision_id = %ctx.decision_id, region = &**region, error = %e, "upstream request failed");
            let mut r = problem(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the backend could not be reached or answered badly",
            );
            r.extensions_mut().insert(UpstreamError("upstream_failed"));
            r
        }
        Err(()) => {
            let mut r = problem(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the backend did not answer in time",
            );
            r.extensions_mut().insert(UpstreamError("upstream_timeout"));
            r
        }
    }
}
