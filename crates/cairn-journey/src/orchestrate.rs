//! Per-profile orchestration: one input for one profile, across every published journey and every
//! enrollment of that profile. The engine and the simulator both call [`handle`], so there is one
//! implementation of "what happens when this customer does that".
//!
//! On an event: enrollments whose journey cares about the event name get it (goals and exit criteria
//! first, then waits for that event and engagement feedback); then event-triggered journeys decide
//! entries (entry filter and re-entry rule against the profile's history). An event no journey cares
//! about costs one hash lookup per journey set.

use crate::compiled::{CompiledEntry, ReEntryRule};
use crate::effects::Effects;
use crate::enrollment::Enrollment;
use crate::event::{DeliveryResult, Event};
use crate::ids::{EnrollmentId, JourneyKey};
use crate::runtime::{apply, Context, Evaluation, Input, LiveJourney};
use serde_json::Value;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::profile_journeys::{EntryHistory, OptionalMs, ProfileJourneys};

/// The published journeys with the indexes that route inputs to them.
#[derive(Debug, Clone, Default)]
pub struct JourneySet {
    journeys: Vec<LiveJourney>,
    by_key: HashMap<JourneyKey, usize>,
    /// Event name → journeys whose enrollments or entries care about it.
    by_event: HashMap<Arc<str>, SmallVec<[usize; 4]>>,
    /// Journeys with a goal or exit checked on every event.
    on_any_event: SmallVec<[usize; 4]>,
}

impl JourneySet {
    /// Indexes the journeys (keys must be unique; a later duplicate replaces an earlier one).
    pub fn new(journeys: Vec<LiveJourney>) -> JourneySet {
        let mut set = JourneySet {
            journeys,
            ..JourneySet::default()
        };
        set.reindex();
        set
    }

    fn reindex(&mut self) {
        self.by_key.clear();
        self.by_event.clear();
        self.on_any_event.clear();
        for (position, live) in self.journeys.iter().enumerate() {
            self.by_key.insert(live.key, position);
            for name in &live.journey.index.event_names {
                self.by_event
                    .entry(name.clone())
                    .or_default()
                    .push(position);
            }
            if live.journey.index.criteria_on_any_event {
                self.on_any_event.push(position);
            }
        }
    }

    /// The journey with this key.
    pub fn get(&self, key: JourneyKey) -> Option<&LiveJourney> {
        self.by_key
            .get(&key)
            .map(|&position| &self.journeys[position])
    }

    /// Every journey.
    pub fn journeys(&self) -> &[LiveJourney] {
        &self.journeys
    }

    /// Retires a version (a newer one takes the entries, or the journey stopped); false if unknown.
    pub fn set_retired(&mut self, key: JourneyKey) -> bool {
        match self.by_key.get(&key) {
            Some(&position) => {
                self.journeys[position].retired = true;
                true
            }
            None => false,
        }
    }

    /// Adds a published version (or replaces the one with the same key) and reindexes.
    pub fn insert(&mut self, live: LiveJourney) {
        match self.by_key.get(&live.key) {
            Some(&position) => self.journeys[position] = live,
            None => self.journeys.push(live),
        }
        self.reindex();
    }

    /// Removes a version that no enrollment uses any more; false if unknown.
    pub fn remove(&mut self, key: JourneyKey) -> bool {
        let before = self.journeys.len();
        self.journeys.retain(|live| live.key != key);
        let removed = self.journeys.len() != before;
        if removed {
            self.reindex();
        }
        removed
    }

    /// Pauses or resumes a journey; false if unknown.
    pub fn set_paused(&mut self, key: JourneyKey, paused: bool) -> bool {
        match self.by_key.get(&key) {
            Some(&position) => {
                self.journeys[position].paused = paused;
                true
            }
            None => false,
        }
    }

    /// Whether any journey cares about events with this name.
    pub fn cares_about(&self, event_name: &str) -> bool {
        !self.on_any_event.is_empty() || self.by_event.contains_key(event_name)
    }

    fn journeys_for_event(&self, event_name: &str) -> impl Iterator<Item = usize> + '_ {
        self.by_event
            .get(event_name)
            .into_iter()
            .flatten()
            .chain(self.on_any_event.iter())
            .copied()
    }
}

