//! Journeys in the state: time, commands, events, audiences and merges, and what their effects do.
//!
//! Every input reaches a profile's journeys through [`cairn_journey::handle`] (the pure per-profile
//! orchestration); this module feeds it and keeps what it decides: timers in the index, counters in
//! the registry, messages in the outbox, traces, profile updates in the traits.
//!
//! Time: the state has its own clock, moved only by inputs. Before a record received at `t` is applied,
//! every timer due before `t` fires (at its own time, in order); a tick at `t` also fires those due at
//! `t`. So an awaited event that arrives exactly at a timeout wins over the timeout, and replaying the
//! log fires the same timers at the same times.

use super::views::time;
use super::{Dirty, ProfileJourneyState, State};
use crate::activity;
use crate::codec::{message_json, EncodedMessage};
use crate::journeys::command::{Command, CommandOutcome, ProfileRef};
use crate::journeys::registry::{FollowUp, Registry};
use crate::journeys::timers::{TimerEntry, Wake};
use crate::state::ApplyError;
use cairn_condition::EvalContext;
use cairn_journey::explain::explain;
use cairn_journey::orchestrate::{try_enter, EnrollmentIds, EntryTrigger};
use cairn_journey::{
    handle, merge_profiles, Context, Effects, EnrollmentId, Event, EventHistory, JourneyKey,
    ProfileInput,
};
use cairn_model::WorkspaceId;
use cairn_storage::{OutboxRow, TraceRow};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Whether an event name can change consent or deliverability (`Email Unsubscribed`, `Subscribed`,
/// `SMS Complained`, `Email Bounced`, `Push Failed` for an invalid device token, …).
fn is_recipient_event(name: &str) -> bool {
    [
        "Unsubscribed",
        "Subscribed",
        "Complained",
        "Bounced",
        "Failed",
    ]
    .iter()
    .any(|verb| name == *verb || name.ends_with(&format!(" {verb}")))
}

/// The event the dispatcher records when a webhook answered (or failed for good): an awaiting
/// enrollment continues on its success or failure path.
pub const WEBHOOK_RESPONDED: &str = "Webhook Responded";

/// Enrollment ids from the engine-wide sequence.
struct Sequence<'a>(&'a mut u64);

impl EnrollmentIds for Sequence<'_> {
    fn next_enrollment_id(&mut self) -> EnrollmentId {
        let id = EnrollmentId(*self.0);
        *self.0 += 1;
        id
    }
}

/// Rounds of "profile changed → criteria and audiences" after one input (a guard against journeys
/// and audiences feeding each other forever).
const MAX_SETTLE_ROUNDS: usize = 3;

/// An enrollment of a profile, for readers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JourneyView {
    pub journey: String,
    pub version: u32,
    pub enrollment: u64,
    pub step: String,
    pub status: String,
    pub entered_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakes_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A trace entry as stored: the version key, the step index and the decision (the explanation in
/// words is rendered when the trace is read). This is the JSON form, which rows written by older
/// builds hold; new rows are written in [`BinaryEntry`]'s form.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct StoredDecision {
    #[serde(rename = "k")]
    key: u32,
    #[serde(rename = "s")]
    step: u16,
    #[serde(rename = "d")]
    decision: cairn_journey::effects::Decision,
}

/// The first byte of a trace entry in the binary form (a JSON entry starts with `{`).
const BINARY_TRACE_ENTRY: u8 = 0x01;

/// A trace entry in the binary form: [`BINARY_TRACE_ENTRY`], then this in postcard (positional,
/// varint integers). Every enrollment records entering and, in most journeys, a fixed-duration
/// wait; those two are positional. Any other decision is carried as its JSON text ([`Decision`] is
/// internally tagged, which postcard cannot read back).
///
/// [`Decision`]: cairn_journey::effects::Decision
#[derive(Debug, Serialize, serde::Deserialize)]
struct BinaryEntry {
    key: u32,
    step: u16,
    decision: CompactDecision,
}

/// A decision in [`BinaryEntry`]. Variants are only ever appended: their index is the stored tag.
#[derive(Debug, Serialize, serde::Deserialize)]
enum CompactDecision {
    /// The decision as JSON text.
    Json(String),
    /// [`Decision::Entered`](cairn_journey::effects::Decision::Entered).
    Entered { trigger: Option<String> },
    /// [`Decision::Wait`](cairn_journey::effects::Decision::Wait) with
    /// [`WaitReason::Duration`](cairn_journey::effects::WaitReason::Duration).
    DurationWait {
        until_ms: i64,
        duration_ms: i64,
        passed: bool,
    },
}

impl CompactDecision {
    fn of(decision: &cairn_journey::effects::Decision) -> CompactDecision {
        use cairn_journey::effects::{Decision, WaitReason};
        match decision {
            Decision::Entered { trigger } => CompactDecision::Entered {
                trigger: trigger.clone(),
            },
            Decision::Wait {
                until_ms,
                reason: WaitReason::Duration { duration_ms },
                passed,
            } => CompactDecision::DurationWait {
                until_ms: *until_ms,
                duration_ms: *duration_ms,
                passed: *passed,
            },
            other => CompactDecision::Json(serde_json::to_string(other).unwrap_or_default()),
        }
    }

