//! The HTTP load generator: concurrent keep-alive clients posting pre-built bodies in a closed loop.
//!
//! Each client sends a request, waits for the acknowledgement (which Cairn sends only once the events
//! are durable), records the latency and sends the next. A phase runs a warm-up (connections opened,
//! the user pool's profiles created), then a measured window; only requests that complete inside the
//! window count.

use super::payload::RequestFactory;
use super::usage::{Snapshot, Usage};
use anyhow::Context;
use cairn_engine::Metrics;
use hdrhistogram::Histogram;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Highest latency the histograms hold, in microseconds (larger values are clamped).
const MAX_LATENCY_US: u64 = 60_000_000;
/// The write key `bench-key` as Basic auth user name with no password, as Segment libraries send it:
/// `base64("bench-key:")` (see [`super::harness::WRITE_KEY`]).
const AUTHORIZATION_VALUE: &str = "Basic YmVuY2gta2V5Og==";
/// Pause after a failed request so a broken server does not turn into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(5);

/// What one phase runs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Full URL of the endpoint.
    pub url: String,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one phase measured, over the measured window only.
#[derive(Debug)]
pub struct LoadResult {
    pub window_s: f64,
    pub requests: u64,
    /// Events acknowledged as stored (or as duplicates) by the server.
    pub events: u64,
    /// Events acknowledged during the warm-up.
    pub warmup_events: u64,
    /// Acknowledgement latency of each request, in microseconds.
    pub latency_us: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub usage: Usage,
    /// Group commits and the events in them, from the engine's metrics.
    pub commits: u64,
    pub committed_events: u64,
    /// Events the applier applied during the window (profiles, timelines).
    pub applied_events: u64,
    /// Events durable in the log but not yet applied when the window closed.
    pub apply_lag_at_end: i64,
}

impl LoadResult {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.window_s
    }

    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.window_s
    }

    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Events applied per second during the window.
    pub fn applied_per_s(&self) -> f64 {
        self.applied_events as f64 / self.window_s
    }

    /// Mean events per group commit in the window.
    pub fn mean_commit_events(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.committed_events as f64 / self.commits as f64
        }
    }
}

/// The window a completed request falls in.
const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

struct Shared {
    client: reqwest::Client,
    url: String,
    factory: Arc<RequestFactory>,
    window: AtomicU8,
    stop: AtomicBool,
}

/// One client's counts.
struct Tally {
    requests: u64,
    events: u64,
    warmup_events: u64,
    latency_us: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

#[derive(Deserialize)]
struct Ack {
    accepted: u64,
    duplicates: u64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("cannot create a latency histogram")
}

/// Runs one phase on the current runtime: `spec.clients` clients posting `factory`'s bodies.
pub async fn run(
    spec: &LoadSpec,
    factory: Arc<RequestFactory>,
    metrics: &Metrics,
) -> anyhow::Result<LoadResult> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(spec.clients)
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;
    let shared = Arc::new(Shared {
        client,
        url: spec.url.clone(),
        factory,
        window: AtomicU8::new(WARMUP),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..spec.clients)
        .map(|_| tokio::spawn(client_loop(shared.clone())))
        .collect();

    tokio::time::sleep(spec.warmup).await;
    let (before, commits_before, events_before, applied_before) = (
        Snapshot::take(),
        metrics.commits.get(),
        metrics.committed_events.get(),
        metrics.events_applied.get(),
    );
    shared.window.store(MEASURING, Ordering::Release);
    tokio::time::sleep(spec.duration).await;
    shared.window.store(DONE, Ordering::Release);
    let (after, commits_after, events_after, applied_after, lag) = (
        Snapshot::take(),
        metrics.commits.get(),
        metrics.committed_events.get(),
        metrics.events_applied.get(),
        metrics.apply_lag_events.get(),
    );
    shared.stop.store(true, Ordering::Release);

    let mut result = LoadResult {
        window_s: 0.0,
        requests: 0,
        events: 0,
        warmup_events: 0,
        latency_us: histogram()?,
        errors: 0,
        first_error: None,
        usage: before.until(&after),
        commits: commits_after - commits_before,
        committed_events: events_after - events_before,
        applied_events: applied_after - applied_before,
        apply_lag_at_end: lag,
    };
    result.window_s = result.usage.wall_s;
    for task in tasks {
        let tally = task.await.context("a client task panicked")??;
        result.requests += tally.requests;
        result.events += tally.events;
        result.warmup_events += tally.warmup_events;
        result.errors += tally.errors;
        result.first_error = result.first_error.or(tally.first_error);
        result
            .latency_us
            .add(&tally.latency_us)
            .context("cannot merge latency histograms")?;
    }
    Ok(result)
}

/// One client: post, wait for the acknowledgement, record, repeat until told to stop.
async fn client_loop(shared: Arc<Shared>) -> anyhow::Result<Tally> {
    let mut tally = Tally {
        requests: 0,
        events: 0,
        warmup_events: 0,
        latency_us: histogram()?,
        errors: 0,
        first_error: None,
    };
    while !shared.stop.load(Ordering::Acquire) {
        let body = shared.factory.next_body();
        let started = Instant::now();
        let outcome = post(&shared, body).await;
        let latency = started.elapsed();
        let window = shared.window.load(Ordering::Acquire);
        match outcome {
            Ok(acknowledged) if window == WARMUP => tally.warmup_events += acknowledged,
            Ok(acknowledged) if window == MEASURING => {
                tally.requests += 1;
                tally.events += acknowledged;
                tally
                    .latency_us
                    .saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            }
            Ok(_) => {}
            Err(error) => {
                if window == MEASURING {
                    tally.errors += 1;
                }
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{error:#}"));
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    Ok(tally)
}

/// Posts one body; returns the events the server acknowledged.
async fn post(shared: &Shared, body: Vec<u8>) -> anyhow::Result<u64> {
    let response = shared
        .client
        .post(&shared.url)
        .header(AUTHORIZATION, AUTHORIZATION_VALUE)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .context("request failed")?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("reading the response failed")?;
    if !status.is_success() {
        anyhow::bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    let ack: Ack = serde_json::from_slice(&bytes).context("unexpected acknowledgement")?;
    Ok(ack.accepted + ack.duplicates)
}
