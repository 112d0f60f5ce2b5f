//! How the `none`-durability flusher appends to a region's active file, and how the page cache
//! is spared the records the gateway never reads again.
//!
//! Where the file system supports it, a file is written with direct I/O (`O_DIRECT`): the
//! device reads the records from the writer's own buffer, so no page-cache page is filled,
//! dirtied, written back and freed for them. Direct writes start and end at the file system's
//! block boundaries, so the bytes after the last whole block are held back and each write
//! starts again at the block the file ends in, with those bytes in front of the new ones; bytes
//! held back when no write follows are written through the page cache ([`DirectFile`]).
//!
//! Elsewhere (a file system without direct I/O, such as tmpfs, or a system other than Linux)
//! the file is written through the page cache, and its pages are handed to writeback and let
//! go as they fill ([`Release`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An active file the flusher appends to.
#[derive(Debug)]
pub(super) enum Appended {
    /// Written with direct I/O.
    Direct(DirectFile),
    /// Written through the page cache, whose pages are let go as they are written back.
    Cached { file: File, release: Release },
}

impl Appended {
    /// Opens `path` for appending, creating it: with direct I/O where its file system allows.
    pub(super) fn open(path: &Path) -> std::io::Result<Appended> {
        if let Some(direct) = DirectFile::open(path)? {
            return Ok(Appended::Direct(direct));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Appended::cached(file))
    }

    /// Appends to `file` through the page cache.
    pub(super) fn cached(file: File) -> Appended {
        Appended::Cached {
            file,
            release: Release::new(page_size()),
        }
    }

    /// Appends `data` at the file's end (up to its last whole block, with direct I/O: see
    /// [`Appended::settle`]). After an error the file is cut back to the length it had, so no
    /// part of `data` is left in it.
    pub(super) fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Appended::Direct(d) => match d.append(data) {
                // The file system took the file for direct I/O but refuses a write (some do,
                // for some files): from now on through the page cache, nothing lost.
                Err(e)
                    if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::INVAL) =>
                {
                    tracing::warn!(path = %d.path.display(), error = %e, "direct writes refused; the trace file is written through the page cache");
                    let unwritten = d.unwritten().to_vec();
                    let file = OpenOptions::new().append(true).open(&d.path)?;
                    *self = Appended::cached(file);
                    self.append_cached(&[&unwritten, data])
                }
                other => other,
            },
            Appended::Cached { .. } => self.append_cached(&[data]),
        }
    }

    /// Appends `parts` through the page cache; after an error the file is cut back.
    fn append_cached(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let Appended::Cached { file, release } = self else {
            return Err(std::io::Error::other("not a page-cache file"));
        };
        let len = file.metadata()?.len();
        let mut written = 0;
        for part in parts {
            if let Err(e) = file.write_all(part) {
                let _ = file.set_len(len);
                return Err(e);
            }
            written += part.len() as u64;
        }
        let (start, let_go) = release.wrote(len, written);
        for (offset, len) in start.into_iter().chain(let_go) {
            advise_dontneed(file, offset, len);
        }
        Ok(())
    }

    /// Makes sure the file holds every byte appended: a direct write leaves the bytes after
    /// the last whole block to the next one.
    pub(super) fn settle(&mut self) -> std::io::Result<()> {
        match self {
            Appended::Direct(d) => d.settle(),
            Appended::Cached { .. } => Ok(()),
        }
    }

    /// How many bytes direct writes have copied to an aligned address instead of writing them
    /// from where they were; `None` for a file written through the page cache.
    #[cfg(test)]
    pub(super) fn staged(&self) -> Option<u64> {
        match self {
            Appended::Direct(d) => Some(d.staged),
            Appended::Cached { .. } => None,
        }
    }

    /// Makes what was appended durable, before the file is sealed; none of its pages need
    /// stay cached afterwards.
    pub(super) fn sync_and_let_go(&mut self) -> std::io::Result<()> {
        match self {
            Appended::Direct(d) => {
                d.settle()?;
                d.file.sync_data()
            }
            Appended::Cached { file, .. } => {
                file.sync_data()?;
                advise_dontneed(file, 0, file.metadata()?.len());
                Ok(())
            }
        }
    }
}

