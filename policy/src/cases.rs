//! Policy test cases as data: facts in, expected verdict and basis out.
//!
//! Privacy officers write these in TOML and run them with `domicile policy test FILE`; the legal
//! scenarios of the reference live in `policy/tests/scenarios.toml` and run with `cargo test`.

use serde::Deserialize;

use crate::country::Country;
use crate::date::{Date, Validity};
use crate::engine::Engine;
use crate::model::{
    Assessment, Category, Certification, Contract, Decision, Destination, Entity, Facts, Frequency,
    Query, Role, Sector, Verdict,
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
    pub country: Option<Country>,
    pub sector: Option<Sector>,
    #[serde(default)]
    pub certifications: Vec<CaseCertification>,
    pub role: Option<Role>,
    #[serde(default)]
    pub public_authority: bool,
    #[serde(default)]
    pub ciio: bool,
    pub data_broker: Option<bool>,
    pub organisation: Option<String>,
}

impl CaseRecipient {
    fn entity(&self, default_country: Country) -> Entity {
        Entity {
            id: self.id.clone(),
            name: self.id.clone(),
            country: self.country.unwrap_or(default_country),
            sector: self.sector,
            certifications: self
                .certifications
                .iter()
                .map(|c| Certification {
                    scheme: c.scheme.clone(),
                    validity: Validity {
                        from: c.from,
                        to: c.to,
                    },
                    hr: c.hr,
                })
                .collect(),
            role: self.role,
            public_authority: self.public_authority,
            ciio: self.ciio,
            data_broker: self.data_broker,
            organisation: self.organisation.clone(),
        }
    }
}

/// A transfer impact assessment on file, in a case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseAssessment {
    pub id: String,
    pub date: Date,
    pub review: Option<Date>,
    #[serde(default)]
    pub impingement: bool,
}

/// A contract on file, in a case. The importer defaults to the recipient, the exporter to
/// the case's exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseContract {
    #[serde(default = "default_contract_id")]
    pub id: String,
    pub instrument: String,
    pub module: Option<u8>,
    pub exporter: Option<String>,
    pub importer: Option<String>,
    pub signed: Date,
    pub tia: Option<CaseAssessment>,
    #[serde(default)]
    pub measures: Vec<String>,
    pub notified: Option<Date>,
}

fn default_contract_id() -> String {
    "contract".into()
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
    /// Each of these must appear in one of the decision's conditions.
    #[serde(default)]
    pub conditions_include: Vec<String>,
    /// The subject's citizenships.
    #[serde(default)]
    pub citizenship: Vec<Country>,
    /// A `Sec-GPC: 1` signal.
    #[serde(default)]
    pub gpc: bool,
    /// A CPRA request to limit the use of sensitive personal information.
    #[serde(default)]
    pub limit_sensitive: bool,
    #[serde(default)]
    pub frequency: Frequency,
    /// Evidence on file (`consent:explicit_transfer`, `contract_necessity`, `art9:9_2_h`...).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The exporting entity; its country defaults to the subject's first jurisdiction.
    pub exporter: Option<CaseRecipient>,
    #[serde(default)]
    pub contracts: Vec<CaseContract>,
    /// Individuals whose data the exporter has sent abroad this year.
    pub volume: Option<u64>,
    /// A manual transfer, not processed automatically on arrival.
    #[serde(default)]
    pub manual: bool,
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
        self.recipient.as_ref().map_or_else(
            || Entity::new(default_recipient_id(), self.to),
            |r| r.entity(self.to),
        )
    }

    fn contracts(&self, exporter: Option<&Entity>, importer: &Entity) -> Vec<Contract> {
        self.contracts
            .iter()
            .map(|c| Contract {
                id: c.id.clone(),
                instrument: c.instrument.clone(),
                module: c.module,
                exporter: c
                    .exporter
                    .clone()
                    .or_else(|| exporter.map(|e| e.id.clone()))
                    .unwrap_or_else(|| "exporter".into()),
                importer: c.importer.clone().unwrap_or_else(|| importer.id.clone()),
                signed: c.signed,
                assessment: c.tia.as_ref().map(|t| Assessment {
                    id: t.id.clone(),
                    date: t.date,
                    review: t.review,
                    impingement: t.impingement,
                }),
                measures: c.measures.clone(),
                notified: c.notified,
            })
            .collect()
    }

    /// Evaluates the case and compares with the expectation.
    pub fn run(&self, engine: &Engine) -> CaseResult {
        let entity = self.entity();
        let home = self.subject.first().copied().unwrap_or(self.to);
        let exporter = self.exporter.as_ref().map(|e| e.entity(home));
        let contracts = self.contracts(exporter.as_ref(), &entity);
        let q = Query {
            jurisdictions: &self.subject,
            citizenship: &self.citizenship,
            incomplete: false,
            categories: &self.data,
            purpose: &self.purpose,
            destination: Destination {
                region: &self.region,
                country: self.to,
                entity: &entity,
            },
            at: self.at,
            instant: None,
            facts: Facts {
                gpc: self.gpc,
                limit_sensitive: self.limit_sensitive,
                frequency: self.frequency,
                evidence: &self.evidence,
                exporter: exporter.as_ref(),
                contracts: &contracts,
                volume: self.volume,
                manual: self.manual,
            },
        };
        let decision = engine.evaluate(&q);
        let mut problems = Vec::new();
        if !crate::model::is_known_purpose(&self.purpose) {
            problems.push(format!(
                "unknown purpose {:?}; expected one of {}",
                self.purpose,
                crate::model::purpose_names()
            ));
        }
        for want in &self.conditions_include {
            if !decision
                .conditions
                .iter()
                .any(|c| c.contains(want.as_str()))
            {
                problems.push(format!(
                    "no condition mentions {want:?} (conditions: {:?})",
                    decision.conditions
                ));
            }
        }
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
