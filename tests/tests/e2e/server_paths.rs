//! The two HTTP/1.1 server paths of a plain listener: the lean path takes the common request,
//! and a connection moves to the general path at the first request it does not take. A client
//! sees the same answers, framed the same way, on either.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use domicile_tests::client::raw;
use domicile_tests::{Backend, Gateway, serve_raw};

async fn setup() -> (Backend, Backend, Gateway) {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    (eu, us, gw)
}

/// A request only the general path takes: a chunked body (here, an empty one).
const TO_GENERAL: &str =
    "POST /catalog/general HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

/// One response off the wire: the status line, the header lines (lower-cased names), the body.
#[derive(Debug)]
struct Wire {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Trailer lines of a chunked body.
    trailers: Vec<String>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The head with the values that differ from one request to the next left out.
    fn stable_head(&self) -> (String, Vec<(String, String)>) {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| match n.as_str() {
                "date" | "domicile-decision" => (n.clone(), String::new()),
                _ => (n.clone(), v.clone()),
            })
            .collect();
        (self.status.clone(), headers)
    }
}

/// Splits `bytes` into responses, given which of the requests were `HEAD`.
fn responses(mut bytes: &[u8], head_requests: &[bool]) -> Vec<Wire> {
    let mut out = Vec::new();
    for &head in head_requests {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(bytes)));
        let text = std::str::from_utf8(&bytes[..end]).unwrap();
        bytes = &bytes[end + 4..];
        let mut lines = text.split("\r\n");
        let status = lines.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let mut w = Wire {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if !head {
            if let Some(len) = w.header("content-length") {
                let len: usize = len.parse().unwrap();
                w.body = bytes[..len].to_vec();
                bytes = &bytes[len..];
            } else if w.header("transfer-encoding") == Some("chunked") {
                loop {
                    let nl = bytes.windows(2).position(|x| x == b"\r\n").unwrap();
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&bytes[..nl]).unwrap(), 16)
                            .unwrap();
                    bytes = &bytes[nl + 2..];
                    if size == 0 {
                        loop {
                            let nl = bytes.windows(2).position(|x| x == b"\r\n").unwrap();
                            let line = std::str::from_utf8(&bytes[..nl]).unwrap().to_owned();
                            bytes = &bytes[nl + 2..];
                            if line.is_empty() {
                                break;
                            }
                            w.trailers.push(line);
                        }
                        break;
                    }
                    w.body.extend_from_slice(&bytes[..size]);
                    bytes = &bytes[size + 2..];
                }
            }
        }
        out.push(w);
    }
    assert!(
        bytes.is_empty(),
        "bytes after the last response: {:?}",
        String::from_utf8_lossy(bytes)
    );
    out
}

