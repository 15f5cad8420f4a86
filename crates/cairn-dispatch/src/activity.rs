//! The activity feed for other systems (sales, service): subscriptions (`[[delivery.activity]]`),
//! the activity item and its JSON payload, which subscription receives which item, and the signed
//! POST of one item to one subscription.
//!
//! The POST reuses the webhook channel ([`cairn_channels::webhook::WebhookChannel`]): the same
//! `Cairn-Signature` (HMAC-SHA256 of `"<t>." + body`), the item id as `Idempotency-Key`, the same
//! classification of answers (2xx success; 408, 425, 429, 5xx transient; other statuses permanent).
//!
//! The engine derives the items ([`cairn_engine::activity`]) as outbox rows on the `activity`
//! channel, for the kinds [`wants`] says someone subscribed to; [`crate::activity_worker`] delivers
//! them durably.

use std::sync::Arc;

use cairn_channels::webhook::{WebhookChannel, WebhookConfig};
use cairn_channels::{ChannelError, ChannelProvider, OutboundMessage, WallClock, WebhookRequest};
pub use cairn_engine::activity::{ActivityItem, ActivityKind, ActivityWants};
use serde::{Deserialize, Serialize};

/// One subscription: where items go, the secret that signs them, which kinds, which workspaces.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySubscription {
    /// The receiver (`http://` or `https://`).
    pub url: String,
    /// The HMAC secret (at least 16 bytes).
    pub secret: String,
    /// The kinds sent; empty is refused (a subscription that receives nothing is a mistake).
    pub events: Vec<ActivityKind>,
    /// Only these workspaces; none: every workspace.
    #[serde(default)]
    pub workspaces: Option<Vec<String>>,
    /// Request timeout (ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for ActivitySubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivitySubscription")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("workspaces", &self.workspaces)
            .finish_non_exhaustive()
    }
}

/// Why a subscription is refused at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery.activity[{index}].{field}: {reason}")]
pub struct ActivityConfigError {
    pub index: usize,
    pub field: &'static str,
    pub reason: String,
}

impl ActivitySubscription {
    /// Checks one subscription (`index` is its place in `[[delivery.activity]]`).
    pub fn validate(&self, index: usize) -> Result<(), ActivityConfigError> {
        let refuse = |field, reason: &str| ActivityConfigError {
            index,
            field,
            reason: reason.to_string(),
        };
        let host = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"));
        if !host.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/')) {
            return Err(refuse("url", "must be an http:// or https:// URL"));
        }
        if self.secret.len() < 16 {
            return Err(refuse("secret", "must be at least 16 bytes"));
        }
        if self.events.is_empty() {
            return Err(refuse(
                "events",
                "must list at least one of journey_entered, journey_exited, goal_reached, message_sent",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(refuse("timeout_ms", "must be positive"));
        }
        if self.workspaces.as_ref().is_some_and(Vec::is_empty) {
            return Err(refuse(
                "workspaces",
                "must not be empty (leave it out for every workspace)",
            ));
        }
        Ok(())
    }

    /// Whether this subscription receives `item`.
    pub fn matches(&self, item: &ActivityItem) -> bool {
        self.events.contains(&item.kind)
            && self
                .workspaces
                .as_ref()
                .is_none_or(|workspaces| workspaces.contains(&item.workspace))
    }
}

/// What the engine must derive for these subscriptions.
pub fn wants(subscriptions: &[ActivitySubscription]) -> ActivityWants {
    let mut wants = ActivityWants::default();
    for subscription in subscriptions {
        wants.add(
            subscription.events.iter().copied(),
            subscription.workspaces.clone(),
        );
    }
    wants
}

/// Checks every subscription.
pub fn validate_all(subscriptions: &[ActivitySubscription]) -> Result<(), ActivityConfigError> {
    subscriptions
        .iter()
        .enumerate()
        .try_for_each(|(index, subscription)| subscription.validate(index))
}

/// Sends items to one subscription.
pub struct ActivitySender {
    subscription: ActivitySubscription,
    channel: WebhookChannel,
}

impl std::fmt::Debug for ActivitySender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivitySender")
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

impl ActivitySender {
    /// Validates the subscription and builds its client.
    pub fn new(
        subscription: ActivitySubscription,
        index: usize,
        clock: Arc<dyn WallClock>,
    ) -> Result<ActivitySender, ActivityConfigError> {
        subscription.validate(index)?;
        let config = WebhookConfig {
            signing_secret: subscription.secret.clone(),
            timeout_ms: subscription.timeout_ms,
            max_response_bytes: 16 * 1024,
        };
        let channel = WebhookChannel::new(&config, clock).map_err(|error| ActivityConfigError {
            index,
            field: "secret",
            reason: error.to_string(),
        })?;
        Ok(ActivitySender {
            subscription,
            channel,
        })
    }

