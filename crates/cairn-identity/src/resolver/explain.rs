//! `explain(a, b)`: why two records are (or are not) one person — the chain of applied links with
//! every criterion's values and scores, the direct evaluation of every rule, refused links,
//! never-match constraints and shared hub values.

use super::state::Edge;
use super::types::{Explanation, Hub, LinkView, PathLink};
use super::{RecordIndex, Resolver};
use crate::matching::explain_rules;
use crate::record::RecordKey;
use crate::Result;
use std::collections::{BTreeSet, HashMap, VecDeque};

impl Resolver {
    /// Explains the relation between two loaded records.
    pub fn explain(&self, left: &RecordKey, right: &RecordKey) -> Result<Explanation> {
        let left_index = self.index_of(left)?;
        let right_index = self.index_of(right)?;
        let left_slot = self.slot(left_index);
        let right_slot = self.slot(right_index);
        let same_profile = left_slot.cluster == right_slot.cluster;
        let is_hub = |id: u64| self.is_hub(id);
        let path = if same_profile {
            self.applied_path(left_index, right_index)
                .into_iter()
                .map(|edge| self.path_link(edge))
                .collect()
        } else {
            Vec::new()
        };
        let direct = explain_rules(
            &self.compiled,
            &left_slot.prepared,
            &right_slot.prepared,
            &is_hub,
        );
        let refused = self.refused_between(left_slot.cluster, right_slot.cluster);
        let never_match = self
            .never_match
            .get(left)
            .is_some_and(|partners| partners.contains(right));
        let left_values: BTreeSet<u64> = left_slot
            .prepared
            .values
            .iter()
            .flatten()
            .map(|value| value.id)
            .collect();
        let mut shared_hubs: Vec<Hub> = right_slot
            .prepared
            .values
            .iter()
            .flatten()
            .filter(|value| left_values.contains(&value.id))
            .filter_map(|value| self.hubs.get(&value.id).cloned())
            .collect();
        shared_hubs.sort_by(|a, b| (&a.field, &a.value).cmp(&(&b.field, &b.value)));
        shared_hubs.dedup();
        Ok(Explanation {
            left: left.clone(),
            right: right.clone(),
            left_unified_id: self.cluster(left_slot.cluster).id.clone(),
            right_unified_id: self.cluster(right_slot.cluster).id.clone(),
            same_profile,
            path,
            direct,
            refused,
            never_match,
            shared_hubs,
        })
    }

    /// The shortest chain of applied links between two records of one profile (breadth-first,
    /// neighbours in link order so the answer is deterministic).
    fn applied_path(&self, from: RecordIndex, to: RecordIndex) -> Vec<&Edge> {
        let mut came_from: HashMap<RecordIndex, (RecordIndex, u32)> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        let mut visited = BTreeSet::from([from]);
        while let Some(current) = queue.pop_front() {
            if current == to {
                break;
            }
            let mut edges: Vec<u32> = self.slot(current).edges.clone();
            edges.sort_by_key(|&edge| self.edge(edge).order);
            for edge_index in edges {
                let edge = self.edge(edge_index);
                if edge.refusal.is_some() {
                    continue;
                }
                let next = if edge.left == current {
                    edge.right
                } else {
                    edge.left
                };
                if visited.insert(next) {
                    came_from.insert(next, (current, edge_index));
                    queue.push_back(next);
                }
            }
        }
        let mut path = Vec::new();
        let mut current = to;
        while current != from {
            let Some(&(previous, edge)) = came_from.get(&current) else {
                return Vec::new();
            };
            path.push(self.edge(edge));
            current = previous;
        }
        path.reverse();
        path
    }

    fn path_link(&self, edge: &Edge) -> PathLink {
        let left = self.slot(edge.left);
        let right = self.slot(edge.right);
        let is_hub = |id: u64| self.is_hub(id);
        let outcomes = explain_rules(&self.compiled, &left.prepared, &right.prepared, &is_hub);
        let rule = usize::from(edge.evidence.rule);
        let outcome = outcomes.into_iter().nth(rule);
        PathLink {
            left: left.record.key.clone(),
            right: right.record.key.clone(),
            rule: self
                .compiled
                .rules
                .get(rule)
                .map_or_else(|| "probabilistic".to_string(), |rule| rule.name.clone()),
            criteria: outcome.map(|outcome| outcome.criteria).unwrap_or_default(),
        }
    }

    fn refused_between(&self, left_cluster: u32, right_cluster: u32) -> Vec<LinkView> {
        let mut refused = Vec::new();
        let mut seen = BTreeSet::new();
        for &member in &self.cluster(left_cluster).members {
            for &edge_index in &self.slot(member).edges {
                let edge = self.edge(edge_index);
                let Some(refusal) = &edge.refusal else {
                    continue;
                };
                let other = if edge.left == member {
                    edge.right
                } else {
                    edge.left
                };
                let other_cluster = self.slot(other).cluster;
                if (other_cluster == right_cluster || other_cluster == left_cluster)
                    && seen.insert(edge.order)
                {
                    refused.push(LinkView {
                        left: self.slot(edge.left).record.key.clone(),
                        right: self.slot(edge.right).record.key.clone(),
                        rule: self
                            .compiled
                            .rules
                            .get(usize::from(edge.evidence.rule))
                            .map_or_else(|| "probabilistic".to_string(), |rule| rule.name.clone()),
                        scores: edge.evidence.scores.clone(),
                        refused: Some(refusal.clone()),
                    });
                }
            }
        }
        refused
    }
}
