//! `cairn bench stores`: the same ingest workload on three embedded engines — SQLite, redb and
//! fjall — with the same durability and transaction size, to compare the engines rather than
//! Cairn's code.
//!
//! Per event, mirroring what Cairn's writer does (the "full" workload):
//! 1. a message-id de-duplication key (workspace + message id → received time), inserted only if
//!    absent (a duplicate stores nothing else);
//! 2. the event under its sequence number (seq → the event's fields and ~430-byte Segment body);
//! 3. a per-profile timeline entry (profile, timestamp, seq) → nothing;
//! 4. a read-modify-write of the profile row (profile → ~200-byte traits blob).
//!
//! The "log-only" workload does step 2 only and shows each engine's append ceiling. The "indexed"
//! workload (`--workload indexed`, not run by default) does steps 2 and 3: what Cairn's writer
//! stores for a `track` event now that its de-duplication window is in memory and an unchanged
//! profile is not written back.
//!
//! Every group of events (default 1,000, the ingest benchmark's mean group commit) is one
//! transaction, durable before the next one starts: SQLite in WAL mode with `synchronous=FULL`
//! (fsync; checkpoints off the commit path, on their own thread, as in `cairn-store-sqlite`), redb with its default `Durability::Immediate` (fdatasync), fjall with
//! `PersistMode::SyncAll` (fsync of its journal) on every commit. Each engine gets a 64 MiB cache
//! (Cairn's SQLite `cache_size`) and a fresh temporary directory on the same disk. SQLite is driven
//! with `rusqlite` directly (tables equivalent to `cairn-store-sqlite`'s schema, prepared cached
//! statements), not through the Cairn store crate. redb and fjall share one implementation of the
//! workload over a small key-value interface ([`KvTxn`]), with the same key and value bytes.
//!
//! Every engine and workload is warmed up (not timed) so that B-trees and LSM levels are not
//! empty, then a fixed number of events is timed. Events are generated between timed stretches
//! of [`ROUND_EVENTS`], never while timing. Figures:
//! events/s, p50/p99 commit latency, CPU cores (the whole process, including the engines'
//! background threads), bytes written to storage per event (`/proc/self/io` `write_bytes` over the
//! timed window) and bytes on disk per event after the store is closed.

use super::payload::{RequestFactory, Stream, USERS};
use super::report::Machine;
use super::usage::Snapshot;
use anyhow::{bail, ensure, Context};
use cairn_model::{Identifier, IdentifierKind, PartitionId, ProfileId, WorkspaceId};
use chrono::Utc;
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Timed events per engine and workload, by default and with `--quick`.
const DEFAULT_EVENTS: u64 = 1_000_000;
const QUICK_EVENTS: u64 = 200_000;
/// Events stored before timing, by default and with `--quick`.
const DEFAULT_WARMUP_EVENTS: u64 = 200_000;
const QUICK_WARMUP_EVENTS: u64 = 50_000;
/// Timed events generated at a time, between timed stretches: bounds memory (~0.5 KB per event).
const ROUND_EVENTS: usize = 200_000;
/// Events per warm-up transaction: larger than timed ones so that warming up is quick.
const WARMUP_GROUP: usize = 10_000;
/// Events per timed transaction by default: the ingest benchmark's mean group commit (~970).
const DEFAULT_GROUP: usize = 1_000;
/// Largest `--group`.
const MAX_GROUP: usize = 100_000;
/// Page or block cache of every engine, in bytes (Cairn's SQLite `cache_size = -65536`).
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The benchmark's workspace.
const WORKSPACE: &str = "bench";
/// Size of a profile's traits blob.
const TRAITS_BYTES: usize = 200;
/// Width of the event counter at the start of a traits blob.
const COUNTER_DIGITS: usize = 10;
/// The event kind stored with every event (Segment `track`).
const KIND_TRACK: &str = "track";
/// Slowest commit the latency histogram records, in µs.
const MAX_COMMIT_US: u64 = 600_000_000;

#[derive(Debug, Args)]
pub struct StoresArgs {
    /// Fewer events (200,000 timed per engine and workload after 50,000 warm-up): under a minute.
    #[arg(long)]
    quick: bool,
    /// Also print every figure as one JSON object, as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Timed events per engine and workload (default 1,000,000, or 200,000 with --quick).
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// Events per transaction (each one committed durably).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_GROUP)]
    group: usize,
    /// Only these engines (repeatable; default: all three).
    #[arg(long, value_enum)]
    engine: Vec<EngineKind>,
    /// Only these workloads (repeatable; default: full and log-only).
    #[arg(long, value_enum)]
    workload: Vec<Workload>,
}

/// The embedded engines compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineKind {
    Sqlite,
    Redb,
    Fjall,
}

impl EngineKind {
    const ALL: [EngineKind; 3] = [EngineKind::Sqlite, EngineKind::Redb, EngineKind::Fjall];

    fn name(self) -> &'static str {
        match self {
            EngineKind::Sqlite => "sqlite",
            EngineKind::Redb => "redb",
            EngineKind::Fjall => "fjall",
        }
    }

    /// Opens a fresh store of this engine in `dir`.
    fn open(self, dir: &Path, workload: Workload) -> anyhow::Result<Box<dyn BenchStore>> {
        Ok(match self {
            EngineKind::Sqlite => Box::new(SqliteStore::open(dir, workload)?),
            EngineKind::Redb => Box::new(RedbStore::open(dir, workload)?),
            EngineKind::Fjall => Box::new(FjallStore::open(dir, workload)?),
        })
    }
}

/// What each event does to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    /// De-duplication key, event, timeline entry, profile read-modify-write.
    Full,
    /// Event and timeline entry: Cairn's writer for a `track` event once de-duplication is in
    /// memory and an unchanged profile is not written back.
    Indexed,
    /// The event only.
    LogOnly,
}

impl Workload {
    /// In the order they run and are reported.
    const ALL: [Workload; 3] = [Workload::Full, Workload::Indexed, Workload::LogOnly];
    /// What runs without `--workload`.
    const DEFAULT: [Workload; 2] = [Workload::Full, Workload::LogOnly];

