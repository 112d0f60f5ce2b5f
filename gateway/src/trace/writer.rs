//! The trace writer: one thread appends records to `<dir>/<region>/decisions.jsonl`, chaining
//! each record to the previous one, and acknowledges each record only once it is as durable as
//! configured. Requests wait for the acknowledgement: audit before effect.
//!
//! Chain: a record's JSON object ends with `"prev_hash":"<hex>"`; its `hash` is the SHA-256 of
//! that object's bytes, appended as the last field. Verification strips the `hash` field and
//! recomputes. A write that fails rolls the file back to its last good length, so a failed
//! record leaves no half line and no gap in the chain.
//!
//! Rotation: when the active file reaches `[trace] rotate_bytes` or `rotate_every`, a
//! checkpoint line (`domicile.checkpoint/1`) carrying the head hash, optionally signed with
//! Ed25519, is appended and synced, the file is renamed to `decisions-<sequence>.jsonl` and a
//! new `decisions.jsonl` starts whose first record chains to the checkpoint. Files are only
//! ever appended to and renamed, never rewritten. A crash between the checkpoint and the
//! rename is finished on the next start.

use rustc_hash::FxHashMap as HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::append::{Appended, advise_dontneed, page_size, whole_pages_end};
use super::json::Obj;
use super::shared_prefix::PrefixHasher;
pub use super::verify::{ChainBreak, verify_file};
use crate::config::Durability;
use crate::config::trace::{Rotation, SigningKey};

/// The first record of a region's first file chains to this.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The active file's name inside each region's directory.
pub const FILE_NAME: &str = "decisions.jsonl";

/// The schema id of checkpoint lines.
pub const CHECKPOINT_SCHEMA: &str = "domicile.checkpoint/1";

/// The name a sealed file gets at rotation.
pub fn sealed_name(sequence: u64) -> String {
    format!("decisions-{sequence:06}.jsonl")
}

/// The sequence number of a sealed file's name.
pub fn sealed_sequence(name: &str) -> Option<u64> {
    let n = name.strip_prefix("decisions-")?.strip_suffix(".jsonl")?;
    (n.len() >= 6 && n.bytes().all(|c| c.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(region: &str, sequence: u64, records: u64, head: &str) -> Vec<u8> {
    format!("{CHECKPOINT_SCHEMA}\n{region}\n{sequence}\n{records}\n{head}").into_bytes()
}

/// A record that could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TraceError {
    #[error("trace file {path}: {message}")]
    Io { path: String, message: String },
    #[error("the trace writer has stopped")]
    Stopped,
}

/// How the writer stores records.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub durability: Durability,
    pub rotation: Rotation,
    pub signing_key: Option<SigningKey>,
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
    /// Shared: the writer is cloned into every request's pipeline.
    dir: Arc<Path>,
    durability: Durability,
    buffered: Option<Arc<Buffered>>,
    /// The public half of the key checkpoints are signed with, when one is.
    verifying_key: Option<ed25519_dalek::VerifyingKey>,
}

/// How often the `none`-durability buffers are written out, and the size that triggers an
/// early write: under load, one write-out a mebibyte, and a fourth of the wake-ups 256 KiB
/// took.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
const FLUSH_BYTES: usize = 1024 * 1024;

/// Whether a buffer that grew from `before` to `after` bytes has just reached [`FLUSH_BYTES`].
fn crosses_flush_size(before: usize, after: usize) -> bool {
    before < FLUSH_BYTES && after >= FLUSH_BYTES
}

/// Where a region's active file stands: its chain head, size, age and the sequence number it
/// gets when sealed.
#[derive(Debug)]
struct Segment {
    region_dir: PathBuf,
    /// The region directory's name, written in checkpoints.
    region: String,
    head: String,
    len: u64,
    records: u64,
    opened: SystemTime,
    sequence: u64,
    /// Hashes the lines chained here, reusing work over the blocks alike records share.
    hasher: PrefixHasher,
}

impl Segment {
    fn active(&self) -> PathBuf {
        self.region_dir.join(FILE_NAME)
    }

    fn due(&self, rotation: &Rotation) -> bool {
        self.records > 0
            && (rotation.max_bytes.is_some_and(|m| self.len >= m)
                || rotation.max_age.is_some_and(|a| {
                    SystemTime::now()
                        .duration_since(self.opened)
                        .is_ok_and(|age| age >= a)
                }))
    }

    /// Chains one line into `out` and counts it.
    fn chain(&mut self, out: &mut Vec<u8>, body: &[u8]) {
        let before = out.len();
        out.extend_from_slice(body);
        chain_tail(out, before, &mut self.head, |line| self.hasher.digest(line));
        self.len += (out.len() - before) as u64;
        self.records += 1;
    }

    /// Chains this file's checkpoint into `out`; afterwards the segment describes the next
    /// file, whose first record chains to the checkpoint.
    fn checkpoint(&mut self, out: &mut Vec<u8>, key: Option<&SigningKey>) -> u64 {
        let body = checkpoint_body(&self.region, self.sequence, self.records, &self.head, key);
        self.head = chain_into(out, &body, &self.head);
        let sealed = self.sequence;
        self.sequence += 1;
        self.len = 0;
        self.records = 0;
        self.opened = SystemTime::now();
        sealed
    }
}

fn checkpoint_body(
    region: &str,
    sequence: u64,
    records: u64,
    head: &str,
    key: Option<&SigningKey>,
) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let signed = key.map(|k| {
        let sig =
            k.0.sign(&checkpoint_message(region, sequence, records, head));
        (
            hex::encode(k.0.verifying_key().as_bytes()),
            hex::encode(sig.to_bytes()),
        )
    });
    let mut out = Vec::with_capacity(512);
    Obj::new(&mut out)
        .str("schema", CHECKPOINT_SCHEMA)
        .str(
            "time",
            crate::clock::rfc3339_micros(crate::clock::now_micros()).as_str(),
        )
        .str("region", region)
        .str("file", &sealed_name(sequence))
        .num("sequence", sequence)
        .num("records", records)
        .str("head", head)
        .opt_str("public_key", signed.as_ref().map(|s| s.0.as_str()))
        .opt_str("signature", signed.as_ref().map(|s| s.1.as_str()))
        .end();
    out
}

