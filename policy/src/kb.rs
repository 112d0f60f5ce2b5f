//! The dated knowledge base: zones, regimes, instruments and prohibitions, as data.
//!
//! The built-in base is compiled in from `policy/kb/*.toml`; a user can add rows from their own
//! files. Rows are validated and indexed once at load so that evaluation is lookups only.

use std::collections::HashSet;

use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::country::Country;
use crate::date::{Date, Validity};
use crate::tz::LegalTz;

/// How far a row has been checked against its source (transfer-law.md section 0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Verification {
    /// Verified against the instrument's text or an official copy.
    #[serde(rename = "V-P")]
    Primary,
    /// Verified in reputable secondary sources.
    #[serde(rename = "V-S")]
    Secondary,
    /// Not verified: never the sole basis of an allow unless the policy says so.
    #[serde(rename = "U")]
    Unverified,
}

impl Verification {
    pub fn is_verified(self) -> bool {
        !matches!(self, Verification::Unverified)
    }
}

/// The provenance every legal fact carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub reference: String,
    pub source: String,
    pub verification: Verification,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    id: String,
    zone: String,
    countries: Vec<Country>,
    valid_from: Date,
    valid_to: Option<Date>,
    #[serde(flatten)]
    provenance: Provenance,
}

/// One period during which some countries belong to a zone.
#[derive(Debug, Clone)]
pub struct ZoneRow {
    pub id: Arc<str>,
    pub zone: Arc<str>,
    pub countries: Vec<Country>,
    pub validity: Validity,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegimeKind {
    /// Transfers out of the free zones need a basis.
    TransferGate,
    /// No general restriction; prohibitions only.
    Open,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegime {
    id: String,
    name: String,
    kind: RegimeKind,
    covers_zone: String,
    transfer_free_zones: Vec<String>,
    #[serde(default = "default_triggers")]
    triggers: Vec<Trigger>,
    timezone: String,
    #[serde(default)]
    special_categories_need_condition: bool,
    #[serde(default)]
    same_entity_is_not_transfer: bool,
    #[serde(default)]
    requires_evidence: Vec<String>,
    #[serde(default)]
    conditions: Vec<String>,
    note: Option<String>,
    valid_from: Date,
    valid_to: Option<Date>,
    #[serde(flatten)]
    provenance: Provenance,
}

fn default_triggers() -> Vec<Trigger> {
    vec![Trigger::Residence]
}

/// What makes a subject someone a regime protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The subject is in one of the covered zone's countries.
    Residence,
    /// The subject is a citizen of one of them, wherever they live.
    Citizenship,
}

/// A data-protection regime and the subjects it covers.
#[derive(Debug, Clone)]
pub struct Regime {
    pub id: Arc<str>,
    pub name: String,
    pub kind: RegimeKind,
    pub covers_zone: Arc<str>,
    pub transfer_free_zones: Vec<Arc<str>>,
    pub triggers: Vec<Trigger>,
    /// The issuing authority's time zone: the regime's legal day.
    pub timezone: LegalTz,
    /// Special categories need their own condition (GDPR Art 9(2)) whatever the basis.
    pub special_categories_need_condition: bool,
    /// Access by the same legal entity abroad is not a transfer (EDPB Guidelines 05/2021).
    pub same_entity_is_not_transfer: bool,
    /// Evidence every permitted transfer needs (e.g. PIPL Art 39 separate consent).
    pub requires_evidence: Vec<String>,
    /// Conditions every permitted transfer carries (e.g. PIPL Art 55 PIPIA).
    pub conditions: Vec<String>,
    pub note: Option<String>,
    pub validity: Validity,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    Adequacy,
    DataBridge,
}

/// What an instrument row covers beyond its destination and dates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The recipient must hold this certification on the evaluation date.
    pub certification: Option<String>,
    /// HR data is covered only when the certification includes HR data.
    #[serde(default)]
    pub hr_needs_certification: bool,
    /// The recipient's sector must be one of these.
    pub recipient_sectors: Option<Vec<String>>,
    /// Transfers for these purposes fall outside the row.
    #[serde(default)]
    pub excluded_purposes: Vec<String>,
    /// An EU act that reaches IS/LI/NO exporters only once an EEA Joint Committee Decision
    /// incorporates it (an `[[eea_incorporation]]` row).
    #[serde(default)]
    pub requires_eea_jcd: bool,
    /// The recipient must be this international organisation (e.g. `INTL:EPO`).
    pub organisation: Option<String>,
    /// Only automated transfers (and manual ones processed automatically on arrival).
    #[serde(default)]
    pub automated_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstrument {
    id: String,
    kind: InstrumentKind,
    regimes: Vec<String>,
    destination: Option<Country>,
    destination_zone: Option<String>,
    basis: String,
    title: String,
    adopted: Date,
    valid_from: Date,
    valid_to: Option<Date>,
    ended_by: Option<String>,
    #[serde(default)]
    scope: Scope,
    note: Option<String>,
    #[serde(flatten)]
    provenance: Provenance,
}

/// Where an instrument lets data go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstrumentDestination {
    Country(Country),
    Zone(Arc<str>),
}

