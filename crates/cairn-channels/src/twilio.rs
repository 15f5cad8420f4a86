//! SMS with Twilio's Messages API wire format, usable with Twilio or any service that speaks it.
//!
//! Request: `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, HTTP Basic auth
//! (`account_sid:auth_token`), `Content-Type: application/x-www-form-urlencoded`, header
//! `I-Twilio-Idempotency-Token: <key>`, body fields in this order: `To`, `From` or
//! `MessagingServiceSid`, `Body`, and `StatusCallback` when configured (its `{message_id}` placeholder
//! replaced by Cairn's message id, URL-encoded). Answer: `201` with JSON `{"sid": "SM…", "status": …}`;
//! errors are JSON `{"code": 21211, "message": …, "more_info": …, "status": 400}`.
//!
//! Classification: 429 and 5xx transient (with `Retry-After`); other 4xx permanent with Twilio's
//! code; codes 21211 (invalid `To`), 21614 (not a mobile number), 21612 / 21408 (unreachable or
//! unsupported destination) and 21610 (the recipient replied STOP) mark the recipient invalid. Numbers
//! that are not E.164 fail permanently before any request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_delivery::validate_e164;
use serde::{Deserialize, Serialize};

use crate::http::{
    build_client, classify_transport_error, is_transient_status, read_body, retry_after,
};
use crate::{
    ChannelError, ChannelProvider, OutboundMessage, ProviderCapabilities, ProviderReceipt,
    WallClock,
};

const PROVIDER: &str = "twilio";

/// Twilio error codes that mean "this number cannot receive messages".
const INVALID_RECIPIENT_CODES: [i64; 5] = [21211, 21614, 21612, 21408, 21610];

/// Twilio settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` unless testing.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The sender number (E.164) …
    #[serde(default)]
    pub from: Option<String>,
    /// … or a Messaging Service (exactly one of the two).
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Status callback URL; `{message_id}` is replaced by Cairn's message id.
    #[serde(default)]
    pub status_callback_url: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .finish_non_exhaustive()
    }
}

/// The Twilio client.
pub struct TwilioChannel {
    client: reqwest::Client,
    config: TwilioConfig,
    messages_url: String,
    clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for TwilioChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioChannel")
            .field("messages_url", &self.messages_url)
            .finish()
    }
}

fn config_error(setting: &'static str, reason: impl Into<String>) -> ChannelError {
    ChannelError::config(PROVIDER, setting, reason)
}

