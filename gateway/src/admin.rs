//! The admin listener: `/healthz`, `/readyz` (with the active revision), `/metrics` (Prometheus
//! text), `POST /reload`, the decision queries, the subject directory (`/v1/subjects/{id}`)
//! and the review page (`/review`). Loopback by
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
use sha2::{Digest, Sha256};

/// Admin connections served at once; more are closed at accept. The admin API is for a few
/// operators and scrapers, and one that is not on loopback must not be able to take the
/// process's file descriptors from the main listener.
const MAX_ADMIN_CONNECTIONS: usize = 64;

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("admin connection limit reached; closing a new connection");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            drop(slot);
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
        .and_then(|v| domicile_regions::token::bearer(v.as_bytes()))
        .unwrap_or("");
    // Compared in time that depends on neither value: both are hashed first, so that not even
    // the token's length shows in how long a wrong one takes.
    let (a, b) = (Sha256::digest(given), Sha256::digest(token));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    // HEAD is answered as GET is (hyper sends the head alone).
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    if path == "/healthz" {
        return text(StatusCode::OK, "text/plain", "ok\n");
    }
    // The review page's files hold no data: its API calls carry the token.
    if get && let Some(page) = crate::trace::review::asset(path) {
        return page;
    }
    // The token of the configuration in force: a reload that changes it takes effect at once.
    let snap = shared.snapshot.load();
    if !authorized(snap.config.admin.token.as_deref(), &req) {
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
    let method = if get { &Method::GET } else { req.method() };
    match (method, path) {
        (&Method::GET, "/readyz") => {
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
        (&Method::GET, "/v1/verify") => verify(shared).await,
        (&Method::GET, p) if p.starts_with("/v1/decisions/") => {
            let id = p.trim_start_matches("/v1/decisions/").to_owned();
            decision(shared, id).await
        }
        (m, p) if p.starts_with("/v1/subjects/") => {
            // Decoded as the request path's ids are; an id that is not UTF-8 once decoded is
            // no id (and one with an encoded `/` is refused in `subjects`).
            let raw = p.trim_start_matches("/v1/subjects/");
            match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(id) => {
                    let (m, id) = (m.clone(), id.into_owned());
                    subjects(shared, m, id, req).await
                }
                Err(_) => bad_subject_id(),
            }
        }
        (&Method::POST, "/reload") => match crate::reload::reload(shared) {
            Ok(rev) => text(
                StatusCode::OK,
                "application/json",
                serde_json::json!({"reloaded": true, "revision": rev}).to_string(),
            ),
            // A problem document (RFC 9457) with the file's problems as an extension member.
            Err(errors) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reload_refused",
                format!(
                    "the configuration file has {} problem(s); the running configuration is kept",
                    errors.len()
                ),
            )
            .with_member("reloaded", false)
            .with_member("errors", errors)
            .into_response(),
        },
        _ => Problem::new(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
            .into_response(),
    }
}

/// The largest directory entry body accepted.
const MAX_SUBJECT_BODY: usize = 4096;

/// The answer to a subject id that is not one: one path segment of UTF-8, 1 to
/// `MAX_SUBJECT_ID` bytes.
fn bad_subject_id() -> Response<Body> {
    use domicile_regions::directory::MAX_SUBJECT_ID;
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad_subject_id",
        format!("a subject id is one path segment of 1 to {MAX_SUBJECT_ID} bytes of UTF-8"),
    )
    .into_response()
}

