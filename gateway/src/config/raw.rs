//! The config file as written: serde structs that mirror the TOML, unknown keys refused, with
//! spans on every value that validation may complain about.

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub admin: FileAdmin,
    #[serde(default)]
    pub log: FileLog,
    #[serde(default)]
    pub trace: FileTrace,
    pub geoip: Option<FileGeoip>,
    #[serde(default)]
    pub network: FileNetwork,
    #[serde(default)]
    pub policy: FilePolicy,
    #[serde(default)]
    pub entities: Vec<FileEntity>,
    #[serde(default)]
    pub regions: Vec<FileRegion>,
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    #[serde(default)]
    pub inspect: FileInspect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInspect {
    pub max_decoded_bytes: Option<S<i64>>,
    pub max_decode_ratio: Option<S<i64>>,
    pub max_parts: Option<S<i64>>,
    pub headers: Option<Vec<S<String>>>,
    pub cookies: Option<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileField {
    pub path: S<String>,
    pub category: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub listen: Option<S<String>>,
    pub tls: Option<FileServerTls>,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub timeouts: FileTimeouts,
    pub worker_threads: Option<S<i64>>,
    pub region: Option<S<String>>,
    pub instance: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServerTls {
    pub cert: S<String>,
    pub key: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_header_bytes: Option<S<i64>>,
    pub max_body_bytes: Option<S<i64>>,
    pub max_concurrent_requests: Option<S<i64>>,
    pub max_connections: Option<S<i64>>,
    pub max_buffered_bytes: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    pub header_read: Option<S<String>>,
    pub body_read: Option<S<String>>,
    pub idle: Option<S<String>>,
    pub shutdown_grace: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    pub listen: Option<S<String>>,
    pub token: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    pub format: Option<S<String>>,
    pub level: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTrace {
    pub dir: Option<S<String>>,
    pub durability: Option<S<String>>,
    pub outcomes: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGeoip {
    pub database: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNetwork {
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    pub unmodelled_jurisdictions: Option<S<String>>,
    pub allow_unverified: Option<bool>,
    #[serde(default)]
    pub knowledge_base: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntity {
    pub id: S<String>,
    pub name: Option<String>,
    pub country: S<String>,
    pub sector: Option<S<String>>,
    #[serde(default)]
    pub certifications: Vec<FileCertification>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCertification {
    pub scheme: S<String>,
    pub valid_from: S<String>,
    pub valid_to: Option<S<String>>,
    #[serde(default)]
    pub hr: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRegion {
    pub id: S<String>,
    pub country: S<String>,
    pub entity: S<String>,
    #[serde(default)]
    pub serves: Vec<S<String>>,
    #[serde(default)]
    pub backends: Vec<FileBackend>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBackend {
    pub url: S<String>,
    pub protocol: Option<S<String>>,
    pub ca: Option<S<String>>,
    pub client_cert: Option<S<String>>,
    pub client_key: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    pub response_timeout: Option<S<String>>,
    pub health_path: Option<S<String>>,
    pub health_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub id: S<String>,
    pub host: Option<S<String>>,
    pub path: S<String>,
    pub methods: Option<Vec<S<String>>>,
    pub purpose: S<String>,
    pub placement: S<String>,
    pub region: Option<S<String>>,
    pub inspect: Option<bool>,
    pub mode: Option<S<String>>,
    pub upstream_host: Option<S<String>>,
    pub on_uninspectable: Option<S<String>>,
    pub allow_upgrade: Option<bool>,
    pub binary_parts: Option<S<String>>,
    #[serde(default)]
    pub fields: Vec<FileField>,
    pub openapi: Option<S<String>>,
}
