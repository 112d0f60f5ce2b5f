//! Records for requests refused before a decision: framing errors, limits, no route, refused
//! upgrades, bodies that could not be read. Together with the decision records this gives
//! every request the pipeline answers exactly one record. The layer sits just inside the edge;
//! a response that carries a decision summary was recorded by the trace phase, any other is a
//! refusal and gets a `domicile.refusal/1` record before it is sent. If that record cannot be
//! written the answer becomes 503, like a decision whose record fails.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::UNRESOLVED_REGION;
use super::json::Obj;
use crate::body::Body;
use crate::context::{ConnInfo, Received, Summary};
use crate::gateway::Shared;
use crate::problem::Answered;
use crate::step::BoxFuture;

/// The schema id of refusal records.
pub const REFUSAL_SCHEMA: &str = "domicile.refusal/1";

/// Builds [`RefusalTrace`].
#[derive(Debug, Clone)]
pub struct RefusalTraceLayer {
    shared: Arc<Shared>,
}

impl RefusalTraceLayer {
    pub fn new(shared: Arc<Shared>) -> RefusalTraceLayer {
        RefusalTraceLayer { shared }
    }
}

impl<S> Layer<S> for RefusalTraceLayer {
    type Service = RefusalTrace<S>;
    fn layer(&self, inner: S) -> RefusalTrace<S> {
        RefusalTrace {
            shared: self.shared.clone(),
            inner,
        }
    }
}

/// Records refusals that happen before a decision.
#[derive(Debug, Clone)]
pub struct RefusalTrace<S> {
    shared: Arc<Shared>,
    inner: S,
}

/// What is known of a request before any phase ran.
#[derive(Debug)]
struct Arrival {
    shared: Arc<Shared>,
    micros: i64,
    method: http::Method,
    conn: Option<Arc<ConnInfo>>,
    span: Option<super::otel::RequestSpan>,
}

impl Arrival {
    /// Ends the request's span, when spans are exported.
    fn end_span(&self, res: &Response<Body>) {
        let (Some(otel), Some(span)) = (&self.shared.otel, &self.span) else {
            return;
        };
        let summary = res.extensions().get::<Summary>();
        otel.end(
            span,
            res.status().as_u16(),
            summary.map_or("none", |s| s.verdict),
            summary.and_then(|s| s.region.as_deref()),
        );
    }
}

impl<S> Service<Request<Body>> for RefusalTrace<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RefusalFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let span = self.shared.otel.as_ref().map(|o| {
            let span = o.begin(req.method(), req.headers());
            req.extensions_mut().insert(span.clone());
            span
        });
        let received = req.extensions().get::<Received>();
        let arrival = Arrival {
            shared: self.shared.clone(),
            micros: received.map_or_else(crate::clock::now_micros, |r| r.micros),
            method: req.method().clone(),
            conn: received.map(|r| r.conn.clone()),
            span,
        };
        RefusalFuture::Inner {
            fut: self.inner.call(req),
            arrival: Some(arrival),
        }
    }
}

pin_project_lite::pin_project! {
    /// The pipeline's future; when its answer is a refusal, the refusal's record is written
    /// before the answer is released.
    #[project = RefusalProj]
    pub enum RefusalFuture<F> {
        Inner { #[pin] fut: F, arrival: Option<Arrival> },
        Writing { fut: BoxFuture },
    }
}

impl<F> Future for RefusalFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (res, arrival) = match self.as_mut().project() {
            RefusalProj::Writing { fut } => return fut.as_mut().poll(cx),
            RefusalProj::Inner { fut, arrival } => {
                let res = match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(r)) => r,
                    Poll::Ready(Err(never)) => match never {},
                };
                (res, arrival.take())
            }
        };
        // A decision was recorded, or the trace phase itself could not write: nothing more
        // to record (a second write would fail the same way).
        let decided = res
            .extensions()
            .get::<Summary>()
            .is_some_and(|s| s.verdict != "none")
            || res
                .extensions()
                .get::<Answered>()
                .is_some_and(|a| a.code == "trace_unavailable");
        if let Some(a) = &arrival {
            a.end_span(&res);
        }
        let Some(arrival) = arrival.filter(|_| !decided) else {
            return Poll::Ready(Ok(res));
        };
        let (id, body) = encode(&arrival, &res);
        let writer = arrival.shared.writer.clone();
        let region: Arc<str> = Arc::from(UNRESOLVED_REGION);
        if let Some(written) = writer.append_now(&region, &body) {
            return Poll::Ready(Ok(match written {
                Ok(()) => res,
                Err(e) => super::write_failed(&id, &e),
            }));
        }
        let mut fut: BoxFuture = Box::pin(async move {
            Ok(match writer.append(region, body).await {
                Ok(()) => res,
                Err(e) => super::write_failed(&id, &e),
            })
        });
        let polled = fut.as_mut().poll(cx);
        self.set(RefusalFuture::Writing { fut });
        polled
    }
}

/// The refusal record for a response; returns its decision id and JSON body.
fn encode(a: &Arrival, res: &Response<Body>) -> (String, Vec<u8>) {
    let answered = res.extensions().get::<Answered>();
    let id = answered
        .and_then(|p| p.decision_id.clone())
        .unwrap_or_else(|| crate::limits::new_decision_id(a.shared.instance_tag, a.micros));
    let snapshot = a.shared.snapshot.load();
    let method = a.method.as_str();
    let mut body = Vec::with_capacity(512);
    Obj::new(&mut body)
        .str("schema", REFUSAL_SCHEMA)
        .str("decision_id", &id)
        .str("time", crate::clock::rfc3339_micros(a.micros).as_str())
        .with("gateway", |o| {
            Obj::new(o)
                .str("instance", &a.shared.instance)
                .opt_str("region", snapshot.config.server.region.as_deref())
                .str(
                    "listen",
                    a.conn.as_ref().map_or("", |c| c.local_text.as_str()),
                )
                .end()
        })
        .str("policy_revision", &snapshot.revision)
        // Extension methods are client text: recorded only when short.
        .str(
            "method",
            if method.len() <= 16 {
                method
            } else {
                "EXTENSION"
            },
        )
        .opt_str(
            "client_address",
            a.conn.as_ref().map(|c| c.peer_truncated.as_str()),
        )
        .str(
            "reason_code",
            answered.map_or("internal", |p| p.code.as_str()),
        )
        .with("outcome", |o| {
            Obj::new(o)
                .str("action", "refused")
                .num("status", u64::from(res.status().as_u16()))
                .end()
        })
        .end();
    (id, body)
}
