//! The pure journey runtime: `apply(journey, enrollment, input, context) -> effects`.
//!
//! No I/O and no clock reads: "now" comes in the [`Context`]. On an input an enrollment moves through
//! instantaneous steps (splits, sends, updates, joins) until it reaches a waiting step or ends. Goals and
//! exit criteria are checked first on every input. The same inputs in the same order give the same
//! effects (message ids derive from the enrollment id, the step and the attempt).

use crate::cached_json::CachedJson;
use crate::compiled::{
    AwaitSpec, CompiledCriterion, CompiledJourney, ProfileOperation, SendSpec, StepKind,
};
use crate::document::{IfMissing, PauseBehaviour};
use crate::effects::{
    AttributeChange, Decision, Effects, EndDetail, Ended, Entered, FetchRequest, OutboxMessage,
    ProfileUpdate, Reads, StepChange, StepCount, TimerChange, TraceEntry, WaitReason, WriteBack,
};
use crate::engagement::engagements_of;
use crate::enrollment::{
    EndReason, Enrollment, EnrollmentData, SendRecord, Status, StepVisits, NO_TIMER,
};
use crate::event::{DeliveryResult, Event};
use crate::ids::{JourneyKey, MessageId, StepIndex};
use crate::local_time::{
    date_with_offset_instant, format_rfc3339, next_anniversary_instant, next_local_time,
    parse_date_value, parse_time_zone,
};
use crate::profile_path::{lookup_path, remove_path, set_path};
use crate::random_split::{branch_for_bucket, bucket};
use cairn_condition::{Condition, EvalContext};
use chrono_tz::Tz;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The most steps one input may run through before the enrollment ends in `error` (a guard behind
/// validation's "no loop without a wait").
pub const MAX_STEPS_PER_INPUT: u32 = 1_000;

/// A published journey version as the engine holds it.
#[derive(Debug, Clone)]
pub struct LiveJourney {
    pub key: JourneyKey,
    pub journey: Arc<CompiledJourney>,
    /// Paused: no entries; with `hold`, enrollments stop at their next step.
    pub paused: bool,
    /// Superseded by a newer version (or stopped): no entries; enrollments already in it finish here.
    pub retired: bool,
}

impl LiveJourney {
    /// A running (not paused) journey.
    pub fn new(key: JourneyKey, journey: Arc<CompiledJourney>) -> LiveJourney {
        LiveJourney {
            key,
            journey,
            paused: false,
            retired: false,
        }
    }

    fn holds(&self) -> bool {
        self.paused && self.journey.pause_behaviour == PauseBehaviour::Hold
    }
}

/// One input for one enrollment.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The enrollment was just created: run it from the start step.
    Enter {
        /// The trigger event (event entries).
        trigger: Option<&'a Event>,
        /// Data given with an API enrollment (available as `journey.trigger`).
        data: Option<&'a Value>,
    },
    /// An event of the profile (engagement feedback is an event too).
    Event(&'a Event),
    /// The enrollment's timer is due.
    Timer,
    /// The result of delivering a message the enrollment awaits.
    DeliveryResult(&'a DeliveryResult),
    /// The journey was stopped.
    Stop { reason: &'a str },
    /// The journey resumed after a pause.
    Resume,
}

/// Event-history aggregates the condition language reads (`count`, `first_at`, `last_at`).
pub trait EventHistory {
    /// Events with this name, all time or since `since_ms`.
    fn event_count(&self, name: &str, since_ms: Option<i64>) -> u64;
    /// First and last timestamps of events with this name.
    fn event_times(&self, name: &str) -> (Option<i64>, Option<i64>);
    /// Recent timestamps of events with this name, ascending.
    fn recent_event_times(&self, name: &str) -> &[i64];
}

/// A profile without recorded history.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl EventHistory for NoHistory {
    fn event_count(&self, _name: &str, _since_ms: Option<i64>) -> u64 {
        0
    }
    fn event_times(&self, _name: &str) -> (Option<i64>, Option<i64>) {
        (None, None)
    }
    fn recent_event_times(&self, _name: &str) -> &[i64] {
        &[]
    }
}

/// What the runtime may read and change besides the enrollment: the instant, the profile.
pub struct Context<'a> {
    /// "Now" (ms): the input's time.
    pub now_ms: i64,
    pub profile_id: &'a Arc<str>,
    /// The profile's attributes. `update_profile` changes them here (and reports the change in the
    /// effects), so later steps of the same input see the new values.
    pub profile: &'a mut Map<String, Value>,
    pub history: &'a dyn EventHistory,
    /// Record the values conditions read in trace entries (costs allocations; for traces on demand and
    /// test mode).
    pub trace_values: bool,
}

/// What a condition sees: borrowed pieces, no copies.
pub(crate) struct Evaluation<'e> {
    pub now_ms: i64,
    pub profile: &'e Map<String, Value>,
    pub event: Option<&'e Value>,
    pub journey: Option<&'e Value>,
    pub history: &'e dyn EventHistory,
}

