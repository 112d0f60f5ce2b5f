//! Phase 5, resolve: every jurisdiction signal the request carries, combined into the
//! subject's plausible jurisdictions under the configured precedence (`[resolve]`).
//!
//! The signals: the subject directory (by subject id), a verified token's claims, subject
//! headers from trusted proxies, GeoIP of the real client address (through trusted proxies
//! only), and inspection findings that name a country. Tokens that do not verify and subject
//! headers from untrusted peers are not evidence: they are recorded as rejected, counted, and
//! such headers are removed before forwarding.

use std::borrow::Cow;
use std::sync::Arc;

use domicile_regions::token::{TokenError, bearer, cookie, looks_like_jwt};
use domicile_regions::{Evidence, EvidenceKind, EvidenceSource, Rejected, Resolution};
use http::{HeaderMap, HeaderName, Request, Response, header};

use crate::body::Body;
use crate::config::signals::{
    AnonymousRule, ClientHeader, Says, SubjectIdSource, TokenSource, UnknownAddress,
};
use crate::context::{DirectoryUse, RequestContext};
use crate::state::Snapshot;
use crate::step::{Step, StepLayer, StepService};

#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveStep;

pub type ResolveLayer = StepLayer<ResolveStep>;
pub type Resolve<S> = StepService<ResolveStep, S>;

/// Weights of GeoIP and body evidence under the default precedence.
pub const WEIGHT_GEOIP: u8 = 60;
pub const WEIGHT_PHONE: u8 = 40;

impl Step for ResolveStep {
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        let Some(ctx) = crate::context::of(req) else {
            return Err(crate::context::missing());
        };
        let snap = ctx.snapshot.clone();
        let peer = ctx.conn.peer.ip();
        // Whether the peer may set subject headers, worked out at most once per request (a
        // client certificate is parsed for it).
        let vouched = std::cell::OnceCell::new();
        let mut found = collect(&snap, ctx, req.headers(), peer, &vouched);
        // Subject headers from peers that may not set them never reach a backend.
        for name in &found.strip {
            req.headers_mut().remove(name);
        }
        if let Some(names) = &snap.subject_headers {
            // Their spellings with `_` for `-` (read as the same field by CGI-style backends)
            // go from every peer; the resolve step reads neither those nor trailers, so the
            // names also go from the body's trailers.
            crate::headers::strip_underscored(req.headers_mut(), names);
            req.body_mut().deny_in_trailers(names.clone());
        }
        if found.subject_id.is_none() {
            found.subject_id = subject_from_request(&snap, req, &vouched);
        }
        let mut directory = DirectoryUse::None;
        if let (Some(dir), Some(id)) = (&snap.directory, &found.subject_id) {
            match dir.get(id) {
                Ok(Some(entry)) => {
                    directory = DirectoryUse::Found;
                    let p = &snap.config.resolve.precedence;
                    found.evidence.push(Evidence::new(
                        p,
                        EvidenceSource::Directory,
                        EvidenceKind::Residence,
                        entry.jurisdiction,
                        "directory",
                    ));
                    if let Some(r) = snap.registry.get(&entry.home_region) {
                        found.offer_home(p, r.id.clone(), EvidenceSource::Directory);
                    }
                }
                Ok(None) => directory = DirectoryUse::Absent,
                Err(e) => {
                    directory = DirectoryUse::Failed;
                    metrics::counter!(crate::metrics::DIRECTORY_ERRORS).increment(1);
                    tracing::warn!(error = %e, "subject directory lookup failed");
                }
            }
        }
        let resolution = finish(
            &snap,
            found.evidence,
            found.rejected,
            found.home,
            found.address_known,
        );
        if let Some(ctx) = crate::context::of_mut(req) {
            ctx.client = Some(found.client);
            ctx.resolution = Some(resolution);
            ctx.subject_id = found.subject_id;
            ctx.invalid_token = found.invalid_token;
            ctx.directory = directory;
        }
        Ok(())
    }
}