/// An adequacy decision or data bridge, with its dates and scope.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub id: Arc<str>,
    pub kind: InstrumentKind,
    pub regimes: Vec<Arc<str>>,
    pub destination: InstrumentDestination,
    /// The basis as recorded in decisions, e.g. `adequacy:EU/2023/1795`.
    pub basis: Arc<str>,
    pub title: String,
    pub adopted: Date,
    pub validity: Validity,
    pub ended_by: Option<String>,
    pub scope: Scope,
    pub note: Option<String>,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProhibition {
    id: String,
    regimes: Vec<String>,
    destinations: Vec<Country>,
    purposes: Vec<String>,
    exporter_flag: Option<String>,
    title: String,
    valid_from: Date,
    valid_to: Option<Date>,
    note: Option<String>,
    #[serde(flatten)]
    provenance: Provenance,
}

/// A transfer that is forbidden whatever the basis.
#[derive(Debug, Clone)]
pub struct Prohibition {
    pub id: Arc<str>,
    pub regimes: Vec<Arc<str>>,
    pub destinations: Vec<Country>,
    pub purposes: Vec<String>,
    /// Only for exporters with this flag (`data_broker` for PADFA); unknown counts as set.
    pub exporter_flag: Option<String>,
    pub title: String,
    pub validity: Validity,
    pub note: Option<String>,
    pub provenance: Provenance,
}

/// An Art 46-type instrument (SCCs, IDTA, BCRs, a filed standard contract): a contract of
/// this kind on file, valid and in scope, gives `allow_with_conditions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safeguard {
    pub id: Arc<str>,
    /// The code contracts name (`EU-SCC-2021/914`).
    pub instrument: String,
    pub regimes: Vec<Arc<str>>,
    pub basis: Arc<str>,
    pub title: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub ended_by: Option<String>,
    /// Contracts signed on or after this day cannot use the instrument.
    pub new_contracts_until: Option<Date>,
    /// The contract's module must match the exporter's and importer's roles (SCC 2021/914).
    #[serde(default)]
    pub modules: bool,
    /// From this day a transfer impact assessment is needed (Schrems II, Clause 14).
    pub assessment_required_from: Option<Date>,
    /// The contract must be notified or filed within this many working days of signature.
    pub notify_within_working_days: Option<u32>,
    /// The contract must be notified to the authority before the transfer.
    #[serde(default)]
    pub notification_required: bool,
    /// Only for exporters sending fewer individuals' data than this this year.
    pub max_volume: Option<u64>,
    /// The band for a flow that carries sensitive PI (PIPL Art 28): fewer individuals than
    /// this this year.
    pub max_volume_sensitive: Option<u64>,
    /// Not for critical information infrastructure operators.
    #[serde(default)]
    pub not_ciio: bool,
    #[serde(default)]
    pub conditions: Vec<String>,
    pub note: Option<String>,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// `validity()` for rows that carry `valid_from` and `valid_to`.
macro_rules! dated_rows {
    ($($t:ty),* $(,)?) => {$(
        impl $t {
            pub fn validity(&self) -> Validity {
                Validity {
                    from: self.valid_from,
                    to: self.valid_to,
                }
            }
        }
    )*};
}

