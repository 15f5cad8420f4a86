//! Cairn's generic feedback format, for any provider or relay that can POST JSON.
//!
//! The body is one object or an array of objects:
//! ```json
//! {"type": "bounced", "channel": "email", "message_id": "msg_123", "recipient": "ann@example.com",
//!  "timestamp": "2026-01-02T03:04:05Z", "bounce_type": "hard", "code": "5.1.1", "reason": "no such user"}
//! ```
//! `type` is one of `sent`, `delivered`, `opened`, `clicked`, `bounced`, `complained`, `unsubscribed`,
//! `failed`; `message_id` and `timestamp` (RFC 3339, or Unix seconds/milliseconds) are required;
//! `channel` defaults to `email`; `bounce_type` (`hard`/`soft`, default `hard`) only on bounces; `url`
//! on clicks; `provider_message_id`, `recipient`, `code`, `reason`, `subscription_group` optional.
//! Unknown fields are errors, so typos do not pass silently.

use serde::Deserialize;
use serde_json::Value;

use super::{parse_time, BounceType, FeedbackEvent, FeedbackKind, ParsedCallback};
use crate::{Channel, DeliveryError, SubscriptionGroupId};

const FORMAT: &str = "generic feedback";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericEvent {
    #[serde(rename = "type")]
    kind: FeedbackKind,
    #[serde(default)]
    channel: Option<Channel>,
    message_id: String,
    timestamp: Value,
    #[serde(default)]
    provider_message_id: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
    #[serde(default)]
    bounce_type: Option<BounceType>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    subscription_group: Option<SubscriptionGroupId>,
}

/// Parses a generic feedback body.
pub fn parse(body: &[u8]) -> Result<ParsedCallback, DeliveryError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| DeliveryError::callback(FORMAT, error.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(DeliveryError::callback(
                FORMAT,
                "expected an object or an array of objects",
            ))
        }
    };
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let raw: GenericEvent = serde_json::from_value(item)
            .map_err(|error| DeliveryError::callback(FORMAT, format!("item {index}: {error}")))?;
        if raw.message_id.is_empty() {
            return Err(DeliveryError::callback(
                FORMAT,
                format!("item {index}: message_id is empty"),
            ));
        }
        let occurred_at_ms = parse_time(&raw.timestamp).ok_or_else(|| {
            DeliveryError::callback(
                FORMAT,
                format!("item {index}: timestamp is neither RFC 3339 nor a Unix time"),
            )
        })?;
        if raw.bounce_type.is_some() && raw.kind != FeedbackKind::Bounced {
            return Err(DeliveryError::callback(
                FORMAT,
                format!("item {index}: bounce_type is only for bounces"),
            ));
        }
        let mut event = FeedbackEvent::new(
            raw.kind,
            raw.channel.unwrap_or(Channel::Email),
            "generic",
            occurred_at_ms,
        );
        event.message_id = Some(raw.message_id);
        event.provider_message_id = raw.provider_message_id;
        event.recipient = raw.recipient;
        event.bounce_type = match raw.kind {
            FeedbackKind::Bounced => Some(raw.bounce_type.unwrap_or(BounceType::Hard)),
            _ => None,
        };
        event.code = raw.code;
        event.reason = raw.reason;
        event.url = raw.url;
        event.subscription_group = raw.subscription_group;
        events.push(event);
    }
    Ok(ParsedCallback {
        events,
        subscription_confirmation_url: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_one_object_or_an_array() {
        let one = parse(br#"{"type":"bounced","message_id":"msg_1","recipient":"a@example.com","timestamp":"2026-01-02T03:04:05Z","code":"5.1.1"}"#).unwrap();
        let event = &one.events[0];
        assert_eq!(event.event_name(), "Email Bounced");
        assert_eq!(event.bounce_type, Some(BounceType::Hard));
        assert_eq!(event.occurred_at_ms, 1_767_323_045_000);
        let many = parse(br#"[{"type":"delivered","channel":"sms","message_id":"m","timestamp":1767323045},
                              {"type":"clicked","message_id":"m","timestamp":1767323045123,"url":"https://x"}]"#).unwrap();
        assert_eq!(many.events[0].event_name(), "SMS Delivered");
        assert_eq!(many.events[0].occurred_at_ms, 1_767_323_045_000);
        assert_eq!(many.events[1].occurred_at_ms, 1_767_323_045_123);
    }

    #[test]
    fn errors_name_the_item_and_the_problem() {
        let error = parse(br#"[{"type":"opened","message_id":"m","timestamp":1},{"type":"exploded","message_id":"m","timestamp":1}]"#).unwrap_err();
        assert!(error.to_string().contains("item 1"), "{error}");
        assert!(
            parse(br#"{"type":"opened","message_id":"m","timestamp":1,"mesage":"typo"}"#).is_err()
        );
        assert!(parse(br#"{"type":"opened","message_id":"m","timestamp":"yesterday"}"#).is_err());
        assert!(
            parse(br#"{"type":"opened","message_id":"m","timestamp":1,"bounce_type":"soft"}"#)
                .is_err()
        );
        assert!(parse(b"42").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(kind in "[a-z]{0,12}", ts in any::<i64>(), id in "\\PC{0,10}") {
            let body = serde_json::json!({"type": kind, "message_id": id, "timestamp": ts});
            let _ = parse(body.to_string().as_bytes());
        }
    }
}
