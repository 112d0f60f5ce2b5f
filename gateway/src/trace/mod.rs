//! Phase 8, trace: the decision record is written durably before the request takes effect
//! (forwarded upstream, or answered with 451). If it cannot be written, the request fails
//! closed with 503 and nothing is forwarded.
//!
//! - [`record`], [`json`]: the decision record and its fast JSON writer.
//! - [`writer`]: chained, rotated, durable files per home region; [`verify`] checks them.
//!   `append` writes a region's file for the `none`-durability flusher, with direct I/O where
//!   the file system allows.
//! - [`refusal`]: records for requests answered before a decision.
//! - [`otel`]: OpenTelemetry spans and metrics, `traceparent` for backends.
//! - [`read`], [`replay`]: the `domicile trace` commands and the admin queries.
//! - [`review`]: the review page on the admin listener.

mod append;
pub mod json;
pub mod otel;
pub mod read;
pub mod record;
pub mod refusal;
pub mod replay;
pub mod review;
mod shared_prefix;
pub mod verify;
pub mod writer;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use domicile_regions::client_addr::{AddrSource, truncate};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::body::Body;
use crate::context::{Action, RequestContext};
use crate::metrics as m;
use crate::problem::Problem;
use crate::step::PhaseFuture;
use record::{
    DecisionRecord, DestinationRecord, GatewayInfo, InspectionRecord, OutcomeRecord, SubjectRecord,
};
pub use writer::TraceWriter;

/// The directory name for subjects with no resolved home region.
pub const UNRESOLVED_REGION: &str = "unresolved";

/// Builds [`Trace`].
#[derive(Debug, Clone)]
pub struct TraceLayer {
    writer: TraceWriter,
    instance: Arc<str>,
    spans: bool,
}

impl TraceLayer {
    /// `spans`: whether requests carry an OpenTelemetry span (`[trace.otel]` is set), which
    /// the decision is put on and whose context goes upstream.
    pub fn new(writer: TraceWriter, instance: Arc<str>, spans: bool) -> TraceLayer {
        TraceLayer {
            writer,
            instance,
            spans,
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            writer: self.writer.clone(),
            instance: self.instance.clone(),
            spans: self.spans,
            inner,
        }
    }
}

/// The trace phase.
#[derive(Debug, Clone)]
pub struct Trace<S> {
    writer: TraceWriter,
    instance: Arc<str>,
    spans: bool,
    inner: S,
}

