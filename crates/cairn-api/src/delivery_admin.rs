//! Delivery in the management API:
//! - `GET /api/v1/deliveries?state=dead&limit=50`: the dispatcher's records (dead letters with
//!   `state=dead`, permanent failures with `state=failed`, also `sent`, `retrying`, `attempting`,
//!   `dropped`; every state when absent), newest first, with the outbox message each one is about;
//! - `GET /api/v1/profiles/{id}/consent`: a profile's consent per channel and subscription group, its
//!   global unsubscribe, and the addresses that hard-bounced.

use crate::error::ApiError;
use crate::management::{not_found, read};
use crate::ApiState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use cairn_delivery::{Channel, ConsentStatus};
use cairn_engine::RecipientState;
use cairn_model::{ErrorCode, ProfileId};
use cairn_storage::{DeliveryRecord, DeliveryState};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Default page of delivery records (the largest is `paging::MAX_LIMIT`).
const DEFAULT_LIMIT: usize = 50;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/deliveries", get(deliveries))
        .route("/api/v1/profiles/{id}/consent", get(consent))
}

fn time(ms: i64) -> Value {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|at| Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// A delivery record as the API shows it.
pub fn record_json(record: &DeliveryRecord) -> Value {
    json!({
        "message_id": record.message_id,
        "channel": record.channel,
        "state": record.state.as_str(),
        "attempts": record.attempts,
        "next_attempt_at": record.next_attempt_at_ms.map(time),
        "provider": record.provider,
        "provider_message_id": record.provider_message_id,
        "last_error": record.last_error,
        "updated_at": time(record.updated_at_ms),
        "message": serde_json::from_str::<Value>(&record.outbox).unwrap_or(Value::Null),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    state: Option<String>,
    limit: Option<usize>,
}

async fn deliveries(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let query = crate::paging::query(query)?;
    let limit = crate::paging::limit(query.limit, DEFAULT_LIMIT)?;
    let wanted = match query.state.as_deref() {
        Some(text) => Some(DeliveryState::parse(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "state is one of attempting, sent, retrying, failed, dead, dropped",
            )
        })?),
        None => None,
    };
    let store = state.deliveries.clone();
    let records = tokio::task::spawn_blocking(move || store.list(&workspace, wanted, limit))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "a read task failed"))??;
    Ok(Json(
        json!({"deliveries": records.iter().map(record_json).collect::<Vec<_>>()}),
    ))
}

fn status_json(status: &ConsentStatus) -> Value {
    match status {
        ConsentStatus::Unknown => json!({"status": "unknown"}),
        ConsentStatus::OptedIn { at_ms } => json!({"status": "opted_in", "at": time(*at_ms)}),
        ConsentStatus::OptedOut { at_ms } => json!({"status": "opted_out", "at": time(*at_ms)}),
        ConsentStatus::PendingConfirmation { at_ms } => {
            json!({"status": "pending_confirmation", "at": time(*at_ms)})
        }
    }
}

/// A profile's consent as the API shows it.
pub fn consent_json(recipient: &RecipientState) -> Value {
    let consent = &recipient.consent;
    let mut channels = Map::new();
    for channel in Channel::ALL {
        let status = consent
            .channels
            .get(channel.index())
            .copied()
            .unwrap_or_default();
        channels.insert(channel.as_str().to_string(), status_json(&status));
    }
    let groups: Vec<Value> = consent
        .groups
        .iter()
        .map(|(group, status)| {
            let mut entry = status_json(status);
            entry["group"] = json!(group);
            entry
        })
        .collect();
    json!({
        "profile_id": recipient.profile,
        "globally_unsubscribed": consent.is_globally_unsubscribed(),
        "global_unsubscribe": consent.global_unsubscribe.as_ref().map(status_json),
        "channels": channels,
        "groups": groups,
        "undeliverable_addresses": recipient.undeliverable,
    })
}

async fn consent(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let id = ProfileId::parse(&id).ok_or_else(not_found)?;
    let recipient = read(&state, move |reader| {
        Ok(reader.recipient_state(&workspace, &id))
    })
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(consent_json(&recipient)))
}
