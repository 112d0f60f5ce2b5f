//! The upstream client: one pooled hyper client per backend (HTTP/1.1 or HTTP/2, plain or TLS
//! with a custom CA and optional client certificate), grouped into region pools.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;
use crate::config::{BackendConfig, Protocol, RegionConfig};
use crate::tls;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// How long a backend that failed to answer is skipped (passive health), and the
/// `Retry-After` a client gets when no lawful region is up.
pub const DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(5);
pub const RETRY_AFTER_SECS: u32 = 5;

/// How long an idle upstream connection is kept, and how many per backend.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const POOL_MAX_IDLE: usize = 256;

fn now_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// One backend of a region.
#[derive(Debug)]
pub struct Backend {
    /// Until when (ms on the process clock) the backend is considered down; 0 when up.
    down_until: std::sync::atomic::AtomicU64,
    pub url: Uri,
    /// The backend's authority as a `Host` value, made once.
    pub host_header: Option<http::HeaderValue>,
    pub protocol: Protocol,
    pub client: HttpClient,
    /// The lean pool, for plain HTTP/1.1 backends.
    pub fast: Option<crate::pool::H1Pool>,
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    pub health: Option<(String, Duration)>,
    /// Requests awaiting this backend's response head.
    inflight: Arc<AtomicUsize>,
    /// At most this many at once; more are shed (`max_concurrent`).
    pub max_concurrent: Option<usize>,
}

/// A request's place under a backend's concurrency limit, held until the response body has
/// been passed on (or dropped).
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The outcome of choosing a backend.
#[derive(Debug)]
pub enum Pick<'a> {
    /// This backend, with the request's place under its limit.
    Backend(&'a Backend, InFlight),
    /// Every live backend is at its concurrency limit: the request is shed.
    Saturated,
    /// No backend is up.
    Down,
}

impl Backend {
    /// Sends a request to this backend: in origin form with a `Host` header for the lean
    /// HTTP/1.1 pool, with an absolute URI for the general client (see [`Backend::uses_pool`]).
    pub async fn send(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<crate::body::Upstream>, crate::pool::SendError> {
        match &self.fast {
            Some(pool) => pool.send(req).await,
            None => self
                .client
                .request(req)
                .await
                .map(|r| r.map(crate::body::Upstream::Left))
                .map_err(crate::pool::SendError::Client),
        }
    }

    /// The lean pool and the request written out for it, when the request can go that way
    /// ([`crate::lean::prepare`]); else the request back, for [`Backend::send`].
    // The request given back is the caller's own, not an error to shrink.
    #[allow(clippy::result_large_err)]
    pub fn prepare_lean(
        &self,
        req: http::Request<Body>,
        extra: &crate::lean::Extra<'_>,
    ) -> Result<(&crate::pool::H1Pool, crate::lean::Prepared), http::Request<Body>> {
        match &self.fast {
            Some(pool) => crate::lean::prepare(req, extra).map(|p| (pool, p)),
            None => Err(req),
        }
    }

    /// Whether requests go through the lean HTTP/1.1 pool (origin-form URIs).
    pub fn uses_pool(&self) -> bool {
        self.fast.is_some()
    }

    /// Takes a place under the concurrency limit, if one is free.
    pub fn try_acquire(&self) -> Option<InFlight> {
        let prev = self.inflight.fetch_add(1, Ordering::AcqRel);
        let slot = InFlight(self.inflight.clone());
        match self.max_concurrent {
            Some(max) if prev >= max => None,
            _ => Some(slot),
        }
    }

    pub fn is_up(&self) -> bool {
        // 0: never marked down (or marked up again); no need to read the clock.
        let until = self.down_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        if until > now_ms() {
            return false;
        }
        // The down period is over: forget it, so later requests skip the clock too (unless it
        // was marked down again meanwhile).
        let _ = self
            .down_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        true
    }

    /// Marks the backend up (a health check passed).
    pub fn mark_up(&self) {
        self.down_until.store(0, Ordering::Relaxed);
    }

    /// Marks the backend down for `d`.
    pub fn mark_down_for(&self, d: Duration) {
        self.down_until
            .store(now_ms() + d.as_millis() as u64, Ordering::Relaxed);
    }

    /// One active health check: `GET` the health path; 2xx is up, anything else down.
    pub async fn probe(&self) -> bool {
        let Some((path, interval)) = &self.health else {
            return true;
        };
        let base = self.url.path().trim_end_matches('/');
        let pq = format!("{base}{path}");
        let authority = self.url.authority().map_or("", |a| a.as_str());
        let uri = if self.uses_pool() {
            Uri::try_from(pq).map_err(http::Error::from)
        } else {
            Uri::builder()
                .scheme(self.url.scheme_str().unwrap_or("http"))
                .authority(authority)
                .path_and_query(pq)
                .build()
        };
        let Ok(uri) = uri else { return false };
        let mut req = http::Request::new(crate::body::Body::Empty);
        *req.uri_mut() = uri;
        // HTTP/1.1 on the lean pool needs a Host header; the general client sets its own.
        if self.uses_pool()
            && let Ok(host) = http::HeaderValue::from_str(authority)
        {
            req.headers_mut().insert(http::header::HOST, host);
        }
        let limit = (*interval).min(self.connect_timeout + Duration::from_secs(1));
        let ok = matches!(
            tokio::time::timeout(limit, self.send(req)).await,
            Ok(Ok(res)) if res.status().is_success()
        );
        if ok {
            self.mark_up();
        } else {
            // Down until a later check passes (or the passive window runs out).
            self.mark_down_for(*interval + DOWN_FOR);
        }
        ok
    }

    /// Marks the backend down for [`DOWN_FOR`] after it failed to answer.
    pub fn mark_failed(&self) {
        self.mark_down_for(DOWN_FOR);
    }
}

/// The backends of one region, picked round-robin.
#[derive(Debug)]
pub struct RegionPool {
    pub backends: Vec<Backend>,
    next: AtomicUsize,
    /// The region's id as the `domicile-region` response header: made once, shared by every
    /// response.
    pub header: Option<http::HeaderValue>,
}

impl RegionPool {
    /// The next live backend in turn with a free place under its concurrency limit.
    pub fn pick_slot(&self) -> Pick<'_> {
        let len = self.backends.len();
        if len == 0 {
            return Pick::Down;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut any_up = false;
        for k in 0..len {
            let b = &self.backends[(start + k) % len];
            if !b.is_up() {
                continue;
            }
            any_up = true;
            if let Some(slot) = b.try_acquire() {
                return Pick::Backend(b, slot);
            }
        }
        if any_up { Pick::Saturated } else { Pick::Down }
    }

