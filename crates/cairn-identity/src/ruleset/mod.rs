//! The ruleset: the whole identity configuration of a workspace, as one TOML or JSON document.
//!
//! ```toml
//! link_type = "dedupe_and_link"        # or "link_only": only records of different sources match
//!
//! [[rule]]
//! name = "same email"
//! criteria = [{ field = "email", method = "exact_normalized" }]
//!
//! [[rule]]
//! name = "name, birth date and postcode"
//! criteria = [
//!   { field = "first_name", method = "jaro_winkler", threshold = 0.9 },
//!   { field = "last_name", method = "phonetic" },
//!   { field = "date_of_birth", method = "date", tolerance_days = 0, transposed = true },
//!   { field = "postcode", method = "exact_normalized", blank = "matches" },
//! ]
//! block_on = ["last_name:phonetic+date_of_birth:year"]   # optional; derived when omitted
//! ```
//!
//! Records match if any rule matches; a rule matches if all its criteria pass. See `docs/identity.md`
//! for every section (sources, normalization, protection, hubs, candidates, reconciliation,
//! probabilistic).

mod field;
mod protection;

pub use field::{KeyPart, KeySpec, KeyTransform, MatchField};
pub use protection::{BlockedPattern, HubConfig, IdentifierLimit, ProtectionConfig};

use crate::document::{parse_document, DocumentFormat};
use crate::error::Result;
use crate::normalize::NormalizationOptions;
use crate::source::SourceConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which pairs of records may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    /// Any two records (de-duplication within a source and linkage across sources).
    #[default]
    DedupeAndLink,
    /// Only records of different sources (each source is known to be free of duplicates).
    LinkOnly,
}

/// The identity configuration: sources, normalization, rules, protection, reconciliation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    #[serde(default)]
    pub link_type: LinkType,
    #[serde(default, rename = "source", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub normalization: NormalizationOptions,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub protection: ProtectionConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubs: Option<HubConfig>,
    #[serde(default)]
    pub candidates: CandidateConfig,
    #[serde(default)]
    pub reconciliation: ReconciliationConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilistic: Option<ProbabilisticConfig>,
}

impl Ruleset {
    /// Parses and validates a ruleset document; `origin` names it in errors.
    pub fn parse(text: &str, format: DocumentFormat, origin: &str) -> Result<Ruleset> {
        let ruleset: Ruleset = parse_document(text, format, origin)?;
        ruleset.check(origin)?;
        Ok(ruleset)
    }

