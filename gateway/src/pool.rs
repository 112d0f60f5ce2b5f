//! The connection pool for plain HTTP/1.1 backends.
//!
//! The general client (`hyper_util`'s pooled client) serves TLS and HTTP/2 backends. For the
//! most common backend, plain HTTP/1.1 on a private network, this pool skips the connector
//! machinery and the keyed pool map. Requests go through the lean exchange ([`crate::lean`]) on
//! the request's own task, streamed bodies too; protocol upgrades and `CONNECT` through hyper's
//! HTTP/1.1 client, whose idle `SendRequest` handles are kept here too, each driven by its own
//! connection task. A request whose kept connection turned out to be
//! closed is retried once on a new connection when it cannot have been acted on or is
//! idempotent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::body::{Body, Upstream};
use crate::lean::{self, LeanError};

/// Why a request did not get a response from the backend.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, timed out).
    Connect(String),
    /// The connection broke or the backend answered with something that is not HTTP.
    Http(hyper::Error),
    /// From the general client (TLS and HTTP/2 backends).
    Client(hyper_util::client::legacy::Error),
    /// From the lean exchange.
    Lean(LeanError),
}

impl SendError {
    /// Whether the client's own body failed while it was passed on (the client went away, or
    /// sent less than it said): not the backend's doing.
    pub fn is_request_body(&self) -> bool {
        matches!(self, SendError::Lean(LeanError::Request(_)))
    }

    /// Whether the backend did not answer within its response timeout (the lean exchange
    /// keeps that timeout itself).
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendError::Lean(LeanError::TimedOut))
    }

    /// Whether the backend could not be reached at all (passive health counts these).
    pub fn is_connect(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Http(_) => false,
            SendError::Client(e) => e.is_connect(),
            SendError::Lean(_) => false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Http(e) => write!(f, "{e}"),
            SendError::Client(e) => write!(f, "{e}"),
            SendError::Lean(e) => write!(f, "{e}"),
        }
    }
}

/// What a pool's checkout does with a kept connection it looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Use it for this request.
    Take,
    /// Not now (its previous response is still being read); it stays.
    Keep,
    /// Closed or otherwise unusable: it is dropped.
    Drop,
}

/// Kept idle connections of one backend, newest last, each with the time it was put back;
/// those idle longer than the timeout are dropped at checkout, and at most `max` are kept.
pub struct Kept<T> {
    list: Mutex<Vec<(T, Instant)>>,
    max: usize,
    timeout: Duration,
}

impl<T> std::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("idle", &self.list.lock().map_or(0, |v| v.len()))
            .finish()
    }
}

impl<T> Kept<T> {
    pub fn new(max: usize, timeout: Duration) -> Kept<T> {
        Kept {
            list: Mutex::new(Vec::new()),
            max,
            timeout,
        }
    }

    /// The newest kept connection `fit` takes. Expired ones and those `fit` drops are dropped
    /// on the way; those it keeps stay for later.
    pub fn checkout(&self, fit: impl FnMut(&mut T) -> Fit) -> Option<T> {
        self.checkout_at(Instant::now(), fit)
    }

    /// [`Kept::checkout`] with the clock already read: `now` is when the caller started
    /// the request the connection is for.
    pub fn checkout_at(&self, now: Instant, mut fit: impl FnMut(&mut T) -> Fit) -> Option<T> {
        let mut list = self.list.lock().ok()?;
        let mut k = list.len();
        while k > 0 {
            k -= 1;
            let (conn, since) = &mut list[k];
            let verdict = if now.duration_since(*since) > self.timeout {
                Fit::Drop
            } else {
                fit(conn)
            };
            match verdict {
                Fit::Take => return Some(list.swap_remove(k).0),
                Fit::Drop => drop(list.swap_remove(k)),
                Fit::Keep => {}
            }
        }
        None
    }

    /// Keeps a connection for a later request, unless `max` are kept already. A full list is
    /// rid of its expired connections first: a checkout takes the newest, so under steady load
    /// the oldest would otherwise sit there (sockets the backend may have closed) and keep
    /// new connections out.
    pub fn checkin(&self, conn: T) {
        let Ok(mut list) = self.list.lock() else {
            return;
        };
        let now = Instant::now();
        if list.len() >= self.max {
            list.retain(|(_, since)| now.duration_since(*since) <= self.timeout);
        }
        if list.len() < self.max {
            list.push((conn, now));
        }
    }
}

