//! A labelled corpus of request bodies for measuring inspection: JSON, form-urlencoded and
//! multipart/form-data bodies in fourteen locales, with and without personal data, with the
//! evasions that [`super::normalise`] undoes. Deterministic (one seed, one corpus) and synthetic:
//! names and streets are invented, identifiers are random numbers made valid by their own
//! check-digit rules, addresses use example domains.
//!
//! `cargo test -p domicile-gateway --test detection_corpus -- --nocapture` prints recall and
//! precision per category. [`Corpus::personal_values`] lists every personal-data value the
//! corpus holds, so that other tests can check that none of them leaks (into trace files, logs).

pub mod catalogue;
pub mod locales;
pub mod values;

use base64::Engine;
use domicile_policy::{Category, Country};

use locales::{LOCALES, Locale};
use values::Rng;

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Json,
    Form,
    Multipart,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Form => "form",
            Format::Multipart => "multipart",
        }
    }
}

/// An evasion applied to the identifiers of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Evasion {
    None,
    Percent,
    DoublePercent,
    /// `\uXXXX` for every character: JSON escapes in JSON, literal text in a form.
    UnicodeEscape,
    HtmlEntities,
    Base64,
    FullWidth,
    ZeroWidth,
    /// Spaces, dashes or dots inside numbers; an address written `jane (at) example (dot) com`.
    Separators,
    /// The value split over adjacent fields (JSON only).
    Split,
}

impl Evasion {
    pub const ALL: [Evasion; 10] = [
        Evasion::None,
        Evasion::Percent,
        Evasion::DoublePercent,
        Evasion::UnicodeEscape,
        Evasion::HtmlEntities,
        Evasion::Base64,
        Evasion::FullWidth,
        Evasion::ZeroWidth,
        Evasion::Separators,
        Evasion::Split,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Evasion::None => "none",
            Evasion::Percent => "percent",
            Evasion::DoublePercent => "double_percent",
            Evasion::UnicodeEscape => "unicode_escape",
            Evasion::HtmlEntities => "html_entities",
            Evasion::Base64 => "base64",
            Evasion::FullWidth => "full_width",
            Evasion::ZeroWidth => "zero_width",
            Evasion::Separators => "separators",
            Evasion::Split => "split",
        }
    }
}

/// Which quality bar a label is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// IBAN, payment cards and national identifiers.
    Checksummed,
    /// Email and phone.
    Contact,
    /// Everything found by field name or shape without a check digit.
    Other,
}

/// One piece of personal data in a sample, and where inspection must report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub category: Category,
    /// What made the value (`email`, `phone`, `iban`, `card`, `id.fr_nir`, `field.name`...).
    pub kind: &'static str,
    pub class: Class,
    /// A JSON pointer or `form:<key>` (`multipart:<name>` for multipart bodies).
    pub location: String,
    /// The value as generated, before any evasion.
    pub value: String,
    /// The country inspection should name, when the value carries it.
    pub country: Option<Country>,
}

/// One labelled body.
#[derive(Debug, Clone)]
pub struct Sample {
    pub locale: &'static str,
    pub format: Format,
    pub evasion: Evasion,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Empty for a body without personal data.
    pub labels: Vec<Label>,
}

/// The generated corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub samples: Vec<Sample>,
}

