//! SHA-256 of chained lines that begin with the same bytes as earlier ones.
//!
//! SHA-256 reads its input 64 bytes at a time and carries a 32-byte state from one block to the
//! next, so the state after the first k blocks depends on those blocks only. The decision
//! records of one route with one outcome are alike up to the values that change from request
//! to request, and a record writes those last (the subject, the decision id, the time): such
//! records begin with the same blocks. [`PrefixHasher`] keeps the state reached after blocks
//! two lines had in common and, for a later line that begins with the same bytes, goes on from
//! that state instead of hashing them again. The digest is the SHA-256 of the whole line either
//! way; only the work differs.
//!
//! A line is compared byte for byte with the line a state was taken from before the state is
//! used, so a state is never applied to bytes it did not hash.

use sha2::{Digest, Sha256};

/// States kept: enough for the decision records of a few routes or outcomes at once.
const SLOTS: usize = 4;
/// Lines shorter than this are hashed whole: too few blocks to be worth comparing.
const MIN_LINE: usize = 512;
/// A state is kept only when it covers at least this many bytes.
const MIN_SHARED: usize = 256;
/// SHA-256's block size.
const BLOCK: usize = 64;

/// A state and the line it was taken from.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// The line whose first `covers` bytes `state` has hashed (all of it is kept, to find
    /// how much a later line shares with it).
    line: Vec<u8>,
    /// How many bytes `state` has hashed: a multiple of 64, 0 while no state is kept.
    covers: usize,
    state: Sha256,
    /// When the slot was last used, to pick the one to replace.
    used: u64,
}

/// SHA-256 that reuses the state over blocks a line shares with an earlier one.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixHasher {
    slots: [Slot; SLOTS],
    tick: u64,
}

impl PrefixHasher {
    /// The SHA-256 of `line`.
    pub(crate) fn digest(&mut self, line: &[u8]) -> [u8; 32] {
        if line.len() < MIN_LINE {
            return Sha256::digest(line).into();
        }
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        // A kept state over bytes the line begins with.
        if let Some(slot) = self.slots.iter_mut().find(|s| {
            s.covers > 0 && line.len() >= s.covers && line[..s.covers] == s.line[..s.covers]
        }) {
            slot.used = tick;
            let mut h = slot.state.clone();
            h.update(&line[slot.covers..]);
            return h.finalize().into();
        }
        // None: the waiting line (one without a state) sharing the most with this one. A
        // slot with a state is not narrowed to a line that shares less of it: lines of
        // another kind get their own slot.
        let best = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.covers == 0)
            .map(|(i, s)| (i, common_prefix(line, &s.line) / BLOCK * BLOCK))
            .max_by_key(|&(i, covers)| (covers, std::cmp::Reverse(i)));
        match best {
            // Enough in common: keep the state over it.
            Some((i, covers)) if covers >= MIN_SHARED => {
                let slot = &mut self.slots[i];
                let mut h = Sha256::new();
                h.update(&line[..covers]);
                slot.state = h.clone();
                slot.covers = covers;
                slot.line.clear();
                slot.line.extend_from_slice(line);
                slot.used = tick;
                h.update(&line[covers..]);
                h.finalize().into()
            }
            // Otherwise the line waits in the least recently used slot for one like it.
            _ => {
                if let Some(slot) = self.slots.iter_mut().min_by_key(|s| s.used) {
                    slot.line.clear();
                    slot.line.extend_from_slice(line);
                    slot.covers = 0;
                    slot.used = tick;
                }
                Sha256::digest(line).into()
            }
        }
    }
}

/// How many leading bytes `a` and `b` have in common.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut at = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        let differ = x ^ y;
        if differ != 0 {
            // Little-endian: the first differing byte holds the lowest set bit.
            return at + (differ.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a[at..]
        .iter()
        .zip(&b[at..])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(line: &[u8]) -> [u8; 32] {
        Sha256::digest(line).into()
    }

    /// A record-like line: `common` bytes shared by every line of its `kind`, then a part
    /// that differs per line.
    fn line(kind: u8, common: usize, n: u64) -> Vec<u8> {
        let mut l = vec![b'a' + kind; common];
        l.extend_from_slice(format!("\"decision_id\":\"{n:026}\",\"time\":\"{n}\"}}").as_bytes());
        l
    }

    #[test]
    fn common_prefix_counts_the_leading_equal_bytes() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).collect();
            assert_eq!(common_prefix(&a, &a), n);
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x80;
                assert_eq!(common_prefix(&a, &b), at, "length {n}, differing at {at}");
                assert_eq!(common_prefix(&a[..at], &a), at);
            }
        }
    }

    #[test]
    fn every_digest_is_the_sha256_of_the_whole_line() {
        let mut h = PrefixHasher::default();
        // Alike lines (a state is kept and reused), two kinds interleaved, lines that share
        // less than a kept state covers, short lines, and lines that share nothing.
        let mut lines = Vec::new();
        for n in 0..50u64 {
            lines.push(line(0, 1300, n));
            lines.push(line(1, 900, n));
            if n % 7 == 0 {
                let mut l = line(0, 1300, n);
                l[700] = b'!';
                lines.push(l);
            }
            if n % 5 == 0 {
                lines.push(line(2, 100, n));
                lines.push((0..2000u32).map(|i| (i * 7 + n as u32) as u8).collect());
            }
        }
        for l in &lines {
            assert_eq!(h.digest(l), sha(l));
        }
    }

    #[test]
    fn a_kept_state_is_used_only_for_the_bytes_it_hashed() {
        let mut h = PrefixHasher::default();
        let a = line(0, 1300, 1);
        let b = line(0, 1300, 2);
        assert_eq!(h.digest(&a), sha(&a));
        assert_eq!(h.digest(&b), sha(&b));
        assert_eq!(h.slots.iter().map(|s| s.covers).max(), Some(1280));
        // One byte changed inside the covered blocks, at either end of them.
        for at in [0, 63, 64, 1279] {
            let mut c = line(0, 1300, 3);
            c[at] ^= 1;
            assert_eq!(h.digest(&c), sha(&c), "changed at {at}");
        }
        // A line as long as the covered part only, and one ending inside it.
        for len in [1280, 1279, 600] {
            let c = &line(0, 1300, 4)[..len];
            assert_eq!(h.digest(c), sha(c), "length {len}");
        }
    }

    #[test]
    fn alike_lines_reuse_the_state_and_other_kinds_get_their_own() {
        let mut h = PrefixHasher::default();
        for n in 0..4 {
            h.digest(&line(0, 1300, n));
            h.digest(&line(1, 900, n));
        }
        let mut covers: Vec<usize> = h.slots.iter().map(|s| s.covers).collect();
        covers.sort_unstable();
        assert_eq!(covers, [0, 0, 896, 1280]);
        // The states were taken from the second line of each kind and served the later ones
        // (the last line of each kind used them) without being taken again.
        for (kind, common, covers) in [(0, 1300, 1280), (1, 900, 896)] {
            let Some(slot) = h.slots.iter().find(|s| s.covers == covers) else {
                panic!("no state over {covers} bytes");
            };
            assert_eq!(slot.line, line(kind, common, 1));
            assert_eq!(slot.used, h.tick - 1 + u64::from(kind));
        }
        // A line sharing only part of the first kind's state leaves that state as it was.
        let mut c = line(0, 1300, 9);
        c[700] = b'!';
        h.digest(&c);
        assert!(h.slots.iter().any(|s| s.covers == 1280));
    }
}
