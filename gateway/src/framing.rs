//! Strict HTTP/1 framing that hyper does not expose.
//!
//! hyper accepts a request carrying both `Content-Length` and `Transfer-Encoding`: it drops the
//! length, reads the body as chunked and closes the connection afterwards, and the request it
//! hands over no longer shows that there were two. Domicile refuses such requests outright (400
//! and close, the request-smuggling rule of RFC 9112 section 6.1). [`Sniff`] watches the bytes
//! hyper reads, follows message framing on its own, and records for each request head, in order,
//! whether it was ambiguous; the limits phase reads the record for the request it handles.
//! The bytes are never changed. On anything it cannot follow (HTTP/2, an upgrade, a head hyper
//! will reject anyway), the sniffer stops, since hyper then closes or leaves HTTP/1. Requests
//! taken by the lean path ([`crate::h1`]) get their facts from its own parse of the head, in the
//! same log, so the order holds when a connection moves from that path to hyper's.
//!
//! The same wrapper records when bytes last moved, for the idle timeout: one wrapper around the
//! connection instead of two.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When bytes last moved on a connection, in milliseconds since it opened.
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// The last time bytes were read or written.
    pub fn last(&self) -> Instant {
        self.origin + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

/// Framing facts about one request head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramingFacts {
    /// Both `Content-Length` and `Transfer-Encoding` were present.
    pub length_and_chunked: bool,
    /// A line ended with a bare LF instead of CRLF.
    pub bare_lf: bool,
    /// The request-target holds a `#`: a fragment is never sent (RFC 9112 section 3.2), and
    /// what follows it is dropped by one reader and kept by another.
    pub fragment: bool,
}

/// The facts for each request head of one connection, oldest first, and whether a head is
/// being read right now (for the header-read timeout, which runs from a head's first byte).
#[derive(Debug)]
pub struct FramingLog {
    facts: Mutex<VecDeque<FramingFacts>>,
    origin: Instant,
    /// Milliseconds since `origin` + 1 when the current head began; 0 when none is in progress.
    head_since: AtomicU64,
}

impl Default for FramingLog {
    fn default() -> FramingLog {
        FramingLog {
            facts: Mutex::new(VecDeque::new()),
            origin: Instant::now(),
            head_since: AtomicU64::new(0),
        }
    }
}

impl FramingLog {
    /// Marks the start of a head (at accept, and at a head's first byte).
    pub fn head_started(&self) {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        let _ = self
            .head_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn head_done(&self) {
        self.head_since.store(0, Ordering::Relaxed);
    }

    /// When the head being read began, if one is.
    pub fn head_in_progress_since(&self) -> Option<Instant> {
        match self.head_since.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.origin + std::time::Duration::from_millis(ms - 1)),
        }
    }

    /// The facts of the next request in order, if the sniffer saw its head.
    pub fn next(&self) -> Option<FramingFacts> {
        self.facts.lock().ok()?.pop_front()
    }

    pub(crate) fn push(&self, f: FramingFacts) {
        if let Ok(mut q) = self.facts.lock() {
            q.push_back(f);
        }
    }
}

const MAX_HEAD: usize = 256 * 1024;

#[derive(Debug)]
enum State {
    Head,
    Body(u64),
    ChunkSize { line: Vec<u8> },
    ChunkData(u64),
    ChunkDataEnd(u8),
    Trailers { line_len: usize },
    Off,
}

/// A byte-stream wrapper that follows HTTP/1 framing and logs facts per request head.
#[derive(Debug)]
pub struct Sniff<IO> {
    io: IO,
    log: std::sync::Arc<FramingLog>,
    state: State,
    head: Vec<u8>,
    activity: std::sync::Arc<Activity>,
}

impl<IO> Sniff<IO> {
    pub fn new(io: IO, log: std::sync::Arc<FramingLog>) -> Sniff<IO> {
        Sniff {
            io,
            log,
            state: State::Head,
            head: Vec::new(),
            activity: std::sync::Arc::new(Activity::new()),
        }
    }

    /// The connection's activity clock.
    pub fn activity(&self) -> std::sync::Arc<Activity> {
        self.activity.clone()
    }

