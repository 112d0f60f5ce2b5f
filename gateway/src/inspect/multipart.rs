//! A strict `multipart/form-data` reader (RFC 7578, RFC 2046 §5.1) over a buffered body.
//!
//! Strict means that anything a lenient backend parser could read differently is refused
//! rather than guessed at: the body starts with the first delimiter, every delimiter line ends
//! in CRLF, the close delimiter is present, and nothing but line ends follows it. Part headers
//! are bounded in size and number, and so is the number of parts.

use std::borrow::Cow;

use base64::Engine as _;
use memchr::memmem;

/// The longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY: usize = 70;
/// The most bytes of headers one part may carry.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// The most header lines one part may carry.
pub const MAX_PART_HEADERS: usize = 16;

/// Why a multipart body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("no valid boundary parameter")]
    Boundary,
    #[error("the body is not well-formed multipart")]
    Malformed,
    #[error("more parts than the limit")]
    TooManyParts,
}

/// One part, borrowed from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: Option<String>,
    /// The `filename` and decoded `filename*` parameters, when it is a file (a backend may
    /// read either, so both are kept).
    pub filenames: Vec<String>,
    /// The part's `Content-Type` header as sent.
    pub content_type: Option<String>,
    /// The part's `Content-Transfer-Encoding`, lower-cased.
    pub transfer_encoding: Option<String>,
    pub body: &'a [u8],
}

/// The `boundary` parameter of a multipart media type, checked against RFC 2046's grammar.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    // Given twice, parsers differ on which counts: refused rather than chosen.
    let value = media_param(content_type, "boundary")
        .map_err(|()| MultipartError::Boundary)?
        .ok_or(MultipartError::Boundary)?;
    let ok = !value.is_empty()
        && value.len() <= MAX_BOUNDARY
        && !value.ends_with(' ')
        && value.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'\''
                        | b'('
                        | b')'
                        | b'+'
                        | b'_'
                        | b','
                        | b'-'
                        | b'.'
                        | b'/'
                        | b':'
                        | b'='
                        | b'?'
                        | b' '
                )
        });
    if ok {
        Ok(value)
    } else {
        Err(MultipartError::Boundary)
    }
}

/// Splits a `multipart/form-data` body into its parts; more than `max_parts` is an error.
pub fn parse<'a>(
    body: &'a [u8],
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<Part<'a>>, MultipartError> {
    parse_as(body, boundary, max_parts, Rules::FormData)
}

/// Splits a `multipart/mixed` body nested in a form-data part (RFC 2388's files of one field)
/// into its parts: their disposition is `file`, `attachment`, `inline` or `form-data`, or none,
/// and a name is optional.
pub fn parse_mixed<'a>(
    body: &'a [u8],
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<Part<'a>>, MultipartError> {
    parse_as(body, boundary, max_parts, Rules::Mixed)
}

/// What a part's headers must say.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// RFC 7578: a `form-data` disposition with a name.
    FormData,
    /// RFC 2046 §5.1.3, as RFC 2388 nested it.
    Mixed,
}

fn parse_as<'a>(
    body: &'a [u8],
    boundary: &str,
    max_parts: usize,
    rules: Rules,
) -> Result<Vec<Part<'a>>, MultipartError> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let finder = memmem::Finder::new(&delimiter);
    // The first delimiter opens the body (a leading CRLF is tolerated; no other preamble).
    let first = &delimiter[2..];
    let mut pos = if body.starts_with(first) {
        first.len()
    } else if body.starts_with(&delimiter) {
        delimiter.len()
    } else {
        return Err(MultipartError::Malformed);
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if let Some(epilogue) = rest.strip_prefix(b"--") {
            // Only line ends may follow the close delimiter.
            if epilogue.iter().all(|c| matches!(c, b'\r' | b'\n')) {
                return Ok(parts);
            }
            return Err(MultipartError::Malformed);
        }
        // Transport padding, then CRLF.
        let pad = rest
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count();
        if !rest[pad..].starts_with(b"\r\n") {
            return Err(MultipartError::Malformed);
        }
        pos += pad + 2;
        if parts.len() == max_parts {
            return Err(MultipartError::TooManyParts);
        }
        let (mut part, body_start) = headers(body, pos, rules)?;
        let end = finder
            .find(&body[body_start..])
            .map(|n| body_start + n)
            .ok_or(MultipartError::Malformed)?;
        part.body = &body[body_start..end];
        parts.push(part);
        pos = end + delimiter.len();
    }
}

