//! One profile's journey state: its active enrollments and, per journey, the entries that ended.
//!
//! An active enrollment is its own record of entry (journey and time), so the stored entry history
//! keeps only enrollments that ended: a waiting enrollment costs no history record, and millions
//! wait. [`ProfileJourneys::history_of`] counts the profile's enrollments on top of the stored
//! record, which is what re-entry rules and the API read; an enrollment that ends is folded into
//! the record ([`ProfileJourneys::record_ended`]). Checkpoints written before counted enrollments
//! in the record from their entry; [`ProfileJourneys::uncount_enrollments`] converts them.

use crate::enrollment::Enrollment;
use crate::journey_name::JourneyName;
use crate::orchestrate::JourneySet;

/// One profile's journey state: enrollments and the entry history for re-entry rules.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProfileJourneys {
    /// Active (waiting or held) enrollments; ended ones are removed by [`crate::handle`].
    pub enrollments: Vec<Enrollment>,
    /// Per journey id (across versions): entries that ended. Read it through
    /// [`ProfileJourneys::history_of`], which adds the enrollments.
    pub history: Vec<EntryHistory>,
}

impl ProfileJourneys {
    /// The entry history of a journey id: the ended entries with the profile's enrollments in that
    /// journey (any version) on top; `None` if the profile never entered it.
    pub fn history_of(&self, journeys: &JourneySet, journey_id: &str) -> Option<EntryHistory> {
        let stored = JourneyName::lookup(journey_id).and_then(|name| {
            self.history
                .iter()
                .find(|history| history.journey_id == name)
        });
        let mut summary = stored.copied();
        for enrollment in &self.enrollments {
            let in_journey = journeys
                .get(enrollment.journey)
                .is_some_and(|live| &*live.journey.id == journey_id);
            if in_journey {
                let history = summary.get_or_insert_with(|| EntryHistory::none(journey_id));
                history.entries = history.entries.saturating_add(1);
                history.last_entered_at_ms =
                    history.last_entered_at_ms.max(enrollment.entered_at_ms);
            }
        }
        summary
    }

    /// The entry history of every journey the profile entered, as [`ProfileJourneys::history_of`]
    /// reads it: stored records first, then journeys only enrollments are in.
    pub fn histories(&self, journeys: &JourneySet) -> Vec<EntryHistory> {
        let mut ids: Vec<std::sync::Arc<str>> = self
            .history
            .iter()
            .map(|history| history.journey_id.text())
            .collect();
        for enrollment in &self.enrollments {
            if let Some(live) = journeys.get(enrollment.journey) {
                if !ids.contains(&live.journey.id) {
                    ids.push(live.journey.id.clone());
                }
            }
        }
        ids.iter()
            .filter_map(|id| self.history_of(journeys, id))
            .collect()
    }

    /// Adds an active enrollment.
    pub fn add_enrollment(&mut self, enrollment: Enrollment) {
        push_exact(&mut self.enrollments, enrollment);
    }

    /// Folds an enrollment that ended at `now_ms` (and is no longer in the list) into its journey's
    /// history.
    pub fn record_ended(&mut self, journeys: &JourneySet, enrollment: &Enrollment, now_ms: i64) {
        let Some(live) = journeys.get(enrollment.journey) else {
            return;
        };
        self.add_entries(EntryHistory {
            journey_id: JourneyName::intern(&live.journey.id),
            entries: 1,
            last_entered_at_ms: enrollment.entered_at_ms,
            last_ended_at_ms: Some(now_ms).into(),
        });
    }

    /// Converts a history written when records counted enrollments from their entry (checkpoints
    /// before this form): each enrollment's entry leaves its record, and a record left with no
    /// entries goes.
    pub fn uncount_enrollments(&mut self, journeys: &JourneySet) {
        for enrollment in &self.enrollments {
            let Some(name) = journeys
                .get(enrollment.journey)
                .and_then(|live| JourneyName::lookup(&live.journey.id))
            else {
                continue;
            };
            if let Some(history) = self
                .history
                .iter_mut()
                .find(|history| history.journey_id == name)
            {
                history.entries = history.entries.saturating_sub(1);
            }
        }
        self.history.retain(|history| history.entries > 0);
    }

