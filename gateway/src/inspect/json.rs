//! A streaming JSON walker: validates the document, decodes every string (keys too) and hands it
//! to the detectors with its location. Iterative, so nesting depth costs no stack; the pointer is
//! only built when something is found.

use super::detect::{self, Hit};

/// Why a document could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    Invalid,
    TooDeep,
}

enum Seg<'a> {
    Key(std::borrow::Cow<'a, str>),
    Index(usize),
}

enum Frame {
    Object,
    Array(usize),
}

struct Walker<'a, F: FnMut(Hit, String)> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    path: Vec<Seg<'a>>,
    out: F,
    max_depth: usize,
}

/// Walks `s`, calling `out(hit, json_pointer)` for every finding.
pub fn walk(s: &str, max_depth: usize, out: impl FnMut(Hit, String)) -> Result<(), JsonError> {
    let mut w = Walker {
        s,
        b: s.as_bytes(),
        i: 0,
        path: Vec::new(),
        out,
        max_depth,
    };
    w.document()
}

/// RFC 6901 pointer for `path`, with segments that are themselves personal data masked.
fn pointer(path: &[Seg<'_>], last_key_is_value: bool) -> String {
    let mut p = String::new();
    for (n, seg) in path.iter().enumerate() {
        p.push('/');
        match seg {
            Seg::Index(i) => p.push_str(&i.to_string()),
            Seg::Key(k) => {
                let is_last = n + 1 == path.len();
                if (is_last && last_key_is_value) || !super::safe_key(k) {
                    p.push('*');
                } else {
                    for c in k.chars() {
                        match c {
                            '~' => p.push_str("~0"),
                            '/' => p.push_str("~1"),
                            c => p.push(c),
                        }
                    }
                }
            }
        }
    }
    p
}

impl<'a, F: FnMut(Hit, String)> Walker<'a, F> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(JsonError::Invalid)
        }
    }

    fn document(&mut self) -> Result<(), JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        // Parse one value, then loop over container continuations.
        'value: loop {
            self.ws();
            match self.peek().ok_or(JsonError::Invalid)? {
                b'{' => {
                    self.i += 1;
                    if stack.len() >= self.max_depth {
                        return Err(JsonError::TooDeep);
                    }
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(Frame::Object);
                        self.key()?;
                        continue 'value;
                    }
                }
                b'[' => {
                    self.i += 1;
                    if stack.len() >= self.max_depth {
                        return Err(JsonError::TooDeep);
                    }
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(Frame::Array(0));
                        self.path.push(Seg::Index(0));
                        continue 'value;
                    }
                }
                b'"' => {
                    let v = self.string()?;
                    if !v.is_empty() {
                        let path = &self.path;
                        let out = &mut self.out;
                        detect::scan(&v, |h| out(h, pointer(path, false)));
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(JsonError::Invalid),
            }
            // After a value: close containers or move to the next member.
            loop {
                let Some(top) = stack.last_mut() else {
                    self.ws();
                    return if self.i == self.b.len() {
                        Ok(())
                    } else {
                        Err(JsonError::Invalid)
                    };
                };
                self.ws();
                match (top, self.peek()) {
                    (Frame::Object, Some(b',')) => {
                        self.i += 1;
                        self.path.pop();
                        self.key()?;
                        continue 'value;
                    }
                    (Frame::Array(n), Some(b',')) => {
                        self.i += 1;
                        *n += 1;
                        let n = *n;
                        self.path.pop();
                        self.path.push(Seg::Index(n));
                        continue 'value;
                    }
                    (Frame::Object, Some(b'}')) | (Frame::Array(_), Some(b']')) => {
                        self.i += 1;
                        self.path.pop();
                        stack.pop();
                    }
                    _ => return Err(JsonError::Invalid),
                }
            }
        }
    }

    /// Reads `"key":`, scans the key (keys can be data) and pushes it on the path.
    fn key(&mut self) -> Result<(), JsonError> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(JsonError::Invalid);
        }
        let k = self.string()?;
        self.path.push(Seg::Key(k));
        if let Some(Seg::Key(k)) = self.path.last() {
            let path = &self.path;
            let out = &mut self.out;
            detect::scan(k, |h| out(h, pointer(path, true)));
        }
        self.expect(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(JsonError::Invalid)
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |w: &mut Self| {
            let s = w.i;
            while w.peek().is_some_and(|c| c.is_ascii_digit()) {
                w.i += 1;
            }
            w.i - s
        };
        let int_start = self.i;
        if digits(self) == 0 || (self.b[int_start] == b'0' && self.i - int_start > 1) {
            return Err(JsonError::Invalid);
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(JsonError::Invalid);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(JsonError::Invalid);
            }
        }
        debug_assert!(self.i > start);
        Ok(())
    }

    /// Reads a string starting at `"`, returning its decoded text.
    fn string(&mut self) -> Result<std::borrow::Cow<'a, str>, JsonError> {
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes.
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    let s = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(std::borrow::Cow::Borrowed(s));
                }
                b'\\' => break,
                0..=0x1f => return Err(JsonError::Invalid),
                _ => self.i += 1,
            }
        }
        let mut out = String::from(&self.s[start..self.i]);
        loop {
            let c = *self.b.get(self.i).ok_or(JsonError::Invalid)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(std::borrow::Cow::Owned(out));
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1).ok_or(JsonError::Invalid)?;
                    self.i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.i) != Some(&b'\\')
                                    || self.b.get(self.i + 1) != Some(&b'u')
                                {
                                    return Err(JsonError::Invalid);
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::Invalid);
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(JsonError::Invalid);
                            } else {
                                hi
                            };
                            out.push(char::from_u32(ch).ok_or(JsonError::Invalid)?);
                        }
                        _ => return Err(JsonError::Invalid),
                    }
                }
                0..=0x1f => return Err(JsonError::Invalid),
                _ => {
                    // Copy a run of plain bytes at once (the input is valid UTF-8).
                    let run = self.b[self.i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .unwrap_or(self.b.len() - self.i);
                    out.push_str(&self.s[self.i..self.i + run]);
                    self.i += run;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(JsonError::Invalid)?;
        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(JsonError::Invalid);
        }
        self.i += 4;
        u32::from_str_radix(h, 16).map_err(|_| JsonError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domicile_policy::Category;

    fn findings(s: &str) -> Result<Vec<(Category, String)>, JsonError> {
        let mut v = Vec::new();
        walk(s, 64, |h, p| v.push((h.category, p)))?;
        Ok(v)
    }

    #[test]
    fn nested_objects_and_arrays_give_pointers() {
        let doc = r#"{"customer":{"name":"x","contacts":[{"email":"jane@example.com"},{"phone":"+49 30 901820"}]},"a/b":["c@d.io"]}"#;
        assert_eq!(
            findings(doc).unwrap(),
            vec![
                (Category::Email, "/customer/contacts/0/email".into()),
                (Category::Phone, "/customer/contacts/1/phone".into()),
                (Category::Email, "/*/0".into()),
            ]
        );
    }

    #[test]
    fn keys_that_look_like_data_are_masked_in_locations() {
        let doc = r#"{"accounts":{"DE89370400440532013000":{"email":"a@b.io"}},"Jane Doe":{"e":"c@d.io"}}"#;
        assert_eq!(
            findings(doc).unwrap(),
            vec![
                (Category::Email, "/accounts/*/email".into()),
                (Category::Email, "/*/e".into()),
            ]
        );
    }

    #[test]
    fn escapes_are_decoded_before_detection() {
        let doc = r#"{"e":"\u006a\u0061ne@example.com"}"#;
        assert_eq!(findings(doc).unwrap(), vec![(Category::Email, "/e".into())]);
    }

    #[test]
    fn keys_that_are_data_are_found_and_masked() {
        let doc = r#"{"by_email":{"jane@example.com":{"vip":true}}}"#;
        assert_eq!(
            findings(doc).unwrap(),
            vec![(Category::Email, "/by_email/*".into())]
        );
    }

    #[test]
    fn invalid_documents_are_refused() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":}",
            "{\"a\" 1}",
            "01",
            "[1 2]",
            "\"\\ud800\"",
            "{\"a\":1}x",
            "[\"\u{1}\"]",
            "tru",
            "-",
        ] {
            assert_eq!(findings(bad).unwrap_err(), JsonError::Invalid, "{bad:?}");
        }
        for ok in [
            "1",
            "[]",
            "{}",
            "[1.5e-3,-0,true,false,null,\"\"]",
            "\"\\ud83d\\ude00\"",
        ] {
            assert!(findings(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn depth_is_limited_without_recursion() {
        let deep = "[".repeat(100_000);
        assert_eq!(findings(&deep).unwrap_err(), JsonError::TooDeep);
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(findings(&ok).is_ok());
    }
}
