//! Customer 360 in the engine: each workspace's identity configuration, the checks a source record
//! passes before it is written to the log, what readers see of a profile's source records, the
//! dry run of a rule change ([`preview_rules`]), and how far a re-resolution of a workspace's
//! records has come ([`RulesProgress`]).
//!
//! Source records travel through the input log as commands ([`crate::journeys::Command`]'s
//! `UpsertSourceRecord` / `RemoveSourceRecord`), so they apply in order with the events around them
//! and a replay rebuilds everything. Applying one resolves it with the workspace's
//! [`cairn_identity::Resolver`] (fuzzy rules included) and maps the resulting cluster onto an engine
//! profile (see `state/sources.rs` for the mapping rule and merges).

use cairn_identity::compiled::CompiledRuleset;
use cairn_identity::files::raw_fields_of_json;
use cairn_identity::reconcile::GoldenRecord;
use cairn_identity::{CanonicalRecord, RecordKey};
use cairn_model::{ErrorCode, WorkspaceId};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Every workspace's compiled identity configuration (ruleset with its sources), and each one's
/// [`RulesProgress`] figure (shared by every clone: whoever holds one reads the figure the engine
/// started with it writes). Workspaces without a configuration keep exact identity only and refuse
/// source records.
#[derive(Clone, Default)]
pub struct IdentityConfigs {
    rulesets: Arc<BTreeMap<WorkspaceId, Arc<CompiledRuleset>>>,
    progress: Arc<BTreeMap<WorkspaceId, Arc<RulesProgress>>>,
}

impl IdentityConfigs {
    pub fn new(configs: BTreeMap<WorkspaceId, Arc<CompiledRuleset>>) -> IdentityConfigs {
        let progress = configs
            .keys()
            .map(|workspace| (workspace.clone(), Arc::default()))
            .collect();
        IdentityConfigs {
            rulesets: Arc::new(configs),
            progress: Arc::new(progress),
        }
    }

    pub fn get(&self, workspace: &WorkspaceId) -> Option<&Arc<CompiledRuleset>> {
        self.rulesets.get(workspace)
    }

    /// The configured workspaces and their rulesets, in workspace order.
    pub fn iter(&self) -> impl Iterator<Item = (&WorkspaceId, &Arc<CompiledRuleset>)> {
        self.rulesets.iter()
    }

    /// How far the workspace's latest re-resolution has come (read without the state's lock);
    /// `None` for a workspace without an identity configuration.
    pub fn rules_progress(&self, workspace: &WorkspaceId) -> Option<RulesProgressView> {
        self.progress.get(workspace).map(|progress| progress.read())
    }

    /// The workspace's figure, for the applier to write.
    pub(crate) fn progress_of(&self, workspace: &WorkspaceId) -> Arc<RulesProgress> {
        self.progress.get(workspace).cloned().unwrap_or_default()
    }
}

impl std::fmt::Debug for IdentityConfigs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_list()
            .entries(self.rulesets.keys().map(WorkspaceId::as_str))
            .finish()
    }
}

/// What started a re-resolution of a workspace's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesCause {
    /// A rule change through the log (`SetIdentityRules`, `PUT /api/v1/identity/rules`), applied
    /// or replayed.
    Api,
    /// A start under a changed `identity_rules` file (the checkpoint's snapshot was refused).
    Startup,
}

/// Where a re-resolution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesPhase {
    /// None has run since the engine started.
    Idle,
    /// The records are being re-resolved under the ruleset (`records_done` counts them).
    Resolving,
    /// Every record is resolved; the merges and splits are followed onto engine profiles.
    Applying,
    Finished,
}

/// One reading of a workspace's [`RulesProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RulesProgressView {
    /// Re-resolutions started since the engine started (0: none; a replayed rule change counts).
    pub run: u64,
    pub cause: Option<RulesCause>,
    pub phase: RulesPhase,
    /// Records re-resolved so far (records the ruleset cannot map count: they were looked at).
    pub records_done: u64,
    pub records_total: u64,
    /// The log time of the command that started it (for a rebuild at start: the time of the
    /// latest record received, the time the rebuild applies at); `None` before the first run.
    pub started_at_ms: Option<i64>,
}

/// How far a re-resolution of one workspace's records has come: written by the applier while it
/// re-resolves (under the state's write lock), read by anyone without that lock. Observation only:
/// nothing the applier decides reads it.
#[derive(Debug)]
pub struct RulesProgress {
    view: Mutex<RulesProgressView>,
}

