//! `cairn bench ingest`: sustained ingest throughput and acknowledgement latency over HTTP, against the
//! raw limit of the engine and store.
//!
//! 1. batch: clients post `/v1/batch` with 100 events each;
//! 2. single: more clients post one event each to `/v1/track`;
//! 3. engine: the same kind of events, already validated, submitted straight to the engine (no HTTP,
//!    no JSON) until all are applied: the raw limit the HTTP path is compared with;
//! 4. log store: the same events, already encoded, appended straight to a store's log in
//!    transactions as large as phase 1's mean group commit (see [`super::raw`]).
//!
//! Acknowledgement comes from the durable log; the applier derives profiles and timelines behind it.
//! The report gives the applier's rate in the batch window and how far behind the log it was at the end.
//!
//! Phases 1 and 2 share one in-process server on a fresh store; phases 3 and 4 get their own.

use super::harness::BenchServer;
use super::http_load::{self, LoadResult, LoadSpec};
use super::payload::{RequestFactory, Stream};
use super::raw::{self, RawSpec};
use super::report::{IngestReport, Machine};
use super::usage::{peak_rss_mib, CLIENT_THREADS};
use anyhow::{bail, Context};
use chrono::Utc;
use clap::Args;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Measured seconds per phase by default, and with `--quick`.
const DEFAULT_DURATION_S: f64 = 30.0;
const QUICK_DURATION_S: f64 = 8.0;
/// Warm-up seconds per HTTP phase by default, and with `--quick`.
const DEFAULT_WARMUP_S: f64 = 2.0;
const QUICK_WARMUP_S: f64 = 1.0;
/// Worker threads of the load generator's runtime.
const CLIENT_WORKERS: usize = 1;
/// Largest batch: 1,000 events of ~400 bytes stay under the 500 KB request limit.
const MAX_BATCH_SIZE: usize = 1_000;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Short phases (8 s each): the whole run takes under a minute.
    #[arg(long)]
    quick: bool,
    /// Also print every figure as one JSON object, as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Seconds measured per phase (default 30, or 8 with --quick).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Concurrent clients posting batches.
    #[arg(long, default_value_t = 16)]
    batch_clients: usize,
    /// Concurrent clients posting single events.
    #[arg(long, default_value_t = 64)]
    single_clients: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
}

/// Durations and sizes of one run, checked.
struct Plan {
    duration: Duration,
    warmup: Duration,
    batch_size: usize,
}

impl Plan {
    fn of(args: &IngestArgs) -> anyhow::Result<Plan> {
        let duration_s = args.duration.unwrap_or(if args.quick {
            QUICK_DURATION_S
        } else {
            DEFAULT_DURATION_S
        });
        if !(duration_s.is_finite() && duration_s > 0.0 && duration_s <= 3600.0) {
            bail!("--duration must be between 0 and 3600 seconds");
        }
        if args.batch_clients == 0 || args.single_clients == 0 {
            bail!("--batch-clients and --single-clients must be at least 1");
        }
        if !(1..=MAX_BATCH_SIZE).contains(&args.batch_size) {
            bail!("--batch-size must be between 1 and {MAX_BATCH_SIZE}");
        }
        let warmup_s = if args.quick {
            QUICK_WARMUP_S
        } else {
            DEFAULT_WARMUP_S
        };
        Ok(Plan {
            duration: Duration::from_secs_f64(duration_s),
            warmup: Duration::from_secs_f64(warmup_s),
            batch_size: args.batch_size,
        })
    }
}

pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let plan = Plan::of(&args)?;
    let report = measure(&args, &plan)?;
    println!("{}", report.table());
    if args.json {
        println!("{}", report.json());
    }
    Ok(())
}