dated_rows!(Safeguard, Derogation, Localisation);

/// A derogation or exemption (GDPR Art 49, PIPL exemptions, consent grounds): usable only
/// with its evidence and within its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derogation {
    pub id: Arc<str>,
    pub regimes: Vec<Arc<str>>,
    pub basis: Arc<str>,
    pub title: String,
    /// The evidence key the flow must carry (`consent:explicit_transfer`); none for
    /// exemptions that depend only on volume.
    pub evidence: Option<String>,
    /// Only for occasional flows.
    #[serde(default)]
    pub occasional_only: bool,
    /// Not for public authorities exercising public powers (GDPR Art 49(3)).
    #[serde(default)]
    pub not_public_authority: bool,
    pub max_volume: Option<u64>,
    /// Not for flows that carry sensitive PI (PIPL Art 28).
    #[serde(default)]
    pub non_sensitive_only: bool,
    #[serde(default)]
    pub not_ciio: bool,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub ended_by: Option<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    pub note: Option<String>,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// A localisation rule: the primary copy must be created in the home zone. No contract cures
/// it; the gateway routes locally.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localisation {
    pub id: Arc<str>,
    pub regime: Arc<str>,
    /// Which subjects the rule follows (152-FZ: Russian citizens).
    pub trigger: Trigger,
    pub home_zone: Arc<str>,
    /// Only for exporters with this flag (`ciio` for PIPL Art 40).
    pub exporter_flag: Option<String>,
    pub title: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub ended_by: Option<String>,
    pub note: Option<String>,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// A signal the subject sends that forbids some purposes, whatever the destination (CCPA GPC
/// opt-out of sale and sharing; the CPRA limit on sensitive data).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOut {
    pub id: Arc<str>,
    pub regimes: Vec<Arc<str>>,
    /// `gpc` or `limit_sensitive`.
    pub signal: String,
    pub purposes: Vec<String>,
    /// Only when these categories are present: `special` for sensitive data; empty for any.
    #[serde(default)]
    pub categories: Vec<String>,
    pub title: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// An EEA Joint Committee Decision incorporating an EU adequacy decision for IS/LI/NO.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EeaIncorporation {
    pub id: Arc<str>,
    /// The instrument row incorporated.
    pub instrument: Arc<str>,
    pub valid_from: Date,
    #[serde(flatten)]
    pub provenance: Provenance,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    safeguard: Vec<Safeguard>,
    #[serde(default)]
    derogation: Vec<Derogation>,
    #[serde(default)]
    localisation: Vec<Localisation>,
    #[serde(default)]
    opt_out: Vec<OptOut>,
    #[serde(default)]
    eea_incorporation: Vec<EeaIncorporation>,
    #[serde(default)]
    zone: Vec<RawZone>,
    #[serde(default)]
    regime: Vec<RawRegime>,
    #[serde(default)]
    instrument: Vec<RawInstrument>,
    #[serde(default)]
    prohibition: Vec<RawProhibition>,
}

/// A problem in a knowledge-base file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KbError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: row {id}: {message}")]
    Row {
        file: String,
        id: String,
        message: String,
    },
}

const ENDED_BY: &str = "a row with valid_to must say what ended it (ended_by)";

const BUILTIN: &[(&str, &str)] = &[
    ("policy/kb/zones.toml", include_str!("../kb/zones.toml")),
    ("policy/kb/regimes.toml", include_str!("../kb/regimes.toml")),
    (
        "policy/kb/instruments.toml",
        include_str!("../kb/instruments.toml"),
    ),
    (
        "policy/kb/prohibitions.toml",
        include_str!("../kb/prohibitions.toml"),
    ),
    (
        "policy/kb/safeguards.toml",
        include_str!("../kb/safeguards.toml"),
    ),
    (
        "policy/kb/derogations.toml",
        include_str!("../kb/derogations.toml"),
    ),
    (
        "policy/kb/localisation.toml",
        include_str!("../kb/localisation.toml"),
    ),
    ("policy/kb/signals.toml", include_str!("../kb/signals.toml")),
];

