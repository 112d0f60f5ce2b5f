//! Reading the decision trail: every file under a trace directory, chain verification, filters,
//! one decision with its reason trail, and counts. Used by `domicile trace ...`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
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

/// A `since` or `until` bound as records write their times (UTC, microseconds, fixed width),
/// so that comparing the two as text compares them as times; an RFC 3339 time with any offset,
/// or a date (its midnight UTC). An error says what was expected, not what was given.
pub fn time_bound(s: &str) -> Result<String, String> {
    crate::clock::parse_rfc3339(s.trim())
        .map(|m| crate::clock::rfc3339_micros(m).as_str().to_owned())
        .ok_or_else(|| {
            "expected an RFC 3339 time such as 2026-11-29T10:00:00Z or +02:00, or a date such as 2026-11-29".to_owned()
        })
}

/// What `list` keeps. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after `since` and before `until`, as [`time_bound`] writes them.
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
    kind_of_schema(r["schema"].as_str())
}

fn kind_of_schema(schema: Option<&str>) -> &'static str {
    match schema {
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

/// One whole line of a trace file, handed to a [`scan`]'s visitor.
pub struct Line<'a> {
    pub path: &'a Path,
    /// 1-based.
    pub number: usize,
    /// Without its newline.
    pub text: &'a str,
}

// Shown by where it is: a line is read to be checked, and need not be printed to be found.
impl std::fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Line({}:{})", self.path.display(), self.number)
    }
}

impl Line<'_> {
    /// The record on this line; a line that is not JSON is an error naming file and line.
    pub fn parse(&self) -> Result<Value, BadLine> {
        serde_json::from_str(self.text).map_err(|e| self.bad(e.to_string()))
    }

    fn bad(&self, message: String) -> BadLine {
        BadLine {
            path: self.path.display().to_string(),
            line: self.number,
            message,
        }
    }
}

/// Buffered bytes per file read.
const READ_BUFFER: usize = 256 * 1024;

/// Reads every whole line under `dir`, file by file in name order, one line in memory at a
/// time, and hands each to `visit` until it breaks. A last line still being written (no newline
/// yet) is not read. Files are known by their inode: once all listed files are read, the
/// directory is listed again and files not read yet (renamed by a rotation during the scan, or
/// begun since) are read too; none is read twice.
pub fn scan(
    dir: &Path,
    mut visit: impl FnMut(Line<'_>) -> Result<ControlFlow<()>, BadLine>,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;
    let mut read = std::collections::HashSet::new();
    for _ in 0..MAX_LISTINGS {
        let mut fresh = false;
        for path in files(dir)? {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                // Renamed since it was listed: the next listing has it under its new name.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", path.display()).into()),
            };
            let meta = file.metadata()?;
            if !read.insert((meta.dev(), meta.ino())) {
                continue;
            }
            fresh = true;
            let mut reader = std::io::BufReader::with_capacity(READ_BUFFER, file);
            let mut buf = Vec::new();
            let mut number = 0;
            loop {
                buf.clear();
                reader.read_until(b'\n', &mut buf)?;
                let Some(b'\n') = buf.pop() else {
                    // The end of the file, or a line still being written.
                    break;
                };
                number += 1;
                if buf.is_empty() {
                    continue;
                }
                let text = std::str::from_utf8(&buf).map_err(|e| BadLine {
                    path: path.display().to_string(),
                    line: number,
                    message: format!("not UTF-8: {e}"),
                })?;
                let line = Line {
                    path: &path,
                    number,
                    text,
                };
                if visit(line)?.is_break() {
                    return Ok(());
                }
            }
        }
        if !fresh {
            break;
        }
    }
    Ok(())
}

/// How many times a [`scan`] lists the directory: a trail rotating without pause is read as
/// far as this many listings found it.
const MAX_LISTINGS: usize = 4;

/// The schema a line names, read from its start without parsing it (the writer puts the
/// schema first); `None` when the line does not start with it.
fn schema_of(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"schema":""#)?;
    rest.get(..rest.find('"')?)
}

/// A record kept by [`records`], ordered by time, then by the order it was read in.
struct Kept {
    time: String,
    seq: usize,
    record: Value,
}

impl PartialEq for Kept {
    fn eq(&self, other: &Kept) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Kept) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Kept) -> std::cmp::Ordering {
        (&self.time, self.seq).cmp(&(&other.time, other.seq))
    }
}

/// Decision and refusal records under `dir` that pass `filter`, oldest first; with a `limit`,
/// only the oldest that many, and no more than that many are held while the files are read.
pub fn records(
    dir: &Path,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut kept = std::collections::BinaryHeap::new();
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut seq = 0;
    each(dir, filter, |record| {
        seq += 1;
        kept.push(Kept {
            time: str_of(&record, &["time"]).to_owned(),
            seq,
            record,
        });
        if kept.len() > limit {
            // The newest goes: the oldest `limit` are kept.
            kept.pop();
        }
    })?;
    Ok(kept
        .into_sorted_vec()
        .into_iter()
        .map(|k| k.record)
        .collect())
}

