//! Profile merges (the identity seam): two profiles' enrollments become one profile's, by a documented
//! rule, never doubling a message.
//!
//! Rule: for each journey (by journey id, across versions) in which both profiles are enrolled, the
//! enrollment that entered first survives (ties: the lower enrollment id) and the other ends with
//! `merged`. Journeys with `concurrent` re-entry keep both. Enrollment ids do not change, so message
//! ids (derived from them) do not either: nothing already sent is sent again. Entry histories add up
//! (the enrollment that ended counts as an entry that ended).

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
            survivor.record_ended(journeys, &incoming, now_ms);
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
            None => survivor.add_enrollment(incoming),
            Some(position) => {
                let existing = &mut survivor.enrollments[position];
                let incoming_first =
                    (incoming.entered_at_ms, incoming.id) < (existing.entered_at_ms, existing.id);
                if incoming_first {
                    std::mem::swap(existing, &mut incoming);
                }
                let winner_id = existing.id;
                let loser = &mut incoming;
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
                survivor.record_ended(journeys, loser, now_ms);
            }
        }
    }
    survivor.absorb_history(absorbed.history);
}
