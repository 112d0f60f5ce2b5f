//! Jurisdiction from many signals: body evidence against the client address, verified token
//! claims, trusted subject headers, the subject directory and its admin API, and the GeoIP
//! rules. Each test checks which backend got the request, the status, and the record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use bytes::Bytes;
use domicile_tests::client::{self, Reply, post_json};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const EU_IP: &str = "192.0.2.10";
const US_IP: &str = "198.51.100.7";
const ADMIN_TOKEN: &str = "0123456789abcdef0123";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The record set one piece of evidence aside: from `source`, at `location`, for `reason`.
fn set_aside(rec: &serde_json::Value, source: &str, location: &str, reason: &str) {
    assert_eq!(
        rec["subject"]["rejected_evidence"],
        json!([{"source": source, "location": location, "reason": reason}]),
        "{rec}"
    );
}

async fn post_with(url: &str, headers: &[(&str, &str)], json: &str) -> Reply {
    let mut b = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client::send(
        b.body(Full::new(Bytes::from(json.to_owned()))).unwrap(),
        false,
    )
    .await
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<&str>) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(gw.admin_url(path))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    client::send(req, false).await
}

/// A counter's value in Prometheus text (0 when absent).
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn metrics(gw: &Gateway) -> String {
    admin(gw, "GET", "/metrics", None).await.text()
}

/// The standard two-region config with an admin token, `extra` appended, and `edit` applied.
async fn start(
    eu: &Backend,
    us: &Backend,
    extra: &str,
    prepare: impl FnOnce(&std::path::Path),
    edit: impl FnOnce(String) -> String,
) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, extra).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\""),
    );
    Gateway::start(dir, &edit(text), false).await
}