pub(crate) fn validate_base_url(
    provider: &'static str,
    base_url: &str,
) -> Result<String, ChannelError> {
    let parsed = url::Url::parse(base_url).map_err(|error| {
        ChannelError::config(provider, "base_url", format!("`{base_url}`: {error}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ChannelError::config(
            provider,
            "base_url",
            format!("`{base_url}` is not an http(s) URL"),
        ));
    }
    Ok(base_url.trim_end_matches('/').to_owned())
}

impl TwilioChannel {
    /// Validates the settings and builds the client.
    pub fn new(
        config: TwilioConfig,
        clock: Arc<dyn WallClock>,
    ) -> Result<TwilioChannel, ChannelError> {
        let base_url = validate_base_url(PROVIDER, &config.base_url)?;
        if !config.account_sid.starts_with("AC")
            || config.account_sid.len() != 34
            || !config
                .account_sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(config_error(
                "account_sid",
                "an account SID is `AC` followed by 32 hexadecimal characters",
            ));
        }
        if config.auth_token.trim().is_empty() {
            return Err(config_error("auth_token", "is empty"));
        }
        match (&config.from, &config.messaging_service_sid) {
            (Some(from), None) => {
                validate_e164(from).map_err(|error| config_error("from", error.to_string()))?
            }
            (None, Some(sid)) if sid.starts_with("MG") => {}
            (None, Some(_)) => {
                return Err(config_error(
                    "messaging_service_sid",
                    "a Messaging Service SID starts with `MG`",
                ))
            }
            _ => {
                return Err(config_error(
                    "from",
                    "set exactly one of `from` and `messaging_service_sid`",
                ))
            }
        }
        if let Some(callback) = &config.status_callback_url {
            let probe = callback.replace("{message_id}", "x");
            validate_base_url(PROVIDER, &probe).map_err(|_| {
                config_error(
                    "status_callback_url",
                    format!("`{callback}` is not an http(s) URL"),
                )
            })?;
        }
        if config.timeout_ms == 0 {
            return Err(config_error("timeout_ms", "must be positive"));
        }
        let client = build_client(PROVIDER, Duration::from_millis(config.timeout_ms), &[])?;
        let messages_url = format!(
            "{base_url}/2010-04-01/Accounts/{}/Messages.json",
            config.account_sid
        );
        Ok(TwilioChannel {
            client,
            config,
            messages_url,
            clock,
        })
    }

    /// The exact form body sent for `sms` (field order is part of the format).
    pub fn form_body(&self, sms: &crate::SmsMessage) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", &sms.to);
        match (&self.config.from, &self.config.messaging_service_sid) {
            (Some(from), _) => form.append_pair("From", from),
            (None, Some(sid)) => form.append_pair("MessagingServiceSid", sid),
            (None, None) => &mut form,
        };
        form.append_pair("Body", &sms.body);
        if let Some(callback) = &self.config.status_callback_url {
            let encoded: String =
                url::form_urlencoded::byte_serialize(sms.message_id.as_bytes()).collect();
            form.append_pair(
                "StatusCallback",
                &callback.replace("{message_id}", &encoded),
            );
        }
        form.finish()
    }
}

#[derive(Deserialize)]
struct TwilioAnswer {
    sid: Option<String>,
    code: Option<i64>,
    message: Option<String>,
}

#[async_trait]
impl ChannelProvider for TwilioChannel {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities {
            honors_idempotency_key: true,
        }
    }

    async fn send(
        &self,
        message: &OutboundMessage,
        idempotency_key: &str,
    ) -> Result<ProviderReceipt, ChannelError> {
        let OutboundMessage::Sms(sms) = message else {
            return Err(ChannelError::permanent(
                "wrong_channel",
                format!("the twilio provider cannot send {}", message.channel()),
            ));
        };
        validate_e164(&sms.to).map_err(|error| {
            ChannelError::invalid_recipient("invalid_phone_number", error.to_string())
        })?;
        if sms.body.trim().is_empty() {
            return Err(ChannelError::permanent(
                "empty_message",
                "an SMS needs a body",
            ));
        }
        let response = self
            .client
            .post(&self.messages_url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header("I-Twilio-Idempotency-Token", idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(self.form_body(sms))
            .send()
            .await
            .map_err(|error| classify_transport_error(&error))?;
        let status = response.status();
        let wait = retry_after(response.headers(), self.clock.as_ref());
        let body = read_body(response, 64 * 1024).await?;
        let answer: Option<TwilioAnswer> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            let sid = answer.and_then(|answer| answer.sid);
            return Ok(ProviderReceipt {
                provider: PROVIDER,
                provider_message_id: sid,
                ..ProviderReceipt::default()
            });
        }
        let (code, reason) = match answer {
            Some(TwilioAnswer {
                code: Some(code),
                message,
                ..
            }) => (code, message.unwrap_or_default()),
            _ => (
                0,
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            ),
        };
        if is_transient_status(status) {
            return Err(ChannelError::Transient {
                retry_after: wait,
                reason: format!("HTTP {status}: {code} {reason}"),
            });
        }
        let code_text = if code == 0 {
            format!("http_{}", status.as_u16())
        } else {
            code.to_string()
        };
        Err(ChannelError::Permanent {
            code: code_text,
            reason,
            invalid_recipient: INVALID_RECIPIENT_CODES.contains(&code),
        })
    }
}
