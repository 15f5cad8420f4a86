//! Encodings of stored columns: times as milliseconds since the epoch, traits and bodies as JSON text.

use cairn_model::{MessageKind, TraitSet};
use cairn_storage::{StorageError, StorageResult};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> StorageResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StorageError::Corrupt(format!("timestamp {ms} out of range")))
}

pub(crate) fn encode_traits(traits: &TraitSet) -> String {
    let mut map = Map::new();
    map.insert("values".into(), Value::Object(traits.values.clone()));
    map.insert(
        "set_at".into(),
        Value::Object(
            traits
                .set_at
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect(),
        ),
    );
    Value::Object(map).to_string()
}

pub(crate) fn decode_traits(text: &str) -> StorageResult<TraitSet> {
    let corrupt = || StorageError::Corrupt("profile traits are not a trait set".into());
    let value: Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let values = value
        .get("values")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(corrupt)?;
    let set_at = value
        .get("set_at")
        .and_then(Value::as_object)
        .ok_or_else(corrupt)?
        .iter()
        .map(|(k, v)| v.as_i64().map(|ms| (k.clone(), ms)).ok_or_else(corrupt))
        .collect::<StorageResult<_>>()?;
    Ok(TraitSet { values, set_at })
}

pub(crate) fn decode_kind(text: &str) -> StorageResult<MessageKind> {
    MessageKind::parse(text)
        .ok_or_else(|| StorageError::Corrupt(format!("unknown event kind {text:?}")))
}
