//! The state derived from the log, in memory: profiles with their identifiers, traits, timelines and
//! journey state, and each workspace's journeys and audiences.
//!
//! Only the applier changes it, one log record at a time, deterministically: the same records in the
//! same order give the same profiles, ranks, ids, enrollments and messages. Time comes with the
//! records ([`State::advance_time`]). Everything that changes is marked dirty and written by the next
//! checkpoint, copied in rounds ([`State::copy_dirty_profiles`]) and completed under one lock
//! ([`State::finish_checkpoint`]); timeline entries, traces and outbox messages stay here until a
//! checkpoint has committed them, so a reader always finds them either here or in the store.
//!
//! - [`profiles`]: identity resolution, traits and timelines of incoming messages.
//! - [`journeys`]: journeys, audiences, timers and their effects.
//! - [`views`]: what readers see.

mod delivery;
mod journeys;
mod profiles;
mod sources;
mod views;

pub(crate) use journeys::StoredDecision;
pub use journeys::WEBHOOK_RESPONDED;
pub use views::RecipientState;

use crate::codec::CodecError;
use crate::journeys::command::CommandOutcome;
use crate::journeys::history::ProfileHistory;
use crate::journeys::registry::Registry;
use crate::journeys::timers::{TimerEntry, Timers, Wake};
use cairn_journey::orchestrate::ProfileJourneys;
use cairn_model::{Identifier, ProfileId, TraitSet, WorkspaceId};
use cairn_storage::{
    Checkpoint, OutboxRow, ProfileRow, ProfileWrite, StateStore, StorageError, StorageResult,
    TimelineEntry, TraceRow,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use xxhash_rust::xxh3::xxh3_128;

/// How much of a profile changed since the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    Clean,
    Counters,
    /// Counters and journey state.
    Extra,
    Full,
}

/// A profile's journey state: enrollments, event history for conditions, audience memberships.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileJourneyState {
    pub journeys: ProfileJourneys,
    pub history: ProfileHistory,
    /// Audiences (by index) the profile is a member of.
    pub audiences: Vec<u32>,
    /// Audience re-evaluations due in time: (audience index, when).
    pub audience_timers: Vec<(u32, i64)>,
    /// Next position in this profile's trace rows.
    pub trace_position: u32,
    /// Consent per channel and subscription group (its statuses are internally tagged, which only
    /// JSON reads back: JSON text in the binary checkpoint form).
    #[serde(default, with = "cairn_journey::json_text")]
    pub consent: cairn_delivery::ConsentState,
    /// Recent sends, for frequency caps.
    #[serde(
        default = "delivery::empty_history",
        with = "delivery::send_history_bytes"
    )]
    pub sends: cairn_delivery::SendHistory,
    /// Messages waiting for quiet hours to end or a cap to free up.
    #[serde(default)]
    pub delayed: Vec<delivery::DelayedMessage>,
    /// Addresses that hard-bounced.
    #[serde(default)]
    pub undeliverable: Vec<String>,
    /// Traces not yet in a committed checkpoint.
    #[serde(skip)]
    pub pending_traces: Vec<TraceRow>,
    /// Outbox messages not yet in a committed checkpoint.
    #[serde(skip)]
    pub pending_outbox: Vec<OutboxRow>,
}

impl ProfileJourneyState {
    fn is_empty(&self) -> bool {
        self.journeys.enrollments.is_empty()
            && self.journeys.history.is_empty()
            && self.history.is_empty()
            && self.audiences.is_empty()
            && self.audience_timers.is_empty()
            && self.consent == cairn_delivery::ConsentState::default()
            && self.sends.is_empty()
            && self.delayed.is_empty()
            && self.undeliverable.is_empty()
    }
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
    /// Journeys, history and audiences; `None` until the profile meets a journey or an audience.
    pub journey: Option<Box<ProfileJourneyState>>,
    dirty: Dirty,
}

impl ProfileRecord {
    fn extra(&self) -> Vec<u8> {
        match &self.journey {
            Some(state) if !state.is_empty() => encode_journey_state(state),
            _ => Vec::new(),
        }
    }

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
            extra: self.extra(),
        }
    }
}

