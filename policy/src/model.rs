//! The engine's inputs and outputs.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::country::Country;
use crate::date::{Date, Validity};

/// A kind of personal data. The wire names are the ones findings and decision records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    Phone,
    Iban,
    PaymentCard,
    NationalId,
    IpAddress,
    Name,
    Address,
    DateOfBirth,
    PreciseLocation,
    Health,
    Biometric,
    Genetic,
    Religion,
    Ethnicity,
    Political,
    SexLife,
    Union,
    Criminal,
    /// Citizenship or nationality: names the country the subject belongs to.
    Nationality,
    /// Data that could not be inspected: personal data of unknown category.
    Uninspectable,
}

impl Category {
    pub const ALL: [Category; 21] = [
        Category::Email,
        Category::Phone,
        Category::Iban,
        Category::PaymentCard,
        Category::NationalId,
        Category::IpAddress,
        Category::Name,
        Category::Address,
        Category::DateOfBirth,
        Category::PreciseLocation,
        Category::Health,
        Category::Biometric,
        Category::Genetic,
        Category::Religion,
        Category::Ethnicity,
        Category::Political,
        Category::SexLife,
        Category::Union,
        Category::Criminal,
        Category::Nationality,
        Category::Uninspectable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::Iban => "iban",
            Category::PaymentCard => "payment_card",
            Category::NationalId => "national_id",
            Category::IpAddress => "ip_address",
            Category::Name => "name",
            Category::Address => "address",
            Category::DateOfBirth => "date_of_birth",
            Category::PreciseLocation => "precise_location",
            Category::Health => "health",
            Category::Biometric => "biometric",
            Category::Genetic => "genetic",
            Category::Religion => "religion",
            Category::Ethnicity => "ethnicity",
            Category::Political => "political",
            Category::SexLife => "sex_life",
            Category::Union => "union",
            Category::Criminal => "criminal",
            Category::Nationality => "nationality",
            Category::Uninspectable => "uninspectable",
        }
    }

    /// GDPR Art 9 and Art 10 data: needs its own condition whatever the transfer basis.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Category::Health
                | Category::Biometric
                | Category::Genetic
                | Category::Religion
                | Category::Ethnicity
                | Category::Political
                | Category::SexLife
                | Category::Union
                | Category::Criminal
        )
    }

    /// Sensitive personal information under PIPL Art 28: the special categories, financial
    /// accounts, whereabouts and "specific identity" (identity document numbers, GB/T
    /// 35273-2020 Annex B). Data that could not be inspected may be any of them, so it counts.
    /// (PI of minors under 14 is sensitive too; no category says a subject's age.)
    pub fn is_pipl_sensitive(self) -> bool {
        self.is_special()
            || matches!(
                self,
                Category::Iban
                    | Category::PaymentCard
                    | Category::PreciseLocation
                    | Category::NationalId
                    | Category::Uninspectable
            )
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Category, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown data category {s:?}"))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sort of organisation a recipient is; partial adequacy decisions depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sector {
    Commercial,
    NonProfit,
    Public,
}

impl Sector {
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Commercial => "commercial",
            Sector::NonProfit => "non_profit",
            Sector::Public => "public",
        }
    }
}

/// A certification a legal entity holds (e.g. `EU-US-DPF`), with its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    pub scheme: String,
    pub validity: Validity,
    /// Whether the certification covers HR (employment) data.
    pub hr: bool,
}

/// The role an entity plays in a processing operation (SCC modules depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Controller,
    Processor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Processor => "processor",
        }
    }
}

/// A legal entity that operates a region, exports or receives data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub country: Country,
    /// Unknown sectors fail every sector-scoped row.
    pub sector: Option<Sector>,
    pub certifications: Vec<Certification>,
    /// Controller or processor; unknown roles fail every module check.
    pub role: Option<Role>,
    /// A public authority exercising public powers (GDPR Art 49(3)).
    pub public_authority: bool,
    /// A critical information infrastructure operator (PIPL Art 40).
    pub ciio: bool,
    /// A data broker (PADFA 2024); `None` means not on file, which counts as one.
    pub data_broker: Option<bool>,
    /// An international organisation's id (e.g. `INTL:EPO`): transfers to it are looked up
    /// by organisation, not by country.
    pub organisation: Option<String>,
}