/// The validated, indexed knowledge base.
#[derive(Clone)]
pub struct KnowledgeBase {
    zones: Vec<ZoneRow>,
    regimes: Vec<Regime>,
    instruments: Vec<Instrument>,
    prohibitions: Vec<Prohibition>,
    safeguards: Vec<Safeguard>,
    derogations: Vec<Derogation>,
    localisations: Vec<Localisation>,
    opt_outs: Vec<OptOut>,
    eea_incorporations: Vec<EeaIncorporation>,
    /// zone name → dense zone id.
    zone_ids: HashMap<Arc<str>, usize>,
    /// regime id → position in `regimes`.
    regime_ids: HashMap<Arc<str>, usize>,
    /// (zone id, country) → indexes into `zones`.
    zone_index: HashMap<(usize, Country), Vec<usize>>,
    /// (regime position, destination country) → indexes into `instruments` (country rows).
    instrument_index: HashMap<(usize, Country), Vec<usize>>,
    /// regime position → instruments whose destination is a zone.
    zone_instruments: HashMap<usize, Vec<usize>>,
    /// regime position → indexes into `prohibitions`.
    prohibition_index: HashMap<usize, Vec<usize>>,
    /// A digest of every source text, for the policy revision.
    digest: u64,
}

impl fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("zones", &self.zones.len())
            .field("regimes", &self.regimes.len())
            .field("instruments", &self.instruments.len())
            .field("prohibitions", &self.prohibitions.len())
            .field("safeguards", &self.safeguards.len())
            .field("derogations", &self.derogations.len())
            .field("localisations", &self.localisations.len())
            .finish()
    }
}

