//! The review page on the admin listener: plain HTML, a small script and a style sheet, no
//! build step and nothing loaded from elsewhere. The files hold no data; everything the page
//! shows comes from `GET /v1/decisions` and `GET /v1/decisions/{id}`, which need the admin
//! token like the rest of the admin API (the page sends it as a bearer token).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;

const HTML: &str = include_str!("review/review.html");
const JS: &str = include_str!("review/review.js");
const CSS: &str = include_str!("review/review.css");

/// Only this origin's own script, style and API: nothing external, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's files by path.
pub fn asset(path: &str) -> Option<Response<Body>> {
    let (body, content_type) = match path {
        "/review" | "/review/" => (HTML, "text/html; charset=utf-8"),
        "/review.js" => (JS, "text/javascript; charset=utf-8"),
        "/review.css" => (CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = Response::new(Body::full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(r)
}