/// Renames the active file to its sealed name and makes the rename durable.
fn seal(region_dir: &Path, sequence: u64) -> std::io::Result<()> {
    std::fs::rename(
        region_dir.join(FILE_NAME),
        region_dir.join(sealed_name(sequence)),
    )?;
    File::open(region_dir)?.sync_all()
}

/// Bytes chained in memory but not yet written, and whether the file is sealed after them.
#[derive(Debug)]
struct Pending {
    region: Arc<str>,
    segment_dir: PathBuf,
    /// The bytes, from `start` on (see [`RegionBuf::start`]).
    data: Vec<u8>,
    start: usize,
    seal: Option<u64>,
}

impl Pending {
    fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }
}

#[derive(Debug)]
struct RegionBuf {
    segment: Segment,
    data: Vec<u8>,
    /// Where the records in `data` start. The bytes before are padding, so that each record's
    /// address is its offset in the file modulo [`CONGRUENT_TO`]: written with direct I/O, the
    /// whole blocks of the buffer are written from where they are (see `append`).
    start: usize,
    /// Files rotated since the last write-out: their last bytes, then the rename.
    sealed: Vec<Pending>,
    /// The buffer last written out, emptied: the next write-out's buffer, whose pages are
    /// already in use, so records are not copied into memory never touched before.
    spare: Option<Vec<u8>>,
}

/// Records buffered lie at addresses congruent to their file offsets modulo this (the largest
/// block that direct I/O commonly asks for; see [`RegionBuf::start`]).
const CONGRUENT_TO: usize = 4096;

/// An empty buffer for records that go at `offset` in the file, and where in it they start
/// (see [`RegionBuf::start`]): `spare` when there is one, else a new one of `capacity`, and at
/// least a write-out's worth, so that it keeps its address while it fills.
fn buffer_for(spare: Option<Vec<u8>>, capacity: usize, offset: u64) -> (Vec<u8>, usize) {
    let mut buf =
        spare.unwrap_or_else(|| Vec::with_capacity(capacity.max(FLUSH_BYTES + CONGRUENT_TO)));
    let at = buf.as_ptr() as usize % CONGRUENT_TO;
    let want = (offset % CONGRUENT_TO as u64) as usize;
    let start = (want + CONGRUENT_TO - at) % CONGRUENT_TO;
    buf.clear();
    buf.resize(start, 0);
    (buf, start)
}

/// The largest buffer kept as a spare: one that grew past it (a burst, or a stalled disk) is
/// freed once written out.
const MAX_SPARE: usize = 4 * FLUSH_BYTES;

/// The most bytes held in memory per region before requests are refused: if writing stalls,
/// requests fail instead of memory growing.
const MAX_BUFFERED: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct Buffered {
    dir: PathBuf,
    options: WriterOptions,
    regions: Mutex<HashMap<Arc<str>, RegionBuf>>,
    /// Open files by path; held while writing so write-outs never interleave.
    io: Mutex<HashMap<PathBuf, Appended>>,
    wake: Condvar,
    /// Set when a write failed: the chain in memory is ahead of the file, so every later
    /// request fails closed until restart (which resumes from what the file holds).
    failed: Failed,
}

/// Why the writer stopped, once a write failed. Read on every append: until then a flag says
/// so without taking the lock.
#[derive(Debug, Default)]
struct Failed {
    set: std::sync::atomic::AtomicBool,
    why: Mutex<Option<String>>,
}

impl Failed {
    /// Why a write failed, if one did.
    fn why(&self) -> Option<String> {
        if !self.set.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.why.lock().map_or_else(
            |_| Some("the writer's state is unreadable".to_owned()),
            |w| w.clone(),
        )
    }

