//! Audiences in the management API: create or replace (`PUT`, JSON or YAML), list, one with its
//! member count, and its members page by page.
//!
//! An audience is validated against the workspace catalog before it is stored; an invalid one is
//! answered `400 invalid_audience` with every error and stores nothing. Saving an audience evaluates
//! it for every profile of the workspace before the answer, so the member count is current.

use crate::body::read_document;
use crate::documents::{id_mismatch, invalid, read_audience, DocumentKind};
use crate::error::ApiError;
use crate::management::read;
use crate::views::audience_view;
use crate::{commands, ApiState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_engine::journeys::{AudienceRecord, Command};
use cairn_model::{ErrorCode, WorkspaceId};
use serde::Deserialize;
use serde_json::{json, Value};

/// Default page of members (the largest is `paging::MAX_LIMIT`).
const DEFAULT_LIMIT: usize = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/audiences", get(list))
        .route("/api/v1/audiences/{id}", get(get_audience).put(save))
        .route("/api/v1/audiences/{id}/members", get(members))
}

fn audience_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AudienceNotFound,
        format!("no audience {id:?} in this workspace"),
    )
}

async fn load_audience(
    state: &ApiState,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<Option<AudienceRecord>, ApiError> {
    let (workspace, id) = (workspace.clone(), id.to_string());
    read(state, move |reader| {
        Ok(reader
            .audiences(&workspace)
            .into_iter()
            .find(|record| record.document.id == id))
    })
    .await
}

async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let audiences = read(&state, move |reader| Ok(reader.audiences(&workspace))).await?;
    let audiences: Vec<Value> = audiences.iter().map(audience_view).collect();
    Ok(Json(json!({ "audiences": audiences })))
}

async fn get_audience(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    load_audience(&state, &workspace, &id)
        .await?
        .map(|record| Json(audience_view(&record)))
        .ok_or_else(|| audience_not_found(&id))
}

/// Creates (`201`) or replaces (`200`) an audience.
async fn save(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let (text, format) = read_document(&headers, body).await?;
    let document = read_audience(&text, format)?;
    if document.id != id {
        return Err(id_mismatch(DocumentKind::Audience, &id, &document.id));
    }
    let (document, errors) = {
        let workspace = workspace.clone();
        read(&state, move |reader| {
            let errors = reader.check_audience(&workspace, &document);
            Ok((document, errors))
        })
        .await?
    };
    if !errors.is_empty() {
        return Err(invalid(DocumentKind::Audience, &errors));
    }
    let created = load_audience(&state, &workspace, &id).await?.is_none();
    let outcome = commands::run(
        &state,
        workspace.clone(),
        Command::SaveAudience {
            document: Box::new(document),
        },
    )
    .await?;
    if !outcome.ok {
        return Err(ApiError::new(ErrorCode::InvalidAudience, outcome.message));
    }
    let record = load_audience(&state, &workspace, &id)
        .await?
        .ok_or_else(|| audience_not_found(&id))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::LOCATION, format!("/api/v1/audiences/{id}"))],
        Json(audience_view(&record)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// One page of members: `limit` ids after skipping `offset`, and the offset of the next page.
pub fn page<T>(mut fetched: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, Option<usize>) {
    debug_assert!(
        fetched.len() <= offset + limit + 1,
        "fetch at most one more"
    );
    let more = fetched.len() > offset + limit;
    fetched.truncate(offset + limit);
    let page: Vec<T> = fetched.into_iter().skip(offset).collect();
    (page, more.then_some(offset + limit))
}

async fn members(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let workspace = state.access.workspace_for_token(&headers)?;
    let query = crate::paging::query(query)?;
    let limit = crate::paging::limit(query.limit, DEFAULT_LIMIT)?;
    let offset = query.offset.unwrap_or(0);
    let wanted = offset.saturating_add(limit).saturating_add(1);
    let key = id.clone();
    let (fetched, total) = read(&state, move |reader| {
        let total = reader
            .audiences(&workspace)
            .into_iter()
            .find(|record| record.document.id == key)
            .map(|record| record.members);
        Ok(reader
            .audience_members(&workspace, &key, wanted)
            .map(|members| (members, total)))
    })
    .await?
    .ok_or_else(|| audience_not_found(&id))?;
    let (members, next_offset) = page(fetched, offset, limit);
    Ok(Json(json!({
        "audience": id,
        "total": total,
        "members": members,
        "next_offset": next_offset,
    })))
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn pages_skip_the_offset_and_say_where_the_next_begins() {
        let all: Vec<u32> = (0..10).collect();
        let fetch = |offset: usize, limit: usize| {
            all.iter()
                .copied()
                .take(offset + limit + 1)
                .collect::<Vec<_>>()
        };
        assert_eq!(page(fetch(0, 4), 0, 4), (vec![0, 1, 2, 3], Some(4)));
        assert_eq!(page(fetch(4, 4), 4, 4), (vec![4, 5, 6, 7], Some(8)));
        assert_eq!(page(fetch(8, 4), 8, 4), (vec![8, 9], None));
        assert_eq!(page(fetch(6, 4), 6, 4), (vec![6, 7, 8, 9], None));
        assert_eq!(page(fetch(20, 4), 20, 4), (Vec::<u32>::new(), None));
    }
}
