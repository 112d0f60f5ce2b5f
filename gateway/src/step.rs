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
    type Future = StepFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match self.step.run(&mut req) {
            Ok(()) => StepFuture::Inner {
                fut: self.inner.call(req),
            },
            Err(res) => StepFuture::Answered { res: Some(res) },
        }
    }
}

pin_project_lite::pin_project! {
    /// The rest of the pipeline's future, or the step's own answer.
    #[project = StepFutureProj]
    pub enum StepFuture<F> {
        Inner { #[pin] fut: F },
        Answered { res: Option<Response<Body>> },
    }
}

impl<F> Future for StepFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StepFutureProj::Inner { fut } => fut.poll(cx),
            StepFutureProj::Answered { res } => match res.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Ready(Ok(crate::context::missing())),
            },
        }
    }
}
