//! OpenTelemetry export: a span per request with the decision's attributes, decision metrics,
//! and the W3C trace context carried on to the backend; over OTLP/HTTP (JSON) to a collector
//! backend, and over OTLP/gRPC to an in-test gRPC collector (the OTLP trace and metrics
//! services).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use tonic::codegen::Service;

const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

async fn gateway(eu: &Backend, us: &Backend, collector: &Backend) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &dir.path().join("traces"), "")
        + &format!(
            "\n[trace.otel]\nendpoint = \"{}\"\nprotocol = \"http/json\"\nservice_name = \"domicile-test\"\n",
            collector.url()
        );
    Gateway::start(dir, &text, false).await
}

/// Every span the collector received, flattened.
fn spans(collector: &Backend) -> Vec<Value> {
    let mut out = Vec::new();
    for r in collector.received() {
        if r.path != "/v1/traces" {
            continue;
        }
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        for rs in v["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn str_attr<'a>(span: &'a Value, key: &str) -> &'a str {
    attr(span, key)
        .and_then(|v| v["stringValue"].as_str())
        .unwrap_or_else(|| panic!("no {key} in {span:#}"))
}

/// An allowed and a blocked request with personal data: their decision ids and the policy
/// revision they were decided under.
async fn allow_and_block(gw: &Gateway) -> (String, String, String) {
    let body = r#"{"email":"jane@example.com"}"#;
    let allowed = post_json(&gw.url("/customers"), "192.0.2.10", body).await;
    let blocked = post_json(&gw.url("/analytics"), "192.0.2.10", body).await;
    assert_eq!(
        (allowed.status.as_u16(), blocked.status.as_u16()),
        (200, 451)
    );
    let id = |r: &client::Reply| r.header("domicile-decision").unwrap().to_owned();
    let revision = gw.record(&id(&allowed))["policy_revision"]
        .as_str()
        .unwrap()
        .to_owned();
    (id(&allowed), id(&blocked), revision)
}

#[tokio::test]
async fn the_backend_receives_a_traceparent_continuing_the_clients_trace() {
    let (eu, us, collector) = (
        Backend::start("eu").await,
        Backend::start("us").await,
        Backend::start("collector").await,
    );
    let gw = gateway(&eu, &us, &collector).await;
    let req = http::Request::post(gw.url("/customers"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "192.0.2.10")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .body(Full::new(Bytes::from_static(
            b"{\"email\":\"jane@example.com\"}",
        )))
        .unwrap();
    let r = client::send(req, false).await;
    assert_eq!(r.status, 200);
    let got = eu.received();
    let tp = got[0].headers.get("traceparent").unwrap().to_str().unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], CLIENT_TRACE, "the trace id is the client's");
    assert_ne!(parts[2], CLIENT_SPAN, "the parent is the gateway's span");
    assert_eq!(parts[3], "01");
    gw.running.shutdown().await;
    // The gateway's span is the one the backend names as its parent, a child of the client's.
    let spans = spans(&collector);
    let span = spans
        .iter()
        .find(|s| s["spanId"] == parts[2])
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(span["traceId"], CLIENT_TRACE);
    assert_eq!(span["parentSpanId"], CLIENT_SPAN);
}

#[tokio::test]
async fn spans_and_metrics_carry_the_decision() {
    let (eu, us, collector) = (
        Backend::start("eu").await,
        Backend::start("us").await,
        Backend::start("collector").await,
    );
    let gw = gateway(&eu, &us, &collector).await;
    let (allowed_id, blocked_id, revision) = allow_and_block(&gw).await;
    // A long extension method is client text: exported as `EXTENSION`, as records have it.
    let long = "JANEDOEEXAMPLECOMSENTASAMETHOD";
    let req = format!("{long} /catalog/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = domicile_tests::client::raw(gw.running.addr, req.as_bytes()).await;
    gw.running.shutdown().await;
    let spans = spans(&collector);
    assert!(
        spans.iter().any(|s| attr(s, "http.request.method")
            .and_then(|v| v["stringValue"].as_str())
            == Some("EXTENSION")),
        "{spans:#?}"
    );
    for r in collector.received() {
        assert!(!String::from_utf8_lossy(&r.body).contains(long));
    }
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| {
                attr(s, "domicile.decision_id").and_then(|v| v["stringValue"].as_str()) == Some(id)
            })
            .unwrap_or_else(|| panic!("no span for {id}: {spans:#?}"))
    };
    let a = by_id(&allowed_id);
    assert_eq!(a["name"], "domicile.request");
    assert_eq!(str_attr(a, "domicile.verdict"), "allow");
    assert_eq!(str_attr(a, "domicile.basis"), "not_a_transfer:EEA");
    assert_eq!(str_attr(a, "domicile.subject.jurisdiction"), "DE");
    assert_eq!(str_attr(a, "domicile.destination.region"), "eu-central");
    assert_eq!(str_attr(a, "domicile.policy_revision"), revision);
    assert_eq!(
        attr(a, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    let b = by_id(&blocked_id);
    assert_eq!(str_attr(b, "domicile.verdict"), "block");
    assert_eq!(str_attr(b, "domicile.reason_code"), "no_transfer_basis");
    assert_eq!(str_attr(b, "domicile.basis"), "");
    assert_eq!(str_attr(b, "domicile.destination.region"), "us-east");
    assert_eq!(
        attr(b, "http.response.status_code").unwrap()["intValue"],
        "451"
    );
    // No value from the requests is in what was exported.
    for r in collector.received() {
        assert!(!String::from_utf8_lossy(&r.body).contains("jane@example.com"));
    }
    let metrics: String = collector
        .received()
        .iter()
        .filter(|r| r.path == "/v1/metrics")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(metrics.contains("\"domicile.decisions\""), "{metrics}");
    assert!(
        metrics.contains("\"domicile.request.duration\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_bad_otel_section_is_a_config_error_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = domicile_tests::two_regions(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        &dir.path().join("traces"),
        "\n[trace.otel]\nendpoint = \"collector:4318\"\nprotocol = \"zipkin\"\n",
    );
    let path = domicile_tests::write(dir.path(), "domicile.toml", &text);
    let err = domicile_gateway::Config::load(&path)
        .unwrap_err()
        .to_string();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let file = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:{}:12: trace.otel.endpoint: \"collector:4318\" is not an http:// or https:// URL",
            line_of("endpoint =")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:{}:12: trace.otel.protocol: unknown value \"zipkin\"; expected one of grpc, http/protobuf, http/json",
            line_of("protocol =")
        )),
        "{err}"
    );
}

