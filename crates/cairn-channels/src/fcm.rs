//! Push with the FCM HTTP v1 API.
//!
//! Request: `POST {base_url}/v1/projects/{project_id}/messages:send`, `Authorization: Bearer <token>`,
//! `Content-Type: application/json`, body
//! `{"message":{"token":…,"notification":{"title":…,"body":…},"data":{…}}}` (`data` only when not
//! empty). Answer: `200 {"name": "projects/…/messages/…"}`; errors are Google API errors
//! `{"error":{"code":…,"status":…,"message":…,"details":[{"@type":"…FcmError","errorCode":…}]}}`.
//!
//! FCM has no idempotency key (the HTTP v1 API accepts none), so an in-doubt push may be shown twice
//! if resent. Classification: `UNREGISTERED` (404), and `INVALID_ARGUMENT` (400) about the token, are
//! permanent with `invalid_recipient` (remove the device token); other 400/403/404 permanent; 429
//! (`QUOTA_EXCEEDED`), 500, 503 transient with `Retry-After`; 401 with a service account drops the
//! cached OAuth token and is transient (the next attempt fetches a new one).
//!
//! Auth: a configured bearer token, or a service account (`client_email`, `private_key` PEM,
//! `token_uri`): an RS256 JWT assertion (scope `https://www.googleapis.com/auth/firebase.messaging`,
//! audience the token URI, one hour) exchanged at the token URI
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`) for an access token,
//! cached until one minute before it expires.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::http::{
    build_client, classify_transport_error, is_transient_status, read_body, retry_after,
};
use crate::twilio::validate_base_url;
use crate::{
    ChannelError, ChannelProvider, OutboundMessage, ProviderCapabilities, ProviderReceipt,
    WallClock,
};

const PROVIDER: &str = "fcm";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FcmAuth {
    /// A bearer token obtained elsewhere.
    Token { access_token: String },
    /// A Google service account (the fields of its JSON key file).
    ServiceAccount {
        client_email: String,
        /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
        private_key: String,
        #[serde(default = "default_token_uri")]
        token_uri: String,
    },
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

impl std::fmt::Debug for FcmAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FcmAuth::Token { .. } => f.write_str("Token(***)"),
            FcmAuth::ServiceAccount {
                client_email,
                token_uri,
                ..
            } => f
                .debug_struct("ServiceAccount")
                .field("client_email", client_email)
                .field("token_uri", token_uri)
                .finish(),
        }
    }
}

/// FCM settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// `https://fcm.googleapis.com` unless testing.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub project_id: String,
    pub auth: FcmAuth,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_base_url() -> String {
    "https://fcm.googleapis.com".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

enum Credentials {
    Static(String),
    ServiceAccount {
        client_email: String,
        key: jsonwebtoken::EncodingKey,
        token_uri: String,
    },
}

/// The FCM client.
pub struct FcmChannel {
    client: reqwest::Client,
    send_url: String,
    credentials: Credentials,
    cached_token: Mutex<Option<(String, i64)>>,
    clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for FcmChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmChannel")
            .field("send_url", &self.send_url)
            .finish_non_exhaustive()
    }
}

