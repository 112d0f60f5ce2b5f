//! Timeouts, concurrency limits, upgrades on routes that allow them, and trailers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use domicile_tests::client::{self, raw};
use domicile_tests::{Backend, BackendOptions, Gateway};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway_with(eu: &Backend, us: &Backend, server_extra: &str, routes: &str) -> Gateway {
    gateway_at(&eu.url(), &us.url(), server_extra, routes, |t| t).await
}

/// The two-region gateway in front of these URLs, with `server_extra` in place of its server
/// timeouts, `routes` added, and `edit` applied to the text last.
async fn gateway_at(
    eu: &str,
    us: &str,
    server_extra: &str,
    routes: &str,
    edit: impl FnOnce(String) -> String,
) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(eu, us, &trace, routes).replace(
        "[server.timeouts]\nshutdown_grace = \"5s\"",
        &format!("{server_extra}\n"),
    );
    Gateway::start(dir, &edit(text), false).await
}

/// Bodies of at most 1 KiB inspected, 2 KiB of them at once.
const SMALL_BUDGET: &str = "[server.limits]\nmax_body_bytes = 1024\nmax_buffered_bytes = 2048\n\n[server.timeouts]\nshutdown_grace = \"2s\"";

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_time_out() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway_with(
        &eu,
        &us,
        "[server.timeouts]\nheader_read = \"300ms\"\nbody_read = \"300ms\"\nidle = \"500ms\"\nshutdown_grace = \"2s\"",
        "",
    )
    .await;
    let addr = gw.running.addr;

    // A head that never ends: the connection is closed.
    let started = std::time::Instant::now();
    let (_, closed) = raw(addr, b"GET /catalog HTTP/1.1\r\nHost: x\r\n").await;
    assert!(closed, "a slow header section kept the connection open");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A body that never arrives on an inspected route: 408, nothing forwarded.
    let (resp, closed) = raw(
        addr,
        b"POST /customers HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("body_read_timeout"), "{resp}");
    assert!(closed);
    assert_eq!(eu.count(), 0);

    // An idle keep-alive connection is closed after the idle timeout.
    let started = std::time::Instant::now();
    let (resp, closed) = raw(addr, b"GET /catalog HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(closed, "an idle connection was kept open");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_get_503() {
    let eu = Backend::start_with(
        "eu",
        BackendOptions {
            delay: Some(Duration::from_millis(500)),
            ..Default::default()
        },
    )
    .await;
    let us = Backend::start("us").await;
    let gw = gateway_with(
        &eu,
        &us,
        "[server.limits]\nmax_concurrent_requests = 1\n\n[server.timeouts]\nshutdown_grace = \"2s\"",
        "",
    )
    .await;
    let url = gw.url("/customers");
    let first = tokio::spawn(async move { client::post_json(&url, "192.0.2.1", "{}").await });
    for _ in 0..100 {
        if eu.count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = client::post_json(&gw.url("/customers"), "192.0.2.1", "{}").await;
    assert_eq!(second.status, 503);
    assert_eq!(second.json()["type"], "urn:domicile:problem:overloaded");
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(eu.count(), 1);
    // The answered request gave its place back, and the refused one took none.
    let third = client::post_json(&gw.url("/customers"), "192.0.2.1", "{}").await;
    assert_eq!(third.status, 200);
    assert_eq!(eu.count(), 2);
    gw.running.shutdown().await;
}

const UPGRADE_ROUTES: &str = r#"
[[routes]]
id = "chat"
path = "/chat"
purpose = "support"
placement = "home"
allow_upgrade = true

[[routes]]
id = "chat-us"
path = "/chat-us"
purpose = "support"
placement = "fixed"
region = "us-east"
allow_upgrade = true
"#;

/// Reads a response head a byte at a time (the tunnel's bytes follow it), lower-cased.
async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test]
async fn upgrades_tunnel_only_where_no_border_is_crossed() {
    let opts = BackendOptions {
        upgrade_echo: true,
        ..Default::default()
    };
    let eu = Backend::start_with("eu", opts.clone()).await;
    let us = Backend::start_with("us", opts).await;
    let gw = gateway_with(
        &eu,
        &us,
        "[server.timeouts]\nshutdown_grace = \"2s\"",
        UPGRADE_ROUTES,
    )
    .await;

    // EU subject, home route: the tunnel stays in eu-central and works both ways.
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    assert!(head.contains("domicile-region: eu-central"), "{head}");
    s.write_all(b"ping through the tunnel").await.unwrap();
    let mut echo = [0u8; 23];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping through the tunnel");
    assert_eq!(eu.count(), 1);

    // The same tunnel to us-east would carry uninspectable EU data across a border: 451.
    let (resp, _) = raw(
        gw.running.addr,
        b"GET /chat-us HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 451"), "{resp}");
    assert_eq!(us.count(), 0);
    let rec = gw
        .records()
        .into_iter()
        .find(|r| r["route"] == "chat-us")
        .unwrap();
    assert_eq!(rec["reason_code"], "uninspectable");
    gw.running.shutdown().await;
}

