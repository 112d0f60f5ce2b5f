//! The lean HTTP/1.1 server path for plain (non-TLS) connections: the request head is read and
//! parsed, the request called and its response written, all on the connection's own task, with
//! no per-request machinery beyond that.
//!
//! It takes the common request only: a complete HTTP/1.1 head in origin form, no
//! `Transfer-Encoding`, `Upgrade` or `Expect`, not `CONNECT`, and either no body or one whose
//! every byte (by its single `Content-Length`) arrived with the head. At the first request it
//! does not take (another version, an upgrade, a chunked or still-arriving body, a head that
//! is partial, malformed or too large), the connection is handed, with every byte read so far,
//! to the general path ([`crate::server`], hyper), which serves it from then on. A request is
//! never half taken: the hand-off happens before anything of it is acted on.
//!
//! Responses are written as hyper writes them (the same framing rules, `Date`, `Connection:
//! close` when the connection ends after it, trailers only to a client that sent `TE:
//! trailers` and only the fields the `Trailer` header names), so a client cannot tell the two
//! paths apart. Timeouts are those of the general path: the first head within the header-read
//! timeout, the idle timeout between requests and while nothing moves, the send timeout for a
//! client that takes nothing of its response; a client that closes its side while its request
//! is in flight ends the request, as hyper does.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

use crate::body::Body;
use crate::context::{ConnInfo, Received};
use crate::framing::FramingFacts;
use crate::server::ConnSettings;

/// The most header lines a request head may have here (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// How much room each read asks for.
const READ_CHUNK: usize = 8 * 1024;
/// Bytes of a next request read ahead while one is in flight; past this, reading waits.
const READ_AHEAD: usize = 64 * 1024;
/// Response data up to this size is copied next to the head and written with it.
const COALESCE: usize = 4 * 1024;
/// Pending response bytes are written once they reach this much.
const FLUSH_AT: usize = 16 * 1024;

/// What became of a connection on the lean path.
pub(crate) enum Ended {
    /// Closed here (by either side, a timeout, or shutdown).
    Closed,
    /// Handed to the general path with the bytes read and not yet used.
    HandOff(TcpStream, BytesMut),
}

/// A request head taken by the lean path, and what its response depends on.
struct Taken {
    req: Request<Body>,
    head_request: bool,
    /// The client asked to close after this response (`Connection: close`).
    close: bool,
    /// The client accepts trailers (`TE: trailers`).
    trailers: bool,
    /// When the request was taken (the pipeline reads the same instant).
    started: Instant,
}

