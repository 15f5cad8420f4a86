//! Validation before publish: every problem of a journey document at once, each with a stable code,
//! the step id, a JSON pointer into the document and a clear message; or the compiled journey.

use crate::catalog::Catalog;
use crate::compiled::{
    AwaitSpec, CompiledCriterion, CompiledEntry, CompiledJourney, CompiledStep, DataNeeds,
    DecisionBranch, JourneyIndex, ProfileOperation, RandomBranch, ReEntryRule, SendSpec, StepKind,
};
use crate::cron_schedule::CronSchedule;
use crate::document::{
    AwaitResponse, Channel, Criterion, Entry, FetchStep, JourneyDocument, ReEntry, SendStep, Step,
    UpdateProfileStep, WaitStep, WaitUntil,
};
use crate::duration::parse_duration_ms;
use crate::engagement;
use crate::ids::StepIndex;
use crate::local_time::{parse_time_of_day, parse_time_zone, WeekdaySet};
use cairn_condition::{Condition, Diagnostic, Schema, Type};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// The most steps a journey may have.
pub const MAX_STEPS: usize = 10_000;

/// The stable validation codes (`docs/journeys.md` explains each).
pub mod codes {
    pub const INVALID_ID: &str = "invalid_id";
    pub const NO_STEPS: &str = "no_steps";
    pub const TOO_MANY_STEPS: &str = "too_many_steps";
    pub const DUPLICATE_STEP_ID: &str = "duplicate_step_id";
    pub const DUPLICATE_CRITERION_ID: &str = "duplicate_criterion_id";
    pub const UNKNOWN_STEP: &str = "unknown_step";
    pub const MISSING_TARGET: &str = "missing_target";
    pub const UNREACHABLE_STEP: &str = "unreachable_step";
    pub const CYCLE_WITHOUT_WAIT: &str = "cycle_without_wait";
    pub const EMPTY_SPLIT: &str = "empty_split";
    pub const RANDOM_WEIGHTS: &str = "random_weights";
    pub const UNKNOWN_ATTRIBUTE: &str = "unknown_attribute";
    pub const INVALID_ATTRIBUTE: &str = "invalid_attribute";
    pub const UNKNOWN_EVENT: &str = "unknown_event";
    pub const UNKNOWN_TEMPLATE: &str = "unknown_template";
    pub const UNKNOWN_AUDIENCE: &str = "unknown_audience";
    pub const INVALID_CONDITION: &str = "invalid_condition";
    pub const INVALID_DURATION: &str = "invalid_duration";
    pub const INVALID_TIME_ZONE: &str = "invalid_time_zone";
    pub const INVALID_CRON: &str = "invalid_cron";
    pub const INVALID_TIME_OF_DAY: &str = "invalid_time_of_day";
    pub const INVALID_DATE_TIME: &str = "invalid_date_time";
    pub const INVALID_WAIT: &str = "invalid_wait";
    pub const INVALID_ENGAGEMENT_SPLIT: &str = "invalid_engagement_split";
    pub const INVALID_AWAIT_RESPONSE: &str = "invalid_await_response";
    pub const EMPTY_UPDATE: &str = "empty_update";
    pub const CONFLICTING_UPDATE: &str = "conflicting_update";
    pub const UNKNOWN_WRITE_BACK: &str = "unknown_write_back";
    pub const UNKNOWN_FEDERATED_SET: &str = "unknown_federated_set";
    pub const EMPTY_CRITERION: &str = "empty_criterion";
    pub const CRITERION_NEVER_EVALUATED: &str = "criterion_never_evaluated";

    /// Every code, for docs and tests.
    pub const ALL: &[&str] = &[
        INVALID_ID,
        NO_STEPS,
        TOO_MANY_STEPS,
        DUPLICATE_STEP_ID,
        DUPLICATE_CRITERION_ID,
        UNKNOWN_STEP,
        MISSING_TARGET,
        UNREACHABLE_STEP,
        CYCLE_WITHOUT_WAIT,
        EMPTY_SPLIT,
        RANDOM_WEIGHTS,
        UNKNOWN_ATTRIBUTE,
        INVALID_ATTRIBUTE,
        UNKNOWN_EVENT,
        UNKNOWN_TEMPLATE,
        UNKNOWN_AUDIENCE,
        INVALID_CONDITION,
        INVALID_DURATION,
        INVALID_TIME_ZONE,
        INVALID_CRON,
        INVALID_TIME_OF_DAY,
        INVALID_DATE_TIME,
        INVALID_WAIT,
        INVALID_ENGAGEMENT_SPLIT,
        INVALID_AWAIT_RESPONSE,
        EMPTY_UPDATE,
        CONFLICTING_UPDATE,
        UNKNOWN_WRITE_BACK,
        UNKNOWN_FEDERATED_SET,
        EMPTY_CRITERION,
        CRITERION_NEVER_EVALUATED,
    ];
}

/// One problem in a journey document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// A stable code from [`codes`].
    pub code: &'static str,
    /// The step the problem is in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// A JSON pointer into the document (`/steps/3/branches/1/next`).
    pub path: String,
    pub message: String,
    /// For condition errors: the position inside the condition's source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionPosition>,
}

/// Where inside a condition's source a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionPosition {
    /// The condition language's own diagnostic code.
    pub code: &'static str,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "error[{}]", self.code)?;
        if let Some(step) = &self.step {
            write!(formatter, " step={step}")?;
        }
        write!(formatter, ": {} (at {})", self.message, self.path)
    }
}

/// Checks a document against the catalog and compiles it; every error at once.
pub fn validate(
    document: &JourneyDocument,
    catalog: &Catalog,
) -> Result<CompiledJourney, Vec<ValidationError>> {
    let mut validator = Validator {
        document,
        catalog,
        errors: Vec::new(),
        step_ids: HashMap::new(),
        step_schema: Schema::new(),
    };
    let compiled = validator.run();
    match compiled {
        Some(journey) if validator.errors.is_empty() => Ok(journey),
        _ => Err(validator.errors),
    }
}

