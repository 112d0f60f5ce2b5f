//! The send timeout: whether a connection's client takes the responses it asked for.
//!
//! A response body is polled by hyper when the connection can carry more of it: when HTTP/1's
//! socket took the bytes written before, when an HTTP/2 stream's flow-control window has
//! room. A body that has something to give (its head is out, or it gave a frame) and is not
//! polled again is waiting on the client. A client that never reads, or never opens an
//! HTTP/2 stream's window, can keep its connection busy in every other way (pings, settings,
//! other streams, bytes of a next request), so the connection's traffic does not say it: each
//! body does. The connection's loop ticks every half send timeout ([`crate::server`]); a body
//! notes the tick it began waiting in, and when one has waited three ticks (between one and
//! one and a half send timeouts), the connection is closed. A body waiting on its backend is
//! not waiting on the client, and no clock is read on the request path.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Ticks of waiting that are kept apart; a body that waited three is found at the third.
const RING: usize = 8;
/// Ticks a body may wait on the client, not counting the one it began in.
const TICKS: u64 = 2;

/// The bodies of one connection that wait on its client, by the tick they began waiting in.
#[derive(Debug, Default)]
pub struct Taking {
    tick: AtomicU64,
    waiting: [AtomicUsize; RING],
}

impl Taking {
    pub fn new() -> Taking {
        Taking::default()
    }

    fn bucket(&self, tick: u64) -> &AtomicUsize {
        // `RING` divides every u64's range evenly: the index is below `RING`.
        &self.waiting[(tick % RING as u64) as usize]
    }

    /// The tick now: a body that begins waiting notes it ([`Self::begin`]).
    fn now(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }

    fn begin(&self, tick: u64) {
        self.bucket(tick).fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self, began: u64) {
        self.bucket(began).fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection's loop ticks (every half send timeout): whether a body has waited on
    /// the client since before the last [`TICKS`] ticks, which ends the connection.
    pub fn tick(&self) -> bool {
        let now = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        // Bodies older than the ring's reach were found at an earlier tick.
        (TICKS + 1..RING as u64)
            .filter_map(|age| now.checked_sub(age))
            .any(|t| self.bucket(t).load(Ordering::Relaxed) > 0)
    }

    /// Wraps a response body handed to the connection: it waits on the client until polled.
    pub fn track<B>(self: Arc<Taking>, inner: B) -> Taken<B> {
        let tick = self.now();
        self.begin(tick);
        Taken {
            inner,
            waiting_since: Some(tick),
            taking: self,
        }
    }
}

pin_project! {
    /// A response body whose taking is tracked ([`Taking::track`]).
    pub struct Taken<B> {
        #[pin]
        inner: B,
        taking: Arc<Taking>,
        // The tick it began waiting on the client in, while it does.
        waiting_since: Option<u64>,
    }

    impl<B> PinnedDrop for Taken<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(t) = this.waiting_since {
                this.taking.end(t);
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
        let res = this.inner.poll_frame(cx);
        // Polled: the client took what went before. A frame given waits on the client again,
        // from this tick; a body waiting on its backend, or at its end, does not.
        let now = match res {
            Poll::Ready(Some(Ok(_))) => Some(this.taking.now()),
            _ => None,
        };
        if *this.waiting_since != now {
            if let Some(t) = *this.waiting_since {
                this.taking.end(t);
            }
            if let Some(t) = now {
                this.taking.begin(t);
            }
            *this.waiting_since = now;
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
        t.waiting.iter().any(|w| w.load(Ordering::Relaxed) > 0)
    }

    #[test]
    fn a_body_not_taken_for_three_ticks_ends_its_connection_whatever_others_do() {
        let taking = Arc::new(Taking::new());
        let stalled = taking.clone().track(Full::new(Bytes::from_static(b"ok")));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..2 {
            // Another body of the connection is taken from every tick: no matter.
            let mut other = Box::pin(taking.clone().track(Full::new(Bytes::from_static(b"x"))));
            assert!(other.as_mut().poll_frame(&mut cx).is_ready());
            assert!(!taking.tick(), "too early");
        }
        assert!(taking.tick(), "a body waited three ticks");
        // Taken from before the third tick: the wait starts again.
        let taking = Arc::new(Taking::new());
        let mut body = Box::pin(taking.clone().track(Gate(Arc::new(true.into()))));
        assert!(!taking.tick());
        assert!(!taking.tick());
        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        assert!(!taking.tick());
        assert!(!taking.tick());
        assert!(taking.tick());
        drop(stalled);
    }

    #[tokio::test]
    async fn a_body_waits_on_the_client_until_polled_and_not_while_its_backend_is_silent() {
        let taking = Arc::new(Taking::new());
        assert!(!waits(&taking));
        // Handed over: waiting until polled, and no longer once over or dropped.
        let mut body = taking.clone().track(Full::new(Bytes::from_static(b"ok")));
        assert!(waits(&taking));
        assert_eq!(
            body.frame().await.map(|f| f.map(|f| f.into_data().ok())),
            Some(Ok(Some(Bytes::from_static(b"ok"))))
        );
        assert!(waits(&taking), "a frame given waits");
        assert!(body.frame().await.is_none());
        assert!(!waits(&taking));
        let body = taking.clone().track(Full::new(Bytes::new()));
        assert!(waits(&taking));
        drop(body);
        assert!(!waits(&taking));

        // A body whose backend has sent nothing yet waits on the backend, through any
        // number of ticks.
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut body = Box::pin(taking.clone().track(Gate(open.clone())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert!(!waits(&taking));
        for _ in 0..5 {
            assert!(!taking.tick());
        }
        open.store(true, Ordering::Relaxed);
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(waits(&taking));
    }
}
