//! Journey and audience documents: the boundary types that live in git as JSON or YAML.
//!
//! These types are what a user writes. They are deliberately plain (durations, time zones, cron
//! expressions and conditions are strings): [`crate::validate`] checks them all at once and turns a
//! document into a [`crate::CompiledJourney`]. The published JSON Schema (`docs/journey.schema.json`) is
//! derived from these types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A journey: how customers enter, the steps they go through, and when they leave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyDocument {
    /// Stable identifier (letters, digits, `-`, `_`); part of every message id's derivation through the
    /// enrollment and of the random-split hash.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// What the journey is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How customers enter.
    pub entry: Entry,
    /// Whether a customer may enter again.
    #[serde(default)]
    pub re_entry: ReEntry,
    /// Conversion goals: reaching one ends the enrollment with `goal_reached`. Checked at every step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<Criterion>,
    /// Exit criteria: meeting one ends the enrollment with `exit_criterion`. Checked at every step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exits: Vec<Criterion>,
    /// The id of the first step.
    pub start: String,
    /// The steps, each with its outgoing edges.
    pub steps: Vec<Step>,
    /// Defaults (time zone).
    #[serde(default)]
    pub defaults: Defaults,
    /// Priority among journeys (higher wins), used by volume control.
    #[serde(default)]
    pub priority: i32,
    /// What happens to customers already in the journey while it is paused.
    #[serde(default)]
    pub pause_behaviour: PauseBehaviour,
}

/// How customers enter a journey. Exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// When the customer performs an event.
    Event(EventEntry),
    /// When the customer joins an audience (this covers attribute changes).
    Audience(AudienceEntry),
    /// On a schedule, for every member of an audience (a recurring send).
    Schedule(ScheduleEntry),
    /// When an API call enrolls the customer.
    Api(ApiEntry),
}

/// Entry on an event, with an optional filter condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEntry {
    /// The event name, e.g. `Cart Abandoned`.
    pub name: String,
    /// A condition over `event.*` and `profile.*` the event must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Entry on joining an audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceEntry {
    /// The audience id.
    pub id: String,
    /// An extra condition over `profile.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Entry on a schedule (cron in a time zone), for the members of an audience at each firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// Five-field cron expression (minute hour day-of-month month day-of-week), e.g. `0 9 * * MON`.
    pub cron: String,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// The audience whose members enter at each firing.
    pub audience: String,
    /// An extra condition over `profile.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Entry by API call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiEntry {
    /// A condition over `profile.*` the customer must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Whether a customer who entered before may enter again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ReEntry {
    /// Never again once entered (the default).
    #[default]
    Once,
    /// Again, but only once the previous enrollment has ended.
    AfterExit,
    /// Again once the previous enrollment has ended and this long (e.g. `7d`) has passed since it began.
    AfterCoolDown(String),
    /// Again at any time, even while enrolled (several enrollments at once).
    Concurrent,
}

/// A goal or exit criterion: an event name, a condition, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// Identifier used in traces and counters.
    pub id: String,
    /// Only this event can meet the criterion (it is checked when this event arrives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A condition over `event.*`, `profile.*` and `journey.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// Journey-wide defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// IANA time zone used when the customer's own is missing or invalid.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Profile attribute holding the customer's IANA time zone.
    #[serde(default = "default_time_zone_attribute")]
    pub time_zone_attribute: String,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_time_zone_attribute() -> String {
    "profile.timezone".to_owned()
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            time_zone: default_time_zone(),
            time_zone_attribute: default_time_zone_attribute(),
        }
    }
}

/// What happens to customers already in the journey while it is paused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseBehaviour {
    /// Customers stop at their next step until the journey resumes (the default).
    #[default]
    Hold,
    /// Customers already in the journey continue; only new entries stop.
    Continue,
}