    /// Records the first failure; later ones keep it.
    fn set(&self, why: impl FnOnce() -> String) {
        if let Ok(mut w) = self.why.lock() {
            w.get_or_insert_with(why);
        }
        self.set.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Buffered {
    /// Appends the JSON object `write` writes. It is written into a per-thread buffer first:
    /// the lock shared by every region is held only to copy the line in and chain it, never
    /// while a record is serialised, and no record allocates.
    fn append_with(
        &self,
        region: Arc<str>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), TraceError> {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> =
                std::cell::RefCell::new(Vec::with_capacity(2048));
        }
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                write(&mut line);
                self.append(region, &line)
            }
            Err(_) => {
                let mut line = Vec::new();
                write(&mut line);
                self.append(region, &line)
            }
        })
    }

    fn append(&self, region: Arc<str>, body: &[u8]) -> Result<(), TraceError> {
        if let Some(why) = self.failed.why() {
            return Err(TraceError::Io {
                path: self.dir.display().to_string(),
                message: format!("an earlier write failed ({why}); refusing until restart"),
            });
        }
        let wake = {
            let mut regions = self.regions.lock().map_err(|_| TraceError::Stopped)?;
            if !regions.contains_key(&region) {
                Buffered::open_into(&mut regions, &self.dir, region.clone())?;
            }
            let Some(rb) = regions.get_mut(&region) else {
                return Err(TraceError::Stopped);
            };
            // Sealed files waiting to be written count too: under a stalled disk, rotation
            // would otherwise move the buffer aside again and again.
            let held = rb.data.len() + rb.sealed.iter().map(|p| p.data.len()).sum::<usize>();
            if held >= MAX_BUFFERED {
                self.wake.notify_one();
                return Err(TraceError::Io {
                    path: rb.segment.active().display().to_string(),
                    message: "the trace buffer is full: writing has stalled".into(),
                });
            }
            let mut rotated = false;
            if rb.segment.due(&self.options.rotation) {
                let seq = rb
                    .segment
                    .checkpoint(&mut rb.data, self.options.signing_key.as_ref());
                // The new file's records start at its first byte.
                let (next, start) = buffer_for(None, rb.data.capacity(), 0);
                rb.sealed.push(Pending {
                    region: region.clone(),
                    segment_dir: rb.segment.region_dir.clone(),
                    data: std::mem::replace(&mut rb.data, next),
                    start: std::mem::replace(&mut rb.start, start),
                    seal: Some(seq),
                });
                rotated = true;
            }
            let before = rb.data.len() - rb.start;
            rb.segment.chain(&mut rb.data, body);
            rotated || crosses_flush_size(before, rb.data.len() - rb.start)
        };
        // Woken once, when the buffer first reaches the flush size, and after the lock is
        // released, so the flusher does not wake only to wait for it. A wake-up the flusher
        // misses (it was writing) is made up by its next period.
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Opens a region (repairing a torn tail, reading the chain head) once.
    fn open(&self, region: Arc<str>) -> Result<(), TraceError> {
        let mut regions = self.regions.lock().map_err(|_| TraceError::Stopped)?;
        Buffered::open_into(&mut regions, &self.dir, region)
    }

    fn open_into(
        regions: &mut HashMap<Arc<str>, RegionBuf>,
        dir: &Path,
        region: Arc<str>,
    ) -> Result<(), TraceError> {
        let (segment, _) = open_segment(dir, &region)?;
        let (data, start) = buffer_for(None, 0, segment.len);
        regions.insert(
            region,
            RegionBuf {
                segment,
                data,
                start,
                sealed: Vec::new(),
                spare: None,
            },
        );
        Ok(())
    }

    /// Takes every buffer's pending bytes, rotations first, in order.
    fn take(&self) -> Vec<Pending> {
        let Ok(mut regions) = self.regions.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (region, rb) in regions.iter_mut() {
            out.append(&mut rb.sealed);
            if rb.data.len() > rb.start {
                // The next period starts with the last one's buffer, or with the capacity
                // this one needed; its first record goes where the file will then end.
                let (next, start) = buffer_for(rb.spare.take(), rb.data.capacity(), rb.segment.len);
                out.push(Pending {
                    region: region.clone(),
                    segment_dir: rb.segment.region_dir.clone(),
                    data: std::mem::replace(&mut rb.data, next),
                    start: std::mem::replace(&mut rb.start, start),
                    seal: None,
                });
            }
        }
        out
    }

    /// Writes out everything pending now. With `Settle::All` every file then holds every
    /// record chained so far; otherwise a file written to now may hold back the bytes after
    /// its last whole block (see [`Appended::settle`]) until the next write-out.
    fn write_out(&self, settle: Settle) {
        let Ok(mut files) = self.io.lock() else {
            return;
        };
        let pending = self.take();
        write_pending(&mut files, &pending, settle, &self.failed);
        self.keep_spares(pending);
    }

    /// Keeps the buffers just written out as their regions' spares.
    fn keep_spares(&self, written: Vec<Pending>) {
        let Ok(mut regions) = self.regions.lock() else {
            return;
        };
        for mut p in written {
            if let Some(rb) = regions.get_mut(&p.region)
                && rb.spare.is_none()
                && p.data.capacity() <= MAX_SPARE
            {
                p.data.clear();
                rb.spare = Some(p.data);
            }
        }
    }
}

/// Which files a write-out settles (see [`Appended::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Every file: on request, and when the writer stops.
    All,
    /// The files nothing was written to this time: the flusher's period. Under load their
    /// bytes after the last whole block go out with the next write instead.
    Idle,
}

