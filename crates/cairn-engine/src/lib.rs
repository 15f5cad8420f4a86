//! The engine: turns validated messages into a durable input log and the state derived from it.
//!
//! ```text
//! Ingestor::submit ──bounded queue──► log writer thread ──append + fsync──► log (acknowledge)
//!                                                                             │
//!          Reader ◄── in-memory state ◄── applier thread ◄── read committed ──┘
//!                          │
//!                          └── checkpoints (what changed + applied log position) ──► state store
//! ```
//!
//! [`Engine::start`] loads the last state checkpoint, rebuilds the de-duplication window from the
//! log, and spawns two threads: the **log writer** (group commit: a request is acknowledged once its
//! messages are durable in the log) and the **applier** (the single writer of every partition's
//! state: identity resolution, traits, timelines). After a crash the applier replays the log from
//! the checkpoint's position; applying is deterministic, so the replay rebuilds exactly what was
//! lost. The engine knows the store only through the [`cairn_storage`] traits and has no HTTP
//! dependency.

pub mod activity;
mod applier;
mod checkpoint_writer;
pub mod clock;
pub mod codec;
pub mod customer360;
mod dedupe;
pub mod federated;
mod identity;
mod ingestor;
pub mod journeys;
mod log_writer;
pub mod metrics;
mod progress;
mod reader;
mod state;
mod ticker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use identity::{ExactIdentity, IdentityInput, IdentityResolver};
pub use ingestor::{EngineError, Ingestor, Receipt};
pub use metrics::Metrics;
pub use reader::{Reader, READ_BARRIER_TIMEOUT};
pub use state::{RecipientState, WEBHOOK_RESPONDED};

use cairn_storage::{Backend, StorageError};
use parking_lot::RwLock;
use progress::Progress;
use std::sync::Arc;
use std::time::Duration;

/// Tunables of the ingest and apply paths.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most events waiting for the log writer; beyond it requests are refused with `overloaded`.
    pub queue_capacity_events: usize,
    /// Most events appended in one log transaction.
    pub max_commit_events: usize,
    /// Most events durable in the log but not yet applied; beyond it requests are refused with
    /// `overloaded` (bounds how stale reads can be and how long a replay takes).
    pub max_apply_lag_events: u64,
    /// How long a message id is remembered for de-duplication.
    pub dedupe_window: Duration,
    /// Most message ids remembered (about 50 bytes of memory each); the oldest are forgotten first.
    pub dedupe_max_entries: usize,
    /// Longest time between two state checkpoints (bounds the replay after a crash).
    pub checkpoint_interval: Duration,
    /// A checkpoint is also written once this many timeline entries wait for one.
    pub checkpoint_max_pending_events: usize,
    /// Changed profiles a checkpoint copies per hold of the state's write lock (applying goes on
    /// between rounds).
    pub checkpoint_round_profiles: usize,
    /// Write a last checkpoint when shutting down (on by default). Crash tests turn it off to stop
    /// as if the process had died right after its last log commit.
    pub checkpoint_on_shutdown: bool,
    /// How often the ticker checks whether a timer is due; `None`: no ticker (tests tick by hand
    /// with [`Engine::tick`]).
    pub tick_interval: Option<Duration>,
    /// A breakpoint for tests: while the gate is closed, the log writer commits nothing (requests
    /// queue up, so a test can fill the queue deterministically).
    pub log_gate: Option<Gate>,
    /// A breakpoint for tests: while the gate is closed, the checkpoint writer holds its copy
    /// before writing it (the applier goes on applying).
    pub checkpoint_gate: Option<Gate>,
    /// A breakpoint for tests: while the gate is closed, a re-resolution of a workspace's records
    /// (a rule change, or the rebuild at start under a changed file) holds after each record, on
    /// the applier under the state's write lock (or inside [`Engine::start`]).
    pub identity_gate: Option<Gate>,
    /// Customer 360: the workspaces' identity configurations (none: exact identity only).
    pub identity: customer360::IdentityConfigs,
    /// The activity items subscriptions want (none: no items are derived).
    pub activity: activity::ActivityWants,
    /// Each workspace's declared federated attribute sets (what journeys may fetch and write back).
    pub federated: federated::FederatedSets,
}

