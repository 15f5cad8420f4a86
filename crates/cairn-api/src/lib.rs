//! Cairn's HTTP API.
//!
//! - [`tracking`]: the Segment-compatible tracking API (`/v1/identify`, `/v1/track`, …, `/v1/batch`,
//!   `/v1/import`, and analytics.js's short paths), authenticated by workspace write keys.
//! - [`management`]: the REST management API under `/api/v1`, authenticated by workspace API tokens.
//! - [`ops`]: health, readiness, Prometheus metrics and the OpenAPI document.
//!
//! Every error is a JSON body `{"code": "...", "message": "..."}` with the status from the one error
//! table ([`cairn_model::ErrorCode`]).

pub mod auth;
mod body;
pub mod error;
pub mod management;
pub mod ops;
pub mod tracking;

pub use auth::{Access, WorkspaceAccess};
pub use error::ApiError;

use axum::Router;
use cairn_engine::{Clock, Ingestor, Metrics, Reader};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub ingestor: Ingestor,
    pub reader: Reader,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub access: Arc<Access>,
}

impl ApiState {
    pub fn new(engine: &cairn_engine::Engine, access: Access) -> Self {
        ApiState {
            ingestor: engine.ingestor(),
            reader: engine.reader(),
            clock: engine.clock(),
            metrics: engine.metrics(),
            access: Arc::new(access),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(tracking::routes())
        .merge(management::routes())
        .merge(ops::routes())
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
