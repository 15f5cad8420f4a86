//! Reads for the management API: profiles from the in-memory state, timelines from the state and
//! the checkpoint store, event bodies from the log.
//!
//! Read-your-writes: every read first waits (up to [`READ_BARRIER_TIMEOUT`]) until the applier has
//! applied everything the log had committed when the read began, so a read that starts after an
//! acknowledgement sees the acknowledged events.

use crate::codec::{decode_messages, decompress};
use crate::customer360::{ProfileIdentity, RecordPlacement, SourceError};
use crate::journeys::{AudienceRecord, CommandOutcome, JourneyRecord};
use crate::progress::Progress;
use crate::state::State;
use cairn_identity::{Explanation, RecordKey};
use cairn_model::{Identifier, Profile, ProfileId, StoredEvent, WorkspaceId};
use cairn_storage::{
    EventCursor, EventSeq, LogReader, StateReader, StorageError, StorageResult, TimelineEntry,
};
use chrono::DateTime;
use parking_lot::RwLock;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Longest a read waits for the applier to catch up with the log before answering from what it has.
pub const READ_BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// Read access to profiles and events; cheap to clone, safe to share.
#[derive(Clone)]
pub struct Reader {
    pub(crate) state: Arc<RwLock<State>>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) log: Arc<dyn LogReader>,
    pub(crate) store: Arc<dyn StateReader>,
    /// The workspaces' identity configurations with their re-resolution progress figures.
    pub(crate) identity: crate::customer360::IdentityConfigs,
}

impl Reader {
    /// Waits until everything committed before this call is applied (or the timeout passes).
    fn barrier(&self) {
        let committed = self.progress.committed();
        if !self
            .progress
            .wait_for_applied(committed, READ_BARRIER_TIMEOUT)
        {
            tracing::warn!(
                committed,
                applied = self.progress.applied(),
                "read served while the applier lags behind the log"
            );
        }
    }

    /// A profile by id; a merged-away id resolves to the surviving profile.
    pub fn profile(&self, workspace: &WorkspaceId, id: &ProfileId) -> Option<Profile> {
        self.barrier();
        self.state.read().profile(workspace, id)
    }

    /// A profile as the state has it now, without waiting for the applier (the dispatcher reads
    /// profiles of messages the applier has already produced). Also finds the workspace-less case:
    /// `None` if the workspace has no such profile.
    pub fn profile_now(&self, workspace: &WorkspaceId, id: &ProfileId) -> Option<Profile> {
        self.state.read().profile(workspace, id)
    }

    /// The workspace a profile id belongs to (ids are unique across workspaces), for callers that
    /// only have the id (tracking links).
    pub fn workspace_of(&self, id: &ProfileId) -> Option<WorkspaceId> {
        self.state.read().workspace_of(id)
    }

