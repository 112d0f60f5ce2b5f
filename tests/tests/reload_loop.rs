//! Reading the config file (as a reload does) must not trigger another reload. Alone in its
//! own test binary, so the process-wide reload counter counts only this gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use domicile_tests::client;
use domicile_tests::{Backend, Gateway};

fn ok_reloads(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("domicile_config_reloads_total{result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn reading_the_config_does_not_reload_it() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "");
    let gw = Gateway::start(dir, &text, true).await;
    // An explicit reload reads the file, and so does anyone else; neither is a change.
    let reload = client::send(
        http::Request::post(gw.admin_url("/reload"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
        false,
    )
    .await;
    assert_eq!(reload.status, 200);
    let _ = std::fs::read_to_string(&gw.config_path).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let m = client::get(&gw.admin_url("/metrics")).await.text();
    assert_eq!(ok_reloads(&m), 1.0, "{m}");
    gw.running.shutdown().await;
}
