//! The management API under `/api/v1`: profiles and their event timelines.
//!
//! Every route needs `Authorization: Bearer <API token>` and sees only the token's workspace.

use crate::error::ApiError;
use crate::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use cairn_engine::Reader;
use cairn_model::{
    ErrorCode, Identifier, IdentifierKind, Profile, ProfileId, StoredEvent, WorkspaceId,
};
use cairn_storage::EventCursor;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Default page of events (the largest is `paging::MAX_LIMIT`).
const DEFAULT_LIMIT: usize = 50;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/profiles/lookup", get(lookup_profile))
        .route("/api/v1/profiles/{id}", get(get_profile))
        .route("/api/v1/profiles/{id}/events", get(list_events))
}

/// Runs a blocking read (it may wait for the applier, then read the store) off the async threads.
pub(crate) async fn read<T: Send + 'static>(
    state: &ApiState,
    work: impl FnOnce(&Reader) -> Result<T, cairn_storage::StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    let reader = state.reader.clone();
    tokio::task::spawn_blocking(move || work(&reader))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "a read task failed"))?
        .map_err(ApiError::from)
}

pub(crate) fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::ProfileNotFound,
        "no such profile in this workspace",
    )
}

/// A profile by id (a merged-away id finds the survivor), or `profile_not_found`.
pub(crate) async fn load(
    state: &ApiState,
    workspace: WorkspaceId,
    id: String,
) -> Result<Profile, ApiError> {
    let id = ProfileId::parse(&id).ok_or_else(not_found)?;
    read(state, move |reader| Ok(reader.profile(&workspace, &id)))
        .await?
        .ok_or_else(not_found)
}

async fn get_profile(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    Ok(Json(load(&state, workspace, id).await?))
}

async fn lookup_profile(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Profile>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let mut pairs = query.into_iter();
    let usage = || {
        ApiError::new(
            ErrorCode::InvalidQuery,
            "give exactly one of user_id, anonymous_id or email",
        )
    };
    let (Some((kind, value)), None) = (pairs.next(), pairs.next()) else {
        return Err(usage());
    };
    let identifier = match IdentifierKind::parse(&kind) {
        Some(IdentifierKind::Email) => Identifier::email(&value),
        Some(kind) => Identifier::new(kind, value),
        None => return Err(usage()),
    };
    let profile = read(&state, move |reader| {
        Ok(reader.profile_by_identifier(&workspace, &identifier))
    })
    .await?;
    Ok(Json(profile.ok_or_else(not_found)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    limit: Option<usize>,
    before: Option<String>,
}

fn parse_cursor(text: &str) -> Option<EventCursor> {
    let (timestamp, seq) = text.split_once('.')?;
    Some(EventCursor {
        timestamp_ms: timestamp.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

fn format_cursor(event: &StoredEvent) -> String {
    format!("{}.{}", event.timestamp.timestamp_millis(), event.seq)
}

async fn list_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let query = crate::paging::query(query)?;
    let limit = crate::paging::limit(query.limit, DEFAULT_LIMIT)?;
    let before =
        match query.before.as_deref() {
            Some(text) => Some(parse_cursor(text).ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidQuery, "malformed `before` cursor")
            })?),
            None => None,
        };
    let profile = load(&state, workspace.clone(), id).await?;
    let events = read(&state, move |reader| {
        reader.events(&workspace, &profile.id, before, limit)
    })
    .await?
    .ok_or_else(not_found)?;
    let next = (events.len() == limit)
        .then(|| events.last().map(format_cursor))
        .flatten();
    Ok(Json(json!({"events": events, "next_before": next})))
}
