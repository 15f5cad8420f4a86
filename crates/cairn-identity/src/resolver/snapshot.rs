//! Persisting the resolver: a compact binary snapshot (postcard) of the records with their ages,
//! the links with their evidence and refusals, the profile ids, hubs and never-match constraints.
//! Restoring re-prepares the records in parallel and rebuilds the indexes without evaluating a
//! single rule, and gives exactly the state that was saved (same ids, same link order), so the
//! engine can checkpoint it and replay only the log written after the checkpoint.
//!
//! A snapshot is refused under a different ruleset (its fingerprint is stored): after a rule
//! change, re-resolve from the records instead.

use super::state::{Cluster, Edge, RecordSlot};
use super::types::{Hub, UnifiedId};
use super::Resolver;
use crate::compiled::CompiledRuleset;
use crate::features::{key_values, prepare};
use crate::matching::LinkEvidence;
use crate::protection::{GroupFacts, Refusal};
use crate::record::{BirthDate, CanonicalRecord, PostalAddress, RecordKey};
use crate::{IdentityError, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StoredResolver {
    version: u32,
    fingerprint: u64,
    records: Vec<StoredRecord>,
    profile_ids: Vec<String>,
    edges: Vec<StoredEdge>,
    hubs: Vec<(u64, String, String, u64)>,
    hubs_fixed: bool,
    never_match: Vec<(String, String, String, String)>,
    next_record_age: u64,
    next_edge_order: u64,
    oversized_blocks_skipped: u64,
}

/// A canonical record in a form a non-self-describing format can hold.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    source: String,
    source_id: String,
    age: u64,
    profile: u32,
    updated_at_millis: Option<i64>,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    date_of_birth: Option<(i32, u32, u32)>,
    emails: Vec<String>,
    phones: Vec<String>,
    addresses: Vec<[Option<String>; 5]>,
    external_ids: Vec<(String, Vec<String>)>,
    device_ids: Vec<String>,
    consents: Vec<(String, bool)>,
    traits: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct StoredEdge {
    left: u32,
    right: u32,
    order: u64,
    rule: u16,
    scores: Vec<f32>,
    refusal: Option<StoredRefusal>,
}

#[derive(Serialize, Deserialize)]
enum StoredRefusal {
    MaxClusterSize(u64, u64),
    IdentifierLimit(String, u64, u64),
    NeverMatch(String, String),
}

impl StoredRecord {
    fn from_record(record: &CanonicalRecord, age: u64, profile: u32) -> StoredRecord {
        StoredRecord {
            source: record.key.source.clone(),
            source_id: record.key.source_id.clone(),
            age,
            profile,
            updated_at_millis: record.updated_at.map(|time| time.timestamp_millis()),
            first_name: record.first_name.clone(),
            last_name: record.last_name.clone(),
            full_name: record.full_name.clone(),
            date_of_birth: record
                .date_of_birth
                .map(|date| (date.year, date.month, date.day)),
            emails: record.emails.clone(),
            phones: record.phones.clone(),
            addresses: record
                .addresses
                .iter()
                .map(|address| {
                    [
                        address.line.clone(),
                        address.city.clone(),
                        address.region.clone(),
                        address.postcode.clone(),
                        address.country.clone(),
                    ]
                })
                .collect(),
            external_ids: record
                .external_ids
                .iter()
                .map(|(kind, ids)| (kind.clone(), ids.clone()))
                .collect(),
            device_ids: record.device_ids.clone(),
            consents: record
                .consents
                .iter()
                .map(|(channel, consent)| (channel.clone(), *consent))
                .collect(),
            traits: record
                .traits
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }

    fn into_record(self) -> CanonicalRecord {
        CanonicalRecord {
            key: RecordKey::new(self.source, self.source_id),
            updated_at: self
                .updated_at_millis
                .and_then(chrono::DateTime::from_timestamp_millis),
            first_name: self.first_name,
            last_name: self.last_name,
            full_name: self.full_name,
            date_of_birth: self.date_of_birth.map(|(year, month, day)| BirthDate {
                year,
                month,
                day,
            }),
            emails: self.emails,
            phones: self.phones,
            addresses: self
                .addresses
                .into_iter()
                .map(|[line, city, region, postcode, country]| PostalAddress {
                    line,
                    city,
                    region,
                    postcode,
                    country,
                })
                .collect(),
            external_ids: self.external_ids.into_iter().collect(),
            device_ids: self.device_ids,
            consents: self.consents.into_iter().collect(),
            traits: self.traits.into_iter().collect(),
        }
    }
}

impl StoredRefusal {
    fn from_refusal(refusal: &Refusal) -> StoredRefusal {
        match refusal {
            Refusal::MaxClusterSize { size, max } => {
                StoredRefusal::MaxClusterSize(*size as u64, *max as u64)
            }
            Refusal::IdentifierLimit {
                identifier,
                max,
                would_have,
            } => {
                StoredRefusal::IdentifierLimit(identifier.clone(), *max as u64, *would_have as u64)
            }
            Refusal::NeverMatch { left, right } => {
                StoredRefusal::NeverMatch(left.clone(), right.clone())
            }
        }
    }

    fn into_refusal(self) -> Refusal {
        match self {
            StoredRefusal::MaxClusterSize(size, max) => Refusal::MaxClusterSize {
                size: size as usize,
                max: max as usize,
            },
            StoredRefusal::IdentifierLimit(identifier, max, would_have) => {
                Refusal::IdentifierLimit {
                    identifier,
                    max: max as usize,
                    would_have: would_have as usize,
                }
            }
            StoredRefusal::NeverMatch(left, right) => Refusal::NeverMatch { left, right },
        }
    }
}

impl Resolver {
    /// A compact binary snapshot of the whole state.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut position_of: Vec<u32> = vec![u32::MAX; self.records.len()];
        let mut live: Vec<(u32, &RecordSlot)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.as_ref().map(|slot| (index as u32, slot)))
            .collect();
        live.sort_by_key(|(_, slot)| slot.age);
        let mut profile_ids: Vec<String> = Vec::new();
        let mut profile_position: BTreeMap<u32, u32> = BTreeMap::new();
        let mut records = Vec::with_capacity(live.len());
        for (position, (index, slot)) in live.iter().enumerate() {
            position_of[*index as usize] = position as u32;
            let next = profile_ids.len() as u32;
            let profile = *profile_position.entry(slot.cluster).or_insert_with(|| {
                profile_ids.push(self.cluster(slot.cluster).id.0.clone());
                next
            });
            records.push(StoredRecord::from_record(&slot.record, slot.age, profile));
        }
        let mut edges: Vec<StoredEdge> = self
            .edges
            .iter()
            .flatten()
            .map(|edge| StoredEdge {
                left: position_of[edge.left as usize],
                right: position_of[edge.right as usize],
                order: edge.order,
                rule: edge.evidence.rule,
                scores: edge.evidence.scores.clone(),
                refusal: edge.refusal.as_ref().map(StoredRefusal::from_refusal),
            })
            .collect();
        edges.sort_by_key(|edge| edge.order);
        let mut hubs: Vec<(u64, String, String, u64)> = self
            .hubs
            .iter()
            .map(|(id, hub)| {
                (
                    *id,
                    hub.field.clone(),
                    hub.value.clone(),
                    hub.records as u64,
                )
            })
            .collect();
        hubs.sort();
        let mut never_match = Vec::new();
        for (left, partners) in &self.never_match {
            for right in partners {
                never_match.push((
                    left.source.clone(),
                    left.source_id.clone(),
                    right.source.clone(),
                    right.source_id.clone(),
                ));
            }
        }
        never_match.sort();
        let stored = StoredResolver {
            version: SNAPSHOT_VERSION,
            fingerprint: self.compiled.fingerprint,
            records,
            profile_ids,
            edges,
            hubs,
            hubs_fixed: self.hubs_fixed,
            never_match,
            next_record_age: self.next_record_age,
            next_edge_order: self.next_edge_order,
            oversized_blocks_skipped: self.oversized_blocks_skipped,
        };
        postcard::to_stdvec(&stored).unwrap_or_default()
    }

    /// Rebuilds a resolver from [`Resolver::snapshot`] bytes under the same ruleset.
    pub fn restore(compiled: Arc<CompiledRuleset>, bytes: &[u8]) -> Result<Resolver> {
        let stored: StoredResolver = postcard::from_bytes(bytes)
            .map_err(|error| IdentityError::Snapshot(format!("unreadable snapshot: {error}")))?;
        if stored.version != SNAPSHOT_VERSION {
            return Err(IdentityError::Snapshot(format!(
                "snapshot version {} is not {SNAPSHOT_VERSION}",
                stored.version
            )));
        }
        if stored.fingerprint != compiled.fingerprint {
            return Err(IdentityError::Snapshot(
                "the snapshot was taken under a different ruleset; re-resolve from the records"
                    .to_string(),
            ));
        }
        let mut resolver = Resolver::with_compiled(Arc::clone(&compiled));
        for (id, field, value, records) in stored.hubs {
            resolver.hubs.insert(
                id,
                Hub {
                    field,
                    value,
                    records: records as usize,
                },
            );
        }
        resolver.hubs_fixed = stored.hubs_fixed;
        for (left_source, left_id, right_source, right_id) in stored.never_match {
            resolver
                .never_match
                .entry(RecordKey::new(left_source, left_id))
                .or_default()
                .insert(RecordKey::new(right_source, right_id));
        }
        let profiles: Vec<u32> = stored.records.iter().map(|record| record.profile).collect();
        let ages: Vec<u64> = stored.records.iter().map(|record| record.age).collect();
        let records: Vec<CanonicalRecord> = stored
            .records
            .into_iter()
            .map(StoredRecord::into_record)
            .collect();
        let prepared: Vec<_> = records
            .par_iter()
            .map(|record| prepare(&compiled, record))
            .collect();
        let profile_count = stored.profile_ids.len();
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); profile_count];
        for (position, ((record, prepared), (&profile, &age))) in records
            .into_iter()
            .zip(prepared)
            .zip(profiles.iter().zip(&ages))
            .enumerate()
        {
            if profile as usize >= profile_count {
                return Err(IdentityError::Snapshot(format!(
                    "record {} names profile {profile} of {profile_count}",
                    record.key
                )));
            }
            members[profile as usize].push(position as u32);
            let never_match = resolver.never_match.contains_key(&record.key);
            resolver.by_key.insert(record.key.clone(), position as u32);
            resolver.records.push(Some(RecordSlot {
                record,
                prepared,
                age,
                cluster: profile,
                edges: Vec::new(),
                candidate_keys: Vec::new(),
                never_match,
            }));
        }
        for (profile, (id, members)) in stored.profile_ids.into_iter().zip(members).enumerate() {
            let oldest_age = members
                .iter()
                .map(|&member| ages[member as usize])
                .min()
                .unwrap_or(u64::MAX);
            let facts = resolver.facts_of(&members);
            let id = UnifiedId(id);
            resolver.cluster_by_id.insert(id.clone(), profile as u32);
            resolver.clusters.push(Some(Cluster {
                id,
                members,
                oldest_age,
                facts,
            }));
        }
        let record_count = resolver.records.len() as u32;
        for edge in stored.edges {
            if edge.left >= record_count || edge.right >= record_count {
                return Err(IdentityError::Snapshot(
                    "a link names no record".to_string(),
                ));
            }
            let index = resolver.edges.len() as u32;
            resolver.edges.push(Some(Edge {
                left: edge.left,
                right: edge.right,
                order: edge.order,
                evidence: LinkEvidence {
                    rule: edge.rule,
                    scores: edge.scores,
                },
                refusal: edge.refusal.map(StoredRefusal::into_refusal),
            }));
            resolver.slot_mut(edge.left).edges.push(index);
            resolver.slot_mut(edge.right).edges.push(index);
        }
        resolver.rebuild_indexes();
        resolver.next_record_age = stored.next_record_age;
        resolver.next_edge_order = stored.next_edge_order;
        resolver.oversized_blocks_skipped = stored.oversized_blocks_skipped;
        Ok(resolver)
    }

    /// Rebuilds the candidate and value indexes from the loaded records, in age order.
    fn rebuild_indexes(&mut self) {
        let compiled = Arc::clone(&self.compiled);
        let mut order: Vec<u32> = (0..self.records.len() as u32)
            .filter(|&index| self.records[index as usize].is_some())
            .collect();
        order.sort_by_key(|&index| self.slot(index).age);
        for index in order {
            let mut keys: Vec<u64> = Vec::new();
            for (key_index, key) in compiled.keys.iter().enumerate() {
                keys.extend(key_values(
                    key_index,
                    key,
                    &self.slot(index).prepared,
                    &|id| self.is_hub(id),
                ));
            }
            keys.sort_unstable();
            keys.dedup();
            for key in &keys {
                self.candidate_index.entry(*key).or_default().push(index);
            }
            self.slot_mut(index).candidate_keys = keys;
            for (slot, field) in compiled.fields.iter().enumerate() {
                if !(field.is_identifier() || compiled.hub_watched[slot]) {
                    continue;
                }
                let ids: Vec<u64> = self
                    .slot(index)
                    .prepared
                    .values(slot)
                    .iter()
                    .map(|value| value.id)
                    .collect();
                for id in ids {
                    self.value_index.entry(id).or_default().push(index);
                }
            }
        }
        let _ = GroupFacts::default();
    }
}