    /// Stops following (for connections that are not HTTP/1).
    pub fn off(io: IO, log: std::sync::Arc<FramingLog>) -> Sniff<IO> {
        log.head_done();
        Sniff {
            io,
            log,
            state: State::Off,
            head: Vec::new(),
            activity: std::sync::Arc::new(Activity::new()),
        }
    }

    /// Whether HTTP/1 heads are followed on this connection (not [`Sniff::off`], nor given up).
    pub fn follows_heads(&self) -> bool {
        !matches!(self.state, State::Off)
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            match &mut self.state {
                State::Off => {
                    self.log.head_done();
                    return;
                }
                State::Head => {
                    if self.head.is_empty() {
                        // Empty lines before a request line are allowed and ignored.
                        let skip = buf
                            .iter()
                            .take_while(|c| **c == b'\r' || **c == b'\n')
                            .count();
                        buf = &buf[skip..];
                        if buf.is_empty() {
                            return;
                        }
                    }
                    self.log.head_started();
                    let start = self.head.len().saturating_sub(3);
                    self.head.extend_from_slice(buf);
                    // The head ends at an empty line, CRLF or (as hyper also accepts) bare LF.
                    let Some(end) = head_end(&self.head, start) else {
                        if self.head.len() > MAX_HEAD {
                            self.state = State::Off;
                        }
                        return;
                    };
                    let consumed_from_buf = buf.len() - (self.head.len() - end);
                    buf = &buf[consumed_from_buf..];
                    self.log.head_done();
                    self.state = self.on_head(end);
                    // Keep the allocation for the next head.
                    self.head.clear();
                }
                State::Body(n) => {
                    let take = (*n).min(buf.len() as u64);
                    *n -= take;
                    buf = &buf[take as usize..];
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkSize { line } => {
                    let Some(nl) = buf.iter().position(|c| *c == b'\n') else {
                        line.extend_from_slice(buf);
                        if line.len() > 4096 {
                            self.state = State::Off;
                        }
                        return;
                    };
                    line.extend_from_slice(&buf[..nl]);
                    buf = &buf[nl + 1..];
                    let text = std::str::from_utf8(line).unwrap_or("");
                    let size = text
                        .trim_end_matches('\r')
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim();
                    self.state = match u64::from_str_radix(size, 16) {
                        Ok(0) => State::Trailers { line_len: 0 },
                        Ok(n) => State::ChunkData(n),
                        Err(_) => State::Off,
                    };
                }
                State::ChunkData(n) => {
                    let take = (*n).min(buf.len() as u64);
                    *n -= take;
                    buf = &buf[take as usize..];
                    if *n == 0 {
                        self.state = State::ChunkDataEnd(2);
                    }
                }
                State::ChunkDataEnd(left) => {
                    let take = (*left as usize).min(buf.len());
                    *left -= take as u8;
                    buf = &buf[take..];
                    if *left == 0 {
                        self.state = State::ChunkSize { line: Vec::new() };
                    }
                }
                State::Trailers { line_len } => {
                    let c = buf[0];
                    buf = &buf[1..];
                    match c {
                        b'\n' if *line_len == 0 => self.state = State::Head,
                        b'\n' => *line_len = 0,
                        b'\r' => {}
                        _ => *line_len += 1,
                    }
                }
            }
        }
    }

    fn on_head(&self, end: usize) -> State {
        let head = &self.head[..end];
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let bare_lf = head
            .iter()
            .enumerate()
            .any(|(i, c)| *c == b'\n' && (i == 0 || head[i - 1] != b'\r'));
        if let Some(target) = without_framing(head) {
            // No body follows, and nothing asks to leave HTTP/1: the next head comes next.
            self.log.push(FramingFacts {
                length_and_chunked: false,
                bare_lf,
                fragment: target.contains(&b'#'),
            });
            return State::Head;
        }
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return State::Off,
        }
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut upgrade = req.method == Some("CONNECT");
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.trim().parse().ok())
                    .or(Some(0));
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                // An h2c upgrade is ignored: the connection stays HTTP/1.1 and is followed on.
                upgrade |= crate::headers::upgrade_beyond_h2c(h.value);
            }
        }
        self.log.push(FramingFacts {
            length_and_chunked: length.is_some() && chunked,
            bare_lf,
            fragment: req.path.is_some_and(|p| p.contains('#')),
        });
        if upgrade || (length.is_some() && chunked) {
            // hyper closes after an ambiguous request and leaves HTTP/1 after an upgrade.
            return State::Off;
        }
        match (chunked, length) {
            (true, _) => State::ChunkSize { line: Vec::new() },
            (false, Some(n)) if n > 0 => State::Body(n),
            _ => State::Head,
        }
    }
}

