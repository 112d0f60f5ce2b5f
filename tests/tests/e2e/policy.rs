//! The policy engine inside the gateway: opt-out signals, contracts on file, the route's
//! frequency and evidence, and the user's overrides, as a client and the backends see them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;

const EU_IP: &str = "192.0.2.10";
const US_IP: &str = "198.51.100.7";

/// The standard config with roles on the entities, the EU entity as exporter and `extra`.
async fn gateway(eu: &Backend, us: &Backend, extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &dir.path().join("traces"), "")
        .replace(
            "id = \"acme-eu\"\ncountry = \"DE\"",
            "id = \"acme-eu\"\ncountry = \"DE\"\nrole = \"controller\"",
        )
        .replace(
            "id = \"acme-us\"\ncountry = \"US\"",
            "id = \"acme-us\"\ncountry = \"US\"\nrole = \"processor\"",
        );
    let text = format!("{text}\n[policy]\nexporter = \"acme-eu\"\n{extra}");
    Gateway::start(dir, &text, false).await
}

const SHARING_ROUTE: &str = r#"
[[routes]]
id = "ads"
path = "/ads"
purpose = "cross_context_advertising"
placement = "fixed"
region = "us-east"
"#;

#[tokio::test]
async fn a_gpc_signal_blocks_sharing_but_not_the_same_data_to_a_service_provider() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway(&eu, &us, SHARING_ROUTE).await;
    let body = r#"{"email":"joe@example.com"}"#;
    let gpc = |path: &str| {
        Request::post(gw.url(path))
            .header("content-type", "application/json")
            .header("x-forwarded-for", US_IP)
            .header("sec-gpc", "1")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let r = client::send(gpc("/ads"), false).await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "opted_out");
    assert_eq!(
        r.json()["detail"],
        "the request carries an opt-out preference signal (Global Privacy Control) that forbids this route's purpose wherever the data goes (opted_out); nothing was forwarded"
    );
    assert_eq!(us.count(), 0);
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert!(
        rec["reasons"].to_string().contains("us-ca.ccpa.gpc"),
        "{}",
        rec["reasons"]
    );

    // Without the signal the same sharing is forwarded: the CCPA restricts no country.
    let r = post_json(&gw.url("/ads"), US_IP, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us.count(), 1);

    // With the signal, storage (a service-provider purpose) is forwarded.
    let r = client::send(gpc("/customers"), false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    assert_eq!(us.count(), 2);
    gw.running.shutdown().await;
}

const SCC: &str = r#"
[[contracts]]
id = "acme-scc-2024"
instrument = "EU-SCC-2021/914"
module = 2
exporter = "acme-eu"
importer = "acme-us"
signed = "2024-02-01"
tia = { id = "TIA-2024-01", date = "2024-01-20", review = "2099-01-20", impingement = true }
measures = ["encryption-keys-held:EEA"]
"#;

#[tokio::test]
async fn a_contract_on_file_lets_eu_data_reach_an_uncertified_us_processor_with_conditions() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway(&eu, &us, SCC).await;
    let r = post_json(
        &gw.url("/analytics"),
        EU_IP,
        r#"{"user":{"email":"jane@example.com"}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((eu.count(), us.count()), (0, 1));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["verdict"], "allow_with_conditions");
    assert_eq!(rec["basis"][0], "scc:EU/2021/914");
    let conditions = rec["conditions"].to_string();
    assert!(
        conditions.contains("acme-scc-2024") && conditions.contains("TIA-2024-01"),
        "{conditions}"
    );
    assert!(!rec.to_string().contains("jane@example.com"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_block_override_tightens_what_the_contract_would_allow() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = format!(
        "{SCC}\n[[overrides]]\nid = \"no-us-processing\"\neffect = \"block\"\ndestinations = [\"US\"]\npurposes = [\"processing\"]\n"
    );
    let gw = gateway(&eu, &us, &extra).await;
    let r = post_json(
        &gw.url("/analytics"),
        EU_IP,
        r#"{"user":{"email":"jane@example.com"}}"#,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(r.json()["reason"], "policy_override");
    assert_eq!(
        r.json()["detail"],
        "the configured policy forbids this transfer, although the law would allow it (policy_override); nothing was forwarded"
    );
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_occasional_route_with_contract_evidence_uses_art_49_and_a_systematic_one_does_not() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = r#"
[[routes]]
id = "booking"
path = "/booking"
purpose = "processing"
placement = "fixed"
region = "us-east"
frequency = "occasional"
evidence = ["contract_necessity"]

[[routes]]
id = "crm-sync"
path = "/crm-sync"
purpose = "processing"
placement = "fixed"
region = "us-east"
evidence = ["contract_necessity"]
"#;
    let gw = gateway(&eu, &us, extra).await;
    let body = r#"{"email":"jane@example.com"}"#;
    let r = post_json(&gw.url("/booking"), EU_IP, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["basis"][0], "derogation:GDPR/49(1)(b)");
    let r = post_json(&gw.url("/crm-sync"), EU_IP, body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    assert_eq!(us.count(), 1);
    gw.running.shutdown().await;
}
