//! Source records on the apply path: the workspace's Customer 360 resolver, and how its clusters map
//! onto engine profiles.
//!
//! **Mapping rule** (deterministic, a function of the log):
//! 1. A cluster (unified id) that already maps onto a profile keeps it.
//! 2. When the resolver merges cluster `from` into `into` and both map onto different profiles, the
//!    engine merges those profiles with its usual machinery ([`State::merge`]): the older profile
//!    (lower rank) survives, identifiers and traits move, enrollments merge by
//!    `cairn_journey::merge_profiles` (the enrollment that entered first survives; message ids come
//!    from enrollment ids, so nothing is sent twice), consents, send history (frequency caps) and
//!    delayed messages are absorbed.
//! 3. A new cluster maps onto the profile an exact identifier of its record (email, user id) already
//!    points to (a profile made by events), else onto a new profile whose id derives from the
//!    workspace and the record key.
//! 4. The record's emails and user id are linked to the profile, so later events with them land
//!    there. An identifier already held by a profile of another cluster stays where it is (the rules
//!    keep those people apart); one held by a profile without source records merges that profile in.
//! 5. Splits (an un-merge, a removed record, a new hub) change the resolver's view only: the engine
//!    profile stays whole and the split-off cluster keeps mapping onto it.
//!
//! 6. The traits of an `identify` message are a record of the workspace's `web` source, when it
//!    declares one (keyed by the mapping's id field, usually `userId`): resolved like any record
//!    (fuzzy rules included), its cluster maps onto the message's profile, or that profile merges
//!    with the person the rules found.
//!
//! The reconciled scalar attributes (names, birth date, custom traits, first email and phone) are
//! written to the profile's traits at the record's apply time, so conditions and templates see
//! them. The whole per-workspace state (resolver snapshot, records as received, cluster → profile) is
//! written to the checkpoint when it changed and restored at load.

use super::{Dirty, State};
use crate::customer360::{
    map_source_record, resolve_stored, IdentityConfigs, ProfileIdentity, RecordPlacement,
    RecordsNow, SourceError, SourceRecordView,
};
use crate::journeys::command::CommandOutcome;
use cairn_core::traits::apply_traits;
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::reconcile::{reconcile, GoldenRecord};
use cairn_identity::{CanonicalRecord, Explanation, RecordKey, Resolution, Resolver, UnifiedId};
use cairn_model::{Identifier, IdentifierKind, ProfileId, WorkspaceId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128;

/// A record as received, kept for the 360 view and for rebuilding the resolver.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRecord {
    /// The JSON object as received (text: the checkpoint encoding is postcard).
    fields: String,
    received_at_ms: i64,
    /// First-upsert order (the resolver's record age).
    age: u64,
}

/// What a checkpoint holds of one workspace.
#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    resolver: Vec<u8>,
    /// Each record with the rank of the profile it was on.
    records: Vec<(RecordKey, StoredRecord, Option<u32>)>,
    clusters: Vec<(UnifiedId, u32)>,
    next_age: u64,
}

/// One workspace's Customer 360 state.
pub(crate) struct WorkspaceSources {
    compiled: Arc<CompiledRuleset>,
    resolver: Resolver,
    records: HashMap<RecordKey, StoredRecord>,
    /// Unified id → the rank of the profile it maps onto (read through `survivor`).
    cluster_profile: HashMap<UnifiedId, u32>,
    /// The reverse: rank → unified ids (read through `ranks_of`).
    profile_clusters: HashMap<u32, BTreeSet<UnifiedId>>,
    next_age: u64,
    dirty: bool,
}

impl std::fmt::Debug for WorkspaceSources {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WorkspaceSources")
            .field("records", &self.records.len())
            .field("clusters", &self.cluster_profile.len())
            .field("dirty", &self.dirty)
            .finish()
    }
}

