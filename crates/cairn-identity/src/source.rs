//! Sources and their mappings onto the canonical model.
//!
//! A source is a named system (a CRM, a service desk, a shop, …) with a kind, a priority for
//! reconciliation, the field that holds its record ids and a mapping from its fields to canonical
//! fields. Mapping targets are validated while the document is parsed: an unknown target is an error
//! with the line it is on.
//!
//! ```toml
//! [[source]]
//! name = "crm"
//! kind = "crm"
//! priority = 1              # lower is more trusted; used by source-priority reconciliation
//! id = "contact_id"         # the field holding the record id
//! updated_at = "modified"   # optional: when the source last changed the record
//! default_region = "GB"     # phones without a country code are read as numbers of this region
//! [source.fields]
//! first_name = "given_name"
//! "address.line" = ["street", "house_number"]   # several fields are joined with a space
//! emails = ["email", "work_email"]               # list targets take one value per field
//! "external_id.user_id" = "login"
//! "consent.email" = "newsletter_opt_in"
//! "trait.plan" = "plan"
//! ```

use crate::record::{BirthDate, CanonicalRecord, PostalAddress, RecordKey};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The raw fields of one source record: field name → values (one per CSV cell; several for a JSON
/// array).
pub type RawFields = BTreeMap<String, Vec<String>>;

/// What kind of system a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Crm,
    Service,
    Commerce,
    Marketing,
    Web,
    #[default]
    Custom,
}

/// A canonical field a source field can be mapped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CanonicalTarget {
    FirstName,
    LastName,
    FullName,
    DateOfBirth,
    Emails,
    Phones,
    AddressLine,
    AddressCity,
    AddressRegion,
    AddressPostcode,
    AddressCountry,
    ExternalId(String),
    DeviceIds,
    Consent(String),
    Trait(String),
}

impl CanonicalTarget {
    /// Parses a target name such as `first_name`, `address.city` or `external_id.user_id`.
    pub fn parse(name: &str) -> Result<CanonicalTarget, String> {
        let named = |prefix: &str, make: fn(String) -> CanonicalTarget| {
            name.strip_prefix(prefix).map(|rest| {
                if rest.is_empty() {
                    Err(format!("`{name}` needs a name after the dot"))
                } else {
                    Ok(make(rest.to_string()))
                }
            })
        };
        if let Some(result) = named("external_id.", CanonicalTarget::ExternalId)
            .or_else(|| named("consent.", CanonicalTarget::Consent))
            .or_else(|| named("trait.", CanonicalTarget::Trait))
        {
            return result;
        }
        Ok(match name {
            "first_name" => CanonicalTarget::FirstName,
            "last_name" => CanonicalTarget::LastName,
            "full_name" => CanonicalTarget::FullName,
            "date_of_birth" => CanonicalTarget::DateOfBirth,
            "email" | "emails" => CanonicalTarget::Emails,
            "phone" | "phones" => CanonicalTarget::Phones,
            "address.line" => CanonicalTarget::AddressLine,
            "address.city" => CanonicalTarget::AddressCity,
            "address.region" => CanonicalTarget::AddressRegion,
            "address.postcode" => CanonicalTarget::AddressPostcode,
            "address.country" => CanonicalTarget::AddressCountry,
            "device_id" | "device_ids" => CanonicalTarget::DeviceIds,
            _ => {
                return Err(format!(
                    "unknown canonical field `{name}` (expected first_name, last_name, full_name, \
                     date_of_birth, emails, phones, address.line, address.city, address.region, \
                     address.postcode, address.country, external_id.KIND, device_ids, \
                     consent.CHANNEL or trait.NAME)"
                ))
            }
        })
    }

    /// Whether every mapped field gives a separate value (emails, phones, ids) rather than a part
    /// joined into one value (names, address parts).
    fn takes_one_value_per_field(&self) -> bool {
        matches!(
            self,
            CanonicalTarget::Emails
                | CanonicalTarget::Phones
                | CanonicalTarget::ExternalId(_)
                | CanonicalTarget::DeviceIds
        )
    }
}

impl std::fmt::Display for CanonicalTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            CanonicalTarget::FirstName => "first_name",
            CanonicalTarget::LastName => "last_name",
            CanonicalTarget::FullName => "full_name",
            CanonicalTarget::DateOfBirth => "date_of_birth",
            CanonicalTarget::Emails => "emails",
            CanonicalTarget::Phones => "phones",
            CanonicalTarget::AddressLine => "address.line",
            CanonicalTarget::AddressCity => "address.city",
            CanonicalTarget::AddressRegion => "address.region",
            CanonicalTarget::AddressPostcode => "address.postcode",
            CanonicalTarget::AddressCountry => "address.country",
            CanonicalTarget::ExternalId(kind) => return write!(formatter, "external_id.{kind}"),
            CanonicalTarget::DeviceIds => "device_ids",
            CanonicalTarget::Consent(channel) => return write!(formatter, "consent.{channel}"),
            CanonicalTarget::Trait(name) => return write!(formatter, "trait.{name}"),
        };
        formatter.write_str(name)
    }
}

