//! Inspection throughput, single core: a 1 MiB JSON body with sparse personal data through the
//! gateway's inspection entry point, the same body through a naive baseline (a
//! `serde_json::Value` tree and a `RegexSet` over every string), a 1 KiB body, and the 1 MiB
//! body on a route with a field map (declared fields found, unmapped ones reported). Two
//! sparse documents: corpus records dense with identifier-shaped values, and a product
//! catalogue with one address per twenty records.
//!
//! `cargo bench -p domicile-gateway --bench inspect`; divan prints bytes per second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use domicile_gateway::inspect::corpus::{self, Format};
use domicile_gateway::inspect::fieldmap::FieldMap;
use domicile_gateway::inspect::{BodyOptions, Inspection, inspect_body, inspect_body_with};
use http::{HeaderMap, Method, header};
use regex::RegexSet;

fn main() {
    divan::main();
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    h
}

/// An array of corpus JSON bodies, one with personal data for every nineteen without, until
/// the document reaches `size` bytes.
fn document(size: usize) -> Vec<u8> {
    let corpus = corpus::generate(0x5eed, 40);
    let clean: Vec<&[u8]> = corpus
        .samples
        .iter()
        .filter(|s| s.format == Format::Json && s.labels.is_empty())
        .map(|s| s.body.as_slice())
        .collect();
    let personal: Vec<&[u8]> = corpus
        .samples
        .iter()
        .filter(|s| s.format == Format::Json && !s.labels.is_empty())
        .map(|s| s.body.as_slice())
        .collect();
    let mut doc = b"[".to_vec();
    let mut n = 0;
    while doc.len() < size {
        if n > 0 {
            doc.push(b',');
        }
        let body = if n % 20 == 19 {
            personal[n / 20 % personal.len()]
        } else {
            clean[n % clean.len()]
        };
        doc.extend_from_slice(body);
        n += 1;
    }
    doc.push(b']');
    doc
}

fn one_mib() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| document(1 << 20))
}

/// The benchmark method's "sparse" corpus: a product catalogue with one email address per
/// twenty records ([`corpus::catalogue`]).
fn catalogue() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| corpus::catalogue::catalogue(0x5eed, 1 << 20).0)
}

fn one_kib() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        let corpus = corpus::generate(0x5eed, 1);
        let s = corpus
            .samples
            .iter()
            .find(|s| s.format == Format::Json && !s.labels.is_empty())
            .unwrap();
        // Pad one personal record to 1 KiB with a second, clean one.
        let mut doc = b"[".to_vec();
        doc.extend_from_slice(&s.body);
        doc.push(b',');
        let pad = 1024usize.saturating_sub(doc.len() + 12);
        doc.extend_from_slice(format!("{{\"pad\":\"{}\"}}]", "x".repeat(pad)).as_bytes());
        doc
    })
}

fn inspect(body: &[u8], headers: &HeaderMap) -> usize {
    let mut i = Inspection::default();
    inspect_body(headers, body, &mut i);
    i.findings.len()
}

/// The gateway's inspection of `body`, which must hold personal data.
fn gateway(bencher: Bencher, body: &'static [u8]) {
    let h = headers();
    assert!(inspect(body, &h) > 0);
    bencher
        .counter(BytesCount::new(body.len()))
        .bench(|| inspect(black_box(body), &h));
}

#[divan::bench]
fn gateway_1mib_sparse(bencher: Bencher) {
    gateway(bencher, one_mib());
}

#[divan::bench]
fn gateway_1mib_catalogue(bencher: Bencher) {
    gateway(bencher, catalogue());
}

#[divan::bench]
fn gateway_1kib(bencher: Bencher) {
    gateway(bencher, one_kib());
}

#[divan::bench]
fn gateway_1mib_sparse_field_map(bencher: Bencher) {
    let body = one_mib();
    let h = headers();
    // A map that knows some of the records' fields: the rest are reported as unmapped.
    let mut map = FieldMap::default();
    for (path, category) in [
        ("/*/customer/email", "email"),
        ("/*/customer/first_name", "name"),
        ("/*/customer/last_name", "name"),
        ("/*/customer/street", "address"),
        ("/*/meta", "none"),
        ("/*/item/sku", "none"),
    ] {
        map.declare(path, category).unwrap();
    }
    let fields = map.fields_for(&Method::POST, "/orders").unwrap();
    let opts = BodyOptions {
        fields: Some(fields),
        ..BodyOptions::default()
    };
    let run = |body: &[u8]| {
        let mut i = Inspection::default();
        inspect_body_with(&h, body, &opts, &mut i);
        (i.findings.len(), i.unmapped.len())
    };
    // (A body this size holds more findings than a record keeps, so the declared ones are
    // past the cap; the map is read all the same.)
    let (findings, unmapped) = run(body);
    assert!(findings > 0 && unmapped > 0, "{findings} {unmapped}");
    bencher
        .counter(BytesCount::new(body.len()))
        .bench(|| run(black_box(body)));
}

/// What a first attempt looks like: parse into a tree, run a set of regular expressions over
/// every string. It finds less (no check digits, no field names, no evasions), and is here
/// only for its speed.
fn baseline_set() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new([
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
            r"\+[1-9][0-9 ().-]{7,18}[0-9]",
            r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
            r"\b(?:[0-9][ -]?){13,19}\b",
            r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
            r"\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
            r"\b[0-9]{15}\b",
            r"\b[0-9]{8}[A-Z]\b",
            r"\b[0-9]{11}\b",
            r"\b[A-Z]{6}[0-9]{2}[A-Z][0-9]{2}[A-Z][0-9]{3}[A-Z]\b",
            r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        ])
        .unwrap()
    })
}

fn baseline(body: &[u8]) -> usize {
    fn walk(v: &serde_json::Value, set: &RegexSet, hits: &mut usize) {
        match v {
            serde_json::Value::String(s) => *hits += set.matches(s).iter().count(),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, set, hits)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
                *hits += set.matches(k).iter().count();
                walk(v, set, hits)
            }),
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut hits = 0;
    walk(&v, baseline_set(), &mut hits);
    hits
}

/// The naive baseline on `body`.
fn naive(bencher: Bencher, body: &'static [u8]) {
    assert!(baseline(body) > 0);
    bencher
        .counter(BytesCount::new(body.len()))
        .bench(|| baseline(black_box(body)));
}

#[divan::bench]
fn baseline_1mib_sparse(bencher: Bencher) {
    naive(bencher, one_mib());
}

#[divan::bench]
fn baseline_1mib_catalogue(bencher: Bencher) {
    naive(bencher, catalogue());
}
