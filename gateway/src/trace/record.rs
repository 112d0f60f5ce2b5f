//! The decision record: one JSON object per decision, one per line. It holds no personal-data
//! values: findings are category and location, client addresses are truncated, evidence names
//! its source and location only. Field order is fixed, so the serialised form is canonical.

use std::sync::Arc;

use domicile_policy::{Country, Date, Reason};
use domicile_regions::client_addr::Truncated;
use domicile_regions::{Evidence, Plausible, Rejected};
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
    /// The plausible jurisdictions with their confidence.
    pub plausible: &'a [Plausible],
    /// How conflicting evidence was resolved: `strictest` or `precedence`.
    pub rule: &'static str,
    /// Countries the subject is a citizen of, from the evidence.
    pub citizenship: &'a [Country],
    /// Evidence offered and not accepted (tokens that did not verify, spoofed subject headers,
    /// anonymiser addresses).
    pub rejected_evidence: &'a [Rejected],
    pub home_region: Option<&'a str>,
    /// Where the home region came from: `directory`, `token`, `header` or `jurisdiction`.
    pub home_region_source: Option<&'static str>,
    /// What the subject directory did: `absent`, `found`, `stored` or `failed`; absent when
    /// there is no directory or no subject id.
    pub directory: Option<&'static str>,
    pub geoip_build_epoch: Option<u64>,
    /// The GeoIP database's build date (UTC).
    pub geoip_build_date: Option<&'a str>,
    pub client_address_source: &'static str,
    /// An `X-Forwarded-For` from an untrusted peer was ignored.
    pub forwarded_for_ignored: bool,
    /// The client address truncated to /24 or /48.
    pub client_address: Option<Truncated>,
    /// What the ignored chain claimed the client was, truncated as `client_address` is; only
    /// when one was ignored and its first entry is an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_for_claimed: Option<Truncated>,
    /// The keyed pseudonym of the subject identifier (see [`crate::config::trace::Pseudonyms`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
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
    pub time: crate::clock::Timestamp,
    pub region: &'a str,
    /// The backend's status, absent when it did not answer.
    pub upstream_status: Option<u16>,
    /// `upstream_failed` or `upstream_timeout` when it did not.
    pub error: Option<&'static str>,
    pub latency_us: u64,
}

/// What inspection concluded, with what it left out and what the field map did not know.
#[derive(Debug, Serialize)]
pub struct InspectionRecord<'a> {
    #[serde(flatten)]
    pub status: &'a InspectStatus,
    /// Locations forwarded without inspection (binary multipart parts); absent when none.
    #[serde(skip_serializing_if = "none")]
    pub not_inspected: &'a [String],
    /// Body fields the route's field map does not declare; absent when none.
    #[serde(skip_serializing_if = "none")]
    pub unmapped_fields: &'a [String],
}

fn none(v: &&[String]) -> bool {
    v.is_empty()
}

/// One decision. The fields are in the order they are written: what tends to be the same
/// from one request to the next first (route, destination, verdict, reasons), what changes
/// with every request last (the subject's address, the id and the time), so alike records
/// begin with the same bytes (see [`super::shared_prefix`]).
#[derive(Debug, Serialize)]
pub struct DecisionRecord<'a> {
    pub schema: &'static str,
    pub gateway: GatewayInfo<'a>,
    pub policy_revision: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub purpose: &'a str,
    pub destination: Option<DestinationRecord<'a>>,
    pub verdict: &'static str,
    pub reason_code: &'static str,
    pub basis: &'a [Arc<str>],
    pub conditions: &'a [String],
    pub re_evaluate_at: Option<Date>,
    pub reasons: &'a [Reason],
    pub enforced: bool,
    pub outcome: OutcomeRecord,
    pub inspection: InspectionRecord<'a>,
    pub findings: &'a [Finding],
    pub subject: SubjectRecord<'a>,
    pub decision_id: &'a str,
    pub time: crate::clock::Timestamp,
}

use super::json::{self, Obj};

