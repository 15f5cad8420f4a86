//! The fields match rules compare, and blocking keys built from them.

use serde::{Deserialize, Serialize};

/// A field of the canonical model as match rules see it (contact points are single values here:
/// a record with two emails matches on either).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchField {
    FirstName,
    LastName,
    /// The full name, or first and last name joined when the source has no full name.
    FullName,
    DateOfBirth,
    Email,
    Phone,
    AddressLine,
    City,
    Region,
    Postcode,
    Country,
    /// Address line, city and postcode as one text (for token-set comparison).
    Address,
    ExternalId(String),
    DeviceId,
    Trait(String),
}

impl MatchField {
    pub fn parse(name: &str) -> Result<MatchField, String> {
        if let Some(kind) = name.strip_prefix("external_id.") {
            return non_empty(name, kind).map(MatchField::ExternalId);
        }
        if let Some(trait_name) = name.strip_prefix("trait.") {
            return non_empty(name, trait_name).map(MatchField::Trait);
        }
        Ok(match name {
            "first_name" => MatchField::FirstName,
            "last_name" => MatchField::LastName,
            "full_name" => MatchField::FullName,
            "date_of_birth" => MatchField::DateOfBirth,
            "email" => MatchField::Email,
            "phone" => MatchField::Phone,
            "address_line" => MatchField::AddressLine,
            "city" => MatchField::City,
            "region" => MatchField::Region,
            "postcode" => MatchField::Postcode,
            "country" => MatchField::Country,
            "address" => MatchField::Address,
            "device_id" => MatchField::DeviceId,
            _ => {
                return Err(format!(
                    "unknown match field `{name}` (expected first_name, last_name, full_name, \
                     date_of_birth, email, phone, address_line, city, region, postcode, country, \
                     address, external_id.KIND, device_id or trait.NAME)"
                ))
            }
        })
    }

    /// Whether values of this field are identifiers (counted by limits, candidates for hubs).
    pub fn is_identifier(&self) -> bool {
        matches!(
            self,
            MatchField::Email
                | MatchField::Phone
                | MatchField::ExternalId(_)
                | MatchField::DeviceId
                | MatchField::AddressLine
                | MatchField::Address
                | MatchField::Postcode
        )
    }
}

fn non_empty(name: &str, rest: &str) -> Result<String, String> {
    if rest.is_empty() {
        Err(format!("`{name}` needs a name after the dot"))
    } else {
        Ok(rest.to_string())
    }
}

impl std::fmt::Display for MatchField {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            MatchField::FirstName => "first_name",
            MatchField::LastName => "last_name",
            MatchField::FullName => "full_name",
            MatchField::DateOfBirth => "date_of_birth",
            MatchField::Email => "email",
            MatchField::Phone => "phone",
            MatchField::AddressLine => "address_line",
            MatchField::City => "city",
            MatchField::Region => "region",
            MatchField::Postcode => "postcode",
            MatchField::Country => "country",
            MatchField::Address => "address",
            MatchField::ExternalId(kind) => return write!(formatter, "external_id.{kind}"),
            MatchField::DeviceId => "device_id",
            MatchField::Trait(name) => return write!(formatter, "trait.{name}"),
        };
        formatter.write_str(name)
    }
}

impl<'de> Deserialize<'de> for MatchField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        MatchField::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl Serialize for MatchField {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How one part of a blocking key is derived from a field's normalized value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyTransform {
    /// The normalized value itself.
    Value,
    /// The Double Metaphone codes (a value gives one key per code).
    Phonetic,
    /// The first N characters.
    Prefix(usize),
    /// The year (dates only).
    Year,
    /// Day and month in either order with the year (dates; finds transposed day/month).
    DateAnyOrder,
}

/// One part of a blocking key: a field and how it is transformed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPart {
    pub field: MatchField,
    pub transform: KeyTransform,
}

/// A blocking key: parts joined; two records are candidates if they share a key value.
/// Written `last_name:phonetic+postcode`, `first_name:prefix3+date_of_birth:year`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub parts: Vec<KeyPart>,
}

impl KeySpec {
    pub fn parse(text: &str) -> Result<KeySpec, String> {
        let mut parts = Vec::new();
        for part in text.split('+') {
            let part = part.trim();
            let (field, transform) = match part.split_once(':') {
                Some((field, transform)) => (field, Some(transform)),
                None => (part, None),
            };
            let field = MatchField::parse(field)?;
            let transform = match transform {
                None | Some("value") => KeyTransform::Value,
                Some("phonetic") => KeyTransform::Phonetic,
                Some("year") => KeyTransform::Year,
                Some("any_order") => KeyTransform::DateAnyOrder,
                Some(other) => match other
                    .strip_prefix("prefix")
                    .and_then(|count| count.parse::<usize>().ok())
                {
                    Some(count) if count > 0 => KeyTransform::Prefix(count),
                    _ => {
                        return Err(format!(
                            "unknown key transform `{other}` in `{text}` (expected value, \
                             phonetic, prefixN, year or any_order)"
                        ))
                    }
                },
            };
            let is_date = field == MatchField::DateOfBirth;
            let date_only = matches!(transform, KeyTransform::Year | KeyTransform::DateAnyOrder);
            if date_only && !is_date {
                return Err(format!(
                    "key transform in `{part}` applies to date_of_birth only"
                ));
            }
            if is_date && transform == KeyTransform::Phonetic {
                return Err(format!("`{part}`: dates have no phonetic code"));
            }
            parts.push(KeyPart { field, transform });
        }
        if parts.is_empty() {
            return Err("a blocking key needs at least one field".to_string());
        }
        Ok(KeySpec { parts })
    }
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, part) in self.parts.iter().enumerate() {
            if index > 0 {
                formatter.write_str("+")?;
            }
            write!(formatter, "{}", part.field)?;
            match part.transform {
                KeyTransform::Value => {}
                KeyTransform::Phonetic => formatter.write_str(":phonetic")?,
                KeyTransform::Prefix(count) => write!(formatter, ":prefix{count}")?,
                KeyTransform::Year => formatter.write_str(":year")?,
                KeyTransform::DateAnyOrder => formatter.write_str(":any_order")?,
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        KeySpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for KeySpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_parse_and_print_back() {
        for text in [
            "email",
            "last_name:phonetic+postcode",
            "first_name:prefix3+date_of_birth:year",
            "date_of_birth:any_order",
            "external_id.user_id",
        ] {
            assert_eq!(KeySpec::parse(text).expect(text).to_string(), text);
        }
        assert!(KeySpec::parse("email:year").is_err());
        assert!(KeySpec::parse("date_of_birth:phonetic").is_err());
        assert!(KeySpec::parse("shoe").is_err());
        assert!(KeySpec::parse("email:prefix0").is_err());
    }

    fn field_strategy() -> impl Strategy<Value = MatchField> {
        prop_oneof![
            Just(MatchField::FirstName),
            Just(MatchField::LastName),
            Just(MatchField::Email),
            Just(MatchField::Phone),
            Just(MatchField::Postcode),
            Just(MatchField::DateOfBirth),
            "[a-z_]{1,8}".prop_map(MatchField::ExternalId),
            "[a-z_]{1,8}".prop_map(MatchField::Trait),
        ]
    }

    proptest! {
        #[test]
        fn field_names_round_trip(field in field_strategy()) {
            prop_assert_eq!(MatchField::parse(&field.to_string()), Ok(field));
        }

        #[test]
        fn key_parser_never_panics(text in "\\PC{0,30}") {
            let _ = KeySpec::parse(&text);
        }
    }
}