/// What the headers, the client address and the findings said.
struct Found {
    client: domicile_regions::ClientAddr,
    evidence: Vec<Evidence>,
    rejected: Vec<Rejected>,
    home: Option<(Arc<str>, EvidenceSource)>,
    subject_id: Option<String>,
    invalid_token: Option<&'static str>,
    address_known: bool,
    strip: Vec<http::HeaderName>,
}

impl Found {
    /// A subject header sent by a peer that may not set it: removed before forwarding,
    /// recorded as rejected and counted.
    fn spoofed(&mut self, name: &http::HeaderName, location: String) {
        self.strip.push(name.clone());
        self.rejected.push(Rejected {
            source: EvidenceSource::Header,
            location: Cow::Owned(location),
            reason: "spoof",
        });
        metrics::counter!(crate::metrics::SUBJECT_HEADER_SPOOFS, "header" => name.to_string())
            .increment(1);
    }

    /// A home region from `source`, kept if it outranks the one already offered.
    fn offer_home(
        &mut self,
        p: &domicile_regions::Precedence,
        region: Arc<str>,
        source: EvidenceSource,
    ) {
        if !p.uses(source) {
            return;
        }
        if self
            .home
            .as_ref()
            .is_none_or(|(_, s)| p.weight(*s) < p.weight(source))
        {
            self.home = Some((region, source));
        }
    }
}

fn country_of(v: &str) -> Option<domicile_policy::Country> {
    // `Country::parse` takes either case.
    domicile_policy::Country::parse(v.trim()).ok()
}

