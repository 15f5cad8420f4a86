//! Feedback events — what happened to a message after Cairn handed it over — and the parsers that
//! turn provider callbacks into them.
//!
//! Every feedback event becomes an event on the profile named `"<Channel> <Kind>"` (`Email Opened`,
//! `SMS Delivered`, `Push Failed`), with the properties of [`FeedbackEvent::properties`]; the full
//! table is in `docs/channels.md`. Parsers:
//! - [`generic`]: Cairn's own JSON format, for any provider or relay;
//! - [`sendgrid`]: SendGrid's Event Webhook;
//! - [`ses`]: Amazon SES notifications delivered through SNS;
//! - [`twilio`]: Twilio message status callbacks and inbound messages (STOP/START keywords).

pub mod generic;
pub mod sendgrid;
pub mod ses;
pub mod twilio;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Channel, ConsentChange, ConsentTarget, SubscriptionGroupId, TrackingClaims};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Sent,
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
    Unsubscribed,
    Failed,
}

impl FeedbackKind {
    /// Every kind, in the documented order.
    pub const ALL: [FeedbackKind; 8] = [
        FeedbackKind::Sent,
        FeedbackKind::Delivered,
        FeedbackKind::Opened,
        FeedbackKind::Clicked,
        FeedbackKind::Bounced,
        FeedbackKind::Complained,
        FeedbackKind::Unsubscribed,
        FeedbackKind::Failed,
    ];

    /// The verb in the event name.
    pub fn verb(self) -> &'static str {
        match self {
            FeedbackKind::Sent => "Sent",
            FeedbackKind::Delivered => "Delivered",
            FeedbackKind::Opened => "Opened",
            FeedbackKind::Clicked => "Clicked",
            FeedbackKind::Bounced => "Bounced",
            FeedbackKind::Complained => "Complained",
            FeedbackKind::Unsubscribed => "Unsubscribed",
            FeedbackKind::Failed => "Failed",
        }
    }

    /// The snake_case name used in the generic format.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Sent => "sent",
            FeedbackKind::Delivered => "delivered",
            FeedbackKind::Opened => "opened",
            FeedbackKind::Clicked => "clicked",
            FeedbackKind::Bounced => "bounced",
            FeedbackKind::Complained => "complained",
            FeedbackKind::Unsubscribed => "unsubscribed",
            FeedbackKind::Failed => "failed",
        }
    }
}

/// Hard bounces (the address does not exist) suppress the address; soft ones (mailbox full,
/// greylisting) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceType {
    Hard,
    Soft,
}

/// One thing that happened to one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedbackEvent {
    pub kind: Option<FeedbackKind>,
    pub channel: Option<Channel>,
    /// Cairn's message id, when the callback lets us recover it.
    pub message_id: Option<String>,
    /// The provider's own id (Twilio `SM…`, SES message id, SendGrid `sg_message_id`).
    pub provider_message_id: Option<String>,
    pub provider: &'static str,
    /// The address or number concerned.
    pub recipient: Option<String>,
    pub occurred_at_ms: i64,
    pub bounce_type: Option<BounceType>,
    /// The provider's status or error code (`5.1.1`, `30003`, `UNREGISTERED`).
    pub code: Option<String>,
    /// A human-readable reason.
    pub reason: Option<String>,
    /// The clicked URL.
    pub url: Option<String>,
    pub subscription_group: Option<SubscriptionGroupId>,
}

impl FeedbackEvent {
    pub(crate) fn new(
        kind: FeedbackKind,
        channel: Channel,
        provider: &'static str,
        occurred_at_ms: i64,
    ) -> Self {
        FeedbackEvent {
            kind: Some(kind),
            channel: Some(channel),
            provider,
            occurred_at_ms,
            ..FeedbackEvent::default()
        }
    }

    /// The kind (every parsed event has one).
    pub fn kind(&self) -> FeedbackKind {
        self.kind.unwrap_or(FeedbackKind::Failed)
    }

    /// The channel (every parsed event has one).
    pub fn channel(&self) -> Channel {
        self.channel.unwrap_or(Channel::Email)
    }

    /// The profile event name, `"<Channel> <Kind>"` (`Email Bounced`).
    pub fn event_name(&self) -> String {
        event_name(self.channel(), self.kind())
    }

    /// The profile event's properties; absent values are left out.
    pub fn properties(&self) -> Map<String, Value> {
        let mut properties = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                properties.insert(name.to_owned(), value);
            }
        };
        put("channel", Some(self.channel().as_str().into()));
        put("message_id", self.message_id.clone().map(Value::from));
        put(
            "provider",
            (!self.provider.is_empty()).then(|| self.provider.into()),
        );
        put(
            "provider_message_id",
            self.provider_message_id.clone().map(Value::from),
        );
        put("recipient", self.recipient.clone().map(Value::from));
        put(
            "bounce_type",
            self.bounce_type.map(|kind| match kind {
                BounceType::Hard => "hard".into(),
                BounceType::Soft => "soft".into(),
            }),
        );
        put("code", self.code.clone().map(Value::from));
        put("reason", self.reason.clone().map(Value::from));
        put("url", self.url.clone().map(Value::from));
        put(
            "subscription_group",
            self.subscription_group.map(Value::from),
        );
        properties
    }
}

/// What a feedback event asks the engine to do to the profile, beyond recording the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientAction {
    /// Apply a consent change (a complaint or an unsubscribe).
    Consent(ConsentChange),
    /// The address is undeliverable (a hard bounce): stop using it.
    SuppressAddress,
}

