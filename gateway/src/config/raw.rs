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
    pub contracts: Vec<FileContract>,
    #[serde(default)]
    pub overrides: Vec<FileOverride>,
    #[serde(default)]
    pub resolve: FileResolve,
    #[serde(default)]
    pub inspect: FileInspect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInspect {
    pub max_decoded_bytes: Option<S<i64>>,
    pub max_decode_ratio: Option<S<i64>>,
    pub max_parts: Option<S<i64>>,
    pub work_per_byte: Option<S<i64>>,
    pub headers: Option<Vec<S<String>>>,
    pub skip_headers: Option<Vec<S<String>>>,
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
    /// CA bundle (PEM) for optional client certificates (mTLS identities).
    pub client_ca: Option<S<String>>,
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
    pub send: Option<S<String>>,
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
    /// Start a new file once the current one holds this many bytes.
    pub rotate_bytes: Option<S<i64>>,
    /// Start a new file once the current one is this old (a duration such as `1d`).
    pub rotate_every: Option<S<String>>,
    /// An Ed25519 private key (32 bytes as hex) that signs each rotation checkpoint.
    pub signing_key: Option<S<String>>,
    /// The request header holding the subject identifier, recorded as a keyed pseudonym.
    pub subject_id_header: Option<S<String>>,
    /// region id → the HMAC key for that region's pseudonyms.
    #[serde(default)]
    pub pseudonym_keys: std::collections::BTreeMap<String, S<FilePseudonymKey>>,
    /// OpenTelemetry export of request spans and decision metrics.
    pub otel: Option<FileOtel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOtel {
    pub endpoint: S<String>,
    pub protocol: Option<S<String>>,
    pub service_name: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub metrics_interval: Option<S<String>>,
}

/// A pseudonym key: inline hex or a file holding hex.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePseudonymKey {
    pub key: Option<S<String>>,
    pub file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGeoip {
    pub database: S<String>,
    /// `country` (default) or `registered_country`.
    pub country_field: Option<S<String>>,
    /// What an address without a country gives: `fail_closed` (default), `ignore`, or a
    /// country code to assume.
    pub unknown: Option<S<String>>,
    /// What an anonymiser address gives: `unknown` (default) or `country`.
    pub anonymous: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNetwork {
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    /// `x-forwarded-for` (default) or `forwarded`.
    pub client_address_header: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    pub unmodelled_jurisdictions: Option<S<String>>,
    pub allow_unverified: Option<bool>,
    #[serde(default)]
    pub knowledge_base: Vec<S<String>>,
    pub exporter: Option<S<String>>,
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
    pub role: Option<S<String>>,
    pub public_authority: Option<bool>,
    pub ciio: Option<bool>,
    pub data_broker: Option<bool>,
    pub organisation: Option<S<String>>,
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
    pub max_concurrent: Option<S<i64>>,
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
    pub frequency: Option<S<String>>,
    #[serde(default)]
    pub evidence: Vec<S<String>>,
    pub contracts: Option<Vec<S<String>>>,
    /// Where reads (GET, HEAD, OPTIONS) of a `home` route may go besides the home region.
    #[serde(default)]
    pub read_regions: Vec<S<String>>,
    pub binary_parts: Option<S<String>>,
    #[serde(default)]
    pub fields: Vec<FileField>,
    pub openapi: Option<S<String>>,
}

/// A contract on file: an Art 46-type instrument between two entities.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileContract {
    pub id: S<String>,
    pub instrument: S<String>,
    pub module: Option<S<i64>>,
    pub exporter: S<String>,
    pub importer: S<String>,
    pub signed: S<String>,
    pub tia: Option<FileTia>,
    #[serde(default)]
    pub measures: Vec<S<String>>,
    pub notified: Option<S<String>>,
}

/// `[resolve]`: the jurisdiction signals and their precedence.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileResolve {
    pub precedence: Option<Vec<S<String>>>,
    pub on_conflict: Option<S<String>>,
    #[serde(default)]
    pub headers: Vec<FileSubjectHeader>,
    /// DNS names whose verified client certificates may set subject headers.
    #[serde(default)]
    pub trusted_identities: Vec<S<String>>,
    pub tokens: Option<FileTokens>,
    pub directory: Option<FileDirectory>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTia {
    pub id: S<String>,
    pub date: S<String>,
    pub review: Option<S<String>>,
    pub impingement: Option<bool>,
}

/// A rule of the user's policy on top of the law.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOverride {
    pub id: S<String>,
    pub effect: S<String>,
    pub exception: Option<S<bool>>,
    pub reason: Option<S<String>>,
    pub owner: Option<S<String>>,
    #[serde(default)]
    pub destinations: Vec<S<String>>,
    #[serde(default)]
    pub purposes: Vec<S<String>>,
    #[serde(default)]
    pub categories: Vec<S<String>>,
    #[serde(default)]
    pub regimes: Vec<S<String>>,
    #[serde(default)]
    pub regions: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSubjectHeader {
    pub name: S<String>,
    pub says: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTokens {
    pub header: Option<S<String>>,
    pub cookie: Option<S<String>>,
    pub leeway: Option<S<String>>,
    pub on_invalid: Option<S<String>>,
    #[serde(default)]
    pub claims: FileClaims,
    #[serde(default)]
    pub issuers: Vec<FileIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClaims {
    pub country: Option<String>,
    pub residence: Option<String>,
    pub citizenship: Option<String>,
    pub home_region: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIssuer {
    pub issuer: S<String>,
    #[serde(default)]
    pub audience: Vec<S<String>>,
    pub jwks: Option<S<String>>,
    pub pem: Option<S<String>>,
    pub kid: Option<String>,
    pub hs256_secret_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDirectory {
    pub path: S<String>,
    pub subject_claim: Option<bool>,
    pub subject_header: Option<S<String>>,
    pub subject_path_segment: Option<S<i64>>,
    pub subject_body_field: Option<S<String>>,
    pub record_first_write: Option<bool>,
}