    fn decision(self) -> Option<cairn_journey::effects::Decision> {
        use cairn_journey::effects::{Decision, WaitReason};
        match self {
            CompactDecision::Json(text) => serde_json::from_str(&text).ok(),
            CompactDecision::Entered { trigger } => Some(Decision::Entered { trigger }),
            CompactDecision::DurationWait {
                until_ms,
                duration_ms,
                passed,
            } => Some(Decision::Wait {
                until_ms,
                reason: WaitReason::Duration { duration_ms },
                passed,
            }),
        }
    }
}

impl StoredDecision {
    /// The stored form of a trace entry: [`BINARY_TRACE_ENTRY`], then [`BinaryEntry`] in postcard.
    fn encode(entry: &cairn_journey::effects::TraceEntry) -> Vec<u8> {
        let binary = BinaryEntry {
            key: entry.journey.0,
            step: entry.step.0,
            decision: CompactDecision::of(&entry.decision),
        };
        postcard::to_extend(&binary, vec![BINARY_TRACE_ENTRY]).unwrap_or_else(|error| {
            tracing::warn!(%error, "a trace entry is stored as JSON");
            serde_json::to_vec(&StoredDecision {
                key: entry.journey.0,
                step: entry.step.0,
                decision: entry.decision.clone(),
            })
            .unwrap_or_default()
        })
    }

    /// Reads a stored trace entry: the binary form, or (older rows) JSON.
    fn decode(bytes: &[u8]) -> Option<StoredDecision> {
        match bytes.split_first() {
            Some((&BINARY_TRACE_ENTRY, binary)) => {
                let binary: BinaryEntry = postcard::from_bytes(binary).ok()?;
                Some(StoredDecision {
                    key: binary.key,
                    step: binary.step,
                    decision: binary.decision.decision()?,
                })
            }
            _ => serde_json::from_slice(bytes).ok(),
        }
    }

    /// The trace entry of a stored row, as the API shows it: time, version, step id, decision and
    /// its explanation in words.
    pub(crate) fn view(row: &TraceRow, registry: &Registry) -> Value {
        let Some(stored) = StoredDecision::decode(&row.entry) else {
            return json!({"at": time(row.at_ms), "enrollment": row.enrollment, "decision": null});
        };
        let key = JourneyKey(stored.key);
        let entry = cairn_journey::effects::TraceEntry {
            enrollment: EnrollmentId(row.enrollment),
            journey: key,
            step: cairn_journey::StepIndex(stored.step),
            at_ms: row.at_ms,
            decision: stored.decision,
        };
        let live = registry.live.get(key);
        json!({
            "at": time(row.at_ms),
            "enrollment": row.enrollment,
            "version": registry.version_of(key).map(|(_, version)| version),
            "step": live
                .and_then(|live| live.journey.step(entry.step))
                .map(|step| step.id.to_string()),
            "decision": entry.decision,
            "explanation": live.map(|live| explain(&live.journey, &entry)),
        })
    }
}

/// What re-evaluating a profile's audiences changes.
#[derive(Debug, Default)]
struct AudienceChange {
    joined: Vec<(u32, Arc<str>)>,
    left: Vec<(u32, Arc<str>)>,
    /// Every audience timer the profile keeps after the evaluation.
    timers: Vec<(u32, i64)>,
    /// The ones not already in the timer index.
    new_timers: Vec<(u32, i64)>,
}

/// What a condition over a profile (an audience) sees.
struct AudienceContext<'a> {
    now_ms: i64,
    profile: &'a Map<String, Value>,
    history: &'a dyn EventHistory,
}

impl EvalContext for AudienceContext<'_> {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn profile(&self) -> Option<&Map<String, Value>> {
        Some(self.profile)
    }
    fn event(&self) -> Option<&Value> {
        None
    }
    fn journey(&self) -> Option<&Value> {
        None
    }
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64 {
        self.history.event_count(name, since_ms)
    }
    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>) {
        self.history.event_times(name)
    }
    fn recent_event_times(&self, name: &str) -> &[i64] {
        self.history.recent_event_times(name)
    }
}

impl State {
    /// Moves the clock to `at_ms` (never backwards), first firing what is due before it (and at it,
    /// when `inclusive`): schedule entries, then timers in time order, each at its own time. Returns
    /// the clock.
    pub(crate) fn advance_time(&mut self, at_ms: i64, inclusive: bool) -> i64 {
        let target = at_ms.max(self.clock_ms);
        let workspaces: Vec<WorkspaceId> = self.registries.keys().cloned().collect();
        for workspace in workspaces {
            let due = match self.registries.get_mut(&workspace) {
                Some(registry) => registry.take_due_schedules(target),
                None => continue,
            };
            for (key, audience) in due {
                self.fire_schedule(&workspace, key, &audience, target);
            }
        }
        loop {
            let due = self.timers.take_due(target, inclusive);
            if due.is_empty() {
                break;
            }
            for entry in due {
                let now = entry.at_ms.max(self.clock_ms);
                self.clock_ms = now;
                self.fire(entry, now);
            }
        }
        self.clock_ms = target;
        target
    }

