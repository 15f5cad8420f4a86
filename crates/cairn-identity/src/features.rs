//! Prepared records: a canonical record's values per field slot, normalized, with phonetic codes
//! and value ids, blocked values removed. Preparing is pure and independent per record, so batch
//! runs prepare in parallel.

use crate::compiled::{CompiledKey, CompiledRuleset, Slot};
use crate::normalize::{
    fold_text, normalize_address_line, normalize_email, normalize_name, normalize_phone,
    normalize_postcode,
};
use crate::record::{BirthDate, CanonicalRecord};
use crate::ruleset::{KeyTransform, MatchField};
use rphonetic::DoubleMetaphone;
use std::sync::OnceLock;
use xxhash_rust::xxh3::Xxh3;

/// One normalized value of a field.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// As given, trimmed (kept only for fields compared with `exact`).
    pub raw: Option<Box<str>>,
    pub normalized: Box<str>,
    /// Identifies (field, normalized value): hub counting and identifier limits use it.
    pub id: u64,
    /// Double Metaphone codes (kept only for fields compared or blocked phonetically).
    pub phonetic: Box<[Box<str>]>,
    /// Sorted, de-duplicated hashes of the whitespace-separated tokens (kept only for fields
    /// compared by token set).
    pub tokens: Box<[u64]>,
    pub date: Option<BirthDate>,
}

/// A record's values per slot of the compiled ruleset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreparedRecord {
    pub values: Box<[Box<[Value]>]>,
    /// How many values were dropped as blocked.
    pub blocked_count: u32,
}

impl PreparedRecord {
    pub fn values(&self, slot: Slot) -> &[Value] {
        self.values.get(slot).map_or(&[], |values| values)
    }
}

fn double_metaphone() -> &'static DoubleMetaphone {
    static ENCODER: OnceLock<DoubleMetaphone> = OnceLock::new();
    ENCODER.get_or_init(DoubleMetaphone::default)
}

/// The id of a (slot, normalized value) pair.
pub fn value_id(slot: Slot, normalized: &str) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&(slot as u64).to_le_bytes());
    hasher.update(normalized.as_bytes());
    hasher.digest()
}

/// Sorted, de-duplicated xxh3 hashes of a text's whitespace-separated tokens.
pub fn token_hashes(text: &str) -> Box<[u64]> {
    let mut hashes: Vec<u64> = text
        .split_whitespace()
        .map(|token| xxhash_rust::xxh3::xxh3_64(token.as_bytes()))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes.into_boxed_slice()
}

/// Double Metaphone codes of a text (primary, and alternate when different).
pub fn phonetic_codes(text: &str) -> Vec<Box<str>> {
    let letters: String = text.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.is_empty() {
        return Vec::new();
    }
    let result = double_metaphone().double_metaphone(&letters);
    let mut codes: Vec<Box<str>> = Vec::with_capacity(2);
    for code in [result.primary(), result.alternate()] {
        if !code.is_empty() && !codes.iter().any(|known| **known == *code) {
            codes.push(code.into_boxed_str());
        }
    }
    codes
}

/// Prepares a record for matching under a compiled ruleset.
pub fn prepare(compiled: &CompiledRuleset, record: &CanonicalRecord) -> PreparedRecord {
    let region = compiled.sources.phone_region(&record.key.source);
    let mut blocked_count = 0;
    let values = compiled
        .fields
        .iter()
        .enumerate()
        .map(|(slot, field)| {
            let mut values: Vec<Value> = Vec::new();
            for (raw, normalized, date) in field_values(compiled, field, record, region) {
                if is_blocked(compiled, slot, raw.trim(), &normalized) {
                    blocked_count += 1;
                    continue;
                }
                if values.iter().any(|known| *known.normalized == *normalized) {
                    continue;
                }
                values.push(Value {
                    raw: compiled.needs_raw[slot].then(|| raw.trim().into()),
                    id: value_id(slot, &normalized),
                    phonetic: if compiled.needs_phonetic[slot] {
                        phonetic_codes(&normalized).into_boxed_slice()
                    } else {
                        Box::default()
                    },
                    tokens: if compiled.needs_tokens[slot] {
                        token_hashes(&normalized)
                    } else {
                        Box::default()
                    },
                    normalized: normalized.into_boxed_str(),
                    date,
                });
            }
            values.into_boxed_slice()
        })
        .collect();
    PreparedRecord {
        values,
        blocked_count,
    }
}

