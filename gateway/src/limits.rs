//! Phase 2, limits: the request gets its decision id and context, ambiguous framing and
//! upgrades are refused, header size and concurrency are bounded, and client copies of
//! Domicile's own headers are stripped.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode, Version};
use tower::{Layer, Service};

use crate::body::Body;
use crate::context::{ConnInfo, Received, RequestContext};
use crate::gateway::Shared;
use crate::headers;
use crate::problem::{Problem, close_connection};
use crate::step::PhaseFuture;

/// Builds [`Limits`].
#[derive(Debug, Clone)]
pub struct LimitsLayer {
    shared: Arc<Shared>,
    concurrency: Arc<Concurrency>,
}

impl LimitsLayer {
    pub fn new(shared: Arc<Shared>, max_concurrent: usize) -> LimitsLayer {
        LimitsLayer {
            shared,
            concurrency: Arc::new(Concurrency {
                in_flight: AtomicUsize::new(0),
                max: max_concurrent,
            }),
        }
    }
}

/// The requests in flight, at most `max`. Nothing waits for a place: a request that finds
/// none is answered 503 at once, so a count is all it takes.
#[derive(Debug)]
pub struct Concurrency {
    in_flight: AtomicUsize,
    max: usize,
}

impl Concurrency {
    /// A place for one request, if one is free.
    fn try_take(self: &Arc<Self>) -> Option<Place> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place(self.clone()))
    }
}

/// A request's place under the concurrency limit, given back when it is dropped (with the
/// request's context, at the end of its effect).
#[derive(Debug)]
pub struct Place(Arc<Concurrency>);

impl Clone for Place {
    /// A copy holds a place of its own, so that the count stays whole.
    fn clone(&self) -> Place {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        Place(self.0.clone())
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;
    fn layer(&self, inner: S) -> Limits<S> {
        Limits {
            shared: self.shared.clone(),
            concurrency: self.concurrency.clone(),
            inner,
        }
    }
}

/// The limits phase.
#[derive(Debug, Clone)]
pub struct Limits<S> {
    shared: Arc<Shared>,
    concurrency: Arc<Concurrency>,
    inner: S,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A time-ordered, unique decision id: 12 hex digits of milliseconds, 6 of instance, 8 of
/// sequence.
pub fn new_decision_id(instance_tag: u32, micros: i64) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = (micros / 1000) as u64 & 0xffff_ffff_ffff;
    let mut id = [0u8; 26];
    id[..4].copy_from_slice(&crate::lowhex::digits8((millis >> 32) as u32)[4..]);
    id[4..12].copy_from_slice(&crate::lowhex::digits8(millis as u32));
    id[12..18].copy_from_slice(&crate::lowhex::digits8(instance_tag)[2..]);
    id[18..].copy_from_slice(&crate::lowhex::digits8(n as u32));
    // Hex digits are ASCII.
    std::str::from_utf8(&id).unwrap_or_default().to_owned()
}

impl<S> Service<Request<Body>> for Limits<S>
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
        // The wall clock and the monotonic clock, read together when the server took the
        // request: later times of this request (its outcome line's) are `micros` plus the
        // monotonic time since `started`.
        let Some(Received {
            conn,
            micros,
            started,
            framing,
        }) = req.extensions_mut().remove::<Received>()
        else {
            return PhaseFuture::Answered {
                res: Some(crate::context::missing()),
            };
        };
        let decision_id = new_decision_id(self.shared.instance_tag, micros);
        let snapshot = self.shared.snapshot.load_full();
        let lean_server = match check(
            &mut req,
            framing,
            &conn,
            &snapshot.config.server.limits,
            &decision_id,
        ) {
            Ok(lean) => lean,
            Err(res) => return PhaseFuture::Answered { res: Some(res) },
        };
        let Some(place) = self.concurrency.try_take() else {
            let res = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many requests in flight; nothing was forwarded",
            )
            .with_decision(&decision_id)
            .into_response();
            return PhaseFuture::Answered { res: Some(res) };
        };
        let decision_header = http::HeaderValue::from_str(&decision_id)
            .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"));
        crate::context::attach(
            &mut req,
            RequestContext {
                decision_id,
                decision_header,
                received_micros: micros,
                started,
                snapshot,
                conn,
                route: None,
                inspection: Default::default(),
                client: None,
                resolution: None,
                subject_id: None,
                invalid_token: None,
                directory: crate::context::DirectoryUse::None,
                first_write: None,
                decision: None,
                home_region: None,
                destination: None,
                action: None,
                enforced: true,
                lean_server,
                // Released when the context is dropped, at the end of the request's effect.
                permit: Some(place),
                buffer_permit: None,
                unavailable: false,
            },
        );
        PhaseFuture::Inner {
            fut: self.inner.call(req),
        }
    }
}

