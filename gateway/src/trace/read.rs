//! Reading the decision trail: every file under a trace directory, chain verification, filters,
//! one decision with its reason trail, and counts. Used by `domicile trace ...`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::record::{OUTCOME_SCHEMA, SCHEMA};
pub use super::verify::{Checkpoint, Verified, verify_dir};

/// Every trace file under `dir` (`<dir>/<region>/*.jsonl`), sorted.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for region in std::fs::read_dir(dir)? {
        let region = region?.path();
        if !region.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&region)? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "jsonl") {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What `list` keeps. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// RFC 3339 times; records at or after `since` and before `until`.
    pub since: Option<String>,
    pub until: Option<String>,
    pub verdict: Option<String>,
    /// The basis kind: the part before `:` (`adequacy`, `not_a_transfer`, ...).
    pub basis_kind: Option<String>,
    /// One of the subject's plausible jurisdictions.
    pub jurisdiction: Option<String>,
    /// The destination region.
    pub region: Option<String>,
    pub route: Option<String>,
    /// A finding category.
    pub category: Option<String>,
    pub id: Option<String>,
    /// `decision` or `refusal` (a request answered before any decision).
    pub kind: Option<String>,
}

/// The kind of a record: `decision` for `domicile.decision/1`, `refusal` for
/// `domicile.refusal/1`, empty for anything else.
pub fn kind_of(r: &Value) -> &'static str {
    match r["schema"].as_str() {
        Some(SCHEMA) => "decision",
        Some(super::refusal::REFUSAL_SCHEMA) => "refusal",
        _ => "",
    }
}

/// The values `kind` may take.
pub const KINDS: [&str; 2] = ["decision", "refusal"];

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or("")
}

impl Filter {
    pub fn matches(&self, r: &Value) -> bool {
        let time = str_of(r, &["time"]);
        let eq = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        self.since.as_deref().is_none_or(|s| time >= s)
            && self.until.as_deref().is_none_or(|u| time < u)
            && eq(&self.verdict, str_of(r, &["verdict"]))
            && eq(&self.route, str_of(r, &["route"]))
            && eq(&self.region, str_of(r, &["destination", "region"]))
            && eq(&self.id, str_of(r, &["decision_id"]))
            && eq(&self.kind, kind_of(r))
            && self.basis_kind.as_deref().is_none_or(|k| {
                r["basis"].as_array().is_some_and(|b| {
                    b.iter()
                        .filter_map(Value::as_str)
                        .any(|b| b.split(':').next() == Some(k))
                })
            })
            && self.jurisdiction.as_deref().is_none_or(|j| {
                r["subject"]["jurisdictions"]
                    .as_array()
                    .is_some_and(|js| js.iter().any(|x| x.as_str() == Some(j)))
            })
            && self.category.as_deref().is_none_or(|c| {
                r["findings"]
                    .as_array()
                    .is_some_and(|fs| fs.iter().any(|f| f["category"].as_str() == Some(c)))
            })
    }
}

/// A trace line that is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: not a JSON record: {message}")]
pub struct BadLine {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// Decision records and outcome lines, in file order.
#[derive(Debug, Default)]
pub struct Trail {
    pub decisions: Vec<Value>,
    /// decision id → outcome line.
    pub outcomes: BTreeMap<String, Value>,
    /// Requests answered before a decision, oldest first.
    pub refusals: Vec<Value>,
}

impl Trail {
    /// Decision and refusal records that pass `filter`, oldest first, each with a `kind` field
    /// (`decision` or `refusal`) added.
    pub fn listing(&self, filter: &Filter) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .decisions
            .iter()
            .chain(&self.refusals)
            .filter(|r| filter.matches(r))
            .map(|r| {
                let mut r = r.clone();
                let kind = kind_of(&r);
                if let Some(o) = r.as_object_mut() {
                    o.insert("kind".into(), Value::from(kind));
                }
                r
            })
            .collect();
        // Stable: a decision and a refusal of the same microsecond keep that order.
        out.sort_by(|a, b| str_of(a, &["time"]).cmp(str_of(b, &["time"])));
        out
    }

    /// The decision or refusal record with this id.
    pub fn find(&self, id: &str) -> Option<&Value> {
        self.decisions
            .iter()
            .chain(&self.refusals)
            .find(|r| r["decision_id"] == id)
    }
}

