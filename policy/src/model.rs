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

/// A legal entity that operates a region or receives data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub country: Country,
    /// Unknown sectors fail every sector-scoped row.
    pub sector: Option<Sector>,
    pub certifications: Vec<Certification>,
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
    /// Some evidence that should be there is missing (the client address has no country):
    /// the jurisdictions above may be incomplete, so personal data fails closed.
    pub incomplete: bool,
    /// Categories found (deduplicated or not; order does not matter).
    pub categories: &'a [Category],
    pub purpose: &'a str,
    pub destination: Destination<'a>,
    /// The evaluation date (the transfer's date, in the regime's time zone).
    pub at: Date,
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
    /// What the step found, in words.
    pub finding: String,
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
