//! Provider callbacks: what happened to a message after the provider took it.
//!
//! - `POST /hooks/feedback`: Cairn's generic JSON format;
//! - `POST /hooks/sendgrid`: SendGrid's Event Webhook;
//! - `POST /hooks/ses`: Amazon SES notifications through SNS (or raw);
//! - `POST /hooks/twilio/status?cairn_message_id=…`: Twilio message status callbacks;
//! - `POST /hooks/twilio/inbound/{workspace}`: inbound SMS keywords ([`crate::sms_inbound`]).
//!
//! The first three are authenticated by the shared callback secret, Twilio's by its signature
//! ([`crate::callback_auth`]). The body is parsed whole before anything is recorded: a malformed body
//! is `400 invalid_provider_callback` and records nothing. Each event is attributed to its profile
//! through the dispatcher's record of Cairn's message id; events of messages Cairn does not know are
//! counted as `unattributed` and dropped (answering an error would only make the provider retry).
//! The answer is `200 {"recorded": n, "unattributed": m}`; an SNS subscription confirmation is
//! answered with its `subscription_confirmation_url`, which an operator opens to confirm (Cairn does
//! not fetch URLs a request names).

use crate::callback_auth::{check_secret, check_twilio};
use crate::error::ApiError;
use crate::feedback_intake::{event_message, record, senders_of};
use crate::ApiState;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::{Json, Router};
use cairn_delivery::feedback::{generic, sendgrid, ses, twilio};
use cairn_delivery::{DeliveryError, FeedbackEvent, ParsedCallback};
use cairn_model::WorkspaceId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/hooks/feedback", post(generic_feedback))
        .route("/hooks/sendgrid", post(sendgrid_events))
        .route("/hooks/ses", post(ses_notifications))
        .route("/hooks/twilio/status", post(twilio_status))
        .route(
            "/hooks/twilio/inbound/{workspace}",
            post(crate::sms_inbound::inbound),
        )
}

fn invalid(error: DeliveryError) -> ApiError {
    ApiError::new(error.code(), error.to_string())
}

/// Which occurrence of the message's feedback an event is (equal occurrences are duplicates).
fn occurrence(event: &FeedbackEvent) -> String {
    let who = event
        .recipient
        .as_deref()
        .or(event.provider_message_id.as_deref())
        .unwrap_or("");
    format!("{}-{who}", event.provider)
}

/// Attributes every event to its profile and records them; answers the counts.
async fn record_all(state: &ApiState, parsed: ParsedCallback) -> Result<Json<Value>, ApiError> {
    let mut ids: Vec<String> = parsed
        .events
        .iter()
        .filter_map(|event| event.message_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let senders = senders_of(state, ids).await?;
    let mut by_workspace: BTreeMap<WorkspaceId, Vec<_>> = BTreeMap::new();
    let mut unattributed = 0usize;
    let mut recorded = 0usize;
    for event in &parsed.events {
        let sender = event.message_id.as_ref().and_then(|id| senders.get(id));
        let Some((workspace, profile)) = sender else {
            unattributed += 1;
            continue;
        };
        recorded += 1;
        by_workspace
            .entry(workspace.clone())
            .or_default()
            .push(event_message(*profile, event, &occurrence(event), &[]));
    }
    for (workspace, messages) in by_workspace {
        record(state, workspace, messages).await?;
    }
    let mut answer = json!({"recorded": recorded, "unattributed": unattributed});
    if let Some(url) = parsed.subscription_confirmation_url {
        tracing::warn!(%url, "an SNS subscription asks to be confirmed: open this URL to confirm it");
        answer["subscription_confirmation_url"] = Value::String(url);
    }
    Ok(Json(answer))
}

/// A secret-authenticated callback in one of the JSON formats.
async fn secret_callback(
    state: &ApiState,
    headers: &HeaderMap,
    body: &[u8],
    parse: fn(&[u8]) -> Result<ParsedCallback, DeliveryError>,
) -> Result<Json<Value>, ApiError> {
    check_secret(headers, state.delivery.callback_secret.as_deref())?;
    let parsed = parse(body).map_err(invalid)?;
    record_all(state, parsed).await
}

async fn generic_feedback(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    secret_callback(&state, &headers, &body, generic::parse).await
}

async fn sendgrid_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    secret_callback(&state, &headers, &body, sendgrid::parse).await
}

async fn ses_notifications(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    secret_callback(&state, &headers, &body, ses::parse).await
}

#[derive(Debug, Default, Deserialize)]
struct StatusQuery {
    cairn_message_id: Option<String>,
}

async fn twilio_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<StatusQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let settings = &state.delivery;
    check_twilio(
        &headers,
        &uri,
        &body,
        settings.twilio_auth_token.as_deref(),
        settings.public_url.as_deref(),
    )?;
    let query = crate::paging::query(query)?;
    let now_ms = state.clock.now().timestamp_millis();
    let parsed = twilio::parse_status_callback(&body, query.cairn_message_id.as_deref(), now_ms)
        .map_err(invalid)?;
    record_all(&state, parsed).await
}