/// A gate a test closes to hold a thread at a breakpoint and opens to let it go on.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    state: Arc<(parking_lot::Mutex<GateState>, parking_lot::Condvar)>,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    /// Threads held at the breakpoint now.
    held: usize,
}

impl Gate {
    /// Closes the gate: the thread that waits on it stops at its next breakpoint.
    pub fn close(&self) {
        self.state.0.lock().closed = true;
    }

    /// Opens the gate and wakes the waiting thread.
    pub fn open(&self) {
        self.state.0.lock().closed = false;
        self.state.1.notify_all();
    }

    /// Waits until a thread is held at the breakpoint, up to `timeout`; returns whether one is.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.state.0.lock();
        while state.held == 0 {
            if self.state.1.wait_until(&mut state, deadline).timed_out() {
                return state.held > 0;
            }
        }
        true
    }

    /// Returns once the gate is open.
    pub(crate) fn pass(&self) {
        let mut state = self.state.0.lock();
        if !state.closed {
            return;
        }
        state.held += 1;
        self.state.1.notify_all();
        while state.closed {
            self.state.1.wait(&mut state);
        }
        state.held -= 1;
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            queue_capacity_events: 200_000,
            max_commit_events: 20_000,
            max_apply_lag_events: 1_000_000,
            dedupe_window: Duration::from_secs(24 * 3600),
            dedupe_max_entries: 10_000_000,
            checkpoint_interval: Duration::from_secs(10),
            checkpoint_max_pending_events: 2_000_000,
            checkpoint_round_profiles: 2_000,
            checkpoint_on_shutdown: true,
            tick_interval: Some(Duration::from_millis(200)),
            log_gate: None,
            checkpoint_gate: None,
            identity_gate: None,
            identity: customer360::IdentityConfigs::default(),
            activity: activity::ActivityWants::default(),
            federated: federated::FederatedSets::default(),
        }
    }
}

