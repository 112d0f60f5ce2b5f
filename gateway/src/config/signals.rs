//! `[resolve]`, the GeoIP rules of `[geoip]` and `network.client_address_header`: which
//! jurisdiction signals are used, in which precedence, and where each comes from. Key files of
//! token issuers are read here, so a bad key is reported with the file, line and key that name
//! it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domicile_policy::Country;
use domicile_regions::geoip::CountryField;
use domicile_regions::token::{ClaimNames, Issuer};
use domicile_regions::{ConflictRule, EvidenceSource, Precedence, TokenVerifier};
use http::HeaderName;

use super::Checker;
use super::raw::{FileConfig, FileTokens, S};

/// What a trusted subject header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Says {
    Country,
    Residence,
    Citizenship,
    HomeRegion,
    Subject,
}

#[derive(Debug, Clone)]
pub struct SubjectHeader {
    pub name: HeaderName,
    /// `header:<name>`, the evidence location.
    pub location: Arc<str>,
    pub says: Says,
}

/// Where the token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    Authorization,
    /// The whole value of this header.
    Header(HeaderName),
    /// This cookie.
    Cookie(String),
}

impl TokenSource {
    /// The evidence location of a token from here.
    pub fn location(&self) -> String {
        match self {
            TokenSource::Authorization => "header:authorization".into(),
            TokenSource::Header(h) => format!("header:{h}"),
            TokenSource::Cookie(c) => format!("cookie:{c}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub source: TokenSource,
    pub location: Arc<str>,
    pub verifier: Arc<TokenVerifier>,
    pub on_invalid: OnInvalidToken,
}

/// What a request whose token does not verify gets: `resolve.tokens.on_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalidToken {
    /// A request that carries personal data and a forged, expired or foreign token is not
    /// served: 401 `invalid_token` for a bearer token, 403 for one in a cookie or another
    /// header.
    Reject,
    /// The token is set aside as evidence (listed in the record) and the request goes on.
    Ignore,
}

/// Where the subject id for the directory comes from, tried in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectIdSource {
    /// The verified token's subject claim.
    Claim,
    /// A trusted subject header with `says = "subject"`, or this header from a trusted peer.
    Header(HeaderName),
    /// The n-th path segment (1-based: `/customers/{id}` is 2).
    PathSegment(usize),
    /// A JSON pointer into a JSON body.
    BodyField(String),
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub path: PathBuf,
    pub subject: Vec<SubjectIdSource>,
    /// Store where a new subject's first write went.
    pub record_first_write: bool,
}

/// What an address without a country gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownAddress {
    /// The jurisdiction is incomplete: personal data fails closed unless a vouched source
    /// (directory, token, trusted header) says where the subject is.
    #[default]
    FailClosed,
    /// The address gives no evidence; the other evidence decides (none at all still fails
    /// closed).
    Ignore,
    /// Assume this country (recorded as GeoIP evidence at `client_address:assumed`).
    Assume(Country),
}

/// What an address the database marks as an anonymiser gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnonymousRule {
    /// Treated as an address without a country.
    #[default]
    Unknown,
    /// The database's country is used anyway.
    Country,
}

/// Which header carries the client chain from trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

/// The validated jurisdiction-signal settings.
#[derive(Debug, Clone, Default)]
pub struct ResolveConfig {
    pub precedence: Precedence,
    pub headers: Vec<SubjectHeader>,
    /// DNS names a verified client certificate must be valid for to set subject headers.
    pub trusted_identities: Vec<rustls::pki_types::ServerName<'static>>,
    pub tokens: Option<TokensConfig>,
    pub directory: Option<DirectoryConfig>,
    pub geoip_field: CountryField,
    pub unknown_address: UnknownAddress,
    pub anonymous: AnonymousRule,
    pub client_header: ClientHeader,
}

fn header_name(c: &mut Checker<'_>, v: &S<String>, key: &str) -> Option<HeaderName> {
    c.parse(v, key, |s| {
        HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("invalid header name {s:?}"))
    })
}

