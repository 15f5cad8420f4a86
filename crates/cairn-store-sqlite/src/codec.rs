//! Encodings of stored columns: traits and identifiers as JSON text.

use cairn_model::{Identifier, TraitSet};
use cairn_storage::{StorageError, StorageResult};
use serde_json::{Map, Value};

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

pub(crate) fn encode_identifiers(identifiers: &[Identifier]) -> String {
    serde_json::to_string(identifiers).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn decode_identifiers(text: &str) -> StorageResult<Vec<Identifier>> {
    serde_json::from_str(text)
        .map_err(|error| StorageError::Corrupt(format!("profile identifiers: {error}")))
}