/// Writes buffered bytes out, then settles files as `settle` says; on a failure removes any
/// partial append and marks the writer failed, so later requests fail closed.
///
/// Once a write has failed nothing more is written: what is pending now, and what was
/// buffered meanwhile, chains onto records that were rolled back, and writing it would leave
/// a gap in the chain that reads as tampering. The files end at their last good record, and a
/// restart continues the chain from there.
fn write_pending(
    files: &mut HashMap<PathBuf, Appended>,
    pending: &[Pending],
    settle: Settle,
    failed: &Failed,
) {
    if failed.why().is_some() {
        return;
    }
    let fail = |path: &Path, e: std::io::Error| {
        metrics::counter!(crate::metrics::TRACE_WRITE_FAILURES).increment(1);
        tracing::error!(path = %path.display(), error = %e, "decision records could not be written; failing closed");
        failed.set(|| format!("{}: {e}", path.display()));
    };
    let mut written = Vec::with_capacity(pending.len());
    for p in pending {
        let path = p.segment_dir.join(FILE_NAME);
        let result = (|| -> std::io::Result<()> {
            let appended = match files.get_mut(&path) {
                Some(f) => f,
                None => files.entry(path.clone()).or_insert(Appended::open(&path)?),
            };
            appended.append(p.bytes())?;
            if let Some(seq) = p.seal {
                appended.sync_and_let_go()?;
                files.remove(&path);
                seal(&p.segment_dir, seq)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            return fail(&path, e);
        }
        written.push(path);
    }
    for (path, f) in files.iter_mut() {
        if (settle == Settle::All || !written.contains(path))
            && let Err(e) = f.settle()
        {
            return fail(path, e);
        }
    }
}

fn run_flusher(buffered: std::sync::Weak<Buffered>) {
    loop {
        let Some(b) = buffered.upgrade() else { return };
        {
            let Ok(guard) = b.regions.lock() else { return };
            let _ = b.wake.wait_timeout(guard, FLUSH_EVERY);
        }
        b.write_out(Settle::Idle);
        drop(b);
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        self.write_out(Settle::All);
    }
}

struct ChainFile {
    segment: Segment,
    file: File,
    /// Where the pages let go of end: every whole page before it is synced and released.
    released: u64,
    /// Set after a failed write or sync: the kernel may have dropped pages it reported written
    /// (after a failed fsync nothing about the file can be trusted), so the file takes no more
    /// records until restart, which re-reads and repairs it.
    broken: Option<String>,
}

impl TraceWriter {
    /// Starts the writer thread for `dir`, without rotation or signing.
    pub fn start(dir: PathBuf, durability: Durability) -> std::io::Result<TraceWriter> {
        TraceWriter::start_with(
            dir,
            WriterOptions {
                durability,
                rotation: Rotation::default(),
                signing_key: None,
            },
        )
    }

    /// Starts the writer thread for `dir`. Returns once the files already in `dir` are opened
    /// (a torn tail cut, the chain head read, the records counted), which blocks for as long
    /// as reading them takes: async code calls it on a blocking thread (`spawn_blocking`).
    pub fn start_with(dir: PathBuf, options: WriterOptions) -> std::io::Result<TraceWriter> {
        std::fs::create_dir_all(&dir)?;
        let durability = options.durability;
        let verifying_key = options.signing_key.as_ref().map(|k| k.0.verifying_key());
        let (tx, rx) = mpsc::channel::<Job>(16 * 1024);
        let thread_dir = dir.clone();
        let thread_options = options.clone();
        // Told when the thread has opened the files already there (repaired a torn tail, read
        // the chain head and counted the records): a large file takes a while, and the first
        // request must not be the one that waits for it.
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("domicile-trace".into())
            .spawn(move || run(rx, thread_dir, thread_options, opened_tx))?;
        // An error means the thread is gone; writes then fail with `Stopped`, as before.
        let _ = opened_rx.recv();
        let buffered = if durability == Durability::None {
            let b = Arc::new(Buffered {
                dir: dir.clone(),
                options,
                regions: Mutex::new(HashMap::default()),
                io: Mutex::new(HashMap::default()),
                wake: Condvar::new(),
                failed: Failed::default(),
            });
            for region in existing_regions(&dir) {
                if let Err(e) = b.open(region) {
                    tracing::error!(error = %e, "trace file could not be opened");
                }
            }
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
            dir: Arc::from(dir),
            durability,
            buffered,
            verifying_key,
        })
    }

    /// Writes out anything buffered (`none` durability) now.
    pub fn flush(&self) {
        if let Some(b) = &self.buffered {
            b.write_out(Settle::All);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The key every checkpoint this writer seals is signed by, when it signs them.
    pub fn verifying_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        self.verifying_key
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

    /// As [`TraceWriter::append_detached`], with the line written by `write` (without an
    /// allocation when durability is `none`).
    pub fn append_detached_with(&self, region: Arc<str>, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if let Some(b) = &self.buffered {
            return b.append_with(region, write).is_ok();
        }
        let mut body = Vec::with_capacity(512);
        write(&mut body);
        self.append_detached(region, body)
    }

    /// With `none` durability, appends the record `write` writes now, without an allocation;
    /// `None` (and `write` not called) means the record must go through
    /// [`TraceWriter::append`] and be waited for.
    pub fn append_now_with(
        &self,
        region: &Arc<str>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Option<Result<(), TraceError>> {
        self.buffered
            .as_ref()
            .map(|b| b.append_with(region.clone(), write))
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

/// The highest sequence number among a region's sealed files.
fn last_sealed(region_dir: &Path) -> std::io::Result<Option<u64>> {
    let mut last = None;
    for e in std::fs::read_dir(region_dir)? {
        if let Some(n) = e?.file_name().to_str().and_then(sealed_sequence) {
            last = last.max(Some(n));
        }
    }
    Ok(last)
}

/// How far back from a file's end a record is looked for when a file is opened.
const MAX_TAIL_SCAN: u64 = 64 << 20;

/// The last record of a file (a whole line that carries its hash: a decision, an outcome, a
/// checkpoint) and the file's length up to its end. What follows it (a line torn by a crash,
/// or one that is not a record) is not part of the trace. Read backwards a block at a time, so
/// a record of any size is found whole. A file with whole lines but no record in its last
/// 64 MiB is damaged or not a trace file: an error, never a chain begun again from the genesis.
fn last_line(file: &mut File, len: u64) -> std::io::Result<(Option<Vec<u8>>, u64)> {
    const BLOCK: u64 = 64 * 1024;
    let mut block = vec![0u8; BLOCK as usize];
    // The newline that ends the line looked at next (the one before it starts that line).
    let mut line_end: Option<u64> = None;
    let mut saw_line = false;
    // What lies before `pos` is still to be read.
    let mut pos = len;
    while pos > 0 {
        if len - pos >= MAX_TAIL_SCAN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no record in the last 64 MiB: the file is damaged or not a trace file",
            ));
        }
        let start = pos.saturating_sub(BLOCK);
        let buf = &mut block[..usize::try_from(pos - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        let mut k = buf.len();
        while let Some(i) = buf[..k].iter().rposition(|c| *c == b'\n') {
            let newline = start + i as u64;
            if let Some(end) = line_end
                && let Some((line, up_to)) = record_at(file, newline + 1, end, &mut saw_line)?
            {
                return Ok((Some(line), up_to));
            }
            line_end = Some(newline);
            k = i;
        }
        pos = start;
    }
    // The file's first line.
    if let Some(end) = line_end
        && let Some((line, up_to)) = record_at(file, 0, end, &mut saw_line)?
    {
        return Ok((Some(line), up_to));
    }
    if saw_line {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "whole lines but no record: the file is damaged or not a trace file",
        ));
    }
    Ok((None, 0))
}

/// The line from `from` to its newline at `end`, read when [`last_line`] comes to it: when it
/// is a record, it and the file's length up to its end.
fn record_at(
    file: &mut File,
    from: u64,
    end: u64,
    saw_line: &mut bool,
) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    if end == from {
        return Ok(None);
    }
    *saw_line = true;
    let mut line = vec![0u8; usize::try_from(end - from).unwrap_or(0)];
    file.seek(SeekFrom::Start(from))?;
    file.read_exact(&mut line)?;
    Ok(extract_hash(&line).is_some().then(|| (line, end + 1)))
}

fn count_lines(file: &mut File) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = file.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|c| **c == b'\n').count() as u64;
    }
}

