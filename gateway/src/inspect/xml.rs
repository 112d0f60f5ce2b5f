//! XML bodies, read as an XML parser reads them: character references, the predefined
//! entities and CDATA sections are decoded, comments and processing instructions are taken out
//! of the text around them, and element and attribute names are field names for the
//! detectors (`<email>`, `<ssn>`, `<user name="...">`), as JSON keys are.
//!
//! Text is read in runs, as an element's text (XPath's string-value) joins it: two pieces of
//! text go in one run when no tag between them climbs above the shallower of the two. So
//! `<a>jane<b/>@example.com</a>`, `<p><b><i>jane</i></b>@example.com</p>`,
//! `jane<!-- -->@example.com` and `jane<![CDATA[@]]>example.com` all read `jane@example.com`,
//! while `<name>Jane</name><email>...</email>` are two values. A run that went through markup
//! is reported at the element holding all of it; the values of sibling elements are also joined
//! as a JSON object's are ([`super::fragments`]).
//!
//! Entities other than XML's five are refused ([`XmlError::Entities`]): what a document type
//! declares is expanded by the backend's parser and not seen here (an address split over two
//! entities), may be made to expand without bound (billion laughs), or read files and URLs
//! (external entities). SOAP forbids document type declarations altogether. So is an XML
//! declaration that names an encoding other than the one the body is read in
//! ([`XmlError::Encoding`]): a parser that believes it reads other characters.

use encoding_rs::Encoding;
use quick_xml::XmlVersion;
use quick_xml::escape::{EscapeError, resolve_predefined_entity};
use quick_xml::events::{BytesDecl, BytesStart, Event};

use super::detect::lexicon::{self, Field};
use super::detect::{self, Hit, Value};
use super::fragments::{Fragments, NameHints};

/// Why an XML body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed (a NUL character included).
    Invalid,
    /// Nested deeper than the limit.
    TooDeep,
    /// A document type declaring entities, or a reference to an entity that is not one of
    /// XML's five.
    Entities,
    /// The XML declaration names an encoding other than the one the text was read in.
    Encoding,
}

/// Where a finding is: an element's path, or an attribute of the element at a path. Built
/// into text only when the finding is kept.
#[derive(Debug, Clone, Copy)]
pub enum Loc<'a> {
    Path(&'a str),
    /// The element's path and the attribute's name as shown.
    Attr(&'a str, &'a str),
}

impl Loc<'_> {
    /// `/order/customer/email`, or `/order/customer/attribute::name` (XPath's long form for
    /// `@name`: a location never holds an `@`).
    pub fn build(self) -> String {
        match self {
            Loc::Path("") => "/".to_owned(),
            Loc::Path(p) => p.to_owned(),
            Loc::Attr(p, name) => format!("{p}/attribute::{name}"),
        }
    }
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
    /// Text that is more than whitespace has been read into it.
    open: bool,
    text: String,
    /// The depth of the element the run is the text of (the shallowest it reached), and the
    /// length of that element's path.
    depth: usize,
    at: usize,
    /// That path, kept when the element closed and another opened where it was written
    /// (its end: a few bytes more than a location keeps).
    saved: Option<String>,
    /// What the name of the element it began in says.
    field: Option<Field>,
    hints: NameHints,
    /// The id of the parent of the element the run began in.
    parent: Option<usize>,
    /// The run went through markup: it is no one element's value.
    spans: bool,
    /// Its text was given to the fragments of its siblings already ([`Walker::close`]), with
    /// what was found in it then: the text's length, whether a value detector fired, and the
    /// hits, reported when the run ends as it was.
    joined: Option<(usize, bool, Vec<Hit>)>,
}

impl Run {
    /// Where the run is, given the walker's path.
    fn location<'a>(&'a self, path: &'a str) -> &'a str {
        match &self.saved {
            Some(saved) => saved,
            None => &path[..self.at],
        }
    }
}

struct Walker<'o> {
    /// The path of the open elements, in its first `live` bytes. A closed element's segment is
    /// left after them until an element opens, so that a run can still be located without a
    /// copy.
    path: String,
    live: usize,
    stack: Vec<Elem>,
    next_id: usize,
    run: Run,
    /// The depth of the last text that was more than whitespace, and the shallowest depth
    /// (with its path length) a tag reached since.
    last_depth: usize,
    low: usize,
    low_at: usize,
    /// A tag came since the last text that was more than whitespace.
    tag_since_text: bool,
    frags: Fragments,
    /// The element whose children the fragments are.
    frags_parent: Option<usize>,
    max_depth: usize,
    out: &'o mut dyn FnMut(Hit, Loc<'_>),
}

