//! The lean HTTP/1.1 exchange with plain backends: the request head (and a buffered body) is
//! written and the response head read on the request's own task, and the response body is
//! read from the socket as the client side asks for it. No connection task, no channel
//! between tasks, no hand-off per request.
//!
//! It takes every request but protocol upgrades and `CONNECT`, which go through hyper's client
//! (`pool.rs`). A body still arriving from the client is written as it comes, with its length
//! when the client gave one and in chunks (which carry its trailers) when not, while the
//! connection is watched for an answer: a backend that refuses the body part-way (413, 401)
//! is heard, and the rest of the body is not sent. Responses are framed strictly
//! (RFC 9112 section 6): `Content-Length` and `Transfer-Encoding` together, differing or
//! malformed lengths, malformed chunks and obs-fold are errors, never guesses; a body that ends
//! with the connection is read to its end and the connection is not kept.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::Body;
use crate::pool::Kept;

/// The largest response head read (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// The most header lines a response head may have (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with extensions) and the largest trailer section.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;
/// How much room each read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// Bodies up to this size are written in one piece with the head.
const INLINE_BODY: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub enum LeanError {
    /// The connection closed (or was reset) before any byte of the response came.
    /// `written` says whether the whole request had been written.
    Closed { written: bool },
    /// A read or write failed after the response had started.
    Io(std::io::Error),
    /// The client's body, being passed on, failed (the client went away, or sent more or
    /// less than it said it would).
    Request(String),
    /// The backend's response broke HTTP/1.1 framing.
    Malformed(&'static str),
    /// No answer within the response timeout of the request's end, or a streamed body the
    /// backend took nothing of for as long.
    TimedOut,
}

impl std::fmt::Display for LeanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeanError::Closed { .. } => f.write_str("the backend closed the connection"),
            LeanError::Io(e) => write!(f, "upstream connection: {e}"),
            LeanError::Malformed(what) => write!(f, "malformed upstream response: {what}"),
            LeanError::Request(why) => write!(f, "the request body could not be passed on: {why}"),
            LeanError::TimedOut => f.write_str("the backend did not answer in time"),
        }
    }
}

impl std::error::Error for LeanError {}

/// One connection to a backend and what has been read from it.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The connection's timer for answers (see [`until`]), made when an answer is first
    /// waited for.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            timer: None,
        }
    }

    /// Whether a kept connection can take a request: nothing arrived on it while it was idle
    /// (neither an end of stream nor stray bytes). Reads only what the reactor already saw.
    pub fn is_quiet(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                self.buf.reserve(64);
                matches!(
                    self.stream.try_read_buf(&mut self.buf),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                )
            }
        }
    }

    /// Reads more into the buffer; `false` at the end of the stream. Through `AsyncRead`: a
    /// read that does not fill the room given shows the socket drained, so the reactor's
    /// readiness is cleared and [`Conn::is_quiet`] needs no system call later.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        self.buf.reserve(READ_CHUNK);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.stream),
            cx,
            &mut self.buf
        ))?;
        Poll::Ready(Ok(n > 0))
    }
}

/// A request ready to be written: its head and body in wire form.
#[derive(Debug)]
pub struct Prepared {
    wire: Vec<u8>,
    /// A body too large to copy behind the head, written after it.
    body: Bytes,
    /// A body written as it arrives (`length` says how it is framed). Taken by the first
    /// exchange, and given back only when nothing of the request went.
    stream: Option<Body>,
    /// The streamed body's length, when known (else it is sent in chunks).
    length: Option<u64>,
    streamed: bool,
    head_request: bool,
    idempotent: bool,
    /// See [`Extra::raw_response`].
    raw_response: bool,
    /// The answer's header lines, when they were kept as they came.
    raw: Option<RawFields>,
}

/// Encodes a request for the lean exchange, or gives it back when it needs hyper's client:
/// a protocol upgrade or `CONNECT`.
#[allow(clippy::result_large_err)]
pub fn prepare(req: Request<Body>, extra: &Extra<'_>) -> Result<Prepared, Request<Body>> {
    use http_body::Body as _;
    if req.headers().contains_key(header::UPGRADE) || req.method() == Method::CONNECT {
        return Err(req);
    }
    let streamed = match req.body() {
        Body::Empty | Body::Buffered { trailers: None, .. } => false,
        // A request without a body passed through (a GET) has nothing to stream.
        Body::Incoming { body, .. } => !body.is_end_stream(),
        // Trailers, or a body still arriving behind its inspected prefix.
        Body::Buffered { .. } | Body::Chained { .. } => true,
        // A response body: never a request's.
        Body::Held { .. } => return Err(req),
    };
    let (parts, body) = req.into_parts();
    let (body, stream, length) = if streamed {
        let length = body.size_hint().exact();
        (Bytes::new(), Some(body), length)
    } else {
        let data = match body {
            Body::Buffered { data, .. } => data.unwrap_or_default(),
            _ => Bytes::new(),
        };
        (data, None, None)
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // Room for the whole head at once (the request's fields at most, the added lines, the
    // framing) and a body small enough to go with it: the head is written without growing.
    let fields: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut wire = Vec::with_capacity(
        96 + parts.method.as_str().len()
            + target.len()
            + extra.host.map_or(0, |h| h.len() + 8)
            + fields
            + extra.lines.len()
            + if body.len() <= INLINE_BODY {
                body.len()
            } else {
                0
            },
    );
    wire.extend_from_slice(parts.method.as_str().as_bytes());
    wire.push(b' ');
    wire.extend_from_slice(target.as_bytes());
    wire.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = extra.host {
        push_fields(&mut wire, std::iter::once((&header::HOST, host)));
    }
    // The framing is the body's own, written below; the fields `extra` brings replace any of
    // the same names.
    push_fields(
        &mut wire,
        parts.headers.iter().filter(|(n, _)| {
            *n != header::CONTENT_LENGTH
                && *n != header::TRANSFER_ENCODING
                && !(extra.host.is_some() && *n == header::HOST)
                && !extra.replaces.contains(n)
        }),
    );
    wire.extend_from_slice(extra.lines);
    match (&stream, length) {
        (Some(_), None) => wire.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (Some(_), Some(n)) => {
            wire.extend_from_slice(b"content-length: ");
            crate::trace::json::number(&mut wire, n);
            wire.extend_from_slice(b"\r\n");
        }
        (None, _) => {
            if !body.is_empty()
                || matches!(parts.method, Method::POST | Method::PUT | Method::PATCH)
            {
                wire.extend_from_slice(b"content-length: ");
                crate::trace::json::number(&mut wire, body.len() as u64);
                wire.extend_from_slice(b"\r\n");
            }
        }
    }
    wire.extend_from_slice(b"\r\n");
    let body = if body.len() <= INLINE_BODY {
        wire.extend_from_slice(&body);
        Bytes::new()
    } else {
        body
    };
    Ok(Prepared {
        wire,
        body,
        stream,
        length,
        streamed,
        head_request: parts.method == Method::HEAD,
        raw_response: extra.raw_response,
        raw: None,
        // RFC 9110 section 9.2.2.
        idempotent: matches!(
            parts.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        ),
    })
}

/// Fields a caller adds to a request's head as [`prepare`] writes it, in place of any the
/// request carries under the same names.
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    /// Written first after the request line, as `host`.
    pub host: Option<&'a HeaderValue>,
    /// Complete `name: value\r\n` lines, written after the request's own fields.
    pub lines: &'a [u8],
    /// The names `lines` holds: the request's own fields of these names are left out.
    pub replaces: &'a [HeaderName],
    /// The answer may keep its header lines as they came ([`RawFields`]) when nothing in
    /// them needs the gateway's attention: for a caller that writes them out itself.
    pub raw_response: bool,
}

impl Extra<'_> {
    /// Nothing added: the request's fields as they are.
    pub const NONE: Extra<'static> = Extra {
        host: None,
        lines: b"",
        replaces: &[],
        raw_response: false,
    };
}