impl WorkspaceSources {
    fn new(compiled: Arc<CompiledRuleset>) -> WorkspaceSources {
        WorkspaceSources {
            resolver: Resolver::with_compiled(compiled.clone()),
            compiled,
            records: HashMap::new(),
            cluster_profile: HashMap::new(),
            profile_clusters: HashMap::new(),
            next_age: 0,
            dirty: false,
        }
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Keeps a record as received (an update keeps the record's age).
    fn keep_record(&mut self, key: RecordKey, fields: &Map<String, Value>, now: i64) {
        let age = match self.records.get(&key) {
            Some(stored) => stored.age,
            None => {
                self.next_age += 1;
                self.next_age
            }
        };
        let fields = Value::Object(fields.clone()).to_string();
        self.records.insert(
            key,
            StoredRecord {
                fields,
                received_at_ms: now,
                age,
            },
        );
        self.dirty = true;
    }

    /// Whether the workspace declares the `web` source (identify traits are its records).
    pub(crate) fn reads_identify_traits(&self) -> bool {
        self.compiled.sources.get(WEB_SOURCE).is_some()
    }

    fn assign(&mut self, unified_id: &UnifiedId, rank: u32) {
        self.unassign(unified_id);
        self.cluster_profile.insert(unified_id.clone(), rank);
        self.profile_clusters
            .entry(rank)
            .or_default()
            .insert(unified_id.clone());
    }

    fn unassign(&mut self, unified_id: &UnifiedId) -> Option<u32> {
        let rank = self.cluster_profile.remove(unified_id)?;
        if let Some(set) = self.profile_clusters.get_mut(&rank) {
            set.remove(unified_id);
            if set.is_empty() {
                self.profile_clusters.remove(&rank);
            }
        }
        Some(rank)
    }

    fn encode(&self) -> Vec<u8> {
        let mut records: Vec<(RecordKey, StoredRecord, Option<u32>)> = self
            .records
            .iter()
            .map(|(key, record)| {
                let rank = self
                    .resolver
                    .unified_id(key)
                    .and_then(|id| self.cluster_profile.get(id))
                    .copied();
                (key.clone(), record.clone(), rank)
            })
            .collect();
        records.sort_by_key(|(_, record, _)| record.age);
        let mut clusters: Vec<(UnifiedId, u32)> = self
            .cluster_profile
            .iter()
            .map(|(id, rank)| (id.clone(), *rank))
            .collect();
        clusters.sort();
        let persisted = Persisted {
            resolver: self.resolver.snapshot(),
            records,
            clusters,
            next_age: self.next_age,
        };
        // Plain data: encoding cannot fail.
        postcard::to_allocvec(&persisted).unwrap_or_default()
    }

    /// Restores a checkpointed state. Under a changed ruleset the snapshot is refused; the resolver
    /// is then rebuilt from the records as received, in their original order, and each new cluster
    /// maps onto the profile its oldest record was on.
    fn decode(compiled: Arc<CompiledRuleset>, bytes: &[u8]) -> Result<WorkspaceSources, String> {
        let persisted: Persisted = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        let mut sources = WorkspaceSources::new(compiled.clone());
        sources.next_age = persisted.next_age;
        match Resolver::restore(compiled.clone(), &persisted.resolver) {
            Ok(resolver) => {
                sources.resolver = resolver;
                for (id, rank) in &persisted.clusters {
                    sources.assign(id, *rank);
                }
                sources.records = persisted
                    .records
                    .into_iter()
                    .map(|(key, record, _)| (key, record))
                    .collect();
            }
            Err(error) => {
                tracing::warn!(%error, "identity snapshot refused (the ruleset changed); re-resolving the source records");
                for (key, record, rank) in persisted.records {
                    match resolve_stored(&mut sources.resolver, &compiled, &key, &record.fields) {
                        Ok(resolution) => {
                            if let (Some(id), Some(rank)) = (resolution.unified_id, rank) {
                                if !sources.cluster_profile.contains_key(&id) {
                                    sources.assign(&id, rank);
                                }
                            }
                            sources.records.insert(key, record);
                        }
                        Err(error) => {
                            tracing::warn!(record = %key, %error, "a source record no longer maps; dropped")
                        }
                    }
                }
                sources.dirty = true;
            }
        }
        Ok(sources)
    }
}

/// The source whose records are the traits of `identify` messages, when a workspace declares it.
pub(crate) const WEB_SOURCE: &str = "web";

/// The id of a profile founded by a source record.
fn profile_id_of_record(workspace: &WorkspaceId, key: &RecordKey) -> ProfileId {
    let text = format!(
        "{}\u{1f}source\u{1f}{}\u{1f}{}",
        workspace.as_str(),
        key.source,
        key.source_id
    );
    ProfileId(xxh3_128(text.as_bytes()))
}

/// The engine identifiers a canonical record carries: its emails and its user id.
fn engine_identifiers(record: &CanonicalRecord) -> Vec<Identifier> {
    let mut identifiers: Vec<Identifier> = record
        .external_ids
        .get("user_id")
        .into_iter()
        .flatten()
        .filter(|value| !value.trim().is_empty())
        .map(|value| Identifier::new(IdentifierKind::UserId, value.trim()))
        .collect();
    identifiers.extend(
        record
            .emails
            .iter()
            .filter(|email| email.contains('@'))
            .map(|email| Identifier::email(email)),
    );
    identifiers
}

/// The reconciled attributes written to a profile's traits (Segment's trait names).
fn golden_traits(golden: &GoldenRecord) -> Map<String, Value> {
    let mut traits = Map::new();
    for (field, value) in &golden.fields {
        let name = match field.as_str() {
            "first_name" => "firstName".to_string(),
            "last_name" => "lastName".to_string(),
            "full_name" => "name".to_string(),
            "date_of_birth" => "birthday".to_string(),
            other => match other.strip_prefix("trait.") {
                Some(name) => name.to_string(),
                None => continue,
            },
        };
        traits.insert(name, Value::String(value.value.clone()));
    }
    if let Some(email) = golden.emails.first() {
        traits.insert("email".into(), Value::String(email.value.clone()));
    }
    if let Some(phone) = golden.phones.first() {
        traits.insert("phone".into(), Value::String(phone.value.clone()));
    }
    traits
}

impl State {
    /// Sets the workspaces' identity configurations and restores their checkpointed state
    /// (called once, before the first record is applied).
    pub(crate) fn configure_identity(&mut self, configs: &IdentityConfigs) {
        let mut stored = std::mem::take(&mut self.stored_identity);
        for (workspace, compiled) in configs.0.iter() {
            let sources = match stored.remove(workspace) {
                Some(bytes) => match WorkspaceSources::decode(compiled.clone(), &bytes) {
                    Ok(sources) => sources,
                    Err(error) => {
                        tracing::error!(%workspace, %error, "the identity checkpoint cannot be read; starting empty");
                        WorkspaceSources::new(compiled.clone())
                    }
                },
                None => WorkspaceSources::new(compiled.clone()),
            };
            self.sources.insert(workspace.clone(), sources);
        }
        // A workspace whose configuration was removed keeps its stored state for a later start.
        self.stored_identity = stored;
    }

    /// Upserts a source record: resolve it, map its cluster onto a profile, merge profiles the
    /// resolver merged, link its identifiers, write its reconciled attributes to the traits.
    pub(crate) fn upsert_source_record(
        &mut self,
        workspace: &WorkspaceId,
        source: &str,
        id: &str,
        fields: &Map<String, Value>,
        now: i64,
    ) -> CommandOutcome {
        let Some(mut sources) = self.sources.remove(workspace) else {
            return CommandOutcome::refused(
                SourceError::NotConfigured(workspace.to_string()).to_string(),
            );
        };
        let outcome = self.upsert_into(&mut sources, workspace, source, id, fields, now);
        self.sources.insert(workspace.clone(), sources);
        outcome
    }

    fn upsert_into(
        &mut self,
        sources: &mut WorkspaceSources,
        workspace: &WorkspaceId,
        source: &str,
        id: &str,
        fields: &Map<String, Value>,
        now: i64,
    ) -> CommandOutcome {
        let record = match map_source_record(&sources.compiled, source, id, fields) {
            Ok(record) => record,
            Err(error) => return CommandOutcome::refused(error.to_string()),
        };
        let key = record.key.clone();
        let identifiers = engine_identifiers(&record);
        let resolution = match sources.resolver.upsert(record) {
            Ok(resolution) => resolution,
            Err(error) => return CommandOutcome::refused(error.to_string()),
        };
        sources.keep_record(key.clone(), fields, now);
        self.follow_merges_and_splits(sources, &resolution, now);
        let Some(unified_id) = resolution.unified_id.clone() else {
            return CommandOutcome::refused("the resolver placed the record nowhere");
        };
        let rank = self.place_cluster(sources, workspace, &key, &unified_id, &identifiers, now);
        let rank = self.link_record(sources, workspace, rank, &identifiers, now);
        self.write_golden_traits(sources, rank, now);
        let mut outcome = CommandOutcome::done(format!(
            "{key} is in profile {} (unified id {unified_id})",
            self.record(rank).id
        ));
        outcome.message = serde_json::json!({
            "profile_id": self.record(rank).id,
            "unified_id": unified_id,
            "merged": resolution.merged,
            "links": resolution.links.len(),
        })
        .to_string();
        outcome
    }

    /// Resolves an `identify` message's traits as a record of the workspace's `web` source (if it
    /// declares one): the fields its mapping reads, with `userId` and `anonymousId` beside the traits;
    /// the record id is its mapping's `id` field. The cluster maps onto the message's profile
    /// `target`, or, if the rules put the visitor with a known person, the two profiles merge.
    /// Returns the surviving rank.
    pub(super) fn resolve_identify_traits(
        &mut self,
        workspace: &WorkspaceId,
        target: u32,
        identifiers: &[Identifier],
        traits: &Map<String, Value>,
        now: i64,
    ) -> u32 {
        let Some(mut sources) = self.sources.remove(workspace) else {
            return target;
        };
        let rank = self.resolve_web_record(&mut sources, target, identifiers, traits, now);
        self.sources.insert(workspace.clone(), sources);
        rank
    }

    fn resolve_web_record(
        &mut self,
        sources: &mut WorkspaceSources,
        target: u32,
        identifiers: &[Identifier],
        traits: &Map<String, Value>,
        now: i64,
    ) -> u32 {
        let Some(config) = sources.compiled.sources.get(WEB_SOURCE) else {
            return target;
        };
        let readable = config.referenced_fields();
        let mut fields: Map<String, Value> = traits
            .iter()
            .filter(|(name, _)| {
                readable
                    .iter()
                    .any(|field| field == name || field.starts_with(&format!("{name}.")))
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        for identifier in identifiers {
            let name = match identifier.kind {
                IdentifierKind::UserId => "userId",
                IdentifierKind::AnonymousId => "anonymousId",
                IdentifierKind::Email => continue,
            };
            if readable.contains(&name) {
                fields.insert(name.into(), Value::String(identifier.value.clone()));
            }
        }
        let raw = cairn_identity::files::raw_fields_of_json(&fields);
        let Some(key) = sources.compiled.sources.key_of(WEB_SOURCE, &raw) else {
            return target;
        };
        let record = match config.map_record(WEB_SOURCE, &raw) {
            Ok(record) => record,
            Err(error) => {
                tracing::debug!(record = %key, %error, "identify traits do not map onto the web source");
                return target;
            }
        };
        let resolution = match sources.resolver.upsert(record) {
            Ok(resolution) => resolution,
            Err(error) => {
                tracing::debug!(record = %key, %error, "identify traits not resolved");
                return target;
            }
        };
        if !resolution.changed {
            return self.survivor(target);
        }
        sources.keep_record(key, &fields, now);
        self.follow_merges_and_splits(sources, &resolution, now);
        let target = self.survivor(target);
        let Some(unified_id) = resolution.unified_id else {
            return target;
        };
        let rank = match sources.cluster_profile.get(&unified_id) {
            Some(&rank) => {
                let rank = self.survivor(rank);
                if rank == target {
                    rank
                } else {
                    let (survivor, loser) = (rank.min(target), rank.max(target));
                    self.merge(loser, survivor, now);
                    sources.assign(&unified_id, survivor);
                    survivor
                }
            }
            None => {
                sources.assign(&unified_id, target);
                target
            }
        };
        self.write_golden_traits(sources, rank, now);
        rank
    }

    /// Removes a source record from the resolver (its profile may split in the resolver's view;
    /// the engine profile stays whole, see the module documentation).
    pub(crate) fn remove_source_record(
        &mut self,
        workspace: &WorkspaceId,
        source: &str,
        id: &str,
        now: i64,
    ) -> CommandOutcome {
        let Some(mut sources) = self.sources.remove(workspace) else {
            return CommandOutcome::refused(
                SourceError::NotConfigured(workspace.to_string()).to_string(),
            );
        };
        let key = RecordKey::new(source, id);
        let before = sources.resolver.unified_id(&key).cloned();
        let outcome = match sources.resolver.remove(&key) {
            None => {
                CommandOutcome::refused(SourceError::RecordNotFound(key.to_string()).to_string())
            }
            Some(resolution) => {
                sources.records.remove(&key);
                sources.dirty = true;
                self.follow_merges_and_splits(&mut sources, &resolution, now);
                if let Some(before) = before {
                    if sources.resolver.records_of(&before).is_empty() {
                        sources.unassign(&before);
                    }
                }
                CommandOutcome::done(format!("{key} removed"))
            }
        };
        self.sources.insert(workspace.clone(), sources);
        outcome
    }

    /// An administrator's un-merge: the two records are never one person again; the resolver splits
    /// their cluster (the engine profile stays whole, rule 5).
    pub(crate) fn unmerge_source_records(
        &mut self,
        workspace: &WorkspaceId,
        left: &RecordKey,
        right: &RecordKey,
        now: i64,
    ) -> CommandOutcome {
        let Some(mut sources) = self.sources.remove(workspace) else {
            return CommandOutcome::refused(
                SourceError::NotConfigured(workspace.to_string()).to_string(),
            );
        };
        let outcome = match sources.resolver.unmerge(left, right) {
            Ok(resolution) => {
                sources.dirty = true;
                self.follow_merges_and_splits(&mut sources, &resolution, now);
                CommandOutcome::done(serde_json::json!({"split": resolution.split}).to_string())
            }
            Err(error) => CommandOutcome::refused(error.to_string()),
        };
        self.sources.insert(workspace.clone(), sources);
        outcome
    }

    /// The workspace's records as received, oldest first, and their clusters now (copied as
    /// stored: the caller parses them outside the lock).
    pub(crate) fn records_now(&self, workspace: &WorkspaceId) -> Result<RecordsNow, SourceError> {
        let sources = self.sources_of(workspace)?;
        let mut stored: Vec<(&RecordKey, &StoredRecord)> = sources.records.iter().collect();
        stored.sort_by_key(|(_, record)| record.age);
        Ok(RecordsNow {
            records: stored
                .into_iter()
                .map(|(key, record)| (key.clone(), record.fields.clone()))
                .collect(),
            assignments: sources.resolver.assignments(),
        })
    }

    /// The workspace's active ruleset (sources, rules, protection, reconciliation).
    pub(crate) fn identity_rules(&self, workspace: &WorkspaceId) -> Result<Value, SourceError> {
        let sources = self.sources_of(workspace)?;
        Ok(serde_json::to_value(&sources.compiled.ruleset).unwrap_or(Value::Null))
    }

    /// Rule 2 and 5 of the module documentation.
    fn follow_merges_and_splits(
        &mut self,
        sources: &mut WorkspaceSources,
        resolution: &Resolution,
        now: i64,
    ) {
        for merge in &resolution.merged {
            let from = sources
                .unassign(&merge.from)
                .map(|rank| self.survivor(rank));
            let into = sources
                .cluster_profile
                .get(&merge.into)
                .map(|&rank| self.survivor(rank));
            match (from, into) {
                (Some(from), Some(into)) if from != into => {
                    let (survivor, loser) = (from.min(into), from.max(into));
                    self.merge(loser, survivor, now);
                    sources.assign(&merge.into, survivor);
                }
                (Some(from), None) => sources.assign(&merge.into, from),
                _ => {}
            }
        }
        for split in &resolution.split {
            if sources.cluster_profile.contains_key(&split.into) {
                continue;
            }
            if let Some(&rank) = sources.cluster_profile.get(&split.from) {
                sources.assign(&split.into, rank);
            }
        }
    }

    /// Rules 1 and 3: the profile a record's cluster maps onto.
    fn place_cluster(
        &mut self,
        sources: &mut WorkspaceSources,
        workspace: &WorkspaceId,
        key: &RecordKey,
        unified_id: &UnifiedId,
        identifiers: &[Identifier],
        now: i64,
    ) -> u32 {
        if let Some(&rank) = sources.cluster_profile.get(unified_id) {
            return self.survivor(rank);
        }
        let found = identifiers
            .iter()
            .filter_map(|identifier| self.find_by_identifier(workspace, identifier))
            .filter(|&rank| !self.has_clusters(sources, rank))
            .min();
        let rank = match found {
            Some(rank) => rank,
            None => self.find_or_create(workspace, profile_id_of_record(workspace, key), None, now),
        };
        sources.assign(unified_id, rank);
        rank
    }

    /// Whether a surviving profile has source records (through any rank merged into it).
    fn has_clusters(&self, sources: &WorkspaceSources, rank: u32) -> bool {
        self.ranks_of(rank)
            .iter()
            .any(|rank| sources.profile_clusters.contains_key(rank))
    }

    /// Rule 4: links the record's identifiers; returns the surviving rank.
    fn link_record(
        &mut self,
        sources: &WorkspaceSources,
        workspace: &WorkspaceId,
        mut rank: u32,
        identifiers: &[Identifier],
        now: i64,
    ) -> u32 {
        for identifier in identifiers {
            match self.find_by_identifier(workspace, identifier) {
                Some(holder) if holder == rank => {}
                Some(holder) if !self.has_clusters(sources, holder) => {
                    let (survivor, loser) = (holder.min(rank), holder.max(rank));
                    self.merge(loser, survivor, now);
                    rank = survivor;
                }
                Some(_) => {
                    tracing::debug!(
                        ?identifier,
                        "identifier held by another person's profile; not linked"
                    );
                }
                None => self.link(workspace, identifier, rank),
            }
            if identifier.kind == IdentifierKind::UserId && self.record(rank).user_id.is_none() {
                self.record_mut(rank).user_id = Some(identifier.value.clone());
                self.touch(rank, Dirty::Full);
            }
        }
        rank
    }

    /// The golden record over every source record of a surviving profile.
    fn golden_of(&self, sources: &WorkspaceSources, rank: u32) -> (Vec<UnifiedId>, GoldenRecord) {
        let ids = self.clusters_of(sources, rank);
        let records: Vec<&CanonicalRecord> = ids
            .iter()
            .flat_map(|id| sources.resolver.records_of(id))
            .collect();
        let ruleset = &sources.compiled.ruleset;
        let golden = reconcile(
            &records,
            &sources.compiled.sources,
            &ruleset.reconciliation,
            &ruleset.normalization,
        );
        (ids, golden)
    }

    fn clusters_of(&self, sources: &WorkspaceSources, rank: u32) -> Vec<UnifiedId> {
        let mut ids: Vec<UnifiedId> = self
            .ranks_of(rank)
            .iter()
            .filter_map(|rank| sources.profile_clusters.get(rank))
            .flatten()
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn write_golden_traits(&mut self, sources: &WorkspaceSources, rank: u32, now: i64) {
        let (_, golden) = self.golden_of(sources, rank);
        let traits = golden_traits(&golden);
        let changed = apply_traits(&mut self.record_mut(rank).traits, &traits, now);
        if changed {
            let record = self.record_mut(rank);
            record.updated_at_ms = record.updated_at_ms.max(now);
            self.touch(rank, Dirty::Full);
            let workspace = self.record(rank).workspace.clone();
            self.registries
                .entry(workspace)
                .or_default()
                .observe(None, traits.keys().map(String::as_str));
            self.settle_after(rank, now, true);
        }
    }

    /// The changed workspaces' identity states, for a checkpoint.
    pub(crate) fn identity_checkpoint(&mut self) -> Vec<(WorkspaceId, Vec<u8>)> {
        let mut changed: Vec<(WorkspaceId, Vec<u8>)> = self
            .sources
            .iter_mut()
            .filter(|(_, sources)| sources.dirty)
            .map(|(workspace, sources)| {
                sources.dirty = false;
                (workspace.clone(), sources.encode())
            })
            .collect();
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        changed
    }

    /// A checkpoint failed: write the identity states it held next time.
    pub(crate) fn identity_checkpoint_failed(&mut self, workspaces: &[(WorkspaceId, Vec<u8>)]) {
        for (workspace, _) in workspaces {
            if let Some(sources) = self.sources.get_mut(workspace) {
                sources.dirty = true;
            }
        }
    }

    /// Checks a record against the workspace's configuration without applying it.
    pub(crate) fn check_source_record(
        &self,
        workspace: &WorkspaceId,
        source: &str,
        id: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), SourceError> {
        let sources = self.sources_of(workspace)?;
        map_source_record(&sources.compiled, source, id, fields).map(|_| ())
    }

    fn sources_of(&self, workspace: &WorkspaceId) -> Result<&WorkspaceSources, SourceError> {
        self.sources
            .get(workspace)
            .ok_or_else(|| SourceError::NotConfigured(workspace.to_string()))
    }

    /// Where a source record lives.
    pub(crate) fn record_placement(
        &self,
        workspace: &WorkspaceId,
        key: &RecordKey,
    ) -> Result<RecordPlacement, SourceError> {
        let sources = self.sources_of(workspace)?;
        if sources.compiled.sources.get(&key.source).is_none() {
            return Err(SourceError::UnknownSource(key.source.clone()));
        }
        let not_found = || SourceError::RecordNotFound(key.to_string());
        let unified_id = sources.resolver.unified_id(key).ok_or_else(not_found)?;
        let rank = *sources
            .cluster_profile
            .get(unified_id)
            .ok_or_else(not_found)?;
        Ok(RecordPlacement {
            source: key.source.clone(),
            id: key.source_id.clone(),
            unified_id: unified_id.to_string(),
            profile_id: self.record(self.survivor(rank)).id,
        })
    }

    /// A surviving profile's unified ids, source records and reconciled attributes.
    pub(crate) fn profile_identity(&self, workspace: &WorkspaceId, rank: u32) -> ProfileIdentity {
        let Ok(sources) = self.sources_of(workspace) else {
            return ProfileIdentity::default();
        };
        let (ids, golden) = self.golden_of(sources, rank);
        let mut records = Vec::new();
        for id in &ids {
            for canonical in sources.resolver.records_of(id) {
                let stored = sources.records.get(&canonical.key);
                records.push(SourceRecordView {
                    source: canonical.key.source.clone(),
                    id: canonical.key.source_id.clone(),
                    unified_id: id.to_string(),
                    fields: stored
                        .and_then(|stored| serde_json::from_str(&stored.fields).ok())
                        .unwrap_or(Value::Null),
                    canonical: canonical.clone(),
                    received_at_ms: stored.map_or(0, |stored| stored.received_at_ms),
                });
            }
        }
        ProfileIdentity {
            configured: true,
            unified_ids: ids.iter().map(ToString::to_string).collect(),
            records,
            reconciled: golden,
        }
    }

    /// A profile's source records as (source, id), without their fields or a reconciliation:
    /// what federated attribute connectors are parameterized by. Empty without Customer 360.
    pub(crate) fn record_ids_of(
        &self,
        workspace: &WorkspaceId,
        rank: u32,
    ) -> Vec<(String, String)> {
        let Ok(sources) = self.sources_of(workspace) else {
            return Vec::new();
        };
        self.clusters_of(sources, rank)
            .iter()
            .flat_map(|id| sources.resolver.records_of(id))
            .map(|canonical| {
                (
                    canonical.key.source.clone(),
                    canonical.key.source_id.clone(),
                )
            })
            .collect()
    }

    /// Why two records are (or are not) one person.
    pub(crate) fn explain_records(
        &self,
        workspace: &WorkspaceId,
        left: &RecordKey,
        right: &RecordKey,
    ) -> Result<Explanation, SourceError> {
        let sources = self.sources_of(workspace)?;
        for key in [left, right] {
            if sources.compiled.sources.get(&key.source).is_none() {
                return Err(SourceError::UnknownSource(key.source.clone()));
            }
        }
        sources
            .resolver
            .explain(left, right)
            .map_err(|error| match error {
                cairn_identity::IdentityError::RecordNotFound { .. } => {
                    SourceError::RecordNotFound(error.to_string())
                }
                other => SourceError::InvalidRecord(other.to_string()),
            })
    }
}