    /// Adds another profile's ended entries (a merge).
    pub fn absorb_history(&mut self, other: Vec<EntryHistory>) {
        for theirs in other {
            self.add_entries(theirs);
        }
    }

    /// Adds entries into one journey to its stored record: counts add up, times widen.
    pub fn add_entries(&mut self, theirs: EntryHistory) {
        match self
            .history
            .iter_mut()
            .find(|ours| ours.journey_id == theirs.journey_id)
        {
            Some(ours) => {
                ours.entries = ours.entries.saturating_add(theirs.entries);
                ours.last_entered_at_ms = ours.last_entered_at_ms.max(theirs.last_entered_at_ms);
                ours.last_ended_at_ms = ours.last_ended_at_ms.max(theirs.last_ended_at_ms);
            }
            None => push_exact(&mut self.history, theirs),
        }
    }
}

/// Pushes with room for exactly one more item when full: a profile's lists stay short (a few
/// enrollments, one history entry per journey), and millions of profiles each keeping room for
/// four would cost more than the items.
fn push_exact<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(1);
    }
    list.push(item);
}

/// A profile's entries into one journey (24 bytes). The journey id is interned ([`JourneyName`])
/// and written as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryHistory {
    pub journey_id: JourneyName,
    pub entries: u32,
    pub last_entered_at_ms: i64,
    pub last_ended_at_ms: OptionalMs,
}

impl EntryHistory {
    /// No entries yet.
    fn none(journey_id: &str) -> EntryHistory {
        EntryHistory {
            journey_id: JourneyName::intern(journey_id),
            entries: 0,
            last_entered_at_ms: i64::MIN,
            last_ended_at_ms: OptionalMs::NONE,
        }
    }
}

/// An optional instant (ms) in 8 bytes where `Option<i64>` takes 16: `i64::MIN` stands for none,
/// so it orders like the `Option` (none first). Written as an optional number, as the `Option` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OptionalMs(i64);

impl OptionalMs {
    /// No instant.
    pub const NONE: OptionalMs = OptionalMs(i64::MIN);

    /// The instant, if any.
    pub fn get(self) -> Option<i64> {
        (self != OptionalMs::NONE).then_some(self.0)
    }
}

impl From<Option<i64>> for OptionalMs {
    fn from(instant: Option<i64>) -> OptionalMs {
        instant.map_or(OptionalMs::NONE, OptionalMs)
    }
}

impl serde::Serialize for OptionalMs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for OptionalMs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<i64>::deserialize(deserializer).map(OptionalMs::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_history_fits_in_24_bytes_and_reads_its_older_form() {
        assert_eq!(std::mem::size_of::<EntryHistory>(), 24);
        let history = EntryHistory {
            journey_id: "welcome".into(),
            entries: 2,
            last_entered_at_ms: 5,
            last_ended_at_ms: OptionalMs::NONE,
        };
        let text = serde_json::to_string(&history).expect("json");
        assert_eq!(
            text,
            r#"{"journey_id":"welcome","entries":2,"last_entered_at_ms":5,"last_ended_at_ms":null}"#
        );
        assert_eq!(
            serde_json::from_str::<EntryHistory>(&text).ok(),
            Some(history)
        );
        let ended = EntryHistory {
            last_ended_at_ms: Some(9).into(),
            ..history
        };
        let text = serde_json::to_string(&ended).expect("json");
        assert!(text.ends_with(r#""last_ended_at_ms":9}"#), "{text}");
        assert_eq!(
            serde_json::from_str::<EntryHistory>(&text).ok(),
            Some(ended)
        );
        // Ordered like the Option it replaced: none first.
        assert!(OptionalMs::NONE < OptionalMs::from(Some(i64::MIN + 1)));
        assert_eq!(
            OptionalMs::from(Some(3)).max(OptionalMs::NONE).get(),
            Some(3)
        );
    }

    #[test]
    fn lists_grow_by_exactly_one() {
        let mut list: Vec<u64> = Vec::new();
        for item in 0..5 {
            push_exact(&mut list, item);
            assert_eq!(list.capacity(), list.len());
        }
    }
}
