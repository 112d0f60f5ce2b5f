//! One body type for both directions: streamed from hyper or a backend's connection, buffered
//! after inspection, or made by the gateway. An enum rather than a boxed trait object: no
//! allocation per request.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    /// Streamed as it arrives (pass-through routes).
    Incoming {
        body: hyper::body::Incoming,
        /// Fields its trailers lose besides those no trailer may carry ([`Body::deny_in_trailers`]).
        deny: Deny,
    },
    /// Buffered and inspected; trailers kept.
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// A buffered prefix followed by the rest of the stream (a body larger than the inspection
    /// buffer that a route keeps local).
    Chained {
        prefix: Option<Bytes>,
        rest: hyper::body::Incoming,
        /// The prefix's share of the inspection buffer budget, given back once the prefix is
        /// passed on: the rest streams through without being held, however long it takes.
        permit: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
        deny: Deny,
    },
    /// A backend's response that holds the request's place under the backend's concurrency
    /// limit until its last frame (or until it is dropped).
    Held {
        body: Upstream,
        slot: Option<crate::upstream::InFlight>,
        /// The longest wait for the next frame (the backend's response timeout), and its
        /// timer, started only once a frame was not ready.
        gap: std::time::Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

/// Field names a client's trailers lose, on top of those no trailer may carry: the configured
/// subject headers, which the resolve step reads from heads only.
pub type Deny = Option<std::sync::Arc<[http::HeaderName]>>;

impl Body {
    /// A client's body, streamed as it arrives.
    pub fn incoming(body: hyper::body::Incoming) -> Body {
        Body::Incoming { body, deny: None }
    }

    /// Whether part of a client's body may still be unread on its connection: a request
    /// answered now must close it, so that the rest is never read as a request of its own.
    pub fn unread_from_client(&self) -> bool {
        match self {
            Body::Incoming { body, .. } => !HttpBody::is_end_stream(body),
            Body::Chained { .. } => true,
            Body::Empty | Body::Buffered { .. } | Body::Held { .. } => false,
        }
    }

    /// From here on, the trailers of this client's body also lose the fields named in `names`.
    pub fn deny_in_trailers(&mut self, names: std::sync::Arc<[http::HeaderName]>) {
        match self {
            Body::Incoming { deny, .. } | Body::Chained { deny, .. } => *deny = Some(names),
            Body::Buffered {
                trailers: Some(t), ..
            } => strip_denied(t, &Some(names)),
            Body::Empty | Body::Buffered { .. } | Body::Held { .. } => {}
        }
    }

    /// A backend's response body, holding `slot` to its end; a wait of more than `gap` for
    /// its next frame fails it ([`Stalled`]).
    pub fn held(body: Upstream, slot: crate::upstream::InFlight, gap: std::time::Duration) -> Body {
        Body::Held {
            body,
            slot: Some(slot),
            gap,
            timer: None,
        }
    }
}

/// A backend that stopped sending its response body part-way: the client's response is cut
/// off (its connection closed) rather than held open for ever.
#[derive(Debug, thiserror::Error)]
#[error("the backend sent nothing more of its response body for {0:?}")]
pub struct Stalled(pub std::time::Duration);

/// A frame as it may be passed on: trailers lose the fields that would frame, route or
/// authenticate the message, or that only the gateway sets ([`crate::headers::trailer_allowed`]),
/// and those `deny` names.
fn sanitised(frame: Frame<Bytes>, deny: &Deny) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut t) => {
            crate::headers::strip_from_trailers(&mut t);
            strip_denied(&mut t, deny);
            Frame::trailers(t)
        }
        Err(frame) => frame,
    }
}

fn strip_denied(t: &mut HeaderMap, deny: &Deny) {
    if let Some(names) = deny {
        crate::headers::strip_fields(t, names);
    }
}

/// A client's frame as it is passed on ([`sanitised`], and without the fields in `deny`).
fn passed_on(
    frame: Poll<Option<Result<Frame<Bytes>, hyper::Error>>>,
    deny: &Deny,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    frame.map(|f| f.map(|f| f.map(|f| sanitised(f, deny)).map_err(Into::into)))
}

/// A backend's response body: from hyper's client (`Left`), or read off the connection by the
/// lean HTTP/1.1 exchange (`Right`).
pub type Upstream = http_body_util::Either<hyper::body::Incoming, crate::lean::LeanBody>;

impl Body {
    pub fn full(data: impl Into<Bytes>) -> Body {
        Body::Buffered {
            data: Some(data.into()),
            trailers: None,
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Incoming { body, deny } => passed_on(Pin::new(body).poll_frame(cx), deny),
            Body::Buffered { data, trailers } => {
                if let Some(d) = data.take().filter(|d| !d.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(
                    trailers
                        .take()
                        .map(|t| Ok(sanitised(Frame::trailers(t), &None))),
                )
            }
            Body::Chained {
                prefix,
                rest,
                permit,
                deny,
            } => {
                if let Some(d) = prefix.take() {
                    permit.take();
                    if !d.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(d))));
                    }
                }
                passed_on(Pin::new(rest).poll_frame(cx), deny)
            }
            Body::Held {
                body,
                slot,
                gap,
                timer,
            } => {
                let frame = Pin::new(body).poll_frame(cx);
                match &frame {
                    Poll::Pending => {
                        let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(*gap)));
                        if t.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        *timer = None;
                        slot.take();
                        tracing::warn!(
                            wait = ?*gap,
                            "a backend stopped sending its response body; the response is cut off"
                        );
                        return Poll::Ready(Some(Err(Stalled(*gap).into())));
                    }
                    Poll::Ready(Some(Ok(_))) => {
                        if let Some(t) = timer {
                            t.as_mut().reset(tokio::time::Instant::now() + *gap);
                        }
                    }
                    // The response is over: the place is free for the next request.
                    Poll::Ready(None | Some(Err(_))) => {
                        slot.take();
                    }
                }
                // A backend's trailers lose what the gateway's own fields and the framing
                // say, as they do in a response head.
                frame.map(|f| f.map(|f| f.map(|f| sanitised(f, &None))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Incoming { body, .. } => body.is_end_stream(),
            Body::Buffered { data, trailers } => {
                data.as_ref().is_none_or(Bytes::is_empty) && trailers.is_none()
            }
            Body::Chained { prefix, rest, .. } => {
                prefix.as_ref().is_none_or(Bytes::is_empty) && rest.is_end_stream()
            }
            Body::Held { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Incoming { body, .. } => body.size_hint(),
            Body::Buffered { data, trailers } => {
                let n = data.as_ref().map_or(0, |d| d.len() as u64);
                if trailers.is_some() {
                    let mut h = SizeHint::new();
                    h.set_lower(n);
                    h
                } else {
                    SizeHint::with_exact(n)
                }
            }
            Body::Chained { prefix, rest, .. } => {
                let n = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(r.lower() + n);
                if let Some(u) = r.upper() {
                    h.set_upper(u + n);
                }
                h
            }
            Body::Held { body, .. } => body.size_hint(),
        }
    }
}
