//! Harness for Domicile's end-to-end tests: real HTTP backends that record what they receive,
//! generated GeoIP databases and certificates, and the real gateway on loopback port 0.
//!
//! # Layout
//! - [`Backend`]: a recording HTTP/1.1 + HTTP/2 backend, plain or TLS (optionally requiring a
//!   client certificate).
//! - [`Pki`]: a throwaway CA and leaf certificates made with rcgen.
//! - [`Gateway`]: a running gateway from config text, with its trace directory.
//! - [`client`]: small HTTP clients (HTTP/1.1, h2c, raw TCP).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// One request a backend received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

/// A recording backend.
#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub name: &'static str,
    received: Arc<Mutex<Vec<Received>>>,
}

/// How a backend answers.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    pub tls: Option<(rustls::ServerConfig,)>,
    pub delay: Option<Duration>,
    /// Answer `Upgrade` requests with 101 and echo the tunnel's bytes back.
    pub upgrade_echo: bool,
    /// When set, `GET /healthz` answers 200 while the flag is true and 503 otherwise
    /// (health checks are not recorded as received requests).
    pub health: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        Backend::start_with(name, BackendOptions::default()).await
    }

    pub async fn start_with(name: &'static str, opts: BackendOptions) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let acceptor = opts
            .tls
            .map(|(cfg,)| tokio_rustls::TlsAcceptor::from(Arc::new(cfg)));
        let delay = opts.delay;
        let upgrade_echo = opts.upgrade_echo;
        let health = opts.health.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let rec = rec.clone();
                let acceptor = acceptor.clone();
                let health = health.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        let rec = rec.clone();
                        let health = health.clone();
                        async move {
                            if let Some(h) = &health
                                && req.uri().path() == "/healthz"
                            {
                                let mut res = Response::new(Full::new(Bytes::new()));
                                if !h.load(std::sync::atomic::Ordering::SeqCst) {
                                    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                }
                                return Ok::<_, Infallible>(res);
                            }
                            if upgrade_echo && req.headers().contains_key("upgrade") {
                                let on = hyper::upgrade::on(&mut req);
                                tokio::spawn(async move {
                                    if let Ok(up) = on.await {
                                        let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                                        let _ = tokio::io::copy(&mut r, &mut w).await;
                                    }
                                });
                                let mut res = Response::new(Full::new(Bytes::new()));
                                *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                                res.headers_mut().insert("upgrade", "echo".parse().unwrap());
                                res.headers_mut()
                                    .insert("connection", "upgrade".parse().unwrap());
                                rec.lock().unwrap().push(Received {
                                    method: req.method().to_string(),
                                    path: req.uri().to_string(),
                                    version: req.version(),
                                    headers: req.headers().clone(),
                                    body: Bytes::new(),
                                    trailers: None,
                                });
                                return Ok::<_, Infallible>(res);
                            }
                            let (parts, body) = req.into_parts();
                            // What the test asks the answer's Cache-Control to be.
                            let cache_control = parts.headers.get("x-reply-cache-control").cloned();
                            let collected = body.collect().await.unwrap();
                            let trailers = collected.trailers().cloned();
                            rec.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map_or("/".into(), |p| p.to_string()),
                                version: parts.version,
                                headers: parts.headers,
                                body: collected.to_bytes(),
                                trailers,
                            });
                            if let Some(d) = delay {
                                tokio::time::sleep(d).await;
                            }
                            let mut res = Response::new(Full::new(Bytes::from(name)));
                            res.headers_mut().insert("x-backend", name.parse().unwrap());
                            if let Some(cc) = cache_control {
                                res.headers_mut().insert("cache-control", cc);
                            }
                            res.headers_mut()
                                .insert("connection", "x-hop".parse().unwrap());
                            res.headers_mut()
                                .insert("x-hop", "must-not-pass".parse().unwrap());
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await;
                        }
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            name,
            received,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A backend URL nothing answers at: port 1 on loopback. Servers that bind port 0 are given
