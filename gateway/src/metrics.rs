//! Metric names (one place) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "domicile_requests_total";
pub const DECISIONS: &str = "domicile_decisions_total";
pub const UPSTREAM_DURATION: &str = "domicile_upstream_duration_seconds";
pub const TRACE_WRITE_FAILURES: &str = "domicile_trace_write_failures_total";
pub const TRACE_OUTCOMES_DROPPED: &str = "domicile_trace_outcomes_dropped_total";
pub const CONFIG_RELOADS: &str = "domicile_config_reloads_total";
pub const CONFIG_REVISION: &str = "domicile_config_revision_info";
pub const FORWARDED_FOR_IGNORED: &str = "domicile_forwarded_for_ignored_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(UPSTREAM_DURATION.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    match handle() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}