/// Whether a line is a checkpoint.
pub fn is_checkpoint(line: &[u8]) -> bool {
    line.starts_with(b"{\"schema\":\"domicile.checkpoint/1\"")
}

fn open_active(region_dir: &Path) -> Result<(File, bool), TraceError> {
    let path = region_dir.join(FILE_NAME);
    let new_file = !path.exists();
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    if new_file {
        // Make the new file's directory entry durable too, or a crash could lose the whole
        // file even after its records were synced.
        File::open(region_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(region_dir, e))?;
    }
    Ok((file, new_file))
}

/// Opens a region's active file: repairs a torn last line, finishes a rotation a crash
/// interrupted, and finds the chain head (which continues from the last sealed file).
fn open_segment(dir: &Path, region: &str) -> Result<(Segment, File), TraceError> {
    let name = sanitize(region);
    let region_dir = dir.join(&name);
    if !region_dir.exists() {
        std::fs::create_dir_all(&region_dir).map_err(|e| io_err(&region_dir, e))?;
        // The new directory's entry made durable, or a crash could lose the region's records
        // after they were acknowledged.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    let path = region_dir.join(FILE_NAME);
    let err = |e| io_err(&path, e);
    let mut sequence = last_sealed(&region_dir).map_err(err)?.map_or(1, |n| n + 1);
    let (mut file, new_file) = open_active(&region_dir)?;
    let len = file.metadata().map_err(err)?.len();
    let (mut last, good_len) = last_line(&mut file, len).map_err(err)?;
    // Drop a torn last line left by a crash in the middle of a write (and anything after the
    // last record that is not one).
    if good_len != len {
        tracing::warn!(
            path = %path.display(),
            bytes = len - good_len,
            "the trace file ended in a torn or damaged line; it was cut off after the last record"
        );
        file.set_len(good_len).map_err(err)?;
    }
    let mut len = good_len;
    if last.as_deref().is_some_and(is_checkpoint) {
        // The checkpoint was written but the file not yet renamed.
        file.sync_data().map_err(err)?;
        drop(file);
        seal(&region_dir, sequence).map_err(err)?;
        sequence += 1;
        file = open_active(&region_dir)?.0;
        len = 0;
    }
    if len == 0 && sequence > 1 {
        // A fresh file continues the chain of the last sealed one.
        let sealed = region_dir.join(sealed_name(sequence - 1));
        let mut f = File::open(&sealed).map_err(|e| io_err(&sealed, e))?;
        let l = f.metadata().map_err(|e| io_err(&sealed, e))?.len();
        last = last_line(&mut f, l).map_err(|e| io_err(&sealed, e))?.0;
    }
    let head = last
        .as_deref()
        .and_then(extract_hash)
        .unwrap_or_else(|| GENESIS.to_owned());
    let records = if len == 0 {
        0
    } else {
        count_lines(&mut file).map_err(err)?
    };
    let opened = if new_file || len == 0 {
        SystemTime::now()
    } else {
        file.metadata()
            .and_then(|m| m.created())
            .unwrap_or_else(|_| SystemTime::now())
    };
    Ok((
        Segment {
            region_dir,
            region: name,
            head,
            len,
            records,
            opened,
            sequence,
            hasher: PrefixHasher::default(),
        },
        file,
    ))
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

/// A line without its `hash` field (the object its hash is computed over), when it has one.
pub fn hashed_part(line: &[u8]) -> Option<Vec<u8>> {
    extract_hash(line)?;
    let obj_end = line.len() - (HASH_FIELD.len() + 64 + 2);
    let mut obj = line[..obj_end].to_vec();
    obj.push(b'}');
    Some(obj)
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
    out.extend_from_slice(body);
    let mut head = prev.to_owned();
    chain_tail(out, start, &mut head, |line| Sha256::digest(line).into());
    head
}

/// Chains the JSON object just written at `out[start..]` to `head` in place: its closing
/// brace becomes `"prev_hash":head}`, that object's SHA-256 (by `sha256`) is appended as
/// `hash` with the newline, and `head` becomes the new hash (its buffer reused, nothing
/// allocated).
fn chain_tail(
    out: &mut Vec<u8>,
    start: usize,
    head: &mut String,
    sha256: impl FnOnce(&[u8]) -> [u8; 32],
) {
    if out.len() > start {
        out.pop();
    }
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(b"\"}");
    let buf = crate::lowhex::digest(&sha256(&out[start..]));
    out.truncate(out.len() - 1);
    out.extend_from_slice(HASH_FIELD);
    out.extend_from_slice(&buf);
    out.extend_from_slice(b"\"}\n");
    head.clear();
    // Hex digits are ASCII.
    head.push_str(std::str::from_utf8(&buf).unwrap_or(""));
}

/// The regions that already have a directory: opened at start, so a torn tail left by a crash
/// is repaired and an interrupted rotation finished before anything else happens.
fn existing_regions(dir: &Path) -> Vec<Arc<str>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(Arc::from))
        .collect()
}

