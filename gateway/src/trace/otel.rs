//! OpenTelemetry export: a span per request carrying the decision (verdict, basis, subject
//! jurisdiction, destination region, policy revision), a decision counter and a request
//! duration histogram, sent over OTLP (gRPC, HTTP/protobuf or HTTP/JSON) to a collector.
//!
//! The span continues the client's W3C `traceparent` when there is one, and the request sent
//! to the backend carries a `traceparent` naming the gateway's span, so the backend's spans
//! join the same trace. Nothing here holds a personal-data value: the attributes are the
//! record's own categorical fields.

use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::trace::{OtelConfig, OtlpProtocol};

/// The exporters, a tracer and the instruments.
#[derive(Debug)]
pub struct Otel {
    tracer: SdkTracer,
    traces: SdkTracerProvider,
    meters: SdkMeterProvider,
    propagator: TraceContextPropagator,
    decisions: Counter<u64>,
    duration: Histogram<f64>,
}

/// An exporter that could not be built.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter for {endpoint}: {message}")]
pub struct OtelError {
    endpoint: String,
    message: String,
}

/// The request's span, kept in the request's extensions for the phases that annotate it.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    pub cx: Context,
    started: Instant,
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

impl Otel {
    /// Builds the exporters. Must be called inside a Tokio runtime (gRPC needs one).
    pub fn start(cfg: &OtelConfig) -> Result<Otel, OtelError> {
        let err = |e: &dyn std::fmt::Display| OtelError {
            endpoint: cfg.endpoint.clone(),
            message: e.to_string(),
        };
        let resource = Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .build();
        let (spans, metrics) = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let spans = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .build()
                    .map_err(|e| err(&e))?;
                let metrics = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .build()
                    .map_err(|e| err(&e))?;
                (spans, metrics)
            }
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                let protocol = if cfg.protocol == OtlpProtocol::HttpJson {
                    Protocol::HttpJson
                } else {
                    Protocol::HttpBinary
                };
                // The blocking HTTP client owns a runtime of its own: build it off this one.
                let cfg = cfg.clone();
                std::thread::scope(|s| {
                    s.spawn(|| {
                        let spans = opentelemetry_otlp::SpanExporter::builder()
                            .with_http()
                            .with_protocol(protocol)
                            .with_endpoint(format!("{}/v1/traces", cfg.endpoint))
                            .with_timeout(cfg.timeout)
                            .build()
                            .map_err(|e| err(&e))?;
                        let metrics = opentelemetry_otlp::MetricExporter::builder()
                            .with_http()
                            .with_protocol(protocol)
                            .with_endpoint(format!("{}/v1/metrics", cfg.endpoint))
                            .with_timeout(cfg.timeout)
                            .build()
                            .map_err(|e| err(&e))?;
                        Ok((spans, metrics))
                    })
                    .join()
                    .unwrap_or_else(|_| {
                        Err(err(
                            &"the exporter could not be built (its thread panicked)",
                        ))
                    })
                })?
            }
        };
        let traces = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();
        let meters = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(cfg.metrics_interval)
                    .build(),
            )
            .with_resource(resource)
            .build();
        let meter = meters.meter("domicile");
        let decisions = meter
            .u64_counter("domicile.decisions")
            .with_description("Requests answered, by verdict and destination region")
            .build();
        let duration = meter
            .f64_histogram("domicile.request.duration")
            .with_unit("s")
            .with_description("Time from request to response head, by verdict")
            .build();
        Ok(Otel {
            tracer: traces.tracer("domicile"),
            traces,
            meters,
            propagator: TraceContextPropagator::new(),
            decisions,
            duration,
        })
    }

    /// Starts the span of a request, continuing the client's trace when it sent one.
    pub fn begin(&self, method: &http::Method, headers: &HeaderMap) -> RequestSpan {
        let parent = self.propagator.extract(&Headers(headers));
        let span = self
            .tracer
            .span_builder("domicile.request")
            .with_kind(SpanKind::Server)
            // Extension methods are client text: exported only when short, as records have them.
            .with_attributes([KeyValue::new(
                "http.request.method",
                Some(method.as_str())
                    .filter(|m| m.len() <= 16)
                    .unwrap_or("EXTENSION")
                    .to_owned(),
            )])
            .start_with_context(&self.tracer, &parent);
        RequestSpan {
            cx: parent.with_span(span),
            started: Instant::now(),
        }
    }

    /// Ends a request's span with its status, and counts it.
    pub fn end(
        &self,
        span: &RequestSpan,
        status: u16,
        verdict: &'static str,
        region: Option<&str>,
    ) {
        let s = span.cx.span();
        s.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            s.set_status(Status::error("the gateway answered with a server error"));
        }
        s.end();
        let region = region.unwrap_or("none").to_owned();
        self.decisions.add(
            1,
            &[
                KeyValue::new("verdict", verdict),
                KeyValue::new("destination_region", region),
            ],
        );
        self.duration.record(
            span.started.elapsed().as_secs_f64(),
            &[KeyValue::new("verdict", verdict)],
        );
    }

    /// Exports what is pending and stops the exporters. Blocks: call off the runtime's
    /// threads.
    pub fn shutdown(&self) {
        if let Err(e) = self.traces.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry spans not all exported at shutdown");
        }
        if let Err(e) = self.meters.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry metrics not all exported at shutdown");
        }
    }

    /// Exports what is pending now. Blocks: call off the runtime's threads.
    pub fn flush(&self) {
        let _ = self.traces.force_flush();
        let _ = self.meters.force_flush();
    }
}

impl RequestSpan {
    /// The `traceparent` for the upstream request: this span as the backend's parent.
    pub fn traceparent(&self) -> Option<HeaderValue> {
        let sc = self.cx.span().span_context().clone();
        if !sc.is_valid() {
            return None;
        }
        HeaderValue::from_str(&format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ))
        .ok()
    }

    /// Sets the decision's attributes.
    pub fn decision(&self, attrs: impl IntoIterator<Item = KeyValue>) {
        self.cx.span().set_attributes(attrs);
    }
}
