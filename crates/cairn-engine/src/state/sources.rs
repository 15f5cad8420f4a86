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
//! 5. When the resolver splits a cluster (an un-merge, a removed record, a changed record, a new
//!    hub), the engine splits its profile. The side holding the cluster's oldest record keeps the
//!    unified id and the profile: its id, events and timeline, enrollments, messages, consents and
//!    send history. Every other side maps onto a new profile (its id derives from the workspace and
//!    the side's unified id, with an attempt number hashed in should that id be taken already: a
//!    function of the log) that starts with the identifiers its records bring (emails, user ids;
//!    not those the keeping side's records bring too) and the traits reconciled from its records;
//!    it has no enrollments, so nothing already sent is sent again. Both sides' reconciled traits are
//!    recomputed from their own records (a trait only the split-off records gave leaves the keeping
//!    profile). Later events with a moved identifier land on the new profile; the keeping profile's
//!    merged-away ids still resolve to it.
//! 6. The traits of an `identify` message are a record of the workspace's `web` source, when it
//!    declares one (keyed by the mapping's id field, usually `userId`): resolved like any record
//!    (fuzzy rules included), its cluster maps onto the message's profile, or that profile merges
//!    with the person the rules found.
//! 7. When a record is removed, its profile's reconciled traits are recomputed from the records it
//!    has left, with the code a split's keeping side uses: a trait only the removed record gave
//!    leaves the profile (while the profile still holds that value: an event may have set it
//!    since), one other records give too takes their reconciled value. The identifiers the record
//!    brought stay on the profile: events may have used them, and those events stay there.
//!
//! The reconciled scalar attributes (names, birth date, custom traits, first email and phone) are
//! written to the profile's traits at the record's apply time, so conditions and templates see
//! them. The whole per-workspace state (resolver snapshot, records as received, cluster → profile) is
//! written to the checkpoint when it changed and restored at load.

use super::{Dirty, State};
use crate::customer360::{
    map_source_record, IdentityConfigs, ProfileIdentity, RecordPlacement, RecordsNow, RulesCause,
    RulesProgress, SourceError, SourceRecordView,
};
use crate::journeys::command::CommandOutcome;
use cairn_core::traits::apply_traits;
use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::reconcile::{reconcile, GoldenRecord};
use cairn_identity::resolver::{Merge, Split};
use cairn_identity::{CanonicalRecord, Explanation, RecordKey, Resolution, Resolver, UnifiedId};
use cairn_model::{Identifier, IdentifierKind, ProfileId, WorkspaceId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Each record's unified id (what a rebuild under changed rules compares with).
    assignments: Assignments,
    /// The administrators' un-merges, oldest first.
    unmerges: Vec<(RecordKey, RecordKey)>,
    /// The ruleset set through the API, while it is the one in force.
    api_rules: Option<ApiRules>,
}

/// What checkpoints written before un-merges and API rulesets were kept hold.
#[derive(Debug, Deserialize)]
struct PersistedV1 {
    resolver: Vec<u8>,
    records: Vec<(RecordKey, StoredRecord, Option<u32>)>,
    clusters: Vec<(UnifiedId, u32)>,
    next_age: u64,
}

/// Each record's unified id, in record-age order.
type Assignments = Vec<(RecordKey, UnifiedId)>;