/// The record for a request (serialised without `prev_hash`/`hash` by its `write_json`) and
/// the region whose store holds it; `None` when no decision was made.
pub fn record_of<'a>(
    req: &'a Request<Body>,
    ctx: &'a RequestContext,
    instance: &'a str,
) -> Option<(Arc<str>, DecisionRecord<'a>)> {
    let decision = ctx.decision.as_ref()?;
    let route = ctx.route.and_then(|n| ctx.snapshot.route(n))?;
    let region = ctx
        .destination
        .as_ref()
        .and_then(|r| ctx.snapshot.registry.get(r));
    let (outcome, status) = match &ctx.action {
        Some(a @ Action::Respond(p)) => (a.outcome(), Some(p.status)),
        Some(a) => (a.outcome(), None),
        None => ("unavailable", Some(503)),
    };
    let region_dir = record_region(ctx);
    let empty_j: &[domicile_policy::Country] = &[];
    let empty_e: &[domicile_regions::Evidence] = &[];
    let record = DecisionRecord {
        schema: record::SCHEMA,
        decision_id: &ctx.decision_id,
        time: crate::clock::rfc3339_micros(ctx.received_micros),
        gateway: GatewayInfo {
            instance,
            region: ctx.snapshot.config.server.region.as_deref(),
            listen: &ctx.conn.local_text,
        },
        policy_revision: &ctx.snapshot.revision,
        route: &route.id,
        // Extension methods are client text: recorded only when short.
        method: Some(req.method().as_str())
            .filter(|m| m.len() <= 16)
            .unwrap_or("EXTENSION"),
        purpose: &route.purpose,
        subject: SubjectRecord {
            jurisdictions: ctx
                .resolution
                .as_ref()
                .map_or(empty_j, |r| &r.jurisdictions),
            regimes: &decision.regimes,
            conflict: ctx.resolution.as_ref().is_some_and(|r| r.conflict),
            evidence: ctx.resolution.as_ref().map_or(empty_e, |r| &r.evidence),
            client_address: match ctx.client.as_ref() {
                Some(c) if c.source == AddrSource::Peer => Some(ctx.conn.peer_truncated),
                Some(c) => c.ip.map(truncate),
                None => None,
            },
            client_address_source: match ctx.client.as_ref().map(|c| c.source) {
                Some(AddrSource::ForwardedFor) => "x_forwarded_for",
                Some(AddrSource::Forwarded) => "forwarded",
                _ => "peer",
            },
            forwarded_for_ignored: ctx.client.as_ref().is_some_and(|c| c.ignored_forwarded_for),
            forwarded_for_claimed: ctx.client.as_ref().and_then(|c| c.claimed).map(truncate),
            geoip_build_epoch: ctx.snapshot.geoip.as_ref().map(|g| g.build_epoch()),
            home_region: ctx.home_region.as_deref(),
            plausible: ctx.resolution.as_ref().map_or(&[], |r| &r.plausible),
            rule: ctx
                .resolution
                .as_ref()
                .map_or("strictest", |r| r.rule.as_str()),
            citizenship: ctx.resolution.as_ref().map_or(empty_j, |r| &r.citizenship),
            rejected_evidence: ctx.resolution.as_ref().map_or(&[], |r| &r.rejected),
            geoip_build_date: ctx.snapshot.geoip.as_deref().map(|g| g.build_date()),
            home_region_source: ctx.home_region.as_ref().map(|h| {
                match ctx.resolution.as_ref().and_then(|r| r.home_region.as_ref()) {
                    Some((r, s)) if r == h => s.as_str(),
                    _ => "jurisdiction",
                }
            }),
            directory: ctx.directory.as_str(),
            pseudonym: pseudonym(req, ctx, &region_dir),
        },
        inspection: InspectionRecord {
            status: &ctx.inspection.status,
            not_inspected: &ctx.inspection.not_inspected,
            unmapped_fields: &ctx.inspection.unmapped,
        },
        findings: &ctx.inspection.findings,
        destination: region.map(|r| DestinationRecord {
            region: &r.id,
            country: r.country,
            entity: &r.entity.id,
        }),
        verdict: decision.verdict.as_str(),
        reason_code: decision.reason_code,
        basis: &decision.basis,
        conditions: &decision.conditions,
        re_evaluate_at: decision.re_evaluate_at,
        reasons: &decision.reasons,
        enforced: ctx.enforced,
        outcome: OutcomeRecord {
            action: outcome,
            status,
        },
    };
    Some((region_dir, record))
}

/// The keyed pseudonym of the request's subject identifier, when one is configured and sent.
fn pseudonym(req: &Request<Body>, ctx: &RequestContext, region: &str) -> Option<String> {
    let p = ctx.snapshot.config.trace.extras.pseudonyms.as_ref()?;
    let id = req.headers().get(&p.header)?;
    p.pseudonym(region, id.as_bytes())
}

/// The region whose trace store holds this request's records: the subject's home region.
pub fn record_region(ctx: &RequestContext) -> Arc<str> {
    ctx.home_region
        .clone()
        .unwrap_or_else(|| Arc::from(UNRESOLVED_REGION))
}

