//! The ingest benchmark's figures: a table for people, one JSON object for scripts.

use super::http_load::LoadResult;
use super::raw::RawResult;
use super::usage::Usage;
use serde_json::{json, Value};

/// Targets from the ingest issue, for this 2-core class of machine.
pub const TARGET_EVENTS_PER_S: f64 = 100_000.0;
pub const TARGET_SINGLE_REQUESTS_PER_S: f64 = 10_000.0;
pub const TARGET_SINGLE_P99_MS: f64 = 25.0;
pub const TARGET_RATIO_TO_RAW: f64 = 0.5;

/// The machine the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
}

impl Machine {
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = proc_field(&cpuinfo, "model name")
            .unwrap_or("unknown")
            .to_string();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = proc_field(&meminfo, "MemTotal")
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0);
        Machine {
            cores,
            cpu_model,
            memory_mib: memory_kib / 1024,
        }
    }
}

/// The value of `key: value` in a `/proc` text file.
fn proc_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim())
    })
}

/// Everything one run measured.
pub struct IngestReport {
    pub machine: Machine,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub batch_size: u64,
    pub event_bytes: f64,
    pub batch_clients: usize,
    pub single_clients: usize,
    pub batch: LoadResult,
    pub single: LoadResult,
    /// The engine without HTTP and JSON (acknowledgement and apply).
    pub engine: RawResult,
    /// The log store alone.
    pub raw: RawResult,
    /// Peak RSS after the HTTP phases (server, clients and their pre-built bodies).
    pub peak_rss_http_mib: f64,
    /// Peak RSS over the whole run, raw phase included.
    pub peak_rss_total_mib: f64,
    pub total_s: f64,
}

impl IngestReport {
    /// HTTP batches ÷ the engine's raw limit (the ratio).
    pub fn ratio_to_raw(&self) -> f64 {
        ratio(self.batch.events_per_s(), self.engine.events_per_s())
    }

    /// HTTP batches ÷ the log store's append limit.
    pub fn ratio_to_log_store(&self) -> f64 {
        ratio(self.batch.events_per_s(), self.raw.events_per_s())
    }

