//! What the runtime asks the engine to do: the effects of one input, committed atomically with it.
//!
//! Every item names its enrollment and journey, so one [`Effects`] collects the work of every
//! enrollment of a profile for one input. The vectors are inline for the usual one or two items.

use crate::document::{Channel, Engagement};
use crate::enrollment::EndReason;
use crate::ids::{EnrollmentId, JourneyKey, MessageId, StepIndex};
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use smallvec::SmallVec;
use std::sync::Arc;

/// The effects of one input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Effects {
    /// New enrollments.
    pub entered: SmallVec<[Entered; 1]>,
    /// Messages to send, each at most once per id.
    pub outbox: SmallVec<[OutboxMessage; 1]>,
    /// Profile changes (already applied to the context's profile; persist them).
    pub profile_updates: SmallVec<[ProfileUpdate; 1]>,
    /// Fields to write back to federated attribute sources (outside the journey, durably).
    pub write_backs: Vec<WriteBack>,
    /// Federated attribute sets to fetch; the enrollment waits for the answer.
    pub fetches: Vec<FetchRequest>,
    /// Timers set, moved or cleared.
    pub timers: SmallVec<[TimerChange; 2]>,
    /// Per-step counter changes.
    pub step_counts: SmallVec<[StepCount; 4]>,
    /// Enrollments that ended, each exactly once.
    pub ended: SmallVec<[Ended; 1]>,
    /// Why each decision was taken.
    pub trace: Vec<TraceEntry>,
}

impl Effects {
    /// Forgets everything (keeps the allocations, for reuse across inputs).
    pub fn clear(&mut self) {
        self.entered.clear();
        self.outbox.clear();
        self.profile_updates.clear();
        self.write_backs.clear();
        self.fetches.clear();
        self.timers.clear();
        self.step_counts.clear();
        self.ended.clear();
        self.trace.clear();
    }

    /// Whether the input changed nothing.
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty()
            && self.outbox.is_empty()
            && self.profile_updates.is_empty()
            && self.write_backs.is_empty()
            && self.fetches.is_empty()
            && self.timers.is_empty()
            && self.step_counts.is_empty()
            && self.ended.is_empty()
            && self.trace.is_empty()
    }
}

/// A customer entered a journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entered {
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub at_ms: i64,
}

/// A message for the dispatcher.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxMessage {
    /// Deterministic: (enrollment, step, attempt).
    pub message_id: MessageId,
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub journey_id: Arc<str>,
    pub step_id: Arc<str>,
    pub profile_id: Arc<str>,
    pub channel: Channel,
    pub template: Arc<str>,
    pub settings: Arc<Map<String, Value>>,
    /// The journey's priority (volume control).
    pub priority: i32,
    pub transactional: bool,
    /// The enrollment's `journey.*` data (trigger event, step outcomes) for personalization, when kept.
    pub data: Option<Value>,
    /// When the runtime decided to send (ms).
    pub at_ms: i64,
}

/// Profile attribute changes made by an `update_profile` step (values already computed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileUpdate {
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub step: StepIndex,
    pub changes: Vec<AttributeChange>,
}

/// One attribute change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeChange {
    /// Attribute path without `profile.` (`loyalty.tier`).
    pub attribute: Arc<str>,
    /// The new value, or `None` when removed.
    pub value: Option<Value>,
}

/// A field of a federated attribute set to write back to its source system (value computed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteBack {
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub journey_id: Arc<str>,
    pub step: StepIndex,
    pub step_id: Arc<str>,
    pub profile_id: Arc<str>,
    /// The attribute set (`loyalty`) and its field (`tier`).
    pub set: Arc<str>,
    pub field: Arc<str>,
    pub value: Value,
    /// When the journey decided it (ms).
    pub at_ms: i64,
}

/// Federated attribute sets to fetch for the profile; the answer comes back as a delivery result
/// for `message_id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetchRequest {
    /// Deterministic: (enrollment, step, visit).
    pub message_id: MessageId,
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub journey_id: Arc<str>,
    pub step_id: Arc<str>,
    pub profile_id: Arc<str>,
    pub sets: Arc<[Arc<str>]>,
    pub at_ms: i64,
}

/// A timer set (`Some`) or cleared (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimerChange {
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub wake_at_ms: Option<i64>,
}

/// A per-step counter change: `current` = entered − left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepCount {
    pub journey: JourneyKey,
    pub step: StepIndex,
    pub change: StepChange,
}