/// A running engine: the ingest handle, read access and metrics.
pub struct Engine {
    ingestor: Ingestor,
    reader: Reader,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    progress: Arc<Progress>,
    outbox_feed: applier::OutboxFeed,
    delivery: Arc<dyn cairn_storage::DeliveryStore>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts the engine over `backend` with exact identity resolution.
    pub fn start(
        options: EngineOptions,
        backend: Backend,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, StorageError> {
        Engine::start_with_identity(options, backend, clock, Box::new(ExactIdentity))
    }

    /// Starts the engine with a given identity resolver (the seam Customer 360 replaces).
    pub fn start_with_identity(
        options: EngineOptions,
        backend: Backend,
        clock: Arc<dyn Clock>,
        identity: Box<dyn IdentityResolver>,
    ) -> Result<Engine, StorageError> {
        let Backend {
            log,
            log_reader,
            mut state,
            state_reader,
            delivery,
        } = backend;
        let mut loaded = state::State::load(state.as_mut())?;
        loaded.configure_identity(&options.identity, options.identity_gate.as_ref());
        loaded.configure_activity(options.activity.clone());
        loaded.configure_federated(options.federated.clone());
        let checkpointed = loaded.applied_seq();
        let committed = log_reader.last_seq()?;
        if checkpointed > committed {
            return Err(StorageError::Corrupt(format!(
                "the state reflects log position {checkpointed} but the log ends at {committed}"
            )));
        }
        tracing::info!(
            profiles = loaded.profile_count(),
            checkpointed,
            committed,
            "state loaded; replaying the log after the checkpoint"
        );
        let recent = dedupe::rebuild(&options, log_reader.as_ref(), clock.now())?;
        let metrics = Arc::new(Metrics::new());
        let progress = Arc::new(Progress::new(committed, checkpointed));
        let shared_state = Arc::new(RwLock::new(loaded));
        let (ingestor, queue) = ingestor::channel(
            options.queue_capacity_events,
            options.max_apply_lag_events,
            progress.clone(),
            metrics.clone(),
        );
        let log_writer = log_writer::LogWriterThread {
            options: options.clone(),
            log,
            queue,
            recent,
            progress: progress.clone(),
            metrics: metrics.clone(),
        }
        .spawn()?;
        let tick_interval = options.tick_interval;
        let identity_configs = options.identity.clone();
        let outbox_feed = applier::OutboxFeed::default();
        let checkpoints = checkpoint_writer::CheckpointWriter::spawn(
            state,
            shared_state.clone(),
            progress.clone(),
            metrics.clone(),
            checkpointed,
            options.checkpoint_gate.clone(),
        )?;
        let applier = applier::Applier {
            options,
            state: shared_state.clone(),
            checkpoints,
            log: log_reader.clone(),
            identity,
            progress: progress.clone(),
            metrics: metrics.clone(),
            outbox_feed: outbox_feed.clone(),
        }
        .spawn()?;
        let mut threads = vec![log_writer, applier];
        if let Some(interval) = tick_interval {
            threads.push(ticker::spawn(
                interval,
                ingestor.clone(),
                clock.clone(),
                progress.clone(),
            )?);
        }
        Ok(Engine {
            ingestor,
            reader: Reader {
                state: shared_state,
                progress: progress.clone(),
                log: log_reader,
                store: state_reader,
                identity: identity_configs,
            },
            clock,
            metrics,
            progress,
            outbox_feed,
            delivery,
            threads,
        })
    }

    pub fn ingestor(&self) -> Ingestor {
        self.ingestor.clone()
    }

    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Waits until everything committed to the log so far is applied, or `timeout` passes; returns
    /// whether it was.
    pub fn wait_until_applied(&self, timeout: Duration) -> bool {
        self.progress
            .wait_for_applied(self.progress.committed(), timeout)
    }

    /// The dispatcher's delivery records, opened with the store.
    pub fn delivery_store(&self) -> Arc<dyn cairn_storage::DeliveryStore> {
        self.delivery.clone()
    }

    /// Applies everything committed so far and writes a checkpoint now; waits up to `timeout`.
    /// Returns whether the checkpoint was written.
    pub fn checkpoint(&self, timeout: Duration) -> bool {
        let wanted = self.progress.request_checkpoint();
        self.progress.wait_for_checkpoint(wanted, timeout)
    }

    /// New outbox messages as the applier produces them (one subscriber: a later call replaces an
    /// earlier one). Best effort: if the receiver falls `capacity` behind, notices are dropped and the
    /// returned flag is set; the outbox itself is in the state and the store.
    pub fn subscribe_outbox(
        &self,
        capacity: usize,
    ) -> (
        std::sync::mpsc::Receiver<cairn_storage::OutboxRow>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        self.outbox_feed.subscribe(capacity)
    }

    /// Appends a tick at the clock's time and waits until it is applied: every timer due by then has
    /// fired. (The ticker does this by itself; tests with a manual clock call it.)
    pub fn tick(&self) -> Result<(), EngineError> {
        let receipt = self.ingestor.submit_tick_blocking(self.clock.now())?;
        self.progress
            .wait_for_applied(receipt.seq, READ_BARRIER_TIMEOUT);
        Ok(())
    }

    /// Stops accepting work, lets the log writer commit what is queued and the applier apply and
    /// checkpoint everything, and waits for both.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.ingestor.close();
        for thread in self.threads.drain(..) {
            let name = thread.thread().name().unwrap_or("engine").to_string();
            if thread.join().is_err() {
                tracing::error!(thread = %name, "an engine thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
