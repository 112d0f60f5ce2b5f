//! Verified token claims as jurisdiction evidence.
//!
//! A JWT is evidence only after its signature verifies against a configured issuer's key
//! (RS256, ES256 or EdDSA from a JWKS file or a PEM public key; HS256 only when the issuer is
//! given a shared secret), its `iss` names that issuer, its `exp` is in the future (and `nbf` in
//! the past), and, when the issuer has audiences, its `aud` names one of them. Anything else is
//! refused with a reason code and is not evidence.

use std::collections::HashSet;
use std::path::Path;

use domicile_policy::Country;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

/// The claim names to read, each a top-level name or a dotted path (`address.country`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub country: Option<String>,
    pub residence: Option<String>,
    pub citizenship: Option<String>,
    pub home_region: Option<String>,
    pub subject: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            country: Some("country".into()),
            residence: Some("residence".into()),
            citizenship: Some("citizenship".into()),
            home_region: Some("home_region".into()),
            subject: Some("sub".into()),
        }
    }
}

/// One verification key of an issuer.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A token issuer with its keys.
#[derive(Debug)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    keys: Vec<Key>,
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct KeyError {
    pub what: String,
    pub message: String,
}

fn key_error(what: &Path, message: impl Into<String>) -> KeyError {
    KeyError {
        what: what.display().to_string(),
        message: message.into(),
    }
}

impl Issuer {
    pub fn new(issuer: String, audiences: Vec<String>) -> Issuer {
        Issuer {
            issuer,
            audiences,
            keys: Vec::new(),
        }
    }

    /// Adds every signing key of a JWKS file (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA;
    /// symmetric keys in a JWKS are refused: HS256 needs `hs256_secret_file`).
    pub fn add_jwks_file(&mut self, path: &Path) -> Result<usize, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e.to_string()))?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|e| key_error(path, format!("not a JWKS document: {e}")))?;
        let mut added = 0;
        for (n, jwk) in set.keys.iter().enumerate() {
            let inferred = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                _ => {
                    return Err(key_error(
                        path,
                        format!(
                            "keys[{n}]: only RSA, EC P-256 and Ed25519 public keys are accepted"
                        ),
                    ));
                }
            };
            let alg = match jwk.common.key_algorithm {
                None => inferred,
                Some(KeyAlgorithm::RS256) if inferred == Algorithm::RS256 => Algorithm::RS256,
                Some(KeyAlgorithm::ES256) if inferred == Algorithm::ES256 => Algorithm::ES256,
                Some(KeyAlgorithm::EdDSA) if inferred == Algorithm::EdDSA => Algorithm::EdDSA,
                Some(other) => {
                    return Err(key_error(
                        path,
                        format!("keys[{n}]: algorithm {other} is not accepted for this key"),
                    ));
                }
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| key_error(path, format!("keys[{n}]: {e}")))?;
            self.keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
            added += 1;
        }
        if added == 0 {
            return Err(key_error(path, "the JWKS has no keys"));
        }
        Ok(added)
    }

    /// Adds a PEM public key (RSA, EC P-256 or Ed25519; the algorithm follows the key).
    pub fn add_pem_file(&mut self, path: &Path, kid: Option<String>) -> Result<(), KeyError> {
        let pem = std::fs::read(path).map_err(|e| key_error(path, e.to_string()))?;
        let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
            (Algorithm::RS256, k)
        } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
            (Algorithm::ES256, k)
        } else if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
            (Algorithm::EdDSA, k)
        } else {
            return Err(key_error(
                path,
                "not a PEM public key of type RSA, EC P-256 or Ed25519",
            ));
        };
        self.keys.push(Key { kid, alg, key });
        Ok(())
    }

    /// Adds an HS256 shared secret (only when configured explicitly).
    pub fn add_hs256_secret(&mut self, secret: &[u8]) {
        self.keys.push(Key {
            kid: None,
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        });
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// What a verified token says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub issuer: String,
    pub country: Option<Country>,
    pub residence: Option<Country>,
    pub citizenship: Vec<Country>,
    pub home_region: Option<String>,
    /// The subject id, for the directory. Personal data: never recorded.
    pub subject: Option<String>,
    /// Configured claims that were present but not a country code.
    pub invalid_claims: Vec<&'static str>,
    /// The token's `exp`, seconds since the epoch.
    pub expires: u64,
}

