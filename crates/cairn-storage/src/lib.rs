//! Storage traits: what the engine needs from a store.
//!
//! Cairn keeps two kinds of data, with different write patterns:
//! - **The input log** ([`LogWriter`], [`LogReader`]): every accepted input (a request's messages, a
//!   clock tick, a command) is appended in order, in one durable transaction per group, *before* it
//!   is acknowledged. The log is the source of truth and the event store: events are read back from it
//!   by sequence number. Its payloads are opaque bytes encoded by the engine.
//! - **The state** ([`StateStore`], [`StateReader`]): what the engine derives from the log (profiles,
//!   identifiers, timelines). The engine keeps it in memory and writes *checkpoints* of what changed,
//!   together with the log position they reflect, in one atomic transaction. After a crash the engine
//!   loads the last checkpoint and replays the log after it; because applying is deterministic, the
//!   replay rebuilds exactly the state that was lost.
//!
//! A second backend (for example a cluster log on NATS JetStream) implements these traits without
//! touching the engine.

pub mod background;

use cairn_model::{Identifier, ProfileId, TraitSet, WorkspaceId};
use std::sync::Arc;

/// A store failure. Nothing of the failed transaction is visible.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("store backend failed: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the data directory is locked by another process: {0}")]
    Locked(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// What a log record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The accepted messages of one request (one or more events).
    Messages,
    /// The passage of time: "now is `received_at`" (fires due timers).
    Tick,
    /// An operator's command (publishing a journey, …).
    Command,
}

impl RecordKind {
    pub fn code(self) -> u8 {
        match self {
            RecordKind::Messages => 1,
            RecordKind::Tick => 2,
            RecordKind::Command => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(RecordKind::Messages),
            2 => Some(RecordKind::Tick),
            3 => Some(RecordKind::Command),
            _ => None,
        }
    }
}

/// One record of the input log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Position in the log, assigned by [`LogWriter::append`]; strictly increasing, starting at 1.
    pub seq: u64,
    pub kind: RecordKind,
    /// The workspace the record belongs to (empty for ticks).
    pub workspace: WorkspaceId,
    /// When Cairn received the input (milliseconds since the epoch): the input's time.
    pub received_at_ms: i64,
    /// Number of messages (events) in the record.
    pub count: u32,
    /// De-duplication key of each message (for rebuilding the window at start).
    pub keys: Vec<u128>,
    /// The engine's encoding of the record's content.
    pub payload: Vec<u8>,
}

/// Appends to the input log. There is exactly one per data directory.
pub trait LogWriter: Send {
    /// Appends `records` in one durable transaction (fsync before returning) and sets each one's
    /// `seq`. All or nothing: on error none of them is in the log.
    fn append(&mut self, records: &mut [LogRecord]) -> StorageResult<()>;
}

/// Reads the input log; safe to use beside the writer.
pub trait LogReader: Send + Sync {
    /// The highest committed sequence number (0 when the log is empty).
    fn last_seq(&self) -> StorageResult<u64>;
    /// Records with `seq > after`, in order, at most `limit`.
    fn read_after(&self, after: u64, limit: usize) -> StorageResult<Vec<LogRecord>>;
    /// The records with the given sequence numbers (missing ones are skipped), in ascending order.
    fn read_many(&self, seqs: &[u64]) -> StorageResult<Vec<LogRecord>>;
    /// `(received_at_ms, key)` of the messages received at or after `since_ms`, oldest first; at most
    /// `limit` of them (the newest).
    fn recent_keys(&self, since_ms: i64, limit: usize) -> StorageResult<Vec<(i64, u128)>>;
}

/// A profile as checkpointed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// Creation order across the data directory, from 1; lower is older.
    pub rank: u32,
    pub workspace: WorkspaceId,
    pub id: ProfileId,
    /// The profile's primary user id.
    pub user_id: Option<String>,
    /// Set once the profile was merged into another (the survivor's rank).
    pub merged_into: Option<u32>,
    /// Identifiers pointing at this profile (empty once merged away).
    pub identifiers: Vec<Identifier>,
    pub traits: TraitSet,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Events on the timeline, including those of profiles merged into this one.
    pub event_count: u64,
    /// The engine's other per-profile state (journeys, event history, audiences), encoded by the
    /// engine; empty when there is none.
    pub extra: Vec<u8>,
}

/// What a checkpoint writes for one profile.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileWrite {
    /// The whole row (new, merged, identifiers or traits changed).
    Full(ProfileRow),
    /// Only the counters changed (the common case: a track event on a known profile).
    Counters {
        rank: u32,
        event_count: u64,
        updated_at_ms: i64,
    },
    /// The counters and the engine's other state changed, not the identity or the traits.
    Extra {
        rank: u32,
        event_count: u64,
        updated_at_ms: i64,
        extra: Vec<u8>,
    },
}

