//! One customer's passage through one journey version: compact, because the engine keeps millions.
//!
//! The inline part is 40 bytes. Variable data (`journey.*` fields, the event splits read, send records
//! for engagement splits, visit counts for sends inside loops) lives in [`EnrollmentData`] behind an
//! `Option<Box<..>>` that stays `None` unless the compiled journey needs it.

use crate::cached_json::CachedJson;
use crate::document::Engagement;
use crate::ids::{EnrollmentId, JourneyKey, StepIndex};
use serde::{Deserialize, Serialize};

/// No timer is set.
pub const NO_TIMER: i64 = i64::MAX;

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// At a waiting step (a timer, an event, an engagement or a delivery result ends the wait).
    Waiting,
    /// The journey is paused with `hold`: the enrollment runs `step` when the journey resumes.
    Held,
    /// Finished, for this reason. Ended enrollments leave the active set.
    Ended(EndReason),
}

/// Why an enrollment ended: exactly one per enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Reached an `exit` step (or a date wait with `if_missing: exit`).
    Completed,
    /// Met a goal.
    GoalReached,
    /// Met an exit criterion.
    ExitCriterion,
    /// The journey was stopped.
    Stopped,
    /// The profile was merged into another that was in the same journey since earlier.
    Merged,
    /// The runtime could not continue (a loop without a wait, a step limit).
    Error,
}

impl EndReason {
    /// The reason as written in traces and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::GoalReached => "goal_reached",
            EndReason::ExitCriterion => "exit_criterion",
            EndReason::Stopped => "stopped",
            EndReason::Merged => "merged",
            EndReason::Error => "error",
        }
    }
}

/// One customer in one journey version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub id: EnrollmentId,
    /// When the customer entered (ms).
    pub entered_at_ms: i64,
    /// When the current wait ends (ms), or [`NO_TIMER`].
    pub wake_at_ms: i64,
    /// Variable data, `None` unless the journey needs it.
    pub data: Option<Box<EnrollmentData>>,
    pub journey: JourneyKey,
    /// The current step (the held step when `Held`).
    pub step: StepIndex,
    pub status: Status,
}

impl Enrollment {
    /// A fresh enrollment at the journey's start step; [`crate::apply`] with `Input::Enter` runs it.
    pub fn new(
        id: EnrollmentId,
        journey: JourneyKey,
        start: StepIndex,
        entered_at_ms: i64,
    ) -> Enrollment {
        Enrollment {
            id,
            entered_at_ms,
            wake_at_ms: NO_TIMER,
            data: None,
            journey,
            step: start,
            status: Status::Waiting,
        }
    }

    /// Whether the enrollment has not ended.
    pub fn is_active(&self) -> bool {
        !matches!(self.status, Status::Ended(_))
    }

    /// The timer, if one is set.
    pub fn timer(&self) -> Option<i64> {
        (self.wake_at_ms != NO_TIMER).then_some(self.wake_at_ms)
    }

    /// The variable data, created on first use.
    pub fn data_mut(&mut self) -> &mut EnrollmentData {
        self.data.get_or_insert_with(Box::default)
    }
}

/// Variable enrollment data, allocated only for journeys that read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentData {
    /// `journey.*`: `{"entered_at", "trigger", "steps": {"<step id>": {...}}}`.
    #[serde(default)]
    pub journey: Option<CachedJson>,
    /// `event.*` for decision splits: the entry event, then the last awaited event.
    #[serde(default)]
    pub current_event: Option<CachedJson>,
    /// Sends that an engagement split looks at.
    pub sends: Vec<SendRecord>,
    /// How often each step inside a loop was entered (the attempt in message ids).
    pub visits: Vec<StepVisits>,
}

/// A message an engagement split will ask about, and what the customer did with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRecord {
    pub step: StepIndex,
    pub attempt: u16,
    pub sent_at_ms: i64,
    pub opened_at_ms: Option<i64>,
    pub clicked_at_ms: Option<i64>,
    pub bounced_at_ms: Option<i64>,
}

impl SendRecord {
    /// When the engagement first happened (a click counts as an open).
    pub fn engaged_at(&self, engagement: Engagement) -> Option<i64> {
        match engagement {
            Engagement::Opened => match (self.opened_at_ms, self.clicked_at_ms) {
                (Some(opened), Some(clicked)) => Some(opened.min(clicked)),
                (opened, clicked) => opened.or(clicked),
            },
            Engagement::Clicked => self.clicked_at_ms,
            Engagement::Bounced => self.bounced_at_ms,
        }
    }

    /// Records an engagement (the first time of each kind is kept).
    pub fn record(&mut self, engagement: Engagement, at_ms: i64) {
        let slot = match engagement {
            Engagement::Opened => &mut self.opened_at_ms,
            Engagement::Clicked => &mut self.clicked_at_ms,
            Engagement::Bounced => &mut self.bounced_at_ms,
        };
        if slot.is_none_or(|existing| at_ms < existing) {
            *slot = Some(at_ms);
        }
    }
}

/// Entries into one step inside a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepVisits {
    pub step: StepIndex,
    pub count: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_fits_in_48_bytes() {
        assert!(std::mem::size_of::<Enrollment>() <= 48);
        assert_eq!(std::mem::size_of::<Enrollment>(), 40);
    }

    #[test]
    fn a_click_counts_as_an_open() {
        let mut record = SendRecord {
            step: StepIndex(1),
            attempt: 0,
            sent_at_ms: 0,
            opened_at_ms: None,
            clicked_at_ms: None,
            bounced_at_ms: None,
        };
        record.record(Engagement::Clicked, 50);
        assert_eq!(record.engaged_at(Engagement::Opened), Some(50));
        record.record(Engagement::Opened, 70);
        assert_eq!(record.engaged_at(Engagement::Opened), Some(50));
        assert_eq!(record.engaged_at(Engagement::Bounced), None);
    }
}
