//! API errors: a stable code, a message, and the HTTP status from the one error table.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_core::segment::Rejection;
use cairn_engine::EngineError;
use cairn_model::ErrorCode;
use serde_json::json;

/// Seconds a client is asked to wait when Cairn is overloaded.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// An error answered as `{"code": ..., "message": ...}`, with `"errors": [...]` when a document
/// failed validation (every problem, each with its own code and position).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub errors: Option<Vec<serde_json::Value>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            errors: None,
        }
    }

    /// The same error with the list of problems that caused it.
    pub fn with_errors(mut self, errors: Vec<serde_json::Value>) -> Self {
        self.errors = Some(errors);
        self
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        ApiError::new(rejection.code, rejection.message)
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Overloaded => ApiError::new(
                ErrorCode::Overloaded,
                "the ingest queue is full, retry later",
            ),
            EngineError::ShuttingDown => {
                ApiError::new(ErrorCode::ShuttingDown, "the server is shutting down")
            }
            EngineError::Storage(error) => {
                tracing::error!(%error, "store failure");
                ApiError::new(
                    ErrorCode::StorageError,
                    "the store failed; nothing from this request was stored",
                )
            }
        }
    }
}

impl From<cairn_storage::StorageError> for ApiError {
    fn from(error: cairn_storage::StorageError) -> Self {
        tracing::error!(%error, "store read failure");
        ApiError::new(ErrorCode::StorageError, "the store failed to answer")
    }
}

pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(errors) = self.errors {
            body["errors"] = serde_json::Value::Array(errors);
        }
        let mut response = (status_of(self.code), Json(body)).into_response();
        if self.code == ErrorCode::Overloaded {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

pub(crate) async fn route_not_found() -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}
