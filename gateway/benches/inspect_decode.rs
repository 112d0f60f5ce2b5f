//! What decoding adds to inspection: the same JSON body plain and under each content coding,
//! a multipart form, and the request head (path, default headers, cookies) read on every
//! request. Run with `cargo bench -p domicile-gateway --bench inspect_decode`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domicile_gateway::inspect::{self, HeadOptions, Inspection};
use http::{HeaderMap, HeaderValue, header};

/// About 64 KiB of JSON: records with one email address in twenty.
fn document() -> Vec<u8> {
    let mut s = String::from("[");
    let mut n = 0;
    while s.len() < 64 * 1024 {
        if n > 0 {
            s.push(',');
        }
        let contact = if n % 20 == 0 {
            format!("user{n}@example.com")
        } else {
            format!("ref-{n:06}")
        };
        s.push_str(&format!(
            r#"{{"id":{n},"sku":"SKU-{n:05}","qty":{},"note":"ordered via web shop","contact":"{contact}"}}"#,
            n % 7
        ));
        n += 1;
    }
    s.push(']');
    s.into_bytes()
}

fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        "zstd" => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => data.to_vec(),
    }
}

fn bodies(c: &mut Criterion) {
    let doc = document();
    let mut g = c.benchmark_group("inspect_64k_json");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    for coding in ["identity", "gzip", "deflate", "br", "zstd"] {
        let body = encode(coding, &doc);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if coding != "identity" {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_str(coding).unwrap(),
            );
        }
        g.bench_function(coding, |b| {
            b.iter(|| {
                let mut i = Inspection::default();
                black_box(inspect::inspect_body(&h, black_box(&body), &mut i));
                i.findings.len()
            })
        });
    }
    // The same records as a form with one text part per record line.
    let mut form = Vec::new();
    for (n, line) in doc
        .split(|c| *c == b',')
        .take(inspect::DEFAULT_MAX_PARTS)
        .enumerate()
    {
        form.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"f{n}\"\r\n\r\n").as_bytes(),
        );
        form.extend_from_slice(line);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(b"--XyZ--\r\n");
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
    );
    g.throughput(Throughput::Bytes(form.len() as u64));
    g.bench_function("multipart_128_parts", |b| {
        b.iter(|| {
            let mut i = Inspection::default();
            black_box(inspect::inspect_body(&h, black_box(&form), &mut i));
            i.findings.len()
        })
    });
    g.finish();
}

fn head(c: &mut Criterion) {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
        ),
        ("accept", "application/json"),
        ("referer", "https://shop.example.com/cart?step=2"),
        ("x-user-id", "u-4711"),
        ("cookie", "sid=9f2c1e7d; theme=dark; consent=1"),
    ] {
        h.insert(
            header::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    let opts = HeadOptions::default();
    c.bench_function("inspect_head_typical_get", |b| {
        b.iter(|| {
            let mut i = Inspection::default();
            inspect::inspect_path(black_box("/v1/orders/123456/lines"), &mut i);
            inspect::inspect_headers(black_box(&h), &opts, &mut i);
            i.findings.len()
        })
    });
}

criterion_group!(benches, bodies, head);
criterion_main!(benches);