#[tokio::test]
async fn a_connection_moves_to_the_general_path_at_a_request_the_lean_one_does_not_take() {
    let (_eu, us, gw) = setup().await;
    // Sent at once: the first is taken on the lean path, the chunked second one moves the
    // connection, and the third (already read with it) is served on the general path.
    let three = "GET /catalog/a HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /catalog/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
                 GET /catalog/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (resp, closed) = raw(gw.running.addr, three.as_bytes()).await;
    let got = responses(resp.as_bytes(), &[false, false, false]);
    let statuses: Vec<&str> = got.iter().map(|w| w.status.as_str()).collect();
    assert_eq!(statuses, ["HTTP/1.1 200 OK"; 3], "{resp}");
    assert!(
        closed,
        "the connection was left open after `Connection: close`"
    );
    let received = us.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/catalog/a", "/catalog/b", "/catalog/c"]);
    assert_eq!(&received[1].body[..], b"hello");
    assert!(received[0].body.is_empty() && received[2].body.is_empty());
    assert_eq!(gw.records().len(), 3);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn responses_are_framed_alike_on_both_paths() {
    let (_eu, _us, gw) = setup().await;
    let cases: [(&str, bool); 4] = [
        ("GET /catalog/x HTTP/1.1\r\nHost: x\r\n\r\n", false),
        ("HEAD /catalog/x HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (
            "POST /catalog/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            false,
        ),
        // Answered by the gateway itself: 404, no route.
        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", false),
    ];
    for (req, head) in cases {
        let close = "Connection: close\r\n\r\n";
        let closing = req.replacen("\r\n\r\n", &format!("\r\n{close}"), 1);
        // Lean: the request alone (then one that closes the connection).
        let lean = format!("{req}{closing}");
        let (lean_resp, lean_closed) = raw(gw.running.addr, lean.as_bytes()).await;
        // General: the same, after a request that moves the connection.
        let moved = format!("{TO_GENERAL}{req}{closing}");
        let (gen_resp, gen_closed) = raw(gw.running.addr, moved.as_bytes()).await;
        assert!(lean_closed && gen_closed, "{req:?}");
        let lean = responses(lean_resp.as_bytes(), &[head, head]);
        let general = responses(gen_resp.as_bytes(), &[false, head, head]);
        for (l, g) in lean.iter().zip(&general[1..]) {
            assert_eq!(l.stable_head(), g.stable_head(), "{req:?}");
            assert_eq!(l.body.len(), g.body.len(), "{req:?}");
            assert!(l.header("date").is_some(), "{req:?}: no Date");
        }
        assert_eq!(lean[1].header("connection"), Some("close"), "{req:?}");
        if head {
            assert!(lean[0].body.is_empty());
            assert!(lean[0].header("content-length").is_some(), "{req:?}");
        }
    }
    gw.running.shutdown().await;
}

/// A raw backend that answers each request head on a connection with `answer(path)`, and
/// closes the connection after an answer that says `connection: close`.
async fn answering(answer: fn(&str) -> Vec<u8>) -> String {
    let addr = serve_raw(move |mut s| async move {
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
            while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let line = String::from_utf8_lossy(&head[..end]).into_owned();
                head.drain(..end + 4);
                let a = answer(line.split(' ').nth(1).unwrap_or(""));
                let closes = a.windows(17).any(|w| w == b"connection: close");
                if s.write_all(&a).await.is_err() || closes {
                    return;
                }
            }
        }
    })
    .await;
    format!("http://{addr}")
}

