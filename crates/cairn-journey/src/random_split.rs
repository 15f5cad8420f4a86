//! Random splits: a customer's bucket is a stable hash of (profile id, journey id, step id), so the same
//! customer always takes the same branch of the same split, across replays and engine restarts.

use xxhash_rust::xxh3::xxh3_64;

/// The customer's bucket in `0..100`.
pub fn bucket(profile_id: &str, journey_id: &str, step_id: &str) -> u8 {
    let mut key = Vec::with_capacity(profile_id.len() + journey_id.len() + step_id.len() + 2);
    key.extend_from_slice(profile_id.as_bytes());
    key.push(0);
    key.extend_from_slice(journey_id.as_bytes());
    key.push(0);
    key.extend_from_slice(step_id.as_bytes());
    // 100 divides 2^64 unevenly by a bias below 1e-17: negligible.
    u8::try_from(xxh3_64(&key) % 100).unwrap_or(0)
}

/// The branch whose cumulative weight range holds `bucket`; `upper_bounds` are the cumulative weights
/// (e.g. `[45, 90, 100]`).
pub fn branch_for_bucket(upper_bounds: &[u32], bucket: u8) -> usize {
    let bucket = u32::from(bucket);
    upper_bounds
        .iter()
        .position(|&upper| bucket < upper)
        .unwrap_or(upper_bounds.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread_evenly() {
        assert_eq!(
            bucket("prof_1", "welcome", "ab"),
            bucket("prof_1", "welcome", "ab")
        );
        let mut counts = [0u32; 3];
        for customer in 0..30_000 {
            let bucket = bucket(&format!("prof_{customer}"), "welcome", "ab");
            counts[branch_for_bucket(&[45, 90, 100], bucket)] += 1;
        }
        // 45% / 45% / 10% within one percentage point.
        assert!((13_200..=13_800).contains(&counts[0]), "{counts:?}");
        assert!((13_200..=13_800).contains(&counts[1]), "{counts:?}");
        assert!((2_700..=3_300).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn the_step_id_decorrelates_splits() {
        let same = (0..1000)
            .filter(|customer| {
                let profile = format!("prof_{customer}");
                bucket(&profile, "j", "first") == bucket(&profile, "j", "second")
            })
            .count();
        assert!(same < 50, "{same} of 1000 customers share buckets");
    }
}