pub(super) fn convert(c: &mut Checker<'_>, raw: &FileConfig) -> ResolveConfig {
    let r = &raw.resolve;
    let mut out = ResolveConfig::default();

    let rule = c.one_of(
        &r.on_conflict,
        "resolve.on_conflict",
        &[
            ("strictest", ConflictRule::Strictest),
            ("precedence", ConflictRule::Precedence),
        ],
        ConflictRule::Strictest,
    );
    let order = match &r.precedence {
        None => EvidenceSource::ALL.to_vec(),
        Some(list) => {
            let mut order = Vec::new();
            for (n, v) in list.iter().enumerate() {
                let key = format!("resolve.precedence[{n}]");
                if let Some(s) = c.parse(v, &key, |s| {
                    EvidenceSource::parse(s).ok_or_else(|| {
                        format!(
                            "unknown evidence source {s:?}; expected one of directory, token, header, geoip, body"
                        )
                    })
                }) {
                    if order.contains(&s) {
                        c.err(v, &key, format!("{s:?} is listed twice", s = s.as_str()));
                    }
                    order.push(s);
                }
            }
            order
        }
    };
    out.precedence = Precedence::new(order, rule);

    for (n, h) in r.headers.iter().enumerate() {
        let key = |k: &str| format!("resolve.headers[{n}].{k}");
        let name = header_name(c, &h.name, &key("name"));
        let says = c.parse(&h.says, &key("says"), |s| match s.as_str() {
            "country" => Ok(Says::Country),
            "residence" => Ok(Says::Residence),
            "citizenship" => Ok(Says::Citizenship),
            "home_region" => Ok(Says::HomeRegion),
            "subject" => Ok(Says::Subject),
            other => Err(format!(
                "unknown value {other:?}; expected one of country, residence, citizenship, home_region, subject"
            )),
        });
        if let Some(name) = &name
            && name.as_str().starts_with("domicile-")
        {
            c.err(
                &h.name,
                key("name"),
                "the gateway's own headers cannot carry subject signals",
            );
        }
        if let (Some(name), Some(says)) = (name, says) {
            out.headers.push(SubjectHeader {
                location: Arc::from(format!("header:{name}")),
                name,
                says,
            });
        }
    }

    for (n, v) in r.trusted_identities.iter().enumerate() {
        let key = format!("resolve.trusted_identities[{n}]");
        if let Some(name) = c.parse(v, &key, |s| {
            rustls::pki_types::ServerName::try_from(s.clone())
                .ok()
                .filter(|n| matches!(n, rustls::pki_types::ServerName::DnsName(_)))
                .ok_or_else(|| format!("{s:?} is not a DNS name"))
        }) {
            out.trusted_identities.push(name);
        }
    }
    if let Some(v) = r.trusted_identities.first()
        && raw
            .server
            .tls
            .as_ref()
            .is_none_or(|t| t.client_ca.is_none())
    {
        c.err(
            v,
            "resolve.trusted_identities",
            "client identities need server.tls.client_ca to verify client certificates",
        );
    }

    if let Some(t) = &r.tokens {
        out.tokens = tokens(c, t);
    }

    if let Some(d) = &r.directory {
        let mut subject = Vec::new();
        if d.subject_claim.unwrap_or(out.tokens.is_some()) {
            subject.push(SubjectIdSource::Claim);
        }
        if let Some(h) = &d.subject_header
            && let Some(name) = header_name(c, h, "resolve.directory.subject_header")
        {
            subject.push(SubjectIdSource::Header(name));
        }
        if let Some(p) = &d.subject_path_segment
            && let Some(n) = c.parse(p, "resolve.directory.subject_path_segment", |n| {
                usize::try_from(*n)
                    .ok()
                    .filter(|n| (1..=32).contains(n))
                    .ok_or_else(|| format!("must be a segment number from 1 to 32, got {n}"))
            })
        {
            subject.push(SubjectIdSource::PathSegment(n));
        }
        if let Some(f) = &d.subject_body_field
            && let Some(p) = c.parse(f, "resolve.directory.subject_body_field", |s| {
                if s.starts_with('/') {
                    Ok(s.clone())
                } else {
                    Err(format!("{s:?} is not a JSON pointer such as /customer/id"))
                }
            })
        {
            subject.push(SubjectIdSource::BodyField(p));
        }
        if subject.is_empty() {
            c.err(
                &d.path,
                "resolve.directory",
                "the directory needs a subject id source: subject_claim (with [resolve.tokens]), subject_header, subject_path_segment or subject_body_field",
            );
        }
        out.directory = Some(DirectoryConfig {
            path: c.path(d.path.get_ref()),
            subject,
            record_first_write: d.record_first_write.unwrap_or(true),
        });
    }

    if let Some(g) = &raw.geoip {
        out.geoip_field = c.one_of(
            &g.country_field,
            "geoip.country_field",
            &[
                ("country", CountryField::Country),
                ("registered_country", CountryField::RegisteredCountry),
            ],
            CountryField::Country,
        );
        if let Some(u) = &g.unknown {
            out.unknown_address = c
                .parse(u, "geoip.unknown", |s| match s.as_str() {
                    "fail_closed" => Ok(UnknownAddress::FailClosed),
                    "ignore" => Ok(UnknownAddress::Ignore),
                    code => Country::parse(code).map(UnknownAddress::Assume).map_err(|_| {
                        format!(
                            "unknown value {code:?}; expected fail_closed, ignore or a country code to assume"
                        )
                    }),
                })
                .unwrap_or_default();
        }
        out.anonymous = c.one_of(
            &g.anonymous,
            "geoip.anonymous",
            &[
                ("unknown", AnonymousRule::Unknown),
                ("country", AnonymousRule::Country),
            ],
            AnonymousRule::Unknown,
        );
    }
    out.client_header = c.one_of(
        &raw.network.client_address_header,
        "network.client_address_header",
        &[
            ("x-forwarded-for", ClientHeader::XForwardedFor),
            ("forwarded", ClientHeader::Forwarded),
        ],
        ClientHeader::XForwardedFor,
    );
    out
}

