//! Feedback from outside Cairn (tracking links followed, provider callbacks) as events on the
//! profile, and the settings the routes that receive it need.
//!
//! An event goes through the engine's ingestor like any other input, attached to its profile by id
//! and with a message id derived from Cairn's message id and what happened (the same scheme as the
//! dispatcher's `Email Sent`), so a repeated open, a re-sent callback or a second click on the same
//! link is dropped as a duplicate. The consent change an event implies (unsubscribe, complaint, hard
//! bounce) is applied by the engine when it applies the event, in log order.

use crate::error::ApiError;
use crate::ApiState;
use cairn_delivery::{DeliveryError, FeedbackEvent, TrackingSigner};
use cairn_dispatch::DispatchOptions;
use cairn_model::{ErrorCode, NormalizedMessage, ProfileId, WorkspaceId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// Tracking-link keys and provider-callback credentials, from the `[delivery]` configuration.
#[derive(Clone, Default)]
pub struct DeliverySettings {
    /// Verifies open, click and unsubscribe tokens; none: those routes answer
    /// `delivery_not_configured`.
    pub signer: Option<TrackingSigner>,
    /// The shared secret of the bounce and complaint webhooks.
    pub callback_secret: Option<String>,
    /// The auth token that signs Twilio's callbacks.
    pub twilio_auth_token: Option<String>,
    /// The public URL callbacks arrive under (Twilio signs the full URL).
    pub public_url: Option<String>,
}

impl std::fmt::Debug for DeliverySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverySettings")
            .field(
                "signer",
                &self.signer.as_ref().map(TrackingSigner::base_url),
            )
            .field("callback_secret", &self.callback_secret.is_some())
            .field("twilio_auth_token", &self.twilio_auth_token.is_some())
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl DeliverySettings {
    /// The settings a `[delivery]` configuration describes.
    pub fn from_options(options: &DispatchOptions) -> Result<DeliverySettings, DeliveryError> {
        let signer = options
            .tracking
            .as_ref()
            .map(|tracking| tracking.signer())
            .transpose()?;
        Ok(DeliverySettings {
            signer,
            callback_secret: options
                .callbacks
                .as_ref()
                .and_then(|callbacks| callbacks.secret.clone())
                .filter(|secret| !secret.is_empty()),
            twilio_auth_token: options
                .twilio_auth_token()
                .filter(|token| !token.is_empty()),
            public_url: options.public_url(),
        })
    }

    /// The tracking signer, or `delivery_not_configured`.
    pub(crate) fn signer(&self) -> Result<&TrackingSigner, ApiError> {
        self.signer.as_ref().ok_or_else(|| {
            not_configured("tracking links are not configured ([delivery.tracking])")
        })
    }
}

pub(crate) fn not_configured(message: &str) -> ApiError {
    ApiError::new(ErrorCode::DeliveryNotConfigured, message)
}

/// The event `feedback` stands for on `profile`. `occurrence` names this occurrence among the
/// message's feedback (a link index, a provider and recipient): equal occurrences are duplicates.
pub(crate) fn event_message(
    profile: ProfileId,
    feedback: &FeedbackEvent,
    occurrence: &str,
    extra: &[(&str, Value)],
) -> NormalizedMessage {
    named_event_message(profile, &feedback.event_name(), feedback, occurrence, extra)
}

/// Like [`event_message`], under another event name (`SMS Subscribed`, which no feedback kind names).
/// Without Cairn's message id, `occurrence` alone identifies the event.
pub(crate) fn named_event_message(
    profile: ProfileId,
    name: &str,
    feedback: &FeedbackEvent,
    occurrence: &str,
    extra: &[(&str, Value)],
) -> NormalizedMessage {
    let mut properties = feedback.properties();
    for (key, value) in extra {
        properties.insert((*key).to_string(), value.clone());
    }
    let at = DateTime::<Utc>::from_timestamp_millis(feedback.occurred_at_ms).unwrap_or_default();
    let dedupe = match (feedback.message_id.as_deref(), occurrence.is_empty()) {
        (Some(message_id), true) => message_id.to_string(),
        (Some(message_id), false) => format!("{message_id}-{occurrence}"),
        (None, _) => occurrence.to_string(),
    };
    cairn_dispatch::feedback::event(profile, name, &dedupe, properties, None, at)
}

/// Appends the events to the log; durable when this returns.
pub(crate) async fn record(
    state: &ApiState,
    workspace: WorkspaceId,
    messages: Vec<NormalizedMessage>,
) -> Result<(), ApiError> {
    if messages.is_empty() {
        return Ok(());
    }
    state.ingestor.submit(workspace, messages).await?;
    Ok(())
}

/// The workspace and profile of each of Cairn's messages `message_ids` that the dispatcher has a
/// delivery record of (one read for a whole callback batch).
pub(crate) async fn senders_of(
    state: &ApiState,
    message_ids: Vec<String>,
) -> Result<HashMap<String, (WorkspaceId, ProfileId)>, ApiError> {
    if message_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let store = state.deliveries.clone();
    let records = tokio::task::spawn_blocking(move || store.get(&message_ids))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "a read task failed"))??;
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let outbox: Value = serde_json::from_str(&record.outbox).ok()?;
            let profile = ProfileId::parse(outbox["profile_id"].as_str()?)?;
            Some((record.message_id, (record.workspace, profile)))
        })
        .collect())
}