/// What the collector received: spans, and the names of the metrics.
#[derive(Debug, Default, Clone)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut names = self.metrics.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves the OTLP trace and metrics services over h2c on 127.0.0.1:0; returns the URL.
async fn collector(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let traces = TraceServiceServer::new(received.clone());
    let metrics = MetricsServiceServer::new(received);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (traces, metrics) = (traces.clone(), metrics.clone());
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let (mut traces, mut metrics) = (traces.clone(), metrics.clone());
                async move {
                    let res =
                        if req.uri().path().starts_with(
                            "/opentelemetry.proto.collector.metrics.v1.MetricsService/",
                        ) {
                            metrics.call(req).await
                        } else {
                            traces.call(req).await
                        };
                    Ok::<_, Infallible>(res.unwrap_or_else(|never| match never {}))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn grpc_attr<'a>(span: &'a Span, key: &str) -> &'a AnyValue {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .unwrap_or_else(|| panic!("no {key} in {span:#?}"))
}

fn grpc_str_attr<'a>(span: &'a Span, key: &str) -> &'a str {
    match grpc_attr(span, key) {
        AnyValue::StringValue(s) => s,
        other => panic!("{key} is not a string: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_exported_over_grpc_carry_the_decision() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let received = Received::default();
    let endpoint = collector(received.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &dir.path().join("traces"), "")
        + &format!(
            "\n[trace.otel]\nendpoint = \"{endpoint}\"\nprotocol = \"grpc\"\nservice_name = \"domicile-grpc-test\"\n"
        );
    let gw = Gateway::start(dir, &text, false).await;
    let (allowed_id, blocked_id, revision) = allow_and_block(&gw).await;
    // Shutting down flushes the batch exporters.
    gw.running.shutdown().await;

    let spans = received.spans.lock().unwrap().clone();
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| {
                s.attributes.iter().any(|a| {
                    a.key == "domicile.decision_id"
                        && a.value.as_ref().and_then(|v| v.value.as_ref())
                            == Some(&AnyValue::StringValue(id.to_owned()))
                })
            })
            .unwrap_or_else(|| panic!("no span for {id}: {spans:#?}"))
    };
    let a = by_id(&allowed_id);
    assert_eq!(a.name, "domicile.request");
    assert_eq!(grpc_str_attr(a, "domicile.verdict"), "allow");
    assert_eq!(grpc_str_attr(a, "domicile.basis"), "not_a_transfer:EEA");
    assert_eq!(grpc_str_attr(a, "domicile.subject.jurisdiction"), "DE");
    assert_eq!(
        grpc_str_attr(a, "domicile.destination.region"),
        "eu-central"
    );
    assert_eq!(grpc_str_attr(a, "domicile.route"), "customers");
    assert_eq!(grpc_str_attr(a, "domicile.policy_revision"), revision);
    assert_eq!(
        grpc_attr(a, "http.response.status_code"),
        &AnyValue::IntValue(200)
    );
    let b = by_id(&blocked_id);
    assert_eq!(grpc_str_attr(b, "domicile.verdict"), "block");
    assert_eq!(
        grpc_str_attr(b, "domicile.reason_code"),
        "no_transfer_basis"
    );
    assert_eq!(grpc_str_attr(b, "domicile.destination.region"), "us-east");
    assert_eq!(
        grpc_attr(b, "http.response.status_code"),
        &AnyValue::IntValue(451)
    );
    // No value from the requests is in what was exported.
    assert!(!format!("{spans:?}").contains("jane@example.com"));
    let metrics = received.metrics.lock().unwrap().clone();
    assert!(
        metrics.iter().any(|m| m == "domicile.decisions"),
        "{metrics:?}"
    );
}
