//! Cairn's dispatcher: the outbox messages journeys decide to send, rendered and sent through the
//! channel providers (SMTP, Twilio-format SMS, FCM v1 push, signed webhooks), at most once per
//! message id by Cairn's own doing, with retries, dead letters, rate limits and delivery feedback.
//!
//! - [`options`]: providers per channel, in-doubt policies, retries, rate limits, tracking links.
//! - [`compose`]: from an outbox message, a profile and a template to what goes on the wire.
//! - [`dispatcher`]: intake, batches, durable attempt and result records, retries, recovery.
//! - [`activity`]: activity feed subscriptions, the item payload, the signed POST of an item.
//! - [`activity_worker`]: activity items fanned out to subscriptions and posted durably.
//! - [`federated`]: federated attribute sets a template reads, fetched at compose time.
//! - [`feedback`]: delivery outcomes as events on the profile (`Email Sent`, `Webhook Responded`).
//! - [`fetch_worker`]: `fetch` steps' federated attribute sets, fetched and answered to the journey.
//! - `internal_worker`: the durable loop of internal rows — activity posts, fetches, write-backs
//!   (attempt, job, event, result).
//! - [`write_back_worker`]: journeys' write-backs to federated attribute sources, durable and
//!   audited (`Write Back Applied`).
//!
//! Volume control (consent, caps, quiet hours, suppression) is decided earlier, deterministically, by
//! the engine's applier: only messages it decided `ready` reach the dispatcher.

pub mod activity;
mod activity_worker;
pub mod compose;
mod dispatcher;
pub mod federated;
pub mod feedback;
pub mod fetch_worker;
mod internal_worker;
pub mod options;
pub mod write_back_worker;

pub use options::{CallbackOptions, ChannelOptions, DispatchOptions, TrackingOptions};

use cairn_engine::Engine;
use dispatcher::{channel_worker, Shared, Work, CHANNELS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the dispatcher cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid delivery configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] cairn_storage::StorageError),
    #[error("cannot start the dispatcher's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the engine did not take the events: {0}")]
    Engine(#[from] cairn_engine::EngineError),
}

/// A running dispatcher; [`Dispatcher::shutdown`] stops it after the batches in progress.
pub struct Dispatcher {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    intake: Option<std::thread::JoinHandle<()>>,
}

/// Queue capacity of the engine's outbox feed.
const FEED_CAPACITY: usize = 100_000;

impl Dispatcher {
    /// Recovers what a crash left in doubt, then starts reading the engine's outbox and sending.
    pub fn start(options: DispatchOptions, engine: &Engine) -> Result<Dispatcher, DispatchError> {
        Dispatcher::start_with_federated(options, engine, federated::FederatedByWorkspace::new())
    }

    /// [`Dispatcher::start`] with the workspaces' federated attribute sets: templates that read
    /// `federated.*` get them fetched for the profile when the message is composed.
    pub fn start_with_federated(
        options: DispatchOptions,
        engine: &Engine,
        federated: federated::FederatedByWorkspace,
    ) -> Result<Dispatcher, DispatchError> {
        activity::validate_all(&options.activity)
            .map_err(|error| DispatchError::Config(error.to_string()))?;
        let (feed, lagged) = engine.subscribe_outbox(FEED_CAPACITY);
        let (shared, receivers) = Shared::new(options, engine, federated)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-dispatch")
            .enable_all()
            .build()?;
        shared.recover_in_doubt()?;
        let stop = Arc::new(AtomicBool::new(false));
        for (channel, queue) in receivers.channels {
            runtime.spawn(channel_worker(shared.clone(), channel, queue));
        }
        runtime.spawn(internal_worker::internal_worker(
            shared.clone(),
            receivers.activity,
            cairn_engine::activity::ACTIVITY_CHANNEL,
            activity_worker::post,
        ));
        runtime.spawn(internal_worker::internal_worker(
            shared.clone(),
            receivers.write_back,
            cairn_engine::federated::WRITE_BACK_CHANNEL,
            write_back_worker::write_back,
        ));
        runtime.spawn(internal_worker::internal_worker(
            shared.clone(),
            receivers.fetch,
            cairn_engine::federated::FETCH_CHANNEL,
            fetch_worker::fetch,
        ));
        let poll_interval = shared.options.poll_interval();
        let poller = shared.clone();
        let stopping = stop.clone();
        runtime.spawn(async move {
            let mut since_catch_up = Duration::MAX;
            while !stopping.load(Ordering::Acquire) {
                let feed_lagged = lagged.swap(false, Ordering::AcqRel);
                if since_catch_up >= poll_interval || feed_lagged {
                    let shared = poller.clone();
                    let caught_up = tokio::task::spawn_blocking(move || shared.catch_up()).await;
                    if let Ok(Err(error)) = caught_up {
                        tracing::warn!(%error, "cannot read the outbox; will retry");
                    }
                    since_catch_up = Duration::ZERO;
                }
                let shared = poller.clone();
                if let Ok(Err(error)) =
                    tokio::task::spawn_blocking(move || shared.queue_due_retries()).await
                {
                    tracing::warn!(%error, "cannot read due retries; will retry");
                }
                tokio::time::sleep(RETRY_POLL).await;
                since_catch_up = since_catch_up.saturating_add(RETRY_POLL);
            }
        });
        let intake_shared = shared.clone();
        let intake_stop = stop.clone();
        let intake = std::thread::Builder::new()
            .name("cairn-dispatch-feed".into())
            .spawn(move || {
                while !intake_stop.load(Ordering::Acquire) {
                    match feed.recv_timeout(Duration::from_millis(100)) {
                        Ok(row) => intake_shared.enqueue(Work {
                            row,
                            attempts: 0,
                            again: false,
                        }),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        tracing::info!(
            channels = ?CHANNELS.iter().filter(|c| shared.options.channel(**c).is_some()).map(|c| c.as_str()).collect::<Vec<_>>(),
            "dispatcher started"
        );
        Ok(Dispatcher {
            runtime: Some(runtime),
            stop,
            intake: Some(intake),
        })
    }

    /// Stops taking messages and lets the batches in flight finish (up to a few seconds).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(intake) = self.intake.take() {
            let _ = intake.join();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// How often due retries are looked for.
const RETRY_POLL: Duration = Duration::from_millis(500);