    /// Reads a ruleset file (`.json` is JSON, anything else TOML).
    pub fn from_file(path: &std::path::Path) -> Result<Ruleset> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::IdentityError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ruleset::parse(
            &text,
            DocumentFormat::from_path(path),
            &path.display().to_string(),
        )
    }

    /// Checks that hold across sections (each section checks itself while parsing).
    fn check(&self, origin: &str) -> Result<()> {
        let problem = |message: String| crate::IdentityError::Config {
            origin: origin.to_string(),
            line: 1,
            column: 1,
            message,
        };
        if self.rules.is_empty() && self.probabilistic.is_none() {
            return Err(problem(
                "the ruleset has neither a [[rule]] nor a [probabilistic] section".to_string(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for rule in &self.rules {
            if !names.insert(rule.name.as_str()) {
                return Err(problem(format!("two rules are named `{}`", rule.name)));
            }
        }
        crate::source::SourceCatalog::new(&self.sources).map_err(problem)?;
        Ok(())
    }

    /// A stable fingerprint of the ruleset (snapshots refuse to load under a different one).
    pub fn fingerprint(&self) -> u64 {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(&canonical)
    }
}

/// One match rule: a conjunction of criteria.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct Rule {
    pub name: String,
    pub criteria: Vec<Criterion>,
    /// Blocking keys for candidate generation; derived from the criteria when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_on: Vec<KeySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    criteria: Vec<Criterion>,
    #[serde(default)]
    block_on: Vec<KeySpec>,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Rule, String> {
        if raw.name.trim().is_empty() {
            return Err("a rule needs a name".to_string());
        }
        if raw.criteria.is_empty() {
            return Err(format!("rule `{}` has no criteria", raw.name));
        }
        let rule = Rule {
            name: raw.name,
            criteria: raw.criteria,
            block_on: raw.block_on,
        };
        if rule.block_on.is_empty() && rule.derived_blocking_keys().is_empty() {
            return Err(format!(
                "rule `{}` has no criterion to find candidates with (an exact, phonetic or \
                 same-day date criterion that does not match blanks): add `block_on`",
                rule.name
            ));
        }
        Ok(rule)
    }
}

impl Rule {
    /// The blocking keys of the rule: `block_on` if given, otherwise one key made of every criterion
    /// that needs equal values (exact, exact-normalized, same-day dates) or, failing that, one key per
    /// phonetic criterion.
    pub fn blocking_keys(&self) -> Vec<KeySpec> {
        if self.block_on.is_empty() {
            self.derived_blocking_keys()
        } else {
            self.block_on.clone()
        }
    }

    fn derived_blocking_keys(&self) -> Vec<KeySpec> {
        let mut equal_parts = Vec::new();
        let mut phonetic_keys = Vec::new();
        for criterion in &self.criteria {
            if criterion.blank == BlankPolicy::Matches {
                continue;
            }
            let transform = match criterion.method {
                Method::Exact | Method::ExactNormalized => Some(KeyTransform::Value),
                Method::Date {
                    tolerance_days: 0,
                    transposed,
                } => Some(if transposed {
                    KeyTransform::DateAnyOrder
                } else {
                    KeyTransform::Value
                }),
                Method::Phonetic => {
                    phonetic_keys.push(KeySpec {
                        parts: vec![KeyPart {
                            field: criterion.field.clone(),
                            transform: KeyTransform::Phonetic,
                        }],
                    });
                    None
                }
                _ => None,
            };
            if let Some(transform) = transform {
                equal_parts.push(KeyPart {
                    field: criterion.field.clone(),
                    transform,
                });
            }
        }
        if equal_parts.is_empty() {
            phonetic_keys
        } else {
            vec![KeySpec { parts: equal_parts }]
        }
    }
}

/// What a criterion does when either record has no value for its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlankPolicy {
    /// A blank never matches (the default).
    #[default]
    Never,
    /// A blank matches anything (the criterion passes).
    Matches,
}

/// How two values of a field are compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    /// Equal as given (trimmed).
    Exact,
    /// Equal once normalized (email rules, E.164 phones, folded names and addresses).
    ExactNormalized,
    /// Jaro-Winkler similarity of the normalized values at least `threshold` (0..1).
    JaroWinkler { threshold: f64 },
    /// Damerau-Levenshtein distance of the normalized values at most `max_distance`.
    DamerauLevenshtein { max_distance: usize },
    /// Equal Double Metaphone codes (primary or alternate).
    Phonetic,
    /// Token overlap |A∩B| / min(|A|,|B|) of the normalized values at least `threshold`.
    TokenSet { threshold: f64 },
    /// Dates within `tolerance_days`, or (with `transposed`) equal with day and month swapped.
    Date {
        tolerance_days: u32,
        transposed: bool,
    },
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::ExactNormalized => "exact_normalized",
            Method::JaroWinkler { .. } => "jaro_winkler",
            Method::DamerauLevenshtein { .. } => "damerau_levenshtein",
            Method::Phonetic => "phonetic",
            Method::TokenSet { .. } => "token_set",
            Method::Date { .. } => "date",
        }
    }
}

/// One criterion of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCriterion")]
pub struct Criterion {
    pub field: MatchField,
    #[serde(flatten)]
    pub method: Method,
    #[serde(default)]
    pub blank: BlankPolicy,
}

