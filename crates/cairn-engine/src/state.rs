//! The state derived from the log, in memory: profiles, their identifiers and their timelines.
//!
//! Only the applier changes it, one log record at a time, deterministically: the same records in the
//! same order give the same profiles, ranks and ids. Everything it changes is marked dirty and written
//! by the next checkpoint ([`State::checkpoint`]); timeline entries stay here until a checkpoint has
//! committed them, so a reader always finds every applied event either here or in the store.

use crate::codec::{CodecError, EncodedMessage};
use crate::identity::{IdentityInput, IdentityResolver};
use cairn_core::identity::{ProfileHead, Target};
use cairn_core::traits::{apply_traits, merge_trait_sets};
use cairn_model::{Identifier, PartitionId, Profile, ProfileId, TraitSet, WorkspaceId};
use cairn_storage::{
    Checkpoint, EventSeq, ProfileRow, ProfileWrite, StateStore, StorageError, StorageResult,
    TimelineEntry,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use xxhash_rust::xxh3::xxh3_128;

/// How much of a profile changed since the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    Clean,
    Counters,
    Full,
}

/// One profile in memory.
#[derive(Debug, Clone)]
pub(crate) struct ProfileRecord {
    pub rank: u32,
    pub id: ProfileId,
    pub workspace: WorkspaceId,
    pub user_id: Option<String>,
    pub identifiers: Vec<Identifier>,
    /// The survivor this profile merged into (merge chains are kept one hop long).
    pub merged_into: Option<u32>,
    /// Profiles merged into this one.
    pub merged: Vec<u32>,
    pub traits: TraitSet,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub event_count: u64,
    /// Timeline entries `(timestamp_ms, seq)` not yet in a committed checkpoint, oldest applied first.
    pub pending_timeline: Vec<(i64, u64)>,
    dirty: Dirty,
}

impl ProfileRecord {
    fn row(&self) -> ProfileRow {
        ProfileRow {
            rank: self.rank,
            workspace: self.workspace.clone(),
            id: self.id,
            user_id: self.user_id.clone(),
            merged_into: self.merged_into,
            identifiers: self.identifiers.clone(),
            traits: self.traits.clone(),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            event_count: self.event_count,
        }
    }
}

/// Per workspace: which profile an identifier or an id points to.
#[derive(Debug, Default)]
struct WorkspaceIndex {
    /// Identifier key → rank of the surviving profile it points to.
    by_identifier: HashMap<u128, u32>,
    /// Profile id → rank (merged-away ids included).
    by_id: HashMap<ProfileId, u32>,
    event_count: u64,
}

fn identifier_key(identifier: &Identifier) -> u128 {
    let mut bytes = Vec::with_capacity(identifier.value.len() + 1);
    bytes.push(identifier.kind as u8);
    bytes.extend_from_slice(identifier.value.as_bytes());
    xxh3_128(&bytes)
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Why a log record could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// What applying one record did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Applied {
    pub events: u64,
    pub merges: u64,
}

/// Timeline entries a checkpoint copied, per profile: trimmed once the checkpoint has committed.
pub(crate) struct CheckpointCopy {
    pub checkpoint: Checkpoint,
    copied: Vec<(u32, usize)>,
}

/// Where a profile's timeline is: the ranks whose events it shows and the entries not yet stored.
pub(crate) struct TimelineScope {
    pub ranks: Vec<u32>,
    pub pending: Vec<TimelineEntry>,
    pub ids: HashMap<u32, ProfileId>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    applied_seq: u64,
    workspaces: HashMap<WorkspaceId, WorkspaceIndex>,
    /// Index `rank - 1`.
    profiles: Vec<ProfileRecord>,
    /// Ranks whose dirty level is above `Clean`, each once.
    dirty: Vec<u32>,
    pending_timeline: usize,
}

