//! Verifying a trace directory: every region's files in sequence, one chain across rotations,
//! and every checkpoint (its head, its record count, its place at the end of a sealed file and
//! its Ed25519 signature). The first problem of each file is reported with file and line.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::writer::{
    FILE_NAME, GENESIS, checkpoint_message, extract_hash, hashed_part, is_checkpoint, sealed_name,
    sealed_sequence,
};

/// A broken chain: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ChainBreak {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// What a file that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub lines: usize,
    /// The checkpoint the file ends with, if it does.
    pub checkpoint: Option<Checkpoint>,
}

/// A file's closing checkpoint: unsigned, or signed by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    Unsigned,
    Signed(VerifyingKey),
}

/// The result of verifying one file.
#[derive(Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub result: Result<FileSummary, ChainBreak>,
}

struct Chain<'a> {
    path: &'a Path,
    /// The sequence number the file is sealed under; `None` for the active file.
    sequence: Option<u64>,
    /// The region's active file, which may have a line still being written.
    active: bool,
    region: &'a str,
    /// The key checkpoints must be signed by: the one given, or else the one that signed the
    /// region's first signed checkpoint.
    pinned: Option<&'a VerifyingKey>,
    /// Whether `pinned` was given (rather than learnt from an earlier checkpoint).
    given: bool,
}

impl Chain<'_> {
    fn brk(&self, line: usize, message: impl Into<String>) -> ChainBreak {
        ChainBreak {
            path: self.path.display().to_string(),
            line,
            message: message.into(),
        }
    }

    /// Checks one file's lines after `prev`; returns its summary and last hash. The file is
    /// read a line at a time. The active file's last line, while it has no newline yet, is
    /// being written and is not checked.
    fn check(&self, prev: &str) -> Result<(FileSummary, String), ChainBreak> {
        use std::io::BufRead;
        let file = std::fs::File::open(self.path).map_err(|e| self.brk(0, e.to_string()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut buf = Vec::new();
        let mut prev = prev.to_owned();
        let mut lines = 0;
        let mut checkpoint = None;
        let mut last_line = 0;
        for i in 0.. {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| self.brk(i + 1, e.to_string()))?;
            if n == 0 {
                break;
            }
            let line = match buf.strip_suffix(b"\n") {
                Some(line) => line,
                None if self.active => break,
                None => &buf[..],
            };
            if line.is_empty() {
                continue;
            }
            last_line = i + 1;
            if checkpoint.is_some() {
                return Err(self.brk(
                    i + 1,
                    "a record follows a checkpoint (files were joined or a record appended to a sealed file)",
                ));
            }
            let hash = extract_hash(line).ok_or_else(|| self.brk(i + 1, "no hash field"))?;
            let obj = hashed_part(line).ok_or_else(|| self.brk(i + 1, "no hash field"))?;
            if prev.is_empty() {
                // After a break in an earlier file, this file is checked on its own terms.
                let at = obj.len().saturating_sub(66);
                let end = obj.len().saturating_sub(2).max(at);
                prev = String::from_utf8_lossy(&obj[at..end]).into_owned();
            }
            let expect_prev = format!(",\"prev_hash\":\"{prev}\"}}");
            if !obj.ends_with(expect_prev.as_bytes()) {
                return Err(self.brk(
                    i + 1,
                    if lines == 0 && prev != GENESIS {
                        "prev_hash does not continue the previous file (a file is missing, replaced or reordered)"
                    } else {
                        "prev_hash does not match the previous record (a record was removed, inserted or reordered)"
                    },
                ));
            }
            if hex::encode(Sha256::digest(&obj)) != hash {
                return Err(self.brk(
                    i + 1,
                    "hash does not match the record's content (the record was edited)",
                ));
            }
            if is_checkpoint(line) {
                checkpoint = Some(self.checkpoint(line, &prev, lines as u64, i + 1)?);
            }
            prev = hash;
            lines += 1;
        }
        if self.sequence.is_some() && checkpoint.is_none() {
            return Err(self.brk(
                last_line + 1,
                "a sealed file does not end with a checkpoint (it was truncated)",
            ));
        }
        Ok((FileSummary { lines, checkpoint }, prev))
    }

    /// Checks a checkpoint line; returns whether it is signed, and by which key.
    fn checkpoint(
        &self,
        line: &[u8],
        head: &str,
        records: u64,
        at: usize,
    ) -> Result<Checkpoint, ChainBreak> {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| self.brk(at, format!("the checkpoint is not JSON: {e}")))?;
        let field = |k: &str| v[k].as_str().unwrap_or("");
        if field("head") != head {
            return Err(self.brk(
                at,
                "the checkpoint's head is not the previous record's hash",
            ));
        }
        if v["records"].as_u64() != Some(records) {
            return Err(self.brk(
                at,
                format!(
                    "the checkpoint counts {} records, the file holds {records}",
                    v["records"]
                ),
            ));
        }
        let sequence = v["sequence"].as_u64().unwrap_or(0);
        let expected = self.sequence.unwrap_or(sequence);
        if sequence != expected || field("file") != sealed_name(expected) {
            return Err(self.brk(
                at,
                format!(
                    "the checkpoint seals {} but sits in {}",
                    sealed_name(sequence),
                    self.path
                        .file_name()
                        .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned())
                ),
            ));
        }
        if field("region") != self.region {
            return Err(self.brk(
                at,
                format!(
                    "the checkpoint names region {} but sits under {}",
                    field("region"),
                    self.region
                ),
            ));
        }
        let (key, sig) = match (v["public_key"].as_str(), v["signature"].as_str()) {
            (Some(k), Some(s)) => (k, s),
            _ if self.pinned.is_some() => {
                return Err(self.brk(at, "the checkpoint is not signed"));
            }
            _ => return Ok(Checkpoint::Unsigned),
        };
        let key = hex::decode(key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| self.brk(at, "the checkpoint's public key is malformed"))?;
        if let Some(p) = self.pinned
            && p != &key
        {
            return Err(self.brk(
                at,
                if self.given {
                    "the checkpoint is signed by another key than the one given".to_owned()
                } else {
                    format!(
                        "the checkpoint is signed by another key ({}) than the region's earlier checkpoints ({}): files were re-signed, or the key was changed without a new trace directory",
                        hex::encode(key.as_bytes()),
                        hex::encode(p.as_bytes())
                    )
                },
            ));
        }
        let sig = hex::decode(sig)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .map(|s| Signature::from_bytes(&s))
            .ok_or_else(|| self.brk(at, "the checkpoint's signature is malformed"))?;
        key.verify_strict(
            &checkpoint_message(self.region, sequence, records, head),
            &sig,
        )
        .map_err(|_| self.brk(at, "the checkpoint's signature does not verify"))?;
        Ok(Checkpoint::Signed(key))
    }
}