fn is_blocked(compiled: &CompiledRuleset, slot: Slot, raw: &str, normalized: &str) -> bool {
    if normalized.is_empty() {
        return true;
    }
    if compiled.blocked_values.iter().any(|blocked| {
        blocked.eq_ignore_ascii_case(raw) || blocked.eq_ignore_ascii_case(normalized)
    }) {
        return true;
    }
    compiled.blocked_patterns.iter().any(|(field_slot, regex)| {
        field_slot.is_none_or(|field_slot| field_slot == slot) && regex.is_match(normalized)
    })
}

type RawValue = (String, String, Option<BirthDate>);

fn field_values(
    compiled: &CompiledRuleset,
    field: &MatchField,
    record: &CanonicalRecord,
    region: Option<phonenumber::country::Id>,
) -> Vec<RawValue> {
    let options = &compiled.ruleset.normalization;
    let plain = |raw: &str, normalized: String| (raw.to_string(), normalized, None);
    let address_parts = |pick: fn(&crate::PostalAddress) -> Option<&String>,
                         normalize: fn(&str) -> String| {
        record
            .addresses
            .iter()
            .filter_map(pick)
            .map(|value| plain(value, normalize(value)))
            .collect()
    };
    match field {
        MatchField::FirstName => record
            .first_name
            .iter()
            .map(|name| plain(name, normalize_name(name, &compiled.nicknames)))
            .collect(),
        MatchField::LastName => record
            .last_name
            .iter()
            .map(|name| plain(name, normalize_name(name, &Default::default())))
            .collect(),
        MatchField::FullName => {
            let full = record.full_name.clone().or_else(|| {
                let parts: Vec<&str> = [record.first_name.as_deref(), record.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            });
            full.iter()
                .map(|name| plain(name, normalize_name(name, &compiled.nicknames)))
                .collect()
        }
        MatchField::DateOfBirth => record
            .date_of_birth
            .iter()
            .map(|date| (date.to_string(), date.to_string(), Some(*date)))
            .collect(),
        MatchField::Email => record
            .emails
            .iter()
            .map(|email| plain(email, normalize_email(email, options)))
            .collect(),
        MatchField::Phone => record
            .phones
            .iter()
            .map(|phone| plain(phone, normalize_phone(phone, region)))
            .collect(),
        MatchField::AddressLine => address_parts(|a| a.line.as_ref(), normalize_address_line),
        MatchField::City => address_parts(|a| a.city.as_ref(), fold_text),
        MatchField::Region => address_parts(|a| a.region.as_ref(), fold_text),
        MatchField::Postcode => address_parts(|a| a.postcode.as_ref(), normalize_postcode),
        MatchField::Country => address_parts(|a| a.country.as_ref(), fold_text),
        MatchField::Address => record
            .addresses
            .iter()
            .map(|address| {
                let joined: Vec<&str> = [&address.line, &address.city, &address.postcode]
                    .into_iter()
                    .filter_map(|part| part.as_deref())
                    .collect();
                let joined = joined.join(" ");
                let normalized = normalize_address_line(&joined);
                (joined, normalized, None)
            })
            .collect(),
        MatchField::ExternalId(kind) => record
            .external_ids
            .get(kind)
            .into_iter()
            .flatten()
            .map(|id| plain(id, id.trim().to_string()))
            .collect(),
        MatchField::DeviceId => record
            .device_ids
            .iter()
            .map(|id| plain(id, id.trim().to_lowercase()))
            .collect(),
        MatchField::Trait(name) => record
            .traits
            .get(name)
            .iter()
            .map(|value| plain(value, fold_text(value)))
            .collect(),
    }
}

/// The most key values one record contributes to one key (a cartesian product of multi-valued
/// parts is cut here).
const MAX_KEY_VALUES: usize = 32;

/// The hashed values of a blocking key for a record; parts whose value `is_excluded` (a hub) are
/// skipped. `key_index` keeps keys of different specs apart. Part values are hashed in place (no
/// allocation per value); several values per part give the cartesian product, cut at
/// [`MAX_KEY_VALUES`].
pub fn key_values(
    key_index: usize,
    key: &CompiledKey,
    record: &PreparedRecord,
    is_excluded: &dyn Fn(u64) -> bool,
) -> Vec<u64> {
    let mut combined: Vec<u64> = vec![xxhash_rust::xxh3::xxh3_64(
        &(key_index as u64).to_le_bytes(),
    )];
    let mut part_hashes: Vec<u64> = Vec::with_capacity(4);
    for (slot, transform) in &key.parts {
        part_hashes.clear();
        for value in record.values(*slot) {
            if is_excluded(value.id) {
                continue;
            }
            let hash = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_64(bytes);
            match transform {
                KeyTransform::Value => part_hashes.push(hash(value.normalized.as_bytes())),
                KeyTransform::Phonetic => {
                    part_hashes.extend(value.phonetic.iter().map(|code| hash(code.as_bytes())))
                }
                KeyTransform::Prefix(count) => {
                    let end = value
                        .normalized
                        .char_indices()
                        .nth(*count)
                        .map_or(value.normalized.len(), |(end, _)| end);
                    part_hashes.push(hash(value.normalized[..end].as_bytes()));
                }
                KeyTransform::Year => {
                    if let Some(date) = value.date {
                        part_hashes.push(hash(&date.year.to_le_bytes()));
                    }
                }
                KeyTransform::DateAnyOrder => {
                    if let Some(date) = value.date {
                        let (low, high) = (date.month.min(date.day), date.month.max(date.day));
                        let mut bytes = [0u8; 12];
                        bytes[..4].copy_from_slice(&date.year.to_le_bytes());
                        bytes[4..8].copy_from_slice(&low.to_le_bytes());
                        bytes[8..].copy_from_slice(&high.to_le_bytes());
                        part_hashes.push(hash(&bytes));
                    }
                }
            }
        }
        if part_hashes.is_empty() {
            return Vec::new();
        }
        let mut next = Vec::with_capacity((combined.len() * part_hashes.len()).min(MAX_KEY_VALUES));
        'product: for &prefix in &combined {
            for &part in &part_hashes {
                if next.len() >= MAX_KEY_VALUES {
                    break 'product;
                }
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&prefix.to_le_bytes());
                bytes[8..].copy_from_slice(&part.to_le_bytes());
                next.push(xxhash_rust::xxh3::xxh3_64(&bytes));
            }
        }
        combined = next;
    }
    combined.sort_unstable();
    combined.dedup();
    combined
}