/// One step. Every step has an `id` unique in the journey and a `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// Wait for a duration or until an instant.
    Wait(WaitStep),
    /// Wait for an event, with a timeout: two paths.
    WaitForEvent(WaitForEventStep),
    /// Ordered branches with conditions; the first match wins, else the default.
    DecisionSplit(DecisionSplitStep),
    /// Whether the customer opened/clicked/bounced a message sent earlier in this enrollment.
    EngagementSplit(EngagementSplitStep),
    /// Weighted random branches (deterministic per customer), e.g. A/B tests and holdouts.
    RandomSplit(RandomSplitStep),
    /// Send a message (writes an outbox message with a deterministic id).
    Send(SendStep),
    /// Set, increment or unset profile attributes.
    UpdateProfile(UpdateProfileStep),
    /// Fetch federated attribute sets from their source systems and wait for the answer.
    Fetch(FetchStep),
    /// Several paths into one step.
    Join(JoinStep),
    /// The end of a path: the enrollment completes.
    Exit(ExitStep),
}

/// `wait`: exactly one of `duration` or `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    pub id: String,
    /// How long to wait, e.g. `1h`, `3d`, `1d 12h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Wait until an instant computed from a date-time, a local time of day, or a date attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<WaitUntil>,
    /// The next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The instant a `wait` ends. Forms: `{date_time}`; `{time_of_day?, days_of_week?}`;
/// `{attribute, offset_days?, time_of_day?, yearly?, if_missing?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntil {
    /// An absolute RFC 3339 instant with offset, e.g. `2025-12-24T09:00:00+01:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    /// Local time of day `HH:MM` in the customer's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_of_day: Option<String>,
    /// Allowed days of the week in the customer's time zone (any day when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<Weekday>,
    /// A profile date attribute, e.g. `profile.renewal_date` (`YYYY-MM-DD` or RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Days added to the attribute's date (negative: before), e.g. `-3`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset_days: i32,
    /// The date recurs every year (birthdays): the next anniversary is used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub yearly: bool,
    /// What to do when the attribute is missing or not a date.
    #[serde(default, skip_serializing_if = "is_default")]
    pub if_missing: IfMissing,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// What a date-attribute wait does when the attribute is missing or unusable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfMissing {
    /// Continue to the next step at once (the default).
    #[default]
    Continue,
    /// End the enrollment (terminal state `completed` at this step).
    Exit,
}

/// A day of the week.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    #[serde(alias = "monday")]
    Mon,
    #[serde(alias = "tuesday")]
    Tue,
    #[serde(alias = "wednesday")]
    Wed,
    #[serde(alias = "thursday")]
    Thu,
    #[serde(alias = "friday")]
    Fri,
    #[serde(alias = "saturday")]
    Sat,
    #[serde(alias = "sunday")]
    Sun,
}

/// `wait_for_event`: the event path or, at the timeout, the timeout path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForEventStep {
    pub id: String,
    /// The awaited event name.
    pub event: String,
    /// A condition the event must meet (over `event.*`, `profile.*`, `journey.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// How long to wait, e.g. `1h`. An event at exactly the timeout instant takes the event path.
    pub timeout: String,
    /// The step after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_event: Option<String>,
    /// The step after the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

/// `decision_split`: ordered branches, first match wins, else `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionSplitStep {
    pub id: String,
    pub branches: Vec<DecisionBranch>,
    /// The step when no branch matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// One branch of a decision split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBranch {
    /// Label for traces and the canvas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The condition (over `profile.*`, `event.*` — the entry or last awaited event — and `journey.*`).
    pub condition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `engagement_split`: did the customer engage with an earlier send of this enrollment within
/// `window` of that send? Yes at once if it already happened, else wait until the window ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngagementSplitStep {
    pub id: String,
    /// The id of an earlier `send` step.
    pub send_step: String,
    pub engagement: Engagement,
    /// Measured from the send, e.g. `1d`.
    pub window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_yes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no: Option<String>,
}

/// An engagement with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engagement {
    /// Opened (a click counts as an open).
    Opened,
    Clicked,
    Bounced,
}

impl Engagement {
    /// The engagement as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Engagement::Opened => "opened",
            Engagement::Clicked => "clicked",
            Engagement::Bounced => "bounced",
        }
    }
}

/// `random_split`: weights sum to 100; the branch is a stable hash of (profile, journey, step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomSplitStep {
    pub id: String,
    pub branches: Vec<RandomBranch>,
}

