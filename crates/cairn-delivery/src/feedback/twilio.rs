//! Twilio's callbacks (form-encoded POSTs): message status callbacks and inbound messages, and the
//! `X-Twilio-Signature` check that proves a request came from Twilio.
//!
//! Status callbacks carry `MessageSid`, `MessageStatus` (or the older `SmsStatus`), `To`, `From`,
//! `AccountSid`, and `ErrorCode` on failures. Cairn puts its own message id in the `StatusCallback`
//! URL (`?cairn_message_id=…`); the caller passes it in. Status mapping: `delivered` → delivered,
//! `undelivered` and `failed` → failed (with `ErrorCode`), `read` → opened; `accepted`, `queued`,
//! `sending`, `sent`, `scheduled`, `canceled` are ignored (Cairn records "sent" when Twilio accepts).
//!
//! Inbound messages carry `From`, `To`, `Body`, `MessageSid`; the body's keyword (STOP, START, HELP)
//! is recognised with [`crate::parse_sms_keyword`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{FeedbackEvent, FeedbackKind, ParsedCallback};
use crate::{parse_sms_keyword, Channel, ConsentChange, ConsentTarget, DeliveryError, SmsKeyword};

const STATUS_FORMAT: &str = "twilio status callback";
const INBOUND_FORMAT: &str = "twilio inbound message";

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// Parses a status callback received at `received_at_ms` (Twilio's callbacks carry no timestamp).
pub fn parse_status_callback(
    body: &[u8],
    cairn_message_id: Option<&str>,
    received_at_ms: i64,
) -> Result<ParsedCallback, DeliveryError> {
    let pairs = form_pairs(body);
    let sid = field(&pairs, "MessageSid")
        .or_else(|| field(&pairs, "SmsSid"))
        .ok_or_else(|| DeliveryError::callback(STATUS_FORMAT, "no MessageSid"))?;
    let status = field(&pairs, "MessageStatus")
        .or_else(|| field(&pairs, "SmsStatus"))
        .ok_or_else(|| DeliveryError::callback(STATUS_FORMAT, "no MessageStatus"))?;
    let kind = match status {
        "delivered" => FeedbackKind::Delivered,
        "undelivered" | "failed" => FeedbackKind::Failed,
        "read" => FeedbackKind::Opened,
        "accepted" | "queued" | "sending" | "sent" | "scheduled" | "canceled" | "receiving"
        | "received" => return Ok(ParsedCallback::default()),
        other => {
            return Err(DeliveryError::callback(
                STATUS_FORMAT,
                format!("unknown MessageStatus `{other}`"),
            ))
        }
    };
    let mut event = FeedbackEvent::new(kind, Channel::Sms, "twilio", received_at_ms);
    event.provider_message_id = Some(sid.to_owned());
    event.message_id = cairn_message_id.map(str::to_owned);
    event.recipient = field(&pairs, "To").map(str::to_owned);
    event.code = field(&pairs, "ErrorCode").map(str::to_owned);
    event.reason = field(&pairs, "ErrorMessage")
        .map(str::to_owned)
        .or_else(|| (kind == FeedbackKind::Failed).then(|| status.to_owned()));
    Ok(ParsedCallback {
        events: vec![event],
        subscription_confirmation_url: None,
    })
}

/// An inbound SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    pub from: String,
    pub to: String,
    pub body: String,
    pub provider_message_id: Option<String>,
    pub keyword: Option<SmsKeyword>,
}

impl InboundSms {
    /// The consent change the keyword asks for (STOP → opt out of SMS, START → opt in).
    pub fn consent_change(&self) -> Option<ConsentChange> {
        let target = ConsentTarget::Channel(Channel::Sms);
        match self.keyword? {
            SmsKeyword::OptOut => Some(ConsentChange::OptOut { target }),
            SmsKeyword::OptIn => Some(ConsentChange::OptIn { target }),
            SmsKeyword::Help => None,
        }
    }
}