/// Runs the three phases.
fn measure(args: &IngestArgs, plan: &Plan) -> anyhow::Result<IngestReport> {
    let started = Instant::now();
    let machine = Machine::detect();
    eprintln!(
        "cairn bench ingest: {} cores, {:.0} s per phase (+{:.0} s warm-up); starting a server on a fresh store",
        machine.cores,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    let (batch, single, batch_factory) = http_phases(args, plan)?;
    let peak_rss_http_mib = peak_rss_mib();

    let group_events = batch.mean_commit_events().round().max(1.0) as usize;
    let spec = RawSpec {
        group_events,
        warmup_events: batch.warmup_events,
        duration: plan.duration,
    };
    eprintln!(
        "phase 3/4: raw engine limit, {} threads submitting validated events straight to the engine",
        args.batch_clients
    );
    let engine = raw::run_engine(&spec, args.batch_clients)?;
    eprintln!("  {:.0} events/s", engine.events_per_s());
    eprintln!(
        "phase 4/4: raw log store limit, transactions of {group_events} events on a fresh store"
    );
    let raw = raw::run(&spec)?;
    eprintln!("  {:.0} events/s", raw.events_per_s());

    Ok(IngestReport {
        machine,
        warmup_s: plan.warmup.as_secs_f64(),
        duration_s: plan.duration.as_secs_f64(),
        batch_size: batch_factory.events_per_request(),
        event_bytes: batch_factory.mean_event_bytes(),
        batch_clients: args.batch_clients,
        single_clients: args.single_clients,
        batch,
        single,
        engine,
        raw,
        peak_rss_http_mib,
        peak_rss_total_mib: peak_rss_mib(),
        total_s: started.elapsed().as_secs_f64(),
    })
}

/// Phases 1 and 2 against one in-process server; returns their results and the batch body factory.
fn http_phases(
    args: &IngestArgs,
    plan: &Plan,
) -> anyhow::Result<(LoadResult, LoadResult, Arc<RequestFactory>)> {
    let server = BenchServer::start()?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_WORKERS)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .context("cannot start the client runtime")?;
    let metrics = server.metrics();
    let now = Utc::now();

    let batch_factory = Arc::new(RequestFactory::batch(Stream::Batch, plan.batch_size, now));
    eprintln!(
        "phase 1/3: {} clients posting /v1/batch with {} events each",
        args.batch_clients, plan.batch_size
    );
    let batch_spec = spec(&server, "/v1/batch", args.batch_clients, plan);
    let batch = clients.block_on(http_load::run(&batch_spec, batch_factory.clone(), &metrics))?;
    check("batch", &batch)?;
    eprintln!(
        "  {:.0} events/s, p99 {:.1} ms",
        batch.events_per_s(),
        batch.latency_ms(0.99)
    );

    let single_factory = Arc::new(RequestFactory::single(Stream::Single, now));
    eprintln!(
        "phase 2/3: {} clients posting /v1/track with one event each",
        args.single_clients
    );
    let single_spec = spec(&server, "/v1/track", args.single_clients, plan);
    let single = clients.block_on(http_load::run(&single_spec, single_factory, &metrics))?;
    check("single", &single)?;
    eprintln!(
        "  {:.0} requests/s, p99 {:.1} ms",
        single.requests_per_s(),
        single.latency_ms(0.99)
    );

    drop(clients);
    server.stop()?;
    Ok((batch, single, batch_factory))
}

fn spec(server: &BenchServer, path: &str, clients: usize, plan: &Plan) -> LoadSpec {
    LoadSpec {
        url: server.url(path),
        clients,
        warmup: plan.warmup,
        duration: plan.duration,
    }
}

/// Fails the run if a phase stored nothing; warns about errors otherwise.
fn check(phase: &str, result: &LoadResult) -> anyhow::Result<()> {
    let first_error = result.first_error.as_deref().unwrap_or("none");
    if result.events == 0 {
        bail!("the {phase} phase stored nothing; first error: {first_error}");
    }
    if result.errors > 0 {
        eprintln!(
            "warning: {} {phase} requests failed; first error: {first_error}",
            result.errors
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_measures_every_phase_and_reports_the_required_figures() {
        let args = IngestArgs {
            quick: true,
            json: true,
            duration: Some(0.5),
            batch_clients: 2,
            single_clients: 4,
            batch_size: 20,
        };
        let plan = Plan::of(&args).expect("valid plan");
        let report = measure(&args, &plan).expect("the benchmark runs");
        assert!(report.batch.events > 0 && report.single.requests > 0 && report.raw.events > 0);
        assert!(report.raw.transactions > 0);
        assert!(
            report.batch.applied_events > 0,
            "the applier applied events during the batch window"
        );
        let json = report.json();
        for key in [
            "events_per_s",
            "single_requests_per_s",
            "single_p99_ms",
            "raw_limit_events_per_s",
            "ratio_to_raw",
            "apply_events_per_s",
            "apply_lag_events_at_end",
            "mean_commit_events",
            "cpu_cores_batch",
            "peak_rss_mib",
            "nproc",
        ] {
            assert!(json[key].is_number(), "{key} missing from {json}");
        }
        assert!(!report.table().is_empty());
    }

    #[test]
    fn bad_arguments_are_refused() {
        let args = |duration, batch_size| IngestArgs {
            quick: false,
            json: false,
            duration,
            batch_clients: 1,
            single_clients: 1,
            batch_size,
        };
        assert!(Plan::of(&args(Some(0.0), 100)).is_err());
        assert!(Plan::of(&args(Some(f64::NAN), 100)).is_err());
        assert!(Plan::of(&args(None, 0)).is_err());
        assert!(Plan::of(&args(None, 100)).is_ok());
    }
}
