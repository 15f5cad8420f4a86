//! Merge protection and hub settings: blocked values, per-identifier limits with priorities, the
//! maximum cluster size, and the hub threshold.

use super::field::MatchField;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Merge protection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionConfig {
    /// Values never used for matching (compared case-insensitively with the value as given and
    /// normalized). An empty value is always blank.
    #[serde(default = "default_blocked_values")]
    pub blocked_values: Vec<String>,
    /// Regexes over normalized values; a match blocks the value (for one field or for all).
    #[serde(default)]
    pub blocked_patterns: Vec<BlockedPattern>,
    /// Per-identifier limits: a merge that would give a profile more distinct values of the
    /// identifier than `max` is refused; links are tried strongest first (lowest `priority`), so the
    /// link through the lower-priority identifier is the one dropped.
    #[serde(default, rename = "limit")]
    pub limits: Vec<IdentifierLimit>,
    /// No cluster grows beyond this many source records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cluster_size: Option<usize>,
}

fn default_blocked_values() -> Vec<String> {
    [
        "null",
        "none",
        "nil",
        "n/a",
        "na",
        "-",
        "-1",
        "0",
        "unknown",
        "undefined",
        "test",
    ]
    .iter()
    .map(|value| value.to_string())
    .collect()
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            blocked_values: default_blocked_values(),
            blocked_patterns: Vec::new(),
            limits: Vec::new(),
            max_cluster_size: None,
        }
    }
}

/// A blocked-value regex, for every field or for one.
#[derive(Debug, Clone)]
pub struct BlockedPattern {
    pub field: Option<MatchField>,
    pub regex: Regex,
}

impl PartialEq for BlockedPattern {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field && self.regex.as_str() == other.regex.as_str()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBlockedPattern {
    Everywhere(String),
    ForField { field: MatchField, pattern: String },
}

impl<'de> Deserialize<'de> for BlockedPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (field, pattern) = match RawBlockedPattern::deserialize(deserializer)? {
            RawBlockedPattern::Everywhere(pattern) => (None, pattern),
            RawBlockedPattern::ForField { field, pattern } => (Some(field), pattern),
        };
        let regex = Regex::new(&pattern).map_err(|error| {
            serde::de::Error::custom(format!(
                "invalid regex `{pattern}`: {}",
                error
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("syntax error")
                    .trim()
            ))
        })?;
        Ok(BlockedPattern { field, regex })
    }
}

impl Serialize for BlockedPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match &self.field {
            None => serializer.serialize_str(self.regex.as_str()),
            Some(field) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("field", field)?;
                map.serialize_entry("pattern", self.regex.as_str())?;
                map.end()
            }
        }
    }
}

/// At most `max` distinct values of `identifier` per profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierLimit {
    pub identifier: MatchField,
    pub max: usize,
    /// Lower is stronger: links through stronger identifiers are tried first.
    pub priority: u32,
}

/// Hub protection: a normalized value of an identifier field carried by more than `max_records`
/// source records stops being used for matching (and candidate generation) and is reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    pub max_records: usize,
    /// The fields watched (default: every identifier field: email, phone, address_line, address,
    /// postcode, external ids, device_id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<MatchField>,
}

impl HubConfig {
    pub fn watches(&self, field: &MatchField) -> bool {
        if self.fields.is_empty() {
            field.is_identifier()
        } else {
            self.fields.contains(field)
        }
    }
}
