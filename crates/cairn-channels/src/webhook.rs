//! Webhooks and custom activities: a POST of a rendered JSON body, signed, with the JSON answer's
//! fields mapped onto profile attributes.
//!
//! Request: `POST <url>` with `Content-Type: application/json`, the body serialized compactly,
//! `Idempotency-Key: <key>` (the same for every attempt of one message) and
//! `Cairn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` (see
//! `cairn_delivery::webhook_signature`; receivers verify with `verify_webhook`). 2xx is success;
//! 408, 425, 429 and 5xx are transient (with `Retry-After`), other statuses permanent, a timeout after
//! sending is in doubt. On success, each [`crate::ResponseMapping`] reads an RFC 6901 pointer of the
//! JSON answer into a profile attribute; a missing value is reported in `mapping_errors`, never as a
//! failure (the call happened and must not be repeated).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_delivery::webhook_signature::{sign_webhook, SIGNATURE_HEADER};
use cairn_delivery::SigningKey;
use serde::{Deserialize, Serialize};

use crate::http::{
    build_client, classify_transport_error, is_transient_status, read_body, retry_after,
};
use crate::twilio::validate_base_url;
use crate::{
    ChannelError, ChannelProvider, OutboundMessage, ProviderCapabilities, ProviderReceipt,
    WallClock,
};

const PROVIDER: &str = "webhook";

/// Webhook settings (one per endpoint family or workspace).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The HMAC secret (at least 16 bytes).
    pub signing_secret: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest response body read, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_response_bytes() -> usize {
    256 * 1024
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

/// The webhook client.
pub struct WebhookChannel {
    client: reqwest::Client,
    key: SigningKey,
    max_response_bytes: usize,
    clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel").finish_non_exhaustive()
    }
}

impl WebhookChannel {
    /// Validates the settings and builds the client.
    pub fn new(
        config: &WebhookConfig,
        clock: Arc<dyn WallClock>,
    ) -> Result<WebhookChannel, ChannelError> {
        let key = SigningKey::new(config.signing_secret.as_bytes().to_vec(), "signing_secret")
            .map_err(|error| ChannelError::config(PROVIDER, "signing_secret", error.to_string()))?;
        if config.timeout_ms == 0 {
            return Err(ChannelError::config(
                PROVIDER,
                "timeout_ms",
                "must be positive",
            ));
        }
        if config.max_response_bytes == 0 {
            return Err(ChannelError::config(
                PROVIDER,
                "max_response_bytes",
                "must be positive",
            ));
        }
        let client = build_client(PROVIDER, Duration::from_millis(config.timeout_ms), &[])?;
        Ok(WebhookChannel {
            client,
            key,
            max_response_bytes: config.max_response_bytes,
            clock,
        })
    }
}

/// Reads the mapped attributes out of a JSON answer.
pub fn map_response(
    answer: &serde_json::Value,
    mappings: &[crate::ResponseMapping],
) -> (
    std::collections::BTreeMap<String, serde_json::Value>,
    Vec<String>,
) {
    let mut attributes = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for mapping in mappings {
        match answer.pointer(&mapping.pointer) {
            Some(value) => {
                attributes.insert(mapping.attribute.clone(), value.clone());
            }
            None => errors.push(format!("`{}` is not in the response", mapping.pointer)),
        }
    }
    (attributes, errors)
}

#[async_trait]
impl ChannelProvider for WebhookChannel {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> ProviderCapabilities {
        // Receivers may honour Idempotency-Key; Cairn cannot know, so resending is not assumed safe.
        ProviderCapabilities {
            honors_idempotency_key: false,
        }
    }

    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<ProviderReceipt, ChannelError> {
        let OutboundMessage::Webhook(request) = message else {
            return Err(ChannelError::permanent(
                "wrong_channel",
                format!("the webhook provider cannot send {}", message.channel()),
            ));
        };
        validate_base_url(PROVIDER, &request.url).map_err(|_| {
            ChannelError::permanent(
                "invalid_url",
                format!("`{}` is not an http(s) URL", request.url),
            )
        })?;
        if let Some(bad) = request
            .response_mapping
            .iter()
            .find(|m| !m.pointer.is_empty() && !m.pointer.starts_with('/'))
        {
            return Err(ChannelError::permanent(
                "invalid_mapping",
                format!("`{}` is not a JSON pointer", bad.pointer),
            ));
        }
        let body = serde_json::to_vec(&request.body)
            .map_err(|error| ChannelError::permanent("invalid_body", error.to_string()))?;
        let timestamp_s = self.clock.now_ms().div_euclid(1000);
        let signature = sign_webhook(&[&self.key], timestamp_s, &body);
        let response = self
            .client
            .post(&request.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|error| classify_transport_error(&error))?;
        let status = response.status();
        let wait = retry_after(response.headers(), self.clock.as_ref());
        let answer = read_body(response, self.max_response_bytes).await?;
        if !status.is_success() {
            let excerpt: String = String::from_utf8_lossy(&answer).chars().take(200).collect();
            if is_transient_status(status) {
                return Err(ChannelError::Transient {
                    retry_after: wait,
                    reason: format!("HTTP {status}: {excerpt}"),
                });
            }
            return Err(ChannelError::permanent(
                format!("http_{}", status.as_u16()),
                excerpt,
            ));
        }
        let mut receipt = ProviderReceipt {
            provider: PROVIDER,
            ..ProviderReceipt::default()
        };
        if !request.response_mapping.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(&answer) {
                Ok(json) => {
                    let (attributes, errors) = map_response(&json, &request.response_mapping);
                    receipt.attributes = attributes;
                    receipt.mapping_errors = errors;
                }
                Err(error) => receipt
                    .mapping_errors
                    .push(format!("the response is not JSON: {error}")),
            }
        }
        Ok(receipt)
    }
}
