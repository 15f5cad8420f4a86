//! A serde `with` module for fields only JSON can read back (a `serde_json::Value`, an internally
//! tagged enum) inside compact binary forms (postcard, which cannot read self-describing data).
//!
//! Human-readable formats (JSON) get the field as it is, so JSON written before keeps reading.
//! Binary formats get `Option<String>`: nothing when the field holds its default (an absent
//! `Option`, a default consent state), else its JSON text.
//!
//! ```ignore
//! #[serde(default, with = "cairn_journey::json_text")]
//! pub journey: Option<serde_json::Value>,
//! ```

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes `value` as it is (human-readable formats) or as its JSON text, `None` when default.
pub fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + Default + PartialEq,
    S: Serializer,
{
    if serializer.is_human_readable() {
        return value.serialize(serializer);
    }
    if *value == T::default() {
        return serializer.serialize_none();
    }
    let text = serde_json::to_string(value).map_err(S::Error::custom)?;
    serializer.serialize_some(&text)
}

/// Reads what [`serialize`] wrote.
pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: DeserializeOwned + Default,
    D: Deserializer<'de>,
{
    if deserializer.is_human_readable() {
        return T::deserialize(deserializer);
    }
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(default, with = "super")]
        value: Option<Value>,
        after: u32,
    }

    #[test]
    fn json_keeps_the_value_and_binary_forms_carry_its_text() {
        let holder = Holder {
            value: Some(json!({"a": [1, "two", null]})),
            after: 7,
        };
        let text = serde_json::to_string(&holder).expect("json");
        assert_eq!(text, r#"{"value":{"a":[1,"two",null]},"after":7}"#);
        assert_eq!(serde_json::from_str::<Holder>(&text).expect("json"), holder);
        let bytes = postcard::to_allocvec(&holder).expect("postcard");
        assert_eq!(
            postcard::from_bytes::<Holder>(&bytes).expect("postcard"),
            holder
        );
        let empty = Holder::default();
        let bytes = postcard::to_allocvec(&empty).expect("postcard");
        assert_eq!(bytes, [0, 0], "a default field is one byte");
        assert_eq!(
            postcard::from_bytes::<Holder>(&bytes).expect("postcard"),
            empty
        );
    }
}
