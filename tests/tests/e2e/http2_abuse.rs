//! HTTP/2 protocol abuse on a plain (h2c prior knowledge) listener, spoken frame by frame: a
//! client library would not send what these tests send. Each attack must end in a connection
//! error or in bounded work, must reach no backend it should not, and must leave the gateway
//! answering other clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use domicile_tests::{Backend, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// `ENHANCE_YOUR_CALM`, RFC 9113 §7.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// `REFUSED_STREAM`.
const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal, neither Huffman-coded nor indexed, of under 127 bytes.
fn literal(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap());
    out.extend_from_slice(s.as_bytes());
}

/// The header block of `GET path` (static-table names, literal values, nothing indexed, so
/// that every block decodes on its own).
fn get(path: &str) -> Vec<u8> {
    block(0x82, path, &[]) // :method GET
}

/// The header block of `POST path` with `extra` fields, as [`get`]'s.
fn post(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    block(0x83, path, extra) // :method POST
}

fn block(method: u8, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![method, 0x86]; // :scheme http
    b.push(0x04); // :path, a literal value
    literal(&mut b, path);
    b.push(0x01); // :authority
    literal(&mut b, "gateway.test");
    for (name, value) in extra {
        b.push(0x00); // a literal name and value, not indexed
        literal(&mut b, name);
        literal(&mut b, value);
    }
    b
}

/// A client connection that has sent the preface and its (empty) settings.
async fn connect(gw: &Gateway) -> TcpStream {
    let mut s = TcpStream::connect(gw.running.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    s
}

/// What the gateway sent on one connection, read until it closed or went quiet.
#[derive(Default)]
struct Heard {
    /// (type, flags, stream) of every frame.
    frames: Vec<(u8, u8, u32)>,
    /// The error code of a GOAWAY, if one came.
    goaway: Option<u32>,
    /// Error codes of RST_STREAM frames.
    resets: Vec<u32>,
    /// The connection was closed by the gateway.
    closed: bool,
}

impl std::fmt::Debug for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first: Vec<_> = self.frames.iter().take(8).collect();
        write!(
            f,
            "{} frames (first {first:?}), goaway {:?}, {} resets (first {:?}), closed {}",
            self.frames.len(),
            self.goaway,
            self.resets.len(),
            self.resets.first(),
            self.closed
        )
    }
}

async fn listen(s: &mut TcpStream, quiet: Duration) -> Heard {
    let mut heard = Heard::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                heard.closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = &buf[9..9 + len];
            let code = |at: usize| {
                payload
                    .get(at..at + 4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            };
            match kind {
                GOAWAY => heard.goaway = code(4),
                RST_STREAM => heard.resets.extend(code(0)),
                _ => {}
            }
            heard.frames.push((kind, flags, stream));
            buf.drain(..9 + len);
        }
    }
    heard
}

async fn setup() -> (Backend, Backend, Gateway) {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = Gateway::two_regions(&eu, &us, "").await;
    (eu, us, gw)
}

