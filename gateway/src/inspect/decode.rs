//! Content codings and charsets: what a body says it is wrapped in, unwrapped for inspection
//! only. The bytes forwarded are always the bytes received.
//!
//! `Content-Encoding` gzip (also `x-gzip`), deflate (zlib, or raw deflate as some clients send
//! it), br and zstd are decoded, stacked codings in reverse order of application. Decoding is
//! bounded: at most [`DecodeLimits::max_decoded_bytes`] bytes, and at most
//! [`DecodeLimits::max_ratio`] times the encoded size once past [`RATIO_FLOOR`] bytes; past
//! either the body is a decompression bomb. A declared charset other than UTF-8 is decoded
//! with `encoding_rs`, without replacement characters: a byte sequence that is not valid in the
//! declared charset makes the body undecodable, never silently altered.

use std::borrow::Cow;
use std::io::Read;

use encoding_rs::Encoding;
use http::{HeaderMap, header};

/// Decoded bodies up to this size are never refused for their ratio alone: a small, very
/// repetitive JSON document compresses far better than 100:1 and is no threat.
pub const RATIO_FLOOR: usize = 64 * 1024;

/// The most codings one body may be wrapped in (`gzip, br` is two).
pub const MAX_CODINGS: usize = 3;

/// The zstd window a frame may ask for; larger frames are refused rather than allocated.
const ZSTD_MAX_WINDOW: u64 = 8 * 1024 * 1024;

/// Bounds on decoding one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The most bytes a body may decode to (after every coding).
    pub max_decoded_bytes: usize,
    /// The most decoded bytes per encoded byte, past [`RATIO_FLOOR`].
    pub max_ratio: u32,
}

impl DecodeLimits {
    /// The most bytes `encoded` bytes may decode to: the size limit, and the ratio past
    /// [`RATIO_FLOOR`].
    pub fn allowed(&self, encoded: usize) -> usize {
        let ratio_cap = encoded
            .saturating_mul(self.max_ratio as usize)
            .max(RATIO_FLOOR);
        self.max_decoded_bytes.min(ratio_cap)
    }
}

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits {
            max_decoded_bytes: 8 * 1024 * 1024,
            max_ratio: 100,
        }
    }
}

/// One content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a content coding that is not supported")]
    UnknownCoding,
    #[error("more than {MAX_CODINGS} content codings")]
    TooManyCodings,
    #[error("the {0} data is corrupt or truncated")]
    Corrupt(&'static str),
    #[error("the body decodes past the size or ratio limit")]
    Bomb,
    #[error("a charset that is not supported")]
    UnknownCharset,
    #[error("the charset is given more than once")]
    AmbiguousCharset,
    #[error("bytes that are not valid in the declared charset")]
    InvalidCharset,
}

/// The codings a request declares, in the order they were applied. `identity` is dropped.
pub fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        for token in value.as_bytes().split(|c| *c == b',') {
            let token = token.trim_ascii();
            let coding = if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                continue;
            } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                Coding::Gzip
            } else if token.eq_ignore_ascii_case(b"deflate") {
                Coding::Deflate
            } else if token.eq_ignore_ascii_case(b"br") {
                Coding::Brotli
            } else if token.eq_ignore_ascii_case(b"zstd") {
                Coding::Zstd
            } else {
                return Err(DecodeError::UnknownCoding);
            };
            out.push(coding);
            if out.len() > MAX_CODINGS {
                return Err(DecodeError::TooManyCodings);
            }
        }
    }
    Ok(out)
}

/// Undoes `codings` (in the order they were applied) on `body`, within `limits`.
pub fn decode<'a>(
    codings: &[Coding],
    body: &'a [u8],
    limits: DecodeLimits,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let allowed = limits.allowed(body.len());
    let mut data = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        data = Cow::Owned(decode_one(*coding, &data, allowed)?);
    }
    Ok(data)
}

