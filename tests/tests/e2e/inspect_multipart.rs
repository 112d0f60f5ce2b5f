//! multipart/form-data through the gateway: text fields and text-like files are inspected,
//! binary parts follow the route's `binary_parts` rule, and malformed or oversized bodies are
//! uninspectable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use domicile_tests::client::{self, Reply};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;

const EU_IP: &str = "192.0.2.10";
const BOUNDARY: &str = "----domicile7MA4YWxkTrZu0gW";

/// A form-data body: (disposition parameters, part content type, content).
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (params, ct, data) in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {params}\r\n").as_bytes(),
        );
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post(gw: &Gateway, path: &str, body: Vec<u8>) -> Reply {
    let req = Request::post(gw.url(path))
        .header("x-forwarded-for", EU_IP)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    client::send(req, false).await
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";

const ROUTES: &str = r#"
[[routes]]
id = "photos"
path = "/photos"
purpose = "processing"
placement = "fixed"
region = "us-east"
binary_parts = "skip"

[inspect]
max_parts = 4
"#;

#[tokio::test]
async fn text_fields_and_text_files_are_inspected_by_part() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, ROUTES).await;
    let body = form(&[
        ("name=\"title\"", None, b"hello"),
        ("name=\"contact\"", None, b"jane@example.com"),
        (
            "name=\"profile\"; filename=\"profile.json\"",
            Some("application/json"),
            br#"{"tel":"+49 30 901820"}"#,
        ),
        (
            "name=\"notes\"; filename=\"notes.txt\"",
            Some("text/plain; charset=iso-8859-1"),
            b"caf\xe9 with joe@example.org",
        ),
    ]);
    let r = post(&gw, "/analytics", body.clone()).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    let found: Vec<(&str, &str)> = domicile_tests::findings_of(&rec);
    assert_eq!(
        found,
        vec![
            ("email", "multipart:contact"),
            ("phone", "multipart:profile/tel"),
            ("email", "multipart:notes"),
        ]
    );
    assert!(!gw.trace_text().contains("jane@"));
    // The same form from an EU client to the home route goes to the EU, unchanged.
    let r = post(&gw, "/customers", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(eu.received()[0].body, Bytes::from(body));
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn binary_parts_follow_the_route_rule() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, ROUTES).await;
    let body = form(&[
        ("name=\"caption\"", None, b"sunset"),
        (
            "name=\"photo\"; filename=\"IMG_0001.png\"",
            Some("image/png"),
            PNG,
        ),
    ]);
    // Default rule: a part that cannot be read makes the body uninspectable: 415.
    let r = post(&gw, "/analytics", body.clone()).await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.json()["reason"], "binary_part");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["inspection"]["reason"], "binary_part");

    // binary_parts = "skip": forwarded, and the record says what was not inspected.
    let r = post(&gw, "/photos", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us.count(), 1);
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["inspection"]["status"], "complete");
    assert_eq!(
        rec["inspection"]["not_inspected"],
        serde_json::json!(["multipart:photo"])
    );
    assert!(
        rec["reasons"][0]["finding"]
            .as_str()
            .unwrap()
            .contains("forwarded without inspection"),
        "{rec}"
    );

    // The text beside a skipped binary part is still inspected, and so is its file name.
    for (caption, filename) in [
        (&b"jane@example.com"[..], "IMG_0001.png"),
        (&b"sunset"[..], "jane@example.com.png"),
    ] {
        let body = form(&[
            ("name=\"caption\"", None, caption),
            (
                &format!("name=\"photo\"; filename=\"{filename}\""),
                Some("image/png"),
                PNG,
            ),
        ]);
        let r = post(&gw, "/photos", body).await;
        assert_eq!(r.status, 451, "{}", r.text());
    }
    assert_eq!(us.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_forms_are_uninspectable() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, ROUTES).await;
    let five: Vec<(&str, Option<&str>, &[u8])> =
        (0..5).map(|_| ("name=\"a\"", None, &b"x"[..])).collect();
    let r = post(&gw, "/customers", form(&five)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["reason"], "too_many_parts");

    let mut open = form(&[("name=\"contact\"", None, b"jane@example.com")]);
    open.truncate(open.len() - 4);
    let r = post(&gw, "/customers", open).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["reason"], "invalid_multipart");

    // A boundary that is not the one declared: nothing can be read.
    let req = Request::post(gw.url("/customers"))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", "multipart/form-data")
        .body(Full::new(Bytes::from(form(&[("name=\"a\"", None, b"x")]))))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["reason"], "invalid_multipart");
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}