#[tokio::test]
async fn chunked_responses_and_their_trailers_are_passed_on_alike_on_both_paths() {
    // A backend that answers every request with a chunked body and a trailer it announces.
    let url = answering(|_| {
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n"
            .to_vec()
    })
    .await;
    let gw = Gateway::with_urls(&url, &url, "").await;
    for te in ["", "TE: trailers\r\n"] {
        let req = format!("GET /catalog/t HTTP/1.1\r\nHost: x\r\n{te}Connection: close\r\n\r\n");
        let (lean, _) = raw(gw.running.addr, req.as_bytes()).await;
        let (moved, _) = raw(gw.running.addr, format!("{TO_GENERAL}{req}").as_bytes()).await;
        let lean = responses(lean.as_bytes(), &[false]);
        let moved = responses(moved.as_bytes(), &[false, false]);
        let (l, g) = (&lean[0], &moved[1]);
        assert_eq!(l.stable_head(), g.stable_head(), "{te:?}");
        assert_eq!(l.header("transfer-encoding"), Some("chunked"), "{te:?}");
        assert_eq!(l.body, b"hello world", "{te:?}");
        assert_eq!(l.body, g.body, "{te:?}");
        assert_eq!(l.trailers, g.trailers, "{te:?}");
        // Trailers only to a client that said it takes them.
        let expected: &[&str] = if te.is_empty() {
            &[]
        } else {
            &["x-checksum: abc"]
        };
        assert_eq!(l.trailers, expected, "{te:?}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn backend_answers_of_every_shape_reach_the_client_alike_on_both_paths() {
    // A backend that answers by path: no content, not modified, repeated fields, a large body,
    // many small chunks, and an answer after which it closes.
    fn answer(path: &str) -> Vec<u8> {
        match path {
            "/catalog/empty" => b"HTTP/1.1 204 No Content\r\nx-kind: none\r\n\r\n".to_vec(),
            "/catalog/same" => b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n".to_vec(),
            "/catalog/many" => b"HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nvary: accept\r\n\
                                 set-cookie: b=2\r\nvary: origin\r\ncontent-length: 2\r\n\r\nok"
                .to_vec(),
            // Names as servers write them, its own date, a connection kept open.
            "/catalog/cased" => b"HTTP/1.1 200 OK\r\nServer: edge/1\r\nDate: Mon, 30 Nov 2026 \
                                  23:00:00 GMT\r\nVary: Accept\r\nContent-Type: text/plain\r\n\
                                  VARY: Origin\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
            // Fields the gateway removes from answers: its own, a proxy's, one spelled with
            // `_` for `-`, and one the answer's `Connection` names.
            "/catalog/odd" => b"HTTP/1.1 200 OK\r\nDomicile-Decision: forged\r\nProxy-Thing: x\r\n\
                                domicile_region: forged\r\nx-kept: 2\r\nKeep-Alive: timeout=5\r\n\
                                content-length: 2\r\n\r\nok"
                .to_vec(),
            "/catalog/named" => b"HTTP/1.1 200 OK\r\nx-hop: 1\r\nConnection: x-hop\r\n\
                                  x-kept: 2\r\ncontent-length: 2\r\n\r\nok"
                .to_vec(),
            "/catalog/big" => {
                let mut a = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n".to_vec();
                a.extend((0..100_000).map(|i| b'a' + (i % 26) as u8));
                a
            }
            "/catalog/chunks" => {
                let mut a = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for i in 0..3000 {
                    a.extend_from_slice(format!("a\r\nchunk{i:05}\r\n").as_bytes());
                }
                a.extend_from_slice(b"0\r\n\r\n");
                a
            }
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbye".to_vec(),
        }
    }
    let url = answering(answer).await;
    let gw = Gateway::with_urls(&url, &url, "").await;
    let asks: [(&str, &str); 10] = [
        ("GET", "/catalog/empty"),
        ("GET", "/catalog/same"),
        ("GET", "/catalog/many"),
        ("HEAD", "/catalog/many"),
        ("GET", "/catalog/cased"),
        ("GET", "/catalog/odd"),
        ("GET", "/catalog/named"),
        ("GET", "/catalog/big"),
        ("GET", "/catalog/chunks"),
        ("GET", "/catalog/close"),
    ];
    let mut all = String::new();
    for (method, path) in asks {
        all.push_str(&format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    all.push_str("GET /catalog/end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let heads: Vec<bool> = asks
        .iter()
        .map(|(m, _)| *m == "HEAD")
        .chain([false])
        .collect();
    let (lean, lean_closed) = raw(gw.running.addr, all.as_bytes()).await;
    let (moved, moved_closed) = raw(gw.running.addr, format!("{TO_GENERAL}{all}").as_bytes()).await;
    assert!(lean_closed && moved_closed);
    // On the wire the names are in lower case, as hyper writes them.
    assert!(lean.contains("\r\nserver: edge/1\r\n"), "{lean}");
    assert!(
        !lean.contains("Server:") && !lean.contains("VARY"),
        "{lean}"
    );
    let lean = responses(lean.as_bytes(), &heads);
    let moved = responses(moved.as_bytes(), &[&[false][..], &heads].concat());
    for ((l, g), (method, path)) in lean.iter().zip(&moved[1..]).zip(asks) {
        assert_eq!(l.stable_head(), g.stable_head(), "{method} {path}");
        assert_eq!(l.body, g.body, "{method} {path}");
    }
    let status: Vec<&str> = lean.iter().map(|w| w.status.as_str()).collect();
    assert_eq!(
        status,
        [
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
        ]
    );
    // Repeated fields go on as separate lines, in order; the body is whole.
    let cookies: Vec<&str> = lean[2]
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(lean[7].body.len(), 100_000);
    assert_eq!(lean[8].body.len(), 30_000);
    assert!(lean[0].header("content-length").is_none());
    // The backend's own date stands, once; the names go on in lower case; a name's lines
    // go together where its first came, as on the general path.
    let names: Vec<&str> = lean[4].headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "server",
            "date",
            "vary",
            "vary",
            "content-type",
            "content-length",
            "domicile-decision",
            "domicile-region"
        ]
    );
    assert_eq!(
        lean[4].header("date"),
        Some("Mon, 30 Nov 2026 23:00:00 GMT")
    );
    assert_eq!(lean[4].body, b"ok");
    for odd in &lean[5..7] {
        let mut fields: Vec<(&str, &str)> = odd
            .headers
            .iter()
            .filter(|(n, _)| n != "date")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        fields.sort_unstable();
        assert_eq!(fields.len(), 4, "{fields:?}");
        assert_eq!(
            fields[..2],
            [("content-length", "2"), ("domicile-decision", fields[1].1)]
        );
        assert_ne!(fields[1].1, "forged");
        assert_eq!(
            fields[2..],
            [("domicile-region", "us-east"), ("x-kept", "2")]
        );
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_head_that_arrives_in_pieces_is_served_and_so_is_the_next() {
    let (_eu, us, gw) = setup().await;
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(b"GET /catalog/first HTTP/1.1\r\nHo")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(
        b"st: x\r\n\r\nGET /catalog/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the connection was left open")
        .unwrap();
    let got = responses(&out, &[false, false]);
    assert!(got.iter().all(|w| w.status == "HTTP/1.1 200 OK"), "{got:?}");
    let paths: Vec<String> = us.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/catalog/first", "/catalog/second"]);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_with_its_request_in_flight_ends_it() {
    // A backend that answers after two seconds: the client leaves before.
    let us = Backend::start_with(
        "us",
        domicile_tests::BackendOptions {
            delay: Some(Duration::from_secs(2)),
            ..Default::default()
        },
    )
    .await;
    let eu = Backend::start("eu").await;
    let gw = Gateway::two_regions(&eu, &us, "").await;
    let mut s = tokio::net::TcpStream::connect(gw.running.addr)
        .await
        .unwrap();
    s.write_all(b"GET /catalog/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    // Had the request gone on, its outcome would be recorded when the backend answers, at two
    // seconds. It was ended: its decision is recorded, and no outcome ever follows.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gw.records().len(), 1);
    assert!(gw.outcomes().is_empty(), "{:?}", gw.outcomes());
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_gateways_own_fields_follow_an_answer_passed_on_as_it_came() {
    // An answer with nothing for the gateway to strip or read, on a dry-run route: its lines
    // go on as they came, and the decision, the region and the dry run's verdict after them.
    let url =
        answering(|_| b"HTTP/1.1 200 OK\r\nServer: edge/1\r\nContent-Length: 2\r\n\r\nok".to_vec())
            .await;
    let gw = Gateway::with_urls(&url, &url, domicile_tests::DRY_RUN_ROUTE).await;
    let req = "GET /trial/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (lean, _) = raw(gw.running.addr, req.as_bytes()).await;
    let (moved, _) = raw(gw.running.addr, format!("{TO_GENERAL}{req}").as_bytes()).await;
    let lean = responses(lean.as_bytes(), &[false]);
    let moved = responses(moved.as_bytes(), &[false, false]);
    let (l, g) = (&lean[0], &moved[1]);
    assert_eq!(l.stable_head(), g.stable_head());
    let names: Vec<&str> = l.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "server",
            "content-length",
            "domicile-decision",
            "domicile-region",
            "domicile-verdict",
            "connection",
            "date"
        ]
    );
    assert_eq!(l.header("domicile-region"), Some("us-east"));
    assert_eq!(l.header("domicile-verdict"), g.header("domicile-verdict"));
    assert!(l.header("domicile-verdict").is_some());
    assert_eq!(l.body, b"ok");
    gw.running.shutdown().await;
}
