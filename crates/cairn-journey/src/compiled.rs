//! A validated journey ready to run: steps indexed by a small integer, conditions compiled, durations
//! and time zones resolved, and the indexes the engine needs so an unrelated event costs nothing.

use crate::cron_schedule::CronSchedule;
use crate::document::{Channel, Engagement, IfMissing, PauseBehaviour};
use crate::ids::StepIndex;
use crate::local_time::WeekdaySet;
use cairn_condition::Condition;
use chrono::NaiveTime;
use chrono_tz::Tz;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A journey after validation. Immutable; shared by every enrollment of this version.
#[derive(Debug, Clone)]
pub struct CompiledJourney {
    pub id: Arc<str>,
    pub name: String,
    pub priority: i32,
    pub pause_behaviour: PauseBehaviour,
    pub entry: CompiledEntry,
    pub re_entry: ReEntryRule,
    pub goals: Vec<CompiledCriterion>,
    pub exits: Vec<CompiledCriterion>,
    /// Steps by [`StepIndex`].
    pub steps: Vec<CompiledStep>,
    pub start: StepIndex,
    /// Used when the customer's own time zone is missing or invalid.
    pub default_time_zone: Tz,
    /// Profile attribute path (without `profile.`) holding the customer's time zone.
    pub time_zone_attribute: String,
    pub index: JourneyIndex,
    /// Which variable enrollment data the runtime must keep.
    pub needs: DataNeeds,
}

impl CompiledJourney {
    /// The step at an index.
    pub fn step(&self, index: StepIndex) -> Option<&CompiledStep> {
        self.steps.get(index.get())
    }

    /// Every condition of the journey: entry filter, goals, exits, awaited-event filters, decision
    /// branches and `update_profile` expressions (what the engine indexes history and audiences by).
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut conditions: Vec<&Condition> = self.entry.filter().into_iter().collect();
        for criterion in self.goals.iter().chain(&self.exits) {
            conditions.extend(criterion.condition.as_ref());
        }
        for step in &self.steps {
            match &step.kind {
                StepKind::WaitForEvent { filter, .. } => conditions.extend(filter.as_ref()),
                StepKind::DecisionSplit { branches, .. } => {
                    conditions.extend(branches.iter().map(|branch| &branch.condition));
                }
                StepKind::UpdateProfile { operations, .. } => {
                    conditions.extend(operations.iter().filter_map(|operation| match operation {
                        ProfileOperation::SetExpression { expression, .. }
                        | ProfileOperation::WriteBack { expression, .. } => Some(expression),
                        _ => None,
                    }));
                }
                _ => {}
            }
        }
        conditions
    }

    /// The index of a step id.
    pub fn step_index(&self, id: &str) -> Option<StepIndex> {
        self.steps
            .iter()
            .position(|step| &*step.id == id)
            .and_then(|position| u16::try_from(position).ok())
            .map(StepIndex)
    }
}

/// How customers enter.
#[derive(Debug, Clone)]
pub enum CompiledEntry {
    Event {
        name: Arc<str>,
        filter: Option<Condition>,
    },
    Audience {
        audience: Arc<str>,
        filter: Option<Condition>,
    },
    Schedule {
        schedule: Box<CronSchedule>,
        audience: Arc<str>,
        filter: Option<Condition>,
    },
    Api {
        filter: Option<Condition>,
    },
}

impl CompiledEntry {
    /// The entry's filter condition.
    pub fn filter(&self) -> Option<&Condition> {
        match self {
            CompiledEntry::Event { filter, .. }
            | CompiledEntry::Audience { filter, .. }
            | CompiledEntry::Schedule { filter, .. }
            | CompiledEntry::Api { filter } => filter.as_ref(),
        }
    }
}

/// Re-entry, with the cool-down resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReEntryRule {
    Once,
    AfterExit,
    AfterCoolDown { cool_down_ms: i64 },
    Concurrent,
}

/// A goal or exit criterion.
#[derive(Debug, Clone)]
pub struct CompiledCriterion {
    pub id: Arc<str>,
    /// Event names that can meet it (from `event:` or the condition's `event.name == ...`); `None`: any.
    pub event_names: Option<Vec<String>>,
    pub condition: Option<Condition>,
    /// Whether an event is needed at all (`event:` given, or the condition reads `event.*`).
    pub needs_event: bool,
}

impl CompiledCriterion {
    /// Whether an event of this name is one the criterion is checked on.
    pub fn listens_to(&self, event_name: &str) -> bool {
        self.event_names
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name == event_name))
    }
}

/// One step.
#[derive(Debug, Clone)]
pub struct CompiledStep {
    pub id: Arc<str>,
    pub kind: StepKind,
}

/// What a step does, with its outgoing edges resolved.
#[derive(Debug, Clone)]
pub enum StepKind {
    WaitDuration {
        duration_ms: i64,
        next: StepIndex,
    },
    WaitUntilInstant {
        at_ms: i64,
        next: StepIndex,
    },
    WaitLocalTime {
        time_of_day: Option<NaiveTime>,
        days: WeekdaySet,
        next: StepIndex,
    },
    WaitDateAttribute {
        attribute: String,
        offset_days: i32,
        time_of_day: Option<NaiveTime>,
        yearly: bool,
        if_missing: IfMissing,
        next: StepIndex,
    },
    WaitForEvent {
        event: Arc<str>,
        filter: Option<Condition>,
        timeout_ms: i64,
        on_event: StepIndex,
        on_timeout: StepIndex,
    },
    DecisionSplit {
        branches: Vec<DecisionBranch>,
        default: StepIndex,
    },
    EngagementSplit {
        send_step: StepIndex,
        engagement: Engagement,
        window_ms: i64,
        on_yes: StepIndex,
        on_no: StepIndex,
    },
    RandomSplit {
        branches: Vec<RandomBranch>,
    },
    Send(Box<SendSpec>),
    UpdateProfile {
        operations: Vec<ProfileOperation>,
        next: StepIndex,
    },
    /// Federated attribute sets fetched for the customer; waits for the answer.
    Fetch {
        sets: Arc<[Arc<str>]>,
        awaiting: AwaitSpec,
    },
    Join {
        next: StepIndex,
    },
    Exit,
}

