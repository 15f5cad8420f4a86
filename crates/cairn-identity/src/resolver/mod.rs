//! The real-time resolver: incremental, deterministic identity resolution in memory.
//!
//! ```text
//! let mut resolver = Resolver::new(ruleset)?;
//! let resolution = resolver.upsert(record)?;   // unified id, merges, splits, links, new hubs
//! resolver.remove(&key);                        // splits what the record held together
//! resolver.unmerge(&a, &b)?;                    // "never match these two"
//! resolver.explain(&a, &b)?;                    // why are these one person?
//! let bytes = resolver.snapshot();              // and Resolver::restore(ruleset, &bytes)
//! ```
//!
//! **Model.** Records are nodes; a *link* is a pair of records some rule matches, found through
//! candidate indexes on blocking keys (never a scan). Links are numbered in the order they are
//! found. A profile is a set of records joined by *applied* links; a link is applied unless merge
//! protection refuses it (size, identifier limits, never-match). Upserting a record looks up its
//! candidates, evaluates the rules, and tries its links cluster by cluster, strongest identifier
//! first, so a link through a lower-priority identifier is the one dropped when a limit would break.
//! Removing or changing a record, a new hub or an un-merge recomputes the affected profiles by
//! replaying their links in their original order ([`Resolver::recluster`]), which is exactly what
//! upserting them in order would have produced.
//!
//! **Determinism.** The same changes in the same order give the same profiles and ids: candidates,
//! clusters and links are processed in record-age and link order, never in hash-map order. Without
//! protection refusals (and with hubs decided up front, as batch runs do), profiles are the
//! connected components of the match graph and do not depend on the order at all.
//!
//! **Ids.** A profile's unified id is derived from the record that founded it. A merge keeps the id
//! of the profile holding the oldest record (ages are first-upsert order and survive updates); a
//! split keeps it on the side holding the oldest record, and the other side gets the id its own
//! oldest record founded, so undoing a merge restores the old ids.

mod explain;
mod snapshot;
mod state;
mod types;

pub use state::net_changes;
pub use types::{Explanation, Hub, LinkView, Merge, PathLink, Resolution, Split, UnifiedId};

use crate::compiled::CompiledRuleset;
use crate::features::{key_values, prepare, PreparedRecord};
use crate::matching::{find_match, LinkEvidence};
use crate::protection::{check_merge, GroupFacts, Refusal};
use crate::record::{CanonicalRecord, RecordKey};
use crate::ruleset::{MatchField, Ruleset};
use crate::union_find::UnionFind;
use crate::{IdentityError, Result};
use state::{BeforeState, Cluster, Edge, PrehashedMap, RecordSlot};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

type RecordIndex = u32;
type EdgeIndex = u32;
type ClusterIndex = u32;

/// A record's matches with the members of one cluster: the best link priority, the cluster's
/// oldest age and the links.
type ClusterLinks = (u32, u64, Vec<(RecordIndex, LinkEvidence)>);

/// Counters describing the resolver's state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ResolverStats {
    pub records: usize,
    pub profiles: usize,
    pub links: usize,
    pub refused_links: usize,
    pub hubs: usize,
    /// Candidate lookups that skipped a key shared by more than `max_block_size` records.
    pub oversized_blocks_skipped: u64,
}

/// The real-time identity resolver. See the module documentation.
pub struct Resolver {
    compiled: Arc<CompiledRuleset>,
    records: Vec<Option<RecordSlot>>,
    free_records: Vec<RecordIndex>,
    by_key: HashMap<RecordKey, RecordIndex, xxhash_rust::xxh3::Xxh3Builder>,
    edges: Vec<Option<Edge>>,
    free_edges: Vec<EdgeIndex>,
    clusters: Vec<Option<Cluster>>,
    free_clusters: Vec<ClusterIndex>,
    cluster_by_id: HashMap<UnifiedId, ClusterIndex, xxhash_rust::xxh3::Xxh3Builder>,
    /// Blocking key value → records holding it.
    candidate_index: PrehashedMap<Vec<RecordIndex>>,
    /// Value id (field, normalized value) → records holding it, for identifier fields.
    value_index: PrehashedMap<Vec<RecordIndex>>,
    /// Value id → hub description.
    hubs: PrehashedMap<Hub>,
    /// Whether hubs are decided from the values seen (real time) or fixed up front (batch).
    hubs_fixed: bool,
    never_match: HashMap<RecordKey, BTreeSet<RecordKey>>,
    next_record_age: u64,
    next_edge_order: u64,
    oversized_blocks_skipped: u64,
}