fn body_with_trailers(data: &'static str) -> StreamBody<futures_stream::Frames> {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    StreamBody::new(futures_stream::Frames::new(vec![
        Frame::data(Bytes::from_static(data.as_bytes())),
        Frame::trailers(trailers),
    ]))
}

mod futures_stream {
    //! A tiny stream of body frames.
    use bytes::Bytes;
    use hyper::body::Frame;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Frames(std::collections::VecDeque<Frame<Bytes>>);

    impl Frames {
        pub fn new(v: Vec<Frame<Bytes>>) -> Frames {
            Frames(v.into())
        }
    }

    impl futures_core::Stream for Frames {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }
}

#[tokio::test]
async fn trailers_pass_on_streamed_and_inspected_routes() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "")
        .replace(
            &format!("backends = [{{ url = \"{}\" }}]", eu.url()),
            &format!(
                "backends = [{{ url = \"{}\", protocol = \"http2\" }}]",
                eu.url()
            ),
        )
        .replace(
            &format!("backends = [{{ url = \"{}\" }}]", us.url()),
            &format!(
                "backends = [{{ url = \"{}\", protocol = \"http2\" }}]",
                us.url()
            ),
        );
    let gw = Gateway::start(dir, &text, false).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for (path, backend, body) in [
        ("/catalog/upload", &us, "plain bytes"),
        ("/customers", &eu, r#"{"email":"jane@example.com"}"#),
    ] {
        let req = Request::post(gw.url(path))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "192.0.2.1")
            .body(body_with_trailers(body))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let _ = res.into_body().collect().await.unwrap();
        let got = backend.received().pop().unwrap();
        assert_eq!(got.body.as_ref(), body.as_bytes(), "{path}");
        let trailers = got
            .trailers
            .unwrap_or_else(|| panic!("{path}: no trailers reached the backend"));
        assert_eq!(trailers["x-checksum"], "abc123", "{path}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_slow_backend_gets_504_and_the_outcome_says_so() {
    let eu = Backend::start_with(
        "eu",
        BackendOptions {
            delay: Some(Duration::from_millis(1500)),
            ..Default::default()
        },
    )
    .await;
    let us = Backend::start("us").await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, "").replace(
        &format!("backends = [{{ url = \"{}\" }}]", eu.url()),
        &format!(
            "backends = [{{ url = \"{}\", response_timeout = \"200ms\" }}]",
            eu.url()
        ),
    );
    let gw = Gateway::start(dir, &text, false).await;
    let r = client::post_json(&gw.url("/customers"), "192.0.2.1", "{}").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:domicile:problem:upstream_timeout");
    let id = r.header("domicile-decision").unwrap().to_owned();
    let mut outcome = None;
    for _ in 0..50 {
        outcome = gw
            .outcomes()
            .into_iter()
            .find(|o| o["decision_id"] == id.as_str());
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outcome = outcome.expect("no outcome line");
    assert_eq!(outcome["error"], "upstream_timeout");
    assert!(outcome["upstream_status"].is_null());
    gw.running.shutdown().await;
}

#[tokio::test]
async fn bodies_buffered_for_inspection_share_a_bounded_budget() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway_with(&eu, &us, SMALL_BUDGET, "").await;
    // Two bodies that never finish hold the whole budget.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gw.running.addr)
            .await
            .unwrap();
        s.write_all(b"POST /customers HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client::post_json(
        &gw.url("/customers"),
        "192.0.2.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:domicile:problem:overloaded");
    // Once they go, there is room again.
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        let r = client::post_json(&gw.url("/customers"), "192.0.2.1", "{}").await;
        if r.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the budget was not given back");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_body_too_large_to_inspect_gives_its_budget_back_once_it_streams_on() {
    // Bodies over the inspection limit on a route that keeps them in the subject's region:
    // their inspected prefix is held against the budget only until it is passed on, not for
    // as long as the rest takes to arrive.
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let uploads = "\n[[routes]]\nid = \"uploads\"\npath = \"/uploads\"\npurpose = \"storage\"\n\
                   placement = \"home\"\non_uninspectable = \"local\"\n";
    let gw = gateway_with(&eu, &us, SMALL_BUDGET, uploads).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gw.running.addr)
            .await
            .unwrap();
        let piece = "a".repeat(1500);
        let head = format!(
            "POST /uploads HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n\
             Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{piece}\r\n",
            piece.len()
        );
        // Over the limit, and the rest still to come.
        s.write_all(head.as_bytes()).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client::post_json(&gw.url("/customers"), "192.0.2.1", "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(held);
    gw.running.shutdown().await;
}

