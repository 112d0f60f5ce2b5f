//! Combining evidence into the subject's plausible jurisdictions.
//!
//! Each signal names its source, what it says (where the subject is, lives, or is a citizen
//! of), its weight and where it was found, never the personal-data value. The sources are ranked
//! by a configurable precedence ([`Precedence`]); a source's weight comes from its rank. The
//! result keeps every distinct country the evidence points to, strongest first, each with a
//! confidence: the policy engine evaluates all of them and the most restrictive answer wins
//! ([`ConflictRule::Strictest`], the default), which is how conflicting or partial evidence
//! resolves to the strictest plausible regime.

use std::borrow::Cow;
use std::sync::Arc;

use domicile_policy::Country;
use serde::Serialize;

/// Where a piece of evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// The subject directory: a stored home region and jurisdiction for the subject id.
    Directory,
    /// A claim of a verified token (JWT).
    Token,
    /// A subject header set by a trusted proxy or an mTLS-identified client.
    Header,
    /// GeoIP of the real client address.
    Geoip,
    /// A finding in the request (phone number, IBAN, national id, address or citizenship field).
    Body,
}

impl EvidenceSource {
    pub const ALL: [EvidenceSource; 5] = [
        EvidenceSource::Directory,
        EvidenceSource::Token,
        EvidenceSource::Header,
        EvidenceSource::Geoip,
        EvidenceSource::Body,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceSource::Directory => "directory",
            EvidenceSource::Token => "token",
            EvidenceSource::Header => "header",
            EvidenceSource::Geoip => "geoip",
            EvidenceSource::Body => "body",
        }
    }

    pub fn parse(s: &str) -> Option<EvidenceSource> {
        EvidenceSource::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Sources an operator vouches for (a directory entry, a verified token, a header from a
    /// trusted proxy): with one of them, an address without a country is not an unknown.
    pub fn is_asserted(self) -> bool {
        matches!(
            self,
            EvidenceSource::Directory | EvidenceSource::Token | EvidenceSource::Header
        )
    }
}

/// What a piece of evidence says about the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// The subject is, or is linked to, this country (an address, a phone number, an IBAN).
    Country,
    /// The subject lives in this country.
    Residence,
    /// The subject is a citizen of this country. Carried to the engine as citizenship, not as
    /// a place the subject is.
    Citizenship,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Country => "country",
            EvidenceKind::Residence => "residence",
            EvidenceKind::Citizenship => "citizenship",
        }
    }
}

/// One signal about the subject's jurisdiction. It never holds the personal-data value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub source: EvidenceSource,
    pub kind: EvidenceKind,
    pub country: Country,
    /// Relative strength, 0-100, from the source's rank in the precedence.
    pub weight: u8,
    /// Where the evidence was found (a JSON pointer, `client_address`, `claim:country`,
    /// `header:x-subject-country`), never the value.
    pub location: Cow<'static, str>,
    /// For body evidence: the finding's category and detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<&'static str>,
}

impl Evidence {
    /// Evidence of `kind` from `source`, weighted by the precedence.
    pub fn new(
        precedence: &Precedence,
        source: EvidenceSource,
        kind: EvidenceKind,
        country: Country,
        location: impl Into<Cow<'static, str>>,
    ) -> Evidence {
        Evidence {
            source,
            kind,
            country,
            weight: precedence.weight(source),
            location: location.into(),
            category: None,
            detector: None,
        }
    }
}

/// Evidence that was offered and not accepted: a token that did not verify, a subject header
/// from a peer that may not set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub source: EvidenceSource,
    /// Where it was offered (`header:authorization`, `header:x-subject-country`).
    pub location: Cow<'static, str>,
    /// Why: `expired`, `bad_signature`, `unknown_issuer`, ..., or `spoof` for a subject header
    /// from an untrusted peer.
    pub reason: &'static str,
}

/// How plausible jurisdictions that disagree are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// Every plausible jurisdiction is evaluated; the most restrictive answer wins.
    #[default]
    Strictest,
    /// Only the countries of the highest-ranked source present are evaluated; the rest stay in
    /// the evidence list.
    Precedence,
}

impl ConflictRule {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictRule::Strictest => "strictest",
            ConflictRule::Precedence => "precedence",
        }
    }
}

/// The configured ranking of evidence sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precedence {
    /// Strongest first; a source not listed is not used.
    order: Vec<EvidenceSource>,
    weights: [u8; 5],
    pub rule: ConflictRule,
}

/// The weight of the source in each rank, strongest first.
pub const RANK_WEIGHTS: [u8; 5] = [90, 80, 70, 60, 40];

impl Default for Precedence {
    fn default() -> Self {
        Precedence::new(EvidenceSource::ALL.to_vec(), ConflictRule::Strictest)
    }
}

