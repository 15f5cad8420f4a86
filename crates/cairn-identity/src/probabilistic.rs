//! Probabilistic record linkage (Fellegi-Sunter), for batch runs, estimated without labels as
//! Splink does: u probabilities from randomly sampled pairs (almost all non-matches); m
//! probabilities by expectation maximisation with u fixed, one training session per blocking key
//! in which the comparisons of the key's own fields are left out (blocked pairs always agree on
//! them, which would teach EM nothing but bias), averaged over the sessions; finally the match
//! rate λ among all candidate pairs by EM with m and u fixed. A pair's match probability is λ·Πm / (λ·Πm + (1-λ)·Πu) over the
//! comparison levels it falls into (blank values carry no weight); pairs at or above the threshold
//! are linked.

use crate::compare::{compare_values, edit_distance};
use crate::compiled::{CompiledRuleset, Slot};
use crate::features::{key_values, PreparedRecord, Value};
use crate::prehashed::PrehashedMap;
use crate::ruleset::{Method, ProbabilisticConfig};
use rayon::prelude::*;

/// A linked pair (positions in the input slice).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilisticLink {
    pub left: usize,
    pub right: usize,
    pub probability: f64,
    /// log2 Bayes factor plus prior: log2(λΠm / ((1-λ)Πu)).
    pub weight: f64,
}

/// The estimated model and counts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProbabilisticSummary {
    pub candidate_pairs: u64,
    pub sampled_pairs: u64,
    pub lambda: f64,
    pub iterations: usize,
    /// Per comparison, per level (the last is "else"): m and u.
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub links: u64,
}

const BITS_PER_COMPARISON: u32 = 4;
const NULL_LEVEL: u64 = 0xF;
const MAX_COMPARISONS: usize = 16;
const FLOOR: f64 = 1e-6;

struct Comparisons {
    slots: Vec<Slot>,
    levels: Vec<Vec<Method>>,
}

impl Comparisons {
    fn level_count(&self, comparison: usize) -> usize {
        self.levels[comparison].len() + 1
    }

    /// The packed levels of a pair (4 bits per comparison, 0xF for blank). Each value pair's
    /// level is the first level it passes; a field with several values takes its best pair.
    fn pattern(&self, left: &PreparedRecord, right: &PreparedRecord) -> u64 {
        let mut pattern = 0u64;
        for (comparison, (&slot, methods)) in self.slots.iter().zip(&self.levels).enumerate() {
            let (left_values, right_values) = (left.values(slot), right.values(slot));
            let level = if left_values.is_empty() || right_values.is_empty() {
                NULL_LEVEL
            } else {
                let mut best = methods.len();
                for left_value in left_values {
                    for right_value in right_values {
                        best = best.min(first_passing_level(methods, left_value, right_value));
                    }
                }
                best as u64
            };
            pattern |= level << (comparison as u32 * BITS_PER_COMPARISON);
        }
        pattern
    }
}

