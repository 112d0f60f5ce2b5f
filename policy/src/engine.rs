//! The decision engine: pure and synchronous, time is an argument.
//!
//! For each plausible jurisdiction of the subject it finds the regimes in force, and for each
//! regime walks the steps of transfer-law.md section C.2 that the knowledge base models: is it a
//! transfer at all, hard prohibitions, then adequacy and data bridges in scope on that date.
//! Every regime must pass and the most restrictive verdict wins; anything unknown fails closed.

use std::sync::Arc;

use crate::country::Country;
use crate::kb::{Instrument, InstrumentDestination, KnowledgeBase, Regime, RegimeKind};
use crate::model::{Category, Decision, Query, Reason, Verdict};

/// What to do for a subject whose jurisdiction no modelled regime covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmodelled {
    /// Fail closed (the default).
    #[default]
    Block,
    /// Treat the jurisdiction as placing no restriction on transfers.
    Allow,
}

/// The user's switches that change how the engine reads the knowledge base.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineOptions {
    /// Let an unverified (`U`) row be the sole basis of an allow.
    pub allow_unverified: bool,
    pub unmodelled: Unmodelled,
}

/// The engine: a knowledge base and the options that read it.
#[derive(Debug, Clone)]
pub struct Engine {
    kb: Arc<KnowledgeBase>,
    options: EngineOptions,
}

/// Purposes whose data is HR (employment) data for scope checks such as the DPF's HR rule.
const HR_PURPOSES: &[&str] = &["hr", "employment"];

struct Partial {
    verdict: Verdict,
    code: &'static str,
    basis: Option<Arc<str>>,
    re_evaluate_at: Option<crate::date::Date>,
}

impl Partial {
    fn block(code: &'static str) -> Partial {
        Partial {
            verdict: Verdict::Block,
            code,
            basis: None,
            re_evaluate_at: None,
        }
    }
    fn allow(code: &'static str, basis: Arc<str>) -> Partial {
        Partial {
            verdict: Verdict::Allow,
            code,
            basis: Some(basis),
            re_evaluate_at: None,
        }
    }
}

impl Engine {
    pub fn new(kb: Arc<KnowledgeBase>, options: EngineOptions) -> Engine {
        Engine { kb, options }
    }

    pub fn knowledge_base(&self) -> &KnowledgeBase {
        &self.kb
    }

    pub fn options(&self) -> EngineOptions {
        self.options
    }

    /// Decides one transfer.
    pub fn evaluate(&self, q: &Query<'_>) -> Decision {
        let mut reasons = Vec::new();
        if q.categories.is_empty() {
            reasons.push(Reason {
                step: "inspect",
                rule: Arc::from("findings"),
                finding: "no personal data found in the request".into(),
            });
            return finish(
                Partial::allow("no_personal_data", Arc::from("none:no_personal_data")),
                Vec::new(),
                reasons,
            );
        }
        if q.incomplete {
            reasons.push(Reason {
                step: "regimes",
                rule: Arc::from("subject"),
                finding: "the client address has no known country, so the subject's jurisdictions may be incomplete; failing closed"
                    .into(),
            });
            return finish(Partial::block("jurisdiction_unknown"), Vec::new(), reasons);
        }
        if q.jurisdictions.is_empty() {
            reasons.push(Reason {
                step: "regimes",
                rule: Arc::from("subject"),
                finding: "the subject's jurisdiction could not be determined; failing closed"
                    .into(),
            });
            return finish(Partial::block("jurisdiction_unknown"), Vec::new(), reasons);
        }
        let mut worst: Option<Partial> = None;
        let mut bases: Vec<Arc<str>> = Vec::new();
        let mut regimes: Vec<Arc<str>> = Vec::new();
        let mut re_eval = None;
        for &j in q.jurisdictions {
            for p in self.evaluate_jurisdiction(q, j, &mut regimes, &mut reasons) {
                if let Some(b) = &p.basis
                    && p.verdict.permits()
                    && !bases.contains(b)
                {
                    bases.push(b.clone());
                }
                re_eval = min_date(re_eval, p.re_evaluate_at);
                if worst.as_ref().is_none_or(|w| p.verdict > w.verdict) {
                    worst = Some(p);
                }
            }
        }
        let Some(mut worst) = worst else {
            return finish(Partial::block("jurisdiction_unknown"), regimes, reasons);
        };
        worst.re_evaluate_at = re_eval;
        let mut d = finish(worst, regimes, reasons);
        if d.verdict.permits() {
            d.basis = bases;
        }
        d
    }

