//! Test mode: one journey, one customer, a script of timestamped events, a simulated clock.
//!
//! The simulator drives the same per-profile orchestration the engine uses ([`crate::handle`]): events
//! in time order, each enrollment's timer when it is due (events before timers at the same instant, so
//! an awaited event at exactly the timeout takes the event path), profile updates applied to the
//! simulated profile, feedback events (opens, clicks) addressed to messages by step, webhook delivery
//! results. A 30-day journey simulates in well under a millisecond per input.

use crate::compiled::{CompiledEntry, CompiledJourney};
use crate::cron_schedule::next_fire_after;
use crate::duration::parse_duration_ms;
use crate::effects::Effects;
use crate::enrollment::Enrollment;
use crate::event::{DeliveryResult, Event};
use crate::explain::{explain, explain_end};
use crate::ids::{JourneyKey, MessageId};
use crate::local_time::format_rfc3339;
use crate::orchestrate::{
    handle, try_enter, EntryTrigger, JourneySet, ProfileInput, ProfileJourneys, SequentialIds,
};
use crate::runtime::{Context, EventHistory, LiveJourney};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The start of a simulation when the script has no absolute timestamp: 2025-01-06T00:00:00Z (a Monday).
pub const DEFAULT_START_MS: i64 = 1_736_121_600_000;

/// One scripted input.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptItem {
    /// An event of the customer. A feedback event may name the send step in
    /// `properties.message_step` instead of a `message_id`: the simulator fills in the id of the latest
    /// message sent from that step.
    Event(Event),
    /// New profile attributes (`identify`).
    Identify {
        at_ms: i64,
        traits: Map<String, Value>,
    },
    /// A webhook's delivery result, for the latest message sent from `step`.
    DeliveryResult {
        at_ms: i64,
        step: String,
        ok: bool,
        response: Value,
    },
}

impl ScriptItem {
    /// When the item happens.
    pub fn at_ms(&self) -> i64 {
        match self {
            ScriptItem::Event(event) => event.timestamp_ms,
            ScriptItem::Identify { at_ms, .. } | ScriptItem::DeliveryResult { at_ms, .. } => *at_ms,
        }
    }
}

/// A scripted customer and how long to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub profile_id: String,
    pub profile: Map<String, Value>,
    pub script: Vec<ScriptItem>,
    pub start_ms: i64,
    /// The simulated clock stops here (inclusive).
    pub until_ms: i64,
    /// Record the values conditions read in the trace.
    pub trace_values: bool,
}

/// One input the simulator handled and its effects.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedInput {
    pub at_ms: i64,
    /// `event Order Completed`, `timer`, `identify`, `entry`, …
    pub input: String,
    pub effects: Effects,
}

/// Everything that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationReport {
    pub start_ms: i64,
    pub until_ms: i64,
    pub inputs: Vec<SimulatedInput>,
    /// The profile at the end (with the journey's updates).
    pub profile: Map<String, Value>,
    /// Enrollments still active at the end.
    pub active: Vec<Enrollment>,
    /// Script lines that could not be applied (a feedback event for a step that sent nothing).
    pub notes: Vec<String>,
}

impl SimulationReport {
    /// Every message sent, with its simulated time.
    pub fn messages(&self) -> Vec<&crate::effects::OutboxMessage> {
        self.inputs
            .iter()
            .flat_map(|input| input.effects.outbox.iter())
            .collect()
    }

    /// Every ended enrollment.
    pub fn ended(&self) -> Vec<&crate::effects::Ended> {
        self.inputs
            .iter()
            .flat_map(|input| input.effects.ended.iter())
            .collect()
    }

    /// The steps entered, in order, as `(at_ms, enrollment id, step id)`.
    pub fn path(&self, journey: &CompiledJourney) -> Vec<(i64, u64, String)> {
        let mut path = Vec::new();
        for input in &self.inputs {
            for entry in &input.effects.trace {
                let first_for_step =
                    path.last()
                        .is_none_or(|(_, enrollment, step): &(i64, u64, String)| {
                            *enrollment != entry.enrollment.0
                                || journey
                                    .step(entry.step)
                                    .is_none_or(|known| *known.id != **step)
                        });
                if first_for_step {
                    if let Some(step) = journey.step(entry.step) {
                        path.push((entry.at_ms, entry.enrollment.0, step.id.to_string()));
                    }
                }
            }
        }
        path
    }