    fn targets(&self) -> [(&'static str, String, bool); 4] {
        let batch = self.batch.events_per_s();
        let single = self.single.requests_per_s();
        let p99 = self.single.latency_ms(0.99);
        let ratio = self.ratio_to_raw();
        [
            (
                "batch events/s ≥ 100,000",
                thousands(batch),
                batch >= TARGET_EVENTS_PER_S,
            ),
            (
                "single requests/s ≥ 10,000",
                thousands(single),
                single >= TARGET_SINGLE_REQUESTS_PER_S,
            ),
            (
                "single p99 ≤ 25 ms",
                format!("{p99:.1} ms"),
                p99 <= TARGET_SINGLE_P99_MS,
            ),
            (
                "ratio to raw ≥ 0.5",
                format!("{ratio:.2}"),
                ratio >= TARGET_RATIO_TO_RAW,
            ),
        ]
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let machine = &self.machine;
        let mut lines = vec![
            format!(
                "cairn bench ingest: {} cores ({}), {:.1} GiB RAM; {:.0} s measured per phase after {:.0} s warm-up",
                machine.cores,
                machine.cpu_model,
                machine.memory_mib as f64 / 1024.0,
                self.duration_s,
                self.warmup_s
            ),
            format!(
                "events: Segment track, {:.0} bytes each, {} users; acknowledged only once durable (WAL, synchronous=FULL)",
                self.event_bytes,
                super::payload::USERS
            ),
            String::new(),
            format!(
                "{:<30} {:>7} {:>18} {:>8} {:>8} {:>6}  {:<28} {:>18}",
                "phase", "clients", "throughput", "p50 ms", "p99 ms", "cores", "log/apply/http/clients", "written KiB/event"
            ),
        ];
        let (batch, single, raw) = (&self.batch, &self.single, &self.raw);
        lines.push(row(
            &format!("batch   POST /v1/batch ×{}", self.batch_size),
            self.batch_clients,
            &format!("{} events/s", thousands(batch.events_per_s())),
            Some((batch.latency_ms(0.5), batch.latency_ms(0.99))),
            &batch.usage,
            batch.events,
        ));
        lines.push(row(
            "single  POST /v1/track",
            self.single_clients,
            &format!("{} req/s", thousands(single.requests_per_s())),
            Some((single.latency_ms(0.5), single.latency_ms(0.99))),
            &single.usage,
            single.events,
        ));
        lines.push(row(
            "engine  validated → ack + apply",
            self.batch_clients,
            &format!("{} events/s", thousands(self.engine.events_per_s())),
            None,
            &self.engine.usage,
            self.engine.events,
        ));
        lines.push(row(
            "raw     records → log store",
            1,
            &format!("{} events/s", thousands(raw.events_per_s())),
            None,
            &raw.usage,
            raw.events,
        ));
        lines.push(String::new());
        lines.push(format!(
            "batch phase: {} events in {:.1} s, {} requests, mean group commit {:.0} events ({} commits), {} errors",
            thousands(self.batch.events as f64),
            self.batch.window_s,
            thousands(self.batch.requests as f64),
            self.batch.mean_commit_events(),
            self.batch.commits,
            self.batch.errors
        ));
        lines.push(format!(
            "batch phase apply: {} events/s applied to profiles and timelines, {} events behind the log at the end of the window",
            thousands(self.batch.applied_per_s()),
            thousands(self.batch.apply_lag_at_end.max(0) as f64),
        ));
        lines.push(format!(
            "single phase: {} requests in {:.1} s, mean group commit {:.1} events, {} errors",
            thousands(self.single.requests as f64),
            self.single.window_s,
            self.single.mean_commit_events(),
            self.single.errors
        ));
        lines.push(format!(
            "raw phase: {} events in {:.1} s as {} transactions of ~{} events; \
             timed: appending the encoded records and the durable commit (WAL, fsync); \
             not timed: HTTP, JSON parsing, validation, encoding",
            thousands(self.raw.events as f64),
            self.raw.usage.wall_s,
            self.raw.transactions,
            self.batch.mean_commit_events().round(),
        ));
        lines.push(format!(
            "engine phase: {} events in {:.1} s, submitted by {} threads without HTTP or JSON, timed until all were applied",
            thousands(self.engine.events as f64),
            self.engine.usage.wall_s,
            self.batch_clients,
        ));
        lines.push(format!(
            "ratio batch ÷ engine raw limit: {:.2}; batch ÷ log store limit: {:.2}",
            self.ratio_to_raw(),
            self.ratio_to_log_store()
        ));
        lines.push(format!(
            "peak memory (RSS): {:.0} MiB through the HTTP phases (server and clients), {:.0} MiB over the whole run",
            self.peak_rss_http_mib, self.peak_rss_total_mib
        ));
        lines.push(String::new());
        lines.push("targets:".into());
        for (target, measured, met) in self.targets() {
            lines.push(format!(
                "  {:<30} {:>12}  {}",
                target,
                measured,
                if met { "met" } else { "MISSED" }
            ));
        }
        lines.join("\n")
    }

    /// Every figure as one JSON object.
    pub fn json(&self) -> Value {
        let roles = |cpu: &Usage| {
            json!({
                "log": round(cpu.role_cores("log"), 2), "apply": round(cpu.role_cores("apply"), 2),
                "wal": round(cpu.role_cores("wal"), 2), "http": round(cpu.role_cores("http"), 2),
                "clients": round(cpu.role_cores("clients"), 2), "other": round(cpu.role_cores("other"), 2),
            })
        };
        json!({
            "benchmark": "ingest",
            "events_per_s": round(self.batch.events_per_s(), 0),
            "batch_requests_per_s": round(self.batch.requests_per_s(), 0),
            "batch_p50_ms": round(self.batch.latency_ms(0.5), 2),
            "batch_p99_ms": round(self.batch.latency_ms(0.99), 2),
            "single_requests_per_s": round(self.single.requests_per_s(), 0),
            "single_p50_ms": round(self.single.latency_ms(0.5), 2),
            "single_p99_ms": round(self.single.latency_ms(0.99), 2),
            "raw_limit_events_per_s": round(self.engine.events_per_s(), 0),
            "log_store_limit_events_per_s": round(self.raw.events_per_s(), 0),
            "ratio_to_log_store": round(self.ratio_to_log_store(), 3),
            "apply_events_per_s": round(self.batch.applied_per_s(), 0),
            "apply_lag_events_at_end": self.batch.apply_lag_at_end,
            "ratio_to_raw": round(self.ratio_to_raw(), 3),
            "mean_commit_events": round(self.batch.mean_commit_events(), 1),
            "single_mean_commit_events": round(self.single.mean_commit_events(), 1),
            "raw_transactions": self.raw.transactions,
            "cpu_cores_batch": round(self.batch.usage.cores(), 2),
            "cpu_cores_single": round(self.single.usage.cores(), 2),
            "cpu_cores_raw": round(self.raw.usage.cores(), 2),
            "cpu_cores_engine": round(self.engine.usage.cores(), 2),
            "cpu_cores_by_thread": {
                "batch": roles(&self.batch.usage),
                "single": roles(&self.single.usage),
                "engine": roles(&self.engine.usage),
                "raw": roles(&self.raw.usage),
            },
            "store_written_kib_per_event": {
                "batch": round(kib_per_event(&self.batch.usage, self.batch.events), 2),
                "single": round(kib_per_event(&self.single.usage, self.single.events), 2),
                "engine": round(kib_per_event(&self.engine.usage, self.engine.events), 2),
                "raw": round(kib_per_event(&self.raw.usage, self.raw.events), 2),
            },
            "peak_rss_mib": round(self.peak_rss_http_mib, 1),
            "peak_rss_total_mib": round(self.peak_rss_total_mib, 1),
            "batch_events": self.batch.events,
            "single_requests": self.single.requests,
            "raw_events": self.raw.events,
            "errors": self.batch.errors + self.single.errors,
            "batch_size": self.batch_size,
            "event_bytes": round(self.event_bytes, 0),
            "batch_clients": self.batch_clients,
            "single_clients": self.single_clients,
            "nproc": self.machine.cores,
            "cpu_model": self.machine.cpu_model,
            "memory_mib": self.machine.memory_mib,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "batch_window_s": round(self.batch.window_s, 2),
            "single_window_s": round(self.single.window_s, 2),
            "raw_timed_s": round(self.raw.usage.wall_s, 2),
            "total_s": round(self.total_s, 1),
            "targets_met": self.targets().iter().all(|(_, _, met)| *met),
        })
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

/// One line of the table; `KiB/event` is what the store's threads wrote (WAL frames, WAL
/// checkpoint copies) per event.
fn row(
    label: &str,
    clients: usize,
    throughput: &str,
    latency: Option<(f64, f64)>,
    usage: &Usage,
    events: u64,
) -> String {
    let (p50, p99) = match latency {
        Some((p50, p99)) => (format!("{p50:.2}"), format!("{p99:.2}")),
        None => ("-".into(), "-".into()),
    };
    let roles = format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        usage.role_cores("log"),
        usage.role_cores("apply"),
        usage.role_cores("http"),
        usage.role_cores("clients")
    );
    format!(
        "{:<30} {:>7} {:>18} {:>8} {:>8} {:>6.2}  {:<28} {:>18.1}",
        label,
        clients,
        throughput,
        p50,
        p99,
        usage.cores(),
        roles,
        kib_per_event(usage, events)
    )
}

fn kib_per_event(usage: &Usage, events: u64) -> f64 {
    if events == 0 {
        0.0
    } else {
        usage.store_written_bytes() as f64 / 1024.0 / events as f64
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `123456.7` → `123,457`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_proc_fields_found() {
        assert_eq!(thousands(123_456.7), "123,457");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(
            proc_field("model name\t: AMD EPYC\nflags : x", "model name"),
            Some("AMD EPYC")
        );
        assert_eq!(round(1.23456, 2), 1.23);
    }
}
