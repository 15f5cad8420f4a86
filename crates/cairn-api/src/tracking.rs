//! The Segment-compatible tracking API.
//!
//! Routes: `/v1/{identify,track,page,screen,group,alias}`, `/v1/batch` and `/v1/import` (RudderStack),
//! and analytics.js's short paths `/v1/{i,t,p,s,g,a,b}`.
//!
//! Partial batches: each message is validated on its own. Valid messages are stored; invalid ones are
//! listed in the response's `rejected` array (index, code, message) and stored nowhere. If no message
//! of the request is valid, the request fails with the first message's error code and status. The
//! response is sent only once every stored message is durable.

use crate::body::{check_content_type, read_text};
use crate::error::ApiError;
use crate::ApiState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::routing::post;
use axum::{Json, Router};
use cairn_core::segment::{normalize, parse_request, Endpoint, Rejection};
use cairn_model::{ErrorCode, MessageKind, NormalizedMessage, WorkspaceId};
use serde_json::{json, Value};
use tower_http::cors::{Any, CorsLayer};

/// The tracking routes, with permissive CORS so browsers can post directly.
pub fn routes() -> Router<ApiState> {
    let mut router = Router::new();
    for kind in MessageKind::ALL {
        let short = &kind.as_str()[..1];
        let handler = move |state: State<ApiState>, headers: HeaderMap, body: Body| {
            ingest(state, headers, body, Endpoint::Single(kind))
        };
        router = router
            .route(&format!("/v1/{}", kind.as_str()), post(handler))
            .route(&format!("/v1/{short}"), post(handler));
    }
    let batch = |state: State<ApiState>, headers: HeaderMap, body: Body| {
        ingest(state, headers, body, Endpoint::Batch)
    };
    router
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .route("/v1/b", post(batch))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::POST])
                .allow_headers(Any),
        )
}

async fn ingest(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Result<Json<Value>, ApiError> {
    let received_at = state.clock.now();
    let (workspace, accepted, rejected) = async {
        let (workspace, text) = read_request(&state, &headers, body).await?;
        validate(&state, &headers, workspace, &text, endpoint, received_at)
    }
    .await
    .inspect_err(|error| state.metrics.reject(error.code, 1))?;
    if accepted.is_empty() {
        // Every message was invalid (each already counted): the request fails with the first error.
        let (_, first) = rejected
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::new(ErrorCode::EmptyBatch, "no messages"))?;
        return Err(first.into());
    }
    let receipt = state
        .ingestor
        .submit(workspace, accepted)
        .await
        .map_err(ApiError::from)
        .inspect_err(|error| {
            state.metrics.reject(error.code, 1);
        })?;
    let rejected: Vec<Value> = rejected
        .into_iter()
        .map(|(index, rejection)| json!({"index": index, "code": rejection.code, "message": rejection.message}))
        .collect();
    Ok(Json(json!({
        "success": true,
        "accepted": receipt.accepted,
        "duplicates": receipt.duplicates,
        "rejected": rejected,
    })))
}

/// A request's workspace, its valid messages, and its invalid ones with their index.
type Validated = (WorkspaceId, Vec<NormalizedMessage>, Vec<(usize, Rejection)>);

/// Parses and validates a request body. Fails if the request as a whole is invalid; each invalid
/// message is counted and listed with its index.
fn validate(
    state: &ApiState,
    headers: &HeaderMap,
    workspace: Option<WorkspaceId>,
    text: &str,
    endpoint: Endpoint,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Result<Validated, ApiError> {
    let parsed = parse_request(text, endpoint)?;
    let workspace = match workspace {
        Some(workspace) => workspace,
        None => state
            .access
            .workspace_for_write_key(headers, parsed.write_key.as_deref())?,
    };
    let mut accepted = Vec::with_capacity(parsed.messages.len());
    let mut rejected = Vec::new();
    for (index, message) in parsed.messages.into_iter().enumerate() {
        match message.and_then(|message| normalize(message, &parsed.envelope, received_at)) {
            Ok(normalized) => accepted.push(normalized),
            Err(rejection) => {
                state.metrics.reject(rejection.code, 1);
                rejected.push((index, rejection));
            }
        }
    }
    Ok((workspace, accepted, rejected))
}

/// Authenticates (when the write key is in a header) and reads the body as text; nothing is
/// stored yet. Without an `Authorization` header the workspace comes from the body's `writeKey`.
async fn read_request(
    state: &ApiState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Option<WorkspaceId>, String), ApiError> {
    // A wrong Basic header is refused before the body is read.
    let workspace = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        Some(state.access.workspace_for_write_key(headers, None)?)
    } else {
        None
    };
    check_content_type(headers)?;
    let text = read_text(headers, body).await?;
    Ok((workspace, text))
}