fn tokens(c: &mut Checker<'_>, t: &FileTokens) -> Option<TokensConfig> {
    let source = match (&t.header, &t.cookie) {
        (Some(h), Some(_)) => {
            c.err(
                h,
                "resolve.tokens.header",
                "give header or cookie, not both",
            );
            TokenSource::Authorization
        }
        (Some(h), None) => match header_name(c, h, "resolve.tokens.header") {
            Some(n) if n == http::header::AUTHORIZATION => TokenSource::Authorization,
            Some(n) => TokenSource::Header(n),
            None => TokenSource::Authorization,
        },
        (None, Some(k)) => TokenSource::Cookie(k.get_ref().clone()),
        (None, None) => TokenSource::Authorization,
    };
    let leeway = c.duration(&t.leeway, "resolve.tokens.leeway", Duration::from_secs(30));
    let on_invalid = c.one_of(
        &t.on_invalid,
        "resolve.tokens.on_invalid",
        &[
            ("reject", OnInvalidToken::Reject),
            ("ignore", OnInvalidToken::Ignore),
        ],
        OnInvalidToken::Reject,
    );
    let d = ClaimNames::default();
    let name = |v: &Option<String>, dflt: Option<String>| match v.as_deref() {
        Some("") => None,
        Some(s) => Some(s.to_owned()),
        None => dflt,
    };
    let claims = ClaimNames {
        country: name(&t.claims.country, d.country),
        residence: name(&t.claims.residence, d.residence),
        citizenship: name(&t.claims.citizenship, d.citizenship),
        home_region: name(&t.claims.home_region, d.home_region),
        subject: name(&t.claims.subject, d.subject),
    };
    let mut issuers = Vec::new();
    for (n, i) in t.issuers.iter().enumerate() {
        let key = |k: &str| format!("resolve.tokens.issuers[{n}].{k}");
        let mut issuer = Issuer::new(
            i.issuer.get_ref().clone(),
            i.audience.iter().map(|a| a.get_ref().clone()).collect(),
        );
        if let Some(j) = &i.jwks {
            let path = c.path(j.get_ref());
            if let Err(e) = issuer.add_jwks_file(&path) {
                c.err(j, key("jwks"), e.to_string());
            }
        }
        if let Some(p) = &i.pem {
            let path = c.path(p.get_ref());
            if let Err(e) = issuer.add_pem_file(&path, i.kid.clone()) {
                c.err(p, key("pem"), e.to_string());
            }
        }
        if let Some(s) = &i.hs256_secret_file {
            let path = c.path(s.get_ref());
            match std::fs::read(&path) {
                Ok(secret) => {
                    let secret = secret.trim_ascii().to_vec();
                    if secret.len() < 32 {
                        c.err(
                            s,
                            key("hs256_secret_file"),
                            "an HS256 secret must be at least 32 bytes",
                        );
                    } else {
                        issuer.add_hs256_secret(&secret);
                    }
                }
                Err(e) => c.err(
                    s,
                    key("hs256_secret_file"),
                    format!("{}: {e}", path.display()),
                ),
            }
        }
        if i.jwks.is_none() && i.pem.is_none() && i.hs256_secret_file.is_none() {
            c.err(
                &i.issuer,
                key("issuer"),
                "an issuer needs keys: jwks, pem or hs256_secret_file",
            );
        }
        issuers.push(issuer);
    }
    if issuers.is_empty() {
        return None;
    }
    let leeway_secs = leeway.as_secs();
    Some(TokensConfig {
        location: Arc::from(source.location()),
        source,
        verifier: Arc::new(TokenVerifier::new(issuers, claims, leeway_secs)),
        on_invalid,
    })
}