    fn name(self) -> &'static str {
        match self {
            Workload::Full => "full",
            Workload::Indexed => "indexed",
            Workload::LogOnly => "log-only",
        }
    }

    /// Prefix of this workload's keys in the JSON object (`sqlite_…`, `sqlite_log_only_…`).
    fn json_prefix(self, engine: EngineKind) -> String {
        match self {
            Workload::Full => engine.name().to_string(),
            Workload::Indexed => format!("{}_indexed", engine.name()),
            Workload::LogOnly => format!("{}_log_only", engine.name()),
        }
    }

    /// Step 1: claims a message-id key.
    fn dedupes(self) -> bool {
        self == Workload::Full
    }

    /// Step 3: writes a timeline entry.
    fn indexes(self) -> bool {
        matches!(self, Workload::Full | Workload::Indexed)
    }

    /// Step 4: reads, updates and writes the profile.
    fn updates_profile(self) -> bool {
        self == Workload::Full
    }
}

/// Sizes of one run, checked.
#[derive(Debug, Clone)]
struct Plan {
    events: u64,
    warmup_events: u64,
    group: usize,
    engines: Vec<EngineKind>,
    workloads: Vec<Workload>,
}

impl Plan {
    fn of(args: &StoresArgs) -> anyhow::Result<Plan> {
        let events = args.events.unwrap_or(if args.quick {
            QUICK_EVENTS
        } else {
            DEFAULT_EVENTS
        });
        ensure!(
            (1..=100_000_000).contains(&events),
            "--events must be between 1 and 100,000,000"
        );
        ensure!(
            (1..=MAX_GROUP).contains(&args.group),
            "--group must be between 1 and {MAX_GROUP}"
        );
        let warmup_events = if args.quick {
            QUICK_WARMUP_EVENTS
        } else {
            DEFAULT_WARMUP_EVENTS
        };
        Ok(Plan {
            events,
            warmup_events,
            group: args.group,
            engines: selected(&EngineKind::ALL, &EngineKind::ALL, &args.engine),
            workloads: selected(&Workload::ALL, &Workload::DEFAULT, &args.workload),
        })
    }
}

/// The `chosen` items in the order of `all`, or `default` if none was chosen.
fn selected<T: Copy + PartialEq>(all: &[T], default: &[T], chosen: &[T]) -> Vec<T> {
    let wanted = if chosen.is_empty() { default } else { chosen };
    all.iter()
        .copied()
        .filter(|item| wanted.contains(item))
        .collect()
}

pub fn run(args: StoresArgs) -> anyhow::Result<()> {
    let plan = Plan::of(&args)?;
    let report = measure(&plan)?;
    println!("{}", report.table());
    if args.json {
        println!("{}", report.json());
    }
    Ok(())
}