impl Precedence {
    /// A ranking, strongest first. Duplicates keep their first rank.
    pub fn new(order: Vec<EvidenceSource>, rule: ConflictRule) -> Precedence {
        let mut dedup: Vec<EvidenceSource> = Vec::with_capacity(order.len());
        for s in order {
            if !dedup.contains(&s) {
                dedup.push(s);
            }
        }
        let mut weights = [0u8; 5];
        for (rank, s) in dedup.iter().enumerate() {
            weights[*s as usize] = RANK_WEIGHTS[rank.min(RANK_WEIGHTS.len() - 1)];
        }
        Precedence {
            order: dedup,
            weights,
            rule,
        }
    }

    pub fn order(&self) -> &[EvidenceSource] {
        &self.order
    }

    /// Whether the source is used at all.
    pub fn uses(&self, source: EvidenceSource) -> bool {
        self.weights[source as usize] > 0
    }

    pub fn weight(&self, source: EvidenceSource) -> u8 {
        self.weights[source as usize]
    }

    fn rank(&self, source: EvidenceSource) -> usize {
        self.order
            .iter()
            .position(|s| *s == source)
            .unwrap_or(usize::MAX)
    }
}

/// One plausible jurisdiction and how sure the evidence makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plausible {
    pub country: Country,
    /// The share of the evidence weight pointing here, in percent.
    pub confidence: u8,
}

/// The subject's plausible jurisdictions and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Distinct countries, strongest evidence first. Empty when nothing is known. Under
    /// [`ConflictRule::Precedence`], only the highest-ranked source's countries.
    pub jurisdictions: Vec<Country>,
    /// The same countries with their confidence.
    pub plausible: Vec<Plausible>,
    /// Countries the subject is a citizen of (evidence of kind citizenship).
    pub citizenship: Vec<Country>,
    pub evidence: Vec<Evidence>,
    /// Evidence offered and refused.
    pub rejected: Vec<Rejected>,
    /// True when the evidence points to more than one country.
    pub conflict: bool,
    /// The rule the jurisdictions were chosen by.
    pub rule: ConflictRule,
    /// The client address gave no country (no GeoIP, an address it does not know, a
    /// malformed forwarding chain).
    pub address_unknown: bool,
    /// The subject's home region from the directory or a verified token claim, with its source.
    pub home_region: Option<(Arc<str>, EvidenceSource)>,
}

impl Resolution {
    /// Builds the resolution from evidence in any order under the default precedence.
    pub fn from_evidence(evidence: Vec<Evidence>) -> Resolution {
        Resolution::resolve(evidence, &Precedence::default())
    }

    /// Builds the resolution from evidence in any order.
    pub fn resolve(mut evidence: Vec<Evidence>, precedence: &Precedence) -> Resolution {
        evidence.retain(|e| precedence.uses(e.source));
        // Stable: equal weights keep the order they were found in.
        evidence.sort_by_key(|e| std::cmp::Reverse(e.weight));
        let mut citizenship: Vec<Country> = Vec::new();
        let mut plausible: Vec<(Country, u32)> = Vec::with_capacity(evidence.len());
        let mut total: u32 = 0;
        for e in &evidence {
            if e.kind == EvidenceKind::Citizenship {
                if !citizenship.contains(&e.country) {
                    citizenship.push(e.country);
                }
                continue;
            }
            total += u32::from(e.weight);
            match plausible.iter_mut().find(|(c, _)| *c == e.country) {
                Some((_, w)) => *w += u32::from(e.weight),
                None => plausible.push((e.country, u32::from(e.weight))),
            }
        }
        let conflict = plausible.len() > 1;
        if precedence.rule == ConflictRule::Precedence && conflict {
            let top = evidence
                .iter()
                .filter(|e| e.kind != EvidenceKind::Citizenship)
                .map(|e| precedence.rank(e.source))
                .min()
                .unwrap_or(usize::MAX);
            plausible.retain(|(c, _)| {
                evidence.iter().any(|e| {
                    e.country == *c
                        && e.kind != EvidenceKind::Citizenship
                        && precedence.rank(e.source) == top
                })
            });
        }
        let plausible: Vec<Plausible> = plausible
            .into_iter()
            .map(|(country, w)| Plausible {
                country,
                confidence: (w * 100 + total / 2)
                    .checked_div(total)
                    .map_or(0, |c| c.min(100) as u8),
            })
            .collect();
        Resolution {
            jurisdictions: plausible.iter().map(|p| p.country).collect(),
            plausible,
            citizenship,
            conflict,
            rule: precedence.rule,
            evidence,
            rejected: Vec::new(),
            address_unknown: false,
            home_region: None,
        }
    }

    /// The strongest single jurisdiction, used to pick a home region.
    pub fn primary(&self) -> Option<Country> {
        self.jurisdictions.first().copied()
    }