/// A ruleset set through the API (`PUT /api/v1/identity/rules`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApiRules {
    /// The ruleset as JSON text (the `GET /api/v1/identity/rules` shape).
    ruleset: String,
    /// The fingerprint of the workspace's `identity_rules` file when the API's ruleset was
    /// applied: the API's ruleset stays in force across restarts until the file changes.
    file_fingerprint: u64,
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
    /// The administrators' un-merges, oldest first (carried into every rebuild of the resolver).
    unmerges: Vec<(RecordKey, RecordKey)>,
    /// The fingerprint of the workspace's `identity_rules` file as this process loaded it.
    file_fingerprint: u64,
    /// The ruleset set through the API, while it is the one in force.
    api_rules: Option<ApiRules>,
    /// How far a re-resolution of the records has come (observation only; shared with readers).
    progress: Arc<RulesProgress>,
    /// A test's breakpoint after each record of a re-resolution ([`crate::EngineOptions`]).
    breakpoint: Option<crate::Gate>,
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
            file_fingerprint: compiled.fingerprint,
            compiled,
            records: HashMap::new(),
            cluster_profile: HashMap::new(),
            profile_clusters: HashMap::new(),
            next_age: 0,
            unmerges: Vec::new(),
            api_rules: None,
            progress: Arc::default(),
            breakpoint: None,
            dirty: false,
        }
    }

    /// The latest time a record was received: the time of a rebuild at start (a function of the
    /// checkpoint, not of the wall clock).
    fn latest_receipt(&self) -> i64 {
        self.records
            .values()
            .map(|record| record.received_at_ms)
            .max()
            .unwrap_or(0)
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

    /// The engine identifiers a record brought to its profile: its emails and user id, and for a
    /// record of the `web` source keyed by `userId`, that user id (the identify message's).
    fn identifiers_of(&self, record: &CanonicalRecord) -> Vec<Identifier> {
        let mut identifiers = engine_identifiers(record);
        let keyed_by_user = record.key.source == WEB_SOURCE
            && self
                .compiled
                .sources
                .get(WEB_SOURCE)
                .is_some_and(|config| config.id == "userId");
        if keyed_by_user && !record.key.source_id.trim().is_empty() {
            identifiers.push(Identifier::new(
                IdentifierKind::UserId,
                record.key.source_id.trim(),
            ));
        }
        identifiers
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
            assignments: self.resolver.assignments(),
            unmerges: self.unmerges.clone(),
            api_rules: self.api_rules.clone(),
        };
        // Plain data: encoding cannot fail.
        postcard::to_allocvec(&persisted).unwrap_or_default()
    }

    /// Restores a checkpointed state under the workspace's `file` ruleset, or under the ruleset
    /// set through the API if the checkpoint holds one and the file has not changed since. When the
    /// snapshot is refused (the ruleset in force is not the one it was made under), the records as
    /// received come back without a resolver, the clusters as they were, and the second value is
    /// each record's unified id before: the caller re-resolves them
    /// ([`State::re_resolve_workspace`]).
    fn decode(
        file: Arc<CompiledRuleset>,
        bytes: &[u8],
    ) -> Result<(WorkspaceSources, Option<Assignments>), String> {
        let persisted = match postcard::from_bytes::<Persisted>(bytes) {
            Ok(persisted) => persisted,
            Err(error) => {
                let old: PersistedV1 =
                    postcard::from_bytes(bytes).map_err(|_| error.to_string())?;
                // No unified ids per record: each profile's records count as one cluster before.
                let rank_cluster = |rank: u32| UnifiedId(format!("rank_{rank}"));
                Persisted {
                    assignments: old
                        .records
                        .iter()
                        .filter_map(|(key, _, rank)| Some((key.clone(), rank_cluster((*rank)?))))
                        .collect(),
                    clusters: if Resolver::restore(file.clone(), &old.resolver).is_ok() {
                        old.clusters
                    } else {
                        let mut ranks: Vec<u32> = old
                            .records
                            .iter()
                            .filter_map(|(_, _, rank)| *rank)
                            .collect();
                        ranks.sort_unstable();
                        ranks.dedup();
                        ranks
                            .into_iter()
                            .map(|rank| (rank_cluster(rank), rank))
                            .collect()
                    },
                    resolver: old.resolver,
                    records: old.records,
                    next_age: old.next_age,
                    unmerges: Vec::new(),
                    api_rules: None,
                }
            }
        };
        let mut sources = WorkspaceSources::new(file.clone());
        sources.next_age = persisted.next_age;
        sources.unmerges = persisted.unmerges;
        match persisted.api_rules {
            Some(api) if api.file_fingerprint == file.fingerprint => {
                match compile_ruleset(&api.ruleset) {
                    Ok(compiled) => {
                        sources.resolver = Resolver::with_compiled(compiled.clone());
                        sources.compiled = compiled;
                        sources.api_rules = Some(api);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the ruleset set through the API no longer compiles; the identity_rules file is in force")
                    }
                }
            }
            Some(_) => {
                tracing::info!("the identity_rules file changed since a ruleset was set through the API; the file is in force")
            }
            None => {}
        }
        for (id, rank) in &persisted.clusters {
            sources.assign(id, *rank);
        }
        sources.records = persisted
            .records
            .into_iter()
            .map(|(key, record, _)| (key, record))
            .collect();
        match Resolver::restore(sources.compiled.clone(), &persisted.resolver) {
            Ok(resolver) => {
                sources.resolver = resolver;
                Ok((sources, None))
            }
            Err(error) => {
                tracing::warn!(%error, "identity snapshot refused (the ruleset changed); re-resolving the source records");
                sources.dirty = true;
                Ok((sources, Some(persisted.assignments)))
            }
        }
    }
}

