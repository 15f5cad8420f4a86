//! Merge protection between two groups of records about to become one profile: the maximum cluster
//! size, per-identifier limits and administrators' "never match" constraints. (Blocked values are
//! removed when records are prepared; hubs are handled by the resolver's value index.)

use crate::compiled::CompiledRuleset;
use crate::features::PreparedRecord;
use serde::{Deserialize, Serialize};

/// Why a link was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The merged profile would have more records than `max_cluster_size`.
    MaxClusterSize { size: usize, max: usize },
    /// The merged profile would hold more distinct values of `identifier` than allowed.
    IdentifierLimit {
        identifier: String,
        max: usize,
        would_have: usize,
    },
    /// An administrator said these two records are never the same person.
    NeverMatch { left: String, right: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::MaxClusterSize { size, max } => write!(
                formatter,
                "the profile would have {size} records (max_cluster_size {max})"
            ),
            Refusal::IdentifierLimit {
                identifier,
                max,
                would_have,
            } => write!(
                formatter,
                "the profile would hold {would_have} distinct {identifier} values (limit {max})"
            ),
            Refusal::NeverMatch { left, right } => {
                write!(formatter, "{left} and {right} are marked never-match")
            }
        }
    }
}

/// What protection needs to know about a group: its size and, per limit, the sorted distinct value
/// ids of the limited identifier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFacts {
    pub size: usize,
    pub limit_values: Vec<Vec<u64>>,
}

impl GroupFacts {
    /// The facts of a single record.
    pub fn of_record(compiled: &CompiledRuleset, record: &PreparedRecord) -> GroupFacts {
        GroupFacts {
            size: 1,
            limit_values: compiled
                .limits
                .iter()
                .map(|limit| {
                    let mut ids: Vec<u64> = record
                        .values(limit.slot)
                        .iter()
                        .map(|value| value.id)
                        .collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids
                })
                .collect(),
        }
    }

    /// Folds `other` into `self`.
    pub fn absorb(&mut self, other: &GroupFacts) {
        self.size += other.size;
        for (mine, theirs) in self.limit_values.iter_mut().zip(&other.limit_values) {
            mine.extend_from_slice(theirs);
            mine.sort_unstable();
            mine.dedup();
        }
    }
}

/// Checks size and limits for merging two groups (never-match is checked by the caller, which
/// knows the members).
pub fn check_merge(
    compiled: &CompiledRuleset,
    left: &GroupFacts,
    right: &GroupFacts,
) -> Result<(), Refusal> {
    let size = left.size + right.size;
    if let Some(max) = compiled.ruleset.protection.max_cluster_size {
        if size > max {
            return Err(Refusal::MaxClusterSize { size, max });
        }
    }
    for (index, limit) in compiled.limits.iter().enumerate() {
        let (mine, theirs) = (&left.limit_values[index], &right.limit_values[index]);
        if mine.len() + theirs.len() <= limit.max {
            continue;
        }
        let distinct = mine.len()
            + theirs
                .iter()
                .filter(|id| mine.binary_search(id).is_err())
                .count();
        if distinct > limit.max {
            return Err(Refusal::IdentifierLimit {
                identifier: limit.field.to_string(),
                max: limit.max,
                would_have: distinct,
            });
        }
    }
    Ok(())
}