impl Corpus {
    /// Every personal-data value in the corpus, as generated.
    pub fn personal_values(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.value.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn locales(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.samples.iter().map(|s| s.locale).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Generates `per_locale` bodies with personal data and as many without, for each format and
/// each locale, from `seed`.
pub fn generate(seed: u64, per_locale: usize) -> Corpus {
    let mut r = Rng::new(seed);
    let mut samples = Vec::new();
    for locale in LOCALES {
        for format in [Format::Json, Format::Form, Format::Multipart] {
            for n in 0..per_locale {
                // Every evasion in turn, the split one only where fields can be adjacent.
                let mut evasion = Evasion::ALL[n % Evasion::ALL.len()];
                if evasion == Evasion::Split && format != Format::Json {
                    evasion = Evasion::Separators;
                }
                samples.push(personal(&mut r, locale, format, evasion));
                samples.push(clean(&mut r, locale, format));
            }
        }
    }
    Corpus { samples }
}

/// A field of a body before encoding.
#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Num(String),
    Bool(bool),
    /// Parts of a split value, as (key, value) pairs in one object (JSON only).
    Split(Vec<(String, String)>),
    /// Groups of a split value, as an array (JSON only).
    Groups(Vec<String>),
}

#[derive(Debug, Clone)]
struct Field {
    key: String,
    val: Val,
    /// The value is written with JSON `\u` escapes.
    escaped: bool,
    label: Option<Label>,
}

fn field(key: &str, val: Val) -> Field {
    Field {
        key: key.to_owned(),
        val,
        escaped: false,
        label: None,
    }
}

fn country(c: &str) -> Option<Country> {
    Country::parse(c).ok()
}

fn label(
    category: Category,
    kind: &'static str,
    class: Class,
    value: &str,
    c: Option<Country>,
) -> Label {
    Label {
        category,
        kind,
        class,
        location: String::new(),
        value: value.to_owned(),
        country: c,
    }
}

fn personal(r: &mut Rng, l: &Locale, format: Format, evasion: Evasion) -> Sample {
    let k = l.keys;
    let first = *r.pick(l.first);
    let last = *r.pick(l.last);
    let mut fields = Vec::new();
    fn push(fields: &mut Vec<Field>, key: &str, val: Val, lab: Option<Label>) {
        let mut f = field(key, val);
        f.label = lab;
        fields.push(f);
    }
    push(
        &mut fields,
        k.first,
        Val::Str(first.into()),
        Some(label(
            Category::Name,
            "field.name",
            Class::Other,
            first,
            None,
        )),
    );
    push(
        &mut fields,
        k.last,
        Val::Str(last.into()),
        Some(label(
            Category::Name,
            "field.name",
            Class::Other,
            last,
            None,
        )),
    );

    // Identifiers, each with the evasion applied.
    let mut ids: Vec<(String, String, Label, bool)> = Vec::new();
    let ascii = ascii_fold(&format!("{first}.{last}"))
        .to_lowercase()
        .replace(' ', "");
    let local = if ascii.len() < 4 || r.chance(30) {
        // Internationalised local parts: the name as written.
        format!("{}.{}", first.to_lowercase(), last.to_lowercase()).replace(' ', "")
    } else {
        ascii
    };
    let email = format!("{local}{}@{}", r.range(1, 99), r.pick(l.domains));
    ids.push((
        k.email.into(),
        email.clone(),
        label(Category::Email, "email", Class::Contact, &email, None),
        true,
    ));
    let (cc, trunk, prefix, len) = l.phone;
    let nsn = format!("{prefix}{}", r.digits(len - prefix.len()));
    let intl = format!("+{cc} {}", values::grouped(&nsn, 3, " "));
    let phone_label = label(
        Category::Phone,
        "phone",
        Class::Contact,
        &intl,
        country(l.country),
    );
    if r.chance(30) && evasion == Evasion::None {
        // National format: found because the field is named as a phone number.
        let national = format!("{trunk}{}", values::grouped(&nsn, 3, " "));
        ids.push((
            k.phone.into(),
            national.clone(),
            label(
                Category::Phone,
                "phone.national",
                Class::Contact,
                &national,
                None,
            ),
            false,
        ));
    } else {
        ids.push((k.phone.into(), intl.clone(), phone_label, true));
    }
    if l.iban && r.chance(70) {
        let iban = values::iban(r, l.country);
        let shown = if r.chance(50) {
            values::grouped(&iban, 4, " ")
        } else {
            iban.clone()
        };
        ids.push((
            k.account.into(),
            shown,
            label(
                Category::Iban,
                "iban",
                Class::Checksummed,
                &iban,
                country(l.country),
            ),
            true,
        ));
    } else {
        let card = values::card(r);
        let shown = if r.chance(50) {
            values::grouped(&card, 4, " ")
        } else {
            card.clone()
        };
        ids.push((
            "card_number".into(),
            shown,
            label(
                Category::PaymentCard,
                "card",
                Class::Checksummed,
                &card,
                None,
            ),
            true,
        ));
    }
    if let Some(id) = l.national_id {
        let v = (id.generate)(r);
        ids.push((
            id.key.into(),
            v.clone(),
            label(
                Category::NationalId,
                id.kind,
                Class::Checksummed,
                &v,
                country(l.country),
            ),
            true,
        ));
    }
    for (key, value, lab, evade) in ids {
        let evasion = if evade { evasion } else { Evasion::None };
        let mut f = field(&key, Val::Str(value.clone()));
        match evasion {
            Evasion::Split => {
                let split = split(&value, &lab);
                f.val = split.0;
                f.label = Some(Label {
                    location: split.1,
                    ..lab
                });
                fields.push(f);
                continue;
            }
            Evasion::UnicodeEscape if format == Format::Json => f.escaped = true,
            e => f.val = Val::Str(evade_value(&value, e, r)),
        }
        f.label = Some(lab);
        fields.push(f);
    }

    let add = |fields: &mut Vec<Field>,
               key: &str,
               value: String,
               num: bool,
               cat: Category,
               kind: &'static str,
               c: Option<Country>| {
        let lab = label(cat, kind, Class::Other, &value, c);
        let val = if num {
            Val::Num(value)
        } else {
            Val::Str(value)
        };
        push(fields, key, val, Some(lab));
    };
    add(
        &mut fields,
        k.street,
        r.pick(l.streets).to_string(),
        false,
        Category::Address,
        "field.address",
        None,
    );
    add(
        &mut fields,
        k.city,
        r.pick(l.cities).to_string(),
        false,
        Category::Address,
        "field.address",
        None,
    );
    add(
        &mut fields,
        k.postcode,
        r.digits(5),
        false,
        Category::Address,
        "field.address",
        None,
    );
    if r.chance(50) {
        add(
            &mut fields,
            k.country,
            l.country.into(),
            false,
            Category::Address,
            "field.address_country",
            country(l.country),
        );
    }
    if r.chance(50) {
        let dob = format!(
            "{}-{:02}-{:02}",
            r.range(1940, 2005),
            r.range(1, 12),
            r.range(1, 28)
        );
        add(
            &mut fields,
            k.birth,
            dob,
            false,
            Category::DateOfBirth,
            "field.date_of_birth",
            None,
        );
    }
    if r.chance(40) {
        add(
            &mut fields,
            k.nationality,
            l.country.into(),
            false,
            Category::Nationality,
            "field.nationality",
            country(l.country),
        );
    }
    if r.chance(30) {
        let code = format!(
            "{}{:02}.{}",
            r.pick(&["J", "E", "F", "I", "M"]),
            r.range(10, 99),
            r.range(0, 9)
        );
        add(
            &mut fields,
            k.diagnosis,
            code,
            false,
            Category::Health,
            "field.health",
            None,
        );
    }
    if r.chance(20) {
        add(
            &mut fields,
            k.religion,
            r.pick(l.religion).to_string(),
            false,
            Category::Religion,
            "field.religion",
            None,
        );
    }
    if r.chance(30) {
        let ip = values::ip(r);
        add(
            &mut fields,
            "client_ip",
            ip,
            false,
            Category::IpAddress,
            "ip",
            None,
        );
    }
    if r.chance(25) {
        let lat = format!("{}.{}", r.range(10, 60), r.digits(5));
        add(
            &mut fields,
            "latitude",
            lat,
            true,
            Category::PreciseLocation,
            "field.precise_location",
            None,
        );
    }
    // Context without personal data.
    push(&mut fields, "status", Val::Str("active".into()), None);
    push(
        &mut fields,
        k.note,
        Val::Str(r.pick(l.text).to_string()),
        None,
    );
    push(&mut fields, "newsletter", Val::Bool(r.chance(50)), None);
    encode(r, l, format, evasion, "customer", fields)
}

/// Splits a value over adjacent fields; returns the value and the location of its last part
/// relative to the field.
fn split(value: &str, lab: &Label) -> (Val, String) {
    match lab.kind {
        "email" => {
            let (user, domain) = value.split_once('@').unwrap_or((value, ""));
            (
                Val::Split(vec![
                    ("user".into(), user.into()),
                    ("domain".into(), domain.into()),
                ]),
                "domain".to_owned(),
            )
        }
        "phone" => {
            let (cc, rest) = value.split_once(' ').unwrap_or((value, ""));
            (
                Val::Split(vec![
                    ("cc".into(), cc.into()),
                    ("number".into(), rest.replace(' ', "")),
                ]),
                "number".to_owned(),
            )
        }
        _ if value.contains('-') => {
            // Written in groups already (`123-45-6789`): one field per group.
            let groups: Vec<String> = value.split('-').map(str::to_owned).collect();
            let last = groups.len() - 1;
            (Val::Groups(groups), last.to_string())
        }
        _ => {
            let compact: String = value
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            let groups: Vec<String> = compact
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let last = groups.len() - 1;
            (Val::Groups(groups), last.to_string())
        }
    }
}

/// Removes Latin accents, for the ASCII spelling of an email local part.
fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ą' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' | 'ę' => Some('e'),
            'í' | 'ì' | 'î' | 'ï' => Some('i'),
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => Some('o'),
            'ú' | 'ù' | 'û' | 'ü' => Some('u'),
            'ñ' | 'ń' => Some('n'),
            'ç' | 'ć' => Some('c'),
            'ł' => Some('l'),
            'ś' => Some('s'),
            'ż' | 'ź' => Some('z'),
            'Á' | 'Å' | 'Ä' => Some('a'),
            'É' => Some('e'),
            'Í' => Some('i'),
            'Ö' | 'Ó' => Some('o'),
            'Ü' => Some('u'),
            'ß' => Some('s'),
            c if c.is_ascii_alphanumeric() || c == '.' || c == ' ' => Some(c),
            _ => None,
        })
        .collect()
}

