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

/// One backend of a region.
#[derive(Debug)]
pub struct Backend {
    pub url: Uri,
    pub protocol: Protocol,
    pub client: HttpClient,
    pub response_timeout: Duration,
}

/// The backends of one region, picked round-robin.
#[derive(Debug)]
pub struct RegionPool {
    pub backends: Vec<Backend>,
    next: AtomicUsize,
}

impl RegionPool {
    /// The next backend in turn.
    pub fn pick(&self) -> Option<(usize, &Backend)> {
        if self.backends.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        Some((n, &self.backends[n]))
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
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .http2_only(b.protocol == Protocol::Http2);
    Ok(Backend {
        url: b.url.clone(),
        protocol: b.protocol,
        client: builder.build(connector),
        response_timeout: b.response_timeout,
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
            },
        );
    }
    if errors.is_empty() {
        Ok(pools)
    } else {
        Err(errors)
    }
}