/// A validated audience: its condition compiled over profile attributes and event aggregates.
#[derive(Debug, Clone)]
pub struct CompiledAudience {
    pub id: Arc<str>,
    pub name: String,
    pub condition: Condition,
}

/// Checks an audience document: a valid id and name, and a condition over `profile.*` and event
/// aggregates only (no `event.*`, no `journey.*`).
pub fn validate_audience(
    document: &crate::document::AudienceDocument,
    catalog: &Catalog,
) -> Result<CompiledAudience, Vec<ValidationError>> {
    let empty = JourneyDocument {
        id: document.id.clone(),
        name: document.name.clone(),
        description: String::new(),
        entry: Entry::Api(crate::document::ApiEntry::default()),
        re_entry: ReEntry::Once,
        goals: Vec::new(),
        exits: Vec::new(),
        start: String::new(),
        steps: Vec::new(),
        defaults: crate::document::Defaults::default(),
        priority: 0,
        pause_behaviour: crate::document::PauseBehaviour::Hold,
    };
    let mut validator = Validator {
        document: &empty,
        catalog,
        errors: Vec::new(),
        step_ids: HashMap::new(),
        step_schema: Schema::new(),
    };
    validator.check_identifier(&document.id, "/id", "audience id");
    if document.name.trim().is_empty() {
        validator.error(codes::INVALID_ID, None, "/name", "the audience has no name");
    }
    let condition = validator.condition(
        &document.condition,
        ConditionUse::ProfileOnly,
        None,
        "/condition",
        false,
    );
    match condition {
        Some(condition) if validator.errors.is_empty() => Ok(CompiledAudience {
            id: Arc::from(document.id.as_str()),
            name: document.name.clone(),
            condition,
        }),
        _ => Err(validator.errors),
    }
}

struct Validator<'a> {
    document: &'a JourneyDocument,
    catalog: &'a Catalog,
    errors: Vec<ValidationError>,
    step_ids: HashMap<&'a str, StepIndex>,
    /// The schema for conditions inside steps (journey fields of this journey declared).
    step_schema: Schema,
}

