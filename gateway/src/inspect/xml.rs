//! XML bodies, read as an XML parser reads them: character references, the predefined
//! entities and CDATA sections are decoded, comments and processing instructions are taken out
//! of the text around them, and element and attribute names are field names for the
//! detectors (`<email>`, `<ssn>`, `<user name="...">`), as JSON keys are.
//!
//! Text is read in runs. A tag with text on either side of it that is more than whitespace is
//! inline markup, which a backend reading the element's text does not see
//! (`<a>jane<b/>@example.com</a>`, `jane<!-- -->@example.com`, `jane<![CDATA[@]]>example.com`
//! all read `jane@example.com`), so the run goes on through it; any other tag ends the run.
//! Adjacent elements' values are joined as a JSON object's are ([`super::fragments`]).
//!
//! Entities other than XML's five are refused ([`XmlError::Entities`]): what a document type
//! declares is expanded by the backend's parser and not seen here (an address split over two
//! entities), may be made to expand without bound (billion laughs), or read files and URLs
//! (external entities). SOAP forbids document type declarations altogether.

use quick_xml::XmlVersion;
use quick_xml::escape::{EscapeError, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};

use super::detect::lexicon::{self, Field};
use super::detect::{self, Hit, Value};
use super::fragments::{Fragments, NameHints};

/// Why an XML body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed.
    Invalid,
    /// Nested deeper than the limit.
    TooDeep,
    /// A document type declaring entities, or a reference to an entity that is not one of
    /// XML's five.
    Entities,
}

/// An open element.
struct Elem {
    /// The length of the path before this element's segment.
    path_len: usize,
    field: Option<Field>,
    hints: NameHints,
    id: usize,
}

/// The text run being read.
#[derive(Default)]
struct Run {
    /// Text has been read into it (whitespace too).
    started: bool,
    text: String,
    /// Where it is: the path's first `at` bytes (the element it began in, or the nearest
    /// element holding all of it once it went through markup).
    at: usize,
    field: Option<Field>,
    hints: NameHints,
    /// The id of the parent of the element the run began in.
    parent: Option<usize>,
    /// The run went on through inline markup: it is no one element's value.
    spans: bool,
}

struct Walker<'o> {
    /// The path of the open elements, in its first `live` bytes. A closed element's segment is
    /// left after them until an element opens, so that a run that began in it can still be
    /// located without a copy.
    path: String,
    live: usize,
    stack: Vec<Elem>,
    next_id: usize,
    run: Run,
    /// The text since the last tag is whitespace at most.
    blank_since_tag: bool,
    /// The last tag came right after text that is more than whitespace.
    after_text: bool,
    frags: Fragments,
    /// The element whose children the fragments are.
    frags_parent: Option<usize>,
    max_depth: usize,
    out: &'o mut dyn FnMut(Hit, &str),
}

/// Reads `text` as XML, calling `out(hit, location)` for every finding; a location is the
/// element path (`/order/customer/email`; `/order/customer/attribute::name` for an attribute,
/// XPath's long form, since a location never holds an `@`), with names that are themselves
/// personal data masked as `*`.
pub fn walk(text: &str, max_depth: usize, out: &mut dyn FnMut(Hit, &str)) -> Result<(), XmlError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut w = Walker {
        path: String::new(),
        live: 0,
        stack: Vec::new(),
        next_id: 0,
        run: Run::default(),
        blank_since_tag: true,
        after_text: false,
        frags: Fragments::default(),
        frags_parent: None,
        max_depth,
        out,
    };
    loop {
        match reader.read_event().map_err(|_| XmlError::Invalid)? {
            Event::Eof => break,
            Event::Start(e) => {
                w.tag();
                w.open(&e)?;
            }
            // One tag: inline or not as a start tag is.
            Event::Empty(e) => {
                w.tag();
                w.open(&e)?;
                w.close();
            }
            Event::End(_) => {
                w.tag();
                w.close();
            }
            Event::Text(t) => w.text(&t.decode().map_err(|_| XmlError::Invalid)?),
            Event::CData(c) => w.text(&c.decode().map_err(|_| XmlError::Invalid)?),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|_| XmlError::Invalid)?;
                match r.resolve_char_ref() {
                    Ok(Some(c)) => w.text(c.encode_utf8(&mut [0; 4])),
                    Ok(None) => match resolve_predefined_entity(&name) {
                        Some(s) => w.text(s),
                        None => return Err(XmlError::Entities),
                    },
                    Err(_) => return Err(XmlError::Invalid),
                }
            }
            // Not part of the text around them, but a backend that keeps the document keeps
            // them too.
            Event::Comment(c) => w.scan_aside(&c.decode().map_err(|_| XmlError::Invalid)?),
            Event::PI(p) => w.scan_aside(&String::from_utf8_lossy(&p)),
            Event::DocType(d) => {
                let d = d.decode().map_err(|_| XmlError::Invalid)?;
                if d.contains("ENTITY") {
                    return Err(XmlError::Entities);
                }
                w.scan_aside(&d);
            }
            Event::Decl(_) => {}
        }
    }
    if !w.stack.is_empty() {
        return Err(XmlError::Invalid);
    }
    w.end_run();
    w.frags.flush(&mut |h, l| (w.out)(h, &l));
    Ok(())
}

