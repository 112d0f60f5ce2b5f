//! Phase 7, enforce: turn the verdict into an action: forward to the chosen region, or answer
//! 451 (no legal basis), 413/415/400 (uninspectable on a rejecting route) or 503. Nothing happens
//! yet: the trace phase records the decision before the action takes effect.

use http::{Request, Response, StatusCode};

use crate::body::Body;
use crate::config::OnUninspectable;
use crate::context::{Action, RequestContext};
use crate::inspect::InspectStatus;
use crate::problem::Problem;
use crate::step::{Step, StepLayer, StepService};

#[derive(Debug, Clone, Copy, Default)]
pub struct EnforceStep;

pub type EnforceLayer = StepLayer<EnforceStep>;
pub type Enforce<S> = StepService<EnforceStep, S>;

impl Step for EnforceStep {
    fn run(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        let Some(ctx) = req.extensions_mut().get_mut::<RequestContext>() else {
            return Err(crate::context::missing());
        };
        ctx.action = Some(action(ctx));
        Ok(())
    }
}

fn action(ctx: &RequestContext) -> Action {
    let Some(decision) = &ctx.decision else {
        return Action::Respond(
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_decision",
                "no decision could be made for this request; nothing was forwarded",
            )
            .with_decision(&ctx.decision_id),
        );
    };
    let subject = ctx
        .resolution
        .as_ref()
        .map(|r| {
            r.jurisdictions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty());
    let rejects = ctx
        .route
        .and_then(|n| ctx.snapshot.route(n))
        .is_some_and(|r| r.on_uninspectable == OnUninspectable::Reject);
    // Rejecting what cannot be inspected is a fail-closed rule: dry runs keep it.
    if let InspectStatus::Uninspectable(why) = ctx.inspection.status
        && (rejects || why.always_rejected())
    {
        let mut p = Problem::new(
            why.status(),
            "uninspectable",
            format!(
                "the request body could not be inspected ({}); nothing was forwarded",
                why.as_str()
            ),
        )
        .with_reason(why.as_str())
        .with_decision(&ctx.decision_id);
        p.subject_jurisdiction = subject;
        return Action::Respond(p);
    }
    if ctx.unavailable {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "home_region_unavailable",
            "the region this data may go to is unavailable, and no other region where the transfer is lawful is; nothing was forwarded",
        )
        .with_reason("home_region_unavailable")
        .with_decision(&ctx.decision_id);
        p.subject_jurisdiction = subject;
        p.destination_region = ctx.destination.as_deref().map(str::to_owned);
        p.retry_after = Some(crate::upstream::RETRY_AFTER_SECS);
        return Action::Respond(p);
    }
    let Some(region) = ctx.destination.clone() else {
        return Action::Respond(
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_region",
                "no region is configured for this request; nothing was forwarded",
            )
            .with_decision(&ctx.decision_id),
        );
    };
    // A dry run forwards what enforcement would block on known facts, so a new policy can be
    // watched before it bites. What could not be inspected or resolved, and tunnels, still
    // never cross a border: those are fail-closed rules, not policy.
    let fail_closed = matches!(
        decision.reason_code,
        "uninspectable" | "jurisdiction_unknown" | "regime_not_modelled"
    ) || ctx.inspection.tunnel;
    if decision.verdict.permits() || (!ctx.enforced && !fail_closed) {
        return Action::Forward { region };
    }
    let mut p = Problem::new(
        StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
        "transfer_blocked",
        format!(
            "this transfer has no legal basis ({}); nothing was forwarded",
            decision.reason_code
        ),
    )
    .with_reason(decision.reason_code)
    .with_decision(&ctx.decision_id);
    p.subject_jurisdiction = subject;
    p.destination_region = Some(region.to_string());
    Action::Respond(p)
}