/// The first level a value pair passes (`levels.len()` for none), computing each metric once.
fn first_passing_level(levels: &[Method], left: &Value, right: &Value) -> usize {
    let mut jaro_winkler: Option<f64> = None;
    let mut distance: Option<usize> = None;
    for (index, method) in levels.iter().enumerate() {
        let passes = match *method {
            Method::JaroWinkler { threshold } => {
                *jaro_winkler.get_or_insert_with(|| {
                    crate::metrics::jaro_winkler(&left.normalized, &right.normalized)
                }) >= threshold
            }
            Method::DamerauLevenshtein { max_distance } => {
                let bound = levels
                    .iter()
                    .filter_map(|level| match level {
                        Method::DamerauLevenshtein { max_distance } => Some(*max_distance),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(max_distance);
                *distance.get_or_insert_with(|| {
                    edit_distance(&left.normalized, &right.normalized, bound)
                }) <= max_distance
            }
            _ => compare_values(method, left, right).passes,
        };
        if passes {
            return index;
        }
    }
    levels.len()
}

fn level_of(pattern: u64, comparison: usize) -> u64 {
    (pattern >> (comparison as u32 * BITS_PER_COMPARISON)) & 0xF
}

/// Runs probabilistic linkage over `records` (with their source names, for `link_only`).
pub fn link_probabilistically(
    compiled: &CompiledRuleset,
    config: &ProbabilisticConfig,
    records: &[&PreparedRecord],
    sources: &[&str],
) -> (Vec<ProbabilisticLink>, ProbabilisticSummary) {
    let comparisons = Comparisons {
        slots: config
            .comparisons
            .iter()
            .filter_map(|comparison| compiled.slot_of(&comparison.field))
            .take(MAX_COMPARISONS)
            .collect(),
        levels: config
            .comparisons
            .iter()
            .take(MAX_COMPARISONS)
            .map(|comparison| comparison.levels.iter().take(14).copied().collect())
            .collect(),
    };
    let (u, sampled_pairs) = estimate_u(compiled, &comparisons, config, records, sources);
    // Every key's pairs, and the patterns of their union (computed once).
    let pairs_per_key: Vec<Vec<u64>> = config
        .blocking
        .iter()
        .map(|key| packed_candidate_pairs(compiled, std::slice::from_ref(key), records, sources))
        .collect();
    let mut union: Vec<u64> = pairs_per_key.iter().flatten().copied().collect();
    union.par_sort_unstable();
    union.dedup();
    let patterns: Vec<u64> = union
        .par_iter()
        .map(|&pair| {
            let (left, right) = unpack(pair);
            comparisons.pattern(records[left], records[right])
        })
        .collect();
    let pattern_of = |pair: u64| -> u64 {
        union
            .binary_search(&pair)
            .map_or(NULL_LEVEL, |position| patterns[position])
    };
    // Training: one EM session per blocking key, without the comparisons of the key's fields.
    let mut m_sums: Vec<Vec<f64>> = (0..comparisons.slots.len())
        .map(|comparison| vec![0.0; comparisons.level_count(comparison)])
        .collect();
    let mut m_sessions = vec![0usize; comparisons.slots.len()];
    let mut iterations = 0;
    for (key, key_pairs) in config.blocking.iter().zip(&pairs_per_key) {
        let key_slots: Vec<Slot> = key
            .parts
            .iter()
            .filter_map(|part| compiled.slot_of(&part.field))
            .collect();
        let excluded: Vec<bool> = comparisons
            .slots
            .iter()
            .map(|slot| key_slots.contains(slot))
            .collect();
        let key_patterns: Vec<u64> = key_pairs.iter().map(|&pair| pattern_of(pair)).collect();
        let distinct = distinct_patterns_of(&key_patterns);
        let (m, _, session_iterations) =
            estimate_m(&comparisons, config, &distinct, &u, &excluded, None);
        iterations += session_iterations;
        for (comparison, levels) in m.into_iter().enumerate() {
            if excluded[comparison] {
                continue;
            }
            m_sessions[comparison] += 1;
            for (sum, value) in m_sums[comparison].iter_mut().zip(levels) {
                *sum += value;
            }
        }
    }
    let initial = initial_m(&comparisons);
    let m: Vec<Vec<f64>> = m_sums
        .into_iter()
        .zip(&m_sessions)
        .zip(initial)
        .map(|((sums, &sessions), initial)| {
            if sessions == 0 {
                initial
            } else {
                sums.into_iter().map(|sum| sum / sessions as f64).collect()
            }
        })
        .collect();
    // Prediction: every blocking key's pairs; λ by EM with m and u fixed.
    let pairs: Vec<(usize, usize)> = union.iter().map(|&pair| unpack(pair)).collect();
    let distinct = distinct_patterns_of(&patterns);
    let no_exclusions = vec![false; comparisons.slots.len()];
    let (_, lambda, lambda_iterations) = estimate_m(
        &comparisons,
        config,
        &distinct,
        &u,
        &no_exclusions,
        Some(&m),
    );
    let iterations = iterations + lambda_iterations;
    let score = |pattern: u64| -> (f64, f64) {
        let (mut log_m, mut log_u) = (lambda.ln(), (1.0 - lambda).ln());
        for comparison in 0..comparisons.slots.len() {
            let level = level_of(pattern, comparison);
            if level == NULL_LEVEL {
                continue;
            }
            log_m += m[comparison][level as usize].ln();
            log_u += u[comparison][level as usize].ln();
        }
        let weight = (log_m - log_u) / std::f64::consts::LN_2;
        let probability = 1.0 / (1.0 + (log_u - log_m).exp());
        (probability, weight)
    };
    let links: Vec<ProbabilisticLink> = pairs
        .iter()
        .zip(&patterns)
        .filter_map(|(&(left, right), &pattern)| {
            let (probability, weight) = score(pattern);
            (probability >= config.threshold_probability).then_some(ProbabilisticLink {
                left,
                right,
                probability,
                weight,
            })
        })
        .collect();
    let summary = ProbabilisticSummary {
        candidate_pairs: pairs.len() as u64,
        sampled_pairs,
        lambda,
        iterations,
        m,
        u,
        links: links.len() as u64,
    };
    (links, summary)
}

/// Pairs sharing a blocking key value (blocks larger than `max_block_size` are skipped), sorted
/// and de-duplicated.
fn unpack(pair: u64) -> (usize, usize) {
    ((pair >> 32) as usize, (pair & 0xFFFF_FFFF) as usize)
}

fn packed_candidate_pairs(
    compiled: &CompiledRuleset,
    keys: &[crate::ruleset::KeySpec],
    records: &[&PreparedRecord],
    sources: &[&str],
) -> Vec<u64> {
    let max_block = compiled.ruleset.candidates.max_block_size;
    let mut packed: Vec<u64> = Vec::new();
    for (key_index, spec) in keys.iter().enumerate() {
        let Some(key) = compiled.compile_key(spec) else {
            continue;
        };
        let mut blocks: PrehashedMap<Vec<u32>> = PrehashedMap::default();
        for (position, record) in records.iter().enumerate() {
            for value in key_values(1_000 + key_index, &key, record, &|_| false) {
                blocks.entry(value).or_default().push(position as u32);
            }
        }
        let mut block_list: Vec<Vec<u32>> = blocks.into_values().collect();
        block_list.sort_unstable();
        for block in block_list {
            if block.len() > max_block {
                continue;
            }
            for (offset, &left) in block.iter().enumerate() {
                for &right in &block[offset + 1..] {
                    if !compiled.may_link_sources(sources[left as usize], sources[right as usize]) {
                        continue;
                    }
                    let (low, high) = (left.min(right), left.max(right));
                    packed.push((u64::from(low) << 32) | u64::from(high));
                }
            }
        }
    }
    packed.par_sort_unstable();
    packed.dedup();
    packed
}

/// u probabilities from uniformly sampled random pairs (a fixed seed: runs are repeatable).
fn estimate_u(
    compiled: &CompiledRuleset,
    comparisons: &Comparisons,
    config: &ProbabilisticConfig,
    records: &[&PreparedRecord],
    sources: &[&str],
) -> (Vec<Vec<f64>>, u64) {
    let count = records.len();
    let mut counts: Vec<Vec<f64>> = (0..comparisons.slots.len())
        .map(|comparison| vec![0.0; comparisons.level_count(comparison)])
        .collect();
    if count < 2 {
        return (smooth(counts), 0);
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let wanted = config.u_sample_pairs.min(count * (count - 1) / 2).max(1);
    let mut pairs = Vec::with_capacity(wanted);
    let mut attempts = 0usize;
    while pairs.len() < wanted && attempts < wanted * 20 {
        attempts += 1;
        let left = (next() % count as u64) as usize;
        let right = (next() % count as u64) as usize;
        if left == right || !compiled.may_link_sources(sources[left], sources[right]) {
            continue;
        }
        pairs.push((left, right));
    }
    let patterns: Vec<u64> = pairs
        .par_iter()
        .map(|&(left, right)| comparisons.pattern(records[left], records[right]))
        .collect();
    for pattern in &patterns {
        for (comparison, levels) in counts.iter_mut().enumerate() {
            let level = level_of(*pattern, comparison);
            if level != NULL_LEVEL {
                levels[level as usize] += 1.0;
            }
        }
    }
    (smooth(counts), pairs.len() as u64)
}

fn smooth(counts: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    counts
        .into_iter()
        .map(|levels| {
            let total: f64 = levels.iter().sum();
            levels
                .iter()
                .map(|count| {
                    if total > 0.0 {
                        (count / total).max(FLOOR)
                    } else {
                        1.0 / levels.len() as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// Expectation maximisation over distinct patterns with u fixed. Excluded comparisons carry no
/// weight and keep their m. With `fixed_m`, only λ is estimated.
fn estimate_m(
    comparisons: &Comparisons,
    config: &ProbabilisticConfig,
    patterns: &[(u64, f64)],
    u: &[Vec<f64>],
    excluded: &[bool],
    fixed_m: Option<&[Vec<f64>]>,
) -> (Vec<Vec<f64>>, f64, usize) {
    let mut m: Vec<Vec<f64>> = fixed_m.map_or_else(|| initial_m(comparisons), <[Vec<f64>]>::to_vec);
    let mut lambda: f64 = 0.3;
    let mut iterations = 0;
    for _ in 0..config.max_iterations.max(1) {
        iterations += 1;
        let mut match_mass = 0.0;
        let mut total_mass = 0.0;
        let mut level_mass: Vec<Vec<f64>> =
            m.iter().map(|levels| vec![0.0; levels.len()]).collect();
        for &(pattern, count) in patterns {
            let (mut log_m, mut log_u) = (lambda.ln(), (1.0 - lambda).ln());
            for comparison in 0..m.len() {
                let level = level_of(pattern, comparison);
                if level == NULL_LEVEL || excluded[comparison] {
                    continue;
                }
                log_m += m[comparison][level as usize].ln();
                log_u += u[comparison][level as usize].ln();
            }
            let posterior = 1.0 / (1.0 + (log_u - log_m).exp());
            match_mass += posterior * count;
            total_mass += count;
            for (comparison, levels) in level_mass.iter_mut().enumerate() {
                let level = level_of(pattern, comparison);
                if level != NULL_LEVEL {
                    levels[level as usize] += posterior * count;
                }
            }
        }
        if total_mass == 0.0 {
            break;
        }
        let new_lambda = (match_mass / total_mass).clamp(FLOOR, 1.0 - FLOOR);
        let new_m = match fixed_m {
            Some(fixed) => fixed.to_vec(),
            None => smooth(level_mass)
                .into_iter()
                .zip(&m)
                .zip(excluded)
                .map(|((new, old), &excluded)| if excluded { old.clone() } else { new })
                .collect(),
        };
        let change = (new_lambda - lambda).abs().max(
            new_m
                .iter()
                .flatten()
                .zip(m.iter().flatten())
                .map(|(new, old)| (new - old).abs())
                .fold(0.0, f64::max),
        );
        lambda = new_lambda;
        m = new_m;
        if change < 1e-6 {
            break;
        }
    }
    (m, lambda, iterations)
}

/// Starting m: matches mostly agree (0.9 on the first level, the rest spread).
fn initial_m(comparisons: &Comparisons) -> Vec<Vec<f64>> {
    (0..comparisons.slots.len())
        .map(|comparison| {
            let levels = comparisons.level_count(comparison);
            // Start believing matches mostly agree: 0.9 on the first level, the rest spread.
            (0..levels)
                .map(|level| {
                    if levels == 1 {
                        1.0
                    } else if level == 0 {
                        0.9
                    } else {
                        0.1 / (levels - 1) as f64
                    }
                })
                .collect()
        })
        .collect()
}

fn distinct_patterns_of(patterns: &[u64]) -> Vec<(u64, f64)> {
    let mut counts: PrehashedMap<f64> = PrehashedMap::default();
    for pattern in patterns {
        *counts.entry(*pattern).or_default() += 1.0;
    }
    let mut distinct: Vec<(u64, f64)> = counts.into_iter().collect();
    distinct.sort_unstable_by_key(|(pattern, _)| *pattern);
    distinct
}
