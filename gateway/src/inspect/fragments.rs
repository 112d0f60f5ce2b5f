//! Values split over adjacent fields, joined to be read whole: a phone number as a calling
//! code and the rest (`{"cc":"+33","number":"612345678"}`), an IBAN or card number in groups
//! (`card=4111&card=1111&card=1111&card=1111`), an address as its local part and domain in
//! fields named so (`user=jane&domain=example.com`).
//!
//! One run is kept per sequence of sibling fields: the members of one JSON object or the items
//! of one array, the pairs of one query string or form, the named text fields of one
//! multipart form. A value that is not a fragment, or that has findings of its own, ends it.

use std::borrow::Cow;

use super::detect::lexicon::Field;
use super::detect::{self, Hit};

/// What a field's name says about the part of an address it holds.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct NameHints {
    /// The name says local part of an address (`user`, `local_part`, `mailbox`).
    pub(crate) local: bool,
    /// The name says domain.
    pub(crate) domain: bool,
}

impl NameHints {
    pub(crate) fn of(name: &str) -> NameHints {
        NameHints {
            local: contains_ci(name, "local")
                || contains_ci(name, "user")
                || contains_ci(name, "mailbox"),
            domain: contains_ci(name, "domain"),
        }
    }

    /// Whether the name says either part of an address.
    pub(crate) fn any(self) -> bool {
        self.local || self.domain
    }
}

/// Whether `hay` contains `needle` (lower case ASCII), ignoring ASCII case.
fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.len() >= needle.len()
        && hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// A run of adjacent short values without findings of their own, joined.
#[derive(Default)]
pub(crate) struct Fragments {
    joined: String,
    parts: usize,
    /// The previous part's field was named as a user or local part of an address.
    local: bool,
    /// The previous part's field was named as a domain.
    domain: bool,
    /// What the run joined so far is found to be, reported when the run ends: a longer run
    /// can still turn out to be a longer identifier.
    pending: Vec<(Hit, String)>,
}

impl Fragments {
    /// Whether no run is open.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.parts == 0
    }

    /// Whether the run is a calling code alone, which a number may continue.
    pub(crate) fn after_calling_code(&self) -> bool {
        self.parts == 1 && self.joined.starts_with('+')
    }

    /// Adds a value to the run and reads the joined run. Fragments are digit or
    /// letter-and-digit groups of up to six characters (an IBAN or card number in groups), a
    /// calling code and the number after it, or the local part and domain of an address in
    /// fields named so. `found` (the value has findings of its own) or a value that is no
    /// fragment ends the run, reporting through `out` what it was found to be; what the run is
    /// found to be is reported at `location()`, the place of its last part, with the
    /// detector's `.split` id.
    pub(crate) fn add(
        &mut self,
        v: &str,
        found: bool,
        hints: NameHints,
        field: Option<Field>,
        location: impl FnOnce() -> String,
        out: &mut dyn FnMut(Hit, String),
    ) {
        if found || v.is_empty() {
            self.flush(out);
            return;
        }
        let NameHints { local, domain } = hints;
        // Parts are joined as a backend would read them: full-width or other scripts' digits
        // as digits, a domain's `@` as the separator it already is.
        let foldable = !v.is_ascii()
            && v.len() <= 80
            && (hints.any() || !v.bytes().any(|c| c.is_ascii_alphabetic()));
        let normal = if foldable {
            super::normalise::normalise(v)
        } else {
            Cow::Borrowed(v)
        };
        let v = match normal.strip_prefix('@') {
            Some(rest) if domain => rest,
            _ => &normal,
        };
        let b = v.as_bytes();
        let group = b.len() <= 6
            && b.iter().all(u8::is_ascii_alphanumeric)
            && (b.iter().any(u8::is_ascii_digit)
                || (b.len() <= 4 && b.iter().all(u8::is_ascii_uppercase)));
        let calling_code =
            b.len() >= 2 && b.len() <= 4 && b[0] == b'+' && b[1..].iter().all(u8::is_ascii_digit);
        // The number after a calling code, as it is written (`6-12-34-56-78`, `(202) 456-1111`).
        let after_code = self.after_calling_code()
            && b.len() <= 20
            && (6..=14).contains(&b.iter().filter(|c| c.is_ascii_digit()).count())
            && b.iter().all(|c| {
                c.is_ascii_digit() || matches!(c, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
            });
        let email_part = hints.any()
            && b.len() <= 64
            && !b.contains(&b'@')
            && b.iter().all(|c| {
                c.is_ascii_alphanumeric() || *c >= 0x80 || matches!(c, b'.' | b'-' | b'_' | b'+')
            });
        if !(group || calling_code || after_code || email_part) {
            self.flush(out);
            return;
        }
        if calling_code || self.joined.len() + b.len() > 72 {
            self.flush(out);
        }
        if local && self.domain && !self.joined.contains('@') {
            // The domain came first (`{"domain":"example.com","user":"jane"}`): the address
            // is read the way round it is written.
            let domain_part = std::mem::take(&mut self.joined);
            self.joined.push_str(v);
            self.joined.push('@');
            self.joined.push_str(&domain_part);
        } else {
            if domain && self.local {
                self.joined.push('@');
            } else if group && self.joined.ends_with(|c: char| c.is_ascii_alphanumeric()) {
                // Groups keep a separator, so that formats written in groups keep their shape.
                self.joined.push('-');
            }
            self.joined.extend(v.chars().filter(|c| *c != ' '));
        }
        self.parts += 1;
        self.local = local;
        self.domain = domain && !local;
        if self.parts < 2 {
            return;
        }
        let joined = &self.joined;
        if joined.bytes().filter(u8::is_ascii_digit).count() < 5 && !joined.contains('@') {
            return;
        }
        let mut hits = Vec::new();
        detect::scan_in(field, joined, &mut |h| {
            hits.push(Hit {
                detector: split_detector(h.detector),
                ..h
            })
        });
        if !hits.is_empty() {
            let at = location();
            self.pending = hits.into_iter().map(|h| (h, at.clone())).collect();
        }
    }

    /// Ends the run, reporting through `out` what it was found to be.
    #[inline]
    pub(crate) fn flush(&mut self, out: &mut dyn FnMut(Hit, String)) {
        if self.parts != 0 {
            self.end(out);
        }
    }

    fn end(&mut self, out: &mut dyn FnMut(Hit, String)) {
        for (h, p) in self.pending.drain(..) {
            out(h, p);
        }
        self.joined.clear();
        self.parts = 0;
        self.local = false;
        self.domain = false;
    }
}

/// The detector id of a value found split across fields.
fn split_detector(d: &'static str) -> &'static str {
    match d {
        "email.rfc5322" => "email.rfc5322.split",
        "phone.e164" => "phone.e164.split",
        "iban.mod97" => "iban.mod97.split",
        "card.luhn" => "card.luhn.split",
        _ => "split",
    }
}
