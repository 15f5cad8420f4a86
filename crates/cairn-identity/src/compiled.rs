//! A ruleset compiled for fast use: every field the configuration mentions gets a slot, blocking
//! keys are de-duplicated, regexes and the nickname table are built once, rules carry the priority
//! their links are tried in.

use crate::normalize::NicknameTable;
use crate::ruleset::{BlankPolicy, KeySpec, KeyTransform, MatchField, Method, Ruleset};
use crate::source::SourceCatalog;
use crate::{IdentityError, Result};
use regex::Regex;
use std::collections::HashMap;

/// Index of a field in a prepared record.
pub type Slot = usize;

/// A criterion with its field resolved to a slot.
#[derive(Debug, Clone)]
pub struct CompiledCriterion {
    pub slot: Slot,
    pub method: Method,
    pub blank: BlankPolicy,
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub name: String,
    pub criteria: Vec<CompiledCriterion>,
    /// Links found by this rule are tried in this order (lower first): the best priority among the
    /// limited identifiers the rule compares, `u32::MAX` if it compares none.
    pub link_priority: u32,
}

/// A blocking key with its parts resolved to slots.
#[derive(Debug, Clone)]
pub struct CompiledKey {
    pub spec: KeySpec,
    pub parts: Vec<(Slot, KeyTransform)>,
}

/// A per-identifier limit resolved to a slot.
#[derive(Debug, Clone)]
pub struct CompiledLimit {
    pub slot: Slot,
    pub field: MatchField,
    pub max: usize,
    pub priority: u32,
}

/// The compiled configuration shared by the resolver, batch runs and explanations.
#[derive(Debug)]
pub struct CompiledRuleset {
    pub ruleset: Ruleset,
    pub sources: SourceCatalog,
    pub fields: Vec<MatchField>,
    slot_by_field: HashMap<MatchField, Slot>,
    /// Per slot: whether phonetic codes are needed.
    pub needs_phonetic: Vec<bool>,
    /// Per slot: whether the value as given must be kept (for `exact`).
    pub needs_raw: Vec<bool>,
    /// Per slot: whether token hashes are needed (for `token_set`).
    pub needs_tokens: Vec<bool>,
    pub rules: Vec<CompiledRule>,
    /// Rule indexes in the order links are evaluated: strongest identifier first (link priority),
    /// then ruleset order; a link's evidence is the first rule in this order that matches.
    pub evaluation_order: Vec<usize>,
    /// Real-time candidate keys (the rules' blocking keys, de-duplicated).
    pub keys: Vec<CompiledKey>,
    pub nicknames: NicknameTable,
    /// Blocked values, lower case (compared ASCII-case-insensitively).
    pub blocked_values: Vec<String>,
    pub blocked_patterns: Vec<(Option<Slot>, Regex)>,
    pub limits: Vec<CompiledLimit>,
    /// Per slot: whether hub protection watches it (all false when hubs are off).
    pub hub_watched: Vec<bool>,
    pub hub_max_records: Option<usize>,
    pub fingerprint: u64,
}