    /// Applies a tick: time passes to `at_ms`.
    pub(crate) fn apply_tick(&mut self, seq: u64, at_ms: i64) {
        self.advance_time(at_ms, true);
        self.applied_seq = seq;
    }

    /// Applies a command record.
    pub(crate) fn apply_command(
        &mut self,
        seq: u64,
        workspace: &WorkspaceId,
        at_ms: i64,
        command: Command,
    ) {
        let now = self.advance_time(at_ms, false);
        let command = match command {
            Command::UpsertSourceRecord { source, id, fields } => {
                let outcome = self.upsert_source_record(workspace, &source, &id, &fields, now);
                self.keep_outcome(seq, outcome);
                self.applied_seq = seq;
                return;
            }
            Command::RemoveSourceRecord { source, id } => {
                let outcome = self.remove_source_record(workspace, &source, &id, now);
                self.keep_outcome(seq, outcome);
                self.applied_seq = seq;
                return;
            }
            Command::UnmergeSourceRecords { left, right } => {
                let outcome = self.unmerge_source_records(workspace, &left, &right, now);
                self.keep_outcome(seq, outcome);
                self.applied_seq = seq;
                return;
            }
            Command::SetIdentityRules { ruleset, samples } => {
                let outcome = self.set_identity_rules(workspace, &ruleset, samples, now);
                self.keep_outcome(seq, outcome);
                self.applied_seq = seq;
                return;
            }
            other => other,
        };
        let registry = self.registries.entry(workspace.clone()).or_default();
        let (mut outcome, follow_up) = registry.apply(command, now, &mut self.next_journey_key);
        match follow_up {
            FollowUp::None => {}
            FollowUp::Resume(keys) => {
                for key in keys {
                    self.each_enrolled(workspace, key, |state, rank| {
                        state.run_input(rank, ProfileInput::JourneyResumed { journey: key }, now);
                    });
                }
            }
            FollowUp::Stop(keys, reason) => {
                for key in keys {
                    self.each_enrolled(workspace, key, |state, rank| {
                        state.run_input(
                            rank,
                            ProfileInput::JourneyStopped {
                                journey: key,
                                reason: &reason,
                            },
                            now,
                        );
                    });
                }
            }
            FollowUp::Enroll { key, profile, data } => {
                outcome = self.enroll(workspace, key, &profile, data.as_ref(), now);
            }
            FollowUp::EvaluateAudience(index) => {
                let ranks = self.workspace_profiles(workspace);
                for rank in ranks {
                    self.evaluate_audiences(rank, now, Some(index));
                }
            }
        }
        self.keep_outcome(seq, outcome);
        self.applied_seq = seq;
    }

    /// Surviving profiles of a workspace, in rank order.
    fn workspace_profiles(&self, workspace: &WorkspaceId) -> Vec<u32> {
        self.profiles
            .iter()
            .filter(|record| &record.workspace == workspace && record.merged_into.is_none())
            .map(|record| record.rank)
            .collect()
    }

    /// Runs `work` for every surviving profile of `workspace` with an enrollment in version `key`.
    fn each_enrolled(
        &mut self,
        workspace: &WorkspaceId,
        key: JourneyKey,
        mut work: impl FnMut(&mut State, u32),
    ) {
        let ranks: Vec<u32> = self
            .profiles
            .iter()
            .filter(|record| &record.workspace == workspace && record.merged_into.is_none())
            .filter(|record| {
                record.journey.as_ref().is_some_and(|state| {
                    state
                        .journeys
                        .enrollments
                        .iter()
                        .any(|enrollment| enrollment.journey == key)
                })
            })
            .map(|record| record.rank)
            .collect();
        for rank in ranks {
            work(self, rank);
        }
    }

    fn enroll(
        &mut self,
        workspace: &WorkspaceId,
        key: JourneyKey,
        profile: &ProfileRef,
        data: Option<&Value>,
        now: i64,
    ) -> CommandOutcome {
        let rank = match profile {
            ProfileRef::Id(id) => self.find(workspace, id),
            ProfileRef::Identifier(identifier) => self.find_by_identifier(workspace, identifier),
        };
        let Some(rank) = rank else {
            return CommandOutcome::refused("no such profile in this workspace");
        };
        let mut entered = None;
        let mut refusal = None;
        self.with_journeys(rank, now, |registry, journeys, context, ids, effects| {
            let Some(live) = registry.live.get(key) else {
                refusal = Some("the journey version is not live".to_string());
                return;
            };
            let trigger = EntryTrigger { event: None, data };
            match try_enter(
                &registry.live,
                live,
                journeys,
                trigger,
                context,
                ids,
                effects,
            ) {
                Ok(id) => entered = Some(id.0),
                Err(why) => {
                    refusal = Some(format!(
                        "not enrolled: {}",
                        serde_json::to_value(why)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ))
                }
            }
        });
        self.settle(rank, now);
        match (entered, refusal) {
            (Some(id), _) => {
                let mut outcome = CommandOutcome::done("enrolled");
                outcome.enrollment = Some(id);
                outcome
            }
            (None, Some(why)) => CommandOutcome::refused(why),
            (None, None) => CommandOutcome::refused("not enrolled"),
        }
    }

