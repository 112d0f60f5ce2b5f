//! GeoIP signals: the `Forwarded` header, City-style records with `registered_country` and
//! anonymiser traits, DBs with a flat `country_code`, the rules for anonymous and unknown
//! addresses, and the DB's build date in the record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use domicile_tests::client::{self, Reply, post_json};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;
use serde_json::json;

/// 192.0.2.0/24 is used in DE but registered to US; 198.51.100.0/24 is a US anonymiser;
/// 203.0.113.0/24 is FR in a flat `country_code` record.
fn city_db(dir: &std::path::Path) {
    let mut w = mmdb_writer::Writer::new("Test-City");
    let rows = [
        (
            "192.0.2.0/24",
            json!({"country": {"iso_code": "DE"}, "registered_country": {"iso_code": "US"},
                   "city": {"names": {"en": "Berlin"}}}),
        ),
        (
            "198.51.100.0/24",
            json!({"country": {"iso_code": "US"}, "registered_country": {"iso_code": "US"},
                   "traits": {"is_anonymous_proxy": true}}),
        ),
        ("203.0.113.0/24", json!({"country_code": "FR"})),
    ];
    for (net, rec) in rows {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
    }
    std::fs::write(dir.join("city.mmdb"), w.to_bytes().unwrap()).unwrap();
}

async fn start(eu: &Backend, us: &Backend, network: &str, geoip: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    city_db(dir.path());
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "")
        .replace(
            "database = \"country.mmdb\"",
            &format!("database = \"city.mmdb\"\n{geoip}"),
        )
        .replace(
            r#"trusted_proxies = ["127.0.0.0/8"]"#,
            &format!("trusted_proxies = [\"127.0.0.0/8\"]\n{network}"),
        );
    Gateway::start(dir, &text, false).await
}

async fn post(gw: &Gateway, headers: &[(&str, &str)], json: &str) -> Reply {
    let mut b = Request::post(gw.url("/customers")).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client::send(
        b.body(Full::new(Bytes::from(json.to_owned()))).unwrap(),
        false,
    )
    .await
}

const EMAIL: &str = r#"{"email":"a@example.com"}"#;

#[tokio::test]
async fn forwarded_header_flat_country_code_and_anonymous_addresses() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(&eu, &us, r#"client_address_header = "forwarded""#, "").await;

    // The rightmost untrusted `for=` (the loopback proxy hop is skipped); a flat country_code DB
    // row says FR.
    let r = post(
        &gw,
        &[(
            "forwarded",
            "for=\"203.0.113.5:4711\";proto=https, for=127.0.0.1",
        )],
        EMAIL,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    let s = &rec["subject"];
    assert_eq!(s["client_address_source"], "forwarded");
    assert_eq!(s["client_address"], "203.0.113.0/24");
    assert_eq!(s["jurisdictions"], json!(["FR"]));
    let date = s["geoip_build_date"].as_str().unwrap();
    assert_eq!(date.len(), 10, "{date}");
    assert!(
        date.starts_with("20") && date.as_bytes()[4] == b'-',
        "{date}"
    );

    // An anonymiser address is unknown by default: personal data fails closed.
    let r = post(&gw, &[("forwarded", "for=198.51.100.7")], EMAIL).await;
    assert_eq!(r.status, 451);
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        rec["subject"]["rejected_evidence"],
        json!([{"source": "geoip", "location": "client_address", "reason": "anonymous"}])
    );

    // With `Forwarded` configured, X-Forwarded-For is not read: the client is the loopback peer.
    let r = post_json(&gw.url("/customers"), "203.0.113.5", EMAIL).await;
    assert_eq!(r.status, 451);
    assert_eq!(
        gw.record(r.header("domicile-decision").unwrap())["subject"]["client_address_source"],
        "peer"
    );
    // An obfuscated identifier makes the client unknown, never a guess.
    let r = post(&gw, &[("forwarded", "for=_hidden")], EMAIL).await;
    assert_eq!(r.status, 451);
    assert_eq!(eu.count() + us.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn registered_country_anonymous_country_and_ignored_unknowns() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(
        &eu,
        &us,
        "",
        "country_field = \"registered_country\"\nanonymous = \"country\"\nunknown = \"ignore\"",
    )
    .await;
    // Used in DE, registered to US: the registered country is the one configured.
    let r = post_json(&gw.url("/customers"), "192.0.2.10", EMAIL).await;
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    // The anonymiser's country is used as configured.
    let r = post_json(&gw.url("/customers"), "198.51.100.7", EMAIL).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    // An address without a country is ignored: the phone number decides...
    let r = post(&gw, &[], r#"{"phone":"+49 30 901820"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // ...and with no other evidence the subject is still unknown.
    let r = post(&gw, &[], EMAIL).await;
    assert_eq!(r.status, 451);
    assert_eq!(r.json()["reason"], "jurisdiction_unknown");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_unknown_address_can_be_assumed_to_be_in_a_country() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(&eu, &us, "", "unknown = \"DE\"").await;
    let r = post(&gw, &[], EMAIL).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        rec["subject"]["evidence"],
        json!([{"source": "geoip", "kind": "country", "country": "DE", "weight": 60, "location": "client_address:assumed"}])
    );
    gw.running.shutdown().await;
}
