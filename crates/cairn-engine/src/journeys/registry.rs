//! One workspace's journeys and audiences: drafts, published versions, status, per-step counters, the
//! catalog of what has been seen, and the live set the runtime routes inputs through.
//!
//! The persisted part ([`Persisted`]) is checkpointed as one JSON document per workspace; the live
//! part (compiled journeys and audiences, tracked event names) is rebuilt from it on load by compiling
//! the stored documents again, which is deterministic.

use super::command::{Command, CommandOutcome, ProfileRef, WorkspacePolicy};
use super::history::Tracking;
use cairn_condition::{Condition, Type};
use cairn_journey::compiled::CompiledEntry;
use cairn_journey::cron_schedule::next_fire_after;
use cairn_journey::document::{Channel, Step};
use cairn_journey::effects::{EndDetail, StepChange};
use cairn_journey::validate::validate_audience;
use cairn_journey::{
    validate, AudienceDocument, Catalog, CompiledJourney, Effects, EndReason, JourneyDocument,
    JourneyKey, JourneySet, LiveJourney, ValidationError,
};
use cairn_template::{TemplateChannel, TemplateDocument, TemplateHistory, VariableSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Where a journey stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyStatus {
    /// Never published: only a draft.
    Draft,
    /// Its latest version takes entries.
    Published,
    /// No entries; enrollments continue or are held, as the journey says.
    Paused,
    /// Every enrollment ended with `stopped`; no entries.
    Stopped,
    /// Hidden; kept for its history.
    Archived,
}

/// A journey: its draft and its published versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyRecord {
    pub id: String,
    pub status: JourneyStatus,
    /// The editable working copy (the next version once published).
    pub draft: Option<JourneyDocument>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub versions: Vec<VersionRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl JourneyRecord {
    /// The newest published version.
    pub fn latest(&self) -> Option<&VersionRecord> {
        self.versions.last()
    }
}

/// One published, immutable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u32,
    /// The engine-wide key of this version (enrollments name it).
    pub key: u32,
    pub document: JourneyDocument,
    pub published_at_ms: i64,
    /// For schedule entries: when the schedule fires next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_ms: Option<i64>,
}

/// An audience and its membership count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceRecord {
    /// Stable small number, used in profiles' membership lists and timers.
    pub index: u32,
    pub document: AudienceDocument,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub members: u64,
}

/// Per-step counters of one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionCounters {
    /// Customers who entered the version.
    pub entered: u64,
    /// Enrollments that ended, by reason.
    pub ended: BTreeMap<String, u64>,
    /// By goal index: how many reached it.
    pub goals: Vec<u64>,
    /// By step index.
    pub steps: Vec<StepCounter>,
}

/// One step's counters; `current` = entered − advanced − ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepCounter {
    pub entered: u64,
    pub advanced: u64,
    pub ended: BTreeMap<String, u64>,
}

impl StepCounter {
    /// Customers at this step now.
    pub fn current(&self) -> u64 {
        self.entered
            .saturating_sub(self.advanced)
            .saturating_sub(self.ended.values().sum())
    }
}

/// What is checkpointed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Persisted {
    journeys: BTreeMap<String, JourneyRecord>,
    audiences: BTreeMap<String, AudienceRecord>,
    counters: BTreeMap<u32, VersionCounters>,
    /// Event names seen in this workspace.
    events: BTreeSet<String>,
    /// Top-level profile attributes seen.
    attributes: BTreeSet<String>,
    /// Volume control, consent rules and suppressions.
    #[serde(default)]
    policy: WorkspacePolicy,
    /// Message templates: drafts and published versions.
    #[serde(default)]
    templates: BTreeMap<String, TemplateHistory>,
}

/// An audience ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct LiveAudience {
    pub index: u32,
    pub id: Arc<str>,
    pub condition: Condition,
}

