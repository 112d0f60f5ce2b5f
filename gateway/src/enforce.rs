//! Phase 7, enforce: turn the verdict into an action: forward to the chosen region, or answer
//! 451 (the transfer is not permitted, with a detail that says why), 413/415/400 (uninspectable on a rejecting route) or 503. Nothing happens
//! yet: the trace phase records the decision before the action takes effect.

use http::{Request, Response, StatusCode};

use crate::body::Body;
use crate::config::OnUninspectable;
use crate::config::signals::{OnInvalidToken, TokenSource, TokensConfig};
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
        let Some(ctx) = crate::context::of_mut(req) else {
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
    // Named in refusals only: made when one is.
    let subject = || {
        ctx.resolution
            .as_ref()
            .map(|r| {
                r.jurisdictions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty())
    };
    // A token that does not verify (forged, expired, another issuer's) on a request that
    // carries personal data, whose jurisdiction the token would speak to, is refused before
    // any policy: like an uninspectable body, a fail-closed rule that dry runs keep. A bearer
    // token gets 401 with its challenge (RFC 6750); one in a cookie or another header, which
    // no challenge names, 403.
    if let Some((reason, tokens)) = invalid_token(ctx) {
        let location = &tokens.location;
        let bearer = tokens.source == TokenSource::Authorization;
        let status = if bearer {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        let mut p = Problem::new(
            status,
            "invalid_token",
            format!("the token in {location} did not verify ({reason}); nothing was forwarded"),
        )
        .with_reason(reason)
        .with_decision(&ctx.decision_id);
        p.invalid_bearer = bearer;
        p.subject_jurisdiction = subject();
        return Action::Respond(p);
    }
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
        p.subject_jurisdiction = subject();
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
        p.subject_jurisdiction = subject();
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
        blocked_detail(decision.reason_code, &place(ctx, &region)),
    )
    .with_reason(decision.reason_code)
    .with_decision(&ctx.decision_id);
    p.subject_jurisdiction = subject();
    p.destination_region = Some(region.to_string());
    Action::Respond(p)
}

/// Why the request's token did not verify, when `resolve.tokens.on_invalid` refuses such
/// requests and this one carries personal data. A token that verified but carries an unusable
/// claim value is not invalid.
fn invalid_token(ctx: &RequestContext) -> Option<(&'static str, &TokensConfig)> {
    let tokens = ctx.snapshot.config.resolve.tokens.as_ref()?;
    if tokens.on_invalid != OnInvalidToken::Reject || !ctx.inspection.personal() {
        return None;
    }
    ctx.invalid_token.map(|reason| (reason, tokens))
}

/// A region with its country, as the 451 detail names it: `us-east (US)`.
fn place(ctx: &RequestContext, region: &str) -> String {
    match ctx.snapshot.registry.get(region) {
        Some(r) => format!("{region} ({})", r.country),
        None => region.to_owned(),
    }
}

/// The 451 problem's `detail`: what stopped the transfer, in one sentence per reason code the
/// policy engine returns for a verdict that does not permit it. No request value is in it.
pub fn blocked_detail(reason_code: &str, destination: &str) -> String {
    let why = match reason_code {
        "no_transfer_basis" => "this transfer has no legal basis".to_owned(),
        "unverified_basis_only" => {
            "the only basis for this transfer is a knowledge-base row that is not verified, and the policy does not accept an unverified row as the sole basis".to_owned()
        }
        "jurisdiction_unknown" => {
            "the data subject's jurisdiction could not be worked out, and personal data of a subject whose law is unknown is not transferred".to_owned()
        }
        "regime_not_modelled" => {
            "the data subject's jurisdiction has no modelled data-protection regime, and the policy blocks unmodelled jurisdictions".to_owned()
        }
        "localisation_required" => format!(
            "the subject's law requires the primary copy of this data to be created in its home country, and {destination} is outside it; send it to a region there"
        ),
        "opted_out" => {
            "the request carries an opt-out preference signal (Global Privacy Control) that forbids this route's purpose wherever the data goes".to_owned()
        }
        "prohibited_transfer" => format!(
            "the law prohibits sending this data for this route's purpose to {destination}"
        ),
        "special_category_condition_missing" => {
            "the request holds special-category data, which needs its own condition (such as explicit consent) on file for this route, and none is".to_owned()
        }
        "evidence_missing" => {
            "the subject's law requires documented evidence for every transfer, and this route has none on file".to_owned()
        }
        "policy_override" => {
            "the configured policy forbids this transfer, although the law would allow it".to_owned()
        }
        "uninspectable" => {
            "the request body could not be inspected, and this route rejects what it cannot inspect".to_owned()
        }
        _ => "this transfer is not permitted".to_owned(),
    };
    format!("{why} ({reason_code}); nothing was forwarded")
}

#[cfg(test)]
mod tests {
    use super::blocked_detail;

    #[test]
    fn every_blocking_reason_code_has_its_own_sentence() {
        // Every code the policy engine gives a verdict that does not permit the transfer.
        let codes = [
            "no_transfer_basis",
            "unverified_basis_only",
            "jurisdiction_unknown",
            "regime_not_modelled",
            "localisation_required",
            "opted_out",
            "prohibited_transfer",
            "special_category_condition_missing",
            "evidence_missing",
            "policy_override",
            "uninspectable",
        ];
        let fallback = blocked_detail("something_new", "us-east (US)");
        assert_eq!(
            fallback,
            "this transfer is not permitted (something_new); nothing was forwarded"
        );
        let mut seen = std::collections::HashSet::new();
        for code in codes {
            let d = blocked_detail(code, "us-east (US)");
            assert!(
                d.ends_with(&format!(" ({code}); nothing was forwarded")),
                "{d}"
            );
            assert!(!d.starts_with("this transfer is not permitted"), "{d}");
            if code != "no_transfer_basis" {
                assert!(!d.contains("no legal basis"), "{d}");
            }
            let sentence = d.strip_suffix(&format!(" ({code}); nothing was forwarded"));
            assert!(seen.insert(sentence.map(str::to_owned)), "{d}");
        }
    }
}