/// The first byte of a journey state in a checkpoint: the postcard form (binary, varint integers;
/// the few fields only JSON can read back are carried as JSON text, see
/// [`cairn_journey::json_text`]), with an entry history of ended entries only.
const BINARY_JOURNEY_STATE: u8 = 0x03;
/// The first byte of the LZ4-compressed JSON form, written should postcard refuse a value.
const COMPRESSED_JOURNEY_STATE: u8 = 0x04;
/// Older checkpoints' binary form, whose entry history counted enrollments from their entry.
const COUNTING_BINARY_JOURNEY_STATE: u8 = 0x02;
/// Older checkpoints' compressed JSON form, counting likewise (the oldest hold plain JSON, which
/// starts with `{`).
const COUNTING_COMPRESSED_JOURNEY_STATE: u8 = 0x01;

/// Whether a checkpointed entry history counted the enrollments too (see
/// [`cairn_journey::profile_journeys`]): such a history is converted once the journeys are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HistoryForm {
    EndedOnly,
    CountsEnrollments,
}

/// A profile's journey state as checkpointed: [`BINARY_JOURNEY_STATE`], then postcard. Should
/// postcard refuse a value, the compressed JSON form is written instead (it reads back the same).
fn encode_journey_state(state: &ProfileJourneyState) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(BINARY_JOURNEY_STATE);
    postcard::to_extend(state, bytes).unwrap_or_else(|error| {
        tracing::warn!(%error, "a journey state is checkpointed as compressed JSON");
        encode_journey_state_json(state)
    })
}

/// The compressed form: [`COMPRESSED_JOURNEY_STATE`], then LZ4-compressed JSON.
fn encode_journey_state_json(state: &ProfileJourneyState) -> Vec<u8> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    let mut bytes = vec![COMPRESSED_JOURNEY_STATE];
    bytes.extend(lz4_flex::compress_prepend_size(&json));
    bytes
}

/// Reads a checkpointed journey state in any form it was ever written in, and says which history
/// form it holds.
fn decode_journey_state(bytes: &[u8]) -> Result<(ProfileJourneyState, HistoryForm), String> {
    let binary = |bytes| postcard::from_bytes(bytes).map_err(|error| error.to_string());
    let compressed = |bytes| {
        let json = lz4_flex::decompress_size_prepended(bytes).map_err(|error| error.to_string())?;
        serde_json::from_slice(&json).map_err(|error| error.to_string())
    };
    match bytes.split_first() {
        Some((&BINARY_JOURNEY_STATE, rest)) => Ok((binary(rest)?, HistoryForm::EndedOnly)),
        Some((&COMPRESSED_JOURNEY_STATE, rest)) => Ok((compressed(rest)?, HistoryForm::EndedOnly)),
        Some((&COUNTING_BINARY_JOURNEY_STATE, rest)) => {
            Ok((binary(rest)?, HistoryForm::CountsEnrollments))
        }
        Some((&COUNTING_COMPRESSED_JOURNEY_STATE, rest)) => {
            Ok((compressed(rest)?, HistoryForm::CountsEnrollments))
        }
        _ => serde_json::from_slice(bytes)
            .map(|state| (state, HistoryForm::CountsEnrollments))
            .map_err(|error| error.to_string()),
    }
}

/// A checkpointed journey state rewritten as the older writer kept it: binary, with each enrollment
/// counted in its journey's history record from its entry (all of them in `journey_id`).
#[cfg(test)]
pub(crate) fn as_counting_checkpoint(extra: &[u8], journey_id: &str) -> Vec<u8> {
    let (mut state, _) = decode_journey_state(extra).expect("a journey state");
    for enrollment in state.journeys.enrollments.clone() {
        state
            .journeys
            .add_entries(cairn_journey::orchestrate::EntryHistory {
                journey_id: cairn_journey::JourneyName::intern(journey_id),
                entries: 1,
                last_entered_at_ms: enrollment.entered_at_ms,
                last_ended_at_ms: cairn_journey::orchestrate::OptionalMs::NONE,
            });
    }
    postcard::to_extend(&state, vec![COUNTING_BINARY_JOURNEY_STATE]).expect("postcard")
}

