//! Cairn's provider clients: the I/O half of delivery.
//!
//! Every provider implements [`ChannelProvider`]: `send(message, idempotency_key)` either returns a
//! [`ProviderReceipt`] or a [`ChannelError`] classified as transient (retry, maybe after
//! `retry_after`), permanent (never retry; `invalid_recipient` says the address, number or device
//! token should be removed) or in doubt (the provider may have accepted it: the dispatcher's in-doubt
//! policy decides). Providers:
//! - [`smtp::SmtpChannel`]: email over SMTP (lettre connections in a pool, TLS/STARTTLS, AUTH, DKIM);
//! - [`twilio::TwilioChannel`]: SMS with Twilio's Messages API wire format;
//! - [`fcm::FcmChannel`]: push with the FCM HTTP v1 API (static token or service-account OAuth);
//! - [`webhook::WebhookChannel`]: signed JSON POSTs with response mapping (custom activities).
//!
//! Each provider holds one pooled client, validates its settings when built ([`ProviderConfig`])
//! and reads time only through an injected [`WallClock`]. The durable dispatcher (attempt records,
//! retries, dead letters) lives in the engine; the retry and volume policies in `cairn-delivery`.

pub mod clock;
pub mod config;
pub mod error;
pub mod fcm;
mod http;
pub mod message;
pub mod provider;
pub mod smtp;
mod smtp_pool;
pub mod twilio;
pub mod webhook;

pub use clock::{SystemWallClock, WallClock};
pub use config::ProviderConfig;
pub use error::ChannelError;
pub use message::{
    EmailMessage, ListUnsubscribe, OutboundMessage, PushMessage, ResponseMapping, SmsMessage,
    WebhookRequest,
};
pub use provider::{ChannelProvider, ProviderCapabilities, ProviderReceipt};