impl Resolver {
    /// A resolver for a ruleset (validated and compiled once).
    pub fn new(ruleset: Ruleset) -> Result<Resolver> {
        Ok(Resolver::with_compiled(Arc::new(CompiledRuleset::new(
            ruleset,
        )?)))
    }

    /// A resolver sharing an already compiled ruleset.
    pub fn with_compiled(compiled: Arc<CompiledRuleset>) -> Resolver {
        Resolver {
            compiled,
            records: Vec::new(),
            free_records: Vec::new(),
            by_key: HashMap::default(),
            edges: Vec::new(),
            free_edges: Vec::new(),
            clusters: Vec::new(),
            free_clusters: Vec::new(),
            cluster_by_id: HashMap::default(),
            candidate_index: PrehashedMap::default(),
            value_index: PrehashedMap::default(),
            hubs: PrehashedMap::default(),
            hubs_fixed: false,
            never_match: HashMap::new(),
            next_record_age: 0,
            next_edge_order: 0,
            oversized_blocks_skipped: 0,
        }
    }

    pub fn compiled(&self) -> &Arc<CompiledRuleset> {
        &self.compiled
    }

    /// Declares hubs up front (batch runs count every value first) and stops deciding new ones.
    pub fn fix_hubs(&mut self, hubs: Vec<(u64, Hub)>) {
        for (id, hub) in hubs {
            self.hubs.insert(id, hub);
        }
        self.hubs_fixed = true;
    }

    /// Adds or replaces a source record and resolves it.
    pub fn upsert(&mut self, record: CanonicalRecord) -> Result<Resolution> {
        let prepared = prepare(&self.compiled, &record);
        self.upsert_prepared(record, prepared)
    }

    /// [`Resolver::upsert`] for a record already prepared with this resolver's ruleset (batch runs
    /// prepare in parallel).
    pub fn upsert_prepared(
        &mut self,
        record: CanonicalRecord,
        prepared: PreparedRecord,
    ) -> Result<Resolution> {
        if record.key.source.is_empty() || record.key.source_id.is_empty() {
            return Err(IdentityError::InvalidRecord(
                "a record needs a source and a source id".to_string(),
            ));
        }
        let mut before = BeforeState::default();
        let mut age = None;
        if let Some(&index) = self.by_key.get(&record.key) {
            let slot = self.slot(index);
            if slot.prepared == prepared {
                let unchanged = slot.record == record;
                let unified_id = self.cluster(slot.cluster).id.clone();
                if !unchanged {
                    self.slot_mut(index).record = record.clone();
                }
                return Ok(Resolution {
                    record: Some(record.key),
                    unified_id: Some(unified_id),
                    changed: !unchanged,
                    ..Resolution::default()
                });
            }
            age = Some(slot.age);
            self.capture_cluster(&mut before, slot.cluster);
            self.detach(index);
            self.free_record(index);
        }
        let key = record.key.clone();
        let mut resolution = Resolution {
            record: Some(key.clone()),
            changed: true,
            ..Resolution::default()
        };
        let index = self.attach(record, prepared, age, &mut before, &mut resolution);
        let after_id = self.cluster(self.slot(index).cluster).id.clone();
        resolution.unified_id = Some(after_id);
        self.finish(&before, Some(&key), &mut resolution);
        Ok(resolution)
    }

    /// Removes a source record; the profile it held together splits.
    pub fn remove(&mut self, key: &RecordKey) -> Option<Resolution> {
        let index = *self.by_key.get(key)?;
        let mut before = BeforeState::default();
        self.capture_cluster(&mut before, self.slot(index).cluster);
        self.detach(index);
        self.free_record(index);
        let mut resolution = Resolution {
            record: Some(key.clone()),
            changed: true,
            ..Resolution::default()
        };
        self.finish(&before, None, &mut resolution);
        Some(resolution)
    }

    /// Marks two records as never the same person and splits their profile if they share one.
    /// The constraint outlives both records (it is kept by key).
    pub fn unmerge(&mut self, left: &RecordKey, right: &RecordKey) -> Result<Resolution> {
        let left_index = self.index_of(left)?;
        let right_index = self.index_of(right)?;
        self.never_match
            .entry(left.clone())
            .or_default()
            .insert(right.clone());
        self.never_match
            .entry(right.clone())
            .or_default()
            .insert(left.clone());
        self.slot_mut(left_index).never_match = true;
        self.slot_mut(right_index).never_match = true;
        let mut resolution = Resolution {
            record: Some(left.clone()),
            changed: true,
            ..Resolution::default()
        };
        let mut before = BeforeState::default();
        let cluster = self.slot(left_index).cluster;
        if cluster == self.slot(right_index).cluster {
            self.capture_cluster(&mut before, cluster);
            let members = self.cluster(cluster).members.clone();
            self.recluster(&members);
        }
        resolution.unified_id = Some(self.cluster(self.slot(left_index).cluster).id.clone());
        self.finish(&before, Some(left), &mut resolution);
        Ok(resolution)
    }