impl DecisionRecord<'_> {
    /// Writes the record as JSON: the same bytes as `serde_json::to_vec(self)`, faster.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let s = &self.subject;
        Obj::new(out)
            .safe("schema", self.schema)
            .with("gateway", |o| {
                Obj::new(o)
                    .str("instance", self.gateway.instance)
                    .opt_str("region", self.gateway.region)
                    // A socket address as the gateway wrote it.
                    .safe("listen", self.gateway.listen)
                    .end()
            })
            .safe("policy_revision", self.policy_revision)
            .str("route", self.route)
            .safe("method", self.method)
            .str("purpose", self.purpose)
            .with("destination", |o| match &self.destination {
                Some(d) => Obj::new(o)
                    .str("region", d.region)
                    .ascii("country", d.country.as_bytes())
                    .str("entity", d.entity)
                    .end(),
                None => o.extend_from_slice(b"null"),
            })
            .safe("verdict", self.verdict)
            .safe("reason_code", self.reason_code)
            .array("basis", self.basis, |o, b| json::string(o, b))
            .array("conditions", self.conditions, |o, c| json::string(o, c))
            .opt_str(
                "re_evaluate_at",
                self.re_evaluate_at.map(|d| d.to_string()).as_deref(),
            )
            .array("reasons", self.reasons, |o, r| {
                Obj::new(o)
                    .safe("step", r.step)
                    .str("rule", &r.rule)
                    .str("finding", &r.finding)
                    .end()
            })
            .bool("enforced", self.enforced)
            .with("outcome", |o| {
                let mut oo = Obj::new(o);
                oo.safe("action", self.outcome.action);
                if let Some(st) = self.outcome.status {
                    oo.num("status", u64::from(st));
                }
                oo.end()
            })
            .with("inspection", |o| {
                let mut i = Obj::new(o);
                match self.inspection.status {
                    InspectStatus::Skipped => i.safe("status", "skipped"),
                    InspectStatus::Complete => i.safe("status", "complete"),
                    InspectStatus::Uninspectable(why) => i
                        .safe("status", "uninspectable")
                        .str("reason", why.as_str()),
                };
                for (k, list) in [
                    ("not_inspected", self.inspection.not_inspected),
                    ("unmapped_fields", self.inspection.unmapped_fields),
                ] {
                    if !list.is_empty() {
                        i.array(k, list, |o, s| json::string(o, s));
                    }
                }
                i.end()
            })
            .array("findings", self.findings, |o, f| {
                let mut fo = Obj::new(o);
                fo.safe("category", f.category.as_str())
                    .str("location", &f.location)
                    .safe("detector", f.detector);
                if let Some(c) = f.country {
                    fo.ascii("country", c.as_bytes());
                }
                fo.end()
            })
            .with("subject", |o| {
                let mut so = Obj::new(o);
                so.array("jurisdictions", s.jurisdictions, |o, c| {
                    json::safe_ascii(o, c.as_bytes())
                })
                .array("regimes", s.regimes, |o, r| json::string(o, r))
                .bool("conflict", s.conflict)
                .array("evidence", s.evidence, |o, e| {
                    let mut eo = Obj::new(o);
                    eo.safe("source", e.source.as_str())
                        .safe("kind", e.kind.as_str())
                        .ascii("country", e.country.as_bytes())
                        .num("weight", u64::from(e.weight))
                        .str("location", &e.location);
                    if let Some(c) = e.category {
                        eo.str("category", c);
                    }
                    if let Some(d) = e.detector {
                        eo.str("detector", d);
                    }
                    eo.end()
                })
                .array("plausible", s.plausible, |o, p| {
                    Obj::new(o)
                        .ascii("country", p.country.as_bytes())
                        .num("confidence", u64::from(p.confidence))
                        .end()
                })
                .safe("rule", s.rule)
                .array("citizenship", s.citizenship, |o, c| {
                    json::safe_ascii(o, c.as_bytes())
                })
                .array("rejected_evidence", s.rejected_evidence, |o, r| {
                    Obj::new(o)
                        .safe("source", r.source.as_str())
                        .str("location", &r.location)
                        .safe("reason", r.reason)
                        .end()
                })
                .opt_str("home_region", s.home_region)
                // Names fixed in the code, and a date the gateway formatted.
                .opt_ascii(
                    "home_region_source",
                    s.home_region_source.map(str::as_bytes),
                )
                .opt_ascii("directory", s.directory.map(str::as_bytes))
                .opt_num("geoip_build_epoch", s.geoip_build_epoch)
                .opt_ascii("geoip_build_date", s.geoip_build_date.map(str::as_bytes))
                .safe("client_address_source", s.client_address_source)
                .bool("forwarded_for_ignored", s.forwarded_for_ignored)
                // Digits, hex letters and `.:/`: nothing to escape.
                .opt_ascii(
                    "client_address",
                    s.client_address.as_ref().map(Truncated::as_bytes),
                );
                if let Some(c) = &s.forwarded_for_claimed {
                    so.ascii("forwarded_for_claimed", c.as_bytes());
                }
                if let Some(p) = &s.pseudonym {
                    so.str("pseudonym", p);
                }
                so.end()
            })
            .safe("decision_id", self.decision_id)
            .ascii("time", self.time.as_bytes())
            .end();
    }
}

