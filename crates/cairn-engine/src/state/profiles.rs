//! Applying messages to profiles: identity resolution, merges, traits and timelines, then the
//! journeys and audiences that care about the event or the changed traits.

use super::{identifier_key, Applied, ApplyError, Dirty, ProfileRecord, State};
use crate::codec::{CodecError, EncodedMessage};
use crate::identity::{IdentityInput, IdentityResolver};
use cairn_core::identity::{ProfileHead, Target};
use cairn_core::traits::{apply_traits, merge_trait_sets};
use cairn_model::{Identifier, MessageKind, ProfileId, TraitSet, WorkspaceId};
use cairn_storage::EventSeq;
use serde_json::{Map, Value};

/// When and where a message arrives: the state's time, its receive time, its sequence number, its kind.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    now_ms: i64,
    received_at_ms: i64,
    seq: EventSeq,
    kind: MessageKind,
}

impl State {
    fn head(&self, rank: u32) -> ProfileHead {
        let record = self.record(rank);
        ProfileHead {
            id: record.id,
            rank: i64::from(record.rank),
            user_id: record.user_id.clone(),
        }
    }

    /// Applies the messages of the `Messages` record `seq`, received at `received_at_ms`.
    pub(crate) fn apply_messages(
        &mut self,
        seq: u64,
        workspace: &WorkspaceId,
        received_at_ms: i64,
        messages: &[EncodedMessage<'_>],
        identity: &mut dyn IdentityResolver,
    ) -> Result<Applied, ApplyError> {
        debug_assert!(seq > self.applied_seq, "records are applied in log order");
        let now_ms = self.advance_time(received_at_ms, false);
        let mut applied = Applied::default();
        for (index, message) in messages.iter().enumerate() {
            let event_seq = EventSeq::new(seq, index as u32);
            applied.merges += self.apply_message(
                workspace,
                now_ms,
                received_at_ms,
                event_seq,
                message,
                identity,
            )?;
            applied.events += 1;
        }
        self.applied_seq = seq;
        Ok(applied)
    }

    /// Applies one message; returns the number of profiles it merged.
    fn apply_message(
        &mut self,
        workspace: &WorkspaceId,
        now_ms: i64,
        received_at_ms: i64,
        seq: EventSeq,
        message: &EncodedMessage<'_>,
        identity: &mut dyn IdentityResolver,
    ) -> Result<u64, ApplyError> {
        let identifiers = message.identifiers()?;
        let kind = message.kind()?;
        if let Some(id) = message.profile {
            // A message Cairn made about a known profile: no identity resolution.
            let Some(target) = self.find(workspace, &ProfileId(id)) else {
                tracing::warn!(profile = %ProfileId(id), "feedback for an unknown profile dropped");
                return Ok(0);
            };
            let arrival = Arrival {
                now_ms,
                received_at_ms,
                seq,
                kind,
            };
            return self.attach(target, workspace, &arrival, message, false);
        }
        let input = IdentityInput {
            kind,
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
            self.merge(loser.rank as u32, target, now_ms);
        }
        for identifier in &plan.link {
            self.link(workspace, identifier, target);
        }
        let mut changed = !plan.merge.is_empty() || !plan.link.is_empty();
        if plan.user_id.is_some() && plan.user_id != self.record(target).user_id {
            self.record_mut(target).user_id = plan.user_id.clone();
            changed = true;
        }
        let arrival = Arrival {
            now_ms,
            received_at_ms,
            seq,
            kind,
        };
        self.attach(target, workspace, &arrival, message, changed)?;
        if kind == MessageKind::Identify
            && self
                .sources
                .get(workspace)
                .is_some_and(|sources| sources.reads_identify_traits())
        {
            if let Some(traits) = message.traits {
                let traits: Map<String, Value> = serde_json::from_str(traits)
                    .map_err(|error| CodecError::Encoding(format!("traits: {error}")))?;
                self.resolve_identify_traits(workspace, target, &identifiers, &traits, now_ms);
            }
        }
        Ok(plan.merge.len() as u64)
    }

    /// Attaches a message to profile `target`: its traits, the timeline, and what journeys and
    /// audiences make of it. `changed`: the identity part already changed the profile.
    fn attach(
        &mut self,
        target: u32,
        workspace: &WorkspaceId,
        arrival: &Arrival,
        message: &EncodedMessage<'_>,
        changed: bool,
    ) -> Result<u64, ApplyError> {
        let Arrival {
            now_ms,
            received_at_ms,
            seq,
            kind,
        } = *arrival;
        let merged = changed;
        let mut changed = changed;
        let mut traits_changed = false;
        if let Some(traits) = message.traits {
            let traits: Map<String, Value> = serde_json::from_str(traits)
                .map_err(|error| CodecError::Encoding(format!("traits: {error}")))?;
            traits_changed = apply_traits(
                &mut self.record_mut(target).traits,
                &traits,
                message.timestamp_ms,
            );
            changed |= traits_changed;
            // The workspace's first message creates its registry here, so its traits are known too.
            self.registries
                .entry(workspace.clone())
                .or_default()
                .observe(None, traits.keys().map(String::as_str));
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
        self.touch(
            target,
            if changed {
                Dirty::Full
            } else {
                Dirty::Counters
            },
        );
        let event_name = (kind == MessageKind::Track)
            .then_some(message.name)
            .flatten();
        self.after_message(
            target,
            workspace,
            now_ms,
            received_at_ms,
            event_name,
            message,
            traits_changed || merged,
        )?;
        Ok(0)
    }

    pub(super) fn find_or_create(
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
            journey: None,
            dirty: Dirty::Clean,
        });
        self.touch(rank, Dirty::Full);
        rank
    }

    pub(super) fn link(&mut self, workspace: &WorkspaceId, identifier: &Identifier, rank: u32) {
        let index = self.workspaces.entry(workspace.clone()).or_default();
        index.by_identifier.insert(identifier_key(identifier), rank);
        let record = self.record_mut(rank);
        if !record.identifiers.contains(identifier) {
            record.identifiers.push(identifier.clone());
        }
        self.touch(rank, Dirty::Full);
    }

    /// Merges `loser` into `survivor`: identifiers move, traits merge per field by event time, the
    /// loser and everything merged into it point at the survivor, and the two profiles' journeys merge
    /// (see [`cairn_journey::merge_profiles`]). Events stay where they are; the survivor's timeline reads
    /// them through its merged ranks.
    pub(super) fn merge(&mut self, loser: u32, survivor: u32, now_ms: i64) {
        debug_assert_ne!(loser, survivor);
        debug_assert!(
            self.record(loser).merged_into.is_none(),
            "losers are survivors"
        );
        let workspace = self.record(loser).workspace.clone();
        let moved_identifiers = std::mem::take(&mut self.record_mut(loser).identifiers);
        let moved_merged = std::mem::take(&mut self.record_mut(loser).merged);
        let loser_traits = std::mem::take(&mut self.record_mut(loser).traits);
        let loser_journeys = self.record_mut(loser).journey.take();
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
        if let Some(absorbed) = loser_journeys {
            self.merge_journeys(survivor, *absorbed, now_ms);
        }
    }
}
