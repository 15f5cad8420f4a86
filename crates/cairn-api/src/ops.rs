//! Operational endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document.
//!
//! These carry no workspace data and need no credentials, so load balancers and Prometheus can reach
//! them.

use crate::error::ApiError;
use crate::ApiState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use cairn_model::ErrorCode;
use serde_json::{json, Value};

/// The OpenAPI 3.1 document of the whole HTTP API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }),
        )
}

async fn ready(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let reader = state.reader.clone();
    let ready = tokio::task::spawn_blocking(move || reader.ready())
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "readiness check failed"))?
        .map_err(|_| ApiError::new(ErrorCode::StorageError, "the store does not answer"))?;
    let (committed, applied) = state.reader.positions();
    if !ready {
        return Err(ApiError::new(
            ErrorCode::NotReady,
            format!("replaying the log after a restart: applied {applied} of {committed} records"),
        ));
    }
    Ok(Json(json!({
        "status": "ready",
        "queued_events": state.ingestor.queued_events(),
        "log_committed_seq": committed,
        "log_applied_seq": applied,
    })))
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