impl OutcomeLine<'_> {
    /// Writes the line as JSON: the same bytes as `serde_json::to_vec(self)`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        Obj::new(out)
            .safe("schema", self.schema)
            .safe("decision_id", self.decision_id)
            .ascii("time", self.time.as_bytes())
            .str("region", self.region)
            .opt_num("upstream_status", self.upstream_status.map(u64::from))
            .opt_str("error", self.error)
            .num("latency_us", self.latency_us)
            .end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domicile_policy::{Category, Country};
    use domicile_regions::EvidenceSource;
    use domicile_regions::client_addr::truncate;

    #[test]
    fn the_fast_writer_matches_serde_json() {
        let regimes: Vec<Arc<str>> = vec![Arc::from("GDPR"), Arc::from("US-FED")];
        let evidence = vec![
            Evidence {
                source: EvidenceSource::Body,
                kind: domicile_regions::EvidenceKind::Country,
                country: Country::parse("DE").unwrap(),
                weight: 40,
                location: "/contacts/0/phone".into(),
                category: Some("phone"),
                detector: Some("phone.e164"),
            },
            Evidence {
                source: EvidenceSource::Geoip,
                kind: domicile_regions::EvidenceKind::Country,
                country: Country::parse("US").unwrap(),
                weight: 60,
                location: "client_address".into(),
                category: None,
                detector: None,
            },
        ];
        let plausible = vec![Plausible {
            country: Country::parse("US").unwrap(),
            confidence: 60,
        }];
        let rejected = vec![Rejected {
            source: EvidenceSource::Token,
            location: "header:authorization".into(),
            reason: "expired",
        }];
        let findings = vec![
            Finding {
                category: Category::Phone,
                confidence: 95,
                location: "/a~1b/\"q\"".into(),
                detector: "phone.e164",
                country: Some(Country::parse("DE").unwrap()),
            },
            Finding {
                category: Category::Email,
                confidence: 95,
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
        let not_inspected = vec!["multipart:avatar".to_owned()];
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
                time: crate::clock::rfc3339_micros(1_795_910_467_787_074),
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
                    client_address: Some(truncate("198.51.100.9".parse().unwrap())),
                    client_address_source: "x_forwarded_for",
                    forwarded_for_ignored: region.is_none(),
                    forwarded_for_claimed: region
                        .is_none()
                        .then(|| truncate("203.0.113.7".parse().unwrap())),
                    geoip_build_epoch: epoch,
                    home_region: region,
                    plausible: &plausible,
                    rule: "strictest",
                    citizenship: &jurisdictions[1..],
                    rejected_evidence: &rejected,
                    geoip_build_date: epoch.map(|_| "2026-11-28"),
                    home_region_source: region.map(|_| "directory"),
                    directory: region.map(|_| "stored"),
                    pseudonym: epoch.map(|e| format!("{e:064x}")),
                },
                inspection: InspectionRecord {
                    status: &inspection,
                    not_inspected: &not_inspected,
                    unmapped_fields: &[],
                },
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
            let text = String::from_utf8(fast).unwrap();
            assert_eq!(text, serde_json::to_string(&record).unwrap());
            // What changes from request to request comes last, so that alike records begin
            // with the same bytes: the subject (its addresses and pseudonym last), the id, the time.
            let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
            assert!(text.starts_with("{\"schema\":\"domicile.decision/1\",\"gateway\":"));
            assert!(at("route") < at("destination") && at("destination") < at("reasons"));
            assert!(at("reasons") < at("outcome") && at("outcome") < at("findings"));
            assert!(at("findings") < at("subject") && at("subject") < at("decision_id"));
            assert!(at("jurisdictions") < at("evidence") && at("evidence") < at("client_address"));
            assert!(at("client_address") < at("decision_id") && at("decision_id") < at("time"));
            assert!(
                !text[at("time")..].contains(",\""),
                "time is the last field: {text}"
            );
        }
        for (status, error) in [(Some(200), None), (None, Some("upstream_timeout"))] {
            let line = OutcomeLine {
                schema: OUTCOME_SCHEMA,
                decision_id: "x",
                time: crate::clock::rfc3339_micros(0),
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