impl ProfileWrite {
    /// The profile written.
    pub fn rank(&self) -> u32 {
        match self {
            ProfileWrite::Full(row) => row.rank,
            ProfileWrite::Counters { rank, .. } | ProfileWrite::Extra { rank, .. } => *rank,
        }
    }
}

/// A message a journey decided to send, as kept for the dispatcher and the profile's history.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Deterministic (enrollment, step, attempt): the dispatcher sends at most once per id.
    pub message_id: String,
    pub workspace: WorkspaceId,
    pub profile_rank: u32,
    pub journey_id: String,
    pub channel: String,
    /// When the journey decided to send (ms).
    pub at_ms: i64,
    /// `ready` (for the dispatcher), `delayed` (quiet hours or a cap; decided again later) or
    /// `skipped` (consent, suppression, cap or quiet hours said no).
    pub status: String,
    /// The whole message as JSON (template, settings, personalization data, the delivery decision).
    pub body: String,
}

/// One step decision of one enrollment, with the data that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    pub profile_rank: u32,
    pub journey_id: String,
    pub enrollment: u64,
    /// Order within the enrollment's trace.
    pub position: u32,
    pub at_ms: i64,
    /// The decision, encoded by the engine (opaque to the store, written as a blob). Rows written
    /// by older builds hold JSON text; the store returns its UTF-8 bytes.
    pub entry: Vec<u8>,
}

/// One event on a profile's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimelineEntry {
    pub profile_rank: u32,
    /// The event's own (skew-corrected) timestamp.
    pub timestamp_ms: i64,
    /// The event's sequence number ([`EventSeq`]).
    pub seq: u64,
}

/// The changes since the previous checkpoint, and the log position they bring the state to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// Every log record up to this one is reflected in the state once the checkpoint commits.
    pub applied_seq: u64,
    pub profiles: Vec<ProfileWrite>,
    pub timeline: Vec<TimelineEntry>,
    pub outbox: Vec<OutboxRow>,
    pub traces: Vec<TraceRow>,
    /// Workspace-wide state that changed (journeys, audiences, counters), encoded by the engine.
    pub registries: Vec<(WorkspaceId, Vec<u8>)>,
    /// Engine-wide counters (next ids), by name.
    pub counters: Vec<(String, u64)>,
    /// Per workspace: the Customer 360 identity state that changed (source records, the resolver's
    /// snapshot, which profile each unified id maps onto), encoded by the engine.
    pub identity: Vec<(WorkspaceId, Vec<u8>)>,
}

/// Writes and loads checkpoints. There is exactly one per data directory.
pub trait StateStore: Send {
    /// The log position of the last committed checkpoint (0 when there is none).
    fn applied_seq(&mut self) -> StorageResult<u64>;
    /// Calls `each` with every checkpointed profile, in rank order.
    fn load_profiles(
        &mut self,
        each: &mut dyn FnMut(ProfileRow) -> StorageResult<()>,
    ) -> StorageResult<()>;
    /// Every checkpointed workspace registry.
    fn load_registries(&mut self) -> StorageResult<Vec<(WorkspaceId, Vec<u8>)>>;
    /// The engine-wide counters.
    fn load_counters(&mut self) -> StorageResult<Vec<(String, u64)>>;
    /// Every checkpointed workspace identity state (Customer 360).
    fn load_identity(&mut self) -> StorageResult<Vec<(WorkspaceId, Vec<u8>)>> {
        Ok(Vec::new())
    }
    /// Writes `checkpoint` in one durable, atomic transaction.
    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> StorageResult<()>;
}

/// A page of a profile's timeline: newest first, by event timestamp then sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub timestamp_ms: i64,
    pub seq: u64,
}

/// Reads checkpointed state beside the writer.
pub trait StateReader: Send + Sync {
    /// Checkpointed timeline entries of `profiles`, newest first (timestamp, then seq), strictly
    /// before `before` when given, at most `limit`.
    fn timeline(
        &self,
        profiles: &[u32],
        before: Option<EventCursor>,
        limit: usize,
    ) -> StorageResult<Vec<TimelineEntry>>;
    /// Checkpointed outbox messages of `profiles`, newest first, at most `limit`.
    fn outbox(&self, profiles: &[u32], limit: usize) -> StorageResult<Vec<OutboxRow>>;
    /// A checkpointed outbox message by id.
    fn outbox_message(&self, message_id: &str) -> StorageResult<Option<OutboxRow>>;
    /// Checkpointed `ready` outbox messages decided at or after `since_ms`, oldest first, at most
    /// `limit` (the dispatcher catches up with these after a restart).
    fn ready_outbox(&self, since_ms: i64, limit: usize) -> StorageResult<Vec<OutboxRow>>;
    /// Checkpointed trace rows of `profiles` in journey `journey_id`, in order.
    fn traces(&self, profiles: &[u32], journey_id: &str) -> StorageResult<Vec<TraceRow>>;
    /// Whether the store answers (readiness).
    fn ping(&self) -> StorageResult<()>;
}

