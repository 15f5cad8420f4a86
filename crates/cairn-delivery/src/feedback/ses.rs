//! Amazon SES notifications, delivered by SNS (an HTTP(S) subscription) or posted raw.
//!
//! Accepted bodies:
//! - the SNS envelope `{"Type": "Notification", "Message": "<SES JSON as a string>", …}`;
//! - `{"Type": "SubscriptionConfirmation", "SubscribeURL": …}` → no events, the URL is returned for
//!   the caller to confirm (SNS message signatures are not verified here: protect the endpoint with
//!   a secret path or Basic auth, as SNS supports both);
//! - the SES JSON itself (SNS "raw message delivery").
//!
//! The SES JSON has `notificationType` (identity notifications) or `eventType` (configuration-set
//! event publishing): `Bounce` (one event per `bounce.bouncedRecipients[]`; `bounceType: Permanent` →
//! hard, `Transient`/`Undetermined` → soft; `status` → code, `diagnosticCode` → reason), `Complaint`
//! (per `complaint.complainedRecipients[]`), `Delivery` (per `delivery.recipients[]`), `Reject` and
//! `Rendering Failure` → failed, `Open`, `Click` (`click.link`); `Send`, `DeliveryDelay` and others are
//! ignored. Cairn's id comes from `mail.commonHeaders.messageId` or the `Message-ID` in `mail.headers`;
//! SES's own `mail.messageId` is the provider id.

use serde_json::{Map, Value};

use super::{parse_time, string_field, BounceType, FeedbackEvent, FeedbackKind, ParsedCallback};
use crate::email_headers::message_id_from_header;
use crate::{Channel, DeliveryError};

const FORMAT: &str = "amazon ses/sns notification";

/// Parses an SNS-delivered (or raw) SES notification.
pub fn parse(body: &[u8]) -> Result<ParsedCallback, DeliveryError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| DeliveryError::callback(FORMAT, error.to_string()))?;
    let Value::Object(object) = value else {
        return Err(DeliveryError::callback(FORMAT, "expected a JSON object"));
    };
    match object.get("Type").and_then(Value::as_str) {
        Some("SubscriptionConfirmation") => {
            let url = string_field(&object, "SubscribeURL").ok_or_else(|| {
                DeliveryError::callback(FORMAT, "SubscriptionConfirmation without SubscribeURL")
            })?;
            Ok(ParsedCallback {
                events: Vec::new(),
                subscription_confirmation_url: Some(url),
            })
        }
        Some("UnsubscribeConfirmation") => Ok(ParsedCallback::default()),
        Some("Notification") => {
            let message = object
                .get("Message")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    DeliveryError::callback(FORMAT, "Notification without a Message string")
                })?;
            let inner: Value = serde_json::from_str(message).map_err(|error| {
                DeliveryError::callback(FORMAT, format!("Message is not JSON: {error}"))
            })?;
            let Value::Object(inner) = inner else {
                return Err(DeliveryError::callback(
                    FORMAT,
                    "Message is not a JSON object",
                ));
            };
            parse_ses(&inner)
        }
        Some(other) => Err(DeliveryError::callback(
            FORMAT,
            format!("unknown SNS Type `{other}`"),
        )),
        None => parse_ses(&object),
    }
}

fn object_at<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a Map<String, Value>, DeliveryError> {
    object
        .get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| DeliveryError::callback(FORMAT, format!("no `{name}` object")))
}

fn cairn_message_id(mail: &Map<String, Value>) -> Option<String> {
    let common = mail
        .get("commonHeaders")
        .and_then(Value::as_object)
        .and_then(|h| string_field(h, "messageId"));
    let from_headers = || {
        mail.get("headers")?.as_array()?.iter().find_map(|header| {
            let header = header.as_object()?;
            let name = header.get("name")?.as_str()?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| header.get("value")?.as_str().map(str::to_owned))?
        })
    };
    common
        .or_else(from_headers)
        .and_then(|value| message_id_from_header(&value))
}