/// Runs every engine on every workload.
fn measure(plan: &Plan) -> anyhow::Result<StoresReport> {
    let started = Instant::now();
    let machine = Machine::detect();
    eprintln!(
        "cairn bench stores: {} cores; {} timed events per engine and workload after {} warm-up, {} per transaction",
        machine.cores, plan.events, plan.warmup_events, plan.group
    );
    let profiles = Profiles::new();
    let mut runs = Vec::new();
    for &workload in &plan.workloads {
        for &engine in &plan.engines {
            eprintln!("{} {}: warming up", engine.name(), workload.name());
            let result = run_one(engine, workload, plan, &profiles)?;
            eprintln!(
                "  {:.0} events/s, p99 {:.1} ms",
                result.events_per_s(),
                result.latency_ms(0.99)
            );
            runs.push(result);
        }
    }
    Ok(StoresReport {
        machine,
        plan: plan.clone(),
        event_bytes: profiles.factory_event_bytes,
        runs,
        total_s: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// The workload's data.
// ---------------------------------------------------------------------------------------------

/// One user's profile: its Cairn id (derived as Cairn derives it) and partition.
#[derive(Debug)]
struct ProfileRef {
    id: String,
    user_id: String,
    partition: u16,
}

/// The [`USERS`] profiles the events are spread over.
#[derive(Debug)]
struct Profiles {
    profiles: Vec<ProfileRef>,
    factory_event_bytes: f64,
}

impl Profiles {
    fn new() -> Profiles {
        let workspace = WorkspaceId::new(WORKSPACE);
        let profiles = (0..USERS)
            .map(|user| {
                let user_id = format!("user-{user:05}");
                let id = ProfileId::derive(
                    &workspace,
                    &Identifier {
                        kind: IdentifierKind::UserId,
                        value: user_id.clone(),
                    },
                );
                ProfileRef {
                    partition: PartitionId::of(&id).0,
                    id: id.to_string(),
                    user_id,
                }
            })
            .collect();
        let factory_event_bytes =
            RequestFactory::single(Stream::Raw, Utc::now()).mean_event_bytes();
        Profiles {
            profiles,
            factory_event_bytes,
        }
    }

    fn get(&self, index: usize) -> anyhow::Result<&ProfileRef> {
        self.profiles
            .get(index)
            .with_context(|| format!("no profile number {index}"))
    }
}

/// One event as the writer would store it.
#[derive(Debug)]
struct Event {
    seq: u64,
    /// Index into [`Profiles`].
    profile: usize,
    timestamp_ms: i64,
    received_ms: i64,
    /// The Segment `track` body (JSON).
    body: String,
    message_id: Range<usize>,
    name: Range<usize>,
}

impl Event {
    fn message_id(&self) -> &str {
        self.body.get(self.message_id.clone()).unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.body.get(self.name.clone()).unwrap_or_default()
    }
}

/// Hands out events with increasing sequence numbers, unique message ids and uniform users.
struct EventSource {
    factory: RequestFactory,
    next_seq: u64,
    now_ms: i64,
}

impl EventSource {
    fn new() -> EventSource {
        let now = Utc::now();
        EventSource {
            factory: RequestFactory::single(Stream::Raw, now),
            next_seq: 1,
            now_ms: now.timestamp_millis(),
        }
    }

    /// The next `count` events.
    fn take(&mut self, count: usize) -> anyhow::Result<Vec<Event>> {
        (0..count).map(|_| self.next_event()).collect()
    }

    fn next_event(&mut self) -> anyhow::Result<Event> {
        let body =
            String::from_utf8(self.factory.next_body()).context("event body is not UTF-8")?;
        let message_id = string_field(&body, "messageId")?;
        let name = string_field(&body, "event")?;
        let user = body
            .get(string_field(&body, "userId")?)
            .and_then(|user| user.strip_prefix("user-"))
            .and_then(|number| number.parse::<usize>().ok())
            .context("event without a user-NNNNN userId")?;
        let seq = self.next_seq;
        self.next_seq += 1;
        // Client timestamps a little in the past and out of order, as in real traffic.
        let skew = i64::try_from(seq.wrapping_mul(0x9E37_79B9) % 5_000).unwrap_or(0);
        Ok(Event {
            seq,
            profile: user,
            timestamp_ms: self.now_ms - skew,
            received_ms: self.now_ms,
            body,
            message_id,
            name,
        })
    }
}

/// Where the value of the string field `"key":"…"` sits in a generated body.
fn string_field(body: &str, key: &str) -> anyhow::Result<Range<usize>> {
    let pattern = format!("\"{key}\":\"");
    let start = body
        .find(&pattern)
        .map(|at| at + pattern.len())
        .with_context(|| format!("event body without \"{key}\""))?;
    let length = body[start..]
        .find('"')
        .with_context(|| format!("unterminated \"{key}\""))?;
    Ok(start..start + length)
}

// ---------------------------------------------------------------------------------------------
// Encodings shared by the key-value engines, and the traits update shared by all.
// ---------------------------------------------------------------------------------------------

/// Key of an event: its sequence number, big-endian so keys sort in commit order.
fn event_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// A timestamp as big-endian bytes that sort like the signed number.
fn sortable_i64(value: i64) -> [u8; 8] {
    (value as u64 ^ (1 << 63)).to_be_bytes()
}

/// Key of a timeline entry: profile id (fixed width), timestamp, seq.
fn timeline_key(profile: &ProfileRef, event: &Event) -> Vec<u8> {
    let mut key = Vec::with_capacity(profile.id.len() + 16);
    key.extend_from_slice(profile.id.as_bytes());
    key.extend_from_slice(&sortable_i64(event.timestamp_ms));
    key.extend_from_slice(&event.seq.to_be_bytes());
    key
}

/// `workspace`, a unit separator, then `id`: the key of a message id or a profile.
fn workspace_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(WORKSPACE.len() + 1 + id.len());
    key.extend_from_slice(WORKSPACE.as_bytes());
    key.push(0x1f);
    key.extend_from_slice(id.as_bytes());
    key
}

/// An event's stored value: the same fields as SQLite's `events` row, then the body.
fn encode_event(event: &Event, profile: &ProfileRef) -> anyhow::Result<Vec<u8>> {
    let mut value = Vec::with_capacity(event.body.len() + 128);
    value.extend_from_slice(&event.timestamp_ms.to_be_bytes());
    value.extend_from_slice(&event.received_ms.to_be_bytes());
    value.extend_from_slice(&profile.partition.to_be_bytes());
    for field in [
        WORKSPACE,
        KIND_TRACK,
        profile.id.as_str(),
        event.message_id(),
        event.name(),
    ] {
        let length = u8::try_from(field.len()).context("event field longer than 255 bytes")?;
        value.push(length);
        value.extend_from_slice(field.as_bytes());
    }
    value.extend_from_slice(event.body.as_bytes());
    Ok(value)
}

/// Filler that brings a traits blob to [`TRAITS_BYTES`]: what a profile's traits look like.
const TRAITS_FILLER: &str = "{\"plan\":\"pro\",\"country\":\"DE\",\"language\":\"de-DE\",\
     \"newsletter\":true,\"lifetime_value\":1234.56,\"segment\":\"returning-buyer\",\
     \"favourite_category\":\"Outerwear\",\"signup_source\":\"mobile-app\",\"tier\":\"gold\"}";

/// The event counter at the start of a traits blob (0 for a new profile).
fn traits_counter(traits: Option<&[u8]>) -> anyhow::Result<u64> {
    let Some(traits) = traits else {
        return Ok(0);
    };
    let digits = traits
        .get(..COUNTER_DIGITS)
        .context("traits blob shorter than its counter")?;
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .context("traits blob without a counter")
}

/// The traits after one more event: counter + 1, last event and time, padded to [`TRAITS_BYTES`].
fn next_traits(old: Option<&[u8]>, event: &Event) -> anyhow::Result<Vec<u8>> {
    let counter = traits_counter(old)? + 1;
    let mut traits = format!(
        "{counter:0width$}|{}|{:<24}|",
        event.timestamp_ms,
        event.name(),
        width = COUNTER_DIGITS
    )
    .into_bytes();
    let missing = TRAITS_BYTES.saturating_sub(traits.len());
    traits.extend(TRAITS_FILLER.bytes().cycle().take(missing));
    Ok(traits)
}

// ---------------------------------------------------------------------------------------------
// The engines.
// ---------------------------------------------------------------------------------------------

/// What a store holds, read back after a run to prove the benchmark wrote what it claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    events: u64,
    timeline: u64,
    message_ids: u64,
    profiles: u64,
    /// Sum of every profile's event counter: one per stored event in the full workload.
    profile_events: u64,
}

/// One engine running one workload.
trait BenchStore {
    /// Applies `events` in one transaction and commits it durably. Returns how many were stored
    /// (the others were duplicates).
    fn commit(&mut self, events: &[Event], profiles: &Profiles) -> anyhow::Result<u64>;

    /// What the store holds.
    fn counts(&self) -> anyhow::Result<Counts>;
}

// ----- SQLite -----

/// Tables equivalent to `cairn-store-sqlite`'s (the identifiers table is not used by this
/// workload; the `message_ids` time index, used only for pruning, is left out as it is for the
/// key-value engines).
const SQLITE_TABLES: &str = "
    CREATE TABLE IF NOT EXISTS message_ids (
        workspace TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (workspace, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS profiles (
        rank INTEGER PRIMARY KEY,
        workspace TEXT NOT NULL,
        id TEXT NOT NULL,
        partition INTEGER NOT NULL,
        user_id TEXT,
        merged_into TEXT,
        traits BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS profiles_by_id ON profiles (workspace, id);
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        workspace TEXT NOT NULL,
        partition INTEGER NOT NULL,
        profile_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_id TEXT NOT NULL,
        name TEXT,
        timestamp INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );";
/// The timeline: an index, as in Cairn (the full workload only).
const SQLITE_TIMELINE: &str =
    "CREATE INDEX IF NOT EXISTS events_by_profile ON events (profile_id, timestamp, seq);";

const SQL_CLAIM_MESSAGE_ID: &str =
    "INSERT OR IGNORE INTO message_ids (workspace, message_id, received_at) VALUES (?1, ?2, ?3)";
const SQL_INSERT_EVENT: &str = "INSERT INTO events (seq, workspace, partition, profile_id, kind, \
     message_id, name, timestamp, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const SQL_LOAD_PROFILE: &str = "SELECT rank, traits FROM profiles WHERE workspace = ?1 AND id = ?2";
const SQL_UPDATE_PROFILE: &str = "UPDATE profiles SET traits = ?2, updated_at = ?3 WHERE rank = ?1";
const SQL_INSERT_PROFILE: &str =
    "INSERT INTO profiles (workspace, id, partition, user_id, traits, \
     created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";

/// Time between two passive checkpoints (as in `cairn-store-sqlite`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// WAL size past which the writer restarts the WAL between commits (as in `cairn-store-sqlite`).
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// Commits between two checks of the WAL's size.
const WAL_CHECK_EVERY_COMMITS: u64 = 32;

struct SqliteStore {
    // Field order is drop order: the checkpointer's last checkpoint runs before the writer closes.
    _checkpointer: SqliteCheckpointer,
    connection: rusqlite::Connection,
    wal: PathBuf,
    commits: u64,
    workload: Workload,
}

/// Opens a connection with Cairn's settings: WAL, fsync on every commit, 64 MiB page cache.
fn sqlite_connect(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -{};
         PRAGMA temp_store = MEMORY;",
        CACHE_BYTES / 1024
    ))?;
    Ok(connection)
}

impl SqliteStore {
    /// Cairn's store layout: the writer never checkpoints on commit; a thread with its own
    /// connection runs passive checkpoints, and the writer restarts an oversized WAL.
    fn open(dir: &Path, workload: Workload) -> anyhow::Result<SqliteStore> {
        let path = dir.join("bench.sqlite");
        let connection = sqlite_connect(&path)?;
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        connection.set_prepared_statement_cache_capacity(16);
        connection.execute_batch(SQLITE_TABLES)?;
        if workload.indexes() {
            connection.execute_batch(SQLITE_TIMELINE)?;
        }
        Ok(SqliteStore {
            _checkpointer: SqliteCheckpointer::start(sqlite_connect(&path)?)?,
            connection,
            wal: dir.join("bench.sqlite-wal"),
            commits: 0,
            workload,
        })
    }

    /// Between commits, restarts a WAL that outgrew [`WAL_LIMIT_BYTES`].
    fn bound_wal(&mut self) -> anyhow::Result<()> {
        self.commits += 1;
        if self.commits.is_multiple_of(WAL_CHECK_EVERY_COMMITS)
            && std::fs::metadata(&self.wal).is_ok_and(|wal| wal.len() > WAL_LIMIT_BYTES)
        {
            sqlite_checkpoint(&self.connection, "RESTART")?;
        }
        Ok(())
    }
}

fn sqlite_checkpoint(connection: &rusqlite::Connection, mode: &str) -> anyhow::Result<()> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))?;
    Ok(())
}

