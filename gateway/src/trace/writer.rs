//! The trace writer: one thread appends records to `<dir>/<region>/decisions.jsonl`, chaining
//! each record to the previous one in its file, and acknowledges each record only once it is as
//! durable as configured. Requests wait for the acknowledgement: audit before effect.
//!
//! Chain: a record's JSON object ends with `"prev_hash":"<hex>"`; its `hash` is the SHA-256 of
//! that object's bytes, appended as the last field. Verification strips the `hash` field and
//! recomputes. A write that fails rolls the file back to its last good length, so a failed
//! record leaves no half line and no gap in the chain.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::config::Durability;

/// The first record of a file chains to this.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The file name inside each region's directory.
pub const FILE_NAME: &str = "decisions.jsonl";

/// A record that could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TraceError {
    #[error("trace file {path}: {message}")]
    Io { path: String, message: String },
    #[error("the trace writer has stopped")]
    Stopped,
}

struct Job {
    region: Arc<str>,
    /// A JSON object without `prev_hash` and `hash`.
    body: Vec<u8>,
    done: oneshot::Sender<Result<(), TraceError>>,
}

/// Handle to the writer; cheap to clone.
///
/// With `always` and `batch` durability a writer thread appends and syncs, and each request
/// waits for its acknowledgement. With `none` the record is chained into an in-memory buffer on
/// the request's own thread (no hand-off) and a flusher thread writes the buffers out every
/// few milliseconds, without fsync.
#[derive(Debug, Clone)]
pub struct TraceWriter {
    tx: mpsc::Sender<Job>,
    dir: PathBuf,
    durability: Durability,
    buffered: Option<Arc<Buffered>>,
}

/// How often the `none`-durability buffers are written out, and the size that triggers an
/// early write.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
const FLUSH_BYTES: usize = 256 * 1024;

#[derive(Debug)]
struct RegionBuf {
    head: String,
    data: Vec<u8>,
    path: PathBuf,
}

/// The most bytes held in memory per region before requests are refused: if writing stalls,
/// requests fail instead of memory growing.
const MAX_BUFFERED: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct Buffered {
    dir: PathBuf,
    regions: Mutex<HashMap<Arc<str>, RegionBuf>>,
    wake: Condvar,
    /// Set when a write failed: the chain in memory is ahead of the file, so every later
    /// request fails closed until restart (which resumes from what the file holds).
    failed: Mutex<Option<String>>,
}