fn decode_one(coding: Coding, input: &[u8], allowed: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = DecodeError::Corrupt(coding.as_str());
    let mut out = Vec::new();
    match coding {
        Coding::Gzip => {
            let r = flate2::read::MultiGzDecoder::new(input);
            read_bounded(r, allowed, &mut out, corrupt)?;
        }
        Coding::Deflate => {
            // RFC 9110 deflate is the zlib format; some clients send raw deflate. A zlib header
            // is two bytes whose big-endian value is a multiple of 31 with method 8.
            let zlib = input.len() >= 2
                && input[0] & 0x0f == 8
                && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
            let mut src = input;
            if zlib {
                let mut r = flate2::bufread::ZlibDecoder::new(&mut src);
                read_bounded(&mut r, allowed, &mut out, corrupt)?;
            } else {
                let mut r = flate2::bufread::DeflateDecoder::new(&mut src);
                read_bounded(&mut r, allowed, &mut out, corrupt)?;
            }
            // Bytes after the end of the stream would be read by no one the same way.
            if !src.is_empty() {
                return Err(corrupt);
            }
        }
        Coding::Brotli => {
            let mut src = input;
            let mut r = brotli::Decompressor::new(&mut src, 4096);
            read_bounded(&mut r, allowed, &mut out, corrupt)?;
            // Bytes after the end of the stream, as for deflate: the decoder reports those it
            // holds on a further read, and those it never took are still in `src`.
            if !matches!(r.read(&mut [0u8; 1]), Ok(0)) {
                return Err(corrupt);
            }
            drop(r);
            if !src.is_empty() {
                return Err(corrupt);
            }
        }
        Coding::Zstd => {
            let mut src = input;
            if src.is_empty() {
                return Err(corrupt);
            }
            // One or more frames back to back.
            while !src.is_empty() {
                let d = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                    &mut src,
                    ZSTD_MAX_WINDOW,
                )
                .map_err(|_| corrupt)?;
                read_bounded(d, allowed, &mut out, corrupt)?;
            }
        }
    }
    Ok(out)
}

/// Reads `r` to its end into `out`, refusing more than `allowed` bytes in total.
fn read_bounded(
    r: impl Read,
    allowed: usize,
    out: &mut Vec<u8>,
    corrupt: DecodeError,
) -> Result<(), DecodeError> {
    let room = (allowed.saturating_sub(out.len()) as u64).saturating_add(1);
    r.take(room).read_to_end(out).map_err(|_| corrupt)?;
    if out.len() > allowed {
        return Err(DecodeError::Bomb);
    }
    Ok(())
}

/// The `charset` parameter of a media type, lower-cased and unquoted (a `;` or `charset=`
/// inside a quoted value of another parameter is that value's). Given twice, parsers differ
/// on which counts: ambiguous.
pub fn charset_param(content_type: &str) -> Result<Option<String>, DecodeError> {
    match super::multipart::media_param(content_type, "charset") {
        Ok(c) => Ok(c.map(|c| c.trim().to_ascii_lowercase())),
        Err(()) => Err(DecodeError::AmbiguousCharset),
    }
}