/// The condition contexts, each with its own schema.
#[derive(Clone, Copy)]
enum ConditionUse<'n> {
    /// Entry filter of an event entry: `event.*` is that event, no `journey.*`.
    EventEntry(&'n str),
    /// Entry filter of audience, schedule or API entries: profile only.
    ProfileOnly,
    /// A filter on a named event inside the journey (wait for event, named criterion).
    NamedEvent(&'n str),
    /// Splits, expressions, unnamed criteria.
    InJourney,
}

impl<'a> Validator<'a> {
    fn error(
        &mut self,
        code: &'static str,
        step: Option<&str>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let message: String = message.into();
        self.errors.push(ValidationError {
            code,
            step: step.map(str::to_owned),
            path: path.into(),
            message: message.trim_end_matches('.').to_owned(),
            condition: None,
        });
    }

    fn run(&mut self) -> Option<CompiledJourney> {
        let document = self.document;
        self.check_identifier(&document.id, "/id", "journey id");
        if document.name.trim().is_empty() {
            self.error(codes::INVALID_ID, None, "/name", "the journey has no name");
        }
        self.index_steps();
        self.step_schema = self.journey_schema();

        let default_time_zone = self.time_zone(&document.defaults.time_zone, "/defaults/time_zone");
        let time_zone_attribute = self
            .profile_attribute_path(
                &document.defaults.time_zone_attribute,
                None,
                "/defaults/time_zone_attribute",
            )
            .unwrap_or_default();
        let entry = self.entry();
        let re_entry = self.re_entry();
        let goals = self.criteria(&document.goals, "/goals");
        let exits = self.criteria(&document.exits, "/exits");
        let start = self.reference(Some(&document.start), None, "/start");

        let mut steps = Vec::with_capacity(document.steps.len());
        for (position, step) in document.steps.iter().enumerate() {
            let kind = self.step(position, step);
            steps.push(kind.map(|kind| CompiledStep {
                id: Arc::from(step.id()),
                kind,
            }));
        }
        if document.steps.is_empty() {
            self.error(codes::NO_STEPS, None, "/steps", "the journey has no steps");
        }
        let steps: Option<Vec<CompiledStep>> = steps.into_iter().collect();
        let (entry, start, mut steps) = (entry?, start?, steps?);
        let default_time_zone = default_time_zone?;
        let goals = goals?;
        let exits = exits?;
        let re_entry = re_entry?;

        self.check_graph(start, &mut steps);
        let needs = self.data_needs(&steps, &goals, &exits, &entry);
        let index = build_index(&entry, &steps, &goals, &exits);
        Some(CompiledJourney {
            id: Arc::from(document.id.as_str()),
            name: document.name.clone(),
            priority: document.priority,
            pause_behaviour: document.pause_behaviour,
            entry,
            re_entry,
            goals,
            exits,
            steps,
            start,
            default_time_zone,
            time_zone_attribute,
            index,
            needs,
        })
    }

    fn check_identifier(&mut self, id: &str, path: &str, what: &str) {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            self.error(
                codes::INVALID_ID,
                None,
                path,
                format!("{what} `{id}` must be 1 to 128 letters, digits, `-` or `_`"),
            );
        }
    }

    fn index_steps(&mut self) {
        let document = self.document;
        if document.steps.len() > MAX_STEPS {
            self.error(
                codes::TOO_MANY_STEPS,
                None,
                "/steps",
                format!(
                    "the journey has {} steps; at most {MAX_STEPS} are allowed",
                    document.steps.len()
                ),
            );
            return;
        }
        for (position, step) in document.steps.iter().enumerate() {
            let id = step.id();
            let path = format!("/steps/{position}/id");
            if id.is_empty() {
                self.error(codes::INVALID_ID, None, path, "a step has an empty id");
                continue;
            }
            let index = StepIndex(u16::try_from(position).unwrap_or(u16::MAX));
            if self.step_ids.insert(id, index).is_some() {
                self.error(
                    codes::DUPLICATE_STEP_ID,
                    Some(id),
                    path,
                    format!("another step already has the id `{id}`"),
                );
            }
        }
    }

    /// The schema for in-journey conditions: the catalog's plus this journey's step outcomes.
    fn journey_schema(&self) -> Schema {
        let mut schema = self.catalog.schema().clone();
        for step in &self.document.steps {
            let id = step.id();
            match step {
                Step::DecisionSplit(_) | Step::RandomSplit(_) => {
                    schema.journey_field(&format!("steps.{id}.branch"), Type::String);
                }
                Step::EngagementSplit(_) => {
                    schema.journey_field(&format!("steps.{id}.engaged"), Type::Bool);
                }
                Step::WaitForEvent(_) => {
                    schema.journey_field(&format!("steps.{id}.received"), Type::Bool);
                }
                Step::Send(SendStep {
                    await_response: Some(_),
                    ..
                })
                | Step::Fetch(_) => {
                    schema.journey_field(&format!("steps.{id}.ok"), Type::Bool);
                    schema.journey_field(&format!("steps.{id}.response"), Type::Any);
                }
                _ => {}
            }
        }
        schema
    }

    fn reference(
        &mut self,
        target: Option<&String>,
        step: Option<&str>,
        path: &str,
    ) -> Option<StepIndex> {
        let Some(target) = target else {
            self.error(
                codes::MISSING_TARGET,
                step,
                path,
                "this branch has no target step",
            );
            return None;
        };
        match self.step_ids.get(target.as_str()) {
            Some(index) => Some(*index),
            None => {
                self.error(
                    codes::UNKNOWN_STEP,
                    step,
                    path,
                    format!("no step has the id `{target}`"),
                );
                None
            }
        }
    }

    fn time_zone(&mut self, name: &str, path: &str) -> Option<chrono_tz::Tz> {
        let parsed = parse_time_zone(name);
        if parsed.is_none() {
            self.error(
                codes::INVALID_TIME_ZONE,
                None,
                path,
                format!("`{name}` is not an IANA time zone such as `Europe/Berlin`"),
            );
        }
        parsed
    }

    fn duration(&mut self, text: &str, step: Option<&str>, path: &str) -> Option<i64> {
        match parse_duration_ms(text) {
            Ok(0) => {
                self.error(
                    codes::INVALID_DURATION,
                    step,
                    path,
                    format!("`{text}` must be longer than zero"),
                );
                None
            }
            Ok(millis) => Some(millis),
            Err(message) => {
                self.error(codes::INVALID_DURATION, step, path, message);
                None
            }
        }
    }

    /// `profile.x.y` → `x.y`, checked against the catalog.
    fn profile_attribute_path(
        &mut self,
        text: &str,
        step: Option<&str>,
        path: &str,
    ) -> Option<String> {
        let Some(attribute) = text
            .strip_prefix("profile.")
            .filter(|rest| !rest.is_empty())
        else {
            self.error(
                codes::INVALID_ATTRIBUTE,
                step,
                path,
                format!("`{text}` must be a profile attribute written `profile.name`"),
            );
            return None;
        };
        self.known_attribute(attribute, step, path);
        Some(attribute.to_owned())
    }

    fn known_attribute(&mut self, attribute: &str, step: Option<&str>, path: &str) {
        if !self.catalog.knows_profile_attribute(attribute) {
            self.error(
                codes::UNKNOWN_ATTRIBUTE,
                step,
                path,
                format!("unknown profile attribute `{attribute}`"),
            );
        }
    }

    fn known_event(&mut self, name: &str, step: Option<&str>, path: &str) {
        if !self.catalog.knows_event(name) {
            self.error(
                codes::UNKNOWN_EVENT,
                step,
                path,
                format!("unknown event `{name}`"),
            );
        }
    }

    fn known_audience(&mut self, id: &str, path: &str) {
        if !self.catalog.knows_audience(id) {
            self.error(
                codes::UNKNOWN_AUDIENCE,
                None,
                path,
                format!("unknown audience `{id}`"),
            );
        }
    }

    fn condition(
        &mut self,
        source: &str,
        usage: ConditionUse<'_>,
        step: Option<&str>,
        path: &str,
        expression: bool,
    ) -> Option<Condition> {
        let mut schema = match usage {
            ConditionUse::EventEntry(_) | ConditionUse::ProfileOnly => {
                self.catalog.schema().clone()
            }
            ConditionUse::NamedEvent(_) | ConditionUse::InJourney => self.step_schema.clone(),
        };
        match usage {
            ConditionUse::EventEntry(name) => {
                schema.current_event(Some(name)).allow_journey_root(false);
            }
            ConditionUse::ProfileOnly => {
                schema.allow_event_root(false).allow_journey_root(false);
            }
            ConditionUse::NamedEvent(name) => {
                schema.current_event(Some(name));
            }
            ConditionUse::InJourney => {}
        }
        let compiled = if expression {
            cairn_condition::compile_expression(source, &schema)
        } else {
            cairn_condition::compile(source, &schema)
        };
        match compiled {
            Ok(condition) => Some(condition),
            Err(diagnostics) => {
                for diagnostic in diagnostics {
                    self.condition_error(&diagnostic, source, step, path);
                }
                None
            }
        }
    }

    fn condition_error(
        &mut self,
        diagnostic: &Diagnostic,
        source: &str,
        step: Option<&str>,
        path: &str,
    ) {
        self.errors.push(ValidationError {
            code: codes::INVALID_CONDITION,
            step: step.map(str::to_owned),
            path: path.to_owned(),
            message: format!(
                "in `{source}` at {}:{}: {} [{}]",
                diagnostic.line, diagnostic.column, diagnostic.message, diagnostic.code
            ),
            condition: Some(ConditionPosition {
                code: diagnostic.code,
                line: diagnostic.line,
                column: diagnostic.column,
            }),
        });
    }

    fn optional_condition(
        &mut self,
        source: Option<&String>,
        usage: ConditionUse<'_>,
        step: Option<&str>,
        path: &str,
    ) -> Result<Option<Condition>, ()> {
        match source {
            None => Ok(None),
            Some(source) => self
                .condition(source, usage, step, path, false)
                .map(Some)
                .ok_or(()),
        }
    }

    fn entry(&mut self) -> Option<CompiledEntry> {
        match &self.document.entry {
            Entry::Event(entry) => {
                self.known_event(&entry.name, None, "/entry/event/name");
                let filter = self.optional_condition(
                    entry.filter.as_ref(),
                    ConditionUse::EventEntry(&entry.name),
                    None,
                    "/entry/event/filter",
                );
                Some(CompiledEntry::Event {
                    name: Arc::from(entry.name.as_str()),
                    filter: filter.ok()?,
                })
            }
            Entry::Audience(entry) => {
                self.known_audience(&entry.id, "/entry/audience/id");
                let filter = self.optional_condition(
                    entry.filter.as_ref(),
                    ConditionUse::ProfileOnly,
                    None,
                    "/entry/audience/filter",
                );
                Some(CompiledEntry::Audience {
                    audience: Arc::from(entry.id.as_str()),
                    filter: filter.ok()?,
                })
            }
            Entry::Schedule(entry) => {
                self.known_audience(&entry.audience, "/entry/schedule/audience");
                let time_zone = self.time_zone(&entry.time_zone, "/entry/schedule/time_zone");
                let schedule = time_zone.and_then(|time_zone| {
                    CronSchedule::parse(&entry.cron, time_zone)
                        .map_err(|message| {
                            self.error(codes::INVALID_CRON, None, "/entry/schedule/cron", message)
                        })
                        .ok()
                });
                if time_zone.is_none() {
                    // The expression is still checked, in UTC, so both errors show at once.
                    if let Err(message) = CronSchedule::parse(&entry.cron, chrono_tz::UTC) {
                        self.error(codes::INVALID_CRON, None, "/entry/schedule/cron", message);
                    }
                }
                let filter = self.optional_condition(
                    entry.filter.as_ref(),
                    ConditionUse::ProfileOnly,
                    None,
                    "/entry/schedule/filter",
                );
                Some(CompiledEntry::Schedule {
                    schedule: Box::new(schedule?),
                    audience: Arc::from(entry.audience.as_str()),
                    filter: filter.ok()?,
                })
            }
            Entry::Api(entry) => {
                let filter = self.optional_condition(
                    entry.filter.as_ref(),
                    ConditionUse::ProfileOnly,
                    None,
                    "/entry/api/filter",
                );
                Some(CompiledEntry::Api {
                    filter: filter.ok()?,
                })
            }
        }
    }

    fn re_entry(&mut self) -> Option<ReEntryRule> {
        Some(match &self.document.re_entry {
            ReEntry::Once => ReEntryRule::Once,
            ReEntry::AfterExit => ReEntryRule::AfterExit,
            ReEntry::Concurrent => ReEntryRule::Concurrent,
            ReEntry::AfterCoolDown(text) => ReEntryRule::AfterCoolDown {
                cool_down_ms: self.duration(text, None, "/re_entry/after_cool_down")?,
            },
        })
    }

    fn criteria(&mut self, criteria: &[Criterion], base: &str) -> Option<Vec<CompiledCriterion>> {
        let mut compiled = Vec::with_capacity(criteria.len());
        let mut failed = false;
        let mut seen = BTreeSet::new();
        for (position, criterion) in criteria.iter().enumerate() {
            let path = format!("{base}/{position}");
            self.check_identifier(&criterion.id, &format!("{path}/id"), "criterion id");
            if !seen.insert(criterion.id.as_str()) {
                self.error(
                    codes::DUPLICATE_CRITERION_ID,
                    None,
                    format!("{path}/id"),
                    format!("another criterion already has the id `{}`", criterion.id),
                );
            }
            match self.criterion(criterion, &path) {
                Some(criterion) => compiled.push(criterion),
                None => failed = true,
            }
        }
        (!failed).then_some(compiled)
    }

    fn criterion(&mut self, criterion: &Criterion, path: &str) -> Option<CompiledCriterion> {
        if criterion.event.is_none() && criterion.condition.is_none() {
            self.error(
                codes::EMPTY_CRITERION,
                None,
                path,
                format!(
                    "criterion `{}` has neither an event nor a condition",
                    criterion.id
                ),
            );
            return None;
        }
        if let Some(event) = &criterion.event {
            self.known_event(event, None, &format!("{path}/event"));
        }
        let usage = match &criterion.event {
            Some(event) => ConditionUse::NamedEvent(event),
            None => ConditionUse::InJourney,
        };
        let condition = self
            .optional_condition(
                criterion.condition.as_ref(),
                usage,
                None,
                &format!("{path}/condition"),
            )
            .ok()?;
        let required = condition
            .as_ref()
            .and_then(|condition| condition.references().required_event_names.clone());
        let event_names = match (&criterion.event, required) {
            (Some(event), Some(required)) => {
                if !required.iter().any(|name| name == event) {
                    self.error(
                        codes::CRITERION_NEVER_EVALUATED,
                        None,
                        format!("{path}/condition"),
                        format!(
                            "criterion `{}` listens to `{event}` but its condition only holds for {}",
                            criterion.id,
                            quoted_list(&required)
                        ),
                    );
                    return None;
                }
                Some(vec![event.clone()])
            }
            (Some(event), None) => Some(vec![event.clone()]),
            (None, required) => required,
        };
        if let (None, Some(condition)) = (&criterion.event, &condition) {
            let references = condition.references();
            let constant = !references.reads_event
                && !references.reads_journey
                && !references.reads_now
                && references.profile_paths.is_empty()
                && references.aggregate_events.is_empty();
            if constant {
                self.error(
                    codes::CRITERION_NEVER_EVALUATED,
                    None,
                    format!("{path}/condition"),
                    format!(
                        "criterion `{}` reads no event, profile, journey data or time: it is constant",
                        criterion.id
                    ),
                );
                return None;
            }
        }
        let needs_event = criterion.event.is_some()
            || event_names.is_some()
            || condition
                .as_ref()
                .is_some_and(|condition| condition.references().reads_event);
        Some(CompiledCriterion {
            id: Arc::from(criterion.id.as_str()),
            event_names,
            condition,
            needs_event,
        })
    }

    fn step(&mut self, position: usize, step: &'a Step) -> Option<StepKind> {
        let id = step.id();
        let base = format!("/steps/{position}");
        let here = Some(id);
        match step {
            Step::Wait(wait) => self.wait(wait, &base),
            Step::WaitForEvent(wait) => {
                self.known_event(&wait.event, here, &format!("{base}/event"));
                let filter = self.optional_condition(
                    wait.filter.as_ref(),
                    ConditionUse::NamedEvent(&wait.event),
                    here,
                    &format!("{base}/filter"),
                );
                let timeout_ms = self.duration(&wait.timeout, here, &format!("{base}/timeout"));
                let on_event =
                    self.reference(wait.on_event.as_ref(), here, &format!("{base}/on_event"));
                let on_timeout = self.reference(
                    wait.on_timeout.as_ref(),
                    here,
                    &format!("{base}/on_timeout"),
                );
                Some(StepKind::WaitForEvent {
                    event: Arc::from(wait.event.as_str()),
                    filter: filter.ok()?,
                    timeout_ms: timeout_ms?,
                    on_event: on_event?,
                    on_timeout: on_timeout?,
                })
            }
            Step::DecisionSplit(split) => {
                if split.branches.is_empty() {
                    self.error(
                        codes::EMPTY_SPLIT,
                        here,
                        format!("{base}/branches"),
                        "a decision split needs at least one branch",
                    );
                }
                let mut branches = Vec::with_capacity(split.branches.len());
                let mut failed = false;
                for (number, branch) in split.branches.iter().enumerate() {
                    let path = format!("{base}/branches/{number}");
                    let condition = self.condition(
                        &branch.condition,
                        ConditionUse::InJourney,
                        here,
                        &format!("{path}/condition"),
                        false,
                    );
                    let next = self.reference(branch.next.as_ref(), here, &format!("{path}/next"));
                    match (condition, next) {
                        (Some(condition), Some(next)) => branches.push(DecisionBranch {
                            name: branch.name.clone(),
                            condition,
                            next,
                        }),
                        _ => failed = true,
                    }
                }
                let default =
                    self.reference(split.default.as_ref(), here, &format!("{base}/default"));
                if failed || split.branches.is_empty() {
                    return None;
                }
                Some(StepKind::DecisionSplit {
                    branches,
                    default: default?,
                })
            }
            Step::EngagementSplit(split) => {
                let send_step =
                    self.reference(Some(&split.send_step), here, &format!("{base}/send_step"));
                if let Some(send) = send_step {
                    if !matches!(self.document.steps.get(send.get()), Some(Step::Send(_))) {
                        self.error(
                            codes::INVALID_ENGAGEMENT_SPLIT,
                            here,
                            format!("{base}/send_step"),
                            format!("`{}` is not a send step", split.send_step),
                        );
                    }
                }
                let window_ms = self.duration(&split.window, here, &format!("{base}/window"));
                let on_yes = self.reference(split.on_yes.as_ref(), here, &format!("{base}/on_yes"));
                let on_no = self.reference(split.on_no.as_ref(), here, &format!("{base}/on_no"));
                Some(StepKind::EngagementSplit {
                    send_step: send_step?,
                    engagement: split.engagement,
                    window_ms: window_ms?,
                    on_yes: on_yes?,
                    on_no: on_no?,
                })
            }
            Step::RandomSplit(split) => {
                if split.branches.is_empty() {
                    self.error(
                        codes::EMPTY_SPLIT,
                        here,
                        format!("{base}/branches"),
                        "a random split needs at least one branch",
                    );
                    return None;
                }
                let total: u64 = split
                    .branches
                    .iter()
                    .map(|branch| u64::from(branch.weight))
                    .sum();
                if total != 100 {
                    self.error(
                        codes::RANDOM_WEIGHTS,
                        here,
                        format!("{base}/branches"),
                        format!("the branch weights sum to {total}, not 100"),
                    );
                }
                let mut branches = Vec::with_capacity(split.branches.len());
                let mut upper_bound = 0u32;
                let mut failed = total != 100;
                for (number, branch) in split.branches.iter().enumerate() {
                    let next = self.reference(
                        branch.next.as_ref(),
                        here,
                        &format!("{base}/branches/{number}/next"),
                    );
                    upper_bound = upper_bound.saturating_add(branch.weight);
                    match next {
                        Some(next) => branches.push(RandomBranch {
                            name: Arc::from(branch.name.as_str()),
                            upper_bound,
                            holdout: branch.holdout,
                            next,
                        }),
                        None => failed = true,
                    }
                }
                (!failed).then_some(StepKind::RandomSplit { branches })
            }
            Step::Send(send) => self.send(send, &base),
            Step::UpdateProfile(update) => self.update_profile(update, &base),
            Step::Fetch(fetch) => self.fetch(fetch, &base),
            Step::Join(join) => {
                let next = self.reference(join.next.as_ref(), here, &format!("{base}/next"));
                Some(StepKind::Join { next: next? })
            }
            Step::Exit(_) => Some(StepKind::Exit),
        }
    }

    fn wait(&mut self, wait: &WaitStep, base: &str) -> Option<StepKind> {
        let here = Some(wait.id.as_str());
        let next = self.reference(wait.next.as_ref(), here, &format!("{base}/next"));
        match (&wait.duration, &wait.until) {
            (Some(duration), None) => {
                let duration_ms = self.duration(duration, here, &format!("{base}/duration"));
                Some(StepKind::WaitDuration {
                    duration_ms: duration_ms?,
                    next: next?,
                })
            }
            (None, Some(until)) => self.wait_until(until, here, &format!("{base}/until"), next?),
            _ => {
                self.error(
                    codes::INVALID_WAIT,
                    here,
                    base,
                    "a wait needs exactly one of `duration` or `until`",
                );
                None
            }
        }
    }

    fn wait_until(
        &mut self,
        until: &WaitUntil,
        step: Option<&str>,
        base: &str,
        next: StepIndex,
    ) -> Option<StepKind> {
        let time_of_day = match &until.time_of_day {
            None => None,
            Some(text) => match parse_time_of_day(text) {
                Some(time) => Some(time),
                None => {
                    self.error(
                        codes::INVALID_TIME_OF_DAY,
                        step,
                        format!("{base}/time_of_day"),
                        format!("`{text}` is not a local time written `HH:MM`"),
                    );
                    return None;
                }
            },
        };
        let attribute_options = until.offset_days != 0
            || until.yearly
            || until.if_missing != crate::document::IfMissing::Continue;
        if let Some(text) = &until.date_time {
            if until.time_of_day.is_some()
                || !until.days_of_week.is_empty()
                || until.attribute.is_some()
                || attribute_options
            {
                self.error(
                    codes::INVALID_WAIT,
                    step,
                    base,
                    "`date_time` cannot be combined with other `until` fields",
                );
                return None;
            }
            return match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(instant) => Some(StepKind::WaitUntilInstant {
                    at_ms: instant.timestamp_millis(),
                    next,
                }),
                Err(error) => {
                    self.error(
                        codes::INVALID_DATE_TIME,
                        step,
                        format!("{base}/date_time"),
                        format!("`{text}` is not an RFC 3339 date-time with offset: {error}"),
                    );
                    None
                }
            };
        }
        if let Some(attribute) = &until.attribute {
            if !until.days_of_week.is_empty() {
                self.error(
                    codes::INVALID_WAIT,
                    step,
                    format!("{base}/days_of_week"),
                    "`days_of_week` cannot be combined with a date `attribute`",
                );
                return None;
            }
            let attribute =
                self.profile_attribute_path(attribute, step, &format!("{base}/attribute"))?;
            return Some(StepKind::WaitDateAttribute {
                attribute,
                offset_days: until.offset_days,
                time_of_day,
                yearly: until.yearly,
                if_missing: until.if_missing,
                next,
            });
        }
        if attribute_options {
            self.error(
                codes::INVALID_WAIT,
                step,
                base,
                "`offset_days`, `yearly` and `if_missing` need a date `attribute`",
            );
            return None;
        }
        if time_of_day.is_none() && until.days_of_week.is_empty() {
            self.error(
                codes::INVALID_WAIT,
                step,
                base,
                "`until` needs `date_time`, `time_of_day`/`days_of_week` or a date `attribute`",
            );
            return None;
        }
        Some(StepKind::WaitLocalTime {
            time_of_day,
            days: WeekdaySet::of(&until.days_of_week),
            next,
        })
    }

    fn send(&mut self, send: &SendStep, base: &str) -> Option<StepKind> {
        let here = Some(send.id.as_str());
        if !self.catalog.knows_template(send.channel, &send.template) {
            self.error(
                codes::UNKNOWN_TEMPLATE,
                here,
                format!("{base}/template"),
                format!(
                    "unknown {} template `{}`",
                    send.channel.as_str(),
                    send.template
                ),
            );
        }
        let (await_response, next) = match &send.await_response {
            None => (
                None,
                Some(self.reference(send.next.as_ref(), here, &format!("{base}/next"))?),
            ),
            Some(awaiting) => {
                if send.channel != Channel::Webhook {
                    self.error(
                        codes::INVALID_AWAIT_RESPONSE,
                        here,
                        format!("{base}/await_response"),
                        "only webhooks can await a response",
                    );
                }
                if send.next.is_some() {
                    self.error(
                        codes::INVALID_AWAIT_RESPONSE,
                        here,
                        format!("{base}/next"),
                        "with `await_response`, the paths are `on_success`, `on_failure` and `on_timeout`, not `next`",
                    );
                }
                let path = format!("{base}/await_response");
                (Some(self.await_spec(awaiting, here, &path)?), None)
            }
        };
        Some(StepKind::Send(Box::new(SendSpec {
            channel: send.channel,
            template: Arc::from(send.template.as_str()),
            settings: Arc::new(send.settings.clone()),
            transactional: send.transactional,
            await_response,
            next,
            tracked: false,
            in_loop: false,
        })))
    }

    /// The timeout and the three paths of a wait for a result, under `path`.
    fn await_spec(
        &mut self,
        awaiting: &AwaitResponse,
        here: Option<&str>,
        path: &str,
    ) -> Option<AwaitSpec> {
        let timeout_ms = self.duration(&awaiting.timeout, here, &format!("{path}/timeout"));
        let target = |validator: &mut Self, target: &Option<String>, name: &str| {
            validator.reference(target.as_ref(), here, &format!("{path}/{name}"))
        };
        let on_success = target(self, &awaiting.on_success, "on_success");
        let on_failure = target(self, &awaiting.on_failure, "on_failure");
        let on_timeout = target(self, &awaiting.on_timeout, "on_timeout");
        Some(AwaitSpec {
            timeout_ms: timeout_ms?,
            on_success: on_success?,
            on_failure: on_failure?,
            on_timeout: on_timeout?,
        })
    }

    fn fetch(&mut self, fetch: &FetchStep, base: &str) -> Option<StepKind> {
        let here = Some(fetch.id.as_str());
        let awaiting = AwaitResponse {
            timeout: fetch.timeout.clone(),
            on_success: fetch.on_success.clone(),
            on_failure: fetch.on_failure.clone(),
            on_timeout: fetch.on_timeout.clone(),
        };
        let awaiting = self.await_spec(&awaiting, here, base);
        if fetch.sets.is_empty() {
            self.error(
                codes::UNKNOWN_FEDERATED_SET,
                here,
                format!("{base}/sets"),
                "a fetch step names at least one federated attribute set",
            );
            return None;
        }
        let mut known = true;
        for (number, set) in fetch.sets.iter().enumerate() {
            if !self.catalog.knows_federated_set(set) {
                self.error(
                    codes::UNKNOWN_FEDERATED_SET,
                    here,
                    format!("{base}/sets/{number}"),
                    format!("`{set}` is not a federated attribute set of this workspace"),
                );
                known = false;
            }
        }
        let sets = fetch
            .sets
            .iter()
            .map(|set| Arc::from(set.as_str()))
            .collect();
        (known).then_some(StepKind::Fetch {
            sets,
            awaiting: awaiting?,
        })
    }

    fn update_profile(&mut self, update: &'a UpdateProfileStep, base: &str) -> Option<StepKind> {
        let here = Some(update.id.as_str());
        let next = self.reference(update.next.as_ref(), here, &format!("{base}/next"));
        let mut operations = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut failed = false;
        let mut attribute_ok = |validator: &mut Self, attribute: &'a str, path: String| -> bool {
            if attribute.is_empty() || attribute.starts_with("profile.") {
                validator.error(
                    codes::INVALID_ATTRIBUTE,
                    here,
                    path,
                    format!("`{attribute}`: write attribute names without the `profile.` prefix"),
                );
                return false;
            }
            if !seen.insert(attribute) {
                validator.error(
                    codes::CONFLICTING_UPDATE,
                    here,
                    path,
                    format!("attribute `{attribute}` is changed twice in one step"),
                );
                return false;
            }
            validator.known_attribute(attribute, here, &path);
            true
        };
        let document_step = update;
        for (attribute, value) in &document_step.set {
            let path = format!("{base}/set/{}", pointer_escape(attribute));
            if attribute_ok(self, attribute, path) {
                operations.push(ProfileOperation::Set {
                    attribute: Arc::from(attribute.as_str()),
                    value: value.clone(),
                });
            } else {
                failed = true;
            }
        }
        for (attribute, source) in &document_step.set_expr {
            let path = format!("{base}/set_expr/{}", pointer_escape(attribute));
            let valid = attribute_ok(self, attribute, path.clone());
            let expression = self.condition(source, ConditionUse::InJourney, here, &path, true);
            match (valid, expression) {
                (true, Some(expression)) => operations.push(ProfileOperation::SetExpression {
                    attribute: Arc::from(attribute.as_str()),
                    expression,
                }),
                _ => failed = true,
            }
        }
        for (attribute, by) in &document_step.increment {
            let path = format!("{base}/increment/{}", pointer_escape(attribute));
            if attribute_ok(self, attribute, path) && by.is_finite() {
                operations.push(ProfileOperation::Increment {
                    attribute: Arc::from(attribute.as_str()),
                    by: *by,
                });
            } else {
                failed = true;
            }
        }
        for (number, attribute) in document_step.unset.iter().enumerate() {
            let path = format!("{base}/unset/{number}");
            if attribute_ok(self, attribute, path) {
                operations.push(ProfileOperation::Unset {
                    attribute: Arc::from(attribute.as_str()),
                });
            } else {
                failed = true;
            }
        }
        for (target, source) in &document_step.write_back {
            let path = format!("{base}/write_back/{}", pointer_escape(target));
            let target = self.write_back_target(target, here, &path);
            let expression = self.condition(source, ConditionUse::InJourney, here, &path, true);
            match (target, expression) {
                (Some((set, field)), Some(expression)) => {
                    operations.push(ProfileOperation::WriteBack {
                        set,
                        field,
                        expression,
                    });
                }
                _ => failed = true,
            }
        }
        if operations.is_empty() && !failed {
            self.error(
                codes::EMPTY_UPDATE,
                here,
                base,
                "an update_profile step needs at least one of `set`, `set_expr`, `increment`, `unset`, `write_back`",
            );
            return None;
        }
        if failed {
            return None;
        }
        Some(StepKind::UpdateProfile {
            operations,
            next: next?,
        })
    }

    /// A write-back target `set.field`: a declared federated set with a write-back, and a field.
    fn write_back_target(
        &mut self,
        target: &str,
        step: Option<&str>,
        path: &str,
    ) -> Option<(Arc<str>, Arc<str>)> {
        let Some((set, field)) = target.split_once('.').filter(|(set, field)| {
            !set.is_empty()
                && !field.is_empty()
                && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) else {
            self.error(
                codes::UNKNOWN_WRITE_BACK,
                step,
                path,
                format!("`{target}`: a write-back target is `set.field` (the field a plain name)"),
            );
            return None;
        };
        if !self.catalog.knows_writable_set(set) {
            self.error(
                codes::UNKNOWN_WRITE_BACK,
                step,
                path,
                format!("`{set}` is not a federated attribute set with a write-back"),
            );
            return None;
        }
        Some((Arc::from(set), Arc::from(field)))
    }

    /// Reachability, loops without a wait, engagement splits after their send, sends inside loops.
    fn check_graph(&mut self, start: StepIndex, steps: &mut [CompiledStep]) {
        let count = steps.len();
        let successors: Vec<Vec<usize>> = steps
            .iter()
            .map(|step| {
                step.kind
                    .targets()
                    .into_iter()
                    .map(StepIndex::get)
                    .collect()
            })
            .collect();
        let reachable = reachable_from(&successors, start.get());
        for (position, step) in steps.iter().enumerate() {
            if !reachable[position] {
                self.error(
                    codes::UNREACHABLE_STEP,
                    Some(&step.id),
                    format!("/steps/{position}"),
                    format!("no path from the start step leads to `{}`", step.id),
                );
            }
        }
        // Loops without a wait: the graph of edges leaving instantaneous steps must be acyclic.
        let instantaneous: Vec<Vec<usize>> = steps
            .iter()
            .zip(&successors)
            .map(|(step, next)| {
                if waits_for_sure(&step.kind) {
                    Vec::new()
                } else {
                    next.clone()
                }
            })
            .collect();
        for cycle in find_cycles(&instantaneous) {
            let names: Vec<&str> = cycle.iter().map(|&index| &*steps[index].id).collect();
            let first = cycle[0];
            self.error(
                codes::CYCLE_WITHOUT_WAIT,
                Some(&steps[first].id),
                format!("/steps/{first}"),
                format!(
                    "the steps {} → {} form a loop without a wait (a duration wait, a wait for an event or an awaited response)",
                    names.join(" → "),
                    names[0]
                ),
            );
        }
        // Engagement splits must come after their send; sends on loops count attempts.
        let mut tracked = vec![false; count];
        for (position, step) in steps.iter().enumerate() {
            if let StepKind::EngagementSplit { send_step, .. } = &step.kind {
                let from_send = reachable_from(&successors, send_step.get());
                if !from_send[position] {
                    self.error(
                        codes::INVALID_ENGAGEMENT_SPLIT,
                        Some(&step.id),
                        format!("/steps/{position}/send_step"),
                        format!(
                            "`{}` does not come before this split on any path",
                            steps[send_step.get()].id
                        ),
                    );
                }
                tracked[send_step.get()] = true;
            }
        }
        for (position, step) in steps.iter_mut().enumerate() {
            if let StepKind::Send(send) = &mut step.kind {
                send.tracked = tracked[position];
                send.in_loop = successors[position]
                    .iter()
                    .any(|&next| reachable_from(&successors, next)[position]);
            }
        }
    }

    fn data_needs(
        &self,
        steps: &[CompiledStep],
        goals: &[CompiledCriterion],
        exits: &[CompiledCriterion],
        entry: &CompiledEntry,
    ) -> DataNeeds {
        let mut needs = DataNeeds::default();
        let mut note = |condition: &Condition, in_split: bool| {
            let references = condition.references();
            needs.journey_fields |= references.reads_journey;
            if in_split {
                needs.current_event |= references.reads_event;
            }
        };
        for criterion in goals.iter().chain(exits) {
            if let Some(condition) = &criterion.condition {
                note(condition, false);
            }
        }
        if let Some(filter) = entry.filter() {
            note(filter, false);
        }
        for step in steps {
            match &step.kind {
                StepKind::DecisionSplit { branches, .. } => {
                    for branch in branches {
                        note(&branch.condition, true);
                    }
                }
                StepKind::WaitForEvent {
                    filter: Some(filter),
                    ..
                } => note(filter, false),
                StepKind::UpdateProfile { operations, .. } => {
                    for operation in operations {
                        if let ProfileOperation::SetExpression { expression, .. }
                        | ProfileOperation::WriteBack { expression, .. } = operation
                        {
                            note(expression, true);
                        }
                    }
                }
                StepKind::Send(send) => {
                    needs.send_records |= send.tracked;
                    needs.visit_counts |= send.in_loop;
                }
                _ => {}
            }
        }
        if steps
            .iter()
            .any(|step| matches!(step.kind, StepKind::Fetch { .. }))
        {
            // The answer is recorded as a step outcome; each visit has its own id.
            needs.journey_fields = true;
            needs.visit_counts = true;
        }
        needs
    }
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether a step always waits a positive time before moving on (so a loop through it is safe).
fn waits_for_sure(kind: &StepKind) -> bool {
    match kind {
        StepKind::WaitDuration { duration_ms, .. } => *duration_ms > 0,
        StepKind::WaitForEvent { .. } => true,
        StepKind::Send(send) => send.await_response.is_some(),
        StepKind::Fetch { .. } => true,
        _ => false,
    }
}

fn reachable_from(successors: &[Vec<usize>], start: usize) -> Vec<bool> {
    let mut seen = vec![false; successors.len()];
    let mut stack = vec![start];
    while let Some(node) = stack.pop() {
        if node >= seen.len() || seen[node] {
            continue;
        }
        seen[node] = true;
        stack.extend(successors[node].iter().copied());
    }
    seen
}

/// One representative cycle per strongly connected component with a cycle (Tarjan's algorithm,
/// iterative so deep graphs do not overflow the stack).
fn find_cycles(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let count = successors.len();
    let mut index_of = vec![usize::MAX; count];
    let mut low = vec![0usize; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut cycles = Vec::new();
    for root in 0..count {
        if index_of[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index_of[node] == usize::MAX {
                index_of[node] = next_index;
                low[node] = next_index;
                next_index += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&next) = successors[node].get(*edge) {
                *edge += 1;
                if next >= count {
                    continue;
                }
                if index_of[next] == usize::MAX {
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index_of[next]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index_of[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                let self_loop = successors[node].contains(&node);
                if component.len() > 1 || self_loop {
                    component.sort_unstable();
                    cycles.push(component);
                }
            }
        }
    }
    cycles.sort();
    cycles
}

fn build_index(
    entry: &CompiledEntry,
    steps: &[CompiledStep],
    goals: &[CompiledCriterion],
    exits: &[CompiledCriterion],
) -> JourneyIndex {
    let mut names: BTreeSet<Arc<str>> = BTreeSet::new();
    let mut index = JourneyIndex::default();
    match entry {
        CompiledEntry::Event { name, .. } => {
            names.insert(name.clone());
            index.entry_event = Some(name.clone());
        }
        CompiledEntry::Audience { audience, .. } | CompiledEntry::Schedule { audience, .. } => {
            index.entry_audience = Some(audience.clone());
        }
        CompiledEntry::Api { .. } => {}
    }
    for criterion in goals.iter().chain(exits) {
        match (&criterion.event_names, criterion.needs_event) {
            (Some(event_names), _) => {
                names.extend(event_names.iter().map(|name| Arc::from(name.as_str())));
            }
            (None, true) => index.criteria_on_any_event = true,
            (None, false) => index.criteria_on_profile = true,
        }
    }
    for step in steps {
        match &step.kind {
            StepKind::WaitForEvent { event, .. } => {
                names.insert(event.clone());
            }
            StepKind::Send(send) if send.tracked => {
                for engagement in [
                    crate::document::Engagement::Opened,
                    crate::document::Engagement::Clicked,
                    crate::document::Engagement::Bounced,
                ] {
                    names.extend(engagement::event_names(send.channel, engagement).map(Arc::from));
                }
            }
            _ => {}
        }
    }
    index.event_names = JourneyIndex::from_names(names);
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_loops_and_self_loops_only() {
        assert_eq!(
            find_cycles(&[vec![1], vec![2], vec![]]),
            Vec::<Vec<usize>>::new()
        );
        assert_eq!(
            find_cycles(&[vec![1], vec![0], vec![2]]),
            vec![vec![0, 1], vec![2]]
        );
    }
}