/// Removes the first `count` items (at most all) of a pending list and returns how many went; an
/// emptied list gives its buffer back (into `released`, to be freed off the state's lock), so a
/// million profiles do not each keep room for the last checkpoint's entries.
fn forget_prefix<T>(list: &mut Vec<T>, count: usize, released: &mut Vec<Vec<T>>) -> usize {
    let count = count.min(list.len());
    if count == list.len() {
        if list.capacity() > 0 {
            released.push(std::mem::take(list));
        }
    } else {
        list.drain(..count);
    }
    count
}

/// Buffers a committed checkpoint emptied, taken out under the state's lock and freed after it
/// (a checkpoint can empty millions).
#[derive(Default)]
pub(crate) struct Released {
    timelines: Vec<Vec<(i64, u64)>>,
    traces: Vec<Vec<TraceRow>>,
    outbox: Vec<Vec<OutboxRow>>,
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

/// What a checkpoint copied: trimmed once the checkpoint has committed.
#[derive(Default)]
pub(crate) struct CheckpointCopy {
    pub checkpoint: Checkpoint,
    /// Per profile: how much of its pending lists is in the copy (a profile copied again in a later
    /// round adds only what came since).
    copied: HashMap<u32, Written>,
}

/// How many of a profile's pending timeline entries, traces and outbox messages a copy holds.
pub(crate) type Written = (usize, usize, usize);

impl CheckpointCopy {
    /// What the copy holds of each profile's pending lists, in rank order (the order profiles lie
    /// in memory).
    pub(crate) fn written(&self) -> Vec<(u32, Written)> {
        let mut written: Vec<(u32, Written)> = self
            .copied
            .iter()
            .map(|(&rank, &counts)| (rank, counts))
            .collect();
        written.sort_unstable_by_key(|&(rank, _)| rank);
        written
    }
}

/// Names of the engine-wide counters in checkpoints.
const NEXT_ENROLLMENT_ID: &str = "next_enrollment_id";
const NEXT_JOURNEY_KEY: &str = "next_journey_key";
/// Command outcomes kept for the API to read back.
const KEPT_OUTCOMES: usize = 1024;

#[derive(Debug)]
pub(crate) struct State {
    applied_seq: u64,
    /// The time of the last applied input (ms): time never runs backwards in the state.
    clock_ms: i64,
    workspaces: HashMap<WorkspaceId, WorkspaceIndex>,
    registries: HashMap<WorkspaceId, Registry>,
    /// Index `rank - 1`.
    profiles: Vec<ProfileRecord>,
    /// Ranks whose dirty level is above `Clean`, each once.
    dirty: Vec<u32>,
    pending_timeline: usize,
    timers: Timers,
    next_enrollment_id: u64,
    next_journey_key: u32,
    outcomes: VecDeque<(u64, CommandOutcome)>,
    /// Outbox messages produced since the applier last took them (for the outbox feed).
    fresh_outbox: Vec<OutboxRow>,
    /// Send steps' `suppress_if` conditions, compiled once per source.
    step_suppressions: HashMap<String, cairn_condition::Condition>,
    /// Customer 360 per configured workspace: the resolver, source records, cluster → profile.
    sources: HashMap<WorkspaceId, sources::WorkspaceSources>,
    /// Checkpointed identity states not yet restored (until [`State::configure_identity`]).
    stored_identity: HashMap<WorkspaceId, Vec<u8>>,
    /// Which activity items anyone subscribed to (none: none are derived).
    activity: crate::activity::ActivityWants,
    /// Each workspace's declared federated attribute sets (journey validation).
    federated: crate::federated::FederatedSets,
}

impl Default for State {
    fn default() -> Self {
        State {
            applied_seq: 0,
            clock_ms: i64::MIN,
            workspaces: HashMap::new(),
            registries: HashMap::new(),
            profiles: Vec::new(),
            dirty: Vec::new(),
            pending_timeline: 0,
            timers: Timers::default(),
            next_enrollment_id: 1,
            next_journey_key: 1,
            outcomes: VecDeque::new(),
            fresh_outbox: Vec::new(),
            step_suppressions: HashMap::new(),
            sources: HashMap::new(),
            stored_identity: HashMap::new(),
            activity: crate::activity::ActivityWants::default(),
            federated: crate::federated::FederatedSets::default(),
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

impl State {
    /// Loads the last checkpoint.
    pub(crate) fn load(store: &mut dyn StateStore) -> StorageResult<State> {
        let mut state = State {
            applied_seq: store.applied_seq()?,
            ..State::default()
        };
        for (name, value) in store.load_counters()? {
            match name.as_str() {
                NEXT_ENROLLMENT_ID => state.next_enrollment_id = value,
                NEXT_JOURNEY_KEY => {
                    state.next_journey_key = u32::try_from(value).map_err(corrupt)?
                }
                _ => {}
            }
        }
        for (workspace, bytes) in store.load_registries()? {
            state
                .registries
                .insert(workspace, Registry::load(&bytes).map_err(corrupt)?);
        }
        state.stored_identity = store.load_identity()?.into_iter().collect();
        store.load_profiles(&mut |row| state.load_profile(row))?;
        for rank in 1..=state.profiles.len() as u32 {
            if let Some(survivor) = state.record(rank).merged_into {
                state.record_mut(survivor).merged.push(rank);
            }
        }
        state.rebuild_timers();
        Ok(state)
    }

    fn load_profile(&mut self, row: ProfileRow) -> StorageResult<()> {
        if row.rank as usize != self.profiles.len() + 1 {
            return Err(corrupt(format!(
                "profile ranks are not consecutive at {}",
                row.rank
            )));
        }
        let index = self.workspaces.entry(row.workspace.clone()).or_default();
        index.by_id.insert(row.id, row.rank);
        if row.merged_into.is_none() {
            index.event_count += row.event_count;
            for identifier in &row.identifiers {
                index
                    .by_identifier
                    .insert(identifier_key(identifier), row.rank);
            }
        }
        let journey = if row.extra.is_empty() {
            None
        } else {
            let (mut state, form) = decode_journey_state(&row.extra)
                .map_err(|error| corrupt(format!("profile {} journeys: {error}", row.id)))?;
            if form == HistoryForm::CountsEnrollments {
                if let Some(registry) = self.registries.get(&row.workspace) {
                    state.journeys.uncount_enrollments(&registry.live);
                }
            }
            Some(Box::new(state))
        };
        self.profiles.push(ProfileRecord {
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
            journey,
            dirty: Dirty::Clean,
        });
        Ok(())
    }

    /// The timer index from the enrollments' and audience memberships' wake-up times.
    fn rebuild_timers(&mut self) {
        for record in &self.profiles {
            let Some(state) = &record.journey else {
                continue;
            };
            for enrollment in &state.journeys.enrollments {
                if let Some(at_ms) = enrollment.timer() {
                    self.timers.add(TimerEntry {
                        at_ms,
                        rank: record.rank,
                        wake: Wake::Enrollment,
                    });
                }
            }
            for &(_, at_ms) in &state.audience_timers {
                self.timers.add(TimerEntry {
                    at_ms,
                    rank: record.rank,
                    wake: Wake::Audience,
                });
            }
            for delayed in &state.delayed {
                self.timers.add(TimerEntry {
                    at_ms: delayed.at_ms,
                    rank: record.rank,
                    wake: Wake::Delivery,
                });
            }
        }
    }

    pub(crate) fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    pub(crate) fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    pub(crate) fn pending_timeline(&self) -> usize {
        self.pending_timeline
    }

    /// Timers waiting (including left-behind entries of moved timers).
    pub(crate) fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// The earliest time something is due (a timer or a schedule).
    pub(crate) fn next_due_ms(&self) -> Option<i64> {
        let schedules = self
            .registries
            .values()
            .filter_map(Registry::next_schedule_ms)
            .min();
        match (self.timers.next_due_ms(), schedules) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn record(&self, rank: u32) -> &ProfileRecord {
        &self.profiles[rank as usize - 1]
    }

    fn record_mut(&mut self, rank: u32) -> &mut ProfileRecord {
        &mut self.profiles[rank as usize - 1]
    }

    fn touch(&mut self, rank: u32, level: Dirty) {
        let record = &mut self.profiles[rank as usize - 1];
        if record.dirty == Dirty::Clean {
            self.dirty.push(rank);
        }
        record.dirty = record.dirty.max(level);
    }

    /// The surviving profile of `rank`.
    fn survivor(&self, rank: u32) -> u32 {
        self.record(rank).merged_into.unwrap_or(rank)
    }

    /// Marks a record as applied without changing anything else.
    pub(crate) fn skip_record(&mut self, seq: u64) {
        debug_assert!(seq > self.applied_seq, "records are applied in log order");
        self.applied_seq = seq;
    }

    /// From now on, derive the activity items these subscriptions want.
    pub(crate) fn configure_activity(&mut self, wants: crate::activity::ActivityWants) {
        self.activity = wants;
    }

    /// From now on, let journeys fetch and write back these federated attribute sets.
    pub(crate) fn configure_federated(&mut self, sets: crate::federated::FederatedSets) {
        self.federated = sets;
    }

    /// The federated attribute sets a workspace declares.
    pub(crate) fn federated_sets(
        &self,
        workspace: &WorkspaceId,
    ) -> Option<&crate::federated::DeclaredSets> {
        self.federated.get(workspace)
    }

    /// Outbox messages produced since the last call.
    pub(crate) fn take_fresh_outbox(&mut self) -> Vec<OutboxRow> {
        std::mem::take(&mut self.fresh_outbox)
    }

    /// The outcome of the command applied from log record `seq`, if it is still kept.
    pub(crate) fn outcome(&self, seq: u64) -> Option<&CommandOutcome> {
        self.outcomes
            .iter()
            .find(|(at, _)| *at == seq)
            .map(|(_, outcome)| outcome)
    }

    fn keep_outcome(&mut self, seq: u64, outcome: CommandOutcome) {
        if self.outcomes.len() == KEPT_OUTCOMES {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((seq, outcome));
    }

    /// Copies up to `limit` changed profiles into `copy`, marking them clean as of now (a later
    /// change marks them dirty again, and a later round copies them again); returns how many are
    /// still dirty. Rounds between applying keep each hold of the write lock short; the copy is
    /// consistent once [`State::finish_checkpoint`] has copied the rest under one lock.
    pub(crate) fn copy_dirty_profiles(&mut self, copy: &mut CheckpointCopy, limit: usize) -> usize {
        let take = limit.min(self.dirty.len());
        let ranks: Vec<u32> = self.dirty.drain(self.dirty.len() - take..).collect();
        for rank in ranks {
            self.copy_profile(copy, rank);
        }
        self.dirty.len()
    }

    /// Completes `copy` as of now: the profiles still dirty, the registries, identity states and
    /// counters that changed, and the applied log position.
    pub(crate) fn finish_checkpoint(&mut self, mut copy: CheckpointCopy) -> CheckpointCopy {
        self.copy_dirty_profiles(&mut copy, usize::MAX);
        let checkpoint = &mut copy.checkpoint;
        checkpoint.applied_seq = self.applied_seq;
        for (workspace, registry) in self.registries.iter_mut() {
            if registry.take_dirty() {
                checkpoint
                    .registries
                    .push((workspace.clone(), registry.encode()));
            }
        }
        checkpoint.identity = self.identity_checkpoint();
        checkpoint.counters = vec![
            (NEXT_ENROLLMENT_ID.to_string(), self.next_enrollment_id),
            (
                NEXT_JOURNEY_KEY.to_string(),
                u64::from(self.next_journey_key),
            ),
        ];
        copy
    }

    /// Copies one profile's row (as much as changed) and what it has pending since it was last
    /// copied into `copy`; the profile is clean as of now.
    fn copy_profile(&mut self, copy: &mut CheckpointCopy, rank: u32) {
        let (timeline_done, traces_done, outbox_done) =
            copy.copied.get(&rank).copied().unwrap_or_default();
        let record = self.record(rank);
        let checkpoint = &mut copy.checkpoint;
        checkpoint.profiles.push(match record.dirty {
            Dirty::Full => ProfileWrite::Full(record.row()),
            Dirty::Extra => ProfileWrite::Extra {
                rank,
                event_count: record.event_count,
                updated_at_ms: record.updated_at_ms,
                extra: record.extra(),
            },
            _ => ProfileWrite::Counters {
                rank,
                event_count: record.event_count,
                updated_at_ms: record.updated_at_ms,
            },
        });
        let since = |done: usize, len: usize| done.min(len)..len;
        let timeline = &record.pending_timeline;
        checkpoint
            .timeline
            .extend(timeline[since(timeline_done, timeline.len())].iter().map(
                |&(timestamp_ms, seq)| TimelineEntry {
                    profile_rank: rank,
                    timestamp_ms,
                    seq,
                },
            ));
        let (traces, outbox) = match &record.journey {
            Some(state) => {
                let (traces, outbox) = (&state.pending_traces, &state.pending_outbox);
                checkpoint
                    .traces
                    .extend_from_slice(&traces[since(traces_done, traces.len())]);
                checkpoint
                    .outbox
                    .extend_from_slice(&outbox[since(outbox_done, outbox.len())]);
                (traces.len(), outbox.len())
            }
            None => (0, 0),
        };
        copy.copied
            .insert(rank, (record.pending_timeline.len(), traces, outbox));
        self.record_mut(rank).dirty = Dirty::Clean;
    }

    /// How many profiles changed since they were last copied for a checkpoint.
    pub(crate) fn dirty_profiles(&self) -> usize {
        self.dirty.len()
    }

    /// Whether anything waits for a checkpoint.
    pub(crate) fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || self.sources.values().any(|sources| sources.is_dirty())
    }

    /// The store committed `copy`: forget what it wrote, a part at a time ([`CheckpointCopy::written`]
    /// in slices), so the applier never waits long for the lock. What was applied after the copy was
    /// taken is kept: only the copied prefix of each pending list goes (a merge since moves an
    /// absorbed profile's pending traces and messages onto the survivor, where a later checkpoint
    /// writes them again — the store ignores or replaces rows it has).
    pub(crate) fn forget_written(&mut self, part: &[(u32, Written)]) -> Released {
        let mut released = Released::default();
        for &(rank, (entries, traces, outbox)) in part {
            let record = self.record_mut(rank);
            let entries = forget_prefix(
                &mut record.pending_timeline,
                entries,
                &mut released.timelines,
            );
            if let Some(state) = &mut record.journey {
                forget_prefix(&mut state.pending_traces, traces, &mut released.traces);
                forget_prefix(&mut state.pending_outbox, outbox, &mut released.outbox);
            }
            self.pending_timeline -= entries;
        }
        released
    }

    /// The store did not commit `copy`: everything it held is written by the next checkpoint.
    pub(crate) fn checkpoint_failed(&mut self, copy: &CheckpointCopy) {
        for &rank in copy.copied.keys() {
            self.touch(rank, Dirty::Full);
        }
        self.identity_checkpoint_failed(&copy.checkpoint.identity);
        for (workspace, _) in &copy.checkpoint.registries {
            if let Some(registry) = self.registries.get_mut(workspace) {
                registry.mark_dirty();
            }
        }
    }
}

#[cfg(test)]
mod journey_state_tests {
    use super::*;
    use cairn_journey::{Enrollment, EnrollmentId, JourneyKey, StepIndex};

    /// A state with every kind of field filled: JSON values in an enrollment, consent, history.
    fn filled() -> ProfileJourneyState {
        let mut enrollment = Enrollment::new(EnrollmentId(41), JourneyKey(3), StepIndex(2), 1_000);
        enrollment.wake_at_ms = 61_000;
        enrollment.data_mut().journey =
            Some(serde_json::json!({"steps": {"ask": {"ok": true}}}).into());
        enrollment.data_mut().current_event =
            Some(serde_json::json!({"event": "Order Completed"}).into());
        let mut state = ProfileJourneyState {
            audiences: vec![1, 2, 3],
            audience_timers: vec![(2, 99_000)],
            trace_position: 7,
            undeliverable: vec!["gone@example.com".into()],
            ..ProfileJourneyState::default()
        };
        state.journeys.enrollments.push(enrollment);
        state.history.record(
            "Order Completed",
            500,
            crate::journeys::history::Tracking {
                window_ms: Some(10_000),
            },
            900,
        );
        state
            .consent
            .apply(cairn_delivery::ConsentChange::GlobalUnsubscribe, 800);
        state
    }

    #[test]
    fn journey_states_are_checkpointed_binary_and_older_forms_still_read() {
        use HistoryForm::{CountsEnrollments, EndedOnly};
        for state in [ProfileJourneyState::default(), filled()] {
            let bytes = encode_journey_state(&state);
            assert_eq!(bytes[0], BINARY_JOURNEY_STATE);
            assert_eq!(decode_journey_state(&bytes), Ok((state.clone(), EndedOnly)));
            let compressed = encode_journey_state_json(&state);
            assert_eq!(compressed[0], COMPRESSED_JOURNEY_STATE);
            assert!(compressed.len() > bytes.len(), "the binary form is smaller");
            assert_eq!(
                decode_journey_state(&compressed),
                Ok((state.clone(), EndedOnly))
            );
            // The forms from before histories left enrollments out read, and say so.
            let mut counting = bytes.clone();
            counting[0] = COUNTING_BINARY_JOURNEY_STATE;
            assert_eq!(
                decode_journey_state(&counting),
                Ok((state.clone(), CountsEnrollments))
            );
            let mut counting = compressed.clone();
            counting[0] = COUNTING_COMPRESSED_JOURNEY_STATE;
            assert_eq!(
                decode_journey_state(&counting),
                Ok((state.clone(), CountsEnrollments))
            );
            let plain = serde_json::to_vec(&state).expect("json");
            assert_eq!(decode_journey_state(&plain), Ok((state, CountsEnrollments)));
        }
        assert!(decode_journey_state(&[COMPRESSED_JOURNEY_STATE, 9, 9]).is_err());
        assert!(decode_journey_state(&[BINARY_JOURNEY_STATE, 0xff]).is_err());
    }

    #[test]
    fn a_json_checkpoint_from_before_the_binary_form_reads() {
        // Written by the LZ4-JSON version: the enrollment's `journey` data is a JSON object.
        let json = br#"{"journeys":{"enrollments":[{"id":5,"entered_at_ms":10,"wake_at_ms":20,"data":{"journey":{"k":1},"current_event":null,"sends":[],"visits":[]},"journey":2,"step":1,"status":"waiting"}],"history":[]},"history":{"names":[]},"audiences":[],"audience_timers":[],"trace_position":3,"consent":{"global_unsubscribe":null,"channels":[{"status":"unknown"},{"status":"unknown"},{"status":"unknown"},{"status":"unknown"}],"groups":[]},"sends":[],"delayed":[],"undeliverable":[]}"#;
        let (state, form) = decode_journey_state(json).expect("plain JSON reads");
        assert_eq!(form, HistoryForm::CountsEnrollments);
        let enrollment = &state.journeys.enrollments[0];
        assert_eq!(enrollment.wake_at_ms, 20);
        assert_eq!(
            enrollment
                .data
                .as_ref()
                .and_then(|data| data.journey.clone()),
            Some(serde_json::json!({"k": 1}).into())
        );
        assert_eq!(state.trace_position, 3);
        let mut compressed = vec![COUNTING_COMPRESSED_JOURNEY_STATE];
        compressed.extend(lz4_flex::compress_prepend_size(json));
        assert_eq!(decode_journey_state(&compressed), Ok((state, form)));
    }
}