/// Parses an inbound message webhook.
pub fn parse_inbound(body: &[u8]) -> Result<InboundSms, DeliveryError> {
    let pairs = form_pairs(body);
    let required = |name: &str| {
        field(&pairs, name)
            .map(str::to_owned)
            .ok_or_else(|| DeliveryError::callback(INBOUND_FORMAT, format!("no {name}")))
    };
    let from = required("From")?;
    let to = required("To")?;
    let body = field(&pairs, "Body").unwrap_or("").to_owned();
    let keyword = parse_sms_keyword(&body);
    Ok(InboundSms {
        from,
        to,
        keyword,
        body,
        provider_message_id: field(&pairs, "MessageSid").map(str::to_owned),
    })
}

/// The `X-Twilio-Signature` Twilio computes for a form POST to `url`: base64 of HMAC-SHA1 under the
/// auth token of the URL followed by each parameter's name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, form_body: &[u8]) -> String {
    let mut pairs = form_pairs(form_body);
    pairs.sort();
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    mac.update(url.as_bytes());
    for (key, value) in &pairs {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies `X-Twilio-Signature` in constant time.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    form_body: &[u8],
    header: &str,
) -> Result<(), DeliveryError> {
    let Ok(claimed) = STANDARD.decode(header.trim()) else {
        return Err(DeliveryError::InvalidSignature(
            "X-Twilio-Signature is not base64",
        ));
    };
    let mut pairs = form_pairs(form_body);
    pairs.sort();
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    mac.update(url.as_bytes());
    for (key, value) in &pairs {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.verify_slice(&claimed)
        .map_err(|_| DeliveryError::InvalidSignature("X-Twilio-Signature does not match"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_callbacks_map_to_feedback() {
        let body = b"MessageSid=SM123&MessageStatus=undelivered&To=%2B14155550100&From=%2B14155550199&AccountSid=AC1&ErrorCode=30003";
        let parsed = parse_status_callback(body, Some("msg_5"), 1_000).unwrap();
        let event = &parsed.events[0];
        assert_eq!(event.event_name(), "SMS Failed");
        assert_eq!(event.code.as_deref(), Some("30003"));
        assert_eq!(event.recipient.as_deref(), Some("+14155550100"));
        assert_eq!(event.message_id.as_deref(), Some("msg_5"));
        let delivered =
            parse_status_callback(b"MessageSid=SM1&MessageStatus=delivered", None, 1).unwrap();
        assert_eq!(delivered.events[0].event_name(), "SMS Delivered");
        assert!(
            parse_status_callback(b"MessageSid=SM1&MessageStatus=sent", None, 1)
                .unwrap()
                .events
                .is_empty()
        );
        assert!(parse_status_callback(b"MessageStatus=sent", None, 1).is_err());
        assert!(parse_status_callback(b"MessageSid=SM1&MessageStatus=exploded", None, 1).is_err());
    }

    #[test]
    fn inbound_keywords_become_consent_changes() {
        let stop = parse_inbound(b"From=%2B14155550100&To=%2B14155550199&Body=Stop&MessageSid=SM9")
            .unwrap();
        assert_eq!(stop.keyword, Some(SmsKeyword::OptOut));
        assert_eq!(
            stop.consent_change(),
            Some(ConsentChange::OptOut {
                target: ConsentTarget::Channel(Channel::Sms)
            })
        );
        let start = parse_inbound(b"From=%2B1&To=%2B2&Body=+START+").unwrap();
        assert_eq!(
            start.consent_change(),
            Some(ConsentChange::OptIn {
                target: ConsentTarget::Channel(Channel::Sms)
            })
        );
        let chat = parse_inbound(b"From=%2B1&To=%2B2&Body=where+is+my+order").unwrap();
        assert_eq!(chat.consent_change(), None);
        assert!(parse_inbound(b"Body=STOP").is_err());
    }

    #[test]
    fn twilio_signatures_match_the_documented_algorithm() {
        // Twilio's documented example (auth token 12345, their sample URL and parameters).
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let body = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
        let signature = twilio_signature("12345", url, body);
        assert_eq!(signature, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_twilio_signature("12345", url, body, &signature).is_ok());
        assert!(verify_twilio_signature("12346", url, body, &signature).is_err());
        assert!(verify_twilio_signature("12345", url, body, "not base64!").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_forms_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), id in proptest::option::of("\\PC{0,10}")) {
            let _ = parse_status_callback(&body, id.as_deref(), 0);
            let _ = parse_inbound(&body);
            let _ = verify_twilio_signature("t", "https://x", &body, "abc");
        }
    }
}
