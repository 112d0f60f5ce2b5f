//! No personal value reaches the trail: every sample of the labelled corpus (every locale,
//! format and evasion) goes through the gateway to routes that forward and routes that block,
//! from several client addresses, with subject identifiers, headers, cookies, paths and query
//! strings carrying corpus values; then every file under the trace directory (every region,
//! `unresolved/`, rotated files and their checkpoints), the gateway's log output (JSON, at debug
//! level) and the `/metrics` text are scanned for each value in the forms a writer could leak it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use domicile_gateway::inspect::corpus::{self, Evasion, Format};
use domicile_tests::client::{self, raw};
use domicile_tests::{Backend, Gateway};
use http::{HeaderValue, Request};
use http_body_util::Full;
use tokio::sync::Semaphore;

const EU_IP: &str = "192.0.2.10";
const US_IP: &str = "198.51.100.7";
const JP_IP: &str = "203.0.113.9";
/// Not in the GeoIP database: the subject's region stays unresolved.
const UNKNOWN_IP: &str = "10.9.8.7";

/// The forms in which a writer could leak `value`: as is, JSON-escaped, lower-cased,
/// percent-encoded, and (for values with 6 or more digits) with separators removed.
fn leak_forms(value: &str) -> BTreeSet<String> {
    let mut forms = BTreeSet::new();
    forms.insert(value.to_owned());
    let json = serde_json::to_string(value).unwrap();
    forms.insert(json[1..json.len() - 1].to_owned());
    forms.insert(value.to_lowercase());
    // JSON with every non-ASCII character escaped, in both hex cases.
    for upper in [false, true] {
        let escaped: String = json[1..json.len() - 1]
            .encode_utf16()
            .map(|u| match u {
                0..=0x7f => char::from(u as u8).to_string(),
                _ if upper => format!("\\u{u:04X}"),
                _ => format!("\\u{u:04x}"),
            })
            .collect();
        forms.insert(escaped);
    }
    forms.insert(pct(value));
    if value.chars().filter(char::is_ascii_digit).count() >= 6 {
        let compact: String = value
            .chars()
            .filter(|c| !c.is_whitespace() && !"-./()+".contains(*c))
            .collect();
        forms.insert(compact.clone());
        forms.insert(compact.to_lowercase());
    }
    forms.retain(|f| !f.is_empty());
    forms
}

/// Whether the match `start..end` of `needle` in `hay` is a whole token: not glued to a letter
/// or digit on either side (a hash or an id is hex or base32 and holds any short digit string by
/// chance; a leaked value stands between quotes, separators or punctuation).
fn is_token(hay: &str, start: usize, end: usize) -> bool {
    let needle = &hay[start..end];
    let glued = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let (Some(first), Some(last)) = (needle.chars().next(), needle.chars().last()) else {
        return false;
    };
    let left_ok = !first.is_alphanumeric() || !glued(hay[..start].chars().next_back());
    let right_ok = !last.is_alphanumeric() || !glued(hay[end..].chars().next());
    left_ok && right_ok
}

/// All forms of all values in one Aho-Corasick automaton.
struct Scanner {
    ac: aho_corasick::AhoCorasick,
    forms: Vec<String>,
    owner: Vec<String>,
}

impl Scanner {
    fn new(values: &[String]) -> Scanner {
        let (mut forms, mut owner) = (Vec::new(), Vec::new());
        for v in values {
            for f in leak_forms(v) {
                forms.push(f);
                owner.push(v.clone());
            }
        }
        let ac = aho_corasick::AhoCorasick::new(&forms).unwrap();
        Scanner { ac, forms, owner }
    }