impl Entity {
    /// An entity with only the facts every entity has; the flags are off and unknown.
    pub fn new(id: impl Into<String>, country: Country) -> Entity {
        let id = id.into();
        Entity {
            name: id.clone(),
            id,
            country,
            sector: None,
            certifications: Vec::new(),
            role: None,
            public_authority: false,
            ciio: false,
            data_broker: None,
            organisation: None,
        }
    }
}

/// How often a flow happens: Art 49 derogations need it to be occasional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Occasional,
    /// The default: a gateway route is a systematic flow unless the policy says otherwise.
    #[default]
    Systematic,
}

/// A transfer impact assessment (or PIA/PIPIA) on file for a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub id: String,
    pub date: Date,
    /// When it is due for review; after it the decision carries `tia_review_overdue`.
    pub review: Option<Date>,
    /// The assessment found that the destination's law impinges on the clauses, so an
    /// effective supplementary measure is needed.
    pub impingement: bool,
}

/// A contract on file: an Art 46-type instrument between an exporter and an importer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    pub id: String,
    /// The instrument code, matched against knowledge-base safeguard rows (`EU-SCC-2021/914`).
    pub instrument: String,
    /// The SCC module (1 C→C, 2 C→P, 3 P→P, 4 P→C), when the instrument has modules.
    pub module: Option<u8>,
    pub exporter: String,
    pub importer: String,
    pub signed: Date,
    pub assessment: Option<Assessment>,
    /// Supplementary measures, e.g. `encryption-keys-held:EEA`, `pseudonymised:email,name`.
    pub measures: Vec<String>,
    /// When the contract was filed with or notified to the authority (KVKK, CAC, RKN).
    pub notified: Option<Date>,
}

/// What the policy adds to the law: a rule that tightens it, or an exception (which loosens
/// it) with a reason and an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: String,
    /// Empty: any destination country.
    pub destinations: Vec<Country>,
    /// Empty: any purpose.
    pub purposes: Vec<String>,
    /// Empty: any category.
    pub categories: Vec<Category>,
    /// Empty: any regime.
    pub regimes: Vec<String>,
    /// Empty: any destination region.
    pub regions: Vec<String>,
    pub effect: OverrideEffect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideEffect {
    /// Tighten: block what the law would allow.
    Block,
    /// Loosen: allow (with conditions) a transfer the law has no basis for. Never lifts a
    /// prohibition, a localisation rule, or a fail-closed rule.
    Exception { reason: String, owner: String },
}

/// Signals and facts about the flow beyond its data and destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// A Global Privacy Control signal (`Sec-GPC: 1`): an opt-out of sale and sharing.
    pub gpc: bool,
    /// A CPRA request to limit the use of sensitive personal information.
    pub limit_sensitive: bool,
    pub frequency: Frequency,
    /// Evidence on file for this flow: `consent:explicit_transfer`, `contract_necessity`,
    /// `consent:separate`, `art9:9_2_h`, ... (the README lists them).
    pub evidence: &'a [String],
    /// The exporting entity; `None` when unknown (exporter-dependent facts fail closed).
    pub exporter: Option<&'a Entity>,
    /// The contracts on file; the engine uses those whose importer is the destination entity.
    pub contracts: &'a [Contract],
    /// Individuals whose data this exporter has sent abroad this year (CN thresholds).
    pub volume: Option<u64>,
    /// A manual (non-automated) transfer that is not processed automatically on arrival;
    /// everything through the gateway is automated.
    pub manual: bool,
}

/// Where the data would go.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub region: &'a str,
    pub country: Country,
    pub entity: &'a Entity,
}