    /// A profile's consent and hard-bounced addresses; `None` if there is no such profile.
    pub fn recipient_state(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> Option<crate::RecipientState> {
        self.barrier();
        self.state.read().recipient_state(workspace, id)
    }

    /// The profiles of a workspace whose string trait `name` satisfies `matches` (a scan: for rare
    /// lookups, such as the customer an inbound SMS comes from by its `phone` trait).
    pub fn profiles_with_trait(
        &self,
        workspace: &WorkspaceId,
        name: &str,
        matches: &dyn Fn(&str) -> bool,
    ) -> Vec<ProfileId> {
        self.barrier();
        self.state
            .read()
            .profiles_with_trait(workspace, name, matches)
    }

    /// The profile an identifier points to.
    pub fn profile_by_identifier(
        &self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> Option<Profile> {
        self.barrier();
        self.state
            .read()
            .profile_by_identifier(workspace, identifier)
    }

    /// Events of a profile and of every profile merged into it, newest first (event timestamp, then
    /// sequence), strictly before `before` when given; at most `limit`. `None` if there is no such
    /// profile.
    pub fn events(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
        before: Option<EventCursor>,
        limit: usize,
    ) -> StorageResult<Option<Vec<StoredEvent>>> {
        self.barrier();
        // Pending entries first, then the store: an entry checkpointed in between is in both (and
        // de-duplicated below), never in neither.
        let Some(scope) = self.state.read().timeline_scope(workspace, id) else {
            return Ok(None);
        };
        let is_before = |entry: &TimelineEntry| match before {
            Some(cursor) => (entry.timestamp_ms, entry.seq) < (cursor.timestamp_ms, cursor.seq),
            None => true,
        };
        let mut entries: Vec<TimelineEntry> =
            scope.pending.into_iter().filter(|e| is_before(e)).collect();
        entries.extend(self.store.timeline(&scope.ranks, before, limit)?);
        entries.sort_unstable_by_key(|e| std::cmp::Reverse((e.timestamp_ms, e.seq)));
        entries.dedup_by_key(|entry| entry.seq);
        entries.truncate(limit);
        let bodies = self.event_bodies(entries.iter().map(|e| EventSeq(e.seq)))?;
        entries
            .iter()
            .map(|entry| {
                let (received_at_ms, body) = bodies.get(&entry.seq).ok_or_else(|| {
                    StorageError::Corrupt(format!("event {} is not in the log", entry.seq))
                })?;
                stored_event(entry, scope.ids[&entry.profile_rank], *received_at_ms, body)
            })
            .collect::<StorageResult<Vec<_>>>()
            .map(Some)
    }

    /// `(received_at_ms, decoded message)` of each event, read from the log.
    fn event_bodies(
        &self,
        seqs: impl Iterator<Item = EventSeq>,
    ) -> StorageResult<HashMap<u64, (i64, DecodedEvent)>> {
        let wanted: BTreeSet<EventSeq> = seqs.collect();
        let records: Vec<u64> = wanted.iter().map(|seq| seq.record()).collect();
        let mut bodies = HashMap::with_capacity(wanted.len());
        for record in self.log.read_many(&records)? {
            let corrupt =
                |error: crate::codec::CodecError| StorageError::Corrupt(error.to_string());
            let plain = decompress(&record.payload).map_err(corrupt)?;
            let messages = decode_messages(&plain).map_err(corrupt)?;
            for (index, message) in messages.iter().enumerate() {
                let seq = EventSeq::new(record.seq, index as u32);
                if wanted.contains(&seq) {
                    bodies.insert(
                        seq.0,
                        (
                            record.received_at_ms,
                            DecodedEvent {
                                kind: message.kind().map_err(corrupt)?,
                                message_id: message.message_id.to_string(),
                                name: message.name.map(str::to_string),
                                body: crate::codec::message_json(record.received_at_ms, message)
                                    .map_err(corrupt)?,
                            },
                        ),
                    );
                }
            }
        }
        Ok(bodies)
    }

    /// Number of events stored in a workspace.
    pub fn event_count(&self, workspace: &WorkspaceId) -> u64 {
        self.barrier();
        self.state.read().event_count(workspace)
    }

    /// Whether the store answers and the state has caught up with the log after a start.
    pub fn ready(&self) -> StorageResult<bool> {
        self.store.ping()?;
        Ok(self.progress.is_recovered())
    }

    /// Waits until log record `seq` is applied (or the read timeout passes); returns whether it is.
    pub fn wait_for(&self, seq: u64) -> bool {
        self.progress.wait_for_applied(seq, READ_BARRIER_TIMEOUT)
    }

    /// What applying the command at log record `seq` did (waits for it to be applied).
    pub fn command_outcome(&self, seq: u64) -> Option<CommandOutcome> {
        self.wait_for(seq);
        self.state.read().outcome(seq).cloned()
    }

    /// Every journey of a workspace.
    pub fn journeys(&self, workspace: &WorkspaceId) -> Vec<JourneyRecord> {
        self.barrier();
        self.state
            .read()
            .registry(workspace)
            .map(|registry| registry.journeys().cloned().collect())
            .unwrap_or_default()
    }

    /// One journey.
    pub fn journey(&self, workspace: &WorkspaceId, id: &str) -> Option<JourneyRecord> {
        self.barrier();
        self.state.read().registry(workspace)?.journey(id).cloned()
    }

    /// Per-step statistics of every version of a journey.
    pub fn journey_stats(&self, workspace: &WorkspaceId, id: &str) -> Option<serde_json::Value> {
        self.barrier();
        self.state.read().registry(workspace)?.stats(id)
    }

    /// Validation errors of a journey document against the workspace's catalog (empty: valid).
    pub fn check_journey(
        &self,
        workspace: &WorkspaceId,
        document: &cairn_journey::JourneyDocument,
    ) -> Vec<cairn_journey::ValidationError> {
        // The catalog grows with the events applied: check against everything acknowledged so far.
        self.barrier();
        let state = self.state.read();
        let sets = state.federated_sets(workspace);
        match state.registry(workspace) {
            Some(registry) => registry.check_journey(document, sets),
            None => crate::journeys::registry::Registry::default().check_journey(document, sets),
        }
    }

    /// Validation errors of an audience document (empty: valid).
    pub fn check_audience(
        &self,
        workspace: &WorkspaceId,
        document: &cairn_journey::AudienceDocument,
    ) -> Vec<cairn_journey::ValidationError> {
        // The catalog grows with the events applied: check against everything acknowledged so far.
        self.barrier();
        let state = self.state.read();
        match state.registry(workspace) {
            Some(registry) => registry.check_audience(document),
            None => crate::journeys::registry::Registry::default().check_audience(document),
        }
    }

    /// Event names and profile attributes seen in a workspace (what validation knows).
    pub fn catalog(&self, workspace: &WorkspaceId) -> (Vec<String>, Vec<String>) {
        self.barrier();
        let state = self.state.read();
        match state.registry(workspace) {
            Some(registry) => {
                let (events, attributes) = registry.seen();
                (
                    events.iter().cloned().collect(),
                    attributes.iter().cloned().collect(),
                )
            }
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Every message template of a workspace (drafts and published versions).
    pub fn templates(&self, workspace: &WorkspaceId) -> Vec<cairn_template::TemplateHistory> {
        self.barrier();
        self.state
            .read()
            .registry(workspace)
            .map(|registry| registry.templates().cloned().collect())
            .unwrap_or_default()
    }

    /// One message template, without waiting for the applier (for the dispatcher).
    pub fn template_now(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Option<cairn_template::TemplateHistory> {
        self.state.read().registry(workspace)?.template(id).cloned()
    }

    /// One message template.
    pub fn template(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Option<cairn_template::TemplateHistory> {
        self.barrier();
        self.state.read().registry(workspace)?.template(id).cloned()
    }

    /// What templates of a workspace may read (for validation and previews).
    pub fn template_schema(&self, workspace: &WorkspaceId) -> cairn_template::VariableSchema {
        let state = self.state.read();
        match state.registry(workspace) {
            Some(registry) => registry.template_schema(),
            None => crate::journeys::registry::Registry::default().template_schema(),
        }
    }

    /// A workspace's delivery policy.
    pub fn policy(&self, workspace: &WorkspaceId) -> crate::journeys::command::WorkspacePolicy {
        self.barrier();
        self.state
            .read()
            .registry(workspace)
            .map(|registry| registry.policy().clone())
            .unwrap_or_default()
    }

    /// Every audience of a workspace.
    pub fn audiences(&self, workspace: &WorkspaceId) -> Vec<AudienceRecord> {
        self.barrier();
        self.state
            .read()
            .registry(workspace)
            .map(|registry| registry.audience_records().cloned().collect())
            .unwrap_or_default()
    }

    /// Up to `limit` members of an audience; `None` if there is no such audience.
    pub fn audience_members(
        &self,
        workspace: &WorkspaceId,
        audience: &str,
        limit: usize,
    ) -> Option<Vec<ProfileId>> {
        self.barrier();
        let state = self.state.read();
        state.registry(workspace)?.audience_record(audience)?;
        Some(state.audience_members(workspace, audience, limit))
    }

    /// A profile's active enrollments, entry history per journey and audiences; `None` if there is
    /// no such profile.
    pub fn profile_journeys(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> Option<serde_json::Value> {
        self.barrier();
        let state = self.state.read();
        let rank = state.find(workspace, id)?;
        Some(serde_json::json!({
            "enrollments": state.journeys_of(rank),
            "history": state.entry_history_of(rank),
            "audiences": state.audiences_of(rank),
        }))
    }

    /// Why a profile took its path through a journey: every decision of every enrollment, in order,
    /// with the data that decided it. `None` if there is no such profile.
    pub fn trace(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
        journey: &str,
    ) -> StorageResult<Option<Vec<serde_json::Value>>> {
        self.barrier();
        let (ranks, pending) = {
            let state = self.state.read();
            let Some(rank) = state.find(workspace, id) else {
                return Ok(None);
            };
            let ranks = state.ranks_of(rank);
            let pending = state.pending_traces(&ranks, journey);
            (ranks, pending)
        };
        let mut rows = self.store.traces(&ranks, journey)?;
        rows.extend(pending);
        rows.sort_by_key(|row| (row.enrollment, row.profile_rank, row.position));
        rows.dedup_by_key(|row| (row.enrollment, row.profile_rank, row.position));
        let state = self.state.read();
        let Some(registry) = state.registry(workspace) else {
            return Ok(Some(Vec::new()));
        };
        Ok(Some(
            rows.iter()
                .map(|row| crate::state::StoredDecision::view(row, registry))
                .collect(),
        ))
    }

    /// A profile's outbox messages (not its activity items), newest first; `None` if there is no
    /// such profile.
    pub fn messages(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
        limit: usize,
    ) -> StorageResult<Option<Vec<serde_json::Value>>> {
        self.barrier();
        let (ranks, pending) = {
            let state = self.state.read();
            let Some(rank) = state.find(workspace, id) else {
                return Ok(None);
            };
            let ranks = state.ranks_of(rank);
            let pending = state.pending_outbox(&ranks);
            (ranks, pending)
        };
        let mut rows = pending;
        rows.extend(self.store.outbox(&ranks, limit)?);
        rows.retain(|row| !crate::federated::is_internal_channel(&row.channel));
        rows.sort_by(|a, b| (b.at_ms, &b.message_id).cmp(&(a.at_ms, &a.message_id)));
        rows.dedup_by(|a, b| a.message_id == b.message_id);
        rows.truncate(limit);
        Ok(Some(
            rows.into_iter()
                .map(|row| serde_json::from_str(&row.body).unwrap_or_default())
                .collect(),
        ))
    }

    /// Checkpointed `ready` outbox messages decided at or after `since_ms`, oldest first (the
    /// dispatcher catches up with these after a restart or when its feed lagged).
    pub fn ready_outbox(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> StorageResult<Vec<cairn_storage::OutboxRow>> {
        self.store.ready_outbox(since_ms, limit)
    }

    /// Checks a source record against the workspace's identity configuration; applies nothing.
    pub fn check_source_record(
        &self,
        workspace: &WorkspaceId,
        source: &str,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), SourceError> {
        self.state
            .read()
            .check_source_record(workspace, source, id, fields)
    }

    /// The unified id and the profile of a source record.
    pub fn source_record_placement(
        &self,
        workspace: &WorkspaceId,
        key: &RecordKey,
    ) -> Result<RecordPlacement, SourceError> {
        self.barrier();
        self.state.read().record_placement(workspace, key)
    }

    /// A profile's source records as (source, id) as the state has them now (no read barrier):
    /// what federated attribute connectors take. Empty without Customer 360 or such a profile.
    pub fn source_record_ids_now(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> Vec<(String, String)> {
        let state = self.state.read();
        state
            .find(workspace, id)
            .map_or_else(Vec::new, |rank| state.record_ids_of(workspace, rank))
    }

    /// A profile's unified ids, source records (as received) and reconciled attributes; `None` if
    /// there is no such profile.
    pub fn profile_identity(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> Option<ProfileIdentity> {
        self.barrier();
        let state = self.state.read();
        let rank = state.find(workspace, id)?;
        Some(state.profile_identity(workspace, rank))
    }

    /// A profile's consent per channel and subscription group (`null` when it never had any);
    /// `None` if there is no such profile.
    pub fn consent(&self, workspace: &WorkspaceId, id: &ProfileId) -> Option<serde_json::Value> {
        self.barrier();
        let state = self.state.read();
        let rank = state.find(workspace, id)?;
        Some(state.consent_of(rank))
    }

    /// The workspace's active identity ruleset, as JSON.
    pub fn identity_rules(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<serde_json::Value, SourceError> {
        self.state.read().identity_rules(workspace)
    }

    /// How far the workspace's latest re-resolution (a rule change, or the rebuild at start under
    /// a changed file) has come. No read barrier and no lock of the state: it answers while the
    /// applier is re-resolving.
    pub fn identity_rules_progress(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<crate::customer360::RulesProgressView, SourceError> {
        self.identity
            .rules_progress(workspace)
            .ok_or_else(|| SourceError::NotConfigured(workspace.to_string()))
    }

    /// What applying `proposed` to the workspace would merge and split, with samples (a dry run:
    /// the records are copied under the read lock and re-resolved outside it).
    pub fn preview_identity_rules(
        &self,
        workspace: &WorkspaceId,
        proposed: std::sync::Arc<cairn_identity::compiled::CompiledRuleset>,
        samples: usize,
    ) -> Result<crate::customer360::RulesPreview, SourceError> {
        self.barrier();
        let now = self.state.read().records_now(workspace)?;
        Ok(crate::customer360::preview_rules(proposed, &now, samples))
    }

    /// Why two source records are (or are not) one person.
    pub fn explain_records(
        &self,
        workspace: &WorkspaceId,
        left: &RecordKey,
        right: &RecordKey,
    ) -> Result<Explanation, SourceError> {
        self.barrier();
        self.state.read().explain_records(workspace, left, right)
    }

    /// The last committed and the last applied log positions.
    pub fn positions(&self) -> (u64, u64) {
        (self.progress.committed(), self.progress.applied())
    }
}

struct DecodedEvent {
    kind: cairn_model::MessageKind,
    message_id: String,
    name: Option<String>,
    body: serde_json::Value,
}

fn stored_event(
    entry: &TimelineEntry,
    profile_id: ProfileId,
    received_at_ms: i64,
    event: &DecodedEvent,
) -> StorageResult<StoredEvent> {
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| StorageError::Corrupt(format!("timestamp {ms} out of range")))
    };
    Ok(StoredEvent {
        seq: entry.seq as i64,
        profile_id,
        kind: event.kind,
        message_id: event.message_id.clone(),
        name: event.name.clone(),
        timestamp: time(entry.timestamp_ms)?,
        received_at: time(received_at_ms)?,
        message: event.body.clone(),
    })
}