/// `bytes` as text in the declared charset (UTF-8 when none is declared). UTF-8 input is
/// borrowed; anything else is decoded without replacement characters.
pub fn text<'a>(bytes: &'a [u8], charset: Option<&str>) -> Result<Cow<'a, str>, DecodeError> {
    let encoding = match charset {
        None => encoding_rs::UTF_8,
        Some(label) => Encoding::for_label(label.as_bytes()).ok_or(DecodeError::UnknownCharset)?,
    };
    // US-ASCII and ISO-8859-1 labels map to windows-1252 in the WHATWG table; ASCII bytes read
    // the same in all of them, and UTF-8 is checked strictly.
    if encoding == encoding_rs::UTF_8 {
        // Checked a vector at a time: on a large body this is a pass over every byte.
        return simdutf8::basic::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| DecodeError::InvalidCharset);
    }
    // A charset in which ASCII text is not ASCII bytes (UTF-16, ISO-2022-JP): a backend that
    // reads the bytes as ASCII or UTF-8, as most do whatever the label says, would see what
    // inspection of the decoded text did not (`email=jane%40...` in UTF-16LE decodes to CJK
    // characters). Such a body is not inspected as clean; it counts as uninspectable.
    if encoding == encoding_rs::REPLACEMENT || !encoding.is_ascii_compatible() {
        return Err(DecodeError::UnknownCharset);
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or(DecodeError::InvalidCharset)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn headers(ce: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, ce.parse().unwrap());
        h
    }

    #[test]
    fn each_coding_and_a_stack_decode() {
        let doc = br#"{"email":"jane@example.com"}"#;
        let lim = DecodeLimits::default();
        assert_eq!(&*decode(&[Coding::Gzip], &gzip(doc), lim).unwrap(), doc);
        assert_eq!(&*decode(&[Coding::Brotli], &br(doc), lim).unwrap(), doc);
        let z = ruzstd::encoding::compress_to_vec(
            &doc[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(&*decode(&[Coding::Zstd], &z, lim).unwrap(), doc);
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(doc).unwrap();
        assert_eq!(
            &*decode(&[Coding::Deflate], &zl.finish().unwrap(), lim).unwrap(),
            doc
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(doc).unwrap();
        assert_eq!(
            &*decode(&[Coding::Deflate], &raw.finish().unwrap(), lim).unwrap(),
            doc
        );
        // Bytes after the end of a brotli stream, held by the decoder or never taken by it:
        // refused, as for deflate (no two decoders would read them the same way).
        for extra in [&b"x"[..], &[b'x'; 10_000][..]] {
            let mut tail = br(doc);
            tail.extend_from_slice(extra);
            assert_eq!(
                decode(&[Coding::Brotli], &tail, lim).map(|_| ()),
                Err(DecodeError::Corrupt("br")),
                "{} bytes after the stream",
                extra.len()
            );
        }
        // gzip first, then br: decoded br first.
        let stacked = br(&gzip(doc));
        let cs = codings(&headers("gzip, br")).unwrap();
        assert_eq!(cs, vec![Coding::Gzip, Coding::Brotli]);
        assert_eq!(&*decode(&cs, &stacked, lim).unwrap(), doc);
    }

    #[test]
    fn unknown_stacked_too_deep_corrupt_and_bombs_are_refused() {
        assert_eq!(
            codings(&headers("compress")),
            Err(DecodeError::UnknownCoding)
        );
        assert_eq!(
            codings(&headers("gzip, gzip, gzip, gzip")),
            Err(DecodeError::TooManyCodings)
        );
        assert_eq!(codings(&headers("identity")).unwrap(), vec![]);
        let lim = DecodeLimits::default();
        assert_eq!(
            decode(&[Coding::Gzip], b"\x1f\x8b\x08\x00", lim),
            Err(DecodeError::Corrupt("gzip"))
        );
        assert_eq!(
            decode(&[Coding::Zstd], b"", lim),
            Err(DecodeError::Corrupt("zstd"))
        );
        // 16 MiB of zeros is some 16 KiB of gzip: over both the ratio and the size limit.
        let bomb = gzip(&vec![0u8; 16 * 1024 * 1024]);
        assert_eq!(decode(&[Coding::Gzip], &bomb, lim), Err(DecodeError::Bomb));
        // 1 MiB of zeros is within the size limit but over 100:1.
        let ratio = gzip(&vec![0u8; 1024 * 1024]);
        assert_eq!(decode(&[Coding::Gzip], &ratio, lim), Err(DecodeError::Bomb));
        // A bomb inside a stack is found at the inner layer.
        let nested = br(&bomb);
        assert_eq!(
            decode(&[Coding::Gzip, Coding::Brotli], &nested, lim),
            Err(DecodeError::Bomb)
        );
        // Brotli and zstd bombs alone are refused as gzip ones are.
        let zeros = vec![0u8; 16 * 1024 * 1024];
        let z = ruzstd::encoding::compress_to_vec(
            &zeros[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (coding, bytes) in [(Coding::Brotli, br(&zeros)), (Coding::Zstd, z)] {
            assert!(bytes.len() < 64 * 1024, "{coding:?}: {}", bytes.len());
            assert_eq!(
                decode(&[coding], &bytes, lim),
                Err(DecodeError::Bomb),
                "{coding:?}"
            );
        }
        // Small repetitive documents are fine.
        let small = gzip(&vec![b'a'; 60 * 1024]);
        assert_eq!(
            decode(&[Coding::Gzip], &small, lim).unwrap().len(),
            60 * 1024
        );
    }

    #[test]
    fn charsets_decode_strictly() {
        assert_eq!(
            charset_param("text/plain; Charset=\"ISO-8859-1\""),
            Ok(Some("iso-8859-1".to_owned()))
        );
        // A `;` or `charset=` inside another parameter's quoted value is that value's.
        assert_eq!(
            charset_param("text/plain; x=\"a;charset=utf-16le\"; charset=utf-8"),
            Ok(Some("utf-8".to_owned()))
        );
        assert_eq!(
            charset_param("text/plain; charset=utf-16le; charset=utf-8"),
            Err(DecodeError::AmbiguousCharset)
        );
        assert_eq!(charset_param("text/plain"), Ok(None));
        assert_eq!(text(b"caf\xe9", Some("iso-8859-1")).unwrap(), "café");
        // Charsets in which ASCII is not ASCII bytes are not read: a backend that reads the
        // bytes as ASCII would see what the decoded text hides.
        for label in ["utf-16le", "utf-16be", "utf-16", "iso-2022-jp"] {
            assert_eq!(
                text(b"email=jane%40example.com", Some(label)),
                Err(DecodeError::UnknownCharset),
                "{label}"
            );
        }
        assert_eq!(text(b"\x82\xa0", Some("shift_jis")).unwrap(), "\u{3042}");
        assert_eq!(text(b"\xff", None), Err(DecodeError::InvalidCharset));
        assert_eq!(
            text(b"\x81\xff", Some("shift_jis")),
            Err(DecodeError::InvalidCharset)
        );
        assert_eq!(
            text(b"abc", Some("klingon")),
            Err(DecodeError::UnknownCharset)
        );
    }
}
