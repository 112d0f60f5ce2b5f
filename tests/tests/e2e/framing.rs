//! Strict HTTP/1 framing on the wire: ambiguous requests get 400 and the connection closes, and
//! nothing reaches a backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domicile_tests::client::{self, raw};
use domicile_tests::{Backend, Gateway};

async fn setup() -> (Backend, Backend, Gateway) {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    (eu, us, gw)
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_and_closed() {
    let (eu, us, gw) = setup().await;
    for req in [
        // CL.TE with a smuggled request in the body.
        "POST /catalog HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /catalog/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        // TE.CL.
        "POST /catalog HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2c\r\nGET /catalog/smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
    ] {
        let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert!(
            resp.contains("urn:domicile:problem:ambiguous_framing"),
            "{resp}"
        );
        assert!(closed, "connection left open: {resp}");
        assert_eq!(resp.matches("HTTP/1.1").count(), 1, "{resp}");
    }
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn differing_content_lengths_and_obs_fold_are_refused() {
    let (eu, us, gw) = setup().await;
    for req in [
        "POST /catalog HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "GET /catalog HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        "POST /catalog HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        "POST /catalog HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /catalog HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
    ] {
        let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{req:?} -> {resp}");
        assert!(closed, "{req:?}: connection left open");
    }
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_each_decided_in_order() {
    let (_eu, us, gw) = setup().await;
    let two = "GET /catalog/a HTTP/1.1\r\nHost: x\r\n\r\nPOST /catalog/b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /catalog/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (resp, closed) = raw(gw.running.addr, two.as_bytes()).await;
    assert_eq!(resp.matches("HTTP/1.1 200").count(), 3, "{resp}");
    assert!(closed);
    let paths: Vec<String> = us.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, vec!["/catalog/a", "/catalog/b", "/catalog/c"]);
    assert_eq!(gw.records().len(), 3);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn conflicting_authority_and_host_are_refused() {
    let (eu, us, gw) = setup().await;
    let req = "GET http://us.internal/catalog HTTP/1.1\r\nHost: eu.example\r\n\r\n";
    let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("bad_authority"), "{resp}");
    assert!(closed);
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_second_host_header_is_refused_whether_or_not_it_agrees() {
    let (eu, us, gw) = setup().await;
    for req in [
        "GET /catalog HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        "GET /catalog HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nHost: x\r\n\r\n",
    ] {
        let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{req:?}: {resp}");
        assert!(resp.contains("bad_authority"), "{req:?}: {resp}");
        assert!(
            resp.contains("the request carries more than one Host header"),
            "{req:?}: {resp}"
        );
        assert!(closed, "{req:?}");
    }
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_http2_authority_that_differs_from_its_host_header_is_refused() {
    use http_body_util::BodyExt;
    let (eu, us, gw) = setup().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::get(gw.url("/catalog"))
        .header("host", "us.internal")
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 400);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("bad_authority"), "{body}");
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn bare_lf_heads_and_ambiguous_paths_are_refused() {
    let (eu, us, gw) = setup().await;
    // Each with the status, the problem type (none where the HTTP parser refuses the head
    // before Domicile sees it) and, for a port that is no port, the detail that says so.
    for (req, status, problem, port) in [
        (
            "GET /catalog HTTP/1.1\nHost: x\n\n",
            "400",
            "ambiguous_framing",
            false,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
            "400",
            "ambiguous_framing",
            false,
        ),
        (
            "GET /catalog/../customers HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "ambiguous_path",
            false,
        ),
        (
            "GET /catalog#/../customers HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "ambiguous_framing",
            false,
        ),
        (
            "GET /catalog?q=1#x HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "ambiguous_framing",
            false,
        ),
        (
            "GET /catalog/%2e%2e/customers HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "ambiguous_path",
            false,
        ),
        (
            "GET /catalog/..;/customers HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "ambiguous_path",
            false,
        ),
        (
            "GET /catalog//x HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "ambiguous_path",
            false,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: a\";for=8.8.8.8\r\n\r\n",
            "400",
            "bad_authority",
            false,
        ),
        // A PROXY protocol header (v1, v2) on a listener that does not take one.
        (
            "PROXY TCP4 203.0.113.7 192.0.2.1 56324 80\r\nGET /catalog HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "",
            false,
        ),
        (
            "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0cGET /catalog HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
            "",
            false,
        ),
        // Host tricks: two of them, an empty one, userinfo, ports that are no port.
        (
            "GET /catalog HTTP/1.1\r\nHost: eu.example\r\nHost: us.internal\r\n\r\n",
            "400",
            "bad_authority",
            false,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: \r\n\r\n",
            "400",
            "bad_authority",
            false,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: eu.example.@us.internal\r\n\r\n",
            "400",
            "bad_authority",
            false,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: eu.example:99999\r\n\r\n",
            "400",
            "bad_authority",
            true,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: eu.example:0\r\n\r\n",
            "400",
            "bad_authority",
            true,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: eu.example:0443x\r\n\r\n",
            "400",
            "bad_authority",
            false,
        ),
        // The port of an absolute-form target (as HTTP/2's `:authority`) is checked too.
        (
            "GET http://eu.example:0/catalog HTTP/1.1\r\nHost: eu.example\r\n\r\n",
            "400",
            "bad_authority",
            true,
        ),
        (
            "GET /catalog HTTP/1.1\r\nHost: eu.example:\r\n\r\n",
            "400",
            "bad_authority",
            true,
        ),
        (
            "CONNECT us.internal:443 HTTP/1.1\r\nHost: us.internal:443\r\n\r\n",
            "501",
            "upgrade_refused",
            false,
        ),
    ] {
        let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {status}")),
            "{req:?} -> {resp}"
        );
        if problem.is_empty() {
            assert!(!resp.contains("urn:domicile:problem"), "{req:?} -> {resp}");
        } else {
            assert!(
                resp.contains(&format!("\"type\":\"urn:domicile:problem:{problem}\"")),
                "{req:?} -> {resp}"
            );
        }
        assert_eq!(
            resp.contains("names a port that is not a port number"),
            port,
            "{req:?} -> {resp}"
        );
        assert!(closed, "{req:?}: connection left open");
    }
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_path_a_backend_could_route_elsewhere_is_refused_and_encoded_letters_are_decoded() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    // A catch-all that sends whatever no other route takes to us-east, uninspected.
    let public = "\n[[routes]]\nid = \"public\"\npath = \"/\"\npurpose = \"catalog\"\nplacement = \"fixed\"\nregion = \"us-east\"\n";
    let gw = Gateway::two_regions(&eu, &us, public).await;
    // Tomcat and Spring drop `;jsessionid=1`, IIS reads `/Customers` as `/customers`: each
    // would reach the customers handler under the catch-all's policy.
    // A lenient decoder reads the overlong `%c0%ae` as `.`, an NFKC-normalising framework the
    // fullwidth full stop `%ef%bc%8e` as `.`: `/x/../customers` either way.
    for path in [
        "/customers;jsessionid=1",
        "/customers;x=1/7",
        "/Customers",
        "/CUSTOMERS/7",
        "/x/%c0%ae%c0%ae/customers",
        "/x/%ef%bc%8e%ef%bc%8e/customers",
        "/x%ef%bc%8fcustomers",
        // The same sent as raw UTF-8, which the request line parsers let through.
        "/x/\u{ff0e}\u{ff0e}/customers",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path} -> {resp}");
        assert!(resp.contains("ambiguous_path"), "{path} -> {resp}");
        assert!(closed, "{path}");
    }
    assert_eq!(eu.count() + us.count(), 0);
    // Readings that route alike are served as they are.
    for path in ["/customers/ABC-7", "/customers/7;v=2", "/Public/x"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (resp, _) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{path} -> {resp}");
        let received: Vec<String> = [&eu, &us]
            .iter()
            .flat_map(|b| b.received())
            .map(|r| r.path)
            .collect();
        assert!(received.iter().any(|p| p == path), "{path}: {received:?}");
    }
    // `%63ustomers` is `customers` to any backend that decodes it: routed and sent on as such.
    let req = "GET /%63ustomers/%41%42%7e HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.10\r\nConnection: close\r\n\r\n";
    let (resp, _) = raw(gw.running.addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("domicile-region: eu-central"), "{resp}");
    let paths: Vec<String> = eu.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.last().map(String::as_str), Some("/customers/AB~"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_request_blocked_before_its_body_is_read_closes_the_connection() {
    let (eu, us, gw) = setup().await;
    // A streamed route blocked on its path (an EU subject's address, bound for us-east): the
    // body is never read. What it holds must not be read as a next request, and the client is
    // not left waiting while the rest of it would be drained.
    let smuggled = "GET /catalog/x HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = format!(
        "POST /catalog/by/jane@example.com HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.10\r\n\
         Content-Length: {}\r\n\r\n{smuggled}",
        smuggled.len() + 100
    );
    let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 451"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert!(closed, "the connection was left open");
    assert_eq!(resp.matches("HTTP/1.1").count(), 1, "{resp}");
    assert_eq!(eu.count() + us.count(), 0);
    // A request without a body keeps its connection when blocked.
    let r = client::get_with(
        &gw.url("/catalog/by/jane@example.com"),
        &[("x-forwarded-for", "192.0.2.10")],
    )
    .await;
    assert_eq!(r.status, 451);
    assert_eq!(r.header("connection"), None);
    assert!(!gw.trace_text().contains("jane"));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn methods_not_written_as_methods_are_refused() {
    let (eu, us, gw) = setup().await;
    for method in ["get", "Get", "G!T", "GE.T", "post"] {
        let req = format!("{method} /catalog HTTP/1.1\r\nHost: x\r\n\r\n");
        let (resp, closed) = raw(gw.running.addr, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{method} -> {resp}");
        assert!(resp.contains("bad_method"), "{method} -> {resp}");
        assert!(closed, "{method}: connection left open");
    }
    assert_eq!(eu.count() + us.count(), 0);
    // Extension methods written as methods are passed on.
    let (resp, _) = raw(
        gw.running.addr,
        b"PURGE /catalog HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(us.received().pop().unwrap().method, "PURGE");
    gw.running.shutdown().await;
}
