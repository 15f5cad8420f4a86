//! The raw store limit: how fast the engine's writer stores the same events with no HTTP and no JSON.
//!
//! The events come from the same generator as the HTTP phases and are parsed and validated
//! (`parse_request` + `normalize`) before timing. Timed is only [`Ingestor::submit_blocking`] of
//! groups of the size the HTTP batch phase committed on average: identity resolution, trait merge,
//! de-duplication, event append and profile update, one durable transaction (WAL, `synchronous=FULL`)
//! per group, exactly as in the HTTP path. One thread submits one group at a time, so each submit is
//! exactly one transaction. The store is fresh (its own temporary directory), as the HTTP phases'
//! was, and warmed up with as many events as the batch phase's warm-up stored.

use super::harness::{start_engine, WORKSPACE};
use super::payload::{RequestFactory, Stream};
use super::usage::{Snapshot, Usage};
use anyhow::Context;
use cairn_core::segment::{normalize, parse_request, Endpoint, Rejection};
use cairn_engine::Ingestor;
use cairn_model::{NormalizedMessage, WorkspaceId};
use chrono::Utc;
use std::time::{Duration, Instant};

/// Events prepared per round; preparing happens between timed stretches, so memory stays bounded.
const ROUND_EVENTS: usize = 50_000;
/// Events per generated request body (only a unit of generation here).
const BODY_EVENTS: usize = 100;

/// What the raw phase runs.
#[derive(Debug, Clone)]
pub struct RawSpec {
    /// Events per transaction.
    pub group_events: usize,
    /// Events stored before timing starts.
    pub warmup_events: u64,
    pub duration: Duration,
}

/// What the raw phase measured (timed stretches only).
#[derive(Debug, Default)]
pub struct RawResult {
    pub events: u64,
    pub transactions: u64,
    /// Group commits the engine counted; equals `transactions` when each submit was one transaction.
    pub engine_commits: u64,
    /// CPU over the timed stretches; its `wall_s` is the timed duration.
    pub usage: Usage,
}

impl RawResult {
    pub fn events_per_s(&self) -> f64 {
        if self.usage.wall_s > 0.0 {
            self.events as f64 / self.usage.wall_s
        } else {
            0.0
        }
    }
}

pub fn run(spec: &RawSpec) -> anyhow::Result<RawResult> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-raw-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let engine = start_engine(dir.path())?;
    let ingestor = engine.ingestor();
    let metrics = engine.metrics();
    let factory = RequestFactory::batch(Stream::Raw, BODY_EVENTS, Utc::now());
    let group_events = spec.group_events.max(1);

    let mut warmup_left = usize::try_from(spec.warmup_events).unwrap_or(usize::MAX);
    while warmup_left > 0 {
        let events = warmup_left.min(ROUND_EVENTS);
        for group in prepare(&factory, events, group_events)? {
            submit(&ingestor, group)?;
        }
        warmup_left -= events;
    }

    let mut result = RawResult::default();
    let commits_before = metrics.commits.get();
    let round_events = ROUND_EVENTS.div_ceil(group_events) * group_events;
    while result.usage.wall_s < spec.duration.as_secs_f64() {
        let groups = prepare(&factory, round_events, group_events)?;
        let remaining = spec
            .duration
            .saturating_sub(Duration::from_secs_f64(result.usage.wall_s));
        let before = Snapshot::take();
        let started = Instant::now();
        for group in groups {
            result.events += submit(&ingestor, group)?;
            result.transactions += 1;
            if started.elapsed() >= remaining {
                break;
            }
        }
        result.usage.add(&before.until(&Snapshot::take()));
    }
    result.engine_commits = metrics.commits.get() - commits_before;
    engine.shutdown();
    Ok(result)
}

/// Submits one group and waits until it is durable; returns the events stored or found duplicate.
fn submit(ingestor: &Ingestor, group: Vec<NormalizedMessage>) -> anyhow::Result<u64> {
    let receipt = ingestor
        .submit_blocking(WorkspaceId::new(WORKSPACE), group)
        .context("the raw store write failed")?;
    Ok((receipt.accepted + receipt.duplicates) as u64)
}

/// Generates, parses and validates `events` events, in groups of `group_events`.
fn prepare(
    factory: &RequestFactory,
    events: usize,
    group_events: usize,
) -> anyhow::Result<Vec<Vec<NormalizedMessage>>> {
    let received_at = Utc::now();
    let mut messages = Vec::with_capacity(events + BODY_EVENTS);
    while messages.len() < events {
        let body =
            String::from_utf8(factory.next_body()).context("a generated body is not UTF-8")?;
        let parsed = parse_request(&body, Endpoint::Batch).map_err(rejected)?;
        for message in parsed.messages {
            messages.push(
                message
                    .and_then(|message| normalize(message, &parsed.envelope, received_at))
                    .map_err(rejected)?,
            );
        }
    }
    messages.truncate(events);
    let mut messages = messages.into_iter();
    let mut groups = Vec::with_capacity(events.div_ceil(group_events));
    loop {
        let group: Vec<_> = messages.by_ref().take(group_events).collect();
        if group.is_empty() {
            return Ok(groups);
        }
        groups.push(group);
    }
}

fn rejected(rejection: Rejection) -> anyhow::Error {
    anyhow::anyhow!(
        "a generated event was rejected: {}: {}",
        rejection.code,
        rejection.message
    )
}