/// Parses and compiles a ruleset kept as JSON text (the `GET /api/v1/identity/rules` shape).
fn compile_ruleset(json: &str) -> Result<Arc<CompiledRuleset>, cairn_identity::IdentityError> {
    cairn_identity::Ruleset::parse(json, cairn_identity::DocumentFormat::Json, "the ruleset")
        .and_then(CompiledRuleset::new)
        .map(Arc::new)
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

/// The id of a profile split off another: derived from the workspace, the split-off cluster's
/// unified id and an attempt number (the first one not taken).
fn split_profile_id(workspace: &WorkspaceId, unified_id: &UnifiedId, attempt: u32) -> ProfileId {
    let text = format!(
        "{}\u{1f}split\u{1f}{}\u{1f}{attempt}",
        workspace.as_str(),
        unified_id
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
    /// (called once, before the first record is applied). A rebuild under a changed ruleset
    /// reports through the workspace's progress figure in `configs`; `breakpoint`: a test's
    /// breakpoint after each record of a re-resolution.
    pub(crate) fn configure_identity(
        &mut self,
        configs: &IdentityConfigs,
        breakpoint: Option<&crate::Gate>,
    ) {
        let mut stored = std::mem::take(&mut self.stored_identity);
        for (workspace, compiled) in configs.iter() {
            let (mut sources, rebuild) = match stored.remove(workspace) {
                Some(bytes) => match WorkspaceSources::decode(compiled.clone(), &bytes) {
                    Ok(decoded) => decoded,
                    Err(error) => {
                        tracing::error!(%workspace, %error, "the identity checkpoint cannot be read; starting empty");
                        (WorkspaceSources::new(compiled.clone()), None)
                    }
                },
                None => (WorkspaceSources::new(compiled.clone()), None),
            };
            sources.progress = configs.progress_of(workspace);
            sources.breakpoint = breakpoint.cloned();
            if let Some(before) = rebuild {
                let now = sources.latest_receipt();
                let summary =
                    self.re_resolve_workspace(&mut sources, &before, now, 0, RulesCause::Startup);
                tracing::info!(%workspace, %summary, "source records re-resolved under the changed ruleset");
            }
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

    /// Removes a source record from the resolver (rule 7): a profile it held together splits
    /// (rule 5), and its profile's reconciled traits are recomputed from the records it has left.
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
        // The profile and its reconciled traits with the record still there.
        let profile = before
            .as_ref()
            .and_then(|id| sources.cluster_profile.get(id))
            .map(|&rank| {
                let rank = self.survivor(rank);
                (rank, self.golden_traits_with(&sources, rank, &[]))
            });
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
                if let Some((rank, traits_before)) = profile {
                    let rank = self.survivor(rank);
                    self.rewrite_golden_traits(&sources, rank, &traits_before, now);
                }
                CommandOutcome::done(format!("{key} removed"))
            }
        };
        self.sources.insert(workspace.clone(), sources);
        outcome
    }

    /// An administrator's un-merge: the two records are never one person again; the resolver splits
    /// their cluster and the engine their profile (rule 5).
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
                sources.unmerges.push((left.clone(), right.clone()));
                sources.dirty = true;
                self.follow_merges_and_splits(&mut sources, &resolution, now);
                let profiles: Vec<Value> = [left, right]
                    .into_iter()
                    .filter_map(|key| {
                        let unified_id = sources.resolver.unified_id(key)?;
                        let rank = *sources.cluster_profile.get(unified_id)?;
                        Some(serde_json::json!({
                            "record": key.to_string(),
                            "unified_id": unified_id,
                            "profile_id": self.record(self.survivor(rank)).id,
                        }))
                    })
                    .collect();
                CommandOutcome::done(
                    serde_json::json!({"split": resolution.split, "profiles": profiles})
                        .to_string(),
                )
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
            unmerges: sources.unmerges.clone(),
        })
    }

    /// Applies a ruleset set through the API (`ruleset`: JSON, the `GET /api/v1/identity/rules`
    /// shape): the workspace's records are re-resolved under it in their original order with the
    /// un-merges after, and the merges and splits follow onto engine profiles. The outcome is the
    /// summary of [`State::re_resolve_workspace`] with up to `samples` records per change.
    pub(crate) fn set_identity_rules(
        &mut self,
        workspace: &WorkspaceId,
        ruleset: &Value,
        samples: usize,
        now: i64,
    ) -> CommandOutcome {
        let Some(mut sources) = self.sources.remove(workspace) else {
            return CommandOutcome::refused(
                SourceError::NotConfigured(workspace.to_string()).to_string(),
            );
        };
        let text = ruleset.to_string();
        let outcome = match compile_ruleset(&text) {
            Err(error) => CommandOutcome::refused(error.to_string()),
            Ok(compiled) => {
                let before = sources.resolver.assignments();
                sources.compiled = compiled;
                sources.api_rules = Some(ApiRules {
                    ruleset: text,
                    file_fingerprint: sources.file_fingerprint,
                });
                let summary =
                    self.re_resolve_workspace(&mut sources, &before, now, samples, RulesCause::Api);
                CommandOutcome::done(summary.to_string())
            }
        };
        self.sources.insert(workspace.clone(), sources);
        outcome
    }

    /// Re-resolves every stored record under `sources.compiled` in its original order, with the
    /// un-merges after ([`crate::customer360::re_resolve`], as the preview does), and follows the
    /// net change from `before` (each record's unified id before) onto engine profiles: merged
    /// clusters merge their profiles (rule 2), split ones split them (rule 5), profiles whose
    /// reconciled attributes changed get them. Records the ruleset cannot map are dropped.
    /// Answers the preview's summary (`merges`, `splits`, with up to `samples` records each, and
    /// `unmapped`) with the engine's counts: `profiles_created`, `profiles_merged`. The
    /// workspace's progress figure follows it (`cause`, records done of total, phase); it is only
    /// written here, never read.
    pub(super) fn re_resolve_workspace(
        &mut self,
        sources: &mut WorkspaceSources,
        before: &[(RecordKey, UnifiedId)],
        now: i64,
        samples: usize,
        cause: RulesCause,
    ) -> Value {
        let progress = sources.progress.clone();
        let breakpoint = sources.breakpoint.clone();
        let mut stored: Vec<(&RecordKey, &StoredRecord)> = sources.records.iter().collect();
        stored.sort_by_key(|(_, record)| record.age);
        progress.begin(cause, stored.len(), now);
        let (resolver, unmapped) = crate::customer360::re_resolve(
            sources.compiled.clone(),
            stored
                .into_iter()
                .map(|(key, record)| (key, record.fields.as_str())),
            &sources.unmerges,
            || {
                progress.record_done();
                if let Some(gate) = &breakpoint {
                    gate.pass();
                }
            },
        );
        progress.applying();
        for record in &unmapped {
            tracing::warn!(source = %record.source, id = %record.id, error = %record.error, "a source record no longer maps; dropped");
            sources
                .records
                .remove(&RecordKey::new(record.source.clone(), record.id.clone()));
        }
        sources.resolver = resolver;
        sources.dirty = true;
        let after = sources.resolver.assignments();
        let diff = cairn_identity::diff::diff_assignments(before, &after, samples);
        let (merges, splits) = cairn_identity::resolver::net_changes(
            &before.iter().cloned().collect(),
            &after.into_iter().collect(),
        );
        let profiles_before = self.profiles.len();
        let profiles_merged = self.follow_merges(sources, &merges, now);
        self.follow_splits(sources, &splits, now);
        let mut gone: Vec<UnifiedId> = sources
            .cluster_profile
            .keys()
            .filter(|id| sources.resolver.records_of(id).is_empty())
            .cloned()
            .collect();
        gone.sort();
        for id in &gone {
            sources.unassign(id);
        }
        let mut ranks: Vec<u32> = sources
            .cluster_profile
            .values()
            .map(|&rank| self.survivor(rank))
            .collect();
        ranks.sort_unstable();
        ranks.dedup();
        for rank in ranks {
            let traits = self.golden_traits_with(sources, rank, &[]);
            let held = &self.record(rank).traits.values;
            if traits
                .iter()
                .any(|(field, value)| held.get(field) != Some(value))
            {
                self.write_golden_traits(sources, rank, now);
            }
        }
        let mut summary = serde_json::to_value(&diff).unwrap_or(Value::Null);
        if let Value::Object(summary) = &mut summary {
            summary.insert("unmapped".into(), serde_json::json!(unmapped));
            summary.insert(
                "profiles_created".into(),
                Value::from(self.profiles.len() - profiles_before),
            );
            summary.insert("profiles_merged".into(), Value::from(profiles_merged));
        }
        progress.finished();
        summary
    }

    /// The workspace's active ruleset (sources, rules, protection, reconciliation).
    pub(crate) fn identity_rules(&self, workspace: &WorkspaceId) -> Result<Value, SourceError> {
        let sources = self.sources_of(workspace)?;
        Ok(serde_json::to_value(&sources.compiled.ruleset).unwrap_or(Value::Null))
    }

    /// Rules 2 and 5 of the module documentation.
    fn follow_merges_and_splits(
        &mut self,
        sources: &mut WorkspaceSources,
        resolution: &Resolution,
        now: i64,
    ) {
        self.follow_merges(sources, &resolution.merged, now);
        self.follow_splits(sources, &resolution.split, now);
    }

    /// Rule 2: clusters the resolver merged merge their profiles. Returns how many profiles merged
    /// into another.
    fn follow_merges(
        &mut self,
        sources: &mut WorkspaceSources,
        merges: &[Merge],
        now: i64,
    ) -> usize {
        let mut merged = 0;
        for merge in merges {
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
                    merged += 1;
                }
                (Some(from), None) => sources.assign(&merge.into, from),
                _ => {}
            }
        }
        merged
    }

    /// Rule 5: a cluster the resolver split splits its profile. Per split cluster (`from`): the
    /// side holding its oldest record keeps the profile (`from` itself while it still has records);
    /// every other side maps onto the profile it already has, else onto a new one (see
    /// [`State::split_profile`]); the identifiers the moved records bring move with them, and every
    /// side's reconciled traits are recomputed from its own records.
    fn follow_splits(&mut self, sources: &mut WorkspaceSources, splits: &[Split], now: i64) {
        let mut by_from: BTreeMap<&UnifiedId, Vec<&Split>> = BTreeMap::new();
        for split in splits {
            by_from.entry(&split.from).or_default().push(split);
        }
        for (from, sides) in by_from {
            let Some(&rank) = sources.cluster_profile.get(from) else {
                continue;
            };
            let rank = self.survivor(rank);
            // The golden record as it was, over the remaining and the moved records.
            let moved: Vec<&RecordKey> = sides.iter().flat_map(|side| &side.records).collect();
            let before = self.golden_traits_with(sources, rank, &moved);
            let successor = if sources.resolver.records_of(from).is_empty() {
                sides
                    .iter()
                    .min_by_key(|side| {
                        side.records
                            .iter()
                            .filter_map(|key| sources.records.get(key).map(|stored| stored.age))
                            .min()
                            .unwrap_or(u64::MAX)
                    })
                    .map(|side| &side.into)
            } else {
                None
            };
            let mut keeper = rank;
            if let Some(successor) = successor {
                sources.unassign(from);
                match sources
                    .cluster_profile
                    .get(successor)
                    .map(|&other| self.survivor(other))
                {
                    Some(other) if other != rank => {
                        let (survivor, loser) = (rank.min(other), rank.max(other));
                        self.merge(loser, survivor, now);
                        sources.assign(successor, survivor);
                        keeper = survivor;
                    }
                    Some(_) => {}
                    None => sources.assign(successor, rank),
                }
            }
            let mut sides_now = Vec::new();
            for side in sides {
                if Some(&side.into) == successor {
                    continue;
                }
                let target = match sources.cluster_profile.get(&side.into) {
                    Some(&other) => self.survivor(other),
                    None => {
                        let target = self.split_profile(&side.into, keeper, now);
                        sources.assign(&side.into, target);
                        target
                    }
                };
                if target != keeper {
                    self.move_identifiers(sources, keeper, target, &side.records);
                    sides_now.push(target);
                }
            }
            self.rewrite_golden_traits(sources, keeper, &before, now);
            for target in sides_now {
                self.write_golden_traits(sources, target, now);
            }
        }
    }

    /// A new profile for a cluster split off profile `from` (same workspace). Its id derives from
    /// the workspace and the cluster's unified id; should that id be taken already (a profile made
    /// earlier for the same cluster and merged since), the next attempt number is hashed in, so
    /// the id stays a function of the log.
    fn split_profile(&mut self, unified_id: &UnifiedId, from: u32, now: i64) -> u32 {
        let workspace = self.record(from).workspace.clone();
        let taken = |state: &State, id: &ProfileId| {
            state
                .workspaces
                .get(&workspace)
                .is_some_and(|index| index.by_id.contains_key(id))
        };
        let mut attempt: u32 = 0;
        let id = loop {
            let id = split_profile_id(&workspace, unified_id, attempt);
            if !taken(self, &id) {
                break id;
            }
            attempt += 1;
        };
        self.find_or_create(&workspace, id, None, now)
    }

    /// Moves the identifiers that `records` bring from profile `from` to profile `to`, except
    /// those that records still on `from` bring too, and those `from` does not hold.
    fn move_identifiers(
        &mut self,
        sources: &WorkspaceSources,
        from: u32,
        to: u32,
        records: &[RecordKey],
    ) {
        let workspace = self.record(from).workspace.clone();
        let staying: BTreeSet<Identifier> = self
            .clusters_of(sources, from)
            .iter()
            .flat_map(|id| sources.resolver.records_of(id))
            .flat_map(|record| sources.identifiers_of(record))
            .collect();
        let mut moving: Vec<Identifier> = records
            .iter()
            .filter_map(|key| sources.resolver.record(key))
            .flat_map(|record| sources.identifiers_of(record))
            .filter(|identifier| !staying.contains(identifier))
            .collect();
        moving.sort();
        moving.dedup();
        for identifier in moving {
            if self.find_by_identifier(&workspace, &identifier) != Some(from) {
                continue;
            }
            self.record_mut(from)
                .identifiers
                .retain(|held| held != &identifier);
            self.link(&workspace, &identifier, to);
            if identifier.kind == IdentifierKind::UserId {
                let source = self.record_mut(from);
                if source.user_id.as_deref() == Some(identifier.value.as_str()) {
                    source.user_id = source
                        .identifiers
                        .iter()
                        .find(|held| held.kind == IdentifierKind::UserId)
                        .map(|held| held.value.clone());
                }
                let target = self.record_mut(to);
                if target.user_id.is_none() {
                    target.user_id = Some(identifier.value.clone());
                }
            }
            self.touch(from, Dirty::Full);
            self.touch(to, Dirty::Full);
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
        self.golden_with(sources, rank, &[])
    }

    /// The golden record over every source record of a surviving profile and the `extra` records.
    fn golden_with(
        &self,
        sources: &WorkspaceSources,
        rank: u32,
        extra: &[&RecordKey],
    ) -> (Vec<UnifiedId>, GoldenRecord) {
        let ids = self.clusters_of(sources, rank);
        let mut records: Vec<&CanonicalRecord> = ids
            .iter()
            .flat_map(|id| sources.resolver.records_of(id))
            .collect();
        for key in extra {
            if let Some(record) = sources.resolver.record(key) {
                if !records.iter().any(|held| &held.key == *key) {
                    records.push(record);
                }
            }
        }
        let ruleset = &sources.compiled.ruleset;
        let golden = reconcile(
            &records,
            &sources.compiled.sources,
            &ruleset.reconciliation,
            &ruleset.normalization,
        );
        (ids, golden)
    }

    /// The reconciled traits of a surviving profile's records and the `extra` records.
    fn golden_traits_with(
        &self,
        sources: &WorkspaceSources,
        rank: u32,
        extra: &[&RecordKey],
    ) -> Map<String, Value> {
        golden_traits(&self.golden_with(sources, rank, extra).1)
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
        self.rewrite_golden_traits(sources, rank, &Map::new(), now);
    }

    /// Writes a profile's reconciled traits at `now`. A trait the profile's previous golden record
    /// (`before`) gave and its golden record now lacks is removed while the profile still holds
    /// that value (a split or a removal took away the records it came from).
    fn rewrite_golden_traits(
        &mut self,
        sources: &WorkspaceSources,
        rank: u32,
        before: &Map<String, Value>,
        now: i64,
    ) {
        let (_, golden) = self.golden_of(sources, rank);
        let traits = golden_traits(&golden);
        let record = self.record_mut(rank);
        let mut changed = apply_traits(&mut record.traits, &traits, now);
        for (field, value) in before {
            if !traits.contains_key(field) && record.traits.values.get(field) == Some(value) {
                record.traits.values.remove(field);
                record.traits.set_at.remove(field);
                changed = true;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_identity::DocumentFormat;

    /// The checkpoint blob as written before un-merges, assignments and API rulesets were kept.
    #[derive(Serialize)]
    struct WrittenBefore<'a> {
        resolver: &'a [u8],
        records: &'a [(RecordKey, StoredRecord, Option<u32>)],
        clusters: &'a [(UnifiedId, u32)],
        next_age: u64,
    }

    fn compiled(text: &str) -> Arc<CompiledRuleset> {
        let ruleset = cairn_identity::Ruleset::parse(text, DocumentFormat::Toml, "rules.toml")
            .expect("rules");
        Arc::new(CompiledRuleset::new(ruleset).expect("compiles"))
    }

    #[test]
    fn checkpoints_written_before_unmerges_were_kept_still_restore() {
        let rules = include_str!("../../../../tests/identity/crm-shop.toml");
        let workspace = WorkspaceId::new("acme");
        let mut state = State::default();
        state.configure_identity(
            &IdentityConfigs::new(BTreeMap::from([(workspace.clone(), compiled(rules))])),
            None,
        );
        for (source, id, fields) in [
            (
                "crm",
                "c-1",
                serde_json::json!({"first": "Ann", "email": "ann@x.org"}),
            ),
            (
                "shop",
                "s-1",
                serde_json::json!({"given": "Anne", "mail": "ann@x.org"}),
            ),
        ] {
            let fields = fields.as_object().cloned().expect("object");
            let outcome = state.upsert_source_record(&workspace, source, id, &fields, 1_000);
            assert!(outcome.ok, "{outcome:?}");
        }
        let sources = &state.sources[&workspace];
        let now: Persisted = postcard::from_bytes(&sources.encode()).expect("current blob");
        let old = postcard::to_allocvec(&WrittenBefore {
            resolver: &now.resolver,
            records: &now.records,
            clusters: &now.clusters,
            next_age: now.next_age,
        })
        .expect("encodes");
        let (restored, rebuild) =
            WorkspaceSources::decode(compiled(rules), &old).expect("an older blob decodes");
        assert!(rebuild.is_none(), "same rules: the snapshot restores");
        assert_eq!(restored.records.len(), 2);
        assert_eq!(restored.cluster_profile, sources.cluster_profile);
        assert_eq!(
            restored.resolver.assignments(),
            sources.resolver.assignments()
        );
        // Under changed rules the older blob asks for a rebuild from the records, by profile.
        let changed = format!("{rules}\n[[rule]]\nname = \"email\"\ncriteria = [{{ field = \"email\", method = \"exact\" }}]\n");
        let (_, rebuild) = WorkspaceSources::decode(compiled(&changed), &old).expect("decodes");
        assert_eq!(rebuild.map(|before| before.len()), Some(2));
    }
}
