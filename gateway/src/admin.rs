//! The admin listener: `/healthz`, `/readyz` (with the active revision), `/metrics` (Prometheus
//! text) and `POST /reload`. Loopback by default; every path but `/healthz` needs the bearer
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
