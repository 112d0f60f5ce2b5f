//! What the trail holds: one record for every request the gateway answers, refusals before a
//! decision included, and subject identifiers only as keyed pseudonyms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use bytes::Bytes;
use domicile_tests::client::{self, post_json, raw};
use domicile_tests::{Backend, Gateway};
use hmac::{Hmac, Mac};
use http_body_util::Full;

const EU_IP: &str = "192.0.2.10";
const US_IP: &str = "198.51.100.7";

/// The decision id in a raw HTTP/1 answer's problem body.
fn id_in(raw: &str) -> String {
    let at = raw
        .find("\"decision_id\":\"")
        .unwrap_or_else(|| panic!("{raw}"))
        + 15;
    raw[at..at + 26].to_owned()
}

#[tokio::test]
async fn every_forwarded_blocked_or_refused_request_has_exactly_one_record() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    let mut note = |id: String, status: u16| {
        ids.push(id);
        statuses.push(status);
    };
    // Decided: forwarded, blocked, rejected as uninspectable.
    for (path, ip, body) in [
        ("/customers", EU_IP, r#"{"email":"jane@example.com"}"#),
        ("/customers", US_IP, r#"{"email":"joe@example.com"}"#),
        ("/analytics", EU_IP, r#"{"email":"jane@example.com"}"#),
        ("/customers", EU_IP, r#"{"email":"#),
        ("/catalog/1", EU_IP, r#"{"page":1}"#),
    ] {
        let r = post_json(&gw.url(path), ip, body).await;
        note(
            r.header("domicile-decision").unwrap().to_owned(),
            r.status.as_u16(),
        );
    }
    // Refused before a decision: no route, ambiguous path, bad host.
    for url in [gw.url("/nowhere"), gw.url("/customers/%2e%2e/admin")] {
        let r = client::get(&url).await;
        note(
            r.json()["decision_id"].as_str().unwrap().to_owned(),
            r.status.as_u16(),
        );
    }
    for req in [
        // Ambiguous framing.
        "POST /catalog HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // A refused upgrade.
        "GET /catalog HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        // CONNECT.
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        // A host that is not a host name.
        "GET /catalog HTTP/1.1\r\nHost: bad host!\r\n\r\n",
    ] {
        let (resp, _) = raw(gw.running.addr, req.as_bytes()).await;
        let status: u16 = resp[9..12].parse().unwrap();
        note(id_in(&resp), status);
    }
    assert_eq!(
        statuses,
        [200, 200, 451, 400, 200, 404, 400, 400, 501, 501, 400]
    );
    // Refusal records are written before the answer; outcome lines may trail a little.
    let lines = gw.lines();
    let mut per_id: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for l in &lines {
        if l["schema"] == "domicile.decision/1" || l["schema"] == "domicile.refusal/1" {
            per_id
                .entry(l["decision_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(l);
        }
    }
    assert_eq!(per_id.len(), ids.len(), "{per_id:#?}");
    for (id, status) in ids.iter().zip(&statuses) {
        let recs = per_id
            .get(id)
            .unwrap_or_else(|| panic!("no record for {id}"));
        assert_eq!(recs.len(), 1, "{id}: {recs:#?}");
        let r = recs[0];
        if r["schema"] == "domicile.refusal/1" {
            assert_eq!(r["outcome"]["action"], "refused");
            assert_eq!(r["outcome"]["status"], *status);
            assert_eq!(r["client_address"], "127.0.0.0/24");
        }
    }
    let refusals: Vec<&str> = lines
        .iter()
        .filter(|l| l["schema"] == "domicile.refusal/1")
        .map(|l| l["reason_code"].as_str().unwrap())
        .collect();
    assert_eq!(
        refusals,
        [
            "no_route",
            "ambiguous_path",
            "ambiguous_framing",
            "upgrade_refused",
            "upgrade_refused",
            "bad_authority"
        ]
    );
    // Refusals have no home region: they are kept under unresolved/, in the same kind of chain.
    let results = domicile_gateway::trace::verify::verify_dir(&gw.trace_dir(), None).unwrap();
    assert!(results.iter().all(|v| v.result.is_ok()), "{results:?}");
    assert!(gw.trace_dir().join("unresolved/decisions.jsonl").exists());
    gw.running.shutdown().await;
}

fn hmac_hex(key: &[u8], id: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn pseudonym_config(eu: &Backend, us: &Backend, dir: &std::path::Path, keys: &str) -> String {
    domicile_tests::two_regions(&eu.url(), &us.url(), &dir.join("traces"), "").replace(
        "durability = \"batch\"",
        &format!("durability = \"batch\"\nsubject_id_header = \"x-customer-id\"\n{keys}"),
    )
}

#[tokio::test]
async fn subject_identifiers_are_recorded_only_as_pseudonyms_keyed_per_region() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let eu_key = "11".repeat(32);
    let us_key = "22".repeat(32);
    std::fs::write(dir.path().join("eu.key"), format!("{eu_key}\n")).unwrap();
    let text = pseudonym_config(
        &eu,
        &us,
        dir.path(),
        &format!(
            "[trace.pseudonym_keys]\neu-central = {{ file = \"eu.key\" }}\nus-east = {{ key = \"{us_key}\" }}"
        ),
    );
    let gw = Gateway::start(dir, &text, false).await;
    let mut ids = Vec::new();
    for ip in [EU_IP, US_IP] {
        let req = http::Request::post(gw.url("/customers"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", ip)
            .header("x-customer-id", "customer-4711")
            .body(Full::new(Bytes::from_static(
                b"{\"email\":\"x@example.com\"}",
            )))
            .unwrap();
        let r = client::send(req, false).await;
        assert_eq!(r.status, 200);
        // The backend still gets the identifier: only the trail is pseudonymised.
        ids.push(r.header("domicile-decision").unwrap().to_owned());
    }
    assert!(eu.received().iter().any(|r| {
        r.headers
            .get("x-customer-id")
            .is_some_and(|v| v == "customer-4711")
    }));
    let eu_rec = gw.record(&ids[0]);
    let us_rec = gw.record(&ids[1]);
    assert_eq!(
        eu_rec["subject"]["pseudonym"],
        hmac_hex(&hex::decode(&eu_key).unwrap(), "customer-4711")
    );
    assert_eq!(
        us_rec["subject"]["pseudonym"],
        hmac_hex(&hex::decode(&us_key).unwrap(), "customer-4711")
    );
    // A request without the header records no pseudonym.
    let r = post_json(&gw.url("/customers"), EU_IP, r#"{"email":"x@example.com"}"#).await;
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert!(rec["subject"].get("pseudonym").is_none(), "{rec}");
    assert!(!gw.trace_text().contains("customer-4711"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_missing_pseudonym_key_file_is_a_config_error_naming_file_line_and_key() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let text = pseudonym_config(
        &eu,
        &us,
        dir.path(),
        "[trace.pseudonym_keys]\neu-central = { file = \"missing.key\" }\nus-east = { key = \"abc\" }",
    );
    let path = domicile_tests::write(dir.path(), "domicile.toml", &text);
    let err = domicile_gateway::Config::load(&path)
        .unwrap_err()
        .to_string();
    assert_eq!(err.lines().count(), 2, "{err}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let file = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:{}:23: trace.pseudonym_keys.eu-central.file: cannot read key file {}: No such file",
            line_of("missing.key"),
            dir.path().join("missing.key").display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:{}:19: trace.pseudonym_keys.us-east.key: the key is not hex",
            line_of("us-east = { key")
        )),
        "{err}"
    );
}