/// Verifies one region directory: sealed files in sequence, then the active file, as one
/// chain.
pub fn verify_region(
    region_dir: &Path,
    pinned: Option<&VerifyingKey>,
) -> std::io::Result<Vec<Verified>> {
    let region = region_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut sealed = Vec::new();
    let mut others = Vec::new();
    for e in std::fs::read_dir(region_dir)? {
        let path = e?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        match sealed_sequence(name) {
            Some(n) => sealed.push((n, path)),
            None if name != FILE_NAME && name.ends_with(".jsonl") => others.push(path),
            None => {}
        }
    }
    sealed.sort();
    let mut out = Vec::new();
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    // Without a key given, the first signed checkpoint's key is the one every later
    // checkpoint of the region must be signed by: a key that changes part-way is reported.
    let mut learnt: Option<VerifyingKey> = None;
    let mut chain = |path: PathBuf, sequence: Option<u64>, prev: &mut String| {
        let c = Chain {
            active: sequence.is_none() && path.file_name().is_some_and(|n| n == FILE_NAME),
            path: &path,
            sequence,
            region: &region,
            pinned: pinned.or(learnt.as_ref()),
            given: pinned.is_some(),
        };
        let result = c.check(prev).map(|(summary, last)| {
            *prev = last;
            summary
        });
        if learnt.is_none()
            && let Ok(FileSummary {
                checkpoint: Some(Checkpoint::Signed(k)),
                ..
            }) = &result
        {
            learnt = Some(*k);
        }
        if result.is_err() {
            // Later files are still checked, each against its own first line.
            *prev = String::new();
        }
        Verified { path, result }
    };
    for (n, path) in sealed {
        if n != expected {
            let missing = region_dir.join(sealed_name(expected));
            out.push(Verified {
                result: Err(ChainBreak {
                    path: missing.display().to_string(),
                    line: 0,
                    message: format!(
                        "missing: sealed files jump from {} to {}",
                        sealed_name(expected.saturating_sub(1)),
                        sealed_name(n)
                    ),
                }),
                path: missing,
            });
        }
        expected = n + 1;
        let v = chain(path, Some(n), &mut prev);
        out.push(v);
    }
    let active = region_dir.join(FILE_NAME);
    if active.exists() {
        out.push(chain(active, None, &mut prev));
    }
    for path in others {
        let mut genesis = GENESIS.to_owned();
        out.push(chain(path, None, &mut genesis));
    }
    Ok(out)
}

/// [`verify_dir`] on a trail that may be written meanwhile: a rotation between listing the
/// sealed files and reading the active one looks like a missing file, so a trail that does
/// not verify is checked once more, and only a break found both times is reported.
pub fn verify_live(dir: &Path, pinned: Option<&VerifyingKey>) -> std::io::Result<Vec<Verified>> {
    let first = verify_dir(dir, pinned)?;
    if first.iter().all(|v| v.result.is_ok()) {
        return Ok(first);
    }
    verify_dir(dir, pinned)
}

/// Verifies every region under a trace directory.
pub fn verify_dir(dir: &Path, pinned: Option<&VerifyingKey>) -> std::io::Result<Vec<Verified>> {
    let mut regions = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            regions.push(p);
        }
    }
    regions.sort();
    let mut out = Vec::new();
    for r in regions {
        out.extend(verify_region(&r, pinned)?);
    }
    Ok(out)
}

/// Verifies a single file from the genesis hash (one file of a region without rotation).
pub fn verify_file(path: &Path) -> Result<usize, ChainBreak> {
    let region = path
        .parent()
        .and_then(Path::file_name)
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Chain {
        path,
        sequence: None,
        active: false,
        region: &region,
        pinned: None,
        given: false,
    }
    .check(GENESIS)
    .map(|(s, _)| s.lines)
}