/// `GET`, `PUT` and `DELETE /v1/subjects/{id}`: the subject directory.
async fn subjects(
    shared: &Shared,
    method: Method,
    id: String,
    req: Request<Incoming>,
) -> Response<Body> {
    use domicile_regions::directory::{DirectoryEntry, EntrySource, MAX_SUBJECT_ID};
    use http_body_util::BodyExt;
    let snap = shared.snapshot.load_full();
    let Some(dir) = snap.directory.clone() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "no_directory",
            "no subject directory is configured ([resolve.directory])",
        )
        .into_response();
    };
    if id.is_empty() || id.len() > MAX_SUBJECT_ID || id.contains('/') {
        return bad_subject_id();
    }
    let failed = |e: domicile_regions::directory::DirectoryError| {
        tracing::warn!(error = %e, "subject directory operation failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "directory_unavailable",
            "the subject directory could not be read or written",
        )
        .into_response()
    };
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no_subject",
            "the directory has no entry for this subject",
        )
        .into_response()
    };
    // redb reads and writes are blocking file I/O: off the admin task's thread.
    let run = |f: Box<dyn FnOnce() -> Response<Body> + Send>| async move {
        tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the directory operation did not finish",
            )
            .into_response()
        })
    };
    match method {
        Method::GET => {
            run(Box::new(move || match dir.get(&id) {
                Ok(Some(e)) => entry_response(StatusCode::OK, &id, &e),
                Ok(None) => not_found(),
                Err(e) => failed(e),
            }))
            .await
        }
        Method::DELETE => {
            run(Box::new(move || match dir.delete(&id) {
                Ok(true) => {
                    let mut r = Response::new(Body::Empty);
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r
                }
                Ok(false) => not_found(),
                Err(e) => failed(e),
            }))
            .await
        }
        Method::PUT => {
            let bad = |detail: String| {
                Problem::new(StatusCode::BAD_REQUEST, "bad_subject_entry", detail).into_response()
            };
            let body = match http_body_util::Limited::new(req.into_body(), MAX_SUBJECT_BODY)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return bad(format!(
                        "the body must be a JSON object of at most {MAX_SUBJECT_BODY} bytes"
                    ));
                }
            };
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Put {
                home_region: String,
                jurisdiction: Option<String>,
            }
            let put: Put = match serde_json::from_slice(&body) {
                Ok(p) => p,
                Err(_) => {
                    return bad(
                        "expected {\"home_region\": \"<region id>\", \"jurisdiction\": \"<country code>\"}"
                            .into(),
                    );
                }
            };
            let Some(region) = snap.registry.get(&put.home_region) else {
                return bad("home_region names no configured region".into());
            };
            let jurisdiction = match put.jurisdiction.as_deref() {
                None => region.country,
                Some(j) => match domicile_policy::Country::parse(j) {
                    Ok(c) => c,
                    Err(_) => {
                        return bad(
                            "jurisdiction must be a two-letter country code (ISO 3166-1 alpha-2)"
                                .into(),
                        );
                    }
                },
            };
            let entry = DirectoryEntry {
                home_region: region.id.to_string(),
                jurisdiction,
                source: EntrySource::Admin,
                updated: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                decision_id: None,
            };
            run(Box::new(move || match dir.set(&id, &entry) {
                Ok(None) => entry_response(StatusCode::CREATED, &id, &entry),
                Ok(Some(_)) => entry_response(StatusCode::OK, &id, &entry),
                Err(e) => failed(e),
            }))
            .await
        }
        _ => {
            let mut r = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET, PUT or DELETE on /v1/subjects/{id}",
            )
            .into_response();
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, PUT, DELETE"));
            r
        }
    }
}

fn entry_response(
    status: StatusCode,
    id: &str,
    e: &domicile_regions::directory::DirectoryEntry,
) -> Response<Body> {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("subject".into(), serde_json::Value::from(id));
    }
    text(status, "application/json", v.to_string())
}