/// A criterion or comparison level as written: a method name and its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCriterion {
    field: MatchField,
    method: String,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    max_distance: Option<usize>,
    #[serde(default)]
    tolerance_days: Option<u32>,
    #[serde(default)]
    transposed: Option<bool>,
    #[serde(default)]
    blank: BlankPolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMethod {
    method: String,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    max_distance: Option<usize>,
    #[serde(default)]
    tolerance_days: Option<u32>,
    #[serde(default)]
    transposed: Option<bool>,
}

impl RawMethod {
    /// Validates the method's name and parameters for `field`.
    pub(crate) fn into_method(self, field: &MatchField) -> Result<Method, String> {
        let RawMethod {
            method,
            threshold,
            max_distance,
            tolerance_days,
            transposed,
        } = self;
        let name = method.as_str();
        let unexpected = |parameter: &str| {
            Err(format!(
                "method `{name}` takes no `{parameter}` (field `{field}`)"
            ))
        };
        let threshold_in_range = |threshold: Option<f64>| match threshold {
            Some(value) if (0.0..=1.0).contains(&value) => Ok(value),
            Some(value) => Err(format!(
                "`threshold` of `{name}` must be between 0 and 1, not {value}"
            )),
            None => Err(format!(
                "method `{name}` needs a `threshold` between 0 and 1"
            )),
        };
        let is_date = *field == MatchField::DateOfBirth;
        let method = match name {
            "exact" => Method::Exact,
            "exact_normalized" => Method::ExactNormalized,
            "jaro_winkler" => Method::JaroWinkler {
                threshold: threshold_in_range(threshold)?,
            },
            "damerau_levenshtein" => Method::DamerauLevenshtein {
                max_distance: max_distance.ok_or_else(|| {
                    "method `damerau_levenshtein` needs `max_distance`".to_string()
                })?,
            },
            "phonetic" => Method::Phonetic,
            "token_set" => Method::TokenSet {
                threshold: threshold_in_range(threshold)?,
            },
            "date" => {
                if !is_date {
                    return Err(format!(
                        "method `date` applies to date_of_birth, not `{field}`"
                    ));
                }
                Method::Date {
                    tolerance_days: tolerance_days.unwrap_or(0),
                    transposed: transposed.unwrap_or(false),
                }
            }
            other => {
                return Err(format!(
                    "unknown method `{other}` (expected exact, exact_normalized, jaro_winkler, \
                     damerau_levenshtein, phonetic, token_set or date)"
                ))
            }
        };
        if threshold.is_some()
            && !matches!(method, Method::JaroWinkler { .. } | Method::TokenSet { .. })
        {
            return unexpected("threshold");
        }
        if max_distance.is_some() && !matches!(method, Method::DamerauLevenshtein { .. }) {
            return unexpected("max_distance");
        }
        if (tolerance_days.is_some() || transposed.is_some())
            && !matches!(method, Method::Date { .. })
        {
            return unexpected("tolerance_days/transposed");
        }
        if is_date
            && !matches!(
                method,
                Method::Date { .. }
                    | Method::Exact
                    | Method::ExactNormalized
                    | Method::DamerauLevenshtein { .. }
            )
        {
            return Err(format!(
                "date_of_birth is compared with `date`, `exact`, `exact_normalized` or \
                 `damerau_levenshtein` (digit typos), not `{name}`"
            ));
        }
        Ok(method)
    }
}

impl TryFrom<RawCriterion> for Criterion {
    type Error = String;

    fn try_from(raw: RawCriterion) -> Result<Criterion, String> {
        let method = RawMethod {
            method: raw.method,
            threshold: raw.threshold,
            max_distance: raw.max_distance,
            tolerance_days: raw.tolerance_days,
            transposed: raw.transposed,
        }
        .into_method(&raw.field)?;
        Ok(Criterion {
            field: raw.field,
            method,
            blank: raw.blank,
        })
    }
}