/// The checkpoint thread: passive checkpoints every [`CHECKPOINT_INTERVAL`] until dropped.
struct SqliteCheckpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SqliteCheckpointer {
    fn start(connection: rusqlite::Connection) -> anyhow::Result<SqliteCheckpointer> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-checkpoint".into())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_INTERVAL);
                    if let Err(error) = sqlite_checkpoint(&connection, "PASSIVE") {
                        eprintln!("warning: WAL checkpoint failed: {error:#}");
                    }
                }
            })?;
        Ok(SqliteCheckpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SqliteCheckpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Applies one event inside an open SQLite transaction; false if it was a duplicate.
fn sqlite_apply(
    transaction: &rusqlite::Transaction<'_>,
    workload: Workload,
    event: &Event,
    profile: &ProfileRef,
) -> anyhow::Result<bool> {
    if workload.dedupes() {
        let claimed = transaction.prepare_cached(SQL_CLAIM_MESSAGE_ID)?.execute((
            WORKSPACE,
            event.message_id(),
            event.received_ms,
        ))?;
        if claimed == 0 {
            return Ok(false);
        }
    }
    transaction.prepare_cached(SQL_INSERT_EVENT)?.execute((
        event.seq as i64,
        WORKSPACE,
        profile.partition,
        &profile.id,
        KIND_TRACK,
        event.message_id(),
        event.name(),
        event.timestamp_ms,
        event.received_ms,
        &event.body,
    ))?;
    if workload.updates_profile() {
        sqlite_update_profile(transaction, event, profile)?;
    }
    Ok(true)
}

/// The profile row's read-modify-write (an insert the first time).
fn sqlite_update_profile(
    transaction: &rusqlite::Transaction<'_>,
    event: &Event,
    profile: &ProfileRef,
) -> anyhow::Result<()> {
    use rusqlite::OptionalExtension;
    let row: Option<(i64, Vec<u8>)> = transaction
        .prepare_cached(SQL_LOAD_PROFILE)?
        .query_row((WORKSPACE, &profile.id), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let traits = next_traits(row.as_ref().map(|(_, traits)| traits.as_slice()), event)?;
    match row {
        Some((rank, _)) => {
            transaction.prepare_cached(SQL_UPDATE_PROFILE)?.execute((
                rank,
                traits,
                event.received_ms,
            ))?;
        }
        None => {
            transaction.prepare_cached(SQL_INSERT_PROFILE)?.execute((
                WORKSPACE,
                &profile.id,
                profile.partition,
                &profile.user_id,
                traits,
                event.received_ms,
            ))?;
        }
    }
    Ok(())
}

impl BenchStore for SqliteStore {
    fn commit(&mut self, events: &[Event], profiles: &Profiles) -> anyhow::Result<u64> {
        let transaction = self.connection.transaction()?;
        let mut stored = 0;
        for event in events {
            let profile = profiles.get(event.profile)?;
            stored += u64::from(sqlite_apply(&transaction, self.workload, event, profile)?);
        }
        transaction.commit()?;
        self.bound_wal()?;
        Ok(stored)
    }

    fn counts(&self) -> anyhow::Result<Counts> {
        let count = |sql: &str| -> anyhow::Result<u64> {
            let value: i64 = self.connection.query_row(sql, [], |row| row.get(0))?;
            Ok(u64::try_from(value)?)
        };
        let timeline = if self.workload.indexes() {
            count("SELECT count(*) FROM events INDEXED BY events_by_profile WHERE profile_id > ''")?
        } else {
            0
        };
        let mut profile_events = 0;
        let mut statement = self.connection.prepare("SELECT traits FROM profiles")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let traits: Vec<u8> = row.get(0)?;
            profile_events += traits_counter(Some(&traits))?;
        }
        Ok(Counts {
            events: count("SELECT count(*) FROM events")?,
            timeline,
            message_ids: count("SELECT count(*) FROM message_ids")?,
            profiles: count("SELECT count(*) FROM profiles")?,
            profile_events,
        })
    }
}

// ----- The key-value engines -----

/// The key-value engines' tables (redb tables, fjall keyspaces).
#[derive(Debug, Clone, Copy)]
enum Table {
    Events = 0,
    Timeline = 1,
    MessageIds = 2,
    Profiles = 3,
}

impl Table {
    const ALL: [Table; 4] = [
        Table::Events,
        Table::Timeline,
        Table::MessageIds,
        Table::Profiles,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Timeline => "timeline",
            Table::MessageIds => "message_ids",
            Table::Profiles => "profiles",
        }
    }
}