/// Whether a method is written as methods are: upper-case letters, digits, `-` and `_`
/// (`GET`, `PROPFIND`, `VERSION-CONTROL`).
fn plain_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Checks the request's framing (the facts the server gave with the request, else the next in
/// the connection's log), method and header size; `Ok` says whether the lean HTTP/1.1 server
/// read it.
// The error is the answer itself, produced at most once per request.
#[allow(clippy::result_large_err)]
fn check(
    req: &mut Request<Body>,
    framing: Option<crate::framing::FramingFacts>,
    conn: &ConnInfo,
    limits: &crate::config::Limits,
    decision_id: &str,
) -> Result<bool, Response<Body>> {
    // Only the lean server gives the facts with the request; hyper's heads are in the log.
    let lean = framing.is_some();
    if req.version() <= Version::HTTP_11 {
        let facts = framing.or_else(|| conn.framing.next());
        let why = match facts {
            Some(f) if f.length_and_chunked => {
                Some("the request carries both Content-Length and Transfer-Encoding")
            }
            Some(f) if f.bare_lf => Some("the request head has a line ending in a bare LF"),
            Some(f) if f.fragment => Some("the request-target holds a '#' fragment"),
            Some(_) => None,
            // Every HTTP/1 head passes the sniffer before hyper parses it; a missing fact
            // means the stream could not be followed, so nothing is trusted.
            None => Some("the request's framing could not be verified"),
        };
        if let Some(why) = why {
            return Err(close_connection(
                Problem::new(StatusCode::BAD_REQUEST, "ambiguous_framing", why)
                    .with_decision(decision_id)
                    .into_response(),
            ));
        }
    }
    // Methods are case-sensitive tokens: `get` is not GET to every backend, and a method
    // with punctuation is no method anyone serves. Refused, not guessed at.
    if !plain_method(req.method().as_str()) {
        return Err(close_connection(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_method",
                "the request method is not written in upper-case letters, digits, '-' and '_'",
            )
            .with_decision(decision_id)
            .into_response(),
        ));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(close_connection(
            Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "the request headers exceed the limit of {} bytes",
                    limits.max_header_bytes
                ),
            )
            .with_decision(decision_id)
            .into_response(),
        ));
    }
    if req.method() == Method::CONNECT {
        // The client may already be tunnelling: close.
        return Err(close_connection(
            Problem::new(
                StatusCode::NOT_IMPLEMENTED,
                "upgrade_refused",
                "CONNECT is not forwarded",
            )
            .with_decision(decision_id)
            .into_response(),
        ));
    }
    headers::strip_own(req.headers_mut());
    Ok(lean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_taken_up_to_the_limit_and_given_back_when_dropped() {
        let c = Arc::new(Concurrency {
            in_flight: AtomicUsize::new(0),
            max: 2,
        });
        let a = c.try_take().unwrap();
        let b = c.try_take().unwrap();
        // Full: refused, and the refusal takes nothing.
        assert!(c.try_take().is_none());
        assert!(c.try_take().is_none());
        assert_eq!(c.in_flight.load(Ordering::SeqCst), 2);
        drop(a);
        let a = c.try_take().unwrap();
        // A copy (of a context) holds a place of its own; each gives its own back.
        let copy = b.clone();
        assert_eq!(c.in_flight.load(Ordering::SeqCst), 3);
        assert!(c.try_take().is_none());
        drop((a, b, copy));
        assert_eq!(c.in_flight.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_decision_id_is_milliseconds_instance_and_sequence_in_fixed_width_hex() {
        // 2026-12-01T01:14:16.797Z, in microseconds.
        let micros = 1_796_087_656_797_158;
        let a = new_decision_id(0x1234_5678, micros);
        let b = new_decision_id(0x1234_5678, micros);
        assert_eq!(a.len(), 26);
        assert!(
            a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "{a}"
        );
        // The milliseconds and the instance's low 24 bits, each zero-padded.
        assert_eq!(&a[..12], format!("{:012x}", micros / 1000));
        assert_eq!(&a[12..18], "345678");
        // The sequence: eight digits, one more for each id (other tests may take ids too).
        let (sa, sb) = (
            u32::from_str_radix(&a[18..], 16).unwrap(),
            u32::from_str_radix(&b[18..], 16).unwrap(),
        );
        assert!(sb > sa, "{a} then {b}");
        assert_eq!(&a[..18], &b[..18]);
    }
}