impl<'de> Deserialize<'de> for CanonicalTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        CanonicalTarget::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl Serialize for CanonicalTarget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One source field or several (joined, or one value each for list targets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SourceFields {
    One(String),
    Several(Vec<String>),
}

impl SourceFields {
    pub fn names(&self) -> &[String] {
        match self {
            SourceFields::One(name) => std::slice::from_ref(name),
            SourceFields::Several(names) => names,
        }
    }
}

/// A phone region (ISO 3166 alpha-2, as `phonenumber` knows it), checked while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRegion(pub phonenumber::country::Id);

impl<'de> Deserialize<'de> for PhoneRegion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.to_ascii_uppercase()
            .parse::<phonenumber::country::Id>()
            .map(PhoneRegion)
            .map_err(|_| serde::de::Error::custom(format!("unknown phone region `{code}`")))
    }
}

impl Serialize for PhoneRegion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_ref())
    }
}

fn default_priority() -> u32 {
    100
}

fn default_true() -> bool {
    true
}

/// A named source with its mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name, as records and the CLI's `--source NAME=FILE` refer to it.
    pub name: String,
    /// Further names sharing this mapping (for example both sides of a linkage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    #[serde(default)]
    pub kind: SourceKind,
    /// Lower is more trusted (1 first); default 100.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// The source field holding the record id.
    pub id: String,
    /// The source field holding the last-modified time (RFC 3339, `YYYY-MM-DD HH:MM:SS` or Unix
    /// seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Region for phone numbers written without a country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_region: Option<PhoneRegion>,
    /// Read `01/02/1990` as 1 February (default) rather than 2 January.
    #[serde(default = "default_true")]
    pub day_first: bool,
    /// Canonical field → source field(s).
    pub fields: BTreeMap<CanonicalTarget, SourceFields>,
}

impl SourceConfig {
    /// Every name this mapping serves.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.also.iter().map(String::as_str))
    }

    /// Every source field the mapping reads (the id, the update time and every mapped field).
    pub fn referenced_fields(&self) -> Vec<&str> {
        let mut fields = vec![self.id.as_str()];
        fields.extend(self.updated_at.as_deref());
        for sources in self.fields.values() {
            fields.extend(sources.names().iter().map(String::as_str));
        }
        fields
    }

    /// Checks that a file's columns hold every field the mapping reads.
    pub fn check_columns(&self, columns: &[String]) -> Result<(), String> {
        let missing: Vec<&str> = self
            .referenced_fields()
            .into_iter()
            .filter(|field| !columns.iter().any(|column| column == field))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the mapping of source `{}` reads field(s) {} that the file does not have (columns: {})",
                self.name,
                missing
                    .iter()
                    .map(|field| format!("`{field}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                columns.join(", ")
            ))
        }
    }

    /// Maps one raw record onto the canonical model. `source` is the name the record arrived under.
    pub fn map_record(&self, source: &str, fields: &RawFields) -> Result<CanonicalRecord, String> {
        let values_of = |name: &str| -> Vec<&str> {
            fields
                .get(name)
                .map(|values| {
                    values
                        .iter()
                        .map(|value| value.trim())
                        .filter(|value| !value.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let source_id = values_of(&self.id)
            .first()
            .map(|id| id.to_string())
            .ok_or_else(|| format!("the id field `{}` is empty", self.id))?;
        let mut record = CanonicalRecord::new(source, source_id);
        if let Some(field) = &self.updated_at {
            if let Some(text) = values_of(field).first() {
                record.updated_at = Some(
                    parse_timestamp(text)
                        .ok_or_else(|| format!("`{field}` is not a timestamp: `{text}`"))?,
                );
            }
        }
        let mut address = PostalAddress::default();
        for (target, sources) in &self.fields {
            let values: Vec<&str> = sources
                .names()
                .iter()
                .flat_map(|name| values_of(name))
                .collect();
            if values.is_empty() {
                continue;
            }
            if target.takes_one_value_per_field() {
                let owned = values.iter().map(|value| value.to_string());
                match target {
                    CanonicalTarget::Emails => record.emails.extend(owned),
                    CanonicalTarget::Phones => record.phones.extend(owned),
                    CanonicalTarget::DeviceIds => record.device_ids.extend(owned),
                    CanonicalTarget::ExternalId(kind) => record
                        .external_ids
                        .entry(kind.clone())
                        .or_default()
                        .extend(owned),
                    _ => unreachable!("only list targets take one value per field"),
                }
                continue;
            }
            let joined = values.join(" ");
            match target {
                CanonicalTarget::FirstName => record.first_name = Some(joined),
                CanonicalTarget::LastName => record.last_name = Some(joined),
                CanonicalTarget::FullName => record.full_name = Some(joined),
                CanonicalTarget::DateOfBirth => {
                    record.date_of_birth = BirthDate::parse(&joined, self.day_first)
                }
                CanonicalTarget::AddressLine => address.line = Some(joined),
                CanonicalTarget::AddressCity => address.city = Some(joined),
                CanonicalTarget::AddressRegion => address.region = Some(joined),
                CanonicalTarget::AddressPostcode => address.postcode = Some(joined),
                CanonicalTarget::AddressCountry => address.country = Some(joined),
                CanonicalTarget::Consent(channel) => {
                    let consent = parse_consent(&joined).ok_or_else(|| {
                        format!("consent `{channel}` is neither yes nor no: `{joined}`")
                    })?;
                    record.consents.insert(channel.clone(), consent);
                }
                CanonicalTarget::Trait(name) => {
                    record.traits.insert(name.clone(), joined);
                }
                CanonicalTarget::Emails
                | CanonicalTarget::Phones
                | CanonicalTarget::DeviceIds
                | CanonicalTarget::ExternalId(_) => {
                    unreachable!("list targets are handled above")
                }
            }
        }
        if !address.is_empty() {
            record.addresses.push(address);
        }
        Ok(record)
    }

    /// The default phone region, if any.
    pub fn phone_region(&self) -> Option<phonenumber::country::Id> {
        self.default_region.map(|region| region.0)
    }
}

/// Parses RFC 3339, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` or Unix seconds, as UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    for layout in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(parsed) = NaiveDateTime::parse_from_str(text, layout) {
            return Some(Utc.from_utc_datetime(&parsed));
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?));
    }
    text.parse::<i64>()
        .ok()
        .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single())
}