/// Work on profiles that a command asks for, done by the state after the registry changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FollowUp {
    None,
    /// Held enrollments of these versions continue.
    Resume(Vec<JourneyKey>),
    /// Enrollments of these versions end as stopped.
    Stop(Vec<JourneyKey>, String),
    /// Enroll a profile through the API entry of this version.
    Enroll {
        key: JourneyKey,
        profile: ProfileRef,
        data: Option<Value>,
    },
    /// (Re-)evaluate this audience for every profile of the workspace.
    EvaluateAudience(u32),
}

/// One workspace's registry.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    persisted: Persisted,
    pub live: JourneySet,
    /// Version key → (journey id, version).
    versions: HashMap<JourneyKey, (String, u32)>,
    pub audiences: Vec<LiveAudience>,
    /// Event names some condition counts, and over how long.
    pub tracked: HashMap<String, Tracking>,
    /// The policy's suppression rules, compiled (channel names they apply to; empty: all).
    pub suppressions: Vec<(Vec<String>, Condition)>,
    dirty: bool,
}

/// Profile attributes every workspace knows, seen or not: Segment's reserved identify traits and
/// the ones Cairn reads itself (time zone, locale, push tokens).
pub(crate) const STANDARD_ATTRIBUTES: &[&str] = &[
    "address",
    "age",
    "avatar",
    "birthday",
    "company",
    "createdAt",
    "description",
    "email",
    "firstName",
    "first_name",
    "gender",
    "id",
    "lastName",
    "last_name",
    "name",
    "phone",
    "title",
    "username",
    "website",
    "timezone",
    "locale",
    "push_token",
    "push_tokens",
];

/// The journey crate's channel for a template's channel.
fn journey_channel(channel: TemplateChannel) -> Channel {
    match channel {
        TemplateChannel::Email => Channel::Email,
        TemplateChannel::Sms => Channel::Sms,
        TemplateChannel::Push => Channel::Push,
        TemplateChannel::Webhook => Channel::Webhook,
    }
}

/// Compiles the policy's suppression rules over the profile and its event history.
fn compile_suppressions(
    policy: &WorkspacePolicy,
) -> Result<Vec<(Vec<String>, Condition)>, Vec<cairn_condition::Diagnostic>> {
    let mut schema = cairn_condition::Schema::open();
    schema.allow_event_root(false).allow_journey_root(false);
    policy
        .suppressions
        .iter()
        .map(|rule| {
            cairn_condition::compile(&rule.condition, &schema)
                .map(|condition| (rule.channels.clone(), condition))
        })
        .collect()
}

/// Compiles a stored document: it was validated when saved, so an open catalog accepts it again.
/// A journey that sends keeps its enrollments' `journey.*` data (the trigger event, step outcomes),
/// because templates personalize with it (`journey.trigger.properties.items`).
fn recompile(document: &JourneyDocument) -> Result<CompiledJourney, Vec<ValidationError>> {
    let mut catalog = Catalog::open();
    catalog.accept_any_template();
    let mut compiled = validate(document, &catalog)?;
    if compiled
        .steps
        .iter()
        .any(|step| matches!(step.kind, cairn_journey::compiled::StepKind::Send(_)))
    {
        compiled.needs.journey_fields = true;
    }
    Ok(compiled)
}

impl Registry {
    /// Rebuilds a registry from its checkpointed form.
    pub(crate) fn load(bytes: &[u8]) -> Result<Registry, String> {
        let persisted: Persisted =
            serde_json::from_slice(bytes).map_err(|error| format!("registry: {error}"))?;
        let mut registry = Registry {
            persisted,
            ..Registry::default()
        };
        registry.rebuild()?;
        Ok(registry)
    }

