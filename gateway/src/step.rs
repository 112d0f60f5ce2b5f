//! Synchronous phases as tower layers without a boxed future: a step either lets the request
//! through (possibly changed) or answers it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::Body;

/// One synchronous phase.
pub trait Step: Clone + Send + Sync + 'static {
    /// Runs the phase; `Err` answers the request without going further.
    // The error is the answer itself, produced at most once per request.
    #[allow(clippy::result_large_err)]
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>>;
}

/// Two steps run in order as one: in one layer the request is moved once between them, not
/// once a step, and the answer comes back through one future less.
impl<A: Step, B: Step> Step for (A, B) {
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        self.0.run(req)?;
        self.1.run(req)
    }
}

/// Builds [`StepService`] for a step.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepLayer<T>(pub T);

impl<T: Step, S> Layer<S> for StepLayer<T> {
    type Service = StepService<T, S>;
    fn layer(&self, inner: S) -> StepService<T, S> {
        StepService {
            step: self.0.clone(),
            inner,
        }
    }
}

/// A step in front of the rest of the pipeline.
#[derive(Debug, Clone)]
pub struct StepService<T, S> {
    step: T,
    inner: S,
}

impl<T, S> Service<Request<Body>> for StepService<T, S>
where
    T: Step,
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = PhaseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match self.step.run(&mut req) {
            Ok(()) => PhaseFuture::Inner {
                fut: self.inner.call(req),
            },
            Err(res) => PhaseFuture::Answered { res: Some(res) },
        }
    }
}

/// A boxed response future, for phases that must await something of their own.
pub type BoxFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send + 'static>>;

pin_project_lite::pin_project! {
    /// A phase's future: the rest of the pipeline directly (no allocation), a boxed future when
    /// the phase awaits something itself, or the phase's own answer.
    #[project = PhaseFutureProj]
    pub enum PhaseFuture<F> {
        Inner { #[pin] fut: F },
        Boxed { fut: BoxFuture },
        Answered { res: Option<Response<Body>> },
    }
}

impl<F> Future for PhaseFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            PhaseFutureProj::Inner { fut } => fut.poll(cx),
            PhaseFutureProj::Boxed { fut } => fut.as_mut().poll(cx),
            PhaseFutureProj::Answered { res } => match res.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Ready(Ok(crate::context::missing())),
            },
        }
    }
}