    /// Enrolls every member of an audience in a schedule-entry journey version.
    fn fire_schedule(
        &mut self,
        workspace: &WorkspaceId,
        key: JourneyKey,
        audience: &str,
        now: i64,
    ) {
        let Some(index) = self
            .registries
            .get(workspace)
            .and_then(|registry| registry.audience_record(audience))
            .map(|record| record.index)
        else {
            return;
        };
        let members: Vec<u32> = self
            .profiles
            .iter()
            .filter(|record| &record.workspace == workspace && record.merged_into.is_none())
            .filter(|record| {
                record
                    .journey
                    .as_ref()
                    .is_some_and(|state| state.audiences.contains(&index))
            })
            .map(|record| record.rank)
            .collect();
        for rank in members {
            self.run_input(rank, ProfileInput::ScheduleFired { journey: key }, now);
            self.settle(rank, now);
        }
    }

    /// A due timer: the waits of the profile's enrollments with that wake-up time are over (in
    /// enrollment id order), or the audience memberships with that time may have changed (in audience
    /// order). An owner whose timer moved or ended since left the entry behind, and is not woken.
    fn fire(&mut self, entry: TimerEntry, now: i64) {
        let rank = self.survivor(entry.rank);
        match entry.wake {
            Wake::Enrollment => {
                let mut due: Vec<u64> = self
                    .record(rank)
                    .journey
                    .as_ref()
                    .map(|state| {
                        state
                            .journeys
                            .enrollments
                            .iter()
                            .filter(|enrollment| enrollment.timer() == Some(entry.at_ms))
                            .map(|enrollment| enrollment.id.0)
                            .collect()
                    })
                    .unwrap_or_default();
                due.sort_unstable();
                for id in due {
                    // An earlier wake-up of this profile may have ended or moved this one.
                    let current = self.record(rank).journey.as_ref().is_some_and(|state| {
                        state.journeys.enrollments.iter().any(|enrollment| {
                            enrollment.id.0 == id && enrollment.timer() == Some(entry.at_ms)
                        })
                    });
                    if current {
                        self.run_input(
                            rank,
                            ProfileInput::Timer {
                                enrollment: EnrollmentId(id),
                            },
                            now,
                        );
                        self.settle(rank, now);
                    }
                }
            }
            Wake::Audience => {
                let mut due: Vec<u32> = self
                    .record(rank)
                    .journey
                    .as_ref()
                    .map(|state| {
                        state
                            .audience_timers
                            .iter()
                            .filter(|(_, at_ms)| *at_ms == entry.at_ms)
                            .map(|(index, _)| *index)
                            .collect()
                    })
                    .unwrap_or_default();
                due.sort_unstable();
                due.dedup();
                for index in due {
                    let current =
                        self.record(rank).journey.as_ref().is_some_and(|state| {
                            state.audience_timers.contains(&(index, entry.at_ms))
                        });
                    if current {
                        self.evaluate_audiences(rank, now, Some(index));
                    }
                }
            }
            Wake::Delivery => self.wake_delayed(rank, now),
        }
    }