impl StepKind {
    /// Every outgoing edge.
    pub fn targets(&self) -> Vec<StepIndex> {
        match self {
            StepKind::WaitDuration { next, .. }
            | StepKind::WaitUntilInstant { next, .. }
            | StepKind::WaitLocalTime { next, .. }
            | StepKind::WaitDateAttribute { next, .. }
            | StepKind::UpdateProfile { next, .. }
            | StepKind::Join { next } => vec![*next],
            StepKind::WaitForEvent {
                on_event,
                on_timeout,
                ..
            } => vec![*on_event, *on_timeout],
            StepKind::DecisionSplit { branches, default } => branches
                .iter()
                .map(|branch| branch.next)
                .chain([*default])
                .collect(),
            StepKind::EngagementSplit { on_yes, on_no, .. } => vec![*on_yes, *on_no],
            StepKind::RandomSplit { branches } => {
                branches.iter().map(|branch| branch.next).collect()
            }
            StepKind::Send(send) => match &send.await_response {
                Some(awaiting) => awaiting.targets().to_vec(),
                None => send.next.into_iter().collect(),
            },
            StepKind::Fetch { awaiting, .. } => awaiting.targets().to_vec(),
            StepKind::Exit => Vec::new(),
        }
    }
}

/// One decision-split branch.
#[derive(Debug, Clone)]
pub struct DecisionBranch {
    pub name: Option<String>,
    pub condition: Condition,
    pub next: StepIndex,
}

/// One random-split branch with its cumulative weight.
#[derive(Debug, Clone)]
pub struct RandomBranch {
    pub name: Arc<str>,
    /// Cumulative weight: the branch takes buckets below this bound not taken by earlier branches.
    pub upper_bound: u32,
    pub holdout: bool,
    pub next: StepIndex,
}

/// A send step.
#[derive(Debug, Clone)]
pub struct SendSpec {
    pub channel: Channel,
    pub template: Arc<str>,
    pub settings: Arc<Map<String, Value>>,
    pub transactional: bool,
    pub await_response: Option<AwaitSpec>,
    pub next: Option<StepIndex>,
    /// An engagement split asks about this send: keep a send record.
    pub tracked: bool,
    /// The step lies on a loop: count visits for the attempt number.
    pub in_loop: bool,
}

/// A webhook's awaited response.
#[derive(Debug, Clone, Copy)]
pub struct AwaitSpec {
    pub timeout_ms: i64,
    pub on_success: StepIndex,
    pub on_failure: StepIndex,
    pub on_timeout: StepIndex,
}

impl AwaitSpec {
    /// The three paths out of a wait for a result.
    pub fn targets(&self) -> [StepIndex; 3] {
        [self.on_success, self.on_failure, self.on_timeout]
    }
}

/// One `update_profile` operation.
#[derive(Debug, Clone)]
pub enum ProfileOperation {
    Set {
        attribute: Arc<str>,
        value: Value,
    },
    SetExpression {
        attribute: Arc<str>,
        expression: Condition,
    },
    Increment {
        attribute: Arc<str>,
        by: f64,
    },
    Unset {
        attribute: Arc<str>,
    },
    /// A field of a federated attribute set written back to its source system.
    WriteBack {
        set: Arc<str>,
        field: Arc<str>,
        expression: Condition,
    },
}

/// The event names and kinds of input a journey reacts to.
#[derive(Debug, Clone, Default)]
pub struct JourneyIndex {
    /// Every event name that can matter (entry, awaited events, named goals and exits, engagement
    /// feedback), sorted and unique.
    pub event_names: Vec<Arc<str>>,
    /// The entry event, for event-triggered journeys.
    pub entry_event: Option<Arc<str>>,
    /// The entry audience, for audience and schedule entries.
    pub entry_audience: Option<Arc<str>>,
    /// A goal or exit must be checked on every event (its condition reads `event.*` without naming it).
    pub criteria_on_any_event: bool,
    /// A goal or exit reads only the profile (checked on every input of an enrollment).
    pub criteria_on_profile: bool,
}

impl JourneyIndex {
    /// Whether events with this name can affect the journey.
    pub fn cares_about(&self, event_name: &str) -> bool {
        self.criteria_on_any_event
            || self
                .event_names
                .binary_search_by(|known| (**known).cmp(event_name))
                .is_ok()
    }

    pub(crate) fn from_names(names: BTreeSet<Arc<str>>) -> Vec<Arc<str>> {
        names.into_iter().collect()
    }
}

/// Which variable enrollment data a journey needs (decided at compile time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataNeeds {
    /// Some condition reads `journey.*`, or a webhook response is awaited.
    pub journey_fields: bool,
    /// Some split or expression reads `event.*` away from an awaited event.
    pub current_event: bool,
    /// Some engagement split: keep send records.
    pub send_records: bool,
    /// Some send lies on a loop: keep visit counts.
    pub visit_counts: bool,
}

impl DataNeeds {
    /// Whether any variable data is needed.
    pub fn any(self) -> bool {
        self.journey_fields || self.current_event || self.send_records || self.visit_counts
    }
}