/// Reads a request head off a raw backend's connection; `false` when the peer went first.
async fn head_read(s: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// A gateway whose regions both go to the backend at `addr`, with these server timeouts and
/// this backend response timeout.
async fn gateway_to(addr: std::net::SocketAddr, timeouts: &str, response: &str) -> Gateway {
    let url = format!("http://{addr}");
    let server = format!("[server.timeouts]\nshutdown_grace = \"2s\"\n{timeouts}");
    gateway_at(&url, &url, &server, "", |text| {
        text.replace(
            &format!("backends = [{{ url = \"{url}\" }}]"),
            &format!("backends = [{{ url = \"{url}\", response_timeout = \"{response}\" }}]"),
        )
    })
    .await
}

/// A client that asks for 64 MiB, far more than the sockets between the gateway and it hold,
/// reads the first piece and then stops reading for three seconds, sending a byte of a next
/// request every 250 ms when `trickle`. The gateway must drop it (`timeouts` says when): the
/// connection ends, and far less than the whole answer ever reached it.
async fn stops_reading(timeouts: &str, trickle: bool) {
    const SIZE: usize = 64 << 20;
    let addr = domicile_tests::serve_raw(|mut s| async move {
        if !head_read(&mut s).await {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n");
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let block = vec![b'x'; 1 << 20];
        for _ in 0..SIZE >> 20 {
            if s.write_all(&block).await.is_err() {
                return;
            }
        }
    })
    .await;
    let gw = gateway_to(addr, timeouts, "30s").await;
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(b"GET /catalog/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = s.read(&mut buf).await.unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    for b in b"GET /next HTTP/1.1\r\n".iter().take(12) {
        if trickle {
            let _ = s.write_all(&[*b]).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rest = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), rest)
        .await
        .expect("the connection was kept open");
    assert!(
        total < SIZE / 2,
        "{total} bytes reached a client that had stopped reading"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_its_response_is_dropped() {
    // Nothing moves on the connection, which began to close after one idle period and is
    // dropped after two.
    stops_reading("idle = \"500ms\"", false).await;
    // Bytes of a next request keep it moving, but the response is not taken: the send
    // timeout drops it, long before the idle timeout would.
    stops_reading("send = \"500ms\"", true).await;
}

#[tokio::test]
async fn a_backend_that_stops_sending_its_body_has_the_response_cut_off() {
    // Ten bytes of a hundred, then neither more nor a close.
    let addr = domicile_tests::serve_raw(|mut s| async move {
        if head_read(&mut s).await {
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nten bytes.";
            let _ = s.write_all(answer).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    })
    .await;
    let gw = gateway_to(addr, "", "300ms").await;
    let started = std::time::Instant::now();
    let (resp, closed) = raw(
        gw.running.addr,
        b"GET /catalog/slow HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    // The head and what came of the body were passed on; then the connection was closed, the
    // response short of its length, after the backend's response timeout without a byte.
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nten bytes."), "{resp}");
    assert!(closed, "the client was left waiting");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn response_trailers_reach_clients_without_the_fields_trailers_may_not_carry() {
    let addr = domicile_tests::serve_raw(|mut s| async move {
        if head_read(&mut s).await {
            let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\
                trailer: x-checksum, domicile-decision, content-length\r\n\r\n\
                5\r\nhello\r\n0\r\nx-checksum: abc123\r\ndomicile-decision: forged\r\n\
                content-length: 1\r\n\r\n";
            let _ = s.write_all(answer).await;
        }
    })
    .await;
    let gw = gateway_to(addr, "", "30s").await;
    // HTTP/1.1, to a client that takes trailers: declared again, with the allowed ones only.
    let (resp, _) = raw(
        gw.running.addr,
        b"GET /catalog/sum HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    let lower = resp.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{resp}");
    assert!(lower.contains("\r\ntrailer: x-checksum\r\n"), "{resp}");
    assert!(lower.ends_with("0\r\nx-checksum: abc123\r\n\r\n"), "{resp}");
    assert!(!lower.contains("forged"), "{resp}");
    // HTTP/2: the trailers frame, filtered the same way.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<Bytes>>();
    let res = client
        .get(gw.url("/catalog/sum").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap();
    let trailers = body
        .trailers()
        .cloned()
        .expect("no trailers reached the client");
    assert_eq!(trailers["x-checksum"], "abc123");
    assert!(trailers.get("domicile-decision").is_none(), "{trailers:?}");
    assert!(trailers.get("content-length").is_none(), "{trailers:?}");
    assert_eq!(body.to_bytes().as_ref(), b"hello");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_slow_upload_is_not_counted_against_the_backends_response_timeout() {
    // The backend answers with the length of what it read, once it has read it all.
    let addr = domicile_tests::serve_raw(|stream| async move {
        let svc =
            hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let n = req
                    .into_body()
                    .collect()
                    .await
                    .map_or(0, |b| b.to_bytes().len());
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    Bytes::from(n.to_string()),
                )))
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await;
    })
    .await;
    let gw = gateway_to(addr, "", "300ms").await;
    // Ten pieces 100 ms apart on a route that streams the body: the upload takes three times
    // the backend's response timeout, and the backend answers at once after it.
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(
        b"POST /catalog/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(format!("400\r\n{}\r\n", "a".repeat(1024)).as_bytes())
            .await
            .unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n10240"), "{resp}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn header_sections_over_the_limit_get_431_and_nothing_is_forwarded() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway_with(
        &eu,
        &us,
        "[server.limits]\nmax_header_bytes = 4096\n\n[server.timeouts]\nshutdown_grace = \"2s\"",
        "",
    )
    .await;
    // Just over the limit: a problem body naming it, and the connection closed. The value is
    // not echoed.
    let just_over = format!(
        "GET /catalog HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "jane@example.com ".repeat(250)
    );
    let (resp, closed) = raw(gw.running.addr, just_over.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(resp.contains("headers_too_large"), "{resp}");
    assert!(
        resp.contains("the request headers exceed the limit of 4096 bytes"),
        "{resp}"
    );
    assert!(!resp.contains("jane@example.com"), "{resp}");
    assert!(closed);
    // Far over: refused while the head is still being read, before it is parsed.
    let far_over = format!(
        "GET /catalog HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (resp, closed) = raw(gw.running.addr, far_over.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(closed);
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_h2c_upgrade_is_ignored_and_never_passed_on() {
    let opts = BackendOptions {
        upgrade_echo: true,
        ..Default::default()
    };
    let eu = Backend::start_with("eu", opts.clone()).await;
    let us = Backend::start_with("us", opts).await;
    let gw = gateway_with(&eu, &us, "", UPGRADE_ROUTES).await;
    // On a route that allows upgrades and on one that does not, alone or with another
    // protocol, with `HTTP2-Settings` named in `Connection` or not: the request is served as
    // HTTP/1.1, and the backend sees neither `Upgrade: h2c` nor `HTTP2-Settings`.
    for (path, upgrade, connection) in [
        ("/chat", "h2c", "Upgrade, HTTP2-Settings, close"),
        ("/customers", "h2c", "Upgrade, HTTP2-Settings, close"),
        ("/customers", "H2C", "Upgrade, HTTP2-Settings, close"),
        ("/customers", "h2c", "Upgrade, close"),
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\
             Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\
             X-Forwarded-For: 192.0.2.1\r\nContent-Length: 0\r\n\r\n"
        );
        let (resp, _) = raw(gw.running.addr, request.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{path} {upgrade}: {resp}");
        let got = eu.received().pop().unwrap();
        assert_eq!(got.path, path);
        for name in ["upgrade", "http2-settings"] {
            assert!(!got.headers.contains_key(name), "{path}: {:?}", got.headers);
        }
    }
    assert_eq!(eu.count(), 4);
    // The connection stays HTTP/1.1 and serves the next request on it.
    let two = "GET /customers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
               Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\
               X-Forwarded-For: 192.0.2.1\r\n\r\n\
               GET /customers/2 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n\
               Connection: close\r\n\r\n";
    let (resp, _) = raw(gw.running.addr, two.as_bytes()).await;
    assert_eq!(resp.matches("HTTP/1.1 200").count(), 2, "{resp}");
    assert_eq!(eu.count(), 6);
    // With another protocol asked for too, the upgrade goes ahead for that one alone.
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, echo\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    let got = eu.received().pop().unwrap();
    assert_eq!(got.headers["upgrade"], "echo");
    assert!(!got.headers.contains_key("http2-settings"));
    gw.running.shutdown().await;
}
