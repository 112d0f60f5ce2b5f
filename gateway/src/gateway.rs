//! Wiring: the shared state, the phase pipeline, and starting and stopping a gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;

use crate::config::Config;
use crate::decide::DecideStep;
use crate::edge::EdgeLayer;
use crate::enforce::EnforceStep;
use crate::forward::Forward;
use crate::inspect::InspectLayer;
use crate::limits::LimitsLayer;
use crate::resolve::ResolveStep;
use crate::route::RouteLayer;
use crate::server;
use crate::state::Snapshot;
use crate::step::StepLayer;
use crate::trace::{TraceLayer, TraceWriter};

/// State shared by every connection and the admin listener.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub instance: Arc<str>,
    pub instance_tag: u32,
    pub writer: TraceWriter,
    /// The file reloads read, when the config came from one.
    pub config_path: Option<PathBuf>,
    /// The revision last published in the revision gauge.
    pub published_revision: std::sync::Mutex<Option<String>>,
    /// OpenTelemetry export, when `[trace.otel]` is set.
    pub otel: Option<Arc<crate::trace::otel::Otel>>,
    /// The inspection buffer budget the pipeline was built with (`max_buffered_bytes` at
    /// start): a reload cannot raise it, nor set a body limit above it.
    pub buffer_budget: usize,
    /// The TLS configuration new connections are accepted with, when the listener is TLS: a
    /// reload loads the certificate, key and client CA files again and swaps it.
    pub tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    /// The admin listener is not on loopback: a reload may not remove `admin.token`.
    pub admin_open: Option<std::net::SocketAddr>,
}

/// The request pipeline, phase by phase (see the crate docs for the order and why).
pub fn pipeline(
    shared: Arc<Shared>,
    max_concurrent: usize,
    max_buffered_bytes: usize,
) -> impl tower::Service<
    http::Request<crate::body::Body>,
    Response = http::Response<crate::body::Body>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let trace = TraceLayer::new(
        shared.writer.clone(),
        shared.instance.clone(),
        shared.otel.is_some(),
    );
    let outcomes = shared
        .snapshot
        .load()
        .config
        .trace
        .outcomes
        .then(|| shared.writer.clone());
    ServiceBuilder::new()
        .layer(EdgeLayer)
        .layer(crate::trace::refusal::RefusalTraceLayer::new(
            shared.clone(),
        ))
        .layer(LimitsLayer::new(shared, max_concurrent))
        .layer(RouteLayer::default())
        .layer(InspectLayer::new(max_buffered_bytes))
        // Resolve, decide and enforce: three synchronous steps in one layer.
        .layer(StepLayer((ResolveStep, (DecideStep, EnforceStep))))
        .layer(trace)
        .service(Forward::new(outcomes))
}

/// Where to listen, overriding the config.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub config_path: Option<PathBuf>,
    /// Watch the config file and reload on change (and on SIGHUP).
    pub watch: bool,
}

/// A gateway that failed to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Config(Vec<String>),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("trace directory {dir}: {source}")]
    Trace { dir: String, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Otel(#[from] crate::trace::otel::OtelError),
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    admin: JoinHandle<()>,
    grace: Duration,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish within the grace period, then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(self.grace + Duration::from_secs(1), self.server).await;
        self.admin.abort();
        self.shared.writer.flush();
        stop_otel(&self.shared).await;
    }

    /// Waits until the server stops (after a shutdown signal).
    pub async fn wait(self) {
        let _ = self.server.await;
        self.admin.abort();
        self.shared.writer.flush();
        stop_otel(&self.shared).await;
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts a gateway: binds its listeners and serves until shut down.
pub async fn start(config: Config, opts: StartOptions) -> Result<Running, StartError> {
    let listen = opts.listen.unwrap_or(config.server.listen);
    let admin_listen = opts.admin_listen.unwrap_or(config.admin.listen);
    if !admin_listen.ip().is_loopback() && config.admin.token.is_none() {
        return Err(StartError::Config(vec![format!(
            "the admin listener {admin_listen} is not on loopback: set admin.token"
        )]));
    }
    let tls = match &config.server.tls {
        Some(t) => Some(Arc::new(ArcSwap::new(
            crate::tls::server_config_with_client_ca(&t.cert, &t.key, t.client_ca.as_deref())?,
        ))),
        None => None,
    };
    // Starting the writer opens the trace files already there (a torn tail cut, the chain head
    // read, the records counted): file I/O that takes seconds on a large file, kept off the
    // runtime's threads.
    let trace_dir = config.trace.dir.clone();
    let trace_options = crate::trace::writer::WriterOptions {
        durability: config.trace.durability,
        rotation: config.trace.extras.rotation,
        signing_key: config.trace.extras.signing_key.clone(),
    };
    let writer =
        tokio::task::spawn_blocking(move || TraceWriter::start_with(trace_dir, trace_options))
            .await
            .unwrap_or_else(|joined| Err(std::io::Error::other(joined)))
            .map_err(|source| StartError::Trace {
                dir: config.trace.dir.display().to_string(),
                source,
            })?;
    let otel = match &config.trace.extras.otel {
        Some(o) => Some(Arc::new(crate::trace::otel::Otel::start(o)?)),
        None => None,
    };
    let limits = config.server.limits.clone();
    let timeouts = config.server.timeouts.clone();
    let snapshot = Snapshot::build(config).map_err(StartError::Config)?;
    crate::metrics::handle();
    let revision = snapshot.revision.clone();
    let instance_tag: u32 = rand::random();
    let instance = snapshot
        .config
        .server
        .instance
        .clone()
        .unwrap_or_else(|| format!("{}-{:06x}", hostname(), instance_tag & 0xff_ffff));
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snapshot),
        instance: Arc::from(instance),
        instance_tag,
        writer,
        config_path: opts.config_path.clone(),
        published_revision: std::sync::Mutex::new(None),
        otel,
        buffer_budget: limits.max_buffered_bytes,
        tls: tls.clone(),
        admin_open: (!admin_listen.ip().is_loopback()).then_some(admin_listen),
    });
    crate::reload::publish_revision(&shared, &revision);
    crate::upstream::spawn_health_checks(&shared.snapshot.load_full());
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let admin_listener =
        TcpListener::bind(admin_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: admin_listen,
                source,
            })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: admin_listen,
            source,
        })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let svc = pipeline(
        shared.clone(),
        limits.max_concurrent_requests,
        limits.max_buffered_bytes,
    );
    let grace = timeouts.shutdown_grace;
    let server = tokio::spawn(server::serve(
        listener,
        tls,
        svc,
        server::ConnSettings { limits, timeouts },
        shutdown_rx.clone(),
    ));
    let admin = tokio::spawn(crate::admin::serve(
        admin_listener,
        shared.clone(),
        shutdown_rx.clone(),
    ));
    if opts.watch
        && let Some(path) = opts.config_path
    {
        crate::reload::spawn_watchers(shared.clone(), path, shutdown_rx);
    }
    Ok(Running {
        addr,
        admin_addr,
        shared,
        shutdown,
        server,
        admin,
        grace,
    })
}

/// Exports pending spans and metrics; the exporters block, so off the runtime's threads.
async fn stop_otel(shared: &Shared) {
    if let Some(o) = shared.otel.clone() {
        let _ = tokio::task::spawn_blocking(move || o.shutdown()).await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "domicile".into())
}
