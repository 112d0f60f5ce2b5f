//! A small JSON writer for the hot path: decision records and outcome lines are written field
//! by field with static keys, and strings are escaped with a word-at-a-time scan. The output is
//! byte-for-byte what `serde_json` writes for the same record (tested in `record.rs`), so the
//! serde types stay the schema's definition.

/// Appends `s` as a JSON string (quoted, escaped like `serde_json`).
#[inline]
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(out, s.as_bytes());
    out.push(b'"');
}

/// Appends `s` quoted without looking for bytes to escape: for values that cannot hold any
/// (identifiers the gateway makes, names fixed in the code, country codes, HTTP method
/// tokens). Debug builds check the claim.
#[inline(always)]
pub fn safe_string(out: &mut Vec<u8>, s: &str) {
    debug_assert_eq!(
        crate::jsonstr::plain_len(s.as_bytes()),
        s.len(),
        "{s:?} needs escaping"
    );
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// [`safe_string`] for text held as bytes that are printable ASCII by construction (country
/// codes, timestamps): written as they are, without a UTF-8 check.
#[inline(always)]
pub fn safe_ascii(out: &mut Vec<u8>, b: &[u8]) {
    debug_assert!(
        b.iter().all(|c| c.is_ascii_graphic()) && crate::jsonstr::plain_len(b) == b.len(),
        "{b:?} is not plain ASCII"
    );
    out.push(b'"');
    out.extend_from_slice(b);
    out.push(b'"');
}

/// Appends `"key":` for a key that needs no escaping.
// Always inlined: at each call site the key is a literal, so its copy is a few fixed stores
// instead of a call to `memcpy`.
#[inline(always)]
pub fn key(out: &mut Vec<u8>, k: &'static str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `null` or the string.
pub fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

pub fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends an unsigned integer.
pub fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0u8; 20]));
}

/// `n` in decimal digits, written right to left into `digits`, without the formatting
/// machinery.
pub fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// Appends `[` items `]`, each written by `f`.
pub fn array<T>(out: &mut Vec<u8>, items: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        f(out, item);
    }
    out.push(b']');
}

/// The longest key [`Obj`] writes as one piece; a longer one is written in parts.
const PIECE_KEY_MAX: usize = 44;

/// Writes one JSON object: each call adds a member, commas are placed for you.
#[derive(Debug)]
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes the member's `,"key":` (without the comma for the first member) as one piece:
    /// the key is a literal at every call site, so the piece is built from constants and
    /// copied with a single capacity check.
    #[inline(always)]
    fn key(&mut self, k: &'static str) -> &mut Vec<u8> {
        let kb = k.as_bytes();
        let n = kb.len();
        if n > PIECE_KEY_MAX {
            if !self.first {
                self.out.push(b',');
            }
            self.first = false;
            key(self.out, k);
            return self.out;
        }
        let mut piece = [0u8; PIECE_KEY_MAX + 4];
        piece[0] = b',';
        piece[1] = b'"';
        piece[2..2 + n].copy_from_slice(kb);
        piece[2 + n] = b'"';
        piece[3 + n] = b':';
        if self.first {
            self.first = false;
            self.out.extend_from_slice(&piece[1..4 + n]);
        } else {
            self.out.extend_from_slice(&piece[..4 + n]);
        }
        self.out
    }

    #[inline(always)]
    pub fn str(&mut self, k: &'static str, v: &str) -> &mut Self {
        string(self.key(k), v);
        self
    }

    /// A member whose value needs no escaping (see [`safe_string`]).
    #[inline(always)]
    pub fn safe(&mut self, k: &'static str, v: &str) -> &mut Self {
        safe_string(self.key(k), v);
        self
    }

    /// `null`, or printable ASCII bytes that need no escaping (see [`safe_ascii`]).
    #[inline(always)]
    pub fn opt_ascii(&mut self, k: &'static str, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => safe_ascii(self.key(k), b),
            None => self.key(k).extend_from_slice(b"null"),
        }
        self
    }

    #[inline(always)]
    pub fn opt_str(&mut self, k: &'static str, v: Option<&str>) -> &mut Self {
        opt_string(self.key(k), v);
        self
    }

    #[inline(always)]
    pub fn num(&mut self, k: &'static str, v: u64) -> &mut Self {
        number(self.key(k), v);
        self
    }

    #[inline(always)]
    pub fn opt_num(&mut self, k: &'static str, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => number(self.key(k), n),
            None => self.key(k).extend_from_slice(b"null"),
        }
        self
    }

    #[inline(always)]
    pub fn bool(&mut self, k: &'static str, v: bool) -> &mut Self {
        boolean(self.key(k), v);
        self
    }

    /// A member whose value `f` writes (an object, an array, `null`).
    #[inline(always)]
    pub fn with(&mut self, k: &'static str, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        f(self.key(k));
        self
    }

    /// A member whose value is printable ASCII bytes needing no escape (see [`safe_ascii`]).
    #[inline(always)]
    pub fn ascii(&mut self, k: &'static str, v: &[u8]) -> &mut Self {
        safe_ascii(self.key(k), v);
        self
    }

    /// An array member, each item written by `f`.
    #[inline(always)]
    pub fn array<T>(
        &mut self,
        k: &'static str,
        items: &[T],
        f: impl FnMut(&mut Vec<u8>, &T),
    ) -> &mut Self {
        array(self.key(k), items, f);
        self
    }

    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

fn escaped(out: &mut Vec<u8>, b: &[u8]) {
    // Almost every string needs no escape: found a word at a time, then copied in runs.
    let mut start = 0;
    let mut i = 0;
    loop {
        i += crate::jsonstr::plain_len(&b[i..]);
        if i == b.len() {
            break;
        }
        let c = b[i];
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&b[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 0xf) as usize],
                ]);
                i += 1;
                start = i;
                continue;
            }
            // `plain_len` stops only at the bytes above.
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_comma_separated_whatever_the_length_of_their_keys() {
        const LONG: &str = "a_key_longer_than_the_piece_a_member_is_built_in_on_the_stack";
        assert!(LONG.len() > PIECE_KEY_MAX);
        let mut out = Vec::new();
        Obj::new(&mut out)
            .str(LONG, "v")
            .num("n", 1)
            .with("o", |o| Obj::new(o).bool("b", true).end())
            .with(LONG, |o| Obj::new(o).end())
            .str("s", "t")
            .end();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"{LONG}":"v","n":1,"o":{{"b":true}},"{LONG}":{{}},"s":"t"}}"#)
        );
        let mut out = Vec::new();
        Obj::new(&mut out).num("only", 7).end();
        assert_eq!(out, br#"{"only":7}"#);
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "",
            "plain",
            "a \"quoted\" \\ back",
            "tab\tnew\nline\r\u{8}\u{c}\u{1}\u{1f}",
            "ünïcødé and 日本語 \u{7f}",
            "exactly8",
            "0123456789abcdef\"0123456789abcdef",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        for n in [0u64, 7, 10, 1_795_910_466, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