/// Where a message's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// An attempt was recorded and its result was not (yet): after a crash, in doubt.
    Attempting,
    /// The provider accepted the message.
    Sent,
    /// A transient failure; the next attempt is scheduled.
    Retrying,
    /// A permanent failure (invalid recipient, rejected by the provider, cannot render).
    Failed,
    /// Given up after the last retry: a dead letter.
    Dead,
    /// Left in doubt by a crash and dropped by the channel's in-doubt policy.
    Dropped,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Attempting => "attempting",
            DeliveryState::Sent => "sent",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
            DeliveryState::Dropped => "dropped",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Attempting,
            DeliveryState::Sent,
            DeliveryState::Retrying,
            DeliveryState::Failed,
            DeliveryState::Dead,
            DeliveryState::Dropped,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }

    /// Whether nothing more will happen to the message.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryState::Sent
                | DeliveryState::Failed
                | DeliveryState::Dead
                | DeliveryState::Dropped
        )
    }
}

/// The dispatcher's record of one message: what was tried and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub message_id: String,
    pub workspace: WorkspaceId,
    pub channel: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the next attempt is due (retrying), in ms.
    pub next_attempt_at_ms: Option<i64>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at_ms: i64,
    /// The outbox message (JSON), so a retry or a dead letter can be looked at without the state.
    pub outbox: String,
}

/// The dispatcher's durable records. Each call is one durable transaction, so an attempt is on disk
/// before the message leaves and its result after.
pub trait DeliveryStore: Send + Sync {
    /// Records (inserts or replaces) these records in one durable transaction.
    fn record(&self, records: &[DeliveryRecord]) -> StorageResult<()>;
    /// The records of these message ids (unknown ids are skipped).
    fn get(&self, message_ids: &[String]) -> StorageResult<Vec<DeliveryRecord>>;
    /// Records in a state, oldest update first, at most `limit`.
    fn in_state(&self, state: DeliveryState, limit: usize) -> StorageResult<Vec<DeliveryRecord>>;
    /// Retries due at or before `now_ms`, soonest first, at most `limit`.
    fn due_retries(&self, now_ms: i64, limit: usize) -> StorageResult<Vec<DeliveryRecord>>;
    /// A workspace's records in a state, newest first, at most `limit` (dead letters, failures).
    fn list(
        &self,
        workspace: &WorkspaceId,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> StorageResult<Vec<DeliveryRecord>>;
    /// A named position the dispatcher keeps (how far it has read the outbox).
    fn mark(&self, name: &str) -> StorageResult<Option<i64>>;
    fn set_mark(&self, name: &str, value: i64) -> StorageResult<()>;
}

/// Everything the engine needs from a backend, opened together on one data directory.
pub struct Backend {
    pub log: Box<dyn LogWriter>,
    pub log_reader: Arc<dyn LogReader>,
    pub state: Box<dyn StateStore>,
    pub state_reader: Arc<dyn StateReader>,
    /// The dispatcher's delivery records (kept beside the engine's data, written by the dispatcher).
    pub delivery: Arc<dyn DeliveryStore>,
}

/// The sequence number of one event: its log record and its index inside the record.
///
/// Stable forever (the log is append-only), increasing in log order, and small enough for JSON
/// numbers (a record holds fewer than 2¹⁶ messages; the log has fewer than 2³⁷ records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventSeq(pub u64);

impl EventSeq {
    const INDEX_BITS: u32 = 16;

    pub fn new(record: u64, index: u32) -> Self {
        debug_assert!(
            index < (1 << Self::INDEX_BITS),
            "a record holds < 65536 messages"
        );
        EventSeq((record << Self::INDEX_BITS) | u64::from(index))
    }

    pub fn record(self) -> u64 {
        self.0 >> Self::INDEX_BITS
    }

    pub fn index(self) -> u32 {
        (self.0 & ((1 << Self::INDEX_BITS) - 1)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_seqs_order_by_record_then_index_and_round_trip() {
        let a = EventSeq::new(7, 65_535);
        let b = EventSeq::new(8, 0);
        assert!(a < b);
        assert_eq!((a.record(), a.index()), (7, 65_535));
        assert_eq!((b.record(), b.index()), (8, 0));
        for kind in [RecordKind::Messages, RecordKind::Tick, RecordKind::Command] {
            assert_eq!(RecordKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(RecordKind::from_code(0), None);
    }
}