    /// The profile of a record.
    pub fn unified_id(&self, key: &RecordKey) -> Option<&UnifiedId> {
        let index = *self.by_key.get(key)?;
        Some(&self.cluster(self.slot(index).cluster).id)
    }

    /// The records of a profile, oldest first.
    pub fn records_of(&self, unified_id: &UnifiedId) -> Vec<&CanonicalRecord> {
        let Some(&cluster) = self.cluster_by_id.get(unified_id) else {
            return Vec::new();
        };
        let mut members: Vec<&RecordSlot> = self
            .cluster(cluster)
            .members
            .iter()
            .map(|&index| self.slot(index))
            .collect();
        members.sort_by_key(|slot| slot.age);
        members.into_iter().map(|slot| &slot.record).collect()
    }

    /// A loaded record.
    pub fn record(&self, key: &RecordKey) -> Option<&CanonicalRecord> {
        self.by_key.get(key).map(|&index| &self.slot(index).record)
    }

    /// The profiles holding an identifier value (normalized as the field is, e.g. an email or a
    /// phone in the given source's region). Only identifier fields the ruleset uses are indexed.
    pub fn find_by_identifier(
        &self,
        field: &MatchField,
        value: &str,
        source: &str,
    ) -> Vec<UnifiedId> {
        let Some(slot) = self.compiled.slot_of(field) else {
            return Vec::new();
        };
        let Some(normalized) =
            crate::features::normalize_single(&self.compiled, field, value, source)
        else {
            return Vec::new();
        };
        let id = crate::features::value_id(slot, &normalized);
        let mut found: BTreeSet<UnifiedId> = BTreeSet::new();
        for &index in self.value_index.get(&id).into_iter().flatten() {
            found.insert(self.cluster(self.slot(index).cluster).id.clone());
        }
        found.into_iter().collect()
    }

    /// Every record key with its unified id, in record-age order.
    pub fn assignments(&self) -> Vec<(RecordKey, UnifiedId)> {
        let mut live: Vec<&RecordSlot> = self.records.iter().flatten().collect();
        live.sort_by_key(|slot| slot.age);
        live.into_iter()
            .map(|slot| {
                (
                    slot.record.key.clone(),
                    self.cluster(slot.cluster).id.clone(),
                )
            })
            .collect()
    }

    /// The hubs found so far, by field and value.
    pub fn hubs(&self) -> Vec<Hub> {
        let mut hubs: Vec<Hub> = self.hubs.values().cloned().collect();
        hubs.sort_by(|left, right| (&left.field, &left.value).cmp(&(&right.field, &right.value)));
        hubs
    }

    pub fn stats(&self) -> ResolverStats {
        let edges = self.edges.iter().flatten();
        let (mut links, mut refused) = (0, 0);
        for edge in edges {
            if edge.refusal.is_none() {
                links += 1;
            } else {
                refused += 1;
            }
        }
        ResolverStats {
            records: self.by_key.len(),
            profiles: self.cluster_by_id.len(),
            links,
            refused_links: refused,
            hubs: self.hubs.len(),
            oversized_blocks_skipped: self.oversized_blocks_skipped,
        }
    }

    // ---- batch passes (crate-internal) -----------------------------------------------------

