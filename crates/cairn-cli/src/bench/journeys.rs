//! `cairn bench journeys`: events through journey evaluation, event-to-outbox latency at a fixed
//! offered load, timer firings, and what a waiting enrollment costs on disk and in RAM.
//!
//! The engine runs for real on a fresh SQLite store (WAL, `synchronous=FULL`: every event is in a
//! durable commit before it is applied) with a manual clock, so the timer phase moves time by hand
//! instead of waiting for it; there is no HTTP. Phases:
//!
//! 1. reference: a fresh engine with no journeys takes `profiles` events (one per profile) and then
//!    `events` of the mix (see [`workload`]); the mix's rate is the reference;
//! 2. journeys: another fresh engine, ten journeys published, the same events: `events_per_s`, and
//!    its ratio to the reference;
//! 3. latency: probe events for an entry → send journey offered at a fixed rate (10,000/s) by four
//!    paced submitters; the time from submitting a batch to its outbox rows appearing in the
//!    engine's outbox feed (`event_to_outbox_p50_ms` / `_p99_ms`);
//! 4. waiting cost: one event no journey looks at for each of `waiting[0]` profiles (twice: the
//!    first round grows what grows once, such as lists of changed profiles, and is not measured),
//!    then one timer probe event each (an enrollment waiting 10 minutes). The Rust heap in use (jemalloc's
//!    `stats.allocated`; SQLite allocates through glibc, so its page caches, which fill with
//!    whatever pages a checkpoint touched, are not in it), less the message-id window, which grows
//!    by doubling, and the state store's used pages are taken after each, with a checkpoint
//!    written and its copy freed; the second delta minus the first, per enrollment, is the cost of
//!    a waiting enrollment (the events' own cost, the same in both, cancels out);
//! 5. timers: for each size in `waiting`, that many enrollments wait (the first size's from phase
//!    4, each later size armed afresh, several per profile), the clock moves past their time and
//!    one tick fires them all (right after a checkpoint, so the periodic one does not stall it);
//!    `timers_per_s` is enrollments fired ÷ the time until the tick was applied.
//!
//! Events are submitted by two threads in requests of 100, as the HTTP batch path would, without
//! HTTP or JSON parsing (see [`super::raw`] for the same reference on the ingest path).

mod workload;

use super::report::Machine;
use super::usage::{peak_rss_mib, Snapshot};
use anyhow::{bail, Context};
use cairn_engine::journeys::Command;
use cairn_engine::{Clock, Engine, EngineError, EngineOptions, ManualClock};
use cairn_model::{NormalizedMessage, WorkspaceId};
use chrono::{TimeZone, Utc};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workload::EventFactory;

const WORKSPACE: &str = "bench";
/// Events per submitted request.
const REQUEST_EVENTS: usize = 100;
/// Submitting threads.
const SUBMITTERS: usize = 2;
/// Events prepared per round (bounds the memory of prepared events).
const ROUND_EVENTS: u64 = 200_000;
/// Most log records committed but not applied before submitters wait (keeps under the engine's
/// apply-lag limit, so no request is refused).
const MAX_LAG_RECORDS: u64 = 3_000;
/// The latency phase's offered load, and its submitters.
const OFFERED_EVENTS_PER_S: f64 = 10_000.0;
const LATENCY_SUBMITTERS: usize = 4;
const LATENCY_BATCH_EVENTS: usize = 100;
/// How long a phase may take to be applied before the benchmark gives up.
const APPLY_TIMEOUT: Duration = Duration::from_secs(1_800);

/// Targets from the journeys issue, for this 2-core class of machine.
const TARGET_EVENTS_PER_S: f64 = 50_000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_TIMERS_PER_S: f64 = 100_000.0;
const TARGET_DISK_BYTES: f64 = 300.0;
const TARGET_RAM_BYTES: f64 = 64.0;

