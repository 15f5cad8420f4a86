//! Profile merges (the identity seam): two profiles' enrollments become one profile's, by a documented
//! rule, never doubling a message.
//!
//! Rule: for each journey (by journey id, across versions) in which both profiles are enrolled, the
//! enrollment that entered first survives (ties: the lower enrollment id) and the other ends with
//! `merged`. Journeys with `concurrent` re-entry keep both. Enrollment ids do not change, so message
//! ids (derived from them) do not either: nothing already sent is sent again. Entry histories add up.

use crate::compiled::ReEntryRule;
use crate::effects::{Effects, EndDetail};
use crate::enrollment::EndReason;
use crate::orchestrate::{JourneySet, ProfileJourneys};
use crate::runtime::end_enrollment;
use std::sync::Arc;

/// Merges `absorbed` into `survivor`, ending duplicate enrollments as `merged`.
pub fn merge_profiles(
    journeys: &JourneySet,
    survivor: &mut ProfileJourneys,
    absorbed: ProfileJourneys,
    now_ms: i64,
    effects: &mut Effects,
) {
    let journey_id_of =
        |key| -> Option<Arc<str>> { journeys.get(key).map(|live| live.journey.id.clone()) };
    for mut incoming in absorbed.enrollments {
        if !incoming.is_active() {
            continue;
        }
        let incoming_id = journey_id_of(incoming.journey);
        let concurrent = journeys
            .get(incoming.journey)
            .is_some_and(|live| live.journey.re_entry == ReEntryRule::Concurrent);
        let rival = (!concurrent)
            .then(|| {
                survivor.enrollments.iter().position(|existing| {
                    existing.is_active()
                        && match (&incoming_id, journey_id_of(existing.journey)) {
                            (Some(incoming), Some(existing_id)) => *incoming == existing_id,
                            _ => existing.journey == incoming.journey,
                        }
                })
            })
            .flatten();
        match rival {
            None => survivor.enrollments.push(incoming),
            Some(position) => {
                let existing = &mut survivor.enrollments[position];
                let incoming_first =
                    (incoming.entered_at_ms, incoming.id) < (existing.entered_at_ms, existing.id);
                let (loser, winner_id) = if incoming_first {
                    let winner_id = incoming.id;
                    std::mem::swap(existing, &mut incoming);
                    (&mut incoming, winner_id)
                } else {
                    (&mut incoming, existing.id)
                };
                if let Some(live) = journeys.get(loser.journey) {
                    end_enrollment(
                        live,
                        loser,
                        EndReason::Merged,
                        EndDetail::MergedInto(winner_id),
                        now_ms,
                        effects,
                    );
                }
            }
        }
    }
    for history in absorbed.history {
        match survivor
            .history
            .iter_mut()
            .find(|existing| existing.journey_id == history.journey_id)
        {
            Some(existing) => {
                existing.entries = existing.entries.saturating_add(history.entries);
                existing.last_entered_at_ms =
                    existing.last_entered_at_ms.max(history.last_entered_at_ms);
                existing.last_ended_at_ms = existing.last_ended_at_ms.max(history.last_ended_at_ms);
            }
            None => survivor.history.push(history),
        }
    }
}
