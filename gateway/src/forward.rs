//! The effect: send the request to a backend of the chosen region (streaming both ways, hop-by-hop
//! headers removed, forwarding headers appended), or answer with the problem decided earlier.
//! Runs only after the decision record is durable.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
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

/// The innermost service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forward;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> BoxFuture {
        Box::pin(async move {
            let Some(ctx) = req.extensions_mut().remove::<RequestContext>() else {
                return Ok(crate::context::missing());
            };
            let summary = Summary {
                route: ctx
                    .route
                    .and_then(|n| ctx.snapshot.route(n))
                    .map_or_else(|| "none".into(), |r| r.id.clone()),
                verdict: ctx.decision.as_ref().map_or("none", |d| d.verdict.as_str()),
                decision_id: ctx.decision_id.clone(),
                subject: ctx
                    .resolution
                    .as_ref()
                    .and_then(|r| r.primary())
                    .map(|c| c.to_string()),
                region: ctx.destination.clone(),
            };
            let mut res = match ctx.action.clone() {
                Some(Action::Respond(p)) => p.into_response(),
                Some(Action::Forward { region }) => forward(req, &ctx, &region).await,
                None => crate::context::missing(),
            };
            let h = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&ctx.decision_id) {
                h.insert(headers::DECISION, v);
            }
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

fn header_list(ctx: &RequestContext) -> String {
    let list: Vec<String> = ctx
        .resolution
        .as_ref()
        .map(|r| r.jurisdictions.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if list.is_empty() {
        "unknown".into()
    } else {
        list.join(",")
    }
}

async fn forward(mut req: Request<Body>, ctx: &RequestContext, region: &str) -> Response<Body> {
    let problem = |status, code: &str, detail: &str| {
        Problem::new(status, code, detail)
            .with_decision(&ctx.decision_id)
            .into_response()
    };
    let Some((_, backend)) = ctx.snapshot.pools.get(region).and_then(|p| p.pick()) else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "region_unavailable",
            "the region has no backend available; nothing was forwarded",
        );
    };
    let route = ctx.route.and_then(|n| ctx.snapshot.route(n));
    // Target: the backend's scheme and authority, its path prefix, then the request's path.
    let base_path = backend.url.path().trim_end_matches('/');
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme(backend.url.scheme_str().unwrap_or("http"))
        .authority(backend.url.authority().map_or("", |a| a.as_str()))
        .path_and_query(format!("{base_path}{pq}"))
        .build();
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
    let is_h2_backend = ctx
        .snapshot
        .config
        .regions
        .iter()
        .find(|r| &*r.id == region)
        .and_then(|r| r.backends.iter().find(|b| b.url == backend.url))
        .is_some_and(|b| b.protocol == Protocol::Http2);
    *req.uri_mut() = uri;
    *req.version_mut() = if is_h2_backend {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let peer_trusted = ctx.snapshot.trusted.is_trusted(ctx.conn.peer.ip());
    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    let peer = ctx.conn.peer.ip().to_string();
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        // Only a trusted proxy's chain is passed on; anyone else's is replaced.
        Some(prev) if peer_trusted => format!("{prev}, {peer}"),
        _ => peer.clone(),
    };
    let proto = if ctx.conn.tls { "https" } else { "http" };
    let host_str = original_host
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let for_node = if ctx.conn.peer.is_ipv6() {
        format!("\"[{peer}]\"")
    } else {
        peer.clone()
    };
    let fwd_elem = format!("for={for_node};proto={proto};host=\"{host_str}\"");
    let forwarded = match h.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) if peer_trusted => format!("{prev}, {fwd_elem}"),
        _ => fwd_elem,
    };
    for (name, value) in [
        ("x-forwarded-for", xff),
        ("forwarded", forwarded),
        ("x-forwarded-proto", proto.to_owned()),
        ("x-forwarded-host", host_str),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.decision_id) {
        h.insert(headers::DECISION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&header_list(ctx)) {
        h.insert(headers::SUBJECT_JURISDICTION, v);
    }
    match route.map(|r| &r.upstream_host) {
        Some(UpstreamHost::Backend) | None => {
            if let Some(Ok(v)) = backend
                .url
                .authority()
                .map(|a| HeaderValue::from_str(a.as_str()))
            {
                h.insert(header::HOST, v);
            }
        }
        Some(UpstreamHost::Preserve) => {
            if let Some(v) = original_host {
                h.insert(header::HOST, v);
            }
        }
    }
    if is_h2_backend {
        // HTTP/2 carries the authority in :authority; a Host header is not sent.
        h.remove(header::HOST);
    }
    let started = Instant::now();
    let result = tokio::time::timeout(backend.response_timeout, backend.client.request(req)).await;
    metrics::histogram!(m::UPSTREAM_DURATION, "region" => region.to_owned())
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(res)) => {
            let (mut parts, body) = res.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            headers::strip_own(&mut parts.headers);
            Response::from_parts(parts, Body::Incoming(body))
        }
        Ok(Err(e)) => {
            tracing::warn!(decision_id = %ctx.decision_id, region, error = %e, "upstream request failed");
            problem(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the backend could not be reached or answered badly",
            )
        }
        Err(_) => problem(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the backend did not answer in time",
        ),
    }
}