    /// Every live record with its index and prepared values, oldest first.
    pub(crate) fn prepared_by_age(&self) -> Vec<(RecordIndex, &PreparedRecord, &RecordKey)> {
        let mut live: Vec<(RecordIndex, &RecordSlot)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.as_ref().map(|slot| (index as RecordIndex, slot)))
            .collect();
        live.sort_by_key(|(_, slot)| slot.age);
        live.into_iter()
            .map(|(index, slot)| (index, &slot.prepared, &slot.record.key))
            .collect()
    }

    /// Whether two records are in one profile now.
    pub(crate) fn same_profile_at(&self, left: RecordIndex, right: RecordIndex) -> bool {
        self.slot(left).cluster == self.slot(right).cluster
    }

    /// Applies a link found by a batch pass (sorted neighbourhood, probabilistic) under merge
    /// protection; returns whether the two profiles merged.
    pub(crate) fn apply_link(
        &mut self,
        left: RecordIndex,
        right: RecordIndex,
        evidence: LinkEvidence,
    ) -> bool {
        let (left_cluster, right_cluster) = (self.slot(left).cluster, self.slot(right).cluster);
        if left_cluster == right_cluster {
            return false;
        }
        let refusal = self.merge_refusal(left_cluster, right_cluster);
        let merged = refusal.is_none();
        self.add_edge(left, right, evidence, refusal);
        if merged {
            self.merge_clusters(left_cluster, right_cluster);
        }
        merged
    }

    // ---- internals -------------------------------------------------------------------------

    fn index_of(&self, key: &RecordKey) -> Result<RecordIndex> {
        self.by_key
            .get(key)
            .copied()
            .ok_or_else(|| IdentityError::RecordNotFound {
                source_name: key.source.clone(),
                source_id: key.source_id.clone(),
            })
    }

    fn slot(&self, index: RecordIndex) -> &RecordSlot {
        self.records[index as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("record index {index} is live"))
    }

    fn slot_mut(&mut self, index: RecordIndex) -> &mut RecordSlot {
        self.records[index as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("record index {index} is live"))
    }

    fn cluster(&self, index: ClusterIndex) -> &Cluster {
        self.clusters[index as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("cluster index {index} is live"))
    }

    fn cluster_mut(&mut self, index: ClusterIndex) -> &mut Cluster {
        self.clusters[index as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("cluster index {index} is live"))
    }

    fn edge(&self, index: EdgeIndex) -> &Edge {
        self.edges[index as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("edge index {index} is live"))
    }

    pub(crate) fn is_hub(&self, id: u64) -> bool {
        !self.hubs.is_empty() && self.hubs.contains_key(&id)
    }

    fn capture_cluster(&self, before: &mut BeforeState, cluster: ClusterIndex) {
        let cluster = self.cluster(cluster);
        for &member in &cluster.members {
            before.remember(&self.slot(member).record.key, &cluster.id);
        }
    }

    /// Inserts a record: indexes, hubs, candidates, links, merges.
    fn attach(
        &mut self,
        record: CanonicalRecord,
        prepared: PreparedRecord,
        age: Option<u64>,
        before: &mut BeforeState,
        resolution: &mut Resolution,
    ) -> RecordIndex {
        let age = age.unwrap_or_else(|| {
            let age = self.next_record_age;
            self.next_record_age += 1;
            age
        });
        let facts = GroupFacts::of_record(&self.compiled, &prepared);
        let never_match = self.never_match.contains_key(&record.key);
        let key = record.key.clone();
        let index = self.allocate_record(RecordSlot {
            record,
            prepared,
            age,
            cluster: 0,
            edges: Vec::new(),
            candidate_keys: Vec::new(),
            never_match,
        });
        self.by_key.insert(key.clone(), index);
        let cluster = self.allocate_cluster(Cluster {
            id: self.fresh_id(&key),
            members: vec![index],
            oldest_age: age,
            facts,
        });
        self.slot_mut(index).cluster = cluster;
        let id = self.cluster(cluster).id.clone();
        self.cluster_by_id.insert(id, cluster);

        self.index_values(index, before, resolution);
        let candidates = self.candidates_of(index);
        self.link_candidates(index, &candidates, before, resolution);
        index
    }

    /// Adds the record's identifier values to the value index and declares new hubs.
    fn index_values(
        &mut self,
        index: RecordIndex,
        before: &mut BeforeState,
        resolution: &mut Resolution,
    ) {
        let compiled = Arc::clone(&self.compiled);
        let mut new_hubs: Vec<u64> = Vec::new();
        for (slot, field) in compiled.fields.iter().enumerate() {
            if !(field.is_identifier() || compiled.hub_watched[slot]) {
                continue;
            }
            let values: Vec<(u64, Box<str>)> = self
                .slot(index)
                .prepared
                .values(slot)
                .iter()
                .map(|value| (value.id, value.normalized.clone()))
                .collect();
            for (value_id, normalized) in values {
                let holders = self.value_index.entry(value_id).or_default();
                holders.push(index);
                if !self.hubs_fixed && compiled.hub_watched[slot] {
                    if let Some(max) = compiled.hub_max_records {
                        let holder_count = holders.len();
                        if holder_count > max && !self.hubs.contains_key(&value_id) {
                            new_hubs.push(value_id);
                            self.hubs.insert(
                                value_id,
                                Hub {
                                    field: field.to_string(),
                                    value: normalized.to_string(),
                                    records: holder_count,
                                },
                            );
                        }
                    }
                }
            }
        }
        for id in new_hubs {
            if let Some(hub) = self.hubs.get(&id) {
                resolution.new_hubs.push(hub.clone());
            }
            self.withdraw_hub_links(id, index, before);
        }
    }

    /// A value just became a hub: links that only held because of it are dropped and the
    /// profiles they joined are recomputed.
    fn withdraw_hub_links(&mut self, hub: u64, newcomer: RecordIndex, before: &mut BeforeState) {
        let holders: Vec<RecordIndex> = self.value_index.get(&hub).cloned().unwrap_or_default();
        let mut dropped_any = false;
        let mut affected: BTreeSet<ClusterIndex> = BTreeSet::new();
        for holder in holders {
            if holder == newcomer {
                continue;
            }
            let edges = self.slot(holder).edges.clone();
            for edge_index in edges {
                let Some(edge) = self.edges[edge_index as usize].as_ref() else {
                    continue;
                };
                let (left, right) = (edge.left, edge.right);
                let still = find_match(
                    &self.compiled,
                    &self.slot(left).prepared,
                    &self.slot(right).prepared,
                    &|id| self.is_hub(id),
                );
                match still {
                    Some(evidence) => {
                        if let Some(edge) = self.edges[edge_index as usize].as_mut() {
                            edge.evidence = evidence;
                        }
                    }
                    None => {
                        let cluster = self.slot(left).cluster;
                        self.capture_cluster(before, cluster);
                        affected.insert(cluster);
                        self.delete_edge(edge_index);
                        dropped_any = true;
                    }
                }
            }
        }
        if dropped_any {
            for cluster in affected {
                if let Some(Some(live)) = self.clusters.get(cluster as usize) {
                    let members = live.members.clone();
                    self.recluster(&members);
                }
            }
        }
    }

    /// Candidate records for a record, from the blocking keys, oldest first.
    fn candidates_of(&mut self, index: RecordIndex) -> Vec<RecordIndex> {
        let compiled = Arc::clone(&self.compiled);
        let mut candidates: Vec<RecordIndex> = Vec::new();
        let mut keys: Vec<u64> = Vec::new();
        for (key_index, key) in compiled.keys.iter().enumerate() {
            let values = key_values(key_index, key, &self.slot(index).prepared, &|id| {
                self.is_hub(id)
            });
            keys.extend(values);
        }
        keys.sort_unstable();
        keys.dedup();
        let max_block = compiled.ruleset.candidates.max_block_size;
        for key in &keys {
            let holders = self.candidate_index.entry(*key).or_default();
            if holders.len() >= max_block {
                self.oversized_blocks_skipped += 1;
            } else {
                candidates.extend_from_slice(holders);
            }
            holders.push(index);
        }
        self.slot_mut(index).candidate_keys = keys;
        candidates.sort_unstable();
        candidates.dedup();
        candidates.retain(|&candidate| candidate != index);
        candidates.sort_by_key(|&candidate| self.slot(candidate).age);
        candidates
    }

    /// Evaluates the rules against each candidate, then applies the links cluster by cluster,
    /// strongest first.
    fn link_candidates(
        &mut self,
        index: RecordIndex,
        candidates: &[RecordIndex],
        before: &mut BeforeState,
        resolution: &mut Resolution,
    ) {
        let compiled = Arc::clone(&self.compiled);
        let source = self.slot(index).record.key.source.clone();
        // cluster → (priority, oldest age, links)
        let mut by_cluster: BTreeMap<ClusterIndex, ClusterLinks> = BTreeMap::new();
        for &candidate in candidates {
            let candidate_slot = self.slot(candidate);
            if !compiled.may_link_sources(&source, &candidate_slot.record.key.source) {
                continue;
            }
            let Some(evidence) = find_match(
                &compiled,
                &self.slot(index).prepared,
                &candidate_slot.prepared,
                &|id| self.is_hub(id),
            ) else {
                continue;
            };
            let priority = compiled.rules[evidence.rule as usize].link_priority;
            let cluster = candidate_slot.cluster;
            let oldest = self.cluster(cluster).oldest_age;
            let entry = by_cluster
                .entry(cluster)
                .or_insert((priority, oldest, Vec::new()));
            entry.0 = entry.0.min(priority);
            entry.2.push((candidate, evidence));
        }
        let mut groups: Vec<(ClusterIndex, ClusterLinks)> = by_cluster.into_iter().collect();
        groups.sort_by_key(|(_, (priority, oldest, _))| (*priority, *oldest));
        for (cluster, (_, _, links)) in groups {
            self.capture_cluster(before, cluster);
            let own = self.slot(index).cluster;
            let refusal = if own == cluster {
                None
            } else {
                self.merge_refusal(own, cluster)
            };
            for (candidate, evidence) in links {
                resolution.links.push(LinkView {
                    left: self.slot(index).record.key.clone(),
                    right: self.slot(candidate).record.key.clone(),
                    rule: compiled.rules[evidence.rule as usize].name.clone(),
                    scores: evidence.scores.clone(),
                    refused: refusal.clone(),
                });
                self.add_edge(index, candidate, evidence, refusal.clone());
            }
            if refusal.is_none() && own != cluster {
                self.merge_clusters(own, cluster);
            }
        }
    }

    /// Why two live clusters may not merge, if they may not.
    fn merge_refusal(&self, left: ClusterIndex, right: ClusterIndex) -> Option<Refusal> {
        let (left_cluster, right_cluster) = (self.cluster(left), self.cluster(right));
        if let Err(refusal) = check_merge(&self.compiled, &left_cluster.facts, &right_cluster.facts)
        {
            return Some(refusal);
        }
        self.never_match_between(&left_cluster.members, &|index| {
            self.slot(index).cluster == right
        })
    }

    fn never_match_between(
        &self,
        members: &[RecordIndex],
        in_other: &dyn Fn(RecordIndex) -> bool,
    ) -> Option<Refusal> {
        if self.never_match.is_empty() {
            return None;
        }
        for &member in members {
            let slot = self.slot(member);
            if !slot.never_match {
                continue;
            }
            for partner in self.never_match.get(&slot.record.key).into_iter().flatten() {
                if let Some(&partner_index) = self.by_key.get(partner) {
                    if in_other(partner_index) {
                        return Some(Refusal::NeverMatch {
                            left: slot.record.key.to_string(),
                            right: partner.to_string(),
                        });
                    }
                }
            }
        }
        None
    }

    fn add_edge(
        &mut self,
        left: RecordIndex,
        right: RecordIndex,
        evidence: LinkEvidence,
        refusal: Option<Refusal>,
    ) {
        let order = self.next_edge_order;
        self.next_edge_order += 1;
        let edge = Edge {
            left,
            right,
            order,
            evidence,
            refusal,
        };
        let index = match self.free_edges.pop() {
            Some(free) => {
                self.edges[free as usize] = Some(edge);
                free
            }
            None => {
                self.edges.push(Some(edge));
                (self.edges.len() - 1) as EdgeIndex
            }
        };
        self.slot_mut(left).edges.push(index);
        self.slot_mut(right).edges.push(index);
    }

    fn delete_edge(&mut self, index: EdgeIndex) {
        let Some(edge) = self.edges[index as usize].take() else {
            return;
        };
        for endpoint in [edge.left, edge.right] {
            if let Some(Some(slot)) = self.records.get_mut(endpoint as usize) {
                slot.edges.retain(|&known| known != index);
            }
        }
        self.free_edges.push(index);
    }

    /// Joins two clusters; the id of the one holding the older record survives.
    fn merge_clusters(&mut self, left: ClusterIndex, right: ClusterIndex) {
        debug_assert_ne!(left, right);
        let (keep, absorbed) =
            if self.cluster(left).members.len() >= self.cluster(right).members.len() {
                (left, right)
            } else {
                (right, left)
            };
        let absorbed_cluster = self.clusters[absorbed as usize]
            .take()
            .unwrap_or_else(|| unreachable!("merged clusters are live"));
        self.free_clusters.push(absorbed);
        for &member in &absorbed_cluster.members {
            self.slot_mut(member).cluster = keep;
        }
        let kept = self.cluster_mut(keep);
        kept.members.extend_from_slice(&absorbed_cluster.members);
        kept.facts.absorb(&absorbed_cluster.facts);
        let (surviving_id, dead_id) = if absorbed_cluster.oldest_age < kept.oldest_age {
            let dead = std::mem::replace(&mut kept.id, absorbed_cluster.id.clone());
            kept.oldest_age = absorbed_cluster.oldest_age;
            (absorbed_cluster.id, dead)
        } else {
            (kept.id.clone(), absorbed_cluster.id)
        };
        self.cluster_by_id.remove(&dead_id);
        self.cluster_by_id.insert(surviving_id, keep);
    }

    /// Takes a record out of its indexes, links and cluster (the cluster is recomputed); the slot
    /// stays allocated so the caller can reuse or free it.
    fn detach(&mut self, index: RecordIndex) {
        let slot = self.slot(index);
        let cluster = slot.cluster;
        let had_applied_links = slot
            .edges
            .iter()
            .any(|&edge| self.edge(edge).refusal.is_none());
        let edges = slot.edges.clone();
        let keys = slot.candidate_keys.clone();
        for edge in edges {
            self.delete_edge(edge);
        }
        for key in keys {
            if let Some(holders) = self.candidate_index.get_mut(&key) {
                holders.retain(|&holder| holder != index);
                if holders.is_empty() {
                    self.candidate_index.remove(&key);
                }
            }
        }
        let compiled = Arc::clone(&self.compiled);
        for (slot_number, field) in compiled.fields.iter().enumerate() {
            if !(field.is_identifier() || compiled.hub_watched[slot_number]) {
                continue;
            }
            let ids: Vec<u64> = self
                .slot(index)
                .prepared
                .values(slot_number)
                .iter()
                .map(|value| value.id)
                .collect();
            for id in ids {
                if let Some(holders) = self.value_index.get_mut(&id) {
                    holders.retain(|&holder| holder != index);
                    if holders.is_empty() {
                        self.value_index.remove(&id);
                    }
                }
            }
        }
        let key = self.slot(index).record.key.clone();
        self.by_key.remove(&key);
        let members: Vec<RecordIndex> = self
            .cluster(cluster)
            .members
            .iter()
            .copied()
            .filter(|&member| member != index)
            .collect();
        // The record leaves its cluster; the rest is recomputed only if links ran through it.
        let id = self.cluster(cluster).id.clone();
        if members.is_empty() {
            self.clusters[cluster as usize] = None;
            self.free_clusters.push(cluster);
            self.cluster_by_id.remove(&id);
        } else if had_applied_links {
            self.recluster(&members);
        } else {
            let facts = self.facts_of(&members);
            let oldest = members
                .iter()
                .map(|&member| self.slot(member).age)
                .min()
                .unwrap_or(u64::MAX);
            let live = self.cluster_mut(cluster);
            live.members = members;
            live.facts = facts;
            live.oldest_age = oldest;
        }
    }

    fn free_record(&mut self, index: RecordIndex) {
        self.records[index as usize] = None;
        self.free_records.push(index);
    }

    fn facts_of(&self, members: &[RecordIndex]) -> GroupFacts {
        let mut facts = GroupFacts {
            size: 0,
            limit_values: vec![Vec::new(); self.compiled.limits.len()],
        };
        for &member in members {
            facts.absorb(&GroupFacts::of_record(
                &self.compiled,
                &self.slot(member).prepared,
            ));
        }
        facts
    }

    /// Recomputes the profiles of `members` (the records of one or more clusters) by replaying
    /// their links in link order under merge protection. Ids follow the split rule: each old id
    /// stays with the part holding its oldest record; other parts get the id their oldest record
    /// founded.
    fn recluster(&mut self, members: &[RecordIndex]) {
        let mut members = members.to_vec();
        members.sort_by_key(|&member| self.slot(member).age);
        let position: HashMap<RecordIndex, usize> = members
            .iter()
            .enumerate()
            .map(|(position, &member)| (member, position))
            .collect();
        // Old clusters and their ids, by oldest member.
        let mut old_ids: Vec<(u64, UnifiedId, ClusterIndex)> = Vec::new();
        let mut seen_clusters: BTreeSet<ClusterIndex> = BTreeSet::new();
        for &member in &members {
            let cluster = self.slot(member).cluster;
            if seen_clusters.insert(cluster) {
                old_ids.push((
                    self.slot(member).age,
                    self.cluster(cluster).id.clone(),
                    cluster,
                ));
            }
        }
        // Links among the members, in link order.
        let mut links: Vec<(u64, EdgeIndex, usize, usize)> = Vec::new();
        for &member in &members {
            for &edge_index in &self.slot(member).edges {
                let edge = self.edge(edge_index);
                if edge.left != member {
                    continue;
                }
                if let (Some(&left), Some(&right)) =
                    (position.get(&edge.left), position.get(&edge.right))
                {
                    links.push((edge.order, edge_index, left, right));
                }
            }
        }
        links.sort_unstable();
        let mut sets = UnionFind::new(members.len());
        let mut facts: Vec<GroupFacts> = members
            .iter()
            .map(|&member| GroupFacts::of_record(&self.compiled, &self.slot(member).prepared))
            .collect();
        let mut set_members: Vec<Vec<RecordIndex>> =
            members.iter().map(|&member| vec![member]).collect();
        for (_, edge_index, left, right) in links {
            let (left_root, right_root) = (sets.find(left), sets.find(right));
            let refusal = if left_root == right_root {
                None
            } else {
                let refusal = check_merge(&self.compiled, &facts[left_root], &facts[right_root])
                    .err()
                    .or_else(|| {
                        let other: BTreeSet<RecordIndex> =
                            set_members[right_root].iter().copied().collect();
                        self.never_match_between(&set_members[left_root], &|index| {
                            other.contains(&index)
                        })
                    });
                if refusal.is_none() {
                    let root = sets.union(left_root, right_root).unwrap_or(left_root);
                    let absorbed = if root == left_root {
                        right_root
                    } else {
                        left_root
                    };
                    let absorbed_facts = std::mem::take(&mut facts[absorbed]);
                    facts[root].absorb(&absorbed_facts);
                    let moved = std::mem::take(&mut set_members[absorbed]);
                    set_members[root].extend(moved);
                }
                refusal
            };
            if let Some(edge) = self.edges[edge_index as usize].as_mut() {
                edge.refusal = refusal;
            }
        }
        // Tear down the old clusters.
        for (_, id, cluster) in &old_ids {
            self.cluster_by_id.remove(id);
            self.clusters[*cluster as usize] = None;
            self.free_clusters.push(*cluster);
        }
        // Build the new ones, oldest part first.
        let groups = sets.groups();
        let mut claimed: BTreeSet<UnifiedId> = BTreeSet::new();
        for group in groups {
            let group_members: Vec<RecordIndex> =
                group.iter().map(|&position| members[position]).collect();
            let oldest = group_members[0];
            let oldest_age = self.slot(oldest).age;
            // An old id stays with the part holding the oldest record of its old cluster.
            let kept = old_ids
                .iter()
                .find(|(age, id, _)| {
                    !claimed.contains(id)
                        && group_members
                            .iter()
                            .any(|&member| self.slot(member).age == *age)
                })
                .map(|(_, id, _)| id.clone());
            let id = match kept {
                Some(id) => id,
                None => {
                    let key = self.slot(oldest).record.key.clone();
                    self.fresh_id_avoiding(&key, &claimed)
                }
            };
            claimed.insert(id.clone());
            let facts = self.facts_of(&group_members);
            let cluster = self.allocate_cluster(Cluster {
                id: id.clone(),
                members: group_members.clone(),
                oldest_age,
                facts,
            });
            for member in group_members {
                self.slot_mut(member).cluster = cluster;
            }
            self.cluster_by_id.insert(id, cluster);
        }
    }

    /// The id a cluster founded by `key` gets, salted if (rarely) already in use.
    fn fresh_id(&self, key: &RecordKey) -> UnifiedId {
        self.fresh_id_avoiding(key, &BTreeSet::new())
    }

    fn fresh_id_avoiding(&self, key: &RecordKey, claimed: &BTreeSet<UnifiedId>) -> UnifiedId {
        let mut salt = 0;
        loop {
            let id = UnifiedId::derive(key, salt);
            if !self.cluster_by_id.contains_key(&id) && !claimed.contains(&id) {
                return id;
            }
            salt += 1;
        }
    }

    fn allocate_record(&mut self, slot: RecordSlot) -> RecordIndex {
        match self.free_records.pop() {
            Some(index) => {
                self.records[index as usize] = Some(slot);
                index
            }
            None => {
                self.records.push(Some(slot));
                (self.records.len() - 1) as RecordIndex
            }
        }
    }

    fn allocate_cluster(&mut self, cluster: Cluster) -> ClusterIndex {
        match self.free_clusters.pop() {
            Some(index) => {
                self.clusters[index as usize] = Some(cluster);
                index
            }
            None => {
                self.clusters.push(Some(cluster));
                (self.clusters.len() - 1) as ClusterIndex
            }
        }
    }

    /// Computes the net merges and splits between the captured state and now.
    fn finish(
        &self,
        before: &BeforeState,
        record: Option<&RecordKey>,
        resolution: &mut Resolution,
    ) {
        let mut after: BTreeMap<RecordKey, UnifiedId> = BTreeMap::new();
        for key in before.ids().keys().chain(record) {
            if let Some(id) = self.unified_id(key) {
                after.insert(key.clone(), id.clone());
            }
        }
        let (merged, split) = state::net_changes(before.ids(), &after);
        resolution.merged = merged;
        resolution.split = split;
    }
}
