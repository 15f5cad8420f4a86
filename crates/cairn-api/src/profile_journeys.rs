//! A profile's side of journeys in the management API: its enrollments and entry history, the trace
//! of every decision a journey made for it (with the data that decided), the messages journeys wrote
//! to its outbox, and the audiences it belongs to.

use crate::error::ApiError;
use crate::journeys::load_journey;
use crate::management::{load, not_found, read};
use crate::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Default page of messages (the largest is `paging::MAX_LIMIT`).
const DEFAULT_LIMIT: usize = 50;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/profiles/{id}/journeys", get(journeys))
        .route("/api/v1/profiles/{id}/journeys/{journey}/trace", get(trace))
        .route("/api/v1/profiles/{id}/messages", get(messages))
        .route("/api/v1/profiles/{id}/audiences", get(audiences))
}

async fn journeys(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let profile = load(&state, workspace.clone(), id).await?;
    let mut view = read(&state, move |reader| {
        Ok(reader.profile_journeys(&workspace, &profile.id))
    })
    .await?
    .ok_or_else(not_found)?;
    view["profile_id"] = json!(profile.id);
    Ok(Json(view))
}

async fn trace(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, journey)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let profile = load(&state, workspace.clone(), id).await?;
    load_journey(&state, &workspace, &journey).await?;
    let key = journey.clone();
    let entries = read(&state, move |reader| {
        reader.trace(&workspace, &profile.id, &key)
    })
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(json!({
        "profile_id": profile.id,
        "journey": journey,
        "entries": entries,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    limit: Option<usize>,
}

async fn messages(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let query = crate::paging::query(query)?;
    let limit = crate::paging::limit(query.limit, DEFAULT_LIMIT)?;
    let profile = load(&state, workspace.clone(), id).await?;
    let messages = read(&state, move |reader| {
        reader.messages(&workspace, &profile.id, limit)
    })
    .await?
    .ok_or_else(not_found)?;
    let messages: Vec<Value> = messages.into_iter().map(message_view).collect();
    Ok(Json(
        json!({"profile_id": profile.id, "messages": messages}),
    ))
}

/// An outbox message as stored, with its time also as RFC 3339 (`at`).
pub fn message_view(mut message: Value) -> Value {
    if let Some(at_ms) = message.get("at_ms").and_then(Value::as_i64) {
        message["at"] = crate::views::time(at_ms);
    }
    message
}

async fn audiences(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let profile = load(&state, workspace.clone(), id).await?;
    let (view, records) = read(&state, move |reader| {
        Ok((
            reader.profile_journeys(&workspace, &profile.id),
            reader.audiences(&workspace),
        ))
    })
    .await?;
    let view = view.ok_or_else(not_found)?;
    let audiences: Vec<Value> = view["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|audience| {
            let name = records
                .iter()
                .find(|record| record.document.id == audience)
                .map(|record| record.document.name.as_str());
            json!({"id": audience, "name": name})
        })
        .collect();
    Ok(Json(
        json!({"profile_id": profile.id, "audiences": audiences}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_gets_its_time_as_text_beside_the_milliseconds() {
        let message = message_view(json!({"message_id": "m", "at_ms": 1_714_564_800_000_i64}));
        assert_eq!(message["at"], "2024-05-01T12:00:00.000Z");
        assert_eq!(message["at_ms"], 1_714_564_800_000_i64);
        assert_eq!(message_view(json!({"x": 1})), json!({"x": 1}));
    }
}
