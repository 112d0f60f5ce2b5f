//! The admin listener: `/healthz`, `/readyz` (with the active revision), `/metrics` (Prometheus
//! text), `POST /reload`, the decision queries and the review page (`/review`). Loopback by
//! default; every path but `/healthz` and the review page's static files needs the bearer
//! token when one is configured.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::Body;
use crate::gateway::Shared;
use crate::problem::Problem;

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let token: Option<Arc<str>> = token.map(Arc::from);
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                let token = token.clone();
                async move { Ok::<_, Infallible>(handle(&shared, token.as_deref(), req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::full(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn authorized(token: Option<&str>, req: &Request<Incoming>) -> bool {
    let Some(token) = token else { return true };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time comparison.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn handle(shared: &Shared, token: Option<&str>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "text/plain", "ok\n");
    }
    // The review page's files hold no data: its API calls carry the token.
    if req.method() == Method::GET
        && let Some(page) = crate::trace::review::asset(path)
    {
        return page;
    }
    if !authorized(token, &req) {
        let mut r = Problem::new(
            StatusCode::UNAUTHORIZED,
            "admin_unauthorized",
            "a valid admin bearer token is required",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    match (req.method(), path) {
        (&Method::GET, "/readyz") => {
            let snap = shared.snapshot.load();
            let body = serde_json::json!({
                "ready": true,
                "revision": snap.revision,
                "config": snap.config.source,
                "regions": snap.config.regions.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
                "trace_dir": shared.writer.dir().display().to_string(),
                "durability": shared.writer.durability().as_str(),
            });
            text(StatusCode::OK, "application/json", body.to_string())
        }
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            crate::metrics::render(),
        ),
        (&Method::GET, "/v1/decisions") => decisions(shared, req.uri().query()).await,
        (&Method::GET, p) if p.starts_with("/v1/decisions/") => {
            let id = p.trim_start_matches("/v1/decisions/").to_owned();
            decision(shared, id).await
        }
        (&Method::POST, "/reload") => match crate::reload::reload(shared) {
            Ok(rev) => text(
                StatusCode::OK,
                "application/json",
                serde_json::json!({"reloaded": true, "revision": rev}).to_string(),
            ),
            Err(errors) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                "application/json",
                serde_json::json!({"reloaded": false, "errors": errors}).to_string(),
            ),
        },
        _ => Problem::new(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
            .into_response(),
    }
}

/// Reads the trail off the request path (file reads on a blocking thread).
async fn read_trail(shared: &Shared) -> Result<crate::trace::read::Trail, Response<Body>> {
    shared.writer.flush();
    let dir = shared.writer.dir().to_path_buf();
    match tokio::task::spawn_blocking(move || {
        crate::trace::read::read_dir(&dir).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "trace_unreadable", e).into_response(),
        ),
        Err(_) => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "trace_unreadable",
            "the trace could not be read",
        )
        .into_response()),
    }
}

/// `GET /v1/decisions?verdict=&since=&until=&basis_kind=&jurisdiction=&region=&route=&category=&id=&limit=`
/// as JSON lines, oldest first.
async fn decisions(shared: &Shared, query: Option<&str>) -> Response<Body> {
    let mut filter = crate::trace::read::Filter::default();
    let mut limit = 1000usize;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "since" => filter.since = Some(v),
            "until" => filter.until = Some(v),
            "verdict" => filter.verdict = Some(v),
            "basis_kind" => filter.basis_kind = Some(v),
            "jurisdiction" => filter.jurisdiction = Some(v.to_ascii_uppercase()),
            "region" => filter.region = Some(v),
            "route" => filter.route = Some(v),
            "category" => filter.category = Some(v),
            "id" => filter.id = Some(v),
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => {
                    return Problem::new(
                        StatusCode::BAD_REQUEST,
                        "bad_query",
                        "limit must be a number",
                    )
                    .into_response();
                }
            },
            other => {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("unknown filter {other:?}"),
                )
                .into_response();
            }
        }
    }
    let trail = match read_trail(shared).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut out = String::new();
    for r in trail
        .decisions
        .iter()
        .filter(|r| filter.matches(r))
        .take(limit)
    {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    text(StatusCode::OK, "application/x-ndjson", out)
}

/// `GET /v1/decisions/{id}`: the record, with its outcome line when there is one.
async fn decision(shared: &Shared, id: String) -> Response<Body> {
    let trail = match read_trail(shared).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match trail
        .decisions
        .iter()
        .find(|r| r["decision_id"] == id.as_str())
    {
        Some(r) => {
            let body = serde_json::json!({
                "decision": r,
                "outcome": trail.outcomes.get(&id),
            });
            text(StatusCode::OK, "application/json", body.to_string())
        }
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "no_decision",
            "no decision with this id",
        )
        .into_response(),
    }
}
