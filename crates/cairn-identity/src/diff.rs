//! Dry-run diff between two resolutions of the same records (typically the current ruleset and a
//! proposed one): which profiles would merge and which would split, with sample records. Pure: the
//! server reuses it to preview "re-resolve the workspace after a rule change" before applying it.

use crate::batch::{profiles_of, resolve_batch, Progress};
use crate::compiled::CompiledRuleset;
use crate::record::{CanonicalRecord, RecordKey};
use crate::resolver::UnifiedId;
use crate::{Result, Ruleset};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Profiles of one side that become one profile, or one profile that becomes several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffGroup {
    /// Profiles before (one for a split, several for a merge).
    pub before: Vec<UnifiedId>,
    /// Profiles after (one for a merge, several for a split).
    pub after: Vec<UnifiedId>,
    /// How many records are involved.
    pub records: usize,
    /// Up to `samples` of those records.
    pub sample_records: Vec<RecordKey>,
}

/// The effect of going from one assignment of records to profiles to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolutionDiff {
    pub records: usize,
    pub profiles_before: usize,
    pub profiles_after: usize,
    pub merges: Vec<DiffGroup>,
    pub splits: Vec<DiffGroup>,
    /// Profiles whose records are exactly the same on both sides.
    pub unchanged_profiles: usize,
}

/// Compares two assignments of the same records (records present on one side only are ignored).
pub fn diff_assignments(
    before: &[(RecordKey, UnifiedId)],
    after: &[(RecordKey, UnifiedId)],
    samples: usize,
) -> ResolutionDiff {
    let after_by_key: BTreeMap<&RecordKey, &UnifiedId> =
        after.iter().map(|(key, id)| (key, id)).collect();
    let before_by_key: BTreeMap<&RecordKey, &UnifiedId> =
        before.iter().map(|(key, id)| (key, id)).collect();
    let before_profiles = profiles_of(before);
    let after_profiles = profiles_of(after);
    let mut merges = Vec::new();
    for (after_id, keys) in &after_profiles {
        let sources: BTreeSet<&UnifiedId> = keys
            .iter()
            .filter_map(|key| before_by_key.get(key).copied())
            .collect();
        if sources.len() > 1 {
            merges.push(DiffGroup {
                before: sources.into_iter().cloned().collect(),
                after: vec![after_id.clone()],
                records: keys.len(),
                sample_records: keys.iter().take(samples).cloned().collect(),
            });
        }
    }
    let mut splits = Vec::new();
    let mut unchanged = 0;
    for (before_id, keys) in &before_profiles {
        let targets: BTreeSet<&UnifiedId> = keys
            .iter()
            .filter_map(|key| after_by_key.get(key).copied())
            .collect();
        if targets.len() > 1 {
            splits.push(DiffGroup {
                before: vec![before_id.clone()],
                after: targets.into_iter().cloned().collect(),
                records: keys.len(),
                sample_records: keys.iter().take(samples).cloned().collect(),
            });
        } else if let Some(target) = targets.into_iter().next() {
            if after_profiles.get(target).map(Vec::len) == Some(keys.len()) {
                unchanged += 1;
            }
        }
    }
    ResolutionDiff {
        records: before.len().min(after.len()),
        profiles_before: before_profiles.len(),
        profiles_after: after_profiles.len(),
        merges,
        splits,
        unchanged_profiles: unchanged,
    }
}

/// Resolves the same records under two rulesets and compares the results.
pub fn diff_rulesets(
    records: Vec<CanonicalRecord>,
    current: Ruleset,
    proposed: Ruleset,
    samples: usize,
    progress: &dyn Fn(Progress),
) -> Result<ResolutionDiff> {
    let before = resolve_batch(
        Arc::new(CompiledRuleset::new(current)?),
        records.clone(),
        progress,
    )?;
    let after = resolve_batch(Arc::new(CompiledRuleset::new(proposed)?), records, progress)?;
    Ok(diff_assignments(
        &before.resolver.assignments(),
        &after.resolver.assignments(),
        samples,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(pairs: &[(&str, &str)]) -> Vec<(RecordKey, UnifiedId)> {
        pairs
            .iter()
            .map(|(key, id)| (RecordKey::new("s", *key), UnifiedId(id.to_string())))
            .collect()
    }

    #[test]
    fn merges_splits_and_unchanged_profiles_are_told_apart() {
        let before = assign(&[
            ("1", "a"),
            ("2", "a"),
            ("3", "b"),
            ("4", "c"),
            ("5", "c"),
            ("6", "d"),
        ]);
        let after = assign(&[
            ("1", "a"),
            ("2", "a"),
            ("3", "a"),
            ("4", "c"),
            ("5", "e"),
            ("6", "d"),
        ]);
        let diff = diff_assignments(&before, &after, 2);
        assert_eq!(diff.merges.len(), 1);
        assert_eq!(
            diff.merges[0].before,
            vec![UnifiedId("a".into()), UnifiedId("b".into())]
        );
        assert_eq!(diff.merges[0].sample_records.len(), 2);
        assert_eq!(diff.splits.len(), 1);
        assert_eq!(diff.splits[0].before, vec![UnifiedId("c".into())]);
        assert_eq!(diff.unchanged_profiles, 1, "only d is untouched");
        assert_eq!(diff_assignments(&before, &before, 1).merges.len(), 0);
    }
}