/// Applies an evasion to a value (the JSON escapes and splits are applied when encoding).
fn evade_value(v: &str, e: Evasion, r: &mut Rng) -> String {
    match e {
        Evasion::None | Evasion::Split => v.to_owned(),
        Evasion::Percent => percent(v),
        Evasion::DoublePercent => percent(&percent(v)),
        Evasion::UnicodeEscape => v.chars().map(|c| format!("\\u{:04x}", c as u32)).collect(),
        Evasion::HtmlEntities => v
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if !c.is_ascii_alphanumeric() || i % 3 == 0 {
                    format!("&#{};", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Evasion::Base64 => base64::engine::general_purpose::STANDARD.encode(v),
        Evasion::FullWidth => v
            .chars()
            .map(|c| match c {
                '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
                ' ' => '\u{3000}',
                c => c,
            })
            .collect(),
        Evasion::ZeroWidth => {
            let mut out = String::new();
            for (i, c) in v.chars().enumerate() {
                if i > 0 && i % 3 == 0 {
                    out.push(
                        *r.pick(&['\u{200B}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}']),
                    );
                }
                out.push(c);
            }
            out
        }
        Evasion::Separators => {
            // An address's `@` and its domain's dots written as bracketed words; the style
            // follows from the value, so the generator's random sequence is unchanged.
            if let Some((local, domain)) = v.split_once('@') {
                let (at, dot) = [
                    (" (at) ", " (dot) "),
                    ("[at]", "[dot]"),
                    (" {AT} ", " dot "),
                    (" at ", " dot "),
                ][v.len() % 4];
                return format!("{local}{at}{}", domain.replace('.', dot));
            }
            let sep = *r.pick(&[" ", "-", "."]);
            let (lead, rest) = match v.strip_prefix('+') {
                Some(rest) => ("+", rest),
                None => ("", v),
            };
            let compact: String = rest.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let n = *r.pick(&[2usize, 3, 4]);
            format!("{lead}{}", values::grouped(&compact, n, sep))
        }
    }
}

fn percent(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphabetic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A body without personal data: catalogue, order and telemetry fields with numbers, dates,
/// versions, hashes and free text in the locale's language.
fn clean(r: &mut Rng, l: &Locale, format: Format) -> Sample {
    let skus = [
        "chair-ergo-2",
        "desk-oak-160",
        "lamp-led-4k",
        "mug-blue",
        "cable-usb-c-2m",
    ];
    let mut fields = vec![
        field("request_id", Val::Str(uuid(r))),
        field("sku", Val::Str(r.pick(&skus).to_string())),
        field("name", Val::Str(r.pick(&skus).replace('-', " "))),
        field(
            "title",
            Val::Str(
                r.pick(&["Ergonomic chair", "Standing desk", "Desk lamp"])
                    .to_string(),
            ),
        ),
        field("quantity", Val::Num(r.range(1, 20).to_string())),
        field(
            "price",
            Val::Num(format!("{}.{:02}", r.range(1, 999), r.range(0, 99))),
        ),
        field(
            "currency",
            Val::Str(
                r.pick(&[
                    "EUR", "USD", "GBP", "SEK", "PLN", "BRL", "INR", "JPY", "CNY",
                ])
                .to_string(),
            ),
        ),
        field(
            "order_id",
            Val::Num(r.range(100_000, 99_999_999).to_string()),
        ),
        field("created_at", Val::Str(values::timestamp(r))),
        field(
            "ts",
            Val::Num(r.range(1_600_000_000, 1_800_000_000).to_string()),
        ),
        field(
            "ts_ms",
            Val::Num(r.range(1_600_000_000_000, 1_800_000_000_000).to_string()),
        ),
        field(
            "version",
            Val::Str(format!(
                "{}.{}.{}",
                r.range(0, 9),
                r.range(0, 30),
                r.range(0, 99)
            )),
        ),
        field("sha256", Val::Str(hex(r, 32))),
        field("etag", Val::Str(format!("W/\"{}\"", hex(r, 8)))),
        field(
            "token",
            Val::Str(base64::engine::general_purpose::STANDARD.encode(random_bytes(r, 24))),
        ),
        field(
            "page",
            Val::Str(
                r.pick(&["/pricing", "/docs/getting-started", "/checkout?step=2"])
                    .to_string(),
            ),
        ),
        field("locale", Val::Str(l.tag.into())),
        field(
            "latency_ms",
            Val::Num(format!("{}.{}", r.range(0, 900), r.digits(3))),
        ),
        field("enabled", Val::Bool(r.chance(50))),
        field("description", Val::Str(r.pick(l.text).to_string())),
        field("color", Val::Str(format!("#{}", hex(r, 3)))),
        field("build", Val::Num(r.range(1000, 99_999).to_string())),
        field("ean", Val::Str(values::ean13(r))),
        field("gtin", Val::Num(values::ean13(r))),
        field(
            "isbn",
            Val::Str(format!(
                "978-{}-{}-{}-{}",
                r.range(0, 9),
                r.digits(2),
                r.digits(6),
                r.range(0, 9)
            )),
        ),
        field(
            "tracking",
            Val::Str(format!("1Z{}{}", r.letters(6), r.digits(10))),
        ),
        field("invoice", Val::Str(format!("INV-2025-{}", r.digits(6)))),
        field("duration", Val::Str(format!("PT{}M", r.range(1, 90)))),
        field(
            "dimensions",
            Val::Str(format!(
                "{}x{}x{} cm",
                r.range(10, 200),
                r.range(10, 200),
                r.range(1, 90)
            )),
        ),
        field("rating", Val::Str(format!("+{} votes", r.range(1, 99_999)))),
    ];
    // Shuffle so that fields meet different neighbours.
    for i in (1..fields.len()).rev() {
        let j = r.range(0, i as u64) as usize;
        fields.swap(i, j);
    }
    encode(r, l, format, Evasion::None, "item", fields)
}

fn hex(r: &mut Rng, bytes: usize) -> String {
    random_bytes(r, bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_bytes(r: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| r.range(0, 255) as u8).collect()
}

fn uuid(r: &mut Rng) -> String {
    let h = hex(r, 16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn json_string(s: &str, escaped: bool) -> String {
    if escaped {
        let mut out = String::from("\"");
        for unit in s.encode_utf16() {
            out.push_str(&format!("\\u{unit:04x}"));
        }
        out.push('"');
        out
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

fn encode(
    r: &mut Rng,
    l: &Locale,
    format: Format,
    evasion: Evasion,
    wrapper: &str,
    fields: Vec<Field>,
) -> Sample {
    let mut labels = Vec::new();
    let (content_type, body) = match format {
        Format::Json => {
            let mut members = Vec::new();
            for f in &fields {
                let v = match &f.val {
                    Val::Str(s) => json_string(s, f.escaped),
                    Val::Num(n) => n.clone(),
                    Val::Bool(b) => b.to_string(),
                    Val::Split(parts) => {
                        let inner: Vec<String> = parts
                            .iter()
                            .map(|(k, v)| {
                                format!("{}:{}", json_string(k, false), json_string(v, false))
                            })
                            .collect();
                        format!("{{{}}}", inner.join(","))
                    }
                    Val::Groups(g) => {
                        let inner: Vec<String> = g.iter().map(|v| json_string(v, false)).collect();
                        format!("[{}]", inner.join(","))
                    }
                };
                members.push(format!("{}:{v}", json_string(&f.key, false)));
                if let Some(lab) = &f.label {
                    // Keys that are not plain identifiers are masked in locations.
                    let key = if super::safe_key(&f.key) {
                        f.key.as_str()
                    } else {
                        "*"
                    };
                    let location = if lab.location.is_empty() {
                        format!("/{wrapper}/{key}")
                    } else {
                        format!("/{wrapper}/{key}/{}", lab.location)
                    };
                    labels.push(Label {
                        location,
                        ..lab.clone()
                    });
                }
            }
            let meta = format!(
                "{{\"request_id\":\"{}\",\"source\":\"{}\"}}",
                uuid(r),
                l.tag
            );
            let body = if r.chance(50) {
                format!(
                    "{{\"{wrapper}\":{{{}}},\"meta\":{meta}}}",
                    members.join(",")
                )
            } else {
                format!(
                    "{{\"meta\":{meta},\"{wrapper}\":{{{}}}}}",
                    members.join(",")
                )
            };
            ("application/json".to_owned(), body.into_bytes())
        }
        Format::Form | Format::Multipart => {
            let pairs: Vec<(String, String)> = fields
                .iter()
                .map(|f| {
                    let v = match &f.val {
                        Val::Str(s) => s.clone(),
                        Val::Num(n) => n.clone(),
                        Val::Bool(b) => b.to_string(),
                        Val::Split(p) => p.iter().map(|x| x.1.clone()).collect(),
                        Val::Groups(g) => g.concat(),
                    };
                    (f.key.clone(), v)
                })
                .collect();
            let prefix = if format == Format::Form {
                "form"
            } else {
                "multipart"
            };
            for f in &fields {
                if let Some(lab) = &f.label {
                    let location = if super::safe_key(&f.key) {
                        format!("{prefix}:{}", f.key)
                    } else {
                        format!("{prefix}:*")
                    };
                    labels.push(Label {
                        location,
                        ..lab.clone()
                    });
                }
            }
            if format == Format::Form {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &pairs {
                    ser.append_pair(k, v);
                }
                (
                    "application/x-www-form-urlencoded".to_owned(),
                    ser.finish().into_bytes(),
                )
            } else {
                let boundary = format!("----domicile{}", hex(r, 8));
                let mut body = String::new();
                for (k, v) in &pairs {
                    body.push_str(&format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    ));
                }
                body.push_str(&format!("--{boundary}--\r\n"));
                (
                    format!("multipart/form-data; boundary={boundary}"),
                    body.into_bytes(),
                )
            }
        }
    };
    Sample {
        locale: l.tag,
        format,
        evasion,
        content_type,
        body,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_corpus() {
        let a = generate(7, 3);
        let b = generate(7, 3);
        assert_eq!(a.samples.len(), b.samples.len());
        assert!(
            a.samples
                .iter()
                .zip(&b.samples)
                .all(|(x, y)| x.body == y.body)
        );
        assert_ne!(generate(8, 3).samples[0].body, a.samples[0].body);
        assert!(a.locales().len() >= 12);
        assert!(a.personal_values().iter().any(|v| v.contains('@')));
    }

    #[test]
    fn the_catalogue_holds_its_addresses_and_nothing_else() {
        use crate::inspect::{Inspection, inspect_body};
        let (doc, addresses) = catalogue::catalogue(0x5eed, 256 << 10);
        assert!(doc.len() >= 256 << 10);
        assert_eq!(catalogue::catalogue(0x5eed, 256 << 10).0, doc);
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let mut i = Inspection::default();
        inspect_body(&h, &doc, &mut i);
        assert!(addresses >= 20, "{addresses}");
        // Every address found where it is, and nothing in the product records.
        assert_eq!(i.findings.len(), addresses, "{:?}", i.findings);
        for (n, f) in i.findings.iter().enumerate() {
            assert_eq!(f.category, Category::Email);
            assert_eq!(f.location, format!("/{}/review/author_email", n * 20 + 19));
        }
    }
}
