//! The one trait every provider client implements.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{ChannelError, OutboundMessage};

/// What a provider accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderReceipt {
    pub provider: &'static str,
    /// The provider's id for the message (Twilio `SM…`, FCM `projects/…/messages/…`, the SMTP
    /// server's queue reply, the webhook's response id if mapped).
    pub provider_message_id: Option<String>,
    /// Webhooks: profile attributes mapped from the JSON response.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Webhooks: mappings that found nothing (the call itself succeeded and must not be retried).
    pub mapping_errors: Vec<String>,
}

/// What the dispatcher needs to know about a provider's guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderCapabilities {
    /// The provider de-duplicates on the idempotency key, so resending an in-doubt message is safe.
    pub honors_idempotency_key: bool,
}

/// A provider client. Implementations are cheap to share (`Arc`) and reuse their connections.
#[async_trait]
pub trait ChannelProvider: Send + Sync {
    /// A short name for logs and metrics (`smtp`, `twilio`, `fcm`, `webhook`).
    fn name(&self) -> &'static str;

    /// See [`ProviderCapabilities`].
    fn capabilities(&self) -> ProviderCapabilities;

    /// Sends one message. `idempotency_key` is derived from Cairn's message id (and is the same for
    /// every attempt of one message); it is passed to providers that accept one.
    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<ProviderReceipt, ChannelError>;
}
