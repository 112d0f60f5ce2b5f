//! The outermost layer: the edge never fails. It counts every request by route, status and
//! verdict, counts decisions, and logs one line per request without personal data.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::body::Body;
use crate::context::Summary;
use crate::metrics as m;

#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for Edge<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clock is read only for the access log line, when that is on.
        let started =
            tracing::enabled!(target: "domicile::access", tracing::Level::INFO).then(Instant::now);
        EdgeFuture {
            method: req.method().clone(),
            started,
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The pipeline's future, observed when it completes.
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        method: Method,
        started: Option<Instant>,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(never)) => match never {},
        };
        let status = res.status().as_u16();
        // Read in place: the lean server still takes the kept lines from it.
        let summary = res.extensions().get::<Summary>();
        let (route, verdict, id) = match summary {
            Some(s) => (
                s.route.as_ref(),
                s.verdict,
                s.decision_id.to_str().unwrap_or(""),
            ),
            None => (None, "none", ""),
        };
        m::count_request(route, status, verdict);
        if let Some(s) = summary
            && s.verdict != "none"
        {
            m::count_decision(s.verdict, s.subject, s.region.as_ref());
        }
        tracing::info!(
            target: "domicile::access",
            decision_id = id,
            method = %this.method,
            route = route.map_or("none", |r| &**r),
            status,
            verdict,
            micros = this.started.map_or(0, |t| t.elapsed().as_micros() as u64),
            "request"
        );
        Poll::Ready(Ok(res))
    }
}