/// The sortable text of a key for sorted-neighbourhood passes (first value of each part).
pub fn sort_key(key: &CompiledKey, record: &PreparedRecord) -> Option<String> {
    let mut text = String::new();
    for (slot, transform) in &key.parts {
        let value = record.values(*slot).first()?;
        let part = match transform {
            KeyTransform::Phonetic => value.phonetic.first()?.to_string(),
            KeyTransform::Prefix(count) => value.normalized.chars().take(*count).collect(),
            KeyTransform::Year => value.date?.year.to_string(),
            KeyTransform::Value | KeyTransform::DateAnyOrder => value.normalized.to_string(),
        };
        text.push_str(&part);
        text.push('\u{1f}');
    }
    Some(text)
}

/// The normalized form of one value of `field` as a record of `source` would have it, or `None` if
/// the value is blank or blocked.
pub fn normalize_single(
    compiled: &CompiledRuleset,
    field: &MatchField,
    value: &str,
    source: &str,
) -> Option<String> {
    let slot = compiled.slot_of(field)?;
    let mut record = CanonicalRecord::new(source, "lookup");
    match field {
        MatchField::FirstName => record.first_name = Some(value.to_string()),
        MatchField::LastName => record.last_name = Some(value.to_string()),
        MatchField::FullName => record.full_name = Some(value.to_string()),
        MatchField::DateOfBirth => record.date_of_birth = BirthDate::parse(value, true),
        MatchField::Email => record.emails.push(value.to_string()),
        MatchField::Phone => record.phones.push(value.to_string()),
        MatchField::AddressLine | MatchField::Address => {
            record.addresses.push(crate::PostalAddress {
                line: Some(value.to_string()),
                ..Default::default()
            })
        }
        MatchField::City => record.addresses.push(crate::PostalAddress {
            city: Some(value.to_string()),
            ..Default::default()
        }),
        MatchField::Region => record.addresses.push(crate::PostalAddress {
            region: Some(value.to_string()),
            ..Default::default()
        }),
        MatchField::Postcode => record.addresses.push(crate::PostalAddress {
            postcode: Some(value.to_string()),
            ..Default::default()
        }),
        MatchField::Country => record.addresses.push(crate::PostalAddress {
            country: Some(value.to_string()),
            ..Default::default()
        }),
        MatchField::ExternalId(kind) => {
            record
                .external_ids
                .insert(kind.clone(), vec![value.to_string()]);
        }
        MatchField::DeviceId => record.device_ids.push(value.to_string()),
        MatchField::Trait(name) => {
            record.traits.insert(name.clone(), value.to_string());
        }
    }
    let prepared = prepare(compiled, &record);
    prepared
        .values(slot)
        .first()
        .map(|value| value.normalized.to_string())
}