/// The location of a path: `/` for the document itself.
fn located(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

impl Walker<'_> {
    /// A tag: the end of the run unless text that is more than whitespace came right before
    /// it; inline markup when such text also follows it ([`Self::text`]).
    fn tag(&mut self) {
        if self.blank_since_tag {
            self.end_run();
            self.after_text = false;
        } else {
            self.after_text = true;
        }
        self.blank_since_tag = true;
    }

    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), XmlError> {
        if self.stack.len() >= self.max_depth {
            return Err(XmlError::TooDeep);
        }
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        // A run going on through this tag is located where the path is still what it was.
        self.run.at = self.run.at.min(self.live);
        self.path.truncate(self.live);
        let path_len = self.live;
        // A name can be data too (an account number as an element): it is scanned, and
        // shown only when it is plain and nothing is found in it.
        let mut hits = Vec::new();
        detect::scan(&name, |h| hits.push(h));
        let shown = hits.is_empty() && super::plain_key(&name);
        self.path.push('/');
        self.path.push_str(if shown { &name } else { "*" });
        self.live = self.path.len();
        for h in hits {
            (self.out)(h, &self.path);
        }
        self.stack.push(Elem {
            path_len,
            field: lexicon::classify(&name),
            hints: NameHints::of(&name),
            id: self.next_id,
        });
        self.next_id += 1;
        for attr in e.attributes() {
            let attr = attr.map_err(|_| XmlError::Invalid)?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(..)) => {
                        XmlError::Entities
                    }
                    _ => XmlError::Invalid,
                })?;
            let name = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
            let field = lexicon::classify(&name);
            let path = &self.path;
            let out = &mut *self.out;
            // Built for a finding only: a path can be long and attributes many.
            detect::scan_classified(field, Value::Str(&value), &mut |h| {
                let shown = if super::safe_key(&name) { &name } else { "*" };
                out(h, &format!("{path}/attribute::{shown}"))
            });
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(elem) = self.stack.pop() {
            self.live = elem.path_len;
            if self.frags_parent == Some(elem.id) {
                let out = &mut *self.out;
                self.frags.flush(&mut |h, l| out(h, &l));
                self.frags_parent = None;
            }
        }
    }

    fn text(&mut self, s: &str) {
        if !self.run.started {
            let elem = self.stack.last();
            self.run.started = true;
            self.run.at = self.live;
            self.run.field = elem.and_then(|e| e.field);
            self.run.hints = elem.map(|e| e.hints).unwrap_or_default();
            self.run.parent = self
                .stack
                .len()
                .checked_sub(2)
                .and_then(|i| self.stack.get(i))
                .map(|e| e.id);
        }
        self.run.text.push_str(s);
        if self.blank_since_tag && !s.trim().is_empty() {
            self.blank_since_tag = false;
            if self.after_text {
                // Text on both sides of the last tag: the run goes on through markup, and is
                // the text of the element that holds all of it.
                self.run.spans = true;
                self.run.at = self.run.at.min(self.live);
            }
        }
    }

    /// Scans what a run read: as its element's value when it is one element's, as text when it
    /// went through inline markup.
    fn end_run(&mut self) {
        if !self.run.started {
            return;
        }
        let run = &mut self.run;
        let value = run.text.trim();
        let location = located(&self.path[..run.at]);
        let out = &mut *self.out;
        if !value.is_empty() {
            let field = if run.spans { None } else { run.field };
            let mut found = false;
            detect::scan_classified(field, Value::Str(value), &mut |h| {
                // A finding made from the field name alone does not stop the value from
                // being part of a value split across fields.
                found |= !h.detector.starts_with("field.");
                out(h, location)
            });
            let emit = &mut |h, l: String| out(h, &l);
            if run.spans {
                self.frags.flush(emit);
                self.frags_parent = None;
            } else {
                if self.frags_parent != run.parent {
                    self.frags.flush(emit);
                    self.frags_parent = run.parent;
                }
                let loc = || location.to_owned();
                self.frags.add(value, found, run.hints, field, loc, emit);
            }
        }
        run.text.clear();
        run.started = false;
        run.spans = false;
    }

    /// Scans text beside the document's content (a comment, an instruction, the document
    /// type) at the current place.
    fn scan_aside(&mut self, s: &str) {
        let location = located(&self.path[..self.live]);
        let out = &mut *self.out;
        detect::scan(s, |h| out(h, location));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domicile_policy::Category;

    fn found(xml: &str) -> Result<Vec<(Category, String, &'static str)>, XmlError> {
        let mut hits = Vec::new();
        walk(xml, 16, &mut |h, l| {
            hits.push((h.category, l.to_owned(), h.detector))
        })?;
        Ok(hits)
    }

    fn categories(xml: &str) -> Vec<(Category, String)> {
        found(xml)
            .unwrap_or_else(|e| panic!("{xml}: {e:?}"))
            .into_iter()
            .map(|(c, l, _)| (c, l))
            .collect()
    }

    #[test]
    fn values_are_read_as_a_parser_reads_them() {
        let email = |l: &str| vec![(Category::Email, l.to_owned())];
        for xml in [
            "<a>jane@example.com</a>",
            "<a>jane&#64;example.com</a>",
            "<a>&#x6A;ane&#x40;example&#46;com</a>",
            "<a><![CDATA[jane@example.com]]></a>",
            "<a>jane<![CDATA[@]]>example.com</a>",
            "<a>jane<!-- a comment -->@example.com</a>",
            "<a>jane<?pi x?>@example.com</a>",
        ] {
            assert_eq!(categories(xml), email("/a"), "{xml}");
        }
        // Inline markup does not split a value; the run is the text of the element that
        // holds all of it.
        assert_eq!(
            categories("<r><a><u>jane</u>@<d>example.com</d></a></r>"),
            email("/r/a")
        );
        assert_eq!(
            categories("<r><a>jane<b/>@example.com</a></r>"),
            email("/r/a")
        );
        // Attributes, by their names.
        assert_eq!(
            categories(r#"<user contact="jane@example.com" id="7"/>"#),
            email("/user/attribute::contact")
        );
        // A comment is read too.
        assert_eq!(categories("<a><!-- jane@example.com --></a>"), email("/a"));
    }

    #[test]
    fn element_names_are_field_names_and_siblings_are_joined() {
        let c = categories("<customer><firstName>Jane</firstName><age>4</age></customer>");
        assert_eq!(c, vec![(Category::Name, "/customer/firstName".to_owned())]);
        // Elements side by side are separate values: no card number from two numbers.
        assert_eq!(
            categories("<o><qty>4111111111</qty><sku>111111</sku></o>"),
            vec![]
        );
        // A number split over sibling elements, as over a JSON object's members.
        let f = found("<card><g>4111</g><g>1111</g><g>1111</g><g>1111</g></card>").unwrap();
        assert_eq!(
            f,
            vec![(
                Category::PaymentCard,
                "/card/g".to_owned(),
                "card.luhn.split"
            )]
        );
        let f = found("<p><cc>+33</cc><number>612345678</number></p>").unwrap();
        assert_eq!(
            f,
            vec![(Category::Phone, "/p/number".to_owned(), "phone.e164.split")]
        );
        // Siblings of different parents are not joined.
        assert_eq!(
            categories("<r><a><g>4111</g><g>1111</g></a><b><g>1111</g><g>1111</g></b></r>"),
            vec![]
        );
        // A name that is itself personal data is found, and masked.
        assert_eq!(
            categories("<m><DE89370400440532013000>x</DE89370400440532013000></m>"),
            vec![(Category::Iban, "/m/*".to_owned())]
        );
    }

    #[test]
    fn entities_beyond_the_predefined_are_refused_and_bad_documents_are_invalid() {
        for xml in [
            r#"<!DOCTYPE a [<!ENTITY u "jane"><!ENTITY d "@example.com">]><a>&u;&d;</a>"#,
            r#"<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#,
            r#"<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;">]><a>&l2;</a>"#,
            r#"<!DOCTYPE a SYSTEM "http://example.com/a.dtd"><a>&u;</a>"#,
            "<a>&nbsp;</a>",
            r#"<a b="&u;"/>"#,
        ] {
            assert_eq!(found(xml), Err(XmlError::Entities), "{xml}");
        }
        assert_eq!(
            found("<a>&lt;&amp;&gt;&quot;&apos;</a>").map(|f| f.len()),
            Ok(0)
        );
        for xml in ["<a>", "<a></b>", "<a>&#xZZ;</a>", "<a b='1' b='2'/>"] {
            assert_eq!(found(xml), Err(XmlError::Invalid), "{xml}");
        }
        let deep = format!("{}{}", "<a>".repeat(17), "</a>".repeat(17));
        assert_eq!(found(&deep), Err(XmlError::TooDeep));
    }
}