fn run(
    mut rx: mpsc::Receiver<Job>,
    dir: PathBuf,
    options: WriterOptions,
    opened: std::sync::mpsc::SyncSender<()>,
) {
    let mut files: HashMap<Arc<str>, ChainFile> = HashMap::default();
    if options.durability != Durability::None {
        for region in existing_regions(&dir) {
            let started = std::time::Instant::now();
            match open_segment(&dir, &region) {
                Ok((segment, file)) => {
                    tracing::debug!(
                        region = %region,
                        records = segment.records,
                        bytes = segment.len,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "trace file opened"
                    );
                    files.insert(
                        region,
                        ChainFile {
                            segment,
                            file,
                            released: 0,
                            broken: None,
                        },
                    );
                }
                Err(e) => tracing::error!(error = %e, "trace file could not be opened"),
            }
        }
    }
    let _ = opened.send(());
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
                match open_segment(&dir, &region) {
                    Ok((segment, file)) => {
                        files.insert(
                            region.clone(),
                            ChainFile {
                                segment,
                                file,
                                released: 0,
                                broken: None,
                            },
                        );
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
            if options.durability == Durability::Always {
                for j in jobs {
                    let r = write_jobs(f, std::slice::from_ref(&j.body), true, &options);
                    let _ = j.done.send(r);
                }
            } else {
                let bodies: Vec<Vec<u8>> = jobs.iter().map(|j| j.body.clone()).collect();
                let r = write_jobs(
                    f,
                    &bodies,
                    options.durability == Durability::Batch,
                    &options,
                );
                for j in jobs {
                    let _ = j.done.send(r.clone());
                }
            }
        }
    }
}

/// Seals the active file with a checkpoint and starts the next one.
fn rotate(f: &mut ChainFile, options: &WriterOptions) -> Result<(), TraceError> {
    let path = f.segment.active();
    let err = |e| io_err(&path, e);
    let mut line = Vec::new();
    let (head, len, records, opened) = (
        f.segment.head.clone(),
        f.segment.len,
        f.segment.records,
        f.segment.opened,
    );
    let sequence = f
        .segment
        .checkpoint(&mut line, options.signing_key.as_ref());
    let restore = |f: &mut ChainFile, why: String| {
        f.segment.head = head.clone();
        f.segment.len = len;
        f.segment.records = records;
        f.segment.opened = opened;
        f.segment.sequence = sequence;
        f.broken = Some(why);
    };
    if let Err(e) = f.file.write_all(&line).and_then(|()| f.file.sync_data()) {
        // Remove a partial checkpoint; the file takes nothing more until restart.
        let _ = f.file.set_len(len);
        restore(f, e.to_string());
        return Err(err(e));
    }
    // The checkpoint is durable: if the rename or the new file fails, the next start
    // finishes the rotation from what is on disk.
    let next = seal(&f.segment.region_dir, sequence)
        .map_err(err)
        .and_then(|()| open_active(&f.segment.region_dir));
    match next {
        Ok((file, _)) => {
            // Sealed and synced: none of the old file's pages need stay cached.
            advise_dontneed(&f.file, 0, len + line.len() as u64);
            f.file = file;
            f.released = 0;
            Ok(())
        }
        Err(e) => {
            restore(f, e.to_string());
            Err(e)
        }
    }
}

