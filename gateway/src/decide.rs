//! Phase 6, decide: ask the policy engine whether this subject's data, of the categories found,
//! for the route's purpose, may go to the candidate region today, and pick the destination.
//!
//! For `home` routes the candidates are the home regions of the subject's plausible
//! jurisdictions (strongest first), or every region when none has a home; the first region the
//! engine permits for *all* plausible jurisdictions is chosen. `fixed` and `any` routes have one
//! candidate.

use std::sync::Arc;

use domicile_policy::{Decision, Destination, Facts, Query, Reason, Verdict};
use http::{Request, Response};

use crate::body::Body;
use crate::config::{Mode, OnUninspectable, Placement};
use crate::context::RequestContext;
use crate::inspect::InspectStatus;
use crate::step::{Step, StepLayer, StepService};

#[derive(Debug, Clone, Copy, Default)]
pub struct DecideStep;

pub type DecideLayer = StepLayer<DecideStep>;
pub type Decide<S> = StepService<DecideStep, S>;

impl Step for DecideStep {
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        let gpc = global_privacy_control(req.headers());
        let read = is_read(req.method());
        let write = is_write(req.method());
        let Some(ctx) = crate::context::of_mut(req) else {
            return Err(crate::context::missing());
        };
        decide(ctx, gpc, read);
        explain_resolution(ctx);
        if write {
            plan_first_write(ctx);
        }
        Ok(())
    }
}

/// `Sec-GPC: 1` is a Global Privacy Control opt-out of sale and sharing (11 CCR §7025); any
/// other value, or no header, means no preference.
pub fn global_privacy_control(headers: &http::HeaderMap) -> bool {
    crate::headers::all(headers, &crate::headers::SEC_GPC)
        .any(|v| v.as_bytes().trim_ascii() == b"1")
}