/// One branch of a random split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomBranch {
    /// Label (variant name) for traces and A/B results.
    pub name: String,
    /// Percentage, 0..=100; the branches' weights sum to 100.
    pub weight: u32,
    /// A holdout (control) group: analytics compare it with the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holdout: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A message channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    Webhook,
}

impl Channel {
    /// The channel's name as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Webhook => "webhook",
        }
    }
}

/// `send`: an outbox message with a deterministic id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendStep {
    pub id: String,
    pub channel: Channel,
    /// Template id, known for the channel.
    pub template: String,
    /// Channel settings passed to the template and channel (subject, sender, URL, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub settings: Map<String, Value>,
    /// Transactional messages bypass marketing frequency caps and subscription state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
    /// Webhooks only: wait for the delivery result and branch on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_response: Option<AwaitResponse>,
    /// The next step (not used when `await_response` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Webhook response handling: the enrollment waits for the delivery result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwaitResponse {
    /// How long to wait for the delivery result, e.g. `30s`.
    pub timeout: String,
    /// After a successful response (its fields are in `journey.steps.<id>.response`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// After a failed delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// When no result came in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

/// `update_profile`: attribute names are written without the `profile.` prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileStep {
    pub id: String,
    /// Attributes set to literal JSON values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Value>,
    /// Attributes set to the value of a condition-language expression, e.g. `profile.points + 10`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_expr: BTreeMap<String, String>,
    /// Numeric attributes incremented (a missing attribute counts as 0).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub increment: BTreeMap<String, f64>,
    /// Attributes removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
    /// Fields of federated attribute sets written back to their source system, as
    /// `set.field` → a condition-language expression (`loyalty.tier: "'gold'"`). The write runs
    /// outside the journey, durably and with an audit event; the profile itself is not changed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub write_back: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `fetch`: federated attribute sets (declared in the workspace's `attributes` file) fetched for the
/// customer from their source systems, under each set's cache, timeout and failure policy. The
/// enrollment waits for the answer; later conditions read the values as
/// `journey.steps.<id>.response.<set>.<field>` (and `journey.steps.<id>.ok`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchStep {
    pub id: String,
    /// The attribute sets to fetch, e.g. `[loyalty]`.
    pub sets: Vec<String>,
    /// How long to wait for the answer, e.g. `30s`.
    pub timeout: String,
    /// After the values arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// After a source failed under its set's failure policy. (A set is `null`, on the success
    /// path, when the customer has no record of its source or the source has no row.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// When no answer came in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

/// `join`: several paths meet here and continue to `next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `exit`: the enrollment completes here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitStep {
    pub id: String,
}

impl Step {
    /// The step's id.
    pub fn id(&self) -> &str {
        match self {
            Step::Wait(step) => &step.id,
            Step::WaitForEvent(step) => &step.id,
            Step::DecisionSplit(step) => &step.id,
            Step::EngagementSplit(step) => &step.id,
            Step::RandomSplit(step) => &step.id,
            Step::Send(step) => &step.id,
            Step::UpdateProfile(step) => &step.id,
            Step::Fetch(step) => &step.id,
            Step::Join(step) => &step.id,
            Step::Exit(step) => &step.id,
        }
    }

    /// The step type as written in documents.
    pub fn type_name(&self) -> &'static str {
        match self {
            Step::Wait(_) => "wait",
            Step::WaitForEvent(_) => "wait_for_event",
            Step::DecisionSplit(_) => "decision_split",
            Step::EngagementSplit(_) => "engagement_split",
            Step::RandomSplit(_) => "random_split",
            Step::Send(_) => "send",
            Step::UpdateProfile(_) => "update_profile",
            Step::Fetch(_) => "fetch",
            Step::Join(_) => "join",
            Step::Exit(_) => "exit",
        }
    }
}

/// An audience (segment): a named condition over profile attributes and event aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceDocument {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A condition over `profile.*` and event aggregates, e.g. `count("Product Viewed", 7d) > 0`.
    pub condition: String,
}

/// The published JSON Schema of journey documents (`docs/journey.schema.json`), pretty-printed.
pub fn journey_schema_json() -> String {
    let schema = schemars::schema_for!(JourneyDocument);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