/// An open write transaction of a key-value engine: all the workload needs.
trait KvTxn {
    fn get(&mut self, table: Table, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>>;
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> anyhow::Result<()>;
}

/// Applies one event in a key-value transaction; false if it was a duplicate.
fn kv_apply(
    txn: &mut impl KvTxn,
    workload: Workload,
    event: &Event,
    profile: &ProfileRef,
) -> anyhow::Result<bool> {
    if workload.dedupes() {
        let message_key = workspace_key(event.message_id());
        if txn.get(Table::MessageIds, &message_key)?.is_some() {
            return Ok(false);
        }
        txn.put(
            Table::MessageIds,
            &message_key,
            &event.received_ms.to_be_bytes(),
        )?;
    }
    txn.put(
        Table::Events,
        &event_key(event.seq),
        &encode_event(event, profile)?,
    )?;
    if workload.indexes() {
        txn.put(Table::Timeline, &timeline_key(profile, event), &[])?;
    }
    if workload.updates_profile() {
        let profile_key = workspace_key(&profile.id);
        let old = txn.get(Table::Profiles, &profile_key)?;
        let traits = next_traits(old.as_deref(), event)?;
        txn.put(Table::Profiles, &profile_key, &traits)?;
    }
    Ok(true)
}

/// Applies a group of events in a key-value transaction; returns how many were stored.
fn kv_apply_all(
    txn: &mut impl KvTxn,
    workload: Workload,
    events: &[Event],
    profiles: &Profiles,
) -> anyhow::Result<u64> {
    let mut stored = 0;
    for event in events {
        stored += u64::from(kv_apply(
            txn,
            workload,
            event,
            profiles.get(event.profile)?,
        )?);
    }
    Ok(stored)
}

/// Counts from a full scan of each table: `scan(table)` returns (entries, sum of traits counters).
fn kv_counts(mut scan: impl FnMut(Table) -> anyhow::Result<(u64, u64)>) -> anyhow::Result<Counts> {
    let (profiles, profile_events) = scan(Table::Profiles)?;
    Ok(Counts {
        events: scan(Table::Events)?.0,
        timeline: scan(Table::Timeline)?.0,
        message_ids: scan(Table::MessageIds)?.0,
        profiles,
        profile_events,
    })
}

// ----- redb -----

type RedbDefinition = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;

fn redb_definition(table: Table) -> RedbDefinition {
    redb::TableDefinition::new(table.name())
}

struct RedbStore {
    db: redb::Database,
    workload: Workload,
}

impl RedbStore {
    fn open(dir: &Path, workload: Workload) -> anyhow::Result<RedbStore> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("bench.redb"))?;
        Ok(RedbStore { db, workload })
    }
}

/// redb's tables inside one write transaction, indexed by [`Table`].
struct RedbTables<'txn> {
    tables: Vec<redb::Table<'txn, &'static [u8], &'static [u8]>>,
}

impl<'txn> RedbTables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> anyhow::Result<RedbTables<'txn>> {
        let tables = Table::ALL
            .iter()
            .map(|table| txn.open_table(redb_definition(*table)))
            .collect::<Result<_, _>>()?;
        Ok(RedbTables { tables })
    }

    fn table(
        &mut self,
        table: Table,
    ) -> anyhow::Result<&mut redb::Table<'txn, &'static [u8], &'static [u8]>> {
        self.tables
            .get_mut(table as usize)
            .context("redb table not open")
    }
}

