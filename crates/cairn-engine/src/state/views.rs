//! What readers see of the state: profiles, where their timelines are, counts.

use super::State;
use cairn_model::{Identifier, PartitionId, Profile, ProfileId, WorkspaceId};
use cairn_storage::TimelineEntry;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// What a profile's messages may reach: its consent and the addresses that hard-bounced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientState {
    pub profile: ProfileId,
    pub consent: cairn_delivery::ConsentState,
    pub undeliverable: Vec<String>,
}

/// Where a profile's timeline is: the ranks whose events it shows and the entries not yet stored.
pub(crate) struct TimelineScope {
    pub ranks: Vec<u32>,
    pub pending: Vec<TimelineEntry>,
    pub ids: HashMap<u32, ProfileId>,
}

impl State {
    /// The surviving profile of an id in a workspace.
    pub(crate) fn find(&self, workspace: &WorkspaceId, id: &ProfileId) -> Option<u32> {
        let rank = *self.workspaces.get(workspace)?.by_id.get(id)?;
        Some(self.survivor(rank))
    }

    /// The surviving profile an identifier points to.
    pub(crate) fn find_by_identifier(
        &self,
        workspace: &WorkspaceId,
        identifier: &Identifier,
    ) -> Option<u32> {
        let rank = *self
            .workspaces
            .get(workspace)?
            .by_identifier
            .get(&super::identifier_key(identifier))?;
        Some(self.survivor(rank))
    }

    /// A surviving profile's rank and the ranks merged into it.
    pub(crate) fn ranks_of(&self, rank: u32) -> Vec<u32> {
        let mut ranks = vec![rank];
        ranks.extend(self.record(rank).merged.iter().copied());
        ranks
    }

    pub(crate) fn view(&self, rank: u32) -> Profile {
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
        let ranks = self.ranks_of(survivor);
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

    /// A profile's consent and its hard-bounced addresses (the survivor's: a merge absorbs the
    /// merged profiles' consent), with the survivor's id.
    pub(crate) fn recipient_state(
        &self,
        workspace: &WorkspaceId,
        id: &ProfileId,
    ) -> Option<RecipientState> {
        let rank = self.find(workspace, id)?;
        let record = self.record(rank);
        let (consent, undeliverable) = match &record.journey {
            Some(state) => (state.consent.clone(), state.undeliverable.clone()),
            None => Default::default(),
        };
        Some(RecipientState {
            profile: record.id,
            consent,
            undeliverable,
        })
    }

    /// The surviving profiles of a workspace whose trait `name` is a string `matches` accepts (a scan
    /// of the workspace: for rare lookups such as an inbound SMS by phone number).
    pub(crate) fn profiles_with_trait(
        &self,
        workspace: &WorkspaceId,
        name: &str,
        matches: &dyn Fn(&str) -> bool,
    ) -> Vec<ProfileId> {
        let Some(index) = self.workspaces.get(workspace) else {
            return Vec::new();
        };
        let mut found: Vec<ProfileId> = index
            .by_id
            .values()
            .filter(|&&rank| self.survivor(rank) == rank)
            .map(|&rank| self.record(rank))
            .filter(|record| {
                record
                    .traits
                    .values
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(matches)
            })
            .map(|record| record.id)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// A surviving profile's consent per channel and subscription group (what messages obey).
    pub(crate) fn consent_of(&self, rank: u32) -> serde_json::Value {
        self.record(rank)
            .journey
            .as_ref()
            .and_then(|state| serde_json::to_value(&state.consent).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The workspace that holds a profile id.
    pub(crate) fn workspace_of(&self, id: &ProfileId) -> Option<WorkspaceId> {
        self.workspaces
            .iter()
            .find(|(_, index)| index.by_id.contains_key(id))
            .map(|(workspace, _)| workspace.clone())
    }

    pub(crate) fn event_count(&self, workspace: &WorkspaceId) -> u64 {
        self.workspaces
            .get(workspace)
            .map_or(0, |index| index.event_count)
    }
}