    /// Every value leaked in `text` (once each), as (value, form, a little context).
    fn leaks(&self, text: &str) -> Vec<(String, String, String)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for m in self.ac.find_overlapping_iter(text) {
            let (at, end) = (m.start(), m.end());
            let v = &self.owner[m.pattern().as_usize()];
            if !text.is_char_boundary(at)
                || !text.is_char_boundary(end)
                || seen.contains(v)
                || !is_token(text, at, end)
            {
                continue;
            }
            seen.insert(v.clone());
            let mut lo = at.saturating_sub(40);
            while !text.is_char_boundary(lo) {
                lo -= 1;
            }
            let mut hi = (end + 40).min(text.len());
            while !text.is_char_boundary(hi) {
                hi += 1;
            }
            let form = self.forms[m.pattern().as_usize()].clone();
            out.push((v.clone(), form, text[lo..hi].to_owned()));
        }
        out
    }
}

fn leaks(values: &[String], text: &str) -> Vec<(String, String, String)> {
    Scanner::new(values).leaks(text)
}

#[test]
fn the_scanner_finds_a_planted_value_in_every_form() {
    let record =
        r#"{"schema":"domicile.decision/1","hash":"a3f09018201b","id":"01J8Z4930901820QX"}"#;
    let values = vec![
        "Jane.Roe@Example.com".to_owned(),
        "+49 30 901820".to_owned(),
        "Ünal Çelik".to_owned(),
        "DE89 3704 0044 0532 0130 00".to_owned(),
    ];
    // Clean text: the phone's digits inside a hash or an id are not a leak.
    assert_eq!(leaks(&values, record), vec![]);
    for (planted, value) in [
        (r#""email":"Jane.Roe@Example.com""#, &values[0]),
        (r#""email":"jane.roe@example.com""#, &values[0]),
        ("path=/customers/Jane.Roe%40Example.com", &values[0]),
        (r#""phone":"+49 30 901820""#, &values[1]),
        (r#""phone":"4930901820""#, &values[1]),
        ("tel:4930901820;", &values[1]),
        (r#""name":"\u00dcnal \u00c7elik""#, &values[2]),
        (r#""name":"ünal çelik""#, &values[2]),
        (r#""iban":"de89370400440532013000""#, &values[3]),
    ] {
        let text = format!("{record}\n{{{planted}}}\n");
        let found = leaks(&values, &text);
        assert_eq!(found.len(), 1, "{planted}: {found:?}");
        assert_eq!(&found[0].0, value, "{planted}");
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A header value from arbitrary text (UTF-8 bytes are allowed as obs-text).
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_bytes(s.replace(['\r', '\n'], " ").as_bytes()).unwrap()
}

/// Percent-encoding of everything but the unreserved characters.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects the gateway's own log events at debug level (stricter than any configured level),
/// in the JSON format `[log] format = "json"` writes.
fn capture_logs() -> LogBuf {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let buf = LogBuf::default();
    let writer = buf.clone();
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(move || writer.clone());
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("domicile", tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_target(
            "domicile_gateway",
            tracing_subscriber::filter::LevelFilter::DEBUG,
        )
        .with_target(
            "domicile_regions",
            tracing_subscriber::filter::LevelFilter::DEBUG,
        )
        .with_target(
            "domicile_policy",
            tracing_subscriber::filter::LevelFilter::DEBUG,
        );
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(targets));
    tracing_subscriber::util::SubscriberInitExt::try_init(subscriber).unwrap();
    buf
}

const FIELD_ROUTE: &str = r#"
[[routes]]
id = "orders"
path = "/orders"
purpose = "processing"
placement = "fixed"
region = "us-east"
fields = [
  { path = "/customer/full_name", category = "name" },
  { path = "/lines/*/sku", category = "none" },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_corpus_value_appears_in_any_trace_file_or_the_metrics() {
    let corpus = corpus::generate(0x7ace, Evasion::ALL.len());
    // Not checked, because the trail's own vocabulary and numbers hold them: ASCII values under
    // four characters (country codes of a nationality field are recorded as jurisdictions), the
    // answer "None", and numbers under six digits (postcodes; latencies and counts are numbers
    // too). Every other value is checked, non-ASCII ones of any length.
    let (values, vocabulary): (Vec<String>, Vec<String>) =
        corpus.personal_values().into_iter().partition(|v| {
            let short_ascii = v.is_ascii() && v.len() < 4;
            let short_number = v.bytes().all(|b| b.is_ascii_digit()) && v.len() < 6;
            !short_ascii && !short_number && !v.eq_ignore_ascii_case("none")
        });
    // Every locale, format and evasion is sent.
    let formats: BTreeSet<Format> = corpus.samples.iter().map(|s| s.format).collect();
    let evasions: BTreeSet<Evasion> = corpus.samples.iter().map(|s| s.evasion).collect();
    assert_eq!(formats.len(), 3);
    assert_eq!(evasions.len(), Evasion::ALL.len());
    assert_eq!(corpus.locales().len(), 14);

    let logs = capture_logs();
    let started = std::time::Instant::now();
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sign.key"), "07".repeat(32)).unwrap();
    let text = domicile_tests::two_regions(
        &eu.url(),
        &us.url(),
        &dir.path().join("traces"),
        FIELD_ROUTE,
    )
    .replace(
        "durability = \"batch\"",
        "durability = \"batch\"\nrotate_bytes = 65536\nsigning_key = \"sign.key\"\n\
         subject_id_header = \"x-customer-id\"\n\
         pseudonym_keys = { eu-central = { key = \"0101010101010101010101010101010101010101010101010101010101010101\" }, \
         us-east = { key = \"0202020202020202020202020202020202020202020202020202020202020202\" }, \
         unresolved = { key = \"0303030303030303030303030303030303030303030303030303030303030303\" } }",
    );
    let gw = Arc::new(Gateway::start(dir, &text, false).await);

    // Each sample goes once to a route that forwards it (the subject's home, or the field-mapped
    // route) and once to one that blocks personal data (EU subject to the US without a basis).
    let forward = [
        ("/customers", EU_IP),
        ("/customers", US_IP),
        ("/customers", JP_IP),
        ("/customers", UNKNOWN_IP),
        ("/orders", US_IP),
    ];
    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    for (i, s) in corpus.samples.iter().enumerate() {
        let first = s.labels.first().map(|l| l.value.clone());
        let ident = first.clone().unwrap_or_else(|| format!("clean-{i}"));
        let (fpath, fip) = forward[i % forward.len()];
        // A clean body goes only to a forwarding route.
        let targets: &[(&str, &str)] = if first.is_some() {
            &[(fpath, fip), ("/analytics", EU_IP)]
        } else {
            &[(fpath, fip)]
        };
        for &(path, ip) in targets {
            // Some requests also carry a corpus value in the path and the query.
            let url = match (&first, i % 3) {
                (Some(v), 0) => gw.url(&format!("{path}/{}?q={}", pct(v), pct(v))),
                _ => gw.url(path),
            };
            let mut req = Request::post(url)
                .header("content-type", s.content_type.as_str())
                .header("x-forwarded-for", ip)
                .body(Full::new(Bytes::from(s.body.clone())))
                .unwrap();
            let h = req.headers_mut();
            h.insert("x-customer-id", header_value(&ident));
            h.insert("x-user-email", header_value(&ident));
            h.insert(
                "cookie",
                header_value(&format!("session=s{i}; email={ident}")),
            );
            let limit = limit.clone();
            sent += 1;
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                client::send(req, false).await.status.as_u16()
            });
        }
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(st) = tasks.join_next().await {
        *statuses.entry(st.unwrap()).or_default() += 1;
    }
    // The corpus is both forwarded and blocked.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > sent / 4,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&451).copied().unwrap_or(0) > sent / 5,
        "{statuses:?}"
    );

    // Requests refused before any decision, with corpus values in the query, headers and cookies.
    let mut refused = 0;
    for v in values.iter().step_by(values.len().div_ceil(24)) {
        for path in ["/nowhere", "/customers/%2e%2e/admin"] {
            let req = Request::get(gw.url(&format!("{path}?email={}", pct(v))))
                .header("x-forwarded-for", EU_IP)
                .header("x-user-email", header_value(v))
                .header("x-customer-id", header_value(v))
                .header("cookie", header_value(&format!("email={v}")))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let st = client::send(req, false).await.status.as_u16();
            assert!(st == 404 || st == 400, "{path}: {st}");
            refused += 1;
        }
        let ascii: String = v.chars().filter(char::is_ascii_graphic).collect();
        let req = format!(
            "GET /catalog?email={ascii} HTTP/1.1\r\nHost: bad host!\r\nX-User-Email: {ascii}\r\nCookie: email={ascii}\r\n\r\n"
        );
        let (resp, _) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        refused += 1;
    }

    let metrics = client::get(&gw.admin_url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    let metrics = metrics.text();
    assert!(metrics.contains("domicile_"), "{metrics}");

    // Wait for the outcome lines that trail the answers, then read everything.
    let expected = sent + refused;
    for _ in 0..100 {
        if gw.records().len()
            + gw.lines()
                .iter()
                .filter(|l| l["schema"] == "domicile.refusal/1")
                .count()
            >= expected
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let requests_took = started.elapsed();
    let scanner = Scanner::new(&values);
    // The scanner sees the values where they are: in what the backends received (blocked
    // requests and evaded values aside, about a quarter of them).
    let received: String = eu
        .received()
        .into_iter()
        .chain(us.received())
        .map(|r| {
            let headers: Vec<_> = r
                .headers
                .values()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            format!(
                "{} {}\n{}\n",
                r.path,
                headers.join("\n"),
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect();
    let at_backends = scanner.leaks(&received).len();
    assert!(
        at_backends > values.len() / 5,
        "{at_backends} of {} values seen at the backends",
        values.len()
    );
    let files = files_under(&gw.trace_dir());
    let mut bytes = 0usize;
    let mut found = Vec::new();
    let mut rotated = 0;
    let mut regions = BTreeSet::new();
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        bytes += text.len();
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("decisions-")
        {
            rotated += 1;
        }
        regions.insert(f.parent().unwrap().file_name().unwrap().to_owned());
        for (v, form, ctx) in scanner.leaks(&text) {
            found.push(format!("{}: {v:?} as {form:?} in …{ctx}…", f.display()));
        }
    }
    for (v, form, ctx) in scanner.leaks(&metrics) {
        found.push(format!("/metrics: {v:?} as {form:?} in …{ctx}…"));
    }
    let log = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    for (v, form, ctx) in scanner.leaks(&log) {
        found.push(format!("log: {v:?} as {form:?} in …{ctx}…"));
    }
    println!(
        "{} short values not checked; {at_backends} values seen at the backends; checked {} personal values ({} forms) against {} bytes in {} trace files ({} rotated, \
         regions {:?}), {} bytes of log ({} lines) and {} bytes of /metrics; {sent} decided and {refused} refused requests, \
         statuses {statuses:?}; requests {requests_took:?}, scan {:?}",
        vocabulary.len(),
        values.len(),
        values.iter().map(|v| leak_forms(v).len()).sum::<usize>(),
        bytes,
        files.len(),
        rotated,
        regions,
        log.len(),
        log.lines().count(),
        metrics.len(),
        started.elapsed() - requests_took,
    );
    assert!(
        found.is_empty(),
        "{} leaks:\n{}",
        found.len(),
        found.join("\n")
    );

    // The run exercised what it claims: all three trace regions, rotation with checkpoints,
    // pseudonyms, and a record for every request.
    for r in ["eu-central", "us-east", "unresolved"] {
        assert!(regions.contains(std::ffi::OsStr::new(r)), "{regions:?}");
    }
    assert!(rotated > 0, "no rotation: {files:?}");
    let lines = gw.lines();
    assert!(lines.iter().any(|l| l["schema"] == "domicile.checkpoint/1"));
    let records = gw.records();
    assert!(
        records
            .iter()
            .any(|r| r["subject"]["pseudonym"].is_string())
    );
    let refusals = lines
        .iter()
        .filter(|l| l["schema"] == "domicile.refusal/1")
        .count();
    assert_eq!(records.len() + refusals, expected);
    assert!(eu.count() > 0 && us.count() > 0);
}