    pub fn subscription(&self) -> &ActivitySubscription {
        &self.subscription
    }

    /// POSTs `item`, signed, with its id as `Idempotency-Key`. The error tells transient from
    /// permanent, as for webhook messages.
    pub async fn send(&self, item: &ActivityItem) -> Result<(), ChannelError> {
        let body = serde_json::to_value(item).map_err(|error| ChannelError::Permanent {
            code: "invalid_body".into(),
            reason: error.to_string(),
            invalid_recipient: false,
        })?;
        let request = OutboundMessage::Webhook(WebhookRequest {
            message_id: item.id.clone(),
            url: self.subscription.url.clone(),
            body,
            response_mapping: Vec::new(),
        });
        self.channel.send(&request, &item.id).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subscription(value: serde_json::Value) -> Result<ActivitySubscription, String> {
        let parsed: ActivitySubscription =
            serde_json::from_value(value).map_err(|error| error.to_string())?;
        parsed.validate(0).map_err(|error| error.to_string())?;
        Ok(parsed)
    }

    fn item(kind: ActivityKind, workspace: &str) -> ActivityItem {
        ActivityItem {
            id: "e1:entered".into(),
            kind,
            workspace: workspace.into(),
            profile_id: "p1".into(),
            journey_id: Some("welcome".into()),
            step: None,
            reason: None,
            detail: None,
            message_id: None,
            channel: None,
            at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    const SECRET: &str = "0123456789abcdef0123";

    #[test]
    fn bad_subscriptions_are_refused_with_the_field_named() {
        let missing_url = subscription(json!({"secret": SECRET, "events": ["goal_reached"]}));
        assert!(missing_url.unwrap_err().contains("missing field `url`"));
        let missing_secret = subscription(json!({"url": "http://x", "events": ["goal_reached"]}));
        assert!(missing_secret
            .unwrap_err()
            .contains("missing field `secret`"));
        let unknown =
            subscription(json!({"url": "http://x", "secret": SECRET, "events": ["opened"]}))
                .unwrap_err();
        assert!(unknown.contains("unknown variant `opened`"), "{unknown}");
        assert!(
            unknown.contains("journey_entered"),
            "lists the kinds: {unknown}"
        );
        let cases = [
            (
                json!({"url": "ftp://x", "secret": SECRET, "events": ["goal_reached"]}),
                "delivery.activity[0].url",
            ),
            (
                json!({"url": "https://", "secret": SECRET, "events": ["goal_reached"]}),
                "delivery.activity[0].url",
            ),
            (
                json!({"url": "http://x", "secret": "short", "events": ["goal_reached"]}),
                "delivery.activity[0].secret",
            ),
            (
                json!({"url": "http://x", "secret": SECRET, "events": []}),
                "delivery.activity[0].events",
            ),
            (
                json!({"url": "http://x", "secret": SECRET, "events": ["goal_reached"], "workspaces": []}),
                "delivery.activity[0].workspaces",
            ),
            (
                json!({"url": "http://x", "secret": SECRET, "events": ["goal_reached"], "timeout_ms": 0}),
                "delivery.activity[0].timeout_ms",
            ),
        ];
        for (value, expected) in cases {
            let error = subscription(value.clone()).unwrap_err();
            assert!(error.starts_with(expected), "{value}: {error}");
        }
        let typo = subscription(
            json!({"url": "http://x", "secret": SECRET, "events": ["goal_reached"], "event": []}),
        );
        assert!(typo.unwrap_err().contains("unknown field `event`"));
    }

    #[test]
    fn filters_by_kind_and_workspace() {
        let all =
            subscription(json!({"url": "http://x", "secret": SECRET, "events": ActivityKind::ALL}))
                .expect("valid");
        let goals_in_a = subscription(json!({
            "url": "https://x/hook", "secret": SECRET, "events": ["goal_reached"], "workspaces": ["a"]
        }))
        .expect("valid");
        assert!(all.matches(&item(ActivityKind::JourneyEntered, "b")));
        assert!(goals_in_a.matches(&item(ActivityKind::GoalReached, "a")));
        assert!(!goals_in_a.matches(&item(ActivityKind::GoalReached, "b")));
        assert!(!goals_in_a.matches(&item(ActivityKind::MessageSent, "a")));
    }

    #[test]
    fn payload_has_every_field_named_as_documented() {
        let value = serde_json::to_value(item(ActivityKind::JourneyExited, "a")).expect("json");
        let keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "id",
            "type",
            "workspace",
            "profile_id",
            "journey_id",
            "step",
            "reason",
            "detail",
            "message_id",
            "channel",
            "at",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(value["type"], "journey_exited");
        for kind in ActivityKind::ALL {
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
    }
}