/// Another client, on a connection of its own, is still served.
async fn still_serves(gw: &Gateway) {
    let r = domicile_tests::client::get(&gw.url("/catalog/after")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn rapid_reset_ends_in_goaway_and_reaches_few_backends() {
    let (eu, us, gw) = setup().await;
    let mut s = connect(&gw).await;
    // CVE-2023-44487: open a stream and cancel it at once, a thousand times, in one write.
    let mut attack = Vec::new();
    for n in 0..1000u32 {
        let id = 2 * n + 1;
        attack.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            id,
            &get(&format!("/catalog/{n}")),
        ));
        attack.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    // The gateway may close the connection before it has read it all.
    let _ = s.write_all(&attack).await;
    let heard = listen(&mut s, Duration::from_secs(2)).await;
    assert_eq!(heard.goaway, Some(ENHANCE_YOUR_CALM), "{heard:?}");
    assert!(heard.closed, "{heard:?}");
    // Streams cancelled before they were taken up never become requests: the few that were
    // taken up before the reset budget ran out are all that reached a backend.
    let reached = eu.count() + us.count();
    assert!(
        reached < 100,
        "{reached} of 1000 cancelled streams reached a backend"
    );
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_endless_header_block_is_a_connection_error_and_never_a_request() {
    let (eu, us, gw) = setup().await;
    let mut s = connect(&gw).await;
    // A HEADERS frame without END_HEADERS, then CONTINUATION frames that never end it, each
    // adding a header: far past the gateway's header limit (64 KiB by default).
    s.write_all(&frame(HEADERS, END_STREAM, 1, &get("/catalog/flood")))
        .await
        .unwrap();
    let mut block = Vec::new();
    for _ in 0..64 {
        block.push(0x00); // a literal header with a literal name, not indexed
        literal(&mut block, "x-flood");
        literal(&mut block, &"a".repeat(100));
    }
    let continuation = frame(CONTINUATION, 0, 1, &block);
    let mut sent = 0usize;
    for _ in 0..2000 {
        // About 7 KiB a frame, 14 MiB in all if nothing stops it.
        if s.write_all(&continuation).await.is_err() {
            break;
        }
        sent += continuation.len();
    }
    let heard = listen(&mut s, Duration::from_secs(2)).await;
    assert_eq!(heard.goaway, Some(ENHANCE_YOUR_CALM), "{heard:?}");
    assert!(heard.closed, "{heard:?}");
    assert!(
        sent < 2000 * continuation.len(),
        "the gateway read all {sent} bytes of one header block"
    );
    assert_eq!(eu.count() + us.count(), 0);
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn streams_beyond_the_concurrency_limit_are_refused() {
    let (_eu, us, gw) = setup().await;
    let mut s = connect(&gw).await;
    // Wait for the gateway's settings (which carry the stream limit) and acknowledge them, so
    // the limit is in force, then open streams whose bodies never come.
    let heard = listen(&mut s, Duration::from_millis(300)).await;
    assert!(
        heard
            .frames
            .iter()
            .any(|f| f.0 == SETTINGS && f.1 & ACK == 0),
        "{heard:?}"
    );
    let mut opens = frame(SETTINGS, ACK, 0, &[]);
    for n in 0..300u32 {
        // A POST whose body is still to come: each stream stays open.
        let block = post(&format!("/catalog/{n}"), &[]);
        opens.extend(frame(HEADERS, END_HEADERS, 2 * n + 1, &block));
    }
    s.write_all(&opens).await.unwrap();
    let heard = listen(&mut s, Duration::from_millis(500)).await;
    let refused = heard
        .resets
        .iter()
        .filter(|c| **c == REFUSED_STREAM)
        .count();
    // 256 streams at once; the rest are refused, each with REFUSED_STREAM (safe to retry).
    assert!(refused >= 300 - 256, "{refused} refused: {heard:?}");
    assert!(heard.goaway.is_none(), "{heard:?}");
    // The open streams end when their bodies do.
    let mut ends = Vec::new();
    for n in 0..8u32 {
        ends.extend(frame(DATA, END_STREAM, 2 * n + 1, b"{}"));
    }
    s.write_all(&ends).await.unwrap();
    let heard = listen(&mut s, Duration::from_millis(500)).await;
    let answered = heard
        .frames
        .iter()
        .filter(|f| f.0 == HEADERS && f.2 <= 15)
        .count();
    assert_eq!(answered, 8, "{heard:?}");
    assert!(us.count() >= 8);
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn streams_that_make_the_gateway_reset_them_end_in_goaway() {
    let (_eu, _us, gw) = setup().await;
    let mut s = connect(&gw).await;
    // MadeYouReset (CVE-2025-8671): each stream provokes a reset from the gateway (a
    // connection-specific header is malformed in HTTP/2, a stream error), not one the client sent.
    let mut attack = Vec::new();
    for n in 0..600u32 {
        let block = block(0x82, &format!("/catalog/{n}"), &[("connection", "close")]);
        attack.extend(frame(HEADERS, END_STREAM | END_HEADERS, 2 * n + 1, &block));
    }
    let _ = s.write_all(&attack).await;
    let heard = listen(&mut s, Duration::from_secs(2)).await;
    assert_eq!(heard.goaway, Some(ENHANCE_YOUR_CALM), "{heard:?}");
    // Past the budget of 256 resets the connection ends, long before the 600th.
    assert!(heard.resets.len() <= 300, "{} resets", heard.resets.len());
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_are_reset_and_reach_no_backend() {
    let (eu, us, gw) = setup().await;
    /// `PROTOCOL_ERROR`.
    const PROTOCOL_ERROR: u32 = 0x1;
    for (what, extra, body) in [
        // h2spec 8.1.2.6: a length the DATA frames do not add up to (H2.CL).
        (
            "content-length too long",
            &[("content-length", "10")][..],
            "abc",
        ),
        (
            "content-length too short",
            &[("content-length", "1")][..],
            "abc",
        ),
        // RFC 9113 section 8.2.2: connection-specific fields, and TE other than trailers (H2.TE).
        (
            "transfer-encoding",
            &[("transfer-encoding", "chunked")][..],
            "abc",
        ),
        ("te: gzip", &[("te", "gzip")][..], "abc"),
        ("upgrade", &[("upgrade", "websocket")][..], "abc"),
        // Line breaks and NUL in a value, which an HTTP/1.1 backend would read as new lines.
        (
            "CRLF in a value",
            &[("x-a", "1\r\nx-injected: 1")][..],
            "abc",
        ),
        ("NUL in a value", &[("x-a", "1\0")][..], "abc"),
    ] {
        for path in ["/catalog/x", "/customers"] {
            let mut s = connect(&gw).await;
            let mut req = frame(HEADERS, END_HEADERS, 1, &post(path, extra));
            req.extend(frame(DATA, END_STREAM, 1, body.as_bytes()));
            s.write_all(&req).await.unwrap();
            let heard = listen(&mut s, Duration::from_millis(250)).await;
            let refused =
                heard.resets.contains(&PROTOCOL_ERROR) || heard.goaway == Some(PROTOCOL_ERROR);
            assert!(refused, "{what} on {path}: {heard:?}");
            let answered = heard.frames.iter().any(|f| f.0 == HEADERS && f.2 == 1);
            assert!(!answered, "{what} on {path}: answered as if well formed");
        }
    }
    assert_eq!(eu.count() + us.count(), 0);
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_ping_flood_does_not_stop_the_gateway_serving_others() {
    let (_eu, _us, gw) = setup().await;
    // A client with small socket buffers that floods PINGs and does not read the answers:
    // the gateway answers as the client reads, and stops reading it meanwhile.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.set_send_buffer_size(4096).unwrap();
    let mut s = sock.connect(gw.running.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    let ping = frame(PING, 0, 0, &[7; 8]);
    let flood: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 100_000)
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&flood)).await;
    // While that connection is stalled, others are served.
    still_serves(&gw).await;
    let heard = listen(&mut s, Duration::from_millis(500)).await;
    let acks = heard
        .frames
        .iter()
        .filter(|f| f.0 == PING && f.1 & ACK != 0)
        .count();
    assert!(acks > 0, "{heard:?}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn an_hpack_bomb_is_refused_by_its_decoded_size_and_never_a_request() {
    /// `GET path` with one 100-byte header added to the dynamic table (a 138-byte entry at
    /// index 62) and then referenced by its one-byte index `refs` times.
    fn bomb(path: &str, refs: usize) -> Vec<u8> {
        let mut block = get(path);
        block.push(0x40); // a literal header, added to the dynamic table
        literal(&mut block, "x-bomb");
        literal(&mut block, &"a".repeat(100));
        block.extend(std::iter::repeat_n(0xbe, refs)); // index 62, indexed
        block
    }
    let (eu, us, gw) = setup().await;
    // The control: 50 references, some 7 KiB decoded, under the limit, is a request (and
    // under the 100 header lines the test backend takes).
    let mut s = connect(&gw).await;
    s.write_all(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &bomb("/catalog/ok", 50),
    ))
    .await
    .unwrap();
    let heard = listen(&mut s, Duration::from_secs(1)).await;
    assert!(
        heard.frames.iter().any(|f| f.0 == DATA && f.2 == 1),
        "{heard:?}"
    );
    assert_eq!(us.count(), 1, "the control never reached its backend");
    // 2,000 references: 2 KiB on the wire, some 276 KiB decoded, past the limit. The
    // connection ends with ENHANCE_YOUR_CALM, not a decoding failure (the block is valid), and
    // the request is never forwarded nor answered.
    let mut s = connect(&gw).await;
    s.write_all(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &bomb("/catalog/bomb", 2000),
    ))
    .await
    .unwrap();
    let heard = listen(&mut s, Duration::from_secs(2)).await;
    assert_eq!(heard.goaway, Some(ENHANCE_YOUR_CALM), "{heard:?}");
    assert!(
        !heard.frames.iter().any(|f| f.2 == 1 && f.0 == HEADERS),
        "{heard:?}"
    );
    assert_eq!(eu.count() + us.count(), 1);
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn settings_and_priority_floods_do_not_stop_the_gateway_serving_others() {
    const PRIORITY: u8 = 0x2;
    let (_eu, _us, gw) = setup().await;
    // SETTINGS_MAX_CONCURRENT_STREAMS = 100, over and over: each wants an ACK.
    let settings = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    // PRIORITY for ever new idle streams (odd ids from 3), each depending on stream 1.
    let priority: Vec<u8> = (0..100_000u32)
        .flat_map(|n| frame(PRIORITY, 0, 3 + 2 * n, &[0, 0, 0, 1, 16]))
        .collect();
    let settings: Vec<u8> = settings
        .iter()
        .copied()
        .cycle()
        .take(settings.len() * 100_000)
        .collect();
    for (name, flood) in [("settings", settings), ("priority", priority)] {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(gw.running.addr).await.unwrap();
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        s.write_all(&hello).await.unwrap();
        // Others are served while the flood is being written, not only after it.
        let flooding = tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(3), s.write_all(&flood)).await;
            s
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::timeout(Duration::from_secs(2), still_serves(&gw))
            .await
            .unwrap_or_else(|_| panic!("{name}: others were not served during the flood"));
        let mut s = flooding.await.unwrap();
        let heard = listen(&mut s, Duration::from_millis(500)).await;
        // The flood was answered, ignored or ended with GOAWAY: never an internal error.
        assert!(heard.goaway.is_none_or(|c| c != 0x2), "{name}: {heard:?}");
    }
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

/// Pings the gateway every 200 ms for `period`, reading what it sends, until it closes; with
/// `others`, each time also asks on a new stream whose window it opens, so that some response
/// of the connection is always taken.
async fn ping_for(s: &mut TcpStream, period: Duration, others: bool) -> Heard {
    let mut all = Heard::default();
    let start = std::time::Instant::now();
    let mut stream = 3;
    while start.elapsed() < period && !all.closed {
        let mut out = frame(PING, 0, 0, &[1; 8]);
        if others {
            out.extend(frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                stream,
                &get("/catalog/more"),
            ));
            out.extend(frame(WINDOW_UPDATE, 0, stream, &65_535u32.to_be_bytes()));
            stream += 2;
        }
        if s.write_all(&out).await.is_err() {
            all.closed = true;
            break;
        }
        let heard = listen(s, Duration::from_millis(200)).await;
        all.frames.extend(heard.frames);
        all.closed = heard.closed;
    }
    all
}

#[tokio::test]
async fn a_response_whose_window_stays_shut_ends_its_connection_while_pings_and_other_streams_go_on()
 {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &dir.path().join("t"), "")
        .replace("[server.timeouts]", "[server.timeouts]\nsend = \"1s\"");
    let gw = Gateway::start(dir, &text, false).await;
    let data_on_1 = |h: &Heard| h.frames.iter().any(|f| f.0 == DATA && f.2 == 1);

    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the client lets no stream send it a byte, and keeps
    // its connection busy with pings.
    let mut s = TcpStream::connect(gw.running.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]));
    hello.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &get("/catalog/shut"),
    ));
    s.write_all(&hello).await.unwrap();
    let started = std::time::Instant::now();
    let heard = ping_for(&mut s, Duration::from_secs(6), true).await;
    assert!(heard.closed, "{heard:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // The answer's head went out; its body never could.
    assert!(
        heard.frames.iter().any(|f| f.0 == HEADERS && f.2 == 1),
        "{heard:?}"
    );
    assert!(!data_on_1(&heard), "{heard:?}");
    // The other streams were answered meanwhile.
    let others = heard
        .frames
        .iter()
        .filter(|f| f.0 == DATA && f.2 > 1)
        .count();
    assert!(others >= 1, "{heard:?}");

    // The same request and pings with the window open: answered, and the connection kept.
    let mut s = connect(&gw).await;
    s.write_all(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &get("/catalog/open"),
    ))
    .await
    .unwrap();
    let heard = ping_for(&mut s, Duration::from_millis(2500), false).await;
    assert!(data_on_1(&heard), "{heard:?}");
    assert!(!heard.closed, "{heard:?}");
    drop(s);
    still_serves(&gw).await;
    gw.running.shutdown().await;
}
