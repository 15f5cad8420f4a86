//! Storage traits: what the engine needs from a store.
//!
//! The engine writes through [`Store::write`], which runs a closure against a [`WriteTxn`] and commits
//! everything it did in one durable, atomic transaction (or nothing, if the closure fails). Reads go
//! through [`ReadStore`], which may run concurrently with the writer. The embedded SQLite store
//! implements both; a second backend implements the same traits without touching the engine.

use cairn_core::identity::ProfileHead;
use cairn_model::{
    Identifier, MessageKind, PartitionId, Profile, ProfileId, StoredEvent, TraitSet, WorkspaceId,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

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

/// The mutable part of a profile that the writer reads, changes and writes back.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileState {
    pub head: ProfileHead,
    pub partition: PartitionId,
    pub traits: TraitSet,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An event to append to a profile's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent<'a> {
    pub workspace: &'a WorkspaceId,
    pub partition: PartitionId,
    pub profile: &'a ProfileId,
    pub kind: MessageKind,
    pub message_id: &'a str,
    pub name: Option<&'a str>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub body: &'a Map<String, Value>,
}

/// Operations inside one write transaction.
pub trait WriteTxn {
    /// The profile an identifier points to, following merges to the surviving profile.
    fn find_by_identifier(
        &mut self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> StorageResult<Option<ProfileHead>>;
    /// Loads a profile's mutable state.
    fn load_profile(
        &mut self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> StorageResult<Option<ProfileState>>;
    /// Creates a profile; returns its rank (creation order).
    fn create_profile(
        &mut self,
        workspace: &WorkspaceId,
        id: &ProfileId,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> StorageResult<i64>;
    /// Writes back a profile's state.
    fn save_profile(&mut self, workspace: &WorkspaceId, state: &ProfileState) -> StorageResult<()>;
    /// Points an identifier at a profile.
    fn link_identifier(
        &mut self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
        profile: &ProfileId,
    ) -> StorageResult<()>;
    /// Merges `loser` into `survivor`: identifiers and earlier merged ids move to the survivor, the
    /// loser is marked as merged (its events stay and appear on the survivor's timeline).
    fn merge_profile(
        &mut self,
        workspace: &WorkspaceId,
        loser: &ProfileId,
        survivor: &ProfileId,
    ) -> StorageResult<()>;
    /// Appends an event; returns its sequence number.
    fn append_event(&mut self, event: &NewEvent<'_>) -> StorageResult<i64>;
}

/// A store with a single writer.
pub trait Store: Send {
    /// Runs `work` in one transaction and commits it durably (fsync) if it returns `Ok`.
    /// If `work` or the commit fails, nothing it wrote is kept.
    fn write(
        &mut self,
        work: &mut dyn FnMut(&mut dyn WriteTxn) -> StorageResult<()>,
    ) -> StorageResult<()>;

    /// The message ids of the most recently committed events received at or after `since`, newest
    /// first, at most `limit` of them: what the writer needs to rebuild its de-duplication window.
    fn recent_message_ids(
        &mut self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> StorageResult<Vec<RecentMessageId>>;
}

/// A stored event's message id and when it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMessageId {
    pub workspace: WorkspaceId,
    pub message_id: String,
    pub received_at: DateTime<Utc>,
}

/// A page of a profile's timeline: newest first, by event timestamp then sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub timestamp_ms: i64,
    pub seq: i64,
}

/// Reads that may run concurrently with the writer.
pub trait ReadStore: Send + Sync {
    /// A profile by id; a merged-away id resolves to the surviving profile.
    fn profile(&self, workspace: &WorkspaceId, id: &ProfileId) -> StorageResult<Option<Profile>>;
    /// The profile an identifier points to.
    fn profile_by_identifier(
        &self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> StorageResult<Option<Profile>>;
    /// Events of a (surviving) profile and of every profile merged into it, newest first, strictly
    /// before `before` when given. Returns at most `limit` events.
    fn events(
        &self,
        workspace: &WorkspaceId,
        profile: &ProfileId,
        before: Option<EventCursor>,
        limit: usize,
    ) -> StorageResult<Vec<StoredEvent>>;
    /// Number of stored events in a workspace (for tests, the demo and the benchmark).
    fn event_count(&self, workspace: &WorkspaceId) -> StorageResult<i64>;
    /// Whether the store answers (readiness).
    fn ping(&self) -> StorageResult<()>;
}
