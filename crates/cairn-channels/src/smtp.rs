//! Email over SMTP with lettre: implicit TLS, STARTTLS or plain, AUTH, a connection pool,
//! multipart/alternative text + HTML, optional DKIM, a `Message-ID` derived from Cairn's message id,
//! and RFC 8058 `List-Unsubscribe` / `List-Unsubscribe-Post`.
//!
//! SMTP has no idempotency key: the `Message-ID` is stable across attempts, which lets receivers and
//! relays that de-duplicate on it do so, but a resend after a timeout can deliver twice.

use std::time::Duration;

use async_trait::async_trait;
use cairn_delivery::email_headers::{
    list_unsubscribe_header, message_id_header, LIST_UNSUBSCRIBE_POST,
};
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use serde::{Deserialize, Serialize};

use crate::smtp_pool::{Security, SmtpPool};
use crate::{
    ChannelError, ChannelProvider, OutboundMessage, ProviderCapabilities, ProviderReceipt,
};

const PROVIDER: &str = "smtp";

/// The headers DKIM signs.
const DKIM_SIGNED_HEADERS: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain, upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// No encryption (a local relay or test sink; AUTH is refused in this mode).
    None,
}

/// DKIM signing settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    /// RSA private key, PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`).
    pub private_key_pem: String,
}

impl std::fmt::Debug for DkimSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSettings")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish()
    }
}

/// SMTP provider settings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults: 465 for `tls`, 587 for `starttls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The default sender mailbox (`Cairn <news@example.com>`).
    pub from: String,
    /// Domain of `Message-ID`s; defaults to the sender's domain.
    #[serde(default)]
    pub message_id_domain: Option<String>,
    #[serde(default = "default_pool")]
    pub pool_max_connections: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// EHLO name; defaults to the machine's host name.
    #[serde(default)]
    pub hello_name: Option<String>,
    #[serde(default)]
    pub dkim: Option<DkimSettings>,
    /// Extra trusted roots (PEM), e.g. a private relay's CA.
    #[serde(default)]
    pub extra_root_certificates_pem: Vec<String>,
}

fn default_pool() -> u32 {
    16
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// Settings for a server at `host:port` with defaults for the rest.
    pub fn new(host: &str, port: u16, security: SmtpSecurity, from: &str) -> SmtpConfig {
        SmtpConfig {
            host: host.to_owned(),
            port: Some(port),
            security,
            username: None,
            password: None,
            from: from.to_owned(),
            message_id_domain: None,
            pool_max_connections: default_pool(),
            timeout_ms: default_timeout_ms(),
            hello_name: None,
            dkim: None,
            extra_root_certificates_pem: Vec::new(),
        }
    }
}

/// The SMTP client.
pub struct SmtpChannel {
    pool: SmtpPool,
    from: Mailbox,
    message_id_domain: String,
    dkim: Option<DkimConfig>,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("from", &self.from)
            .field("message_id_domain", &self.message_id_domain)
            .finish()
    }
}

fn config_error(setting: &'static str, reason: impl Into<String>) -> ChannelError {
    ChannelError::config(PROVIDER, setting, reason)
}

