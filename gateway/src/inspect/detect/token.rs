//! Values that carry other data sealed inside them. A signed JSON Web Token (JWS compact form,
//! RFC 7515: three base64url parts, the second the claims) is readable: its claims are what it
//! carries (an OpenID Connect ID token names, mails and dates its subject). An encrypted one
//! (JWE compact form, RFC 7516: five parts, a header with `enc`) or an armored OpenPGP message
//! (RFC 9580) cannot be read: it may hold anything, and counts as data of unknown category.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What a sealed value holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sealed {
    /// A signed token's claims, as JSON text.
    Claims(String),
    /// Encrypted: the id of the detector that says so.
    Encrypted(&'static str),
}

/// Whether `s` may be a token or an armored message, by its first bytes only: what the JSON
/// walker asks before it skips a value no detector fires on.
#[inline]
pub(crate) fn maybe_sealed(s: &str) -> bool {
    let t = s.as_bytes();
    match t.first() {
        Some(b'e') => t.starts_with(b"eyJ"),
        Some(b'-') => t.starts_with(b"-----BEGIN PGP"),
        Some(c) if c.is_ascii_whitespace() => maybe_sealed(s.trim_start()),
        _ => false,
    }
}

/// The longest token read: larger ones are not tokens a request carries in a field.
const MAX_TOKEN: usize = 64 * 1024;

/// What `s` holds, when it is a token or an armored encrypted message.
pub(super) fn open(s: &str) -> Option<Sealed> {
    let t = s.trim();
    if t.starts_with("-----BEGIN PGP MESSAGE-----") {
        return Some(Sealed::Encrypted("encrypted.openpgp"));
    }
    // `eyJ` is the base64url of `{"`, as every header starts.
    if !t.starts_with("eyJ") || t.len() > MAX_TOKEN {
        return None;
    }
    let mut parts = [""; 5];
    let mut n = 0;
    for part in t.split('.') {
        if n == parts.len() {
            return None;
        }
        parts[n] = part;
        n += 1;
    }
    let base64url = |p: &str| {
        p.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    if !parts[..n].iter().all(|p| base64url(p)) {
        return None;
    }
    let header = URL_SAFE_NO_PAD.decode(parts[0]).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    match n {
        // The signature may be empty (`alg: none`); the claims may not.
        3 if header.contains_key("alg") && !parts[1].is_empty() => {
            let claims = URL_SAFE_NO_PAD.decode(parts[1]).ok()?;
            String::from_utf8(claims).ok().map(Sealed::Claims)
        }
        5 if header.contains_key("enc") => Some(Sealed::Encrypted("encrypted.jwe")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn signed_tokens_are_read_and_encrypted_ones_are_not() {
        let claims = r#"{"sub":"248289761001","email":"jane@example.com"}"#;
        let jws = format!("{}.{}.c2lnbmF0dXJl", b64(r#"{"alg":"RS256"}"#), b64(claims));
        assert_eq!(open(&jws), Some(Sealed::Claims(claims.into())));
        // Unsigned (`alg: none`): no signature, still claims.
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims));
        assert_eq!(open(&unsigned), Some(Sealed::Claims(claims.into())));
        let jwe = format!(
            "{}.a2V5.aXY.Y2lwaGVydGV4dA.dGFn",
            b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
        );
        assert_eq!(open(&jwe), Some(Sealed::Encrypted("encrypted.jwe")));
        let pgp = "-----BEGIN PGP MESSAGE-----\n\nhQEMA5x\n-----END PGP MESSAGE-----\n";
        assert_eq!(open(pgp), Some(Sealed::Encrypted("encrypted.openpgp")));
        assert!(maybe_sealed(&jws) && maybe_sealed(&jwe) && maybe_sealed(pgp));
    }

    #[test]
    fn look_alikes_are_not_tokens() {
        let header = b64(r#"{"alg":"RS256"}"#);
        for s in [
            // Not base64url, not JSON, a header without `alg` or `enc`, wrong part counts.
            format!("{header}.e30.sig+nature"),
            format!("{}.e30.sig", b64("{not json")),
            format!("{}.e30.sig", b64(r#"{"typ":"JWT"}"#)),
            format!("{header}.e30"),
            format!("{header}..sig"),
            format!("{header}.a.b.c.d.e"),
            format!("{header}.a.b.c.d"),
            "eyJhbGciOi".to_owned(),
            "plain text".to_owned(),
            "-----BEGIN PGP SIGNATURE-----".to_owned(),
        ] {
            assert_eq!(open(&s), None, "{s}");
        }
    }
}