fn parse_consent(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "opt-in" | "opted_in" | "granted" => Some(true),
        "false" | "no" | "n" | "0" | "opt-out" | "opted_out" | "denied" => Some(false),
        _ => None,
    }
}

/// The sources of a configuration, by every name they serve.
#[derive(Debug, Clone, Default)]
pub struct SourceCatalog {
    by_name: BTreeMap<String, SourceConfig>,
}

impl SourceCatalog {
    pub fn new(sources: &[SourceConfig]) -> Result<SourceCatalog, String> {
        let mut by_name = BTreeMap::new();
        for source in sources {
            for name in source.names() {
                if by_name.insert(name.to_string(), source.clone()).is_some() {
                    return Err(format!("source `{name}` is declared twice"));
                }
            }
        }
        Ok(SourceCatalog { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&SourceConfig> {
        self.by_name.get(name)
    }

    /// The reconciliation priority of a source (lower is more trusted; unknown sources last).
    pub fn priority(&self, name: &str) -> u32 {
        self.by_name
            .get(name)
            .map_or(u32::MAX, |source| source.priority)
    }

    /// The default phone region of a source.
    pub fn phone_region(&self, name: &str) -> Option<phonenumber::country::Id> {
        self.by_name.get(name).and_then(SourceConfig::phone_region)
    }

    /// Maps a raw record of a declared source.
    pub fn map_record(&self, source: &str, fields: &RawFields) -> Result<CanonicalRecord, String> {
        let config = self
            .get(source)
            .ok_or_else(|| format!("unknown source `{source}`"))?;
        config.map_record(source, fields)
    }

    /// The key a raw record will have once mapped.
    pub fn key_of(&self, source: &str, fields: &RawFields) -> Option<RecordKey> {
        let config = self.get(source)?;
        let id = fields.get(&config.id)?.first()?.trim();
        (!id.is_empty()).then(|| RecordKey::new(source, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SourceConfig {
        crate::document::parse_document(
            r#"
name = "crm"
kind = "crm"
priority = 1
id = "id"
updated_at = "modified"
default_region = "gb"
[fields]
first_name = "given"
last_name = "family"
date_of_birth = "dob"
emails = ["email", "email2"]
"address.line" = ["number", "street"]
"address.postcode" = "zip"
"external_id.user_id" = "login"
"consent.email" = "optin"
"trait.plan" = "plan"
"#,
            crate::document::DocumentFormat::Toml,
            "test",
        )
        .expect("valid mapping")
    }

    fn raw(pairs: &[(&str, &str)]) -> RawFields {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), vec![value.to_string()]))
            .collect()
    }

    #[test]
    fn maps_every_kind_of_target() {
        let record = config()
            .map_record(
                "crm",
                &raw(&[
                    ("id", " 42 "),
                    ("modified", "2024-01-02T03:04:05Z"),
                    ("given", "Ann"),
                    ("family", "Lee"),
                    ("dob", "1990-02-01"),
                    ("email", "a@x.org"),
                    ("email2", ""),
                    ("number", "12"),
                    ("street", "High St"),
                    ("zip", "SW1A 1AA"),
                    ("login", "u1"),
                    ("optin", "yes"),
                    ("plan", "gold"),
                ]),
            )
            .expect("maps");
        assert_eq!(record.key, RecordKey::new("crm", "42"));
        assert_eq!(record.first_name.as_deref(), Some("Ann"));
        assert_eq!(record.emails, vec!["a@x.org"]);
        assert_eq!(record.addresses[0].line.as_deref(), Some("12 High St"));
        assert_eq!(record.addresses[0].postcode.as_deref(), Some("SW1A 1AA"));
        assert_eq!(record.external_ids["user_id"], vec!["u1"]);
        assert!(record.consents["email"]);
        assert_eq!(record.traits["plan"], "gold");
        assert_eq!(record.date_of_birth.map(|date| date.month), Some(2));
        assert!(record.updated_at.is_some());
    }

    #[test]
    fn empty_ids_and_bad_values_are_errors() {
        let mapping = config();
        assert!(mapping
            .map_record("crm", &raw(&[("id", " ")]))
            .unwrap_err()
            .contains("id field"));
        assert!(mapping
            .map_record("crm", &raw(&[("id", "1"), ("optin", "perhaps")]))
            .unwrap_err()
            .contains("consent"));
        assert!(mapping
            .map_record("crm", &raw(&[("id", "1"), ("modified", "yesterday")]))
            .unwrap_err()
            .contains("timestamp"));
    }

    #[test]
    fn unknown_targets_are_reported_with_their_line() {
        let error = crate::document::parse_document::<SourceConfig>(
            "name = \"crm\"\nid = \"id\"\n[fields]\nfirst_name = \"a\"\nshoe_size = \"b\"\n",
            crate::document::DocumentFormat::Toml,
            "mapping.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("line 5"), "{error}");
        assert!(error.contains("shoe_size"), "{error}");
    }

    fn target_strategy() -> impl proptest::strategy::Strategy<Value = CanonicalTarget> {
        use proptest::prelude::*;
        prop_oneof![
            Just(CanonicalTarget::FirstName),
            Just(CanonicalTarget::DateOfBirth),
            Just(CanonicalTarget::Emails),
            Just(CanonicalTarget::AddressPostcode),
            Just(CanonicalTarget::DeviceIds),
            "[a-z_]{1,8}".prop_map(CanonicalTarget::ExternalId),
            "[a-z_]{1,8}".prop_map(CanonicalTarget::Consent),
            "[a-z_]{1,8}".prop_map(CanonicalTarget::Trait),
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_mapping_parser_never_panics(text in "\\PC{0,200}") {
            let _ = crate::document::parse_document::<SourceConfig>(
                &text,
                crate::document::DocumentFormat::Toml,
                "fuzz",
            );
            let _ = crate::document::parse_document::<SourceConfig>(
                &text,
                crate::document::DocumentFormat::Json,
                "fuzz",
            );
        }

        #[test]
        fn mappings_round_trip(
            targets in proptest::collection::btree_map(target_strategy(), "[a-z]{1,6}", 0..6),
            priority in 0u32..1000,
        ) {
            let config = SourceConfig {
                name: "s".to_string(),
                also: Vec::new(),
                kind: SourceKind::Crm,
                priority,
                id: "id".to_string(),
                updated_at: None,
                default_region: None,
                day_first: true,
                fields: targets
                    .into_iter()
                    .map(|(target, field)| (target, SourceFields::One(field)))
                    .collect(),
            };
            let json = serde_json::to_string(&config).expect("json");
            let parsed: SourceConfig = crate::document::parse_document(
                &json,
                crate::document::DocumentFormat::Json,
                "j",
            )
            .expect("parses");
            proptest::prop_assert_eq!(parsed, config);
        }
    }

    #[test]
    fn missing_columns_are_named() {
        let error = config()
            .check_columns(&["id".to_string(), "given".to_string()])
            .unwrap_err();
        assert!(error.contains("`family`"), "{error}");
    }
}