impl SmtpChannel {
    /// Validates the settings and builds the pool (no connection is opened yet).
    pub fn new(config: &SmtpConfig) -> Result<SmtpChannel, ChannelError> {
        if config.host.trim().is_empty() {
            return Err(config_error("host", "is empty"));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|error| config_error("from", format!("`{}`: {error}", config.from)))?;
        let message_id_domain = config
            .message_id_domain
            .clone()
            .unwrap_or_else(|| from.email.domain().to_owned());
        message_id_header("x", &message_id_domain)
            .map_err(|error| config_error("message_id_domain", error.to_string()))?;
        if config.pool_max_connections == 0 {
            return Err(config_error("pool_max_connections", "must be at least 1"));
        }
        if config.timeout_ms == 0 {
            return Err(config_error("timeout_ms", "must be positive"));
        }
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(config_error(
                    "username",
                    "username and password go together",
                ))
            }
        };
        if credentials.is_some() && config.security == SmtpSecurity::None {
            return Err(config_error(
                "security",
                "refusing to send a password over an unencrypted connection",
            ));
        }
        let port = config.port.unwrap_or(match config.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::None => 25,
        });
        let security = match config.security {
            SmtpSecurity::None => Security::Plain,
            security => {
                let mut builder = TlsParameters::builder(config.host.clone());
                for pem in &config.extra_root_certificates_pem {
                    crate::http::parse_pem_certificates(PROVIDER, pem)?;
                    let certificate = Certificate::from_pem(pem.as_bytes()).map_err(|error| {
                        config_error("extra_root_certificates_pem", error.to_string())
                    })?;
                    builder = builder.add_root_certificate(certificate);
                }
                let parameters = builder
                    .build_rustls()
                    .map_err(|error| config_error("security", error.to_string()))?;
                if security == SmtpSecurity::Tls {
                    Security::ImplicitTls(parameters)
                } else {
                    Security::StartTls(parameters)
                }
            }
        };
        let dkim = match &config.dkim {
            None => None,
            Some(settings) => {
                let key = DkimSigningKey::new(&settings.private_key_pem, DkimSigningAlgorithm::Rsa)
                    .map_err(|error| config_error("dkim.private_key_pem", error.to_string()))?;
                // Relaxed/relaxed survives relays that re-fold headers; RFC 8058 requires the
                // List-Unsubscribe headers to be covered by the signature.
                let headers = DKIM_SIGNED_HEADERS
                    .into_iter()
                    .map(HeaderName::new_from_ascii_str)
                    .collect();
                let canonicalization = DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                };
                Some(DkimConfig::new(
                    settings.selector.clone(),
                    settings.domain.clone(),
                    key,
                    headers,
                    canonicalization,
                ))
            }
        };
        let hello = match &config.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        let pool = SmtpPool::new(
            config.host.clone(),
            port,
            security,
            credentials,
            hello,
            Duration::from_millis(config.timeout_ms),
            config.pool_max_connections as usize,
        );
        Ok(SmtpChannel {
            pool,
            from,
            message_id_domain,
            dkim,
        })
    }

    /// Builds the MIME message (public for tests and previews of the exact bytes).
    pub fn build_message(&self, email: &crate::EmailMessage) -> Result<Message, ChannelError> {
        let to: Mailbox = email.to.parse().map_err(|error| {
            ChannelError::invalid_recipient(
                "invalid_email",
                format!("`{}` is not an email address: {error}", email.to),
            )
        })?;
        let from = match &email.from {
            Some(from) => from.parse().map_err(|error| {
                ChannelError::permanent("invalid_sender", format!("`{from}`: {error}"))
            })?,
            None => self.from.clone(),
        };
        let message_id = message_id_header(&email.message_id, &self.message_id_domain)
            .map_err(|error| ChannelError::permanent("invalid_message_id", error.to_string()))?;
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(message_id));
        if let Some(reply_to) = &email.reply_to {
            let reply_to: Mailbox = reply_to.parse().map_err(|error| {
                ChannelError::permanent("invalid_reply_to", format!("`{reply_to}`: {error}"))
            })?;
            builder = builder.reply_to(reply_to);
        }
        if let Some(unsubscribe) = &email.list_unsubscribe {
            let value = list_unsubscribe_header(&unsubscribe.url, unsubscribe.mailto.as_deref())
                .map_err(|error| {
                    ChannelError::permanent("invalid_unsubscribe", error.to_string())
                })?;
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    value,
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    LIST_UNSUBSCRIBE_POST.to_owned(),
                ));
        }
        let body_error = |error: lettre::error::Error| {
            ChannelError::permanent("invalid_message", error.to_string())
        };
        let mut message = match (&email.text, &email.html) {
            (Some(text), Some(html)) => builder
                .multipart(MultiPart::alternative_plain_html(
                    text.clone(),
                    html.clone(),
                ))
                .map_err(body_error)?,
            (None, Some(html)) => builder
                .singlepart(SinglePart::html(html.clone()))
                .map_err(body_error)?,
            (Some(text), None) => builder
                .singlepart(SinglePart::plain(text.clone()))
                .map_err(body_error)?,
            (None, None) => {
                return Err(ChannelError::permanent(
                    "empty_message",
                    "an email needs a text or an HTML body",
                ))
            }
        };
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(message)
    }
}

#[async_trait]
impl ChannelProvider for SmtpChannel {
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
        let OutboundMessage::Email(email) = message else {
            return Err(ChannelError::permanent(
                "wrong_channel",
                format!("the smtp provider cannot send {}", message.channel()),
            ));
        };
        let mime = self.build_message(email)?;
        let body = mime.formatted();
        let reply = self.pool.send(mime.envelope(), &body).await?;
        Ok(ProviderReceipt {
            provider: PROVIDER,
            provider_message_id: (!reply.is_empty()).then_some(reply),
            ..ProviderReceipt::default()
        })
    }
}