/// An input for one profile.
#[derive(Debug, Clone, Copy)]
pub enum ProfileInput<'a> {
    /// An event of the profile (stored before it is handed here).
    Event(&'a Event),
    /// An enrollment's timer is due.
    Timer { enrollment: EnrollmentId },
    /// A delivery result for an awaited message.
    DeliveryResult(&'a DeliveryResult),
    /// The profile joined an audience.
    AudienceJoined { audience: &'a str },
    /// The profile left an audience (its attributes changed): profile-only goals and exits are checked.
    AudienceLeft { audience: &'a str },
    /// A schedule entry fired and the profile is in its audience.
    ScheduleFired { journey: JourneyKey },
    /// Enroll by API call, with optional data (`journey.trigger`).
    EnrollByApi {
        journey: JourneyKey,
        data: Option<&'a Value>,
    },
    /// The profile's attributes changed: profile-only goals and exits are checked.
    ProfileChanged,
    /// The journey was stopped: its enrollments end with `stopped`.
    JourneyStopped {
        journey: JourneyKey,
        reason: &'a str,
    },
    /// The journey resumed (already marked not paused in the set): held enrollments continue.
    JourneyResumed { journey: JourneyKey },
}

/// Where new enrollment ids come from (the engine's per-partition sequence, a counter in tests).
pub trait EnrollmentIds {
    fn next_enrollment_id(&mut self) -> EnrollmentId;
}

/// Ids 1, 2, 3, … (simulator and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequentialIds {
    pub next: u64,
}

impl Default for SequentialIds {
    fn default() -> Self {
        SequentialIds { next: 1 }
    }
}

impl EnrollmentIds for SequentialIds {
    fn next_enrollment_id(&mut self) -> EnrollmentId {
        let id = EnrollmentId(self.next);
        self.next += 1;
        id
    }
}

/// Why a customer did not enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryRefusal {
    UnknownJourney,
    /// A newer version takes the entries, or the journey was stopped.
    Retired,
    Paused,
    /// `once`: entered before.
    AlreadyEntered,
    /// `after_exit` / `after_cool_down`: still enrolled.
    StillEnrolled,
    /// `after_cool_down`: too soon after the last entry.
    CoolingDown,
    /// The entry filter did not match.
    FilterNotMet,
}

/// Handles one input for one profile, appending every effect to `effects`.
pub fn handle(
    journeys: &JourneySet,
    profile: &mut ProfileJourneys,
    input: ProfileInput<'_>,
    context: &mut Context<'_>,
    ids: &mut dyn EnrollmentIds,
    effects: &mut Effects,
) {
    match input {
        ProfileInput::Event(event) => {
            if !journeys.cares_about(&event.name) {
                return;
            }
            let existing = profile.enrollments.len();
            for position in 0..existing {
                let key = profile.enrollments[position].journey;
                let Some(live) = journeys.get(key) else {
                    continue;
                };
                if live.journey.index.cares_about(&event.name) {
                    apply(
                        live,
                        &mut profile.enrollments[position],
                        Input::Event(event),
                        context,
                        effects,
                    );
                }
            }
            let mut seen = SmallVec::<[usize; 4]>::new();
            for position in journeys.journeys_for_event(&event.name) {
                if seen.contains(&position) {
                    continue;
                }
                seen.push(position);
                let live = &journeys.journeys[position];
                if live.journey.index.entry_event.as_deref() == Some(event.name.as_str()) {
                    let _ = try_enter(
                        journeys,
                        live,
                        profile,
                        EntryTrigger::event(event),
                        context,
                        ids,
                        effects,
                    );
                }
            }
        }
        ProfileInput::Timer { enrollment } => {
            if let Some(position) = profile
                .enrollments
                .iter()
                .position(|candidate| candidate.id == enrollment)
            {
                if let Some(live) = journeys.get(profile.enrollments[position].journey) {
                    apply(
                        live,
                        &mut profile.enrollments[position],
                        Input::Timer,
                        context,
                        effects,
                    );
                }
            }
        }
        ProfileInput::DeliveryResult(result) => {
            if let Some(position) = profile
                .enrollments
                .iter()
                .position(|candidate| candidate.id == result.message_id.enrollment)
            {
                if let Some(live) = journeys.get(profile.enrollments[position].journey) {
                    apply(
                        live,
                        &mut profile.enrollments[position],
                        Input::DeliveryResult(result),
                        context,
                        effects,
                    );
                }
            }
        }
        ProfileInput::AudienceJoined { audience } => {
            check_profile_criteria(journeys, profile, context, effects);
            for live in journeys.journeys() {
                if matches!(&live.journey.entry, CompiledEntry::Audience { audience: entry, .. } if **entry == *audience)
                {
                    let _ = try_enter(
                        journeys,
                        live,
                        profile,
                        EntryTrigger::default(),
                        context,
                        ids,
                        effects,
                    );
                }
            }
        }
        ProfileInput::AudienceLeft { .. } | ProfileInput::ProfileChanged => {
            check_profile_criteria(journeys, profile, context, effects);
        }
        ProfileInput::ScheduleFired { journey } => {
            if let Some(live) = journeys.get(journey) {
                let _ = try_enter(
                    journeys,
                    live,
                    profile,
                    EntryTrigger::default(),
                    context,
                    ids,
                    effects,
                );
            }
        }
        ProfileInput::EnrollByApi { journey, data } => {
            if let Some(live) = journeys.get(journey) {
                let _ = try_enter(
                    journeys,
                    live,
                    profile,
                    EntryTrigger { event: None, data },
                    context,
                    ids,
                    effects,
                );
            }
        }
        ProfileInput::JourneyStopped { journey, reason } => {
            if let Some(live) = journeys.get(journey) {
                for enrollment in profile
                    .enrollments
                    .iter_mut()
                    .filter(|enrollment| enrollment.journey == journey)
                {
                    apply(live, enrollment, Input::Stop { reason }, context, effects);
                }
            }
        }
        ProfileInput::JourneyResumed { journey } => {
            if let Some(live) = journeys.get(journey) {
                for enrollment in profile
                    .enrollments
                    .iter_mut()
                    .filter(|enrollment| enrollment.journey == journey)
                {
                    apply(live, enrollment, Input::Resume, context, effects);
                }
            }
        }
    }
    retire_ended(journeys, profile, context.now_ms);
}

/// Profile-only goals and exits of every active enrollment (after an attribute change).
fn check_profile_criteria(
    journeys: &JourneySet,
    profile: &mut ProfileJourneys,
    context: &mut Context<'_>,
    effects: &mut Effects,
) {
    for enrollment in profile.enrollments.iter_mut() {
        let Some(live) = journeys.get(enrollment.journey) else {
            continue;
        };
        if live.journey.index.criteria_on_profile {
            crate::runtime::check_profile_criteria(live, enrollment, context, effects);
        }
    }
}

/// Removes ended enrollments, folding each into its journey's entry history.
fn retire_ended(journeys: &JourneySet, profile: &mut ProfileJourneys, now_ms: i64) {
    if profile.enrollments.iter().all(Enrollment::is_active) {
        return;
    }
    let ended: SmallVec<[Enrollment; 2]> = profile
        .enrollments
        .extract_if(.., |enrollment| !enrollment.is_active())
        .collect();
    if profile.enrollments.is_empty() {
        // Give the buffer back: most profiles spend most of their time in no journey.
        profile.enrollments = Vec::new();
    }
    for enrollment in &ended {
        profile.record_ended(journeys, enrollment, now_ms);
    }
}

/// What an entry carries: the trigger event or API data (`journey.trigger`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryTrigger<'a> {
    pub event: Option<&'a Event>,
    pub data: Option<&'a Value>,
}