/// A file appended to with direct I/O.
///
/// Direct writes cover whole blocks only, so the bytes after the file's last whole block (part
/// of a record) are held back and written at the front of the next append. When no append
/// follows (the flusher found nothing new, the buffers are flushed on request, the file is
/// sealed), they are settled: written through the page cache, which the next direct write over
/// that block writes back and drops first. The file never holds anything but records, the last
/// one possibly not yet whole, as in any append under way; it is never padded.
#[derive(Debug)]
pub(super) struct DirectFile {
    path: PathBuf,
    file: File,
    /// The same file opened without direct I/O: the held bytes are read and settled through
    /// it, opened once rather than at each settle.
    plain: File,
    /// Direct writes start and end at multiples of this many bytes.
    block: u64,
    /// The address a direct write's buffer starts at is a multiple of this.
    mem_align: usize,
    /// How many bytes have been appended: the file's length once the tail is settled.
    len: u64,
    /// The bytes after the last whole block (fewer than `block`).
    tail: Vec<u8>,
    /// The file's length as this writer left it: `len` once settled, or as little as where
    /// `tail` starts.
    disk: u64,
    /// Where a write is laid out at an aligned address. Kept from one write to the next, so
    /// its pages are not filled anew each time.
    stage: Vec<u8>,
    /// How many bytes have been copied into `stage`.
    staged: u64,
}

/// The largest block size direct I/O is used with; a file system that asks for more is
/// written through the page cache.
const MAX_DIRECT_BLOCK: u32 = 64 * 1024;

impl DirectFile {
    /// Opens `path` for direct writes, creating it. `None` when its file system does not
    /// support direct I/O, or does not say how writes must be aligned (Linux before 6.1).
    #[cfg(target_os = "linux")]
    pub(super) fn open(path: &Path) -> std::io::Result<Option<DirectFile>> {
        use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::DIRECT | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => fd,
            // The file system does not do direct I/O.
            Err(rustix::io::Errno::INVAL) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Ok(st) = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) else {
            return Ok(None);
        };
        let aligned = |a: u32| a.is_power_of_two() && a <= MAX_DIRECT_BLOCK;
        if !(StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN)
            && aligned(st.stx_dio_offset_align)
            && aligned(st.stx_dio_mem_align))
        {
            return Ok(None);
        }
        let file = File::from(fd);
        let plain = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let block = u64::from(st.stx_dio_offset_align);
        let in_block = len % block;
        let mut tail = vec![0; in_block as usize];
        if in_block > 0 {
            use std::os::unix::fs::FileExt;
            plain.read_exact_at(&mut tail, len - in_block)?;
        }
        Ok(Some(DirectFile {
            path: path.to_path_buf(),
            file,
            plain,
            block,
            mem_align: st.stx_dio_mem_align as usize,
            len,
            tail,
            disk: len,
            stage: Vec::new(),
            staged: 0,
        }))
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn open(_path: &Path) -> std::io::Result<Option<DirectFile>> {
        Ok(None)
    }

    /// Fails when the file is not as this writer left it: something else wrote to it, and a
    /// direct write, which starts again at the block the file ends in, would overwrite that.
    fn check_unchanged(&self) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len == self.disk {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "the file is {len} bytes long, not the {} this writer left it at: something else wrote to it",
                self.disk
            )))
        }
    }

    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.check_unchanged()?;
        let block = self.block as usize;
        let held = self.tail.len();
        let used = held + data.len();
        let whole = used - used % block;
        if whole == 0 {
            self.tail.extend_from_slice(data);
            self.len += data.len() as u64;
            return Ok(());
        }
        // Written: the held bytes and the new ones up to the last whole block. The new bytes
        // after the block the held ones are in are written from where they are, when that is
        // an aligned address (the flusher's buffers are laid out so it is, see
        // `Buffered::take`); otherwise they are copied to one.
        let start = self.len - held as u64;
        let completes = (block - held) % block;
        let body = &data[completes..whole - held];
        let in_place = body.as_ptr().align_offset(self.mem_align) == 0;
        let staged = if in_place { completes } else { whole - held };
        self.stage.clear();
        self.stage.reserve(held + staged + self.mem_align);
        let pad = self.stage.as_ptr().align_offset(self.mem_align);
        if pad >= self.mem_align {
            return Err(std::io::Error::other(
                "no aligned address for a direct write",
            ));
        }
        self.stage.resize(pad, 0);
        self.stage.extend_from_slice(&self.tail);
        self.stage.extend_from_slice(&data[..staged]);
        self.staged += (held + staged) as u64;
        let head = &self.stage[pad..];
        let body = if in_place { body } else { &[][..] };
        if let Err(e) = write_all_at(&self.file, head, body, start) {
            let _ = self.file.set_len(self.disk);
            return Err(e);
        }
        self.tail.clear();
        self.tail.extend_from_slice(&data[whole - held..]);
        self.len += data.len() as u64;
        self.disk = start + whole as u64;
        Ok(())
    }

    /// The bytes appended that the file does not hold yet: the end of `tail`.
    fn unwritten(&self) -> &[u8] {
        let tail_at = self.len - self.tail.len() as u64;
        let on_disk = usize::try_from(self.disk.saturating_sub(tail_at)).unwrap_or(0);
        &self.tail[on_disk.min(self.tail.len())..]
    }

    /// Writes the held bytes, so the file holds every byte appended.
    fn settle(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.disk == self.len {
            return Ok(());
        }
        self.check_unchanged()?;
        let at = self.len - self.tail.len() as u64;
        if let Err(e) = self.plain.write_all_at(&self.tail, at) {
            let _ = self.file.set_len(self.disk);
            return Err(e);
        }
        self.disk = self.len;
        Ok(())
    }
}

