//! Comparators: how one method scores two values. Scores are in 0..=1; `passes` says whether the
//! method's threshold is met. String metrics come from `strsim`, phonetic codes from `rphonetic`.

use crate::features::Value;
use crate::record::BirthDate;
use crate::ruleset::Method;

/// The outcome of comparing two values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub similarity: f64,
    pub passes: bool,
}

/// Compares two values of the same field with `method`.
pub fn compare_values(method: &Method, left: &Value, right: &Value) -> Score {
    let equal = |passes: bool| Score {
        similarity: if passes { 1.0 } else { 0.0 },
        passes,
    };
    match *method {
        Method::Exact => equal(left.raw.is_some() && left.raw == right.raw),
        // Values of one field with equal ids have equal normalized text (the id is a 64-bit hash
        // of it; the text comparison confirms).
        Method::ExactNormalized => {
            equal(left.id == right.id && left.normalized == right.normalized)
        }
        Method::JaroWinkler { threshold } => {
            let similarity = crate::metrics::jaro_winkler(&left.normalized, &right.normalized);
            Score {
                similarity,
                passes: similarity >= threshold,
            }
        }
        Method::DamerauLevenshtein { max_distance } => {
            let longest = left
                .normalized
                .chars()
                .count()
                .max(right.normalized.chars().count());
            let distance = edit_distance(&left.normalized, &right.normalized, max_distance);
            Score {
                similarity: if longest == 0 {
                    1.0
                } else {
                    1.0 - distance.min(longest) as f64 / longest as f64
                },
                passes: distance <= max_distance,
            }
        }
        Method::Phonetic => equal(
            left.phonetic
                .iter()
                .any(|code| right.phonetic.contains(code)),
        ),
        Method::TokenSet { threshold } => {
            let similarity = if left.tokens.is_empty() && right.tokens.is_empty() {
                token_overlap(&left.normalized, &right.normalized)
            } else {
                sorted_overlap(&left.tokens, &right.tokens)
            };
            Score {
                similarity,
                passes: similarity >= threshold,
            }
        }
        Method::Date {
            tolerance_days,
            transposed,
        } => match (left.date, right.date) {
            (Some(left), Some(right)) => compare_dates(left, right, tolerance_days, transposed),
            _ => equal(left.normalized == right.normalized),
        },
    }
}

/// Damerau-Levenshtein distance (optimal string alignment: adjacent transpositions count once)
/// with a cheap exit when the lengths alone exceed `bound` (then `bound + 1` is returned).
pub fn edit_distance(left: &str, right: &str, bound: usize) -> usize {
    if left == right {
        return 0;
    }
    let (left_length, right_length) = (left.chars().count(), right.chars().count());
    if left_length.abs_diff(right_length) > bound {
        return bound + 1;
    }
    crate::metrics::osa_distance(left, right)
}