/// Reads the trail off the request path (file reads on a blocking thread), with `read`.
async fn read_trail<T: Send + 'static>(
    shared: &Shared,
    read: impl FnOnce(&std::path::Path) -> Result<T, Box<dyn std::error::Error>> + Send + 'static,
) -> Result<T, Response<Body>> {
    shared.writer.flush();
    let dir = shared.writer.dir().to_path_buf();
    match tokio::task::spawn_blocking(move || read(&dir).map_err(|e| e.to_string())).await {
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

/// `GET /v1/decisions?kind=&verdict=&since=&until=&basis_kind=&jurisdiction=&region=&route=&category=&id=&limit=`
/// as JSON lines, oldest first: decision and refusal records (`kind=decision|refusal` keeps one),
/// each with a `kind` field.
async fn decisions(shared: &Shared, query: Option<&str>) -> Response<Body> {
    let mut filter = crate::trace::read::Filter::default();
    let mut limit = 1000usize;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "since" | "until" => match crate::trace::read::time_bound(&v) {
                Ok(t) if k == "since" => filter.since = Some(t),
                Ok(t) => filter.until = Some(t),
                Err(e) => {
                    return Problem::new(StatusCode::BAD_REQUEST, "bad_query", format!("{k}: {e}"))
                        .into_response();
                }
            },
            "verdict" => filter.verdict = Some(v),
            "basis_kind" => filter.basis_kind = Some(v),
            "jurisdiction" => filter.jurisdiction = Some(v.to_ascii_uppercase()),
            "region" => filter.region = Some(v),
            "route" => filter.route = Some(v),
            "category" => filter.category = Some(v),
            "id" => filter.id = Some(v),
            "kind" if crate::trace::read::KINDS.contains(&v.as_str()) => filter.kind = Some(v),
            "kind" => {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    "kind must be decision or refusal",
                )
                .into_response();
            }
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
            // Not echoed: a query string is the client's, and may hold anything.
            _ => {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    "unknown filter; the filters are kind, verdict, since, until, basis_kind, jurisdiction, region, route, category, id and limit",
                )
                .into_response();
            }
        }
    }
    // Only the oldest `limit` matches are held while the files are read.
    let kept = match read_trail(shared, move |dir| {
        crate::trace::read::listing(dir, &filter, Some(limit))
    })
    .await
    {
        Ok(kept) => kept,
        Err(r) => return r,
    };
    let mut out = String::new();
    for r in &kept {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    text(StatusCode::OK, "application/x-ndjson", out)
}

/// `GET /v1/verify`: every chain and checkpoint of the trail checked, as `trace verify` does
/// with this gateway's signing key pinned (a break is looked for twice: a rotation meanwhile is
/// no break):
/// `{"verified":bool,"files":n,"broken":[{"file":..,"line":..,"message":..}]}`, files named
/// under the trace directory.
async fn verify(shared: &Shared) -> Response<Body> {
    // Checkpoints must be signed by the key this gateway signs with, when it signs them: a
    // trail rewritten and signed again by another key does not verify.
    let key = shared.writer.verifying_key();
    let results = match read_trail(shared, move |dir| {
        let results = crate::trace::verify::verify_live(dir, key.as_ref())?;
        let broken: Vec<serde_json::Value> = results
            .iter()
            .filter_map(|v| v.result.as_ref().err())
            .map(|b| {
                let file = std::path::Path::new(&b.path);
                let file = file.strip_prefix(dir).unwrap_or(file);
                serde_json::json!({
                    "file": file.display().to_string(),
                    "line": b.line,
                    "message": b.message,
                })
            })
            .collect();
        Ok((results.len(), broken))
    })
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (files, broken) = results;
    let body = serde_json::json!({
        "verified": broken.is_empty(),
        "files": files,
        "broken": broken,
    });
    text(StatusCode::OK, "application/json", body.to_string())
}

/// `GET /v1/decisions/{id}`: the record, with its outcome line when there is one, as
/// `{"kind":"decision","decision":..,"outcome":..}`; a refusal as `{"kind":"refusal","refusal":..}`.
async fn decision(shared: &Shared, id: String) -> Response<Body> {
    let found = match read_trail(shared, move |dir| crate::trace::read::find(dir, &id)).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match found {
        Some((r, _)) if crate::trace::read::kind_of(&r) == "refusal" => {
            let body = serde_json::json!({ "kind": "refusal", "refusal": r });
            text(StatusCode::OK, "application/json", body.to_string())
        }
        Some((r, outcome)) => {
            let body = serde_json::json!({
                "kind": "decision",
                "decision": r,
                "outcome": outcome,
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
