//! Prometheus metrics of the ingest path.

use cairn_model::ErrorCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type CodeLabels = Vec<(String, String)>;

/// Every metric Cairn exports, registered once.
pub struct Metrics {
    registry: Registry,
    pub events_accepted: Counter,
    pub events_duplicate: Counter,
    pub events_rejected: Family<CodeLabels, Counter>,
    pub profiles_merged: Counter,
    pub commit_events: Histogram,
    pub commit_seconds: Histogram,
    pub queue_events: Gauge,
    pub commit_failures: Counter,
    /// Group commits that succeeded (with `committed_events`, the mean transaction size).
    pub commits: Counter,
    /// Events (stored or duplicate) in successful group commits.
    pub committed_events: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let events_accepted = Counter::default();
        let events_duplicate = Counter::default();
        let events_rejected = Family::<CodeLabels, Counter>::default();
        let profiles_merged = Counter::default();
        let commit_events = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let queue_events = Gauge::default();
        let commit_failures = Counter::default();
        let commits = Counter::default();
        let committed_events = Counter::default();
        registry.register(
            "events_accepted",
            "Events durably stored",
            events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events dropped as duplicates of a stored messageId",
            events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Events or requests rejected, by error code",
            events_rejected.clone(),
        );
        registry.register(
            "profiles_merged",
            "Profiles merged into another by identity resolution",
            profiles_merged.clone(),
        );
        registry.register(
            "commit_batch_events",
            "Events per group commit",
            commit_events.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Time to apply and durably commit one group",
            commit_seconds.clone(),
        );
        registry.register(
            "ingest_queue_events",
            "Events waiting for the writer",
            queue_events.clone(),
        );
        registry.register(
            "commit_failures",
            "Group commits that failed (nothing of them was kept)",
            commit_failures.clone(),
        );
        registry.register("commits", "Group commits that succeeded", commits.clone());
        registry.register(
            "committed_events",
            "Events in successful group commits",
            committed_events.clone(),
        );
        for code in ErrorCode::ALL {
            drop(events_rejected.get_or_create(&code_labels(*code)));
        }
        Metrics {
            registry,
            events_accepted,
            events_duplicate,
            events_rejected,
            profiles_merged,
            commit_events,
            commit_seconds,
            queue_events,
            commit_failures,
            commits,
            committed_events,
        }
    }

    /// Counts `count` rejections with `code`.
    pub fn reject(&self, code: ErrorCode, count: u64) {
        self.events_rejected
            .get_or_create(&code_labels(code))
            .inc_by(count);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn code_labels(code: ErrorCode) -> CodeLabels {
    vec![("code".to_string(), code.as_str().to_string())]
}