/// Writes records as one append and optionally syncs; on failure rolls the file back.
fn write_jobs(
    f: &mut ChainFile,
    bodies: &[Vec<u8>],
    sync: bool,
    options: &WriterOptions,
) -> Result<(), TraceError> {
    if let Some(why) = &f.broken {
        return Err(TraceError::Io {
            path: f.segment.active().display().to_string(),
            message: format!("an earlier write failed ({why}); refusing until restart"),
        });
    }
    if f.segment.due(&options.rotation) {
        rotate(f, options)?;
    }
    let mut buf = Vec::new();
    let (head, len, records) = (f.segment.head.clone(), f.segment.len, f.segment.records);
    for body in bodies {
        f.segment.chain(&mut buf, body);
    }
    let result = f
        .file
        .write_all(&buf)
        .and_then(|()| if sync { f.file.sync_data() } else { Ok(()) });
    match result {
        Ok(()) => {
            // Synced, so clean: the pages are let go at once (see [`Release`]), every whole
            // page not let go yet, but not the one the group ends in, which the next group
            // writes on: let go, it would be read back from the disk first.
            if sync {
                let end = whole_pages_end(f.segment.len, page_size());
                if end > f.released {
                    advise_dontneed(&f.file, f.released, end - f.released);
                    f.released = end;
                }
            }
            Ok(())
        }
        Err(e) => {
            // Best effort: remove any partial append so the chain stays intact.
            let _ = f.file.set_len(len);
            f.segment.head = head;
            f.segment.len = len;
            f.segment.records = records;
            f.broken = Some(e.to_string());
            Err(io_err(&f.segment.active(), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::verify::verify_dir;

    fn options(durability: Durability, max_bytes: Option<u64>) -> WriterOptions {
        WriterOptions {
            durability,
            rotation: Rotation {
                max_bytes,
                max_age: None,
            },
            signing_key: Some(SigningKey(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))),
        }
    }

    #[test]
    fn only_the_record_that_brings_a_buffer_to_the_flush_size_crosses_it() {
        assert!(crosses_flush_size(FLUSH_BYTES - 1, FLUSH_BYTES));
        assert!(crosses_flush_size(0, FLUSH_BYTES + 2000));
        assert!(!crosses_flush_size(0, FLUSH_BYTES - 1));
        assert!(!crosses_flush_size(FLUSH_BYTES, FLUSH_BYTES + 2000));
    }

    #[test]
    fn a_failure_is_seen_from_then_on_with_its_first_reason() {
        let failed = Failed::default();
        assert_eq!(failed.why(), None);
        failed.set(|| "first".to_owned());
        failed.set(|| "second".to_owned());
        assert_eq!(failed.why().as_deref(), Some("first"));
    }

    #[test]
    fn after_a_failed_write_nothing_more_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"good\n").unwrap();
        let failed = Failed::default();
        let batch = |data: &[u8]| {
            vec![Pending {
                region: Arc::from("eu"),
                segment_dir: dir.path().to_path_buf(),
                data: data.to_vec(),
                start: 0,
                seal: None,
            }]
        };
        // The file as open for reading only: the write fails.
        let mut files = HashMap::default();
        files.insert(path.clone(), Appended::cached(File::open(&path).unwrap()));
        write_pending(&mut files, &batch(b"lost\n"), Settle::All, &failed);
        assert!(failed.why().is_some());
        // What was buffered meanwhile chains onto the lost record: it is not written either,
        // even though the file could take it now.
        files.clear();
        write_pending(&mut files, &batch(b"after\n"), Settle::All, &failed);
        assert_eq!(std::fs::read(&path).unwrap(), b"good\n");
    }

    #[tokio::test]
    async fn records_written_out_over_several_mebibytes_all_reach_the_file_chained() {
        use crate::trace::append::{RELEASE_AFTER, WRITEBACK_SPAN};
        // More than RELEASE_AFTER + 1 writeback spans, through the flusher: pages handed to
        // writeback and let go, or direct writes starting again at the block the file ends
        // in, while records keep coming. None may be lost or torn.
        let dir = tempfile::tempdir().unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::None).unwrap();
        let pad = "x".repeat(1500);
        let n = (WRITEBACK_SPAN as usize * (RELEASE_AFTER + 2)) / 1500 + 1;
        for i in 0..n {
            let body = format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes();
            w.append_now(&Arc::from("eu"), &body).unwrap().unwrap();
            if i % 200 == 0 {
                w.flush();
            }
        }
        w.flush();
        let path = dir.path().join("eu").join(FILE_NAME);
        assert_eq!(verify_file(&path).unwrap(), n);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() as u64 > WRITEBACK_SPAN * (RELEASE_AFTER as u64 + 2));
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with(&format!("{{\"n\":{},", n - 1)),
            "{last:.40}"
        );
    }

    /// A `none`-durability writer in a new directory, its buffers, and the region "eu".
    fn buffered_writer() -> (tempfile::TempDir, TraceWriter, Arc<Buffered>, Arc<str>) {
        let dir = tempfile::tempdir().unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::None).unwrap();
        let b = w.buffered.clone().unwrap();
        (dir, w, b, Arc::from("eu"))
    }

    #[tokio::test]
    async fn two_buffers_take_turns_so_records_are_not_copied_into_fresh_memory() {
        let (dir, w, b, eu) = buffered_writer();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10 {
            let body = format!("{{\"n\":{i}}}").into_bytes();
            w.append_now(&eu, &body).unwrap().unwrap();
            seen.insert(b.regions.lock().unwrap()[&eu].data.as_ptr() as usize);
            w.flush();
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        let path = dir.path().join("eu").join(FILE_NAME);
        assert_eq!(verify_file(&path).unwrap(), 10);
    }

    #[tokio::test]
    async fn direct_writes_take_the_buffers_whole_blocks_from_where_they_are() {
        let (dir, w, b, eu) = buffered_writer();
        let pad = "z".repeat(1800);
        let (mut n, rounds) = (0, 8);
        for _ in 0..rounds {
            for _ in 0..300 {
                let body = format!("{{\"n\":{n},\"pad\":\"{pad}\"}}").into_bytes();
                w.append_now(&eu, &body).unwrap().unwrap();
                n += 1;
            }
            w.flush();
        }
        let path = dir.path().join("eu").join(FILE_NAME);
        assert_eq!(verify_file(&path).unwrap(), n);
        let io = b.io.lock().unwrap();
        let Some(staged) = io[&path].staged() else {
            // No direct I/O on this file system.
            return;
        };
        // Only the block the file ended in is copied at each write-out (the test's and the
        // flusher's own, at most a few dozen in all), never a buffer's records.
        let written = std::fs::metadata(&path).unwrap().len();
        assert!(staged < 64 * 1024, "{staged} of {written} bytes copied");
    }

    #[tokio::test]
    async fn synced_records_whose_pages_are_let_go_stay_whole_and_chained() {
        // Each record is synced on its own and its whole pages let go; the page each ends in
        // is written on by the next. Every record must read back whole, in order.
        for durability in [Durability::Batch, Durability::Always] {
            let dir = tempfile::tempdir().unwrap();
            let w = TraceWriter::start(dir.path().to_path_buf(), durability).unwrap();
            let pad = "y".repeat(1700);
            for i in 0..30 {
                let body = format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes();
                w.append(Arc::from("eu"), body).await.unwrap();
            }
            let path = dir.path().join("eu").join(FILE_NAME);
            assert_eq!(verify_file(&path).unwrap(), 30, "{durability:?}");
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                assert!(
                    line.starts_with(&format!("{{\"n\":{i},")),
                    "{durability:?} {i}"
                );
            }
        }
    }

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

    #[test]
    fn a_line_that_is_only_a_hash_is_a_break_not_a_crash() {
        // After a break in an earlier file, the next file is read on its own terms; a line
        // holding nothing but a hash field is reported, not a panic.
        let dir = tempfile::tempdir().unwrap();
        let region = dir.path().join("eu");
        std::fs::create_dir(&region).unwrap();
        std::fs::write(region.join(sealed_name(1)), b"not a record\n").unwrap();
        let line = format!(",\"hash\":\"{}\"}}\n", "0".repeat(64));
        std::fs::write(region.join(FILE_NAME), line).unwrap();
        let report = crate::trace::verify::verify_dir(dir.path(), None).unwrap();
        let active = report
            .iter()
            .find(|v| v.path.ends_with(FILE_NAME))
            .expect("the active file is reported");
        assert!(active.result.is_err(), "{:?}", active.path);
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

    #[tokio::test]
    async fn files_already_there_are_opened_before_the_writer_is_handed_out() {
        // Opening reads a file's tail and counts its records; a large file takes a while, and
        // that must happen at start-up, not while the first request waits for its record.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eu").join(FILE_NAME);
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":0}".to_vec())
            .await
            .unwrap();
        drop(w);
        let whole = std::fs::metadata(&path).unwrap().len();
        for durability in [Durability::Batch, Durability::Always] {
            // A torn tail for each start to cut.
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"{\"n\":1,\"prev_ha").unwrap();
            drop(f);
            assert!(std::fs::metadata(&path).unwrap().len() > whole);
            let w = TraceWriter::start(dir.path().to_path_buf(), durability).unwrap();
            // The torn tail was cut off while the writer started: nothing has been written.
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                whole,
                "{durability:?}"
            );
            drop(w);
        }
    }

    #[tokio::test]
    async fn a_large_last_record_and_lines_that_are_not_records_are_read_right_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eu").join(FILE_NAME);
        // A record larger than any one block read from the end, then a torn one after it.
        let big = format!("{{\"n\":0,\"pad\":\"{}\"}}", "x".repeat(600 * 1024));
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        w.append(Arc::from("eu"), big.into_bytes()).await.unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[b'x'; 300 * 1024]).unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":1}".to_vec())
            .await
            .unwrap();
        drop(w);
        // The chain went on from the large record, not from the genesis.
        assert_eq!(verify_file(&path).unwrap(), 2);
        // A whole line that is not a record, after the last one: cut off, the chain goes on.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not a record\n\n").unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":2}".to_vec())
            .await
            .unwrap();
        drop(w);
        assert_eq!(verify_file(&path).unwrap(), 3);
        // Lines and no record at all: not a trace file; the writer does not start over.
        std::fs::write(&path, b"one\ntwo\n").unwrap();
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Batch).unwrap();
        let e = w
            .append(Arc::from("eu"), b"{\"n\":3}".to_vec())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no record"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn rotation_seals_files_with_signed_checkpoints_in_every_mode() {
        for durability in [Durability::Always, Durability::Batch, Durability::None] {
            let dir = tempfile::tempdir().unwrap();
            let body = |i: usize| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(900));
            let w =
                TraceWriter::start_with(dir.path().to_path_buf(), options(durability, Some(4096)))
                    .unwrap();
            for i in 0..20 {
                w.append(Arc::from("eu"), body(i).into_bytes())
                    .await
                    .unwrap();
            }
            w.flush();
            drop(w);
            // A restart continues the same chain in the active file.
            let w =
                TraceWriter::start_with(dir.path().to_path_buf(), options(durability, Some(4096)))
                    .unwrap();
            for i in 20..25 {
                w.append(Arc::from("eu"), body(i).into_bytes())
                    .await
                    .unwrap();
            }
            w.flush();
            drop(w);
            let files = names(&dir.path().join("eu"));
            assert!(files.len() >= 5, "{durability:?}: {files:?}");
            assert_eq!(files[0], "decisions-000001.jsonl");
            assert_eq!(files.last().unwrap(), FILE_NAME);
            let results = verify_dir(dir.path(), None).unwrap();
            let mut records = 0;
            for v in &results {
                let s = v.result.as_ref().unwrap();
                let sealed = v.path.file_name().unwrap() != FILE_NAME;
                let signed = matches!(
                    s.checkpoint,
                    Some(crate::trace::verify::Checkpoint::Signed(_))
                );
                assert_eq!(s.checkpoint.is_some(), sealed, "{}", v.path.display());
                assert_eq!(signed, sealed, "{}", v.path.display());
                records += s.lines - usize::from(sealed);
            }
            assert_eq!(records, 25, "{durability:?}");
        }
    }

    #[tokio::test]
    async fn a_rotation_cut_short_after_its_checkpoint_is_finished_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let region_dir = dir.path().join("eu");
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Always).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":0}".to_vec())
            .await
            .unwrap();
        drop(w);
        // The checkpoint is on disk, the rename never happened.
        let (mut seg, mut file) = open_segment(dir.path(), "eu").unwrap();
        let mut line = Vec::new();
        seg.checkpoint(&mut line, None);
        file.write_all(&line).unwrap();
        drop(file);
        let w = TraceWriter::start(dir.path().to_path_buf(), Durability::Always).unwrap();
        w.append(Arc::from("eu"), b"{\"n\":1}".to_vec())
            .await
            .unwrap();
        drop(w);
        assert_eq!(names(&region_dir), ["decisions-000001.jsonl", FILE_NAME]);
        let results = verify_dir(dir.path(), None).unwrap();
        assert!(results.iter().all(|v| v.result.is_ok()), "{results:?}");
        assert_eq!(
            results[0].result.as_ref().unwrap().checkpoint,
            Some(crate::trace::verify::Checkpoint::Unsigned)
        );
    }

    #[tokio::test]
    async fn rotation_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let w = TraceWriter::start_with(
            dir.path().to_path_buf(),
            WriterOptions {
                durability: Durability::Batch,
                rotation: Rotation {
                    max_bytes: None,
                    max_age: Some(std::time::Duration::from_millis(1)),
                },
                signing_key: None,
            },
        )
        .unwrap();
        for i in 0..3 {
            w.append(Arc::from("eu"), format!("{{\"n\":{i}}}").into_bytes())
                .await
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        drop(w);
        assert_eq!(
            names(&dir.path().join("eu")),
            [
                "decisions-000001.jsonl",
                "decisions-000002.jsonl",
                FILE_NAME
            ]
        );
    }
}
