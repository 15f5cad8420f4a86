//! The raw limits: how fast the engine and the store take the same events with no HTTP and no JSON.
//!
//! [`run_engine`] (the limit the HTTP path is compared with): the same kind of events, parsed and
//! validated before timing, submitted straight to the engine's ingestor by as many threads as the
//! HTTP batch phase had clients, one 100-event request at a time. Timed: encoding for the log,
//! de-duplication, the group commit (WAL, fsync) and the applier behind it (identity, traits,
//! timelines), until every submitted event is applied. Not timed: HTTP, JSON parsing, validation.
//!
//! [`run`] (the store alone):
//! The events come from the same generator as the HTTP phases. Before timing they are parsed,
//! validated and encoded exactly as the server does (`parse_request`, `normalize`, the engine's log
//! encoding and compression), and cut into log records of one request each. Timed is only
//! [`LogWriter::append`] of groups as large as the HTTP batch phase's mean group commit: one durable
//! transaction (WAL, `synchronous=FULL`, fsync) per group, the same durability and transaction size
//! as the HTTP path, on a fresh store in its own temporary directory, warmed up with as many events
//! as the batch phase's warm-up stored.

use super::harness::{start_engine, WORKSPACE};
use super::payload::{RequestFactory, Stream};
use super::usage::{Snapshot, Usage};
use anyhow::Context;
use cairn_core::segment::{normalize, parse_request, Endpoint, Rejection};
use cairn_engine::codec::EncodedRequest;
use cairn_model::WorkspaceId;
use cairn_storage::{LogRecord, LogWriter, RecordKind};
use chrono::Utc;
use std::time::{Duration, Instant};

/// Events prepared per round; preparing happens between timed stretches, so memory stays bounded.
const ROUND_EVENTS: usize = 50_000;
/// Events per generated request body (one log record each, as the HTTP batch phase sends).
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
    let mut backend = cairn_store_sqlite::open(dir.path())
        .with_context(|| format!("cannot open a store in {}", dir.path().display()))?;
    let log = backend.log.as_mut();
    let factory = RequestFactory::batch(Stream::Raw, BODY_EVENTS, Utc::now());
    let group_records = spec.group_events.div_ceil(BODY_EVENTS).max(1);

    let mut warmup_left = usize::try_from(spec.warmup_events).unwrap_or(usize::MAX);
    while warmup_left > 0 {
        let events = warmup_left.min(ROUND_EVENTS);
        for mut group in prepare(&factory, events, group_records)? {
            append(log, &mut group)?;
        }
        warmup_left -= events;
    }

    let mut result = RawResult::default();
    while result.usage.wall_s < spec.duration.as_secs_f64() {
        let groups = prepare(&factory, ROUND_EVENTS, group_records)?;
        let remaining = spec
            .duration
            .saturating_sub(Duration::from_secs_f64(result.usage.wall_s));
        let before = Snapshot::take();
        let started = Instant::now();
        for mut group in groups {
            result.events += append(log, &mut group)?;
            result.transactions += 1;
            if started.elapsed() >= remaining {
                break;
            }
        }
        result.usage.add(&before.until(&Snapshot::take()));
    }
    Ok(result)
}

/// Requests of prepared messages kept for the engine phase; each submit clones one with fresh ids.
const ENGINE_POOL_REQUESTS: usize = 500;