/// Writes header (or trailer) fields as `name: value` lines.
fn push_fields<'h>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl Prepared {
    /// The answer's header lines, when the exchange kept them as they came (asked for with
    /// [`Extra::raw_response`]): the answer's header map then holds none of them.
    pub fn take_raw(&mut self) -> Option<RawFields> {
        self.raw.take()
    }

    /// Whether a failure of a kept connection may be retried on a new one: the request cannot
    /// have been acted on (not all of it was written), or doing it twice is harmless.
    pub fn retryable(&self, e: &LeanError) -> bool {
        let body_started = self.streamed && self.stream.is_none();
        !body_started && matches!(e, LeanError::Closed { written } if !written || self.idempotent)
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the backend closes the connection.
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// A response head: the response, how its body is framed, and whether the connection may be
/// used again after it.
type Head = (Response<()>, Framing, bool);

/// Writes the request and reads the response head. The body stays on the connection, which
/// the returned response's body owns.
pub async fn exchange(
    mut conn: Conn,
    p: &mut Prepared,
    idle: &Arc<Kept<Conn>>,
    wait: std::time::Duration,
    started: std::time::Instant,
) -> Result<Response<LeanBody>, LeanError> {
    let mut sent = Ok(());
    // The answer is due within `wait` of the request's end: a streamed body, which takes as
    // long as the client takes to send it, is not counted against the backend. A request
    // without one ends as it starts (`started`, when the caller began sending it).
    let mut due = tokio::time::Instant::from_std(started) + wait;
    // A buffered body too large to go with its head is written as a streamed one is, the
    // connection watched for an answer meanwhile: a backend that refuses it (413) and then
    // neither reads it nor closes is heard, not waited on until the timeout.
    let upload = match p.stream.take() {
        Some(body) => Some((body, p.length)),
        None if !p.body.is_empty() => Some((Body::full(p.body.clone()), Some(p.body.len() as u64))),
        None => None,
    };
    if let Some((body, length)) = upload {
        // The head goes out with the body's first bytes. Boxed: only requests with a large
        // or streamed body pay for the larger future.
        let mut up = Box::new(Upload::new(Bytes::copy_from_slice(&p.wire), body, length));
        // An answer that came before all of the body was written leaves the connection
        // unused after it: a backend that answered without reading the body could take the
        // rest for a request of its own, and answer it to whichever request came next.
        let streamed = Box::pin(stream_body(&mut conn, &mut up, p.head_request, wait)).await;
        due = tokio::time::Instant::now() + wait;
        match streamed {
            Ok(Sent::All(None)) => {}
            Ok(Sent::All(Some((res, framing, _)))) => {
                return Ok(answered(conn, res, framing, false, None, idle));
            }
            // Refused part-way, or no longer taken after the answer: the rest is not sent,
            // and the connection is not used again.
            Ok(Sent::Cut((res, framing, _))) => {
                return Ok(answered(conn, res, framing, false, None, idle));
            }
            // Answered while it reads: the rest of the body is written as the answer is read.
            Ok(Sent::Early((res, framing, _))) => {
                return Ok(answered(conn, res, framing, false, Some(up), idle));
            }
            Err(Streaming::Write(e)) => {
                if p.streamed && !up.pulled && up.written == 0 {
                    // Nothing of the request went, nothing of the body was taken: it may be
                    // sent again on another connection. (A buffered body is still held.)
                    p.stream = Some(std::mem::take(&mut up.body));
                }
                sent = Err(e);
            }
            Err(Streaming::Failed(e)) => return Err(e),
        }
    } else {
        let mut timer = conn.timer.take();
        sent = until(&mut timer, due, conn.stream.write_all(&p.wire))
            .await
            .ok_or(LeanError::TimedOut)?;
        conn.timer = timer;
    }
    // A backend may answer before it has taken the whole request (413 for a body over its
    // limit) and close. Its answer is read before the failed write counts: the connection
    // is closed, or reset, behind the bytes it sent.
    let cut_short = match sent {
        Ok(()) => false,
        Err(e) => match closed(e, false) {
            LeanError::Closed { .. } => true,
            other => return Err(other),
        },
    };
    let mut timer = conn.timer.take();
    let raw = p.raw_response.then_some(&mut p.raw);
    let (res, framing, keep) = until(
        &mut timer,
        due,
        answer_head(&mut conn, p.head_request, raw, cut_short),
    )
    .await
    .ok_or(LeanError::TimedOut)??;
    conn.timer = timer;
    // Not all of the request was written: the connection is not used again.
    Ok(answered(conn, res, framing, keep && !cut_short, None, idle))
}

/// `fut`'s output, or `None` when `due` came first. The wait is kept on `timer`, one per
/// connection: registered with the runtime once and moved only when it fires before the
/// answer it waits for is due (each answer is due no sooner than the one before it), rather
/// than made, registered and dropped for every request. A future ready at once never
/// touches it.
async fn until<F: Future>(
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    due: tokio::time::Instant,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if t.deadline() > due {
            t.as_mut().reset(due);
        }
        loop {
            ready!(t.as_mut().poll(cx));
            if t.deadline() >= due {
                return Poll::Ready(None);
            }
            t.as_mut().reset(due);
        }
    })
    .await
}

/// Reads the response head off the connection (what the backend said before a failed write
/// included, `cut_short`).
async fn answer_head(
    conn: &mut Conn,
    head_request: bool,
    mut raw: Option<&mut Option<RawFields>>,
    cut_short: bool,
) -> Result<Head, LeanError> {
    let mut received = false;
    loop {
        if !conn.buf.is_empty() {
            received = true;
            if let Some(head) = parse_head(&mut conn.buf, head_request, raw.as_deref_mut())? {
                return Ok(head);
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(LeanError::Malformed("response head too large"));
            }
        }
        conn.buf.reserve(READ_CHUNK);
        let read = conn.stream.read_buf(&mut conn.buf).await;
        if cut_short && conn.buf.is_empty() {
            // Nothing was said before the connection went: the write's failure stands.
            return Err(LeanError::Closed { written: false });
        }
        match read {
            Ok(0) if received => return Err(LeanError::Malformed("connection closed in the head")),
            Ok(0) => return Err(LeanError::Closed { written: true }),
            Ok(_) => {}
            Err(e) if received => return Err(LeanError::Io(e)),
            Err(e) => return Err(closed(e, true)),
        }
    }
}

/// A connection that went away: `Closed` (the request may be retried by the rule in
/// [`Prepared::retryable`]); any other failure as it is.
fn closed(e: std::io::Error, written: bool) -> LeanError {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::UnexpectedEof => LeanError::Closed { written },
        _ => LeanError::Io(e),
    }
}

/// The response whose head was read, its body left on the connection (with the rest of a
/// streamed request body to write as it is read, when the backend answered early).
fn answered<T>(
    conn: Conn,
    res: Response<T>,
    framing: Framing,
    keep: bool,
    upload: Option<Box<Upload>>,
    idle: &Arc<Kept<Conn>>,
) -> Response<LeanBody> {
    let mut body = LeanBody {
        conn: Some(conn),
        framing,
        keep,
        idle: idle.clone(),
        upload,
    };
    if framing == Framing::Length(0) {
        body.finish();
    }
    res.map(|_| body)
}

/// How writing a streamed body failed.
enum Streaming {
    /// A write failed: what the backend said before it went is still to be read.
    Write(std::io::Error),
    Failed(LeanError),
}

/// How writing a streamed body ended.
enum Sent {
    /// All of it was written; the answer, if it came meanwhile.
    All(Option<Head>),
    /// The backend refused it (400 or above), or stopped taking it after it answered: the
    /// rest is not sent.
    Cut(Head),
    /// The backend answered with success before taking all of it: the rest is written while
    /// the answer is read ([`LeanBody`]).
    Early(Head),
}

/// How much of a streamed body is gathered before it is written, and in how many pieces:
/// frames that are ready together go out in one write.
const GATHER: usize = 64 * 1024;
const MAX_PIECES: usize = 64;
/// Chunks smaller than this are copied into one piece with their framing.
const SMALL_CHUNK: usize = 1024;

/// A streamed request body on its way to the backend: the client's frames, framed for the
/// wire (with their length, or in chunks), and what of them is still to be written.
#[derive(Debug)]
struct Upload {
    body: Body,
    /// What is still to be written, in order: the request head first, then the body.
    pieces: std::collections::VecDeque<Bytes>,
    /// Bytes in `pieces`.
    queued: usize,
    chunked: bool,
    /// Bytes still owed under the body's `Content-Length`.
    owed: u64,
    /// The client's body is over (its last piece may still be queued).
    finished: bool,
    /// A frame was taken from the client's body: the request can no longer be sent again.
    pulled: bool,
    /// Bytes written so far.
    written: u64,
}

impl Upload {
    fn new(head: Bytes, body: Body, length: Option<u64>) -> Upload {
        Upload {
            body,
            queued: head.len(),
            pieces: std::collections::VecDeque::from([head]),
            chunked: length.is_none(),
            owed: length.unwrap_or(0),
            finished: false,
            pulled: false,
            written: 0,
        }
    }

    fn done(&self) -> bool {
        self.finished && self.pieces.is_empty()
    }

    /// Whether to take another frame before writing what is queued.
    fn gathering(&self) -> bool {
        !self.finished && self.queued < GATHER && self.pieces.len() + 3 <= MAX_PIECES
    }

    fn queue(&mut self, piece: Bytes) {
        self.queued += piece.len();
        self.pieces.push_back(piece);
    }