/// Reads may go to a route's `read_regions`; everything else is pinned to the home region.
fn is_read(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

/// Requests that store data: their first one stores the subject's home in the directory.
fn is_write(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// Puts the resolution rule at the head of the reason trail when the evidence conflicts.
fn explain_resolution(ctx: &mut RequestContext) {
    let Some(r) = ctx.resolution.as_ref() else {
        return;
    };
    if !r.conflict {
        return;
    }
    let Some(d) = ctx.decision.as_mut() else {
        return;
    };
    let plausible: Vec<String> = r
        .plausible
        .iter()
        .map(|p| format!("{} ({}%)", p.country, p.confidence))
        .collect();
    let finding = match r.rule {
        domicile_regions::ConflictRule::Strictest => format!(
            "the evidence points to {}; every plausible jurisdiction is evaluated and the strictest answer applies",
            plausible.join(", ")
        ),
        domicile_regions::ConflictRule::Precedence => {
            let kept: Vec<String> = r.jurisdictions.iter().map(ToString::to_string).collect();
            format!(
                "the evidence points to {}; by the configured precedence only {} (from the highest-ranked source) is evaluated",
                plausible.join(", "),
                kept.join(", ")
            )
        }
    };
    d.reasons.insert(
        0,
        Reason {
            step: "resolve",
            rule: Arc::from(match r.rule {
                domicile_regions::ConflictRule::Strictest => "resolve.strictest",
                domicile_regions::ConflictRule::Precedence => "resolve.precedence",
            }),
            finding: finding.into(),
        },
    );
}

/// Plans storing where a new subject's first write goes, when the directory is configured to:
/// the record says `stored`, and [`commit_first_write`] stores the entry once that record is
/// written (a request whose record fails gets 503 and leaves no entry behind).
fn plan_first_write(ctx: &mut RequestContext) {
    use crate::context::{DirectoryUse, PendingFirstWrite};
    use domicile_regions::directory::{DirectoryEntry, EntrySource};
    if ctx.directory != DirectoryUse::Absent || ctx.unavailable {
        return;
    }
    let snap = ctx.snapshot.clone();
    let (Some(_), Some(cfg)) = (&snap.directory, &snap.config.resolve.directory) else {
        return;
    };
    if !cfg.record_first_write {
        return;
    }
    let permits = ctx.decision.as_ref().is_some_and(|d| d.verdict.permits());
    let (Some(id), Some(region), Some(country)) = (
        ctx.subject_id.as_deref(),
        ctx.destination.as_ref(),
        ctx.resolution.as_ref().and_then(|r| r.primary()),
    ) else {
        return;
    };
    if !permits {
        return;
    }
    let entry = DirectoryEntry {
        home_region: region.to_string(),
        jurisdiction: country,
        source: EntrySource::FirstWrite,
        updated: (ctx.received_micros / 1_000_000).max(0) as u64,
        decision_id: Some(ctx.decision_id.clone()),
    };
    ctx.first_write = Some(PendingFirstWrite {
        subject: id.to_owned(),
        entry,
    });
    ctx.directory = DirectoryUse::Stored;
}

/// Stores a planned first write; called by the trace phase once the decision record is
/// written. The record already says `stored`: a store that fails now is counted in
/// `domicile_directory_errors_total` and logged (without the subject id), and one that finds
/// an entry stored meanwhile by a concurrent first write leaves that entry.
pub fn commit_first_write(ctx: &mut RequestContext) {
    let Some(pending) = ctx.first_write.take() else {
        return;
    };
    let Some(dir) = ctx.snapshot.directory.as_ref() else {
        return;
    };
    match dir.insert_new(&pending.subject, &pending.entry) {
        Ok(true) => {
            metrics::counter!(crate::metrics::DIRECTORY_FIRST_WRITES).increment(1);
        }
        Ok(false) => tracing::debug!(
            decision_id = %ctx.decision_id,
            "subject directory: a concurrent first write stored this subject's entry first"
        ),
        Err(e) => {
            metrics::counter!(crate::metrics::DIRECTORY_ERRORS).increment(1);
            tracing::warn!(
                decision_id = %ctx.decision_id,
                error = %e,
                "subject directory first-write store failed after the record said stored"
            );
        }
    }
}

fn decide(ctx: &mut RequestContext, gpc: bool, read: bool) {
    let snap = ctx.snapshot.clone();
    let Some(route) = ctx.route.and_then(|n| snap.route(n)) else {
        return;
    };
    let jurisdictions = ctx
        .resolution
        .as_ref()
        .map(|r| r.jurisdictions.clone())
        .unwrap_or_default();
    // The directory's (or a verified claim's) home region, else the home of the strongest
    // plausible jurisdiction.
    let vouched_home: Option<Arc<str>> = ctx
        .resolution
        .as_ref()
        .and_then(|r| r.home_region.as_ref())
        .map(|(r, _)| r.clone());
    let home: Option<Arc<str>> = vouched_home.clone().or_else(|| {
        jurisdictions
            .iter()
            .find_map(|j| snap.registry.home_for(*j))
            .map(|r| r.id.clone())
    });
    ctx.home_region = home.clone();
    ctx.enforced = route.mode == Mode::Enforce;

    if let InspectStatus::Uninspectable(why) = ctx.inspection.status
        && (route.on_uninspectable == OnUninspectable::Reject || why.always_rejected())
    {
        let rule = if why.always_rejected() {
            "the gateway refuses it on every route"
        } else {
            "the route rejects what it cannot inspect"
        };
        ctx.destination = home.clone();
        ctx.decision = Some(Decision {
            verdict: Verdict::Block,
            reason_code: "uninspectable",
            basis: Vec::new(),
            regimes: Vec::new(),
            conditions: Vec::new(),
            re_evaluate_at: None,
            reasons: vec![Reason {
                step: "inspect",
                rule: Arc::from("route.on_uninspectable"),
                finding: format!(
                    "the body could not be inspected ({}: {}); {rule} (route {})",
                    why.as_str(),
                    why.describe(),
                    route.id
                )
                .into(),
            }],
        });
        return;
    }

    let candidates: Vec<Arc<str>> = match &route.placement {
        Placement::Any(r) | Placement::Fixed(r) => vec![r.clone()],
        Placement::Home => {
            let mut c: Vec<Arc<str>> = Vec::new();
            if let Some(h) = &vouched_home
                && !c.contains(h)
            {
                c.push(h.clone());
            }
            for j in &jurisdictions {
                if let Some(r) = snap.registry.home_for(*j)
                    && !c.contains(&r.id)
                {
                    c.push(r.id.clone());
                }
            }
            if c.is_empty() {
                c = snap
                    .registry
                    .regions()
                    .iter()
                    .map(|r| r.id.clone())
                    .collect();
            }
            // Reads try the route's read regions first; each is taken only where lawful.
            if read && !route.read_regions.is_empty() {
                let mut with_reads: Vec<Arc<str>> = route.read_regions.clone();
                with_reads.extend(c.into_iter().filter(|r| !route.read_regions.contains(r)));
                c = with_reads;
            }
            c
        }
    };
    // The first lawful candidate with a live backend. A lawful region that is down is
    // remembered: if no other lawful region can take the request, the answer is 503, never a
    // region where the transfer is unlawful.
    // The categories found, once for every candidate evaluated below.
    let categories = ctx.inspection.categories();
    let mut first: Option<(Arc<str>, Decision)> = None;
    let mut lawful_but_down: Option<(Arc<str>, Decision)> = None;
    for region_id in &candidates {
        let Some(d) = evaluate_for(ctx, route, region_id, gpc, &categories) else {
            continue;
        };
        if d.verdict.permits() {
            if region_available(ctx, region_id) {
                ctx.destination = Some(region_id.clone());
                ctx.decision = Some(d);
                return;
            }
            if lawful_but_down.is_none() {
                lawful_but_down = Some((region_id.clone(), d));
            }
        } else if first.is_none() {
            first = Some((region_id.clone(), d));
        }
    }
    // Writes of a route with read regions are pinned to the home region: no failover.
    let pinned = !read && !route.read_regions.is_empty();
    if let Some((down, _)) = lawful_but_down.as_ref().filter(|_| !pinned) {
        // Failover: any other region where the same transfer is lawful and that is up.
        let others: Vec<Arc<str>> = snap
            .registry
            .regions()
            .iter()
            .map(|r| r.id.clone())
            .filter(|r| !candidates.contains(r))
            .collect();
        for region_id in others {
            let Some(mut d) = evaluate_for(ctx, route, &region_id, gpc, &categories) else {
                continue;
            };
            if d.verdict.permits() && region_available(ctx, &region_id) {
                d.reasons.push(Reason {
                    step: "route",
                    rule: Arc::from("failover"),
                    finding: format!(
                        "{down} has no live backend; failed over to {region_id}, where this transfer is lawful"
                    ).into(),
                });
                ctx.destination = Some(region_id);
                ctx.decision = Some(d);
                return;
            }
        }
    }
    if let Some((region, mut d)) = lawful_but_down {
        d.reasons.push(Reason {
            step: "route",
            rule: Arc::from("failover"),
            finding: format!(
                "{region} has no live backend, and no other region where this transfer is lawful is available"
            ).into(),
        });
        d.reason_code = "home_region_unavailable";
        ctx.unavailable = true;
        ctx.destination = Some(region);
        ctx.decision = Some(d);
        return;
    }
    if let Some((region, d)) = first {
        ctx.destination = Some(region);
        ctx.decision = Some(d);
    }
}

/// Whether a region has a backend that is not marked down.
fn region_available(ctx: &RequestContext, region: &str) -> bool {
    ctx.snapshot.pools.get(region).is_some_and(|p| p.has_live())
}

/// Evaluates the request's transfer to one region.
pub fn evaluate_for(
    ctx: &RequestContext,
    route: &crate::config::RouteConfig,
    region_id: &str,
    gpc: bool,
    categories: &[domicile_policy::Category],
) -> Option<Decision> {
    let region = ctx.snapshot.registry.get(region_id)?;
    let jurisdictions: &[domicile_policy::Country] = ctx
        .resolution
        .as_ref()
        .map_or(&[], |r| r.jurisdictions.as_slice());
    let incomplete = ctx.resolution.as_ref().is_none_or(|r| r.incomplete());
    // Legal dates are days in each regime's own time zone: the engine reads the instant.
    // `at` (Brussels) only names the day in messages about unmodelled jurisdictions.
    let secs = ctx.received_micros.div_euclid(1_000_000);
    let at = crate::clock::brussels_date(secs);
    let citizenship: &[domicile_policy::Country] = ctx
        .resolution
        .as_ref()
        .map_or(&[], |r| r.citizenship.as_slice());
    let q = Query {
        jurisdictions,
        // Citizenship evidence (a verified claim, a citizenship field) triggers regimes that
        // follow their citizens (Russia's 152-FZ).
        citizenship,
        incomplete,
        categories,
        purpose: &route.purpose,
        destination: Destination {
            region: &region.id,
            country: region.country,
            entity: &region.entity,
        },
        at,
        instant: Some(secs),
        facts: Facts {
            gpc,
            limit_sensitive: false,
            frequency: route.frequency,
            evidence: &route.evidence,
            exporter: ctx.snapshot.config.policy.exporter.as_deref(),
            contracts: &route.contracts,
            volume: None,
            manual: false,
        },
    };
    let mut d = ctx.snapshot.engine.evaluate(&q);
    if ctx.inspection.status == InspectStatus::Skipped {
        d.reasons.insert(
            0,
            Reason {
                step: "inspect",
                rule: route.rule.clone(),
                finding:
                    "the route is declared to carry no personal data; its body is not inspected"
                        .into(),
            },
        );
    }
    if let InspectStatus::Uninspectable(why) = ctx.inspection.status {
        d.reasons.insert(
            0,
            Reason {
                step: "inspect",
                rule: Arc::from("route.on_uninspectable"),
                finding: format!(
                    "the body could not be inspected ({}: {}); it is treated as personal data of unknown category, kept where no border is crossed",
                    why.as_str(),
                    why.describe()
                ).into(),
            },
        );
    }
    if !ctx.inspection.not_inspected.is_empty() {
        d.reasons.insert(
            0,
            Reason {
                step: "inspect",
                rule: route.rule.clone(),
                finding: format!(
                    "{} binary multipart part(s) forwarded without inspection (binary_parts = \"skip\")",
                    ctx.inspection.not_inspected.len()
                ).into(),
            },
        );
    }
    if ctx.inspection.tunnel {
        d.reasons.insert(
            0,
            Reason {
                step: "inspect",
                rule: route.rule.clone(),
                finding: "the request upgrades to a tunnel whose content cannot be inspected; it is treated as personal data of unknown category".into(),
            },
        );
    }
    Some(d)
}