impl Buffered {
    fn append(&self, region: Arc<str>, body: &[u8]) -> Result<(), TraceError> {
        if let Ok(failed) = self.failed.lock()
            && let Some(why) = failed.as_ref()
        {
            return Err(TraceError::Io {
                path: self.dir.display().to_string(),
                message: format!("an earlier write failed ({why}); refusing until restart"),
            });
        }
        let mut regions = self.regions.lock().map_err(|_| TraceError::Stopped)?;
        if !regions.contains_key(&region) {
            // Once per region: repair a torn tail and read the chain head.
            let f = open_chain(&self.dir, &region)?;
            regions.insert(
                region.clone(),
                RegionBuf {
                    head: f.head,
                    data: Vec::new(),
                    path: f.path,
                },
            );
        }
        let Some(rb) = regions.get_mut(&region) else {
            return Err(TraceError::Stopped);
        };
        if rb.data.len() >= MAX_BUFFERED {
            self.wake.notify_one();
            return Err(TraceError::Io {
                path: rb.path.display().to_string(),
                message: "the trace buffer is full: writing has stalled".into(),
            });
        }
        rb.head = chain_into(&mut rb.data, body, &rb.head);
        if rb.data.len() >= FLUSH_BYTES {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Takes every buffer's pending bytes.
    fn take(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let Ok(mut regions) = self.regions.lock() else {
            return Vec::new();
        };
        regions
            .values_mut()
            .filter(|rb| !rb.data.is_empty())
            .map(|rb| {
                // The next period starts with the capacity this one needed.
                let next = Vec::with_capacity(rb.data.capacity());
                (rb.path.clone(), std::mem::replace(&mut rb.data, next))
            })
            .collect()
    }
}

/// Writes buffered bytes out; on a failure removes any partial append and marks the writer
/// failed, so later requests fail closed.
fn write_out(
    files: &mut HashMap<PathBuf, File>,
    pending: Vec<(PathBuf, Vec<u8>)>,
    failed: &Mutex<Option<String>>,
) {
    for (path, data) in pending {
        let result = (|| -> std::io::Result<()> {
            let file = match files.get_mut(&path) {
                Some(f) => f,
                None => {
                    let f = OpenOptions::new().append(true).open(&path)?;
                    files.entry(path.clone()).or_insert(f)
                }
            };
            let len = file.metadata()?.len();
            if let Err(e) = file.write_all(&data) {
                let _ = file.set_len(len);
                return Err(e);
            }
            Ok(())
        })();
        if let Err(e) = result {
            metrics::counter!(crate::metrics::TRACE_WRITE_FAILURES).increment(1);
            tracing::error!(path = %path.display(), error = %e, "decision records could not be written; failing closed");
            if let Ok(mut f) = failed.lock() {
                f.get_or_insert_with(|| format!("{}: {e}", path.display()));
            }
        }
    }
}

fn run_flusher(buffered: std::sync::Weak<Buffered>) {
    let mut files = HashMap::new();
    loop {
        let Some(b) = buffered.upgrade() else { return };
        let pending = {
            let Ok(guard) = b.regions.lock() else { return };
            let _ = b.wake.wait_timeout(guard, FLUSH_EVERY);
            b.take()
        };
        write_out(&mut files, pending, &b.failed);
        drop(b);
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        write_out(&mut HashMap::new(), self.take(), &self.failed);
    }
}

struct ChainFile {
    path: PathBuf,
    file: File,
    head: String,
    len: u64,
    /// Set after a failed write or sync: the kernel may have dropped pages it reported written
    /// (after a failed fsync nothing about the file can be trusted), so the file takes no more
    /// records until restart, which re-reads and repairs it.
    broken: Option<String>,
}

impl TraceWriter {
    /// Starts the writer thread for `dir`.
    pub fn start(dir: PathBuf, durability: Durability) -> std::io::Result<TraceWriter> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = mpsc::channel::<Job>(16 * 1024);
        let thread_dir = dir.clone();
        std::thread::Builder::new()
            .name("domicile-trace".into())
            .spawn(move || run(rx, thread_dir, durability))?;
        let buffered = if durability == Durability::None {
            let b = Arc::new(Buffered {
                dir: dir.clone(),
                regions: Mutex::new(HashMap::new()),
                wake: Condvar::new(),
                failed: Mutex::new(None),
            });
            let weak = Arc::downgrade(&b);
            std::thread::Builder::new()
                .name("domicile-trace-flush".into())
                .spawn(move || run_flusher(weak))?;
            Some(b)
        } else {
            None
        };
        Ok(TraceWriter {
            tx,
            dir,
            durability,
            buffered,
        })
    }

    /// Writes out anything buffered (`none` durability) now.
    pub fn flush(&self) {
        if let Some(b) = &self.buffered {
            write_out(&mut HashMap::new(), b.take(), &b.failed);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Queues a supplementary line (an outcome) without waiting. Returns false when the queue
    /// is full and the line was not queued.
    pub fn append_detached(&self, region: Arc<str>, body: Vec<u8>) -> bool {
        if let Some(b) = &self.buffered {
            return b.append(region, &body).is_ok();
        }
        let (done, _) = oneshot::channel();
        self.tx.try_send(Job { region, body, done }).is_ok()
    }

    /// With `none` durability, appends the record now (in memory, written out shortly);
    /// `None` means the record must go through [`TraceWriter::append`] and be waited for.
    pub fn append_now(&self, region: &Arc<str>, body: &[u8]) -> Option<Result<(), TraceError>> {
        self.buffered
            .as_ref()
            .map(|b| b.append(region.clone(), body))
    }

    /// Appends one record to `region`'s file and waits until it is durable.
    pub async fn append(&self, region: Arc<str>, body: Vec<u8>) -> Result<(), TraceError> {
        if let Some(b) = &self.buffered {
            return b.append(region, &body);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { region, body, done })
            .await
            .map_err(|_| TraceError::Stopped)?;
        wait.await.map_err(|_| TraceError::Stopped)?
    }
}

fn io_err(path: &Path, e: std::io::Error) -> TraceError {
    TraceError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Opens a region file, repairs a torn last line and finds the chain head.
fn open_chain(dir: &Path, region: &str) -> Result<ChainFile, TraceError> {
    let region_dir = dir.join(sanitize(region));
    std::fs::create_dir_all(&region_dir).map_err(|e| io_err(&region_dir, e))?;
    let path = region_dir.join(FILE_NAME);
    let new_file = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    if new_file {
        // Make the new file's directory entry durable too, or a crash could lose the whole
        // file even after its records were synced.
        File::open(&region_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&region_dir, e))?;
        if let Some(parent) = region_dir.parent() {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
    }
    let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
    let tail_len = len.min(256 * 1024);
    let mut tail = vec![0; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(|e| io_err(&path, e))?;
    file.read_exact(&mut tail).map_err(|e| io_err(&path, e))?;
    // Drop a torn last line left by a crash in the middle of a write.
    let good = tail.iter().rposition(|c| *c == b'\n').map_or(0, |p| p + 1);
    let good_len = len - tail_len + good as u64;
    if good_len != len {
        file.set_len(good_len).map_err(|e| io_err(&path, e))?;
    }
    let head = tail[..good]
        .split(|c| *c == b'\n')
        .rev()
        .find(|l| !l.is_empty())
        .and_then(extract_hash)
        .unwrap_or_else(|| GENESIS.to_owned());
    Ok(ChainFile {
        path,
        file,
        head,
        len: good_len,
        broken: None,
    })
}

fn sanitize(region: &str) -> String {
    region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

const HASH_FIELD: &[u8] = b",\"hash\":\"";

/// The `hash` of a line (its last field).
pub fn extract_hash(line: &[u8]) -> Option<String> {
    let at = line
        .windows(HASH_FIELD.len())
        .rposition(|w| w == HASH_FIELD)?;
    let rest = &line[at + HASH_FIELD.len()..];
    let hex = rest.strip_suffix(b"\"}")?;
    (hex.len() == 64).then(|| String::from_utf8_lossy(hex).into_owned())
}

/// Chains `body` after `prev`: returns the line (with newline) and its hash.
pub fn chain_line(body: &[u8], prev: &str) -> (Vec<u8>, String) {
    let mut out = Vec::with_capacity(body.len() + 160);
    let hash = chain_into(&mut out, body, prev);
    (out, hash)
}

/// Appends the chained line for `body` to `out` in place; returns its hash.
pub fn chain_into(out: &mut Vec<u8>, body: &[u8], prev: &str) -> String {
    let start = out.len();
    out.extend_from_slice(&body[..body.len().saturating_sub(1)]);
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(prev.as_bytes());
    out.extend_from_slice(b"\"}");
    let mut buf = [0u8; 64];
    // A 32-byte digest always fits 64 hex digits, and hex digits are ASCII.
    let hash = match hex::encode_to_slice(Sha256::digest(&out[start..]), &mut buf) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => String::new(),
    };
    out.truncate(out.len() - 1);
    out.extend_from_slice(HASH_FIELD);
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    hash
}

fn run(mut rx: mpsc::Receiver<Job>, dir: PathBuf, durability: Durability) {
    let mut files: HashMap<Arc<str>, ChainFile> = HashMap::new();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Group the batch by file, keeping order within each file.
        let mut groups: Vec<(Arc<str>, Vec<Job>)> = Vec::new();
        for job in batch {
            match groups.iter_mut().find(|(r, _)| *r == job.region) {
                Some((_, v)) => v.push(job),
                None => groups.push((job.region.clone(), vec![job])),
            }
        }
        for (region, jobs) in groups {
            if !files.contains_key(&region) {
                match open_chain(&dir, &region) {
                    Ok(f) => {
                        files.insert(region.clone(), f);
                    }
                    Err(e) => {
                        for j in jobs {
                            let _ = j.done.send(Err(e.clone()));
                        }
                        continue;
                    }
                }
            }
            let Some(f) = files.get_mut(&region) else {
                continue;
            };
            if durability == Durability::Always {
                for j in jobs {
                    let r = write_jobs(f, std::slice::from_ref(&j.body), true);
                    let _ = j.done.send(r);
                }
            } else {
                let bodies: Vec<Vec<u8>> = jobs.iter().map(|j| j.body.clone()).collect();
                let r = write_jobs(f, &bodies, durability == Durability::Batch);
                for j in jobs {
                    let _ = j.done.send(r.clone());
                }
            }
        }
    }
}

/// Writes records as one append and optionally syncs; on failure rolls the file back.
fn write_jobs(f: &mut ChainFile, bodies: &[Vec<u8>], sync: bool) -> Result<(), TraceError> {
    if let Some(why) = &f.broken {
        return Err(TraceError::Io {
            path: f.path.display().to_string(),
            message: format!("an earlier write failed ({why}); refusing until restart"),
        });
    }
    let mut buf = Vec::new();
    let mut head = f.head.clone();
    for body in bodies {
        let (line, hash) = chain_line(body, &head);
        buf.extend_from_slice(&line);
        head = hash;
    }
    let result = f
        .file
        .write_all(&buf)
        .and_then(|()| if sync { f.file.sync_data() } else { Ok(()) });
    match result {
        Ok(()) => {
            f.len += buf.len() as u64;
            f.head = head;
            Ok(())
        }
        Err(e) => {
            // Best effort: remove any partial append so the chain stays intact.
            let _ = f.file.set_len(f.len);
            f.broken = Some(e.to_string());
            Err(io_err(&f.path, e))
        }
    }
}

/// A broken chain: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ChainBreak {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// Verifies one trace file; returns the number of records.
pub fn verify_file(path: &Path) -> Result<usize, ChainBreak> {
    let text = std::fs::read(path).map_err(|e| ChainBreak {
        path: path.display().to_string(),
        line: 0,
        message: e.to_string(),
    })?;
    let mut prev = GENESIS.to_owned();
    let mut n = 0;
    for (i, line) in text.split(|c| *c == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let brk = |message: &str| ChainBreak {
            path: path.display().to_string(),
            line: i + 1,
            message: message.to_owned(),
        };
        let hash = extract_hash(line).ok_or_else(|| brk("no hash field"))?;
        let obj_end = line.len() - (HASH_FIELD.len() + 64 + 2);
        let mut obj = line[..obj_end].to_vec();
        obj.push(b'}');
        let expect_prev = format!(",\"prev_hash\":\"{prev}\"}}");
        if !obj.ends_with(expect_prev.as_bytes()) {
            return Err(brk(
                "prev_hash does not match the previous record (a record was removed, inserted or reordered)",
            ));
        }
        if hex::encode(Sha256::digest(&obj)) != hash {
            return Err(brk(
                "hash does not match the record's content (the record was edited)",
            ));
        }
        prev = hash;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_survives_restart_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        for i in 0..5 {
            w.append(Arc::from("eu"), format!("{{\"n\":{i}}}").into_bytes())
                .await
                .unwrap();
        }
        drop(w);
        // A new writer resumes the chain from the file.
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Always).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":5}".to_vec())
            .await
            .unwrap();
        let path = dir.path().join("eu").join(FILE_NAME);
        assert_eq!(verify_file(&path).unwrap(), 6);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let edited = text.replacen("{\"n\":2", "{\"n\":7", 1);
        std::fs::write(&path, &edited).unwrap();
        let e = verify_file(&path).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("edited"), "{e}");

        let mut deleted = lines.clone();
        deleted.remove(3);
        std::fs::write(&path, deleted.join("\n") + "\n").unwrap();
        assert_eq!(verify_file(&path).unwrap_err().line, 4);

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        std::fs::write(&path, swapped.join("\n") + "\n").unwrap();
        assert_eq!(verify_file(&path).unwrap_err().line, 2);
    }

    #[tokio::test]
    async fn torn_last_line_is_repaired_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::None).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":0}".to_vec())
            .await
            .unwrap();
        w.flush();
        drop(w);
        let path = dir.path().join("eu").join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"n\":1,\"prev_ha").unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":2}".to_vec())
            .await
            .unwrap();
        assert_eq!(verify_file(&path).unwrap(), 2);
    }
}
