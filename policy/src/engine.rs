//! The decision engine: pure and synchronous, time is an argument.
//!
//! For each plausible jurisdiction (and citizenship) of the subject it finds the regimes in
//! force on the regime's own legal day, and for each regime walks the steps of transfer-law.md
//! section C.2: localisation, is it a transfer at all, hard prohibitions and opt-out signals,
//! adequacy and data bridges in scope, contracts on file (SCCs and their kin, with the TIA
//! gate), derogations, then the lawfulness cross-checks (special categories, required
//! consent). Every regime must pass and the most restrictive verdict wins; anything unknown
//! fails closed. The user's overrides then tighten the answer, or lift a missing basis when
//! marked as an exception with a reason and an owner.

use std::sync::Arc;

use crate::country::Country;
use crate::date::Date;
use crate::kb::{
    Derogation, Instrument, InstrumentDestination, KnowledgeBase, Regime, RegimeKind, Safeguard,
    Trigger,
};
use crate::model::{
    Category, Contract, Decision, Entity, Frequency, Override, OverrideEffect, Query, Reason, Role,
    Verdict,
};

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

/// The engine: a knowledge base, the options that read it and the user's overrides.
#[derive(Debug, Clone)]
pub struct Engine {
    kb: Arc<KnowledgeBase>,
    options: EngineOptions,
    overrides: Arc<[Override]>,
}

/// Purposes whose data is HR (employment) data for scope checks such as the DPF's HR rule.
const HR_PURPOSES: &[&str] = &["hr", "employment"];

/// Block reasons an exception override may lift: a missing basis, nothing else.
const LIFTABLE: &[&str] = &["no_transfer_basis", "unverified_basis_only"];

struct Partial {
    verdict: Verdict,
    code: &'static str,
    basis: Option<Arc<str>>,
    conditions: Vec<String>,
    re_evaluate_at: Option<Date>,
}

impl Partial {
    fn block(code: &'static str) -> Partial {
        Partial {
            verdict: Verdict::Block,
            code,
            basis: None,
            conditions: Vec::new(),
            re_evaluate_at: None,
        }
    }
    fn allow(code: &'static str, basis: Arc<str>) -> Partial {
        Partial {
            verdict: Verdict::Allow,
            code,
            basis: Some(basis),
            conditions: Vec::new(),
            re_evaluate_at: None,
        }
    }
    fn with_conditions(code: &'static str, basis: Arc<str>, conditions: Vec<String>) -> Partial {
        Partial {
            verdict: Verdict::AllowWithConditions,
            code,
            basis: Some(basis),
            conditions,
            re_evaluate_at: None,
        }
    }
}

fn reason(step: &'static str, rule: &Arc<str>, finding: String) -> Reason {
    Reason {
        step,
        rule: rule.clone(),
        finding: finding.into(),
    }
}

/// A rule id that is a fixed word, made once and shared by every decision that cites it.
macro_rules! fixed_rule {
    ($text:literal) => {{
        static RULE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from($text));
        Arc::clone(&RULE)
    }};
}

/// Mon–Fri days after `from` up to and including `to` (public holidays are not modelled, so
/// the count is never shorter than the law's).
pub fn working_days_between(from: Date, to: Date) -> i64 {
    let (a, b) = (from.unix_days(), to.unix_days());
    if b <= a {
        return 0;
    }
    // 1970-01-01 was a Thursday: weekday 4 (0 = Sunday).
    (a + 1..=b)
        .filter(|d| !matches!((d + 4).rem_euclid(7), 0 | 6))
        .count() as i64
}

/// The SCC 2021/914 module for an exporter and importer role.
pub fn scc_module(exporter: Role, importer: Role) -> u8 {
    match (exporter, importer) {
        (Role::Controller, Role::Controller) => 1,
        (Role::Controller, Role::Processor) => 2,
        (Role::Processor, Role::Processor) => 3,
        (Role::Processor, Role::Controller) => 4,
    }
}

impl Engine {
    pub fn new(kb: Arc<KnowledgeBase>, options: EngineOptions) -> Engine {
        Engine {
            kb,
            options,
            overrides: Arc::from(Vec::new()),
        }
    }

    /// The same engine with the user's overrides.
    pub fn with_overrides(mut self, overrides: Vec<Override>) -> Engine {
        self.overrides = Arc::from(overrides);
        self
    }

    pub fn knowledge_base(&self) -> &KnowledgeBase {
        &self.kb
    }

    pub fn options(&self) -> EngineOptions {
        self.options
    }

    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// The day `regime` reads the query's instant as.
    fn day(&self, q: &Query<'_>, regime: &Regime) -> Date {
        q.instant.map_or(q.at, |s| regime.timezone.date(s))
    }