/// ports from the ephemeral range, never this one, so no test's listener can take it (a port
/// picked by binding 0 and letting go can be taken by the next server any test starts).
pub fn closed_url() -> String {
    "http://127.0.0.1:1".to_owned()
}

/// A throwaway certificate authority.
#[allow(missing_debug_implementations)]
pub struct Pki {
    pub ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and key, in PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Domicile Test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes `text` to `dir/name` and returns the path.
/// A backend of raw connections on a loopback port: `handle` gets each accepted connection,
/// on a task of its own.
pub async fn serve_raw<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(handle(stream));
        }
    });
    addr
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A GeoIP database for the test networks: 192.0.2.0/24 DE, 198.51.100.0/24 US,
/// 203.0.113.0/24 JP, 2001:db8::/32 FR.
pub fn geoip_file(dir: &Path) -> PathBuf {
    let bytes = domicile_regions::geoip::build_country_db(
        &[
            ("192.0.2.0/24", "DE"),
            ("198.51.100.0/24", "US"),
            ("203.0.113.0/24", "JP"),
            ("2001:db8::/32", "FR"),
        ],
        "Test-Country",
    )
    .unwrap();
    let p = dir.join("country.mmdb");
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A dry-run route (`/trial`, processing, fixed in `us-east`), for tests that append it to a
/// config.
pub const DRY_RUN_ROUTE: &str = r#"
[[routes]]
id = "trial"
path = "/trial"
purpose = "processing"
placement = "fixed"
region = "us-east"
mode = "dry_run"
"#;

/// The standard two-region config: eu-central (DE, acme-eu) and us-east (US, acme-us without
/// DPF), routes /customers (home), /analytics (fixed us-east), /catalog (any, us-east).
/// `extra` is appended (more routes, options).
pub fn two_regions(eu: &str, us: &str, trace_dir: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[server.timeouts]
shutdown_grace = "5s"

[admin]
listen = "127.0.0.1:0"

[log]
level = "warn"

[trace]
dir = "{trace}"
durability = "batch"

[geoip]
database = "country.mmdb"

[network]
trusted_proxies = ["127.0.0.0/8"]

[[entities]]
id = "acme-eu"
country = "DE"
sector = "commercial"

[[entities]]
id = "acme-us"
country = "US"
sector = "commercial"

[[regions]]
id = "eu-central"
country = "DE"
entity = "acme-eu"
serves = ["EEA"]
backends = [{{ url = "{eu}" }}]

[[regions]]
id = "us-east"
country = "US"
entity = "acme-us"
serves = ["US"]
backends = [{{ url = "{us}" }}]

[[routes]]
id = "customers"
path = "/customers"
purpose = "storage"
placement = "home"

[[routes]]
id = "analytics"
path = "/analytics"
purpose = "processing"
placement = "fixed"
region = "us-east"

[[routes]]
id = "catalog"
path = "/catalog"
purpose = "catalog"
placement = "any"
region = "us-east"
{extra}
"#,
        trace = trace_dir.display()
    )
}