/// Reads every line under `dir`. A rotation that renames a file between listing and reading
/// it starts the read over (a few times); a last line still being written (no newline yet) is
/// not read.
pub fn read_dir(dir: &Path) -> Result<Trail, Box<dyn std::error::Error>> {
    let mut attempts = 0;
    loop {
        match read_dir_once(dir) {
            Err(ReadError::Gone(_)) if attempts < 3 => attempts += 1,
            Err(ReadError::Gone(e)) => return Err(e.into()),
            Err(ReadError::Other(e)) => return Err(e),
            Ok(trail) => return Ok(trail),
        }
    }
}

enum ReadError {
    /// A listed file was gone when read (renamed by a rotation).
    Gone(std::io::Error),
    Other(Box<dyn std::error::Error>),
}

impl<E: Into<Box<dyn std::error::Error>>> From<E> for ReadError {
    fn from(e: E) -> ReadError {
        ReadError::Other(e.into())
    }
}

fn read_dir_once(dir: &Path) -> Result<Trail, ReadError> {
    let mut trail = Trail::default();
    for path in files(dir)? {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Gone(e)),
            Err(e) => return Err(e.into()),
        };
        // Only whole lines: the last one may be in the middle of being written.
        let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
        for (n, line) in whole.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| BadLine {
                path: path.display().to_string(),
                line: n + 1,
                message: e.to_string(),
            })?;
            match v["schema"].as_str() {
                Some(SCHEMA) => trail.decisions.push(v),
                Some(super::refusal::REFUSAL_SCHEMA) => trail.refusals.push(v),
                Some(OUTCOME_SCHEMA) => {
                    let id = str_of(&v, &["decision_id"]).to_owned();
                    trail.outcomes.insert(id, v);
                }
                _ => {}
            }
        }
    }
    let by_time = |a: &Value, b: &Value| str_of(a, &["time"]).cmp(str_of(b, &["time"]));
    trail.decisions.sort_by(by_time);
    trail.refusals.sort_by(by_time);
    Ok(trail)
}

/// The requests refused before a decision, as a table, with counts by reason.
pub fn refusals(refusals: &[Value]) -> String {
    let mut s = format!(
        "{:<27} {:<26} {:<8} {:<6} {:<20} {}\n",
        "TIME", "DECISION", "METHOD", "STATUS", "REASON", "CLIENT"
    );
    let mut counts: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for r in refusals {
        let status = r["outcome"]["status"].as_u64().unwrap_or(0);
        let reason = str_of(r, &["reason_code"]);
        *counts.entry((reason, status)).or_default() += 1;
        s.push_str(&format!(
            "{:<27} {:<26} {:<8} {:<6} {:<20} {}\n",
            str_of(r, &["time"]),
            str_of(r, &["decision_id"]),
            str_of(r, &["method"]),
            status,
            reason,
            r["client_address"].as_str().unwrap_or("-"),
        ));
    }
    s.push_str(&format!("\n{} refused before a decision\n", refusals.len()));
    for ((reason, status), n) in counts {
        s.push_str(&format!("  {n:>6}  {reason} ({status})\n"));
    }
    s
}

/// One line of `list`'s table.
pub fn table_row(r: &Value) -> String {
    if kind_of(r) == "refusal" {
        // Refused before a decision: no route, subject or destination was worked out.
        return format!(
            "{:<27} {:<26} {:<12} {:<8} {:<12} {:<8} {:<22} {}",
            str_of(r, &["time"]),
            str_of(r, &["decision_id"]),
            "-",
            "-",
            "-",
            "refused",
            str_of(r, &["reason_code"]),
            match r["outcome"]["status"].as_u64() {
                Some(st) => format!("answered {st}"),
                None => "-".into(),
            },
        );
    }
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{:<27} {:<26} {:<12} {:<8} {:<12} {:<8} {:<22} {}",
        str_of(r, &["time"]),
        str_of(r, &["decision_id"]),
        str_of(r, &["route"]),
        list(&r["subject"]["jurisdictions"]),
        r["destination"]["region"].as_str().unwrap_or("-"),
        str_of(r, &["verdict"]),
        str_of(r, &["reason_code"]),
        list(&r["basis"]),
    )
}