/// Writes `head` then `body` at `offset`, in one call when the kernel takes them whole.
fn write_all_at(file: &File, head: &[u8], body: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if body.is_empty() {
        return file.write_all_at(head, offset);
    }
    if head.is_empty() {
        return file.write_all_at(body, offset);
    }
    let n = rustix::io::pwritev(
        file,
        &[std::io::IoSlice::new(head), std::io::IoSlice::new(body)],
        offset,
    )?;
    if n < head.len() {
        file.write_all_at(&head[n..], offset + n as u64)?;
        file.write_all_at(body, offset + head.len() as u64)
    } else {
        file.write_all_at(&body[n - head.len()..], offset + n as u64)
    }
}

/// A byte range of a file: offset and length.
type Range = (u64, u64);

/// How many bytes are handed to writeback at once, and how many such ranges later their
/// pages are let go.
pub(super) const WRITEBACK_SPAN: u64 = 1024 * 1024;
pub(super) const RELEASE_AFTER: usize = 2;

/// Lets go of an appended file's pages once they are written back.
///
/// The records are written once and not read again by the gateway, so their pages need not
/// stay in the page cache, where they would push out what other programs read and make every
/// later write fill a page never used before. Advising `DONTNEED` on a range starts its
/// writeback; advising it again two ranges later, once those pages are clean, frees them, and
/// later writes reuse them. Advice is only advice: an error is ignored, and pages still being
/// written stay cached until the kernel needs them.
#[derive(Debug)]
pub(super) struct Release {
    /// The page size: ranges end at page boundaries.
    page: u64,
    /// Where the bytes written but not yet handed to writeback start.
    unsent: Option<u64>,
    /// Ranges handed to writeback, oldest first, whose pages are not yet let go.
    sent: VecDeque<Range>,
}

impl Release {
    pub(super) fn new(page: u64) -> Release {
        Release {
            page,
            unsent: None,
            sent: VecDeque::new(),
        }
    }

