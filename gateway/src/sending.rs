//! The send timeout: whether a connection's client takes the responses it asked for.
//!
//! A response body is polled by hyper when the connection can carry more of it: when HTTP/1's
//! socket takes the bytes written before, when an HTTP/2 stream's flow-control window has
//! room. A body that has something to give (its head is out, or it gave a frame) and is not
//! polled again is waiting on the client. A client that never reads, or never opens an
//! HTTP/2 window, can keep its connection busy in every other way (pings, settings, bytes
//! of a next request), so the connection's traffic does not say it: the bodies do. When a
//! connection has a body waiting and none of its bodies was taken from for the send timeout,
//! the connection is closed ([`crate::server`]). A body waiting on its backend is not waiting
//! on the client.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How one connection's client takes its responses.
#[derive(Debug)]
pub struct Taking {
    origin: Instant,
    /// When a body was last created or taken from, in milliseconds since `origin`.
    last_ms: AtomicU64,
    /// Bodies with something to give that were not taken from since.
    waiting: AtomicUsize,
}

impl Taking {
    pub fn new() -> Taking {
        Taking {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When a body began waiting on the client without any body being taken from since;
    /// `None` when no body waits on it.
    pub fn waiting_since(&self) -> Option<Instant> {
        (self.waiting.load(Ordering::Relaxed) > 0)
            .then(|| self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Wraps a response body handed to the connection: it waits on the client until polled.
    pub fn track<B>(self: &Arc<Taking>, inner: B) -> Taken<B> {
        self.touch();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Taken {
            inner,
            taking: self.clone(),
            waiting: true,
        }
    }
}

impl Default for Taking {
    fn default() -> Taking {
        Taking::new()
    }
}

pin_project! {
    /// A response body whose taking is tracked ([`Taking::track`]).
    pub struct Taken<B> {
        #[pin]
        inner: B,
        taking: Arc<Taking>,
        waiting: bool,
    }

    impl<B> PinnedDrop for Taken<B> {
        fn drop(this: Pin<&mut Self>) {
            if this.waiting {
                this.taking.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<B: HttpBody> HttpBody for Taken<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // Being polled at all: the client took what went before.
        this.taking.touch();
        let res = this.inner.poll_frame(cx);
        // A frame given waits on the client; a body waiting on its backend, or at its end,
        // does not.
        let waiting = matches!(res, Poll::Ready(Some(Ok(_))));
        if waiting != *this.waiting {
            if waiting {
                this.taking.waiting.fetch_add(1, Ordering::Relaxed);
            } else {
                this.taking.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            *this.waiting = waiting;
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    /// A body that has nothing until opened, then a frame each time.
    struct Gate(Arc<std::sync::atomic::AtomicBool>);

    impl HttpBody for Gate {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0.load(Ordering::Relaxed) {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn a_body_waits_on_the_client_until_polled_and_not_while_its_backend_is_silent() {
        let taking = Arc::new(Taking::new());
        assert_eq!(taking.waiting_since(), None);
        // Handed over: waiting until polled, and no longer once over or dropped.
        let mut body = taking.track(Full::new(Bytes::from_static(b"ok")));
        assert!(taking.waiting_since().is_some());
        assert_eq!(
            body.frame().await.map(|f| f.map(|f| f.into_data().ok())),
            Some(Ok(Some(Bytes::from_static(b"ok"))))
        );
        assert!(taking.waiting_since().is_some(), "a frame given waits");
        assert!(body.frame().await.is_none());
        assert_eq!(taking.waiting_since(), None);
        let body = taking.track(Full::new(Bytes::new()));
        assert!(taking.waiting_since().is_some());
        drop(body);
        assert_eq!(taking.waiting_since(), None);

        // A body whose backend has sent nothing yet waits on the backend.
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut body = Box::pin(taking.track(Gate(open.clone())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert_eq!(taking.waiting_since(), None);
        open.store(true, Ordering::Relaxed);
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(taking.waiting_since().is_some());
    }
}