/// The idle connections of one plain HTTP/1.1 backend.
pub struct H1Pool {
    /// `host:port` as configured (resolved at connect time unless it is an address).
    target: String,
    addr: Option<SocketAddr>,
    connect_timeout: Duration,
    /// The wait for an answer's head once the request is written, and the longest wait for
    /// a streamed body to move on (the lean exchange; hyper's client is timed by its caller).
    response_timeout: Duration,
    /// Connections driven by hyper's client.
    idle: Kept<http1::SendRequest<Body>>,
    /// Connections of the lean exchange (shared with its response bodies, which give their
    /// connection back when read to the end).
    pub(crate) lean_idle: Arc<Kept<lean::Conn>>,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("target", &self.target)
            .field("idle", &self.idle)
            .field("lean_idle", &self.lean_idle)
            .finish()
    }
}

impl H1Pool {
    pub fn new(
        host: &str,
        port: u16,
        connect_timeout: Duration,
        response_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> H1Pool {
        // An IPv6 literal comes bracketed in a URI's authority.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = bare
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        H1Pool {
            target: format!("{host}:{port}"),
            addr,
            connect_timeout,
            response_timeout,
            idle: Kept::new(max_idle, idle_timeout),
            lean_idle: Arc::new(Kept::new(max_idle, idle_timeout)),
        }
    }

    /// A hyper connection that can take a request now, if one is kept. One whose previous
    /// response is still streaming stays for later.
    fn checkout(&self) -> Option<http1::SendRequest<Body>> {
        self.idle.checkout(|sender| {
            if sender.is_closed() {
                Fit::Drop
            } else if sender.is_ready() {
                Fit::Take
            } else {
                Fit::Keep
            }
        })
    }

    fn checkin(&self, sender: http1::SendRequest<Body>) {
        if !sender.is_closed() {
            self.idle.checkin(sender);
        }
    }

    /// A new TCP connection to the backend.
    async fn connect_stream(&self) -> Result<tokio::net::TcpStream, SendError> {
        let connecting = async {
            match self.addr {
                Some(a) => tokio::net::TcpStream::connect(a).await,
                None => tokio::net::TcpStream::connect(self.target.as_str()).await,
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SendError::Connect(format!("{}: {e}", self.target))),
            Err(_) => {
                return Err(SendError::Connect(format!(
                    "{}: no connection within {:?}",
                    self.target, self.connect_timeout
                )));
            }
        };
        // Nagle would hold small request heads back; a failure here only costs latency.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self) -> Result<http1::SendRequest<Body>, SendError> {
        let stream = self.connect_stream().await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends a request (URI in origin form, `Host` set) and returns the response head; the
    /// connection goes back to the pool, to be reused once its response has been read.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Upstream>, SendError> {
        match lean::prepare(req, &lean::Extra::NONE) {
            Ok(mut p) => self.send_lean(&mut p, Instant::now()).await,
            Err(req) => Ok(self.send_hyper(req).await?.map(Upstream::Left)),
        }
    }

    /// Sends a request prepared for the lean client ([`lean::prepare`]). `sent` is when the
    /// caller began sending it: the kept connections' ages and the answer's deadline are
    /// counted from it, without reading the clock again.
    pub async fn send_lean(
        &self,
        p: &mut lean::Prepared,
        sent: Instant,
    ) -> Result<Response<Upstream>, SendError> {
        // Upstream writes are coalesced per scheduler round: the requests of the other
        // connections that are ready now get their turn first, so the backend is woken once
        // for the lot rather than once per request. Where the backend shares the gateway's
        // cores (a sidecar, or the benchmark's single core), that halves the context switches
        // per request (0.78 to 0.40 in the benchmark) for one extra poll of the task.
        tokio::task::yield_now().await;
        let quiet = |c: &mut lean::Conn| if c.is_quiet() { Fit::Take } else { Fit::Drop };
        let (conn, reused) = match self.lean_idle.checkout_at(sent, quiet) {
            Some(c) => (c, true),
            None => (lean::Conn::new(self.connect_stream().await?), false),
        };
        let wait = self.response_timeout;
        let res = match lean::exchange(conn, p, &self.lean_idle, wait, sent).await {
            // The kept connection had closed: once more, on a new one, when that is safe.
            Err(e) if reused && p.retryable(&e) => {
                let conn = lean::Conn::new(self.connect_stream().await?);
                lean::exchange(conn, p, &self.lean_idle, wait, Instant::now()).await
            }
            res => res,
        };
        res.map(|r| r.map(Upstream::Right)).map_err(SendError::Lean)
    }

    async fn send_hyper(&self, req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let (mut sender, reused) = match self.checkout() {
            Some(s) => (s, true),
            None => (self.connect().await?, false),
        };
        match sender.try_send_request(req).await {
            Ok(res) => {
                self.checkin(sender);
                Ok(res)
            }
            Err(mut e) => match e.take_message() {
                // The kept connection closed before the request was written: once more, on a
                // new connection.
                Some(req) if reused => {
                    let mut sender = self.connect().await?;
                    let res = sender.send_request(req).await.map_err(SendError::Http)?;
                    self.checkin(sender);
                    Ok(res)
                }
                _ => Err(SendError::Http(e.into_error())),
            },
        }
    }
}

#[cfg(test)]
impl H1Pool {
    /// A pool for a test backend: one second to connect, 30 s for an answer, idle connections
    /// kept 90 s, at most 8.
    pub(crate) fn for_test(addr: SocketAddr) -> H1Pool {
        H1Pool::new(
            &addr.ip().to_string(),
            addr.port(),
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(90),
            8,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_full_list_makes_room_by_dropping_expired_connections() {
        let kept: Kept<&str> = Kept::new(2, Duration::from_millis(50));
        kept.checkin("a");
        kept.checkin("b");
        // Full: a third is not kept while the others are fresh.
        kept.checkin("c");
        assert_eq!(kept.list.lock().unwrap().len(), 2);
        std::thread::sleep(Duration::from_millis(80));
        // Once they expired, a connection put back takes their place.
        kept.checkin("d");
        assert_eq!(kept.checkout(|_| Fit::Take), Some("d"));
        assert_eq!(kept.checkout(|_| Fit::Take), None);
    }

    #[test]
    fn a_checkout_counts_a_kept_connections_age_to_the_time_it_is_given() {
        let kept: Kept<&str> = Kept::new(4, Duration::from_secs(60));
        kept.checkin("a");
        let now = Instant::now();
        // At a time within the timeout it is taken; given a time past it, it is dropped, not
        // taken, though no clock has moved that far.
        assert_eq!(kept.checkout_at(now, |_| Fit::Take), Some("a"));
        kept.checkin("a");
        let later = now + Duration::from_secs(61);
        assert_eq!(kept.checkout_at(later, |_| Fit::Take), None);
        assert_eq!(kept.list.lock().unwrap().len(), 0);
        // A connection put back after the time given (a request that read the clock before
        // another finished) is not older than nothing.
        kept.checkin("b");
        let earlier = now - Duration::from_millis(1);
        assert_eq!(kept.checkout_at(earlier, |_| Fit::Take), Some("b"));
    }

    /// A raw backend: answers every request head with `ok`; after `per_conn` answers on a
    /// connection it closes that connection (without saying so in the response).
    async fn backend(per_conn: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        crate::lean::tests::each_connection(move |mut s| async move {
            let mut buf = Vec::new();
            let mut answered = 0;
            let mut chunk = [0u8; 1024];
            while answered < per_conn {
                let Ok(n) = s.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                    answered += 1;
                }
            }
        })
        .await
    }

    async fn get(p: &H1Pool) -> Result<String, SendError> {
        let req = Request::builder()
            .uri("/x")
            .header("host", "backend")
            .body(Body::Empty)
            .unwrap();
        let res = p.send(req).await?;
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let (addr, conns) = backend(usize::MAX).await;
        let p = H1Pool::for_test(addr);
        for _ in 0..5 {
            assert_eq!(get(&p).await.unwrap(), "ok");
            // Let the connection task see the end of the response.
            tokio::task::yield_now().await;
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_is_replaced() {
        let (addr, conns) = backend(1).await;
        let p = H1Pool::for_test(addr);
        for _ in 0..3 {
            assert_eq!(get(&p).await.unwrap(), "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = get(&H1Pool::for_test(addr)).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
        assert!(err.to_string().starts_with("connect: 127.0.0.1:"), "{err}");
    }
}
