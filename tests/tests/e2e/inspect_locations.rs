//! Personal data outside the body: the URL path, headers and cookies. Locations name the
//! place, never the value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domicile_tests::client::{self, Reply};
use domicile_tests::{Backend, Gateway};

const EU_IP: &str = "192.0.2.10";

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("x-forwarded-for", EU_IP)];
    all.extend_from_slice(headers);
    client::get_with(&gw.url(path), &all).await
}

fn locations(rec: &serde_json::Value) -> Vec<String> {
    rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn path_segments_headers_and_cookies_are_inspected() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    for (path, headers, location) in [
        ("/analytics/users/jane%40example.com", vec![], "path:/2"),
        ("/analytics/u/%2B49%2030%20901820/x", vec![], "path:/2"),
        (
            "/analytics",
            vec![("x-user-email", "jane@example.com")],
            "header:x-user-email",
        ),
        (
            "/analytics",
            vec![("referer", "https://shop.example/p?mail=jane%40example.com")],
            "header:referer",
        ),
        (
            "/analytics",
            vec![("cookie", "sid=9f2c; session_email=jane%40example.com")],
            "cookie:session_email",
        ),
        (
            "/analytics",
            vec![("cookie", "jane@example.com=1")],
            "cookie:*",
        ),
        // Every header is read but those that carry no personal data by definition: a
        // custom header, the user agent and `From` too.
        (
            "/analytics",
            vec![("x-note", "jane@example.com")],
            "header:x-note",
        ),
        (
            "/analytics",
            vec![("user-agent", "MyApp/3.2 (+49 30 901820)")],
            "header:user-agent",
        ),
        (
            "/analytics",
            vec![("from", "jane@example.com")],
            "header:from",
        ),
        // Declared-clean routes are not spared: their URL and head are inspected too.
        ("/catalog/by/jane@example.com", vec![], "path:/2"),
    ] {
        let r = get(&gw, path, &headers).await;
        assert_eq!(r.status, 451, "{path} {headers:?}: {}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(locations(&rec), vec![location], "{path} {headers:?}");
    }
    assert_eq!(us.count(), 0);
    assert!(!gw.trace_text().contains("jane"));
    assert!(!gw.trace_text().contains("30 901820"));

    // Plain headers pass: a browser's user agent, its language and fetch metadata, an
    // opaque session cookie.
    let r = get(
        &gw,
        "/analytics/pricing",
        &[
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36",
            ),
            ("accept-language", "de-DE,de;q=0.9,en;q=0.8"),
            ("sec-fetch-mode", "navigate"),
            ("x-note", "see ticket 42"),
            ("cookie", "sid=9f2c"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us.count(), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_header_and_cookie_lists_are_configurable() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = "\n[inspect]\nheaders = [\"X-Customer\"]\ncookies = [\"profile\"]\n";
    let gw = Gateway::two_regions(&eu, &us, extra).await;
    let r = get(&gw, "/analytics", &[("x-customer", "+49 30 901820")]).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(locations(&rec), vec!["header:x-customer"]);
    assert_eq!(rec["findings"][0]["country"], "DE");
    let r = get(
        &gw,
        "/analytics",
        &[("cookie", "a=1; profile=jane@example.com")],
    )
    .await;
    assert_eq!(r.status, 451);
    // Headers outside the list and unlisted cookies are no longer read.
    let r = get(
        &gw,
        "/analytics",
        &[
            ("x-user-email", "jane@example.com"),
            ("cookie", "session_email=jane@example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.running.shutdown().await;
}

#[tokio::test]
async fn headers_can_be_left_out_of_inspection_by_name() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let extra = "\n[inspect]\nskip_headers = [\"X-Ticket-Reporter\"]\n";
    let gw = Gateway::two_regions(&eu, &us, extra).await;
    let r = get(
        &gw,
        "/analytics",
        &[("x-ticket-reporter", "jane@example.com")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us.count(), 1);
    // Every other header is still read.
    let r = get(&gw, "/analytics", &[("x-ticket-owner", "jane@example.com")]).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(locations(&rec), vec!["header:x-ticket-owner"]);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_value_split_over_repeated_query_parameters_is_read_whole() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    for (query, detector, location) in [
        (
            "card=4111&card=1111&card=1111&card=1111",
            "card.luhn.split",
            "query:card",
        ),
        (
            "cc=%2B33&number=6%2012%2034%2056%2078",
            "phone.e164.split",
            "query:number",
        ),
        (
            "user=jane&domain=example.com",
            "email.rfc5322.split",
            "query:domain",
        ),
    ] {
        let r = get(&gw, &format!("/analytics?{query}"), &[]).await;
        assert_eq!(r.status, 451, "{query}: {}", r.text());
        let rec = gw.record(r.header("domicile-decision").unwrap());
        assert_eq!(rec["findings"][0]["detector"], detector, "{query}: {rec}");
        assert_eq!(locations(&rec), vec![location], "{query}");
    }
    // The same parts with a value between them that is none: nothing joined, forwarded.
    let r = get(
        &gw,
        "/analytics?card=4111&card=1111&page=next&card=1111&card=1111",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(us.count(), 1);
    let text = gw.trace_text();
    // (Hashes are hex: a short run of digits may occur in them; these runs, in the forms the
    // values could take, do not by chance.)
    for value in ["=4111", "4111&", "41111111", "12 34 56 78", "jane"] {
        assert!(!text.contains(value), "{value} in {text}");
    }
    gw.running.shutdown().await;
}
