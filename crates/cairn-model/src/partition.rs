//! Fixed virtual partitions.
//!
//! Every profile lives in exactly one of [`PARTITION_COUNT`] virtual partitions, derived from its id.
//! The number never changes (changing it would move every profile); a node owns a set of partitions,
//! so the single-node store and a future cluster share the same layout.

use crate::ProfileId;
use xxhash_rust::xxh3::xxh3_64;

/// The number of virtual partitions. Fixed forever: it is part of the on-disk layout.
pub const PARTITION_COUNT: u16 = 64;

/// A virtual partition number in `0..PARTITION_COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId(pub u16);

impl PartitionId {
    /// The partition that owns `profile`.
    pub fn of(profile: &ProfileId) -> Self {
        PartitionId((xxh3_64(&profile.0.to_le_bytes()) % u64::from(PARTITION_COUNT)) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        let id = ProfileId(0x0123);
        assert_eq!(PartitionId::of(&id), PartitionId::of(&ProfileId(0x0123)));
        let mut seen = [0u32; PARTITION_COUNT as usize];
        for n in 0..64_000u128 {
            let p = PartitionId::of(&ProfileId(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            assert!(p.0 < PARTITION_COUNT);
            seen[usize::from(p.0)] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 800),
            "partitions are balanced: {seen:?}"
        );
    }
}