impl KnowledgeBase {
    /// The knowledge base compiled into Domicile.
    pub fn builtin() -> Result<KnowledgeBase, Vec<KbError>> {
        KnowledgeBase::from_sources(BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())))
    }

    /// The built-in base plus the user's files (`(name, text)` pairs), whose rows are added.
    pub fn builtin_with(
        extra: impl IntoIterator<Item = (String, String)>,
    ) -> Result<KnowledgeBase, Vec<KbError>> {
        let builtin = BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string()));
        KnowledgeBase::from_sources(builtin.chain(extra))
    }

    /// Loads and validates rows from named TOML texts. Every problem is reported.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<KnowledgeBase, Vec<KbError>> {
        let mut errors = Vec::new();
        let mut files = Vec::new();
        let mut digest = Fnv::new();
        for (name, text) in sources {
            digest.write(name.as_bytes());
            digest.write(text.as_bytes());
            match toml::from_str::<RawFile>(&text) {
                Ok(raw) => files.push((name, raw)),
                Err(e) => errors.push(KbError::Parse {
                    file: name,
                    message: e.to_string().trim_end().to_owned(),
                }),
            }
        }
        let mut kb = KnowledgeBase {
            zones: Vec::new(),
            regimes: Vec::new(),
            instruments: Vec::new(),
            prohibitions: Vec::new(),
            safeguards: Vec::new(),
            derogations: Vec::new(),
            localisations: Vec::new(),
            opt_outs: Vec::new(),
            eea_incorporations: Vec::new(),
            zone_ids: HashMap::default(),
            regime_ids: HashMap::default(),
            zone_index: HashMap::default(),
            instrument_index: HashMap::default(),
            zone_instruments: HashMap::default(),
            prohibition_index: HashMap::default(),
            digest: digest.finish(),
        };
        let mut ids = HashSet::new();
        let mut interner: HashMap<String, Arc<str>> = HashMap::default();
        let mut intern = |s: &str| -> Arc<str> {
            interner
                .entry(s.to_owned())
                .or_insert_with(|| Arc::from(s))
                .clone()
        };
        let row_err = |file: &str, id: &str, message: String, errors: &mut Vec<KbError>| {
            errors.push(KbError::Row {
                file: file.to_owned(),
                id: id.to_owned(),
                message,
            })
        };
        for (file, raw) in &files {
            let mut check = |id: &str, from: Date, to: Option<Date>, errors: &mut Vec<KbError>| {
                if !ids.insert(id.to_owned()) {
                    row_err(file, id, "duplicate row id".into(), errors);
                }
                if let Some(to) = to
                    && to <= from
                {
                    row_err(
                        file,
                        id,
                        format!("valid_to {to} is not after valid_from {from}"),
                        errors,
                    );
                }
            };
            for z in &raw.zone {
                check(&z.id, z.valid_from, z.valid_to, &mut errors);
                kb.zones.push(ZoneRow {
                    id: intern(&z.id),
                    zone: intern(&z.zone),
                    countries: z.countries.clone(),
                    validity: Validity {
                        from: z.valid_from,
                        to: z.valid_to,
                    },
                    provenance: z.provenance.clone(),
                });
            }
            for r in &raw.regime {
                check(&r.id, r.valid_from, r.valid_to, &mut errors);
                let timezone = match r.timezone.parse::<LegalTz>() {
                    Ok(tz) => tz,
                    Err(e) => {
                        row_err(file, &r.id, e.to_string(), &mut errors);
                        LegalTz::default()
                    }
                };
                kb.regimes.push(Regime {
                    triggers: r.triggers.clone(),
                    timezone,
                    special_categories_need_condition: r.special_categories_need_condition,
                    same_entity_is_not_transfer: r.same_entity_is_not_transfer,
                    requires_evidence: r.requires_evidence.clone(),
                    conditions: r.conditions.clone(),
                    note: r.note.clone(),
                    id: intern(&r.id),
                    name: r.name.clone(),
                    kind: r.kind,
                    covers_zone: intern(&r.covers_zone),
                    transfer_free_zones: r.transfer_free_zones.iter().map(|z| intern(z)).collect(),
                    validity: Validity {
                        from: r.valid_from,
                        to: r.valid_to,
                    },
                    provenance: r.provenance.clone(),
                });
            }
            for i in &raw.instrument {
                check(&i.id, i.valid_from, i.valid_to, &mut errors);
                let destination = match (&i.destination, &i.destination_zone) {
                    (Some(c), None) => InstrumentDestination::Country(*c),
                    (None, Some(z)) => InstrumentDestination::Zone(intern(z)),
                    _ => {
                        row_err(
                            file,
                            &i.id,
                            "exactly one of destination and destination_zone must be set".into(),
                            &mut errors,
                        );
                        continue;
                    }
                };
                if i.valid_to.is_some() && i.ended_by.is_none() {
                    row_err(file, &i.id, ENDED_BY.into(), &mut errors);
                }
                kb.instruments.push(Instrument {
                    id: intern(&i.id),
                    kind: i.kind,
                    regimes: i.regimes.iter().map(|r| intern(r)).collect(),
                    destination,
                    basis: intern(&i.basis),
                    title: i.title.clone(),
                    adopted: i.adopted,
                    validity: Validity {
                        from: i.valid_from,
                        to: i.valid_to,
                    },
                    ended_by: i.ended_by.clone(),
                    scope: i.scope.clone(),
                    note: i.note.clone(),
                    provenance: i.provenance.clone(),
                });
            }
            for p in &raw.prohibition {
                check(&p.id, p.valid_from, p.valid_to, &mut errors);
                kb.prohibitions.push(Prohibition {
                    id: intern(&p.id),
                    regimes: p.regimes.iter().map(|r| intern(r)).collect(),
                    destinations: p.destinations.clone(),
                    purposes: p.purposes.clone(),
                    exporter_flag: p.exporter_flag.clone(),
                    title: p.title.clone(),
                    validity: Validity {
                        from: p.valid_from,
                        to: p.valid_to,
                    },
                    note: p.note.clone(),
                    provenance: p.provenance.clone(),
                });
            }
            for r in &raw.safeguard {
                check(&r.id, r.valid_from, r.valid_to, &mut errors);
                if r.valid_to.is_some() && r.ended_by.is_none() {
                    row_err(file, &r.id, ENDED_BY.into(), &mut errors);
                }
                kb.safeguards.push(r.clone());
            }
            for r in &raw.derogation {
                check(&r.id, r.valid_from, r.valid_to, &mut errors);
                if r.valid_to.is_some() && r.ended_by.is_none() {
                    row_err(file, &r.id, ENDED_BY.into(), &mut errors);
                }
                kb.derogations.push(r.clone());
            }
            for r in &raw.localisation {
                check(&r.id, r.valid_from, r.valid_to, &mut errors);
                if r.valid_to.is_some() && r.ended_by.is_none() {
                    row_err(file, &r.id, ENDED_BY.into(), &mut errors);
                }
                kb.localisations.push(r.clone());
            }
            for r in &raw.opt_out {
                check(&r.id, r.valid_from, r.valid_to, &mut errors);
                if !matches!(r.signal.as_str(), "gpc" | "limit_sensitive") {
                    row_err(
                        file,
                        &r.id,
                        format!(
                            "unknown signal {:?}; expected gpc or limit_sensitive",
                            r.signal
                        ),
                        &mut errors,
                    );
                }
                kb.opt_outs.push(r.clone());
            }
            for r in &raw.eea_incorporation {
                check(&r.id, r.valid_from, None, &mut errors);
                kb.eea_incorporations.push(r.clone());
            }
        }
        // Cross-references: every zone and regime named must exist.
        let mut purposes_named: Vec<(Arc<str>, &String)> = Vec::new();
        for p in &kb.prohibitions {
            purposes_named.extend(p.purposes.iter().map(|x| (p.id.clone(), x)));
        }
        for i in &kb.instruments {
            purposes_named.extend(i.scope.excluded_purposes.iter().map(|x| (i.id.clone(), x)));
        }
        for o in &kb.opt_outs {
            purposes_named.extend(o.purposes.iter().map(|x| (o.id.clone(), x)));
        }
        for (id, purpose) in purposes_named {
            if !crate::model::is_known_purpose(purpose) {
                errors.push(KbError::Row {
                    file: "knowledge base".into(),
                    id: id.to_string(),
                    message: format!(
                        "unknown purpose {purpose:?}; expected one of {}",
                        crate::model::purpose_names()
                    ),
                });
            }
        }
        let flags = kb
            .localisations
            .iter()
            .map(|l| (&l.id, l.exporter_flag.as_deref(), "ciio"))
            .chain(
                kb.prohibitions
                    .iter()
                    .map(|p| (&p.id, p.exporter_flag.as_deref(), "data_broker")),
            );
        for (id, flag, known) in flags {
            if let Some(flag) = flag
                && flag != known
            {
                errors.push(KbError::Row {
                    file: "knowledge base".into(),
                    id: id.to_string(),
                    message: format!("unknown exporter_flag {flag:?}; expected {known:?}"),
                });
            }
        }
        let instrument_ids: HashSet<Arc<str>> =
            kb.instruments.iter().map(|i| i.id.clone()).collect();
        for e in &kb.eea_incorporations {
            if !instrument_ids.contains(&e.instrument) {
                errors.push(KbError::Row {
                    file: "knowledge base".into(),
                    id: e.id.to_string(),
                    message: format!("unknown instrument row {:?}", e.instrument),
                });
            }
        }
        let zone_names: HashSet<Arc<str>> = kb.zones.iter().map(|z| z.zone.clone()).collect();
        let regime_names: HashSet<Arc<str>> = kb.regimes.iter().map(|r| r.id.clone()).collect();
        for r in &kb.regimes {
            for z in std::iter::once(&r.covers_zone).chain(&r.transfer_free_zones) {
                if !zone_names.contains(z) {
                    errors.push(KbError::Row {
                        file: "knowledge base".into(),
                        id: r.id.to_string(),
                        message: format!("unknown zone {z:?}"),
                    });
                }
            }
        }
        let localisation_regimes: Vec<(Arc<str>, Vec<Arc<str>>)> = kb
            .localisations
            .iter()
            .map(|l| (l.id.clone(), vec![l.regime.clone()]))
            .collect();
        for (id, regimes) in kb
            .instruments
            .iter()
            .map(|i| (&i.id, &i.regimes))
            .chain(kb.prohibitions.iter().map(|p| (&p.id, &p.regimes)))
            .chain(kb.safeguards.iter().map(|p| (&p.id, &p.regimes)))
            .chain(kb.derogations.iter().map(|p| (&p.id, &p.regimes)))
            .chain(kb.opt_outs.iter().map(|p| (&p.id, &p.regimes)))
            .chain(localisation_regimes.iter().map(|(i, r)| (i, r)))
        {
            for r in regimes {
                if !regime_names.contains(r) {
                    errors.push(KbError::Row {
                        file: "knowledge base".into(),
                        id: id.to_string(),
                        message: format!("unknown regime {r:?}"),
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for z in &kb.zones {
            let next = kb.zone_ids.len();
            kb.zone_ids.entry(z.zone.clone()).or_insert(next);
        }
        for (n, r) in kb.regimes.iter().enumerate() {
            kb.regime_ids.insert(r.id.clone(), n);
        }
        for (n, z) in kb.zones.iter().enumerate() {
            let zid = kb.zone_ids[&z.zone];
            for c in &z.countries {
                kb.zone_index.entry((zid, *c)).or_default().push(n);
            }
        }
        for (n, i) in kb.instruments.iter().enumerate() {
            for r in &i.regimes {
                let rid = kb.regime_ids[r];
                match &i.destination {
                    InstrumentDestination::Country(c) => {
                        kb.instrument_index.entry((rid, *c)).or_default().push(n)
                    }
                    InstrumentDestination::Zone(_) => {
                        kb.zone_instruments.entry(rid).or_default().push(n)
                    }
                }
            }
        }
        for (n, p) in kb.prohibitions.iter().enumerate() {
            for r in &p.regimes {
                let rid = kb.regime_ids[r];
                kb.prohibition_index.entry(rid).or_default().push(n);
            }
        }
        Ok(kb)
    }

    /// The zone row that puts `country` in `zone` on `at`, if any.
    pub fn zone_membership(&self, zone: &str, country: Country, at: Date) -> Option<&ZoneRow> {
        let zid = *self.zone_ids.get(zone)?;
        self.zone_index
            .get(&(zid, country))?
            .iter()
            .map(|&n| &self.zones[n])
            .find(|z| z.validity.contains(at))
    }

    /// Regimes in force on `at` whose covered zone holds `country`, with the zone row.
    pub fn regimes_for(&self, country: Country, at: Date) -> Vec<(&Regime, &ZoneRow)> {
        self.regimes
            .iter()
            .filter(|r| r.validity.contains(at))
            .filter_map(|r| Some((r, self.zone_membership(&r.covers_zone, country, at)?)))
            .collect()
    }

    /// Instruments of `regime` whose destination is `country` or a zone (any date: the engine
    /// explains rows that are out of date too). Zone rows still need a membership check.
    pub fn instruments_for<'a>(
        &'a self,
        regime: &str,
        country: Country,
    ) -> impl Iterator<Item = &'a Instrument> + 'a {
        let rid = self.regime_ids.get(regime).copied();
        let direct = rid
            .and_then(|r| self.instrument_index.get(&(r, country)))
            .into_iter()
            .flatten();
        let zoned = rid
            .and_then(|r| self.zone_instruments.get(&r))
            .into_iter()
            .flatten();
        direct.chain(zoned).map(|&n| &self.instruments[n])
    }

    /// Prohibitions of `regime`.
    pub fn prohibitions_for<'a>(
        &'a self,
        regime: &str,
    ) -> impl Iterator<Item = &'a Prohibition> + 'a {
        self.regime_ids
            .get(regime)
            .and_then(|r| self.prohibition_index.get(r))
            .into_iter()
            .flatten()
            .map(|&n| &self.prohibitions[n])
    }

    pub fn zones(&self) -> &[ZoneRow] {
        &self.zones
    }
    pub fn regimes(&self) -> &[Regime] {
        &self.regimes
    }
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }
    pub fn prohibitions(&self) -> &[Prohibition] {
        &self.prohibitions
    }
    pub fn safeguards(&self) -> &[Safeguard] {
        &self.safeguards
    }
    pub fn derogations(&self) -> &[Derogation] {
        &self.derogations
    }
    pub fn localisations(&self) -> &[Localisation] {
        &self.localisations
    }
    pub fn opt_outs(&self) -> &[OptOut] {
        &self.opt_outs
    }
    pub fn eea_incorporations(&self) -> &[EeaIncorporation] {
        &self.eea_incorporations
    }

    /// The safeguard row of `regime` for an instrument code.
    pub fn safeguard(&self, regime: &str, instrument: &str) -> Option<&Safeguard> {
        self.safeguards
            .iter()
            .find(|s| s.instrument == instrument && s.regimes.iter().any(|r| &**r == regime))
    }

    /// Whether a regime id exists.
    pub fn has_regime(&self, regime: &str) -> bool {
        self.regime_ids.contains_key(regime)
    }

    /// A stable digest of the knowledge-base texts (FNV-1a), part of the policy revision.
    pub fn digest(&self) -> u64 {
        self.digest
    }
}

