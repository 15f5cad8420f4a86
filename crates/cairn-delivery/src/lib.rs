//! Cairn's delivery policy: everything between "a journey wants to send this message" and "a provider
//! client puts it on the wire" that can be decided without I/O.
//!
//! The crate is pure: it reads no clock (time comes in as Unix milliseconds), opens no socket and
//! spawns nothing. The engine keeps the small per-profile state ([`ConsentState`], [`SendHistory`])
//! and calls:
//! - [`decide`] before each send: consent, suppression, quiet hours and frequency caps → [`Decision`];
//! - [`RetryPolicy::next`] after a failed attempt, and [`TokenBucket`] per provider;
//! - [`TrackingSigner`] and [`instrument_html`] to sign open-pixel, click and unsubscribe URLs;
//! - the [`feedback`] parsers on provider callbacks (bounces, complaints, SMS status, inbound SMS).
//!
//! See `docs/channels.md` for the semantics in prose.

pub mod channel;
pub mod consent;
pub mod decide;
pub mod email_headers;
pub mod error;
pub mod feedback;
pub mod frequency_cap;
pub mod history;
pub mod quiet_hours;
pub mod rate_limit;
pub mod recipient;
pub mod retry;
pub mod signing;
pub mod sms_keywords;
pub mod tracking;
pub mod webhook_signature;

pub use channel::{Channel, MessageCategory};
pub use consent::{
    ConsentChange, ConsentRequirement, ConsentRules, ConsentState, ConsentStatus, ConsentTarget,
    DoubleOptInClaims, DoubleOptInSigner, SubscriptionGroup, SubscriptionGroupId,
};
pub use decide::{
    decide, decide_batch, Decision, DeliveryPolicy, SendAttempt, SkipReason, YieldAction,
};
pub use error::DeliveryError;
pub use feedback::{BounceType, FeedbackEvent, FeedbackKind, ParsedCallback, RecipientAction};
pub use frequency_cap::{FrequencyCap, PriorityReservation};
pub use history::{SendHistory, SentEntry};
pub use quiet_hours::QuietHours;
pub use rate_limit::TokenBucket;
pub use recipient::validate_e164;
pub use retry::{FailureClass, GiveUpReason, InDoubtPolicy, RetryDecision, RetryPolicy};
pub use signing::SigningKey;
pub use sms_keywords::{parse_sms_keyword, SmsKeyword};
pub use tracking::{instrument_html, TrackingClaims, TrackingIds, TrackingOptions, TrackingSigner};
