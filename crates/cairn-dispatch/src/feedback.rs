//! Delivery feedback as events on the profile: `Email Sent`, `SMS Failed`, `Webhook Responded`, …
//!
//! The dispatcher submits them through the engine's ingestor like any other input, attached to the
//! profile by id (no identity resolution) and with a message id derived from Cairn's message id and
//! the outcome, so a feedback event re-sent after a crash is dropped as a duplicate.

use cairn_delivery::{feedback::event_name, Channel, FeedbackKind};
use cairn_model::{MessageKind, NormalizedMessage, ProfileId};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// A feedback event about message `message_id` of profile `profile`.
pub fn event(
    profile: ProfileId,
    name: &str,
    message_id: &str,
    properties: Map<String, Value>,
    traits: Option<Map<String, Value>>,
    at: DateTime<Utc>,
) -> NormalizedMessage {
    let mut raw = json!({"type": "track", "event": name, "properties": properties});
    if let Some(traits) = &traits {
        raw["context"] = json!({"traits": traits});
    }
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    NormalizedMessage {
        message_id: format!("{message_id}-{slug}"),
        kind: MessageKind::Track,
        identifiers: Vec::new(),
        previous_id: None,
        name: Some(name.to_string()),
        timestamp: at,
        original_timestamp: None,
        sent_at: None,
        received_at: at,
        traits: traits
            .filter(|traits| !traits.is_empty())
            .map(|traits| Value::Object(traits).to_string()),
        raw: raw.to_string(),
        profile: Some(profile),
    }
}

/// The properties every delivery event carries.
pub fn properties(
    channel: Channel,
    message_id: &str,
    journey: Option<&str>,
    provider: Option<&str>,
) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("channel".into(), channel.as_str().into());
    properties.insert("message_id".into(), message_id.into());
    if let Some(journey) = journey {
        properties.insert("journey".into(), journey.into());
    }
    if let Some(provider) = provider {
        properties.insert("provider".into(), provider.into());
    }
    properties
}

/// `Email Sent`, `SMS Failed`, … (the same names provider callbacks produce).
pub fn name(channel: Channel, kind: FeedbackKind) -> String {
    event_name(channel, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_events_are_deterministic_and_attached_to_their_profile() {
        let at = Utc::now();
        let properties = properties(Channel::Email, "m1", Some("welcome"), Some("smtp"));
        let a = event(
            ProfileId(7),
            "Email Sent",
            "m1",
            properties.clone(),
            None,
            at,
        );
        let b = event(ProfileId(7), "Email Sent", "m1", properties, None, at);
        assert_eq!(a.message_id, b.message_id, "a re-sent event is a duplicate");
        assert_eq!(a.message_id, "m1-email-sent");
        assert_eq!(a.profile, Some(ProfileId(7)));
        let raw: Value = serde_json::from_str(&a.raw).expect("json");
        assert_eq!(raw["properties"]["journey"], "welcome");
        assert_eq!(name(Channel::Sms, FeedbackKind::Failed), "SMS Failed");
    }
}
