//! What the dispatcher is configured with: a provider per channel, how each channel treats messages
//! left in doubt, retries, rate limits, and where tracking and unsubscribe links point.

use cairn_channels::ProviderConfig;
use cairn_delivery::{Channel, InDoubtPolicy, RetryPolicy, SigningKey, TrackingSigner};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One channel's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelOptions {
    /// The provider (SMTP, Twilio, FCM, webhook); none: the channel's messages fail permanently.
    pub provider: ProviderConfig,
    /// A message left in doubt (a crash or a timeout after it was sent): send again or drop it.
    /// `resend` is safe where the provider honours the idempotency key (Twilio, webhooks).
    #[serde(default)]
    pub in_doubt: Option<InDoubtPolicy>,
    /// Most messages per second to the provider (a token bucket); none: unlimited.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Messages sent at once on this channel.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_concurrency() -> usize {
    32
}

/// Where tracking pixels, click redirects and unsubscribe links point, and the keys that sign them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingOptions {
    /// The server's public URL (`https://cairn.example.com`).
    pub base_url: String,
    /// Signing keys, newest first (the first signs; all verify, so keys can rotate).
    pub keys: Vec<String>,
    #[serde(default = "yes")]
    pub opens: bool,
    #[serde(default = "yes")]
    pub clicks: bool,
}

fn yes() -> bool {
    true
}

impl TrackingOptions {
    /// The signer these options describe.
    pub fn signer(&self) -> Result<TrackingSigner, cairn_delivery::DeliveryError> {
        let keys = self
            .keys
            .iter()
            .map(|key| SigningKey::new(key.as_bytes(), "tracking.keys"))
            .collect::<Result<Vec<_>, _>>()?;
        TrackingSigner::new(&self.base_url, keys)
    }
}

/// The credentials provider callbacks must present (see `docs/channels.md`, "Provider callbacks").
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CallbackOptions {
    /// The secret bounce and complaint webhooks (generic, SendGrid, SES/SNS) send as the password of
    /// HTTP Basic auth or as `Authorization: Bearer <secret>`; none: those routes are refused.
    #[serde(default)]
    pub secret: Option<String>,
    /// The Twilio auth token that signs `X-Twilio-Signature`; default: the SMS provider's, when it is
    /// Twilio. None: the Twilio routes are refused.
    #[serde(default)]
    pub twilio_auth_token: Option<String>,
    /// The public URL Twilio calls (the signature covers it); default: `tracking.base_url`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl std::fmt::Debug for CallbackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<secret>");
        f.debug_struct("CallbackOptions")
            .field("secret", &hidden(&self.secret))
            .field("twilio_auth_token", &hidden(&self.twilio_auth_token))
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// Everything the dispatcher runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchOptions {
    #[serde(default)]
    pub email: Option<ChannelOptions>,
    #[serde(default)]
    pub sms: Option<ChannelOptions>,
    #[serde(default)]
    pub push: Option<ChannelOptions>,
    #[serde(default)]
    pub webhook: Option<ChannelOptions>,
    #[serde(default)]
    pub tracking: Option<TrackingOptions>,
    /// How provider callbacks (bounces, complaints, SMS status) prove where they come from.
    #[serde(default)]
    pub callbacks: Option<CallbackOptions>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Messages taken together into one attempt record and one result record.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// How often the outbox in the store is read for messages the feed missed (ms).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Activity feed subscriptions (`[[delivery.activity]]`, see [`crate::activity`]).
    #[serde(default)]
    pub activity: Vec<crate::activity::ActivitySubscription>,
}

fn default_batch() -> usize {
    256
}

fn default_poll_ms() -> u64 {
    2_000
}

impl DispatchOptions {
    /// A channel's options.
    pub fn channel(&self, channel: Channel) -> Option<&ChannelOptions> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.sms.as_ref(),
            Channel::Push => self.push.as_ref(),
            Channel::Webhook => self.webhook.as_ref(),
        }
    }

    /// A channel's in-doubt policy: the configured one, else `resend` where the provider honours
    /// idempotency keys and `drop` where it does not (SMTP, FCM).
    pub fn in_doubt(&self, channel: Channel, honors_idempotency_key: bool) -> InDoubtPolicy {
        self.channel(channel)
            .and_then(|options| options.in_doubt)
            .unwrap_or(if honors_idempotency_key {
                InDoubtPolicy::Resend
            } else {
                InDoubtPolicy::Drop
            })
    }

    /// The Twilio auth token callbacks are verified with: the configured one, else the SMS provider's.
    pub fn twilio_auth_token(&self) -> Option<String> {
        let configured = self
            .callbacks
            .as_ref()
            .and_then(|callbacks| callbacks.twilio_auth_token.clone());
        configured.or_else(|| match self.sms.as_ref().map(|sms| &sms.provider) {
            Some(ProviderConfig::Twilio(twilio)) => Some(twilio.auth_token.clone()),
            _ => None,
        })
    }

    /// The public URL provider callbacks arrive under.
    pub fn public_url(&self) -> Option<String> {
        let configured = self
            .callbacks
            .as_ref()
            .and_then(|callbacks| callbacks.public_url.clone());
        configured
            .or_else(|| self.tracking.as_ref().map(|t| t.base_url.clone()))
            .map(|url| url.trim_end_matches('/').to_string())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
}