/// [`records`], each with a `kind` field (`decision` or `refusal`) added.
pub fn listing(
    dir: &Path,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut out = records(dir, filter, limit)?;
    for r in &mut out {
        let kind = kind_of(r);
        if let Some(o) = r.as_object_mut() {
            o.insert("kind".into(), Value::from(kind));
        }
    }
    Ok(out)
}

/// A decision or refusal record found by its id, and a decision's outcome line when there is one.
pub type Found = (Value, Option<Value>);

/// The decision or refusal record with this id, and a decision's outcome line when there is
/// one. Only lines that mention the id are parsed, and reading stops once both are found.
pub fn find(dir: &Path, id: &str) -> Result<Option<Found>, Box<dyn std::error::Error>> {
    let mut record: Option<Value> = None;
    let mut outcome: Option<Value> = None;
    if id.is_empty() {
        return Ok(None);
    }
    scan(dir, |line| {
        if !line.text.contains(id) {
            return Ok(ControlFlow::Continue(()));
        }
        let r = line.parse()?;
        if r["decision_id"] != id {
            return Ok(ControlFlow::Continue(()));
        }
        match kind_of(&r) {
            "refusal" => {
                record = Some(r);
                return Ok(ControlFlow::Break(()));
            }
            "decision" => record = Some(r),
            _ if r["schema"] == OUTCOME_SCHEMA => outcome = Some(r),
            _ => {}
        }
        Ok(if record.is_some() && outcome.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(record.map(|r| (r, outcome)))
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
            match (
                subj["forwarded_for_ignored"].as_bool(),
                subj["forwarded_for_claimed"].as_str(),
            ) {
                (Some(true), Some(claimed)) => {
                    format!("; an untrusted X-Forwarded-For claiming {claimed} was ignored")
                }
                (Some(true), None) => "; an untrusted X-Forwarded-For was ignored".to_owned(),
                _ => String::new(),
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

/// Counts by verdict, destination region and basis, learnt one record at a time.
#[derive(Debug, Default)]
pub struct Stats {
    decisions: usize,
    verdicts: BTreeMap<String, usize>,
    regions: BTreeMap<String, usize>,
    bases: BTreeMap<String, usize>,
}

impl Stats {
    pub fn add(&mut self, r: &Value) {
        self.decisions += 1;
        *self
            .verdicts
            .entry(str_of(r, &["verdict"]).to_owned())
            .or_default() += 1;
        *self
            .regions
            .entry(
                r["destination"]["region"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned(),
            )
            .or_default() += 1;
        *self.bases.entry(basis_of(r)).or_default() += 1;
    }

    pub fn report(&self) -> String {
        let mut s = format!("{} decisions\n", self.decisions);
        for (title, map) in [
            ("verdict", &self.verdicts),
            ("destination", &self.regions),
            ("basis", &self.bases),
        ] {
            s.push_str(&format!("\nby {title}:\n"));
            for (k, n) in map {
                s.push_str(&format!("  {n:>8}  {k}\n"));
            }
        }
        s
    }
}

/// A record's bases joined with ` + `, or `none`.
fn basis_of(r: &Value) -> String {
    let b: Vec<&str> = r["basis"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if b.is_empty() {
        "none".into()
    } else {
        b.join(" + ")
    }
}

/// An Article 30(1)(e)-style register of the transfers actually observed: forwarded decisions
/// with personal data, by destination country, recipient and basis, with the categories seen
/// and the first and last time; learnt one record at a time.
#[derive(Debug, Default)]
pub struct Register {
    entries: BTreeMap<(String, String, String), RegisterEntry>,
}

#[derive(Debug, Default)]
struct RegisterEntry {
    count: usize,
    categories: std::collections::BTreeSet<String>,
    subjects: std::collections::BTreeSet<String>,
    first: String,
    last: String,
}

impl Register {
    pub fn add(&mut self, r: &Value) {
        let forwarded = r["outcome"]["action"] == "forwarded";
        let Some(findings) = r["findings"].as_array().filter(|f| !f.is_empty()) else {
            return;
        };
        if !forwarded {
            return;
        }
        let d = &r["destination"];
        let key = (
            str_of(d, &["country"]).to_owned(),
            str_of(d, &["entity"]).to_owned(),
            basis_of(r),
        );
        let e = self.entries.entry(key).or_default();
        e.count += 1;
        for f in findings {
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
        let t = str_of(r, &["time"]);
        if e.first.is_empty() || t < e.first.as_str() {
            e.first = t.to_owned();
        }
        if t > e.last.as_str() {
            e.last = t.to_owned();
        }
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "{} transfer groups observed\n\n{:<8} {:<16} {:<34} {:<12} {:<24} {:>7}  FIRST / LAST\n",
            self.entries.len(),
            "COUNTRY",
            "RECIPIENT",
            "BASIS",
            "SUBJECTS",
            "CATEGORIES",
            "COUNT"
        );
        for ((country, entity, basis), e) in &self.entries {
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
}

/// Hands each decision or refusal record under `dir` that passes `filter` to `f`, in file
/// order, one record in memory at a time.
pub fn each(
    dir: &Path,
    filter: &Filter,
    mut f: impl FnMut(Value),
) -> Result<(), Box<dyn std::error::Error>> {
    scan(dir, |line| {
        // Outcome lines, and records of a kind the filter rules out, are not parsed.
        let schema = schema_of(line.text);
        let ruled_out = schema == Some(OUTCOME_SCHEMA)
            || filter
                .kind
                .as_deref()
                .is_some_and(|k| schema.is_some_and(|s| kind_of_schema(Some(s)) != k));
        if !ruled_out {
            let r = line.parse()?;
            if !kind_of(&r).is_empty() && filter.matches(&r) {
                f(r);
            }
        }
        Ok(ControlFlow::Continue(()))
    })
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
        let all = records(dir.path(), &Filter::default(), None).unwrap();
        assert_eq!(all.len(), 1);
        // A whole line that is not JSON is not skipped: the file is damaged.
        std::fs::write(&path, format!("{record}\nnot json\n")).unwrap();
        let Err(e) = records(dir.path(), &Filter::default(), None) else {
            panic!("a damaged line is an error");
        };
        assert!(e.to_string().contains("decisions.jsonl:2:"), "{e}");
    }

    fn line(kind: &str, id: &str, time: &str) -> String {
        format!(r#"{{"schema":"domicile.{kind}/1","decision_id":"{id}","time":"{time}"}}"#)
    }

    /// Two regions, each in time order, interleaved in time with each other.
    fn two_regions() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (region, times) in [("eu", [1, 3, 5, 7]), ("us", [2, 4, 6, 8])] {
            std::fs::create_dir(dir.path().join(region)).unwrap();
            let mut text = String::new();
            for t in times {
                let time = format!("2026-01-01T00:00:0{t}Z");
                let id = format!("{region}{t}");
                let kind = if t == 4 { "refusal" } else { "decision" };
                text.push_str(&line(kind, &id, &time));
                text.push('\n');
                if kind == "decision" {
                    text.push_str(&line("outcome", &id, &time));
                    text.push('\n');
                }
            }
            std::fs::write(dir.path().join(region).join("decisions.jsonl"), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_limited_listing_keeps_the_oldest_across_regions_in_time_order() {
        let dir = two_regions();
        let ids = |limit| -> Vec<String> {
            listing(dir.path(), &Filter::default(), limit)
                .unwrap()
                .iter()
                .map(|r| format!("{}:{}", r["kind"].as_str().unwrap(), r["decision_id"]))
                .collect()
        };
        assert_eq!(
            ids(Some(4)),
            [
                "decision:\"eu1\"",
                "decision:\"us2\"",
                "decision:\"eu3\"",
                "refusal:\"us4\""
            ]
        );
        assert_eq!(ids(None).len(), 8);
        assert!(ids(Some(0)).is_empty());
        let refusals = records(
            dir.path(),
            &Filter {
                kind: Some("refusal".into()),
                ..Filter::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(refusals.len(), 1);
        assert!(refusals[0].get("kind").is_none());
    }

    #[test]
    fn find_returns_a_decision_with_its_outcome_and_a_refusal_alone() {
        let dir = two_regions();
        let (d, o) = find(dir.path(), "us6").unwrap().unwrap();
        assert_eq!(d["schema"], "domicile.decision/1");
        assert_eq!(o.unwrap()["schema"], "domicile.outcome/1");
        let (r, o) = find(dir.path(), "us4").unwrap().unwrap();
        assert_eq!(r["schema"], "domicile.refusal/1");
        assert!(o.is_none());
        // An id that is part of another is not that other.
        assert!(find(dir.path(), "us").unwrap().is_none());
        assert!(find(dir.path(), "").unwrap().is_none());
    }

    #[test]
    fn a_file_renamed_by_a_rotation_during_a_scan_is_read_once_under_its_new_name() {
        let dir = two_regions();
        let us = dir.path().join("us");
        let mut seen = Vec::new();
        scan(dir.path(), |line| {
            if seen.is_empty() {
                // While `eu` is read, `us` rotates: its file is renamed before it was opened,
                // and a new one begins.
                std::fs::rename(us.join("decisions.jsonl"), us.join("decisions-1.jsonl")).unwrap();
                let newer = super::tests::line("decision", "us9", "2026-01-01T00:00:09Z");
                std::fs::write(us.join("decisions.jsonl"), format!("{newer}\n")).unwrap();
            }
            seen.push(
                line.parse().unwrap()["decision_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        // Eight `eu` lines, the new `us` file, then the renamed one: each line once.
        assert_eq!(seen.len(), 8 + 1 + 7, "{seen:?}");
        assert_eq!(seen.iter().filter(|id| *id == "us9").count(), 1);
        assert_eq!(seen.iter().filter(|id| *id == "us2").count(), 2);
    }
}