    /// Decides one transfer.
    pub fn evaluate(&self, q: &Query<'_>) -> Decision {
        let mut reasons = Vec::new();
        if q.categories.is_empty() {
            // Room for the reason a caller puts first (a route declared without personal data).
            let mut trail = Vec::with_capacity(2);
            trail.push(Reason {
                step: "inspect",
                rule: fixed_rule!("findings"),
                finding: "no personal data found in the request".into(),
            });
            return finish(
                Partial::allow("no_personal_data", fixed_rule!("none:no_personal_data")),
                Vec::new(),
                trail,
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
        let mut partials: Vec<Partial> = Vec::new();
        let mut regimes: Vec<Arc<str>> = Vec::new();
        let mut evaluated: Vec<(Arc<str>, Country)> = Vec::new();
        for &j in q.jurisdictions {
            let mut covered = false;
            for regime in self.kb.regimes() {
                let day = self.day(q, regime);
                if !regime.validity.contains(day) || !regime.triggers.contains(&Trigger::Residence)
                {
                    continue;
                }
                let Some(zone_row) = self.kb.zone_membership(&regime.covers_zone, j, day) else {
                    continue;
                };
                covered = true;
                reasons.push(reason(
                    "regimes",
                    &zone_row.id,
                    format!(
                        "{} ({}) covers subjects in {j} on {day}",
                        regime.id, regime.name
                    ),
                ));
                evaluated.push((regime.id.clone(), j));
                partials.push(self.evaluate_regime(q, regime, j, day, &mut regimes, &mut reasons));
            }
            if !covered {
                partials.push(self.unmodelled(q, j, &mut reasons));
            }
        }
        for &c in q.citizenship {
            for regime in self.kb.regimes() {
                let day = self.day(q, regime);
                if !regime.validity.contains(day)
                    || !regime.triggers.contains(&Trigger::Citizenship)
                    || evaluated.iter().any(|(r, _)| *r == regime.id)
                {
                    continue;
                }
                let Some(zone_row) = self.kb.zone_membership(&regime.covers_zone, c, day) else {
                    continue;
                };
                reasons.push(reason(
                    "regimes",
                    &zone_row.id,
                    format!(
                        "{} ({}) covers citizens of {c}, wherever they live, on {day}",
                        regime.id, regime.name
                    ),
                ));
                evaluated.push((regime.id.clone(), c));
                partials.push(self.evaluate_regime(q, regime, c, day, &mut regimes, &mut reasons));
            }
        }
        let mut d = combine(partials, regimes, reasons);
        self.apply_overrides(q, &mut d);
        d
    }

    fn unmodelled(&self, q: &Query<'_>, j: Country, reasons: &mut Vec<Reason>) -> Partial {
        let rule: Arc<str> = Arc::from("policy.unmodelled_jurisdictions");
        match self.options.unmodelled {
            Unmodelled::Block => {
                reasons.push(reason(
                    "regimes",
                    &rule,
                    format!(
                        "no modelled regime covers subjects in {j} on {}; failing closed",
                        q.at
                    ),
                ));
                Partial::block("regime_not_modelled")
            }
            Unmodelled::Allow => {
                reasons.push(reason(
                    "regimes",
                    &rule,
                    format!(
                        "no modelled regime covers subjects in {j} on {}; the policy treats it as unrestricted",
                        q.at
                    ),
                ));
                Partial::allow("unmodelled_allowed", Arc::from("policy:unmodelled_allowed"))
            }
        }
    }

    fn usable(&self, verification: crate::kb::Verification) -> bool {
        verification.is_verified() || self.options.allow_unverified
    }

    fn evaluate_regime(
        &self,
        q: &Query<'_>,
        regime: &Regime,
        j: Country,
        day: Date,
        regimes_out: &mut Vec<Arc<str>>,
        reasons: &mut Vec<Reason>,
    ) -> Partial {
        if !regimes_out.contains(&regime.id) {
            regimes_out.push(regime.id.clone());
        }
        let p = self.transfer_basis(q, regime, j, day, reasons);
        if !p.verdict.permits() || p.code == "not_a_transfer" {
            return p;
        }
        self.cross_checks(q, regime, p, reasons)
    }

    /// Steps 2 to 7: localisation, transfer test, prohibitions, signals, bases.
    fn transfer_basis(
        &self,
        q: &Query<'_>,
        regime: &Regime,
        j: Country,
        day: Date,
        reasons: &mut Vec<Reason>,
    ) -> Partial {
        let dest = q.destination.country;
        let entity = q.destination.entity;
        let exporter = q.facts.exporter;
        let to_organisation = entity.organisation.is_some();
        // Step 2: localisation decides where the primary copy lives.
        for l in self.kb.localisations() {
            if l.regime != regime.id || !l.validity().contains(day) {
                continue;
            }
            let resident = self.kb.zone_membership(&l.home_zone, j, day).is_some();
            // With no citizenship on file, a resident may be a citizen: fail closed.
            let assumed_citizen =
                l.trigger == Trigger::Citizenship && q.citizenship.is_empty() && resident;
            let follows = match l.trigger {
                Trigger::Citizenship => {
                    assumed_citizen
                        || q.citizenship
                            .iter()
                            .any(|c| self.kb.zone_membership(&l.home_zone, *c, day).is_some())
                }
                Trigger::Residence => resident,
            };
            // The only flag a localisation row may name (checked at load) is `ciio`.
            let flagged = l.exporter_flag.is_none() || exporter.is_none_or(|e| e.ciio);
            if !follows || !flagged {
                continue;
            }
            if !to_organisation && self.kb.zone_membership(&l.home_zone, dest, day).is_some() {
                reasons.push(reason(
                    "localisation",
                    &l.id,
                    format!(
                        "{}: {} ({dest}) is inside {}, as required",
                        l.title, q.destination.region, l.home_zone
                    ),
                ));
                continue;
            }
            let who = if exporter.is_none() && l.exporter_flag.is_some() {
                " (the exporter is not on file, so it counts as covered)"
            } else if assumed_citizen {
                " (no citizenship is on file, so a resident counts as a citizen)"
            } else {
                ""
            };
            reasons.push(reason(
                "localisation",
                &l.id,
                format!(
                    "{}: the primary copy must be created in {}; {} ({dest}) is outside it{who} ({})",
                    l.title, l.home_zone, q.destination.region, l.provenance.reference
                ),
            ));
            let mut p = Partial::block("localisation_required");
            p.verdict = Verdict::RouteLocal;
            p.re_evaluate_at = l.valid_to;
            return p;
        }
        // Opt-out signals act on the purpose, not on the country.
        for o in self.kb.opt_outs() {
            let signalled = match o.signal.as_str() {
                "gpc" => q.facts.gpc,
                "limit_sensitive" => q.facts.limit_sensitive,
                _ => false,
            };
            let categories_match = o.categories.is_empty()
                || o.categories.iter().any(|c| {
                    c == "special" && q.categories.iter().any(|x| x.is_special())
                        || q.categories.iter().any(|x| x.as_str() == c)
                });
            if signalled
                && o.regimes.contains(&regime.id)
                && (o.valid_from <= day && o.valid_to.is_none_or(|t| day < t))
                && o.purposes.iter().any(|x| x == q.purpose)
                && categories_match
            {
                reasons.push(reason(
                    "signal",
                    &o.id,
                    format!(
                        "{}: the request's {} signal forbids purpose {:?}, whatever the destination ({})",
                        o.title, o.signal, q.purpose, o.provenance.reference
                    ),
                ));
                return Partial::block("opted_out");
            }
        }
        // Step 3: is it a transfer at all?
        if !to_organisation {
            for zone in &regime.transfer_free_zones {
                if let Some(row) = self.kb.zone_membership(zone, dest, day)
                    && self.usable(row.provenance.verification)
                {
                    reasons.push(reason(
                        "transfer",
                        &row.id,
                        format!(
                            "{} ({dest}) is inside the {zone} zone on {day}: not a transfer under {}",
                            q.destination.region, regime.id
                        ),
                    ));
                    let mut p = Partial::allow(
                        "not_a_transfer",
                        Arc::from(format!("not_a_transfer:{zone}")),
                    );
                    p.re_evaluate_at = row.validity.to;
                    return p;
                }
            }
        }
        if regime.same_entity_is_not_transfer
            && let Some(e) = exporter
            && e.id == entity.id
        {
            reasons.push(reason(
                "transfer",
                &regime.id,
                format!(
                    "{} is the exporter's own legal entity: access by the same entity abroad is not a transfer under {} (EDPB Guidelines 05/2021); Art 32 security still applies",
                    entity.id, regime.id
                ),
            ));
            let mut p = Partial::allow("not_a_transfer", Arc::from("not_a_transfer:same_entity"));
            p.conditions
                .push("Art 32 security of access from abroad".to_owned());
            return p;
        }
        let place = entity.organisation.as_deref().unwrap_or(dest.as_str());
        reasons.push(reason(
            "transfer",
            &regime.id,
            format!(
                "{} ({place}) is outside {}'s home zones on {day}: this is a transfer",
                q.destination.region, regime.id
            ),
        ));
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
            // The only flag a prohibition row may name (checked at load) is `data_broker`.
            let flagged =
                p.exporter_flag.is_none() || exporter.is_none_or(|e| e.data_broker != Some(false));
            if p.validity.contains(day)
                && p.destinations.contains(&dest)
                && (p.purposes.is_empty() || p.purposes.iter().any(|x| x == q.purpose))
                && flagged
            {
                reasons.push(reason(
                    "prohibition",
                    &p.id,
                    format!(
                        "{}: purpose {:?} to {dest} is prohibited ({})",
                        p.title, q.purpose, p.provenance.reference
                    ),
                ));
                return Partial::block("prohibited_transfer");
            }
        }
        if regime.kind == RegimeKind::Open && self.usable(regime.provenance.verification) {
            reasons.push(reason(
                "transfer",
                &regime.id,
                format!(
                    "{} places no general restriction on transfers ({})",
                    regime.name, regime.provenance.reference
                ),
            ));
            return Partial::allow(
                "no_restriction",
                Arc::from(format!("no_restriction:{}", regime.id)),
            );
        }
        // Step 5: adequacy and data bridges in force and in scope.
        let mut unverified_match = false;
        for row in self.kb.instruments_for(&regime.id, dest) {
            if let InstrumentDestination::Zone(zone) = &row.destination
                && (to_organisation || self.kb.zone_membership(zone, dest, day).is_none())
            {
                continue;
            }
            match self.check_instrument(q, row, j, day) {
                Ok(cert_end) => {
                    if !self.usable(row.provenance.verification) {
                        unverified_match = true;
                        reasons.push(reason(
                            "adequacy",
                            &row.id,
                            format!(
                                "{} would apply but is unverified; it cannot be the sole basis without policy.allow_unverified",
                                row.title
                            ),
                        ));
                        continue;
                    }
                    reasons.push(reason(
                        "adequacy",
                        &row.id,
                        format!(
                            "{} applies on {day} ({})",
                            row.title, row.provenance.reference
                        ),
                    ));
                    let mut p = Partial::allow("adequacy", row.basis.clone());
                    p.re_evaluate_at = min_date(row.validity.to, cert_end);
                    return p;
                }
                Err(why) => reasons.push(reason("adequacy", &row.id, why)),
            }
        }
        // Step 6: appropriate safeguards on file.
        let mut contracts_seen = false;
        for c in q.facts.contracts {
            if c.importer != entity.id || exporter.is_some_and(|e| e.id != c.exporter) {
                continue;
            }
            contracts_seen = true;
            let rule: Arc<str> = Arc::from(format!("contract.{}", c.id));
            let Some(sg) = self.kb.safeguard(&regime.id, &c.instrument) else {
                reasons.push(reason(
                    "safeguards",
                    &rule,
                    format!(
                        "contract {} uses {}, which is not a transfer instrument under {}",
                        c.id, c.instrument, regime.id
                    ),
                ));
                continue;
            };
            match self.check_contract(q, sg, c, day) {
                Ok(p) => {
                    if !self.usable(sg.provenance.verification) {
                        unverified_match = true;
                        reasons.push(reason(
                            "safeguards",
                            &sg.id,
                            format!(
                                "{} would apply but is unverified; it cannot be the sole basis without policy.allow_unverified",
                                sg.title
                            ),
                        ));
                        continue;
                    }
                    reasons.push(reason(
                        "safeguards",
                        &sg.id,
                        format!(
                            "contract {} ({}) is valid on {day} as {} ({})",
                            c.id, c.instrument, sg.title, sg.provenance.reference
                        ),
                    ));
                    return p;
                }
                Err(why) => reasons.push(reason("safeguards", &sg.id, why)),
            }
        }
        // Step 7: derogations, only with their evidence and within their limits.
        for d in self.kb.derogations() {
            if !d.regimes.contains(&regime.id) {
                continue;
            }
            let relevant = d
                .evidence
                .as_ref()
                .is_none_or(|e| q.facts.evidence.iter().any(|x| x == e));
            if !relevant {
                continue;
            }
            match check_derogation(q, d, day) {
                Ok(()) => {
                    if !self.usable(d.provenance.verification) {
                        unverified_match = true;
                        reasons.push(reason(
                            "derogation",
                            &d.id,
                            format!(
                                "{} would apply but is unverified; it cannot be the sole basis without policy.allow_unverified",
                                d.title
                            ),
                        ));
                        continue;
                    }
                    reasons.push(reason(
                        "derogation",
                        &d.id,
                        format!("{} applies on {day} ({})", d.title, d.provenance.reference),
                    ));
                    let mut p = Partial::with_conditions(
                        "derogation",
                        d.basis.clone(),
                        d.conditions.clone(),
                    );
                    p.re_evaluate_at = d.valid_to;
                    return p;
                }
                Err(why) => reasons.push(reason("derogation", &d.id, why)),
            }
        }
        let other = if contracts_seen {
            "and no contract or derogation on file is valid for it"
        } else {
            "and no other basis is on file"
        };
        let place = entity.organisation.as_deref().unwrap_or(dest.as_str());
        reasons.push(reason(
            "basis",
            &regime.id,
            format!(
                "no adequacy decision or data bridge covers this transfer to {place} under {} on {day}, {other}",
                regime.id
            ),
        ));
        Partial::block(if unverified_match {
            "unverified_basis_only"
        } else {
            "no_transfer_basis"
        })
    }

    /// Step 8: lawfulness checks that do not depend on the transfer basis.
    fn cross_checks(
        &self,
        q: &Query<'_>,
        regime: &Regime,
        mut p: Partial,
        reasons: &mut Vec<Reason>,
    ) -> Partial {
        if regime.special_categories_need_condition {
            let special: Vec<&str> = q
                .categories
                .iter()
                .filter(|c| c.is_special())
                .map(|c| c.as_str())
                .collect();
            if !special.is_empty() {
                match q.facts.evidence.iter().find(|e| e.starts_with("art9:")) {
                    Some(e) => reasons.push(reason(
                        "lawfulness",
                        &regime.id,
                        format!(
                            "special categories ({}) have their own condition on file: {e}",
                            special.join(", ")
                        ),
                    )),
                    None => {
                        reasons.push(reason(
                            "lawfulness",
                            &regime.id,
                            format!(
                                "special categories ({}) need their own condition (explicit consent or another Art 9(2) condition) whatever the transfer basis; none is on file",
                                special.join(", ")
                            ),
                        ));
                        return Partial::block("special_category_condition_missing");
                    }
                }
            }
        }
        for needed in &regime.requires_evidence {
            if !q.facts.evidence.iter().any(|e| e == needed) {
                reasons.push(reason(
                    "lawfulness",
                    &regime.id,
                    format!(
                        "{} needs {needed} for every transfer ({}); none is on file",
                        regime.id, regime.provenance.reference
                    ),
                ));
                return Partial::block("evidence_missing");
            }
        }
        if !regime.conditions.is_empty() {
            p.conditions.extend(regime.conditions.iter().cloned());
            if p.verdict == Verdict::Allow {
                p.verdict = Verdict::AllowWithConditions;
            }
        }
        p
    }

    /// Checks dates and scope; on success returns when the recipient's certification ends.
    fn check_instrument(
        &self,
        q: &Query<'_>,
        row: &Instrument,
        j: Country,
        at: Date,
    ) -> Result<Option<Date>, String> {
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
        if let Some(org) = &row.scope.organisation
            && entity.organisation.as_deref() != Some(org.as_str())
        {
            return Err(format!(
                "{} covers only transfers to {org}; {} is not it",
                row.title, entity.id
            ));
        }
        if row.scope.organisation.is_none() && entity.organisation.is_some() {
            return Err(format!(
                "{} covers a country, not the international organisation {}",
                row.title, entity.id
            ));
        }
        if row.scope.requires_eea_jcd
            && self.kb.zone_membership("EEA-EFTA", j, at).is_some()
            && !self
                .kb
                .eea_incorporations()
                .iter()
                .any(|e| e.instrument == row.id && e.valid_from <= at)
        {
            return Err(format!(
                "{} reaches exporters in {j} only once an EEA Joint Committee Decision incorporates it, and none is on file for {at}",
                row.title
            ));
        }
        if row.scope.automated_only && q.facts.manual {
            return Err(format!(
                "{} covers automated transfers only (and manual ones processed automatically on arrival); this one is manual",
                row.title
            ));
        }
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

    /// Checks a contract on file against its safeguard row; on success the partial answer
    /// carries the conditions the allow depends on.
    fn check_contract(
        &self,
        q: &Query<'_>,
        sg: &Safeguard,
        c: &Contract,
        at: Date,
    ) -> Result<Partial, String> {
        if !sg.validity().contains(at) {
            let ended = sg
                .ended_by
                .as_deref()
                .filter(|_| sg.valid_to.is_some_and(|to| at >= to))
                .map(|e| format!("; ended by {e}"))
                .unwrap_or_default();
            let window = match sg.valid_to {
                Some(to) => format!("usable {} to {to}", sg.valid_from),
                None => format!("usable from {}", sg.valid_from),
            };
            return Err(format!(
                "contract {}: {} is not a valid transfer tool on {at} ({window}{ended})",
                c.id, sg.title
            ));
        }
        if c.signed > at {
            return Err(format!(
                "contract {} is signed on {}, after {at}",
                c.id, c.signed
            ));
        }
        if let Some(until) = sg.new_contracts_until
            && c.signed >= until
        {
            return Err(format!(
                "contract {} was signed on {}; {} cannot be used for contracts concluded from {until}",
                c.id, c.signed, sg.title
            ));
        }
        let entity = q.destination.entity;
        if sg.modules {
            let Some(module) = c.module else {
                return Err(format!(
                    "contract {} names no module; {} needs one (1 C→C, 2 C→P, 3 P→P, 4 P→C)",
                    c.id, sg.title
                ));
            };
            let importer_role = entity.role.ok_or_else(|| {
                format!(
                    "contract {} module {module}: the role of importer {} is not on file",
                    c.id, entity.id
                )
            })?;
            let fits = match q.facts.exporter.and_then(|e| e.role) {
                Some(exporter_role) => scc_module(exporter_role, importer_role) == module,
                None => matches!(
                    (module, importer_role),
                    (1 | 4, Role::Controller) | (2 | 3, Role::Processor)
                ),
            };
            if !fits {
                return Err(format!(
                    "contract {} uses module {module}, which does not match the roles (importer {} is a {})",
                    c.id,
                    entity.id,
                    importer_role.as_str()
                ));
            }
        }
        let exporter = q.facts.exporter;
        if sg.not_ciio {
            not_ciio(exporter, &sg.title)?;
        }
        volume_band(q, &sg.title, sg.max_volume, sg.max_volume_sensitive)?;
        if let Some(days) = sg.notify_within_working_days {
            match c.notified {
                Some(n) if n <= at && working_days_between(c.signed, n) <= i64::from(days) => {}
                Some(n) if n > at => {
                    return Err(format!("contract {} is notified on {n}, after {at}", c.id));
                }
                Some(n) => {
                    return Err(format!(
                        "contract {} was notified on {n}, more than {days} working days after its signature on {}",
                        c.id, c.signed
                    ));
                }
                None => {
                    return Err(format!(
                        "contract {} must be notified to the authority within {days} working days of signature; no notification is on file",
                        c.id
                    ));
                }
            }
        }
        if sg.notification_required && c.notified.is_none_or(|n| n > at) {
            return Err(format!(
                "contract {}: {} must be notified to the authority before the transfer; no notification dated on or before {at} is on file",
                c.id, sg.title
            ));
        }
        let mut conditions = vec![match c.module {
            Some(m) => format!(
                "contract {} ({} module {m}) signed {}",
                c.id, c.instrument, c.signed
            ),
            None => format!("contract {} ({}) signed {}", c.id, c.instrument, c.signed),
        }];
        let mut re_eval = sg.valid_to;
        if let Some(from) = sg.assessment_required_from
            && at >= from
        {
            let Some(a) = &c.assessment else {
                return Err(format!(
                    "contract {}: a transfer impact assessment is required from {from}, and none is on file",
                    c.id
                ));
            };
            if a.date > at {
                return Err(format!(
                    "contract {}: assessment {} is dated {}, after {at}",
                    c.id, a.id, a.date
                ));
            }
            if a.impingement {
                let effective: Vec<&String> = c
                    .measures
                    .iter()
                    .filter(|m| self.effective_measure(m, at))
                    .collect();
                if effective.is_empty() {
                    return Err(format!(
                        "contract {}: assessment {} finds that the destination's law impinges on the clauses, and no effective supplementary measure is on file (EDPB Recommendations 01/2020, use cases 6 and 7)",
                        c.id, a.id
                    ));
                }
            }
            match a.review {
                Some(r) if r < at => {
                    conditions.push(format!(
                        "tia_review_overdue: assessment {} was due for review on {r}",
                        a.id
                    ));
                }
                Some(r) => {
                    conditions.push(format!("assessment {} reviewed by {r}", a.id));
                    re_eval = min_date(re_eval, Some(r));
                }
                None => conditions.push(format!("assessment {} dated {}", a.id, a.date)),
            }
        }
        conditions.extend(c.measures.iter().map(|m| format!("measure {m}")));
        conditions.extend(sg.conditions.iter().cloned());
        let mut p = Partial::with_conditions("safeguards", sg.basis.clone(), conditions);
        p.re_evaluate_at = re_eval;
        Ok(p)
    }

    /// Whether a supplementary measure is one the gateway can rely on: keys held, or the
    /// pseudonymisation secret kept, inside the EEA (EDPB Recommendations 01/2020 UC1, UC2).
    fn effective_measure(&self, m: &str, at: Date) -> bool {
        let inside = |place: &str| {
            place == "EEA"
                || Country::parse(place)
                    .is_ok_and(|c| self.kb.zone_membership("EEA", c, at).is_some())
        };
        if let Some(place) = m.strip_prefix("encryption-keys-held:") {
            return inside(place);
        }
        m.starts_with("pseudonymised:")
    }

    /// Applies the user's overrides: blocks always; exceptions only over a missing basis.
    fn apply_overrides(&self, q: &Query<'_>, d: &mut Decision) {
        for o in self.overrides.iter() {
            let matches = (o.destinations.is_empty()
                || o.destinations.contains(&q.destination.country))
                && (o.purposes.is_empty() || o.purposes.iter().any(|p| p == q.purpose))
                && (o.regions.is_empty() || o.regions.iter().any(|r| r == q.destination.region))
                && (o.categories.is_empty()
                    || o.categories.iter().any(|c| q.categories.contains(c)))
                && (o.regimes.is_empty()
                    || o.regimes
                        .iter()
                        .any(|r| d.regimes.iter().any(|x| **x == **r)));
            if !matches || q.categories.is_empty() {
                continue;
            }
            let rule: Arc<str> = Arc::from(format!("override.{}", o.id));
            match &o.effect {
                OverrideEffect::Block if d.verdict.permits() => {
                    d.reasons.push(reason(
                        "override",
                        &rule,
                        "the policy forbids this transfer, which the law would allow".into(),
                    ));
                    d.verdict = Verdict::Block;
                    d.reason_code = "policy_override";
                    d.basis.clear();
                    d.conditions.clear();
                }
                OverrideEffect::Exception { reason: why, owner }
                    if d.verdict == Verdict::Block && LIFTABLE.contains(&d.reason_code) =>
                {
                    d.reasons.push(reason(
                        "override",
                        &rule,
                        format!(
                            "exception owned by {owner}: {why}; it lifts the missing basis, nothing else"
                        ),
                    ));
                    d.verdict = Verdict::AllowWithConditions;
                    d.reason_code = "policy_exception";
                    d.basis = vec![Arc::from(format!("exception:{}", o.id))];
                    d.conditions
                        .push(format!("exception {} owned by {owner}: {why}", o.id));
                }
                _ => {}
            }
        }
    }
}

fn check_derogation(q: &Query<'_>, d: &Derogation, at: Date) -> Result<(), String> {
    if !d.validity().contains(at) {
        let ended = d
            .ended_by
            .as_deref()
            .filter(|_| d.valid_to.is_some_and(|to| at >= to))
            .map(|e| format!("; ended by {e}"))
            .unwrap_or_default();
        return Err(format!(
            "{} is not available on {at} (from {}{ended})",
            d.title, d.valid_from
        ));
    }
    if d.occasional_only && q.facts.frequency != Frequency::Occasional {
        return Err(format!(
            "{} is for occasional transfers only; this flow is systematic",
            d.title
        ));
    }
    let exporter: Option<&Entity> = q.facts.exporter;
    if d.not_public_authority {
        match exporter {
            Some(e) if !e.public_authority => {}
            Some(e) => {
                return Err(format!(
                    "{} is not available to public authorities; {} is one",
                    d.title, e.id
                ));
            }
            None => {
                return Err(format!(
                    "{} is not available to public authorities, and the exporter is not on file",
                    d.title
                ));
            }
        }
    }
    if d.not_ciio {
        not_ciio(exporter, &d.title)?;
    }
    if d.non_sensitive_only
        && let Some(sensitive) = sensitive_categories(q)
    {
        return Err(format!(
            "{} covers non-sensitive PI only; this flow carries {sensitive}, sensitive under PIPL Art 28",
            d.title
        ));
    }
    volume_band(q, &d.title, d.max_volume, None)
}

/// Whether a row closed to critical information infrastructure operators (CN) is open to
/// this exporter: one on file that is not a CIIO.
fn not_ciio(exporter: Option<&Entity>, title: &str) -> Result<(), String> {
    match exporter {
        Some(e) if !e.ciio => Ok(()),
        Some(e) => Err(format!(
            "{title} is not available to {}, a critical information infrastructure operator",
            e.id
        )),
        None => Err(format!(
            "{title} is not available to critical information infrastructure operators, and the exporter is not on file"
        )),
    }
}

/// The categories of the flow that are sensitive PI under PIPL Art 28, listed; `None` when
/// there are none.
fn sensitive_categories(q: &Query<'_>) -> Option<String> {
    let mut found: Vec<&str> = q
        .categories
        .iter()
        .filter(|c| c.is_pipl_sensitive())
        .map(|c| c.as_str())
        .collect();
    found.sort_unstable();
    found.dedup();
    (!found.is_empty()).then(|| found.join(", "))
}

/// Whether the exporter's volume this year is within a row's band: fewer individuals than
/// `max`, or than `max_sensitive` when the flow carries sensitive PI and the row sets one.
fn volume_band(
    q: &Query<'_>,
    title: &str,
    max: Option<u64>,
    max_sensitive: Option<u64>,
) -> Result<(), String> {
    // The sensitive categories are looked for only where a row has a band of its own for them.
    let sensitive_band =
        max_sensitive.filter(|_| q.categories.iter().any(|c| c.is_pipl_sensitive()));
    let (max, whose) = match (sensitive_band, max) {
        (Some(m), _) => (m, "individuals' sensitive PI"),
        (None, Some(m)) => (m, "individuals"),
        (None, None) => return Ok(()),
    };
    match q.facts.volume {
        Some(v) if v < max => Ok(()),
        Some(v) => Err(format!(
            "{title} covers fewer than {max} {whose} a year; this exporter is at {v}"
        )),
        None => Err(format!(
            "{title} covers fewer than {max} {whose} a year, and the volume is not on file"
        )),
    }
}

fn min_date(a: Option<Date>, b: Option<Date>) -> Option<Date> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// All regimes must pass: the most restrictive partial answer wins; bases and conditions of
/// the permitting regimes are kept when the whole is permitted.
fn combine(partials: Vec<Partial>, regimes: Vec<Arc<str>>, reasons: Vec<Reason>) -> Decision {
    let mut bases: Vec<Arc<str>> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let mut re_eval = None;
    let mut worst: Option<Partial> = None;
    for p in partials {
        if p.verdict.permits() {
            if let Some(b) = &p.basis
                && !bases.contains(b)
            {
                bases.push(b.clone());
            }
            for c in &p.conditions {
                if !conditions.contains(c) {
                    conditions.push(c.clone());
                }
            }
        }
        re_eval = min_date(re_eval, p.re_evaluate_at);
        // Among blocks, one an exception cannot lift (a prohibition, a fail-closed rule) is
        // the one reported, so an exception never lifts it by looking at another regime's.
        let worse = |w: &Partial| {
            p.verdict > w.verdict
                || (p.verdict == w.verdict
                    && LIFTABLE.contains(&w.code)
                    && !LIFTABLE.contains(&p.code))
        };
        if worst.as_ref().is_none_or(worse) {
            worst = Some(p);
        }
    }
    let Some(mut worst) = worst else {
        return finish(Partial::block("jurisdiction_unknown"), regimes, reasons);
    };
    worst.re_evaluate_at = re_eval;
    let permits = worst.verdict.permits();
    let mut d = finish(worst, regimes, reasons);
    if permits {
        d.basis = bases;
        d.conditions = conditions;
    }
    d
}

fn finish(p: Partial, regimes: Vec<Arc<str>>, reasons: Vec<Reason>) -> Decision {
    Decision {
        verdict: p.verdict,
        reason_code: p.code,
        basis: p.basis.into_iter().collect(),
        regimes,
        conditions: p.conditions,
        re_evaluate_at: p.re_evaluate_at,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Destination, Facts};

    fn engine() -> Engine {
        Engine::new(
            Arc::new(KnowledgeBase::builtin().unwrap()),
            EngineOptions::default(),
        )
    }

    fn c(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn query<'a>(
        subject: &'a [Country],
        categories: &'a [Category],
        purpose: &'a str,
        to: &'a Entity,
        at: Date,
    ) -> Query<'a> {
        Query {
            jurisdictions: subject,
            citizenship: &[],
            incomplete: false,
            categories,
            purpose,
            destination: Destination {
                region: "dest",
                country: to.country,
                entity: to,
            },
            at,
            instant: None,
            facts: Facts::default(),
        }
    }

    fn certified(country: &str, scheme: &str) -> Entity {
        let mut e = Entity::new("recipient", c(country));
        e.sector = Some(crate::model::Sector::Commercial);
        e.certifications.push(crate::model::Certification {
            scheme: scheme.into(),
            validity: crate::date::Validity {
                from: d("2016-08-01"),
                to: None,
            },
            hr: false,
        });
        e
    }

    #[test]
    fn each_regime_reads_the_instant_in_its_own_time_zone() {
        // 22:30 UTC on 15 July 2020 is already 16 July in Brussels: Privacy Shield is void
        // there, while a regime read in UTC would still see the 15th.
        let e = engine();
        let to = certified("US", "EU-US-PrivacyShield");
        let subject = [c("DE")];
        let mut q = query(
            &subject,
            &[Category::Email],
            "storage",
            &to,
            d("2020-07-15"),
        );
        assert_eq!(e.evaluate(&q).verdict, Verdict::Allow);
        q.instant = Some(d("2020-07-15").unix_days() * 86_400 + 22 * 3_600 + 1_800);
        let decision = e.evaluate(&q);
        assert_eq!(decision.verdict, Verdict::Block, "{:#?}", decision.reasons);
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| r.finding.contains("on 2020-07-16")),
            "{:#?}",
            decision.reasons
        );
        // The same instant read by the UK regime (London, UTC+1 in summer) is 23:30 on the
        // 15th: its legal day differs from Brussels'.
        let gb = [c("GB")];
        let to = Entity::new("recipient", c("DE"));
        let mut q = query(&gb, &[Category::Email], "storage", &to, d("2026-07-15"));
        q.instant = Some(d("2026-07-15").unix_days() * 86_400 + 22 * 3_600 + 1_800);
        let decision = e.evaluate(&q);
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| r.finding.contains("covers subjects in GB on 2026-07-15")),
            "{:#?}",
            decision.reasons
        );
        let de = [c("DE")];
        let mut q = query(&de, &[Category::Email], "storage", &to, d("2026-07-15"));
        q.instant = Some(d("2026-07-15").unix_days() * 86_400 + 22 * 3_600 + 1_800);
        assert!(
            e.evaluate(&q)
                .reasons
                .iter()
                .any(|r| r.finding.contains("covers subjects in DE on 2026-07-16"))
        );
    }

    #[test]
    fn a_block_override_tightens_and_an_exception_needs_no_basis_only() {
        let to = certified("US", "EU-US-DPF");
        let subject = [c("DE")];
        let q = query(
            &subject,
            &[Category::Email],
            "analytics",
            &to,
            d("2026-11-28"),
        );
        let tight = engine().with_overrides(vec![Override {
            id: "no-us-analytics".into(),
            destinations: vec![c("US")],
            purposes: vec!["analytics".into()],
            categories: Vec::new(),
            regimes: Vec::new(),
            regions: Vec::new(),
            effect: OverrideEffect::Block,
        }]);
        assert_eq!(engine().evaluate(&q).verdict, Verdict::Allow);
        let decision = tight.evaluate(&q);
        assert_eq!(decision.verdict, Verdict::Block);
        assert_eq!(decision.reason_code, "policy_override");
        assert!(decision.basis.is_empty());

        let uncertified = Entity::new("recipient", c("US"));
        let q = query(
            &subject,
            &[Category::Email],
            "analytics",
            &uncertified,
            d("2026-11-28"),
        );
        let exception = engine().with_overrides(vec![Override {
            id: "board-approved".into(),
            destinations: vec![c("US")],
            purposes: Vec::new(),
            categories: Vec::new(),
            regimes: Vec::new(),
            regions: Vec::new(),
            effect: OverrideEffect::Exception {
                reason: "migration window approved by the board".into(),
                owner: "dpo@example.com".into(),
            },
        }]);
        let decision = exception.evaluate(&q);
        assert_eq!(decision.verdict, Verdict::AllowWithConditions);
        assert_eq!(decision.basis, vec![Arc::from("exception:board-approved")]);
        assert!(decision.conditions[0].contains("dpo@example.com"));

        // An exception never lifts a prohibition.
        let us = [c("US")];
        let mut broker = Entity::new("broker", c("CN"));
        broker.data_broker = Some(true);
        let q = query(
            &us,
            &[Category::PreciseLocation],
            "sale",
            &broker,
            d("2025-05-01"),
        );
        let decision = exception
            .clone()
            .with_overrides(vec![Override {
                id: "anything".into(),
                destinations: Vec::new(),
                purposes: Vec::new(),
                categories: Vec::new(),
                regimes: Vec::new(),
                regions: Vec::new(),
                effect: OverrideEffect::Exception {
                    reason: "r".into(),
                    owner: "o".into(),
                },
            }])
            .evaluate(&q);
        assert_eq!(decision.verdict, Verdict::Block);
        assert_eq!(decision.reason_code, "prohibited_transfer");
    }

    #[test]
    fn an_eea_joint_committee_decision_row_opens_a_gdpr_era_decision_to_norway() {
        let to = {
            let mut e = Entity::new("jp-co", c("JP"));
            e.sector = Some(crate::model::Sector::Commercial);
            e
        };
        let no = [c("NO")];
        let q = query(&no, &[Category::Email], "storage", &to, d("2026-11-28"));
        let decision = engine().evaluate(&q);
        assert_eq!(decision.verdict, Verdict::Block);
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| r.finding.contains("EEA Joint Committee Decision")),
            "{:#?}",
            decision.reasons
        );
        let extra = r#"
            [[eea_incorporation]]
            id = "eea.jcd.jp"
            instrument = "eu.adequacy.jp"
            valid_from = "2020-01-01"
            reference = "EEA Joint Committee Decision incorporating Implementing Decision (EU) 2019/419"
            source = "user"
            verification = "V-P"
        "#;
        let kb =
            KnowledgeBase::builtin_with([("jcd.toml".to_string(), extra.to_string())]).unwrap();
        let with_jcd = Engine::new(Arc::new(kb), EngineOptions::default());
        assert_eq!(with_jcd.evaluate(&q).verdict, Verdict::Allow);
    }

    #[test]
    fn citizenship_triggers_152fz_and_an_unknown_exporter_counts_as_ciio() {
        let de = Entity::new("de-db", c("DE"));
        let subject = [c("DE")];
        let ru = [c("RU")];
        let mut q = query(
            &subject,
            &[Category::Email],
            "storage",
            &de,
            d("2025-07-02"),
        );
        assert_eq!(engine().evaluate(&q).verdict, Verdict::Allow);
        q.citizenship = &ru;
        let decision = engine().evaluate(&q);
        assert_eq!(decision.verdict, Verdict::RouteLocal);
        assert!(decision.regimes.iter().any(|r| &**r == "RU-152FZ"));
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| &*r.rule == "ru.152fz.art18-5.23fz"),
            "{:#?}",
            decision.reasons
        );

        let sg = Entity::new("sg", c("SG"));
        let cn = [c("CN")];
        let evidence = ["consent:separate".to_string()];
        let mut q = query(&cn, &[Category::Name], "storage", &sg, d("2025-06-01"));
        q.facts.evidence = &evidence;
        let decision = engine().evaluate(&q);
        assert_eq!(decision.verdict, Verdict::RouteLocal);
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| r.finding.contains("not on file")),
            "{:#?}",
            decision.reasons
        );
    }

    #[test]
    fn a_dpdp_negative_list_row_blocks_every_purpose_to_the_listed_country() {
        let us = Entity::new("us", c("US"));
        let india = [c("IN")];
        let q = query(&india, &[Category::Email], "storage", &us, d("2026-11-28"));
        assert_eq!(engine().evaluate(&q).verdict, Verdict::Allow);
        let extra = r#"
            [[prohibition]]
            id = "in.dpdp.s16.example"
            regimes = ["IN-DPDP"]
            destinations = ["US"]
            purposes = []
            title = "Central Government notification under DPDP Act s.16(1)"
            valid_from = "2026-01-01"
            reference = "DPDP Act 2023 s.16(1) notification (example)"
            source = "user"
            verification = "V-P"
        "#;
        let kb =
            KnowledgeBase::builtin_with([("neg.toml".to_string(), extra.to_string())]).unwrap();
        let decision = Engine::new(Arc::new(kb), EngineOptions::default()).evaluate(&q);
        assert_eq!(decision.verdict, Verdict::Block);
        assert_eq!(decision.reason_code, "prohibited_transfer");
    }

    #[test]
    fn working_days_skip_weekends() {
        // Monday 2 September 2024 to Friday 6 September: 4 working days after signature.
        assert_eq!(working_days_between(d("2024-09-02"), d("2024-09-06")), 4);
        // To the next Monday: 5.
        assert_eq!(working_days_between(d("2024-09-02"), d("2024-09-09")), 5);
        assert_eq!(working_days_between(d("2024-09-02"), d("2024-09-02")), 0);
    }
}
