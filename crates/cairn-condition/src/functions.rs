//! The built-in functions: their names and arities (checked in `check`) and the run-time implementations of
//! the ones that take plain values (evaluated in `eval`).

use std::borrow::Cow;

use crate::value::Value;

/// Every function name, for documentation and "unknown function" hints.
pub const FUNCTION_NAMES: &[&str] = &[
    "exists",
    "contains",
    "starts_with",
    "ends_with",
    "lower",
    "upper",
    "len",
    "matches",
    "now",
    "days_since",
    "hours_since",
    "minutes_since",
    "days_until",
    "hours_until",
    "date",
    "hour",
    "weekday",
    "day",
    "month",
    "year",
    "coalesce",
    "number",
    "string",
    "count",
    "first_at",
    "last_at",
];

/// Functions over plain values (the others compile to dedicated nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Exists,
    Contains,
    StartsWith,
    EndsWith,
    Lower,
    Upper,
    Len,
    Coalesce,
    Number,
    String,
}

impl Function {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Exists => "exists",
            Function::Contains => "contains",
            Function::StartsWith => "starts_with",
            Function::EndsWith => "ends_with",
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Len => "len",
            Function::Coalesce => "coalesce",
            Function::Number => "number",
            Function::String => "string",
        }
    }

    /// Applies the function to evaluated arguments (arity was checked at compile time; a wrong count at run
    /// time gives null rather than a panic).
    pub(crate) fn apply<'a>(self, arguments: &mut [Value<'a>]) -> Value<'a> {
        match (self, arguments) {
            (Function::Exists, [value]) => Value::Bool(!value.is_null()),
            (Function::Contains, [Value::String(haystack), Value::String(needle)]) => {
                Value::Bool(haystack.contains(needle.as_ref()))
            }
            (Function::Contains, [Value::List(list), needle]) => {
                Value::Bool(!needle.is_null() && list.contains(needle))
            }
            (Function::Contains, [_, _]) => Value::Bool(false),
            (Function::StartsWith, [Value::String(text), Value::String(prefix)]) => {
                Value::Bool(text.starts_with(prefix.as_ref()))
            }
            (Function::EndsWith, [Value::String(text), Value::String(suffix)]) => {
                Value::Bool(text.ends_with(suffix.as_ref()))
            }
            (Function::StartsWith | Function::EndsWith, [_, _]) => Value::Bool(false),
            (Function::Lower, [Value::String(text)]) => {
                Value::String(change_case(std::mem::take(text), false))
            }
            (Function::Upper, [Value::String(text)]) => {
                Value::String(change_case(std::mem::take(text), true))
            }
            (Function::Len, [Value::String(text)]) => Value::Number(text.chars().count() as f64),
            (Function::Len, [Value::List(list)]) => Value::Number(list.len() as f64),
            (Function::Len, [Value::Object(map)]) => Value::Number(map.len() as f64),
            (Function::Coalesce, values) => values
                .iter_mut()
                .find(|value| !value.is_null())
                .map_or(Value::Null, std::mem::take),
            (Function::Number, [value]) => to_number(value),
            (Function::String, [value]) => to_string(std::mem::take(value)),
            _ => Value::Null,
        }
    }
}

/// Lower- or upper-cases, allocating only when something changes.
fn change_case(text: Cow<'_, str>, upper: bool) -> Cow<'_, str> {
    let unchanged = if upper {
        !text.chars().any(char::is_lowercase)
    } else {
        !text.chars().any(char::is_uppercase)
    };
    if unchanged {
        text
    } else if upper {
        Cow::Owned(text.to_uppercase())
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

fn to_number(value: &Value<'_>) -> Value<'static> {
    match value {
        Value::Number(number) => Value::Number(*number),
        Value::Bool(flag) => Value::Number(if *flag { 1.0 } else { 0.0 }),
        Value::String(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map_or(Value::Null, Value::Number),
        Value::Timestamp(ms) | Value::Duration(ms) => Value::Number(*ms as f64),
        _ => Value::Null,
    }
}

fn to_string(value: Value<'_>) -> Value<'_> {
    match value {
        Value::Null => Value::Null,
        Value::String(text) => Value::String(text),
        Value::Bool(flag) => Value::String(Cow::Borrowed(if flag { "true" } else { "false" })),
        Value::Number(number) => Value::String(Cow::Owned(number.to_string())),
        Value::Timestamp(ms) => crate::time::format_timestamp(ms)
            .map_or(Value::Null, |text| Value::String(Cow::Owned(text))),
        Value::Duration(ms) => Value::String(Cow::Owned(format!("{ms}ms"))),
        other => Value::String(Cow::Owned(other.to_json().to_string())),
    }
}