/// FNV-1a, 64 bit: a stable, dependency-free digest for revision ids (not a security hash).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn builtin_loads_and_every_row_has_provenance() {
        let kb = KnowledgeBase::builtin().unwrap();
        assert!(kb.instruments().len() >= 20);
        for i in kb.instruments() {
            assert!(!i.provenance.reference.is_empty(), "{}", i.id);
            assert!(!i.provenance.source.is_empty(), "{}", i.id);
        }
    }

    #[test]
    fn eea_membership_is_dated() {
        let kb = KnowledgeBase::builtin().unwrap();
        let no = Country::parse("NO").unwrap();
        assert!(kb.zone_membership("EEA", no, d("2018-07-19")).is_none());
        assert!(kb.zone_membership("EEA", no, d("2018-07-20")).is_some());
        let gb = Country::parse("GB").unwrap();
        assert!(kb.zone_membership("EEA", gb, d("2020-12-31")).is_some());
        assert!(kb.zone_membership("EEA", gb, d("2021-01-01")).is_none());
    }

    #[test]
    fn bad_rows_are_all_reported() {
        let text = r#"
            [[zone]]
            id = "z"
            zone = "Z"
            countries = ["DE"]
            valid_from = "2020-01-01"
            valid_to = "2019-01-01"
            reference = "r"
            source = "s"
            verification = "V-P"

            [[instrument]]
            id = "i"
            kind = "adequacy"
            regimes = ["NOPE"]
            destination = "US"
            basis = "adequacy:x"
            title = "t"
            adopted = "2020-01-01"
            valid_from = "2020-01-01"
            valid_to = "2021-01-01"
            reference = "r"
            source = "s"
            verification = "U"
        "#;
        let errs =
            KnowledgeBase::from_sources([("user.toml".to_string(), text.to_string())]).unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("valid_to 2019-01-01 is not after")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("ended_by")), "{text:?}");
        assert!(
            text.iter().any(|e| e.contains("unknown regime \"NOPE\"")),
            "{text:?}"
        );
    }

    #[test]
    fn unknown_purposes_flags_time_zones_and_signals_are_refused() {
        let text = r#"
            [[regime]]
            id = "X"
            name = "x"
            kind = "open"
            covers_zone = "EEA"
            transfer_free_zones = []
            timezone = "Mars/Olympus"
            valid_from = "2020-01-01"
            reference = "r"
            source = "s"
            verification = "V-P"

            [[prohibition]]
            id = "p"
            regimes = ["X"]
            destinations = ["US"]
            purposes = ["telepathy"]
            exporter_flag = "pirate"
            title = "t"
            valid_from = "2020-01-01"
            reference = "r"
            source = "s"
            verification = "V-P"

            [[opt_out]]
            id = "o"
            regimes = ["X"]
            signal = "smoke"
            purposes = ["sale"]
            title = "t"
            valid_from = "2020-01-01"
            reference = "r"
            source = "s"
            verification = "V-P"
        "#;
        let errs =
            KnowledgeBase::builtin_with([("user.toml".to_string(), text.to_string())]).unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        for want in [
            "row X: unknown time zone \"Mars/Olympus\"",
            "row p: unknown purpose \"telepathy\"",
            "row p: unknown exporter_flag \"pirate\"",
            "row o: unknown signal \"smoke\"",
        ] {
            assert!(
                text.iter().any(|e| e.contains(want)),
                "{want} not in {text:?}"
            );
        }
    }
}
