//! Trait merging: per top-level field, the value from the event with the latest timestamp wins.
//!
//! Nested objects are replaced as a whole. On a tie the value applied later wins, so replaying the same
//! input in the same order gives the same profile. `null` is a value like any other (it clears a trait).

use cairn_model::TraitSet;
use serde_json::{Map, Value};

/// Applies `incoming` traits, set by an event at `timestamp_ms`, onto `current`.
/// Returns whether anything changed (a value, or the time a field was last set).
pub fn apply_traits(
    current: &mut TraitSet,
    incoming: &Map<String, Value>,
    timestamp_ms: i64,
) -> bool {
    let mut changed = false;
    for (field, value) in incoming {
        let set_at = current.set_at.get(field).copied();
        if set_at.is_none_or(|set_at| timestamp_ms >= set_at) {
            if current.values.get(field) != Some(value) {
                current.values.insert(field.clone(), value.clone());
                changed = true;
            }
            if set_at != Some(timestamp_ms) {
                current.set_at.insert(field.clone(), timestamp_ms);
                changed = true;
            }
        }
    }
    changed
}

/// Merges the traits of a profile that is being merged away (`other`) into the survivor's.
pub fn merge_trait_sets(survivor: &mut TraitSet, other: &TraitSet) {
    for (field, value) in &other.values {
        let other_at = other.set_at.get(field).copied().unwrap_or(i64::MIN);
        let keep_survivor = survivor
            .set_at
            .get(field)
            .is_some_and(|set_at| *set_at >= other_at);
        if !keep_survivor {
            survivor.values.insert(field.clone(), value.clone());
            survivor.set_at.insert(field.clone(), other_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn traits(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn latest_event_time_wins_per_field_even_when_late() {
        let mut set = TraitSet::default();
        apply_traits(
            &mut set,
            &traits(json!({"plan": "pro", "city": "Oslo"})),
            2_000,
        );
        // A late event (older timestamp) arrives after: it may only fill fields it is newest for.
        apply_traits(
            &mut set,
            &traits(json!({"plan": "free", "name": "Ann"})),
            1_000,
        );
        assert_eq!(
            set.values,
            traits(json!({"plan": "pro", "city": "Oslo", "name": "Ann"}))
        );
        assert_eq!(set.set_at.get("name"), Some(&1_000));
        apply_traits(&mut set, &traits(json!({"city": "Bergen"})), 3_000);
        assert_eq!(set.values["city"], json!("Bergen"));
    }

    #[test]
    fn merging_profiles_keeps_the_newest_value_of_each_field() {
        let mut survivor = TraitSet::default();
        apply_traits(
            &mut survivor,
            &traits(json!({"plan": "pro", "city": "Oslo"})),
            5,
        );
        let mut other = TraitSet::default();
        apply_traits(
            &mut other,
            &traits(json!({"plan": "enterprise", "city": "Rome", "age": 40})),
            3,
        );
        apply_traits(&mut other, &traits(json!({"plan": "enterprise"})), 9);
        merge_trait_sets(&mut survivor, &other);
        assert_eq!(
            survivor.values,
            traits(json!({"plan": "enterprise", "city": "Oslo", "age": 40}))
        );
    }

    proptest! {
        /// Applying the same timestamped updates in any order gives the same values when timestamps
        /// are distinct: late events are handled, order of arrival does not matter.
        #[test]
        fn order_of_arrival_does_not_matter(mut updates in proptest::collection::vec((0..4usize, 0..1000i64, 0..5i64), 1..20)) {
            let fields = ["a", "b", "c", "d"];
            updates.sort_by_key(|u| u.1);
            updates.dedup_by_key(|u| u.1);
            let apply_all = |order: &[(usize, i64, i64)]| {
                let mut set = TraitSet::default();
                for (field, at, value) in order {
                    apply_traits(&mut set, &traits(json!({fields[*field]: value})), *at);
                }
                set
            };
            let forward = apply_all(&updates);
            let mut reversed = updates.clone();
            reversed.reverse();
            prop_assert_eq!(forward, apply_all(&reversed));
        }
    }
}
