//! The functions the fuzz targets (`fuzz/`) and the seed replay test run: each takes arbitrary
//! bytes, drives one decoder through its public entry point, and checks that what comes out is
//! bounded and holds no value. An `Err` names the broken property.

use http::{HeaderMap, HeaderValue, Method, header};

use super::decode::{self, Coding, DecodeLimits};
use super::{BinaryParts, BodyOptions, Inspection, MAX_FINDINGS, MAX_JSON_DEPTH, fieldmap};

/// The decoding limits the targets use: small, so bombs are found fast.
pub const LIMITS: DecodeLimits = DecodeLimits {
    max_decoded_bytes: 1024 * 1024,
    max_ratio: 100,
};

const CODINGS: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

/// The first byte picks up to three codings (two bits each after a two-bit count); the rest is
/// the encoded body.
pub fn content_coding(data: &[u8]) -> Result<(), String> {
    let Some((&sel, body)) = data.split_first() else {
        return Ok(());
    };
    let count = usize::from(sel & 3);
    let codings: Vec<Coding> = (0..count)
        .map(|n| CODINGS[usize::from((sel >> (2 + 2 * n)) & 3)])
        .collect();
    if let Ok(out) = decode::decode(&codings, body, LIMITS)
        && out.len() > LIMITS.max_decoded_bytes
    {
        return Err(format!(
            "decoded {} bytes, over the {} limit",
            out.len(),
            LIMITS.max_decoded_bytes
        ));
    }
    Ok(())
}

const CHARSETS: [&str; 10] = [
    "utf-8",
    "iso-8859-1",
    "windows-1252",
    "shift_jis",
    "euc-jp",
    "gb18030",
    "euc-kr",
    "utf-16le",
    "utf-16be",
    "x-unknown",
];

/// The first byte picks a charset; the rest is text in it.
pub fn charset(data: &[u8]) -> Result<(), String> {
    let Some((&sel, body)) = data.split_first() else {
        return Ok(());
    };
    let label = CHARSETS[usize::from(sel) % CHARSETS.len()];
    if let Ok(text) = decode::text(body, Some(label))
        // Every charset here takes at most 4 bytes of UTF-8 per input byte.
        && text.len() > body.len().saturating_mul(4).max(4)
    {
        return Err(format!(
            "{label}: {} bytes of text from {}",
            text.len(),
            body.len()
        ));
    }
    Ok(())
}

/// Checks the properties every inspection keeps, whatever its input.
fn check(i: &Inspection, max_parts: usize) -> Result<(), String> {
    if i.findings.len() > MAX_FINDINGS {
        return Err(format!("{} findings", i.findings.len()));
    }
    if i.not_inspected.len() > max_parts {
        return Err(format!("{} parts not inspected", i.not_inspected.len()));
    }
    if i.unmapped.len() > fieldmap::MAX_UNMAPPED {
        return Err(format!("{} unmapped fields", i.unmapped.len()));
    }
    // A location never holds a value: data-like keys are masked, and `@` is never safe.
    for loc in i
        .findings
        .iter()
        .map(|f| &f.location)
        .chain(&i.not_inspected)
        .chain(&i.unmapped)
    {
        if loc.contains('@') {
            return Err(format!("location {loc:?} holds a value"));
        }
    }
    Ok(())
}