    fn evaluate_jurisdiction(
        &self,
        q: &Query<'_>,
        j: Country,
        regimes_out: &mut Vec<Arc<str>>,
        reasons: &mut Vec<Reason>,
    ) -> Vec<Partial> {
        let regimes = self.kb.regimes_for(j, q.at);
        if regimes.is_empty() {
            return vec![match self.options.unmodelled {
                Unmodelled::Block => {
                    reasons.push(Reason {
                        step: "regimes",
                        rule: Arc::from("policy.unmodelled_jurisdictions"),
                        finding: format!(
                            "no modelled regime covers subjects in {j} on {}; failing closed",
                            q.at
                        ),
                    });
                    Partial::block("regime_not_modelled")
                }
                Unmodelled::Allow => {
                    reasons.push(Reason {
                        step: "regimes",
                        rule: Arc::from("policy.unmodelled_jurisdictions"),
                        finding: format!(
                            "no modelled regime covers subjects in {j} on {}; the policy treats it as unrestricted",
                            q.at
                        ),
                    });
                    Partial::allow("unmodelled_allowed", Arc::from("policy:unmodelled_allowed"))
                }
            }];
        }
        regimes
            .into_iter()
            .map(|(regime, zone_row)| {
                if !regimes_out.contains(&regime.id) {
                    regimes_out.push(regime.id.clone());
                }
                reasons.push(Reason {
                    step: "regimes",
                    rule: zone_row.id.clone(),
                    finding: format!(
                        "{} ({}) covers subjects in {j} on {}",
                        regime.id, regime.name, q.at
                    ),
                });
                self.evaluate_regime(q, regime, reasons)
            })
            .collect()
    }

    fn evaluate_regime(
        &self,
        q: &Query<'_>,
        regime: &Regime,
        reasons: &mut Vec<Reason>,
    ) -> Partial {
        let dest = q.destination.country;
        // Step 3: is it a transfer at all?
        for zone in &regime.transfer_free_zones {
            if let Some(row) = self.kb.zone_membership(zone, dest, q.at)
                && (row.provenance.verification.is_verified() || self.options.allow_unverified)
            {
                reasons.push(Reason {
                    step: "transfer",
                    rule: row.id.clone(),
                    finding: format!(
                        "{} ({dest}) is inside the {zone} zone on {}: not a transfer under {}",
                        q.destination.region, q.at, regime.id
                    ),
                });
                let mut p = Partial::allow(
                    "not_a_transfer",
                    Arc::from(format!("not_a_transfer:{zone}")),
                );
                p.re_evaluate_at = row.validity.to;
                return p;
            }
        }
        reasons.push(Reason {
            step: "transfer",
            rule: regime.id.clone(),
            finding: format!(
                "{} ({dest}) is outside {}'s home zones on {}: this is a transfer",
                q.destination.region, regime.id, q.at
            ),
        });
        // Data that could not be inspected never crosses a border.
        if q.categories.contains(&Category::Uninspectable) {
            reasons.push(Reason {
                step: "inspect",
                rule: Arc::from("uninspectable"),
                finding:
                    "the request could not be fully inspected; it may not leave the subject's zone"
                        .into(),
            });
            return Partial::block("uninspectable");
        }
        // Step 4: hard prohibitions.
        for p in self.kb.prohibitions_for(&regime.id) {
            if p.validity.contains(q.at)
                && p.destinations.contains(&dest)
                && p.purposes.iter().any(|x| x == q.purpose)
            {
                reasons.push(Reason {
                    step: "prohibition",
                    rule: p.id.clone(),
                    finding: format!(
                        "{}: purpose {:?} to {dest} is prohibited ({})",
                        p.title, q.purpose, p.provenance.reference
                    ),
                });
                return Partial::block("prohibited_transfer");
            }
        }
        if regime.kind == RegimeKind::Open
            && (regime.provenance.verification.is_verified() || self.options.allow_unverified)
        {
            reasons.push(Reason {
                step: "transfer",
                rule: regime.id.clone(),
                finding: format!(
                    "{} places no general restriction on transfers ({})",
                    regime.name, regime.provenance.reference
                ),
            });
            return Partial::allow(
                "no_restriction",
                Arc::from(format!("no_restriction:{}", regime.id)),
            );
        }
        // Step 5: adequacy and data bridges in force and in scope.
        let mut unverified_match = false;
        for row in self.kb.instruments_for(&regime.id, dest) {
            if let InstrumentDestination::Zone(zone) = &row.destination
                && self.kb.zone_membership(zone, dest, q.at).is_none()
            {
                continue;
            }
            match self.check_instrument(q, row) {
                Ok(cert_end) => {
                    if !row.provenance.verification.is_verified() && !self.options.allow_unverified
                    {
                        unverified_match = true;
                        reasons.push(Reason {
                            step: "adequacy",
                            rule: row.id.clone(),
                            finding: format!(
                                "{} would apply but is unverified; it cannot be the sole basis without policy.allow_unverified",
                                row.title
                            ),
                        });
                        continue;
                    }
                    reasons.push(Reason {
                        step: "adequacy",
                        rule: row.id.clone(),
                        finding: format!(
                            "{} applies on {} ({})",
                            row.title, q.at, row.provenance.reference
                        ),
                    });
                    let mut p = Partial::allow("adequacy", row.basis.clone());
                    p.re_evaluate_at = min_date(row.validity.to, cert_end);
                    return p;
                }
                Err(why) => reasons.push(Reason {
                    step: "adequacy",
                    rule: row.id.clone(),
                    finding: why,
                }),
            }
        }
        reasons.push(Reason {
            step: "basis",
            rule: regime.id.clone(),
            finding: format!(
                "no adequacy decision or data bridge covers this transfer to {dest} under {} on {}, and no other basis is on file",
                regime.id, q.at
            ),
        });
        Partial::block(if unverified_match {
            "unverified_basis_only"
        } else {
            "no_transfer_basis"
        })
    }

