//! Evaluating match rules on a pair of prepared records: the fast path (`find_match`, first matching
//! rule with its scores) and the full account (`explain_rules`, every rule and criterion with values
//! and scores) behind `cairn identity explain`.

use crate::compare::{compare_values, Score};
use crate::compiled::{CompiledCriterion, CompiledRuleset};
use crate::features::{PreparedRecord, Value};
use crate::ruleset::BlankPolicy;
use serde::{Deserialize, Serialize};

/// Why a link exists: the first rule (in ruleset order) that matched and each criterion's score
/// (`-1` when the criterion passed on a blank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkEvidence {
    pub rule: u16,
    pub scores: Vec<f32>,
}

/// The rule number of links made by probabilistic linkage (their scores are the match probability
/// and the match weight).
pub const PROBABILISTIC_RULE: u16 = u16::MAX;

/// Score used in evidence for a criterion that passed because a value was blank.
pub const BLANK_SCORE: f32 = -1.0;

/// The first rule (in evaluation order: strongest identifier first) that matches the pair, if any. Values whose id `is_hub` are treated as blank.
pub fn find_match(
    compiled: &CompiledRuleset,
    left: &PreparedRecord,
    right: &PreparedRecord,
    is_hub: &dyn Fn(u64) -> bool,
) -> Option<LinkEvidence> {
    'rules: for &index in &compiled.evaluation_order {
        let rule = &compiled.rules[index];
        let mut scores = Vec::with_capacity(rule.criteria.len());
        for criterion in &rule.criteria {
            match evaluate_criterion(criterion, left, right, is_hub) {
                CriterionResult::Passed(score) => scores.push(score.similarity as f32),
                CriterionResult::BlankPassed => scores.push(BLANK_SCORE),
                CriterionResult::Failed(_) | CriterionResult::BlankFailed => continue 'rules,
            }
        }
        return Some(LinkEvidence {
            rule: u16::try_from(index).unwrap_or(u16::MAX),
            scores,
        });
    }
    None
}

enum CriterionResult<'a> {
    Passed(Score),
    Failed(Option<(&'a Value, &'a Value, Score)>),
    BlankPassed,
    BlankFailed,
}

fn evaluate_criterion<'a>(
    criterion: &CompiledCriterion,
    left: &'a PreparedRecord,
    right: &'a PreparedRecord,
    is_hub: &dyn Fn(u64) -> bool,
) -> CriterionResult<'a> {
    let left_values = left.values(criterion.slot);
    let right_values = right.values(criterion.slot);
    let left_blank = !left_values.iter().any(|value| !is_hub(value.id));
    let right_blank = !right_values.iter().any(|value| !is_hub(value.id));
    if left_blank || right_blank {
        return match criterion.blank {
            BlankPolicy::Matches => CriterionResult::BlankPassed,
            BlankPolicy::Never => CriterionResult::BlankFailed,
        };
    }
    let mut best: Option<(&Value, &Value, Score)> = None;
    for left_value in left_values.iter().filter(|value| !is_hub(value.id)) {
        for right_value in right_values.iter().filter(|value| !is_hub(value.id)) {
            let score = compare_values(&criterion.method, left_value, right_value);
            if score.passes {
                return CriterionResult::Passed(score);
            }
            if best.is_none_or(|(_, _, known)| score.similarity > known.similarity) {
                best = Some((left_value, right_value, score));
            }
        }
    }
    CriterionResult::Failed(best)
}

/// One criterion's outcome in an explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionOutcome {
    pub field: String,
    pub method: String,
    /// The values compared (normalized); `None` when blank.
    pub left: Option<String>,
    pub right: Option<String>,
    pub score: Option<f64>,
    pub passed: bool,
    pub note: Option<String>,
}

/// One rule's outcome in an explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleOutcome {
    pub rule: String,
    pub matched: bool,
    pub criteria: Vec<CriterionOutcome>,
}

/// Every rule's outcome on a pair, with values and scores.
pub fn explain_rules(
    compiled: &CompiledRuleset,
    left: &PreparedRecord,
    right: &PreparedRecord,
    is_hub: &dyn Fn(u64) -> bool,
) -> Vec<RuleOutcome> {
    compiled
        .rules
        .iter()
        .map(|rule| {
            let criteria: Vec<CriterionOutcome> = rule
                .criteria
                .iter()
                .map(|criterion| {
                    let field = compiled.fields[criterion.slot].to_string();
                    let method = criterion.method.name().to_string();
                    let blank_note = |passed: bool| CriterionOutcome {
                        field: field.clone(),
                        method: method.clone(),
                        left: first_usable(left, criterion, is_hub),
                        right: first_usable(right, criterion, is_hub),
                        score: None,
                        passed,
                        note: Some(if passed {
                            "blank (matches anything)".to_string()
                        } else {
                            "blank (never matches)".to_string()
                        }),
                    };
                    match evaluate_criterion(criterion, left, right, is_hub) {
                        CriterionResult::BlankPassed => blank_note(true),
                        CriterionResult::BlankFailed => blank_note(false),
                        CriterionResult::Passed(score) => {
                            let (left_value, right_value) =
                                passing_pair(criterion, left, right, is_hub);
                            CriterionOutcome {
                                field,
                                method,
                                left: left_value,
                                right: right_value,
                                score: Some(score.similarity),
                                passed: true,
                                note: None,
                            }
                        }
                        CriterionResult::Failed(best) => CriterionOutcome {
                            field,
                            method,
                            left: best.map(|(value, _, _)| value.normalized.to_string()),
                            right: best.map(|(_, value, _)| value.normalized.to_string()),
                            score: best.map(|(_, _, score)| score.similarity),
                            passed: false,
                            note: None,
                        },
                    }
                })
                .collect();
            RuleOutcome {
                rule: rule.name.clone(),
                matched: criteria.iter().all(|criterion| criterion.passed),
                criteria,
            }
        })
        .collect()
}

fn first_usable(
    record: &PreparedRecord,
    criterion: &CompiledCriterion,
    is_hub: &dyn Fn(u64) -> bool,
) -> Option<String> {
    record
        .values(criterion.slot)
        .iter()
        .find(|value| !is_hub(value.id))
        .map(|value| value.normalized.to_string())
}

fn passing_pair(
    criterion: &CompiledCriterion,
    left: &PreparedRecord,
    right: &PreparedRecord,
    is_hub: &dyn Fn(u64) -> bool,
) -> (Option<String>, Option<String>) {
    for left_value in left
        .values(criterion.slot)
        .iter()
        .filter(|value| !is_hub(value.id))
    {
        for right_value in right
            .values(criterion.slot)
            .iter()
            .filter(|value| !is_hub(value.id))
        {
            if compare_values(&criterion.method, left_value, right_value).passes {
                return (
                    Some(left_value.normalized.to_string()),
                    Some(right_value.normalized.to_string()),
                );
            }
        }
    }
    (None, None)
}
