//! Field maps: what a route's JSON fields are, declared rather than guessed.
//!
//! A map is a list of paths (JSON pointers whose segments may be `*`, matching any key or array
//! index) with a category, or `none` for a field known to hold no personal data. It is written
//! in the route (`fields`) or read from an OpenAPI 3 document (`openapi`, JSON) whose request
//! body schemas mark fields with `x-personal-data: <category>`. A declared category is recorded
//! whenever the field is present and not empty, whatever the detectors say (the detectors still
//! run everywhere). Fields of the body that no path covers are reported as unmapped, so the map
//! can be kept current.

use std::str::FromStr;

use domicile_policy::Category;
use http::Method;
use serde_json::Value;

use super::json;

/// The most unmapped fields one record lists.
pub const MAX_UNMAPPED: usize = 32;

/// How deep an OpenAPI schema is followed (also through `$ref`s).
const MAX_SCHEMA_DEPTH: usize = 32;

/// The most fields one operation's schemas may declare.
const MAX_FIELDS: usize = 10_000;

/// One path segment of a declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Any,
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    path: Vec<Seg>,
    /// `None` for a field declared free of personal data.
    pub category: Option<Category>,
    /// Whether the declaration covers everything below the field (a route's own declarations
    /// and marked schemas do; a schema's plain objects and arrays only name their members).
    covers: bool,
}

/// One OpenAPI operation's request body fields.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    /// Path template segments; `None` is a `{parameter}`.
    template: Vec<Option<String>>,
    fields: Vec<Field>,
}

/// A route's field map.
#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    fields: Vec<Field>,
    operations: Vec<Operation>,
}

/// Parses a category name as a field map uses it (`none` is no personal data).
pub fn category(name: &str) -> Result<Option<Category>, String> {
    if name == "none" {
        return Ok(None);
    }
    match Category::from_str(name) {
        Ok(Category::Uninspectable) | Err(_) => Err(format!(
            "unknown data category {name:?}; expected none or one of {}",
            Category::ALL
                .iter()
                .filter(|c| **c != Category::Uninspectable)
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Ok(c) => Ok(Some(c)),
    }
}

/// Parses a declared path: an RFC 6901 pointer (`~0`, `~1` escapes) whose segments may be `*`.
fn pointer(p: &str) -> Result<Vec<Seg>, String> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!("{p:?} is not a JSON pointer: it starts with /"));
    };
    rest.split('/')
        .map(|s| {
            if s == "*" {
                return Ok(Seg::Any);
            }
            let mut out = String::new();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("{p:?}: ~ must be followed by 0 or 1")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(Seg::Key(out))
        })
        .collect()
}

impl FieldMap {
    /// Adds a declared field.
    pub fn declare(&mut self, path: &str, category: &str) -> Result<(), String> {
        let field = Field {
            path: pointer(path)?,
            category: self::category(category)?,
            covers: true,
        };
        self.fields.push(field);
        Ok(())
    }

