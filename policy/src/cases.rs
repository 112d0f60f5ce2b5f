//! Policy test cases as data: facts in, expected verdict and basis out.
//!
//! Privacy officers write these in TOML and run them with `domicile policy test FILE`; the legal
//! scenarios of the reference live in `policy/tests/scenarios.toml` and run with `cargo test`.

use serde::Deserialize;

use crate::country::Country;
use crate::date::{Date, Validity};
use crate::engine::Engine;
use crate::model::{
    Category, Certification, Decision, Destination, Entity, Query, Sector, Verdict,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseCertification {
    pub scheme: String,
    pub from: Date,
    pub to: Option<Date>,
    #[serde(default)]
    pub hr: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRecipient {
    #[serde(default = "default_recipient_id")]
    pub id: String,
    pub sector: Option<Sector>,
    #[serde(default)]
    pub certifications: Vec<CaseCertification>,
}

fn default_recipient_id() -> String {
    "recipient".into()
}

/// One scenario: who, what, why, where, when, and what the answer must be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub subject: Vec<Country>,
    pub data: Vec<Category>,
    pub purpose: String,
    pub to: Country,
    #[serde(default = "default_region")]
    pub region: String,
    pub recipient: Option<CaseRecipient>,
    pub at: Date,
    pub expect: Verdict,
    /// When set, the decision's bases must equal this list (one string for one basis).
    pub basis: Option<Vec<String>>,
    /// When set, the decision's reason code must equal this.
    pub reason_code: Option<String>,
}

fn default_region() -> String {
    "destination".into()
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// What differed, when it failed.
    pub mismatch: Option<String>,
    pub decision: Decision,
}

impl Case {
    fn entity(&self) -> Entity {
        let r = self.recipient.clone().unwrap_or(CaseRecipient {
            id: default_recipient_id(),
            sector: None,
            certifications: Vec::new(),
        });
        Entity {
            id: r.id.clone(),
            name: r.id,
            country: self.to,
            sector: r.sector,
            certifications: r
                .certifications
                .into_iter()
                .map(|c| Certification {
                    scheme: c.scheme,
                    validity: Validity {
                        from: c.from,
                        to: c.to,
                    },
                    hr: c.hr,
                })
                .collect(),
        }
    }

    /// Evaluates the case and compares with the expectation.
    pub fn run(&self, engine: &Engine) -> CaseResult {
        let entity = self.entity();
        let q = Query {
            jurisdictions: &self.subject,
            incomplete: false,
            categories: &self.data,
            purpose: &self.purpose,
            destination: Destination {
                region: &self.region,
                country: self.to,
                entity: &entity,
            },
            at: self.at,
        };
        let decision = engine.evaluate(&q);
        let mut problems = Vec::new();
        if decision.verdict != self.expect {
            problems.push(format!(
                "verdict {} (expected {})",
                decision.verdict, self.expect
            ));
        }
        if let Some(basis) = &self.basis {
            let got: Vec<&str> = decision.basis.iter().map(|b| &**b).collect();
            if got != basis.iter().map(String::as_str).collect::<Vec<_>>() {
                problems.push(format!("basis {got:?} (expected {basis:?})"));
            }
        }
        if let Some(code) = &self.reason_code
            && decision.reason_code != code
        {
            problems.push(format!(
                "reason_code {} (expected {code})",
                decision.reason_code
            ));
        }
        CaseResult {
            name: self.name.clone(),
            passed: problems.is_empty(),
            mismatch: (!problems.is_empty()).then(|| problems.join("; ")),
            decision,
        }
    }
}

/// Parses a case file.
pub fn parse_cases(text: &str) -> Result<CaseFile, toml::de::Error> {
    toml::from_str(text)
}