    /// After a message was attached to profile `rank`: its event goes to the journeys that care and
    /// into the history that conditions count; changed traits re-check criteria and audiences.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn after_message(
        &mut self,
        rank: u32,
        workspace: &WorkspaceId,
        now: i64,
        received_at_ms: i64,
        event_name: Option<&str>,
        message: &EncodedMessage<'_>,
        traits_changed: bool,
    ) -> Result<(), ApplyError> {
        if let Some(name) = event_name {
            if is_recipient_event(name) {
                let properties = message_json(received_at_ms, message)?["properties"].take();
                self.apply_recipient_event(rank, name, &properties, message.timestamp_ms);
            }
            if !self.activity.is_empty() && activity::is_acceptance(name) {
                let properties = message_json(received_at_ms, message)?["properties"].take();
                let profile_id = self.record(rank).id.to_string();
                let subject = activity::Subject {
                    workspace,
                    profile_id: &profile_id,
                };
                if let Some(item) = activity::of_delivery(
                    &self.activity,
                    &subject,
                    name,
                    &properties,
                    message.timestamp_ms,
                ) {
                    let row = activity::outbox_row(&item, workspace, rank, now);
                    self.keep_outbox_row(rank, row);
                }
            }
        }
        let registry = self.registries.entry(workspace.clone()).or_default();
        registry.observe(event_name, std::iter::empty());
        let Some(name) = event_name else {
            if traits_changed {
                self.settle_after(rank, now, true);
            }
            return Ok(());
        };
        let tracking = registry.tracked.get(name).copied();
        let cares = registry.live.cares_about(name);
        if let Some(tracking) = tracking {
            let state = self
                .record_mut(rank)
                .journey
                .get_or_insert_with(Box::default);
            state
                .history
                .record(name, message.timestamp_ms, tracking, now);
            self.touch(rank, Dirty::Extra);
        }
        if name == WEBHOOK_RESPONDED || name == crate::federated::FEDERATED_FETCHED {
            self.deliver_result(rank, received_at_ms, message, now)?;
        }
        if cares {
            let event = Event {
                name: name.to_string(),
                timestamp_ms: message.timestamp_ms,
                message: message_json(received_at_ms, message)?,
            };
            self.run_input(rank, ProfileInput::Event(&event), now);
        }
        self.settle_after(rank, now, traits_changed || tracking.is_some());
        Ok(())
    }

    /// A webhook's answer for an enrollment waiting on it (`Webhook Responded` with
    /// `properties.message_id`, `ok` and `response`).
    fn deliver_result(
        &mut self,
        rank: u32,
        received_at_ms: i64,
        message: &EncodedMessage<'_>,
        now: i64,
    ) -> Result<(), ApplyError> {
        let properties = message_json(received_at_ms, message)?["properties"].take();
        let Some(message_id) = properties["message_id"]
            .as_str()
            .and_then(cairn_journey::MessageId::parse)
        else {
            return Ok(());
        };
        let result = cairn_journey::DeliveryResult {
            message_id,
            ok: properties["ok"].as_bool().unwrap_or(false),
            response: properties["response"].clone(),
        };
        self.run_input(rank, ProfileInput::DeliveryResult(&result), now);
        Ok(())
    }

    /// Criteria and audiences after the profile may have changed.
    pub(super) fn settle_after(&mut self, rank: u32, now: i64, changed: bool) {
        if changed {
            let changed_again = self.run_input(rank, ProfileInput::ProfileChanged, now);
            self.evaluate_audiences(rank, now, None);
            if changed_again {
                self.settle(rank, now);
            }
        }
    }

    /// Re-checks profile-only criteria and audiences while journeys keep changing the profile.
    fn settle(&mut self, rank: u32, now: i64) {
        for _ in 0..MAX_SETTLE_ROUNDS {
            let changed = self.evaluate_audiences(rank, now, None);
            if !changed {
                return;
            }
            if !self.run_input(rank, ProfileInput::ProfileChanged, now) {
                return;
            }
        }
    }

    /// Runs one input through a profile's journeys; returns whether the profile's traits changed.
    pub(super) fn run_input(&mut self, rank: u32, input: ProfileInput<'_>, now: i64) -> bool {
        self.with_journeys(rank, now, |registry, journeys, context, ids, effects| {
            handle(&registry.live, journeys, input, context, ids, effects);
        })
    }

    /// Gives `work` a profile's journeys and a context, then keeps what the effects say. Returns
    /// whether the profile's traits changed.
    fn with_journeys(
        &mut self,
        rank: u32,
        now: i64,
        work: impl FnOnce(
            &Registry,
            &mut cairn_journey::orchestrate::ProfileJourneys,
            &mut Context<'_>,
            &mut dyn EnrollmentIds,
            &mut Effects,
        ),
    ) -> bool {
        let workspace = self.record(rank).workspace.clone();
        let State {
            registries,
            profiles,
            next_enrollment_id,
            ..
        } = self;
        let Some(registry) = registries.get_mut(&workspace) else {
            return false;
        };
        let record = &mut profiles[rank as usize - 1];
        let profile_id: Arc<str> = record.id.to_string().into();
        let state = record.journey.get_or_insert_with(Box::default);
        let mut effects = Effects::default();
        {
            let mut context = Context {
                now_ms: now,
                profile_id: &profile_id,
                profile: &mut record.traits.values,
                history: &state.history,
                trace_values: true,
            };
            work(
                registry,
                &mut state.journeys,
                &mut context,
                &mut Sequence(next_enrollment_id),
                &mut effects,
            );
        }
        if effects.is_empty() {
            return false;
        }
        self.keep_effects(rank, &workspace, &effects, now)
    }

    /// Keeps what one input's effects decided; returns whether the traits changed.
    fn keep_effects(
        &mut self,
        rank: u32,
        workspace: &WorkspaceId,
        effects: &Effects,
        now: i64,
    ) -> bool {
        for change in &effects.timers {
            if let Some(at_ms) = change.wake_at_ms {
                self.timers.add(TimerEntry {
                    at_ms,
                    rank,
                    wake: Wake::Enrollment,
                });
            }
        }
        let Some(registry) = self.registries.get_mut(workspace) else {
            return false;
        };
        registry.count(effects);
        let activity = if self.activity.is_empty() {
            Vec::new()
        } else {
            let profile_id = self.profiles[rank as usize - 1].id.to_string();
            let subject = activity::Subject {
                workspace,
                profile_id: &profile_id,
            };
            activity::of_effects(&self.activity, &subject, &registry.live, effects)
        };
        let traces: Vec<(String, u64, i64, Vec<u8>)> = effects
            .trace
            .iter()
            .filter_map(|entry| {
                let live = registry.live.get(entry.journey)?;
                Some((
                    live.journey.id.to_string(),
                    entry.enrollment.0,
                    entry.at_ms,
                    StoredDecision::encode(entry),
                ))
            })
            .collect();
        let record = self.record_mut(rank);
        let mut traits_changed = false;
        for update in &effects.profile_updates {
            for change in &update.changes {
                let top = change
                    .attribute
                    .split('.')
                    .next()
                    .unwrap_or(&change.attribute)
                    .to_string();
                record.traits.set_at.insert(top, now);
                traits_changed = true;
            }
        }
        if traits_changed {
            record.updated_at_ms = record.updated_at_ms.max(now);
        }
        let state = record.journey.get_or_insert_with(Box::default);
        for (journey_id, enrollment, at_ms, entry) in traces {
            state.pending_traces.push(TraceRow {
                profile_rank: rank,
                journey_id,
                enrollment,
                position: state.trace_position,
                at_ms,
                entry,
            });
            state.trace_position += 1;
        }
        self.touch(
            rank,
            if traits_changed {
                Dirty::Full
            } else {
                Dirty::Extra
            },
        );
        for message in &effects.outbox {
            let proposed = super::delivery::Proposed {
                message_id: message.message_id.to_string(),
                journey_id: message.journey_id.to_string(),
                channel: message.channel.as_str().to_string(),
                body: serde_json::to_value(message).unwrap_or_default(),
            };
            let row = self.decide_message(rank, workspace, proposed, now);
            self.keep_outbox_row(rank, row);
        }
        for item in &activity {
            self.keep_outbox_row(rank, activity::outbox_row(item, workspace, rank, now));
        }
        for write_back in &effects.write_backs {
            let row = crate::federated::write_back_row(write_back, workspace, rank);
            self.keep_outbox_row(rank, row);
        }
        for fetch in &effects.fetches {
            let row = crate::federated::fetch_row(fetch, workspace, rank);
            self.keep_outbox_row(rank, row);
        }
        traits_changed
    }

    /// Re-evaluates the workspace's audiences (or one of them) for a profile: joins and leaves go to
    /// the journeys, and a timer is set for when time alone could change the answer. Returns whether
    /// the profile's traits changed on the way.
    fn evaluate_audiences(&mut self, rank: u32, now: i64, only: Option<u32>) -> bool {
        let workspace = self.record(rank).workspace.clone();
        let Some(change) = self.audience_change(rank, &workspace, now, only) else {
            return false;
        };
        for &(_, at_ms) in &change.new_timers {
            self.timers.add(TimerEntry {
                at_ms,
                rank,
                wake: Wake::Audience,
            });
        }
        if let Some(registry) = self.registries.get_mut(&workspace) {
            for (index, _) in &change.joined {
                registry.count_member(*index, true);
            }
            for (index, _) in &change.left {
                registry.count_member(*index, false);
            }
        }
        let state = self
            .record_mut(rank)
            .journey
            .get_or_insert_with(Box::default);
        state.audience_timers = change.timers;
        state
            .audiences
            .retain(|index| !change.left.iter().any(|(gone, _)| gone == index));
        state
            .audiences
            .extend(change.joined.iter().map(|(index, _)| *index));
        self.touch(rank, Dirty::Extra);
        let mut traits_changed = false;
        for (_, audience) in &change.joined {
            traits_changed |= self.run_input(rank, ProfileInput::AudienceJoined { audience }, now);
        }
        for (_, audience) in &change.left {
            traits_changed |= self.run_input(rank, ProfileInput::AudienceLeft { audience }, now);
        }
        traits_changed
    }

    /// What re-evaluating audiences would change for a profile; `None` if nothing.
    fn audience_change(
        &self,
        rank: u32,
        workspace: &WorkspaceId,
        now: i64,
        only: Option<u32>,
    ) -> Option<AudienceChange> {
        let registry = self.registries.get(workspace)?;
        if registry.audiences.is_empty() {
            return None;
        }
        let record = self.record(rank);
        let empty = ProfileJourneyState::default();
        let state = record.journey.as_deref().unwrap_or(&empty);
        let context = AudienceContext {
            now_ms: now,
            profile: &record.traits.values,
            history: &state.history,
        };
        let mut change = AudienceChange::default();
        let mut evaluated = Vec::new();
        for audience in registry
            .audiences
            .iter()
            .filter(|audience| only.is_none_or(|index| index == audience.index))
        {
            evaluated.push(audience.index);
            let member = audience.condition.matches(&context);
            let was = state.audiences.contains(&audience.index);
            if member && !was {
                change.joined.push((audience.index, audience.id.clone()));
            } else if !member && was {
                change.left.push((audience.index, audience.id.clone()));
            }
            if let Some(at_ms) = audience.condition.next_change_after(&context) {
                let timer = (audience.index, at_ms.max(now + 1));
                if !state.audience_timers.contains(&timer) {
                    change.new_timers.push(timer);
                }
                change.timers.push(timer);
            }
        }
        change.timers.extend(
            state
                .audience_timers
                .iter()
                .filter(|(index, _)| !evaluated.contains(index))
                .copied(),
        );
        change.timers.sort_unstable();
        let mut old_timers = state.audience_timers.clone();
        old_timers.sort_unstable();
        let unchanged =
            change.joined.is_empty() && change.left.is_empty() && change.timers == old_timers;
        (!unchanged).then_some(change)
    }

    /// Merges an absorbed profile's journey state into a survivor's (see
    /// [`cairn_journey::merge_profiles`]): no message is sent twice, counters stay right, and the
    /// absorbed profile's pending traces and messages are kept.
    pub(super) fn merge_journeys(
        &mut self,
        survivor: u32,
        absorbed: ProfileJourneyState,
        now: i64,
    ) {
        let ProfileJourneyState {
            journeys,
            history,
            audiences: _,
            audience_timers: _,
            trace_position: _,
            pending_traces,
            pending_outbox,
            consent,
            sends,
            delayed,
            undeliverable,
        } = absorbed;
        let delayed_times: Vec<i64> = delayed.iter().map(|message| message.at_ms).collect();
        {
            let state = self
                .record_mut(survivor)
                .journey
                .get_or_insert_with(Box::default);
            state.pending_traces.extend(pending_traces);
            state.pending_outbox.extend(pending_outbox);
            state.history.absorb(history);
            state.consent.absorb(&consent);
            for entry in sends.entries() {
                state.sends.record_entry(*entry);
            }
            state.delayed.extend(delayed);
            for address in undeliverable {
                if !state.undeliverable.contains(&address) {
                    state.undeliverable.push(address);
                }
            }
        }
        for at_ms in delayed_times {
            self.timers.add(TimerEntry {
                at_ms,
                rank: survivor,
                wake: Wake::Delivery,
            });
        }
        self.with_journeys(
            survivor,
            now,
            |registry, survivor_journeys, _, _, effects| {
                merge_profiles(&registry.live, survivor_journeys, journeys, now, effects);
            },
        );
        self.touch(survivor, Dirty::Extra);
        self.settle_after(survivor, now, true);
    }

    /// A profile's enrollments, active ones first (then ended ones, from the entry history).
    pub(crate) fn journeys_of(&self, rank: u32) -> Vec<JourneyView> {
        let record = self.record(rank);
        let Some(registry) = self.registries.get(&record.workspace) else {
            return Vec::new();
        };
        let Some(state) = &record.journey else {
            return Vec::new();
        };
        state
            .journeys
            .enrollments
            .iter()
            .filter_map(|enrollment| {
                let live = registry.live.get(enrollment.journey)?;
                let (journey, version) = registry.version_of(enrollment.journey)?;
                Some(JourneyView {
                    journey: journey.to_string(),
                    version,
                    enrollment: enrollment.id.0,
                    step: live
                        .journey
                        .step(enrollment.step)
                        .map(|step| step.id.to_string())
                        .unwrap_or_default(),
                    status: match enrollment.status {
                        cairn_journey::Status::Waiting => "waiting".to_string(),
                        cairn_journey::Status::Held => "held".to_string(),
                        cairn_journey::Status::Ended(reason) => reason.as_str().to_string(),
                    },
                    entered_at: time(enrollment.entered_at_ms),
                    wakes_at: enrollment.timer().map(time),
                })
            })
            .collect()
    }

    /// A profile's entry history per journey id: (journey, entries, last entered, last ended).
    pub(crate) fn entry_history_of(&self, rank: u32) -> Vec<Value> {
        let record = self.record(rank);
        let (Some(state), Some(registry)) =
            (&record.journey, self.registries.get(&record.workspace))
        else {
            return Vec::new();
        };
        state
            .journeys
            .histories(&registry.live)
            .iter()
            .map(|history| {
                json!({
                    "journey": &*history.journey_id.text(),
                    "entries": history.entries,
                    "last_entered_at": time(history.last_entered_at_ms),
                    "last_ended_at": history.last_ended_at_ms.get().map(time),
                })
            })
            .collect()
    }

    /// Pending (not yet checkpointed) traces of the ranks in a journey.
    pub(crate) fn pending_traces(&self, ranks: &[u32], journey_id: &str) -> Vec<TraceRow> {
        ranks
            .iter()
            .filter_map(|&rank| self.record(rank).journey.as_ref())
            .flat_map(|state| state.pending_traces.iter())
            .filter(|row| row.journey_id == journey_id)
            .cloned()
            .collect()
    }

    /// Pending (not yet checkpointed) outbox messages of the ranks.
    pub(crate) fn pending_outbox(&self, ranks: &[u32]) -> Vec<OutboxRow> {
        ranks
            .iter()
            .filter_map(|&rank| self.record(rank).journey.as_ref())
            .flat_map(|state| state.pending_outbox.iter())
            .cloned()
            .collect()
    }

    /// Audience ids a profile is a member of.
    pub(crate) fn audiences_of(&self, rank: u32) -> Vec<String> {
        let record = self.record(rank);
        let (Some(registry), Some(state)) =
            (self.registries.get(&record.workspace), &record.journey)
        else {
            return Vec::new();
        };
        state
            .audiences
            .iter()
            .filter_map(|&index| registry.audience_id(index).map(str::to_string))
            .collect()
    }

    /// Surviving profiles that are members of an audience.
    pub(crate) fn audience_members(
        &self,
        workspace: &WorkspaceId,
        audience: &str,
        limit: usize,
    ) -> Vec<cairn_model::ProfileId> {
        let Some(index) = self
            .registries
            .get(workspace)
            .and_then(|registry| registry.audience_record(audience))
            .map(|record| record.index)
        else {
            return Vec::new();
        };
        self.profiles
            .iter()
            .filter(|record| &record.workspace == workspace && record.merged_into.is_none())
            .filter(|record| {
                record
                    .journey
                    .as_ref()
                    .is_some_and(|state| state.audiences.contains(&index))
            })
            .take(limit)
            .map(|record| record.id)
            .collect()
    }

    /// A workspace's registry, for readers.
    pub(crate) fn registry(&self, workspace: &WorkspaceId) -> Option<&Registry> {
        self.registries.get(workspace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_journey::effects::{Decision, TraceEntry, WaitReason};
    use cairn_journey::enrollment::EndReason;
    use cairn_journey::StepIndex;

    fn row(entry: Vec<u8>) -> TraceRow {
        TraceRow {
            profile_rank: 1,
            journey_id: "welcome".into(),
            enrollment: 7,
            position: 0,
            at_ms: 1_000,
            entry,
        }
    }

    fn trace(decision: Decision) -> TraceEntry {
        TraceEntry {
            enrollment: EnrollmentId(7),
            journey: JourneyKey(3),
            step: StepIndex(2),
            at_ms: 1_000,
            decision,
        }
    }

    /// The JSON form older builds stored.
    fn older_form(entry: &TraceEntry) -> Vec<u8> {
        serde_json::to_vec(&StoredDecision {
            key: entry.journey.0,
            step: entry.step.0,
            decision: entry.decision.clone(),
        })
        .expect("json")
    }

    #[test]
    fn trace_entries_are_stored_binary_and_read_like_the_older_json_rows() {
        let registry = Registry::default();
        let decisions = [
            Decision::Entered {
                trigger: Some("Signed Up".into()),
            },
            Decision::Entered { trigger: None },
            Decision::Wait {
                until_ms: 1_765_000_000_000,
                reason: WaitReason::Duration {
                    duration_ms: 86_400_000,
                },
                passed: false,
            },
            Decision::Wait {
                until_ms: -5,
                reason: WaitReason::DateTime,
                passed: true,
            },
            Decision::Ended {
                reason: EndReason::Completed,
            },
            Decision::WaitOver,
        ];
        for decision in decisions {
            let entry = trace(decision);
            let binary = StoredDecision::encode(&entry);
            let json = older_form(&entry);
            assert_eq!(binary.first(), Some(&BINARY_TRACE_ENTRY));
            assert!(binary.len() <= json.len(), "{binary:?} vs {json:?}");
            let decoded = StoredDecision::decode(&binary).expect("binary decodes");
            assert_eq!(
                (decoded.key, decoded.step, &decoded.decision),
                (3, 2, &entry.decision)
            );
            assert_eq!(
                StoredDecision::view(&row(binary), &registry),
                StoredDecision::view(&row(json), &registry)
            );
        }
    }

    #[test]
    fn the_two_decisions_of_a_waiting_enrollment_are_positional() {
        let entered = StoredDecision::encode(&trace(Decision::Entered {
            trigger: Some("Signed Up".into()),
        }));
        let wait = StoredDecision::encode(&trace(Decision::Wait {
            until_ms: 1_765_000_000_000,
            reason: WaitReason::Duration {
                duration_ms: 86_400_000,
            },
            passed: false,
        }));
        // Tag, key, step, variant, then the fields: no names, no JSON.
        assert_eq!(entered.len(), 1 + 1 + 1 + 1 + 1 + 1 + "Signed Up".len());
        assert!(wait.len() <= 20, "{} bytes", wait.len());
    }

    #[test]
    fn an_unreadable_trace_entry_shows_no_decision() {
        let view = StoredDecision::view(&row(vec![BINARY_TRACE_ENTRY, 0xff]), &Registry::default());
        assert_eq!(view["decision"], Value::Null);
        let view = StoredDecision::view(&row(b"not json".to_vec()), &Registry::default());
        assert_eq!(view["decision"], Value::Null);
    }
}
