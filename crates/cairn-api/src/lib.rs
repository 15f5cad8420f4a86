//! Cairn's HTTP API.
//!
//! - [`tracking`]: the Segment-compatible tracking API (`/v1/identify`, `/v1/track`, …, `/v1/batch`,
//!   `/v1/import`, and analytics.js's short paths), authenticated by workspace write keys.
//! - [`management`]: the REST management API under `/api/v1`, authenticated by workspace API tokens:
//!   profiles and timelines; [`journeys`] (drafts, lifecycle, versions, stats, enrollment, test mode,
//!   the catalog), [`audiences`], and a profile's journeys, traces, messages and audiences
//!   ([`profile_journeys`]).
//! - [`email_links`]: the open pixel, click redirect and unsubscribe page that signed links in emails
//!   point to, authenticated by their signed token; [`provider_callbacks`]: bounce, complaint and SMS
//!   status callbacks and inbound SMS keywords ([`sms_inbound`]), authenticated by a shared secret or
//!   Twilio's signature ([`callback_auth`]);
//!   both record feedback through [`feedback_intake`].
//! - [`templates`] (message templates: drafts, publishing, previews) and [`delivery_admin`] (delivery
//!   records, dead letters, a profile's consent) in the management API.
//! - [`customer360`]: source records, the unified profile view, record lookups and explanations.
//! - [`ops`]: health, readiness, Prometheus metrics and the OpenAPI document.
//!
//! Every error is a JSON body `{"code": "...", "message": "..."}` with the status from the one error
//! table ([`cairn_model::ErrorCode`]); a document that fails validation adds `"errors": [...]`.

pub mod audiences;
pub mod auth;
pub mod body;
pub mod callback_auth;
mod commands;
pub mod customer360;
pub mod delivery_admin;
pub mod documents;
pub mod email_links;
pub mod error;
pub mod feedback_intake;
pub mod journeys;
pub mod management;
pub mod ops;
mod paging;
pub mod profile_journeys;
pub mod provider_callbacks;
pub mod sms_inbound;
pub mod templates;
pub mod test_mode;
pub mod tracking;
pub mod unsubscribe_page;
pub mod views;

pub use auth::{Access, WorkspaceAccess};
pub use error::ApiError;
pub use feedback_intake::DeliverySettings;

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
    /// Delivery records (dead letters, attribution of provider callbacks).
    pub deliveries: Arc<dyn cairn_storage::DeliveryStore>,
    /// Tracking-link keys and provider-callback credentials (none: those routes are refused).
    pub delivery: Arc<DeliverySettings>,
    /// Federated attribute sets per workspace (the 360 view fetches them on demand).
    pub federated: Arc<customer360::FederatedByWorkspace>,
}

impl ApiState {
    pub fn new(engine: &cairn_engine::Engine, access: Access) -> Self {
        ApiState {
            ingestor: engine.ingestor(),
            reader: engine.reader(),
            clock: engine.clock(),
            metrics: engine.metrics(),
            access: Arc::new(access),
            deliveries: engine.delivery_store(),
            delivery: Arc::new(DeliverySettings::default()),
            federated: Arc::default(),
        }
    }

    /// The same state serving tracking links and provider callbacks with these settings.
    pub fn with_delivery(mut self, settings: DeliverySettings) -> Self {
        self.delivery = Arc::new(settings);
        self
    }

    /// The same state with the workspaces' federated attribute sets.
    pub fn with_federated(mut self, federated: customer360::FederatedByWorkspace) -> Self {
        self.federated = Arc::new(federated);
        self
    }
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(tracking::routes())
        .merge(management::routes())
        .merge(journeys::routes())
        .merge(audiences::routes())
        .merge(profile_journeys::routes())
        .merge(email_links::routes())
        .merge(provider_callbacks::routes())
        .merge(templates::routes())
        .merge(delivery_admin::routes())
        .merge(customer360::routes())
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