impl Default for RulesProgress {
    fn default() -> RulesProgress {
        RulesProgress {
            view: Mutex::new(RulesProgressView {
                run: 0,
                cause: None,
                phase: RulesPhase::Idle,
                records_done: 0,
                records_total: 0,
                started_at_ms: None,
            }),
        }
    }
}

impl RulesProgress {
    /// Changes the figure (a poisoned lock still holds a whole figure: each change is one store).
    fn update(&self, change: impl FnOnce(&mut RulesProgressView)) {
        change(&mut self.view.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// A run of `total` records starts at `now` (log time).
    pub(crate) fn begin(&self, cause: RulesCause, total: usize, now: i64) {
        self.update(|view| {
            *view = RulesProgressView {
                run: view.run + 1,
                cause: Some(cause),
                phase: RulesPhase::Resolving,
                records_done: 0,
                records_total: total as u64,
                started_at_ms: Some(now),
            }
        });
    }

    /// One more record re-resolved.
    pub(crate) fn record_done(&self) {
        self.update(|view| view.records_done = (view.records_done + 1).min(view.records_total));
    }

    /// Every record is resolved; the changes now follow onto profiles.
    pub(crate) fn applying(&self) {
        self.update(|view| {
            view.records_done = view.records_total;
            view.phase = RulesPhase::Applying;
        });
    }

    pub(crate) fn finished(&self) {
        self.update(|view| view.phase = RulesPhase::Finished);
    }

    /// The figure now.
    pub fn read(&self) -> RulesProgressView {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a source record, a lookup or an explanation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("workspace `{0}` has no identity configuration")]
    NotConfigured(String),
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    #[error("the mapping of source `{source_name}` does not read field(s) {}", .fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    UnknownFields {
        source_name: String,
        fields: Vec<String>,
    },
    #[error("{0}")]
    InvalidRecord(String),
    #[error("no source record `{0}`")]
    RecordNotFound(String),
}

impl SourceError {
    /// The stable code of the error table.
    pub fn code(&self) -> ErrorCode {
        match self {
            SourceError::NotConfigured(_) => ErrorCode::IdentityNotConfigured,
            SourceError::UnknownSource(_) => ErrorCode::SourceNotFound,
            SourceError::UnknownFields { .. } | SourceError::InvalidRecord(_) => {
                ErrorCode::InvalidRecord
            }
            SourceError::RecordNotFound(_) => ErrorCode::RecordNotFound,
        }
    }
}

/// Checks a record sent for `source` under id `id` and maps it onto the canonical model: every
/// field must be one the source's mapping reads, and the id field, if given, must equal `id` (if
/// absent, `id` fills it). The applier runs the same function again (deterministic).
pub fn map_source_record(
    compiled: &CompiledRuleset,
    source: &str,
    id: &str,
    fields: &Map<String, Value>,
) -> Result<CanonicalRecord, SourceError> {
    let config = compiled
        .sources
        .get(source)
        .ok_or_else(|| SourceError::UnknownSource(source.to_string()))?;
    if id.trim().is_empty() {
        return Err(SourceError::InvalidRecord("the record id is empty".into()));
    }
    let mut raw = raw_fields_of_json(fields);
    let readable = config.referenced_fields();
    let unknown: Vec<String> = raw
        .keys()
        .filter(|name| !readable.contains(&name.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(SourceError::UnknownFields {
            source_name: source.to_string(),
            fields: unknown,
        });
    }
    match raw.get(&config.id).and_then(|values| values.first()) {
        Some(given) if given.trim() != id.trim() => {
            return Err(SourceError::InvalidRecord(format!(
                "the record's `{}` is `{given}` but the path says `{id}`",
                config.id
            )));
        }
        Some(_) => {}
        None => {
            raw.insert(config.id.clone(), vec![id.to_string()]);
        }
    }
    config
        .map_record(source, &raw)
        .map_err(SourceError::InvalidRecord)
}

/// A source record as a reader sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRecordView {
    pub source: String,
    pub id: String,
    pub unified_id: String,
    /// The fields exactly as received.
    pub fields: Value,
    /// The same record on the canonical model.
    pub canonical: CanonicalRecord,
    pub received_at_ms: i64,
}

/// A profile's side of Customer 360: its unified ids, source records and reconciled attributes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProfileIdentity {
    /// Whether the workspace has an identity configuration.
    pub configured: bool,
    /// The resolver's clusters mapped onto this profile (more than one when exact identifiers of
    /// events joined profiles the rules keep apart).
    pub unified_ids: Vec<String>,
    pub records: Vec<SourceRecordView>,
    /// The golden record over every source record of the profile, each value with its provenance.
    pub reconciled: GoldenRecord,
}