    /// Reads the request body schemas of an OpenAPI 3 document, JSON or YAML (a document
    /// starting with `{` is read as JSON). Errors name the place in the document as a JSON
    /// pointer, or its line and column when it cannot be parsed.
    pub fn load_openapi(&mut self, text: &str) -> Result<(), String> {
        let doc: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| {
                format!(
                    "not a JSON document (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                )
            })?
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                // The first line names line and column; the rest is a source snippet.
                let e = e.to_string();
                let first = e.lines().next().unwrap_or_default();
                format!(
                    "not a YAML document: {}",
                    first.strip_prefix("error: ").unwrap_or(first)
                )
            })?
        };
        let version3 = match doc.get("openapi") {
            Some(Value::String(v)) => v.starts_with("3."),
            // YAML reads `openapi: 3.0` as a number.
            Some(Value::Number(n)) => n.as_f64().is_some_and(|v| (3.0..4.0).contains(&v)),
            _ => false,
        };
        if !version3 {
            return Err("/openapi: not an OpenAPI 3 document".to_owned());
        }
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Err("/paths: missing or not an object".to_owned());
        };
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let Ok(m) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                if !matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
                ) {
                    continue;
                }
                let Some(content) = op
                    .pointer("/requestBody/content")
                    .and_then(Value::as_object)
                else {
                    continue;
                };
                let mut fields = Vec::new();
                for (media, body) in content {
                    if let Some(schema) = body.get("schema") {
                        let at = format!(
                            "/paths/{}/{method}/requestBody/content/{}/schema",
                            escape(template),
                            escape(media)
                        );
                        let mut walk = SchemaWalk {
                            doc: &doc,
                            path: Vec::new(),
                            refs: Vec::new(),
                            out: &mut fields,
                        };
                        walk.schema(schema, &at, 0)?;
                    }
                }
                let segments = template
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                    .collect();
                self.operations.push(Operation {
                    method: m,
                    template: segments,
                    fields,
                });
            }
        }
        Ok(())
    }

    /// Whether the map declares anything.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.operations.is_empty()
    }

    /// The fields that apply to a request: the route's own and its OpenAPI operation's. `None`
    /// when neither applies (no map, or no operation for this method and path).
    pub fn fields_for(&self, method: &Method, path: &str) -> Option<Vec<&Field>> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let op = self.operations.iter().find(|o| {
            o.method == *method
                && o.template.len() == segs.len()
                && o.template
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s))
        });
        if self.fields.is_empty() && op.is_none() {
            return None;
        }
        Some(
            self.fields
                .iter()
                .chain(op.into_iter().flat_map(|o| o.fields.iter()))
                .collect(),
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A walk over one request body schema.
struct SchemaWalk<'a> {
    doc: &'a Value,
    path: Vec<Seg>,
    /// The `$ref`s being followed: a schema that refers to itself is followed once.
    refs: Vec<&'a str>,
    out: &'a mut Vec<Field>,
}

impl<'a> SchemaWalk<'a> {
    /// Collects the fields of `schema` (following `$ref`, `properties`, `items`, `allOf`,
    /// `oneOf`, `anyOf`) under the current path; `at` is its place in the document.
    fn schema(&mut self, schema: &'a Value, at: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(format!(
                "{at}: schema nested deeper than {MAX_SCHEMA_DEPTH}"
            ));
        }
        let Some(obj) = schema.as_object() else {
            return Ok(());
        };
        if let Some(r) = obj.get("$ref") {
            let name = r.as_str().unwrap_or_default();
            let target = name
                .strip_prefix('#')
                .and_then(|p| self.doc.pointer(p))
                .ok_or_else(|| format!("{at}/$ref: {r} does not resolve in this document"))?;
            if self.refs.contains(&name) {
                // Recursive: what lies below the second visit is reported as unmapped.
                return Ok(());
            }
            self.refs.push(name);
            let r = self.schema(target, name.trim_start_matches('#'), depth + 1);
            self.refs.pop();
            return r;
        }
        let declared = match obj.get("x-personal-data") {
            None => None,
            Some(Value::String(c)) => {
                Some(category(c).map_err(|e| format!("{at}/x-personal-data: {e}"))?)
            }
            Some(_) => return Err(format!("{at}/x-personal-data: expected a category name")),
        };
        // Every field the schema names is known; those marked carry their category.
        if !self.path.is_empty() || declared.is_some() {
            if self.out.len() >= MAX_FIELDS {
                return Err(format!(
                    "{at}: more than {MAX_FIELDS} fields in one request body"
                ));
            }
            let category = declared.flatten();
            self.out.push(Field {
                path: self.path.clone(),
                category,
                covers: category.is_some(),
            });
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                self.path.push(Seg::Key(k.clone()));
                let r = self.schema(v, &format!("{at}/properties/{}", escape(k)), depth + 1);
                self.path.pop();
                r?;
            }
        }
        if let Some(items) = obj.get("items") {
            self.path.push(Seg::Any);
            let r = self.schema(items, &format!("{at}/items"), depth + 1);
            self.path.pop();
            r?;
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(list) = obj.get(key).and_then(Value::as_array) {
                for (n, s) in list.iter().enumerate() {
                    self.schema(s, &format!("{at}/{key}/{n}"), depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// What applying a map to one document gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Declared categories present in the document, with their location: at most one more
    /// than [`super::MAX_FINDINGS`], which is enough to make the inspection overflow.
    pub declared: Vec<(Category, String)>,
    /// Generalised pointers (indices and unsafe keys as `*`) of fields no path covers.
    pub unmapped: Vec<String>,
}

/// Applies `fields` to a JSON document. A document that is not JSON yields nothing.
pub fn apply(fields: &[&Field], doc: &str) -> Applied {
    let mut applier = Applier::new(fields);
    match super::json::walk_observed(doc, super::MAX_JSON_DEPTH, |_, _| {}, &mut applier) {
        Ok(()) => applier.finish(),
        Err(_) => Applied::default(),
    }
}

/// Applies a map to a JSON document while the inspection walker reads it
/// ([`super::json::Structure`]): one pass over the body gives both the findings and what the
/// map says. The fields that can still match are carried down the tree; below a path no
/// declared field reaches, only unmapped fields can be found, and once as many are listed as
/// a record holds, nothing more is looked at there.
#[derive(Debug)]
pub struct Applier<'f> {
    fields: &'f [&'f Field],
    /// One per open object or array that is not empty.
    frames: Vec<Frame<'f>>,
    /// Candidate lists of closed frames, reused.
    spare: Vec<Vec<&'f Field>>,
    /// What `out.declared` holds, for finding a repeat in constant time.
    declared_at: rustc_hash::FxHashSet<(Category, String)>,
    out: Applied,
}

#[derive(Debug)]
struct Frame<'f> {
    /// The fields that go on below this container's path.
    cands: Vec<&'f Field>,
    /// Whether what the container holds is looked at.
    record: bool,
}