impl State {
    /// Loads the last checkpoint.
    pub(crate) fn load(store: &mut dyn StateStore) -> StorageResult<State> {
        let mut state = State {
            applied_seq: store.applied_seq()?,
            ..State::default()
        };
        store.load_profiles(&mut |row| {
            if row.rank as usize != state.profiles.len() + 1 {
                return Err(StorageError::Corrupt(format!(
                    "profile ranks are not consecutive at {}",
                    row.rank
                )));
            }
            let index = state.workspaces.entry(row.workspace.clone()).or_default();
            index.by_id.insert(row.id, row.rank);
            if row.merged_into.is_none() {
                index.event_count += row.event_count;
                for identifier in &row.identifiers {
                    index
                        .by_identifier
                        .insert(identifier_key(identifier), row.rank);
                }
            }
            state.profiles.push(ProfileRecord {
                rank: row.rank,
                id: row.id,
                workspace: row.workspace,
                user_id: row.user_id,
                identifiers: row.identifiers,
                merged_into: row.merged_into,
                merged: Vec::new(),
                traits: row.traits,
                created_at_ms: row.created_at_ms,
                updated_at_ms: row.updated_at_ms,
                event_count: row.event_count,
                pending_timeline: Vec::new(),
                dirty: Dirty::Clean,
            });
            Ok(())
        })?;
        for rank in 1..=state.profiles.len() as u32 {
            if let Some(survivor) = state.record(rank).merged_into {
                state.record_mut(survivor).merged.push(rank);
            }
        }
        Ok(state)
    }

    pub(crate) fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    pub(crate) fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    pub(crate) fn dirty_profiles(&self) -> usize {
        self.dirty.len()
    }

    pub(crate) fn pending_timeline(&self) -> usize {
        self.pending_timeline
    }

    fn record(&self, rank: u32) -> &ProfileRecord {
        &self.profiles[rank as usize - 1]
    }

    fn record_mut(&mut self, rank: u32) -> &mut ProfileRecord {
        &mut self.profiles[rank as usize - 1]
    }

    fn touch(&mut self, rank: u32, level: Dirty) {
        let record = self.record_mut(rank);
        if record.dirty == Dirty::Clean {
            self.dirty.push(rank);
        }
        let record = self.record_mut(rank);
        record.dirty = record.dirty.max(level);
    }

    /// The surviving profile of `rank`.
    fn survivor(&self, rank: u32) -> u32 {
        self.record(rank).merged_into.unwrap_or(rank)
    }

    fn head(&self, rank: u32) -> ProfileHead {
        let record = self.record(rank);
        ProfileHead {
            id: record.id,
            rank: i64::from(record.rank),
            user_id: record.user_id.clone(),
        }
    }

    /// Marks a record as applied without changing anything else (ticks, commands for later issues).
    pub(crate) fn skip_record(&mut self, seq: u64) {
        debug_assert!(seq > self.applied_seq, "records are applied in log order");
        self.applied_seq = seq;
    }