/// Serves `stream` on the lean path until it closes or is handed off.
pub(crate) async fn serve<S>(
    mut stream: TcpStream,
    info: Arc<ConnInfo>,
    svc: &mut S,
    settings: &ConnSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended
where
    S: Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    let timeouts = &settings.timeouts;
    let max_head = settings.limits.max_header_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut spare = http::Extensions::new();
    if *shutdown.borrow() {
        return Ended::Closed;
    }
    // Waited on between requests only; a request in flight reads the flag when its response
    // is ready, which is all that shutdown changes for it (`Connection: close`).
    let flag = shutdown.clone();
    let changed = shutdown.changed();
    tokio::pin!(changed);
    // One timer for the connection, moved back only when it fires early: the deadline it
    // serves is kept in `deadline`, and moves on every request at no cost unless it comes
    // sooner than the timer. The first head is due within the header-read timeout.
    let mut deadline = Instant::now() + timeouts.header_read.min(timeouts.idle);
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    // On the general path a connection on which nothing moves is closed after the idle
    // timeout and dropped after a second one: a response that stops moving (a client not
    // reading, a body not coming) gets the same, and the send timeout when that is sooner.
    let quiet = timeouts.idle.saturating_mul(2);
    let stall = Stall {
        send: timeouts.send.min(quiet),
        quiet,
    };
    loop {
        // A complete head: what is buffered (pipelined), or one read.
        if buf.is_empty() {
            loop {
                if buf.capacity() < READ_CHUNK {
                    buf.reserve(READ_CHUNK);
                }
                tokio::select! {
                    biased;
                    r = stream.read_buf(&mut buf) => match r {
                        Ok(0) | Err(_) => return Ended::Closed,
                        Ok(_) => break,
                    },
                    _ = &mut changed => return Ended::Closed,
                    () = &mut timer => {
                        if Instant::now() >= deadline {
                            return Ended::Closed;
                        }
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        }
        let Some(taken) = take(&mut buf, &info, max_head, std::mem::take(&mut spare)) else {
            return Ended::HandOff(stream, buf);
        };
        let Taken {
            req,
            head_request,
            close,
            trailers,
            started,
        } = taken;

        // The call, while watching the client: a client that closes its side ends the request.
        if std::future::poll_fn(|cx| svc.poll_ready(cx)).await.is_err() {
            return Ended::Closed;
        }
        let fut = svc.call(req);
        tokio::pin!(fut);
        deadline = started + timeouts.idle;
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        let mut stalled = false;
        let res = loop {
            tokio::select! {
                biased;
                res = &mut fut => match res {
                    Ok(res) => break res,
                    Err(never) => match never {},
                },
                r = stream.read_buf(&mut buf), if buf.len() < READ_AHEAD => match r {
                    Ok(0) | Err(_) => {
                        tracing::debug!("the client closed its connection with a request in flight");
                        return Ended::Closed;
                    }
                    Ok(_) => {}
                },
                () = &mut timer => {
                    let now = Instant::now();
                    if now < deadline {
                        timer.as_mut().reset(deadline);
                    } else if stalled {
                        tracing::debug!("nothing moved on a closing connection; dropping it");
                        return Ended::Closed;
                    } else {
                        // As on the general path: the response may still come, on a
                        // connection that then closes; nothing more for as long drops it.
                        stalled = true;
                        deadline = now + timeouts.idle;
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        };
        let keep = !(close || stalled || *flag.borrow());
        let (mut parts, body) = res.into_parts();
        let Some(enc) = encode_head(&parts, &body, head_request, keep, trailers, &mut out) else {
            // A response hyper would also refuse to write (contradictory lengths).
            tracing::warn!("a response with contradictory framing was not sent");
            return Ended::Closed;
        };
        let keep = enc.keep;
        if write_body(&mut stream, &mut out, body, enc, stall)
            .await
            .is_err()
        {
            return Ended::Closed;
        }
        // The response's extensions, emptied, hold the next request's: the map's allocation
        // is made once per connection, not once per request.
        spare = std::mem::take(&mut parts.extensions);
        spare.clear();
        if !keep {
            let _ = stream.shutdown().await;
            return Ended::Closed;
        }
        deadline = Instant::now() + timeouts.idle;
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
    }
}

/// Takes the request at the start of `buf` if the lean path serves it; `None` leaves `buf`
/// as it was, for the general path.
///
/// The request gets `extensions` (an emptied map, whose allocation it reuses).
fn take(
    buf: &mut BytesMut,
    info: &Arc<ConnInfo>,
    max_head: usize,
    extensions: http::Extensions,
) -> Option<Taken> {
    // Where each name and value lies in the head, kept while the parser borrows `buf`.
    let mut spans = crate::lean::Spans::new();
    let (len, method, path) = {
        let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            buf,
            &mut headers,
        );
        let Ok(httparse::Status::Complete(len)) = parsed else {
            return None;
        };
        if len > max_head || req.version != Some(1) {
            return None;
        }
        let (method, path) = (req.method?, req.path?);
        if method == "CONNECT" || !path.starts_with('/') {
            return None;
        }
        crate::lean::header_spans(buf, req.headers, &mut spans);
        let base = buf.as_ptr() as usize;
        let m = method.as_ptr() as usize - base;
        let p = path.as_ptr() as usize - base;
        (len, (m, m + method.len()), (p, p + path.len()))
    };
    let head_bytes = &buf[..len];
    let mut length: Option<usize> = None;
    let mut close = false;
    let mut trailers = false;
    for &(n0, n1, v0, v1) in &spans {
        let name = &head_bytes[n0 as usize..n1 as usize];
        let value = &head_bytes[v0 as usize..v1 as usize];
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if length.is_some() {
                    return None;
                }
                length = Some(usize::try_from(crate::headers::length_digits(value)?).ok()?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return None,
            7 if name.eq_ignore_ascii_case(b"upgrade") => return None,
            6 if name.eq_ignore_ascii_case(b"expect") => return None,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                close |= crate::headers::lists_token(value, b"close")
            }
            2 if name.eq_ignore_ascii_case(b"te") => {
                trailers |= crate::headers::lists_token(value, b"trailers")
            }
            _ => {}
        }
    }
    let body_len = length.unwrap_or(0);
    if buf.len() - len < body_len {
        return None;
    }
    let bare_lf =
        memchr::memchr_iter(b'\n', head_bytes).any(|i| i == 0 || head_bytes[i - 1] != b'\r');
    let head = buf.split_to(len).freeze();
    let built = (|| {
        let method = Method::from_bytes(&head[method.0..method.1]).ok()?;
        let uri = Uri::from_maybe_shared(head.slice(path.0..path.1)).ok()?;
        // Room for the headers the gateway adds upstream, so the map does not grow.
        let mut headers = HeaderMap::with_capacity(spans.len() + 6);
        for &(n0, n1, v0, v1) in &spans {
            let name = crate::headers::name_from_bytes(&head[n0 as usize..n1 as usize]).ok()?;
            let value =
                HeaderValue::from_maybe_shared(head.slice(v0 as usize..v1 as usize)).ok()?;
            headers.append(name, value);
        }
        Some((method, uri, headers))
    })();
    let Some((method, uri, headers)) = built else {
        // Left whole for the general path, which answers it as it answers any such head.
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return None;
    };
    let fragment = memchr::memchr(b'#', &head[path.0..path.1]).is_some();
    let body = if body_len == 0 {
        Body::Empty
    } else {
        Body::full(buf.split_to(body_len).freeze())
    };
    let head_request = method == Method::HEAD;
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    *req.extensions_mut() = extensions;
    let mut received = Received::now(info.clone());
    received.framing = Some(FramingFacts {
        length_and_chunked: false,
        bare_lf,
        fragment,
    });
    let started = Instant::from_std(received.started);
    req.extensions_mut().insert(received);
    Some(Taken {
        req,
        head_request,
        close,
        trailers,
        started,
    })
}

/// How a response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Exactly this many bytes (none for `HEAD`, 204 and 304).
    Length(u64),
    Chunked,
}

struct Encoded {
    framing: Framing,
    /// The connection is kept after this response.
    keep: bool,
    /// The `Trailer` header's names, when trailers may be sent.
    trailer_names: Option<Vec<HeaderName>>,
}

/// Writes the status line and headers into `out` (cleared first), as hyper's server does.
/// `None` for a response with contradictory `Content-Length` values.
fn encode_head(
    parts: &http::response::Parts,
    body: &Body,
    head_request: bool,
    mut keep: bool,
    te_trailers: bool,
    out: &mut Vec<u8>,
) -> Option<Encoded> {
    out.clear();
    let status = parts.status;
    // What the body says of its length: none (ended), known, or unknown.
    let length = if body.is_end_stream() {
        None
    } else {
        Some(body.size_hint().exact())
    };
    let informational = status.is_informational();
    let no_content = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let can_have_length = !informational && !no_content;
    let can_chunk = !head_request && can_have_length;

    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A backend's lines passed on as they came go first, where the header map's would.
    let raw = parts
        .extensions
        .get::<crate::context::Summary>()
        .and_then(|s| s.raw.as_ref());
    if let Some(raw) = raw {
        raw.write(out);
    }
    // A `close` in the response's own `Connection` ends the connection too.
    let connection = parts.headers.get_all(header::CONNECTION);
    let says_close = connection
        .iter()
        .any(|v| crate::headers::lists_token(v.as_bytes(), b"close"));
    keep &= !says_close;
    let mut framing = None;
    let mut wrote_date = false;
    if let Some(raw) = raw {
        // Its `Content-Length` line is among them, and is the body's (the lean client reads
        // the body by it).
        wrote_date = raw.has_date();
        framing = Some(Framing::Length(raw.length()));
    }
    let mut wrote_connection = false;
    let mut trailer_names: Option<Vec<HeaderName>> = None;
    // Names whose values go on one line, joined with commas, as hyper writes them.
    let mut joined: Option<HeaderName> = None;
    for (name, value) in &parts.headers {
        if joined.as_ref() == Some(name) {
            continue;
        }
        joined = None;
        match *name {
            header::CONTENT_LENGTH => match length {
                Some(Some(known)) => {
                    if framing.is_some() {
                        if framing != Some(Framing::Length(known)) {
                            return None;
                        }
                        continue;
                    }
                    framing = Some(Framing::Length(known));
                }
                Some(None) => {
                    let n = crate::headers::length_digits(value.as_bytes())?;
                    match framing {
                        Some(Framing::Length(prev)) if prev == n => continue,
                        Some(_) => return None,
                        None => framing = Some(Framing::Length(n)),
                    }
                }
                None if head_request => {
                    if framing.is_some() {
                        continue;
                    }
                    framing = Some(Framing::Length(0));
                }
                None => continue,
            },
            header::TRANSFER_ENCODING => {
                if framing.is_some() {
                    return None;
                }
                if !can_chunk {
                    continue;
                }
                framing = Some(Framing::Chunked);
                let values = parts.headers.get_all(header::TRANSFER_ENCODING);
                write_joined(out, "transfer-encoding", values.iter());
                // Chunked must be the last coding applied: added when it is not.
                let last = values
                    .iter()
                    .next_back()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.rsplit(',').next())
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
                if !last {
                    out.extend_from_slice(b", chunked");
                }
                out.extend_from_slice(b"\r\n");
                joined = Some(header::TRANSFER_ENCODING);
                continue;
            }
            header::CONNECTION => {
                write_joined(out, "connection", connection.iter());
                if !keep && !says_close {
                    out.extend_from_slice(b", close");
                }
                out.extend_from_slice(b"\r\n");
                wrote_connection = true;
                joined = Some(header::CONNECTION);
                continue;
            }
            header::DATE => wrote_date = true,
            header::TRAILER => {
                if !can_chunk {
                    continue;
                }
                let values = parts.headers.get_all(header::TRAILER);
                for v in values.iter() {
                    if let Ok(v) = v.to_str() {
                        trailer_names.get_or_insert_with(Vec::new).extend(
                            v.split(',')
                                .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok()),
                        );
                    }
                }
                write_joined(out, "trailer", values.iter());
                out.extend_from_slice(b"\r\n");
                joined = Some(header::TRAILER);
                continue;
            }
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper adds `Connection: close` to the response's headers, before any length it writes.
    if !keep && !wrote_connection {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let framing = match framing {
        Some(f) => f,
        None => match length {
            Some(None) if can_chunk => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            // HEAD, 204 and 304: no body, whatever it would have been.
            Some(None) => Framing::Length(0),
            None | Some(Some(0)) => {
                if can_have_length && !head_request {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Some(Some(n)) => {
                if can_have_length {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(crate::trace::json::decimal(n, &mut [0u8; 20]));
                    out.extend_from_slice(b"\r\n");
                    Framing::Length(n)
                } else {
                    Framing::Length(0)
                }
            }
        },
    };
    // HEAD, 204 and 304 carry no body whatever their headers say.
    let framing = if can_chunk {
        framing
    } else {
        Framing::Length(0)
    };
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        crate::clock::http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(Encoded {
        framing,
        keep,
        trailer_names: if te_trailers && framing == Framing::Chunked {
            trailer_names
        } else {
            None
        },
    })
}

/// `name: ` and the values joined with commas, without the line end.
fn write_joined<'a>(out: &mut Vec<u8>, name: &str, values: impl Iterator<Item = &'a HeaderValue>) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(v.as_bytes());
    }
}

/// Why a response could not be written to its end.
#[derive(Debug)]
struct Cut;

/// How long a response may stand still.
#[derive(Debug, Clone, Copy)]
struct Stall {
    /// A write the client takes nothing of.
    send: Duration,
    /// A body that gives nothing.
    quiet: Duration,
}

/// Writes the head in `out` and then the body, framed as `enc` says.
async fn write_body(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    body: Body,
    enc: Encoded,
    stall: Stall,
) -> Result<(), Cut> {
    let send = stall.send;
    let mut body = std::pin::pin!(body);
    let mut left = match enc.framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    if enc.framing == Framing::Length(0) {
        return write_all(stream, &[out], send).await;
    }
    loop {
        // A frame ready now goes out with what is pending; otherwise that goes first.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await
        {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if !out.is_empty() {
                    write_all(stream, &[out], send).await?;
                    out.clear();
                }
                let next = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
                match tokio::time::timeout(stall.quiet, next).await {
                    Ok(f) => f,
                    Err(_) => {
                        tracing::debug!("nothing moved on a closing connection; dropping it");
                        return Err(Cut);
                    }
                }
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "the response body failed part-way; closing the connection");
                return Err(Cut);
            }
        };
        let mut data = match frame.into_data() {
            Ok(d) => d,
            Err(frame) => {
                if let (Framing::Chunked, Ok(t)) = (enc.framing, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    if let Some(names) = &enc.trailer_names {
                        write_trailers(&t, names, out);
                    }
                    out.extend_from_slice(b"\r\n");
                    write_all(stream, &[out], send).await?;
                    out.clear();
                    return Ok(());
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        match enc.framing {
            Framing::Length(_) => {
                if data.len() as u64 > left {
                    // More than it said: cut, as hyper does.
                    return Err(Cut);
                }
                left -= data.len() as u64;
            }
            Framing::Chunked => {
                out.extend_from_slice(crate::headers::chunk_size(data.len(), &mut [0u8; 16]));
                out.extend_from_slice(b"\r\n");
            }
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
            data.advance(data.len());
        }
        if enc.framing == Framing::Chunked {
            if data.is_empty() {
                out.extend_from_slice(b"\r\n");
            } else {
                write_all(stream, &[out, &data, b"\r\n"], send).await?;
                out.clear();
            }
        } else if !data.is_empty() {
            write_all(stream, &[out, &data], send).await?;
            out.clear();
        }
        // Small pieces ready one after another go out together, but never more than this.
        if out.len() >= FLUSH_AT {
            write_all(stream, &[out], send).await?;
            out.clear();
        }
        // Data goes out once the body has nothing more ready; the body is read to its end
        // (so that a backend connection behind it is released), as hyper does.
    }
    match enc.framing {
        Framing::Length(_) if left != 0 => {
            // Less than it said: what was written cannot be completed.
            if !out.is_empty() {
                let _ = write_all(stream, &[out], send).await;
            }
            Err(Cut)
        }
        Framing::Chunked => {
            out.extend_from_slice(b"0\r\n\r\n");
            write_all(stream, &[out], send).await
        }
        _ => {
            if out.is_empty() {
                Ok(())
            } else {
                write_all(stream, &[out], send).await
            }
        }
    }
}

/// The trailer fields named in the `Trailer` header, but none that no trailer may carry.
fn write_trailers(t: &HeaderMap, names: &[HeaderName], out: &mut Vec<u8>) {
    for (name, value) in t {
        if !names.contains(name) || !crate::headers::trailer_allowed(name.as_str()) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes every byte of `parts`; a client that takes none of them for the send timeout ends
/// the connection. No timer is set unless a write has to wait.
async fn write_all(stream: &mut TcpStream, parts: &[&[u8]], send: Duration) -> Result<(), Cut> {
    let mut skip = 0usize;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    while skip < total {
        let mut slices = [IoSlice::new(&[]); 3];
        let mut k = 0;
        let mut at = skip;
        for p in parts {
            if at >= p.len() {
                at -= p.len();
                continue;
            }
            if k < slices.len() {
                slices[k] = IoSlice::new(&p[at..]);
                k += 1;
            }
            at = 0;
        }
        let slices = &slices[..k];
        let ready = std::future::poll_fn(|cx| {
            Poll::Ready(Pin::new(&mut *stream).poll_write_vectored(cx, slices))
        })
        .await;
        let n = match ready {
            Poll::Ready(r) => r,
            Poll::Pending => {
                let write = std::future::poll_fn(|cx| {
                    Pin::new(&mut *stream).poll_write_vectored(cx, slices)
                });
                match tokio::time::timeout(send, write).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::debug!(
                            "the client took nothing of a response in time; closing the connection"
                        );
                        return Err(Cut);
                    }
                }
            }
        };
        match n {
            Ok(0) | Err(_) => return Err(Cut),
            Ok(n) => skip += n,
        }
    }
    Ok(())
}

/// A connection handed to the general path: the bytes already read come first.
#[derive(Debug)]
pub(crate) struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub(crate) fn new(prefix: Bytes, io: IO) -> Prefixed<IO> {
        Prefixed { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