    /// Checks dates and scope; on success returns when the recipient's certification ends.
    fn check_instrument(
        &self,
        q: &Query<'_>,
        row: &Instrument,
    ) -> Result<Option<crate::date::Date>, String> {
        let at = q.at;
        if !row.validity.contains(at) {
            let window = match row.validity.to {
                Some(to) => format!("in force {} to {to}", row.validity.from),
                None => format!("in force from {}", row.validity.from),
            };
            let ended = row
                .ended_by
                .as_deref()
                .filter(|_| row.validity.to.is_some_and(|to| at >= to))
                .map(|e| format!("; ended by {e}"))
                .unwrap_or_default();
            return Err(format!(
                "{} is not in force on {at} ({window}{ended})",
                row.title
            ));
        }
        let entity = q.destination.entity;
        if row.scope.excluded_purposes.iter().any(|p| p == q.purpose) {
            return Err(format!(
                "{} excludes transfers for the purpose {:?}",
                row.title, q.purpose
            ));
        }
        if let Some(sectors) = &row.scope.recipient_sectors {
            match entity.sector {
                Some(s) if sectors.iter().any(|x| x == s.as_str()) => {}
                Some(s) => {
                    return Err(format!(
                        "{} covers only {} recipients; {} is {}",
                        row.title,
                        sectors.join("/"),
                        entity.id,
                        s.as_str()
                    ));
                }
                None => {
                    return Err(format!(
                        "{} covers only {} recipients; the sector of {} is not on file",
                        row.title,
                        sectors.join("/"),
                        entity.id
                    ));
                }
            }
        }
        let mut cert_end = None;
        if let Some(scheme) = &row.scope.certification {
            let cert = entity
                .certifications
                .iter()
                .find(|c| &c.scheme == scheme && c.validity.contains(at));
            let Some(cert) = cert else {
                return Err(format!(
                    "{} requires the recipient to hold {scheme} on {at}; {} does not",
                    row.title, entity.id
                ));
            };
            if row.scope.hr_needs_certification && HR_PURPOSES.contains(&q.purpose) && !cert.hr {
                return Err(format!(
                    "{} covers HR data only for recipients certified for HR; {}'s {scheme} certification is non-HR",
                    row.title, entity.id
                ));
            }
            cert_end = cert.validity.to;
        }
        Ok(cert_end)
    }
}

fn min_date(
    a: Option<crate::date::Date>,
    b: Option<crate::date::Date>,
) -> Option<crate::date::Date> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn finish(p: Partial, regimes: Vec<Arc<str>>, reasons: Vec<Reason>) -> Decision {
    Decision {
        verdict: p.verdict,
        reason_code: p.code,
        basis: p.basis.into_iter().collect(),
        regimes,
        conditions: Vec::new(),
        re_evaluate_at: p.re_evaluate_at,
        reasons,
    }
}
