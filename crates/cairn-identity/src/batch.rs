//! Batch resolution of whole sources without a server: records are prepared in parallel, hubs are
//! decided up front from every value's count, the records go through the same [`Resolver`] as in
//! real time (so batch and real time agree), then the batch-only passes run: sorted-neighbourhood
//! windows and, if configured, probabilistic (Fellegi-Sunter) linkage. Candidate pairs of the
//! passes are compared in parallel and applied in a fixed order, so results are deterministic.

use crate::compiled::CompiledRuleset;
use crate::features::{prepare, sort_key, PreparedRecord};
use crate::matching::{find_match, LinkEvidence, PROBABILISTIC_RULE};
use crate::probabilistic::{link_probabilistically, ProbabilisticSummary};
use crate::record::CanonicalRecord;
use crate::resolver::{Hub, Resolver, ResolverStats};
use crate::Result;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Progress of a batch run: a phase name and how far it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

/// What a batch run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BatchStats {
    pub records: usize,
    pub resolver: ResolverStats,
    pub sorted_neighbourhood_pairs: u64,
    pub sorted_neighbourhood_merges: u64,
    pub probabilistic: Option<ProbabilisticSummary>,
    pub probabilistic_merges: u64,
    pub seconds_prepare: f64,
    pub seconds_resolve: f64,
    pub seconds_passes: f64,
}

/// A finished batch run: the resolver holding every record, and the figures.
pub struct BatchOutcome {
    pub resolver: Resolver,
    pub stats: BatchStats,
}

/// Resolves all `records` (in order: earlier records are older) under a compiled ruleset.
pub fn resolve_batch(
    compiled: Arc<CompiledRuleset>,
    records: Vec<CanonicalRecord>,
    progress: &dyn Fn(Progress),
) -> Result<BatchOutcome> {
    let total = records.len() as u64;
    let started = Instant::now();
    progress(Progress {
        phase: "prepare",
        done: 0,
        total,
    });
    let prepared: Vec<PreparedRecord> = records
        .par_iter()
        .map(|record| prepare(&compiled, record))
        .collect();
    let seconds_prepare = started.elapsed().as_secs_f64();

    let mut resolver = Resolver::with_compiled(Arc::clone(&compiled));
    resolver.fix_hubs(count_hubs(&compiled, &prepared));
    let resolve_started = Instant::now();
    for (done, (record, prepared)) in records.into_iter().zip(prepared).enumerate() {
        resolver.upsert_prepared(record, prepared)?;
        if done.is_multiple_of(10_000) {
            progress(Progress {
                phase: "resolve",
                done: done as u64,
                total,
            });
        }
    }
    progress(Progress {
        phase: "resolve",
        done: total,
        total,
    });
    let seconds_resolve = resolve_started.elapsed().as_secs_f64();

    let passes_started = Instant::now();
    let mut stats = BatchStats {
        records: total as usize,
        seconds_prepare,
        seconds_resolve,
        ..BatchStats::default()
    };
    if !compiled.ruleset.candidates.sorted_neighbourhood.is_empty() {
        progress(Progress {
            phase: "sorted neighbourhood",
            done: 0,
            total,
        });
        let (pairs, merges) = sorted_neighbourhood(&compiled, &mut resolver);
        stats.sorted_neighbourhood_pairs = pairs;
        stats.sorted_neighbourhood_merges = merges;
    }
    if let Some(config) = &compiled.ruleset.probabilistic {
        progress(Progress {
            phase: "probabilistic",
            done: 0,
            total,
        });
        let (links, summary) = {
            let live = resolver.prepared_by_age();
            let sources: Vec<&str> = live.iter().map(|(_, _, key)| key.source.as_str()).collect();
            let prepared: Vec<&PreparedRecord> =
                live.iter().map(|(_, prepared, _)| *prepared).collect();
            let indexes: Vec<u32> = live.iter().map(|(index, _, _)| *index).collect();
            let (links, summary) = link_probabilistically(&compiled, config, &prepared, &sources);
            let links: Vec<(u32, u32, LinkEvidence)> = links
                .into_iter()
                .map(|link| {
                    (
                        indexes[link.left],
                        indexes[link.right],
                        LinkEvidence {
                            rule: PROBABILISTIC_RULE,
                            scores: vec![link.probability as f32, link.weight as f32],
                        },
                    )
                })
                .collect();
            (links, summary)
        };
        let mut merges = 0;
        for (left, right, evidence) in links {
            if resolver.apply_link(left, right, evidence) {
                merges += 1;
            }
        }
        stats.probabilistic = Some(summary);
        stats.probabilistic_merges = merges;
    }
    stats.seconds_passes = passes_started.elapsed().as_secs_f64();
    stats.resolver = resolver.stats();
    Ok(BatchOutcome { resolver, stats })
}

