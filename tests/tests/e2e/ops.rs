//! Operations: hot reload (good and bad files), the admin endpoints and metrics, and graceful
//! shutdown that drains in-flight requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, BackendOptions, Gateway};

async fn revision(gw: &Gateway) -> String {
    client::get(&gw.admin_url("/readyz")).await.json()["revision"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits (bounded) until the revision differs from `old`.
async fn wait_revision_change(gw: &Gateway, old: &str) -> Option<String> {
    for _ in 0..100 {
        let r = revision(gw).await;
        if r != old {
            return Some(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Asks the admin listener to reload the config file.
async fn post_reload(gw: &Gateway) -> domicile_tests::client::Reply {
    client::send(
        http::Request::post(gw.admin_url("/reload"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
        false,
    )
    .await
}

#[tokio::test]
async fn file_change_reloads_and_a_bad_file_keeps_the_running_config() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "");
    let gw = Gateway::start(dir, &text, true).await;
    let rev0 = revision(&gw).await;
    assert_eq!(client::get(&gw.url("/reports")).await.status, 404);

    // A good change: a new route appears without a restart.
    let added = format!(
        "{text}\n[[routes]]\nid = \"reports\"\npath = \"/reports\"\npurpose = \"analytics\"\nplacement = \"any\"\nregion = \"eu-central\"\n"
    );
    std::fs::write(&gw.config_path, &added).unwrap();
    let rev1 = wait_revision_change(&gw, &rev0)
        .await
        .expect("the file change was not picked up");
    let r = client::get(&gw.url("/reports")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "eu");
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["policy_revision"], rev1.as_str());

    // A bad change: refused, the running config stays, and the failure is counted.
    std::fs::write(
        &gw.config_path,
        added.replace("placement = \"any\"", "placement = \"anywhere\""),
    )
    .unwrap();
    let refused = post_reload(&gw).await;
    assert_eq!(refused.status, 422);
    let errors = refused.json()["errors"].to_string();
    assert!(
        errors.contains("routes[3].placement: unknown placement \\\"anywhere\\\""),
        "{errors}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(revision(&gw).await, rev1);
    assert_eq!(client::get(&gw.url("/reports")).await.status, 200);
    let metrics = client::get(&gw.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("domicile_config_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("domicile_config_revision_info{")
                && l.ends_with(&format!("revision=\"{rev1}\"}} 1"))),
        "{metrics}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_and_metrics() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    assert_eq!(client::get(&gw.admin_url("/healthz")).await.text(), "ok\n");
    let ready = client::get(&gw.admin_url("/readyz")).await.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(
        ready["regions"],
        serde_json::json!(["eu-central", "us-east"])
    );

    post_json(
        &gw.url("/customers"),
        "192.0.2.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    post_json(
        &gw.url("/analytics"),
        "192.0.2.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    let m = client::get(&gw.admin_url("/metrics")).await.text();
    for want in [
        r#"domicile_requests_total{route="customers",status="200",verdict="allow"}"#,
        r#"domicile_requests_total{route="analytics",status="451",verdict="block"}"#,
        r#"domicile_decisions_total{verdict="block",subject_jurisdiction="DE",destination_region="us-east"}"#,
        r#"domicile_upstream_duration_seconds_bucket{region="eu-central""#,
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
    assert!(!m.contains("a@example.com"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn admin_token_guards_everything_but_healthz() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret-admin-token-0123\"",
    );
    let gw = Gateway::start(dir, &text, false).await;
    assert_eq!(client::get(&gw.admin_url("/healthz")).await.status, 200);
    assert_eq!(client::get(&gw.admin_url("/metrics")).await.status, 401);
    let authed = client::get_with(
        &gw.admin_url("/readyz"),
        &[("authorization", "Bearer s3cret-admin-token-0123")],
    )
    .await;
    assert_eq!(authed.status, 200);
    gw.running.shutdown().await;
}

/// An admin request with `method` and, when given, a bearer token (the scheme as written).
async fn admin_as(gw: &Gateway, method: &str, path: &str, auth: Option<&str>) -> client::Reply {
    let mut req = http::Request::builder()
        .method(method)
        .uri(gw.admin_url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    client::send(
        req.body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
        false,
    )
    .await
}

#[tokio::test]
async fn a_reload_rotates_the_admin_token() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let with_token = |t: &str| {
        domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
            "[admin]\nlisten = \"127.0.0.1:0\"",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{t}\""),
        )
    };
    let (old, new) = ("old-admin-token-0123456789", "new-admin-token-9876543210");
    let gw = Gateway::start(dir, &with_token(old), false).await;
    let bearer = |t: &str| format!("Bearer {t}");
    // HEAD is answered as GET, and the scheme is case-insensitive.
    let r = admin_as(&gw, "HEAD", "/readyz", Some(&format!("bearer {old}"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        admin_as(&gw, "GET", "/readyz", Some(&bearer(new)))
            .await
            .status,
        401
    );
    std::fs::write(&gw.config_path, with_token(new)).unwrap();
    let r = admin_as(&gw, "POST", "/reload", Some(&bearer(old))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The rotated token is the only one that works from now on.
    assert_eq!(
        admin_as(&gw, "GET", "/readyz", Some(&bearer(old)))
            .await
            .status,
        401
    );
    assert_eq!(
        admin_as(&gw, "GET", "/readyz", Some(&bearer(new)))
            .await
            .status,
        200
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn admin_errors_are_problem_documents_that_echo_nothing() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let bad = client::get(&gw.admin_url("/v1/decisions?jane%40example.com=1")).await;
    assert_eq!(bad.status, 400);
    assert!(!bad.text().contains("jane"), "{}", bad.text());
    assert_eq!(bad.json()["type"], "urn:domicile:problem:bad_query");
    std::fs::write(&gw.config_path, "[server]\nlisten = 7\n").unwrap();
    let refused = post_reload(&gw).await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.header("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    let body = refused.json();
    assert_eq!(body["type"], "urn:domicile:problem:reload_refused");
    assert_eq!(body["status"], 422);
    assert_eq!(body["reloaded"], false);
    let first = body["errors"][0].as_str().unwrap();
    assert!(first.contains("domicile.toml:2:10: invalid type"), "{body}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_admin_listener_serves_a_bounded_number_of_connections() {
    use tokio::io::AsyncReadExt;
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(
            tokio::net::TcpStream::connect(gw.running.admin_addr)
                .await
                .unwrap(),
        );
    }
    // The 65th is closed at once.
    let mut extra = tokio::net::TcpStream::connect(gw.running.admin_addr)
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    drop(held);
    // Once they are gone, the admin API answers again.
    let mut ok = false;
    for _ in 0..50 {
        if client::get(&gw.admin_url("/healthz")).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    let eu = Backend::start_with(
        "eu",
        BackendOptions {
            tls: None,
            delay: Some(Duration::from_millis(400)),
            upgrade_echo: false,
            health: None,
        },
    )
    .await;
    let us = Backend::start("us").await;
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let addr = gw.running.addr;
    let url = gw.url("/customers");
    let in_flight =
        tokio::spawn(
            async move { post_json(&url, "192.0.2.1", r#"{"email":"a@example.com"}"#).await },
        );
    // Wait until the backend holds the request, then shut down.
    for _ in 0..100 {
        if eu.count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(eu.count(), 1);
    let stop = tokio::spawn(gw.running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused once shutdown began.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "eu");
    stop.await.unwrap();
}

#[tokio::test]
async fn a_reload_cannot_set_a_body_limit_above_the_running_budget() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "");
    let gw = Gateway::start(dir, &text, false).await;
    let rev0 = revision(&gw).await;
    // Valid on its own, but the budget was built at start: refused, not 503 for everything.
    let raised = text.replace(
        "[server.timeouts]",
        "[server.limits]\nmax_body_bytes = 300000000\nmax_buffered_bytes = 300000000\n\n[server.timeouts]",
    );
    std::fs::write(&gw.config_path, &raised).unwrap();
    let refused = post_reload(&gw).await;
    assert_eq!(refused.status, 422);
    let errors = refused.json()["errors"].to_string();
    // Named by file, line and column, as every other problem in a file is.
    let line = raised
        .lines()
        .position(|l| l.starts_with("max_body_bytes"))
        .unwrap()
        + 1;
    let want = format!(
        "{}:{line}:18: server.limits.max_body_bytes: 300000000 bytes is above the running inspection budget (268435456 bytes",
        gw.config_path.display()
    );
    assert!(errors.contains(&want), "{errors}");
    assert_eq!(revision(&gw).await, rev0);
    let r = client::post_json(&gw.url("/customers"), "192.0.2.1", "{}").await;
    assert_eq!(r.status, 200);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_kubernetes_style_symlink_swap_is_reloaded() {
    use std::os::unix::fs::symlink;
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    domicile_tests::geoip_file(d);
    let trace = d.join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
        "database = \"country.mmdb\"",
        &format!("database = \"{}\"", d.join("country.mmdb").display()),
    );
    // The kubelet's layout: a versioned directory, `..data` pointing at it, and the file
    // itself a link through `..data`.
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(d.join("..v1/domicile.toml"), &text).unwrap();
    symlink("..v1", d.join("..data")).unwrap();
    symlink("..data/domicile.toml", d.join("domicile.toml")).unwrap();
    let config_path = d.join("domicile.toml");
    let config = domicile_gateway::Config::load(&config_path).unwrap();
    let running = domicile_gateway::start(
        config,
        domicile_gateway::StartOptions {
            config_path: Some(config_path),
            watch: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let readyz = format!("http://{}/readyz", running.admin_addr);
    let rev0 = client::get(&readyz).await.json()["revision"]
        .as_str()
        .unwrap()
        .to_owned();

    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(
        d.join("..v2/domicile.toml"),
        text.replace("purpose = \"storage\"", "purpose = \"support\""),
    )
    .unwrap();
    symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();

    let mut changed = false;
    for _ in 0..100 {
        let rev = client::get(&readyz).await.json()["revision"]
            .as_str()
            .unwrap()
            .to_owned();
        if rev != rev0 {
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(changed, "the swapped ConfigMap was not reloaded");
    running.shutdown().await;
}

#[tokio::test]
async fn a_new_geoip_database_on_disk_is_used_without_restart_and_a_corrupt_one_is_refused() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "");
    let gw = Gateway::start(dir, &text, true).await;
    let url = gw.url("/customers");
    let send = || post_json(&url, "192.0.2.10", r#"{"email":"a@example.com"}"#);
    assert_eq!(send().await.header("domicile-region"), Some("eu-central"));

    // The same network now belongs to the US: replace the file as deployment tools do.
    let db = gw.dir.path().join("country.mmdb");
    let moved =
        domicile_regions::geoip::build_country_db(&[("192.0.2.0/24", "US")], "Test-Country")
            .unwrap();
    let tmp = gw.dir.path().join("country.mmdb.new");
    std::fs::write(&tmp, moved).unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    let mut region = String::new();
    for _ in 0..100 {
        region = send()
            .await
            .header("domicile-region")
            .unwrap_or("")
            .to_owned();
        if region == "us-east" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(region, "us-east", "the new database was not picked up");

    // A corrupt file is refused: the last good database keeps answering, and it is counted.
    let before = client::get(&gw.admin_url("/metrics")).await.text();
    let errors = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("domicile_config_reloads_total{result=\"error\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    std::fs::write(&tmp, b"this is not a MaxMind database").unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    let mut counted = false;
    for _ in 0..100 {
        let m = client::get(&gw.admin_url("/metrics")).await.text();
        if errors(&m) > errors(&before) {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "the corrupt database was not reported");
    assert_eq!(send().await.header("domicile-region"), Some("us-east"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_serves_decisions_with_filters() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let allowed = post_json(
        &gw.url("/customers"),
        "192.0.2.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    let blocked = post_json(
        &gw.url("/analytics"),
        "192.0.2.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    let blocked_id = blocked.header("domicile-decision").unwrap().to_owned();

    let r = client::get(&gw.admin_url("/v1/decisions?verdict=block&jurisdiction=de")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.text());
    assert_eq!(lines[0]["decision_id"], blocked_id.as_str());

    let r = client::get(&gw.admin_url("/v1/decisions?category=email")).await;
    assert_eq!(r.text().lines().count(), 2);

    let id = allowed.header("domicile-decision").unwrap();
    let mut body = serde_json::Value::Null;
    for _ in 0..50 {
        body = client::get(&gw.admin_url(&format!("/v1/decisions/{id}")))
            .await
            .json();
        if !body["outcome"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body["decision"]["verdict"], "allow");
    assert_eq!(body["outcome"]["upstream_status"], 200);

    assert_eq!(
        client::get(&gw.admin_url("/v1/decisions/nope"))
            .await
            .status,
        404
    );
    let bad = client::get(&gw.admin_url("/v1/decisions?colour=red")).await;
    assert_eq!(bad.status, 400);
    // Time bounds are times: any offset, compared in UTC; anything else is refused.
    let count = |q: String| {
        let url = gw.admin_url(&format!("/v1/decisions?{q}"));
        async move {
            let r = client::get(&url).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r.text().lines().count()
        }
    };
    let all = count("since=2000-01-01".into()).await;
    assert!(all > 0);
    assert_eq!(count("until=2000-01-01T01:00:00%2B01:00".into()).await, 0);
    assert_eq!(count("since=2999-01-01T00:00:00-05:00".into()).await, 0);
    // The oldest record's own instant, written at +01:00: `since` it keeps the record, `until`
    // it does not. Read as UTC, or with the offset the wrong way, both would be an hour off.
    let oldest = client::get(&gw.admin_url("/v1/decisions"))
        .await
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| domicile_gateway::clock::parse_rfc3339(r["time"].as_str()?))
        .min()
        .unwrap();
    let at_plus_one = domicile_gateway::clock::rfc3339_micros(oldest + 3_600_000_000)
        .as_str()
        .replace('Z', "%2B01:00");
    assert_eq!(count(format!("since={at_plus_one}")).await, all);
    assert_eq!(count(format!("until={at_plus_one}")).await, 0);
    let bad = client::get(&gw.admin_url("/v1/decisions?since=yesterday")).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("since: expected an RFC 3339 time")
    );
    assert!(!r.text().contains("a@example.com"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_lists_refusals_beside_decisions_with_a_kind_filter() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let decided = post_json(
        &gw.url("/customers"),
        "192.0.2.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    let decided_id = decided.header("domicile-decision").unwrap().to_owned();
    let refused = client::get(&gw.url("/nowhere")).await;
    assert_eq!(refused.status, 404);
    let refused_id = refused.json()["decision_id"].as_str().unwrap().to_owned();

    let items = |r: &client::Reply| -> Vec<serde_json::Value> {
        r.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // Default: both kinds, oldest first, each naming its kind.
    let all = items(&client::get(&gw.admin_url("/v1/decisions")).await);
    let got: Vec<(&str, &str)> = all
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["decision_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("decision", decided_id.as_str()),
            ("refusal", refused_id.as_str())
        ]
    );
    assert_eq!(all[1]["reason_code"], "no_route");
    assert_eq!(all[1]["outcome"]["status"], 404);
    // A limit keeps the oldest.
    let first = items(&client::get(&gw.admin_url("/v1/decisions?limit=1")).await);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["decision_id"], decided_id.as_str());

    let only = items(&client::get(&gw.admin_url("/v1/decisions?kind=refusal")).await);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["decision_id"], refused_id.as_str());
    let only = items(&client::get(&gw.admin_url("/v1/decisions?kind=decision")).await);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["decision_id"], decided_id.as_str());

    // One refusal opens by its id, like a decision.
    let one = client::get(&gw.admin_url(&format!("/v1/decisions/{refused_id}")))
        .await
        .json();
    assert_eq!(one["kind"], "refusal");
    assert_eq!(one["refusal"]["reason_code"], "no_route");

    let bad = client::get(&gw.admin_url("/v1/decisions?kind=verdict")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["detail"], "kind must be decision or refusal");
    gw.running.shutdown().await;
}