    /// Whether an operator-vouched source (directory, verified token, trusted header) gave a
    /// place for the subject.
    pub fn asserted(&self) -> bool {
        self.evidence
            .iter()
            .any(|e| e.source.is_asserted() && e.kind != EvidenceKind::Citizenship)
    }

    /// The jurisdiction is incomplete and personal data must fail closed: the client address
    /// has no country and no vouched source says where the subject is.
    pub fn incomplete(&self) -> bool {
        self.address_unknown && !self.asserted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    fn ev(p: &Precedence, source: EvidenceSource, country: &str, loc: &'static str) -> Evidence {
        Evidence::new(p, source, EvidenceKind::Country, c(country), loc)
    }

    #[test]
    fn a_german_phone_from_a_us_client_is_plausibly_both() {
        let p = Precedence::default();
        let r = Resolution::resolve(
            vec![
                ev(&p, EvidenceSource::Body, "DE", "/phone"),
                ev(&p, EvidenceSource::Geoip, "US", "client_address"),
                ev(&p, EvidenceSource::Body, "DE", "/alt"),
            ],
            &p,
        );
        assert_eq!(r.jurisdictions, vec![c("US"), c("DE")]);
        assert!(r.conflict);
        assert_eq!(r.rule, ConflictRule::Strictest);
        assert_eq!(r.primary(), Some(c("US")));
        // 60 for the address against 40 + 40 for the two phone numbers.
        assert_eq!(
            r.plausible,
            vec![
                Plausible {
                    country: c("US"),
                    confidence: 43
                },
                Plausible {
                    country: c("DE"),
                    confidence: 57
                }
            ]
        );
        assert_eq!(r.evidence[0].weight, 60);
        assert_eq!(r.evidence[1].weight, 40);
    }

    #[test]
    fn precedence_orders_sources_and_sets_weights() {
        let p = Precedence::new(
            vec![EvidenceSource::Geoip, EvidenceSource::Token],
            ConflictRule::Strictest,
        );
        assert_eq!(p.weight(EvidenceSource::Geoip), 90);
        assert_eq!(p.weight(EvidenceSource::Token), 80);
        assert!(!p.uses(EvidenceSource::Body));
        let r = Resolution::resolve(
            vec![
                ev(&p, EvidenceSource::Token, "FR", "claim:country"),
                ev(&p, EvidenceSource::Geoip, "US", "client_address"),
                ev(&p, EvidenceSource::Body, "DE", "/phone"),
            ],
            &p,
        );
        assert_eq!(r.jurisdictions, vec![c("US"), c("FR")]);
        assert_eq!(r.evidence.len(), 2, "the unused source is dropped");
    }

    #[test]
    fn the_precedence_rule_keeps_only_the_top_source() {
        let p = Precedence::new(EvidenceSource::ALL.to_vec(), ConflictRule::Precedence);
        let r = Resolution::resolve(
            vec![
                ev(&p, EvidenceSource::Geoip, "US", "client_address"),
                ev(&p, EvidenceSource::Directory, "DE", "directory"),
                ev(&p, EvidenceSource::Body, "FR", "/phone"),
            ],
            &p,
        );
        assert_eq!(r.jurisdictions, vec![c("DE")]);
        assert!(r.conflict);
        assert_eq!(r.evidence.len(), 3, "all evidence stays on record");
    }

    #[test]
    fn citizenship_is_carried_apart_from_places() {
        let p = Precedence::default();
        let r = Resolution::resolve(
            vec![
                Evidence::new(
                    &p,
                    EvidenceSource::Token,
                    EvidenceKind::Citizenship,
                    c("IT"),
                    "claim:citizenship",
                ),
                ev(&p, EvidenceSource::Geoip, "US", "client_address"),
            ],
            &p,
        );
        assert_eq!(r.jurisdictions, vec![c("US")]);
        assert_eq!(r.citizenship, vec![c("IT")]);
        assert!(!r.conflict);
        assert!(
            !r.asserted(),
            "citizenship does not say where the subject is"
        );
    }

    #[test]
    fn no_evidence_is_unknown_and_vouched_evidence_completes_it() {
        let mut r = Resolution::from_evidence(vec![]);
        r.address_unknown = true;
        assert!(r.jurisdictions.is_empty());
        assert_eq!(r.primary(), None);
        assert!(r.incomplete());
        let p = Precedence::default();
        let mut r = Resolution::resolve(
            vec![ev(
                &p,
                EvidenceSource::Header,
                "DE",
                "header:x-subject-country",
            )],
            &p,
        );
        r.address_unknown = true;
        assert!(!r.incomplete());
        let mut r = Resolution::resolve(vec![ev(&p, EvidenceSource::Body, "DE", "/phone")], &p);
        r.address_unknown = true;
        assert!(r.incomplete(), "a phone number alone does not complete it");
    }
}
