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
use std::time::Instant;

use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How one connection's client takes its responses: a count of bodies created or taken from,
/// and of bodies waiting on the client. No clock is read on the request path: the connection's
/// own loop notes when the count last moved ([`Stall`]).
#[derive(Debug, Default)]
pub struct Taking {
    /// Bumped each time a body is created or taken from.
    progress: AtomicU64,
    /// Bodies with something to give that were not taken from since.
    waiting: AtomicUsize,
}

impl Taking {
    pub fn new() -> Taking {
        Taking::default()
    }

    fn touch(&self) {
        // Only a change is looked for: an increment lost to a concurrent one still changes it.
        let n = self.progress.load(Ordering::Relaxed);
        self.progress.store(n.wrapping_add(1), Ordering::Relaxed);
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

/// The connection loop's view of a [`Taking`]: since when a body has waited on the client with
/// nothing taken.
#[derive(Debug, Default)]
pub struct Stall {
    seen: Option<(u64, Instant)>,
}

impl Stall {
    /// Looks at `taking` at `now`: since when nothing has been taken while a body waits on the
    /// client (no earlier than the first look that saw it so), or `None` when none waits.
    pub fn since(&mut self, taking: &Taking, now: Instant) -> Option<Instant> {
        if taking.waiting.load(Ordering::Relaxed) == 0 {
            self.seen = None;
            return None;
        }
        let progress = taking.progress.load(Ordering::Relaxed);
        match self.seen {
            Some((p, since)) if p == progress => Some(since),
            _ => {
                self.seen = Some((progress, now));
                Some(now)
            }
        }
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

    fn waits(t: &Taking) -> bool {
        t.waiting.load(Ordering::Relaxed) > 0
    }

    #[test]
    fn a_stall_dates_from_the_first_look_after_the_last_body_was_taken_from() {
        let taking = Arc::new(Taking::new());
        let mut stall = Stall::default();
        let t0 = Instant::now();
        let later = |ms| t0 + std::time::Duration::from_millis(ms);
        assert_eq!(stall.since(&taking, t0), None);
        let body = taking.track(Full::new(Bytes::from_static(b"ok")));
        assert_eq!(stall.since(&taking, later(10)), Some(later(10)));
        assert_eq!(stall.since(&taking, later(500)), Some(later(10)));
        // Something taken: the wait starts again from the next look.
        let mut body = Box::pin(body);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        assert_eq!(stall.since(&taking, later(600)), Some(later(600)));
        drop(body);
        assert_eq!(stall.since(&taking, later(700)), None);
    }

    #[tokio::test]
    async fn a_body_waits_on_the_client_until_polled_and_not_while_its_backend_is_silent() {
        let taking = Arc::new(Taking::new());
        assert!(!waits(&taking));
        // Handed over: waiting until polled, and no longer once over or dropped.
        let mut body = taking.track(Full::new(Bytes::from_static(b"ok")));
        assert!(waits(&taking));
        assert_eq!(
            body.frame().await.map(|f| f.map(|f| f.into_data().ok())),
            Some(Ok(Some(Bytes::from_static(b"ok"))))
        );
        assert!(waits(&taking), "a frame given waits");
        assert!(body.frame().await.is_none());
        assert!(!waits(&taking));
        let body = taking.track(Full::new(Bytes::new()));
        assert!(waits(&taking));
        drop(body);
        assert!(!waits(&taking));

        // A body whose backend has sent nothing yet waits on the backend.
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut body = Box::pin(taking.track(Gate(open.clone())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert!(!waits(&taking));
        open.store(true, Ordering::Relaxed);
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(waits(&taking));
    }
}