impl EvalContext for Evaluation<'_> {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn profile(&self) -> Option<&Map<String, Value>> {
        Some(self.profile)
    }
    fn event(&self) -> Option<&Value> {
        self.event
    }
    fn journey(&self) -> Option<&Value> {
        self.journey
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

/// The values a condition read, for the trace (each path and aggregate once, in source order).
pub(crate) fn reads_of(condition: &Condition, evaluation: &Evaluation<'_>) -> Box<Reads> {
    let mut reads = Reads::new();
    for clause in condition.explain(evaluation) {
        for (input, value) in clause.inputs {
            if !reads.iter().any(|(known, _)| *known == input) {
                reads.push((input, value));
            }
        }
    }
    Box::new(reads)
}

/// Applies one input to one enrollment, appending what happened to `effects`.
pub fn apply(
    live: &LiveJourney,
    enrollment: &mut Enrollment,
    input: Input<'_>,
    context: &mut Context<'_>,
    effects: &mut Effects,
) {
    if !enrollment.is_active() {
        return;
    }
    debug_assert_eq!(
        enrollment.journey, live.key,
        "enrollment applied to another journey"
    );
    let timer_before = enrollment.wake_at_ms;
    let entering = matches!(input, Input::Enter { .. });
    let mut run = Run {
        journey: &live.journey,
        key: live.key,
        hold: live.holds(),
        enrollment: &mut *enrollment,
        context,
        effects: &mut *effects,
        budget: MAX_STEPS_PER_INPUT,
    };
    match input {
        Input::Enter { trigger, data } => run.enter(trigger, data),
        Input::Event(event) => run.on_event(event),
        Input::Timer => run.on_timer(),
        Input::DeliveryResult(result) => run.on_delivery_result(result),
        Input::Stop { reason } => {
            run.end(EndReason::Stopped, EndDetail::Stopped(Arc::from(reason)))
        }
        Input::Resume => run.on_resume(),
    }
    if enrollment.wake_at_ms != timer_before && !(entering && enrollment.wake_at_ms == NO_TIMER) {
        effects.timers.push(TimerChange {
            enrollment: enrollment.id,
            journey: live.key,
            wake_at_ms: enrollment.timer(),
        });
    }
}

/// Checks the goals and exit criteria that need no event (after a profile change); true if one ended
/// the enrollment.
pub fn check_profile_criteria(
    live: &LiveJourney,
    enrollment: &mut Enrollment,
    context: &mut Context<'_>,
    effects: &mut Effects,
) -> bool {
    if !enrollment.is_active() {
        return false;
    }
    let had_timer = enrollment.timer().is_some();
    let mut run = Run {
        journey: &live.journey,
        key: live.key,
        hold: live.holds(),
        enrollment: &mut *enrollment,
        context,
        effects: &mut *effects,
        budget: MAX_STEPS_PER_INPUT,
    };
    let ended = run.check_criteria(None);
    if ended && had_timer {
        effects.timers.push(TimerChange {
            enrollment: enrollment.id,
            journey: live.key,
            wake_at_ms: None,
        });
    }
    ended
}

/// Ends an enrollment from outside the step flow (profile merges): same effects as any other end.
pub fn end_enrollment(
    live: &LiveJourney,
    enrollment: &mut Enrollment,
    reason: EndReason,
    detail: EndDetail,
    now_ms: i64,
    effects: &mut Effects,
) {
    if !enrollment.is_active() {
        return;
    }
    let had_timer = enrollment.timer().is_some();
    finish(live.key, enrollment, reason, detail, now_ms, effects);
    if had_timer {
        effects.timers.push(TimerChange {
            enrollment: enrollment.id,
            journey: live.key,
            wake_at_ms: None,
        });
    }
}

fn finish(
    key: JourneyKey,
    enrollment: &mut Enrollment,
    reason: EndReason,
    detail: EndDetail,
    now_ms: i64,
    effects: &mut Effects,
) {
    effects.step_counts.push(StepCount {
        journey: key,
        step: enrollment.step,
        change: StepChange::Ended(reason),
    });
    enrollment.status = Status::Ended(reason);
    enrollment.wake_at_ms = NO_TIMER;
    effects.trace.push(TraceEntry {
        enrollment: enrollment.id,
        journey: key,
        step: enrollment.step,
        at_ms: now_ms,
        decision: Decision::Ended { reason },
    });
    effects.ended.push(Ended {
        enrollment: enrollment.id,
        journey: key,
        step: enrollment.step,
        reason,
        detail,
        at_ms: now_ms,
    });
}

/// One input's run through the journey graph.
struct Run<'r, 'c> {
    journey: &'r CompiledJourney,
    key: JourneyKey,
    hold: bool,
    enrollment: &'r mut Enrollment,
    context: &'r mut Context<'c>,
    effects: &'r mut Effects,
    budget: u32,
}

/// What a step decided.
enum Next {
    /// Continue at this step now.
    Go(StepIndex),
    /// Stay: the enrollment waits (its timer is set).
    Wait,
    /// The enrollment ended.
    Ended,
}

impl Run<'_, '_> {
    fn now(&self) -> i64 {
        self.context.now_ms
    }

    fn trace(&mut self, decision: Decision) {
        self.effects.trace.push(TraceEntry {
            enrollment: self.enrollment.id,
            journey: self.key,
            step: self.enrollment.step,
            at_ms: self.context.now_ms,
            decision,
        });
    }

    fn count(&mut self, step: StepIndex, change: StepChange) {
        self.effects.step_counts.push(StepCount {
            journey: self.key,
            step,
            change,
        });
    }

    fn end(&mut self, reason: EndReason, detail: EndDetail) {
        let now = self.now();
        finish(self.key, self.enrollment, reason, detail, now, self.effects);
    }

    fn journey_data(&self) -> Option<&Value> {
        self.enrollment
            .data
            .as_ref()?
            .journey
            .as_ref()
            .map(CachedJson::get)
    }

    /// Records `journey.steps.<step id>.<field>` when the journey reads journey fields.
    fn record_outcome(&mut self, field: &str, value: Value) {
        if !self.journey.needs.journey_fields {
            return;
        }
        let step_id = self
            .journey
            .step(self.enrollment.step)
            .map(|step| step.id.to_string())
            .unwrap_or_default();
        let data = self.enrollment.data_mut();
        let journey = data
            .journey
            .get_or_insert_with(|| Value::Object(Map::new()).into())
            .get_mut();
        if let Value::Object(fields) = journey {
            let steps = fields
                .entry("steps")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(steps) = steps {
                let outcome = steps
                    .entry(step_id)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(outcome) = outcome {
                    outcome.insert(field.to_owned(), value);
                }
            }
        }
    }

    // ----- inputs -----

    fn enter(&mut self, trigger: Option<&Event>, data: Option<&Value>) {
        let needs = self.journey.needs;
        if needs.any() {
            let mut enrollment_data = EnrollmentData::default();
            if needs.journey_fields {
                let mut fields = Map::new();
                fields.insert("id".to_owned(), Value::from(&*self.journey.id));
                if let Some(entered_at) = format_rfc3339(self.enrollment.entered_at_ms) {
                    fields.insert("entered_at".to_owned(), Value::from(entered_at));
                }
                let trigger_value = trigger
                    .map(|event| event.message.clone())
                    .or_else(|| data.cloned())
                    .unwrap_or(Value::Null);
                fields.insert("trigger".to_owned(), trigger_value);
                fields.insert("steps".to_owned(), Value::Object(Map::new()));
                enrollment_data.journey = Some(Value::Object(fields).into());
            }
            if needs.current_event {
                enrollment_data.current_event = trigger.map(|event| event.message.clone().into());
            }
            self.enrollment.data = Some(Box::new(enrollment_data));
        }
        self.effects.entered.push(Entered {
            enrollment: self.enrollment.id,
            journey: self.key,
            at_ms: self.now(),
        });
        let start = self.journey.start;
        self.enrollment.step = start;
        self.trace(Decision::Entered {
            trigger: trigger.map(|event| event.name.clone()),
        });
        self.count(start, StepChange::Entered);
        if self.check_criteria(None) {
            return;
        }
        if self.hold {
            self.hold_here();
        } else {
            self.run_from(start);
        }
    }

    fn on_event(&mut self, event: &Event) {
        if self.check_criteria(Some(event)) {
            return;
        }
        if self.journey.needs.send_records {
            self.record_engagement(event);
            if !self.enrollment.is_active() {
                return;
            }
        }
        if self.enrollment.status != Status::Waiting {
            return;
        }
        let journey = self.journey;
        let Some(step) = journey.step(self.enrollment.step) else {
            return;
        };
        if let StepKind::WaitForEvent {
            event: awaited,
            filter,
            on_event,
            ..
        } = &step.kind
        {
            // An event at exactly the timeout instant still takes the event path.
            if **awaited != *event.name || self.now() > self.enrollment.wake_at_ms {
                return;
            }
            if let Some(filter) = filter {
                let evaluation = self.evaluation(Some(&event.message));
                if !filter.matches(&evaluation) {
                    return;
                }
            }
            let on_event = *on_event;
            self.trace(Decision::AwaitedEvent {
                event: event.name.clone(),
            });
            self.record_outcome("received", Value::Bool(true));
            if self.journey.needs.current_event {
                self.enrollment.data_mut().current_event = Some(event.message.clone().into());
            }
            self.enrollment.wake_at_ms = NO_TIMER;
            self.move_to(on_event);
        }
    }

    /// Feedback (`properties.message_id`) about one of this enrollment's tracked sends.
    fn record_engagement(&mut self, event: &Event) {
        let Some(message_id) = event.feedback_message_id() else {
            return;
        };
        if message_id.enrollment != self.enrollment.id {
            return;
        }
        let now = self.now();
        let at = event.timestamp_ms.min(now);
        let mut recorded = Vec::new();
        if let Some(data) = self.enrollment.data.as_mut() {
            for record in data.sends.iter_mut().filter(|record| {
                record.step == message_id.step && record.attempt == message_id.attempt
            }) {
                for engagement in engagements_of(&event.name) {
                    record.record(engagement, at);
                    recorded.push(engagement);
                }
            }
        }
        for engagement in recorded {
            self.trace(Decision::EngagementRecorded {
                engagement,
                message_id,
            });
        }
        // An engagement split waiting for this send decides now.
        if self.enrollment.status != Status::Waiting {
            return;
        }
        let journey = self.journey;
        if let Some(StepKind::EngagementSplit { send_step, .. }) =
            journey.step(self.enrollment.step).map(|step| &step.kind)
        {
            if *send_step == message_id.step {
                if let Next::Go(next) = self.engagement_split(false) {
                    self.enrollment.wake_at_ms = NO_TIMER;
                    self.move_to(next);
                }
            }
        }
    }

    fn on_timer(&mut self) {
        if self.enrollment.status != Status::Waiting || self.now() < self.enrollment.wake_at_ms {
            return;
        }
        if self.check_criteria(None) {
            return;
        }
        self.enrollment.wake_at_ms = NO_TIMER;
        let journey = self.journey;
        let Some(step) = journey.step(self.enrollment.step) else {
            self.end(
                EndReason::Error,
                EndDetail::Error("step index out of range"),
            );
            return;
        };
        let next = match &step.kind {
            StepKind::WaitDuration { next, .. }
            | StepKind::WaitUntilInstant { next, .. }
            | StepKind::WaitLocalTime { next, .. }
            | StepKind::WaitDateAttribute { next, .. } => {
                let next = *next;
                self.trace(Decision::WaitOver);
                next
            }
            StepKind::WaitForEvent { on_timeout, .. } => {
                let next = *on_timeout;
                self.trace(Decision::EventTimeout);
                self.record_outcome("received", Value::Bool(false));
                next
            }
            StepKind::EngagementSplit { .. } => match self.engagement_split(true) {
                Next::Go(next) => next,
                Next::Wait | Next::Ended => return,
            },
            kind => match awaiting_of(kind) {
                Some(awaiting) => {
                    self.trace(Decision::ResponseTimeout);
                    self.record_outcome("ok", Value::Bool(false));
                    awaiting.on_timeout
                }
                None => return,
            },
        };
        self.move_to(next);
    }

    fn on_delivery_result(&mut self, result: &DeliveryResult) {
        if self.check_criteria(None) {
            return;
        }
        if self.enrollment.status != Status::Waiting
            || result.message_id.enrollment != self.enrollment.id
            || result.message_id.step != self.enrollment.step
        {
            return;
        }
        let journey = self.journey;
        let Some(kind) = journey.step(self.enrollment.step).map(|step| &step.kind) else {
            return;
        };
        let Some(awaiting) = awaiting_of(kind) else {
            return;
        };
        let expected_attempt = match kind {
            StepKind::Send(send) if send.in_loop => self.current_attempt(send).saturating_sub(1),
            StepKind::Fetch { .. } => self.visits_of(self.enrollment.step).saturating_sub(1),
            _ => 0,
        };
        if result.message_id.attempt != expected_attempt {
            return;
        }
        self.trace(Decision::DeliveryResult { ok: result.ok });
        self.record_outcome("ok", Value::Bool(result.ok));
        self.record_outcome("response", result.response.clone());
        self.enrollment.wake_at_ms = NO_TIMER;
        self.move_to(if result.ok {
            awaiting.on_success
        } else {
            awaiting.on_failure
        });
    }

    fn on_resume(&mut self) {
        if self.enrollment.status != Status::Held || self.hold {
            return;
        }
        self.enrollment.status = Status::Waiting;
        self.trace(Decision::Resumed);
        if self.check_criteria(None) {
            return;
        }
        let step = self.enrollment.step;
        self.run_from(step);
    }

    // ----- goals and exit criteria -----

    /// Checks goals then exit criteria; ends the enrollment and returns true when one is met. Without an
    /// event only the criteria that need none are checked.
    fn check_criteria(&mut self, event: Option<&Event>) -> bool {
        let journey = self.journey;
        for (is_goal, criteria) in [(true, &journey.goals), (false, &journey.exits)] {
            for (position, criterion) in criteria.iter().enumerate() {
                if !self.criterion_applies(criterion, event) {
                    continue;
                }
                let evaluation = Evaluation {
                    now_ms: self.context.now_ms,
                    profile: self.context.profile,
                    event: event.map(|event| &event.message),
                    journey: self.journey_data(),
                    history: self.context.history,
                };
                let met = criterion
                    .condition
                    .as_ref()
                    .is_none_or(|condition| condition.matches(&evaluation));
                if !met {
                    continue;
                }
                let reads = match (&criterion.condition, self.context.trace_values) {
                    (Some(condition), true) => Some(reads_of(condition, &evaluation)),
                    _ => None,
                };
                let index = u16::try_from(position).unwrap_or(u16::MAX);
                self.trace(Decision::CriterionMet {
                    goal: is_goal,
                    index,
                    reads,
                });
                if is_goal {
                    self.end(EndReason::GoalReached, EndDetail::Goal(index));
                } else {
                    self.end(EndReason::ExitCriterion, EndDetail::ExitCriterion(index));
                }
                return true;
            }
        }
        false
    }

    fn criterion_applies(&self, criterion: &CompiledCriterion, event: Option<&Event>) -> bool {
        match event {
            None => !criterion.needs_event,
            Some(event) => !criterion.needs_event || criterion.listens_to(&event.name),
        }
    }

    // ----- moving through steps -----

    /// Leaves the current step for `next`, then runs it (or holds there while paused).
    fn move_to(&mut self, next: StepIndex) {
        let current = self.enrollment.step;
        self.count(current, StepChange::Advanced);
        self.enrollment.step = next;
        self.count(next, StepChange::Entered);
        if self.hold {
            self.hold_here();
        } else {
            self.run_from(next);
        }
    }

    fn hold_here(&mut self) {
        self.enrollment.status = Status::Held;
        self.enrollment.wake_at_ms = NO_TIMER;
        self.trace(Decision::Held);
    }

    /// Runs the current step (already entered) and the instantaneous steps after it.
    fn run_from(&mut self, step: StepIndex) {
        debug_assert_eq!(self.enrollment.step, step);
        self.enrollment.status = Status::Waiting;
        loop {
            if self.budget == 0 {
                self.end(
                    EndReason::Error,
                    EndDetail::Error("more steps in one input than allowed: a loop without a wait"),
                );
                return;
            }
            self.budget -= 1;
            match self.execute() {
                Next::Go(next) => {
                    let current = self.enrollment.step;
                    self.count(current, StepChange::Advanced);
                    self.enrollment.step = next;
                    self.count(next, StepChange::Entered);
                }
                Next::Wait | Next::Ended => return,
            }
        }
    }

    /// Executes the current step.
    fn execute(&mut self) -> Next {
        let journey = self.journey;
        let Some(step) = journey.step(self.enrollment.step) else {
            self.end(
                EndReason::Error,
                EndDetail::Error("step index out of range"),
            );
            return Next::Ended;
        };
        let now = self.now();
        match &step.kind {
            StepKind::WaitDuration { duration_ms, next } => self.wait_until(
                now.saturating_add(*duration_ms),
                WaitReason::Duration {
                    duration_ms: *duration_ms,
                },
                *next,
            ),
            StepKind::WaitUntilInstant { at_ms, next } => {
                self.wait_until(*at_ms, WaitReason::DateTime, *next)
            }
            StepKind::WaitLocalTime {
                time_of_day,
                days,
                next,
            } => {
                let (time_zone, from_profile) = self.customer_time_zone();
                let until = next_local_time(now, time_zone, *time_of_day, *days);
                self.wait_until(
                    until,
                    WaitReason::LocalTime {
                        time_zone,
                        from_profile,
                    },
                    *next,
                )
            }
            StepKind::WaitDateAttribute {
                attribute,
                offset_days,
                time_of_day,
                yearly,
                if_missing,
                next,
            } => {
                let (time_zone, from_profile) = self.customer_time_zone();
                let date = lookup_path(self.context.profile, attribute).and_then(parse_date_value);
                let Some(date) = date else {
                    self.trace(Decision::Wait {
                        until_ms: now,
                        reason: WaitReason::AttributeMissing,
                        passed: true,
                    });
                    return match if_missing {
                        IfMissing::Continue => Next::Go(*next),
                        IfMissing::Exit => {
                            self.end(EndReason::Completed, EndDetail::None);
                            Next::Ended
                        }
                    };
                };
                let instant = if *yearly {
                    next_anniversary_instant(date, *offset_days, *time_of_day, time_zone, now)
                } else {
                    date_with_offset_instant(date, *offset_days, *time_of_day, time_zone)
                };
                match instant {
                    Some(until) if until >= now => self.wait_until(
                        until,
                        WaitReason::DateAttribute {
                            date,
                            time_zone,
                            from_profile,
                        },
                        *next,
                    ),
                    _ => {
                        self.trace(Decision::Wait {
                            until_ms: instant.unwrap_or(now),
                            reason: WaitReason::DatePassed,
                            passed: true,
                        });
                        Next::Go(*next)
                    }
                }
            }
            StepKind::WaitForEvent { timeout_ms, .. } => {
                self.wait_at_most(*timeout_ms, WaitReason::EventTimeout)
            }
            StepKind::DecisionSplit { branches, default } => {
                let evaluation = self.evaluation(None);
                let chosen = branches
                    .iter()
                    .position(|branch| branch.condition.matches(&evaluation));
                let reads = self.context.trace_values.then(|| {
                    let mut all = Reads::new();
                    for branch in &branches[..chosen.map_or(branches.len(), |index| index + 1)] {
                        all.extend(*reads_of(&branch.condition, &evaluation));
                    }
                    all.dedup();
                    Box::new(all)
                });
                let (next, label) = match chosen {
                    Some(index) => (
                        branches[index].next,
                        branches[index]
                            .name
                            .clone()
                            .unwrap_or_else(|| format!("branch {}", index + 1)),
                    ),
                    None => (*default, "default".to_owned()),
                };
                self.trace(Decision::Branch {
                    branch: chosen.and_then(|index| u16::try_from(index).ok()),
                    reads,
                });
                self.record_outcome("branch", Value::from(label));
                Next::Go(next)
            }
            StepKind::EngagementSplit { .. } => self.engagement_split(false),
            StepKind::RandomSplit { branches } => {
                let bucket = bucket(self.context.profile_id, &journey.id, &step.id);
                let bounds: smallvec::SmallVec<[u32; 4]> =
                    branches.iter().map(|branch| branch.upper_bound).collect();
                let index = branch_for_bucket(&bounds, bucket);
                let branch = &branches[index];
                self.trace(Decision::RandomBranch {
                    bucket,
                    branch: u16::try_from(index).unwrap_or(u16::MAX),
                });
                self.record_outcome("branch", Value::from(&*branch.name));
                Next::Go(branch.next)
            }
            StepKind::Send(send) => self.send(&step.id, send),
            StepKind::Fetch { sets, awaiting } => self.fetch(&step.id, sets, awaiting),
            StepKind::UpdateProfile { operations, next } => {
                self.update_profile(&step.id, operations);
                Next::Go(*next)
            }
            StepKind::Join { next } => Next::Go(*next),
            StepKind::Exit => {
                self.end(EndReason::Completed, EndDetail::None);
                Next::Ended
            }
        }
    }

    fn wait_until(&mut self, until: i64, reason: WaitReason, next: StepIndex) -> Next {
        let passed = until <= self.now();
        self.trace(Decision::Wait {
            until_ms: until,
            reason,
            passed,
        });
        if passed {
            Next::Go(next)
        } else {
            self.enrollment.wake_at_ms = until;
            Next::Wait
        }
    }

    /// The customer's time zone from the profile, else the journey's default.
    fn customer_time_zone(&self) -> (Tz, bool) {
        lookup_path(self.context.profile, &self.journey.time_zone_attribute)
            .and_then(Value::as_str)
            .and_then(parse_time_zone)
            .map_or((self.journey.default_time_zone, false), |zone| (zone, true))
    }

    /// Decides an engagement split: yes at once if the engagement happened within the window, no once
    /// the window is over (or `window_over`), else wait for the window's end.
    fn engagement_split(&mut self, window_over: bool) -> Next {
        let journey = self.journey;
        let Some(StepKind::EngagementSplit {
            send_step,
            engagement,
            window_ms,
            on_yes,
            on_no,
        }) = journey.step(self.enrollment.step).map(|step| &step.kind)
        else {
            return Next::Wait;
        };
        let now = self.now();
        let record = self.enrollment.data.as_ref().and_then(|data| {
            data.sends
                .iter()
                .filter(|record| record.step == *send_step)
                .max_by_key(|record| record.attempt)
                .copied()
        });
        let Some(record) = record else {
            // The send was not on this enrollment's path: nothing to engage with.
            self.trace(Decision::Engagement {
                engagement: *engagement,
                engaged_at_ms: None,
                window_ends_ms: now,
                yes: false,
            });
            self.record_outcome("engaged", Value::Bool(false));
            return Next::Go(*on_no);
        };
        let window_ends = record.sent_at_ms.saturating_add(*window_ms);
        let engaged_at = record
            .engaged_at(*engagement)
            .filter(|&at| at <= window_ends);
        let decided = match engaged_at {
            Some(_) => Some(true),
            None if window_over || now >= window_ends => Some(false),
            None => None,
        };
        match decided {
            Some(yes) => {
                self.trace(Decision::Engagement {
                    engagement: *engagement,
                    engaged_at_ms: engaged_at,
                    window_ends_ms: window_ends,
                    yes,
                });
                self.record_outcome("engaged", Value::Bool(yes));
                Next::Go(if yes { *on_yes } else { *on_no })
            }
            None => {
                self.trace(Decision::Wait {
                    until_ms: window_ends,
                    reason: WaitReason::EngagementWindow,
                    passed: false,
                });
                self.enrollment.wake_at_ms = window_ends;
                Next::Wait
            }
        }
    }

    /// The attempt number of the next send from this step (visits so far for steps on loops).
    fn current_attempt(&self, send: &SendSpec) -> u16 {
        if !send.in_loop {
            return 0;
        }
        self.visits_of(self.enrollment.step)
    }

    /// How many times the enrollment ran `step` (counted for sends in loops and fetches).
    fn visits_of(&self, step: StepIndex) -> u16 {
        self.enrollment
            .data
            .as_ref()
            .and_then(|data| data.visits.iter().find(|visits| visits.step == step))
            .map_or(0, |visits| visits.count)
    }

    /// The id of what the current step sends or asks for now: the visit so far as the attempt when
    /// `counted` (a step on a loop, a fetch; the visit is then counted), else attempt 0.
    fn visit_message_id(&mut self, counted: bool) -> MessageId {
        let step = self.enrollment.step;
        let mut attempt = 0;
        if counted {
            attempt = self.visits_of(step);
            let data = self.enrollment.data_mut();
            match data.visits.iter_mut().find(|visits| visits.step == step) {
                Some(visits) => visits.count = visits.count.saturating_add(1),
                None => data.visits.push(StepVisits { step, count: 1 }),
            }
        }
        MessageId {
            enrollment: self.enrollment.id,
            step,
            attempt,
        }
    }

    /// Asks for federated attribute sets and waits for the answer (or the timeout).
    fn fetch(&mut self, step_id: &Arc<str>, sets: &Arc<[Arc<str>]>, awaiting: &AwaitSpec) -> Next {
        let now = self.now();
        let message_id = self.visit_message_id(true);
        self.effects.fetches.push(FetchRequest {
            message_id,
            enrollment: self.enrollment.id,
            journey: self.key,
            journey_id: self.journey.id.clone(),
            step_id: step_id.clone(),
            profile_id: self.context.profile_id.clone(),
            sets: sets.clone(),
            at_ms: now,
        });
        self.trace(Decision::Fetching { message_id });
        self.await_result(awaiting)
    }

    /// Waits for the result of a webhook or a fetch, until its timeout.
    fn await_result(&mut self, awaiting: &AwaitSpec) -> Next {
        self.wait_at_most(awaiting.timeout_ms, WaitReason::ResponseTimeout)
    }

    /// Waits for an input for at most `timeout_ms` (then the timer fires).
    fn wait_at_most(&mut self, timeout_ms: i64, reason: WaitReason) -> Next {
        let until = self.now().saturating_add(timeout_ms);
        self.trace(Decision::Wait {
            until_ms: until,
            reason,
            passed: false,
        });
        self.enrollment.wake_at_ms = until;
        Next::Wait
    }

    fn send(&mut self, step_id: &Arc<str>, send: &SendSpec) -> Next {
        let now = self.now();
        let message_id = self.visit_message_id(send.in_loop);
        self.effects.outbox.push(OutboxMessage {
            message_id,
            enrollment: self.enrollment.id,
            journey: self.key,
            journey_id: self.journey.id.clone(),
            step_id: step_id.clone(),
            profile_id: self.context.profile_id.clone(),
            channel: send.channel,
            template: send.template.clone(),
            settings: send.settings.clone(),
            priority: self.journey.priority,
            transactional: send.transactional,
            data: self.journey_data().cloned(),
            at_ms: now,
        });
        self.trace(Decision::Sent { message_id });
        if send.tracked {
            self.enrollment.data_mut().sends.push(SendRecord {
                step: message_id.step,
                attempt: message_id.attempt,
                sent_at_ms: now,
                opened_at_ms: None,
                clicked_at_ms: None,
                bounced_at_ms: None,
            });
        }
        match &send.await_response {
            Some(awaiting) => self.await_result(awaiting),
            None => match send.next {
                Some(next) => Next::Go(next),
                None => {
                    self.end(EndReason::Error, EndDetail::Error("send step without next"));
                    Next::Ended
                }
            },
        }
    }

    fn update_profile(&mut self, step_id: &Arc<str>, operations: &[ProfileOperation]) {
        let mut changes = Vec::with_capacity(operations.len());
        let mut written_back = 0u16;
        for operation in operations {
            let (attribute, value) = match operation {
                ProfileOperation::Set { attribute, value } => (attribute, Some(value.clone())),
                ProfileOperation::SetExpression {
                    attribute,
                    expression,
                } => (attribute, Some(self.value_of(expression))),
                ProfileOperation::Increment { attribute, by } => {
                    let current = lookup_path(self.context.profile, attribute)
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0);
                    (attribute, Some(number_value(current + by)))
                }
                ProfileOperation::Unset { attribute } => (attribute, None),
                ProfileOperation::WriteBack {
                    set,
                    field,
                    expression,
                } => {
                    let value = self.value_of(expression);
                    self.effects.write_backs.push(WriteBack {
                        enrollment: self.enrollment.id,
                        journey: self.key,
                        journey_id: self.journey.id.clone(),
                        step: self.enrollment.step,
                        step_id: step_id.clone(),
                        profile_id: self.context.profile_id.clone(),
                        set: set.clone(),
                        field: field.clone(),
                        value,
                        at_ms: self.now(),
                    });
                    written_back = written_back.saturating_add(1);
                    continue;
                }
            };
            match &value {
                Some(value) => set_path(self.context.profile, attribute, value.clone()),
                None => remove_path(self.context.profile, attribute),
            }
            changes.push(AttributeChange {
                attribute: attribute.clone(),
                value,
            });
        }
        self.trace(Decision::ProfileUpdated {
            changes: u16::try_from(changes.len()).unwrap_or(u16::MAX),
            written_back,
        });
        if !changes.is_empty() {
            self.effects.profile_updates.push(ProfileUpdate {
                enrollment: self.enrollment.id,
                journey: self.key,
                step: self.enrollment.step,
                changes,
            });
        }
    }

    /// What conditions read now: the profile, `event` (none: the enrollment's current event), the
    /// enrollment's data and history.
    fn evaluation<'s>(&'s self, event: Option<&'s Value>) -> Evaluation<'s> {
        Evaluation {
            now_ms: self.context.now_ms,
            profile: self.context.profile,
            event: event.or_else(|| {
                self.enrollment
                    .data
                    .as_ref()
                    .and_then(|data| data.current_event.as_ref())
                    .map(CachedJson::get)
            }),
            journey: self.journey_data(),
            history: self.context.history,
        }
    }

    /// The value of an expression over the enrollment's current event and data (a whole number
    /// as an integer).
    fn value_of(&self, expression: &Condition) -> Value {
        let evaluation = self.evaluation(None);
        match expression.evaluate(&evaluation).to_json() {
            Value::Number(number) => number.as_f64().map_or(Value::Null, number_value),
            other => other,
        }
    }
}

/// The wait for a result a step does, if it does one (a webhook awaiting its answer, a fetch).
fn awaiting_of(kind: &StepKind) -> Option<AwaitSpec> {
    match kind {
        StepKind::Send(send) => send.await_response,
        StepKind::Fetch { awaiting, .. } => Some(*awaiting),
        _ => None,
    }
}

/// A number as JSON: an integer when it is one.
fn number_value(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        // Exact: |number| < 2^53 and integral.
        Value::from(number as i64)
    } else {
        serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
    }
}
