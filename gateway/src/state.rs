//! The active configuration snapshot. A request loads it once and keeps it to the end, so a
//! reload in the middle of a request never mixes two policies.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use domicile_policy::{Engine, EngineOptions, KnowledgeBase};
use domicile_regions::{GeoIp, Region, Registry, TrustedProxies};

use crate::config::{Config, GeoipSource, RouteConfig};
use crate::upstream::{RegionPool, build_pools};

/// The demo's GeoIP table: documentation ranges mapped to countries.
pub const DEMO_GEOIP: &[(&str, &str)] = &[
    ("192.0.2.0/24", "DE"),
    ("198.51.100.0/24", "US"),
    ("203.0.113.0/24", "JP"),
];

/// Everything a request needs, built from one config.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    /// Hash of the config text and the knowledge base: `policy_revision` in records.
    pub revision: String,
    pub engine: Engine,
    pub registry: Registry,
    pub geoip: Option<Arc<GeoIp>>,
    pub trusted: TrustedProxies,
    pub pools: HashMap<Arc<str>, RegionPool>,
    /// The subject directory, when `[resolve.directory]` is configured.
    pub directory: Option<Arc<domicile_regions::directory::Directory>>,
    /// The headers subject signals are read from (`[[resolve.headers]]` and the directory's
    /// subject header), when there are any.
    pub subject_headers: Option<Arc<[http::HeaderName]>>,
}

impl Snapshot {
    /// Builds a snapshot; every problem is returned, none is fatal to the caller's old one.
    pub fn build(config: Config) -> Result<Snapshot, Vec<String>> {
        let mut errors = Vec::new();
        let mut extra = Vec::new();
        for p in &config.policy.knowledge_base {
            match std::fs::read_to_string(p) {
                Ok(text) => extra.push((p.display().to_string(), text)),
                Err(e) => errors.push(format!("{}: cannot read the file: {e}", p.display())),
            }
        }
        let kb = KnowledgeBase::builtin_with(extra)
            .map_err(|es| es.into_iter().map(|e| e.to_string()).collect::<Vec<_>>());
        let geoip = match &config.geoip {
            None => None,
            Some(GeoipSource::Demo) => {
                match domicile_regions::geoip::build_country_db(DEMO_GEOIP, "Domicile-Demo-Country")
                    .and_then(|b| {
                        GeoIp::from_bytes(b, "built-in demo table").map_err(|e| e.to_string())
                    }) {
                    Ok(g) => Some(Arc::new(g)),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
            Some(GeoipSource::File(path)) => match GeoIp::open(path) {
                Ok(g) => Some(Arc::new(g)),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            },
        };
        let registry = Registry::new(
            config
                .regions
                .iter()
                .map(|r| Region {
                    id: r.id.clone(),
                    country: r.country,
                    entity: r.entity.clone(),
                    serves: r.serves.clone(),
                })
                .collect(),
        )
        .map_err(|es| es.into_iter().map(|e| e.to_string()).collect::<Vec<_>>());
        let directory = match &config.resolve.directory {
            None => None,
            Some(d) => match domicile_regions::directory::Directory::open(&d.path) {
                Ok(dir) => Some(dir),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            },
        };
        let pools = build_pools(&config.regions);
        let (kb, registry, pools) = match (kb, registry, pools) {
            (Ok(kb), Ok(reg), Ok(pools)) if errors.is_empty() => (kb, reg, pools),
            (kb, reg, pools) => {
                errors.extend(kb.err().unwrap_or_default());
                errors.extend(reg.err().unwrap_or_default());
                errors.extend(pools.err().unwrap_or_default());
                return Err(errors);
            }
        };
        let mut digest = domicile_policy::kb::Fnv::new();
        digest.write(&config.text_digest.to_le_bytes());
        digest.write(&kb.digest().to_le_bytes());
        let revision = format!("{:016x}", digest.finish());
        let engine = Engine::new(
            Arc::new(kb),
            EngineOptions {
                allow_unverified: config.policy.allow_unverified,
                unmodelled: config.policy.unmodelled,
            },
        )
        .with_overrides(config.policy.overrides.clone());
        let mut subject_headers: Vec<http::HeaderName> = config
            .resolve
            .headers
            .iter()
            .map(|h| h.name.clone())
            .collect();
        if let Some(d) = &config.resolve.directory {
            for source in &d.subject {
                if let crate::config::signals::SubjectIdSource::Header(name) = source
                    && !subject_headers.contains(name)
                {
                    subject_headers.push(name.clone());
                }
            }
        }
        Ok(Snapshot {
            subject_headers: (!subject_headers.is_empty()).then(|| subject_headers.into()),
            trusted: TrustedProxies::new(config.trusted_proxies.clone()),
            config,
            revision,
            engine,
            registry,
            geoip,
            pools,
            directory,
        })
    }

    /// The route for a request: host (if the route names one) and longest path prefix on a
    /// segment boundary, and method.
    pub fn match_route(
        &self,
        host: Option<&str>,
        path: &str,
        method: &http::Method,
    ) -> Option<usize> {
        self.match_route_as(host, path, method, false)
    }

    /// [`Self::match_route`], with path prefixes compared without regard to ASCII letter case
    /// when `any_case` (how a case-insensitive backend reads the path).
    pub fn match_route_as(
        &self,
        host: Option<&str>,
        path: &str,
        method: &http::Method,
        any_case: bool,
    ) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (n, r) in self.config.routes.iter().enumerate() {
            if let Some(h) = &r.host
                && host != Some(h.as_str())
            {
                continue;
            }
            if !path_matches(&r.path, path, any_case) {
                continue;
            }
            if let Some(ms) = &r.methods
                && !ms.contains(method)
            {
                continue;
            }
            let score = r.path.len() * 2 + usize::from(r.host.is_some());
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((n, score));
            }
        }
        best.map(|(n, _)| n)
    }

    pub fn route(&self, n: usize) -> Option<&RouteConfig> {
        self.config.routes.get(n)
    }
}

/// `/customers` matches `/customers`, `/customers/7` and `/customers?x`, not `/customersx`;
/// `/Customers` too when `any_case`.
fn path_matches(prefix: &str, path: &str, any_case: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    let Some((head, rest)) = path.split_at_checked(prefix.len()) else {
        return false;
    };
    let same = if any_case {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    same && (rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        for any_case in [false, true] {
            assert!(path_matches("/customers", "/customers", any_case));
            assert!(path_matches("/customers", "/customers/7", any_case));
            assert!(path_matches("/customers/", "/customers/7", any_case));
            assert!(!path_matches("/customers", "/customersx", any_case));
            assert!(!path_matches("/customers", "/custom", any_case));
            assert!(path_matches("/", "/anything", any_case));
        }
        assert!(!path_matches("/customers", "/Customers/7", false));
        assert!(path_matches("/customers", "/Customers/7", true));
    }
}