#[derive(Debug, Args)]
pub struct JourneysArgs {
    /// Scaled down (100,000 profiles, 150,000 mixed events, 100,000 and 200,000 waiting
    /// enrollments, 4 s of latency probes): the whole run takes under a minute.
    #[arg(long)]
    quick: bool,
    /// Also print every figure as one JSON object, as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Profiles (default 1,000,000, or 100,000 with --quick).
    #[arg(long, value_name = "N")]
    profiles: Option<u64>,
    /// Mixed events through the journeys (default 2,000,000, or 150,000 with --quick).
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// Waiting enrollments fired by one tick, comma-separated (default 1000000,10000000, or
    /// 100000,200000 with --quick).
    #[arg(long, value_name = "N,N", value_delimiter = ',')]
    waiting: Option<Vec<u64>>,
    /// Seconds of latency probes at 10,000 events/s (default 20, or 4 with --quick).
    #[arg(long, value_name = "SECS")]
    latency_secs: Option<f64>,
}

/// Sizes of one run, checked.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    profiles: u64,
    events: u64,
    waiting: Vec<u64>,
    latency: Duration,
}

impl Plan {
    fn of(args: &JourneysArgs) -> anyhow::Result<Plan> {
        let (profiles, events, waiting, latency_s) = if args.quick {
            (100_000, 150_000, vec![100_000, 200_000], 4.0)
        } else {
            (1_000_000, 2_000_000, vec![1_000_000, 10_000_000], 20.0)
        };
        let plan = Plan {
            quick: args.quick,
            profiles: args.profiles.unwrap_or(profiles),
            events: args.events.unwrap_or(events),
            waiting: args.waiting.clone().unwrap_or(waiting),
            latency: Duration::from_secs_f64(
                args.latency_secs.unwrap_or(latency_s).clamp(0.5, 600.0),
            ),
        };
        if plan.profiles < 1_000 || plan.events == 0 {
            bail!("--profiles must be at least 1,000 and --events at least 1");
        }
        if plan.waiting.is_empty() || plan.waiting.contains(&0) {
            bail!("--waiting needs sizes of at least 1");
        }
        let mut sorted = plan.waiting.clone();
        sorted.sort_unstable();
        if sorted != plan.waiting {
            bail!("--waiting sizes must be in increasing order");
        }
        if plan.waiting[0] > plan.profiles {
            bail!("the first --waiting size cannot exceed --profiles (one enrollment per profile)");
        }
        Ok(plan)
    }

    /// Latency probe events: whole batches at the offered rate.
    fn latency_events(&self) -> u64 {
        let events = (OFFERED_EVENTS_PER_S * self.latency.as_secs_f64()) as u64;
        events.div_ceil(LATENCY_BATCH_EVENTS as u64) * LATENCY_BATCH_EVENTS as u64
    }
}

pub fn run(args: JourneysArgs) -> anyhow::Result<()> {
    let plan = Plan::of(&args)?;
    let report = measure(&plan)?;
    println!("{}", report.table());
    if args.json {
        println!("{}", report.json());
    }
    Ok(())
}

/// A fresh engine on a temporary store, with a manual clock and no ticker.
struct Bench {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    factory: EventFactory,
}

