//! Residency-fenced routing: each placement, reads allowed elsewhere only where the policy
//! allows while writes stay pinned home, and per-backend concurrency limits with load shedding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domicile_tests::client::{self, Reply, post_json};
use domicile_tests::{Backend, BackendOptions, Gateway};

const EU_IP: &str = "192.0.2.10";
const US_IP: &str = "198.51.100.7";
const EMAIL: &str = r#"{"email":"jane@example.com"}"#;

async fn get_from(url: &str, ip: &str) -> Reply {
    client::get_with(url, &[("x-forwarded-for", ip)]).await
}

const PROFILES: &str = r#"
[[routes]]
id = "profiles"
path = "/profiles"
purpose = "storage"
placement = "home"
read_regions = ["eu-central"]
"#;

#[tokio::test]
async fn each_placement_sends_to_its_region() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    // home: the subject's home region.
    let r = post_json(&gw.url("/customers"), EU_IP, EMAIL).await;
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    let r = post_json(&gw.url("/customers"), US_IP, EMAIL).await;
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    // fixed: the named region, evaluated (a US subject may go there).
    let r = post_json(&gw.url("/analytics"), US_IP, EMAIL).await;
    assert_eq!(
        (r.status.as_u16(), r.header("domicile-region")),
        (200, Some("us-east"))
    );
    // any: the named region, for anyone, nothing inspected.
    let r = get_from(&gw.url("/catalog"), EU_IP).await;
    assert_eq!(
        (r.status.as_u16(), r.header("domicile-region")),
        (200, Some("us-east"))
    );
    assert_eq!((eu.count(), us.count()), (1, 3));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn reads_go_to_read_regions_only_where_lawful_and_writes_stay_home() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, PROFILES).await;
    // A US subject's read may be served from eu-central (US law allows it there).
    let r = get_from(&gw.url("/profiles/7?email=joe@example.com"), US_IP).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // Its write stays in its home region, us-east.
    let r = post_json(
        &gw.url("/profiles/7"),
        US_IP,
        r#"{"email":"joe@example.com"}"#,
    )
    .await;
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    assert_eq!((eu.count(), us.count()), (1, 1));
    gw.running.shutdown().await;

    // An EU subject's read with personal data may not go to us-east: the read region there is
    // not lawful, so it is read at home.
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(
        &eu,
        &us,
        &PROFILES.replace(
            r#"read_regions = ["eu-central"]"#,
            r#"read_regions = ["us-east"]"#,
        ),
    )
    .await;
    let r = get_from(&gw.url("/profiles/9?email=jane@example.com"), EU_IP).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // Without personal data in the read, us-east is lawful and serves it.
    let r = get_from(&gw.url("/profiles/9"), EU_IP).await;
    assert_eq!(r.header("domicile-region"), Some("us-east"));
    assert_eq!((eu.count(), us.count()), (1, 1));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn pinned_writes_do_not_fail_over_while_unpinned_ones_do() {
    let eu = Backend::start("eu").await;
    let gw = Gateway::with_urls(&eu.url(), &domicile_tests::closed_url(), PROFILES).await;
    // The first attempt finds us-east dead and marks it down.
    let r = post_json(&gw.url("/profiles/7"), US_IP, EMAIL).await;
    assert_eq!(r.status, 502, "{}", r.text());
    // A pinned write: 503, although eu-central would be lawful.
    let r = post_json(&gw.url("/profiles/7"), US_IP, EMAIL).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["reason"], "home_region_unavailable");
    assert_eq!(r.header("retry-after"), Some("5"));
    // The same write on an unpinned home route fails over where lawful.
    let r = post_json(&gw.url("/customers"), US_IP, EMAIL).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    // Reads of the pinned route are served by the read region.
    let r = get_from(&gw.url("/profiles/7"), US_IP).await;
    assert_eq!(r.header("domicile-region"), Some("eu-central"));
    assert_eq!(eu.count(), 2);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_backend_at_its_concurrency_limit_sheds_load() {
    let eu = Backend::start("eu").await;
    let us = Backend::start_with(
        "us",
        BackendOptions {
            delay: Some(std::time::Duration::from_millis(600)),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
        &format!("backends = [{{ url = \"{}\" }}]", us.url()),
        &format!(
            "backends = [{{ url = \"{}\", max_concurrent = 1 }}]",
            us.url()
        ),
    );
    assert!(text.contains("max_concurrent = 1"));
    let gw = Gateway::start(dir, &text, false).await;
    let url = gw.url("/catalog");
    let first = tokio::spawn(async move { get_from(&url, US_IP).await });
    // Wait until the first request holds the backend's only place.
    for _ in 0..100 {
        if us.count() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = get_from(&gw.url("/catalog"), US_IP).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let p = r.json();
    assert_eq!(p["type"], "urn:domicile:problem:overloaded");
    assert_eq!(p["reason"], "backend_saturated");
    let shed_id = p["decision_id"].as_str().unwrap().to_owned();
    let r = first.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(us.count(), 1);
    // The place is free again.
    let r = get_from(&gw.url("/catalog"), US_IP).await;
    assert_eq!(r.status, 200);
    let m = client::get(&gw.admin_url("/metrics")).await.text();
    // At least this test's one (the metrics registry is shared by the tests of this binary).
    let shed = m
        .lines()
        .find_map(|l| l.strip_prefix("domicile_upstream_shed_total{region=\"us-east\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(shed.is_some_and(|n| n >= 1), "{m}");
    // Outcome lines are appended after the response: wait for the shed request's.
    let mut outcome = None;
    for _ in 0..200 {
        outcome = gw
            .outcomes()
            .into_iter()
            .find(|o| o["decision_id"] == shed_id.as_str());
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(outcome.unwrap()["error"], "upstream_shed");
    gw.running.shutdown().await;
}

/// A backend that sends its response head at once and the body `body_after` later, counting
/// the requests it got.
async fn slow_body_backend(
    body_after: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n";
                        if s.write_all(head).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(body_after).await;
                        if s.write_all(b"done").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_concurrency_place_is_held_until_the_response_body_has_been_passed_on() {
    let eu = Backend::start("eu").await;
    let (us_url, us_count) = slow_body_backend(std::time::Duration::from_millis(600)).await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us_url, &trace, "").replace(
        &format!("backends = [{{ url = \"{us_url}\" }}]"),
        &format!("backends = [{{ url = \"{us_url}\", max_concurrent = 1 }}]"),
    );
    assert!(text.contains("max_concurrent = 1"));
    let gw = Gateway::start(dir, &text, false).await;
    let url = gw.url("/catalog");
    let first = tokio::spawn(async move { get_from(&url, US_IP).await });
    // The first response's head is back at the gateway; its body is still coming.
    for _ in 0..100 {
        if us_count.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = get_from(&gw.url("/catalog"), US_IP).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["reason"], "backend_saturated");
    let r = first.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "done");
    // Once the body has been passed on, the place is free again.
    let r = get_from(&gw.url("/catalog"), US_IP).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us_count.load(std::sync::atomic::Ordering::SeqCst), 2);
    gw.running.shutdown().await;
}