/// Candidate generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateConfig {
    /// A blocking key value shared by more records than this is skipped when looking for
    /// candidates (it would make one record's comparisons unbounded); skipped keys are counted.
    #[serde(default = "default_max_block_size")]
    pub max_block_size: usize,
    /// Batch only: sorted-neighbourhood passes (records sorted by the key; each compared with the
    /// next `window - 1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorted_neighbourhood: Vec<SortedNeighbourhood>,
}

fn default_max_block_size() -> usize {
    1_000
}

impl Default for CandidateConfig {
    fn default() -> Self {
        CandidateConfig {
            max_block_size: default_max_block_size(),
            sorted_neighbourhood: Vec::new(),
        }
    }
}

/// A sorted-neighbourhood pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortedNeighbourhood {
    pub key: KeySpec,
    pub window: usize,
}

/// How one reconciled field picks its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconciliationStrategy {
    /// The value of the most trusted source (lowest priority number); ties: most recent.
    #[default]
    SourcePriority,
    /// The most recently updated value; ties: source priority.
    MostRecent,
    /// The most frequent value; ties: source priority, then most recent.
    MostFrequent,
}

/// Reconciliation per field (`first_name`, `date_of_birth`, `trait.plan`, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationConfig {
    #[serde(default)]
    pub default: ReconciliationStrategy,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, ReconciliationStrategy>,
}

/// Probabilistic (Fellegi-Sunter) linkage for batch runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProbabilistic")]
pub struct ProbabilisticConfig {
    /// Pairs with a match probability at least this are linked.
    pub threshold_probability: f64,
    /// Blocking keys that produce the candidate pairs.
    pub blocking: Vec<KeySpec>,
    pub comparisons: Vec<Comparison>,
    pub max_iterations: usize,
    /// Random pairs sampled to estimate the u probabilities.
    pub u_sample_pairs: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbabilistic {
    threshold_probability: f64,
    blocking: Vec<KeySpec>,
    #[serde(rename = "comparison")]
    comparisons: Vec<Comparison>,
    #[serde(default)]
    max_iterations: Option<usize>,
    #[serde(default)]
    u_sample_pairs: Option<usize>,
}

impl TryFrom<RawProbabilistic> for ProbabilisticConfig {
    type Error = String;

    fn try_from(raw: RawProbabilistic) -> Result<ProbabilisticConfig, String> {
        if !(0.0..1.0).contains(&raw.threshold_probability) || raw.threshold_probability <= 0.0 {
            return Err(format!(
                "`threshold_probability` must be in (0, 1), not {}",
                raw.threshold_probability
            ));
        }
        if raw.blocking.is_empty() {
            return Err("[probabilistic] needs at least one `blocking` key".to_string());
        }
        if raw.comparisons.is_empty() {
            return Err(
                "[probabilistic] needs at least one [[probabilistic.comparison]]".to_string(),
            );
        }
        Ok(ProbabilisticConfig {
            threshold_probability: raw.threshold_probability,
            blocking: raw.blocking,
            comparisons: raw.comparisons,
            max_iterations: raw.max_iterations.unwrap_or(25),
            u_sample_pairs: raw.u_sample_pairs.unwrap_or(1_000_000),
        })
    }
}

/// A probabilistic comparison of one field: levels tried in order; a pair falls into the first
/// level it passes, else into the implicit "else" level; blanks carry no weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawComparison")]
pub struct Comparison {
    pub field: MatchField,
    pub levels: Vec<Method>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComparison {
    field: MatchField,
    levels: Vec<RawMethod>,
}

impl TryFrom<RawComparison> for Comparison {
    type Error = String;

    fn try_from(raw: RawComparison) -> Result<Comparison, String> {
        if raw.levels.is_empty() {
            return Err(format!("comparison of `{}` has no levels", raw.field));
        }
        let levels = raw
            .levels
            .into_iter()
            .map(|level| level.into_method(&raw.field))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Comparison {
            field: raw.field,
            levels,
        })
    }
}

#[cfg(test)]
mod tests;