    /// The checkpointed form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.persisted).unwrap_or_default()
    }

    /// Makes the next checkpoint write the registry.
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether something changed since the last [`Registry::take_dirty`].
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn rebuild(&mut self) -> Result<(), String> {
        let mut live = Vec::new();
        self.versions.clear();
        for record in self.persisted.journeys.values() {
            let latest = record.versions.len();
            for (position, version) in record.versions.iter().enumerate() {
                let compiled = recompile(&version.document).map_err(|errors| {
                    format!(
                        "journey {} version {} no longer compiles: {errors:?}",
                        record.id, version.version
                    )
                })?;
                let mut journey = LiveJourney::new(JourneyKey(version.key), Arc::new(compiled));
                journey.retired = position + 1 != latest
                    || matches!(
                        record.status,
                        JourneyStatus::Stopped | JourneyStatus::Archived
                    );
                journey.paused = record.status == JourneyStatus::Paused;
                live.push(journey);
                self.versions.insert(
                    JourneyKey(version.key),
                    (record.id.clone(), version.version),
                );
            }
        }
        self.live = JourneySet::new(live);
        self.audiences = self
            .persisted
            .audiences
            .values()
            .map(|record| {
                validate_audience(&record.document, &Catalog::open())
                    .map(|compiled| LiveAudience {
                        index: record.index,
                        id: compiled.id,
                        condition: compiled.condition,
                    })
                    .map_err(|errors| format!("audience {}: {errors:?}", record.document.id))
            })
            .collect::<Result<_, _>>()?;
        self.audiences.sort_by_key(|audience| audience.index);
        self.suppressions = compile_suppressions(&self.persisted.policy)
            .map_err(|errors| format!("suppression rules: {errors:?}"))?;
        self.retrack();
        Ok(())
    }

    /// Which event names conditions count, and the longest window each is counted over.
    fn retrack(&mut self) {
        let mut tracked: HashMap<String, Tracking> = HashMap::new();
        let journey_conditions = self
            .live
            .journeys()
            .iter()
            .filter(|live| !live.retired)
            .flat_map(|live| live.journey.conditions());
        let audience_conditions = self.audiences.iter().map(|audience| &audience.condition);
        let suppression_conditions = self.suppressions.iter().map(|(_, condition)| condition);
        for condition in journey_conditions
            .chain(audience_conditions)
            .chain(suppression_conditions)
        {
            let references = condition.references();
            for name in &references.aggregate_events {
                let entry = tracked
                    .entry(name.clone())
                    .or_insert(Tracking { window_ms: None });
                entry.window_ms = match (entry.window_ms, references.longest_window_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        self.tracked = tracked;
    }

    pub(crate) fn journeys(&self) -> impl Iterator<Item = &JourneyRecord> {
        self.persisted.journeys.values()
    }

    pub(crate) fn journey(&self, id: &str) -> Option<&JourneyRecord> {
        self.persisted.journeys.get(id)
    }

    pub(crate) fn audience_records(&self) -> impl Iterator<Item = &AudienceRecord> {
        self.persisted.audiences.values()
    }

    pub(crate) fn audience_record(&self, id: &str) -> Option<&AudienceRecord> {
        self.persisted.audiences.get(id)
    }

    pub(crate) fn audience_id(&self, index: u32) -> Option<&str> {
        self.audiences
            .iter()
            .find(|audience| audience.index == index)
            .map(|audience| &*audience.id)
    }

    /// Per-step statistics of every version of a journey: counters with step ids and `current`.
    pub(crate) fn stats(&self, journey: &str) -> Option<Value> {
        let record = self.persisted.journeys.get(journey)?;
        let versions: Vec<Value> = record
            .versions
            .iter()
            .map(|version| {
                let counters = self
                    .persisted
                    .counters
                    .get(&version.key)
                    .cloned()
                    .unwrap_or_default();
                let live = self.live.get(JourneyKey(version.key));
                let steps: Vec<Value> = live
                    .map(|live| {
                        live.journey
                            .steps
                            .iter()
                            .enumerate()
                            .map(|(index, step)| {
                                let counter =
                                    counters.steps.get(index).cloned().unwrap_or_default();
                                serde_json::json!({
                                    "step": &*step.id,
                                    "current": counter.current(),
                                    "entered": counter.entered,
                                    "advanced": counter.advanced,
                                    "ended": counter.ended,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let goals: Vec<Value> = live
                    .map(|live| {
                        live.journey
                            .goals
                            .iter()
                            .enumerate()
                            .map(|(index, goal)| {
                                serde_json::json!({
                                    "goal": &*goal.id,
                                    "reached": counters.goals.get(index).copied().unwrap_or(0),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let reached: u64 = counters.goals.iter().sum();
                serde_json::json!({
                    "version": version.version,
                    "entered": counters.entered,
                    "current": counters.entered.saturating_sub(counters.ended.values().sum()),
                    "ended": counters.ended,
                    "goal_conversion": if counters.entered == 0 { 0.0 } else { reached as f64 / counters.entered as f64 },
                    "goals": goals,
                    "steps": steps,
                })
            })
            .collect();
        Some(serde_json::json!({"journey": journey, "status": record.status, "versions": versions}))
    }

    /// The journey id and version of a version key.
    pub(crate) fn version_of(&self, key: JourneyKey) -> Option<(&str, u32)> {
        self.versions
            .get(&key)
            .map(|(id, version)| (id.as_str(), *version))
    }

    /// Notes an event name and trait names seen (for validation's catalog).
    pub(crate) fn observe<'a>(
        &mut self,
        event: Option<&str>,
        attributes: impl Iterator<Item = &'a str>,
    ) {
        if let Some(event) = event {
            if !self.persisted.events.contains(event) {
                self.persisted.events.insert(event.to_string());
                self.dirty = true;
            }
        }
        for attribute in attributes {
            if !self.persisted.attributes.contains(attribute) {
                self.persisted.attributes.insert(attribute.to_string());
                self.dirty = true;
            }
        }
    }

    /// Event names and attributes seen.
    pub(crate) fn seen(&self) -> (&BTreeSet<String>, &BTreeSet<String>) {
        (&self.persisted.events, &self.persisted.attributes)
    }

    /// What validation checks documents against: the events and attributes seen in the workspace,
    /// attributes the document itself sets and its time zone attribute, the workspace's audiences;
    /// any event property; any template (until templates are stored).
    pub(crate) fn catalog_for(&self, document: Option<&JourneyDocument>) -> Catalog {
        let mut catalog = Catalog::new();
        if self.persisted.templates.is_empty() {
            // A workspace without templates yet (journeys drafted before their messages).
            catalog.accept_any_template();
        }
        for history in self.persisted.templates.values() {
            if history.latest().is_some() {
                catalog.template(journey_channel(history.draft.channel), &history.draft.id);
            }
        }
        catalog.schema_mut().allow_unknown_event_properties(true);
        for event in &self.persisted.events {
            catalog.event(event);
        }
        let known = self
            .persisted
            .attributes
            .iter()
            .map(String::as_str)
            .chain(STANDARD_ATTRIBUTES.iter().copied());
        for attribute in known {
            catalog.profile_attribute(attribute, Type::Any);
        }
        // The time zone attribute is optional by design (a customer without one gets the journey's
        // default zone), so a workspace that has not seen it yet still accepts the journey.
        if let Some(attribute) = document.and_then(|document| {
            document
                .defaults
                .time_zone_attribute
                .strip_prefix("profile.")
        }) {
            catalog.profile_attribute(attribute, Type::Any);
        }
        for step in document.into_iter().flat_map(|document| &document.steps) {
            if let Step::UpdateProfile(update) = step {
                let written = update
                    .set
                    .keys()
                    .chain(update.set_expr.keys())
                    .chain(update.increment.keys())
                    .chain(update.unset.iter());
                for attribute in written {
                    catalog.profile_attribute(attribute, Type::Any);
                }
            }
        }
        for audience in self.persisted.audiences.keys() {
            catalog.audience(audience);
        }
        catalog
    }

    /// Checks a journey document against the workspace's catalog and its declared federated
    /// attribute sets.
    pub(crate) fn check_journey(
        &self,
        document: &JourneyDocument,
        federated: Option<&crate::federated::DeclaredSets>,
    ) -> Vec<ValidationError> {
        let mut catalog = self.catalog_for(Some(document));
        if let Some(sets) = federated {
            for set in &sets.readable {
                catalog.federated_set(set);
            }
            for set in &sets.writable {
                catalog.writable_set(set);
            }
        }
        validate(document, &catalog).err().unwrap_or_default()
    }

    /// Checks an audience document against the workspace's catalog.
    pub(crate) fn check_audience(&self, document: &AudienceDocument) -> Vec<ValidationError> {
        validate_audience(document, &self.catalog_for(None))
            .err()
            .unwrap_or_default()
    }

    /// Applies a command at `now_ms`; `next_key` numbers published versions engine-wide.
    pub(crate) fn apply(
        &mut self,
        command: Command,
        now_ms: i64,
        next_key: &mut u32,
    ) -> (CommandOutcome, FollowUp) {
        let result = match command {
            Command::SaveDraft { document } => self.save_draft(*document, now_ms),
            Command::Publish { journey } => self.publish(&journey, now_ms, next_key),
            Command::Pause { journey } => self.pause(&journey, now_ms),
            Command::Resume { journey } => self.resume(&journey, now_ms),
            Command::Stop { journey, reason } => self.stop(&journey, reason, now_ms),
            Command::Archive { journey } => self.archive(&journey, now_ms),
            Command::Enroll {
                journey,
                profile,
                data,
            } => self.enroll(&journey, profile, data),
            Command::SaveAudience { document } => self.save_audience(*document, now_ms),
            Command::SetPolicy { policy } => self.set_policy(*policy),
            Command::SaveTemplate { document } => self.save_template(*document),
            Command::PublishTemplate { template } => self.publish_template(&template, now_ms),
            // Applied by the identity step before the registry sees commands.
            Command::UpsertSourceRecord { .. }
            | Command::RemoveSourceRecord { .. }
            | Command::UnmergeSourceRecords { .. }
            | Command::SetIdentityRules { .. } => {
                Err("source records are not registry commands".to_string())
            }
        };
        match result {
            Ok((outcome, follow_up)) => {
                self.dirty = true;
                (outcome, follow_up)
            }
            Err(refusal) => (CommandOutcome::refused(refusal), FollowUp::None),
        }
    }

    fn record_mut(&mut self, journey: &str) -> Result<&mut JourneyRecord, String> {
        self.persisted
            .journeys
            .get_mut(journey)
            .ok_or_else(|| format!("no journey {journey:?}"))
    }

    fn save_draft(
        &mut self,
        document: JourneyDocument,
        now_ms: i64,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let id = document.id.clone();
        match self.persisted.journeys.get_mut(&id) {
            Some(record) if record.status == JourneyStatus::Archived => {
                return Err(format!("journey {id:?} is archived"));
            }
            Some(record) => {
                record.draft = Some(document);
                record.updated_at_ms = now_ms;
            }
            None => {
                self.persisted.journeys.insert(
                    id.clone(),
                    JourneyRecord {
                        id: id.clone(),
                        status: JourneyStatus::Draft,
                        draft: Some(document),
                        created_at_ms: now_ms,
                        updated_at_ms: now_ms,
                        versions: Vec::new(),
                        stop_reason: None,
                    },
                );
            }
        }
        Ok((
            CommandOutcome::done(format!("draft of {id:?} saved")),
            FollowUp::None,
        ))
    }

    fn publish(
        &mut self,
        journey: &str,
        now_ms: i64,
        next_key: &mut u32,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let record = self.record_mut(journey)?;
        if matches!(
            record.status,
            JourneyStatus::Stopped | JourneyStatus::Archived
        ) {
            return Err(format!("journey {journey:?} is {:?}", record.status).to_lowercase());
        }
        let document = record
            .draft
            .clone()
            .ok_or_else(|| format!("journey {journey:?} has no draft to publish"))?;
        let compiled = recompile(&document)
            .map_err(|errors| format!("the draft does not validate: {errors:?}"))?;
        let key = JourneyKey(*next_key);
        *next_key += 1;
        let version = record.versions.len() as u32 + 1;
        let next_fire_ms = match &compiled.entry {
            CompiledEntry::Schedule { schedule, .. } => next_fire_after(schedule, now_ms),
            _ => None,
        };
        let previous: Vec<JourneyKey> = record
            .versions
            .iter()
            .map(|version| JourneyKey(version.key))
            .collect();
        record.versions.push(VersionRecord {
            version,
            key: key.0,
            document,
            published_at_ms: now_ms,
            next_fire_ms,
        });
        let paused = record.status == JourneyStatus::Paused;
        if record.status == JourneyStatus::Draft {
            record.status = JourneyStatus::Published;
        }
        record.updated_at_ms = now_ms;
        for old in previous {
            self.live.set_retired(old);
        }
        let mut live = LiveJourney::new(key, Arc::new(compiled));
        live.paused = paused;
        self.live.insert(live);
        self.versions.insert(key, (journey.to_string(), version));
        self.persisted.counters.entry(key.0).or_default();
        self.retrack();
        let mut outcome = CommandOutcome::done(format!("{journey:?} version {version} published"));
        outcome.version = Some(version);
        Ok((outcome, FollowUp::None))
    }

    fn keys_of(&self, journey: &str) -> Vec<JourneyKey> {
        self.persisted
            .journeys
            .get(journey)
            .map(|record| {
                record
                    .versions
                    .iter()
                    .map(|version| JourneyKey(version.key))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn pause(&mut self, journey: &str, now_ms: i64) -> Result<(CommandOutcome, FollowUp), String> {
        let record = self.record_mut(journey)?;
        if record.status != JourneyStatus::Published {
            return Err(format!(
                "only a published journey can be paused; {journey:?} is {:?}",
                record.status
            )
            .to_lowercase());
        }
        record.status = JourneyStatus::Paused;
        record.updated_at_ms = now_ms;
        for key in self.keys_of(journey) {
            self.live.set_paused(key, true);
        }
        Ok((
            CommandOutcome::done(format!("{journey:?} paused")),
            FollowUp::None,
        ))
    }

    fn resume(&mut self, journey: &str, now_ms: i64) -> Result<(CommandOutcome, FollowUp), String> {
        let record = self.record_mut(journey)?;
        if record.status != JourneyStatus::Paused {
            return Err(format!(
                "only a paused journey can be resumed; {journey:?} is {:?}",
                record.status
            )
            .to_lowercase());
        }
        record.status = JourneyStatus::Published;
        record.updated_at_ms = now_ms;
        let keys = self.keys_of(journey);
        for key in &keys {
            self.live.set_paused(*key, false);
        }
        Ok((
            CommandOutcome::done(format!("{journey:?} resumed")),
            FollowUp::Resume(keys),
        ))
    }

    fn stop(
        &mut self,
        journey: &str,
        reason: String,
        now_ms: i64,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let record = self.record_mut(journey)?;
        if !matches!(
            record.status,
            JourneyStatus::Published | JourneyStatus::Paused
        ) {
            return Err(format!(
                "only a published or paused journey can be stopped; {journey:?} is {:?}",
                record.status
            )
            .to_lowercase());
        }
        record.status = JourneyStatus::Stopped;
        record.stop_reason = Some(reason.clone());
        record.updated_at_ms = now_ms;
        let keys = self.keys_of(journey);
        for key in &keys {
            self.live.set_retired(*key);
            // Held customers must be able to end: a stopped journey is no longer paused.
            self.live.set_paused(*key, false);
        }
        self.retrack();
        Ok((
            CommandOutcome::done(format!("{journey:?} stopped")),
            FollowUp::Stop(keys, reason),
        ))
    }

    fn archive(
        &mut self,
        journey: &str,
        now_ms: i64,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let record = self.record_mut(journey)?;
        if !matches!(record.status, JourneyStatus::Stopped | JourneyStatus::Draft) {
            return Err(format!(
                "stop {journey:?} before archiving it (it is {:?})",
                record.status
            )
            .to_lowercase());
        }
        record.status = JourneyStatus::Archived;
        record.updated_at_ms = now_ms;
        Ok((
            CommandOutcome::done(format!("{journey:?} archived")),
            FollowUp::None,
        ))
    }

    fn enroll(
        &mut self,
        journey: &str,
        profile: ProfileRef,
        data: Option<Value>,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let record = self
            .persisted
            .journeys
            .get(journey)
            .ok_or_else(|| format!("no journey {journey:?}"))?;
        let latest = record
            .latest()
            .ok_or_else(|| format!("journey {journey:?} is not published"))?;
        Ok((
            CommandOutcome::done("enrollment requested"),
            FollowUp::Enroll {
                key: JourneyKey(latest.key),
                profile,
                data,
            },
        ))
    }

    fn save_audience(
        &mut self,
        document: AudienceDocument,
        now_ms: i64,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let compiled = validate_audience(&document, &Catalog::open())
            .map_err(|errors| format!("the audience does not validate: {errors:?}"))?;
        let next_index = self
            .persisted
            .audiences
            .values()
            .map(|record| record.index + 1)
            .max()
            .unwrap_or(0);
        let index = match self.persisted.audiences.get_mut(&document.id) {
            Some(record) => {
                record.document = document.clone();
                record.updated_at_ms = now_ms;
                record.index
            }
            None => {
                self.persisted.audiences.insert(
                    document.id.clone(),
                    AudienceRecord {
                        index: next_index,
                        document: document.clone(),
                        created_at_ms: now_ms,
                        updated_at_ms: now_ms,
                        members: 0,
                    },
                );
                next_index
            }
        };
        self.audiences.retain(|audience| audience.index != index);
        self.audiences.push(LiveAudience {
            index,
            id: compiled.id,
            condition: compiled.condition,
        });
        self.audiences.sort_by_key(|audience| audience.index);
        self.retrack();
        Ok((
            CommandOutcome::done(format!("audience {:?} saved", document.id)),
            FollowUp::EvaluateAudience(index),
        ))
    }

    fn set_policy(
        &mut self,
        policy: WorkspacePolicy,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let delivery = policy
            .delivery
            .clone()
            .validated()
            .map_err(|error| format!("the delivery policy is invalid: {error}"))?;
        let policy = WorkspacePolicy { delivery, ..policy };
        self.suppressions = compile_suppressions(&policy)
            .map_err(|errors| format!("a suppression rule does not compile: {errors:?}"))?;
        self.persisted.policy = policy;
        self.retrack();
        Ok((CommandOutcome::done("delivery policy set"), FollowUp::None))
    }

    fn save_template(
        &mut self,
        document: TemplateDocument,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let id = document.id.clone();
        match self.persisted.templates.get_mut(&id) {
            Some(history) => history.draft = document,
            None => {
                self.persisted
                    .templates
                    .insert(id.clone(), TemplateHistory::new(document));
            }
        }
        Ok((
            CommandOutcome::done(format!("template draft {id:?} saved")),
            FollowUp::None,
        ))
    }

    fn publish_template(
        &mut self,
        template: &str,
        now_ms: i64,
    ) -> Result<(CommandOutcome, FollowUp), String> {
        let schema = self.template_schema();
        let history = self
            .persisted
            .templates
            .get_mut(template)
            .ok_or_else(|| format!("no template {template:?}"))?;
        let (published, _) = history
            .publish(&schema, now_ms)
            .map_err(|error| format!("the template does not validate: {error}"))?;
        let mut outcome = CommandOutcome::done(format!(
            "template {template:?} version {} published",
            published.version
        ));
        outcome.version = Some(published.version);
        Ok((outcome, FollowUp::None))
    }

    /// What a template may read: the profile attributes seen (and anything below them), the
    /// event's and the journey's fields, federated attributes.
    pub(crate) fn template_schema(&self) -> VariableSchema {
        let mut schema = VariableSchema::from_paths(["event.*", "journey.*", "federated.*"]);
        let known = self
            .persisted
            .attributes
            .iter()
            .map(String::as_str)
            .chain(STANDARD_ATTRIBUTES.iter().copied());
        for attribute in known {
            schema.declare(&format!("profile.{attribute}"));
            schema.declare(&format!("profile.{attribute}.*"));
        }
        schema.declare("profile.id");
        schema
    }

    /// A template's history.
    pub(crate) fn template(&self, id: &str) -> Option<&TemplateHistory> {
        self.persisted.templates.get(id)
    }

    pub(crate) fn templates(&self) -> impl Iterator<Item = &TemplateHistory> {
        self.persisted.templates.values()
    }

    /// The delivery policy.
    pub(crate) fn policy(&self) -> &WorkspacePolicy {
        &self.persisted.policy
    }

    /// Counts what one input did into the versions' counters.
    pub(crate) fn count(&mut self, effects: &Effects) {
        if effects.entered.is_empty() && effects.step_counts.is_empty() && effects.ended.is_empty()
        {
            return;
        }
        self.dirty = true;
        for entered in &effects.entered {
            self.counters_mut(entered.journey).entered += 1;
        }
        for count in &effects.step_counts {
            let counters = self.counters_mut(count.journey);
            let index = count.step.get();
            if counters.steps.len() <= index {
                counters.steps.resize_with(index + 1, StepCounter::default);
            }
            let step = &mut counters.steps[index];
            match count.change {
                StepChange::Entered => step.entered += 1,
                StepChange::Advanced => step.advanced += 1,
                StepChange::Ended(reason) => {
                    *step.ended.entry(reason.as_str().to_string()).or_default() += 1;
                }
            }
        }
        for ended in &effects.ended {
            let counters = self.counters_mut(ended.journey);
            *counters
                .ended
                .entry(ended.reason.as_str().to_string())
                .or_default() += 1;
            if let (EndReason::GoalReached, EndDetail::Goal(goal)) = (ended.reason, &ended.detail) {
                let goal = usize::from(*goal);
                if counters.goals.len() <= goal {
                    counters.goals.resize(goal + 1, 0);
                }
                counters.goals[goal] += 1;
            }
        }
    }

    fn counters_mut(&mut self, key: JourneyKey) -> &mut VersionCounters {
        self.persisted.counters.entry(key.0).or_default()
    }

    /// A profile joined (`+1`) or left (`-1`) an audience.
    pub(crate) fn count_member(&mut self, index: u32, joined: bool) {
        if let Some(record) = self
            .persisted
            .audiences
            .values_mut()
            .find(|record| record.index == index)
        {
            record.members = if joined {
                record.members + 1
            } else {
                record.members.saturating_sub(1)
            };
            self.dirty = true;
        }
    }

    /// Schedule entries due at or before `now_ms`: (version, its audience), each moved to its next
    /// fire time.
    pub(crate) fn take_due_schedules(&mut self, now_ms: i64) -> Vec<(JourneyKey, Arc<str>)> {
        let mut due = Vec::new();
        for record in self.persisted.journeys.values_mut() {
            if record.status != JourneyStatus::Published {
                continue;
            }
            let Some(version) = record.versions.last_mut() else {
                continue;
            };
            let key = JourneyKey(version.key);
            let Some(live) = self.live.get(key) else {
                continue;
            };
            let CompiledEntry::Schedule {
                schedule, audience, ..
            } = &live.journey.entry
            else {
                continue;
            };
            // Runs missed while the server was down fire once, not once per missed run.
            if version.next_fire_ms.is_some_and(|at| at <= now_ms) {
                due.push((key, audience.clone()));
                version.next_fire_ms = next_fire_after(schedule, now_ms);
                self.dirty = true;
            }
        }
        due
    }

    /// The earliest schedule fire time.
    pub(crate) fn next_schedule_ms(&self) -> Option<i64> {
        self.persisted
            .journeys
            .values()
            .filter(|record| record.status == JourneyStatus::Published)
            .filter_map(|record| record.latest()?.next_fire_ms)
            .min()
    }
}