/// Everything up to the first newline is the boundary; the rest is a multipart/form-data body.
pub fn multipart(data: &[u8]) -> Result<(), String> {
    let (boundary, body) = match data.iter().position(|c| *c == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (&b"XyZ"[..], data),
    };
    let ct = format!(
        "multipart/form-data; boundary=\"{}\"",
        String::from_utf8_lossy(boundary).replace(['"', '\\', '\r', '\n'], "")
    );
    let Ok(ct) = HeaderValue::from_str(&ct) else {
        return Ok(());
    };
    if let Ok(b) = super::multipart::boundary(ct.to_str().unwrap_or_default())
        && let Ok(parts) = super::multipart::parse(body, &b, 16)
    {
        let total: usize = parts.iter().map(|p| p.body.len()).sum();
        if parts.len() > 16 || total > body.len() {
            return Err(format!("{} parts, {total} bytes", parts.len()));
        }
        // Undoing a transfer encoding never makes a part larger.
        for p in &parts {
            if let Some(decoded) = super::multipart::transfer_decoded(p)
                && decoded.len() > p.body.len()
            {
                return Err(format!(
                    "{} bytes decoded from {}",
                    decoded.len(),
                    p.body.len()
                ));
            }
        }
    }
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, ct);
    for binary_parts in [BinaryParts::Uninspectable, BinaryParts::Skip] {
        let opts = BodyOptions {
            decode: LIMITS,
            max_parts: 16,
            work_per_byte: super::DEFAULT_WORK_PER_BYTE,
            binary_parts,
            fields: None,
        };
        let mut i = Inspection::default();
        super::inspect_body_with(&h, body, &opts, &mut i);
        check(&i, 16)?;
    }
    Ok(())
}

/// A JSON document, walked and matched against a small field map.
pub fn json(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let mut hits = 0usize;
    let mut bad = None;
    let _ = super::json::walk(&text, MAX_JSON_DEPTH, |_, at| {
        let loc = at.pointer();
        hits += 1;
        if loc.contains('@') {
            bad = Some(loc);
        }
    });
    if let Some(loc) = bad {
        return Err(format!("location {loc:?} holds a value"));
    }
    if hits > text.len() {
        return Err(format!("{hits} hits in {} bytes", text.len()));
    }
    let mut map = fieldmap::FieldMap::default();
    map.declare("/user/email", "email")
        .and_then(|()| map.declare("/items/*/name", "name"))
        .map_err(|e| format!("the fixed map is invalid: {e}"))?;
    let fields = map.fields_for(&Method::POST, "/").unwrap_or_default();
    let applied = fieldmap::apply(&fields, &text);
    if applied.unmapped.len() > fieldmap::MAX_UNMAPPED
        || applied.unmapped.iter().any(|u| u.contains('@'))
    {
        return Err(format!("unmapped {:?}", applied.unmapped));
    }
    Ok(())
}

const TYPES: [&str; 9] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain; charset=iso-8859-1",
    "multipart/form-data; boundary=XyZ",
    "application/problem+json; charset=utf-16le",
    "text/csv",
    "application/octet-stream",
    "",
    "application/soap+xml",
];
const ENCODINGS: [&str; 6] = ["", "gzip", "deflate", "br", "zstd", "gzip, br"];

/// A whole body: the first byte picks its type, the second its coding.
pub fn body(data: &[u8]) -> Result<(), String> {
    let [t, e, body @ ..] = data else {
        return Ok(());
    };
    let mut h = HeaderMap::new();
    let ct = TYPES[usize::from(*t) % TYPES.len()];
    if !ct.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let ce = ENCODINGS[usize::from(*e) % ENCODINGS.len()];
    if !ce.is_empty() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(ce));
    }
    let opts = BodyOptions {
        decode: LIMITS,
        max_parts: 16,
        work_per_byte: super::DEFAULT_WORK_PER_BYTE,
        binary_parts: if t & 0x80 == 0 {
            BinaryParts::Uninspectable
        } else {
            BinaryParts::Skip
        },
        fields: None,
    };
    let mut i = Inspection::default();
    super::inspect_body_with(&h, body, &opts, &mut i);
    check(&i, 16)
}

/// An OpenAPI document (JSON or YAML).
pub fn openapi(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let mut map = fieldmap::FieldMap::default();
    let _ = map.load_openapi(&text);
    Ok(())
}

/// One target: arbitrary bytes in, the broken property out.
pub type Target = fn(&[u8]) -> Result<(), String>;

/// Every target by name, as the fuzz crate and the replay test know them.
pub const TARGETS: [(&str, Target); 6] = [
    ("content_coding", content_coding),
    ("charset", charset),
    ("multipart", multipart),
    ("json", json),
    ("body", body),
    ("openapi", openapi),
];