/// Reads a part's headers starting at `pos`; returns the part (without body) and where its
/// body starts.
fn headers(body: &[u8], pos: usize, rules: Rules) -> Result<(Part<'_>, usize), MultipartError> {
    let rest = &body[pos..];
    let (block, body_start) = if rest.starts_with(b"\r\n") {
        (&rest[..0], pos + 2)
    } else {
        let window = &rest[..rest.len().min(MAX_PART_HEADER_BYTES + 4)];
        let n = memmem::find(window, b"\r\n\r\n").ok_or(MultipartError::Malformed)?;
        (&rest[..n], pos + n + 4)
    };
    let mut part = Part {
        name: None,
        filenames: Vec::new(),
        content_type: None,
        transfer_encoding: None,
        body: &[],
    };
    let mut count = 0;
    for line in block.split(|c| *c == b'\n') {
        count += 1;
        if count > MAX_PART_HEADERS {
            return Err(MultipartError::Malformed);
        }
        // Every line ends in CRLF (the last one's CRLF is the separator's); no folding.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') || line.first().is_some_and(|c| matches!(c, b' ' | b'\t')) {
            return Err(MultipartError::Malformed);
        }
        let line = std::str::from_utf8(line).map_err(|_| MultipartError::Malformed)?;
        let (name, value) = line.split_once(':').ok_or(MultipartError::Malformed)?;
        let value = value.trim();
        let set = |slot: &mut Option<String>, v: String| {
            if slot.is_some() {
                return Err(MultipartError::Malformed);
            }
            *slot = Some(v);
            Ok(())
        };
        if name.eq_ignore_ascii_case("content-disposition") {
            let (kind, ps) = value.split_once(';').unwrap_or((value, ""));
            let kind = kind.trim();
            let known = kind.eq_ignore_ascii_case("form-data")
                || (rules == Rules::Mixed
                    && ["file", "attachment", "inline"]
                        .iter()
                        .any(|k| kind.eq_ignore_ascii_case(k)));
            if !known {
                return Err(MultipartError::Malformed);
            }
            if part.name.is_some() {
                return Err(MultipartError::Malformed);
            }
            let mut name = None;
            for (k, v) in params(ps) {
                match k.to_ascii_lowercase().as_str() {
                    "name" => set(&mut name, v)?,
                    "filename" => part.filenames.push(v),
                    // RFC 5987: charset'lang'percent-encoded.
                    "filename*" => {
                        let encoded = v.splitn(3, '\'').nth(2).unwrap_or(&v);
                        part.filenames
                            .push(super::percent_decode(encoded).into_owned());
                    }
                    _ => {}
                }
            }
            part.name = match (name, rules) {
                (Some(n), _) => Some(n),
                (None, Rules::Mixed) => None,
                (None, Rules::FormData) => return Err(MultipartError::Malformed),
            };
        } else if name.eq_ignore_ascii_case("content-type") {
            set(&mut part.content_type, value.to_owned())?;
        } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
            set(&mut part.transfer_encoding, value.to_ascii_lowercase())?;
        }
    }
    if rules == Rules::FormData && part.name.is_none() {
        return Err(MultipartError::Malformed);
    }
    Ok((part, body_start))
}

/// A part's body with its `Content-Transfer-Encoding` undone (RFC 2045 section 6): `base64`
/// (in lines, as MIME writes it) and `quoted-printable` are decoded, `7bit`, `8bit` and
/// `binary` are the bytes as they are. `None` for another encoding or a body that is not valid
/// in its own: such a part cannot be read.
pub fn transfer_decoded<'a>(part: &Part<'a>) -> Option<Cow<'a, [u8]>> {
    match part.transfer_encoding.as_deref() {
        None | Some("7bit" | "8bit" | "binary") => Some(Cow::Borrowed(part.body)),
        Some("base64") => {
            let text: Vec<u8> = part
                .body
                .iter()
                .copied()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .map(Cow::Owned)
        }
        Some("quoted-printable") => quoted_printable(part.body).map(Cow::Owned),
        Some(_) => None,
    }
}

