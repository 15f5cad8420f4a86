//! Turning import rows (CSV records, JSONL objects) into Segment messages.
//!
//! Imports go through the same validation as the API: these functions only reshape a row; the result
//! is then checked by [`crate::segment::normalize`].
//!
//! CSV columns: `type`, `event`, `name`, `userId`, `anonymousId`, `messageId`, `timestamp`, `groupId`,
//! `previousId` as they are (snake_case spellings such as `user_id` are accepted too); dotted columns
//! (`properties.price`, `traits.plan`, `context.ip`) become nested fields. Cell values `true`, `false`
//! and numbers become JSON booleans and numbers inside nested objects; empty cells are left out.

use serde_json::{Map, Number, Value};

/// What an import file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Segment messages (each needs a `type`).
    Events,
    /// One profile per row: identifiers plus traits, imported as an `identify`.
    Profiles,
}

const TOP_LEVEL: &[(&str, &str)] = &[
    ("type", "type"),
    ("event", "event"),
    ("name", "name"),
    ("userId", "userId"),
    ("user_id", "userId"),
    ("anonymousId", "anonymousId"),
    ("anonymous_id", "anonymousId"),
    ("messageId", "messageId"),
    ("message_id", "messageId"),
    ("timestamp", "timestamp"),
    ("groupId", "groupId"),
    ("group_id", "groupId"),
    ("previousId", "previousId"),
    ("previous_id", "previousId"),
];

fn top_level_name(column: &str) -> Option<&'static str> {
    TOP_LEVEL
        .iter()
        .find(|(alias, _)| *alias == column)
        .map(|(_, name)| *name)
}

fn typed_cell(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => text
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or_else(|| Value::String(text.to_string())),
    }
}

/// Builds a JSON object from a CSV record's header and cells.
pub fn csv_row(headers: &[String], cells: &[String]) -> Map<String, Value> {
    let mut row = Map::new();
    for (column, cell) in headers.iter().zip(cells) {
        if cell.is_empty() {
            continue;
        }
        match column.split_once('.') {
            Some((parent, child)) if top_level_name(column).is_none() => {
                let entry = row
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(nested) = entry {
                    nested.insert(child.to_string(), typed_cell(cell));
                }
            }
            _ => {
                let name = top_level_name(column)
                    .map(str::to_string)
                    .unwrap_or_else(|| column.clone());
                row.insert(name, Value::String(cell.clone()));
            }
        }
    }
    row
}

/// Reshapes an import row into a Segment message of the given kind.
///
/// For profiles, identifier columns stay top-level and every other field becomes a trait (a `traits`
/// object, if present, is merged in); the message is an `identify`.
pub fn to_message(kind: RecordKind, row: Map<String, Value>) -> Map<String, Value> {
    match kind {
        RecordKind::Events => row,
        RecordKind::Profiles => {
            let mut message = Map::new();
            let mut traits = Map::new();
            for (field, value) in row {
                match (top_level_name(&field), value) {
                    (
                        Some(name @ ("userId" | "anonymousId" | "messageId" | "timestamp")),
                        value,
                    ) => {
                        message.insert(name.to_string(), value);
                    }
                    (_, Value::Object(nested)) if field == "traits" => traits.extend(nested),
                    (_, value) => {
                        traits.insert(field, value);
                    }
                }
            }
            message.insert("type".into(), Value::String("identify".into()));
            message.insert("traits".into(), Value::Object(traits));
            message
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn csv_rows_become_nested_messages() {
        let row = csv_row(
            &strings(&[
                "type",
                "user_id",
                "event",
                "properties.price",
                "properties.gift",
                "context.ip",
                "properties.sku",
            ]),
            &strings(&[
                "track",
                "u1",
                "Order Completed",
                "12.5",
                "false",
                "1.2.3.4",
                "",
            ]),
        );
        assert_eq!(
            Value::Object(row),
            json!({"type": "track", "userId": "u1", "event": "Order Completed",
                   "properties": {"price": 12.5, "gift": false}, "context": {"ip": "1.2.3.4"}})
        );
    }

    #[test]
    fn profile_rows_become_identify_calls_with_traits() {
        let row = csv_row(
            &strings(&["user_id", "email", "plan", "age"]),
            &strings(&["u1", "a@b.c", "pro", "41"]),
        );
        let message = to_message(RecordKind::Profiles, row);
        assert_eq!(
            Value::Object(message),
            json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.c", "plan": "pro", "age": "41"}})
        );
    }
}