fn collect(
    snap: &Snapshot,
    ctx: &RequestContext,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    vouched: &std::cell::OnceCell<bool>,
) -> Found {
    let cfg = &snap.config.resolve;
    let p = &cfg.precedence;
    // The chain's lines, read from the right: gathered first (on the stack, for up to four
    // lines), as the names are found by a scan in a small map.
    fn lines<'h>(headers: &'h HeaderMap, name: &HeaderName) -> smallvec::SmallVec<[&'h [u8]; 4]> {
        crate::headers::all(headers, name)
            .map(|v| v.as_bytes())
            .collect()
    }
    let client = match cfg.client_header {
        ClientHeader::XForwardedFor => {
            let chain = lines(headers, &crate::headers::X_FORWARDED_FOR);
            snap.trusted.resolve(peer, chain.iter().copied())
        }
        ClientHeader::Forwarded => {
            let chain = lines(headers, &header::FORWARDED);
            snap.trusted.resolve_forwarded(peer, chain.iter().copied())
        }
    };
    if client.ignored_forwarded_for {
        metrics::counter!(crate::metrics::FORWARDED_FOR_IGNORED).increment(1);
    }
    let mut f = Found {
        client,
        evidence: Vec::new(),
        rejected: Vec::new(),
        home: None,
        subject_id: None,
        invalid_token: None,
        address_known: false,
        strip: Vec::new(),
    };

    // Subject headers: believed from trusted proxies only.
    if !cfg.headers.is_empty() {
        let trusted_peer = *vouched.get_or_init(|| vouched_peer(snap, &ctx.conn, peer));
        for h in &cfg.headers {
            let mut values = headers.get_all(&h.name).iter().peekable();
            if values.peek().is_none() {
                continue;
            }
            let location = || Cow::Owned(h.location.to_string());
            if !trusted_peer {
                f.spoofed(&h.name, h.location.to_string());
                continue;
            }
            for v in values {
                let Ok(v) = v.to_str() else {
                    f.rejected.push(Rejected {
                        source: EvidenceSource::Header,
                        location: location(),
                        reason: "invalid_value",
                    });
                    continue;
                };
                let kind = match h.says {
                    Says::Country => EvidenceKind::Country,
                    Says::Residence => EvidenceKind::Residence,
                    Says::Citizenship => EvidenceKind::Citizenship,
                    Says::HomeRegion => {
                        match snap.registry.get(v.trim()) {
                            Some(r) => f.offer_home(p, r.id.clone(), EvidenceSource::Header),
                            None => f.rejected.push(Rejected {
                                source: EvidenceSource::Header,
                                location: location(),
                                reason: "unknown_region",
                            }),
                        }
                        continue;
                    }
                    Says::Subject => {
                        if !v.trim().is_empty() {
                            f.subject_id = Some(v.trim().to_owned());
                        }
                        continue;
                    }
                };
                for part in v.split(',') {
                    match country_of(part) {
                        Some(c) => f.evidence.push(Evidence::new(
                            p,
                            EvidenceSource::Header,
                            kind,
                            c,
                            location(),
                        )),
                        None => f.rejected.push(Rejected {
                            source: EvidenceSource::Header,
                            location: location(),
                            reason: "invalid_value",
                        }),
                    }
                }
            }
        }
    }
    // The directory's subject header, where it is not one of the subject headers above: read
    // from trusted peers only, like them, and anyone else's recorded, counted and removed, so
    // that a backend never files data under a subject the gateway did not place.
    if let Some(d) = &cfg.directory {
        for source in &d.subject {
            if let SubjectIdSource::Header(name) = source
                && !cfg.headers.iter().any(|h| h.name == *name)
                && headers.contains_key(name)
                && !*vouched.get_or_init(|| vouched_peer(snap, &ctx.conn, peer))
            {
                f.spoofed(name, format!("header:{name}"));
            }
        }
    }

    // A verified token's claims.
    if let Some(t) = &cfg.tokens {
        let token = match &t.source {
            TokenSource::Authorization => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| bearer(v.as_bytes())),
            TokenSource::Header(h) => headers.get(h).and_then(|v| v.to_str().ok()),
            TokenSource::Cookie(name) => headers
                .get_all(header::COOKIE)
                .iter()
                .find_map(|v| cookie(v.as_bytes(), name)),
        };
        if let Some(token) = token {
            match t.verifier.verify(token) {
                Ok(claims) => {
                    let mut add = |kind, c, loc: &'static str| {
                        f.evidence
                            .push(Evidence::new(p, EvidenceSource::Token, kind, c, loc));
                    };
                    if let Some(c) = claims.country {
                        add(EvidenceKind::Country, c, "claim:country");
                    }
                    if let Some(c) = claims.residence {
                        add(EvidenceKind::Residence, c, "claim:residence");
                    }
                    for c in claims.citizenship {
                        add(EvidenceKind::Citizenship, c, "claim:citizenship");
                    }
                    for claim in claims.invalid_claims {
                        f.rejected.push(Rejected {
                            source: EvidenceSource::Token,
                            location: Cow::Owned(format!("claim:{claim}")),
                            reason: "invalid_claim",
                        });
                    }
                    if let Some(r) = claims.home_region.as_deref() {
                        match snap.registry.get(r) {
                            Some(r) => f.offer_home(p, r.id.clone(), EvidenceSource::Token),
                            None => f.rejected.push(Rejected {
                                source: EvidenceSource::Token,
                                location: Cow::Borrowed("claim:home_region"),
                                reason: "unknown_region",
                            }),
                        }
                    }
                    let from_claim = cfg
                        .directory
                        .as_ref()
                        .is_some_and(|d| d.subject.contains(&SubjectIdSource::Claim));
                    if from_claim && claims.subject.is_some() {
                        f.subject_id = claims.subject;
                    }
                }
                // An opaque token (an API key, a session id) is not a JWT: not evidence, and
                // not a token that failed to verify either. Told only once a token fails to
                // parse, so that a cached token is not looked at twice.
                Err(TokenError::Malformed) if !looks_like_jwt(token) => {}
                Err(e) => {
                    f.invalid_token = Some(e.as_str());
                    f.rejected.push(Rejected {
                        source: EvidenceSource::Token,
                        location: Cow::Owned(t.location.to_string()),
                        reason: e.as_str(),
                    });
                    metrics::counter!(crate::metrics::TOKENS_REJECTED, "reason" => e.as_str())
                        .increment(1);
                }
            }
        }
    }

    // GeoIP of the client address.
    if let (Some(ip), Some(geo)) = (f.client.ip, &snap.geoip)
        && p.uses(EvidenceSource::Geoip)
    {
        let a = geo.answer(ip, cfg.geoip_field, cfg.anonymous == AnonymousRule::Unknown);
        if a.anonymous {
            f.rejected.push(Rejected {
                source: EvidenceSource::Geoip,
                location: Cow::Borrowed("client_address"),
                reason: "anonymous",
            });
        } else if let Some(country) = a.country {
            f.address_known = true;
            f.evidence.push(Evidence::new(
                p,
                EvidenceSource::Geoip,
                EvidenceKind::Country,
                country,
                "client_address",
            ));
        }
    }
    if !f.address_known
        && let UnknownAddress::Assume(country) = cfg.unknown_address
    {
        f.address_known = true;
        f.evidence.push(Evidence::new(
            p,
            EvidenceSource::Geoip,
            EvidenceKind::Country,
            country,
            "client_address:assumed",
        ));
    }

    // Findings that name a country.
    for finding in &ctx.inspection.findings {
        if let Some(country) = finding.country {
            let category = finding.category.as_str();
            let kind = if finding.category == domicile_policy::Category::Nationality {
                EvidenceKind::Citizenship
            } else {
                EvidenceKind::Country
            };
            let mut e = Evidence::new(
                p,
                EvidenceSource::Body,
                kind,
                country,
                finding.location.clone(),
            );
            e.category = Some(category);
            e.detector = Some(finding.detector);
            f.evidence.push(e);
        }
    }
    f
}