impl CompiledRuleset {
    pub fn new(ruleset: Ruleset) -> Result<CompiledRuleset> {
        let sources =
            SourceCatalog::new(&ruleset.sources).map_err(|message| IdentityError::Config {
                origin: "ruleset".to_string(),
                line: 1,
                column: 1,
                message,
            })?;
        let mut builder = SlotBuilder::default();
        for rule in &ruleset.rules {
            for criterion in &rule.criteria {
                let slot = builder.slot(&criterion.field);
                builder.mark(slot, &criterion.method);
            }
        }
        let mut key_specs: Vec<KeySpec> = Vec::new();
        for rule in &ruleset.rules {
            for key in rule.blocking_keys() {
                if !key_specs.contains(&key) {
                    key_specs.push(key);
                }
            }
        }
        let keys = key_specs
            .into_iter()
            .map(|spec| builder.key(spec))
            .collect();
        for pass in &ruleset.candidates.sorted_neighbourhood {
            builder.key(pass.key.clone());
        }
        if let Some(probabilistic) = &ruleset.probabilistic {
            for key in &probabilistic.blocking {
                builder.key(key.clone());
            }
            for comparison in &probabilistic.comparisons {
                let slot = builder.slot(&comparison.field);
                for level in &comparison.levels {
                    builder.mark(slot, level);
                }
            }
        }
        let limits: Vec<CompiledLimit> = ruleset
            .protection
            .limits
            .iter()
            .map(|limit| CompiledLimit {
                slot: builder.slot(&limit.identifier),
                field: limit.identifier.clone(),
                max: limit.max,
                priority: limit.priority,
            })
            .collect();
        let blocked_patterns = ruleset
            .protection
            .blocked_patterns
            .iter()
            .map(|pattern| {
                (
                    pattern.field.as_ref().map(|field| builder.slot(field)),
                    pattern.regex.clone(),
                )
            })
            .collect();
        if let Some(hubs) = &ruleset.hubs {
            for field in &hubs.fields {
                builder.slot(field);
            }
        }
        let rules: Vec<CompiledRule> = ruleset
            .rules
            .iter()
            .map(|rule| {
                let criteria: Vec<CompiledCriterion> = rule
                    .criteria
                    .iter()
                    .map(|criterion| CompiledCriterion {
                        slot: builder.slot(&criterion.field),
                        method: criterion.method,
                        blank: criterion.blank,
                    })
                    .collect();
                let link_priority = limits
                    .iter()
                    .filter(|limit| {
                        criteria
                            .iter()
                            .any(|criterion| criterion.slot == limit.slot)
                    })
                    .map(|limit| limit.priority)
                    .min()
                    .unwrap_or(u32::MAX);
                CompiledRule {
                    name: rule.name.clone(),
                    criteria,
                    link_priority,
                }
            })
            .collect();
        let mut evaluation_order: Vec<usize> = (0..rules.len()).collect();
        evaluation_order.sort_by_key(|&index| (rules[index].link_priority, index));
        let SlotBuilder {
            fields,
            slot_by_field,
            needs_phonetic,
            needs_raw,
            needs_tokens,
        } = builder;
        let hub_watched = fields
            .iter()
            .map(|field| {
                ruleset
                    .hubs
                    .as_ref()
                    .is_some_and(|hubs| hubs.watches(field))
            })
            .collect();
        let blocked_values = ruleset
            .protection
            .blocked_values
            .iter()
            .map(|value| value.trim().to_lowercase())
            .collect();
        Ok(CompiledRuleset {
            nicknames: NicknameTable::from_options(&ruleset.normalization),
            hub_max_records: ruleset.hubs.as_ref().map(|hubs| hubs.max_records),
            fingerprint: ruleset.fingerprint(),
            sources,
            fields,
            slot_by_field,
            needs_phonetic,
            needs_raw,
            needs_tokens,
            rules,
            evaluation_order,
            keys,
            blocked_values,
            blocked_patterns,
            limits,
            hub_watched,
            ruleset,
        })
    }

    /// The slot of a field, if the configuration uses it.
    pub fn slot_of(&self, field: &MatchField) -> Option<Slot> {
        self.slot_by_field.get(field).copied()
    }

    /// A key (not necessarily a real-time one) compiled against this ruleset's slots.
    pub fn compile_key(&self, spec: &KeySpec) -> Option<CompiledKey> {
        let parts = spec
            .parts
            .iter()
            .map(|part| Some((self.slot_of(&part.field)?, part.transform.clone())))
            .collect::<Option<Vec<_>>>()?;
        Some(CompiledKey {
            spec: spec.clone(),
            parts,
        })
    }

    /// Whether two records of these sources may be compared at all.
    pub fn may_link_sources(&self, left: &str, right: &str) -> bool {
        match self.ruleset.link_type {
            crate::ruleset::LinkType::DedupeAndLink => true,
            crate::ruleset::LinkType::LinkOnly => left != right,
        }
    }
}

#[derive(Default)]
struct SlotBuilder {
    fields: Vec<MatchField>,
    slot_by_field: HashMap<MatchField, Slot>,
    needs_phonetic: Vec<bool>,
    needs_raw: Vec<bool>,
    needs_tokens: Vec<bool>,
}

impl SlotBuilder {
    fn slot(&mut self, field: &MatchField) -> Slot {
        if let Some(slot) = self.slot_by_field.get(field) {
            return *slot;
        }
        let slot = self.fields.len();
        self.fields.push(field.clone());
        self.slot_by_field.insert(field.clone(), slot);
        self.needs_phonetic.push(false);
        self.needs_raw.push(false);
        self.needs_tokens.push(false);
        slot
    }

    fn mark(&mut self, slot: Slot, method: &Method) {
        match method {
            Method::Phonetic => self.needs_phonetic[slot] = true,
            Method::Exact => self.needs_raw[slot] = true,
            Method::TokenSet { .. } => self.needs_tokens[slot] = true,
            _ => {}
        }
    }

    fn key(&mut self, spec: KeySpec) -> CompiledKey {
        let parts = spec
            .parts
            .iter()
            .map(|part| {
                let slot = self.slot(&part.field);
                if part.transform == KeyTransform::Phonetic {
                    self.needs_phonetic[slot] = true;
                }
                (slot, part.transform.clone())
            })
            .collect();
        CompiledKey { spec, parts }
    }
}
