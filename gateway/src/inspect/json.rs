//! A streaming JSON walker: validates the document, decodes every string (keys too) and hands it
//! to the detectors with its location and the name of its field. Iterative, so nesting depth
//! costs no stack; the pointer is only built when something is found; a string without escapes
//! is scanned where it lies, and a key's lexicon meaning is looked up once per distinct key.
//!
//! Adjacent short values in one object are also read together, so that a value split across
//! fields (`{"cc":"+33","number":"612345678"}`, an IBAN or card number in groups, an address
//! as `{"user":"jane","domain":"example.com"}`) is found where a format makes that detectable.

use std::borrow::Cow;

use super::detect::lexicon::{self, Field};
use super::detect::{self, Hit, Profile, Value};
use super::fragments::{Fragments, NameHints};

/// Why a document could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    Invalid,
    TooDeep,
}

/// One step of the path to a value: a member's key, or an item's index.
pub(crate) enum Seg<'a> {
    Key(Cow<'a, str>, KeyInfo),
    Index(usize),
}

impl Seg<'_> {
    /// The member's key.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Seg::Key(k, _) => Some(k),
            Seg::Index(_) => None,
        }
    }

    /// The item's index.
    pub(crate) fn index(&self) -> Option<usize> {
        match self {
            Seg::Key(..) => None,
            Seg::Index(n) => Some(*n),
        }
    }

    /// Whether the key may appear in a location as it is ([`super::safe_key`]).
    pub(crate) fn shown(&self) -> bool {
        match self {
            Seg::Key(_, info) => info.safe,
            Seg::Index(_) => true,
        }
    }
}