fn config_error(setting: &'static str, reason: impl Into<String>) -> ChannelError {
    ChannelError::config(PROVIDER, setting, reason)
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

impl FcmChannel {
    /// Validates the settings (the private key is parsed now) and builds the client.
    pub fn new(config: &FcmConfig, clock: Arc<dyn WallClock>) -> Result<FcmChannel, ChannelError> {
        let base_url = validate_base_url(PROVIDER, &config.base_url)?;
        let project_ok = !config.project_id.is_empty()
            && config
                .project_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !project_ok {
            return Err(config_error(
                "project_id",
                "a project id is lowercase letters, digits and dashes",
            ));
        }
        if config.timeout_ms == 0 {
            return Err(config_error("timeout_ms", "must be positive"));
        }
        let credentials = match &config.auth {
            FcmAuth::Token { access_token } if access_token.trim().is_empty() => {
                return Err(config_error("auth.access_token", "is empty"))
            }
            FcmAuth::Token { access_token } => Credentials::Static(access_token.clone()),
            FcmAuth::ServiceAccount {
                client_email,
                private_key,
                token_uri,
            } => {
                if !client_email.contains('@') {
                    return Err(config_error(
                        "auth.client_email",
                        format!("`{client_email}` is not a service account email"),
                    ));
                }
                validate_base_url(PROVIDER, token_uri).map_err(|_| {
                    config_error(
                        "auth.token_uri",
                        format!("`{token_uri}` is not an http(s) URL"),
                    )
                })?;
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(
                    |error| {
                        config_error(
                            "auth.private_key",
                            format!("not an RSA private key in PEM: {error}"),
                        )
                    },
                )?;
                Credentials::ServiceAccount {
                    client_email: client_email.clone(),
                    key,
                    token_uri: token_uri.clone(),
                }
            }
        };
        let client = build_client(PROVIDER, Duration::from_millis(config.timeout_ms), &[])?;
        let send_url = format!("{base_url}/v1/projects/{}/messages:send", config.project_id);
        Ok(FcmChannel {
            client,
            send_url,
            credentials,
            cached_token: Mutex::new(None),
            clock,
        })
    }

    /// The exact JSON body sent for `push`.
    pub fn request_body(push: &crate::PushMessage) -> Value {
        let mut message = json!({
            "token": push.device_token,
            "notification": {"title": push.title, "body": push.body},
        });
        if !push.data.is_empty() {
            message["data"] = json!(push.data);
        }
        json!({ "message": message })
    }

    async fn access_token(&self) -> Result<String, ChannelError> {
        let (client_email, key, token_uri) = match &self.credentials {
            Credentials::Static(token) => return Ok(token.clone()),
            Credentials::ServiceAccount {
                client_email,
                key,
                token_uri,
            } => (client_email, key, token_uri),
        };
        let now_ms = self.clock.now_ms();
        let mut cached = self.cached_token.lock().await;
        if let Some((token, expires_at_ms)) = cached.as_ref() {
            if *expires_at_ms > now_ms + 60_000 {
                return Ok(token.clone());
            }
        }
        let iat = now_ms.div_euclid(1000);
        let claims = Assertion {
            iss: client_email,
            scope: SCOPE,
            aud: token_uri,
            iat,
            exp: iat + 3600,
        };
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            key,
        )
        .map_err(|error| ChannelError::permanent("oauth_assertion", error.to_string()))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let response = self
            .client
            .post(token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|error| match classify_transport_error(&error) {
                // Nothing is sent to the device by a token request: retrying is always safe.
                ChannelError::InDoubt { reason } => ChannelError::transient(reason),
                other => other,
            })?;
        let status = response.status();
        let body = read_body(response, 64 * 1024).await?;
        if !status.is_success() {
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            if is_transient_status(status) {
                return Err(ChannelError::transient(format!(
                    "token endpoint HTTP {status}: {excerpt}"
                )));
            }
            return Err(ChannelError::permanent(
                "oauth_token",
                format!("token endpoint HTTP {status}: {excerpt}"),
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|error| {
            ChannelError::transient(format!("token endpoint answered no access_token: {error}"))
        })?;
        let expires_at_ms = now_ms + answer.expires_in.unwrap_or(3600).max(0) * 1000;
        *cached = Some((answer.access_token.clone(), expires_at_ms));
        Ok(answer.access_token)
    }
}

/// FCM's `errorCode` from the error details, else the Google status.
fn fcm_error_code(error: &Value) -> String {
    error["details"]
        .as_array()
        .and_then(|details| {
            details
                .iter()
                .find_map(|detail| detail["errorCode"].as_str())
        })
        .or_else(|| error["status"].as_str())
        .unwrap_or("UNKNOWN")
        .to_owned()
}

/// Whether an `INVALID_ARGUMENT` is about the registration token rather than the payload.
fn about_the_token(error: &Value) -> bool {
    let message = error["message"].as_str().unwrap_or("").to_ascii_lowercase();
    let field_violation = error["details"].as_array().is_some_and(|details| {
        details.iter().any(|detail| {
            detail["fieldViolations"]
                .as_array()
                .is_some_and(|violations| {
                    violations
                        .iter()
                        .any(|v| v["field"].as_str().is_some_and(|f| f.ends_with("token")))
                })
        })
    });
    field_violation || message.contains("registration token")
}

#[async_trait]
impl ChannelProvider for FcmChannel {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities {
            honors_idempotency_key: false,
        }
    }

    async fn send(
        &self,
        message: &OutboundMessage,
        _idempotency_key: &str,
    ) -> Result<ProviderReceipt, ChannelError> {
        let OutboundMessage::Push(push) = message else {
            return Err(ChannelError::permanent(
                "wrong_channel",
                format!("the fcm provider cannot send {}", message.channel()),
            ));
        };
        if push.device_token.trim().is_empty() || push.device_token.len() > 4096 {
            return Err(ChannelError::invalid_recipient(
                "invalid_device_token",
                "the device token is empty or too long",
            ));
        }
        let token = self.access_token().await?;
        let body = serde_json::to_vec(&FcmChannel::request_body(push))
            .map_err(|error| ChannelError::permanent("invalid_body", error.to_string()))?;
        let response = self
            .client
            .post(&self.send_url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| classify_transport_error(&error))?;
        let status = response.status();
        let wait = retry_after(response.headers(), self.clock.as_ref());
        let answer = read_body(response, 64 * 1024).await?;
        let json: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if status.is_success() {
            let name = json["name"].as_str().map(str::to_owned);
            return Ok(ProviderReceipt {
                provider: PROVIDER,
                provider_message_id: name,
                ..ProviderReceipt::default()
            });
        }
        let error = &json["error"];
        let code = fcm_error_code(error);
        let reason = error["message"].as_str().unwrap_or("").to_owned();
        if status.as_u16() == 401 {
            if let Credentials::ServiceAccount { .. } = self.credentials {
                *self.cached_token.lock().await = None;
                return Err(ChannelError::Transient {
                    retry_after: None,
                    reason: format!("{code}: {reason}"),
                });
            }
        }
        if code == "UNREGISTERED" || code == "INVALID_ARGUMENT" && about_the_token(error) {
            return Err(ChannelError::Permanent {
                code,
                reason,
                invalid_recipient: true,
            });
        }
        if is_transient_status(status) {
            return Err(ChannelError::Transient {
                retry_after: wait,
                reason: format!("{code}: {reason}"),
            });
        }
        Err(ChannelError::Permanent {
            code,
            reason,
            invalid_recipient: false,
        })
    }
}