/// The request target of a head whose request line is not `CONNECT` and none of whose lines
/// is a `Content-Length`, `Transfer-Encoding` or `Upgrade` field (the commonest head: a
/// request without a body); `None` otherwise, and for anything not plainly a request line
/// and fields, which [`Sniff::on_head`] leaves to the full parse.
fn without_framing(head: &[u8]) -> Option<&[u8]> {
    let mut lines = head.split(|&c| c == b'\n');
    let request = lines.next()?;
    let mut parts = request.split(|&c| c == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    if method.is_empty() || method == b"CONNECT" {
        return None;
    }
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line.iter().position(|&c| c == b':')?;
        let name = &line[..colon];
        if name.is_empty()
            || name[0].is_ascii_whitespace()
            || [&b"content-length"[..], b"transfer-encoding", b"upgrade"]
                .iter()
                .any(|f| name.trim_ascii_end().eq_ignore_ascii_case(f))
        {
            return None;
        }
    }
    Some(target)
}

/// The end of the head (just past its empty line), searching from `from`.
fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = head[i..].iter().position(|c| *c == b'\n') {
        let nl = i + off;
        // An empty line: "\n\n" or "\n\r\n" (the first \n ends the previous line).
        if nl >= 1 && head[nl - 1] == b'\n' {
            return Some(nl + 1);
        }
        if nl >= 2 && head[nl - 1] == b'\r' && head[nl - 2] == b'\n' {
            return Some(nl + 1);
        }
        i = nl + 1;
    }
    None
}

impl<IO: AsyncRead + Unpin> AsyncRead for Sniff<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if res.is_ready() {
            this.activity.touch();
        }
        if let Poll::Ready(Ok(())) = res
            && !matches!(this.state, State::Off)
        {
            this.feed(&buf.filled()[before..]);
        }
        res
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Sniff<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if r.is_ready() {
            this.activity.touch();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            this.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn facts(stream: &[u8], split: usize) -> Vec<FramingFacts> {
        let log = Arc::new(FramingLog::default());
        let mut s = Sniff::new((), log.clone());
        for part in stream.chunks(split.max(1)) {
            s.feed(part);
        }
        std::iter::from_fn(|| log.next()).collect()
    }

    #[test]
    fn follows_pipelined_requests_in_any_split() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for split in [1, 2, 3, 7, 64, stream.len()] {
            let f = facts(stream, split);
            let ambiguous: Vec<bool> = f.iter().map(|f| f.length_and_chunked).collect();
            assert_eq!(ambiguous, vec![false, false, false, true], "split {split}");
        }
    }

    #[test]
    fn bare_lf_heads_are_found_and_flagged() {
        let f = facts(
            b"GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            3,
        );
        let flags: Vec<bool> = f.iter().map(|f| f.bare_lf).collect();
        assert_eq!(flags, vec![true, false]);
    }

    #[test]
    fn heads_without_framing_fields_are_told_apart_without_a_full_parse() {
        let plain = b"GET /a?x=1#frag HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
        assert_eq!(without_framing(plain), Some(&b"/a?x=1#frag"[..]));
        for head in [
            &b"POST / HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 5\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"GET / HTTP/1.1\nUPGRADE: websocket\n\n",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n Content-Length: 5\r\n\r\n",
        ] {
            assert_eq!(
                without_framing(head),
                None,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // What the quick look finds is what the full parse found.
        let f = facts(
            b"GET /a#b HTTP/1.1\nHost: x\n\nGET /c HTTP/1.1\r\nA: b\r\n\r\n",
            4,
        );
        let seen: Vec<(bool, bool, bool)> = f
            .iter()
            .map(|f| (f.length_and_chunked, f.bare_lf, f.fragment))
            .collect();
        assert_eq!(seen, vec![(false, true, true), (false, false, false)]);
    }

    #[test]
    fn stops_on_http2_and_upgrades() {
        assert!(facts(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 5).is_empty());
        let f = facts(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            9,
        );
        assert_eq!(f.len(), 1);
    }
}