impl<S> Service<Request<Body>> for Trace<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = PhaseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let Some(ctx) = crate::context::of(&req) else {
            return PhaseFuture::Answered {
                res: Some(crate::context::missing()),
            };
        };
        let traceparent = if self.spans {
            req.extensions()
                .get::<otel::RequestSpan>()
                .and_then(|span| annotate(span, ctx))
        } else {
            None
        };
        let Some((region, record)) = record_of(&req, ctx, &self.instance) else {
            // No decision was made (the request never reached the decide phase's output). Not
            // `trace_unavailable`: the trail works, and the refusal layer records this answer
            // as it records every answer made without a decision.
            return PhaseFuture::Answered {
                res: Some(
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "no decision was made for this request; nothing was forwarded",
                    )
                    .with_decision(&ctx.decision_id)
                    .into_response(),
                ),
            };
        };
        // Without fsync the record is written and chained into the trace buffer right here:
        // no allocation, no hand-off, no wait.
        let written = self
            .writer
            .append_now_with(&region, |out| record.write_json(out));
        // The record borrows the request: it is written (or queued) and dropped before the
        // request is changed, then the write's result decides what happens.
        let body = match written {
            Some(_) => Vec::new(),
            None => {
                let mut body = Vec::with_capacity(2048);
                record.write_json(&mut body);
                body
            }
        };
        drop(record);
        if let Some(tp) = traceparent {
            // The backend's spans continue the gateway's: it is their parent.
            req.headers_mut().insert(TRACEPARENT, tp);
        }
        if let Some(written) = written {
            return match written {
                Ok(()) => {
                    first_write(&mut req);
                    PhaseFuture::Inner {
                        fut: self.inner.call(req),
                    }
                }
                Err(e) => PhaseFuture::Answered {
                    res: Some(write_failed(decision_id_of(&req), &e)),
                },
            };
        }
        let decision_id = decision_id_of(&req).to_owned();
        let inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, inner);
        let writer = self.writer.clone();
        PhaseFuture::Boxed {
            fut: Box::pin(async move {
                if let Err(e) = writer.append(region, body).await {
                    return Ok(write_failed(&decision_id, &e));
                }
                first_write(&mut req);
                inner.call(req).await
            }),
        }
    }
}

/// The request's decision id (read again after the record that borrowed the request is gone).
fn decision_id_of(req: &Request<Body>) -> &str {
    crate::context::of(req).map_or("", |c| c.decision_id.as_str())
}

/// The record is written: a new subject's first write may now be stored in the directory.
fn first_write(req: &mut Request<Body>) {
    if let Some(ctx) = crate::context::of_mut(req) {
        crate::decide::commit_first_write(ctx);
    }
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Puts the decision on the request's span; returns the upstream `traceparent`.
fn annotate(span: &otel::RequestSpan, ctx: &RequestContext) -> Option<http::HeaderValue> {
    use opentelemetry::KeyValue;
    let list = |items: Vec<String>| items.join(",");
    let mut attrs = vec![
        KeyValue::new("domicile.decision_id", ctx.decision_id.clone()),
        KeyValue::new("domicile.policy_revision", ctx.snapshot.revision.clone()),
    ];
    if let Some(route) = ctx.route.and_then(|n| ctx.snapshot.route(n)) {
        attrs.push(KeyValue::new("domicile.route", route.id.to_string()));
    }
    if let Some(d) = &ctx.decision {
        attrs.push(KeyValue::new("domicile.verdict", d.verdict.as_str()));
        attrs.push(KeyValue::new("domicile.reason_code", d.reason_code));
        attrs.push(KeyValue::new(
            "domicile.basis",
            list(d.basis.iter().map(|b| b.to_string()).collect()),
        ));
    }
    if let Some(r) = &ctx.resolution {
        attrs.push(KeyValue::new(
            "domicile.subject.jurisdiction",
            list(
                r.jurisdictions
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
            ),
        ));
    }
    if let Some(region) = &ctx.destination {
        attrs.push(KeyValue::new(
            "domicile.destination.region",
            region.to_string(),
        ));
    }
    span.decision(attrs);
    span.traceparent()
}

pub(crate) fn write_failed(decision_id: &str, e: &writer::TraceError) -> Response<Body> {
    metrics::counter!(m::TRACE_WRITE_FAILURES).increment(1);
    tracing::error!(decision_id, error = %e, "decision record not written; failing closed");
    unavailable(decision_id, "the decision record could not be written")
}

fn unavailable(decision_id: &str, why: &str) -> Response<Body> {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "trace_unavailable",
        format!("{why}; nothing was forwarded"),
    )
    .with_decision(decision_id)
    .into_response()
}
