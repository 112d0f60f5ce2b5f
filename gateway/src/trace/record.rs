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
    pub listen: String,
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
