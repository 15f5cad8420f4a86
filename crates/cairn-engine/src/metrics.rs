//! Prometheus metrics of the ingest and apply paths.

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
    /// Events applied to the state.
    pub events_applied: Counter,
    /// Time to apply one step of log records.
    pub apply_seconds: Histogram,
    /// Log records that could not be applied (skipped).
    pub apply_failures: Counter,
    /// Events committed to the log and not yet applied.
    pub apply_lag_events: Gauge,
    /// State checkpoints committed, their duration, and failures.
    pub checkpoints: Counter,
    pub checkpoint_seconds: Histogram,
    pub checkpoint_failures: Counter,
    /// Timer index entries (waiting enrollments, audience re-evaluations, left-behind entries).
    pub timers_waiting: Gauge,
    /// Heap the message-id de-duplication window holds (bytes, from its tables' capacities).
    pub dedupe_window_bytes: Gauge,
    /// Dispatcher: messages by channel and outcome (`sent`, `failed`, `retried`, `dead`).
    pub deliveries: Family<Vec<(String, String)>, Counter>,
    /// Dispatcher: messages left in doubt by a crash or a timeout, by channel and policy
    /// (`resend`, `drop`).
    pub deliveries_in_doubt: Family<Vec<(String, String)>, Counter>,
    /// Dispatcher: from the delivery decision to the provider's acceptance.
    pub delivery_seconds: Histogram,
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
        let events_applied = Counter::default();
        let apply_seconds = Histogram::new(exponential_buckets(0.00001, 2.0, 20));
        let apply_failures = Counter::default();
        let apply_lag_events = Gauge::default();
        let checkpoints = Counter::default();
        let checkpoint_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let checkpoint_failures = Counter::default();
        let timers_waiting = Gauge::default();
        let dedupe_window_bytes = Gauge::default();
        let deliveries = Family::<Vec<(String, String)>, Counter>::default();
        let deliveries_in_doubt = Family::<Vec<(String, String)>, Counter>::default();
        let delivery_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "events_accepted",
            "Events durably stored in the log",
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
            "Time to append and durably commit one group to the log",
            commit_seconds.clone(),
        );
        registry.register(
            "ingest_queue_events",
            "Events waiting for the log writer",
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
        registry.register(
            "events_applied",
            "Events applied to the state (profiles, timelines)",
            events_applied.clone(),
        );
        registry.register(
            "apply_step_seconds",
            "Time to apply one step of log records",
            apply_seconds.clone(),
        );
        registry.register(
            "apply_failures",
            "Log records that could not be applied and were skipped",
            apply_failures.clone(),
        );
        registry.register(
            "apply_lag_events",
            "Events durable in the log and not yet applied",
            apply_lag_events.clone(),
        );
        registry.register(
            "state_checkpoints",
            "State checkpoints committed",
            checkpoints.clone(),
        );
        registry.register(
            "state_checkpoint_seconds",
            "Time to write one state checkpoint",
            checkpoint_seconds.clone(),
        );
        registry.register(
            "state_checkpoint_failures",
            "State checkpoints that failed (retried)",
            checkpoint_failures.clone(),
        );
        registry.register(
            "timers_waiting",
            "Entries in the timer index (waiting enrollments and audience re-evaluations)",
            timers_waiting.clone(),
        );
        registry.register(
            "dedupe_window_bytes",
            "Heap the message-id de-duplication window holds, in bytes",
            dedupe_window_bytes.clone(),
        );
        registry.register(
            "deliveries",
            "Messages the dispatcher handled, by channel and outcome",
            deliveries.clone(),
        );
        registry.register(
            "deliveries_in_doubt",
            "Messages left in doubt (a crash or a timeout after sending), by channel and policy",
            deliveries_in_doubt.clone(),
        );
        registry.register(
            "delivery_seconds",
            "From the delivery decision to the provider's acceptance",
            delivery_seconds.clone(),
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
            events_applied,
            apply_seconds,
            apply_failures,
            apply_lag_events,
            checkpoints,
            checkpoint_seconds,
            checkpoint_failures,
            timers_waiting,
            dedupe_window_bytes,
            deliveries,
            deliveries_in_doubt,
            delivery_seconds,
        }
    }

    /// Counts `count` rejections with `code`.
    pub fn reject(&self, code: ErrorCode, count: u64) {
        self.events_rejected
            .get_or_create(&code_labels(code))
            .inc_by(count);
    }

    /// Counts one delivery outcome on a channel.
    pub fn delivered(&self, channel: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&vec![
                ("channel".to_string(), channel.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
    }

    /// Counts one message left in doubt on a channel, handled by `policy`.
    pub fn in_doubt(&self, channel: &str, policy: &str) {
        self.deliveries_in_doubt
            .get_or_create(&vec![
                ("channel".to_string(), channel.to_string()),
                ("policy".to_string(), policy.to_string()),
            ])
            .inc();
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