impl<'f> Applier<'f> {
    pub fn new(fields: &'f [&'f Field]) -> Applier<'f> {
        Applier {
            fields,
            frames: Vec::new(),
            spare: Vec::new(),
            declared_at: rustc_hash::FxHashSet::default(),
            out: Applied::default(),
        }
    }

    /// What the map made of the document (meaningful once the walk succeeded).
    pub fn finish(self) -> Applied {
        self.out
    }
}

/// Whether a declared path's segment matches a step of the document's path.
fn seg_matches(pattern: &Seg, at: &json::Seg<'_>) -> bool {
    match (pattern, at.key(), at.index()) {
        (Seg::Any, ..) => true,
        (Seg::Key(k), Some(key), _) => k == key,
        // An index is matched by its decimal form.
        (Seg::Key(k), None, Some(n)) => {
            (k == "0" || !k.starts_with('0'))
                && k.bytes().all(|c| c.is_ascii_digit())
                && k.parse::<usize>() == Ok(n)
        }
        (Seg::Key(_), None, None) => false,
    }
}

/// A value's location: keys that may be data masked, and with `generalise_indices` array
/// indices (and all-digit keys) too.
fn location(path: &[json::Seg<'_>], generalise_indices: bool) -> String {
    let mut p = String::new();
    for seg in path {
        p.push('/');
        match (seg.key(), seg.index()) {
            (Some(k), _) => {
                // An all-digit key may be data (a card number as a key): masked like any other
                // key unless it is safe.
                let digits = !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit());
                if (digits && generalise_indices) || !seg.shown() {
                    p.push('*');
                } else {
                    p.push_str(k);
                }
            }
            // Indices of five digits and more are masked as keys of five digits are.
            (None, Some(n)) if !generalise_indices && n < 10_000 => p.push_str(&n.to_string()),
            _ => p.push('*'),
        }
    }
    p
}

