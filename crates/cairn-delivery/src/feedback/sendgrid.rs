//! SendGrid's Event Webhook: a JSON array of events, each with `event`, `email`, `timestamp` (Unix
//! seconds), `sg_message_id`, usually `smtp-id` (the `Message-ID` Cairn set), and any custom args at
//! the top level. Cairn's message id is taken from the custom arg `cairn_message_id` when present,
//! else from `smtp-id`.
//!
//! | SendGrid `event` | Cairn kind | notes |
//! | --- | --- | --- |
//! | `delivered` | delivered | `response` → reason |
//! | `open` | opened | |
//! | `click` | clicked | `url` |
//! | `bounce` | bounced | `type: "blocked"` → soft, otherwise hard; `status` → code, `reason` |
//! | `dropped` | failed | `reason` |
//! | `spamreport` | complained | |
//! | `unsubscribe`, `group_unsubscribe` | unsubscribed | `asm_group_id` → code |
//! | `processed`, `deferred`, `group_resubscribe`, others | ignored | Cairn records "sent" itself; deferrals are retried by SendGrid |

use serde_json::{Map, Value};

use super::{parse_time, string_field, BounceType, FeedbackEvent, FeedbackKind, ParsedCallback};
use crate::email_headers::message_id_from_header;
use crate::{Channel, DeliveryError};

const FORMAT: &str = "sendgrid event webhook";

/// Parses a SendGrid Event Webhook body.
pub fn parse(body: &[u8]) -> Result<ParsedCallback, DeliveryError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| DeliveryError::callback(FORMAT, error.to_string()))?;
    let Value::Array(items) = value else {
        return Err(DeliveryError::callback(
            FORMAT,
            "expected a JSON array of events",
        ));
    };
    let mut events = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(DeliveryError::callback(
                FORMAT,
                format!("item {index} is not an object"),
            ));
        };
        if let Some(event) = parse_event(object)
            .map_err(|reason| DeliveryError::callback(FORMAT, format!("item {index}: {reason}")))?
        {
            events.push(event);
        }
    }
    Ok(ParsedCallback {
        events,
        subscription_confirmation_url: None,
    })
}

fn parse_event(object: &Map<String, Value>) -> Result<Option<FeedbackEvent>, String> {
    let name = object
        .get("event")
        .and_then(Value::as_str)
        .ok_or("no `event` field")?;
    let kind = match name {
        "delivered" => FeedbackKind::Delivered,
        "open" => FeedbackKind::Opened,
        "click" => FeedbackKind::Clicked,
        "bounce" => FeedbackKind::Bounced,
        "dropped" => FeedbackKind::Failed,
        "spamreport" => FeedbackKind::Complained,
        "unsubscribe" | "group_unsubscribe" => FeedbackKind::Unsubscribed,
        _ => return Ok(None),
    };
    let timestamp = object.get("timestamp").ok_or("no `timestamp` field")?;
    let occurred_at_ms = parse_time(timestamp).ok_or("`timestamp` is not a Unix time")?;
    let mut event = FeedbackEvent::new(kind, Channel::Email, "sendgrid", occurred_at_ms);
    event.recipient = string_field(object, "email");
    event.provider_message_id = string_field(object, "sg_message_id");
    event.message_id = string_field(object, "cairn_message_id").or_else(|| {
        string_field(object, "smtp-id").and_then(|header| message_id_from_header(&header))
    });
    event.reason = string_field(object, "reason").or_else(|| string_field(object, "response"));
    match kind {
        FeedbackKind::Bounced => {
            let blocked = object.get("type").and_then(Value::as_str) == Some("blocked");
            event.bounce_type = Some(if blocked {
                BounceType::Soft
            } else {
                BounceType::Hard
            });
            event.code = string_field(object, "status");
        }
        FeedbackKind::Clicked => event.url = string_field(object, "url"),
        FeedbackKind::Unsubscribed => event.code = string_field(object, "asm_group_id"),
        _ => {}
    }
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = r#"[
      {"email":"ann@example.com","timestamp":1767323045,"smtp-id":"<msg_7@mail.example.com>","event":"processed","sg_event_id":"e0","sg_message_id":"sg0"},
      {"email":"ann@example.com","timestamp":1767323046,"smtp-id":"<msg_7@mail.example.com>","event":"delivered","response":"250 OK","sg_event_id":"e1","sg_message_id":"sg1"},
      {"email":"bob@example.com","timestamp":1767323047,"smtp-id":"<msg_8@mail.example.com>","event":"bounce","type":"bounce","status":"5.1.1","reason":"550 5.1.1 no such user","sg_event_id":"e2","sg_message_id":"sg2"},
      {"email":"cy@example.com","timestamp":1767323048,"event":"bounce","type":"blocked","status":"4.0.0","reason":"blocked","sg_message_id":"sg3","cairn_message_id":"msg_9"},
      {"email":"ann@example.com","timestamp":1767323049,"event":"click","url":"https://shop.example.com","sg_message_id":"sg1","cairn_message_id":"msg_7"},
      {"email":"ann@example.com","timestamp":1767323050,"event":"spamreport","sg_message_id":"sg1","cairn_message_id":"msg_7"},
      {"email":"ann@example.com","timestamp":1767323051,"event":"group_unsubscribe","asm_group_id":42,"sg_message_id":"sg1","cairn_message_id":"msg_7"}
    ]"#;

    #[test]
    fn maps_the_documented_events() {
        let parsed = parse(SAMPLE.as_bytes()).unwrap();
        let names: Vec<String> = parsed.events.iter().map(|e| e.event_name()).collect();
        assert_eq!(
            names,
            [
                "Email Delivered",
                "Email Bounced",
                "Email Bounced",
                "Email Clicked",
                "Email Complained",
                "Email Unsubscribed"
            ]
        );
        let hard = &parsed.events[1];
        assert_eq!(hard.message_id.as_deref(), Some("msg_8"));
        assert_eq!(hard.bounce_type, Some(BounceType::Hard));
        assert_eq!(hard.code.as_deref(), Some("5.1.1"));
        assert_eq!(hard.recipient.as_deref(), Some("bob@example.com"));
        assert_eq!(hard.occurred_at_ms, 1_767_323_047_000);
        assert_eq!(parsed.events[2].bounce_type, Some(BounceType::Soft));
        assert_eq!(parsed.events[2].message_id.as_deref(), Some("msg_9"));
        assert_eq!(
            parsed.events[3].url.as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(parsed.events[5].code.as_deref(), Some("42"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parse(b"{}").is_err());
        assert!(parse(br#"[{"timestamp":1}]"#).is_err());
        assert!(parse(br#"[{"event":"open"}]"#).is_err());
        assert!(parse(br#"[{"event":"open","timestamp":"noon"}]"#).is_err());
        assert!(parse(br#"[1]"#).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&body);
        }

        #[test]
        fn arbitrary_events_never_panic(event in "[a-z_]{0,16}", ts in any::<i64>(), extra in "\\PC{0,20}") {
            let body = serde_json::json!([{"event": event, "timestamp": ts, "email": extra, "smtp-id": extra, "type": extra}]);
            let _ = parse(body.to_string().as_bytes());
        }
    }
}
