//! The `[trace]` keys for rotation, checkpoint signing and subject pseudonyms. Keys are read
//! while the config is validated, so a missing or malformed key file is a config error that
//! names the file, line and key.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Checker;
use super::raw::{FileConfig, FilePseudonymKey, S};

/// When the active trace file is sealed and a new one started. Both limits may be set; the
/// first reached rotates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

/// The Ed25519 key that signs rotation checkpoints. Its `Debug` shows the public half only.
#[derive(Clone)]
pub struct SigningKey(pub ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(public {})",
            hex::encode(self.0.verifying_key().as_bytes())
        )
    }
}

/// The smallest pseudonym key, in bytes: the HMAC-SHA256 block of security.
pub const MIN_KEY_BYTES: usize = 32;

/// The per-region HMAC keys for subject pseudonyms, and the header holding the identifier.
#[derive(Clone)]
pub struct Pseudonyms {
    pub header: http::HeaderName,
    /// Each region's HMAC, keyed once at load; a request clones it.
    keys: HashMap<String, Hmac<Sha256>>,
}

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut regions: Vec<&String> = self.keys.keys().collect();
        regions.sort();
        f.debug_struct("Pseudonyms")
            .field("header", &self.header)
            .field("keyed_regions", &regions)
            .finish()
    }
}

impl Pseudonyms {
    /// Builds pseudonyms from keys already checked (for tests and tools).
    pub fn new(header: http::HeaderName, keys: HashMap<String, Vec<u8>>) -> Pseudonyms {
        let keys = keys
            .into_iter()
            .filter_map(|(region, k)| Some((region, Hmac::<Sha256>::new_from_slice(&k).ok()?)))
            .collect();
        Pseudonyms { header, keys }
    }

    /// The pseudonym of `id` in `region`: HMAC-SHA256 under that region's key, as hex. `None`
    /// when the region has no key: the identifier is then not recorded at all.
    pub fn pseudonym(&self, region: &str, id: &[u8]) -> Option<String> {
        let mut mac = self.keys.get(region)?.clone();
        mac.update(id);
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}

/// How OTLP is spoken to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// `[trace.otel]`: where spans and metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// The collector's base URL (`http://host:4318` for HTTP, `http://host:4317` for gRPC).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    pub timeout: Duration,
    pub metrics_interval: Duration,
}

/// The validated extras of `[trace]`.
#[derive(Debug, Clone, Default)]
pub struct TraceExtras {
    pub rotation: Rotation,
    pub signing_key: Option<SigningKey>,
    pub pseudonyms: Option<Arc<Pseudonyms>>,
    pub otel: Option<OtelConfig>,
}

fn otel(c: &mut Checker<'_>, o: &super::raw::FileOtel) -> Option<OtelConfig> {
    let endpoint = c.parse(&o.endpoint, "trace.otel.endpoint", |e| {
        let uri: http::Uri = e.parse().map_err(|_| format!("{e:?} is not a URL"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(_)) => Ok(e.trim_end_matches('/').to_owned()),
            _ => Err(format!("{e:?} is not an http:// or https:// URL")),
        }
    });
    let protocol = c.one_of(
        &o.protocol,
        "trace.otel.protocol",
        &[
            ("grpc", OtlpProtocol::Grpc),
            ("http/protobuf", OtlpProtocol::HttpProtobuf),
            ("http/json", OtlpProtocol::HttpJson),
        ],
        OtlpProtocol::HttpProtobuf,
    );
    let timeout = c.duration(&o.timeout, "trace.otel.timeout", Duration::from_secs(10));
    let metrics_interval = c.duration(
        &o.metrics_interval,
        "trace.otel.metrics_interval",
        Duration::from_secs(60),
    );
    Some(OtelConfig {
        endpoint: endpoint?,
        protocol,
        service_name: o
            .service_name
            .as_ref()
            .map_or_else(|| "domicile".to_owned(), |s| s.get_ref().clone()),
        timeout,
        metrics_interval,
    })
}

