//! The review page on the admin listener, driven in headless Chromium: filter, list, and open a
//! decision with its reason trail, with the admin token. Skipped (with a message) when no
//! Chromium is installed; `.ci/run` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};

const TOKEN: &str = "review-token-7f3a";

fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The DOM after the page's scripts ran (headless, virtual time).
async fn dump_dom(browser: PathBuf, url: String) -> String {
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("timeout")
            .arg("90")
            .arg(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_page_filters_lists_and_opens_a_decision_with_its_reason_trail() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &dir.path().join("traces"), "")
        .replace(
            "[admin]\nlisten = \"127.0.0.1:0\"",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\""),
        );
    let gw = Gateway::start(dir, &text, false).await;
    let allowed = post_json(
        &gw.url("/customers"),
        "192.0.2.10",
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    let blocked = post_json(
        &gw.url("/analytics"),
        "192.0.2.10",
        r#"{"email":"jane@example.com"}"#,
    )
    .await;
    let refused = client::get(&gw.url("/nowhere")).await;
    assert_eq!(refused.status, 404);
    let refused_id = refused.json()["decision_id"].as_str().unwrap().to_owned();
    let allowed_id = allowed.header("domicile-decision").unwrap().to_owned();
    let blocked_id = blocked.header("domicile-decision").unwrap().to_owned();

    // The page's files are served as they are; the data behind them needs the token.
    let page = client::get(&gw.admin_url("/review")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'; script-src 'self'")
    );
    assert!(!page.text().contains("http://") && !page.text().contains("https://"));
    assert_eq!(
        client::get(&gw.admin_url("/v1/decisions")).await.status,
        401
    );

    // The trail the page lists verifies.
    let v = verified(&gw).await;
    assert_eq!(v["verified"], true, "{v}");
    assert!(v["files"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(client::get(&gw.admin_url("/v1/verify")).await.status, 401);

    let Some(browser) = browser() else {
        eprintln!(
            "SKIPPED the browser part: no Chromium found on PATH (apt-get install -y chromium)"
        );
        edit_a_record_and_see_it_reported(&gw).await;
        gw.running.shutdown().await;
        return;
    };
    let dom = dump_dom(
        browser.clone(),
        gw.admin_url(&format!(
            "/review#token={TOKEN}&verdict=block&open={blocked_id}"
        )),
    )
    .await;
    // The filter kept the block and dropped the allow.
    assert!(dom.contains(&format!("data-id=\"{blocked_id}\"")), "{dom}");
    assert!(!dom.contains(&allowed_id), "{dom}");
    assert!(dom.contains("1 decision<"), "{dom}");
    // The opened decision shows its reason trail in words.
    assert!(dom.contains("<section id=\"detail\">"), "{dom}");
    assert!(dom.contains("block (no_transfer_basis)"), "{dom}");
    assert!(
        dom.contains("[adequacy] eu.adequacy.us.privacy-shield: "),
        "{dom}"
    );
    assert!(dom.contains("C-311/18"), "{dom}");
    assert!(dom.contains("us-east (US, operated by acme-us)"), "{dom}");
    assert!(dom.contains("Trail integrity: all "), "{dom}");

    // Refusals are listed beside decisions, and one opens like a decision.
    let dom = dump_dom(
        browser.clone(),
        gw.admin_url(&format!("/review#token={TOKEN}&open={refused_id}")),
    )
    .await;
    assert!(dom.contains("2 decisions, 1 refusal<"), "{dom}");
    assert!(
        dom.contains(&format!(
            "<tr data-id=\"{refused_id}\" data-kind=\"refusal\" class=\"kind-refusal\">"
        )),
        "{dom}"
    );
    assert!(
        dom.contains("<td class=\"verdict\">refused</td><td>no_route</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("<span id=\"detail-kind\">Refusal</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("refused with 404 (no_route) before any decision: nothing was forwarded"),
        "{dom}"
    );
    // The kind filter keeps refusals only.
    let dom = dump_dom(
        browser.clone(),
        gw.admin_url(&format!("/review#token={TOKEN}&kind=refusal")),
    )
    .await;
    assert!(dom.contains("0 decisions, 1 refusal<"), "{dom}");
    assert!(
        dom.contains(&refused_id) && !dom.contains(&blocked_id),
        "{dom}"
    );

    // Without the token the page loads but shows no decision.
    let dom = dump_dom(browser.clone(), gw.admin_url("/review#verdict=block")).await;
    assert!(
        dom.contains("Could not load decisions: 401: a valid admin bearer token is required"),
        "{dom}"
    );
    assert!(!dom.contains(&blocked_id), "{dom}");

    // An edited record: the API and the page say the trail does not verify, and where.
    edit_a_record_and_see_it_reported(&gw).await;
    let dom = dump_dom(browser, gw.admin_url(&format!("/review#token={TOKEN}"))).await;
    assert!(
        dom.contains("The trail does not verify: 1 of ")
            && dom.contains("eu-central/decisions.jsonl line "),
        "{dom}"
    );
    gw.running.shutdown().await;
}

/// Edits the blocked record's route in its file; `GET /v1/verify` must name the file and say
/// the record was edited.
async fn edit_a_record_and_see_it_reported(gw: &Gateway) {
    let file = gw.trace_dir().join("eu-central").join("decisions.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replacen("\"route\":\"analytics\"", "\"route\":\"catalog\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let v = verified(gw).await;
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["broken"][0]["file"], "eu-central/decisions.jsonl", "{v}");
    assert!(
        v["broken"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the record was edited"),
        "{v}"
    );
}

/// `GET /v1/verify` with the admin token.
async fn verified(gw: &Gateway) -> serde_json::Value {
    let bearer = format!("Bearer {TOKEN}");
    let r = client::get_with(&gw.admin_url("/v1/verify"), &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}