/// Told of the document's structure as the walker reads it (a route's field map reads the
/// body this way, in the same pass).
pub(crate) trait Structure {
    /// Whether the walker tells this observer anything (the unit observer hears nothing).
    const ACTIVE: bool = true;
    /// A value starts at `path`: `first` is its first byte, and `empty` says it is `null`,
    /// `""`, `{}` or `[]`.
    fn value(&mut self, path: &[Seg<'_>], first: u8, empty: bool);
    /// The innermost object or array that was not empty ends.
    fn end(&mut self);
}

impl Structure for () {
    const ACTIVE: bool = false;
    fn value(&mut self, _: &[Seg<'_>], _: u8, _: bool) {}
    fn end(&mut self) {}
}

/// What a key says, worked out once per distinct key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct KeyInfo {
    field: Option<Field>,
    /// What the key says about the part of an address its value is.
    hints: NameHints,
    /// The key itself may be personal data (a detector fires on it).
    personal: bool,
    /// The key may appear in a location as it is ([`super::safe_key`]).
    safe: bool,
}

impl KeyInfo {
    fn of(k: &str) -> KeyInfo {
        let personal = detect::is_personal(k);
        KeyInfo {
            field: lexicon::classify(k),
            hints: NameHints::of(k),
            personal,
            safe: super::plain_key(k) && !personal,
        }
    }
}

/// What keys mean, remembered per thread: an API's keys are few and repeat in every request.
/// Direct-mapped by a hash of the key, so a lookup is one hash and one comparison; keys that
/// are themselves personal data, and long keys, are never remembered.
struct KeyCache {
    slots: Vec<Option<KeySlot>>,
}

/// A remembered key: its length and first and last eight bytes (which are the whole key up
/// to sixteen bytes), and the bytes between them for longer keys.
#[derive(Clone)]
struct KeySlot {
    len: usize,
    head: u64,
    tail: u64,
    middle: Box<[u8]>,
    info: KeyInfo,
}

/// Slots in a [`KeyCache`] (a power of two).
const KEY_SLOTS: usize = 1024;

/// The first and last eight bytes of a key (a shorter key packed into the first).
fn key_words(k: &[u8]) -> (u64, u64) {
    let n = k.len();
    if n >= 8 {
        let mut head = [0u8; 8];
        let mut tail = [0u8; 8];
        head.copy_from_slice(&k[..8]);
        tail.copy_from_slice(&k[n - 8..]);
        (u64::from_le_bytes(head), u64::from_le_bytes(tail))
    } else {
        let mut head = 0u64;
        for (i, &c) in k.iter().enumerate() {
            head |= u64::from(c) << (8 * i);
        }
        (head, 0)
    }
}

impl KeyCache {
    fn new() -> KeyCache {
        KeyCache {
            slots: vec![None; KEY_SLOTS],
        }
    }

    fn get(&mut self, k: &str) -> KeyInfo {
        let b = k.as_bytes();
        let n = b.len();
        if n > 64 {
            return KeyInfo::of(k);
        }
        let middle = b.get(8..n.saturating_sub(8)).unwrap_or_default();
        let (head, tail) = key_words(b);
        self.get_words(k, head, tail, middle)
    }

    /// [`Self::get`] with the key's words already read. The lookup is inlined where keys are
    /// read (with `#[inline]` alone the compiler stopped inlining it once the key reader was
    /// inlined); a key met for the first time is worked out out of line.
    #[inline(always)]
    fn get_words(&mut self, k: &str, head: u64, tail: u64, middle: &[u8]) -> KeyInfo {
        let n = k.len();
        let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
        let at = (h >> 40) as usize & (KEY_SLOTS - 1);
        if let Some(Some(s)) = self.slots.get(at)
            && s.len == n
            && s.head == head
            && s.tail == tail
            // Compared only when there is one: an empty middle is a dangling pointer, and
            // memcmp's masked vector load from it costs a microcode assist.
            && (n <= 16 || *s.middle == *middle)
        {
            return s.info;
        }
        self.learn(at, k, head, tail, middle)
    }

    /// Works out what a key not remembered in slot `at` says, and remembers it there.
    #[cold]
    #[inline(never)]
    fn learn(&mut self, at: usize, k: &str, head: u64, tail: u64, middle: &[u8]) -> KeyInfo {
        let n = k.len();
        let Some(slot) = self.slots.get_mut(at) else {
            return KeyInfo::of(k);
        };
        let info = KeyInfo::of(k);
        if !info.personal {
            *slot = Some(KeySlot {
                len: n,
                head,
                tail,
                middle: middle.into(),
                info,
            });
        }
        info
    }
}

thread_local! {
    static KEYS: std::cell::RefCell<KeyCache> = std::cell::RefCell::new(KeyCache::new());
    /// For the claims of a token met in a walk ([`walk_claims`]).
    static CLAIM_KEYS: std::cell::RefCell<KeyCache> = std::cell::RefCell::new(KeyCache::new());
}

/// Walks the claims of a token met while a document is walked, with a key cache of their own
/// (kept per thread, like the walk's). `None` when a token's claims are already being walked on
/// this thread (a token inside a token's claims): those are left to be read as text, so that
/// no value costs more than one walk of its own.
pub(crate) fn walk_claims(
    s: &str,
    max_depth: usize,
    out: impl FnMut(Hit, Location<'_, '_>),
) -> Option<Result<(), JsonError>> {
    CLAIM_KEYS.with(|keys| {
        let mut keys = keys.try_borrow_mut().ok()?;
        Some(walk_with(s, max_depth, &mut keys, out, &mut ()))
    })
}

enum Frame {
    Object,
    Array(usize),
}

struct Walker<'a, 'k, 'o, F: FnMut(Hit, Location<'_, '_>), S: Structure> {
    s: &'a str,
    keys: &'k mut KeyCache,
    b: &'a [u8],
    i: usize,
    path: Vec<Seg<'a>>,
    out: F,
    max_depth: usize,
    /// Adjacent short values of the current object, joined.
    frags: Fragments,
    obs: &'o mut S,
}

/// Walks `s`, calling `out(hit, json_pointer)` for every finding.
pub fn walk(
    s: &str,
    max_depth: usize,
    out: impl FnMut(Hit, Location<'_, '_>),
) -> Result<(), JsonError> {
    walk_observed(s, max_depth, out, &mut ())
}

/// [`walk`], telling `obs` of the document's structure on the way.
pub(crate) fn walk_observed<S: Structure>(
    s: &str,
    max_depth: usize,
    out: impl FnMut(Hit, Location<'_, '_>),
    obs: &mut S,
) -> Result<(), JsonError> {
    KEYS.with(|keys| match keys.try_borrow_mut() {
        Ok(mut keys) => walk_with(s, max_depth, &mut keys, out, obs),
        // A walk inside a walk (never on the request path) remembers keys on its own.
        Err(_) => walk_with(s, max_depth, &mut KeyCache::new(), out, obs),
    })
}

fn walk_with<S: Structure>(
    s: &str,
    max_depth: usize,
    keys: &mut KeyCache,
    out: impl FnMut(Hit, Location<'_, '_>),
    obs: &mut S,
) -> Result<(), JsonError> {
    let mut w = Walker {
        s,
        keys,
        b: s.as_bytes(),
        i: 0,
        path: Vec::new(),
        out,
        max_depth,
        frags: Fragments::default(),
        obs,
    };
    w.document()
}

/// Where a finding is. Its pointer is built only when asked for: a sink that already holds
/// as many findings as it keeps need not build one for each further finding.
pub struct Location<'p, 'a>(At<'p, 'a>);

enum At<'p, 'a> {
    /// At `path`; `true` when the last key is itself the value found.
    Path(&'p [Seg<'a>], bool),
    /// A pointer built already.
    Built(String),
}

// Shown as its (masked) pointer: the path's keys may be data.
impl std::fmt::Debug for Location<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            At::Path(path, key_is_value) => f
                .debug_tuple("Location")
                .field(&pointer(path, *key_is_value))
                .finish(),
            At::Built(p) => f.debug_tuple("Location").field(p).finish(),
        }
    }
}

