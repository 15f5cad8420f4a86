//! The canonical data model: one person as one source system describes them.
//!
//! A [`SourceRecord`] is what a source sent, kept as received (its source, its id, its raw fields).
//! A [`CanonicalRecord`] is the same record mapped onto Cairn's model by the source's mapping
//! (see [`crate::source`]); matching, clustering and reconciliation only ever read canonical records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The identity of a source record: the source's name and the record's id in that source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    pub source: String,
    pub source_id: String,
}

impl RecordKey {
    pub fn new(source: impl Into<String>, source_id: impl Into<String>) -> RecordKey {
        RecordKey {
            source: source.into(),
            source_id: source_id.into(),
        }
    }

    /// Parses `source/source_id` (the form the CLI accepts); the id may itself contain slashes.
    pub fn parse(text: &str) -> Option<RecordKey> {
        let (source, source_id) = text.split_once('/')?;
        (!source.is_empty() && !source_id.is_empty()).then(|| RecordKey::new(source, source_id))
    }
}

impl std::fmt::Display for RecordKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.source, self.source_id)
    }
}

/// A record exactly as its source sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub source: String,
    pub fields: BTreeMap<String, String>,
}

/// A postal address; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl PostalAddress {
    pub fn is_empty(&self) -> bool {
        self.line.is_none()
            && self.city.is_none()
            && self.region.is_none()
            && self.postcode.is_none()
            && self.country.is_none()
    }
}

/// A date of birth as given: year, month and day digits, not necessarily a valid calendar date
/// (a typo such as month 14 is kept so that a transposed or fuzzy comparison can still use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BirthDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl BirthDate {
    /// The calendar date, when the digits form one.
    pub fn to_calendar_date(self) -> Option<chrono::NaiveDate> {
        chrono::NaiveDate::from_ymd_opt(self.year, self.month, self.day)
    }

    /// Parses `YYYY-MM-DD`, `YYYYMMDD`, `YYYY/MM/DD` or, with `day_first`, `DD/MM/YYYY` (else
    /// `MM/DD/YYYY`). Returns `None` for anything else.
    pub fn parse(text: &str, day_first: bool) -> Option<BirthDate> {
        let text = text.trim();
        let digits: Vec<&str> = text
            .split(|character: char| !character.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .collect();
        let number = |part: &str| part.parse::<u32>().ok();
        match digits.as_slice() {
            [compact] if compact.len() == 8 => Some(BirthDate {
                year: compact[0..4].parse().ok()?,
                month: number(&compact[4..6])?,
                day: number(&compact[6..8])?,
            }),
            [year, month, day] if year.len() == 4 => Some(BirthDate {
                year: year.parse().ok()?,
                month: number(month)?,
                day: number(day)?,
            }),
            [first, second, year] if year.len() == 4 => {
                let (day, month) = if day_first {
                    (number(first)?, number(second)?)
                } else {
                    (number(second)?, number(first)?)
                };
                Some(BirthDate {
                    year: year.parse().ok()?,
                    month,
                    day,
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for BirthDate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:04}-{:02}-{:02}",
            self.year, self.month, self.day
        )
    }
}

/// One source record mapped onto the canonical model. Values are as the source gave them (trimmed);
/// normalization happens when records are prepared for matching, so the original stays visible.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CanonicalRecord {
    pub key: RecordKey,
    /// When the source last changed the record (used by "most recent" reconciliation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<BirthDate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<PostalAddress>,
    /// Account and external ids by kind (`user_id`, `account_id`, `crm_id`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_ids: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// Consent per channel or purpose (`email`, `sms`, `marketing`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consents: BTreeMap<String, bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub traits: BTreeMap<String, String>,
}

impl Default for RecordKey {
    fn default() -> Self {
        RecordKey::new("", "")
    }
}

impl CanonicalRecord {
    /// An empty record with the given key.
    pub fn new(source: impl Into<String>, source_id: impl Into<String>) -> CanonicalRecord {
        CanonicalRecord {
            key: RecordKey::new(source, source_id),
            ..CanonicalRecord::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_dates_parse_in_common_layouts() {
        let expected = BirthDate {
            year: 1956,
            month: 4,
            day: 9,
        };
        assert_eq!(BirthDate::parse("19560409", true), Some(expected));
        assert_eq!(BirthDate::parse("1956-04-09", true), Some(expected));
        assert_eq!(BirthDate::parse("09/04/1956", true), Some(expected));
        assert_eq!(BirthDate::parse("04/09/1956", false), Some(expected));
        assert_eq!(BirthDate::parse("1956", true), None);
        assert_eq!(BirthDate::parse("", true), None);
        let typo = BirthDate::parse("19561409", true).expect("digits are kept");
        assert_eq!(typo.month, 14);
        assert_eq!(typo.to_calendar_date(), None);
    }

    #[test]
    fn record_keys_parse_with_slashes_in_ids() {
        assert_eq!(
            RecordKey::parse("crm/a/b"),
            Some(RecordKey::new("crm", "a/b"))
        );
        assert_eq!(RecordKey::parse("crm"), None);
        assert_eq!(RecordKey::parse("/x"), None);
    }
}