fn parse_ses(object: &Map<String, Value>) -> Result<ParsedCallback, DeliveryError> {
    let kind_name = object
        .get("eventType")
        .or_else(|| object.get("notificationType"))
        .and_then(Value::as_str)
        .ok_or_else(|| DeliveryError::callback(FORMAT, "neither eventType nor notificationType"))?;
    let mail = object_at(object, "mail")?;
    let base = |kind: FeedbackKind,
                section: Option<&Map<String, Value>>|
     -> Result<FeedbackEvent, DeliveryError> {
        let time = section
            .and_then(|s| s.get("timestamp"))
            .or_else(|| mail.get("timestamp"))
            .and_then(parse_time)
            .ok_or_else(|| DeliveryError::callback(FORMAT, "no RFC 3339 timestamp"))?;
        let mut event = FeedbackEvent::new(kind, Channel::Email, "ses", time);
        event.provider_message_id = string_field(mail, "messageId");
        event.message_id = cairn_message_id(mail);
        Ok(event)
    };
    let recipients = |section: &Map<String, Value>, list: &str, nested: bool| -> Vec<Value> {
        let items = section
            .get(list)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if nested {
            items
        } else {
            items
                .into_iter()
                .map(|address| serde_json::json!({ "emailAddress": address }))
                .collect()
        }
    };
    let mut events = Vec::new();
    match kind_name {
        "Bounce" => {
            let bounce = object_at(object, "bounce")?;
            let bounce_type = match bounce.get("bounceType").and_then(Value::as_str) {
                Some("Permanent") => BounceType::Hard,
                _ => BounceType::Soft,
            };
            for recipient in recipients(bounce, "bouncedRecipients", true) {
                let mut event = base(FeedbackKind::Bounced, Some(bounce))?;
                event.bounce_type = Some(bounce_type);
                if let Some(recipient) = recipient.as_object() {
                    event.recipient = string_field(recipient, "emailAddress");
                    event.code = string_field(recipient, "status");
                    event.reason = string_field(recipient, "diagnosticCode");
                }
                event.reason = event
                    .reason
                    .or_else(|| string_field(bounce, "bounceSubType"));
                events.push(event);
            }
        }
        "Complaint" => {
            let complaint = object_at(object, "complaint")?;
            for recipient in recipients(complaint, "complainedRecipients", true) {
                let mut event = base(FeedbackKind::Complained, Some(complaint))?;
                event.recipient = recipient
                    .as_object()
                    .and_then(|r| string_field(r, "emailAddress"));
                event.reason = string_field(complaint, "complaintFeedbackType");
                events.push(event);
            }
        }
        "Delivery" => {
            let delivery = object_at(object, "delivery")?;
            for recipient in recipients(delivery, "recipients", false) {
                let mut event = base(FeedbackKind::Delivered, Some(delivery))?;
                event.recipient = recipient
                    .as_object()
                    .and_then(|r| string_field(r, "emailAddress"));
                event.reason = string_field(delivery, "smtpResponse");
                events.push(event);
            }
        }
        "Reject" | "Rendering Failure" => {
            let section = object
                .get("reject")
                .or_else(|| object.get("failure"))
                .and_then(Value::as_object);
            let mut event = base(FeedbackKind::Failed, None)?;
            event.reason = section.and_then(|s| {
                string_field(s, "reason").or_else(|| string_field(s, "errorMessage"))
            });
            events.push(event);
        }
        "Open" => events.push(base(
            FeedbackKind::Opened,
            Some(object_at(object, "open")?),
        )?),
        "Click" => {
            let click = object_at(object, "click")?;
            let mut event = base(FeedbackKind::Clicked, Some(click))?;
            event.url = string_field(click, "link");
            events.push(event);
        }
        _ => {}
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

    fn envelope(message: &Value) -> Vec<u8> {
        serde_json::json!({
            "Type": "Notification", "MessageId": "sns-1", "TopicArn": "arn:aws:sns:eu-west-1:1:ses",
            "Message": message.to_string(), "Timestamp": "2026-01-02T03:04:06.000Z", "SignatureVersion": "1",
            "Signature": "x", "SigningCertURL": "https://sns.example/cert.pem", "UnsubscribeURL": "https://sns.example/u"
        })
        .to_string()
        .into_bytes()
    }

    fn mail() -> Value {
        serde_json::json!({
            "timestamp": "2026-01-02T03:04:00.000Z", "messageId": "0102-ses-id", "source": "news@example.com",
            "destination": ["ann@example.com"],
            "headers": [{"name": "Message-ID", "value": "<msg_42@mail.example.com>"}],
            "commonHeaders": {"messageId": "<msg_42@mail.example.com>", "subject": "Hi"}
        })
    }

    #[test]
    fn bounces_complaints_and_deliveries() {
        let bounce = serde_json::json!({"notificationType": "Bounce", "mail": mail(), "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-01-02T03:04:05.000Z",
            "bouncedRecipients": [{"emailAddress": "ann@example.com", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
                                  {"emailAddress": "bob@example.com", "status": "5.1.1"}]}});
        let parsed = parse(&envelope(&bounce)).unwrap();
        assert_eq!(parsed.events.len(), 2);
        let first = &parsed.events[0];
        assert_eq!(first.event_name(), "Email Bounced");
        assert_eq!(first.message_id.as_deref(), Some("msg_42"));
        assert_eq!(first.provider_message_id.as_deref(), Some("0102-ses-id"));
        assert_eq!(first.bounce_type, Some(BounceType::Hard));
        assert_eq!(first.code.as_deref(), Some("5.1.1"));
        assert_eq!(first.occurred_at_ms, 1_767_323_045_000);
        assert_eq!(
            parsed.events[1].recipient.as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(parsed.events[1].reason.as_deref(), Some("General"));

        let complaint = serde_json::json!({"eventType": "Complaint", "mail": mail(), "complaint": {
            "complainedRecipients": [{"emailAddress": "ann@example.com"}], "timestamp": "2026-01-02T05:00:00Z", "complaintFeedbackType": "abuse"}});
        let parsed = parse(complaint.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.events[0].event_name(), "Email Complained");
        assert_eq!(parsed.events[0].reason.as_deref(), Some("abuse"));

        let delivery = serde_json::json!({"notificationType": "Delivery", "mail": mail(), "delivery": {
            "timestamp": "2026-01-02T03:04:07Z", "recipients": ["ann@example.com"], "smtpResponse": "250 ok"}});
        let parsed = parse(&envelope(&delivery)).unwrap();
        assert_eq!(parsed.events[0].event_name(), "Email Delivered");
        assert_eq!(
            parsed.events[0].recipient.as_deref(),
            Some("ann@example.com")
        );

        let transient = serde_json::json!({"notificationType": "Bounce", "mail": mail(), "bounce": {
            "bounceType": "Transient", "timestamp": "2026-01-02T03:04:05Z", "bouncedRecipients": [{"emailAddress": "x@example.com"}]}});
        assert_eq!(
            parse(&envelope(&transient)).unwrap().events[0].bounce_type,
            Some(BounceType::Soft)
        );
    }

    #[test]
    fn subscription_confirmations_and_errors() {
        let confirm = br#"{"Type":"SubscriptionConfirmation","SubscribeURL":"https://sns.example/confirm?t=1","Token":"t"}"#;
        let parsed = parse(confirm).unwrap();
        assert!(parsed.events.is_empty());
        assert_eq!(
            parsed.subscription_confirmation_url.as_deref(),
            Some("https://sns.example/confirm?t=1")
        );
        assert!(parse(br#"{"Type":"Notification","Message":"not json"}"#).is_err());
        assert!(parse(br#"{"Type":"Weird"}"#).is_err());
        assert!(
            parse(br#"{"notificationType":"Bounce"}"#).is_err(),
            "no mail object"
        );
        assert!(parse(b"[]").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&body);
        }

        #[test]
        fn arbitrary_notifications_never_panic(kind in "(Bounce|Complaint|Delivery|Open|Click|Reject|[A-Z][a-z]{0,6})", ts in "\\PC{0,10}", addr in "\\PC{0,10}") {
            let inner = serde_json::json!({"eventType": kind, "mail": {"timestamp": ts, "headers": [{"name": addr}]},
                "bounce": {"bouncedRecipients": [addr]}, "complaint": {"complainedRecipients": [{"emailAddress": 1}]},
                "delivery": {"recipients": [1]}, "open": {}, "click": {"link": 3}});
            let _ = parse(&envelope(&inner));
        }
    }
}
