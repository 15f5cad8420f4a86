//! A JSON value that keeps its JSON text once written, for enrollment data that checkpoints write
//! again and again while it rarely changes.
//!
//! Every checkpoint re-encodes the journey state of each profile that changed, and an enrollment's
//! data (`journey.*`, the event a split reads) is most of that work when it is re-serialized each
//! time: a profile changes with every event it gets, its enrollment data seldom does. A
//! [`CachedJson`] writes its text once and copies it afterwards; changing the value
//! ([`CachedJson::get_mut`]) forgets the text. Read back from a binary form, the text it came from
//! is kept, so a restored state does not serialize it again either.
//!
//! Forms, as [`crate::json_text`] writes an `Option<Value>` (so either reads the other's): JSON gets
//! the value as it is; binary forms (postcard) get the JSON text as a string.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::sync::OnceLock;

/// A JSON value with its JSON text, written on first need and kept until the value changes.
#[derive(Debug, Clone, Default)]
pub struct CachedJson {
    value: Value,
    text: OnceLock<Box<str>>,
}

impl CachedJson {
    /// The value, its text not yet written.
    pub fn new(value: Value) -> CachedJson {
        CachedJson {
            value,
            text: OnceLock::new(),
        }
    }

    /// The value.
    pub fn get(&self) -> &Value {
        &self.value
    }

    /// The value to change; its text is forgotten.
    pub fn get_mut(&mut self) -> &mut Value {
        self.text = OnceLock::new();
        &mut self.value
    }

    /// The value's JSON text, written on first call.
    pub fn text(&self) -> &str {
        self.text
            .get_or_init(|| self.value.to_string().into_boxed_str())
    }
}

impl From<Value> for CachedJson {
    fn from(value: Value) -> CachedJson {
        CachedJson::new(value)
    }
}

impl PartialEq for CachedJson {
    fn eq(&self, other: &CachedJson) -> bool {
        self.value == other.value
    }
}

impl Serialize for CachedJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.value.serialize(serializer)
        } else {
            serializer.serialize_str(self.text())
        }
    }
}

impl<'de> Deserialize<'de> for CachedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CachedJson, D::Error> {
        if deserializer.is_human_readable() {
            return Value::deserialize(deserializer).map(CachedJson::new);
        }
        let text = String::deserialize(deserializer)?;
        let value = serde_json::from_str(&text).map_err(D::Error::custom)?;
        Ok(CachedJson {
            value,
            text: OnceLock::from(text.into_boxed_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Cached {
        #[serde(default)]
        value: Option<CachedJson>,
        after: u32,
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Plain {
        #[serde(default, with = "crate::json_text")]
        value: Option<Value>,
        after: u32,
    }

    #[test]
    fn both_forms_are_those_of_json_text_and_read_each_other() {
        let value = json!({"a": [1, "two", null], "b": {"c": "d\"e"}});
        let cached = Cached {
            value: Some(value.clone().into()),
            after: 7,
        };
        let plain = Plain {
            value: Some(value),
            after: 7,
        };
        let bytes = postcard::to_allocvec(&cached).expect("postcard");
        assert_eq!(bytes, postcard::to_allocvec(&plain).expect("postcard"));
        assert_eq!(postcard::from_bytes::<Plain>(&bytes).ok(), Some(plain));
        assert_eq!(postcard::from_bytes::<Cached>(&bytes).ok(), Some(cached));
        let text = serde_json::to_string(&Cached::default()).expect("json");
        assert_eq!(text, r#"{"value":null,"after":0}"#);
        let bytes = postcard::to_allocvec(&Cached::default()).expect("postcard");
        assert_eq!(bytes, [0, 0], "no value is one byte");
    }

    #[test]
    fn a_change_forgets_the_text_and_a_read_back_value_keeps_its_own() {
        let mut data = CachedJson::new(json!({"steps": {}}));
        assert_eq!(data.text(), r#"{"steps":{}}"#);
        data.get_mut()["steps"]["ask"] = json!({"ok": true});
        assert_eq!(data.text(), r#"{"steps":{"ask":{"ok":true}}}"#);
        // Text read back is kept as it was written (here with spaces no serializer would write).
        let bytes = postcard::to_allocvec(&r#"{"k": 1}"#).expect("postcard");
        let restored: CachedJson = postcard::from_bytes(&bytes).expect("postcard");
        assert_eq!(restored.get(), &json!({"k": 1}));
        assert_eq!(restored.text(), r#"{"k": 1}"#);
        assert!(postcard::from_bytes::<CachedJson>(
            &postcard::to_allocvec(&"{").expect("postcard")
        )
        .is_err());
    }
}