/// Reads `text`, which was decoded as `charset` (UTF-8 when `None`), as XML, calling
/// `out(hit, location)` for every finding; names that are themselves personal data are masked
/// as `*` in locations.
pub fn walk(
    text: &str,
    charset: Option<&str>,
    max_depth: usize,
    out: &mut dyn FnMut(Hit, Loc<'_>),
) -> Result<(), XmlError> {
    // XML 1.0 has no NUL character: text holding one was written in another encoding
    // (UTF-16 without its byte order mark reads as UTF-8 with a NUL every other byte).
    if text.contains('\0') {
        return Err(XmlError::Invalid);
    }
    let mut reader = quick_xml::Reader::from_str(text);
    let mut w = Walker {
        path: String::new(),
        live: 0,
        stack: Vec::new(),
        next_id: 0,
        run: Run::default(),
        last_depth: 0,
        low: 0,
        low_at: 0,
        tag_since_text: false,
        frags: Fragments::default(),
        frags_parent: None,
        max_depth,
        out,
    };
    loop {
        match reader.read_event().map_err(|_| XmlError::Invalid)? {
            Event::Eof => break,
            Event::Start(e) => w.open(&e)?,
            Event::Empty(e) => {
                w.open(&e)?;
                w.close();
            }
            Event::End(_) => w.close(),
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
            Event::Decl(d) => declared_as_read(&d, charset, text)?,
        }
    }
    if !w.stack.is_empty() {
        return Err(XmlError::Invalid);
    }
    w.end_run();
    w.frags.flush(&mut |h, l| (w.out)(h, Loc::Path(&l)));
    Ok(())
}

/// Whether the encoding an XML declaration names is the one the text was read in (any
/// encoding that reads ASCII as ASCII will do for text that is all ASCII).
fn declared_as_read(d: &BytesDecl<'_>, charset: Option<&str>, text: &str) -> Result<(), XmlError> {
    let Some(declared) = d.encoding() else {
        return Ok(());
    };
    let declared = declared.map_err(|_| XmlError::Invalid)?;
    let read = charset
        .and_then(|c| Encoding::for_label(c.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    match Encoding::for_label(&declared) {
        Some(e) if e == read => Ok(()),
        Some(e) if e.is_ascii_compatible() && text.is_ascii() => Ok(()),
        _ => Err(XmlError::Encoding),
    }
}

impl Walker<'_> {
    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), XmlError> {
        if self.stack.len() >= self.max_depth {
            return Err(XmlError::TooDeep);
        }
        // The path beyond `live` is about to be written over: a run that is the text of an
        // element that has closed keeps its location, since text after this element may still
        // join it (`<b>jane</b><br/>@example.com`).
        if self.run.open && self.run.depth > self.stack.len() && self.run.saved.is_none() {
            // A few bytes past what a location keeps, so that a path cut here is still longer
            // than that and is shown cut (`…`).
            let path = &self.path[..self.run.at];
            self.run.saved = Some(super::tail(path, super::MAX_LOCATION + 4).to_owned());
        }
        self.tag_since_text = true;
        self.path.truncate(self.live);
        let path_len = self.live;
        let (local, hits) = name_of(e.name().as_ref(), e.local_name().as_ref());
        let shown = hits.is_empty() && super::plain_key(&local);
        self.path.push('/');
        self.path.push_str(if shown { &local } else { "*" });
        self.live = self.path.len();
        for h in hits {
            (self.out)(h, Loc::Path(&self.path));
        }
        self.stack.push(Elem {
            path_len,
            field: lexicon::classify(&local),
            hints: NameHints::of(&local),
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
            let path = &self.path;
            let out = &mut *self.out;
            let (name, hits) = name_of(attr.key.as_ref(), attr.key.local_name().as_ref());
            let shown = if hits.is_empty() && super::plain_key(&name) {
                name.as_str()
            } else {
                "*"
            };
            for h in hits {
                out(h, Loc::Attr(path, shown));
            }
            let field = lexicon::classify(&name);
            detect::scan_classified(field, Value::Str(&value), &mut |h| {
                out(h, Loc::Attr(path, shown))
            });
        }
        Ok(())
    }

    fn close(&mut self) {
        self.tag_since_text = true;
        if let Some(elem) = self.stack.pop() {
            self.live = elem.path_len;
            if self.stack.len() < self.low {
                self.low = self.stack.len();
                self.low_at = self.live;
            }
            if self.frags_parent == Some(elem.id) {
                // The siblings end here, but text after this element may still go on with the
                // run open now (`<a><x>1</x><b>jane</b></a>@example.com`): its text as it
                // stands is the last of the siblings, and the run stays open.
                self.run_to_fragments(elem.id);
                let out = &mut *self.out;
                self.frags.flush(&mut |h, l| out(h, Loc::Path(&l)));
                self.frags_parent = None;
            }
        }
    }

    /// Gives the open run's text, when it is a child's value of `parent`, to the fragments.
    fn run_to_fragments(&mut self, parent: usize) {
        let run = &mut self.run;
        if !run.open || run.spans || run.joined.is_some() || run.parent != Some(parent) {
            return;
        }
        let value = run.text.trim();
        let mut hits = Vec::new();
        let found = detect::scan_value(run.field, value, &mut |h| hits.push(h));
        let location = run.location(&self.path);
        let out = &mut *self.out;
        let loc = || Loc::Path(location).build();
        let emit = &mut |h, l: String| out(h, Loc::Path(&l));
        self.frags
            .add(value, found, run.hints, run.field, loc, emit);
        run.joined = Some((run.text.len(), found, hits));
    }

    fn text(&mut self, s: &str) {
        if s.trim().is_empty() {
            // Whitespace is part of a run's text, and never begins one.
            if self.run.open {
                self.run.text.push_str(s);
            }
            return;
        }
        let depth = self.stack.len();
        if self.run.open {
            if self.low >= self.last_depth.min(depth) {
                // No tag between climbed above the shallower text: one element's text.
                if self.tag_since_text {
                    self.run.spans = true;
                }
                if self.low < self.run.depth {
                    // The text of an element still open, whose path is never written over.
                    self.run.depth = self.low;
                    self.run.at = self.low_at;
                    self.run.saved = None;
                }
            } else {
                self.end_run();
            }
        }
        if !self.run.open {
            let elem = self.stack.last();
            self.run = Run {
                open: true,
                text: std::mem::take(&mut self.run.text),
                depth,
                at: self.live,
                saved: None,
                joined: None,
                field: elem.and_then(|e| e.field),
                hints: elem.map(|e| e.hints).unwrap_or_default(),
                parent: depth
                    .checked_sub(2)
                    .and_then(|i| self.stack.get(i))
                    .map(|e| e.id),
                spans: false,
            };
        }
        self.run.text.push_str(s);
        self.last_depth = depth;
        self.low = depth;
        self.low_at = self.live;
        self.tag_since_text = false;
    }

    /// Scans what a run read: as its element's value when it is one element's, as text when it
    /// went through markup.
    fn end_run(&mut self) {
        if !self.run.open {
            return;
        }
        let joined = self.run.joined.take();
        let run = &mut self.run;
        let value = run.text.trim();
        let location = run.location(&self.path);
        let out = &mut *self.out;
        let field = if run.spans { None } else { run.field };
        let found = match &joined {
            // Read already, when its siblings ended, and nothing was added since.
            Some((len, found, hits)) if *len == run.text.len() && !run.spans => {
                for h in hits {
                    out(*h, Loc::Path(location));
                }
                *found
            }
            _ => detect::scan_value(field, value, &mut |h| out(h, Loc::Path(location))),
        };
        let emit = &mut |h, l: String| out(h, Loc::Path(&l));
        if run.spans {
            self.frags.flush(emit);
            self.frags_parent = None;
        } else if joined.is_none() {
            if self.frags_parent != run.parent {
                self.frags.flush(emit);
                self.frags_parent = run.parent;
            }
            let loc = || Loc::Path(location).build();
            self.frags.add(value, found, run.hints, field, loc, emit);
        }
        run.text.clear();
        run.open = false;
        run.spans = false;
        run.saved = None;
    }

    /// Scans text beside the document's content (a comment, an instruction, the document
    /// type) at the current place.
    fn scan_aside(&mut self, s: &str) {
        let location = &self.path[..self.live];
        let out = &mut *self.out;
        detect::scan(s, |h| out(h, Loc::Path(location)));
    }
}

/// The local name of a name written `qualified` (`prefix:local`), and what the detectors find
/// in the whole of it: a name can be data too (an account number as an element or attribute).
fn name_of(qualified: &[u8], local: &[u8]) -> (String, Vec<Hit>) {
    let mut hits = Vec::new();
    detect::scan_name(&String::from_utf8_lossy(qualified), |h| hits.push(h));
    (String::from_utf8_lossy(local).into_owned(), hits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domicile_policy::Category;

    fn found_as(
        xml: &str,
        charset: Option<&str>,
    ) -> Result<Vec<(Category, String, &'static str)>, XmlError> {
        let mut hits = Vec::new();
        walk(xml, charset, 16, &mut |h, l| {
            hits.push((h.category, l.build(), h.detector))
        })?;
        Ok(hits)
    }

    fn found(xml: &str) -> Result<Vec<(Category, String, &'static str)>, XmlError> {
        found_as(xml, None)
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
            // Markup inside the element's text, however many tags.
            "<a>jane<b/>@example.com</a>",
            "<a>jane<b></b>@example.com</a>",
            "<a>jane<b><c/></b><d/>@example.com</a>",
            "<a><b>jane</b><br/>@example.com</a>",
            "<a><b>jane</b><c></c><d/>@example.com</a>",
            "<a><r><x>1</x><b>jane</b></r>@example.com</a>",
        ] {
            assert_eq!(categories(xml), email("/a"), "{xml}");
        }
        // Text that went through markup is the text of the element holding all of it.
        for xml in [
            "<r><a><u>jane</u>@<d>example.com</d></a></r>",
            "<r><a><b><i>jane</i></b>@example.com</a></r>",
            "<r><a>jane@<b>example.com</b></a></r>",
        ] {
            assert_eq!(categories(xml), email("/r/a"), "{xml}");
        }
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
        // A prefix does not change what a name says.
        let c =
            categories(r#"<c:customer xmlns:c="urn:x"><c:lastName>Doe</c:lastName></c:customer>"#);
        assert_eq!(c, vec![(Category::Name, "/customer/lastName".to_owned())]);
        // Elements side by side are separate values: no card number from two numbers, no
        // address from a name and a domain.
        for xml in [
            "<o><qty>4111111111</qty><sku>111111</sku></o>",
            "<o><a>jane</a><b>@example.com</b></o>",
            "<o><a>jane</a>\n  <b>@example.com</b></o>",
        ] {
            assert_eq!(categories(xml), vec![], "{xml}");
        }
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
        // A name that is itself personal data is found, and masked: an element's, an
        // attribute's, a prefix.
        for (xml, at) in [
            (
                "<m><DE89370400440532013000>x</DE89370400440532013000></m>",
                "/m/*",
            ),
            (r#"<m DE89370400440532013000="x"/>"#, "/m/attribute::*"),
            (
                r#"<m><DE89370400440532013000:a xmlns:DE89370400440532013000="urn:x"/></m>"#,
                "/m/*",
            ),
        ] {
            assert!(
                categories(xml).contains(&(Category::Iban, at.to_owned())),
                "{xml}: {:?}",
                categories(xml)
            );
        }
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
        for xml in [
            "<a>",
            "<a></b>",
            "<a>&#xZZ;</a>",
            "<a b='1' b='2'/>",
            // UTF-16 without its byte order mark, read as UTF-8.
            "<\0a\0>\0j\0<\0/\0a\0>\0",
        ] {
            assert_eq!(found(xml), Err(XmlError::Invalid), "{xml:?}");
        }
        let deep = format!("{}{}", "<a>".repeat(17), "</a>".repeat(17));
        assert_eq!(found(&deep), Err(XmlError::TooDeep));
    }

    #[test]
    fn a_declared_encoding_must_be_the_one_the_body_is_read_in() {
        let doc = |enc: &str, body: &str| {
            format!(r#"<?xml version="1.0" encoding="{enc}"?><a>{body}</a>"#)
        };
        for (enc, charset) in [
            ("UTF-8", None),
            ("utf-8", Some("utf-8")),
            ("ISO-8859-1", Some("iso-8859-1")),
            // All ASCII: any encoding that reads ASCII as ASCII reads it the same.
            ("US-ASCII", None),
            ("ISO-8859-1", None),
        ] {
            assert_eq!(
                found_as(&doc(enc, "x"), charset).map(|f| f.len()),
                Ok(0),
                "{enc}"
            );
        }
        for (enc, body, charset) in [
            ("UTF-16", "x", None),
            ("UTF-7", "jane+AEA-example.com", None),
            ("ISO-8859-1", "caf\u{e9}", None),
            ("UTF-8", "caf\u{e9}", Some("iso-8859-1")),
        ] {
            assert_eq!(
                found_as(&doc(enc, body), charset),
                Err(XmlError::Encoding),
                "{enc} {charset:?}"
            );
        }
    }
}
