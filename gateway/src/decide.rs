//! Phase 6, decide: ask the policy engine whether this subject's data, of the categories found,
//! for the route's purpose, may go to the candidate region today, and pick the destination.
//!
//! For `home` routes the candidates are the home regions of the subject's plausible
//! jurisdictions (strongest first), or every region when none has a home; the first region the
//! engine permits for *all* plausible jurisdictions is chosen. `fixed` and `any` routes have one
//! candidate.

use std::sync::Arc;

use domicile_policy::{Decision, Destination, Query, Reason, Verdict};
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
        let Some(ctx) = req.extensions_mut().get_mut::<RequestContext>() else {
            return Err(crate::context::missing());
        };
        decide(ctx);
        Ok(())
    }
}

fn decide(ctx: &mut RequestContext) {
    let snap = ctx.snapshot.clone();
    let Some(route) = ctx.route.and_then(|n| snap.route(n)) else {
        return;
    };
    let jurisdictions = ctx
        .resolution
        .as_ref()
        .map(|r| r.jurisdictions.clone())
        .unwrap_or_default();
    let home: Option<Arc<str>> = jurisdictions
        .iter()
        .find_map(|j| snap.registry.home_for(*j))
        .map(|r| r.id.clone());
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
                ),
            }],
        });
        return;
    }

    let candidates: Vec<Arc<str>> = match &route.placement {
        Placement::Any(r) | Placement::Fixed(r) => vec![r.clone()],
        Placement::Home => {
            let mut c: Vec<Arc<str>> = Vec::new();
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
            c
        }
    };
    // The first lawful candidate with a live backend. A lawful region that is down is
    // remembered: if no other lawful region can take the request, the answer is 503, never a
    // region where the transfer is unlawful.
    let mut first: Option<(Arc<str>, Decision)> = None;
    let mut lawful_but_down: Option<(Arc<str>, Decision)> = None;
    for region_id in &candidates {
        let Some(d) = evaluate_for(ctx, route, region_id) else {
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
    if let Some((down, _)) = &lawful_but_down {
        // Failover: any other region where the same transfer is lawful and that is up.
        let others: Vec<Arc<str>> = snap
            .registry
            .regions()
            .iter()
            .map(|r| r.id.clone())
            .filter(|r| !candidates.contains(r))
            .collect();
        for region_id in others {
            let Some(mut d) = evaluate_for(ctx, route, &region_id) else {
                continue;
            };
            if d.verdict.permits() && region_available(ctx, &region_id) {
                d.reasons.push(Reason {
                    step: "route",
                    rule: Arc::from("failover"),
                    finding: format!(
                        "{down} has no live backend; failed over to {region_id}, where this transfer is lawful"
                    ),
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
            ),
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
) -> Option<Decision> {
    let region = ctx.snapshot.registry.get(region_id)?;
    let jurisdictions: &[domicile_policy::Country] = ctx
        .resolution
        .as_ref()
        .map_or(&[], |r| r.jurisdictions.as_slice());
    let incomplete = ctx.resolution.as_ref().is_none_or(|r| r.address_unknown);
    let categories = ctx.inspection.categories();
    // Legal dates are days in the issuing authority's time zone; the knowledge base is
    // mostly EU law, so the day is taken in Brussels (CET/CEST).
    let at = crate::clock::brussels_date(ctx.received_micros.div_euclid(1_000_000));
    let q = Query {
        jurisdictions,
        incomplete,
        categories: &categories,
        purpose: &route.purpose,
        destination: Destination {
            region: &region.id,
            country: region.country,
            entity: &region.entity,
        },
        at,
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
                ),
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
                ),
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