impl KvTxn for RedbTables<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        use redb::ReadableTable;
        Ok(self
            .table(table)?
            .get(key)?
            .map(|value| value.value().to_vec()))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        self.table(table)?.insert(key, value)?;
        Ok(())
    }
}

impl BenchStore for RedbStore {
    fn commit(&mut self, events: &[Event], profiles: &Profiles) -> anyhow::Result<u64> {
        // `Durability::Immediate` is redb's default: `commit` returns once the data is synced.
        let txn = self.db.begin_write()?;
        let stored = {
            let mut tables = RedbTables::open(&txn)?;
            kv_apply_all(&mut tables, self.workload, events, profiles)?
        };
        txn.commit()?;
        Ok(stored)
    }

    fn counts(&self) -> anyhow::Result<Counts> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read()?;
        kv_counts(|table| {
            let is_profiles = matches!(table, Table::Profiles);
            let table = txn.open_table(redb_definition(table))?;
            let (mut entries, mut counters) = (0, 0);
            for entry in table.iter()? {
                let (_, value) = entry?;
                entries += 1;
                if is_profiles {
                    counters += traits_counter(Some(value.value()))?;
                }
            }
            Ok((entries, counters))
        })
    }
}

// ----- fjall -----

struct FjallStore {
    db: fjall::SingleWriterTxDatabase,
    keyspaces: Vec<fjall::SingleWriterTxKeyspace>,
    workload: Workload,
}

impl FjallStore {
    fn open(dir: &Path, workload: Workload) -> anyhow::Result<FjallStore> {
        let db = fjall::SingleWriterTxDatabase::builder(dir.join("bench.fjall"))
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let keyspaces = Table::ALL
            .iter()
            .map(|table| db.keyspace(table.name(), fjall::KeyspaceCreateOptions::default))
            .collect::<Result<_, _>>()?;
        Ok(FjallStore {
            db,
            keyspaces,
            workload,
        })
    }
}

/// A fjall write transaction (serialised: one writer) with the keyspaces it writes.
struct FjallTxn<'a> {
    tx: fjall::SingleWriterWriteTx<'a>,
    keyspaces: &'a [fjall::SingleWriterTxKeyspace],
}

/// The keyspace of `table`.
fn fjall_keyspace(
    keyspaces: &[fjall::SingleWriterTxKeyspace],
    table: Table,
) -> anyhow::Result<&fjall::SingleWriterTxKeyspace> {
    keyspaces
        .get(table as usize)
        .context("fjall keyspace not open")
}

impl KvTxn for FjallTxn<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        use fjall::Readable;
        let keyspace = fjall_keyspace(self.keyspaces, table)?;
        Ok(self.tx.get(keyspace, key)?.map(|value| value.to_vec()))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let keyspace = fjall_keyspace(self.keyspaces, table)?;
        self.tx.insert(keyspace, key, value);
        Ok(())
    }
}

impl BenchStore for FjallStore {
    fn commit(&mut self, events: &[Event], profiles: &Profiles) -> anyhow::Result<u64> {
        // The journal is fsynced as part of the commit, before it returns.
        let tx = self
            .db
            .write_tx()
            .durability(Some(fjall::PersistMode::SyncAll));
        let mut txn = FjallTxn {
            tx,
            keyspaces: &self.keyspaces,
        };
        let stored = kv_apply_all(&mut txn, self.workload, events, profiles)?;
        txn.tx.commit()?;
        Ok(stored)
    }