/// The header of `list`'s table.
pub fn table_header() -> String {
    format!(
        "{:<27} {:<26} {:<12} {:<8} {:<12} {:<8} {:<22} {}",
        "TIME", "DECISION", "ROUTE", "SUBJECT", "DESTINATION", "VERDICT", "REASON", "BASIS"
    )
}

/// One labelled line of `show`'s output.
fn line(s: &mut String, k: &str, v: String) {
    s.push_str(&format!("{k:<13}{v}\n"));
}

/// The record's gateway: instance, region and policy revision.
fn gateway_line(r: &Value) -> String {
    format!(
        "{} ({}), policy revision {}",
        str_of(r, &["gateway", "instance"]),
        r["gateway"]["region"].as_str().unwrap_or("no region set"),
        str_of(r, &["policy_revision"])
    )
}

/// One refusal (a request answered before any decision) in words.
pub fn show_refusal(r: &Value) -> String {
    let mut s = String::new();
    line(&mut s, "refusal", str_of(r, &["decision_id"]).into());
    line(&mut s, "time", str_of(r, &["time"]).into());
    line(&mut s, "gateway", gateway_line(r));
    line(
        &mut s,
        "request",
        format!(
            "{} from {}",
            str_of(r, &["method"]),
            r["client_address"].as_str().unwrap_or("an unknown client")
        ),
    );
    line(
        &mut s,
        "outcome",
        format!(
            "refused with {} ({}) before any decision: nothing was forwarded",
            r["outcome"]["status"],
            str_of(r, &["reason_code"])
        ),
    );
    s
}