impl FeedbackEvent {
    /// The feedback event a verified tracking token stands for (`Email Opened`, `Email Clicked` with
    /// the URL, `Email Unsubscribed` with the group), at `occurred_at_ms`.
    pub fn from_tracking(claims: &TrackingClaims, occurred_at_ms: i64) -> FeedbackEvent {
        let ids = claims.ids();
        let kind = match claims {
            TrackingClaims::Open { .. } => FeedbackKind::Opened,
            TrackingClaims::Click { .. } => FeedbackKind::Clicked,
            TrackingClaims::Unsubscribe { .. } => FeedbackKind::Unsubscribed,
        };
        let mut event = FeedbackEvent::new(kind, Channel::Email, "cairn", occurred_at_ms);
        event.message_id = Some(ids.message_id.clone());
        match claims {
            TrackingClaims::Click { url, .. } => event.url = Some(url.clone()),
            TrackingClaims::Unsubscribe { group, .. } => event.subscription_group = *group,
            TrackingClaims::Open { .. } => {}
        }
        event
    }

    /// What the event changes on the profile: complaints and unsubscribes opt out (of the group
    /// when one is named, else of the channel), hard bounces suppress the address.
    pub fn recipient_action(&self) -> Option<RecipientAction> {
        let opt_out = |target| RecipientAction::Consent(ConsentChange::OptOut { target });
        match self.kind() {
            FeedbackKind::Complained => Some(opt_out(ConsentTarget::Channel(self.channel()))),
            FeedbackKind::Unsubscribed => Some(opt_out(match self.subscription_group {
                Some(group) => ConsentTarget::Group(group),
                None => ConsentTarget::Channel(self.channel()),
            })),
            FeedbackKind::Bounced if self.bounce_type != Some(BounceType::Soft) => {
                Some(RecipientAction::SuppressAddress)
            }
            _ => None,
        }
    }
}

/// `"<Channel> <Kind>"`, for the documentation table and the engine.
pub fn event_name(channel: Channel, kind: FeedbackKind) -> String {
    format!("{} {}", channel.event_prefix(), kind.verb())
}

/// What a provider callback contained.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedCallback {
    pub events: Vec<FeedbackEvent>,
    /// SNS asks to confirm a subscription by fetching this URL (the caller decides whether to).
    pub subscription_confirmation_url: Option<String>,
}

/// Parses an RFC 3339 timestamp or Unix milliseconds / seconds (heuristic: below 10^11 is seconds).
pub(crate) fn parse_time(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis()),
        Value::Number(number) => {
            let raw = number
                .as_i64()
                .or_else(|| number.as_f64().map(|f| f as i64))?;
            Some(if raw.abs() < 100_000_000_000 {
                raw.saturating_mul(1_000)
            } else {
                raw
            })
        }
        _ => None,
    }
}

pub(crate) fn string_field(object: &Map<String, Value>, name: &str) -> Option<String> {
    match object.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_tokens_and_actions() {
        use crate::TrackingIds;
        let ids = TrackingIds {
            message_id: "msg_1".into(),
            profile_id: "prof_1".into(),
        };
        let click = FeedbackEvent::from_tracking(
            &TrackingClaims::Click {
                ids: ids.clone(),
                link_index: 0,
                url: "https://x".into(),
            },
            7,
        );
        assert_eq!(click.event_name(), "Email Clicked");
        assert_eq!(click.url.as_deref(), Some("https://x"));
        assert_eq!(click.recipient_action(), None);
        let unsubscribe = FeedbackEvent::from_tracking(
            &TrackingClaims::Unsubscribe {
                ids,
                group: Some(4),
            },
            7,
        );
        assert_eq!(unsubscribe.event_name(), "Email Unsubscribed");
        assert_eq!(
            unsubscribe.recipient_action(),
            Some(RecipientAction::Consent(ConsentChange::OptOut {
                target: ConsentTarget::Group(4)
            }))
        );
        let mut bounce = FeedbackEvent::new(FeedbackKind::Bounced, Channel::Email, "x", 1);
        bounce.bounce_type = Some(BounceType::Hard);
        assert_eq!(
            bounce.recipient_action(),
            Some(RecipientAction::SuppressAddress)
        );
        bounce.bounce_type = Some(BounceType::Soft);
        assert_eq!(bounce.recipient_action(), None);
        let complaint = FeedbackEvent::new(FeedbackKind::Complained, Channel::Email, "x", 1);
        assert_eq!(
            complaint.recipient_action(),
            Some(RecipientAction::Consent(ConsentChange::OptOut {
                target: ConsentTarget::Channel(Channel::Email)
            }))
        );
    }

    #[test]
    fn names_follow_channel_and_kind() {
        assert_eq!(
            event_name(Channel::Email, FeedbackKind::Bounced),
            "Email Bounced"
        );
        assert_eq!(
            event_name(Channel::Sms, FeedbackKind::Delivered),
            "SMS Delivered"
        );
        assert_eq!(
            event_name(Channel::Push, FeedbackKind::Opened),
            "Push Opened"
        );
        let mut event = FeedbackEvent::new(FeedbackKind::Clicked, Channel::Email, "cairn", 5);
        event.url = Some("https://x".into());
        event.message_id = Some("msg_1".into());
        let properties = event.properties();
        assert_eq!(properties["url"], "https://x");
        assert_eq!(properties["channel"], "email");
        assert!(!properties.contains_key("reason"));
    }
}
