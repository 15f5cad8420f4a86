//! The resolver's public result types: unified ids, resolutions (what one change did), hubs.

use crate::matching::{CriterionOutcome, RuleOutcome};
use crate::protection::Refusal;
use crate::record::RecordKey;
use serde::{Deserialize, Serialize};

/// A unified (profile) id: `uid_` and 32 hex digits of xxh3-128 of the record key that founded it.
/// Stable by the rules in `docs/identity.md`: a merge keeps the id of the cluster holding the oldest
/// record; a split keeps it on the side with the oldest record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnifiedId(pub String);

impl UnifiedId {
    /// The id a cluster founded by `key` gets (`salt` > 0 only on a collision).
    pub fn derive(key: &RecordKey, salt: u32) -> UnifiedId {
        let mut bytes = Vec::with_capacity(key.source.len() + key.source_id.len() + 8);
        bytes.extend_from_slice(key.source.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(key.source_id.as_bytes());
        if salt > 0 {
            bytes.extend_from_slice(&salt.to_le_bytes());
        }
        UnifiedId(format!("uid_{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UnifiedId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A profile that disappeared into another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Merge {
    pub from: UnifiedId,
    pub into: UnifiedId,
}

/// Records that left a profile for a new (or re-created) one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Split {
    pub from: UnifiedId,
    pub into: UnifiedId,
    pub records: Vec<RecordKey>,
}

/// A link between two records that a change created, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub left: RecordKey,
    pub right: RecordKey,
    pub rule: String,
    /// Per criterion: the score (`-1` for a blank that matches anything).
    pub scores: Vec<f32>,
    /// `None` if applied; the reason otherwise.
    pub refused: Option<Refusal>,
}

/// A hub: a value too many records share to be evidence of one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hub {
    pub field: String,
    pub value: String,
    pub records: usize,
}

/// What one change (upsert, remove, un-merge) did. Merges and splits are the net effect of the
/// change, sorted, so the engine can move enrollments and counters accordingly.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resolution {
    pub record: Option<RecordKey>,
    /// The record's profile after the change (`None` after a removal).
    pub unified_id: Option<UnifiedId>,
    pub merged: Vec<Merge>,
    pub split: Vec<Split>,
    /// Links the change created (applied or refused).
    pub links: Vec<LinkView>,
    /// Values that became hubs during the change.
    pub new_hubs: Vec<Hub>,
    /// False when the change was a no-op (the same record again).
    pub changed: bool,
}

/// One applied link on the path between two records, with every criterion of its rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathLink {
    pub left: RecordKey,
    pub right: RecordKey,
    pub rule: String,
    pub criteria: Vec<CriterionOutcome>,
}

/// Why two records are (or are not) one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub left: RecordKey,
    pub right: RecordKey,
    pub left_unified_id: UnifiedId,
    pub right_unified_id: UnifiedId,
    pub same_profile: bool,
    /// The shortest chain of applied links from left to right (empty if not one profile).
    pub path: Vec<PathLink>,
    /// Every rule evaluated directly between the two records.
    pub direct: Vec<RuleOutcome>,
    /// Links between the two records' profiles that protection refused.
    pub refused: Vec<LinkView>,
    pub never_match: bool,
    /// Hub values the two records share (not used for matching).
    pub shared_hubs: Vec<Hub>,
}