/// Quoted-printable (RFC 2045 section 6.7): `=XX` is a byte in hex, `=` at the end of a line
/// joins it to the next; any other `=` is invalid.
fn quoted_printable(b: &[u8]) -> Option<Vec<u8>> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'=' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        // A soft line break, after any spaces or tabs the encoder left before it.
        let rest = &b[i + 1..];
        let pad = rest
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count();
        match (&rest[pad..], rest) {
            ([b'\r', b'\n', ..], _) => i += 1 + pad + 2,
            ([b'\n', ..], _) => i += 1 + pad + 1,
            ([], _) => i += 1 + pad,
            (_, [h, l, ..]) => {
                out.push(u8::try_from(hex(*h)? * 16 + hex(*l)?).ok()?);
                i += 3;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The parameter `name` of a media type (quoted strings read as RFC 9110 section 5.6.4 says);
/// `Err` when it is given more than once.
pub(crate) fn media_param(content_type: &str, name: &str) -> Result<Option<String>, ()> {
    let mut found = params(content_type.split_once(';').map_or("", |(_, p)| p))
        .into_iter()
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v);
    let first = found.next();
    match found.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// `; k=v; k="quoted \" value"` parameters, in order.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        c => value.push(c),
                    }
                }
                // Anything up to the next `;` after a quoted value is ignored.
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim_end().to_owned();
            }
        }
        out.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "----x1";

    #[test]
    fn quoted_printable_is_decoded_and_its_errors_refused() {
        for (qp, text) in [
            ("jane=40example.com", "jane@example.com"),
            ("jane@exa=\r\nmple.com", "jane@example.com"),
            ("jane@exa=  \r\nmple.com", "jane@example.com"),
            ("jane@exa=\nmple.com", "jane@example.com"),
            ("caf=C3=A9", "café"),
            ("ends softly=", "ends softly"),
        ] {
            assert_eq!(
                quoted_printable(qp.as_bytes()).as_deref(),
                Some(text.as_bytes()),
                "{qp:?}"
            );
        }
        for qp in ["a=4", "a=ZZ", "a= b", "a=\rb"] {
            assert_eq!(quoted_printable(qp.as_bytes()), None, "{qp:?}");
        }
    }

    fn body(parts: &[&str]) -> Vec<u8> {
        let mut s = String::new();
        for p in parts {
            s.push_str(&format!("--{B}\r\n{p}\r\n"));
        }
        s.push_str(&format!("--{B}--\r\n"));
        s.into_bytes()
    }

    #[test]
    fn fields_and_files_are_split_with_their_headers() {
        let b = body(&[
            "Content-Disposition: form-data; name=\"email\"\r\n\r\njane@example.com",
            "Content-Disposition: form-data; name=\"cv\"; filename=\"cv.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--not-the-boundary",
            "Content-Disposition: form-data; name=\"n\"; filename*=UTF-8''caf%C3%A9.txt\r\n\r\n",
        ]);
        let parts = parse(&b, B, 10).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].name.as_deref(), Some("email"));
        assert_eq!(parts[0].body, b"jane@example.com");
        assert_eq!(parts[1].filenames, vec!["cv.pdf"]);
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[1].body, b"%PDF\r\n--not-the-boundary");
        assert_eq!(parts[2].filenames, vec!["café.txt"]);
        assert_eq!(parts[2].body, b"");
    }

    #[test]
    fn malformed_bodies_and_limits_are_refused() {
        // A boundary given twice: parsers differ on which counts.
        assert_eq!(
            boundary("multipart/form-data; boundary=a; boundary=b"),
            Err(MultipartError::Boundary)
        );
        assert_eq!(
            boundary("multipart/form-data; x=\"; boundary=b\"; boundary=a").as_deref(),
            Ok("a")
        );
        let one = "Content-Disposition: form-data; name=\"a\"\r\n\r\nx";
        assert_eq!(
            parse(&body(&[one, one, one]), B, 2),
            Err(MultipartError::TooManyParts)
        );
        // No close delimiter.
        let open = format!("--{B}\r\n{one}\r\n");
        assert_eq!(
            parse(open.as_bytes(), B, 10),
            Err(MultipartError::Malformed)
        );
        // A preamble, an epilogue, a missing name, a bare LF, a folded header.
        for bad in [
            format!("junk\r\n--{B}\r\n{one}\r\n--{B}--"),
            format!("--{B}\r\n{one}\r\n--{B}--trailing data"),
            format!("--{B}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{B}--"),
            format!("--{B}\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--{B}--"),
            format!("--{B}\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--{B}--"),
            format!("--{B}\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--{B}--"),
        ] {
            assert_eq!(
                parse(bad.as_bytes(), B, 10),
                Err(MultipartError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::Boundary)
        );
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))),
            Err(MultipartError::Boundary)
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=a\u{7f}"),
            Err(MultipartError::Boundary)
        );
    }
}