#[tokio::test]
async fn a_german_phone_from_a_us_client_is_plausibly_both_and_the_strictest_rule_decides() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let r = post_json(&gw.url("/customers"), US_IP, r#"{"phone":"+49 30 901820"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    assert_eq!((eu.count(), us.count()), (1, 0));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    let s = &rec["subject"];
    assert_eq!(s["jurisdictions"], json!(["US", "DE"]));
    assert_eq!(
        s["plausible"],
        json!([{"country": "US", "confidence": 60}, {"country": "DE", "confidence": 40}])
    );
    assert_eq!(s["rule"], "strictest");
    assert_eq!(
        s["evidence"],
        json!([
            {"source": "geoip", "kind": "country", "country": "US", "weight": 60, "location": "client_address"},
            {"source": "body", "kind": "country", "country": "DE", "weight": 40, "location": "/phone",
             "category": "phone", "detector": "phone.e164"}
        ])
    );
    assert_eq!(rec["reasons"][0]["step"], "resolve");
    assert_eq!(rec["reasons"][0]["rule"], "resolve.strictest");
    assert_eq!(
        rec["reasons"][0]["finding"],
        "the evidence points to US (60%), DE (40%); every plausible jurisdiction is evaluated and the strictest answer applies"
    );
    // The fixed US route: the strictest rule (GDPR for DE) blocks it.
    let r = post_json(&gw.url("/analytics"), US_IP, r#"{"phone":"+49 30 901820"}"#).await;
    assert_eq!(r.status, 451);
    assert_eq!(r.json()["reason"], "no_transfer_basis");
    assert_eq!(us.count(), 0);
    assert!(!gw.trace_text().contains("901820"));
    gw.running.shutdown().await;
}

/// Keys for the token tests: an ES256 key whose public half is a PEM file, an Ed25519 key
/// published in a JWKS file, and a stranger's key of each kind.
struct Keys {
    es: rcgen::KeyPair,
    ed: rcgen::KeyPair,
    stranger_es: rcgen::KeyPair,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            es: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            ed: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            stranger_es: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }

    fn write(&self, dir: &std::path::Path) {
        std::fs::write(dir.join("es.pem"), self.es.public_key_pem()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.ed.public_key_raw());
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed-1", "alg": "EdDSA", "use": "sig"}]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    }

    fn es256(&self, key: &rcgen::KeyPair, claims: serde_json::Value) -> String {
        let k = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        encode(&Header::new(Algorithm::ES256), &claims, &k).unwrap()
    }

    fn eddsa(&self, claims: serde_json::Value) -> String {
        let k = EncodingKey::from_ed_pem(self.ed.serialize_pem().as_bytes()).unwrap();
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some("ed-1".into());
        encode(&h, &claims, &k).unwrap()
    }
}

const TOKENS: &str = r#"
[resolve.tokens]
leeway = "1s"

[[resolve.tokens.issuers]]
issuer = "https://id.example"
audience = ["domicile"]
pem = "es.pem"

[[resolve.tokens.issuers]]
issuer = "https://partner.example"
jwks = "jwks.json"
"#;

#[tokio::test]
async fn verified_token_claims_are_evidence_and_forged_or_expired_tokens_are_not() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let keys = Keys::new();
    let gw = start(&eu, &us, TOKENS, |d| keys.write(d), |t| t).await;
    let good = json!({"iss": "https://id.example", "aud": "domicile", "exp": now() + 300,
        "sub": "user-7", "country": "DE", "citizenship": ["IT"]});

    // A loopback client has no GeoIP country: without a token, personal data fails closed.
    let url = gw.url("/customers");
    let body = r#"{"email":"jane@example.com"}"#;
    let r = post_with(&url, &[], body).await;
    assert_eq!(r.status, 451);
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");

    // A verified ES256 token (PEM key) says DE: the subject is resolved and stored at home.
    let bearer = format!("Bearer {}", keys.es256(&keys.es, good.clone()));
    let r = post_with(&url, &[("authorization", &bearer)], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["jurisdictions"], json!(["DE"]));
    assert_eq!(rec["subject"]["citizenship"], json!(["IT"]));
    assert_eq!(
        rec["subject"]["evidence"][0],
        json!({"source": "token", "kind": "country", "country": "DE", "weight": 80, "location": "claim:country"})
    );
    assert_eq!(rec["subject"]["rejected_evidence"], json!([]));

    // A token from a US client says DE: plausible {DE, US}, the strictest rule keeps it in the EU.
    let r = post_with(
        &url,
        &[("authorization", &bearer), ("x-forwarded-for", US_IP)],
        body,
    )
    .await;
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["jurisdictions"], json!(["DE", "US"]));

    // An EdDSA token from the JWKS issuer (no audience configured there).
    let ed =
        keys.eddsa(json!({"iss": "https://partner.example", "exp": now() + 300, "country": "FR"}));
    let r = post_with(&url, &[("authorization", &format!("Bearer {ed}"))], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["jurisdictions"], json!(["FR"]));

    // Forged (another key), expired, wrong audience, an issuer's key under another issuer's
    // name, HS256 signed with the public key as the secret, `alg: none`: none is evidence, and
    // the request is refused with 401 (the record says why).
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(keys.es.public_key_pem().as_bytes()),
    )
    .unwrap();
    let cases = [
        (keys.es256(&keys.stranger_es, good.clone()), "bad_signature"),
        (
            keys.es256(&keys.es, json!({"iss": "https://id.example", "aud": "domicile", "exp": now() - 120, "country": "DE"})),
            "expired",
        ),
        (
            keys.es256(&keys.es, json!({"iss": "https://id.example", "aud": "other", "exp": now() + 300, "country": "DE"})),
            "wrong_audience",
        ),
        (
            keys.es256(&keys.es, json!({"iss": "https://partner.example", "aud": "domicile", "exp": now() + 300, "country": "DE"})),
            "wrong_issuer",
        ),
        (hs, "unknown_key"),
        ("eyJhbGciOiJub25lIn0.eyJjb3VudHJ5IjoiREUifQ.".to_owned(), "malformed"),
    ];
    for (token, reason) in &cases {
        let r = post_with(&url, &[("authorization", &format!("Bearer {token}"))], body).await;
        assert_eq!(r.status, 401, "{reason}: {}", r.text());
        assert_eq!(r.json()["type"], "urn:domicile:problem:invalid_token");
        assert_eq!(r.json()["reason"], *reason);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["subject"]["evidence"], json!([]), "{reason}");
        set_aside(&rec, "token", "header:authorization", reason);
        assert_eq!(rec["outcome"]["action"], "rejected", "{reason}");
        assert_eq!(rec["outcome"]["status"], 401, "{reason}");
    }
    assert_eq!(eu.count(), 3);
    assert_eq!(us.count(), 0);
    // Without personal data the token speaks to nothing: the request is served, and the
    // record lists the token set aside.
    let forged = keys.es256(
        &keys.stranger_es,
        json!({"iss": "https://id.example", "aud": "domicile", "exp": now() + 300}),
    );
    let r = post_with(
        &gw.url("/catalog"),
        &[("authorization", &format!("Bearer {forged}"))],
        r#"{"sku":"mug-blue"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    set_aside(&rec, "token", "header:authorization", "bad_signature");
    // An opaque token (an API key) is no JWT: neither evidence nor refused.
    let r = post_with(
        &url,
        &[(
            "authorization",
            "Bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        )],
        body,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["rejected_evidence"], json!([]));
    let m = metrics(&gw).await;
    // The metrics registry is the process's: other tests in this binary may add to a reason,
    // so each must be counted at least once.
    for (_, reason) in &cases {
        let name = format!("domicile_tokens_rejected_total{{reason=\"{reason}\"}}");
        assert!(counter(&m, &name) >= 1, "{reason} not counted in:\n{m}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_token_in_a_cookie_with_custom_claim_names_is_read() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let keys = Keys::new();
    let extra = r#"
[resolve.tokens]
cookie = "id_token"

[resolve.tokens.claims]
country = "addr.country"
home_region = "region"

[[resolve.tokens.issuers]]
issuer = "https://id.example"
pem = "es.pem"
"#;
    let gw = start(&eu, &us, extra, |d| keys.write(d), |t| t).await;
    let t = keys.es256(
        &keys.es,
        json!({"iss": "https://id.example", "exp": now() + 300, "addr": {"country": "US"}, "region": "us-east"}),
    );
    let r = post_with(
        &gw.url("/customers"),
        &[("cookie", &format!("theme=dark; id_token={t}"))],
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["home_region_source"], "token");
    assert_eq!(rec["subject"]["evidence"][0]["location"], "claim:country");
    // A token that verifies but names a region that is not configured is no invalid token:
    // its country still counts, the region claim is set aside, and the request is served.
    let t = keys.es256(
        &keys.es,
        json!({"iss": "https://id.example", "exp": now() + 300, "addr": {"country": "US"}, "region": "mars"}),
    );
    let r = post_with(
        &gw.url("/customers"),
        &[("cookie", &format!("id_token={t}"))],
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    set_aside(&rec, "token", "claim:home_region", "unknown_region");
    // An expired one is refused with 403: no authentication challenge names a cookie.
    let expired = keys.es256(
        &keys.es,
        json!({"iss": "https://id.example", "exp": now() - 300, "addr": {"country": "US"}}),
    );
    let r = post_with(
        &gw.url("/customers"),
        &[("cookie", &format!("id_token={expired}"))],
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["reason"], "expired");
    assert_eq!(r.header("www-authenticate"), None);
    gw.running.shutdown().await;
}

const HEADERS: &str = r#"
[[resolve.headers]]
name = "x-subject-country"
says = "country"
"#;

#[tokio::test]
async fn subject_headers_are_believed_from_trusted_proxies_and_stripped_from_anyone_else() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    // Loopback is a trusted proxy: the header is evidence (weight 70, above GeoIP's 60).
    let gw = start(&eu, &us, HEADERS, |_| {}, |t| t).await;
    let r = post_with(
        &gw.url("/customers"),
        &[("x-forwarded-for", US_IP), ("x-subject-country", "de")],
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        rec["subject"]["evidence"][0],
        json!({"source": "header", "kind": "country", "country": "DE", "weight": 70, "location": "header:x-subject-country"})
    );
    assert_eq!(eu.received()[0].headers["x-subject-country"], "de");
    gw.running.shutdown().await;

    // Nobody is trusted: the same header is a spoof attempt, stripped, recorded and counted.
    let gw = start(
        &eu,
        &us,
        HEADERS,
        |_| {},
        |t| {
            t.replace(
                r#"trusted_proxies = ["127.0.0.0/8"]"#,
                "trusted_proxies = []",
            )
        },
    )
    .await;
    let r = post_with(
        &gw.url("/customers"),
        &[("x-subject-country", "DE")],
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 451);
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["evidence"], json!([]));
    set_aside(&rec, "header", "header:x-subject-country", "spoof");
    let r = client::get_with(&gw.url("/catalog"), &[("x-subject-country", "DE")]).await;
    assert_eq!(r.status, 200);
    let got = us.received().pop().unwrap();
    assert!(!got.headers.contains_key("x-subject-country"));
    let m = metrics(&gw).await;
    // At least the two here (the registry is the process's; other tests may add to it).
    assert!(
        counter(
            &m,
            "domicile_subject_header_spoofs_total{header=\"x-subject-country\"}"
        ) >= 2,
        "{m}"
    );
    gw.running.shutdown().await;
}

const DIRECTORY: &str = r#"
[resolve.directory]
path = "subjects.redb"
subject_path_segment = 2
"#;

#[tokio::test]
async fn a_directory_entry_overrides_geoip_and_first_writes_are_stored() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(&eu, &us, DIRECTORY, |_| {}, |t| t).await;
    let body = r#"{"email":"c@example.com"}"#;

    // The admin API is token-protected.
    let r = client::get(&gw.admin_url("/v1/subjects/c-42")).await;
    assert_eq!(r.status, 401);
    let r = admin(&gw, "GET", "/v1/subjects/c-42", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["type"], "urn:domicile:problem:no_subject");
    let r = admin(
        &gw,
        "PUT",
        "/v1/subjects/c-42",
        Some(r#"{"home_region":"mars"}"#),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["detail"], "home_region names no configured region");
    let r = admin(
        &gw,
        "PUT",
        "/v1/subjects/c-42",
        Some(r#"{"home_region":"eu-central","jurisdiction":"DE"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin(&gw, "GET", "/v1/subjects/c-42", None).await;
    assert_eq!(r.status, 200);
    let e = r.json();
    assert_eq!(
        (
            &e["subject"],
            &e["home_region"],
            &e["jurisdiction"],
            &e["source"]
        ),
        (
            &json!("c-42"),
            &json!("eu-central"),
            &json!("DE"),
            &json!("admin")
        )
    );

    // A US address, but the directory says the subject lives in DE with home eu-central.
    let r = post_json(&gw.url("/customers/c-42"), US_IP, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    assert_eq!((eu.count(), us.count()), (1, 0));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["directory"], "found");
    assert_eq!(rec["subject"]["home_region"], "eu-central");
    assert_eq!(rec["subject"]["home_region_source"], "directory");
    assert_eq!(
        rec["subject"]["evidence"][0],
        json!({"source": "directory", "kind": "residence", "country": "DE", "weight": 90, "location": "directory"})
    );
    assert!(
        !gw.trace_text().contains("c-42"),
        "the subject id is not recorded"
    );

    // A subject the directory does not know follows GeoIP, and its first write is stored.
    let r = post_json(&gw.url("/customers/c-43"), US_IP, body).await;
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    let id = r.header("domicile-decision").unwrap().to_owned();
    assert_eq!(gw.record(&id)["subject"]["directory"], "stored");
    let e = admin(&gw, "GET", "/v1/subjects/c-43", None).await.json();
    assert_eq!(
        (
            &e["home_region"],
            &e["jurisdiction"],
            &e["source"],
            &e["decision_id"]
        ),
        (
            &json!("us-east"),
            &json!("US"),
            &json!("first_write"),
            &json!(id)
        )
    );
    // Later requests find it.
    let r = post_json(&gw.url("/customers/c-43"), US_IP, body).await;
    assert_eq!(
        gw.record(r.header("domicile-decision").unwrap())["subject"]["directory"],
        "found"
    );

    // Deleted: GeoIP decides again, and that write is the new first write.
    let r = admin(&gw, "DELETE", "/v1/subjects/c-42", None).await;
    assert_eq!(r.status, 204);
    let r = admin(&gw, "DELETE", "/v1/subjects/c-42", None).await;
    assert_eq!(r.status, 404);
    let r = post_json(&gw.url("/customers/c-42"), US_IP, body).await;
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    let e = admin(&gw, "GET", "/v1/subjects/c-42", None).await.json();
    assert_eq!(e["source"], "first_write");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_precedence_rule_lets_the_directory_outrank_geoip() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = format!(
        "[resolve]\non_conflict = \"precedence\"\nprecedence = [\"directory\", \"geoip\", \"body\"]\n{DIRECTORY}"
    );
    let gw = start(&eu, &us, &extra, |_| {}, |t| t).await;
    let r = admin(
        &gw,
        "PUT",
        "/v1/subjects/u-1",
        Some(r#"{"home_region":"us-east","jurisdiction":"US"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    // GeoIP says DE; the directory (ranked first) says US; only US is evaluated.
    let r = post_json(
        &gw.url("/customers/u-1"),
        EU_IP,
        r#"{"email":"u@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["rule"], "precedence");
    assert_eq!(rec["subject"]["jurisdictions"], json!(["US"]));
    assert_eq!(rec["subject"]["conflict"], true);
    assert_eq!(rec["reasons"][0]["rule"], "resolve.precedence");
    assert_eq!(rec["subject"]["evidence"].as_array().unwrap().len(), 2);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn bad_signal_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
    let text = r#"
[resolve]
precedence = ["geoip", "astrology"]
on_conflict = "loudest"
trusted_identities = ["edge.example", "not a name"]

[[resolve.headers]]
name = "x-subject-country"
says = "mood"

[[resolve.tokens.issuers]]
issuer = "https://id.example"
pem = "bad.pem"
"#;
    let path = domicile_tests::write(dir.path(), "bad.toml", text);
    let e = domicile_gateway::Config::load(&path).unwrap_err();
    let lines: Vec<String> =
        e.0.iter()
            .map(|p| format!("{}:{}: {}", p.line, p.key, p.message))
            .collect();
    let want = [
        "3:resolve.precedence[1]: unknown evidence source \"astrology\"",
        "4:resolve.on_conflict: unknown value \"loudest\"",
        "5:resolve.trusted_identities: client identities need server.tls.client_ca",
        "5:resolve.trusted_identities[1]: \"not a name\" is not a DNS name",
        "9:resolve.headers[0].says: unknown value \"mood\"",
        "13:resolve.tokens.issuers[0].pem: ",
    ];
    for w in want {
        assert!(
            lines.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in {lines:#?}"
        );
    }
    assert!(e.to_string().contains("bad.toml:13:"), "{e}");
}

#[tokio::test]
async fn subject_headers_are_believed_from_clients_with_a_trusted_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let pki = domicile_tests::Pki::new();
    let server = pki.leaf(&["localhost"]);
    let edge = pki.leaf(&["edge.internal.example"]);
    let other = pki.leaf(&["laptop.example"]);
    // Its own header name: the metrics recorder is shared by the tests of this file.
    let extra = format!(
        "[resolve]\ntrusted_identities = [\"edge.internal.example\"]\n{}",
        HEADERS.replace("x-subject-country", "x-edge-country")
    );
    let gw = start(
        &eu,
        &us,
        &extra,
        |d| {
            domicile_tests::write(d, "cert.pem", &server.cert_pem);
            domicile_tests::write(d, "key.pem", &server.key_pem);
            domicile_tests::write(d, "ca.pem", &pki.ca_pem);
        },
        // Nobody is trusted by address: only the certificate can vouch.
        |t| {
            t.replace(r#"trusted_proxies = ["127.0.0.0/8"]"#, "trusted_proxies = []")
                .replace(
                    "[server.timeouts]",
                    "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nclient_ca = \"ca.pem\"\n\n[server.timeouts]",
                )
        },
    )
    .await;
    let config = |leaf: Option<&domicile_tests::Leaf>| {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let b = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        match leaf {
            None => b.with_no_client_auth(),
            Some(l) => b
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(l.cert_pem.as_bytes())
                        .map(|c| c.unwrap())
                        .collect(),
                    PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        }
    };
    let send = |cfg| {
        client::tls_post(
            gw.running.addr,
            cfg,
            "/customers",
            &[("x-edge-country", "DE")],
            r#"{"email":"jane@example.com"}"#,
        )
    };
    // The edge proxy's certificate vouches for the header.
    let r = send(config(Some(&edge))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["evidence"][0]["source"], "header");
    // Another certificate from the same CA, or none: a spoof attempt.
    for cfg in [config(Some(&other)), config(None)] {
        let r = send(cfg).await;
        assert_eq!(r.status, 451, "{}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["subject"]["rejected_evidence"][0]["reason"], "spoof");
    }
    assert_eq!((eu.count(), us.count()), (1, 0));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_citizenship_field_in_the_body_is_citizenship_evidence_not_residence() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let r = post_json(
        &gw.url("/customers"),
        US_IP,
        r#"{"email":"a@example.org","nationality":"RU"}"#,
    )
    .await;
    let rec = gw.record(r.header("domicile-decision").unwrap());
    let s = &rec["subject"];
    assert_eq!(s["citizenship"], json!(["RU"]), "{s}");
    // Citizenship is not where the subject is: the jurisdictions stay the address's.
    assert_eq!(s["jurisdictions"], json!(["US"]), "{s}");
    let ev = s["evidence"].as_array().unwrap();
    assert!(
        ev.iter().any(|e| e["source"] == "body"
            && e["kind"] == "citizenship"
            && e["country"] == "RU"
            && e["category"] == "nationality"
            && e["location"] == "/nationality"),
        "{s}"
    );
    // 152-FZ follows Russian citizens wherever they live: the primary copy must be made in
    // Russia, and no region here is there.
    assert!(
        s["regimes"]
            .as_array()
            .unwrap()
            .contains(&json!("RU-152FZ")),
        "{s}"
    );
    assert_eq!(rec["verdict"], "route_local");
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "localisation_required");
    assert_eq!((eu.count(), us.count()), (0, 0));
    assert!(!gw.trace_text().contains("a@example.org"));
}

#[tokio::test]
async fn trace_show_tells_every_subject_field_in_words() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = format!(
        "{HEADERS}\n[[resolve.headers]]\nname = \"x-subject-citizenship\"\nsays = \"citizenship\"\n{DIRECTORY}"
    );
    let gw = start(
        &eu,
        &us,
        &extra,
        |_| {},
        |t| {
            t.replace(
                "durability = \"batch\"",
                &format!(
                    "durability = \"batch\"\nsubject_id_header = \"x-customer-id\"\n[trace.pseudonym_keys]\neu-central = {{ key = \"{}\" }}\nus-east = {{ key = \"{}\" }}",
                    "11".repeat(32),
                    "22".repeat(32)
                ),
            )
        },
    )
    .await;
    let r = post_with(
        &gw.url("/customers/c-77"),
        &[
            ("x-forwarded-for", US_IP),
            ("x-subject-country", "12"),
            ("x-subject-citizenship", "fr"),
            ("x-customer-id", "c-77"),
        ],
        r#"{"phone":"+49 30 901820"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("domicile-decision").unwrap().to_owned();
    let rec = gw.record(&id);
    let shown = domicile_gateway::trace::read::show(&rec, None);
    let s = &rec["subject"];
    for want in [
        "subject      US, DE under US-FED, US-CA-CCPA, GDPR; the evidence conflicts, every plausible jurisdiction is evaluated and the strictest answer applies (rule strictest)".to_owned(),
        "plausible    US (60%), DE (40%) of the evidence weight".to_owned(),
        "citizenship  citizen of FR".to_owned(),
        "rejected     header evidence at header:x-subject-country was not used: the value is not a valid country or region (invalid_value)".to_owned(),
        format!(
            "geoip        database built on {}",
            s["geoip_build_date"].as_str().unwrap()
        ),
        "home region  us-east (from the home of the subject's jurisdiction)".to_owned(),
        "directory    first write: this request's destination is stored as the subject's home"
            .to_owned(),
        format!(
            "pseudonym    {} (keyed HMAC-SHA256 of the subject id)",
            s["pseudonym"].as_str().unwrap()
        ),
    ] {
        assert!(shown.contains(&want), "missing {want:?} in\n{shown}");
    }
    assert!(!shown.contains("c-77"), "{shown}");

    // A later request finds the entry; the home region comes from the directory.
    let r = post_with(
        &gw.url("/customers/c-77"),
        &[("x-forwarded-for", US_IP)],
        r#"{"phone":"+49 30 901820"}"#,
    )
    .await;
    let shown = domicile_gateway::trace::read::show(
        &gw.record(r.header("domicile-decision").unwrap()),
        None,
    );
    for want in [
        "home region  eu-central (from the subject directory's entry)",
        "directory    the subject's entry was found and used",
    ] {
        assert!(shown.contains(want), "missing {want:?} in\n{shown}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_first_write_whose_record_cannot_be_written_leaves_no_directory_entry() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    // A file where us-east's trace directory would go: us-east's records cannot be written
    // (as on a full or read-only disk), eu-central's can.
    let gw = start(
        &eu,
        &us,
        DIRECTORY,
        |dir| {
            std::fs::create_dir_all(dir.join("traces")).unwrap();
            std::fs::write(dir.join("traces").join("us-east"), "not a directory").unwrap();
        },
        |t| t,
    )
    .await;
    let body = r#"{"email":"c@example.com"}"#;
    let r = post_json(&gw.url("/customers/c-90"), US_IP, body).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:domicile:problem:trace_unavailable");
    assert_eq!(
        r.json()["detail"],
        "the decision record could not be written; nothing was forwarded"
    );
    assert_eq!(us.count(), 0);
    // No record, so no entry: the next request is a first write again.
    let r = admin(&gw, "GET", "/v1/subjects/c-90", None).await;
    assert_eq!(r.status, 404, "{}", r.text());

    // A subject whose record is written is stored, naming that record.
    let r = post_json(&gw.url("/customers/c-91"), EU_IP, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("domicile-decision").unwrap().to_owned();
    assert_eq!(gw.record(&id)["subject"]["directory"], "stored");
    let e = admin(&gw, "GET", "/v1/subjects/c-91", None).await.json();
    assert_eq!(
        (&e["home_region"], &e["source"], &e["decision_id"]),
        (&json!("eu-central"), &json!("first_write"), &json!(id))
    );
    gw.running.shutdown().await;
}

/// An RSA key pair kept for this test only (`tests/fixtures/`): the test key generator makes
/// EC and Ed25519 keys, not RSA.
const RS256_PRIVATE: &str = include_str!("../../fixtures/rs256-test-private.pem");
const RS256_PUBLIC: &str = include_str!("../../fixtures/rs256-test-public.pem");

#[tokio::test]
async fn an_rs256_token_is_verified_and_a_tampered_one_is_not() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let tokens = r#"
[resolve.tokens]

[[resolve.tokens.issuers]]
issuer = "https://rsa.example"
audience = ["domicile"]
pem = "rsa.pem"
"#;
    let gw = start(
        &eu,
        &us,
        tokens,
        |d| std::fs::write(d.join("rsa.pem"), RS256_PUBLIC).unwrap(),
        |t| t,
    )
    .await;
    let key = EncodingKey::from_rsa_pem(RS256_PRIVATE.as_bytes()).unwrap();
    let claims = json!({"iss": "https://rsa.example", "aud": "domicile", "exp": now() + 300,
        "country": "SE"});
    let token = encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let url = gw.url("/customers");
    let body = r#"{"email":"sven@example.se"}"#;
    let r = post_with(&url, &[("authorization", &format!("Bearer {token}"))], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["jurisdictions"], json!(["SE"]));
    assert_eq!(rec["subject"]["evidence"][0]["source"], "token");

    // The same signature over other claims (the country changed to US): not evidence, and
    // refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = json!({"iss": "https://rsa.example", "aud": "domicile", "exp": now() + 300,
        "country": "US"});
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let r = post_with(
        &url,
        &[("authorization", &format!("Bearer {}", parts.join(".")))],
        body,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["reason"], "bad_signature");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    set_aside(&rec, "token", "header:authorization", "bad_signature");
    assert_eq!((eu.count(), us.count()), (1, 0));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_subject_id_is_the_same_decoded_in_the_admin_api_and_in_a_request_path() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(&eu, &us, DIRECTORY, |_| {}, |t| t).await;
    // Written through the admin API under its percent-encoded form...
    let r = admin(
        &gw,
        "PUT",
        "/v1/subjects/M%C3%BCller%20K",
        Some(r#"{"home_region":"eu-central","jurisdiction":"DE"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let e = admin(&gw, "GET", "/v1/subjects/M%C3%BCller%20K", None)
        .await
        .json();
    assert_eq!(e["subject"], "Müller K");
    // ...and found for the same subject named in a request path.
    let r = post_json(
        &gw.url("/customers/M%C3%BCller%20K"),
        US_IP,
        r#"{"email":"m@example.com"}"#,
    )
    .await;
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["directory"], "found");
    // An id that is not UTF-8 once decoded is no id.
    let r = admin(&gw, "GET", "/v1/subjects/%FF", None).await;
    assert_eq!(r.status, 400);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn with_on_invalid_ignore_a_token_that_does_not_verify_is_only_set_aside() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let keys = Keys::new();
    let extra = TOKENS.replace(
        "leeway = \"1s\"",
        "leeway = \"1s\"\non_invalid = \"ignore\"",
    );
    let gw = start(&eu, &us, &extra, |d| keys.write(d), |t| t).await;
    let forged = keys.es256(
        &keys.stranger_es,
        json!({"iss": "https://id.example", "aud": "domicile", "exp": now() + 300, "country": "DE"}),
    );
    let body = r#"{"email":"jane@example.com"}"#;
    let r = post_with(
        &gw.url("/customers"),
        &[("authorization", &format!("Bearer {forged}"))],
        body,
    )
    .await;
    // Without the token, a loopback client's jurisdiction is unknown: personal data fails
    // closed, and the record lists the token set aside.
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    set_aside(&rec, "token", "header:authorization", "bad_signature");
    gw.running.shutdown().await;
}