    /// Applies the messages of the `Messages` record `seq`.
    pub(crate) fn apply_messages(
        &mut self,
        seq: u64,
        workspace: &WorkspaceId,
        received_at_ms: i64,
        messages: &[EncodedMessage<'_>],
        identity: &mut dyn IdentityResolver,
    ) -> Result<Applied, ApplyError> {
        debug_assert!(seq > self.applied_seq, "records are applied in log order");
        let mut applied = Applied::default();
        for (index, message) in messages.iter().enumerate() {
            let event_seq = EventSeq::new(seq, index as u32);
            applied.merges +=
                self.apply_message(workspace, received_at_ms, event_seq, message, identity)?;
            applied.events += 1;
        }
        self.applied_seq = seq;
        Ok(applied)
    }

    /// Applies one message; returns the number of profiles it merged.
    fn apply_message(
        &mut self,
        workspace: &WorkspaceId,
        received_at_ms: i64,
        seq: EventSeq,
        message: &EncodedMessage<'_>,
        identity: &mut dyn IdentityResolver,
    ) -> Result<u64, ApplyError> {
        let identifiers = message.identifiers()?;
        let input = IdentityInput {
            kind: message.kind()?,
            identifiers: &identifiers,
            previous_id: message.previous_id,
        };
        let plan = {
            let index = self.workspaces.get(workspace);
            let mut lookup = |identifier: &Identifier| {
                let rank = *index?.by_identifier.get(&identifier_key(identifier))?;
                Some(self.head(self.survivor(rank)))
            };
            identity.resolve(workspace, &input, &mut lookup)
        };
        let Some(plan) = plan else {
            // Validation guarantees an identifier; a message without one attaches nowhere.
            debug_assert!(false, "a validated message has at least one identifier");
            return Ok(0);
        };
        let target = match &plan.target {
            Target::Existing(head) => head.rank as u32,
            Target::New { id, user_id } => {
                self.find_or_create(workspace, *id, user_id.clone(), received_at_ms)
            }
        };
        for loser in &plan.merge {
            self.merge(loser.rank as u32, target);
        }
        for identifier in &plan.link {
            self.link(workspace, identifier, target);
        }
        let mut changed = false;
        if plan.user_id.is_some() && plan.user_id != self.record(target).user_id {
            self.record_mut(target).user_id = plan.user_id.clone();
            changed = true;
        }
        if let Some(traits) = message.traits {
            let traits: Map<String, Value> = serde_json::from_str(traits)
                .map_err(|error| CodecError::Encoding(format!("traits: {error}")))?;
            changed |= apply_traits(
                &mut self.record_mut(target).traits,
                &traits,
                message.timestamp_ms,
            );
        }
        let record = self.record_mut(target);
        if changed {
            record.updated_at_ms = record.updated_at_ms.max(received_at_ms);
        }
        record.event_count += 1;
        record.pending_timeline.push((message.timestamp_ms, seq.0));
        self.pending_timeline += 1;
        if let Some(index) = self.workspaces.get_mut(workspace) {
            index.event_count += 1;
        }
        let changed = changed || !plan.merge.is_empty() || !plan.link.is_empty();
        self.touch(
            target,
            if changed {
                Dirty::Full
            } else {
                Dirty::Counters
            },
        );
        Ok(plan.merge.len() as u64)
    }

    fn find_or_create(
        &mut self,
        workspace: &WorkspaceId,
        id: ProfileId,
        user_id: Option<String>,
        at_ms: i64,
    ) -> u32 {
        let index = self.workspaces.entry(workspace.clone()).or_default();
        if let Some(&rank) = index.by_id.get(&id) {
            return self.survivor(rank);
        }
        let rank = self.profiles.len() as u32 + 1;
        index.by_id.insert(id, rank);
        self.profiles.push(ProfileRecord {
            rank,
            id,
            workspace: workspace.clone(),
            user_id,
            identifiers: Vec::new(),
            merged_into: None,
            merged: Vec::new(),
            traits: TraitSet::default(),
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
            event_count: 0,
            pending_timeline: Vec::new(),
            dirty: Dirty::Clean,
        });
        self.touch(rank, Dirty::Full);
        rank
    }

    fn link(&mut self, workspace: &WorkspaceId, identifier: &Identifier, rank: u32) {
        let index = self.workspaces.entry(workspace.clone()).or_default();
        index.by_identifier.insert(identifier_key(identifier), rank);
        let record = self.record_mut(rank);
        if !record.identifiers.contains(identifier) {
            record.identifiers.push(identifier.clone());
        }
        self.touch(rank, Dirty::Full);
    }

    /// Merges `loser` into `survivor`: identifiers move, traits merge per field by event time, the
    /// loser and everything merged into it point at the survivor. Events stay where they are; the
    /// survivor's timeline reads them through its merged ranks.
    fn merge(&mut self, loser: u32, survivor: u32) {
        debug_assert_ne!(loser, survivor);
        debug_assert!(
            self.record(loser).merged_into.is_none(),
            "losers are survivors"
        );
        let workspace = self.record(loser).workspace.clone();
        let moved_identifiers = std::mem::take(&mut self.record_mut(loser).identifiers);
        let moved_merged = std::mem::take(&mut self.record_mut(loser).merged);
        let loser_traits = std::mem::take(&mut self.record_mut(loser).traits);
        let loser_events = self.record(loser).event_count;
        self.record_mut(loser).merged_into = Some(survivor);
        for &rank in &moved_merged {
            self.record_mut(rank).merged_into = Some(survivor);
            self.touch(rank, Dirty::Full);
        }
        if let Some(index) = self.workspaces.get_mut(&workspace) {
            for identifier in &moved_identifiers {
                index
                    .by_identifier
                    .insert(identifier_key(identifier), survivor);
            }
        }
        let target = self.record_mut(survivor);
        for identifier in moved_identifiers {
            if !target.identifiers.contains(&identifier) {
                target.identifiers.push(identifier);
            }
        }
        target.merged.push(loser);
        target.merged.extend(moved_merged);
        merge_trait_sets(&mut target.traits, &loser_traits);
        target.event_count += loser_events;
        self.touch(loser, Dirty::Full);
        self.touch(survivor, Dirty::Full);
    }

    /// Copies what changed since the last checkpoint. Nothing is cleared until
    /// [`State::checkpoint_committed`] says the store has it.
    pub(crate) fn checkpoint(&self) -> CheckpointCopy {
        let mut profiles = Vec::with_capacity(self.dirty.len());
        let mut timeline = Vec::with_capacity(self.pending_timeline);
        let mut copied = Vec::with_capacity(self.dirty.len());
        for &rank in &self.dirty {
            let record = self.record(rank);
            profiles.push(match record.dirty {
                Dirty::Full => ProfileWrite::Full(record.row()),
                _ => ProfileWrite::Counters {
                    rank,
                    event_count: record.event_count,
                    updated_at_ms: record.updated_at_ms,
                },
            });
            timeline.extend(record.pending_timeline.iter().map(|&(timestamp_ms, seq)| {
                TimelineEntry {
                    profile_rank: rank,
                    timestamp_ms,
                    seq,
                }
            }));
            copied.push((rank, record.pending_timeline.len()));
        }
        CheckpointCopy {
            checkpoint: Checkpoint {
                applied_seq: self.applied_seq,
                profiles,
                timeline,
            },
            copied,
        }
    }

    /// The store committed `copy`: forget what it wrote.
    pub(crate) fn checkpoint_committed(&mut self, copy: CheckpointCopy) {
        for (rank, entries) in copy.copied {
            let record = self.record_mut(rank);
            record.pending_timeline.drain(..entries);
            record.dirty = Dirty::Clean;
            self.pending_timeline -= entries;
        }
        self.dirty
            .retain(|&rank| self.profiles[rank as usize - 1].dirty != Dirty::Clean);
    }

    fn find(&self, workspace: &WorkspaceId, id: &ProfileId) -> Option<u32> {
        let rank = *self.workspaces.get(workspace)?.by_id.get(id)?;
        Some(self.survivor(rank))
    }

    fn find_by_identifier(&self, workspace: &WorkspaceId, identifier: &Identifier) -> Option<u32> {
        let rank = *self
            .workspaces
            .get(workspace)?
            .by_identifier
            .get(&identifier_key(identifier))?;
        Some(self.survivor(rank))
    }

    fn view(&self, rank: u32) -> Profile {
        let record = self.record(rank);
        Profile {
            id: record.id,
            workspace: record.workspace.to_string(),
            partition: PartitionId::of(&record.id).0,
            identifiers: record.identifiers.clone(),
            traits: record.traits.values.clone(),
            trait_timestamps: record
                .traits
                .set_at
                .iter()
                .map(|(key, ms)| (key.clone(), time(*ms)))
                .collect(),
            merged_ids: record.merged.iter().map(|&m| self.record(m).id).collect(),
            event_count: record.event_count as i64,
            created_at: time(record.created_at_ms),
            updated_at: time(record.updated_at_ms),
        }
    }

    /// A profile by id; a merged-away id gives the surviving profile.
    pub(crate) fn profile(&self, workspace: &WorkspaceId, id: &ProfileId) -> Option<Profile> {
        self.find(workspace, id).map(|rank| self.view(rank))
    }

    pub(crate) fn profile_by_identifier(
        &self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> Option<Profile> {
        self.find_by_identifier(workspace, identifier)
            .map(|rank| self.view(rank))
    }

    /// The ranks whose events make up a profile's timeline, and their entries not yet stored.
    pub(crate) fn timeline_scope(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> Option<TimelineScope> {
        let survivor = self.find(workspace, id)?;
        let mut ranks = vec![survivor];
        ranks.extend(self.record(survivor).merged.iter().copied());
        let mut pending = Vec::new();
        let mut ids = HashMap::with_capacity(ranks.len());
        for &rank in &ranks {
            let record = self.record(rank);
            ids.insert(rank, record.id);
            pending.extend(record.pending_timeline.iter().map(|&(timestamp_ms, seq)| {
                TimelineEntry {
                    profile_rank: rank,
                    timestamp_ms,
                    seq,
                }
            }));
        }
        Some(TimelineScope {
            ranks,
            pending,
            ids,
        })
    }

    pub(crate) fn event_count(&self, workspace: &WorkspaceId) -> u64 {
        self.workspaces
            .get(workspace)
            .map_or(0, |index| index.event_count)
    }
}