/// A peer whose subject headers are believed: a trusted proxy, or a client whose verified
/// certificate is valid for one of `resolve.trusted_identities`.
fn vouched_peer(snap: &Snapshot, conn: &crate::context::ConnInfo, peer: std::net::IpAddr) -> bool {
    snap.trusted.is_trusted(peer)
        || (!snap.config.resolve.trusted_identities.is_empty()
            && conn.client_identity_in(&snap.config.resolve.trusted_identities))
}

/// The subject id from the path, a trusted header or the body, as configured.
fn subject_from_request(
    snap: &Snapshot,
    req: &Request<Body>,
    vouched: &std::cell::OnceCell<bool>,
) -> Option<String> {
    let d = snap.config.resolve.directory.as_ref()?;
    for source in &d.subject {
        let id = match source {
            SubjectIdSource::Claim => None,
            SubjectIdSource::Header(h) => {
                let conn = &crate::context::of(req)?.conn;
                if *vouched.get_or_init(|| vouched_peer(snap, conn, conn.peer.ip())) {
                    req.headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(|s| s.trim().to_owned())
                } else {
                    None
                }
            }
            // Decoded, as ids from headers, bodies and tokens are, and as the admin API reads
            // them: `/customers/M%C3%BCller` is the subject `Müller`.
            SubjectIdSource::PathSegment(n) => req
                .uri()
                .path()
                .split('/')
                .nth(*n)
                .filter(|s| !s.is_empty())
                .and_then(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
                .map(|s| s.into_owned()),
            SubjectIdSource::BodyField(pointer) => match req.body() {
                Body::Buffered {
                    data: Some(data), ..
                } => serde_json::from_slice::<serde_json::Value>(data)
                    .ok()
                    .and_then(|v| match v.pointer(pointer)? {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }),
                _ => None,
            },
        };
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            return Some(id);
        }
    }
    None
}

fn finish(
    snap: &Snapshot,
    evidence: Vec<Evidence>,
    rejected: Vec<Rejected>,
    home: Option<(Arc<str>, EvidenceSource)>,
    address_known: bool,
) -> Resolution {
    let cfg = &snap.config.resolve;
    let mut r = Resolution::resolve(evidence, &cfg.precedence);
    r.rejected = rejected;
    r.home_region = home;
    r.address_unknown = match cfg.unknown_address {
        UnknownAddress::FailClosed | UnknownAddress::Assume(_) => !address_known,
        // The address is not a signal; with no other place for the subject it is unknown.
        UnknownAddress::Ignore => r.jurisdictions.is_empty(),
    };
    r
}