    /// After `offset..offset + len` was appended: the range to hand to writeback now, if a
    /// span's worth is waiting, and the range whose pages to let go, if one is due. Ranges end
    /// at page boundaries: the page the file ends in is written on next, and the kernel may let
    /// it go too if it is clean already, so it starts the next range instead.
    pub(super) fn wrote(&mut self, offset: u64, len: u64) -> (Option<Range>, Option<Range>) {
        let start = *self.unsent.get_or_insert(offset);
        let end = whole_pages_end(offset + len, self.page);
        if end < start + WRITEBACK_SPAN {
            return (None, None);
        }
        self.unsent = Some(end);
        self.sent.push_back((start, end - start));
        let let_go = if self.sent.len() > RELEASE_AFTER {
            self.sent.pop_front()
        } else {
            None
        };
        (Some((start, end - start)), let_go)
    }
}

/// `end` rounded down to a boundary of `page`: where the last whole page before it ends.
pub(super) fn whole_pages_end(end: u64, page: u64) -> u64 {
    end - end % page
}

#[cfg(target_os = "linux")]
pub(super) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(not(target_os = "linux"))]
pub(super) fn page_size() -> u64 {
    4096
}

/// Tells the kernel the file's bytes `offset..offset + len` will not be read again soon.
/// Pages the range covers only in part are kept, except at the end of the file, where the
/// kernel may let the last page go too: a range that ends there ends at a page boundary when
/// that page is to be written on (see [`whole_pages_end`]).
#[cfg(target_os = "linux")]
pub(super) fn advise_dontneed(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn advise_dontneed(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pages_are_handed_to_writeback_by_the_span_and_let_go_two_spans_later() {
        let mut r = Release::new(4096);
        const K: u64 = 256 * 1024;
        // Three write-outs are less than a span: nothing yet.
        for i in 0..3 {
            assert_eq!(r.wrote(i * K, K), (None, None));
        }
        // The fourth completes the first span, from the first byte.
        assert_eq!(r.wrote(3 * K, K), (Some((0, 4 * K)), None));
        // One write-out as large as a span is a span of its own.
        assert_eq!(r.wrote(4 * K, 4 * K), (Some((4 * K, 4 * K)), None));
        // The third span lets go of the first.
        assert_eq!(
            r.wrote(8 * K, 5 * K),
            (Some((8 * K, 5 * K)), Some((0, 4 * K)))
        );
        // A range ends at the last page boundary: the page the file ends in, which the next
        // write-out writes on, starts the next range.
        assert_eq!(r.wrote(13 * K, 1), (None, None));
        assert_eq!(
            r.wrote(13 * K + 1, 4 * K),
            (Some((13 * K, 4 * K)), Some((4 * K, 4 * K)))
        );
        assert_eq!(
            r.wrote(17 * K + 1, 4 * K + 5000),
            (Some((17 * K, 4 * K + 4096)), Some((8 * K, 5 * K)))
        );
    }

    #[test]
    fn a_file_that_ends_mid_page_is_handed_to_writeback_from_where_it_ended() {
        let mut r = Release::new(4096);
        // The file already held 100 bytes when the writer opened it.
        assert_eq!(r.wrote(100, 4096), (None, None));
        // Up to the page boundary before the end: the range is not a whole number of pages,
        // and the kernel keeps the first page, which holds bytes written before.
        assert_eq!(
            r.wrote(4196, WRITEBACK_SPAN),
            (Some((100, 4096 + WRITEBACK_SPAN - 100)), None)
        );
    }

    /// Appends of these lengths cross and end on block boundaries of every size a file system
    /// asks for (512 bytes to 64 KiB), and one is larger than a writeback span.
    const LENGTHS: [usize; 12] = [
        1, 510, 1, 512, 513, 4095, 4097, 3, 65_536, 1_048_583, 1, 777,
    ];

    /// Appends `LENGTHS` bytes at a time, checking after each append that the file holds what
    /// was appended (up to the last whole block, until settled), and reopening it halfway as a
    /// restarted gateway would.
    fn append_and_check(dir: &Path, open: impl Fn(&Path) -> Appended) -> Appended {
        let path = dir.join("decisions.jsonl");
        std::fs::write(&path, b"{\"first\":1}\n").unwrap();
        let mut expected = std::fs::read(&path).unwrap();
        let mut f = open(&path);
        for (i, n) in LENGTHS.into_iter().enumerate() {
            if i == LENGTHS.len() / 2 {
                f.settle().unwrap();
                f = open(&path);
            }
            let data: Vec<u8> = (0..n).map(|k| b'a' + ((i + k) % 26) as u8).collect();
            f.append(&data).unwrap();
            expected.extend_from_slice(&data);
            let got = std::fs::read(&path).unwrap();
            assert!(
                expected.starts_with(&got)
                    && expected.len() - got.len() < MAX_DIRECT_BLOCK as usize,
                "after appending {n} bytes the file holds {} of {}",
                got.len(),
                expected.len()
            );
            if i % 3 == 0 {
                f.settle().unwrap();
                let got = std::fs::read(&path).unwrap();
                assert!(got == expected, "settled after appending {n} bytes");
            }
        }
        f.sync_and_let_go().unwrap();
        assert!(std::fs::read(&path).unwrap() == expected);
        f
    }

    #[test]
    fn direct_appends_leave_the_file_exactly_as_written_whatever_their_length() {
        // tempfile's directory is on the disk here, whose file system does direct I/O: the
        // appender must say it uses it. Where it cannot, the appends go through the page
        // cache and must leave the same bytes.
        let dir = tempfile::tempdir().unwrap();
        let f = append_and_check(dir.path(), |p| Appended::open(p).unwrap());
        let probe = dir.path().join("probe");
        match DirectFile::open(&probe).unwrap() {
            Some(_) => assert!(matches!(f, Appended::Direct(_)), "{f:?}"),
            None => assert!(matches!(f, Appended::Cached { .. })),
        }
    }

    /// A new file opened for direct writes with 700 bytes appended; `None` where the file
    /// system has no direct I/O (the tests above check that the page cache is used then).
    fn direct_with_700_bytes() -> Option<(tempfile::TempDir, PathBuf, DirectFile)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let mut f = DirectFile::open(&path).unwrap()?;
        f.append(&[b'a'; 700]).unwrap();
        Some((dir, path, f))
    }

    #[test]
    fn a_file_written_to_behind_a_direct_appender_is_not_written_over() {
        let Some((_dir, path, mut f)) = direct_with_700_bytes() else {
            return;
        };
        f.settle().unwrap();
        let mut other = OpenOptions::new().append(true).open(&path).unwrap();
        other.write_all(b"outside\n").unwrap();
        let e = f.append(&[b'b'; 600]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the file is 708 bytes long, not the 700 this writer left it at: something else wrote to it"
        );
        let mut expected = vec![b'a'; 700];
        expected.extend_from_slice(b"outside\n");
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn a_file_system_that_refuses_a_direct_write_gets_the_bytes_through_the_page_cache() {
        let Some((_dir, path, mut d)) = direct_with_700_bytes() else {
            return;
        };
        // As a file system that said too small a block would be: the next write ends
        // mid-block for the device, which refuses it with EINVAL.
        assert!(d.block >= 512 && d.tail.len() < 256, "{d:?}");
        d.block = 256;
        let mut f = Appended::Direct(d);
        f.append(&[b'b'; 600]).unwrap();
        assert!(matches!(f, Appended::Cached { .. }), "{f:?}");
        f.append(b"c").unwrap();
        let mut expected = vec![b'a'; 700];
        expected.extend_from_slice(&[b'b'; 600]);
        expected.push(b'c');
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn cached_appends_leave_the_file_exactly_as_written_whatever_their_length() {
        let dir = tempfile::tempdir().unwrap();
        append_and_check(dir.path(), |p| {
            Appended::cached(OpenOptions::new().append(true).open(p).unwrap())
        });
    }
}