    /// Whether any backend is up.
    pub fn has_live(&self) -> bool {
        self.backends.iter().any(Backend::is_up)
    }
}

fn build_backend(b: &BackendConfig) -> Result<Backend, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(b.connect_timeout));
    let https = b.url.scheme_str() == Some("https");
    let tls = tls::client_config(
        b.ca.as_deref(),
        b.client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
        // System roots are read only for HTTPS backends without their own CA.
        https,
    )
    .map_err(|e| format!("backend {}: {e}", b.url))?;
    // The connector sets ALPN from the protocols enabled here.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match b.protocol {
        Protocol::Http1 => builder.enable_http1().wrap_connector(http),
        Protocol::Http2 => builder.enable_http2().wrap_connector(http),
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE)
        .http2_only(b.protocol == Protocol::Http2);
    let fast = (!https && b.protocol == Protocol::Http1)
        .then(|| {
            let host = b.url.host()?;
            let port = b.url.port_u16().unwrap_or(80);
            Some(crate::pool::H1Pool::new(
                host,
                port,
                b.connect_timeout,
                b.response_timeout,
                POOL_IDLE_TIMEOUT,
                POOL_MAX_IDLE,
            ))
        })
        .flatten();
    Ok(Backend {
        down_until: std::sync::atomic::AtomicU64::new(0),
        url: b.url.clone(),
        host_header: b
            .url
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()),
        protocol: b.protocol,
        client: builder.build(connector),
        fast,
        response_timeout: b.response_timeout,
        connect_timeout: b.connect_timeout,
        health: b.health.clone(),
        inflight: Arc::new(AtomicUsize::new(0)),
        max_concurrent: b.max_concurrent,
    })
}

/// Builds every region's pool.
pub fn build_pools(regions: &[RegionConfig]) -> Result<HashMap<Arc<str>, RegionPool>, Vec<String>> {
    let mut errors = Vec::new();
    let mut pools = HashMap::default();
    for r in regions {
        let mut backends = Vec::new();
        for b in &r.backends {
            match build_backend(b) {
                Ok(b) => backends.push(b),
                Err(e) => errors.push(format!("region {}: {e}", r.id)),
            }
        }
        pools.insert(
            r.id.clone(),
            RegionPool {
                backends,
                next: AtomicUsize::new(0),
                header: http::HeaderValue::from_str(&r.id).ok(),
            },
        );
    }
    if errors.is_empty() {
        Ok(pools)
    } else {
        Err(errors)
    }
}

/// Runs the active health checks of every backend that has one, for as long as the snapshot
/// they belong to is alive (a reload builds new pools and new checks).
pub fn spawn_health_checks(snapshot: &std::sync::Arc<crate::state::Snapshot>) {
    let weak = std::sync::Arc::downgrade(snapshot);
    let has_checks = snapshot
        .pools
        .values()
        .any(|p| p.backends.iter().any(|b| b.health.is_some()));
    if !has_checks {
        return;
    }
    tokio::spawn(async move {
        let mut tick = Duration::from_secs(3600);
        loop {
            let Some(snap) = weak.upgrade() else { return };
            for pool in snap.pools.values() {
                for b in &pool.backends {
                    if let Some((_, interval)) = &b.health {
                        tick = tick.min(*interval);
                        b.probe().await;
                    }
                }
            }
            drop(snap);
            tokio::time::sleep(tick).await;
        }
    });
}