impl<'a> EntryTrigger<'a> {
    /// An entry triggered by an event.
    pub fn event(event: &'a Event) -> EntryTrigger<'a> {
        EntryTrigger {
            event: Some(event),
            data: None,
        }
    }
}

/// Decides and performs one entry: re-entry rule, entry filter, then the enrollment runs from its
/// start step. Returns the new enrollment's id.
pub fn try_enter(
    journeys: &JourneySet,
    live: &LiveJourney,
    profile: &mut ProfileJourneys,
    trigger: EntryTrigger<'_>,
    context: &mut Context<'_>,
    ids: &mut dyn EnrollmentIds,
    effects: &mut Effects,
) -> Result<EnrollmentId, EntryRefusal> {
    let journey = &live.journey;
    if live.retired {
        return Err(EntryRefusal::Retired);
    }
    if live.paused {
        return Err(EntryRefusal::Paused);
    }
    let now = context.now_ms;
    let enrolled = profile.enrollments.iter().any(|enrollment| {
        enrollment.is_active()
            && journeys
                .get(enrollment.journey)
                .map_or(enrollment.journey == live.key, |other| {
                    other.journey.id == journey.id
                })
    });
    let history = profile.history_of(journeys, &journey.id);
    match journey.re_entry {
        ReEntryRule::Once if history.is_some_and(|history| history.entries > 0) => {
            return Err(EntryRefusal::AlreadyEntered);
        }
        ReEntryRule::AfterExit if enrolled => return Err(EntryRefusal::StillEnrolled),
        ReEntryRule::AfterCoolDown { .. } if enrolled => return Err(EntryRefusal::StillEnrolled),
        ReEntryRule::AfterCoolDown { cool_down_ms } => {
            if let Some(history) = history.filter(|history| history.entries > 0) {
                if now < history.last_entered_at_ms.saturating_add(cool_down_ms) {
                    return Err(EntryRefusal::CoolingDown);
                }
            }
        }
        _ => {}
    }
    if let Some(filter) = journey.entry.filter() {
        let evaluation = Evaluation {
            now_ms: now,
            profile: context.profile,
            event: trigger.event.map(|event| &event.message),
            journey: None,
            history: context.history,
        };
        if !filter.matches(&evaluation) {
            return Err(EntryRefusal::FilterNotMet);
        }
    }
    let id = ids.next_enrollment_id();
    let mut enrollment = Enrollment::new(id, live.key, journey.start, now);
    apply(
        live,
        &mut enrollment,
        Input::Enter {
            trigger: trigger.event,
            data: trigger.data,
        },
        context,
        effects,
    );
    if enrollment.is_active() {
        profile.add_enrollment(enrollment);
    } else {
        profile.record_ended(journeys, &enrollment, now);
    }
    Ok(id)
}