/// One hypothetical or real transfer to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The subject's plausible jurisdictions; empty when nothing is known.
    pub jurisdictions: &'a [Country],
    /// The subject's known citizenships (152-FZ is triggered by Russian citizenship).
    pub citizenship: &'a [Country],
    /// Some evidence that should be there is missing (the client address has no country):
    /// the jurisdictions above may be incomplete, so personal data fails closed.
    pub incomplete: bool,
    /// Categories found (deduplicated or not; order does not matter).
    pub categories: &'a [Category],
    pub purpose: &'a str,
    pub destination: Destination<'a>,
    /// The evaluation date, used as every regime's legal day when `instant` is not set.
    pub at: Date,
    /// The transfer's instant (Unix seconds); each regime then reads it as a day in its own
    /// time zone.
    pub instant: Option<i64>,
    pub facts: Facts<'a>,
}

/// The engine's answer, from most permissive to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    AllowWithConditions,
    Transform,
    RouteLocal,
    Block,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::AllowWithConditions => "allow_with_conditions",
            Verdict::Transform => "transform",
            Verdict::RouteLocal => "route_local",
            Verdict::Block => "block",
        }
    }

    /// Whether the request may be forwarded to the evaluated destination.
    pub fn permits(self) -> bool {
        matches!(
            self,
            Verdict::Allow | Verdict::AllowWithConditions | Verdict::Transform
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of the rule trail: which rule was looked at and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The algorithm step (`regimes`, `transfer`, `prohibition`, `adequacy`, ...).
    pub step: &'static str,
    /// The knowledge-base row or policy rule id.
    pub rule: Arc<str>,
    /// What the step found, in words (most findings are fixed sentences, not copied).
    pub finding: std::borrow::Cow<'static, str>,
}

/// The verdict with its legal basis and the reason trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// A stable machine code for the outcome (`adequacy`, `no_transfer_basis`, ...).
    pub reason_code: &'static str,
    /// The bases relied on, e.g. `adequacy:EU/2023/1795` (one per regime that allowed).
    pub basis: Vec<Arc<str>>,
    /// The regimes that applied.
    pub regimes: Vec<Arc<str>>,
    /// Conditions the allow depends on.
    pub conditions: Vec<String>,
    /// The nearest date on which this answer may change (a basis or certification ending).
    pub re_evaluate_at: Option<Date>,
    pub reasons: Vec<Reason>,
}

/// The closed vocabulary of purposes: routes, cases and knowledge-base rows may name only
/// these, so a misspelt purpose cannot slip past a scope limit or a prohibition.
pub const PURPOSES: &[(&str, &str)] = &[
    (
        "storage",
        "storing the data (the system of record, backups)",
    ),
    (
        "processing",
        "processing on the data controller's instructions",
    ),
    (
        "support",
        "customer support and remote access to troubleshoot",
    ),
    (
        "catalog",
        "content declared free of personal data (product catalogues, static pages)",
    ),
    ("payment", "payment and order fulfilment"),
    ("analytics", "usage analytics"),
    ("marketing", "first-party marketing"),
    ("advertising", "advertising"),
    (
        "cross_context_advertising",
        "cross-context behavioural advertising (CCPA sharing)",
    ),
    ("sharing", "sharing with a third party (CCPA sharing)"),
    ("sale", "sale to a third party"),
    ("data_brokerage", "data brokerage"),
    ("hr", "human-resources (employment) data"),
    ("employment", "employment records"),
    ("research", "research"),
    ("journalism", "journalism"),
    ("immigration_control", "immigration control"),
    ("law_enforcement", "law enforcement"),
    ("public_security", "public security"),
    (
        "credit_information",
        "personal credit information (Korea's Credit Information Act)",
    ),
    (
        "missionary_activity",
        "religious organisations' missionary activities",
    ),
    (
        "candidate_nomination",
        "political parties' nomination of candidates",
    ),
];

/// Whether `purpose` is in the closed vocabulary.
pub fn is_known_purpose(purpose: &str) -> bool {
    PURPOSES.iter().any(|(p, _)| *p == purpose)
}

/// The vocabulary, comma separated, for error messages.
pub fn purpose_names() -> String {
    PURPOSES
        .iter()
        .map(|(p, _)| *p)
        .collect::<Vec<_>>()
        .join(", ")
}
