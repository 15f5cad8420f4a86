//! What the dispatcher hands a provider: one rendered message per channel.

use serde::{Deserialize, Serialize};

/// RFC 8058 one-click unsubscribe for an email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUnsubscribe {
    /// The signed https URL (GET shows the page, POST unsubscribes in one click).
    pub url: String,
    /// An optional mailto address.
    pub mailto: Option<String>,
}

/// A rendered email (tracking already applied to `html` by `cairn_delivery::instrument_html`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailMessage {
    /// Cairn's deterministic message id; the `Message-ID` header is derived from it.
    pub message_id: String,
    pub to: String,
    /// Overrides the provider's default sender.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub list_unsubscribe: Option<ListUnsubscribe>,
}

/// A rendered SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    pub message_id: String,
    /// E.164.
    pub to: String,
    pub body: String,
}

/// A rendered push notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushMessage {
    pub message_id: String,
    pub device_token: String,
    pub title: String,
    pub body: String,
    /// FCM data payload (string values only, as FCM requires).
    pub data: std::collections::BTreeMap<String, String>,
}

/// Maps a value of the webhook's JSON response (an RFC 6901 pointer) onto a profile attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMapping {
    pub pointer: String,
    pub attribute: String,
}

/// A webhook / custom activity call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRequest {
    pub message_id: String,
    pub url: String,
    /// The rendered JSON body (sent compact, exactly as serialized).
    pub body: serde_json::Value,
    #[serde(default)]
    pub response_mapping: Vec<ResponseMapping>,
}

/// One message for one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum OutboundMessage {
    Email(EmailMessage),
    Sms(SmsMessage),
    Push(PushMessage),
    Webhook(WebhookRequest),
}

impl OutboundMessage {
    /// Cairn's message id.
    pub fn message_id(&self) -> &str {
        match self {
            OutboundMessage::Email(m) => &m.message_id,
            OutboundMessage::Sms(m) => &m.message_id,
            OutboundMessage::Push(m) => &m.message_id,
            OutboundMessage::Webhook(m) => &m.message_id,
        }
    }

    /// Where it goes: the email address, phone number, device token or URL.
    pub fn recipient(&self) -> &str {
        match self {
            OutboundMessage::Email(m) => &m.to,
            OutboundMessage::Sms(m) => &m.to,
            OutboundMessage::Push(m) => &m.device_token,
            OutboundMessage::Webhook(m) => &m.url,
        }
    }

    /// The channel.
    pub fn channel(&self) -> cairn_delivery::Channel {
        match self {
            OutboundMessage::Email(_) => cairn_delivery::Channel::Email,
            OutboundMessage::Sms(_) => cairn_delivery::Channel::Sms,
            OutboundMessage::Push(_) => cairn_delivery::Channel::Push,
            OutboundMessage::Webhook(_) => cairn_delivery::Channel::Webhook,
        }
    }
}
