//! Content codings and charsets through the gateway: encoded personal data is found, the
//! encoded bytes are what the backend gets, bombs are refused with 413, and what cannot be
//! decoded is uninspectable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use bytes::Bytes;
use domicile_tests::client::{self, Reply};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;

const EU_IP: &str = "192.0.2.10";
const DOC: &[u8] = br#"{"user":{"email":"jane@example.com"}}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

async fn post(gw: &Gateway, path: &str, ct: &str, ce: Option<&str>, body: Vec<u8>) -> Reply {
    let mut req = Request::post(gw.url(path))
        .header("x-forwarded-for", EU_IP)
        .header("content-type", ct);
    if let Some(ce) = ce {
        req = req.header("content-encoding", ce);
    }
    client::send(req.body(Full::new(Bytes::from(body))).unwrap(), false).await
}

const LOCAL_ROUTE: &str = r#"
[[routes]]
id = "uploads"
path = "/uploads"
purpose = "storage"
placement = "home"
on_uninspectable = "local"
"#;

#[tokio::test]
async fn every_coding_and_a_stack_is_decoded_and_inspected() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    for (ce, body) in [
        ("gzip", gzip(DOC)),
        ("x-gzip", gzip(DOC)),
        ("deflate", zlib(DOC)),
        ("br", br(DOC)),
        ("zstd", zstd(DOC)),
        ("gzip, br", br(&gzip(DOC))),
        ("zstd, identity, gzip", gzip(&zstd(DOC))),
    ] {
        // EU personal data to a US-only route: found inside the coding, so 451.
        let r = post(&gw, "/analytics", "application/json", Some(ce), body).await;
        assert_eq!(r.status, 451, "{ce}: {}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["inspection"]["status"], "complete", "{ce}");
        assert_eq!(rec["findings"][0]["location"], "/user/email", "{ce}");
        assert_eq!(rec["findings"][0]["category"], "email", "{ce}");
    }
    assert_eq!(us.count(), 0);

    // The backend gets the bytes as sent, still encoded, with their Content-Encoding.
    let sent = br(&gzip(DOC));
    let r = post(
        &gw,
        "/customers",
        "application/json",
        Some("gzip, br"),
        sent.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &eu.received()[0];
    assert_eq!(got.body, Bytes::from(sent));
    assert_eq!(got.headers["content-encoding"], "gzip, br");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_with_413_on_every_route() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, LOCAL_ROUTE).await;
    // 32 MiB of JSON whitespace in about 32 KiB of gzip.
    let mut doc = b"{\"a\":1".to_vec();
    doc.resize(32 * 1024 * 1024, b' ');
    doc.push(b'}');
    let bomb = gzip(&doc);
    assert!(bomb.len() < 64 * 1024);
    for path in ["/customers", "/uploads"] {
        let r = post(&gw, path, "application/json", Some("gzip"), bomb.clone()).await;
        assert_eq!(r.status, 413, "{path}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        let p = r.json();
        assert_eq!(p["type"], "urn:domicile:problem:uninspectable");
        assert_eq!(p["reason"], "decompression_bomb");
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["inspection"]["status"], "uninspectable");
        assert_eq!(rec["inspection"]["reason"], "decompression_bomb");
        assert_eq!(rec["outcome"]["action"], "rejected");
        assert_eq!(rec["outcome"]["status"], 413);
        assert!(
            rec["reasons"][0]["finding"]
                .as_str()
                .unwrap()
                .contains("refuses it on every route"),
            "{rec}"
        );
    }
    // A stacked bomb is found at the inner layer; a lower ratio limit catches smaller ones.
    let r = post(
        &gw,
        "/customers",
        "application/json",
        Some("gzip, br"),
        br(&bomb),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn decoding_limits_are_configurable() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = "\n[inspect]\nmax_decoded_bytes = 4096\nmax_decode_ratio = 2\n";
    let gw = Gateway::two_regions(&eu, &us, extra).await;
    let mut doc = br#"{"email":"jane@example.com","pad":""#.to_vec();
    doc.extend(std::iter::repeat_n(b'x', 8000));
    doc.extend_from_slice(b"\"}");
    let r = post(
        &gw,
        "/customers",
        "application/json",
        Some("gzip"),
        gzip(&doc),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["reason"], "decompression_bomb");
    // Under both limits (the ratio counts only past 64 KiB decoded): inspected and forwarded.
    let r = post(
        &gw,
        "/customers",
        "application/json",
        Some("gzip"),
        gzip(DOC),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(eu.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn undecodable_and_unknown_codings_are_uninspectable() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, LOCAL_ROUTE).await;
    let mut truncated = gzip(DOC);
    truncated.truncate(truncated.len() - 6);
    let cases: [(&str, Vec<u8>, u16, &str); 4] = [
        ("gzip", truncated, 400, "undecodable"),
        ("zstd", b"not zstd".to_vec(), 400, "undecodable"),
        (
            "compress",
            b"\x1f\x9d\x90".to_vec(),
            415,
            "content_encoding",
        ),
        (
            "gzip, gzip, gzip, gzip",
            gzip(&gzip(&gzip(&gzip(DOC)))),
            415,
            "content_encoding",
        ),
    ];
    for (ce, body, status, reason) in cases {
        let r = post(
            &gw,
            "/customers",
            "application/json",
            Some(ce),
            body.clone(),
        )
        .await;
        assert_eq!(r.status, status, "{ce}: {}", r.text());
        assert_eq!(r.json()["reason"], reason, "{ce}");
        // A route that keeps what it cannot inspect sends it home, never abroad.
        let r = post(&gw, "/uploads", "application/json", Some(ce), body).await;
        assert_eq!(r.status, 200, "{ce}: {}", r.text());
        assert_eq!(r.header("domicile-region"), Some("eu-central"));
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["inspection"]["reason"], reason);
        assert!(rec["reasons"].as_array().unwrap().iter().any(|x| {
            x["step"] == "inspect" && x["finding"].as_str().unwrap().contains(reason)
        }));
    }
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn declared_charsets_are_decoded_or_the_body_is_uninspectable() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // ISO-8859-1 form with an é in the key and an address in the value.
    let r = post(
        &gw,
        "/analytics",
        "application/x-www-form-urlencoded; charset=ISO-8859-1",
        None,
        b"r\xe9sum\xe9=1&contact=jane@example.com".to_vec(),
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["findings"][0]["location"], "form:contact");
    // Charsets in which ASCII is not ASCII bytes are not read, UTF-16 JSON included: a form
    // labelled UTF-16 but sent as ASCII decodes to CJK text that hides the address a backend
    // reading the bytes would see.
    let utf16: Vec<u8> =
        r#"{"email":"jane@example.com"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for (content_type, body) in [
        ("application/json; charset=utf-16le", utf16),
        (
            "application/x-www-form-urlencoded; charset=utf-16le",
            b"email=jane%40example.com".to_vec(),
        ),
    ] {
        let r = post(&gw, "/analytics", content_type, None, body).await;
        assert_eq!(r.status, 415, "{content_type}: {}", r.text());
        assert_eq!(r.json()["reason"], "unsupported_charset");
    }
    // A charset given twice: parsers differ on which counts.
    let r = post(
        &gw,
        "/analytics",
        "text/plain; charset=utf-16le; charset=utf-8",
        None,
        b"jane@example.com".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["reason"], "ambiguous_headers");
    // A charset no one knows, and bytes the declared charset does not allow.
    let r = post(
        &gw,
        "/analytics",
        "text/plain; charset=x-klingon",
        None,
        b"jane@example.com".to_vec(),
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["reason"], "unsupported_charset");
    let r = post(
        &gw,
        "/analytics",
        "text/plain; charset=shift_jis",
        None,
        b"\x81\xff jane@example.com".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "invalid_charset");
    let r = post(&gw, "/analytics", "text/plain", None, b"\xff\xfe".to_vec()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "invalid_utf8");
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn xml_is_read_as_a_parser_reads_it() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    for (body, found) in [
        // Markup, a comment and character references inside a value do not hide it.
        (
            "<order><note><b>jane</b>@<i>example.com</i></note></order>",
            ("email", "/order/note"),
        ),
        (
            "<order><note>jane<!-- -->&#64;example.com</note></order>",
            ("email", "/order/note"),
        ),
        (
            "<order><note><b><i>jane</i></b>@example.com</note></order>",
            ("email", "/order/note"),
        ),
        // Element and attribute names say what a value is, as JSON keys do.
        (
            "<order><customer><lastName>Doe</lastName></customer></order>",
            ("name", "/order/customer/lastName"),
        ),
        (
            r#"<order><customer phone="+49 30 901820"/></order>"#,
            ("phone", "/order/customer/attribute::phone"),
        ),
    ] {
        let r = post(&gw, "/analytics", "application/xml", None, body.into()).await;
        assert_eq!(r.status, 451, "{body}: {}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(domicile_tests::findings_of(&rec), vec![found], "{body}");
    }
    // The same documents' shape without personal data is forwarded as it came.
    let body = "<order><note><b>gift</b> wrap</note><sku>4011</sku></order>";
    let r = post(&gw, "/analytics", "text/xml", None, body.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us.received()[0].body, Bytes::from(body));
    // A document type that declares entities is not expanded here: uninspectable.
    let body = r#"<!DOCTYPE o [<!ENTITY e "jane@example.com">]><o>&e;</o>"#;
    let r = post(&gw, "/analytics", "application/soap+xml", None, body.into()).await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.json()["reason"], "xml_entities");
    assert_eq!(us.count(), 1);
    // What was read out of the documents is in no record.
    let text = gw.trace_text();
    for value in ["jane", "Doe", "30 901820"] {
        assert!(!text.contains(value), "{value} in {text}");
    }
    gw.running.shutdown().await;
}