/// Why a token is not evidence. `as_str` is the metric and record label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("no configured issuer has a key for the token's algorithm and key id")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not configured")]
    WrongIssuer,
    #[error("the token's audience is not configured")]
    WrongAudience,
    #[error("the token lacks a required claim (exp, iss or aud)")]
    MissingClaim,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::MissingClaim => "missing_claim",
        }
    }

    /// The first failure wins over "no key" and less telling ones.
    fn rank(self) -> u8 {
        match self {
            TokenError::UnknownKey => 0,
            TokenError::Malformed => 1,
            _ => 2,
        }
    }
}

/// How many verified tokens are remembered, and for how long at most.
pub const CACHE_ENTRIES: usize = 4096;
pub const CACHE_SECS: u64 = 300;

/// Verifies tokens against the configured issuers. A token that verified is remembered (by
/// its full text, never a hash an attacker could collide) until its `exp` or for
/// [`CACHE_SECS`], whichever comes first, so a client's repeated token costs one signature
/// check. Tokens that fail are never remembered.
#[derive(Debug, Default)]
pub struct TokenVerifier {
    issuers: Vec<Issuer>,
    claims: ClaimNames,
    leeway_secs: u64,
    /// The validation rules of each issuer's keys, built once: `validations[i][k]` is for
    /// `issuers[i].keys[k]`.
    validations: Vec<Vec<Validation>>,
    cache: std::sync::Mutex<rustc_hash::FxHashMap<Box<str>, (VerifiedClaims, u64)>>,
}