impl Bench {
    fn start() -> anyhow::Result<Bench> {
        let dir = tempfile::Builder::new()
            .prefix("cairn-bench-journeys-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let start = Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .context("the benchmark's start time")?;
        let clock = Arc::new(ManualClock::new(start));
        let backend = cairn_store_sqlite::open(dir.path())
            .with_context(|| format!("cannot open a store in {}", dir.path().display()))?;
        let options = EngineOptions {
            tick_interval: None,
            ..EngineOptions::default()
        };
        let engine =
            Engine::start(options, backend, clock.clone()).context("cannot start the engine")?;
        Ok(Bench {
            engine,
            factory: EventFactory::new(start)?,
            clock,
            dir,
        })
    }

    fn command(&self, command: Command) -> anyhow::Result<()> {
        let receipt = self
            .engine
            .ingestor()
            .submit_command_blocking(WorkspaceId::new(WORKSPACE), &command, self.clock.now())
            .context("a journey command was not committed")?;
        let outcome = self
            .engine
            .reader()
            .command_outcome(receipt.seq)
            .context("a journey command has no outcome")?;
        if !outcome.ok {
            bail!("a journey command was refused: {}", outcome.message);
        }
        Ok(())
    }

    /// Saves and publishes the ten journeys; returns (origin, id) of each.
    fn publish_all(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut published = Vec::new();
        for (origin, document) in workload::journeys()? {
            let id = document.id.clone();
            self.command(Command::SaveDraft {
                document: Box::new(document),
            })
            .with_context(|| format!("saving journey {id}"))?;
            self.command(Command::Publish {
                journey: id.clone(),
            })
            .with_context(|| format!("publishing journey {id}"))?;
            published.push((origin, id));
        }
        Ok(published)
    }

    /// Submits `count` events made by `make(index)` and waits until all are applied; returns the
    /// seconds of submitting and applying (preparing is not timed).
    fn feed(
        &mut self,
        count: u64,
        mut make: impl FnMut(&mut EventFactory, u64) -> NormalizedMessage,
    ) -> anyhow::Result<f64> {
        let mut timed = 0.0;
        let mut done = 0;
        while done < count {
            let round = (count - done).min(ROUND_EVENTS);
            let events: Vec<NormalizedMessage> = (done..done + round)
                .map(|index| make(&mut self.factory, index))
                .collect();
            let started = Instant::now();
            submit(&self.engine, events)?;
            if !self.engine.wait_until_applied(APPLY_TIMEOUT) {
                bail!("the applier did not catch up within {APPLY_TIMEOUT:?}");
            }
            timed += started.elapsed().as_secs_f64();
            done += round;
        }
        Ok(timed)
    }

    /// Populates one event per profile, then the mix; returns the mix's events per second.
    fn populate_and_mix(&mut self, plan: &Plan, label: &str) -> anyhow::Result<f64> {
        let profiles = plan.profiles;
        eprintln!("{label}: {profiles} profiles (one event each)");
        self.feed(profiles, |factory, n| factory.noise(n))?;
        eprintln!("{label}: {} mixed events", plan.events);
        let seconds = self.feed(plan.events, |factory, n| {
            factory.mixed(n, workload_user(n, profiles))
        })?;
        Ok(plan.events as f64 / seconds.max(1e-9))
    }

    /// Checkpoints and returns the bytes of the state store's files.
    fn state_bytes(&self) -> anyhow::Result<u64> {
        if !self.engine.checkpoint(APPLY_TIMEOUT) {
            bail!("the checkpoint was not written within {APPLY_TIMEOUT:?}");
        }
        used_bytes(&self.dir.path().join(cairn_store_sqlite::STATE_FILE))
    }

    /// Moves the clock to `at` and fires what is due with one tick; returns the seconds until the
    /// tick was applied.
    fn tick_at(&self, at: chrono::DateTime<Utc>) -> anyhow::Result<f64> {
        self.clock.set(at);
        let started = Instant::now();
        let receipt = self
            .engine
            .ingestor()
            .submit_tick_blocking(at)
            .context("the tick was not committed")?;
        if !self.engine.reader().wait_for(receipt.seq) {
            // `wait_for` gives up after the read barrier's timeout: keep waiting for the large ticks.
            if !self.engine.wait_until_applied(APPLY_TIMEOUT) {
                bail!("the tick was not applied within {APPLY_TIMEOUT:?}");
            }
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Heap bytes the engine's state holds now: the Rust heap in use
    /// ([`crate::allocator::allocated_bytes`]; SQLite's page caches are not in it) less the
    /// message-id window (its hash set grows by doubling: one doubling inside a phase would count
    /// megabytes of de-duplication keys).
    fn engine_heap_bytes(&self) -> anyhow::Result<u64> {
        let window = self.engine.metrics().dedupe_window_bytes.get().max(0) as u64;
        let heap = crate::allocator::allocated_bytes()
            .context("jemalloc does not report the bytes allocated")?;
        Ok(heap.saturating_sub(window))
    }

    fn waiting_timers(&self) -> i64 {
        self.engine.metrics().timers_waiting.get()
    }
}

/// Profile of mixed event `n`: spread over all profiles, deterministic.
fn workload_user(n: u64, profiles: u64) -> u64 {
    n.wrapping_mul(2_654_435_761) % profiles
}

/// Submits `events` in requests of [`REQUEST_EVENTS`] from [`SUBMITTERS`] threads.
fn submit(engine: &Engine, events: Vec<NormalizedMessage>) -> anyhow::Result<()> {
    let mut requests: Vec<Vec<Vec<NormalizedMessage>>> =
        (0..SUBMITTERS).map(|_| Vec::new()).collect();
    let mut events = events.into_iter().peekable();
    let mut index = 0;
    while events.peek().is_some() {
        requests[index % SUBMITTERS].push(events.by_ref().take(REQUEST_EVENTS).collect());
        index += 1;
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = requests
            .into_iter()
            .map(|mine| {
                let ingestor = engine.ingestor();
                let reader = engine.reader();
                scope.spawn(move || -> anyhow::Result<()> {
                    for request in mine {
                        loop {
                            let (committed, applied) = reader.positions();
                            if committed.saturating_sub(applied) < MAX_LAG_RECORDS {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        match ingestor.submit_blocking(WorkspaceId::new(WORKSPACE), request) {
                            Ok(_) => {}
                            Err(EngineError::Overloaded) => {
                                bail!("the engine refused a request as overloaded (lag limit)")
                            }
                            Err(error) => return Err(error.into()),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a submitter panicked"))??;
        }
        Ok(())
    })
}

/// Bytes of the pages a SQLite database uses (pages in use × page size, as its latest commit sees
/// them, WAL included; free pages and WAL overhead not counted).
fn used_bytes(path: &Path) -> anyhow::Result<u64> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} to measure it", path.display()))?;
    let pragma = |name: &str| -> anyhow::Result<u64> {
        connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0))
            .map(|value| value.max(0) as u64)
            .with_context(|| format!("PRAGMA {name} on {}", path.display()))
    };
    Ok(pragma("page_count")?.saturating_sub(pragma("freelist_count")?) * pragma("page_size")?)
}

/// The latency phase's figures.
#[derive(Debug, Default)]
struct Latency {
    offered_per_s: f64,
    achieved_per_s: f64,
    events: u64,
    rows: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    dropped_notices: bool,
}

/// One timer size's figures.
#[derive(Debug)]
struct TimerRun {
    waiting: u64,
    fired: u64,
    seconds: f64,
}

impl TimerRun {
    fn per_s(&self) -> f64 {
        self.fired as f64 / self.seconds.max(1e-9)
    }
}

struct JourneysReport {
    machine: Machine,
    plan: Plan,
    journeys: Vec<(&'static str, String)>,
    reference_events_per_s: f64,
    events_per_s: f64,
    latency: Latency,
    disk_bytes_per_waiting: f64,
    ram_bytes_per_waiting: f64,
    timers: Vec<TimerRun>,
    peak_rss_mib: f64,
    cpu_cores: f64,
    total_s: f64,
}

fn measure(plan: &Plan) -> anyhow::Result<JourneysReport> {
    let started = Instant::now();
    let before = Snapshot::take();
    let machine = Machine::detect();
    eprintln!(
        "cairn bench journeys: {} cores; {} profiles, {} mixed events, waiting {:?}{}",
        machine.cores,
        plan.profiles,
        plan.events,
        plan.waiting,
        if plan.quick {
            " (--quick: scaled down)"
        } else {
            ""
        }
    );

    let phase = Instant::now();
    let reference_events_per_s = {
        let mut reference = Bench::start()?;
        let rate = reference.populate_and_mix(plan, "reference (no journeys)")?;
        reference.engine.shutdown();
        rate
    };

    let mut bench = Bench::start()?;
    let journeys = bench.publish_all()?;
    eprintln!("reference done in {:.1} s", phase.elapsed().as_secs_f64());
    let events_per_s = bench.populate_and_mix(plan, "10 journeys")?;

    eprintln!(
        "latency: {OFFERED_EVENTS_PER_S:.0} events/s for {:.0} s",
        plan.latency.as_secs_f64()
    );
    let latency = latency_phase(&mut bench, plan)?;

    // Waiting cost: the same number of events, once for no journey and once each arming a timer,
    // after a first round for no journey that grows whatever grows once per event (lists of changed
    // profiles keep their capacity), so the measured rounds differ by the enrollments alone.
    let first = plan.waiting[0];
    eprintln!("waiting cost: {first} events for no journey, twice");
    bench.feed(first, |factory, n| factory.noise(n))?;
    // Past every timer the earlier phases could have set to fire within the timer probe's wait.
    let armed_at = bench.clock.now() + chrono::Duration::seconds(1);
    bench.clock.set(armed_at);
    let disk_0 = bench.state_bytes()?;
    let ram_0 = bench.engine_heap_bytes()?;
    bench.feed(first, |factory, n| factory.noise(n))?;
    let disk_1 = bench.state_bytes()?;
    let ram_1 = bench.engine_heap_bytes()?;
    let timers_before = bench.waiting_timers();
    eprintln!("waiting cost: {first} timer enrollments");
    bench.feed(first, |factory, n| factory.timer(n))?;
    let disk_2 = bench.state_bytes()?;
    let ram_2 = bench.engine_heap_bytes()?;
    let armed = bench.waiting_timers() - timers_before;
    if armed != first as i64 {
        bail!("{first} timer events armed {armed} timers");
    }
    let per = |zero: u64, one: u64, two: u64| {
        (two as f64 - one as f64 - (one as f64 - zero as f64)) / first as f64
    };
    let disk_bytes_per_waiting = per(disk_0, disk_1, disk_2);
    let ram_bytes_per_waiting = per(ram_0, ram_1, ram_2);

    // Timers: round 0 fires the enrollments armed above; every later round arms its size afresh
    // (several per profile: re-entry is concurrent) one second after the previous round's tick.
    let mut timers = Vec::new();
    let mut armed_at = armed_at;
    for (round, &size) in plan.waiting.iter().enumerate() {
        if round > 0 {
            armed_at = bench.clock.now() + chrono::Duration::seconds(1);
            bench.clock.set(armed_at);
            eprintln!("timers: arming {size} enrollments");
            let before = bench.waiting_timers();
            let profiles = plan.profiles;
            bench.feed(size, |factory, n| factory.timer(n % profiles))?;
            let armed = bench.waiting_timers() - before;
            if armed != size as i64 {
                bail!("{size} timer events armed {armed} timers");
            }
        }
        // A checkpoint now, so the periodic one (every 10 s, on the applier's thread) does not fall
        // into the timed tick: the tick measures firing, the latency phase shows checkpoint stalls.
        if !bench.engine.checkpoint(APPLY_TIMEOUT) {
            bail!("the checkpoint was not written within {APPLY_TIMEOUT:?}");
        }
        let due = bench.waiting_timers();
        eprintln!("timers: firing {size} waiting enrollments ({due} timers waiting in all)");
        let fire_at = armed_at + chrono::Duration::milliseconds(workload::TIMER_WAIT_MS + 1_000);
        let seconds = bench.tick_at(fire_at)?;
        let fired = (due - bench.waiting_timers()).max(0) as u64;
        timers.push(TimerRun {
            waiting: size,
            fired,
            seconds,
        });
    }
    let usage = before.until(&Snapshot::take());
    bench.engine.shutdown();
    Ok(JourneysReport {
        machine,
        plan: plan.clone(),
        journeys,
        reference_events_per_s,
        events_per_s,
        latency,
        disk_bytes_per_waiting,
        ram_bytes_per_waiting,
        timers,
        peak_rss_mib: peak_rss_mib(),
        cpu_cores: usage.cores(),
        total_s: started.elapsed().as_secs_f64(),
    })
}

/// Phase 3: see the module documentation.
fn latency_phase(bench: &mut Bench, plan: &Plan) -> anyhow::Result<Latency> {
    let reader = bench.engine.reader();
    let workspace = WorkspaceId::new(WORKSPACE);
    let batches = (plan.latency_events() / LATENCY_BATCH_EVENTS as u64) as usize;
    // Profile ids of the probe users, to match outbox rows (which carry the profile id) to batches.
    // A profile may get several probes (when there are fewer profiles than probes): in order.
    let mut batch_of: HashMap<String, VecDeque<usize>> = HashMap::new();
    let mut prepared: Vec<Vec<NormalizedMessage>> = Vec::with_capacity(batches);
    for batch in 0..batches {
        let mut request = Vec::with_capacity(LATENCY_BATCH_EVENTS);
        for slot in 0..LATENCY_BATCH_EVENTS {
            let user = (batch * LATENCY_BATCH_EVENTS + slot) as u64 % plan.profiles;
            let profile = reader
                .profile_by_identifier(
                    &workspace,
                    &cairn_model::Identifier::new(
                        cairn_model::IdentifierKind::UserId,
                        workload::user_id(user),
                    ),
                )
                .context("a probe user has no profile")?;
            batch_of
                .entry(profile.id.to_string())
                .or_default()
                .push_back(batch);
            request.push(bench.factory.instant(user));
        }
        prepared.push(request);
    }
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; batches]));
    let (rows, dropped) = bench.engine.subscribe_outbox(1_000_000);
    let receiving = Arc::new(AtomicBool::new(true));
    let expected_rows = (batches * LATENCY_BATCH_EVENTS) as u64;
    let receiver = {
        let (sent_at, receiving) = (sent_at.clone(), receiving.clone());
        std::thread::spawn(move || -> anyhow::Result<(Histogram<u64>, u64)> {
            let mut latencies = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
                .context("cannot create a latency histogram")?;
            let mut seen = 0u64;
            while seen < expected_rows && receiving.load(Ordering::Acquire) {
                let Ok(row) = rows.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                if row.journey_id != workload::INSTANT_JOURNEY {
                    continue;
                }
                let arrived = Instant::now();
                let body: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
                let Some(batch) = body["profile_id"]
                    .as_str()
                    .and_then(|id| batch_of.get_mut(id)?.pop_front())
                else {
                    continue;
                };
                let sent = sent_at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[batch];
                if let Some(sent) = sent {
                    latencies.saturating_record(arrived.duration_since(sent).as_micros() as u64);
                    seen += 1;
                }
            }
            Ok((latencies, seen))
        })
    };
    let interval = Duration::from_secs_f64(LATENCY_BATCH_EVENTS as f64 / OFFERED_EVENTS_PER_S);
    let mut lanes: Vec<Vec<(usize, Vec<NormalizedMessage>)>> =
        (0..LATENCY_SUBMITTERS).map(|_| Vec::new()).collect();
    for (batch, request) in prepared.into_iter().enumerate() {
        lanes[batch % LATENCY_SUBMITTERS].push((batch, request));
    }
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                let ingestor = bench.engine.ingestor();
                let sent_at = sent_at.clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    for (batch, request) in lane {
                        let due = started + interval * batch as u32;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        sent_at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[batch] =
                            Some(Instant::now());
                        ingestor
                            .submit_blocking(WorkspaceId::new(WORKSPACE), request)
                            .context("a latency probe was not accepted")?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a probe submitter panicked"))??;
        }
        Ok(())
    })?;
    let submitted_s = started.elapsed().as_secs_f64();
    if !bench.engine.wait_until_applied(APPLY_TIMEOUT) {
        bail!("the latency probes were not applied within {APPLY_TIMEOUT:?}");
    }
    // Every row is in the feed once applied; give the receiver a moment to drain it.
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    while !receiver.is_finished() && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    receiving.store(false, Ordering::Release);
    let (latencies, seen) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the outbox receiver panicked"))??;
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    Ok(Latency {
        offered_per_s: OFFERED_EVENTS_PER_S,
        achieved_per_s: expected_rows as f64 / submitted_s.max(1e-9),
        events: expected_rows,
        rows: seen,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: latencies.max() as f64 / 1000.0,
        dropped_notices: dropped.load(Ordering::Acquire),
    })
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl JourneysReport {
    fn ratio(&self) -> f64 {
        if self.reference_events_per_s > 0.0 {
            self.events_per_s / self.reference_events_per_s
        } else {
            0.0
        }
    }

    fn timers_per_s(&self) -> f64 {
        self.timers.last().map_or(0.0, TimerRun::per_s)
    }

    fn targets(&self) -> Vec<(String, String, bool)> {
        let mut targets = vec![
            (
                "events/s with 10 live journeys ≥ 50,000".to_string(),
                format!("{:.0}", self.events_per_s),
                self.events_per_s >= TARGET_EVENTS_PER_S,
            ),
            (
                "event-to-outbox p99 ≤ 50 ms at 10,000/s".to_string(),
                format!("{:.1} ms", self.latency.p99_ms),
                self.latency.p99_ms <= TARGET_P99_MS && self.latency.rows == self.latency.events,
            ),
        ];
        for run in &self.timers {
            targets.push((
                format!("timer firings/s with {} waiting ≥ 100,000", run.waiting),
                format!("{:.0}", run.per_s()),
                run.per_s() >= TARGET_TIMERS_PER_S,
            ));
        }
        targets.push((
            "disk bytes per waiting enrollment ≤ 300".to_string(),
            format!("{:.0}", self.disk_bytes_per_waiting),
            (0.0..=TARGET_DISK_BYTES).contains(&self.disk_bytes_per_waiting),
        ));
        targets.push((
            "RAM bytes per waiting enrollment ≤ 64".to_string(),
            format!("{:.0}", self.ram_bytes_per_waiting),
            (0.0..=TARGET_RAM_BYTES).contains(&self.ram_bytes_per_waiting),
        ));
        targets
    }

    fn table(&self) -> String {
        let plan = &self.plan;
        let mut lines = vec![
            format!(
                "cairn bench journeys: {} cores ({}), {:.1} GiB RAM; {} profiles, {} mixed events{}",
                self.machine.cores,
                self.machine.cpu_model,
                self.machine.memory_mib as f64 / 1024.0,
                plan.profiles,
                plan.events,
                if plan.quick {
                    " (--quick: scaled down from 1,000,000 profiles and 1,000,000 / 10,000,000 waiting enrollments)"
                } else {
                    ""
                }
            ),
            format!(
                "journeys ({}): {}",
                self.journeys.len(),
                self.journeys
                    .iter()
                    .map(|(origin, id)| format!("{id} ({origin})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "engine: SQLite store, WAL, synchronous=FULL; every event durably committed before it is applied; manual clock, no HTTP".to_string(),
            String::new(),
            format!("{:<58} {:>16}", "figure", "measured"),
            format!(
                "{:<58} {:>16.0}",
                "events/s, no journeys (reference)", self.reference_events_per_s
            ),
            format!(
                "{:<58} {:>16.0}",
                "events/s through 10 journeys", self.events_per_s
            ),
            format!("{:<58} {:>16.2}", "ratio to the reference", self.ratio()),
            format!(
                "{:<58} {:>9.1} / {:>4.1}",
                format!(
                    "event-to-outbox p50 / p99 ms at {:.0} offered ({:.0} achieved)",
                    self.latency.offered_per_s, self.latency.achieved_per_s
                ),
                self.latency.p50_ms,
                self.latency.p99_ms
            ),
            format!(
                "{:<58} {:>16}",
                "  outbox rows matched / probe events",
                format!("{} / {}", self.latency.rows, self.latency.events)
            ),
        ];
        for run in &self.timers {
            lines.push(format!(
                "{:<58} {:>16.0}",
                format!(
                    "timer firings/s, {} waiting ({} fired in {:.2} s)",
                    run.waiting, run.fired, run.seconds
                ),
                run.per_s()
            ));
        }
        lines.push(format!(
            "{:<58} {:>16.0}",
            "disk bytes per waiting enrollment (state store)", self.disk_bytes_per_waiting
        ));
        lines.push(format!(
            "{:<58} {:>16.0}",
            "RAM bytes per waiting enrollment (heap in use)", self.ram_bytes_per_waiting
        ));
        lines.push(format!(
            "peak RSS {:.0} MiB; {:.2} cores busy on average; {:.0} s in all",
            self.peak_rss_mib, self.cpu_cores, self.total_s
        ));
        if self.latency.dropped_notices {
            lines.push(
                "warning: the outbox feed dropped notices; the latency figures miss some rows"
                    .into(),
            );
        }
        lines.push(String::new());
        lines.push("targets:".into());
        for (target, measured, met) in self.targets() {
            lines.push(format!(
                "  {:<52} {:>12}  {}",
                target,
                measured,
                if met { "met" } else { "MISSED" }
            ));
        }
        lines.join("\n")
    }

    fn json(&self) -> Value {
        let timers: Vec<Value> = self
            .timers
            .iter()
            .map(|run| {
                json!({"waiting": run.waiting, "fired": run.fired, "seconds": round(run.seconds, 3),
                    "timers_per_s": round(run.per_s(), 0)})
            })
            .collect();
        json!({
            "benchmark": "journeys",
            "quick": self.plan.quick,
            "profiles": self.plan.profiles,
            "mixed_events": self.plan.events,
            "journeys": self.journeys.len(),
            "events_per_s": round(self.events_per_s, 0),
            "reference_events_per_s": round(self.reference_events_per_s, 0),
            "ratio_to_reference": round(self.ratio(), 3),
            "offered_events_per_s": self.latency.offered_per_s,
            "achieved_events_per_s": round(self.latency.achieved_per_s, 0),
            "event_to_outbox_p50_ms": round(self.latency.p50_ms, 2),
            "event_to_outbox_p99_ms": round(self.latency.p99_ms, 2),
            "event_to_outbox_max_ms": round(self.latency.max_ms, 2),
            "latency_rows_matched": self.latency.rows,
            "latency_probe_events": self.latency.events,
            "timers_per_s": round(self.timers_per_s(), 0),
            "timers": timers,
            "disk_bytes_per_waiting": round(self.disk_bytes_per_waiting, 1),
            "ram_bytes_per_waiting": round(self.ram_bytes_per_waiting, 1),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "cpu_cores": round(self.cpu_cores, 2),
            "nproc": self.machine.cores,
            "cpu_model": self.machine.cpu_model,
            "memory_mib": self.machine.memory_mib,
            "total_s": round(self.total_s, 1),
            "targets_met": self.targets().iter().all(|(_, _, met)| *met),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(profiles: u64, waiting: Vec<u64>) -> JourneysArgs {
        JourneysArgs {
            quick: false,
            json: false,
            profiles: Some(profiles),
            events: Some(2_000),
            waiting: Some(waiting),
            latency_secs: Some(0.5),
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(Plan::of(&args(10, vec![10])).is_err(), "too few profiles");
        assert!(Plan::of(&args(2_000, vec![])).is_err(), "no waiting size");
        assert!(
            Plan::of(&args(2_000, vec![2_000, 1_000])).is_err(),
            "decreasing"
        );
        assert!(
            Plan::of(&args(2_000, vec![3_000])).is_err(),
            "more than the profiles"
        );
        assert!(Plan::of(&args(2_000, vec![1_000, 3_000])).is_ok());
    }

    #[test]
    fn a_small_run_measures_every_phase() {
        let plan = Plan::of(&args(2_000, vec![1_000, 3_000])).expect("plan");
        let report = measure(&plan).expect("the benchmark runs");
        assert_eq!(report.journeys.len(), 10);
        assert!(report.reference_events_per_s > 0.0 && report.events_per_s > 0.0);
        // Every probe's outbox row was matched to its batch.
        assert!(report.latency.events >= 5_000);
        assert_eq!(report.latency.rows, report.latency.events);
        assert!(report.latency.p99_ms >= report.latency.p50_ms && report.latency.p50_ms > 0.0);
        // Each tick fired exactly the enrollments armed for it.
        let fired: Vec<(u64, u64)> = report
            .timers
            .iter()
            .map(|run| (run.waiting, run.fired))
            .collect();
        assert_eq!(fired, vec![(1_000, 1_000), (3_000, 3_000)]);
        assert!(report.disk_bytes_per_waiting > 0.0);
        let json = report.json();
        for key in [
            "events_per_s",
            "event_to_outbox_p99_ms",
            "timers_per_s",
            "disk_bytes_per_waiting",
            "ram_bytes_per_waiting",
        ] {
            assert!(json[key].is_number(), "{key}: {json}");
        }
    }
}
