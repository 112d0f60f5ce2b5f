//! `domicile serve --demo`: two regions with built-in echo backends, a built-in GeoIP table,
//! and three routes, so the gateway can be seen working with nothing else installed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::Body;

/// The demo configuration, with the backends' addresses and the trace directory filled in.
pub fn config_text(eu: SocketAddr, us: SocketAddr, trace_dir: &Path) -> String {
    format!(
        r#"# The demo configuration (domicile serve --demo).
[server]
listen = "127.0.0.1:8080"

[admin]
listen = "127.0.0.1:9901"

[trace]
dir = "{trace}"
durability = "batch"

[geoip]
# 192.0.2.0/24 -> DE, 198.51.100.0/24 -> US, 203.0.113.0/24 -> JP
database = "builtin:demo"

[network]
# Loopback is trusted as a proxy, so X-Forwarded-For can play the client.
trusted_proxies = ["127.0.0.0/8", "::1/128"]

[[entities]]
id = "acme-eu"
name = "Acme Europe GmbH"
country = "DE"
sector = "commercial"

[[entities]]
id = "acme-us"
name = "Acme Analytics Inc."
country = "US"
sector = "commercial"
# No Data Privacy Framework certification: EU personal data has no basis to go there.

[[regions]]
id = "eu-central"
country = "DE"
entity = "acme-eu"
serves = ["EEA"]
backends = [{{ url = "http://{eu}" }}]

[[regions]]
id = "us-east"
country = "US"
entity = "acme-us"
serves = ["US"]
backends = [{{ url = "http://{us}" }}]

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
"#,
        trace = trace_dir
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\""),
    )
}

/// Starts an echo backend for `region` on an ephemeral loopback port.
pub async fn start_echo_backend(region: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: Request<Incoming>| echo(region, req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Answers with what it received and which region it is.
async fn echo(region: &'static str, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            n.starts_with("domicile-")
                || n.starts_with("x-forwarded-")
                || n == "forwarded"
                || n == "host"
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    let body = serde_json::json!({
        "region": region,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body": String::from_utf8_lossy(&bytes),
    });
    let mut res = Response::new(Body::full(Bytes::from(body.to_string() + "\n")));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