/// Entering or leaving a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepChange {
    Entered,
    /// Left for the next step.
    Advanced,
    /// Left because the enrollment ended here.
    Ended(EndReason),
}

/// An enrollment ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ended {
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub step: StepIndex,
    pub reason: EndReason,
    pub detail: EndDetail,
    pub at_ms: i64,
}

/// Which goal, criterion or stop reason ended an enrollment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndDetail {
    None,
    /// Index into the journey's goals.
    Goal(u16),
    /// Index into the journey's exit criteria.
    ExitCriterion(u16),
    /// The reason given to stop.
    Stopped(Arc<str>),
    /// The enrollment the merged one gave way to.
    MergedInto(EnrollmentId),
    /// What went wrong.
    Error(&'static str),
}

/// One decision of one enrollment, with the data that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEntry {
    pub enrollment: EnrollmentId,
    pub journey: JourneyKey,
    pub step: StepIndex,
    pub at_ms: i64,
    pub decision: Decision,
}

/// What was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    /// Entered the journey (with the trigger event's name, if any).
    Entered { trigger: Option<String> },
    /// Started waiting until an instant (or passed at once when it is not in the future).
    Wait {
        until_ms: i64,
        reason: WaitReason,
        passed: bool,
    },
    /// The wait ended by its timer.
    WaitOver,
    /// The awaited event arrived (at or before the timeout).
    AwaitedEvent { event: String },
    /// The awaited event did not arrive in time.
    EventTimeout,
    /// A decision-split branch (`branch` = `None`: the default) and the values its conditions read.
    Branch {
        branch: Option<u16>,
        reads: Option<Box<Reads>>,
    },
    /// A random split: the customer's stable bucket (0..100) and the branch it falls in.
    RandomBranch { bucket: u8, branch: u16 },
    /// An engagement split's answer.
    Engagement {
        engagement: Engagement,
        engaged_at_ms: Option<i64>,
        window_ends_ms: i64,
        yes: bool,
    },
    /// Feedback about a tracked message was recorded.
    EngagementRecorded {
        engagement: Engagement,
        message_id: MessageId,
    },
    /// A message went to the outbox.
    Sent { message_id: MessageId },
    /// Federated attributes were asked for.
    Fetching { message_id: MessageId },
    /// A delivery result arrived for the awaited webhook.
    DeliveryResult { ok: bool },
    /// The awaited delivery result did not come in time.
    ResponseTimeout,
    /// Profile attributes changed, and federated fields asked to be written back.
    ProfileUpdated {
        changes: u16,
        #[serde(default, skip_serializing_if = "is_zero")]
        written_back: u16,
    },
    /// Held because the journey is paused.
    Held,
    /// Released because the journey resumed.
    Resumed,
    /// A goal or exit criterion was met, with the values its condition read.
    CriterionMet {
        goal: bool,
        index: u16,
        reads: Option<Box<Reads>>,
    },
    /// The enrollment ended.
    Ended { reason: EndReason },
}

fn is_zero(count: &u16) -> bool {
    *count == 0
}

/// The values a condition read (`profile.tier` → `"gold"`), recorded when tracing values.
pub type Reads = Vec<(String, Value)>;

/// Why a wait ends when it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WaitReason {
    /// A fixed duration.
    Duration { duration_ms: i64 },
    /// An absolute date-time.
    DateTime,
    /// A local time of day and/or weekday in this time zone.
    LocalTime {
        #[serde(serialize_with = "serialize_tz", deserialize_with = "deserialize_tz")]
        time_zone: Tz,
        from_profile: bool,
    },
    /// A date attribute (with offset, maybe yearly) in this time zone.
    DateAttribute {
        date: NaiveDate,
        #[serde(serialize_with = "serialize_tz", deserialize_with = "deserialize_tz")]
        time_zone: Tz,
        from_profile: bool,
    },
    /// The date attribute was missing or not a date.
    AttributeMissing,
    /// The date attribute's instant has passed (not yearly).
    DatePassed,
    /// The timeout of a `wait_for_event`.
    EventTimeout,
    /// The end of an engagement window.
    EngagementWindow,
    /// The timeout for a webhook's delivery result.
    ResponseTimeout,
}

fn serialize_tz<S: serde::Serializer>(time_zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(time_zone.name())
}

fn deserialize_tz<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
    let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format!("unknown time zone {name:?}")))
}