    /// The report as JSON lines (one object per happening, in order): inputs, decisions (with
    /// explanations), messages, profile updates, ends.
    pub fn timeline(&self, journey: &CompiledJourney) -> Vec<Value> {
        let mut lines = Vec::new();
        for input in &self.inputs {
            let at = instant(input.at_ms);
            lines.push(json!({"at": at, "kind": "input", "input": input.input}));
            for entry in &input.effects.trace {
                let step = journey.step(entry.step).map(|step| step.id.to_string());
                let mut line = json!({
                    "at": instant(entry.at_ms),
                    "kind": "decision",
                    "enrollment": entry.enrollment.0,
                    "step": step,
                    "explanation": explain(journey, entry),
                });
                if let Ok(Value::Object(decision)) = serde_json::to_value(&entry.decision) {
                    line["decision"] = Value::Object(decision);
                }
                lines.push(line);
            }
            for message in &input.effects.outbox {
                lines.push(json!({
                    "at": instant(message.at_ms),
                    "kind": "message",
                    "enrollment": message.enrollment.0,
                    "step": &*message.step_id,
                    "message_id": message.message_id.to_string(),
                    "channel": message.channel.as_str(),
                    "template": &*message.template,
                    "transactional": message.transactional,
                }));
            }
            for update in &input.effects.profile_updates {
                let changes: Map<String, Value> = update
                    .changes
                    .iter()
                    .map(|change| {
                        (
                            change.attribute.to_string(),
                            change.value.clone().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                lines.push(json!({
                    "at": at,
                    "kind": "profile_update",
                    "enrollment": update.enrollment.0,
                    "changes": changes,
                }));
            }
            for ended in &input.effects.ended {
                lines.push(json!({
                    "at": instant(ended.at_ms),
                    "kind": "ended",
                    "enrollment": ended.enrollment.0,
                    "step": journey.step(ended.step).map(|step| step.id.to_string()),
                    "reason": ended.reason.as_str(),
                    "detail": explain_end(journey, ended),
                }));
            }
        }
        lines
    }
}

fn instant(ms: i64) -> String {
    format_rfc3339(ms).unwrap_or_else(|| ms.to_string())
}

/// Event history kept by the simulator for aggregates (`count("Order Completed", 7d)`).
#[derive(Debug, Clone, Default)]
struct SimulatedHistory {
    times: BTreeMap<String, Vec<i64>>,
}

impl SimulatedHistory {
    fn record(&mut self, name: &str, at_ms: i64) {
        let times = self.times.entry(name.to_owned()).or_default();
        let position = times.partition_point(|&time| time <= at_ms);
        times.insert(position, at_ms);
    }
}

impl EventHistory for SimulatedHistory {
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64 {
        let times = self.recent_event_times(name);
        let counted = match since_ms {
            None => times.len(),
            Some(since) => times.len() - times.partition_point(|&time| time < since),
        };
        u64::try_from(counted).unwrap_or(u64::MAX)
    }

    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>) {
        let times = self.recent_event_times(name);
        (times.first().copied(), times.last().copied())
    }

    fn recent_event_times(&self, name: &str) -> &[i64] {
        self.times.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Runs a journey for one scripted customer under a simulated clock.
pub fn simulate(journey: Arc<CompiledJourney>, simulation: Simulation) -> SimulationReport {
    let key = JourneyKey(1);
    let journeys = JourneySet::new(vec![LiveJourney::new(key, journey.clone())]);
    let profile_id: Arc<str> = Arc::from(simulation.profile_id.as_str());
    let mut profile = simulation.profile;
    let mut state = ProfileJourneys::default();
    let mut ids = SequentialIds::default();
    let mut history = SimulatedHistory::default();
    let mut script = simulation.script;
    script.sort_by_key(ScriptItem::at_ms);
    let mut report = SimulationReport {
        start_ms: simulation.start_ms,
        until_ms: simulation.until_ms,
        inputs: Vec::new(),
        profile: Map::new(),
        active: Vec::new(),
        notes: Vec::new(),
    };
    // Non-event entries: API and audience entries enter at the start; schedules at each firing.
    let mut entries: Vec<i64> = match &journey.entry {
        CompiledEntry::Event { .. } => Vec::new(),
        CompiledEntry::Audience { .. } | CompiledEntry::Api { .. } => vec![simulation.start_ms],
        CompiledEntry::Schedule { schedule, .. } => {
            let mut firings = Vec::new();
            let mut after = simulation.start_ms - 1;
            while let Some(fire) = next_fire_after(schedule, after) {
                if fire > simulation.until_ms || firings.len() >= 10_000 {
                    break;
                }
                firings.push(fire);
                after = fire;
            }
            firings
        }
    };
    entries.reverse();
    let mut sent: BTreeMap<String, MessageId> = BTreeMap::new();
    let mut script_position = 0;
    let mut delivery: Option<DeliveryResult> = None;
    loop {
        let next_script = script
            .get(script_position)
            .map(ScriptItem::at_ms)
            .filter(|&at| at <= simulation.until_ms);
        let next_entry = entries.last().copied();
        let next_timer = state
            .enrollments
            .iter()
            .filter_map(|enrollment| enrollment.timer().map(|at| (at, enrollment.id)))
            .min()
            .filter(|(at, _)| *at <= simulation.until_ms);
        // Order at one instant: scheduled entries, script items, then timers.
        let candidates = [
            next_entry.map(|at| (at, 0u8)),
            next_script.map(|at| (at, 1u8)),
            next_timer.map(|(at, _)| (at, 2u8)),
        ];
        let Some((at, which)) = candidates.into_iter().flatten().min() else {
            break;
        };
        // A script item is taken (and an event recorded in the history) before the context borrows it.
        let mut item = None;
        if which == 1 {
            let mut taken = script[script_position].clone();
            script_position += 1;
            if let ScriptItem::Event(event) = &mut taken {
                if let Some(note) = address_feedback(event, &sent) {
                    report.notes.push(note);
                }
                history.record(&event.name, event.timestamp_ms);
            }
            item = Some(taken);
        }
        let mut effects = Effects::default();
        let mut context = Context {
            now_ms: at,
            profile_id: &profile_id,
            profile: &mut profile,
            history: &history,
            trace_values: simulation.trace_values,
        };
        let input = match (which, &item) {
            (0, _) => {
                entries.pop();
                let _ = try_enter(
                    &journeys,
                    &journeys.journeys()[0],
                    &mut state,
                    EntryTrigger::default(),
                    &mut context,
                    &mut ids,
                    &mut effects,
                );
                None
            }
            (1, Some(ScriptItem::Event(event))) => {
                Some((ProfileInput::Event(event), format!("event {}", event.name)))
            }
            (1, Some(ScriptItem::Identify { traits, .. })) => {
                context.profile.extend(traits.clone());
                Some((ProfileInput::ProfileChanged, "identify".to_owned()))
            }
            (
                1,
                Some(ScriptItem::DeliveryResult {
                    step, ok, response, ..
                }),
            ) => match sent.get(step) {
                Some(message_id) => {
                    delivery = Some(DeliveryResult {
                        message_id: *message_id,
                        ok: *ok,
                        response: response.clone(),
                    });
                    None
                }
                None => {
                    report.notes.push(format!(
                        "delivery result at {} for step `{step}` which sent nothing yet",
                        instant(at)
                    ));
                    continue;
                }
            },
            _ => next_timer
                .map(|(_, enrollment)| (ProfileInput::Timer { enrollment }, "timer".to_owned())),
        };
        let description = match (input, &delivery) {
            (Some((input, description)), _) => {
                handle(
                    &journeys,
                    &mut state,
                    input,
                    &mut context,
                    &mut ids,
                    &mut effects,
                );
                description
            }
            (None, Some(result)) => {
                handle(
                    &journeys,
                    &mut state,
                    ProfileInput::DeliveryResult(result),
                    &mut context,
                    &mut ids,
                    &mut effects,
                );
                "delivery result".to_owned()
            }
            (None, None) => "entry".to_owned(),
        };
        delivery = None;
        for message in &effects.outbox {
            sent.insert(message.step_id.to_string(), message.message_id);
        }
        for fetch in &effects.fetches {
            sent.insert(fetch.step_id.to_string(), fetch.message_id);
        }
        if !effects.is_empty() {
            report.inputs.push(SimulatedInput {
                at_ms: at,
                input: description,
                effects,
            });
        }
    }
    report.profile = profile;
    report.active = state.enrollments;
    report
}

/// Fills `properties.message_id` of a feedback event that names its send step in
/// `properties.message_step`.
fn address_feedback(event: &mut Event, sent: &BTreeMap<String, MessageId>) -> Option<String> {
    let step = event.property_str("message_step")?.to_owned();
    if event.property_str("message_id").is_some() {
        return None;
    }
    match sent.get(&step) {
        Some(message_id) => {
            if let Some(Value::Object(properties)) = event.message.get_mut("properties") {
                properties.insert("message_id".to_owned(), Value::from(message_id.to_string()));
            }
            None
        }
        None => Some(format!(
            "`{}` at {} names step `{step}`, which sent nothing yet",
            event.name,
            instant(event.timestamp_ms)
        )),
    }
}

/// A script line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

/// Reads a script from JSON lines. Each line is a Segment-style object with `timestamp` (RFC 3339 or
/// ms) or `after` (a duration from `start_ms`):
/// - `{"event": "Cart Abandoned", "properties": {...}, "timestamp": "..."}` (track);
/// - `{"type": "identify", "traits": {...}, "after": "2d"}`;
/// - `{"type": "delivery_result", "step": "call_crm", "ok": true, "response": {...}, "after": "1m"}`
///   (the answer to the latest webhook sent, or fetch asked, by that step).
///
/// Empty lines and lines starting with `#` are skipped.
pub fn parse_script(text: &str, start_ms: i64) -> Result<Vec<ScriptItem>, ScriptError> {
    let mut items = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line_number = number + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fail = |message: String| ScriptError {
            line: line_number,
            message,
        };
        let value: Value =
            serde_json::from_str(trimmed).map_err(|error| fail(error.to_string()))?;
        let Value::Object(object) = value else {
            return Err(fail("a script line must be a JSON object".to_owned()));
        };
        let at_ms = script_time(&object, start_ms).map_err(fail)?;
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("track");
        let item = match kind {
            "track" => {
                let name = object
                    .get("event")
                    .and_then(Value::as_str)
                    .ok_or_else(|| fail("a track line needs an `event` name".to_owned()))?;
                let properties = match object.get("properties") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(properties)) => properties.clone(),
                    Some(_) => return Err(fail("`properties` must be an object".to_owned())),
                };
                ScriptItem::Event(Event::track(name, at_ms, properties))
            }
            "identify" => match object.get("traits") {
                Some(Value::Object(traits)) => ScriptItem::Identify {
                    at_ms,
                    traits: traits.clone(),
                },
                _ => return Err(fail("an identify line needs a `traits` object".to_owned())),
            },
            "delivery_result" => ScriptItem::DeliveryResult {
                at_ms,
                step: object
                    .get("step")
                    .and_then(Value::as_str)
                    .ok_or_else(|| fail("a delivery_result line needs a `step`".to_owned()))?
                    .to_owned(),
                ok: object.get("ok").and_then(Value::as_bool).unwrap_or(true),
                response: object.get("response").cloned().unwrap_or(Value::Null),
            },
            other => return Err(fail(format!("unknown line type `{other}`"))),
        };
        items.push(item);
    }
    Ok(items)
}

/// The earliest absolute `timestamp` in a script's text, if any (the default simulation start).
pub fn earliest_timestamp(text: &str) -> Option<i64> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Map<String, Value>>(line.trim()).ok())
        .filter_map(|object| absolute_time(object.get("timestamp")?))
        .min()
}

fn script_time(object: &Map<String, Value>, start_ms: i64) -> Result<i64, String> {
    if let Some(timestamp) = object.get("timestamp") {
        return absolute_time(timestamp).ok_or_else(|| {
            format!("`timestamp` {timestamp} is neither RFC 3339 nor milliseconds")
        });
    }
    if let Some(after) = object.get("after").and_then(Value::as_str) {
        return parse_duration_ms(after).map(|offset| start_ms.saturating_add(offset));
    }
    Err("a line needs a `timestamp` or an `after` duration".to_owned())
}

fn absolute_time(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|instant| instant.timestamp_millis()),
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
}
