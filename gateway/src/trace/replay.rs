//! Replay: re-evaluates recorded decisions under another configuration and knowledge base (and
//! optionally another date), and reports what would change. The dry run before enforcing a new
//! policy, and the way to see a court judgment or a new certification move real traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use domicile_policy::{Category, Country, Date, Destination, Facts, Query, Verdict};
use serde_json::Value;

use crate::state::Snapshot;

/// One recorded decision evaluated again.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub decision_id: String,
    pub route: String,
    pub jurisdictions: String,
    pub destination: String,
    pub before: String,
    pub after: String,
    pub reason_after: String,
}

/// Re-evaluates one decision record (`at` replaces its own date when given); `None` for a record with no destination or no date.
pub fn replay_one(r: &Value, snap: &Snapshot, at: Option<Date>) -> Option<Replayed> {
    let region_id = r["destination"]["region"].as_str()?;
    let before = r["verdict"].as_str().unwrap_or("").to_owned();
    let jurisdictions: Vec<Country> = r["subject"]["jurisdictions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().and_then(|c| Country::parse(c).ok()))
        .collect();
    let mut categories: Vec<Category> = r["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["category"].as_str().and_then(|c| c.parse().ok()))
        .collect();
    if r["inspection"]["status"] == "uninspectable" {
        categories.push(Category::Uninspectable);
    }
    categories.sort_unstable();
    categories.dedup();
    // The address counted as known when GeoIP gave evidence.
    let incomplete = !r["subject"]["evidence"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["source"] == "geoip"));
    let record_day = r["time"]
        .as_str()
        .and_then(|t| t.get(..10))
        .and_then(|d| d.parse::<Date>().ok());
    let day = at.or(record_day)?;
    let purpose = r["purpose"].as_str().unwrap_or("");
    let route = snap
        .config
        .routes
        .iter()
        .find(|x| r["route"].as_str() == Some(&*x.id));
    let after = match snap.registry.get(region_id) {
        Some(region) => {
            let q = Query {
                jurisdictions: &jurisdictions,
                citizenship: &[],
                incomplete,
                categories: &categories,
                purpose,
                destination: Destination {
                    region: &region.id,
                    country: region.country,
                    entity: &region.entity,
                },
                at: day,
                instant: None,
                // The record does not keep request signals (GPC): they count as absent.
                facts: Facts {
                    frequency: route.map(|x| x.frequency).unwrap_or_default(),
                    evidence: route.map_or(&[], |x| x.evidence.as_slice()),
                    exporter: snap.config.policy.exporter.as_deref(),
                    contracts: route.map_or(&snap.config.policy.contracts, |x| &x.contracts),
                    ..Facts::default()
                },
            };
            let d = snap.engine.evaluate(&q);
            (d.verdict, d.reason_code.to_owned())
        }
        None => (Verdict::Block, "region_not_configured".to_owned()),
    };
    Some(Replayed {
        decision_id: r["decision_id"].as_str().unwrap_or("").to_owned(),
        route: r["route"].as_str().unwrap_or("").to_owned(),
        jurisdictions: jurisdictions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        destination: region_id.to_owned(),
        before,
        after: after.0.as_str().to_owned(),
        reason_after: after.1,
    })
}

/// The changes, grouped by route, subject jurisdictions, destination and the verdict change,
/// with counts; then the totals.
pub fn report(replayed: &[Replayed]) -> String {
    let mut groups: BTreeMap<(String, String, String, String, String, String), usize> =
        BTreeMap::new();
    for r in replayed.iter().filter(|r| r.before != r.after) {
        *groups
            .entry((
                r.route.clone(),
                if r.jurisdictions.is_empty() {
                    "unknown".into()
                } else {
                    r.jurisdictions.clone()
                },
                r.destination.clone(),
                r.before.clone(),
                r.after.clone(),
                r.reason_after.clone(),
            ))
            .or_default() += 1;
    }
    let changed: usize = groups.values().sum();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} decisions replayed, {changed} would change",
        replayed.len()
    );
    if !groups.is_empty() {
        let _ = writeln!(
            s,
            "\n{:>7}  {:<14} {:<10} {:<14} CHANGE",
            "COUNT", "ROUTE", "SUBJECT", "DESTINATION"
        );
    }
    for ((route, subject, dest, before, after, reason), n) in &groups {
        let _ = writeln!(
            s,
            "{n:>7}  {route:<14} {subject:<10} {dest:<14} {before} -> {after} ({reason})"
        );
    }
    s
}