/// Values of watched fields held by more records than the hub threshold.
fn count_hubs(compiled: &CompiledRuleset, prepared: &[PreparedRecord]) -> Vec<(u64, Hub)> {
    let Some(max) = compiled.hub_max_records else {
        return Vec::new();
    };
    let mut counts: crate::prehashed::PrehashedMap<(usize, usize, &str)> = Default::default();
    for record in prepared {
        for (slot, values) in record.values.iter().enumerate() {
            if !compiled.hub_watched[slot] {
                continue;
            }
            for value in values.iter() {
                let entry = counts
                    .entry(value.id)
                    .or_insert((0, slot, &value.normalized));
                entry.0 += 1;
            }
        }
    }
    let mut hubs: Vec<(u64, Hub)> = counts
        .into_iter()
        .filter(|(_, (count, _, _))| *count > max)
        .map(|(id, (count, slot, value))| {
            (
                id,
                Hub {
                    field: compiled.fields[slot].to_string(),
                    value: value.to_string(),
                    records: count,
                },
            )
        })
        .collect();
    hubs.sort_by(|left, right| {
        (&left.1.field, &left.1.value).cmp(&(&right.1.field, &right.1.value))
    });
    hubs
}

/// Sorted-neighbourhood passes: records sorted by each pass's key; each compared with the next
/// `window - 1`. Returns (pairs compared, merges).
fn sorted_neighbourhood(compiled: &CompiledRuleset, resolver: &mut Resolver) -> (u64, u64) {
    let mut pairs_compared = 0;
    let mut merges = 0;
    for pass in &compiled.ruleset.candidates.sorted_neighbourhood {
        let Some(key) = compiled.compile_key(&pass.key) else {
            continue;
        };
        let links: Vec<(u32, u32, LinkEvidence)> = {
            let live = resolver.prepared_by_age();
            let mut sorted: Vec<(String, usize)> = live
                .iter()
                .enumerate()
                .filter_map(|(position, (_, prepared, _))| {
                    sort_key(&key, prepared).map(|text| (text, position))
                })
                .collect();
            sorted.sort();
            let window = pass.window.max(2);
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            for start in 0..sorted.len() {
                for offset in 1..window {
                    let Some((_, other)) = sorted.get(start + offset) else {
                        break;
                    };
                    let (left, right) = (sorted[start].1, *other);
                    let (left, right) = (left.min(right), left.max(right));
                    if resolver.same_profile_at(live[left].0, live[right].0) {
                        continue;
                    }
                    if !compiled.may_link_sources(&live[left].2.source, &live[right].2.source) {
                        continue;
                    }
                    pairs.push((left, right));
                }
            }
            pairs.sort_unstable();
            pairs.dedup();
            pairs_compared += pairs.len() as u64;
            let is_hub = |id: u64| resolver.is_hub(id);
            let found: Vec<Option<LinkEvidence>> = pairs
                .par_iter()
                .map(|&(left, right)| find_match(compiled, live[left].1, live[right].1, &is_hub))
                .collect();
            pairs
                .into_iter()
                .zip(found)
                .filter_map(|((left, right), evidence)| {
                    evidence.map(|evidence| (live[right].0, live[left].0, evidence))
                })
                .collect()
        };
        for (left, right, evidence) in links {
            if resolver.apply_link(left, right, evidence) {
                merges += 1;
            }
        }
    }
    (pairs_compared, merges)
}

/// Groups `(key, id)` assignments into profiles: id → keys, in first-seen order.
pub fn profiles_of<K: Clone + Ord, V: Clone + Ord>(assignments: &[(K, V)]) -> BTreeMap<V, Vec<K>> {
    let mut profiles: BTreeMap<V, Vec<K>> = BTreeMap::new();
    for (key, id) in assignments {
        profiles.entry(id.clone()).or_default().push(key.clone());
    }
    profiles
}
