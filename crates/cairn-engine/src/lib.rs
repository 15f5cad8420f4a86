//! The engine: turns validated messages into durable profile state.
//!
//! [`Engine::start`] spawns the single writer of the node's partitions. Requests enter through
//! [`Ingestor::submit`], which refuses work when the bounded queue is full ([`EngineError::Overloaded`]);
//! the writer drains whatever is queued, applies it in one store transaction (group commit) and only
//! after the commit answers each request. The engine knows the store only through the
//! [`cairn_storage`] traits and has no HTTP dependency.

pub mod clock;
mod dedupe;
mod identity;
mod ingestor;
pub mod metrics;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use identity::{ExactIdentity, IdentityResolver};
pub use ingestor::{EngineError, Ingestor, Receipt};
pub use metrics::Metrics;

use cairn_storage::{ReadStore, Store};
use std::sync::Arc;
use std::time::Duration;

/// Tunables of the ingest path.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most events waiting for the writer; beyond it requests are refused with `overloaded`.
    pub queue_capacity_events: usize,
    /// Most events applied in one transaction.
    pub max_commit_events: usize,
    /// How long a message id is remembered for de-duplication.
    pub dedupe_window: Duration,
    /// Most message ids remembered (about 50 bytes of memory each); the oldest are forgotten first.
    pub dedupe_max_entries: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            queue_capacity_events: 200_000,
            max_commit_events: 20_000,
            dedupe_window: Duration::from_secs(24 * 3600),
            dedupe_max_entries: 10_000_000,
        }
    }
}

/// A running engine: the ingest handle, read access and metrics.
pub struct Engine {
    ingestor: Ingestor,
    reader: Arc<dyn ReadStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts the writer thread over `store`.
    pub fn start(
        options: EngineOptions,
        store: Box<dyn Store>,
        reader: Arc<dyn ReadStore>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Engine> {
        Engine::start_with_identity(options, store, reader, clock, Box::new(ExactIdentity))
    }

    /// Starts the writer thread with a given identity resolver (the seam Customer 360 replaces).
    pub fn start_with_identity(
        options: EngineOptions,
        store: Box<dyn Store>,
        reader: Arc<dyn ReadStore>,
        clock: Arc<dyn Clock>,
        identity: Box<dyn IdentityResolver>,
    ) -> std::io::Result<Engine> {
        let metrics = Arc::new(Metrics::new());
        let (ingestor, queue) = ingestor::channel(options.queue_capacity_events, metrics.clone());
        let writer = writer::spawn(
            options,
            store,
            identity,
            queue,
            clock.clone(),
            metrics.clone(),
        )?;
        Ok(Engine {
            ingestor,
            reader,
            clock,
            metrics,
            writer: Some(writer),
        })
    }

    pub fn ingestor(&self) -> Ingestor {
        self.ingestor.clone()
    }

    pub fn reader(&self) -> Arc<dyn ReadStore> {
        self.reader.clone()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stops accepting work, lets the writer commit what is queued, and waits for it.
    pub fn shutdown(mut self) {
        self.ingestor.close();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ingestor.close();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests;