/// What a token signed with `key` of `issuer` must satisfy.
fn validation(issuer: &Issuer, key: &Key, leeway_secs: u64) -> Validation {
    let mut v = Validation::new(key.alg);
    v.leeway = leeway_secs;
    v.validate_nbf = true;
    v.set_issuer(&[issuer.issuer.as_str()]);
    let mut required: HashSet<String> = ["exp", "iss"].map(String::from).into();
    if issuer.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&issuer.audiences);
        required.insert("aud".into());
    }
    v.required_spec_claims = required;
    v
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenVerifier {
    pub fn new(issuers: Vec<Issuer>, claims: ClaimNames, leeway_secs: u64) -> TokenVerifier {
        let validations = issuers
            .iter()
            .map(|i| {
                i.keys
                    .iter()
                    .map(|k| validation(i, k, leeway_secs))
                    .collect()
            })
            .collect();
        TokenVerifier {
            issuers,
            claims,
            leeway_secs,
            validations,
            cache: std::sync::Mutex::new(rustc_hash::FxHashMap::default()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a compact JWS and reads the configured claims.
    pub fn verify(&self, token: &str) -> Result<VerifiedClaims, TokenError> {
        let now = unix_now();
        if let Ok(cache) = self.cache.lock()
            && let Some((claims, until)) = cache.get(token)
        {
            if now < *until {
                return Ok(claims.clone());
            }
            if now >= claims.expires.saturating_add(self.leeway_secs) {
                return Err(TokenError::Expired);
            }
        }
        let claims = self.verify_uncached(token)?;
        let until = claims
            .expires
            .saturating_add(self.leeway_secs)
            .min(now + CACHE_SECS);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, (_, u)| *u > now);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(Box::from(token), (claims.clone(), until));
        }
        Ok(claims)
    }

    /// [`TokenVerifier::verify`] without the cache: always a signature check.
    pub fn verify_uncached(&self, token: &str) -> Result<VerifiedClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let mut worst = TokenError::UnknownKey;
        for (issuer, validations) in self.issuers.iter().zip(&self.validations) {
            for (key, v) in issuer.keys.iter().zip(validations) {
                if key.alg != header.alg {
                    continue;
                }
                if let (Some(want), Some(have)) = (&header.kid, &key.kid)
                    && want != have
                {
                    continue;
                }
                match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, v) {
                    Ok(data) => return Ok(self.read_claims(&issuer.issuer, &data.claims)),
                    Err(e) => {
                        let err = match e.kind() {
                            ErrorKind::ExpiredSignature => TokenError::Expired,
                            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                            ErrorKind::InvalidAudience => TokenError::WrongAudience,
                            ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
                            ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => {
                                TokenError::BadSignature
                            }
                            _ => TokenError::Malformed,
                        };
                        if err.rank() >= worst.rank() {
                            worst = err;
                        }
                    }
                }
            }
        }
        Err(worst)
    }

    fn read_claims(&self, issuer: &str, claims: &Map<String, Value>) -> VerifiedClaims {
        let mut out = VerifiedClaims {
            issuer: issuer.to_owned(),
            // Required and validated by the verifier.
            expires: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
            ..VerifiedClaims::default()
        };
        let names = &self.claims;
        if let Some(v) = names.country.as_deref().and_then(|n| claim(claims, n)) {
            match as_country(v) {
                Some(c) => out.country = Some(c),
                None => out.invalid_claims.push("country"),
            }
        }
        if let Some(v) = names.residence.as_deref().and_then(|n| claim(claims, n)) {
            match as_country(v) {
                Some(c) => out.residence = Some(c),
                None => out.invalid_claims.push("residence"),
            }
        }
        if let Some(v) = names.citizenship.as_deref().and_then(|n| claim(claims, n)) {
            let values: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            for v in values {
                match as_country(v) {
                    Some(c) if !out.citizenship.contains(&c) => out.citizenship.push(c),
                    Some(_) => {}
                    None => out.invalid_claims.push("citizenship"),
                }
            }
        }
        out.home_region = names
            .home_region
            .as_deref()
            .and_then(|n| claim(claims, n))
            .and_then(Value::as_str)
            .map(str::to_owned);
        out.subject = names
            .subject
            .as_deref()
            .and_then(|n| claim(claims, n))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        out
    }
}

/// A claim by name, or by dotted path into nested objects.
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn as_country(v: &Value) -> Option<Country> {
    // `Country::parse` takes either case.
    v.as_str().and_then(|s| Country::parse(s).ok())
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = rest.trim();
    (!t.is_empty()).then_some(t)
}

/// A named cookie's value from a `Cookie` header value.
pub fn cookie<'a>(value: &'a [u8], name: &str) -> Option<&'a str> {
    let s = std::str::from_utf8(value).ok()?;
    s.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

