//! Where the plain run of a JSON string ends: its first `"`, `\` or control character. The
//! same bytes end a string's content when it is read and need an escape when it is written,
//! so the inspection walker and the trace writer share this test. Eight bytes a step within a
//! 64-bit word; the detectors' searches of short values use the same word arithmetic
//! ([`zero_bytes`]).

/// A byte of ones, repeated over a 64-bit word.
pub(crate) const LO: u64 = 0x0101_0101_0101_0101;
/// The top bit of each byte of a 64-bit word.
pub(crate) const HI: u64 = 0x8080_8080_8080_8080;

/// The top bit of each byte of `x` that is zero, exactly (no carry crosses a byte): with `x`
/// a word of text XOR-ed with a repeated byte, where that byte is. ([`stops`] is cheaper and
/// exact only for its lowest mark, which is all that finding an end needs.)
#[inline]
pub(crate) fn zero_bytes(x: u64) -> u64 {
    !((x & !HI).wrapping_add(!HI) | x) & HI
}

/// The top bit of each byte of `w` that is `"`, `\` or below 0x20. A borrow can mark a byte
/// above one that is marked rightly, never one below it, so the lowest mark is exact.
#[inline]
pub(crate) fn stops(w: u64) -> u64 {
    let below_space = w.wrapping_sub(LO * 0x20) & !w;
    let quote = w ^ (LO * u64::from(b'"'));
    let backslash = w ^ (LO * u64::from(b'\\'));
    let has_quote = quote.wrapping_sub(LO) & !quote;
    let has_backslash = backslash.wrapping_sub(LO) & !backslash;
    (below_space | has_quote | has_backslash) & HI
}

/// How many bytes of `b` come before its first `"`, `\` or control character (`b.len()` when
/// there is none).
#[inline]
pub fn plain_len(b: &[u8]) -> usize {
    let (words, _) = b.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let marks = stops(u64::from_le_bytes(*w));
        if marks != 0 {
            return k * 8 + (marks.trailing_zeros() / 8) as usize;
        }
    }
    let done = words.len() * 8;
    if done == b.len() {
        return done;
    }
    // The tail, shorter than a word. With a word before it, the last eight bytes are read
    // again (those before the tail are known plain); a short string is read a byte at a time
    // into a word padded with spaces, which are plain. Neither copies through `memcpy`, which
    // for the short strings of a record costs more than the test.
    let (at, word) = if b.len() >= 8 {
        let last: [u8; 8] = match b[b.len() - 8..].try_into() {
            Ok(w) => w,
            Err(_) => return done,
        };
        (b.len() - 8, u64::from_le_bytes(last))
    } else {
        let mut word = 0u64;
        for (k, &c) in b.iter().enumerate() {
            word |= u64::from(c) << (8 * k);
        }
        (0, word | (LO * u64::from(b' ')) << (8 * b.len()))
    };
    let marks = stops(word);
    if marks != 0 {
        return at + (marks.trailing_zeros() / 8) as usize;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_test_finds_the_first_stop_at_every_place() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [0u8, 0x1f, b'\n', b'"', b'\\'] {
                    // Plain bytes around it, high ones included, and a later stop that must
                    // not be taken for the first.
                    let mut b: Vec<u8> = (0..len).map(|n| b"a\xff \x7f~9\xc3"[n % 7]).collect();
                    if at < len {
                        b[at] = stop;
                        if at + 1 < len {
                            b[len - 1] = b'"';
                        }
                    }
                    let want = b
                        .iter()
                        .position(|&c| c < 0x20 || c == b'"' || c == b'\\')
                        .unwrap_or(len);
                    assert_eq!(plain_len(&b), want, "{b:?}");
                }
            }
        }
    }
}