impl json::Structure for Applier<'_> {
    fn value(&mut self, path: &[json::Seg<'_>], first: u8, empty: bool) {
        let depth = path.len();
        let (parent, parent_record) = match self.frames.last() {
            Some(f) => (&f.cands[..], f.record),
            None => (self.fields, true),
        };
        // The fields that match this value's path so far (all of them at the root).
        let goes = |f: &&&Field| match path.last() {
            None => true,
            Some(at) => f.path.get(depth - 1).is_some_and(|p| seg_matches(p, at)),
        };
        let container = matches!(first, b'{' | b'[');
        // One look at the fields that go on through this value: whether one ends here (the
        // value is known, maybe declared, maybe covered) or goes deeper.
        let (mut any, mut known, mut covered, mut deeper) = (false, depth == 0, false, false);
        if parent_record {
            for f in parent.iter().filter(goes) {
                any = true;
                if f.path.len() > depth {
                    deeper = true;
                    continue;
                }
                known = true;
                covered |= f.covers;
                // More declared places than a record holds make the inspection overflow
                // whatever they are: the list stops one past that.
                if let Some(c) = f.category
                    && !empty
                    && self.out.declared.len() <= super::MAX_FINDINGS
                {
                    let loc = location(path, false);
                    if self.declared_at.insert((c, loc.clone())) {
                        self.out.declared.push((c, loc));
                    }
                }
            }
        }
        // Where no field goes on, only an unmapped field can be found: nothing more once as
        // many are listed as a record holds.
        let record = parent_record && (any || self.out.unmapped.len() < MAX_UNMAPPED);
        // A declared object or array covers what it holds, unless a field is declared inside.
        let descend = !covered || deeper;
        if container && !empty {
            let record = record && descend;
            let mut cands = self.spare.pop().unwrap_or_default();
            cands.clear();
            if record {
                cands.extend(parent.iter().filter(goes).filter(|f| f.path.len() > depth));
            }
            self.frames.push(Frame { cands, record });
        } else if !container && record && !known && self.out.unmapped.len() < MAX_UNMAPPED {
            let loc = location(path, true);
            if !self.out.unmapped.contains(&loc) {
                self.out.unmapped.push(loc);
            }
        }
    }

    fn end(&mut self) {
        if let Some(f) = self.frames.pop() {
            self.spare.push(f.cands);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::MAX_JSON_DEPTH;

    #[test]
    fn declared_fields_are_found_and_unknown_ones_reported() {
        let mut m = FieldMap::default();
        m.declare("/customer/full_name", "name").unwrap();
        m.declare("/items/*/shipping", "address").unwrap();
        m.declare("/items/*/sku", "none").unwrap();
        let fields = m.fields_for(&Method::POST, "/orders").unwrap();
        let a = apply(
            &fields,
            r#"{"customer":{"full_name":"Jane Roe","nickname":"JR"},
                "items":[{"sku":"A1","shipping":{"street":"Main St 1"},"gift_note":"hi"},
                         {"sku":"B2","shipping":null}],"jane@example.com":1}"#,
        );
        assert_eq!(
            a.declared,
            vec![
                (Category::Name, "/customer/full_name".to_owned()),
                (Category::Address, "/items/0/shipping".to_owned()),
            ]
        );
        assert_eq!(
            a.unmapped,
            vec!["/customer/nickname", "/items/*/gift_note", "/*"]
        );
    }

    #[test]
    fn an_object_key_that_is_data_is_masked_even_when_all_digits() {
        let mut m = FieldMap::default();
        m.declare("/cards/*", "payment_card").unwrap();
        let fields = m.fields_for(&Method::POST, "/orders").unwrap();
        let a = apply(
            &fields,
            r#"{"cards":{"4111111111111111":"visa","7":"short"},"list":[{"x":1}]}"#,
        );
        assert_eq!(
            a.declared,
            vec![
                (Category::PaymentCard, "/cards/*".to_owned()),
                (Category::PaymentCard, "/cards/7".to_owned()),
            ]
        );
        assert!(!format!("{a:?}").contains("4111111111111111"));
    }

    #[test]
    fn the_document_is_read_as_it_lies_and_only_json_counts() {
        let mut m = FieldMap::default();
        m.declare("/user/email", "email").unwrap();
        m.declare("/user/profile", "health").unwrap();
        m.declare("/tags/*", "none").unwrap();
        let fields = m.fields_for(&Method::POST, "/").unwrap();
        // Escaped keys are decoded before they are matched; a covered object's contents are
        // not reported; a key given twice is read both times; numbers of every shape.
        let a = apply(
            &fields,
            r#" {"user" : {"em\u0061il":"j@x.io","profile":{"a":[1,{"b":null}]},
                 "email":""},"tags":["x",-1.5e+3,true],"n":0,"zeta":[],"alpha":{}} "#,
        );
        assert_eq!(
            a.declared,
            vec![
                (Category::Email, "/user/email".to_owned()),
                (Category::Health, "/user/profile".to_owned()),
            ]
        );
        assert_eq!(a.unmapped, vec!["/n"]);
        // Anything that is not one JSON document yields nothing, wherever the fault is,
        // inside a covered object too.
        for bad in [
            "",
            "{",
            r#"{"user":{"email":"x"}"#,
            r#"{"user":{"profile":{"a":[1,}}}"#,
            r#"{"user":{"profile":{"a":01}}}"#,
            r#"{"user":{"profile":"\x"}}"#,
            r#"{"n":1} {"n":2}"#,
            r#"{"n":tru}"#,
            r#"{"n":1.}"#,
            "{\"n\":\"a\u{1}b\"}",
        ] {
            assert_eq!(apply(&fields, bad), Applied::default(), "{bad:?}");
        }
        // Past the most unmapped fields a record lists, declared fields are still found, and
        // what is only read must still be JSON.
        let many: String = (0..40)
            .map(|n| format!(r#""f{n}":{{"g":[{n}]}},"#))
            .collect();
        let a = apply(
            &fields,
            &format!(r#"{{{many}"user":{{"email":"j@x.io"}}}}"#),
        );
        assert_eq!(
            a.declared,
            vec![(Category::Email, "/user/email".to_owned())]
        );
        assert_eq!(a.unmapped.len(), MAX_UNMAPPED);
        assert_eq!(
            (&a.unmapped[0][..], &a.unmapped[31][..]),
            ("/f0/g/*", "/f31/g/*")
        );
        let broken = format!(r#"{{{many}"x":{{"y":[1,]}},"user":{{"email":"j@x.io"}}}}"#);
        assert_eq!(apply(&fields, &broken), Applied::default());
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_JSON_DEPTH + 2),
            "]".repeat(MAX_JSON_DEPTH + 2)
        );
        assert_eq!(apply(&fields, &deep), Applied::default());
        let fine = format!(
            "{}1{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(
            apply(&fields, &fine).unmapped,
            vec!["/*".repeat(MAX_JSON_DEPTH)]
        );
    }

    #[test]
    fn a_declared_field_in_every_item_of_a_long_array_is_listed_up_to_what_a_record_holds() {
        // Every item's field is a place of its own: the list stops one past what a record
        // holds, and the inspection then overflows.
        let mut m = FieldMap::default();
        m.declare("/*/email", "email").unwrap();
        let fields = m.fields_for(&Method::POST, "/").unwrap();
        let doc = format!("[{}]", vec![r#"{"email":"a"}"#; 20_000].join(","));
        let a = apply(&fields, &doc);
        assert_eq!(a.declared.len(), crate::inspect::MAX_FINDINGS + 1);
        assert_eq!(a.declared[7], (Category::Email, "/7/email".to_owned()));
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let opts = crate::inspect::BodyOptions {
            fields: Some(fields),
            ..crate::inspect::BodyOptions::default()
        };
        let mut found = crate::inspect::Inspection::default();
        crate::inspect::inspect_body_with(&headers, doc.as_bytes(), &opts, &mut found);
        assert!(found.overflow);
    }

    #[test]
    fn bad_pointers_and_categories_are_refused() {
        let mut m = FieldMap::default();
        assert!(
            m.declare("email", "email")
                .unwrap_err()
                .contains("starts with /")
        );
        assert!(m.declare("/a~2", "email").unwrap_err().contains("~ must"));
        assert!(
            m.declare("/a", "emial")
                .unwrap_err()
                .contains("unknown data category \"emial\"")
        );
        assert!(m.declare("/a", "uninspectable").is_err());
    }

    #[test]
    fn openapi_request_schemas_declare_fields() {
        let doc = r##"{"openapi":"3.0.3","paths":{"/patients/{id}":{"put":{"requestBody":{"content":
            {"application/json":{"schema":{"$ref":"#/components/schemas/Patient"}}}}}}},
            "components":{"schemas":{"Patient":{"type":"object","properties":{
              "name":{"type":"string","x-personal-data":"name"},
              "diagnosis":{"type":"string","x-personal-data":"health"},
              "ward":{"type":"string"},
              "contacts":{"type":"array","items":{"type":"object","properties":{
                  "phone":{"type":"string","x-personal-data":"phone"}}}}}}}}}"##;
        let mut m = FieldMap::default();
        m.load_openapi(doc).unwrap();
        assert!(m.fields_for(&Method::POST, "/patients/7").is_none());
        let fields = m.fields_for(&Method::PUT, "/patients/7").unwrap();
        let a = apply(
            &fields,
            r#"{"name":"J","diagnosis":"x","ward":"3","contacts":[{"phone":"1"}],"bed":4}"#,
        );
        // In the order the document has them.
        let cats: Vec<Category> = a.declared.iter().map(|d| d.0).collect();
        assert_eq!(
            cats,
            vec![Category::Name, Category::Health, Category::Phone]
        );
        assert_eq!(a.unmapped, vec!["/bed"]);

        // A schema that refers to itself is followed once.
        let tree = r##"{"openapi":"3.0.0","paths":{"/t":{"post":{"requestBody":{"content":
            {"application/json":{"schema":{"$ref":"#/components/schemas/Node"}}}}}}},
            "components":{"schemas":{"Node":{"properties":{
              "owner":{"x-personal-data":"email"},
              "children":{"type":"array","items":{"$ref":"#/components/schemas/Node"}}}}}}}"##;
        let mut m = FieldMap::default();
        m.load_openapi(tree).unwrap();
        let fields = m.fields_for(&Method::POST, "/t").unwrap();
        let a = apply(
            &fields,
            r#"{"owner":"a","children":[{"owner":"b","children":[]}]}"#,
        );
        assert_eq!(a.declared, vec![(Category::Email, "/owner".to_owned())]);
        assert_eq!(a.unmapped, vec!["/children/*/owner"]);

        let bad = doc.replace("\"health\"", "\"helth\"");
        let e = FieldMap::default().load_openapi(&bad).unwrap_err();
        assert!(
            e.starts_with("/components/schemas/Patient/properties/diagnosis/x-personal-data: unknown data category \"helth\""),
            "{e}"
        );
        let e = FieldMap::default()
            .load_openapi("{\n\"openapi\": }")
            .unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn openapi_documents_may_be_yaml() {
        let doc = "openapi: 3.1.0
paths:
  /users:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                email: {type: string, x-personal-data: email}
                birthday: {type: string, x-personal-data: date_of_birth}
";
        let mut m = FieldMap::default();
        m.load_openapi(doc).unwrap();
        let fields = m.fields_for(&Method::POST, "/users").unwrap();
        let a = apply(&fields, r#"{"birthday":"1990-01-01","plan":"pro"}"#);
        assert_eq!(
            a.declared,
            vec![(Category::DateOfBirth, "/birthday".to_owned())]
        );
        assert_eq!(a.unmapped, vec!["/plan"]);
        let e = FieldMap::default()
            .load_openapi("openapi: 3.1.0\npaths: [\n")
            .unwrap_err();
        assert!(e.starts_with("not a YAML document"), "{e}");
        assert_eq!(
            e,
            "not a YAML document: line 2 column 8: unclosed bracket '['"
        );
    }
}