/// Whether a token has a JWT's compact form: three base64url parts (the last, the signature,
/// may be empty, as in an `alg: none` token) whose first encodes a JSON object. An opaque token
/// (an API key, a session id) has not.
pub fn looks_like_jwt(t: &str) -> bool {
    let mut parts = t.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |p: &str| {
        p.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'=')
    };
    if header.is_empty()
        || header.len() > 4096
        || payload.is_empty()
        || !(b64url(header) && b64url(payload) && b64url(signature))
    {
        return false;
    }
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .is_ok_and(|h| h.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_opaque_tokens() {
        for t in [
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2ln",
            "eyJhbGciOiJub25lIn0.eyJjb3VudHJ5IjoiREUifQ.",
            // `{ "alg": "ES256" }`, with spaces.
            "eyAiYWxnIjogIkVTMjU2IiB9.eyJzdWIiOiI0MiJ9.c2ln",
        ] {
            assert!(looks_like_jwt(t), "{t}");
        }
        for t in [
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "9f2c1e7a-5b3d-4c8e-a1f0-2d6b7e9c4a11",
            "abc.def.ghi",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiI0MiJ9",
            "eyJhbGciOiJFUzI1NiJ9..c2ln",
            "eyJhbGciOiJFUzI1NiJ9.eyJ9.c2ln.extra",
            "eyJhbGciOiJFUzI1NiJ9.ey J9.c2ln",
            // Base64url of `["a"]`: not an object.
            "WyJhIl0.eyJzdWIiOiI0MiJ9.c2ln",
        ] {
            assert!(!looks_like_jwt(t), "{t}");
        }
    }

    #[test]
    fn bearer_and_cookie_are_read() {
        assert_eq!(bearer(b"Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer(b"bearer  x"), Some("x"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(
            cookie(b"a=1; id_token=t.o.k; b=2", "id_token"),
            Some("t.o.k")
        );
        assert_eq!(cookie(b"a=1", "id_token"), None);
    }

    #[test]
    fn hs256_verifies_and_refuses_what_it_should() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let mut iss = Issuer::new("https://id.example".into(), vec!["domicile".into()]);
        iss.add_hs256_secret(b"a shared secret of some length");
        let v = TokenVerifier::new(vec![iss], ClaimNames::default(), 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sign = |claims: serde_json::Value, secret: &[u8]| {
            encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        let good = sign(
            serde_json::json!({"iss":"https://id.example","aud":"domicile","exp":now+60,
                "sub":"u-1","country":"de","citizenship":["IT","FR"],"home_region":"eu-central"}),
            b"a shared secret of some length",
        );
        let c = v.verify(&good).unwrap();
        assert_eq!(c.country, Country::parse("DE").ok());
        assert_eq!(c.citizenship.len(), 2);
        assert_eq!(c.home_region.as_deref(), Some("eu-central"));
        assert_eq!(c.subject.as_deref(), Some("u-1"));
        let forged = sign(
            serde_json::json!({"iss":"https://id.example","aud":"domicile","exp":now+60,"country":"DE"}),
            b"another secret",
        );
        assert_eq!(v.verify(&forged), Err(TokenError::BadSignature));
        let expired = sign(
            serde_json::json!({"iss":"https://id.example","aud":"domicile","exp":now-600,"country":"DE"}),
            b"a shared secret of some length",
        );
        assert_eq!(v.verify(&expired), Err(TokenError::Expired));
        let aud = sign(
            serde_json::json!({"iss":"https://id.example","aud":"other","exp":now+60}),
            b"a shared secret of some length",
        );
        assert_eq!(v.verify(&aud), Err(TokenError::WrongAudience));
        let iss = sign(
            serde_json::json!({"iss":"https://evil.example","aud":"domicile","exp":now+60}),
            b"a shared secret of some length",
        );
        assert_eq!(v.verify(&iss), Err(TokenError::WrongIssuer));
        assert_eq!(v.verify("not a token"), Err(TokenError::Malformed));
        // A remembered token answers the same; an altered copy is checked afresh.
        assert_eq!(v.verify(&good).unwrap().country, c.country);
        let mut altered = good.clone();
        altered.pop();
        assert!(v.verify(&altered).is_err());
    }

    #[test]
    fn a_remembered_token_expires_with_its_exp() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let mut iss = Issuer::new("https://id.example".into(), vec![]);
        iss.add_hs256_secret(b"a shared secret of some length");
        let v = TokenVerifier::new(vec![iss], ClaimNames::default(), 0);
        let now = unix_now();
        let t = encode(
            &Header::default(),
            &serde_json::json!({"iss":"https://id.example","exp":now + 1,"country":"DE"}),
            &EncodingKey::from_secret(b"a shared secret of some length"),
        )
        .unwrap();
        assert!(v.verify(&t).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(v.verify(&t), Err(TokenError::Expired));
    }
}
