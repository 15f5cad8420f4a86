//! Run-time values. A [`Value`] borrows from the evaluation context or the compiled condition wherever it can,
//! so evaluating a typical condition allocates nothing.

use std::borrow::Cow;

use serde_json::Map;

use crate::time;

/// A value produced by evaluating an expression.
#[derive(Debug, Clone, Default)]
pub enum Value<'a> {
    #[default]
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Milliseconds.
    Duration(i64),
    List(ListValue<'a>),
    Object(Cow<'a, Map<String, serde_json::Value>>),
}

/// A list: borrowed JSON from the context, or values built by the condition.
#[derive(Debug, Clone)]
pub enum ListValue<'a> {
    Json(&'a [serde_json::Value]),
    Borrowed(&'a [Value<'a>]),
    Owned(Vec<Value<'a>>),
}

impl<'a> ListValue<'a> {
    pub fn len(&self) -> usize {
        match self {
            ListValue::Json(items) => items.len(),
            ListValue::Borrowed(items) => items.len(),
            ListValue::Owned(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index` as a value (JSON items are converted without copying strings).
    pub fn get(&self, index: usize) -> Option<Value<'_>> {
        match self {
            ListValue::Json(items) => items.get(index).map(Value::from_json),
            ListValue::Borrowed(items) => items.get(index).map(Value::reborrow),
            ListValue::Owned(items) => items.get(index).map(Value::reborrow),
        }
    }

    /// Whether any item equals `needle` (by [`Value::equals`]).
    pub fn contains(&self, needle: &Value<'_>) -> bool {
        match self {
            ListValue::Json(items) => items
                .iter()
                .any(|item| Value::from_json(item).equals(needle)),
            ListValue::Borrowed(items) => items.iter().any(|item| item.equals(needle)),
            ListValue::Owned(items) => items.iter().any(|item| item.equals(needle)),
        }
    }
}

impl<'a> Value<'a> {
    /// Converts a JSON value, borrowing strings, arrays and objects.
    pub fn from_json(json: &'a serde_json::Value) -> Value<'a> {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(*flag),
            serde_json::Value::Number(number) => number.as_f64().map_or(Value::Null, Value::Number),
            serde_json::Value::String(text) => Value::String(Cow::Borrowed(text)),
            serde_json::Value::Array(items) => Value::List(ListValue::Json(items)),
            serde_json::Value::Object(map) => Value::Object(Cow::Borrowed(map)),
        }
    }

    /// A shallow borrowed view of this value (no copy of strings or lists).
    pub fn reborrow(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(flag) => Value::Bool(*flag),
            Value::Number(number) => Value::Number(*number),
            Value::String(text) => Value::String(Cow::Borrowed(text)),
            Value::Timestamp(ms) => Value::Timestamp(*ms),
            Value::Duration(ms) => Value::Duration(*ms),
            Value::List(ListValue::Json(items)) => Value::List(ListValue::Json(items)),
            Value::List(ListValue::Borrowed(items)) => Value::List(ListValue::Borrowed(items)),
            Value::List(ListValue::Owned(items)) => Value::List(ListValue::Borrowed(items)),
            Value::Object(map) => Value::Object(Cow::Borrowed(map)),
        }
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(flag) => Value::Bool(flag),
            Value::Number(number) => Value::Number(number),
            Value::String(text) => Value::String(Cow::Owned(text.into_owned())),
            Value::Timestamp(ms) => Value::Timestamp(ms),
            Value::Duration(ms) => Value::Duration(ms),
            Value::List(list) => Value::List(ListValue::Owned(match list {
                ListValue::Json(items) => items
                    .iter()
                    .map(|item| Value::from_json(item).into_owned())
                    .collect(),
                ListValue::Borrowed(items) => items
                    .iter()
                    .map(|item| item.reborrow().into_owned())
                    .collect(),
                ListValue::Owned(items) => items.into_iter().map(Value::into_owned).collect(),
            })),
            Value::Object(map) => Value::Object(Cow::Owned(map.into_owned())),
        }
    }

    /// This value as JSON: timestamps as RFC 3339 strings, durations as milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Number(number) => serde_json::Number::from_f64(*number)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(text) => serde_json::Value::String(text.to_string()),
            Value::Timestamp(ms) => time::format_timestamp(*ms)
                .map_or(serde_json::Value::Null, serde_json::Value::String),
            Value::Duration(ms) => serde_json::Value::from(*ms),
            Value::List(list) => serde_json::Value::Array(
                (0..list.len())
                    .filter_map(|index| list.get(index))
                    .map(|item| item.to_json())
                    .collect(),
            ),
            Value::Object(map) => serde_json::Value::Object(map.as_ref().clone()),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// `true` only for `Bool(true)`: in a boolean position anything else counts as false.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// The value as an instant: a timestamp, or a string holding an ISO-8601 date or date-time.
    pub fn as_timestamp(&self) -> Option<i64> {
        match self {
            Value::Timestamp(ms) => Some(*ms),
            Value::String(text) => time::parse_timestamp(text),
            _ => None,
        }
    }

    /// The type name used in documentation and messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Object(_) => "object",
        }
    }

    /// Equality as `==` sees it (null handling is the caller's): numbers as f64, strings bytewise, a timestamp
    /// equals an ISO-8601 string of the same instant, lists item by item, objects as JSON.
    pub fn equals(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(left), Value::Bool(right)) => left == right,
            (Value::Number(left), Value::Number(right)) => left == right,
            (Value::String(left), Value::String(right)) => left == right,
            (Value::Duration(left), Value::Duration(right)) => left == right,
            (Value::Timestamp(_), _) | (_, Value::Timestamp(_)) => {
                matches!((self.as_timestamp(), other.as_timestamp()), (Some(left), Some(right)) if left == right)
            }
            (Value::List(left), Value::List(right)) => {
                left.len() == right.len()
                    && (0..left.len()).all(|index| match (left.get(index), right.get(index)) {
                        (Some(left_item), Some(right_item)) => left_item.equals(&right_item),
                        _ => false,
                    })
            }
            (Value::Object(left), Value::Object(right)) => left == right,
            _ => false,
        }
    }

    /// Ordering for `< <= > >=`: numbers, strings (bytewise), timestamps (also from ISO-8601 strings) and
    /// durations; `None` when the two cannot be ordered (the comparison is then false).
    pub fn order(&self, other: &Value<'_>) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Value::Number(left), Value::Number(right)) => left.partial_cmp(right),
            (Value::String(left), Value::String(right)) => {
                Some(left.as_bytes().cmp(right.as_bytes()))
            }
            (Value::Duration(left), Value::Duration(right)) => Some(left.cmp(right)),
            (Value::Timestamp(_), _) | (_, Value::Timestamp(_)) => {
                Some(self.as_timestamp()?.cmp(&other.as_timestamp()?))
            }
            _ => None,
        }
    }
}

/// Structural equality for tests and callers; unlike `==` in the language, `Null` equals `Null`.
impl PartialEq for Value<'_> {
    fn eq(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Timestamp(left), Value::Timestamp(right)) => left == right,
            (Value::Timestamp(_), _) | (_, Value::Timestamp(_)) => false,
            _ => self.equals(other),
        }
    }
}

impl From<bool> for Value<'static> {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl From<f64> for Value<'static> {
    fn from(number: f64) -> Self {
        Value::Number(number)
    }
}

impl From<&str> for Value<'static> {
    fn from(text: &str) -> Self {
        Value::String(Cow::Owned(text.to_owned()))
    }
}
