//! Metric names (one place) and the Prometheus recorder.

use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use domicile_policy::Country;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "domicile_requests_total";
pub const DECISIONS: &str = "domicile_decisions_total";
pub const UPSTREAM_DURATION: &str = "domicile_upstream_duration_seconds";
pub const TRACE_WRITE_FAILURES: &str = "domicile_trace_write_failures_total";
pub const TRACE_OUTCOMES_DROPPED: &str = "domicile_trace_outcomes_dropped_total";
pub const CONFIG_RELOADS: &str = "domicile_config_reloads_total";
pub const CONFIG_REVISION: &str = "domicile_config_revision_info";
pub const FORWARDED_FOR_IGNORED: &str = "domicile_forwarded_for_ignored_total";
pub const GEOIP_BUILD_EPOCH: &str = "domicile_geoip_build_epoch_seconds";
/// Tokens that were offered and did not verify, by reason.
pub const TOKENS_REJECTED: &str = "domicile_tokens_rejected_total";
/// Subject headers from peers that may not set them, stripped, by header.
pub const SUBJECT_HEADER_SPOOFS: &str = "domicile_subject_header_spoofs_total";
/// Subject-directory lookups and first-write stores that failed.
pub const DIRECTORY_ERRORS: &str = "domicile_directory_errors_total";
/// Requests shed because every live backend of the region was at its concurrency limit.
pub const UPSTREAM_SHED: &str = "domicile_upstream_shed_total";
/// Subjects stored in the directory on their first write.
pub const DIRECTORY_FIRST_WRITES: &str = "domicile_directory_first_writes_total";

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

// Per-request metrics are looked up in the recorder once per label set and thread, then
// incremented through the cached handle: no label allocation or registry lookup per request.
// A route or region is known by where its name lies, which the entry keeps alive: a request
// finds its handle without hashing the name or touching its reference count. A reload names
// them anew, so the caches are emptied when they grow past any one configuration's need.
type RequestKey = (usize, u16, &'static str);
type DecisionKey = (&'static str, Option<Country>, usize);

thread_local! {
    static REQUEST_COUNTERS: RefCell<HashMap<RequestKey, (Arc<str>, Counter)>> =
        RefCell::new(HashMap::default());
    static DECISION_COUNTERS: RefCell<HashMap<DecisionKey, (Arc<str>, Counter)>> =
        RefCell::new(HashMap::default());
    static UPSTREAM_HISTOGRAMS: RefCell<HashMap<usize, (Arc<str>, Histogram)>> =
        RefCell::new(HashMap::default());
}

/// How many handles a thread keeps per kind before it starts again.
const CACHED_HANDLES: usize = 4096;

/// Where a name lies: its identity while an entry holds it.
fn at(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>() as usize
}

/// The handle under `key` in `map`, made by `make` (with the name kept) the first time.
fn cached<'m, K: std::hash::Hash + Eq, H>(
    map: &'m mut HashMap<K, (Arc<str>, H)>,
    key: K,
    name: &Arc<str>,
    make: impl FnOnce() -> H,
) -> &'m H {
    if map.len() >= CACHED_HANDLES && !map.contains_key(&key) {
        map.clear();
    }
    &map.entry(key).or_insert_with(|| (name.clone(), make())).1
}

/// Counts a finished request (`route` is `None` when no route matched).
pub fn count_request(route: Option<&Arc<str>>, status: u16, verdict: &'static str) {
    static NONE: OnceLock<Arc<str>> = OnceLock::new();
    let route = route.unwrap_or_else(|| NONE.get_or_init(|| Arc::from("none")));
    REQUEST_COUNTERS.with(|c| {
        cached(&mut c.borrow_mut(), (at(route), status, verdict), route, || {
            metrics::counter!(REQUESTS, "route" => route.to_string(), "status" => status.to_string(), "verdict" => verdict)
        })
        .increment(1);
    });
}

/// Counts a decision (`subject` is the strongest plausible jurisdiction).
pub fn count_decision(verdict: &'static str, subject: Option<Country>, region: Option<&Arc<str>>) {
    static NONE: OnceLock<Arc<str>> = OnceLock::new();
    let region = region.unwrap_or_else(|| NONE.get_or_init(|| Arc::from("none")));
    DECISION_COUNTERS.with(|c| {
        cached(&mut c.borrow_mut(), (verdict, subject, at(region)), region, || {
            metrics::counter!(
                DECISIONS,
                "verdict" => verdict,
                "subject_jurisdiction" => subject.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                "destination_region" => region.to_string()
            )
        })
        .increment(1);
    });
}

/// Records an upstream round trip.
pub fn observe_upstream(region: &Arc<str>, seconds: f64) {
    UPSTREAM_HISTOGRAMS.with(|c| {
        cached(
            &mut c.borrow_mut(),
            at(region),
            region,
            || metrics::histogram!(UPSTREAM_DURATION, "region" => region.to_string()),
        )
        .record(seconds);
    });
}

/// Counts a request shed at a saturated region.
pub fn count_shed(region: &Arc<str>) {
    metrics::counter!(UPSTREAM_SHED, "region" => region.to_string()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_made_once_per_name_and_again_for_a_name_made_anew() {
        let mut map: HashMap<(usize, u16), (Arc<str>, usize)> = HashMap::default();
        let mut made = 0;
        let mut get = |map: &mut HashMap<_, _>, name: &Arc<str>, status| {
            *cached(map, (at(name), status), name, || {
                made += 1;
                made
            })
        };
        let route: Arc<str> = Arc::from("catalog");
        assert_eq!(get(&mut map, &route, 200), 1);
        assert_eq!(get(&mut map, &route.clone(), 200), 1);
        assert_eq!(get(&mut map, &route, 404), 2);
        // The same text from a reload is another name: its own entry, which keeps it alive
        // (a recorder hands both the same counter).
        let reloaded: Arc<str> = Arc::from("catalog");
        assert_eq!(get(&mut map, &reloaded, 200), 3);
        drop(reloaded);
        assert_eq!(map.len(), 3);
        assert!(map.values().all(|(name, _)| &**name == "catalog"));
    }

    #[test]
    fn a_full_cache_starts_again_rather_than_grow() {
        let mut map: HashMap<usize, (Arc<str>, ())> = HashMap::default();
        let names: Vec<Arc<str>> = (0..=CACHED_HANDLES)
            .map(|i| Arc::from(i.to_string()))
            .collect();
        for name in &names[..CACHED_HANDLES] {
            cached(&mut map, at(name), name, || ());
        }
        assert_eq!(map.len(), CACHED_HANDLES);
        // A name already there is found, not a reason to start again.
        cached(&mut map, at(&names[0]), &names[0], || ());
        assert_eq!(map.len(), CACHED_HANDLES);
        let last = &names[CACHED_HANDLES];
        cached(&mut map, at(last), last, || ());
        assert_eq!(map.len(), 1);
    }
}
