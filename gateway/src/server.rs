//! Phase 1, accept: the listener. HTTP/1.1 and HTTP/2 (ALPN on TLS, prior knowledge on plain
//! sockets), a connection cap, header-read and idle timeouts, and graceful draining.
//!
//! A plain connection starts on the lean HTTP/1.1 path ([`crate::h1`]) and comes to the general
//! path here, hyper's server, at the first request that path does not take; TLS connections are
//! served here throughout.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::{Service, ServiceExt};

use crate::body::Body;
use crate::config::{Limits, Timeouts};
use crate::context::ConnInfo;
use crate::framing::{FramingLog, Sniff};

/// What every connection is held to.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub limits: Limits,
    pub timeouts: Timeouts,
}

/// Streams open at once on one HTTP/2 connection; more are refused with `REFUSED_STREAM`.
const MAX_STREAMS: u32 = 256;
/// Streams a client may cancel before the gateway took them up, on one connection, before
/// the connection ends with `GOAWAY` (`ENHANCE_YOUR_CALM`).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the gateway may reset for the client's errors on one connection, before the
/// connection ends with `GOAWAY` (`ENHANCE_YOUR_CALM`).
const MAX_LOCAL_ERROR_RESETS: usize = 256;

fn builder(settings: &ConnSettings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // The header-read timeout is enforced in `serve_conn`, from a head's first byte: hyper's own
    // would also run while a keep-alive connection waits for its next request, cutting the idle
    // timeout short.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // hyper refuses buffers under 8 KiB.
        .max_buf_size(settings.limits.max_header_bytes.max(8192) + 1024)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        // Rapid Reset (CVE-2023-44487): streams the client cancels before they are taken up.
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        // MadeYouReset (CVE-2025-8671): streams the client makes the gateway reset.
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .max_header_list_size(u32::try_from(settings.limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Serves `listener` until `shutdown` turns true, then drains within the grace period.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Option<Arc<arc_swap::ArcSwap<rustls::ServerConfig>>>,
    svc: S,
    settings: ConnSettings,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let max = settings.limits.max_connections;
    let conns = Arc::new(Semaphore::new(max));
    let builder = Arc::new(builder(&settings));
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        let builder = builder.clone();
        // The certificate in force when the connection came: a reload swaps it for the next.
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.load_full()));
        let settings = settings.clone();
        let shutdown = shutdown.clone();
        let local = local.unwrap_or(peer);
        tokio::spawn(async move {
            let framing = Arc::new(FramingLog::default());
            let info = |tls: bool, sni: Option<String>, client_cert| {
                Arc::new(
                    ConnInfo::new(peer, local, tls, sni, framing.clone())
                        .with_client_cert(client_cert),
                )
            };
            match acceptor {
                None => {
                    // The lean path first; the general path from the first request it does
                    // not take ([`crate::h1`]).
                    let info = info(false, None, None);
                    let (mut svc, mut shutdown) = (svc, shutdown);
                    let ended =
                        crate::h1::serve(stream, info.clone(), &mut svc, &settings, &mut shutdown)
                            .await;
                    if let crate::h1::Ended::HandOff(stream, read) = ended {
                        let io = Sniff::new(
                            crate::h1::Prefixed::new(read.freeze(), stream),
                            framing.clone(),
                        );
                        serve_conn(&builder, io, info, svc, &settings, shutdown).await;
                    }
                }
                Some(acceptor) => {
                    let hs = tokio::time::timeout(
                        settings.timeouts.header_read,
                        acceptor.accept(stream),
                    )
                    .await;
                    let Ok(Ok(tls)) = hs else {
                        tracing::debug!("TLS handshake failed or timed out");
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let sni = tls.get_ref().1.server_name().map(str::to_ascii_lowercase);
                    // Verified against server.tls.client_ca during the handshake.
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned());
                    let io = if h2 {
                        Sniff::off(tls, framing.clone())
                    } else {
                        Sniff::new(tls, framing.clone())
                    };
                    serve_conn(
                        &builder,
                        io,
                        info(true, sni, client_cert),
                        svc,
                        &settings,
                        shutdown,
                    )
                    .await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    // Drain: every connection holds a permit; all permits back means all connections closed.
    let grace = settings.timeouts.shutdown_grace;
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, conns.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "shutdown grace period over; closing remaining connections"
        );
    }
}

/// How a request was handed to the connection's pipeline.
enum InPlace<S: Service<Request<Body>>> {
    /// Called on the connection's own pipeline: no copy of it per request.
    Called(S::Future),
    /// A copy of the pipeline waits for readiness, then takes the request: an HTTP/2 stream,
    /// or a pipeline that was not ready (boxed: the HTTP/1 path stays small).
    Wait(Box<(S, Request<Body>)>),
    /// The pipeline was in use (calls are never nested, so this does not happen).
    Busy,
}

/// Calls the connection's pipeline in place when it is ready. Every phase is ready at once
/// (none holds back requests in `poll_ready`; limits answer in `call`), so a request costs no
/// clone of the pipeline and its handles; a pipeline that is not ready is cloned and awaited
/// as `oneshot` would.
fn call_in_place<S>(svc: &std::cell::RefCell<S>, req: Request<Body>) -> InPlace<S>
where
    S: Service<Request<Body>> + Clone,
{
    let Ok(mut s) = svc.try_borrow_mut() else {
        return InPlace::Busy;
    };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match s.poll_ready(&mut cx) {
        std::task::Poll::Ready(_) => InPlace::Called(s.call(req)),
        std::task::Poll::Pending => InPlace::Wait(Box::new((s.clone(), req))),
    }
}

async fn serve_conn<IO, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: Sniff<IO>,
    info: Arc<ConnInfo>,
    svc: S,
    settings: &ConnSettings,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let framing = info.framing.clone();
    let activity = io.activity();
    // A new HTTP/1 (or not yet known) connection must deliver its first request head within
    // the header-read timeout. An HTTP/2 connection chosen by ALPN has no heads the sniffer
    // reads, so nothing would end that wait: it is bounded by the idle timeout instead.
    if io.follows_heads() {
        framing.head_started();
    }
    let svc = std::cell::RefCell::new(svc);
    let taking = Arc::new(crate::sending::Taking::new());
    let tracker = taking.clone();
    let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(Body::incoming);
        req.extensions_mut()
            .insert(crate::context::Received::now(info.clone()));
        // HTTP/1 requests of a connection come one after another: calling the pipeline in
        // place saves a copy of it per request. HTTP/2 streams of one connection are handled
        // in parallel, each in its own task, so each takes its own copy and does its work
        // there rather than on the connection's task.
        let call = if req.version() == http::Version::HTTP_2 {
            match svc.try_borrow() {
                Ok(s) => InPlace::Wait(Box::new((s.clone(), req))),
                Err(_) => InPlace::Busy,
            }
        } else {
            call_in_place(&svc, req)
        };
        let tracker = tracker.clone();
        async move {
            let res = match call {
                InPlace::Called(fut) => fut.await,
                InPlace::Wait(waiting) => {
                    let (svc, req) = *waiting;
                    svc.oneshot(req).await
                }
                InPlace::Busy => Ok(crate::context::missing()),
            };
            res.map(|mut r| {
                // A backend's lines kept as they came are for the lean server, which writes
                // them itself; were any to come this way, hyper gets them as header values.
                if let Some(raw) = r
                    .extensions_mut()
                    .get_mut::<crate::context::Summary>()
                    .and_then(|s| s.raw.take())
                {
                    raw.into_map(r.headers_mut());
                }
                r.map(|b| tracker.track(b))
            })
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_svc);
    tokio::pin!(conn);
    let idle = settings.timeouts.idle;
    let header_read = settings.timeouts.header_read;
    let send = settings.timeouts.send;
    // The send timeout's clock ([`crate::sending`]): a tick every half of it.
    let mut next_tick = Instant::now() + send / 2;
    // When the connection began to close (shutdown, or idle): what is in flight may finish,
    // but a connection on which nothing then moves for a further idle period is dropped (a
    // client that stopped reading its response, a response that stopped coming).
    let mut closing_since = shutdown.borrow().then(Instant::now);
    if closing_since.is_some() {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let now = Instant::now();
        let head_deadline = framing.head_in_progress_since().map(|t| t + header_read);
        if head_deadline.is_some_and(|d| d <= now) {
            // A head that does not finish in time (slowloris): drop the connection.
            tracing::debug!("request head not received in time; closing the connection");
            return;
        }
        // A response the client takes nothing of (a reader that stopped, an HTTP/2 window
        // kept shut), whatever else moves on the connection: drop it.
        if next_tick <= now {
            next_tick = now + send / 2;
            if taking.tick() {
                tracing::debug!(
                    "the client took nothing of a response in time; closing the connection"
                );
                return;
            }
        }
        let quiet_since = match closing_since {
            Some(since) => activity.last().max(since),
            None => activity.last(),
        };
        if quiet_since + idle <= now {
            if closing_since.is_some() {
                tracing::debug!("nothing moved on a closing connection; dropping it");
                return;
            }
            closing_since = Some(now);
            conn.as_mut().graceful_shutdown();
            continue;
        }
        let mut deadline = quiet_since + idle;
        if let Some(h) = head_deadline {
            deadline = deadline.min(h);
        }
        deadline = deadline.min(next_tick);
        let deadline = tokio::time::Instant::from_std(deadline);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if closing_since.is_none() => {
                closing_since = Some(Instant::now());
                conn.as_mut().graceful_shutdown();
            }
            // Looked at again at the top of the loop.
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}