/// A region directory's trace files in chain order: sealed files by sequence, then the active
/// `decisions.jsonl`.
pub fn trace_files(region_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(region_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    // "decisions-000001.jsonl" sorts before "decisions.jsonl".
    files.sort();
    files
}

/// A running gateway with its working directory.
#[allow(missing_debug_implementations)]
pub struct Gateway {
    pub running: domicile_gateway::Running,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Gateway {
    /// Writes `text` as `domicile.toml` (with a GeoIP file beside it) and starts the gateway.
    pub async fn start(dir: tempfile::TempDir, text: &str, watch: bool) -> Gateway {
        geoip_file(dir.path());
        let config_path = write(dir.path(), "domicile.toml", text);
        let config = domicile_gateway::Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let running = domicile_gateway::start(
            config,
            domicile_gateway::StartOptions {
                listen: None,
                admin_listen: None,
                config_path: Some(config_path.clone()),
                watch,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        Gateway {
            running,
            dir,
            config_path,
        }
    }

    /// The standard two-region gateway in front of `eu` and `us`.
    pub async fn two_regions(eu: &Backend, us: &Backend, extra: &str) -> Gateway {
        Gateway::with_urls(&eu.url(), &us.url(), extra).await
    }

    /// The standard two-region gateway in front of these backend URLs.
    pub async fn with_urls(eu: &str, us: &str, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("traces");
        let text = two_regions(eu, us, &trace, extra);
        Gateway::start(dir, &text, false).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.admin_addr, path)
    }

    pub fn trace_dir(&self) -> PathBuf {
        self.dir.path().join("traces")
    }

    /// Every decision record written so far, from every region file, as JSON.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|r| r["schema"] == "domicile.decision/1")
            .collect()
    }

    /// Every outcome line written so far.
    pub fn outcomes(&self) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|r| r["schema"] == "domicile.outcome/1")
            .collect()
    }

    /// Every trace line, decisions and outcomes.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.trace_dir()) else {
            return out;
        };
        for d in dirs.flatten() {
            for f in trace_files(&d.path()) {
                if let Ok(text) = std::fs::read_to_string(&f) {
                    for line in text.lines() {
                        out.push(serde_json::from_str(line).unwrap());
                    }
                }
            }
        }
        out
    }

    /// The record with this decision id.
    pub fn record(&self, id: &str) -> serde_json::Value {
        self.records()
            .into_iter()
            .find(|r| r["decision_id"] == id)
            .unwrap_or_else(|| panic!("no record for decision {id}"))
    }

    /// All trace file text concatenated (for scanning for values that must not be there).
    pub fn trace_text(&self) -> String {
        let mut s = String::new();
        if let Ok(dirs) = std::fs::read_dir(self.trace_dir()) {
            for d in dirs.flatten() {
                for f in trace_files(&d.path()) {
                    s.push_str(&std::fs::read_to_string(f).unwrap_or_default());
                }
            }
        }
        s
    }
}

pub mod client {
    //! Small clients for the tests.

    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;

    /// A response read fully.
    #[derive(Debug)]
    pub struct Reply {
        pub status: StatusCode,
        pub headers: HeaderMap,
        pub body: Bytes,
        pub version: http::Version,
    }

    impl Reply {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
            })
        }
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    fn client(h2: bool) -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build_http()
    }

    /// Sends a request over HTTP/1.1 (or h2c prior knowledge with `h2`).
    pub async fn send(req: Request<Full<Bytes>>, h2: bool) -> Reply {
        let res = client(h2).request(req).await.unwrap();
        let (parts, body) = res.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
            version: parts.version,
        }
    }

    /// POSTs JSON from a simulated client address (trusted X-Forwarded-For).
    pub async fn post_json(url: &str, client_ip: &str, json: &str) -> Reply {
        let req = Request::post(url)
            .header("content-type", "application/json")
            .header("x-forwarded-for", client_ip)
            .body(Full::new(Bytes::from(json.to_owned())))
            .unwrap();
        send(req, false).await
    }

    /// POSTs JSON over TLS and HTTP/1.1 to `localhost` at `addr`, with `cfg` (which may carry
    /// a client certificate) and extra headers.
    pub async fn tls_post(
        addr: SocketAddr,
        cfg: rustls::ClientConfig,
        path: &str,
        headers: &[(&str, &str)],
        json: &str,
    ) -> Reply {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::post(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = send
            .send_request(b.body(Full::new(Bytes::from(json.to_owned()))).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
            version: parts.version,
        }
    }

    pub async fn get(url: &str) -> Reply {
        get_with(url, &[]).await
    }

    /// `GET url` over HTTP/1.1 with these request headers.
    pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::get(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        send(req.body(Full::new(Bytes::new())).unwrap(), false).await
    }

    /// Writes raw bytes on a new connection and reads until the server closes it (or 5 s pass).
    pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> (String, bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) => break true,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(_)) => break true,
                Err(_) => break false,
            }
        };
        (String::from_utf8_lossy(&out).into_owned(), closed)
    }
}

/// A decision record's findings as (category, location) pairs, in record order.
pub fn findings_of(rec: &serde_json::Value) -> Vec<(&str, &str)> {
    rec["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["category"].as_str().unwrap_or(""),
                        f["location"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