/// Overlap of two sorted, de-duplicated token hash lists: |A∩B| / min(|A|,|B|).
pub fn sorted_overlap(left: &[u64], right: &[u64]) -> f64 {
    let smaller = left.len().min(right.len());
    if smaller == 0 {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < left.len() && j < right.len() {
        match left[i].cmp(&right[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / smaller as f64
}

/// Token overlap |A∩B| / min(|A|,|B|) of whitespace-separated tokens (1 when one set contains the
/// other, whatever the order).
pub fn token_overlap(left: &str, right: &str) -> f64 {
    let mut left_tokens: Vec<&str> = left.split_whitespace().collect();
    let mut right_tokens: Vec<&str> = right.split_whitespace().collect();
    left_tokens.sort_unstable();
    left_tokens.dedup();
    right_tokens.sort_unstable();
    right_tokens.dedup();
    let smaller = left_tokens.len().min(right_tokens.len());
    if smaller == 0 {
        return 0.0;
    }
    let common = left_tokens
        .iter()
        .filter(|token| right_tokens.binary_search(token).is_ok())
        .count();
    common as f64 / smaller as f64
}

/// Dates within `tolerance_days` (similarity falls linearly to 0 past the tolerance), or with day
/// and month swapped when `transposed` (similarity 0.9). Digits that are no calendar date compare
/// by equality.
pub fn compare_dates(
    left: BirthDate,
    right: BirthDate,
    tolerance_days: u32,
    transposed: bool,
) -> Score {
    if left == right {
        return Score {
            similarity: 1.0,
            passes: true,
        };
    }
    if transposed && left.year == right.year && left.month == right.day && left.day == right.month {
        return Score {
            similarity: 0.9,
            passes: true,
        };
    }
    match (left.to_calendar_date(), right.to_calendar_date()) {
        (Some(left), Some(right)) => {
            let days = (left - right).num_days().unsigned_abs();
            let limit = u64::from(tolerance_days);
            Score {
                similarity: 1.0 - (days as f64 / (limit as f64 + 1.0)).min(1.0),
                passes: days <= limit,
            }
        }
        _ => Score {
            similarity: 0.0,
            passes: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::phonetic_codes;

    fn value(text: &str) -> Value {
        Value {
            raw: Some(text.into()),
            normalized: text.to_lowercase().into(),
            id: crate::features::value_id(0, &text.to_lowercase()),
            phonetic: phonetic_codes(&text.to_lowercase()).into_boxed_slice(),
            tokens: crate::features::token_hashes(&text.to_lowercase()),
            date: BirthDate::parse(text, true),
        }
    }

    fn passes(method: Method, left: &str, right: &str) -> bool {
        compare_values(&method, &value(left), &value(right)).passes
    }

    #[test]
    fn exact_methods() {
        assert!(passes(Method::Exact, "Ann", "Ann"));
        assert!(!passes(Method::Exact, "Ann", "ann"));
        assert!(passes(Method::ExactNormalized, "Ann", "ann"));
    }

    #[test]
    fn jaro_winkler_threshold() {
        let method = Method::JaroWinkler { threshold: 0.9 };
        assert!(passes(method, "martha", "marhta"));
        assert!(!passes(method, "martha", "robert"));
        let score = compare_values(&method, &value("dwayne"), &value("duane"));
        assert!((score.similarity - 0.84).abs() < 0.01, "{score:?}");
    }

    #[test]
    fn damerau_levenshtein_counts_a_transposition_once() {
        let method = Method::DamerauLevenshtein { max_distance: 1 };
        assert!(passes(method, "smith", "smtih"));
        assert!(passes(method, "smith", "smyth"));
        assert!(!passes(method, "smith", "smythe"));
    }

    #[test]
    fn phonetic_codes_meet_across_spellings() {
        assert!(passes(Method::Phonetic, "smith", "smyth"));
        assert!(passes(Method::Phonetic, "catherine", "kathryn"));
        assert!(!passes(Method::Phonetic, "smith", "jones"));
    }

    #[test]
    fn token_sets_ignore_order_and_extra_tokens() {
        assert_eq!(token_overlap("12 high street", "high street 12"), 1.0);
        assert_eq!(
            token_overlap("12 high street flat 2", "12 high street"),
            1.0
        );
        assert!((token_overlap("12 high street", "14 high road") - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(token_overlap("", "a"), 0.0);
    }

    #[test]
    fn dates_with_tolerance_and_transposition() {
        let exact = Method::Date {
            tolerance_days: 0,
            transposed: false,
        };
        let lenient = Method::Date {
            tolerance_days: 2,
            transposed: true,
        };
        assert!(passes(exact, "1990-02-01", "19900201"));
        assert!(!passes(exact, "1990-02-01", "1990-01-02"));
        assert!(passes(lenient, "1990-02-01", "1990-01-02"));
        assert!(passes(lenient, "1990-02-01", "1990-02-03"));
        assert!(!passes(lenient, "1990-02-01", "1990-02-04"));
        // Digits that are no calendar date still compare by equality or transposition.
        assert!(passes(lenient, "1990-14-02", "1990-14-02"));
        assert!(!passes(lenient, "1990-14-02", "1990-14-03"));
    }
}