impl Location<'_, '_> {
    /// The RFC 6901 pointer, with segments that are themselves personal data masked.
    pub fn pointer(self) -> String {
        match self.0 {
            At::Path(path, key_is_value) => pointer(path, key_is_value),
            At::Built(p) => p,
        }
    }
}

/// RFC 6901 pointer for `path`, with segments that are themselves personal data masked.
fn pointer(path: &[Seg<'_>], last_key_is_value: bool) -> String {
    // Sized once: a segment's `/` and its key, eight for an index (a longer one grows it), and
    // room for escapes.
    let size = path
        .iter()
        .map(|seg| match seg {
            Seg::Index(_) => 8,
            Seg::Key(k, _) => k.len() + 1,
        })
        .sum::<usize>();
    let mut p = String::with_capacity(size + 8);
    for (n, seg) in path.iter().enumerate() {
        p.push('/');
        match seg {
            Seg::Index(i) => push_index(&mut p, *i),
            Seg::Key(k, info) => {
                let is_last = n + 1 == path.len();
                if (is_last && last_key_is_value) || !info.safe {
                    p.push('*');
                } else if !k.bytes().any(|c| c == b'~' || c == b'/') {
                    p.push_str(k);
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

/// Writes an array index in decimal.
fn push_index(p: &mut String, i: usize) {
    for &d in crate::trace::json::decimal(i as u64, &mut [0u8; 20]) {
        p.push(char::from(d));
    }
}

impl<'a, F: FnMut(Hit, Location<'_, '_>), S: Structure> Walker<'a, '_, '_, F, S> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The next byte that is not whitespace, `self.i` moved to it. A document without
    /// whitespace between its tokens is told so by one comparison.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        match self.b.get(self.i) {
            Some(&c) if c > b' ' => Some(c),
            _ => {
                self.ws();
                self.peek()
            }
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        if self.next() == Some(c) {
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
            let first = self.next().ok_or(JsonError::Invalid)?;
            if S::ACTIVE {
                self.observe(first);
            }
            match first {
                b'{' => {
                    self.i += 1;
                    self.flush();
                    if stack.len() >= self.max_depth {
                        return Err(JsonError::TooDeep);
                    }
                    if self.next() == Some(b'}') {
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
                    if self.next() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(Frame::Array(0));
                        self.path.push(Seg::Index(0));
                        continue 'value;
                    }
                }
                b'"' => {
                    let (v, profile) = self.text()?;
                    if !v.is_empty() {
                        let found = self.string_value(&v, profile);
                        // No run to end, and a value that cannot start one: the common case,
                        // told from the profile without reading the value again.
                        let inert = self.frags.is_empty()
                            && profile.is_some_and(|p| !p.may_be_fragment())
                            && !matches!(self.path.last(), Some(Seg::Key(_, i)) if i.hints.any());
                        if !inert {
                            self.fragment(&v, found);
                        }
                    } else {
                        self.flush();
                    }
                }
                b't' => {
                    self.literal(b"true")?;
                    self.value(Value::Bool(true));
                    self.flush();
                }
                b'f' => {
                    self.literal(b"false")?;
                    self.value(Value::Bool(false));
                    self.flush();
                }
                b'n' => {
                    self.literal(b"null")?;
                    self.flush();
                }
                b'-' | b'0'..=b'9' => {
                    let start = self.i;
                    self.number()?;
                    let n = &self.s[start..self.i];
                    // Most numbers (counts, prices) sit in fields that name nothing and have no
                    // identifier's length: no detector can fire on them.
                    let found = (detect::id_length(n) || self.field().is_some())
                        && self.value(Value::Number(n));
                    // A number right after a calling code is the rest of the phone number
                    // (`{"cc":"+49","number":30901820}`); any other number ends a run.
                    if self.frags.after_calling_code() && n.bytes().all(|c| c.is_ascii_digit()) {
                        self.fragment(n, found);
                    } else {
                        self.flush();
                    }
                }
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
                match (top, self.next()) {
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
                        self.obs.end();
                        self.flush();
                        self.path.pop();
                        stack.pop();
                    }
                    _ => return Err(JsonError::Invalid),
                }
            }
        }
    }

    /// Tells the observer of the value starting here with `first`.
    fn observe(&mut self, first: u8) {
        let after = self.b.get(self.i + 1..).unwrap_or_default();
        let empty = match first {
            b'n' => true,
            b'"' => after.first() == Some(&b'"'),
            b'{' | b'[' => {
                let close = if first == b'{' { b'}' } else { b']' };
                after
                    .iter()
                    .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                    == Some(&close)
            }
            _ => false,
        };
        self.obs.value(&self.path, first, empty);
    }

    /// Reads `"key":`, scans the key (keys can be data) and pushes it on the path. Inlined at
    /// both its calls, with the short-key reader and the cache lookup: an API's documents have
    /// a key every few dozen bytes (the benchmark's catalogue one in 26), and the calls cost
    /// more than the copies.
    #[inline(always)]
    fn key(&mut self) -> Result<(), JsonError> {
        if self.next() != Some(b'"') {
            return Err(JsonError::Invalid);
        }
        let (k, info) = match self.short_key() {
            Some(known) => known,
            None => {
                let k = self.string()?;
                let info = self.keys.get(&k);
                (k, info)
            }
        };
        self.path.push(Seg::Key(k, info));
        if info.personal
            && let Some(Seg::Key(k, _)) = self.path.last()
        {
            let path = &self.path;
            let out = &mut self.out;
            detect::scan(k, |h| out(h, Location(At::Path(path, true))));
        }
        self.expect(b':')
    }

    /// Reads a key of up to sixteen bytes without escapes, `self.i` at its opening quote: its
    /// end and the words the key cache compares are read from the document a word at a time,
    /// where reading the string and then its words would go over it twice.
    #[inline(always)]
    fn short_key(&mut self) -> Option<(Cow<'a, str>, KeyInfo)> {
        let start = self.i + 1;
        let word = |at: usize| -> Option<u64> {
            let w: [u8; 8] = self.b.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(w))
        };
        let head = word(start)?;
        let marks = crate::jsonstr::stops(head);
        let n = if marks != 0 {
            (marks.trailing_zeros() / 8) as usize
        } else {
            let marks = crate::jsonstr::stops(word(start + 8)?);
            if marks == 0 {
                return None;
            }
            8 + (marks.trailing_zeros() / 8) as usize
        };
        if self.b.get(start + n) != Some(&b'"') {
            return None;
        }
        let (head, tail) = if n >= 8 {
            (head, word(start + n - 8)?)
        } else {
            // The bytes after the key are masked off, as `key_words` packs a short key.
            (head & (1u64 << (8 * n)).wrapping_sub(1), 0)
        };
        let k = self.s.get(start..start + n)?;
        self.i = start + n + 1;
        let info = self.keys.get_words(k, head, tail, &[]);
        Some((Cow::Borrowed(k), info))
    }

    /// The field the current value sits in: the nearest key (array items take their array's).
    fn field(&self) -> Option<Field> {
        self.path.iter().rev().find_map(|s| match s {
            Seg::Key(_, f) => Some(f.field),
            Seg::Index(_) => None,
        })?
    }

    /// Runs the detectors on one value; whether anything was found.
    fn value(&mut self, v: Value<'_>) -> bool {
        self.detect(|field, out| detect::scan_classified(field, v, out))
    }

    /// [`Self::value`] for a string, with its profile when the reader learnt it.
    fn string_value(&mut self, v: &str, profile: Option<Profile>) -> bool {
        match profile {
            // The commonest case: a value no detector can fire on, in a field that says nothing.
            // (A token has two or four dots: a small one may look quiet, and is opened.)
            // (A data URL's base64 may be quiet as it stands.)
            Some(p)
                if p.quiet_unless_spelled()
                    && self.field().is_none()
                    && !p.sealed_in(v)
                    && !v.starts_with("data:") =>
            {
                p.spelled_email() && self.detect(|_, out| detect::spelled_email(v, out))
            }
            Some(p) => self.detect(|field, out| detect::scan_str(field, v, &p, out)),
            None => self.value(Value::Str(v)),
        }
    }

    /// Runs `scan` with the current field, reporting its hits at the current location;
    /// whether a value detector fired.
    fn detect(&mut self, scan: impl FnOnce(Option<Field>, &mut dyn FnMut(Hit))) -> bool {
        let field = self.field();
        let path = &self.path;
        let out = &mut self.out;
        let mut found = false;
        scan(field, &mut |h| {
            found |= detect::of_value(&h);
            out(h, Location(At::Path(path, false)))
        });
        found
    }

    /// Adds a short value to the run of adjacent fragments ([`Fragments::add`]).
    fn fragment(&mut self, v: &str, found: bool) {
        let hints = match self.path.last() {
            Some(Seg::Key(_, info)) => info.hints,
            _ => NameHints::default(),
        };
        let field = self.field();
        let path = &self.path;
        let out = &mut self.out;
        self.frags.add(
            v,
            found,
            hints,
            field,
            || pointer(path, false),
            &mut |h, p| out(h, Location(At::Built(p))),
        );
    }

    /// Ends the run of fragments, reporting what it was found to be.
    #[inline]
    fn flush(&mut self) {
        if !self.frags.is_empty() {
            let out = &mut self.out;
            self.frags.flush(&mut |h, p| out(h, Location(At::Built(p))));
        }
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
        // On a local index: the digit loops then keep it in a register.
        let b = self.b;
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - s
        };
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        if digits(&mut i) == 0 || (b[int_start] == b'0' && i - int_start > 1) {
            return Err(JsonError::Invalid);
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(JsonError::Invalid);
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(JsonError::Invalid);
            }
        }
        debug_assert!(i > self.i);
        self.i = i;
        Ok(())
    }

    /// Reads a string value starting at `"`, returning its decoded text and, for a string
    /// without escapes, its profile, learnt in the same pass that finds its end.
    #[inline]
    fn text(&mut self) -> Result<(Cow<'a, str>, Option<Profile>), JsonError> {
        let start = self.i + 1;
        let (run, profile) = detect::json_run(self.b.get(start..).unwrap_or_default());
        self.i = start + run;
        match self.b.get(self.i) {
            Some(b'"') => {
                let s = &self.s[start..self.i];
                self.i += 1;
                Ok((Cow::Borrowed(s), Some(profile)))
            }
            Some(b'\\') => Ok((self.escaped(start).map(Cow::Owned)?, None)),
            _ => Err(JsonError::Invalid),
        }
    }

    /// Reads a key's string starting at `"`, returning its decoded text (a key needs no
    /// profile: what it says is looked up in the key table).
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.i += 1;
        let start = self.i;
        self.i = start + crate::jsonstr::plain_len(&self.b[start..]);
        match self.b.get(self.i) {
            Some(b'"') => {
                let s = &self.s[start..self.i];
                self.i += 1;
                return Ok(Cow::Borrowed(s));
            }
            Some(b'\\') => {}
            _ => return Err(JsonError::Invalid),
        }
        self.escaped(start).map(Cow::Owned)
    }

    /// The rest of a string with escapes, from its start; `self.i` is at the first escape.
    fn escaped(&mut self, start: usize) -> Result<String, JsonError> {
        // Room for the rest of a short value, so that it is not grown a piece at a time.
        let mut out = String::with_capacity(self.i - start + 64);
        out.push_str(&self.s[start..self.i]);
        loop {
            let c = *self.b.get(self.i).ok_or(JsonError::Invalid)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
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
        walk(s, 64, |h, at| v.push((h.category, at.pointer())))?;
        Ok(v)
    }

    #[test]
    fn values_told_no_fragment_would_open_no_run() {
        // Every value of up to four characters over these bytes, and longer ones at random:
        // what the profile says is no fragment leaves an empty run empty.
        let alphabet = ["a", "Z", "0", "9", "+", "-", " ", "@", "é", "１"];
        let mut values = vec![String::new()];
        let mut layer = values.clone();
        for _ in 0..4 {
            layer = layer
                .iter()
                .flat_map(|v| alphabet.iter().map(move |c| format!("{v}{c}")))
                .collect();
            values.extend(layer.iter().cloned());
        }
        let mut r = crate::inspect::corpus::values::Rng::new(3);
        for _ in 0..5_000 {
            values.push(r.pieces(&alphabet, 5, 9));
        }
        let mut told = 0;
        for v in &values {
            let (_, p) = detect::json_run(v.as_bytes());
            if p.may_be_fragment() {
                continue;
            }
            told += 1;
            let mut run = Fragments::default();
            let mut hits = 0;
            run.add(
                v,
                false,
                NameHints::default(),
                None,
                String::new,
                &mut |_, _| hits += 1,
            );
            assert!(run.is_empty() && hits == 0, "{v:?}");
        }
        assert!(told > 5_000, "{told}");
    }

    #[test]
    fn indexes_are_written_in_decimal() {
        for i in [0, 7, 9, 10, 11, 99, 100, 12_345, usize::MAX] {
            let mut p = String::new();
            push_index(&mut p, i);
            assert_eq!(p, i.to_string());
        }
        let doc = format!(r#"{{"list":[{}"jane@example.com"]}}"#, "1,".repeat(12));
        assert_eq!(
            findings(&doc).unwrap(),
            vec![(Category::Email, "/list/12".into())]
        );
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
                (Category::Iban, "/accounts/*".into()),
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
    fn remembered_keys_are_told_apart() {
        let mut cache = KeyCache::new();
        // Keys that share a slot replace each other; every answer is the key's own.
        let keys: Vec<String> = (0..4 * KEY_SLOTS).map(|n| format!("field_{n}")).collect();
        for _ in 0..2 {
            for k in &keys {
                assert_eq!(cache.get(k), KeyInfo::of(k), "{k}");
            }
        }
        // Same length, same first and last eight bytes: the same slot, told apart by the middle.
        let (a, b) = ("customer_email_address", "customer_phone_address");
        assert_eq!(cache.get(a), KeyInfo::of(a));
        assert_eq!(cache.get(b), KeyInfo::of(b));
        assert_ne!(cache.get(a), cache.get(b));
        assert_eq!(cache.get("email").field, lexicon::classify("email"));
        assert_eq!(cache.get("emails").field, lexicon::classify("emails"));
        // A key that is data is never remembered, and never shown.
        let iban = "DE89370400440532013000";
        assert!(cache.get(iban).personal && !cache.get(iban).safe);
        let words = key_words(iban.as_bytes());
        assert!(
            cache
                .slots
                .iter()
                .flatten()
                .all(|s| (s.head, s.tail) != words)
        );
        assert!(cache.get("customer").safe);
    }

    #[test]
    fn keys_of_every_length_are_read_where_they_lie_or_decoded() {
        // Lengths around both words of the short-key reading, with the document ending right
        // after the value (fewer than eight or sixteen bytes left) or with room after it.
        for len in 0..24 {
            let key: String = "email_address_of_owner_x".chars().take(len).collect();
            for tail in ["", "                "] {
                let doc = format!(r#"{{"{key}":"jane@example.com"{tail}}}"#);
                // An empty key is not shown (`super::plain_key`).
                let at = if key.is_empty() {
                    "/*".to_owned()
                } else {
                    format!("/{key}")
                };
                assert_eq!(
                    findings(&doc).unwrap(),
                    vec![(Category::Email, at)],
                    "{doc}"
                );
                // What the key means is the same either way it was read.
                let mut keys = KeyCache::new();
                let mut w = Walker {
                    s: &doc,
                    keys: &mut keys,
                    b: doc.as_bytes(),
                    i: 1,
                    path: Vec::new(),
                    out: |_: Hit, _: Location<'_, '_>| {},
                    max_depth: 8,
                    frags: Fragments::default(),
                    obs: &mut (),
                };
                w.key().unwrap();
                match w.path.last() {
                    Some(Seg::Key(k, info)) => {
                        assert_eq!((k.as_ref(), *info), (key.as_str(), KeyInfo::of(&key)));
                    }
                    _ => panic!("no key read from {doc}"),
                }
                assert_eq!(w.peek(), Some(b'"'), "{doc}");
            }
        }
        // Keys with an escape, a quote or a non-ASCII character in their first sixteen bytes
        // are read too (and, not being plain, not shown).
        for (doc, at) in [
            (r#"{"e\u006dail":"jane@example.com"}"#, "/email"),
            (r#"{"a\"b":"jane@example.com"}"#, "/*"),
            (r#"{"caf\u00e9_email":"jane@example.com"}"#, "/*"),
            (r#"{"café_email":"jane@example.com"}"#, "/*"),
        ] {
            assert_eq!(
                findings(doc).unwrap(),
                vec![(Category::Email, at.to_owned())],
                "{doc}"
            );
        }
        assert_eq!(
            findings("{\"a\tb\":1}").unwrap_err(),
            JsonError::Invalid,
            "a raw control character in a key"
        );
        // A short key that is data is found and masked.
        assert_eq!(
            findings(r#"{"a@b.io":{"x":"jane@example.com"}}"#).unwrap(),
            vec![
                (Category::Email, "/*".to_owned()),
                (Category::Email, "/*/x".to_owned())
            ]
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

    #[test]
    fn values_split_across_fields_are_joined() {
        assert_eq!(
            findings(r#"{"phone":{"cc":"+33","number":"612345678"}}"#).unwrap(),
            vec![(Category::Phone, "/phone/number".into())]
        );
        assert_eq!(
            findings(r#"{"iban":["DE89","3704","0044","0532","0130","00"]}"#).unwrap(),
            vec![(Category::Iban, "/iban/5".into())]
        );
        assert_eq!(
            findings(r#"{"a":"DE89","b":"3704","c":"0044","d":"0532","e":"0130","f":"00"}"#)
                .unwrap(),
            vec![(Category::Iban, "/f".into())]
        );
        assert_eq!(
            findings(r#"{"user":"jane.doe","domain":"example.com"}"#).unwrap(),
            vec![(Category::Email, "/domain".into())]
        );
        assert_eq!(
            findings(r#"{"qty":"12","sku":"4711","page":"3"}"#).unwrap(),
            vec![]
        );
        // The other way round, with the domain's `@`, in full-width digits, and numbers
        // after a calling code as they are written.
        for (doc, category) in [
            (r#"{"domain":"example.com","user":"jane"}"#, Category::Email),
            (
                r#"{"user":"jane","domain":"@example.com"}"#,
                Category::Email,
            ),
            (
                r#"{"x":["４１１１","１１１１","１１１１","１１１１"]}"#,
                Category::PaymentCard,
            ),
            (r#"{"cc":"+33","number":"6-12-34-56-78"}"#, Category::Phone),
            (r#"{"cc":"+1","number":"(202) 456-1111"}"#, Category::Phone),
            (r#"{"cc":"+49","number":30901820}"#, Category::Phone),
        ] {
            let found = findings(doc).unwrap();
            assert!(
                found.iter().any(|(c, _)| *c == category),
                "{doc}: {found:?}"
            );
        }
        // A number that follows no calling code ends a run: these groups, joined across it,
        // would be a card number.
        let found = findings(r#"{"a":"4111","b":1111,"c":"1111","d":"1111"}"#).unwrap();
        assert!(
            !found.iter().any(|(c, _)| *c == Category::PaymentCard),
            "{found:?}"
        );
        assert_eq!(
            findings(r#"{"a":"4111","b":"1111","c":"1111","d":"1111"}"#).unwrap(),
            vec![(Category::PaymentCard, "/d".into())]
        );
    }
}
