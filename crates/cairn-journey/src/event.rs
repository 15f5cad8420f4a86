//! What reaches the runtime from outside: a profile's events and delivery results.

use crate::ids::MessageId;
use serde_json::{Map, Value};

/// One event of the profile, as conditions see it: the Segment message JSON (`type`, `event`,
/// `properties`, `timestamp`, …) with its name and time read once.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name (`event` of a track message).
    pub name: String,
    /// The event's own timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// The whole message, read by `event.*` in conditions.
    pub message: Value,
}

impl Event {
    /// A track event with these properties (the message is built in Segment's shape).
    pub fn track(name: &str, timestamp_ms: i64, properties: Map<String, Value>) -> Event {
        let mut message = Map::new();
        message.insert("type".to_owned(), Value::from("track"));
        message.insert("event".to_owned(), Value::from(name));
        message.insert("properties".to_owned(), Value::Object(properties));
        if let Some(timestamp) = crate::local_time::format_rfc3339(timestamp_ms) {
            message.insert("timestamp".to_owned(), Value::from(timestamp));
        }
        Event {
            name: name.to_owned(),
            timestamp_ms,
            message: Value::Object(message),
        }
    }

    /// A string property, if present.
    pub fn property_str(&self, key: &str) -> Option<&str> {
        self.message.get("properties")?.get(key)?.as_str()
    }

    /// The id of the message this event is feedback about (`properties.message_id`).
    pub fn feedback_message_id(&self) -> Option<MessageId> {
        self.property_str("message_id").and_then(MessageId::parse)
    }
}

/// The outcome of delivering a message the enrollment waits for (webhook `await_response`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryResult {
    pub message_id: MessageId,
    /// Whether the delivery succeeded (for a webhook: a 2xx answer).
    pub ok: bool,
    /// Response fields (status, body) made available as `journey.steps.<step>.response`.
    pub response: Value,
}
