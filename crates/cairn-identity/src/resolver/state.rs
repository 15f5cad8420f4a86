//! The resolver's internal state types and the net-change computation behind every resolution.

use super::{ClusterIndex, EdgeIndex, RecordIndex};
use crate::features::PreparedRecord;
use crate::matching::LinkEvidence;
pub use crate::prehashed::PrehashedMap;
use crate::protection::{GroupFacts, Refusal};
use crate::record::{CanonicalRecord, RecordKey};
use crate::resolver::types::{Merge, Split, UnifiedId};
use std::collections::BTreeMap;

/// A loaded record.
pub struct RecordSlot {
    pub record: CanonicalRecord,
    pub prepared: PreparedRecord,
    /// First-upsert order; kept when the record changes. The oldest record anchors a profile's id.
    pub age: u64,
    pub cluster: ClusterIndex,
    /// Links touching this record (applied or refused).
    pub edges: Vec<EdgeIndex>,
    /// The blocking key values it is indexed under.
    pub candidate_keys: Vec<u64>,
    /// Whether a never-match constraint names this record.
    pub never_match: bool,
}

/// A link between two records.
pub struct Edge {
    /// The record whose upsert found the link.
    pub left: RecordIndex,
    pub right: RecordIndex,
    /// Global link order (replays follow it).
    pub order: u64,
    pub evidence: LinkEvidence,
    pub refusal: Option<Refusal>,
}

/// A profile: records joined by applied links.
pub struct Cluster {
    pub id: UnifiedId,
    pub members: Vec<RecordIndex>,
    pub oldest_age: u64,
    pub facts: GroupFacts,
}

/// The profile of every record a change may touch, captured before the change (first capture
/// wins).
#[derive(Default)]
pub struct BeforeState {
    ids: BTreeMap<RecordKey, UnifiedId>,
}

impl BeforeState {
    pub fn remember(&mut self, key: &RecordKey, id: &UnifiedId) {
        if !self.ids.contains_key(key) {
            self.ids.insert(key.clone(), id.clone());
        }
    }

    pub fn ids(&self) -> &BTreeMap<RecordKey, UnifiedId> {
        &self.ids
    }
}

/// Net merges and splits between two assignments of records to profiles. A profile whose records
/// all moved to one other profile merged into it; a profile whose records went to several profiles
/// split (one `Split` per profile other than its own).
pub fn net_changes(
    before: &BTreeMap<RecordKey, UnifiedId>,
    after: &BTreeMap<RecordKey, UnifiedId>,
) -> (Vec<Merge>, Vec<Split>) {
    let mut destinations: BTreeMap<&UnifiedId, BTreeMap<&UnifiedId, Vec<RecordKey>>> =
        BTreeMap::new();
    for (key, old) in before {
        if let Some(new) = after.get(key) {
            destinations
                .entry(old)
                .or_default()
                .entry(new)
                .or_default()
                .push(key.clone());
        }
    }
    let mut merges = Vec::new();
    let mut splits = Vec::new();
    for (old, targets) in destinations {
        if targets.len() == 1 {
            if let Some((&new, _)) = targets.iter().next() {
                if new != old {
                    merges.push(Merge {
                        from: old.clone(),
                        into: new.clone(),
                    });
                }
            }
            continue;
        }
        for (new, records) in targets {
            if new != old {
                splits.push(Split {
                    from: old.clone(),
                    into: new.clone(),
                    records,
                });
            }
        }
    }
    merges.sort();
    splits.sort();
    (merges, splits)
}
