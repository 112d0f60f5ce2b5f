//! The first request path end to end: which backend got what, status codes, headers, problem
//! bodies and decision records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;

const EU_IP: &str = "192.0.2.10";
const US_IP: &str = "198.51.100.7";

#[tokio::test]
async fn eu_customer_is_stored_in_eu_central_with_subject_headers() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let r = post_json(
        &gw.url("/customers"),
        EU_IP,
        r#"{"name":"Jane","email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "eu");
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let id = r.header("domicile-decision").unwrap().to_owned();
    assert_eq!((eu.count(), us.count()), (1, 0));
    let got = &eu.received()[0];
    assert_eq!(got.headers["domicile-subject-jurisdiction"], "DE");
    assert_eq!(got.headers["domicile-decision"], id.as_str());
    assert_eq!(
        got.body.as_ref(),
        br#"{"name":"Jane","email":"jane@example.com"}"#
    );
    // The backend's hop-by-hop headers do not reach the client.
    assert_eq!(r.header("x-backend"), Some("eu"));
    assert_eq!(r.header("x-hop"), None);

    let rec = gw.record(&id);
    assert_eq!(rec["verdict"], "allow");
    assert_eq!(rec["basis"][0], "not_a_transfer:EEA");
    assert_eq!(rec["route"], "customers");
    assert_eq!(rec["destination"]["region"], "eu-central");
    assert_eq!(rec["subject"]["jurisdictions"][0], "DE");
    assert_eq!(rec["subject"]["client_address"], "192.0.2.0/24");
    // The name field is found by its name, the address by its shape.
    let found: Vec<(&str, &str)> = domicile_tests::findings_of(&rec);
    assert_eq!(found, vec![("name", "/name"), ("email", "/email")]);
    assert_eq!(rec["outcome"]["action"], "forwarded");
    assert!(!gw.trace_text().contains("jane@example.com"));
    // The outcome follows the decision in the same chained file (appended without waiting).
    let mut outcome = None;
    for _ in 0..100 {
        outcome = gw
            .outcomes()
            .into_iter()
            .find(|o| o["decision_id"] == id.as_str());
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let outcome = outcome.expect("no outcome line");
    assert_eq!(outcome["upstream_status"], 200);
    assert_eq!(outcome["region"], "eu-central");
    assert!(outcome["latency_us"].as_u64().is_some());
    let file = gw.trace_dir().join("eu-central/decisions.jsonl");
    domicile_gateway::trace::writer::verify_file(&file).unwrap();
    gw.running.shutdown().await;
}

#[tokio::test]
async fn us_customer_is_stored_in_us_east() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let r = post_json(
        &gw.url("/customers"),
        US_IP,
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    assert_eq!((eu.count(), us.count()), (0, 1));
    assert_eq!(
        us.received()[0].headers["domicile-subject-jurisdiction"],
        "US"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn eu_personal_data_to_a_us_route_is_blocked_with_451_and_recorded() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let r = post_json(
        &gw.url("/analytics"),
        EU_IP,
        r#"{"user":{"email":"jane@example.com"}}"#,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["type"], "urn:domicile:problem:transfer_blocked");
    assert_eq!(p["status"], 451);
    assert_eq!(p["reason"], "no_transfer_basis");
    assert_eq!(p["subject_jurisdiction"], "DE");
    assert_eq!(p["destination_region"], "us-east");
    let id = p["decision_id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("domicile-decision"), Some(id.as_str()));
    assert!(!r.text().contains("jane@example.com"));
    assert_eq!((eu.count(), us.count()), (0, 0));

    let rec = gw.record(&id);
    assert_eq!(rec["verdict"], "block");
    assert_eq!(rec["reason_code"], "no_transfer_basis");
    assert_eq!(rec["outcome"]["action"], "blocked");
    assert_eq!(rec["outcome"]["status"], 451);
    assert_eq!(rec["findings"][0]["location"], "/user/email");
    let reasons = rec["reasons"].to_string();
    assert!(reasons.contains("eu.adequacy.us.dpf"), "{reasons}");
    assert!(reasons.contains("EU-US-DPF"), "{reasons}");
    // Stored in the subject's home region.
    assert!(gw.trace_dir().join("eu-central/decisions.jsonl").exists());
    assert!(!gw.trace_text().contains("jane@example.com"));

    // The same request without personal data goes through.
    let r = post_json(
        &gw.url("/analytics"),
        EU_IP,
        r#"{"page":"/home","clicks":3}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(us.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn phone_evidence_from_a_us_address_is_judged_by_the_strictest_regime() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // A +49 number from a US client: plausible {US, DE}; GDPR forbids us-east, so the home
    // route picks eu-central, where both regimes allow it.
    let r = post_json(&gw.url("/customers"), US_IP, r#"{"phone":"+49 30 901820"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        rec["subject"]["jurisdictions"],
        serde_json::json!(["US", "DE"])
    );
    assert_eq!(rec["subject"]["conflict"], true);
    assert_eq!(us.received().len(), 0);
    // On the fixed US route the same data is blocked.
    let r = post_json(&gw.url("/analytics"), US_IP, r#"{"phone":"+49 30 901820"}"#).await;
    assert_eq!(r.status, 451);
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
        r#"trusted_proxies = ["127.0.0.0/8"]"#,
        "trusted_proxies = []",
    );
    let gw = Gateway::start(dir, &text, false).await;
    // The client claims an EU address; the socket peer (loopback) has no country.
    let r = post_json(
        &gw.url("/customers"),
        EU_IP,
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["subject"]["forwarded_for_ignored"], true);
    // Both addresses are recorded, truncated alike: the one used and the one claimed.
    assert_eq!(rec["subject"]["forwarded_for_claimed"], "192.0.2.0/24");
    assert_eq!(rec["subject"]["client_address"], "127.0.0.0/24");
    assert_eq!(rec["subject"]["client_address_source"], "peer");
    assert!(!gw.trace_text().contains(EU_IP));
    assert_eq!(eu.count() + us.count(), 0);
    // Upstream, the spoofable chain is replaced by the real peer, and address claims go.
    let r = client::get_with(
        &gw.url("/catalog"),
        &[
            ("x-forwarded-for", EU_IP),
            ("x-real-ip", EU_IP),
            ("x-original-url", "/customers"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let got = us.received().pop().unwrap();
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert!(!got.headers.contains_key("x-real-ip"));
    assert!(!got.headers.contains_key("x-original-url"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn proxy_headers_hop_by_hop_and_own_headers() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let req = Request::post(gw.url("/customers/7?x=1"))
        .header("host", "api.example.test")
        .header("content-type", "application/json")
        .header("x-forwarded-for", EU_IP)
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("domicile-subject-jurisdiction", "US")
        .header("domicile-decision", "forged")
        .body(Full::new(Bytes::from_static(
            br#"{"email":"jane@example.com"}"#,
        )))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &eu.received()[0];
    assert_eq!(got.path, "/customers/7?x=1");
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "connection",
    ] {
        assert!(
            !got.headers.contains_key(gone),
            "{gone} reached the backend"
        );
    }
    assert_eq!(got.headers["domicile-subject-jurisdiction"], "DE");
    assert_ne!(got.headers["domicile-decision"], "forged");
    assert_eq!(got.headers["host"], "api.example.test");
    assert_eq!(
        got.headers["x-forwarded-for"],
        format!("{EU_IP}, 127.0.0.1").as_str()
    );
    assert_eq!(got.headers["x-forwarded-proto"], "http");
    assert_eq!(got.headers["x-forwarded-host"], "api.example.test");
    assert_eq!(
        got.headers["forwarded"],
        "for=127.0.0.1;proto=http;host=\"api.example.test\""
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn host_is_rewritten_to_the_backend_when_the_route_says_so() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = r#"
[[routes]]
id = "orders"
path = "/orders"
purpose = "storage"
placement = "home"
upstream_host = "backend"
"#;
    let gw = Gateway::two_regions(&eu, &us, extra).await;
    let req = Request::post(gw.url("/orders"))
        .header("host", "api.example.test")
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(client::send(req, false).await.status, 200);
    assert_eq!(
        eu.received()[0].headers["host"],
        eu.addr.to_string().as_str()
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let req = Request::post(gw.url("/customers"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"email":"jane@example.com"}"#,
        )))
        .unwrap();
    let r = client::send(req, true).await;
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // The HTTP/1.1 backend got an HTTP/1.1 request.
    assert_eq!(eu.received()[0].version, http::Version::HTTP_11);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn uninspectable_bodies_are_rejected_and_never_forwarded() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = "[server.limits]\nmax_body_bytes = 1024\n";
    // [server.limits] must come before the routes' array tables: put it in the server section.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "")
        .replace("[server.timeouts]", &format!("{extra}\n[server.timeouts]"));
    let gw = Gateway::start(dir, &text, false).await;

    let big = format!(
        r#"{{"email":"jane@example.com","pad":"{}"}}"#,
        "x".repeat(4096)
    );
    let r = post_json(&gw.url("/customers"), EU_IP, &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["reason"], "too_large");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["outcome"]["action"], "rejected");
    assert_eq!(rec["inspection"]["reason"], "too_large");

    let req = Request::post(gw.url("/customers"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from_static(b"\x00\x01jane@example.com")))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 415);

    let r = post_json(
        &gw.url("/customers"),
        EU_IP,
        r#"{"email":"jane@example.com""#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "invalid_json");

    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let r = post_json(&gw.url("/customers"), EU_IP, &deep).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "too_deep");

    let req = Request::post(gw.url("/customers"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "application/json")
        .header("content-encoding", "compress")
        .body(Full::new(Bytes::from_static(b"\x1f\x9d\x90")))
        .unwrap();
    assert_eq!(client::send(req, false).await.status, 415);
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn uninspectable_bodies_on_a_local_route_stay_home() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = r#"
[[routes]]
id = "uploads"
path = "/uploads"
purpose = "storage"
placement = "home"
on_uninspectable = "local"

[[routes]]
id = "exports"
path = "/exports"
purpose = "processing"
placement = "fixed"
region = "us-east"
on_uninspectable = "local"
"#;
    let gw = Gateway::two_regions(&eu, &us, extra).await;
    let req = |path: &str| {
        Request::post(gw.url(path))
            .header("x-forwarded-for", EU_IP)
            .header("content-type", "application/pdf")
            .body(Full::new(Bytes::from_static(b"%PDF-1.7 opaque")))
            .unwrap()
    };
    let r = client::send(req("/uploads"), false).await;
    assert_eq!(r.status, 200);
    assert_eq!(eu.count(), 1);
    let r = client::send(req("/exports"), false).await;
    assert_eq!(r.status, 451);
    assert_eq!(r.json()["reason"], "uninspectable");
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn pass_through_routes_stream_large_bodies() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let big = vec![b'a'; 3 * 1024 * 1024];
    let req = Request::post(gw.url("/catalog/import"))
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 200);
    let got = &us.received()[0];
    assert_eq!(got.body.len(), big.len());
    // Passed on as it arrived, with the length the client gave.
    assert_eq!(got.headers["content-length"], "3145728");
    assert!(!got.headers.contains_key("transfer-encoding"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["inspection"]["status"], "skipped");
    assert_eq!(rec["verdict"], "allow");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn problems_for_unknown_routes_upgrades_and_dead_backends() {
    let eu = Backend::start("eu").await;
    // us-east points at a closed port.
    let gw = Gateway::with_urls(&eu.url(), &domicile_tests::closed_url(), "").await;

    let r = client::get(&gw.url("/nowhere")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["type"], "urn:domicile:problem:no_route");

    let req = Request::get(gw.url("/catalog"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 501);
    assert_eq!(r.json()["type"], "urn:domicile:problem:upgrade_refused");

    let r = client::get(&gw.url("/catalog")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "urn:domicile:problem:upstream_failed");
    assert!(r.json()["decision_id"].is_string());
    gw.running.shutdown().await;
}

#[tokio::test]
async fn every_decided_request_has_exactly_one_record_and_the_chain_verifies() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (path, ip) = match i % 4 {
            0 => ("/customers", EU_IP),
            1 => ("/customers", US_IP),
            2 => ("/analytics", EU_IP),
            _ => ("/catalog", US_IP),
        };
        let r = post_json(
            &gw.url(path),
            ip,
            &format!(r#"{{"email":"user{i}@example.com"}}"#),
        )
        .await;
        assert!(
            r.status == 200 || r.status == 451,
            "{} {}",
            r.status,
            r.text()
        );
        ids.push(r.header("domicile-decision").unwrap().to_owned());
    }
    let records = gw.records();
    assert_eq!(records.len(), 20);
    for id in &ids {
        assert_eq!(
            records
                .iter()
                .filter(|r| r["decision_id"] == id.as_str())
                .count(),
            1
        );
    }
    for region in ["eu-central", "us-east"] {
        let f = gw.trace_dir().join(region).join("decisions.jsonl");
        domicile_gateway::trace::writer::verify_file(&f).unwrap();
    }
    let text = gw.trace_text();
    for i in 0..20 {
        assert!(!text.contains(&format!("user{i}@example.com")));
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_trace_that_cannot_be_written_fails_closed() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // A file where the region's directory should be: the record cannot be written.
    std::fs::create_dir_all(gw.trace_dir()).unwrap();
    std::fs::write(gw.trace_dir().join("eu-central"), b"not a directory").unwrap();
    let r = post_json(
        &gw.url("/customers"),
        EU_IP,
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:domicile:problem:trace_unavailable");
    assert_eq!(eu.count(), 0);
    // Blocks are not answered without their record either.
    let r = post_json(
        &gw.url("/analytics"),
        EU_IP,
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 503);
    let metrics = client::get(&gw.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("domicile_trace_write_failures_total"),
        "{metrics}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn dry_run_relaxes_policy_but_not_fail_closed_rules() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = format!(
        "{}on_uninspectable = \"local\"\n",
        domicile_tests::DRY_RUN_ROUTE
    );
    let gw = Gateway::two_regions(&eu, &us, &extra).await;
    // A policy block on known facts is only reported in a dry run.
    let r = post_json(&gw.url("/trial"), EU_IP, r#"{"email":"jane@example.com"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-verdict"), Some("block"));
    assert_eq!(us.count(), 1);
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["enforced"], false);
    // What cannot be inspected, or whose subject is unknown, still never crosses the border.
    let req = Request::post(gw.url("/trial"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "application/pdf")
        .body(Full::new(Bytes::from_static(b"%PDF opaque")))
        .unwrap();
    assert_eq!(client::send(req, false).await.status, 451);
    let r = post_json(
        &gw.url("/trial"),
        "10.1.2.3",
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    assert_eq!(us.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_address_without_a_country_fails_closed_even_with_phone_evidence() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // 10.1.2.3 is in no GeoIP table; a US number alone must not decide.
    let r = post_json(
        &gw.url("/customers"),
        "10.1.2.3",
        r#"{"phone":"+1 202 456 1111"}"#,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn personal_data_in_queries_of_clean_routes_text_json_and_trailers_is_found() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // A declared-clean route still has its query inspected.
    let r = client::get_with(
        &gw.url("/catalog?notify=jane%40example.com"),
        &[("x-forwarded-for", EU_IP)],
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(us.count(), 0);
    // JSON sent as text/plain, with the @ escaped.
    let req = Request::post(gw.url("/analytics"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(
            br#"{"e":"jane\u0040example.com"}"#,
        )))
        .unwrap();
    assert_eq!(client::send(req, false).await.status, 451);
    // Two Content-Type headers: the backend might read the other one.
    let req = Request::post(gw.url("/customers"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "application/json")
        .header("content-type", "text/csv")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["reason"], "ambiguous_headers");
    assert_eq!(us.count() + eu.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_down_home_region_gives_503_never_an_unlawful_region() {
    let us = Backend::start("us").await;
    let gw = Gateway::with_urls(&domicile_tests::closed_url(), &us.url(), "").await;
    // The first request finds the backend dead (502) and marks it down.
    let r = post_json(
        &gw.url("/customers"),
        EU_IP,
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    // Now the region is known to be down: EU data may not go to us-east instead.
    let r = post_json(
        &gw.url("/customers"),
        EU_IP,
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
    let p = r.json();
    assert_eq!(p["reason"], "home_region_unavailable");
    assert_eq!(p["destination_region"], "eu-central");
    assert_eq!(us.count(), 0);
    let rec = gw.record(p["decision_id"].as_str().unwrap());
    assert_eq!(rec["reason_code"], "home_region_unavailable");
    assert_eq!(rec["outcome"]["action"], "unavailable");
    assert!(
        rec["reasons"]
            .to_string()
            .contains("no other region where this transfer is lawful")
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_down_region_fails_over_where_the_transfer_is_lawful() {
    let eu = Backend::start("eu").await;
    let gw = Gateway::with_urls(&eu.url(), &domicile_tests::closed_url(), "").await;
    let r = post_json(
        &gw.url("/customers"),
        US_IP,
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    // US law places no general restriction on storing this in the EU: fail over.
    let r = post_json(
        &gw.url("/customers"),
        US_IP,
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    assert_eq!(eu.count(), 1);
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["destination"]["region"], "eu-central");
    assert!(
        rec["reasons"]
            .to_string()
            .contains("failed over to eu-central"),
        "{rec}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn active_health_checks_take_a_failing_backend_out_and_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let healthy = Arc::new(AtomicBool::new(true));
    let eu = Backend::start("eu").await;
    let us = Backend::start_with(
        "us",
        domicile_tests::BackendOptions {
            health: Some(healthy.clone()),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
        &format!("backends = [{{ url = \"{}\" }}]", us.url()),
        &format!(
            "backends = [{{ url = \"{}\", health_path = \"/healthz\", health_interval = \"100ms\" }}]",
            us.url()
        ),
    );
    let gw = Gateway::start(dir, &text, false).await;
    let url = gw.url("/customers");
    let region = || async {
        post_json(&url, US_IP, "{}")
            .await
            .header("domicile-region")
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(region().await, "us-east");
    // The check fails: requests move to the lawful alternative without a failed request first.
    healthy.store(false, Ordering::SeqCst);
    let mut r = String::new();
    for _ in 0..50 {
        r = region().await;
        if r == "eu-central" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(r, "eu-central");
    // And back once it passes again.
    healthy.store(true, Ordering::SeqCst);
    for _ in 0..50 {
        r = region().await;
        if r == "us-east" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(r, "us-east");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_refuses_a_body_before_reading_it_is_heard() {
    // The backend reads the head, answers 413 and closes with the body unread (the kernel
    // then resets the connection). Its answer, not a 502, reaches the client: for a body
    // buffered and inspected (/customers, to eu-central) and for one streamed through as it
    // arrives (/catalog, to us-east).
    let addr = domicile_tests::serve_raw(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = s
            .write_all(
                b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\n\
                  connection: close\r\n\r\ntoo much",
            )
            .await;
    })
    .await;
    let url = format!("http://{addr}");
    let limits = "[server.limits]\nmax_body_bytes = 33554432\nmax_buffered_bytes = 33554432\n";
    let gw = Gateway::with_urls(&url, &url, limits).await;
    // Far more than the sockets between the gateway and the backend hold.
    let body = format!(
        r#"{{"email":"jane@example.com","pad":"{}"}}"#,
        "x".repeat(16 << 20)
    );
    for _ in 0..2 {
        let r = post_json(&gw.url("/customers"), EU_IP, &body).await;
        assert_eq!(r.status, 413, "{}", r.text());
        assert_eq!(r.text(), "too much");
        assert_eq!(r.header("domicile-region"), Some("eu-central"));
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["outcome"]["action"], "forwarded");
    }
    for _ in 0..2 {
        let req = Request::post(gw.url("/catalog/import"))
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(vec![b'a'; 16 << 20])))
            .unwrap();
        let r = client::send(req, false).await;
        assert_eq!(r.status, 413, "{}", r.text());
        assert_eq!(r.text(), "too much");
        assert_eq!(r.header("domicile-region"), Some("us-east"));
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["inspection"]["status"], "skipped");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_answers_while_it_reads_gets_the_whole_body() {
    // An echo backend answers at once and streams the body back as it reads it: the gateway
    // must read the answer while it still writes the request, or both sides stall once the
    // sockets between them are full.
    let addr = domicile_tests::serve_raw(|stream| async move {
        let svc =
            hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await;
    })
    .await;
    let eu = Backend::start("eu").await;
    let limits = "[server.limits]\nmax_body_bytes = 33554432\n";
    let gw = Gateway::with_urls(&eu.url(), &format!("http://{addr}"), limits).await;
    let body: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    for _ in 0..2 {
        let req = Request::post(gw.url("/catalog/echo"))
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), client::send(req, false))
            .await
            .expect("the exchange stalled");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
        assert!(r.body.as_ref() == body.as_slice(), "the echo differs");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_client_body_that_ends_short_is_the_clients_failure_not_the_backends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that waits for the whole body: it never answers this one.
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(
        b"POST /catalog/import HTTP/1.1\r\nhost: gw\r\ncontent-type: application/octet-stream\r\n\
          content-length: 1000\r\n\r\nonly ten b",
    )
    .await
    .unwrap();
    // The client stops sending, 990 bytes short, and waits for the answer.
    s.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("\"type\":\"urn:domicile:problem:request_body_failed\""),
        "{answer}"
    );
    let id = answer
        .lines()
        .find_map(|l| l.strip_prefix("domicile-decision: "))
        .unwrap()
        .trim()
        .to_owned();
    // The outcome names the client's body, not the backend, and the backend saw nothing whole.
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if let Some(o) = gw
                .outcomes()
                .into_iter()
                .find(|o| o["decision_id"] == id.as_str())
            {
                return o;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(outcome["error"], "request_body_failed");
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn personal_data_is_found_under_a_repeated_key_and_in_one_byte_chunks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // A key given twice: backends differ on which one counts, so both are inspected, in
    // either order.
    for body in [
        r#"{"email":"none","email":"jane@example.com"}"#,
        r#"{"email":"jane@example.com","email":"none"}"#,
    ] {
        let r = post_json(&gw.url("/analytics"), EU_IP, body).await;
        assert_eq!(r.status, 451, "{body}: {}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["findings"][0]["category"], "email", "{body}");
        assert_eq!(rec["findings"][0]["location"], "/email", "{body}");
    }
    // The body in chunks of one byte each: inspected as the whole it makes.
    let json = r#"{"email":"jane@example.com"}"#;
    let mut req = format!(
        "POST /analytics HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {EU_IP}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    for c in json.chars() {
        req.push_str(&format!("1\r\n{c}\r\n"));
    }
    req.push_str("0\r\n\r\n");
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 451"), "{resp}");
    assert!(!resp.contains("jane@example.com"), "{resp}");
    assert_eq!((eu.count(), us.count()), (0, 0));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn compressed_values_are_read_and_unreadable_ones_and_files_stay_in_the_subjects_zone() {
    use base64::Engine;
    use std::io::Write;
    let gzip_b64 = |data: &[u8]| {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap())
    };
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // A compressed payload in a JSON string, as APIs send batches: what it holds is found.
    let payload = gzip_b64(br#"[{"note":"call back","contact":"jane@example.com"}]"#);
    let body = format!(r#"{{"batch":"{payload}"}}"#);
    let r = post_json(&gw.url("/analytics"), EU_IP, &body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["findings"][0]["category"], "email");
    assert_eq!(rec["findings"][0]["location"], "/batch");
    assert!(!rec.to_string().contains("jane@example.com"));
    // One that decompresses a thousand to one cannot be read: it may hold anything, so it
    // does not go to the US, and is stored in the subject's home region.
    let bomb = format!(r#"{{"batch":"{}"}}"#, gzip_b64(&vec![b' '; 4 << 20]));
    unread_is_blocked_abroad(&gw, &bomb, "compressed.gzip", "/batch").await;
    let r = post_json(&gw.url("/customers"), EU_IP, &bomb).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // So may a photo sent as base64 (a scanned passport, say): not read, not sent abroad.
    let jpeg = base64::engine::general_purpose::STANDARD
        .encode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    let photo = format!(r#"{{"id_scan":"data:image/jpeg;base64,{jpeg}"}}"#);
    unread_is_blocked_abroad(&gw, &photo, "embedded.jpeg", "/id_scan").await;
    assert_eq!((eu.count(), us.count()), (1, 0));
    gw.running.shutdown().await;
}

/// An EU subject's `body` to the US route is blocked (451), recorded with one finding of what
/// could not be read: `detector` at `location`.
async fn unread_is_blocked_abroad(gw: &Gateway, body: &str, detector: &str, location: &str) {
    let r = post_json(&gw.url("/analytics"), EU_IP, body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        domicile_tests::findings_of(&rec),
        vec![("uninspectable", location)],
        "{rec}"
    );
    assert_eq!(rec["findings"][0]["detector"], detector);
}

#[tokio::test]
async fn tokens_carry_their_claims_and_encrypted_values_stay_in_the_subjects_zone() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let jwe = format!(
        "{}.a2V5.aXY.Y2lwaGVy.dGFn",
        b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
    );
    let body = format!(r#"{{"payload":"{jwe}"}}"#);
    // An encrypted value may hold anything: not to the US...
    unread_is_blocked_abroad(&gw, &body, "encrypted.jwe", "/payload").await;
    // ...but stored in the subject's home region.
    let r = post_json(&gw.url("/customers"), EU_IP, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // A session token whose claims name the subject's address, in a cookie to a route that
    // carries no personal data in its body.
    let claims = r#"{"sub":"42","email":"jane@example.com"}"#;
    let session = format!("{}.{}.c2ln", b64(r#"{"alg":"HS256"}"#), b64(claims));
    let req = Request::get(gw.url("/catalog/items/1"))
        .header("x-forwarded-for", EU_IP)
        .header("cookie", format!("session={session}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["findings"][0]["category"], "email");
    assert_eq!(rec["findings"][0]["location"], "cookie:session");
    assert!(!rec.to_string().contains("jane@example.com"));
    assert_eq!(us.count(), 0);
    assert_eq!(eu.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn answers_to_requests_with_personal_data_are_kept_out_of_shared_caches() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let send = |path: &str, body: &'static str, cc: &str| {
        client::send(
            Request::post(gw.url(path))
                .header("content-type", "application/json")
                .header("x-forwarded-for", EU_IP)
                .header("x-reply-cache-control", cc)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap(),
            false,
        )
    };
    // Personal data in the request: a shared cache may not keep the answer.
    let r = send(
        "/customers",
        r#"{"email":"jane@example.com"}"#,
        "public, max-age=600, s-maxage=3600",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("private, max-age=600"));
    // None: the backend's caching stands.
    let r = send("/catalog", r#"{"sku":"mug-blue"}"#, "public, max-age=600").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
    gw.running.shutdown().await;
}