/// The engine's limit: see the module documentation.
pub fn run_engine(spec: &RawSpec, clients: usize) -> anyhow::Result<RawResult> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-engine-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let engine = start_engine(dir.path())?;
    let factory = RequestFactory::batch(Stream::Raw, BODY_EVENTS, Utc::now());
    let pool = std::sync::Arc::new(prepare_messages(&factory, ENGINE_POOL_REQUESTS)?);
    let submitted = std::sync::atomic::AtomicU64::new(0);
    let submit_for = |duration: Duration, counted: bool| -> anyhow::Result<()> {
        let deadline = Instant::now() + duration;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..clients.max(1))
                .map(|client| {
                    let ingestor = engine.ingestor();
                    let pool = pool.clone();
                    let submitted = &submitted;
                    scope.spawn(move || -> anyhow::Result<()> {
                        let mut n = client;
                        while Instant::now() < deadline {
                            let mut request = pool[n % pool.len()].clone();
                            for (index, message) in request.iter_mut().enumerate() {
                                message.message_id = format!("raw-{client}-{n}-{index}");
                            }
                            n += clients;
                            let receipt = match ingestor
                                .submit_blocking(WorkspaceId::new(WORKSPACE), request)
                            {
                                Ok(receipt) => receipt,
                                // The applier is behind: wait for it like a client would.
                                Err(cairn_engine::EngineError::Overloaded) => {
                                    std::thread::sleep(Duration::from_millis(1));
                                    continue;
                                }
                                Err(error) => return Err(error.into()),
                            };
                            if counted {
                                submitted.fetch_add(
                                    receipt.accepted as u64,
                                    std::sync::atomic::Ordering::Relaxed,
                                );
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for worker in workers {
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a raw submitter panicked"))??;
            }
            Ok(())
        })
    };
    let warmup = Duration::from_secs_f64((spec.warmup_events as f64 / 100_000.0).clamp(0.5, 5.0));
    submit_for(warmup, false)?;
    engine.wait_until_applied(Duration::from_secs(60));
    let before = Snapshot::take();
    submit_for(spec.duration, true)?;
    engine.wait_until_applied(Duration::from_secs(120));
    let usage = before.until(&Snapshot::take());
    let events = submitted.load(std::sync::atomic::Ordering::Relaxed);
    engine.shutdown();
    Ok(RawResult {
        events,
        transactions: 0,
        usage,
    })
}

/// Generates, parses and validates `requests` requests of [`BODY_EVENTS`] messages.
fn prepare_messages(
    factory: &RequestFactory,
    requests: usize,
) -> anyhow::Result<Vec<Vec<cairn_model::NormalizedMessage>>> {
    let received_at = Utc::now();
    (0..requests)
        .map(|_| {
            let body =
                String::from_utf8(factory.next_body()).context("a generated body is not UTF-8")?;
            let parsed = parse_request(&body, Endpoint::Batch).map_err(rejected)?;
            parsed
                .messages
                .into_iter()
                .map(|message| {
                    message
                        .and_then(|message| normalize(message, &parsed.envelope, received_at))
                        .map_err(rejected)
                })
                .collect()
        })
        .collect()
}

/// Appends one group durably; returns its events.
fn append(log: &mut dyn LogWriter, group: &mut [LogRecord]) -> anyhow::Result<u64> {
    log.append(group).context("the raw store write failed")?;
    Ok(group.iter().map(|record| u64::from(record.count)).sum())
}

/// Generates, parses, validates and encodes `events` events into log records of one generated
/// request each, in groups of `group_records` records.
fn prepare(
    factory: &RequestFactory,
    events: usize,
    group_records: usize,
) -> anyhow::Result<Vec<Vec<LogRecord>>> {
    let received_at = Utc::now();
    let mut records = Vec::with_capacity(events / BODY_EVENTS + 1);
    let mut prepared = 0;
    while prepared < events {
        let body =
            String::from_utf8(factory.next_body()).context("a generated body is not UTF-8")?;
        let parsed = parse_request(&body, Endpoint::Batch).map_err(rejected)?;
        let messages = parsed
            .messages
            .into_iter()
            .map(|message| {
                message
                    .and_then(|message| normalize(message, &parsed.envelope, received_at))
                    .map_err(rejected)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let workspace = WorkspaceId::new(WORKSPACE);
        let keys = messages
            .iter()
            .map(|message| cairn_engine::codec::dedupe_key(&workspace, &message.message_id))
            .collect();
        let encoded = EncodedRequest::new(&messages);
        prepared += messages.len();
        records.push(LogRecord {
            seq: 0,
            kind: RecordKind::Messages,
            workspace,
            received_at_ms: received_at.timestamp_millis(),
            count: messages.len() as u32,
            keys,
            payload: encoded.payload(|_| true),
        });
    }
    let mut records = records.into_iter();
    let mut groups = Vec::new();
    loop {
        let group: Vec<_> = records.by_ref().take(group_records).collect();
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
