//! Lower-case hexadecimal digits for the identifiers and digests the hot path writes (decision
//! ids, the trace chain's hashes), eight digits at a time with word arithmetic instead of a
//! table lookup per digit.

/// The eight hex digits of `v`, most significant first.
#[inline]
pub fn digits8(v: u32) -> [u8; 8] {
    let mut x = u64::from(v);
    // Each nibble into a byte of its own, the first digit in the top byte.
    x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    x = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // 1 in each byte whose nibble is 10 or more; those get 'a' - 10, the rest '0'.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * (u64::from(b'a') - u64::from(b'0') - 10)).to_be_bytes()
}

/// The 64 hex digits of a 32-byte digest.
#[inline]
pub fn digest(d: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (o, w) in out
        .as_chunks_mut::<8>()
        .0
        .iter_mut()
        .zip(d.as_chunks::<4>().0)
    {
        *o = digits8(u32::from_be_bytes(*w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_match_the_formatter_for_every_nibble_in_every_place() {
        for v in [
            0u32,
            1,
            9,
            10,
            15,
            16,
            0x0123_4567,
            0x89ab_cdef,
            0xfedc_ba98,
            0xa0a0_a0a0,
            0x9999_9999,
            u32::MAX,
        ]
        .into_iter()
        .chain((0..16u32).flat_map(|n| (0..8).map(move |p| n << (4 * p))))
        {
            assert_eq!(digits8(v), *format!("{v:08x}").as_bytes(), "{v:#x}");
        }
    }

    #[test]
    fn a_digest_is_written_as_the_hex_crate_writes_it() {
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        assert_eq!(digest(&d).to_vec(), hex::encode(d).into_bytes());
        assert_eq!(digest(&[0xff; 32]).to_vec(), vec![b'f'; 64]);
    }
}