    /// Frames one frame of the client's body for the wire.
    fn take(
        &mut self,
        frame: Option<Result<Frame<Bytes>, crate::body::BoxError>>,
    ) -> Result<(), LeanError> {
        self.pulled = true;
        let frame = match frame {
            None => return self.end(None),
            Some(Err(e)) => return Err(LeanError::Request(e.to_string())),
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) if self.chunked => {
                let mut hex = [0u8; 16];
                let digits = crate::headers::chunk_size(data.len(), &mut hex);
                if data.len() < SMALL_CHUNK {
                    let mut piece = Vec::with_capacity(digits.len() + data.len() + 4);
                    piece.extend_from_slice(digits);
                    piece.extend_from_slice(b"\r\n");
                    piece.extend_from_slice(&data);
                    piece.extend_from_slice(b"\r\n");
                    self.queue(piece.into());
                } else {
                    let mut size = Vec::with_capacity(digits.len() + 2);
                    size.extend_from_slice(digits);
                    size.extend_from_slice(b"\r\n");
                    self.queue(size.into());
                    self.queue(data);
                    self.queue(Bytes::from_static(b"\r\n"));
                }
            }
            Ok(data) => {
                let n = data.len() as u64;
                if n > self.owed {
                    return Err(LeanError::Request(
                        "the body is longer than its Content-Length".into(),
                    ));
                }
                self.owed -= n;
                self.queue(data);
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return self.end(Some(&trailers));
                }
            }
        }
        Ok(())
    }

    /// The client's body is over, with its trailers if it had some. A body sent with its
    /// length has no place for them on HTTP/1.1 (RFC 9112 section 7.1.2): they go only with
    /// chunks. (Fields that may not be passed on in trailers were removed by the body,
    /// `crate::body::Body`.)
    fn end(&mut self, trailers: Option<&HeaderMap>) -> Result<(), LeanError> {
        self.finished = true;
        if self.chunked {
            let mut last = b"0\r\n".to_vec();
            push_fields(&mut last, trailers.into_iter().flatten());
            last.extend_from_slice(b"\r\n");
            self.queue(last.into());
        } else if self.owed > 0 {
            return Err(LeanError::Request(format!(
                "the body ended {} bytes short",
                self.owed
            )));
        }
        Ok(())
    }

    /// `n` bytes of the queue were written.
    fn wrote(&mut self, mut n: usize) {
        self.written += n as u64;
        self.queued -= n.min(self.queued);
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let k = n.min(front.len());
            front.advance(k);
            n -= k;
            if front.is_empty() {
                self.pieces.pop_front();
            }
        }
    }

    fn slices(&self) -> Vec<std::io::IoSlice<'_>> {
        self.pieces
            .iter()
            .take(MAX_PIECES)
            .map(|p| std::io::IoSlice::new(p))
            .collect()
    }

    /// Writes as much of the queue as the socket takes now, in one call.
    fn write_now(&mut self, stream: &TcpStream) -> std::io::Result<()> {
        match stream.try_write_vectored(&self.slices()) {
            Ok(n) => {
                self.wrote(n);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes the rest as the client sends it, while the answer is read: ready when all of
    /// it was written.
    fn poll_drive(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), LeanError>> {
        use tokio::io::AsyncWrite;
        loop {
            if !self.pieces.is_empty() {
                let slices = self.slices();
                match Pin::new(&mut *stream).poll_write_vectored(cx, &slices) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(LeanError::Io(
                            std::io::ErrorKind::WriteZero.into(),
                        )));
                    }
                    Poll::Ready(Ok(n)) => {
                        drop(slices);
                        self.wrote(n);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(LeanError::Io(e))),
                    Poll::Pending => return Poll::Pending,
                }
            } else if self.finished {
                return Poll::Ready(Ok(()));
            } else {
                let frame = ready!(http_body::Body::poll_frame(Pin::new(&mut self.body), cx));
                if let Err(e) = self.take(frame) {
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

/// How long the rest of a request's body may take once the backend's answer is over.
const UPLOAD_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes the rest of a request's body after the backend's answer ended, for a backend that
/// answered before it read all of it; bounded, then the connection is closed.
async fn finish_upload(mut conn: Conn, mut up: Box<Upload>) {
    let drive = std::future::poll_fn(|cx| up.poll_drive(&mut conn.stream, cx));
    if let Ok(Err(e)) | Err(e) = tokio::time::timeout(UPLOAD_GRACE, drive)
        .await
        .map_err(|_| LeanError::Request("not taken in time".into()))
    {
        tracing::debug!(error = %e, "the rest of a request body was not written");
    }
}

/// Writes the request head and a streamed body as the client sends it, and reads what the
/// backend says meanwhile. An answer of 400 or above stops the body (RFC 9112 section 9.3:
/// the backend does not want it). An earlier success with a body is returned at once, the
/// rest of the request to be written as that body is read, for backends that answer while
/// they read (an echo, a transform); one without a body lets the request go on to its end
/// here. Interim answers such as `100 Continue` are passed over.
async fn stream_body(
    conn: &mut Conn,
    up: &mut Upload,
    head_request: bool,
    wait: std::time::Duration,
) -> Result<Sent, Streaming> {
    use http_body_util::BodyExt;
    // An answer without a body, heard while the request is still being written.
    let mut heard: Option<Head> = None;
    // A backend that takes nothing of what is ready for it for `wait` has stopped reading;
    // a client that is slow to send is not the backend's doing, and is not timed here.
    let stall = tokio::time::sleep(wait);
    tokio::pin!(stall);
    let mut written = up.written;
    loop {
        if up.done() {
            return Ok(Sent::All(heard));
        }
        if up.pieces.is_empty() || up.written != written {
            written = up.written;
            stall.as_mut().reset(tokio::time::Instant::now() + wait);
        }
        let listening = heard.is_none();
        let step = tokio::select! {
            biased;
            ready = conn.stream.readable(), if listening => match ready {
                Ok(()) => hear(conn, head_request),
                Err(e) => Err(Streaming::Write(e)),
            },
            frame = up.body.frame(), if up.gathering() => {
                up.take(frame).map(|()| None).map_err(Streaming::Failed)
            }
            ready = conn.stream.writable(), if !up.pieces.is_empty() => match ready {
                Ok(()) => up.write_now(&conn.stream).map(|()| None).map_err(Streaming::Write),
                Err(e) => Err(Streaming::Write(e)),
            },
            () = &mut stall, if !up.pieces.is_empty() => Err(Streaming::Failed(LeanError::TimedOut)),
            else => Err(Streaming::Failed(LeanError::Request(
                "nothing left to write or read".into(),
            ))),
        };
        match step {
            Ok(None) => {}
            Ok(Some(head)) if head.0.status().as_u16() >= 400 => return Ok(Sent::Cut(head)),
            Ok(Some(head)) if head.1 == Framing::Length(0) => heard = Some(head),
            Ok(Some(head)) => return Ok(Sent::Early(head)),
            // The backend answered and then stopped taking the body: its answer stands.
            Err(Streaming::Write(e)) => {
                return match heard.take() {
                    Some(head) => Ok(Sent::Cut(head)),
                    None => Err(Streaming::Write(e)),
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads what the backend sent while the body is being written: the answer's head once it
/// is all there (interim answers are passed over).
fn hear(conn: &mut Conn, head_request: bool) -> Result<Option<Head>, Streaming> {
    conn.buf.reserve(READ_CHUNK);
    match conn.stream.try_read_buf(&mut conn.buf) {
        // Closed without an answer: the body's write has failed, and the read after it
        // tells the rest.
        Ok(0) => return Err(Streaming::Write(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(Streaming::Write(e)),
    }
    let head = parse_head(&mut conn.buf, head_request, None).map_err(Streaming::Failed)?;
    if head.is_none() && conn.buf.len() >= MAX_HEAD {
        return Err(Streaming::Failed(LeanError::Malformed(
            "response head too large",
        )));
    }
    Ok(head)
}

/// Parses a response head at the start of `buf` (skipping interim 1xx responses), removing
/// it from `buf`. `None` when more bytes are needed.
///
/// With `raw`, the header lines are kept as they came ([`RawFields`]), put there rather than
/// in the response's map, when none of them needs the gateway's attention (see
/// [`RawFields::take`]). They are not moved with the response.
fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    raw: Option<&mut Option<RawFields>>,
) -> Result<Option<Head>, LeanError> {
    loop {
        // Where each name and value lies in the head, kept while the parser borrows `buf`.
        let mut spans = Spans::new();
        let (len, code, version) = {
            let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut res = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut res,
                buf,
                &mut headers,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(LeanError::Malformed("too many header lines"));
                }
                Err(_) => return Err(LeanError::Malformed("response head")),
            };
            header_spans(buf, res.headers, &mut spans);
            (len, res.code.unwrap_or(0), res.version.unwrap_or(1))
        };
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(LeanError::Malformed(
                    "101 to a request that asked for no upgrade",
                ));
            }
            // Interim responses (100 Continue, 103 Early Hints) are not passed on.
            buf.advance(len);
            continue;
        }
        let head = buf.split_to(len).freeze();
        if let Some(slot) = raw
            && !head_request
            && version == 1
            && !matches!(code, 204 | 304)
            && let Some(taken) = RawFields::take(&head, &spans)
        {
            let status = StatusCode::from_u16(code).map_err(|_| LeanError::Malformed("status"))?;
            let framing = Framing::Length(taken.fields.length);
            *slot = Some(taken.fields);
            let mut res = Response::new(());
            *res.status_mut() = status;
            return Ok(Some((res, framing, !taken.close)));
        }
        // Room for the headers the gateway adds to the response, so the map does not grow.
        let mut headers = HeaderMap::with_capacity(spans.len() + 4);
        // A `Connection` line of nothing but `keep-alive` or `close` is read here and not
        // kept: it is hop-by-hop, names no other header to drop, and all it says is whether
        // the connection is reused.
        let mut close = false;
        // Which of the headers framing and reuse depend on are there, so that the map is not
        // searched for those that are not.
        let (mut has_te, mut has_cl, mut has_connection) = (false, false, false);
        for &(n0, n1, v0, v1) in &spans {
            let raw = &head[n0 as usize..n1 as usize];
            if raw.eq_ignore_ascii_case(b"connection")
                && let Some(closes) = connection_options(&head[v0 as usize..v1 as usize])
            {
                close |= closes;
                continue;
            }
            let name = crate::headers::name_from_bytes(raw)
                .map_err(|_| LeanError::Malformed("header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(v0 as usize..v1 as usize))
                .map_err(|_| LeanError::Malformed("header value"))?;
            has_te |= name == header::TRANSFER_ENCODING;
            has_cl |= name == header::CONTENT_LENGTH;
            has_connection |= name == header::CONNECTION;
            headers.append(name, value);
        }
        let status = StatusCode::from_u16(code).map_err(|_| LeanError::Malformed("status"))?;
        let version = if version == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let framing = if head_request || code == 204 || code == 304 {
            Framing::Length(0)
        } else if has_te || has_cl {
            framing(&headers, has_te)?
        } else {
            Framing::Close
        };
        let keep = version == Version::HTTP_11
            && framing != Framing::Close
            && !close
            && !(has_connection && has_token(&headers, header::CONNECTION, "close"));
        let mut res = Response::new(());
        *res.status_mut() = status;
        *res.version_mut() = version;
        *res.headers_mut() = headers;
        return Ok(Some((res, framing, keep)));
    }
}

/// A backend's response header lines passed on as they came: the names and values the parser
/// checked, written out again with the names in lower case and in the order a header map
/// gives them (all lines of a name where its first one was), without a header map built for
/// them and encoded again. Taken only where no line needs the gateway's attention; the
/// gateway's own fields go after them ([`RawFields::add`]), and the response's header map
/// stays empty.
#[derive(Debug, Clone)]
pub struct RawFields {
    head: Bytes,
    /// Where each line's name and value lie in `head`, in the order they are written.
    lines: smallvec::SmallVec<[Line; 10]>,
    /// The body's length, which one of the lines states (`Content-Length`).
    length: u64,
    /// One of the lines is `Date`.
    has_date: bool,
    /// The gateway's own fields ([`RawFields::add`]), as `name: value\r\n` lines.
    own: smallvec::SmallVec<[u8; 128]>,
}

/// Where a kept line's name and value lie in its head (start and end of each): a head kept
/// this way is at most 64 KiB.
type Line = (u16, u16, u16, u16);

/// What [`RawFields::take`] found.
struct Taken {
    fields: RawFields,
    /// `Connection: close` was among the lines (which is read, not kept).
    close: bool,
}

impl RawFields {
    /// The lines of `head` at `spans`, if none of them needs the gateway's attention and one
    /// `Content-Length` states a length above zero: a hop-by-hop field other than a
    /// `Connection` of only `close` or `keep-alive` (which is read and left out), a field the
    /// gateway strips from answers (`domicile-*`, a name with `_`), `Transfer-Encoding`, or a
    /// length stated twice, as a list or as zero, leave the head to the header map, which
    /// handles them.
    fn take(head: &Bytes, spans: &Spans) -> Option<Taken> {
        if head.len() > usize::from(u16::MAX) {
            return None;
        }
        let mut lines: smallvec::SmallVec<[Line; 10]> = smallvec::SmallVec::new();
        let mut length = None;
        let (mut close, mut has_date) = (false, false);
        let name_of = |&(n0, n1, _, _): &Line| &head[usize::from(n0)..usize::from(n1)];
        for &(n0, n1, v0, v1) in spans {
            // Within the head's 64 KiB: none is cut.
            let span = (n0 as u16, n1 as u16, v0 as u16, v1 as u16);
            let name = name_of(&span);
            let value = &head[usize::from(span.2)..usize::from(span.3)];
            if name.eq_ignore_ascii_case(b"connection") {
                close |= connection_options(value)?;
                continue;
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                if length.is_some() {
                    return None;
                }
                length = Some(crate::headers::length_digits(value.trim_ascii())?);
            } else if crate::headers::needs_attention_in_answer(name) {
                return None;
            }
            has_date |= name.eq_ignore_ascii_case(b"date");
            // After the first line of its name, if there is one: a header map keeps a name's
            // values together, where its first one came.
            let at = lines
                .iter()
                .rposition(|l| name_of(l).eq_ignore_ascii_case(name))
                .map_or(lines.len(), |i| i + 1);
            lines.insert(at, span);
        }
        let length = length.filter(|&n| n > 0)?;
        Some(Taken {
            fields: RawFields {
                head: head.clone(),
                lines,
                length,
                has_date,
                own: smallvec::SmallVec::new(),
            },
            close,
        })
    }

    /// Adds a field of the gateway's own (`domicile-*`, which the kept lines never hold),
    /// written after the backend's.
    pub fn add(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.own.extend_from_slice(name.as_str().as_bytes());
        self.own.extend_from_slice(b": ");
        self.own.extend_from_slice(value.as_bytes());
        self.own.extend_from_slice(b"\r\n");
    }

    /// The body's length, as the lines state it.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Whether one of the lines is `Date`.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// Writes the lines as `name: value\r\n`, each name in lower case.
    pub fn write(&self, out: &mut Vec<u8>) {
        for &(n0, n1, v0, v1) in &self.lines {
            let at = out.len();
            out.extend_from_slice(&self.head[usize::from(n0)..usize::from(n1)]);
            out[at..].make_ascii_lowercase();
            out.extend_from_slice(b": ");
            out.extend_from_slice(&self.head[usize::from(v0)..usize::from(v1)]);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.own);
    }

    /// Appends the lines to `h` as header values, for a writer that takes only a header map
    /// (and before the gateway changes any of them).
    pub fn into_map(self, h: &mut HeaderMap) {
        for &(n0, n1, v0, v1) in &self.lines {
            // The parser checked both as a header map checks them: neither fails.
            let name =
                crate::headers::name_from_bytes(&self.head[usize::from(n0)..usize::from(n1)]);
            let value =
                HeaderValue::from_maybe_shared(self.head.slice(usize::from(v0)..usize::from(v1)));
            if let (Ok(name), Ok(value)) = (name, value) {
                h.append(name, value);
            }
        }
        // The gateway's own, written by `add` from a name and a value: each splits back.
        for line in self.own.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(at) = line.windows(2).position(|w| w == b": ") else {
                continue;
            };
            let name = HeaderName::from_bytes(&line[..at]);
            let value = HeaderValue::from_bytes(&line[at + 2..]);
            if let (Ok(name), Ok(value)) = (name, value) {
                h.append(name, value);
            }
        }
    }
}

/// Adds to `spans` where each parsed header's name and value lie in `buf` (start and end
/// offsets), so that the parser's borrow of `buf` can end before the head is split off it.
pub(crate) fn header_spans(buf: &[u8], headers: &[httparse::Header<'_>], spans: &mut Spans) {
    let base = buf.as_ptr() as usize;
    for h in headers {
        let n = h.name.as_ptr() as usize - base;
        let v = h.value.as_ptr() as usize - base;
        spans.push((
            n as u32,
            (n + h.name.len()) as u32,
            v as u32,
            (v + h.value.len()) as u32,
        ));
    }
}

/// Where each header's name and value lie in a head: start and end offsets of each. Held
/// in place for as many lines as the parser takes, and not filled in beforehand.
pub(crate) type Spans = smallvec::SmallVec<[(u32, u32, u32, u32); MAX_HEADERS]>;

/// The body's framing from its headers (RFC 9112 section 6.3); `has_te` says whether they
/// include a `Transfer-Encoding`.
fn framing(headers: &HeaderMap, has_te: bool) -> Result<Framing, LeanError> {
    if has_te {
        let te = headers.get_all(header::TRANSFER_ENCODING);
        if headers.contains_key(header::CONTENT_LENGTH) {
            // A smuggling vector: refused rather than resolved.
            return Err(LeanError::Malformed(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        let mut codings = Vec::new();
        for v in te {
            let v = v
                .to_str()
                .map_err(|_| LeanError::Malformed("Transfer-Encoding"))?;
            codings.extend(v.split(',').map(str::trim).filter(|c| !c.is_empty()));
        }
        // Transfer codings are hop-by-hop: one other than chunked would reach the client
        // still applied, with nothing left to say so. Refused, as the gateway undoes none.
        return match codings.as_slice() {
            [c] if c.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked(Chunk::Size)),
            _ => Err(LeanError::Malformed("a transfer coding other than chunked")),
        };
    }
    let mut length: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = crate::headers::length_digits(part.trim_ascii())
                .ok_or(LeanError::Malformed("Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(LeanError::Malformed("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// Whether a comma-separated header lists `token` (case-insensitive).
/// For a `Connection` value of only the options `keep-alive` and `close` (any case, any
/// spacing, empty items allowed), whether it says `close`; `None` for any other value.
fn connection_options(v: &[u8]) -> Option<bool> {
    let mut close = false;
    for t in v.split(|&c| c == b',') {
        let t = t.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !t.is_empty() && !t.eq_ignore_ascii_case(b"keep-alive") {
            return None;
        }
    }
    Some(close)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| crate::headers::lists_token(v.as_bytes(), token.as_bytes()))
}

/// A response body read from the backend's connection as it is polled. Read to its end, the
/// connection goes back to the idle list (when the response allows); dropped early, the
/// connection is closed.
#[derive(Debug)]
pub struct LeanBody {
    conn: Option<Conn>,
    framing: Framing,
    keep: bool,
    idle: Arc<Kept<Conn>>,
    /// The rest of a streamed request body, written as this answer is read.
    upload: Option<Box<Upload>>,
}

impl LeanBody {
    /// The body is over: the connection is kept if the response allows it and nothing
    /// unexpected follows.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(up) = self.upload.take() {
            // The answer is over before the request's body: the rest of it is written in the
            // background (for a backend that still reads it), then the connection is closed.
            if let Some(conn) = self.conn.take() {
                tokio::spawn(finish_upload(conn, up));
            }
            return;
        }
        if let Some(conn) = self.conn.take()
            && self.keep
            && conn.buf.is_empty()
        {
            self.idle.checkin(conn);
        }
    }

    fn fail(&mut self, e: LeanError) -> Poll<Option<Result<Frame<Bytes>, LeanError>>> {
        self.framing = Framing::Done;
        self.conn = None;
        self.upload = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for LeanBody {
    type Data = Bytes;
    type Error = LeanError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, LeanError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(up) = this.upload.as_mut() {
                match up.poll_drive(&mut conn.stream, cx) {
                    Poll::Ready(Ok(())) => this.upload = None,
                    // The backend stopped taking the body, or the client's failed: the answer
                    // goes on, and the connection is not used again.
                    Poll::Ready(Err(_)) => {
                        this.upload = None;
                        this.keep = false;
                    }
                    Poll::Pending => {}
                }
            }
            // Whether the buffered bytes are enough for the next step; if not, read more.
            let need_more = match this.framing {
                Framing::Done | Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(rem) | Framing::Chunked(Chunk::Data(rem)) => {
                    if conn.buf.is_empty() {
                        true
                    } else {
                        let n = rem.min(conn.buf.len() as u64);
                        let data = conn.buf.split_to(n as usize).freeze();
                        let left = rem - n;
                        match this.framing {
                            Framing::Length(_) => {
                                this.framing = Framing::Length(left);
                                if left == 0 {
                                    this.finish();
                                }
                            }
                            _ => {
                                this.framing = Framing::Chunked(if left == 0 {
                                    Chunk::DataEnd
                                } else {
                                    Chunk::Data(left)
                                });
                            }
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Close => {
                    if conn.buf.is_empty() {
                        true
                    } else {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(Chunk::Size) => match chunk_size(&conn.buf) {
                    Ok(Some((line, 0))) => {
                        conn.buf.advance(line);
                        this.framing = Framing::Chunked(Chunk::Trailers);
                        false
                    }
                    Ok(Some((line, size))) => {
                        conn.buf.advance(line);
                        this.framing = Framing::Chunked(Chunk::Data(size));
                        false
                    }
                    Ok(None) => true,
                    Err(e) => return this.fail(e),
                },
                Framing::Chunked(Chunk::DataEnd) => {
                    if conn.buf.len() < 2 {
                        true
                    } else if conn.buf.starts_with(b"\r\n") {
                        conn.buf.advance(2);
                        this.framing = Framing::Chunked(Chunk::Size);
                        false
                    } else {
                        return this.fail(LeanError::Malformed("chunk not ended by CRLF"));
                    }
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if conn.buf.starts_with(b"\r\n") {
                        conn.buf.advance(2);
                        this.finish();
                        return Poll::Ready(None);
                    }
                    match trailers(&conn.buf) {
                        Ok(Some((len, map))) => {
                            conn.buf.advance(len);
                            this.finish();
                            return Poll::Ready(Some(Ok(Frame::trailers(map))));
                        }
                        Ok(None) if conn.buf.len() > MAX_TRAILERS => {
                            return this.fail(LeanError::Malformed("trailers too large"));
                        }
                        Ok(None) => true,
                        Err(e) => return this.fail(e),
                    }
                }
            };
            if need_more {
                match conn.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(true)) => {}
                    Poll::Ready(Ok(false)) if this.framing == Framing::Close => {
                        // Closed: whatever of the request is left cannot go.
                        this.upload = None;
                        this.keep = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(false)) => {
                        return this.fail(LeanError::Malformed(
                            "connection closed before the end of the body",
                        ));
                    }
                    Poll::Ready(Err(e)) => return this.fail(LeanError::Io(e)),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.framing == Framing::Length(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A complete chunk-size line at the start of `buf`: its length with the CRLF, and the size.
fn chunk_size(buf: &[u8]) -> Result<Option<(usize, u64)>, LeanError> {
    let Some(lf) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_CHUNK_LINE {
            Err(LeanError::Malformed("chunk-size line too long"))
        } else {
            Ok(None)
        };
    };
    let line = match buf[..lf].strip_suffix(b"\r") {
        Some(l) => l,
        None => return Err(LeanError::Malformed("chunk-size line not ended by CRLF")),
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(LeanError::Malformed("chunk size"));
    }
    // After the size only extensions may follow (`;name=value`, ignored).
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(LeanError::Malformed("chunk size"));
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (n << 4) | u64::from(v)
    });
    Ok(Some((lf + 1, size)))
}

/// A complete trailer section at the start of `buf` (ended by an empty line).
fn trailers(buf: &[u8]) -> Result<Option<(usize, HeaderMap)>, LeanError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((len, parsed))) => {
            let mut map = HeaderMap::with_capacity(parsed.len());
            for h in parsed {
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| LeanError::Malformed("trailer name"))?;
                let value = HeaderValue::from_bytes(h.value)
                    .map_err(|_| LeanError::Malformed("trailer value"))?;
                map.append(name, value);
            }
            Ok(Some((len, map)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(LeanError::Malformed("trailers")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pool::{H1Pool, SendError};
    use http_body_util::BodyExt;
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;

    type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

    /// Reads from `s` into `buf` until it holds a whole request head; where the head ends,
    /// or `None` when the client went away first.
    async fn read_head(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(p + 4);
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A backend on a port of its own that serves each connection with `serve`, in a task of
    /// its own; counts the connections.
    pub(crate) async fn each_connection<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = conns.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s));
            }
        });
        (addr, conns)
    }

    /// A backend that answers each request (head plus `content-length` body) with the next
    /// scripted response, closing the connection after those marked so. Records every request
    /// as received and counts connections.
    async fn scripted(script: Vec<(&'static [u8], bool)>) -> (SocketAddr, Seen, Arc<AtomicUsize>) {
        let seen: Seen = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let seen2 = seen.clone();
        let (addr, conns) = each_connection(move |mut s| {
            let (script, seen) = (script.clone(), seen2.clone());
            async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(head_end) = read_head(&mut s, &mut buf).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < head_end + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(buf.drain(..head_end + len).collect());
                    let next = script.lock().unwrap().next();
                    let Some((answer, close)) = next else { return };
                    // A client that left stops the answer.
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    if close {
                        return;
                    }
                }
            }
        })
        .await;
        (addr, seen, conns)
    }

    fn request(method: Method, body: Body) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri("/items/1?x=2")
            .header("host", "backend")
            .header("content-length", "999")
            .body(body)
            .unwrap()
    }

    // The request given back is the caller's own, as from `prepare`.
    #[allow(clippy::result_large_err)]
    fn prepare_plain(req: Request<Body>) -> Result<Prepared, Request<Body>> {
        prepare(req, &Extra::NONE)
    }

    #[test]
    fn added_fields_replace_the_requests_own() {
        let mut req = request(Method::GET, Body::Empty);
        let h = req.headers_mut();
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-other", HeaderValue::from_static("kept"));
        let host = HeaderValue::from_static("origin.example:8080");
        let replaces = [HeaderName::from_static("x-forwarded-for")];
        let extra = Extra {
            host: Some(&host),
            lines: b"x-forwarded-for: 203.0.113.9, 10.0.0.1, 127.0.0.1\r\n",
            replaces: &replaces,
            raw_response: false,
        };
        let p = prepare(req, &extra).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&p.wire),
            "GET /items/1?x=2 HTTP/1.1\r\nhost: origin.example:8080\r\naccept: */*\r\n\
             x-other: kept\r\nx-forwarded-for: 203.0.113.9, 10.0.0.1, 127.0.0.1\r\n\r\n"
        );
        // Without a host of its own, the request's Host line stays where it was.
        let p = prepare_plain(request(Method::GET, Body::Empty)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&p.wire),
            "GET /items/1?x=2 HTTP/1.1\r\nhost: backend\r\n\r\n"
        );
    }

    /// The status, the body and the trailers of a response, read to the end.
    async fn read(
        p: &H1Pool,
        req: Request<Body>,
    ) -> Result<(u16, String, Option<HeaderMap>), String> {
        let res = p.send(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let collected = res.into_body().collect().await.map_err(|e| e.to_string())?;
        let trailers = collected.trailers().cloned();
        let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
        Ok((status, body, trailers))
    }

    #[tokio::test]
    async fn requests_are_written_with_their_own_length() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (addr, seen, conns) = scripted(vec![(ok, false), (ok, false), (ok, false)]).await;
        let p = H1Pool::for_test(addr);
        let get = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!(get, (200, "ok".into(), None));
        let post = read(&p, request(Method::POST, Body::full("{\"a\":1}")))
            .await
            .unwrap();
        assert_eq!(post.1, "ok");
        let big = "x".repeat(INLINE_BODY + 10);
        read(&p, request(Method::PUT, Body::full(big.clone())))
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&seen[0]),
            "GET /items/1?x=2 HTTP/1.1\r\nhost: backend\r\n\r\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&seen[1]),
            "POST /items/1?x=2 HTTP/1.1\r\nhost: backend\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
        assert!(seen[2].ends_with(big.as_bytes()));
        assert!(
            String::from_utf8_lossy(&seen[2])
                .contains(&format!("content-length: {}\r\n", big.len()))
        );
        // All three on one kept connection.
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded_with_their_trailers() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 42\r\n\r\n";
        let plain: &[u8] =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        let (addr, _, conns) = scripted(vec![(chunked, false), (plain, false)]).await;
        let p = H1Pool::for_test(addr);
        let (status, body, trailers) = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "hello world"));
        assert_eq!(trailers.unwrap()["x-checksum"], "42");
        let (_, body, trailers) = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!((body.as_str(), trailers), ("0123456789", None));
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_without_length_ends_with_the_connection() {
        let close: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end";
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (addr, _, conns) = scripted(vec![(close, true), (ok, false)]).await;
        let p = H1Pool::for_test(addr);
        let (_, body, _) = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!(body, "until the end");
        let (_, body, _) = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!(body, "ok");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn head_204_and_interim_responses_carry_no_body() {
        let head: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        let none: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        let interim: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\nnew";
        let (addr, _, conns) = scripted(vec![(head, false), (none, false), (interim, false)]).await;
        let p = H1Pool::for_test(addr);
        let res = read(&p, request(Method::HEAD, Body::Empty)).await.unwrap();
        assert_eq!(res, (200, String::new(), None));
        let res = read(&p, request(Method::DELETE, Body::Empty))
            .await
            .unwrap();
        assert_eq!(res, (204, String::new(), None));
        let res = read(&p, request(Method::POST, Body::full("abc")))
            .await
            .unwrap();
        assert_eq!(res, (201, "new".into(), None));
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn ambiguous_or_broken_framing_is_an_error() {
        for (answer, error) in [
            (
                &b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
                "malformed upstream response: both Content-Length and Transfer-Encoding",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
                "malformed upstream response: differing Content-Length values",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc",
                "malformed upstream response: Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip, chunked\r\n\r\n",
                "malformed upstream response: a transfer coding other than chunked",
            ),
            // Codings the gateway does not undo would reach the client still applied, with
            // nothing to say so once the hop-by-hop field is gone.
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                "malformed upstream response: a transfer coding other than chunked",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\nconnection: close\r\n\r\n",
                "malformed upstream response: a transfer coding other than chunked",
            ),
            (
                b"HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\ncontent-length: 0\r\n\r\n",
                "malformed upstream response: response head",
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
                "malformed upstream response: 101 to a request that asked for no upgrade",
            ),
        ] {
            let (addr, _, _) = scripted(vec![(answer, true)]).await;
            let err = read(&H1Pool::for_test(addr), request(Method::GET, Body::Empty))
                .await
                .unwrap_err();
            assert_eq!(err, error);
        }
        // Broken chunks fail the body, not the head.
        for answer in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        ] {
            let (addr, _, _) = scripted(vec![(answer, true)]).await;
            let err = read(&H1Pool::for_test(addr), request(Method::GET, Body::Empty))
                .await
                .unwrap_err();
            assert!(err.starts_with("malformed upstream response: "), "{err}");
        }
    }

    #[tokio::test]
    async fn large_bodies_arrive_over_many_reads() {
        // 300 KiB with a length, then the same in uneven chunks: both span many reads.
        let data: Vec<u8> = (0..300 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let mut fixed =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", data.len()).into_bytes();
        fixed.extend_from_slice(&data);
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for piece in data.chunks(7_777) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let fixed: &'static [u8] = Box::leak(fixed.into_boxed_slice());
        let chunked: &'static [u8] = Box::leak(chunked.into_boxed_slice());
        let (addr, _, conns) = scripted(vec![(fixed, false), (chunked, false)]).await;
        let p = H1Pool::for_test(addr);
        let want = String::from_utf8(data).unwrap();
        for _ in 0..2 {
            let (status, body, _) = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
            assert_eq!(status, 200);
            assert!(body == want, "a body of {} bytes differs", body.len());
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_left_unread_does_not_give_its_connection_back() {
        let mut big = b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n".to_vec();
        big.resize(big.len() + 200_000, b'x');
        let big: &'static [u8] = Box::leak(big.into_boxed_slice());
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (addr, _, conns) = scripted(vec![(big, false), (ok, false)]).await;
        let p = H1Pool::for_test(addr);
        let res = p.send(request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!(res.status(), 200);
        // The client went away: the rest of the body is never read.
        drop(res);
        let (_, body, _) = read(&p, request(Method::GET, Body::Empty)).await.unwrap();
        assert_eq!(body, "ok");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    /// [`parse_head`] of a whole head, the kept lines (asked for with `raw`) as its body.
    fn parsed(
        buf: &mut BytesMut,
        head_request: bool,
        raw: bool,
    ) -> (Response<Option<RawFields>>, Framing, bool) {
        let mut kept = None;
        let (res, framing, keep) = parse_head(buf, head_request, raw.then_some(&mut kept))
            .unwrap()
            .unwrap();
        (res.map(|()| kept), framing, keep)
    }

    #[test]
    fn an_answer_whose_lines_need_nothing_keeps_them_as_they_came() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 201 Created\r\nServer: edge\r\nVary: Accept\r\nDate: x\r\n\
               Content-Length: 2\r\nVARY: Origin\r\nConnection: Keep-Alive\r\n\r\nok"[..],
        );
        let (res, framing, keep) = parsed(&mut buf, false, true);
        assert_eq!(&buf[..], b"ok");
        assert_eq!(
            (res.status(), framing, keep),
            (StatusCode::CREATED, Framing::Length(2), true)
        );
        // Nothing in the map: the gateway's own fields go there.
        assert!(res.headers().is_empty());
        let raw = res.into_body().expect("kept as they came");
        assert!(raw.has_date());
        assert_eq!(raw.length(), 2);
        let mut out = Vec::new();
        raw.write(&mut out);
        // Lower case; a name's lines together where its first came; `Connection` read and
        // left out.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "server: edge\r\nvary: Accept\r\nvary: Origin\r\ndate: x\r\ncontent-length: 2\r\n"
        );
        // The gateway's own go after them, and into a map with them.
        let mut raw = raw;
        raw.add(
            &HeaderName::from_static("domicile-region"),
            &HeaderValue::from_static("eu-central"),
        );
        let mut out = Vec::new();
        raw.write(&mut out);
        assert!(
            out.ends_with(b"content-length: 2\r\ndomicile-region: eu-central\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        // As header values, the same fields in the same order.
        let mut h = HeaderMap::new();
        raw.into_map(&mut h);
        let fields: Vec<(&str, &str)> = h
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("server", "edge"),
                ("vary", "Accept"),
                ("vary", "Origin"),
                ("date", "x"),
                ("content-length", "2"),
                ("domicile-region", "eu-central")
            ]
        );
        // `close` is heard.
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n"[..],
        );
        let (res, _, keep) = parsed(&mut buf, false, true);
        assert!(res.body().is_some() && !keep);
    }

    #[test]
    fn an_answer_with_a_line_that_needs_the_gateway_goes_through_the_map() {
        let cases: [(&str, &str); 13] = [
            ("no length", "HTTP/1.1 200 OK\r\nserver: a\r\n\r\n"),
            (
                "a zero length",
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            ),
            (
                "a length twice",
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n",
            ),
            (
                "a length list",
                "HTTP/1.1 200 OK\r\ncontent-length: 1, 1\r\n\r\n",
            ),
            (
                "chunked",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
            (
                "a hop-by-hop field",
                "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\ncontent-length: 1\r\n\r\n",
            ),
            (
                "a trailer",
                "HTTP/1.1 200 OK\r\ntrailer: x\r\ncontent-length: 1\r\n\r\n",
            ),
            (
                "a proxy field",
                "HTTP/1.1 200 OK\r\nProxy-Authenticate: x\r\ncontent-length: 1\r\n\r\n",
            ),
            (
                "the gateway's own",
                "HTTP/1.1 200 OK\r\nDomicile-Region: x\r\ncontent-length: 1\r\n\r\n",
            ),
            (
                "a name with _",
                "HTTP/1.1 200 OK\r\nx_real_ip: x\r\ncontent-length: 1\r\n\r\n",
            ),
            (
                "a named field",
                "HTTP/1.1 200 OK\r\nconnection: x-a\r\ncontent-length: 1\r\n\r\n",
            ),
            ("HTTP/1.0", "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n"),
            (
                "no content",
                "HTTP/1.1 204 No Content\r\ncontent-length: 1\r\n\r\n",
            ),
        ];
        for (why, head) in cases {
            let mut buf = BytesMut::from(head.as_bytes());
            let (res, _, _) = parsed(&mut buf, false, true);
            assert!(res.body().is_none(), "{why}");
        }
        // An answer to HEAD, and a caller that did not ask.
        for (head_request, raw) in [(true, true), (false, false)] {
            let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n"[..]);
            let (res, _, _) = parsed(&mut buf, head_request, raw);
            assert!(res.body().is_none());
            assert_eq!(res.headers()[header::CONTENT_LENGTH], "1");
        }
    }

    #[test]
    fn connection_options_are_read_and_other_tokens_left_to_the_map() {
        let head = |conn: &str| {
            let raw = format!("HTTP/1.1 200 OK\r\nconnection: {conn}\r\ncontent-length: 0\r\n\r\n");
            let mut buf = BytesMut::from(raw.as_bytes());
            let (res, _, keep) = parsed(&mut buf, false, false);
            (
                res.headers().get_all(header::CONNECTION).iter().count(),
                keep,
            )
        };
        assert_eq!(head("keep-alive"), (0, true));
        assert_eq!(head("Keep-Alive , CLOSE"), (0, false));
        assert_eq!(head("close,"), (0, false));
        // A header named in `Connection` stays for the hop-by-hop strip to drop with it.
        assert_eq!(head("keep-alive, x-hop"), (1, true));
        assert_eq!(head("x-hop, close"), (1, false));
        assert_eq!(connection_options(b""), Some(false));
        assert_eq!(connection_options(b"upgrade"), None);
    }

    #[tokio::test]
    async fn a_connection_that_closes_is_not_kept() {
        let closing: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
        let old: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (addr, _, conns) = scripted(vec![(closing, false), (old, false), (ok, false)]).await;
        let p = H1Pool::for_test(addr);
        for _ in 0..3 {
            assert_eq!(
                read(&p, request(Method::GET, Body::Empty)).await.unwrap().1,
                "ok"
            );
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_kept_connection_closed_under_a_request_is_retried_only_when_safe() {
        // The backend answers once, then closes the kept connection on the next request
        // without answering it; a new connection is answered again.
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let hang_up: &[u8] = b"";
        for (method, retried) in [(Method::GET, true), (Method::POST, false)] {
            let (addr, seen, conns) =
                scripted(vec![(ok, false), (hang_up, true), (ok, false)]).await;
            let p = H1Pool::for_test(addr);
            let body = || {
                if method == Method::POST {
                    Body::full("x")
                } else {
                    Body::Empty
                }
            };
            assert_eq!(
                read(&p, request(method.clone(), body())).await.unwrap().1,
                "ok"
            );
            let second = read(&p, request(method.clone(), body())).await;
            if retried {
                assert_eq!(second.unwrap().1, "ok");
                assert_eq!(conns.load(Ordering::SeqCst), 2);
                assert_eq!(seen.lock().unwrap().len(), 3);
            } else {
                // It may have been acted on: never sent twice.
                assert_eq!(second.unwrap_err(), "the backend closed the connection");
                assert_eq!(conns.load(Ordering::SeqCst), 1);
                assert_eq!(seen.lock().unwrap().len(), 2);
            }
        }
    }

    #[tokio::test]
    async fn a_streamed_body_is_not_sent_again_once_it_was_taken() {
        // PUT may be done twice, but a streamed body cannot be read twice: a kept connection
        // that closes under it fails the request rather than sending a part of it again.
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let hang_up: &[u8] = b"";
        let (addr, seen, conns) = scripted(vec![(ok, false), (hang_up, true), (ok, false)]).await;
        let p = H1Pool::for_test(addr);
        let get = read(&p, request(Method::GET, Body::Empty)).await;
        assert_eq!(get.unwrap().1, "ok");
        let mut put = request(Method::PUT, with_trailers(b"x"));
        put.headers_mut().remove(header::CONTENT_LENGTH);
        let put = read(&p, put).await;
        assert_eq!(put.unwrap_err(), "the backend closed the connection");
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_answer_before_the_whole_body_was_taken_is_passed_on() {
        // The backend reads the head, refuses the body with 413 and closes without reading
        // it, as servers do for a body over their limit. The body is far larger than the
        // socket buffers, so writing it fails once the backend has gone.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    if read_head(&mut s, &mut Vec::new()).await.is_none() {
                        return;
                    }
                    let refuse = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo much";
                    let _ = s.write_all(refuse).await;
                    // Closed with the body unread: the kernel resets the connection.
                });
            }
        });
        let p = H1Pool::for_test(addr);
        for _ in 0..3 {
            let big = Body::full(vec![b'x'; 16 << 20]);
            let res = read(&p, request(Method::POST, big)).await;
            assert_eq!(res, Ok((413, "too much".to_owned(), None)));
        }
    }

    #[tokio::test]
    async fn the_retry_rule_and_what_is_left_to_hyper() {
        let post = prepare_plain(request(Method::POST, Body::full("x"))).unwrap();
        let get = prepare_plain(request(Method::GET, Body::Empty)).unwrap();
        let unsent = LeanError::Closed { written: false };
        let sent = LeanError::Closed { written: true };
        assert!(post.retryable(&unsent));
        assert!(!post.retryable(&sent));
        assert!(get.retryable(&sent));
        assert!(!get.retryable(&LeanError::Malformed("x")));
        // A streamed body may be sent again only while none of it was taken.
        let mut put = prepare_plain(request(Method::PUT, with_trailers(b"x"))).unwrap();
        assert!(put.retryable(&sent));
        put.stream.take();
        assert!(!put.retryable(&unsent));
        // Upgrades and CONNECT are left to hyper's client.
        let mut upgrade = request(Method::GET, Body::Empty);
        upgrade
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(prepare_plain(upgrade).is_err());
        assert!(prepare_plain(request(Method::CONNECT, Body::Empty)).is_err());
    }

    /// A body with trailers, three of which may not be passed on: streamed, so in chunks.
    fn with_trailers(data: &[u8]) -> Body {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("1"));
        // Not passed on: they would frame, route or authenticate the message.
        trailers.insert("content-length", HeaderValue::from_static("0"));
        trailers.insert("authorization", HeaderValue::from_static("Basic eDp5"));
        trailers.insert("host", HeaderValue::from_static("elsewhere"));
        Body::Buffered {
            data: Some(Bytes::copy_from_slice(data)),
            trailers: Some(trailers),
        }
    }

    /// A backend that reads one chunked request to its end, answering `early` as soon as it
    /// has the head (if given) and `last` once it has the whole body; sends what it read.
    async fn chunk_reader(
        early: Option<&'static [u8]>,
        last: Option<&'static [u8]>,
    ) -> (SocketAddr, tokio::sync::oneshot::Receiver<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let Some(head_end) = read_head(&mut s, &mut buf).await else {
                return;
            };
            if let Some(e) = early {
                s.write_all(e).await.unwrap();
            }
            let mut chunk = vec![0u8; 64 * 1024];
            // The last chunk, possibly with trailers, then the blank line.
            // (Looked for near the end only: the last chunk and trailers are short.)
            let over = |b: &[u8]| {
                let tail = &b[head_end.max(b.len().saturating_sub(64))..];
                b.ends_with(b"\r\n\r\n") && tail.windows(5).any(|w| w == b"\r\n0\r\n")
            };
            while !over(&buf) {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            if let Some(l) = last {
                let _ = s.write_all(l).await;
            }
            let _ = tx.send(buf);
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn bodies_with_trailers_are_sent_in_chunks_with_them() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (addr, seen) = chunk_reader(None, Some(ok)).await;
        let p = H1Pool::for_test(addr);
        let got = read(&p, request(Method::POST, with_trailers(b"hello"))).await;
        assert_eq!(got, Ok((200, "ok".into(), None)));
        assert_eq!(
            String::from_utf8_lossy(&seen.await.unwrap()),
            "POST /items/1?x=2 HTTP/1.1\r\nhost: backend\r\ntransfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n"
        );
        // No trailers left: the last chunk alone ends the body.
        let (addr, seen) = chunk_reader(None, Some(ok)).await;
        let p = H1Pool::for_test(addr);
        let empty = Body::Buffered {
            data: Some(Bytes::from_static(b"hi")),
            trailers: Some(HeaderMap::new()),
        };
        let got = read(&p, request(Method::PUT, empty)).await;
        assert_eq!(got, Ok((200, "ok".into(), None)));
        assert_eq!(
            String::from_utf8_lossy(&seen.await.unwrap()),
            "PUT /items/1?x=2 HTTP/1.1\r\nhost: backend\r\ntransfer-encoding: chunked\r\n\r\n\
             2\r\nhi\r\n0\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn interim_and_early_successful_answers_let_a_streamed_body_go_on() {
        // Far more than the sockets hold, so the answers come while the body is written.
        let big = vec![b'x'; 8 << 20];
        let want = 8 << 20;
        let cont: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        for (early, last) in [(Some(cont), Some(ok)), (Some(ok), None)] {
            let (addr, seen) = chunk_reader(early, last).await;
            let p = H1Pool::for_test(addr);
            let got = read(&p, request(Method::POST, with_trailers(&big))).await;
            assert_eq!(got, Ok((200, "ok".into(), None)));
            let seen = seen.await.unwrap();
            // The whole body reached the backend, in its chunks, with its trailers.
            let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let (mut rest, mut data) = (&seen[head_end..], 0);
            loop {
                let line = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = std::str::from_utf8(&rest[..line]).unwrap();
                let size = usize::from_str_radix(size, 16).unwrap();
                rest = &rest[line + 2..];
                if size == 0 {
                    break;
                }
                assert!(rest[..size].iter().all(|&c| c == b'x'));
                assert_eq!(&rest[size..size + 2], b"\r\n");
                data += size;
                rest = &rest[size + 2..];
            }
            assert_eq!(data, want);
            assert_eq!(rest, b"x-sum: 1\r\n\r\n");
        }
    }

    #[tokio::test]
    async fn a_connection_answered_before_its_request_was_written_is_not_kept() {
        // The backend answers on the head with half of its body, reads all of the request,
        // then sends the rest: the request is all written before the answer ends, and still
        // the connection is not used again (the backend could have taken the body for a
        // request of its own).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            read_head(&mut s, &mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok")
                .await
                .unwrap();
            let mut chunk = vec![0u8; 64 * 1024];
            while !buf.ends_with(b"x-sum: 1\r\n\r\n") {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the body did not reach its end");
                buf.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"ok").await.unwrap();
            // Open until the gateway's side goes.
            let _ = s.read(&mut chunk).await;
        });
        let p = H1Pool::for_test(addr);
        let got = read(
            &p,
            request(Method::POST, with_trailers(&vec![b'x'; 8 << 20])),
        )
        .await;
        assert_eq!(got, Ok((200, "okok".into(), None)));
        assert!(p.lean_idle.checkout(|_| crate::pool::Fit::Take).is_none());
    }

    #[tokio::test]
    async fn a_backend_that_stops_taking_a_streamed_body_times_out() {
        // The backend reads nothing and says nothing: once the sockets are full, nothing of
        // the body moves for the response timeout, and the request fails as timed out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        });
        let wait = std::time::Duration::from_millis(300);
        let one_s = std::time::Duration::from_secs(1);
        let p = H1Pool::new(&addr.ip().to_string(), addr.port(), one_s, wait, one_s, 8);
        let started = std::time::Instant::now();
        let got = send_big(&p, 10).await;
        assert_eq!(got.unwrap_err(), "the backend did not answer in time");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_kept_connections_timer_serves_each_answer_to_its_own_due_time() {
        // One connection, three requests: answered at once, after 150 ms, after 900 ms, with
        // a response timeout of 300 ms. The connection's timer, set for the first answer,
        // fires while it is idle; the second answer, due 300 ms after its own request, is
        // still waited for, and the third times out 300 ms after its request, not sooner.
        let (addr, conns) = each_connection(|mut s| async move {
            for delay in [0, 150, 900] {
                let mut buf = Vec::new();
                if read_head(&mut s, &mut buf).await.is_none() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if s.write_all(answer).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let wait = std::time::Duration::from_millis(300);
        let one_s = std::time::Duration::from_secs(1);
        let p = H1Pool::new(&addr.ip().to_string(), addr.port(), one_s, wait, one_s, 8);
        let get = || async {
            let req = Request::get("/")
                .header("host", "b")
                .body(Body::Empty)
                .unwrap();
            let started = std::time::Instant::now();
            let got = match p.send(req).await {
                Ok(res) => Ok(res.into_body().collect().await.unwrap().to_bytes()),
                Err(e) => Err(e.to_string()),
            };
            (got, started.elapsed())
        };
        let (first, _) = get().await;
        assert_eq!(first.unwrap(), "ok");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let (second, _) = get().await;
        assert_eq!(second.unwrap(), "ok");
        let (third, took) = get().await;
        assert_eq!(third.unwrap_err(), "the backend did not answer in time");
        assert!(took >= std::time::Duration::from_millis(290), "{took:?}");
        assert!(took < std::time::Duration::from_millis(850), "{took:?}");
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    /// What a backend that has answered does next.
    #[derive(Clone, Copy)]
    enum Then {
        /// Reads a little of the body and closes, most of it unread.
        ReadSomeAndClose,
        /// Neither reads nor closes until the returned sender is dropped or used.
        Hold,
    }

    /// A backend that sends `answer` as soon as it has a request's head, then does `then`.
    async fn answers_on_head(
        answer: &'static [u8],
        then: Then,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            if read_head(&mut s, &mut Vec::new()).await.is_none() {
                return;
            }
            s.write_all(answer).await.unwrap();
            match then {
                Then::ReadSomeAndClose => {
                    let mut chunk = vec![0u8; 64 * 1024];
                    let _ = s.read(&mut chunk).await;
                }
                Then::Hold => {
                    let _ = rx.await;
                }
            }
        });
        (addr, tx)
    }

    /// Sends a 16 MiB streamed body (far more than the sockets hold) and reads the answer,
    /// within `secs` seconds.
    async fn send_big(p: &H1Pool, secs: u64) -> Result<(u16, String, Option<HeaderMap>), String> {
        send_within(p, with_trailers(&vec![b'x'; 16 << 20]), secs).await
    }

    /// POSTs `body` and reads the answer, within `secs` seconds.
    async fn send_within(
        p: &H1Pool,
        body: Body,
        secs: u64,
    ) -> Result<(u16, String, Option<HeaderMap>), String> {
        tokio::time::timeout(
            std::time::Duration::from_secs(secs),
            read(p, request(Method::POST, body)),
        )
        .await
        .map_err(|_| "no answer in time".to_owned())?
    }

    #[tokio::test]
    async fn an_early_success_stands_when_the_backend_then_stops_reading() {
        // The backend answers on the head, reads a little of the body and closes: the rest of
        // the body cannot be written, and the answer it gave is passed on. An answer with a
        // body is returned at once; one without is held while the body is written, and
        // stands when the write fails.
        let with_body: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let without: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        for (answer, want) in [(with_body, (200, "ok")), (without, (201, ""))] {
            let (addr, _hold) = answers_on_head(answer, Then::ReadSomeAndClose).await;
            let p = H1Pool::for_test(addr);
            let got = send_big(&p, 10).await;
            assert_eq!(got, Ok((want.0, want.1.into(), None)));
            assert!(p.lean_idle.checkout(|_| crate::pool::Fit::Take).is_none());
        }
    }

    #[tokio::test]
    async fn an_answer_over_before_the_body_is_not_held_for_it() {
        // The backend answers in full on the head and then neither reads nor closes: the
        // answer reaches the client at once, whatever becomes of the rest of the body.
        let ok = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok";
        let (addr, hold) = answers_on_head(ok, Then::Hold).await;
        let p = H1Pool::for_test(addr);
        assert_eq!(send_big(&p, 5).await, Ok((202, "ok".into(), None)));
        assert!(p.lean_idle.checkout(|_| crate::pool::Fit::Take).is_none());
        let _ = hold.send(());
    }

    #[tokio::test]
    async fn a_body_refused_part_way_stops_and_the_answer_is_heard() {
        // The backend refuses after the head and keeps the connection open without reading:
        // the answer must be heard while the body is still being written, for a streamed
        // body and for a buffered one too large to go with its head, not a timeout once the
        // sockets are full.
        let refuse = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\n\r\ntoo much";
        let big = vec![b'x'; 16 << 20];
        for body in [with_trailers(&big), Body::full(big.clone())] {
            let (addr, hold) = answers_on_head(refuse, Then::Hold).await;
            let p = H1Pool::for_test(addr);
            let got = send_within(&p, body, 10).await;
            assert_eq!(got, Ok((413, "too much".into(), None)));
            // Cut short: the connection is not kept.
            assert!(p.lean_idle.checkout(|_| crate::pool::Fit::Take).is_none());
            let _ = hold.send(());
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_still_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = H1Pool::for_test(addr)
            .send(request(Method::GET, Body::Empty))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err}");
    }
}
