//! The decision record: one JSON object per decision, one per line. It holds no personal-data
//! values: findings are category and location, client addresses are truncated, evidence names
//! its source and location only. Field order is fixed, so the serialised form is canonical.

use std::sync::Arc;

use domicile_policy::{Country, Date, Reason};
use domicile_regions::Evidence;
use serde::Serialize;

use crate::inspect::{Finding, InspectStatus};

/// The schema id written in every record.
pub const SCHEMA: &str = "domicile.decision/1";

#[derive(Debug, Serialize)]
pub struct GatewayInfo<'a> {
    pub instance: &'a str,
    pub region: Option<&'a str>,
    pub listen: &'a str,
}

#[derive(Debug, Serialize)]
pub struct SubjectRecord<'a> {
    pub jurisdictions: &'a [Country],
    pub regimes: &'a [Arc<str>],
    pub conflict: bool,
    pub evidence: &'a [Evidence],
    /// The client address truncated to /24 or /48.
    pub client_address: Option<String>,
    pub client_address_source: &'static str,
    /// An `X-Forwarded-For` from an untrusted peer was ignored.
    pub forwarded_for_ignored: bool,
    pub geoip_build_epoch: Option<u64>,
    pub home_region: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct DestinationRecord<'a> {
    pub region: &'a str,
    pub country: Country,
    pub entity: &'a str,
}

#[derive(Debug, Serialize)]
pub struct OutcomeRecord {
    /// `forwarded`, `blocked`, `rejected` or `unavailable`.
    pub action: &'static str,
    /// The status the gateway answers with itself; absent when forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// The schema id of outcome lines.
pub const OUTCOME_SCHEMA: &str = "domicile.outcome/1";

/// What happened after a forwarded request's record was written: appended to the same file,
/// chained like decisions, joined to its decision by `decision_id`.
#[derive(Debug, Serialize)]
pub struct OutcomeLine<'a> {
    pub schema: &'static str,
    pub decision_id: &'a str,
    pub time: String,
    pub region: &'a str,
    /// The backend's status, absent when it did not answer.
    pub upstream_status: Option<u16>,
    /// `upstream_failed` or `upstream_timeout` when it did not.
    pub error: Option<&'static str>,
    pub latency_us: u64,
}

/// One decision.
#[derive(Debug, Serialize)]
pub struct DecisionRecord<'a> {
    pub schema: &'static str,
    pub decision_id: &'a str,
    pub time: String,
    pub gateway: GatewayInfo<'a>,
    pub policy_revision: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub purpose: &'a str,
    pub subject: SubjectRecord<'a>,
    pub inspection: &'a InspectStatus,
    pub findings: &'a [Finding],
    pub destination: Option<DestinationRecord<'a>>,
    pub verdict: &'static str,
    pub reason_code: &'static str,
    pub basis: &'a [Arc<str>],
    pub conditions: &'a [String],
    pub re_evaluate_at: Option<Date>,
    pub reasons: &'a [Reason],
    pub enforced: bool,
    pub outcome: OutcomeRecord,
}

use super::json;