/// Reads a key file or inline value of hex (whitespace around it ignored).
fn hex_key(text: &str, min: usize) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("the key is not hex: {e}"))?;
    if bytes.len() < min {
        return Err(format!(
            "the key has {} bytes; at least {min} are needed",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn read_key_file(c: &Checker<'_>, v: &S<String>, min: usize) -> Result<Vec<u8>, String> {
    let path = c.path(v.get_ref());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    hex_key(&text, min).map_err(|e| format!("key file {}: {e}", path.display()))
}

pub(super) fn validate(c: &mut Checker<'_>, raw: &FileConfig) -> TraceExtras {
    let t = &raw.trace;
    let max_bytes = t.rotate_bytes.as_ref().and_then(|v| {
        c.parse(v, "trace.rotate_bytes", |n| {
            u64::try_from(*n)
                .ok()
                .filter(|n| *n >= 4096)
                .ok_or_else(|| format!("must be at least 4096 bytes, got {n}"))
        })
    });
    let max_age = t
        .rotate_every
        .as_ref()
        .and_then(|v| c.parse(v, "trace.rotate_every", |s| super::parse_duration(s)));
    let signing_key = t.signing_key.as_ref().and_then(|v| {
        let bytes = match read_key_file(c, v, 32) {
            Ok(b) => b,
            Err(e) => {
                c.err(v, "trace.signing_key", e);
                return None;
            }
        };
        match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(seed) => Some(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))),
            Err(_) => {
                c.err(
                    v,
                    "trace.signing_key",
                    "an Ed25519 private key is exactly 32 bytes (64 hex digits)",
                );
                None
            }
        }
    });
    let header = t.subject_id_header.as_ref().and_then(|v| {
        c.parse(v, "trace.subject_id_header", |h| {
            http::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("{h:?} is not a valid header name"))
        })
    });
    let region_ids: Vec<&str> = raw
        .regions
        .iter()
        .map(|r| r.id.get_ref().as_str())
        .collect();
    let mut keys = HashMap::new();
    for (region, v) in &t.pseudonym_keys {
        let key = format!("trace.pseudonym_keys.{region}");
        if !region_ids.contains(&region.as_str()) && region != crate::trace::UNRESOLVED_REGION {
            c.err(v, &key, format!("no region with id {region:?}"));
            continue;
        }
        if let Some(k) = load_pseudonym_key(c, v.get_ref(), v, &key) {
            keys.insert(region.clone(), k);
        }
    }
    let pseudonyms = match (header, t.subject_id_header.as_ref()) {
        (Some(header), Some(at)) => {
            for region in &region_ids {
                if !t.pseudonym_keys.contains_key(*region) {
                    c.err(
                        at,
                        "trace.subject_id_header",
                        format!(
                            "region {region:?} has no key in trace.pseudonym_keys: its subject identifiers could not be pseudonymised"
                        ),
                    );
                }
            }
            Some(Arc::new(Pseudonyms::new(header, keys)))
        }
        _ => None,
    };
    let otel = t.otel.as_ref().and_then(|o| otel(c, o));
    TraceExtras {
        rotation: Rotation { max_bytes, max_age },
        signing_key,
        pseudonyms,
        otel,
    }
}

fn load_pseudonym_key(
    c: &mut Checker<'_>,
    k: &FilePseudonymKey,
    at: &S<FilePseudonymKey>,
    key: &str,
) -> Option<Vec<u8>> {
    match (&k.key, &k.file) {
        (Some(v), None) => match hex_key(v.get_ref(), MIN_KEY_BYTES) {
            Ok(b) => Some(b),
            Err(e) => {
                c.err(v, format!("{key}.key"), e);
                None
            }
        },
        (None, Some(v)) => match read_key_file(c, v, MIN_KEY_BYTES) {
            Ok(b) => Some(b),
            Err(e) => {
                c.err(v, format!("{key}.file"), e);
                None
            }
        },
        _ => {
            c.err(
                at,
                key,
                "set exactly one of key (hex) or file (a file holding hex)",
            );
            None
        }
    }
}