/// The subject fields past jurisdictions and regimes, in words; each line only when recorded.
fn subject_details(s: &mut String, subj: &Value) {
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<13}{v}\n"));
    let plausible: Vec<String> = subj["plausible"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{} ({}%)", str_of(p, &["country"]), p["confidence"]))
        .collect();
    if !plausible.is_empty() {
        line(
            "plausible",
            format!("{} of the evidence weight", plausible.join(", ")),
        );
    }
    let citizenship: Vec<&str> = subj["citizenship"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !citizenship.is_empty() {
        line(
            "citizenship",
            format!("citizen of {}", citizenship.join(", ")),
        );
    }
    for r in subj["rejected_evidence"].as_array().into_iter().flatten() {
        let why = match str_of(r, &["reason"]) {
            "spoof" => "sent by a peer that is not a trusted proxy (spoof)".to_owned(),
            "expired" => "the token had expired (expired)".to_owned(),
            "anonymous" => "the address belongs to an anonymising network (anonymous)".to_owned(),
            "unknown_region" => {
                "it names a region that is not configured (unknown_region)".to_owned()
            }
            "invalid_value" => {
                "the value is not a valid country or region (invalid_value)".to_owned()
            }
            "invalid_claim" => {
                "the token's claim is not a valid country or region (invalid_claim)".to_owned()
            }
            other => format!("it did not verify ({other})"),
        };
        line(
            "rejected",
            format!(
                "{} evidence at {} was not used: {why}",
                str_of(r, &["source"]),
                str_of(r, &["location"])
            ),
        );
    }
    if let Some(date) = subj["geoip_build_date"].as_str() {
        line("geoip", format!("database built on {date}"));
    }
    if let Some(home) = subj["home_region"].as_str() {
        let from = match str_of(subj, &["home_region_source"]) {
            "directory" => "the subject directory's entry",
            "token" => "a verified token's claim",
            "header" => "a trusted proxy's header",
            "jurisdiction" => "the home of the subject's jurisdiction",
            _ => "an unrecorded source",
        };
        line("home region", format!("{home} (from {from})"));
    }
    if let Some(d) = subj["directory"].as_str() {
        line(
            "directory",
            match d {
                "found" => "the subject's entry was found and used".to_owned(),
                "absent" => "no entry for this subject; none was stored".to_owned(),
                "stored" => {
                    "first write: this request's destination is stored as the subject's home"
                        .to_owned()
                }
                "failed" => "the directory could not be read or written".to_owned(),
                other => other.to_owned(),
            },
        );
    }
    if let Some(p) = subj["pseudonym"].as_str() {
        line(
            "pseudonym",
            format!("{p} (keyed HMAC-SHA256 of the subject id)"),
        );
    }
}

/// One decision in words, with its reason trail and, when recorded, its outcome.
pub fn show(r: &Value, outcome: Option<&Value>) -> String {
    let mut s = String::new();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    line(&mut s, "decision", str_of(r, &["decision_id"]).into());
    line(&mut s, "time", str_of(r, &["time"]).into());
    line(&mut s, "gateway", gateway_line(r));
    line(
        &mut s,
        "request",
        format!(
            "{} on route {} (purpose {})",
            str_of(r, &["method"]),
            str_of(r, &["route"]),
            str_of(r, &["purpose"])
        ),
    );
    let subj = &r["subject"];
    let js = list(&subj["jurisdictions"]);
    let regimes = list(&subj["regimes"]);
    line(
        &mut s,
        "subject",
        format!(
            "{} under {}{}",
            if js.is_empty() {
                "unknown jurisdiction".into()
            } else {
                js.join(", ")
            },
            if regimes.is_empty() {
                "no regime".into()
            } else {
                regimes.join(", ")
            },
            match (subj["conflict"].as_bool(), subj["rule"].as_str()) {
                (Some(true), Some("precedence")) => {
                    "; the evidence conflicts, the highest-ranked source decides (rule precedence)"
                }
                (Some(true), _) => {
                    "; the evidence conflicts, every plausible jurisdiction is evaluated and the strictest answer applies (rule strictest)"
                }
                _ => "",
            }
        ),
    );
    subject_details(&mut s, subj);
    line(
        &mut s,
        "client",
        format!(
            "{} (from {}{})",
            subj["client_address"].as_str().unwrap_or("unknown"),
            str_of(subj, &["client_address_source"]),
            if subj["forwarded_for_ignored"].as_bool() == Some(true) {
                "; an untrusted X-Forwarded-For was ignored"
            } else {
                ""
            }
        ),
    );
    for e in subj["evidence"].as_array().into_iter().flatten() {
        line(
            &mut s,
            "evidence",
            format!(
                "{} says {} (weight {}) at {}",
                str_of(e, &["source"]),
                str_of(e, &["country"]),
                e["weight"],
                str_of(e, &["location"])
            ),
        );
    }
    let findings = r["findings"].as_array().cloned().unwrap_or_default();
    if findings.is_empty() {
        line(
            &mut s,
            "findings",
            format!("none (inspection {})", str_of(r, &["inspection", "status"])),
        );
    }
    for f in &findings {
        line(
            &mut s,
            "finding",
            format!(
                "{} at {} ({})",
                str_of(f, &["category"]),
                str_of(f, &["location"]),
                str_of(f, &["detector"])
            ),
        );
    }
    let d = &r["destination"];
    line(
        &mut s,
        "destination",
        match d.as_object() {
            Some(_) => format!(
                "{} ({}, operated by {})",
                str_of(d, &["region"]),
                str_of(d, &["country"]),
                str_of(d, &["entity"])
            ),
            None => "none".into(),
        },
    );
    let basis = list(&r["basis"]);
    line(
        &mut s,
        "verdict",
        format!(
            "{} ({}){}",
            str_of(r, &["verdict"]),
            str_of(r, &["reason_code"]),
            if r["enforced"].as_bool() == Some(false) {
                ", dry run: not enforced"
            } else {
                ""
            }
        ),
    );
    line(
        &mut s,
        "basis",
        if basis.is_empty() {
            "none".into()
        } else {
            basis.join(", ")
        },
    );
    if let Some(at) = r["re_evaluate_at"].as_str() {
        line(&mut s, "re-evaluate", format!("on {at}"));
    }
    let o = &r["outcome"];
    line(
        &mut s,
        "outcome",
        match o["status"].as_u64() {
            Some(st) => format!("{} ({st})", str_of(o, &["action"])),
            None => str_of(o, &["action"]).to_owned(),
        },
    );
    if let Some(out) = outcome {
        line(
            &mut s,
            "upstream",
            match out["upstream_status"].as_u64() {
                Some(st) => format!("answered {st} in {} µs", out["latency_us"]),
                None => format!(
                    "{} after {} µs",
                    out["error"].as_str().unwrap_or("no answer"),
                    out["latency_us"]
                ),
            },
        );
    }
    s.push_str("reasons:\n");
    for (n, reason) in r["reasons"].as_array().into_iter().flatten().enumerate() {
        s.push_str(&format!(
            "  {}. [{}] {}: {}\n",
            n + 1,
            str_of(reason, &["step"]),
            str_of(reason, &["rule"]),
            str_of(reason, &["finding"])
        ));
    }
    s
}

/// Counts by verdict, destination region and basis.
pub fn stats(decisions: &[Value]) -> String {
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    let mut regions: BTreeMap<String, usize> = BTreeMap::new();
    let mut bases: BTreeMap<String, usize> = BTreeMap::new();
    for r in decisions {
        *verdicts
            .entry(str_of(r, &["verdict"]).to_owned())
            .or_default() += 1;
        *regions
            .entry(
                r["destination"]["region"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned(),
            )
            .or_default() += 1;
        let b: Vec<&str> = r["basis"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        *bases
            .entry(if b.is_empty() {
                "none".into()
            } else {
                b.join(" + ")
            })
            .or_default() += 1;
    }
    let mut s = format!("{} decisions\n", decisions.len());
    for (title, map) in [
        ("verdict", &verdicts),
        ("destination", &regions),
        ("basis", &bases),
    ] {
        s.push_str(&format!("\nby {title}:\n"));
        for (k, n) in map {
            s.push_str(&format!("  {n:>8}  {k}\n"));
        }
    }
    s
}

/// An Article 30(1)(e)-style register of the transfers actually observed: forwarded decisions
/// with personal data, by destination country, recipient and basis, with the categories seen
/// and the first and last time.
pub fn register(decisions: &[Value]) -> String {
    #[derive(Default)]
    struct Entry {
        count: usize,
        categories: std::collections::BTreeSet<String>,
        subjects: std::collections::BTreeSet<String>,
        first: String,
        last: String,
    }
    let mut entries: BTreeMap<(String, String, String), Entry> = BTreeMap::new();
    for r in decisions {
        let forwarded = r["outcome"]["action"] == "forwarded";
        let findings = r["findings"].as_array().cloned().unwrap_or_default();
        if !forwarded || findings.is_empty() {
            continue;
        }
        let d = &r["destination"];
        let basis: Vec<&str> = r["basis"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key = (
            str_of(d, &["country"]).to_owned(),
            str_of(d, &["entity"]).to_owned(),
            if basis.is_empty() {
                "none".into()
            } else {
                basis.join(" + ")
            },
        );
        let e = entries.entry(key).or_default();
        e.count += 1;
        for f in &findings {
            e.categories.insert(str_of(f, &["category"]).to_owned());
        }
        for j in r["subject"]["jurisdictions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(j) = j.as_str() {
                e.subjects.insert(j.to_owned());
            }
        }
        let t = str_of(r, &["time"]).to_owned();
        if e.first.is_empty() || t < e.first {
            e.first = t.clone();
        }
        if t > e.last {
            e.last = t;
        }
    }
    let mut s = format!(
        "{} transfer groups observed\n\n{:<8} {:<16} {:<34} {:<12} {:<24} {:>7}  FIRST / LAST\n",
        entries.len(),
        "COUNTRY",
        "RECIPIENT",
        "BASIS",
        "SUBJECTS",
        "CATEGORIES",
        "COUNT"
    );
    for ((country, entity, basis), e) in &entries {
        let cats: Vec<&str> = e.categories.iter().map(String::as_str).collect();
        let subjects: Vec<&str> = e.subjects.iter().map(String::as_str).collect();
        s.push_str(&format!(
            "{country:<8} {entity:<16} {basis:<34} {:<12} {:<24} {:>7}  {} / {}\n",
            subjects.join(","),
            cats.join(","),
            e.count,
            e.first,
            e.last
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_still_being_written_is_not_read_and_a_bad_whole_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let region = dir.path().join("eu");
        std::fs::create_dir(&region).unwrap();
        let record =
            r#"{"schema":"domicile.decision/1","decision_id":"a","time":"2026-01-01T00:00:00Z"}"#;
        let path = region.join("decisions.jsonl");
        std::fs::write(&path, format!("{record}\n{{\"schema\":\"domi")).unwrap();
        let trail = read_dir(dir.path()).unwrap();
        assert_eq!(trail.decisions.len(), 1);
        // A whole line that is not JSON is not skipped: the file is damaged.
        std::fs::write(&path, format!("{record}\nnot json\n")).unwrap();
        let Err(e) = read_dir(dir.path()) else {
            panic!("a damaged line is an error");
        };
        assert!(e.to_string().contains("decisions.jsonl:2:"), "{e}");
    }
}