    fn counts(&self) -> anyhow::Result<Counts> {
        kv_counts(|table| {
            let keyspace = fjall_keyspace(&self.keyspaces, table)?;
            let (mut entries, mut counters) = (0, 0);
            for entry in keyspace.inner().iter() {
                let value = entry.value()?;
                entries += 1;
                if matches!(table, Table::Profiles) {
                    counters += traits_counter(Some(&value))?;
                }
            }
            Ok((entries, counters))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring.
// ---------------------------------------------------------------------------------------------

/// The timed commits of one run.
#[derive(Debug)]
struct Timing {
    events: u64,
    commits: u64,
    wall_s: f64,
    /// CPU seconds of the whole process (engines' background threads included) while timed.
    cpu_s: f64,
    commit_us: Histogram<u64>,
    /// `write_bytes` of `/proc/self/io` from the first timed commit to the last, if the kernel
    /// reports it.
    written_bytes: Option<u64>,
}

/// What one engine measured on one workload.
#[derive(Debug)]
struct RunResult {
    engine: EngineKind,
    workload: Workload,
    timing: Timing,
    /// Allocated size of the store's directory after it was closed (warm-up events included).
    disk_bytes: u64,
    /// Events in the store at the end (warm-up + timed).
    stored_events: u64,
}

impl RunResult {
    fn events_per_s(&self) -> f64 {
        ratio(self.timing.events as f64, self.timing.wall_s)
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        self.timing.commit_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn cpu_cores(&self) -> f64 {
        ratio(self.timing.cpu_s, self.timing.wall_s)
    }

    fn written_bytes_per_event(&self) -> Option<f64> {
        let events = self.timing.events as f64;
        self.timing
            .written_bytes
            .map(|bytes| ratio(bytes as f64, events))
    }

    fn disk_bytes_per_event(&self) -> f64 {
        ratio(self.disk_bytes as f64, self.stored_events as f64)
    }
}

/// One engine, one workload: fresh store, warm-up, timed commits, checks, size on disk.
fn run_one(
    engine: EngineKind,
    workload: Workload,
    plan: &Plan,
    profiles: &Profiles,
) -> anyhow::Result<RunResult> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("cairn-bench-{}-", engine.name()))
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut store = engine.open(dir.path(), workload)?;
    let mut source = EventSource::new();
    store_all(
        &mut *store,
        &mut source,
        profiles,
        plan.warmup_events,
        WARMUP_GROUP,
    )?;

    eprintln!("  timing {} events", plan.events);
    let timing = time_rounds(&mut *store, &mut source, plan, profiles)?;

    let counts = store.counts()?;
    check_counts(workload, &counts, plan.warmup_events + plan.events)?;
    drop(store);
    Ok(RunResult {
        engine,
        workload,
        timing,
        disk_bytes: disk_usage(dir.path())?,
        stored_events: counts.events,
    })
}

/// Stores `count` events in transactions of `group`, untimed (the warm-up).
fn store_all(
    store: &mut dyn BenchStore,
    source: &mut EventSource,
    profiles: &Profiles,
    count: u64,
    group: usize,
) -> anyhow::Result<()> {
    let mut left = count;
    while left > 0 {
        let size = usize::try_from(left)?.min(group);
        let events = source.take(size)?;
        let stored = store.commit(&events, profiles)?;
        ensure!(
            stored == size as u64,
            "{} duplicates in the warm-up",
            size as u64 - stored
        );
        left -= size as u64;
    }
    Ok(())
}

/// Times `plan.events` events, generated a round at a time between timed stretches.
fn time_rounds(
    store: &mut dyn BenchStore,
    source: &mut EventSource,
    plan: &Plan,
    profiles: &Profiles,
) -> anyhow::Result<Timing> {
    let mut timing = Timing::new()?;
    let written_before = process_write_bytes();
    let round = ROUND_EVENTS.div_ceil(plan.group) * plan.group;
    let mut left = plan.events;
    while left > 0 {
        let events = source.take(usize::try_from(left)?.min(round))?;
        timing.time_stretch(store, &events, plan.group, profiles)?;
        left -= events.len() as u64;
    }
    // Over every round, pauses included: background work the timed commits caused is counted.
    timing.written_bytes = written_before
        .zip(process_write_bytes())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(timing)
}

impl Timing {
    fn new() -> anyhow::Result<Timing> {
        Ok(Timing {
            events: 0,
            commits: 0,
            wall_s: 0.0,
            cpu_s: 0.0,
            commit_us: Histogram::new_with_bounds(1, MAX_COMMIT_US, 3)
                .context("cannot create a latency histogram")?,
            written_bytes: None,
        })
    }

    /// Commits `events` in groups of `group`, timing each commit and the whole stretch.
    fn time_stretch(
        &mut self,
        store: &mut dyn BenchStore,
        events: &[Event],
        group: usize,
        profiles: &Profiles,
    ) -> anyhow::Result<()> {
        let before = Snapshot::take();
        let started = Instant::now();
        for chunk in events.chunks(group) {
            let commit_started = Instant::now();
            let stored = store.commit(chunk, profiles)?;
            let elapsed_us = u64::try_from(commit_started.elapsed().as_micros())?;
            self.commit_us.saturating_record(elapsed_us.max(1));
            ensure!(
                stored == chunk.len() as u64,
                "duplicates among unique events"
            );
            self.commits += 1;
        }
        self.wall_s += started.elapsed().as_secs_f64();
        self.cpu_s += before.until(&Snapshot::take()).cpu_s;
        self.events += events.len() as u64;
        Ok(())
    }
}

/// Fails unless the store holds exactly what the workload should have written.
fn check_counts(workload: Workload, counts: &Counts, events: u64) -> anyhow::Result<()> {
    let expected = match workload {
        Workload::Full => Counts {
            events,
            timeline: events,
            message_ids: events,
            profiles: counts.profiles,
            profile_events: events,
        },
        Workload::Indexed => Counts {
            events,
            timeline: events,
            ..Counts::default()
        },
        Workload::LogOnly => Counts {
            events,
            ..Counts::default()
        },
    };
    if *counts != expected {
        bail!("the store holds {counts:?}, expected {expected:?}");
    }
    if workload.updates_profile() && !(1..=USERS).contains(&counts.profiles) {
        bail!("{} profiles for {USERS} users", counts.profiles);
    }
    Ok(())
}

/// Bytes the process caused to be written to storage so far (`write_bytes` of `/proc/self/io`).
fn process_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Allocated bytes of every file under `path` (what `du` reports).
fn disk_usage(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            disk_usage(&entry.path())?
        } else {
            metadata.blocks() * 512
        };
    }
    Ok(total)
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting.
// ---------------------------------------------------------------------------------------------

struct StoresReport {
    machine: Machine,
    plan: Plan,
    event_bytes: f64,
    runs: Vec<RunResult>,
    total_s: f64,
}

impl StoresReport {
    fn find(&self, engine: EngineKind, workload: Workload) -> Option<&RunResult> {
        self.runs
            .iter()
            .find(|run| run.engine == engine && run.workload == workload)
    }

    /// Throughput relative to SQLite's on the same workload.
    fn ratio_to_sqlite(&self, run: &RunResult) -> f64 {
        let sqlite = self
            .find(EngineKind::Sqlite, run.workload)
            .map_or(0.0, RunResult::events_per_s);
        ratio(run.events_per_s(), sqlite)
    }

    fn table(&self) -> String {
        let machine = &self.machine;
        let mut lines = vec![
            format!(
                "cairn bench stores: {} cores ({}), {:.1} GiB RAM; {} timed events per engine and workload after {} warm-up",
                machine.cores,
                machine.cpu_model,
                machine.memory_mib as f64 / 1024.0,
                self.plan.events,
                self.plan.warmup_events
            ),
            format!(
                "transactions of {} events, each durable before the next; Segment track bodies of {:.0} bytes, {} users",
                self.plan.group, self.event_bytes, USERS
            ),
            String::new(),
            format!(
                "{:<8} {:<9} {:>12} {:>9} {:>9} {:>6} {:>15} {:>13} {:>8}",
                "engine", "workload", "events/s", "p50 ms", "p99 ms", "cores", "written B/event", "disk B/event", "×sqlite"
            ),
        ];
        for run in &self.runs {
            let written = run
                .written_bytes_per_event()
                .map_or_else(|| "–".to_string(), |bytes| format!("{bytes:.0}"));
            lines.push(format!(
                "{:<8} {:<9} {:>12} {:>9.1} {:>9.1} {:>6.2} {:>15} {:>13.0} {:>8.2}",
                run.engine.name(),
                run.workload.name(),
                thousands(run.events_per_s()),
                run.latency_ms(0.5),
                run.latency_ms(0.99),
                run.cpu_cores(),
                written,
                run.disk_bytes_per_event(),
                self.ratio_to_sqlite(run)
            ));
        }
        lines.push(String::new());
        lines.push(format!("total {:.1} s", self.total_s));
        lines.join("\n")
    }

    fn json(&self) -> Value {
        let mut object = Map::new();
        for run in &self.runs {
            let prefix = run.workload.json_prefix(run.engine);
            let mut put = |key: &str, value: Value| {
                object.insert(format!("{prefix}_{key}"), value);
            };
            put("events_per_s", json!(round(run.events_per_s(), 0)));
            put("p50_ms", json!(round(run.latency_ms(0.5), 2)));
            put("p99_ms", json!(round(run.latency_ms(0.99), 2)));
            put("cpu_cores", json!(round(run.cpu_cores(), 2)));
            put(
                "written_bytes_per_event",
                json!(run.written_bytes_per_event().map(|bytes| round(bytes, 0))),
            );
            put(
                "disk_bytes_per_event",
                json!(round(run.disk_bytes_per_event(), 0)),
            );
            put("commits", json!(run.timing.commits));
            put(
                "ratio_to_sqlite",
                json!(round(self.ratio_to_sqlite(run), 3)),
            );
        }
        object.insert("events".into(), json!(self.plan.events));
        object.insert("warmup_events".into(), json!(self.plan.warmup_events));
        object.insert("group_events".into(), json!(self.plan.group));
        object.insert("event_bytes".into(), json!(round(self.event_bytes, 0)));
        object.insert("nproc".into(), json!(self.machine.cores));
        object.insert("total_s".into(), json!(round(self.total_s, 1)));
        Value::Object(object)
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `12345.6` → `"12,346"`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
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

    /// Runs `engine` on `workload` with `events` events in groups of `group`; returns its counts.
    fn store_events(
        engine: EngineKind,
        workload: Workload,
        events: u64,
        group: usize,
    ) -> (Counts, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let profiles = Profiles::new();
        let mut store = engine.open(dir.path(), workload).expect("opens");
        let mut source = EventSource::new();
        store_all(&mut *store, &mut source, &profiles, events, group).expect("stores");
        let counts = store.counts().expect("counts");
        (counts, dir)
    }

    #[test]
    fn every_engine_stores_every_step_of_each_workload() {
        for engine in EngineKind::ALL {
            for workload in Workload::ALL {
                let (counts, _dir) = store_events(engine, workload, 2_000, 300);
                check_counts(workload, &counts, 2_000)
                    .unwrap_or_else(|error| panic!("{engine:?} {workload:?}: {error}"));
                if workload.updates_profile() {
                    // 2,000 events over 10,000 users: some users have several events.
                    assert!(
                        counts.profiles > 1_500 && counts.profiles < 2_000,
                        "{engine:?}: {counts:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn duplicates_are_refused_and_the_store_survives_reopening() {
        for engine in EngineKind::ALL {
            let dir = tempfile::tempdir().expect("temporary directory");
            let profiles = Profiles::new();
            let mut source = EventSource::new();
            let events = source.take(500).expect("events");
            {
                let mut store = engine.open(dir.path(), Workload::Full).expect("opens");
                assert_eq!(store.commit(&events, &profiles).expect("commits"), 500);
                assert_eq!(store.commit(&events[..100], &profiles).expect("commits"), 0);
            }
            let reopened = engine
                .open(dir.path(), Workload::Full)
                .expect("reopens")
                .counts()
                .expect("counts");
            check_counts(Workload::Full, &reopened, 500)
                .unwrap_or_else(|error| panic!("{engine:?}: {error}"));
        }
    }

    #[test]
    fn events_and_traits_are_encoded_as_described() {
        let profiles = Profiles::new();
        let event = EventSource::new().next_event().expect("event");
        assert_eq!(event.seq, 1);
        assert_eq!(event.message_id().len(), 36);
        assert!(!event.name().is_empty());
        let profile = profiles.get(event.profile).expect("profile");
        assert!(profile.id.starts_with("prof_") && profile.id.len() == 37);
        let value = encode_event(&event, profile).expect("encodes");
        assert!(value.len() > event.body.len() + 80 && value.ends_with(event.body.as_bytes()));
        assert_eq!(timeline_key(profile, &event).len(), 37 + 16);

        let first = next_traits(None, &event).expect("traits");
        let second = next_traits(Some(&first), &event).expect("traits");
        assert_eq!(first.len(), TRAITS_BYTES);
        assert_eq!(traits_counter(Some(&second)).expect("counter"), 2);
        assert!(sortable_i64(-1) < sortable_i64(0) && sortable_i64(0) < sortable_i64(1));
    }

    #[test]
    fn bad_arguments_are_refused() {
        let args = |events, group| StoresArgs {
            quick: true,
            json: false,
            events,
            group,
            engine: Vec::new(),
            workload: Vec::new(),
        };
        assert!(Plan::of(&args(Some(0), 1_000)).is_err());
        assert!(Plan::of(&args(None, 0)).is_err());
        let plan = Plan::of(&args(None, 1_000)).expect("valid");
        assert_eq!(
            (plan.events, plan.warmup_events),
            (QUICK_EVENTS, QUICK_WARMUP_EVENTS)
        );
        assert_eq!(plan.workloads, Workload::DEFAULT);
        assert_eq!(plan.engines, EngineKind::ALL);
        assert_eq!(
            selected(
                &Workload::ALL,
                &Workload::DEFAULT,
                &[Workload::LogOnly, Workload::Indexed]
            ),
            [Workload::Indexed, Workload::LogOnly]
        );
        assert_eq!(thousands(1_234_567.4), "1,234,567");
    }
}