impl DecisionRecord<'_> {
    /// Writes the record as JSON: the same bytes as `serde_json::to_vec(self)`, faster.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        json::key(out, "schema");
        json::string(out, self.schema);
        out.push(b',');
        json::key(out, "decision_id");
        json::string(out, self.decision_id);
        out.push(b',');
        json::key(out, "time");
        json::string(out, &self.time);
        out.push(b',');
        json::key(out, "gateway");
        out.push(b'{');
        json::key(out, "instance");
        json::string(out, self.gateway.instance);
        out.push(b',');
        json::key(out, "region");
        json::opt_string(out, self.gateway.region);
        out.push(b',');
        json::key(out, "listen");
        json::string(out, self.gateway.listen);
        out.extend_from_slice(b"},");
        json::key(out, "policy_revision");
        json::string(out, self.policy_revision);
        out.push(b',');
        json::key(out, "route");
        json::string(out, self.route);
        out.push(b',');
        json::key(out, "method");
        json::string(out, self.method);
        out.push(b',');
        json::key(out, "purpose");
        json::string(out, self.purpose);
        out.push(b',');
        json::key(out, "subject");
        let s = &self.subject;
        out.push(b'{');
        json::key(out, "jurisdictions");
        json::array(out, s.jurisdictions, |o, c| json::string(o, c.as_str()));
        out.push(b',');
        json::key(out, "regimes");
        json::array(out, s.regimes, |o, r| json::string(o, r));
        out.push(b',');
        json::key(out, "conflict");
        json::boolean(out, s.conflict);
        out.push(b',');
        json::key(out, "evidence");
        json::array(out, s.evidence, |o, e| {
            o.push(b'{');
            json::key(o, "source");
            json::string(o, e.source.as_str());
            o.push(b',');
            json::key(o, "country");
            json::string(o, e.country.as_str());
            o.push(b',');
            json::key(o, "weight");
            json::number(o, u64::from(e.weight));
            o.push(b',');
            json::key(o, "location");
            json::string(o, &e.location);
            o.push(b'}');
        });
        out.push(b',');
        json::key(out, "client_address");
        json::opt_string(out, s.client_address.as_deref());
        out.push(b',');
        json::key(out, "client_address_source");
        json::string(out, s.client_address_source);
        out.push(b',');
        json::key(out, "forwarded_for_ignored");
        json::boolean(out, s.forwarded_for_ignored);
        out.push(b',');
        json::key(out, "geoip_build_epoch");
        match s.geoip_build_epoch {
            Some(n) => json::number(out, n),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        json::key(out, "home_region");
        json::opt_string(out, s.home_region);
        out.extend_from_slice(b"},");
        json::key(out, "inspection");
        out.push(b'{');
        json::key(out, "status");
        match self.inspection {
            InspectStatus::Skipped => json::string(out, "skipped"),
            InspectStatus::Complete => json::string(out, "complete"),
            InspectStatus::Uninspectable(why) => {
                json::string(out, "uninspectable");
                out.push(b',');
                json::key(out, "reason");
                json::string(out, why.as_str());
            }
        }
        out.extend_from_slice(b"},");
        json::key(out, "findings");
        json::array(out, self.findings, |o, f| {
            o.push(b'{');
            json::key(o, "category");
            json::string(o, f.category.as_str());
            o.push(b',');
            json::key(o, "location");
            json::string(o, &f.location);
            o.push(b',');
            json::key(o, "detector");
            json::string(o, f.detector);
            if let Some(c) = f.country {
                o.push(b',');
                json::key(o, "country");
                json::string(o, c.as_str());
            }
            o.push(b'}');
        });
        out.push(b',');
        json::key(out, "destination");
        match &self.destination {
            Some(d) => {
                out.push(b'{');
                json::key(out, "region");
                json::string(out, d.region);
                out.push(b',');
                json::key(out, "country");
                json::string(out, d.country.as_str());
                out.push(b',');
                json::key(out, "entity");
                json::string(out, d.entity);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        json::key(out, "verdict");
        json::string(out, self.verdict);
        out.push(b',');
        json::key(out, "reason_code");
        json::string(out, self.reason_code);
        out.push(b',');
        json::key(out, "basis");
        json::array(out, self.basis, |o, b| json::string(o, b));
        out.push(b',');
        json::key(out, "conditions");
        json::array(out, self.conditions, |o, c| json::string(o, c));
        out.push(b',');
        json::key(out, "re_evaluate_at");
        match self.re_evaluate_at {
            Some(d) => {
                let mut s = String::with_capacity(10);
                use std::fmt::Write as _;
                let _ = write!(s, "{d}");
                json::string(out, &s);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        json::key(out, "reasons");
        json::array(out, self.reasons, |o, r| {
            o.push(b'{');
            json::key(o, "step");
            json::string(o, r.step);
            o.push(b',');
            json::key(o, "rule");
            json::string(o, &r.rule);
            o.push(b',');
            json::key(o, "finding");
            json::string(o, &r.finding);
            o.push(b'}');
        });
        out.push(b',');
        json::key(out, "enforced");
        json::boolean(out, self.enforced);
        out.push(b',');
        json::key(out, "outcome");
        out.push(b'{');
        json::key(out, "action");
        json::string(out, self.outcome.action);
        if let Some(st) = self.outcome.status {
            out.push(b',');
            json::key(out, "status");
            json::number(out, u64::from(st));
        }
        out.extend_from_slice(b"}}");
    }
}

impl OutcomeLine<'_> {
    /// Writes the line as JSON: the same bytes as `serde_json::to_vec(self)`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        json::key(out, "schema");
        json::string(out, self.schema);
        out.push(b',');
        json::key(out, "decision_id");
        json::string(out, self.decision_id);
        out.push(b',');
        json::key(out, "time");
        json::string(out, &self.time);
        out.push(b',');
        json::key(out, "region");
        json::string(out, self.region);
        out.push(b',');
        json::key(out, "upstream_status");
        match self.upstream_status {
            Some(s) => json::number(out, u64::from(s)),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        json::key(out, "error");
        json::opt_string(out, self.error);
        out.push(b',');
        json::key(out, "latency_us");
        json::number(out, self.latency_us);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domicile_policy::{Category, Country};
    use domicile_regions::EvidenceSource;

    #[test]
    fn the_fast_writer_matches_serde_json() {
        let regimes: Vec<Arc<str>> = vec![Arc::from("GDPR"), Arc::from("US-FED")];
        let evidence = vec![Evidence {
            source: EvidenceSource::Phone,
            country: Country::parse("DE").unwrap(),
            weight: 40,
            location: "/contacts/0/phone".into(),
        }];
        let findings = vec![
            Finding {
                category: Category::Phone,
                location: "/a~1b/\"q\"".into(),
                detector: "phone.e164",
                country: Some(Country::parse("DE").unwrap()),
            },
            Finding {
                category: Category::Email,
                location: "query:e\tmail".into(),
                detector: "email.rfc5322",
                country: None,
            },
        ];
        let reasons = vec![Reason {
            step: "adequacy",
            rule: Arc::from("eu.adequacy.us.dpf"),
            finding: "EU-US \"DPF\" requires\nnothing ünïcødé".into(),
        }];
        let basis: Vec<Arc<str>> = vec![Arc::from("adequacy:EU/2023/1795")];
        let conditions = vec!["keep \\ keys".to_owned()];
        let jurisdictions = [Country::parse("US").unwrap(), Country::parse("DE").unwrap()];
        for (inspection, destination, status, region, epoch, re_eval) in [
            (
                InspectStatus::Complete,
                true,
                None,
                Some("eu-central"),
                Some(1_795_910_466),
                Some("2031-12-27"),
            ),
            (
                InspectStatus::Uninspectable(crate::inspect::Uninspectable::TooLarge),
                false,
                Some(413),
                None,
                None,
                None,
            ),
            (InspectStatus::Skipped, true, Some(451), None, Some(0), None),
        ] {
            let record = DecisionRecord {
                schema: SCHEMA,
                decision_id: "01a2249b00a98de6c800000000",
                time: "2026-11-29T00:01:07.787074Z".into(),
                gateway: GatewayInfo {
                    instance: "vm-8de6c8",
                    region,
                    listen: "127.0.0.1:18080",
                },
                policy_revision: "e611dbe2897b2ca9",
                route: "customers",
                method: "POST",
                purpose: "storage",
                subject: SubjectRecord {
                    jurisdictions: &jurisdictions,
                    regimes: &regimes,
                    conflict: true,
                    evidence: &evidence,
                    client_address: Some("198.51.100.0/24".into()),
                    client_address_source: "x_forwarded_for",
                    forwarded_for_ignored: false,
                    geoip_build_epoch: epoch,
                    home_region: region,
                },
                inspection: &inspection,
                findings: &findings,
                destination: destination.then_some(DestinationRecord {
                    region: "eu-central",
                    country: Country::parse("DE").unwrap(),
                    entity: "acme-eu",
                }),
                verdict: "allow",
                reason_code: "not_a_transfer",
                basis: &basis,
                conditions: &conditions,
                re_evaluate_at: re_eval.map(|d| d.parse().unwrap()),
                reasons: &reasons,
                enforced: status.is_none(),
                outcome: OutcomeRecord {
                    action: "forwarded",
                    status,
                },
            };
            let mut fast = Vec::new();
            record.write_json(&mut fast);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
        }
        for (status, error) in [(Some(200), None), (None, Some("upstream_timeout"))] {
            let line = OutcomeLine {
                schema: OUTCOME_SCHEMA,
                decision_id: "x",
                time: "t".into(),
                region: "eu-central",
                upstream_status: status,
                error,
                latency_us: 1234,
            };
            let mut fast = Vec::new();
            line.write_json(&mut fast);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(&line).unwrap()
            );
        }
    }
}
