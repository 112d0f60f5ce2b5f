//! Honesty about what was not inspected: every reason a body cannot be inspected, on a
//! rejecting route (413/415/400), a local route (kept home) and a local route whose only
//! region is abroad (451), in enforce and dry-run modes. The record always says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};
use http::Request;
use http_body_util::Full;

const EU_IP: &str = "192.0.2.10";

const ROUTES: &str = r#"
[[routes]]
id = "keep"
path = "/keep"
purpose = "storage"
placement = "home"
on_uninspectable = "local"

[[routes]]
id = "abroad"
path = "/abroad"
purpose = "processing"
placement = "fixed"
region = "us-east"
on_uninspectable = "local"
"#;

/// One way a body cannot be inspected.
struct Case {
    ct: &'static str,
    ce: Option<&'static str>,
    body: Vec<u8>,
    /// The status on a rejecting route.
    status: u16,
    reason: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            ct: "application/json",
            ce: None,
            body: format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096)).into_bytes(),
            status: 413,
            reason: "too_large",
        },
        Case {
            ct: "application/json",
            ce: Some("br"),
            body: b"\xff\xff\xff\xff".to_vec(),
            status: 400,
            reason: "undecodable",
        },
        Case {
            ct: "application/vnd.ms-excel",
            ce: None,
            body: b"\xd0\xcf\x11\xe0".to_vec(),
            status: 415,
            reason: "unsupported_content_type",
        },
        Case {
            ct: "application/json",
            ce: None,
            body: format!("{}{}", "[".repeat(300), "]".repeat(300)).into_bytes(),
            status: 400,
            reason: "too_deep",
        },
        Case {
            ct: "text/plain; charset=x-unknown",
            ce: None,
            body: b"hello".to_vec(),
            status: 415,
            reason: "unsupported_charset",
        },
        Case {
            ct: "application/x-www-form-urlencoded",
            ce: None,
            body: b"email=jane%zzexample.com&n=1".to_vec(),
            status: 400,
            reason: "invalid_form",
        },
        Case {
            ct: "application/xml",
            ce: None,
            body: br#"<!DOCTYPE a [<!ENTITY u "jane"><!ENTITY d "@example.com">]><a>&u;&d;</a>"#
                .to_vec(),
            status: 415,
            reason: "xml_entities",
        },
        Case {
            ct: "application/xml",
            ce: None,
            body: br#"<a x="1" x="2">jane<![CDATA[@]]>example.com</a>"#.to_vec(),
            status: 400,
            reason: "invalid_xml",
        },
    ]
}

#[tokio::test]
async fn every_uninspectable_body_is_rejected_kept_home_or_blocked_and_recorded() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(
        &eu.url(),
        &us.url(),
        &trace,
        &format!("{ROUTES}{}", domicile_tests::DRY_RUN_ROUTE),
    )
    .replace(
        "[server.timeouts]",
        "[server.limits]\nmax_body_bytes = 2048\n\n[server.timeouts]",
    );
    let gw = Gateway::start(dir, &text, false).await;
    for Case {
        ct,
        ce,
        body,
        status,
        reason,
    } in cases()
    {
        let send = |path: &str| {
            let mut req = Request::post(gw.url(path))
                .header("x-forwarded-for", EU_IP)
                .header("content-type", ct);
            if let Some(ce) = ce {
                req = req.header("content-encoding", ce);
            }
            client::send(
                req.body(Full::new(Bytes::from(body.clone()))).unwrap(),
                false,
            )
        };
        // Rejecting route (the default), and a dry run: the fail-closed rule still applies.
        for path in ["/customers", "/trial"] {
            let r = send(path).await;
            assert_eq!(r.status, status, "{path} {reason}: {}", r.text());
            let p = r.json();
            assert_eq!(p["type"], "urn:domicile:problem:uninspectable");
            assert_eq!(p["reason"], reason);
            let rec = gw.record(r.header("domicile-decision").unwrap());
            assert_eq!(rec["inspection"]["status"], "uninspectable");
            assert_eq!(rec["inspection"]["reason"], reason);
            assert_eq!(rec["reason_code"], "uninspectable");
            assert_eq!(rec["outcome"]["action"], "rejected");
            assert!(
                rec["reasons"][0]["finding"]
                    .as_str()
                    .unwrap()
                    .contains("rejects what it cannot inspect"),
                "{rec}"
            );
        }
        // Local route: kept in the subject's home region.
        let before = eu.count();
        let r = send("/keep").await;
        assert_eq!(r.status, 200, "{reason}: {}", r.text());
        assert_eq!(r.header("domicile-region"), Some("eu-central"));
        assert_eq!(eu.count(), before + 1);
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["inspection"]["reason"], reason);
        assert_eq!(rec["verdict"], "allow");
        assert!(
            rec["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["finding"].as_str().unwrap().contains("unknown category")),
            "{rec}"
        );
        // Local route whose region is abroad: unknown personal data never crosses: 451.
        let r = send("/abroad").await;
        assert_eq!(r.status, 451, "{reason}: {}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["inspection"]["reason"], reason);
        assert_eq!(rec["verdict"], "block");
    }
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_body_that_asks_for_more_detector_work_than_its_size_allows_is_unknown_data() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = format!(
        "{ROUTES}{}\n[inspect]\nwork_per_byte = 16\n",
        domicile_tests::DRY_RUN_ROUTE
    );
    let gw = Gateway::two_regions(&eu, &us, &extra).await;
    // Single digits each followed by a space: every window of them may be an identifier,
    // about a hundred bytes of detector work per byte of body.
    let body = format!("[\"{}\"]", "1 ".repeat(100_000));
    let r = post_json(&gw.url("/abroad"), EU_IP, &body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        domicile_tests::findings_of(&rec),
        vec![("uninspectable", "/0")],
        "{rec}"
    );
    assert_eq!(rec["findings"][0]["detector"], "inspection.budget", "{rec}");
    // Kept home, on a route that keeps what it cannot inspect.
    let r = post_json(&gw.url("/keep"), EU_IP, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((eu.count(), us.count()), (1, 0));
    gw.running.shutdown().await;
}