/// Where a source record lives.
#[derive(Debug, Clone, Serialize)]
pub struct RecordPlacement {
    pub source: String,
    pub id: String,
    pub unified_id: String,
    pub profile_id: cairn_model::ProfileId,
}

/// Parses `source:id` (the API's form; the id may contain colons).
pub fn parse_record_ref(text: &str) -> Option<RecordKey> {
    let (source, id) = text.split_once(':')?;
    (!source.is_empty() && !id.is_empty()).then(|| RecordKey::new(source, id))
}

/// The workspace's source records as received (their fields as JSON text), oldest first (the
/// order the resolver saw them), the unified id each is in now, and the administrators' un-merges
/// in the order they were made: what a rule-change preview starts from.
#[derive(Debug, Clone, Default)]
pub struct RecordsNow {
    pub records: Vec<(RecordKey, String)>,
    pub assignments: Vec<(RecordKey, cairn_identity::UnifiedId)>,
    pub unmerges: Vec<(RecordKey, RecordKey)>,
}

/// A record the proposed rules cannot map (a source or field they no longer have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmappedRecord {
    pub source: String,
    pub id: String,
    pub error: String,
}

/// What applying a proposed ruleset to a workspace would do (nothing is applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulesPreview {
    #[serde(flatten)]
    pub diff: cairn_identity::diff::ResolutionDiff,
    /// Records the proposed rules would drop.
    pub unmapped: Vec<UnmappedRecord>,
}

/// Resolves a record as received (its fields as stored, JSON text) again under `compiled`: map,
/// then upsert into `resolver`.
pub(crate) fn resolve_stored(
    resolver: &mut cairn_identity::Resolver,
    compiled: &CompiledRuleset,
    key: &RecordKey,
    fields: &str,
) -> Result<cairn_identity::Resolution, String> {
    let fields: Map<String, Value> = serde_json::from_str(fields).unwrap_or_default();
    let canonical = map_source_record(compiled, &key.source, &key.source_id, &fields)
        .map_err(|error| error.to_string())?;
    resolver
        .upsert(canonical)
        .map_err(|error| error.to_string())
}

/// Resolves a workspace's records as received (oldest first) again under `compiled`, then its
/// un-merges in the order they were made (each whose two records are both still there): what a
/// rule change starts from, whether previewed, applied over the API or found at a restart. Returns
/// the new resolver and the records `compiled` cannot map (they are left out). `after_record` is
/// called after each record (the applier counts them in its [`RulesProgress`]).
pub(crate) fn re_resolve<'a>(
    compiled: Arc<CompiledRuleset>,
    records: impl IntoIterator<Item = (&'a RecordKey, &'a str)>,
    unmerges: &[(RecordKey, RecordKey)],
    mut after_record: impl FnMut(),
) -> (cairn_identity::Resolver, Vec<UnmappedRecord>) {
    let mut resolver = cairn_identity::Resolver::with_compiled(compiled.clone());
    let mut unmapped = Vec::new();
    for (key, fields) in records {
        if let Err(error) = resolve_stored(&mut resolver, &compiled, key, fields) {
            unmapped.push(UnmappedRecord {
                source: key.source.clone(),
                id: key.source_id.clone(),
                error,
            });
        }
        after_record();
    }
    for (left, right) in unmerges {
        if resolver.record(left).is_some() && resolver.record(right).is_some() {
            // Both records are loaded: an un-merge of two loaded records cannot fail.
            let _ = resolver.unmerge(left, right);
        }
    }
    (resolver, unmapped)
}

/// The dry run of a rule change: the records re-resolved under `proposed` in their original order
/// with the un-merges after (as applying the rules over the API or a restart with the new file
/// would), compared with their clusters now. Pure: runs on a copy of the records, off the applier.
pub fn preview_rules(
    proposed: Arc<CompiledRuleset>,
    now: &RecordsNow,
    samples: usize,
) -> RulesPreview {
    let records = now
        .records
        .iter()
        .map(|(key, fields)| (key, fields.as_str()));
    let (resolver, unmapped) = re_resolve(proposed, records, &now.unmerges, || {});
    RulesPreview {
        diff: cairn_identity::diff::diff_assignments(
            &now.assignments,
            &resolver.assignments(),
            samples,
        ),
        unmapped,
    }
}
