//! What a client that is not a trusted proxy can put in front of a backend: subject headers,
//! address and routing claims, their `_` spellings and their trailer copies never get through;
//! a trusted proxy's `Forwarded` chain goes on whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use domicile_tests::client;
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;

const SUBJECT_HEADER: &str = r#"
[[resolve.headers]]
name = "x-subject-country"
says = "country"
"#;

/// A gateway for the two test backends; `trust` replaces the trusted proxies (loopback by
/// default) and `client_header` picks the chain read for the client address.
async fn start(
    eu: &Backend,
    us: &Backend,
    extra: &str,
    trust: &str,
    client_header: &str,
) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, extra).replace(
        r#"trusted_proxies = ["127.0.0.0/8"]"#,
        &format!("trusted_proxies = {trust}\nclient_address_header = \"{client_header}\""),
    );
    Gateway::start(dir, &text, false).await
}

#[tokio::test]
async fn a_directory_subject_header_from_an_untrusted_client_is_removed_and_recorded() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra =
        "\n[resolve.directory]\npath = \"subjects.redb\"\nsubject_header = \"x-subject-id\"\n";
    let gw = start(&eu, &us, extra, "[]", "x-forwarded-for").await;
    let raw = "GET /catalog HTTP/1.1\r\nHost: x\r\nX-Subject-Id: victim-42\r\nX_Subject_Id: victim-43\r\nConnection: close\r\n\r\n";
    let (resp, _) = client::raw(gw.running.addr, raw.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = us.received().pop().unwrap();
    assert!(
        got.headers.get("x-subject-id").is_none(),
        "{:?}",
        got.headers
    );
    assert!(
        got.headers.get("x_subject_id").is_none(),
        "{:?}",
        got.headers
    );
    let record = gw.records().pop().unwrap();
    let rejected = &record["subject"]["rejected_evidence"];
    assert_eq!(rejected[0]["location"], "header:x-subject-id", "{rejected}");
    assert_eq!(rejected[0]["reason"], "spoof", "{rejected}");
    assert!(!record.to_string().contains("victim-4"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn subject_headers_in_trailers_never_reach_a_backend() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = format!(
        "{SUBJECT_HEADER}\n[resolve.directory]\npath = \"subjects.redb\"\nsubject_header = \"x-subject-id\"\n"
    );
    // From a trusted peer too: the resolve step reads heads, never trailers.
    let gw = start(&eu, &us, &extra, r#"["127.0.0.0/8"]"#, "x-forwarded-for").await;
    for path in ["/catalog/upload", "/customers"] {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.10\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: x-subject-country, x-subject-id, x-checksum\r\nConnection: close\r\n\r\n\
             2\r\n{{}}\r\n0\r\nx-subject-country: US\r\nx-subject-id: victim-1\r\nx-checksum: 1\r\n\r\n"
        );
        let (resp, _) = client::raw(gw.running.addr, raw.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{path}: {resp}");
    }
    let mut seen = 0;
    for b in [&us, &eu] {
        for got in b.received() {
            seen += 1;
            let t = got.trailers.unwrap_or_default();
            assert!(t.get("x-subject-country").is_none(), "{}: {t:?}", got.path);
            assert!(t.get("x-subject-id").is_none(), "{}: {t:?}", got.path);
            assert_eq!(t.get("x-checksum").unwrap(), "1", "{}: {t:?}", got.path);
        }
    }
    assert_eq!(seen, 2);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn address_and_routing_claims_and_their_underscore_spellings_are_removed() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(&eu, &us, SUBJECT_HEADER, "[]", "x-forwarded-for").await;
    let claims = [
        "X_Subject_Country: DE",
        "X_Real_IP: 8.8.8.8",
        "X_Forwarded_For: 8.8.8.8",
        "Domicile_Subject_Jurisdiction: DE",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Server: evil",
        "X-Forwarded-Ssl: on",
        "X-HTTP-Method: DELETE",
        "X-Cluster-Client-IP: 8.8.8.8",
        "Client-IP: 8.8.8.8",
        "X-Original-Forwarded-For: 8.8.8.8",
        "X-Original-Host: admin.internal",
    ];
    let raw = format!(
        "GET /catalog HTTP/1.1\r\nHost: x\r\nX-Kept: 1\r\n{}\r\nConnection: close\r\n\r\n",
        claims.join("\r\n")
    );
    let (resp, _) = client::raw(gw.running.addr, raw.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = us.received().pop().unwrap();
    for claim in claims {
        let name = claim.split(':').next().unwrap().to_ascii_lowercase();
        assert!(
            got.headers.get(&name).is_none(),
            "{name} reached the backend"
        );
    }
    assert_eq!(got.headers.get("x-kept").unwrap(), "1");
    // The gateway's own forwarding headers name the real peer.
    assert_eq!(got.headers.get("x-forwarded-for").unwrap(), "127.0.0.1");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_chain_goes_on_with_all_its_lines() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = start(&eu, &us, "", r#"["127.0.0.0/8"]"#, "forwarded").await;
    let req = Request::post(gw.url("/customers"))
        .header("content-type", "application/json")
        .header("forwarded", "for=198.51.100.7")
        .header("forwarded", "for=192.0.2.10;proto=https")
        .body(Full::new(Bytes::from_static(
            br#"{"email":"jane@example.com"}"#,
        )))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 200);
    // The client is the rightmost untrusted hop, 192.0.2.10 (DE): stored in eu-central.
    assert_eq!(r.header("domicile-region").unwrap(), "eu-central");
    let got = eu.received().pop().unwrap();
    let forwarded: Vec<&str> = got
        .headers
        .get_all("forwarded")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert!(
        forwarded[0].starts_with("for=198.51.100.7, for=192.0.2.10;proto=https, for=127.0.0.1;"),
        "{forwarded:?}"
    );
    gw.running.shutdown().await;
}
