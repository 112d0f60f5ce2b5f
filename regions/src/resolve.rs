//! Combining evidence into the subject's plausible jurisdictions.
//!
//! Each signal names its source and weight. The result keeps every distinct country the evidence
//! points to, strongest first: the policy engine evaluates all of them and the most restrictive
//! answer wins, which is how conflicting or partial evidence resolves to the strictest regime.

use domicile_policy::Country;
use serde::Serialize;

/// Where a piece of evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// GeoIP of the real client address.
    Geoip,
    /// The country a phone number in the request belongs to.
    Phone,
}

impl EvidenceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceSource::Geoip => "geoip",
            EvidenceSource::Phone => "phone",
        }
    }
}

/// One signal about the subject's jurisdiction. It never holds the personal-data value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub source: EvidenceSource,
    pub country: Country,
    /// Relative strength, 0-100.
    pub weight: u8,
    /// Where the evidence was found (a JSON pointer, `client_address`), never the value.
    pub location: String,
}

/// The subject's plausible jurisdictions and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Distinct countries, strongest evidence first. Empty when nothing is known.
    pub jurisdictions: Vec<Country>,
    pub evidence: Vec<Evidence>,
    /// True when the evidence points to more than one country.
    pub conflict: bool,
    /// The client address gave no country (no GeoIP, an address it does not know, a
    /// malformed forwarding chain): the jurisdiction is incomplete and must fail closed.
    pub address_unknown: bool,
}

impl Resolution {
    /// Builds the resolution from evidence in any order.
    pub fn from_evidence(mut evidence: Vec<Evidence>) -> Resolution {
        evidence.sort_by_key(|e| std::cmp::Reverse(e.weight));
        let mut jurisdictions: Vec<Country> = Vec::with_capacity(evidence.len());
        for e in &evidence {
            if !jurisdictions.contains(&e.country) {
                jurisdictions.push(e.country);
            }
        }
        Resolution {
            conflict: jurisdictions.len() > 1,
            jurisdictions,
            evidence,
            address_unknown: false,
        }
    }

    /// The strongest single jurisdiction, used to pick a home region.
    pub fn primary(&self) -> Option<Country> {
        self.jurisdictions.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    #[test]
    fn conflicting_evidence_keeps_every_country() {
        let r = Resolution::from_evidence(vec![
            Evidence {
                source: EvidenceSource::Phone,
                country: c("DE"),
                weight: 40,
                location: "/phone".into(),
            },
            Evidence {
                source: EvidenceSource::Geoip,
                country: c("US"),
                weight: 60,
                location: "client_address".into(),
            },
            Evidence {
                source: EvidenceSource::Phone,
                country: c("DE"),
                weight: 40,
                location: "/alt".into(),
            },
        ]);
        assert_eq!(r.jurisdictions, vec![c("US"), c("DE")]);
        assert!(r.conflict);
        assert_eq!(r.primary(), Some(c("US")));
    }

    #[test]
    fn no_evidence_is_unknown() {
        let r = Resolution::from_evidence(vec![]);
        assert!(r.jurisdictions.is_empty());
        assert_eq!(r.primary(), None);
    }
}
